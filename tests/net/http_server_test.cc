#include "net/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "tests/engine/test_client.h"

namespace sluice::net {
namespace {

using namespace std::chrono_literals;

// Answers an upstream's first bytes to the request that opened the connection.
class upstream_handler : public engine::connection_handler {
 public:
  void on_open(engine::connection&) override {}
  void on_connected(engine::connection& conn, int error) override {
    if (error != 0) {
      slot_.respond(502, "text/plain", "no upstream\n");
      return;
    }
    conn.send(std::string_view("req"));
  }
  void on_data(engine::connection& conn, std::span<const char> bytes) override {
    slot_.respond(200, "text/plain", std::string_view(bytes.data(), bytes.size()));
    conn.close();
  }
  void on_shutdown(engine::connection&) override {}  // still in use while draining
  void on_closed(engine::connection&) override {}
  response_slot slot_;
};

// /echo: body back; /defer: held until /release (/deferred: how many are held); /stream: chunked;
// /upstream?P: ask 127.0.0.1:P.
class test_handler : public request_handler {
 public:
  explicit test_handler(engine::shard& s) : shard_(s) {}
  void on_request(const http_request& req, response_slot slot) override {
    std::string_view t = req.target;
    if (t == "/defer") {
      deferred_.push_back(slot);
      return;
    }
    if (t == "/keep") {  // answered at once; the slot is kept (stale from then on)
      kept_ = slot;
      slot.respond(200, "text/plain", "kept");
      return;
    }
    if (t == "/stale") {  // writes through the kept slot, then answers
      kept_.respond(200, "text/plain", "written through a stale slot");
      slot.respond(200, "text/plain", std::to_string(kept_.valid()));
      return;
    }
    if (t == "/deferred") {  // how many wait for /release
      slot.respond(200, "text/plain", std::to_string(deferred_.size()));
      return;
    }
    if (t == "/release") {
      for (auto& d : deferred_)
        d.respond(200, "text/plain", "deferred");
      deferred_.clear();
      slot.respond(200, "text/plain", "release");
      return;
    }
    if (t == "/stream") {
      slot.begin(200, "text/event-stream");
      slot.write("data: 1\n\n");
      slot.write("data: 2\n\n");
      slot.finish();
      return;
    }
    if (t.starts_with("/upstream?")) {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(uint16_t(std::atoi(std::string(t.substr(10)).c_str())));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      up_.slot_ = slot;
      if (shard_.connect(reinterpret_cast<sockaddr*>(&a), sizeof a, 1s, &up_) == nullptr) {
        slot.respond(502, "text/plain", "no slot\n");
      }
      return;
    }
    http_header extra[] = {{"X-Target", t}};
    slot.respond(200, "application/json", req.body, extra);
  }

 private:
  engine::shard& shard_;
  std::vector<response_slot> deferred_;
  response_slot kept_;
  upstream_handler up_;
};

class http_server_test : public testing::Test {
 protected:
  void start(unsigned shards = 2) {
    engine::runtime_config cfg;
    cfg.shards = shards;
    cfg.shard.buffer_count = 512;
    cfg.shard.cq_entries = 8192;
    ASSERT_TRUE(
        server_
            .start(cfg, limits_, [](engine::shard& s) { return std::make_unique<test_handler>(s); })
            .ok());
  }
  void TearDown() override {
    server_.stop(1s);
    server_.join();
  }
  uint16_t port() const { return server_.port(); }

  http_limits limits_{};
  http_server server_;
};

std::string post(std::string_view target, std::string_view body, std::string_view extra = "") {
  return "POST " + std::string(target) +
         " HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         std::string(extra) + "\r\n" + std::string(body);
}

TEST_F(http_server_test, keep_alive_serves_several_requests) {
  start();
  test::client c(port());
  for (int i = 0; i < 5; ++i) {
    std::string body = "{\"n\":" + std::to_string(i) + "}";
    ASSERT_TRUE(c.write(post("/echo", body)));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, body);
    EXPECT_TRUE(r->has_header("X-Target: /echo"));
    EXPECT_TRUE(r->has_header("Content-Type: application/json"));
    EXPECT_FALSE(r->has_header("Connection: close"));
  }
}

TEST_F(http_server_test, pipelined_x16_in_one_write_answered_in_order) {
  start();
  test::client c(port());
  std::string all;
  for (int i = 0; i < 16; ++i)
    all += post("/echo", "{\"i\":" + std::to_string(i) + "}");
  ASSERT_TRUE(c.write(all));
  for (int i = 0; i < 16; ++i) {
    auto r = c.read_response();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body, "{\"i\":" + std::to_string(i) + "}");
  }
}

// Answers are held in a ring that restarts whenever nothing is owed; the requests' sequence
// numbers do not. Pipelined, single and pipelined again on one connection, each answer comes
// in order, and a slot kept from an answered request stays dead after the ring restarts.
TEST_F(http_server_test, answer_order_and_stale_slots_across_idle_periods) {
  start(1);
  test::client c(port());
  auto expect_bodies = [&](std::initializer_list<std::string_view> bodies) {
    for (std::string_view b : bodies) {
      auto r = c.read_response();
      ASSERT_TRUE(r);
      EXPECT_EQ(r->body, b);
    }
  };
  ASSERT_TRUE(c.write("GET /keep HTTP/1.1\r\n\r\n"));
  expect_bodies({"kept"});
  ASSERT_TRUE(c.write("GET /defer HTTP/1.1\r\n\r\n" + post("/echo", "a") +
                      "GET /release HTTP/1.1\r\n\r\n"));
  expect_bodies({"deferred", "a", "release"});
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.write("GET /stale HTTP/1.1\r\n\r\n"));
    expect_bodies({"0"});
  }
  std::string all;
  for (int i = 0; i < 16; ++i)
    all += post("/echo", std::to_string(i));
  all += "GET /stale HTTP/1.1\r\n\r\n";
  ASSERT_TRUE(c.write(all));
  for (int i = 0; i < 16; ++i)
    expect_bodies({std::to_string(i)});
  expect_bodies({"0"});
}

TEST_F(http_server_test, one_byte_writes) {
  start();
  test::client c(port());
  std::string req = post("/echo", "{\"slow\":true}") + "GET /echo HTTP/1.1\r\n\r\n";
  for (char ch : req)
    ASSERT_TRUE(c.write(std::string_view(&ch, 1)));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "{\"slow\":true}");
  auto r2 = c.read_response();
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 200);
}

TEST_F(http_server_test, chunked_request_body) {
  start();
  test::client c(port());
  ASSERT_TRUE(
      c.write("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
              "4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "{\"a\":1}");
}

TEST_F(http_server_test, later_answer_waits_for_earlier_one) {
  start();
  test::client c(port());
  ASSERT_TRUE(c.write("GET /defer HTTP/1.1\r\n\r\n" + post("/echo", "fast") +
                      "GET /release HTTP/1.1\r\n\r\n"));
  auto a = c.read_response();
  auto b = c.read_response();
  auto d = c.read_response();
  ASSERT_TRUE(a && b && d);
  EXPECT_EQ(a->body, "deferred");
  EXPECT_EQ(b->body, "fast");
  EXPECT_EQ(d->body, "release");
}

// Expect: 100-continue (curl and other clients send it for larger bodies and wait up to a
// second for the interim answer before sending the body anyway).
TEST_F(http_server_test, expect_continue_gets_100_before_the_body_is_sent) {
  start();
  test::client c(port());
  ASSERT_TRUE(c.write(
      "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
  auto interim = c.read_response();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->head, "HTTP/1.1 100 Continue\r\n");
  ASSERT_TRUE(c.write("hello"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
}

// The interim answer takes its request's place in the order of answers: after the answer to
// an earlier pipelined request that is still owed.
TEST_F(http_server_test, expect_continue_waits_behind_an_earlier_answer) {
  start(1);
  test::client c(port());
  ASSERT_TRUE(c.write(
      "GET /defer HTTP/1.1\r\n\r\n"
      "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
  test::client other(port());
  for (;;) {  // until the server holds /defer (and has read the request behind it)
    ASSERT_TRUE(other.write("GET /deferred HTTP/1.1\r\n\r\n"));
    auto n = other.read_response();
    ASSERT_TRUE(n);
    if (n->body == "1") break;
  }
  ASSERT_TRUE(other.write("GET /release HTTP/1.1\r\n\r\n"));
  ASSERT_TRUE(other.read_response());
  auto first = c.read_response();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->body, "deferred");
  auto interim = c.read_response();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(c.write("hello"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "hello");
}

// Refused at the header, with a body that says what to do.
TEST_F(http_server_test, content_encoding_and_unknown_expectation_are_refused_clearly) {
  start();
  for (const auto& [extra, status, text] :
       {std::tuple<const char*, int, const char*>{"Content-Encoding: gzip\r\n", 415,
                                                  "Content-Encoding is not supported"},
        {"Expect: teapot\r\n", 417, "100-continue"}}) {
    test::client c(port());
    ASSERT_TRUE(c.write(post("/echo", "{}", extra)));
    auto r = c.read_response();
    ASSERT_TRUE(r) << extra;
    EXPECT_EQ(r->status, status);
    EXPECT_NE(r->body.find(text), std::string::npos) << r->body;
    EXPECT_TRUE(c.wait_closed());
  }
}

TEST_F(http_server_test, streaming_response_is_chunked) {
  start();
  test::client c(port());
  ASSERT_TRUE(c.write("GET /stream HTTP/1.1\r\n\r\nGET /echo HTTP/1.1\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->has_header("Transfer-Encoding: chunked"));
  EXPECT_EQ(r->body, "data: 1\n\ndata: 2\n\n");
  auto r2 = c.read_response();
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 200);
}

TEST_F(http_server_test, http10_gets_answer_then_close) {
  start();
  test::client c(port());
  ASSERT_TRUE(c.write("GET /echo HTTP/1.0\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->has_header("Connection: close"));
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(http_server_test, connection_close_is_honoured_and_rest_dropped) {
  start();
  test::client c(port());
  ASSERT_TRUE(c.write("GET /echo HTTP/1.1\r\nConnection: close\r\n\r\nGET /echo HTTP/1.1\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->has_header("Connection: close"));
  ASSERT_TRUE(c.wait_closed());
  EXPECT_TRUE(c.buffered().empty());
}

// Over a limit: the status, Connection: close, the close; a second client is still served.
void expect_refused(uint16_t port, const std::string& request, int status) {
  test::client c(port);
  ASSERT_TRUE(c.write(request));
  auto r = c.read_response();
  ASSERT_TRUE(r) << request;
  EXPECT_EQ(r->status, status) << request;
  EXPECT_TRUE(r->has_header("Connection: close"));
  EXPECT_TRUE(c.wait_closed()) << request;
  test::client ok(port);
  ASSERT_TRUE(ok.write(post("/echo", "ok")));
  auto r2 = ok.read_response();
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->body, "ok");
}

TEST_F(http_server_test, header_limit_431) {
  limits_.max_header_bytes = 1024;
  start();
  expect_refused(port(), "GET / HTTP/1.1\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n", 431);
}

TEST_F(http_server_test, body_limit_413) {
  limits_.max_body_bytes = 100;
  start();
  expect_refused(port(), post("/echo", std::string(101, 'b')), 413);
}

TEST_F(http_server_test, header_timeout_408) {
  limits_.header_timeout = 200ms;
  start();
  auto t0 = std::chrono::steady_clock::now();
  expect_refused(port(), "GET / HTTP/1.1\r\nHost: slow", 408);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 190ms);
}

TEST_F(http_server_test, idle_timeout_closes_silently) {
  limits_.idle_timeout = 200ms;
  start();
  test::client c(port());
  ASSERT_TRUE(c.write(post("/echo", "x")));
  ASSERT_TRUE(c.read_response());
  ASSERT_TRUE(c.wait_closed());
  EXPECT_TRUE(c.buffered().empty());
}

TEST_F(http_server_test, connection_limit_503) {
  limits_.max_connections = 2;
  start(1);
  test::client a(port()), b(port());
  ASSERT_TRUE(a.write(post("/echo", "a")) && a.read_response());
  ASSERT_TRUE(b.write(post("/echo", "b")) && b.read_response());
  test::client c(port());
  ASSERT_TRUE(c.write(post("/echo", "c")));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_TRUE(r->has_header("Connection: close"));
  EXPECT_TRUE(c.wait_closed());
  ASSERT_TRUE(a.write(post("/echo", "again")));
  auto ra = a.read_response();
  ASSERT_TRUE(ra);
  EXPECT_EQ(ra->body, "again");
}

TEST_F(http_server_test, smuggling_attempts_get_400_and_close) {
  start();
  const char* cases[] = {
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
      "POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\nab",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
      "GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
      "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
      "GET / HTTP/1.1\r\nX-A: a\x01z\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\n\r\n",
  };
  for (const char* req : cases) {
    test::client c(port());
    ASSERT_TRUE(c.write(std::string("GET /echo HTTP/1.1\r\n\r\n") + req));
    auto first = c.read_response();
    ASSERT_TRUE(first) << req;
    EXPECT_EQ(first->status, 200);
    auto r = c.read_response();
    ASSERT_TRUE(r) << req;
    EXPECT_EQ(r->status, 400) << req;
    EXPECT_TRUE(r->has_header("Connection: close")) << req;
    EXPECT_TRUE(c.wait_closed()) << req;
  }
}

TEST_F(http_server_test, stop_drains_an_in_flight_request) {
  // The answer comes from an "upstream" that replies only after stop() was called.
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(lfd, 16), 0);
  socklen_t len = sizeof a;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  start(1);
  test::client idle(port());
  test::client c(port());
  ASSERT_TRUE(c.write("GET /upstream?" + std::to_string(ntohs(a.sin_port)) + " HTTP/1.1\r\n\r\n"));
  pollfd p{lfd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  int ufd = ::accept(lfd, nullptr, nullptr);
  char buf[8];
  ASSERT_EQ(::recv(ufd, buf, 3, MSG_WAITALL), 3);  // the request reached the upstream
  server_.stop(5s);
  EXPECT_TRUE(idle.wait_closed());  // idle connections go at once
  ASSERT_EQ(::send(ufd, "pong", 4, 0), 4);
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "pong");
  EXPECT_TRUE(r->has_header("Connection: close"));
  EXPECT_TRUE(c.wait_closed());
  auto t0 = std::chrono::steady_clock::now();
  server_.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);  // did not wait for the deadline
  ::close(ufd);
  ::close(lfd);
}

TEST_F(http_server_test, many_connections) {
  start();
  constexpr int kConns = 2000;
  std::vector<test::client> cs;
  cs.reserve(kConns);
  for (int i = 0; i < kConns; ++i) {
    cs.emplace_back(port());
    ASSERT_TRUE(cs.back().write(post("/echo", std::to_string(i))));
  }
  for (int i = 0; i < kConns; ++i) {
    auto r = cs[size_t(i)].read_response();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body, std::to_string(i));
  }
}

}  // namespace
}  // namespace sluice::net
