#include "net/upstream.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "net/http1_response_parser.h"
#include "net/http_server.h"
#include "tests/engine/test_client.h"

namespace sluice::net {
namespace {

using namespace std::chrono_literals;
using parse_status = http1_response_parser::parse_status;

// ---------------------------------------------------------------------------------------------
// URL parsing

TEST(upstream_url, ipv4_port_path) {
  upstream_target t;
  std::string err;
  ASSERT_TRUE(parse_upstream_url("http://127.0.0.1:8081/mcp", t, err)) << err;
  EXPECT_EQ(t.host_header, "127.0.0.1:8081");
  EXPECT_EQ(t.path, "/mcp");
  ASSERT_EQ(t.addr.ss_family, AF_INET);
  EXPECT_EQ(ntohs(reinterpret_cast<sockaddr_in*>(&t.addr)->sin_port), 8081);
  EXPECT_EQ(t.addr_len, sizeof(sockaddr_in));
}

TEST(upstream_url, ipv6_default_port_and_path) {
  upstream_target t;
  std::string err;
  ASSERT_TRUE(parse_upstream_url("http://[::1]", t, err)) << err;
  EXPECT_EQ(t.host_header, "[::1]");
  EXPECT_EQ(t.path, "/");
  ASSERT_EQ(t.addr.ss_family, AF_INET6);
  EXPECT_EQ(ntohs(reinterpret_cast<sockaddr_in6*>(&t.addr)->sin6_port), 80);
  ASSERT_TRUE(parse_upstream_url("http://[::1]:9000/a/b?x=1#frag", t, err)) << err;
  EXPECT_EQ(t.path, "/a/b?x=1");
  EXPECT_EQ(ntohs(reinterpret_cast<sockaddr_in6*>(&t.addr)->sin6_port), 9000);
}

TEST(upstream_url, name_is_resolved) {
  upstream_target t;
  std::string err;
  ASSERT_TRUE(parse_upstream_url("http://localhost:7000/mcp", t, err)) << err;
  EXPECT_EQ(t.host_header, "localhost:7000");
  EXPECT_TRUE(t.addr.ss_family == AF_INET || t.addr.ss_family == AF_INET6);
}

TEST(upstream_url, refusals_say_why) {
  upstream_target t;
  std::string err;
  EXPECT_FALSE(parse_upstream_url("https://127.0.0.1/mcp", t, err));
  EXPECT_NE(err.find("https is not supported"), std::string::npos) << err;
  for (std::string_view bad :
       {"ftp://x/", "127.0.0.1:80/mcp", "http://", "http://:80/", "http://h:0/", "http://h:70000/",
        "http://h:8x/", "http://user@h/", "http://[::1/", "http://[::1]x/", "http://h/a b",
        "http://no-such-host.invalid/"}) {
    err.clear();
    EXPECT_FALSE(parse_upstream_url(bad, t, err)) << bad;
    EXPECT_FALSE(err.empty()) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// Response parser

struct collect final : response_sink {
  int heads = 0;
  http_response head;  // views are not kept: copies below
  std::string content_type, session;
  std::vector<std::string> names;
  std::string body;
  bool stop_on_head = false;
  bool stop_on_body = false;
  bool on_response_head(const http_response& h) override {
    ++heads;
    head = h;
    head.headers = {};
    head.content_type = head.mcp_session_id = head.mcp_protocol_version = head.reason = {};
    content_type = std::string(h.content_type);
    session = std::string(h.mcp_session_id);
    for (const http_header& x : h.headers)
      names.emplace_back(x.name);
    return !stop_on_head;
  }
  bool on_response_body(std::string_view b) override {
    body.append(b);
    return !stop_on_body;
  }
};

parse_status feed(http1_response_parser& p, collect& c, std::string_view s) {
  std::string copy(s);  // the parser must not rely on the bytes outliving the call
  return p.feed(std::span<const char>(copy.data(), copy.size()), c);
}

// Feeds s split at every position (two feeds), then one byte at a time.
template <typename Check>
void split_everywhere(std::string_view s, bool head_request, Check check) {
  for (size_t i = 0; i <= s.size(); ++i) {
    http1_response_parser p;
    p.reset(head_request);
    collect c;
    parse_status st = parse_status::need_more;
    if (i > 0) st = feed(p, c, s.substr(0, i));
    if (st == parse_status::need_more && i < s.size()) st = feed(p, c, s.substr(i));
    check(p, c, st, "split at " + std::to_string(i));
  }
  http1_response_parser p;
  p.reset(head_request);
  collect c;
  parse_status st = parse_status::need_more;
  for (size_t i = 0; i < s.size() && st == parse_status::need_more; ++i)
    st = feed(p, c, s.substr(i, 1));
  check(p, c, st, "byte by byte");
}

// What the pool never forwards, checked once for a gateway's configured headers and on every
// request whose headers are not vetted.
TEST(upstream_headers, hop_by_hop_and_broken_headers_are_not_forwarded) {
  EXPECT_TRUE(forwardable_header({"X-Team", "b"}));
  EXPECT_TRUE(forwardable_header({"Mcp-Session-Id", "abc"}));
  EXPECT_TRUE(forwardable_header({"X-Empty", ""}));
  for (std::string_view name : {"Connection", "keep-alive", "Transfer-Encoding", "TE", "Trailer",
                                "Upgrade", "Host", "content-length", "Proxy-Authorization"}) {
    EXPECT_FALSE(forwardable_header({name, "x"})) << name;
  }
  EXPECT_FALSE(forwardable_header({"", "x"}));
  EXPECT_FALSE(forwardable_header({"X-A", "1\r\nX-Injected: 2"}));
  EXPECT_FALSE(forwardable_header({"X-A", "1\nX-Injected: 2"}));
  EXPECT_FALSE(forwardable_header({"X-A\r\nX-B", "1"}));
}

TEST(response_parser, content_length_at_every_split) {
  std::string_view r =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: abc\r\n"
      "Content-Length: 11\r\n\r\nhello world";
  split_everywhere(r, false, [](auto& p, collect& c, parse_status st, const std::string& what) {
    ASSERT_EQ(st, parse_status::done) << what;
    EXPECT_EQ(c.heads, 1) << what;
    EXPECT_EQ(c.head.status, 200);
    EXPECT_TRUE(c.head.keep_alive);
    EXPECT_FALSE(c.head.chunked);
    EXPECT_EQ(c.head.content_length, 11);
    EXPECT_EQ(c.content_type, "application/json");
    EXPECT_EQ(c.session, "abc");
    EXPECT_EQ(c.names.size(), 3u);
    EXPECT_EQ(c.body, "hello world") << what;
    EXPECT_EQ(p.leftover(), 0u);
  });
}

TEST(response_parser, chunked_at_every_split) {
  std::string_view r =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
      "9;ext=1\r\ndata: 1\n\n\r\n18\r\ndata: 2 and a bit more\n\n\r\n0\r\nX-Trailer: t\r\n\r\n";
  split_everywhere(r, false, [](auto& p, collect& c, parse_status st, const std::string& what) {
    ASSERT_EQ(st, parse_status::done) << what;
    EXPECT_EQ(c.heads, 1);
    EXPECT_TRUE(c.head.chunked);
    EXPECT_TRUE(c.head.keep_alive);
    EXPECT_EQ(c.names.size(), 2u) << "trailer fields are not headers";
    EXPECT_EQ(c.body, "data: 1\n\ndata: 2 and a bit more\n\n") << what;
    EXPECT_EQ(p.leftover(), 0u);
  });
}

TEST(response_parser, interim_responses_are_skipped) {
  std::string_view r =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
      "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
  split_everywhere(r, false, [](auto&, collect& c, parse_status st, const std::string& what) {
    ASSERT_EQ(st, parse_status::done) << what;
    EXPECT_EQ(c.heads, 1);
    EXPECT_EQ(c.head.status, 201);
    EXPECT_EQ(c.names.size(), 1u);
    EXPECT_EQ(c.body, "ok");
  });
}

TEST(response_parser, no_body_for_204_304_and_head) {
  for (std::string_view r : {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                             "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"}) {
    http1_response_parser p;
    p.reset();
    collect c;
    EXPECT_EQ(feed(p, c, r), parse_status::done) << r;
    EXPECT_FALSE(c.head.has_body);
    EXPECT_TRUE(c.head.keep_alive);
  }
  http1_response_parser p;
  p.reset(true);
  collect c;
  EXPECT_EQ(feed(p, c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), parse_status::done);
  EXPECT_EQ(c.body, "");
}

TEST(response_parser, close_delimited_ends_at_eof) {
  http1_response_parser p;
  p.reset();
  collect c;
  EXPECT_EQ(feed(p, c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nabc"),
            parse_status::need_more);
  EXPECT_TRUE(c.head.close_delimited);
  EXPECT_FALSE(c.head.keep_alive);
  EXPECT_EQ(feed(p, c, "def"), parse_status::need_more);
  EXPECT_EQ(p.feed_eof(), parse_status::done);
  EXPECT_EQ(c.body, "abcdef");
}

TEST(response_parser, eof_before_the_end_is_an_error) {
  {
    http1_response_parser p;
    p.reset();
    EXPECT_EQ(p.feed_eof(), parse_status::error);
    EXPECT_FALSE(p.received_any());
  }
  for (std::string_view partial :
       {"HTTP/1.1 200 OK\r\nContent-Len", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"}) {
    http1_response_parser p;
    p.reset();
    collect c;
    EXPECT_EQ(feed(p, c, partial), parse_status::need_more) << partial;
    EXPECT_TRUE(p.received_any());
    EXPECT_EQ(p.feed_eof(), parse_status::error) << partial;
    EXPECT_FALSE(p.error_detail().empty());
  }
}

TEST(response_parser, malformed_responses_are_errors) {
  for (std::string_view bad : {
           "HELLO\r\n\r\n",
           "GET / HTTP/1.1\r\n\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
           "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n",
       }) {
    http1_response_parser p;
    p.reset();
    collect c;
    EXPECT_EQ(feed(p, c, bad), parse_status::error) << bad;
    // A bad chunk is found after the head went out; everything else before it.
    EXPECT_EQ(c.heads, bad.ends_with("zz\r\n") ? 1 : 0) << bad;
    EXPECT_FALSE(p.error_detail().empty());
  }
}

TEST(response_parser, head_over_64k_is_an_error) {
  std::string big = "HTTP/1.1 200 OK\r\nX-Big: " + std::string(kMaxResponseHead, 'a');
  http1_response_parser p;
  p.reset();
  collect c;
  parse_status st = parse_status::need_more;
  for (size_t i = 0; i < big.size() && st == parse_status::need_more; i += 4096)
    st = feed(p, c, std::string_view(big).substr(i, 4096));
  EXPECT_EQ(st, parse_status::error);
  // Complete but too large, in one feed.
  http1_response_parser q;
  q.reset();
  EXPECT_EQ(feed(q, c, big + "\r\nContent-Length: 0\r\n\r\n"), parse_status::error);
}

TEST(response_parser, keep_alive_and_leftover) {
  struct row {
    std::string_view text;
    bool keep_alive;
  };
  for (row r : {row{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false},
                row{"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
                row{"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true},
                row{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true}}) {
    http1_response_parser p;
    p.reset();
    collect c;
    EXPECT_EQ(feed(p, c, r.text), parse_status::done);
    EXPECT_EQ(c.head.keep_alive, r.keep_alive) << r.text;
  }
  http1_response_parser p;
  p.reset();
  collect c;
  EXPECT_EQ(feed(p, c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxEXTRA"), parse_status::done);
  EXPECT_EQ(p.leftover(), 5u);
  EXPECT_EQ(c.body, "x");
  EXPECT_EQ(feed(p, c, "more"), parse_status::done);  // sticky until reset
}

TEST(response_parser, sink_can_stop_and_parser_is_reusable) {
  http1_response_parser p;
  p.reset();
  collect c;
  c.stop_on_body = true;
  EXPECT_EQ(feed(p, c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345"),
            parse_status::stopped);
  EXPECT_EQ(feed(p, c, "67890"), parse_status::stopped);
  EXPECT_EQ(c.body, "12345");
  p.reset();
  collect d;
  d.stop_on_head = true;
  EXPECT_EQ(feed(p, d, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), parse_status::stopped);
  EXPECT_EQ(d.body, "");
  p.reset();
  collect e;
  EXPECT_EQ(feed(p, e, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), parse_status::done);
  EXPECT_EQ(e.body, "ok");
}

// ---------------------------------------------------------------------------------------------
// End to end: a mini-gateway (HTTP server on the engine, 1 shard) forwards every request through
// an upstream_pool to an origin, and answers with what came back.

struct gate {
  std::mutex m;
  std::condition_variable cv;
  bool opened = false;
  void open() {
    std::lock_guard<std::mutex> l(m);
    opened = true;
    cv.notify_all();
  }
  bool wait(std::chrono::milliseconds timeout = test::kSafety) {
    std::unique_lock<std::mutex> l(m);
    return cv.wait_for(l, timeout, [&] { return opened; });
  }
};

class gateway_handler;

// Relays one upstream answer to the downstream slot: framed answers are buffered and answered
// with Content-Length; chunked or close-delimited ones are streamed as they arrive.
class relay final : public upstream_exchange {
 public:
  relay(gateway_handler& gw, response_slot slot, bool cancel_on_body)
      : gw_(gw), slot_(slot), cancel_on_body_(cancel_on_body) {}
  void on_head(const upstream_response_head& h) override;
  void on_body(std::string_view bytes) override;
  void on_end() override;
  void on_error(upstream_error e, std::string_view detail) override;
  void cancelled();

  uint64_t handle = 0;

 private:
  void done();
  gateway_handler& gw_;
  response_slot slot_;
  bool cancel_on_body_;
  bool streaming_ = false;
  int status_ = 0;
  std::string content_type_, session_, body_;
};

// Downstream targets: /stats (pool counters), /shutdown (pool.shutdown()), /cancel (cancels the
// exchange started by /hold), /hold, /cancel-on-body; anything else is forwarded.
class gateway_handler final : public request_handler {
 public:
  gateway_handler(engine::shard& s, const upstream_target& t, const upstream_options& o)
      : pool(s, t, o) {}
  ~gateway_handler() override {
    for (relay* r : live)
      delete r;
  }

  void on_request(const http_request& req, response_slot slot) override {
    std::string_view t = req.target;
    if (t == "/stats") {
      const upstream_counters& k = pool.counters();
      std::string s =
          "idle=" + std::to_string(pool.idle()) + " busy=" + std::to_string(pool.busy()) +
          " connects=" + std::to_string(k.connects) + " reused=" + std::to_string(k.reused) +
          " retries=" + std::to_string(k.retries) + " resets=" + std::to_string(k.resets) +
          " timeouts=" + std::to_string(k.timeouts) + " bad=" + std::to_string(k.bad_responses) +
          " exhausted=" + std::to_string(k.exhausted) +
          " waiting=" + std::to_string(pool.waiting()) + " waited=" + std::to_string(k.waited) +
          " streams=" + std::to_string(pool.streams()) +
          " failures=" + std::to_string(k.connect_failures);
      slot.respond(200, "text/plain", s);
      return;
    }
    if (t == "/shutdown") {
      pool.shutdown();
      slot.respond(200, "text/plain", "ok");
      return;
    }
    if (t == "/cancel") {
      if (held != nullptr) {
        relay* r = held;
        pool.cancel(r->handle);
        r->cancelled();
      }
      slot.respond(200, "text/plain", "ok");
      return;
    }
    auto* r = new relay(*this, slot, t == "/cancel-on-body");
    live.insert(r);
    upstream_request up{req.method, req.headers, req.body};
    up.stream = req.method == "GET";  // as the gateway does: MCP's server stream
    uint64_t h = pool.send(up, r);    // may end r at once (on_error) and return 0
    if (h == 0) return;
    r->handle = h;
    if (t == "/hold") held = r;
  }

  upstream_pool pool;
  relay* held = nullptr;
  std::set<relay*> live;
};

void relay::on_head(const upstream_response_head& h) {
  status_ = h.status;
  content_type_ = std::string(h.content_type);
  session_ = std::string(h.mcp_session_id);
  if (h.chunked_or_streaming) {
    streaming_ = true;
    http_header extra[] = {{"Mcp-Session-Id", session_}};
    slot_.begin(h.status, h.content_type,
                std::span<const http_header>(extra, session_.empty() ? 0 : 1));
  }
}

void relay::on_body(std::string_view bytes) {
  if (streaming_) {
    slot_.write(bytes);
  } else {
    body_.append(bytes);
  }
  if (cancel_on_body_) {  // from inside a callback
    gw_.pool.cancel(handle);
    cancelled();
  }
}

void relay::on_end() {
  if (streaming_) {
    slot_.finish();
  } else {
    http_header extra[] = {{"Mcp-Session-Id", session_}};
    slot_.respond(status_, content_type_, body_,
                  std::span<const http_header>(extra, session_.empty() ? 0 : 1));
  }
  done();
}

void relay::on_error(upstream_error e, std::string_view detail) {
  std::string msg = "upstream error: " + std::string(to_string(e)) + ": " + std::string(detail);
  if (streaming_) {
    slot_.write("\n[" + msg + "]\n");
    slot_.finish();
  } else {
    slot_.respond(502, "text/plain", msg);
  }
  done();
}

void relay::cancelled() {
  if (streaming_) {
    slot_.write("[cancelled]");
    slot_.finish();
  } else {
    slot_.respond(503, "text/plain", "[cancelled]");
  }
  done();
}

void relay::done() {
  if (gw_.held == this) gw_.held = nullptr;
  gw_.live.erase(this);
  delete this;
}

// Whether the space-separated stats line holds the word `want`.
bool has_stat(std::string_view stats, std::string_view want) {
  const std::string line = " " + std::string(stats) + " ", word = " " + std::string(want) + " ";
  return line.find(word) != std::string::npos;
}

class mini_gateway {
 public:
  mini_gateway(const std::string& url, upstream_options opts = {}) {
    std::string err;
    EXPECT_TRUE(parse_upstream_url(url, target_, err)) << err;
    engine::runtime_config cfg;
    cfg.shards = 1;
    cfg.pin = false;
    cfg.shard.buffer_count = 256;
    cfg.shard.cq_entries = 4096;
    cfg.shard.max_outgoing = 256;
    upstream_target t = target_;
    EXPECT_TRUE(server_
                    .start(cfg, http_limits{},
                           [t, opts](engine::shard& s) {
                             return std::make_unique<gateway_handler>(s, t, opts);
                           })
                    .ok());
  }
  ~mini_gateway() {
    server_.stop(2s);
    server_.join();
  }
  [[nodiscard]] uint16_t port() const { return server_.port(); }

  std::string stats() {
    test::client c(port());
    c.write("GET /stats HTTP/1.1\r\nHost: g\r\n\r\n");
    auto r = c.read_response();
    return r ? r->body : "no answer";
  }
  // Asks /stats until it contains every piece in `want` (the pool acts on its own thread).
  bool wait_stats(std::initializer_list<std::string_view> want) {
    auto deadline = std::chrono::steady_clock::now() + test::kSafety;
    while (std::chrono::steady_clock::now() < deadline) {
      bool all = true;
      const std::string s = stats();
      for (std::string_view w : want)
        all = all && has_stat(s, w);
      if (all) return true;
    }
    return false;
  }

 private:
  upstream_target target_;
  http_server server_;
};

std::string post(std::string_view target, std::string_view body, std::string_view extra = "") {
  return "POST " + std::string(target) +
         " HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + std::string(extra) + "\r\n" + std::string(body);
}

// ---- origin 1: an http_server on its own runtime ----

// /mcp: echoes the body, then every request header line; X-Mode: sse streams two events.
class origin_handler final : public request_handler {
 public:
  void on_request(const http_request& req, response_slot slot) override {
    for (const http_header& h : req.headers) {
      if (h.name == "X-Mode" && h.value == "sse") {
        slot.begin(200, "text/event-stream");
        slot.write("data: 1\n\n");
        slot.write("data: 2\n\n");
        slot.finish();
        return;
      }
    }
    std::string out(req.body);
    out += "\n";
    for (const http_header& h : req.headers)
      out += std::string(h.name) + ": " + std::string(h.value) + "\n";
    out += "target: " + std::string(req.target) + " method: " + std::string(req.method) + "\n";
    http_header extra[] = {{"Mcp-Session-Id", "s-42"}};
    slot.respond(200, "application/json", out, extra);
  }
};

class http_origin {
 public:
  http_origin() {
    engine::runtime_config cfg;
    cfg.shards = 1;
    cfg.pin = false;
    cfg.shard.buffer_count = 256;
    cfg.shard.cq_entries = 4096;
    EXPECT_TRUE(server_
                    .start(cfg, http_limits{},
                           [](engine::shard&) { return std::make_unique<origin_handler>(); })
                    .ok());
  }
  ~http_origin() {
    server_.stop(1s);
    server_.join();
  }
  [[nodiscard]] std::string url() const {
    return "http://127.0.0.1:" + std::to_string(server_.port()) + "/mcp";
  }

 private:
  http_server server_;
};

TEST(upstream_pool_e2e, forwards_and_reuses_one_connection) {
  http_origin origin;
  mini_gateway gw(origin.url());
  test::client c(gw.port());
  for (int i = 0; i < 3; ++i) {
    std::string body = "{\"jsonrpc\":\"2.0\",\"id\":" + std::to_string(i) + "}";
    ASSERT_TRUE(c.write(post("/x", body)));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(r->body.starts_with(body + "\n")) << r->body;
    EXPECT_NE(r->body.find("target: /mcp method: POST"), std::string::npos) << r->body;
    EXPECT_TRUE(r->has_header("Mcp-Session-Id: s-42")) << r->head;
  }
  std::string s = gw.stats();
  EXPECT_TRUE(has_stat(s, "connects=1")) << s;
  EXPECT_TRUE(has_stat(s, "reused=2")) << s;
  EXPECT_TRUE(has_stat(s, "idle=1")) << s;
  EXPECT_TRUE(has_stat(s, "busy=0")) << s;
}

TEST(upstream_pool_e2e, hop_by_hop_headers_are_dropped) {
  http_origin origin;
  mini_gateway gw(origin.url());
  test::client c(gw.port());
  ASSERT_TRUE(
      c.write(post("/x", "{}",
                   "Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: timeout=5\r\n"
                   "Proxy-Authorization: secret\r\nTE: trailers\r\nUpgrade: h2c\r\n"
                   "X-Keep: yes\r\nMcp-Session-Id: s1\r\n")));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  const std::string& b = r->body;
  EXPECT_NE(b.find("X-Keep: yes\n"), std::string::npos) << b;
  EXPECT_NE(b.find("Mcp-Session-Id: s1\n"), std::string::npos) << b;
  EXPECT_NE(b.find("Content-Type: application/json\n"), std::string::npos) << b;
  EXPECT_NE(b.find("Content-Length: 2\n"), std::string::npos) << b;
  std::string host = "Host: 127.0.0.1:" + origin.url().substr(17, origin.url().size() - 17 - 4);
  EXPECT_NE(b.find(host + "\n"), std::string::npos) << b;
  EXPECT_EQ(b.find("Host: g"), std::string::npos) << b;
  EXPECT_EQ(b.find("X-Drop"), std::string::npos) << b;
  EXPECT_EQ(b.find("Keep-Alive:"), std::string::npos) << b;
  EXPECT_EQ(b.find("Proxy-"), std::string::npos) << b;
  EXPECT_EQ(b.find("TE:"), std::string::npos) << b;
  EXPECT_EQ(b.find("Upgrade"), std::string::npos) << b;
  size_t first = b.find("Connection: ");
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(b.find("Connection: ", first + 1), std::string::npos) << "one Connection header";
  EXPECT_NE(b.find("Connection: keep-alive\n"), std::string::npos) << b;
}

TEST(upstream_pool_e2e, chunked_stream_from_http_server_then_reuse) {
  http_origin origin;
  mini_gateway gw(origin.url());
  test::client c(gw.port());
  // A POST answered with a (finite) SSE stream: the connection is kept. A GET stream's would not.
  ASSERT_TRUE(c.write(post("/x", "{}", "X-Mode: sse\r\n")));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->has_header("Content-Type: text/event-stream")) << r->head;
  EXPECT_EQ(r->body, "data: 1\n\ndata: 2\n\n");
  ASSERT_TRUE(c.write(post("/x", "{}")));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  std::string s = gw.stats();
  EXPECT_TRUE(has_stat(s, "connects=1")) << s;
  EXPECT_TRUE(has_stat(s, "reused=1")) << s;
}

TEST(upstream_pool_e2e, concurrent_clients_share_a_bounded_pool) {
  http_origin origin;
  upstream_options opts;
  opts.max_connections = 8;
  mini_gateway gw(origin.url(), opts);
  constexpr int kClients = 8;
  constexpr int kRequests = 25;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      test::client c(gw.port());
      for (int i = 0; i < kRequests; ++i) {
        std::string body = "{\"c\":" + std::to_string(t) + ",\"i\":" + std::to_string(i) + "}";
        if (!c.write(post("/x", body))) return;
        auto r = c.read_response();
        if (r && r->status == 200 && r->body.starts_with(body + "\n")) ++ok;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(ok.load(), kClients * kRequests);
  std::string s = gw.stats();
  EXPECT_TRUE(has_stat(s, "busy=0")) << s;
  EXPECT_TRUE(has_stat(s, "exhausted=0")) << s;
  size_t at = s.find("connects=");
  ASSERT_NE(at, std::string::npos);
  EXPECT_LE(std::stoi(s.substr(at + 9)), kClients) << s;
}

// ---- origin 2: raw sockets on a plain thread, for the faults ----

class raw_origin {
 public:
  using script = std::function<void(raw_origin&)>;
  explicit raw_origin(script run) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(listen_fd_, 256), 0);
    socklen_t len = sizeof a;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, run = std::move(run)] { run(*this); });
  }
  ~raw_origin() {
    join();
    for (int fd : fds_)
      ::close(fd);
    ::close(listen_fd_);
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/mcp";
  }

  // Next connection (-1 after the safety timeout).
  int accept_one() {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, int(test::kSafety.count())) <= 0) return -1;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      ++accepts;
      fds_.push_back(fd);
    }
    return fd;
  }
  // One request (head + Content-Length body); false on EOF or timeout.
  static bool read_request(int fd, std::string& out) {
    out.clear();
    for (;;) {
      size_t he = out.find("\r\n\r\n");
      if (he != std::string::npos) {
        size_t cl = out.find("Content-Length: ");
        size_t need = he + 4;
        if (cl != std::string::npos && cl < he)
          need += std::strtoul(out.c_str() + cl + 16, nullptr, 10);
        if (out.size() >= need) return true;
      }
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, int(test::kSafety.count())) <= 0) return false;
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;
      out.append(buf, size_t(n));
    }
  }
  static bool write_all(int fd, std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(size_t(n));
    }
    return true;
  }
  // Waits until the peer closes (input is discarded); false after the safety timeout.
  static bool wait_eof(int fd) {
    auto deadline = std::chrono::steady_clock::now() + test::kSafety;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, int(left.count())) <= 0) return false;
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return true;
    }
  }
  // Closes with a reset (SO_LINGER 0).
  void reset(int fd) {
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    forget(fd);
    ::close(fd);
  }
  void close(int fd) {
    forget(fd);
    ::close(fd);
  }

  std::atomic<int> accepts{0};
  gate g1, g2;
  std::atomic<bool> saw_eof{false};

 private:
  void forget(int fd) { std::erase(fds_, fd); }
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::vector<int> fds_;
  std::thread thread_;
};

constexpr std::string_view kOk =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    "Content-Length: 2\r\n\r\n{}";

// An SSE answer's head (chunked) and its first event, "data: 1".
constexpr std::string_view kSseHeadAndEvent1 =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    "Transfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n";

// Reads until `want` has arrived; false on EOF or after the safety timeout.
bool read_until(test::client& c, std::string_view want) {
  while (c.buffered().find(want) == std::string::npos)
    if (!c.fill()) return false;
  return true;
}

// Each request on a downstream connection of its own.
std::optional<test::client::response> ask(uint16_t port, std::string_view target = "/x",
                                          std::string_view body = "{}") {
  test::client c(port);
  if (!c.write(post(target, body))) return std::nullopt;
  return c.read_response();
}

TEST(upstream_pool_faults, refused_port_is_connect_failed) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  uint16_t port = ntohs(a.sin_port);
  ::close(fd);  // bound, never listening, closed: connects are refused
  mini_gateway gw("http://127.0.0.1:" + std::to_string(port) + "/mcp");
  auto r = ask(gw.port());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find("connect_failed"), std::string::npos) << r->body;
  EXPECT_TRUE(has_stat(gw.stats(), "failures=1"));
}

TEST(upstream_pool_faults, silent_origin_is_response_timeout) {
  raw_origin origin([](raw_origin& o) {
    int fd = o.accept_one();
    std::string req;
    EXPECT_TRUE(raw_origin::read_request(fd, req));
    EXPECT_TRUE(raw_origin::wait_eof(fd));  // the pool gives up and closes
  });
  upstream_options opts;
  opts.response_timeout = 200ms;
  mini_gateway gw(origin.url(), opts);
  auto r = ask(gw.port());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find("response_timeout"), std::string::npos) << r->body;
  origin.join();
  std::string s = gw.stats();
  EXPECT_TRUE(has_stat(s, "timeouts=1")) << s;
  EXPECT_TRUE(has_stat(s, "busy=0")) << s;
}

TEST(upstream_pool_faults, reset_mid_answer) {
  raw_origin origin([](raw_origin& o) {
    int fd = o.accept_one();
    std::string req;
    EXPECT_TRUE(raw_origin::read_request(fd, req));
    raw_origin::write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    o.reset(fd);
  });
  mini_gateway gw(origin.url());
  auto r = ask(gw.port());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find("reset"), std::string::npos) << r->body;
  std::string s = gw.stats();
  EXPECT_TRUE(has_stat(s, "resets=1")) << s;
  EXPECT_TRUE(has_stat(s, "retries=0")) << s;
}

TEST(upstream_pool_faults, garbage_is_bad_response) {
  raw_origin origin([](raw_origin& o) {
    int fd = o.accept_one();
    std::string req;
    EXPECT_TRUE(raw_origin::read_request(fd, req));
    raw_origin::write_all(fd, "SSH-2.0-OpenSSH\r\n\r\n");
    EXPECT_TRUE(raw_origin::wait_eof(fd));
  });
  mini_gateway gw(origin.url());
  auto r = ask(gw.port());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find("bad_response"), std::string::npos) << r->body;
  EXPECT_TRUE(has_stat(gw.stats(), "bad=1"));
}

TEST(upstream_pool_faults, chunked_in_pieces_is_dechunked_and_reused) {
  raw_origin origin([](raw_origin& o) {
    int fd = o.accept_one();
    std::string req;
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(raw_origin::read_request(fd, req));
      raw_origin::write_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-");
      raw_origin::write_all(fd, "Encoding: chunked\r\n\r\n3\r");
      raw_origin::write_all(fd, "\nabc\r\n4;x=y\r\ndefg\r\n");
      raw_origin::write_all(fd, "0\r\n\r\n");
    }
  });
  mini_gateway gw(origin.url());
  test::client c(gw.port());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(c.write(post("/x", "{}")));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "abcdefg");
  }
  origin.join();
  EXPECT_EQ(origin.accepts.load(), 1);
  EXPECT_TRUE(has_stat(gw.stats(), "reused=1"));
}

TEST(upstream_pool_faults, close_delimited_body_streams_until_eof) {
  raw_origin origin([](raw_origin& o) {
    int fd = o.accept_one();
    std::string req;
    ASSERT_TRUE(raw_origin::read_request(fd, req));
    raw_origin::write_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart1,");
    raw_origin::write_all(fd, "part2");
    o.close(fd);
  });
  mini_gateway gw(origin.url());
  auto r = ask(gw.port());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "part1,part2");
  std::string s = gw.stats();
  EXPECT_TRUE(has_stat(s, "idle=0")) << s;  // not reusable
  EXPECT_TRUE(has_stat(s, "resets=0")) << s;
}

TEST(upstream_pool_faults, continue_and_204_then_reuse) {
  raw_origin origin([](raw_origin& o) {
    int fd = o.accept_one();
    std::string req;
    ASSERT_TRUE(raw_origin::read_request(fd, req));
    raw_origin::write_all(fd, "HTTP/1.1 100 Continue\r\n\r\n");
    raw_origin::write_all(fd, "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n");
    ASSERT_TRUE(raw_origin::read_request(fd, req));
    raw_origin::write_all(fd, kOk);
  });
  mini_gateway gw(origin.url());
  test::client c(gw.port());
  ASSERT_TRUE(c.write(post("/x", "{}")));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->body, "");
  ASSERT_TRUE(c.write(post("/x", "{}")));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "{}");
  origin.join();
  EXPECT_EQ(origin.accepts.load(), 1);
}

TEST(upstream_pool_faults, reused_connection_closed_before_answer_is_retried_once) {
  raw_origin origin([](raw_origin& o) {
    int c1 = o.accept_one();
    std::string req;
    ASSERT_TRUE(raw_origin::read_request(c1, req));
    raw_origin::write_all(c1, kOk);
    // The keep-alive race: the second request arrives as the origin drops the connection.
    ASSERT_TRUE(raw_origin::read_request(c1, req));
    o.close(c1);
    int c2 = o.accept_one();
    ASSERT_GE(c2, 0);
    ASSERT_TRUE(raw_origin::read_request(c2, req));
    EXPECT_NE(req.find("{\"second\":1}"), std::string::npos) << req;
    raw_origin::write_all(c2, kOk);
  });
  mini_gateway gw(origin.url());
  auto r = ask(gw.port());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = ask(gw.port(), "/x", "{\"second\":1}");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  origin.join();
  EXPECT_EQ(origin.accepts.load(), 2);
  std::string s = gw.stats();
  EXPECT_TRUE(has_stat(s, "retries=1")) << s;
  EXPECT_TRUE(has_stat(s, "reused=1")) << s;
  EXPECT_TRUE(has_stat(s, "resets=0")) << s;
}

TEST(upstream_pool_faults, never_retried_after_a_response_byte) {
  raw_origin origin([](raw_origin& o) {
    int c1 = o.accept_one();
    std::string req;
    ASSERT_TRUE(raw_origin::read_request(c1, req));
    raw_origin::write_all(c1, kOk);
    ASSERT_TRUE(raw_origin::read_request(c1, req));
    raw_origin::write_all(c1, "HTTP/1.1 200 OK\r\n");
    o.close(c1);
  });
  mini_gateway gw(origin.url());
  ASSERT_TRUE(ask(gw.port()));
  auto r = ask(gw.port());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find("reset"), std::string::npos) << r->body;
  origin.join();
  EXPECT_EQ(origin.accepts.load(), 1);
  std::string s = gw.stats();
  EXPECT_TRUE(has_stat(s, "retries=0")) << s;
  EXPECT_TRUE(has_stat(s, "connects=1")) << s;
}

TEST(upstream_pool_faults, idle_connection_closed_by_origin_is_dropped_silently) {
  raw_origin origin([](raw_origin& o) {
    int c1 = o.accept_one();
    std::string req;
    ASSERT_TRUE(raw_origin::read_request(c1, req));
    raw_origin::write_all(c1, kOk);
    o.g1.wait();  // the test saw the answer
    o.close(c1);
    int c2 = o.accept_one();
    ASSERT_GE(c2, 0);
    ASSERT_TRUE(raw_origin::read_request(c2, req));
    raw_origin::write_all(c2, kOk);
  });
  mini_gateway gw(origin.url());
  ASSERT_TRUE(ask(gw.port()));
  EXPECT_TRUE(has_stat(gw.stats(), "idle=1"));
  origin.g1.open();
  EXPECT_TRUE(gw.wait_stats({"idle=0", "busy=0"})) << gw.stats();
  auto r = ask(gw.port());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  origin.join();
  std::string s = gw.stats();
  EXPECT_TRUE(has_stat(s, "connects=2")) << s;
  EXPECT_TRUE(has_stat(s, "retries=0")) << s;
  EXPECT_TRUE(has_stat(s, "reused=0")) << s;
}

// Every connection that answered cleanly stays pooled, however many were busy at once (up to
// max_connections): a smaller cap on idle ones made every call over it connect and close.
TEST(upstream_pool_faults, every_connection_that_answered_is_kept_for_reuse) {
  constexpr int kConcurrent = 80;
  raw_origin origin([](raw_origin& o) {
    std::vector<int> fds;
    std::string req;
    for (int i = 0; i < kConcurrent; ++i) {  // all busy at once before any is answered
      int fd = o.accept_one();
      ASSERT_GE(fd, 0);
      ASSERT_TRUE(raw_origin::read_request(fd, req));
      fds.push_back(fd);
    }
    for (int fd : fds)
      raw_origin::write_all(fd, kOk);
    EXPECT_TRUE(o.g1.wait());  // the test has checked the pool; then a second round, reused
    for (int fd : fds) {
      ASSERT_TRUE(raw_origin::read_request(fd, req));
      raw_origin::write_all(fd, kOk);
    }
  });
  mini_gateway gw(origin.url());
  std::vector<std::unique_ptr<test::client>> clients;
  for (int i = 0; i < kConcurrent; ++i) {
    clients.push_back(std::make_unique<test::client>(gw.port()));
    ASSERT_TRUE(clients.back()->write(post("/x", "{}")));
  }
  for (auto& c : clients) {
    auto r = c->read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_TRUE(gw.wait_stats({"idle=80", "busy=0"})) << gw.stats();
  origin.g1.open();
  for (auto& c : clients)
    ASSERT_TRUE(c->write(post("/x", "{}")));
  for (auto& c : clients) {
    auto r = c->read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  origin.join();
  std::string s = gw.stats();
  EXPECT_TRUE(has_stat(s, "connects=80")) << s;
  EXPECT_TRUE(has_stat(s, "reused=80")) << s;
}

TEST(upstream_pool_faults, idle_timeout_closes_pooled_connection) {
  raw_origin origin([](raw_origin& o) {
    int c1 = o.accept_one();
    std::string req;
    ASSERT_TRUE(raw_origin::read_request(c1, req));
    raw_origin::write_all(c1, kOk);
    o.saw_eof = raw_origin::wait_eof(c1);
  });
  upstream_options opts;
  opts.idle_timeout = 100ms;
  mini_gateway gw(origin.url(), opts);
  ASSERT_TRUE(ask(gw.port()));
  origin.join();
  EXPECT_TRUE(origin.saw_eof.load());
  EXPECT_TRUE(gw.wait_stats({"idle=0"}));
}

TEST(upstream_pool_faults, sse_events_arrive_progressively) {
  raw_origin origin([](raw_origin& o) {
    int fd = o.accept_one();
    std::string req;
    ASSERT_TRUE(raw_origin::read_request(fd, req));
    raw_origin::write_all(fd, kSseHeadAndEvent1);
    EXPECT_TRUE(o.g1.wait());  // the client has seen the first event
    raw_origin::write_all(fd, "9\r\ndata: 2\n\n\r\n0\r\n\r\n");
  });
  mini_gateway gw(origin.url());
  test::client c(gw.port());
  ASSERT_TRUE(c.write(post("/x", "{}")));
  ASSERT_TRUE(read_until(c, "data: 1\n\n")) << c.buffered();
  EXPECT_EQ(c.buffered().find("data: 2"), std::string::npos);
  EXPECT_NE(c.buffered().find("Content-Type: text/event-stream"), std::string::npos);
  origin.g1.open();
  ASSERT_TRUE(read_until(c, "\r\n0\r\n\r\n")) << c.buffered();
  EXPECT_NE(c.buffered().find("data: 2\n\n"), std::string::npos);
}

TEST(upstream_pool_faults, cancel_while_streaming_stops_and_closes) {
  raw_origin origin([](raw_origin& o) {
    int fd = o.accept_one();
    std::string req;
    ASSERT_TRUE(raw_origin::read_request(fd, req));
    raw_origin::write_all(fd, kSseHeadAndEvent1);
    o.saw_eof = raw_origin::wait_eof(fd);  // cancel() closes the upstream connection
  });
  mini_gateway gw(origin.url());
  auto r = ask(gw.port(), "/cancel-on-body");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "data: 1\n\n[cancelled]");
  origin.join();
  EXPECT_TRUE(origin.saw_eof.load());
  std::string s = gw.stats();
  EXPECT_TRUE(has_stat(s, "idle=0")) << s;
  EXPECT_TRUE(has_stat(s, "busy=0")) << s;
}

TEST(upstream_pool_faults, cancel_before_the_head_closes_the_connection) {
  raw_origin origin([](raw_origin& o) {
    int fd = o.accept_one();
    std::string req;
    ASSERT_TRUE(raw_origin::read_request(fd, req));
    o.g1.open();  // the request reached the origin
    o.saw_eof = raw_origin::wait_eof(fd);
  });
  mini_gateway gw(origin.url());
  test::client held(gw.port());
  ASSERT_TRUE(held.write(post("/hold", "{}")));
  ASSERT_TRUE(origin.g1.wait());
  auto r = ask(gw.port(), "/cancel");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "ok");
  auto h = held.read_response();
  ASSERT_TRUE(h);
  EXPECT_EQ(h->body, "[cancelled]");
  origin.join();
  EXPECT_TRUE(origin.saw_eof.load());
  EXPECT_TRUE(gw.wait_stats({"idle=0", "busy=0"}));
}

TEST(upstream_pool_faults, pool_exhausted_when_the_wait_queue_is_full) {
  raw_origin origin([](raw_origin& o) {
    int fd = o.accept_one();
    std::string req;
    ASSERT_TRUE(raw_origin::read_request(fd, req));
    o.g1.open();
    EXPECT_TRUE(o.g2.wait());
    raw_origin::write_all(fd, kOk);
  });
  upstream_options opts;
  opts.max_connections = 1;
  opts.max_waiting = 0;
  mini_gateway gw(origin.url(), opts);
  test::client held(gw.port());
  ASSERT_TRUE(held.write(post("/hold", "{}")));
  ASSERT_TRUE(origin.g1.wait());
  auto r = ask(gw.port());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find("pool_exhausted"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("wait queue is full"), std::string::npos) << r->body;
  origin.g2.open();
  auto h = held.read_response();
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_TRUE(has_stat(gw.stats(), "exhausted=1"));
}

// All connections busy: the next call waits for one instead of failing, and is sent on the
// first connection that comes free.
TEST(upstream_pool_faults, call_waits_for_a_busy_connection) {
  raw_origin origin([](raw_origin& o) {
    int fd = o.accept_one();
    std::string req;
    ASSERT_TRUE(raw_origin::read_request(fd, req));
    o.g1.open();
    EXPECT_TRUE(o.g2.wait());  // the second call is queued
    raw_origin::write_all(fd, kOk);
    ASSERT_TRUE(raw_origin::read_request(fd, req));  // the queued call, same connection
    EXPECT_NE(req.find("\"second\""), std::string::npos) << req;
    raw_origin::write_all(fd, kOk);
  });
  upstream_options opts;
  opts.max_connections = 1;
  mini_gateway gw(origin.url(), opts);
  test::client first(gw.port());
  ASSERT_TRUE(first.write(post("/x", "{}")));
  ASSERT_TRUE(origin.g1.wait());
  test::client second(gw.port());
  ASSERT_TRUE(second.write(post("/x", "{\"second\":1}")));
  EXPECT_TRUE(gw.wait_stats({"waiting=1", "waited=1"})) << gw.stats();
  origin.g2.open();
  auto r1 = first.read_response();
  auto r2 = second.read_response();
  ASSERT_TRUE(r1);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r1->status, 200);
  EXPECT_EQ(r2->status, 200) << r2->body;
  origin.join();
  std::string s = gw.stats();
  EXPECT_TRUE(has_stat(s, "connects=1")) << s;
  EXPECT_TRUE(has_stat(s, "reused=1")) << s;
  EXPECT_TRUE(has_stat(s, "waiting=0")) << s;
  EXPECT_TRUE(has_stat(s, "exhausted=0")) << s;
}

// A call waits for a connection no longer than its response timeout, and a cancelled one
// leaves the queue. The one connection streams an SSE answer meanwhile (no timeout of its own).
TEST(upstream_pool_faults, waiting_call_times_out_or_is_cancelled) {
  raw_origin origin([](raw_origin& o) {
    int fd = o.accept_one();
    std::string req;
    ASSERT_TRUE(raw_origin::read_request(fd, req));
    raw_origin::write_all(fd, kSseHeadAndEvent1);
    EXPECT_TRUE(o.g1.wait());
    raw_origin::write_all(fd, "0\r\n\r\n");
  });
  upstream_options opts;
  opts.max_connections = 1;
  opts.response_timeout = 300ms;
  mini_gateway gw(origin.url(), opts);
  test::client stream(gw.port());
  ASSERT_TRUE(stream.write(post("/x", "{}")));
  ASSERT_TRUE(read_until(stream, "data: 1")) << stream.buffered();
  // Times out in the queue.
  auto t0 = std::chrono::steady_clock::now();
  auto r = ask(gw.port());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find("pool_exhausted"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("came free"), std::string::npos) << r->body;
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 250ms);
  // Cancelled in the queue.
  test::client held(gw.port());
  ASSERT_TRUE(held.write(post("/hold", "{}")));
  EXPECT_TRUE(gw.wait_stats({"waiting=1"})) << gw.stats();
  ask(gw.port(), "/cancel");
  auto h = held.read_response();
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 503);
  EXPECT_TRUE(has_stat(gw.stats(), "waiting=0")) << gw.stats();
  origin.g1.open();
  ASSERT_TRUE(read_until(stream, "\r\n0\r\n\r\n")) << stream.buffered();
  origin.join();
  std::string s = gw.stats();
  EXPECT_TRUE(has_stat(s, "waited=2")) << s;
  EXPECT_TRUE(has_stat(s, "exhausted=1")) << s;
  EXPECT_TRUE(has_stat(s, "connects=1")) << s;
}

// A stream (GET, open as long as an MCP session lives) holds a connection outside
// max_connections: with the one call connection's worth of streams open, a call still gets a
// connection of its own at once. The stream's connection closes when it ends.
TEST(upstream_pool_faults, streams_do_not_take_call_connections) {
  raw_origin origin([](raw_origin& o) {
    int s = o.accept_one();
    std::string req;
    ASSERT_TRUE(raw_origin::read_request(s, req));
    EXPECT_TRUE(req.starts_with("GET ")) << req;
    raw_origin::write_all(s, kSseHeadAndEvent1);
    int c = o.accept_one();
    ASSERT_GE(c, 0);
    ASSERT_TRUE(raw_origin::read_request(c, req));
    EXPECT_TRUE(req.starts_with("POST ")) << req;
    raw_origin::write_all(c, kOk);
    EXPECT_TRUE(o.g1.wait());
    raw_origin::write_all(s, "0\r\n\r\n");
    o.saw_eof = raw_origin::wait_eof(s);
  });
  upstream_options opts;
  opts.max_connections = 1;
  mini_gateway gw(origin.url(), opts);
  test::client stream(gw.port());
  ASSERT_TRUE(stream.write("GET /x HTTP/1.1\r\nHost: g\r\nAccept: text/event-stream\r\n\r\n"));
  ASSERT_TRUE(read_until(stream, "data: 1")) << stream.buffered();
  auto r = ask(gw.port());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  std::string s = gw.stats();
  EXPECT_TRUE(has_stat(s, "streams=1")) << s;
  EXPECT_TRUE(has_stat(s, "waited=0")) << s;
  EXPECT_TRUE(has_stat(s, "idle=1")) << s;
  origin.g1.open();
  ASSERT_TRUE(read_until(stream, "\r\n0\r\n\r\n")) << stream.buffered();
  origin.join();
  EXPECT_TRUE(origin.saw_eof.load());  // not kept: it stood outside max_connections
  EXPECT_TRUE(gw.wait_stats({"streams=0", "idle=1", "busy=0"})) << gw.stats();
}

TEST(upstream_pool_faults, streams_over_max_streams_are_refused_at_once) {
  raw_origin origin([](raw_origin& o) {
    int s = o.accept_one();
    std::string req;
    ASSERT_TRUE(raw_origin::read_request(s, req));
    raw_origin::write_all(s, kSseHeadAndEvent1);
    EXPECT_TRUE(o.g1.wait());
    raw_origin::write_all(s, "0\r\n\r\n");
  });
  upstream_options opts;
  opts.max_streams = 1;
  mini_gateway gw(origin.url(), opts);
  const std::string get = "GET /x HTTP/1.1\r\nHost: g\r\nAccept: text/event-stream\r\n\r\n";
  test::client first(gw.port());
  ASSERT_TRUE(first.write(get));
  ASSERT_TRUE(read_until(first, "data: 1")) << first.buffered();
  test::client second(gw.port());
  ASSERT_TRUE(second.write(get));
  auto r = second.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find("maximum of upstream streams"), std::string::npos) << r->body;
  origin.g1.open();
  ASSERT_TRUE(read_until(first, "\r\n0\r\n\r\n")) << first.buffered();
  origin.join();
  EXPECT_TRUE(has_stat(gw.stats(), "exhausted=1"));
}

TEST(upstream_pool_faults, shutdown_fails_pending_and_later_sends) {
  raw_origin origin([](raw_origin& o) {
    int fd = o.accept_one();
    std::string req;
    ASSERT_TRUE(raw_origin::read_request(fd, req));
    o.g1.open();
    o.saw_eof = raw_origin::wait_eof(fd);
  });
  mini_gateway gw(origin.url());
  test::client held(gw.port());
  ASSERT_TRUE(held.write(post("/hold", "{}")));
  ASSERT_TRUE(origin.g1.wait());
  auto r = ask(gw.port(), "/shutdown");
  ASSERT_TRUE(r);
  auto h = held.read_response();
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 502);
  EXPECT_NE(h->body.find("shutting_down"), std::string::npos) << h->body;
  r = ask(gw.port());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find("shutting_down"), std::string::npos) << r->body;
  origin.join();
  EXPECT_TRUE(origin.saw_eof.load());
}

}  // namespace
}  // namespace sluice::net
