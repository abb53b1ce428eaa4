#include "policy/regex_range.h"

#include <gtest/gtest.h>
#include <re2/re2.h>

#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::policy {
namespace {

// Patterns as policies write them, and shapes that stress the range: optional tails,
// repetitions, case folding with non-ASCII folds, empty matches, bytes >= 0x80, context
// assertions, and unanchored or half-anchored patterns the range must not be used for.
const std::vector<std::string> kPatterns = {
    "^/(etc|root)/",
    "^prod-",
    "^a(bc)?",
    "(?i)^abc",
    "(?i)^k",  // folds to U+212A KELVIN SIGN (e2 84 aa)
    "(?i)^straße",
    "^abc$",
    "^a+",
    "^(abc)+",
    "^$",
    "",
    "^",
    "a*",
    "abc",
    "(?s)^.*",
    "^\\C",
    "(?m)^abc",
    "^a|^b",
    "^a|b",
    "^[a-c]x",
    "^[^/]",
    "^é",
    "^[\\x{80}-\\x{10FFFF}]",
    "^\\bfoo\\b",
    "^x\\B",
    "^/data/[a-z0-9/_-]+\\.parquet$",
    "^.{2,3}x",
    "^\\d{3}-",
    "^(a|ab)(c|bcd)",
    "^[]a]b",
    "(?s)^.\\n",
    "^(?i:A)b",
    "(?U)^a+?b",
    "(?i)^/(ETC|root)/",
};

const std::vector<std::string> kSubjects = {
    "",
    "a",
    "b",
    "x",
    "ab",
    "abc",
    "ABC",
    "aBc",
    "abcabc",
    "abcab",
    "abd",
    "azz",
    "aab",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
    "xb",
    "cx",
    "dx",
    "]b",
    "/",
    "/etc",
    "/etc/passwd",
    "/ETC/passwd",
    "/root/.ssh",
    "/rooz/",
    "/data/reports/q3.parquet",
    "/data/reports/q3.parquetx",
    "prod-1",
    "dev-prod-1",
    "k",
    "K",
    "\xe2\x84\xaa",
    "\xe2\x84\xab",
    "STRASSE",
    "STRAẞE",
    "straße",
    "\xc3\xa9",
    "\x80",
    "\xff",
    "\xff\xff\xff",
    "\xf4\x8f\xbf\xbf",
    "foo",
    "foo bar",
    "foox",
    "xy",
    "x",
    "123-4",
    "12-4",
    "abcd",
    "\n",
    "a\n",
    "Ab",
    "aaab",
    std::string("\0", 1),
    std::string("a\0b", 3),
};

bool prefiltered(const RE2& re, const regex_range& range, std::string_view s) {
  return range.may_match(s) && RE2::PartialMatch(s, re);
}

std::unique_ptr<RE2> compile(const std::string& pattern) {
  RE2::Options opts;
  opts.set_log_errors(false);
  auto re = std::make_unique<RE2>(pattern, opts);
  EXPECT_TRUE(re->ok()) << pattern << ": " << re->error();
  return re;
}

// Subjects at and just beside the range's ends, where an off-by-one would show.
std::vector<std::string> edges(const regex_range& r) {
  std::vector<std::string> out;
  for (const std::string& end : {r.min(), r.max()}) {
    out.push_back(end);
    out.push_back(end + std::string("\0", 1));
    out.push_back(end + "\xff");
    out.push_back(end + "z");
    if (end.empty()) continue;
    out.push_back(end.substr(0, end.size() - 1));
    std::string up = end, down = end;
    up.back() = static_cast<char>(static_cast<unsigned char>(up.back()) + 1);
    down.back() = static_cast<char>(static_cast<unsigned char>(down.back()) - 1);
    out.push_back(up);
    out.push_back(down);
    out.push_back(up + "a");
    out.push_back(down + "\xff");
  }
  return out;
}

TEST(AnchoredAtStartTest, RecognisesAnchoredPatterns) {
  for (const char* p :
       {"^abc", "^", "^$", "(?i)^abc", "(?is)^a", "(?-s)^a", "^/(etc|root)/", "^(a|b)c", "^[|]",
        "^[]|]", "^[^]|]", "^a\\|b", "^(?:a|b)", "^(?P<n>a|b)", "^[\\]|]"}) {
    EXPECT_TRUE(anchored_at_start(p)) << p;
  }
}

TEST(AnchoredAtStartTest, RejectsWhatCanMatchLaterOrWhatItDoesNotParse) {
  for (const char* p : {"",
                        "abc",
                        "a^",
                        "\\^a",
                        "[^a]",
                        "^a|b",
                        "^a|",
                        "(^a)",
                        "(?i:^a)",
                        "(?m)^a",
                        "(?im)^a",
                        "(?i)(?m)^a",
                        "^*a",
                        "^+a",
                        "^?a",
                        "^{2}a",
                        "^\\Qa|\\E",
                        "^a\\Q(\\E|b",
                        "^[[:alpha:](]|x",
                        "^a)|(b",
                        "^(a",
                        "^[a",
                        "(?i",
                        "^\\(|"}) {
    EXPECT_FALSE(anchored_at_start(p)) << p;
  }
}

TEST(RegexRangeTest, UsedOnlyForAnchoredPatterns) {
  EXPECT_TRUE(regex_range::of(*compile("^/(etc|root)/")).active());
  EXPECT_TRUE(regex_range::of(*compile("(?i)^abc")).active());
  EXPECT_FALSE(regex_range::of(*compile("abc")).active());       // matches "xabc"
  EXPECT_FALSE(regex_range::of(*compile("^a|b")).active());      // matches "xb"
  EXPECT_FALSE(regex_range::of(*compile("(?m)^abc")).active());  // matches "x\nabc"
  EXPECT_FALSE(regex_range::of(*compile("")).active());
  EXPECT_FALSE(regex_range::of(*compile("^")).active());
  EXPECT_FALSE(regex_range::of(RE2("(", RE2::Quiet)).active());
  EXPECT_TRUE(regex_range().may_match("anything"));
}

TEST(RegexRangeTest, SkipsRe2ForSubjectsThatCannotMatch) {
  const regex_range r = regex_range::of(*compile("^/(etc|root)/"));
  EXPECT_FALSE(r.may_match("/data/reports/q3.parquet"));
  EXPECT_FALSE(r.may_match(""));
  EXPECT_FALSE(r.may_match("/etc"));
  EXPECT_FALSE(r.may_match("/s"));
  EXPECT_TRUE(r.may_match("/etc/passwd"));
  EXPECT_TRUE(r.may_match("/root/"));
  EXPECT_TRUE(r.may_match("/proc/x"));  // inside the range; RE2 says no
}

// A partial match is a prefix of the subject, so a subject above max can still match:
// "^a(bc)?" has max "abc", and "azz" matches through "a".
TEST(RegexRangeTest, SubjectAboveMaxStillMatchesThroughAShortPrefix) {
  const auto re = compile("^a(bc)?");
  const regex_range r = regex_range::of(*re);
  ASSERT_TRUE(r.active());
  ASSERT_LT(r.max(), "azz");
  EXPECT_TRUE(r.may_match("azz"));
  EXPECT_TRUE(RE2::PartialMatch("azz", *re));
  EXPECT_FALSE(r.may_match("b"));
  EXPECT_FALSE(r.may_match("Abc"));
}

TEST(RegexRangeTest, CaseInsensitiveFoldsStayInRange) {
  const auto re = compile("(?i)^k");
  const regex_range r = regex_range::of(*re);
  ASSERT_TRUE(r.active());
  for (const char* s : {"k", "K", "\xe2\x84\xaa", "kx", "\xe2\x84\xaa!"}) {
    EXPECT_TRUE(r.may_match(s)) << s;
    EXPECT_TRUE(RE2::PartialMatch(s, *re)) << s;
  }
}

TEST(RegexRangeTest, TableAgreesWithRe2) {
  int rejected = 0;
  for (const std::string& p : kPatterns) {
    const auto re = compile(p);
    const regex_range r = regex_range::of(*re);
    std::vector<std::string> subjects = kSubjects;
    for (std::string& e : edges(r))
      subjects.push_back(std::move(e));
    for (const std::string& s : subjects) {
      EXPECT_EQ(prefiltered(*re, r, s), RE2::PartialMatch(s, *re))
          << "pattern " << p << " subject \"" << s << "\" range [" << r.min() << ", " << r.max()
          << "]";
      rejected += !r.may_match(s);
    }
  }
  EXPECT_GT(rejected, 100);  // the table exercises the skipping path, not only RE2
}

// Random and mutated subjects: prefilter + RE2 == RE2 alone, for every pattern.
TEST(RegexRangeTest, RandomSubjectsAgreeWithRe2) {
  std::mt19937 rng(20261125);
  static constexpr char kBytes[] =
      "abcdkpxzABCK/-_.e0123\n \x00\x01\x7f\x80\xa9\xaa\xbf\xc3\xe2\x84\xf4\xff"
      "etcrootdataprod";
  const std::string alphabet(kBytes, sizeof kBytes - 1);  // keeps the NUL
  const auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  int rejected = 0;
  for (const std::string& p : kPatterns) {
    const auto re = compile(p);
    const regex_range r = regex_range::of(*re);
    std::vector<std::string> seeds = kSubjects;
    for (std::string& e : edges(r))
      seeds.push_back(std::move(e));
    for (int n = 0; n < 3000; ++n) {
      std::string s;
      if (n % 3 == 0) {
        const size_t len = pick(14);
        for (size_t k = 0; k < len; ++k)
          s += alphabet[pick(alphabet.size())];
      } else {
        s = seeds[pick(seeds.size())];
        for (size_t m = 1 + pick(3); m > 0; --m) {
          const size_t at = s.empty() ? 0 : pick(s.size() + 1);
          switch (pick(5)) {
            case 0:  // insert a byte
              s.insert(s.begin() + static_cast<std::ptrdiff_t>(at),
                       alphabet[pick(alphabet.size())]);
              break;
            case 1:  // delete a byte
              if (at < s.size()) s.erase(at, 1);
              break;
            case 2:  // step a byte up or down
              if (at < s.size()) s[at] = static_cast<char>(s[at] + (pick(2) != 0 ? 1 : -1));
              break;
            case 3:  // cut
              s.resize(at);
              break;
            default:  // random byte at the end
              s += static_cast<char>(pick(256));
          }
        }
      }
      const bool want = RE2::PartialMatch(s, *re);
      ASSERT_EQ(prefiltered(*re, r, s), want) << "pattern " << p << " subject \"" << s << "\"";
      rejected += !r.may_match(s);
    }
  }
  EXPECT_GT(rejected, 10000);
}

}  // namespace
}  // namespace sluice::policy
