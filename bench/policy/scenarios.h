#pragma once
// The decision scenarios measured by decide_bench (Google Benchmark, time) and
// decide_icount (a fixed number of iterations, for instruction counts under callgrind).

#include <simdjson.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "policy/compiled_policy.h"
#include "policy/decider.h"
#include "policy/loader.h"

namespace sluice::bench {

// A ~200-byte tools/call, as an agent sends it.
inline std::string call(std::string_view tool) {
  return std::string(R"({"jsonrpc":"2.0","id":12345,"method":"tools/call","params":{"name":")") +
         std::string(tool) +
         R"(","arguments":{"path":"/data/reports/2026/11/summary.parquet","region":"eu-west-1","limit":100,"format":"parquet"}}})";
}

// Keeps SIMDJSON_PADDING readable bytes past the message, as the data plane does.
struct padded_message {
  explicit padded_message(std::string text) : body(std::move(text)) {
    body.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  }
  std::string_view view() const { return body; }
  std::string body;
};

inline std::shared_ptr<const policy::compiled_policy> compile(const std::string& text) {
  policy::load_result r = policy::load_policy_text(text, "bench");
  if (!r.errors.empty()) {
    std::fprintf(stderr, "bench policy: %s\n", r.errors.front().to_string().c_str());
    std::abort();
  }
  return policy::compiled_policy::compile(*r.policy);
}

inline std::string big_policy() {
  // 10,000 exact names and 1,000 patterns.
  std::string text = R"({"version":"1","default":"deny","tools":{)";
  for (int i = 0; i < 10000; ++i)
    text += "\"tool_" + std::to_string(i) + "\":{},";
  for (int i = 0; i < 1000; ++i)
    text += "\"svc" + std::to_string(i) + "_*_get?\":{},";
  text += R"("read_file":{}}})";
  return text;
}

struct scenario {
  const char* name;
  std::string policy;
  std::string tool;
  policy::verdict expected;
};

inline const std::vector<scenario>& scenarios() {
  static const std::string kOneTool =
      R"({"version":"1","default":"deny","tools":{"read_file":{}}})";
  static const std::vector<scenario> kAll = {
      {"allowed", kOneTool, "read_file", policy::verdict::allow},
      {"denied", kOneTool, "delete_bucket", policy::verdict::deny},
      // A per-grant limit high enough never to trip: the cost of counting.
      {"limited",
       R"({"version":"1","default":"deny","tools":{"read_file":{"limits":[
         {"counter":"reads","window":"day","max":4000000000,"scope":"grant"}]}}})",
       "read_file", policy::verdict::allow},
      {"regex",
       R"({"version":"1","default":"deny","tools":{"read_file":{
         "require":[{"path":"args.path","op":"regex","value":"^/data/[a-z0-9/_-]+\\.parquet$"}],
         "deny_if":[{"path":"args.region","op":"in","value":["us-gov-west-1","cn-north-1"]}]}}})",
       "read_file", policy::verdict::allow},
      // An anchored regex `deny_if` the path cannot match (the common shape of a deny rule).
      {"regex_miss",
       R"({"version":"1","default":"deny","tools":{"read_file":{
         "deny_if":[{"path":"args.path","op":"regex","value":"^/(etc|root)/"}]}}})",
       "read_file", policy::verdict::allow},
      {"big_policy", big_policy(), "read_file", policy::verdict::allow},
      // The same policy, the call only matching a pattern: the prefix-indexed search.
      {"big_policy_pattern", big_policy(), "svc512_reports_gets", policy::verdict::allow},
  };
  return kAll;
}

// Runs one scenario: a decider over its policy, deciding its call `iterations` times.
struct scenario_runner {
  explicit scenario_runner(const scenario& s)
      : message(call(s.tool)), decider(compile(s.policy), limiter) {}
  bool check(policy::verdict expected) {
    return decider.decide(message.view(), who, ++now).overall.what == expected;
  }
  policy::verdict once() { return decider.decide(message.view(), who, ++now).overall.what; }

  padded_message message;
  policy::limiter_shard limiter;
  policy::decider decider;
  policy::identity who{"bench-grant", "bench-session"};
  int64_t now = 1'700'000'000'000'000'000;
};

// The floor: simdjson iterate + reading id (raw), method, params.name and params.arguments
// (raw) — what any decision must at least do. Returns false on a parse error.
inline bool floor_once(simdjson::ondemand::parser& parser, const padded_message& m) {
  namespace od = simdjson::ondemand;
  od::document doc;
  if (parser.iterate(m.body.data(), m.body.size(), m.body.capacity()).get(doc)) return false;
  od::object obj;
  if (doc.get_object().get(obj)) return false;
  std::string_view id, method, name, args;
  for (auto fr : obj) {
    od::field f;
    if (std::move(fr).get(f)) return false;
    std::string_view key;
    if (f.unescaped_key().get(key)) return false;
    if (key == "id") {
      id = f.value().raw_json_token();
    } else if (key == "method") {
      if (f.value().get_string().get(method)) return false;
    } else if (key == "params") {
      od::object params;
      if (f.value().get_object().get(params)) return false;
      for (auto pr : params) {
        od::field p;
        if (std::move(pr).get(p)) return false;
        std::string_view pkey;
        if (p.unescaped_key().get(pkey)) return false;
        od::object a;
        if (pkey == "name") {
          if (p.value().get_string().get(name)) return false;
        } else if (pkey == "arguments") {
          if (p.value().get_object().get(a) || a.raw_json().get(args)) return false;
        }
      }
    } else {
      std::string_view skip;
      if (f.value().get_string().get(skip)) return false;
    }
  }
  return !id.empty() && !method.empty() && !name.empty() && !args.empty();
}

}  // namespace sluice::bench
