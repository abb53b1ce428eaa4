#pragma once
// One shard: a thread pinned to one CPU that owns an io_uring, a provided-buffer ring, a
// SO_REUSEPORT listener (multishot accept), its connections and their timers. Nothing here is
// shared with other shards except request_stop()/wake(), which only write an eventfd.

#include <liburing.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "engine/buffer_ring.h"
#include "engine/connection.h"
#include "engine/status.h"

namespace sluice::engine {

struct shard_config {
  uint32_t max_connections = 10000;  // accepted connections; over it: on_open with overloaded()
  uint32_t overload_reserve = 256;   // extra slots used only to answer "overloaded" and close
  uint32_t max_outgoing = 1024;      // outgoing connect() slots
  uint32_t buffer_count = 4096;      // provided buffers (power of two)
  uint32_t buffer_size = 4096;       // bytes per provided buffer (plus kPadding slack)
  uint32_t sq_entries = 4096;
  uint32_t cq_entries = 65536;
  std::chrono::milliseconds linger{1000};  // graceful-close wait for the peer's FIN
};

class shard {
 public:
  shard(unsigned id, int cpu, int listen_fd, const shard_config& config);
  shard(const shard&) = delete;
  shard& operator=(const shard&) = delete;
  ~shard();

  // In the shard's own thread: pins, creates the ring (SINGLE_ISSUER binds it to this thread).
  [[nodiscard]] status init();
  void set_handler(std::unique_ptr<connection_handler> h) { handler_ = std::move(h); }
  // Runs the loop until stopped and drained.
  void run();

  // Any thread: stop accepting, let connections finish until deadline, then close everything.
  void request_stop(std::chrono::steady_clock::time_point deadline);
  // Any thread: wake the loop (e.g. after pushing into one of its queues).
  void wake();
  // Any thread: loop iterations so far. A watchdog that wakes the shard and finds this number
  // unchanged a while later knows the loop is stuck (runtime::stalled_shards).
  [[nodiscard]] uint64_t iterations() const { return iterations_.load(std::memory_order_relaxed); }
  // Called on the shard's thread once per loop iteration, after completions and timers and
  // before sends, so whatever it answers leaves in the same iteration (e.g. drain a queue that
  // another thread fills and wake()s us for). One hook; nullptr removes it.
  void set_loop_hook(std::function<void()> hook) { loop_hook_ = std::move(hook); }
  // Shard thread: the loop hook has work that arose after it ran this iteration (e.g. a
  // connection released while its sends were flushed): the next iteration does not wait for
  // a completion, so the hook runs again at once.
  void loop_again() { loop_again_ = true; }

  // Outgoing connection, handled by the same recv/send machinery. Returns nullptr when out of
  // slots or the socket cannot be created (errno is set); otherwise handler->on_connected
  // follows, with -ETIMEDOUT if not connected within timeout.
  [[nodiscard]] connection* connect(const sockaddr* addr, socklen_t len,
                                    std::chrono::nanoseconds timeout, connection_handler* handler);

  // An already-connected stream socket made elsewhere (e.g. one end of a socketpair whose other
  // end is a child process's stdin or stdout), driven by the same recv/send machinery and counted
  // as an outgoing slot. The shard owns fd from here on (also on failure: it is closed). Returns
  // the open connection, recv armed, or nullptr when out of slots (errno = EAGAIN).
  [[nodiscard]] connection* adopt(int fd, connection_handler* handler);

  // Shard thread: client->on_deadline() once, in the first loop iteration at or after
  // deadline_ns (steady clock, the scale of now_ns()). There is no cancel: the client checks
  // what is due when called (a call may find nothing), and must outlive the loop.
  void call_at(int64_t deadline_ns, deadline_client* client);

  [[nodiscard]] unsigned id() const { return id_; }
  [[nodiscard]] int cpu() const { return cpu_; }
  // Steady-clock nanoseconds, read once per loop iteration.
  [[nodiscard]] int64_t now_ns() const { return now_ns_; }
  // Wall-clock (CLOCK_REALTIME) nanoseconds, read with now_ns(): what the work of one
  // iteration (a batch of completions) is stamped with, e.g. rate-limit windows.
  [[nodiscard]] int64_t wall_ns() const { return wall_ns_; }
  // Any thread (metrics, tests): a relaxed read of a count only this shard writes.
  [[nodiscard]] uint32_t open_connections() const {
    return accepted_live_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] connection_handler* handler() const { return handler_.get(); }

 private:
  friend class connection;

  struct timer_entry {
    int64_t deadline;
    uint32_t index;
    uint32_t gen;
  };
  struct deadline_entry {
    int64_t deadline;
    deadline_client* client;
  };

  io_uring_sqe* get_sqe();
  void arm_accept();
  void arm_recv(connection& c);
  void arm_wake();
  void arm_timer_if_needed();
  void handle_cqes();
  void handle_cqe(const io_uring_cqe* cqe);
  const connection* slot_of(const io_uring_cqe& cqe) const;
  void on_accept(const io_uring_cqe* cqe);
  void on_recv(connection& c, const io_uring_cqe* cqe);
  void on_send(connection& c, const io_uring_cqe* cqe);
  void on_connect(connection& c, const io_uring_cqe* cqe);
  void flush(connection& c);
  void flush_dirty();
  void run_timers();
  void begin_drain();
  void finalize(connection& c);
  void maybe_release(connection& c);
  connection* alloc_slot();
  // An outgoing slot for fd (closed, errno EAGAIN, null when no slot is free).
  connection* take_outgoing(int fd, connection_handler* handler, connection::state st);
  void release_slot(connection& c);
  void push_timer(connection& c);
  void update_now();

  const unsigned id_;
  const int cpu_;
  int listen_fd_;
  const shard_config config_;
  io_uring ring_{};
  bool ring_ok_ = false;
  buffer_ring buffers_;
  std::unique_ptr<connection_handler> handler_;

  std::unique_ptr<connection[]> slots_;
  uint32_t slot_count_ = 0;
  uint32_t free_head_ = 0;  // index + 1 of the first free slot; 0 = none
  // Written only by the shard's thread (a relaxed load and store, no locked RMW), read by any.
  std::atomic<uint32_t> accepted_live_ = 0;
  uint32_t outgoing_live_ = 0;
  uint32_t overloaded_live_ = 0;
  uint32_t live_ = 0;  // all slots in use

  std::function<void()> loop_hook_;
  bool loop_again_ = false;  // loop_again(): the next iteration does not block
  std::vector<connection*> dirty_;
  std::vector<timer_entry> timers_;        // min-heap on deadline
  std::vector<deadline_entry> deadlines_;  // call_at(), min-heap on deadline
  int64_t armed_deadline_ = 0;             // deadline of the one armed io_uring timeout; 0 = none
  uint32_t armed_gen_ = 0;
  __kernel_timespec armed_ts_{};
  int64_t now_ns_ = 0;
  int64_t wall_ns_ = 0;

  int wake_fd_ = -1;
  uint64_t wake_value_ = 0;
  bool accept_armed_ = false;
  bool accept_retry_ = false;
  __kernel_timespec accept_retry_ts_{};

  std::atomic<int64_t> stop_deadline_{0};  // written by any thread, read by the shard
  std::atomic<uint64_t> iterations_{0};    // written by the shard only, read by any thread
  bool draining_ = false;
  int64_t drain_deadline_ = 0;
};

}  // namespace sluice::engine
