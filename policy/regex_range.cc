#include "policy/regex_range.h"

#include <re2/re2.h>

namespace sluice::policy {

bool anchored_at_start(std::string_view p) {
  if (p.find("\\Q") != std::string_view::npos) return false;  // \Q...\E quotes | ( ) [
  size_t i = 0;
  // Leading flag groups: (?i), (?s), (?U), (?-s)... but not (?m), which makes ^ match at
  // any line start, and not (?i:...), whose group would hold the ^.
  while (p.substr(i, 2) == "(?") {
    i += 2;
    while (i < p.size() && std::string_view("isU-").find(p[i]) != std::string_view::npos)
      ++i;
    if (i == p.size() || p[i] != ')') return false;
    ++i;
  }
  if (i == p.size() || p[i] != '^') return false;
  ++i;
  if (i < p.size() && std::string_view("*+?{").find(p[i]) != std::string_view::npos)
    return false;  // ^* and the like make the anchor optional
  // No alternation at the top level: "^a|b" matches "xb".
  int depth = 0;
  while (i < p.size()) {
    const char c = p[i];
    if (c == '\\') {
      i += 2;
    } else if (c == '[') {
      ++i;
      if (i < p.size() && p[i] == '^') ++i;
      if (i < p.size() && p[i] == ']') ++i;  // a leading ] is a member
      while (i < p.size() && p[i] != ']') {
        if (p[i] == '[') return false;  // [:alpha:] and friends: not worth parsing
        i += p[i] == '\\' ? 2 : 1;
      }
      if (i >= p.size()) return false;
      ++i;
    } else {
      if (c == '(') ++depth;
      if (c == ')' && --depth < 0) return false;
      if (c == '|' && depth == 0) return false;
      ++i;
    }
  }
  return depth == 0;
}

regex_range regex_range::of(const re2::RE2& re) {
  regex_range r;
  if (!re.ok() || !anchored_at_start(re.pattern())) return r;
  // RE2 computes the range for matches that start at the beginning of the text, which is
  // why the pattern must be anchored there. An empty max bounds nothing usable.
  if (!re.PossibleMatchRange(&r.min_, &r.max_, kMaxLen) || r.max_.empty() || r.min_ > r.max_) {
    r.min_.clear();
    r.max_.clear();
    return r;
  }
  r.active_ = true;
  return r;
}

}  // namespace sluice::policy
