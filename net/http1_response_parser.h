#pragma once
// Incremental HTTP/1.1 response parser for one upstream connection, written for the hot path
// (Beast's basic_parser cost ~2k instructions per response, this ~0.6k). One pass over the
// head, 16 bytes at a time: an SSE2 scan finds each line's end (the first control byte, which
// also checks the value), an SSSE3 nibble lookup the end of each name (a 256-entry table
// without SSSE3 and for the last bytes of a buffer); known names are matched by length first.
// No virtual call but the sink's, once per head and once per body piece.
//
// Framing: Content-Length, chunked (de-chunked before delivery, by an incremental state
// machine: chunk-size lines and trailers may split anywhere), close-delimited (until EOF); 1xx
// interim responses are skipped (101 is refused: we never ask to upgrade); 204, 304 and answers
// to HEAD have no body. Body bytes are delivered as they arrive, never buffered whole.
//
// Strict where a proxy must be (RFC 9112; anything else is parse_status::error): status line
// "HTTP/1.0" or "HTTP/1.1", SP, three digits in 100..599, then SP and a reason or directly CRLF
// ("HTTP/1.1 200\r\n" is accepted); every line ends in CRLF (a bare CR or LF is refused);
// header names are tokens followed directly by ':'; values carry no control bytes but HTAB;
// obs-fold is refused; Content-Length is 1*DIGIT up to INT64_MAX (identical duplicates
// accepted); Transfer-Encoding is exactly "chunked" and never with Content-Length. Chunk
// extensions are ignored (their bytes are checked), trailers are checked and dropped. Limits:
// kMaxResponseHead per head and for the trailer section, kMaxResponseHeaders lines, 4 KiB per
// chunk-size line. Keep-alive: HTTP/1.1 unless Connection (or Proxy-Connection) says close;
// HTTP/1.0 only with keep-alive and without close; never for a close-delimited body.
//
// A response head is parsed in place in the caller's buffer; when it straddles feeds it is
// gathered in a per-connection buffer, where later feeds only search for its end. The buffer
// is reused: no allocation per response after warm-up.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "net/http1.h"

namespace sluice::net {

inline constexpr size_t kMaxResponseHead = 64 * 1024;  // status line + headers
inline constexpr size_t kMaxResponseHeaders = 256;     // header lines

// A parsed final (non-1xx) response head. Views are valid only during the sink call.
struct http_response {
  int status = 0;
  unsigned version = 11;   // 10 or 11
  bool keep_alive = true;  // HTTP/1.1 without "Connection: close" (1.0 with keep-alive), framed
  bool chunked = false;
  bool close_delimited = false;  // the body runs until the upstream closes
  bool has_body = false;
  int64_t content_length = -1;  // -1: none
  std::string_view reason;
  std::string_view content_type;
  std::string_view mcp_session_id;
  std::string_view mcp_protocol_version;
  std::span<const http_header> headers;  // all, in order
};

// Receives one response. Returning false stops parsing at once (the exchange was cancelled):
// feed() then returns parse_status::stopped and delivers nothing more.
class response_sink {
 public:
  [[nodiscard]] virtual bool on_response_head(const http_response& head) = 0;
  [[nodiscard]] virtual bool on_response_body(std::string_view bytes) = 0;

 protected:
  ~response_sink() = default;
};

class http1_response_parser {
 public:
  enum class parse_status : uint8_t { need_more, done, stopped, error };

  http1_response_parser();
  ~http1_response_parser();
  http1_response_parser(const http1_response_parser&) = delete;
  http1_response_parser& operator=(const http1_response_parser&) = delete;

  // Prepares for the response to a new request (head_request: it was a HEAD, no body follows).
  void reset(bool head_request = false);

  // Parses bytes of the current response. done: complete (leftover() bytes followed it in this
  // feed); error: the response is malformed (error_detail() says why). After done, stopped or
  // error, further feeds return the same status until reset().
  [[nodiscard]] parse_status feed(std::span<const char> bytes, response_sink& sink);
  // The upstream closed its side: done for a close-delimited body, error otherwise.
  [[nodiscard]] parse_status feed_eof();

  // Any byte of this response (interim responses included) has arrived since reset().
  [[nodiscard]] bool received_any() const;
  [[nodiscard]] bool head_done() const;
  // Bytes that followed the end of the response in the feed that completed it.
  [[nodiscard]] size_t leftover() const;
  [[nodiscard]] std::string_view error_detail() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace sluice::net
