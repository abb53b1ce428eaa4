// `sluice serve`: the gateway and the decision service on io_uring shards.

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/runtime.h"
#include "engine/signals.h"
#include "net/control/plane.h"
#include "net/gateway.h"
#include "net/grants.h"
#include "net/http1.h"
#include "net/http_server.h"
#include "net/request_path.h"
#include "net/session_binding.h"
#include "net/stdio_upstream.h"
#include "net/upstream.h"
#include "policy/compiled_policy.h"
#include "policy/loader.h"
#include "tools/sluice/commands.h"
#include "tools/sluice/sd_notify.h"

namespace sluice::cli {

namespace {

// One of several servers behind the gateway: the `servers` object of a --config file.
struct server_option {
  std::string name;
  std::string policy;  // resolved against the config file's directory
  std::string upstream;
  std::string upstream_command;
  std::vector<std::string> upstream_header;
};

// Everything `serve` can be told, from flags or from a --config JSON file.
struct serve_options {
  std::string policy;
  std::string listen = "127.0.0.1:8080";
  std::string upstream;
  std::string upstream_command;
  std::string grants;
  std::string session_key_file;
  int64_t shards = 0;
  std::string mcp_path = "/mcp";
  std::string decide_path = "/v1/decide";
  std::vector<std::string> allow_origin;
  std::vector<std::string> upstream_header;
  bool deny_as_error = false;
  int64_t max_header_bytes = 8 * 1024;
  int64_t max_body_bytes = 1024 * 1024;
  int64_t header_timeout_ms = 10'000;
  int64_t idle_timeout_ms = 60'000;
  int64_t max_output_bytes = 1024 * 1024;
  int64_t send_timeout_ms = 60'000;
  int64_t max_connections = 10'000;
  int64_t connect_timeout_ms = 2'000;
  int64_t response_timeout_ms = 30'000;
  int64_t upstream_connections = 256;
  int64_t upstream_queue = 1024;
  int64_t upstream_streams = 1024;
  int64_t max_limiter_keys = 1 << 20;
  int64_t merge_interval_ms = 2;
  int64_t max_json_depth = 64;
  int64_t drain_timeout_ms = 10'000;
  std::string admin;  // HOST:PORT of the admin server; empty: none
  std::string admin_token_file;
  std::string audit_log;
  int64_t audit_ring = 8192;
  int64_t approval_timeout_ms = 300'000;
  std::vector<std::string> approval_timeout;  // TOOL=MS
  bool no_watch_policy = false;
  std::string cluster;  // redis://HOST:PORT; empty: this process counts alone
  bool cluster_fail_open = false;
  int64_t stdio_idle_timeout_ms = 600'000;
  std::vector<server_option> servers;  // --config only
};

struct option_spec {
  const char* name;  // flag without "--"; the config key is the same with '_' for '-'
  const char* arg;   // nullptr: a switch
  const char* help;
  std::function<bool(serve_options&, std::string_view)> set;
};

bool set_int(int64_t& out, std::string_view v, int64_t min, int64_t max) {
  int64_t x = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), x);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size() || x < min || x > max) return false;
  out = x;
  return true;
}

#define STR(field)                           \
  [](serve_options& o, std::string_view v) { \
    o.field = v;                             \
    return !v.empty();                       \
  }
#define LIST(field)                          \
  [](serve_options& o, std::string_view v) { \
    o.field.emplace_back(v);                 \
    return !v.empty();                       \
  }
#define INT(field, min, max) \
  [](serve_options& o, std::string_view v) { return set_int(o.field, v, min, max); }

const std::vector<option_spec>& specs() {
  static const std::vector<option_spec> kSpecs = {
      {"policy", "FILE", "policy file (docs/policy.md); required unless the config has servers",
       STR(policy)},
      {"listen", "HOST:PORT", "address to serve on; port 0 picks a free one [127.0.0.1:8080]",
       STR(listen)},
      {"upstream", "URL", "MCP server to forward to, http://HOST:PORT/PATH", STR(upstream)},
      {"upstream-command", "'CMD ARGS...'",
       "stdio MCP server to run instead, one process per session", STR(upstream_command)},
      {"stdio-idle-timeout-ms", "MS",
       "end stdio sessions idle this long (then 404); 0: never [600000]",
       INT(stdio_idle_timeout_ms, 0, 86'400'000 * int64_t(30))},
      {"grants", "FILE", "bearer-token grants (docs/gateway.md); none: one anonymous grant",
       STR(grants)},
      {"session-key-file", "FILE",
       "secret (16+ bytes) binding session ids to grants; the same file keeps them "
       "valid across restarts and processes [random per process]",
       STR(session_key_file)},
      {"shards", "N", "event-loop shards, one per CPU [CPUs in the affinity mask]",
       INT(shards, 1, 1024)},
      {"mcp-path", "PATH", "path of the MCP endpoint [/mcp]", STR(mcp_path)},
      {"decide-path", "PATH", "path of the decision service (and paths under it) [/v1/decide]",
       STR(decide_path)},
      {"allow-origin", "ORIGIN",
       "an Origin allowed besides localhost ones, CORS included (repeatable)", LIST(allow_origin)},
      {"upstream-header", "'NAME: VALUE'", "header added to every upstream request (repeatable)",
       [](serve_options& o, std::string_view v) {
         const size_t colon = v.find(':');
         if (colon == 0 || colon == std::string_view::npos ||
             v.find_first_of("\r\n") != std::string_view::npos)
           return false;
         o.upstream_header.emplace_back(v);
         return true;
       }},
      {"deny-as-error", nullptr, "answer denials with JSON-RPC errors, not isError results",
       [](serve_options& o, std::string_view) { return o.deny_as_error = true; }},
      {"max-header-bytes", "N", "request line + headers; over it: 431 [8192]",
       INT(max_header_bytes, 256, 1 << 20)},
      {"max-body-bytes", "N", "request body; over it: 413 [1048576]",
       INT(max_body_bytes, 1, 64 << 20)},
      {"header-timeout-ms", "MS", "time to read a request's headers; over it: 408 [10000]",
       INT(header_timeout_ms, 1, 3'600'000)},
      {"idle-timeout-ms", "MS", "idle keep-alive connections are closed after [60000]",
       INT(idle_timeout_ms, 1, 86'400'000)},
      {"max-output-bytes", "N", "a slow client's queued output over which reading stops [1048576]",
       INT(max_output_bytes, 4096, int64_t(1) << 30)},
      {"send-timeout-ms", "MS",
       "a client that takes none of its queued output for this long is disconnected [60000]",
       INT(send_timeout_ms, 1, 86'400'000)},
      {"max-connections", "N", "connections per shard; over it: 503 [10000]",
       INT(max_connections, 1, 1'000'000)},
      {"connect-timeout-ms", "MS", "upstream connect timeout [2000]",
       INT(connect_timeout_ms, 1, 600'000)},
      {"response-timeout-ms", "MS", "upstream time to answer (head) [30000]",
       INT(response_timeout_ms, 1, 3'600'000)},
      {"upstream-connections", "N", "upstream connections per shard [256]",
       INT(upstream_connections, 1, 100'000)},
      {"upstream-queue", "N", "calls per shard waiting for a busy upstream connection [1024]",
       INT(upstream_queue, 0, 1'000'000)},
      {"upstream-streams", "N", "open GET streams per shard, each its own connection [1024]",
       INT(upstream_streams, 1, 100'000)},
      {"max-limiter-keys", "N", "live rate-limit keys per shard; beyond: fail closed [1048576]",
       INT(max_limiter_keys, 1, 1 << 30)},
      {"merge-interval-ms", "MS",
       "rate limits: how often the shards' counts are merged and leases moved [2]",
       INT(merge_interval_ms, 1, 1000)},
      {"max-json-depth", "N", "JSON nesting accepted in a message [64]",
       INT(max_json_depth, 2, 1024)},
      {"drain-timeout-ms", "MS", "on SIGTERM/SIGINT, time to finish in-flight requests [10000]",
       INT(drain_timeout_ms, 0, 600'000)},
      {"admin", "HOST:PORT",
       "admin server: /metrics, /admin/*, dashboard [off] (docs/operations.md)", STR(admin)},
      {"admin-token-file", "FILE", "bearer token of the admin server (required with --admin)",
       STR(admin_token_file)},
      {"audit-log", "FILE", "every decision as a JSON line; reopened on SIGUSR1", STR(audit_log)},
      {"audit-ring", "N", "audit records buffered per shard; beyond: dropped and counted [8192]",
       INT(audit_ring, 2, 1 << 20)},
      {"approval-timeout-ms", "MS",
       "require_approval calls wait this long, then are refused [300000]",
       INT(approval_timeout_ms, 1, 86'400'000)},
      {"approval-timeout", "TOOL=MS", "the same for one tool (repeatable)",
       [](serve_options& o, std::string_view v) {
         const size_t eq = v.rfind('=');
         int64_t ms = 0;
         if (eq == 0 || eq == std::string_view::npos ||
             !set_int(ms, v.substr(eq + 1), 1, 86'400'000))
           return false;
         o.approval_timeout.emplace_back(v);
         return true;
       }},
      {"no-watch-policy", nullptr, "do not reload the policy when its file changes (inotify)",
       [](serve_options& o, std::string_view) { return o.no_watch_policy = true; }},
      {"cluster", "URL",
       "redis://HOST:PORT: share rate-limit counts with the gateways using the same Redis "
       "(docs/policy.md, Across machines) [off]",
       STR(cluster)},
      {"cluster-fail-open", nullptr,
       "Redis unreachable: enforce each limit's max on this node alone [fail-closed: keep "
       "the last leases granted]",
       [](serve_options& o, std::string_view) { return o.cluster_fail_open = true; }},
  };
  return kSpecs;
}

#undef STR
#undef LIST
#undef INT

void print_usage(FILE* f) {
  std::fputs(
      "usage: sluice serve --policy FILE [--listen HOST:PORT] [--upstream URL] [options]\n"
      "       sluice serve --config FILE [options]\n"
      "\n"
      "Serves MCP Streamable HTTP on --mcp-path, deciding every message with the policy and\n"
      "forwarding what it allows to --upstream, and the decision service on --decide-path.\n"
      "Prints one line, `sluice listening on HOST:PORT`, once it serves. SIGTERM or SIGINT:\n"
      "stop accepting, finish in-flight requests (up to --drain-timeout-ms), exit 0.\n"
      "Under systemd (Type=notify) it sends READY=1, WATCHDOG=1 every WATCHDOG_USEC/2 while\n"
      "every shard's event loop turns (a stuck shard withholds it), and STOPPING=1 to\n"
      "$NOTIFY_SOCKET.\n"
      "\n"
      "options:\n"
      "  --config FILE              a JSON object with any of the options below as keys\n"
      "                             (dashes as underscores; lists as arrays); flags win.\n"
      "                             Its \"servers\" object puts several servers behind the\n"
      "                             gateway, each on /servers/NAME/mcp with its own policy\n"
      "                             (decided at --decide-path/servers/NAME/mcp too):\n"
      "                             {\"servers\": {\"NAME\": {\"policy\": FILE, \"upstream\": URL\n"
      "                             | \"upstream_command\": CMD, \"upstream_header\": [...]}}}\n"
      "                             (docs/gateway.md, \"Several servers\")\n",
      f);
  for (const option_spec& s : specs()) {
    std::string left = std::string("--") + s.name + (s.arg ? std::string(" ") + s.arg : "");
    if (left.size() >= 27) {
      std::fprintf(f, "  %s\n  %-27s%s\n", left.c_str(), "", s.help);  // too long: own line
    } else {
      std::fprintf(f, "  %-27s%s\n", left.c_str(), s.help);
    }
  }
}

const option_spec* find_spec(std::string_view name) {
  for (const option_spec& s : specs())
    if (name == s.name) return &s;
  return nullptr;
}

// The `servers` object of a config file: {"NAME": {"policy", "upstream" | "upstream_command",
// "upstream_header"}}. Relative policy paths are taken from the config file's directory.
bool load_servers(const std::string& path, simdjson::dom::element value, serve_options& o) {
  namespace dom = simdjson::dom;
  dom::object servers;
  if (value.get_object().get(servers)) {
    std::fprintf(stderr, "sluice serve: %s: /servers: expected an object of servers by name\n",
                 path.c_str());
    return false;
  }
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  for (auto [name_view, def] : servers) {
    const std::string name(name_view);
    const std::string where = path + ": /servers/" + name;
    if (!net::valid_server_name(name)) {
      std::fprintf(stderr, "sluice serve: %s: a server name is made of A-Z a-z 0-9 _ - only\n",
                   where.c_str());
      return false;
    }
    for (const server_option& seen : o.servers) {
      if (seen.name == name) {
        std::fprintf(stderr, "sluice serve: %s: a second server of this name\n", where.c_str());
        return false;
      }
    }
    server_option so;
    so.name = name;
    dom::object fields;
    if (def.get_object().get(fields)) {
      std::fprintf(stderr, "sluice serve: %s: expected an object\n", where.c_str());
      return false;
    }
    for (dom::key_value_pair field : fields) {
      // Named copies, not a structured binding: clang before 16 cannot capture a binding in
      // the lambda below.
      const std::string_view k = field.key;
      const dom::element v = field.value;
      const std::string at = where + "/" + std::string(k);
      std::string_view sv;
      auto text = [&](std::string& out) {
        if (v.get_string().get(sv) || sv.empty()) {
          std::fprintf(stderr, "sluice serve: %s: expected a non-empty string\n", at.c_str());
          return false;
        }
        out = sv;
        return true;
      };
      if (k == "policy") {
        if (!text(so.policy)) return false;
        if (std::filesystem::path(so.policy).is_relative()) so.policy = (dir / so.policy).string();
      } else if (k == "upstream") {
        if (!text(so.upstream)) return false;
      } else if (k == "upstream_command") {
        if (!text(so.upstream_command)) return false;
      } else if (k == "upstream_header") {
        dom::array items;
        std::vector<dom::element> list;
        if (!v.get_array().get(items)) {
          for (dom::element e : items)
            list.push_back(e);
        } else {
          list.push_back(v);
        }
        for (dom::element e : list) {
          const size_t colon = e.get_string().get(sv) ? std::string_view::npos : sv.find(':');
          if (colon == 0 || colon == std::string_view::npos ||
              sv.find_first_of("\r\n") != std::string_view::npos) {
            std::fprintf(stderr, "sluice serve: %s: expected 'NAME: VALUE' strings\n", at.c_str());
            return false;
          }
          so.upstream_header.emplace_back(sv);
        }
      } else {
        std::fprintf(stderr,
                     "sluice serve: %s: unknown setting (a server has policy, upstream or "
                     "upstream_command, upstream_header)\n",
                     at.c_str());
        return false;
      }
    }
    if (so.policy.empty()) {
      std::fprintf(stderr, "sluice serve: %s/policy: required\n", where.c_str());
      return false;
    }
    if (so.upstream.empty() == so.upstream_command.empty()) {
      std::fprintf(stderr, "sluice serve: %s: give upstream or upstream_command, exactly one\n",
                   where.c_str());
      return false;
    }
    o.servers.push_back(std::move(so));
  }
  return true;
}

bool load_config(const std::string& path, serve_options& o) {
  namespace dom = simdjson::dom;
  simdjson::padded_string text;
  if (simdjson::padded_string::load(path).get(text)) {
    std::fprintf(stderr, "sluice serve: %s: cannot read the file\n", path.c_str());
    return false;
  }
  dom::parser parser;
  dom::object obj;
  if (parser.parse(text).get_object().get(obj)) {
    std::fprintf(stderr, "sluice serve: %s: /: expected a JSON object\n", path.c_str());
    return false;
  }
  for (auto [key, value] : obj) {
    if (key == "servers") {
      if (!load_servers(path, value, o)) return false;
      continue;
    }
    std::string name(key);
    for (char& c : name)
      if (c == '_') c = '-';
    const option_spec* s = find_spec(name);
    const std::string where = path + ": /" + std::string(key);
    if (s == nullptr) {
      std::fprintf(stderr, "sluice serve: %s: unknown setting\n", where.c_str());
      return false;
    }
    auto apply = [&](dom::element v) {
      std::string_view sv;
      int64_t iv;
      bool bv;
      std::string num;
      if (!v.get_string().get(sv)) return s->set(o, sv);
      if (!v.get_int64().get(iv)) {
        num = std::to_string(iv);
        return s->set(o, num);
      }
      if (!v.get_bool().get(bv) && s->arg == nullptr) return bv ? s->set(o, "") : true;
      return false;
    };
    bool ok = true;
    dom::array items;
    if (!value.get_array().get(items)) {
      for (dom::element item : items)
        ok = ok && apply(item);
    } else {
      ok = apply(value);
    }
    if (!ok) {
      std::fprintf(stderr, "sluice serve: %s: invalid value (expected %s)\n", where.c_str(),
                   s->arg ? s->arg : "true or false");
      return false;
    }
  }
  return true;
}

// The endpoint of the server `name` in --config's servers.
std::string server_path(const std::string& name) {
  return "/servers/" + name + "/mcp";
}

// Requests are routed by their normalised path (net/request_path.h), so an endpoint path that
// is not in that form would match no request: refused at start-up, as are two endpoints on
// one path (the first in routing order would hide the other).
bool endpoint_paths_ok(const serve_options& o) {
  for (const auto& [flag, path] :
       {std::pair<const char*, const std::string&>{"mcp-path", o.mcp_path},
        {"decide-path", o.decide_path}}) {
    std::string norm;
    std::string_view why;
    if (!net::normalize_request_path(path, norm, why)) {
      std::fprintf(stderr, "sluice serve: --%s %s: %.*s\n", flag, path.c_str(),
                   static_cast<int>(why.size()), why.data());
      return false;
    }
    if (norm != path) {
      std::fprintf(stderr,
                   "sluice serve: --%s %s: requests are routed by their normalised path, which "
                   "for this one is %s: no request would reach it as written\n",
                   flag, path.c_str(), norm.c_str());
      return false;
    }
  }
  std::vector<std::string> paths = {o.mcp_path, o.decide_path};
  for (const server_option& so : o.servers)
    paths.push_back(server_path(so.name));
  std::sort(paths.begin(), paths.end());
  if (auto twice = std::adjacent_find(paths.begin(), paths.end()); twice != paths.end()) {
    std::fprintf(stderr,
                 "sluice serve: two endpoints on %s: --mcp-path, --decide-path and the "
                 "servers' /servers/NAME/mcp need paths of their own\n",
                 twice->c_str());
    return false;
  }
  return true;
}

// The port a scheme's origins leave out (RFC 6454 6.1: browsers omit the default port).
std::string_view default_port_suffix(std::string_view origin) {
  if (origin.starts_with("https://")) return ":443";
  if (origin.starts_with("http://")) return ":80";
  return {};
}

// An --allow-origin is compared with the Origin header byte for byte, and browsers send an
// origin as scheme://host[:port], lower case, with no path and without the scheme's default
// port: any other spelling would never match, so it is refused with the spelling that would.
bool origins_ok(const serve_options& o) {
  for (const std::string& origin : o.allow_origin) {
    const size_t sep = origin.find("://");
    bool ok = sep != std::string::npos && sep != 0 && sep + 3 < origin.size();
    for (size_t i = 0; ok && i < origin.size(); ++i) {
      const char c = origin[i];
      ok = c > ' ' && c < 0x7f && !(c >= 'A' && c <= 'Z') &&
           (i < sep + 3 || (c != '/' && c != '?' && c != '#'));
    }
    const std::string_view default_port = default_port_suffix(origin);
    if (ok && !default_port.empty() && origin.ends_with(default_port)) ok = false;
    if (ok) continue;
    std::string hint;  // the same origin as a browser would spell it, when there is one
    if (sep != std::string::npos && sep != 0) {
      std::string h = origin.substr(0, origin.find_first_of("/?#", sep + 3));
      for (char& c : h)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      const std::string_view port = default_port_suffix(h);
      if (!port.empty() && h.ends_with(port)) h.resize(h.size() - port.size());
      if (h.size() > sep + 3) hint = "; write " + h;
    }
    std::fprintf(stderr,
                 "sluice serve: --allow-origin %s: an origin is scheme://host[:port], in lower "
                 "case, without a path or the scheme's default port, as browsers send it%s\n",
                 origin.c_str(), hint.c_str());
    return false;
  }
  return true;
}

// An upstream header's name must be a token (RFC 9110 5.1), and one the upstream client
// forwards: Host, Content-Length and Connection are its own, hop-by-hop ones go no further.
bool upstream_header_ok(const std::string& line, const std::string& where) {
  const std::string_view name = std::string_view(line).substr(0, line.find(':'));
  if (!net::is_token(name)) {
    std::fprintf(stderr, "sluice serve: %s '%s': the name before ':' must be an HTTP token\n",
                 where.c_str(), line.c_str());
    return false;
  }
  if (!net::forwardable_header({name, {}})) {
    std::fprintf(stderr,
                 "sluice serve: %s '%s': Sluice writes Host, Content-Length and Connection "
                 "itself, and does not forward hop-by-hop headers (Keep-Alive, "
                 "Transfer-Encoding, TE, Trailer, Upgrade, Proxy-*)\n",
                 where.c_str(), line.c_str());
    return false;
  }
  return true;
}

bool upstream_headers_ok(const serve_options& o) {
  for (const std::string& line : o.upstream_header)
    if (!upstream_header_ok(line, "--upstream-header")) return false;
  for (const server_option& so : o.servers)
    for (const std::string& line : so.upstream_header)
      if (!upstream_header_ok(line, "servers/" + so.name + "/upstream_header")) return false;
  return true;
}

bool split_listen(const std::string& listen, std::string& host, uint16_t& port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  int64_t p = 0;
  if (!set_int(p, std::string_view(listen).substr(colon + 1), 0, 65535) || host.empty())
    return false;
  port = static_cast<uint16_t>(p);
  return true;
}

// The control plane (net/control/plane.h): reload, metrics, audit log, approvals, and with
// --admin the admin server. Returns 0, or the exit code after printing why.
int start_control(const serve_options& o, const std::shared_ptr<net::gateway_shared>& shared,
                  std::shared_ptr<control::plane>& out) {
  control::plane_options po;
  po.policy_path = o.policy;
  for (const server_option& so : o.servers)
    po.server_policies.emplace_back(so.name, so.policy);
  po.watch_policy = !o.no_watch_policy;
  po.audit_path = o.audit_log;
  po.audit_ring = static_cast<size_t>(o.audit_ring);
  po.approval_timeout = std::chrono::milliseconds(o.approval_timeout_ms);
  for (const std::string& t : o.approval_timeout) {
    const size_t eq = t.rfind('=');
    int64_t ms = 0;
    set_int(ms, std::string_view(t).substr(eq + 1), 1, 86'400'000);
    po.tool_approval_timeouts.emplace_back(t.substr(0, eq), std::chrono::milliseconds(ms));
  }
  if (!o.admin.empty()) {
    if (!split_listen(o.admin, po.admin_host, po.admin_port)) {
      std::fprintf(stderr, "sluice serve: --admin %s: expected HOST:PORT\n", o.admin.c_str());
      return 2;
    }
    if (o.admin_token_file.empty()) {
      std::fputs("sluice serve: --admin needs --admin-token-file FILE\n", stderr);
      return 2;
    }
    std::string error;
    if (!control::read_token_file(o.admin_token_file, po.admin_token, error)) {
      std::fprintf(stderr, "sluice serve: %s\n", error.c_str());
      return 1;
    }
  }
  // Without an admin server nobody could approve: require_approval is refused at once.
  po.approvals = !po.admin_host.empty();
  po.cluster = shared->settings.cluster_metrics;
  auto plane =
      std::make_shared<control::plane>(std::move(po), shared->policy, shared->server_policies);
  std::string error;
  if (!plane->start(error)) {
    std::fprintf(stderr, "sluice serve: %s\n", error.c_str());
    return 1;
  }
  shared->control = plane;
  out = std::move(plane);
  return 0;
}

}  // namespace

int run_serve(std::span<char* const> args) {
  serve_options o;
  // --config first, so that flags given beside it win.
  for (size_t i = 0; i < args.size(); ++i) {
    if (std::string_view(args[i]) == "--config") {
      if (i + 1 >= args.size()) {
        std::fputs("sluice serve: --config needs a value\n", stderr);
        return 2;
      }
      if (!load_config(args[i + 1], o)) return 2;
    }
  }
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view a(args[i]);
    if (a == "-h" || a == "--help") {
      print_usage(stdout);
      return 0;
    }
    if (a == "--config") {
      ++i;
      continue;
    }
    if (a.substr(0, 2) != "--") {
      std::fprintf(stderr, "sluice serve: unexpected argument '%s'\n\n", args[i]);
      print_usage(stderr);
      return 2;
    }
    std::string_view name = a.substr(2), value;
    bool inline_value = false;
    if (size_t eq = name.find('='); eq != std::string_view::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const option_spec* s = find_spec(name);
    if (s == nullptr) {
      std::fprintf(stderr, "sluice serve: unknown option --%.*s\n\n", static_cast<int>(name.size()),
                   name.data());
      print_usage(stderr);
      return 2;
    }
    if (s->arg != nullptr && !inline_value) {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "sluice serve: --%s needs %s\n", s->name, s->arg);
        return 2;
      }
      value = args[++i];
    }
    if (!s->set(o, value)) {
      std::fprintf(stderr, "sluice serve: --%s: invalid value '%.*s' (expected %s)\n", s->name,
                   static_cast<int>(value.size()), value.data(), s->arg ? s->arg : "no value");
      return 2;
    }
  }
  if (o.policy.empty() && o.servers.empty()) {
    std::fputs("sluice serve: --policy FILE is required (or servers in --config)\n\n", stderr);
    print_usage(stderr);
    return 2;
  }

  auto shared = std::make_shared<net::gateway_shared>();
  net::gateway_settings& gs = shared->settings;
  if (o.policy.empty()) {
    // Only servers: the top-level endpoints are not served; their decider gets deny-all.
    if (!o.upstream.empty() || !o.upstream_command.empty()) {
      std::fputs("sluice serve: --upstream and --upstream-command need --policy\n", stderr);
      return 2;
    }
    gs.serve_main = false;
    shared->policy = policy::compiled_policy::compile(policy::policy_def{});
  } else {
    policy::load_result loaded = policy::load_policy_file(o.policy);
    if (!loaded.errors.empty()) {
      for (const policy::load_error& e : loaded.errors)
        std::fprintf(stderr, "%s\n", e.to_string().c_str());
      return 1;
    }
    shared->policy = policy::compiled_policy::compile(*loaded.policy);
  }
  for (const server_option& so : o.servers) {
    // Each server's policy: loaded strictly, its counters kept apart under its name.
    policy::load_result loaded = policy::load_policy_file(so.policy);
    if (!loaded.errors.empty()) {
      for (const policy::load_error& e : loaded.errors)
        std::fprintf(stderr, "sluice serve: server %s: %s\n", so.name.c_str(),
                     e.to_string().c_str());
      return 1;
    }
    shared->server_policies.push_back(policy::compiled_policy::compile(*loaded.policy, so.name));
    net::server_settings ss;
    ss.name = so.name;
    ss.path = server_path(so.name);
    ss.upstream_headers = so.upstream_header;
    std::string error;
    if (!so.upstream.empty()) {
      if (!net::parse_upstream_url(so.upstream, ss.upstream, error)) {
        std::fprintf(stderr, "sluice serve: server %s: upstream %s: %s\n", so.name.c_str(),
                     so.upstream.c_str(), error.c_str());
        return 1;
      }
      ss.has_upstream = true;
    } else {
      if (!net::split_command(so.upstream_command, ss.upstream_stdio.argv, error)) {
        std::fprintf(stderr, "sluice serve: server %s: upstream_command: %s\n", so.name.c_str(),
                     error.c_str());
        return 1;
      }
      ss.upstream_stdio.response_timeout = std::chrono::milliseconds(o.response_timeout_ms);
      ss.upstream_stdio.idle_timeout = std::chrono::milliseconds(o.stdio_idle_timeout_ms);
    }
    gs.servers.push_back(std::move(ss));
  }

  if (!o.grants.empty()) {
    std::string error;
    gs.grants = net::grant_table::load(o.grants, error);
    if (!gs.grants) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
  }
  if (!o.session_key_file.empty()) {
    std::string error;
    std::array<uint8_t, 16> key{};
    if (!net::session_binding::key_from_file(o.session_key_file, key, error)) {
      std::fprintf(stderr, "sluice serve: --session-key-file %s\n", error.c_str());
      return 1;
    }
    gs.session_key = key;
  }
  if (!o.upstream.empty()) {
    std::string error;
    if (!net::parse_upstream_url(o.upstream, gs.upstream, error)) {
      std::fprintf(stderr, "sluice serve: --upstream %s: %s\n", o.upstream.c_str(), error.c_str());
      return 1;
    }
    gs.has_upstream = true;
  }
  if (!o.upstream_command.empty()) {
    std::string error;
    if (!o.upstream.empty()) error = "give --upstream or --upstream-command, not both";
    if (!error.empty() || !net::split_command(o.upstream_command, gs.upstream_stdio.argv, error)) {
      std::fprintf(stderr, "sluice serve: --upstream-command: %s\n", error.c_str());
      return 1;
    }
    gs.upstream_stdio.response_timeout = std::chrono::milliseconds(o.response_timeout_ms);
    gs.upstream_stdio.idle_timeout = std::chrono::milliseconds(o.stdio_idle_timeout_ms);
  }
  if (!endpoint_paths_ok(o) || !origins_ok(o) || !upstream_headers_ok(o)) return 1;
  gs.mcp_path = o.mcp_path;
  gs.decide_path = o.decide_path;
  gs.allowed_origins = o.allow_origin;
  gs.deny_as_error = o.deny_as_error;
  gs.upstream_headers = o.upstream_header;
  gs.upstream_opts.connect_timeout = std::chrono::milliseconds(o.connect_timeout_ms);
  gs.upstream_opts.response_timeout = std::chrono::milliseconds(o.response_timeout_ms);
  gs.upstream_opts.max_connections = static_cast<uint32_t>(o.upstream_connections);
  gs.upstream_opts.max_waiting = static_cast<uint32_t>(o.upstream_queue);
  gs.upstream_opts.max_streams = static_cast<uint32_t>(o.upstream_streams);
  gs.limiter.max_keys = static_cast<size_t>(o.max_limiter_keys);
  gs.shards = static_cast<unsigned>(o.shards);
  gs.merge_interval = std::chrono::milliseconds(o.merge_interval_ms);
  if (!o.cluster.empty()) {
    std::string error;
    if (!net::parse_redis_url(o.cluster, gs.cluster, error)) {
      std::fprintf(stderr, "sluice serve: --cluster %s: %s\n", o.cluster.c_str(), error.c_str());
      return 2;
    }
    gs.cluster.fail_open = o.cluster_fail_open;
    gs.cluster_metrics = std::make_shared<control::cluster_metrics>();
  } else if (o.cluster_fail_open) {
    std::fputs("sluice serve: --cluster-fail-open needs --cluster\n", stderr);
    return 2;
  }
  gs.reader.max_bytes = static_cast<size_t>(o.max_body_bytes);
  gs.reader.max_depth = static_cast<uint32_t>(o.max_json_depth);

  engine::runtime_config rc;
  if (!split_listen(o.listen, rc.address, rc.port)) {
    std::fprintf(stderr, "sluice serve: --listen %s: expected HOST:PORT\n", o.listen.c_str());
    return 2;
  }
  rc.shards = static_cast<unsigned>(o.shards);
  // Outgoing engine slots per shard, for each server whichever it may need: an HTTP pool at
  // both its caps, twice (a closed connection keeps its slot while it lingers), or a stdio
  // server's sessions (three socket pairs each) and its clock; at least the default.
  const uint64_t http_slots = 2 * (uint64_t(o.upstream_connections) + uint64_t(o.upstream_streams));
  const uint64_t stdio_slots = 3 * uint64_t(net::stdio_options{}.max_sessions) + 1;
  const uint64_t servers = std::max<size_t>(1, o.servers.size());
  rc.shard.max_outgoing = static_cast<uint32_t>(
      std::max<uint64_t>(rc.shard.max_outgoing, servers * std::max(http_slots, stdio_slots)));
  net::http_limits limits;
  limits.max_header_bytes = static_cast<size_t>(o.max_header_bytes);
  limits.max_body_bytes = static_cast<size_t>(o.max_body_bytes);
  limits.header_timeout = std::chrono::milliseconds(o.header_timeout_ms);
  limits.idle_timeout = std::chrono::milliseconds(o.idle_timeout_ms);
  limits.max_output_bytes = static_cast<size_t>(o.max_output_bytes);
  limits.send_timeout = std::chrono::milliseconds(o.send_timeout_ms);
  limits.max_connections = static_cast<uint32_t>(o.max_connections);

  engine::block_shutdown_signals();
  control::block_control_signals();  // before any thread starts: SIGUSR1 is the control thread's
  std::shared_ptr<control::plane> plane;
  if (const int failed = start_control(o, shared, plane); failed != 0) return failed;
  net::http_server server;
  engine::status st = server.start(rc, limits, net::make_gateway_factory(shared));
  if (!st.ok()) {
    std::fprintf(stderr, "sluice serve: %s\n", st.message().c_str());
    return 1;
  }
  if (plane) {
    plane->set_ready(true);
    if (plane->admin_port() != 0)
      std::printf("sluice admin on %s:%u\n", plane->options().admin_host.c_str(),
                  plane->admin_port());
  }
  std::string servers_note;
  if (!o.servers.empty()) {
    servers_note = ", servers";
    for (const server_option& so : o.servers)
      servers_note += " " + so.name;
  }
  std::printf("sluice listening on %s (%u shards, policy %s%s%s%s)\n",
              server.runtime().address_string().c_str(), server.runtime().shard_count(),
              o.policy.empty() ? "(none)" : o.policy.c_str(), servers_note.c_str(),
              gs.has_upstream               ? ", upstream "
              : !o.upstream_command.empty() ? ", upstream command "
              : o.servers.empty()           ? ", no upstream"
                                            : "",
              gs.has_upstream ? o.upstream.c_str() : o.upstream_command.c_str());
  std::fflush(stdout);
  // Under systemd (Type=notify): ready now; watchdog pings between signal waits.
  sd_notify("READY=1");
  const std::chrono::milliseconds watchdog = sd_watchdog_interval();
  int sig = 0;
  if (watchdog.count() == 0) {
    do {  // SIGHUP reloads the policy and waits again
      sig = control::reload_on_hangup(plane.get(), engine::wait_for_shutdown_signal());
    } while (sig == 0);
  } else {
    // A ping says every shard's loop turned since the last one, not only that this thread
    // lives: a stuck shard withholds it, and systemd restarts the service.
    engine::runtime& rt = server.runtime();
    (void)rt.stalled_shards();  // the baseline
    bool withheld = false;
    while ((sig = control::reload_on_hangup(plane.get(),
                                            engine::wait_for_shutdown_signal(watchdog))) == 0) {
      const std::vector<unsigned> stalled = rt.stalled_shards();
      if (stalled.empty()) {
        if (withheld)
          std::fprintf(stderr, "sluice: every shard turns again: watchdog pings resume\n");
        withheld = false;
        sd_notify("WATCHDOG=1");
      } else if (!withheld) {
        withheld = true;
        std::fprintf(stderr,
                     "sluice: shard %u (of %zu stuck) has not turned its loop for %lld ms: "
                     "watchdog pings withheld\n",
                     stalled.front(), stalled.size(), static_cast<long long>(watchdog.count()));
      }
    }
  }
  sd_notify("STOPPING=1");
  std::fprintf(stderr, "sluice: signal %d: draining (up to %lld ms)\n", sig,
               static_cast<long long>(o.drain_timeout_ms));
  if (plane) plane->refuse_waiting("the gateway is shutting down");
  server.stop(std::chrono::milliseconds(o.drain_timeout_ms));
  server.join();
  if (plane) plane->stop();  // the audit rings are drained into the file and flushed
  if (shared->limits) {
    shared->limits->stop();
    const net::limit_hub_stats& ls = shared->limits->stats();
    std::string per_shard;
    for (uint64_t n : shared->limits->reports_per_shard()) {
      if (!per_shard.empty()) per_shard += ',';
      per_shard += std::to_string(n);
    }
    std::fprintf(stderr,
                 "sluice: rate limits: %llu merges, reports per shard %s, %llu grants, "
                 "%llu claims, %llu closes\n",
                 static_cast<unsigned long long>(ls.merges.load()), per_shard.c_str(),
                 static_cast<unsigned long long>(ls.grants.load()),
                 static_cast<unsigned long long>(ls.claims.load()),
                 static_cast<unsigned long long>(ls.closes.load()));
  }
  if (const auto& cm = gs.cluster_metrics) {
    std::fprintf(stderr, "sluice: cluster: %llu round trips, %llu failed, %llu keys synced\n",
                 static_cast<unsigned long long>(cm->round_trips.load()),
                 static_cast<unsigned long long>(cm->failed_round_trips.load()),
                 static_cast<unsigned long long>(cm->keys_synced.load()));
  }
  return 0;
}

}  // namespace sluice::cli
