#include "net/cluster_redis.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <vector>

#include "net/control/metrics.h"
#include "net/random.h"

namespace sluice::net {

// KEYS[1] = this node's liveness key, KEYS[2..] = one hash per counter key and window.
// ARGV[1] = node id, ARGV[2] = lease ttl (ms), ARGV[3] = expiry slack (ms), then per key
// (max, window end in ms, used, held, want). Returns per key {held now, cluster used}.
// Numbers are Lua doubles: exact far beyond uint32 counts.
const char* const kClusterScript = R"lua(
local node = ARGV[1]
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
local slack = tonumber(ARGV[3])
local out = {}
local alive = {}
for i = 2, #KEYS do
  local a = 4 + (i - 2) * 5
  local max = tonumber(ARGV[a])
  local wend = tonumber(ARGV[a + 1])
  local used = tonumber(ARGV[a + 2])
  local held = tonumber(ARGV[a + 3])
  local want = tonumber(ARGV[a + 4])
  if held < used then held = used end
  local others = 0
  local total = used
  local h = redis.call('HGETALL', KEYS[i])
  for j = 1, #h, 2 do
    local f = h[j]
    local id = string.sub(f, 3)
    if id ~= node then
      local v = tonumber(h[j + 1])
      if string.sub(f, 1, 1) == 'u' then
        others = others + v
        total = total + v
      else
        local live = alive[id]
        if live == nil then
          live = redis.call('EXISTS', 'sluice:n:' .. id) == 1
          alive[id] = live
        end
        if live then
          others = others + v
        else
          redis.call('HDEL', KEYS[i], f)
        end
      end
    end
  end
  local free = max - others - held
  if want > held and free > 0 then
    if want - held < free then free = want - held end
    held = held + free
  end
  redis.call('HSET', KEYS[i], 'u:' .. node, used, 'l:' .. node, held - used)
  redis.call('PEXPIREAT', KEYS[i], wend + slack)
  out[#out + 1] = held
  out[#out + 1] = total
end
return out
)lua";

namespace {

int64_t to_ms(int64_t ns) {
  return ns / 1'000'000;
}

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

void append_hex(std::string& out, uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  out.append(buf, 16);
}

struct reply_ptr {
  redisReply* r = nullptr;
  ~reply_ptr() {
    if (r != nullptr) freeReplyObject(r);
  }
};

}  // namespace

bool parse_redis_url(std::string_view url, cluster_options& out, std::string& error) {
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    error = "expected redis://HOST:PORT";
    return false;
  }
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  std::string_view host = rest, port;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      error = "unterminated [IPv6] host";
      return false;
    }
    host = rest.substr(1, close - 1);
    rest = rest.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        error = "expected :PORT after the host";
        return false;
      }
      port = rest.substr(1);
    }
  } else if (const size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty() || host.find_first_of("/@?#") != std::string_view::npos) {
    error = "expected redis://HOST:PORT (no user, path or query)";
    return false;
  }
  uint32_t p = 6379;
  if (!port.empty()) {
    auto r = std::from_chars(port.data(), port.data() + port.size(), p);
    if (r.ec != std::errc() || r.ptr != port.data() + port.size() || p == 0 || p > 65535) {
      error = "invalid port";
      return false;
    }
  }
  out.host = std::string(host);
  out.port = static_cast<uint16_t>(p);
  return true;
}

struct cluster_redis::impl {
  redisContext* ctx = nullptr;
  std::string sha;
  std::string node_hex;
  std::string node_key;
  std::string ttl_ms, slack_ms;
  // Reused per round trip (the hub thread allocates here, never a shard).
  std::vector<std::string> args;
  std::vector<const char*> argv;
  std::vector<size_t> lens;

  ~impl() { close(); }
  void close() {
    if (ctx != nullptr) redisFree(ctx);
    ctx = nullptr;
  }
  redisReply* command(const std::vector<std::string>& a) {
    argv.clear();
    lens.clear();
    for (const std::string& s : a) {
      argv.push_back(s.data());
      lens.push_back(s.size());
    }
    return static_cast<redisReply*>(
        redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data()));
  }
};

cluster_redis::cluster_redis(cluster_options options,
                             std::shared_ptr<control::cluster_metrics> metrics)
    : options_(std::move(options)), metrics_(std::move(metrics)), impl_(std::make_unique<impl>()) {
  while (options_.node_id == 0)
    fill_random(&options_.node_id, sizeof options_.node_id);
  append_hex(impl_->node_hex, options_.node_id);
  impl_->node_key = "sluice:n:" + impl_->node_hex;
  impl_->ttl_ms = std::to_string(options_.lease_ttl.count());
  impl_->slack_ms = std::to_string(options_.expiry_slack.count());
}

cluster_redis::~cluster_redis() = default;

std::string cluster_redis::redis_key(const policy::limiter_key& key, int64_t window_end_ns) {
  std::string k = "sluice:c:";
  append_hex(k, key.hi);
  append_hex(k, key.lo);
  k += ':';
  k += std::to_string(to_ms(window_end_ns));
  return k;
}

void cluster_redis::fail(int64_t now_mono_ns, std::string_view reason) {
  const std::string why(reason);  // may point into the context freed next
  impl_->close();
  if (metrics_) {
    metrics_->failed_round_trips.fetch_add(1, std::memory_order_relaxed);
    metrics_->up.store(0, std::memory_order_relaxed);
  }
  // One line per transition, not per failed attempt.
  if (up_ || !ever_tried_) {
    std::fprintf(stderr,
                 "sluice: cluster: redis %s:%u unreachable (%.*s); enforcing %s until it "
                 "returns\n",
                 options_.host.c_str(), options_.port, static_cast<int>(why.size()), why.data(),
                 options_.fail_open ? "the local max alone (fail-open)"
                                    : "the last leases granted (fail-closed)");
  }
  up_ = false;
  ever_tried_ = true;
  const int64_t min_ns = options_.backoff_min.count() * 1'000'000;
  const int64_t max_ns = options_.backoff_max.count() * 1'000'000;
  backoff_ns_ = backoff_ns_ == 0 ? min_ns : std::min(backoff_ns_ * 2, max_ns);
  retry_at_ns_ = now_mono_ns + backoff_ns_;
}

bool cluster_redis::connect(int64_t now_mono_ns) {
  impl_->close();
  const timeval tv = to_timeval(options_.timeout);
  impl_->ctx = redisConnectWithTimeout(options_.host.c_str(), options_.port, tv);
  if (impl_->ctx == nullptr || impl_->ctx->err != 0) {
    fail(now_mono_ns, impl_->ctx != nullptr ? impl_->ctx->errstr : "cannot allocate a context");
    return false;
  }
  if (redisSetTimeout(impl_->ctx, tv) != REDIS_OK) {
    fail(now_mono_ns, "cannot set the socket timeout");
    return false;
  }
  reply_ptr r;
  r.r = impl_->command({"SCRIPT", "LOAD", kClusterScript});
  if (r.r == nullptr || r.r->type != REDIS_REPLY_STRING) {
    fail(now_mono_ns, r.r != nullptr && r.r->type == REDIS_REPLY_ERROR ? r.r->str
                      : impl_->ctx->errstr[0] != 0                     ? impl_->ctx->errstr
                                                                       : "SCRIPT LOAD failed");
    return false;
  }
  impl_->sha.assign(r.r->str, r.r->len);
  return true;
}

void cluster_redis::append_chunk(std::span<const cluster_item> chunk, bool with_body) {
  std::vector<std::string>& a = impl_->args;
  a.clear();
  a.reserve(7 + chunk.size() * 6);
  a.emplace_back(with_body ? "EVAL" : "EVALSHA");
  a.emplace_back(with_body ? std::string(kClusterScript) : impl_->sha);
  a.push_back(std::to_string(1 + chunk.size()));
  a.push_back(impl_->node_key);
  for (const cluster_item& it : chunk)
    a.push_back(redis_key(it.key, it.window_end_ns));
  a.push_back(impl_->node_hex);
  a.push_back(impl_->ttl_ms);
  a.push_back(impl_->slack_ms);
  for (const cluster_item& it : chunk) {
    a.push_back(std::to_string(it.max));
    a.push_back(std::to_string(to_ms(it.window_end_ns)));
    a.push_back(std::to_string(it.used));
    a.push_back(std::to_string(it.held));
    a.push_back(std::to_string(it.want));
  }
  impl_->argv.clear();
  impl_->lens.clear();
  for (const std::string& x : a) {
    impl_->argv.push_back(x.data());
    impl_->lens.push_back(x.size());
  }
  // Formats into hiredis' output buffer at once: a, argv and lens may be reused after.
  (void)redisAppendCommandArgv(impl_->ctx, static_cast<int>(impl_->argv.size()), impl_->argv.data(),
                               impl_->lens.data());
}

bool cluster_redis::sync(std::span<cluster_item> items, int64_t now_mono_ns) {
  const int64_t heartbeat_ns = options_.heartbeat.count() * 1'000'000;
  if (items.empty() && up_ && now_mono_ns - last_ok_ns_ < heartbeat_ns) return true;
  if (impl_->ctx == nullptr) {
    if (ever_tried_ && now_mono_ns < retry_at_ns_) return false;
    if (!connect(now_mono_ns)) return false;
  }
  // Up to kChunk keys per EVALSHA, all of them pipelined: one round trip however many keys
  // (a rejoin re-reports every live window), and no single script call long enough to stall
  // Redis. Each key's accounting is independent, so atomicity per call is enough.
  const size_t chunks = items.empty() ? 1 : (items.size() + kChunk - 1) / kChunk;
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool with_body = attempt == 1;
    for (size_t c = 0; c < chunks; ++c) {
      const size_t from = c * kChunk;
      append_chunk(items.subspan(from, std::min(kChunk, items.size() - from)), with_body);
    }
    bool noscript = false;
    for (size_t c = 0; c < chunks; ++c) {
      reply_ptr r;
      void* out = nullptr;
      if (redisGetReply(impl_->ctx, &out) != REDIS_OK || out == nullptr) {
        fail(now_mono_ns, impl_->ctx->errstr[0] != 0 ? impl_->ctx->errstr : "no reply");
        return false;
      }
      r.r = static_cast<redisReply*>(out);
      if (r.r->type == REDIS_REPLY_ERROR && std::strncmp(r.r->str, "NOSCRIPT", 8) == 0) {
        // Redis lost its script cache (SCRIPT FLUSH, a failover): read the other replies,
        // then send the whole batch again with the body.
        noscript = true;
        continue;
      }
      const size_t from = c * kChunk;
      const size_t n = items.empty() ? 0 : std::min(kChunk, items.size() - from);
      if (r.r->type != REDIS_REPLY_ARRAY || r.r->elements != n * 2) {
        fail(now_mono_ns, r.r->type == REDIS_REPLY_ERROR ? r.r->str : "unexpected reply");
        return false;
      }
      for (size_t i = 0; i < n; ++i) {
        const redisReply* held = r.r->element[2 * i];
        const redisReply* total = r.r->element[2 * i + 1];
        if (held->type != REDIS_REPLY_INTEGER || total->type != REDIS_REPLY_INTEGER ||
            held->integer < 0 || total->integer < 0) {
          fail(now_mono_ns, "unexpected reply");
          return false;
        }
        items[from + i].granted =
            held->integer > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(held->integer);
        items[from + i].cluster_used = static_cast<uint64_t>(total->integer);
      }
    }
    if (!noscript) break;
    if (with_body) {
      fail(now_mono_ns, "NOSCRIPT after EVAL");
      return false;
    }
  }
  if (!up_) {
    std::fprintf(stderr, "sluice: cluster: redis %s:%u up; node %s shares its counters\n",
                 options_.host.c_str(), options_.port, impl_->node_hex.c_str());
  }
  up_ = true;
  ever_tried_ = true;
  backoff_ns_ = 0;
  last_ok_ns_ = now_mono_ns;
  if (metrics_) {
    metrics_->up.store(1, std::memory_order_relaxed);
    metrics_->round_trips.fetch_add(1, std::memory_order_relaxed);
    metrics_->keys_synced.fetch_add(items.size(), std::memory_order_relaxed);
  }
  return true;
}

}  // namespace sluice::net
