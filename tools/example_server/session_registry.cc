#include "tools/example_server/session_registry.h"

#include <cstring>

#include "net/random.h"
#include "net/siphash.h"

namespace sluice::example {

session_registry::session_registry() {
  net::fill_random(key_.data(), key_.size());
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
  net::fill_random(&nonce, sizeof nonce);
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
