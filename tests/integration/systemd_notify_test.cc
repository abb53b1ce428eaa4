// sluice serve under systemd's Type=notify protocol, without systemd: a datagram socket plays
// $NOTIFY_SOCKET. READY=1 once it serves, WATCHDOG=1 every WATCHDOG_USEC/2, STOPPING=1 on SIGTERM.

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace sluice::testing {
namespace {

using steady = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kLong{10000};

// An AF_UNIX datagram socket bound to a fresh path.
class notify_socket {
 public:
  notify_socket() {
    char dir[] = "/tmp/sluice-notify-XXXXXX";
    if (::mkdtemp(dir) == nullptr) return;
    dir_ = dir;
    path_ = dir_ + "/notify";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    path_.copy(a.sun_path, sizeof a.sun_path - 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) path_.clear();
  }
  ~notify_socket() {
    if (fd_ >= 0) ::close(fd_);
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  [[nodiscard]] const std::string& path() const { return path_; }
  // The next datagram, or "" on timeout.
  std::string next(std::chrono::milliseconds timeout = kLong) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return {};
    char buf[512];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }

 private:
  int fd_ = -1;
  std::string dir_;
  std::string path_;
};

TEST(systemd_notify, ReadyWatchdogAndStopping) {
  notify_socket sock;
  ASSERT_FALSE(sock.path().empty());
  process::options opts;
  opts.capture_stderr = true;
  opts.env = {"NOTIFY_SOCKET=" + sock.path(), "WATCHDOG_USEC=200000"};
  auto p = process::spawn(binary_path("SLUICE_BIN"),
                          {"serve", "--listen", "127.0.0.1:0", "--shards", "1", "--policy",
                           policy_path("gateway.json")},
                          opts);
  ASSERT_TRUE(p);
  EXPECT_EQ(sock.next(), "READY=1") << p->stderr_text();
  // sluice flushes its readiness line before READY=1 (our reader thread may lag behind).
  EXPECT_TRUE(p->wait_for_stdout(" listening on ", kLong));
  const auto t0 = steady::now();
  EXPECT_EQ(sock.next(), "WATCHDOG=1");
  EXPECT_EQ(sock.next(), "WATCHDOG=1");
  // Two pings at WATCHDOG_USEC/2 = 100 ms.
  EXPECT_GE(steady::now() - t0, std::chrono::milliseconds(150));
  ASSERT_TRUE(p->signal(SIGTERM));
  std::string s;
  do {
    s = sock.next();
  } while (s == "WATCHDOG=1");
  EXPECT_EQ(s, "STOPPING=1");
  EXPECT_EQ(p->wait_exit(kLong), 0) << p->stderr_text();
}

TEST(systemd_notify, WatchdogForAnotherPidIsIgnored) {
  notify_socket sock;
  process::options opts;
  opts.env = {"NOTIFY_SOCKET=" + sock.path(), "WATCHDOG_USEC=100000", "WATCHDOG_PID=1"};
  auto p = process::spawn(binary_path("SLUICE_BIN"),
                          {"serve", "--listen", "127.0.0.1:0", "--shards", "1", "--policy",
                           policy_path("gateway.json")},
                          opts);
  ASSERT_TRUE(p);
  EXPECT_EQ(sock.next(), "READY=1");
  EXPECT_EQ(sock.next(std::chrono::milliseconds(400)), "");  // no pings: not our watchdog
  ASSERT_TRUE(p->signal(SIGTERM));
  EXPECT_EQ(sock.next(), "STOPPING=1");
  EXPECT_EQ(p->wait_exit(kLong), 0);
}

}  // namespace
}  // namespace sluice::testing
