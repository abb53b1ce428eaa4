#pragma once
// HTTP/1.1 server on the engine: wires engine connections to the HTTP/1.1 parser and to a
// request_handler written by the layer above. One http_shard_handler per shard; everything is
// used only from that shard's thread.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>

#include "engine/runtime.h"
#include "net/http1.h"
#include "net/status_counts.h"

namespace sluice::net {

class http_conn;

// Told when a client has taken the output queued for it (see response_slot::when_drained).
class output_waiter {
 public:
  virtual void on_output_drained() = 0;

 protected:
  ~output_waiter() = default;
};

// The answer to one request. Cheap to copy; may be kept and answered later on the same shard
// (e.g. after an upstream answers). Answers go out in request order: an answer for a later
// pipelined request is held until the ones before it are complete. Every request must be
// answered exactly once (respond, or begin/write.../finish); calls on a slot whose connection
// has gone are ignored.
class response_slot {
 public:
  response_slot() = default;

  // The connection is still there and waiting for this answer.
  [[nodiscard]] bool valid() const;

  // Every response on this slot (its own and an error in its place) carries CORS headers for
  // a browser page of `origin` (response_head::cors_origin). Call before answering; the
  // origin is copied. The handler decides which origins may read answers.
  void allow_origin(std::string_view origin);

  // A complete response with Content-Length. Common case (answer inline, nothing pending
  // before it): formatted straight into the connection's output buffer. Does not allocate
  // after warm-up.
  void respond(int status, std::string_view content_type, std::string_view body,
               std::span<const http_header> extra = {});
  // respond() with a body that `write` formats in place: write(char* p) puts exactly `length`
  // bytes at p and returns p + length. Spares building the body elsewhere and copying it.
  template <class Write>
  void respond_in_place(int status, std::string_view content_type, size_t length, Write&& write,
                        std::span<const http_header> extra = {}) {
    char* head = nullptr;
    if (char* body = start_in_place(status, content_type, length, extra, head))
      end_in_place(head, write(body));
  }

  // Streaming response: chunked for HTTP/1.1 (close-delimited for HTTP/1.0).
  void begin(int status, std::string_view content_type, std::span<const http_header> extra = {});
  // Streaming response of a body whose length is known: Content-Length, then exactly `length`
  // bytes through write() (the caller's promise; if it cannot keep it, abort()).
  void begin_sized(int status, std::string_view content_type, uint64_t length,
                   std::span<const http_header> extra = {});
  void write(std::string_view data);  // one chunk (or raw bytes when sized); empty is ignored
  void finish();

  // Back-pressure for a streamed answer. Bytes queued for this answer's client and not yet taken
  // by its socket (with this answer's own bytes held behind earlier answers); 0 when the
  // connection has gone.
  [[nodiscard]] size_t queued() const;
  // Whether queued() is over http_limits::max_output_bytes: stop producing until drained.
  [[nodiscard]] bool congested() const;
  // Calls w->on_output_drained() once, when the client has taken everything queued for it.
  // Not called if the answer ends or the connection goes first. One waiter per answer; while
  // one waits, a client that takes nothing for http_limits::send_timeout is disconnected.
  void when_drained(output_waiter* w);
  // Ends a begun response that cannot be completed (the upstream died mid-body): what was
  // written goes out, then the connection closes, so the client sees a truncated message
  // rather than a short one it would take for whole.
  void abort();

 private:
  friend class http_conn;
  response_slot(http_conn* c, uint32_t gen, uint32_t seq) : conn_(c), gen_(gen), seq_(seq) {}
  // Writes the head and reserves room for the body; returns where the body goes (head: where
  // the answer starts), or null when the slot is gone or already answered.
  char* start_in_place(int status, std::string_view content_type, size_t length,
                       std::span<const http_header> extra, char*& head);
  void end_in_place(char* head, char* end);
  http_conn* conn_ = nullptr;
  uint32_t gen_ = 0;
  uint32_t seq_ = 0;
};

class request_handler {
 public:
  virtual ~request_handler() = default;
  // req's views are valid only during this call. Answer through slot, now or later.
  virtual void on_request(const http_request& req, response_slot slot) = 0;
  // A connection went away (or was cut short) while answers were still owed on it: some
  // response_slot this handler holds may have become invalid. Lets a handler that keeps
  // slots look for dead ones only when one may exist.
  virtual void on_answers_abandoned() {}
  // Back-pressure on this shard's connections, for metrics: reading a client's requests
  // stopped (its answers are not being taken); a client was cut off by the send timeout.
  virtual void on_client_held() {}
  virtual void on_client_send_timeout() {}
  // Where the shard's answers are counted by status (every final answer on this shard's
  // connections: the handler's, relayed ones, and the HTTP layer's own errors). Asked once,
  // when the shard starts; null: not counted.
  virtual status_counts* response_counts() { return nullptr; }
};

// Called on each shard's thread.
using request_handler_factory = std::function<std::unique_ptr<request_handler>(engine::shard&)>;

// Puts the HTTP limits that the engine enforces (connections per shard) into the config.
void apply_limits(const http_limits& limits, engine::runtime_config& config);

// The engine handler factory that serves HTTP/1.1 with the given limits and handlers.
[[nodiscard]] engine::handler_factory make_http_factory(const http_limits& limits,
                                                        request_handler_factory handlers);

// Convenience: runtime + HTTP.
class http_server {
 public:
  [[nodiscard]] engine::status start(engine::runtime_config config, const http_limits& limits,
                                     request_handler_factory handlers) {
    apply_limits(limits, config);
    return runtime_.start(config, make_http_factory(limits, std::move(handlers)));
  }
  [[nodiscard]] engine::runtime& runtime() { return runtime_; }
  [[nodiscard]] uint16_t port() const { return runtime_.port(); }
  void stop(std::chrono::milliseconds grace) { runtime_.stop(grace); }
  void join() { runtime_.join(); }

 private:
  engine::runtime runtime_;
};

}  // namespace sluice::net
