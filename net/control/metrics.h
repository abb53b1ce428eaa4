#pragma once
// Per-shard counters for /metrics and the dashboard. Each shard writes only its own
// shard_metrics (one writer: a relaxed load and store, no read-modify-write, no lock); the
// control thread reads them relaxed and sums over shards. A shard_metrics starts on its own
// cache line, so two shards never write the same line.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "net/status_counts.h"

namespace sluice::control {

inline constexpr size_t kVerdicts = 5;         // policy::verdict
inline constexpr size_t kLatencyBuckets = 22;  // 1 us * 2^i, i < 22 (about 2 s), then +Inf
inline constexpr size_t kToolSlots = 256;      // distinct tool names counted per shard
inline constexpr size_t kToolNameMax = 64;     // longer names are counted as "(other)"
inline constexpr size_t kUpstreamErrors = 7;   // net::upstream_error

// A counter with one writer.
struct counter {
  std::atomic<uint64_t> v{0};
  void add(uint64_t n = 1) {
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  [[nodiscard]] uint64_t get() const { return v.load(std::memory_order_relaxed); }
};

struct histogram {
  counter buckets[kLatencyBuckets + 1];  // the last one is +Inf
  counter sum_ns;
  // Does not allocate.
  void observe(int64_t ns);
  // Upper bound of bucket i in seconds.
  static double bound_seconds(size_t i);
};

struct tool_slot {
  std::atomic<uint64_t> hash{0};  // 0: free; published (release) after name is written
  char name[kToolNameMax];
  uint8_t len = 0;
  uint16_t server = 0;  // 0: the top-level policy; i + 1: the i-th of several servers
  counter by_verdict[kVerdicts];
};

struct alignas(64) shard_metrics {
  counter decisions[kVerdicts];  // bodies decided, by overall verdict
  histogram decision_latency;
  counter upstream_requests;
  counter upstream_errors[kUpstreamErrors];
  counter upstream_5xx;
  histogram upstream_latency;                 // request sent to response head
  std::atomic<uint64_t> open_connections{0};  // gauge, refreshed once per loop iteration
  std::atomic<uint64_t> limiter_keys{0};      // gauge, refreshed once per loop iteration
  // The HTTP upstream pools' connections and waiting calls (gauges), and the calls that ever
  // waited (a counter), refreshed once per loop iteration.
  std::atomic<uint64_t> upstream_idle{0}, upstream_busy{0}, upstream_streams{0};
  std::atomic<uint64_t> upstream_waiting{0}, upstream_waited{0};
  std::atomic<uint64_t> policy_version{0};  // the policy version this shard decides with
  counter audit_records;
  counter audit_dropped;  // the audit ring was full
  counter approvals_parked, approvals_approved, approvals_denied, approvals_timed_out;
  counter approvals_refused;          // over the per-shard limit of waiting calls
  counter client_holds;               // reading stopped for a client slow to take its output
  counter client_send_timeouts;       // clients cut off by --send-timeout-ms
  counter tools_overflow[kVerdicts];  // names that did not fit the table
  net::status_counts responses;       // answers to clients by status (the HTTP layer counts)
  tool_slot tools[kToolSlots];

  // Counts one message's decision under its tool name ("" for messages without one) and
  // server (0: the top-level policy; i + 1: the i-th of several servers). Does not allocate.
  void count_tool(std::string_view tool, uint8_t verdict, uint16_t server = 0);
};

// One shard's HTTP upstream pools, summed (net::upstream_pool's gauges and `waited` counter).
struct upstream_gauges {
  uint64_t idle = 0, busy = 0, streams = 0, waiting = 0, waited = 0;
};

// With --cluster (net/cluster_redis.h): written by the limits hub's thread only, read by the
// control thread. Not on any shard's path.
struct cluster_metrics {
  std::atomic<uint64_t> up{0};                  // gauge: 1 while the last round trip worked
  std::atomic<uint64_t> round_trips{0};         // round trips that worked
  std::atomic<uint64_t> failed_round_trips{0};  // connects and round trips that failed
  std::atomic<uint64_t> keys_synced{0};         // keys carried by the round trips that worked
};

// Totals over every shard, read by the control thread.
struct metrics_totals {
  uint64_t decisions[kVerdicts] = {};
  uint64_t latency_buckets[kLatencyBuckets + 1] = {};
  uint64_t latency_sum_ns = 0;
  uint64_t upstream_requests = 0, upstream_5xx = 0;
  uint64_t upstream_errors[kUpstreamErrors] = {};
  uint64_t upstream_buckets[kLatencyBuckets + 1] = {};
  uint64_t upstream_sum_ns = 0;
  uint64_t open_connections = 0, limiter_keys = 0;
  upstream_gauges upstream;
  uint64_t audit_records = 0, audit_dropped = 0;
  uint64_t approvals_parked = 0, approvals_approved = 0, approvals_denied = 0,
           approvals_timed_out = 0, approvals_refused = 0;
  uint64_t client_holds = 0, client_send_timeouts = 0;
  uint64_t responses[net::status_counts::kCodes] = {};  // by status - status_counts::kFirst
  void add(const shard_metrics& m);
};

std::string_view verdict_name(size_t v);

// Appends `s` as the value of a Prometheus label (", \ and newline escaped).
void append_label_value(std::string& out, std::string_view s);

}  // namespace sluice::control
