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
  net::put_hex64(out, nonce);
  net::put_hex64(out + 16, tag(nonce));
}

bool session_registry::issued(std::string_view id) const {
  if (id.size() != kIdSize) return false;
  uint64_t nonce, t;
  if (!net::parse_hex64(id.substr(0, 16), nonce) || !net::parse_hex64(id.substr(16), t))
    return false;
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
