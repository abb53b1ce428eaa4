#include "tools/example_server/call_log.h"

#include <algorithm>
#include <cstdio>

namespace sluice::example {

call_log::call_log(unsigned shards) {
  parts_.reserve(shards);
  for (unsigned i = 0; i < shards; ++i)
    parts_.push_back(std::make_unique<part>());
}

void call_log::record(unsigned shard, int64_t time_ns, std::string_view name,
                      std::string_view arguments) {
  if (shard >= parts_.size()) return;
  part& p = *parts_[shard];
  char stub[64];
  if (arguments.size() > kMaxArgumentBytes) {
    int n = std::snprintf(stub, sizeof stub, "{\"_omitted_bytes\":%zu}", arguments.size());
    arguments = std::string_view(stub, size_t(n));
  }
  std::lock_guard lock(p.mu);
  entry* e;
  if (p.ring.size() < kMaxPerShard) {
    e = &p.ring.emplace_back();
  } else {
    e = &p.ring[p.next];
    p.next = (p.next + 1) % kMaxPerShard;
  }
  e->time_ns = time_ns;
  e->name.assign(name);  // keeps capacity: no allocation once the slot has held as much
  e->arguments.assign(arguments);
}

void call_log::write_json(std::string& out) const {
  struct item {
    int64_t time_ns;
    unsigned shard;
    size_t order;
    const entry* e;
  };
  std::vector<std::unique_lock<std::mutex>> locks;
  std::vector<item> items;
  for (unsigned s = 0; s < parts_.size(); ++s) {
    const part& p = *parts_[s];
    locks.emplace_back(p.mu);
    size_t n = p.ring.size();
    for (size_t k = 0; k < n; ++k) {
      size_t i = n < kMaxPerShard ? k : (p.next + k) % kMaxPerShard;
      items.push_back({p.ring[i].time_ns, s, k, &p.ring[i]});
    }
  }
  std::sort(items.begin(), items.end(), [](const item& a, const item& b) {
    if (a.time_ns != b.time_ns) return a.time_ns < b.time_ns;
    if (a.shard != b.shard) return a.shard < b.shard;
    return a.order < b.order;
  });
  out += '[';
  for (size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ',';
    out += "{\"name\":\"";
    append_json_escaped(out, items[i].e->name);
    out += "\",\"arguments\":";
    out += items[i].e->arguments;
    out += '}';
  }
  out += ']';
}

size_t call_log::clear() {
  size_t n = 0;
  for (auto& p : parts_) {
    std::lock_guard lock(p->mu);
    n += p->ring.size();
    p->ring.clear();  // keeps capacity; the strings are freed, so warm-up starts again
    p->next = 0;
  }
  return n;
}

}  // namespace sluice::example
