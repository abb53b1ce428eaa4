#pragma once
// Private to net/control: the control thread's state. Includes Boost.Asio; include it only
// from net/control/*.cc.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <deque>
#include <map>
#include <thread>

#include "net/control/plane.h"
#include "net/grants.h"

namespace sluice::control {

namespace asio = boost::asio;

struct approval_entry {
  approval_request req;
  unsigned shard = 0;
  std::chrono::steady_clock::time_point deadline;
  int64_t timeout_ms = 0;
};

struct recent_refusal {
  int64_t time_ns = 0;
  uint8_t verdict = 0;
  std::string tool, reason, rule, grant;
};

struct reload_outcome {
  bool ok = true;
  std::string source;               // "start", "SIGHUP", "inotify", "api"
  std::vector<std::string> errors;  // "file: /pointer: message"
  int64_t time_ns = 0;
  uint64_t version = 1;
};

struct plane::impl {
  explicit impl(plane& p) : owner(p), tick(ioc), reload_debounce(ioc), sigfd(ioc), inotify(ioc) {}

  plane& owner;
  asio::io_context ioc;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor;
  asio::steady_timer tick;
  asio::steady_timer reload_debounce;
  asio::posix::stream_descriptor sigfd;
  asio::posix::stream_descriptor inotify;
  // Watched policy files: the watch descriptor of the file's directory and the file's name.
  std::vector<std::pair<int, std::string>> watched;
  std::thread thread;
  std::atomic<bool> ready{false};
  std::atomic<bool> running{false};
  uint16_t bound_port = 0;
  net::sha256_digest token_digest{};

  // Control-thread state.
  std::map<uint64_t, approval_entry> approvals;
  std::deque<recent_refusal> recent;  // newest last, at most kRecent
  static constexpr size_t kRecent = 50;
  audit_file audit;
  uint64_t audit_dropped_reported = 0;
  uint64_t audit_write_errors = 0;
  uint64_t audit_reopens = 0;
  reload_outcome last_reload;
  uint64_t reloads_ok = 0, reloads_failed = 0;
  std::map<std::string, std::pair<uint64_t, uint64_t>> reloads_by_source;  // ok, failed
  int64_t started_ns = 0;

  // The tick drains the shards' rings every kTick while they carry something (or an audit
  // file is written); when they stay empty it doubles, up to kIdleTick, so that a quiet gateway
  // does not wake its CPUs a hundred times a second. The first record ends the back-off.
  std::chrono::milliseconds tick_interval{10};
  void arm_tick();
  bool on_tick();         // true: there was work (or an audit file keeps the tick short)
  size_t drain_shards();  // audit rings and approval queues; returns the entries taken
  void expire_approvals();
  bool decide_approval(uint64_t id, approval_outcome what, std::string reason);
  reload_outcome reload(std::string_view source);
  void arm_signals();
  void arm_inotify();
  void accept();
  void log(const std::string& line);
  bool all_adopted(uint64_t version) const;
  // admin_http.cc
  void serve(asio::ip::tcp::socket s);
  std::string metrics_text();
  std::string stats_json();
  std::string approvals_json();
};

std::string_view dashboard_html();

}  // namespace sluice::control
