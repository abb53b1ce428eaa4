#include "net/control/plane.h"

#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "engine/clock.h"
#include "engine/shard.h"
#include "net/control/plane_impl.h"
#include "policy/compiled_policy.h"
#include "policy/loader.h"

namespace sluice::control {

namespace {

// The drain interval while the shards' rings carry records, and its bound when they do not.
// An idle interval of 50 ms fills a shard's ring (8,192 records by default) only under more
// than 160,000 refusals a second arriving all at once after a quiet spell; with an audit file
// (every decision a record) the tick stays at kTick.
constexpr auto kTick = std::chrono::milliseconds(10);
constexpr auto kIdleTick = std::chrono::milliseconds(50);

}  // namespace

void block_control_signals() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
}

int reload_on_hangup(plane* p, int sig) {
  if (sig != SIGHUP || p == nullptr) return sig;
  p->request_reload("SIGHUP");
  return 0;
}

bool read_token_file(const std::string& path, std::string& token, std::string& error) {
  FILE* f = std::fopen(path.c_str(), "re");
  if (f == nullptr) {
    error = path + ": cannot read the admin token file";
    return false;
  }
  char buf[4096];
  const size_t n = std::fread(buf, 1, sizeof buf, f);
  std::fclose(f);
  std::string_view t(buf, n);
  t = t.substr(0, t.find('\n'));
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t'))
    t.remove_prefix(1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t' || t.back() == '\r'))
    t.remove_suffix(1);
  if (t.empty()) {
    error = path + ": the admin token file is empty";
    return false;
  }
  token.assign(t);
  return true;
}

plane::plane(plane_options options, std::shared_ptr<const policy::compiled_policy> initial,
             std::vector<std::shared_ptr<const policy::compiled_policy>> initial_servers)
    : options_(std::move(options)),
      policy_(std::move(initial)),
      server_policies_(std::move(initial_servers)),
      impl_(std::make_unique<impl>(*this)) {
  impl_->last_reload.source = "start";
  impl_->last_reload.time_ns = engine::wall_ns();
  impl_->started_ns = impl_->last_reload.time_ns;
}

plane::~plane() {
  stop();
  for (auto& p : ports_)
    delete p.load(std::memory_order_relaxed);
}

shard_port& plane::attach(unsigned shard_id, engine::shard& s) {
  shard_port* p = ports_[shard_id].load(std::memory_order_acquire);
  if (p == nullptr) {
    p = new shard_port(options_.audit_ring);
    ports_[shard_id].store(p, std::memory_order_release);
  }
  p->shard.store(&s, std::memory_order_release);
  return *p;
}

void plane::detach(unsigned shard_id) {
  if (shard_port* p = ports_[shard_id].load(std::memory_order_acquire))
    p->shard.store(nullptr, std::memory_order_release);
}

std::shared_ptr<const policy::compiled_policy> plane::current_policy() const {
  std::lock_guard lock(policy_mu_);
  return policy_;
}

std::vector<std::shared_ptr<const policy::compiled_policy>> plane::current_server_policies() const {
  std::lock_guard lock(policy_mu_);
  return server_policies_;
}

void plane::publish(std::shared_ptr<const policy::compiled_policy> p,
                    std::vector<std::shared_ptr<const policy::compiled_policy>> servers) {
  {
    std::lock_guard lock(policy_mu_);
    policy_ = std::move(p);
    if (!servers.empty()) server_policies_ = std::move(servers);
    policy_version_.fetch_add(1, std::memory_order_acq_rel);
  }
  for (unsigned i = 0; i < kMaxShards; ++i) {
    shard_port* port = port_at(i);
    if (port == nullptr) continue;
    if (engine::shard* s = port->shard.load(std::memory_order_acquire)) s->wake();
  }
}

uint16_t plane::admin_port() const {
  return impl_->bound_port;
}

void plane::set_ready(bool ready) {
  impl_->ready.store(ready, std::memory_order_release);
}

void plane::request_reload(std::string_view why) {
  std::string w(why);
  asio::post(impl_->ioc, [this, w] { impl_->reload(w); });
}

void plane::request_reopen() {
  asio::post(impl_->ioc, [this] {
    if (options_.audit_path.empty()) return;  // no audit log: SIGUSR1 does nothing
    std::string error;
    ++impl_->audit_reopens;
    if (!impl_->audit.reopen(error)) {
      ++impl_->audit_write_errors;
      impl_->log("sluice: audit: reopen failed: " + error);
    } else {
      impl_->log("sluice: audit: reopened " + impl_->audit.path());
    }
  });
}

void plane::refuse_waiting(std::string_view reason) {
  std::string r(reason);
  asio::post(impl_->ioc, [this, r] {
    impl_->drain_shards();  // calls parked since the last tick
    std::vector<uint64_t> ids;
    for (const auto& [id, e] : impl_->approvals)
      ids.push_back(id);
    for (uint64_t id : ids)
      impl_->decide_approval(id, approval_outcome::deny, r);
  });
}

bool plane::start(std::string& error) {
  impl& m = *impl_;
  if (!options_.audit_path.empty() && !m.audit.open(options_.audit_path, error)) return false;
  if (!options_.admin_host.empty()) {
    if (options_.admin_token.empty()) {
      error = "the admin server needs a token (--admin-token-file)";
      return false;
    }
    m.token_digest = net::sha256(options_.admin_token);
    boost::system::error_code ec;
    const auto addr = asio::ip::make_address(options_.admin_host, ec);
    if (ec) {
      error = "admin address " + options_.admin_host + ": " + ec.message();
      return false;
    }
    asio::ip::tcp::endpoint ep(addr, options_.admin_port);
    auto acc = std::make_unique<asio::ip::tcp::acceptor>(m.ioc);
    if (acc->open(ep.protocol(), ec); !ec)
      acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      error = "admin bind " + options_.admin_host + ":" + std::to_string(options_.admin_port) +
              ": " + ec.message();
      return false;
    }
    m.bound_port = acc->local_endpoint().port();
    m.acceptor = std::move(acc);
    m.accept();
  }
  m.arm_signals();
  if (options_.watch_policy) m.arm_inotify();
  m.arm_tick();
  m.running.store(true);
  m.thread = std::thread([&m] {
    pthread_setname_np(pthread_self(), "sluice-control");
    m.ioc.run();
  });
  return true;
}

void plane::stop() {
  impl& m = *impl_;
  if (m.thread.joinable()) {
    asio::post(m.ioc, [&m] { m.ioc.stop(); });
    m.thread.join();
  }
  if (!m.running.exchange(false)) return;
  // The shards have stopped: whatever is in their rings goes to the file now.
  m.drain_shards();
  std::string error;
  if (m.audit.is_open() && !m.audit.flush(error)) m.log("sluice: audit: " + error);
  m.audit.close();
}

// ---------------------------------------------------------------------------------------------
// Control thread

void plane::impl::log(const std::string& line) {
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

void plane::impl::arm_tick() {
  tick.expires_after(tick_interval);
  tick.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    tick_interval = on_tick() ? kTick : std::min(tick_interval * 2, kIdleTick);
    arm_tick();
  });
}

bool plane::impl::on_tick() {
  const bool busy = drain_shards() != 0 || !approvals.empty() || audit.is_open();
  expire_approvals();
  std::string error;
  if (audit.is_open() && !audit.buffer().empty() && !audit.flush(error)) {
    ++audit_write_errors;
    log("sluice: audit: " + error);
  }
  return busy;
}

size_t plane::impl::drain_shards() {
  uint64_t dropped = 0;
  size_t taken = 0;
  for (unsigned i = 0; i < kMaxShards; ++i) {
    shard_port* p = owner.port_at(i);
    if (p == nullptr) continue;
    dropped += p->metrics.audit_dropped.get();
    p->audit.drain([&](audit_record& r) {
      ++taken;
      if (audit.is_open()) {
        append_audit_line(audit.buffer(), r);
        audit.count_line();
      }
      if (r.event == audit_event::decision && r.verdict != 0) {
        recent.push_back({r.time_ns, r.verdict, std::string(r.tool.view()),
                          std::string(r.reason.view()), std::string(r.rule.view()),
                          std::string(r.grant.view())});
        if (recent.size() > kRecent) recent.pop_front();
      }
    });
    p->approvals_out.drain([&](approval_request& r) {
      ++taken;
      if (r.gone) {
        approvals.erase(r.id);
        return;
      }
      approval_entry e;
      e.shard = i;
      std::chrono::milliseconds t = owner.options_.approval_timeout;
      for (const auto& [tool, ms] : owner.options_.tool_approval_timeouts)
        if (tool == r.tool) t = ms;
      e.timeout_ms = t.count();
      e.deadline = std::chrono::steady_clock::now() + t;
      e.req = std::move(r);
      approvals.emplace(e.req.id, std::move(e));
    });
  }
  if (dropped != audit_dropped_reported) {
    const uint64_t n = dropped - audit_dropped_reported;
    audit_dropped_reported = dropped;
    log("sluice: audit: " + std::to_string(n) +
        " records dropped (a shard's ring was full); total " + std::to_string(dropped));
    if (audit.is_open()) {
      std::string& b = audit.buffer();
      b += "{\"time\":\"";
      append_rfc3339(b, engine::wall_ns());
      b += "\",\"event\":\"audit_dropped\",\"dropped\":" + std::to_string(n) +
           ",\"dropped_total\":" + std::to_string(dropped) + "}\n";
    }
  }
  return taken;
}

bool plane::impl::decide_approval(uint64_t id, approval_outcome what, std::string reason) {
  auto it = approvals.find(id);
  if (it == approvals.end()) return false;
  shard_port* p = owner.port_at(it->second.shard);
  if (p == nullptr) return false;
  if (!p->approvals_in.try_push(approval_verdict{id, what, std::move(reason)})) return false;
  if (engine::shard* s = p->shard.load(std::memory_order_acquire)) s->wake();
  approvals.erase(it);
  return true;
}

void plane::impl::expire_approvals() {
  if (approvals.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::pair<uint64_t, int64_t>> due;
  for (const auto& [id, e] : approvals)
    if (e.deadline <= now) due.emplace_back(id, e.timeout_ms);
  for (const auto& [id, ms] : due)
    decide_approval(id, approval_outcome::timeout,
                    "no decision within " + std::to_string(ms) + " ms");
}

reload_outcome plane::impl::reload(std::string_view source) {
  reload_outcome out;
  out.source = source;
  out.time_ns = engine::wall_ns();
  // Every file first; publish only if all of them load (all or nothing).
  std::shared_ptr<const policy::compiled_policy> main;
  std::vector<std::shared_ptr<const policy::compiled_policy>> servers;
  std::string files;
  if (!owner.options_.policy_path.empty()) {
    policy::load_result loaded = policy::load_policy_file(owner.options_.policy_path);
    for (const policy::load_error& e : loaded.errors)
      out.errors.push_back(e.to_string());
    if (loaded.errors.empty()) main = policy::compiled_policy::compile(*loaded.policy);
    files = owner.options_.policy_path;
  } else {
    main = owner.current_policy();  // only servers have policies: the placeholder stays
  }
  for (const auto& [name, path] : owner.options_.server_policies) {
    policy::load_result loaded = policy::load_policy_file(path);
    for (const policy::load_error& e : loaded.errors)
      out.errors.push_back("server " + name + ": " + e.to_string());
    if (loaded.errors.empty())
      servers.push_back(policy::compiled_policy::compile(*loaded.policy, name));
    if (!files.empty()) files += ", ";
    files += path;
  }
  auto& counts = reloads_by_source[out.source];
  if (!out.errors.empty()) {
    out.ok = false;
    out.version = owner.policy_version();
    ++reloads_failed;
    ++counts.second;
    std::string msg = "sluice: policy reload (" + out.source + ") failed, keeping version " +
                      std::to_string(out.version) + ":";
    for (const std::string& e : out.errors)
      msg += "\n  " + e;
    log(msg);
  } else {
    owner.publish(std::move(main), std::move(servers));
    out.version = owner.policy_version();
    ++reloads_ok;
    ++counts.first;
    log("sluice: policy reloaded (" + out.source + "): version " + std::to_string(out.version) +
        " from " + files);
  }
  last_reload = out;
  return out;
}

bool plane::impl::all_adopted(uint64_t version) const {
  for (unsigned i = 0; i < kMaxShards; ++i) {
    shard_port* p = owner.port_at(i);
    if (p == nullptr || p->shard.load(std::memory_order_acquire) == nullptr) continue;
    if (p->metrics.policy_version.load(std::memory_order_relaxed) < version) return false;
  }
  return true;
}

void plane::impl::arm_signals() {
  if (!sigfd.is_open()) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    const int fd = signalfd(-1, &s, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) return;
    sigfd.assign(fd);
  }
  sigfd.async_wait(
      asio::posix::descriptor_base::wait_read, [this](const boost::system::error_code& ec) {
        if (ec) return;
        signalfd_siginfo si;
        while (::read(sigfd.native_handle(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
          if (si.ssi_signo == SIGUSR1) owner.request_reopen();
        }
        arm_signals();
      });
}

void plane::impl::arm_inotify() {
  if (!inotify.is_open()) {
    const int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return;
    std::vector<std::string> paths;
    if (!owner.options_.policy_path.empty()) paths.push_back(owner.options_.policy_path);
    for (const auto& [name, path] : owner.options_.server_policies)
      paths.push_back(path);
    for (const std::string& path : paths) {
      std::filesystem::path p(path);
      std::string dir = p.parent_path().string();
      if (dir.empty()) dir = ".";
      // The directory, not the file: editors and deploy tools replace the file by a rename.
      const int wd = inotify_add_watch(fd, dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE);
      if (wd < 0) {
        log("sluice: policy: cannot watch " + dir +
            " for changes; SIGHUP and the API still reload");
        continue;
      }
      watched.emplace_back(wd, p.filename().string());
    }
    if (watched.empty()) {
      ::close(fd);
      return;
    }
    inotify.assign(fd);
  }
  inotify.async_wait(asio::posix::descriptor_base::wait_read,
                     [this](const boost::system::error_code& ec) {
                       if (ec) return;
                       alignas(inotify_event) char buf[4096];
                       bool hit = false;
                       for (;;) {
                         const ssize_t n = ::read(inotify.native_handle(), buf, sizeof buf);
                         if (n <= 0) break;
                         for (ssize_t off = 0; off < n;) {
                           const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
                           for (const auto& [wd, name] : watched)
                             if (ev->len != 0 && ev->wd == wd && name == ev->name) hit = true;
                           off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
                         }
                       }
                       if (hit) {
                         // Writers often touch the file more than once: reload once it has been
                         // quiet 50 ms.
                         reload_debounce.expires_after(std::chrono::milliseconds(50));
                         reload_debounce.async_wait([this](const boost::system::error_code& e) {
                           if (!e) reload("inotify");
                         });
                       }
                       arm_inotify();
                     });
}

}  // namespace sluice::control
