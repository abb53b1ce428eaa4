#include "policy/glob.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace sluice::policy {
namespace {

// ---------------------------------------------------------------------------------------
// glob_match

TEST(GlobMatchTest, LiteralPatternMatchesOnlyItself) {
  EXPECT_TRUE(glob_match("read_file", "read_file"));
  EXPECT_FALSE(glob_match("read_file", "read_files"));
  EXPECT_FALSE(glob_match("read_file", "xread_file"));
  EXPECT_FALSE(glob_match("read_file", "read_fil"));
  EXPECT_FALSE(glob_match("read_file", ""));
  EXPECT_TRUE(glob_match("", ""));
  EXPECT_FALSE(glob_match("", "a"));
}

TEST(GlobMatchTest, StarMatchesAnyRunIncludingNoneAndSlash) {
  EXPECT_TRUE(glob_match("read_*", "read_"));
  EXPECT_TRUE(glob_match("read_*", "read_file"));
  EXPECT_TRUE(glob_match("read_*", "read_a/b/c"));
  EXPECT_FALSE(glob_match("read_*", "read"));
  EXPECT_FALSE(glob_match("read_*", "xread_file"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("*", "anything/at all"));
  EXPECT_TRUE(glob_match("**", "x"));
  EXPECT_TRUE(glob_match("*_file", "read_file"));
  EXPECT_FALSE(glob_match("*_file", "read_files"));
  EXPECT_TRUE(glob_match("a*b*c", "abc"));
  EXPECT_TRUE(glob_match("a*b*c", "a_b_b_c"));
  EXPECT_FALSE(glob_match("a*b*c", "a_b_b_c_"));
  EXPECT_TRUE(glob_match("file:///etc/*", "file:///etc/passwd"));
  EXPECT_FALSE(glob_match("file:///etc/*", "file:///home/etc/passwd"));
}

TEST(GlobMatchTest, StarBacktracksOverRepeatedLiterals) {
  EXPECT_TRUE(glob_match("*aab", "aaaab"));
  EXPECT_TRUE(glob_match("*ab*ab", "xabyabzab"));
  EXPECT_FALSE(glob_match("*ab*ab", "xabyaba"));
}

TEST(GlobMatchTest, QuestionMarkMatchesExactlyOneUtf8Character) {
  EXPECT_TRUE(glob_match("?", "a"));
  EXPECT_TRUE(glob_match("?", "\xC3\xA9"));          // é: 2 bytes
  EXPECT_TRUE(glob_match("?", "\xE2\x82\xAC"));      // €: 3 bytes
  EXPECT_TRUE(glob_match("?", "\xF0\x9F\x98\x80"));  // 😀: 4 bytes
  EXPECT_FALSE(glob_match("?", ""));
  EXPECT_FALSE(glob_match("?", "ab"));
  EXPECT_FALSE(glob_match("?",
                          "\xC3\xA9"
                          "a"));
  EXPECT_FALSE(glob_match("??", "\xC3\xA9"));  // é is one character, not two
  EXPECT_TRUE(glob_match("caf?", "caf\xC3\xA9"));
  EXPECT_TRUE(glob_match("?x", "\xC3\xA9x"));
  EXPECT_FALSE(glob_match("?x", "\xC3x"));  // truncated sequence is not a character + x
  EXPECT_TRUE(glob_match("r??d", "read"));
  EXPECT_FALSE(glob_match("r??d", "red"));
}

TEST(GlobMatchTest, NoEscapeCharacter) {
  // A backslash is an ordinary literal byte; `\*` is a backslash followed by a wildcard.
  EXPECT_TRUE(glob_match("a\\*", "a\\"));
  EXPECT_TRUE(glob_match("a\\*", "a\\xyz"));
  EXPECT_FALSE(glob_match("a\\*", "a*"));
  EXPECT_TRUE(glob_match("a\\?", "a\\b"));
  EXPECT_FALSE(glob_match("a\\?", "a?"));
  // So no pattern matches only the literal name "a*": `*` is always a wildcard.
  EXPECT_TRUE(glob_match("a*", "ab"));
}

TEST(GlobMatchTest, AnchoredAtBothEnds) {
  EXPECT_FALSE(glob_match("read", "read_file"));
  EXPECT_FALSE(glob_match("file", "read_file"));
  EXPECT_FALSE(glob_match("?ead", "xread"));
  EXPECT_FALSE(glob_match("rea?", "reads"));
  EXPECT_TRUE(glob_match("*read*", "xreadx"));
}

// Reference matcher over code points, written the obvious (recursive) way.
std::vector<std::string> split_chars(std::string_view s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    out.emplace_back(s.substr(i, n));
    i += n;
  }
  return out;
}

bool reference_match(const std::vector<std::string>& p, size_t pi,
                     const std::vector<std::string>& n, size_t ni) {
  if (pi == p.size()) return ni == n.size();
  if (p[pi] == "*") {
    for (size_t k = ni; k <= n.size(); ++k)
      if (reference_match(p, pi + 1, n, k)) return true;
    return false;
  }
  if (ni == n.size()) return false;
  if (p[pi] == "?" || p[pi] == n[ni]) return reference_match(p, pi + 1, n, ni + 1);
  return false;
}

// Every pattern and name up to a few characters over an alphabet mixing one-, two- and
// three-byte characters: the iterative matcher agrees with the reference.
TEST(GlobMatchTest, AgreesWithReferenceOnAllShortStrings) {
  const std::vector<std::string> name_alphabet = {"a", "b", "\xC3\xA9", "\xE2\x82\xAC"};
  std::vector<std::string> pattern_alphabet = name_alphabet;
  pattern_alphabet.push_back("*");
  pattern_alphabet.push_back("?");

  auto all_strings = [](const std::vector<std::string>& alphabet, size_t max_len) {
    std::vector<std::string> out = {""};
    std::vector<std::string> frontier = {""};
    for (size_t len = 1; len <= max_len; ++len) {
      std::vector<std::string> next;
      for (const std::string& s : frontier)
        for (const std::string& c : alphabet)
          next.push_back(s + c);
      out.insert(out.end(), next.begin(), next.end());
      frontier = std::move(next);
    }
    return out;
  };
  const auto patterns = all_strings(pattern_alphabet, 4);
  const auto names = all_strings(name_alphabet, 4);
  size_t mismatches = 0;
  for (const std::string& p : patterns) {
    const auto pc = split_chars(p);
    for (const std::string& n : names) {
      const bool want = reference_match(pc, 0, split_chars(n), 0);
      if (glob_match(p, n) != want && ++mismatches <= 10)
        ADD_FAILURE() << "pattern '" << p << "' name '" << n << "': want " << want;
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

TEST(GlobLiteralCountTest, CountsNonWildcardBytes) {
  EXPECT_EQ(glob_literal_count("read_*"), 5u);
  EXPECT_EQ(glob_literal_count("*_file"), 5u);
  EXPECT_EQ(glob_literal_count("r*"), 1u);
  EXPECT_EQ(glob_literal_count("*"), 0u);
  EXPECT_EQ(glob_literal_count("??"), 0u);
  EXPECT_EQ(glob_literal_count("exact"), 5u);
}

// ---------------------------------------------------------------------------------------
// pattern_set

TEST(PatternSetTest, EmptySetMatchesNothing) {
  pattern_set s;
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.match("anything"), pattern_set::kNone);
  EXPECT_EQ(s.match(""), pattern_set::kNone);
}

TEST(PatternSetTest, NoMatchIsKNone) {
  pattern_set s;
  s.add("read_*", 1);
  s.add("*_file", 2);
  EXPECT_EQ(s.size(), 2u);
  EXPECT_FALSE(s.empty());
  EXPECT_EQ(s.match("write_dir"), pattern_set::kNone);
  EXPECT_EQ(s.match("rea"), pattern_set::kNone);
  EXPECT_EQ(s.match(""), pattern_set::kNone);
}

TEST(PatternSetTest, MostLiteralCharactersWins) {
  pattern_set s;
  s.add("r*", 1);
  s.add("read_*", 2);
  s.add("*", 3);
  EXPECT_EQ(s.match("read_file"), 2u);
  EXPECT_EQ(s.match("rm"), 1u);
  EXPECT_EQ(s.match("write"), 3u);

  // Same patterns added in the opposite order: still the most specific.
  pattern_set t;
  t.add("*", 3);
  t.add("read_*", 2);
  t.add("r*", 1);
  EXPECT_EQ(t.match("read_file"), 2u);
  EXPECT_EQ(t.match("rm"), 1u);
  EXPECT_EQ(t.match("write"), 3u);
}

TEST(PatternSetTest, MoreLiteralsWinsEvenWithAShorterPrefix) {
  // `*_file_v2` has no prefix but 8 literals; `re*` has a 2-byte prefix and 2 literals.
  pattern_set s;
  s.add("re*", 1);
  s.add("*_file_v2", 2);
  EXPECT_EQ(s.match("read_file_v2"), 2u);
  EXPECT_EQ(s.match("read_file"), 1u);
}

TEST(PatternSetTest, TieGoesToFirstAdded) {
  pattern_set s;
  s.add("read_*", 10);
  s.add("*_file", 20);
  EXPECT_EQ(s.match("read_file"), 10u);

  pattern_set t;
  t.add("*_file", 20);
  t.add("read_*", 10);
  EXPECT_EQ(t.match("read_file"), 20u);
}

TEST(PatternSetTest, TieWithinOnePrefixBucketGoesToFirstAdded) {
  pattern_set s;
  s.add("a?c*", 1);
  s.add("a*c?", 2);  // same prefix "a", same 2 literals
  EXPECT_EQ(s.match("abcd"), 1u);
  pattern_set t;
  t.add("a*c?", 2);
  t.add("a?c*", 1);
  EXPECT_EQ(t.match("abcd"), 2u);
}

TEST(PatternSetTest, ValueIsReturnedNotInsertionIndex) {
  pattern_set s;
  s.add("x*", 42);
  s.add("y*", 7);
  EXPECT_EQ(s.match("yes"), 7u);
  EXPECT_EQ(s.match("xen"), 42u);
}

TEST(PatternSetTest, PrefixIndexFindsPatternsOfEveryPrefixLength) {
  pattern_set s;
  s.add("*z", 0);            // prefix length 0
  s.add("a*", 1);            // 1
  s.add("ab?", 2);           // 2
  s.add("abcd*", 3);         // 4
  s.add("abcdefgh*", 4);     // 8
  s.add("?bcdefghijkl", 5);  // starts with a wildcard, many literals
  EXPECT_EQ(s.match("xyz"), 0u);
  EXPECT_EQ(s.match("a"), 1u);
  EXPECT_EQ(s.match("abx"), 2u);
  EXPECT_EQ(s.match("abcdz"), 3u);
  EXPECT_EQ(s.match("abcdefghz"), 4u);
  EXPECT_EQ(s.match("abcdefghijkl"), 5u);
  EXPECT_EQ(s.match("xbcdefghijkl"), 5u);
  // A name shorter than a prefix must not be looked up past its end.
  EXPECT_EQ(s.match("abc"), 2u);
  EXPECT_EQ(s.match("ab"), 1u);
  EXPECT_EQ(s.match("q"), pattern_set::kNone);
}

TEST(PatternSetTest, PrefixMustMatchExactly) {
  pattern_set s;
  s.add("abc*", 1);
  EXPECT_EQ(s.match("abd"), pattern_set::kNone);
  EXPECT_EQ(s.match("ab"), pattern_set::kNone);
  EXPECT_EQ(s.match("abc"), 1u);
}

TEST(PatternSetTest, PatternWithoutWildcardIsMatchedExactly) {
  pattern_set s;
  s.add("exact", 1);
  s.add("ex*", 2);
  EXPECT_EQ(s.match("exact"), 1u);
  EXPECT_EQ(s.match("exactly"), 2u);
}

TEST(PatternSetTest, QuestionMarkPatternsInTheSet) {
  pattern_set s;
  s.add("caf?", 1);
  s.add("*", 2);
  EXPECT_EQ(s.match("caf\xC3\xA9"), 1u);
  EXPECT_EQ(s.match("cafe"), 1u);
  EXPECT_EQ(s.match("cafes"), 2u);
}

// The indexed lookup agrees with a linear scan applying the documented rule.
TEST(PatternSetTest, AgreesWithLinearScan) {
  const std::vector<std::string> patterns = {"*",    "a*",  "ab*",  "*b",  "a?c",  "?bc",
                                             "abc",  "a*c", "*bc*", "ab?", "b*",   "??",
                                             "a**c", "*a*", "abcd", "?",   "a?c*", "x*y"};
  pattern_set s;
  for (size_t i = 0; i < patterns.size(); ++i)
    s.add(patterns[i], static_cast<uint32_t>(100 + i));
  const std::vector<std::string> names = {"",   "a",   "b",   "ab",   "bc",  "abc", "abcd",
                                          "ac", "aac", "xbc", "abcc", "xay", "xy",  "ba"};
  for (const std::string& n : names) {
    uint32_t want = pattern_set::kNone;
    uint32_t best_literals = 0;
    for (size_t i = 0; i < patterns.size(); ++i) {
      if (!glob_match(patterns[i], n)) continue;
      const uint32_t lc = glob_literal_count(patterns[i]);
      if (want == pattern_set::kNone || lc > best_literals) {
        want = static_cast<uint32_t>(100 + i);
        best_literals = lc;
      }
    }
    EXPECT_EQ(s.match(n), want) << "name '" << n << "'";
  }
}

}  // namespace
}  // namespace sluice::policy
