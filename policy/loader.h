#pragma once
// Strict policy loading: JSON text -> policy_def, or every error found, each naming the
// file, the JSON pointer of the offending field and what was expected. Nothing is
// half-loaded: a policy with any error is not returned at all.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/model.h"

namespace sluice::policy {

struct load_error {
  std::string file;
  std::string pointer;  // JSON pointer; "" for the document itself
  std::string message;  // what was wrong and what was expected

  // "file: /json/pointer: message" — the one-line form `sluice check` prints.
  std::string to_string() const;
};

struct load_result {
  std::optional<policy_def> policy;  // set only when errors is empty
  std::vector<load_error> errors;
};

// Loads from text; `source` names the origin in errors and in policy_def::source.
load_result load_policy_text(std::string_view text, std::string_view source);

// Reads and loads a file. An unreadable file is one error with an empty pointer.
load_result load_policy_file(const std::string& path);

// Parses an argument path as written in a policy (`args.a.b` or `/a/b`). Returns false
// and leaves `out` unspecified when the text is neither form or has an empty segment.
bool parse_arg_path(std::string_view text, arg_path& out);

// True when the key contains a glob metacharacter ('*' or '?').
bool is_glob(std::string_view key);

}  // namespace sluice::policy
