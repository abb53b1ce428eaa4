// `sluice check POLICY...`: load and compile each policy file; print a summary, or every
// error as `file: /json/pointer: message`.

#include <cstdio>
#include <string>

#include "policy/compiled_policy.h"
#include "policy/loader.h"
#include "tools/sluice/commands.h"

namespace sluice::cli {

namespace {
constexpr const char* kUsage =
    "usage: sluice check POLICY...\n"
    "\n"
    "Loads each policy file strictly. Prints a one-line summary per file and exits 0,\n"
    "or prints every error as `file: /json/pointer: message` on stderr and exits 1.\n";

const char* plural(size_t n, const char* one, const char* many) {
  return n == 1 ? one : many;
}
}  // namespace

int run_check(std::span<char* const> args) {
  if (args.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  int status = 0;
  for (const char* arg : args) {
    const std::string_view a(arg);
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  }
  for (const char* path : args) {
    policy::load_result loaded = policy::load_policy_file(path);
    if (!loaded.errors.empty()) {
      for (const policy::load_error& e : loaded.errors)
        std::fprintf(stderr, "%s\n", e.to_string().c_str());
      status = 1;
      continue;
    }
    const auto compiled = policy::compiled_policy::compile(*loaded.policy);
    const policy::compile_stats& s = compiled->stats();
    const size_t exact = s.tools - s.tool_patterns;
    std::printf(
        "%s: ok: default %s; %zu %s and %zu %s; %zu hidden; %zu %s on %zu %s; %zu argument %s; "
        "%zu resource and %zu prompt %s\n",
        path, loaded.policy->default_action == policy::action::allow ? "allow" : "deny", exact,
        plural(exact, "tool", "tools"), s.tool_patterns,
        plural(s.tool_patterns, "pattern", "patterns"), s.hidden, s.limits,
        plural(s.limits, "limit", "limits"), s.counters, plural(s.counters, "counter", "counters"),
        s.checks, plural(s.checks, "check", "checks"), s.resources, s.prompts,
        plural(s.resources + s.prompts, "rule", "rules"));
  }
  return status;
}

}  // namespace sluice::cli
