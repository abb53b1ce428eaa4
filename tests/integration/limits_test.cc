// Rate limits across shards, end to end: `sluice serve --shards 2` as a real process, many
// connections (the kernel spreads them over both shards' SO_REUSEPORT listeners) hammering one
// counter of each scope. Exactly `max` per window when demand exceeds it, every call when it
// does not; windows reset exactly at their epoch-aligned boundary (`sluice eval` with `at`,
// and the live gateway with a 1-second window). Every wait is a poll with a deadline.

#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;
constexpr std::chrono::milliseconds kLong{10000};  // generous: a loaded 2-core machine

std::string call(int id, std::string_view tool, std::string_view args) {
  return R"({"jsonrpc":"2.0","id":)" + std::to_string(id) +
         R"(,"method":"tools/call","params":{"name":")" + std::string(tool) + R"(","arguments":)" +
         std::string(args) + "}}";
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The PolicyLayer example and one counter of each scope; hour windows (a run that straddles an
// hour boundary is redone).
constexpr std::string_view kScopesPolicy = R"({
  "version": "1", "default": "deny",
  "tools": {
    "policy_generation_start": {"limits": [{"counter": "policy_generation_start_rate", "window": "minute", "max": 10, "scope": "grant"}]},
    "g": {"limits": [{"counter": "g", "window": "hour", "max": 7}]},
    "gr": {"limits": [{"counter": "gr", "window": "hour", "max": 8, "scope": "grant"}]},
    "se": {"limits": [{"counter": "se", "window": "hour", "max": 9, "scope": "session"}]},
    "ar": {"limits": [{"counter": "ar", "window": "hour", "max": 6, "scope": "arg:args.k"}]},
    "roomy": {"limits": [{"counter": "roomy", "window": "hour", "max": 1000}]}
  }
})";

class limits : public ::testing::Test {
 protected:
  void TearDown() override {
    if (sluice_ && sluice_->running()) (void)sluice_->terminate(kLong);
    if (upstream_ && upstream_->running()) (void)upstream_->terminate(kLong);
  }

  void start_upstream() {
    const std::string bin = binary_path("EXAMPLE_SERVER_BIN");
    ASSERT_FALSE(bin.empty()) << "EXAMPLE_SERVER_BIN is not set (run through meson test)";
    upstream_ = process::spawn(bin, {"--listen", "127.0.0.1:0"});
    ASSERT_TRUE(upstream_);
    ASSERT_TRUE(upstream_->wait_ready(kLong)) << upstream_->stdout_text();
  }

  void start_sluice(const std::string& policy, std::vector<std::string> extra = {}) {
    if (sluice_ && sluice_->running()) {
      ASSERT_TRUE(stop_sluice());
    }
    const std::string bin = binary_path("SLUICE_BIN");
    ASSERT_FALSE(bin.empty()) << "SLUICE_BIN is not set (run through meson test)";
    std::vector<std::string> args = {"serve",       "--policy", policy, "--listen",
                                     "127.0.0.1:0", "--shards", "2"};
    if (upstream_) {
      args.push_back("--upstream");
      args.push_back("http://127.0.0.1:" + std::to_string(upstream_->port()) + "/mcp");
    }
    args.insert(args.end(), extra.begin(), extra.end());
    process::options o;
    o.capture_stderr = true;
    sluice_ = process::spawn(bin, args, o);
    ASSERT_TRUE(sluice_);
    ASSERT_TRUE(wait_sluice_ready(*sluice_, port_, kLong)) << sluice_->stderr_text();
  }

  // SIGTERM; true when it exits 0. Its last stderr line counts reports per shard.
  bool stop_sluice() {
    if (!sluice_ || !sluice_->running()) return true;
    const auto code = sluice_->terminate(kLong);
    (void)sluice_->wait_output_closed(kLong);
    return code && *code == 0;
  }

  // After stop_sluice(): whether every shard reported rate-limit work to the hub.
  bool both_shards_counted() const {
    const std::string err = sluice_->stderr_text();
    const size_t at = err.find("reports per shard ");
    if (at == std::string::npos) return false;
    const char* p = err.c_str() + at + 18;
    char* end = nullptr;
    const long a = std::strtol(p, &end, 10);
    if (*end != ',') return false;
    const long b = std::strtol(end + 1, nullptr, 10);
    return a > 0 && b > 0;
  }

  // `calls` calls of one body over `conns` connections from `threads` threads, on `path`.
  // Returns how many were allowed; every answer must be an allow or a rate_limited.
  int hammer(std::string_view path, int threads, int conns_per_thread, int calls_per_conn,
             const std::function<std::string(int)>& body, const header_list& extra = {}) {
    std::atomic<int> allowed{0}, limited{0}, other{0};
    std::mutex mu;
    std::string first_other;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        std::vector<http_client> conns;
        for (int c = 0; c < conns_per_thread; ++c)
          conns.emplace_back(port_, kLong);
        for (int i = 0; i < calls_per_conn; ++i) {
          for (int c = 0; c < conns_per_thread; ++c) {
            const int id = (t * conns_per_thread + c) * calls_per_conn + i;
            header_list h = {{"Content-Type", "application/json"},
                             {"Accept", "application/json, text/event-stream"}};
            h.insert(h.end(), extra.begin(), extra.end());
            auto r = conns[c].request("POST", path, body(id), h, kLong);
            const bool decide = path == "/v1/decide";
            const bool ok =
                r && (decide ? r->status == 200 : r->body.find("\"ran ") != std::string::npos);
            const bool lim = r && r->body.find("rate_limited") != std::string::npos &&
                             (!decide || r->status == 429);
            if (ok) {
              ++allowed;
            } else if (lim) {
              ++limited;
            } else {
              ++other;
              std::lock_guard lock(mu);
              if (first_other.empty()) first_other = r ? r->body : "<no answer>";
            }
          }
        }
      });
    }
    for (std::thread& th : pool)
      th.join();
    EXPECT_EQ(other.load(), 0) << first_other;
    EXPECT_EQ(allowed + limited + other, threads * conns_per_thread * calls_per_conn);
    return allowed.load();
  }

  std::unique_ptr<process> upstream_;
  std::unique_ptr<process> sluice_;
  uint16_t port_ = 0;
};

// The PolicyLayer example verbatim through the gateway (/mcp, the example server behind):
// 10 a minute per grant, whatever shard the 48 calls land on.
TEST_F(limits, PolicyLayerExampleAdmitsExactlyTenOverTwoShards) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  for (int attempt = 0; attempt < 3; ++attempt) {
    ASSERT_NO_FATAL_FAILURE(start_sluice(policy_path("policylayer.json")));
    const int64_t minute = wall_ms() / 60000;
    const int allowed = hammer("/mcp", 4, 4, 3, [](int id) {
      return call(id, "policy_generation_start", R"({"job_name":"j"})");
    });
    if (wall_ms() / 60000 != minute) continue;  // straddled a minute boundary: redo
    EXPECT_EQ(allowed, 10);
    ASSERT_TRUE(stop_sluice());
    EXPECT_TRUE(both_shards_counted()) << sluice_->stderr_text();
    return;
  }
  FAIL() << "three runs in a row straddled a minute boundary";
}

// One counter of each scope through the decision service: exactly max of each when 48 calls
// compete, and all 40 calls of a counter whose max is not reached.
TEST_F(limits, EveryScopeAdmitsExactlyMaxOverTwoShards) {
  temp_file policy(kScopesPolicy);
  for (int attempt = 0; attempt < 3; ++attempt) {
    ASSERT_NO_FATAL_FAILURE(start_sluice(policy.path()));
    const int64_t hour = wall_ms() / 3'600'000;
    const header_list session = {{"Mcp-Session-Id", "s-1"}};
    const int g = hammer("/v1/decide", 4, 4, 3, [](int id) { return call(id, "g", "{}"); });
    const int gr = hammer("/v1/decide", 4, 4, 3, [](int id) { return call(id, "gr", "{}"); });
    const int se = hammer(
        "/v1/decide", 4, 4, 3, [](int id) { return call(id, "se", "{}"); }, session);
    // arg scope: two values, each with its own count of 6.
    const int ar = hammer("/v1/decide", 4, 4, 3, [](int id) {
      return call(id, "ar", id % 2 == 0 ? R"({"k":"even"})" : R"({"k":"odd"})");
    });
    const int roomy = hammer("/v1/decide", 4, 2, 5, [](int id) { return call(id, "roomy", "{}"); });
    if (wall_ms() / 3'600'000 != hour) continue;
    EXPECT_EQ(g, 7);
    EXPECT_EQ(gr, 8);
    EXPECT_EQ(se, 9);
    EXPECT_EQ(ar, 12);
    EXPECT_EQ(roomy, 40);
    // Another session has a count of its own.
    EXPECT_EQ(hammer("/v1/decide", 2, 2, 3, [](int id) { return call(id, "se", "{}"); },
                     {{"Mcp-Session-Id", "s-2"}}),
              9);
    ASSERT_TRUE(stop_sluice());
    EXPECT_TRUE(both_shards_counted()) << sluice_->stderr_text();
    return;
  }
  FAIL() << "three runs in a row straddled an hour boundary";
}

// `sluice eval` with `at`: a minute window resets exactly at :00, not 60 s after the first call.
TEST_F(limits, EvalWindowsResetExactlyAtTheBoundary) {
  temp_file policy(R"({"version":"1","default":"deny","tools":{"t":{"limits":[)"
                   R"({"counter":"c","window":"minute","max":2}]}}})");
  std::string lines;
  auto at = [&](std::string_view when) {
    lines += R"({"at":")" + std::string(when) + R"(","message":)" + call(1, "t", "{}") + "}\n";
  };
  at("2026-11-25T10:00:59Z");
  at("2026-11-25T10:00:59.5Z");
  at("2026-11-25T10:00:59.999Z");  // third in the minute: limited, 1 ms to wait
  at("2026-11-25T10:01:00Z");      // new window
  at("2026-11-25T10:01:30Z");
  at("2026-11-25T10:01:59.999Z");
  temp_file input(lines);
  const run_result r =
      run(binary_path("SLUICE_BIN"), {"eval", "--policy", policy.path(), input.path()}, kLong);
  ASSERT_EQ(r.exit, 0) << r.err;
  std::vector<std::string> got;
  size_t pos = 0;
  while (pos < r.out.size()) {
    const size_t nl = r.out.find('\n', pos);
    const std::string line = r.out.substr(pos, nl - pos);
    const size_t d = line.find("\"decision\":\"");
    got.push_back(d == std::string::npos ? line
                                         : line.substr(d + 12, line.find('"', d + 12) - d - 12));
    pos = nl == std::string::npos ? r.out.size() : nl + 1;
  }
  EXPECT_EQ(got, (std::vector<std::string>{"allow", "allow", "rate_limited", "allow", "allow",
                                           "rate_limited"}))
      << r.out;
}

// The live gateway with a 1-second window, 2 shards and 8 connections calling without pause
// for three whole windows. Per window: a call certainly decided in it (sent and answered inside
// it) counts toward at most max; certainly-inside plus calls straddling its edges reach at
// least max (demand exceeds max all the time, so each window admits exactly max).
TEST_F(limits, LiveGatewayWindowsResetEachSecond) {
  temp_file policy(R"({"version":"1","default":"deny","tools":{"t":{"limits":[)"
                   R"({"counter":"c","window":"second","max":5}]}}})");
  ASSERT_NO_FATAL_FAILURE(start_sluice(policy.path()));
  struct sample {
    int64_t sent_ms, done_ms;
  };
  std::mutex mu;
  std::vector<sample> admitted;
  const int64_t start_second = wall_ms() / 1000 + 1;
  const int64_t end_second = start_second + 3;  // windows start_second .. start_second + 2
  std::atomic<int> failures{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < 4; ++t) {
    pool.emplace_back([&] {
      http_client conns[2] = {http_client(port_, kLong), http_client(port_, kLong)};
      const header_list h = {{"Content-Type", "application/json"}};
      for (int i = 0; wall_ms() / 1000 < end_second; ++i) {
        const int64_t sent = wall_ms();
        auto r = conns[i % 2].request("POST", "/v1/decide", call(i, "t", "{}"), h, kLong);
        const int64_t done = wall_ms();
        if (!r || (r->status != 200 && r->status != 429)) {
          ++failures;
          return;
        }
        if (r->status == 200) {
          std::lock_guard lock(mu);
          admitted.push_back({sent, done});
        }
      }
    });
  }
  for (std::thread& th : pool)
    th.join();
  ASSERT_EQ(failures.load(), 0);
  for (int64_t s = start_second; s < end_second; ++s) {
    int certain = 0, edge = 0;
    for (const sample& a : admitted) {
      const bool starts_in = a.sent_ms / 1000 == s, ends_in = a.done_ms / 1000 == s;
      if (starts_in && ends_in) {
        ++certain;
      } else if (starts_in || ends_in) {
        ++edge;
      }
    }
    EXPECT_LE(certain, 5) << "second " << s;
    EXPECT_GE(certain + edge, 5) << "second " << s;
  }
  ASSERT_TRUE(stop_sluice());
  EXPECT_TRUE(both_shards_counted()) << sluice_->stderr_text();
}

}  // namespace
}  // namespace sluice::testing
