#include "tools/sluice/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace sluice::cli {

bool sd_notify(std::string_view state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || (path[0] != '/' && path[0] != '@')) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const size_t len = std::strlen(path);
  if (len < 2 || len > sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const auto addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  const ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                             reinterpret_cast<const sockaddr*>(&addr), addr_len);
  ::close(fd);
  return n == static_cast<ssize_t>(state.size());
}

std::chrono::milliseconds sd_watchdog_interval() {
  const char* usec = std::getenv("WATCHDOG_USEC");
  if (usec == nullptr) return std::chrono::milliseconds(0);
  if (const char* pid = std::getenv("WATCHDOG_PID"); pid != nullptr) {
    long p = 0;
    const std::string_view s(pid);
    if (std::from_chars(s.data(), s.data() + s.size(), p).ec != std::errc() || p != ::getpid())
      return std::chrono::milliseconds(0);
  }
  unsigned long long us = 0;
  const std::string_view s(usec);
  auto r = std::from_chars(s.data(), s.data() + s.size(), us);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || us == 0)
    return std::chrono::milliseconds(0);
  // Half the interval, as sd_watchdog_enabled(3) advises; at least 1 ms.
  const auto half = std::chrono::milliseconds(us / 2000);
  return half.count() > 0 ? half : std::chrono::milliseconds(1);
}

}  // namespace sluice::cli
