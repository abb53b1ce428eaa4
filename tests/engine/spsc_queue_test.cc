#include "engine/spsc_queue.h"

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

namespace sluice::engine {
namespace {

TEST(spsc_queue, rounds_capacity_up_to_power_of_two) {
  spsc_queue<int> q(5);
  EXPECT_EQ(q.capacity(), 8u);
}

TEST(spsc_queue, fifo_and_full) {
  spsc_queue<int> q(4);
  EXPECT_TRUE(q.empty());
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(q.try_push(i));
  EXPECT_FALSE(q.try_push(99));  // bounded
  int v = -1;
  ASSERT_TRUE(q.try_pop(v));
  EXPECT_EQ(v, 0);
  EXPECT_TRUE(q.try_push(4));
  std::vector<int> got;
  EXPECT_EQ(q.drain([&](int& x) { got.push_back(x); }), 4u);
  EXPECT_EQ(got, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.try_pop(v));
}

TEST(spsc_queue, drain_respects_max_batch) {
  spsc_queue<int> q(16);
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(q.try_push(i));
  int sum = 0;
  EXPECT_EQ(q.drain([&](int& x) { sum += x; }, 3), 3u);
  EXPECT_EQ(sum, 0 + 1 + 2);
  EXPECT_EQ(q.drain([&](int& x) { sum += x; }), 7u);
  EXPECT_EQ(sum, 45);
}

TEST(spsc_queue, destroys_moved_only_items) {
  auto counter = std::make_shared<int>(0);
  {
    spsc_queue<std::shared_ptr<int>> q(4);
    ASSERT_TRUE(q.try_push(counter));
    ASSERT_TRUE(q.try_push(counter));
    EXPECT_EQ(counter.use_count(), 3);
    q.drain([](std::shared_ptr<int>&) {}, 1);
    EXPECT_EQ(counter.use_count(), 2);
  }
  EXPECT_EQ(counter.use_count(), 1);  // the queue's destructor released the rest
}

TEST(spsc_queue, head_and_tail_on_separate_cache_lines) {
  // The layout is the point of the type: producer and consumer must not share a line.
  EXPECT_GE(sizeof(spsc_queue<int>), 3 * kCacheLine);
}

TEST(spsc_queue, two_threads_transfer_everything_in_order) {
  constexpr uint64_t kItems = 200'000;
  spsc_queue<uint64_t> q(1024);
  std::thread producer([&] {
    for (uint64_t i = 0; i < kItems;) {
      if (q.try_push(i)) ++i;
    }
  });
  uint64_t expected = 0;
  bool in_order = true;
  while (expected < kItems) {
    q.drain([&](uint64_t& v) {
      in_order = in_order && v == expected;
      ++expected;
    });
  }
  producer.join();
  EXPECT_TRUE(in_order);
  EXPECT_EQ(expected, kItems);
  EXPECT_TRUE(q.empty());
}

}  // namespace
}  // namespace sluice::engine
