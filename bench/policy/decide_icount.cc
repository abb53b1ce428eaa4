// Runs one decision scenario (or the floor) a fixed number of times, for instruction counts
// under callgrind: icount.sh runs it at two iteration counts and divides the difference, so
// set-up cancels out. Instruction counts do not depend on what else the machine is doing.
//
//   decide_icount SCENARIO ITERATIONS     (SCENARIO: floor, extract, or a decide_bench name)

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "bench/policy/scenarios.h"

int main(int argc, char** argv) {
  using namespace sluice;
  if (argc != 3) {
    std::fputs("usage: decide_icount SCENARIO ITERATIONS\n", stderr);
    return 2;
  }
  const long n = std::atol(argv[2]);
  if (std::strcmp(argv[1], "floor") == 0) {
    bench::padded_message m(bench::call("read_file"));
    simdjson::ondemand::parser parser;
    for (long i = 0; i < n; ++i)
      if (!bench::floor_once(parser, m)) return 1;
    return 0;
  }
  if (std::strcmp(argv[1], "extract") == 0) {
    bench::padded_message m(bench::call("read_file"));
    auto p = bench::compile(R"({"version":"1","default":"deny","tools":{"read_file":{}}})");
    policy::message_reader reader;
    for (long i = 0; i < n; ++i)
      if (!reader.read(m.view(), p->args())) return 1;
    return 0;
  }
  for (const bench::scenario& s : bench::scenarios()) {
    if (std::strcmp(argv[1], s.name) != 0) continue;
    bench::scenario_runner run(s);
    for (long i = 0; i < n; ++i)
      if (run.once() != s.expected) return 1;
    return 0;
  }
  std::fprintf(stderr, "unknown scenario %s\n", argv[1]);
  return 2;
}
