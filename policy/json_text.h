#pragma once
// Writing JSON text: string escaping shared by every module that formats JSON by hand
// (answers, audit lines, generated policies). Appends to a caller-owned string, so a
// reused buffer does not allocate once warm, or writes into a buffer the caller sized.

#include <string>
#include <string_view>

namespace sluice::policy {

// Appends `s` escaped for the inside of a JSON string (no quotes): `"`, `\` and control
// characters escaped; every other byte as it is (the input is UTF-8).
void append_json_escaped(std::string& out, std::string_view s);

// The same escaping into a caller-sized buffer, for text formatted in place (an answer
// written straight into a connection's output): json_escaped_size(s) bytes, then
// put_json_escaped writes exactly that many at p and returns the end.
[[nodiscard]] size_t json_escaped_size(std::string_view s);
char* put_json_escaped(char* p, std::string_view s, size_t escaped_size);

// Appends `s` as a JSON string literal, quotes included.
inline void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  append_json_escaped(out, s);
  out.push_back('"');
}

}  // namespace sluice::policy
