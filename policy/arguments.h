#pragma once
// Argument values as the decision sees them, the trie of argument paths the policy reads,
// and the evaluation of argument checks (`require`, `deny_if`).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "policy/hash.h"
#include "policy/model.h"
#include "policy/regex_range.h"

namespace re2 {
class RE2;
}

namespace sluice::policy {

// One argument value read from a message. Views point into the message buffer or the
// JSON parser's string buffer and live as long as the message_reader's current message.
struct arg_value {
  enum class kind : uint8_t { absent, null, boolean, number, string, array, object };
  kind type = kind::absent;
  bool boolean = false;
  double number = 0;
  std::string_view text;  // string: unescaped; number: the token; array: its raw JSON
  uint32_t count = 0;     // array: element count
};

// Every argument path any rule reads, merged into one trie, so that one pass over a
// message's `arguments` captures all of them whatever order the fields come in.
class arg_trie {
 public:
  static constexpr uint32_t kNoSlot = UINT32_MAX;
  static constexpr uint32_t kRoot = 0;

  arg_trie() { nodes_.emplace_back(); }

  // Adds a path; returns its slot (the index into a message's arg_value array).
  uint32_t add(const arg_path& path);

  // Child node of `node` for field `key`, or kNoSlot. Does not allocate.
  uint32_t child(uint32_t node, std::string_view key) const {
    const struct node& n = nodes_[node];
    if (n.children.size() <= kFew) {
      for (const auto& [k, next] : n.few)
        if (same_bytes(k, key)) return next;
      return kNoSlot;
    }
    auto it = n.children.find(key);
    return it == n.children.end() ? kNoSlot : it->second;
  }
  bool has_children(uint32_t node) const { return !nodes_[node].children.empty(); }
  uint32_t slot(uint32_t node) const { return nodes_[node].slot; }
  size_t node_count() const { return nodes_.size(); }
  size_t slot_count() const { return slot_count_; }

 private:
  // Up to kFew children are also kept in a list that child() scans: comparing a few keys by
  // length and bytes costs less than hashing the key (~220 instructions per proxied call in
  // the gateway benchmark), and a policy checks few fields of an argument object.
  static constexpr size_t kFew = 8;
  struct node {
    std::vector<std::pair<std::string, uint32_t>> few;  // while children.size() <= kFew
    boost::unordered_flat_map<std::string, uint32_t, string_hash, string_eq> children;
    uint32_t slot = kNoSlot;
  };
  std::vector<node> nodes_;
  uint32_t slot_count_ = 0;
};

// A compiled argument check.
struct compiled_check {
  uint32_t slot = 0;
  check_op op = check_op::exists;
  literal value;                       // eq, neq, in, not_in, lt.., contains
  std::shared_ptr<const re2::RE2> re;  // regex, compiled once
  regex_range range;                   // regex: subjects outside it skip RE2
  std::string pointer;                 // rule id, e.g. /tools/x/deny_if/0
  std::string reason;                  // what the agent is told when this check denies
};

// Evaluates `check` against `value`. Wrong-type values for typed ops fail closed:
// `fail_closed` is set, and the caller denies whichever list the check is in.
// Does not allocate, except `contains` on an array (parses the array's raw JSON).
bool check_holds(const compiled_check& check, const arg_value& value, bool& fail_closed);

// Canonical bytes of a value for rate-limit keys (`arg:<path>` scope), as the upstream
// reads it: a type tag, then the unescaped string, or a number as its double's bits (so 1,
// 1.0 and 1e0 are one key). All arrays share one key, and all objects another: their many
// spellings must not split a count. `scratch` holds at least 16 bytes. Does not allocate
// once `buf` is warm.
std::string_view canonical_key(const arg_value& value, char* scratch, std::string& buf);

}  // namespace sluice::policy
