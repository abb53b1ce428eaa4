#pragma once
// The policy file as loaded: plain, validated data, not yet compiled. The loader
// (policy/loader.h) produces it; the compiler (policy/compiled_policy.h) turns it into
// the immutable decision table that the evaluator reads.

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::policy {

enum class action : uint8_t { allow, deny, require_approval };

enum class scope_kind : uint8_t { global, grant, session, arg };

enum class check_op : uint8_t {
  eq,
  neq,
  in,
  not_in,
  lt,
  lte,
  gt,
  gte,
  regex,
  contains,
  exists,
  not_exists,
  max_length,
};

// A path into a call's arguments. Written as `args.a.b` or as a JSON pointer `/a/b`
// (RFC 6901, with ~0 and ~1 decoded). A segment made only of digits also indexes arrays.
struct arg_path {
  std::vector<std::string> segments;
  std::string text;  // as written in the file, for messages
};

// A check's `value`: a JSON scalar, or a list of scalars for `in` / `not_in`.
struct literal {
  enum class kind : uint8_t { null, boolean, number, string, list };
  kind type = kind::null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<literal> items;  // type == list; items are scalars
};

struct limit_def {
  std::string counter;
  int64_t window_seconds = 0;  // > 0
  uint64_t max = 0;            // > 0
  scope_kind scope = scope_kind::global;
  arg_path arg;         // scope == arg
  std::string pointer;  // JSON pointer of this limit in the file: the rule id
};

struct check_def {
  arg_path path;
  check_op op = check_op::exists;
  literal value;        // unused for exists / not_exists
  std::string pointer;  // e.g. /tools/delete_bucket/deny_if/0
};

// One entry of `tools`, `resources` or `prompts`.
struct rule_def {
  std::string key;          // exact name, or a glob when is_pattern
  bool is_pattern = false;  // key contains '*' or '?'
  action act = action::allow;
  std::string reason;
  std::vector<limit_def> limits;
  std::vector<check_def> require;
  std::vector<check_def> deny_if;
  std::string pointer;  // e.g. /tools/delete_bucket
};

struct hide_def {
  std::string key;
  bool is_pattern = false;
  std::string pointer;  // e.g. /hide/2
};

struct policy_def {
  std::string source;  // file name the policy came from
  action default_action = action::deny;
  std::vector<rule_def> tools;  // in file order
  std::vector<hide_def> hide;
  std::vector<limit_def> all_tools;
  bool has_resources = false;  // a `resources` object is present
  std::vector<rule_def> resources;
  bool has_prompts = false;  // a `prompts` object is present
  std::vector<rule_def> prompts;
};

}  // namespace sluice::policy
