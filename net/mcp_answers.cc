#include "net/mcp_answers.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "policy/short_bytes.h"

namespace sluice::net {

namespace {
void append_int(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

void append_seconds(std::string& out, int64_t ns) {
  char buf[32];
  const int n = std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(ns) / 1e9);
  out.append(buf, static_cast<size_t>(n));
}

void append_id(std::string& out, std::string_view id) {
  if (id.empty()) {
    out += "null";
  } else {
    out += id;  // raw token: echoed exactly as the client sent it
  }
}

int error_code(policy::verdict v) {
  switch (v) {
    case policy::verdict::rate_limited:
      return kErrorRateLimited;
    case policy::verdict::approval_required:
      return kErrorApprovalRequired;
    default:
      return kErrorDenied;
  }
}

// "[POLICY DENIED] reason" plus, for rate limits, when to retry. Escaped in place.
void append_denial_text(std::string& out, const policy::decision& d) {
  std::string_view reason = d.reason;
  if (reason.empty()) reason = "denied by policy";
  out += "\"[POLICY DENIED] ";
  const size_t at = out.size();
  append_json_string(out, reason);
  out.erase(at, 1);  // drop the opening quote append_json_string wrote
  out.pop_back();    // and its closing quote
  if (d.what == policy::verdict::rate_limited) {
    out += " (retry in ";
    append_int(out, retry_after_seconds(d.retry_after_ns));
    out += "s)";
  }
  out += '"';
}

void append_meta(std::string& out, const policy::decision& d) {
  out += "{\"sluice/decision\":";
  append_json_string(out, policy::to_string(d.what));
  out += ",\"sluice/rule\":";
  append_json_string(out, d.rule);
  if (d.what == policy::verdict::rate_limited) {
    out += ",\"sluice/retry_after\":";
    append_seconds(out, d.retry_after_ns);
  }
  out += '}';
}
}  // namespace

void append_rpc_error(std::string& out, std::string_view id, int code, std::string_view message) {
  out += "{\"jsonrpc\":\"2.0\",\"id\":";
  append_id(out, id);
  out += ",\"error\":{\"code\":";
  append_int(out, code);
  out += ",\"message\":";
  append_json_string(out, message);
  out += "}}";
}

void append_denial(std::string& out, std::string_view id, const policy::decision& d,
                   bool is_tool_call, bool as_error) {
  out += "{\"jsonrpc\":\"2.0\",\"id\":";
  append_id(out, id);
  if (is_tool_call && !as_error) {
    out += ",\"result\":{\"content\":[{\"type\":\"text\",\"text\":";
    append_denial_text(out, d);
    out += "}],\"isError\":true,\"_meta\":";
    append_meta(out, d);
    out += "}}";
    return;
  }
  out += ",\"error\":{\"code\":";
  append_int(out, error_code(d.what));
  out += ",\"message\":";
  append_denial_text(out, d);
  out += ",\"data\":";
  append_meta(out, d);
  out += "}}";
}

namespace {
// The body's constant start for each verdict, up to the tool name's first byte: one append
// instead of four on the decision service's every answer.
std::string_view decision_start(policy::verdict v) {
  switch (v) {
    case policy::verdict::allow:
      return R"({"decision":"allow","tool":")";
    case policy::verdict::deny:
      return R"({"decision":"deny","tool":")";
    case policy::verdict::rate_limited:
      return R"({"decision":"rate_limited","tool":")";
    case policy::verdict::approval_required:
      return R"({"decision":"approval_required","tool":")";
    case policy::verdict::invalid:
      break;
  }
  return R"({"decision":"invalid","tool":")";
}
}  // namespace

decision_body::decision_body(const policy::decision& d)
    : d_(d),
      start_(decision_start(d.what)),
      tool_(policy::json_escaped_size(d.tool)),
      rule_(policy::json_escaped_size(d.rule)),
      reason_(policy::json_escaped_size(d.reason)) {
  char* p = extra_;
  char* const end = extra_ + sizeof extra_;
  if (d.what == policy::verdict::rate_limited) {
    constexpr std::string_view kRetry = ",\"retry_after\":";
    p = std::copy(kRetry.begin(), kRetry.end(), p);
    const int n = std::snprintf(p, static_cast<size_t>(end - p), "%.3f",
                                static_cast<double>(d.retry_after_ns) / 1e9);
    p += std::clamp(n, 0, static_cast<int>(end - p) - 1);  // at most 14 digits: never clamped
  }
  if (d.what == policy::verdict::invalid) {
    constexpr std::string_view kError = ",\"error\":{\"code\":";
    p = std::copy(kError.begin(), kError.end(), p);
    p = std::to_chars(p, end, static_cast<int>(d.error)).ptr;
  }
  extra_len_ = static_cast<size_t>(p - extra_);
  size_ =
      start_.size() + tool_ + kRule.size() + rule_ + kReason.size() + reason_ + 1 + extra_len_ + 1;
  if (d.what == policy::verdict::invalid) size_ += kMessage.size() + reason_ + 2;
}

char* decision_body::put(char* p) const {
  auto copy = [&p](std::string_view s) { p = policy::put_short(p, s); };
  copy(start_);
  p = policy::put_json_escaped(p, d_.tool, tool_);
  copy(kRule);
  p = policy::put_json_escaped(p, d_.rule, rule_);
  copy(kReason);
  p = policy::put_json_escaped(p, d_.reason, reason_);
  *p++ = '"';
  if (extra_len_ != 0) copy(std::string_view(extra_, extra_len_));
  if (d_.what == policy::verdict::invalid) {  // the reason again, as the error's message
    copy(kMessage);
    p = policy::put_json_escaped(p, d_.reason, reason_);
    copy("\"}");
  }
  *p++ = '}';
  return p;
}

void append_decision_body(std::string& out, const policy::decision& d) {
  const decision_body body(d);
  const size_t at = out.size();
  out.resize(at + body.size());
  body.put(out.data() + at);
}

int64_t retry_after_seconds(int64_t ns) {
  const int64_t s = (ns + 999'999'999) / 1'000'000'000;
  return s < 1 ? 1 : s;
}

}  // namespace sluice::net
