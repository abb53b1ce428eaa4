#pragma once
// SipHash-2-4 (Aumasson and Bernstein): a keyed 64-bit MAC / PRF for short inputs. Sluice tags
// the session ids it hands out with it (net/session_binding.h); the example server tags its
// own session ids (tools/example_server/session_registry.h). Header-only: both link it.

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace sluice::net {

// The 16-byte key is read as two little-endian 64-bit words. Incremental: add() any number
// of times, then value() (which does not consume the state).
class siphash24 {
 public:
  explicit siphash24(const std::array<uint8_t, 16>& key) {
    uint64_t k0, k1;
    std::memcpy(&k0, key.data(), 8);
    std::memcpy(&k1, key.data() + 8, 8);
    if constexpr (std::endian::native == std::endian::big) {
      k0 = __builtin_bswap64(k0);
      k1 = __builtin_bswap64(k1);
    }
    v_[0] = k0 ^ 0x736f6d6570736575ULL;
    v_[1] = k1 ^ 0x646f72616e646f6dULL;
    v_[2] = k0 ^ 0x6c7967656e657261ULL;
    v_[3] = k1 ^ 0x7465646279746573ULL;
  }

  void add(std::string_view data) {
    // The state in locals for the loop: the compiler keeps them in registers.
    uint64_t v[4] = {v_[0], v_[1], v_[2], v_[3]};
    uint64_t tail = tail_;
    uint64_t length = length_;
    const char* p = data.data();
    size_t n = data.size();
    auto add_byte = [&](char c) {
      tail |= uint64_t(static_cast<uint8_t>(c)) << (8 * (length & 7));
      if (++length % 8 == 0) {
        compress(v, tail);
        tail = 0;
      }
    };
    for (; n > 0 && length % 8 != 0; --n)
      add_byte(*p++);
    for (; n >= 8; n -= 8, p += 8, length += 8) {
      uint64_t m;
      std::memcpy(&m, p, sizeof m);
      if constexpr (std::endian::native == std::endian::big) m = __builtin_bswap64(m);
      compress(v, m);
    }
    for (; n > 0; --n)
      add_byte(*p++);
    for (int i = 0; i < 4; ++i)
      v_[i] = v[i];
    tail_ = tail;
    length_ = length;
  }

  [[nodiscard]] uint64_t value() const {
    uint64_t v[4] = {v_[0], v_[1], v_[2], v_[3]};
    compress(v, (length_ << 56) | tail_);  // the last block: length mod 256 and the tail
    v[2] ^= 0xff;
    for (int i = 0; i < 4; ++i)
      round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
  }

 private:
  static void round(uint64_t (&v)[4]) {
    v[0] += v[1];
    v[1] = std::rotl(v[1], 13);
    v[1] ^= v[0];
    v[0] = std::rotl(v[0], 32);
    v[2] += v[3];
    v[3] = std::rotl(v[3], 16);
    v[3] ^= v[2];
    v[0] += v[3];
    v[3] = std::rotl(v[3], 21);
    v[3] ^= v[0];
    v[2] += v[1];
    v[1] = std::rotl(v[1], 17);
    v[1] ^= v[2];
    v[2] = std::rotl(v[2], 32);
  }
  // One message word: c = 2 rounds.
  static void compress(uint64_t (&v)[4], uint64_t m) {
    v[3] ^= m;
    round(v);
    round(v);
    v[0] ^= m;
  }

  uint64_t v_[4];
  uint64_t tail_ = 0;    // up to 7 bytes not yet compressed, little-endian
  uint64_t length_ = 0;  // bytes added
};

// A 64-bit tag as 16 lowercase hex digits, most significant first: written into out[0..16).
inline void put_hex64(char* out, uint64_t v) {
  constexpr char kHex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i, v >>= 4)
    out[i] = kHex[v & 0xf];
}

// The value of exactly 16 lowercase hex digits; false for anything else.
inline bool parse_hex64(std::string_view s, uint64_t& v) {
  if (s.size() != 16) return false;
  v = 0;
  for (const char c : s) {
    unsigned d;
    if (c >= '0' && c <= '9') {
      d = unsigned(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = unsigned(c - 'a' + 10);
    } else {
      return false;
    }
    v = (v << 4) | d;
  }
  return true;
}

}  // namespace sluice::net
