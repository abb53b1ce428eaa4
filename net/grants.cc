#include "net/grants.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <simdjson.h>

namespace sluice::net {

sha256_digest sha256(std::string_view data) {
  sha256_digest d{};
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), d.data(), &n, EVP_sha256(), nullptr);
  return d;
}

std::string to_hex(const sha256_digest& d) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(64);
  for (unsigned char c : d) {
    s.push_back(kHex[c >> 4]);
    s.push_back(kHex[c & 15]);
  }
  return s;
}

namespace {
bool from_hex(std::string_view hex, sha256_digest& out) {
  if (hex.size() != 64) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < 32; ++i) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return true;
}
}  // namespace

std::shared_ptr<const grant_table> grant_table::load(const std::string& path, std::string& error) {
  namespace dom = simdjson::dom;
  simdjson::padded_string text;
  if (simdjson::padded_string::load(path).get(text)) {
    error = path + ": /: cannot read the file";
    return nullptr;
  }
  dom::parser parser;
  dom::element root;
  if (auto e = parser.parse(text).get(root)) {
    error = path + ": /: not valid JSON: " + simdjson::error_message(e);
    return nullptr;
  }
  dom::object obj;
  dom::array list;
  if (root.get_object().get(obj) || obj.size() != 1 || obj["grants"].get_array().get(list)) {
    error = path + ": /: expected an object with one field, \"grants\": an array";
    return nullptr;
  }
  auto table = std::make_shared<grant_table>();
  size_t i = 0;
  for (dom::element item : list) {
    const std::string at = path + ": /grants/" + std::to_string(i++);
    dom::object g;
    std::string_view name, hash;
    if (item.get_object().get(g) || g.size() != 2 || g["name"].get_string().get(name) ||
        g["token_sha256"].get_string().get(hash)) {
      error = at + ": expected {\"name\": string, \"token_sha256\": string}";
      return nullptr;
    }
    sha256_digest d;
    if (name.empty()) {
      error = at + "/name: expected a non-empty grant name";
      return nullptr;
    }
    if (!from_hex(hash, d)) {
      error = at + "/token_sha256: expected 64 hex digits (sluice hash-token prints them)";
      return nullptr;
    }
    if (!table->by_digest_.emplace(d, std::string(name)).second) {
      error = at + "/token_sha256: the same token is listed twice";
      return nullptr;
    }
  }
  return table;
}

const std::string* grant_table::find(std::string_view token) const {
  if (token.empty()) return nullptr;
  const sha256_digest d = sha256(token);
  auto it = by_digest_.find(d);
  if (it == by_digest_.end()) return nullptr;
  // The table lookup compares digests, which reveals nothing about a token; the final
  // comparison is constant-time anyway.
  if (CRYPTO_memcmp(it->first.data(), d.data(), d.size()) != 0) return nullptr;
  return &it->second;
}

std::string_view bearer_token(std::string_view v) {
  constexpr std::string_view kScheme = "bearer ";
  if (v.size() <= kScheme.size()) return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    char c = v[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kScheme[i]) return {};
  }
  v.remove_prefix(kScheme.size());
  while (!v.empty() && v.front() == ' ')
    v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
    v.remove_suffix(1);
  return v;
}

}  // namespace sluice::net
