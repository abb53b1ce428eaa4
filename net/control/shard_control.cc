#include "net/control/shard_control.h"

#include <time.h>

#include <cstring>

#include "engine/clock.h"
#include "engine/shard.h"
#include "net/grants.h"
#include "net/mcp_answers.h"

namespace sluice::control {

namespace {

namespace od = simdjson::ondemand;

constexpr std::string_view kEventStream = "text/event-stream";

}  // namespace

void finish_as_sse_event(net::response_slot& slot, std::string_view json) {
  std::string ev = "event: message\n";
  size_t pos = 0;
  while (pos <= json.size()) {
    size_t end = json.find('\n', pos);
    if (end == std::string_view::npos) end = json.size();
    ev.append("data: ").append(json.substr(pos, end - pos)).append("\n");
    pos = end + 1;
  }
  ev += '\n';
  slot.write(ev);
  slot.finish();
}

net::http_request held_call::request() const {
  net::http_request r;
  r.method = method;
  r.target = target;
  r.content_type = content_type;
  r.accept = accept;
  r.mcp_session_id = session;
  r.mcp_protocol_version = protocol_version;
  r.last_event_id = last_event_id;
  r.mcp_method = mcp_method;
  r.mcp_name = mcp_name;
  r.body = std::string_view(body.data(), body_size);
  return r;
}

shard_control::shard_control(std::shared_ptr<plane> p, engine::shard& s, bool deny_as_error)
    : plane_(std::move(p)),
      shard_(s),
      id_(s.id()),
      port_(plane_->attach(s.id(), s)),
      m_(port_.metrics),
      deny_as_error_(deny_as_error),
      audit_file_(plane_->audit_enabled()),
      seen_version_(1) {  // the decider starts with the start-up policy, version 1; a reload
                          // published before this shard attached is adopted at its first loop
  out_.reserve(1024);
  m_.policy_version.store(seen_version_, std::memory_order_relaxed);
}

shard_control::~shard_control() {
  plane_->detach(id_);
}

void shard_control::on_loop(policy::decider& d, std::span<policy::decider* const> servers, sink& s,
                            size_t limiter_keys, const upstream_gauges& upstream) {
  const uint64_t v = plane_->policy_version();
  if (v != seen_version_) {
    // Between two loop iterations: no decision is in progress on this shard.
    d.set_policy(plane_->current_policy());
    if (!servers.empty()) {
      const auto published = plane_->current_server_policies();
      for (size_t i = 0; i < servers.size() && i < published.size(); ++i)
        servers[i]->set_policy(published[i]);
    }
    seen_version_ = v;
    m_.policy_version.store(v, std::memory_order_relaxed);
  }
  m_.open_connections.store(shard_.open_connections(), std::memory_order_relaxed);
  m_.limiter_keys.store(limiter_keys, std::memory_order_relaxed);
  m_.upstream_idle.store(upstream.idle, std::memory_order_relaxed);
  m_.upstream_busy.store(upstream.busy, std::memory_order_relaxed);
  m_.upstream_streams.store(upstream.streams, std::memory_order_relaxed);
  m_.upstream_waiting.store(upstream.waiting, std::memory_order_relaxed);
  m_.upstream_waited.store(upstream.waited, std::memory_order_relaxed);
  if (held_.empty()) return;
  {
    // A call whose connection is gone leaves the approval queue (a few loads per waiting
    // call). An agent's FIN alone is a half-close: HTTP/1.1 keeps the connection to answer, so
    // such a call stays listed until decided or timed out; a failed send (SSE) closes it.
    for (size_t i = 0; i < held_.size();) {
      if (held_[i]->slot.valid()) {
        ++i;
        continue;
      }
      approval_request gone;
      gone.id = held_[i]->id;
      gone.gone = true;
      if (!port_.approvals_out.try_push(std::move(gone))) break;  // next sweep
      held_free_.push_back(std::move(held_[i]));
      held_[i] = std::move(held_.back());
      held_.pop_back();
    }
  }
  port_.approvals_in.drain([&](approval_verdict& v) {
    for (size_t i = 0; i < held_.size(); ++i) {
      if (held_[i]->id != v.id) continue;
      std::unique_ptr<held_call> c = std::move(held_[i]);
      held_[i] = std::move(held_.back());
      held_.pop_back();
      audit_record& r = rec_;
      r = audit_record{};
      r.time_ns = engine::wall_ns();
      r.shard = id_;
      r.event = v.what == approval_outcome::approve ? audit_event::approval_approved
                : v.what == approval_outcome::deny  ? audit_event::approval_denied
                                                    : audit_event::approval_timed_out;
      r.rpc_id.set(std::to_string(c->id));
      r.server.set(c->server);
      r.grant.set(c->grant);
      r.session.set(c->session);
      r.method.set("tools/call");
      r.tool.set(c->tool);
      r.rule.set(c->rule);
      r.reason.set(v.reason);
      push_audit(r);
      if (v.what == approval_outcome::approve) {
        m_.approvals_approved.add();
        if (c->slot.valid() && !s.forward_approved(*c)) {
          answer_refused(*c, "approved, but no upstream server is configured", c->rule);
        }
      } else {
        (v.what == approval_outcome::deny ? m_.approvals_denied : m_.approvals_timed_out).add();
        std::string reason =
            v.what == approval_outcome::deny ? "approval denied" : "approval timed out";
        if (!v.reason.empty()) reason.append(": ").append(v.reason);
        answer_refused(*c, reason, c->rule);
      }
      c->slot = {};
      held_free_.push_back(std::move(c));
      return;
    }
  });
}

void shard_control::answer_refused(held_call& c, std::string_view reason, std::string_view rule) {
  if (!c.slot.valid()) return;
  policy::decision d;
  d.what = policy::verdict::deny;
  d.tool = c.tool;
  d.rule = rule;
  d.reason = reason;
  out_.clear();
  if (c.sse) out_ += "event: message\ndata: ";
  net::append_denial(out_, c.rpc_id, d, true, deny_as_error_);
  if (c.sse) {
    out_ += "\n\n";
    c.slot.write(out_);
    c.slot.finish();
    return;
  }
  c.slot.respond(200, "application/json", out_);
}

void shard_control::scan(std::string_view body, bool batch, size_t count) {
  args_.assign(count, std::string_view{});
  progress_.assign(count, std::string_view{});
  od::document doc;
  // The body was validated by the reader already; this walk only finds the raw views.
  if (parser_.iterate(body.data(), body.size(), body.size() + simdjson::SIMDJSON_PADDING).get(doc))
    return;
  auto one = [&](od::value v, size_t i) {
    od::object o;
    if (v.get_object().get(o)) return;
    od::object params;
    if (o.find_field_unordered("params").get_object().get(params)) return;
    for (auto fr : params) {
      od::field f;
      if (std::move(fr).get(f)) return;
      std::string_view key;
      if (f.unescaped_key().get(key)) return;
      od::value fv = f.value();
      if (key == "arguments") {
        od::object a;
        if (!fv.get_object().get(a) && a.raw_json().get(args_[i])) args_[i] = {};
      } else if (key == "_meta") {
        od::object meta;
        if (fv.get_object().get(meta)) continue;
        od::value tok;
        if (!meta.find_field_unordered("progressToken").get(tok)) {
          progress_[i] = tok.raw_json_token();
          while (!progress_[i].empty() &&
                 (progress_[i].back() == ' ' || progress_[i].back() == '\n' ||
                  progress_[i].back() == '\t' || progress_[i].back() == '\r'))
            progress_[i].remove_suffix(1);
        }
      }
    }
  };
  if (!batch) {
    od::value v;
    if (!doc.get_value().get(v)) one(v, 0);
    return;
  }
  od::array arr;
  if (doc.get_array().get(arr)) return;
  size_t i = 0;
  for (auto er : arr) {
    if (i >= count) break;
    od::value v;
    if (std::move(er).get(v)) return;
    one(v, i++);
  }
}

void shard_control::push_audit(audit_record& r) {
  if (port_.audit.try_push(r)) {
    m_.audit_records.add();
  } else {
    m_.audit_dropped.add();
  }
}

void shard_control::record(const policy::decider& d, const policy::body_decision& bd,
                           const policy::identity& who, std::string_view body, int64_t latency_ns,
                           uint16_t server, std::string_view server_name) {
  const auto overall = static_cast<uint8_t>(bd.overall.what);
  m_.decisions[overall].add();
  if (latency_ns >= 0) m_.decision_latency.observe(latency_ns);
  const auto msgs = d.reader().messages();
  const bool whole_invalid = bd.each.empty();
  if (whole_invalid) m_.count_tool({}, overall, server);
  for (size_t i = 0; i < bd.each.size(); ++i)
    m_.count_tool(msgs[i].target, static_cast<uint8_t>(bd.each[i].what), server);
  // Allowed calls are audited only to a file; refusals also feed the dashboard.
  if (!audit_file_ && bd.overall.what == policy::verdict::allow) return;
  if (audit_file_ && !whole_invalid) scan(body, bd.batch, bd.each.size());
  const int64_t now = engine::wall_ns();
  const size_t n = whole_invalid ? 1 : bd.each.size();
  for (size_t i = 0; i < n; ++i) {
    const policy::decision& dc = whole_invalid ? bd.overall : bd.each[i];
    if (!audit_file_ && dc.what == policy::verdict::allow) continue;
    audit_record& r = rec_;
    r.time_ns = now;
    r.latency_ns = latency_ns < 0 ? 0 : latency_ns;  // timed whenever an audit file is written
    r.shard = id_;
    r.event = audit_event::decision;
    r.verdict = static_cast<uint8_t>(dc.what);
    r.policy_version = seen_version_;  // adopted between loop iterations: the decider's version
    r.server.set(server_name);
    r.grant.set(who.grant);
    r.session.set(who.session);
    r.method.set(whole_invalid ? std::string_view{} : msgs[i].method);
    r.tool.set(whole_invalid ? std::string_view{} : msgs[i].target);
    r.rule.set(dc.rule);
    r.reason.set(dc.reason);
    r.has_digest = false;
    if (audit_file_ && !whole_invalid && !args_[i].empty()) {
      const net::sha256_digest dg = net::sha256(args_[i]);
      std::memcpy(r.args_sha256, dg.data(), dg.size());
      r.has_digest = true;
    }
    push_audit(r);
  }
}

bool shard_control::park_for_approval(const policy::decider& d, const policy::body_decision& bd,
                                      const net::http_request& req, net::response_slot slot,
                                      const policy::identity& who, std::string_view server_name) {
  if (!plane_->options().approvals) return false;
  if (bd.batch || bd.each.size() != 1 || bd.overall.what != policy::verdict::approval_required)
    return false;
  const policy::message& m = d.reader().messages()[0];
  if (m.method_kind != policy::method_id::tools_call) return false;
  if (held_.size() >= plane_->options().max_approvals) {
    m_.approvals_refused.add();
    return false;
  }
  scan(req.body, false, 1);
  std::unique_ptr<held_call> c;
  if (held_free_.empty()) {
    c = std::make_unique<held_call>();
  } else {
    c = std::move(held_free_.back());
    held_free_.pop_back();
  }
  c->id = (static_cast<uint64_t>(id_) << 40) | next_seq_++;
  approval_request ar;
  ar.id = c->id;
  ar.since_wall_ns = engine::wall_ns();
  ar.tool.assign(m.target);
  ar.arguments.assign(args_[0]);
  ar.grant.assign(who.grant);
  ar.session.assign(who.session);
  if (!port_.approvals_out.try_push(std::move(ar))) {
    m_.approvals_refused.add();
    held_free_.push_back(std::move(c));
    return false;
  }
  m_.approvals_parked.add();
  c->slot = slot;
  c->rpc_id.assign(m.id);
  c->tool.assign(m.target);
  c->rule.assign(bd.overall.rule);
  c->grant.assign(who.grant);
  c->session.assign(who.session);
  c->server.assign(server_name);
  c->method.assign(req.method);
  c->target.assign(req.target);
  c->content_type.assign(req.content_type);
  c->accept.assign(req.accept);
  c->protocol_version.assign(req.mcp_protocol_version);
  c->last_event_id.assign(req.last_event_id);
  c->mcp_method.assign(req.mcp_method);
  c->mcp_name.assign(req.mcp_name);
  c->body_size = req.body.size();
  c->body.assign(req.body);
  c->body.append(simdjson::SIMDJSON_PADDING, ' ');
  c->sse = !progress_[0].empty() && req.accept.find(kEventStream) != std::string_view::npos;
  if (c->sse) {
    // The agent asked for a stream and gave a progress token: tell it why it waits.
    slot.begin(200, kEventStream);
    out_.assign(
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\","
        "\"params\":{\"progressToken\":");
    out_.append(progress_[0]);
    out_.append(",\"progress\":0,\"message\":");
    net::append_json_string(out_, "awaiting approval (id " + std::to_string(c->id) + ")");
    out_.append("}}\n\n");
    c->slot.write(out_);
  }
  held_.push_back(std::move(c));
  return true;
}

void shard_control::upstream_head(int status, int64_t sent_ns) {
  if (status >= 500) m_.upstream_5xx.add();
  if (sent_ns != 0) m_.upstream_latency.observe(shard_.now_ns() - sent_ns);
}

void shard_control::upstream_failed(uint8_t error) {
  if (error < kUpstreamErrors) m_.upstream_errors[error].add();
}

}  // namespace sluice::control
