// Sluice in headless Chromium (playwright-core driving /usr/bin/chromium, scripts in
// tests/integration/dashboard/). The dashboard end to end: starts sluice-example-server and
// sluice serve --admin, then dashboard_e2e.mjs loads the page, waits for a parked call, clicks
// Approve and checks that the agent gets the tool's result. An MCP client in a browser page:
// cors_e2e.mjs talks to the gateway from a page of another origin (CORS). Skipped when chromium
// or playwright-core is missing (tools/install-deps.sh installs both).

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/integration/harness.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;
constexpr std::chrono::milliseconds kLong{10000};

// The browser scripts' directory, or "" when chromium, node or playwright-core is missing.
fs::path browser_scripts() {
  const char* root_env = std::getenv("SLUICE_SOURCE_ROOT");
  const fs::path root = root_env != nullptr ? fs::path(root_env) : fs::path(".");
  if (!fs::exists("/usr/bin/chromium") || !fs::exists("/usr/bin/node") ||
      !fs::exists(root / "node_modules/playwright-core/package.json")) {
    return {};
  }
  return root / "tests/integration/dashboard";
}

TEST(dashboard, approve_in_the_browser_releases_the_call) {
  const fs::path scripts = browser_scripts();
  if (scripts.empty())
    GTEST_SKIP() << "needs /usr/bin/chromium, node and playwright-core (tools/install-deps.sh)";
  const fs::path script = scripts / "dashboard_e2e.mjs";
  char tmpl[] = "/tmp/sluice-dashboard-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string policy = dir + "/policy.json";
  const std::string token_file = dir + "/token";
  const std::string token = "dashboard-test-token";
  std::ofstream(policy) << R"({"version":"1","default":"allow","tools":{
      "run_query":{"action":"require_approval","reason":"queries need a human"}}})";
  std::ofstream(token_file) << token << "\n";

  auto upstream = process::spawn(binary_path("EXAMPLE_SERVER_BIN"), {"--listen", "127.0.0.1:0"});
  ASSERT_TRUE(upstream);
  ASSERT_TRUE(upstream->wait_ready(kLong));
  process::options opts;
  opts.capture_stderr = true;
  auto sluice =
      process::spawn(binary_path("SLUICE_BIN"),
                     {"serve", "--listen", "127.0.0.1:0", "--policy", policy, "--shards", "2",
                      "--upstream", "http://127.0.0.1:" + std::to_string(upstream->port()) + "/mcp",
                      "--admin", "127.0.0.1:0", "--admin-token-file", token_file},
                     opts);
  ASSERT_TRUE(sluice);
  ASSERT_TRUE(sluice->wait_for_stdout(")\n", kLong)) << sluice->stderr_text();
  const std::string out = sluice->stdout_text();
  const uint16_t admin = port_after(out, "sluice admin on ");
  const uint16_t mcp = port_after(out, " listening on ");
  ASSERT_NE(admin, 0);
  ASSERT_NE(mcp, 0);

  run_result r =
      run("/usr/bin/node", {script.string(), std::to_string(admin), std::to_string(mcp), token},
          std::chrono::seconds(60));
  ASSERT_TRUE(r.exit) << "node did not finish within 60 s\n" << r.out << r.err;
  EXPECT_EQ(*r.exit, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("dashboard e2e: ok"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(sluice->terminate(kLong), 0);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// A browser MCP client on a page of an allowed origin (localhost) reads answers and the session
// id through CORS; a page of another origin cannot. The example policy denies delete_bucket.
TEST(browser, mcp_client_page_of_an_allowed_origin_reads_answers) {
  const fs::path scripts = browser_scripts();
  if (scripts.empty())
    GTEST_SKIP() << "needs /usr/bin/chromium, node and playwright-core (tools/install-deps.sh)";
  auto upstream = process::spawn(binary_path("EXAMPLE_SERVER_BIN"), {"--listen", "127.0.0.1:0"});
  ASSERT_TRUE(upstream && upstream->wait_ready(kLong));
  auto sluice = process::spawn(
      binary_path("SLUICE_BIN"),
      {"serve", "--listen", "127.0.0.1:0", "--policy", policy_path("gateway.json"), "--shards", "2",
       "--upstream", "http://127.0.0.1:" + std::to_string(upstream->port()) + "/mcp"});
  ASSERT_TRUE(sluice && sluice->wait_ready(kLong));
  run_result r =
      run("/usr/bin/node", {(scripts / "cors_e2e.mjs").string(), std::to_string(sluice->port())},
          std::chrono::seconds(60));
  ASSERT_TRUE(r.exit) << "node did not finish within 60 s\n" << r.out << r.err;
  EXPECT_EQ(*r.exit, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("cors e2e: ok"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(sluice->terminate(kLong), 0);
}

}  // namespace
}  // namespace sluice::testing
