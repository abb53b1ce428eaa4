// Rate limits across machines, end to end: a redis-server of the test's own and two
// `sluice serve --cluster` processes (two shards each) sharing it, hammered on /v1/decide from
// several connections each. Together they admit at most max per window, and at least max minus
// the bound docs/policy.md ("Across machines") states. Then Redis is killed mid-run: both
// gateways keep answering, admit no more than the leases they hold (fail-closed) and say so in
// /metrics; Redis restarts on the same port, empty: both rejoin (sluice_cluster_up back to 1),
// rebuild its books from what they hold, and enforce exactly again. Every wait is a poll or a
// readiness line with a deadline.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/integration/redis_server.h"

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kLong{15000};  // generous: a loaded 2-core machine
constexpr std::string_view kToken = "cluster-test-admin-token";

// Hour windows, so that a window boundary falls inside a run only at :59 (then it is redone).
// a: the first phase; b: leased before Redis dies, used while it is away; c: first asked for
// while Redis is away, then used after it is back.
constexpr std::string_view kPolicy = R"({
  "version": "1", "default": "deny",
  "tools": {
    "a": {"limits": [{"counter": "ca", "window": "hour", "max": 40}]},
    "b": {"limits": [{"counter": "cb", "window": "hour", "max": 40}]},
    "c": {"limits": [{"counter": "cc", "window": "hour", "max": 30}]}
  }
})";

// The lower bound of docs/policy.md when every node's callers go on until that node refuses:
// each node may lose what its shards keep for themselves at a report (lease_limiter::kKeep
// per shard) when the lease comes back to Redis after the other node last asked.
constexpr int kNodes = 2, kShards = 2, kKeepPerShard = 1;
constexpr int kSlack = (kNodes - 1) * kShards * kKeepPerShard;

std::string call(int id, std::string_view tool) {
  return R"({"jsonrpc":"2.0","id":)" + std::to_string(id) +
         R"(,"method":"tools/call","params":{"name":")" + std::string(tool) +
         R"(","arguments":{}}})";
}

int64_t wall_hour() {
  return std::chrono::duration_cast<std::chrono::hours>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The value of an unlabelled metric line ("name value"); -1 when absent.
int64_t metric(const std::string& text, std::string_view name) {
  size_t at = 0;
  while ((at = text.find(name, at)) != std::string::npos) {
    const bool line_start = at == 0 || text[at - 1] == '\n';
    const size_t after = at + name.size();
    if (line_start && after < text.size() && text[after] == ' ')
      return std::atoll(text.c_str() + after + 1);
    at = after;
  }
  return -1;
}

struct gateway {
  std::unique_ptr<process> proc;
  uint16_t port = 0;
  uint16_t admin_port = 0;

  std::string metrics() const {
    http_client c(admin_port, kLong);
    auto r = c.request("GET", "/metrics", {}, {{"Authorization", "Bearer " + std::string(kToken)}},
                       kLong);
    return r && r->status == 200 ? r->body : std::string();
  }
  // Repeats GET /metrics until sluice_cluster_up is `up`.
  bool wait_cluster_up(int64_t up) const {
    const auto deadline = steady::now() + kLong;
    while (steady::now() < deadline) {
      if (metric(metrics(), "sluice_cluster_up") == up) return true;
    }
    return false;
  }
};

// The counts of one run; a run that straddles an hour boundary is redone.
struct counts {
  int a = 0, b_before = 0, b_down = 0, b_after = 0, c = 0;
};

class cluster : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.start()) << "redis-server is needed (tools/install-deps.sh installs it): "
                                << redis_.error();
  }
  void TearDown() override {
    for (gateway& g : nodes_)
      if (g.proc && g.proc->running()) (void)g.proc->terminate(kLong);
  }

  void start_node(const std::string& policy, const std::string& token_file,
                  const std::vector<std::string>& extra = {}) {
    const std::string bin = binary_path("SLUICE_BIN");
    ASSERT_FALSE(bin.empty()) << "SLUICE_BIN is not set (run through meson test)";
    process::options o;
    o.capture_stderr = true;
    gateway g;
    std::vector<std::string> args = {"serve",
                                     "--policy",
                                     policy,
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--shards",
                                     std::to_string(kShards),
                                     "--cluster",
                                     redis_.url(),
                                     "--admin",
                                     "127.0.0.1:0",
                                     "--admin-token-file",
                                     token_file};
    args.insert(args.end(), extra.begin(), extra.end());
    g.proc = process::spawn(bin, args, o);
    ASSERT_TRUE(g.proc);
    ASSERT_TRUE(g.proc->wait_for_stdout(")\n", kLong)) << g.proc->stderr_text();
    const std::string out = g.proc->stdout_text();
    g.port = port_after(out, " listening on ");
    g.admin_port = port_after(out, "sluice admin on ");
    ASSERT_NE(g.port, 0) << out;
    ASSERT_NE(g.admin_port, 0) << out;
    ASSERT_TRUE(g.wait_cluster_up(1)) << g.proc->stderr_text();
    nodes_.push_back(std::move(g));
  }

  // `conns` connections per node, all at once; each calls `tool` until it has been refused
  // `refusals` times (or made `cap` calls). Returns the calls allowed; every answer must be a
  // 200 or a 429.
  int hammer(std::string_view tool, int conns, int refusals = 3, int cap = 400) {
    std::atomic<int> allowed{0}, other{0};
    std::vector<std::thread> pool;
    for (const gateway& g : nodes_) {
      for (int c = 0; c < conns; ++c) {
        pool.emplace_back([&, port = g.port, c] {
          http_client conn(port, kLong);
          int refused = 0;
          for (int i = 0; i < cap && refused < refusals; ++i) {
            auto r = conn.request("POST", "/v1/decide", call(c * cap + i, tool),
                                  {{"Content-Type", "application/json"}}, kLong);
            if (r && r->status == 200) {
              ++allowed;
            } else if (r && r->status == 429) {
              ++refused;
            } else {
              ++other;
              return;
            }
          }
        });
      }
    }
    for (std::thread& t : pool)
      t.join();
    EXPECT_EQ(other.load(), 0) << "an answer was neither 200 nor 429";
    return allowed.load();
  }

  // `calls` calls of `tool` on one connection to node i; returns how many were allowed.
  int calls_on(size_t i, std::string_view tool, int calls) {
    http_client conn(nodes_[i].port, kLong);
    int allowed = 0;
    for (int k = 0; k < calls; ++k) {
      auto r = conn.request("POST", "/v1/decide", call(k, tool),
                            {{"Content-Type", "application/json"}}, kLong);
      EXPECT_TRUE(r && (r->status == 200 || r->status == 429));
      if (r && r->status == 200) ++allowed;
    }
    return allowed;
  }

  void stop_nodes(std::string_view mode = "(fail-closed)") {
    for (gateway& g : nodes_) {
      EXPECT_TRUE(g.proc->running());
      const auto code = g.proc->terminate(kLong);
      EXPECT_TRUE(code && *code == 0) << g.proc->stderr_text();
      (void)g.proc->wait_output_closed(kLong);
      const std::string err = g.proc->stderr_text();
      EXPECT_NE(err.find(mode), std::string::npos) << err;
    }
    nodes_.clear();
  }

  void run(const std::string& policy, const std::string& token, counts& n);

  redis_server redis_;
  std::vector<gateway> nodes_;
};

void cluster::run(const std::string& policy, const std::string& token, counts& n) {
  if (redis_.port() == 0 || !redis_ping(redis_.port(), kLong)) {
    ASSERT_TRUE(redis_.start()) << redis_.error();
  }
  ASSERT_NO_FATAL_FAILURE(start_node(policy, token));
  ASSERT_NO_FATAL_FAILURE(start_node(policy, token));

  // 1. Both nodes, four connections each, until each connection is refused.
  n.a = hammer("a", 4);

  // 2. Lease some of b on both nodes, then kill Redis.
  n.b_before = calls_on(0, "b", 5) + calls_on(1, "b", 5);
  redis_.kill();
  const uint16_t redis_port = redis_.port();
  // Each node notices at its next round trip (the heartbeat, at the latest) and says so.
  for (const gateway& g : nodes_) {
    ASSERT_TRUE(g.proc->wait_for_stderr("unreachable", kLong)) << g.proc->stderr_text();
    ASSERT_TRUE(g.wait_cluster_up(0));
  }
  // Fail-closed: b is used only from the leases the nodes hold; c, never leased, not at all.
  n.b_down = hammer("b", 2);
  EXPECT_EQ(hammer("c", 2), 0);
  for (const gateway& g : nodes_) {
    EXPECT_TRUE(g.proc->running());
    const std::string m = g.metrics();
    EXPECT_EQ(metric(m, "sluice_cluster_up"), 0);
    EXPECT_NE(m.find("sluice_cluster_round_trips_total{outcome=\"failed\"}"), std::string::npos);
  }

  // 3. Redis comes back on the same port, empty. Both nodes rejoin by themselves and report
  //    what they hold, so the books count b's earlier use again.
  ASSERT_TRUE(redis_.start(redis_port)) << redis_.error();
  for (const gateway& g : nodes_)
    ASSERT_TRUE(g.wait_cluster_up(1)) << g.proc->stderr_text();
  n.c = hammer("c", 4);
  n.b_after = hammer("b", 2);
  stop_nodes();
  // A redo starts from an empty Redis.
  redis_.kill();
}

TEST_F(cluster, TwoGatewaysShareOneCountAndSurviveARedisRestart) {
  temp_file policy(kPolicy);
  temp_file token(std::string(kToken) + "\n");
  for (int attempt = 0; attempt < 2; ++attempt) {
    counts n;
    const int64_t hour = wall_hour();
    ASSERT_NO_FATAL_FAILURE(run(policy.path(), token.path(), n));
    if (wall_hour() != hour) continue;
    std::printf("admitted: a %d/40, b %d+%d+%d/40, c %d/30\n", n.a, n.b_before, n.b_down, n.b_after,
                n.c);
    // 1. Both nodes, four connections each, until each connection is refused.
    EXPECT_LE(n.a, 40);
    EXPECT_GE(n.a, 40 - kSlack);
    // 2. Ten calls before Redis dies; fail-closed afterwards: only from the leases held.
    EXPECT_EQ(n.b_before, 10);
    EXPECT_LE(n.b_before + n.b_down, 40);
    // 3. After the rejoin: exact again, b's earlier use counted.
    EXPECT_LE(n.c, 30);
    EXPECT_GE(n.c, 30 - kSlack);
    EXPECT_LE(n.b_before + n.b_down + n.b_after, 40);
    EXPECT_GE(n.b_before + n.b_down + n.b_after, 40 - kSlack);
    return;
  }
  FAIL() << "two runs in a row straddled an hour boundary";
}

// --cluster-fail-open: with Redis gone each node enforces max on its own, so two nodes admit
// more than max together (at most nodes x max), and each one no more than max.
TEST_F(cluster, FailOpenEnforcesTheLocalMaxAlone) {
  temp_file policy(kPolicy);
  temp_file token(std::string(kToken) + "\n");
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (redis_.port() == 0 || !redis_ping(redis_.port(), kLong)) {
      ASSERT_TRUE(redis_.start()) << redis_.error();
    }
    ASSERT_NO_FATAL_FAILURE(start_node(policy.path(), token.path(), {"--cluster-fail-open"}));
    ASSERT_NO_FATAL_FAILURE(start_node(policy.path(), token.path(), {"--cluster-fail-open"}));
    const int64_t hour = wall_hour();
    redis_.kill();
    for (const gateway& g : nodes_) {
      ASSERT_TRUE(g.proc->wait_for_stderr("(fail-open)", kLong)) << g.proc->stderr_text();
      ASSERT_TRUE(g.wait_cluster_up(0));
    }
    const int c0 = calls_on(0, "c", 40);
    const int c1 = calls_on(1, "c", 40);
    stop_nodes("(fail-open)");
    if (wall_hour() != hour) continue;
    EXPECT_EQ(c0, 30);
    EXPECT_EQ(c1, 30);
    return;
  }
  FAIL() << "two runs in a row straddled an hour boundary";
}

}  // namespace
}  // namespace sluice::testing
