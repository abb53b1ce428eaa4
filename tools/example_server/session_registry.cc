#include "tools/example_server/session_registry.h"

#include <sys/random.h>

#include <cstring>
#include <random>

#include "net/siphash.h"

namespace sluice::example {

namespace {

void random_bytes(void* out, size_t n) {
  auto* p = static_cast<unsigned char*>(out);
  while (n > 0) {
    ssize_t got = ::getrandom(p, n, 0);
    if (got <= 0) {
      // getrandom cannot fail for small requests on Linux >= 3.17 once the pool is ready; keep
      // a fallback so a session id is never all zeros.
      std::random_device rd;
      for (; n > 0; --n)
        *p++ = static_cast<unsigned char>(rd());
      return;
    }
    p += got;
    n -= size_t(got);
  }
}

constexpr char kHex[] = "0123456789abcdef";

void put_hex(char* out, uint64_t v) {
  for (int i = 15; i >= 0; --i) {
    out[i] = kHex[v & 0xf];
    v >>= 4;
  }
}

bool get_hex(std::string_view s, uint64_t& v) {
  v = 0;
  for (char c : s) {
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

}  // namespace

session_registry::session_registry() {
  random_bytes(key_.data(), key_.size());
}

uint64_t session_registry::tag(uint64_t nonce) const {
  char bytes[sizeof nonce];
  std::memcpy(bytes, &nonce, sizeof nonce);
  net::siphash24 h(key_);
  h.add(std::string_view(bytes, sizeof bytes));
  return h.value();
}

void session_registry::make(char* out) const {
  uint64_t nonce;
  random_bytes(&nonce, sizeof nonce);
  put_hex(out, nonce);
  put_hex(out + 16, tag(nonce));
}

bool session_registry::issued(std::string_view id) const {
  if (id.size() != kIdSize) return false;
  uint64_t nonce, t;
  if (!get_hex(id.substr(0, 16), nonce) || !get_hex(id.substr(16), t)) return false;
  return tag(nonce) == t;
}

bool session_registry::valid(std::string_view id) const {
  if (!issued(id)) return false;
  if (!any_ended_.load(std::memory_order_acquire)) return true;
  std::lock_guard lock(mu_);
  return ended_.find(std::string(id)) == ended_.end();
}

bool session_registry::end(std::string_view id) {
  if (!issued(id)) return false;
  std::lock_guard lock(mu_);
  bool inserted = ended_.emplace(id).second;
  any_ended_.store(true, std::memory_order_release);
  return inserted;
}

}  // namespace sluice::example
