// Fuzzes request-path normalisation (net/request_path.h), which decides which server's policy
// a request meets. Any bytes: refused with a reason, or a path that starts with '/', holds no
// '?' or '\', no "." or ".." segment, no encoded '/' or '\', no escape of an unreserved
// character, is never longer than the target, and normalises to itself (one spelling, one
// route). normalized_path, which the gateway routes with and which spares the copy of a
// target already in normal form, agrees with it on every input.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/request_path.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool unreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view target(reinterpret_cast<const char*>(data), size);
  std::string out, scratch;
  std::string_view error, path, error2;
  const bool good = sluice::net::normalize_request_path(target, out, error);
  // The copy-free form the gateway routes with says the same.
  check(sluice::net::normalized_path(target, scratch, path, error2) == good);
  if (!good) {
    check(!error.empty() && error2 == error);
    return 0;
  }
  check(path == out);
  check(!out.empty() && out.front() == '/');
  check(out.size() <= target.size());
  check(out.find_first_of("?\\") == std::string::npos);
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] != '%') continue;
    check(i + 2 < out.size());
    const int hi = hex(out[i + 1]), lo = hex(out[i + 2]);
    check(hi >= 0 && lo >= 0);
    const char c = static_cast<char>(hi * 16 + lo);
    check(c != '/' && c != '\\' && !unreserved(c));
  }
  size_t start = 1;
  while (start <= out.size()) {
    size_t end = out.find('/', start);
    if (end == std::string::npos) end = out.size();
    const std::string_view seg(out.data() + start, end - start);
    check(seg != "." && seg != "..");
    start = end + 1;
  }
  std::string again;
  check(sluice::net::normalize_request_path(out, again, error) && again == out);
  return 0;
}
