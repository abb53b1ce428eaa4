#pragma once
// The load generator's engine: one thread per shard (engine::shard without a listener, pinned
// to the i-th CPU of the affinity mask), each with its share of the keep-alive HTTP/1.1
// connections (shard::connect). Closed loop: every connection keeps `depth` requests in flight.
// Open loop: requests are due at a fixed rate, each connection sending its share on a timer;
// latency is measured from the time a request was due, not from when it could be sent, so a
// stalled server is not hidden (no coordinated omission).
//
// Each shard counts into its own stats (histogram, decisions, errors); they are merged once
// the threads have ended. Nothing on the request path allocates once the connections are up.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "tools/sluice/bench_histogram.h"
#include "tools/sluice/bench_traffic.h"

namespace sluice::bench {

// Every answer gets exactly one outcome, so requests = the sum of the outcomes.
enum class outcome : uint8_t {
  allow,              // served (MCP result without isError; decision service 200)
  deny,               // sluice/decision deny; decision service 403
  rate_limited,       // 429 / sluice/decision rate_limited
  approval_required,  // 202 from the decision service / sluice/decision approval_required
  invalid,            // 400
  tool_error,         // an MCP result with isError true that Sluice did not make
  rpc_error,          // a JSON-RPC error without a Sluice decision (e.g. unknown tool)
  unauthorized,       // 401
  upstream_error,     // 502 / 504 (the gateway could not reach its upstream)
  http_error,         // any other status
  count_
};
inline constexpr size_t kOutcomes = size_t(outcome::count_);
[[nodiscard]] std::string_view outcome_name(outcome o);

// Requests that got no answer, by why.
enum class error_kind : uint8_t {
  connect_failed,  // a connection could not be opened (counted per connection)
  closed,          // the server closed a connection with requests in flight (per request)
  bad_response,    // an answer that is not HTTP/1.1 (per connection; it is then closed)
  count_
};
inline constexpr size_t kErrorKinds = size_t(error_kind::count_);
[[nodiscard]] std::string_view error_name(error_kind e);

struct run_config {
  const target* tgt = nullptr;
  const request_pool* pool = nullptr;
  target_kind kind = target_kind::mcp;
  unsigned threads = 1;
  unsigned connections = 64;  // in all
  unsigned depth = 1;         // requests in flight per connection (pipelining)
  double rate = 0;            // requests per second in all; 0: closed loop
  double duration_s = 5;      // measured time (after warm-up)
  double warmup_s = 0;        // sent but not counted
  uint64_t requests = 0;      // > 0: stop after this many answers (duration is then a cap)
  int connect_timeout_ms = 2000;
};

struct stats {
  histogram latency;  // nanoseconds
  std::array<uint64_t, kOutcomes> outcomes{};
  std::array<uint64_t, kErrorKinds> errors{};
  uint64_t bytes_in = 0;
  void merge(const stats& o);
  [[nodiscard]] uint64_t answered() const;
};

struct run_result {
  std::unique_ptr<stats> total;
  double elapsed_s = 0;  // measured time
  std::string error;     // start-up failure (e.g. io_uring unavailable)
};

// Called on the caller's thread about every 100 ms while the run goes: answers so far (all
// shards, counted part only), seconds since the measured part began (negative in warm-up).
using progress_fn = std::function<void(uint64_t answered, double seconds)>;
// Called once the warm-up is over and once at the end of the measured time, on the caller's
// thread (for CPU sampling).
using mark_fn = std::function<void()>;

[[nodiscard]] run_result run(const run_config& config, const progress_fn& progress,
                             const mark_fn& on_measure_start, const mark_fn& on_measure_end);

// Classifies one answer. Exposed for tests.
[[nodiscard]] outcome classify(target_kind kind, int status, std::string_view body);

}  // namespace sluice::bench
