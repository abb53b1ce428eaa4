#pragma once
// The gateway: MCP Streamable HTTP in front of an upstream server, and the decision
// service. One gateway_shard per engine shard; it owns that shard's decider, its port to the
// limits hub (its lease_limiter), its upstream pool, its parked calls and answer buffers, and
// is used only from the shard's thread.

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/grants.h"
#include "net/http_server.h"
#include "net/limit_hub.h"
#include "net/stdio_relay.h"
#include "net/stdio_upstream.h"
#include "net/upstream.h"
#include "policy/compiled_policy.h"
#include "policy/jsonrpc.h"
#include "policy/limiter.h"

namespace sluice::control {
class plane;
}

namespace sluice::net {

// One of several servers behind the gateway (`servers` in sluice serve's --config): its own
// upstream, policy, limit counters and tools/list filter, served at `/servers/<name>/mcp`.
struct server_settings {
  std::string name;  // [A-Za-z0-9_-]+
  std::string path;  // "/servers/<name>/mcp", matched exactly (net/request_path.h)
  bool has_upstream = false;
  upstream_target upstream;
  stdio_options upstream_stdio;               // argv set: a stdio upstream instead
  std::vector<std::string> upstream_headers;  // "Name: value", this server's requests only
};

struct gateway_settings {
  // false: no top-level policy (only `servers`): mcp_path and decide_path answer 404.
  bool serve_main = true;
  std::string mcp_path = "/mcp";
  std::string decide_path = "/v1/decide";
  // Origins allowed besides localhost ones (http(s)://localhost, 127.0.0.1, [::1], any
  // port). A request with any other Origin header gets 403 (DNS-rebinding protection).
  std::vector<std::string> allowed_origins;
  bool deny_as_error = false;  // answer denials with JSON-RPC errors instead of isError results
  bool has_upstream = false;
  upstream_target upstream;
  upstream_options upstream_opts;
  // argv set: the upstream is a stdio server that each shard runs, one process per session
  // (net/stdio_upstream.h), reached from other shards through net/stdio_relay.h; has_upstream
  // and upstream are then unused.
  stdio_options upstream_stdio;
  std::vector<std::string> upstream_headers;  // "Name: value" lines added to every upstream request
  std::shared_ptr<const grant_table> grants;  // null: every caller is the anonymous grant
  // The key that binds session ids to grants (net/session_binding.h); none: a random one,
  // made at start, so session ids handed out by an earlier process are refused (404).
  std::optional<std::array<uint8_t, 16>> session_key;
  policy::reader_limits reader;
  policy::limiter_options limiter;
  // For the limits hub made at start when gateway_shared::limits is null: the runtime's
  // shard count (0: one per CPU of the affinity mask, as the runtime does) and the merge
  // interval.
  unsigned shards = 0;
  std::chrono::microseconds merge_interval{2000};
  // --cluster (net/cluster_redis.h): cluster.host empty = this process counts alone.
  cluster_options cluster;
  std::shared_ptr<control::cluster_metrics> cluster_metrics;
  // Calls parked per shard while they wait for lease (see docs/architecture.md); beyond it
  // a waiting call is answered rate_limited at once.
  size_t max_parked = 4096;
  // Several servers, each on its own path (server_settings); their policies are
  // gateway_shared::server_policies, in the same order.
  std::vector<server_settings> servers;
};

// What every shard shares: settings and policy, read-only once serving starts, and the
// limits hub (net/limit_hub.h): each shard counts in its own lease_limiter, reached through
// its port, and the hub moves leases between shards.
struct gateway_shared {
  gateway_settings settings;
  std::shared_ptr<const policy::compiled_policy> policy;
  // One per settings.servers entry, compiled with the server's name as counter namespace.
  std::vector<std::shared_ptr<const policy::compiled_policy>> server_policies;
  std::shared_ptr<limit_hub> limits;  // null: made (and started) from settings at start
  // stdio sessions across shards (net/stdio_relay.h); made at start when a stdio upstream is
  // served by more than one shard.
  std::shared_ptr<stdio_relay_hub> relay;
  // Metrics, audit, approvals and policy reloads (net/control/plane.h); null: none.
  std::shared_ptr<control::plane> control;
};

// The request_handler_factory for net::http_server.
request_handler_factory make_gateway_factory(std::shared_ptr<gateway_shared> shared);

}  // namespace sluice::net
