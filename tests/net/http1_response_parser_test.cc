// The upstream response parser (net/http1_response_parser), rule by rule, and differentially
// against a Boost.Beast reference: the Beast-based parser it replaced, kept here. Over a table
// of valid and invalid responses and a few thousand seeded mutations of valid ones, whenever
// both accept they must agree on the status, framing, keep-alive, headers, body and leftover;
// where they disagree, the difference must be one of the deliberate ones listed in
// allowed_difference(), each with its reason. (The response_parser.* tests in upstream_test.cc
// cover splits at every position, interim responses, EOF and stopping.)

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "net/http1_response_parser.h"

// Counts allocations, for the test that a warm parser does not allocate. Not inlined: GCC
// would see malloc'ed memory reach free through new and delete and warn of a mismatch.
namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace
[[gnu::noinline]] void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, size_t) noexcept {
  std::free(p);
}

namespace sluice::net {
namespace {

using parse_status = http1_response_parser::parse_status;
using namespace std::string_view_literals;

// What a parse produced, in a form both parsers fill.
struct outcome {
  parse_status status = parse_status::need_more;
  std::string detail;
  int heads = 0;
  int code = 0;
  unsigned version = 0;
  bool keep_alive = false;
  bool chunked = false;
  bool close_delimited = false;
  bool has_body = false;
  int64_t content_length = -1;
  std::string reason, content_type, session, protocol;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  size_t leftover = 0;
};

void record_head(outcome& o, const http_response& h) {
  ++o.heads;
  o.code = h.status;
  o.version = h.version;
  o.keep_alive = h.keep_alive;
  o.chunked = h.chunked;
  o.close_delimited = h.close_delimited;
  o.has_body = h.has_body;
  o.content_length = h.content_length;
  o.reason = std::string(h.reason);
  o.content_type = std::string(h.content_type);
  o.session = std::string(h.mcp_session_id);
  o.protocol = std::string(h.mcp_protocol_version);
  for (const http_header& x : h.headers)
    o.headers.emplace_back(std::string(x.name), std::string(x.value));
}

struct outcome_sink final : response_sink {
  explicit outcome_sink(outcome& out) : o(out) {}
  bool on_response_head(const http_response& h) override {
    record_head(o, h);
    return true;
  }
  bool on_response_body(std::string_view b) override {
    EXPECT_FALSE(b.empty());
    o.body.append(b);
    return true;
  }
  outcome& o;
};

// Ours, the input cut at the given offsets (each piece in its own allocation), then EOF.
outcome run_ours(http1_response_parser& p, std::string_view in, bool head_request,
                 const std::vector<size_t>& cuts = {}) {
  outcome o;
  outcome_sink sink(o);
  p.reset(head_request);
  size_t at = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(in.size());
  for (size_t e : ends) {
    if (e < at) continue;
    const std::string piece(in.substr(at, e - at));
    at = e;
    o.status = p.feed(std::span<const char>(piece.data(), piece.size()), sink);
    if (o.status != parse_status::need_more) break;
  }
  if (o.status == parse_status::need_more) o.status = p.feed_eof();
  o.detail = std::string(p.error_detail());
  // What followed the response: the rest of the last piece fed, and the pieces not fed.
  if (o.status == parse_status::done) o.leftover = p.leftover() + (in.size() - at);
  return o;
}

outcome run_ours(std::string_view in, bool head_request = false,
                 const std::vector<size_t>& cuts = {}) {
  http1_response_parser p;
  return run_ours(p, in, head_request, cuts);
}

// ---------------------------------------------------------------------------------------------
// The reference: the Beast-based parser this one replaced (same extra rules: status 100..599,
// 101 refused, Transfer-Encoding exactly "chunked", obs-fold refused in the head, at most
// kMaxResponseHeaders fields, 1xx skipped), fed the whole input at once, then EOF.

namespace http = boost::beast::http;
using boost::beast::error_code;
using bsv = boost::beast::string_view;

struct beast_reference {
  // Facts about the input that classify a disagreement (see allowed_difference).
  error_code ec;                 // Beast's error, when it refused
  bool in_trailers = false;      // the last chunk was seen: a failure is in the trailer section
  bool cl_list = false;          // a Content-Length value held a comma
  bool cl_over_int64 = false;    // a Content-Length above INT64_MAX
  bool status_no_sp = false;     // a status line "HTTP/1.x DDD\r\n" (Beast needs SP after DDD)
  bool stalled_chunked = false;  // Beast wanted more of a chunked body when the input ended

  class parser final : public http::basic_parser<false> {
   public:
    explicit parser(beast_reference& r) : r_(r) {}

   private:
    void on_request_impl(http::verb, bsv, bsv, int, error_code& ec) override {
      ec = http::error::bad_method;
    }
    void on_response_impl(int code, bsv reason, int version, error_code& ec) override {
      r_.head.status = code;
      r_.head.reason = std::string_view(reason);
      r_.head.version = unsigned(version);
      if (code == 101 || code < 100 || code > 599) ec = http::error::bad_value;
    }
    void on_field_impl(http::field f, bsv name, bsv value, error_code& ec) override {
      r_.on_field(f, std::string_view(name), std::string_view(value), ec);
    }
    void on_header_impl(error_code& ec) override { r_.on_header(*this, ec); }
    void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
    std::size_t on_body_impl(bsv body, error_code&) override {
      r_.out.body.append(body.data(), body.size());
      return body.size();
    }
    void on_chunk_header_impl(std::uint64_t size, bsv, error_code&) override {
      if (size == 0) r_.in_trailers = true;
    }
    std::size_t on_chunk_body_impl(std::uint64_t, bsv body, error_code&) override {
      r_.out.body.append(body.data(), body.size());
      return body.size();
    }
    void on_finish_impl(error_code&) override {}

    beast_reference& r_;
  };

  void on_field(http::field f, std::string_view name, std::string_view value, error_code& ec) {
    if (head_done) return;  // trailer fields
    if (value.data() < in_begin || value.data() + value.size() > in_end) {
      ec = http::error::bad_value;  // unfolded obs-fold: refused
      return;
    }
    if (nheaders == kMaxResponseHeaders) {
      ec = http::error::bad_value;
      return;
    }
    headers[nheaders++] = {name, value};
    switch (f) {
      case http::field::content_type:
        head.content_type = value;
        break;
      case http::field::transfer_encoding:
        if (!boost::beast::iequals(value, "chunked")) ec = http::error::bad_transfer_encoding;
        break;
      case http::field::content_length: {
        if (value.find(',') != std::string_view::npos) cl_list = true;
        // Digits beyond INT64_MAX (Beast takes up to UINT64_MAX).
        std::string_view v = value;
        while (v.size() > 1 && v[0] == '0')
          v.remove_prefix(1);
        if (v.size() > 19 || (v.size() == 19 && v > "9223372036854775807")) cl_over_int64 = true;
        break;
      }
      case http::field::unknown:
        if (boost::beast::iequals(name, "mcp-session-id")) head.mcp_session_id = value;
        if (boost::beast::iequals(name, "mcp-protocol-version")) head.mcp_protocol_version = value;
        break;
      default:
        break;
    }
  }

  void on_header(parser& p, error_code&) {
    if (head.status / 100 == 1) {
      interim = true;
      return;
    }
    head.keep_alive = p.keep_alive();
    head.chunked = p.chunked();
    head.close_delimited = p.need_eof();
    head.has_body = !p.is_done();
    auto len = p.content_length();
    head.content_length = len ? int64_t(*len) : -1;
    head.headers = std::span<const http_header>(headers.data(), nheaders);
    head_done = true;
    record_head(out, head);
  }

  outcome run(std::string_view in, bool head_request) {
    in_begin = in.data();
    in_end = in.data() + in.size();
    const char* p = in_begin;
    const char* end = in_end;
    std::optional<parser> ps;
    out.status = parse_status::need_more;
    while (p < end) {
      ps.emplace(*this);
      ps->eager(true);
      ps->header_limit(uint32_t(kMaxResponseHead));
      ps->body_limit(boost::none);
      if (head_request) ps->skip(true);
      head = http_response{};
      nheaders = 0;
      interim = false;
      // As the old parser: the head only once complete.
      std::string_view rest(p, size_t(end - p));
      size_t he = rest.find("\r\n\r\n");
      if (he == std::string_view::npos) break;
      if (rest.starts_with("HTTP/1.") && rest.size() > 12 && rest[12] == '\r') {
        status_no_sp = true;
      }
      size_t n = ps->put(boost::asio::const_buffer(p, size_t(end - p)), ec);
      if (ec == http::error::need_more) {
        ec = {};
        if (ps->is_header_done() && ps->chunked()) stalled_chunked = true;
        p += n;
        break;
      }
      if (ec) {
        out.status = parse_status::error;
        return out;
      }
      p += n;
      if (!ps->is_done()) break;  // the body runs on: EOF decides
      if (interim) continue;      // the final response follows
      out.status = parse_status::done;
      out.leftover = size_t(end - p);
      return out;
    }
    // EOF
    if (ps && ps->is_header_done() && !interim && ps->need_eof()) {
      out.status = parse_status::done;
    } else {
      out.status = parse_status::error;
    }
    return out;
  }

  const char* in_begin = nullptr;
  const char* in_end = nullptr;
  http_response head;
  std::array<http_header, kMaxResponseHeaders> headers{};
  size_t nheaders = 0;
  bool head_done = false;
  bool interim = false;
  outcome out;
};

bool contains_ci(std::string_view hay, std::string_view needle) {
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i)
    if (boost::beast::iequals(hay.substr(i, needle.size()), needle)) return true;
  return false;
}

// Why ours may differ from the reference here, or "" if it may not. Each reason is a
// deliberate change, documented in net/http1_response_parser.{h,cc}.
std::string allowed_difference(std::string_view in, const outcome& ours,
                               const beast_reference& ref) {
  const outcome& theirs = ref.out;
  const bool ours_ok = ours.status == parse_status::done;
  const bool theirs_ok = theirs.status == parse_status::done;
  if (ours_ok && !theirs_ok) {
    if (ref.ec == http::error::bad_status && ref.status_no_sp) {
      return "a status line without SP after the code (\"HTTP/1.1 200\\r\\n\", an empty reason)";
    }
    if (ref.ec == http::error::bad_chunk_extension) {
      return "chunk extensions are ignored: only their bytes are checked, not their grammar";
    }
    if (ref.stalled_chunked && !ref.in_trailers && in.find(";", in.find("\r\n\r\n")) != in.npos &&
        in.find('"', in.find("\r\n\r\n")) != in.npos) {
      return "chunk extensions are ignored: an unclosed quote does not run on into the next "
             "lines (Beast waits for the closing quote)";
    }
    if (ref.in_trailers &&
        (ref.ec == http::error::bad_content_length ||
         ref.ec == http::error::multiple_content_length ||
         ref.ec == http::error::bad_transfer_encoding || ref.ec == http::error::bad_value)) {
      return "trailer fields are dropped, not interpreted (Beast refuses framing fields there)";
    }
    return "";
  }
  if (!ours_ok && theirs_ok) {
    if ((ours.detail == "invalid Content-Length in upstream response") &&
        (ref.cl_list || ref.cl_over_int64)) {
      return "Content-Length is 1*DIGIT up to INT64_MAX: no lists, nothing that wraps negative";
    }
    if (ours.detail.starts_with("obsolete line folding") &&
        (in.find("\r\n ") != std::string_view::npos ||
         in.find("\r\n\t") != std::string_view::npos)) {
      return "obs-fold refused everywhere (Beast let some through: after an empty value, in "
             "trailers)";
    }
    if (ours.detail == "malformed chunk extension in upstream response") {
      return "control bytes refused in chunk extensions (Beast takes any inside quotes)";
    }
    return "";
  }
  if (ours_ok && theirs_ok && ours.keep_alive != theirs.keep_alive && !ours.keep_alive &&
      ours.version == 10) {
    for (const auto& [name, value] : ours.headers) {
      if ((boost::beast::iequals(name, "connection") ||
           boost::beast::iequals(name, "proxy-connection")) &&
          contains_ci(value, "close")) {
        return "HTTP/1.0 with both close and keep-alive is not kept alive (Beast: it is)";
      }
    }
  }
  return "";
}

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (uint8_t(c) < 0x20 || uint8_t(c) >= 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", unsigned(uint8_t(c)));
      out += b;
    } else {
      out += c;
    }
  }
  return out;
}

struct diff_stats {
  int both_ok = 0;
  int both_refused = 0;
  std::map<std::string, int> allowed;
};

// Ours (whole and cut) against the reference; failures name the input.
void compare(std::string_view in, bool head_request, const std::vector<size_t>& cuts,
             diff_stats& stats) {
  const outcome ours = run_ours(in, head_request);
  const outcome cut = run_ours(in, head_request, cuts);
  const std::string what = printable(in) + (head_request ? " (HEAD)" : "");
  // Cut anywhere, the same outcome.
  ASSERT_EQ(ours.status, cut.status) << what << "\n" << cut.detail;
  if (ours.status == parse_status::error) {
    EXPECT_FALSE(ours.detail.empty()) << what;
  } else {
    EXPECT_EQ(ours.body, cut.body) << what;
    EXPECT_EQ(ours.leftover, cut.leftover) << what;
    EXPECT_EQ(ours.headers, cut.headers) << what;
  }
  beast_reference ref;
  ref.run(in, head_request);
  const outcome& theirs = ref.out;
  const bool ours_ok = ours.status == parse_status::done;
  const bool theirs_ok = theirs.status == parse_status::done;
  if (ours_ok && theirs_ok && ours.keep_alive == theirs.keep_alive) {
    ++stats.both_ok;
    EXPECT_EQ(ours.heads, 1) << what;
    EXPECT_EQ(ours.code, theirs.code) << what;
    EXPECT_EQ(ours.version, theirs.version) << what;
    EXPECT_EQ(ours.chunked, theirs.chunked) << what;
    EXPECT_EQ(ours.close_delimited, theirs.close_delimited) << what;
    EXPECT_EQ(ours.has_body, theirs.has_body) << what;
    EXPECT_EQ(ours.content_length, theirs.content_length) << what;
    EXPECT_EQ(ours.reason, theirs.reason) << what;
    EXPECT_EQ(ours.content_type, theirs.content_type) << what;
    EXPECT_EQ(ours.session, theirs.session) << what;
    EXPECT_EQ(ours.protocol, theirs.protocol) << what;
    EXPECT_EQ(ours.headers, theirs.headers) << what;
    EXPECT_EQ(ours.body, theirs.body) << what;
    EXPECT_EQ(ours.leftover, theirs.leftover) << what;
    return;
  }
  if (!ours_ok && !theirs_ok) {
    ++stats.both_refused;
    return;
  }
  const std::string reason = allowed_difference(in, ours, ref);
  ASSERT_FALSE(reason.empty()) << "ours " << (ours_ok ? "accepts" : "refuses (" + ours.detail + ")")
                               << ", Beast " << (theirs_ok ? "accepts" : ref.ec.message())
                               << " (keep-alive " << ours.keep_alive << " vs " << theirs.keep_alive
                               << "): " << what;
  ++stats.allowed[reason];
}

// ---------------------------------------------------------------------------------------------
// (a) The table: every rule, valid and invalid, against the reference.

struct row {
  std::string_view text;
  bool ok;  // ours accepts (done after EOF)
  bool head_request = false;
};

const std::vector<row>& table() {
  static const std::vector<row> rows = {
      // Status line.
      {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true},
      {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", true},
      {"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", true},   // no SP, no reason
      {"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok", true},  // empty reason
      {"HTTP/1.1 200 A \t reason \x80\xff\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 599 X\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 103 Early\r\nLink: <a>\r\n\r\nHTTP/1.1 204 No\r\n\r\nxx", true},
      {"HTTP/1.1 600 X\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 000 X\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 101 Switching Protocols\r\n\r\n", false},
      {"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 20x OK\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n", false},
      {"http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false},
      {"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n", false},
      {"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\n\r\n", true},  // close-delimited, empty
      {"HTTP/1.1 200", false},
      // Header lines.
      {"HTTP/1.1 200 OK\r\nX-A:1\r\nX-B: \t 2 \t \r\nX-C:\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nX-A: a\tb \x80\xfe\xff\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\n!#$%&'*+-.^_`|~09AZaz: x\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nX-A\t: 1\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\n: 1\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nX A: 1\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nX(A): 1\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nX-A\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nX-\x80: 1\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 0\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nX-A: 1\rB\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 0\r\n\n", false},
      {"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 0\r\n\r\r\n", false},
      {"HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n"sv, false},
      {"HTTP/1.1 200 OK\r\nX-A: a\x7f\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nX-A: a\x1b\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nX-A: 1\r\n\tfolded\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nX-A:\r\n folded\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\n X-A: 1\r\nContent-Length: 0\r\n\r\n", false},
      // Content-Length.
      {"HTTP/1.1 200 OK\r\nContent-Length:  3 \r\n\r\nabc", true},
      {"HTTP/1.1 200 OK\r\ncontent-LENGTH: 3\r\n\r\nabc", true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 0003\r\n\r\nabc", true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 03\r\n\r\nabc", true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", false},
      {"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc", false},
      {"HTTP/1.1 200 OK\r\nContent-Length: 3,4\r\n\r\nabc", false},
      {"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc", false},
      {"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\nabc", false},
      {"HTTP/1.1 200 OK\r\nContent-Length: 3 3\r\n\r\nabc", false},
      {"HTTP/1.1 200 OK\r\nContent-Length: 0x3\r\n\r\nabc", false},
      {"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\nabc", false},
      {"HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\nabc", false},
      {"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\nabc", false},
      {"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\nabc", false},
      {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nabc", false},
      // Transfer-Encoding.
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding:  ChUnKeD \r\n\r\n3\r\nabc\r\n0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
       "0\r\n\r\n",
       false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
       false},
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n", false},
      // Connection.
      {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nConnection: Upgrade, CLOSE\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nConnection: ,, keep-alive ,\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nProxy-Connection: close\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nabc", true},  // close-delimited
      {"HTTP/1.1 200 OK\r\nConnection: close x\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nConnection: close;x\r\nContent-Length: 0\r\n\r\n", false},
      // Framing.
      {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nextra", true},
      {"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, true},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, true},
      {"HTTP/1.1 200 OK\r\n\r\n", true, true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n", true},
      {"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", false},
      // Chunked.
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
       "A\r\n0123456789\r\n00a\r\n0123456789\r\n000\r\n\r\nleft",
       true},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
       "3;a=b;c=\"d e\"\r\nabc\r\n3 ; x\r\ndef\r\n0;last\r\nT: 1\r\nU:\r\n\r\n",
       true},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;\r\nabc\r\n0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;a b\r\nabc\r\n0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n 3\r\nabc\r\n0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\rabc\r\n0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\"\n\"\r\nabc\r\n0\r\n\r\n",
       false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
       "10000000000000000\r\n",
       false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
       "00000000000000000000000000000003\r\nabc\r\n0\r\n\r\n",
       true},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT 1\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT : 1\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n: 1\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: \x01\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\r\n x\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
       "0\r\nContent-Length: 5\r\n\r\n",
       true},  // trailer fields are not interpreted
  };
  return rows;
}

TEST(response_parser_diff, table_against_beast) {
  diff_stats stats;
  for (const row& r : table()) {
    const outcome o = run_ours(r.text, r.head_request);
    EXPECT_EQ(o.status == parse_status::done, r.ok)
        << printable(r.text) << (r.head_request ? " (HEAD)" : "") << ": " << o.detail;
    // The same at every split in two.
    std::vector<size_t> cuts(1);
    for (size_t i = 0; i <= r.text.size(); ++i) {
      cuts[0] = i;
      compare(r.text, r.head_request, cuts, stats);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  for (const auto& [reason, n] : stats.allowed)
    std::printf("allowed: %d x %s\n", n, reason.c_str());
  EXPECT_GT(stats.both_ok, 0);
}

// ---------------------------------------------------------------------------------------------
// (b) Seeded mutations of valid responses.

const std::vector<std::pair<std::string_view, bool>>& seeds() {
  static const std::vector<std::pair<std::string_view, bool>> s = {
      {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: 7f3a\r\n"
       "Mcp-Protocol-Version: 2025-06-18\r\nContent-Length: 27\r\n\r\n"
       "{\"jsonrpc\":\"2.0\",\"id\":1,\"r\"}",
       false},
      {"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
       "9;ext=1\r\ndata: 1\n\n\r\n18\r\ndata: 2 and a bit more\n\n\r\n0\r\nX-Trailer: t\r\n\r\n",
       false},
      {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nConnection: keep-alive\r\n"
       "Content-Length: 2\r\n\r\nokHTTP",
       false},
      {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc", false},
      {"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nclose-delimited body", false},
      {"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", false},
      {"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nConnection: close\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true},
      {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
       "3\r\nabc\r\n0\r\n\r\nleftover",
       false},
  };
  return s;
}

constexpr std::array<std::string_view, 18> kInserts = {
    "\r",   "\n",   " ",    "\t", ":", "0", "9",       ",", ";", "\"", std::string_view("\0", 1),
    "\x7f", "\x80", "\r\n", "a",  "F", "=", "\r\n\r\n"};

constexpr std::array<std::string_view, 14> kLines = {
    "Content-Length: 5\r\n",
    "Content-Length: 3\r\n",
    "Content-Length: 3, 3\r\n",
    "Content-Length: 99999999999999999999\r\n",
    "Transfer-Encoding: chunked\r\n",
    "Transfer-Encoding: gzip\r\n",
    "Connection: close\r\n",
    "Connection: keep-alive\r\n",
    "Connection: keep-alive, close\r\n",
    " folded\r\n",
    "X-Empty:\r\n",
    "Content-Type: a/b\r\n",
    "Mcp-Session-Id: s\r\n",
    "X-Obs: \x80\xff\r\n",
};

std::string mutate(std::string s, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t(0) : size_t(rng() % n); };
  const int n = 1 + int(rng() % 3);
  for (int k = 0; k < n; ++k) {
    switch (rng() % 8) {
      case 0:  // flip a byte
        if (!s.empty()) s[pick(s.size())] ^= char(1u << (rng() % 8));
        break;
      case 1:  // replace a byte
        if (!s.empty()) s[pick(s.size())] = char(rng());
        break;
      case 2:  // insert a byte that matters to HTTP
      case 3: {
        const std::string_view x = kInserts[pick(kInserts.size())];
        s.insert(pick(s.size() + 1), x);
        break;
      }
      case 4:  // delete a byte
        if (!s.empty()) s.erase(pick(s.size()), 1);
        break;
      case 5: {  // duplicate a line
        size_t a = s.find("\r\n", pick(s.size()));
        if (a == std::string::npos) break;
        size_t b = s.find("\r\n", a + 2);
        if (b == std::string::npos) break;
        s.insert(a + 2, s.substr(a + 2, b - a));
        break;
      }
      case 6: {  // insert a header line after some CRLF
        size_t a = s.find("\r\n", pick(s.size()));
        if (a == std::string::npos) a = s.find("\r\n");
        if (a == std::string::npos) break;
        s.insert(a + 2, kLines[pick(kLines.size())]);
        break;
      }
      case 7: {  // change the case of a run of letters
        size_t a = pick(s.size());
        for (size_t i = a; i < s.size() && i < a + 12; ++i) {
          const char c = s[i];
          if (c >= 'a' && c <= 'z') s[i] = char(c - 32);
          if (c >= 'A' && c <= 'Z') s[i] = char(c + 32);
        }
        break;
      }
    }
  }
  return s;
}

TEST(response_parser_diff, seeded_mutations_against_beast) {
  std::mt19937_64 rng(20261127);
  diff_stats stats;
  constexpr int kRounds = 20000;
  for (int i = 0; i < kRounds; ++i) {
    const auto& [seed, head_request] = seeds()[size_t(i) % seeds().size()];
    const std::string in = mutate(std::string(seed), rng);
    std::vector<size_t> cuts;
    for (int c = int(rng() % 4); c > 0; --c)
      cuts.push_back(size_t(rng() % (in.size() + 1)));
    std::sort(cuts.begin(), cuts.end());
    compare(in, head_request, cuts, stats);
    if (::testing::Test::HasFatalFailure()) return;
  }
  std::printf("both accept %d, both refuse %d\n", stats.both_ok, stats.both_refused);
  for (const auto& [reason, n] : stats.allowed)
    std::printf("allowed: %d x %s\n", n, reason.c_str());
  // The mutations must exercise both sides, or the comparison proves little.
  EXPECT_GT(stats.both_ok, kRounds / 5);
  EXPECT_GT(stats.both_refused, kRounds / 5);
}

// ---------------------------------------------------------------------------------------------
// Rules, one by one (what the table cannot say: details, fields, limits, splits).

TEST(response_parser_rules, status_line_without_reason) {
  for (std::string_view r : {"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
                             "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"}) {
    const outcome o = run_ours(r);
    ASSERT_EQ(o.status, parse_status::done) << o.detail;
    EXPECT_EQ(o.code, 200);
    EXPECT_EQ(o.reason, "");
  }
  EXPECT_EQ(run_ours("HTTP/1.1 404 Not  Found \r\n\r\n").reason, "Not  Found ");
}

TEST(response_parser_rules, refusals_say_why) {
  struct refusal {
    std::string_view text;
    std::string_view detail;
  };
  for (const refusal& r : {
           refusal{"HTTP/1.1 101 Switching Protocols\r\n\r\n",
                   "upstream answered 101 Switching Protocols"},
           refusal{"HTTP/1.1 000 X\r\n\r\n", "upstream answered an invalid status code"},
           refusal{"HTTP/1.1 200 OK\r\nX: 1\r\n y\r\n\r\n",
                   "obsolete line folding in upstream response header"},
           refusal{"HTTP/1.1 200 OK\r\nX : 1\r\n\r\n",
                   "whitespace before ':' in upstream response header"},
           refusal{"HTTP/1.1 200 OK\r\nX: 1\n\r\n", "bare CR or LF in upstream response"},
           refusal{"HTTP/1.1 200 OK\nX: 1\r\n\r\n", "bare CR or LF in upstream response"},
           refusal{"HTTP/1.1 200 OK\r\nX: \x7f\r\n\r\n",
                   "control character in upstream response header"},
           refusal{"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                   "invalid Content-Length in upstream response"},
           refusal{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                   "conflicting Content-Length in upstream response"},
           refusal{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                   "both Content-Length and Transfer-Encoding in upstream response"},
           refusal{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                   "unsupported Transfer-Encoding"},
           refusal{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
                   "chunk size overflow in upstream response"},
           refusal{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab",
                   "chunk data not followed by CRLF in upstream response"},
           refusal{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\r\n\tx\r\n",
                   "obsolete line folding in upstream response trailer"},
           refusal{"HTTP/1.1 200 OK\r\n\r\n", ""},  // close-delimited: done at EOF
       }) {
    const outcome o = run_ours(r.text);
    if (r.detail.empty()) {
      EXPECT_EQ(o.status, parse_status::done);
      continue;
    }
    EXPECT_EQ(o.status, parse_status::error) << printable(r.text);
    EXPECT_EQ(o.detail, r.detail) << printable(r.text);
  }
}

TEST(response_parser_rules, fields_are_captured_trimmed_and_in_order) {
  const outcome o = run_ours(
      "HTTP/1.1 200 OK\r\ncontent-type: \t application/json \t\r\nMCP-SESSION-ID:abc\r\n"
      "mcp-protocol-version: 2025-06-18\r\nX-Empty:\r\nX-Obs: \x80z\xff\r\n"
      "Content-Length: 2\r\n\r\nok");
  ASSERT_EQ(o.status, parse_status::done) << o.detail;
  EXPECT_EQ(o.content_type, "application/json");
  EXPECT_EQ(o.session, "abc");
  EXPECT_EQ(o.protocol, "2025-06-18");
  const std::vector<std::pair<std::string, std::string>> want = {
      {"content-type", "application/json"},
      {"MCP-SESSION-ID", "abc"},
      {"mcp-protocol-version", "2025-06-18"},
      {"X-Empty", ""},
      {"X-Obs", "\x80z\xff"},
      {"Content-Length", "2"}};
  EXPECT_EQ(o.headers, want);
}

TEST(response_parser_rules, identical_content_lengths_are_one) {
  // RFC 9110 8.6: a recipient may take identical duplicates as one; Beast did too.
  const outcome o =
      run_ours("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 003\r\n\r\nabcd");
  ASSERT_EQ(o.status, parse_status::done) << o.detail;
  EXPECT_EQ(o.content_length, 3);
  EXPECT_EQ(o.body, "abc");
  EXPECT_EQ(o.leftover, 1u);
  EXPECT_EQ(
      run_ours("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd").status,
      parse_status::error);
}

TEST(response_parser_rules, content_length_bounds) {
  http1_response_parser p;
  outcome o;
  outcome_sink sink(o);
  p.reset();
  const std::string_view max = "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\nab";
  EXPECT_EQ(p.feed(std::span<const char>(max.data(), max.size()), sink), parse_status::need_more);
  EXPECT_EQ(o.content_length, INT64_MAX);
  EXPECT_EQ(o.body, "ab");
  EXPECT_EQ(run_ours("HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n").status,
            parse_status::error);
}

TEST(response_parser_rules, both_length_and_chunked_are_refused_either_order) {
  // As the Beast-based parser did; RFC 9112 6.3 would let the length be ignored, but such an
  // answer is a smuggling attempt or a broken upstream.
  EXPECT_EQ(run_ours("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "0\r\n\r\n")
                .status,
            parse_status::error);
  EXPECT_EQ(run_ours("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
                     "0\r\n\r\n")
                .status,
            parse_status::error);
}

TEST(response_parser_rules, connection_options) {
  struct row {
    std::string_view text;
    bool keep_alive;
  };
  for (const row& r : {
           row{"HTTP/1.1 200 OK\r\nConnection: CLOSE\r\nContent-Length: 0\r\n\r\n", false},
           row{"HTTP/1.1 200 OK\r\nConnection: upgrade,close\r\nContent-Length: 0\r\n\r\n", false},
           row{"HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 0\r\n\r\n", true},
           row{"HTTP/1.1 200 OK\r\nProxy-Connection: close\r\nContent-Length: 0\r\n\r\n", false},
           row{"HTTP/1.0 200 OK\r\nConnection: KEEP-ALIVE\r\nContent-Length: 0\r\n\r\n", true},
           row{"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\n"
               "Content-Length: 0\r\n\r\n",
               false},  // deliberate: Beast kept this alive
           row{"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true},
           row{"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n", false},  // to EOF
       }) {
    const outcome o = run_ours(r.text);
    ASSERT_EQ(o.status, parse_status::done) << printable(r.text) << o.detail;
    EXPECT_EQ(o.keep_alive, r.keep_alive) << printable(r.text);
  }
}

TEST(response_parser_rules, interim_and_final_in_one_feed) {
  const outcome o = run_ours(
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX-A: 1\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1");
  ASSERT_EQ(o.status, parse_status::done) << o.detail;
  EXPECT_EQ(o.heads, 1);
  EXPECT_EQ(o.code, 200);
  EXPECT_EQ(o.headers.size(), 1u);
  EXPECT_EQ(o.body, "ok");
  EXPECT_EQ(o.leftover, 8u);
}

TEST(response_parser_rules, head_done_and_received_any) {
  http1_response_parser p;
  outcome o;
  outcome_sink sink(o);
  p.reset();
  EXPECT_FALSE(p.received_any());
  EXPECT_FALSE(p.head_done());
  std::string_view a = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200";
  EXPECT_EQ(p.feed(std::span<const char>(a.data(), a.size()), sink), parse_status::need_more);
  EXPECT_TRUE(p.received_any());
  EXPECT_FALSE(p.head_done());  // an interim head is not the head
  std::string_view b = " OK\r\nContent-Length: 1\r\n\r\n";
  EXPECT_EQ(p.feed(std::span<const char>(b.data(), b.size()), sink), parse_status::need_more);
  EXPECT_TRUE(p.head_done());
  EXPECT_EQ(p.feed_eof(), parse_status::error);
  EXPECT_EQ(p.error_detail(), "upstream closed the connection mid-response");
  EXPECT_EQ(p.feed(std::span<const char>(b.data(), b.size()), sink), parse_status::error);
  p.reset();
  EXPECT_FALSE(p.received_any());
  EXPECT_FALSE(p.head_done());
  EXPECT_EQ(p.error_detail(), "");
  EXPECT_EQ(p.feed_eof(), parse_status::error);
  EXPECT_EQ(p.error_detail(), "upstream closed the connection before answering");
}

TEST(response_parser_rules, head_request_and_no_content_keep_the_declared_framing) {
  // As before: chunked and content_length say what the answer would have been.
  outcome o = run_ours("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true);
  ASSERT_EQ(o.status, parse_status::done);
  EXPECT_TRUE(o.chunked);
  EXPECT_FALSE(o.has_body);
  EXPECT_TRUE(o.keep_alive);
  o = run_ours("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\nxyz");
  ASSERT_EQ(o.status, parse_status::done);
  EXPECT_EQ(o.content_length, 7);
  EXPECT_FALSE(o.has_body);
  EXPECT_EQ(o.leftover, 3u);
}

std::string chunked_head() {
  return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
}

TEST(response_parser_rules, chunk_size_overflow) {
  // 16 hex digits fit in 64 bits; the 17th significant one does not.
  http1_response_parser p;
  outcome o;
  outcome_sink sink(o);
  p.reset();
  const std::string ok = chunked_head() + "FFFFFFFFFFFFFFFF\r\nabc";
  EXPECT_EQ(p.feed(std::span<const char>(ok.data(), ok.size()), sink), parse_status::need_more);
  EXPECT_EQ(o.body, "abc");
  EXPECT_EQ(run_ours(chunked_head() + "1FFFFFFFFFFFFFFFF\r\n").detail,
            "chunk size overflow in upstream response");
  EXPECT_EQ(run_ours(chunked_head() + "000000000000000000000001\r\na\r\n0\r\n\r\n").body, "a");
}

TEST(response_parser_rules, chunk_line_is_bounded) {
  // Size and extensions up to 4 KiB, in any number of feeds; one byte more is refused.
  const std::string head = chunked_head();
  auto line = [](size_t n) { return "1;" + std::string(n - 2, 'x') + "\r\na\r\n0\r\n\r\n"; };
  std::vector<size_t> cuts;
  for (size_t i = head.size(); i < head.size() + 4100; i += 100)
    cuts.push_back(i);
  const outcome ok = run_ours(head + line(4096), false, cuts);
  EXPECT_EQ(ok.status, parse_status::done) << ok.detail;
  EXPECT_EQ(ok.body, "a");
  const outcome bad = run_ours(head + line(4097), false, cuts);
  EXPECT_EQ(bad.status, parse_status::error);
  EXPECT_EQ(bad.detail, "chunk size line over 4 KiB in upstream response");
  // Whitespace before ';' counts too.
  EXPECT_EQ(run_ours(head + "1" + std::string(5000, ' ') + ";x\r\na\r\n0\r\n\r\n").status,
            parse_status::error);
}

TEST(response_parser_rules, trailers_are_bounded) {
  const std::string head = chunked_head() + "1\r\na\r\n0\r\n";
  // The trailer section (its empty line included) of exactly kMaxResponseHead bytes.
  std::string trailers;
  while (trailers.size() + 2 * 97 + 2 <= kMaxResponseHead)
    trailers += "X-T: " + std::string(90, 'v') + "\r\n";
  trailers += "X-P: " + std::string(kMaxResponseHead - 2 - trailers.size() - 7, 'p') + "\r\n";
  ASSERT_EQ(trailers.size() + 2, kMaxResponseHead);
  std::vector<size_t> cuts;
  for (size_t i = head.size(); i < head.size() + trailers.size(); i += 999)
    cuts.push_back(i);
  const outcome ok = run_ours(head + trailers + "\r\nleft", false, cuts);
  EXPECT_EQ(ok.status, parse_status::done) << ok.detail;
  EXPECT_EQ(ok.leftover, 4u);
  EXPECT_EQ(ok.headers.size(), 1u);  // trailers are not headers
  trailers.insert(trailers.size() - 2, "p");
  const outcome bad = run_ours(head + trailers + "\r\n", false, cuts);
  EXPECT_EQ(bad.status, parse_status::error);
  EXPECT_EQ(bad.detail, "upstream response trailers over 64 KiB");
}

TEST(response_parser_rules, head_size_limit_is_exact) {
  // A head of exactly kMaxResponseHead bytes is accepted, one byte more is not: whole, split
  // once, and trickled in 1000-byte pieces.
  const std::string start = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Big: ";
  for (size_t size : {kMaxResponseHead, kMaxResponseHead + 1}) {
    const std::string head = start + std::string(size - start.size() - 4, 'a') + "\r\n\r\n";
    ASSERT_EQ(head.size(), size);
    std::vector<size_t> trickle;
    for (size_t i = 1000; i < head.size(); i += 1000)
      trickle.push_back(i);
    for (const std::vector<size_t>& cuts :
         {std::vector<size_t>{}, std::vector<size_t>{size - 2}, trickle}) {
      const outcome o = run_ours(head + "next", false, cuts);
      if (size == kMaxResponseHead) {
        EXPECT_EQ(o.status, parse_status::done) << o.detail;
        EXPECT_EQ(o.leftover, 4u);
      } else {
        EXPECT_EQ(o.status, parse_status::error);
        EXPECT_EQ(o.detail, "upstream response head over 64 KiB");
      }
    }
  }
}

TEST(response_parser_rules, header_count_limit) {
  auto with = [](size_t n) {
    std::string s = "HTTP/1.1 200 OK\r\n";
    for (size_t i = 1; i < n; ++i)
      s += "X-" + std::to_string(i) + ": v\r\n";
    return s + "Content-Length: 0\r\n\r\n";
  };
  const outcome ok = run_ours(with(kMaxResponseHeaders));
  EXPECT_EQ(ok.status, parse_status::done) << ok.detail;
  EXPECT_EQ(ok.headers.size(), kMaxResponseHeaders);
  const outcome bad = run_ours(with(kMaxResponseHeaders + 1));
  EXPECT_EQ(bad.status, parse_status::error);
  EXPECT_EQ(bad.detail, "too many upstream response headers");
}

TEST(response_parser_rules, views_point_into_the_input_or_the_buffer) {
  // In place when the head arrives whole; in the parser's buffer when it straddles feeds.
  struct checking_sink final : response_sink {
    const char* lo = nullptr;
    const char* hi = nullptr;
    bool inside = false;
    bool on_response_head(const http_response& h) override {
      inside = h.content_type.data() >= lo && h.content_type.data() + h.content_type.size() <= hi;
      EXPECT_EQ(h.content_type, "a/b");
      return true;
    }
    bool on_response_body(std::string_view) override { return true; }
  };
  const std::string r = "HTTP/1.1 200 OK\r\nContent-Type: a/b\r\nContent-Length: 0\r\n\r\n";
  http1_response_parser p;
  checking_sink s;
  p.reset();
  s.lo = r.data();
  s.hi = r.data() + r.size();
  EXPECT_EQ(p.feed(std::span<const char>(r.data(), r.size()), s), parse_status::done);
  EXPECT_TRUE(s.inside);
  p.reset();
  EXPECT_EQ(p.feed(std::span<const char>(r.data(), 20), s), parse_status::need_more);
  EXPECT_EQ(p.feed(std::span<const char>(r.data() + 20, r.size() - 20), s), parse_status::done);
  EXPECT_FALSE(s.inside);
  EXPECT_EQ(p.leftover(), 0u);
}

TEST(response_parser_rules, warm_parser_does_not_allocate) {
  const std::string whole =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello";
  const std::string chunked = chunked_head() + "5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n";
  struct null_sink final : response_sink {
    bool on_response_head(const http_response&) override { return true; }
    bool on_response_body(std::string_view) override { return true; }
  } sink;
  http1_response_parser p;
  auto one = [&](const std::string& s, size_t cut) {
    p.reset();
    parse_status st = p.feed(std::span<const char>(s.data(), cut), sink);
    if (st == parse_status::need_more) {
      st = p.feed(std::span<const char>(s.data() + cut, s.size() - cut), sink);
    }
    EXPECT_EQ(st, parse_status::done);
  };
  one(whole, 30);  // warm-up: the accumulation buffer grows once
  const uint64_t before = g_allocations.load();
  for (size_t cut = 1; cut < whole.size(); ++cut)
    one(whole, cut);
  for (size_t cut = 1; cut < chunked.size(); ++cut)
    one(chunked, cut);
  EXPECT_EQ(g_allocations.load(), before);
}

}  // namespace
}  // namespace sluice::net
