// Fuzzes the upstream response parser (http1_response_parser): any bytes from an upstream,
// fed whole or cut at two points taken from the input, must be parsed or refused, never
// crash, hang or read out of bounds; both feedings must agree on the outcome, the status and
// the body; a parser reused after reset() behaves like a fresh one.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "net/http1_response_parser.h"

namespace {

using namespace sluice::net;
using parse_status = http1_response_parser::parse_status;

void check(bool ok) {
  if (!ok) std::abort();
}

struct recording_sink final : response_sink {
  int heads = 0;
  int status = 0;
  bool chunked = false;
  std::string body;
  bool on_response_head(const http_response& head) override {
    ++heads;
    status = head.status;
    chunked = head.chunked;
    check(head.status >= 100 && head.status <= 999);
    check(head.status >= 200);  // interim answers are skipped
    check(head.headers.size() <= kMaxResponseHeaders);
    return true;
  }
  bool on_response_body(std::string_view bytes) override {
    check(heads == 1);
    body.append(bytes);
    return true;
  }
};

struct outcome {
  parse_status status = parse_status::need_more;
  recording_sink sink;
};

// Feeds the parts, then EOF if the response is still open.
void run(http1_response_parser& p, bool head_request, const std::vector<std::string_view>& parts,
         outcome& o) {
  p.reset(head_request);
  for (std::string_view part : parts) {
    // Own each part in its own allocation, so a read past its end is caught by ASan.
    const std::vector<char> bytes(part.begin(), part.end());
    o.status = p.feed(std::span<const char>(bytes.data(), bytes.size()), o.sink);
    if (o.status != parse_status::need_more) break;
  }
  if (o.status == parse_status::need_more) o.status = p.feed_eof();
  check(o.status == parse_status::done || o.status == parse_status::error);
  if (o.status == parse_status::error) check(!p.error_detail().empty());
  check(o.sink.heads <= 1);
  if (o.status == parse_status::done) check(o.sink.heads == 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool head_request = (data[0] & 1) != 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  static http1_response_parser reused;  // state carried over from earlier inputs
  http1_response_parser fresh;
  outcome whole, cut, again;
  run(fresh, head_request, {input}, whole);

  const size_t n = input.size();
  const size_t a = n == 0 ? 0 : data[0] % (n + 1);
  const size_t b = n < 2 ? a : a + (data[size - 1] % (n - a + 1));
  run(reused, head_request, {input.substr(0, a), input.substr(a, b - a), input.substr(b)}, cut);
  check(whole.status == cut.status);
  if (whole.status == parse_status::done) {
    check(whole.sink.status == cut.sink.status);
    check(whole.sink.body == cut.sink.body);
    if (head_request) check(whole.sink.body.empty());
  }

  run(reused, head_request, {input}, again);  // the same parser again, after reset()
  check(again.status == whole.status);
  if (whole.status == parse_status::done) check(again.sink.body == whole.sink.body);
  return 0;
}
