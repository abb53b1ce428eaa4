#include "engine/runtime.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>

namespace sluice::engine {

namespace {

std::string format_address(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return std::string("[") + host + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
  inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
}

void set_port(sockaddr_storage& ss, uint16_t port) {
  if (ss.ss_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in*>(&ss)->sin_port = htons(port);
  }
}

status open_listener(const sockaddr_storage& addr, int backlog, int& out_fd) {
  auto fail = [&](const char* what, int fd) {
    int e = errno;
    if (fd >= 0) ::close(fd);
    return status::error(std::string(what) + " " + format_address(addr) + ": " + strerror(e));
  };
  int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail("socket", -1);
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    return fail("setsockopt", fd);
  }
  socklen_t len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) return fail("bind", fd);
  if (::listen(fd, backlog) != 0) return fail("listen", fd);
  out_fd = fd;
  return {};
}

}  // namespace

runtime::~runtime() {
  if (!threads_.empty()) {
    stop(std::chrono::steady_clock::now());
    join();
  }
}

std::string runtime::address_string() const {
  return format_address(bound_);
}

status runtime::start(const runtime_config& config, handler_factory factory) {
  if (!threads_.empty()) return status::error("runtime already started");
  sockaddr_storage addr{};
  if (inet_pton(AF_INET, config.address.c_str(),
                &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr) == 1) {
    addr.ss_family = AF_INET;
  } else if (inet_pton(AF_INET6, config.address.c_str(),
                       &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr) == 1) {
    addr.ss_family = AF_INET6;
  } else {
    return status::error("listen address '" + config.address + "' is not an IPv4/IPv6 literal");
  }
  set_port(addr, config.port);

  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof mask, &mask) != 0) {
    return status::error(std::string("sched_getaffinity: ") + strerror(errno));
  }
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &mask)) cpus.push_back(c);
  }
  unsigned n = config.shards != 0 ? config.shards : unsigned(cpus.size());
  if (n == 0) n = 1;

  // Listeners: shard 0 binds first; with port 0 the others bind to the port it learned.
  std::vector<int> fds;
  for (unsigned i = 0; i < n; ++i) {
    int fd = -1;
    status st = open_listener(addr, config.backlog, fd);
    if (!st.ok()) {
      for (int f : fds)
        ::close(f);
      return st;
    }
    if (i == 0) {
      socklen_t len = sizeof bound_;
      getsockname(fd, reinterpret_cast<sockaddr*>(&bound_), &len);
      port_ =
          ntohs(bound_.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound_)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&bound_)->sin_port);
      set_port(addr, port_);
    }
    fds.push_back(fd);
  }

  for (unsigned i = 0; i < n; ++i) {
    int cpu = config.pin && !cpus.empty() ? cpus[i % cpus.size()] : -1;
    shards_.push_back(std::make_unique<shard>(i, cpu, fds[i], config.shard));
  }

  // Each shard creates its ring on its own thread (SINGLE_ISSUER), reports, then waits for go.
  std::promise<bool> go;
  std::shared_future<bool> go_f = go.get_future().share();
  std::vector<std::future<status>> ready;
  for (unsigned i = 0; i < n; ++i) {
    auto p = std::make_shared<std::promise<status>>();
    ready.push_back(p->get_future());
    shard* s = shards_[i].get();
    threads_.emplace_back([s, p, go_f, &factory] {
      char name[16];
      snprintf(name, sizeof name, "shard-%u", s->id());
      pthread_setname_np(pthread_self(), name);
      status st = s->init();
      if (st.ok()) s->set_handler(factory(*s));
      bool ok = st.ok();
      p->set_value(std::move(st));
      if (ok && go_f.get()) s->run();
    });
  }
  status first_error;
  for (auto& f : ready) {
    status st = f.get();
    if (!st.ok() && first_error.ok()) first_error = std::move(st);
  }
  go.set_value(first_error.ok());
  if (!first_error.ok()) {
    join();
    shards_.clear();
    return first_error;
  }
  return {};
}

void runtime::stop(std::chrono::steady_clock::time_point deadline) {
  for (auto& s : shards_)
    s->request_stop(deadline);
}

std::vector<unsigned> runtime::stalled_shards() {
  std::vector<unsigned> stalled;
  const bool first = seen_iterations_.size() != shards_.size();
  seen_iterations_.resize(shards_.size());
  for (unsigned i = 0; i < shards_.size(); ++i) {
    const uint64_t n = shards_[i]->iterations();
    if (!first && n == seen_iterations_[i]) stalled.push_back(i);
    seen_iterations_[i] = n;
    shards_[i]->wake();
  }
  return stalled;
}

void runtime::join() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

}  // namespace sluice::engine
