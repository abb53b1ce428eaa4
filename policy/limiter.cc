#include "policy/limiter.h"

#include <algorithm>
#include <cstdint>

namespace sluice::policy {

namespace {
int64_t window_end(int64_t now_ns, int64_t window_ns) {
  return window_end_at(now_ns, window_ns);
}
}  // namespace

limiter_shard::limiter_shard(limiter_options options, budget_source* source)
    : options_(options), source_(source) {}

size_t limiter_shard::sweep(int64_t now_ns) {
  return boost::unordered::erase_if(
      entries_, [now_ns](const auto& kv) { return kv.second.window_end_ns <= now_ns; });
}

acquire_result limiter_shard::acquire(std::span<const limit_request> requests, int64_t now_ns) {
  // Requests per call are few (a rule's limits plus all_tools): keep the entries found in
  // the check pass on the stack so the commit pass does not look them up again.
  constexpr size_t kInline = 16;
  entry* found[kInline];
  acquire_result result;
  bool limited = false;
  bool inserted = false;  // an insertion may rehash and move entries found earlier
  for (size_t i = 0; i < requests.size(); ++i) {
    const limit_request& r = requests[i];
    const int64_t end = window_end(now_ns, r.window_ns);
    auto it = entries_.find(r.key);
    if (it == entries_.end()) {
      if (entries_.size() >= options_.max_keys && sweep(now_ns) == 0) {
        return {acquire_result::status::full, static_cast<uint32_t>(i), 0};
      }
      // No window yet: a default window_end_ns of 0 would pass for the window ending at
      // the epoch (calls in the last window before 1970) with a budget of 0.
      it = entries_.emplace(r.key, entry{.window_end_ns = INT64_MIN}).first;
      inserted = true;
    }
    entry& e = it->second;
    if (e.window_end_ns != end) {  // a new window for this key
      e.window_end_ns = end;
      e.used = 0;
      // Counting alone there is no lease: each request's own max bounds the shared count
      // (limits naming one counter may differ in max), so the budget must not pin the
      // max of whichever request opened the window.
      e.budget = source_ != nullptr ? source_->budget(r.key, end, r.max) : UINT32_MAX;
    }
    if (e.used >= std::min(e.budget, r.max)) {
      const int64_t wait = end - now_ns;
      if (!limited || wait > result.retry_after_ns) {
        result.failed = static_cast<uint32_t>(i);
        result.retry_after_ns = wait;
      }
      limited = true;
    }
    if (i < kInline) found[i] = &e;
  }
  if (limited) {
    result.what = acquire_result::status::limited;
    return result;
  }
  const bool reuse = !inserted && requests.size() <= kInline;
  for (size_t i = 0; i < requests.size(); ++i) {
    if (reuse) {
      ++found[i]->used;
    } else {
      ++entries_.find(requests[i].key)->second.used;
    }
  }
  return result;
}

void limiter_shard::release(std::span<const limit_request> requests, int64_t taken_at_ns) {
  for (const limit_request& r : requests) {
    auto it = entries_.find(r.key);
    if (it == entries_.end()) continue;
    entry& e = it->second;
    if (e.window_end_ns == window_end(taken_at_ns, r.window_ns) && e.used > 0) --e.used;
  }
}

uint32_t limiter_shard::used(const limiter_key& key, int64_t window_ns, int64_t now_ns) const {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.window_end_ns != window_end(now_ns, window_ns)) return 0;
  return it->second.used;
}

}  // namespace sluice::policy
