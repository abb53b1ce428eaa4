#include "net/session_binding.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "net/grants.h"
#include "net/random.h"

namespace sluice::net {

std::array<uint8_t, 16> session_binding::random_key() {
  std::array<uint8_t, 16> key{};
  fill_random(key.data(), key.size());
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

uint64_t session_binding::tag(std::string_view endpoint, std::string_view grant,
                              std::string_view upstream_id) const {
  // Lengths before the id and the grant, so that no other triple hashes the same bytes.
  siphash24 h(key_);
  auto add_length = [&h](uint64_t n) {
    char len[8];
    for (char& c : len) {
      c = static_cast<char>(n & 0xff);
      n >>= 8;
    }
    h.add(std::string_view(len, sizeof len));
  };
  add_length(upstream_id.size());
  h.add(upstream_id);
  add_length(grant.size());
  h.add(grant);
  h.add(endpoint);
  return h.value();
}

void session_binding::append_tag(std::string& out, std::string_view endpoint,
                                 std::string_view grant, std::string_view upstream_id) const {
  char text[kTagChars];
  text[0] = '.';
  put_hex64(text + 1, tag(endpoint, grant, upstream_id));
  out.append(text, sizeof text);
}

bool session_binding::verify(std::string_view endpoint, std::string_view grant,
                             std::string_view client_id, std::string_view& upstream_id) const {
  if (client_id.size() <= kTagChars || client_id[client_id.size() - kTagChars] != '.') {
    return false;
  }
  uint64_t given;
  if (!parse_hex64(client_id.substr(client_id.size() - kTagChars + 1), given)) return false;
  const std::string_view id = client_id.substr(0, client_id.size() - kTagChars);
  // One comparison of two whole words: how far a guess matched does not show in the time.
  if ((given ^ tag(endpoint, grant, id)) != 0) return false;
  upstream_id = id;
  return true;
}

}  // namespace sluice::net
