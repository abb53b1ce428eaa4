// `sluice hash-token`: the SHA-256 of a bearer token, for a grants file. The token is read
// from standard input (not argv, which other users can see in the process list).

#include <cstdio>
#include <iostream>
#include <string>

#include "net/grants.h"
#include "tools/sluice/commands.h"

namespace sluice::cli {

int run_hash_token(std::span<char* const> args) {
  if (!args.empty()) {
    std::fputs(
        "usage: echo -n TOKEN | sluice hash-token\n"
        "Prints the SHA-256 (hex) of the token on standard input (a trailing newline is\n"
        "ignored), for the token_sha256 field of a grants file.\n",
        args[0] == std::string_view("--help") || args[0] == std::string_view("-h") ? stdout
                                                                                   : stderr);
    return args[0] == std::string_view("--help") || args[0] == std::string_view("-h") ? 0 : 2;
  }
  std::string token((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r'))
    token.pop_back();
  if (token.empty()) {
    std::fputs("sluice hash-token: no token on standard input\n", stderr);
    return 2;
  }
  std::printf("%s\n", net::to_hex(net::sha256(token)).c_str());
  return 0;
}

}  // namespace sluice::cli
