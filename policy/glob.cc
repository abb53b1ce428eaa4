#include "policy/glob.h"

#include <algorithm>

namespace sluice::policy {

namespace {
// Length of the UTF-8 sequence starting with byte `c` (1 for stray continuation bytes,
// which the JSON layer has already rejected as invalid UTF-8).
size_t utf8_len(unsigned char c) {
  if (c < 0xC0) return 1;
  if (c < 0xE0) return 2;
  if (c < 0xF0) return 3;
  return 4;
}
}  // namespace

bool glob_match(std::string_view pattern, std::string_view name) {
  // Iterative matcher with one backtrack point (the last '*'): O(|pattern| * |name|)
  // in the worst case, no recursion.
  size_t p = 0, n = 0;
  size_t star_p = std::string_view::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star_p = p++;
      star_n = n;
    } else if (p < pattern.size() && pattern[p] == '?') {
      ++p;
      n += utf8_len(static_cast<unsigned char>(name[n]));
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star_p != std::string_view::npos) {
      p = star_p + 1;
      n = ++star_n;
    } else {
      return false;
    }
  }
  if (n > name.size()) return false;  // '?' consumed a truncated sequence
  while (p < pattern.size() && pattern[p] == '*')
    ++p;
  return p == pattern.size();
}

uint32_t glob_literal_count(std::string_view pattern) {
  return static_cast<uint32_t>(
      std::count_if(pattern.begin(), pattern.end(), [](char c) { return c != '*' && c != '?'; }));
}

void pattern_set::add(std::string_view pattern, uint32_t value) {
  const auto index = static_cast<uint32_t>(entries_.size());
  entries_.push_back({std::string(pattern), value, glob_literal_count(pattern), index});
  const size_t wild = pattern.find_first_of("*?");
  const std::string_view prefix = pattern.substr(0, wild);
  by_prefix_[std::string(prefix)].push_back(index);
  const auto len = static_cast<uint32_t>(prefix.size());
  auto it = std::lower_bound(prefix_lengths_.begin(), prefix_lengths_.end(), len);
  if (it == prefix_lengths_.end() || *it != len) prefix_lengths_.insert(it, len);
}

uint32_t pattern_set::match(std::string_view name) const {
  const entry* best = nullptr;
  for (uint32_t len : prefix_lengths_) {
    if (len > name.size()) break;
    auto it = by_prefix_.find(name.substr(0, len));
    if (it == by_prefix_.end()) continue;
    for (uint32_t i : it->second) {
      const entry& e = entries_[i];
      if (best != nullptr && (e.literal_count < best->literal_count ||
                              (e.literal_count == best->literal_count && e.order > best->order))) {
        continue;  // cannot beat the current best: skip the match
      }
      if (glob_match(e.pattern, name)) best = &e;
    }
  }
  return best != nullptr ? best->value : kNone;
}

}  // namespace sluice::policy
