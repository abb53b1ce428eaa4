#include "net/session_binding.h"

#include <sys/random.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "net/grants.h"

namespace sluice::net {
namespace {

uint64_t load_le64(const uint8_t* p) {
  uint64_t x = 0;
  for (int i = 7; i >= 0; --i)
    x = (x << 8) | p[i];
  return x;
}

inline void sip_round(uint64_t (&v)[4]) {
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
inline void compress_words(uint64_t (&v)[4], uint64_t m) {
  v[3] ^= m;
  sip_round(v);
  sip_round(v);
  v[0] ^= m;
}

constexpr char kHex[] = "0123456789abcdef";

}  // namespace

siphash24::siphash24(const std::array<uint8_t, 16>& key) {
  const uint64_t k0 = load_le64(key.data());
  const uint64_t k1 = load_le64(key.data() + 8);
  v_[0] = k0 ^ 0x736f6d6570736575ULL;
  v_[1] = k1 ^ 0x646f72616e646f6dULL;
  v_[2] = k0 ^ 0x6c7967656e657261ULL;
  v_[3] = k1 ^ 0x7465646279746573ULL;
}

void siphash24::compress(uint64_t m) { compress_words(v_, m); }

void siphash24::add(std::string_view data) {
  // The state in locals for the loop: the compiler keeps them in registers.
  uint64_t v[4] = {v_[0], v_[1], v_[2], v_[3]};
  uint64_t tail = tail_;
  uint64_t length = length_;
  const char* p = data.data();
  size_t n = data.size();
  auto add_byte = [&](char c) {
    tail |= uint64_t(static_cast<uint8_t>(c)) << (8 * (length & 7));
    if (++length % 8 == 0) {
      compress_words(v, tail);
      tail = 0;
    }
  };
  for (; n > 0 && length % 8 != 0; --n)
    add_byte(*p++);
  for (; n >= 8; n -= 8, p += 8, length += 8) {
    uint64_t m;
    std::memcpy(&m, p, sizeof m);
    if constexpr (std::endian::native == std::endian::big) m = __builtin_bswap64(m);
    compress_words(v, m);
  }
  for (; n > 0; --n)
    add_byte(*p++);
  for (int i = 0; i < 4; ++i)
    v_[i] = v[i];
  tail_ = tail;
  length_ = length;
}

uint64_t siphash24::value() const {
  siphash24 s = *this;
  const uint64_t b = (s.length_ << 56) | s.tail_;
  s.compress(b);
  s.v_[2] ^= 0xff;
  for (int i = 0; i < 4; ++i)
    sip_round(s.v_);
  return s.v_[0] ^ s.v_[1] ^ s.v_[2] ^ s.v_[3];
}

std::array<uint8_t, 16> session_binding::random_key() {
  std::array<uint8_t, 16> key{};
  size_t got = 0;
  while (got < key.size()) {
    const ssize_t n = getrandom(key.data() + got, key.size() - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
    // EINTR: again. Nothing else can fail for 16 bytes on Linux >= 3.17.
  }
  return key;
}

bool session_binding::key_from_file(const std::string& path, std::array<uint8_t, 16>& key,
                                    std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": " + std::strerror(errno);
    return false;
  }
  const std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (secret.size() < key.size()) {
    error = path +
            ": a session key file holds at least 16 bytes of secret (e.g. `head -c 32 "
            "/dev/urandom > FILE`)";
    return false;
  }
  const sha256_digest d = sha256(secret);
  std::memcpy(key.data(), d.data(), key.size());
  return true;
}

uint64_t session_binding::tag(std::string_view grant, std::string_view upstream_id) const {
  // The id's length first, so that no other (grant, id) pair hashes the same bytes.
  siphash24 h(key_);
  char len[8];
  uint64_t n = upstream_id.size();
  for (char& c : len) {
    c = static_cast<char>(n & 0xff);
    n >>= 8;
  }
  h.add(std::string_view(len, sizeof len));
  h.add(upstream_id);
  h.add(grant);
  return h.value();
}

void session_binding::append_tag(std::string& out, std::string_view grant,
                                 std::string_view upstream_id) const {
  uint64_t t = tag(grant, upstream_id);
  char text[kTagChars];
  text[0] = '.';
  for (size_t i = kTagChars - 1; i > 0; --i, t >>= 4)
    text[i] = kHex[t & 0xf];
  out.append(text, sizeof text);
}

bool session_binding::verify(std::string_view grant, std::string_view client_id,
                             std::string_view& upstream_id) const {
  if (client_id.size() <= kTagChars || client_id[client_id.size() - kTagChars] != '.') {
    return false;
  }
  uint64_t given = 0;
  for (const char c : client_id.substr(client_id.size() - kTagChars + 1)) {
    unsigned d;
    if (c >= '0' && c <= '9') {
      d = unsigned(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = unsigned(c - 'a' + 10);
    } else {
      return false;
    }
    given = (given << 4) | d;
  }
  const std::string_view id = client_id.substr(0, client_id.size() - kTagChars);
  // One comparison of two whole words: how far a guess matched does not show in the time.
  if ((given ^ tag(grant, id)) != 0) return false;
  upstream_id = id;
  return true;
}

}  // namespace sluice::net
