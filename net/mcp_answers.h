#pragma once
// The answers Sluice writes itself: JSON-RPC errors, policy denials in the shape agents
// read (what PolicyLayer does), and decision-service bodies. They append to a caller-owned
// string whose capacity is reused (no allocation per answer once warm), or, for the decision
// service's body, are written straight into a connection's output.

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

// The body of a POST /v1/decide answer, sized before it is written so that it can be formatted
// straight into a connection's output: {"decision":..,"tool":..,"rule":..,"reason":..} plus
// ,"retry_after":SECONDS when rate_limited, or ,"error":{"code":..,"message":REASON} when
// invalid. Holds views of the decision's strings: use it while they live.
class decision_body {
 public:
  explicit decision_body(const policy::decision& d);
  [[nodiscard]] size_t size() const { return size_; }
  char* put(char* p) const;  // writes size() bytes at p, returns the end

 private:
  static constexpr std::string_view kRule = R"(","rule":")";
  static constexpr std::string_view kReason = R"(","reason":")";
  static constexpr std::string_view kMessage = R"(,"message":")";
  const policy::decision& d_;
  std::string_view start_;       // {"decision":"VERDICT","tool":"
  size_t tool_, rule_, reason_;  // escaped sizes
  char extra_[48];               // the retry time or the error code, formatted
  size_t extra_len_ = 0;
  size_t size_ = 0;
};

// The same body appended to a string.
void append_decision_body(std::string& out, const policy::decision& d);

// Seconds to wait, rounded up, for Retry-After (at least 1).
int64_t retry_after_seconds(int64_t ns);

}  // namespace sluice::net
