#pragma once
// Rate limits across machines (--cluster redis://HOST:PORT): the client side of the per-tick
// round trip to Redis, used only from the limits hub's thread (net/limit_hub.h). hiredis stays
// in cluster_redis.cc.
//
// Each merge tick the hub sends ONE pipelined round trip of EVALSHA calls (kChunk keys each; EVAL
// again after NOSCRIPT) that carries, for every key the node touched, (max, window end, the node's
// used count, the lease it holds, the lease it wants) and gets back the lease it now holds and the
// cluster's used total. The Lua script (kClusterScript) keeps the books atomically in one hash per
// key and window:
//   u:<node> = slots the node has used, l:<node> = lease it holds beyond that.
// It grants only while the sum over nodes of u + l stays <= max; the l of a node whose
// liveness key (sluice:n:<node>, refreshed by every round trip, PX lease_ttl) has expired is
// dropped, so a dead node's unused lease returns to the pool. docs/policy.md ("Across
// machines") states the bounds this gives.

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "policy/limiter.h"

namespace sluice::control {
struct cluster_metrics;
}

namespace sluice::net {

struct cluster_options {
  std::string host;  // empty: no cluster
  uint16_t port = 6379;
  bool fail_open = false;                          // Redis unreachable: enforce the local max alone
  std::chrono::milliseconds timeout{250};          // connect and each round trip
  std::chrono::milliseconds lease_ttl{10'000};     // a silent node's unused lease is freed after
  std::chrono::milliseconds heartbeat{1'000};      // idle round trip (liveness, reconnect)
  std::chrono::milliseconds backoff_min{100};      // reconnect: doubling ...
  std::chrono::milliseconds backoff_max{5'000};    // ... up to
  std::chrono::milliseconds expiry_slack{60'000};  // keys live past their window end by
  uint64_t node_id = 0;                            // 0: a random one
};

// "redis://HOST:PORT" (or "redis://HOST", port 6379; [v6] accepted). False with `error`.
[[nodiscard]] bool parse_redis_url(std::string_view url, cluster_options& out, std::string& error);

// One key of a round trip.
struct cluster_item {
  policy::limiter_key key;
  int64_t window_end_ns = 0;
  uint32_t max = 0;
  uint32_t used = 0;  // the node's used count in the window
  uint32_t held = 0;  // lease the node holds (>= used)
  uint32_t want = 0;  // lease it would like to hold
  // Out (when sync returns true):
  uint32_t granted = 0;       // lease the node now holds (>= held unless Redis lost it: see .cc)
  uint64_t cluster_used = 0;  // used over every node, this node's report included
};

// The Lua script, for docs and tests.
extern const char* const kClusterScript;

class cluster_redis {
 public:
  // metrics may be null.
  cluster_redis(cluster_options options, std::shared_ptr<control::cluster_metrics> metrics);
  cluster_redis(const cluster_redis&) = delete;
  cluster_redis& operator=(const cluster_redis&) = delete;
  ~cluster_redis();

  // One round trip for `items` (empty: a liveness heartbeat, sent at most every heartbeat).
  // False when Redis is unreachable (not connected and not due for a reconnect, or the round
  // trip failed): items are left as they were and the caller keeps its last leases. Blocks for
  // at most about two timeouts (a reconnect, then the call).
  [[nodiscard]] bool sync(std::span<cluster_item> items, int64_t now_mono_ns);

  [[nodiscard]] bool up() const { return up_; }
  // When the last round trip worked (CLOCK_MONOTONIC ns; 0: never).
  [[nodiscard]] int64_t last_ok_ns() const { return last_ok_ns_; }
  [[nodiscard]] uint64_t node_id() const { return options_.node_id; }
  [[nodiscard]] const cluster_options& options() const { return options_; }

  // The Redis key of a counter key's window (for tests and docs).
  [[nodiscard]] static std::string redis_key(const policy::limiter_key& key, int64_t window_end_ns);

  // Keys per EVALSHA; a round trip pipelines as many calls as it needs.
  static constexpr size_t kChunk = 256;

 private:
  struct impl;
  bool connect(int64_t now_mono_ns);
  void append_chunk(std::span<const cluster_item> chunk, bool with_body);
  void fail(int64_t now_mono_ns, std::string_view why);

  cluster_options options_;
  std::shared_ptr<control::cluster_metrics> metrics_;
  std::unique_ptr<impl> impl_;
  bool up_ = false;
  bool ever_tried_ = false;
  int64_t retry_at_ns_ = 0;
  int64_t backoff_ns_ = 0;
  int64_t last_ok_ns_ = 0;
};

}  // namespace sluice::net
