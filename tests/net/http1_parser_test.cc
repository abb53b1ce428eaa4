#include "net/http1_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace sluice::net {
namespace {

struct seen {
  std::string method, target, host, content_type, mcp_session_id, body;
  unsigned version;
  bool keep_alive;
  size_t nheaders;
  const char* body_ptr;
};

struct collect : request_sink {
  std::vector<seen> reqs;
  bool stop_after_first = false;
  std::vector<size_t> continues;  // requests parsed before each on_expect_continue
  void on_expect_continue() override { continues.push_back(reqs.size()); }
  bool on_parsed(const http_request& r) override {
    reqs.push_back({std::string(r.method), std::string(r.target), std::string(r.host),
                    std::string(r.content_type), std::string(r.mcp_session_id), std::string(r.body),
                    r.version, r.keep_alive, r.headers.size(), r.body.data()});
    return !stop_after_first;
  }
};

// Feeds s (copied into a padded buffer, like a provided buffer) in pieces of n bytes.
int feed(http1_parser& p, collect& c, std::string_view s, size_t n = ~size_t(0)) {
  int st = 0;
  for (size_t i = 0; i < s.size() && st == 0; i += n) {
    std::string piece(s.substr(i, n));
    piece.append(64, '\0');  // padding slack
    st = p.feed(std::span<const char>(piece.data(), std::min(n, s.size() - i)), c);
  }
  return st;
}

const http_limits kLimits{};

TEST(http1_parser, get_with_headers) {
  http1_parser p(kLimits);
  collect c;
  ASSERT_EQ(feed(p, c, "GET /mcp HTTP/1.1\r\nHost: a\r\nMcp-Session-Id: s1\r\nX-Other: y\r\n\r\n"),
            0);
  ASSERT_EQ(c.reqs.size(), 1u);
  EXPECT_EQ(c.reqs[0].method, "GET");
  EXPECT_EQ(c.reqs[0].target, "/mcp");
  EXPECT_EQ(c.reqs[0].host, "a");
  EXPECT_EQ(c.reqs[0].mcp_session_id, "s1");
  EXPECT_EQ(c.reqs[0].nheaders, 3u);
  EXPECT_TRUE(c.reqs[0].keep_alive);
  EXPECT_FALSE(p.in_request());
}

TEST(http1_parser, content_length_body_is_parsed_in_place) {
  http1_parser p(kLimits);
  collect c;
  std::string buf =
      "POST /v1/decide HTTP/1.1\r\nContent-Length: 5\r\nContent-Type: a/b\r\n\r\nhello";
  buf.append(64, '\0');
  ASSERT_EQ(p.feed(std::span<const char>(buf.data(), buf.size() - 64), c), 0);
  ASSERT_EQ(c.reqs.size(), 1u);
  EXPECT_EQ(c.reqs[0].body, "hello");
  EXPECT_EQ(c.reqs[0].content_type, "a/b");
  EXPECT_EQ(c.reqs[0].body_ptr, buf.data() + buf.size() - 64 - 5);  // no copy
}

TEST(http1_parser, pipelined_requests_in_one_feed_in_order) {
  http1_parser p(kLimits);
  collect c;
  std::string s;
  for (int i = 0; i < 16; ++i) {
    std::string body = "{\"i\":" + std::to_string(i) + "}";
    s += "POST /r" + std::to_string(i) +
         " HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  ASSERT_EQ(feed(p, c, s), 0);
  ASSERT_EQ(c.reqs.size(), 16u);
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(c.reqs[size_t(i)].target, "/r" + std::to_string(i));
    EXPECT_EQ(c.reqs[size_t(i)].body, "{\"i\":" + std::to_string(i) + "}");
  }
}

TEST(http1_parser, one_byte_feeds_give_the_same_requests) {
  std::string s =
      "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
      "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n "
      "world\r\n0\r\n\r\n"
      "GET /c HTTP/1.1\r\n\r\n";
  for (size_t step : {1u, 2u, 3u, 7u, 13u, 64u}) {
    http1_parser p(kLimits);
    collect c;
    ASSERT_EQ(feed(p, c, s, step), 0) << step;
    ASSERT_EQ(c.reqs.size(), 3u) << step;
    EXPECT_EQ(c.reqs[0].target, "/a");
    EXPECT_EQ(c.reqs[0].host, "h");
    EXPECT_EQ(c.reqs[0].body, "hello world");
    EXPECT_EQ(c.reqs[1].target, "/b");
    EXPECT_EQ(c.reqs[1].body, "hello world");
    EXPECT_EQ(c.reqs[2].method, "GET");
    EXPECT_EQ(c.reqs[2].target, "/c");
    EXPECT_FALSE(p.in_request());
  }
}

TEST(http1_parser, partial_request_is_reported) {
  http1_parser p(kLimits);
  collect c;
  ASSERT_EQ(feed(p, c, "GET / HTTP/1.1\r\nHo"), 0);
  EXPECT_TRUE(p.in_request());
  EXPECT_TRUE(c.reqs.empty());
  ASSERT_EQ(feed(p, c, "st: x\r\n\r\n"), 0);
  ASSERT_EQ(c.reqs.size(), 1u);
  EXPECT_EQ(c.reqs[0].host, "x");
}

TEST(http1_parser, http10_closes_unless_keep_alive) {
  http1_parser p(kLimits);
  collect c;
  ASSERT_EQ(feed(p, c,
                 "GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                 "GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
            0);
  ASSERT_EQ(c.reqs.size(), 3u);
  EXPECT_EQ(c.reqs[0].version, 10u);
  EXPECT_FALSE(c.reqs[0].keep_alive);
  EXPECT_TRUE(c.reqs[1].keep_alive);
  EXPECT_FALSE(c.reqs[2].keep_alive);
}

TEST(http1_parser, sink_can_stop_parsing) {
  http1_parser p(kLimits);
  collect c;
  c.stop_after_first = true;
  ASSERT_EQ(feed(p, c, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"), 0);
  EXPECT_EQ(c.reqs.size(), 1u);
}

struct bad_case {
  const char* name;
  const char* request;
  int status;
};

class http1_parser_bad : public testing::TestWithParam<bad_case> {};

TEST_P(http1_parser_bad, is_refused_after_earlier_requests) {
  for (size_t step : {size_t(1), ~size_t(0)}) {
    http1_parser p(kLimits);
    collect c;
    std::string s = std::string("GET /ok HTTP/1.1\r\n\r\n") + GetParam().request;
    EXPECT_EQ(feed(p, c, s, step), GetParam().status) << GetParam().name << " step " << step;
    ASSERT_EQ(c.reqs.size(), 1u) << GetParam().name;
    EXPECT_EQ(c.reqs[0].target, "/ok");
  }
}

const bad_case kBad[] = {
    {"cl_and_te", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
     400},
    {"te_and_cl", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
     400},
    {"two_cl", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
    {"cl_list", "POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\nab", 400},
    {"cl_not_number", "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\nab", 400},
    {"cl_negative", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
    {"bad_chunk_size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
     400},
    {"chunk_overflow",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nab\r\n", 400},
    {"obs_fold", "GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n", 400},
    {"obs_fold_tab", "GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n", 400},
    {"leading_space_line", "GET / HTTP/1.1\r\n X-A: a\r\n\r\n", 400},
    {"te_gzip", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
    {"te_gzip_chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
     400},
    {"te_twice",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
    {"te_http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
    {"bad_header_name", "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400},
    {"header_name_colon_space", "GET / HTTP/1.1\r\nX-A : x\r\n\r\n", 400},
    {"bad_header_value", "GET / HTTP/1.1\r\nX-A: a\x01z\r\n\r\n", 400},
    {"bare_lf_value", "GET / HTTP/1.1\r\nX-A: a\nX-B: b\r\n\r\n", 400},
    {"post_without_length", "POST / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
    {"two_hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
    {"bad_version", "GET / HTTP/2.0\r\n\r\n", 400},
    {"bad_method", "G(T / HTTP/1.1\r\n\r\n", 400},
    // Not smuggling, but refused at the header in the same way.
    {"content_encoding_gzip",
     "POST / HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\nab", 415},
    {"content_encoding_list",
     "POST / HTTP/1.1\r\nContent-Encoding: identity, gzip\r\nContent-Length: 2\r\n\r\nab", 415},
    {"expect_unknown", "GET / HTTP/1.1\r\nExpect: teapot\r\n\r\n", 417},
};

INSTANTIATE_TEST_SUITE_P(smuggling, http1_parser_bad, testing::ValuesIn(kBad),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(http1_parser, header_limit_gives_431) {
  http_limits l;
  l.max_header_bytes = 256;
  http1_parser p(l);
  collect c;
  std::string s = "GET / HTTP/1.1\r\nX-Big: " + std::string(300, 'a') + "\r\n\r\n";
  EXPECT_EQ(feed(p, c, s), 431);
  http1_parser p2(l);
  EXPECT_EQ(feed(p2, c, s, 1), 431);  // also when it trickles in
}

TEST(http1_parser, too_many_headers_gives_431) {
  http1_parser p(kLimits);
  collect c;
  std::string s = "GET / HTTP/1.1\r\n";
  for (size_t i = 0; i <= kMaxHeaders; ++i)
    s += "X-H" + std::to_string(i) + ": v\r\n";
  s += "\r\n";
  EXPECT_EQ(feed(p, c, s), 431);
}

TEST(http1_parser, body_limit_gives_413) {
  http_limits l;
  l.max_body_bytes = 10;
  http1_parser p(l);
  collect c;
  EXPECT_EQ(feed(p, c, "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n"), 413);
  http1_parser p2(l);
  EXPECT_EQ(feed(p2, c,
                 "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n"
                 "8\r\n12345678\r\n0\r\n\r\n"),
            413);
}

TEST(http1_parser, body_across_feeds_is_contiguous_and_headers_survive) {
  http1_parser p(kLimits);
  collect c;
  std::string body(5000, 'b');
  std::string s =
      "POST /big HTTP/1.1\r\nHost: hh\r\nContent-Type: application/json\r\n"
      "Content-Length: 5000\r\n\r\n" +
      body + "GET /next HTTP/1.1\r\n\r\n";
  ASSERT_EQ(feed(p, c, s, 4096), 0);
  ASSERT_EQ(c.reqs.size(), 2u);
  EXPECT_EQ(c.reqs[0].host, "hh");
  EXPECT_EQ(c.reqs[0].content_type, "application/json");
  EXPECT_EQ(c.reqs[0].body, body);
  EXPECT_EQ(c.reqs[1].target, "/next");
}

// A chunked body's trailer fields are not header fields: they change nothing of the request.
TEST(http1_parser, trailer_fields_are_not_merged_into_the_header) {
  for (size_t step : {size_t(1), ~size_t(0)}) {
    http1_parser p(kLimits);
    collect c;
    ASSERT_EQ(feed(p, c,
                   "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
                   "Mcp-Session-Id: s1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "2\r\n{}\r\n0\r\nContent-Type: text/plain\r\nMcp-Session-Id: evil\r\n"
                   "Host: other\r\nX-Extra: 1\r\n\r\nGET /next HTTP/1.1\r\n\r\n",
                   step),
              0)
        << step;
    ASSERT_EQ(c.reqs.size(), 2u) << step;
    EXPECT_EQ(c.reqs[0].content_type, "application/json");
    EXPECT_EQ(c.reqs[0].mcp_session_id, "s1");
    EXPECT_EQ(c.reqs[0].host, "h");
    EXPECT_EQ(c.reqs[0].nheaders, 4u);
    EXPECT_EQ(c.reqs[0].body, "{}");
    EXPECT_EQ(c.reqs[1].target, "/next");
  }
}

TEST(http1_parser, content_encoding_identity_is_accepted) {
  http1_parser p(kLimits);
  collect c;
  ASSERT_EQ(
      feed(p, c, "POST / HTTP/1.1\r\nContent-Encoding: Identity\r\nContent-Length: 2\r\n\r\nab"),
      0);
  ASSERT_EQ(c.reqs.size(), 1u);
  EXPECT_EQ(c.reqs[0].body, "ab");
}

// The client waits for "100 Continue" between the header and the body: the sink is told once,
// when the header is complete and the body is not, however the bytes are split.
TEST(http1_parser, expect_continue_is_reported_once_while_the_body_is_missing) {
  const std::string head =
      "GET /a HTTP/1.1\r\n\r\n"
      "POST /b HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n";
  for (size_t step : {size_t(1), size_t(7), ~size_t(0)}) {
    http1_parser p(kLimits);
    collect c;
    ASSERT_EQ(feed(p, c, head, step), 0);
    EXPECT_EQ(c.continues, std::vector<size_t>{1}) << step;  // after /a, before /b
    ASSERT_EQ(feed(p, c, "hello", step), 0);
    EXPECT_EQ(c.continues.size(), 1u) << step;
    ASSERT_EQ(c.reqs.size(), 2u);
    EXPECT_EQ(c.reqs[1].body, "hello");
  }
}

TEST(http1_parser, expect_continue_is_not_reported_when_not_needed) {
  for (const char* request : {
           // the body came with the header: nobody is waiting
           "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab",
           // HTTP/1.0: the expectation is ignored (RFC 9110 10.1.1)
           "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
           // no expectation
           "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n",
       }) {
    http1_parser p(kLimits);
    collect c;
    ASSERT_EQ(feed(p, c, request), 0) << request;
    EXPECT_TRUE(c.continues.empty()) << request;
  }
}

TEST(JsonContentType, OnlyUtf8JsonIsJson) {
  const std::pair<const char*, json_body_type> cases[] = {
      {"application/json", json_body_type::json},
      {"Application/JSON", json_body_type::json},
      {"application/json ", json_body_type::json},
      {"application/json;", json_body_type::json},
      {"application/json; charset=utf-8", json_body_type::json},
      {"application/json;charset=UTF-8", json_body_type::json},
      {"application/json ; charset=\"utf-8\"", json_body_type::json},
      {"application/json; charset=\"u\\tf-8\"", json_body_type::json},  // quoted-pair
      {"application/json; profile=x; charset=utf-8;", json_body_type::json},
      {"application/json;;charset=utf-8", json_body_type::json},
      {"", json_body_type::not_json},
      {"text/plain", json_body_type::not_json},
      {"application/jsonx", json_body_type::not_json},
      {"application/json-seq", json_body_type::not_json},
      {"application/json x", json_body_type::not_json},
      {"application/json; charset=utf-7", json_body_type::not_utf8},
      {"application/json; charset=utf-16", json_body_type::not_utf8},
      {"application/json; charset=utf8", json_body_type::not_utf8},
      {"application/json; charset=\"utf-8 \"", json_body_type::not_utf8},
      {"application/json; charset=utf-8-and-more", json_body_type::not_utf8},
      {"application/json; charset=utf-8; charset=utf-7", json_body_type::not_utf8},
      {"application/json; CHARSET=iso-8859-1", json_body_type::not_utf8},
      {"application/json; charset=", json_body_type::not_utf8},
      {"application/json; charset", json_body_type::not_utf8},
      {"application/json; charset=\"utf-8", json_body_type::not_utf8},
      {"application/json; charset=utf-8 x", json_body_type::not_utf8},
      {"application/json; charset=utf-8, charset=utf-7", json_body_type::not_utf8},
      {"application/json; =utf-8", json_body_type::not_utf8},
      {"application/json; charset=\"\x01utf-8\"", json_body_type::not_utf8},
  };
  for (const auto& [ct, want] : cases)
    EXPECT_EQ(classify_json_content_type(ct), want) << ct;
  EXPECT_TRUE(charset_is_utf8(""));
  EXPECT_TRUE(charset_is_utf8("application/x-www-form-urlencoded"));
  EXPECT_TRUE(charset_is_utf8("text/plain; charset=utf-8"));
  EXPECT_FALSE(charset_is_utf8("text/plain; charset=utf-7"));
  EXPECT_FALSE(charset_is_utf8("application/json; charset=\"utf-7"));
}

TEST(HasCrOrLf, FindsEitherAtEveryPositionOfEveryLength) {
  // Neighbours of CR and LF, and the same low bits with the high bit set, must not count.
  const std::string fillers = std::string("a\x09\x0b\x0c\x0e\x8a\x8d\xff\x00", 9);
  for (size_t n = 0; n <= 40; ++n) {
    for (char filler : fillers) {
      std::string s(n, filler);
      EXPECT_FALSE(has_cr_or_lf(s)) << n << " " << int(filler);
      for (size_t at = 0; at < n; ++at) {
        for (char bad : {'\r', '\n'}) {
          std::string t = s;
          t[at] = bad;
          EXPECT_TRUE(has_cr_or_lf(t)) << n << " " << at << " " << int(filler);
        }
      }
    }
  }
}

}  // namespace
}  // namespace sluice::net
