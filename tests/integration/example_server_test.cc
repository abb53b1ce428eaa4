// sluice-example-server end to end: a real process on 127.0.0.1 (port 0), spoken to over TCP.

#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>

#include <set>
#include <string>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/integration/json_doc.h"

namespace sluice::testing {
namespace {

std::string rpc(std::string_view id, std::string_view method, std::string_view params = {}) {
  std::string s = R"({"jsonrpc":"2.0","id":)";
  s.append(id).append(R"(,"method":")").append(method).append("\"");
  if (!params.empty()) s.append(R"(,"params":)").append(params);
  return s + "}";
}

std::string call(std::string_view id, std::string_view tool, std::string_view args) {
  std::string params = R"({"name":")";
  params.append(tool).append(R"(","arguments":)").append(args).append("}");
  return rpc(id, "tools/call", params);
}

const header_list kJsonOnly = {{"Content-Type", "application/json"},
                               {"Accept", "application/json"}};

class example_server : public ::testing::Test {
 protected:
  void SetUp() override { start({}); }

  void start(std::vector<std::string> extra) {
    std::string bin = binary_path("EXAMPLE_SERVER_BIN");
    ASSERT_FALSE(bin.empty()) << "EXAMPLE_SERVER_BIN is not set (run through meson test)";
    std::vector<std::string> args = {"--listen", "127.0.0.1:0"};
    args.insert(args.end(), extra.begin(), extra.end());
    server_ = process::spawn(bin, args);
    ASSERT_TRUE(server_) << "spawn " << bin;
    ASSERT_TRUE(server_->wait_ready()) << "stdout: " << server_->stdout_text();
    port_ = server_->port();
  }

  void restart(std::vector<std::string> extra) {
    ASSERT_EQ(server_->terminate(), 0);
    start(std::move(extra));
  }

  // POST /mcp on a fresh connection.
  std::optional<http_response> post(std::string_view body, const header_list& extra = {}) {
    http_client c(port_);
    return mcp_post(c, body, extra);
  }
  std::optional<http_response> post_json_only(std::string_view body) {
    http_client c(port_);
    return c.request("POST", "/mcp", body, kJsonOnly);
  }

  std::string initialize(std::string_view version = "2025-06-18") {
    std::string params = R"({"protocolVersion":")";
    params.append(version).append(
        R"(","capabilities":{},"clientInfo":{"name":"test","version":"1"}})");
    auto r = post(rpc("1", "initialize", params));
    if (!r || r->status != 200) return {};
    return std::string(r->header_or_empty("Mcp-Session-Id"));
  }

  std::unique_ptr<process> server_;
  uint16_t port_ = 0;
};

TEST_F(example_server, PrintsOneReadinessLineWithTheBoundPort) {
  EXPECT_EQ(server_->ready_line(),
            "sluice-example-server listening on 127.0.0.1:" + std::to_string(port_));
  EXPECT_EQ(server_->stdout_text(), server_->ready_line() + "\n");
}

TEST_F(example_server, InitializeNegotiatesTheVersionAndIssuesASession) {
  auto r = post(rpc("1", "initialize",
                    R"({"protocolVersion":"2025-11-25","capabilities":{},)"
                    R"("clientInfo":{"name":"t","version":"1"}})"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header_or_empty("content-type"), "application/json");
  std::string_view sid = r->header_or_empty("mcp-session-id");
  EXPECT_EQ(sid.size(), 32u);
  EXPECT_EQ(sid.find_first_not_of("0123456789abcdef"), std::string_view::npos) << sid;
  json j(r->body);
  ASSERT_TRUE(j.ok()) << r->body;
  EXPECT_EQ(j.num("/id"), 1);
  EXPECT_EQ(j.str("/result/protocolVersion"), "2025-11-25");
  EXPECT_EQ(j.str("/result/serverInfo/name"), "sluice-example-server");
  EXPECT_TRUE(j.has("/result/serverInfo/version"));
  EXPECT_TRUE(j.has("/result/capabilities/tools"));
  EXPECT_TRUE(j.has("/result/capabilities/resources"));
  EXPECT_TRUE(j.has("/result/capabilities/prompts"));

  for (std::string_view v : {"2025-03-26", "2025-06-18", "2025-11-25"}) {
    auto a = post(
        rpc("2", "initialize",
            std::string(R"({"protocolVersion":")") + std::string(v) + R"(","capabilities":{}})"));
    ASSERT_TRUE(a);
    EXPECT_EQ(json(a->body).str("/result/protocolVersion"), v);
  }
  auto old = post(rpc("3", "initialize", R"({"protocolVersion":"2024-11-05","capabilities":{}})"));
  ASSERT_TRUE(old);
  EXPECT_EQ(json(old->body).str("/result/protocolVersion"), "2025-06-18");

  // Two initializes, two sessions.
  EXPECT_NE(initialize(), initialize());
}

TEST_F(example_server, SessionsAreCheckedAndEndedByDelete) {
  std::string sid = initialize();
  ASSERT_EQ(sid.size(), 32u);
  header_list with_sid = {{"Mcp-Session-Id", sid}};

  auto ok = post(rpc("1", "ping"), with_sid);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);

  // Without a session id: served (load tests skip initialize).
  auto none = post(rpc("2", "ping"));
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 200);

  // An id this server never issued: 404 (the client must re-initialize).
  std::string forged = sid;
  forged[31] = forged[31] == '0' ? '1' : '0';
  auto bad = post(rpc("3", "ping"), {{"Mcp-Session-Id", forged}});
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 404);
  auto junk = post(rpc("3", "ping"), {{"Mcp-Session-Id", "not-a-session"}});
  ASSERT_TRUE(junk);
  EXPECT_EQ(junk->status, 404);

  http_client c(port_);
  auto del = c.request("DELETE", "/mcp", {}, with_sid);
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200);
  auto after = post(rpc("4", "ping"), with_sid);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 404);
  auto again = c.request("DELETE", "/mcp", {}, with_sid);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 404);
  auto no_header = c.request("DELETE", "/mcp");
  ASSERT_TRUE(no_header);
  EXPECT_EQ(no_header->status, 400);
}

TEST_F(example_server, NotificationsAndResponsesGet202WithoutABody) {
  for (std::string_view body : {
           R"({"jsonrpc":"2.0","method":"notifications/initialized"})",
           R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}})",
           R"({"jsonrpc":"2.0","id":7,"result":{}})",
           R"({"jsonrpc":"2.0","id":7,"error":{"code":-1,"message":"no"}})",
       }) {
    auto r = post(body);
    ASSERT_TRUE(r) << body;
    EXPECT_EQ(r->status, 202) << body;
    EXPECT_EQ(r->body, "") << body;
    EXPECT_EQ(r->header_or_empty("Content-Length"), "0");
  }
}

TEST_F(example_server, PingAnswersAnEmptyResult) {
  auto r = post(rpc(R"("p-1")", "ping"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, R"({"jsonrpc":"2.0","id":"p-1","result":{}})");
}

TEST_F(example_server, ToolsListDescribesEveryTool) {
  auto r = post(rpc("1", "tools/list"));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  json j(r->body);
  ASSERT_TRUE(j.ok()) << r->body;
  const std::vector<std::string> expected = {
      "read_file",     "list_buckets",      "write_file", "policy_generation_start",
      "delete_bucket", "put_bucket_policy", "run_query",  "echo",
      "long_job"};
  ASSERT_EQ(j.size("/result/tools"), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    std::string t = "/result/tools/" + std::to_string(i);
    EXPECT_EQ(j.str(t + "/name"), expected[i]);
    EXPECT_EQ(j.str(t + "/inputSchema/type"), "object") << expected[i];
    EXPECT_TRUE(j.has(t + "/description")) << expected[i];
    EXPECT_TRUE(j.has(t + "/annotations/readOnlyHint")) << expected[i];
    EXPECT_TRUE(j.has(t + "/annotations/destructiveHint")) << expected[i];
    EXPECT_TRUE(j.has(t + "/annotations/openWorldHint")) << expected[i];
  }
  EXPECT_TRUE(j.boolean("/result/tools/0/annotations/readOnlyHint"));           // read_file
  EXPECT_EQ(j.raw("/result/tools/0/inputSchema/required"), R"(["path"])");      // read_file
  EXPECT_TRUE(j.has("/result/tools/0/inputSchema/properties/region"));          // read_file
  EXPECT_TRUE(j.has("/result/tools/0/inputSchema/properties/limit"));           // read_file
  EXPECT_TRUE(j.boolean("/result/tools/3/annotations/openWorldHint"));          // policy_gen...
  EXPECT_TRUE(j.boolean("/result/tools/4/annotations/destructiveHint"));        // delete_bucket
  EXPECT_FALSE(j.boolean("/result/tools/4/annotations/readOnlyHint"));          // delete_bucket
  EXPECT_EQ(j.num("/result/tools/8/inputSchema/properties/steps/default"), 3);  // long_job
}

TEST_F(example_server, ToolsCallAnswersEveryToolWithItsArguments) {
  struct tcase {
    std::string tool;
    std::string args;
  };
  const std::vector<tcase> cases = {
      {"read_file", R"({"path":"/etc/hosts","region":"eu-west-1","limit":10})"},
      {"list_buckets", R"({})"},
      {"write_file", R"({"path":"/tmp/x","content":"hello\nworld"})"},
      {"policy_generation_start", R"({"job_name":"nightly"})"},
      {"delete_bucket", R"({"bucket":"prod-logs"})"},
      {"put_bucket_policy", R"({"bucket":"b","policy":"{\"Statement\":[]}"})"},
      {"run_query", R"({"sql":"SELECT 1"})"},
      {"long_job", R"({"steps":2})"},
  };
  http_client c(port_);  // one keep-alive connection for all of them
  int id = 0;
  for (const tcase& t : cases) {
    auto r = c.request("POST", "/mcp", call(std::to_string(++id), t.tool, t.args), kJsonOnly);
    ASSERT_TRUE(r) << t.tool;
    EXPECT_EQ(r->status, 200) << t.tool;
    json j(r->body);
    ASSERT_TRUE(j.ok()) << r->body;
    EXPECT_EQ(j.num("/id"), id);
    EXPECT_EQ(j.str("/result/content/0/type"), "text");
    EXPECT_EQ(j.str("/result/content/0/text"), "ran " + t.tool + " with " + t.args);
    EXPECT_FALSE(j.boolean("/result/isError"));
  }

  auto echo =
      c.request("POST", "/mcp", call("\"e\"", "echo", R"({"text":"hi \"there\"\n"})"), kJsonOnly);
  ASSERT_TRUE(echo);
  EXPECT_EQ(json(echo->body).str("/result/content/0/text"), "hi \"there\"\n");

  // No arguments at all: reported as {}.
  auto bare =
      c.request("POST", "/mcp", rpc("9", "tools/call", R"({"name":"list_buckets"})"), kJsonOnly);
  ASSERT_TRUE(bare);
  EXPECT_EQ(json(bare->body).str("/result/content/0/text"), "ran list_buckets with {}");

  auto unknown = c.request("POST", "/mcp", call("10", "format_disk", "{}"), kJsonOnly);
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 200);
  json u(unknown->body);
  EXPECT_EQ(u.num("/error/code"), -32602);
  EXPECT_EQ(u.str("/error/message"), "Unknown tool: format_disk");
}

TEST_F(example_server, ResourcesAndPrompts) {
  http_client c(port_);
  auto rl = c.request("POST", "/mcp", rpc("1", "resources/list"), kJsonOnly);
  ASSERT_TRUE(rl);
  json l(rl->body);
  ASSERT_GE(l.size("/result/resources"), 1u);
  std::string uri = l.str("/result/resources/0/uri");

  auto rr =
      c.request("POST", "/mcp", rpc("2", "resources/read", R"({"uri":")" + uri + "\"}"), kJsonOnly);
  ASSERT_TRUE(rr);
  json r(rr->body);
  EXPECT_EQ(r.str("/result/contents/0/uri"), uri);
  EXPECT_TRUE(r.has("/result/contents/0/text"));

  auto missing =
      c.request("POST", "/mcp", rpc("3", "resources/read", R"({"uri":"file:///nope"})"), kJsonOnly);
  ASSERT_TRUE(missing);
  EXPECT_EQ(json(missing->body).num("/error/code"), -32002);

  auto pl = c.request("POST", "/mcp", rpc("4", "prompts/list"), kJsonOnly);
  ASSERT_TRUE(pl);
  json p(pl->body);
  ASSERT_GE(p.size("/result/prompts"), 1u);
  std::string name = p.str("/result/prompts/0/name");
  auto pg = c.request(
      "POST", "/mcp",
      rpc("5", "prompts/get", R"({"name":")" + name + R"(","arguments":{"bucket":"logs"}})"),
      kJsonOnly);
  ASSERT_TRUE(pg);
  json g(pg->body);
  EXPECT_EQ(g.str("/result/messages/0/role"), "user");
  EXPECT_NE(g.str("/result/messages/0/content/text").find(R"({"bucket":"logs"})"),
            std::string::npos);
}

TEST_F(example_server, UnknownMethodIsMethodNotFound) {
  auto r = post(rpc("42", "tools/frobnicate"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  json j(r->body);
  EXPECT_EQ(j.num("/id"), 42);
  EXPECT_EQ(j.num("/error/code"), -32601);
}

TEST_F(example_server, MalformedJsonIs400ParseErrorAndTheConnectionCarriesOn) {
  http_client c(port_);
  for (std::string_view body : {
           std::string_view("not json"),
           std::string_view(R"({"jsonrpc":"2.0","id":1,"method":)"),
           std::string_view(R"({"jsonrpc":"2.0","id":1,"method":"ping"} trailing)"),
           std::string_view(R"({"jsonrpc":"2.0","id":1,"method":"ping)"),
           std::string_view(""),
       }) {
    auto r = c.request("POST", "/mcp", body, kJsonOnly);
    ASSERT_TRUE(r) << body;
    EXPECT_EQ(r->status, 400) << body;
    json j(r->body);
    EXPECT_EQ(j.num("/error/code"), -32700) << body;
    EXPECT_TRUE(j.has("/id")) << body;
  }
  auto ok = c.request("POST", "/mcp", rpc("1", "ping"), kJsonOnly);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);

  // Valid JSON that is not a JSON-RPC message: 400 with -32600.
  for (std::string_view body : {R"([])", R"(42)", R"({"jsonrpc":"1.0","id":1,"method":"ping"})",
                                R"({"jsonrpc":"2.0","id":1})"}) {
    auto r = c.request("POST", "/mcp", body, kJsonOnly);
    ASSERT_TRUE(r) << body;
    EXPECT_EQ(r->status, 400) << body;
    EXPECT_EQ(json(r->body).num("/error/code"), -32600) << body;
  }
}

TEST_F(example_server, RawGarbageGetsAnHttpErrorAndClose) {
  http_client c(port_);
  ASSERT_TRUE(c.send("NOT-HTTP\r\n\r\n"));
  std::string all = c.read_until_close();
  EXPECT_EQ(all.rfind("HTTP/1.1 400", 0), 0u) << all;
  EXPECT_TRUE(c.eof());
}

TEST_F(example_server, BatchesAreAnsweredAsArraysInOrder) {
  const std::string batch =
      "[" + rpc("1", "ping") + R"(,{"jsonrpc":"2.0","method":"notifications/initialized"},)" +
      call("2", "echo", R"({"text":"b"})") + "," + rpc("3", "no/such") + ",17]";
  auto r = post_json_only(batch);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  json j(r->body);
  ASSERT_TRUE(j.ok()) << r->body;
  ASSERT_EQ(j.size(""), 4u) << r->body;
  EXPECT_EQ(j.num("/0/id"), 1);
  EXPECT_EQ(j.num("/1/id"), 2);
  EXPECT_EQ(j.str("/1/result/content/0/text"), "b");
  EXPECT_EQ(j.num("/2/error/code"), -32601);
  EXPECT_EQ(j.num("/3/error/code"), -32600);
  EXPECT_EQ(j.raw("/3/id"), "null");

  auto only_notifications = post_json_only(
      R"([{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":5,"result":{}}])");
  ASSERT_TRUE(only_notifications);
  EXPECT_EQ(only_notifications->status, 202);
  EXPECT_EQ(only_notifications->body, "");
}

TEST_F(example_server, LongJobStreamsProgressInOrderThenTheResult) {
  http_client c(port_);
  std::string body =
      rpc("7", "tools/call",
          R"({"name":"long_job","arguments":{"steps":4},"_meta":{"progressToken":"job-1"}})");
  ASSERT_TRUE(c.send_request("POST", "/mcp", body, mcp_headers()));
  auto head = c.read_head();
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header_or_empty("Content-Type"), "text/event-stream");
  for (int i = 1; i <= 4; ++i) {
    auto ev = c.next_event();
    ASSERT_TRUE(ev) << "progress " << i;
    EXPECT_EQ(ev->event, "message");
    json j(ev->data);
    ASSERT_TRUE(j.ok()) << ev->data;
    EXPECT_EQ(j.str("/method"), "notifications/progress");
    EXPECT_EQ(j.str("/params/progressToken"), "job-1");
    EXPECT_EQ(j.num("/params/progress"), i);
    EXPECT_EQ(j.num("/params/total"), 4);
    EXPECT_FALSE(j.has("/id"));
  }
  auto result = c.next_event();
  ASSERT_TRUE(result);
  json j(result->data);
  EXPECT_EQ(j.num("/id"), 7);
  EXPECT_EQ(j.str("/result/content/0/text"), R"(ran long_job with {"steps":4})");
  EXPECT_FALSE(c.next_event());
  EXPECT_TRUE(c.body_complete());

  // The connection is still good for another request.
  auto ping = c.request("POST", "/mcp", rpc("8", "ping"), kJsonOnly);
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->status, 200);
}

TEST_F(example_server, LongJobWithoutATokenOrWithoutSseAccept) {
  // Streaming accepted but no progressToken: just the result event (numeric token works too).
  auto r = post(call("1", "long_job", "{}"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header_or_empty("Content-Type"), "text/event-stream");
  auto events = parse_sse(r->body);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(json(events[0].data).num("/id"), 1);

  auto numeric =
      post(rpc("2", "tools/call", R"({"name":"long_job","_meta":{"progressToken":99}})"));
  ASSERT_TRUE(numeric);
  auto ev = parse_sse(numeric->body);
  ASSERT_EQ(ev.size(), 4u);  // default 3 steps + result
  EXPECT_EQ(json(ev[0].data).num("/params/progressToken"), 99);

  // JSON only: one JSON answer.
  auto plain = post_json_only(rpc(
      "3", "tools/call", R"({"name":"long_job","arguments":{},"_meta":{"progressToken":"t"}})"));
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->header_or_empty("Content-Type"), "application/json");
  EXPECT_EQ(json(plain->body).str("/result/content/0/text"), "ran long_job with {}");
}

TEST_F(example_server, SseModeAnswersEveryRequestAsAnEventStream) {
  restart({"--sse"});
  auto r = post(rpc("1", "tools/list"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header_or_empty("Content-Type"), "text/event-stream");
  EXPECT_TRUE(r->chunked);
  auto events = parse_sse(r->body);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, "message");
  json j(events[0].data);
  EXPECT_EQ(j.size("/result/tools"), 9u);

  // Even for a client that asked for JSON only, and for initialize (with its session header).
  http_client c(port_);
  auto init = c.request("POST", "/mcp",
                        rpc("2", "initialize", R"({"protocolVersion":"2025-06-18"})"), kJsonOnly);
  ASSERT_TRUE(init);
  EXPECT_EQ(init->header_or_empty("Content-Type"), "text/event-stream");
  EXPECT_EQ(init->header_or_empty("Mcp-Session-Id").size(), 32u);
  auto ie = parse_sse(init->body);
  ASSERT_EQ(ie.size(), 1u);
  EXPECT_EQ(json(ie[0].data).str("/result/serverInfo/name"), "sluice-example-server");

  // Notifications still get a bare 202; errors of the HTTP layer stay JSON.
  auto n = post(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->status, 202);
  auto bad = post("{");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(bad->header_or_empty("Content-Type"), "application/json");
}

TEST_F(example_server, CallsAreRecordedInOrderAndCleared) {
  http_client admin(port_);
  auto cleared = admin.request("DELETE", "/_calls");
  ASSERT_TRUE(cleared);
  EXPECT_EQ(cleared->status, 200);

  ASSERT_TRUE(post(call("1", "read_file", R"({"path":"/a"})")));
  ASSERT_TRUE(post(call("2", "delete_bucket", R"( { "bucket" : "b" } )")));
  ASSERT_TRUE(post(R"({"jsonrpc":"2.0","id":3,"method":"tools/list"})"));  // not a call
  ASSERT_TRUE(post(call("4", "echo", R"({"text":"x\u0041"})")));
  // A malformed body records nothing, even if it starts with a good call.
  ASSERT_TRUE(
      post(std::string("[").append(call("5", "write_file", R"({"path":"/z"})")).append(",{")));
  ASSERT_TRUE(post(call("6", "no_such_tool", "{}")));  // unknown tools are not recorded

  auto got = admin.request("GET", "/_calls");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, R"([{"name":"read_file","arguments":{"path":"/a"}},)"
                       R"({"name":"delete_bucket","arguments":{ "bucket" : "b" }},)"
                       R"({"name":"echo","arguments":{"text":"x\u0041"}}])");

  auto again = admin.request("DELETE", "/_calls");
  ASSERT_TRUE(again);
  EXPECT_EQ(json(again->body).num("/cleared"), 3);
  auto empty = admin.request("GET", "/_calls");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->body, "[]");
}

TEST_F(example_server, ProtocolVersionHeaderIsChecked) {
  auto ok = post(rpc("1", "ping"), {{"MCP-Protocol-Version", "2025-11-25"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  auto bad = post(rpc("2", "ping"), {{"MCP-Protocol-Version", "1999-01-01"}});
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  // initialize is exempt: the version is not negotiated yet.
  auto init = post(rpc("3", "initialize", R"({"protocolVersion":"2025-06-18"})"),
                   {{"MCP-Protocol-Version", "1999-01-01"}});
  ASSERT_TRUE(init);
  EXPECT_EQ(init->status, 200);
}

TEST_F(example_server, OtherRoutesAndMethods) {
  http_client c(port_);
  auto get = c.request("GET", "/mcp", {}, {{"Accept", "text/event-stream"}});
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 405);
  EXPECT_EQ(get->header_or_empty("allow"), "POST, DELETE");
  auto health = c.request("GET", "/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto missing = c.request("POST", "/other", "{}");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(example_server, SessionsAndCallsSpanShards) {
  restart({"--shards", "2"});
  std::string sid = initialize();
  ASSERT_EQ(sid.size(), 32u);
  http_client admin(port_);
  ASSERT_TRUE(admin.request("DELETE", "/_calls"));
  // SO_REUSEPORT spreads new connections over both shards; every one must know the session.
  constexpr int kCalls = 16;
  for (int i = 0; i < kCalls; ++i) {
    auto r = post(call(std::to_string(i), "echo", R"({"text":")" + std::to_string(i) + "\"}"),
                  {{"Mcp-Session-Id", sid}});
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << i;
  }
  auto got = admin.request("GET", "/_calls");
  ASSERT_TRUE(got);
  json j(got->body);
  ASSERT_EQ(j.size(""), size_t(kCalls));
  for (int i = 0; i < kCalls; ++i)
    EXPECT_EQ(j.raw(std::string("/").append(std::to_string(i)).append("/arguments")),
              R"({"text":")" + std::to_string(i) + "\"}");
}

TEST_F(example_server, SigtermAndSigintExitCleanly) {
  http_client idle(port_);  // an open keep-alive connection does not hold the exit up
  ASSERT_TRUE(idle.request("POST", "/mcp", rpc("1", "ping"), kJsonOnly));
  EXPECT_EQ(server_->terminate(), 0);
  EXPECT_TRUE(idle.wait_closed());

  start({});
  ASSERT_TRUE(server_->signal(SIGINT));
  EXPECT_EQ(server_->wait_exit(), 0);
}

TEST(example_server_cli, HelpAndBadArguments) {
  std::string bin = binary_path("EXAMPLE_SERVER_BIN");
  ASSERT_FALSE(bin.empty());
  auto help = run(bin, {"--help"});
  EXPECT_EQ(help.exit, 0);
  EXPECT_NE(help.out.find("usage: sluice-example-server"), std::string::npos);
  auto bad = run(bin, {"--bogus"});
  EXPECT_EQ(bad.exit, 2);
  EXPECT_NE(bad.err.find("unknown argument --bogus"), std::string::npos) << bad.err;
  auto bad_listen = run(bin, {"--listen", "nonsense"});
  EXPECT_EQ(bad_listen.exit, 2);
}

}  // namespace
}  // namespace sluice::testing
