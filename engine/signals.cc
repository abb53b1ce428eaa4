#include "engine/signals.h"

#include <pthread.h>

#include <cerrno>
#include <ctime>

namespace sluice::engine {

namespace {
sigset_t shutdown_set() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGHUP);
  return s;
}
}  // namespace

void block_shutdown_signals() {
  sigset_t s = shutdown_set();
  sigaddset(&s, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
}

int wait_for_shutdown_signal() {
  sigset_t s = shutdown_set();
  int sig = 0;
  while (sigwait(&s, &sig) != 0) {
  }
  return sig;
}

int wait_for_shutdown_signal(std::chrono::milliseconds timeout) {
  const sigset_t s = shutdown_set();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return 0;
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(left.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(left.count() % 1'000'000'000);
    const int sig = sigtimedwait(&s, nullptr, &ts);
    if (sig > 0) return sig;
    if (errno == EAGAIN) return 0;
    // EINTR: another signal's handler ran; wait for the rest of the time.
  }
}

}  // namespace sluice::engine
