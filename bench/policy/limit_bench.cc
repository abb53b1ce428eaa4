// Rate limits across shards (issue 4): what one local limit check costs, and how the decision
// path scales on ONE hot counter when each shard counts in its own lease_limiter merged by a
// real net::limit_hub, against a baseline where every thread counts in one shared
// std::atomic<uint64_t> per key.
//
//   meson setup build/release --buildtype=release -Dtests=false
//   ninja -C build/release bench/policy/limit_bench
//   build/release/bench/policy/limit_bench --benchmark_repetitions=5
//
// Targets (docs/benchmarks.md): one local check in the tens of nanoseconds at most; 2 shards
// (lease) at least 1.5x the 2-thread shared-atomic baseline; zero over-admission. The ratios
// are printed at the end of the run, from the medians when there are repetitions. The console
// output is plain text (--benchmark_format is ignored; --benchmark_out still writes JSON).

#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <ostream>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "bench/policy/scenarios.h"
#include "engine/shard.h"
#include "net/limit_hub.h"
#include "policy/lease_limiter.h"
#include "policy/limiter.h"

namespace {

using namespace sluice;
using policy::acquire_result;
using policy::limit_request;
using policy::limiter_key;

constexpr int64_t kSecondNs = 1'000'000'000;
constexpr int64_t kDayNs = 86'400 * kSecondNs;

// The benchmarks' clock starts at a whole day one day ahead of the wall clock. Deciders are
// handed their `now`; a time in the future keeps the hub's expire() (which runs against the
// wall clock) from dropping a key whose window is still being counted.
int64_t bench_epoch() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  const int64_t wall = static_cast<int64_t>(ts.tv_sec) * kSecondNs + ts.tv_nsec;
  return policy::window_end_at(wall, kDayNs) + kDayNs;
}

// The i-th CPU of this process's affinity mask (wrapping); -1 when it cannot be read.
int nth_cpu(unsigned i) {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof mask, &mask) != 0) return -1;
  const int n = CPU_COUNT(&mask);
  if (n <= 0) return -1;
  int want = static_cast<int>(i % static_cast<unsigned>(n));
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &mask)) continue;
    if (want-- == 0) return cpu;
  }
  return -1;
}

void pin_to(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// ---------------------------------------------------------------------------------------------
// The baseline: one std::atomic<uint64_t> per key, shared by every thread (what a limiter
// without shards does). The word packs the window (the low 32 bits of its index) and the count,
// so one CAS both opens a new window and takes its first slot; the CAS loop never lets the count
// pass max. Keys sit on their own cache lines, written once, apart from the counters: the only
// line the threads fight over is the counter itself — the strongest form of this baseline.
class shared_atomic_limiter final : public policy::limiter {
 public:
  // slots: a power of two; more live keys than that fail closed (status full).
  explicit shared_atomic_limiter(size_t slots = 1024)
      : mask_(slots - 1), keys_(new key_slot[slots]), counts_(new count_slot[slots]) {}

  [[nodiscard]] acquire_result acquire(std::span<const limit_request> requests,
                                       int64_t now_ns) override {
    for (size_t i = 0; i < requests.size(); ++i) {
      const limit_request& r = requests[i];
      const int64_t end = policy::window_end_at(now_ns, r.window_ns);
      const size_t s = find(r.key);
      acquire_result::status failed = acquire_result::status::full;
      if (s != kNone && take(counts_[s].value, window_of(end, r.window_ns), r.max)) continue;
      if (s != kNone) failed = acquire_result::status::limited;
      release(requests.first(i), now_ns);  // all or nothing
      return {failed, static_cast<uint32_t>(i), end - now_ns};
    }
    return {};
  }

  // Forgets every count (keys stay). Only while no thread uses the limiter.
  void clear() {
    for (size_t i = 0; i <= mask_; ++i)
      counts_[i].value.store(0, std::memory_order_relaxed);
  }

  void release(std::span<const limit_request> requests, int64_t taken_at_ns) override {
    for (const limit_request& r : requests) {
      const size_t s = find(r.key);
      if (s == kNone) continue;
      const uint32_t window =
          window_of(policy::window_end_at(taken_at_ns, r.window_ns), r.window_ns);
      std::atomic<uint64_t>& word = counts_[s].value;
      uint64_t v = word.load(std::memory_order_relaxed);
      while ((v >> 32) == window && static_cast<uint32_t>(v) != 0 &&
             !word.compare_exchange_weak(v, v - 1, std::memory_order_relaxed)) {
      }
    }
  }

 private:
  static constexpr size_t kNone = SIZE_MAX;
  enum : uint32_t { kEmpty, kClaiming, kReady };
  struct alignas(64) key_slot {
    std::atomic<uint32_t> state{kEmpty};
    limiter_key key;
  };
  struct alignas(64) count_slot {
    std::atomic<uint64_t> value{0};  // window index (low 32 bits) << 32 | slots used
  };

  static uint32_t window_of(int64_t end_ns, int64_t window_ns) {
    return static_cast<uint32_t>(end_ns / window_ns);
  }

  // One slot of the window; false when it is spent. A call from an older window than the
  // word's (a clock that stepped back) counts in the word's window.
  static bool take(std::atomic<uint64_t>& word, uint32_t window, uint32_t max) {
    uint64_t v = word.load(std::memory_order_relaxed);
    for (;;) {
      const auto seen = static_cast<uint32_t>(v >> 32);
      const auto used = static_cast<uint32_t>(v);
      uint64_t next;
      if (static_cast<int32_t>(window - seen) > 0) {
        next = (uint64_t{window} << 32) | 1;
      } else if (used >= max) {
        return false;
      } else {
        next = v + 1;
      }
      if (word.compare_exchange_weak(v, next, std::memory_order_relaxed)) return true;
    }
  }

  // Open addressing; a key is claimed once and never moves or goes away.
  size_t find(const limiter_key& key) {
    size_t i = key.lo & mask_;
    for (size_t probe = 0; probe <= mask_; ++probe, i = (i + 1) & mask_) {
      key_slot& k = keys_[i];
      uint32_t st = k.state.load(std::memory_order_acquire);
      if (st == kEmpty) {
        if (k.state.compare_exchange_strong(st, kClaiming, std::memory_order_acquire)) {
          k.key = key;
          k.state.store(kReady, std::memory_order_release);
          return i;
        }
      }
      while (st == kClaiming)
        st = k.state.load(std::memory_order_acquire);
      if (k.key == key) return i;
    }
    return kNone;
  }

  size_t mask_;
  std::unique_ptr<key_slot[]> keys_;
  std::unique_ptr<count_slot[]> counts_;
};

// ---------------------------------------------------------------------------------------------
// BM_LocalLimitCheck: one acquire() on a hot key through the policy::limiter interface (a
// virtual call, as the decider makes it), in a window and under a max that admit every call.
// `now` moves on by 1 ns per call and every result is checked, so nothing can be hoisted.

limit_request hot_request() {
  limit_request r;
  r.key = {0x9e3779b97f4a7c15, 0x2545f4914f6cdd1d};
  r.window_ns = kDayNs;
  r.max = UINT32_MAX;
  return r;
}

void local_check(benchmark::State& state, policy::limiter& lim) {
  const limit_request req = hot_request();
  int64_t now = bench_epoch() + kDayNs / 2;
  uint64_t refused = 0;
  for (auto _ : state) {
    const acquire_result a = lim.acquire(std::span<const limit_request>(&req, 1), now++);
    benchmark::DoNotOptimize(a);
    refused += a.what != acquire_result::status::ok;
  }
  if (refused != 0) state.SkipWithError("a local check did not admit");
  state.SetItemsProcessed(state.iterations());
}

// The shard-local path of `sluice serve`: shard 0 of 2, no hub (its initial share, max / 2,
// covers every call of the run, so it never has to wait).
void BM_LocalLimitCheck_lease(benchmark::State& state) {
  policy::lease_limiter lim(0, 2);
  local_check(state, lim);
}
BENCHMARK(BM_LocalLimitCheck_lease);

// The single-process limiter (`sluice eval`, one shard alone).
void BM_LocalLimitCheck_limiter_shard(benchmark::State& state) {
  policy::limiter_shard lim;
  local_check(state, lim);
}
BENCHMARK(BM_LocalLimitCheck_limiter_shard);

// The baseline's check, uncontended (one thread) and contended (threads on one counter).
void BM_LocalLimitCheck_shared_atomic(benchmark::State& state) {
  static shared_atomic_limiter shared;  // one counter for every thread of a run
  // Each run counts from zero (so no number of runs reaches max). The other threads touch the
  // limiter only inside the loop, which starts after every thread has got there.
  if (state.thread_index() == 0) shared.clear();
  local_check(state, shared);
}
BENCHMARK(BM_LocalLimitCheck_shared_atomic)->ThreadRange(1, 2)->UseRealTime();

// Each thread its own lease_limiter on the same key: nothing shared, for comparison.
void BM_LocalLimitCheck_lease_per_thread(benchmark::State& state) {
  policy::lease_limiter lim(static_cast<unsigned>(state.thread_index()),
                            static_cast<unsigned>(state.threads()));
  local_check(state, lim);
}
BENCHMARK(BM_LocalLimitCheck_lease_per_thread)->Threads(2)->UseRealTime();

// ---------------------------------------------------------------------------------------------
// BM_HotCounter: K decision threads, pinned to distinct CPUs, each running the full
// policy::decider on pre-built tools/call bodies that all count against ONE counter (scope
// global). An iteration: every thread decides kPerThread calls at the same `now`.
// - Throughput (BM_HotCounter): max far above demand, a day's window, `now` moving on by 1 us an
//   iteration: every iteration counts in the same window, as a busy gateway does between two
//   window starts.
// - Exactness (BM_HotCounter_capped): max three quarters of an iteration's demand, a window of a
//   second, `now` moving on by a second an iteration: each iteration counts in a window of its
//   own (so it also pays for a window start), and must admit exactly max.
//
// - lease: thread i owns port i of a real net::limit_hub (its own thread, default 2 ms merge
//   interval) and decides with the port's lease_limiter. Between batches of kBatch decisions it
//   turns the port as net/gateway.cc's on_loop() does: receive(), decide parked calls again if
//   that says so, send(). A decision that answers `wait` is parked like the gateway parks it.
//   The hub wakes a port's engine::shard after writing to it; these shards are constructed but
//   never init()ed (no ring, wake fd -1, so wake() is a failed write): the threads poll their
//   port between batches, as a shard under load does, instead of sleeping on the eventfd.
// - lease_merge_1ms: the same with a 1 ms merge interval (`--merge-interval-ms 1`, the least
//   `sluice serve` takes): how much of the lease figure is the time calls wait for the hub.
// - shared_atomic: every thread decides with one shared_atomic_limiter.
// - alone: one thread, a lease_limiter of a lone shard and no hub: the floor.
//
// A thread that has decided its share keeps turning its port until every thread is done (its
// unused lease may be claimed for the others' parked calls).

enum class variant { lease, lease_merge_1ms, shared_atomic, alone };

constexpr uint32_t kPerThread = 8192;  // decisions per thread per iteration
// Decisions between two turns of the limits port: a loop iteration's batch of completions.
constexpr uint32_t kBatch = 32;
constexpr size_t kBodies = 64;

std::string hot_policy(uint32_t max, const char* window) {
  return R"({"version":"1","default":"deny","tools":{"read_file":{"limits":[
    {"counter":"hot","window":")" +
         std::string(window) + R"(","max":)" + std::to_string(max) + R"(,"scope":"global"}]}}})";
}

// A tools/call with id n (the bodies differ in their ids, as an agent's calls do).
std::string call_with_id(size_t n) {
  std::string body = bench::call("read_file");
  const std::string id = "\"id\":" + std::to_string(12345 + n);
  const size_t at = body.find("\"id\":12345");
  body.replace(at, 10, id);
  return body;
}

struct alignas(64) worker_result {  // a cache line each: written by one worker only
  uint64_t admitted = 0;
  uint64_t refused = 0;
  uint64_t parked = 0;  // calls that answered `wait` at least once
  uint64_t waits = 0;   // decisions that answered `wait` (a parked call decided again counts again)
};

class hot_counter_run {
 public:
  hot_counter_run(variant v, unsigned threads, uint32_t max, const char* window)
      : threads_(threads), policy_(bench::compile(hot_policy(max, window))) {
    bodies_.reserve(kBodies);
    for (size_t i = 0; i < kBodies; ++i)
      bodies_.emplace_back(call_with_id(i));
    if (v == variant::lease || v == variant::lease_merge_1ms) {
      net::limit_hub_options o;
      o.shards = threads;
      if (v == variant::lease_merge_1ms) o.merge_interval = std::chrono::milliseconds(1);
      hub_ = std::make_unique<net::limit_hub>(o);
      for (unsigned t = 0; t < threads; ++t)
        shards_.push_back(std::make_unique<engine::shard>(t, -1, -1, engine::shard_config{}));
      hub_->start();
    }
    if (v == variant::shared_atomic) shared_ = std::make_unique<shared_atomic_limiter>();
    results_.resize(threads);
    for (unsigned t = 0; t < threads; ++t)
      workers_.emplace_back([this, t] { work(t); });
  }
  hot_counter_run(const hot_counter_run&) = delete;
  hot_counter_run& operator=(const hot_counter_run&) = delete;

  ~hot_counter_run() {
    stop_.store(true, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    for (std::thread& w : workers_)
      w.join();
    if (hub_) hub_->stop();
  }

  // One iteration, every thread deciding in the window of now_ns. Returns the sum of the
  // threads' results. The calling thread sleeps meanwhile.
  worker_result iterate(int64_t now_ns) {
    now_.store(now_ns, std::memory_order_relaxed);
    const uint64_t gen = generation_.fetch_add(1, std::memory_order_release) + 1;
    generation_.notify_all();
    const uint64_t all = gen * threads_;
    for (uint64_t f = finished_.load(std::memory_order_acquire); f < all;
         f = finished_.load(std::memory_order_acquire))
      finished_.wait(f, std::memory_order_acquire);
    worker_result sum;
    for (const worker_result& r : results_) {
      sum.admitted += r.admitted;
      sum.refused += r.refused;
      sum.parked += r.parked;
      sum.waits += r.waits;
    }
    return sum;
  }

  // Null unless variant::lease.
  [[nodiscard]] const net::limit_hub* hub() const { return hub_.get(); }

 private:
  void work(unsigned t) {
    pin_to(nth_cpu(t));
    policy::lease_limiter alone(0, 1);
    net::limit_hub::port* port = hub_ ? &hub_->attach(t, *shards_[t]) : nullptr;
    policy::limiter& lim = port != nullptr ? static_cast<policy::limiter&>(port->limiter())
                           : shared_       ? static_cast<policy::limiter&>(*shared_)
                                           : static_cast<policy::limiter&>(alone);
    policy::decider decider(policy_, lim);
    const policy::identity who{"bench-grant", "bench-session"};
    std::vector<uint32_t> parked, redo;
    parked.reserve(kPerThread);
    redo.reserve(kPerThread);
    uint64_t gen = 0;
    for (;;) {
      generation_.wait(gen, std::memory_order_acquire);
      gen = generation_.load(std::memory_order_acquire);
      if (stop_.load(std::memory_order_relaxed)) break;
      const int64_t now = now_.load(std::memory_order_relaxed);
      worker_result r;
      auto decide = [&](uint32_t b, bool again) {
        const policy::body_decision& bd = decider.decide(bodies_[b].view(), who, now);
        if (bd.wait()) {
          parked.push_back(b);
          ++r.waits;
          r.parked += again ? 0 : 1;
        } else if (bd.overall.what == policy::verdict::allow) {
          ++r.admitted;
        } else {
          ++r.refused;
        }
      };
      auto turn_port = [&] {  // net/gateway.cc on_loop()
        if (port == nullptr) return;
        if (port->receive() && !parked.empty()) {
          redo.swap(parked);
          for (uint32_t b : redo)
            decide(b, true);
          redo.clear();
        }
        port->send(!parked.empty());
      };
      uint32_t next = t * 7;
      for (uint32_t done = 0; done < kPerThread;) {
        const uint32_t n = std::min(kBatch, kPerThread - done);
        for (uint32_t i = 0; i < n; ++i)
          decide(next++ % kBodies, false);
        done += n;
        turn_port();
      }
      while (!parked.empty()) {
        turn_port();
        if (!parked.empty()) std::this_thread::yield();
      }
      results_[t] = r;
      finished_.fetch_add(1, std::memory_order_release);
      finished_.notify_all();
      const uint64_t all = gen * threads_;
      while (port != nullptr && finished_.load(std::memory_order_acquire) < all) {
        turn_port();
        std::this_thread::yield();
      }
    }
    if (hub_) hub_->detach(t);
  }

  unsigned threads_;
  std::shared_ptr<const policy::compiled_policy> policy_;
  std::vector<bench::padded_message> bodies_;
  std::unique_ptr<net::limit_hub> hub_;
  std::vector<std::unique_ptr<engine::shard>> shards_;
  std::unique_ptr<shared_atomic_limiter> shared_;
  std::vector<worker_result> results_;
  std::atomic<int64_t> now_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> finished_{0};  // threads done, summed over iterations
  std::atomic<bool> stop_{false};
  std::vector<std::thread> workers_;
};

// capped: max is three quarters of an iteration's demand and each iteration counts in a window
// of its own; else max is far above demand and every iteration counts in the same window. Either
// way, an iteration must admit exactly min(max, demand): over is the failure the targets name,
// under is reported as well.
void BM_HotCounter(benchmark::State& state, variant v, unsigned threads, bool capped) {
  const uint64_t demand = uint64_t{threads} * kPerThread;
  const auto max = static_cast<uint32_t>(capped ? demand * 3 / 4 : UINT32_MAX);
  const uint64_t expect = std::min<uint64_t>(max, demand);
  hot_counter_run run(v, threads, max, capped ? "second" : "day");
  const int64_t step = capped ? kSecondNs : 1000;
  int64_t now = bench_epoch() + kSecondNs / 2;
  uint64_t over = 0, least = UINT64_MAX, most = 0, parked = 0, waits = 0;
  // What the hub did during the measured iterations (merges, grants, claims, closes).
  auto hub_counts = [&run] {
    std::array<uint64_t, 4> c{};
    if (const net::limit_hub* h = run.hub()) {
      c = {h->stats().merges.load(std::memory_order_relaxed),
           h->stats().grants.load(std::memory_order_relaxed),
           h->stats().claims.load(std::memory_order_relaxed),
           h->stats().closes.load(std::memory_order_relaxed)};
    }
    return c;
  };
  const std::array<uint64_t, 4> hub_before = hub_counts();
  for (auto _ : state) {
    const worker_result r = run.iterate(now);
    now += step;
    least = std::min(least, r.admitted);
    most = std::max(most, r.admitted);
    if (r.admitted > expect) ++over;
    parked += r.parked;
    waits += r.waits;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * demand));
  if (run.hub() != nullptr) {
    const std::array<uint64_t, 4> hub_after = hub_counts();
    constexpr const char* kHubCounters[] = {"merges", "grants", "claims", "closes"};
    for (size_t i = 0; i < hub_after.size(); ++i) {
      state.counters[kHubCounters[i]] = benchmark::Counter(
          static_cast<double>(hub_after[i] - hub_before[i]), benchmark::Counter::kAvgIterations);
    }
  }
  state.counters["expect"] = static_cast<double>(expect);
  state.counters["admit_min"] = static_cast<double>(least);
  state.counters["admit_max"] = static_cast<double>(most);
  state.counters["parked"] =
      benchmark::Counter(static_cast<double>(parked), benchmark::Counter::kAvgIterations);
  state.counters["waits"] =
      benchmark::Counter(static_cast<double>(waits), benchmark::Counter::kAvgIterations);
  if (over != 0) {
    state.SkipWithError("over-admission: more calls admitted than expected in some iteration");
  } else if (least != expect) {
    state.SkipWithError("under-admission: fewer calls admitted than min(max, demand)");
  }
}

const char* name_of(variant v) {
  switch (v) {
    case variant::lease:
      return "lease";
    case variant::lease_merge_1ms:
      return "lease_merge_1ms";
    case variant::shared_atomic:
      return "shared_atomic";
    case variant::alone:
      return "alone";
  }
  return "?";
}

const bool kRegistered = [] {
  struct config {
    variant v;
    unsigned threads;
  };
  constexpr config kConfigs[] = {{variant::alone, 1},         {variant::lease, 1},
                                 {variant::shared_atomic, 1}, {variant::lease, 2},
                                 {variant::shared_atomic, 2}, {variant::lease_merge_1ms, 2}};
  for (const bool capped : {false, true}) {
    for (const config& c : kConfigs) {
      const std::string name = std::string(capped ? "BM_HotCounter_capped/" : "BM_HotCounter/") +
                               name_of(c.v) + "/threads:" + std::to_string(c.threads);
      benchmark::RegisterBenchmark(name.c_str(), BM_HotCounter, c.v, c.threads, capped)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  return true;
}();

// ---------------------------------------------------------------------------------------------
// Prints the runs as the console reporter does, then the ratios the targets are stated in,
// from the medians (or the single run without repetitions).
class ratio_reporter : public benchmark::ConsoleReporter {
 public:
  ratio_reporter() : ConsoleReporter(OO_None) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      const bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
      const bool single = r.run_type == Run::RT_Iteration && r.repetitions <= 1;
      if (!median && !single) continue;
      auto it = r.counters.find("items_per_second");
      if (it != r.counters.end()) rate_[r.run_name.function_name + threads_of(r)] = it->second;
    }
    ConsoleReporter::ReportRuns(runs);
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::ostream& out = GetOutputStream();
    out << "\nRatios (items/s, medians):\n";
    ratio(out, "BM_HotCounter/lease/threads:2", "BM_HotCounter/shared_atomic/threads:2",
          "2 shards lease / 2 threads shared atomic (target >= 1.5)");
    ratio(out, "BM_HotCounter/lease_merge_1ms/threads:2", "BM_HotCounter/shared_atomic/threads:2",
          "2 shards lease, 1 ms merges / 2 threads shared atomic");
    ratio(out, "BM_HotCounter/lease/threads:2", "BM_HotCounter/lease/threads:1",
          "lease 2 threads / 1 thread");
    ratio(out, "BM_HotCounter/shared_atomic/threads:2", "BM_HotCounter/shared_atomic/threads:1",
          "shared atomic 2 threads / 1 thread");
    ratio(out, "BM_HotCounter/lease/threads:1", "BM_HotCounter/alone/threads:1",
          "lease 1 thread (with hub) / alone (no hub)");
    ratio(out, "BM_HotCounter_capped/lease/threads:2",
          "BM_HotCounter_capped/shared_atomic/threads:2",
          "capped: 2 shards lease / 2 threads shared atomic");
    ratio(out, "BM_LocalLimitCheck_shared_atomic/threads:2",
          "BM_LocalLimitCheck_lease_per_thread/threads:2",
          "local checks, 2 threads: shared atomic / lease per thread");
  }

 private:
  static std::string threads_of(const Run& r) {
    // Names made with ->Threads() carry the count apart from the function name.
    return r.run_name.threads.empty() ? std::string() : "/" + r.run_name.threads;
  }

  void ratio(std::ostream& out, const std::string& a, const std::string& b, const char* what) {
    auto x = rate_.find(a), y = rate_.find(b);
    if (x == rate_.end() || y == rate_.end() || y->second == 0) return;
    char line[160];
    std::snprintf(line, sizeof line, "  %-62s %6.2f\n", what, x->second / y->second);
    out << line;
  }

  std::map<std::string, double> rate_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  ratio_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
