#pragma once
// Helpers shared by the policy unit tests.

#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "policy/compiled_policy.h"
#include "policy/loader.h"

namespace sluice::policy::testing {

// A message body with SIMDJSON_PADDING readable bytes past its end, as message_reader and
// decider require. The padding is filled with bytes that would break the parse if read as
// JSON, so a reader that looks past the end shows up as a failure, not a silent pass.
class padded_body {
 public:
  explicit padded_body(std::string_view text) : size_(text.size()) {
    buf_.reserve(text.size() + simdjson::SIMDJSON_PADDING);
    buf_.assign(text);
    buf_.append(simdjson::SIMDJSON_PADDING, '}');
  }
  std::string_view view() const { return {buf_.data(), size_}; }
  operator std::string_view() const { return view(); }

 private:
  std::string buf_;
  size_t size_;
};

// Loads and compiles policy text that must be valid.
inline std::shared_ptr<const compiled_policy> compile_text(std::string_view text) {
  load_result r = load_policy_text(text, "test.json");
  for (const load_error& e : r.errors)
    ADD_FAILURE() << e.to_string();
  if (!r.policy) return nullptr;
  return compiled_policy::compile(*r.policy);
}

constexpr int64_t kNsPerSecond = 1'000'000'000;
constexpr int64_t kNsPerMs = 1'000'000;

}  // namespace sluice::policy::testing
