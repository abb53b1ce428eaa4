#pragma once
// Session ids bound to the grant that opened them.
//
// The upstream issues an `Mcp-Session-Id`; Sluice hands it to the agent with a tag appended,
// "<upstream id>.<16 hex digits>", where the tag is a keyed MAC (SipHash-2-4) over the
// upstream's id, the grant and the endpoint (the MCP path it was issued on). A request naming a
// session must carry a tag that matches its own grant and endpoint; Sluice forwards the
// upstream's id without it. So
//  - an agent cannot make up session ids: a `session`-scoped limit counts per session the
//    upstream opened, also behind a stateless server that checks no ids;
//  - a session id that leaks to another grant is useless to it (the MCP security best
//    practices ask servers to bind session ids to the user; Sluice does it for them);
//  - a session of one server behind Sluice cannot be named at another's path.
// The check needs no state shared between shards or kept per session: any shard, and any
// Sluice process given the same key (--session-key-file), verifies any tag.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "net/siphash.h"

namespace sluice::net {

class session_binding {
 public:
  static constexpr size_t kTagChars = 17;  // '.' and 16 hex digits

  explicit session_binding(const std::array<uint8_t, 16>& key) : key_(key) {}

  // A key from the kernel's random source, for one process's lifetime.
  static std::array<uint8_t, 16> random_key();
  // The key from a secret file: the first 16 bytes of the SHA-256 of its contents, which must
  // be at least 16 bytes long. False (and `error` set) when the file cannot be read or is
  // shorter.
  static bool key_from_file(const std::string& path, std::array<uint8_t, 16>& key,
                            std::string& error);

  // Appends the tag for (endpoint, grant, upstream id) to `out`, which holds the upstream id.
  void append_tag(std::string& out, std::string_view endpoint, std::string_view grant,
                  std::string_view upstream_id) const;

  // The upstream's id within `client_id` when its tag is the one `grant` would have been
  // given on `endpoint`; false otherwise (no tag, or a tag of another id, grant, endpoint or
  // key). The tag is compared in constant time.
  bool verify(std::string_view endpoint, std::string_view grant, std::string_view client_id,
              std::string_view& upstream_id) const;

 private:
  uint64_t tag(std::string_view endpoint, std::string_view grant,
               std::string_view upstream_id) const;

  std::array<uint8_t, 16> key_;
};

}  // namespace sluice::net
