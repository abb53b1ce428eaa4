#include "policy/lease_limiter.h"

#include <algorithm>

namespace sluice::policy {

lease_limiter::lease_limiter(unsigned shard_id, unsigned shard_count, limiter_options options)
    : id_(shard_id), count_(shard_count == 0 ? 1 : shard_count), options_(options) {
  dirty_.reserve(1024);
  kept_.reserve(1024);
}

void lease_limiter::open_window(entry& e, int64_t end, uint32_t max) {
  e.window_end_ns = end;
  e.used = 0;
  e.budget = options_.start_empty ? 0 : initial_share(max, id_, count_);
  e.max = max;
  e.demand = 0;
  e.returned = 0;
  e.used_at_report = 0;
  e.flags &= kDirty;  // a key already listed for the report stays listed
}

void lease_limiter::touch(const limiter_key& key, entry& e) {
  // The lone shard of a node outside a cluster holds every key's whole max from the start and
  // never waits: the hub has nothing to learn from it, so it never reports (nor wakes it).
  if (count_ == 1 && !options_.start_empty) return;
  if ((e.flags & kDirty) != 0) return;
  e.flags |= kDirty;
  dirty_.push_back(key);
}

size_t lease_limiter::sweep(int64_t now_ns) {
  // Expired keys listed in dirty_ are skipped by report(): their window is over.
  return boost::unordered::erase_if(
      entries_, [now_ns](const auto& kv) { return kv.second.window_end_ns <= now_ns; });
}

acquire_result lease_limiter::acquire(std::span<const limit_request> requests, int64_t now_ns) {
  constexpr size_t kInline = 16;
  entry* found[kInline];
  acquire_result result;       // limited: the latest window that is spent
  acquire_result wait_result;  // wait: the latest window whose lease is used up here
  bool limited = false;
  bool waiting = false;
  bool inserted = false;  // an insertion may rehash and move entries found earlier
  for (size_t i = 0; i < requests.size(); ++i) {
    const limit_request& r = requests[i];
    int64_t end = window_end_at(now_ns, r.window_ns);
    auto it = entries_.find(r.key);
    if (it == entries_.end()) {
      if (entries_.size() >= options_.max_keys && sweep(now_ns) == 0) {
        return {acquire_result::status::full, static_cast<uint32_t>(i), 0};
      }
      it = entries_.emplace(r.key, entry{}).first;
      inserted = true;
    }
    entry& e = it->second;
    // A wall clock that steps back does not reopen a window this shard has left: the call
    // counts in the latest window seen (its lease is what the hub accounted for).
    if (e.window_end_ns > end) end = e.window_end_ns;
    if (e.window_end_ns != end) open_window(e, end, r.max);
    const uint32_t cap = std::min(e.budget, r.max);
    if (e.used >= cap) {
      const bool spent = e.used >= r.max || (e.flags & kClosed) != 0;
      acquire_result& out = spent ? result : wait_result;
      bool& seen = spent ? limited : waiting;
      const int64_t wait = end - now_ns;
      if (!seen || wait > out.retry_after_ns) {
        out.failed = static_cast<uint32_t>(i);
        out.retry_after_ns = wait;
      }
      seen = true;
    }
    if (i < kInline) found[i] = &e;
  }
  const bool reuse = !inserted && requests.size() <= kInline;
  auto at = [&](size_t i) -> entry& {
    return reuse ? *found[i] : entries_.find(requests[i].key)->second;
  };
  if (limited) {
    result.what = acquire_result::status::limited;
    return result;
  }
  if (waiting) {
    // Demand for every key whose lease is used up; the hub grants in proportion to it.
    for (size_t i = 0; i < requests.size(); ++i) {
      entry& e = at(i);
      if (e.used < std::min(e.budget, requests[i].max)) continue;
      ++e.demand;
      touch(requests[i].key, e);
    }
    wait_result.what = acquire_result::status::wait;
    return wait_result;
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    entry& e = at(i);
    ++e.used;
    touch(requests[i].key, e);
  }
  return result;
}

void lease_limiter::release(std::span<const limit_request> requests, int64_t taken_at_ns) {
  for (const limit_request& r : requests) {
    auto it = entries_.find(r.key);
    if (it == entries_.end()) continue;
    entry& e = it->second;
    if (e.window_end_ns != window_end_at(taken_at_ns, r.window_ns) || e.used == 0) continue;
    --e.used;  // the slot goes back to this shard's budget
    touch(r.key, e);
  }
}

bool lease_limiter::apply(const lease_reply& r) {
  switch (r.what) {
    case lease_reply::kind::ack:
      return true;
    case lease_reply::kind::grant: {
      auto it = entries_.find(r.key);
      if (it == entries_.end() || it->second.window_end_ns != r.window_end_ns) {
        // The shard has moved on (or swept the key): its waiting calls are decided again in
        // the window of their new `now`.
        return r.closed || r.amount != 0;
      }
      entry& e = it->second;
      e.budget += r.amount;
      touch(r.key, e);  // the hub hears back what came of it, even when nothing waits now
      if (r.closed) {
        e.flags |= kClosed;
      } else {
        e.flags &= static_cast<uint8_t>(~kClosed);
      }
      return true;
    }
    case lease_reply::kind::claim: {
      auto it = entries_.find(r.key);
      if (it == entries_.end()) {
        // Never seen here: its initial share is still implicit. Make it explicit so a later
        // first call does not take it again (claims may exceed max_keys, by at most the keys
        // other shards wait on).
        it = entries_.emplace(r.key, entry{}).first;
      }
      entry& e = it->second;
      if (e.window_end_ns > r.window_end_ns) {
        // That window is over here: a report of the newer one moves the hub on, which
        // settles whatever still waited in the old one.
        e.flags |= kClaimed;
        touch(r.key, e);
        return false;
      }
      if (e.window_end_ns < r.window_end_ns) open_window(e, r.window_end_ns, r.max);
      const uint32_t give = e.budget > e.used ? e.budget - e.used : 0;
      e.budget -= give;
      e.returned += give;
      e.flags |= kClaimed;
      touch(r.key, e);
      return false;
    }
  }
  return false;
}

uint32_t lease_limiter::used(const limiter_key& key, int64_t window_end_ns) const {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.window_end_ns != window_end_ns) return 0;
  return it->second.used;
}

uint32_t lease_limiter::budget(const limiter_key& key, int64_t window_end_ns) const {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.window_end_ns != window_end_ns) return 0;
  return it->second.budget;
}

// ---------------------------------------------------------------------------------------------
// lease_ledger

lease_ledger::lease_ledger(unsigned shard_count, size_t max_keys, bool start_empty)
    : count_(shard_count == 0 ? 1 : shard_count), max_keys_(max_keys), start_empty_(start_empty) {
  active_.reserve(1024);
  scratch_.reserve(1024);
}

void lease_ledger::open(key_state& k, int64_t window_end_ns, uint32_t max) {
  k.window_end_ns = window_end_ns;
  k.max = max;
  k.pool = 0;
  k.synced_used = 0;
  k.shards.assign(count_, per_shard{});
  if (start_empty_) return;  // the cluster grants the node's budget into the pool
  // Every shard starts the window holding its initial share, whether it has seen the key
  // or not: the shares sum to max, so the pool starts empty.
  for (unsigned s = 0; s < count_; ++s)
    k.shards[s].granted = initial_share(max, s, count_);
}

size_t lease_ledger::expire(int64_t now_ns) {
  return boost::unordered::erase_if(keys_, [now_ns](const auto& kv) {
    return kv.second.window_end_ns <= now_ns && !kv.second.active;
  });
}

uint64_t lease_ledger::accounted(const limiter_key& key) const {
  auto it = keys_.find(key);
  if (it == keys_.end()) return 0;
  uint64_t sum = it->second.pool;
  for (const per_shard& p : it->second.shards)
    sum += p.granted;
  return sum;
}

void lease_ledger::add_pool(const limiter_key& key, int64_t window_end_ns, uint32_t amount) {
  auto it = keys_.find(key);
  if (it == keys_.end() || it->second.window_end_ns != window_end_ns) return;
  it->second.pool += amount;
  if (!it->second.active) {  // settle hands it to shards that wait (or reopens closed ones)
    it->second.active = true;
    active_.push_back(key);
  }
}

uint32_t lease_ledger::pool(const limiter_key& key) const {
  auto it = keys_.find(key);
  return it == keys_.end() ? 0 : it->second.pool;
}

}  // namespace sluice::policy
