#pragma once
// Answers sent to clients, by HTTP status code: counted by the HTTP layer (net/http_server.h)
// as each answer's head is written, for /metrics. One writer, the shard that owns the
// connection (a relaxed load and store, no read-modify-write); the control thread reads.

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace sluice::net {

struct status_counts {
  static constexpr int kFirst = 100;
  static constexpr size_t kCodes = 500;  // 100..599; a status outside is not counted
  std::atomic<uint64_t> by_code[kCodes] = {};

  void add(int status) {
    const auto i = static_cast<unsigned>(status - kFirst);
    if (i >= kCodes) return;
    by_code[i].store(by_code[i].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  [[nodiscard]] uint64_t get(size_t i) const { return by_code[i].load(std::memory_order_relaxed); }
};

}  // namespace sluice::net
