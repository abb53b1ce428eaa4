// Interop with code nobody on this team wrote: the official TypeScript SDK client
// (@modelcontextprotocol/sdk) talks to @modelcontextprotocol/server-everything through
// `sluice serve`, with server-everything as a Streamable HTTP upstream and as a stdio
// process that Sluice starts. The client side is tests/integration/interop/sdk_client.mjs;
// each test runs one of its scenarios and expects every check to say "ok".

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace {

using namespace std::chrono_literals;
using sluice::testing::binary_path;
using sluice::testing::process;

constexpr auto kNodeTimeout = 60s;  // node starts slowly on a loaded machine

std::string source_root() {
  return binary_path("SLUICE_SOURCE_ROOT");
}
std::string node_modules() {
  return source_root() + "/node_modules";
}
std::string everything_dir() {
  return node_modules() + "/@modelcontextprotocol/server-everything/dist";
}
std::string node() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = dir + "/node";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}
bool have_node_deps() {
  return !source_root().empty() && !node().empty() &&
         access((everything_dir() + "/index.js").c_str(), R_OK) == 0 &&
         access((node_modules() + "/@modelcontextprotocol/sdk/package.json").c_str(), R_OK) == 0;
}

// The gateway in front of server-everything, over HTTP or over stdio; one pair per test suite.
struct gateway_pair {
  std::unique_ptr<process> upstream;  // HTTP only: stdio upstreams are Sluice's children
  std::unique_ptr<process> sluice;
  std::string url;
};

std::unique_ptr<gateway_pair> start(const std::string& kind, const std::string& policy) {
  auto g = std::make_unique<gateway_pair>();
  std::vector<std::string> args = {"serve",  "--policy", policy, "--listen", "127.0.0.1:0",
                                   "--shards", "2"};
  if (kind == "http") {
    g->upstream = process::spawn(
        node(), {source_root() + "/tests/integration/fixtures/everything_http.mjs", node_modules()});
    if (!g->upstream || !g->upstream->wait_ready(kNodeTimeout)) return nullptr;
    args.push_back("--upstream");
    args.push_back("http://127.0.0.1:" + std::to_string(g->upstream->port()) + "/mcp");
  } else {
    args.back() = "1";  // stdio sessions live on one shard (docs/gateway.md)
    args.push_back("--upstream-command");
    args.push_back(node() + " " + everything_dir() + "/index.js stdio");
  }
  g->sluice = process::spawn(binary_path("SLUICE_BIN"), args);
  if (!g->sluice || !g->sluice->wait_ready()) return nullptr;
  g->url = "http://127.0.0.1:" + std::to_string(g->sluice->port()) + "/mcp";
  return g;
}

class Interop : public ::testing::TestWithParam<std::string> {
 protected:
  static void TearDownTestSuite() { pairs().clear(); }
  static std::vector<std::pair<std::string, std::unique_ptr<gateway_pair>>>& pairs() {
    static std::vector<std::pair<std::string, std::unique_ptr<gateway_pair>>> p;
    return p;
  }

  void SetUp() override {
    if (!have_node_deps()) GTEST_SKIP() << "node or node_modules missing: run tools/install-deps.sh";
    for (auto& [kind, g] : pairs()) {
      if (kind == GetParam()) gateway_ = g.get();
    }
    if (gateway_ == nullptr) {
      auto g = start(GetParam(), binary_path("POLICY_DIR") + "/interop.json");
      ASSERT_NE(g, nullptr) << "could not start the gateway and server-everything";
      gateway_ = g.get();
      pairs().emplace_back(GetParam(), std::move(g));
    }
  }

  // Runs one scenario of sdk_client.mjs; every check must pass.
  void scenario(const std::string& name) {
    const auto r = sluice::testing::run(
        node(), {source_root() + "/tests/integration/interop/sdk_client.mjs", gateway_->url, name},
        kNodeTimeout);
    ASSERT_TRUE(r.exit.has_value()) << "timed out\n" << r.out << r.err;
    EXPECT_EQ(*r.exit, 0) << r.out << r.err;
    EXPECT_EQ(r.out.find("not ok"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("interop: all checks passed"), std::string::npos) << r.out << r.err;
  }

  gateway_pair* gateway_ = nullptr;
};

TEST_P(Interop, ConnectListCallDenyRateLimit) {
  scenario("basics");
}
TEST_P(Interop, LongRunningToolWithProgress) {
  scenario("progress");
}
TEST_P(Interop, SamplingRequestRelayed) {
  scenario("sampling");
}
TEST_P(Interop, ElicitationRequestRelayed) {
  scenario("elicitation");
}
TEST_P(Interop, RootsRequestRelayed) {
  scenario("roots");
}
TEST_P(Interop, ConcurrentSessionsNeverSeeEachOther) {
  scenario("isolation");
}
TEST_P(Interop, SessionTermination) {
  scenario("terminate");
}

INSTANTIATE_TEST_SUITE_P(ServerEverything, Interop, ::testing::Values("http"),
                         [](const auto& info) { return info.param; });

}  // namespace
