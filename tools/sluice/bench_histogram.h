#pragma once
// A log-linear latency histogram in the manner of HdrHistogram: fixed memory, O(1) record, no
// allocation after construction, mergeable (one per load-generator thread, merged at the end).
//
// Values are nanoseconds. Below 2^kSubBits they are counted exactly; above, every power of two
// is split into 2^kSubBits equal buckets, so a bucket is at most 1/128 of its values wide and a
// percentile (reported as its bucket's midpoint, capped at the exact max) is within 1/256
// (0.4 %) of the true value. Values at or above 2^kMaxBits (about 73 minutes) land in the last
// bucket; min, max, count and sum are exact.

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <limits>

namespace sluice::bench {

class histogram {
 public:
  static constexpr unsigned kSubBits = 7;
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  static constexpr unsigned kMaxBits = 42;  // 2^42 ns = 73 min
  static constexpr size_t kBuckets = kSub + (kMaxBits - kSubBits) * kSub;
  // Documented bound on a percentile's relative error (midpoint of a bucket 1/kSub wide).
  static constexpr double kRelativeError = 1.0 / double(2 * kSub);

  static constexpr size_t index_of(uint64_t v) {
    if (v < kSub) return size_t(v);
    const unsigned e = 63u - unsigned(std::countl_zero(v));  // >= kSubBits
    if (e >= kMaxBits) return kBuckets - 1;
    const unsigned shift = e - kSubBits;
    return size_t(kSub + (e - kSubBits) * kSub + ((v >> shift) - kSub));
  }
  // Smallest value of bucket i, and its width.
  static constexpr uint64_t lower_of(size_t i) {
    if (i < kSub) return i;
    const uint64_t octave = (i - kSub) / kSub;  // 0 for [kSub, 2 kSub)
    const uint64_t sub = (i - kSub) % kSub;
    return (kSub + sub) << octave;
  }
  static constexpr uint64_t width_of(size_t i) {
    return i < kSub ? 1 : uint64_t{1} << ((i - kSub) / kSub);
  }

  // Does not allocate.
  void record(uint64_t v) {
    ++counts_[index_of(v)];
    ++count_;
    sum_ += v;
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
  }

  void merge(const histogram& o) {
    for (size_t i = 0; i < kBuckets; ++i)
      counts_[i] += o.counts_[i];
    count_ += o.count_;
    sum_ += o.sum_;
    min_ = std::min(min_, o.min_);
    max_ = std::max(max_, o.max_);
  }

  void clear() {
    counts_.fill(0);
    count_ = 0;
    sum_ = 0;
    min_ = std::numeric_limits<uint64_t>::max();
    max_ = 0;
  }

  // The value at percentile p (0..100]: the bucket holding the ceil(p/100 * count)-th value,
  // as its midpoint (exact below kSub), capped at max. 0 when empty.
  [[nodiscard]] uint64_t percentile(double p) const {
    if (count_ == 0) return 0;
    if (p >= 100.0) return max_;
    double want = p / 100.0 * double(count_);
    uint64_t rank = uint64_t(want);
    if (double(rank) < want) ++rank;
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        const uint64_t mid = lower_of(i) + width_of(i) / 2;
        return std::clamp(mid, min_, max_);
      }
    }
    return max_;
  }

  [[nodiscard]] uint64_t count() const { return count_; }
  [[nodiscard]] uint64_t min() const { return count_ ? min_ : 0; }
  [[nodiscard]] uint64_t max() const { return max_; }
  [[nodiscard]] double mean() const { return count_ ? double(sum_) / double(count_) : 0.0; }

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = std::numeric_limits<uint64_t>::max();
  uint64_t max_ = 0;
};

}  // namespace sluice::bench
