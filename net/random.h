#pragma once
// Bytes from the kernel's random source (getrandom), for keys and ids that must not be
// guessed: session-tag keys (net/session_binding.h), stdio session ids, cluster node ids, the
// example server's session ids. Header-only: the example server links it without the gateway.

#include <sys/random.h>

#include <cerrno>
#include <cstddef>
#include <random>

namespace sluice::net {

// Fills out[0..n). getrandom cannot fail for small requests on Linux >= 3.17 once the pool is
// ready; where a sandbox filters it, the C++ library's source fills the rest instead of a
// loop that would spin.
inline void fill_random(void* out, size_t n) {
  auto* p = static_cast<unsigned char*>(out);
  while (n > 0) {
    const ssize_t got = ::getrandom(p, n, 0);
    if (got > 0) {
      p += got;
      n -= static_cast<size_t>(got);
    } else if (errno != EINTR) {
      std::random_device rd;
      for (; n > 0; --n)
        *p++ = static_cast<unsigned char>(rd());
    }
  }
}

}  // namespace sluice::net
