// net/session_binding.h: a session id works for the grant it was handed to and nobody else;
// net/siphash.h, the MAC under it.

#include "net/session_binding.h"
#include "net/siphash.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/temp_file.h"

namespace sluice::net {
namespace {

constexpr std::array<uint8_t, 16> kKey = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

std::string bytes_up_to(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i)
    s += static_cast<char>(i);
  return s;
}

uint64_t sip(std::string_view data) {
  siphash24 h(kKey);
  h.add(data);
  return h.value();
}

// The SipHash paper's test values: key 00 01 .. 0f, message 00 01 .. (n-1).
TEST(siphash24, MatchesThePublishedValues) {
  EXPECT_EQ(sip(""), 0x726fdb47dd0e0e31ULL);
  EXPECT_EQ(sip(bytes_up_to(15)), 0xa129ca6149be45e5ULL);  // the paper's worked example
}

TEST(siphash24, AddingInPiecesIsAddingAtOnce) {
  const std::string m = bytes_up_to(40);
  const uint64_t whole = sip(m);
  for (size_t cut = 0; cut <= m.size(); ++cut) {
    siphash24 h(kKey);
    h.add(std::string_view(m).substr(0, cut));
    h.add(std::string_view(m).substr(cut));
    EXPECT_EQ(h.value(), whole) << cut;
  }
  siphash24 h(kKey);
  h.add("ab");
  EXPECT_EQ(h.value(), h.value());  // value() does not consume
}

std::string bound(const session_binding& b, std::string_view grant, std::string_view id) {
  std::string out(id);
  b.append_tag(out, "/mcp", grant, id);
  return out;
}

TEST(session_binding, TheGrantItWasGivenToGetsTheUpstreamsIdBack) {
  const session_binding b(kKey);
  const std::string sid = bound(b, "ci-agent", "8f3c2a.session-1");
  ASSERT_EQ(sid.size(), std::string("8f3c2a.session-1").size() + session_binding::kTagChars);
  std::string_view up;
  ASSERT_TRUE(b.verify("/mcp", "ci-agent", sid, up));
  EXPECT_EQ(up, "8f3c2a.session-1");  // a '.' in the upstream's id is kept
}

TEST(session_binding, AnyOtherCallerOrAnyChangeIsRefused) {
  const session_binding b(kKey);
  const std::string sid = bound(b, "ci-agent", "abc");
  std::string_view up = "untouched";
  EXPECT_FALSE(b.verify("/mcp", "ci-agent2", sid, up));  // another grant
  EXPECT_FALSE(b.verify("/mcp", "ci-agen", sid, up));
  EXPECT_FALSE(b.verify("/mcp", "ci-agent", "abd" + sid.substr(3), up));  // another id, same tag
  std::array<uint8_t, 16> other = kKey;
  other[15] ^= 1;
  EXPECT_FALSE(session_binding(other).verify("/mcp", "ci-agent", sid, up));  // another key
  for (size_t i = 4; i < sid.size(); ++i) {  // every tag digit, changed
    std::string t = sid;
    t[i] = t[i] == '0' ? '1' : '0';
    EXPECT_FALSE(b.verify("/mcp", "ci-agent", t, up)) << t;
  }
  std::string upper = sid;
  for (char& c : upper)
    if (c >= 'a' && c <= 'f') c = static_cast<char>(c - 'a' + 'A');
  EXPECT_FALSE(b.verify("/mcp", "ci-agent", upper, up));
  EXPECT_FALSE(b.verify("/mcp", "ci-agent", "abc", up));                          // no tag
  EXPECT_FALSE(b.verify("/mcp", "ci-agent", sid.substr(3), up));                  // a tag and no id
  EXPECT_FALSE(b.verify("/mcp", "ci-agent", sid.substr(0, sid.size() - 1), up));  // a digit short
  EXPECT_FALSE(b.verify("/mcp", "ci-agent", sid + "0", up));
  EXPECT_FALSE(b.verify("/mcp", "ci-agent", "a\rc" + sid.substr(3), up));
  EXPECT_EQ(up, "untouched");
  // Lengths are hashed too: moving bytes between id, grant and endpoint changes the tag.
  EXPECT_NE(bound(b, "xy", "ab").substr(2), bound(b, "y", "abx").substr(3));
  std::string other_endpoint = "abc";
  b.append_tag(other_endpoint, "/mcpci-agent", "", "abc");
  EXPECT_NE(other_endpoint, sid);
  // Another endpoint: the session of one server cannot be named at another's path.
  EXPECT_FALSE(b.verify("/servers/b/mcp", "ci-agent", sid, up));
  EXPECT_TRUE(b.verify("/mcp", "ci-agent", sid, up));
}

TEST(session_binding, AKeyFileGivesTheSameKeyToEveryProcess) {
  const sluice::testing::temp_file file("0123456789abcde");  // 15 bytes: too short
  const std::string& path = file.path();
  ASSERT_FALSE(path.empty());
  std::array<uint8_t, 16> k1{}, k2{};
  std::string error;
  EXPECT_FALSE(session_binding::key_from_file(path, k1, error));
  EXPECT_NE(error.find("at least 16 bytes"), std::string::npos) << error;
  file.write("0123456789abcdef");
  ASSERT_TRUE(session_binding::key_from_file(path, k1, error)) << error;
  ASSERT_TRUE(session_binding::key_from_file(path, k2, error)) << error;
  EXPECT_EQ(k1, k2);
  file.remove();
  EXPECT_FALSE(session_binding::key_from_file(path, k1, error));
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(session_binding::random_key(), session_binding::random_key());
}

}  // namespace
}  // namespace sluice::net
