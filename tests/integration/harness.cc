#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

extern char** environ;

namespace sluice::testing {

namespace {

using clock = std::chrono::steady_clock;

int ms_left(clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
  return left.count() < 0 ? 0 : int(left.count());
}

int decode_status(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// The Content-Length of a request or response head (any case); 0 when absent.
size_t content_length(std::string_view head) {
  while (!head.empty()) {
    const size_t nl = head.find('\n');
    const std::string_view line = head.substr(0, nl);
    head = nl == std::string_view::npos ? std::string_view() : head.substr(nl + 1);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || !iequals(trim(line.substr(0, colon)), "content-length"))
      continue;
    const std::string_view value = trim(line.substr(colon + 1));
    size_t length = 0;
    std::from_chars(value.data(), value.data() + value.size(), length);
    return length;
  }
  return 0;
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Parses one event block (lines without CR, no trailing blank line). False when the block holds
// no field (only comments).
bool parse_event_block(std::string_view block, sse_event& ev) {
  bool any = false;
  bool first_data = true;
  while (!block.empty()) {
    size_t nl = block.find('\n');
    std::string_view line = block.substr(0, nl);
    block = nl == std::string_view::npos ? std::string_view() : block.substr(nl + 1);
    if (line.empty() || line.front() == ':') continue;
    size_t colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    std::string_view value;
    if (colon != std::string_view::npos) {
      value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "event") {
      ev.event = std::string(value);
    } else if (field == "data") {
      if (!first_data) ev.data += '\n';
      ev.data += value;
      first_data = false;
    } else if (field == "id") {
      ev.id = std::string(value);
    } else {
      continue;  // retry: and unknown fields
    }
    any = true;
  }
  return any;
}

void append_without_cr(std::string& out, std::string_view s) {
  for (char c : s) {
    if (c != '\r') out += c;
  }
}

}  // namespace

std::string binary_path(const char* env_var) {
  const char* v = std::getenv(env_var);
  return v == nullptr ? std::string() : std::string(v);
}

std::string policy_path(std::string_view name) {
  const char* dir = std::getenv("POLICY_DIR");
  const std::filesystem::path base =
      dir != nullptr && *dir != 0 ? std::filesystem::path(dir)
                                  : std::filesystem::path(__FILE__).parent_path() / "policies";
  return (base / name).string();
}

uint16_t port_after(const std::string& out, std::string_view marker) {
  const size_t m = out.find(marker);
  if (m == std::string::npos) return 0;
  const size_t start = m + marker.size();
  const std::string hostport = out.substr(start, out.find_first_of(" \n", start) - start);
  const size_t colon = hostport.rfind(':');
  if (colon == std::string::npos) return 0;
  return static_cast<uint16_t>(std::atoi(hostport.c_str() + colon + 1));
}

bool wait_sluice_ready(process& p, uint16_t& port, std::chrono::milliseconds timeout) {
  if (!p.wait_for_stdout(")\n", timeout)) return false;
  port = port_after(p.stdout_text(), " listening on ");
  return port != 0;
}

std::string node() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = dir + "/node";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// ---- process ----

std::unique_ptr<process> process::spawn(const std::string& path,
                                        const std::vector<std::string>& args, const options& opts) {
  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return nullptr;
  if (opts.capture_stderr && ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return nullptr;
  }

  std::vector<std::string> argv_s;
  argv_s.push_back(path);
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_s)
    argv.push_back(s.data());
  argv.push_back(nullptr);

  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e)
    env_s.emplace_back(*e);
  env_s.insert(env_s.end(), opts.env.begin(), opts.env.end());
  std::vector<char*> envp;
  for (std::string& s : env_s)
    envp.push_back(s.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], STDOUT_FILENO);  // dup2 clears CLOEXEC
  if (opts.capture_stderr) posix_spawn_file_actions_adddup2(&fa, err_pipe[1], STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD})
    sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, path.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(out_pipe[1]);
  if (err_pipe[1] >= 0) ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    if (err_pipe[0] >= 0) ::close(err_pipe[0]);
    errno = rc;
    return nullptr;
  }

  std::unique_ptr<process> p(new process());
  p->pid_ = pid;
  p->pidfd_ = int(::syscall(SYS_pidfd_open, pid, 0));  // not reaped yet: cannot be reused
  p->out_fd_ = out_pipe[0];
  p->err_fd_ = err_pipe[0];
  p->err_closed_ = !opts.capture_stderr;
  p->stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  p->reader_ = std::thread([raw = p.get()] { raw->reader_loop(); });
  return p;
}

void process::reader_loop() {
  char buf[16384];
  bool out_open = true;
  bool err_open = err_fd_ >= 0;
  while (out_open || err_open) {
    pollfd fds[3] = {{out_open ? out_fd_ : -1, POLLIN, 0},
                     {err_open ? err_fd_ : -1, POLLIN, 0},
                     {stop_fd_, POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[2].revents != 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      std::lock_guard lock(mu_);
      if (n <= 0) {
        if (i == 0) {
          out_open = false;
          out_closed_ = true;
        } else {
          err_open = false;
          err_closed_ = true;
        }
      } else {
        (i == 0 ? out_ : err_).append(buf, size_t(n));
      }
      cv_.notify_all();
    }
  }
  std::lock_guard lock(mu_);
  out_closed_ = err_closed_ = reader_done_ = true;
  cv_.notify_all();
}

process::~process() {
  if (running()) kill();
  if (stop_fd_ >= 0) {
    uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof one);
  }
  if (reader_.joinable()) reader_.join();
  close_fd(out_fd_);
  close_fd(err_fd_);
  close_fd(stop_fd_);
  close_fd(pidfd_);
}

bool process::wait_ready(std::chrono::milliseconds timeout) {
  static constexpr std::string_view kMarker = " listening on ";
  std::unique_lock lock(mu_);
  auto deadline = clock::now() + timeout;
  for (;;) {
    // Complete lines only: the port may still be arriving.
    size_t start = 0;
    for (size_t nl; (nl = out_.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(out_.data() + start, nl - start);
      size_t m = line.find(kMarker);
      if (m == std::string_view::npos) continue;
      // The address is the word after the marker ("127.0.0.1:8080", "[::1]:8080"); more may
      // follow it ("sluice listening on 127.0.0.1:8080 (2 shards, ...)").
      std::string_view addr = line.substr(m + kMarker.size());
      addr = addr.substr(0, addr.find(' '));
      size_t colon = addr.rfind(':');
      if (colon == std::string_view::npos) continue;
      std::string_view digits = trim(addr.substr(colon + 1));
      unsigned v = 0;
      auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
      if (ec != std::errc() || p != digits.data() + digits.size() || v == 0 || v > 65535) continue;
      port_ = uint16_t(v);
      ready_line_ = std::string(line);
      return true;
    }
    if (out_closed_) return false;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && clock::now() >= deadline)
      return false;
  }
}

bool process::wait_for(std::chrono::milliseconds timeout, const std::string& buf,
                       std::string_view needle) {
  std::unique_lock lock(mu_);
  auto deadline = clock::now() + timeout;
  for (;;) {
    if (buf.find(needle) != std::string::npos) return true;
    if (&buf == &out_ ? out_closed_ : err_closed_) return false;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      return buf.find(needle) != std::string::npos;
    }
  }
}

bool process::wait_for_stdout(std::string_view needle, std::chrono::milliseconds timeout) {
  return wait_for(timeout, out_, needle);
}

bool process::wait_for_stderr(std::string_view needle, std::chrono::milliseconds timeout) {
  return wait_for(timeout, err_, needle);
}

bool process::wait_output_closed(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return reader_done_; });
}

std::string process::stdout_text() const {
  std::lock_guard lock(mu_);
  return out_;
}

std::string process::stderr_text() const {
  std::lock_guard lock(mu_);
  return err_;
}

bool process::signal(int sig) {
  return running() && ::kill(pid_, sig) == 0;
}

std::optional<int> process::wait_exit(std::chrono::milliseconds timeout) {
  if (exit_) return exit_;
  auto deadline = clock::now() + timeout;
  for (;;) {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      exit_ = decode_status(st);
      return exit_;
    }
    if (r < 0 && errno != EINTR) return std::nullopt;
    int left = ms_left(deadline);
    if (left == 0) return std::nullopt;
    if (pidfd_ < 0) {
      // No pidfd (kernel < 5.3): block in waitpid; the caller's deadline is not enforced.
      if (::waitpid(pid_, &st, 0) == pid_) {
        exit_ = decode_status(st);
        return exit_;
      }
      return std::nullopt;
    }
    pollfd p{pidfd_, POLLIN, 0};
    if (::poll(&p, 1, left) < 0 && errno != EINTR) return std::nullopt;
  }
}

std::optional<int> process::terminate(std::chrono::milliseconds timeout) {
  if (!running()) return exit_;
  ::kill(pid_, SIGTERM);
  return wait_exit(timeout);
}

void process::kill() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  exit_ = decode_status(st);
}

std::string hash_token(const std::string& token) {
  temp_file t(token);
  auto r =
      run("/bin/sh", {"-c", "'" + binary_path("SLUICE_BIN") + "' hash-token < '" + t.path() + "'"});
  EXPECT_EQ(r.exit, 0) << r.err;
  std::string hash = r.out.substr(0, r.out.find_first_of("\r\n"));
  EXPECT_EQ(hash.size(), 64u) << r.out;
  return hash;
}

run_result run(const std::string& path, const std::vector<std::string>& args,
               std::chrono::milliseconds timeout) {
  run_result r;
  process::options opts;
  opts.capture_stderr = true;
  auto p = process::spawn(path, args, opts);
  if (!p) {
    r.err = std::string("spawn ") + path + ": " + std::strerror(errno);
    return r;
  }
  r.exit = p->wait_exit(timeout);
  if (!r.exit) p->kill();
  // The child has exited: its pipes reach EOF unless a grandchild still holds them.
  (void)p->wait_output_closed(std::chrono::seconds(1));
  r.out = p->stdout_text();
  r.err = p->stderr_text();
  return r;
}

// ---- http_response ----

std::optional<std::string_view> http_response::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return std::string_view(v);
  }
  return std::nullopt;
}

std::string_view http_response::header_or_empty(std::string_view name) const {
  return header(name).value_or(std::string_view());
}

std::vector<sse_event> parse_sse(std::string_view body) {
  std::string text;
  append_without_cr(text, body);
  std::vector<sse_event> events;
  std::string_view rest = text;
  for (;;) {
    size_t end = rest.find("\n\n");
    if (end == std::string_view::npos) break;
    sse_event ev;
    if (parse_event_block(rest.substr(0, end), ev)) events.push_back(std::move(ev));
    rest.remove_prefix(end + 2);
  }
  return events;
}

// ---- http_client ----

http_client::http_client(http_client&& o) noexcept {
  *this = std::move(o);
}

http_client& http_client::operator=(http_client&& o) noexcept {
  if (this != &o) {
    close();
    options_ = o.options_;
    fd_ = std::exchange(o.fd_, -1);
    port_ = o.port_;
    in_ = std::move(o.in_);
    eof_ = o.eof_;
    framing_ = o.framing_;
    body_done_ = o.body_done_;
    remaining_ = o.remaining_;
    chunk_crlf_ = o.chunk_crlf_;
    events_ = std::move(o.events_);
  }
  return *this;
}

bool http_client::connect(uint16_t port, std::chrono::milliseconds timeout) {
  close();
  port_ = port;
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) return false;
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // Before connect(): the receive buffer sets the window scale, the segment size is announced
  // in the SYN.
  const auto set = [this](int level, int name, int value) {
    if (value > 0 && ::setsockopt(fd_, level, name, &value, sizeof value) != 0) {
      ADD_FAILURE() << "setsockopt(" << name << ", " << value << "): " << std::strerror(errno);
    }
  };
  set(SOL_SOCKET, SO_RCVBUF, options_.rcvbuf);
  set(SOL_SOCKET, SO_SNDBUF, options_.sndbuf);
  set(IPPROTO_TCP, TCP_MAXSEG, options_.maxseg);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd_, POLLOUT, 0};
    if (::poll(&p, 1, int(timeout.count())) == 1) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
    }
  }
  if (rc != 0) {
    close();
    return false;
  }
  // Blocking from here on: reads are guarded by poll(), writes simply complete.
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
  return true;
}

void http_client::close() {
  close_fd(fd_);
  in_.clear();
  events_.clear();
  eof_ = false;
  framing_ = framing::none;
  body_done_ = true;
  remaining_ = 0;
  chunk_crlf_ = false;
}

bool http_client::send(std::string_view bytes) {
  if (fd_ < 0) return false;
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(size_t(n));
  }
  return true;
}

bool http_client::send_request(std::string_view method, std::string_view target,
                               std::string_view body, const header_list& headers) {
  std::string r;
  r.reserve(256 + body.size());
  r.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  r.append("Host: 127.0.0.1:").append(std::to_string(port_)).append("\r\n");
  for (const auto& [n, v] : headers)
    r.append(n).append(": ").append(v).append("\r\n");
  if (!body.empty() || method == "POST" || method == "PUT")
    r.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  r.append("\r\n").append(body);
  return send(r);
}

bool http_client::fill(clock::time_point deadline) {
  if (fd_ < 0 || eof_) return false;
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, ms_left(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    in_.append(buf, size_t(n));
    return true;
  }
}

std::optional<http_response> http_client::read_head(std::chrono::milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  size_t he;
  while ((he = in_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill(deadline)) return std::nullopt;
  }
  std::string_view head(in_.data(), he);
  http_response r;
  size_t le = head.find("\r\n");
  std::string_view status_line = head.substr(0, le);
  // "HTTP/1.1 200 OK"
  if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/") return std::nullopt;
  auto [p, ec] = std::from_chars(status_line.data() + 9, status_line.data() + 12, r.status);
  if (ec != std::errc()) return std::nullopt;
  r.reason = std::string(trim(status_line.substr(std::min<size_t>(13, status_line.size()))));
  std::string_view rest = le == std::string_view::npos ? std::string_view() : head.substr(le + 2);
  while (!rest.empty()) {
    size_t e = rest.find("\r\n");
    std::string_view line = rest.substr(0, e);
    rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    r.headers.emplace_back(std::string(line.substr(0, colon)),
                           std::string(trim(line.substr(colon + 1))));
  }
  in_.erase(0, he + 4);

  events_.clear();
  chunk_crlf_ = false;
  body_done_ = false;
  auto te = r.header("Transfer-Encoding");
  auto cl = r.header("Content-Length");
  if (r.status / 100 == 1 || r.status == 204 || r.status == 304) {
    framing_ = framing::length;
    remaining_ = 0;
  } else if (te && te->find("chunked") != std::string_view::npos) {
    framing_ = framing::chunked;
    remaining_ = 0;
    r.chunked = true;
  } else if (cl) {
    framing_ = framing::length;
    remaining_ = 0;
    std::from_chars(cl->data(), cl->data() + cl->size(), remaining_);
  } else {
    framing_ = framing::close;
  }
  if (framing_ == framing::length && remaining_ == 0) body_done_ = true;
  return r;
}

// Appends the next decoded body bytes to out; true with nothing appended only when the body
// has just ended.
bool http_client::pull_body(clock::time_point deadline, std::string& out) {
  if (body_done_) return true;
  switch (framing_) {
    case framing::none:
      body_done_ = true;
      return true;
    case framing::length: {
      while (in_.empty()) {
        if (!fill(deadline)) return false;
      }
      size_t n = std::min(in_.size(), remaining_);
      out.append(in_, 0, n);
      in_.erase(0, n);
      remaining_ -= n;
      if (remaining_ == 0) body_done_ = true;
      return true;
    }
    case framing::close:
      while (in_.empty()) {
        if (!fill(deadline)) {
          if (!eof_) return false;
          body_done_ = true;
          return true;
        }
      }
      out += in_;
      in_.clear();
      return true;
    case framing::chunked:
      for (;;) {
        if (remaining_ > 0) {
          while (in_.empty()) {
            if (!fill(deadline)) return false;
          }
          size_t n = std::min(in_.size(), remaining_);
          out.append(in_, 0, n);
          in_.erase(0, n);
          remaining_ -= n;
          if (remaining_ == 0) chunk_crlf_ = true;
          return true;
        }
        if (chunk_crlf_) {
          while (in_.size() < 2) {
            if (!fill(deadline)) return false;
          }
          if (in_.compare(0, 2, "\r\n") != 0) return false;
          in_.erase(0, 2);
          chunk_crlf_ = false;
        }
        size_t le;
        while ((le = in_.find("\r\n")) == std::string::npos) {
          if (!fill(deadline)) return false;
        }
        size_t size = 0;
        auto [p, ec] = std::from_chars(in_.data(), in_.data() + le, size, 16);
        if (ec != std::errc() || p == in_.data()) return false;
        in_.erase(0, le + 2);
        if (size == 0) {
          // Trailer lines, then the empty line.
          for (;;) {
            while ((le = in_.find("\r\n")) == std::string::npos) {
              if (!fill(deadline)) return false;
            }
            in_.erase(0, le + 2);
            if (le == 0) break;
          }
          body_done_ = true;
          return true;
        }
        remaining_ = size;
      }
  }
  return false;
}

std::optional<http_response> http_client::read_response(std::chrono::milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  auto r = read_head(timeout);
  if (!r) return std::nullopt;
  while (!body_done_) {
    if (!pull_body(deadline, r->body)) return std::nullopt;
  }
  return r;
}

std::optional<http_response> http_client::request(std::string_view method, std::string_view target,
                                                  std::string_view body, const header_list& headers,
                                                  std::chrono::milliseconds timeout) {
  if (!send_request(method, target, body, headers)) return std::nullopt;
  return read_response(timeout);
}

std::optional<std::string> http_client::read_body_some(std::chrono::milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  std::string out;
  while (out.empty() && !body_done_) {
    if (!pull_body(deadline, out)) return std::nullopt;
  }
  if (out.empty()) return std::nullopt;
  return out;
}

std::optional<sse_event> http_client::next_event(std::chrono::milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  for (;;) {
    size_t end;
    while ((end = events_.find("\n\n")) != std::string::npos) {
      sse_event ev;
      bool any = parse_event_block(std::string_view(events_).substr(0, end), ev);
      events_.erase(0, end + 2);
      if (any) return ev;
    }
    if (body_done_) return std::nullopt;
    std::string more;
    if (!pull_body(deadline, more)) return std::nullopt;
    append_without_cr(events_, more);
  }
}

std::string http_client::read_until_close(std::chrono::milliseconds timeout) {
  (void)wait_closed(timeout);
  std::string all = std::move(in_);
  in_.clear();
  return all;
}

bool http_client::wait_closed(std::chrono::milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  while (!eof_) {
    if (!fill(deadline) && !eof_) return false;
  }
  return true;
}

// ---- Scripted upstream ----

raw_upstream::raw_upstream(bool listening) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return;
  if (listening && ::listen(fd_, 64) != 0) return;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) return;
  port_ = ntohs(a.sin_port);
}

raw_upstream::~raw_upstream() {
  for (int c : conns_)
    ::close(c);
  close_fd(fd_);
}

std::string raw_upstream::url() const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/mcp";
}

int raw_upstream::accept_request(std::string& request, std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, ms_left(deadline)) != 1) return -1;
  const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) return -1;
  conns_.push_back(c);
  request.clear();
  for (;;) {
    const size_t head_end = request.find("\r\n\r\n");
    if (head_end != std::string::npos &&
        request.size() >=
            head_end + 4 + content_length(std::string_view(request).substr(0, head_end)))
      return c;
    pollfd q{c, POLLIN, 0};
    if (::poll(&q, 1, ms_left(deadline)) != 1) return -1;
    char buf[4096];
    const ssize_t n = ::recv(c, buf, sizeof buf, 0);
    if (n <= 0) return -1;
    request.append(buf, static_cast<size_t>(n));
  }
}

int raw_upstream::accept_request(std::chrono::milliseconds timeout) {
  std::string request;
  return accept_request(request, timeout);
}

size_t push_until_stalled(int fd, const std::function<std::string()>& next, size_t cap,
                          std::string& rest, std::chrono::milliseconds quiet) {
  size_t sent = 0;
  rest = next();
  auto last = clock::now();
  while (sent < cap && clock::now() - last < quiet) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 50) != 1) continue;
    const ssize_t n = ::send(fd, rest.data(), rest.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0) continue;
    sent += static_cast<size_t>(n);
    rest.erase(0, static_cast<size_t>(n));
    if (rest.empty()) rest = next();
    last = clock::now();
  }
  return sent;
}

bool raw_upstream::write_all(int c, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(c, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool raw_upstream::wait_peer_closed(int c, std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  for (;;) {
    pollfd p{c, POLLIN, 0};
    if (::poll(&p, 1, ms_left(deadline)) != 1) return false;
    char buf[4096];
    if (::recv(c, buf, sizeof buf, 0) <= 0) return true;
  }
}

void raw_upstream::close(int c) {
  ::close(c);
  std::erase(conns_, c);
}

void raw_upstream::reset(int c) {
  linger l{1, 0};
  ::setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(c);
}

// ---- MCP ----

header_list mcp_headers(const header_list& extra) {
  header_list h = {{"Content-Type", "application/json"},
                   {"Accept", "application/json, text/event-stream"}};
  h.insert(h.end(), extra.begin(), extra.end());
  return h;
}

std::optional<http_response> mcp_post(http_client& client, std::string_view json,
                                      const header_list& extra, std::chrono::milliseconds timeout) {
  return client.request("POST", "/mcp", json, mcp_headers(extra), timeout);
}

std::string open_session(http_client& client, const header_list& extra,
                         std::chrono::milliseconds timeout) {
  auto r = mcp_post(client,
                    R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{)"
                    R"("protocolVersion":"2025-06-18","capabilities":{},)"
                    R"("clientInfo":{"name":"sluice-test","version":"1"}}})",
                    extra, timeout);
  if (!r || r->status != 200) return {};
  return std::string(r->header_or_empty("Mcp-Session-Id"));
}

std::string_view upstream_session_id(std::string_view sid) {
  constexpr size_t kTag = 17;  // '.' and 16 hex digits
  return sid.size() > kTag ? sid.substr(0, sid.size() - kTag) : std::string_view{};
}

}  // namespace sluice::testing
