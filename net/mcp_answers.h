#pragma once
// The answers Sluice writes itself: JSON-RPC errors, policy denials in the shape agents
// read (what PolicyLayer does), and decision-service bodies. All append to a caller-owned
// string whose capacity is reused: no allocation per answer once warm.

#include <string>
#include <string_view>

#include "policy/decider.h"
#include "policy/json_text.h"

namespace sluice::net {

// JSON-RPC error codes Sluice uses for its own answers (docs/gateway.md lists them).
inline constexpr int kErrorDenied = -32010;            // deny (--deny-as-error, or not a tool)
inline constexpr int kErrorRateLimited = -32011;       // rate_limited
inline constexpr int kErrorApprovalRequired = -32012;  // approval_required
inline constexpr int kErrorHeaderMismatch = -32020;    // Mcp-Method / Mcp-Name disagree with body
inline constexpr int kErrorUpstream = -32030;          // upstream down, slow or garbled
inline constexpr int kErrorNoEndpoint = -32040;        // no MCP endpoint at this path (404)
inline constexpr int kErrorBadPath = -32041;           // a refused path spelling (400)
inline constexpr int kErrorNoSession = -32001;         // session not found (404), the SDKs' code

using policy::append_json_string;

// {"jsonrpc":"2.0","id":ID,"error":{"code":C,"message":M}}; `id` is the raw token as the
// client sent it, or empty for null.
void append_rpc_error(std::string& out, std::string_view id, int code, std::string_view message);

// The answer to a call the policy did not allow. A tools/call gets a result with
// isError:true and the text "[POLICY DENIED] <reason>" (the model reads why), the decision
// in _meta; other methods, or every call when `as_error`, get a JSON-RPC error.
void append_denial(std::string& out, std::string_view id, const policy::decision& d,
                   bool is_tool_call, bool as_error);

// {"decision":..,"tool":..,"rule":..,"reason":..[,"retry_after":s]} for POST /v1/decide.
void append_decision_body(std::string& out, const policy::decision& d);

// Seconds to wait, rounded up, for Retry-After (at least 1).
int64_t retry_after_seconds(int64_t ns);

}  // namespace sluice::net
