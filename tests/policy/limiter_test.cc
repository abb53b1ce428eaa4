#include "policy/limiter.h"

#include <gtest/gtest.h>

#include <map>
#include <utility>
#include <vector>

#include "tests/policy/test_util.h"

namespace sluice::policy {
namespace {

using testing::kNsPerMs;
using testing::kNsPerSecond;

constexpr int64_t kMinute = 60 * kNsPerSecond;
constexpr int64_t kHour = 3600 * kNsPerSecond;
// Some whole minute well after 1970, so window boundaries are easy to see.
constexpr int64_t kT0 = 1'700'000'040 * kNsPerSecond;
static_assert(kT0 % kMinute == 0);

limit_request req(uint64_t id, int64_t window_ns, uint32_t max) {
  return limit_request{limiter_key{id, id * 31 + 7}, window_ns, max};
}

acquire_result acquire_one(limiter_shard& l, const limit_request& r, int64_t now) {
  return l.acquire(std::span<const limit_request>(&r, 1), now);
}

TEST(LimiterTest, AllowsMaxPerWindowThenLimits) {
  limiter_shard l;
  const limit_request r = req(1, kMinute, 3);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(acquire_one(l, r, kT0 + i).what, acquire_result::status::ok) << i;
  EXPECT_EQ(l.used(r.key, kMinute, kT0), 3u);
  const acquire_result a = acquire_one(l, r, kT0 + 10 * kNsPerSecond);
  EXPECT_EQ(a.what, acquire_result::status::limited);
  EXPECT_EQ(a.failed, 0u);
  EXPECT_EQ(a.retry_after_ns, 50 * kNsPerSecond);
  // A limited call takes nothing.
  EXPECT_EQ(l.used(r.key, kMinute, kT0), 3u);
}

TEST(LimiterTest, WindowResetsExactlyAtTheEpochAlignedBoundary) {
  limiter_shard l;
  const limit_request r = req(1, kMinute, 1);
  // First call late in the minute: the window is the calendar minute, not 60 s from now.
  EXPECT_EQ(acquire_one(l, r, kT0 + 59 * kNsPerSecond).what, acquire_result::status::ok);
  const acquire_result at_59_999 = acquire_one(l, r, kT0 + 59'999 * kNsPerMs);
  EXPECT_EQ(at_59_999.what, acquire_result::status::limited);
  EXPECT_EQ(at_59_999.retry_after_ns, 1 * kNsPerMs);
  const acquire_result last_ns = acquire_one(l, r, kT0 + kMinute - 1);
  EXPECT_EQ(last_ns.what, acquire_result::status::limited);
  EXPECT_EQ(last_ns.retry_after_ns, 1);
  EXPECT_EQ(acquire_one(l, r, kT0 + kMinute).what, acquire_result::status::ok);
  EXPECT_EQ(l.used(r.key, kMinute, kT0 + kMinute), 1u);
  // The old window's count is gone, not carried.
  EXPECT_EQ(l.used(r.key, kMinute, kT0 + 59 * kNsPerSecond), 0u);
}

TEST(LimiterTest, NonStandardWindowsAlignToMultiplesSinceEpoch) {
  limiter_shard l;
  const int64_t w = 7 * kNsPerSecond;
  const limit_request r = req(5, w, 1);
  const int64_t start = 1'000'000'001 * w;  // a multiple of 7 s
  EXPECT_EQ(acquire_one(l, r, start + 6 * kNsPerSecond).what, acquire_result::status::ok);
  const acquire_result a = acquire_one(l, r, start + 6 * kNsPerSecond + 500 * kNsPerMs);
  EXPECT_EQ(a.what, acquire_result::status::limited);
  EXPECT_EQ(a.retry_after_ns, 500 * kNsPerMs);
  EXPECT_EQ(acquire_one(l, r, start + w).what, acquire_result::status::ok);
}

TEST(LimiterTest, NegativeTimesFloorToTheRightWindow) {
  limiter_shard l;
  const limit_request r = req(1, kMinute, 1);
  // -1 ns is in the window [-60 s, 0): it ends at 0, not at 60 s.
  EXPECT_EQ(acquire_one(l, r, -kMinute).what, acquire_result::status::ok);
  const acquire_result a = acquire_one(l, r, -1);
  EXPECT_EQ(a.what, acquire_result::status::limited);
  EXPECT_EQ(a.retry_after_ns, 1);
  EXPECT_EQ(acquire_one(l, r, 0).what, acquire_result::status::ok);

  // Further before 1970, off a boundary: -150 s is in the window [-180 s, -120 s).
  limiter_shard m;
  EXPECT_EQ(acquire_one(m, r, -150 * kNsPerSecond).what, acquire_result::status::ok);
  const acquire_result b = acquire_one(m, r, -121 * kNsPerSecond);
  EXPECT_EQ(b.what, acquire_result::status::limited);
  EXPECT_EQ(b.retry_after_ns, 1 * kNsPerSecond);
  EXPECT_EQ(acquire_one(m, r, -120 * kNsPerSecond).what, acquire_result::status::ok);
}

TEST(LimiterTest, KeysCountIndependently) {
  limiter_shard l;
  const limit_request a = req(1, kMinute, 1);
  const limit_request b = req(2, kMinute, 1);
  EXPECT_EQ(acquire_one(l, a, kT0).what, acquire_result::status::ok);
  EXPECT_EQ(acquire_one(l, b, kT0).what, acquire_result::status::ok);
  EXPECT_EQ(acquire_one(l, a, kT0).what, acquire_result::status::limited);
  // Keys differing only in one half are different keys.
  const limit_request c{limiter_key{1, 999}, kMinute, 1};
  EXPECT_EQ(acquire_one(l, c, kT0).what, acquire_result::status::ok);
}

TEST(LimiterTest, EachRequestChecksItsOwnMaxAgainstTheSharedCount) {
  // Two limits naming one counter (one key) with different max: the count is shared and
  // each checks its own max, whichever came first in the window.
  limiter_shard l;
  const limit_request low = req(1, kMinute, 2);
  const limit_request high = req(1, kMinute, 3);
  EXPECT_EQ(acquire_one(l, low, kT0).what, acquire_result::status::ok);
  EXPECT_EQ(acquire_one(l, high, kT0).what, acquire_result::status::ok);
  EXPECT_EQ(acquire_one(l, low, kT0).what, acquire_result::status::limited);
  EXPECT_EQ(acquire_one(l, high, kT0).what, acquire_result::status::ok);
  EXPECT_EQ(acquire_one(l, high, kT0).what, acquire_result::status::limited);
  EXPECT_EQ(l.used(low.key, kMinute, kT0), 3u);
}

TEST(LimiterTest, AcquireIsAllOrNothing) {
  limiter_shard l;
  const limit_request roomy = req(1, kMinute, 100);
  const limit_request tight = req(2, kMinute, 1);
  const std::vector<limit_request> both = {roomy, tight};
  EXPECT_EQ(l.acquire(both, kT0).what, acquire_result::status::ok);
  EXPECT_EQ(l.used(roomy.key, kMinute, kT0), 1u);
  EXPECT_EQ(l.used(tight.key, kMinute, kT0), 1u);
  for (int i = 0; i < 5; ++i) {
    const acquire_result a = l.acquire(both, kT0 + 1);
    EXPECT_EQ(a.what, acquire_result::status::limited);
    EXPECT_EQ(a.failed, 1u);
  }
  // The failing calls took nothing from the key that had room.
  EXPECT_EQ(l.used(roomy.key, kMinute, kT0), 1u);
  EXPECT_EQ(l.used(tight.key, kMinute, kT0), 1u);
}

TEST(LimiterTest, RetryAfterIsTheLatestFailingWindow) {
  limiter_shard l;
  const limit_request per_minute = req(1, kMinute, 1);
  const limit_request per_hour = req(2, kHour, 1);
  const limit_request roomy_day = req(3, 24 * kHour, 1000);
  const std::vector<limit_request> all = {per_hour, per_minute, roomy_day};
  const int64_t t = kT0 - (kT0 % kHour) + 10 * kNsPerSecond;  // 10 s into an hour
  EXPECT_EQ(l.acquire(all, t).what, acquire_result::status::ok);
  const acquire_result a = l.acquire(all, t + kNsPerSecond);
  EXPECT_EQ(a.what, acquire_result::status::limited);
  EXPECT_EQ(a.failed, 0u);  // the hour window ends last
  EXPECT_EQ(a.retry_after_ns, kHour - 11 * kNsPerSecond);
  // Same requests in the other order: still the hour.
  const std::vector<limit_request> reversed = {per_minute, per_hour, roomy_day};
  const acquire_result b = l.acquire(reversed, t + kNsPerSecond);
  EXPECT_EQ(b.failed, 1u);
  EXPECT_EQ(b.retry_after_ns, kHour - 11 * kNsPerSecond);
  // After the minute rolls over only the hour fails.
  const acquire_result c = l.acquire(reversed, t + kMinute);
  EXPECT_EQ(c.what, acquire_result::status::limited);
  EXPECT_EQ(c.failed, 1u);
  EXPECT_EQ(c.retry_after_ns, kHour - 70 * kNsPerSecond);
}

TEST(LimiterTest, ReleaseGivesTheSlotBackInTheSameWindow) {
  limiter_shard l;
  const limit_request r = req(1, kMinute, 1);
  ASSERT_EQ(acquire_one(l, r, kT0 + kNsPerSecond).what, acquire_result::status::ok);
  EXPECT_EQ(acquire_one(l, r, kT0 + 2 * kNsPerSecond).what, acquire_result::status::limited);
  l.release(std::span<const limit_request>(&r, 1), kT0 + kNsPerSecond);
  EXPECT_EQ(l.used(r.key, kMinute, kT0), 0u);
  EXPECT_EQ(acquire_one(l, r, kT0 + 3 * kNsPerSecond).what, acquire_result::status::ok);
}

TEST(LimiterTest, ReleaseFromAnEndedWindowGivesNothingBack) {
  limiter_shard l;
  const limit_request r = req(1, kMinute, 1);
  ASSERT_EQ(acquire_one(l, r, kT0 + 59 * kNsPerSecond).what, acquire_result::status::ok);
  // Next minute: one call takes the new window's slot.
  ASSERT_EQ(acquire_one(l, r, kT0 + kMinute).what, acquire_result::status::ok);
  // The first call (taken in the old window) fails late: its release must not free the
  // new window's slot.
  l.release(std::span<const limit_request>(&r, 1), kT0 + 59 * kNsPerSecond);
  EXPECT_EQ(l.used(r.key, kMinute, kT0 + kMinute), 1u);
  EXPECT_EQ(acquire_one(l, r, kT0 + kMinute + 1).what, acquire_result::status::limited);
}

TEST(LimiterTest, ReleaseNeverUnderflowsAndIgnoresUnknownKeys) {
  limiter_shard l;
  const limit_request r = req(1, kMinute, 2);
  const limit_request unknown = req(2, kMinute, 2);
  ASSERT_EQ(acquire_one(l, r, kT0).what, acquire_result::status::ok);
  l.release(std::span<const limit_request>(&r, 1), kT0);
  l.release(std::span<const limit_request>(&r, 1), kT0);
  l.release(std::span<const limit_request>(&unknown, 1), kT0);
  EXPECT_EQ(l.used(r.key, kMinute, kT0), 0u);
  EXPECT_EQ(l.live_keys(), 1u);
  // Still exactly max slots, not max + 1.
  EXPECT_EQ(acquire_one(l, r, kT0).what, acquire_result::status::ok);
  EXPECT_EQ(acquire_one(l, r, kT0).what, acquire_result::status::ok);
  EXPECT_EQ(acquire_one(l, r, kT0).what, acquire_result::status::limited);
}

TEST(LimiterTest, MaxKeysBoundFailsClosedWithFull) {
  limiter_shard l(limiter_options{.max_keys = 3});
  for (uint64_t k = 0; k < 3; ++k)
    ASSERT_EQ(acquire_one(l, req(k, kMinute, 10), kT0).what, acquire_result::status::ok);
  EXPECT_EQ(l.live_keys(), 3u);
  // A known key still counts.
  EXPECT_EQ(acquire_one(l, req(0, kMinute, 10), kT0).what, acquire_result::status::ok);
  // A fourth live key does not fit.
  const std::vector<limit_request> two = {req(1, kMinute, 10), req(99, kMinute, 10)};
  const acquire_result a = l.acquire(two, kT0 + 1);
  EXPECT_EQ(a.what, acquire_result::status::full);
  EXPECT_EQ(a.failed, 1u);
  EXPECT_EQ(l.live_keys(), 3u);
  // All or nothing: the known key in the same call took nothing.
  EXPECT_EQ(l.used(req(1, kMinute, 10).key, kMinute, kT0), 1u);
}

TEST(LimiterTest, FullTableOfExpiredKeysIsSweptNotFull) {
  limiter_shard l(limiter_options{.max_keys = 3});
  for (uint64_t k = 0; k < 3; ++k)
    ASSERT_EQ(acquire_one(l, req(k, kMinute, 10), kT0).what, acquire_result::status::ok);
  // Next minute: every key's window has ended.
  EXPECT_EQ(acquire_one(l, req(50, kMinute, 10), kT0 + kMinute).what, acquire_result::status::ok);
  EXPECT_EQ(l.live_keys(), 1u);
  EXPECT_EQ(acquire_one(l, req(51, kMinute, 10), kT0 + kMinute).what, acquire_result::status::ok);
  EXPECT_EQ(acquire_one(l, req(52, kMinute, 10), kT0 + kMinute).what, acquire_result::status::ok);
  EXPECT_EQ(acquire_one(l, req(53, kMinute, 10), kT0 + kMinute).what, acquire_result::status::full);
}

TEST(LimiterTest, SweepKeepsLiveKeysAndTheirCounts) {
  limiter_shard l(limiter_options{.max_keys = 2});
  const limit_request hourly = req(1, kHour, 2);
  const int64_t t = kT0 - (kT0 % kHour);
  ASSERT_EQ(acquire_one(l, hourly, t).what, acquire_result::status::ok);
  ASSERT_EQ(acquire_one(l, req(2, kMinute, 10), t).what, acquire_result::status::ok);
  // A minute later the minute key expired, the hour key did not.
  ASSERT_EQ(acquire_one(l, req(3, kMinute, 10), t + kMinute).what, acquire_result::status::ok);
  EXPECT_EQ(l.live_keys(), 2u);
  EXPECT_EQ(l.used(hourly.key, kHour, t + kMinute), 1u);
  EXPECT_EQ(acquire_one(l, hourly, t + kMinute).what, acquire_result::status::ok);
  EXPECT_EQ(acquire_one(l, hourly, t + kMinute).what, acquire_result::status::limited);
}

TEST(LimiterTest, ManyKeysInOneCallSurviveRehashing) {
  // Many new keys in one call (more than fit inline): every one is counted once.
  limiter_shard l;
  std::vector<limit_request> many;
  for (uint64_t k = 0; k < 40; ++k)
    many.push_back(req(k, kMinute, 1));
  ASSERT_EQ(l.acquire(many, kT0).what, acquire_result::status::ok);
  for (const limit_request& r : many)
    EXPECT_EQ(l.used(r.key, kMinute, kT0), 1u);
  EXPECT_EQ(l.acquire(many, kT0).what, acquire_result::status::limited);
}

// Hands out fixed budgets and records every call.
class fake_budget_source : public budget_source {
 public:
  uint32_t budget(const limiter_key& key, int64_t window_end_ns, uint32_t max) override {
    calls.push_back({key.hi, window_end_ns});
    last_max = max;
    return grant;
  }
  uint32_t grant = 2;
  uint32_t last_max = 0;
  std::vector<std::pair<uint64_t, int64_t>> calls;
};

TEST(LimiterTest, BudgetSourceIsConsultedOncePerNewWindowAndRespected) {
  fake_budget_source source;
  limiter_shard l({}, &source);
  const limit_request r = req(1, kMinute, 10);
  EXPECT_EQ(acquire_one(l, r, kT0).what, acquire_result::status::ok);
  EXPECT_EQ(acquire_one(l, r, kT0 + 1).what, acquire_result::status::ok);
  const acquire_result a = acquire_one(l, r, kT0 + 2);
  EXPECT_EQ(a.what, acquire_result::status::limited);  // budget 2, not max 10
  EXPECT_EQ(a.retry_after_ns, kMinute - 2);
  ASSERT_EQ(source.calls.size(), 1u);
  EXPECT_EQ(source.calls[0].first, r.key.hi);
  EXPECT_EQ(source.calls[0].second, kT0 + kMinute);
  EXPECT_EQ(source.last_max, 10u);

  // A new window asks again.
  source.grant = 1;
  EXPECT_EQ(acquire_one(l, r, kT0 + kMinute).what, acquire_result::status::ok);
  EXPECT_EQ(acquire_one(l, r, kT0 + kMinute + 1).what, acquire_result::status::limited);
  ASSERT_EQ(source.calls.size(), 2u);
  EXPECT_EQ(source.calls[1].second, kT0 + 2 * kMinute);
}

TEST(LimiterTest, BudgetLargerThanMaxIsCappedAtMax) {
  fake_budget_source source;
  source.grant = 100;
  limiter_shard l({}, &source);
  const limit_request r = req(1, kMinute, 2);
  EXPECT_EQ(acquire_one(l, r, kT0).what, acquire_result::status::ok);
  EXPECT_EQ(acquire_one(l, r, kT0).what, acquire_result::status::ok);
  EXPECT_EQ(acquire_one(l, r, kT0).what, acquire_result::status::limited);
}

TEST(LimiterTest, ZeroBudgetLimitsAtOnce) {
  fake_budget_source source;
  source.grant = 0;
  limiter_shard l({}, &source);
  const acquire_result a = acquire_one(l, req(1, kMinute, 5), kT0 + 15 * kNsPerSecond);
  EXPECT_EQ(a.what, acquire_result::status::limited);
  EXPECT_EQ(a.retry_after_ns, 45 * kNsPerSecond);
  EXPECT_EQ(source.calls.size(), 1u);
  // Still one lookup per window, however many calls fail.
  (void)acquire_one(l, req(1, kMinute, 5), kT0 + 16 * kNsPerSecond);
  EXPECT_EQ(source.calls.size(), 1u);
}

TEST(LimiterTest, UsedIsZeroForUnknownKeys) {
  limiter_shard l;
  EXPECT_EQ(l.used(limiter_key{1, 2}, kMinute, kT0), 0u);
  EXPECT_EQ(l.live_keys(), 0u);
}

}  // namespace
}  // namespace sluice::policy
