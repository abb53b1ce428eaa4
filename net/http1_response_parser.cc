#include "net/http1_response_parser.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__SSSE3__)
#include <tmmintrin.h>
#endif

#include "engine/byte_buffer.h"

// Where this parser deliberately differs from the Beast-based one it replaced (the
// differential test in tests/net/http1_response_parser_test.cc allows exactly these):
// - accepts "HTTP/1.1 200\r\n" (no SP, no reason: RFC 9112 4 allows an empty reason, servers
//   drop the SP); Beast needed the SP.
// - ignores chunk extensions beyond checking their bytes (Beast parsed their grammar, and an
//   unclosed quote made it wait for more); refuses control bytes in them (Beast took any
//   byte inside quotes).
// - does not interpret trailer fields (Beast refused Content-Length or Transfer-Encoding
//   there); refuses obs-fold in trailers and after an empty value (Beast let those through).
// - Content-Length is 1*DIGIT up to INT64_MAX: "5, 5" lists are refused, and so are values
//   Beast took up to UINT64_MAX (content_length would have wrapped negative).
// - HTTP/1.0 with both "keep-alive" and "close" is not kept alive (Beast kept it).
// - limits a chunk-size line to 4 KiB and the trailer section to 64 KiB (Beast: none).

namespace sluice::net {

namespace {

// ---- character classes: one table lookup per byte ----

enum : uint8_t {
  kTchar = 1,  // RFC 9110 token character (field names, Connection options)
  kText = 2,   // allowed in a field value, reason phrase or chunk extension: HTAB, SP, VCHAR,
               // obs-text (0x80-0xFF); not CR, LF, NUL, DEL or another control
};

constexpr std::array<uint8_t, 256> make_classes() {
  std::array<uint8_t, 256> t{};
  constexpr std::string_view kTokenPunct = "!#$%&'*+-.^_`|~";
  for (int c = 0; c < 256; ++c) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    uint8_t v = 0;
    if (alnum || (c < 128 && kTokenPunct.find(char(c)) != std::string_view::npos)) v |= kTchar;
    if (c == '\t' || (c >= 0x20 && c != 0x7f)) v |= kText;
    t[size_t(c)] = v;
  }
  return t;
}
constexpr std::array<uint8_t, 256> kClass = make_classes();

constexpr std::array<int8_t, 256> make_hex() {
  std::array<int8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    int v = -1;
    if (c >= '0' && c <= '9') v = c - '0';
    if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    t[size_t(c)] = int8_t(v);
  }
  return t;
}
constexpr std::array<int8_t, 256> kHexValue = make_hex();

inline bool is_tchar(char c) {
  return (kClass[uint8_t(c)] & kTchar) != 0;
}
inline bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

#if defined(__SSSE3__)
// Byte b is a tchar iff kTcharLow[b & 15] has bit (b >> 4) set (tchars are all below 0x80).
constexpr std::array<uint8_t, 16> make_tchar_low() {
  std::array<uint8_t, 16> t{};
  for (int c = 0; c < 128; ++c)
    if ((kClass[size_t(c)] & kTchar) != 0) t[size_t(c & 15)] |= uint8_t(1u << (c >> 4));
  return t;
}
alignas(16) constexpr std::array<uint8_t, 16> kTcharLow = make_tchar_low();
alignas(16) constexpr std::array<uint8_t, 16> kTcharHigh = {1, 2, 4, 8, 16, 32, 64, 128};
#endif

// The first byte of [p, end) that is not a tchar (the ':' after a well-formed name), or end.
// Sixteen bytes at a time (two nibble lookups) while that many remain in the buffer.
inline const char* scan_token(const char* p, const char* end) {
#if defined(__SSSE3__)
  const __m128i low = _mm_load_si128(reinterpret_cast<const __m128i*>(kTcharLow.data()));
  const __m128i high = _mm_load_si128(reinterpret_cast<const __m128i*>(kTcharHigh.data()));
  const __m128i nibble = _mm_set1_epi8(0x0f);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i bits =
        _mm_and_si128(_mm_shuffle_epi8(low, _mm_and_si128(v, nibble)),
                      _mm_shuffle_epi8(high, _mm_and_si128(_mm_srli_epi16(v, 4), nibble)));
    const auto other = unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(bits, _mm_setzero_si128())));
    if (other != 0) return p + __builtin_ctz(other);
    p += 16;
  }
#endif
  while (p < end && is_tchar(*p))
    ++p;
  return p;
}

// The first byte of [p, end) that is not kText (a CR for a well-formed line), or end. Sixteen
// bytes at a time while that many remain in the buffer, even when the line is shorter.
inline const char* scan_text(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i k1f = _mm_set1_epi8(0x1f);
  const __m128i kDel = _mm_set1_epi8(0x7f);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Unsigned v <= 0x1f, or v == 0x7f.
    const __m128i ctl =
        _mm_or_si128(_mm_cmpeq_epi8(_mm_max_epu8(v, k1f), k1f), _mm_cmpeq_epi8(v, kDel));
    auto mask = unsigned(_mm_movemask_epi8(ctl));
    while (mask != 0) {
      const char* q = p + __builtin_ctz(mask);
      if (*q != '\t') return q;
      mask &= mask - 1;
    }
    p += 16;
  }
#endif
  while (p < end && (kClass[uint8_t(*p)] & kText) != 0)
    ++p;
  return p;
}

inline uint64_t load8(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint32_t load4(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// s[0, lit.size()) equals lit ASCII case-insensitively. lit (4 or more bytes) is lower-case
// letters and '-'; s has no control bytes (a token or a field value). OR-ing 0x20 into a byte
// maps it to a lower-case letter only from that letter in either case, and to '-' only from
// '-' or CR (never in s): a word compare is exact.
inline bool iequals_lower(const char* s, std::string_view lit) {
  const size_t n = lit.size();
  if (n >= 8) {
    constexpr uint64_t k20 = 0x2020202020202020ull;
    for (size_t i = 0; i + 8 < n; i += 8)
      if ((load8(s + i) | k20) != load8(lit.data() + i)) return false;
    return (load8(s + n - 8) | k20) == load8(lit.data() + n - 8);
  }
  constexpr uint32_t k20 = 0x20202020u;
  return (load4(s) | k20) == load4(lit.data()) &&
         (load4(s + n - 4) | k20) == load4(lit.data() + n - 4);
}

// Header names the parser acts on, told apart by length first.
enum class known_field : uint8_t {
  other,
  content_type,
  content_length,
  transfer_encoding,
  connection,  // and Proxy-Connection, as Beast (and so the previous parser) treated it
  mcp_session_id,
  mcp_protocol_version,
};

known_field classify(std::string_view name) {
  const char* s = name.data();
  switch (name.size()) {
    case 10:
      if (iequals_lower(s, "connection")) return known_field::connection;
      break;
    case 12:
      if (iequals_lower(s, "content-type")) return known_field::content_type;
      break;
    case 14:
      if (iequals_lower(s, "content-length")) return known_field::content_length;
      if (iequals_lower(s, "mcp-session-id")) return known_field::mcp_session_id;
      break;
    case 16:
      if (iequals_lower(s, "proxy-connection")) return known_field::connection;
      break;
    case 17:
      if (iequals_lower(s, "transfer-encoding")) return known_field::transfer_encoding;
      break;
    case 20:
      if (iequals_lower(s, "mcp-protocol-version")) return known_field::mcp_protocol_version;
      break;
    default:
      break;
  }
  return known_field::other;
}

// Content-Length = 1*DIGIT (no sign, no list, no inner spaces), at most INT64_MAX.
bool parse_content_length(std::string_view v, int64_t& out) {
  if (v.empty()) return false;
  constexpr uint64_t kMax = uint64_t(INT64_MAX);
  const bool short_enough = v.size() <= 18;  // below 10^18: no overflow check per digit
  uint64_t n = 0;
  for (char c : v) {
    const unsigned d = unsigned(uint8_t(c)) - '0';
    if (d > 9) return false;
    if (!short_enough && (n > kMax / 10 || n * 10 > kMax - d)) return false;
    n = n * 10 + d;
  }
  out = int64_t(n);
  return true;
}

// Connection = #connection-option (RFC 9110 7.6.1): tokens separated by commas and OWS, empty
// elements allowed. Sets close / keep_alive for those options; false if malformed.
bool parse_connection(std::string_view v, bool& close, bool& keep_alive) {
  const char* p = v.data();
  const char* const end = p + v.size();
  bool need_comma = false;
  while (p < end) {
    const char c = *p;
    if (is_ows(c)) {
      ++p;
    } else if (c == ',') {
      need_comma = false;
      ++p;
    } else if (is_tchar(c) && !need_comma) {
      const char* t = p;
      while (p < end && is_tchar(*p))
        ++p;
      const size_t n = size_t(p - t);
      if (n == 5 && iequals_lower(t, "close")) close = true;
      if (n == 10 && iequals_lower(t, "keep-alive")) keep_alive = true;
      need_comma = true;
    } else {
      return false;
    }
  }
  return true;
}

// A prefix (fewer than 13 bytes) of "HTTP/1.x DDD": the status line may still be well-formed.
bool status_prefix_ok(const char* p, size_t n) {
  constexpr std::string_view kHttp = "HTTP/1.";
  for (size_t i = 0; i < n; ++i) {
    const char c = p[i];
    bool ok;
    if (i < 7) {
      ok = c == kHttp[i];
    } else if (i == 7) {
      ok = c == '0' || c == '1';
    } else if (i == 8) {
      ok = c == ' ';
    } else {
      ok = c >= '0' && c <= '9';
    }
    if (!ok) return false;
  }
  return true;
}

// Bound on a chunk-size line (size, extensions; CRLF excluded). Extensions are ignored; real
// ones are a few bytes, and without a bound a hostile upstream could send one forever.
constexpr size_t kMaxChunkLine = 4096;

// Error details (static strings: error_detail() returns a view of one).
constexpr std::string_view kHeadTooBig = "upstream response head over 64 KiB";
constexpr std::string_view kBadStatusLine = "malformed upstream status line";
constexpr std::string_view kBareCr = "bare CR or LF in upstream response";
constexpr std::string_view kObsFold = "obsolete line folding in upstream response header";
constexpr std::string_view kNoColon = "upstream response header line without ':'";
constexpr std::string_view kBadFieldName = "malformed upstream response header name";
constexpr std::string_view kSpaceBeforeColon = "whitespace before ':' in upstream response header";
constexpr std::string_view kBadFieldValue = "control character in upstream response header";
constexpr std::string_view kTooManyFields = "too many upstream response headers";
constexpr std::string_view kBadLength = "invalid Content-Length in upstream response";
constexpr std::string_view kTwoLengths = "conflicting Content-Length in upstream response";
constexpr std::string_view kLengthAndChunked =
    "both Content-Length and Transfer-Encoding in upstream response";
constexpr std::string_view kBadCoding = "unsupported Transfer-Encoding";
constexpr std::string_view kBadConnection = "malformed Connection header in upstream response";
constexpr std::string_view kBadChunkSize = "malformed chunk size in upstream response";
constexpr std::string_view kChunkOverflow = "chunk size overflow in upstream response";
constexpr std::string_view kBadChunkExt = "malformed chunk extension in upstream response";
constexpr std::string_view kChunkLineTooLong = "chunk size line over 4 KiB in upstream response";
constexpr std::string_view kNoCrlfAfterChunk =
    "chunk data not followed by CRLF in upstream response";
constexpr std::string_view kBadTrailer = "malformed trailer in upstream response";
constexpr std::string_view kTrailerObsFold = "obsolete line folding in upstream response trailer";
constexpr std::string_view kTrailersTooBig = "upstream response trailers over 64 KiB";

}  // namespace

struct http1_response_parser::impl {
  enum class state : uint8_t {
    head,              // a response head (interim or final) is next
    length,            // Content-Length body: remaining_ bytes to go
    until_eof,         // close-delimited body
    chunk_size_first,  // first hex digit of a chunk-size line
    chunk_size,        // more digits, BWS, ';' or CR
    chunk_bws,         // whitespace after the size: ';' must follow
    chunk_ext,         // extensions (ignored) up to CR
    chunk_size_lf,     // LF ending the chunk-size line
    chunk_data,        // remaining_ bytes of chunk data
    chunk_data_cr,     // the CRLF after chunk data
    chunk_data_lf,
    trailer_line,    // start of a trailer line, or the CR of the empty line ending them
    trailer_name,    // token up to ':'
    trailer_value,   // up to CR
    trailer_lf,      // LF ending a trailer line
    trailer_end_lf,  // LF of the empty line: the response is complete
    complete,
  };
  enum class head_parse : uint8_t { complete, incomplete, error };

  // ---- the head ----

  // Parses the head starting at begin (status line to empty line) in [begin, end). complete:
  // head_end is past its empty line. incomplete: end came first, and so no "\r\n\r\n" is in
  // [begin, end) (the accumulation path relies on it). Fills head_ and headers_.
  head_parse parse_head(const char* const begin, const char* const end, const char*& head_end) {
    head_ = http_response{};
    nheaders_ = 0;
    chunked_ = conn_close_ = conn_keep_alive_ = false;
    const auto avail = size_t(end - begin);
    if (avail < 13)
      return status_prefix_ok(begin, avail) ? head_parse::incomplete : fail(kBadStatusLine);
    // status-line = HTTP-version SP 3DIGIT [SP reason-phrase] CRLF
    const uint64_t version = load8(begin);
    if (version == load8("HTTP/1.1")) {
      head_.version = 11;
    } else if (version == load8("HTTP/1.0")) {
      head_.version = 10;
    } else {
      return fail(kBadStatusLine);
    }
    const unsigned d0 = unsigned(uint8_t(begin[9])) - '0';
    const unsigned d1 = unsigned(uint8_t(begin[10])) - '0';
    const unsigned d2 = unsigned(uint8_t(begin[11])) - '0';
    if (begin[8] != ' ' || d0 > 9 || d1 > 9 || d2 > 9) return fail(kBadStatusLine);
    const char* p = begin + 12;
    if (*p == ' ') {
      const char* r = scan_text(++p, end);
      head_.reason = std::string_view(p, size_t(r - p));
      p = r;
    }
    if (p == end) return head_parse::incomplete;
    if (*p != '\r') return fail(*p == '\n' ? kBareCr : kBadStatusLine);
    if (p + 1 == end) return head_parse::incomplete;
    if (p[1] != '\n') return fail(kBareCr);
    p += 2;
    head_.status = int(d0 * 100 + d1 * 10 + d2);
    if (head_.status == 101) return fail("upstream answered 101 Switching Protocols");
    // 000 or 999 would reach the agent as a status line.
    if (head_.status < 100 || head_.status > 599) {
      return fail("upstream answered an invalid status code");
    }

    // field-line = field-name ":" OWS field-value OWS CRLF
    for (;;) {
      if (p == end) return head_parse::incomplete;
      if (*p == '\r') {
        if (p + 1 == end) return head_parse::incomplete;
        if (p[1] != '\n') return fail(kBareCr);
        head_end = p + 2;
        return head_parse::complete;
      }
      const char* name = p;
      p = scan_token(p, end);
      if (p == end) return head_parse::incomplete;
      if (*p != ':') {
        // (A first field line starting with SP or HTAB: folded onto the status line.)
        if (is_ows(*p)) return fail(p == name ? kObsFold : kSpaceBeforeColon);
        return fail(*p == '\r' ? kNoColon : *p == '\n' ? kBareCr : kBadFieldName);
      }
      if (p == name) return fail(kBadFieldName);
      const auto name_len = size_t(p - name);
      const char* value = ++p;
      p = scan_text(p, end);
      if (p == end) return head_parse::incomplete;
      if (*p != '\r') return fail(*p == '\n' ? kBareCr : kBadFieldValue);
      if (p + 1 == end) return head_parse::incomplete;
      if (p[1] != '\n') return fail(kBareCr);
      // Trim OWS: in checked text, the only bytes up to SP are SP and HTAB.
      const char* value_end = p;
      while (value < value_end && uint8_t(*value) <= ' ')
        ++value;
      while (value_end > value && uint8_t(value_end[-1]) <= ' ')
        --value_end;
      p += 2;
      // A line starting with SP or HTAB continues this one (obs-fold): refused, like the
      // server side does (RFC 9112 5.2 lets a proxy refuse it with a 502). Checked before the
      // field is interpreted, so that the error says what is wrong.
      if (p < end && is_ows(*p)) return fail(kObsFold);
      if (nheaders_ == kMaxResponseHeaders) return fail(kTooManyFields);
      const std::string_view n(name, name_len);
      const std::string_view v(value, size_t(value_end - value));
      headers_[nheaders_++] = {n, v};
      if (!on_field(n, v)) return head_parse::error;
    }
  }

  bool on_field(std::string_view name, std::string_view value) {
    switch (classify(name)) {
      case known_field::other:
        return true;
      case known_field::content_type:
        head_.content_type = value;
        return true;
      case known_field::mcp_session_id:
        head_.mcp_session_id = value;
        return true;
      case known_field::mcp_protocol_version:
        head_.mcp_protocol_version = value;
        return true;
      case known_field::content_length: {
        int64_t n = 0;
        if (!parse_content_length(value, n)) return fail_field(kBadLength);
        if (chunked_) return fail_field(kLengthAndChunked);
        // Identical duplicates are accepted (RFC 9110 8.6 allows it, and Beast did); different
        // ones could frame the body two ways.
        if (head_.content_length >= 0 && head_.content_length != n) return fail_field(kTwoLengths);
        head_.content_length = n;
        return true;
      }
      case known_field::transfer_encoding:
        // Only exactly "chunked": we relay de-chunked bytes, so a coding we do not undo (gzip,
        // lists) would reach the client mislabelled. A second "chunked" is a list too.
        if (value.size() != 7 || !iequals_lower(value.data(), "chunked") || chunked_) {
          return fail_field(kBadCoding);
        }
        // Both: refused, as Beast did (RFC 9112 6.3 lets the length be ignored instead, but
        // such an answer is a smuggling attempt or a broken upstream).
        if (head_.content_length >= 0) return fail_field(kLengthAndChunked);
        chunked_ = true;
        return true;
      case known_field::connection:
        if (!parse_connection(value, conn_close_, conn_keep_alive_)) {
          return fail_field(kBadConnection);
        }
        return true;
    }
    return true;
  }

  // A complete head was parsed: skips it if interim, else sets the framing and hands it to the
  // sink. False: the sink stopped the exchange.
  bool finish_head() {
    if (head_.status < 200) {
      state_ = state::head;  // 100 Continue, 102, 103: skipped, the final response follows
      return true;
    }
    head_.chunked = chunked_;
    if (head_request_ || head_.status == 204 || head_.status == 304) {
      // Content-Length (kept in content_length) and Transfer-Encoding describe what the answer
      // would have been; no body follows.
      state_ = state::complete;
    } else if (head_.content_length >= 0) {
      head_.has_body = head_.content_length > 0;
      remaining_ = uint64_t(head_.content_length);
      state_ = head_.has_body ? state::length : state::complete;
    } else if (chunked_) {
      head_.has_body = true;
      state_ = state::chunk_size_first;
    } else {
      head_.has_body = true;
      head_.close_delimited = true;
      state_ = state::until_eof;
    }
    // HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive" (and no "close").
    head_.keep_alive =
        !head_.close_delimited && !conn_close_ && (head_.version == 11 || conn_keep_alive_);
    head_.headers = std::span<const http_header>(headers_.data(), nheaders_);
    head_done_ = true;
    return sink_->on_response_head(head_);
  }

  // ---- the body ----

  bool deliver(const char* p, size_t n) {
    return n == 0 || sink_->on_response_body(std::string_view(p, n));
  }

  // Chunk-size lines, the CRLF after chunk data and the trailer section: a few bytes per
  // chunk, taken one at a time. Stops at end, where chunk data starts (state chunk_data) or
  // where the response ends (state complete). nullptr: malformed (detail_ says why).
  const char* chunk_framing(const char* p, const char* const end) {
    while (p < end) {
      const char c = *p;
      switch (state_) {
        case state::chunk_size_first: {
          const int d = kHexValue[uint8_t(c)];
          if (d < 0) return fail_at(kBadChunkSize);
          remaining_ = uint64_t(d);
          line_len_ = 1;
          state_ = state::chunk_size;
          ++p;
          break;
        }
        case state::chunk_size: {
          if (++line_len_ > kMaxChunkLine) return fail_at(kChunkLineTooLong);
          const int d = kHexValue[uint8_t(c)];
          if (d >= 0) {
            if ((remaining_ >> 60) != 0) return fail_at(kChunkOverflow);
            remaining_ = (remaining_ << 4) | uint64_t(d);
          } else if (c == '\r') {
            state_ = state::chunk_size_lf;
          } else if (c == ';') {
            state_ = state::chunk_ext;
          } else if (is_ows(c)) {
            state_ = state::chunk_bws;
          } else {
            return fail_at(c == '\n' ? kBareCr : kBadChunkSize);
          }
          ++p;
          break;
        }
        case state::chunk_bws:
          if (++line_len_ > kMaxChunkLine) return fail_at(kChunkLineTooLong);
          if (c == ';') {
            state_ = state::chunk_ext;
          } else if (!is_ows(c)) {
            return fail_at(kBadChunkExt);
          }
          ++p;
          break;
        case state::chunk_ext: {
          // chunk-ext is ignored: only its bytes are checked (text, no bare CR or LF).
          const char* q = scan_text(p, end);
          line_len_ += size_t(q - p);
          if (line_len_ > kMaxChunkLine) return fail_at(kChunkLineTooLong);
          p = q;
          if (p == end) return p;
          if (*p != '\r') return fail_at(kBadChunkExt);
          state_ = state::chunk_size_lf;
          ++p;
          break;
        }
        case state::chunk_size_lf:
          if (c != '\n') return fail_at(kBareCr);
          ++p;
          if (remaining_ != 0) {
            state_ = state::chunk_data;
            return p;
          }
          state_ = state::trailer_line;  // the last chunk: trailers (not relayed) follow
          line_len_ = 0;
          break;
        case state::chunk_data_cr:
          if (c != '\r') return fail_at(kNoCrlfAfterChunk);
          state_ = state::chunk_data_lf;
          ++p;
          break;
        case state::chunk_data_lf:
          if (c != '\n') return fail_at(kNoCrlfAfterChunk);
          state_ = state::chunk_size_first;
          ++p;
          break;
        default:
          p = trailers(p, end);
          if (p == nullptr || state_ == state::complete) return p;
          break;
      }
    }
    return p;
  }

  // The trailer section: field lines checked like header lines, then discarded. Stops at end or
  // where the response ends (state complete).
  const char* trailers(const char* p, const char* const end) {
    const char* const start = p;
    while (p < end && state_ != state::complete) {
      const char c = *p;
      switch (state_) {
        case state::trailer_line:
          if (c == '\r') {
            state_ = state::trailer_end_lf;
          } else if (is_tchar(c)) {
            state_ = state::trailer_name;
          } else {
            return fail_at(is_ows(c) ? kTrailerObsFold : c == '\n' ? kBareCr : kBadTrailer);
          }
          ++p;
          break;
        case state::trailer_name:
          p = scan_token(p, end);
          if (p == end) break;
          if (*p != ':') return fail_at(*p == '\n' ? kBareCr : kBadTrailer);
          state_ = state::trailer_value;
          ++p;
          break;
        case state::trailer_value:
          p = scan_text(p, end);
          if (p == end) break;
          if (*p != '\r') return fail_at(*p == '\n' ? kBareCr : kBadTrailer);
          state_ = state::trailer_lf;
          ++p;
          break;
        case state::trailer_lf:
        case state::trailer_end_lf:
          if (c != '\n') return fail_at(kBareCr);
          state_ = state_ == state::trailer_lf ? state::trailer_line : state::complete;
          ++p;
          break;
        default:
          return fail_at(kBadTrailer);  // not a trailer state: cannot happen
      }
    }
    line_len_ += size_t(p - start);
    if (line_len_ > kMaxResponseHead) return fail_at(kTrailersTooBig);
    return p;
  }

  // ---- driving ----

  // Parses [p, end), the caller's bytes (accum_ holds no pending head).
  parse_status run(const char* p, const char* const end) {
    for (;;) {
      switch (state_) {
        case state::head: {
          if (p == end) return status_;
          // A head over the limit is refused without scanning past it.
          const char* const limit = size_t(end - p) > kMaxResponseHead ? p + kMaxResponseHead : end;
          const char* head_end = nullptr;
          const head_parse r = parse_head(p, limit, head_end);
          if (r == head_parse::error) return set(parse_status::error);
          if (r == head_parse::incomplete) {
            if (limit != end) return fail_status(kHeadTooBig);
            // It straddles feeds: keep it; later feeds only search for its end.
            accum_.append(p, size_t(end - p));
            scanned_ = accum_.size();
            return status_;
          }
          p = head_end;
          if (!finish_head()) return set(parse_status::stopped);
          break;
        }
        case state::length:
        case state::chunk_data: {
          const auto n = size_t(std::min<uint64_t>(remaining_, uint64_t(end - p)));
          remaining_ -= n;
          if (!deliver(p, n)) return set(parse_status::stopped);
          p += n;
          if (remaining_ != 0) return status_;
          state_ = state_ == state::length ? state::complete : state::chunk_data_cr;
          break;
        }
        case state::until_eof:
          if (!deliver(p, size_t(end - p))) return set(parse_status::stopped);
          return status_;
        case state::complete:
          leftover_ = size_t(end - p);
          return set(parse_status::done);
        default:
          p = chunk_framing(p, end);
          if (p == nullptr) return set(parse_status::error);
          if (p == end && state_ != state::complete) return status_;
          break;
      }
    }
  }

  // accum_ holds the start of a head; [p, end) continues it. Searches only the new bytes (and
  // the three before them) for the head's end, then parses the head in accum_. Returns where
  // the response continues in [p, end), or nullptr when status_ says what happened.
  const char* continue_head(const char* p, const char* const end) {
    const size_t old = accum_.size();
    const size_t take = std::min(size_t(end - p), kMaxResponseHead - old);
    accum_.append(p, take);
    const std::string_view all = accum_.view();
    const size_t at = all.find("\r\n\r\n", scanned_ >= 3 ? scanned_ - 3 : 0);
    if (at == std::string_view::npos) {
      if (take < size_t(end - p)) {
        fail_status(kHeadTooBig);
      } else {
        scanned_ = accum_.size();
      }
      return nullptr;
    }
    const size_t head_len = at + 4;
    const char* head_end = nullptr;
    const head_parse r = parse_head(all.data(), all.data() + head_len, head_end);
    if (r != head_parse::complete) {
      // incomplete cannot happen: the range ends with the empty line.
      assert(r == head_parse::error);
      if (r == head_parse::incomplete) detail_ = kBadStatusLine;
      set(parse_status::error);
      return nullptr;
    }
    const bool go_on = finish_head();
    accum_.clear();  // the head's views were used only during the sink call
    if (!go_on) {
      set(parse_status::stopped);
      return nullptr;
    }
    return p + (head_len - old);
  }

  parse_status feed(std::span<const char> bytes, response_sink& sink) {
    if (status_ != parse_status::need_more || bytes.empty()) return status_;
    received_ = true;
    sink_ = &sink;
    const char* p = bytes.data();
    const char* const end = p + bytes.size();
    if (!accum_.empty()) {
      p = continue_head(p, end);
      if (p == nullptr) return status_;
    }
    return run(p, end);
  }

  parse_status feed_eof() {
    if (status_ != parse_status::need_more) return status_;
    if (state_ == state::until_eof) return set(parse_status::done);
    detail_ = received_ ? "upstream closed the connection mid-response"
                        : "upstream closed the connection before answering";
    return set(parse_status::error);
  }

  void reset(bool head_request) {
    accum_.clear();
    state_ = state::head;
    head_request_ = head_request;
    head_done_ = false;
    received_ = false;
    status_ = parse_status::need_more;
    leftover_ = 0;
    detail_ = {};
    scanned_ = 0;
  }

  // ---- status ----

  head_parse fail(std::string_view detail) {
    detail_ = detail;
    return head_parse::error;
  }
  bool fail_field(std::string_view detail) {
    detail_ = detail;
    return false;
  }
  const char* fail_at(std::string_view detail) {
    detail_ = detail;
    return nullptr;
  }
  parse_status fail_status(std::string_view detail) {
    detail_ = detail;
    return set(parse_status::error);
  }
  parse_status set(parse_status s) {
    status_ = s;
    if (s != parse_status::need_more) accum_.clear();
    return s;
  }

  http_response head_;
  std::array<http_header, kMaxResponseHeaders> headers_{};
  size_t nheaders_ = 0;
  uint64_t remaining_ = 0;     // body bytes to go (Content-Length, chunk data); a chunk's size
  size_t line_len_ = 0;        // bytes of the chunk-size line, or of the trailer section
  engine::byte_buffer accum_;  // a head that straddles feeds
  size_t scanned_ = 0;         // bytes of accum_ already searched for the head's end
  response_sink* sink_ = nullptr;
  std::string_view detail_;  // static strings only
  size_t leftover_ = 0;
  parse_status status_ = parse_status::need_more;
  state state_ = state::head;
  bool head_request_ = false;
  bool head_done_ = false;
  bool received_ = false;
  // Of the head being parsed.
  bool chunked_ = false;
  bool conn_close_ = false;
  bool conn_keep_alive_ = false;
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
