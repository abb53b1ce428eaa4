// Interop with code nobody on this team wrote: the official TypeScript SDK client
// (@modelcontextprotocol/sdk) talks to @modelcontextprotocol/server-everything through
// `sluice serve`, with server-everything as a Streamable HTTP upstream and as a stdio
// process that Sluice starts. The client side is tests/integration/interop/sdk_client.mjs;
// each test runs one of its scenarios and expects every check to say "ok".

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace {

using namespace std::chrono_literals;
using sluice::testing::binary_path;
using sluice::testing::node;
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
  std::vector<std::string> args = {"serve",       "--policy", policy, "--listen",
                                   "127.0.0.1:0", "--shards", "2"};
  if (kind == "http") {
    g->upstream = process::spawn(
        node(),
        {source_root() + "/tests/integration/fixtures/everything_http.mjs", node_modules()});
    if (!g->upstream || !g->upstream->wait_ready(kNodeTimeout)) return nullptr;
    args.push_back("--upstream");
    args.push_back("http://127.0.0.1:" + std::to_string(g->upstream->port()) + "/mcp");
  } else {
    // Two shards: a session's requests reach whichever shard the client's connection landed
    // on, and are handed to the shard that runs its process (net/stdio_relay.h).
    args.push_back("--upstream-command");
    args.push_back(node() + " " + everything_dir() + "/index.js stdio");
  }
  g->sluice = process::spawn(binary_path("SLUICE_BIN"), args);
  if (!g->sluice || !g->sluice->wait_ready()) return nullptr;
  g->url = "http://127.0.0.1:" + std::to_string(g->sluice->port()) + "/mcp";
  return g;
}

// One gateway per kind, and one run of every scenario of sdk_client.mjs against it (one node
// process: the suite stays fast); each test reads its scenario's lines.
struct suite_run {
  std::unique_ptr<gateway_pair> gateway;
  std::string out;  // the client's stdout and stderr
};

class Interop : public ::testing::TestWithParam<std::string> {
 protected:
  static void TearDownTestSuite() {
    for (auto& [kind, run] : runs()) {
      // Stopped as an operator would: Sluice stops its stdio servers on the way out.
      if (run.gateway && run.gateway->sluice) (void)run.gateway->sluice->terminate(kNodeTimeout);
    }
    runs().clear();
  }
  static std::map<std::string, suite_run>& runs() {
    static std::map<std::string, suite_run> r;
    return r;
  }

  void SetUp() override {
    if (!have_node_deps())
      GTEST_SKIP() << "node or node_modules missing: run tools/install-deps.sh";
    auto it = runs().find(GetParam());
    if (it == runs().end()) {
      suite_run run;
      run.gateway = start(GetParam(), binary_path("POLICY_DIR") + "/interop.json");
      ASSERT_NE(run.gateway, nullptr) << "could not start the gateway and server-everything";
      const auto r = sluice::testing::run(
          node(), {source_root() + "/tests/integration/interop/sdk_client.mjs", run.gateway->url},
          kNodeTimeout);
      run.out = r.out + r.err;
      if (!r.exit) run.out += "\n(timed out)";
      it = runs().emplace(GetParam(), std::move(run)).first;
    }
    out_ = &it->second.out;
  }

  // Every check of the scenario passed.
  void scenario(const std::string& name) {
    EXPECT_NE(out_->find("scenario " + name + ": passed"), std::string::npos) << *out_;
  }

  const std::string* out_ = nullptr;
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
TEST_P(Interop, ProtocolRevisionsBatchesAndMethodHeaders) {
  scenario("revisions");
}

INSTANTIATE_TEST_SUITE_P(ServerEverything, Interop, ::testing::Values("http", "stdio"),
                         [](const auto& info) { return info.param; });

// The SDK client keeps a GET stream open for each session. With one upstream connection for
// calls on one shard, four SDK sessions hold four streams at the gateway and each session's call
// is still answered (sdk_client.mjs, scenario streams): streams have connections of their own.
TEST(InteropStreams, OpenSessionStreamsDoNotStarveCalls) {
  if (!have_node_deps()) GTEST_SKIP() << "node or node_modules missing: run tools/install-deps.sh";
  auto upstream = process::spawn(
      node(), {source_root() + "/tests/integration/fixtures/everything_http.mjs", node_modules()});
  ASSERT_TRUE(upstream && upstream->wait_ready(kNodeTimeout));
  constexpr std::string_view kToken = "interop-admin-token";
  sluice::testing::temp_file token_file(std::string(kToken) + "\n");
  ASSERT_FALSE(token_file.path().empty());
  auto sluice = process::spawn(
      binary_path("SLUICE_BIN"),
      {"serve", "--policy", binary_path("POLICY_DIR") + "/interop.json", "--listen", "127.0.0.1:0",
       "--shards", "1", "--upstream",
       "http://127.0.0.1:" + std::to_string(upstream->port()) + "/mcp", "--upstream-connections",
       "1", "--admin", "127.0.0.1:0", "--admin-token-file", token_file.path()});
  ASSERT_TRUE(sluice && sluice->wait_for_stdout(")\n", kNodeTimeout));
  const std::string out = sluice->stdout_text();
  const uint16_t port = sluice::testing::port_after(out, " listening on ");
  const uint16_t admin = sluice::testing::port_after(out, "sluice admin on ");
  ASSERT_NE(port, 0) << out;
  ASSERT_NE(admin, 0) << out;
  ::setenv("SLUICE_ADMIN_URL", ("http://127.0.0.1:" + std::to_string(admin)).c_str(), 1);
  ::setenv("SLUICE_ADMIN_TOKEN", std::string(kToken).c_str(), 1);
  const auto r =
      sluice::testing::run(node(),
                           {source_root() + "/tests/integration/interop/sdk_client.mjs",
                            "http://127.0.0.1:" + std::to_string(port) + "/mcp", "streams"},
                           kNodeTimeout);
  ::unsetenv("SLUICE_ADMIN_URL");
  ::unsetenv("SLUICE_ADMIN_TOKEN");
  EXPECT_NE(r.out.find("scenario streams: passed"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(sluice->terminate(kNodeTimeout), 0);
}

// ---------------------------------------------------------------------------------------------
// stdio upstreams: what only a process that Sluice runs can do.

using sluice::testing::header_list;
using sluice::testing::http_client;
using sluice::testing::mcp_post;

constexpr std::string_view kInitialize =
    R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",)"
    R"("capabilities":{},"clientInfo":{"name":"t","version":"1"}}})";

// The pid in the first "upstream process PID started for session ID…" line about sid.
pid_t child_of(const process& sluice, const std::string& sid) {
  const std::string err = sluice.stderr_text();
  const std::string tail = " started for session " + sid.substr(0, 8);
  const size_t at = err.find(tail);
  if (at == std::string::npos) return -1;
  const size_t start =
      err.rfind("upstream process ", at) + std::string_view("upstream process ").size();
  return static_cast<pid_t>(std::stol(err.substr(start, at - start)));
}

struct stdio_gateway {
  std::unique_ptr<process> sluice;
  uint16_t port = 0;
};

stdio_gateway start_stdio(const std::string& command) {
  stdio_gateway g;
  process::options o;
  o.capture_stderr = true;
  g.sluice =
      process::spawn(binary_path("SLUICE_BIN"),
                     {"serve", "--policy", binary_path("POLICY_DIR") + "/allow_all.json",
                      "--listen", "127.0.0.1:0", "--shards", "1", "--upstream-command", command},
                     o);
  if (g.sluice && g.sluice->wait_ready()) g.port = g.sluice->port();
  return g;
}

std::string initialize(http_client& c) {
  auto init = mcp_post(c, kInitialize, {}, kNodeTimeout);
  if (!init || init->status != 200) return "";
  const std::string sid(init->header_or_empty("Mcp-Session-Id"));
  auto note = mcp_post(c, R"({"jsonrpc":"2.0","method":"notifications/initialized"})",
                       {{"Mcp-Session-Id", sid}}, kNodeTimeout);
  return note && note->status == 202 ? sid : "";
}

TEST(StdioUpstream, CrashFailsInFlightCallCleanlyAndRestartsTheSession) {
  if (!have_node_deps()) GTEST_SKIP() << "node or node_modules missing: run tools/install-deps.sh";
  auto g = start_stdio(node() + " " + everything_dir() + "/index.js stdio");
  ASSERT_NE(g.port, 0);
  http_client c(g.port);
  const std::string sid = initialize(c);
  ASSERT_FALSE(sid.empty()) << g.sluice->stderr_text();
  const pid_t first = child_of(*g.sluice, sid);
  ASSERT_GT(first, 0) << g.sluice->stderr_text();

  // A long call with progress: its stream is open when the process dies.
  ASSERT_TRUE(c.send_request(
      "POST", "/mcp",
      R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"trigger-long-running-operation",)"
      R"("arguments":{"duration":30,"steps":300},"_meta":{"progressToken":"p7"}}})",
      sluice::testing::mcp_headers({{"Mcp-Session-Id", sid}})));
  auto head = c.read_head(kNodeTimeout);
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header_or_empty("Content-Type"), "text/event-stream");
  // Its first progress notification (server-everything may log before it).
  bool progressed = false;
  for (int i = 0; i < 20 && !progressed; ++i) {
    auto e = c.next_event(kNodeTimeout);
    ASSERT_TRUE(e.has_value());
    progressed = e->data.find(R"("progressToken":"p7")") != std::string::npos;
  }
  ASSERT_TRUE(progressed);
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  std::string last;
  while (auto e = c.next_event(kNodeTimeout))
    last = e->data;
  EXPECT_NE(last.find(R"("id":7,"error":{"code":-32030)"), std::string::npos) << last;
  EXPECT_NE(last.find("exited"), std::string::npos) << last;

  // Restarted with backoff and initialized again: the same session goes on.
  ASSERT_TRUE(g.sluice->wait_for_stderr("restarting it in", kNodeTimeout));
  const std::string restarted = "session " + sid.substr(0, 8) + "… restarted (process ";
  ASSERT_TRUE(g.sluice->wait_for_stderr(restarted, kNodeTimeout)) << g.sluice->stderr_text();
  const std::string err = g.sluice->stderr_text();
  const pid_t second =
      static_cast<pid_t>(std::stol(err.substr(err.find(restarted) + restarted.size())));
  EXPECT_NE(second, first);
  http_client c2(g.port);
  auto echo =
      mcp_post(c2,
               R"({"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo",)"
               R"("arguments":{"message":"after restart"}}})",
               {{"Mcp-Session-Id", sid}, {"MCP-Protocol-Version", "2025-06-18"}}, kNodeTimeout);
  ASSERT_TRUE(echo.has_value());
  EXPECT_EQ(echo->status, 200);
  EXPECT_NE(echo->body.find("Echo: after restart"), std::string::npos) << echo->body;

  EXPECT_EQ(g.sluice->terminate(kNodeTimeout), 0);
}

TEST(StdioUpstream, UnknownSessionIs404AndDeleteEndsTheProcess) {
  if (!have_node_deps()) GTEST_SKIP() << "node or node_modules missing: run tools/install-deps.sh";
  auto g = start_stdio(node() + " " + source_root() +
                       "/tests/integration/fixtures/mcp_fixture_server.mjs --stdio");
  ASSERT_NE(g.port, 0);
  http_client c(g.port);
  auto orphan = mcp_post(c, R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})",
                         {{"Mcp-Session-Id", "no-such-session"}}, kNodeTimeout);
  ASSERT_TRUE(orphan.has_value());
  EXPECT_EQ(orphan->status, 404);
  auto no_session =
      mcp_post(c, R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})", {}, kNodeTimeout);
  ASSERT_TRUE(no_session.has_value());
  EXPECT_EQ(no_session->status, 400);

  const std::string sid = initialize(c);
  ASSERT_FALSE(sid.empty()) << g.sluice->stderr_text();
  const pid_t child = child_of(*g.sluice, sid);
  ASSERT_GT(child, 0);
  auto list = mcp_post(c, R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})",
                       {{"Mcp-Session-Id", sid}}, kNodeTimeout);
  ASSERT_TRUE(list.has_value());
  EXPECT_EQ(list->status, 200);
  // The fixture logs before it answers: both relayed, in order, as events of the POST's stream.
  EXPECT_EQ(list->header_or_empty("Content-Type"), "text/event-stream");
  const auto events = sluice::testing::parse_sse(list->body);
  ASSERT_EQ(events.size(), 2u) << list->body;
  EXPECT_NE(events[0].data.find("fixture says hi"), std::string::npos) << list->body;
  EXPECT_NE(events[1].data.find("fetch_report"), std::string::npos) << list->body;

  // DELETE: stdin is closed and the fixture exits on EOF, well before any signal.
  auto del = c.request("DELETE", "/mcp", {}, {{"Mcp-Session-Id", sid}}, kNodeTimeout);
  ASSERT_TRUE(del.has_value());
  EXPECT_EQ(del->status, 200);
  auto after = mcp_post(c, R"({"jsonrpc":"2.0","id":3,"method":"tools/list"})",
                        {{"Mcp-Session-Id", sid}}, kNodeTimeout);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->status, 404);
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = ::kill(child, 0) != 0;
    if (!gone) (void)g.sluice->wait_for_stderr("never printed", 50ms);
  }
  EXPECT_TRUE(gone) << "the upstream process outlived its session";
  EXPECT_EQ(g.sluice->terminate(kNodeTimeout), 0);
}

// ---------------------------------------------------------------------------------------------
// A server built the way the SDK's own examples build one (fixtures/sdk_express_server.mjs:
// createMcpExpressApp, whose express.json() decodes a body in whatever charset the request's
// Content-Type names). In UTF-7 "+AC8-" is "/": without the charset check the server read
// "/etc/passwd" from a call Sluice had allowed as "+AC8-etc/passwd".
class SdkExpressUpstream : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_node_deps() || access((node_modules() + "/express/package.json").c_str(), R_OK) != 0)
      GTEST_SKIP() << "node or node_modules missing: run tools/install-deps.sh";
    upstream = process::spawn(
        node(), {source_root() + "/tests/integration/fixtures/sdk_express_server.mjs"});
    ASSERT_TRUE(upstream && upstream->wait_ready(kNodeTimeout));
  }
  std::unique_ptr<process> upstream;
};

TEST_F(SdkExpressUpstream, NoCharsetMakesTheServerReadAnotherCall) {
  auto sluice = process::spawn(binary_path("SLUICE_BIN"),
                               {"serve", "--policy", binary_path("POLICY_DIR") + "/gateway.json",
                                "--listen", "127.0.0.1:0", "--shards", "1", "--upstream",
                                "http://127.0.0.1:" + std::to_string(upstream->port()) + "/mcp"});
  ASSERT_TRUE(sluice && sluice->wait_ready());
  http_client c(sluice->port(), kNodeTimeout);
  const std::string call =
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file",)"
      R"("arguments":{"path":"+AC8-etc/passwd"}}})";
  auto post = [&](std::string_view target, const std::string& content_type) {
    return c.request(
        "POST", target, call,
        {{"Content-Type", content_type}, {"Accept", "application/json, text/event-stream"}},
        kNodeTimeout);
  };
  for (const char* ct :
       {"application/json; charset=utf-7", "application/json;charset=\"UTF-7\"",
        "application/json; charset=utf-8; charset=utf-7", "application/json; charset=utf-16le"}) {
    auto r = post("/mcp", ct);
    ASSERT_TRUE(r) << ct;
    EXPECT_EQ(r->status, 415) << ct;
    EXPECT_NE(r->body.find("UTF-8"), std::string::npos) << r->body;
  }
  // The decision service refuses to decide such a body for another proxy.
  auto d = post("/v1/decide", "application/json; charset=utf-7");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, 400);
  EXPECT_NE(d->body.find(R"("decision":"invalid")"), std::string::npos) << d->body;
  // As UTF-8 the same bytes are a harmless path, allowed, and the server reads them as sent.
  auto ok = post("/mcp", "application/json; charset=UTF-8");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_NE(ok->body.find("read +AC8-etc/passwd"), std::string::npos) << ok->body;
  // What reached the server: that one call, with the Content-Type spelled as Sluice decided it.
  http_client u(upstream->port(), kNodeTimeout);
  auto calls = u.request("GET", "/calls");
  ASSERT_TRUE(calls);
  EXPECT_EQ(calls->body, R"([{"path":"+AC8-etc/passwd","contentType":"application/json"}])");
  EXPECT_EQ(sluice->terminate(), 0);
}

// A stateless server (no session ids issued, none checked) behind a session-scoped limit: an
// agent that makes up a new Mcp-Session-Id for each call gets 404 from Sluice, not a new
// count, because only ids Sluice handed out name sessions (net/session_binding.h). Calls
// without a session are one count per grant: another agent's calls do not use it up.
TEST_F(SdkExpressUpstream, InventedSessionIdsDoNotResetASessionLimit) {
  sluice::testing::temp_file policy(
      R"({"version":"1","default":"deny","tools":{"read_file":{"limits":[)"
      R"({"counter":"reads","window":4294967295,"max":2,"scope":"session"}]}}})");
  sluice::testing::temp_file grants(
      R"({"grants":[{"name":"alpha","token_sha256":")" + sluice::testing::hash_token("token-a") +
      R"("},{"name":"beta","token_sha256":")" + sluice::testing::hash_token("token-b") + R"("}]})");
  auto sluice = process::spawn(binary_path("SLUICE_BIN"),
                               {"serve", "--policy", policy.path(), "--listen", "127.0.0.1:0",
                                "--shards", "1", "--grants", grants.path(), "--upstream",
                                "http://127.0.0.1:" + std::to_string(upstream->port()) + "/mcp"});
  ASSERT_TRUE(sluice && sluice->wait_ready());
  http_client c(sluice->port(), kNodeTimeout);
  const header_list alpha = {{"Authorization", "Bearer token-a"}};
  // The server is stateless: initialize opens no session, so Sluice hands out none.
  auto init = mcp_post(c, kInitialize, alpha, kNodeTimeout);
  ASSERT_TRUE(init);
  ASSERT_EQ(init->status, 200) << init->body;
  EXPECT_EQ(init->header_or_empty("Mcp-Session-Id"), "");
  const auto read = [](int i) {
    return R"({"jsonrpc":"2.0","id":)" + std::to_string(i) +
           R"(,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/r/)" +
           std::to_string(i) + R"("}}})";
  };
  for (int i = 1; i <= 3; ++i) {
    header_list h = alpha;
    h.emplace_back("Mcp-Session-Id", "made-up-" + std::to_string(i));
    auto r = mcp_post(c, read(i), h, kNodeTimeout);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404) << r->body;
  }
  // Three sessionless calls per grant, alpha's first: two of each are allowed.
  for (const char* token : {"token-a", "token-b"}) {
    int allowed = 0, limited = 0;
    for (int i = 4; i <= 6; ++i) {
      auto r =
          mcp_post(c, read(i), {{"Authorization", std::string("Bearer ") + token}}, kNodeTimeout);
      ASSERT_TRUE(r);
      ASSERT_EQ(r->status, 200) << r->body;
      if (r->body.find("[POLICY DENIED]") != std::string::npos) {
        ++limited;
      } else {
        ++allowed;
      }
    }
    EXPECT_EQ(allowed, 2) << token;
    EXPECT_EQ(limited, 1) << token;
  }
  http_client u(upstream->port(), kNodeTimeout);
  auto calls = u.request("GET", "/calls");
  ASSERT_TRUE(calls);
  EXPECT_EQ(calls->body, R"([{"path":"/r/4","contentType":"application/json"},)"
                         R"({"path":"/r/5","contentType":"application/json"},)"
                         R"({"path":"/r/4","contentType":"application/json"},)"
                         R"({"path":"/r/5","contentType":"application/json"}])");
  EXPECT_EQ(sluice->terminate(), 0);
}

}  // namespace
