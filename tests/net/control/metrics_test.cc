// Per-shard counters: histogram buckets, the per-tool table and its overflow, totals.

#include "net/control/metrics.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace sluice::control {
namespace {

TEST(histogram, buckets_are_powers_of_two_microseconds) {
  histogram h;
  h.observe(0);
  h.observe(999);                          // under 1 us
  h.observe(1'000);                        // 1 us: bucket 0 (le 1e-06)
  h.observe(1'001'000);                    // 1001 us: le 1024 us = bucket 10
  h.observe(int64_t(10) * 1'000'000'000);  // 10 s: +Inf
  EXPECT_EQ(h.buckets[0].get(), 3u);
  EXPECT_EQ(h.buckets[10].get(), 1u);
  EXPECT_EQ(h.buckets[kLatencyBuckets].get(), 1u);
  EXPECT_DOUBLE_EQ(histogram::bound_seconds(0), 1e-6);
  EXPECT_DOUBLE_EQ(histogram::bound_seconds(10), 1024e-6);
  EXPECT_EQ(h.sum_ns.get(), 999u + 1'000 + 1'001'000 + 10'000'000'000u);
}

TEST(shard_metrics, counts_tools_by_verdict_and_overflows_without_allocating) {
  auto m = std::make_unique<shard_metrics>();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(m.get()) % 64, 0u);  // its own cache lines
  m->count_tool("echo", 0);
  m->count_tool("echo", 0);
  m->count_tool("echo", 1);
  m->count_tool("", 4);
  m->count_tool(std::string(kToolNameMax + 1, 'x'), 1);  // too long: (other)
  for (int i = 0; i < int(kToolSlots) + 10; ++i)
    m->count_tool("tool_" + std::to_string(i), 2);
  uint64_t echo_allow = 0, echo_deny = 0, empty_invalid = 0, named = 0;
  for (const tool_slot& s : m->tools) {
    if (s.hash.load() == 0) continue;
    ++named;
    const std::string_view name(s.name, s.len);
    if (name == "echo") {
      echo_allow = s.by_verdict[0].get();
      echo_deny = s.by_verdict[1].get();
    }
    if (name.empty()) empty_invalid = s.by_verdict[4].get();
  }
  EXPECT_EQ(echo_allow, 2u);
  EXPECT_EQ(echo_deny, 1u);
  EXPECT_EQ(empty_invalid, 1u);
  EXPECT_EQ(named, kToolSlots);  // the table is full ...
  EXPECT_EQ(m->tools_overflow[1].get(), 1u);
  // ... and every name that found no slot is still counted.
  EXPECT_EQ(m->tools_overflow[2].get(), kToolSlots + 10 - (kToolSlots - 2));
}

TEST(metrics_totals, sums_shards) {
  auto a = std::make_unique<shard_metrics>();
  auto b = std::make_unique<shard_metrics>();
  a->decisions[1].add(2);
  b->decisions[1].add(3);
  a->open_connections.store(4);
  b->open_connections.store(5);
  b->audit_dropped.add(7);
  metrics_totals t;
  t.add(*a);
  t.add(*b);
  EXPECT_EQ(t.decisions[1], 5u);
  EXPECT_EQ(t.open_connections, 9u);
  EXPECT_EQ(t.audit_dropped, 7u);
}

TEST(labels, are_escaped) {
  std::string out;
  append_label_value(out, "a\"b\\c\nd");
  EXPECT_EQ(out, "a\\\"b\\\\c\\nd");
  EXPECT_EQ(verdict_name(3), "approval_required");
}

}  // namespace
}  // namespace sluice::control
