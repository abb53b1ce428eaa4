#pragma once
// A provided-buffer ring (io_uring buffer group) owned by one shard.
//
// Padding guarantee: each buffer is registered with the kernel with length buffer_size(), but the
// memory stride is buffer_size() + kPadding, so every received byte range [p, p + n) has at least
// kPadding (64 == SIMDJSON_PADDING) readable bytes after its end. The JSON layer relies on this
// to parse request bodies in place without copying.

#include <liburing.h>

#include <cstdint>
#include <string>

#include "engine/byte_buffer.h"

namespace sluice::engine {

class buffer_ring {
 public:
  buffer_ring() = default;
  buffer_ring(const buffer_ring&) = delete;
  buffer_ring& operator=(const buffer_ring&) = delete;
  ~buffer_ring();

  // count must be a power of two (<= 32768). Returns an empty string or an error message.
  [[nodiscard]] std::string init(io_uring* ring, uint16_t group, uint32_t count,
                                 uint32_t buffer_size);

  [[nodiscard]] char* buffer(uint16_t bid) const { return base_ + size_t(bid) * stride_; }
  [[nodiscard]] uint32_t buffer_size() const { return size_; }
  [[nodiscard]] uint16_t group() const { return group_; }

  // Gives a buffer back; visible to the kernel after publish(). Does not allocate.
  void recycle(uint16_t bid) {
    io_uring_buf_ring_add(br_, buffer(bid), size_, bid, io_uring_buf_ring_mask(count_),
                          int(pending_++));
  }
  // Publishes recycled buffers (once per loop iteration).
  void publish() {
    if (pending_ != 0) io_uring_buf_ring_advance(br_, int(pending_));
    pending_ = 0;
  }

 private:
  io_uring_buf_ring* br_ = nullptr;
  size_t ring_bytes_ = 0;
  char* base_ = nullptr;
  size_t base_bytes_ = 0;
  size_t stride_ = 0;
  uint32_t count_ = 0;
  uint32_t size_ = 0;
  uint32_t pending_ = 0;
  uint16_t group_ = 0;
};

}  // namespace sluice::engine
