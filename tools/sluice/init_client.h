#pragma once
// A minimal MCP client for `sluice init`: connect, `initialize`, `notifications/initialized`,
// then `tools/list` following `nextCursor` to the end. Two transports: Streamable HTTP
// (Boost.Beast, kept inside init_client.cc) and stdio (a child process speaking
// newline-delimited JSON-RPC). Every step has a deadline; every failure is a message.

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "tools/sluice/init_classify.h"
#include "tools/sluice/init_policy.h"

namespace sluice::init {

inline constexpr std::string_view kProtocolVersion = "2025-06-18";

struct client_options {
  std::chrono::milliseconds timeout{10'000};  // each network or process step
  size_t max_pages = 100;                     // tools/list pages before giving up
  bool verbose = false;                       // trace messages on stderr
};

struct server_listing {
  server_facts server;
  std::vector<tool_info> tools;  // in the order the server listed them
};

// `url`: http://HOST[:PORT][/PATH]. False with `error` set on any failure.
[[nodiscard]] bool list_tools_http(const std::string& url, const client_options& opts,
                                   server_listing& out, std::string& error);

// `command` runs under /bin/sh -c in its own process group; on the way out its stdin is
// closed, then the group gets SIGTERM, then SIGKILL.
[[nodiscard]] bool list_tools_command(const std::string& command, const client_options& opts,
                                      server_listing& out, std::string& error);

}  // namespace sluice::init
