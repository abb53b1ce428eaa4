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
#include <mutex>
#include <span>

#include <boost/unordered/unordered_flat_map.hpp>

namespace sluice::policy {

// 128-bit key: counter name and scope value hashed with two independent seeds.
struct limiter_key {
  uint64_t hi = 0, lo = 0;
  bool operator==(const limiter_key&) const = default;
};

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
  enum class status : uint8_t { ok, limited, full };
  status what = status::ok;
  uint32_t failed = 0;         // index of the request that failed (limited / full)
  int64_t retry_after_ns = 0;  // limited: until the latest failing window ends
};

struct limiter_options {
  size_t max_keys = 1 << 20;  // live keys per shard; beyond it calls fail closed
};

// What the decider counts with. Implementations: limiter_shard (one thread counts alone),
// locked_limiter (several shards share one count table).
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
  struct key_hash {
    using is_avalanching = void;
    size_t operator()(const limiter_key& k) const { return k.lo; }
  };
  size_t sweep(int64_t now_ns);  // drops expired keys; returns how many

  limiter_options options_;
  budget_source* source_;
  boost::unordered_flat_map<limiter_key, entry, key_hash> entries_;
};

// One count table shared by every shard of a process, behind a mutex: exact whatever the
// number of shards, at the price of one uncontended lock per rate-limited call. It is the
// interim engine until per-core lease shards merged periodically replace it (issue 4).
class locked_limiter final : public limiter {
 public:
  explicit locked_limiter(limiter_options options = {}) : inner_(options) {}
  [[nodiscard]] acquire_result acquire(std::span<const limit_request> requests,
                                       int64_t now_ns) override {
    std::lock_guard lock(mutex_);
    return inner_.acquire(requests, now_ns);
  }
  void release(std::span<const limit_request> requests, int64_t taken_at_ns) override {
    std::lock_guard lock(mutex_);
    inner_.release(requests, taken_at_ns);
  }

 private:
  std::mutex mutex_;
  limiter_shard inner_;
};

}  // namespace sluice::policy
