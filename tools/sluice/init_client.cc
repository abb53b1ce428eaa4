#include "tools/sluice/init_client.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <set>

namespace sluice::init {

namespace {

using clock = std::chrono::steady_clock;
namespace dom = simdjson::dom;

constexpr size_t kMaxMessage = 64u << 20;  // one JSON-RPC message, or one HTTP body
constexpr size_t kStderrTail = 2048;       // how much of a child's stderr an error quotes

std::string snippet(std::string_view s, size_t max = 200) {
  std::string out;
  for (const char c : s.substr(0, max))
    out += (c == '\n' || c == '\r') ? ' ' : c;
  if (s.size() > max) out += "...";
  return out;
}

// ---------------------------------------------------------------------------------------------
// What a transport does: send one message and, for a request, return the answer with its id.

class transport {
 public:
  virtual ~transport() = default;
  // Sends `message`. With `id` >= 0, waits for the response carrying that id and stores the
  // whole response message in `answer`. `what` names the step in errors ("initialize").
  virtual bool exchange(const std::string& message, int64_t id, std::string_view what,
                        std::string& answer, std::string& error) = 0;
  // The negotiated version, sent as MCP-Protocol-Version on HTTP after initialize.
  virtual void set_protocol_version(std::string_view) {}
  // Ends the session politely (best effort).
  virtual void close() {}
};

// Classifies one incoming message relative to the id we wait for.
enum class incoming : uint8_t { ours, other, server_request, garbage };

incoming inspect(dom::parser& parser, std::string_view text, int64_t id, int64_t& request_id) {
  dom::element doc;
  if (parser.parse(text.data(), text.size()).get(doc)) return incoming::garbage;
  dom::object obj;
  if (doc.get_object().get(obj)) return incoming::garbage;
  dom::element idv, method;
  const bool has_id = obj.at_key("id").get(idv) == simdjson::SUCCESS;
  const bool has_method = obj.at_key("method").get(method) == simdjson::SUCCESS;
  if (has_method) {
    if (has_id && idv.get_int64().get(request_id) == simdjson::SUCCESS)
      return incoming::server_request;
    return incoming::other;  // a notification (or a request we cannot answer by id)
  }
  int64_t got = 0;
  if (has_id && idv.get_int64().get(got) == simdjson::SUCCESS && got == id) return incoming::ours;
  return incoming::other;
}

// ---------------------------------------------------------------------------------------------
// Streamable HTTP over Boost.Beast. Each message is one POST on a fresh connection. The flow
// is synchronous for the caller; inside, Beast's async operations run on a private io_context
// because only they honour tcp_stream deadlines (the blocking calls cannot time out).

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct parsed_url {
  std::string host, port, target;
};

bool parse_http_url(std::string_view url, parsed_url& out, std::string& error) {
  if (url.starts_with("https://")) {
    error = "https:// is not supported; connect over http:// (e.g. through a local TLS proxy)";
    return false;
  }
  if (!url.starts_with("http://")) {
    error = "expected a URL of the form http://HOST[:PORT][/PATH], got '" + std::string(url) + "'";
    return false;
  }
  std::string_view rest = url.substr(7);
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  out.port = "80";
  if (authority.starts_with("[")) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "bad IPv6 address in '" + std::string(url) + "'";
      return false;
    }
    out.host = authority.substr(1, close - 1);
    authority.remove_prefix(close + 1);
    if (authority.starts_with(":")) {
      out.port = authority.substr(1);
    } else if (!authority.empty()) {
      error = "bad address in '" + std::string(url) + "'";
      return false;
    }
  } else {
    const size_t colon = authority.rfind(':');
    out.host = authority.substr(0, colon);
    if (colon != std::string_view::npos) out.port = authority.substr(colon + 1);
  }
  if (out.host.empty() || out.port.empty() ||
      out.port.find_first_not_of("0123456789") != std::string::npos) {
    error = "bad host or port in '" + std::string(url) + "'";
    return false;
  }
  return true;
}

// Complete events of a text/event-stream body; with `at_end`, a final unterminated one too.
std::vector<std::string> sse_data(std::string_view body, bool at_end) {
  std::vector<std::string> out;
  std::string data;
  bool has_data = false;
  bool is_message = true;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t nl = body.find('\n', pos);
    if (nl == std::string_view::npos && !at_end) break;  // a line still arriving
    std::string_view line = body.substr(pos, nl == std::string_view::npos ? body.npos : nl - pos);
    pos = nl == std::string_view::npos ? body.size() : nl + 1;
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.empty()) {
      if (has_data && is_message) out.push_back(std::move(data));
      data.clear();
      has_data = false;
      is_message = true;
      continue;
    }
    std::string_view field = line, value;
    if (const size_t colon = line.find(':'); colon != std::string_view::npos) {
      field = line.substr(0, colon);
      value = line.substr(colon + 1);
      if (value.starts_with(' ')) value.remove_prefix(1);
    }
    if (field == "data") {
      if (has_data) data += '\n';
      data += value;
      has_data = true;
    } else if (field == "event") {
      is_message = value.empty() || value == "message";
    }
  }
  if (at_end && has_data && is_message) out.push_back(std::move(data));
  return out;
}

class http_transport final : public transport {
 public:
  http_transport(parsed_url url, const client_options& opts) : url_(std::move(url)), opts_(opts) {}

  void set_protocol_version(std::string_view v) override { version_ = v; }

  bool exchange(const std::string& message, int64_t id, std::string_view what, std::string& answer,
                std::string& error) override {
    http::request<http::string_body> req{http::verb::post, url_.target, 11};
    req.set(http::field::host, url_.host + ":" + url_.port);
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "application/json, text/event-stream");
    req.set(http::field::user_agent, "sluice-init");
    if (!version_.empty()) req.set("MCP-Protocol-Version", version_);
    if (!session_.empty()) req.set("Mcp-Session-Id", session_);
    req.keep_alive(false);
    req.body() = message;
    req.prepare_payload();

    result r;
    if (!run(req, id, r, error, what)) return false;
    if (what == "initialize" && !r.session.empty()) session_ = r.session;
    if (id < 0) {
      if (r.status != 200 && r.status != 202 && r.status != 204) {
        error = std::string(what) + ": the server answered HTTP " + std::to_string(r.status) +
                ": " + snippet(r.body);
        return false;
      }
      return true;
    }
    if (r.status == 404 && !session_.empty()) {
      error =
          std::string(what) + ": the server no longer knows session " + session_ + " (HTTP 404)";
      return false;
    }
    if (r.status != 200) {
      // A JSON-RPC error in a 4xx body still says more than the status.
      if (!r.answer.empty()) {
        answer = std::move(r.answer);
        return true;
      }
      error = std::string(what) + ": the server answered HTTP " + std::to_string(r.status) +
              (r.body.empty() ? std::string() : ": " + snippet(r.body));
      return false;
    }
    if (r.answer.empty()) {
      error = std::string(what) + ": " +
              (r.garbage ? "the answer is not JSON-RPC: " + snippet(r.body)
                         : "the answer holds no response with id " + std::to_string(id));
      return false;
    }
    answer = std::move(r.answer);
    return true;
  }

  void close() override {
    if (session_.empty()) return;
    http::request<http::string_body> req{http::verb::delete_, url_.target, 11};
    req.set(http::field::host, url_.host + ":" + url_.port);
    req.set("Mcp-Session-Id", session_);
    if (!version_.empty()) req.set("MCP-Protocol-Version", version_);
    req.keep_alive(false);
    result r;
    std::string ignored;
    const auto saved = opts_.timeout;
    opts_.timeout = std::min(opts_.timeout, std::chrono::milliseconds(2000));
    (void)run(req, -1, r, ignored, "DELETE session");
    opts_.timeout = saved;
    session_.clear();
  }

 private:
  struct result {
    unsigned status = 0;
    std::string session;
    std::string body;
    std::string answer;  // the response message with our id, when found
    bool garbage = false;
  };

  // Looks for our response in a JSON body (one message or a batch) or in SSE events.
  void find_answer(std::string_view text, int64_t id, result& r) {
    int64_t ignored = 0;
    switch (inspect(parser_, text, id, ignored)) {
      case incoming::ours:
        r.answer = text;
        return;
      case incoming::garbage: {
        dom::element doc;
        dom::array batch;
        if (parser_.parse(text.data(), text.size()).get(doc) || doc.get_array().get(batch)) {
          r.garbage = true;
          return;
        }
        for (dom::element e : batch) {
          const std::string one = simdjson::minify(e);
          if (inspect(parser_, one, id, ignored) == incoming::ours) {
            r.answer = one;
            return;
          }
        }
        return;
      }
      default:
        return;
    }
  }

  asio::awaitable<void> flow(const http::request<http::string_body>& req, int64_t id, result& r,
                             std::string& error, clock::time_point deadline) {
    auto ex = co_await asio::this_coro::executor;
    beast::error_code ec;
    tcp::resolver resolver(ex);
    const auto endpoints = co_await resolver.async_resolve(
        url_.host, url_.port, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      error = "cannot resolve " + url_.host + ": " + ec.message();
      co_return;
    }
    beast::tcp_stream stream(ex);
    stream.expires_at(deadline);
    co_await stream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      error = "cannot connect to " + url_.host + ":" + url_.port + ": " +
              (ec == beast::error::timeout ? std::string("timed out") : ec.message());
      co_return;
    }
    stream.expires_at(deadline);
    co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      error = "sending to " + url_.host + ":" + url_.port + " failed: " + ec.message();
      co_return;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxMessage);
    co_await http::async_read_header(stream, buffer, parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      error = ec == beast::error::timeout ? "timed out waiting for the answer"
                                          : "reading the answer failed: " + ec.message();
      co_return;
    }
    r.status = parser.get().result_int();
    r.session = std::string(parser.get()["Mcp-Session-Id"]);
    const std::string_view type = parser.get()[http::field::content_type];
    const bool sse = type.starts_with("text/event-stream");
    // An event stream may stay open after our answer: read only until the answer is there.
    while (!parser.is_done()) {
      co_await http::async_read_some(stream, buffer, parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::end_of_stream) break;
      if (ec) {
        error = ec == beast::error::timeout ? "timed out reading the answer"
                                            : "reading the answer failed: " + ec.message();
        co_return;
      }
      if (sse && id >= 0 && r.status == 200) {
        for (const std::string& data : sse_data(parser.get().body(), false)) {
          find_answer(data, id, r);
          if (!r.answer.empty()) break;
        }
        if (!r.answer.empty()) break;
      }
    }
    r.body = std::move(parser.get().body());
    if (id < 0 || !r.answer.empty()) co_return;
    if (sse) {
      for (const std::string& data : sse_data(r.body, true)) {
        find_answer(data, id, r);
        if (!r.answer.empty()) break;
      }
    } else if (!r.body.empty()) {
      find_answer(r.body, id, r);
    }
  }

  bool run(const http::request<http::string_body>& req, int64_t id, result& r, std::string& error,
           std::string_view what) {
    const clock::time_point deadline = clock::now() + opts_.timeout;
    bool finished = false;
    std::string failure;
    asio::io_context ioc;  // last, so the coroutine frames it owns go first
    asio::co_spawn(ioc, flow(req, id, r, failure, deadline), [&](std::exception_ptr e) {
      finished = true;
      if (e) failure = "unexpected failure in the HTTP client";
    });
    ioc.run_for(opts_.timeout + std::chrono::milliseconds(100));
    if (!finished) {
      error =
          std::string(what) + ": timed out after " + std::to_string(opts_.timeout.count()) + " ms";
      return false;
    }
    if (!failure.empty()) {
      error = std::string(what) + ": " + failure;
      return false;
    }
    return true;
  }

  parsed_url url_;
  client_options opts_;
  std::string version_;
  std::string session_;
  dom::parser parser_;
};

// ---------------------------------------------------------------------------------------------
// stdio: a child process, one JSON-RPC message per line each way.

class stdio_transport final : public transport {
 public:
  explicit stdio_transport(const client_options& opts) : opts_(opts) {}
  ~stdio_transport() override { close(); }

  bool start(const std::string& command, std::string& error) {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
      error = std::string("pipe: ") + std::strerror(errno);
      return false;
    }
    pid_ = fork();
    if (pid_ < 0) {
      error = std::string("fork: ") + std::strerror(errno);
      return false;
    }
    if (pid_ == 0) {
      setpgid(0, 0);  // its own group: SIGTERM reaches `sh -c`'s children too
      dup2(in[0], 0);
      dup2(out[1], 1);
      dup2(err[1], 2);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      ::signal(SIGPIPE, SIG_DFL);
      execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    setpgid(pid_, pid_);  // also here, so the group exists whichever side runs first
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    in_ = in[1];
    out_ = out[0];
    err_ = err[0];
    for (const int fd : {in_, out_, err_})
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    return true;
  }

  bool exchange(const std::string& message, int64_t id, std::string_view what, std::string& answer,
                std::string& error) override {
    const clock::time_point deadline = clock::now() + opts_.timeout;
    std::string line = message + "\n";
    if (!write_all(line, deadline, what, error)) return false;
    if (id < 0) return true;
    std::string text;
    for (;;) {
      if (!read_line(text, deadline, what, error)) return false;
      if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
      int64_t request_id = 0;
      switch (inspect(parser_, text, id, request_id)) {
        case incoming::ours:
          answer = std::move(text);
          return true;
        case incoming::garbage:
          error = std::string(what) +
                  ": the server wrote something that is not JSON-RPC: " + snippet(text);
          return false;
        case incoming::server_request: {
          // We offer no client capabilities; say so rather than leave the server waiting.
          std::string reply = "{\"jsonrpc\":\"2.0\",\"id\":" + std::to_string(request_id) +
                              ",\"error\":{\"code\":-32601,\"message\":\"not supported by "
                              "sluice init\"}}\n";
          if (!write_all(reply, deadline, what, error)) return false;
          break;
        }
        case incoming::other:
          break;
      }
    }
  }

  void close() override {
    if (pid_ <= 0) return;
    if (in_ >= 0) ::close(in_);  // a well-behaved server exits at EOF
    in_ = -1;
    const auto grace = std::min(opts_.timeout, std::chrono::milliseconds(2000));
    if (!wait_exit(grace)) {
      ::kill(-pid_, SIGTERM);
      if (!wait_exit(grace)) {
        ::kill(-pid_, SIGKILL);
        (void)wait_exit(std::chrono::milliseconds(-1));
      }
    }
    for (int* fd : {&out_, &err_, &pidfd_}) {
      if (*fd >= 0) ::close(*fd);
      *fd = -1;
    }
    pid_ = -1;
  }

 private:
  // Reaps the child within `timeout` (negative: no limit).
  bool wait_exit(std::chrono::milliseconds timeout) {
    if (reaped_) return true;
    if (pidfd_ >= 0 && timeout.count() >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    }
    int status = 0;
    const int flags = (pidfd_ >= 0 || timeout.count() < 0) ? 0 : WNOHANG;
    if (waitpid(pid_, &status, flags) != pid_) return false;
    reaped_ = true;
    exit_status_ = status;
    return true;
  }

  static int remaining_ms(clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 1 << 30));
  }

  std::string exited_text() {
    std::string s = "the server closed its output";
    if (wait_exit(std::chrono::milliseconds(200))) {
      if (WIFEXITED(exit_status_)) {
        s = "the server exited with status " + std::to_string(WEXITSTATUS(exit_status_));
      } else if (WIFSIGNALED(exit_status_)) {
        s = "the server was killed by signal " + std::to_string(WTERMSIG(exit_status_));
      }
    }
    drain_stderr();
    if (!stderr_.empty()) s += "; its stderr ends with: " + snippet(stderr_, kStderrTail);
    return s;
  }

  void drain_stderr() {
    char buf[4096];
    for (;;) {
      const ssize_t n = err_ >= 0 ? ::read(err_, buf, sizeof buf) : -1;
      if (n <= 0) return;
      stderr_.append(buf, static_cast<size_t>(n));
      if (opts_.verbose) fwrite(buf, 1, static_cast<size_t>(n), stderr);
      if (stderr_.size() > kStderrTail) stderr_.erase(0, stderr_.size() - kStderrTail);
    }
  }

  bool write_all(std::string_view data, clock::time_point deadline, std::string_view what,
                 std::string& error) {
    if (opts_.verbose) fprintf(stderr, "-> %.*s", static_cast<int>(data.size()), data.data());
    while (!data.empty()) {
      const ssize_t n = ::write(in_, data.data(), data.size());
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN) {
        error = std::string(what) + ": cannot write to the server (" + std::strerror(errno) +
                "): " + exited_text();
        return false;
      }
      pollfd p{in_, POLLOUT, 0};
      const int left = remaining_ms(deadline);
      if (left == 0 || poll(&p, 1, left) == 0) {
        error = std::string(what) + ": timed out writing to the server";
        return false;
      }
    }
    return true;
  }

  bool read_line(std::string& line, clock::time_point deadline, std::string_view what,
                 std::string& error) {
    for (;;) {
      if (const size_t nl = buffer_.find('\n'); nl != std::string::npos) {
        line.assign(buffer_, 0, nl);
        buffer_.erase(0, nl + 1);
        if (opts_.verbose) fprintf(stderr, "<- %s\n", line.c_str());
        return true;
      }
      if (buffer_.size() > kMaxMessage) {
        error = std::string(what) + ": a line from the server exceeds " +
                std::to_string(kMaxMessage) + " bytes";
        return false;
      }
      pollfd p[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
      const int left = remaining_ms(deadline);
      if (left == 0 || poll(p, 2, left) == 0) {
        error = std::string(what) + ": timed out after " + std::to_string(opts_.timeout.count()) +
                " ms waiting for the server";
        return false;
      }
      if (p[1].revents != 0) drain_stderr();
      if (p[0].revents == 0) continue;
      char buf[65536];
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n > 0) {
        buffer_.append(buf, static_cast<size_t>(n));
      } else if (n == 0) {
        error = std::string(what) + ": " + exited_text();
        return false;
      } else if (errno != EAGAIN && errno != EINTR) {
        error = std::string(what) + ": reading from the server: " + std::strerror(errno);
        return false;
      }
    }
  }

  client_options opts_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int in_ = -1, out_ = -1, err_ = -1;
  bool reaped_ = false;
  int exit_status_ = 0;
  std::string buffer_;  // stdout bytes not yet returned as lines
  std::string stderr_;  // the tail of the child's stderr
  dom::parser parser_;
};

// ---------------------------------------------------------------------------------------------
// The handshake and the listing, whatever the transport.

std::string rpc_error_text(dom::object msg) {
  dom::object err;
  if (msg["error"].get_object().get(err)) return "";
  int64_t code = 0;
  std::string_view text;
  if (err["code"].get_int64().get(code)) code = 0;
  if (err["message"].get_string().get(text)) text = "";
  return "error " + std::to_string(code) + ": " + std::string(text);
}

std::optional<bool> hint(dom::object annotations, std::string_view key) {
  bool v = false;
  if (annotations[key].get_bool().get(v) != simdjson::SUCCESS) return std::nullopt;
  return v;
}

bool session(transport& t, const client_options& opts, server_listing& out, std::string& error) {
  dom::parser parser;
  std::string answer;
  int64_t next_id = 1;

  // initialize
  const std::string init = std::string(
                               "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
                               "\"params\":{\"protocolVersion\":\"") +
                           std::string(kProtocolVersion) +
                           "\",\"capabilities\":{},\"clientInfo\":{\"name\":\"sluice-init\","
                           "\"version\":\"" SLUICE_VERSION "\"}}}";
  if (!t.exchange(init, next_id++, "initialize", answer, error)) return false;
  dom::element doc;
  dom::object msg, result;
  if (parser.parse(answer).get(doc) || doc.get_object().get(msg)) {
    error = "initialize: the answer is not a JSON object";
    return false;
  }
  if (const std::string e = rpc_error_text(msg); !e.empty()) {
    error = "initialize failed: the server answered " + e;
    return false;
  }
  std::string_view version;
  if (msg["result"].get_object().get(result) ||
      result["protocolVersion"].get_string().get(version)) {
    error = "initialize: the answer has no result.protocolVersion";
    return false;
  }
  out.server.protocol_version = version;
  dom::object info;
  if (result["serverInfo"].get_object().get(info) == simdjson::SUCCESS) {
    std::string_view s;
    if (info["name"].get_string().get(s) == simdjson::SUCCESS) out.server.name = s;
    if (info["version"].get_string().get(s) == simdjson::SUCCESS) out.server.version = s;
  }
  dom::object caps, tools_cap;
  const bool has_tools = result["capabilities"].get_object().get(caps) == simdjson::SUCCESS &&
                         caps["tools"].get_object().get(tools_cap) == simdjson::SUCCESS;
  t.set_protocol_version(out.server.protocol_version);

  if (!t.exchange("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", -1,
                  "notifications/initialized", answer, error))
    return false;
  if (!has_tools) {
    std::fprintf(stderr, "sluice init: warning: the server declares no tools capability\n");
    return true;
  }

  // tools/list, page after page
  std::set<std::string> cursors;
  std::string cursor;
  for (size_t page = 0;; ++page) {
    if (page == opts.max_pages) {
      error = "tools/list: still more pages after " + std::to_string(opts.max_pages) +
              " (raise --max-pages if the server really has that many)";
      return false;
    }
    std::string req =
        "{\"jsonrpc\":\"2.0\",\"id\":" + std::to_string(next_id) + ",\"method\":\"tools/list\"";
    if (page == 0) {
      req += "}";
    } else {
      req += ",\"params\":{\"cursor\":";
      append_json_string(req, cursor);
      req += "}}";
    }
    const std::string what = "tools/list page " + std::to_string(page + 1);
    if (!t.exchange(req, next_id++, what, answer, error)) return false;
    dom::array tools;
    if (parser.parse(answer).get(doc) || doc.get_object().get(msg)) {
      error = what + ": the answer is not a JSON object";
      return false;
    }
    if (const std::string e = rpc_error_text(msg); !e.empty()) {
      error = what + " failed: the server answered " + e;
      return false;
    }
    if (msg["result"].get_object().get(result) || result["tools"].get_array().get(tools)) {
      error = what + ": the answer has no result.tools array: " + snippet(answer);
      return false;
    }
    size_t index = 0;
    for (dom::element e : tools) {
      dom::object tool;
      std::string_view name;
      if (e.get_object().get(tool) || tool["name"].get_string().get(name) || name.empty()) {
        error = what + ": tool " + std::to_string(index) +
                " has no name: " + snippet(simdjson::minify(e));
        return false;
      }
      tool_info ti;
      ti.name = name;
      std::string_view description;
      if (tool["description"].get_string().get(description) == simdjson::SUCCESS)
        ti.description = description;
      dom::object ann;
      if (tool["annotations"].get_object().get(ann) == simdjson::SUCCESS) {
        ti.annotations.read_only = hint(ann, "readOnlyHint");
        ti.annotations.destructive = hint(ann, "destructiveHint");
        ti.annotations.idempotent = hint(ann, "idempotentHint");
        ti.annotations.open_world = hint(ann, "openWorldHint");
      }
      out.tools.push_back(std::move(ti));
      ++index;
    }
    dom::element next;
    if (result["nextCursor"].get(next) != simdjson::SUCCESS || next.is_null()) break;
    std::string_view next_cursor;
    if (next.get_string().get(next_cursor)) {
      error = what + ": nextCursor is not a string";
      return false;
    }
    if (next_cursor.empty()) break;
    if (!cursors.insert(std::string(next_cursor)).second) {
      error = what + ": cursor loop: the server returned nextCursor \"" + snippet(next_cursor, 80) +
              "\" a second time";
      return false;
    }
    cursor = next_cursor;
  }
  return true;
}

}  // namespace

bool list_tools_http(const std::string& url, const client_options& opts, server_listing& out,
                     std::string& error) {
  parsed_url parsed;
  if (!parse_http_url(url, parsed, error)) return false;
  http_transport t(std::move(parsed), opts);
  const bool ok = session(t, opts, out, error);
  t.close();
  return ok;
}

bool list_tools_command(const std::string& command, const client_options& opts, server_listing& out,
                        std::string& error) {
  stdio_transport t(opts);
  if (!t.start(command, error)) return false;
  const bool ok = session(t, opts, out, error);
  t.close();
  return ok;
}

}  // namespace sluice::init
