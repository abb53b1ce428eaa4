#pragma once
// The limits hub: exact rate limits across the shards of one process (policy/lease_limiter.h
// says how leases keep them exact). One hub per process, on its own thread:
//
// - Shard i owns a port: its policy::lease_limiter (what its decider counts with) and two
//   bounded SPSC queues, reports to the hub and replies back. The shard's loop hook drains
//   replies, lets the gateway decide its parked calls again, then sends the report of the
//   keys it touched (at most one report in flight per shard), waking the hub's eventfd only
//   when the hub has gone idle.
// - The hub thread sleeps until a report arrives, then waits out the rest of the merge
//   interval since its last merge (so reports of all shards are read in one batch), reads
//   every queue, settles the ledger and sends grants, claims and acks, waking the shards that
//   must act on them (engine::shard::wake): grants, claims, closes, and the acks of reports
//   with demand, want or a claim's answer, or of a shard that asked (calls parked). A plain
//   ack waits for the shard's next loop iteration. While reports keep coming it looks at the
//   queues once per interval without being woken; only an idle hub (a whole interval with no
//   report) is woken through its eventfd.
//
// Why a thread of its own rather than shard 0's loop: the engine's timers are per connection,
// and the merge step (and, with --cluster, the Redis round trip) must never delay the
// requests of the shard it would run on. The thread is idle (blocked) when no shard reports.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/shard.h"
#include "engine/spsc_queue.h"
#include "net/cluster_redis.h"
#include "policy/lease_limiter.h"

namespace sluice::net {

struct limit_hub_options {
  unsigned shards = 1;
  std::chrono::microseconds merge_interval{2000};
  size_t queue_capacity = 8192;  // messages per direction per shard
  policy::limiter_options limiter;
  // --cluster: cluster.host set. The node's budget per key comes from Redis (one round trip
  // per merge tick, on the hub thread); the ledger hands shards slices of it.
  cluster_options cluster;
  std::shared_ptr<control::cluster_metrics> cluster_metrics;  // may be null
};

// What a hub has done, for logs and tests. Read with relaxed loads from any thread.
struct limit_hub_stats {
  std::atomic<uint64_t> merges{0};
  std::atomic<uint64_t> reports{0};
  std::atomic<uint64_t> grants{0};
  std::atomic<uint64_t> claims{0};
  std::atomic<uint64_t> closes{0};
};

class limit_hub {
 public:
  // Shard i's side. Used only from shard i's thread (the queues' other ends belong to the hub).
  class port {
   public:
    [[nodiscard]] policy::lease_limiter& limiter() { return limiter_; }
    // Applies the hub's replies. True when a parked call may now be decided (a grant or a
    // close arrived). Does not allocate.
    [[nodiscard]] bool receive();
    // Sends the report of the keys touched since the last one, unless one is in flight.
    // calls_waiting: the shard has parked calls, so the hub's next reply must wake it (the
    // ack of a plain usage report is otherwise left for the shard's next loop iteration).
    void send(bool calls_waiting);

   private:
    friend class limit_hub;
    port(limit_hub& hub, unsigned id, const limit_hub_options& o);
    limit_hub& hub_;
    policy::lease_limiter limiter_;
    engine::spsc_queue<policy::lease_report> to_hub_;
    engine::spsc_queue<policy::lease_reply> to_shard_;
    bool in_flight_ = false;                // a report was sent and not yet acknowledged
    engine::shard* shard_ = nullptr;        // set by attach(), under the hub's shards_mu_
    std::atomic<bool> wake_on_ack_{false};  // set by the shard, cleared by the hub
  };

  explicit limit_hub(const limit_hub_options& options);
  limit_hub(const limit_hub&) = delete;
  limit_hub& operator=(const limit_hub&) = delete;
  ~limit_hub();  // stops the thread

  // Shard i (i < shards) registers from its own thread; the hub wakes it when it writes to it.
  [[nodiscard]] port& attach(unsigned i, engine::shard& s);
  // Before the shard goes away.
  void detach(unsigned i);

  // Starts the hub thread (idempotent). Shards may attach before or after.
  void start();
  void stop();

  [[nodiscard]] unsigned shards() const { return options_.shards; }
  [[nodiscard]] const limit_hub_stats& stats() const { return stats_; }
  // Report records read from each shard; read it after stop() (the hub thread writes it).
  [[nodiscard]] const std::vector<uint64_t>& reports_per_shard() const { return reports_from_; }

 private:
  void run();
  void notify();  // any thread: wakes the hub thread
  bool merge();   // true when it read a report
  [[nodiscard]] bool reports_waiting() const;
  void flush_out();
  bool cluster_round_trip();  // true when the node has just (re)joined the cluster
  void cluster_down();

  limit_hub_options options_;
  std::vector<std::unique_ptr<port>> ports_;
  std::mutex shards_mu_;  // attach/detach vs the hub's wake(); never on the request path
  std::vector<engine::shard*> shards_;
  policy::lease_ledger ledger_;
  std::unique_ptr<cluster_redis> cluster_;  // null without --cluster
  std::vector<cluster_item> items_;         // scratch: this tick's round trip
  std::vector<uint32_t> gives_;             // scratch: pool given back per item
  bool pools_dropped_ = false;  // fail-closed: free pools let go after half the lease TTL
  std::vector<std::deque<policy::lease_reply>> out_;  // replies the queues had no room for
  std::vector<uint8_t> wake_;
  std::vector<uint64_t> reports_from_;
  int event_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> idle_{false};  // the hub thread blocks until notify()
  std::thread thread_;
  limit_hub_stats stats_;
};

// The shard count a runtime_config with `configured` shards will start (0: the CPUs of the
// affinity mask), so the hub can be made before the runtime.
[[nodiscard]] unsigned resolve_shard_count(unsigned configured);

}  // namespace sluice::net
