#pragma once
// Bounded single-producer/single-consumer queue between two shards (or a shard and the control
// plane). Head and tail live on separate cache lines so producer and consumer never write the
// same line; the producer caches the consumer's index and reads its line only when the queue looks
// full. The consumer drains in batches. Does not allocate after construction.

#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace sluice::engine {

inline constexpr size_t kCacheLine = 64;

template <typename T>
class spsc_queue {
  static_assert(std::is_nothrow_move_constructible_v<T>);

 public:
  // capacity is rounded up to a power of two.
  explicit spsc_queue(size_t capacity) {
    size_t c = 2;
    while (c < capacity)
      c *= 2;
    mask_ = c - 1;
    slots_ = std::unique_ptr<slot[]>(new slot[c]);
  }
  spsc_queue(const spsc_queue&) = delete;
  spsc_queue& operator=(const spsc_queue&) = delete;
  ~spsc_queue() {
    size_t h = head_.value.load(std::memory_order_relaxed);
    size_t t = tail_.value.load(std::memory_order_relaxed);
    for (; h != t; ++h)
      slots_[h & mask_].get()->~T();
  }

  [[nodiscard]] size_t capacity() const { return mask_ + 1; }

  // Producer side. Returns false when full.
  template <typename... Args>
  [[nodiscard]] bool try_emplace(Args&&... args) {
    size_t t = tail_.value.load(std::memory_order_relaxed);
    if (t - producer_head_cache_ > mask_) {
      producer_head_cache_ = head_.value.load(std::memory_order_acquire);
      if (t - producer_head_cache_ > mask_) return false;
    }
    new (slots_[t & mask_].storage) T(std::forward<Args>(args)...);
    tail_.value.store(t + 1, std::memory_order_release);
    return true;
  }
  [[nodiscard]] bool try_push(T v) { return try_emplace(std::move(v)); }

  // Consumer side: calls f(T&) for up to max items, then releases them all at once.
  template <typename F>
  size_t drain(F&& f, size_t max = ~size_t(0)) {
    size_t h = head_.value.load(std::memory_order_relaxed);
    // One acquire load per batch: sees everything published so far.
    size_t t = tail_.value.load(std::memory_order_acquire);
    if (t == h) return 0;
    size_t n = t - h;
    if (n > max) n = max;
    for (size_t i = 0; i < n; ++i) {
      T* p = slots_[(h + i) & mask_].get();
      f(*p);
      p->~T();
    }
    head_.value.store(h + n, std::memory_order_release);
    return n;
  }

  // Consumer side: pops one item.
  [[nodiscard]] bool try_pop(T& out) {
    return drain([&](T& v) { out = std::move(v); }, 1) == 1;
  }

  // Approximate; exact only when called from the consumer or producer with the other idle.
  [[nodiscard]] bool empty() const {
    return head_.value.load(std::memory_order_acquire) ==
           tail_.value.load(std::memory_order_acquire);
  }

 private:
  struct slot {
    alignas(T) unsigned char storage[sizeof(T)];
    T* get() { return std::launder(reinterpret_cast<T*>(storage)); }
  };
  struct alignas(kCacheLine) index {
    std::atomic<size_t> value{0};
  };

  // Written by the consumer only.
  index head_;
  // Written by the producer only.
  index tail_;
  // Producer-private cache of head_: the producer reads the consumer's line only when the
  // queue looks full.
  alignas(kCacheLine) size_t producer_head_cache_ = 0;
  alignas(kCacheLine) size_t mask_ = 0;
  std::unique_ptr<slot[]> slots_;
};

}  // namespace sluice::engine
