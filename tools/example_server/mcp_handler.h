#pragma once
// The example server's HTTP handler: MCP Streamable HTTP on /mcp, the /_calls test hook and
// /healthz. One handler per shard; everything shared between shards is in server_state.

#include <memory>
#include <string_view>

#include "engine/shard.h"
#include "net/http_server.h"
#include "tools/example_server/call_log.h"
#include "tools/example_server/session_registry.h"

namespace sluice::example {

inline constexpr std::string_view kServerName = "sluice-example-server";

struct server_options {
  bool sse = false;  // answer every JSON-RPC response as a one-event text/event-stream
};

// Shared by all shards: sessions and the call log synchronize themselves.
struct server_state {
  server_state(unsigned shards, server_options opts) : calls(shards), options(opts) {}
  session_registry sessions;
  call_log calls;
  const server_options options;
};

[[nodiscard]] std::unique_ptr<net::request_handler> make_mcp_handler(engine::shard& shard,
                                                                     server_state& state);

}  // namespace sluice::example
