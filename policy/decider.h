#pragma once
// The decision core: one MCP message (or batch) plus an identity plus the time in,
// a decision out. No sockets, no threads, no clock of its own: it is what `sluice eval`
// runs offline and what every shard runs inline.

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "policy/compiled_policy.h"
#include "policy/jsonrpc.h"
#include "policy/limiter.h"

namespace sluice::policy {

enum class verdict : uint8_t { allow, deny, rate_limited, approval_required, invalid };

std::string_view to_string(verdict v);

// Who is calling: the grant their token maps to, and their MCP session (may be empty).
struct identity {
  std::string_view grant;
  std::string_view session;
};

struct decision {
  verdict what = verdict::allow;
  std::string_view tool;              // tool name / resource URI / prompt name, unescaped
  std::string_view rule;              // rule id: the JSON pointer of the deciding rule ("" if none)
  std::string_view reason;            // what the agent is told
  int64_t retry_after_ns = 0;         // rate_limited: time until a slot frees up
  rpc_error error = rpc_error::none;  // invalid: the JSON-RPC error code to answer with
  // Slots taken in the limiter (allow only), for release().
  uint32_t taken_begin = 0, taken_count = 0;
  // rate_limited because this shard's lease is used up while the process-wide budget may
  // still have room (a lease_limiter answered wait): decide the same body again after the
  // limiter's next grant. Never set with a limiter_shard (`sluice eval`, one shard alone).
  bool wait = false;
};

struct body_decision {
  bool batch = false;
  // The body's verdict: for a batch, the first element that is not allowed (then no
  // element is forwarded and no element keeps a rate-limit slot), else allow.
  decision overall;
  std::span<const decision> each;  // one per message, in order (empty if the body is invalid)
  // overall.wait: nothing of the body holds a slot; a caller that can park it decides it
  // again later, any other caller answers the rate_limited verdict it carries.
  [[nodiscard]] bool wait() const { return overall.wait; }
};

class decider {
 public:
  decider(std::shared_ptr<const compiled_policy> policy, limiter& limiter,
          reader_limits limits = {});

  // Adopts a new policy; call between two decisions. Counters live in the limiter and
  // are keyed by counter name, so they carry over.
  void set_policy(std::shared_ptr<const compiled_policy> policy) { policy_ = std::move(policy); }
  const compiled_policy& policy() const { return *policy_; }

  // Reads and decides one body. `body` needs SIMDJSON_PADDING readable bytes past its end.
  // Views in the result (and in reader()) live until the next call. Does not allocate
  // once warm.
  const body_decision& decide(std::string_view body, const identity& who, int64_t now_ns);

  // The limiter requests an allowed decision took; valid until the next decide(). A caller
  // that answers later copies them and gives them back with limiter_shard::release().
  std::span<const limit_request> taken(const decision& d) const {
    return {taken_.data() + d.taken_begin, d.taken_count};
  }

  // Gives back the slots an allowed decision of the current body took (the upstream never
  // served the call: connection failure, timeout, 5xx).
  void release(const decision& d);
  // The same for every decision of the current body; a second call gives back nothing.
  void release_all();
  // The `now` the current body was decided at (the window its slots were taken in).
  int64_t decided_at() const { return taken_at_ns_; }

  const message_reader& reader() const { return reader_; }

 private:
  decision decide_one(const message& m, const identity& who, int64_t now_ns);
  decision decide_rule(const compiled_rule& r, const message& m, const identity& who,
                       int64_t now_ns);

  std::shared_ptr<const compiled_policy> policy_;
  limiter& limiter_;
  message_reader reader_;
  body_decision result_;
  std::vector<decision> decisions_;
  std::vector<limit_request> taken_;  // limiter requests of the current body's decisions
  int64_t taken_at_ns_ = 0;
  std::string key_buf_;
};

}  // namespace sluice::policy
