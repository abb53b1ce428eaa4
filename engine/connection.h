#pragma once
// A TCP connection owned by one shard, and the protocol plug-in interface the shard drives.
// Everything here is used only from the owning shard's thread.

#include <linux/time_types.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <span>
#include <string_view>

#include "engine/byte_buffer.h"

namespace sluice::engine {

class shard;
class connection;

// The protocol plug-in. One instance per shard for accepted connections (made by the runtime's
// factory); outgoing connections may name their own handler.
class connection_handler {
 public:
  virtual ~connection_handler() = default;

  // A connection was accepted. When conn.overloaded() the shard is over its connection limit:
  // write a short refusal (e.g. HTTP 503) and close().
  virtual void on_open(connection& conn) = 0;

  // An outgoing connect() finished: error is 0 or a negative errno (-ETIMEDOUT on timeout).
  // On error the connection is closed right after this call (on_closed follows).
  virtual void on_connected(connection& conn, int error) {
    (void)conn;
    (void)error;
  }

  // Bytes received. They live in a provided buffer only for the duration of the call (then the
  // buffer goes back to the ring); at least kPadding readable bytes follow bytes.end().
  virtual void on_data(connection& conn, std::span<const char> bytes) = 0;

  // The peer closed its sending side. Default: close.
  virtual void on_eof(connection& conn);

  // All queued output has been handed to the kernel (for streaming back-pressure).
  virtual void on_writable(connection& conn) { (void)conn; }

  // The connection's timer fired.
  virtual void on_timer(connection& conn) { (void)conn; }

  // The runtime is stopping: finish what is in flight and close(). Default: close().
  virtual void on_shutdown(connection& conn);

  // The connection is gone (socket closed, slot about to be reused). No more calls for it.
  virtual void on_closed(connection& conn) = 0;
};

// Something other than a connection that needs waking at a time (e.g. a queue of requests
// waiting for a connection): see shard::call_at.
class deadline_client {
 public:
  virtual void on_deadline() = 0;

 protected:
  ~deadline_client() = default;
};

class connection {
 public:
  enum class state : uint8_t { free, connecting, open, closing, finalizing };

  connection() = default;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // Appends to the output buffer; the shard submits one send per connection per loop iteration,
  // after the whole completion batch, so pipelined answers go out in one send.
  // Does not allocate after warm-up (the buffer is reused).
  void send(std::span<const char> bytes) {
    if (state_ != state::open) return;
    out_.append(bytes.data(), bytes.size());
    mark_dirty();
  }
  void send(std::string_view s) { send(std::span<const char>(s.data(), s.size())); }

  // Direct formatting into the output buffer: write up to n bytes at prepare(n), then commit.
  [[nodiscard]] char* prepare(size_t n) { return out_.prepare(n); }
  void commit(size_t n) {
    if (state_ != state::open) return;
    out_.commit(n);
    mark_dirty();
  }

  // Graceful close: flush the output, shut down our side, discard input until the peer closes
  // or the linger time passes (so a final error answer is not lost to a reset), then close.
  void close();
  // Immediate close (output is dropped).
  void abort();

  // Back-pressure: stop receiving until resume_recv(). The armed receive is cancelled; bytes
  // already on their way may still arrive (on_data) before it ends, at most a few provided
  // buffers. Meanwhile the kernel keeps what the peer sends, and TCP flow control slows the
  // peer once the socket's receive buffer is full. close() resumes (the linger reads on).
  void pause_recv();
  void resume_recv();
  [[nodiscard]] bool recv_paused() const { return recv_paused_; }

  // One timer per connection; setting it replaces the previous deadline.
  void set_timer(std::chrono::nanoseconds after);
  void cancel_timer() { timer_deadline_ = 0; }

  [[nodiscard]] bool is_open() const { return state_ == state::open; }
  [[nodiscard]] bool overloaded() const { return overloaded_; }
  [[nodiscard]] bool outgoing() const { return outgoing_; }
  [[nodiscard]] uint32_t index() const { return index_; }
  [[nodiscard]] uint32_t generation() const { return gen_; }
  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] shard& owner() const { return *shard_; }
  [[nodiscard]] size_t pending_output() const { return out_.size() + (inflight_.size() - sent_); }

  // Free for the protocol layer (e.g. a pointer to its per-connection state).
  void* user = nullptr;

 private:
  friend class shard;
  void mark_dirty();

  shard* shard_ = nullptr;
  connection_handler* handler_ = nullptr;
  int fd_ = -1;
  uint32_t index_ = 0;
  uint32_t gen_ = 0;
  state state_ = state::free;
  bool overloaded_ = false;
  bool outgoing_ = false;
  bool dirty_ = false;
  bool recv_armed_ = false;
  bool recv_rearm_ = false;
  bool recv_paused_ = false;  // pause_recv(): do not re-arm the receive
  bool recv_cancel_ = false;  // a cancel of the armed receive is submitted
  bool send_inflight_ = false;
  bool connect_inflight_ = false;
  bool counted_overloaded_ = false;
  bool shut_wr_ = false;
  byte_buffer out_;             // being filled by the handler
  byte_buffer inflight_;        // being sent by the kernel
  size_t sent_ = 0;             // bytes of inflight_ already sent
  int64_t timer_deadline_ = 0;  // steady ns; 0 = none
  int64_t heap_key_ = 0;        // deadline of this connection's entry in the timer heap; 0 = none
  uint32_t next_free_ = 0;
  sockaddr_storage peer_{};  // outgoing: address to connect to (must live until submit)
  socklen_t peer_len_ = 0;
  __kernel_timespec connect_ts_{};
};

}  // namespace sluice::engine
