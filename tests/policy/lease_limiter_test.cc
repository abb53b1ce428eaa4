#include "policy/lease_limiter.h"

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "tests/policy/test_util.h"

namespace sluice::policy {
namespace {

using testing::kNsPerSecond;

constexpr int64_t kMinute = 60 * kNsPerSecond;
constexpr int64_t kT0 = 1'700'000'040 * kNsPerSecond;
constexpr int64_t kEnd = kT0 + kMinute;
static_assert(kT0 % kMinute == 0);

limit_request req(uint64_t id, uint32_t max, int64_t window_ns = kMinute) {
  return limit_request{limiter_key{id, id * 31 + 7}, window_ns, max};
}

// N lease_limiters and a lease_ledger joined by FIFO queues, as net/limit_hub.cc joins them,
// with every step (deliver a report, merge, deliver a reply) under the test's control.
class cluster {
 public:
  // start_empty: as with --cluster, windows start with no lease; budget comes through
  // between_merges (the hub's Redis round trip, between the reports and the settle).
  explicit cluster(unsigned n, bool start_empty = false)
      : ledger_(n, size_t(1) << 22, start_empty), to_hub_(n), to_shard_(n), in_flight_(n, false) {
    limiter_options o;
    o.start_empty = start_empty;
    for (unsigned i = 0; i < n; ++i)
      shards_.push_back(std::make_unique<lease_limiter>(i, n, o));
  }
  std::function<void(lease_ledger&)> between_merges;

  lease_limiter& shard(unsigned i) { return *shards_[i]; }
  lease_ledger& ledger() { return ledger_; }
  unsigned size() const { return static_cast<unsigned>(shards_.size()); }

  acquire_result acquire(unsigned i, const limit_request& r, int64_t now = kT0) {
    return shards_[i]->acquire(std::span<const limit_request>(&r, 1), now);
  }
  // Shard i sends its report (all touched keys), unless its last one is not acknowledged.
  void report(unsigned i) {
    if (in_flight_[i]) return;
    in_flight_[i] = shards_[i]->report([&](const lease_report& r) {
      to_hub_[i].push_back(r);
      return true;
    }) != 0;
  }
  // The hub reads every queued report and settles.
  void merge() {
    auto send = [this](unsigned s, const lease_reply& r) { to_shard_[s].push_back(r); };
    for (unsigned s = 0; s < size(); ++s) {
      for (const lease_report& r : to_hub_[s])
        ledger_.on_report(s, r, send);
      if (!to_hub_[s].empty()) to_shard_[s].push_back(lease_reply{});  // the ack
      to_hub_[s].clear();
    }
    if (between_merges) between_merges(ledger_);
    ledger_.settle(send);
  }
  // Shard i applies its replies; true when a waiting call should be decided again.
  bool deliver(unsigned i) {
    bool again = false;
    while (!to_shard_[i].empty()) {
      if (to_shard_[i].front().what == lease_reply::kind::ack) in_flight_[i] = false;
      again |= shards_[i]->apply(to_shard_[i].front());
      to_shard_[i].pop_front();
    }
    return again;
  }
  // Everything reported, merged and delivered until quiet.
  void settle_all() {
    for (int round = 0; round < 20; ++round) {
      for (unsigned i = 0; i < size(); ++i)
        report(i);
      merge();
      bool any = false;
      for (unsigned i = 0; i < size(); ++i) {
        any |= !to_shard_[i].empty();
        (void)deliver(i);
      }
      bool dirty = false;
      for (unsigned i = 0; i < size(); ++i)
        dirty |= shards_[i]->has_report();
      if (!any && !dirty) return;
    }
  }
  size_t queued_replies(unsigned i) const { return to_shard_[i].size(); }

  uint64_t budgets(const limiter_key& key, int64_t end = kEnd) const {
    uint64_t sum = 0;
    for (const auto& s : shards_)
      sum += s->budget(key, end);
    return sum;
  }
  uint64_t used(const limiter_key& key, int64_t end = kEnd) const {
    uint64_t sum = 0;
    for (const auto& s : shards_)
      sum += s->used(key, end);
    return sum;
  }

 private:
  lease_ledger ledger_;
  std::vector<std::unique_ptr<lease_limiter>> shards_;
  std::vector<std::deque<lease_report>> to_hub_;
  std::vector<std::deque<lease_reply>> to_shard_;
  std::vector<bool> in_flight_;
};

TEST(LeaseLimiterTest, InitialSharesSplitMaxWithTheRemainderToLowIds) {
  EXPECT_EQ(initial_share(10, 0, 3), 4u);
  EXPECT_EQ(initial_share(10, 1, 3), 3u);
  EXPECT_EQ(initial_share(10, 2, 3), 3u);
  EXPECT_EQ(initial_share(1, 0, 4), 1u);
  EXPECT_EQ(initial_share(1, 3, 4), 0u);
  for (uint32_t max : {1u, 7u, 10u, 1000u}) {
    uint32_t sum = 0;
    for (unsigned i = 0; i < 5; ++i)
      sum += initial_share(max, i, 5);
    EXPECT_EQ(sum, max);
  }
}

TEST(LeaseLimiterTest, AloneItCountsLikeALimiterShardAndNeverWaits) {
  lease_limiter l(0, 1);
  const limit_request r = req(1, 3);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(l.acquire({&r, 1}, kT0).what, acquire_result::status::ok);
  const acquire_result a = l.acquire({&r, 1}, kT0 + 10 * kNsPerSecond);
  EXPECT_EQ(a.what, acquire_result::status::limited);
  EXPECT_EQ(a.retry_after_ns, 50 * kNsPerSecond);
  // The window resets exactly at its epoch-aligned end.
  EXPECT_EQ(l.acquire({&r, 1}, kEnd - 1).what, acquire_result::status::limited);
  EXPECT_EQ(l.acquire({&r, 1}, kEnd).what, acquire_result::status::ok);
  // Nothing for the hub to hear: a lone shard never reports.
  EXPECT_FALSE(l.has_report());
}

TEST(LeaseLimiterTest, UsedUpLeaseWaitsThenGetsTheIdleShardsShare) {
  cluster c(2);
  const limit_request r = req(1, 10);
  // Shard 0 starts with 5 of 10; shard 1 never sees the key.
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(c.acquire(0, r).what, acquire_result::status::ok);
  const acquire_result w = c.acquire(0, r);
  EXPECT_EQ(w.what, acquire_result::status::wait);
  EXPECT_EQ(w.retry_after_ns, kMinute);
  c.report(0);
  c.merge();  // pool empty: the ledger claims shard 1's implicit share
  EXPECT_EQ(c.queued_replies(1), 1u);
  EXPECT_FALSE(c.deliver(1));
  EXPECT_EQ(c.shard(1).budget(r.key, kEnd), 0u);
  c.report(1);  // returns its 5
  c.merge();    // grants them to shard 0
  EXPECT_TRUE(c.deliver(0));
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(c.acquire(0, r).what, acquire_result::status::ok) << i;
  // 10 used: the next call waits once, then the hub says the window is spent.
  EXPECT_EQ(c.acquire(0, r).what, acquire_result::status::limited);  // used == max
  EXPECT_EQ(c.used(r.key), 10u);
  EXPECT_LE(c.ledger().accounted(r.key), 10u);
}

TEST(LeaseLimiterTest, WaitingCallIsClosedWhenEveryOtherShardUsedItsShare) {
  cluster c(2);
  const limit_request r = req(1, 4);
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(c.acquire(0, r).what, acquire_result::status::ok);
    ASSERT_EQ(c.acquire(1, r).what, acquire_result::status::ok);
  }
  c.report(1);
  EXPECT_EQ(c.acquire(0, r).what, acquire_result::status::wait);
  c.report(0);
  c.merge();  // nothing unused anywhere: closed
  EXPECT_TRUE(c.deliver(0));
  const acquire_result a = c.acquire(0, r);
  EXPECT_EQ(a.what, acquire_result::status::limited);
  EXPECT_EQ(a.retry_after_ns, kMinute);
  // A released slot on shard 1 comes back: shard 0 is reopened and gets it, granted ahead
  // of need (it asks for more at its report once reopened) or after one wait.
  c.shard(1).release({&r, 1}, kT0);
  c.settle_all();
  acquire_result::status st = c.acquire(0, r).what;
  if (st == acquire_result::status::wait) {
    c.settle_all();
    st = c.acquire(0, r).what;
  }
  EXPECT_EQ(st, acquire_result::status::ok);
  EXPECT_EQ(c.used(r.key), 4u);
  EXPECT_LE(c.ledger().accounted(r.key), 4u);
}

TEST(LeaseLimiterTest, ReportsGiveBackUnusedLeaseBeyondRecentUse) {
  cluster c(2);
  const limit_request r = req(1, 100);
  ASSERT_EQ(c.acquire(0, r).what, acquire_result::status::ok);  // budget 50, used 1
  c.report(0);
  c.merge();
  EXPECT_TRUE(c.deliver(0));  // the ack
  // Kept: max(kAhead 4 x the recent peak 1, kKeep 1) slots beyond used; the rest is in the
  // pool.
  EXPECT_EQ(c.shard(0).budget(r.key, kEnd), 5u);
  EXPECT_EQ(c.ledger().pool(r.key), 45u);
  EXPECT_EQ(c.ledger().accounted(r.key), 100u);
  // Shard 1 spends its 50, then waits and is granted from the pool without any claim.
  for (int i = 0; i < 50; ++i)
    ASSERT_EQ(c.acquire(1, r).what, acquire_result::status::ok);
  EXPECT_EQ(c.acquire(1, r).what, acquire_result::status::wait);
  c.report(1);
  c.merge();
  EXPECT_EQ(c.queued_replies(0), 0u);  // the pool covered it: shard 0 is left alone
  EXPECT_TRUE(c.deliver(1));
  EXPECT_EQ(c.shard(1).budget(r.key, kEnd), 95u);  // its 50 + the whole pool
  EXPECT_EQ(c.ledger().pool(r.key), 0u);
  EXPECT_EQ(c.acquire(1, r).what, acquire_result::status::ok);
}

TEST(LeaseLimiterTest, ReleaseGivesTheSlotBackToTheShardsBudget) {
  cluster c(2);
  const limit_request r = req(1, 2);
  ASSERT_EQ(c.acquire(0, r).what, acquire_result::status::ok);  // share 1
  EXPECT_EQ(c.acquire(0, r).what, acquire_result::status::wait);
  c.shard(0).release({&r, 1}, kT0);
  EXPECT_EQ(c.shard(0).used(r.key, kEnd), 0u);
  EXPECT_EQ(c.acquire(0, r).what, acquire_result::status::ok);
  // A release from an ended window gives nothing back.
  c.shard(0).release({&r, 1}, kT0 - kMinute);
  EXPECT_EQ(c.shard(0).used(r.key, kEnd), 1u);
}

TEST(LeaseLimiterTest, NewWindowStartsFromTheInitialShareAndSettlesOldDemand) {
  cluster c(2);
  const limit_request r = req(1, 2);
  ASSERT_EQ(c.acquire(0, r, kEnd - 2).what, acquire_result::status::ok);
  EXPECT_EQ(c.acquire(0, r, kEnd - 1).what, acquire_result::status::wait);
  c.report(0);
  // Before the hub merges, shard 1 is already in the next window.
  ASSERT_EQ(c.acquire(1, r, kEnd).what, acquire_result::status::ok);
  c.report(1);
  c.merge();
  // Shard 0's wait in the old window is settled (closed), so its call is decided again.
  EXPECT_TRUE(c.deliver(0));
  EXPECT_EQ(c.shard(0).used(r.key, kEnd), 1u);
  // In the new window shard 0 starts from its share again.
  EXPECT_EQ(c.acquire(0, r, kEnd + 1).what, acquire_result::status::ok);
  EXPECT_EQ(c.shard(0).budget(r.key, kEnd + kMinute), 1u);
  EXPECT_LE(c.ledger().accounted(r.key), 2u);
}

TEST(LeaseLimiterTest, MaxKeysFailsClosedWithFull) {
  lease_limiter l(0, 2, limiter_options{.max_keys = 2});
  const limit_request a = req(1, 10), b = req(2, 10), d = req(3, 10);
  ASSERT_EQ(l.acquire({&a, 1}, kT0).what, acquire_result::status::ok);
  ASSERT_EQ(l.acquire({&b, 1}, kT0).what, acquire_result::status::ok);
  EXPECT_EQ(l.acquire({&d, 1}, kT0).what, acquire_result::status::full);
  EXPECT_EQ(l.live_keys(), 2u);
  // Expired keys make room.
  EXPECT_EQ(l.acquire({&d, 1}, kEnd).what, acquire_result::status::ok);
}

TEST(LeaseLimiterTest, BytesPerKeyAreSmall) {
  EXPECT_LE(lease_limiter::kBytesPerKey, 64u);
}

// Random interleavings of calls, releases, reports, merges and deliveries on 4 shards over
// two keys (fixed seed, so a failure replays). After every step: the budgets the shards hold
// plus the hub's pool never exceed max, nor does the count of admitted calls. At the end,
// with everything delivered, every call that waited has been settled and the hub has
// admitted exactly max when demand exceeded it.
// --cluster: nothing is admitted before the cluster grants the node budget; the ledger shows
// the round trip what it needs (used, held, demand) and hands the grant to the waiting shard.
// Refused by the cluster, the window closes; reopen_closed (after a rejoin) asks again.
TEST(LeaseLimiterTest, StartEmptyAdmitsOnlyWhatTheClusterGrants) {
  cluster c(2, /*start_empty=*/true);
  const limit_request r = req(1, 10);
  EXPECT_EQ(c.acquire(0, r).what, acquire_result::status::wait);
  EXPECT_EQ(c.budgets(r.key), 0u);
  uint32_t grant = 3;
  std::vector<lease_key_view> seen;
  c.between_merges = [&](lease_ledger& l) {
    l.for_each_active([&](const limiter_key& key, lease_key_view& v) {
      EXPECT_EQ(key, r.key);
      seen.push_back(v);
      l.add_pool(key, v.window_end_ns, grant);
    });
  };
  c.report(0);
  c.merge();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].used, 0u);
  EXPECT_EQ(seen[0].held, 0u);
  EXPECT_EQ(seen[0].demand, 1u);
  EXPECT_EQ(seen[0].max, 10u);
  EXPECT_TRUE(c.deliver(0));
  EXPECT_EQ(c.budgets(r.key), 3u);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(c.acquire(0, r).what, acquire_result::status::ok);
  EXPECT_EQ(c.acquire(0, r).what, acquire_result::status::wait);
  // The cluster has nothing more: the ledger closes the window for the waiting shard.
  grant = 0;
  seen.clear();
  c.report(0);
  c.merge();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].used, 3u);
  EXPECT_EQ(seen[0].held, 3u);
  (void)c.deliver(0);
  c.report(0);
  c.merge();
  (void)c.deliver(0);
  EXPECT_EQ(c.acquire(0, r).what, acquire_result::status::limited);
  EXPECT_EQ(c.ledger().accounted(r.key), 3u);
  // After a rejoin the closed window asks again.
  c.between_merges = nullptr;
  std::vector<std::pair<unsigned, lease_reply>> sent;
  c.ledger().reopen_closed([&](unsigned s, const lease_reply& rep) { sent.emplace_back(s, rep); });
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].first, 0u);
  EXPECT_FALSE(sent[0].second.closed);
  EXPECT_EQ(sent[0].second.amount, 0u);
  EXPECT_TRUE(c.shard(0).apply(sent[0].second));
  EXPECT_EQ(c.acquire(0, r).what, acquire_result::status::wait);
}

TEST(LeaseLimiterTest, RandomInterleavingsNeverOverAdmitAndSettleEveryWait) {
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    std::mt19937 rng(seed);
    const unsigned n = 2 + seed % 4;
    cluster c(n);
    const limit_request keys[] = {req(1, 1 + seed % 23), req(2, 50)};
    std::vector<std::vector<int>> waiting(n);  // per shard: key index of each parked call
    std::vector<std::vector<int>> taken(n);    // per shard: key index of each admitted call
    uint64_t admitted[2] = {0, 0};
    auto decide = [&](unsigned s, int k) {
      const acquire_result a = c.acquire(s, keys[k]);
      if (a.what == acquire_result::status::ok) {
        ++admitted[k];
        taken[s].push_back(k);
      } else if (a.what == acquire_result::status::wait) {
        waiting[s].push_back(k);
      }
    };
    auto redecide = [&](unsigned s) {
      std::vector<int> again;
      again.swap(waiting[s]);
      for (int k : again)
        decide(s, k);
    };
    for (int step = 0; step < 3000; ++step) {
      const unsigned s = rng() % n;
      switch (rng() % 6) {
        case 0:
        case 1:
          decide(s, static_cast<int>(rng() % 2));
          break;
        case 2:
          if (!taken[s].empty() && rng() % 4 == 0) {
            const int k = taken[s].back();
            taken[s].pop_back();
            c.shard(s).release({&keys[k], 1}, kT0);
            --admitted[k];
          }
          break;
        case 3:
          c.report(s);
          break;
        case 4:
          c.merge();
          break;
        case 5:
          if (c.deliver(s)) redecide(s);
          break;
      }
      for (int k = 0; k < 2; ++k) {
        ASSERT_LE(c.budgets(keys[k].key) + c.ledger().pool(keys[k].key), keys[k].max)
            << "seed " << seed << " step " << step;
        ASSERT_LE(c.ledger().accounted(keys[k].key), keys[k].max);
        ASSERT_EQ(c.used(keys[k].key), admitted[k]);
        ASSERT_LE(admitted[k], keys[k].max);
      }
    }
    // Drain: keep delivering and deciding until no call waits.
    for (int round = 0; round < 50; ++round) {
      bool any = false;
      for (unsigned s = 0; s < n; ++s) {
        c.report(s);
        any |= !waiting[s].empty();
      }
      c.merge();
      for (unsigned s = 0; s < n; ++s)
        if (c.deliver(s)) redecide(s);
      if (!any) break;
    }
    for (unsigned s = 0; s < n; ++s)
      EXPECT_TRUE(waiting[s].empty()) << "seed " << seed << " shard " << s;
    // Demand exceeded max: exactly max admitted, whatever shard the calls landed on.
    for (int k = 0; k < 2; ++k) {
      int64_t more = 0;
      for (unsigned s = 0; s < n; ++s) {
        for (int i = 0; i < 3; ++i) {
          const acquire_result a = c.acquire(s, keys[k]);
          if (a.what == acquire_result::status::ok) ++admitted[k];
          if (a.what == acquire_result::status::wait) ++more;
        }
      }
      c.settle_all();
      for (unsigned s = 0; s < n; ++s)
        for (int i = 0; i < 3; ++i) {
          const acquire_result a = c.acquire(s, keys[k]);
          if (a.what == acquire_result::status::ok) ++admitted[k];
        }
      for (int round = 0; round < 50 && admitted[k] < keys[k].max; ++round) {
        for (unsigned s = 0; s < n; ++s) {
          const acquire_result a = c.acquire(s, keys[k]);
          if (a.what == acquire_result::status::ok) ++admitted[k];
        }
        c.settle_all();
      }
      EXPECT_EQ(admitted[k], keys[k].max) << "seed " << seed << " key " << k;
      (void)more;
    }
  }
}

}  // namespace
}  // namespace sluice::policy
