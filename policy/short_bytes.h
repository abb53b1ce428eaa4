#pragma once
// Copies and comparisons of short byte strings (names, reasons, header values, paths: mostly
// under 32 bytes) without a call into libc. A memcpy or memcmp of a size the compiler does not
// know is a call through the PLT and a branch on the size class: on a pipelined decision,
// which writes six such strings and compares five, perf put libc's memmove, memcmp and memset
// at 7 % of the shard's cycles. Fixed-size copies and compares of two overlapping halves
// compile to a few moves.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace sluice::policy {

// Writes s at p; returns p + s.size(). Reads and writes only [s, s + n) and [p, p + n).
inline char* put_short(char* p, std::string_view s) {
  const size_t n = s.size();
  const char* d = s.data();
  if (n <= 16) {
    if (n >= 8) {
      uint64_t a, b;
      std::memcpy(&a, d, 8);
      std::memcpy(&b, d + n - 8, 8);
      std::memcpy(p, &a, 8);
      std::memcpy(p + n - 8, &b, 8);
    } else if (n >= 4) {
      uint32_t a, b;
      std::memcpy(&a, d, 4);
      std::memcpy(&b, d + n - 4, 4);
      std::memcpy(p, &a, 4);
      std::memcpy(p + n - 4, &b, 4);
    } else if (n != 0) {  // 1 to 3 bytes: first, middle, last
      p[0] = d[0];
      p[n / 2] = d[n / 2];
      p[n - 1] = d[n - 1];
    }
  } else if (n <= 32) {
    char a[16], b[16];
    std::memcpy(a, d, 16);
    std::memcpy(b, d + n - 16, 16);
    std::memcpy(p, a, 16);
    std::memcpy(p + n - 16, b, 16);
  } else {
    std::memcpy(p, d, n);
  }
  return p + n;
}

// a == b, bytewise. Reads only the two strings.
inline bool same_bytes(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  if (n != b.size()) return false;
  const char* x = a.data();
  const char* y = b.data();
  auto differ8 = [](const char* p, const char* q) {
    uint64_t u, v;
    std::memcpy(&u, p, 8);
    std::memcpy(&v, q, 8);
    return u ^ v;
  };
  if (n >= 8 && n <= 16) return (differ8(x, y) | differ8(x + n - 8, y + n - 8)) == 0;
  if (n >= 4 && n < 8) {
    uint32_t u0, v0, u1, v1;
    std::memcpy(&u0, x, 4);
    std::memcpy(&v0, y, 4);
    std::memcpy(&u1, x + n - 4, 4);
    std::memcpy(&v1, y + n - 4, 4);
    return ((u0 ^ v0) | (u1 ^ v1)) == 0;
  }
  if (n < 4) return n == 0 || (x[0] == y[0] && x[n / 2] == y[n / 2] && x[n - 1] == y[n - 1]);
  if (n <= 32) {
    return (differ8(x, y) | differ8(x + 8, y + 8) | differ8(x + n - 16, y + n - 16) |
            differ8(x + n - 8, y + n - 8)) == 0;
  }
  return std::memcmp(x, y, n) == 0;
}

}  // namespace sluice::policy
