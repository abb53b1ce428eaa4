#pragma once
// stdio sessions across shards. A stdio session's process lives on the shard that received its
// `initialize` (net/stdio_upstream.h), and its Mcp-Session-Id ends with "-<that shard's id>".
// A later request of the session may arrive on any shard (SO_REUSEPORT spreads connections):
// that shard checks, decides and counts it against the policy exactly as for any upstream —
// once — and only then hands the forwarding to the owning shard, which writes it to the
// process without deciding anything; the answer comes back the same way and is relayed (and
// tools/list filtered) by the receiving shard, whose forward object owns the downstream slot.
//
// The hand-over is in process, not over a socket: each shard has an inbox (a vector behind a
// mutex, swapped out whole by its owner once per loop iteration) and is woken with
// engine::shard::wake() after a post. The mutex is taken only by relayed stdio traffic (a post,
// a swap), never by HTTP upstreams or by a session served on its own shard; stdio servers
// answer in microseconds to seconds, so a short lock here is not the bottleneck. A forged
// session id can only pick the shard that looks the id up: it then gets that shard's 404, as
// an unknown id does on one shard.
//
// stdio_router is the upstream_client a route uses for a stdio upstream: the shard's own
// stdio_upstream for new sessions and its own sessions, the relay for the others.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/shard.h"
#include "net/stdio_upstream.h"
#include "net/upstream.h"

namespace sluice::net {

struct relay_message {
  // hold / release: the requesting shard's client is slow (upstream_client::hold_answer).
  enum class kind : uint8_t { request, cancel, hold, release, head, body, end, error };
  kind what = kind::request;
  uint16_t route = 0;  // which route's stdio upstream (gateway route index)
  unsigned from = 0;   // the posting shard
  uint64_t id = 0;     // the exchange, as the requesting shard numbered it
  // request: method, headers, body. head: status, content_type, session_id, protocol_version,
  // streaming. body: body. error: error, body (the detail).
  std::string method;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int status = 0;
  std::string content_type, session_id, protocol_version;
  bool streaming = false;
  upstream_error error = upstream_error::reset;
};

class stdio_relay_hub {
 public:
  explicit stdio_relay_hub(unsigned shards);
  stdio_relay_hub(const stdio_relay_hub&) = delete;
  stdio_relay_hub& operator=(const stdio_relay_hub&) = delete;

  [[nodiscard]] unsigned shards() const { return shards_; }
  // The shard's thread, when its gateway starts / ends.
  void attach(unsigned id, engine::shard& s);
  void detach(unsigned id);
  // Any shard's thread: queues m for shard `to` and wakes it. False (m dropped) when `to` is
  // not attached (it has stopped).
  bool post(unsigned to, relay_message m);
  // Shard id's thread: swaps everything queued for it into `out` (cleared first), in order.
  void take(unsigned id, std::vector<relay_message>& out);

 private:
  struct alignas(64) inbox {
    std::mutex mu;
    std::vector<relay_message> queue;
    engine::shard* shard = nullptr;  // guarded by mu
  };
  unsigned shards_;
  std::unique_ptr<inbox[]> boxes_;
};

// The shard id a stdio session id names ("...-<id>"); -1 when it names none of `shards`.
[[nodiscard]] int session_owner(std::string_view session_id, unsigned shards);

class stdio_router final : public upstream_client {
 public:
  stdio_router(engine::shard& shard, uint16_t route, std::shared_ptr<stdio_relay_hub> hub,
               stdio_options options);
  ~stdio_router() override;
  stdio_router(const stdio_router&) = delete;
  stdio_router& operator=(const stdio_router&) = delete;

  // New sessions and this shard's sessions: the local stdio_upstream. Another shard's session:
  // posted to it; the callbacks come from on_message() later, never from inside send().
  [[nodiscard]] uint64_t send(const upstream_request& req, upstream_exchange* ex) override;
  void cancel(uint64_t handle) override;
  // This shard's sessions: held as stdio_upstream holds them. Another shard's: the hold is
  // posted to it (what it had already read and posted still arrives).
  void hold_answer(uint64_t handle, bool hold) override;
  // Stops the local processes; relayed exchanges still waiting get no more callbacks.
  void shutdown() override;

  // A message of this route from the hub (the gateway takes its shard's inbox once per loop
  // iteration and hands each message to the route it names).
  void on_message(relay_message& m);

  // Once per loop iteration, after the messages: frees the proxies whose exchange is over
  // (never inside one of their callbacks).
  void collect();

  [[nodiscard]] stdio_upstream& local() { return local_; }

 private:
  struct proxy;  // an exchange this shard runs for another shard
  friend struct proxy;
  struct outgoing {
    upstream_exchange* ex = nullptr;  // null: free
    unsigned owner = 0;               // the shard it was posted to
    uint32_t gen = 0;
  };
  static constexpr uint64_t kRelayed = uint64_t(1) << 63;  // handle bit: a relayed exchange

  engine::shard& shard_;
  uint16_t route_;
  std::shared_ptr<stdio_relay_hub> hub_;
  stdio_upstream local_;
  // The relayed exchange a handle names (kRelayed set), or null when it is over or stale.
  outgoing* relayed(uint64_t handle);
  // A message from this shard about exchange `id` of this route.
  relay_message message(relay_message::kind k, uint64_t id) const;
  std::vector<outgoing> out_;
  std::vector<uint32_t> free_out_;
  std::map<std::pair<unsigned, uint64_t>, std::unique_ptr<proxy>> proxies_;
  bool shut_ = false;
  bool dirty_ = false;  // a proxy is over: collect() has work
};

}  // namespace sluice::net
