#pragma once
// Packed io_uring user_data: | op kind (8) | slot index (24) | generation (32) |.
// A completion whose generation differs from its slot's current one belongs to a previous
// occupant of a reused slot and is ignored.

#include <cstdint>

namespace sluice::engine {

enum class op_kind : uint8_t {
  none = 0,
  accept,        // multishot accept on the shard's listener
  accept_retry,  // timeout before re-arming accept after EMFILE/ENFILE
  recv,          // multishot recv on a connection (provided buffers)
  send,          // send of a connection's in-flight output buffer
  connect,       // outgoing connect
  timer,         // the shard's single armed timeout
  wake,          // read on the shard's eventfd (stop/wake from other threads)
  ignore,        // cancels, link timeouts: completion carries no work
};

inline constexpr uint32_t kMaxSlots = 1u << 24;

[[nodiscard]] constexpr uint64_t pack_user_data(op_kind kind, uint32_t index, uint32_t gen) {
  return (uint64_t(kind) << 56) | (uint64_t(index & (kMaxSlots - 1)) << 32) | gen;
}
[[nodiscard]] constexpr op_kind user_data_kind(uint64_t ud) {
  return op_kind(ud >> 56);
}
[[nodiscard]] constexpr uint32_t user_data_index(uint64_t ud) {
  return uint32_t(ud >> 32) & (kMaxSlots - 1);
}
[[nodiscard]] constexpr uint32_t user_data_gen(uint64_t ud) {
  return uint32_t(ud);
}

}  // namespace sluice::engine
