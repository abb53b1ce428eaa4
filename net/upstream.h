#pragma once
// Per-shard HTTP/1.1 client pool for one upstream MCP server: the gateway forwards allowed
// requests with it and relays the answers (JSON or SSE) as they arrive. One upstream_pool per
// shard per upstream, used only on that shard's thread; its connections are engine outgoing
// connections of that shard (no locks, no sharing).
//
// One request at a time per connection (no pipelining upstream), keep-alive reuse when the
// response allows it. A reused idle connection that fails before any response byte arrives is
// retried once on a fresh connection (the keep-alive race: the upstream closed it while idle).

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/connection.h"
#include "engine/shard.h"
#include "net/http1.h"

namespace sluice::net {

struct http_response;

struct upstream_target {
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::string host_header;  // "127.0.0.1:8081", sent as Host
  std::string path;         // "/mcp" (query kept), the request target of every request
};

// Parses "http://HOST[:PORT][/PATH]": HOST an IPv4 literal, a bracketed IPv6 literal or a name
// resolved once here with getaddrinfo (start-up only: this blocks). https:// is refused with a
// message saying so. On failure returns false and sets error.
[[nodiscard]] bool parse_upstream_url(std::string_view url, upstream_target& out,
                                      std::string& error);

struct upstream_options {
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds response_timeout{30000};  // from send() until the response head
  // Per shard, idle + busy. Every connection that finishes a response cleanly is kept for
  // reuse up to this cap (an idle one closes after idle_timeout): a lower cap on idle ones
  // alone would make any concurrency above it connect and close once per call.
  uint32_t max_connections = 256;
  // Calls that find all max_connections busy wait for one, first come first served, until
  // their response_timeout; past this many waiting, a call fails at once (pool_exhausted).
  uint32_t max_waiting = 1024;
  // Long-lived streams (upstream_request::stream: MCP's GET, a server's own SSE stream, which an
  // SDK client opens for every session and keeps for its life) each hold a connection of their
  // own, outside max_connections, so sessions' streams never starve their calls; this many per
  // shard at most, then pool_exhausted at once (no waiting).
  uint32_t max_streams = 1024;
  std::chrono::milliseconds idle_timeout{30000};  // idle connections are closed after this
};

enum class upstream_error : uint8_t {
  connect_failed,
  connect_timeout,
  response_timeout,
  reset,         // the upstream closed or reset the connection before the response was complete
  bad_response,  // malformed response (framing, head over 64 KiB, ...)
  pool_exhausted,
  shutting_down,
};
[[nodiscard]] std::string_view to_string(upstream_error e);

struct upstream_response_head {
  int status = 0;
  std::string_view content_type;
  std::string_view mcp_session_id;
  std::string_view mcp_protocol_version;
  std::span<const http_header> headers;  // all, in order; views valid only during on_head
  bool chunked_or_streaming = false;     // body length unknown in advance (chunked or until EOF)
  int64_t content_length = -1;           // the framed body's length; -1: none (or not framed)
};

// Implemented by the gateway, one per forwarded request. Callbacks come on the shard's thread,
// never from inside send(), except on_error when the exchange cannot start (see send()).
// Exactly one of on_end / on_error ends every exchange (unless cancel() came first); after it
// the pool never touches the exchange again, so the callback may delete it. Callbacks may call
// send(), cancel() and shutdown() on the pool.
class upstream_exchange {
 public:
  virtual ~upstream_exchange() = default;
  virtual void on_head(const upstream_response_head& head) = 0;
  // De-chunked body bytes as they arrive (an SSE stream arrives piecewise). Valid only during
  // the call.
  virtual void on_body(std::string_view bytes) = 0;
  // The response is complete; the connection went back to the pool if reusable.
  virtual void on_end() = 0;
  // Before or after on_head. detail is a short human-readable cause, valid during the call.
  virtual void on_error(upstream_error e, std::string_view detail) = 0;
};

struct upstream_request {
  std::string_view method;  // "POST", "GET", "DELETE" (a valid token: the caller's parser said so)
  // Forwarded in order, except hop-by-hop ones: Connection, Keep-Alive, Transfer-Encoding, TE,
  // Upgrade, Proxy-*, Host, Content-Length, headers named by a Connection header, and any
  // header holding CR or LF. The pool adds Host, Content-Length and Connection: keep-alive.
  std::span<const http_header> headers;
  std::string_view body;  // forwarded byte for byte
  // Open-ended (MCP's GET stream): counted against max_streams, not max_connections, and its
  // connection is closed when it ends.
  bool stream = false;
  // The caller vouches that every header is forwarded as it is (forwardable_header() holds for
  // each, and none is Connection): they are copied without a look. The gateway's are: names of
  // its own, values from a request its parser took (no CR or LF can be in one).
  bool vetted = false;
};

// Whether a header may be forwarded at all: a name, no CR or LF, not hop-by-hop (Connection,
// Keep-Alive, Transfer-Encoding, TE, Trailer, Upgrade, Proxy-*) and not one the pool writes
// (Host, Content-Length).
[[nodiscard]] bool forwardable_header(const http_header& h);

struct upstream_counters {
  uint64_t requests = 0;          // send() calls
  uint64_t connects = 0;          // connections attempted
  uint64_t connect_failures = 0;  // refused, unreachable, timed out
  uint64_t timeouts = 0;          // connect or response timeouts
  uint64_t resets = 0;            // closed/reset before the response was complete
  uint64_t bad_responses = 0;
  uint64_t reused = 0;     // exchanges sent on an idle keep-alive connection
  uint64_t retries = 0;    // reused connection failed before any response byte: sent again
  uint64_t waited = 0;     // exchanges that queued for a connection (all were busy)
  uint64_t exhausted = 0;  // refused: the queue was full, or no connection came free in time
};

// What the gateway forwards through: the HTTP pool below, or a stdio server that Sluice runs
// (net/stdio_upstream.h). The same contract as upstream_pool's methods of these names.
class upstream_client {
 public:
  virtual ~upstream_client() = default;
  [[nodiscard]] virtual uint64_t send(const upstream_request& req, upstream_exchange* ex) = 0;
  virtual void cancel(uint64_t handle) = 0;
  virtual void shutdown() = 0;
  // Back-pressure: stop (hold) or go on reading the answer of exchange `handle` while its
  // client is slow to take what was relayed. Stale handles are ignored. Default: no hold.
  virtual void hold_answer(uint64_t handle, bool hold) {
    (void)handle;
    (void)hold;
  }
};

class upstream_pool final : public upstream_client,
                            private engine::connection_handler,
                            private engine::deadline_client {
 public:
  upstream_pool(engine::shard& shard, upstream_target target, upstream_options options);
  // The pool must outlive its connections: keep it in the shard's handler (destroyed with the
  // shard, after the loop has ended and every connection has been closed).
  ~upstream_pool() override;
  upstream_pool(const upstream_pool&) = delete;
  upstream_pool& operator=(const upstream_pool&) = delete;

  // Starts an exchange on an idle connection or a new one; when max_connections are busy it
  // waits for one (max_waiting at most, each until its response_timeout, then
  // pool_exhausted). The request is formatted (and kept for the one retry) before returning:
  // req's views need not outlive the call. Returns a non-zero handle for cancel(). If the
  // exchange cannot start (pool_exhausted: the wait queue is full, max_streams streams are open
  // or no engine outgoing slot is left; shutting_down; connect_failed when no socket can be
  // made) ex->on_error is called before send returns and send returns 0. Does not allocate
  // once warm.
  [[nodiscard]] uint64_t send(const upstream_request& req, upstream_exchange* ex) override;

  // The downstream went away: no more callbacks for this exchange. Its connection is closed
  // unless the response was already complete. Stale or zero handles are ignored.
  void cancel(uint64_t handle) override;

  // Pauses (or resumes) reading the exchange's connection; the kernel holds what the upstream
  // sends meanwhile, and TCP slows it down. A connection is reading again before it is reused.
  void hold_answer(uint64_t handle, bool hold) override;

  // Stop: pending exchanges fail with shutting_down, connections are closed, later send()s
  // fail with shutting_down.
  void shutdown() override;

  [[nodiscard]] size_t idle() const { return idle_count_; }
  [[nodiscard]] size_t busy() const { return busy_count_; }        // connecting or carrying a call
  [[nodiscard]] size_t waiting() const { return waiting_count_; }  // queued for a connection
  [[nodiscard]] size_t streams() const { return streams_count_; }  // connections carrying streams
  [[nodiscard]] const upstream_counters& counters() const { return counters_; }
  [[nodiscard]] const upstream_target& target() const { return target_; }

 private:
  struct conn_state;
  struct pending;
  friend struct conn_state;

  // engine::connection_handler (outgoing connections only)
  void on_open(engine::connection& conn) override;
  void on_connected(engine::connection& conn, int error) override;
  void on_data(engine::connection& conn, std::span<const char> bytes) override;
  void on_eof(engine::connection& conn) override;
  void on_timer(engine::connection& conn) override;
  void on_shutdown(engine::connection& conn) override;
  void on_closed(engine::connection& conn) override;
  // engine::deadline_client: the first waiting exchange's response_timeout
  void on_deadline() override;

  [[nodiscard]] pending* find(uint64_t handle) const;  // the active exchange, or null
  pending* alloc_pending();
  void free_pending(pending* p);
  conn_state* alloc_conn();
  void set_phase(conn_state* cs, int ph);
  void retire(conn_state* cs, bool graceful);
  [[nodiscard]] bool connect_for(pending* p);
  void start_on(conn_state* cs, pending* p);
  void enqueue(pending* p);
  void dequeue(pending* p);
  // Hands idle or newly allowed connections to waiting exchanges, oldest first.
  void serve_waiting();
  void complete(conn_state* cs);
  void connection_lost(conn_state* cs, std::string_view detail, bool conn_gone);
  void count(upstream_error e);
  void fail(pending* p, upstream_error e, std::string_view detail);
  void fail_connect(pending* p, int e);
  bool deliver_head(conn_state* cs, const http_response& head);
  bool deliver_body(conn_state* cs, std::string_view bytes);
  [[nodiscard]] int64_t remaining_ns(const pending* p) const;

  engine::shard& shard_;
  const upstream_target target_;
  const upstream_options options_;
  std::vector<std::unique_ptr<pending>> pendings_;  // by handle index, reused
  std::vector<uint32_t> free_pendings_;
  std::vector<std::unique_ptr<conn_state>> conns_;  // reused across engine connections
  std::vector<conn_state*> free_conns_;
  conn_state* idle_head_ = nullptr;  // most recently used first
  size_t idle_count_ = 0;
  size_t busy_count_ = 0;         // connecting or carrying a call (not a stream)
  size_t streams_count_ = 0;      // connecting or carrying a stream
  pending* wait_head_ = nullptr;  // exchanges waiting for a connection, oldest first
  pending* wait_tail_ = nullptr;
  size_t waiting_count_ = 0;
  int64_t deadline_armed_ = 0;  // the call_at() pending with the shard; 0 = none
  bool shutting_down_ = false;  // shutdown() was called
  bool draining_ = false;       // the engine is stopping: finish in-flight work, keep nothing
  upstream_counters counters_;
};

}  // namespace sluice::net
