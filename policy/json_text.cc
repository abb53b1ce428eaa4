#include "policy/json_text.h"

#include <cstdint>
#include <cstring>

#include "policy/swar.h"

namespace sluice::policy {

namespace {

// Whether any of the eight bytes of x must be escaped inside a JSON string: a control byte
// (< 0x20), '"' or '\'. Bytes >= 0x80 (UTF-8) never must.
bool any_to_escape(uint64_t x) {
  return (swar::below(x, 0x20) | swar::equal(x, '"') | swar::equal(x, '\\')) != 0;
}

}  // namespace

void append_json_escaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  if (s.empty()) return;
  size_t run = 0;  // start of the current run of bytes that need no escape
  size_t i = 0;
  uint64_t x;
  while (i < s.size()) {
    // Eight bytes at a time while none needs an escape: answers and audit lines are mostly
    // names, rules and reasons with none at all.
    if (i + 8 <= s.size()) {
      std::memcpy(&x, s.data() + i, 8);
      if (!any_to_escape(x)) {
        i += 8;
        continue;
      }
    } else if (s.size() >= 8) {
      // Fewer than eight left: the last eight bytes, overlapping ones already checked. With
      // none to escape, the run goes to the end in one append.
      std::memcpy(&x, s.data() + s.size() - 8, 8);
      if (!any_to_escape(x)) break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    ++i;
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - 1 - run);
    run = i;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default: {
        const char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out.append(u, sizeof u);
      }
    }
  }
  out.append(s.data() + run, s.size() - run);
}

}  // namespace sluice::policy
