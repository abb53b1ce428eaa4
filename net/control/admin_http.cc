// The admin HTTP server (Boost.Beast on the control thread): /healthz, /readyz, /metrics,
// /admin/*, and the dashboard page.

#include <openssl/crypto.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <unordered_map>

#include "engine/clock.h"
#include "net/control/plane_impl.h"
#include "policy/compiled_policy.h"

namespace sluice::control {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr size_t kMaxAdminBody = 64 * 1024;
constexpr auto kAdoptWait = std::chrono::seconds(2);

std::string_view path_of(std::string_view target) {
  const size_t q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

void metric_line(std::string& out, std::string_view name, std::string_view labels, uint64_t v) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += std::to_string(v);
  out += '\n';
}

void help(std::string& out, std::string_view name, std::string_view type, std::string_view text) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += text;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void histogram_lines(std::string& out, std::string_view name, const uint64_t* buckets,
                     uint64_t sum_ns) {
  uint64_t cum = 0;
  char le[32];
  for (size_t i = 0; i <= kLatencyBuckets; ++i) {
    cum += buckets[i];
    std::string labels = "le=\"";
    if (i == kLatencyBuckets) {
      labels += "+Inf";
    } else {
      const int n = std::snprintf(le, sizeof le, "%g", histogram::bound_seconds(i));
      labels.append(le, static_cast<size_t>(n));
    }
    labels += '"';
    metric_line(out, std::string(name) + "_bucket", labels, cum);
  }
  char sum[48];
  const int n = std::snprintf(sum, sizeof sum, "%.9f", static_cast<double>(sum_ns) * 1e-9);
  out += name;
  out += "_sum ";
  out.append(sum, static_cast<size_t>(n));
  out += '\n';
  metric_line(out, std::string(name) + "_count", {}, cum);
}

constexpr std::string_view kUpstreamErrorNames[kUpstreamErrors] = {
    "connect_failed", "connect_timeout", "response_timeout", "reset",
    "bad_response",   "pool_exhausted",  "shutting_down"};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Bodies

std::string plane::impl::metrics_text() {
  metrics_totals t;
  // (server, tool) -> counts by verdict, merged over shards
  std::map<std::pair<uint16_t, std::string>, std::array<uint64_t, kVerdicts>> tools;
  std::array<uint64_t, kVerdicts> overflow{};
  unsigned shards = 0;
  uint64_t min_version = ~uint64_t(0);
  for (unsigned i = 0; i < kMaxShards; ++i) {
    shard_port* p = owner.port_at(i);
    if (p == nullptr) continue;
    ++shards;
    t.add(p->metrics);
    min_version = std::min(min_version, p->metrics.policy_version.load(std::memory_order_relaxed));
    for (const tool_slot& s : p->metrics.tools) {
      if (s.hash.load(std::memory_order_acquire) == 0) continue;
      auto& row = tools[{s.server, std::string(s.name, s.len)}];
      for (size_t v = 0; v < kVerdicts; ++v)
        row[v] += s.by_verdict[v].get();
    }
    for (size_t v = 0; v < kVerdicts; ++v)
      overflow[v] += p->metrics.tools_overflow[v].get();
  }
  if (shards == 0) min_version = owner.policy_version();
  std::string out;
  out.reserve(8192);
  help(out, "sluice_decisions_total", "counter",
       "Messages decided, by tool (\"\" for messages that name none) and verdict; with "
       "several servers, also by server.");
  const auto& servers = owner.options().server_policies;
  for (const auto& [key, row] : tools) {
    const auto& [server, name] = key;
    for (size_t v = 0; v < kVerdicts; ++v) {
      if (row[v] == 0) continue;
      std::string labels;
      if (server != 0 && server <= servers.size()) {
        labels = "server=\"";
        append_label_value(labels, servers[server - 1].first);
        labels += "\",";
      }
      labels += "tool=\"";
      append_label_value(labels, name);
      labels += "\",verdict=\"";
      labels += verdict_name(v);
      labels += '"';
      metric_line(out, "sluice_decisions_total", labels, row[v]);
    }
  }
  for (size_t v = 0; v < kVerdicts; ++v) {
    if (overflow[v] == 0) continue;
    metric_line(out, "sluice_decisions_total",
                "tool=\"(other)\",verdict=\"" + std::string(verdict_name(v)) + "\"", overflow[v]);
  }
  help(out, "sluice_bodies_decided_total", "counter",
       "HTTP bodies decided (a batch is one), by overall verdict.");
  for (size_t v = 0; v < kVerdicts; ++v)
    metric_line(out, "sluice_bodies_decided_total",
                "verdict=\"" + std::string(verdict_name(v)) + "\"", t.decisions[v]);
  help(out, "sluice_decision_duration_seconds", "histogram", "Time to decide one body.");
  histogram_lines(out, "sluice_decision_duration_seconds", t.latency_buckets, t.latency_sum_ns);
  help(out, "sluice_upstream_requests_total", "counter", "Requests sent to the upstream.");
  metric_line(out, "sluice_upstream_requests_total", {}, t.upstream_requests);
  help(out, "sluice_upstream_errors_total", "counter",
       "Upstream exchanges that failed, by kind (status_5xx: answered with a 5xx).");
  for (size_t i = 0; i < kUpstreamErrors; ++i)
    metric_line(out, "sluice_upstream_errors_total",
                "kind=\"" + std::string(kUpstreamErrorNames[i]) + "\"", t.upstream_errors[i]);
  metric_line(out, "sluice_upstream_errors_total", "kind=\"status_5xx\"", t.upstream_5xx);
  help(out, "sluice_upstream_duration_seconds", "histogram",
       "Time from sending a request upstream to its response head.");
  histogram_lines(out, "sluice_upstream_duration_seconds", t.upstream_buckets, t.upstream_sum_ns);
  help(out, "sluice_upstream_connections", "gauge",
       "HTTP upstream connections, all shards: idle (pooled), busy (a call), stream (a GET).");
  metric_line(out, "sluice_upstream_connections", "state=\"idle\"", t.upstream.idle);
  metric_line(out, "sluice_upstream_connections", "state=\"busy\"", t.upstream.busy);
  metric_line(out, "sluice_upstream_connections", "state=\"stream\"", t.upstream.streams);
  help(out, "sluice_upstream_waiting", "gauge",
       "Calls waiting for an upstream connection (all of a shard's were busy), all shards.");
  metric_line(out, "sluice_upstream_waiting", {}, t.upstream.waiting);
  help(out, "sluice_upstream_waited_total", "counter",
       "Calls that had to wait for an upstream connection.");
  metric_line(out, "sluice_upstream_waited_total", {}, t.upstream.waited);
  help(out, "sluice_open_connections", "gauge", "Downstream connections open, all shards.");
  metric_line(out, "sluice_open_connections", {}, t.open_connections);
  help(out, "sluice_client_holds_total", "counter",
       "Times reading stopped (an upstream answer, or a client's requests) because a client "
       "was slow to take its output (--max-output-bytes).");
  metric_line(out, "sluice_client_holds_total", {}, t.client_holds);
  help(out, "sluice_client_send_timeouts_total", "counter",
       "Clients disconnected for taking none of their output for --send-timeout-ms.");
  metric_line(out, "sluice_client_send_timeouts_total", {}, t.client_send_timeouts);
  help(out, "sluice_http_responses_total", "counter",
       "Answers sent to clients, by HTTP status: decisions, relayed upstream answers, and "
       "requests refused before any decision (malformed, over a limit, unauthorized).");
  for (size_t i = 0; i < net::status_counts::kCodes; ++i) {
    if (t.responses[i] == 0) continue;
    char code[24];
    std::snprintf(code, sizeof code, "code=\"%d\"", net::status_counts::kFirst + int(i));
    metric_line(out, "sluice_http_responses_total", code, t.responses[i]);
  }
  help(out, "sluice_limiter_keys", "gauge", "Live rate-limit keys, all shards.");
  metric_line(out, "sluice_limiter_keys", {}, t.limiter_keys);
  if (const cluster_metrics* c = owner.options().cluster.get()) {
    help(out, "sluice_cluster_up", "gauge",
         "1 while the last round trip to the cluster's Redis worked (--cluster).");
    metric_line(out, "sluice_cluster_up", {}, c->up.load(std::memory_order_relaxed));
    help(out, "sluice_cluster_round_trips_total", "counter",
         "Round trips to the cluster's Redis by outcome (failed: connect or call failed).");
    metric_line(out, "sluice_cluster_round_trips_total", "outcome=\"ok\"",
                c->round_trips.load(std::memory_order_relaxed));
    metric_line(out, "sluice_cluster_round_trips_total", "outcome=\"failed\"",
                c->failed_round_trips.load(std::memory_order_relaxed));
    help(out, "sluice_cluster_keys_synced_total", "counter",
         "Counter keys carried by the round trips that worked.");
    metric_line(out, "sluice_cluster_keys_synced_total", {},
                c->keys_synced.load(std::memory_order_relaxed));
  }
  help(out, "sluice_policy_reloads_total", "counter", "Policy reloads by trigger and outcome.");
  for (const auto& [source, c] : reloads_by_source) {
    metric_line(out, "sluice_policy_reloads_total", "source=\"" + source + "\",outcome=\"ok\"",
                c.first);
    metric_line(out, "sluice_policy_reloads_total", "source=\"" + source + "\",outcome=\"error\"",
                c.second);
  }
  if (reloads_by_source.empty()) {
    metric_line(out, "sluice_policy_reloads_total", "source=\"api\",outcome=\"ok\"", 0);
    metric_line(out, "sluice_policy_reloads_total", "source=\"api\",outcome=\"error\"", 0);
  }
  help(out, "sluice_policy_last_reload_ok", "gauge", "1 if the last reload succeeded.");
  metric_line(out, "sluice_policy_last_reload_ok", {}, last_reload.ok ? 1 : 0);
  help(out, "sluice_policy_version", "gauge", "Version of the published policy (1 at start).");
  metric_line(out, "sluice_policy_version", {}, owner.policy_version());
  help(out, "sluice_policy_version_adopted", "gauge",
       "Oldest policy version a shard decides with.");
  metric_line(out, "sluice_policy_version_adopted", {}, min_version);
  help(out, "sluice_approvals_waiting", "gauge", "Calls waiting for a human's approval.");
  metric_line(out, "sluice_approvals_waiting", {}, approvals.size());
  help(out, "sluice_approvals_total", "counter", "Calls parked for approval and their outcome.");
  metric_line(out, "sluice_approvals_total", "outcome=\"parked\"", t.approvals_parked);
  metric_line(out, "sluice_approvals_total", "outcome=\"approved\"", t.approvals_approved);
  metric_line(out, "sluice_approvals_total", "outcome=\"denied\"", t.approvals_denied);
  metric_line(out, "sluice_approvals_total", "outcome=\"timed_out\"", t.approvals_timed_out);
  metric_line(out, "sluice_approvals_total", "outcome=\"refused_full\"", t.approvals_refused);
  help(out, "sluice_audit_records_total", "counter", "Audit records handed to the writer.");
  metric_line(out, "sluice_audit_records_total", {}, t.audit_records);
  help(out, "sluice_audit_dropped_total", "counter",
       "Audit records dropped: a shard's ring was full.");
  metric_line(out, "sluice_audit_dropped_total", {}, t.audit_dropped);
  help(out, "sluice_audit_lines_written_total", "counter", "Audit lines written to the file.");
  metric_line(out, "sluice_audit_lines_written_total", {}, audit.lines());
  help(out, "sluice_audit_write_errors_total", "counter", "Failed audit writes and reopens.");
  metric_line(out, "sluice_audit_write_errors_total", {}, audit_write_errors);
  help(out, "sluice_audit_reopens_total", "counter", "Audit log reopens (SIGUSR1).");
  metric_line(out, "sluice_audit_reopens_total", {}, audit_reopens);
  help(out, "sluice_shards", "gauge", "Shards serving.");
  metric_line(out, "sluice_shards", {}, shards);
  return out;
}

std::string plane::impl::approvals_json() {
  std::string out = "[";
  const int64_t now = engine::wall_ns();
  const auto steady_now = std::chrono::steady_clock::now();
  bool first = true;
  for (const auto& [id, e] : approvals) {
    if (!first) out += ',';
    first = false;
    out += "{\"id\":\"" + std::to_string(id) + "\",\"tool\":";
    append_json(out, e.req.tool);
    out += ",\"arguments\":";
    out += e.req.arguments.empty() ? std::string("null") : e.req.arguments;
    out += ",\"grant\":";
    append_json(out, e.req.grant);
    out += ",\"session\":";
    append_json(out, e.req.session);
    out += ",\"shard\":" + std::to_string(e.shard);
    out += ",\"since\":\"";
    append_rfc3339(out, e.req.since_wall_ns);
    out += "\",\"age_ms\":" + std::to_string((now - e.req.since_wall_ns) / 1'000'000);
    out += ",\"timeout_ms\":" + std::to_string(e.timeout_ms);
    out += ",\"expires_in_ms\":" +
           std::to_string(std::max<int64_t>(
               0, std::chrono::duration_cast<std::chrono::milliseconds>(e.deadline - steady_now)
                      .count()));
    out += '}';
  }
  return out + "]";
}

std::string plane::impl::stats_json() {
  metrics_totals t;
  std::unordered_map<std::string, std::array<uint64_t, kVerdicts>> tools;
  for (unsigned i = 0; i < kMaxShards; ++i) {
    shard_port* p = owner.port_at(i);
    if (p == nullptr) continue;
    t.add(p->metrics);
    for (const tool_slot& s : p->metrics.tools) {
      if (s.hash.load(std::memory_order_acquire) == 0) continue;
      // With several servers a server's tools are listed as "server/tool".
      std::string name(s.name, s.len);
      const auto& servers = owner.options().server_policies;
      if (!name.empty() && s.server != 0 && s.server <= servers.size())
        name = servers[s.server - 1].first + "/" + name;
      auto& row = tools[name];
      for (size_t v = 0; v < kVerdicts; ++v)
        row[v] += s.by_verdict[v].get();
    }
  }
  std::vector<std::pair<uint64_t, const std::string*>> order;
  for (const auto& [name, row] : tools) {
    uint64_t sum = 0;
    for (uint64_t x : row)
      sum += x;
    if (!name.empty()) order.emplace_back(sum, &name);
  }
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : *a.second < *b.second;
  });
  if (order.size() > 10) order.resize(10);
  std::string out = "{\"time_ms\":" + std::to_string(engine::wall_ns() / 1'000'000);
  out += ",\"policy_version\":" + std::to_string(owner.policy_version());
  out += ",\"decisions\":{";  // bodies, by overall verdict
  for (size_t v = 0; v < kVerdicts; ++v) {
    if (v) out += ',';
    out += '"';
    out += verdict_name(v);
    out += "\":" + std::to_string(t.decisions[v]);
  }
  out += "},\"messages\":{";
  std::array<uint64_t, kVerdicts> all{};
  for (const auto& [name, row] : tools)
    for (size_t v = 0; v < kVerdicts; ++v)
      all[v] += row[v];
  for (size_t v = 0; v < kVerdicts; ++v) {
    if (v) out += ',';
    out += '"';
    out += verdict_name(v);
    out += "\":" + std::to_string(all[v]);
  }
  out += "},\"top_tools\":[";
  for (size_t i = 0; i < order.size(); ++i) {
    if (i) out += ',';
    out += "{\"tool\":";
    append_json(out, *order[i].second);
    out += ",\"total\":" + std::to_string(order[i].first);
    const auto& row = tools[*order[i].second];
    for (size_t v = 0; v < kVerdicts; ++v) {
      out += ",\"";
      out += verdict_name(v);
      out += "\":" + std::to_string(row[v]);
    }
    out += '}';
  }
  out += "],\"recent_refusals\":[";
  bool first = true;
  for (auto it = recent.rbegin(); it != recent.rend(); ++it) {
    if (!first) out += ',';
    first = false;
    out += "{\"time\":\"";
    append_rfc3339(out, it->time_ns);
    out += "\",\"verdict\":\"";
    out += verdict_name(it->verdict);
    out += "\",\"tool\":";
    append_json(out, it->tool);
    out += ",\"rule\":";
    append_json(out, it->rule);
    out += ",\"grant\":";
    append_json(out, it->grant);
    out += ",\"reason\":";
    append_json(out, it->reason);
    out += '}';
  }
  out += "],\"approvals\":" + approvals_json();
  out += ",\"open_connections\":" + std::to_string(t.open_connections);
  out += ",\"audit_dropped\":" + std::to_string(t.audit_dropped);
  // The upstream's health and the slow clients, as /metrics has them.
  out += ",\"upstream\":{\"requests\":" + std::to_string(t.upstream_requests);
  out += ",\"errors\":{";
  for (size_t i = 0; i < kUpstreamErrors; ++i) {
    out += '"';
    out += kUpstreamErrorNames[i];
    out += "\":" + std::to_string(t.upstream_errors[i]) + ',';
  }
  out += "\"status_5xx\":" + std::to_string(t.upstream_5xx);
  out += "},\"connections\":{\"idle\":" + std::to_string(t.upstream.idle);
  out += ",\"busy\":" + std::to_string(t.upstream.busy);
  out += ",\"stream\":" + std::to_string(t.upstream.streams);
  out += "},\"waiting\":" + std::to_string(t.upstream.waiting);
  out += ",\"waited\":" + std::to_string(t.upstream.waited);
  out += "},\"clients\":{\"holds\":" + std::to_string(t.client_holds);
  out += ",\"send_timeouts\":" + std::to_string(t.client_send_timeouts);
  // Answers to clients by status class (sluice_http_responses_total has each code).
  uint64_t by_class[5] = {};
  for (size_t i = 0; i < net::status_counts::kCodes; ++i)
    by_class[i / 100] += t.responses[i];
  out += "},\"responses\":{";
  for (size_t c = 0; c < 5; ++c) {
    if (c != 0) out += ',';
    out += '"' + std::to_string(c + 1) + "xx\":" + std::to_string(by_class[c]);
  }
  out += "}}";
  return out;
}

// ---------------------------------------------------------------------------------------------
// Sessions

namespace {

class session : public std::enable_shared_from_this<session> {
 public:
  session(plane::impl& m, tcp::socket s) : m_(m), stream_(std::move(s)), timer_(m.ioc) {}

  void start() { read(); }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(kMaxAdminBody);
    parser_->header_limit(16 * 1024);
    stream_.expires_after(std::chrono::seconds(30));
    http::async_read(stream_, buf_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) {
                         if (ec == http::error::body_limit || ec == http::error::header_limit) {
                           self->reply(413, "text/plain", "too large\n", false);
                         }
                         return;
                       }
                       self->handle(self->parser_->release());
                     });
  }

  void reply(unsigned status, std::string_view type, std::string body, bool keep_alive,
             std::string_view extra_name = {}, std::string_view extra_value = {}) {
    auto res =
        std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), 11);
    res->set(http::field::server, "sluice-admin");
    res->set(http::field::content_type, type);
    res->set(http::field::cache_control, "no-store");
    if (!extra_name.empty()) res->set(extra_name, extra_value);
    res->keep_alive(keep_alive);
    res->body() = std::move(body);
    res->prepare_payload();
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
                        if (ec || !keep_alive) {
                          beast::error_code ignored;
                          self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                          return;
                        }
                        self->read();
                      });
  }

  void json(unsigned status, std::string body) {
    reply(status, "application/json", std::move(body), keep_alive_);
  }

  bool authorized(const http::request<http::string_body>& req) const {
    const auto it = req.find(http::field::authorization);
    if (it == req.end()) return false;
    std::string_view v(it->value().data(), it->value().size());
    if (v.size() < 7) return false;
    std::string_view scheme = v.substr(0, 7);
    if (!(scheme == "Bearer " || scheme == "bearer ")) return false;
    v.remove_prefix(7);
    const net::sha256_digest d = net::sha256(v);
    return CRYPTO_memcmp(d.data(), m_.token_digest.data(), d.size()) == 0;
  }

  void handle(http::request<http::string_body> req) {
    keep_alive_ = req.keep_alive();
    const std::string target(req.target());
    const std::string_view path = path_of(target);
    const auto method = req.method();
    if (path == "/healthz") return reply(200, "text/plain", "ok\n", keep_alive_);
    if (path == "/readyz") {
      const bool ready = m_.ready.load(std::memory_order_acquire);
      return reply(ready ? 200 : 503, "text/plain", ready ? "ready\n" : "starting\n", keep_alive_);
    }
    if (path == "/" || path == "/dashboard") {
      // The page holds no data: its script asks the API with the token the operator gives.
      return reply(200, "text/html; charset=utf-8", std::string(dashboard_html()), keep_alive_);
    }
    if (!authorized(req)) {
      return reply(401, "application/json", "{\"error\":\"missing or wrong admin token\"}",
                   keep_alive_, "WWW-Authenticate", "Bearer");
    }
    if (path == "/metrics" && method == http::verb::get) {
      return reply(200, "text/plain; version=0.0.4; charset=utf-8", m_.metrics_text(), keep_alive_);
    }
    if (path == "/admin/stats" && method == http::verb::get) return json(200, m_.stats_json());
    if (path == "/admin/approvals" && method == http::verb::get) {
      return json(200, "{\"approvals\":" + m_.approvals_json() + "}");
    }
    if (path == "/admin/policy" && method == http::verb::get) return json(200, policy_json());
    if (path == "/admin/reload" && method == http::verb::post) return reload();
    constexpr std::string_view kApprovalPrefix = "/admin/approvals/";
    if (path.substr(0, kApprovalPrefix.size()) == kApprovalPrefix && method == http::verb::post) {
      return decide(path.substr(kApprovalPrefix.size()), req.body());
    }
    json(404, "{\"error\":\"not found\"}");
  }

  std::string policy_json() {
    const reload_outcome& r = m_.last_reload;
    std::string out = "{\"version\":" + std::to_string(m_.owner.policy_version());
    out += ",\"file\":";
    append_json(out, m_.owner.options().policy_path);
    if (!m_.owner.options().server_policies.empty()) {
      out += ",\"servers\":[";
      bool first = true;
      for (const auto& [name, file] : m_.owner.options().server_policies) {
        if (!first) out += ',';
        first = false;
        out += "{\"name\":";
        append_json(out, name);
        out += ",\"file\":";
        append_json(out, file);
        out += '}';
      }
      out += ']';
    }
    out += ",\"last_reload\":" + reload_body(r) + "}";
    return out;
  }

  static std::string reload_body(const reload_outcome& r) {
    std::string out = r.ok ? "{\"ok\":true" : "{\"ok\":false";
    out += ",\"source\":";
    append_json(out, r.source);
    out += ",\"version\":" + std::to_string(r.version);
    out += ",\"time\":\"";
    append_rfc3339(out, r.time_ns);
    out += "\",\"errors\":[";
    for (size_t i = 0; i < r.errors.size(); ++i) {
      if (i) out += ',';
      append_json(out, r.errors[i]);
    }
    return out + "]}";
  }

  void reload() {
    const reload_outcome r = m_.reload("api");
    if (!r.ok) return json(422, reload_body(r));
    // Answer once every shard decides with it (or after kAdoptWait, saying so).
    wait_adopted(r, std::chrono::steady_clock::now() + kAdoptWait);
  }

  void wait_adopted(reload_outcome r, std::chrono::steady_clock::time_point deadline) {
    const bool done = m_.all_adopted(r.version);
    if (done || std::chrono::steady_clock::now() >= deadline) {
      std::string body = reload_body(r);
      body.insert(body.size() - 1, done ? ",\"adopted\":true" : ",\"adopted\":false");
      return json(200, std::move(body));
    }
    timer_.expires_after(std::chrono::milliseconds(1));
    timer_.async_wait([self = shared_from_this(), r, deadline](beast::error_code ec) {
      if (!ec) self->wait_adopted(r, deadline);
    });
  }

  void decide(std::string_view id_text, const std::string& body) {
    uint64_t id = 0;
    auto [p, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
    if (ec != std::errc() || p != id_text.data() + id_text.size()) {
      return json(404, "{\"error\":\"no such approval\"}");
    }
    simdjson::dom::parser parser;
    simdjson::dom::object o;
    std::string_view decision, reason;
    if (parser.parse(body).get_object().get(o) || o["decision"].get_string().get(decision) ||
        (decision != "approve" && decision != "deny")) {
      return json(400,
                  "{\"error\":\"expected {\\\"decision\\\":\\\"approve\\\"|\\\"deny\\\","
                  "\\\"reason\\\":\\\"...\\\"}\"}");
    }
    if (auto r = o["reason"]; r.error() == simdjson::SUCCESS && r.get_string().get(reason)) {
      return json(400, "{\"error\":\"reason must be a string\"}");
    }
    if (m_.approvals.find(id) == m_.approvals.end()) {
      return json(404, "{\"error\":\"no such approval (decided, timed out or never parked)\"}");
    }
    const approval_outcome what =
        decision == "approve" ? approval_outcome::approve : approval_outcome::deny;
    if (!m_.decide_approval(id, what, std::string(reason))) {
      return json(503, "{\"error\":\"the shard's queue is full; try again\"}");
    }
    std::string out = "{\"id\":\"" + std::to_string(id) + "\",\"decision\":";
    append_json(out, decision);
    out += '}';
    json(200, std::move(out));
  }

  plane::impl& m_;
  beast::tcp_stream stream_;
  asio::steady_timer timer_;
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = true;
};

}  // namespace

void plane::impl::serve(tcp::socket s) {
  std::make_shared<session>(*this, std::move(s))->start();
}

void plane::impl::accept() {
  acceptor->async_accept([this](beast::error_code ec, tcp::socket s) {
    if (!ec) serve(std::move(s));
    if (acceptor->is_open()) accept();
  });
}

}  // namespace sluice::control
