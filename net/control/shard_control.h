#pragma once
// The shard's side of the control plane (net/control/plane.h), used only from the shard's
// thread: counts and audits decisions, adopts published policies between two loop
// iterations, and holds calls that wait for a human's approval until the control thread
// hands their verdict over.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "engine/clock.h"
#include "net/control/plane.h"
#include "net/http1.h"
#include "net/http_server.h"
#include "policy/decider.h"

namespace sluice::engine {
class shard;
}

namespace sluice::control {

// A call parked for approval: copies of what forwarding it needs, bytes as they arrived.
struct held_call {
  uint64_t id = 0;
  net::response_slot slot;
  bool sse = false;  // the answer began as an SSE stream ("awaiting approval" sent)
  std::string rpc_id, tool, rule, grant, session;
  std::string server;  // the server of several it was sent to; empty: the top level
  std::string method, target, content_type, accept, protocol_version, last_event_id, mcp_method,
      mcp_name;
  std::string body;  // plus SIMDJSON_PADDING bytes
  size_t body_size = 0;

  [[nodiscard]] net::http_request request() const;
};

class shard_control {
 public:
  // What the gateway does with an approved call: forward it as it arrived (answering on
  // c.slot; when c.sse, the answer is already a begun SSE stream). False when it cannot
  // (no upstream): the call is then answered with an error here.
  class sink {
   public:
    virtual bool forward_approved(held_call& c) = 0;

   protected:
    ~sink() = default;
  };

  shard_control(std::shared_ptr<plane> p, engine::shard& s, bool deny_as_error);
  shard_control(const shard_control&) = delete;
  shard_control& operator=(const shard_control&) = delete;
  ~shard_control();

  // Once per loop iteration: adopts a newly published policy into `d` (and the servers'
  // policies into `servers`, in plane_options::server_policies order), answers approval
  // verdicts, refreshes the gauges (`upstream`: this shard's HTTP pools). Does not allocate
  // unless a verdict arrived or a policy was published.
  void on_loop(policy::decider& d, std::span<policy::decider* const> servers, sink& s,
               size_t limiter_keys, const upstream_gauges& upstream);

  // Whether the gateway should time the next decision: every one when an audit file is
  // written (each line carries its latency), else one in eight, the first included. The
  // latency histogram is a sample: two clock reads per decision were a few percent of a
  // pipelined decision's cost.
  [[nodiscard]] bool time_next_decision() { return audit_file_ || (untimed_++ & 7u) == 0; }

  // Counts a decided body (and audits it). latency_ns < 0: not timed. `server`: 0 for the
  // top-level policy, i + 1 for the i-th of several servers, named `server_name`. Does not
  // allocate once warm.
  void record(const policy::decider& d, const policy::body_decision& bd,
              const policy::identity& who, std::string_view body, int64_t latency_ns,
              uint16_t server = 0, std::string_view server_name = {});

  // A refused single tools/call whose verdict is approval_required: park it (the shard
  // goes on serving). False when approvals are off or too many calls wait: answer it now.
  [[nodiscard]] bool park_for_approval(const policy::decider& d, const policy::body_decision& bd,
                                       const net::http_request& req, net::response_slot slot,
                                       const policy::identity& who,
                                       std::string_view server_name = {});

  // Upstream counters: an exchange sent, its head arrived (status, time since sent on the
  // shard's loop clock, engine::shard::now_ns: exact to one loop iteration), failed.
  void upstream_sent() { m_.upstream_requests.add(); }
  // Back-pressure: reading stopped for a slow client; a client cut off by the send timeout.
  void client_held() { m_.client_holds.add(); }
  void client_send_timeout() { m_.client_send_timeouts.add(); }
  void upstream_head(int status, int64_t sent_ns);
  void upstream_failed(uint8_t error);

  [[nodiscard]] shard_metrics& metrics() { return m_; }
  [[nodiscard]] size_t held() const { return held_.size(); }

 private:
  // Raw params.arguments of message i of the body ("" if none); progress token likewise.
  void scan(std::string_view body, bool batch, size_t count);
  void push_audit(audit_record& r);
  void answer_refused(held_call& c, std::string_view reason, std::string_view rule);

  std::shared_ptr<plane> plane_;
  engine::shard& shard_;
  unsigned id_;
  shard_port& port_;
  shard_metrics& m_;
  bool deny_as_error_;
  bool audit_file_;
  uint32_t untimed_ = 0;  // decisions since start, for time_next_decision()
  uint64_t seen_version_ = 0;
  uint64_t next_seq_ = 1;
  std::vector<std::unique_ptr<held_call>> held_, held_free_;
  simdjson::ondemand::parser parser_;
  std::vector<std::string_view> args_, progress_;
  audit_record rec_;
  std::string out_;
};

// Writes a whole JSON answer as one SSE `message` event on a begun stream, and ends it.
void finish_as_sse_event(net::response_slot& slot, std::string_view json);

// The time a decision took, from a steady clock read before and after: what the gateway
// passes to record(). A vDSO call.
using engine::steady_ns;

}  // namespace sluice::control
