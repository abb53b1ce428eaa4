#pragma once
// A byte range that bounds every match of a start-anchored regex, so that a `regex`
// argument check can answer "no match" without running RE2 when the subject cannot match
// (a path "/data/..." against "^/(etc|root)/"). It only ever skips RE2 when RE2 would say
// no: the answer of the check never changes.

#include <algorithm>
#include <string>
#include <string_view>

namespace re2 {
class RE2;
}

namespace sluice::policy {

// True when every match of `pattern` (RE2 syntax, default options) starts at the beginning
// of the text: leading flag groups without `m`, then `^` not followed by a repetition, and
// no `|` outside parentheses. Conservative: false for anything it does not recognise
// (`\Q`, a `[` inside a class, `(^a)`), which only means the range is not used.
bool anchored_at_start(std::string_view pattern);

class regex_range {
 public:
  // How many bytes of a match RE2 looks at to bound it.
  static constexpr int kMaxLen = 32;

  regex_range() = default;

  // The range of `re` from RE2::PossibleMatchRange, or an inactive range (which passes
  // everything) when `re` is not anchored at start or RE2 cannot bound it.
  static regex_range of(const re2::RE2& re);

  // False only when RE2::PartialMatch(subject, re) is false. RE2 bounds every anchored
  // match m by min <= m <= max (byte-wise), and a partial match of a start-anchored regex is
  // a prefix of the subject. Prefixes of a string grow in byte order, so some prefix lies in
  // [min, max] exactly when the longest prefix that is <= max is >= min. Not simply
  // "subject <= max": "^prod-" has max "prod-" and matches "prod-1". Does not allocate.
  bool may_match(std::string_view subject) const {
    if (!active_) return true;
    if (subject < min_) return false;  // then so is every prefix
    const size_t n = std::min(subject.size(), max_.size());
    // subject[:n] <= max[:n]: subject itself, or max when subject extends it, is in range.
    if (subject.substr(0, n) <= std::string_view(max_).substr(0, n)) return true;
    // subject passes max at byte i: subject[:i] is the longest prefix that is <= max.
    const auto i = static_cast<size_t>(
        std::mismatch(subject.begin(), subject.begin() + n, max_.begin()).first - subject.begin());
    return subject.substr(0, i) >= min_;
  }

  bool active() const { return active_; }
  const std::string& min() const { return min_; }
  const std::string& max() const { return max_; }

 private:
  std::string min_;
  std::string max_;
  bool active_ = false;
};

}  // namespace sluice::policy
