#pragma once
// Signal handling for the CLI: block SIGTERM/SIGINT (and SIGPIPE) in the main thread before any
// shard starts, so every thread inherits the mask; then wait for one on a dedicated thread (or
// the main thread) and call runtime::stop.

#include <chrono>
#include <csignal>

namespace sluice::engine {

// Blocks SIGINT, SIGTERM and SIGHUP (to be waited for) and SIGPIPE (ignored for good) in the
// calling thread. Call before starting any thread.
void block_shutdown_signals();

// Waits until SIGINT, SIGTERM or SIGHUP arrives; returns the signal number.
[[nodiscard]] int wait_for_shutdown_signal();
// The same, for at most `timeout`: 0 when none arrived in time (e.g. to send a watchdog ping
// between waits).
[[nodiscard]] int wait_for_shutdown_signal(std::chrono::milliseconds timeout);

}  // namespace sluice::engine
