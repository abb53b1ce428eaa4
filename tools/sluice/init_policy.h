#pragma once
// The starter policy `sluice init` writes: one exact-name rule per tool, chosen by the tool's
// class under a profile (strict, default, permissive), every rule with a reason naming the
// class. Also the two reports: the --explain table and the --json document.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tools/sluice/init_classify.h"

#include "policy/json_text.h"

namespace sluice::init {

enum class rule_action : uint8_t { allow, deny, require_approval };

// What a profile does with one class: an action, and for allow an optional per-grant limit.
struct class_rule {
  rule_action action = rule_action::allow;
  uint32_t per_minute = 0;  // 0: no limit
};

struct profile {
  std::string_view name;
  class_rule read, write, execute, destructive;

  [[nodiscard]] const class_rule& for_class(tool_class c) const;
};

// "strict", "default" or "permissive"; nullopt for anything else.
[[nodiscard]] std::optional<profile> find_profile(std::string_view name);

struct classified_tool {
  tool_info tool;
  classification cls;
  bool included = true;  // false: left out of the policy (see skip_reason)
  std::string skip_reason;
};

// Classifies every tool, in order; marks duplicates and names a policy key cannot hold
// exactly (glob characters '*' or '?') as left out, so default deny covers them.
[[nodiscard]] std::vector<classified_tool> classify_all(std::vector<tool_info> tools);

// The policy file text (pretty-printed JSON, ends with a newline).
[[nodiscard]] std::string render_policy(const std::vector<classified_tool>& tools,
                                        const profile& p);

// The rule for one tool in a word or two: "allow", "allow 10/min/grant", "require_approval".
[[nodiscard]] std::string rule_summary(const classified_tool& t, const profile& p);

// The reason string a generated rule carries.
[[nodiscard]] std::string rule_reason(const classified_tool& t, const profile& p);

// A table a person reads: tool, class, risk, signal, rule (and the evidence).
[[nodiscard]] std::string render_explain(const std::vector<classified_tool>& tools,
                                         const profile& p);

struct server_facts {
  std::string name, version, protocol_version;
};

// {"server":{...},"profile":"...","tools":[{name,class,risk,signal,detail,rule,included}],
//  "policy":{...}}
[[nodiscard]] std::string render_json(const std::vector<classified_tool>& tools, const profile& p,
                                      const server_facts& server);

using policy::append_json_string;  // JSON string literal, quotes included

}  // namespace sluice::init
