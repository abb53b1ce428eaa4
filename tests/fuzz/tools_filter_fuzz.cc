// Fuzzes the tools/list filter on JSON answers and on SSE streams: any bytes must be
// filtered or left alone, never crash; a filtered answer is valid JSON again and never holds
// a hidden tool's entry.

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "net/tools_filter.h"
#include "policy/compiled_policy.h"
#include "policy/loader.h"

namespace {

using namespace sluice;

const policy::compiled_policy& fuzz_policy() {
  static const auto p = [] {
    auto r = policy::load_policy_text(
        R"({"version":"1","default":"allow","hide":["secret*"],"tools":{"delete_bucket":{"action":"deny"}}})",
        "fuzz");
    return policy::compiled_policy::compile(*r.policy);
  }();
  return *p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  static net::tools_filter filter;
  std::string out;
  if (filter.filter(input, fuzz_policy(), out)) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(out).get(doc) != simdjson::SUCCESS) std::abort();  // still JSON
  }
  // The same bytes as an event stream, split in two feeds.
  net::sse_splitter splitter;
  std::string relayed;
  const size_t split = size == 0 ? 0 : data[0] % (size + 1);
  auto on_event = [&](std::string_view event) {
    net::filter_sse_event(event, filter, fuzz_policy(), relayed);
  };
  splitter.feed(input.substr(0, split), on_event);
  splitter.feed(input.substr(split), on_event);
  return 0;
}
