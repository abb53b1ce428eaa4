// policy/short_bytes.h: the inline copy and comparison agree with memcpy and memcmp at every
// length up to and past the inline cases, touch no byte outside the strings, and find a
// difference at every position.

#include "policy/short_bytes.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>

namespace sluice::policy {
namespace {

std::string pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>(seed + 7 * i);
  return s;
}

TEST(short_bytes, PutShortCopiesExactlyTheStringAtEveryLength) {
  for (size_t n = 0; n <= 70; ++n) {
    const std::string src = pattern(n, 'a');
    std::string dst(n + 32, '#');  // guard bytes on both sides of [16, 16 + n)
    char* end = put_short(dst.data() + 16, src);
    EXPECT_EQ(end, dst.data() + 16 + n) << n;
    EXPECT_EQ(dst.substr(16, n), src) << n;
    EXPECT_EQ(dst.substr(0, 16), std::string(16, '#')) << n;
    EXPECT_EQ(dst.substr(16 + n), std::string(16, '#')) << n;
  }
}

TEST(short_bytes, SameBytesAgreesWithMemcmpAtEveryLengthAndPosition) {
  for (size_t n = 0; n <= 70; ++n) {
    const std::string a = pattern(n, 'a');
    std::string b = a;
    EXPECT_TRUE(same_bytes(a, b)) << n;
    for (size_t i = 0; i < n; ++i) {
      b[i] = static_cast<char>(b[i] ^ 0x20);
      EXPECT_FALSE(same_bytes(a, b)) << n << " at " << i;
      b[i] = a[i];
    }
    if (n > 0) {
      EXPECT_FALSE(same_bytes(a, std::string_view(a).substr(0, n - 1))) << n;
    }
  }
  EXPECT_TRUE(same_bytes({}, ""));
  EXPECT_FALSE(same_bytes("read_file", "read_filf"));
}

}  // namespace
}  // namespace sluice::policy
