#pragma once
// Eight bytes at a time in a 64-bit word (SWAR), for scans that look for a few byte values
// (CR/LF in header values). Each function marks, in the high bit of each byte,
// at least the bytes that match and only ever bytes at or above a matching one (a borrow
// carries upward only past a match): exact as to whether any byte matches, which is all
// the callers ask.

#include <cstdint>

namespace sluice::policy::swar {

inline constexpr uint64_t kOnes = 0x0101010101010101ull;
inline constexpr uint64_t kHigh = 0x8080808080808080ull;

// Bytes of v below n (n <= 0x80).
[[nodiscard]] constexpr uint64_t below(uint64_t v, uint8_t n) {
  return (v - kOnes * n) & ~v & kHigh;
}

// Bytes of v equal to c.
[[nodiscard]] constexpr uint64_t equal(uint64_t v, char c) {
  return below(v ^ (kOnes * static_cast<uint8_t>(c)), 1);
}

}  // namespace sluice::policy::swar
