#pragma once
// Integration-test harness: start real processes, wait for their readiness line, talk HTTP/1.1
// to them on 127.0.0.1, play a scripted upstream for them, stop them. Every wait is a poll() (or a
// condition variable fed by one) with a deadline; nothing sleeps.
//
// Binaries come from meson through environment variables (tests/integration/meson.build):
// SLUICE_BIN, EXAMPLE_SERVER_BIN. Use binary_path("EXAMPLE_SERVER_BIN").

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "tests/temp_file.h"  // temp_file, shared with the unit tests

namespace sluice::testing {

inline constexpr std::chrono::milliseconds kDefaultTimeout{5000};

// The value of an environment variable naming a built binary; empty when unset.
[[nodiscard]] std::string binary_path(const char* env_var);

// A policy file of tests/integration/policies: under $POLICY_DIR (meson test sets it), else
// beside this source file.
[[nodiscard]] std::string policy_path(std::string_view name);

// ---------------------------------------------------------------------------------------------
// Processes

// A child process with its stdout (and optionally stderr) captured by a reader thread, so a
// chatty child never blocks on a full pipe. Not movable (the reader thread points at it); hold
// it in the unique_ptr spawn() returns. The destructor SIGKILLs and reaps a child still running.
class process {
 public:
  struct options {
    bool capture_stderr = false;   // otherwise stderr is inherited (it shows in the test log)
    std::vector<std::string> env;  // extra "NAME=value" entries on top of this environment
  };

  // Starts path with args (argv[0] is path). The child gets an empty signal mask and default
  // dispositions for SIGTERM, SIGINT, SIGHUP, SIGPIPE and SIGCHLD. nullptr when the spawn
  // fails (errno says why, e.g. ENOENT).
  [[nodiscard]] static std::unique_ptr<process> spawn(const std::string& path,
                                                      const std::vector<std::string>& args,
                                                      const options& opts);
  [[nodiscard]] static std::unique_ptr<process> spawn(const std::string& path,
                                                      const std::vector<std::string>& args) {
    return spawn(path, args, options{});
  }

  process(const process&) = delete;
  process& operator=(const process&) = delete;
  ~process();

  // Waits for a stdout line containing " listening on HOST:PORT" and parses the port. False on
  // timeout, or when the child closes stdout (e.g. exits) first.
  [[nodiscard]] bool wait_ready(std::chrono::milliseconds timeout = kDefaultTimeout);
  [[nodiscard]] uint16_t port() const { return port_; }
  [[nodiscard]] const std::string& ready_line() const { return ready_line_; }

  // Waits until the captured stdout (or stderr, when captured) contains needle.
  [[nodiscard]] bool wait_for_stdout(std::string_view needle,
                                     std::chrono::milliseconds timeout = kDefaultTimeout);
  [[nodiscard]] bool wait_for_stderr(std::string_view needle,
                                     std::chrono::milliseconds timeout = kDefaultTimeout);
  // Waits until the captured pipes have reached EOF (the child and anything it started have
  // closed them), so stdout_text() / stderr_text() are complete.
  [[nodiscard]] bool wait_output_closed(std::chrono::milliseconds timeout = kDefaultTimeout);
  // Everything captured so far.
  [[nodiscard]] std::string stdout_text() const;
  [[nodiscard]] std::string stderr_text() const;

  [[nodiscard]] pid_t pid() const { return pid_; }
  // False once the exit has been collected by wait_exit / terminate.
  [[nodiscard]] bool running() const { return !exit_.has_value(); }
  bool signal(int sig);

  // Waits for the child to exit and reaps it. The status is the exit code, or 128 + signal
  // number when killed by a signal (the shell's convention); nullopt on timeout.
  [[nodiscard]] std::optional<int> wait_exit(std::chrono::milliseconds timeout = kDefaultTimeout);
  // SIGTERM, then wait_exit.
  [[nodiscard]] std::optional<int> terminate(std::chrono::milliseconds timeout = kDefaultTimeout);
  // SIGKILL and reap.
  void kill();

 private:
  process() = default;
  void reader_loop();
  bool wait_for(std::chrono::milliseconds timeout, const std::string& buf, std::string_view needle);

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: wakes the reader thread to exit
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string out_;
  std::string err_;
  bool out_closed_ = false;
  bool err_closed_ = false;
  bool reader_done_ = false;
  std::optional<int> exit_;
  uint16_t port_ = 0;
  std::string ready_line_;
};

// Runs a command to completion (stdout and stderr captured).
struct run_result {
  std::optional<int> exit;  // as process::wait_exit; nullopt: timed out (then killed)
  std::string out;
  std::string err;
};
[[nodiscard]] run_result run(const std::string& path, const std::vector<std::string>& args,
                             std::chrono::milliseconds timeout = kDefaultTimeout);

// The port of the HOST:PORT token that follows marker in out (up to the next space or newline),
// e.g. port_after(out, " listening on "); 0 when the marker or the port is missing.
[[nodiscard]] uint16_t port_after(const std::string& out, std::string_view marker);

// sluice prints "sluice listening on HOST:PORT (N shards, policy P, upstream URL)".
// process::wait_ready() takes the last ':' of the line, which may belong to the upstream URL,
// so this waits for the line's end and parses the port from the HOST:PORT token itself.
[[nodiscard]] bool wait_sluice_ready(process& p, uint16_t& port,
                                     std::chrono::milliseconds timeout = kDefaultTimeout);

// The first executable "node" on PATH (/usr/bin:/bin when PATH is unset); "" when none.
[[nodiscard]] std::string node();

// `sluice hash-token` of a token (SLUICE_BIN, the token given on stdin through a file): its
// entry for a grants file. Fails the current test when the command fails.
[[nodiscard]] std::string hash_token(const std::string& token);

// ---------------------------------------------------------------------------------------------
// Text

[[nodiscard]] inline bool contains(std::string_view s, std::string_view needle) {
  return s.find(needle) != std::string_view::npos;
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 client

using header_list = std::vector<std::pair<std::string, std::string>>;

struct http_response {
  int status = 0;
  std::string reason;
  header_list headers;  // in order, names as sent
  std::string body;     // de-chunked
  bool chunked = false;

  // Case-insensitive lookup of the first header with this name.
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const;
  // Its value, or "" when absent.
  [[nodiscard]] std::string_view header_or_empty(std::string_view name) const;
};

struct sse_event {
  std::string event;  // "" when the event had no event: line
  std::string data;   // data: lines joined with '\n'
  std::string id;
};

// Splits a complete text/event-stream body into events (CR characters are ignored).
[[nodiscard]] std::vector<sse_event> parse_sse(std::string_view body);

// Socket options an http_client sets before it connects (0 keeps the kernel's default).
struct socket_options {
  int rcvbuf = 0;  // SO_RCVBUF: how much of the server's answers this client's kernel takes
  int sndbuf = 0;  // SO_SNDBUF
  // TCP_MAXSEG: the segment size this client announces. The server sizes its send buffer for
  // the connection from it (a few segments), so a small one keeps the server's buffered
  // output small: on loopback the default (~64 KiB segments) lets it buffer megabytes.
  int maxseg = 0;
};

// A blocking client over one TCP connection to 127.0.0.1. Each call takes a timeout; false /
// nullopt means timeout, EOF or a broken response.
class http_client {
 public:
  http_client() = default;
  explicit http_client(uint16_t port, std::chrono::milliseconds timeout = kDefaultTimeout) {
    connect(port, timeout);
  }
  http_client(uint16_t port, const socket_options& options,
              std::chrono::milliseconds timeout = kDefaultTimeout)
      : options_(options) {
    connect(port, timeout);
  }
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;
  http_client(http_client&& o) noexcept;
  http_client& operator=(http_client&& o) noexcept;
  ~http_client() { close(); }

  bool connect(uint16_t port, std::chrono::milliseconds timeout = kDefaultTimeout);
  [[nodiscard]] bool connected() const { return fd_ >= 0; }
  [[nodiscard]] int fd() const { return fd_; }
  void close();

  // Raw bytes, as they are.
  bool send(std::string_view bytes);
  // A request: the request line, Host, the given headers, Content-Length when there is a body
  // (or the method is POST/PUT), then the body.
  bool send_request(std::string_view method, std::string_view target, std::string_view body = {},
                    const header_list& headers = {});

  // One complete response (Content-Length, chunked, or until close).
  [[nodiscard]] std::optional<http_response> read_response(
      std::chrono::milliseconds timeout = kDefaultTimeout);
  // send_request + read_response.
  [[nodiscard]] std::optional<http_response> request(
      std::string_view method, std::string_view target, std::string_view body = {},
      const header_list& headers = {}, std::chrono::milliseconds timeout = kDefaultTimeout);

  // Incremental reading: the status line and headers only (body left empty) ...
  [[nodiscard]] std::optional<http_response> read_head(
      std::chrono::milliseconds timeout = kDefaultTimeout);
  // ... then the next SSE event of that body as it arrives; nullopt at the end of the body
  // (see body_complete()) or on timeout.
  [[nodiscard]] std::optional<sse_event> next_event(
      std::chrono::milliseconds timeout = kDefaultTimeout);
  // ... or the next body bytes as they arrive (at least one byte unless the body ended).
  [[nodiscard]] std::optional<std::string> read_body_some(
      std::chrono::milliseconds timeout = kDefaultTimeout);
  [[nodiscard]] bool body_complete() const { return body_done_; }

  // Everything until the server closes the connection (raw bytes, including any buffered).
  [[nodiscard]] std::string read_until_close(std::chrono::milliseconds timeout = kDefaultTimeout);
  // True when the server has closed (EOF or reset) within timeout; bytes read meanwhile are
  // kept for the next read.
  [[nodiscard]] bool wait_closed(std::chrono::milliseconds timeout = kDefaultTimeout);
  [[nodiscard]] bool eof() const { return eof_; }

 private:
  using clock = std::chrono::steady_clock;
  enum class framing : uint8_t { none, length, chunked, close };

  bool fill(clock::time_point deadline);
  bool pull_body(clock::time_point deadline, std::string& out);

  socket_options options_;  // applied by every connect()
  int fd_ = -1;
  uint16_t port_ = 0;
  std::string in_;  // received, not yet consumed
  bool eof_ = false;
  framing framing_ = framing::none;
  bool body_done_ = true;
  size_t remaining_ = 0;     // framing::length: body bytes left; chunked: data left in chunk
  bool chunk_crlf_ = false;  // chunked: the CRLF after a chunk's data is owed
  std::string events_;       // SSE: decoded body bytes not yet returned as events
};

// ---------------------------------------------------------------------------------------------
// Scripted upstream

// A TCP socket on 127.0.0.1 that plays an upstream whose every answer byte the test writes:
// broken, slow, or framed exactly so. listening=false: bound but not listening, so a connect
// is refused (the port stays reserved while the object lives). Owns the connections it
// accepts and closes them when it goes.
class raw_upstream {
 public:
  explicit raw_upstream(bool listening = true);
  raw_upstream(const raw_upstream&) = delete;
  raw_upstream& operator=(const raw_upstream&) = delete;
  ~raw_upstream();

  // 0 when the socket could not be bound.
  [[nodiscard]] uint16_t port() const { return port_; }
  // http://127.0.0.1:PORT/mcp
  [[nodiscard]] std::string url() const;

  // Accepts one connection and reads one request from it (the head and a Content-Length body)
  // into request. The connection, or -1 on timeout or EOF.
  [[nodiscard]] int accept_request(std::string& request,
                                   std::chrono::milliseconds timeout = kDefaultTimeout);
  // The same, the request read and dropped.
  [[nodiscard]] int accept_request(std::chrono::milliseconds timeout = kDefaultTimeout);

  // Writes all of bytes to connection c; false when the peer has gone.
  static bool write_all(int c, std::string_view bytes);
  // True when the peer closes connection c (EOF or reset) within timeout; discards its bytes.
  [[nodiscard]] static bool wait_peer_closed(int c,
                                             std::chrono::milliseconds timeout = kDefaultTimeout);
  // Closes connection c with a FIN ...
  void close(int c);
  // ... or with a TCP reset (SO_LINGER 0).
  void reset(int c);

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::vector<int> conns_;
};

// Writes what next() gives to fd without blocking until the kernel has taken nothing for
// `quiet` (the peer has stopped reading) or `cap` bytes went out. Returns how many bytes were
// written; `rest` is what was left of the last piece next() gave. For back-pressure tests.
size_t push_until_stalled(int fd, const std::function<std::string()>& next, size_t cap,
                          std::string& rest,
                          std::chrono::milliseconds quiet = std::chrono::milliseconds(1000));

// ---------------------------------------------------------------------------------------------
// MCP helpers

// Content-Type: application/json and Accept: application/json, text/event-stream, plus extra.
[[nodiscard]] header_list mcp_headers(const header_list& extra = {});
// POST /mcp with mcp_headers(extra).
[[nodiscard]] std::optional<http_response> mcp_post(
    http_client& client, std::string_view json, const header_list& extra = {},
    std::chrono::milliseconds timeout = kDefaultTimeout);

// Opens an MCP session through Sluice (or any server) with `initialize` on `client`: the
// Mcp-Session-Id of the answer, or "" when the answer was not 200 or named no session.
[[nodiscard]] std::string open_session(http_client& client, const header_list& extra = {},
                                       std::chrono::milliseconds timeout = kDefaultTimeout);
// The upstream's own id within a session id Sluice handed out: Sluice appends '.' and a
// 16-hex-digit tag that binds it to the caller's grant (net/session_binding.h).
[[nodiscard]] std::string_view upstream_session_id(std::string_view sid);

}  // namespace sluice::testing
