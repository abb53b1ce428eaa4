// sluice serve end to end: the gateway as real processes on 127.0.0.1 (port 0), with
// sluice-example-server (or a raw socket playing a broken upstream) behind it. /_calls on the
// example server proves what reached the upstream. Every wait is a poll with a deadline.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/integration/json_doc.h"

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kLong{10000};  // generous: a loaded 2-core machine

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

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Wall-clock minute index: the PolicyLayer limit's window.
int64_t minute_now() {
  return static_cast<int64_t>(std::time(nullptr)) / 60;
}

// A request with a chunked body (chunks of `chunk` bytes).
std::string chunked_request(uint16_t port, std::string_view body, size_t chunk) {
  std::string r = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                  "\r\nContent-Type: application/json\r\n"
                  "Accept: application/json, text/event-stream\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n";
  for (size_t i = 0; i < body.size(); i += chunk) {
    const std::string_view part = body.substr(i, chunk);
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", part.size());
    r.append(size).append(part).append("\r\n");
  }
  return r + "0\r\n\r\n";
}

std::string plain_request(uint16_t port, std::string_view body) {
  return "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
         "\r\nContent-Type: application/json\r\n"
         "Accept: application/json, text/event-stream\r\n"
         "Content-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

// Sends bytes one write per byte with Nagle off, so the gateway sees them split.
bool send_bytewise(http_client& c, std::string_view bytes) {
  int one = 1;
  ::setsockopt(c.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  for (char ch : bytes)
    if (!c.send(std::string_view(&ch, 1))) return false;
  return true;
}

// The raw elements of the JSON array whose '[' is at s[open]; close gets the index of ']'.
std::vector<std::string_view> array_elements(std::string_view s, size_t open, size_t& close) {
  std::vector<std::string_view> out;
  int depth = 0;
  bool in_string = false;
  size_t start = open + 1;
  for (size_t i = open; i < s.size(); ++i) {
    const char ch = s[i];
    if (in_string) {
      if (ch == '\\') {
        ++i;
      } else if (ch == '"') {
        in_string = false;
      }
      continue;
    }
    if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      ++depth;
    } else if (ch == ']' || ch == '}') {
      if (--depth == 0) {
        if (i > start) out.push_back(s.substr(start, i - start));
        close = i;
        return out;
      }
    } else if (ch == ',' && depth == 1) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  close = std::string_view::npos;
  return {};
}

// The upstream's tools/list answer with the named tools' entries removed, every other byte
// kept: what the gateway must relay.
std::string without_tools(std::string_view answer, const std::set<std::string>& removed) {
  const size_t open = answer.find("\"tools\":[");
  if (open == std::string_view::npos) return "<no tools array>";
  const size_t bracket = open + 8;
  size_t close = 0;
  std::vector<std::string_view> elements = array_elements(answer, bracket, close);
  if (close == std::string_view::npos) return "<bad tools array>";
  std::string out(answer.substr(0, bracket + 1));
  bool first = true;
  for (std::string_view e : elements) {
    json j(e);
    if (removed.count(j.str("/name")) != 0) continue;
    if (!first) out += ',';
    first = false;
    out += e;
  }
  out += answer.substr(close);
  return out;
}

std::vector<std::string> tool_names(std::string_view answer) {
  json j(answer);
  std::vector<std::string> names;
  for (size_t i = 0; i < j.size("/result/tools"); ++i)
    names.push_back(j.str("/result/tools/" + std::to_string(i) + "/name"));
  return names;
}

class gateway : public ::testing::Test {
 protected:
  void TearDown() override {
    if (sluice_ && sluice_->running()) {
      EXPECT_EQ(sluice_->terminate(kLong), 0) << "sluice did not exit cleanly";
    }
  }

  void start_upstream(std::vector<std::string> extra = {}) {
    const std::string bin = binary_path("EXAMPLE_SERVER_BIN");
    ASSERT_FALSE(bin.empty()) << "EXAMPLE_SERVER_BIN is not set (run through meson test)";
    std::vector<std::string> args = {"--listen", "127.0.0.1:0"};
    args.insert(args.end(), extra.begin(), extra.end());
    upstream_ = process::spawn(bin, args);
    ASSERT_TRUE(upstream_) << "spawn " << bin;
    ASSERT_TRUE(upstream_->wait_ready(kLong)) << upstream_->stdout_text();
    upstream_port_ = upstream_->port();
  }

  std::string upstream_url() const {
    return "http://127.0.0.1:" + std::to_string(upstream_port_) + "/mcp";
  }

  // sluice serve with a fixture policy; the upstream is the example server unless given.
  void start_sluice(std::string_view policy, std::vector<std::string> extra = {},
                    std::string upstream = {}) {
    if (sluice_ && sluice_->running()) {
      ASSERT_EQ(sluice_->terminate(kLong), 0);
    }
    const std::string bin = binary_path("SLUICE_BIN");
    ASSERT_FALSE(bin.empty()) << "SLUICE_BIN is not set (run through meson test)";
    if (upstream.empty()) upstream = upstream_url();
    std::vector<std::string> args = {"serve",    "--listen",          "127.0.0.1:0",
                                     "--policy", policy_path(policy), "--shards",
                                     "2",        "--upstream",        upstream};
    args.insert(args.end(), extra.begin(), extra.end());
    process::options opts;
    opts.capture_stderr = true;
    sluice_ = process::spawn(bin, args, opts);
    ASSERT_TRUE(sluice_) << "spawn " << bin;
    ASSERT_TRUE(wait_sluice_ready(*sluice_, port_, kLong))
        << "stdout: " << sluice_->stdout_text() << "\nstderr: " << sluice_->stderr_text();
  }

  // POST /mcp to the gateway on a fresh connection.
  std::optional<http_response> post(std::string_view body, const header_list& extra = {}) {
    http_client c(port_);
    return mcp_post(c, body, extra, kLong);
  }
  // POST /mcp to the upstream directly.
  std::optional<http_response> post_upstream(std::string_view body, const header_list& extra = {}) {
    http_client c(upstream_port_);
    return mcp_post(c, body, extra, kLong);
  }

  // What reached the upstream since the last clear: the /_calls array.
  std::string calls() {
    http_client c(upstream_port_);
    auto r = c.request("GET", "/_calls", {}, {}, kLong);
    return r ? r->body : "<no answer>";
  }
  void clear_calls() {
    http_client c(upstream_port_);
    auto r = c.request("DELETE", "/_calls", {}, {}, kLong);
    ASSERT_TRUE(r && r->status == 200);
  }
  size_t call_count() {
    std::string all = calls();
    return json(all).size("");
  }

  // A denial as a tools/call result.
  static void expect_denial(const http_response& r, std::string_view decision,
                            std::string_view rule, std::string_view reason) {
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header_or_empty("Content-Type"), "application/json");
    json j(r.body);
    ASSERT_TRUE(j.ok()) << r.body;
    EXPECT_TRUE(j.boolean("/result/isError")) << r.body;
    EXPECT_EQ(j.str("/result/content/0/type"), "text") << r.body;
    const std::string text = j.str("/result/content/0/text");
    EXPECT_TRUE(starts_with(text, "[POLICY DENIED] " + std::string(reason))) << text;
    EXPECT_EQ(j.str("/result/_meta/sluice~1decision"), decision) << r.body;
    EXPECT_EQ(j.str("/result/_meta/sluice~1rule"), rule) << r.body;
  }

  std::unique_ptr<process> upstream_;
  uint16_t upstream_port_ = 0;
  std::unique_ptr<process> sluice_;
  uint16_t port_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Allowed and refused calls

TEST_F(gateway, AllowedCallIsRelayedExactly) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json"));
  clear_calls();
  const std::string body = call("\"a-1\"", "echo", R"({"text":"hi \"there\"\n\u00e9"})");
  auto via = post(body);
  ASSERT_TRUE(via);
  EXPECT_EQ(calls(), R"([{"name":"echo","arguments":{"text":"hi \"there\"\n\u00e9"}}])");
  auto direct = post_upstream(body);
  ASSERT_TRUE(direct);
  EXPECT_EQ(via->status, 200);
  EXPECT_EQ(via->status, direct->status);
  EXPECT_EQ(via->header_or_empty("Content-Type"), direct->header_or_empty("Content-Type"));
  EXPECT_EQ(via->body, direct->body);
  EXPECT_EQ(json(via->body).str("/result/content/0/text"), "hi \"there\"\n\xc3\xa9");

  // A read_file that passes its deny_if, on a keep-alive connection, several times.
  http_client c(port_);
  for (int i = 0; i < 3; ++i) {
    const std::string rf = call(std::to_string(i), "read_file", R"({"path":"/tmp/ok"})");
    auto r = mcp_post(c, rf, {}, kLong);
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body, R"({"jsonrpc":"2.0","id":)" + std::to_string(i) +
                           R"(,"result":{"content":[{"type":"text","text":"ran read_file with )"
                           R"({\"path\":\"/tmp/ok\"}"}],"isError":false}})");
  }
}

TEST_F(gateway, SessionIdIsPassedBackAndForwarded) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json"));
  auto init = post(rpc("1", "initialize",
                       R"({"protocolVersion":"2025-06-18","capabilities":{},)"
                       R"("clientInfo":{"name":"t","version":"1"}})"));
  ASSERT_TRUE(init);
  ASSERT_EQ(init->status, 200);
  const std::string sid(init->header_or_empty("Mcp-Session-Id"));
  EXPECT_EQ(json(init->body).str("/result/serverInfo/name"), "sluice-example-server");
  // The agent gets the upstream's id (32 hex digits) with Sluice's tag appended.
  ASSERT_EQ(sid.size(), 32u + 17u) << sid;
  const std::string upstream_id(upstream_session_id(sid));

  // The id reaches the upstream without the tag: a known one is served.
  auto ok = post(rpc("2", "ping"), {{"Mcp-Session-Id", sid}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  // An id Sluice did not hand out gets 404 from Sluice, the answer an MCP client takes as
  // "start a new session": the upstream's id alone, another id with this tag, a changed tag.
  std::string other_id = sid;
  other_id[0] = other_id[0] == '0' ? '1' : '0';
  std::string other_tag = sid;
  other_tag.back() = other_tag.back() == '0' ? '1' : '0';
  clear_calls();
  for (const std::string& forged : {upstream_id, other_id, other_tag}) {
    auto bad = post(call("3", "echo", R"({"text":"x"})"), {{"Mcp-Session-Id", forged}});
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->status, 404) << forged;
    EXPECT_EQ(json(bad->body).num("/error/code"), -32001) << bad->body;
    EXPECT_TRUE(contains(bad->body, "initialize")) << bad->body;
  }
  EXPECT_EQ(calls(), "[]");

  // DELETE ends the session at the upstream; the id is then the upstream's 404.
  http_client c(port_);
  auto del = c.request("DELETE", "/mcp", {}, {{"Mcp-Session-Id", sid}}, kLong);
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200);
  auto after = post(rpc("5", "ping"), {{"Mcp-Session-Id", sid}});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 404);
  EXPECT_FALSE(contains(after->body, "on this endpoint")) << after->body;
}

// A session belongs to the grant that opened it: a leaked session id is of no use to another
// token (the MCP security best practices' binding of session ids to users).
TEST_F(gateway, SessionIdsAreBoundToTheGrantThatOpenedThem) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  temp_file grants(R"({"grants":[{"name":"alpha","token_sha256":")" + hash_token("token-alpha") +
                   R"("},{"name":"beta","token_sha256":")" + hash_token("token-beta") + R"("}]})");
  ASSERT_NO_FATAL_FAILURE(start_sluice("grants.json", {"--grants", grants.path()}));
  const header_list alpha = {{"Authorization", "Bearer token-alpha"}};
  const header_list beta = {{"Authorization", "Bearer token-beta"}};
  http_client c(port_);
  const std::string sid = open_session(c, alpha, kLong);
  ASSERT_FALSE(sid.empty());
  clear_calls();
  const std::string echo = call("1", "echo", R"({"text":"s"})");
  auto own = mcp_post(c, echo, {alpha[0], {"Mcp-Session-Id", sid}}, kLong);
  ASSERT_TRUE(own);
  EXPECT_EQ(own->status, 200) << own->body;
  auto stolen = mcp_post(c, echo, {beta[0], {"Mcp-Session-Id", sid}}, kLong);
  ASSERT_TRUE(stolen);
  EXPECT_EQ(stolen->status, 404) << stolen->body;
  auto stream =
      c.request("GET", "/mcp", {},
                {beta[0], {"Accept", "text/event-stream"}, {"Mcp-Session-Id", sid}}, kLong);
  ASSERT_TRUE(stream);
  EXPECT_EQ(stream->status, 404);
  auto del = c.request("DELETE", "/mcp", {}, {beta[0], {"Mcp-Session-Id", sid}}, kLong);
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 404);
  EXPECT_EQ(call_count(), 1u) << calls();
  // Beta's own session works for beta.
  const std::string beta_sid = open_session(c, beta, kLong);
  ASSERT_FALSE(beta_sid.empty());
  EXPECT_NE(beta_sid, sid);
  auto theirs = mcp_post(c, echo, {beta[0], {"Mcp-Session-Id", beta_sid}}, kLong);
  ASSERT_TRUE(theirs);
  EXPECT_EQ(theirs->status, 200) << theirs->body;
}

// The tag's key is made at start: a restarted Sluice refuses the ids an earlier process handed
// out, unless both were given the same --session-key-file.
TEST_F(gateway, SessionIdsOutliveARestartOnlyWithAKeyFile) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  temp_file key("a secret of more than sixteen bytes");
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json", {"--session-key-file", key.path()}));
  http_client c1(port_);
  const std::string sid = open_session(c1, {}, kLong);
  ASSERT_FALSE(sid.empty());
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json", {"--session-key-file", key.path()}));
  auto same_key = post(rpc("2", "ping"), {{"Mcp-Session-Id", sid}});
  ASSERT_TRUE(same_key);
  EXPECT_EQ(same_key->status, 200) << same_key->body;
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json"));
  auto random_key = post(rpc("3", "ping"), {{"Mcp-Session-Id", sid}});
  ASSERT_TRUE(random_key);
  EXPECT_EQ(random_key->status, 404) << random_key->body;

  temp_file short_key("too short");
  auto r = run(binary_path("SLUICE_BIN"),
               {"serve", "--policy", policy_path("gateway.json"), "--listen", "127.0.0.1:0",
                "--upstream", upstream_url(), "--session-key-file", short_key.path()},
               kLong);
  EXPECT_EQ(r.exit, 1);
  EXPECT_TRUE(contains(r.err, "at least 16 bytes")) << r.err;
}

TEST_F(gateway, DeniedCallsNeverReachTheUpstream) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json"));
  clear_calls();
  auto del = post(call("1", "delete_bucket", R"({"bucket":"prod"})"));
  ASSERT_TRUE(del);
  expect_denial(*del, "deny", "/tools/delete_*", "deleting is not allowed through the gateway");
  EXPECT_EQ(json(del->body).num("/id"), 1);

  auto sys = post(call("\"r\"", "read_file", R"({"path":"/etc/passwd"})"));
  ASSERT_TRUE(sys);
  expect_denial(*sys, "deny", "/tools/read_file/deny_if/0", "reading system files is not allowed");
  EXPECT_EQ(json(sys->body).str("/id"), "r");

  auto hidden = post(call("2", "put_bucket_policy", R"({"bucket":"b","policy":"{}"})"));
  ASSERT_TRUE(hidden);
  EXPECT_EQ(hidden->status, 200);
  json h(hidden->body);
  EXPECT_TRUE(h.boolean("/result/isError")) << hidden->body;
  EXPECT_EQ(h.str("/result/_meta/sluice~1decision"), "deny");
  EXPECT_TRUE(starts_with(h.str("/result/content/0/text"), "[POLICY DENIED] "));

  // require_approval: refused at once, never held.
  const auto t0 = steady::now();
  auto query = post(call("3", "run_query", R"({"sql":"SELECT 1"})"));
  ASSERT_TRUE(query);
  EXPECT_LT(steady::now() - t0, 3s);
  expect_denial(*query, "approval_required", "/tools/run_query", "queries need a human");

  // prompts/get is refused with a JSON-RPC error.
  auto prompt = post(rpc("4", "prompts/get", R"({"name":"review_policy","arguments":{}})"));
  ASSERT_TRUE(prompt);
  EXPECT_EQ(prompt->status, 200);
  json p(prompt->body);
  EXPECT_EQ(p.num("/error/code"), -32010) << prompt->body;
  EXPECT_TRUE(starts_with(p.str("/error/message"), "[POLICY DENIED] no policy reviews"));
  EXPECT_EQ(p.str("/error/data/sluice~1decision"), "deny");

  EXPECT_EQ(calls(), "[]");
}

TEST_F(gateway, DenyAsErrorAnswersJsonRpcErrors) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json", {"--deny-as-error"}));
  clear_calls();
  auto del = post(call("1", "delete_bucket", R"({"bucket":"prod"})"));
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200);
  json d(del->body);
  EXPECT_FALSE(d.has("/result")) << del->body;
  EXPECT_EQ(d.num("/id"), 1);
  EXPECT_EQ(d.num("/error/code"), -32010) << del->body;
  EXPECT_EQ(d.str("/error/message"), "[POLICY DENIED] deleting is not allowed through the gateway");
  EXPECT_EQ(d.str("/error/data/sluice~1decision"), "deny");
  EXPECT_EQ(d.str("/error/data/sluice~1rule"), "/tools/delete_*");

  auto query = post(call("2", "run_query", R"({"sql":"SELECT 1"})"));
  ASSERT_TRUE(query);
  json q(query->body);
  EXPECT_EQ(q.num("/error/code"), -32012) << query->body;
  EXPECT_EQ(q.str("/error/data/sluice~1decision"), "approval_required");
  EXPECT_EQ(calls(), "[]");
}

// The PolicyLayer example verbatim: 10 calls a minute per grant; the 11th is refused and never
// reaches the upstream. Windows are aligned to the minute, so a run that straddles a minute
// boundary is redone on a fresh gateway (a run takes well under a second; two cannot both
// straddle one).
TEST_F(gateway, PolicyLayerExampleRateLimitsTheEleventhCall) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  for (int attempt = 0; attempt < 3; ++attempt) {
    ASSERT_NO_FATAL_FAILURE(start_sluice("policylayer.json"));
    clear_calls();
    http_client c(port_);  // one connection: one shard, whose limiter counts these calls
    const int64_t minute_before = minute_now();
    std::vector<http_response> answers;
    for (int i = 1; i <= 11; ++i) {
      auto r = mcp_post(c,
                        call(std::to_string(i), "policy_generation_start",
                             R"({"job_name":"j)" + std::to_string(i) + "\"}"),
                        {}, kLong);
      ASSERT_TRUE(r) << i;
      answers.push_back(*r);
    }
    if (minute_now() != minute_before) continue;  // straddled a boundary: redo
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(
          json(answers[i].body).str("/result/content/0/text"),
          R"(ran policy_generation_start with {"job_name":"j)" + std::to_string(i + 1) + "\"}")
          << answers[i].body;
    }
    const http_response& last = answers[10];
    expect_denial(last, "rate_limited", "/tools/policy_generation_start/limits/0",
                  "rate limit exceeded");
    json j(last.body);
    EXPECT_EQ(j.num("/id"), 11);
    const double retry = j.dbl("/result/_meta/sluice~1retry_after");
    EXPECT_GT(retry, 0.0) << last.body;
    EXPECT_LE(retry, 60.0) << last.body;
    EXPECT_TRUE(contains(j.str("/result/content/0/text"), "policy_generation_start_rate"))
        << last.body;
    EXPECT_EQ(call_count(), 10u) << calls();

    // Every other tool is denied by default.
    auto other = mcp_post(c, call("12", "echo", R"({"text":"x"})"), {}, kLong);
    ASSERT_TRUE(other);
    expect_denial(*other, "deny", "/default", "");
    EXPECT_EQ(call_count(), 10u);
    return;
  }
  FAIL() << "three runs in a row straddled a minute boundary";
}

// ---------------------------------------------------------------------------------------------
// tools/list

TEST_F(gateway, ToolsListIsFilteredAndOtherwiseByteIdentical) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json"));
  const std::string list = rpc("7", "tools/list");
  auto direct = post_upstream(list);
  auto via = post(list);
  ASSERT_TRUE(direct && via);
  EXPECT_EQ(via->status, 200);
  EXPECT_EQ(via->header_or_empty("Content-Type"), "application/json");
  ASSERT_EQ(tool_names(direct->body).size(), 9u);
  EXPECT_EQ(via->body, without_tools(direct->body, {"put_bucket_policy", "delete_bucket"}));
  EXPECT_EQ(tool_names(via->body),
            (std::vector<std::string>{"read_file", "list_buckets", "write_file",
                                      "policy_generation_start", "run_query", "echo", "long_job"}));

  // The PolicyLayer policy (default deny) lists just its one tool.
  ASSERT_NO_FATAL_FAILURE(start_sluice("policylayer.json"));
  auto only = post(list);
  ASSERT_TRUE(only);
  EXPECT_EQ(tool_names(only->body), std::vector<std::string>{"policy_generation_start"});
  EXPECT_EQ(only->body,
            without_tools(direct->body, {"read_file", "list_buckets", "write_file", "delete_bucket",
                                         "put_bucket_policy", "run_query", "echo", "long_job"}));
}

TEST_F(gateway, ToolsListIsFilteredInSseAnswers) {
  ASSERT_NO_FATAL_FAILURE(start_upstream({"--sse"}));
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json"));
  const std::string list = rpc("8", "tools/list");
  auto direct = post_upstream(list);
  auto via = post(list);
  ASSERT_TRUE(direct && via);
  EXPECT_EQ(via->status, 200);
  EXPECT_EQ(via->header_or_empty("Content-Type"), "text/event-stream");
  auto direct_events = parse_sse(direct->body);
  auto via_events = parse_sse(via->body);
  ASSERT_EQ(direct_events.size(), 1u) << direct->body;
  ASSERT_EQ(via_events.size(), 1u) << via->body;
  EXPECT_EQ(via_events[0].event, "message");
  const std::string expected_data =
      without_tools(direct_events[0].data, {"put_bucket_policy", "delete_bucket"});
  EXPECT_EQ(via_events[0].data, expected_data);
  EXPECT_EQ(tool_names(via_events[0].data).size(), 7u);
  // The stream's bytes: the same event, with the filtered data.
  std::string expected_body = direct->body;
  const size_t at = expected_body.find(direct_events[0].data);
  ASSERT_NE(at, std::string::npos);
  expected_body.replace(at, direct_events[0].data.size(), expected_data);
  EXPECT_EQ(via->body, expected_body);

  // A call through the SSE upstream is relayed too.
  auto echo = post(call("9", "echo", R"({"text":"sse"})"));
  ASSERT_TRUE(echo);
  auto ev = parse_sse(echo->body);
  ASSERT_EQ(ev.size(), 1u) << echo->body;
  EXPECT_EQ(json(ev[0].data).str("/result/content/0/text"), "sse");
}

// ---------------------------------------------------------------------------------------------
// Encoding tricks, over HTTP, whole, chunked and one byte at a time

TEST_F(gateway, EncodingTricksAreRefusedHoweverTheBodyArrives) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json"));
  clear_calls();
  struct trick {
    std::string name;
    std::string body;
    int status;  // 200: a denial (isError result); 400: a JSON-RPC error with code
    int code;
  };
  const std::vector<trick> tricks = {
      {"escaped method",
       R"({"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"delete_bucket","arguments":{"bucket":"b"}}})",
       200, 0},
      {"escaped tool name",
       R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete\u005fbucket","arguments":{"bucket":"b"}}})",
       200, 0},
      {"duplicate name",
       R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"delete_bucket","arguments":{"text":"b"}}})",
       400, -32600},
      {"duplicate argument past a regex",
       R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/tmp/ok","path":"/etc/shadow"}}})",
       400, -32602},
      {"trailing bytes", call("1", "echo", R"({"text":"t"})") + R"({"x":1})", 400, -32700},
      {"invalid UTF-8", call("1", "echo", "{\"text\":\"\xff\xfe\"}"), 400, -32700},
      {"tools/call without id",
       R"({"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"text":"n"}}})",
       400, -32600},
  };
  enum mode { whole, chunked, bytewise };
  for (mode m : {whole, chunked, bytewise}) {
    for (const trick& t : tricks) {
      SCOPED_TRACE(t.name + (m == whole ? " (whole)" : m == chunked ? " (chunked)" : " (bytes)"));
      http_client c(port_);
      if (m == whole) {
        ASSERT_TRUE(c.send(plain_request(port_, t.body)));
      } else if (m == chunked) {
        ASSERT_TRUE(c.send(chunked_request(port_, t.body, 7)));
      } else {
        ASSERT_TRUE(send_bytewise(c, chunked_request(port_, t.body, 3)));
      }
      auto r = c.read_response(kLong);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, t.status) << r->body;
      json j(r->body);
      ASSERT_TRUE(j.ok()) << r->body;
      if (t.status == 200) {
        expect_denial(*r, "deny", "/tools/delete_*", "deleting is not allowed");
      } else {
        EXPECT_EQ(j.num("/error/code"), t.code) << r->body;
      }
    }
  }
  EXPECT_EQ(calls(), "[]");

  // The same transports carry an allowed call through, so the refusals above are the policy's.
  {
    const std::string ok = call("1", "echo", R"({"text":"whole"})");
    http_client c(port_);
    ASSERT_TRUE(c.send(plain_request(port_, ok)));
    auto r = c.read_response(kLong);
    ASSERT_TRUE(r);
    EXPECT_EQ(json(r->body).str("/result/content/0/text"), "whole");
  }
  {
    const std::string ok = call("2", "echo", R"({"text":"chunked"})");
    http_client c(port_);
    ASSERT_TRUE(c.send(chunked_request(port_, ok, 5)));
    auto r = c.read_response(kLong);
    ASSERT_TRUE(r);
    EXPECT_EQ(json(r->body).str("/result/content/0/text"), "chunked");
  }
  {
    const std::string ok = call("3", "echo", R"({"text":"bytes"})");
    http_client c(port_);
    ASSERT_TRUE(send_bytewise(c, plain_request(port_, ok)));
    auto r = c.read_response(kLong);
    ASSERT_TRUE(r);
    EXPECT_EQ(json(r->body).str("/result/content/0/text"), "bytes");
  }
  EXPECT_EQ(call_count(), 3u) << calls();
}

// ---------------------------------------------------------------------------------------------
// Batches and Mcp-Method / Mcp-Name

TEST_F(gateway, BatchOfAllowedMessagesIsForwarded) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json"));
  clear_calls();
  const std::string batch = "[" + call("1", "echo", R"({"text":"a"})") + "," +
                            R"({"jsonrpc":"2.0","method":"notifications/initialized"})" + "," +
                            call("2", "list_buckets", "{}") + "," + rpc("3", "ping") + "]";
  auto via = post(batch);
  ASSERT_TRUE(via);
  EXPECT_EQ(via->status, 200);
  EXPECT_EQ(call_count(), 2u) << calls();
  auto direct = post_upstream(batch);
  ASSERT_TRUE(direct);
  EXPECT_EQ(via->body, direct->body);
  json j(via->body);
  ASSERT_EQ(j.size(""), 3u) << via->body;
  EXPECT_EQ(j.str("/0/result/content/0/text"), "a");
}

TEST_F(gateway, BatchWithOneRefusedMessageForwardsNothing) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json"));
  clear_calls();
  const std::string batch = "[" + call("1", "echo", R"({"text":"a"})") + "," +
                            R"({"jsonrpc":"2.0","method":"notifications/initialized"})" + "," +
                            call("2", "delete_bucket", R"({"bucket":"b"})") + "," +
                            rpc("3", "ping") + "]";
  auto r = post(batch);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  json j(r->body);
  ASSERT_TRUE(j.ok()) << r->body;
  ASSERT_EQ(j.size(""), 3u) << r->body;  // the notification gets no answer
  EXPECT_EQ(j.num("/0/id"), 1);
  EXPECT_EQ(j.num("/0/error/code"), -32010);
  EXPECT_EQ(j.str("/0/error/message"),
            "not forwarded: another message in this batch was refused by policy");
  EXPECT_EQ(j.num("/1/id"), 2);
  EXPECT_TRUE(j.boolean("/1/result/isError"));
  EXPECT_EQ(j.str("/1/result/_meta/sluice~1decision"), "deny");
  EXPECT_EQ(j.num("/2/id"), 3);
  EXPECT_EQ(j.num("/2/error/code"), -32010);
  EXPECT_EQ(calls(), "[]");
}

TEST_F(gateway, McpMethodAndNameHeadersMustMatchTheBody) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json"));
  clear_calls();
  const std::string del = call("1", "delete_bucket", R"({"bucket":"b"})");
  const std::string echo = call("2", "echo", R"({"text":"h"})");
  struct hcase {
    std::string body;
    header_list headers;
  };
  const std::vector<hcase> lies = {
      {echo, {{"Mcp-Method", "tools/list"}}},
      {echo, {{"Mcp-Method", "tools/call"}, {"Mcp-Name", "list_buckets"}}},
      {del, {{"Mcp-Method", "tools/call"}, {"Mcp-Name", "echo"}}},
      {rpc("3", "tools/list"), {{"Mcp-Method", "tools/call"}, {"Mcp-Name", "echo"}}},
      {"[" + echo + "]", {{"Mcp-Method", "tools/call"}, {"Mcp-Name", "echo"}}},
  };
  for (const hcase& h : lies) {
    auto r = post(h.body, h.headers);
    ASSERT_TRUE(r) << h.body;
    EXPECT_EQ(r->status, 400) << h.body;
    EXPECT_EQ(json(r->body).num("/error/code"), -32020) << r->body;
  }
  EXPECT_EQ(calls(), "[]");
  auto honest = post(echo, {{"Mcp-Method", "tools/call"}, {"Mcp-Name", "echo"}});
  ASSERT_TRUE(honest);
  EXPECT_EQ(honest->status, 200);
  EXPECT_EQ(json(honest->body).str("/result/content/0/text"), "h");
  EXPECT_EQ(call_count(), 1u);
}

// ---------------------------------------------------------------------------------------------
// Downstream HTTP rules and grants

TEST_F(gateway, DownstreamRequestRules) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  ASSERT_NO_FATAL_FAILURE(
      start_sluice("gateway.json", {"--allow-origin", "https://app.example.com"}));
  clear_calls();
  const std::string echo = call("1", "echo", R"({"text":"o"})");
  http_client c(port_);

  auto bad_accept =
      c.request("POST", "/mcp", echo,
                {{"Content-Type", "application/json"}, {"Accept", "application/json"}}, kLong);
  ASSERT_TRUE(bad_accept);
  EXPECT_EQ(bad_accept->status, 406);
  auto bad_type = c.request(
      "POST", "/mcp", echo,
      {{"Content-Type", "text/plain"}, {"Accept", "application/json, text/event-stream"}}, kLong);
  ASSERT_TRUE(bad_type);
  EXPECT_EQ(bad_type->status, 415);
  auto foreign = mcp_post(c, echo, {{"Origin", "https://evil.example"}}, kLong);
  ASSERT_TRUE(foreign);
  EXPECT_EQ(foreign->status, 403);
  auto sneaky = mcp_post(c, echo, {{"Origin", "http://localhost.evil.example"}}, kLong);
  ASSERT_TRUE(sneaky);
  EXPECT_EQ(sneaky->status, 403);
  EXPECT_EQ(calls(), "[]");

  for (std::string_view origin : {"http://localhost:3000", "http://127.0.0.1", "https://[::1]:8443",
                                  "https://app.example.com"}) {
    auto ok = mcp_post(c, echo, {{"Origin", std::string(origin)}}, kLong);
    ASSERT_TRUE(ok) << origin;
    EXPECT_EQ(ok->status, 200) << origin;
    // CORS: the page of that origin may read the answer and the session headers.
    EXPECT_EQ(ok->header_or_empty("Access-Control-Allow-Origin"), origin);
    EXPECT_EQ(ok->header_or_empty("Access-Control-Expose-Headers"),
              "Mcp-Session-Id, MCP-Protocol-Version");
    EXPECT_EQ(ok->header_or_empty("Vary"), "Origin");
  }
  EXPECT_EQ(call_count(), 4u);
  // The next request on the same connection has no Origin: no CORS headers stay behind.
  auto plain = mcp_post(c, echo, {}, kLong);
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->header_or_empty("Access-Control-Allow-Origin"), "");
  // A denial is Sluice's own answer: the page may read it too.
  auto denied = mcp_post(c, call("2", "delete_bucket", R"({"bucket":"b"})"),
                         {{"Origin", "https://app.example.com"}}, kLong);
  ASSERT_TRUE(denied);
  EXPECT_NE(denied->body.find("[POLICY DENIED]"), std::string::npos);
  EXPECT_EQ(denied->header_or_empty("Access-Control-Allow-Origin"), "https://app.example.com");

  // Preflight (no token, no body): allowed origins are told what they may send.
  auto preflight = c.request("OPTIONS", "/mcp", {},
                             {{"Origin", "https://app.example.com"},
                              {"Access-Control-Request-Method", "POST"},
                              {"Access-Control-Request-Headers", "content-type,mcp-session-id"}},
                             kLong);
  ASSERT_TRUE(preflight);
  EXPECT_EQ(preflight->status, 200);
  EXPECT_EQ(preflight->header_or_empty("Access-Control-Allow-Origin"), "https://app.example.com");
  EXPECT_EQ(preflight->header_or_empty("Access-Control-Allow-Methods"),
            "GET, POST, DELETE, OPTIONS");
  EXPECT_NE(preflight->header_or_empty("Access-Control-Allow-Headers").find("Mcp-Session-Id"),
            std::string_view::npos);
  EXPECT_EQ(preflight->header_or_empty("Access-Control-Allow-Private-Network"), "");
  // Chromium's Private Network Access preflight (a public page asking a local address).
  auto pna = c.request("OPTIONS", "/mcp", {},
                       {{"Origin", "https://app.example.com"},
                        {"Access-Control-Request-Method", "POST"},
                        {"Access-Control-Request-Private-Network", "true"}},
                       kLong);
  ASSERT_TRUE(pna);
  EXPECT_EQ(pna->status, 200);
  EXPECT_EQ(pna->header_or_empty("Access-Control-Allow-Private-Network"), "true");
  auto foreign_preflight = c.request(
      "OPTIONS", "/mcp", {},
      {{"Origin", "https://evil.example"}, {"Access-Control-Request-Method", "POST"}}, kLong);
  ASSERT_TRUE(foreign_preflight);
  EXPECT_EQ(foreign_preflight->status, 403);
  EXPECT_EQ(foreign_preflight->header_or_empty("Access-Control-Allow-Origin"), "");
  auto options = c.request("OPTIONS", "/mcp", {}, {}, kLong);
  ASSERT_TRUE(options);
  EXPECT_EQ(options->status, 200);
  EXPECT_EQ(options->header_or_empty("Allow"), "GET, POST, DELETE, OPTIONS");
  EXPECT_EQ(call_count(), 5u);

  auto put = c.request("PUT", "/mcp", echo, mcp_headers(), kLong);
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 405);
  EXPECT_EQ(put->header_or_empty("Allow"), "GET, POST, DELETE, OPTIONS");
  // The page may read Sluice's refusals that come before any token or policy: 405, 404, 400.
  const header_list page = {{"Origin", "https://app.example.com"}};
  for (const auto& [method, target, status] :
       {std::tuple<std::string, std::string, int>{"PUT", "/mcp", 405},
        {"POST", "/no-such-endpoint", 404},
        {"POST", "/mcp/../mcp", 400}}) {
    auto r = c.request(method, target, echo, mcp_headers(page), kLong);
    ASSERT_TRUE(r) << method << " " << target;
    EXPECT_EQ(r->status, status) << method << " " << target;
    EXPECT_EQ(r->header_or_empty("Access-Control-Allow-Origin"), "https://app.example.com")
        << method << " " << target;
    auto foreign_page =
        c.request(method, target, echo, mcp_headers({{"Origin", "https://evil.example"}}), kLong);
    ASSERT_TRUE(foreign_page);
    EXPECT_EQ(foreign_page->header_or_empty("Access-Control-Allow-Origin"), "");
  }
  auto get = c.request("GET", "/mcp", {}, {{"Accept", "application/json"}}, kLong);
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 406);
  // GET and DELETE pass through undecided: a message in their body never reaches the server.
  const std::string denied_call = call("3", "delete_bucket", R"({"bucket":"b"})");
  for (std::string_view method : {"GET", "DELETE"}) {
    auto with_body =
        c.request(method, "/mcp", denied_call,
                  {{"Accept", "text/event-stream"}, {"Content-Type", "application/json"}}, kLong);
    ASSERT_TRUE(with_body) << method;
    EXPECT_EQ(with_body->status, 400) << method;
    EXPECT_NE(with_body->body.find("messages go in a POST"), std::string::npos) << with_body->body;
  }
  auto note = mcp_post(c, R"({"jsonrpc":"2.0","method":"notifications/initialized"})", {}, kLong);
  ASSERT_TRUE(note);
  EXPECT_EQ(note->status, 202);
  EXPECT_EQ(note->body, "");
  auto other = c.request("POST", "/elsewhere", echo, mcp_headers(), kLong);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
}

TEST_F(gateway, GrantsNeedAKnownTokenAndCountPerToken) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  const std::string hashes[2] = {hash_token("token-alpha"), hash_token("token-beta")};
  temp_file grants(R"({"grants":[{"name":"alpha","token_sha256":")" + hashes[0] +
                   R"("},{"name":"beta","token_sha256":")" + hashes[1] + R"("}]})");
  ASSERT_NO_FATAL_FAILURE(start_sluice("grants.json", {"--grants", grants.path()}));
  clear_calls();
  const std::string echo = call("1", "echo", R"({"text":"g"})");
  http_client c(port_);  // one connection: one shard

  auto none = mcp_post(c, echo, {}, kLong);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(none->header_or_empty("WWW-Authenticate"), "Bearer");
  EXPECT_EQ(json(none->body).num("/error/code"), -32001);
  auto bad = mcp_post(c, echo, {{"Authorization", "Bearer token-gamma"}}, kLong);
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 401);
  auto raw_hash = mcp_post(c, echo, {{"Authorization", "Bearer " + hashes[0]}}, kLong);
  ASSERT_TRUE(raw_hash);
  EXPECT_EQ(raw_hash->status, 401);
  EXPECT_EQ(calls(), "[]");

  // The limit (3 per grant, in a window of 136 years) counts each token on its own.
  const header_list alpha = {{"Authorization", "Bearer token-alpha"}};
  const header_list beta = {{"Authorization", "Bearer token-beta"}};
  for (int i = 0; i < 3; ++i) {
    auto a = mcp_post(c, echo, alpha, kLong);
    ASSERT_TRUE(a);
    EXPECT_EQ(json(a->body).str("/result/content/0/text"), "g") << a->body;
  }
  auto a4 = mcp_post(c, echo, alpha, kLong);
  ASSERT_TRUE(a4);
  expect_denial(*a4, "rate_limited", "/tools/echo/limits/0", "rate limit exceeded");
  for (int i = 0; i < 3; ++i) {
    auto b = mcp_post(c, echo, beta, kLong);
    ASSERT_TRUE(b);
    EXPECT_EQ(json(b->body).str("/result/content/0/text"), "g") << b->body;
  }
  auto b4 = mcp_post(c, echo, beta, kLong);
  ASSERT_TRUE(b4);
  expect_denial(*b4, "rate_limited", "/tools/echo/limits/0", "rate limit exceeded");
  EXPECT_EQ(call_count(), 6u);
  // The token is Sluice's: a session-less GET/DELETE without it is refused too.
  auto del = c.request("DELETE", "/mcp", {}, {{"Mcp-Session-Id", "x"}}, kLong);
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 401);
}

// ---------------------------------------------------------------------------------------------
// HTTP limits and smuggling

TEST_F(gateway, HttpLimitsAndSmugglingAreRefusedAndOthersStillServed) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  ASSERT_NO_FATAL_FAILURE(
      start_sluice("gateway.json", {"--header-timeout-ms", "300", "--max-body-bytes", "4096"}));
  const std::string ping = rpc("1", "ping");
  auto served = [&](std::string_view what) {
    http_client other(port_);
    auto r = mcp_post(other, ping, {}, kLong);
    ASSERT_TRUE(r) << "after " << what;
    EXPECT_EQ(r->status, 200) << "after " << what;
  };
  {
    http_client c(port_);
    ASSERT_TRUE(c.send("POST /mcp HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(9000, 'a') +
                       "\r\nContent-Length: 0\r\n\r\n"));
    const std::string all = c.read_until_close(kLong);
    EXPECT_TRUE(starts_with(all, "HTTP/1.1 431")) << all.substr(0, 200);
    served("431");
  }
  {
    http_client c(port_);
    ASSERT_TRUE(
        c.send("POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Accept: application/json, text/event-stream\r\nContent-Length: 5000\r\n\r\n"));
    const std::string all = c.read_until_close(kLong);
    EXPECT_TRUE(starts_with(all, "HTTP/1.1 413")) << all.substr(0, 200);
    served("413");
  }
  {
    http_client c(port_);
    const auto t0 = steady::now();
    ASSERT_TRUE(c.send("POST /mcp HTTP/1.1\r\nHost: x\r\n"));  // and nothing more
    const std::string all = c.read_until_close(kLong);
    EXPECT_TRUE(starts_with(all, "HTTP/1.1 408")) << all.substr(0, 200);
    EXPECT_GE(steady::now() - t0, 250ms);
    EXPECT_TRUE(c.eof());
    served("408");
  }
  for (std::string_view smuggle : {
           "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
           "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n{}{}",
           "POST /mcp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
           "POST /mcp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
           "chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
       }) {
    http_client c(port_);
    ASSERT_TRUE(c.send(smuggle));
    const std::string all = c.read_until_close(kLong);
    EXPECT_TRUE(starts_with(all, "HTTP/1.1 400")) << smuggle << "\n" << all.substr(0, 200);
    served(smuggle);
  }
}

// ---------------------------------------------------------------------------------------------
// Broken upstreams

TEST_F(gateway, DeadUpstreamIs502FastAndGivesRateLimitSlotsBack) {
  raw_upstream dead(/*listening=*/false);
  ASSERT_NE(dead.port(), 0);
  ASSERT_NO_FATAL_FAILURE(start_sluice("grants.json", {}, dead.url()));
  http_client c(port_);  // one connection: one shard's limiter
  // echo allows 3 per grant; 4 calls against a dead upstream are all upstream errors.
  for (int i = 1; i <= 4; ++i) {
    const auto t0 = steady::now();
    auto r = mcp_post(c, call(std::to_string(i), "echo", R"({"text":"d"})"), {}, kLong);
    ASSERT_TRUE(r) << i;
    EXPECT_LT(steady::now() - t0, 2s) << i;
    EXPECT_EQ(r->status, 502) << r->body;
    json j(r->body);
    EXPECT_EQ(j.num("/id"), i) << r->body;
    EXPECT_EQ(j.num("/error/code"), -32030) << r->body;
    EXPECT_TRUE(starts_with(j.str("/error/message"), "upstream connect_failed")) << r->body;
    EXPECT_FALSE(contains(r->body, "rate_limited")) << r->body;
  }
  // A refusal is still answered by the gateway itself.
  auto denied = mcp_post(c, call("5", "delete_bucket", "{}"), {}, kLong);
  ASSERT_TRUE(denied);
  expect_denial(*denied, "deny", "/default", "");
}

TEST_F(gateway, HangingUpstreamIs504AndOthersAreUnaffected) {
  raw_upstream hang(/*listening=*/true);
  ASSERT_NE(hang.port(), 0);
  ASSERT_NO_FATAL_FAILURE(
      start_sluice("gateway.json", {"--response-timeout-ms", "300"}, hang.url()));
  http_client slow(port_);
  const auto t0 = steady::now();
  ASSERT_TRUE(
      slow.send_request("POST", "/mcp", call("1", "echo", R"({"text":"h"})"), mcp_headers()));
  std::string request;
  ASSERT_GE(hang.accept_request(request, kLong), 0) << "the call never reached the upstream";
  EXPECT_TRUE(contains(request, R"("name":"echo")")) << request;

  // Meanwhile another client is answered (a refusal needs no upstream).
  auto other = post(call("2", "delete_bucket", "{}"));
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 200);
  EXPECT_TRUE(json(other->body).boolean("/result/isError"));

  auto r = slow.read_response(kLong);
  ASSERT_TRUE(r);
  EXPECT_GE(steady::now() - t0, 250ms);
  EXPECT_EQ(r->status, 504) << r->body;
  json j(r->body);
  EXPECT_EQ(j.num("/id"), 1);
  EXPECT_EQ(j.num("/error/code"), -32030);
  EXPECT_TRUE(starts_with(j.str("/error/message"), "upstream response_timeout")) << r->body;
}

// An upstream that answers 503: the call was not served, so its slot goes back.
TEST_F(gateway, Upstream5xxGivesRateLimitSlotsBack) {
  raw_upstream up(/*listening=*/true);
  ASSERT_NO_FATAL_FAILURE(start_sluice("grants.json", {}, up.url()));
  http_client c(port_);
  const std::string busy =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
      "Content-Length: 5\r\nConnection: close\r\n\r\nbusy\n";
  for (int i = 1; i <= 4; ++i) {  // echo allows 3
    ASSERT_TRUE(
        c.send_request("POST", "/mcp", call(std::to_string(i), "echo", "{}"), mcp_headers()));
    std::string request;
    const int u = up.accept_request(request, kLong);
    ASSERT_GE(u, 0) << "call " << i << " did not reach the upstream";
    ASSERT_TRUE(raw_upstream::write_all(u, busy));
    auto r = c.read_response(kLong);
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->status, 503) << i;
    EXPECT_EQ(r->body, "busy\n");
  }
}

// What the raw upstream answers to one tools/list through the gateway.
std::optional<http_response> list_through(uint16_t port, raw_upstream& up,
                                          std::string_view answer_head,
                                          std::string_view answer_body) {
  http_client c(port);
  if (!c.send_request("POST", "/mcp", rpc("1", "tools/list"), mcp_headers())) return {};
  std::string request;
  const int u = up.accept_request(request, kLong);
  if (u < 0) return {};
  if (!raw_upstream::write_all(u, std::string(answer_head) + std::string(answer_body))) return {};
  return c.read_response(kLong);
}

std::string json_head(size_t length) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(length) + "\r\n\r\n";
}

TEST_F(gateway, ToolsListDropsEntriesWithoutOneStringName) {
  raw_upstream up(/*listening=*/true);
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json", {}, up.url()));
  const std::string answer =
      R"({"jsonrpc":"2.0","id":1,"result":{"tools":[)"
      R"({"name":"echo"},{"name":"delete\u005fbucket"},{"title":"no name"},)"
      R"({"name":"echo","name":"delete_bucket"},{"name":7},{"name":"put_bucket_policy"},)"
      R"( {"description":"d","name":"list_buckets"} ],"nextCursor":"c"}})";
  auto r = list_through(port_, up, json_head(answer.size()), answer);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(tool_names(r->body), (std::vector<std::string>{"echo", "list_buckets"})) << r->body;
  EXPECT_TRUE(
      starts_with(r->body, R"({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},)"))
      << r->body;
  EXPECT_NE(r->body.find(R"(],"nextCursor":"c"}})"), std::string::npos) << r->body;
}

// One SSE tools/list event from a raw upstream, with line ends `eol`, the tools key written
// as `key`, sent in chunks of `piece` bytes; the relayed body.
class gateway_sse_list : public gateway {
 protected:
  std::string relay(const std::string& eol, const std::string& key, size_t piece) {
    raw_upstream up(/*listening=*/true);
    start_sluice("gateway.json", {}, up.url());
    if (HasFatalFailure()) return "<no gateway>";
    http_client c(port_);
    if (!c.send_request("POST", "/mcp", rpc("1", "tools/list"), mcp_headers())) return "<send>";
    std::string request;
    const int u = up.accept_request(request, kLong);
    if (u < 0) return "<no upstream request>";
    raw_upstream::write_all(
        u,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
    const std::string event = "event: message" + eol +
                              R"(data: {"jsonrpc":"2.0","id":1,"result":{")" + key +
                              R"(":[{"name":"echo"},{"name":"delete_bucket"}]}})" + eol + eol;
    for (size_t i = 0; i < event.size(); i += piece) {
      const std::string part = event.substr(i, piece);
      char size[16];
      std::snprintf(size, sizeof size, "%zx\r\n", part.size());
      raw_upstream::write_all(u, size + part + "\r\n");
    }
    raw_upstream::write_all(u, "0\r\n\r\n");
    auto r = c.read_response(kLong);
    return r ? r->body : "<no answer>";
  }
};

TEST_F(gateway_sse_list, EscapedToolsKeyIsFiltered) {
  const std::string body = relay("\n", "\\u0074ools", 4096);
  EXPECT_EQ(body.find("delete_bucket"), std::string::npos) << body;
  EXPECT_NE(body.find(R"({"name":"echo"})"), std::string::npos) << body;
}

TEST_F(gateway_sse_list, EventSplitIntoSmallPiecesIsFiltered) {
  for (const std::string eol : {"\n", "\r\n", "\r"}) {
    for (size_t piece : {1u, 2u, 3u, 5u, 7u}) {
      const std::string body = relay(eol, "tools", piece);
      if (body.find("delete_bucket") != std::string::npos) {
        ADD_FAILURE() << "sse_splitter missed an event boundary split across reads (line "
                         "end "
                      << (eol == "\n"     ? "LF"
                          : eol == "\r\n" ? "CRLF"
                                          : "CR")
                      << ", pieces of " << piece
                      << " bytes); the event is relayed unfiltered at the end: " << body;
      }
      EXPECT_NE(body.find(R"({"name":"echo"})"), std::string::npos) << body;
    }
  }
}

TEST_F(gateway, ToolsListTooLargeToHoldIsStillFiltered) {
  raw_upstream up(/*listening=*/true);
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json", {}, up.url()));
  // Over the 4 MiB the gateway holds: a padded description, then a hidden tool.
  std::string answer =
      R"({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","description":")";
  answer.append(5u << 20, 'x');
  answer += R"("},{"name":"delete_bucket"}]}})";
  auto r = list_through(port_, up, json_head(answer.size()), answer);
  ASSERT_TRUE(r);
  if (r->body.find(R"({"name":"delete_bucket"})") != std::string::npos) {
    ADD_FAILURE() << "a JSON tools/list answer over kMaxHeldAnswer (4 MiB) was streamed "
                     "through unfiltered: denied tools reach the agent (status "
                  << r->status << ", " << r->body.size() << " bytes)";
  }
  EXPECT_TRUE(r->status == 200 || r->status == 502) << r->status;
}

TEST_F(gateway, ToolsListTheFilterCannotReadIsNotRelayedUnfiltered) {
  raw_upstream up(/*listening=*/true);
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json", {}, up.url()));
  // Latin-1 in a description (invalid UTF-8): a lenient client still reads the tools.
  const std::string answer =
      "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"echo\","
      "\"description\":\"caf\xe9\"},{\"name\":\"delete_bucket\"}]}}";
  auto r = list_through(port_, up, json_head(answer.size()), answer);
  ASSERT_TRUE(r);
  if (r->body.find("delete_bucket") != std::string::npos) {
    ADD_FAILURE() << "a tools/list answer the filter cannot parse was relayed as it came "
                     "(fail open): "
                  << r->body;
  }
}

// ---------------------------------------------------------------------------------------------
// Streaming

TEST_F(gateway, LongJobProgressIsRelayedInOrder) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json"));
  http_client c(port_);
  const std::string body =
      rpc("7", "tools/call",
          R"({"name":"long_job","arguments":{"steps":5},"_meta":{"progressToken":"job-1"}})");
  ASSERT_TRUE(c.send_request("POST", "/mcp", body, mcp_headers()));
  auto head = c.read_head(kLong);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header_or_empty("Content-Type"), "text/event-stream");
  for (int i = 1; i <= 5; ++i) {
    auto ev = c.next_event(kLong);
    ASSERT_TRUE(ev) << "progress " << i;
    json j(ev->data);
    EXPECT_EQ(j.str("/method"), "notifications/progress") << ev->data;
    EXPECT_EQ(j.str("/params/progressToken"), "job-1");
    EXPECT_EQ(j.num("/params/progress"), i);
    EXPECT_EQ(j.num("/params/total"), 5);
  }
  auto result = c.next_event(kLong);
  ASSERT_TRUE(result);
  EXPECT_EQ(json(result->data).str("/result/content/0/text"), R"(ran long_job with {"steps":5})");
  EXPECT_FALSE(c.next_event(kLong));
  EXPECT_TRUE(c.body_complete());
  auto again = mcp_post(c, rpc("8", "ping"), {}, kLong);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
}

// Each event reaches the agent before the upstream has sent the next one.
TEST_F(gateway, SseEventsAreRelayedAsTheyArrive) {
  raw_upstream up(/*listening=*/true);
  ASSERT_NO_FATAL_FAILURE(start_sluice("gateway.json", {}, up.url()));
  http_client c(port_);
  ASSERT_TRUE(c.send_request(
      "POST", "/mcp", rpc("1", "tools/call", R"({"name":"long_job","_meta":{"progressToken":1}})"),
      mcp_headers()));
  std::string request;
  const int u = up.accept_request(request, kLong);
  ASSERT_GE(u, 0);
  ASSERT_TRUE(raw_upstream::write_all(
      u,
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"));
  auto head = c.read_head(kLong);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->header_or_empty("Content-Type"), "text/event-stream");
  for (int i = 1; i <= 3; ++i) {
    const std::string event =
        "event: message\ndata: "
        R"({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":)" +
        std::to_string(i) + "}}\n\n";
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", event.size());
    ASSERT_TRUE(raw_upstream::write_all(u, size + event + "\r\n"));
    auto ev = c.next_event(kLong);
    ASSERT_TRUE(ev) << "event " << i << " was held back";
    EXPECT_EQ(json(ev->data).num("/params/progress"), i);
  }
  const std::string last = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n";
  char size[16];
  std::snprintf(size, sizeof size, "%zx\r\n", last.size());
  ASSERT_TRUE(raw_upstream::write_all(u, size + last + "\r\n0\r\n\r\n"));
  auto ev = c.next_event(kLong);
  ASSERT_TRUE(ev);
  EXPECT_EQ(json(ev->data).num("/id"), 1);
  EXPECT_FALSE(c.next_event(kLong));
  EXPECT_TRUE(c.body_complete());
}

// ---------------------------------------------------------------------------------------------
// Shutdown and startup

TEST_F(gateway, SigtermDrainsAnInFlightCall) {
  raw_upstream up(/*listening=*/true);
  ASSERT_NO_FATAL_FAILURE(
      start_sluice("gateway.json", {"--response-timeout-ms", "20000"}, up.url()));
  http_client c(port_);
  ASSERT_TRUE(
      c.send_request("POST", "/mcp", call("1", "echo", R"({"text":"late"})"), mcp_headers()));
  std::string request;
  const int u = up.accept_request(request, kLong);
  ASSERT_GE(u, 0) << "the call never reached the upstream";
  ASSERT_TRUE(sluice_->signal(SIGTERM));
  ASSERT_TRUE(sluice_->wait_for_stderr("draining", kLong)) << sluice_->stderr_text();
  // The upstream answers only now, while the gateway drains.
  const std::string answer =
      R"({"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"late"}]}})";
  ASSERT_TRUE(raw_upstream::write_all(u,
                                      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                      "Content-Length: " +
                                          std::to_string(answer.size()) + "\r\n\r\n" + answer));
  auto r = c.read_response(kLong);
  ASSERT_TRUE(r) << "the in-flight call was cut off";
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, answer);
  EXPECT_EQ(sluice_->wait_exit(kLong), 0);
  EXPECT_TRUE(c.wait_closed(kLong));
}

TEST(gateway_startup, BadPolicyFileExits1WithPointerMessages) {
  const std::string bin = binary_path("SLUICE_BIN");
  ASSERT_FALSE(bin.empty());
  const std::string bad = policy_path("bad.json");
  auto r = run(bin, {"serve", "--listen", "127.0.0.1:0", "--policy", bad}, kLong);
  EXPECT_EQ(r.exit, 1);
  EXPECT_TRUE(contains(r.err, bad + ": /tools/x/limits/0/window: expected")) << r.err;
  EXPECT_EQ(r.out, "");
  auto missing =
      run(bin, {"serve", "--listen", "127.0.0.1:0", "--policy", "/nonexistent.json"}, kLong);
  EXPECT_EQ(missing.exit, 1);
  EXPECT_TRUE(contains(missing.err, "/nonexistent.json: /: ")) << missing.err;
}

TEST(gateway_startup, BadGrantsFileExits1WithPointerMessage) {
  const std::string bin = binary_path("SLUICE_BIN");
  ASSERT_FALSE(bin.empty());
  // The token's hash is one hex digit short: no token could ever match it.
  temp_file grants(R"({"grants":[{"name":"alpha","token_sha256":")" +
                   hash_token("token-alpha").substr(1) + R"("}]})");
  auto r = run(bin,
               {"serve", "--listen", "127.0.0.1:0", "--policy", policy_path("gateway.json"),
                "--grants", grants.path()},
               kLong);
  EXPECT_EQ(r.exit, 1);
  EXPECT_TRUE(contains(r.err, grants.path() + ": /grants/0/token_sha256: expected 64 hex digits"))
      << r.err;
  EXPECT_EQ(r.out, "");
  auto missing = run(bin,
                     {"serve", "--listen", "127.0.0.1:0", "--policy", policy_path("gateway.json"),
                      "--grants", "/nonexistent/grants.json"},
                     kLong);
  EXPECT_EQ(missing.exit, 1);
  EXPECT_TRUE(contains(missing.err, "/nonexistent/grants.json: /: cannot read the file"))
      << missing.err;
}

// An endpoint path no request could reach (requests are routed by their normalised path), two
// endpoints on one path, an --allow-origin no browser sends (they are compared byte for byte)
// or an --upstream-header that would not be forwarded is a configuration error: exit 1 with a
// message, before binding.
TEST(gateway_startup, SettingsThatCouldNeverWorkExit1) {
  const std::string bin = binary_path("SLUICE_BIN");
  ASSERT_FALSE(bin.empty());
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--mcp-path", "mcp"}, "--mcp-path mcp: "},
      {{"--decide-path", "/v1/decide?x=1"}, "which for this one is /v1/decide"},
      {{"--mcp-path", "/a/%2e%2e/b"}, "--mcp-path /a/%2e%2e/b: "},
      {{"--mcp-path", "/v1/%64ecide"}, "which for this one is /v1/decide"},
      {{"--decide-path", "/mcp"}, "two endpoints on /mcp"},
      {{"--allow-origin", "app.example.com"}, "--allow-origin app.example.com: an origin is"},
      {{"--allow-origin", "https://App.example.com/"}, "; write https://app.example.com"},
      {{"--allow-origin", "*"}, "--allow-origin *: "},
      {{"--allow-origin", "https://app.example.com:443"}, "; write https://app.example.com\n"},
      {{"--allow-origin", "HTTP://app.example.com:80/x"}, "; write http://app.example.com\n"},
      {{"--upstream-header", "Host: elsewhere"}, "Sluice writes Host"},
      {{"--upstream-header", "X-Team : b"}, "must be an HTTP token"},
  };
  for (const auto& [flags, message] : cases) {
    std::vector<std::string> args = {"serve", "--listen", "127.0.0.1:0", "--policy",
                                     policy_path("gateway.json")};
    args.insert(args.end(), flags.begin(), flags.end());
    auto r = run(bin, args, kLong);
    EXPECT_EQ(r.exit, 1) << flags[1];
    EXPECT_TRUE(contains(r.err, message)) << r.err;
    EXPECT_EQ(r.out, "") << flags[1];
  }
}

TEST(gateway_startup, PortInUseExits1WithABindMessage) {
  const std::string bin = binary_path("SLUICE_BIN");
  ASSERT_FALSE(bin.empty());
  // A listener without SO_REUSEPORT holds the port.
  raw_upstream holder(/*listening=*/true);
  ASSERT_NE(holder.port(), 0);
  auto r = run(bin,
               {"serve", "--listen", "127.0.0.1:" + std::to_string(holder.port()), "--policy",
                policy_path("gateway.json")},
               kLong);
  EXPECT_EQ(r.exit, 1);
  EXPECT_TRUE(contains(r.err, "bind")) << r.err;
  EXPECT_EQ(r.out, "");
}

}  // namespace
}  // namespace sluice::testing
