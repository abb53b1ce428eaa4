#pragma once
// systemd's service notification protocol (sd_notify(3)) without libsystemd: one datagram per
// state change to the AF_UNIX socket named by $NOTIFY_SOCKET. Without that variable (not run
// by systemd with Type=notify) every call is a no-op.

#include <chrono>
#include <string_view>

namespace sluice::cli {

// Sends `state` ("READY=1", "WATCHDOG=1", "STOPPING=1", ...). False when there is no
// $NOTIFY_SOCKET or the datagram could not be sent; callers carry on either way.
bool sd_notify(std::string_view state);

// Half the watchdog interval systemd asked for ($WATCHDOG_USEC, for this process when
// $WATCHDOG_PID is set): how often to send WATCHDOG=1. Zero when there is no watchdog.
[[nodiscard]] std::chrono::milliseconds sd_watchdog_interval();

}  // namespace sluice::cli
