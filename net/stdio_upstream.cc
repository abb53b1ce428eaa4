#include "net/stdio_upstream.h"

#include <fcntl.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "net/http1.h"
#include "net/random.h"

namespace sluice::net {

namespace {

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kEventStream = "text/event-stream";
constexpr int64_t kMs = 1'000'000;
constexpr int64_t kBackoffMin = 100 * kMs;
constexpr int64_t kBackoffMax = 5000 * kMs;
constexpr int64_t kStableLife = 10'000 * kMs;  // a process that lived this long resets backoff
constexpr size_t kMaxLine = 16 << 20;          // a longer stdout line is garbage: restart

// 128 random bits in hex, then "-" and the owning shard's id in decimal: any shard can tell
// which shard's process a session lives on (net/stdio_relay.h); the random part is what keeps
// an id unguessable.
std::string new_session_id(unsigned shard) {
  unsigned char raw[16];
  fill_random(raw, sizeof raw);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (unsigned char c : raw) {
    id += kHex[c >> 4];
    id += kHex[c & 15];
  }
  id += '-';
  id += std::to_string(shard);
  return id;
}

// The compact text of a JSON value (ids and progress tokens are compared by it).
std::string compact(simdjson::dom::element e) {
  return simdjson::minify(e);
}

// Stops the handler's interest in a pipe: closes it (gracefully: output is flushed first) and
// unhooks it from its session so that a session object may go before the pipe's last callback.
void detach(engine::connection*& c) {
  if (c == nullptr) return;
  c->user = nullptr;
  c->close();
  c = nullptr;
}

}  // namespace

bool split_command(std::string_view line, std::vector<std::string>& argv, std::string& error) {
  argv.clear();
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
      ++i;
    if (i == line.size()) break;
    std::string word;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') {
      const char c = line[i++];
      if (c == '\'' || c == '"') {
        const size_t end = line.find(c, i);
        if (end == std::string_view::npos) {
          error = "unterminated quote";
          return false;
        }
        for (size_t j = i; j < end; ++j) {
          if (c == '"' && line[j] == '\\' && j + 1 < end) ++j;
          word += line[j];
        }
        i = end + 1;
      } else {
        word += c;
      }
    }
    argv.push_back(std::move(word));
  }
  if (argv.empty()) error = "empty command";
  return !argv.empty();
}

struct stdio_upstream::exchange_rec {
  upstream_exchange* ex = nullptr;  // null: free
  session* s = nullptr;
  uint32_t index = 0;  // in recs_
  uint32_t gen = 0;
  bool get = false;        // the session's GET (server-to-client) stream
  bool held = false;       // hold_answer(): its client is slow, the session's stdout waits
  bool head_sent = false;  // on_head called
  bool sse = false;
  bool batch = false;
  std::vector<std::string> ids;     // request ids still awaited
  std::vector<std::string> tokens;  // progress tokens of those requests
  int64_t deadline = 0;             // steady ns until the first message; 0 = none
};

struct stdio_upstream::session {
  std::string id;
  pid_t pid = -1;
  engine::connection* in = nullptr;
  engine::connection* out = nullptr;
  engine::connection* err = nullptr;
  tag tags[3];
  std::string out_line, err_line;
  std::string init_params;  // compact params of the client's initialize, replayed on restart
  std::vector<exchange_rec*> posts;  // open POST exchanges, oldest first
  exchange_rec* get = nullptr;
  std::deque<std::string> backlog;
  bool stopping = false;    // no restart: DELETE, shutdown, or never initialized
  bool restarting = false;  // dead, restart due at restart_at
  int64_t restart_at = 0;
  int64_t started_at = 0;
  int64_t backoff = kBackoffMin;
  int64_t term_at = 0, kill_at = 0;  // stop escalation deadlines; 0 = not armed
  int64_t last_used = 0;             // steady ns: the last request, or the last exchange's end
  bool term_sent = false;
  int exit_status = -1;
  uint32_t holds = 0;  // exchanges held (hold_answer): stdout is not read while any is
};

stdio_upstream::stdio_upstream(engine::shard& shard, stdio_options options)
    : shard_(shard), options_(std::move(options)) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0) {
    clock_peer_ = sv[1];
    clock_ = shard_.adopt(sv[0], this);
  }
}

stdio_upstream::~stdio_upstream() {
  for (auto& s : sessions_) {
    if (s->pid > 0) {
      ::kill(s->pid, SIGKILL);
      reap(s.get(), true);
    }
    for (auto& t : s->tags)
      t.s = nullptr;
  }
  if (clock_peer_ >= 0) ::close(clock_peer_);
}

bool stdio_upstream::spawn(session* s, std::string& error) {
  int io_in[2], io_out[2], io_err[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, io_in) != 0) {
    error = std::strerror(errno);
    return false;
  }
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, io_out) != 0) {
    error = std::strerror(errno);
    ::close(io_in[0]), ::close(io_in[1]);
    return false;
  }
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, io_err) != 0) {
    error = std::strerror(errno);
    ::close(io_in[0]), ::close(io_in[1]), ::close(io_out[0]), ::close(io_out[1]);
    return false;
  }
  std::vector<char*> argv;
  for (const std::string& a : options_.argv)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // fork + exec rather than posix_spawn, for PR_SET_PDEATHSIG: the child is SIGKILLed if the
  // shard thread that started it goes away (Sluice killed outright), so no server outlives us.
  // Between fork and exec the child makes only async-signal-safe calls. An exec failure comes
  // back as its errno on a close-on-exec pipe.
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    error = std::strerror(errno);
    for (int fd : {io_in[0], io_in[1], io_out[0], io_out[1], io_err[0], io_err[1]})
      ::close(fd);
    return false;
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    // The shard threads block the shutdown signals; the child starts with none blocked and
    // default dispositions, in a process group of its own (a terminal's ^C is Sluice's).
    setpgid(0, 0);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGQUIT})
      signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (dup2(io_in[1], 0) < 0 || dup2(io_out[1], 1) < 0 || dup2(io_err[1], 2) < 0) _exit(127);
    execvp(argv[0], argv.data());
    const int e = errno;
    (void)!write(report[1], &e, sizeof e);
    _exit(127);
  }
  const int fork_errno = errno;
  ::close(report[1]);
  int rc = pid < 0 ? fork_errno : 0;
  if (pid > 0) {
    int e = 0;
    ssize_t n;
    while ((n = ::read(report[0], &e, sizeof e)) < 0 && errno == EINTR) {
    }
    if (n == static_cast<ssize_t>(sizeof e)) {
      rc = e;
      ::waitpid(pid, nullptr, 0);
    }
  }
  ::close(report[0]);
  ::close(io_in[1]), ::close(io_out[1]), ::close(io_err[1]);
  if (rc != 0) {
    error = "cannot start '" + options_.argv[0] + "': " + std::strerror(rc);
    ::close(io_in[0]), ::close(io_out[0]), ::close(io_err[0]);
    return false;
  }
  for (int fd : {io_in[0], io_out[0], io_err[0]})
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  s->pid = pid;
  s->started_at = shard_.now_ns();
  s->exit_status = -1;
  s->term_sent = false;
  s->term_at = s->kill_at = 0;
  s->out_line.clear();
  s->err_line.clear();
  for (uint8_t r = 0; r < 3; ++r)
    s->tags[r] = {s, r};
  s->in = shard_.adopt(io_in[0], this);
  s->out = shard_.adopt(io_out[0], this);
  if (s->out != nullptr && s->holds != 0) s->out->pause_recv();
  s->err = shard_.adopt(io_err[0], this);
  if (s->in) s->in->user = &s->tags[0];
  if (s->out) s->out->user = &s->tags[1];
  if (s->err) s->err->user = &s->tags[2];
  if (!s->in || !s->out) {
    error = "out of engine slots for the process's pipes";
    ::kill(pid, SIGKILL);
    return false;  // the EOFs of what was adopted reap it
  }
  std::fprintf(stderr, "sluice: upstream process %d started for session %.8s…\n", pid,
               s->id.c_str());
  return true;
}

uint64_t stdio_upstream::new_exchange(session* s, upstream_exchange* ex, bool get) {
  uint32_t idx;
  if (free_recs_.empty()) {
    idx = static_cast<uint32_t>(recs_.size());
    recs_.push_back(std::make_unique<exchange_rec>());
  } else {
    idx = free_recs_.back();
    free_recs_.pop_back();
  }
  exchange_rec* r = recs_[idx].get();
  const uint32_t gen = r->gen + 1;
  *r = exchange_rec{};
  r->index = idx;
  r->gen = gen;
  r->ex = ex;
  r->s = s;
  r->get = get;
  return (uint64_t(idx + 1) << 32) | gen;
}

stdio_upstream::exchange_rec* stdio_upstream::rec(uint64_t handle) {
  const uint64_t idx = (handle >> 32) - 1;
  if (handle == 0 || idx >= recs_.size()) return nullptr;
  exchange_rec* r = recs_[idx].get();
  return r->ex != nullptr && r->gen == uint32_t(handle) ? r : nullptr;
}

void stdio_upstream::hold_answer(uint64_t handle, bool hold) {
  exchange_rec* r = rec(handle);
  if (r == nullptr || r->s == nullptr || r->held == hold) return;
  r->held = hold;
  hold_output(r->s, hold);
}

// One process writes every answer of its session: its stdout is read while no exchange of the
// session is held (a new process after a restart starts paused if one still is).
void stdio_upstream::hold_output(session* s, bool hold) {
  if (hold ? s->holds++ != 0 : --s->holds != 0) return;
  if (s->out == nullptr) return;
  if (hold) {
    s->out->pause_recv();
  } else {
    s->out->resume_recv();
  }
}

void stdio_upstream::drop(exchange_rec* r) {
  session* s = r->s;
  if (s != nullptr && r->held) hold_output(s, false);
  r->held = false;
  if (s != nullptr) {
    s->last_used = shard_.now_ns();
    if (s->get == r) s->get = nullptr;
    std::erase(s->posts, r);
  }
  r->ex = nullptr;
  r->s = nullptr;
  // The session's last exchange ended: its idle time starts now.
  if (s != nullptr && s->posts.empty() && s->get == nullptr && options_.idle_timeout.count() != 0)
    arm_clock();
  free_recs_.push_back(r->index);
}

void stdio_upstream::finish(exchange_rec* r) {
  upstream_exchange* ex = r->ex;
  drop(r);
  ex->on_end();
}

void stdio_upstream::fail(exchange_rec* r, upstream_error e, std::string_view detail) {
  upstream_exchange* ex = r->ex;
  drop(r);
  ex->on_error(e, detail);
}

uint64_t stdio_upstream::send(const upstream_request& req, upstream_exchange* ex) {
  auto refuse = [&](int status, std::string_view message) -> uint64_t {
    // Answered as the HTTP server would: a status and a JSON-RPC error without an id.
    upstream_response_head head;
    head.status = status;
    head.content_type = kJson;
    ex->on_head(head);
    scratch_ = R"({"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":")";
    scratch_ += message;
    scratch_ += "\"}}";
    ex->on_body(scratch_);
    ex->on_end();
    return 0;
  };
  if (shutting_down_) {
    ex->on_error(upstream_error::shutting_down, "sluice is stopping");
    return 0;
  }
  const std::string_view sid = header_value(req.headers, "Mcp-Session-Id");
  session* s = nullptr;
  if (!sid.empty()) {
    auto it = by_id_.find(std::string(sid));
    if (it == by_id_.end()) return refuse(404, "Session not found");
    s = it->second;
    s->last_used = shard_.now_ns();
  }

  if (req.method == "DELETE") {
    if (s == nullptr) return refuse(400, "Bad Request: Mcp-Session-Id header is required");
    by_id_.erase(s->id);
    begin_stop(s);
    upstream_response_head head;
    head.status = 200;
    ex->on_head(head);
    ex->on_end();
    return 0;
  }
  if (req.method == "GET") {
    if (s == nullptr) return refuse(400, "Bad Request: Mcp-Session-Id header is required");
    if (s->get != nullptr)
      return refuse(409, "Conflict: only one SSE stream is allowed per session");
    const uint64_t h = new_exchange(s, ex, true);
    exchange_rec* r = rec(h);
    s->get = r;
    upstream_response_head head;
    head.status = 200;
    head.content_type = kEventStream;
    head.mcp_session_id = s->id;
    head.chunked_or_streaming = true;
    r->head_sent = r->sse = true;
    ex->on_head(head);
    while (!s->backlog.empty() && s->get == r) {
      std::string m = std::move(s->backlog.front());
      s->backlog.pop_front();
      deliver(r, m, false);
    }
    return h;
  }

  // POST: the gateway has validated the body (a message or a batch).
  simdjson::dom::element doc;
  if (post_parser_.parse(req.body.data(), req.body.size()).get(doc) != simdjson::SUCCESS) {
    return refuse(400, "Parse error");
  }
  std::vector<simdjson::dom::element> msgs;
  const bool batch = doc.is_array();
  if (batch) {
    for (simdjson::dom::element e : doc.get_array())
      msgs.push_back(e);
  } else {
    msgs.push_back(doc);
  }
  bool initialize = false;
  std::string init_params;
  for (simdjson::dom::element m : msgs) {
    std::string_view method;
    if (m["method"].get(method) == simdjson::SUCCESS && method == "initialize") {
      initialize = true;
      simdjson::dom::element params;
      if (m["params"].get(params) == simdjson::SUCCESS) init_params = compact(params);
    }
  }
  if (s == nullptr) {
    if (!initialize) return refuse(400, "Bad Request: Mcp-Session-Id header is required");
    if (by_id_.size() >= options_.max_sessions) {
      return refuse(503, "too many stdio sessions on this shard");
    }
    auto owned = std::make_unique<session>();
    s = owned.get();
    s->id = new_session_id(shard_.id());
    s->last_used = shard_.now_ns();
    std::string error;
    sessions_.push_back(std::move(owned));
    if (!spawn(s, error)) {
      s->stopping = true;
      ex->on_error(upstream_error::connect_failed, error);
      maybe_forget(s);
      return 0;
    }
    by_id_.emplace(s->id, s);
  } else if (initialize) {
    return refuse(400, "Bad Request: the session is already initialized");
  }
  if (s->restarting || s->in == nullptr) {
    ex->on_error(upstream_error::connect_failed, "the upstream process is restarting");
    return 0;
  }
  if (initialize) s->init_params = std::move(init_params);

  const uint64_t h = new_exchange(s, ex, false);
  exchange_rec* r = rec(h);
  r->batch = batch;
  for (simdjson::dom::element m : msgs) {
    simdjson::dom::element id;
    std::string_view method;
    if (m["method"].get(method) == simdjson::SUCCESS && m["id"].get(id) == simdjson::SUCCESS) {
      r->ids.push_back(compact(id));
      simdjson::dom::element token;
      if (m.at_pointer("/params/_meta/progressToken").get(token) == simdjson::SUCCESS) {
        r->tokens.push_back(compact(token));
      }
    }
    // One line per message: a batch is split (stdio servers read single messages); a single
    // message goes byte for byte, its line breaks (JSON whitespace only) made blanks.
    if (batch) {
      scratch_ = compact(m);
    } else {
      scratch_.assign(req.body);
      std::replace_if(
          scratch_.begin(), scratch_.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
    }
    scratch_ += '\n';
    s->in->send(std::string_view(scratch_));
  }
  if (r->ids.empty()) {
    // Only notifications and responses: accepted.
    upstream_response_head head;
    head.status = 202;
    head.mcp_session_id = s->id;
    r->head_sent = true;
    ex->on_head(head);
    finish(r);
    return 0;
  }
  s->posts.push_back(r);
  r->deadline = shard_.now_ns() + options_.response_timeout.count() * kMs;
  arm_clock();
  return h;
}

void stdio_upstream::deliver(exchange_rec* r, std::string_view json, bool final_single) {
  upstream_exchange* ex = r->ex;
  if (!r->head_sent) {
    r->head_sent = true;
    upstream_response_head head;
    head.status = 200;
    head.mcp_session_id = r->s->id;
    if (final_single) {
      head.content_type = kJson;
      ex->on_head(head);
      ex->on_body(json);
      return;
    }
    head.content_type = kEventStream;
    head.chunked_or_streaming = true;
    r->sse = true;
    ex->on_head(head);
  }
  r->deadline = 0;
  scratch_ = "event: message\ndata: ";
  scratch_ += json;
  scratch_ += "\n\n";
  ex->on_body(scratch_);
}

void stdio_upstream::handle_line(session* s, std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
    line.remove_suffix(1);
  if (line.empty()) return;
  simdjson::dom::element m;
  if (line_parser_.parse(line.data(), line.size()).get(m) != simdjson::SUCCESS || !m.is_object()) {
    std::fprintf(stderr,
                 "sluice: upstream process %d wrote a line that is not a JSON-RPC message\n",
                 s->pid);
    return;
  }
  std::string_view method;
  const bool has_method = m["method"].get(method) == simdjson::SUCCESS;
  simdjson::dom::element id;
  const bool has_id = m["id"].get(id) == simdjson::SUCCESS;
  std::string id_text = has_id ? compact(id) : std::string();
  std::string token, cancelled;
  if (has_method && method == "notifications/progress") {
    simdjson::dom::element t;
    if (m.at_pointer("/params/progressToken").get(t) == simdjson::SUCCESS) token = compact(t);
  } else if (has_method && method == "notifications/cancelled") {
    simdjson::dom::element t;
    if (m.at_pointer("/params/requestId").get(t) == simdjson::SUCCESS) cancelled = compact(t);
  }
  route(s, line, !has_method && has_id, id_text, token, cancelled);
}

void stdio_upstream::route(session* s, std::string_view json, bool is_response, std::string_view id,
                           std::string_view token, std::string_view cancelled) {
  if (is_response) {
    if (id == "\"sluice-restart\"") return;  // our own initialize after a restart
    for (exchange_rec* r : s->posts) {
      auto it = std::find(r->ids.begin(), r->ids.end(), id);
      if (it == r->ids.end()) continue;
      r->ids.erase(it);
      const bool last = r->ids.empty();
      deliver(r, json, last && !r->batch && !r->sse);
      if (last) finish(r);
      return;
    }
    return;  // an answer nobody waits for (its POST went away)
  }
  exchange_rec* target = nullptr;
  for (exchange_rec* r : s->posts) {
    if (!token.empty() && std::find(r->tokens.begin(), r->tokens.end(), token) != r->tokens.end())
      target = r;
    if (!cancelled.empty() && std::find(r->ids.begin(), r->ids.end(), cancelled) != r->ids.end())
      target = r;
  }
  if (target == nullptr && !s->posts.empty()) target = s->posts.back();
  if (target == nullptr) target = s->get;
  if (target != nullptr) return deliver(target, json, false);
  if (s->backlog.size() >= options_.max_backlog) s->backlog.pop_front();
  s->backlog.emplace_back(json);
}

void stdio_upstream::on_open(engine::connection& conn) {
  (void)conn;
}

void stdio_upstream::on_data(engine::connection& conn, std::span<const char> bytes) {
  auto* t = static_cast<tag*>(conn.user);
  if (t == nullptr || t->s == nullptr) return;
  session* s = t->s;
  if (t->role == 0) return;
  std::string& buf = t->role == 1 ? s->out_line : s->err_line;
  // What buf holds from before is part of one line (complete lines were taken): only the new
  // bytes are searched, so a long line read piece by piece costs linear time, not quadratic.
  size_t from = buf.size();
  buf.append(bytes.data(), bytes.size());
  size_t start = 0;
  for (size_t nl; (nl = buf.find('\n', from)) != std::string::npos; start = from = nl + 1) {
    const std::string_view line(buf.data() + start, nl - start);
    if (t->role == 1) {
      handle_line(s, line);
      if (conn.user == nullptr) return;
    } else {
      std::fprintf(stderr, "sluice: upstream %d: %.*s\n", s->pid, static_cast<int>(line.size()),
                   line.data());
    }
  }
  buf.erase(0, start);
  if (buf.size() > kMaxLine) {
    std::fprintf(stderr, "sluice: upstream process %d: line over %zu bytes, restarting it\n",
                 s->pid, kMaxLine);
    buf.clear();
    if (s->pid > 0) ::kill(s->pid, SIGKILL);
  }
}

void stdio_upstream::on_eof(engine::connection& conn) {
  auto* t = static_cast<tag*>(conn.user);
  if (t == nullptr || t->s == nullptr) return conn.close();
  session* s = t->s;
  engine::connection*& slot = t->role == 0 ? s->in : t->role == 1 ? s->out : s->err;
  detach(slot);
  // stdout closed: the process is gone (or as good as: it can no longer answer).
  if (t->role == 1) return child_gone(s);
  maybe_forget(s);
}

void stdio_upstream::child_gone(session* s) {
  detach(s->in);
  detach(s->out);
  if (s->pid > 0) {
    // stdout is closed; give it stop_grace to exit, then it is killed (see check_timers).
    reap(s, false);
    if (s->pid > 0 && s->kill_at == 0)
      s->kill_at = shard_.now_ns() + options_.stop_grace.count() * kMs;
  }
  std::string detail = "the upstream process exited";
  if (s->exit_status >= 0) detail += " (status " + std::to_string(s->exit_status) + ")";
  while (!s->posts.empty())
    fail(s->posts.front(), upstream_error::reset, detail);
  if (!s->stopping && !shutting_down_ && !s->init_params.empty()) {
    if (shard_.now_ns() - s->started_at > kStableLife) s->backoff = kBackoffMin;
    s->restarting = true;
    s->restart_at = shard_.now_ns() + s->backoff;
    std::fprintf(stderr, "sluice: %s; restarting it in %lld ms\n", detail.c_str(),
                 static_cast<long long>(s->backoff / kMs));
    s->backoff = std::min(s->backoff * 2, kBackoffMax);
  } else {
    s->stopping = true;
    by_id_.erase(s->id);
    if (s->get != nullptr) finish(s->get);
  }
  arm_clock();
  maybe_forget(s);
}

void stdio_upstream::begin_stop(session* s) {
  s->stopping = true;
  s->restarting = false;
  while (!s->posts.empty())
    fail(s->posts.front(), upstream_error::shutting_down, "the session ended");
  if (s->get != nullptr) finish(s->get);
  detach(s->in);  // close stdin: flush what is queued, then shutdown(SHUT_WR)
  if (s->pid > 0) s->term_at = shard_.now_ns() + options_.stop_grace.count() * kMs;
  arm_clock();
  maybe_forget(s);
}

void stdio_upstream::reap(session* s, bool block) {
  if (s->pid <= 0) return;
  int status = 0;
  const pid_t r = ::waitpid(s->pid, &status, block ? 0 : WNOHANG);
  if (r == s->pid || (r < 0 && errno == ECHILD)) {
    s->exit_status =
        r == s->pid ? (WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)) : -1;
    s->pid = -1;
    s->term_at = s->kill_at = 0;
  }
}

// A session object goes once its process is reaped and its pipes closed, unless it restarts.
void stdio_upstream::maybe_forget(session* s) {
  if (s->pid > 0 || s->restarting || s->in || s->out || s->err) return;
  if (!s->stopping) return;
  if (s->get != nullptr) finish(s->get);
  auto it = by_id_.find(s->id);
  if (it != by_id_.end() && it->second == s) by_id_.erase(it);
  std::erase_if(sessions_, [s](const auto& p) { return p.get() == s; });
  if (shutting_down_ && sessions_.empty() && clock_ != nullptr) {
    clock_->close();
    clock_ = nullptr;
  }
}

void stdio_upstream::check_timers() {
  const int64_t now = shard_.now_ns();
  for (size_t i = 0; i < sessions_.size(); ++i) {
    session* s = sessions_[i].get();
    for (size_t j = 0; j < s->posts.size();) {
      exchange_rec* r = s->posts[j];
      if (r->deadline != 0 && r->deadline <= now) {
        fail(r, upstream_error::response_timeout, "the upstream process did not answer in time");
      } else {
        ++j;
      }
    }
    if (s->pid > 0) reap(s, false);
    if (s->pid > 0 && s->term_at != 0 && s->term_at <= now && !s->term_sent) {
      ::kill(s->pid, SIGTERM);
      s->term_sent = true;
      s->kill_at = now + options_.stop_grace.count() * kMs;
    }
    if (s->pid > 0 && s->kill_at != 0 && s->kill_at <= now) {
      ::kill(s->pid, SIGKILL);
      reap(s, true);
    }
    if (s->restarting && s->restart_at <= now && !shutting_down_) {
      s->restarting = false;
      if (s->pid > 0) {
        ::kill(s->pid, SIGKILL);
        reap(s, true);
      }
      std::string error;
      if (spawn(s, error)) {
        // The session goes on: the new process is initialized as the client did it.
        scratch_ = R"({"jsonrpc":"2.0","id":"sluice-restart","method":"initialize","params":)";
        scratch_ += s->init_params;
        scratch_ += "}\n{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n";
        s->in->send(std::string_view(scratch_));
        std::fprintf(stderr, "sluice: session %.8s… restarted (process %d)\n", s->id.c_str(),
                     s->pid);
      } else {
        std::fprintf(stderr, "sluice: %s\n", error.c_str());
        s->restarting = true;
        s->restart_at = now + s->backoff;
        s->backoff = std::min(s->backoff * 2, kBackoffMax);
      }
    }
    const size_t before = sessions_.size();
    if (idle_due(s) != 0 && idle_due(s) <= now) {
      // Ended the spec's way; its id is forgotten now, so the client gets 404 and starts over.
      std::fprintf(stderr, "sluice: session %.8s… idle for %lld ms: stopping its process %d\n",
                   s->id.c_str(), static_cast<long long>(options_.idle_timeout.count()), s->pid);
      by_id_.erase(s->id);
      begin_stop(s);  // may forget s
    } else {
      maybe_forget(s);
    }
    if (sessions_.size() != before) --i;
  }
  arm_clock();
}

int64_t stdio_upstream::idle_due(const session* s) const {
  if (options_.idle_timeout.count() == 0 || s->stopping || !s->posts.empty() || s->get != nullptr)
    return 0;
  return s->last_used + options_.idle_timeout.count() * kMs;
}

void stdio_upstream::arm_clock() {
  if (clock_ == nullptr) return;
  int64_t next = 0;
  auto consider = [&](int64_t t) {
    if (t != 0 && (next == 0 || t < next)) next = t;
  };
  for (const auto& s : sessions_) {
    for (const exchange_rec* r : s->posts)
      consider(r->deadline);
    if (s->pid > 0) {
      consider(s->term_sent ? 0 : s->term_at);
      consider(s->kill_at);
      // A process whose pipes are closed is polled until it exits.
      if (s->out == nullptr) consider(shard_.now_ns() + 20 * kMs);
    }
    if (s->restarting) consider(s->restart_at);
    consider(idle_due(s.get()));
  }
  if (next == 0) {
    clock_->cancel_timer();
  } else {
    clock_->set_timer(std::chrono::nanoseconds(std::max<int64_t>(next - shard_.now_ns(), 1)));
  }
}

void stdio_upstream::on_timer(engine::connection& conn) {
  if (&conn == clock_) check_timers();
}

void stdio_upstream::on_shutdown(engine::connection& conn) {
  if (&conn == clock_) {
    shutdown();
    return;
  }
  auto* t = static_cast<tag*>(conn.user);
  if (t != nullptr && t->s != nullptr && !t->s->stopping) begin_stop(t->s);
}

void stdio_upstream::on_closed(engine::connection& conn) {
  if (&conn == clock_) {
    clock_ = nullptr;
    return;
  }
  auto* t = static_cast<tag*>(conn.user);
  if (t == nullptr || t->s == nullptr) return;
  session* s = t->s;
  engine::connection** slot = t->role == 0 ? &s->in : t->role == 1 ? &s->out : &s->err;
  if (*slot != &conn) return;
  *slot = nullptr;
  if (t->role == 1) {
    // stdout went without an EOF (reset): the same as an exit.
    child_gone(s);
    return;
  }
  if (s->pid > 0) reap(s, false);
  arm_clock();
  maybe_forget(s);
}

void stdio_upstream::cancel(uint64_t handle) {
  if (exchange_rec* r = rec(handle)) drop(r);
}

void stdio_upstream::shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  by_id_.clear();
  for (size_t i = sessions_.size(); i-- > 0;) {
    if (i < sessions_.size()) begin_stop(sessions_[i].get());
  }
  if (sessions_.empty() && clock_ != nullptr) {
    clock_->close();
    clock_ = nullptr;
  }
}

}  // namespace sluice::net
