// A fixed-answer HTTP/1.1 server on the engine, to compare the engine + framing against the
// bench-kit's noop_http ceiling: POST /v1/decide gets an 80-byte JSON decision, anything else
// 404. Prints one readiness line "listening ADDR" and serves until SIGINT/SIGTERM.
// Usage: http_echo_server [PORT [SHARDS]]     e.g.  taskset -c 1 ./http_echo_server 18080 1

#include <cstdio>
#include <cstdlib>

#include "engine/signals.h"
#include "net/http_server.h"

namespace {
using namespace sluice;

constexpr std::string_view kDecision =
    R"({"decision":"allow","tool":"read_file","rule":"/tools/read_file","reason":""})";

class decide_handler : public net::request_handler {
 public:
  // Answers inline into the connection's output buffer. Does not allocate.
  void on_request(const net::http_request& req, net::response_slot slot) override {
    if (req.method == "POST" && req.target == "/v1/decide") {
      slot.respond(200, "application/json", kDecision);
    } else {
      slot.respond(404, "text/plain", "not found\n");
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  engine::block_shutdown_signals();
  engine::runtime_config cfg;
  cfg.port = argc > 1 ? uint16_t(std::atoi(argv[1])) : 0;
  cfg.shards = argc > 2 ? unsigned(std::atoi(argv[2])) : 0;
  net::http_server server;
  engine::status st = server.start(
      cfg, net::http_limits{}, [](engine::shard&) { return std::make_unique<decide_handler>(); });
  if (!st.ok()) {
    std::fprintf(stderr, "http_echo_server: %s\n", st.message().c_str());
    return 1;
  }
  std::printf("listening %s\n", server.runtime().address_string().c_str());
  std::fflush(stdout);
  (void)engine::wait_for_shutdown_signal();
  server.stop(std::chrono::seconds(5));
  server.join();
  return 0;
}
