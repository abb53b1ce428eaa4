#include "engine/shard.h"

#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "engine/clock.h"
#include "engine/user_data.h"

namespace sluice::engine {

namespace {

__kernel_timespec to_kts(int64_t ns) {
  __kernel_timespec t;
  t.tv_sec = ns / 1'000'000'000;
  t.tv_nsec = ns % 1'000'000'000;
  return t;
}

bool timer_after(const auto& a, const auto& b) {
  return a.deadline > b.deadline;
}

}  // namespace

// ---- connection_handler defaults ----

void connection_handler::on_eof(connection& conn) {
  conn.close();
}
void connection_handler::on_shutdown(connection& conn) {
  conn.close();
}

// ---- connection ----

void connection::mark_dirty() {
  if (!dirty_) {
    dirty_ = true;
    shard_->dirty_.push_back(this);
  }
}

void connection::close() {
  if (state_ != state::open) return;
  state_ = state::closing;
  timer_deadline_ = 0;
  if (recv_paused_) {
    recv_paused_ = false;
    if (!recv_armed_) recv_rearm_ = true;
  }
  mark_dirty();
}

void connection::pause_recv() {
  if (state_ != state::open && state_ != state::connecting) return;
  recv_paused_ = true;
  recv_rearm_ = false;
  if (recv_armed_ && !recv_cancel_) {
    recv_cancel_ = true;
    io_uring_sqe* sqe = shard_->get_sqe();
    io_uring_prep_cancel64(sqe, pack_user_data(op_kind::recv, index_, gen_), 0);
    io_uring_sqe_set_data64(sqe, pack_user_data(op_kind::ignore, 0, 0));
  }
}

void connection::resume_recv() {
  if (!recv_paused_) return;
  recv_paused_ = false;
  // Still armed (its cancel not yet completed): on_recv re-arms when it ends.
  if (state_ == state::open && !recv_armed_) {
    recv_rearm_ = true;
    mark_dirty();
  }
}

void connection::abort() {
  shard_->finalize(*this);
}

void connection::set_timer(std::chrono::nanoseconds after) {
  timer_deadline_ = shard_->now_ns_ + after.count();
  if (heap_key_ == 0 || timer_deadline_ < heap_key_) shard_->push_timer(*this);
}

// ---- shard ----

shard::shard(unsigned id, int cpu, int listen_fd, const shard_config& config)
    : id_(id), cpu_(cpu), listen_fd_(listen_fd), config_(config) {}

shard::~shard() {
  if (slots_) {
    for (uint32_t i = 0; i < slot_count_; ++i) {
      if (slots_[i].fd_ >= 0) ::close(slots_[i].fd_);
    }
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (ring_ok_) io_uring_queue_exit(&ring_);
}

status shard::init() {
  if (cpu_ >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu_, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  }
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  p.cq_entries = config_.cq_entries;
  int rc = io_uring_queue_init_params(config_.sq_entries, &ring_, &p);
  if (rc < 0) {
    return status::error(std::string("io_uring_queue_init failed: ") + strerror(-rc) +
                         " (kernel lacks io_uring?)");
  }
  ring_ok_ = true;
  std::string err = buffers_.init(&ring_, 0, config_.buffer_count, config_.buffer_size);
  if (!err.empty()) return status::error(err);
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) return status::error(std::string("eventfd: ") + strerror(errno));

  slot_count_ = config_.max_connections + config_.overload_reserve + config_.max_outgoing;
  if (slot_count_ >= kMaxSlots) return status::error("too many connection slots");
  slots_ = std::make_unique<connection[]>(slot_count_);
  for (uint32_t i = 0; i < slot_count_; ++i) {
    slots_[i].shard_ = this;
    slots_[i].index_ = i;
    slots_[i].next_free_ = i + 2 <= slot_count_ ? i + 2 : 0;
  }
  free_head_ = slot_count_ != 0 ? 1 : 0;
  dirty_.reserve(1024);
  timers_.reserve(1024);
  update_now();
  return {};
}

void shard::update_now() {
  now_ns_ = steady_ns();
  wall_ns_ = engine::wall_ns();
}

io_uring_sqe* shard::get_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    // SQ full within one batch (rare): submit what we have to make room.
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void shard::wake() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void shard::request_stop(std::chrono::steady_clock::time_point deadline) {
  int64_t ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
  stop_deadline_.store(ns > 0 ? ns : 1, std::memory_order_release);
  wake();
}

void shard::arm_accept() {
  if (listen_fd_ < 0 || accept_armed_) return;
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_multishot_accept(sqe, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, pack_user_data(op_kind::accept, 0, 0));
  accept_armed_ = true;
}

void shard::arm_wake() {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof wake_value_, 0);
  io_uring_sqe_set_data64(sqe, pack_user_data(op_kind::wake, 0, 0));
}

void shard::arm_recv(connection& c) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_recv_multishot(sqe, c.fd_, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffers_.group();
  io_uring_sqe_set_data64(sqe, pack_user_data(op_kind::recv, c.index_, c.gen_));
  c.recv_armed_ = true;
  c.recv_rearm_ = false;
}

connection* shard::alloc_slot() {
  if (free_head_ == 0) return nullptr;
  connection& c = slots_[free_head_ - 1];
  free_head_ = c.next_free_;
  c.next_free_ = 0;
  ++c.gen_;
  ++live_;
  return &c;
}

void shard::release_slot(connection& c) {
  c.state_ = connection::state::free;
  c.fd_ = -1;
  c.handler_ = nullptr;
  c.user = nullptr;
  c.overloaded_ = c.outgoing_ = c.dirty_ = false;
  c.recv_armed_ = c.recv_rearm_ = c.send_inflight_ = c.connect_inflight_ = false;
  c.recv_paused_ = c.recv_cancel_ = false;
  c.shut_wr_ = c.counted_overloaded_ = false;
  c.out_.clear();
  c.inflight_.clear();
  c.sent_ = 0;
  c.timer_deadline_ = 0;
  c.heap_key_ = 0;
  ++c.gen_;  // stale completions and timer entries no longer match
  c.next_free_ = free_head_;
  free_head_ = c.index_ + 1;
  --live_;
}

void shard::push_timer(connection& c) {
  c.heap_key_ = c.timer_deadline_;
  timers_.push_back({c.timer_deadline_, c.index_, c.gen_});
  std::push_heap(timers_.begin(), timers_.end(), timer_after<timer_entry, timer_entry>);
}

void shard::call_at(int64_t deadline_ns, deadline_client* client) {
  deadlines_.push_back({deadline_ns, client});
  std::push_heap(deadlines_.begin(), deadlines_.end(), timer_after<deadline_entry, deadline_entry>);
}

connection* shard::connect(const sockaddr* addr, socklen_t len, std::chrono::nanoseconds timeout,
                           connection_handler* handler) {
  if (outgoing_live_ >= config_.max_outgoing || draining_ || len > sizeof(sockaddr_storage)) {
    errno = EAGAIN;
    return nullptr;
  }
  int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return nullptr;
  connection* c = take_outgoing(fd, handler, connection::state::connecting);
  if (c == nullptr) return nullptr;
  std::memcpy(&c->peer_, addr, len);
  c->peer_len_ = len;
  c->connect_ts_ = to_kts(timeout.count());
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_connect(sqe, fd, reinterpret_cast<sockaddr*>(&c->peer_), len);
  io_uring_sqe_set_data64(sqe, pack_user_data(op_kind::connect, c->index_, c->gen_));
  sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe* t = get_sqe();
  io_uring_prep_link_timeout(t, &c->connect_ts_, 0);
  io_uring_sqe_set_data64(t, pack_user_data(op_kind::ignore, 0, 0));
  c->connect_inflight_ = true;
  return c;
}

connection* shard::adopt(int fd, connection_handler* handler) {
  if (outgoing_live_ >= config_.max_outgoing || draining_) {
    ::close(fd);
    errno = EAGAIN;
    return nullptr;
  }
  connection* c = take_outgoing(fd, handler, connection::state::open);
  if (c != nullptr) arm_recv(*c);
  return c;
}

connection* shard::take_outgoing(int fd, connection_handler* handler, connection::state st) {
  connection* c = alloc_slot();
  if (c == nullptr) {
    ::close(fd);
    errno = EAGAIN;
    return nullptr;
  }
  ++outgoing_live_;
  c->fd_ = fd;
  c->handler_ = handler;
  c->outgoing_ = true;
  c->state_ = st;
  return c;
}

void shard::run() {
  arm_accept();
  arm_wake();
  for (;;) {
    // One submit per iteration; with DEFER_TASKRUN this is also where completions are reaped.
    io_uring_submit_and_wait(&ring_, loop_again_ ? 0 : 1);
    loop_again_ = false;
    iterations_.store(iterations_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    update_now();
    handle_cqes();
    buffers_.publish();
    if (!draining_ && stop_deadline_.load(std::memory_order_acquire) != 0) begin_drain();
    run_timers();
    if (loop_hook_) loop_hook_();
    flush_dirty();
    if (draining_) {
      if (live_ == 0 && !accept_armed_) break;
      if (now_ns_ >= drain_deadline_) {
        // Deadline passed: close what is left without waiting for the kernel.
        for (uint32_t i = 0; i < slot_count_; ++i) {
          connection& c = slots_[i];
          if (c.state_ == connection::state::free) continue;
          if (c.fd_ >= 0) ::close(c.fd_);
          c.fd_ = -1;
          if (c.handler_ != nullptr) c.handler_->on_closed(c);
          c.state_ = connection::state::free;
        }
        break;
      }
    }
    arm_timer_if_needed();
  }
  // Tear the ring down here, on its thread: cancels the accept (the listener is then really
  // closed) and everything still in flight.
  io_uring_queue_exit(&ring_);
  ring_ok_ = false;
}

void shard::begin_drain() {
  draining_ = true;
  drain_deadline_ = stop_deadline_.load(std::memory_order_acquire);
  if (accept_armed_) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel64(sqe, pack_user_data(op_kind::accept, 0, 0), 0);
    io_uring_sqe_set_data64(sqe, pack_user_data(op_kind::ignore, 0, 0));
  }
  if (listen_fd_ >= 0) {
    // shutdown stops listening at once (new connects are refused, the armed accept ends);
    // close alone would not: the armed accept holds its own file reference.
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
  for (uint32_t i = 0; i < slot_count_; ++i) {
    connection& c = slots_[i];
    if (c.state_ == connection::state::open && c.handler_ != nullptr) {
      c.handler_->on_shutdown(c);
    } else if (c.state_ == connection::state::closing && c.shut_wr_) {
      finalize(c);  // lingering for a peer's FIN: not while stopping
    }
  }
}

const connection* shard::slot_of(const io_uring_cqe& cqe) const {
  const op_kind k = user_data_kind(cqe.user_data);
  if (k != op_kind::recv && k != op_kind::send && k != op_kind::connect) return nullptr;
  return &slots_[user_data_index(cqe.user_data)];
}

void shard::handle_cqes() {
  // A batch holds tens of completions under load, each for a connection whose state went
  // cold since its last request. Two completions ahead the slot is prefetched; one ahead,
  // the first two cache lines of the handler's state behind it (conn.user, read from the
  // slot fetched the step before), so those misses overlap the work on the completion
  // handled now instead of stalling it.
  const io_uring_cqe* cqes = ring_.cq.cqes;
  const unsigned mask = ring_.cq.ring_mask;
  const unsigned head = *ring_.cq.khead;
  const unsigned tail = io_uring_smp_load_acquire(ring_.cq.ktail);
  for (unsigned h = head; h != tail; ++h) {
    if (tail - h > 2) {
      if (const connection* c = slot_of(cqes[(h + 2) & mask])) __builtin_prefetch(c);
    }
    if (tail - h > 1) {
      const connection* c = slot_of(cqes[(h + 1) & mask]);
      if (c != nullptr && c->user != nullptr) {
        __builtin_prefetch(c->user);
        __builtin_prefetch(static_cast<const char*>(c->user) + 64);
      }
    }
    handle_cqe(&cqes[h & mask]);
  }
  io_uring_cq_advance(&ring_, tail - head);
}

void shard::handle_cqe(const io_uring_cqe* cqe) {
  uint64_t ud = cqe->user_data;
  switch (user_data_kind(ud)) {
    case op_kind::accept:
      on_accept(cqe);
      return;
    case op_kind::accept_retry:
      accept_retry_ = false;
      if (!draining_) arm_accept();
      return;
    case op_kind::wake:
      if (wake_fd_ >= 0) arm_wake();
      return;
    case op_kind::timer:
      if (user_data_gen(ud) == armed_gen_) armed_deadline_ = 0;
      return;
    case op_kind::recv:
    case op_kind::send:
    case op_kind::connect: {
      connection& c = slots_[user_data_index(ud)];
      if (c.gen_ != user_data_gen(ud) || c.state_ == connection::state::free) {
        // Stale completion for a reused slot: only give back its buffer.
        if (cqe->flags & IORING_CQE_F_BUFFER)
          buffers_.recycle(uint16_t(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
        return;
      }
      if (user_data_kind(ud) == op_kind::recv) {
        on_recv(c, cqe);
      } else if (user_data_kind(ud) == op_kind::send) {
        on_send(c, cqe);
      } else {
        on_connect(c, cqe);
      }
      // A finalizing slot is released once its last operation has completed.
      if (c.state_ == connection::state::finalizing) c.mark_dirty();
      return;
    }
    case op_kind::none:
    case op_kind::ignore:
      return;
  }
}

void shard::on_accept(const io_uring_cqe* cqe) {
  if (!(cqe->flags & IORING_CQE_F_MORE)) accept_armed_ = false;
  int fd = cqe->res;
  if (fd < 0) {
    if (!draining_ && !accept_armed_ && !accept_retry_) {
      if (fd == -EMFILE || fd == -ENFILE || fd == -ENOMEM || fd == -ENOBUFS) {
        // Out of descriptors: retry in 100 ms rather than spin.
        accept_retry_ = true;
        accept_retry_ts_ = to_kts(100'000'000);
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_timeout(sqe, &accept_retry_ts_, 0, 0);
        io_uring_sqe_set_data64(sqe, pack_user_data(op_kind::accept_retry, 0, 0));
      } else {
        arm_accept();
      }
    }
    return;
  }
  if (!accept_armed_ && !draining_) arm_accept();
  if (draining_ || handler_ == nullptr) {
    ::close(fd);
    return;
  }
  const uint32_t live = accepted_live_.load(std::memory_order_relaxed);
  bool over = live >= config_.max_connections;
  if (over && overloaded_live_ >= config_.overload_reserve) {
    ::close(fd);
    return;
  }
  connection* c = alloc_slot();
  if (c == nullptr) {
    ::close(fd);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->fd_ = fd;
  c->handler_ = handler_.get();
  c->state_ = connection::state::open;
  c->overloaded_ = over;
  c->counted_overloaded_ = over;
  if (over) {
    ++overloaded_live_;
  } else {
    accepted_live_.store(live + 1, std::memory_order_relaxed);
  }
  arm_recv(*c);
  c->handler_->on_open(*c);
}

void shard::on_recv(connection& c, const io_uring_cqe* cqe) {
  if (!(cqe->flags & IORING_CQE_F_MORE)) c.recv_armed_ = c.recv_cancel_ = false;
  int res = cqe->res;
  if (res > 0) {
    auto bid = uint16_t(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    if (c.state_ == connection::state::open) {
      c.handler_->on_data(c, std::span<const char>(buffers_.buffer(bid), size_t(res)));
    }
    // closing: input is discarded until the peer's FIN.
    buffers_.recycle(bid);
    if (!c.recv_armed_ && !c.recv_paused_ &&
        (c.state_ == connection::state::open || c.state_ == connection::state::closing)) {
      c.recv_rearm_ = true;
      c.mark_dirty();
    }
    if (c.state_ == connection::state::finalizing) c.mark_dirty();
    return;
  }
  if (res == -ENOBUFS) {
    // The ring ran dry: re-arm after this batch's buffers are published.
    if (!c.recv_paused_ &&
        (c.state_ == connection::state::open || c.state_ == connection::state::closing)) {
      c.recv_rearm_ = true;
    }
    c.mark_dirty();
    return;
  }
  if (res == -ECANCELED &&
      (c.state_ == connection::state::open || c.state_ == connection::state::closing)) {
    // pause_recv()'s cancel. Resumed since (or closing): receive again.
    if (!c.recv_paused_) c.recv_rearm_ = true;
    c.mark_dirty();
    return;
  }
  if (res == 0 && c.state_ == connection::state::open) {
    c.handler_->on_eof(c);
    if (c.state_ == connection::state::open) c.mark_dirty();
    return;
  }
  // Error, or FIN while closing: done.
  finalize(c);
}

void shard::on_send(connection& c, const io_uring_cqe* cqe) {
  c.send_inflight_ = false;
  int res = cqe->res;
  if (res < 0) {
    finalize(c);
    return;
  }
  c.sent_ += size_t(res);
  c.mark_dirty();
  if (c.sent_ >= c.inflight_.size() && c.out_.empty() && c.state_ == connection::state::open) {
    c.handler_->on_writable(c);
  }
}

void shard::on_connect(connection& c, const io_uring_cqe* cqe) {
  c.connect_inflight_ = false;
  int res = cqe->res;
  if (c.state_ != connection::state::connecting) {
    c.mark_dirty();
    return;
  }
  if (res < 0) {
    c.state_ = connection::state::open;  // lets finalize run normally
    if (c.handler_ != nullptr) c.handler_->on_connected(c, res == -ECANCELED ? -ETIMEDOUT : res);
    finalize(c);
    return;
  }
  int one = 1;
  setsockopt(c.fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c.state_ = connection::state::open;
  if (!c.recv_paused_) arm_recv(c);
  if (c.handler_ != nullptr) c.handler_->on_connected(c, 0);
}

void shard::finalize(connection& c) {
  if (c.state_ == connection::state::finalizing || c.state_ == connection::state::free) return;
  c.state_ = connection::state::finalizing;
  c.timer_deadline_ = 0;
  if (c.fd_ >= 0) ::shutdown(c.fd_, SHUT_RDWR);  // completes pending recv/send promptly
  if (c.recv_armed_) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel64(sqe, pack_user_data(op_kind::recv, c.index_, c.gen_), 0);
    io_uring_sqe_set_data64(sqe, pack_user_data(op_kind::ignore, 0, 0));
  }
  c.mark_dirty();  // released from flush_dirty, never from inside a handler call
}

void shard::maybe_release(connection& c) {
  if (c.recv_armed_ || c.send_inflight_ || c.connect_inflight_) return;
  if (c.fd_ >= 0) ::close(c.fd_);
  c.fd_ = -1;
  if (c.handler_ != nullptr) c.handler_->on_closed(c);
  if (c.outgoing_) {
    --outgoing_live_;
  } else if (c.counted_overloaded_) {
    --overloaded_live_;
  } else {
    accepted_live_.store(accepted_live_.load(std::memory_order_relaxed) - 1,
                         std::memory_order_relaxed);
  }
  release_slot(c);
}

void shard::flush(connection& c) {
  using st = connection::state;
  if (c.state_ == st::finalizing) {
    maybe_release(c);
    return;
  }
  if (c.state_ != st::open && c.state_ != st::closing) return;
  if (c.recv_rearm_ && !c.recv_armed_) arm_recv(c);
  if (c.send_inflight_) return;
  if (c.sent_ >= c.inflight_.size()) {
    c.inflight_.clear();
    c.sent_ = 0;
    if (!c.out_.empty()) c.out_.swap(c.inflight_);
  }
  if (c.sent_ < c.inflight_.size()) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_send(sqe, c.fd_, c.inflight_.data() + c.sent_, c.inflight_.size() - c.sent_,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, pack_user_data(op_kind::send, c.index_, c.gen_));
    c.send_inflight_ = true;
    return;
  }
  if (c.state_ == st::closing && !c.shut_wr_) {
    // Output flushed: send our FIN, then wait (bounded) for the peer's.
    ::shutdown(c.fd_, SHUT_WR);
    c.shut_wr_ = true;
    if (draining_) {
      finalize(c);  // stopping: do not wait for idle keep-alive peers to close
      return;
    }
    c.timer_deadline_ = now_ns_ + std::chrono::nanoseconds(config_.linger).count();
    if (c.heap_key_ == 0 || c.timer_deadline_ < c.heap_key_) push_timer(c);
    if (!c.recv_armed_ && !c.recv_rearm_) finalize(c);  // peer already closed
  }
}

void shard::flush_dirty() {
  // flush() may append (finalize marks dirty again): iterate by index.
  for (size_t i = 0; i < dirty_.size(); ++i) {
    connection* c = dirty_[i];
    c->dirty_ = false;
    flush(*c);
  }
  dirty_.clear();
}

void shard::run_timers() {
  while (!timers_.empty() && timers_.front().deadline <= now_ns_) {
    std::pop_heap(timers_.begin(), timers_.end(), timer_after<timer_entry, timer_entry>);
    timer_entry e = timers_.back();
    timers_.pop_back();
    connection& c = slots_[e.index];
    if (c.gen_ != e.gen || c.heap_key_ != e.deadline) continue;  // stale entry
    c.heap_key_ = 0;
    if (c.timer_deadline_ == 0) continue;
    if (c.timer_deadline_ > now_ns_) {
      push_timer(c);  // deadline was extended: re-queue (extending is O(1))
      continue;
    }
    c.timer_deadline_ = 0;
    if (c.state_ == connection::state::open) {
      c.handler_->on_timer(c);
    } else if (c.state_ == connection::state::closing) {
      finalize(c);  // linger time is up
    }
  }
  while (!deadlines_.empty() && deadlines_.front().deadline <= now_ns_) {
    std::pop_heap(deadlines_.begin(), deadlines_.end(),
                  timer_after<deadline_entry, deadline_entry>);
    deadline_client* client = deadlines_.back().client;
    deadlines_.pop_back();
    client->on_deadline();  // may call_at again
  }
}

void shard::arm_timer_if_needed() {
  int64_t next = timers_.empty() ? 0 : timers_.front().deadline;
  if (!deadlines_.empty() && (next == 0 || deadlines_.front().deadline < next))
    next = deadlines_.front().deadline;
  if (draining_ && (next == 0 || drain_deadline_ < next)) next = drain_deadline_;
  if (next == 0) return;
  if (armed_deadline_ != 0 && armed_deadline_ <= next) return;
  // A later armed timeout still fires once and is ignored: at most a few are pending.
  ++armed_gen_;
  armed_deadline_ = next;
  armed_ts_ = to_kts(next);
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_timeout(sqe, &armed_ts_, 0, IORING_TIMEOUT_ABS);
  io_uring_sqe_set_data64(sqe, pack_user_data(op_kind::timer, 0, armed_gen_));
}

}  // namespace sluice::engine
