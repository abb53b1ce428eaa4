// Fuzzes the strict policy loader: any bytes must load or fail with errors, never crash,
// hang or leak; a loaded policy and a list of errors are mutually exclusive.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "policy/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const sluice::policy::load_result result = sluice::policy::load_policy_text(text, "fuzz.json");
  if (result.policy.has_value() == !result.errors.empty()) std::abort();
  for (const sluice::policy::load_error& e : result.errors) {
    if (e.message.empty() || e.to_string().empty()) std::abort();
  }
  return 0;
}
