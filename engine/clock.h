#pragma once
// The two clocks the data plane reads, in nanoseconds (vDSO calls, no syscall). The shard
// reads both once per loop iteration (shard::now_ns(), shard::wall_ns()); these are for code
// off the shard's loop (hub, control plane, tools) or that needs a fresh reading.

#include <time.h>

#include <cstdint>

namespace sluice::engine {

// CLOCK_MONOTONIC: durations, deadlines, timers.
inline int64_t steady_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// CLOCK_REALTIME: Unix-epoch time (rate-limit windows, audit timestamps).
inline int64_t wall_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace sluice::engine
