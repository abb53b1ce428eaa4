// Fuzzes SSE parsing on the relay path: sse_splitter (event boundaries across reads, with
// LF, CRLF and CR line ends) and filter_sse_event (the tools/list filter per event). Any bytes,
// fed whole or cut at two points taken from the input, must give the same events; the events
// and the pending tail are the input again, byte for byte; every event ends with a blank
// line; a filtered event is still exactly one event.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "net/tools_filter.h"
#include "policy/compiled_policy.h"
#include "policy/loader.h"

namespace {

using namespace sluice;

void check(bool ok) {
  if (!ok) std::abort();
}

const policy::compiled_policy& fuzz_policy() {
  static const auto p = [] {
    auto r = policy::load_policy_text(
        R"({"version":"1","default":"allow","hide":["secret*"],"tools":{"delete_bucket":{"action":"deny"}}})",
        "fuzz");
    return policy::compiled_policy::compile(*r.policy);
  }();
  return *p;
}

// The event's last line is empty: without its final line end, it is empty or ends a line.
bool ends_with_blank_line(std::string_view e) {
  if (e.size() >= 2 && e.substr(e.size() - 2) == "\r\n") {
    e.remove_suffix(2);
  } else if (!e.empty() && (e.back() == '\n' || e.back() == '\r')) {
    e.remove_suffix(1);
  } else {
    return false;
  }
  return e.empty() || e.back() == '\n' || e.back() == '\r';
}

// Feeds `parts` in order; returns the events (copied) and the pending tail.
std::vector<std::string> split(const std::vector<std::string_view>& parts, std::string& pending) {
  net::sse_splitter splitter;
  std::vector<std::string> events;
  for (std::string_view p : parts)
    splitter.feed(p, [&](std::string_view e) { events.emplace_back(e); });
  pending = std::string(splitter.pending());
  return events;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string pending_whole;
  const std::vector<std::string> whole = split({input}, pending_whole);

  const size_t a = size == 0 ? 0 : data[0] % (size + 1);
  const size_t b = size < 2 ? a : a + data[1] % (size - a + 1);
  std::string pending_cut;
  const std::vector<std::string> cut =
      split({input.substr(0, a), input.substr(a, b - a), input.substr(b)}, pending_cut);
  check(whole == cut);
  check(pending_whole == pending_cut);

  std::string joined;
  for (const std::string& e : whole) {
    check(ends_with_blank_line(e));
    joined += e;
  }
  check(joined + pending_whole == input);

  // Filtering keeps the framing: each event relays as one event. (A byte that ends no line
  // follows it, so that a final CR is known not to be the first half of a CRLF.)
  static net::tools_filter filter;
  for (const std::string& e : whole) {
    std::string out;
    net::filter_sse_event(e, filter, fuzz_policy(), out);
    std::string rest;
    const std::vector<std::string> again = split({out, "x"}, rest);
    check(again.size() == 1 && rest == "x");
  }
  return 0;
}
