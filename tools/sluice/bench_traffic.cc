// Building what `sluice bench` sends. Start-up code: allocation and blocking I/O are fine here.

#include "tools/sluice/bench_traffic.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <simdjson.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "net/http1_response_parser.h"
#include "policy/json_text.h"

namespace sluice::bench {

namespace {

bool fail(std::string& err, std::string msg) {
  err = std::move(msg);
  return false;
}

}  // namespace

bool parse_target(std::string_view url, target& out, std::string& err) {
  out = {};
  out.url = std::string(url);
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return fail(err, "target '" + out.url + "': expected http://HOST:PORT/PATH");
  }
  std::string_view rest = url.substr(kScheme.size());
  const size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  out.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  out.host_header = std::string(hostport);
  std::string_view host = hostport;
  std::string_view port = "80";
  if (!hostport.empty() && hostport.front() == '[') {
    const size_t close = hostport.find(']');
    if (close == std::string_view::npos) return fail(err, "target '" + out.url + "': bad [IPv6]");
    host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':') return fail(err, "target '" + out.url + "': bad port");
      port = hostport.substr(close + 2);
    }
  } else if (const size_t colon = hostport.rfind(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  if (host.empty()) return fail(err, "target '" + out.url + "': no host");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string h(host), p(port);
  if (int rc = getaddrinfo(h.c_str(), p.c_str(), &hints, &res); rc != 0 || res == nullptr) {
    return fail(err, "target '" + out.url + "': " + gai_strerror(rc));
  }
  std::memcpy(&out.addr, res->ai_addr, res->ai_addrlen);
  out.addr_len = res->ai_addrlen;
  freeaddrinfo(res);
  return true;
}

std::vector<tool_spec> default_mix() {
  return {
      {"read_file",
       60,
       {{"path",
         {R"("/data/1/file.parquet")", R"("/data/2/events.csv")", R"("/workspace/README.md")",
          R"("/workspace/src/main.cc")", R"("/var/log/app.log")", R"("/data/3/q3.csv")"}},
        {"region", {R"("eu-west-1")", R"("us-east-1")", R"("ap-south-1")"}},
        {"limit", {"10", "100", "1000"}}}},
      {"list_buckets", 20, {{"region", {R"("eu-west-1")", R"("us-east-1")"}}}},
      {"write_file",
       10,
       {{"path", {R"("/tmp/out.txt")", R"("/workspace/notes.md")"}},
        {"content", {R"("hello")", R"("a somewhat longer line of text to write")"}}}},
      {"run_query",
       10,
       {{"sql",
         {R"("SELECT count(*) FROM events")",
          R"("SELECT name, region FROM buckets WHERE region = 'eu-west-1'")"}}}},
  };
}

bool load_mix(const std::string& path, std::vector<tool_spec>& out, std::string& err) {
  namespace dom = simdjson::dom;
  dom::parser parser;
  dom::element root;
  if (auto e = parser.load(path).get(root); e != simdjson::SUCCESS) {
    return fail(err, path + ": " + simdjson::error_message(e));
  }
  dom::array tools;
  if (root["tools"].get_array().get(tools) != simdjson::SUCCESS) {
    return fail(err, path + ": /tools: expected an array of {name, weight, arguments}");
  }
  size_t i = 0;
  for (dom::element t : tools) {
    const std::string at = path + ": /tools/" + std::to_string(i++);
    tool_spec spec;
    std::string_view name;
    if (t["name"].get_string().get(name) != simdjson::SUCCESS || name.empty()) {
      return fail(err, at + "/name: expected a non-empty string");
    }
    spec.name = std::string(name);
    if (auto w = t["weight"]; w.error() == simdjson::SUCCESS) {
      double d = 0;
      if (w.get_double().get(d) != simdjson::SUCCESS || !(d >= 0)) {
        return fail(err, at + "/weight: expected a number >= 0");
      }
      spec.weight = d;
    }
    if (auto a = t["arguments"]; a.error() == simdjson::SUCCESS) {
      dom::object args;
      if (a.get_object().get(args) != simdjson::SUCCESS) {
        return fail(err, at + "/arguments: expected an object of arrays of values");
      }
      for (auto field : args) {
        std::vector<std::string> values;
        dom::array arr;
        if (field.value.get_array().get(arr) == simdjson::SUCCESS) {
          for (dom::element v : arr)
            values.push_back(simdjson::minify(v));
        } else {
          values.push_back(simdjson::minify(field.value));  // one fixed value
        }
        if (values.empty()) {
          return fail(err, at + "/arguments/" + std::string(field.key) + ": empty list");
        }
        spec.arguments.emplace_back(std::string(field.key), std::move(values));
      }
    }
    out.push_back(std::move(spec));
  }
  if (out.empty()) return fail(err, path + ": /tools: empty");
  return true;
}

bool load_replay(const std::string& path, std::vector<std::string>& out, std::string& err) {
  std::ifstream in(path);
  if (!in) return fail(err, path + ": cannot open: " + std::strerror(errno));
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
      line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    out.push_back(line);
  }
  if (out.empty()) return fail(err, path + ": no messages");
  return true;
}

namespace {

std::string json_string(std::string_view s) {
  std::string o;
  policy::append_json_string(o, s);
  return o;
}

void append_request(std::string& out, const target& t, const traffic& tr, std::string_view body,
                    std::string_view token, std::string_view session) {
  out += "POST ";
  out += t.path;
  out += " HTTP/1.1\r\nHost: ";
  out += t.host_header;
  out += "\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n";
  if (!token.empty()) {
    out += "Authorization: Bearer ";
    out += token;
    out += "\r\n";
  }
  if (!session.empty()) {
    out += "Mcp-Session-Id: ";
    out += session;
    out += "\r\nMCP-Protocol-Version: ";
    out += tr.protocol_version;
    out += "\r\n";
  }
  for (const std::string& h : tr.headers) {
    out += h;
    out += "\r\n";
  }
  out += "Content-Length: ";
  out += std::to_string(body.size());
  out += "\r\n\r\n";
  out += body;
}

// A blocking exchange for the handshake: one request, one response (any framing).
struct blocking_sink final : net::response_sink {
  int status = 0;
  std::string session;
  bool on_response_head(const net::http_response& h) override {
    status = h.status;
    session = std::string(h.mcp_session_id);
    return true;
  }
  bool on_response_body(std::string_view) override { return true; }
};

bool exchange(int fd, const std::string& req, blocking_sink& sink, std::string& err) {
  size_t off = 0;
  while (off < req.size()) {
    ssize_t n = ::write(fd, req.data() + off, req.size() - off);
    if (n <= 0) return fail(err, std::string("handshake write: ") + std::strerror(errno));
    off += size_t(n);
  }
  net::http1_response_parser parser;
  parser.reset();
  char buf[16384 + 64];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return fail(err, "handshake: no answer within 5 s");
    ssize_t n = ::read(fd, buf, 16384);
    auto st = n > 0 ? parser.feed(std::span<const char>(buf, size_t(n)), sink) : parser.feed_eof();
    using ps = net::http1_response_parser::parse_status;
    if (st == ps::done) return true;
    if (st != ps::need_more) {
      return fail(err, "handshake: " + std::string(parser.error_detail()));
    }
  }
}

}  // namespace

bool initialize_sessions(const target& t, uint32_t n, traffic& tr, std::string& err) {
  int fd = -1;
  auto reconnect = [&]() {
    if (fd >= 0) ::close(fd);
    fd = ::socket(t.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    return fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), t.addr_len) == 0;
  };
  if (!reconnect()) return fail(err, "handshake: connect to " + t.url + ": " + strerror(errno));
  traffic plain = tr;
  plain.headers.clear();
  for (uint32_t i = 0; i < n; ++i) {
    const std::string token = tr.tokens.empty() ? "" : tr.tokens[i % tr.tokens.size()];
    std::string body = R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{)"
                       R"("protocolVersion":)" +
                       json_string(tr.protocol_version) +
                       R"(,"capabilities":{},"clientInfo":{"name":"sluice-bench","version":"1"}}})";
    std::string req;
    append_request(req, t, plain, body, token, {});
    blocking_sink sink;
    if (!exchange(fd, req, sink, err)) return false;
    if (sink.status != 200 || sink.session.empty()) {
      ::close(fd);
      return fail(err, "handshake: initialize answered " + std::to_string(sink.status) +
                           (sink.session.empty() ? " without Mcp-Session-Id" : ""));
    }
    req.clear();
    append_request(req, t, tr, R"({"jsonrpc":"2.0","method":"notifications/initialized"})", token,
                   sink.session);
    blocking_sink ack;
    if (!exchange(fd, req, ack, err)) return false;
    tr.session_ids.push_back(sink.session);
    if (ack.status >= 300 && !reconnect()) return fail(err, "handshake: reconnect failed");
  }
  ::close(fd);
  return true;
}

request_pool build_pool(const target& t, const traffic& tr) {
  request_pool pool;
  const size_t n = tr.replay.empty() ? std::max<size_t>(tr.pool_size, 1) : tr.replay.size();
  std::mt19937_64 rng(tr.seed);
  std::vector<double> weights;
  for (const tool_spec& s : tr.tools)
    weights.push_back(s.weight);
  std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
  std::string body;
  for (size_t i = 0; i < n; ++i) {
    pool.offsets.push_back(uint32_t(pool.bytes.size()));
    std::string_view token;
    std::string_view session;
    if (!tr.session_ids.empty()) {
      const size_t s = i % tr.session_ids.size();
      session = tr.session_ids[s];
      if (!tr.tokens.empty()) token = tr.tokens[s % tr.tokens.size()];
    } else if (!tr.tokens.empty()) {
      token = tr.tokens[i % tr.tokens.size()];
    }
    if (!tr.replay.empty()) {
      append_request(pool.bytes, t, tr, tr.replay[i], token, session);
      continue;
    }
    const tool_spec& spec = tr.tools[pick(rng)];
    body = R"({"jsonrpc":"2.0","id":)" + std::to_string(i + 1) +
           R"(,"method":"tools/call","params":{"name":)" + json_string(spec.name) +
           R"(,"arguments":{)";
    bool first = true;
    for (const auto& [key, values] : spec.arguments) {
      if (!first) body += ',';
      first = false;
      body += json_string(key);
      body += ':';
      body += values[std::uniform_int_distribution<size_t>(0, values.size() - 1)(rng)];
    }
    body += "}}}";
    append_request(pool.bytes, t, tr, body, token, session);
  }
  pool.offsets.push_back(uint32_t(pool.bytes.size()));
  return pool;
}

}  // namespace sluice::bench
