// `sluice bench` end to end: against sluice-example-server and against `sluice serve` (gateway
// and decision service), real processes on 127.0.0.1 with port 0.

#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace sluice::testing {
namespace {

constexpr std::chrono::milliseconds kRun{60'000};

std::string write_temp(const std::string& name, const std::string& text) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("sluice-bench-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / name;
  std::ofstream(path) << text;
  return path.string();
}

struct report {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  bool ok = false;
  explicit report(const std::string& text) {
    ok = parser.parse(text).get(root) == simdjson::SUCCESS;
  }
  uint64_t num(std::string_view ptr) {
    uint64_t v = 0;
    if (root.at_pointer(ptr).get_uint64().get(v) != simdjson::SUCCESS) return ~0ull;
    return v;
  }
  double real(std::string_view ptr) {
    double v = -1;
    if (root.at_pointer(ptr).get_double().get(v) != simdjson::SUCCESS) return -1;
    return v;
  }
  uint64_t decisions_sum() {
    uint64_t n = 0;
    simdjson::dom::object o;
    if (root["decisions"].get_object().get(o) != simdjson::SUCCESS) return ~0ull;
    for (auto f : o)
      n += f.value.get_uint64().value_unsafe();
    return n;
  }
};

std::unique_ptr<process> start_example() {
  auto p = process::spawn(binary_path("EXAMPLE_SERVER_BIN"), {"--listen", "127.0.0.1:0"});
  if (p && !p->wait_ready()) return nullptr;
  return p;
}

run_result bench(uint16_t port, const std::string& path, std::vector<std::string> extra) {
  std::vector<std::string> args = {"bench", "--json", "-c", "4", "-t", "2"};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back("http://127.0.0.1:" + std::to_string(port) + path);
  return run(binary_path("SLUICE_BIN"), args, kRun);
}

TEST(bench, ClosedLoopAgainstTheExampleServerCountsEveryAnswer) {
  auto server = start_example();
  ASSERT_TRUE(server);
  const std::string plot = write_temp("plot.svg", "");
  auto r = bench(server->port(), "/mcp",
                 {"-n", "300", "-p", "2", "--pid", std::to_string(server->pid()), "--plot", plot});
  ASSERT_EQ(r.exit, 0) << r.err;
  report j(r.out);
  ASSERT_TRUE(j.ok) << r.out;
  EXPECT_EQ(j.num("/requests"), 300u);
  EXPECT_EQ(j.decisions_sum(), 300u);
  EXPECT_EQ(j.num("/decisions/allow"), 300u);  // the default mix only has known tools
  EXPECT_EQ(j.num("/errors/closed"), 0u);
  EXPECT_GT(j.real("/throughput"), 0);
  EXPECT_GT(j.real("/latency_us/p50"), 0);
  EXPECT_LE(j.real("/latency_us/p50"), j.real("/latency_us/p99"));
  EXPECT_LE(j.real("/latency_us/p99"), j.real("/latency_us/max"));
  EXPECT_GE(j.real("/server_cpu/us_per_request"), 0);
  std::ifstream svg(plot);
  std::string text((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("<svg"), std::string::npos);
  EXPECT_NE(text.find("<polyline"), std::string::npos);
  // Every call reached the upstream.
  http_client c(server->port());
  auto calls = c.request("GET", "/_calls");
  ASSERT_TRUE(calls);
  size_t n = 0;
  for (size_t at = calls->body.find("\"name\""); at != std::string::npos;
       at = calls->body.find("\"name\"", at + 1))
    ++n;
  EXPECT_EQ(n, 300u);
}

TEST(bench, UnknownToolsAreRpcErrorsAndTheTextReportPrints) {
  auto server = start_example();
  ASSERT_TRUE(server);
  auto r = run(binary_path("SLUICE_BIN"),
               {"bench", "-c", "2", "-n", "50", "--tool", "no_such_tool",
                "http://127.0.0.1:" + std::to_string(server->port()) + "/mcp"},
               kRun);
  ASSERT_EQ(r.exit, 0) << r.err;
  EXPECT_NE(r.out.find("requests    50"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rpc_error 50"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\033["), std::string::npos) << "no progress line when not a terminal";
}

TEST(bench, OpenLoopSendsAtTheRate) {
  auto server = start_example();
  ASSERT_TRUE(server);
  // 400 req/s for 0.5 s: about 200 answers (the run ends at the time, not at a count).
  auto r = bench(server->port(), "/mcp", {"-r", "400", "-d", "0.5"});
  ASSERT_EQ(r.exit, 0) << r.err;
  report j(r.out);
  ASSERT_TRUE(j.ok) << r.out;
  const uint64_t n = j.num("/requests");
  EXPECT_GE(n, 150u);
  EXPECT_LE(n, 210u);
  EXPECT_EQ(j.decisions_sum(), n);
}

class bench_gateway : public ::testing::Test {
 protected:
  void SetUp() override {
    upstream_ = start_example();
    ASSERT_TRUE(upstream_);
    const std::string policy = write_temp("policy.json", R"({"version":"1","default":"allow",
      "tools":{"delete_bucket":{"action":"deny","reason":"no deleting"},
               "write_file":{"limits":[{"counter":"w","window":4294967295,"max":5,"scope":"grant"}]}}})");
    const std::string grants =
        write_temp("grants.json", std::string(R"({"grants":[{"name":"a","token_sha256":")") +
                                      hash_token("token-a") + R"("},{"name":"b","token_sha256":")" +
                                      hash_token("token-b") + R"("}]})");
    sluice_ = process::spawn(
        binary_path("SLUICE_BIN"),
        {"serve", "--listen", "127.0.0.1:0", "--shards", "1", "--policy", policy, "--grants",
         grants, "--upstream", "http://127.0.0.1:" + std::to_string(upstream_->port()) + "/mcp"});
    ASSERT_TRUE(sluice_);
    // The readiness line goes on after the port: "sluice listening on HOST:PORT (...)".
    ASSERT_TRUE(sluice_->wait_for_stdout(")\n", kDefaultTimeout)) << sluice_->stdout_text();
    const std::string out = sluice_->stdout_text();
    const size_t at = out.find(" listening on 127.0.0.1:");
    ASSERT_NE(at, std::string::npos) << out;
    port_ = uint16_t(std::atoi(out.c_str() + at + 24));
    ASSERT_NE(port_, 0) << out;
  }

  std::unique_ptr<process> upstream_;
  std::unique_ptr<process> sluice_;
  uint16_t port_ = 0;
};

TEST_F(bench_gateway, DecisionsOnTheGatewayMatchThePolicy) {
  const std::string mix = write_temp("mix.json", R"({"tools":[
    {"name":"read_file","weight":3,"arguments":{"path":["/a","/b"],"limit":[1,2]}},
    {"name":"delete_bucket","weight":1,"arguments":{"bucket":["logs","data"]}},
    {"name":"write_file","weight":1,"arguments":{"path":["/tmp/x"],"content":["hi"]}}]})");
  auto r = bench(port_, "/mcp",
                 {"-n", "400", "--mix", mix, "--token", "token-a", "--token", "token-b",
                  "--sessions", "4", "--pid", std::to_string(sluice_->pid())});
  ASSERT_EQ(r.exit, 0) << r.err;
  report j(r.out);
  ASSERT_TRUE(j.ok) << r.out;
  EXPECT_EQ(j.num("/requests"), 400u);
  EXPECT_EQ(j.decisions_sum(), 400u);
  EXPECT_GT(j.num("/decisions/allow"), 150u);
  EXPECT_GT(j.num("/decisions/deny"), 40u);  // delete_bucket, about 80
  // write_file: 5 per grant allowed over two grants, the rest rate-limited.
  EXPECT_GT(j.num("/decisions/rate_limited"), 40u);
  EXPECT_EQ(j.num("/decisions/unauthorized"), 0u);
  EXPECT_EQ(j.num("/decisions/upstream_error"), 0u);
  // The upstream saw the allowed calls only, within their sessions.
  http_client c(upstream_->port());
  auto calls = c.request("GET", "/_calls");
  ASSERT_TRUE(calls);
  EXPECT_EQ(calls->body.find("delete_bucket"), std::string::npos);
}

TEST_F(bench_gateway, WithoutATokenEveryAnswerIsUnauthorized) {
  auto r = bench(port_, "/mcp", {"-n", "100"});
  ASSERT_EQ(r.exit, 0) << r.err;
  report j(r.out);
  ASSERT_TRUE(j.ok) << r.out;
  EXPECT_EQ(j.num("/decisions/unauthorized"), 100u);
}

TEST_F(bench_gateway, TheDecisionServiceIsReadFromTheStatus) {
  auto r = bench(port_, "/v1/decide",
                 {"-n", "300", "-p", "8", "--tool", "read_file:1", "--tool", "delete_bucket:1",
                  "--token", "token-a"});
  ASSERT_EQ(r.exit, 0) << r.err;
  report j(r.out);
  ASSERT_TRUE(j.ok) << r.out;
  EXPECT_EQ(j.num("/requests"), 300u);
  EXPECT_EQ(j.decisions_sum(), 300u);
  EXPECT_EQ(j.num("/decisions/allow") + j.num("/decisions/deny"), 300u);
  EXPECT_GT(j.num("/decisions/deny"), 100u);
  EXPECT_GT(j.num("/decisions/allow"), 100u);
}

TEST(bench, BadArgumentsExitTwo) {
  const std::string bin = binary_path("SLUICE_BIN");
  EXPECT_EQ(run(bin, {"bench"}).exit, 2);
  EXPECT_EQ(run(bin, {"bench", "-c", "0", "http://127.0.0.1:1/mcp"}).exit, 2);
  EXPECT_EQ(run(bin, {"bench", "ftp://x/"}).exit, 2);
  EXPECT_EQ(run(bin, {"bench", "--help"}).exit, 0);
}

TEST(bench, NothingListeningIsConnectFailedAndExitOne) {
  // Port 1: nothing listens there (connections are refused).
  auto r = run(binary_path("SLUICE_BIN"),
               {"bench", "--json", "-c", "2", "-d", "2", "http://127.0.0.1:1/mcp"}, kRun);
  EXPECT_EQ(r.exit, 1) << r.out << r.err;
  report j(r.out);
  ASSERT_TRUE(j.ok) << r.out;
  EXPECT_EQ(j.num("/errors/connect_failed"), 2u);
  EXPECT_EQ(j.num("/requests"), 0u);
}

}  // namespace
}  // namespace sluice::testing
