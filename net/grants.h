#pragma once
// Bearer-token identities. A grants file maps SHA-256 hashes of tokens to grant names; the
// tokens themselves are never stored, logged or kept. The grant is the `grant` scope of
// rate limits.
//
//   {"grants": [{"name": "ci-agent", "token_sha256": "<64 hex digits>"}, ...]}
//
// `sluice hash-token` prints the hash of a token read from standard input.

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

namespace sluice::net {

using sha256_digest = std::array<unsigned char, 32>;

sha256_digest sha256(std::string_view data);
std::string to_hex(const sha256_digest& d);

class grant_table {
 public:
  // Loads a grants file; on failure returns nullptr and sets `error` ("file: /ptr: msg").
  static std::shared_ptr<const grant_table> load(const std::string& path, std::string& error);

  // The grant of a bearer token, or nullptr. Hashes the token, then compares digests in
  // constant time. Does not allocate.
  const std::string* find(std::string_view token) const;

  size_t size() const { return by_digest_.size(); }

 private:
  struct digest_hash {
    size_t operator()(const sha256_digest& d) const {
      size_t h;
      static_assert(sizeof h <= sizeof d);
      __builtin_memcpy(&h, d.data(), sizeof h);  // a SHA-256 digest is uniformly distributed
      return h;
    }
  };
  boost::unordered_flat_map<sha256_digest, std::string, digest_hash> by_digest_;
};

// The token of an `Authorization: Bearer <token>` header value, or empty.
std::string_view bearer_token(std::string_view authorization);

}  // namespace sluice::net
