// The load generator's log-linear histogram: percentiles within the documented relative error,
// exact min/max/count, merging per-thread histograms.

#include "tools/sluice/bench_histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

namespace sluice::bench {
namespace {

// The exact value at percentile p as the histogram defines it: the ceil(p/100 n)-th smallest.
uint64_t exact(std::vector<uint64_t> v, double p) {
  std::sort(v.begin(), v.end());
  size_t rank = size_t(std::ceil(p / 100.0 * double(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return v[rank - 1];
}

TEST(bench_histogram, BucketsCoverEveryValueOnce) {
  for (uint64_t v : {0ull, 1ull, 127ull, 128ull, 129ull, 255ull, 256ull, 1000ull, 123456789ull,
                     (1ull << 41) + 12345}) {
    const size_t i = histogram::index_of(v);
    ASSERT_LT(i, histogram::kBuckets);
    EXPECT_LE(histogram::lower_of(i), v) << v;
    EXPECT_GT(histogram::lower_of(i) + histogram::width_of(i), v) << v;
    // A bucket is at most 1/kSub of its values wide.
    EXPECT_LE(double(histogram::width_of(i)), std::max(1.0, double(v) / double(histogram::kSub)));
  }
  EXPECT_EQ(histogram::index_of(~0ull), histogram::kBuckets - 1);
}

TEST(bench_histogram, PercentilesAreWithinTheDocumentedError) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> lat(std::log(200'000.0), 1.0);  // ~200 us, long tail
  auto h = std::make_unique<histogram>();
  std::vector<uint64_t> values;
  for (int i = 0; i < 200'000; ++i) {
    const uint64_t v = uint64_t(lat(rng));
    values.push_back(v);
    h->record(v);
  }
  EXPECT_EQ(h->count(), values.size());
  EXPECT_EQ(h->min(), *std::min_element(values.begin(), values.end()));
  EXPECT_EQ(h->max(), *std::max_element(values.begin(), values.end()));
  EXPECT_EQ(h->percentile(100), h->max());
  for (double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99}) {
    const double want = double(exact(values, p));
    const double got = double(h->percentile(p));
    EXPECT_LE(std::abs(got - want), want * histogram::kRelativeError + 1.0)
        << "p" << p << " got " << got << " want " << want;
  }
}

TEST(bench_histogram, SmallValuesAreExact) {
  auto h = std::make_unique<histogram>();
  for (uint64_t v = 1; v <= 100; ++v)
    h->record(v);
  EXPECT_EQ(h->percentile(50), 50u);
  EXPECT_EQ(h->percentile(99), 99u);
  EXPECT_EQ(h->percentile(1), 1u);
  EXPECT_DOUBLE_EQ(h->mean(), 50.5);
}

TEST(bench_histogram, EmptyReadsZero) {
  auto h = std::make_unique<histogram>();
  EXPECT_EQ(h->count(), 0u);
  EXPECT_EQ(h->percentile(50), 0u);
  EXPECT_EQ(h->min(), 0u);
  EXPECT_EQ(h->max(), 0u);
}

TEST(bench_histogram, MergeEqualsRecordingEverythingInOne) {
  auto a = std::make_unique<histogram>();
  auto b = std::make_unique<histogram>();
  auto all = std::make_unique<histogram>();
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<uint64_t> fast(10'000, 50'000);
  std::uniform_int_distribution<uint64_t> slow(1'000'000, 9'000'000);
  for (int i = 0; i < 9000; ++i) {
    const uint64_t v = fast(rng);
    a->record(v);
    all->record(v);
  }
  for (int i = 0; i < 1000; ++i) {
    const uint64_t v = slow(rng);
    b->record(v);
    all->record(v);
  }
  a->merge(*b);
  EXPECT_EQ(a->count(), 10'000u);
  EXPECT_EQ(a->min(), all->min());
  EXPECT_EQ(a->max(), all->max());
  for (double p : {50.0, 89.0, 91.0, 99.0, 99.9})
    EXPECT_EQ(a->percentile(p), all->percentile(p)) << p;
  // The slow tenth shows up above p90 only.
  EXPECT_LT(a->percentile(89), 60'000u);
  EXPECT_GT(a->percentile(91), 900'000u);
  a->clear();
  EXPECT_EQ(a->count(), 0u);
  EXPECT_EQ(a->percentile(99), 0u);
}

}  // namespace
}  // namespace sluice::bench
