#include "net/http1_parser.h"

#include <array>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <optional>

#include "engine/byte_buffer.h"

namespace sluice::net {

namespace http = boost::beast::http;
using boost::beast::error_code;
using boost::beast::iequals;
// Boost 1.81 Beast passes boost::core::string_view (converts to std::string_view).
using bsv = boost::beast::string_view;

namespace {

// Requests with a body-defining method must say how long the body is.
bool method_needs_length(std::string_view m) {
  return m == "POST" || m == "PUT" || m == "PATCH";
}

bool in_range(std::string_view v, const char* b, const char* e) {
  return v.data() >= b && v.data() + v.size() <= e;
}

}  // namespace

struct http1_parser::impl {
  // Beast request parser that records views instead of building a message.
  class beast_parser final : public http::basic_parser<true> {
   public:
    explicit beast_parser(impl& owner) : owner_(owner) {}

   private:
    void on_request_impl(http::verb, bsv method, bsv target, int version, error_code&) override {
      owner_.req_.method = std::string_view(method);
      owner_.req_.target = std::string_view(target);
      owner_.req_.version = unsigned(version);
      owner_.note_end(owner_.req_.target);
    }
    void on_response_impl(int, bsv, int, error_code& ec) override { ec = http::error::bad_version; }
    void on_field_impl(http::field f, bsv name, bsv value, error_code& ec) override {
      // Beast reports a chunked body's trailer fields here too. They are never merged into
      // the header (RFC 9110 6.5.1): a trailer could otherwise replace the Content-Type,
      // Mcp-Session-Id or Authorization the request was checked with.
      if (is_header_done()) return;
      owner_.on_field(f, std::string_view(name), std::string_view(value), ec);
    }
    void on_header_impl(error_code& ec) override { owner_.on_header(*this, ec); }
    void on_body_init_impl(const boost::optional<std::uint64_t>& len, error_code&) override {
      owner_.content_length_ = len ? int64_t(*len) : -1;
    }
    std::size_t on_body_impl(bsv body, error_code&) override {
      owner_.on_body(std::string_view(body));
      return body.size();
    }
    void on_chunk_header_impl(std::uint64_t, bsv, error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, bsv body, error_code&) override {
      owner_.body_.append(std::string_view(body));
      owner_.body_copied_ = true;
      return body.size();
    }
    void on_finish_impl(error_code&) override {}

    impl& owner_;
  };

  explicit impl(const http_limits& l) : limits_(l) {}

  void note_end(std::string_view v) {
    const char* e = v.data() + v.size();
    if (e > hdr_end_) hdr_end_ = e;
  }

  void on_field(http::field f, std::string_view name, std::string_view value, error_code& ec) {
    // Beast unfolds obs-fold into a private buffer: a value outside our input is one. Refuse.
    // (The name is always a view of the input, and ends before its value.)
    if (!in_range(value, in_begin_, in_end_)) return fail(ec, 400);
    if (nheaders_ == kMaxHeaders) return fail(ec, 431);
    headers_[nheaders_++] = {name, value};
    note_end(value);
    http_request& r = req_;
    switch (f) {
      case http::field::content_type:
        r.content_type = value;
        break;
      case http::field::accept:
        r.accept = value;
        break;
      case http::field::origin:
        r.origin = value;
        break;
      case http::field::authorization:
        r.authorization = value;
        break;
      case http::field::connection:
        r.connection = value;
        break;
      case http::field::host:
        if (!r.host.empty()) return fail(ec, 400);  // RFC 9112 3.2: more than one Host
        r.host = value;
        break;
      case http::field::transfer_encoding:
        // Only exactly "chunked": anything else (gzip, lists) is a smuggling vector.
        if (!iequals(value, "chunked")) return fail(ec, 400);
        break;
      case http::field::unknown:
        if (iequals(name, "mcp-session-id")) {
          r.mcp_session_id = value;
        } else if (iequals(name, "mcp-protocol-version")) {
          r.mcp_protocol_version = value;
        } else if (iequals(name, "last-event-id")) {
          r.last_event_id = value;
        } else if (iequals(name, "mcp-method")) {
          r.mcp_method = value;
        } else if (iequals(name, "mcp-name")) {
          r.mcp_name = value;
        }
        break;
      default:
        break;
    }
  }

  // Content-Encoding and Expect, which few requests carry, are looked for here, once the
  // header is whole, rather than in on_field: two more cases there make GCC stop inlining
  // Beast's field loop (~230 more instructions per request, bench/net/icount_gateway.sh).
  void rare_fields(error_code& ec) {
    for (size_t i = 0; i < nheaders_; ++i) {
      const http_header& h = headers_[i];
      if (h.name.size() == 16 && iequals(h.name, "content-encoding")) {
        // A body Sluice cannot read as sent is one it cannot decide (RFC 9110 15.5.16).
        if (!iequals(h.value, "identity")) return fail(ec, 415);
      } else if (h.name.size() == 6 && iequals(h.name, "expect")) {
        // RFC 9110 10.1.1: 100-continue is the only expectation defined; it means nothing in
        // HTTP/1.0. Any other cannot be met.
        if (!iequals(h.value, "100-continue")) return fail(ec, 417);
        req_.expect_continue = req_.version >= 11;
      }
    }
  }

  void on_header(beast_parser& p, error_code& ec) {
    rare_fields(ec);
    if (ec) return;
    req_.keep_alive = p.keep_alive();
    if (method_needs_length(req_.method) && !p.chunked() && !p.content_length()) {
      return fail(ec, 400);
    }
    if (p.chunked() && req_.version < 11) return fail(ec, 400);
  }

  void on_body(std::string_view piece) {
    if (!body_copied_ && !hdr_stable_ && content_length_ >= 0 &&
        piece.size() == uint64_t(content_length_) && req_.body.empty()) {
      req_.body = piece;  // whole body in this buffer: in place (buffer has 64 bytes slack)
      return;
    }
    if (!req_.body.empty()) {  // cannot happen with Content-Length, kept for safety
      body_.append(req_.body);
      req_.body = {};
    }
    body_.append(piece);
    body_copied_ = true;
  }

  void fail(error_code& ec, int status) {
    error_status_ = status;
    ec = http::error::bad_value;
  }

  void start_request(const char* at) {
    parser_.emplace(*this);
    parser_->eager(true);
    parser_->header_limit(uint32_t(limits_.max_header_bytes));
    parser_->body_limit(uint64_t(limits_.max_body_bytes));
    req_ = http_request{};
    nheaders_ = 0;
    body_.clear();
    body_copied_ = false;
    hdr_stable_ = false;
    continue_sent_ = false;
    content_length_ = -1;
    req_start_ = at;
    hdr_end_ = at;
    error_status_ = 0;
  }

  // Copies the header block to hdr_ and points the views there: the request's body continues
  // in a later feed, after the buffer the header came in has been recycled. Rare path.
  void stabilize_header() {
    if (hdr_stable_) return;
    hdr_stable_ = true;
    const char* from = req_start_;
    size_t len = size_t(hdr_end_ - from);
    hdr_.clear();
    hdr_.append(from, len);
    const char* to = hdr_.data();
    auto rebase = [&](std::string_view& v) {
      if (!v.empty() && v.data() >= from && v.data() + v.size() <= from + len) {
        v = std::string_view(to + (v.data() - from), v.size());
      }
    };
    http_request& r = req_;
    for (std::string_view* v :
         {&r.method, &r.target, &r.content_type, &r.accept, &r.origin, &r.authorization,
          &r.mcp_session_id, &r.mcp_protocol_version, &r.last_event_id, &r.mcp_method, &r.mcp_name,
          &r.connection, &r.host}) {
      rebase(*v);
    }
    for (size_t i = 0; i < nheaders_; ++i) {
      rebase(headers_[i].name);
      rebase(headers_[i].value);
    }
    if (!req_.body.empty()) {  // an in-place first piece must move too
      body_.append(req_.body);
      req_.body = {};
      body_copied_ = true;
    }
  }

  // The client may be waiting for "100 Continue" before it sends the body.
  void maybe_continue(request_sink& sink) {
    if (!req_.expect_continue || continue_sent_) return;
    continue_sent_ = true;
    sink.on_expect_continue();
  }

  static int status_for(const error_code& ec, int custom) {
    if (custom != 0) return custom;
    if (ec == http::error::header_limit) return 431;
    if (ec == http::error::body_limit) return 413;
    return 400;
  }

  enum class step { done, more, stop, error };

  // Parses requests from [p, end). On return, consumed says how many bytes were used; with
  // step::more the rest must be kept for the next feed. one: stop after one request.
  step parse(const char* p, const char* end, request_sink& sink, bool one, size_t& consumed,
             int& status) {
    const char* begin = p;
    while (p < end) {
      if (!parser_) start_request(p);
      in_begin_ = p;
      in_end_ = end;
      error_code ec;
      size_t n = parser_->put(boost::asio::const_buffer(p, size_t(end - p)), ec);
      if (ec == http::error::need_more) {
        if (!parser_->is_header_done()) {
          // Incomplete header (Beast may have taken the start line already): restart this
          // request from its first byte once the whole header is here.
          parser_.reset();
          scanned_ = size_t(end - p);
          if (scanned_ > limits_.max_header_bytes) {
            status = 431;
            consumed = size_t(p - begin);
            return step::error;
          }
          consumed = size_t(p - begin);
          return step::more;
        }
        stabilize_header();  // the body continues in a later feed
        maybe_continue(sink);
        p += n;
        consumed = size_t(p - begin);
        return step::more;
      }
      if (ec) {
        status = status_for(ec, error_status_);
        consumed = size_t(p - begin);
        return step::error;
      }
      p += n;
      if (parser_->is_done()) {
        if (body_copied_) req_.body = body_.view();
        req_.headers = std::span<const http_header>(headers_.data(), nheaders_);
        parser_.reset();
        bool go_on = sink.on_parsed(req_);
        if (!go_on) {
          consumed = size_t(p - begin);
          return step::stop;
        }
        if (one) break;
      }
    }
    if (parser_ && parser_->is_header_done()) {  // the body continues later
      stabilize_header();
      maybe_continue(sink);
    }
    consumed = size_t(p - begin);
    return step::done;
  }

  // Looks for the end of the header block in accum_ (only the bytes not scanned before), so
  // a header that trickles in is scanned once and parsed once.
  [[nodiscard]] bool header_complete() {
    size_t from = scanned_ > 3 ? scanned_ - 3 : 0;
    std::string_view v = accum_.view();
    bool found = v.find("\r\n\r\n", from) != std::string_view::npos;
    scanned_ = v.size();
    return found;
  }

  int feed(std::span<const char> bytes, request_sink& sink) {
    if (stopped_) return 0;
    const char* p = bytes.data();
    const char* end = p + bytes.size();
    size_t used = 0;
    int status = 0;
    if (!accum_.empty()) {
      // A request straddles feeds: finish it from the accumulation buffer, then go back to
      // parsing in place.
      size_t old = accum_.size();
      accum_.append(p, bytes.size());
      if (!parser_ && !header_complete()) {
        if (accum_.size() > limits_.max_header_bytes) return finish_error(431);
        return 0;
      }
      step s = parse(accum_.data(), accum_.data() + accum_.size(), sink, true, used, status);
      if (s == step::more) {
        accum_.consume_front(used);
        return 0;
      }
      if (s == step::error) return finish_error(status);
      if (s == step::stop) {
        stopped_ = true;
        accum_.clear();
        return 0;
      }
      // Done: the straddling request (and nothing more) came out of accum_.
      size_t from_new = used > old ? used - old : 0;
      accum_.clear();
      p += from_new;
    }
    step s = parse(p, end, sink, false, used, status);
    if (s == step::more) {
      accum_.append(p + used, size_t(end - p) - used);
    } else if (s == step::error) {
      return finish_error(status);
    } else if (s == step::stop) {
      stopped_ = true;
    }
    return 0;
  }

  int finish_error(int status) {
    stopped_ = true;
    parser_.reset();
    accum_.clear();
    return status;
  }

  const http_limits limits_;
  std::optional<beast_parser> parser_;
  http_request req_;
  std::array<http_header, kMaxHeaders> headers_{};
  size_t nheaders_ = 0;
  engine::byte_buffer accum_;  // bytes of a request that straddles feeds
  engine::byte_buffer hdr_;    // header block of a request whose body straddles feeds
  engine::byte_buffer body_;   // chunked or straddling body (padded)
  bool body_copied_ = false;
  bool hdr_stable_ = false;
  bool continue_sent_ = false;
  bool stopped_ = false;
  int64_t content_length_ = -1;
  const char* req_start_ = nullptr;
  const char* hdr_end_ = nullptr;
  const char* in_begin_ = nullptr;
  const char* in_end_ = nullptr;
  int error_status_ = 0;
  size_t scanned_ = 0;  // bytes of accum_ already searched for the header's end
};

http1_parser::http1_parser(const http_limits& limits) : impl_(std::make_unique<impl>(limits)) {}
http1_parser::~http1_parser() = default;

int http1_parser::feed(std::span<const char> bytes, request_sink& sink) {
  return impl_->feed(bytes, sink);
}

bool http1_parser::in_request() const {
  return impl_->parser_.has_value() || !impl_->accum_.empty();
}

void http1_parser::reset() {
  impl_->parser_.reset();
  impl_->accum_.clear();
  impl_->stopped_ = false;
}

}  // namespace sluice::net
