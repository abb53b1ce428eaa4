#include "policy/json_text.h"

#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "policy/short_bytes.h"

namespace sluice::policy {

namespace {

#if defined(__SSE2__)
// Whether any of the sixteen bytes of v must be escaped inside a JSON string: a control byte
// (< 0x20), '"' or '\\'. Bytes >= 0x80 (UTF-8) never must.
bool any_to_escape(__m128i v) {
  const __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
  const __m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
  const __m128i backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
  return _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash))) != 0;
}

__m128i load16(const char* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}
__m128i load8(const char* p) {
  return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
}
#endif

}  // namespace

size_t json_escaped_size(std::string_view s) {
  const char* const d = s.data();
  const size_t n = s.size();
  size_t i = 0;  // bytes before i need no escape
#if defined(__SSE2__)
  // Sixteen bytes at a time while none needs an escape (answers and audit lines are mostly
  // names, rules and reasons with none at all). The last step overlaps the one before it; a
  // string of 8 to 16 bytes is one step of two overlapping halves. Never reads outside s.
  if (n >= 8 && n <= 16) {
    if (!any_to_escape(_mm_unpacklo_epi64(load8(d), load8(d + n - 8)))) return n;
  } else if (n > 16) {
    for (; i + 16 <= n; i += 16)
      if (any_to_escape(load16(d + i))) break;
    if (i == n || (i + 16 > n && !any_to_escape(load16(d + n - 16)))) return n;
  }
#endif
  size_t size = n;
  for (; i < n; ++i) {
    const auto c = static_cast<unsigned char>(d[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    size += c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' ? 1 : 5;
  }
  return size;
}

char* put_json_escaped(char* p, std::string_view s, size_t escaped_size) {
  static constexpr char kHex[] = "0123456789abcdef";
  if (escaped_size == s.size()) return put_short(p, s);  // nothing to escape: one copy
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c != '"' && c != '\\') {
      *p++ = ch;
      continue;
    }
    *p++ = '\\';
    switch (c) {
      case '"':
        *p++ = '"';
        break;
      case '\\':
        *p++ = '\\';
        break;
      case '\n':
        *p++ = 'n';
        break;
      case '\r':
        *p++ = 'r';
        break;
      case '\t':
        *p++ = 't';
        break;
      default:
        p[0] = 'u';
        p[1] = '0';
        p[2] = '0';
        p[3] = kHex[c >> 4];
        p[4] = kHex[c & 15];
        p += 5;
    }
  }
  return p;
}

void append_json_escaped(std::string& out, std::string_view s) {
  const size_t n = json_escaped_size(s);
  if (n == s.size()) {
    out.append(s);
    return;
  }
  const size_t at = out.size();
  out.resize(at + n);
  put_json_escaped(out.data() + at, s, n);
}

}  // namespace sluice::policy
