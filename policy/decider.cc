#include "policy/decider.h"

namespace sluice::policy {

std::string_view to_string(verdict v) {
  switch (v) {
    case verdict::allow:
      return "allow";
    case verdict::deny:
      return "deny";
    case verdict::rate_limited:
      return "rate_limited";
    case verdict::approval_required:
      return "approval_required";
    case verdict::invalid:
      return "invalid";
  }
  return "invalid";
}

namespace {
constexpr uint64_t kSeedLo = 0x9e3779b97f4a7c15ull;
constexpr uint64_t kScopeSeeds[] = {0x243f6a8885a308d3ull, 0x13198a2e03707344ull,
                                    0xa4093822299f31d0ull, 0x082efa98ec4e6c89ull};
}  // namespace

decider::decider(std::shared_ptr<const compiled_policy> policy, limiter& limiter,
                 reader_limits limits)
    : policy_(std::move(policy)), limiter_(limiter), reader_(limits) {
  decisions_.reserve(16);
  taken_.reserve(64);
}

const body_decision& decider::decide(std::string_view body, const identity& who, int64_t now_ns) {
  decisions_.clear();
  taken_.clear();
  taken_at_ns_ = now_ns;
  result_ = body_decision{};
  if (!reader_.read(body, policy_->args())) {
    result_.overall.what = verdict::invalid;
    result_.overall.error = reader_.error();
    result_.overall.reason = reader_.error_text();
    return result_;
  }
  result_.batch = reader_.is_batch();
  for (const message& m : reader_.messages())
    decisions_.push_back(decide_one(m, who, now_ns));
  result_.each = decisions_;
  for (const decision& d : decisions_) {
    if (d.what != verdict::allow) {
      result_.overall = d;
      break;
    }
  }
  if (result_.overall.what != verdict::allow) {
    release_all();  // nothing of this body is forwarded: no element keeps a slot
  } else if (!result_.batch) {
    result_.overall = decisions_.front();
  }
  return result_;
}

decision decider::decide_one(const message& m, const identity& who, int64_t now_ns) {
  if (m.error != rpc_error::none) {
    decision d;
    d.what = verdict::invalid;
    d.error = m.error;
    d.reason = m.error_text;
    d.tool = m.target;
    return d;
  }
  if (m.kind == message_kind::response) return {};
  switch (m.method_kind) {
    case method_id::tools_call:
      return decide_rule(policy_->tools().find(m.target), m, who, now_ns);
    case method_id::prompts_get:
      return decide_rule(policy_->prompts().find(m.target), m, who, now_ns);
    case method_id::resources_read:
      return decide_rule(policy_->resources().find(m.target), m, who, now_ns);
    default:
      return {};  // every other method passes
  }
}

decision decider::decide_rule(const compiled_rule& r, const message& m, const identity& who,
                              int64_t now_ns) {
  decision d;
  d.tool = m.target;
  d.rule = r.pointer;
  if (r.act == action::deny) {
    d.what = verdict::deny;
    d.reason = r.reason;
    return d;
  }
  const std::span<const arg_value> args = reader_.args(m);
  bool fail_closed = false;
  for (const compiled_check& c : r.require) {
    if (!check_holds(c, args[c.slot], fail_closed)) {
      d.what = verdict::deny;
      d.rule = c.pointer;
      d.reason = c.reason;
      return d;
    }
  }
  for (const compiled_check& c : r.deny_if) {
    if (check_holds(c, args[c.slot], fail_closed) || fail_closed) {
      d.what = verdict::deny;
      d.rule = c.pointer;
      d.reason = c.reason;
      return d;
    }
  }
  if (r.act == action::require_approval) {
    // Limits are counted when an approved call is forwarded, not while it waits.
    d.what = verdict::approval_required;
    d.reason = r.reason;
    return d;
  }
  if (r.limits.empty()) return d;

  const auto begin = static_cast<uint32_t>(taken_.size());
  char scratch[16];
  for (const compiled_limit& l : r.limits) {
    std::string_view value;
    uint64_t seed = l.counter_hash ^ kScopeSeeds[static_cast<int>(l.scope)];
    switch (l.scope) {
      case scope_kind::global:
        break;
      case scope_kind::grant:
        value = who.grant;
        break;
      case scope_kind::session:
        // A session is counted within its grant: calls without a session id (a stateless
        // server issues none) are one count per grant, not one for every caller, and a
        // caller of another grant that sends this session's id (say, to the decision
        // service) does not use up its count. A session belongs to one grant (the gateway
        // answers 404 to any other), so no real session's count is split.
        seed = hash_bytes(who.grant.data(), who.grant.size(), seed);
        value = who.session;
        break;
      case scope_kind::arg:
        value = canonical_key(args[l.slot], scratch, key_buf_);
        break;
    }
    limit_request req;
    req.key.hi = hash_bytes(value.data(), value.size(), seed);
    req.key.lo = hash_bytes(value.data(), value.size(), seed ^ kSeedLo);
    req.window_ns = l.window_ns;
    req.max = l.max;
    taken_.push_back(req);
  }
  const auto count = static_cast<uint32_t>(taken_.size() - begin);
  const acquire_result a =
      limiter_.acquire(std::span<const limit_request>(taken_.data() + begin, count), now_ns);
  if (a.what == acquire_result::status::ok) {
    d.taken_begin = begin;
    d.taken_count = count;
    return d;
  }
  taken_.resize(begin);
  const compiled_limit& l = r.limits[a.failed];
  d.rule = l.pointer;
  if (a.what == acquire_result::status::limited || a.what == acquire_result::status::wait) {
    d.what = verdict::rate_limited;
    d.wait = a.what == acquire_result::status::wait;
    d.reason = l.reason;
    d.retry_after_ns = a.retry_after_ns;
  } else {
    d.what = verdict::deny;  // fail closed: the shard cannot track another key
    d.reason = "rate limiter is full (too many live keys); refusing rather than not counting";
  }
  return d;
}

void decider::release_all() {
  for (decision& d : decisions_) {
    release(d);
    d.taken_count = 0;
  }
  result_.overall.taken_count = 0;
}

void decider::release(const decision& d) {
  if (d.taken_count == 0) return;
  limiter_.release(std::span<const limit_request>(taken_.data() + d.taken_begin, d.taken_count),
                   taken_at_ns_);
}

}  // namespace sluice::policy
