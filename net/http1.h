#pragma once
// HTTP/1.1 request model and response formatting (no Boost includes here: this header is
// included widely; Beast lives only in net/http1_parser.cc).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace sluice::net {

struct http_header {
  std::string_view name;
  std::string_view value;
};

// Limits, each with a sane default. Over a limit the client gets the status in parentheses with
// Connection: close; other connections are unaffected.
struct http_limits {
  size_t max_header_bytes = 8 * 1024;                // request line + headers (431)
  size_t max_body_bytes = 1024 * 1024;               // (413)
  std::chrono::milliseconds header_timeout{10'000};  // from a request's first byte (408)
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive idle: close silently
  uint32_t max_connections = 10'000;                 // per shard (503)
  uint32_t max_pipelined = 64;  // requests awaiting an answer per connection (then close)
  // Back-pressure: bytes queued for a client (not yet taken by its socket) over which Sluice
  // stops reading that client's requests and the upstream answers it relays to it, until the
  // client has taken them all.
  size_t max_output_bytes = 1024 * 1024;
  // A client that has not taken its queued output this long after reading stopped is cut off.
  std::chrono::milliseconds send_timeout{60'000};
};

inline constexpr size_t kMaxHeaders = 64;  // more header lines: 431

// A parsed request. Every view points into the receive buffer or a per-connection buffer and is
// valid only during request_handler::on_request; copy what must outlive it.
struct http_request {
  std::string_view method;
  std::string_view target;
  unsigned version = 11;  // 10 or 11
  bool keep_alive = true;
  std::string_view content_type;
  std::string_view accept;
  std::string_view origin;
  std::string_view authorization;
  std::string_view mcp_session_id;
  std::string_view mcp_protocol_version;
  std::string_view last_event_id;
  std::string_view mcp_method;
  std::string_view mcp_name;
  std::string_view connection;
  std::string_view host;
  bool expect_continue = false;          // HTTP/1.1 with "Expect: 100-continue"
  std::span<const http_header> headers;  // all header lines, in order (for forwarding)
  // Contiguous body. At least 64 readable bytes (SIMDJSON_PADDING) follow body.end(): in place
  // in the provided receive buffer (which has that slack) or in a padded per-connection buffer.
  std::string_view body;
};

// The value of the first header named `name` (ASCII case-insensitive: names are tokens); ""
// when there is none.
[[nodiscard]] std::string_view header_value(std::span<const http_header> headers,
                                            std::string_view name);

// Whether s is an RFC 9110 token (5.6.2): one or more tchars (a header name, a method).
[[nodiscard]] bool is_token(std::string_view s);

// ASCII case-insensitive equality (header names, tokens, media types).
[[nodiscard]] bool ascii_iequals(std::string_view a, std::string_view b);

// What a request's Content-Type says about reading its body as JSON.
enum class json_body_type : uint8_t {
  json,      // application/json, with no charset or charset UTF-8
  not_json,  // another media type, or none
  not_utf8,  // application/json naming another charset, or parameters that do not parse
};
// "application/json" (any case) with optional parameters (RFC 9110 8.3.1: token or
// quoted-string values). JSON is UTF-8 (RFC 8259), and Sluice decides on the body's bytes as
// UTF-8. Some servers decode a body in whatever charset the client names (Express's
// express.json(), which the MCP SDK's createMcpExpressApp() uses, reads charset=utf-7, where
// "+AC8-" is "/"), so they would read another message than the one decided: any other
// charset, and parameters that cannot be read for sure, are not_utf8.
[[nodiscard]] json_body_type classify_json_content_type(std::string_view content_type);
// Only the parameters part of that check, for any media type: false when content_type's
// parameters name a charset other than UTF-8 or do not parse. "" is fine.
[[nodiscard]] bool charset_is_utf8(std::string_view content_type);

// "OK", "Not Found", ...; "Unknown" for codes not in the table.
[[nodiscard]] std::string_view reason_phrase(int status);

// Whether s holds a CR or an LF byte (a header value that would split a message we write).
// Eight bytes per step: cheaper than memchr twice on values a few dozen bytes long.
[[nodiscard]] bool has_cr_or_lf(std::string_view s);

// Fixed-header response formatting, used by response_slot. Does not allocate.
struct response_head {
  int status = 200;
  std::string_view content_type;  // omitted when empty
  std::span<const http_header> extra;
  bool close = false;              // "Connection: close"
  bool keep_alive_header = false;  // "Connection: keep-alive" (HTTP/1.0 clients)
  // CORS for a browser page of this origin (omitted when empty): Access-Control-Allow-Origin,
  // Access-Control-Expose-Headers (the MCP session headers) and Vary: Origin.
  std::string_view cors_origin;
};
// Bytes needed by format_response for this head and a body of body_size bytes.
[[nodiscard]] size_t response_size(const response_head& head, size_t body_size);
// Writes status line, headers (with Content-Length) and body; returns bytes written.
size_t format_response(char* out, const response_head& head, std::string_view body);
// Head of a response whose body of `length` bytes follows later (relayed as it arrives):
// status line, headers and Content-Length. Needs response_size(head, 0) bytes.
size_t format_sized_head(char* out, const response_head& head, uint64_t length);
// Head of a chunked (or, for HTTP/1.0, close-delimited) streaming response.
[[nodiscard]] size_t stream_head_size(const response_head& head);
size_t format_stream_head(char* out, const response_head& head, bool chunked);

}  // namespace sluice::net
