// The control plane end to end (docs/operations.md): sluice serve with --admin in front of
// sluice-example-server; metrics, reloads (API, SIGHUP, file change), approvals, the audit log
// and the admin token, against real processes on 127.0.0.1 with port 0. Every wait is a poll
// with a deadline (or an HTTP round trip repeated until a deadline); nothing sleeps.

#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <signal.h>
#include <simdjson.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/integration/json_doc.h"

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr std::chrono::milliseconds kLong{10000};
constexpr std::string_view kToken = "s3cret-admin-token";

std::string call(std::string_view id, std::string_view tool, std::string_view args,
                 std::string_view meta = {}) {
  std::string s = R"({"jsonrpc":"2.0","id":)";
  s.append(id).append(R"(,"method":"tools/call","params":{"name":")").append(tool);
  s.append(R"(","arguments":)").append(args);
  if (!meta.empty()) s.append(R"(,"_meta":)").append(meta);
  return s + "}}";
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Writes `text` to path the way deploy tools do: a new file renamed over the old one.
void replace_file(const std::string& path, std::string_view text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << text;
  }
  fs::rename(tmp, path);
}

void write_file(const std::string& path, std::string_view text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
}

std::string sha256_hex(std::string_view s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : d) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

// One value of a Prometheus text exposition: the line starting with `series` (name and
// labels exactly as printed); -1 when absent.
int64_t metric(std::string_view text, std::string_view series) {
  size_t pos = 0;
  while ((pos = text.find(series, pos)) != std::string_view::npos) {
    if ((pos == 0 || text[pos - 1] == '\n') && pos + series.size() < text.size() &&
        text[pos + series.size()] == ' ') {
      return std::atoll(std::string(text.substr(pos + series.size() + 1, 24)).c_str());
    }
    pos += series.size();
  }
  return -1;
}

constexpr std::string_view kDenyEcho = R"({"version":"1","default":"allow","tools":{
  "echo":{"action":"deny","reason":"echo is off"},
  "run_query":{"action":"require_approval","reason":"queries need a human"},
  "delete_*":{"action":"deny","reason":"no deleting"}}})";
constexpr std::string_view kAllowEcho = R"({"version":"1","default":"allow","tools":{
  "run_query":{"action":"require_approval","reason":"queries need a human"},
  "delete_*":{"action":"deny","reason":"no deleting"}}})";

class control : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-control-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    policy_ = dir_ + "/policy.json";
    write_file(policy_, kDenyEcho);
    token_file_ = dir_ + "/admin.token";
    write_file(token_file_, std::string(kToken) + "\n");
    const std::string bin = binary_path("EXAMPLE_SERVER_BIN");
    ASSERT_FALSE(bin.empty()) << "EXAMPLE_SERVER_BIN is not set (run through meson test)";
    upstream_ = process::spawn(bin, {"--listen", "127.0.0.1:0"});
    ASSERT_TRUE(upstream_);
    ASSERT_TRUE(upstream_->wait_ready(kLong));
  }

  void TearDown() override {
    if (sluice_ && sluice_->running()) {
      EXPECT_EQ(sluice_->terminate(kLong), 0);
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void start(std::vector<std::string> extra = {}) {
    const std::string bin = binary_path("SLUICE_BIN");
    ASSERT_FALSE(bin.empty());
    std::vector<std::string> args = {
        "serve",    "--listen",    "127.0.0.1:0",
        "--policy", policy_,       "--shards",
        "2",        "--upstream",  "http://127.0.0.1:" + std::to_string(upstream_->port()) + "/mcp",
        "--admin",  "127.0.0.1:0", "--admin-token-file",
        token_file_};
    args.insert(args.end(), extra.begin(), extra.end());
    process::options opts;
    opts.capture_stderr = true;
    sluice_ = process::spawn(bin, args, opts);
    ASSERT_TRUE(sluice_);
    ASSERT_TRUE(sluice_->wait_for_stdout(")\n", kLong))
        << sluice_->stdout_text() << sluice_->stderr_text();
    const std::string out = sluice_->stdout_text();
    admin_port_ = port_after(out, "sluice admin on ");
    port_ = port_after(out, " listening on ");
    ASSERT_NE(admin_port_, 0) << out;
    ASSERT_NE(port_, 0) << out;
  }

  std::optional<http_response> admin(std::string_view method, std::string_view target,
                                     std::string_view body = {}, bool with_token = true) {
    http_client c(admin_port_);
    header_list h;
    if (with_token) h.emplace_back("Authorization", "Bearer " + std::string(kToken));
    if (!body.empty()) h.emplace_back("Content-Type", "application/json");
    return c.request(method, target, body, h, kLong);
  }

  std::string metrics() {
    auto r = admin("GET", "/metrics");
    return r && r->status == 200 ? r->body : std::string();
  }

  // Repeats GET /metrics until every shard decides with `version`.
  bool wait_adopted(int64_t version) {
    const auto deadline = steady::now() + kLong;
    while (steady::now() < deadline) {
      if (metric(metrics(), "sluice_policy_version_adopted") >= version) return true;
    }
    return false;
  }

  std::optional<http_response> post(std::string_view body, const header_list& extra = {}) {
    http_client c(port_);
    return mcp_post(c, body, extra, kLong);
  }

  static bool denied(const http_response& r) { return contains(r.body, "[POLICY DENIED]"); }

  // Repeats GET /admin/approvals until one call waits; returns its id ("" on timeout).
  std::string wait_approval(std::string* listing = nullptr) {
    const auto deadline = steady::now() + kLong;
    while (steady::now() < deadline) {
      auto r = admin("GET", "/admin/approvals");
      if (!r || r->status != 200) return {};
      const size_t at = r->body.find("\"id\":\"");
      if (at != std::string::npos) {
        if (listing) *listing = r->body;
        return r->body.substr(at + 6, r->body.find('"', at + 6) - at - 6);
      }
    }
    return {};
  }

  std::string dir_, policy_, token_file_;
  std::unique_ptr<process> upstream_, sluice_;
  uint16_t port_ = 0, admin_port_ = 0;
};

TEST_F(control, admin_token_required_except_health) {
  start();
  auto h = admin("GET", "/healthz", {}, false);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto ready = admin("GET", "/readyz", {}, false);
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  for (std::string_view target : {"/metrics", "/admin/approvals", "/admin/stats"}) {
    auto r = admin("GET", target, {}, false);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401) << target;
    EXPECT_EQ(r->header_or_empty("WWW-Authenticate"), "Bearer");
    http_client c(admin_port_);
    auto wrong =
        c.request("GET", target, {}, {{"Authorization", "Bearer s3cret-admin-tokeN"}}, kLong);
    ASSERT_TRUE(wrong);
    EXPECT_EQ(wrong->status, 401) << target;
  }
  auto reload = admin("POST", "/admin/reload", {}, false);
  ASSERT_TRUE(reload);
  EXPECT_EQ(reload->status, 401);
  auto ok = admin("GET", "/metrics");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_TRUE(contains(ok->body, "# TYPE sluice_decision_duration_seconds histogram"));
}

TEST_F(control, admin_refuses_to_start_without_a_token) {
  const std::string bin = binary_path("SLUICE_BIN");
  run_result r =
      run(bin, {"serve", "--listen", "127.0.0.1:0", "--policy", policy_, "--admin", "127.0.0.1:0"},
          kLong);
  ASSERT_TRUE(r.exit);
  EXPECT_EQ(*r.exit, 2);
  EXPECT_TRUE(contains(r.err, "--admin-token-file")) << r.err;
}

// A client that pipelines decisions and never reads the answers is held (its requests stop
// being read) and, after --send-timeout-ms, cut off: both are counted.
TEST_F(control, slow_clients_are_counted) {
  start({"--max-output-bytes", "4096", "--send-timeout-ms", "300"});
  EXPECT_EQ(metric(metrics(), "sluice_client_holds_total"), 0);
  EXPECT_EQ(metric(metrics(), "sluice_client_send_timeouts_total"), 0);
  // Small buffers on both sides of this client's connection, so that its output backs up
  // after a few hundred answers: with loopback's defaults the shard would first decide
  // megabytes of pipelined requests, seconds of work for a sanitizer build on a busy machine.
  http_client c(port_, socket_options{.rcvbuf = 4096, .sndbuf = 4096, .maxseg = 536});
  const std::string body =
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}})";
  const std::string req =
      "POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  std::string rest;
  (void)push_until_stalled(
      c.fd(), [&] { return req; }, size_t(256) << 20, rest);
  EXPECT_TRUE(c.wait_closed(kLong)) << "the client that never reads was not cut off";
  const auto deadline = steady::now() + kLong;
  std::string m;
  while (steady::now() < deadline) {
    m = metrics();
    if (metric(m, "sluice_client_send_timeouts_total") >= 1) break;
  }
  EXPECT_GE(metric(m, "sluice_client_holds_total"), 1) << m;
  EXPECT_EQ(metric(m, "sluice_client_send_timeouts_total"), 1) << m;
}

TEST_F(control, metrics_change_after_calls) {
  start();
  const std::string before = metrics();
  ASSERT_FALSE(before.empty());
  EXPECT_EQ(metric(before, R"(sluice_decisions_total{tool="list_buckets",verdict="allow"})"), -1);
  for (int i = 0; i < 3; ++i) {
    auto r = post(call(std::to_string(i + 1), "list_buckets", "{}"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_FALSE(denied(*r)) << r->body;
  }
  auto d = post(call("9", "delete_bucket", R"({"bucket":"b"})"));
  ASSERT_TRUE(d);
  EXPECT_TRUE(denied(*d));
  const std::string after = metrics();
  EXPECT_EQ(metric(after, R"(sluice_decisions_total{tool="list_buckets",verdict="allow"})"), 3)
      << after;
  EXPECT_EQ(metric(after, R"(sluice_decisions_total{tool="delete_bucket",verdict="deny"})"), 1);
  // Sampled: one decision in eight per shard, each shard's first included.
  EXPECT_GE(metric(after, "sluice_decision_duration_seconds_count") -
                metric(before, "sluice_decision_duration_seconds_count"),
            1);
  EXPECT_EQ(metric(after, "sluice_upstream_requests_total") -
                metric(before, "sluice_upstream_requests_total"),
            3);
  EXPECT_GE(metric(after, R"(sluice_upstream_duration_seconds_bucket{le="+Inf"})"), 3);
  EXPECT_EQ(metric(after, "sluice_shards"), 2);
  EXPECT_GE(metric(after, "sluice_open_connections"), 0);
  EXPECT_EQ(metric(after, R"(sluice_upstream_errors_total{kind="connect_failed"})"), 0);
  // The pool: the calls' connections parked for reuse (each shard refreshes its gauges in the
  // loop iteration that finished the call, before the answer was sent), nothing waiting.
  EXPECT_GE(metric(after, R"(sluice_upstream_connections{state="idle"})"), 1) << after;
  EXPECT_EQ(metric(after, R"(sluice_upstream_connections{state="busy"})"), 0);
  EXPECT_EQ(metric(after, R"(sluice_upstream_connections{state="stream"})"), 0);
  EXPECT_EQ(metric(after, "sluice_upstream_waiting"), 0);
  EXPECT_EQ(metric(after, "sluice_upstream_waited_total"), 0);
  // What the dashboard draws carries the same upstream and client figures.
  auto stats = admin("GET", "/admin/stats");
  ASSERT_TRUE(stats);
  ASSERT_EQ(stats->status, 200);
  json j(stats->body);
  ASSERT_TRUE(j.ok()) << stats->body;
  EXPECT_EQ(j.num("/upstream/requests"), metric(after, "sluice_upstream_requests_total"))
      << stats->body;
  EXPECT_EQ(j.num("/upstream/errors/connect_failed"), 0) << stats->body;
  EXPECT_EQ(j.num("/upstream/errors/status_5xx"), 0) << stats->body;
  EXPECT_GE(j.num("/upstream/connections/idle"), 1) << stats->body;
  EXPECT_EQ(j.num("/upstream/connections/busy"), 0) << stats->body;
  EXPECT_EQ(j.num("/upstream/waiting"), 0) << stats->body;
  EXPECT_EQ(j.num("/clients/holds"), 0) << stats->body;
  EXPECT_EQ(j.num("/clients/send_timeouts"), 0) << stats->body;
}

// Every answer is counted under its status: relayed ones, decisions, and the requests refused
// before any decision, by the HTTP layer (malformed, too large) or the MCP endpoint.
TEST_F(control, answers_are_counted_by_status) {
  start({"--max-body-bytes", "4096"});
  EXPECT_EQ(metric(metrics(), R"(sluice_http_responses_total{code="200"})"), -1);
  for (int i = 0; i < 2; ++i) {  // allowed: the upstream's 200, relayed
    auto r = post(call(std::to_string(i + 1), "list_buckets", "{}"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  auto d = post(call("3", "delete_bucket", R"({"bucket":"b"})"));  // denied: 200 with the reason
  ASSERT_TRUE(d);
  EXPECT_TRUE(denied(*d));
  auto n = post(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->status, 202);
  {
    http_client c(port_);
    auto r = c.request("POST", "/mcp", call("4", "list_buckets", "{}"),
                       {{"Content-Type", "application/json"}, {"Accept", "text/html"}}, kLong);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 406);
  }
  {
    http_client c(port_);
    auto r = c.request("PUT", "/mcp", "{}", {{"Content-Type", "application/json"}}, kLong);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 405);
  }
  {
    http_client c(port_);
    ASSERT_TRUE(
        c.send("POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
               "Transfer-Encoding: chunked\r\n\r\n{}"));  // smuggling: 400
    auto r = c.read_response(kLong);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
  }
  {
    http_client c(port_);
    auto r = c.request("POST", "/mcp", std::string(5000, ' '),
                       {{"Content-Type", "application/json"}}, kLong);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
  }
  const std::string m = metrics();
  EXPECT_EQ(metric(m, R"(sluice_http_responses_total{code="200"})"), 3) << m;
  EXPECT_EQ(metric(m, R"(sluice_http_responses_total{code="202"})"), 1);
  EXPECT_EQ(metric(m, R"(sluice_http_responses_total{code="400"})"), 1);
  EXPECT_EQ(metric(m, R"(sluice_http_responses_total{code="405"})"), 1);
  EXPECT_EQ(metric(m, R"(sluice_http_responses_total{code="406"})"), 1);
  EXPECT_EQ(metric(m, R"(sluice_http_responses_total{code="413"})"), 1);
  EXPECT_EQ(metric(m, R"(sluice_http_responses_total{code="500"})"), -1);  // only codes seen
  EXPECT_NE(m.find("# TYPE sluice_http_responses_total counter"), std::string::npos);
  // The dashboard's figures: by class.
  auto stats = admin("GET", "/admin/stats");
  ASSERT_TRUE(stats);
  json j(stats->body);
  ASSERT_TRUE(j.ok()) << stats->body;
  EXPECT_EQ(j.num("/responses/2xx"), 4) << stats->body;
  EXPECT_EQ(j.num("/responses/4xx"), 4) << stats->body;
  EXPECT_EQ(j.num("/responses/5xx"), 0) << stats->body;
}

TEST_F(control, reload_through_the_api_and_a_broken_file_keeps_the_old_policy) {
  start({"--no-watch-policy"});
  auto r = post(call("1", "echo", R"({"text":"hi"})"));
  ASSERT_TRUE(r);
  EXPECT_TRUE(denied(*r)) << r->body;

  write_file(policy_, kAllowEcho);
  auto rl = admin("POST", "/admin/reload");
  ASSERT_TRUE(rl);
  EXPECT_EQ(rl->status, 200) << rl->body;
  EXPECT_TRUE(contains(rl->body, R"("ok":true)")) << rl->body;
  EXPECT_TRUE(contains(rl->body, R"("version":2)")) << rl->body;
  EXPECT_TRUE(contains(rl->body, R"("adopted":true)")) << rl->body;
  r = post(call("2", "echo", R"({"text":"hi"})"));
  ASSERT_TRUE(r);
  EXPECT_FALSE(denied(*r)) << r->body;
  EXPECT_TRUE(contains(r->body, "hi")) << r->body;

  write_file(policy_, R"({"version":"1","default":"allow","tools":{"echo":{"action":"maybe"}}})");
  auto bad = admin("POST", "/admin/reload");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 422) << bad->body;
  EXPECT_TRUE(contains(bad->body, R"("ok":false)")) << bad->body;
  EXPECT_TRUE(contains(bad->body, policy_ + ": /tools/echo/action: ")) << bad->body;
  EXPECT_TRUE(contains(bad->body, R"("version":2)")) << bad->body;
  EXPECT_TRUE(sluice_->wait_for_stderr("failed, keeping version 2", kLong));
  r = post(call("3", "echo", R"({"text":"still"})"));
  ASSERT_TRUE(r);
  EXPECT_FALSE(denied(*r)) << r->body;
  const std::string m = metrics();
  EXPECT_EQ(metric(m, R"(sluice_policy_reloads_total{source="api",outcome="ok"})"), 1) << m;
  EXPECT_EQ(metric(m, R"(sluice_policy_reloads_total{source="api",outcome="error"})"), 1);
  EXPECT_EQ(metric(m, "sluice_policy_last_reload_ok"), 0);
  EXPECT_EQ(metric(m, "sluice_policy_version"), 2);
  auto pol = admin("GET", "/admin/policy");
  ASSERT_TRUE(pol);
  EXPECT_TRUE(contains(pol->body, "/tools/echo/action")) << pol->body;
}

TEST_F(control, reload_on_sighup) {
  start({"--no-watch-policy"});
  auto r = post(call("1", "echo", R"({"text":"hi"})"));
  ASSERT_TRUE(r);
  EXPECT_TRUE(denied(*r));
  write_file(policy_, kAllowEcho);
  ASSERT_TRUE(sluice_->signal(SIGHUP));
  ASSERT_TRUE(sluice_->wait_for_stderr("policy reloaded (SIGHUP): version 2", kLong))
      << sluice_->stderr_text();
  ASSERT_TRUE(wait_adopted(2));
  r = post(call("2", "echo", R"({"text":"hi"})"));
  ASSERT_TRUE(r);
  EXPECT_FALSE(denied(*r)) << r->body;
  EXPECT_TRUE(sluice_->running());  // SIGHUP reloads; it does not stop the gateway
}

TEST_F(control, reload_when_the_file_changes) {
  start();
  auto r = post(call("1", "echo", R"({"text":"hi"})"));
  ASSERT_TRUE(r);
  EXPECT_TRUE(denied(*r));
  replace_file(policy_, kAllowEcho);
  ASSERT_TRUE(sluice_->wait_for_stderr("policy reloaded (inotify): version 2", kLong))
      << sluice_->stderr_text();
  ASSERT_TRUE(wait_adopted(2));
  r = post(call("2", "echo", R"({"text":"hi"})"));
  ASSERT_TRUE(r);
  EXPECT_FALSE(denied(*r)) << r->body;
  // A broken file is reported and the running policy stays.
  replace_file(policy_, "{not json");
  ASSERT_TRUE(sluice_->wait_for_stderr("policy reload (inotify) failed, keeping version 2", kLong))
      << sluice_->stderr_text();
  r = post(call("3", "echo", R"({"text":"hi"})"));
  ASSERT_TRUE(r);
  EXPECT_FALSE(denied(*r)) << r->body;
}

// Six reloads while four agents' calls stream through both shards (echo denied in odd
// versions, allowed in even ones): no call is lost or answered with an error, every call sent
// once a version was adopted by every shard, and answered before the next reload began, obeys
// that version, the server received exactly the calls answered as allowed, and the audit log
// has one line for each call with the verdict the agent got and the version that decided it.
TEST_F(control, reload_under_load_loses_no_call_and_calls_after_adoption_obey_it) {
  const std::string audit = dir_ + "/audit.log";
  start({"--no-watch-policy", "--audit-log", audit});
  {
    http_client u(upstream_->port(), kLong);
    auto cleared = u.request("DELETE", "/_calls", {}, {}, kLong);
    ASSERT_TRUE(cleared && cleared->status == 200);
  }
  constexpr int kClients = 4, kLastVersion = 7, kPerVersion = 100;
  struct outcome {
    std::string text;
    int adopted_before = 0, requested_after = 0;  // the versions around the call
    bool allowed = false;
  };
  std::atomic<int> requested{1}, adopted{1};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable cv;  // a new version adopted, or stop
  std::vector<std::vector<outcome>> seen(kClients);
  std::vector<std::string> errors(kClients);
  std::vector<std::atomic<int>> done(kClients);
  std::vector<std::atomic<bool>> stopped(kClients);  // errors[c] is read only after the join
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      struct mark_stopped {
        std::atomic<bool>& flag;
        ~mark_stopped() { flag.store(true); }
      } on_exit{stopped[c]};
      http_client h(port_, kLong);
      int version = adopted.load(), made = 0;
      for (int n = 0; !stop.load(); ++n) {
        const int a = adopted.load();
        if (a != version) {
          version = a;
          made = 0;
        }
        if (made == kPerVersion) {  // enough in this version: wait for the next one
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return stop.load() || adopted.load() != version; });
          --n;
          continue;
        }
        outcome o;
        o.text = "c" + std::to_string(c) + "-" + std::to_string(n);
        o.adopted_before = a;
        auto r = mcp_post(h, call(std::to_string(n + 1), "echo", R"({"text":")" + o.text + "\"}"),
                          {}, kLong);
        o.requested_after = requested.load();
        if (!r || r->status != 200) {
          errors[c] = o.text + ": " + (r ? std::to_string(r->status) + " " + r->body : "no answer");
          return;
        }
        o.allowed = !denied(*r);
        if (o.allowed && !contains(r->body, "\"" + o.text + "\"")) {
          errors[c] = o.text + ": neither denied nor its echo: " + r->body;
          return;
        }
        if (!o.allowed && !contains(r->body, "echo is off")) {
          errors[c] = o.text + ": denied for another reason: " + r->body;
          return;
        }
        seen[c].push_back(std::move(o));
        ++made;
        done[c].fetch_add(1);
      }
    });
  }
  // Until every client has made `k` more calls (or one of them stopped, on an error).
  const auto wait_progress = [&](int k) {
    std::vector<int> from(kClients);
    for (int c = 0; c < kClients; ++c)
      from[c] = done[c].load();
    const auto deadline = steady::now() + kLong;
    for (int c = 0; c < kClients && steady::now() < deadline;) {
      if (done[c].load() >= from[c] + k || stopped[c].load()) {
        ++c;
      } else {
        std::this_thread::yield();
      }
    }
  };
  bool reloads_ok = true;
  for (int v = 2; v <= kLastVersion && reloads_ok; ++v) {
    wait_progress(3);
    write_file(policy_, v % 2 == 0 ? kAllowEcho : kDenyEcho);
    requested.store(v);
    auto rl = admin("POST", "/admin/reload");
    reloads_ok = rl && rl->status == 200 && wait_adopted(v);
    EXPECT_TRUE(reloads_ok) << "version " << v << ": " << (rl ? rl->body : "no answer");
    {
      std::lock_guard lock(mu);
      adopted.store(v);
    }
    cv.notify_all();
  }
  wait_progress(3);
  {
    std::lock_guard lock(mu);
    stop.store(true);
  }
  cv.notify_all();
  for (auto& t : clients)
    t.join();
  for (int c = 0; c < kClients; ++c)
    EXPECT_EQ(errors[c], "") << "client " << c;
  ASSERT_TRUE(reloads_ok);

  std::vector<int> exact(kLastVersion + 1);
  int allowed = 0;
  for (const auto& calls : seen) {
    for (const outcome& o : calls) {
      allowed += o.allowed;
      if (o.adopted_before != o.requested_after) continue;  // a reload overlapped the call
      ++exact[o.adopted_before];
      EXPECT_EQ(o.allowed, o.adopted_before % 2 == 0)
          << o.text << " was answered after version " << o.adopted_before << " was adopted";
    }
  }
  for (int v = 1; v <= kLastVersion; ++v)
    EXPECT_GT(exact[v], 0) << "version " << v;
  // What reached the server: exactly the calls answered as allowed.
  http_client u(upstream_->port(), kLong);
  auto got = u.request("GET", "/_calls", {}, {}, kLong);
  ASSERT_TRUE(got && got->status == 200);
  int received = 0;
  for (size_t at = 0; (at = got->body.find(R"("name":"echo")", at)) != std::string::npos; ++at)
    ++received;
  EXPECT_EQ(received, allowed);
  for (const auto& calls : seen) {
    for (const outcome& o : calls) {
      EXPECT_EQ(contains(got->body, R"({"text":")" + o.text + "\"}"), o.allowed) << o.text;
    }
  }

  // The audit log, flushed by a clean shutdown: each call's line found by its arguments' hash.
  ASSERT_EQ(sluice_->terminate(kLong), 0);
  struct line_seen {
    bool allowed = false;
    int64_t version = 0;
    int count = 0;
  };
  std::map<std::string, line_seen> lines;
  std::stringstream file(read_file(audit));
  simdjson::dom::parser p;
  for (std::string l; std::getline(file, l);) {
    simdjson::dom::element j;
    ASSERT_EQ(p.parse(l).get(j), simdjson::SUCCESS) << l;
    ASSERT_EQ(std::string_view(j["event"].get_string().value_unsafe()), "decision") << l;
    line_seen& ls = lines[std::string(j["args_sha256"].get_string().value_unsafe())];
    ls.allowed = std::string_view(j["verdict"].get_string().value_unsafe()) == "allow";
    ls.version = j["policy_version"].get_int64().value_unsafe();
    ++ls.count;
    EXPECT_EQ(ls.allowed, ls.version % 2 == 0) << l;
  }
  size_t calls_made = 0;
  for (const auto& calls : seen) {
    for (const outcome& o : calls) {
      ++calls_made;
      const auto it = lines.find(sha256_hex(R"({"text":")" + o.text + "\"}"));
      ASSERT_NE(it, lines.end()) << o.text << " has no audit line";
      EXPECT_EQ(it->second.count, 1) << o.text;
      EXPECT_EQ(it->second.allowed, o.allowed) << o.text;
      EXPECT_GE(it->second.version, o.adopted_before) << o.text;
      EXPECT_LE(it->second.version, o.requested_after) << o.text;
    }
  }
  EXPECT_EQ(lines.size(), calls_made);
}

TEST_F(control, approval_approved_is_forwarded_as_it_arrived) {
  start();
  const std::string body = call("7", "run_query", R"({"sql":"select 1"})");
  http_client agent(port_);
  ASSERT_TRUE(agent.send_request("POST", "/mcp", body, mcp_headers()));
  std::string listing;
  const std::string id = wait_approval(&listing);
  ASSERT_FALSE(id.empty());
  EXPECT_TRUE(contains(listing, R"("tool":"run_query")")) << listing;
  EXPECT_TRUE(contains(listing, R"("arguments":{"sql":"select 1"})")) << listing;
  EXPECT_TRUE(contains(listing, R"("grant":"anonymous")")) << listing;
  EXPECT_TRUE(contains(listing, R"("age_ms":)")) << listing;
  auto d = admin("POST", "/admin/approvals/" + id, R"({"decision":"approve","reason":"ok"})");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, 200) << d->body;
  auto r = agent.read_response(kLong);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(contains(r->body, R"(ran run_query with {\"sql\":\"select 1\"})")) << r->body;
  EXPECT_TRUE(contains(r->body, R"("id":7)")) << r->body;
  // Decided once: a second decision finds nothing.
  auto again = admin("POST", "/admin/approvals/" + id, R"({"decision":"deny"})");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 404);
  const std::string m = metrics();
  EXPECT_EQ(metric(m, R"(sluice_approvals_total{outcome="approved"})"), 1) << m;
  EXPECT_EQ(metric(m, "sluice_approvals_waiting"), 0);
}

TEST_F(control, approval_denied_is_answered_with_the_reason) {
  start();
  http_client agent(port_);
  ASSERT_TRUE(agent.send_request("POST", "/mcp", call("8", "run_query", R"({"sql":"drop"})"),
                                 mcp_headers()));
  const std::string id = wait_approval();
  ASSERT_FALSE(id.empty());
  auto bad = admin("POST", "/admin/approvals/" + id, R"({"decision":"perhaps"})");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  auto d = admin("POST", "/admin/approvals/" + id, R"({"decision":"deny","reason":"not on prod"})");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, 200);
  auto r = agent.read_response(kLong);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(contains(r->body, "[POLICY DENIED] approval denied: not on prod")) << r->body;
  EXPECT_TRUE(contains(r->body, R"("isError":true)")) << r->body;
}

TEST_F(control, approval_times_out) {
  start({"--approval-timeout", "run_query=200"});
  http_client agent(port_);
  ASSERT_TRUE(
      agent.send_request("POST", "/mcp", call("9", "run_query", R"({"sql":"x"})"), mcp_headers()));
  auto r = agent.read_response(kLong);
  ASSERT_TRUE(r);
  EXPECT_TRUE(contains(r->body, "[POLICY DENIED] approval timed out: no decision within 200 ms"))
      << r->body;
  EXPECT_EQ(metric(metrics(), R"(sluice_approvals_total{outcome="timed_out"})"), 1);
}

TEST_F(control, approval_stream_says_it_waits_then_relays_the_result) {
  start();
  http_client agent(port_);
  ASSERT_TRUE(agent.send_request(
      "POST", "/mcp", call("10", "run_query", R"({"sql":"select 2"})", R"({"progressToken":"p1"})"),
      mcp_headers()));
  auto head = agent.read_head(kLong);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header_or_empty("Content-Type"), "text/event-stream");
  auto progress = agent.next_event(kLong);
  ASSERT_TRUE(progress);
  EXPECT_TRUE(contains(progress->data, R"("method":"notifications/progress")")) << progress->data;
  EXPECT_TRUE(contains(progress->data, R"("progressToken":"p1")")) << progress->data;
  EXPECT_TRUE(contains(progress->data, "awaiting approval")) << progress->data;
  const std::string id = wait_approval();
  ASSERT_FALSE(id.empty());
  auto d = admin("POST", "/admin/approvals/" + id, R"({"decision":"approve"})");
  ASSERT_TRUE(d);
  auto result = agent.next_event(kLong);
  ASSERT_TRUE(result);
  EXPECT_TRUE(contains(result->data, "ran run_query with")) << result->data;
  EXPECT_TRUE(contains(result->data, R"("id":10)")) << result->data;
}

TEST_F(control, waiting_calls_are_refused_on_shutdown) {
  start();
  http_client agent(port_);
  ASSERT_TRUE(
      agent.send_request("POST", "/mcp", call("11", "run_query", R"({"sql":"y"})"), mcp_headers()));
  ASSERT_FALSE(wait_approval().empty());
  const auto t0 = steady::now();
  ASSERT_TRUE(sluice_->signal(SIGTERM));
  auto r = agent.read_response(kLong);
  ASSERT_TRUE(r);
  EXPECT_TRUE(contains(r->body, "approval denied: the gateway is shutting down")) << r->body;
  auto code = sluice_->wait_exit(kLong);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0);
  EXPECT_LT(steady::now() - t0, std::chrono::seconds(5));  // not the 10 s drain timeout
}

TEST_F(control, audit_lines_and_reopen_on_sigusr1) {
  const std::string audit = dir_ + "/audit.log";
  start({"--audit-log", audit});
  const std::string args = R"({"bucket":"photos"})";
  http_client session_client(port_);
  const std::string sid = open_session(session_client, {}, kLong);
  ASSERT_FALSE(sid.empty());
  auto a = post(call("1", "list_buckets", args), {{"Mcp-Session-Id", sid}});
  ASSERT_TRUE(a);
  auto d = post(call("2", "delete_bucket", args));
  ASSERT_TRUE(d);
  EXPECT_TRUE(denied(*d));
  // logrotate: move the file away, then SIGUSR1.
  const auto deadline = steady::now() + kLong;
  // Three lines: the initialize that opened the session, then the two calls.
  while (steady::now() < deadline && metric(metrics(), "sluice_audit_lines_written_total") < 3) {
  }
  fs::rename(audit, audit + ".1");
  ASSERT_TRUE(sluice_->signal(SIGUSR1));
  ASSERT_TRUE(sluice_->wait_for_stderr("audit: reopened", kLong)) << sluice_->stderr_text();
  auto e = post(call("3", "echo", R"({"text":"x"})"));
  ASSERT_TRUE(e);
  ASSERT_EQ(sluice_->terminate(kLong), 0);  // a clean shutdown flushes everything

  const std::string old_lines = read_file(audit + ".1");
  const std::string new_lines = read_file(audit);
  std::vector<std::string> lines;
  std::stringstream ss(old_lines);
  for (std::string l; std::getline(ss, l);)
    if (!contains(l, "initialize")) lines.push_back(l);
  ASSERT_EQ(lines.size(), 2u) << old_lines;
  simdjson::dom::parser p;
  simdjson::dom::element allow, deny;
  ASSERT_EQ(p.parse(lines[0]).get(allow), simdjson::SUCCESS) << lines[0];
  const std::string allow_tool(allow["tool"].get_string().value_unsafe());
  // The two calls may be decided on either shard, in either order in the file.
  const std::string& allow_line = allow_tool == "list_buckets" ? lines[0] : lines[1];
  const std::string& deny_line = allow_tool == "list_buckets" ? lines[1] : lines[0];
  simdjson::dom::parser p1, p2;
  simdjson::dom::element j;
  ASSERT_EQ(p1.parse(allow_line).get(j), simdjson::SUCCESS);
  EXPECT_EQ(std::string_view(j["event"].get_string().value_unsafe()), "decision");
  EXPECT_EQ(std::string_view(j["verdict"].get_string().value_unsafe()), "allow");
  EXPECT_EQ(std::string_view(j["grant"].get_string().value_unsafe()), "anonymous");
  // The session as the upstream names it: its id without Sluice's tag.
  EXPECT_EQ(std::string_view(j["session"].get_string().value_unsafe()), upstream_session_id(sid));
  EXPECT_EQ(std::string_view(j["tool"].get_string().value_unsafe()), "list_buckets");
  EXPECT_EQ(std::string_view(j["args_sha256"].get_string().value_unsafe()), sha256_hex(args));
  EXPECT_GE(j["latency_ns"].get_int64().value_unsafe(), 0);
  EXPECT_LT(j["shard"].get_int64().value_unsafe(), 2);
  EXPECT_EQ(std::string_view(j["time"].get_string().value_unsafe()).size(), 27u);
  ASSERT_EQ(p2.parse(deny_line).get(j), simdjson::SUCCESS);
  EXPECT_EQ(std::string_view(j["verdict"].get_string().value_unsafe()), "deny");
  EXPECT_EQ(std::string_view(j["rule"].get_string().value_unsafe()), "/tools/delete_*");
  EXPECT_EQ(std::string_view(j["reason"].get_string().value_unsafe()), "no deleting");
  EXPECT_EQ(std::string_view(j["args_sha256"].get_string().value_unsafe()), sha256_hex(args));
  // After the reopen: the echo call, in the new file.
  EXPECT_TRUE(contains(new_lines, R"("tool":"echo","rule":"/tools/echo")")) << new_lines;
  EXPECT_TRUE(contains(new_lines, R"("verdict":"deny")")) << new_lines;
}

TEST_F(control, audit_drops_are_counted_and_reported) {
  const std::string audit = dir_ + "/audit.log";
  start({"--audit-log", audit, "--audit-ring", "2", "--shards", "1"});
  // 300 pipelined decisions on one connection are decided in a few loop iterations, far
  // faster than the writer's 10 ms drain: a ring of 2 must overflow.
  const std::string body = call("1", "delete_bucket", R"({"bucket":"b"})");
  std::string burst;
  for (int i = 0; i < 300; ++i) {
    burst +=
        "POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  http_client c(port_);
  ASSERT_TRUE(c.send(burst));
  for (int i = 0; i < 300; ++i) {
    auto r = c.read_response(kLong);
    ASSERT_TRUE(r) << i;
    ASSERT_EQ(r->status, 403);
  }
  ASSERT_TRUE(sluice_->wait_for_stderr("records dropped (a shard's ring was full)", kLong))
      << sluice_->stderr_text();
  const std::string m = metrics();
  const int64_t dropped = metric(m, "sluice_audit_dropped_total");
  EXPECT_GT(dropped, 0) << m;
  EXPECT_EQ(metric(m, "sluice_audit_records_total") + dropped, 300) << m;
  ASSERT_EQ(sluice_->terminate(kLong), 0);
  const std::string lines = read_file(audit);
  EXPECT_TRUE(contains(lines, R"("event":"audit_dropped")")) << lines.substr(0, 2000);
}

}  // namespace
}  // namespace sluice::testing
