// The decision core against its floor: what it costs to decide one tools/call, beside what
// it costs simdjson merely to read the fields a decision needs.
//
//   meson setup build-release --buildtype=release && ninja -C build-release
//   taskset -c 1 build-release/bench/policy/decide_bench
//
// Targets (ratios within one run, see docs/benchmarks.md): the full decision for an allowed
// call within 2x BM_floor; the 10,000-name + 1,000-pattern policy within 1.3x of the
// one-tool policy.

#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <string>

#include "policy/compiled_policy.h"
#include "policy/decider.h"
#include "policy/loader.h"

namespace {

using namespace sluice::policy;
namespace od = simdjson::ondemand;

// A ~200-byte tools/call, as an agent sends it.
std::string call(std::string_view tool) {
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

std::shared_ptr<const compiled_policy> compile(const std::string& text) {
  load_result r = load_policy_text(text, "bench");
  if (!r.errors.empty()) {
    std::fprintf(stderr, "bench policy: %s\n", r.errors.front().to_string().c_str());
    std::abort();
  }
  return compiled_policy::compile(*r.policy);
}

void set_counters(benchmark::State& state, size_t bytes) {
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

// The floor: iterate, read id (raw), method, params.name and params.arguments (raw).
void BM_floor(benchmark::State& state) {
  padded_message m(call("read_file"));
  od::parser parser;
  for (auto _ : state) {
    od::document doc;
    if (parser.iterate(m.body.data(), m.body.size(), m.body.capacity()).get(doc)) std::abort();
    od::object obj;
    if (doc.get_object().get(obj)) std::abort();
    std::string_view id, method, name, args;
    for (auto fr : obj) {
      od::field f;
      if (std::move(fr).get(f)) std::abort();
      std::string_view key;
      if (f.unescaped_key().get(key)) std::abort();
      if (key == "id") {
        id = f.value().raw_json_token();
      } else if (key == "method") {
        if (f.value().get_string().get(method)) std::abort();
      } else if (key == "params") {
        od::object params;
        if (f.value().get_object().get(params)) std::abort();
        for (auto pr : params) {
          od::field p;
          if (std::move(pr).get(p)) std::abort();
          std::string_view pkey;
          if (p.unescaped_key().get(pkey)) std::abort();
          od::object a;
          if (pkey == "name") {
            if (p.value().get_string().get(name)) std::abort();
          } else if (pkey == "arguments") {
            if (p.value().get_object().get(a) || a.raw_json().get(args)) std::abort();
          }
        }
      } else {
        std::string_view skip;
        if (f.value().get_string().get(skip)) std::abort();
      }
    }
    benchmark::DoNotOptimize(id);
    benchmark::DoNotOptimize(method);
    benchmark::DoNotOptimize(name);
    benchmark::DoNotOptimize(args);
  }
  set_counters(state, m.body.size());
}
BENCHMARK(BM_floor);

// Extraction alone: the hardened reader (full validation, duplicate checks, unescaping).
void BM_extract(benchmark::State& state) {
  padded_message m(call("read_file"));
  auto policy = compile(R"({"version":"1","default":"deny","tools":{"read_file":{}}})");
  message_reader reader;
  for (auto _ : state) {
    if (!reader.read(m.view(), policy->args())) std::abort();
    benchmark::DoNotOptimize(reader.messages().data());
  }
  set_counters(state, m.body.size());
}
BENCHMARK(BM_extract);

void run_decide(benchmark::State& state, const std::string& policy_text, std::string_view tool,
                verdict expected) {
  padded_message m(call(tool));
  limiter_shard limiter;
  decider d(compile(policy_text), limiter);
  const identity who{"bench-grant", "bench-session"};
  int64_t now = 1'700'000'000'000'000'000;
  if (d.decide(m.view(), who, now).overall.what != expected) {
    state.SkipWithError("unexpected verdict");
    return;
  }
  for (auto _ : state) {
    const body_decision& r = d.decide(m.view(), who, ++now);
    benchmark::DoNotOptimize(r.overall.what);
  }
  set_counters(state, m.body.size());
}

void BM_decide_allowed(benchmark::State& state) {
  run_decide(state, R"({"version":"1","default":"deny","tools":{"read_file":{}}})", "read_file",
             verdict::allow);
}
BENCHMARK(BM_decide_allowed);

void BM_decide_denied(benchmark::State& state) {
  run_decide(state, R"({"version":"1","default":"deny","tools":{"read_file":{}}})", "delete_bucket",
             verdict::deny);
}
BENCHMARK(BM_decide_denied);

void BM_decide_limited(benchmark::State& state) {
  // A per-grant limit high enough never to trip: the cost of counting.
  run_decide(state,
             R"({"version":"1","default":"deny","tools":{"read_file":{"limits":[
               {"counter":"reads","window":"day","max":4000000000,"scope":"grant"}]}}})",
             "read_file", verdict::allow);
}
BENCHMARK(BM_decide_limited);

void BM_decide_regex(benchmark::State& state) {
  run_decide(state,
             R"({"version":"1","default":"deny","tools":{"read_file":{
               "require":[{"path":"args.path","op":"regex","value":"^/data/[a-z0-9/_-]+\\.parquet$"}],
               "deny_if":[{"path":"args.region","op":"in","value":["us-gov-west-1","cn-north-1"]}]}}})",
             "read_file", verdict::allow);
}
BENCHMARK(BM_decide_regex);

void BM_decide_big_policy(benchmark::State& state) {
  // 10,000 exact names and 1,000 patterns; the call names one of the exact tools.
  std::string text = R"({"version":"1","default":"deny","tools":{)";
  for (int i = 0; i < 10000; ++i)
    text += "\"tool_" + std::to_string(i) + "\":{},";
  for (int i = 0; i < 1000; ++i)
    text += "\"svc" + std::to_string(i) + "_*_get?\":{},";
  text += R"("read_file":{}}})";
  run_decide(state, text, "read_file", verdict::allow);
}
BENCHMARK(BM_decide_big_policy);

void BM_decide_big_policy_pattern(benchmark::State& state) {
  // The same policy, but the call only matches a pattern: the prefix-indexed search.
  std::string text = R"({"version":"1","default":"deny","tools":{)";
  for (int i = 0; i < 10000; ++i)
    text += "\"tool_" + std::to_string(i) + "\":{},";
  for (int i = 0; i < 1000; ++i)
    text += "\"svc" + std::to_string(i) + "_*_get?\":{},";
  text += R"("read_file":{}}})";
  run_decide(state, text, "svc512_reports_gets", verdict::allow);
}
BENCHMARK(BM_decide_big_policy_pattern);

}  // namespace

BENCHMARK_MAIN();
