// net/request_path.h: one spelling, one route; nothing climbs out of the path it names.

#include "net/request_path.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::net {
namespace {

// The normalised path; the copy-free form (normalized_path) must say the same.
std::string ok(std::string_view target) {
  std::string out, scratch;
  std::string_view error, path, error2;
  const bool good = normalize_request_path(target, out, error);
  EXPECT_EQ(normalized_path(target, scratch, path, error2), good) << target;
  if (!good) {
    EXPECT_EQ(error2, error) << target;
    return "refused: " + std::string(error);
  }
  EXPECT_EQ(path, out) << target;
  return out;
}

bool refused(std::string_view target) {
  std::string out;
  std::string_view error;
  return !normalize_request_path(target, out, error) && !error.empty();
}

TEST(request_path, QueryIsIgnoredAndUnreservedEscapesAreDecoded) {
  EXPECT_EQ(ok("/servers/a/mcp"), "/servers/a/mcp");
  EXPECT_EQ(ok("/servers/a/mcp?x=/servers/b/mcp"), "/servers/a/mcp");
  EXPECT_EQ(ok("/servers/%61/mcp"), "/servers/a/mcp");
  EXPECT_EQ(ok("/%73ervers/a%2Db_%7e/mcp"), "/servers/a-b_~/mcp");
  EXPECT_EQ(ok("/a%2e"), "/a.");  // a dot inside a segment is no dot segment
  EXPECT_EQ(ok("/..a/b.."), "/..a/b..");
  EXPECT_EQ(ok("/.well-known/x"), "/.well-known/x");  // a segment may start with a dot
  EXPECT_EQ(ok("/mcp?"), "/mcp");
}

// What a client sends to a forward proxy (RFC 9112 3.2.2: a server must accept it): routed
// by its path, normalised like any other; the authority names nothing.
TEST(request_path, AbsoluteFormIsRoutedByItsPath) {
  EXPECT_EQ(ok("http://h/servers/a/mcp"), "/servers/a/mcp");
  EXPECT_EQ(ok("HTTPS://mcp.example:8443/servers/%61/mcp?x=1"), "/servers/a/mcp");
  EXPECT_EQ(ok("http://h"), "/");
  EXPECT_EQ(ok("http://h?x=/mcp"), "/");
  EXPECT_EQ(ok("http://user@h/mcp"), "/mcp");
  EXPECT_EQ(ok("http://h//mcp"), "//mcp");
}

TEST(request_path, OtherEscapesAreKeptAsWritten) {
  EXPECT_EQ(ok("/servers/a%20/mcp"), "/servers/a%20/mcp");
  EXPECT_EQ(ok("/servers/a%3a/mcp"), "/servers/a%3a/mcp");
  EXPECT_EQ(ok("/x%00"), "/x%00");
}

TEST(request_path, NothingElseIsCollapsed) {
  EXPECT_EQ(ok("//servers/a/mcp"), "//servers/a/mcp");
  EXPECT_EQ(ok("/servers/a/mcp/"), "/servers/a/mcp/");
  EXPECT_EQ(ok("/servers/A/mcp"), "/servers/A/mcp");
  EXPECT_EQ(ok("/"), "/");
}

TEST(request_path, DotSegmentsAreRefusedHoweverSpelled) {
  for (std::string_view t :
       {"/servers/a/../b/mcp", "/servers/a/%2e%2e/b/mcp", "/servers/a/%2E%2e/b/mcp",
        "/servers/a/.%2E/b/mcp", "/servers/a/%2e./b/mcp", "/servers/a/./mcp", "/servers/a/%2e/mcp",
        "/..", "/.", "/a/..", "/a/.?x", "/a/..?x=1"})
    EXPECT_TRUE(refused(t)) << t;
}

TEST(request_path, EncodedSlashesBackslashesAndBadEscapesAreRefused) {
  for (std::string_view t :
       {"/servers/a%2F..%2Fb/mcp", "/servers/a%2f..%2fb/mcp", "/servers/a%5C..%5Cb/mcp",
        "/servers/a%5c/mcp", "/servers/a\\..\\b/mcp", "/x%", "/x%2", "/x%zz", "/x%g0", "", "*",
        "servers/a/mcp", "?/servers/a/mcp", "http:///servers/a/mcp", "http:/servers/a/mcp",
        "ftp://h/servers/a/mcp", "http\x1a//h/mcp", "http://h/servers/a/../b/mcp",
        "http://h/servers/a%2Fb/mcp"})
    EXPECT_TRUE(refused(t)) << t;
}

TEST(request_path, ServerNames) {
  EXPECT_TRUE(valid_server_name("github"));
  EXPECT_TRUE(valid_server_name("fs_2-x"));
  EXPECT_FALSE(valid_server_name(""));
  EXPECT_FALSE(valid_server_name("a/b"));
  EXPECT_FALSE(valid_server_name(".."));
  EXPECT_FALSE(valid_server_name("a.b"));
  EXPECT_FALSE(valid_server_name("é"));
}

}  // namespace
}  // namespace sluice::net
