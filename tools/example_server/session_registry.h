#pragma once
// Mcp-Session-Id issue and check, shared by all shards without a lock on the common path.
//
// An id is 32 lowercase hex characters: 8 random bytes (getrandom) and a SipHash-2-4 tag of
// them under a key drawn at start-up. A request's id is checked by recomputing the tag, so a
// session made on one shard is known to every shard with nothing shared but the key. Ended
// sessions (DELETE /mcp) go into a mutex-guarded set that is consulted only once any session
// has ended (one relaxed atomic load otherwise). Sessions do not expire.

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>

namespace sluice::example {

class session_registry {
 public:
  static constexpr size_t kIdSize = 32;

  session_registry();  // draws the key

  // Writes a fresh id into out[0..kIdSize).
  void make(char* out) const;
  // The id was issued by this process and has not ended.
  [[nodiscard]] bool valid(std::string_view id) const;
  // Ends a valid session; false when the id is unknown or already ended.
  bool end(std::string_view id);

 private:
  [[nodiscard]] uint64_t tag(uint64_t nonce) const;
  [[nodiscard]] bool issued(std::string_view id) const;

  std::array<uint8_t, 16> key_{};  // SipHash-2-4 key (net/siphash.h)
  std::atomic<bool> any_ended_{false};
  mutable std::mutex mu_;
  std::unordered_set<std::string> ended_;
};

}  // namespace sluice::example
