// What binding session ids to grants (net/session_binding.h) costs per request, beside what
// every request with --grants already pays: the SHA-256 of its bearer token
// (net/grants.cc). Run: build/release/bench/net/session_bench
#include <benchmark/benchmark.h>

#include <string>

#include "net/grants.h"
#include "net/session_binding.h"

namespace {

using sluice::net::session_binding;

constexpr std::array<uint8_t, 16> kKey = {7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
// A session id as the MCP TypeScript SDK makes them (a UUID), and a typical grant name.
const std::string kUpstreamId = "0f8e6c4a-3b2d-4e1f-9a8b-7c6d5e4f3a2b";
const std::string kGrant = "ci-agent";

// The tag appended to the upstream's id in its answer.
void BM_SessionTag(benchmark::State& state) {
  const session_binding b(kKey);
  std::string out;
  out.reserve(128);
  for (auto _ : state) {
    out.assign(kUpstreamId);
    b.append_tag(out, "/mcp", kGrant, kUpstreamId);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_SessionTag);

// The check of a request's Mcp-Session-Id.
void BM_SessionVerify(benchmark::State& state) {
  const session_binding b(kKey);
  std::string sid = kUpstreamId;
  b.append_tag(sid, "/mcp", kGrant, kUpstreamId);
  for (auto _ : state) {
    std::string_view up;
    bool ok = b.verify("/mcp", kGrant, sid, up);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(up);
  }
}
BENCHMARK(BM_SessionVerify);

// The peer: hashing a bearer token, as grant_table::find does for every request.
void BM_BearerTokenHash(benchmark::State& state) {
  const std::string token = "sk-agent-3b2d4e1f9a8b7c6d5e4f3a2b1c0d9e8f";
  for (auto _ : state) {
    auto d = sluice::net::sha256(token);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_BearerTokenHash);

}  // namespace

BENCHMARK_MAIN();
