#pragma once
// Fixed-window rate-limit counting for one shard.
//
// Windows are aligned to the Unix epoch: a window of W ns covering `now` is
// [floor(now / W) * W, that + W). A call takes one slot in every counter it is subject to,
// all or nothing. A shard admits only from its *budget* for a key: the whole `max` when
// it counts alone (this class on its own), or the lease a merge step grants it when
// several shards share a counter (see budget_source). The evaluator only sees acquire()
// and release(), so splitting counting across cores does not change it.

#include <cstdint>
#include <span>

#include <boost/unordered/unordered_flat_map.hpp>

namespace sluice::policy {

// 128-bit key: counter name and scope value hashed with two independent seeds.
struct limiter_key {
  uint64_t hi = 0, lo = 0;
  bool operator==(const limiter_key&) const = default;
};

struct limiter_key_hash {
  using is_avalanching = void;  // both halves are already hashes
  size_t operator()(const limiter_key& k) const { return k.lo; }
};

// The end of the epoch-aligned window of `window_ns` that holds `now_ns` (floor division:
// times before 1970 still land in the right window).
[[nodiscard]] inline int64_t window_end_at(int64_t now_ns, int64_t window_ns) {
  int64_t q = now_ns / window_ns;
  if (now_ns % window_ns < 0) --q;
  return (q + 1) * window_ns;
}

struct limit_request {
  limiter_key key;
  int64_t window_ns = 0;
  uint32_t max = 0;
};

// Where a key's budget for a new window comes from. The default grants `max` (one shard
// counts alone); a sharded limiter grants leases from the merged global count.
class budget_source {
 public:
  virtual ~budget_source() = default;
  virtual uint32_t budget(const limiter_key& key, int64_t window_end_ns, uint32_t max) = 0;
};

struct acquire_result {
  // wait: nothing was taken; this shard's lease for request `failed` is used up while the
  // process-wide budget may still have room. Ask again after the limiter's next grant
  // (lease_limiter). A limiter_shard never answers wait.
  enum class status : uint8_t { ok, limited, full, wait };
  status what = status::ok;
  uint32_t failed = 0;         // index of the request that failed (limited / full / wait)
  int64_t retry_after_ns = 0;  // limited / wait: until the latest failing window ends
};

struct limiter_options {
  size_t max_keys = 1 << 20;  // live keys per shard; beyond it calls fail closed
  // lease_limiter only: a window starts with no lease instead of the shard's initial share
  // (with --cluster the node's budget comes from Redis, so the hub must grant every slot).
  bool start_empty = false;
};

// What the decider counts with. Implementations: limiter_shard (one thread counts alone:
// `sluice eval`, tests, benchmarks) and lease_limiter (one per shard of `sluice serve`,
// counting from leases a hub grants: policy/lease_limiter.h).
class limiter {
 public:
  virtual ~limiter() = default;

  // Takes one slot in each request's window, or none.
  [[nodiscard]] virtual acquire_result acquire(std::span<const limit_request> requests,
                                               int64_t now_ns) = 0;

  // Gives back slots taken by acquire() at `taken_at_ns` (a call that was never served).
  // A slot from a window that has since ended is not given back.
  virtual void release(std::span<const limit_request> requests, int64_t taken_at_ns) = 0;
};

class limiter_shard final : public limiter {
 public:
  explicit limiter_shard(limiter_options options = {}, budget_source* source = nullptr);

  // Does not allocate once a key exists; a new key may grow the table up to max_keys.
  [[nodiscard]] acquire_result acquire(std::span<const limit_request> requests,
                                       int64_t now_ns) override;
  void release(std::span<const limit_request> requests, int64_t taken_at_ns) override;

  // Slots used in the current window of `key` (0 when unknown or expired). For tests.
  uint32_t used(const limiter_key& key, int64_t window_ns, int64_t now_ns) const;

  size_t live_keys() const { return entries_.size(); }

  // Bytes per key in the table (entry + key + the map's metadata byte), for docs/tests.
  static constexpr size_t kBytesPerKey = 16 + 16 + 1;

 private:
  struct entry {
    int64_t window_end_ns = 0;
    uint32_t used = 0;
    uint32_t budget = 0;
  };
  size_t sweep(int64_t now_ns);  // drops expired keys; returns how many

  limiter_options options_;
  budget_source* source_;
  boost::unordered_flat_map<limiter_key, entry, limiter_key_hash> entries_;
};

}  // namespace sluice::policy
