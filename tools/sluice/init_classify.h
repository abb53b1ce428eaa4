#pragma once
// Risk classes for MCP tools (`sluice init`): every tool gets a class (read, write, execute,
// destructive) and a risk level (low, medium, high) from its MCP annotations first, then from
// the verbs in its name, then from the first verb of its description. The rules, with the
// reason behind each outcome, are in docs/risk.md; this file and that doc must agree.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::init {

enum class tool_class : uint8_t { read, write, execute, destructive };
enum class risk_level : uint8_t { low, medium, high };

// Which input decided the class.
enum class signal_kind : uint8_t {
  annotations,       // readOnlyHint / destructiveHint alone
  annotations_name,  // annotations said "modifies, not destructive"; a name verb said execute
  annotations_description,  // ... a description verb said execute
  name,                     // a verb in the tool's name
  description,              // the first verb of the description
  fallback,                 // nothing decided: treated as execute (see docs/risk.md)
};

// The four MCP tool annotations; nullopt when the server did not send the hint.
struct hints {
  std::optional<bool> read_only;    // readOnlyHint
  std::optional<bool> destructive;  // destructiveHint
  std::optional<bool> idempotent;   // idempotentHint
  std::optional<bool> open_world;   // openWorldHint
};

struct tool_info {
  std::string name;
  std::string description;
  hints annotations;
};

struct classification {
  tool_class cls = tool_class::execute;
  risk_level risk = risk_level::medium;
  signal_kind decided_by = signal_kind::fallback;
  std::string detail;  // human-readable evidence, e.g. "readOnlyHint=true" or "verb 'delete'"
};

[[nodiscard]] classification classify(const tool_info& tool);

// The class a single word names when used as a verb ("get", "lists", "deletes"), if any.
[[nodiscard]] std::optional<tool_class> verb_class(std::string_view word);

[[nodiscard]] std::string_view to_string(tool_class c);
[[nodiscard]] std::string_view to_string(risk_level r);
[[nodiscard]] std::string_view to_string(signal_kind s);

}  // namespace sluice::init
