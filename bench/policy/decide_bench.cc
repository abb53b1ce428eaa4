// The decision core against its floor: what it costs to decide one tools/call, beside what
// it costs simdjson merely to read the fields a decision needs.
//
//   meson setup build/release --buildtype=release && ninja -C build/release
//   taskset -c 1 build/release/bench/policy/decide_bench
//
// Targets (ratios within one run, see docs/benchmarks.md): the full decision for an allowed
// call within 2x BM_floor; the 10,000-name + 1,000-pattern policy within 1.3x of the
// one-tool policy. bench/policy/icount.sh measures the same ratios in instructions.

#include <benchmark/benchmark.h>

#include "bench/policy/scenarios.h"

namespace {

using namespace sluice;

void set_counters(benchmark::State& state, size_t bytes) {
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

void BM_floor(benchmark::State& state) {
  bench::padded_message m(bench::call("read_file"));
  simdjson::ondemand::parser parser;
  for (auto _ : state) {
    if (!bench::floor_once(parser, m)) std::abort();
  }
  set_counters(state, m.body.size());
}
BENCHMARK(BM_floor);

// Extraction alone: the hardened reader (full validation, duplicate checks, unescaping).
void BM_extract(benchmark::State& state) {
  bench::padded_message m(bench::call("read_file"));
  auto policy = bench::compile(R"({"version":"1","default":"deny","tools":{"read_file":{}}})");
  policy::message_reader reader;
  for (auto _ : state) {
    if (!reader.read(m.view(), policy->args())) std::abort();
    benchmark::DoNotOptimize(reader.messages().data());
  }
  set_counters(state, m.body.size());
}
BENCHMARK(BM_extract);

void BM_decide(benchmark::State& state, const bench::scenario* s) {
  bench::scenario_runner run(*s);
  if (!run.check(s->expected)) {
    state.SkipWithError("unexpected verdict");
    return;
  }
  for (auto _ : state)
    benchmark::DoNotOptimize(run.once());
  set_counters(state, run.message.body.size());
}

const bool kRegistered = [] {
  for (const bench::scenario& s : bench::scenarios())
    benchmark::RegisterBenchmark((std::string("BM_decide_") + s.name).c_str(), BM_decide, &s);
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
