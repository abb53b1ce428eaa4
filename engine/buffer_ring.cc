#include "engine/buffer_ring.h"

#include <sys/mman.h>

#include <cstring>

namespace sluice::engine {

buffer_ring::~buffer_ring() {
  if (br_ != nullptr) munmap(br_, ring_bytes_);
  if (base_ != nullptr) munmap(base_, base_bytes_);
}

std::string buffer_ring::init(io_uring* ring, uint16_t group, uint32_t count,
                              uint32_t buffer_size) {
  if (count == 0 || (count & (count - 1)) != 0 || count > 32768)
    return "buffer count must be a power of two <= 32768";
  count_ = count;
  size_ = buffer_size;
  group_ = group;
  // Stride keeps kPadding bytes of slack after each buffer and 64-byte alignment.
  stride_ = (size_t(buffer_size) + kPadding + 63) & ~size_t(63);
  ring_bytes_ = size_t(count) * sizeof(io_uring_buf);
  // liburing 2.3 has no io_uring_setup_buf_ring: map the ring ourselves.
  void* r = mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (r == MAP_FAILED) return std::string("mmap buffer ring: ") + strerror(errno);
  br_ = static_cast<io_uring_buf_ring*>(r);
  base_bytes_ = size_t(count) * stride_;
  void* b = mmap(nullptr, base_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (b == MAP_FAILED) return std::string("mmap buffers: ") + strerror(errno);
  base_ = static_cast<char*>(b);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(br_);
  reg.ring_entries = count;
  reg.bgid = group;
  int rc = io_uring_register_buf_ring(ring, &reg, 0);
  if (rc != 0) return std::string("io_uring_register_buf_ring: ") + strerror(-rc);
  io_uring_buf_ring_init(br_);
  for (uint32_t i = 0; i < count; ++i)
    recycle(uint16_t(i));
  publish();
  return {};
}

}  // namespace sluice::engine
