#include "policy/loader.h"

#include <re2/re2.h>
#include <simdjson.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// The loader runs at start-up and on reload, never on the data path: it favours clear
// messages over speed and may allocate freely. It never throws: simdjson is used through
// its error-code API and RE2 with RE2::Quiet.

namespace sluice::policy {

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

constexpr uint64_t kMaxLimitMax = 4294967295ull;
// About 136 years. Keeps window_seconds * 1e9 (nanoseconds) well inside int64_t for the
// compiler and the limiter.
constexpr uint64_t kMaxWindowSeconds = 4294967295ull;
constexpr size_t kMaxShownValue = 64;  // longer values are cut in messages

// RFC 6901: '~' -> "~0", '/' -> "~1".
std::string escape_pointer_token(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::string child(std::string_view parent, std::string_view key) {
  std::string out(parent);
  out += '/';
  out += escape_pointer_token(key);
  return out;
}

std::string child(std::string_view parent, size_t index) {
  std::string out(parent);
  out += '/';
  out += std::to_string(index);
  return out;
}

// A string as a JSON string literal, for messages.
std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

// What a value is, for "got ..." in messages: scalars as JSON text, containers by kind.
std::string describe(element value) {
  switch (value.type()) {
    case element_type::ARRAY:
      return "an array";
    case element_type::OBJECT:
      return "an object";
    default:
      break;
  }
  std::string text = simdjson::to_string(value);
  if (text.size() > kMaxShownValue) {
    text.resize(kMaxShownValue);
    text += "...";
  }
  return text;
}

bool is_number(element value) {
  const element_type t = value.type();
  return t == element_type::INT64 || t == element_type::UINT64 || t == element_type::DOUBLE;
}

bool is_scalar(element value) {
  const element_type t = value.type();
  return t != element_type::ARRAY && t != element_type::OBJECT;
}

// A non-negative whole number. Integer tokens are taken as they are; a number written with
// a fraction or an exponent (10.0, 1e3) counts when its value is whole and at most 2^53,
// where doubles stop being exact.
bool get_whole(element value, uint64_t& out) {
  switch (value.type()) {
    case element_type::UINT64:
      out = value.get_uint64().value_unsafe();
      return true;
    case element_type::INT64: {
      const int64_t v = value.get_int64().value_unsafe();
      if (v < 0) return false;
      out = static_cast<uint64_t>(v);
      return true;
    }
    case element_type::DOUBLE: {
      constexpr double kMaxExact = 9007199254740992.0;  // 2^53
      const double d = value.get_double().value_unsafe();
      if (!(d >= 0 && d <= kMaxExact) || d != static_cast<double>(static_cast<uint64_t>(d))) {
        return false;
      }
      out = static_cast<uint64_t>(d);
      return true;
    }
    default:
      return false;
  }
}

// The text of a string value; "" for any other type (callers compare against non-empty words).
std::string_view string_or_empty(element value) {
  std::string_view s;
  if (value.get_string().get(s) != simdjson::SUCCESS) return {};
  return s;
}

literal to_literal(element value) {
  literal lit;
  switch (value.type()) {
    case element_type::NULL_VALUE:
      lit.type = literal::kind::null;
      break;
    case element_type::BOOL:
      lit.type = literal::kind::boolean;
      lit.boolean = value.get_bool().value_unsafe();  // type checked above
      break;
    case element_type::INT64: {
      lit.type = literal::kind::number;
      lit.number = static_cast<double>(value.get_int64().value_unsafe());
      break;
    }
    case element_type::UINT64: {
      lit.type = literal::kind::number;
      lit.number = static_cast<double>(value.get_uint64().value_unsafe());
      break;
    }
    case element_type::DOUBLE:
      lit.type = literal::kind::number;
      lit.number = value.get_double().value_unsafe();
      break;
    case element_type::STRING: {
      lit.type = literal::kind::string;
      lit.string = std::string(value.get_string().value_unsafe());
      break;
    }
    case element_type::ARRAY:
    case element_type::OBJECT:
      break;  // callers only pass scalars
  }
  return lit;
}

struct op_name {
  std::string_view name;
  check_op op;
};

constexpr op_name kOps[] = {
    {"eq", check_op::eq},
    {"neq", check_op::neq},
    {"in", check_op::in},
    {"not_in", check_op::not_in},
    {"lt", check_op::lt},
    {"lte", check_op::lte},
    {"gt", check_op::gt},
    {"gte", check_op::gte},
    {"regex", check_op::regex},
    {"contains", check_op::contains},
    {"exists", check_op::exists},
    {"not_exists", check_op::not_exists},
    {"max_length", check_op::max_length},
};

// The fields of one JSON object, in file order, with duplicates reported and dropped and
// unknown names reported. Lookup is linear: policy objects have a handful of fields.
class field_set {
 public:
  std::vector<std::pair<std::string_view, element>> fields;

  const element* find(std::string_view name) const {
    for (const auto& f : fields) {
      if (f.first == name) return &f.second;
    }
    return nullptr;
  }
};

class loader {
 public:
  explicit loader(std::string_view source) : source_(source) {}

  load_result run(const simdjson::padded_string& text) {
    simdjson::dom::parser parser;
    element root;
    const simdjson::error_code err = parser.parse(text).get(root);
    if (err != simdjson::SUCCESS) {
      error("", std::string("invalid JSON: ") + simdjson::error_message(err));
      return finish();
    }
    if (root.type() != element_type::OBJECT) {
      error("", "expected a JSON object at the top level, got " + describe(root));
      return finish();
    }
    load_top(root);
    return finish();
  }

  void error(std::string pointer, std::string message) {
    errors_.push_back(load_error{std::string(source_), std::move(pointer), std::move(message)});
  }

  load_result finish() {
    load_result result;
    if (errors_.empty()) {
      policy_.source = std::string(source_);
      result.policy = std::move(policy_);
    }
    result.errors = std::move(errors_);
    return result;
  }

 private:
  // Collects an object's fields: duplicate keys and keys outside `allowed` are errors
  // (pass an empty `allowed` to accept any key, as for the maps of names to rules).
  field_set fields_of(element obj_value, std::string_view pointer,
                      std::initializer_list<std::string_view> allowed) {
    field_set out;
    simdjson::dom::object obj;
    if (obj_value.get_object().get(obj) != simdjson::SUCCESS) return out;
    for (simdjson::dom::key_value_pair kv : obj) {
      const std::string p = child(pointer, kv.key);
      if (out.find(kv.key) != nullptr) {
        error(p, "duplicate key " + json_quote(kv.key));
        continue;
      }
      if (allowed.size() != 0) {
        bool known = false;
        for (std::string_view a : allowed)
          known = known || a == kv.key;
        if (!known) {
          std::string expected;
          for (std::string_view a : allowed) {
            if (!expected.empty()) expected += ", ";
            expected += a;
          }
          error(p, "unknown field; expected one of " + expected);
          continue;
        }
      }
      out.fields.emplace_back(kv.key, kv.value);
    }
    return out;
  }

  void load_top(element root) {
    const field_set top = fields_of(
        root, "", {"version", "default", "tools", "hide", "all_tools", "resources", "prompts"});

    if (const element* v = top.find("version")) {
      std::string_view s;
      if (v->get_string().get(s) != simdjson::SUCCESS || s != "1") {
        error("/version", "expected the string \"1\", got " + describe(*v));
      }
    } else {
      error("/version", "missing required field; expected the string \"1\"");
    }

    if (const element* v = top.find("default")) {
      const std::string_view s = string_or_empty(*v);
      if (s == "allow") {
        policy_.default_action = action::allow;
      } else if (s == "deny") {
        policy_.default_action = action::deny;
      } else {
        error("/default", "expected \"allow\" or \"deny\", got " + describe(*v));
      }
    } else {
      error("/default", "missing required field; expected \"allow\" or \"deny\"");
    }

    // File order matters for the counter-consistency check ("the later occurrence").
    for (const auto& [key, value] : top.fields) {
      if (key == "tools") {
        load_rules(value, "/tools", "tool names", policy_.tools);
      } else if (key == "resources") {
        policy_.has_resources = true;
        load_rules(value, "/resources", "resource URIs", policy_.resources);
      } else if (key == "prompts") {
        policy_.has_prompts = true;
        load_rules(value, "/prompts", "prompt names", policy_.prompts);
      } else if (key == "hide") {
        load_hide(value);
      } else if (key == "all_tools") {
        load_all_tools(value);
      }
    }
  }

  void load_rules(element value, const std::string& pointer, std::string_view what,
                  std::vector<rule_def>& out) {
    if (value.type() != element_type::OBJECT) {
      error(pointer, "expected an object mapping " + std::string(what) +
                         " (or globs) to rules, got " + describe(value));
      return;
    }
    const field_set rules = fields_of(value, pointer, {});
    for (const auto& [key, rule_value] : rules.fields) {
      const std::string p = child(pointer, key);
      if (key.empty()) {
        error(p, "empty name; expected a name or a glob");
        continue;
      }
      rule_def rule;
      rule.key = std::string(key);
      rule.is_pattern = is_glob(key);
      rule.pointer = p;
      if (load_rule(rule_value, p, rule)) out.push_back(std::move(rule));
    }
  }

  bool load_rule(element value, const std::string& pointer, rule_def& rule) {
    if (value.type() != element_type::OBJECT) {
      error(pointer,
            "expected a rule object (fields action, reason, limits, require, "
            "deny_if), got " +
                describe(value));
      return false;
    }
    const field_set f =
        fields_of(value, pointer, {"action", "reason", "limits", "require", "deny_if"});
    if (const element* v = f.find("action")) {
      const std::string_view s = string_or_empty(*v);
      if (s == "allow") {
        rule.act = action::allow;
      } else if (s == "deny") {
        rule.act = action::deny;
      } else if (s == "require_approval") {
        rule.act = action::require_approval;
      } else {
        error(pointer + "/action",
              "expected \"allow\", \"deny\" or \"require_approval\", got " + describe(*v));
      }
    }
    if (const element* v = f.find("reason")) {
      std::string_view s;
      if (v->get_string().get(s) == simdjson::SUCCESS) {
        rule.reason = std::string(s);
      } else {
        error(pointer + "/reason", "expected a string, got " + describe(*v));
      }
    }
    if (const element* v = f.find("limits")) load_limits(*v, pointer + "/limits", rule.limits);
    if (const element* v = f.find("require")) load_checks(*v, pointer + "/require", rule.require);
    if (const element* v = f.find("deny_if")) load_checks(*v, pointer + "/deny_if", rule.deny_if);
    return true;
  }

  void load_all_tools(element value) {
    if (value.type() != element_type::OBJECT) {
      error("/all_tools", "expected an object with a \"limits\" array, got " + describe(value));
      return;
    }
    const field_set f = fields_of(value, "/all_tools", {"limits"});
    if (const element* v = f.find("limits"))
      load_limits(*v, "/all_tools/limits", policy_.all_tools);
  }

  void load_hide(element value) {
    simdjson::dom::array arr;
    if (value.get_array().get(arr) != simdjson::SUCCESS) {
      error("/hide", "expected an array of tool names or globs, got " + describe(value));
      return;
    }
    size_t i = 0;
    for (element item : arr) {
      const std::string p = child("/hide", i++);
      std::string_view s;
      if (item.get_string().get(s) != simdjson::SUCCESS || s.empty()) {
        error(p, "expected a non-empty tool name or glob, got " + describe(item));
        continue;
      }
      bool duplicate = false;
      for (const hide_def& h : policy_.hide) {
        if (h.key == s) {
          error(p, "duplicate entry " + json_quote(s) + " (already at " + h.pointer + ")");
          duplicate = true;
          break;
        }
      }
      if (duplicate) continue;
      policy_.hide.push_back(hide_def{std::string(s), is_glob(s), p});
    }
  }

  void load_limits(element value, const std::string& pointer, std::vector<limit_def>& out) {
    simdjson::dom::array arr;
    if (value.get_array().get(arr) != simdjson::SUCCESS) {
      error(pointer, "expected an array of limits, got " + describe(value));
      return;
    }
    size_t i = 0;
    for (element item : arr) {
      limit_def limit;
      limit.pointer = child(pointer, i++);
      if (load_limit(item, limit)) out.push_back(std::move(limit));
    }
  }

  bool load_limit(element value, limit_def& limit) {
    const std::string& p = limit.pointer;
    if (value.type() != element_type::OBJECT) {
      error(p,
            "expected a limit object (fields counter, window, max, scope), got " + describe(value));
      return false;
    }
    const field_set f = fields_of(value, p, {"counter", "window", "max", "scope"});
    bool ok = true;

    if (const element* v = f.find("counter")) {
      std::string_view s;
      if (v->get_string().get(s) == simdjson::SUCCESS && !s.empty()) {
        limit.counter = std::string(s);
      } else {
        error(p + "/counter", "expected a non-empty counter name, got " + describe(*v));
        ok = false;
      }
    } else {
      error(p + "/counter", "missing required field; expected a non-empty counter name");
      ok = false;
    }

    constexpr std::string_view kWindowExpected =
        "expected \"second\", \"minute\", \"hour\", \"day\" or a positive whole number of "
        "seconds";
    if (const element* v = f.find("window")) {
      std::string_view s;
      uint64_t n = 0;
      if (v->get_string().get(s) == simdjson::SUCCESS) {
        if (s == "second") {
          limit.window_seconds = 1;
        } else if (s == "minute") {
          limit.window_seconds = 60;
        } else if (s == "hour") {
          limit.window_seconds = 3600;
        } else if (s == "day") {
          limit.window_seconds = 86400;
        }
      } else if (get_whole(*v, n) && n > 0 && n <= kMaxWindowSeconds) {
        limit.window_seconds = static_cast<int64_t>(n);
      }
      if (limit.window_seconds == 0) {
        const bool too_long = get_whole(*v, n) && n > kMaxWindowSeconds;
        error(p + "/window", (too_long ? "expected a whole number of seconds from 1 to " +
                                             std::to_string(kMaxWindowSeconds)
                                       : std::string(kWindowExpected)) +
                                 ", got " + describe(*v));
        ok = false;
      }
    } else {
      error(p + "/window", "missing required field; " + std::string(kWindowExpected));
      ok = false;
    }

    constexpr std::string_view kMaxExpected = "expected a whole number from 1 to 4294967295";
    if (const element* v = f.find("max")) {
      uint64_t n = 0;
      if (get_whole(*v, n) && n > 0 && n <= kMaxLimitMax) {
        limit.max = n;
      } else {
        error(p + "/max", std::string(kMaxExpected) + ", got " + describe(*v));
        ok = false;
      }
    } else {
      error(p + "/max", "missing required field; " + std::string(kMaxExpected));
      ok = false;
    }

    std::string scope_text = "global";
    if (const element* v = f.find("scope")) {
      std::string_view s;
      bool good = false;
      if (v->get_string().get(s) == simdjson::SUCCESS) {
        scope_text = std::string(s);
        if (s == "global") {
          limit.scope = scope_kind::global;
          good = true;
        } else if (s == "grant") {
          limit.scope = scope_kind::grant;
          good = true;
        } else if (s == "session") {
          limit.scope = scope_kind::session;
          good = true;
        } else if (s.starts_with("arg:")) {
          limit.scope = scope_kind::arg;
          good = parse_arg_path(s.substr(4), limit.arg);
        }
      }
      if (!good) {
        error(p + "/scope",
              "expected \"global\", \"grant\", \"session\" or \"arg:<path>\" with <path> "
              "like args.a.b or /a/b, got " +
                  describe(*v));
        ok = false;
      }
    }

    if (ok) check_counter(limit, scope_text);
    return ok;
  }

  // Every use of a counter name must agree on window and scope: they share one count.
  void check_counter(const limit_def& limit, const std::string& scope_text) {
    auto [it, inserted] = counters_.try_emplace(
        limit.counter, counter_use{limit.window_seconds, scope_text, limit.pointer});
    if (inserted) return;
    const counter_use& first = it->second;
    constexpr std::string_view kRule =
        "; every use of a counter must have the same window and scope";
    if (first.window_seconds != limit.window_seconds) {
      error(limit.pointer, "counter '" + limit.counter + "' is declared with window " +
                               std::to_string(first.window_seconds) + " at " + first.pointer +
                               std::string(kRule) + " (got window " +
                               std::to_string(limit.window_seconds) + ")");
    }
    if (first.scope_text != scope_text) {
      error(limit.pointer, "counter '" + limit.counter + "' is declared with scope " +
                               json_quote(first.scope_text) + " at " + first.pointer +
                               std::string(kRule) + " (got scope " + json_quote(scope_text) + ")");
    }
  }

  void load_checks(element value, const std::string& pointer, std::vector<check_def>& out) {
    simdjson::dom::array arr;
    if (value.get_array().get(arr) != simdjson::SUCCESS) {
      error(pointer, "expected an array of checks, got " + describe(value));
      return;
    }
    size_t i = 0;
    for (element item : arr) {
      check_def check;
      check.pointer = child(pointer, i++);
      if (load_check(item, check)) out.push_back(std::move(check));
    }
  }

  bool load_check(element value, check_def& check) {
    const std::string& p = check.pointer;
    if (value.type() != element_type::OBJECT) {
      error(p, "expected a check object (fields path, op, value), got " + describe(value));
      return false;
    }
    const field_set f = fields_of(value, p, {"path", "op", "value"});
    bool ok = true;

    constexpr std::string_view kPathExpected =
        "expected an argument path like \"args.a.b\" or \"/a/b\" (JSON pointer) with no empty "
        "segment";
    if (const element* v = f.find("path")) {
      std::string_view s;
      if (v->get_string().get(s) != simdjson::SUCCESS || !parse_arg_path(s, check.path)) {
        error(p + "/path", std::string(kPathExpected) + ", got " + describe(*v));
        ok = false;
      }
    } else {
      error(p + "/path", "missing required field; " + std::string(kPathExpected));
      ok = false;
    }

    constexpr std::string_view kOpExpected =
        "expected one of eq, neq, in, not_in, lt, lte, gt, gte, regex, contains, exists, "
        "not_exists, max_length";
    bool op_known = false;
    if (const element* v = f.find("op")) {
      std::string_view s;
      if (v->get_string().get(s) == simdjson::SUCCESS) {
        for (const op_name& o : kOps) {
          if (o.name == s) {
            check.op = o.op;
            op_known = true;
          }
        }
      }
      if (!op_known) {
        error(p + "/op", std::string(kOpExpected) + ", got " + describe(*v));
        ok = false;
      }
    } else {
      error(p + "/op", "missing required field; " + std::string(kOpExpected));
      ok = false;
    }
    // Without a known op there is no telling what the value should be.
    if (!op_known) return false;
    return load_check_value(f.find("value"), p + "/value", check) && ok;
  }

  bool load_check_value(const element* v, const std::string& p, check_def& check) {
    std::string_view op_text;
    for (const op_name& o : kOps) {
      if (o.op == check.op) op_text = o.name;
    }
    const std::string for_op = " for op " + json_quote(op_text);

    switch (check.op) {
      case check_op::exists:
      case check_op::not_exists:
        if (v != nullptr) {
          error(p, "unexpected value; op " + json_quote(op_text) + " takes no value");
          return false;
        }
        return true;
      default:
        break;
    }
    if (v == nullptr) {
      error(p, "missing required field" + for_op);
      return false;
    }

    switch (check.op) {
      case check_op::eq:
      case check_op::neq:
      case check_op::contains:
        if (!is_scalar(*v)) {
          error(p, "expected a string, number, boolean or null" + for_op + ", got " + describe(*v));
          return false;
        }
        check.value = to_literal(*v);
        return true;

      case check_op::in:
      case check_op::not_in: {
        simdjson::dom::array arr;
        if (v->get_array().get(arr) != simdjson::SUCCESS || arr.size() == 0) {
          error(p, "expected a non-empty array of strings, numbers, booleans or nulls" + for_op +
                       ", got " + (v->type() == element_type::ARRAY ? "[]" : describe(*v)));
          return false;
        }
        bool ok = true;
        check.value.type = literal::kind::list;
        size_t i = 0;
        for (element item : arr) {
          const std::string ip = child(p, i++);
          if (!is_scalar(item)) {
            error(ip, "expected a string, number, boolean or null, got " + describe(item));
            ok = false;
            continue;
          }
          check.value.items.push_back(to_literal(item));
        }
        return ok;
      }

      case check_op::lt:
      case check_op::lte:
      case check_op::gt:
      case check_op::gte:
        if (!is_number(*v)) {
          error(p, "expected a number" + for_op + ", got " + describe(*v));
          return false;
        }
        check.value = to_literal(*v);
        return true;

      case check_op::max_length: {
        uint64_t n = 0;
        if (!get_whole(*v, n)) {
          error(p, "expected a non-negative whole number" + for_op + ", got " + describe(*v));
          return false;
        }
        check.value = to_literal(*v);
        return true;
      }

      case check_op::regex: {
        std::string_view s;
        if (v->get_string().get(s) != simdjson::SUCCESS) {
          error(p, "expected a string holding an RE2 regular expression" + for_op + ", got " +
                       describe(*v));
          return false;
        }
        // Validation only: the compiler builds its own RE2 from the same text.
        RE2 re(re2::StringPiece(s.data(), s.size()), RE2::Quiet);
        if (!re.ok()) {
          error(p, "invalid regular expression " + describe(*v) + ": " + re.error() +
                       "; expected RE2 syntax");
          return false;
        }
        check.value = to_literal(*v);
        return true;
      }

      case check_op::exists:
      case check_op::not_exists:
        break;  // handled above
    }
    return true;
  }

  struct counter_use {
    int64_t window_seconds;
    std::string scope_text;
    std::string pointer;  // first limit that used the name
  };

  std::string_view source_;
  policy_def policy_;
  std::vector<load_error> errors_;
  std::map<std::string, counter_use, std::less<>> counters_;
};

}  // namespace

// Always three parts, so that every line splits the same way: the document itself (an
// empty pointer: JSON syntax errors, an unreadable file, a non-object top level) prints
// as "/". The policy language has no top-level key "", so "/" is not ambiguous in practice.
std::string load_error::to_string() const {
  std::string out = file;
  out += ": ";
  out += pointer.empty() ? std::string_view("/") : std::string_view(pointer);
  out += ": ";
  out += message;
  return out;
}

load_result load_policy_text(std::string_view text, std::string_view source) {
  const simdjson::padded_string padded(text);  // copies into a padded buffer
  return loader(source).run(padded);
}

load_result load_policy_file(const std::string& path) {
  errno = 0;
  simdjson::padded_string text;
  const simdjson::error_code err = simdjson::padded_string::load(path).get(text);
  if (err != simdjson::SUCCESS) {
    const int saved = errno;
    loader l(path);
    std::string message = "cannot read the policy file";
    if (saved != 0) {
      message += ": ";
      message += std::strerror(saved);
    }
    l.error("", std::move(message));
    return l.finish();
  }
  return loader(path).run(text);
}

bool parse_arg_path(std::string_view text, arg_path& out) {
  out.segments.clear();
  out.text = std::string(text);
  if (text.starts_with("args.")) {
    std::string_view rest = text.substr(5);
    while (true) {
      const size_t dot = rest.find('.');
      const std::string_view seg = rest.substr(0, dot);
      if (seg.empty()) return false;
      out.segments.emplace_back(seg);
      if (dot == std::string_view::npos) break;
      rest = rest.substr(dot + 1);
    }
    return true;
  }
  if (text.starts_with("/")) {
    std::string_view rest = text.substr(1);
    while (true) {
      const size_t slash = rest.find('/');
      const std::string_view raw = rest.substr(0, slash);
      if (raw.empty()) return false;
      std::string seg;
      seg.reserve(raw.size());
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '~') {
          seg += raw[i];
          continue;
        }
        // RFC 6901: '~' is only valid as "~0" or "~1".
        if (i + 1 >= raw.size()) return false;
        if (raw[i + 1] == '0') {
          seg += '~';
        } else if (raw[i + 1] == '1') {
          seg += '/';
        } else {
          return false;
        }
        ++i;
      }
      out.segments.push_back(std::move(seg));
      if (slash == std::string_view::npos) break;
      rest = rest.substr(slash + 1);
    }
    return true;
  }
  return false;
}

bool is_glob(std::string_view key) {
  return key.find_first_of("*?") != std::string_view::npos;
}

}  // namespace sluice::policy
