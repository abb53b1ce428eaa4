#pragma once
// A stdio MCP server that Sluice runs (`--upstream-command "CMD ARGS..."`), behind the same
// upstream_client interface as the HTTP pool, so the gateway forwards to it unchanged.
//
// One process per downstream session: an `initialize` POST without Mcp-Session-Id starts a
// process and mints the session id; every later request of that session goes to that process
// and nowhere else. A stdio server is written for exactly one client, so nothing is shared,
// no id or progress token is rewritten, and two sessions cannot see each other's messages.
//
// The child's stdin, stdout and stderr are AF_UNIX socketpairs adopted by the shard
// (engine::shard::adopt), so the shard's io_uring recv/send drives them. Messages are
// newline-delimited JSON-RPC. Answers to a POST: a single response with nothing before it is
// relayed as application/json; anything else (progress, server requests, batches) as
// text/event-stream, one event per message. Server messages: a response goes to the POST that
// sent its id; notifications/progress to the POST whose request carried its progressToken;
// anything else to the newest open POST stream of the session, else its GET stream, else a
// bounded backlog flushed when a GET stream opens. stderr is logged line by line.
//
// A process that dies: its in-flight exchanges end with on_error (the gateway answers a
// JSON-RPC error), and it is restarted with backoff (100 ms doubling to 5 s) and initialized
// again with the session's original initialize parameters; the session goes on. Stopping
// (DELETE, the shard draining, or idle_timeout): close stdin, SIGTERM after stop_grace, SIGKILL
// after another stop_grace. Sessions belong to this shard; their ids end with "-<shard id>", and a
// request for them that another shard received is handed over to this one by net/stdio_relay.h
// (after that shard decided it).

#include <simdjson.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/connection.h"
#include "engine/shard.h"
#include "net/upstream.h"

namespace sluice::net {

struct stdio_options {
  std::vector<std::string> argv;                      // argv[0] is looked up in PATH
  std::chrono::milliseconds response_timeout{30000};  // until the first message of an answer
  std::chrono::milliseconds stop_grace{2000};  // close stdin → SIGTERM → SIGKILL, each step
  uint32_t max_sessions = 256;                 // live processes per shard
  size_t max_backlog = 256;  // server messages kept for a session with no open stream
  // A session with no request for this long, and none in flight or streaming, is ended: its
  // process is stopped as on DELETE and its id answers 404 from then on. 0: never.
  std::chrono::milliseconds idle_timeout{600'000};
};

// Splits a command line on blanks; '…' and "…" quote (no escapes inside '…', \" and \\ inside
// "…"). False on an unterminated quote or an empty command.
[[nodiscard]] bool split_command(std::string_view line, std::vector<std::string>& argv,
                                 std::string& error);

class stdio_upstream final : public upstream_client, private engine::connection_handler {
 public:
  stdio_upstream(engine::shard& shard, stdio_options options);
  // Kills (SIGKILL) and reaps any child still running.
  ~stdio_upstream() override;
  stdio_upstream(const stdio_upstream&) = delete;
  stdio_upstream& operator=(const stdio_upstream&) = delete;

  [[nodiscard]] uint64_t send(const upstream_request& req, upstream_exchange* ex) override;
  void cancel(uint64_t handle) override;
  void shutdown() override;
  // Holds the session's whole stdout while any of its exchanges is held.
  void hold_answer(uint64_t handle, bool hold) override;

  [[nodiscard]] size_t sessions() const { return by_id_.size(); }

 private:
  struct session;
  struct exchange_rec;
  struct tag {
    session* s = nullptr;
    uint8_t role = 0;  // 0 stdin, 1 stdout, 2 stderr
  };

  // engine::connection_handler: the children's pipes and the clock connection
  void on_open(engine::connection& conn) override;
  void on_data(engine::connection& conn, std::span<const char> bytes) override;
  void on_eof(engine::connection& conn) override;
  void on_timer(engine::connection& conn) override;
  void on_shutdown(engine::connection& conn) override;
  void on_closed(engine::connection& conn) override;

  bool spawn(session* s, std::string& error);
  void handle_line(session* s, std::string_view line);
  void route(session* s, std::string_view json, bool is_response, std::string_view id,
             std::string_view token, std::string_view cancelled);
  void deliver(exchange_rec* r, std::string_view json, bool final_single);
  void finish(exchange_rec* r);
  void fail(exchange_rec* r, upstream_error e, std::string_view detail);
  void child_gone(session* s);
  void begin_stop(session* s);
  void reap(session* s, bool block);
  void check_timers();
  void arm_clock();
  uint64_t new_exchange(session* s, upstream_exchange* ex, bool get);
  exchange_rec* rec(uint64_t handle);
  void drop(exchange_rec* r);
  void hold_output(session* s, bool hold);
  void maybe_forget(session* s);
  // When the session is due to be ended for idleness (steady ns); 0: not due (busy, stopping,
  // or no idle timeout).
  [[nodiscard]] int64_t idle_due(const session* s) const;

  engine::shard& shard_;
  const stdio_options options_;
  engine::connection* clock_ = nullptr;  // carries the one timer of this upstream
  int clock_peer_ = -1;
  std::unordered_map<std::string, session*> by_id_;
  std::vector<std::unique_ptr<session>> sessions_;  // live and stopping
  std::vector<std::unique_ptr<exchange_rec>> recs_;
  std::vector<uint32_t> free_recs_;
  bool shutting_down_ = false;
  std::string scratch_;
  simdjson::dom::parser post_parser_;  // what the agent posts
  simdjson::dom::parser line_parser_;  // what the process writes
};

}  // namespace sluice::net
