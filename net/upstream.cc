#include "net/upstream.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "engine/byte_buffer.h"
#include "net/http1_response_parser.h"

namespace sluice::net {

namespace {

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c;
}

// ASCII case-insensitive equality; b is lower case.
bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != b[i]) return false;
  }
  return true;
}

bool istarts_with(std::string_view a, std::string_view prefix) {
  return a.size() >= prefix.size() && iequal(a.substr(0, prefix.size()), prefix);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// Whether a header named `name` is listed in a Connection header's tokens (RFC 9110 7.6.1).
bool named_by_connection(std::string_view name, std::span<const http_header> headers) {
  for (const http_header& h : headers) {
    if (!iequal(h.name, "connection")) continue;
    std::string_view v = h.value;
    while (!v.empty()) {
      size_t comma = v.find(',');
      std::string_view token = trim(v.substr(0, comma));
      if (token.size() == name.size()) {
        bool same = true;
        for (size_t i = 0; i < token.size() && same; ++i)
          same = lower(token[i]) == lower(name[i]);
        if (same) return true;
      }
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return false;
}

// Hop-by-hop headers (RFC 9110 7.6.1) and the ones the pool writes itself. `connection`: the
// request has a Connection header (only then can it name others).
bool forwardable(const http_header& h, std::span<const http_header> all, bool connection) {
  return forwardable_header(h) && (!connection || !named_by_connection(h.name, all));
}

bool method_has_body(std::string_view m) {
  return m == "POST" || m == "PUT" || m == "PATCH";
}

char* put(char* p, std::string_view s) {
  if (!s.empty()) std::memcpy(p, s.data(), s.size());  // an empty view may have no data
  return p + s.size();
}

constexpr std::string_view kVersion = " HTTP/1.1\r\nHost: ";
constexpr std::string_view kContentLength = "Content-Length: ";
constexpr std::string_view kKeepAlive = "Connection: keep-alive\r\n\r\n";

// Formats the request into out (cleared first). Does not allocate once out has grown.
void format_request(engine::byte_buffer& out, const upstream_target& t,
                    const upstream_request& req) {
  bool with_length = !req.body.empty() || method_has_body(req.method);
  size_t n = req.method.size() + 1 + t.path.size() + kVersion.size() + t.host_header.size() + 2;
  bool connection = false;
  for (const http_header& h : req.headers) {
    n += h.name.size() + 2 + h.value.size() + 2;
    connection = connection || (!req.vetted && iequal(h.name, "connection"));
  }
  n += kContentLength.size() + 20 + 2 + kKeepAlive.size() + req.body.size();
  out.clear();
  char* start = out.prepare(n);
  char* p = put(start, req.method);
  *p++ = ' ';
  p = put(p, t.path);
  p = put(p, kVersion);
  p = put(p, t.host_header);
  p = put(p, "\r\n");
  for (const http_header& h : req.headers) {
    if (!req.vetted && !forwardable(h, req.headers, connection)) continue;
    p = put(p, h.name);
    p = put(p, ": ");
    p = put(p, h.value);
    p = put(p, "\r\n");
  }
  if (with_length) {
    p = put(p, kContentLength);
    p = std::to_chars(p, p + 20, req.body.size()).ptr;
    p = put(p, "\r\n");
  }
  p = put(p, kKeepAlive);
  if (!req.body.empty()) p = put(p, req.body);
  out.commit(size_t(p - start));
}

const char* errno_text(int e) {
  return e == 0 ? "unknown error" : strerror(e);
}

}  // namespace

bool forwardable_header(const http_header& h) {
  std::string_view n = h.name;
  if (n.empty() || has_cr_or_lf(n) || has_cr_or_lf(h.value)) return false;
  return !(iequal(n, "connection") || iequal(n, "keep-alive") || iequal(n, "transfer-encoding") ||
           iequal(n, "te") || iequal(n, "trailer") || iequal(n, "upgrade") || iequal(n, "host") ||
           iequal(n, "content-length") || istarts_with(n, "proxy-"));
}

std::string_view to_string(upstream_error e) {
  switch (e) {
    case upstream_error::connect_failed:
      return "connect_failed";
    case upstream_error::connect_timeout:
      return "connect_timeout";
    case upstream_error::response_timeout:
      return "response_timeout";
    case upstream_error::reset:
      return "reset";
    case upstream_error::bad_response:
      return "bad_response";
    case upstream_error::pool_exhausted:
      return "pool_exhausted";
    case upstream_error::shutting_down:
      return "shutting_down";
  }
  return "unknown";
}

// ---- URL ----

bool parse_upstream_url(std::string_view url, upstream_target& out, std::string& error) {
  // Built with append: GCC 12 at -O3 warns falsely (-Wrestrict) on "'" + std::string(url).
  std::string quoted;
  quoted.reserve(url.size() + 2);
  quoted.append(1, '\'').append(url).append(1, '\'');
  if (istarts_with(url, "https://")) {
    error = "upstream URL " + quoted +
            ": https is not supported yet; use http:// (e.g. behind a local TLS-terminating proxy)";
    return false;
  }
  if (!istarts_with(url, "http://")) {
    error = "upstream URL " + quoted + ": expected http://HOST:PORT/PATH";
    return false;
  }
  std::string_view rest = url.substr(7);
  size_t hash = rest.find('#');
  if (hash != std::string_view::npos) rest = rest.substr(0, hash);
  size_t auth_end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, auth_end);
  std::string_view path = auth_end == std::string_view::npos ? "" : rest.substr(auth_end);
  if (authority.empty()) {
    error = "upstream URL " + quoted + ": no host";
    return false;
  }
  if (authority.find('@') != std::string_view::npos) {
    error = "upstream URL " + quoted + ": user info (user@host) is not supported";
    return false;
  }
  for (char c : path) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      error = "upstream URL " + quoted + ": the path holds a space or control character";
      return false;
    }
  }
  std::string_view host;
  std::string_view port_text;
  bool v6 = false;
  if (authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "upstream URL " + quoted + ": unterminated IPv6 literal";
      return false;
    }
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        error = "upstream URL " + quoted + ": expected ':PORT' after the IPv6 literal";
        return false;
      }
      port_text = after.substr(1);
    }
    v6 = true;
  } else {
    size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (host.empty()) {
    error = "upstream URL " + quoted + ": no host";
    return false;
  }
  unsigned port = 80;
  if (!port_text.empty() || authority.back() == ':') {
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
        port == 0 || port > 65535) {
      error = "upstream URL " + quoted + ": the port must be a number from 1 to 65535";
      return false;
    }
  }

  upstream_target t;
  std::string host_s(host);
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&t.addr);
    if (inet_pton(AF_INET6, host_s.c_str(), &a->sin6_addr) != 1) {
      error = "upstream URL " + quoted + ": '" + host_s + "' is not an IPv6 address";
      return false;
    }
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(uint16_t(port));
    t.addr_len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&t.addr);
    if (inet_pton(AF_INET, host_s.c_str(), &a->sin_addr) == 1) {
      a->sin_family = AF_INET;
      a->sin_port = htons(uint16_t(port));
      t.addr_len = sizeof(sockaddr_in);
    } else {
      // A name: resolved once, now (start-up), to its first address.
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      int rc = getaddrinfo(host_s.c_str(), nullptr, &hints, &res);
      if (rc != 0 || res == nullptr) {
        error = "upstream URL " + quoted + ": cannot resolve '" + host_s +
                "': " + (rc != 0 ? gai_strerror(rc) : "no address");
        return false;
      }
      std::memcpy(&t.addr, res->ai_addr, res->ai_addrlen);
      t.addr_len = socklen_t(res->ai_addrlen);
      freeaddrinfo(res);
      if (t.addr.ss_family == AF_INET6) {
        reinterpret_cast<sockaddr_in6*>(&t.addr)->sin6_port = htons(uint16_t(port));
      } else {
        reinterpret_cast<sockaddr_in*>(&t.addr)->sin_port = htons(uint16_t(port));
      }
    }
  }
  t.host_header = std::string(authority);
  if (path.empty()) {
    t.path = "/";
  } else if (path.front() == '?') {
    t.path = "/" + std::string(path);
  } else {
    t.path = std::string(path);
  }
  out = std::move(t);
  return true;
}

// ---- pool state ----

// One exchange in flight. Kept apart from the connection: a retry moves it to a new one.
struct upstream_pool::pending {
  upstream_exchange* ex = nullptr;
  conn_state* conn = nullptr;
  engine::byte_buffer request;  // formatted once; kept for the one retry
  int64_t deadline_ns = 0;      // response head due (steady ns)
  uint32_t index = 0;
  uint32_t gen = 1;
  bool active = false;
  bool retried = false;
  bool head_request = false;
  bool head_seen = false;
  bool stream = false;   // upstream_request::stream
  bool waiting = false;  // queued for a connection (wait_prev/wait_next link the queue)
  pending* wait_prev = nullptr;
  pending* wait_next = nullptr;

  [[nodiscard]] uint64_t handle() const { return (uint64_t(gen) << 32) | (uint64_t(index) + 1); }
};

// One upstream connection (reused across engine connections: the parser is allocated once).
struct upstream_pool::conn_state final : response_sink {
  enum class phase : uint8_t { connecting, busy, idle, dead };

  explicit conn_state(upstream_pool* owner) : pool(owner) {}

  bool on_response_head(const http_response& head) override {
    return pool->deliver_head(this, head);
  }
  bool on_response_body(std::string_view bytes) override { return pool->deliver_body(this, bytes); }

  upstream_pool* pool;
  engine::connection* conn = nullptr;
  pending* p = nullptr;
  http1_response_parser parser;
  conn_state* prev = nullptr;  // idle list
  conn_state* next = nullptr;
  phase ph = phase::dead;
  bool reused = false;               // a response completed on it before (keep-alive)
  bool keep_alive = false;           // the current response allows reuse
  bool timeout_is_response = false;  // the connect timeout is the response deadline
  bool stream = false;  // carries a stream: counted in streams_count_ while connecting or busy
};

upstream_pool::upstream_pool(engine::shard& shard, upstream_target target, upstream_options options)
    : shard_(shard), target_(std::move(target)), options_(options) {}

upstream_pool::~upstream_pool() = default;

upstream_pool::pending* upstream_pool::alloc_pending() {
  pending* p;
  if (!free_pendings_.empty()) {
    p = pendings_[free_pendings_.back()].get();
    free_pendings_.pop_back();
  } else {
    pendings_.push_back(std::make_unique<pending>());  // warm-up only
    p = pendings_.back().get();
    p->index = uint32_t(pendings_.size() - 1);
  }
  p->active = true;
  p->retried = p->head_seen = p->head_request = p->stream = false;
  p->conn = nullptr;
  return p;
}

void upstream_pool::free_pending(pending* p) {
  if (p->waiting) dequeue(p);
  p->active = false;
  p->ex = nullptr;
  p->conn = nullptr;
  if (++p->gen == 0) p->gen = 1;  // stale handles no longer match
  free_pendings_.push_back(p->index);
}

upstream_pool::conn_state* upstream_pool::alloc_conn() {
  if (!free_conns_.empty()) {
    conn_state* cs = free_conns_.back();
    free_conns_.pop_back();
    return cs;
  }
  conns_.push_back(std::make_unique<conn_state>(this));  // warm-up only
  return conns_.back().get();
}

int64_t upstream_pool::remaining_ns(const pending* p) const {
  return p->deadline_ns - shard_.now_ns();
}

void upstream_pool::set_phase(conn_state* cs, int ph) {
  using phase = conn_state::phase;
  auto to = phase(ph);
  if (cs->ph == to) return;
  if (cs->ph == phase::connecting || cs->ph == phase::busy) {
    --(cs->stream ? streams_count_ : busy_count_);
  } else if (cs->ph == phase::idle) {
    --idle_count_;
    if (cs->prev != nullptr) {
      cs->prev->next = cs->next;
    } else {
      idle_head_ = cs->next;
    }
    if (cs->next != nullptr) cs->next->prev = cs->prev;
    cs->prev = cs->next = nullptr;
  }
  cs->ph = to;
  if (to == phase::connecting || to == phase::busy) {
    ++(cs->stream ? streams_count_ : busy_count_);
  } else if (to == phase::idle) {
    ++idle_count_;
    cs->prev = nullptr;
    cs->next = idle_head_;
    if (idle_head_ != nullptr) idle_head_->prev = cs;
    idle_head_ = cs;
  }
}

void upstream_pool::retire(conn_state* cs, bool graceful) {
  set_phase(cs, int(conn_state::phase::dead));
  if (cs->conn == nullptr) return;
  if (graceful) {
    cs->conn->close();
  } else {
    cs->conn->abort();
  }
}

void upstream_pool::count(upstream_error e) {
  switch (e) {
    case upstream_error::connect_timeout:
      ++counters_.timeouts;
      ++counters_.connect_failures;
      break;
    case upstream_error::connect_failed:
      ++counters_.connect_failures;
      break;
    case upstream_error::response_timeout:
      ++counters_.timeouts;
      break;
    case upstream_error::reset:
      ++counters_.resets;
      break;
    case upstream_error::bad_response:
      ++counters_.bad_responses;
      break;
    case upstream_error::pool_exhausted:
      ++counters_.exhausted;
      break;
    case upstream_error::shutting_down:
      break;
  }
}

void upstream_pool::fail(pending* p, upstream_error e, std::string_view detail) {
  upstream_exchange* ex = p->ex;
  if (p->conn != nullptr && p->conn->p == p) p->conn->p = nullptr;
  free_pending(p);
  count(e);
  if (ex != nullptr) ex->on_error(e, detail);  // last: it may call back into the pool
}

// shard::connect refused (errno e): out of outgoing slots (EAGAIN) is exhaustion too.
void upstream_pool::fail_connect(pending* p, int e) {
  if (e == EAGAIN) {
    fail(p, upstream_error::pool_exhausted, "no outgoing connection slot left on this shard");
  } else {
    fail(p, upstream_error::connect_failed, errno_text(e));
  }
}

// ---- starting exchanges ----

uint64_t upstream_pool::send(const upstream_request& req, upstream_exchange* ex) {
  ++counters_.requests;
  if (shutting_down_ || draining_) {
    ex->on_error(upstream_error::shutting_down, "upstream pool is shutting down");
    return 0;
  }
  if (req.stream && streams_count_ >= options_.max_streams) {
    count(upstream_error::pool_exhausted);
    ex->on_error(upstream_error::pool_exhausted,
                 "this shard already carries its maximum of upstream streams");
    return 0;
  }
  const bool full =
      !req.stream && idle_head_ == nullptr && busy_count_ + idle_count_ >= options_.max_connections;
  if (full && waiting_count_ >= options_.max_waiting) {
    count(upstream_error::pool_exhausted);
    ex->on_error(upstream_error::pool_exhausted,
                 "all upstream connections of this shard are busy and the wait queue is full");
    return 0;
  }
  pending* p = alloc_pending();
  p->ex = ex;
  p->head_request = req.method == "HEAD";
  p->stream = req.stream;
  p->deadline_ns = shard_.now_ns() + std::chrono::nanoseconds(options_.response_timeout).count();
  format_request(p->request, target_, req);
  uint64_t handle = p->handle();
  if (conn_state* cs = idle_head_; cs != nullptr) {
    ++counters_.reused;
    cs->stream = p->stream;  // before set_phase: it says which count the connection joins
    set_phase(cs, int(conn_state::phase::busy));
    start_on(cs, p);
    return handle;
  }
  if (full) {
    ++counters_.waited;
    enqueue(p);
    return handle;
  }
  if (!connect_for(p)) {
    fail_connect(p, errno);
    return 0;
  }
  return handle;
}

bool upstream_pool::connect_for(pending* p) {
  int64_t left = std::max<int64_t>(remaining_ns(p), 1'000'000);
  int64_t connect_ns = std::chrono::nanoseconds(options_.connect_timeout).count();
  conn_state* cs = alloc_conn();
  cs->timeout_is_response = left <= connect_ns;
  engine::connection* c =
      shard_.connect(reinterpret_cast<const sockaddr*>(&target_.addr), target_.addr_len,
                     std::chrono::nanoseconds(std::min(left, connect_ns)), this);
  ++counters_.connects;
  if (c == nullptr) {
    int e = errno;
    free_conns_.push_back(cs);
    errno = e;
    return false;
  }
  cs->conn = c;
  c->user = cs;
  cs->p = p;
  p->conn = cs;
  cs->reused = false;
  cs->keep_alive = false;
  cs->stream = p->stream;
  set_phase(cs, int(conn_state::phase::connecting));
  return true;
}

// cs is busy and open: send p's request on it. The request was formatted in send(); this is
// one copy into the connection's output (the engine sends it after the completion batch).
void upstream_pool::start_on(conn_state* cs, pending* p) {
  cs->p = p;
  p->conn = cs;
  cs->keep_alive = false;
  cs->parser.reset(p->head_request);
  cs->conn->send(p->request.view());
  // response_timeout runs until the head arrives (connect included: see connect_for).
  cs->conn->set_timer(std::chrono::nanoseconds(std::max<int64_t>(remaining_ns(p), 0)));
}

// The response on cs is complete: back to the pool or closed, then on_end.
void upstream_pool::complete(conn_state* cs) {
  pending* p = cs->p;
  upstream_exchange* ex = p->ex;
  cs->conn->resume_recv();  // held for a slow client, and the answer's last bytes came anyway
  // A stream's connection is closed when it ends: it stood outside max_connections.
  bool clean = cs->keep_alive && cs->parser.leftover() == 0 && cs->conn->pending_output() == 0 &&
               !shutting_down_ && !cs->stream;
  cs->p = nullptr;
  free_pending(p);
  cs->reused = true;
  if (clean && wait_head_ != nullptr) {
    // Straight to the exchange that has waited longest (also while draining: it is in flight).
    pending* next = wait_head_;
    dequeue(next);
    ++counters_.reused;
    start_on(cs, next);
  } else if (clean && !draining_) {
    set_phase(cs, int(conn_state::phase::idle));
    cs->conn->set_timer(options_.idle_timeout);
  } else {
    retire(cs, true);
    serve_waiting();  // a connection fewer: a waiting exchange may connect
  }
  if (ex != nullptr) ex->on_end();  // last: it may send the next request on this connection
}

// ---- waiting for a connection ----

void upstream_pool::enqueue(pending* p) {
  p->waiting = true;
  p->wait_next = nullptr;
  p->wait_prev = wait_tail_;
  if (wait_tail_ != nullptr) {
    wait_tail_->wait_next = p;
  } else {
    wait_head_ = p;
  }
  wait_tail_ = p;
  ++waiting_count_;
  // Every exchange waits response_timeout, so the queue's order is its deadlines' order: one
  // call_at for the oldest is enough.
  if (deadline_armed_ == 0) {
    deadline_armed_ = wait_head_->deadline_ns;
    shard_.call_at(deadline_armed_, this);
  }
}

void upstream_pool::dequeue(pending* p) {
  if (p->wait_prev != nullptr) {
    p->wait_prev->wait_next = p->wait_next;
  } else {
    wait_head_ = p->wait_next;
  }
  if (p->wait_next != nullptr) {
    p->wait_next->wait_prev = p->wait_prev;
  } else {
    wait_tail_ = p->wait_prev;
  }
  p->wait_prev = p->wait_next = nullptr;
  p->waiting = false;
  --waiting_count_;
}

void upstream_pool::serve_waiting() {
  while (wait_head_ != nullptr && !shutting_down_) {
    pending* p = wait_head_;
    if (conn_state* cs = idle_head_; cs != nullptr) {
      dequeue(p);
      ++counters_.reused;
      cs->stream = false;  // only calls wait
      set_phase(cs, int(conn_state::phase::busy));
      start_on(cs, p);
    } else if (draining_) {
      // No new connections while the engine stops: a finishing call hands its connection
      // over (complete()); with none left busy, nothing will.
      if (busy_count_ != 0) return;
      fail(p, upstream_error::shutting_down, "the gateway is stopping");
    } else if (busy_count_ + idle_count_ < options_.max_connections) {
      dequeue(p);
      if (!connect_for(p)) fail_connect(p, errno);
    } else {
      return;
    }
  }
}

void upstream_pool::on_deadline() {
  deadline_armed_ = 0;
  const int64_t now = shard_.now_ns();
  while (wait_head_ != nullptr && wait_head_->deadline_ns <= now)
    fail(wait_head_, upstream_error::pool_exhausted,
         "no upstream connection of this shard came free within the response timeout");
  if (wait_head_ != nullptr && deadline_armed_ == 0) {
    deadline_armed_ = wait_head_->deadline_ns;
    shard_.call_at(deadline_armed_, this);
  }
}

// The busy connection cs failed (EOF, reset, send error) before its response was complete.
// conn_gone: the engine is releasing it (on_closed): do not touch cs->conn.
void upstream_pool::connection_lost(conn_state* cs, std::string_view detail, bool conn_gone) {
  pending* p = cs->p;
  bool silent_so_far = cs->reused && !cs->parser.received_any();
  if (conn_gone) {
    set_phase(cs, int(conn_state::phase::dead));
  } else {
    retire(cs, false);
  }
  if (p == nullptr) return;
  cs->p = nullptr;
  p->conn = nullptr;
  if (silent_so_far && !p->retried && !shutting_down_ && !draining_) {
    // The keep-alive race: the upstream closed this idle connection as we reused it, so it
    // never saw the request. Send it once more on a fresh connection (nginx does the same).
    // Never after a response byte: the request may have had effects.
    p->retried = true;
    ++counters_.retries;
    if (connect_for(p)) return;
    fail_connect(p, errno);
    return;
  }
  fail(p, upstream_error::reset, detail);
}

// ---- response delivery (from the parser, inside on_data) ----

bool upstream_pool::deliver_head(conn_state* cs, const http_response& head) {
  pending* p = cs->p;
  if (p == nullptr || p->ex == nullptr) return false;
  p->head_seen = true;
  cs->keep_alive = head.keep_alive;
  // No timeout once the head is here: an SSE stream from a long-running tool may be silent for
  // a long time. It ends with the upstream, or with cancel() when the downstream goes away.
  cs->conn->cancel_timer();
  upstream_response_head h;
  h.status = head.status;
  h.content_type = head.content_type;
  h.mcp_session_id = head.mcp_session_id;
  h.mcp_protocol_version = head.mcp_protocol_version;
  h.headers = head.headers;
  h.chunked_or_streaming = head.chunked || head.close_delimited;
  if (!h.chunked_or_streaming) h.content_length = head.content_length;
  p->ex->on_head(h);
  return cs->p == p;  // false: cancelled (or shut down) from the callback
}

bool upstream_pool::deliver_body(conn_state* cs, std::string_view bytes) {
  pending* p = cs->p;
  if (p == nullptr || p->ex == nullptr) return false;
  p->ex->on_body(bytes);
  return cs->p == p;
}

// ---- engine callbacks ----

void upstream_pool::on_open(engine::connection& conn) {
  conn.close();  // never: the pool only makes outgoing connections
}

void upstream_pool::on_connected(engine::connection& conn, int error) {
  auto* cs = static_cast<conn_state*>(conn.user);
  if (cs == nullptr) return;
  if (error != 0) {
    // The engine closes the connection after this call; on_closed follows.
    pending* p = cs->p;
    set_phase(cs, int(conn_state::phase::dead));
    cs->p = nullptr;
    if (p == nullptr) return;
    if (error == -ETIMEDOUT) {
      fail(p,
           cs->timeout_is_response ? upstream_error::response_timeout
                                   : upstream_error::connect_timeout,
           cs->timeout_is_response ? "no response head in time (still connecting)"
                                   : "connect timed out");
    } else {
      fail(p, upstream_error::connect_failed, errno_text(-error));
    }
    serve_waiting();
    return;
  }
  if (cs->p == nullptr) {  // nothing to send any more
    retire(cs, true);
    return;
  }
  set_phase(cs, int(conn_state::phase::busy));
  start_on(cs, cs->p);
}

void upstream_pool::on_data(engine::connection& conn, std::span<const char> bytes) {
  auto* cs = static_cast<conn_state*>(conn.user);
  if (cs == nullptr) return;
  if (cs->ph == conn_state::phase::idle) {
    retire(cs, false);  // bytes nobody asked for: the upstream is confused
    return;
  }
  if (cs->p == nullptr || cs->ph != conn_state::phase::busy) return;
  switch (cs->parser.feed(bytes, *cs)) {
    case http1_response_parser::parse_status::need_more:
    case http1_response_parser::parse_status::stopped:  // cancelled from a callback
      return;
    case http1_response_parser::parse_status::done:
      complete(cs);
      return;
    case http1_response_parser::parse_status::error: {
      pending* p = cs->p;
      retire(cs, false);
      fail(p, upstream_error::bad_response, cs->parser.error_detail());
      serve_waiting();
      return;
    }
  }
}

void upstream_pool::on_eof(engine::connection& conn) {
  auto* cs = static_cast<conn_state*>(conn.user);
  if (cs == nullptr || cs->ph == conn_state::phase::dead) {
    conn.close();
    return;
  }
  if (cs->ph == conn_state::phase::idle) {
    retire(cs, true);  // the upstream closed an idle keep-alive connection: drop it silently
    return;
  }
  if (cs->p == nullptr) {
    retire(cs, true);
    return;
  }
  if (cs->parser.feed_eof() == http1_response_parser::parse_status::done) {
    complete(cs);  // close-delimited body: keep_alive is false, the connection is closed
    return;
  }
  connection_lost(cs, cs->parser.error_detail(), false);
  serve_waiting();
}

void upstream_pool::on_timer(engine::connection& conn) {
  auto* cs = static_cast<conn_state*>(conn.user);
  if (cs == nullptr) return;
  if (cs->ph == conn_state::phase::idle) {
    retire(cs, true);  // idle_timeout
    return;
  }
  pending* p = cs->p;
  if (cs->ph != conn_state::phase::busy || p == nullptr || p->head_seen) return;
  retire(cs, false);
  fail(p, upstream_error::response_timeout, "no response head in time");
  serve_waiting();
}

void upstream_pool::on_shutdown(engine::connection& conn) {
  // The engine is stopping: idle connections go now, busy ones finish (the downstream side
  // lets in-flight requests finish too) and are then closed instead of parked.
  draining_ = true;
  auto* cs = static_cast<conn_state*>(conn.user);
  if (cs == nullptr) {
    conn.close();
    return;
  }
  if (cs->ph == conn_state::phase::idle) retire(cs, true);
}

void upstream_pool::on_closed(engine::connection& conn) {
  auto* cs = static_cast<conn_state*>(conn.user);
  if (cs == nullptr) return;
  conn.user = nullptr;
  if (cs->p != nullptr) {
    connection_lost(cs,
                    cs->parser.received_any() ? "upstream reset the connection mid-response"
                                              : "upstream reset the connection",
                    true);
  } else {
    set_phase(cs, int(conn_state::phase::dead));
  }
  cs->conn = nullptr;
  free_conns_.push_back(cs);
  serve_waiting();
}

// ---- control ----

upstream_pool::pending* upstream_pool::find(uint64_t handle) const {
  const uint64_t index = (handle & 0xffffffffu);
  if (index == 0 || index > pendings_.size()) return nullptr;
  pending* p = pendings_[index - 1].get();
  return p->active && p->gen == uint32_t(handle >> 32) ? p : nullptr;
}

void upstream_pool::hold_answer(uint64_t handle, bool hold) {
  pending* p = find(handle);
  if (p == nullptr || p->conn == nullptr || p->conn->conn == nullptr) return;
  if (hold) {
    p->conn->conn->pause_recv();
  } else {
    p->conn->conn->resume_recv();
  }
}

void upstream_pool::cancel(uint64_t handle) {
  pending* p = find(handle);
  if (p == nullptr) return;
  conn_state* cs = p->conn;
  p->ex = nullptr;
  if (cs != nullptr) {
    cs->p = nullptr;
    retire(cs, false);  // the response is not complete: the connection cannot be reused
  }
  free_pending(p);  // a waiting exchange leaves the queue
  serve_waiting();
}

void upstream_pool::shutdown() {
  shutting_down_ = true;
  for (size_t i = 0; i < pendings_.size(); ++i) {
    pending* p = pendings_[i].get();
    if (!p->active) continue;
    if (conn_state* cs = p->conn; cs != nullptr) {
      cs->p = nullptr;
      retire(cs, false);
    }
    fail(p, upstream_error::shutting_down, "upstream pool is shutting down");
  }
  while (idle_head_ != nullptr)
    retire(idle_head_, true);
}

}  // namespace sluice::net
