// `sluice init` end to end: against sluice-example-server, our fixture MCP server (HTTP with
// JSON or SSE answers, and stdio) and @modelcontextprotocol/server-everything (stdio and
// streamable HTTP). For each: the policy passes `sluice check`, tools classify as documented
// (docs/risk.md), and `sluice eval` over calls to every tool decides as the profile promises.
// Then the bad inputs: each exits non-zero and leaves no policy file behind.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto kInitTimeout = 30s;  // node starts slowly on a loaded machine

std::string source_root() {
  return binary_path("SLUICE_SOURCE_ROOT");
}
std::string fixture() {
  return source_root() + "/tests/integration/fixtures/mcp_fixture_server.mjs";
}
std::string node_modules() {
  return source_root() + "/node_modules";
}
std::string everything_js() {
  return node_modules() + "/@modelcontextprotocol/server-everything/dist/index.js";
}

struct tmp_dir {
  tmp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "sluice-init-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~tmp_dir() { fs::remove_all(path); }
  std::string file(std::string_view name) const { return path + "/" + std::string(name); }
  std::string path;
};

run_result sluice(const std::vector<std::string>& args) {
  return run(binary_path("SLUICE_BIN"), args, kInitTimeout);
}

struct tool_row {
  std::string cls, risk, signal;
};

// Parses `sluice init --json` output: tool name -> class, risk, signal.
std::map<std::string, tool_row> parse_json_report(const std::string& text) {
  std::map<std::string, tool_row> out;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(text).get(doc)) {
    ADD_FAILURE() << "not JSON: " << text;
    return out;
  }
  simdjson::dom::array tools;
  EXPECT_EQ(doc["tools"].get_array().get(tools), simdjson::SUCCESS);
  for (simdjson::dom::element t : tools) {
    std::string_view name, cls, risk, sig;
    EXPECT_EQ(t["name"].get_string().get(name), simdjson::SUCCESS);
    EXPECT_EQ(t["class"].get_string().get(cls), simdjson::SUCCESS);
    EXPECT_EQ(t["risk"].get_string().get(risk), simdjson::SUCCESS);
    EXPECT_EQ(t["signal"].get_string().get(sig), simdjson::SUCCESS);
    out[std::string(name)] = {std::string(cls), std::string(risk), std::string(sig)};
  }
  return out;
}

// What n calls in one minute by one grant give, per profile and class: how many are allowed
// and what the first one after those is ("" when all n are allowed).
struct promise {
  int allowed;
  std::string then;
};
promise promised(std::string_view profile, std::string_view cls, int n) {
  auto limited = [&](int max) { return max >= n ? promise{n, ""} : promise{max, "rate_limited"}; };
  if (profile == "strict") {
    if (cls == "read") return limited(60);
    if (cls == "destructive") return {0, "deny"};
    return {0, "approval_required"};
  }
  if (profile == "permissive") {
    if (cls == "execute") return limited(60);
    if (cls == "destructive") return {0, "approval_required"};
    return {n, ""};
  }
  if (cls == "read") return {n, ""};
  if (cls == "write") return limited(60);
  if (cls == "execute") return limited(10);
  return {0, "approval_required"};
}

// Runs `sluice init ARGS --json -o policy`, checks the policy with `sluice check`, compares
// classes with `expected` (name -> class, or class/signal when given), and decides 12 calls
// to every tool with `sluice eval`. Returns the report.
std::map<std::string, tool_row> init_and_verify(const std::vector<std::string>& source,
                                                const std::map<std::string, tool_row>& expected,
                                                std::string_view profile = "default") {
  tmp_dir dir;
  const std::string policy = dir.file("policy.json");
  std::vector<std::string> args = {"init"};
  args.insert(args.end(), source.begin(), source.end());
  args.insert(args.end(), {"--profile", std::string(profile), "--json", "-o", policy});
  const run_result r = sluice(args);
  EXPECT_EQ(r.exit, 0) << r.err;
  if (r.exit != 0) return {};

  const run_result check = sluice({"check", policy});
  EXPECT_EQ(check.exit, 0) << check.err;
  EXPECT_NE(check.out.find("default deny"), std::string::npos) << check.out;

  std::map<std::string, tool_row> report = parse_json_report(r.out);
  EXPECT_FALSE(report.empty());
  for (const auto& [name, want] : expected) {
    const auto it = report.find(name);
    if (it == report.end()) {
      ADD_FAILURE() << "tool " << name << " missing from the report";
      continue;
    }
    EXPECT_EQ(it->second.cls, want.cls) << name;
    if (!want.risk.empty()) {
      EXPECT_EQ(it->second.risk, want.risk) << name;
    }
    if (!want.signal.empty()) {
      EXPECT_EQ(it->second.signal, want.signal) << name;
    }
  }

  // 12 calls to each tool at one instant, grant "agent"; then one to a tool nobody listed.
  constexpr int kCalls = 12;
  const std::string calls = dir.file("calls.jsonl");
  {
    std::ofstream f(calls);
    int id = 1;
    for (const auto& [name, row] : report) {
      for (int i = 0; i < kCalls; ++i) {
        f << R"({"at":1700000040,"grant":"agent","message":{"jsonrpc":"2.0","id":)" << id++
          << R"(,"method":"tools/call","params":{"name":")" << name << R"(","arguments":{}}}})"
          << "\n";
      }
    }
    f << R"({"at":1700000040,"grant":"agent","message":{"jsonrpc":"2.0","id":0,)"
      << R"("method":"tools/call","params":{"name":"not_listed_anywhere","arguments":{}}}})"
      << "\n";
  }
  const run_result ev = sluice({"eval", "--policy", policy, calls});
  EXPECT_EQ(ev.exit, 0) << ev.err;
  std::stringstream lines(ev.out);
  std::string line;
  simdjson::dom::parser parser;
  for (const auto& [name, row] : report) {
    const promise want = promised(profile, row.cls, kCalls);
    int allowed = 0;
    std::string after;
    for (int i = 0; i < kCalls; ++i) {
      std::getline(lines, line);
      std::string_view decision = "<none>", reason;
      simdjson::dom::element d;
      if (parser.parse(line).get(d) == simdjson::SUCCESS) {
        if (d["decision"].get_string().get(decision)) decision = "<none>";
        if (d["reason"].get_string().get(reason)) reason = "";
      }
      if (decision != "allow" && decision != "rate_limited") {
        // Every generated rule names its class in the reason a held or denied call gets.
        EXPECT_NE(reason.find(row.cls + " tool"), std::string_view::npos) << name << ": " << line;
      }
      if (after.empty() && decision == "allow") {
        ++allowed;
      } else if (after.empty()) {
        after = decision;
      }
    }
    EXPECT_EQ(allowed, want.allowed) << name << " (" << row.cls << ", " << profile << ")";
    EXPECT_EQ(after, want.then) << name << " (" << row.cls << ", " << profile << ")";
  }
  std::getline(lines, line);
  EXPECT_NE(line.find("\"decision\":\"deny\""), std::string::npos) << line;
  return report;
}

// The fixture's tools and what docs/risk.md says they are (mcp_fixture_server.mjs).
const std::map<std::string, tool_row> kFixtureClasses = {
    {"fetch_report", {"read", "low", "annotations"}},
    {"web_lookup", {"read", "medium", "annotations"}},
    {"save_note", {"write", "medium", "annotations"}},
    {"start_build", {"execute", "medium", "annotations+name"}},
    {"drop_table", {"destructive", "high", "annotations"}},
    {"archive_logs", {"destructive", "high", "annotations"}},
    {"purge_cache", {"destructive", "high", "annotations"}},
    {"getUserProfile", {"read", "low", "name"}},
    {"list_items", {"read", "low", "name"}},
    {"create_ticket", {"write", "medium", "name"}},
    {"run_pipeline", {"execute", "medium", "name"}},
    {"delete_user", {"destructive", "high", "name"}},
    {"frobnicate", {"destructive", "high", "description"}},
    {"widget_status", {"read", "low", "description"}},
    {"mystery", {"execute", "medium", "fallback"}},
    {"reader_hint_wins", {"read", "low", "annotations"}},
};

std::unique_ptr<process> start_fixture_http(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {fixture(), "--http"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto p = process::spawn(node(), args);
  if (p == nullptr || !p->wait_ready(20s)) return nullptr;
  return p;
}

std::string url(const process& p) {
  return "http://127.0.0.1:" + std::to_string(p.port()) + "/mcp";
}

std::string fixture_command(std::string_view extra = "") {
  return node() + " " + fixture() + " --stdio" + (extra.empty() ? "" : " ") + std::string(extra);
}

class InitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (source_root().empty()) GTEST_SKIP() << "SLUICE_SOURCE_ROOT is not set";
    if (node().empty()) GTEST_SKIP() << "node is not on PATH";
  }
};

// ---------------------------------------------------------------------------------------------

TEST_F(InitTest, ExampleServerOverHttp) {
  auto server = process::spawn(binary_path("EXAMPLE_SERVER_BIN"), {"--listen", "127.0.0.1:0"});
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->wait_ready());
  const auto report = init_and_verify({"--from", url(*server)},
                                      {{"read_file", {"read", "low", "annotations"}},
                                       {"list_buckets", {"read", "low", "annotations"}},
                                       {"write_file", {"write", "medium", "annotations"}},
                                       {"policy_generation_start", {"execute", "high", ""}},
                                       {"delete_bucket", {"destructive", "high", ""}},
                                       {"put_bucket_policy", {"destructive", "high", ""}},
                                       {"run_query", {"destructive", "high", ""}},
                                       {"echo", {"read", "low", ""}},
                                       {"long_job", {"read", "low", ""}}});
  EXPECT_EQ(report.size(), 9u);
  EXPECT_EQ(server->terminate(), 0);
}

TEST_F(InitTest, FixtureOverHttpWithJsonAnswersAcrossFourPages) {
  auto server = start_fixture_http({"--page-size", "4"});
  ASSERT_NE(server, nullptr);
  const auto report = init_and_verify({"--from", url(*server)}, kFixtureClasses);
  EXPECT_EQ(report.size(), kFixtureClasses.size());
}

TEST_F(InitTest, FixtureOverHttpWithSseAnswers) {
  auto server = start_fixture_http({"--sse", "--page-size", "3"});
  ASSERT_NE(server, nullptr);
  const auto report = init_and_verify({"--from", url(*server)}, kFixtureClasses);
  EXPECT_EQ(report.size(), kFixtureClasses.size());
}

TEST_F(InitTest, FixtureOverStdio) {
  const auto report =
      init_and_verify({"--from-command", fixture_command("--page-size 5")}, kFixtureClasses);
  EXPECT_EQ(report.size(), kFixtureClasses.size());
}

TEST_F(InitTest, StrictAndPermissiveProfiles) {
  init_and_verify({"--from-command", fixture_command()}, kFixtureClasses, "strict");
  init_and_verify({"--from-command", fixture_command()}, kFixtureClasses, "permissive");
}

TEST_F(InitTest, ExplainPrintsATableAndPolicyGoesToStdoutByDefault) {
  const run_result table = sluice({"init", "--from-command", fixture_command(), "--explain"});
  ASSERT_EQ(table.exit, 0) << table.err;
  EXPECT_NE(table.out.find("TOOL"), std::string::npos);
  EXPECT_NE(table.out.find("frobnicate"), std::string::npos);
  EXPECT_NE(table.out.find("description verb 'deletes'"), std::string::npos);
  EXPECT_NE(table.out.find("16 tools: 6 read, 2 write, 3 execute, 5 destructive"),
            std::string::npos)
      << table.out;
  const run_result plain = sluice({"init", "--from-command", fixture_command()});
  ASSERT_EQ(plain.exit, 0) << plain.err;
  EXPECT_EQ(plain.out.rfind("{\n  \"version\": \"1\",\n  \"default\": \"deny\"", 0), 0u)
      << plain.out;
}

// server-everything, pinned in package.json; tools/install-deps.sh runs `npm ci`.
const std::map<std::string, tool_row> kEverythingClasses = {
    {"echo", {"read", "low", "annotations"}},
    {"get-sum", {"read", "low", "annotations"}},
    {"toggle-simulated-logging", {"write", "medium", "annotations"}},
    {"gzip-file-as-resource", {"write", "high", "annotations"}},
    {"simulate-research-query", {"execute", "medium", "annotations+name"}},
};

TEST_F(InitTest, ServerEverythingOverStdio) {
  if (access(everything_js().c_str(), R_OK) != 0) GTEST_SKIP() << "run npm ci first";
  const auto report = init_and_verify({"--from-command", node() + " " + everything_js() + " stdio"},
                                      kEverythingClasses);
  EXPECT_GE(report.size(), kEverythingClasses.size());
}

TEST_F(InitTest, ServerEverythingOverStreamableHttp) {
  if (access(everything_js().c_str(), R_OK) != 0) GTEST_SKIP() << "run npm ci first";
  auto server = process::spawn(
      node(), {source_root() + "/tests/integration/fixtures/everything_http.mjs", node_modules()});
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->wait_ready(20s));
  const auto report = init_and_verify({"--from", url(*server)}, kEverythingClasses);
  EXPECT_GE(report.size(), kEverythingClasses.size());
}

// ---------------------------------------------------------------------------------------------
// Bad inputs: a clear message, exit 1, and the output file untouched.

void expect_failure(const std::vector<std::string>& source, std::string_view message) {
  tmp_dir dir;
  const std::string fresh = dir.file("fresh.json");
  const std::string existing = dir.file("existing.json");
  std::ofstream(existing) << "old";
  for (const std::string& out : {fresh, existing}) {
    std::vector<std::string> args = {"init"};
    args.insert(args.end(), source.begin(), source.end());
    args.insert(args.end(), {"-o", out});
    const run_result r = sluice(args);
    EXPECT_EQ(r.exit, 1) << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  EXPECT_FALSE(fs::exists(fresh));
  std::ifstream f(existing);
  std::string content((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "old");
  // Nothing else left in the directory: no temporary file either.
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path))
    ++entries;
  EXPECT_EQ(entries, 1u);
}

TEST_F(InitTest, UnreachableUrl) {
  // A bound socket that does not listen: connecting to it is refused, and no one else can
  // take the port meanwhile.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const std::string target = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/mcp";
  expect_failure({"--from", target}, "cannot connect");
  close(fd);
}

TEST_F(InitTest, FailedInitialize) {
  auto server = start_fixture_http({"--mode", "fail-init"});
  ASSERT_NE(server, nullptr);
  expect_failure({"--from", url(*server)}, "initialize failed: the server answered error -32603");
  expect_failure({"--from-command", fixture_command("--mode fail-init")}, "initialize failed");
}

TEST_F(InitTest, CursorLoop) {
  auto server = start_fixture_http({"--mode", "cursor-loop"});
  ASSERT_NE(server, nullptr);
  expect_failure({"--from", url(*server)}, "cursor loop");
  expect_failure({"--from-command", fixture_command("--mode cursor-loop")}, "cursor loop");
}

TEST_F(InitTest, PageLimit) {
  expect_failure({"--from-command", fixture_command("--page-size 1"), "--max-pages", "3"},
                 "still more pages after 3");
}

TEST_F(InitTest, GarbageAnswers) {
  auto server = start_fixture_http({"--mode", "garbage"});
  ASSERT_NE(server, nullptr);
  expect_failure({"--from", url(*server)}, "not JSON-RPC");
  expect_failure({"--from-command", fixture_command("--mode garbage")}, "not JSON-RPC");
  expect_failure({"--from-command", fixture_command("--mode bad-tools")}, "no result.tools array");
}

TEST_F(InitTest, ServerThatNeverAnswersTimesOut) {
  auto server = start_fixture_http({"--mode", "hang"});
  ASSERT_NE(server, nullptr);
  expect_failure({"--from", url(*server), "--timeout", "1"}, "timed out");
  expect_failure({"--from-command", fixture_command("--mode hang"), "--timeout", "1"}, "timed out");
}

TEST_F(InitTest, CommandThatIsNotAServer) {
  expect_failure({"--from-command", "/nonexistent/mcp-server"}, "exited with status 127");
  expect_failure({"--from-command", "echo hello; cat >/dev/null"}, "not JSON-RPC");
}

TEST_F(InitTest, UsageErrors) {
  const run_result help = sluice({"init", "--help"});
  EXPECT_EQ(help.exit, 0);
  EXPECT_NE(help.out.find("--from-command"), std::string::npos);
  EXPECT_EQ(sluice({"init"}).exit, 2);
  EXPECT_EQ(sluice({"init", "--from", "http://x", "--profile", "lax"}).exit, 2);
  EXPECT_EQ(sluice({"init", "--from", "ftp://x"}).exit, 1);
}

}  // namespace
}  // namespace sluice::testing
