#include "policy/jsonrpc.h"

#include <simdjson.h>

#include <algorithm>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace sluice::policy {

namespace od = simdjson::ondemand;

std::string_view to_string(rpc_error e) {
  switch (e) {
    case rpc_error::none:
      return "none";
    case rpc_error::parse:
      return "parse error";
    case rpc_error::invalid_request:
      return "invalid request";
    case rpc_error::invalid_params:
      return "invalid params";
  }
  return "unknown";
}

namespace {

std::string_view trim_right(std::string_view s) {
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

method_id classify(std::string_view m) {
  if (m == "tools/call") return method_id::tools_call;
  if (m == "tools/list") return method_id::tools_list;
  if (m == "resources/read") return method_id::resources_read;
  if (m == "prompts/get") return method_id::prompts_get;
  if (m == "initialize") return method_id::initialize;
  return method_id::other;
}

// Writes the decimal form of `i` into `buf` (at least 20 bytes). Does not allocate.
std::string_view index_key(size_t i, char* buf) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + i % 10);
    i /= 10;
  } while (i != 0);
  for (size_t k = 0; k < n; ++k)
    buf[k] = tmp[n - 1 - k];
  return {buf, n};
}

// Validates a number token and reads it as a double. simdjson 3.0.1's get_number() rejects
// integers beyond 64 bits, which are valid JSON (a big integer id, a big value in a result);
// get_double() reads them and rejects the same malformed tokens, so it is the fallback.
simdjson::error_code read_number(od::value& v, double& out) {
  od::number n;
  const simdjson::error_code e = v.get_number().get(n);
  if (e == simdjson::SUCCESS) {
    out = n.as_double();
    return e;
  }
  if (e != simdjson::NUMBER_ERROR || v.get_double().get(out) != simdjson::SUCCESS) return e;
  return simdjson::SUCCESS;
}

// The first '"' or '\\' at or after `p`: the end of a string's raw bytes, or its first
// escape. The input has SIMDJSON_PADDING readable bytes past `end`, so whole 32-byte loads
// are safe while p < end. Measured: libc memchr calls cost ~10% of a decision on ~20-byte
// keys and values (bench/policy/decide_bench.cc); this inline scan removes the calls.
inline const char* quote_or_backslash(const char* p, const char* end) {
#if defined(__AVX2__)
  const __m256i quote = _mm256_set1_epi8('"');
  const __m256i slash = _mm256_set1_epi8('\\');
  for (; p < end; p += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const auto mask = static_cast<uint32_t>(_mm256_movemask_epi8(
        _mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, slash))));
    if (mask != 0) {
      const char* hit = p + __builtin_ctz(mask);
      return hit < end ? hit : nullptr;
    }
  }
  return nullptr;
#else
  for (; p < end; ++p)
    if (*p == '"' || *p == '\\') return p;
  return nullptr;
#endif
}

// A key as the upstream reads it: the raw bytes when it holds no escape (the common case:
// a view into the input, no copy), else unescaped into the parser's string buffer.
simdjson::error_code read_key(od::field& f, const char* end, std::string_view& key) {
  const char* p = f.key().raw();
  const char* q = quote_or_backslash(p, end);
  if (q == nullptr) return simdjson::STRING_ERROR;
  if (*q == '"') {
    key = std::string_view(p, static_cast<size_t>(q - p));
    return simdjson::SUCCESS;
  }
  return f.unescaped_key().get(key);
}

// A string value, the same way: zero-copy unless it holds an escape.
simdjson::error_code read_string(od::value& v, const char* end, std::string_view& out) {
  const std::string_view token = v.raw_json_token();  // from the opening quote; does not consume
  const char* p = token.data() + 1;
  const char* q = quote_or_backslash(p, end);
  if (q == nullptr) return simdjson::STRING_ERROR;
  if (*q == '\\') return v.get_string().get(out);
  od::raw_json_string raw;
  if (auto e = v.get_raw_json_string().get(raw)) return e;
  out = std::string_view(p, static_cast<size_t>(q - p));
  return simdjson::SUCCESS;
}

}  // namespace

// What one message's walk collects before it is classified.
struct envelope {
  bool seen_jsonrpc = false, seen_id = false, seen_method = false, seen_params = false;
  bool seen_result = false, seen_error = false;
  bool version_ok = false;
  enum class id_kind : uint8_t { none, string, integer, null, bad } id = id_kind::none;
  bool method_is_string = false;
  bool params_is_object = false;
  bool seen_name = false, name_is_string = false;
  bool seen_uri = false, uri_is_string = false;
  bool seen_args = false, args_is_object = false;
  std::string_view name, uri;
};

struct message_reader::impl {
  explicit impl(message_reader& owner, reader_limits limits) : r(owner), limits(limits) {}

  message_reader& r;
  reader_limits limits;
  od::parser parser;
  od::document doc;
  const arg_trie* trie = nullptr;
  // Per trie node: the stamp of the last message whose arguments held it. A new message takes
  // the next stamp instead of clearing the table (a libc memset call per message).
  std::vector<uint32_t> seen;
  uint32_t stamp = 0;
  message* cur = nullptr;
  const char* end = nullptr;  // end of the input: string scans stop here

  // A fatal error ends the read: the body as a whole is invalid.
  bool fatal(rpc_error e, std::string_view text) {
    if (r.error_ == rpc_error::none) {
      r.error_ = e;
      r.error_text_ = text;
    }
    return false;
  }
  bool json_error(simdjson::error_code e) {
    if (e == simdjson::UTF8_ERROR) return fatal(rpc_error::parse, "invalid UTF-8");
    if (e == simdjson::DEPTH_ERROR) return fatal(rpc_error::invalid_request, "nesting too deep");
    if (e == simdjson::STRING_ERROR) return fatal(rpc_error::parse, "invalid string escape");
    if (e == simdjson::NUMBER_ERROR) return fatal(rpc_error::parse, "invalid number");
    return fatal(rpc_error::parse, "malformed JSON");
  }
  // A semantic error marks the current message invalid; the walk goes on (it must
  // consume the rest of the value to validate the document).
  void invalid(rpc_error e, std::string_view text) {
    if (cur->error == rpc_error::none) {
      cur->error = e;
      cur->error_text = text;
    }
  }

  // A key, as read_key reads it. "__proto__" marks the message invalid: JSON.parse keeps it
  // as a plain key, but a JavaScript server that copies the object with Object.assign (or
  // a merge) takes its value for the copy's prototype, and then reads fields the policy
  // never saw: {"__proto__":{"path":"/etc/passwd"}} has no "path" for a rule on args.path,
  // and Object.assign({}, it).path is "/etc/passwd". No MCP message needs the key.
  simdjson::error_code key_of(od::field& f, std::string_view& key) {
    if (auto e = read_key(f, end, key)) return e;
    if (key.size() == 9 && key == "__proto__")
      invalid(rpc_error::invalid_request, "key \"__proto__\" is refused");
    return simdjson::SUCCESS;
  }

  // Walks and validates any value, reading nothing. Returns false on a fatal error.
  bool skip(od::value v, uint32_t depth) {
    if (depth > limits.max_depth) return fatal(rpc_error::invalid_request, "nesting too deep");
    od::json_type t;
    if (auto e = v.type().get(t)) return json_error(e);
    switch (t) {
      case od::json_type::object: {
        od::object o;
        if (auto e = v.get_object().get(o)) return json_error(e);
        for (auto fr : o) {
          od::field f;
          if (auto e = std::move(fr).get(f)) return json_error(e);
          std::string_view key;
          if (auto e = key_of(f, key)) return json_error(e);
          if (!skip(f.value(), depth + 1)) return false;
        }
        return true;
      }
      case od::json_type::array: {
        od::array a;
        if (auto e = v.get_array().get(a)) return json_error(e);
        for (auto er : a) {
          od::value el;
          if (auto e = er.get(el)) return json_error(e);
          if (!skip(el, depth + 1)) return false;
        }
        return true;
      }
      case od::json_type::string: {
        std::string_view s;
        if (auto e = read_string(v, end, s)) return json_error(e);
        return true;
      }
      case od::json_type::number: {
        double n;
        if (auto e = read_number(v, n)) return json_error(e);
        return true;
      }
      case od::json_type::boolean: {
        bool b;
        if (auto e = v.get_bool().get(b)) return json_error(e);
        return true;
      }
      case od::json_type::null: {
        bool n = false;
        if (auto e = v.is_null().get(n)) return json_error(e);
        if (!n) return fatal(rpc_error::parse, "malformed JSON");
        return true;
      }
    }
    return fatal(rpc_error::parse, "malformed JSON");
  }

  // Reads a string value into `out` when it is one (is_string says); skips it otherwise.
  bool string_or_skip(od::value v, uint32_t depth, std::string_view& out, bool& is_string) {
    od::json_type t;
    if (auto e = v.type().get(t)) return json_error(e);
    is_string = t == od::json_type::string;
    if (!is_string) return skip(v, depth);
    if (auto e = read_string(v, end, out)) return json_error(e);
    return true;
  }

  // Walks a value at argument-trie node `node`, capturing it when the node is a slot.
  bool walk_arg(od::value v, uint32_t node, uint32_t depth) {
    const uint32_t slot = trie->slot(node);
    const bool kids = trie->has_children(node);
    if (slot == arg_trie::kNoSlot && !kids) return skip(v, depth);
    if (depth > limits.max_depth) return fatal(rpc_error::invalid_request, "nesting too deep");
    od::json_type t;
    if (auto e = v.type().get(t)) return json_error(e);
    arg_value av;
    switch (t) {
      case od::json_type::object: {
        av.type = arg_value::kind::object;
        od::object o;
        if (auto e = v.get_object().get(o)) return json_error(e);
        for (auto fr : o) {
          od::field f;
          if (auto e = std::move(fr).get(f)) return json_error(e);
          std::string_view key;
          if (auto e = key_of(f, key)) return json_error(e);
          const uint32_t child = kids ? trie->child(node, key) : arg_trie::kNoSlot;
          if (child == arg_trie::kNoSlot) {
            if (!skip(f.value(), depth + 1)) return false;
            continue;
          }
          if (seen[child] == stamp)
            invalid(rpc_error::invalid_params, "duplicate key in arguments");
          seen[child] = stamp;
          if (!walk_arg(f.value(), child, depth + 1)) return false;
        }
        break;
      }
      case od::json_type::array: {
        av.type = arg_value::kind::array;
        const std::string_view start = v.raw_json_token();
        od::array a;
        if (auto e = v.get_array().get(a)) return json_error(e);
        char buf[20];
        uint32_t n = 0;
        for (auto er : a) {
          od::value el;
          if (auto e = er.get(el)) return json_error(e);
          const uint32_t child = kids ? trie->child(node, index_key(n, buf)) : arg_trie::kNoSlot;
          if (child == arg_trie::kNoSlot) {
            if (!skip(el, depth + 1)) return false;
          } else {
            seen[child] = stamp;
            if (!walk_arg(el, child, depth + 1)) return false;
          }
          ++n;
        }
        av.count = n;
        // The array's raw text: from its '[' to the next token after it (a ',' or a closing
        // bracket: an argument is never the document's last token).
        const char* end = nullptr;
        if (auto e = doc.current_location().get(end)) return json_error(e);
        av.text =
            trim_right(std::string_view(start.data(), static_cast<size_t>(end - start.data())));
        break;
      }
      case od::json_type::string:
        av.type = arg_value::kind::string;
        if (auto e = read_string(v, end, av.text)) return json_error(e);
        break;
      case od::json_type::number: {
        av.type = arg_value::kind::number;
        av.text = trim_right(v.raw_json_token());
        if (auto e = read_number(v, av.number)) return json_error(e);
        break;
      }
      case od::json_type::boolean:
        av.type = arg_value::kind::boolean;
        if (auto e = v.get_bool().get(av.boolean)) return json_error(e);
        break;
      case od::json_type::null: {
        av.type = arg_value::kind::null;
        bool is_null = false;
        if (auto e = v.is_null().get(is_null)) return json_error(e);
        if (!is_null) return fatal(rpc_error::parse, "malformed JSON");
        break;
      }
    }
    if (slot != arg_trie::kNoSlot) r.values_[cur->args_begin + slot] = av;
    return true;
  }

  bool walk_params(od::value v, envelope& env, uint32_t depth) {
    od::json_type t;
    if (auto e = v.type().get(t)) return json_error(e);
    env.params_is_object = t == od::json_type::object;
    if (!env.params_is_object) return skip(v, depth);
    od::object o;
    if (auto e = v.get_object().get(o)) return json_error(e);
    for (auto fr : o) {
      od::field f;
      if (auto e = std::move(fr).get(f)) return json_error(e);
      std::string_view key;
      if (auto e = key_of(f, key)) return json_error(e);
      od::value fv = f.value();
      if (key == "name") {
        if (env.seen_name) invalid(rpc_error::invalid_request, "duplicate key \"name\" in params");
        env.seen_name = true;
        if (!string_or_skip(fv, depth + 1, env.name, env.name_is_string)) return false;
      } else if (key == "uri") {
        if (env.seen_uri) invalid(rpc_error::invalid_request, "duplicate key \"uri\" in params");
        env.seen_uri = true;
        if (!string_or_skip(fv, depth + 1, env.uri, env.uri_is_string)) return false;
      } else if (key == "arguments") {
        if (env.seen_args)
          invalid(rpc_error::invalid_request, "duplicate key \"arguments\" in params");
        env.seen_args = true;
        od::json_type at;
        if (auto e = fv.type().get(at)) return json_error(e);
        env.args_is_object = at == od::json_type::object;
        if (!(env.args_is_object ? walk_arg(fv, arg_trie::kRoot, depth + 1) : skip(fv, depth + 1)))
          return false;
      } else if (!skip(fv, depth + 1)) {
        return false;
      }
    }
    return true;
  }

  // Reads one message object into `m`. Returns false on a fatal error.
  bool read_message(od::object o, message& m, uint32_t depth) {
    cur = &m;
    m.args_begin = static_cast<uint32_t>(r.values_.size());
    r.values_.resize(r.values_.size() + r.slots_);
    if (++stamp == 0) {  // wrapped: forget every stamp
      std::fill(seen.begin(), seen.end(), 0);
      stamp = 1;
    }
    envelope env;
    for (auto fr : o) {
      od::field f;
      if (auto e = std::move(fr).get(f)) return json_error(e);
      std::string_view key;
      if (auto e = key_of(f, key)) return json_error(e);
      od::value v = f.value();
      if (key == "jsonrpc") {
        if (env.seen_jsonrpc) invalid(rpc_error::invalid_request, "duplicate key \"jsonrpc\"");
        env.seen_jsonrpc = true;
        std::string_view s;
        bool is_string = false;
        if (!string_or_skip(v, depth + 1, s, is_string)) return false;
        env.version_ok = is_string && s == "2.0";
      } else if (key == "id") {
        if (env.seen_id) invalid(rpc_error::invalid_request, "duplicate key \"id\"");
        env.seen_id = true;
        if (!read_id(v, m, env, depth)) return false;
      } else if (key == "method") {
        if (env.seen_method) invalid(rpc_error::invalid_request, "duplicate key \"method\"");
        env.seen_method = true;
        if (!string_or_skip(v, depth + 1, m.method, env.method_is_string)) return false;
      } else if (key == "params") {
        if (env.seen_params) invalid(rpc_error::invalid_request, "duplicate key \"params\"");
        env.seen_params = true;
        if (!walk_params(v, env, depth + 1)) return false;
      } else {
        if (key == "result") env.seen_result = true;
        if (key == "error") env.seen_error = true;
        if (!skip(v, depth + 1)) return false;
      }
    }
    classify_message(m, env);
    return true;
  }

  bool read_id(od::value v, message& m, envelope& env, uint32_t depth) {
    od::json_type t;
    if (auto e = v.type().get(t)) return json_error(e);
    if (t == od::json_type::string) {
      env.id = envelope::id_kind::string;
      m.id = trim_right(v.raw_json_token());
      std::string_view s;
      if (auto e = read_string(v, end, s)) return json_error(e);
      return true;
    }
    if (t == od::json_type::number) {
      m.id = trim_right(v.raw_json_token());
      od::number_type nt;
      if (auto e = v.get_number_type().get(nt)) return json_error(e);
      env.id = nt == od::number_type::floating_point_number ? envelope::id_kind::bad
                                                            : envelope::id_kind::integer;
      double n;
      if (auto e = read_number(v, n)) return json_error(e);
      return true;
    }
    env.id = t == od::json_type::null ? envelope::id_kind::null : envelope::id_kind::bad;
    return skip(v, depth + 1);
  }

  void classify_message(message& m, const envelope& env) {
    if (!env.version_ok) return invalid(rpc_error::invalid_request, "jsonrpc must be \"2.0\"");
    const bool has_id = env.seen_id;
    if (!env.seen_method) {
      // A response to a server-to-client request (sampling, elicitation, roots...).
      if (!has_id || env.seen_result == env.seen_error)
        return invalid(rpc_error::invalid_request, "message has no method");
      if (env.id == envelope::id_kind::bad)
        return invalid(rpc_error::invalid_request, "id must be a string or an integer");
      m.kind = message_kind::response;
      return;
    }
    if (!env.method_is_string)
      return invalid(rpc_error::invalid_request, "method must be a string");
    m.method_kind = classify(m.method);
    if (has_id && env.id != envelope::id_kind::string && env.id != envelope::id_kind::integer)
      return invalid(rpc_error::invalid_request, "id must be a string or an integer");
    m.kind = has_id ? message_kind::request : message_kind::notification;
    switch (m.method_kind) {
      case method_id::tools_call:
      case method_id::prompts_get:
        if (!has_id)
          return invalid(rpc_error::invalid_request,
                         "a call must have an id: it is never forwarded as a notification");
        if (!env.params_is_object)
          return invalid(rpc_error::invalid_params, "params must be an object");
        if (!env.name_is_string)
          return invalid(rpc_error::invalid_params, "params.name must be a string");
        if (env.seen_args && !env.args_is_object)
          return invalid(rpc_error::invalid_params, "params.arguments must be an object");
        m.target = env.name;
        return;
      case method_id::resources_read:
        if (!has_id)
          return invalid(rpc_error::invalid_request,
                         "a call must have an id: it is never forwarded as a notification");
        if (!env.params_is_object)
          return invalid(rpc_error::invalid_params, "params must be an object");
        if (!env.uri_is_string)
          return invalid(rpc_error::invalid_params, "params.uri must be a string");
        m.target = env.uri;
        return;
      default:
        return;
    }
  }

  bool skip_root_scalar(od::json_type t) {
    simdjson::error_code e = simdjson::SUCCESS;
    switch (t) {
      case od::json_type::string: {
        std::string_view s;
        e = doc.get_string().get(s);
        break;
      }
      case od::json_type::number: {
        double d;
        e = doc.get_double().get(d);
        break;
      }
      case od::json_type::boolean: {
        bool b;
        e = doc.get_bool().get(b);
        break;
      }
      case od::json_type::null: {
        bool n = false;
        e = doc.is_null().get(n);
        if (e == simdjson::SUCCESS && !n) e = simdjson::TAPE_ERROR;
        break;
      }
      default:
        break;
    }
    return e == simdjson::SUCCESS ? true : json_error(e);
  }

  bool read(std::string_view data, const arg_trie& t) {
    trie = &t;
    end = data.data() + data.size();
    r.slots_ = t.slot_count();
    if (seen.size() < t.node_count()) seen.resize(t.node_count());   // older stamps: unseen
    if (data.empty()) return fatal(rpc_error::parse, "empty body");  // may have no storage
    if (data.size() > limits.max_bytes)
      return fatal(rpc_error::invalid_request, "message too large");
    if (auto e = parser.iterate(data.data(), data.size(), data.size() + simdjson::SIMDJSON_PADDING)
                     .get(doc))
      return json_error(e);
    od::json_type type;
    if (auto e = doc.type().get(type)) return json_error(e);
    if (type == od::json_type::object) {
      od::object o;
      if (auto e = doc.get_object().get(o)) return json_error(e);
      r.messages_.emplace_back();
      if (!read_message(o, r.messages_.back(), 1)) return false;
    } else if (type == od::json_type::array) {
      r.batch_ = true;
      od::array a;
      if (auto e = doc.get_array().get(a)) return json_error(e);
      for (auto er : a) {
        od::value el;
        if (auto e = er.get(el)) return json_error(e);
        if (r.messages_.size() == limits.max_batch)
          return fatal(rpc_error::invalid_request, "batch too large");
        r.messages_.emplace_back();
        od::json_type et;
        if (auto e = el.type().get(et)) return json_error(e);
        if (et != od::json_type::object) {
          cur = &r.messages_.back();
          cur->args_begin = static_cast<uint32_t>(r.values_.size());
          r.values_.resize(r.values_.size() + r.slots_);
          invalid(rpc_error::invalid_request, "batch element is not an object");
          if (!skip(el, 2)) return false;
          continue;
        }
        od::object o;
        if (auto e = el.get_object().get(o)) return json_error(e);
        if (!read_message(o, r.messages_.back(), 2)) return false;
      }
      if (r.messages_.empty()) return fatal(rpc_error::invalid_request, "empty batch");
    } else {
      // A scalar: malformed (-32700) or well-formed but not a message (-32600).
      if (!skip_root_scalar(type)) return false;
      return fatal(rpc_error::invalid_request, "not a JSON-RPC message (object or array expected)");
    }
    // After the root value the iterator must be at the end: simdjson reports the next token's
    // location when there is one, OUT_OF_BOUNDS when there is none.
    const char* rest = nullptr;
    if (doc.current_location().get(rest) != simdjson::OUT_OF_BOUNDS)
      return fatal(rpc_error::parse, "trailing bytes after the JSON value");
    if (!r.batch_ && r.messages_[0].error != rpc_error::none)
      return fatal(r.messages_[0].error, r.messages_[0].error_text);
    return true;
  }
};

message_reader::message_reader(reader_limits limits)
    : impl_(std::make_unique<impl>(*this, limits)) {
  messages_.reserve(16);
}

message_reader::~message_reader() = default;

bool message_reader::read(std::string_view data, const arg_trie& trie) {
  messages_.clear();
  values_.clear();
  batch_ = false;
  error_ = rpc_error::none;
  error_text_ = {};
  return impl_->read(data, trie);
}

}  // namespace sluice::policy
