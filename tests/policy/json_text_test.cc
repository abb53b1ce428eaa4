// append_json_escaped, json_escaped_size and put_json_escaped against a byte-at-a-time
// reference: every byte value at every position of strings that span the eight-byte steps, and
// random strings.

#include "policy/json_text.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>

namespace sluice::policy {
namespace {

std::string reference(std::string_view s) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20) {
      char u[8];
      std::snprintf(u, sizeof u, "\\u%04x", c);
      out += u;
    } else {
      out += ch;
    }
  }
  return out;
}

// The string form; checks on the way that the in-place form writes the same bytes, exactly
// json_escaped_size of them (a sentinel after them stays).
std::string escaped(std::string_view s) {
  std::string out = "prefix:";  // appends, never overwrites
  append_json_escaped(out, s);
  const size_t n = json_escaped_size(s);
  std::string buf(n + 1, '#');
  char* end = put_json_escaped(buf.data(), s, n);
  EXPECT_EQ(end, buf.data() + n);
  EXPECT_EQ(buf.back(), '#');
  EXPECT_EQ("prefix:" + buf.substr(0, n), out);
  return out;
}

TEST(JsonEscape, EveryByteAtEveryPosition) {
  for (size_t len : {1u, 7u, 8u, 9u, 15u, 16u, 17u, 23u, 24u, 31u, 32u, 33u}) {
    for (size_t at = 0; at < len; ++at) {
      for (int b = 0; b < 256; ++b) {
        std::string s(len, 'a');
        s[at] = static_cast<char>(b);
        ASSERT_EQ(escaped(s), "prefix:" + reference(s))
            << "len " << len << " at " << at << " byte " << b;
      }
    }
  }
}

TEST(JsonEscape, RandomStringsMatchTheReference) {
  std::mt19937 rng(12345);
  // Mostly plain text, with quotes, backslashes, control bytes and UTF-8 mixed in.
  const std::string alphabet = std::string("abcXYZ09 /:._-") + "\"\\\n\t\r\x01\x1f\x7f" +
                               "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
  for (int n = 0; n < 20000; ++n) {
    std::string s(rng() % 40, ' ');
    for (char& c : s)
      c = alphabet[rng() % alphabet.size()];
    ASSERT_EQ(escaped(s), "prefix:" + reference(s)) << s;
  }
  EXPECT_EQ(escaped(""), "prefix:");
}

}  // namespace
}  // namespace sluice::policy
