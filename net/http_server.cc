#include "net/http_server.h"

#include <charconv>
#include <string>
#include <vector>

#include "engine/byte_buffer.h"
#include "net/http1_parser.h"

namespace sluice::net {

namespace {

// The plain-text body of an error answered before any handler sees the request: what to do
// about it where the status alone does not say, else the reason phrase.
std::string_view error_body(int status, char (&buf)[64]) {
  switch (status) {
    case 415:
      return "Content-Encoding is not supported: send the body as it is\n";
    case 417:
      return "the only expectation supported is 100-continue\n";
    default:
      break;
  }
  const std::string_view reason = reason_phrase(status);
  size_t n = reason.size() < sizeof buf - 1 ? reason.size() : sizeof buf - 1;
  std::memcpy(buf, reason.data(), n);
  buf[n++] = '\n';
  return {buf, n};
}

void put_error(engine::connection& conn, int status, bool close) {
  response_head head{status, "text/plain", {}, close, false, {}};
  char buf[64];
  const std::string_view b = error_body(status, buf);
  char* p = conn.prepare(response_size(head, b.size()));
  conn.commit(format_response(p, head, b));
}

}  // namespace

class http_shard_handler;

// Per-connection HTTP state. Lives as long as the shard (reused across connections in the same
// engine slot), so nothing here allocates per request after warm-up.
class http_conn final : public request_sink {
 public:
  http_conn(const http_limits& limits, request_handler* handler, status_counts* counts)
      : limits_(limits), parser_(limits), handler_(handler), counts_(counts) {
    uint32_t cap = 2;
    while (cap < limits.max_pipelined + 1)
      cap *= 2;
    mask_ = cap - 1;
    holders_ = std::make_unique<holder[]>(cap);
  }

  void open(engine::connection& c) {
    conn_ = &c;
    timer_mode_ = timer_mode::idle;
    c.set_timer(limits_.header_timeout);  // a new connection owes us a request
  }

  void closed() {
    ++gen_;
    conn_ = nullptr;
    if (write_seq_ != next_seq_) handler_->on_answers_abandoned();
    parser_.reset();
    for (uint32_t s = write_seq_; s != next_seq_ + 1; ++s)  // + 1: a held "100 Continue"
      at(s) = holder_reset();
    next_seq_ = write_seq_ = base_ = 0;
    close_after_ = draining_ = out_paused_ = false;
    waiters_ = 0;
    timer_mode_ = timer_mode::none;
  }

  void data(std::span<const char> bytes) {
    int st = parser_.feed(bytes, *this);
    if (st != 0) send_error(st);
    // Answers the client does not take (say, pipelined requests never read): stop reading
    // its requests until it has taken them.
    if (!out_paused_ && conn_ != nullptr && conn_->is_open() &&
        conn_->pending_output() > limits_.max_output_bytes) {
      out_paused_ = true;
      conn_->pause_recv();
      handler_->on_client_held();
    }
    update_timer();
  }

  // The engine handed all queued output to the kernel.
  void writable() {
    if (!out_paused_ && waiters_ == 0) return;  // the usual case: nothing was held back
    if (out_paused_) {
      out_paused_ = false;
      conn_->resume_recv();
    }
    for (uint32_t s = write_seq_; s != next_seq_ && waiters_ != 0; ++s) {
      holder& h = at(s);
      if (output_waiter* w = h.waiter) {
        h.waiter = nullptr;
        --waiters_;
        w->on_output_drained();
      }
    }
    update_timer();
  }

  void wait_drain(uint32_t seq, output_waiter* w) {
    holder& h = at(seq);
    if (h.waiter == nullptr) ++waiters_;
    h.waiter = w;
    update_timer();
  }

  [[nodiscard]] size_t queued(uint32_t seq) const {
    size_t n = conn_->pending_output();
    for (uint32_t s = write_seq_; s != seq + 1; ++s)
      n += at(s).buf.size();
    return n;
  }
  [[nodiscard]] size_t max_output() const { return limits_.max_output_bytes; }

  void eof() {
    if (write_seq_ == next_seq_) {
      conn_->close();
    } else {
      close_after_ = true;  // answer what was asked, then close
    }
  }

  void shutdown() {
    draining_ = true;
    if (write_seq_ == next_seq_ && !parser_.in_request()) conn_->close();
  }

  void timer() {
    if (timer_mode_ == timer_mode::send) {
      if (conn_->pending_output() == 0) {
        // Nothing waits on the client: what is held waits behind an earlier answer that is
        // not complete (say, a quiet stream). Not the client's fault: wait on.
        conn_->set_timer(limits_.send_timeout);
        return;
      }
      // The client took none of its queued output for send_timeout: its answers cannot be
      // delivered. Drop them (the exchanges behind them are cancelled) and the connection.
      handler_->on_client_send_timeout();
      conn_->abort();
      return;
    }
    if (timer_mode_ == timer_mode::header && parser_.in_request()) {
      parser_.reset();
      send_error(408);
      return;
    }
    if (timer_mode_ != timer_mode::none && write_seq_ == next_seq_) conn_->close();
  }

  // request_sink
  bool on_parsed(const http_request& req) override {
    timer_mode_ = timer_mode::none;  // the next request gets a fresh header timeout
    rebase();
    uint32_t seq = next_seq_++;
    holder& h = at(seq);
    if (next_seq_ - write_seq_ > limits_.max_pipelined) {
      h.close = true;
      close_after_ = true;
      response_slot(this, gen_, seq).respond(503, "text/plain", "too many pipelined requests\n");
      return false;
    }
    h.close = !req.keep_alive || draining_;
    h.http10 = req.version < 11;
    bool stop = h.close;
    if (stop) close_after_ = true;
    handler_->on_request(req, response_slot(this, gen_, seq));
    return !stop && conn_ != nullptr && conn_->is_open();
  }

  // The interim answer goes where the request's own answer will: straight out when no earlier
  // answer is owed, else held behind them in the holder its sequence number will use (free:
  // at most max_pipelined are owed, and there are more holders than that).
  void on_expect_continue() override {
    static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
    if (write_seq_ == next_seq_) {
      conn_->send(k100);
    } else {
      at(next_seq_).buf.append(k100);
    }
  }

  // ---- used by response_slot ----
  struct holder {
    engine::byte_buffer buf;          // output held until earlier answers are complete
    output_waiter* waiter = nullptr;  // when_drained()
    bool done = false;
    bool close = false;
    bool http10 = false;
    bool chunked = false;
    bool started = false;
    std::string cors_origin;  // response_slot::allow_origin (browser clients only)
    // Ready for the answer of a later request.
    void recycle() {
      done = close = chunked = started = false;
      if (!cors_origin.empty()) cors_origin.clear();
    }
  };
  static holder holder_reset() { return holder{}; }

  [[nodiscard]] bool valid(uint32_t gen, uint32_t seq) const {
    return conn_ != nullptr && gen == gen_ && seq - write_seq_ < next_seq_ - write_seq_ &&
           !at(seq).done;
  }
  // Sequence numbers grow for the connection's life (a slot names one request forever); the
  // holders are a ring indexed from base_, the first request after the connection last owed
  // nothing. Unpipelined, every request then uses the first holder, one cache line that stays
  // warm, instead of walking the whole ring (9 KiB a connection) one cold line per request.
  holder& at(uint32_t seq) { return holders_[(seq - base_) & mask_]; }
  [[nodiscard]] const holder& at(uint32_t seq) const { return holders_[(seq - base_) & mask_]; }
  // Nothing owed: every holder is recycled and none holds a "100 Continue" (it went straight
  // out, or promote() sent it when its request became the head), so the ring restarts here.
  void rebase() {
    if (write_seq_ == next_seq_) base_ = next_seq_;
  }

  // Whether the answer to seq ends the connection: asked for, or the last one owed while
  // stopping (or after the peer's EOF). Marks it so complete() closes.
  bool ends_connection(uint32_t seq) {
    holder& h = at(seq);
    if (!h.close && (draining_ || close_after_) && seq + 1 == next_seq_ && !parser_.in_request())
      h.close = true;
    return h.close;
  }

  char* prepare(uint32_t seq, size_t n) {
    return seq == write_seq_ ? conn_->prepare(n) : at(seq).buf.prepare(n);
  }
  void commit(uint32_t seq, size_t n) {
    if (seq == write_seq_) {
      conn_->commit(n);
    } else {
      at(seq).buf.commit(n);
    }
  }

  // An answer's head is being written.
  void count(int status) {
    if (counts_ != nullptr) counts_->add(status);
  }

  void complete(uint32_t seq) {
    holder& h = at(seq);
    if (h.waiter != nullptr) {
      h.waiter = nullptr;
      --waiters_;
    }
    if (seq != write_seq_) {
      h.done = true;
      return;
    }
    bool close = h.close;
    h.recycle();
    ++write_seq_;
    if (close) {
      finish_close();
      return;
    }
    promote();
  }

 private:
  enum class timer_mode : uint8_t { none, header, idle, send };

  // The head answer completed: move held answers out, in order.
  void promote() {
    while (write_seq_ != next_seq_) {
      holder& h = at(write_seq_);
      if (!h.buf.empty()) {
        conn_->send(h.buf.view());
        h.buf.clear();
      }
      if (!h.done) return;  // now the head: its further writes go straight out
      bool close = h.close;
      h.recycle();
      ++write_seq_;
      if (close) {
        finish_close();
        return;
      }
    }
    // The request being read may have a "100 Continue" held for it: it is the head now.
    if (holder& next = at(next_seq_); !next.buf.empty()) {
      conn_->send(next.buf.view());
      next.buf.clear();
    }
    if (close_after_ || draining_) {
      if (!parser_.in_request() || close_after_) conn_->close();
    }
  }

  void finish_close() {
    if (write_seq_ != next_seq_) handler_->on_answers_abandoned();
    for (uint32_t s = write_seq_; s != next_seq_; ++s)
      at(s) = holder_reset();
    waiters_ = 0;
    write_seq_ = next_seq_;
    conn_->close();
  }

  void send_error(int status) {
    close_after_ = true;
    rebase();
    uint32_t seq = next_seq_++;
    at(seq).close = true;
    char buf[64];
    response_slot(this, gen_, seq).respond(status, "text/plain", error_body(status, buf));
  }

  void update_timer() {
    if (conn_ == nullptr || !conn_->is_open()) return;
    if (out_paused_ || waiters_ != 0) {
      // Stalled on the client: it has send_timeout to take its output (from the stall's start).
      if (timer_mode_ != timer_mode::send) {
        timer_mode_ = timer_mode::send;
        conn_->set_timer(limits_.send_timeout);
      }
      return;
    }
    if (parser_.in_request()) {
      if (timer_mode_ != timer_mode::header) {
        timer_mode_ = timer_mode::header;
        conn_->set_timer(limits_.header_timeout);
      }
    } else if (write_seq_ != next_seq_) {
      timer_mode_ = timer_mode::none;  // waiting on us, not on the client
      conn_->cancel_timer();
    } else {
      timer_mode_ = timer_mode::idle;
      conn_->set_timer(limits_.idle_timeout);  // extending a deadline is O(1)
    }
  }

  const http_limits limits_;
  http1_parser parser_;
  request_handler* handler_;
  status_counts* counts_;
  engine::connection* conn_ = nullptr;
  uint32_t gen_ = 1;
  uint32_t next_seq_ = 0;   // sequence number of the next parsed request
  uint32_t write_seq_ = 0;  // the request whose answer goes straight to the socket
  uint32_t base_ = 0;       // the sequence number that uses holders_[0] (see at())
  std::unique_ptr<holder[]> holders_;
  uint32_t mask_ = 0;
  bool close_after_ = false;
  bool draining_ = false;
  bool out_paused_ = false;  // reading stopped: the client is not taking its answers
  uint32_t waiters_ = 0;     // holders with a when_drained() waiter
  timer_mode timer_mode_ = timer_mode::none;
};

// ---- response_slot ----

bool response_slot::valid() const {
  return conn_ != nullptr && conn_->valid(gen_, seq_);
}

void response_slot::allow_origin(std::string_view origin) {
  if (valid()) conn_->at(seq_).cors_origin.assign(origin);
}

void response_slot::respond(int status, std::string_view content_type, std::string_view body,
                            std::span<const http_header> extra) {
  respond_in_place(
      status, content_type, body.size(),
      [body](char* p) {
        if (!body.empty()) std::memcpy(p, body.data(), body.size());  // empty: may have no data
        return p + body.size();
      },
      extra);
}

char* response_slot::start_in_place(int status, std::string_view content_type, size_t length,
                                    std::span<const http_header> extra, char*& head) {
  if (!valid()) return nullptr;
  http_conn::holder& h = conn_->at(seq_);
  if (h.started) return nullptr;
  const bool close = conn_->ends_connection(seq_);
  const response_head rh{status, content_type, extra, close, h.http10 && !close, h.cors_origin};
  conn_->count(status);
  head = conn_->prepare(seq_, response_size(rh, length));
  return head + format_sized_head(head, rh, length);
}

void response_slot::end_in_place(char* head, char* end) {
  conn_->commit(seq_, size_t(end - head));
  conn_->complete(seq_);
}

void response_slot::begin(int status, std::string_view content_type,
                          std::span<const http_header> extra) {
  if (!valid()) return;
  http_conn::holder& h = conn_->at(seq_);
  if (h.started) return;
  h.started = true;
  h.chunked = !h.http10;
  if (h.http10) h.close = true;  // HTTP/1.0: the end of the body is the end of the connection
  response_head head{status, content_type, extra, conn_->ends_connection(seq_),
                     false,  h.cors_origin};
  conn_->count(status);
  char* p = conn_->prepare(seq_, stream_head_size(head));
  conn_->commit(seq_, format_stream_head(p, head, h.chunked));
}

void response_slot::begin_sized(int status, std::string_view content_type, uint64_t length,
                                std::span<const http_header> extra) {
  if (!valid()) return;
  http_conn::holder& h = conn_->at(seq_);
  if (h.started) return;
  h.started = true;
  h.chunked = false;
  const bool close = conn_->ends_connection(seq_);
  response_head head{status, content_type, extra, close, h.http10 && !close, h.cors_origin};
  conn_->count(status);
  char* p = conn_->prepare(seq_, response_size(head, 0));
  conn_->commit(seq_, format_sized_head(p, head, length));
}

void response_slot::write(std::string_view data) {
  if (data.empty() || !valid()) return;
  http_conn::holder& h = conn_->at(seq_);
  if (!h.started) return;
  if (!h.chunked) {
    char* p = conn_->prepare(seq_, data.size());
    std::memcpy(p, data.data(), data.size());
    conn_->commit(seq_, data.size());
    return;
  }
  char* p = conn_->prepare(seq_, 16 + 2 + data.size() + 2);
  char* q = std::to_chars(p, p + 16, data.size(), 16).ptr;
  *q++ = '\r';
  *q++ = '\n';
  std::memcpy(q, data.data(), data.size());
  q += data.size();
  *q++ = '\r';
  *q++ = '\n';
  conn_->commit(seq_, size_t(q - p));
}

void response_slot::finish() {
  if (!valid()) return;
  http_conn::holder& h = conn_->at(seq_);
  if (!h.started) return;
  if (h.chunked) {
    char* p = conn_->prepare(seq_, 5);
    std::memcpy(p, "0\r\n\r\n", 5);
    conn_->commit(seq_, 5);
  }
  conn_->complete(seq_);
}

size_t response_slot::queued() const {
  return valid() ? conn_->queued(seq_) : 0;
}

bool response_slot::congested() const {
  return valid() && conn_->queued(seq_) > conn_->max_output();
}

void response_slot::when_drained(output_waiter* w) {
  if (valid()) conn_->wait_drain(seq_, w);
}

void response_slot::abort() {
  if (!valid()) return;
  http_conn::holder& h = conn_->at(seq_);
  if (!h.started) return;
  h.close = true;
  conn_->complete(seq_);
}

// ---- the engine handler ----

class http_shard_handler final : public engine::connection_handler {
 public:
  http_shard_handler(const http_limits& limits, std::unique_ptr<request_handler> handler)
      : limits_(limits), handler_(std::move(handler)), counts_(handler_->response_counts()) {}

  void on_open(engine::connection& conn) override {
    if (conn.overloaded()) {
      if (counts_ != nullptr) counts_->add(503);
      put_error(conn, 503, true);
      conn.close();
      return;
    }
    uint32_t i = conn.index();
    if (i >= conns_.size()) conns_.resize(i + 1);
    if (!conns_[i])
      conns_[i] = std::make_unique<http_conn>(limits_, handler_.get(), counts_);  // warm-up
    conn.user = conns_[i].get();
    conns_[i]->open(conn);
  }
  void on_data(engine::connection& conn, std::span<const char> bytes) override {
    if (conn.user != nullptr) static_cast<http_conn*>(conn.user)->data(bytes);
  }
  void on_eof(engine::connection& conn) override {
    if (conn.user != nullptr) {
      static_cast<http_conn*>(conn.user)->eof();
    } else {
      conn.close();
    }
  }
  void on_writable(engine::connection& conn) override {
    if (conn.user != nullptr) static_cast<http_conn*>(conn.user)->writable();
  }
  void on_timer(engine::connection& conn) override {
    if (conn.user != nullptr) static_cast<http_conn*>(conn.user)->timer();
  }
  void on_shutdown(engine::connection& conn) override {
    if (conn.user != nullptr) {
      static_cast<http_conn*>(conn.user)->shutdown();
    } else {
      conn.close();
    }
  }
  void on_closed(engine::connection& conn) override {
    if (conn.user != nullptr) static_cast<http_conn*>(conn.user)->closed();
  }

 private:
  const http_limits limits_;
  std::unique_ptr<request_handler> handler_;
  status_counts* counts_;
  std::vector<std::unique_ptr<http_conn>> conns_;  // by engine slot index, reused
};

void apply_limits(const http_limits& limits, engine::runtime_config& config) {
  config.shard.max_connections = limits.max_connections;
}

engine::handler_factory make_http_factory(const http_limits& limits,
                                          request_handler_factory handlers) {
  return [limits, handlers = std::move(handlers)](
             engine::shard& s) -> std::unique_ptr<engine::connection_handler> {
    return std::make_unique<http_shard_handler>(limits, handlers(s));
  };
}

}  // namespace sluice::net
