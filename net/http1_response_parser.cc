#include "net/http1_response_parser.h"

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

bool in_range(std::string_view v, const char* b, const char* e) {
  return v.data() >= b && v.data() + v.size() <= e;
}

// Where the head ends ("\r\n\r\n" included), searching [p + from, end); nullptr if not yet.
const char* find_head_end(const char* p, const char* end, size_t from) {
  std::string_view v(p, size_t(end - p));
  size_t at = v.find("\r\n\r\n", from);
  return at == std::string_view::npos ? nullptr : p + at + 4;
}

}  // namespace

struct http1_response_parser::impl {
  // Beast response parser that records views instead of building a message.
  class beast_parser final : public http::basic_parser<false> {
   public:
    explicit beast_parser(impl& owner) : owner_(owner) {}

   private:
    void on_request_impl(http::verb, bsv, bsv, int, error_code& ec) override {
      ec = http::error::bad_method;
    }
    void on_response_impl(int code, bsv reason, int version, error_code& ec) override {
      owner_.head_.status = code;
      owner_.head_.reason = std::string_view(reason);
      owner_.head_.version = unsigned(version);
      if (code == 101) owner_.fail(ec, "upstream answered 101 Switching Protocols");
      // Beast takes any three digits; 000 or 999 would reach the agent as a status line.
      if (code < 100 || code > 599) owner_.fail(ec, "upstream answered an invalid status code");
    }
    void on_field_impl(http::field f, bsv name, bsv value, error_code& ec) override {
      owner_.on_field(f, std::string_view(name), std::string_view(value), ec);
    }
    void on_header_impl(error_code& ec) override { owner_.on_header(*this, ec); }
    void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
    std::size_t on_body_impl(bsv body, error_code& ec) override {
      owner_.on_body(std::string_view(body), ec);
      return body.size();
    }
    void on_chunk_header_impl(std::uint64_t, bsv, error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, bsv body, error_code& ec) override {
      owner_.on_body(std::string_view(body), ec);
      return body.size();
    }
    void on_finish_impl(error_code&) override {}

    impl& owner_;
  };

  void fail(error_code& ec, std::string_view detail) {
    detail_ = detail;
    ec = http::error::bad_value;
  }

  void on_field(http::field f, std::string_view name, std::string_view value, error_code& ec) {
    if (head_done_) return;  // chunked trailer fields: not relayed
    // Beast unfolds obs-fold into a private buffer: a value outside our input is one. Refused,
    // like the server side does (RFC 9112 5.2 allows it; nothing we forward to needs it).
    if (!in_range(value, in_begin_, in_end_) || !in_range(name, in_begin_, in_end_)) {
      return fail(ec, "obsolete line folding in upstream response header");
    }
    if (nheaders_ == kMaxResponseHeaders) return fail(ec, "too many upstream response headers");
    headers_[nheaders_++] = {name, value};
    switch (f) {
      case http::field::content_type:
        head_.content_type = value;
        break;
      case http::field::transfer_encoding:
        // Only exactly "chunked": we relay de-chunked bytes, so a coding we do not undo
        // (gzip, lists) would reach the client mislabelled.
        if (!iequals(value, "chunked")) return fail(ec, "unsupported Transfer-Encoding");
        break;
      case http::field::unknown:
        if (iequals(name, "mcp-session-id")) {
          head_.mcp_session_id = value;
        } else if (iequals(name, "mcp-protocol-version")) {
          head_.mcp_protocol_version = value;
        }
        break;
      default:
        break;
    }
  }

  void on_header(beast_parser& p, error_code& ec) {
    if (head_.status / 100 == 1) {
      interim_ = true;  // 100 Continue, 102, 103: skipped, the final response follows
      return;
    }
    head_.keep_alive = p.keep_alive();
    head_.chunked = p.chunked();
    head_.close_delimited = p.need_eof();
    head_.has_body = !p.is_done();
    auto len = p.content_length();
    head_.content_length = len ? int64_t(*len) : -1;
    head_.headers = std::span<const http_header>(headers_.data(), nheaders_);
    head_done_ = true;
    if (!sink_->on_response_head(head_)) stop(ec);
  }

  void on_body(std::string_view piece, error_code& ec) {
    if (piece.empty()) return;
    if (!sink_->on_response_body(piece)) stop(ec);
  }

  void stop(error_code& ec) {
    stopped_ = true;
    ec = http::error::bad_value;
  }

  void start_message() {
    parser_.emplace(*this);
    parser_->eager(true);
    parser_->header_limit(uint32_t(kMaxResponseHead));
    parser_->body_limit(boost::none);  // SSE streams have no end in sight
    if (head_request_) parser_->skip(true);
    head_ = http_response{};
    nheaders_ = 0;
    interim_ = false;
    scanned_ = 0;
  }

  void reset(bool head_request) {
    parser_.reset();
    accum_.clear();
    head_request_ = head_request;
    head_done_ = false;
    received_ = false;
    stopped_ = false;
    status_ = parse_status::need_more;
    leftover_ = 0;
    detail_ = {};
    scanned_ = 0;
  }

  parse_status set(parse_status s) {
    status_ = s;
    if (s != parse_status::need_more) accum_.clear();
    return s;
  }

  // Keeps [p, end) for the next feed. From accum_ itself: drop what was consumed.
  void keep(const char* p, const char* end, bool from_accum) {
    if (from_accum) {
      accum_.consume_front(size_t(p - accum_.data()));
    } else {
      accum_.append(p, size_t(end - p));
    }
  }

  // Parses [p, end) (either the caller's bytes or accum_).
  parse_status run(const char* p, const char* end, bool from_accum) {
    while (p < end) {
      if (!parser_) start_message();
      if (!parser_->is_header_done()) {
        // Hand Beast a head only when it is complete: it may take the status line and then
        // ask for more, and its views must point into one live buffer.
        size_t from = scanned_ > 3 ? scanned_ - 3 : 0;
        if (find_head_end(p, end, from) == nullptr) {
          scanned_ = size_t(end - p);
          if (scanned_ > kMaxResponseHead) {
            detail_ = "upstream response head over 64 KiB";
            return set(parse_status::error);
          }
          keep(p, end, from_accum);
          return status_;
        }
      }
      in_begin_ = p;
      in_end_ = end;
      error_code ec;
      size_t n = parser_->put(boost::asio::const_buffer(p, size_t(end - p)), ec);
      if (stopped_) return set(parse_status::stopped);
      if (ec == http::error::need_more) {
        // Mid-body: a chunk header or trailer split across feeds. Keep the tail.
        keep(p + n, end, from_accum);
        return status_;
      }
      if (ec) {
        if (detail_.empty()) detail_ = "malformed upstream response";
        return set(parse_status::error);
      }
      p += n;
      if (parser_->is_done()) {
        parser_.reset();
        if (interim_) continue;  // the final response follows
        leftover_ = size_t(end - p);
        return set(parse_status::done);
      }
    }
    if (from_accum) accum_.clear();
    return status_;
  }

  parse_status feed(std::span<const char> bytes, response_sink& sink) {
    if (status_ != parse_status::need_more) return status_;
    if (bytes.empty()) return status_;
    received_ = true;
    sink_ = &sink;
    if (accum_.empty()) return run(bytes.data(), bytes.data() + bytes.size(), false);
    // A head or chunk header straddles feeds: continue in the accumulation buffer. For long
    // streams this copies one feed at a time, only while a split is pending.
    accum_.append(bytes.data(), bytes.size());
    return run(accum_.data(), accum_.data() + accum_.size(), true);
  }

  parse_status feed_eof() {
    if (status_ != parse_status::need_more) return status_;
    if (parser_ && parser_->is_header_done() && parser_->need_eof() && accum_.empty()) {
      return set(parse_status::done);
    }
    detail_ = received_ ? "upstream closed the connection mid-response"
                        : "upstream closed the connection before answering";
    return set(parse_status::error);
  }

  std::optional<beast_parser> parser_;
  http_response head_;
  std::array<http_header, kMaxResponseHeaders> headers_{};
  size_t nheaders_ = 0;
  engine::byte_buffer accum_;  // a head or chunk header that straddles feeds
  response_sink* sink_ = nullptr;
  const char* in_begin_ = nullptr;
  const char* in_end_ = nullptr;
  std::string_view detail_;  // static strings only
  size_t scanned_ = 0;       // bytes of the pending head already searched for its end
  size_t leftover_ = 0;
  parse_status status_ = parse_status::need_more;
  bool head_request_ = false;
  bool head_done_ = false;
  bool interim_ = false;
  bool received_ = false;
  bool stopped_ = false;
};

http1_response_parser::http1_response_parser() : impl_(std::make_unique<impl>()) {}
http1_response_parser::~http1_response_parser() = default;

void http1_response_parser::reset(bool head_request) {
  impl_->reset(head_request);
}

http1_response_parser::parse_status http1_response_parser::feed(std::span<const char> bytes,
                                                                response_sink& sink) {
  return impl_->feed(bytes, sink);
}

http1_response_parser::parse_status http1_response_parser::feed_eof() {
  return impl_->feed_eof();
}

bool http1_response_parser::received_any() const {
  return impl_->received_;
}
bool http1_response_parser::head_done() const {
  return impl_->head_done_;
}
size_t http1_response_parser::leftover() const {
  return impl_->leftover_;
}
std::string_view http1_response_parser::error_detail() const {
  return impl_->detail_;
}

}  // namespace sluice::net
