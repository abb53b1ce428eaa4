#pragma once
// The immutable decision table compiled from a policy_def. Built once (at start-up or on
// reload, off the data path), then shared read-only by every shard.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "policy/arguments.h"
#include "policy/glob.h"
#include "policy/hash.h"
#include "policy/model.h"

namespace sluice::policy {

// A compiled rate limit. Keys derive from the counter *name*, so counts survive a reload.
struct compiled_limit {
  std::string counter;
  uint64_t counter_hash = 0;
  int64_t window_ns = 0;
  uint32_t max = 0;
  scope_kind scope = scope_kind::global;
  uint32_t slot = 0;    // scope == arg: argument slot
  std::string pointer;  // rule id
  std::string reason;   // "rate limit exceeded: ..."
};

// What one tool / resource / prompt entry (or a default) compiles to.
struct compiled_rule {
  action act = action::allow;
  bool hidden = false;  // `hide` matched: denied and removed from tools/list
  std::string pointer;  // rule id reported by decisions
  std::string reason;   // shown to the agent when this rule denies
  std::vector<compiled_check> require;
  std::vector<compiled_check> deny_if;
  std::vector<compiled_limit> limits;  // own limits + all_tools, one per counter

  // Listed in tools/list answers: not hidden and not denied outright.
  bool listed() const { return !hidden && act != action::deny; }
};

// One of `tools`, `resources`, `prompts`: exact names, patterns, and the rule for names
// neither matches.
class rule_table {
 public:
  // The rule for `name`: an exact entry (hidden ones included), else a `hide` pattern,
  // else the best tool pattern, else the fallback. Does not allocate.
  const compiled_rule& find(std::string_view name) const;

  std::vector<compiled_rule> rules;  // every rule; indices below point here
  boost::unordered_flat_map<std::string, uint32_t, string_hash, string_eq> exact;
  pattern_set hide_patterns;  // `hide` globs: checked before tool patterns
  pattern_set patterns;
  uint32_t fallback = 0;
  size_t exact_count() const { return exact.size(); }
};

struct compile_stats {
  size_t tools = 0, tool_patterns = 0, hidden = 0, limits = 0, checks = 0;
  size_t resources = 0, prompts = 0, counters = 0;
};

class compiled_policy {
 public:
  // Compiles a loaded (already validated) policy. Regexes are compiled here, once. A
  // non-empty counter_namespace (a server's name behind a gateway of several servers) keys
  // every rate-limit counter apart from the same counter name in any other namespace; the
  // names shown to agents stay as written.
  static std::shared_ptr<const compiled_policy> compile(const policy_def& def,
                                                        std::string_view counter_namespace = {});

  const rule_table& tools() const { return tools_; }
  const rule_table& resources() const { return resources_; }
  const rule_table& prompts() const { return prompts_; }
  const arg_trie& args() const { return args_; }
  const compile_stats& stats() const { return stats_; }
  const std::string& source() const { return source_; }

  // Whether tools/list answers keep `name`. Does not allocate.
  bool tool_listed(std::string_view name) const { return tools_.find(name).listed(); }

 private:
  std::string source_;
  rule_table tools_, resources_, prompts_;
  arg_trie args_;  // argument paths of tools and prompts (one trie: see arg_trie)
  compile_stats stats_;
};

}  // namespace sluice::policy
