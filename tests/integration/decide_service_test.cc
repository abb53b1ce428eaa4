// POST /v1/decide end to end: sluice serve as a real process on 127.0.0.1 (port 0), without
// an upstream. The status is the decision; the body says why.

#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/integration/json_doc.h"

namespace sluice::testing {
namespace {

constexpr std::chrono::milliseconds kLong{10000};

std::string call(std::string_view id, std::string_view tool, std::string_view args) {
  return std::string(R"({"jsonrpc":"2.0","id":)") + std::string(id) +
         R"(,"method":"tools/call","params":{"name":")" + std::string(tool) + R"(","arguments":)" +
         std::string(args) + "}}";
}

class decide_service : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string bin = binary_path("SLUICE_BIN");
    ASSERT_FALSE(bin.empty()) << "SLUICE_BIN is not set (run through meson test)";
    sluice_ = process::spawn(bin, {"serve", "--listen", "127.0.0.1:0", "--policy",
                                   policy_path("decide.json"), "--shards", "2"});
    ASSERT_TRUE(sluice_);
    ASSERT_TRUE(wait_sluice_ready(*sluice_, port_, kLong)) << sluice_->stdout_text();
  }
  void TearDown() override {
    if (sluice_ && sluice_->running()) {
      EXPECT_EQ(sluice_->terminate(kLong), 0);
    }
  }

  std::optional<http_response> decide(http_client& c, std::string_view body,
                                      const header_list& extra = {}) {
    header_list h = {{"Content-Type", "application/json"}};
    h.insert(h.end(), extra.begin(), extra.end());
    return c.request("POST", "/v1/decide", body, h, kLong);
  }

  std::unique_ptr<process> sluice_;
  uint16_t port_ = 0;
};

TEST_F(decide_service, StatusIsTheDecision) {
  EXPECT_NE(sluice_->stdout_text().find("no upstream"), std::string::npos)
      << sluice_->stdout_text();
  http_client c(port_);  // one connection: one shard's limiter

  auto allow = decide(c, call("1", "echo", R"({"text":"x"})"));
  ASSERT_TRUE(allow);
  EXPECT_EQ(allow->status, 200);
  EXPECT_EQ(allow->header_or_empty("Content-Type"), "application/json");
  EXPECT_EQ(allow->body, R"({"decision":"allow","tool":"echo","rule":"/default","reason":""})");

  auto deny = decide(c, call("2", "delete_bucket", R"({"bucket":"b"})"));
  ASSERT_TRUE(deny);
  EXPECT_EQ(deny->status, 403);
  EXPECT_EQ(deny->body, R"({"decision":"deny","tool":"delete_bucket","rule":"/tools/delete_*",)"
                        R"("reason":"deleting is not allowed through the gateway"})");

  auto hidden = decide(c, call("3", "put_bucket_policy", "{}"));
  ASSERT_TRUE(hidden);
  EXPECT_EQ(hidden->status, 403);
  EXPECT_EQ(json(hidden->body).str("/decision"), "deny");

  auto approval = decide(c, call("4", "run_query", R"({"sql":"SELECT 1"})"));
  ASSERT_TRUE(approval);
  EXPECT_EQ(approval->status, 202);
  json a(approval->body);
  EXPECT_EQ(a.str("/decision"), "approval_required");
  EXPECT_EQ(a.str("/tool"), "run_query");
  EXPECT_EQ(a.str("/rule"), "/tools/run_query");
  EXPECT_EQ(a.str("/reason"), "queries need a human");

  // write_file: 2 per grant in one very long window; the decision service counts.
  for (int i = 0; i < 2; ++i) {
    auto w = decide(c, call("5", "write_file", R"({"path":"/a"})"));
    ASSERT_TRUE(w);
    EXPECT_EQ(w->status, 200) << i;
  }
  auto limited = decide(c, call("6", "write_file", R"({"path":"/a"})"));
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->status, 429);
  json l(limited->body);
  EXPECT_EQ(l.str("/decision"), "rate_limited") << limited->body;
  EXPECT_EQ(l.str("/tool"), "write_file");
  EXPECT_EQ(l.str("/rule"), "/tools/write_file/limits/0");
  const double retry = l.dbl("/retry_after");
  EXPECT_GT(retry, 0.0) << limited->body;
  const std::string header(limited->header_or_empty("Retry-After"));
  ASSERT_FALSE(header.empty());
  const long long header_secs = std::atoll(header.c_str());
  EXPECT_EQ(std::to_string(header_secs), header);
  EXPECT_GE(static_cast<double>(header_secs), retry);  // rounded up
  EXPECT_LT(static_cast<double>(header_secs), retry + 1.0);

  auto invalid = decide(c, R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}})");
  ASSERT_TRUE(invalid);
  EXPECT_EQ(invalid->status, 400);
  json i(invalid->body);
  EXPECT_EQ(i.str("/decision"), "invalid") << invalid->body;
  EXPECT_EQ(i.num("/error/code"), -32602) << invalid->body;
  EXPECT_FALSE(i.str("/error/message").empty());

  auto garbage = decide(c, "{not json");
  ASSERT_TRUE(garbage);
  EXPECT_EQ(garbage->status, 400);
  EXPECT_EQ(json(garbage->body).num("/error/code"), -32700) << garbage->body;

  // Not a call: allowed.
  auto list = decide(c, R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
  ASSERT_TRUE(list);
  EXPECT_EQ(list->status, 200);

  // A batch: the first element that is not allowed decides.
  auto batch = decide(c, "[" + call("1", "echo", "{}") + "," + call("2", "run_query", "{}") + "," +
                             call("3", "delete_bucket", "{}") + "]");
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->status, 202) << batch->body;
  EXPECT_EQ(json(batch->body).str("/tool"), "run_query");

  auto put = c.request("PUT", "/v1/decide", call("7", "echo", "{}"), {}, kLong);
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 405);
  EXPECT_EQ(put->header_or_empty("Allow"), "POST, GET, DELETE, OPTIONS");
}

// Envoy's HTTP ext_authz asks at its path_prefix followed by the client's path, with the
// client's method: POST /v1/decide/mcp is decided as POST /v1/decide; GET and DELETE (the
// server stream, the end of a session) carry no message and pass for a known caller, unless
// they carry a body the server would read undecided.
TEST_F(decide_service, PathsUnderTheServiceAndRequestsWithoutAMessage) {
  http_client c(port_);
  const header_list json_type = {{"Content-Type", "application/json"}};
  auto deny =
      c.request("POST", "/v1/decide/mcp", call("1", "delete_bucket", "{}"), json_type, kLong);
  ASSERT_TRUE(deny);
  EXPECT_EQ(deny->status, 403);
  EXPECT_EQ(json(deny->body).str("/rule"), "/tools/delete_*") << deny->body;
  auto allow =
      c.request("POST", "/v1/decide/servers/a/mcp?x=1", call("2", "echo", "{}"), json_type, kLong);
  ASSERT_TRUE(allow);
  EXPECT_EQ(allow->status, 200) << allow->body;

  for (const char* method : {"GET", "DELETE"}) {
    auto r = c.request(method, "/v1/decide/mcp", {}, {{"Mcp-Session-Id", "s-1"}}, kLong);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << method;
    json j(r->body);
    EXPECT_EQ(j.str("/decision"), "allow") << r->body;
    EXPECT_EQ(j.str("/tool"), "") << r->body;
    auto with_body =
        c.request(method, "/v1/decide", call("3", "delete_bucket", "{}"), json_type, kLong);
    ASSERT_TRUE(with_body);
    EXPECT_EQ(with_body->status, 400) << method;
    EXPECT_EQ(json(with_body->body).str("/decision"), "invalid") << with_body->body;
  }

  // Only the service's own path segment: /v1/decider is not under /v1/decide.
  auto other = c.request("POST", "/v1/decider", call("4", "echo", "{}"), json_type, kLong);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
}

// With grants, a request without a known token is refused whatever its method.
TEST(decide_service_grants, EveryMethodNeedsAKnownToken) {
  const std::string bin = binary_path("SLUICE_BIN");
  ASSERT_FALSE(bin.empty()) << "SLUICE_BIN is not set (run through meson test)";
  temp_file grants(R"({"grants":[{"name":"alpha","token_sha256":")" + hash_token("token-alpha") +
                   R"("}]})");
  auto sluice = process::spawn(bin, {"serve", "--listen", "127.0.0.1:0", "--policy",
                                     policy_path("decide.json"), "--grants", grants.path()});
  ASSERT_TRUE(sluice);
  uint16_t port = 0;
  ASSERT_TRUE(wait_sluice_ready(*sluice, port, kLong)) << sluice->stdout_text();
  http_client c(port);
  const header_list known = {{"Authorization", "Bearer token-alpha"}};
  for (const char* method : {"GET", "DELETE", "POST"}) {
    const std::string body = std::string_view(method) == "POST" ? call("1", "echo", "{}") : "";
    auto none = c.request(method, "/v1/decide/mcp", body, {}, kLong);
    ASSERT_TRUE(none);
    EXPECT_EQ(none->status, 401) << method;
    auto ok = c.request(method, "/v1/decide/mcp", body, known, kLong);
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200) << method << " " << ok->body;
  }
  EXPECT_EQ(sluice->terminate(kLong), 0);
}

TEST_F(decide_service, PipelinedRequestsAreAnsweredInOrder) {
  struct expect {
    std::string tool;
    int status;
  };
  const std::vector<expect> cycle = {
      {"echo", 200}, {"delete_bucket", 403}, {"run_query", 202}, {"list_buckets", 200}};
  std::string all;
  std::vector<expect> expected;
  for (int i = 0; i < 16; ++i) {
    const expect& e = cycle[static_cast<size_t>(i) % cycle.size()];
    const std::string body = call(std::to_string(i), e.tool, R"({"n":)" + std::to_string(i) + "}");
    all +=
        "POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    expected.push_back(e);
  }
  http_client c(port_);
  ASSERT_TRUE(c.send(all));  // all 16 in one write
  for (size_t i = 0; i < expected.size(); ++i) {
    auto r = c.read_response(kLong);
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->status, expected[i].status) << i;
    EXPECT_EQ(json(r->body).str("/tool"), expected[i].tool) << i << ": " << r->body;
  }
  // And the connection carries on.
  auto after = decide(c, call("99", "echo", "{}"));
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
}

TEST_F(decide_service, McpWithoutAnUpstreamStillRefusesAndSays503ForAllowed) {
  http_client c(port_);
  const header_list h = mcp_headers();
  auto denied = c.request("POST", "/mcp", call("1", "delete_bucket", "{}"), h, kLong);
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 200);
  EXPECT_NE(denied->body.find("[POLICY DENIED] "), std::string::npos) << denied->body;
  auto allowed = c.request("POST", "/mcp", call("2", "echo", "{}"), h, kLong);
  ASSERT_TRUE(allowed);
  EXPECT_EQ(allowed->status, 503);
  json j(allowed->body);
  EXPECT_EQ(j.num("/id"), 2);
  EXPECT_EQ(j.num("/error/code"), -32030) << allowed->body;
}

}  // namespace
}  // namespace sluice::testing
