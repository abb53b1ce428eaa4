#include "engine/signals.h"

#include <pthread.h>

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

}  // namespace sluice::engine
