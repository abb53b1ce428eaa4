#include "tools/sluice/init_policy.h"

#include "policy/json_text.h"

#include <algorithm>
#include <cstdio>
#include <set>

namespace sluice::init {

namespace {

// Per-grant limits are per tool: a busy tool does not starve the others.
constexpr profile kProfiles[] = {
    {"strict",
     {rule_action::allow, 60},
     {rule_action::require_approval, 0},
     {rule_action::require_approval, 0},
     {rule_action::deny, 0}},
    {"default",
     {rule_action::allow, 0},
     {rule_action::allow, 60},
     {rule_action::allow, 10},
     {rule_action::require_approval, 0}},
    {"permissive",
     {rule_action::allow, 0},
     {rule_action::allow, 0},
     {rule_action::allow, 60},
     {rule_action::require_approval, 0}},
};

std::string counter_name(std::string_view tool) {
  return std::string(tool) + "_rate";
}

std::string_view action_name(rule_action a) {
  switch (a) {
    case rule_action::allow:
      return "allow";
    case rule_action::deny:
      return "deny";
    case rule_action::require_approval:
      return "require_approval";
  }
  return "deny";
}

}  // namespace

const class_rule& profile::for_class(tool_class c) const {
  switch (c) {
    case tool_class::read:
      return read;
    case tool_class::write:
      return write;
    case tool_class::execute:
      return execute;
    case tool_class::destructive:
      return destructive;
  }
  return destructive;
}

std::optional<profile> find_profile(std::string_view name) {
  for (const profile& p : kProfiles) {
    if (p.name == name) return p;
  }
  return std::nullopt;
}

std::vector<classified_tool> classify_all(std::vector<tool_info> tools) {
  std::vector<classified_tool> out;
  out.reserve(tools.size());
  std::set<std::string> seen;
  for (tool_info& t : tools) {
    classified_tool ct;
    ct.cls = classify(t);
    if (!seen.insert(t.name).second) {
      ct.included = false;
      ct.skip_reason = "listed twice; the first one counts";
    } else if (t.name.find_first_of("*?") != std::string::npos) {
      ct.included = false;
      ct.skip_reason =
          "name holds '*' or '?', which a policy key reads as a glob; left to default deny";
    }
    ct.tool = std::move(t);
    out.push_back(std::move(ct));
  }
  return out;
}

std::string rule_summary(const classified_tool& t, const profile& p) {
  if (!t.included) return "none (default deny)";
  const class_rule& r = p.for_class(t.cls.cls);
  std::string s(action_name(r.action));
  if (r.action == rule_action::allow && r.per_minute != 0)
    s.append(" ").append(std::to_string(r.per_minute)).append("/min/grant");  // GCC 12 -Wrestrict
  return s;
}

std::string rule_reason(const classified_tool& t, const profile& p) {
  const class_rule& r = p.for_class(t.cls.cls);
  std::string s = std::string(to_string(t.cls.cls)) + " tool (risk " +
                  std::string(to_string(t.cls.risk)) + ", by " +
                  std::string(to_string(t.cls.decided_by)) + "): ";
  switch (r.action) {
    case rule_action::allow:
      s += r.per_minute == 0
               ? "allowed"
               : "allowed, at most " + std::to_string(r.per_minute) + " calls a minute per grant";
      break;
    case rule_action::require_approval:
      s += "needs a human's approval";
      break;
    case rule_action::deny:
      s += "denied by the " + std::string(p.name) + " profile";
      break;
  }
  return s;
}

namespace {

// The rule object of one tool, on one line.
void append_rule(std::string& out, const classified_tool& t, const profile& p) {
  const class_rule& r = p.for_class(t.cls.cls);
  out += "{";
  if (r.action != rule_action::allow) {
    out += "\"action\": \"";
    out += action_name(r.action);
    out += "\", ";
  }
  out += "\"reason\": ";
  append_json_string(out, rule_reason(t, p));
  if (r.action == rule_action::allow && r.per_minute != 0) {
    out += ", \"limits\": [{\"counter\": ";
    append_json_string(out, counter_name(t.tool.name));
    out += ", \"window\": \"minute\", \"max\": " + std::to_string(r.per_minute) +
           ", \"scope\": \"grant\"}]";
  }
  out += "}";
}

void append_policy(std::string& out, const std::vector<classified_tool>& tools, const profile& p,
                   std::string_view indent) {
  out += "{\n";
  out += indent;
  out += "  \"version\": \"1\",\n";
  out += indent;
  out += "  \"default\": \"deny\",\n";
  out += indent;
  out += "  \"tools\": {";
  bool first = true;
  for (const classified_tool& t : tools) {
    if (!t.included) continue;
    out += first ? "\n" : ",\n";
    first = false;
    out += indent;
    out += "    ";
    append_json_string(out, t.tool.name);
    out += ": ";
    append_rule(out, t, p);
  }
  if (!first) {
    out += "\n";
    out += indent;
    out += "  ";
  }
  out += "}\n";
  out += indent;
  out += "}";
}

std::string pad(std::string_view s, size_t width) {
  std::string out(s);
  if (out.size() < width) out.append(width - out.size(), ' ');
  return out;
}

}  // namespace

std::string render_policy(const std::vector<classified_tool>& tools, const profile& p) {
  std::string out;
  append_policy(out, tools, p, "");
  out += "\n";
  return out;
}

std::string render_explain(const std::vector<classified_tool>& tools, const profile& p) {
  const std::vector<std::string> head = {"TOOL", "CLASS", "RISK", "SIGNAL", "RULE", "WHY"};
  std::vector<std::vector<std::string>> rows;
  for (const classified_tool& t : tools) {
    std::string why = t.cls.detail;
    if (!t.included) why += "; left out: " + t.skip_reason;
    rows.push_back({t.tool.name, std::string(to_string(t.cls.cls)),
                    std::string(to_string(t.cls.risk)), std::string(to_string(t.cls.decided_by)),
                    rule_summary(t, p), why});
  }
  std::vector<size_t> width(head.size());
  for (size_t i = 0; i < head.size(); ++i)
    width[i] = head[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i + 1 < row.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size(); ++i) {
      out += i + 1 < row.size() ? pad(row[i], width[i] + 2) : row[i];
    }
    out += "\n";
  };
  line(head);
  for (const auto& row : rows)
    line(row);
  size_t counts[4] = {};
  for (const classified_tool& t : tools)
    ++counts[static_cast<size_t>(t.cls.cls)];
  out += "\n" + std::to_string(tools.size()) + " tools: " + std::to_string(counts[0]) + " read, " +
         std::to_string(counts[1]) + " write, " + std::to_string(counts[2]) + " execute, " +
         std::to_string(counts[3]) + " destructive; profile " + std::string(p.name) +
         "; default deny\n";
  return out;
}

std::string render_json(const std::vector<classified_tool>& tools, const profile& p,
                        const server_facts& server) {
  std::string out = "{\"server\": {\"name\": ";
  append_json_string(out, server.name);
  out += ", \"version\": ";
  append_json_string(out, server.version);
  out += ", \"protocolVersion\": ";
  append_json_string(out, server.protocol_version);
  out += "},\n \"profile\": ";
  append_json_string(out, p.name);
  out += ",\n \"tools\": [";
  bool first = true;
  for (const classified_tool& t : tools) {
    out += first ? "\n  " : ",\n  ";
    first = false;
    out += "{\"name\": ";
    append_json_string(out, t.tool.name);
    out += ", \"class\": \"";
    out += to_string(t.cls.cls);
    out += "\", \"risk\": \"";
    out += to_string(t.cls.risk);
    out += "\", \"signal\": \"";
    out += to_string(t.cls.decided_by);
    out += "\", \"detail\": ";
    append_json_string(out, t.cls.detail);
    out += ", \"included\": ";
    out += t.included ? "true" : "false";
    if (t.included) {
      out += ", \"rule\": ";
      append_rule(out, t, p);
    } else {
      out += ", \"skipped\": ";
      append_json_string(out, t.skip_reason);
    }
    out += "}";
  }
  out += first ? "],\n" : "\n ],\n";
  out += " \"policy\": ";
  append_policy(out, tools, p, " ");
  out += "}\n";
  return out;
}

}  // namespace sluice::init
