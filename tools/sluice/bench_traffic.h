#pragma once
// What `sluice bench` sends: the target, the MCP traffic (a weighted tool mix with argument
// values drawn from lists, grants, sessions) or messages replayed from a JSONL file, all turned
// into a pool of complete HTTP/1.1 requests before the run. The hot path only copies a pool
// entry into a connection's output buffer.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::bench {

struct target {
  std::string url;
  std::string host_header;  // host[:port] as written in the URL
  std::string path;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
};

// http://HOST:PORT/PATH (HOST: IPv4, [IPv6] or a name resolved once). False with err set.
[[nodiscard]] bool parse_target(std::string_view url, target& out, std::string& err);

// How answers are read: `decide` reads the decision from the status (the decision service),
// `mcp` from the JSON-RPC answer.
enum class target_kind : uint8_t { mcp, decide };

struct tool_spec {
  std::string name;
  double weight = 1;
  // argument name -> candidate values (minified JSON), one drawn per request
  std::vector<std::pair<std::string, std::vector<std::string>>> arguments;
};

struct traffic {
  std::vector<tool_spec> tools;                 // the mix (empty with replay)
  std::vector<std::string> replay;              // message bodies, sent in order
  std::vector<std::string> tokens;              // bearer tokens, one per grant
  std::vector<std::string> session_ids;         // filled by initialize_sessions
  std::vector<std::string> headers;             // extra "Name: value" lines
  std::string protocol_version = "2025-06-18";  // sent as MCP-Protocol-Version with sessions
  uint32_t pool_size = 4096;
  uint64_t seed = 1;
};

// The default mix: read_file, list_buckets, write_file, run_query with realistic arguments.
[[nodiscard]] std::vector<tool_spec> default_mix();

// {"tools":[{"name":"read_file","weight":70,"arguments":{"path":["/a","/b"]}}, ...]}
[[nodiscard]] bool load_mix(const std::string& path, std::vector<tool_spec>& out, std::string& err);
// One JSON-RPC message (or batch) per non-empty line.
[[nodiscard]] bool load_replay(const std::string& path, std::vector<std::string>& out,
                               std::string& err);

// Runs the initialize handshake (initialize, then notifications/initialized) n times over a
// blocking connection, grant i % tokens for session i, and stores the Mcp-Session-Id values.
[[nodiscard]] bool initialize_sessions(const target& t, uint32_t n, traffic& tr, std::string& err);

// Complete HTTP/1.1 requests, back to back; entry i is [offsets[i], offsets[i + 1]).
struct request_pool {
  std::string bytes;
  std::vector<uint32_t> offsets;
  [[nodiscard]] size_t size() const { return offsets.empty() ? 0 : offsets.size() - 1; }
  [[nodiscard]] std::string_view at(size_t i) const {
    return {bytes.data() + offsets[i], size_t(offsets[i + 1] - offsets[i])};
  }
};

// Replay: one entry per message; mix: pool_size entries drawn with the weights. Entry i uses
// session i % sessions (with that session's grant) or else grant i % tokens.
[[nodiscard]] request_pool build_pool(const target& t, const traffic& tr);

}  // namespace sluice::bench
