// The grants file (net/grants.h): what a good file gives, and the message each broken one gets.
// `sluice serve --grants` prints that message and exits 1 (gateway_startup in
// tests/integration/gateway_test.cc), so a broken file names its file, the JSON pointer of
// what is wrong and what was expected.

#include "net/grants.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "tests/temp_file.h"

namespace sluice::net {
namespace {

using sluice::testing::temp_file;

std::string hex(std::string_view token) {
  return to_hex(sha256(token));
}

std::string upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'f') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

TEST(grants, AFileMapsEachTokensHashToItsGrant) {
  temp_file f(R"({"grants":[{"name":"ci-agent","token_sha256":")" + hex("token-a") +
              R"("},{"token_sha256":")" + upper(hex("token-b")) + R"(","name":"ops"}]})");
  std::string error;
  auto table = grant_table::load(f.path(), error);
  ASSERT_TRUE(table) << error;
  EXPECT_EQ(table->size(), 2u);
  const std::string* a = table->find("token-a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(*a, "ci-agent");
  const std::string* b = table->find("token-b");  // hex digits in either case
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(*b, "ops");
  EXPECT_EQ(table->find("token-c"), nullptr);
  EXPECT_EQ(table->find(""), nullptr);
  EXPECT_EQ(table->find(hex("token-a")), nullptr);  // the hash is not the token
}

TEST(grants, AnEmptyListIsAFileWithNoGrants) {
  temp_file f(R"({"grants":[]})");
  std::string error;
  auto table = grant_table::load(f.path(), error);
  ASSERT_TRUE(table) << error;
  EXPECT_EQ(table->size(), 0u);
  EXPECT_EQ(table->find("anything"), nullptr);
}

TEST(grants, EachBrokenFileNamesWhereAndWhat) {
  const std::string good = hex("token-a");
  const struct {
    std::string text;
    std::string message;  // after "<path>: "
  } cases[] = {
      {"", "/: not valid JSON"},
      {R"({"grants":[)", "/: not valid JSON"},
      {R"([])", R"(/: expected an object with one field, "grants": an array)"},
      {R"({"grants":{}})", R"(/: expected an object with one field, "grants": an array)"},
      {R"({"grants":[],"extra":1})", R"(/: expected an object with one field, "grants": an array)"},
      {R"({"Grants":[]})", R"(/: expected an object with one field, "grants": an array)"},
      {R"({"grants":["ci-agent"]})",
       R"(/grants/0: expected {"name": string, "token_sha256": string})"},
      {R"({"grants":[{"name":"a","token_sha256":")" + good + R"("},{"name":"b"}]})",
       R"(/grants/1: expected {"name": string, "token_sha256": string})"},
      {R"({"grants":[{"name":7,"token_sha256":")" + good + R"("}]})",
       R"(/grants/0: expected {"name": string, "token_sha256": string})"},
      {R"({"grants":[{"name":"a","token_sha256":")" + good + R"(","note":"x"}]})",
       R"(/grants/0: expected {"name": string, "token_sha256": string})"},
      {R"({"grants":[{"name":"","token_sha256":")" + good + R"("}]})",
       "/grants/0/name: expected a non-empty grant name"},
      {R"({"grants":[{"name":"a","token_sha256":")" + good.substr(1) + R"("}]})",
       "/grants/0/token_sha256: expected 64 hex digits (sluice hash-token prints them)"},
      {R"({"grants":[{"name":"a","token_sha256":")" + good.substr(1) + R"(g"}]})",
       "/grants/0/token_sha256: expected 64 hex digits (sluice hash-token prints them)"},
      {R"({"grants":[{"name":"a","token_sha256":"token-a"}]})",
       "/grants/0/token_sha256: expected 64 hex digits (sluice hash-token prints them)"},
      {R"({"grants":[{"name":"a","token_sha256":")" + good + R"("},{"name":"b","token_sha256":")" +
           upper(good) + R"("}]})",
       "/grants/1/token_sha256: the same token is listed twice"},
  };
  for (const auto& c : cases) {
    temp_file f(c.text);
    std::string error;
    EXPECT_EQ(grant_table::load(f.path(), error), nullptr) << c.text;
    EXPECT_EQ(error.rfind(f.path() + ": " + c.message, 0), 0u)
        << "file: " << c.text << "\nerror: " << error;
  }
}

TEST(grants, AFileThatCannotBeReadIsAnError) {
  std::string error;
  EXPECT_EQ(grant_table::load("/nonexistent/grants.json", error), nullptr);
  EXPECT_EQ(error, "/nonexistent/grants.json: /: cannot read the file");
}

TEST(grants, BearerTokenIsTheCredentialOfTheBearerScheme) {
  EXPECT_EQ(bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(bearer_token("bearer abc"), "abc");  // the scheme in any case (RFC 9110 11.1)
  EXPECT_EQ(bearer_token("BEARER abc"), "abc");
  EXPECT_EQ(bearer_token("Bearer   abc \t"), "abc");  // spaces around it are not the token
  EXPECT_EQ(bearer_token("Bearer a b"), "a b");  // inner bytes are the token's: it fails lookup
  EXPECT_EQ(bearer_token("Bearer "), "");
  EXPECT_EQ(bearer_token("Bearer"), "");
  EXPECT_EQ(bearer_token("Basic YWxhZGRpbjpvcGVuc2VzYW1l"), "");
  EXPECT_EQ(bearer_token("Bearerabc"), "");
  EXPECT_EQ(bearer_token("abc"), "");
  EXPECT_EQ(bearer_token(""), "");
}

}  // namespace
}  // namespace sluice::net
