// `sluice eval`: the decision core offline. One JSON object out per input line, in order.

#include <simdjson.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "engine/clock.h"
#include "net/mcp_answers.h"
#include "policy/compiled_policy.h"
#include "policy/decider.h"
#include "policy/loader.h"
#include "tools/sluice/commands.h"

namespace sluice::cli {

namespace {

namespace od = simdjson::ondemand;

constexpr const char* kUsage =
    "usage: sluice eval --policy FILE [--grant G] [--session S] [INPUT|-]\n"
    "\n"
    "Decides each line of INPUT (default: standard input) with the policy and prints one\n"
    "JSON object per line, in order:\n"
    "  {\"decision\": \"allow|deny|rate_limited|approval_required|invalid\",\n"
    "   \"tool\": ..., \"rule\": ..., \"reason\": ...}\n"
    "plus \"retry_after\" (seconds) for rate_limited, \"error\": {\"code\", \"message\"} for\n"
    "invalid, and \"batch\": [...] with one object per element for a JSON-RPC batch.\n"
    "\n"
    "A line is a bare JSON-RPC message, or an envelope\n"
    "  {\"at\": \"2026-11-25T10:00:00Z\" | <epoch seconds>, \"grant\": \"G\", \"session\": \"S\",\n"
    "   \"message\": {...}}\n"
    "where `at` sets the clock (rate-limit windows follow it exactly) and grant/session\n"
    "override the flags for that line. Without `at` the wall clock is used. Blank lines are\n"
    "skipped; a line that is not JSON gives `invalid` and processing goes on.\n"
    "\n"
    "options:\n"
    "  --policy FILE   policy file (required)\n"
    "  --grant G       grant of every call without one in its envelope (default: anonymous)\n"
    "  --session S     session of every call without one in its envelope (default: none)\n";

// What an envelope line carries besides the message.
struct envelope {
  std::string_view message;  // raw JSON of the message, inside the line buffer
  bool has_at = false;
  int64_t at_ns = 0;
  std::string grant, session;
  bool has_grant = false, has_session = false;
};

// Recognises an envelope: a JSON object with a "message" member and no "jsonrpc" member.
// Returns false (and `error` set) for an envelope that is malformed; `is_envelope` tells
// whether the line is an envelope at all.
bool read_envelope(od::parser& parser, std::string& line, envelope& env, bool& is_envelope,
                   std::string& error) {
  is_envelope = false;
  od::document doc;
  if (parser.iterate(line.data(), line.size(), line.capacity()).get(doc)) return true;
  od::object obj;
  if (doc.get_object().get(obj)) return true;
  bool has_message = false, has_jsonrpc = false;
  for (auto fr : obj) {
    od::field f;
    if (std::move(fr).get(f)) return true;
    std::string_view key;
    if (f.unescaped_key().get(key)) return true;
    if (key == "jsonrpc") {
      has_jsonrpc = true;
    } else if (key == "message") {
      has_message = true;
      // An object (a message) or an array (a batch): keep its raw bytes to decide on.
      od::value v = f.value();
      od::json_type t;
      if (v.type().get(t)) return true;
      if (t == od::json_type::array) {
        od::array batch;
        if (v.get_array().get(batch) || batch.raw_json().get(env.message)) return true;
      } else {
        od::object message;
        if (v.get_object().get(message) || message.raw_json().get(env.message)) return true;
      }
    } else if (key == "at") {
      env.has_at = true;
      od::value v = f.value();
      od::json_type t;
      if (v.type().get(t)) return true;
      if (t == od::json_type::number) {
        double secs = 0;
        if (v.get_double().get(secs)) return true;
        env.at_ns = static_cast<int64_t>(secs * 1e9);
      } else {
        std::string_view text;
        if (v.get_string().get(text) || !parse_rfc3339(text, env.at_ns)) {
          error = "envelope: \"at\" must be an RFC 3339 time or epoch seconds";
        }
      }
    } else if (key == "grant" || key == "session") {
      std::string_view text;
      if (f.value().get_string().get(text)) {
        error = "envelope: \"" + std::string(key) + "\" must be a string";
      } else if (key == "grant") {
        env.grant = text;
        env.has_grant = true;
      } else {
        env.session = text;
        env.has_session = true;
      }
    }
  }
  is_envelope = has_message && !has_jsonrpc;
  return error.empty();
}

}  // namespace

bool parse_rfc3339(std::string_view s, int64_t& ns) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  auto digits = [&](size_t pos, size_t n, int& out) {
    if (pos + n > s.size()) return false;
    out = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, sec;
  if (!digits(0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(5, 2, mo) || s[7] != '-' ||
      !digits(8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(11, 2, h) ||
      s[13] != ':' || !digits(14, 2, mi) || s[16] != ':' || !digits(17, 2, sec))
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return false;
  size_t pos = 19;
  int64_t frac_ns = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int64_t scale = 100'000'000;
    const size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      frac_ns += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return false;
  }
  int64_t offset_s = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!digits(pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digits(pos + 4, 2, om))
      return false;
    offset_s = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return false;
  }
  if (pos != s.size()) return false;
  // Days from civil (Howard Hinnant's algorithm).
  const int yy = y - (mo <= 2);
  const int era = (yy >= 0 ? yy : yy - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(yy - era * 400);
  const unsigned doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const int64_t days = static_cast<int64_t>(era) * 146097 + doe - 719468;
  const int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_s;
  ns = secs * 1'000'000'000 + frac_ns;
  return true;
}

int run_eval(std::span<char* const> args) {
  std::string policy_path, grant, session, input = "-";
  bool have_input = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view a(args[i]);
    auto value = [&](std::string& out) {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "sluice eval: %s needs a value\n", args[i]);
        return false;
      }
      out = args[++i];
      return true;
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--policy") {
      if (!value(policy_path)) return 2;
    } else if (a == "--grant") {
      if (!value(grant)) return 2;
    } else if (a == "--session") {
      if (!value(session)) return 2;
    } else if (a.size() > 1 && a[0] == '-') {
      std::fprintf(stderr, "sluice eval: unknown option %s\n%s", args[i], kUsage);
      return 2;
    } else if (!have_input) {
      input = a;
      have_input = true;
    } else {
      std::fprintf(stderr, "sluice eval: more than one input\n");
      return 2;
    }
  }
  if (policy_path.empty()) {
    std::fprintf(stderr, "sluice eval: --policy FILE is required\n%s", kUsage);
    return 2;
  }
  policy::load_result loaded = policy::load_policy_file(policy_path);
  if (!loaded.errors.empty()) {
    for (const policy::load_error& e : loaded.errors)
      std::fprintf(stderr, "%s\n", e.to_string().c_str());
    return 1;
  }
  FILE* in = stdin;
  if (input != "-") {
    in = std::fopen(input.c_str(), "r");
    if (in == nullptr) {
      std::fprintf(stderr, "sluice eval: %s: %s\n", input.c_str(), std::strerror(errno));
      return 1;
    }
  }

  policy::limiter_shard limiter;
  policy::decider decider(policy::compiled_policy::compile(*loaded.policy), limiter);
  od::parser envelope_parser;
  std::string line, out;
  char* raw = nullptr;
  size_t raw_cap = 0;
  ssize_t n;
  while ((n = getline(&raw, &raw_cap, in)) >= 0) {
    line.assign(raw, static_cast<size_t>(n));
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
      line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    line.reserve(line.size() + simdjson::SIMDJSON_PADDING);  // the parsers read past the end

    envelope env;
    bool is_envelope = false;
    std::string env_error;
    out.clear();
    if (!read_envelope(envelope_parser, line, env, is_envelope, env_error)) {
      policy::decision d;
      d.what = policy::verdict::invalid;
      d.error = policy::rpc_error::invalid_request;
      d.reason = env_error;
      net::append_decision_body(out, d);
      out += "\n";
      std::fputs(out.c_str(), stdout);
      continue;
    }
    const std::string_view body = is_envelope ? env.message : std::string_view(line);
    const policy::identity who{env.has_grant ? std::string_view(env.grant) : grant,
                               env.has_session ? std::string_view(env.session) : session};
    const int64_t now = env.has_at ? env.at_ns : engine::wall_ns();
    const policy::body_decision& bd = decider.decide(body, who, now);
    net::append_decision_body(out, bd.overall);
    if (bd.batch) {
      out.pop_back();  // reopen the object to add the elements
      out += ",\"batch\":[";
      for (size_t i = 0; i < bd.each.size(); ++i) {
        if (i != 0) out += ",";
        net::append_decision_body(out, bd.each[i]);
      }
      out += "]}";
    }
    out += "\n";
    std::fputs(out.c_str(), stdout);
  }
  std::free(raw);
  if (in != stdin) std::fclose(in);
  std::fflush(stdout);
  return 0;
}

}  // namespace sluice::cli
