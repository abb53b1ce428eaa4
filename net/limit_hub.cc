#include "net/limit_hub.h"

#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include "engine/clock.h"

namespace sluice::net {

namespace {
// What a round trip reports of one key: its window and use, with the lease the node keeps
// (held) and would like to hold (want).
cluster_item report_of(const policy::limiter_key& key, const policy::lease_key_view& v,
                       uint32_t held, uint32_t want) {
  cluster_item it;
  it.key = key;
  it.window_end_ns = v.window_end_ns;
  it.max = v.max;
  it.used = v.used;
  it.held = held;
  it.want = want;
  return it;
}
}  // namespace

unsigned resolve_shard_count(unsigned configured) {
  if (configured != 0) return configured;
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof mask, &mask) != 0) return 1;
  const int n = CPU_COUNT(&mask);
  return n > 0 ? static_cast<unsigned>(n) : 1;
}

limit_hub::port::port(limit_hub& hub, unsigned id, const limit_hub_options& o)
    : hub_(hub),
      limiter_(id, o.shards, o.limiter),
      to_hub_(o.queue_capacity),
      to_shard_(o.queue_capacity) {}

bool limit_hub::port::receive() {
  bool decide_again = false;
  to_shard_.drain([&](policy::lease_reply& r) {
    if (r.what == policy::lease_reply::kind::ack) in_flight_ = false;
    decide_again |= limiter_.apply(r);
  });
  return decide_again;
}

void limit_hub::port::send(bool calls_waiting) {
  if (in_flight_) {
    if (!calls_waiting) return;
    // The ack of a plain report is not sent with a wake-up: ask for one, then look once more
    // (the hub pushes the ack before it reads the flag; one of the two sees the other).
    wake_on_ack_.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!to_shard_.empty() && shard_ != nullptr) shard_->wake();
    return;
  }
  if (!limiter_.has_report()) return;
  const size_t n =
      limiter_.report([this](const policy::lease_report& r) { return to_hub_.try_push(r); });
  if (n == 0) return;
  in_flight_ = true;
  // The hub polls the queues every merge interval while reports flow; the eventfd is written
  // only when it has gone idle (blocked until a report). The fence orders the push above
  // before the flag's load, against the hub's store of the flag before its last look at the
  // queues (limit_hub::run): one of the two sees the other.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (hub_.idle_.load(std::memory_order_relaxed)) hub_.notify();
}

limit_hub::limit_hub(const limit_hub_options& options)
    : options_(options),
      ledger_(options.shards == 0 ? 1 : options.shards, size_t(1) << 22,
              !options.cluster.host.empty()) {
  if (options_.shards == 0) options_.shards = 1;
  if (!options_.cluster.host.empty()) {
    // Every slot of a clustered key comes from Redis: shards start a window with nothing.
    options_.limiter.start_empty = true;
    cluster_ = std::make_unique<cluster_redis>(options_.cluster, options_.cluster_metrics);
  }
  for (unsigned i = 0; i < options_.shards; ++i)
    ports_.push_back(std::unique_ptr<port>(new port(*this, i, options_)));
  shards_.assign(options_.shards, nullptr);
  out_.resize(options_.shards);
  wake_.assign(options_.shards, 0);
  reports_from_.assign(options_.shards, 0);
  event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

limit_hub::~limit_hub() {
  stop();
  if (event_fd_ >= 0) ::close(event_fd_);
}

limit_hub::port& limit_hub::attach(unsigned i, engine::shard& s) {
  std::lock_guard lock(shards_mu_);
  shards_[i] = &s;
  ports_[i]->shard_ = &s;
  return *ports_[i];
}

void limit_hub::detach(unsigned i) {
  std::lock_guard lock(shards_mu_);
  shards_[i] = nullptr;
  ports_[i]->shard_ = nullptr;
}

void limit_hub::start() {
  if (thread_.joinable()) return;
  stopping_.store(false, std::memory_order_relaxed);
  thread_ = std::thread([this] { run(); });
}

void limit_hub::stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true, std::memory_order_release);
  notify();
  thread_.join();
}

void limit_hub::notify() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(event_fd_, &one, sizeof one);
}

bool limit_hub::reports_waiting() const {
  for (const auto& p : ports_)
    if (!p->to_hub_.empty()) return true;
  return false;
}

void limit_hub::run() {
  int64_t last_merge = 0;
  int64_t last_expire = 0;
  bool active = false;    // the last merge read reports: look again after one interval
  if (cluster_) merge();  // join the cluster (or log that Redis is unreachable) at start
  for (;;) {
    bool pending = active || ledger_.busy();
    for (const auto& q : out_)
      pending |= !q.empty();
    if (!pending) {
      // Idle: say so, then block until a shard reports (or stop); with --cluster, wake for the
      // heartbeat (liveness and reconnects). A shard writes the eventfd only while idle_ is
      // set, so reports flowing steadily cost no syscall on either side.
      idle_.store(true, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (!reports_waiting() && !stopping_.load(std::memory_order_acquire)) {
        pollfd p{event_fd_, POLLIN, 0};
        const int idle_ms = cluster_ ? static_cast<int>(options_.cluster.heartbeat.count()) : -1;
        if (::poll(&p, 1, idle_ms) > 0) {
          uint64_t v;
          [[maybe_unused]] ssize_t n = ::read(event_fd_, &v, sizeof v);
        }
      }
      idle_.store(false, std::memory_order_relaxed);
    }
    if (stopping_.load(std::memory_order_acquire)) return;
    // Batch: one merge per interval, whatever the number of reports waiting.
    const int64_t due = last_merge + options_.merge_interval.count() * 1000;
    if (engine::steady_ns() < due) {
      timespec ts{static_cast<time_t>(due / 1'000'000'000), static_cast<long>(due % 1'000'000'000)};
      while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
      }
      if (stopping_.load(std::memory_order_acquire)) return;
    }
    last_merge = engine::steady_ns();
    active = merge();
    if (last_merge - last_expire > 1'000'000'000) {
      ledger_.expire(engine::wall_ns());
      last_expire = last_merge;
    }
  }
}

bool limit_hub::merge() {
  stats_.merges.fetch_add(1, std::memory_order_relaxed);
  bool read_any = false;
  auto send = [this](unsigned s, const policy::lease_reply& r) {
    switch (r.what) {
      case policy::lease_reply::kind::grant:
        (r.closed ? stats_.closes : stats_.grants).fetch_add(1, std::memory_order_relaxed);
        break;
      case policy::lease_reply::kind::claim:
        stats_.claims.fetch_add(1, std::memory_order_relaxed);
        break;
      case policy::lease_reply::kind::ack:
        break;
    }
    out_[s].push_back(r);
  };
  for (unsigned s = 0; s < options_.shards; ++s) {
    bool waiting = false;  // the shard has calls or asks waiting on this merge
    const size_t n = ports_[s]->to_hub_.drain([&](policy::lease_report& r) {
      waiting |= r.demand != 0 || r.want != 0 || r.answers_claim;
      ledger_.on_report(s, r, send);
    });
    if (waiting) wake_[s] = 1;  // its ack lets it report again at once
    if (n != 0) {
      read_any = true;
      stats_.reports.fetch_add(n, std::memory_order_relaxed);
      reports_from_[s] += n;
      policy::lease_reply ack;
      ack.what = policy::lease_reply::kind::ack;
      out_[s].push_back(ack);
    }
  }
  // Rejoined: windows closed while Redis was away may have budget again.
  if (cluster_ && cluster_round_trip()) ledger_.reopen_closed(send);
  ledger_.settle(send);
  flush_out();
  return read_any;
}

bool limit_hub::cluster_round_trip() {
  const bool rejoining = !cluster_->up();
  if (rejoining) {
    // (Re)joining: Redis may have lost its data (a restart without persistence). Report what
    // this node holds and has used in every live window, asking nothing new, so the cluster
    // books are rebuilt before anyone is granted against them.
    items_.clear();
    ledger_.for_each_key([this](const policy::limiter_key& key, policy::lease_key_view& v) {
      items_.push_back(report_of(key, v, v.held, v.held));
    });
    if (!cluster_->sync(items_, engine::steady_ns())) {
      cluster_down();
      return false;
    }
    pools_dropped_ = false;
  }
  items_.clear();
  gives_.clear();
  ledger_.for_each_active([this](const policy::limiter_key& key, policy::lease_key_view& v) {
    uint32_t give = 0;
    uint32_t want = v.held;
    if (v.demand > 0) {
      // What waits now, plus what the node used since its last round trip (the rate it is
      // likely to keep up until the next one), capped at max.
      const uint32_t recent = v.used > v.synced_used ? v.used - v.synced_used : 0;
      const uint64_t w = uint64_t(v.held) + v.demand + recent;
      want = w > v.max ? v.max : static_cast<uint32_t>(w);
      if (want < v.held) want = v.held;
    } else if (v.pool > 0) {
      give = v.pool;  // nothing waits here: free lease goes back to the cluster
      want = v.held - give;
    }
    items_.push_back(report_of(key, v, v.held - give, want));
    gives_.push_back(give);
  });
  if (items_.empty()) {
    // Heartbeat (at most one per heartbeat interval).
    (void)cluster_->sync(items_, engine::steady_ns());
    return rejoining;
  }
  if (cluster_->sync(items_, engine::steady_ns())) {
    size_t i = 0;
    ledger_.for_each_active([this, &i](const policy::limiter_key&, policy::lease_key_view& v) {
      const cluster_item& it = items_[i];
      v.pool -= gives_[i];
      // More than the node held: new lease for its shards. Less (Redis lost the key and
      // another node took the budget first) cannot be taken back from the shards; the node
      // simply gets nothing new until its held lease is used.
      if (it.granted > it.held) v.pool += it.granted - it.held;
      v.synced_used = v.used;
      ++i;
    });
    return rejoining;
  }
  cluster_down();  // the next tick starts with the rejoin above
  return false;
}

void limit_hub::cluster_down() {
  if (options_.cluster.fail_open) {
    // Each waiting key may use up to its whole max on this node alone.
    ledger_.for_each_active([](const policy::limiter_key&, policy::lease_key_view& v) {
      if (v.demand > 0 && v.held < v.max) v.pool += v.max - v.held;
    });
    return;
  }
  // Fail-closed: the node keeps enforcing the leases it holds. Once it has been cut off for
  // half the lease TTL, Redis may soon hand its unused lease to other nodes (they may still
  // reach it): the node lets go of its free pool, so that what it can still admit is what
  // its shards hold (each keeps at most its recent use after a report).
  const int64_t half_ttl_ns = options_.cluster.lease_ttl.count() * 500'000;
  if (pools_dropped_ || engine::steady_ns() - cluster_->last_ok_ns() < half_ttl_ns) return;
  pools_dropped_ = true;
  ledger_.for_each_key([](const policy::limiter_key&, policy::lease_key_view& v) { v.pool = 0; });
}

void limit_hub::flush_out() {
  for (unsigned s = 0; s < options_.shards; ++s) {
    auto& q = out_[s];
    while (!q.empty() && ports_[s]->to_shard_.try_push(q.front())) {
      // The ack of a plain usage report is taken on the shard's next loop iteration, whenever
      // that comes: a shard with traffic comes round within microseconds, an idle one has
      // nothing to report. Grants, claims and closes may free parked calls or be awaited by
      // other shards; a shard that reported demand is woken by its ack too (merge()).
      if (q.front().what != policy::lease_reply::kind::ack) wake_[s] = 1;
      q.pop_front();
    }
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with port::send()
  for (unsigned s = 0; s < options_.shards; ++s) {
    if (ports_[s]->wake_on_ack_.load(std::memory_order_relaxed) &&
        ports_[s]->wake_on_ack_.exchange(false, std::memory_order_relaxed))
      wake_[s] = 1;
  }
  std::lock_guard lock(shards_mu_);
  for (unsigned s = 0; s < options_.shards; ++s) {
    if (wake_[s] == 0) continue;
    wake_[s] = 0;
    if (shards_[s] != nullptr) shards_[s]->wake();
  }
}

}  // namespace sluice::net
