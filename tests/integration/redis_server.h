#pragma once
// A throwaway redis-server for tests: its own process on 127.0.0.1, no persistence. Redis has
// no "port 0", so a free port is found by binding a socket to port 0 and closing it; when
// another process takes the port first, redis-server exits and start() tries a new one.
// Readiness: its "Ready to accept connections" log line (stdout), then a PING answered
// +PONG. Nothing sleeps.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "tests/integration/harness.h"

namespace sluice::testing {

// The path of redis-server: $REDIS_SERVER_BIN, else /usr/bin/redis-server.
inline std::string redis_server_path() {
  std::string bin = binary_path("REDIS_SERVER_BIN");
  return bin.empty() ? std::string("/usr/bin/redis-server") : bin;
}

// A port nobody listens on right now (it may be taken by the time it is used).
inline uint16_t pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// Sends PING on a fresh connection; true on +PONG within timeout.
inline bool redis_ping(uint16_t port, std::chrono::milliseconds timeout) {
  http_client c;  // only for its connect(); the bytes below are RESP
  if (!c.connect(port, timeout)) return false;
  constexpr std::string_view kPing = "*1\r\n$4\r\nPING\r\n";
  if (::send(c.fd(), kPing.data(), kPing.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(kPing.size()))
    return false;
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (got.find("\r\n") == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{c.fd(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buf[64];
    const ssize_t n = ::recv(c.fd(), buf, sizeof buf, 0);
    if (n <= 0) return false;
    got.append(buf, static_cast<size_t>(n));
  }
  return got.rfind("+PONG", 0) == 0;
}

class redis_server {
 public:
  ~redis_server() { kill(); }

  // Starts on `port`, or on a free port when 0 (a few tries). False when redis-server cannot be
  // started (then `error` says why).
  bool start(uint16_t port = 0, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    for (int attempt = 0; attempt < (port == 0 ? 5 : 1); ++attempt) {
      const uint16_t p = port != 0 ? port : pick_free_port();
      process::options o;
      o.capture_stderr = true;
      proc_ = process::spawn(redis_server_path(),
                             {"--port", std::to_string(p), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--protected-mode", "no"},
                             o);
      if (!proc_) {
        error_ = "cannot run " + redis_server_path();
        return false;
      }
      if (proc_->wait_for_stdout("Ready to accept connections", timeout) &&
          redis_ping(p, timeout)) {
        port_ = p;
        return true;
      }
      error_ = proc_->stdout_text() + proc_->stderr_text();
      proc_->kill();
    }
    return false;
  }

  // SIGKILL: no goodbye to clients, nothing saved.
  void kill() {
    if (proc_ && proc_->running()) proc_->kill();
  }
  [[nodiscard]] uint16_t port() const { return port_; }
  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

 private:
  std::unique_ptr<process> proc_;
  uint16_t port_ = 0;
  std::string error_;
};

}  // namespace sluice::testing
