#include "net/http1.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <utility>

#include "policy/short_bytes.h"
#include "policy/swar.h"

namespace sluice::net {

std::string_view header_value(std::span<const http_header> headers, std::string_view name) {
  for (const http_header& h : headers) {
    if (h.name.size() != name.size()) continue;
    bool eq = true;
    for (size_t i = 0; i < name.size() && eq; ++i)
      eq = (h.name[i] | 0x20) == (name[i] | 0x20);
    if (eq) return h.value;
  }
  return {};
}

bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a == b) return true;  // the usual case (memcmp), before the byte-by-byte fold
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

namespace {

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

// RFC 9110 5.6.2 tchar.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::memchr("!#$%&'*+-.^_`|~", c, 15) != nullptr;
}

// Parameters after a media type: *( OWS ";" OWS [ name "=" ( token / quoted-string ) ] ).
// True when they parse and every charset among them is UTF-8.
bool parameters_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  for (;;) {
    while (i < n && is_ows(s[i]))
      ++i;
    if (i == n) return true;
    if (s[i++] != ';') return false;
    while (i < n && is_ows(s[i]))
      ++i;
    if (i == n || s[i] == ';') continue;  // an empty parameter
    const size_t name_at = i;
    while (i < n && is_tchar(s[i]))
      ++i;
    if (i == name_at || i == n || s[i] != '=') return false;
    const std::string_view name = s.substr(name_at, i - name_at);
    ++i;
    char value[8];  // long enough for "utf-8"; a longer charset is not UTF-8
    size_t len = 0;
    bool too_long = false;
    auto keep = [&](char c) {
      if (len < sizeof value) {
        value[len++] = c;
      } else {
        too_long = true;
      }
    };
    if (i < n && s[i] == '"') {
      for (++i;;) {
        if (i == n) return false;  // unterminated
        char c = s[i++];
        if (c == '"') break;
        if (c == '\\') {
          if (i == n) return false;
          c = s[i++];
        }
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return false;
        keep(c);
      }
    } else {
      const size_t value_at = i;
      while (i < n && is_tchar(s[i]))
        keep(s[i++]);
      if (i == value_at) return false;
    }
    if (ascii_iequals(name, "charset") &&
        (too_long || !ascii_iequals(std::string_view(value, len), "utf-8")))
      return false;
  }
}

// The media type (without trailing whitespace) and the parameters after it.
std::pair<std::string_view, std::string_view> split_media_type(std::string_view content_type) {
  std::string_view type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && is_ows(type.back()))
    type.remove_suffix(1);
  return {type, content_type.substr(type.size())};
}

}  // namespace

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

json_body_type classify_json_content_type(std::string_view content_type) {
  if (content_type == "application/json") return json_body_type::json;  // what clients send
  const auto [type, parameters] = split_media_type(content_type);
  if (!ascii_iequals(type, "application/json")) return json_body_type::not_json;
  return parameters_utf8(parameters) ? json_body_type::json : json_body_type::not_utf8;
}

bool charset_is_utf8(std::string_view content_type) {
  if (content_type == "application/json") return true;  // what clients send: no parameters
  return parameters_utf8(split_media_type(content_type).second);
}

namespace {

// The whole status line of each status Sluice answers with: one copy per answer. Empty for
// any other status.
std::string_view status_line(int status) {
  switch (status) {
    case 100:
      return "HTTP/1.1 100 Continue\r\n";
    case 200:
      return "HTTP/1.1 200 OK\r\n";
    case 201:
      return "HTTP/1.1 201 Created\r\n";
    case 202:
      return "HTTP/1.1 202 Accepted\r\n";
    case 204:
      return "HTTP/1.1 204 No Content\r\n";
    case 301:
      return "HTTP/1.1 301 Moved Permanently\r\n";
    case 302:
      return "HTTP/1.1 302 Found\r\n";
    case 304:
      return "HTTP/1.1 304 Not Modified\r\n";
    case 400:
      return "HTTP/1.1 400 Bad Request\r\n";
    case 401:
      return "HTTP/1.1 401 Unauthorized\r\n";
    case 403:
      return "HTTP/1.1 403 Forbidden\r\n";
    case 404:
      return "HTTP/1.1 404 Not Found\r\n";
    case 405:
      return "HTTP/1.1 405 Method Not Allowed\r\n";
    case 406:
      return "HTTP/1.1 406 Not Acceptable\r\n";
    case 408:
      return "HTTP/1.1 408 Request Timeout\r\n";
    case 409:
      return "HTTP/1.1 409 Conflict\r\n";
    case 411:
      return "HTTP/1.1 411 Length Required\r\n";
    case 413:
      return "HTTP/1.1 413 Content Too Large\r\n";
    case 415:
      return "HTTP/1.1 415 Unsupported Media Type\r\n";
    case 417:
      return "HTTP/1.1 417 Expectation Failed\r\n";
    case 422:
      return "HTTP/1.1 422 Unprocessable Content\r\n";
    case 429:
      return "HTTP/1.1 429 Too Many Requests\r\n";
    case 431:
      return "HTTP/1.1 431 Request Header Fields Too Large\r\n";
    case 500:
      return "HTTP/1.1 500 Internal Server Error\r\n";
    case 501:
      return "HTTP/1.1 501 Not Implemented\r\n";
    case 502:
      return "HTTP/1.1 502 Bad Gateway\r\n";
    case 503:
      return "HTTP/1.1 503 Service Unavailable\r\n";
    case 504:
      return "HTTP/1.1 504 Gateway Timeout\r\n";
    default:
      return {};
  }
}

constexpr size_t kReasonAt = 13;  // after "HTTP/1.1 200 "

}  // namespace

std::string_view reason_phrase(int status) {
  const std::string_view line = status_line(status);
  if (line.empty()) return "Unknown";
  return line.substr(kReasonAt, line.size() - kReasonAt - 2);
}

namespace {

constexpr std::string_view kVersion = "HTTP/1.1 ";
constexpr std::string_view kContentType = "Content-Type: ";
constexpr std::string_view kContentLength = "Content-Length: ";
constexpr std::string_view kClose = "Connection: close\r\n";
constexpr std::string_view kKeepAlive = "Connection: keep-alive\r\n";
constexpr std::string_view kChunked = "Transfer-Encoding: chunked\r\n";
constexpr std::string_view kAllowOrigin = "Access-Control-Allow-Origin: ";
constexpr std::string_view kCorsRest =
    "\r\nAccess-Control-Expose-Headers: Mcp-Session-Id, MCP-Protocol-Version\r\n"
    "Vary: Origin\r\n";

char* put(char* p, std::string_view s) {
  return policy::put_short(p, s);
}

size_t head_common_size(const response_head& h) {
  const std::string_view line = status_line(h.status);
  size_t n = line.empty() ? kVersion.size() + 4 + reason_phrase(h.status).size() + 2 : line.size();
  if (!h.content_type.empty()) n += kContentType.size() + h.content_type.size() + 2;
  for (const http_header& x : h.extra)
    n += x.name.size() + 2 + x.value.size() + 2;
  if (h.close) n += kClose.size();
  if (h.keep_alive_header) n += kKeepAlive.size();
  if (!h.cors_origin.empty()) n += kAllowOrigin.size() + h.cors_origin.size() + kCorsRest.size();
  return n;
}

char* put_head_common(char* p, const response_head& h) {
  if (const std::string_view line = status_line(h.status); !line.empty()) {
    p = put(p, line);
  } else {
    p = put(p, kVersion);
    int s = h.status;
    if (s < 100 || s > 999) s = 500;
    *p++ = char('0' + s / 100);
    *p++ = char('0' + s / 10 % 10);
    *p++ = char('0' + s % 10);
    *p++ = ' ';
    p = put(p, reason_phrase(h.status));
    p = put(p, "\r\n");
  }
  if (!h.content_type.empty()) {
    p = put(p, kContentType);
    p = put(p, h.content_type);
    p = put(p, "\r\n");
  }
  for (const http_header& x : h.extra) {
    p = put(p, x.name);
    p = put(p, ": ");
    p = put(p, x.value);
    p = put(p, "\r\n");
  }
  if (h.close) p = put(p, kClose);
  if (h.keep_alive_header) p = put(p, kKeepAlive);
  if (!h.cors_origin.empty()) {
    p = put(p, kAllowOrigin);
    p = put(p, h.cors_origin);
    p = put(p, kCorsRest);
  }
  return p;
}

}  // namespace

size_t response_size(const response_head& head, size_t body_size) {
  return head_common_size(head) + kContentLength.size() + 20 + 4 + body_size;
}

size_t format_response(char* out, const response_head& head, std::string_view body) {
  char* p = put_head_common(out, head);
  p = put(p, kContentLength);
  p = std::to_chars(p, p + 20, body.size()).ptr;
  p = put(p, "\r\n\r\n");
  if (!body.empty()) p = put(p, body);
  return size_t(p - out);
}

size_t format_sized_head(char* out, const response_head& head, uint64_t length) {
  char* p = put_head_common(out, head);
  p = put(p, kContentLength);
  p = std::to_chars(p, p + 20, length).ptr;
  p = put(p, "\r\n\r\n");
  return size_t(p - out);
}

size_t stream_head_size(const response_head& head) {
  return head_common_size(head) + kChunked.size() + 2;
}

size_t format_stream_head(char* out, const response_head& head, bool chunked) {
  char* p = put_head_common(out, head);
  if (chunked) p = put(p, kChunked);
  p = put(p, "\r\n");
  return size_t(p - out);
}

namespace {

bool word_has_cr_or_lf(uint64_t v) {
  return (policy::swar::equal(v, '\r') | policy::swar::equal(v, '\n')) != 0;
}

}  // namespace

bool has_cr_or_lf(std::string_view s) {
  // The last step overlaps the one before it. A byte-by-byte loop here was the top
  // user-space line of a proxied call (~570 instructions for its four headers).
  const char* p = s.data();
  const size_t n = s.size();
  if (n < 8) {
    for (size_t i = 0; i < n; ++i)
      if (p[i] == '\r' || p[i] == '\n') return true;
    return false;
  }
  uint64_t v;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    std::memcpy(&v, p + i, 8);
    if (word_has_cr_or_lf(v)) return true;
  }
  std::memcpy(&v, p + n - 8, 8);
  return word_has_cr_or_lf(v);
}

}  // namespace sluice::net
