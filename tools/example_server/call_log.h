#pragma once
// The test hook behind GET/DELETE /_calls: every tools/call the server receives, in order.
//
// One part per shard, each written only by its own shard. A part holds the most recent
// kMaxPerShard calls in a ring whose strings keep their capacity, so recording does not
// allocate once warm. Each part has its own mutex, taken by its shard for every record (never
// contended except while a GET or DELETE /_calls reads it) and by the reader. A read merges
// the parts by the shard loop time at which each call was received; with one shard (the
// default) that is exactly arrival order, and across shards a call answered before another was
// sent always sorts first.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "policy/json_text.h"

namespace sluice::example {

class call_log {
 public:
  static constexpr size_t kMaxPerShard = 4096;
  static constexpr size_t kMaxArgumentBytes = 64 * 1024;  // larger: recorded as a stub object

  explicit call_log(unsigned shards);

  // On shard `shard`'s thread. name is unescaped; arguments is raw JSON ("{}" when absent).
  void record(unsigned shard, int64_t time_ns, std::string_view name, std::string_view arguments);

  // Any thread: appends `[{"name":...,"arguments":...},...]` to out.
  void write_json(std::string& out) const;
  // Any thread: forgets everything; returns how many calls were dropped.
  size_t clear();

 private:
  struct entry {
    int64_t time_ns = 0;
    std::string name;
    std::string arguments;
  };
  struct alignas(64) part {
    mutable std::mutex mu;
    std::vector<entry> ring;  // grows to kMaxPerShard, then wraps
    size_t next = 0;          // ring index written next once full
  };
  std::vector<std::unique_ptr<part>> parts_;
};

using policy::append_json_escaped;  // the inside of a JSON string (no quotes)

}  // namespace sluice::example
