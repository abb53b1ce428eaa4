// Fuzzes HTTP/1.1 request framing: any bytes, fed whole and then split at a point taken from
// the input, must be parsed or refused with 400/413/415/417/431, never crash, hang or read past
// the padding; both feedings must agree on how many requests they delivered before an error.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "net/http1.h"
#include "net/http1_parser.h"

namespace {

using namespace sluice::net;

struct counting_sink final : request_sink {
  size_t requests = 0;
  size_t body_bytes = 0;
  char padding_xor = 0;  // read so the padding reads cannot be optimised away
  bool on_parsed(const http_request& req) override {
    ++requests;
    body_bytes += req.body.size();
    // The padding promise: 64 readable bytes after a body (an empty one may have no storage).
    if (req.body.empty()) return true;
    char x = 0;
    for (size_t i = 0; i < 64; ++i)
      x = static_cast<char>(x ^ req.body.data()[req.body.size() + i]);
    padding_xor = static_cast<char>(padding_xor ^ x);
    return true;
  }
};

// Copies into a buffer with 64 bytes of padding, as the engine's provided buffers have.
std::string padded(const uint8_t* data, size_t size) {
  std::string s(reinterpret_cast<const char*>(data), size);
  s.reserve(size + 64);
  return s;
}

// What feed() may answer: 0, or a refusal it documents (Content-Encoding 415, Expect 417).
bool refusal_ok(int status) {
  return status == 0 || status == 400 || status == 413 || status == 415 || status == 417 ||
         status == 431;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  http_limits limits;
  limits.max_header_bytes = 1024;
  limits.max_body_bytes = 4096;
  const std::string whole = padded(data, size);

  http1_parser a(limits);
  counting_sink sa;
  const int status_a = a.feed({whole.data(), whole.size()}, sa);
  if (!refusal_ok(status_a)) std::abort();

  const size_t split = size == 0 ? 0 : data[0] % (size + 1);
  const std::string first = padded(data, split);
  const std::string second = padded(data + split, size - split);
  http1_parser b(limits);
  counting_sink sb;
  int status_b = b.feed({first.data(), first.size()}, sb);
  if (status_b == 0) status_b = b.feed({second.data(), second.size()}, sb);
  if (!refusal_ok(status_b)) std::abort();
  // Where the input was framed the same way, splitting it changes nothing.
  if (status_a == 0 && status_b == 0 && sa.requests != sb.requests) std::abort();
  return 0;
}
