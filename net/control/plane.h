#pragma once
// The control plane: one thread (Boost.Asio, behind a pimpl so that Asio and Beast stay out
// of this header) that serves the admin API, the metrics and the dashboard, reloads the
// policy, keeps the approval queue and writes the audit log. It never blocks a shard and
// talks to shards only through what is here:
//
//  - shard_port (one per shard, on its own cache lines): counters the shard writes and the
//    control thread reads relaxed; an audit ring and an approval queue shard -> control;
//    an approval-verdict queue control -> shard (then shard::wake()).
//  - the published policy: a version number the shards read once per loop iteration and,
//    when it moved, the shared_ptr itself (a short lock taken only then, never per request).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "engine/spsc_queue.h"
#include "net/control/audit.h"
#include "net/control/metrics.h"

namespace sluice::engine {
class shard;
}
namespace sluice::policy {
class compiled_policy;
}

namespace sluice::control {

inline constexpr unsigned kMaxShards = 1024;

// A call parked for a human's decision, as the control thread lists it.
struct approval_request {
  uint64_t id = 0;
  int64_t since_wall_ns = 0;
  std::string tool, arguments, grant, session;  // arguments: the raw JSON object ("" if none)
  bool gone = false;  // the agent went away: drop the listing (nothing else is set)
};

enum class approval_outcome : uint8_t { approve, deny, timeout };

struct approval_verdict {
  uint64_t id = 0;
  approval_outcome what = approval_outcome::deny;
  std::string reason;
};

// Shard <-> control thread. The shard writes `metrics` and produces into `audit` and
// `approvals_out`; the control thread consumes those and produces into `approvals_in`.
struct alignas(64) shard_port {
  explicit shard_port(size_t audit_capacity) : audit(audit_capacity) {}
  shard_metrics metrics;
  engine::spsc_queue<audit_record> audit;
  engine::spsc_queue<approval_request> approvals_out{1024};
  engine::spsc_queue<approval_verdict> approvals_in{1024};
  std::atomic<engine::shard*> shard{nullptr};  // set while attached, for wake()
};

struct plane_options {
  // Admin server: empty host = none. Port 0 picks a free one (see admin_port()).
  std::string admin_host;
  uint16_t admin_port = 0;
  std::string admin_token;   // required when admin_host is set: the bearer token
  std::string audit_path;    // empty: no audit file
  std::string policy_path;   // reloaded on SIGHUP, on a change (inotify) and on POST; may be
                             // empty when only servers have policies
  bool watch_policy = true;  // inotify on policy_path and every server's policy file
  // Several servers behind the gateway: {name, policy file}, in the gateway's order. Every
  // reload loads the top-level policy and all of these; if any fails to load, none of them is
  // published (all or nothing), so the servers never decide with a mix of old and new files.
  std::vector<std::pair<std::string, std::string>> server_policies;
  std::chrono::milliseconds approval_timeout{300'000};
  // Per-tool approval timeouts ("tool" -> ms), checked before approval_timeout.
  std::vector<std::pair<std::string, std::chrono::milliseconds>> tool_approval_timeouts;
  size_t max_approvals = 1024;  // waiting calls per shard; beyond: denied at once
  size_t audit_ring = 8192;     // records per shard ring
  bool approvals = true;        // park require_approval calls (else answer them refused)
  // --cluster: the limits hub's Redis round trips, shown in /metrics; null: no cluster.
  std::shared_ptr<const cluster_metrics> cluster;
};

class plane {
 public:
  plane(plane_options options, std::shared_ptr<const policy::compiled_policy> initial,
        std::vector<std::shared_ptr<const policy::compiled_policy>> initial_servers = {});
  plane(const plane&) = delete;
  plane& operator=(const plane&) = delete;
  ~plane();  // stop()s

  // Binds the admin server, opens the audit log, starts the thread. False with `error`.
  [[nodiscard]] bool start(std::string& error);
  // The shards serve: /readyz answers 200 from now on.
  void set_ready(bool ready);
  // Any thread: reload the policy file on the control thread (`why` names the trigger).
  void request_reload(std::string_view why);
  // Any thread: reopen the audit log (SIGUSR1 does it too).
  void request_reopen();
  // Any thread, on shutdown before the shards drain: every waiting call is denied with
  // `reason`, so that draining does not wait for humans.
  void refuse_waiting(std::string_view reason);
  // After the shards have stopped: drains every audit ring into the file, flushes, joins.
  void stop();

  [[nodiscard]] uint16_t admin_port() const;
  [[nodiscard]] const plane_options& options() const { return options_; }
  [[nodiscard]] bool audit_enabled() const { return !options_.audit_path.empty(); }

  // Shard side (its own thread).
  [[nodiscard]] shard_port& attach(unsigned shard_id, engine::shard& s);
  void detach(unsigned shard_id);
  [[nodiscard]] uint64_t policy_version() const {
    return policy_version_.load(std::memory_order_acquire);
  }
  // The current policy; takes a short lock: call only when policy_version() moved.
  [[nodiscard]] std::shared_ptr<const policy::compiled_policy> current_policy() const;
  // The servers' policies of the same version, in options().server_policies order; the same
  // short lock.
  [[nodiscard]] std::vector<std::shared_ptr<const policy::compiled_policy>>
  current_server_policies() const;

  // Control thread: publishes a new policy (version + 1), with the servers' policies, and
  // wakes every shard.
  void publish(std::shared_ptr<const policy::compiled_policy> p,
               std::vector<std::shared_ptr<const policy::compiled_policy>> servers = {});
  [[nodiscard]] shard_port* port_at(unsigned i) const {
    return ports_[i].load(std::memory_order_acquire);
  }

  struct impl;

 private:
  plane_options options_;
  std::atomic<shard_port*> ports_[kMaxShards] = {};
  std::atomic<uint64_t> policy_version_{1};
  mutable std::mutex policy_mu_;  // guards policy_: taken on publish and on adoption only
  std::shared_ptr<const policy::compiled_policy> policy_;
  std::vector<std::shared_ptr<const policy::compiled_policy>> server_policies_;
  std::unique_ptr<impl> impl_;
};

// Blocks SIGUSR1 (audit reopen) in the calling thread; call before any thread starts, next
// to engine::block_shutdown_signals(), so that the control thread alone receives it.
void block_control_signals();

// For the main thread's signal loop: SIGHUP asks `p` to reload the policy and returns 0 (wait
// again); any other signal (or no plane) is returned as it is.
int reload_on_hangup(plane* p, int sig);

// Reads an admin token file: the token on its first line (surrounding whitespace dropped).
// False with `error` ("FILE: ...") when it cannot be read or holds no token.
bool read_token_file(const std::string& path, std::string& token, std::string& error);

// The approval id's shard: ids are (shard << 40) | sequence.
inline unsigned approval_shard(uint64_t id) {
  return static_cast<unsigned>(id >> 40);
}

}  // namespace sluice::control
