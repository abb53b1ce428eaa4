// The cluster's Lua accounting (net/cluster_redis.cc) against a real redis-server: what a node
// is granted, what comes back from a dead node, key expiry, and a Redis that goes away and
// returns. No mock of Redis: tests/integration/redis_server.h starts one per test.

#include "net/cluster_redis.h"
#include "engine/clock.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <time.h>

#include <memory>
#include <string>
#include <vector>

#include "net/control/metrics.h"
#include "tests/integration/redis_server.h"

namespace sluice::net {
namespace {

using sluice::testing::redis_server;

int64_t wall_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

constexpr int64_t kHourNs = 3'600'000'000'000;

class cluster_redis_test : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.start()) << "redis-server (tools/install-deps.sh installs it): "
                                << redis_.error();
    window_end_ = (wall_ns() / kHourNs + 1) * kHourNs;
  }

  std::unique_ptr<cluster_redis> node(uint64_t id,
                                      std::shared_ptr<control::cluster_metrics> m = nullptr) {
    cluster_options o;
    o.host = "127.0.0.1";
    o.port = redis_.port();
    o.node_id = id;
    o.backoff_min = std::chrono::milliseconds(0);  // reconnect at the next call
    return std::make_unique<cluster_redis>(o, std::move(m));
  }

  cluster_item item(uint32_t max, uint32_t used, uint32_t held, uint32_t want) const {
    cluster_item it;
    it.key = key_;
    it.window_end_ns = window_end_;
    it.max = max;
    it.used = used;
    it.held = held;
    it.want = want;
    return it;
  }

  // One call on a side connection; the reply as a string (integers in decimal).
  std::string raw(const std::vector<std::string>& args) {
    redisContext* c = redisConnect("127.0.0.1", redis_.port());
    if (c == nullptr || c->err != 0) return "<no connection>";
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
    std::string out;
    if (r == nullptr) {
      out = "<no reply>";
    } else if (r->type == REDIS_REPLY_INTEGER) {
      out = std::to_string(r->integer);
    } else if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
               r->type == REDIS_REPLY_ERROR) {
      out.assign(r->str, r->len);
    } else if (r->type == REDIS_REPLY_NIL) {
      out = "<nil>";
    }
    if (r != nullptr) freeReplyObject(r);
    redisFree(c);
    return out;
  }

  std::string field(const std::string& f) {
    return raw({"HGET", cluster_redis::redis_key(key_, window_end_), f});
  }

  redis_server redis_;
  policy::limiter_key key_{0x1234, 0x5678};
  int64_t window_end_ = 0;
};

TEST_F(cluster_redis_test, GrantsNeverSumToMoreThanMax) {
  auto a = node(0xa), b = node(0xb);
  std::vector<cluster_item> ia = {item(10, 0, 0, 6)};
  ASSERT_TRUE(a->sync(ia, engine::steady_ns()));
  EXPECT_EQ(ia[0].granted, 6u);
  EXPECT_TRUE(a->up());
  // b wants 8 but only 4 are left.
  std::vector<cluster_item> ib = {item(10, 0, 0, 8)};
  ASSERT_TRUE(b->sync(ib, engine::steady_ns()));
  EXPECT_EQ(ib[0].granted, 4u);
  // a used 6 and asks for more: nothing is free.
  ia = {item(10, 6, 6, 9)};
  ASSERT_TRUE(a->sync(ia, engine::steady_ns()));
  EXPECT_EQ(ia[0].granted, 6u);
  EXPECT_EQ(ia[0].cluster_used, 6u);
  // b used 3 of its 4 and gives the last one back (held 3); a gets it.
  ib = {item(10, 3, 3, 3)};
  ASSERT_TRUE(b->sync(ib, engine::steady_ns()));
  EXPECT_EQ(ib[0].granted, 3u);
  EXPECT_EQ(ib[0].cluster_used, 9u);
  ia = {item(10, 6, 6, 9)};
  ASSERT_TRUE(a->sync(ia, engine::steady_ns()));
  EXPECT_EQ(ia[0].granted, 7u);
  EXPECT_EQ(field("u:000000000000000a"), "6");
  EXPECT_EQ(field("l:000000000000000a"), "1");
  EXPECT_EQ(field("u:000000000000000b"), "3");
  EXPECT_EQ(field("l:000000000000000b"), "0");
}

TEST_F(cluster_redis_test, ManyKeysInOneRoundTrip) {
  std::vector<cluster_item> items;
  const uint64_t keys = cluster_redis::kChunk * 2 + 88;  // three pipelined calls
  for (uint64_t k = 0; k < keys; ++k) {
    cluster_item it = item(5, 0, 0, 3);
    it.key = {k, k + 1};
    items.push_back(it);
  }
  auto m = std::make_shared<control::cluster_metrics>();
  auto counted = node(0xc, m);
  ASSERT_TRUE(counted->sync(items, engine::steady_ns()));
  for (const cluster_item& it : items)
    EXPECT_EQ(it.granted, 3u);
  EXPECT_EQ(m->round_trips.load(), 1u);
  EXPECT_EQ(m->keys_synced.load(), keys);
  EXPECT_EQ(m->up.load(), 1u);
}

// Redis forgot the script (SCRIPT FLUSH, a failover): the round trip is sent again with the
// body, still counted as one that worked.
TEST_F(cluster_redis_test, NoscriptSendsTheBody) {
  auto a = node(0xa);
  std::vector<cluster_item> ia = {item(10, 0, 0, 2)};
  ASSERT_TRUE(a->sync(ia, engine::steady_ns()));
  EXPECT_EQ(raw({"SCRIPT", "FLUSH"}), "OK");
  ia = {item(10, 2, 2, 5)};
  ASSERT_TRUE(a->sync(ia, engine::steady_ns()));
  EXPECT_EQ(ia[0].granted, 5u);
  EXPECT_TRUE(a->up());
}

TEST_F(cluster_redis_test, DeadNodesUnusedLeaseReturnsButItsUsedStays) {
  auto a = node(0xa), b = node(0xb);
  std::vector<cluster_item> ia = {item(10, 2, 0, 8)};
  ASSERT_TRUE(a->sync(ia, engine::steady_ns()));
  EXPECT_EQ(ia[0].granted, 8u);  // used 2 + 6 unused
  std::vector<cluster_item> ib = {item(10, 0, 0, 10)};
  ASSERT_TRUE(b->sync(ib, engine::steady_ns()));
  EXPECT_EQ(ib[0].granted, 2u);
  // a's liveness key expires (lease_ttl after its last round trip): its 6 unused return,
  // its 2 used do not.
  EXPECT_EQ(raw({"DEL", "sluice:n:000000000000000a"}), "1");
  ib = {item(10, 2, 2, 10)};
  ASSERT_TRUE(b->sync(ib, engine::steady_ns()));
  EXPECT_EQ(ib[0].granted, 8u);
  EXPECT_EQ(ib[0].cluster_used, 4u);
  EXPECT_EQ(field("l:000000000000000a"), "<nil>");
  EXPECT_EQ(field("u:000000000000000a"), "2");
}

TEST_F(cluster_redis_test, KeysExpireAfterTheirWindow) {
  auto a = node(0xa);
  std::vector<cluster_item> ia = {item(10, 0, 0, 1)};
  ASSERT_TRUE(a->sync(ia, engine::steady_ns()));
  const std::string key = cluster_redis::redis_key(key_, window_end_);
  const int64_t expires_at_ms = std::stoll(raw({"PEXPIRETIME", key}));
  EXPECT_EQ(expires_at_ms, window_end_ / 1'000'000 + a->options().expiry_slack.count());
  const int64_t node_ttl = std::stoll(raw({"PTTL", "sluice:n:000000000000000a"}));
  EXPECT_GT(node_ttl, 0);
  EXPECT_LE(node_ttl, a->options().lease_ttl.count());
}

// Redis lost its data while a node held lease: the node re-reports (want = held), the books
// show it, and a node over the limit (used beyond what is left) gets nothing and no count goes
// negative.
TEST_F(cluster_redis_test, OverTheLimitGrantsNothingAndNothingGoesNegative) {
  auto a = node(0xa), b = node(0xb);
  std::vector<cluster_item> ia = {item(10, 7, 7, 7)};
  ASSERT_TRUE(a->sync(ia, engine::steady_ns()));
  std::vector<cluster_item> ib = {item(10, 6, 6, 9)};  // 13 used in all: over max
  ASSERT_TRUE(b->sync(ib, engine::steady_ns()));
  EXPECT_EQ(ib[0].granted, 6u);
  EXPECT_EQ(ib[0].cluster_used, 13u);
  // held below used is read as held = used.
  ib = {item(10, 8, 2, 9)};
  ASSERT_TRUE(b->sync(ib, engine::steady_ns()));
  EXPECT_EQ(ib[0].granted, 8u);
  EXPECT_EQ(field("l:000000000000000b"), "0");
}

TEST_F(cluster_redis_test, UnreachableThenBack) {
  auto m = std::make_shared<control::cluster_metrics>();
  auto a = node(0xa, m);
  std::vector<cluster_item> ia = {item(10, 0, 0, 4)};
  ASSERT_TRUE(a->sync(ia, engine::steady_ns()));
  const uint16_t port = redis_.port();
  redis_.kill();
  ia = {item(10, 1, 4, 4)};
  EXPECT_FALSE(a->sync(ia, engine::steady_ns()));
  EXPECT_FALSE(a->up());
  EXPECT_EQ(ia[0].granted, 0u);  // untouched: the caller keeps what it holds
  EXPECT_EQ(m->up.load(), 0u);
  EXPECT_GE(m->failed_round_trips.load(), 1u);
  EXPECT_FALSE(a->sync(ia, engine::steady_ns()));  // still down: connection refused
  ASSERT_TRUE(redis_.start(port)) << redis_.error();
  ia = {item(10, 1, 4, 4)};
  ASSERT_TRUE(a->sync(ia, engine::steady_ns()));  // backoff_min 0: reconnects at once
  EXPECT_TRUE(a->up());
  EXPECT_EQ(m->up.load(), 1u);
  EXPECT_EQ(ia[0].granted, 4u);
  EXPECT_EQ(field("u:000000000000000a"), "1");
  EXPECT_EQ(field("l:000000000000000a"), "3");
}

TEST(cluster_url, Parses) {
  cluster_options o;
  std::string error;
  ASSERT_TRUE(parse_redis_url("redis://10.0.0.1:7000", o, error)) << error;
  EXPECT_EQ(o.host, "10.0.0.1");
  EXPECT_EQ(o.port, 7000);
  ASSERT_TRUE(parse_redis_url("redis://cache.internal", o, error)) << error;
  EXPECT_EQ(o.host, "cache.internal");
  EXPECT_EQ(o.port, 6379);
  ASSERT_TRUE(parse_redis_url("redis://[::1]:6380", o, error)) << error;
  EXPECT_EQ(o.host, "::1");
  EXPECT_EQ(o.port, 6380);
  EXPECT_FALSE(parse_redis_url("http://x:1", o, error));
  EXPECT_FALSE(parse_redis_url("redis://x:0", o, error));
  EXPECT_FALSE(parse_redis_url("redis://x:99999", o, error));
  EXPECT_FALSE(parse_redis_url("redis://user@x:1", o, error));
  EXPECT_FALSE(parse_redis_url("redis://:1", o, error));
}

}  // namespace
}  // namespace sluice::net
