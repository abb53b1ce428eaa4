#pragma once
// Exact rate limits over several shards without a lock or a shared write on the request path.
//
// Each shard counts in its own lease_limiter. For a key (counter + scope value) and window a
// shard admits only while `used < budget`, where `budget` is the lease it holds: a slice of
// the key's `max`. The lease_ledger (one per process, on the limits hub thread) hands leases
// out so that the budgets of all shards for a key and window never sum to more than `max`;
// hence never more than `max` admitted, whatever the number of shards.
//
// Protocol (all messages are plain values carried by bounded SPSC queues, see
// net/limit_hub.h):
// - A shard starts a key's window with a deterministic initial share (max / N, the remainder
//   to low shard ids); the ledger assumes every shard holds its share until told otherwise.
// - A call that finds its shard's lease used up while the hub has not said the window is
//   spent gets acquire_result::status::wait and counts as demand for the key; the gateway
//   parks it and decides it again after the next reply from the hub.
// - After each batch of work a shard reports every key it touched (the lone shard of a node
//   outside a cluster never does: it holds every max whole): used, the lease it gave
//   back itself (unused lease beyond what it is likely to need before its next report), and
//   its demand. The ledger puts returns in the key's pool, grants the pool to shards with
//   demand (in proportion), claims unused lease from idle shards when the pool cannot cover
//   the demand, and says "closed" to a waiting shard once no lease is left anywhere.
//
// policy/ stays pure: no threads, no clock. Everything here is used from one thread.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "policy/limiter.h"

namespace sluice::policy {

// Shard `id`'s share of `max` out of `count` shards at the start of a window.
[[nodiscard]] constexpr uint32_t initial_share(uint32_t max, unsigned id, unsigned count) {
  return max / count + (id < max % count ? 1u : 0u);
}

// Shard -> hub: one key touched since the shard's last report.
struct lease_report {
  limiter_key key;
  int64_t window_end_ns = 0;
  uint32_t max = 0;
  uint32_t used = 0;           // slots taken in the window (after releases)
  uint32_t returned = 0;       // lease given back since the last report (out of the budget)
  uint32_t demand = 0;         // calls that waited for lease since the last report
  uint32_t want = 0;           // more lease asked for ahead of need (no call waits on it yet)
  bool answers_claim = false;  // sent in answer to a claim: nothing unused is left
};

// Hub -> shard.
struct lease_reply {
  enum class kind : uint8_t {
    ack,    // the hub has read the shard's report; it may send the next one
    grant,  // `amount` more lease (may be 0); `closed`: no lease left anywhere this window
    claim,  // give back all unused lease of the key (and report)
  };
  kind what = kind::ack;
  bool closed = false;
  uint32_t amount = 0;  // grant
  uint32_t max = 0;     // claim: the key's max, for a shard that never saw the key
  limiter_key key;
  int64_t window_end_ns = 0;
};

class lease_limiter final : public limiter {
 public:
  lease_limiter(unsigned shard_id, unsigned shard_count, limiter_options options = {});

  // Does not allocate once a key exists (a new key may grow the table up to max_keys, and the
  // list of keys to report until it is warm).
  [[nodiscard]] acquire_result acquire(std::span<const limit_request> requests,
                                       int64_t now_ns) override;
  // A released slot goes back to this shard's budget.
  void release(std::span<const limit_request> requests, int64_t taken_at_ns) override;

  // Applies one reply from the hub. Returns true when the caller should decide its parked
  // calls again: a grant or a close, or an ack (so the next report's demand counts exactly
  // the calls that still wait).
  bool apply(const lease_reply& r);

  // Whether some key was touched since the last report.
  [[nodiscard]] bool has_report() const { return !dirty_.empty(); }

  // Hands one lease_report per touched key to push (bool push(const lease_report&)) until it
  // returns false; keys that did not fit stay for the next report. Unused lease beyond kAhead
  // times the key's recent peak of calls between reports (at least kKeep slots) is given back
  // with the report, unless calls are waiting on the key. (The lone shard of a node outside a
  // cluster has nothing to report: touch() lists no key.) Returns the number of reports
  // pushed.
  template <typename Push>
  size_t report(Push&& push);

  // For tests and metrics.
  [[nodiscard]] uint32_t used(const limiter_key& key, int64_t window_end_ns) const;
  [[nodiscard]] uint32_t budget(const limiter_key& key, int64_t window_end_ns) const;
  [[nodiscard]] size_t live_keys() const { return entries_.size(); }
  [[nodiscard]] unsigned shard_id() const { return id_; }
  [[nodiscard]] unsigned shard_count() const { return count_; }

  // Slots of lease a shard keeps at a report, at least, when it has some unused.
  static constexpr uint32_t kKeep = 1;
  // What a shard aims to hold, in multiples of its recent peak of calls between two reports
  // (the peak decays by a quarter at each report): it gives back what is beyond, and asks for
  // more ahead of need (lease_report::want) when it holds less than half.
  static constexpr uint32_t kAhead = 4;

 private:
  enum : uint8_t { kDirty = 1, kClosed = 2, kClaimed = 4 };
  struct entry {
    int64_t window_end_ns = INT64_MIN;
    uint32_t used = 0;
    uint32_t budget = 0;
    uint32_t max = 0;
    uint32_t demand = 0;
    uint32_t returned = 0;
    uint32_t used_at_report = 0;
    uint32_t peak = 0;  // most calls between two reports lately (decays by a quarter a report)
    uint8_t flags = 0;
  };

 public:
  // Bytes per slot of the table: key + entry (the map stores them side by side) + the map's
  // metadata byte. At the map's maximum load factor (0.875) that is at most 65 bytes per live
  // key; usually less.
  static constexpr size_t kBytesPerKey = sizeof(limiter_key) + sizeof(entry) + 1;

 private:
  void open_window(entry& e, int64_t end, uint32_t max);
  void touch(const limiter_key& key, entry& e);
  size_t sweep(int64_t now_ns);

  unsigned id_;
  unsigned count_;
  limiter_options options_;
  boost::unordered_flat_map<limiter_key, entry, limiter_key_hash> entries_;
  std::vector<limiter_key> dirty_;  // keys touched since the last report, each once
  std::vector<limiter_key> kept_;   // scratch: keys that did not fit in a report
};

template <typename Push>
size_t lease_limiter::report(Push&& push) {
  size_t pushed = 0;
  kept_.clear();
  bool full = false;
  for (const limiter_key& key : dirty_) {
    auto it = entries_.find(key);
    if (it == entries_.end()) continue;  // swept: its window is over
    entry& e = it->second;
    if (full) {
      kept_.push_back(key);
      continue;
    }
    uint32_t give = 0, want = 0;
    const uint32_t unused = e.budget > e.used ? e.budget - e.used : 0;
    const uint32_t recent = e.used > e.used_at_report ? e.used - e.used_at_report : 0;
    const uint32_t peak = std::max(recent, e.peak - e.peak / 4);
    // A shard aims to hold kAhead times its recent peak of calls between reports: beyond that
    // it gives back (unless calls wait); below half of it, it asks the hub to top it up
    // before it runs out, so a busy shard on a hot key is granted more while it still admits,
    // instead of parking calls. (A lone shard of a lone node, which keeps all it has, never
    // gets here: touch() lists no key for it.)
    const uint32_t aim = std::max(kKeep, peak > UINT32_MAX / kAhead ? UINT32_MAX : kAhead * peak);
    if (e.demand == 0 && unused > aim) give = unused - aim;
    if (unused < aim / 2 && (e.flags & kClosed) == 0) want = aim - unused;
    lease_report r;
    r.key = key;
    r.window_end_ns = e.window_end_ns;
    r.max = e.max;
    r.used = e.used;
    r.returned = e.returned + give;
    r.demand = e.demand;
    r.want = want;
    r.answers_claim = (e.flags & kClaimed) != 0;
    if (!push(static_cast<const lease_report&>(r))) {
      full = true;
      kept_.push_back(key);
      continue;
    }
    ++pushed;
    e.peak = peak;
    e.budget -= give;
    e.returned = 0;
    e.demand = 0;
    e.used_at_report = e.used;
    e.flags &= static_cast<uint8_t>(~(kDirty | kClaimed));
  }
  dirty_.swap(kept_);
  return pushed;
}

// What a cluster round trip needs to know of one key, and may change (net/limit_hub.cc).
struct lease_key_view {
  int64_t window_end_ns = 0;
  uint32_t max = 0;
  uint32_t used = 0;      // sum of the shards' used at their last reports
  uint32_t held = 0;      // lease held by the node: granted to shards (in flight too) + pool
  uint32_t demand = 0;    // calls waiting, all shards
  uint32_t& pool;         // free lease of the node (may be given back to the cluster)
  uint32_t& synced_used;  // for the caller: `used` at its last round trip for the key
};

// The hub's books: per key and window, the lease each shard holds and the free pool.
// Pure bookkeeping, driven by net/limit_hub.cc (or a test) from one thread.
class lease_ledger {
 public:
  // start_empty: a window starts with nothing held (shards made with
  // limiter_options::start_empty); budget comes in through add_pool (the cluster's grants).
  // Otherwise the shards' initial shares sum to max.
  explicit lease_ledger(unsigned shard_count, size_t max_keys = size_t(1) << 22,
                        bool start_empty = false);

  // One report from shard `shard`. Replies that must go out at once (closing the demand of a
  // window that has ended) go through send(unsigned shard, const lease_reply&).
  template <typename Send>
  void on_report(unsigned shard, const lease_report& r, Send&& send);

  // After a batch of reports: grants, claims and closes, through send.
  template <typename Send>
  void settle(Send&& send);

  // Drops keys whose window has ended at now_ns (wall clock). Returns how many.
  size_t expire(int64_t now_ns);

  // Between on_report and settle: f(const limiter_key&, lease_key_view&) for every key
  // reported this round or still waiting, in a stable order until settle.
  template <typename F>
  void for_each_active(F&& f);
  // The same for every key the ledger holds (a cluster rejoin re-reports them all).
  template <typename F>
  void for_each_key(F&& f);
  // Tells every shard that was told a window is spent that it is not (a grant of 0), so that
  // its next call asks again: after a cluster rejoin, when budget may be had once more.
  template <typename Send>
  void reopen_closed(Send&& send);
  // Adds budget (a cluster grant) to a key's pool; settle hands it out.
  void add_pool(const limiter_key& key, int64_t window_end_ns, uint32_t amount);

  // Whether some key still has demand or claims in flight.
  [[nodiscard]] bool busy() const { return !active_.empty(); }

  // For tests: the lease the ledger counts as held by shards (grants in flight included) plus
  // the pool; never more than max.
  [[nodiscard]] uint64_t accounted(const limiter_key& key) const;
  [[nodiscard]] uint32_t pool(const limiter_key& key) const;
  [[nodiscard]] size_t live_keys() const { return keys_.size(); }

 private:
  struct per_shard {
    uint32_t granted = 0;  // lease the shard holds or is being sent, as far as the hub knows
    uint32_t used = 0;     // at the shard's last report
    uint32_t demand = 0;   // unserved
    uint32_t want = 0;     // asked ahead of need, served from the pool only (never claimed)
    bool claimed = false;  // a claim is in flight
    bool closed = false;   // told the window is spent
    bool fresh = false;    // granted in this settle: it is about to use it, do not claim it
  };
  struct key_state {
    int64_t window_end_ns = 0;
    uint32_t max = 0;
    uint32_t pool = 0;
    uint32_t synced_used = 0;  // lease_key_view::synced_used
    bool active = false;       // in active_
    std::vector<per_shard> shards;
  };

  void open(key_state& k, int64_t window_end_ns, uint32_t max);
  template <typename F>
  void view_of(const limiter_key& key, key_state& k, F& f);
  template <typename Send>
  void settle_key(const limiter_key& key, key_state& k, Send&& send);

  unsigned count_;
  size_t max_keys_;
  bool start_empty_;
  boost::unordered_flat_map<limiter_key, key_state, limiter_key_hash> keys_;
  std::vector<limiter_key> active_;  // keys reported this round or with demand / claims pending
  std::vector<limiter_key> scratch_;
};

template <typename Send>
void lease_ledger::on_report(unsigned shard, const lease_report& r, Send&& send) {
  auto close_old = [&] {
    if (r.demand == 0) return;
    lease_reply c;
    c.what = lease_reply::kind::grant;
    c.closed = true;
    c.key = r.key;
    c.window_end_ns = r.window_end_ns;
    send(shard, static_cast<const lease_reply&>(c));
  };
  auto it = keys_.find(r.key);
  if (it == keys_.end()) {
    if (keys_.size() >= max_keys_) return close_old();  // fail closed: cannot track it
    it = keys_.emplace(r.key, key_state{}).first;
    open(it->second, r.window_end_ns, r.max);
  }
  key_state& k = it->second;
  if (r.window_end_ns < k.window_end_ns) return close_old();  // that window is over
  if (r.window_end_ns > k.window_end_ns) {
    // A new window: calls still waiting in the old one are settled (rate_limited there,
    // then decided afresh by their shard in the window of their new `now`).
    for (unsigned s = 0; s < count_; ++s) {
      if (k.shards[s].demand == 0) continue;
      lease_reply c;
      c.what = lease_reply::kind::grant;
      c.closed = true;
      c.key = r.key;
      c.window_end_ns = k.window_end_ns;
      send(s, static_cast<const lease_reply&>(c));
    }
    open(k, r.window_end_ns, r.max);
  }
  per_shard& p = k.shards[shard];
  const uint32_t back = r.returned < p.granted ? r.returned : p.granted;
  p.granted -= back;
  k.pool += back;
  p.used = r.used;
  // A shard decides its parked calls again before each report (after the ack of the one
  // before), so a report's demand is what waits now: it replaces, it does not add.
  p.demand = r.demand;
  p.want = r.want;
  if (r.answers_claim) p.claimed = false;
  if (!k.active) {
    k.active = true;
    active_.push_back(r.key);
  }
}

template <typename F>
void lease_ledger::for_each_active(F&& f) {
  for (const limiter_key& key : active_) {
    auto it = keys_.find(key);
    if (it == keys_.end()) continue;
    view_of(key, it->second, f);
  }
}

template <typename F>
void lease_ledger::for_each_key(F&& f) {
  for (auto& [key, k] : keys_)
    view_of(key, k, f);
}

template <typename F>
void lease_ledger::view_of(const limiter_key& key, key_state& k, F& f) {
  uint64_t used = 0, held = k.pool, demand = 0;
  for (const per_shard& p : k.shards) {
    used += p.used;
    held += p.granted;
    demand += p.demand;
  }
  lease_key_view v{k.window_end_ns,
                   k.max,
                   static_cast<uint32_t>(used),
                   static_cast<uint32_t>(held),
                   static_cast<uint32_t>(demand),
                   k.pool,
                   k.synced_used};
  f(static_cast<const limiter_key&>(key), v);
}

template <typename Send>
void lease_ledger::reopen_closed(Send&& send) {
  for (auto& [key, k] : keys_) {
    for (unsigned s = 0; s < count_; ++s) {
      if (!k.shards[s].closed) continue;
      k.shards[s].closed = false;
      lease_reply r;
      r.what = lease_reply::kind::grant;
      r.key = key;
      r.window_end_ns = k.window_end_ns;
      r.max = k.max;
      send(s, static_cast<const lease_reply&>(r));
    }
  }
}

template <typename Send>
void lease_ledger::settle(Send&& send) {
  scratch_.clear();
  for (const limiter_key& key : active_) {
    auto it = keys_.find(key);
    if (it == keys_.end()) continue;
    key_state& k = it->second;
    settle_key(key, k, send);
    bool pending = false;
    for (const per_shard& p : k.shards)
      pending |= p.demand != 0 || p.claimed;
    if (pending) {
      scratch_.push_back(key);
    } else {
      k.active = false;
    }
  }
  active_.swap(scratch_);
}

template <typename Send>
void lease_ledger::settle_key(const limiter_key& key, key_state& k, Send&& send) {
  auto reply = [&](unsigned s, lease_reply::kind what, uint32_t amount, bool closed) {
    lease_reply r;
    r.what = what;
    r.amount = amount;
    r.closed = closed;
    r.max = k.max;
    r.key = key;
    r.window_end_ns = k.window_end_ns;
    send(s, static_cast<const lease_reply&>(r));
  };
  uint64_t demand = 0;
  bool any_closed = false;
  for (per_shard& p : k.shards) {
    demand += p.demand;
    any_closed |= p.closed;
    p.fresh = false;
  }
  const bool served_demand = k.pool > 0 && demand > 0;
  if (served_demand) {
    // The pool to the shards that wait, in proportion to their demand, each at most what it
    // asked for (its waiting calls plus what it wants ahead): what is left stays in the pool
    // for the others, instead of bouncing from shard to shard.
    const uint32_t pool = k.pool;
    uint32_t left = pool;
    for (unsigned s = 0; s < count_ && left > 0; ++s) {
      per_shard& p = k.shards[s];
      if (p.demand == 0) continue;
      uint64_t g = static_cast<uint64_t>(pool) * p.demand / demand;
      if (p.want != 0 && g > uint64_t(p.demand) + p.want) g = uint64_t(p.demand) + p.want;
      if (g == 0) g = 1;
      if (g > left) g = left;
      const auto amount = static_cast<uint32_t>(g);
      left -= amount;
      p.granted += amount;
      p.demand = amount >= p.demand ? 0 : p.demand - amount;
      p.want = 0;
      p.closed = false;
      p.fresh = true;
      reply(s, lease_reply::kind::grant, amount, false);
    }
    // Rounding leftovers go to the first shards still waiting, else stay in the pool.
    for (unsigned s = 0; s < count_ && left > 0; ++s) {
      per_shard& p = k.shards[s];
      if (p.demand == 0) continue;
      const uint32_t amount = p.demand < left ? p.demand : left;
      left -= amount;
      p.granted += amount;
      p.demand -= amount;
      reply(s, lease_reply::kind::grant, amount, false);
    }
    k.pool = left;
    demand = 0;
    for (const per_shard& p : k.shards)
      demand += p.demand;
  }
  if (k.pool > 0 && demand == 0 && !any_closed) {
    // Asked ahead of need: from what is free, never by claiming from another shard (and not
    // while a shard was told the window is spent: lease that comes back reopens it first).
    for (unsigned s = 0; s < count_ && k.pool > 0; ++s) {
      per_shard& p = k.shards[s];
      if (p.want == 0 || p.demand != 0) continue;
      const uint32_t amount = p.want < k.pool ? p.want : k.pool;
      k.pool -= amount;
      p.granted += amount;
      p.want = 0;
      p.closed = false;
      p.fresh = true;
      reply(s, lease_reply::kind::grant, amount, false);
    }
  }
  if (!served_demand && k.pool > 0 && any_closed) {
    // Lease came back after some shard was told the window was spent (a released slot):
    // reopen, so its next call asks again instead of being refused locally.
    for (unsigned s = 0; s < count_; ++s) {
      if (!k.shards[s].closed) continue;
      k.shards[s].closed = false;
      reply(s, lease_reply::kind::grant, 0, false);
    }
    return;
  }
  if (demand == 0 && !(any_closed && k.pool == 0)) return;
  // Not enough in the pool: claim the unused lease of shards that do not wait themselves.
  // A waiting shard that the books say holds unused lease (a grant on its way, or a slot it
  // released) is nudged to decide its calls again, and nothing is closed meanwhile: closing
  // is only for when no lease is left anywhere.
  bool claiming = false;
  for (unsigned s = 0; s < count_; ++s) {
    per_shard& p = k.shards[s];
    if (p.claimed) {
      claiming = true;
      continue;
    }
    if (p.granted <= p.used) continue;
    claiming = true;
    if (p.demand != 0 || p.fresh) {
      if (!p.fresh) reply(s, lease_reply::kind::grant, 0, false);
      continue;
    }
    p.claimed = true;
    reply(s, lease_reply::kind::claim, 0, false);
  }
  if (claiming || demand == 0) return;
  // Nothing unused anywhere: the window is spent for everyone who waits.
  for (unsigned s = 0; s < count_; ++s) {
    per_shard& p = k.shards[s];
    if (p.demand == 0) continue;
    p.demand = 0;
    p.closed = true;
    reply(s, lease_reply::kind::grant, 0, true);
  }
}

}  // namespace sluice::policy
