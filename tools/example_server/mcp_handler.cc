#include "tools/example_server/mcp_handler.h"

#include <simdjson.h>

#include <array>
#include <charconv>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tools/example_server/catalog.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0"
#endif

namespace sluice::example {

namespace {

namespace od = simdjson::ondemand;

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kEventStream = "text/event-stream";
constexpr std::array<std::string_view, 3> kProtocolVersions = {"2025-11-25", "2025-06-18",
                                                               "2025-03-26"};
constexpr std::string_view kDefaultProtocolVersion = "2025-06-18";
constexpr int64_t kMaxSteps = 1000;
constexpr int64_t kDefaultSteps = 3;

constexpr std::string_view kParseErrorBody =
    R"({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}})";
constexpr std::string_view kInvalidRequestBody =
    R"({"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}})";
constexpr std::string_view kSessionNotFoundBody =
    R"({"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}})";
constexpr std::string_view kMissingSessionBody =
    R"({"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: Mcp-Session-Id header is required"}})";
constexpr std::string_view kBadVersionBody =
    R"json({"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: Unsupported protocol version (supported versions: 2025-11-25, 2025-06-18, 2025-03-26)"}})json";
constexpr std::string_view kNoStreamBody =
    R"({"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Method Not Allowed: this server opens no server-initiated stream"}})";

bool supported_version(std::string_view v) {
  for (std::string_view s : kProtocolVersions) {
    if (s == v) return true;
  }
  return false;
}

std::string_view trim_right(std::string_view s) {
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

std::string_view path_of(std::string_view target) {
  size_t q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

void append_int(std::string& out, int64_t v) {
  char buf[24];
  char* end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  out.append(buf, size_t(end - buf));
}

// One JSON-RPC message as read from the body. Views point into the body or into the parser's
// string buffer: valid until the next parse on the same parser.
struct message {
  std::string_view id;  // raw JSON token (string, number or null); empty when absent
  std::string_view method;
  std::string_view name;              // params.name
  std::string_view uri;               // params.uri
  std::string_view protocol_version;  // params.protocolVersion
  std::string_view arguments;         // params.arguments, raw JSON; empty when absent
  std::string_view progress_token;    // params._meta.progressToken, raw JSON
  bool has_method = false;
  bool has_result = false;  // "result" or "error": a response from the client
  bool invalid = false;     // JSON, but not a valid JSON-RPC message
};

// Reads an id-like scalar (string, number or null) and validates it; the raw token is kept so
// it is echoed byte for byte. Returns false (no error) when the value has another type.
simdjson::error_code read_id_token(od::value& v, std::string_view& out, bool& ok) {
  od::json_type t;
  if (auto e = v.type().get(t)) return e;
  ok = false;
  std::string_view token = trim_right(v.raw_json_token());
  switch (t) {
    case od::json_type::string: {
      std::string_view s;
      if (auto e = v.get_string().get(s)) return e;  // bad escapes
      break;
    }
    case od::json_type::number: {
      od::number n;
      if (auto e = v.get_number().get(n)) return e;
      break;
    }
    case od::json_type::null: {
      bool is_null = false;
      if (auto e = v.is_null().get(is_null)) return e;
      if (!is_null) return simdjson::N_ATOM_ERROR;
      break;
    }
    default:
      return simdjson::SUCCESS;
  }
  out = token;
  ok = true;
  return simdjson::SUCCESS;
}

simdjson::error_code read_string(od::value& v, std::string_view& out, bool& ok) {
  od::json_type t;
  if (auto e = v.type().get(t)) return e;
  ok = t == od::json_type::string;
  if (!ok) return simdjson::SUCCESS;
  return v.get_string().get(out);
}

simdjson::error_code read_params(od::value& v, message& m) {
  od::object params;
  if (auto e = v.get_object().get(params)) return e;
  for (auto fr : params) {
    od::field f;
    if (auto e = std::move(fr).get(f)) return e;
    std::string_view key;
    if (auto e = f.unescaped_key().get(key)) return e;
    od::value& pv = f.value();
    bool ok = true;
    if (key == "name") {
      if (auto e = read_string(pv, m.name, ok)) return e;
    } else if (key == "uri") {
      if (auto e = read_string(pv, m.uri, ok)) return e;
    } else if (key == "protocolVersion") {
      if (auto e = read_string(pv, m.protocol_version, ok)) return e;
    } else if (key == "arguments") {
      od::json_type t;
      if (auto e = pv.type().get(t)) return e;
      std::string_view raw;
      if (t == od::json_type::object) {
        od::object a;
        if (auto e = pv.get_object().get(a)) return e;
        if (auto e = a.raw_json().get(raw)) return e;
      } else if (t == od::json_type::array) {
        od::array a;
        if (auto e = pv.get_array().get(a)) return e;
        if (auto e = a.raw_json().get(raw)) return e;
      } else {
        if (auto e = read_id_token(pv, raw, ok)) return e;  // a scalar: keep it as sent
        if (!ok) raw = trim_right(pv.raw_json_token());     // true / false
      }
      m.arguments = trim_right(raw);
      ok = true;
    } else if (key == "_meta") {
      od::json_type t;
      if (auto e = pv.type().get(t)) return e;
      if (t != od::json_type::object) continue;
      od::object meta;
      if (auto e = pv.get_object().get(meta)) return e;
      for (auto mr : meta) {
        od::field mf;
        if (auto e = std::move(mr).get(mf)) return e;
        std::string_view mkey;
        if (auto e = mf.unescaped_key().get(mkey)) return e;
        if (mkey != "progressToken") continue;
        if (auto e = read_id_token(mf.value(), m.progress_token, ok)) return e;
        if (!ok) m.progress_token = {};
        ok = true;
      }
    }
    if (!ok) m.invalid = true;
  }
  return simdjson::SUCCESS;
}

simdjson::error_code read_message(od::object& obj, message& m) {
  for (auto fr : obj) {
    od::field f;
    if (auto e = std::move(fr).get(f)) return e;
    std::string_view key;
    if (auto e = f.unescaped_key().get(key)) return e;
    od::value& v = f.value();
    bool ok = true;
    if (key == "jsonrpc") {
      std::string_view s;
      if (auto e = read_string(v, s, ok)) return e;
      if (s != "2.0") ok = false;
    } else if (key == "id") {
      if (auto e = read_id_token(v, m.id, ok)) return e;
    } else if (key == "method") {
      if (auto e = read_string(v, m.method, ok)) return e;
      m.has_method = ok;
    } else if (key == "params") {
      od::json_type t;
      if (auto e = v.type().get(t)) return e;
      if (t == od::json_type::object) {
        if (auto e = read_params(v, m)) return e;
      }
    } else if (key == "result" || key == "error") {
      m.has_result = true;
    }
    if (!ok) m.invalid = true;
  }
  if (!m.has_method && !m.has_result) m.invalid = true;
  return simdjson::SUCCESS;
}

class mcp_handler final : public net::request_handler {
 public:
  mcp_handler(engine::shard& shard, server_state& state) : shard_(shard), state_(state) {
    out_.reserve(16 * 1024);
    messages_.reserve(16);
  }

  void on_request(const net::http_request& req, net::response_slot slot) override {
    std::string_view path = path_of(req.target);
    if (path == "/mcp") {
      if (req.method == "POST") {
        handle_post(req, slot);
      } else if (req.method == "DELETE") {
        handle_delete(req, slot);
      } else {
        static constexpr net::http_header kAllow[] = {{"Allow", "POST, DELETE"}};
        slot.respond(405, kJson, kNoStreamBody, kAllow);
      }
    } else if (path == "/_calls") {
      handle_calls(req, slot);
    } else if (path == "/healthz") {
      slot.respond(200, "text/plain", "ok\n");
    } else {
      slot.respond(404, "text/plain", "not found\n");
    }
  }

 private:
  enum class parse_result : uint8_t { ok, parse_error, invalid };

  // ---- reading ----

  // Reads the whole body into messages_ before anything is answered, so a body that turns out
  // malformed half-way has no effect (no call is recorded).
  parse_result parse(std::string_view body) {
    messages_.clear();
    batch_ = false;
    od::document doc;
    if (parser_.iterate(body.data(), body.size(), body.size() + simdjson::SIMDJSON_PADDING)
            .get(doc) != simdjson::SUCCESS)
      return parse_result::parse_error;
    od::json_type t;
    if (doc.type().get(t) != simdjson::SUCCESS) return parse_result::parse_error;
    if (t == od::json_type::object) {
      od::object obj;
      if (doc.get_object().get(obj) != simdjson::SUCCESS) return parse_result::parse_error;
      message& m = messages_.emplace_back();
      if (read_message(obj, m) != simdjson::SUCCESS) return parse_result::parse_error;
    } else if (t == od::json_type::array) {
      batch_ = true;
      od::array arr;
      if (doc.get_array().get(arr) != simdjson::SUCCESS) return parse_result::parse_error;
      for (auto er : arr) {
        od::value el;
        if (std::move(er).get(el) != simdjson::SUCCESS) return parse_result::parse_error;
        message& m = messages_.emplace_back();
        od::json_type et;
        if (el.type().get(et) != simdjson::SUCCESS) return parse_result::parse_error;
        if (et != od::json_type::object) {
          m.invalid = true;
          continue;  // the element is skipped by the array iteration
        }
        od::object obj;
        if (el.get_object().get(obj) != simdjson::SUCCESS) return parse_result::parse_error;
        if (read_message(obj, m) != simdjson::SUCCESS) return parse_result::parse_error;
      }
      if (messages_.empty()) return parse_result::invalid;  // "[]"
    } else {
      // A bare scalar: valid JSON is an invalid request, anything else a parse error.
      simdjson::error_code e = simdjson::SUCCESS;
      if (t == od::json_type::string) {
        std::string_view s;
        e = doc.get_string().get(s);
      } else if (t == od::json_type::number) {
        od::number n;
        e = doc.get_number().get(n);
      } else if (t == od::json_type::boolean) {
        bool b;
        e = doc.get_bool().get(b);
      } else {
        bool is_null = false;
        e = doc.is_null().get(is_null);
        if (!is_null) e = simdjson::N_ATOM_ERROR;
      }
      if (e != simdjson::SUCCESS) return parse_result::parse_error;
      const char* rest = nullptr;
      if (doc.current_location().get(rest) != simdjson::OUT_OF_BOUNDS)
        return parse_result::parse_error;
      return parse_result::invalid;
    }
    const char* rest = nullptr;
    if (doc.current_location().get(rest) != simdjson::OUT_OF_BOUNDS)
      return parse_result::parse_error;  // trailing bytes
    return parse_result::ok;
  }

  // Parses a tools/call's raw arguments with the second parser. The arguments are a slice of
  // the body, so the body's padding lies past their end as well.
  bool parse_arguments(std::string_view args, od::document& doc) {
    if (args.empty() || args.front() != '{') return false;
    size_t capacity = size_t(body_end_ + simdjson::SIMDJSON_PADDING - args.data());
    return args_parser_.iterate(args.data(), args.size(), capacity).get(doc) == simdjson::SUCCESS;
  }

  std::string_view argument_string(std::string_view args, std::string_view key) {
    od::document doc;
    if (!parse_arguments(args, doc)) return {};
    std::string_view s;
    if (doc.find_field_unordered(key).get_string().get(s) != simdjson::SUCCESS) return {};
    return s;
  }

  int64_t long_job_steps(std::string_view args) {
    od::document doc;
    if (!parse_arguments(args, doc)) return kDefaultSteps;
    int64_t n;
    if (doc.find_field_unordered("steps").get_int64().get(n) != simdjson::SUCCESS)
      return kDefaultSteps;
    return n < 0 ? 0 : n > kMaxSteps ? kMaxSteps : n;
  }

  // ---- writing ----

  void open_answer(std::string_view id) {
    if (answers_++ != 0) out_ += ',';
    out_ += R"({"jsonrpc":"2.0","id":)";
    out_ += id.empty() ? std::string_view("null") : id;
  }

  void append_error(std::string_view id, int code, std::string_view text,
                    std::string_view detail = {}) {
    open_answer(id);
    out_ += R"(,"error":{"code":)";
    append_int(out_, code);
    out_ += R"(,"message":")";
    append_json_escaped(out_, text);
    append_json_escaped(out_, detail);
    out_ += "\"}}";
  }

  void append_result(std::string_view id, std::string_view result) {
    open_answer(id);
    out_ += R"(,"result":)";
    out_ += result;
    out_ += '}';
  }

  // The `result` of a tools/call: "ran <tool> with <arguments>" (echo: the text).
  void append_call_result(const message& m, tool_id tool) {
    out_ += R"({"content":[{"type":"text","text":")";
    if (tool == tool_id::echo) {
      append_json_escaped(out_, argument_string(m.arguments, "text"));
    } else {
      out_ += "ran ";
      append_json_escaped(out_, m.name);
      out_ += " with ";
      append_json_escaped(out_, m.arguments.empty() ? std::string_view("{}") : m.arguments);
    }
    out_ += R"("}],"isError":false})";
  }

  void answer_initialize(const message& m) {
    if (!new_session_) {
      state_.sessions.make(session_id_);
      new_session_ = true;
    }
    std::string_view version =
        supported_version(m.protocol_version) ? m.protocol_version : kDefaultProtocolVersion;
    open_answer(m.id);
    out_ += R"(,"result":{"protocolVersion":")";
    out_ += version;
    out_ +=
        R"(","capabilities":{"tools":{"listChanged":false},)"
        R"("resources":{"subscribe":false,"listChanged":false},"prompts":{"listChanged":false}},)"
        R"("serverInfo":{"name":")";
    out_ += kServerName;
    out_ +=
        R"(","version":")" SLUICE_VERSION R"("},)"
        R"("instructions":"An example MCP server for trying Sluice: its tools only say what they were asked."}})";
  }

  void answer_tools_call(const message& m) {
    tool_id tool = find_tool(m.name);
    if (tool == tool_id::unknown) {
      append_error(m.id, -32602, "Unknown tool: ", m.name);
      return;
    }
    std::string_view args = m.arguments.empty() ? std::string_view("{}") : m.arguments;
    state_.calls.record(shard_.id(), shard_.now_ns(), m.name, args);
    open_answer(m.id);
    out_ += R"(,"result":)";
    append_call_result(m, tool);
    out_ += '}';
  }

  void answer_resources_read(const message& m) {
    const resource* r = find_resource(m.uri);
    if (r == nullptr) {
      append_error(m.id, -32002, "Resource not found: ", m.uri);
      return;
    }
    open_answer(m.id);
    out_ += R"(,"result":{"contents":[{"uri":")";
    append_json_escaped(out_, r->uri);
    out_ += R"(","mimeType":")";
    out_ += r->mime_type;
    out_ += R"(","text":")";
    append_json_escaped(out_, r->text);
    out_ += "\"}]}}";
  }

  void answer_prompts_get(const message& m) {
    const prompt* p = find_prompt(m.name);
    if (p == nullptr) {
      append_error(m.id, -32602, "Unknown prompt: ", m.name);
      return;
    }
    open_answer(m.id);
    out_ += R"(,"result":{"description":")";
    append_json_escaped(out_, p->description);
    out_ += R"(","messages":[{"role":"user","content":{"type":"text","text":")";
    append_json_escaped(out_, p->description);
    out_ += " Arguments: ";
    append_json_escaped(out_, m.arguments.empty() ? std::string_view("{}") : m.arguments);
    out_ += "\"}}]}}";
  }

  // Appends the answer to one message; nothing for notifications and client responses.
  void answer(const message& m) {
    if (m.invalid) {
      append_error(m.id, -32600, "Invalid Request");
      return;
    }
    if (!m.has_method) return;  // a response to a server request: accepted
    if (m.id.empty()) return;   // a notification (any method, known or not)
    std::string_view method = m.method;
    if (method == "tools/call") {
      answer_tools_call(m);
    } else if (method == "tools/list") {
      append_result(m.id, kToolsListResult);
    } else if (method == "initialize") {
      answer_initialize(m);
    } else if (method == "ping") {
      append_result(m.id, "{}");
    } else if (method == "resources/list") {
      append_result(m.id, kResourcesListResult);
    } else if (method == "resources/templates/list") {
      append_result(m.id, R"({"resourceTemplates":[]})");
    } else if (method == "resources/read") {
      answer_resources_read(m);
    } else if (method == "prompts/list") {
      append_result(m.id, kPromptsListResult);
    } else if (method == "prompts/get") {
      answer_prompts_get(m);
    } else {
      append_error(m.id, -32601, "Method not found: ", method);
    }
  }

  // ---- HTTP ----

  void handle_post(const net::http_request& req, net::response_slot& slot) {
    if (!req.mcp_session_id.empty() && !state_.sessions.valid(req.mcp_session_id)) {
      slot.respond(404, kJson, kSessionNotFoundBody);
      return;
    }
    body_end_ = req.body.data() + req.body.size();
    switch (parse(req.body)) {
      case parse_result::parse_error:
        slot.respond(400, kJson, kParseErrorBody);
        return;
      case parse_result::invalid:
        slot.respond(400, kJson, kInvalidRequestBody);
        return;
      case parse_result::ok:
        break;
    }
    // An unsupported MCP-Protocol-Version is refused, except on initialize (the version is
    // not negotiated yet).
    if (!req.mcp_protocol_version.empty() && !supported_version(req.mcp_protocol_version)) {
      for (const message& m : messages_) {
        if (m.method != "initialize") {
          slot.respond(400, kJson, kBadVersionBody);
          return;
        }
      }
    }

    bool wants_stream =
        state_.options.sse || req.accept.find(kEventStream) != std::string_view::npos;
    if (!batch_ && wants_stream) {
      const message& m = messages_.front();
      if (!m.invalid && !m.id.empty() && m.method == "tools/call" &&
          find_tool(m.name) == tool_id::long_job) {
        stream_long_job(m, slot);
        return;
      }
    }

    out_.clear();
    answers_ = 0;
    new_session_ = false;
    if (batch_) out_ += '[';
    for (const message& m : messages_)
      answer(m);
    if (batch_) out_ += ']';

    net::http_header headers[2];
    size_t nh = 0;
    if (new_session_) headers[nh++] = {"Mcp-Session-Id", {session_id_, sizeof session_id_}};
    if (answers_ == 0) {
      slot.respond(202, {}, {}, {headers, nh});
      return;
    }
    int status = !batch_ && messages_.front().invalid ? 400 : 200;
    if (state_.options.sse && status == 200) {
      headers[nh++] = {"Cache-Control", "no-cache"};
      slot.begin(200, kEventStream, {headers, nh});
      write_event(slot, out_);
      slot.finish();
      return;
    }
    slot.respond(status, kJson, out_, {headers, nh});
  }

  // One SSE event per write: "event: message\ndata: <json>\n\n".
  void write_event(net::response_slot& slot, std::string_view json) {
    event_.clear();
    event_ += "event: message\ndata: ";
    event_ += json;
    event_ += "\n\n";
    slot.write(event_);
  }

  // long_job as a stream: one notifications/progress per step (when the request carried a
  // progressToken), then the result. Every event is written at once; nothing sleeps.
  void stream_long_job(const message& m, net::response_slot& slot) {
    std::string_view args = m.arguments.empty() ? std::string_view("{}") : m.arguments;
    state_.calls.record(shard_.id(), shard_.now_ns(), m.name, args);
    static constexpr net::http_header kHeaders[] = {{"Cache-Control", "no-cache"}};
    slot.begin(200, kEventStream, kHeaders);
    if (!m.progress_token.empty()) {
      int64_t steps = long_job_steps(m.arguments);
      for (int64_t i = 1; i <= steps; ++i) {
        out_.clear();
        out_ += R"({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":)";
        out_ += m.progress_token;
        out_ += R"(,"progress":)";
        append_int(out_, i);
        out_ += R"(,"total":)";
        append_int(out_, steps);
        out_ += R"(,"message":"step )";
        append_int(out_, i);
        out_ += " of ";
        append_int(out_, steps);
        out_ += "\"}}";
        write_event(slot, out_);
      }
    }
    out_.clear();
    answers_ = 0;
    open_answer(m.id);
    out_ += R"(,"result":)";
    append_call_result(m, tool_id::long_job);
    out_ += '}';
    write_event(slot, out_);
    slot.finish();
  }

  void handle_delete(const net::http_request& req, net::response_slot& slot) {
    if (req.mcp_session_id.empty()) {
      slot.respond(400, kJson, kMissingSessionBody);
    } else if (state_.sessions.end(req.mcp_session_id)) {
      slot.respond(200, {}, {});
    } else {
      slot.respond(404, kJson, kSessionNotFoundBody);
    }
  }

  void handle_calls(const net::http_request& req, net::response_slot& slot) {
    out_.clear();
    if (req.method == "GET") {
      state_.calls.write_json(out_);
      slot.respond(200, kJson, out_);
    } else if (req.method == "DELETE") {
      size_t n = state_.calls.clear();
      out_ += R"({"cleared":)";
      append_int(out_, int64_t(n));
      out_ += '}';
      slot.respond(200, kJson, out_);
    } else {
      static constexpr net::http_header kAllow[] = {{"Allow", "GET, DELETE"}};
      slot.respond(405, "text/plain", "method not allowed\n", kAllow);
    }
  }

  engine::shard& shard_;
  server_state& state_;
  od::parser parser_;
  od::parser args_parser_;
  std::vector<message> messages_;  // this request's messages; capacity reused
  bool batch_ = false;
  const char* body_end_ = nullptr;
  std::string out_;    // the answer being built; capacity reused
  std::string event_;  // one SSE event; capacity reused
  size_t answers_ = 0;
  bool new_session_ = false;
  char session_id_[session_registry::kIdSize] = {};
};

}  // namespace

std::unique_ptr<net::request_handler> make_mcp_handler(engine::shard& shard, server_state& state) {
  return std::make_unique<mcp_handler>(shard, state);
}

}  // namespace sluice::example
