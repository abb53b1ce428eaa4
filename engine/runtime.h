#pragma once
// Starts N shards (one thread each, pinned to the i-th CPU of the affinity mask), each with its
// own SO_REUSEPORT listener on the same address, and stops them. Prints nothing: the bound
// address is exposed for the CLI's readiness line.

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/shard.h"
#include "engine/status.h"

namespace sluice::engine {

struct runtime_config {
  std::string address = "127.0.0.1";  // IPv4 or IPv6 literal
  uint16_t port = 0;                  // 0: the kernel picks one (shard 0 binds first)
  unsigned shards = 0;                // 0: one per CPU of the affinity mask
  bool pin = true;                    // pin shard i to the i-th CPU of the mask
  int backlog = 4096;
  shard_config shard;
};

// Called on each shard's thread to make its handler for accepted connections.
using handler_factory = std::function<std::unique_ptr<connection_handler>(shard&)>;

class runtime {
 public:
  runtime() = default;
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;
  ~runtime();  // stops immediately (if running) and joins

  // Binds, starts the shards and returns once every shard is running, or an error such as
  // "bind 127.0.0.1:80: Permission denied".
  [[nodiscard]] status start(const runtime_config& config, handler_factory factory);

  // Any thread: stop accepting, let in-flight work finish until deadline, then close all.
  // Returns at once; join() waits.
  void stop(std::chrono::steady_clock::time_point deadline);
  void stop(std::chrono::milliseconds grace) { stop(std::chrono::steady_clock::now() + grace); }
  void join();

  [[nodiscard]] uint16_t port() const { return port_; }
  [[nodiscard]] const sockaddr_storage& bound_address() const { return bound_; }
  // "127.0.0.1:8080" or "[::1]:8080".
  [[nodiscard]] std::string address_string() const;
  [[nodiscard]] unsigned shard_count() const { return unsigned(shards_.size()); }
  [[nodiscard]] shard& shard_at(unsigned i) { return *shards_[i]; }

  // One thread (a watchdog), called at intervals: the shards whose loop has not turned since
  // the previous call (none on the first call); then wakes every shard, so that a live one
  // turns before the next call even when it has nothing to do.
  [[nodiscard]] std::vector<unsigned> stalled_shards();

 private:
  std::vector<std::unique_ptr<shard>> shards_;
  std::vector<std::thread> threads_;
  std::vector<uint64_t> seen_iterations_;  // stalled_shards(): each shard's count last time
  sockaddr_storage bound_{};
  uint16_t port_ = 0;
};

}  // namespace sluice::engine
