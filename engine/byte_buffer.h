#pragma once
// A growable byte buffer that never shrinks: per-connection output, accumulation and body
// buffers are reused across requests, so after warm-up appends do not allocate.
// Capacity always keeps kPadding readable bytes past size() (SIMDJSON_PADDING: the JSON layer
// parses request bodies in place and may read up to 64 bytes past their end).

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

namespace sluice::engine {

inline constexpr size_t kPadding = 64;  // == SIMDJSON_PADDING

class byte_buffer {
 public:
  byte_buffer() = default;
  byte_buffer(byte_buffer&&) noexcept = default;
  byte_buffer& operator=(byte_buffer&&) noexcept = default;

  [[nodiscard]] char* data() { return data_.get(); }
  [[nodiscard]] const char* data() const { return data_.get(); }
  [[nodiscard]] size_t size() const { return size_; }
  [[nodiscard]] bool empty() const { return size_ == 0; }
  [[nodiscard]] size_t capacity() const { return cap_; }
  [[nodiscard]] std::string_view view() const { return {data_.get(), size_}; }

  void clear() { size_ = 0; }

  // Returns room for n more bytes (plus padding); commit() what was written.
  [[nodiscard]] char* prepare(size_t n) {
    if (size_ + n + kPadding > cap_) grow(size_ + n + kPadding);
    return data_.get() + size_;
  }
  void commit(size_t n) { size_ += n; }

  void append(const char* p, size_t n) {
    char* dst = prepare(n);
    if (n != 0) std::memcpy(dst, p, n);
    size_ += n;
  }
  void append(std::string_view s) { append(s.data(), s.size()); }

  // Drops the first n bytes, moving the rest to the front.
  void consume_front(size_t n) {
    if (n >= size_) {
      size_ = 0;
      return;
    }
    std::memmove(data_.get(), data_.get() + n, size_ - n);
    size_ -= n;
  }

  void swap(byte_buffer& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(cap_, o.cap_);
  }

 private:
  void grow(size_t need) {
    size_t cap = cap_ == 0 ? 512 : cap_;
    while (cap < need)
      cap *= 2;
    std::unique_ptr<char[]> d(new char[cap]);
    if (size_ != 0) std::memcpy(d.get(), data_.get(), size_);
    data_ = std::move(d);
    cap_ = cap;
  }

  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
  size_t cap_ = 0;
};

}  // namespace sluice::engine
