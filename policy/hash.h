#pragma once
// Small, fast, non-cryptographic hashing for tables keyed by short strings (tool names,
// counter keys). Not for anything an attacker must not steer: tables that hold peer-chosen
// keys are bounded, and limiter keys use two independent 64-bit halves.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "policy/short_bytes.h"

namespace sluice::policy {

namespace detail {
inline uint64_t mix(uint64_t a, uint64_t b) {
  __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}
inline uint64_t load64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
}  // namespace detail

// Hashes `n` bytes, eight at a time, with a multiply-fold mixer. Does not allocate.
inline uint64_t hash_bytes(const void* data, size_t n, uint64_t seed) {
  constexpr uint64_t kP0 = 0xa0761d6478bd642full;
  constexpr uint64_t kP1 = 0xe7037ed1a0b428dbull;
  constexpr uint64_t kP2 = 0x8ebc6af09c88c6e3ull;
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = seed ^ (n * kP0);
  while (n >= 16) {
    h = detail::mix(detail::load64(p) ^ kP1, detail::load64(p + 8) ^ h);
    p += 16;
    n -= 16;
  }
  uint64_t a = 0, b = 0;
  if (n >= 8) {
    a = detail::load64(p);
    b = detail::load64(p + n - 8);
  } else if (n > 0) {
    unsigned char tail[8] = {};
    std::memcpy(tail, p, n);
    a = detail::load64(tail);
  }
  return detail::mix(detail::mix(a ^ kP1, b ^ h) ^ kP2, n ^ kP0);
}

inline uint64_t hash_string(std::string_view s, uint64_t seed = 0) {
  return hash_bytes(s.data(), s.size(), seed);
}

// Transparent hasher so flat maps keyed by std::string accept string_view lookups
// without building a string. Marked avalanching: the mixer already spreads all bits.
struct string_hash {
  using is_transparent = void;
  using is_avalanching = void;
  size_t operator()(std::string_view s) const { return hash_string(s); }
  size_t operator()(const std::string& s) const { return hash_string(s); }
  size_t operator()(const char* s) const { return hash_string(s); }
};

struct string_eq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return same_bytes(a, b); }
};

}  // namespace sluice::policy
