#pragma once
// Blocking loopback client for tests: every wait is a poll() on readiness with a safety
// deadline, never a sleep.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace test {

inline constexpr std::chrono::milliseconds kSafety{5000};

class client {
 public:
  client() = default;
  explicit client(uint16_t port) { connect(port); }
  client(client&& o) noexcept : fd_(o.fd_), in_(std::move(o.in_)) { o.fd_ = -1; }
  client& operator=(client&& o) noexcept {
    std::swap(fd_, o.fd_);
    std::swap(in_, o.in_);
    return *this;
  }
  ~client() {
    if (fd_ >= 0) ::close(fd_);
  }

  bool connect(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  [[nodiscard]] int fd() const { return fd_; }

  bool write(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      s.remove_prefix(size_t(n));
    }
    return true;
  }

  // Reads more bytes into the buffer; false on EOF, error or timeout.
  bool fill(std::chrono::milliseconds timeout = kSafety) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, int(timeout.count())) <= 0) return false;
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    in_.append(buf, size_t(n));
    return true;
  }

  // Waits until the peer closes (EOF or reset). Bytes read meanwhile stay in the buffer.
  bool wait_closed(std::chrono::milliseconds timeout = kSafety) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!eof_) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, int(left.count())) <= 0) return false;
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) eof_ = true;
      if (n > 0) in_.append(buf, size_t(n));
    }
    return true;
  }

  // Reads until buffer holds at least n bytes.
  bool read_exact(size_t n, std::string& out) {
    while (in_.size() < n) {
      if (!fill()) return false;
    }
    out = in_.substr(0, n);
    in_.erase(0, n);
    return true;
  }

  struct response {
    int status = 0;
    std::string head;  // status line + headers
    std::string body;
    [[nodiscard]] bool has_header(std::string_view line) const {
      return head.find(std::string(line) + "\r\n") != std::string::npos;
    }
  };

  // Reads one HTTP response (Content-Length or chunked).
  std::optional<response> read_response() {
    size_t he;
    while ((he = in_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return std::nullopt;
    }
    response r;
    r.head = in_.substr(0, he + 2);
    in_.erase(0, he + 4);
    if (r.head.size() < 12) return std::nullopt;
    r.status = std::atoi(r.head.c_str() + 9);
    if (r.status >= 100 && r.status < 200) return r;  // interim: no body
    std::string lower = r.head;
    for (char& c : lower)
      c = char(std::tolower(static_cast<unsigned char>(c)));
    size_t cl = lower.find("content-length: ");
    if (cl != std::string::npos) {
      size_t len = std::strtoul(lower.c_str() + cl + 16, nullptr, 10);
      if (!read_exact(len, r.body)) return std::nullopt;
      return r;
    }
    if (lower.find("transfer-encoding: chunked") != std::string::npos) {
      for (;;) {
        size_t le;
        while ((le = in_.find("\r\n")) == std::string::npos) {
          if (!fill()) return std::nullopt;
        }
        size_t len = std::strtoul(in_.c_str(), nullptr, 16);
        in_.erase(0, le + 2);
        std::string chunk;
        if (!read_exact(len + 2, chunk)) return std::nullopt;
        if (len == 0) return r;
        r.body += chunk.substr(0, len);
      }
    }
    // Close-delimited.
    wait_closed();
    r.body = in_;
    in_.clear();
    return r;
  }

  std::string& buffered() { return in_; }
  [[nodiscard]] bool eof() const { return eof_; }

 private:
  int fd_ = -1;
  std::string in_;
  bool eof_ = false;
};

}  // namespace test
