#pragma once
// The `sluice` subcommands. Each takes the arguments after its name and returns the
// process exit code.

#include <span>
#include <string_view>

namespace sluice::cli {

int run_check(std::span<char* const> args);
int run_eval(std::span<char* const> args);
int run_serve(std::span<char* const> args);
int run_hash_token(std::span<char* const> args);
int run_init(std::span<char* const> args);
int run_bench(std::span<char* const> args);

// Parses an RFC 3339 time ("2026-11-25T10:00:00Z", "2026-11-25T10:00:00.250+01:00") into
// nanoseconds since the Unix epoch. Returns false when the text is not one.
bool parse_rfc3339(std::string_view text, int64_t& ns);

}  // namespace sluice::cli
