// Several servers behind one gateway (docs/gateway.md, "Several servers"): sluice serve --config
// with a `servers` object, in front of two sluice-example-server processes (and a stdio server
// that Sluice runs), on 127.0.0.1 with port 0. Each server's /_calls proves what reached it.
// Also the stdio idle timeout. Every wait is a poll with a deadline.

#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/integration/json_doc.h"

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;

constexpr std::chrono::milliseconds kLong{10000};  // generous: a loaded 2-core machine

std::string call(std::string_view id, std::string_view tool, std::string_view args) {
  return std::string(R"({"jsonrpc":"2.0","id":)") + std::string(id) +
         R"(,"method":"tools/call","params":{"name":")" + std::string(tool) + R"(","arguments":)" +
         std::string(args) + "}}";
}

// A temporary directory with files in it, removed at the end of the test.
class temp_dir {
 public:
  temp_dir() {
    char tmpl[] = "/tmp/sluice-servers-test-XXXXXX";
    if (::mkdtemp(tmpl) != nullptr) path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  std::string write(const std::string& name, std::string_view content) const {
    // Written next to the target and renamed over it: a reload never reads half a file.
    const std::string file = path_ + "/" + name;
    {
      std::ofstream out(file + ".tmp");
      out << content;
    }
    std::filesystem::rename(file + ".tmp", file);
    return file;
  }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Server a: deleting denied; echo limited by counter "calls" (2 a day).
constexpr std::string_view kPolicyA = R"({"version": "1", "default": "allow",
  "tools": {
    "delete_*": {"action": "deny", "reason": "a: deleting is not allowed"},
    "echo": {"limits": [{"counter": "calls", "window": "day", "max": 2}]}
  }})";
// Server b: echo hidden, writing denied; read_file limited by a counter of the same name.
constexpr std::string_view kPolicyB = R"({"version": "1", "default": "allow",
  "hide": ["echo"],
  "tools": {
    "write_file": {"action": "deny", "reason": "b: read-only"},
    "read_file": {"limits": [{"counter": "calls", "window": "day", "max": 2}]}
  }})";

class servers : public ::testing::Test {
 protected:
  void TearDown() override {
    if (sluice_ && sluice_->running()) {
      EXPECT_EQ(sluice_->terminate(kLong), 0) << "sluice did not exit cleanly";
    }
  }

  std::unique_ptr<process> start_example() {
    const std::string bin = binary_path("EXAMPLE_SERVER_BIN");
    auto p = process::spawn(bin, {"--listen", "127.0.0.1:0"});
    if (p && !p->wait_ready(kLong)) return nullptr;
    return p;
  }

  static std::string url(const process& p) {
    return "http://127.0.0.1:" + std::to_string(p.port()) + "/mcp";
  }

  // sluice serve --config FILE with `servers` a and b (relative policy paths) in front of two
  // example servers, plus `extra_servers` (JSON members) and extra flags.
  void start(std::vector<std::string> flags = {}, std::string extra_servers = {}) {
    a_ = start_example();
    b_ = start_example();
    ASSERT_TRUE(a_ && b_) << "could not start the example servers";
    dir_.write("a.json", kPolicyA);
    dir_.write("b.json", kPolicyB);
    std::string config = R"({"listen": "127.0.0.1:0", "servers": {)";
    config += R"("a": {"upstream": ")" + url(*a_) + R"(", "policy": "a.json"},)";
    config += R"("b": {"upstream": ")" + url(*b_) + R"(", "policy": "b.json")";
    config += R"(, "upstream_header": ["X-Team: b"]})";
    if (!extra_servers.empty()) config += "," + extra_servers;
    config += "}}";
    const std::string file = dir_.write("sluice.json", config);
    std::vector<std::string> args = {"serve", "--config", file};
    args.insert(args.end(), flags.begin(), flags.end());
    process::options opts;
    opts.capture_stderr = true;
    sluice_ = process::spawn(binary_path("SLUICE_BIN"), args, opts);
    ASSERT_TRUE(sluice_);
    ASSERT_TRUE(wait_sluice_ready(*sluice_, port_, kLong))
        << "stdout: " << sluice_->stdout_text() << "\nstderr: " << sluice_->stderr_text();
  }

  std::optional<http_response> post(std::string_view target, std::string_view body,
                                    const header_list& extra = {}) {
    http_client c(port_);
    return c.request("POST", target, body, mcp_headers(extra), kLong);
  }

  static std::string calls(const process& upstream) {
    http_client c(upstream.port());
    auto r = c.request("GET", "/_calls", {}, {}, kLong);
    return r ? r->body : "<no answer>";
  }
  static size_t call_count(const process& upstream) { return json(calls(upstream)).size(""); }

  static std::set<std::string> tool_names(std::string_view answer) {
    json j(answer);
    std::set<std::string> names;
    for (size_t i = 0; i < j.size("/result/tools"); ++i)
      names.insert(j.str("/result/tools/" + std::to_string(i) + "/name"));
    return names;
  }

  temp_dir dir_;
  std::unique_ptr<process> a_, b_;
  std::unique_ptr<process> sluice_;
  uint16_t port_ = 0;
};

// ---------------------------------------------------------------------------------------------

TEST_F(servers, EachServerDecidesWithItsOwnPolicy) {
  ASSERT_NO_FATAL_FAILURE(start({"--shards", "2"}));
  // delete_bucket: denied on a (never reaches it), allowed on b (reaches b only).
  auto del_a = post("/servers/a/mcp", call("1", "delete_bucket", R"({"bucket":"x"})"));
  ASSERT_TRUE(del_a);
  EXPECT_EQ(del_a->status, 200);
  EXPECT_TRUE(contains(del_a->body, "[POLICY DENIED] a: deleting is not allowed")) << del_a->body;
  auto del_b = post("/servers/b/mcp", call("2", "delete_bucket", R"({"bucket":"x"})"));
  ASSERT_TRUE(del_b);
  EXPECT_TRUE(contains(del_b->body, "ran delete_bucket")) << del_b->body;
  // write_file: the other way round.
  auto write_a = post("/servers/a/mcp", call("3", "write_file", R"({"path":"p","content":"c"})"));
  ASSERT_TRUE(write_a);
  EXPECT_TRUE(contains(write_a->body, "ran write_file")) << write_a->body;
  auto write_b = post("/servers/b/mcp", call("4", "write_file", R"({"path":"p","content":"c"})"));
  ASSERT_TRUE(write_b);
  EXPECT_TRUE(contains(write_b->body, "[POLICY DENIED] b: read-only")) << write_b->body;

  const std::string got_a = calls(*a_), got_b = calls(*b_);
  EXPECT_EQ(json(got_a).size(""), 1u) << got_a;
  EXPECT_TRUE(contains(got_a, "write_file")) << got_a;
  EXPECT_EQ(json(got_b).size(""), 1u) << got_b;
  EXPECT_TRUE(contains(got_b, "delete_bucket")) << got_b;
}

TEST_F(servers, ToolsListIsFilteredByEachServersPolicy) {
  ASSERT_NO_FATAL_FAILURE(start({"--shards", "2"}));
  const std::string list = R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})";
  auto la = post("/servers/a/mcp", list);
  auto lb = post("/servers/b/mcp", list);
  ASSERT_TRUE(la && lb);
  const auto names_a = tool_names(la->body), names_b = tool_names(lb->body);
  EXPECT_EQ(names_a.count("delete_bucket"), 0u) << la->body;
  EXPECT_EQ(names_a.count("echo"), 1u) << la->body;
  EXPECT_EQ(names_a.count("write_file"), 1u) << la->body;
  EXPECT_EQ(names_b.count("delete_bucket"), 1u) << lb->body;
  EXPECT_EQ(names_b.count("echo"), 0u) << lb->body;
  EXPECT_EQ(names_b.count("write_file"), 0u) << lb->body;
}

TEST_F(servers, RateLimitCountersAreKeptApartByServer) {
  ASSERT_NO_FATAL_FAILURE(start({"--shards", "2"}));
  const int64_t day = static_cast<int64_t>(std::time(nullptr)) / 86400;
  // Both policies name their counter "calls" (2 a day): b's calls do not count for a.
  for (int i = 0; i < 2; ++i) {
    auto r = post("/servers/b/mcp", call(std::to_string(i), "read_file", R"({"path":"x"})"));
    ASSERT_TRUE(r);
    EXPECT_TRUE(contains(r->body, "ran read_file")) << r->body;
  }
  for (int i = 0; i < 2; ++i) {
    auto r = post("/servers/a/mcp", call(std::to_string(i), "echo", R"({"text":"x"})"));
    ASSERT_TRUE(r);
    EXPECT_FALSE(contains(r->body, "POLICY DENIED")) << i << ": " << r->body;
  }
  auto third_a = post("/servers/a/mcp", call("3", "echo", R"({"text":"x"})"));
  auto third_b = post("/servers/b/mcp", call("3", "read_file", R"({"path":"x"})"));
  ASSERT_TRUE(third_a && third_b);
  if (static_cast<int64_t>(std::time(nullptr)) / 86400 != day)
    GTEST_SKIP() << "the calls straddled a day boundary";
  EXPECT_TRUE(contains(third_a->body, "rate limit exceeded: counter 'calls'")) << third_a->body;
  EXPECT_TRUE(contains(third_b->body, "rate limit exceeded: counter 'calls'")) << third_b->body;
  EXPECT_EQ(call_count(*a_), 2u);
  EXPECT_EQ(call_count(*b_), 2u);
}

// The decision service decides a server's calls with that server's policy and counters when
// the path under it names the server (what Envoy's ext_authz sends: its path_prefix followed by
// the client's path). With no top-level policy, a path that names no server has none: 404.
TEST_F(servers, DecisionServiceDecidesWithTheServerItsPathNames) {
  ASSERT_NO_FATAL_FAILURE(start({"--shards", "2"}));
  const int64_t day = static_cast<int64_t>(std::time(nullptr)) / 86400;
  auto del_a = post("/v1/decide/servers/a/mcp", call("1", "delete_bucket", R"({"bucket":"x"})"));
  ASSERT_TRUE(del_a);
  EXPECT_EQ(del_a->status, 403) << del_a->body;
  EXPECT_EQ(json(del_a->body).str("/reason"), "a: deleting is not allowed") << del_a->body;
  auto del_b = post("/v1/decide/servers/b/mcp?x=1", call("2", "delete_bucket", "{}"));
  ASSERT_TRUE(del_b);
  EXPECT_EQ(del_b->status, 200) << del_b->body;
  auto write_b = post("/v1/decide/servers/b/mcp", call("3", "write_file", R"({"path":"p"})"));
  ASSERT_TRUE(write_b);
  EXPECT_EQ(write_b->status, 403) << write_b->body;
  EXPECT_EQ(json(write_b->body).str("/reason"), "b: read-only") << write_b->body;

  // a's counter "calls" (2 a day) counts decisions and calls through the gateway alike.
  for (int i = 0; i < 2; ++i) {
    auto r = post("/v1/decide/servers/a/mcp", call(std::to_string(i), "echo", R"({"text":"x"})"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << i << ": " << r->body;
  }
  auto third = post("/servers/a/mcp", call("3", "echo", R"({"text":"x"})"));
  ASSERT_TRUE(third);
  if (static_cast<int64_t>(std::time(nullptr)) / 86400 == day) {
    EXPECT_TRUE(contains(third->body, "rate limit exceeded: counter 'calls'")) << third->body;
  }

  for (const char* target : {"/v1/decide", "/v1/decide/mcp", "/v1/decide/servers/c/mcp"}) {
    auto none = post(target, call("4", "echo", "{}"));
    ASSERT_TRUE(none);
    EXPECT_EQ(none->status, 404) << target;
    EXPECT_TRUE(contains(none->body, "no policy decides at this path")) << none->body;
  }
  EXPECT_EQ(call_count(*a_), 0u) << calls(*a_);  // deciding forwards nothing
  EXPECT_EQ(call_count(*b_), 0u) << calls(*b_);
}

// A session id is bound to the endpoint it was issued on: server a's session cannot be named
// at b's path (b would count it as a session of its own, or forward it to its server).
TEST_F(servers, SessionIdsServeOnlyTheServerThatIssuedThem) {
  ASSERT_NO_FATAL_FAILURE(start({"--shards", "2"}));
  const std::string init =
      R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":)"
      R"("2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})";
  auto opened = post("/servers/a/mcp", init);
  ASSERT_TRUE(opened);
  ASSERT_EQ(opened->status, 200) << opened->body;
  const std::string sid(opened->header_or_empty("Mcp-Session-Id"));
  ASSERT_FALSE(sid.empty());
  const header_list session = {{"Mcp-Session-Id", sid}};
  const std::string echo = call("1", "echo", R"({"text":"x"})");
  auto at_b = post("/servers/b/mcp", call("1", "read_file", R"({"path":"x"})"), session);
  ASSERT_TRUE(at_b);
  EXPECT_EQ(at_b->status, 404) << at_b->body;
  EXPECT_TRUE(contains(at_b->body, "on this endpoint")) << at_b->body;
  EXPECT_EQ(call_count(*b_), 0u);
  auto at_a = post("/servers/a/mcp", echo, session);
  ASSERT_TRUE(at_a);
  EXPECT_EQ(at_a->status, 200) << at_a->body;
  EXPECT_EQ(json(at_a->body).str("/result/content/0/text"), "x") << at_a->body;
  EXPECT_EQ(call_count(*a_), 1u);
}

// Every spelling gets its documented answer, and none reaches the other server.
TEST_F(servers, PathSpellingsNeverReachAnotherServer) {
  ASSERT_NO_FATAL_FAILURE(start({"--shards", "2"}));
  struct spelling {
    std::string target;
    int status;
    int code;  // JSON-RPC error code of Sluice's own answer; 0: decided by a's policy
  };
  const std::vector<spelling> spellings = {
      {"/servers/a/../b/mcp", 400, -32041},
      {"/servers/a/%2e%2e/b/mcp", 400, -32041},
      {"/servers/a/%2E%2e/b/mcp", 400, -32041},
      {"/servers/a/.%2E/b/mcp", 400, -32041},
      {"/servers/a/./mcp", 400, -32041},
      {"/servers/a%2F..%2Fb/mcp", 400, -32041},
      {"/servers/a%2f..%2fb/mcp", 400, -32041},
      {"/servers/a%5C..%5Cb/mcp", 400, -32041},
      {"/servers/a/%zz/mcp", 400, -32041},
      {"/servers/A/mcp", 404, -32040},
      {"/servers/a/mcp/", 404, -32040},
      {"//servers/a/mcp", 404, -32040},
      {"/servers//a/mcp", 404, -32040},
      {"/servers/a%20/mcp", 404, -32040},
      {"/mcp", 404, -32040},  // no top-level policy: the top-level endpoints are not served
      {"/servers/%61/mcp", 200, 0},
      {"/servers/a/mcp?next=/servers/b/mcp", 200, 0},
  };
  for (const spelling& s : spellings) {
    // delete_bucket: b would run it, a denies it.
    auto r = post(s.target, call("1", "delete_bucket", R"({"bucket":"x"})"));
    ASSERT_TRUE(r) << s.target;
    EXPECT_EQ(r->status, s.status) << s.target << ": " << r->body;
    json j(r->body);
    if (s.code != 0) {
      EXPECT_EQ(j.num("/error/code"), s.code) << s.target << ": " << r->body;
      EXPECT_EQ(r->header_or_empty("Content-Type"), "application/json") << s.target;
    } else {
      EXPECT_TRUE(contains(r->body, "a: deleting is not allowed")) << s.target << ": " << r->body;
    }
  }
  EXPECT_EQ(call_count(*a_), 0u) << calls(*a_);
  EXPECT_EQ(call_count(*b_), 0u) << calls(*b_);
}

TEST_F(servers, TopLevelUpstreamKeepsItsPathBesideServers) {
  auto top = start_example();
  ASSERT_TRUE(top);
  ASSERT_NO_FATAL_FAILURE(
      start({"--shards", "2", "--policy", binary_path("POLICY_DIR") + "/allow_all.json",
             "--upstream", url(*top)}));
  auto r = post("/mcp", call("1", "delete_bucket", R"({"bucket":"x"})"));
  ASSERT_TRUE(r);
  EXPECT_TRUE(contains(r->body, "ran delete_bucket")) << r->body;
  EXPECT_EQ(call_count(*top), 1u);
  EXPECT_EQ(call_count(*a_), 0u);
  EXPECT_EQ(call_count(*b_), 0u);
  auto ra = post("/servers/a/mcp", call("2", "delete_bucket", R"({"bucket":"x"})"));
  ASSERT_TRUE(ra);
  EXPECT_TRUE(contains(ra->body, "a: deleting is not allowed")) << ra->body;
}

TEST_F(servers, ReloadReloadsEveryServersPolicyAllOrNothing) {
  ASSERT_NO_FATAL_FAILURE(start({"--shards", "2"}));
  auto before = post("/servers/b/mcp", call("1", "list_buckets", "{}"));
  ASSERT_TRUE(before);
  EXPECT_TRUE(contains(before->body, "ran list_buckets")) << before->body;
  // A broken a.json: nothing is published, b's new file included.
  dir_.write("a.json", "{ broken");
  dir_.write("b.json", R"({"version": "1", "default": "deny"})");
  ASSERT_TRUE(sluice_->wait_for_stderr("failed, keeping version 1", kLong))
      << sluice_->stderr_text();
  auto kept = post("/servers/b/mcp", call("2", "list_buckets", "{}"));
  ASSERT_TRUE(kept);
  EXPECT_TRUE(contains(kept->body, "ran list_buckets")) << kept->body;
  // Both good: both published together, as one version.
  dir_.write("a.json", kPolicyA);
  ASSERT_TRUE(sluice_->wait_for_stderr("policy reloaded", kLong)) << sluice_->stderr_text();
  auto denied = post("/servers/b/mcp", call("3", "list_buckets", "{}"));
  ASSERT_TRUE(denied);
  EXPECT_TRUE(contains(denied->body, "\"sluice/decision\":\"deny\"")) << denied->body;
  auto a_still = post("/servers/a/mcp", call("4", "list_buckets", "{}"));
  ASSERT_TRUE(a_still);
  EXPECT_TRUE(contains(a_still->body, "ran list_buckets")) << a_still->body;
}

TEST_F(servers, AuditLinesAndMetricsNameTheServer) {
  const std::string audit = dir_.path() + "/audit.jsonl";
  const std::string token = dir_.write("admin.token", "t0ken\n");
  ASSERT_NO_FATAL_FAILURE(start({"--shards", "2", "--audit-log", audit, "--admin", "127.0.0.1:0",
                                 "--admin-token-file", token}));
  auto r = post("/servers/a/mcp", call("1", "delete_bucket", R"({"bucket":"x"})"));
  ASSERT_TRUE(r);
  auto rb = post("/servers/b/mcp", call("2", "delete_bucket", R"({"bucket":"x"})"));
  ASSERT_TRUE(rb);

  const std::string out = sluice_->stdout_text();
  const size_t at = out.find("sluice admin on 127.0.0.1:");
  ASSERT_NE(at, std::string::npos) << out;
  http_client admin(static_cast<uint16_t>(std::atoi(out.c_str() + at + 26)));
  auto metrics = admin.request("GET", "/metrics", {}, {{"Authorization", "Bearer t0ken"}}, kLong);
  ASSERT_TRUE(metrics);
  EXPECT_TRUE(contains(
      metrics->body, R"(sluice_decisions_total{server="a",tool="delete_bucket",verdict="deny"} 1)"))
      << metrics->body;
  EXPECT_TRUE(
      contains(metrics->body,
               R"(sluice_decisions_total{server="b",tool="delete_bucket",verdict="allow"} 1)"))
      << metrics->body;

  ASSERT_EQ(sluice_->terminate(kLong), 0);  // the audit rings are written out on the way out
  std::ifstream in(audit);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_TRUE(contains(text.str(), R"("server":"a","grant":"anonymous")")) << text.str();
  EXPECT_TRUE(contains(text.str(), R"("server":"b","grant":"anonymous")")) << text.str();
  EXPECT_TRUE(contains(text.str(), R"("tool":"delete_bucket")")) << text.str();
}

TEST(servers_config, BadServerEntriesExit2WithTheirPointer) {
  temp_dir dir;
  struct bad {
    std::string servers, message;
  };
  const std::vector<bad> cases = {
      {R"({"a/b": {"policy": "p.json", "upstream": "http://127.0.0.1:1/mcp"}})",
       "/servers/a/b: a server name is made of"},
      {R"({"a": {"upstream": "http://127.0.0.1:1/mcp"}})", "/servers/a/policy: required"},
      {R"({"a": {"policy": "p.json"}})", "/servers/a: give upstream or upstream_command"},
      {R"({"a": {"policy": "p.json", "url": "x"}})", "/servers/a/url: unknown setting"},
      {R"({"a": {"policy": "p.json", "upstream": "http://127.0.0.1:1/mcp"},
           "a": {"policy": "q.json", "upstream": "http://127.0.0.1:2/mcp"}})",
       "/servers/a: a second server of this name"},
  };
  for (const bad& c : cases) {
    const std::string file = dir.write("c.json", R"({"servers": )" + c.servers + "}");
    const run_result r = run(binary_path("SLUICE_BIN"), {"serve", "--config", file}, kLong);
    EXPECT_EQ(r.exit, 2) << c.servers << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, c.message)) << r.err;
  }
}

// ---------------------------------------------------------------------------------------------
// stdio upstreams behind a server name, and the idle timeout

constexpr std::string_view kInitialize =
    R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",)"
    R"("capabilities":{},"clientInfo":{"name":"t","version":"1"}}})";

TEST_F(servers, IdleStdioSessionIsStoppedAndItsIdThenGets404) {
  if (node().empty()) GTEST_SKIP() << "node is missing";
  const std::string fixture =
      binary_path("SLUICE_SOURCE_ROOT") + "/tests/integration/fixtures/mcp_fixture_server.mjs";
  ASSERT_NO_FATAL_FAILURE(start({"--shards", "1", "--stdio-idle-timeout-ms", "1000"},
                                R"("fs": {"upstream_command": ")" + node() + " " + fixture +
                                    R"( --stdio", "policy": "a.json"})"));
  auto init = post("/servers/fs/mcp", kInitialize);
  ASSERT_TRUE(init);
  ASSERT_EQ(init->status, 200) << init->body;
  const std::string sid(init->header_or_empty("Mcp-Session-Id"));
  ASSERT_FALSE(sid.empty());
  // Its process, as Sluice logged it.
  const std::string tail = " started for session " + sid.substr(0, 8);
  ASSERT_TRUE(sluice_->wait_for_stderr(tail, kLong));
  std::string err = sluice_->stderr_text();
  const size_t at = err.find(tail);
  const size_t start = err.rfind("upstream process ", at) + 17;
  const pid_t child = static_cast<pid_t>(std::stol(err.substr(start, at - start)));
  ASSERT_GT(child, 0);
  auto ping = post("/servers/fs/mcp", R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})",
                   {{"Mcp-Session-Id", sid}});
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->status, 200) << ping->body;

  // No request for 1 s: stopped the spec's way (stdin closed; the fixture exits on EOF).
  ASSERT_TRUE(sluice_->wait_for_stderr("session " + sid.substr(0, 8) + "… idle for 1000 ms", kLong))
      << sluice_->stderr_text();
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    gone = ::kill(child, 0) != 0;  // reaped by Sluice: no such process any more
    if (!gone) (void)sluice_->wait_for_stderr("never printed", 50ms);
  }
  EXPECT_TRUE(gone) << "the idle session's process is still running";
  auto after = post("/servers/fs/mcp", R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})",
                    {{"Mcp-Session-Id", sid}});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 404) << after->body;
  // The client starts over: a new session, a new process.
  auto again = post("/servers/fs/mcp", kInitialize);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
  EXPECT_NE(again->header_or_empty("Mcp-Session-Id"), sid);
}

// One stdio session through `sluice serve --shards 1` in front of the fixture server.
class stdio_lines : public ::testing::Test {
 protected:
  void SetUp() override {
    if (node().empty()) GTEST_SKIP() << "node is missing";
  }

  // Starts sluice (an allow-all policy, plus `extra` flags) and initializes a session.
  void start(std::vector<std::string> extra = {}, std::string shards = "1") {
    const std::string policy = dir_.write("p.json", R"({"version": "1", "default": "allow"})");
    const std::string fixture =
        binary_path("SLUICE_SOURCE_ROOT") + "/tests/integration/fixtures/mcp_fixture_server.mjs";
    std::vector<std::string> args = {"serve",
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--shards",
                                     shards,
                                     "--policy",
                                     policy,
                                     "--upstream-command",
                                     node() + " " + fixture + " --stdio"};
    args.insert(args.end(), extra.begin(), extra.end());
    process::options opts;
    opts.capture_stderr = true;
    sluice_ = process::spawn(binary_path("SLUICE_BIN"), args, opts);
    ASSERT_TRUE(sluice_);
    ASSERT_TRUE(wait_sluice_ready(*sluice_, port_, kLong)) << sluice_->stderr_text();
    ASSERT_TRUE(c_.connect(port_));
    auto init = mcp_post(c_, kInitialize, {}, kLong);
    ASSERT_TRUE(init);
    ASSERT_EQ(init->status, 200) << init->body;
    sid_ = init->header_or_empty("Mcp-Session-Id");
  }

  void TearDown() override {
    if (sluice_) {
      EXPECT_EQ(sluice_->terminate(kLong), 0) << sluice_->stderr_text();
    }
  }

  // Through c, asks the session's server for 64 MiB of notifications, written as fast as its
  // stdout is read, and does not read: the server's writes must stall long before the end.
  // Then reads: everything must arrive.
  void expect_flood_held(http_client& c) {
    constexpr int kCount = 1024;  // 64 MiB
    ASSERT_TRUE(
        c.send_request("POST", "/mcp",
                       R"({"jsonrpc":"2.0","id":2,"method":"fixture/flood","params":{"count":)" +
                           std::to_string(kCount) + "}}",
                       mcp_headers({{"Mcp-Session-Id", sid_}})));
    auto head = c.read_head(kLong);
    ASSERT_TRUE(head);
    EXPECT_EQ(head->status, 200);
    // The server says how far it got; wait until it has said nothing new for a second.
    auto progress = [&] {
      const std::string err = sluice_->stderr_text();
      return std::count(err.begin(), err.end(), '\n');
    };
    const auto deadline = std::chrono::steady_clock::now() + kLong;
    for (auto seen = progress(); std::chrono::steady_clock::now() < deadline;) {
      ASSERT_FALSE(sluice_->wait_for_stderr("flood: done", std::chrono::milliseconds(1000)))
          << "Sluice took the whole answer its client did not read";
      const auto now = progress();
      if (now == seen) break;
      seen = now;
    }
    int events = 0;
    bool answered = false;
    while (auto e = c.next_event(kLong)) {
      ++events;
      answered = answered || contains(e->data, R"("id":2,"result")");
    }
    EXPECT_EQ(events, kCount + 1);
    EXPECT_TRUE(answered);
    EXPECT_TRUE(sluice_->wait_for_stderr("flood: done", kLong));
  }

  temp_dir dir_;
  std::unique_ptr<process> sluice_;
  uint16_t port_ = 0;
  http_client c_;
  std::string sid_;
};

// A stdio server's answer on one long stdout line (8 MiB, read in many pieces) arrives whole.
TEST_F(stdio_lines, LongLineArrivesWhole) {
  ASSERT_NO_FATAL_FAILURE(start());
  constexpr size_t kSize = size_t(8) << 20;
  auto big = mcp_post(c_,
                      R"({"jsonrpc":"2.0","id":2,"method":"fixture/big","params":{"size":)" +
                          std::to_string(kSize) + "}}",
                      {{"Mcp-Session-Id", sid_}}, kLong);
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 200);
  EXPECT_EQ(size_t(std::count(big->body.begin(), big->body.end(), 'z')), kSize);
  EXPECT_TRUE(contains(big->body, R"("id":2,"result":{"text":"zzz)"));
}

// An agent that does not read the answer of a stdio server that writes 64 MiB of notifications
// (as fast as its stdout is read) holds the server back: with 64 KiB allowed in Sluice's queue
// the server's writes stall long before the end; when the agent reads, everything arrives.
TEST_F(stdio_lines, SlowReaderHoldsBackTheServer) {
  ASSERT_NO_FATAL_FAILURE(start({"--max-output-bytes", "65536"}));
  expect_flood_held(c_);
}

// The same from a connection on the other shard than the session's process: the hold crosses
// the shards' hub to the owner.
TEST_F(stdio_lines, SlowReaderOnAnotherShardHoldsBackTheServer) {
  ASSERT_NO_FATAL_FAILURE(start({"--max-output-bytes", "65536"}, "2"));
  const std::string owner = sid_.substr(sid_.rfind('-') + 1);
  // A session id names the shard that minted it: initialize on new connections until one is
  // served by the other shard (each is, with probability one half).
  http_client other;
  for (int i = 0; i < 64 && !other.connected(); ++i) {
    http_client probe(port_);
    auto init = mcp_post(probe, kInitialize, {}, kLong);
    ASSERT_TRUE(init);
    const std::string sid(init->header_or_empty("Mcp-Session-Id"));
    if (sid.substr(sid.rfind('-') + 1) != owner) other = std::move(probe);
  }
  ASSERT_TRUE(other.connected()) << "64 connections all landed on shard " << owner;
  expect_flood_held(other);
}

// ---------------------------------------------------------------------------------------------
// stdio sessions across shards: any shard decides a session's call (once), the shard that owns
// the session's process forwards it.

TEST(stdio_shards, SessionServedFromEveryShardAndDecidedOnce) {
  if (node().empty()) GTEST_SKIP() << "node is missing";
  temp_dir dir;
  const std::string policy = dir.write("p.json",
                                       R"({"version": "1", "default": "allow",
          "tools": {"t": {"limits": [{"counter": "c", "window": "day", "max": 5}]}}})");
  const std::string audit = dir.path() + "/audit.jsonl";
  const std::string fixture =
      binary_path("SLUICE_SOURCE_ROOT") + "/tests/integration/fixtures/mcp_fixture_server.mjs";
  process::options opts;
  opts.capture_stderr = true;
  auto sluice = process::spawn(
      binary_path("SLUICE_BIN"),
      {"serve", "--listen", "127.0.0.1:0", "--shards", "2", "--policy", policy, "--audit-log",
       audit, "--upstream-command", node() + " " + fixture + " --stdio"},
      opts);
  ASSERT_TRUE(sluice);
  uint16_t port = 0;
  ASSERT_TRUE(wait_sluice_ready(*sluice, port, kLong)) << sluice->stderr_text();
  EXPECT_TRUE(contains(sluice->stdout_text(), "(2 shards")) << sluice->stdout_text();

  http_client first(port);
  auto init = mcp_post(first, kInitialize, {}, kLong);
  ASSERT_TRUE(init);
  ASSERT_EQ(init->status, 200) << init->body;
  const std::string sid(init->header_or_empty("Mcp-Session-Id"));
  ASSERT_GT(sid.size(), 2u);
  const std::string_view minted = upstream_session_id(sid);  // Sluice's tag off
  const std::string owner(minted.substr(minted.rfind('-') + 1));
  ASSERT_TRUE(owner == "0" || owner == "1") << sid;

  // Many connections, one session: the kernel spreads them over both shards.
  const int64_t day = static_cast<int64_t>(std::time(nullptr)) / 86400;
  std::vector<http_client> conns;
  for (int i = 0; i < 16; ++i)
    conns.emplace_back(port);
  int allowed = 0, limited = 0;
  for (size_t i = 0; i < conns.size(); ++i) {
    const std::string id = std::to_string(100 + i);
    auto list = mcp_post(conns[i], R"({"jsonrpc":"2.0","id":)" + id + R"(,"method":"tools/list"})",
                         {{"Mcp-Session-Id", sid}}, kLong);
    ASSERT_TRUE(list) << i;
    EXPECT_EQ(list->status, 200) << i << ": " << list->body;
    EXPECT_TRUE(contains(list->body, R"("id":)" + id + R"(,"result":{"tools":[)")) << list->body;
    auto r = mcp_post(conns[i], call(std::to_string(200 + i), "t", "{}"), {{"Mcp-Session-Id", sid}},
                      kLong);
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->status, 200) << r->body;
    if (contains(r->body, R"("id":)" + std::to_string(200 + i) + R"(,"error":{"code":-32601)")) {
      ++allowed;  // the fixture answers tools/call with "no such method": it got the call
    } else if (contains(r->body, "\"sluice/decision\":\"rate_limited\"")) {
      ++limited;
    } else {
      ADD_FAILURE() << r->body;
    }
  }
  if (static_cast<int64_t>(std::time(nullptr)) / 86400 == day) {
    EXPECT_EQ(allowed, 5);  // counted once, on the shard that decided, wherever the process is
    EXPECT_EQ(limited, 11);
  }

  // A forged id naming the other shard, or no shard, is refused: 404 (Sluice handed none of
  // them out, so none carries a tag that holds).
  const std::string other =
      std::string(minted.substr(0, minted.rfind('-') + 1)) + (owner == "0" ? "1" : "0");
  for (const std::string& forged : {other, std::string("0123456789abcdef-0"),
                                    std::string("0123456789abcdef-1"), std::string("x-99")}) {
    for (size_t i = 0; i < 4; ++i) {
      auto r = mcp_post(conns[i], R"({"jsonrpc":"2.0","id":1,"method":"ping"})",
                        {{"Mcp-Session-Id", forged}}, kLong);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 404) << forged << ": " << r->body;
    }
  }

  // The session's GET stream, opened from one connection: one per session, from any shard.
  const header_list get_headers = {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", sid}};
  ASSERT_TRUE(conns[0].send_request("GET", "/mcp", {}, get_headers));
  auto stream = conns[0].read_head(kLong);
  ASSERT_TRUE(stream);
  EXPECT_EQ(stream->status, 200);
  EXPECT_EQ(stream->header_or_empty("Content-Type"), "text/event-stream");
  for (size_t i = 1; i < 6; ++i) {
    auto second = conns[i].request("GET", "/mcp", {}, get_headers, kLong);
    ASSERT_TRUE(second);
    EXPECT_EQ(second->status, 409) << i << ": " << second->body;
  }

  // DELETE from whichever shard: the owner ends the session (and its GET stream); afterwards
  // 404 everywhere.
  auto del = conns[5].request("DELETE", "/mcp", {}, {{"Mcp-Session-Id", sid}}, kLong);
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200);
  EXPECT_FALSE(conns[0].next_event(kLong).has_value());
  EXPECT_TRUE(conns[0].body_complete());
  for (size_t i = 1; i < conns.size(); ++i) {
    auto r = mcp_post(conns[i], R"({"jsonrpc":"2.0","id":1,"method":"ping"})",
                      {{"Mcp-Session-Id", sid}}, kLong);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404) << i << ": " << r->body;
  }
  ASSERT_EQ(sluice->terminate(kLong), 0) << sluice->stderr_text();

  // The audit log says which shard decided each call: both did, for one session.
  std::ifstream in(audit);
  std::string line;
  std::set<std::string> shards;
  int calls = 0;
  while (std::getline(in, line)) {
    if (!contains(line, "\"session\":\"" + std::string(minted) + "\"") ||
        !contains(line, R"("tool":"t")"))
      continue;
    ++calls;
    shards.insert(line.substr(line.find("\"shard\":") + 8, 1));
  }
  EXPECT_EQ(calls, 16);  // one decision per call: the owner never decides again
  EXPECT_EQ(shards.size(), 2u) << "every connection landed on one shard; nothing was relayed";
}

}  // namespace
}  // namespace sluice::testing
