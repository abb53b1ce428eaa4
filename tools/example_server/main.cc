// sluice-example-server: a small MCP server (Streamable HTTP) on the Sluice engine, used as the
// upstream in the README, the integration tests and the benchmarks. See docs/example-server.md.

#include <sched.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "engine/signals.h"
#include "net/http_server.h"
#include "tools/example_server/mcp_handler.h"

namespace {

using namespace sluice;

constexpr std::string_view kUsage =
    "usage: sluice-example-server [--listen HOST:PORT] [--shards N] [--sse] [--help]\n"
    "\n"
    "An example MCP server (Streamable HTTP on POST /mcp) for trying and testing Sluice.\n"
    "\n"
    "  --listen HOST:PORT  address to listen on (default 127.0.0.1:8081; port 0 picks one)\n"
    "  --shards N          event-loop threads, one per CPU of the affinity mask from the\n"
    "                      first (default 1; 0 = one per CPU)\n"
    "  --sse               answer every JSON-RPC request as a text/event-stream\n"
    "  --help              print this and exit\n"
    "\n"
    "Prints \"sluice-example-server listening on HOST:PORT\" once ready; SIGTERM or SIGINT\n"
    "stops it (exit 0). GET /_calls lists the tools/call requests received; DELETE /_calls\n"
    "clears them.\n";

struct options {
  std::string host = "127.0.0.1";
  uint16_t port = 8081;
  unsigned shards = 1;
  bool sse = false;
};

bool parse_uint(std::string_view s, unsigned long max, unsigned long& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && out <= max;
}

// "HOST:PORT", "[V6]:PORT".
bool parse_listen(std::string_view s, options& o) {
  size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned long port;
  if (!parse_uint(s.substr(colon + 1), 65535, port)) return false;
  o.host = std::string(host);
  o.port = uint16_t(port);
  return true;
}

int usage_error(const char* what, const char* arg) {
  std::fprintf(stderr, "sluice-example-server: %s%s\n\n%.*s", what, arg, int(kUsage.size()),
               kUsage.data());
  return 2;
}

unsigned cpu_count() {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof mask, &mask) != 0) return 1;
  int n = CPU_COUNT(&mask);
  return n > 0 ? unsigned(n) : 1;
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fwrite(kUsage.data(), 1, kUsage.size(), stdout);
      return 0;
    } else if (a == "--sse") {
      opt.sse = true;
    } else if (a == "--listen" || a == "--shards") {
      if (i + 1 >= argc) return usage_error("missing value for ", argv[i]);
      std::string_view v = argv[++i];
      if (a == "--listen") {
        if (!parse_listen(v, opt)) return usage_error("--listen expects HOST:PORT, got ", argv[i]);
      } else {
        unsigned long n;
        if (!parse_uint(v, 1024, n)) return usage_error("--shards expects 0..1024, got ", argv[i]);
        opt.shards = unsigned(n);
      }
    } else {
      return usage_error("unknown argument ", argv[i]);
    }
  }
  if (opt.shards == 0) opt.shards = cpu_count();

  engine::block_shutdown_signals();
  example::server_state state(opt.shards, example::server_options{opt.sse});
  engine::runtime_config cfg;
  cfg.address = opt.host;
  cfg.port = opt.port;
  cfg.shards = opt.shards;
  net::http_server server;
  engine::status st = server.start(cfg, net::http_limits{}, [&state](engine::shard& s) {
    return example::make_mcp_handler(s, state);
  });
  if (!st.ok()) {
    std::fprintf(stderr, "sluice-example-server: %s\n", st.message().c_str());
    return 1;
  }
  std::printf("sluice-example-server listening on %s\n", server.runtime().address_string().c_str());
  std::fflush(stdout);
  (void)engine::wait_for_shutdown_signal();
  server.stop(std::chrono::seconds(2));
  server.join();
  return 0;
}
