// Fuzzes the JSON-RPC envelope reader and the decider behind it: any bytes must be read or
// rejected with a JSON-RPC error, never crash, hang, read past the padding or leak; the
// invariants below are what the gateway relies on when it answers or forwards.

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "policy/compiled_policy.h"
#include "policy/decider.h"
#include "policy/jsonrpc.h"
#include "policy/limiter.h"
#include "policy/loader.h"

namespace {

using namespace sluice::policy;

// A policy touching every part of the reader the decision uses: nested and indexed argument
// paths, every check kind, arg-scoped limits, resources and prompts.
constexpr std::string_view kPolicy = R"({
  "version": "1",
  "default": "deny",
  "tools": {
    "delete_bucket": {
      "limits": [{"counter": "per_bucket", "window": "minute", "max": 3, "scope": "arg:args.bucket"}],
      "deny_if": [{"path": "args.bucket", "op": "regex", "value": "^prod-"},
                  {"path": "/items/0", "op": "contains", "value": "x"}],
      "require": [{"path": "args.options.mode", "op": "in", "value": ["read", "list", 1, true, null]}]
    },
    "read_*": {"require": [{"path": "args.path", "op": "max_length", "value": 64}],
               "deny_if": [{"path": "args.n", "op": "gt", "value": 10}]},
    "*": {"action": "require_approval"}
  },
  "hide": ["internal_*"],
  "all_tools": {"limits": [{"counter": "all", "window": 10, "max": 1000, "scope": "session"}]},
  "resources": {"file:///etc/*": {"action": "deny"}},
  "prompts": {"summarize": {"require": [{"path": "args.items", "op": "max_length", "value": 3}]}}
})";

constexpr reader_limits kLimits{.max_bytes = 1 << 16, .max_depth = 16, .max_batch = 64};

void check(bool ok) {
  if (!ok) std::abort();
}

struct state {
  state() {
    load_result r = load_policy_text(kPolicy, "fuzz.json");
    check(r.policy.has_value());
    policy = compiled_policy::compile(*r.policy);
    dec = std::make_unique<decider>(policy, limiter, kLimits);
  }
  std::shared_ptr<const compiled_policy> policy;
  limiter_shard limiter{limiter_options{.max_keys = 4096}};
  std::unique_ptr<decider> dec;
  message_reader reader{kLimits};
  std::string buf;
  int64_t now = 1'700'000'000'000'000'000;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static state s;
  // Own the bytes with the padding the reader needs; the tail is not JSON.
  s.buf.assign(reinterpret_cast<const char*>(data), size);
  s.buf.append(simdjson::SIMDJSON_PADDING, '\0');
  const std::string_view body(s.buf.data(), size);

  // The reader alone.
  const bool ok = s.reader.read(body, s.policy->args());
  if (!ok) {
    check(s.reader.error() != rpc_error::none);
    check(!s.reader.error_text().empty());
  } else {
    check(s.reader.error() == rpc_error::none);
    check(!s.reader.messages().empty());
    if (!s.reader.is_batch()) {
      check(s.reader.messages().size() == 1);
      check(s.reader.messages()[0].error == rpc_error::none);
    }
    for (const message& m : s.reader.messages()) {
      check(m.error == rpc_error::none || !m.error_text.empty());
      const auto args = s.reader.args(m);
      check(args.size() == s.policy->args().slot_count());
      if (m.error != rpc_error::none) continue;
      // A call is never a notification.
      if (m.method_kind == method_id::tools_call || m.method_kind == method_id::prompts_get ||
          m.method_kind == method_id::resources_read) {
        check(m.kind == message_kind::request);
        check(!m.id.empty());
      }
      if (m.kind == message_kind::request) check(!m.id.empty());
      // A raw id is a JSON string or an integer token.
      if (!m.id.empty()) {
        check(m.id.front() == '"' || m.id.front() == '-' ||
              (m.id.front() >= '0' && m.id.front() <= '9'));
        check(m.id.find_first_of(".eE") == std::string_view::npos || m.id.front() == '"');
      }
      for (const arg_value& v : args) {
        if (v.type == arg_value::kind::array) {
          check(v.text.size() >= 2 && v.text.front() == '[' && v.text.back() == ']');
        }
      }
    }
  }

  // The decider on the same bytes (same limits): the same verdict on validity, and the
  // body's verdict is its first element that is not allowed.
  s.now += 1'000'000;
  const body_decision& d = s.dec->decide(body, identity{"grant", "session"}, s.now);
  if (!ok) {
    check(d.overall.what == verdict::invalid);
    check(d.overall.error == s.reader.error());
    check(d.each.empty());
    return 0;
  }
  check(d.batch == s.reader.is_batch());
  check(d.each.size() == s.reader.messages().size());
  if (!d.batch) check(d.overall.what != verdict::invalid);
  verdict first = verdict::allow;
  for (const decision& e : d.each) {
    check((e.what == verdict::invalid) == (e.error != rpc_error::none));
    if (e.what == verdict::rate_limited) check(e.retry_after_ns > 0);
    if (e.what != verdict::allow) check(e.taken_count == 0);
    if (first == verdict::allow) first = e.what;
  }
  check(d.overall.what == first);
  return 0;
}
