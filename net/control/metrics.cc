#include "net/control/metrics.h"

#include <bit>
#include <cstring>

#include "policy/hash.h"

namespace sluice::control {

void histogram::observe(int64_t ns) {
  const uint64_t us = ns <= 0 ? 0 : static_cast<uint64_t>(ns) / 1000;
  // Bucket i holds values up to 2^i us: the index is the bit width of us - 1.
  size_t i = us <= 1 ? 0 : static_cast<size_t>(std::bit_width(us - 1));
  if (i > kLatencyBuckets) i = kLatencyBuckets;
  buckets[i].add();
  sum_ns.add(ns <= 0 ? 0 : static_cast<uint64_t>(ns));
}

double histogram::bound_seconds(size_t i) {
  return static_cast<double>(uint64_t(1) << i) * 1e-6;
}

void shard_metrics::count_tool(std::string_view tool, uint8_t verdict, uint16_t server) {
  if (verdict >= kVerdicts) return;
  if (tool.size() > kToolNameMax) return tools_overflow[verdict].add();
  // The policy's hash (eight bytes per step), seeded with the server: one tool name under
  // two servers is two rows.
  uint64_t h = policy::hash_string(tool, server);
  if (h == 0) h = 1;
  for (size_t probe = 0; probe < kToolSlots; ++probe) {
    tool_slot& s = tools[(h + probe) & (kToolSlots - 1)];
    const uint64_t sh = s.hash.load(std::memory_order_relaxed);  // only this shard writes it
    if (sh == 0) {
      if (!tool.empty()) std::memcpy(s.name, tool.data(), tool.size());  // empty: may be null
      s.len = static_cast<uint8_t>(tool.size());
      s.server = server;
      s.hash.store(h, std::memory_order_release);  // the reader sees the name complete
      return s.by_verdict[verdict].add();
    }
    if (sh == h && s.server == server && policy::same_bytes(std::string_view(s.name, s.len), tool))
      return s.by_verdict[verdict].add();
  }
  tools_overflow[verdict].add();
}

void metrics_totals::add(const shard_metrics& m) {
  for (size_t i = 0; i < kVerdicts; ++i)
    decisions[i] += m.decisions[i].get();
  for (size_t i = 0; i <= kLatencyBuckets; ++i) {
    latency_buckets[i] += m.decision_latency.buckets[i].get();
    upstream_buckets[i] += m.upstream_latency.buckets[i].get();
  }
  latency_sum_ns += m.decision_latency.sum_ns.get();
  upstream_sum_ns += m.upstream_latency.sum_ns.get();
  upstream_requests += m.upstream_requests.get();
  upstream_5xx += m.upstream_5xx.get();
  for (size_t i = 0; i < kUpstreamErrors; ++i)
    upstream_errors[i] += m.upstream_errors[i].get();
  open_connections += m.open_connections.load(std::memory_order_relaxed);
  limiter_keys += m.limiter_keys.load(std::memory_order_relaxed);
  upstream.idle += m.upstream_idle.load(std::memory_order_relaxed);
  upstream.busy += m.upstream_busy.load(std::memory_order_relaxed);
  upstream.streams += m.upstream_streams.load(std::memory_order_relaxed);
  upstream.waiting += m.upstream_waiting.load(std::memory_order_relaxed);
  upstream.waited += m.upstream_waited.load(std::memory_order_relaxed);
  audit_records += m.audit_records.get();
  audit_dropped += m.audit_dropped.get();
  approvals_parked += m.approvals_parked.get();
  approvals_approved += m.approvals_approved.get();
  approvals_denied += m.approvals_denied.get();
  approvals_timed_out += m.approvals_timed_out.get();
  approvals_refused += m.approvals_refused.get();
  client_holds += m.client_holds.get();
  client_send_timeouts += m.client_send_timeouts.get();
  for (size_t i = 0; i < net::status_counts::kCodes; ++i)
    responses[i] += m.responses.get(i);
}

std::string_view verdict_name(size_t v) {
  static constexpr std::string_view kNames[kVerdicts] = {"allow", "deny", "rate_limited",
                                                         "approval_required", "invalid"};
  return v < kVerdicts ? kNames[v] : "unknown";
}

void append_label_value(std::string& out, std::string_view s) {
  for (char c : s) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

}  // namespace sluice::control
