#pragma once
// Glob patterns for tool names, prompt names and resource URIs: `*` matches any run of
// bytes (including none and including '/'), `?` matches exactly one UTF-8 character.
// There is no escape character.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "policy/hash.h"

namespace sluice::policy {

// True when `name` matches `pattern` as a whole. Does not allocate.
bool glob_match(std::string_view pattern, std::string_view name);

// Number of literal (non-wildcard) bytes in a pattern: the measure of its specificity.
uint32_t glob_literal_count(std::string_view pattern);

// A set of patterns answering "which pattern best matches this name". Best = most
// literal characters; ties go to the pattern added first. Patterns are indexed by their
// literal prefix (the text before the first wildcard), so a lookup probes one hash table
// per distinct prefix length instead of matching every pattern.
class pattern_set {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  // `value` is returned by match(); patterns are ranked by the order of add() calls.
  void add(std::string_view pattern, uint32_t value);

  // The value of the best matching pattern, or kNone. Does not allocate.
  uint32_t match(std::string_view name) const;

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }

 private:
  struct entry {
    std::string pattern;
    uint32_t value;
    uint32_t literal_count;
    uint32_t order;
  };
  std::vector<entry> entries_;
  boost::unordered_flat_map<std::string, std::vector<uint32_t>, string_hash, string_eq> by_prefix_;
  std::vector<uint32_t> prefix_lengths_;  // distinct, ascending
};

}  // namespace sluice::policy
