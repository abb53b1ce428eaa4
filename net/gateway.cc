#include "net/gateway.h"

#include <simdjson.h>
#include <time.h>

#include <array>
#include <cstring>
#include <string_view>

#include "net/control/shard_control.h"
#include "net/mcp_answers.h"
#include "net/request_path.h"
#include "net/session_binding.h"
#include "net/tools_filter.h"
#include "policy/decider.h"
#include "policy/short_bytes.h"

namespace sluice::net {

namespace {

using policy::verdict;

// Whether a comma-separated media-type list (Accept) admits `type` ("application/json").
bool accepts(std::string_view accept, std::string_view type) {
  const std::string_view major = type.substr(0, type.find('/'));
  size_t pos = 0;
  while (pos <= accept.size()) {
    size_t end = accept.find(',', pos);
    if (end == std::string_view::npos) end = accept.size();
    std::string_view item = accept.substr(pos, end - pos);
    item = item.substr(0, item.find(';'));
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
      item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t'))
      item.remove_suffix(1);
    if (ascii_iequals(item, type) || item == "*/*") return true;
    if (item.size() == major.size() + 2 && ascii_iequals(item.substr(0, major.size()), major) &&
        item.substr(major.size()) == "/*")
      return true;
    pos = end + 1;
  }
  return false;
}

bool is_local_origin(std::string_view origin) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (origin.substr(0, scheme.size()) != scheme) continue;
    std::string_view host = origin.substr(scheme.size());
    for (std::string_view local : {"localhost", "127.0.0.1", "[::1]"}) {
      if (host.substr(0, local.size()) != local) continue;
      const std::string_view rest = host.substr(local.size());
      if (rest.empty() || rest.front() == ':') return true;
    }
  }
  return false;
}

int decision_status(verdict v) {
  switch (v) {
    case verdict::allow:
      return 200;
    case verdict::deny:
      return 403;
    case verdict::rate_limited:
      return 429;
    case verdict::approval_required:
      return 202;
    case verdict::invalid:
      return 400;
  }
  return 400;
}

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kEventStream = "text/event-stream";
// GET and DELETE pass undecided, so a message in their body would reach the server unseen.
constexpr std::string_view kNoBodyOnGet = "GET and DELETE carry no body: messages go in a POST";
// Maximum JSON answer held to be sent with a Content-Length (or to be filtered); larger and
// streamed answers are relayed as they arrive.
constexpr size_t kMaxHeldAnswer = 4 << 20;
// A tools/list answer is held whole to be filtered; beyond this it is refused (502).
constexpr size_t kMaxToolsListAnswer = 16 << 20;
constexpr size_t kMaxTaken = 16;

class gateway_shard;

// One MCP endpoint of a shard: the top-level one (mcp_path: the top-level policy and
// upstream) or one of several servers (/servers/<name>/mcp). Its own decider (policy), upstream
// and upstream headers; the shard's limiter is shared, and a server's counters are kept apart
// by the namespace its policy was compiled with.
struct route {
  route(uint16_t index, std::string name, std::string path,
        std::shared_ptr<const policy::compiled_policy> policy, policy::limiter& limiter,
        const policy::reader_limits& reader)
      : index(index),
        name(std::move(name)),
        path(std::move(path)),
        decider(std::move(policy), limiter, reader) {}
  uint16_t index;    // 0: the top level; i + 1: settings.servers[i]
  std::string name;  // "" at the top level
  std::string path;
  policy::decider decider;
  std::unique_ptr<upstream_client> pool;  // null: no upstream
  stdio_router* router = nullptr;         // the pool, when it is a stdio upstream
  upstream_pool* http = nullptr;          // the pool, when it is an HTTP upstream
  std::vector<http_header> extra_upstream;
};

// A call whose shard's lease was used up while the process-wide budget may have room: it
// waits (the shard goes on serving) until the hub's next grant or close, then is decided
// again. Holds copies of what the decision and the forwarding read; reused.
struct parked_call {
  bool decide_service = false;  // POST /v1/decide (decided by rt's policy), else to rt itself
  route* rt = nullptr;
  response_slot slot;
  std::string_view grant;  // points into the grant table (or a literal): outlives the call
  std::string session, method, target, content_type, accept, protocol_version, last_event_id,
      mcp_method, mcp_name;
  std::string body;  // plus SIMDJSON_PADDING bytes, as the decider requires
  size_t body_size = 0;
};

// One forwarded request: relays the upstream's answer to the downstream slot.
class forward final : public upstream_exchange, public output_waiter {
 public:
  gateway_shard* owner = nullptr;
  route* rt = nullptr;  // the endpoint it was sent through: its policy filters tools/list
  response_slot slot;
  uint64_t handle = 0;
  bool filter_tools = false;  // the request held a tools/list: filter its answer
  bool held = false;          // holding a JSON answer to send whole
  bool streaming = false;     // began a streamed answer downstream
  bool sse = false;
  bool finished = false;
  bool active = false;   // taken from the free list, its exchange not yet over
  bool holding = false;  // its upstream is held: the agent is slow (relay)
  int status = 0;
  std::string id;  // raw id of a single request, for error answers ("" for a batch)
  std::string session_id, protocol_version, content_type;
  std::string grant;  // the caller's: the upstream's session id is bound to it
  std::array<policy::limit_request, kMaxTaken> taken{};
  uint32_t taken_count = 0;
  int64_t taken_at_ns = 0;
  int64_t sent_ns = 0;        // shard loop clock, for the upstream latency metric
  bool pre_streamed = false;  // an approved call whose SSE answer began while it waited
  std::string body;           // held answer
  sse_splitter splitter;

  void on_head(const upstream_response_head& head) override;
  void on_body(std::string_view bytes) override;
  void on_end() override;
  void on_error(upstream_error e, std::string_view detail) override;
  void on_output_drained() override;
  void relay(std::string_view bytes);          // streamed answer bytes, downstream
  void begin_stream();                         // head of a streamed answer, downstream
  void respond_whole(std::string_view bytes);  // a whole answer with its length

  void reset() {
    slot = {};
    handle = 0;
    filter_tools = held = streaming = sse = finished = holding = false;
    status = 0;
    id.clear();
    session_id.clear();
    protocol_version.clear();
    content_type.clear();
    taken_count = 0;
    sent_ns = 0;
    pre_streamed = false;
    body.clear();
    splitter = {};
  }
};

class gateway_shard final : public request_handler, public control::shard_control::sink {
 public:
  gateway_shard(engine::shard& shard, std::shared_ptr<const gateway_shared> shared)
      : shard_(shard),
        shared_(std::move(shared)),
        settings_(shared_->settings),
        port_(shared_->limits->attach(shard.id(), shard)),
        limiter_(port_.limiter()),
        main_(0, {}, settings_.mcp_path, shared_->policy, limiter_, settings_.reader) {
    out_.reserve(4096);
    // Once per loop iteration: hub replies in, parked calls decided again, report out.
    shard_.set_loop_hook([this] { on_loop(); });
    if (shared_->relay) shared_->relay->attach(shard_.id(), shard_);
    if (shared_->control) {
      ctl_ = std::make_unique<control::shard_control>(shared_->control, shard_,
                                                      settings_.deny_as_error);
    }
    connect(main_, settings_.has_upstream, settings_.upstream, settings_.upstream_stdio,
            settings_.upstream_headers);
    for (size_t i = 0; i < settings_.servers.size(); ++i) {
      const server_settings& ss = settings_.servers[i];
      auto r = std::make_unique<route>(static_cast<uint16_t>(i + 1), ss.name, ss.path,
                                       shared_->server_policies[i], limiter_, settings_.reader);
      connect(*r, ss.has_upstream, ss.upstream, ss.upstream_stdio, ss.upstream_headers);
      server_deciders_.push_back(&r->decider);
      servers_.push_back(std::move(r));
    }
  }

  ~gateway_shard() override {
    shard_.set_loop_hook(nullptr);
    if (shared_->relay) shared_->relay->detach(shard_.id());  // nothing is posted here any more
    shared_->limits->detach(shard_.id());
    if (main_.pool) main_.pool->shutdown();
    for (const auto& r : servers_)
      if (r->pool) r->pool->shutdown();
  }

  void on_request(const http_request& req, response_slot slot) override {
    // A page of an allowed origin may read every answer, a 404 or 405 included (CORS); admit()
    // and options() refuse any other origin.
    if (!req.origin.empty() && origin_allowed(req.origin)) slot.allow_origin(req.origin);
    // Routing reads the normalised path only (net/request_path.h): one spelling, one route.
    std::string_view error, path;
    if (!normalized_path(req.target, path_, path, error)) {
      return respond_rpc_error(slot, 400, {}, kErrorBadPath, error);
    }
    if (route* r = find_route(path)) return mcp(*r, req, slot);
    if (is_decide_path(path)) {
      if (route* r = decide_route(path)) return decide_service(*r, req, slot);
      return respond_rpc_error(slot, 404, {}, kErrorNoEndpoint,
                               "not found: no policy decides at this path (no top-level policy; "
                               "a server's calls are decided under the service at its path)");
    }
    respond_rpc_error(slot, 404, {}, kErrorNoEndpoint, "not found: no MCP endpoint at this path");
  }

  // The endpoint a normalised path names exactly; null when none does.
  route* find_route(std::string_view path) {
    if (settings_.serve_main && path == main_.path) return &main_;
    for (const auto& r : servers_)
      if (path == r->path) return r.get();
    return nullptr;
  }

  // Called by forward when an exchange is over.
  void done(forward* f) {
    f->reset();
    f->active = false;
    --active_forwards_;
    free_.push_back(f);
  }
  // Answers with a JSON-RPC upstream error instead of what the upstream is sending, and
  // stops the exchange (its rate-limit slots go back).
  void fail(forward* f, int status, std::string_view message) {
    out_.clear();
    append_rpc_error(out_, f->id, kErrorUpstream, message);
    f->slot.respond(status, kJson, out_);
    abandon(f);
  }
  // The agent went away mid-exchange: stop the upstream side, no more callbacks.
  void abandon(forward* f) {
    if (f->taken_count != 0) limiter_.release({f->taken.data(), f->taken_count}, f->taken_at_ns);
    f->rt->pool->cancel(f->handle);
    done(f);
  }
  tools_filter& filter() { return filter_; }
  const session_binding& sessions() const { return sessions_; }
  // request_handler: back-pressure, counted (forward::relay counts its holds here too).
  void on_client_held() override {
    if (ctl_) ctl_->client_held();
  }
  void on_client_send_timeout() override {
    if (ctl_) ctl_->client_send_timeout();
  }
  net::status_counts* response_counts() override {
    return ctl_ ? &ctl_->metrics().responses : nullptr;
  }
  policy::limiter& limiter() { return limiter_; }
  control::shard_control* control() { return ctl_.get(); }

  // An approved call (net/control): forwarded as it arrived; its rate limits were not taken.
  // It goes to the endpoint its target names, as when it was decided.
  bool forward_approved(control::held_call& c) override {
    std::string_view error, path;
    if (!normalized_path(c.target, path_, path, error)) return false;
    route* r = find_route(path);
    if (r == nullptr || !r->pool) return false;
    forward* f = take_forward();
    f->slot = c.slot;
    f->id = c.rpc_id;
    f->pre_streamed = c.sse;
    send_upstream(*r, c.request(), policy::identity{c.grant, c.session}, f);
    return true;
  }

 private:
  void connect(route& r, bool has_upstream, const upstream_target& target,
               const stdio_options& stdio, const std::vector<std::string>& headers) {
    if (!stdio.argv.empty()) {
      auto router = std::make_unique<stdio_router>(shard_, r.index, shared_->relay, stdio);
      r.router = router.get();
      r.pool = std::move(router);
    } else if (has_upstream) {
      auto pool = std::make_unique<upstream_pool>(shard_, target, settings_.upstream_opts);
      r.http = pool.get();
      r.pool = std::move(pool);
    }
    for (const std::string& line : headers) {
      const size_t colon = line.find(':');
      std::string_view value = std::string_view(line).substr(colon + 1);
      while (!value.empty() && value.front() == ' ')
        value.remove_prefix(1);
      const http_header h{std::string_view(line).substr(0, colon), value};
      if (forwardable_header(h)) r.extra_upstream.push_back(h);  // the pool would drop it
    }
  }

  void respond_text(response_slot& slot, int status, std::string_view text,
                    std::span<const http_header> extra = {}) {
    slot.respond(status, "text/plain; charset=utf-8", text, extra);
  }

  void respond_rpc_error(response_slot& slot, int status, std::string_view id, int code,
                         std::string_view message) {
    out_.clear();
    append_rpc_error(out_, id, code, message);
    slot.respond(status, kJson, out_);
  }

  // A localhost origin, or one given with --allow-origin.
  bool origin_allowed(std::string_view origin) const {
    if (is_local_origin(origin)) return true;
    for (const std::string& o : settings_.allowed_origins)
      if (origin == o) return true;
    return false;
  }

  // Origin and bearer token. Answers and returns false when the request may not go on.
  bool admit(const http_request& req, response_slot& slot, policy::identity& who) {
    if (!req.origin.empty() && !origin_allowed(req.origin)) {
      respond_text(slot, 403, "origin not allowed\n");
      return false;
    }
    if (!settings_.grants) {
      who.grant = "anonymous";
      return true;
    }
    const std::string* grant = settings_.grants->find(bearer_token(req.authorization));
    if (grant == nullptr) {
      static constexpr http_header kChallenge[] = {{"WWW-Authenticate", "Bearer"}};
      out_.clear();
      append_rpc_error(out_, {}, -32001, "missing or unknown bearer token");
      slot.respond(401, kJson, out_, kChallenge);
      return false;
    }
    who.grant = *grant;
    return true;
  }

  // An MCP endpoint's session: the Mcp-Session-Id a request names must carry the tag Sluice
  // gave it for this grant on this endpoint (net/session_binding.h); who.session is then the
  // upstream's id. Answers 404 and returns false otherwise, as a server does for a session it
  // does not know: an MCP client then starts a new session.
  bool admit_session(const route& r, const http_request& req, response_slot& slot,
                     policy::identity& who) {
    if (req.mcp_session_id.empty()) return true;
    if (sessions_.verify(r.path, who.grant, req.mcp_session_id, who.session)) return true;
    respond_rpc_error(slot, 404, {}, kErrorNoSession,
                      "Session not found: this Mcp-Session-Id was not issued to this caller "
                      "on this endpoint; start a new session with initialize");
    return false;
  }

  // OPTIONS: a browser's CORS preflight, answered for an allowed Origin without a token (the
  // browser sends none with it); without an Origin, the methods this endpoint takes.
  void options(const http_request& req, response_slot& slot, std::string_view methods) {
    if (req.origin.empty()) {
      const http_header allow[] = {{"Allow", methods}};
      return slot.respond(200, {}, {}, allow);
    }
    if (!origin_allowed(req.origin)) return respond_text(slot, 403, "origin not allowed\n");
    // Chromium's Private Network Access: a public page asking for a local address says so,
    // and must be told yes.
    const bool private_network =
        ascii_iequals(header_value(req.headers, "Access-Control-Request-Private-Network"), "true");
    const http_header cors[] = {
        {"Access-Control-Allow-Methods", methods},
        {"Access-Control-Allow-Headers",
         "Content-Type, Accept, Authorization, Mcp-Session-Id, MCP-Protocol-Version, "
         "Last-Event-ID, Mcp-Method, Mcp-Name"},
        {"Access-Control-Max-Age", "7200"},
        {"Access-Control-Allow-Private-Network", "true"}};
    slot.respond(200, {}, {}, std::span<const http_header>(cors, private_network ? 4 : 3));
  }

  // The decision service's path, or a path under it: Envoy's HTTP ext_authz asks at its
  // path_prefix followed by the client's own path (/v1/decide/mcp).
  bool is_decide_path(std::string_view path) const {
    const std::string_view d = settings_.decide_path;
    return path.size() >= d.size() && policy::same_bytes(path.substr(0, d.size()), d) &&
           (path.size() == d.size() || path[d.size()] == '/');
  }

  // The endpoint whose policy (and counters) the decision service decides with: the server
  // that the path under the service names exactly (/v1/decide/servers/<name>/mcp, which is
  // what Envoy's ext_authz sends for a call to /servers/<name>/mcp), else the top-level one;
  // null when there is none.
  route* decide_route(std::string_view path) {
    if (route* r = find_route(path.substr(settings_.decide_path.size()))) return r;
    return settings_.serve_main ? &main_ : nullptr;
  }

  // POST /v1/decide: the status is the decision. Answers inline; does not allocate once warm.
  // GET and DELETE (a proxy asking about the client's server stream or session end) carry no
  // message: allowed for a known caller, as the gateway passes them through undecided.
  void decide_service(route& r, const http_request& req, response_slot& slot) {
    const bool post = req.method == "POST";
    if (!post && req.method != "GET" && req.method != "DELETE") {
      if (req.method == "OPTIONS") return options(req, slot, "POST, GET, DELETE, OPTIONS");
      static constexpr http_header kAllow[] = {{"Allow", "POST, GET, DELETE, OPTIONS"}};
      return respond_text(slot, 405, "POST an MCP message\n", kAllow);
    }
    policy::identity who;
    if (!admit(req, slot, who)) return;
    if (!post) return decide_no_message(req, slot);
    // The caller is a proxy that speaks to the server itself: session ids are the server's.
    who.session = req.mcp_session_id;
    if (!charset_is_utf8(req.content_type)) {
      // The caller forwards this body with this Content-Type: its server may read it in that
      // charset, as another message than the one decided here.
      policy::decision d;
      d.what = verdict::invalid;
      d.error = policy::rpc_error::invalid_request;
      d.reason = "Content-Type names a charset other than UTF-8";
      return respond_decision(slot, d);
    }
    decide_answer(r, req, slot, who);
  }

  void decide_no_message(const http_request& req, response_slot& slot) {
    policy::decision d;
    if (req.body.empty()) {
      d.what = verdict::allow;
      d.reason = "no message to decide: GET and DELETE pass as they do through the gateway";
    } else {
      // The server behind the caller would read a message the policy never saw.
      d.what = verdict::invalid;
      d.error = policy::rpc_error::invalid_request;
      d.reason = kNoBodyOnGet;
    }
    respond_decision(slot, d);
  }

  void decide_answer(route& r, const http_request& req, response_slot& slot,
                     const policy::identity& who) {
    const policy::body_decision& bd = decide(r, req.body, who);
    if (bd.wait() && park(true, r, req, slot, who)) return;
    respond_decision(slot, bd.overall);
  }

  // The decision service's answer: the status is the verdict, the body is formatted straight
  // into the connection's output.
  void respond_decision(response_slot& slot, const policy::decision& d) {
    const decision_body body(d);
    auto write = [&body](char* p) { return body.put(p); };
    if (d.what == verdict::rate_limited) {
      char secs[24];
      const int n = std::snprintf(secs, sizeof secs, "%lld",
                                  static_cast<long long>(retry_after_seconds(d.retry_after_ns)));
      const http_header retry[] = {{"Retry-After", std::string_view(secs, static_cast<size_t>(n))}};
      return slot.respond_in_place(429, kJson, body.size(), write, retry);
    }
    slot.respond_in_place(decision_status(d.what), kJson, body.size(), write);
  }

  void mcp(route& r, const http_request& req, response_slot& slot) {
    policy::identity who;
    if (req.method == "POST") {
      if (!admit(req, slot, who) || !admit_session(r, req, slot, who)) return;
      return mcp_post(r, req, slot, who);
    }
    if (req.method == "GET" || req.method == "DELETE") {
      if (!admit(req, slot, who) || !admit_session(r, req, slot, who)) return;
      // These pass through undecided, so they may carry nothing to decide: a server that read
      // a message from their body would run a call no policy saw.
      if (!req.body.empty()) {
        return respond_rpc_error(
            slot, 400, {}, static_cast<int>(policy::rpc_error::invalid_request), kNoBodyOnGet);
      }
      if (req.method == "GET" && !accepts(req.accept, kEventStream)) {
        return respond_text(slot, 406, "GET needs Accept: text/event-stream\n");
      }
      return pass_through(r, req, slot, who);
    }
    if (req.method == "OPTIONS") return options(req, slot, "GET, POST, DELETE, OPTIONS");
    static constexpr http_header kAllow[] = {{"Allow", "GET, POST, DELETE, OPTIONS"}};
    respond_text(slot, 405, "method not allowed\n", kAllow);
  }

  void mcp_post(route& r, const http_request& req, response_slot& slot,
                const policy::identity& who) {
    if (!post_accept_ok(req.accept)) {
      return respond_rpc_error(slot, 406, {}, static_cast<int>(policy::rpc_error::invalid_request),
                               "Accept must list application/json and text/event-stream");
    }
    switch (classify_json_content_type(req.content_type)) {
      case json_body_type::json:
        break;
      case json_body_type::not_json:
        return respond_rpc_error(slot, 415, {},
                                 static_cast<int>(policy::rpc_error::invalid_request),
                                 "Content-Type must be application/json");
      case json_body_type::not_utf8:
        return respond_rpc_error(slot, 415, {},
                                 static_cast<int>(policy::rpc_error::invalid_request),
                                 "Content-Type: the body must be UTF-8 (no other charset)");
    }
    policy::decider& decider = r.decider;
    const policy::body_decision& bd = decide(r, req.body, who);
    if (bd.overall.what == verdict::invalid && bd.each.empty()) {
      return respond_rpc_error(slot, 400, {}, static_cast<int>(bd.overall.error),
                               bd.overall.reason);
    }
    const auto msgs = decider.reader().messages();
    if (!headers_match(decider, req, bd)) {
      decider.release_all();
      return respond_rpc_error(slot, 400, bd.batch ? std::string_view{} : msgs[0].id,
                               kErrorHeaderMismatch,
                               "Mcp-Method / Mcp-Name headers do not match the message body");
    }
    if (bd.wait() && park(false, r, req, slot, who)) return;
    if (bd.overall.what == verdict::approval_required && ctl_ &&
        ctl_->park_for_approval(decider, bd, req, slot, who, r.name))
      return;
    if (bd.overall.what != verdict::allow) return answer_refusal(decider, slot, bd);
    if (!r.pool) {
      decider.release_all();
      return respond_rpc_error(slot, 503, bd.batch ? std::string_view{} : msgs[0].id,
                               kErrorUpstream, "no upstream server is configured");
    }
    forward* f = take_forward();
    f->slot = slot;
    f->taken_at_ns = decider.decided_at();
    for (size_t i = 0; i < msgs.size(); ++i) {
      if (msgs[i].method_kind == policy::method_id::tools_list) f->filter_tools = true;
      for (const policy::limit_request& lr : decider.taken(bd.each[i])) {
        if (f->taken_count < kMaxTaken) f->taken[f->taken_count++] = lr;
      }
    }
    if (!bd.batch) f->id.assign(msgs[0].id);
    send_upstream(r, req, who, f);
  }

  // Whether a POST's Accept lists both JSON and SSE. A client sends the same Accept with every
  // call: the last value's verdict is remembered rather than the list parsed per call.
  bool post_accept_ok(std::string_view accept) {
    if (accept_known_ && accept == accept_last_) return accept_ok_;
    const bool ok = accepts(accept, kJson) && accepts(accept, kEventStream);
    if (accept.size() <= kAcceptMemoMax) {
      accept_last_.assign(accept);  // no allocation once the capacity is reserved
      accept_ok_ = ok;
      accept_known_ = true;
    }
    return ok;
  }

  // Mcp-Method / Mcp-Name (protocol revision 2026-07-28): when present they must say what
  // the body says, so a lying header can never steer a decision made on it.
  static bool headers_match(const policy::decider& decider, const http_request& req,
                            const policy::body_decision& bd) {
    if (req.mcp_method.empty() && req.mcp_name.empty()) return true;
    const auto msgs = decider.reader().messages();
    if (bd.batch || msgs.size() != 1) return false;
    const policy::message& m = msgs[0];
    if (!req.mcp_method.empty() && req.mcp_method != m.method) return false;
    if (!req.mcp_name.empty() && req.mcp_name != m.target) return false;
    return true;
  }

  // Every message the policy did not allow gets its denial; in a refused batch the allowed
  // requests are not forwarded either and say so.
  void answer_refusal(const policy::decider& decider, response_slot& slot,
                      const policy::body_decision& bd) {
    const auto msgs = decider.reader().messages();
    out_.clear();
    if (!bd.batch) {
      const policy::message& m = msgs[0];
      if (bd.overall.what == verdict::invalid) {
        append_rpc_error(out_, m.id, static_cast<int>(bd.overall.error), bd.overall.reason);
        return slot.respond(400, kJson, out_);
      }
      append_denial(out_, m.id, bd.overall, m.method_kind == policy::method_id::tools_call,
                    settings_.deny_as_error);
      return slot.respond(200, kJson, out_);
    }
    out_ += '[';
    bool first = true;
    for (size_t i = 0; i < msgs.size(); ++i) {
      const policy::message& m = msgs[i];
      const policy::decision& d = bd.each[i];
      if (m.kind != policy::message_kind::request && d.what != verdict::invalid) continue;
      if (!first) out_ += ',';
      first = false;
      if (d.what == verdict::invalid) {
        append_rpc_error(out_, m.id, static_cast<int>(d.error), d.reason);
      } else if (d.what == verdict::allow) {
        append_rpc_error(out_, m.id, kErrorDenied,
                         "not forwarded: another message in this batch was refused by policy");
      } else {
        append_denial(out_, m.id, d, m.method_kind == policy::method_id::tools_call,
                      settings_.deny_as_error);
      }
    }
    out_ += ']';
    if (first) return slot.respond(202, {}, {});
    slot.respond(200, kJson, out_);
  }

  void pass_through(route& r, const http_request& req, response_slot& slot,
                    const policy::identity& who) {
    if (!r.pool) return respond_text(slot, 503, "no upstream server is configured\n");
    forward* f = take_forward();
    f->slot = slot;
    send_upstream(r, req, who, f);
  }

  // Forwards `req`, naming the session by the upstream's own id (who.session); the answer's
  // session id goes back to the agent bound to who.grant.
  void send_upstream(route& r, const http_request& req, const policy::identity& who, forward* f) {
    headers_.clear();
    auto add = [&](std::string_view name, std::string_view value) {
      if (!value.empty()) headers_.push_back({name, value});
    };
    // A POST here was decided as UTF-8 JSON: the upstream is told exactly that, whatever
    // spelling of it the client used, so it cannot read the body another way.
    add("Content-Type", req.method == "POST" ? kJson : req.content_type);
    add("Accept", req.accept);
    add("Mcp-Session-Id", who.session);
    add("MCP-Protocol-Version", req.mcp_protocol_version);
    add("Last-Event-ID", req.last_event_id);
    add("Mcp-Method", req.mcp_method);
    add("Mcp-Name", req.mcp_name);
    for (const http_header& h : r.extra_upstream)
      headers_.push_back(h);
    upstream_request up;
    up.method = req.method;
    up.stream = req.method == "GET";  // MCP's server stream: open as long as the session lives
    up.headers = headers_;
    up.vetted = true;  // the names above, values from our parser, extras checked in connect()
    up.body = req.body;
    f->owner = this;
    f->rt = &r;
    f->grant.assign(who.grant);
    // A zero handle: the exchange failed inside send() (on_error ran, f is recycled).
    if (ctl_) {
      ctl_->upstream_sent();
      f->sent_ns = shard_.now_ns();  // the loop's clock: no clock read per call
    }
    if (const uint64_t h = r.pool->send(up, f); h != 0) f->handle = h;
  }

  // Decides a body; with a control plane, also counts and audits it, and times it when
  // shard_control asks (every decision with an audit file, else one in eight). Rate-limit
  // windows are aligned to the Unix epoch: the wall clock is the shard's, read once per loop
  // iteration, so the calls of one batch are decided at the same instant.
  const policy::body_decision& decide(route& r, std::string_view body,
                                      const policy::identity& who) {
    if (!ctl_) return r.decider.decide(body, who, shard_.wall_ns());
    const bool timed = ctl_->time_next_decision();
    const int64_t t0 = timed ? control::steady_ns() : 0;
    const policy::body_decision& bd = r.decider.decide(body, who, shard_.wall_ns());
    if (!bd.wait())
      ctl_->record(r.decider, bd, who, body, timed ? control::steady_ns() - t0 : -1, r.index,
                   r.name);
    return bd;
  }

  void on_loop() {
    if (shared_->relay) relay_in();
    if (abandoned_ && active_forwards_ != 0) reap_abandoned();
    abandoned_ = false;
    if (ctl_) {
      control::upstream_gauges g;
      add_gauges(main_, g);
      for (const auto& r : servers_)
        add_gauges(*r, g);
      ctl_->on_loop(main_.decider, server_deciders_, *this, port_.limiter().live_keys(), g);
    }
    if (port_.receive() && !parked_.empty()) decide_parked();
    port_.send(!parked_.empty());
  }

  static void add_gauges(const route& r, control::upstream_gauges& g) {
    if (r.http == nullptr) return;
    g.idle += r.http->idle();
    g.busy += r.http->busy();
    g.streams += r.http->streams();
    g.waiting += r.http->waiting();
    g.waited += r.http->counters().waited;
  }

  // stdio exchanges other shards hand over to this one (their sessions' processes live here),
  // and the answers to those this shard handed over.
  void relay_in() {
    shared_->relay->take(shard_.id(), relay_inbox_);
    for (relay_message& m : relay_inbox_) {
      route* r = m.route == 0                 ? &main_
                 : m.route <= servers_.size() ? servers_[m.route - 1].get()
                                              : nullptr;
      if (r != nullptr && r->router != nullptr) r->router->on_message(m);
    }
    relay_inbox_.clear();
    if (main_.router) main_.router->collect();
    for (const auto& r : servers_)
      if (r->router) r->router->collect();
  }

  // Keeps a waiting call until the hub's next reply. False (answer now, rate_limited) when
  // too many calls wait already. Allocates only while warming up.
  bool park(bool decide_service, route& r, const http_request& req, response_slot& slot,
            const policy::identity& who) {
    if (parked_.size() >= settings_.max_parked) return false;
    std::unique_ptr<parked_call> p;
    if (parked_free_.empty()) {
      p = std::make_unique<parked_call>();
    } else {
      p = std::move(parked_free_.back());
      parked_free_.pop_back();
    }
    p->decide_service = decide_service;
    p->rt = &r;
    p->slot = slot;
    p->grant = who.grant;
    p->session.assign(who.session);
    p->method.assign(req.method);
    p->target.assign(req.target);
    p->content_type.assign(req.content_type);
    p->accept.assign(req.accept);
    p->protocol_version.assign(req.mcp_protocol_version);
    p->last_event_id.assign(req.last_event_id);
    p->mcp_method.assign(req.mcp_method);
    p->mcp_name.assign(req.mcp_name);
    p->body_size = req.body.size();
    p->body.assign(req.body);
    p->body.append(simdjson::SIMDJSON_PADDING, ' ');
    parked_.push_back(std::move(p));
    return true;
  }

  // After a grant or close: every parked call is decided again, in arrival order; one that
  // must still wait (another key) parks again.
  void decide_parked() {
    redo_.swap(parked_);
    for (std::unique_ptr<parked_call>& p : redo_) {
      if (p->slot.valid()) {
        http_request req;
        req.method = p->method;
        req.target = p->target;
        req.content_type = p->content_type;
        req.accept = p->accept;
        req.mcp_session_id = p->session;
        req.mcp_protocol_version = p->protocol_version;
        req.last_event_id = p->last_event_id;
        req.mcp_method = p->mcp_method;
        req.mcp_name = p->mcp_name;
        req.body = std::string_view(p->body.data(), p->body_size);
        const policy::identity who{p->grant, p->session};
        if (p->decide_service) {
          decide_answer(*p->rt, req, p->slot, who);
        } else {
          mcp_post(*p->rt, req, p->slot, who);
        }
      }
      parked_free_.push_back(std::move(p));
    }
    redo_.clear();
  }

  forward* take_forward() {
    forward* f;
    if (free_.empty()) {
      forwards_.push_back(std::make_unique<forward>());
      f = forwards_.back().get();
    } else {
      f = free_.back();
      free_.pop_back();
    }
    f->active = true;
    ++active_forwards_;
    return f;
  }

  // Called from http_server when a connection owing answers goes away, which may be while the
  // engine flushes, after this iteration's on_loop(): the next iteration must not wait for a
  // completion that may never come (an upstream that has sent all it had) before reaping.
  void on_answers_abandoned() override {
    abandoned_ = true;
    shard_.loop_again();
  }

  // An agent that went away while its answer was being relayed, and the upstream sends
  // nothing more to notice it by: stop the exchange and free the upstream connection. Runs
  // only in a loop iteration after http_server said a connection with answers owed went away.
  void reap_abandoned() {
    for (const std::unique_ptr<forward>& f : forwards_) {
      if (f->active && f->handle != 0 && !f->slot.valid()) abandon(f.get());
    }
  }

  engine::shard& shard_;
  std::shared_ptr<const gateway_shared> shared_;
  const gateway_settings& settings_;
  limit_hub::port& port_;
  policy::limiter& limiter_;
  route main_;                                   // mcp_path, the top-level policy and upstream
  std::vector<std::unique_ptr<route>> servers_;  // settings.servers, in order
  std::vector<policy::decider*> server_deciders_;
  std::vector<std::unique_ptr<parked_call>> parked_, parked_free_, redo_;
  std::unique_ptr<control::shard_control> ctl_;  // null without a control plane
  tools_filter filter_;
  session_binding sessions_{*settings_.session_key};
  std::string out_;
  static constexpr size_t kAcceptMemoMax = 256;
  std::string accept_last_ = std::string(kAcceptMemoMax, '\0');  // capacity reserved
  bool accept_known_ = false;
  bool accept_ok_ = false;
  std::string path_;  // the normalised path of the request being routed, when it is not its target
  std::vector<relay_message> relay_inbox_;
  std::vector<http_header> headers_;
  std::vector<std::unique_ptr<forward>> forwards_;  // every exchange object this shard made
  std::vector<forward*> free_;
  size_t active_forwards_ = 0;
  bool abandoned_ = false;  // a connection with answers owed went away since the last loop
};

void forward::begin_stream() {
  http_header extra[2];
  size_t n = 0;
  if (!session_id.empty()) extra[n++] = {"Mcp-Session-Id", session_id};
  if (!protocol_version.empty()) extra[n++] = {"MCP-Protocol-Version", protocol_version};
  if (!pre_streamed) slot.begin(status, content_type, {extra, n});
  streaming = true;
}

void forward::respond_whole(std::string_view bytes) {
  http_header extra[2];
  size_t n = 0;
  if (!session_id.empty()) extra[n++] = {"Mcp-Session-Id", session_id};
  if (!protocol_version.empty()) extra[n++] = {"MCP-Protocol-Version", protocol_version};
  if (pre_streamed) return control::finish_as_sse_event(slot, bytes);
  slot.respond(status, content_type, bytes, {extra, n});
}

void forward::on_head(const upstream_response_head& head) {
  status = head.status;
  if (control::shard_control* c = owner->control()) c->upstream_head(status, sent_ns);
  if (status >= 500 && taken_count != 0) {
    // The upstream did not serve the call: its rate-limit slots go back.
    owner->limiter().release({taken.data(), taken_count}, taken_at_ns);
    taken_count = 0;
  }
  content_type.assign(head.content_type);
  session_id.assign(head.mcp_session_id);
  if (!session_id.empty())
    owner->sessions().append_tag(session_id, rt->path, grant, head.mcp_session_id);
  protocol_version.assign(head.mcp_protocol_version);
  sse = head.content_type.substr(0, kEventStream.size()) == kEventStream;
  // A JSON tools/list answer is held however it is framed, because it must be filtered before
  // any of it is relayed. Any other answer is relayed as it arrives: with the upstream's
  // Content-Length when it gave one, else chunked. (An answer with no body and no length, or
  // one from a stdio server, which comes whole, is held and sent with its length.)
  if (!sse && (filter_tools || pre_streamed || !head.chunked_or_streaming)) {
    if (!filter_tools && !pre_streamed && head.content_length >= 0) {
      http_header extra[2];
      size_t n = 0;
      if (!session_id.empty()) extra[n++] = {"Mcp-Session-Id", session_id};
      if (!protocol_version.empty()) extra[n++] = {"MCP-Protocol-Version", protocol_version};
      slot.begin_sized(status, content_type, static_cast<uint64_t>(head.content_length),
                       {extra, n});
      streaming = true;
      return;
    }
    held = true;
    return;
  }
  begin_stream();
}

void forward::on_body(std::string_view bytes) {
  if (!slot.valid()) return owner->abandon(this);  // the agent went away
  if (held) {
    if (body.size() + bytes.size() <= (filter_tools ? kMaxToolsListAnswer : kMaxHeldAnswer)) {
      body.append(bytes);
      return;
    }
    if (filter_tools) {
      // Fail closed: what cannot be filtered is not relayed.
      return owner->fail(this, 502, "upstream tools/list answer is too large to filter");
    }
    held = false;  // too large to hold: stream what we have and the rest
    begin_stream();
    slot.write(body);
    body.clear();
  }
  if (sse && filter_tools) {
    std::string rewritten;
    splitter.feed(bytes, [&](std::string_view event) {
      filter_sse_event(event, owner->filter(), rt->decider.policy(), rewritten);
    });
    if (splitter.pending().size() > kMaxToolsListAnswer) {
      // An event that does not end cannot be filtered, and is not held without bound: what
      // was relayed goes out, then the stream is cut (fail closed).
      slot.write(rewritten);
      slot.abort();
      return owner->abandon(this);
    }
    return relay(rewritten);
  }
  relay(bytes);
}

void forward::relay(std::string_view bytes) {
  slot.write(bytes);
  // The agent is not taking the answer as fast as the upstream sends it: stop reading the
  // upstream until the agent has taken what is queued (then on_output_drained).
  if (!holding && slot.congested()) {
    holding = true;
    owner->on_client_held();
    rt->pool->hold_answer(handle, true);
    slot.when_drained(this);
  }
}

void forward::on_output_drained() {
  if (!active || !holding) return;
  holding = false;
  rt->pool->hold_answer(handle, false);
}

void forward::on_end() {
  if (held) {
    std::string filtered;
    if (!filter_tools || status < 200 || status >= 300) {
      respond_whole(body);
    } else if (owner->filter().filter(body, rt->decider.policy(), filtered)) {
      respond_whole(filtered);
    } else {
      // Fail closed: an answer the filter cannot read could carry hidden tools.
      return owner->fail(this, 502, "upstream answered tools/list with invalid JSON");
    }
  } else if (streaming) {
    if (sse && filter_tools && !splitter.pending().empty()) {
      // The stream ended inside an event: it goes through the filter like the others.
      std::string rewritten;
      filter_sse_event(splitter.pending(), owner->filter(), rt->decider.policy(), rewritten);
      slot.write(rewritten);
    }
    slot.finish();
  }
  owner->done(this);
}

void forward::on_error(upstream_error e, std::string_view detail) {
  if (control::shard_control* c = owner->control()) c->upstream_failed(static_cast<uint8_t>(e));
  if (pre_streamed) streaming = sse = true;  // the SSE answer began while the call waited
  if (taken_count != 0) {
    owner->limiter().release({taken.data(), taken_count}, taken_at_ns);
    taken_count = 0;
  }
  std::string message = "upstream ";
  message += to_string(e);
  if (!detail.empty()) {
    message += ": ";
    message += detail;
  }
  if (streaming) {
    if (sse) {
      // An event stream can say what happened, and end cleanly.
      std::string event = "event: message\ndata: ";
      append_rpc_error(event, id, kErrorUpstream, message);
      event += "\n\n";
      slot.write(event);
      slot.finish();
    } else {
      // A JSON body cut short: ending it cleanly would pass a truncated document (or, with a
      // Content-Length, desynchronise the connection). Close it: the client sees the cut.
      slot.abort();
    }
  } else {
    const bool timeout =
        e == upstream_error::connect_timeout || e == upstream_error::response_timeout;
    std::string out;
    append_rpc_error(out, id, kErrorUpstream, message);
    slot.respond(timeout ? 504 : 502, kJson, out);
  }
  owner->done(this);
}

}  // namespace

request_handler_factory make_gateway_factory(std::shared_ptr<gateway_shared> shared) {
  if (!shared->limits) {
    limit_hub_options o;
    o.shards = resolve_shard_count(shared->settings.shards);
    o.merge_interval = shared->settings.merge_interval;
    o.limiter = shared->settings.limiter;
    o.cluster = shared->settings.cluster;
    o.cluster_metrics = shared->settings.cluster_metrics;
    shared->limits = std::make_shared<limit_hub>(o);
  }
  if (!shared->settings.session_key) shared->settings.session_key = session_binding::random_key();
  bool stdio = !shared->settings.upstream_stdio.argv.empty();
  for (const server_settings& s : shared->settings.servers)
    stdio |= !s.upstream_stdio.argv.empty();
  const unsigned shards = resolve_shard_count(shared->settings.shards);
  if (stdio && shards > 1 && !shared->relay) {
    shared->relay = std::make_shared<stdio_relay_hub>(shards);
  }
  shared->limits->start();
  return [shared](engine::shard& shard) -> std::unique_ptr<request_handler> {
    return std::make_unique<gateway_shard>(shard, shared);
  };
}

}  // namespace sluice::net
