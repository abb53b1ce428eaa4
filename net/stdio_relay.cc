#include "net/stdio_relay.h"

#include <charconv>

#include "net/http1.h"

namespace sluice::net {

// ---------------------------------------------------------------------------------------------
// The hub

stdio_relay_hub::stdio_relay_hub(unsigned shards)
    : shards_(shards), boxes_(std::make_unique<inbox[]>(shards)) {}

void stdio_relay_hub::attach(unsigned id, engine::shard& s) {
  if (id >= shards_) return;
  std::lock_guard lock(boxes_[id].mu);
  boxes_[id].shard = &s;
}

void stdio_relay_hub::detach(unsigned id) {
  if (id >= shards_) return;
  std::lock_guard lock(boxes_[id].mu);
  boxes_[id].shard = nullptr;
  boxes_[id].queue.clear();
}

bool stdio_relay_hub::post(unsigned to, relay_message m) {
  if (to >= shards_) return false;
  inbox& box = boxes_[to];
  std::lock_guard lock(box.mu);
  if (box.shard == nullptr) return false;
  box.queue.push_back(std::move(m));
  // Under the lock: detach() cannot have let the shard go meanwhile.
  box.shard->wake();
  return true;
}

void stdio_relay_hub::take(unsigned id, std::vector<relay_message>& out) {
  out.clear();
  if (id >= shards_) return;
  std::lock_guard lock(boxes_[id].mu);
  out.swap(boxes_[id].queue);
}

int session_owner(std::string_view session_id, unsigned shards) {
  const size_t dash = session_id.rfind('-');
  if (dash == std::string_view::npos || dash + 1 >= session_id.size()) return -1;
  unsigned id = 0;
  const char* first = session_id.data() + dash + 1;
  const char* last = session_id.data() + session_id.size();
  auto [p, ec] = std::from_chars(first, last, id);
  if (ec != std::errc() || p != last || id >= shards) return -1;
  return static_cast<int>(id);
}

// ---------------------------------------------------------------------------------------------
// The owning shard's side: runs an exchange for another shard, posting every callback back.

struct stdio_router::proxy final : upstream_exchange {
  stdio_router* router = nullptr;
  unsigned from = 0;
  uint64_t id = 0;
  uint64_t handle = 0;
  bool over = false;  // on_end / on_error came, or it was cancelled: free it at collect()

  relay_message reply(relay_message::kind k) const { return router->message(k, id); }
  void on_head(const upstream_response_head& head) override {
    relay_message m = reply(relay_message::kind::head);
    m.status = head.status;
    m.content_type = head.content_type;
    m.session_id = head.mcp_session_id;
    m.protocol_version = head.mcp_protocol_version;
    m.streaming = head.chunked_or_streaming;
    router->hub_->post(from, std::move(m));
  }
  void on_body(std::string_view bytes) override {
    relay_message m = reply(relay_message::kind::body);
    m.body = bytes;
    router->hub_->post(from, std::move(m));
  }
  void on_end() override {
    over = true;
    router->dirty_ = true;
    router->hub_->post(from, reply(relay_message::kind::end));
  }
  void on_error(upstream_error e, std::string_view detail) override {
    over = true;
    router->dirty_ = true;
    relay_message m = reply(relay_message::kind::error);
    m.error = e;
    m.body = detail;
    router->hub_->post(from, std::move(m));
  }
};

// ---------------------------------------------------------------------------------------------
// The router

stdio_router::stdio_router(engine::shard& shard, uint16_t route,
                           std::shared_ptr<stdio_relay_hub> hub, stdio_options options)
    : shard_(shard), route_(route), hub_(std::move(hub)), local_(shard, std::move(options)) {}

stdio_router::~stdio_router() = default;

uint64_t stdio_router::send(const upstream_request& req, upstream_exchange* ex) {
  const std::string_view sid = header_value(req.headers, "Mcp-Session-Id");
  const int owner = sid.empty() || !hub_ ? -1 : session_owner(sid, hub_->shards());
  // New sessions (initialize), this shard's sessions, and ids that name no shard (the local
  // lookup answers them 404) stay here.
  if (owner < 0 || static_cast<unsigned>(owner) == shard_.id() || shut_) {
    return local_.send(req, ex);
  }
  uint32_t idx;
  if (free_out_.empty()) {
    idx = static_cast<uint32_t>(out_.size());
    out_.emplace_back();
  } else {
    idx = free_out_.back();
    free_out_.pop_back();
  }
  outgoing& o = out_[idx];
  o.ex = ex;
  o.owner = static_cast<unsigned>(owner);
  ++o.gen;
  const uint64_t id = (uint64_t(idx + 1) << 32) | o.gen;
  relay_message m = message(relay_message::kind::request, id);
  m.method = req.method;
  m.headers.reserve(req.headers.size());
  for (const http_header& h : req.headers)
    m.headers.emplace_back(std::string(h.name), std::string(h.value));
  m.body = req.body;
  if (!hub_->post(static_cast<unsigned>(owner), std::move(m))) {
    o.ex = nullptr;
    free_out_.push_back(idx);
    ex->on_error(upstream_error::shutting_down, "the shard that runs this session has stopped");
    return 0;
  }
  return id | kRelayed;
}

relay_message stdio_router::message(relay_message::kind k, uint64_t id) const {
  relay_message m;
  m.what = k;
  m.route = route_;
  m.from = shard_.id();
  m.id = id;
  return m;
}

stdio_router::outgoing* stdio_router::relayed(uint64_t handle) {
  const uint64_t id = handle & ~kRelayed;
  const uint64_t idx = (id >> 32) - 1;
  if (idx >= out_.size() || out_[idx].ex == nullptr || out_[idx].gen != uint32_t(id))
    return nullptr;
  return &out_[idx];
}

void stdio_router::hold_answer(uint64_t handle, bool hold) {
  if ((handle & kRelayed) == 0) return local_.hold_answer(handle, hold);
  const outgoing* o = relayed(handle);
  if (o == nullptr) return;
  hub_->post(o->owner, message(hold ? relay_message::kind::hold : relay_message::kind::release,
                               handle & ~kRelayed));
}

void stdio_router::cancel(uint64_t handle) {
  if ((handle & kRelayed) == 0) return local_.cancel(handle);
  outgoing* o = relayed(handle);
  if (o == nullptr) return;
  o->ex = nullptr;
  free_out_.push_back(static_cast<uint32_t>(o - out_.data()));
  // The owner stops the exchange; what it posted meanwhile is dropped here (stale id).
  hub_->post(o->owner, message(relay_message::kind::cancel, handle & ~kRelayed));
}

void stdio_router::shutdown() {
  shut_ = true;
  for (outgoing& o : out_)
    o.ex = nullptr;
  local_.shutdown();
}

void stdio_router::on_message(relay_message& m) {
  switch (m.what) {
    case relay_message::kind::request: {
      auto p = std::make_unique<proxy>();
      p->router = this;
      p->from = m.from;
      p->id = m.id;
      std::vector<http_header> headers;
      headers.reserve(m.headers.size());
      for (const auto& [name, value] : m.headers)
        headers.push_back({name, value});
      upstream_request up;
      up.method = m.method;
      up.headers = headers;
      up.body = m.body;
      proxy* raw = p.get();
      proxies_[{m.from, m.id}] = std::move(p);
      // Straight to the process: the requesting shard has decided it already.
      raw->handle = local_.send(up, raw);
      break;
    }
    case relay_message::kind::cancel: {
      auto it = proxies_.find({m.from, m.id});
      if (it == proxies_.end()) break;
      if (!it->second->over) local_.cancel(it->second->handle);
      it->second->over = true;
      dirty_ = true;
      break;
    }
    case relay_message::kind::hold:
    case relay_message::kind::release: {
      auto it = proxies_.find({m.from, m.id});
      if (it != proxies_.end() && !it->second->over)
        local_.hold_answer(it->second->handle, m.what == relay_message::kind::hold);
      break;
    }
    default: {
      const uint64_t idx = (m.id >> 32) - 1;
      // Only the shard the request went to answers it; anything else is stale.
      if (idx >= out_.size() || out_[idx].ex == nullptr || out_[idx].gen != uint32_t(m.id) ||
          out_[idx].owner != m.from)
        break;
      upstream_exchange* ex = out_[idx].ex;
      const bool last = m.what == relay_message::kind::end || m.what == relay_message::kind::error;
      if (last) {
        out_[idx].ex = nullptr;
        free_out_.push_back(static_cast<uint32_t>(idx));
      }
      if (m.what == relay_message::kind::head) {
        upstream_response_head head;
        head.status = m.status;
        head.content_type = m.content_type;
        head.mcp_session_id = m.session_id;
        head.mcp_protocol_version = m.protocol_version;
        head.chunked_or_streaming = m.streaming;
        ex->on_head(head);
      } else if (m.what == relay_message::kind::body) {
        ex->on_body(m.body);
      } else if (m.what == relay_message::kind::end) {
        ex->on_end();
      } else {
        ex->on_error(m.error, m.body);
      }
      break;
    }
  }
}

void stdio_router::collect() {
  if (!dirty_) return;
  dirty_ = false;
  for (auto it = proxies_.begin(); it != proxies_.end();) {
    if (it->second->over) {
      it = proxies_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace sluice::net
