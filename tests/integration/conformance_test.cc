// @modelcontextprotocol/conformance's server scenarios against our SDK-built fixture
// (tests/integration/fixtures/conformance_server.mjs): directly, through Sluice with an
// allow-all policy, and through Sluice with a restrictive one. Every scenario that passes
// directly passes through Sluice; the restrictive policy fails exactly the scenarios that use
// what it refuses. The three runs go in parallel. docs/conformance.md has the table.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace {

using namespace std::chrono_literals;
using sluice::testing::binary_path;
using sluice::testing::node;
using sluice::testing::process;

constexpr auto kRunTimeout = 110s;

std::string source_root() {
  return binary_path("SLUICE_SOURCE_ROOT");
}
std::string conformance_js() {
  return source_root() + "/node_modules/@modelcontextprotocol/conformance/dist/index.js";
}

std::unique_ptr<process> gateway(const std::string& policy, uint16_t upstream_port) {
  auto p = process::spawn(
      binary_path("SLUICE_BIN"),
      {"serve", "--policy", binary_path("POLICY_DIR") + "/" + policy, "--listen", "127.0.0.1:0",
       "--upstream", "http://127.0.0.1:" + std::to_string(upstream_port) + "/mcp"});
  return p && p->wait_ready() ? std::move(p) : nullptr;
}

std::unique_ptr<process> run_suite(uint16_t port) {
  return process::spawn(
      node(),
      {"--import", source_root() + "/tests/integration/conformance/node20_compat.mjs",
       conformance_js(), "server", "--url", "http://127.0.0.1:" + std::to_string(port) + "/mcp"});
}

// The SUMMARY lines: "✓ NAME: P passed, F failed" / "✗ NAME: ...", as NAME → passed.
std::map<std::string, bool> summary(const std::string& out) {
  std::map<std::string, bool> r;
  const size_t at = out.find("=== SUMMARY ===");
  if (at == std::string::npos) return r;
  std::istringstream lines(out.substr(at));
  std::string line;
  while (std::getline(lines, line)) {
    for (const std::string mark : {"✓ ", "✗ "}) {
      if (line.rfind(mark, 0) != 0) continue;
      const size_t colon = line.find(':');
      r[line.substr(mark.size(), colon - mark.size())] = mark == "✓ ";
    }
  }
  return r;
}

TEST(Conformance, ServerScenariosThroughSluice) {
  if (source_root().empty() || node().empty() || access(conformance_js().c_str(), R_OK) != 0) {
    GTEST_SKIP() << "node or node_modules missing: run tools/install-deps.sh";
  }
  auto fixture = process::spawn(
      node(), {source_root() + "/tests/integration/fixtures/conformance_server.mjs"});
  ASSERT_NE(fixture, nullptr);
  ASSERT_TRUE(fixture->wait_ready(30s));
  auto open = gateway("allow_all.json", fixture->port());
  auto strict = gateway("conformance_restrictive.json", fixture->port());
  ASSERT_NE(open, nullptr);
  ASSERT_NE(strict, nullptr);

  auto direct_run = run_suite(fixture->port());
  auto open_run = run_suite(open->port());
  auto strict_run = run_suite(strict->port());
  ASSERT_TRUE(direct_run && open_run && strict_run);
  for (process* p : {direct_run.get(), open_run.get(), strict_run.get()}) {
    ASSERT_TRUE(p->wait_exit(kRunTimeout).has_value()) << "conformance did not finish";
    ASSERT_TRUE(p->wait_output_closed());
  }
  const auto direct = summary(direct_run->stdout_text());
  const auto open_result = summary(open_run->stdout_text());
  const auto strict_result = summary(strict_run->stdout_text());
  ASSERT_GE(direct.size(), 30u) << direct_run->stdout_text();

  const std::set<std::string> refused = {"tools-call-image", "tools-call-sampling",
                                         "resources-read-binary", "prompts-get-with-image"};
  for (const auto& [scenario, passed] : direct) {
    if (!passed) continue;  // only what the fixture passes says anything about Sluice
    EXPECT_TRUE(open_result.count(scenario) && open_result.at(scenario))
        << scenario << " passes directly but not through Sluice (allow-all)";
    const bool expect_pass = refused.count(scenario) == 0;
    EXPECT_EQ(strict_result.count(scenario) && strict_result.at(scenario), expect_pass)
        << scenario << (expect_pass ? " should pass" : " should be refused")
        << " through Sluice with conformance_restrictive.json";
  }
  for (const std::string& s : refused)
    EXPECT_TRUE(direct.count(s) && direct.at(s)) << s << " must pass directly";
}

}  // namespace
