#pragma once
// Minimal JSON writing for the command line's outputs: escaping and a line builder.

#include <string>
#include <string_view>

namespace sluice::cli {

// Appends `s` as a JSON string literal (quotes included) to `out`.
void append_json_string(std::string& out, std::string_view s);

}  // namespace sluice::cli
