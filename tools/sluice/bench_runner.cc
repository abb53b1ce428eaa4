// The load generator's engine (see bench_runner.h).

#include "tools/sluice/bench_runner.h"

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <future>
#include <string>
#include <thread>

#include "engine/clock.h"
#include "engine/connection.h"
#include "engine/shard.h"
#include "net/http1_response_parser.h"

namespace sluice::bench {

std::string_view outcome_name(outcome o) {
  static constexpr std::array<std::string_view, kOutcomes> kNames = {
      "allow",      "deny",      "rate_limited", "approval_required", "invalid",
      "tool_error", "rpc_error", "unauthorized", "upstream_error",    "http_error"};
  return kNames[size_t(o)];
}

std::string_view error_name(error_kind e) {
  static constexpr std::array<std::string_view, kErrorKinds> kNames = {"connect_failed", "closed",
                                                                       "bad_response"};
  return kNames[size_t(e)];
}

void stats::merge(const stats& o) {
  latency.merge(o.latency);
  for (size_t i = 0; i < kOutcomes; ++i)
    outcomes[i] += o.outcomes[i];
  for (size_t i = 0; i < kErrorKinds; ++i)
    errors[i] += o.errors[i];
  bytes_in += o.bytes_in;
}

uint64_t stats::answered() const {
  uint64_t n = 0;
  for (uint64_t c : outcomes)
    n += c;
  return n;
}

namespace {

bool contains(std::string_view hay, std::string_view needle) {
  return hay.find(needle) != std::string_view::npos;
}

// The value of "sluice/decision" in an MCP answer Sluice made, if any. Does not allocate.
bool sluice_decision(std::string_view body, outcome& out) {
  constexpr std::string_view kKey = "\"sluice/decision\":\"";
  const size_t at = body.find(kKey);
  if (at == std::string_view::npos) return false;
  std::string_view v = body.substr(at + kKey.size());
  v = v.substr(0, v.find('"'));
  if (v == "deny") {
    out = outcome::deny;
  } else if (v == "rate_limited") {
    out = outcome::rate_limited;
  } else if (v == "approval_required") {
    out = outcome::approval_required;
  } else if (v == "invalid") {
    out = outcome::invalid;
  } else if (v == "allow") {
    out = outcome::allow;
  } else {
    out = outcome::deny;  // a refusal of a kind this build does not know
  }
  return true;
}

}  // namespace

outcome classify(target_kind kind, int status, std::string_view body) {
  if (kind == target_kind::decide) {
    switch (status) {
      case 200:
        return outcome::allow;
      case 403:
        return outcome::deny;
      case 429:
        return outcome::rate_limited;
      case 202:
        return outcome::approval_required;
      case 400:
        return outcome::invalid;
      case 401:
        return outcome::unauthorized;
      case 502:
      case 504:
        return outcome::upstream_error;
      default:
        return outcome::http_error;
    }
  }
  switch (status) {
    case 200: {
      outcome o;
      if (sluice_decision(body, o)) return o;
      if (contains(body, "\"error\":{")) return outcome::rpc_error;
      if (contains(body, "\"isError\":true")) return outcome::tool_error;
      return outcome::allow;
    }
    case 202:
      return outcome::allow;  // a notification or response accepted
    case 400:
      return outcome::invalid;
    case 401:
      return outcome::unauthorized;
    case 502:
    case 504:
      return outcome::upstream_error;
    default:
      return outcome::http_error;
  }
}

namespace {

constexpr size_t kBodyKeep = 16 * 1024;  // bytes of an answer kept to read its decision

class worker;

// One client connection's state; reused across reconnects.
struct conn_state final : net::response_sink {
  worker* owner = nullptr;
  engine::connection* conn = nullptr;
  net::http1_response_parser parser;
  std::vector<int64_t> stamps;  // ring of send (closed) or due (open) times, depth long
  uint32_t head = 0;
  uint32_t inflight = 0;
  size_t cursor = 0;  // next pool entry
  int status = 0;
  bool keep_alive = true;
  bool connected = false;
  bool draining = false;  // the server said Connection: close: send nothing more here
  uint64_t answered = 0;  // on this connection, ever (reconnect only ones that worked)
  std::string body;       // reserved once: kBodyKeep
  // open loop
  int64_t next_due = 0;
  int64_t first_due = 0;
  uint64_t due_index = 0;
  double interval_ns = 0;

  bool on_response_head(const net::http_response& h) override {
    status = h.status;
    keep_alive = h.keep_alive;
    body.clear();
    return true;
  }
  bool on_response_body(std::string_view bytes) override {
    const size_t room = kBodyKeep - body.size();
    body.append(bytes.data(), std::min(room, bytes.size()));  // within the reservation
    return true;
  }
};

class worker final : public engine::connection_handler {
 public:
  worker(engine::shard& sh, const run_config& cfg, unsigned conns, uint64_t quota,
         unsigned first_conn)
      : shard_(sh), cfg_(cfg), quota_(quota), states_(conns) {
    const size_t n = cfg.pool->size();
    for (unsigned i = 0; i < conns; ++i) {
      conn_state& s = states_[i];
      s.owner = this;
      s.stamps.assign(cfg.depth, 0);
      s.body.reserve(kBodyKeep);
      s.cursor = (size_t(first_conn + i) * 7919u) % n;
    }
  }

  void start(int64_t t0, double shard_rate) {
    measure_start_ = t0 + int64_t(cfg_.warmup_s * 1e9);
    measure_end_ = cfg_.requests > 0 ? INT64_MAX : measure_start_ + int64_t(cfg_.duration_s * 1e9);
    const size_t conns = states_.size();
    for (size_t i = 0; i < conns; ++i) {
      conn_state& s = states_[i];
      if (shard_rate > 0) {
        // Connection i sends every conns/rate seconds, staggered by i/rate.
        s.interval_ns = 1e9 * double(conns) / shard_rate;
        s.first_due = t0 + int64_t(1e9 * double(i) / shard_rate);
        s.next_due = s.first_due;
      }
      open(s);
    }
    if (live_ == 0) finish();
  }

  stats& result() { return stats_; }
  std::atomic<uint64_t>& progress() { return progress_; }
  [[nodiscard]] bool finished() const { return finished_flag_.load(std::memory_order_acquire); }

  void on_open(engine::connection& conn) override { conn.abort(); }  // no listener

  void on_connected(engine::connection& conn, int error) override {
    auto* s = static_cast<conn_state*>(conn.user);
    if (error != 0) {
      ++stats_.errors[size_t(error_kind::connect_failed)];
      return;  // on_closed follows
    }
    s->connected = true;
    s->draining = false;
    s->parser.reset();
    fill(*s);
  }

  void on_data(engine::connection& conn, std::span<const char> bytes) override {
    auto* s = static_cast<conn_state*>(conn.user);
    using ps = net::http1_response_parser::parse_status;
    stats_.bytes_in += bytes.size();
    while (!bytes.empty()) {
      const ps st = s->parser.feed(bytes, *s);
      if (st == ps::need_more) break;
      if (st != ps::done || s->inflight == 0) {
        ++stats_.errors[size_t(error_kind::bad_response)];
        conn.abort();
        return;
      }
      const size_t left = s->parser.leftover();
      bytes = bytes.subspan(bytes.size() - left);
      s->parser.reset();
      complete(*s);
      if (!s->keep_alive) {
        s->draining = true;
        break;
      }
    }
    fill(*s);
  }

  void on_eof(engine::connection& conn) override {
    auto* s = static_cast<conn_state*>(conn.user);
    if (s->inflight > 0 && s->parser.feed_eof() == net::http1_response_parser::parse_status::done)
      complete(*s);
    conn.abort();
  }

  void on_timer(engine::connection& conn) override { fill(*static_cast<conn_state*>(conn.user)); }

  void on_shutdown(engine::connection& conn) override {
    stopping_ = true;
    conn.abort();
  }

  void on_closed(engine::connection& conn) override {
    auto* s = static_cast<conn_state*>(conn.user);
    s->conn = nullptr;
    const bool worked = s->connected && (s->answered > 0 || s->draining);
    s->connected = false;
    if (s->inflight > 0) {
      if (!stopping_ && counting(shard_.now_ns())) {
        stats_.errors[size_t(error_kind::closed)] += s->inflight;
        lost_ += s->inflight;
      }
      s->inflight = 0;
      s->head = 0;
    }
    --live_;
    if (!stopping_ && worked && may_send()) open(*s);
    if (live_ == 0 || (cfg_.requests > 0 && answered_ + lost_ >= quota_)) finish();
  }

 private:
  bool counting(int64_t now) const { return now >= measure_start_ && now < measure_end_; }
  bool may_send() const { return !stopping_ && (cfg_.requests == 0 || sent_ < quota_); }

  void open(conn_state& s) {
    engine::connection* c =
        shard_.connect(reinterpret_cast<const sockaddr*>(&cfg_.tgt->addr), cfg_.tgt->addr_len,
                       std::chrono::milliseconds(cfg_.connect_timeout_ms), this);
    if (c == nullptr) {
      ++stats_.errors[size_t(error_kind::connect_failed)];
      return;
    }
    c->user = &s;
    s.conn = c;
    ++live_;
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    stopping_ = true;
    finished_flag_.store(true, std::memory_order_release);
    shard_.request_stop(std::chrono::steady_clock::now());
  }

  // Does not allocate: copies a pool entry into the connection's reused output buffer.
  void send_one(conn_state& s, int64_t stamp) {
    s.conn->send(cfg_.pool->at(s.cursor));
    if (++s.cursor == cfg_.pool->size()) s.cursor = 0;
    s.stamps[(s.head + s.inflight) % cfg_.depth] = stamp;
    ++s.inflight;
    ++sent_;
  }

  void fill(conn_state& s) {
    if (s.conn == nullptr || !s.connected || s.draining) return;
    const int64_t now = shard_.now_ns();
    if (now >= measure_end_ && !stopping_) {
      finish();
      return;
    }
    if (s.interval_ns == 0) {
      while (s.inflight < cfg_.depth && may_send())
        send_one(s, now);
      return;
    }
    // Open loop: send what is due (from when it was due), then sleep until the next one.
    while (s.inflight < cfg_.depth && s.next_due <= now && may_send()) {
      send_one(s, s.next_due);
      ++s.due_index;
      s.next_due = s.first_due + int64_t(double(s.due_index) * s.interval_ns);
    }
    if (s.inflight < cfg_.depth && may_send())
      s.conn->set_timer(std::chrono::nanoseconds(std::max<int64_t>(s.next_due - now, 0)));
  }

  void complete(conn_state& s) {
    const int64_t stamp = s.stamps[s.head];
    s.head = (s.head + 1) % cfg_.depth;
    --s.inflight;
    ++s.answered;
    const int64_t now = shard_.now_ns();
    if (counting(now)) {
      stats_.latency.record(uint64_t(std::max<int64_t>(now - stamp, 0)));
      ++stats_.outcomes[size_t(classify(cfg_.kind, s.status, s.body))];
      ++answered_;
      progress_.store(answered_, std::memory_order_relaxed);
    }
    if (cfg_.requests > 0 && answered_ + lost_ >= quota_) finish();
  }

  engine::shard& shard_;
  const run_config& cfg_;
  const uint64_t quota_;
  std::vector<conn_state> states_;
  stats stats_;
  int64_t measure_start_ = 0;
  int64_t measure_end_ = INT64_MAX;
  uint64_t sent_ = 0;
  uint64_t answered_ = 0;
  uint64_t lost_ = 0;
  unsigned live_ = 0;
  bool stopping_ = false;
  bool finished_ = false;
  // Read by the caller's thread for the progress line: its own cache line.
  alignas(64) std::atomic<uint64_t> progress_{0};
  std::atomic<bool> finished_flag_{false};
};

std::vector<int> affinity_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int i = 0; i < CPU_SETSIZE; ++i)
      if (CPU_ISSET(i, &set)) cpus.push_back(i);
  }
  return cpus;
}

uint32_t pow2_at_least(uint32_t v) {
  uint32_t p = 1;
  while (p < v)
    p <<= 1;
  return p;
}

}  // namespace

run_result run(const run_config& cfg, const progress_fn& progress, const mark_fn& on_measure_start,
               const mark_fn& on_measure_end) {
  run_result out;
  const unsigned threads = std::max(1u, std::min(cfg.threads, cfg.connections));
  const std::vector<int> cpus = affinity_cpus();

  std::vector<std::unique_ptr<engine::shard>> shards;
  std::vector<worker*> workers(threads, nullptr);
  std::vector<std::thread> pool;
  std::promise<int64_t> go;
  std::shared_future<int64_t> go_f = go.get_future().share();
  std::vector<std::future<std::string>> ready;

  unsigned first_conn = 0;
  for (unsigned i = 0; i < threads; ++i) {
    const unsigned conns = cfg.connections / threads + (i < cfg.connections % threads ? 1 : 0);
    const uint64_t quota = cfg.requests / threads + (i < cfg.requests % threads ? 1 : 0);
    engine::shard_config sc;
    sc.max_connections = 0;
    sc.overload_reserve = 0;
    sc.max_outgoing = conns * 2 + 8;
    sc.buffer_size = 16384;
    sc.buffer_count = pow2_at_least(std::max(256u, conns * 4));
    sc.sq_entries = pow2_at_least(std::max(256u, conns * 4));
    sc.cq_entries = sc.sq_entries * 4;
    sc.linger = std::chrono::milliseconds(0);
    const int cpu = cpus.empty() ? -1 : cpus[i % cpus.size()];
    shards.push_back(std::make_unique<engine::shard>(i, cpu, -1, sc));
    auto p = std::make_shared<std::promise<std::string>>();
    ready.push_back(p->get_future());
    engine::shard* sh = shards.back().get();
    const double shard_rate = cfg.rate * double(conns) / double(cfg.connections);
    pool.emplace_back([sh, p, go_f, &cfg, &workers, i, conns, quota, first_conn, shard_rate] {
      char name[16];
      std::snprintf(name, sizeof name, "bench-%u", i);
      pthread_setname_np(pthread_self(), name);
      engine::status st = sh->init();
      if (!st.ok()) {
        p->set_value(st.message());
        return;
      }
      auto w = std::make_unique<worker>(*sh, cfg, conns, quota, first_conn);
      worker* wp = w.get();
      workers[i] = wp;
      sh->set_handler(std::move(w));
      p->set_value({});
      const int64_t t0 = go_f.get();
      if (t0 == 0) return;
      wp->start(t0, shard_rate);
      sh->run();
    });
    first_conn += conns;
  }
  for (auto& f : ready) {
    std::string e = f.get();
    if (!e.empty() && out.error.empty()) out.error = e;
  }
  if (!out.error.empty()) {
    go.set_value(0);
    for (auto& t : pool)
      t.join();
    return out;
  }

  const int64_t t0 = engine::steady_ns();
  const int64_t measure_start = t0 + int64_t(cfg.warmup_s * 1e9);
  const int64_t measure_end = measure_start + int64_t(cfg.duration_s * 1e9);
  go.set_value(t0);

  // Watch: progress, CPU marks, the end of the measured time. The shards stop themselves in
  // --requests mode; otherwise (and as a cap) they are stopped here.
  bool started = cfg.warmup_s <= 0;
  if (started && on_measure_start) on_measure_start();
  int64_t last_answer_time = measure_end;
  for (;;) {
    const int64_t now = engine::steady_ns();
    if (!started && now >= measure_start) {
      started = true;
      if (on_measure_start) on_measure_start();
    }
    uint64_t answered = 0;
    bool all_finished = true;
    for (worker* w : workers) {
      answered += w->progress().load(std::memory_order_relaxed);
      all_finished = all_finished && w->finished();
    }
    if (progress) progress(answered, double(now - measure_start) / 1e9);
    if (all_finished) {
      // Every shard stopped itself: --requests reached, or no connection left.
      last_answer_time = std::min(now, measure_end);
      break;
    }
    if (now >= measure_end) break;
    const int64_t step = std::min<int64_t>(100'000'000, std::max<int64_t>(measure_end - now, 0));
    const timespec ts{time_t(step / 1'000'000'000), long(step % 1'000'000'000)};
    if (started || measure_start - now > step) {
      nanosleep(&ts, nullptr);
    } else {
      const int64_t to_start = measure_start - now;
      const timespec ts2{time_t(to_start / 1'000'000'000), long(to_start % 1'000'000'000)};
      nanosleep(&ts2, nullptr);
    }
  }
  if (on_measure_end) on_measure_end();
  const int64_t end = last_answer_time;
  for (auto& sh : shards)
    sh->request_stop(std::chrono::steady_clock::now() + std::chrono::milliseconds(200));
  for (auto& t : pool)
    t.join();
  out.total = std::make_unique<stats>();
  for (worker* w : workers)
    out.total->merge(w->result());
  out.elapsed_s = double(std::max<int64_t>(end - measure_start, 1)) / 1e9;
  return out;
}

}  // namespace sluice::bench
