#include "policy/compiled_policy.h"

#include <re2/re2.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace sluice::policy {

namespace {

constexpr uint64_t kCounterSeed = 0x5bd1e9955bd1e995ull;
constexpr int64_t kNsPerSecond = 1'000'000'000;

std::string window_text(int64_t seconds) {
  switch (seconds) {
    case 1:
      return "second";
    case 60:
      return "minute";
    case 3600:
      return "hour";
    case 86400:
      return "day";
    default:
      return std::to_string(seconds) + " seconds";
  }
}

std::string scope_text(const limit_def& l) {
  switch (l.scope) {
    case scope_kind::global:
      return "";
    case scope_kind::grant:
      return " per grant";
    case scope_kind::session:
      return " per session";
    case scope_kind::arg:
      return " per value of " + l.arg.text;
  }
  return "";
}

std::string literal_text(const literal& v) {
  switch (v.type) {
    case literal::kind::null:
      return "null";
    case literal::kind::boolean:
      return v.boolean ? "true" : "false";
    case literal::kind::number: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", v.number);
      return buf;
    }
    case literal::kind::string:
      return "\"" + v.string + "\"";
    case literal::kind::list: {
      std::string s = "[";
      for (size_t i = 0; i < v.items.size(); ++i) {
        if (i != 0) s += ", ";
        s += literal_text(v.items[i]);
      }
      return s + "]";
    }
  }
  return "";
}

std::string_view op_text(check_op op) {
  switch (op) {
    case check_op::eq:
      return "eq";
    case check_op::neq:
      return "neq";
    case check_op::in:
      return "in";
    case check_op::not_in:
      return "not_in";
    case check_op::lt:
      return "lt";
    case check_op::lte:
      return "lte";
    case check_op::gt:
      return "gt";
    case check_op::gte:
      return "gte";
    case check_op::regex:
      return "regex";
    case check_op::contains:
      return "contains";
    case check_op::exists:
      return "exists";
    case check_op::not_exists:
      return "not_exists";
    case check_op::max_length:
      return "max_length";
  }
  return "?";
}

class compiler {
 public:
  compiler(arg_trie& args, compile_stats& stats, std::string_view counter_namespace)
      : args_(args), stats_(stats), namespace_(counter_namespace) {}

  compiled_limit limit(const limit_def& l) {
    compiled_limit c;
    c.counter = l.counter;
    // A namespaced counter hashes "NAMESPACE\0COUNTER": no counter name can collide with it.
    if (namespace_.empty()) {
      c.counter_hash = hash_string(l.counter, kCounterSeed);
    } else {
      std::string key(namespace_);
      key += '\0';
      key += l.counter;
      c.counter_hash = hash_string(key, kCounterSeed);
    }
    c.window_ns = l.window_seconds * kNsPerSecond;
    c.max = static_cast<uint32_t>(l.max);
    c.scope = l.scope;
    if (l.scope == scope_kind::arg) c.slot = args_.add(l.arg);
    c.pointer = l.pointer;
    c.reason = "rate limit exceeded: counter '" + l.counter + "' allows " + std::to_string(l.max) +
               " per " + window_text(l.window_seconds) + scope_text(l);
    return c;
  }

  compiled_check check(const check_def& d, const std::string& rule_reason, bool is_require) {
    compiled_check c;
    c.slot = args_.add(d.path);
    c.op = d.op;
    c.value = d.value;
    c.pointer = d.pointer;
    if (d.op == check_op::regex) {
      RE2::Options opts;
      opts.set_log_errors(false);
      c.re = std::make_shared<const RE2>(d.value.string, opts);
      c.range = regex_range::of(*c.re);
    }
    if (!rule_reason.empty()) {
      c.reason = rule_reason;
    } else {
      std::string what = d.path.text + " " + std::string(op_text(d.op));
      if (d.op != check_op::exists && d.op != check_op::not_exists)
        what += " " + literal_text(d.value);
      c.reason = is_require ? "argument check failed: required " + what
                            : "argument check matched: " + what;
    }
    ++stats_.checks;
    return c;
  }

  // A rule from its definition; `shared` are the all_tools limits that also apply.
  compiled_rule rule(const rule_def& d, const std::vector<compiled_limit>& shared) {
    compiled_rule r;
    r.act = d.act;
    r.pointer = d.pointer;
    if (!d.reason.empty()) {
      r.reason = d.reason;
    } else if (d.act == action::deny) {
      r.reason = "denied by policy rule " + d.pointer;
    } else if (d.act == action::require_approval) {
      r.reason = "requires a human's approval (policy rule " + d.pointer + ")";
    }
    for (const check_def& c : d.require)
      r.require.push_back(check(c, d.reason, true));
    for (const check_def& c : d.deny_if)
      r.deny_if.push_back(check(c, d.reason, false));
    for (const limit_def& l : d.limits)
      add_limit(r.limits, limit(l));
    for (const compiled_limit& l : shared)
      add_limit(r.limits, l);
    stats_.limits += d.limits.size();
    return r;
  }

  // A call counts once per counter: a second limit on the same counter tightens the max.
  static void add_limit(std::vector<compiled_limit>& limits, const compiled_limit& l) {
    for (compiled_limit& have : limits) {
      if (have.counter == l.counter) {
        if (l.max < have.max) have = l;
        return;
      }
    }
    limits.push_back(l);
  }

 private:
  arg_trie& args_;
  compile_stats& stats_;
  std::string_view namespace_;
};

void build_section(rule_table& table, const std::vector<rule_def>& defs, compiler& c,
                   const std::vector<compiled_limit>& shared) {
  for (const rule_def& d : defs) {
    const auto idx = static_cast<uint32_t>(table.rules.size());
    table.rules.push_back(c.rule(d, shared));
    if (d.is_pattern) {
      table.patterns.add(d.key, idx);
    } else {
      table.exact.emplace(d.key, idx);
    }
  }
}

}  // namespace

const compiled_rule& rule_table::find(std::string_view name) const {
  if (auto it = exact.find(name); it != exact.end()) return rules[it->second];
  if (!hide_patterns.empty()) {
    if (uint32_t i = hide_patterns.match(name); i != pattern_set::kNone) return rules[i];
  }
  if (!patterns.empty()) {
    if (uint32_t i = patterns.match(name); i != pattern_set::kNone) return rules[i];
  }
  return rules[fallback];
}

std::shared_ptr<const compiled_policy> compiled_policy::compile(
    const policy_def& def, std::string_view counter_namespace) {
  auto p = std::make_shared<compiled_policy>();
  p->source_ = def.source;
  compiler c(p->args_, p->stats_, counter_namespace);

  std::vector<compiled_limit> shared;
  for (const limit_def& l : def.all_tools)
    compiler::add_limit(shared, c.limit(l));
  p->stats_.limits += def.all_tools.size();

  // tools: entries, then hide (which overrides exact entries), then the default.
  rule_table& tools = p->tools_;
  build_section(tools, def.tools, c, shared);
  for (const hide_def& h : def.hide) {
    const auto idx = static_cast<uint32_t>(tools.rules.size());
    compiled_rule r;
    r.act = action::deny;
    r.hidden = true;
    r.pointer = h.pointer;
    r.reason = "tool is hidden by policy";
    tools.rules.push_back(std::move(r));
    if (h.is_pattern) {
      tools.hide_patterns.add(h.key, idx);
    } else {
      tools.exact.insert_or_assign(h.key, idx);
    }
    ++p->stats_.hidden;
  }
  if (!tools.hide_patterns.empty()) {
    for (auto& [name, idx] : tools.exact) {
      if (tools.rules[idx].hidden) continue;
      if (uint32_t h = tools.hide_patterns.match(name); h != pattern_set::kNone) idx = h;
    }
  }
  {
    compiled_rule fallback;
    fallback.act = def.default_action;
    fallback.pointer = "/default";
    if (def.default_action == action::deny)
      fallback.reason = "no policy rule allows this tool (default: deny)";
    fallback.limits = shared;
    tools.fallback = static_cast<uint32_t>(tools.rules.size());
    tools.rules.push_back(std::move(fallback));
  }

  auto finish = [&](rule_table& table, bool present, const char* what) {
    compiled_rule fallback;
    fallback.act = present ? def.default_action : action::allow;
    fallback.pointer = present ? "/default" : "";
    if (fallback.act == action::deny)
      fallback.reason = std::string("no policy rule allows this ") + what + " (default: deny)";
    table.fallback = static_cast<uint32_t>(table.rules.size());
    table.rules.push_back(std::move(fallback));
  };
  build_section(p->resources_, def.resources, c, {});
  finish(p->resources_, def.has_resources, "resource");
  build_section(p->prompts_, def.prompts, c, {});
  finish(p->prompts_, def.has_prompts, "prompt");

  p->stats_.tools = def.tools.size();
  p->stats_.tool_patterns = tools.patterns.size();
  p->stats_.resources = def.resources.size();
  p->stats_.prompts = def.prompts.size();
  std::vector<std::string_view> counters;
  for (const auto* table : {&p->tools_, &p->resources_, &p->prompts_})
    for (const compiled_rule& r : table->rules)
      for (const compiled_limit& l : r.limits)
        counters.push_back(l.counter);
  std::sort(counters.begin(), counters.end());
  p->stats_.counters =
      static_cast<size_t>(std::unique(counters.begin(), counters.end()) - counters.begin());
  return p;
}

}  // namespace sluice::policy
