#include "tools/sluice/init_classify.h"

#include <array>
#include <vector>

namespace sluice::init {

namespace {

struct verb {
  std::string_view word;
  tool_class cls;
};

// Verbs by class. A word in none of them says nothing. Keep docs/risk.md in step.
constexpr std::array kVerbs = {
    // read: look, do not touch
    verb{"get", tool_class::read},
    verb{"list", tool_class::read},
    verb{"describe", tool_class::read},
    verb{"read", tool_class::read},
    verb{"fetch", tool_class::read},
    verb{"search", tool_class::read},
    verb{"find", tool_class::read},
    verb{"show", tool_class::read},
    verb{"view", tool_class::read},
    verb{"lookup", tool_class::read},
    verb{"inspect", tool_class::read},
    verb{"retrieve", tool_class::read},
    verb{"count", tool_class::read},
    verb{"browse", tool_class::read},
    verb{"query", tool_class::read},
    verb{"return", tool_class::read},
    verb{"echo", tool_class::read},
    verb{"check", tool_class::read},
    verb{"validate", tool_class::read},
    verb{"explain", tool_class::read},
    verb{"summarize", tool_class::read},
    verb{"preview", tool_class::read},
    verb{"download", tool_class::read},
    verb{"stat", tool_class::read},
    verb{"ping", tool_class::read},
    verb{"export", tool_class::read},
    // write: change state, additively or in place
    verb{"create", tool_class::write},
    verb{"update", tool_class::write},
    verb{"put", tool_class::write},
    verb{"set", tool_class::write},
    verb{"add", tool_class::write},
    verb{"write", tool_class::write},
    verb{"insert", tool_class::write},
    verb{"upload", tool_class::write},
    verb{"edit", tool_class::write},
    verb{"modify", tool_class::write},
    verb{"patch", tool_class::write},
    verb{"save", tool_class::write},
    verb{"rename", tool_class::write},
    verb{"move", tool_class::write},
    verb{"copy", tool_class::write},
    verb{"append", tool_class::write},
    verb{"tag", tool_class::write},
    verb{"attach", tool_class::write},
    verb{"assign", tool_class::write},
    verb{"post", tool_class::write},
    verb{"send", tool_class::write},
    verb{"publish", tool_class::write},
    verb{"notify", tool_class::write},
    verb{"enable", tool_class::write},
    verb{"disable", tool_class::write},
    verb{"toggle", tool_class::write},
    verb{"register", tool_class::write},
    verb{"import", tool_class::write},
    verb{"commit", tool_class::write},
    verb{"merge", tool_class::write},
    verb{"push", tool_class::write},
    verb{"comment", tool_class::write},
    verb{"reply", tool_class::write},
    verb{"upsert", tool_class::write},
    verb{"replace", tool_class::write},
    verb{"archive", tool_class::write},
    // execute: start something that runs
    verb{"start", tool_class::execute},
    verb{"run", tool_class::execute},
    verb{"invoke", tool_class::execute},
    verb{"execute", tool_class::execute},
    verb{"exec", tool_class::execute},
    verb{"call", tool_class::execute},
    verb{"trigger", tool_class::execute},
    verb{"launch", tool_class::execute},
    verb{"deploy", tool_class::execute},
    verb{"apply", tool_class::execute},
    verb{"submit", tool_class::execute},
    verb{"build", tool_class::execute},
    verb{"restart", tool_class::execute},
    verb{"stop", tool_class::execute},
    verb{"reboot", tool_class::execute},
    verb{"schedule", tool_class::execute},
    verb{"spawn", tool_class::execute},
    verb{"eval", tool_class::execute},
    verb{"evaluate", tool_class::execute},
    verb{"dispatch", tool_class::execute},
    verb{"process", tool_class::execute},
    verb{"shell", tool_class::execute},
    verb{"simulate", tool_class::execute},
    verb{"generate", tool_class::execute},
    verb{"cancel", tool_class::execute},
    verb{"retry", tool_class::execute},
    verb{"resume", tool_class::execute},
    verb{"pause", tool_class::execute},
    verb{"sync", tool_class::execute},
    verb{"migrate", tool_class::execute},
    verb{"install", tool_class::execute},
    verb{"train", tool_class::execute},
    // destructive: lose data or access for good
    verb{"delete", tool_class::destructive},
    verb{"remove", tool_class::destructive},
    verb{"rm", tool_class::destructive},
    verb{"del", tool_class::destructive},
    verb{"drop", tool_class::destructive},
    verb{"destroy", tool_class::destructive},
    verb{"terminate", tool_class::destructive},
    verb{"kill", tool_class::destructive},
    verb{"purge", tool_class::destructive},
    verb{"truncate", tool_class::destructive},
    verb{"wipe", tool_class::destructive},
    verb{"erase", tool_class::destructive},
    verb{"revoke", tool_class::destructive},
    verb{"uninstall", tool_class::destructive},
    verb{"overwrite", tool_class::destructive},
    verb{"clear", tool_class::destructive},
    verb{"reset", tool_class::destructive},
    verb{"unlink", tool_class::destructive},
};

std::optional<tool_class> lookup(std::string_view w) {
  for (const verb& v : kVerbs) {
    if (v.word == w) return v.cls;
  }
  return std::nullopt;
}

bool is_upper(char c) {
  return c >= 'A' && c <= 'Z';
}
bool is_lower(char c) {
  return c >= 'a' && c <= 'z';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
char lower(char c) {
  return is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c;
}

// Splits a tool name into lower-case words: on anything not a letter or digit, and on
// camelCase boundaries ("getUser" -> get, user; "HTTPRequest" -> http, request).
std::vector<std::string> name_words(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(std::move(cur));
    cur.clear();
  };
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (!is_upper(c) && !is_lower(c) && !is_digit(c)) {
      flush();
      continue;
    }
    if (is_upper(c) && !cur.empty()) {
      const char prev = s[i - 1];
      const bool next_lower = i + 1 < s.size() && is_lower(s[i + 1]);
      if (is_lower(prev) || is_digit(prev) || (is_upper(prev) && next_lower)) flush();
    }
    cur += lower(c);
  }
  flush();
  return out;
}

// Lower-case runs of letters of a description.
std::vector<std::string> prose_words(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  for (const char c : s) {
    if (is_upper(c) || is_lower(c)) {
      cur += lower(c);
    } else if (!cur.empty()) {
      out.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

struct verb_hit {
  tool_class cls;
  std::string word;
};

// The name's class: a destructive verb anywhere wins (safer to over-ask than to under-ask);
// otherwise the first verb decides ("get_run_status" is a read, "run_query" an execute).
std::optional<verb_hit> name_verb(std::string_view name) {
  std::optional<verb_hit> first;
  for (std::string& w : name_words(name)) {
    const std::optional<tool_class> c = verb_class(w);
    if (!c) continue;
    if (*c == tool_class::destructive) return verb_hit{*c, std::move(w)};
    if (!first) first = verb_hit{*c, std::move(w)};
  }
  return first;
}

// The description's class: its first known verb ("Lists buckets; never deletes them" is a read).
std::optional<verb_hit> description_verb(std::string_view text) {
  for (std::string& w : prose_words(text)) {
    if (const std::optional<tool_class> c = verb_class(w)) return verb_hit{*c, std::move(w)};
  }
  return std::nullopt;
}

risk_level base_risk(tool_class c) {
  switch (c) {
    case tool_class::read:
      return risk_level::low;
    case tool_class::write:
    case tool_class::execute:
      return risk_level::medium;
    case tool_class::destructive:
      return risk_level::high;
  }
  return risk_level::high;
}

}  // namespace

std::optional<tool_class> verb_class(std::string_view word) {
  std::string w;
  w.reserve(word.size());
  for (const char c : word)
    w += lower(c);
  if (auto c = lookup(w)) return c;
  // Third person: lists, pushes, queries.
  if (w.size() > 3 && w.ends_with("ies")) {
    if (auto c = lookup(w.substr(0, w.size() - 3) + "y")) return c;
  }
  if (w.size() > 2 && w.ends_with("es")) {
    if (auto c = lookup(std::string_view(w).substr(0, w.size() - 2))) return c;
  }
  if (w.size() > 1 && w.ends_with('s')) {
    if (auto c = lookup(std::string_view(w).substr(0, w.size() - 1))) return c;
  }
  return std::nullopt;
}

classification classify(const tool_info& tool) {
  const hints& h = tool.annotations;
  classification out;
  bool decided = false;

  if (h.read_only == true) {
    out.cls = tool_class::read;
    out.decided_by = signal_kind::annotations;
    out.detail = "readOnlyHint=true";
    decided = true;
  } else if (h.read_only == false && h.destructive != false) {
    out.cls = tool_class::destructive;
    out.decided_by = signal_kind::annotations;
    out.detail = h.destructive ? "readOnlyHint=false, destructiveHint=true"
                               : "readOnlyHint=false, no destructiveHint (MCP default: true)";
    decided = true;
  } else if (!h.read_only && h.destructive == true) {
    out.cls = tool_class::destructive;
    out.decided_by = signal_kind::annotations;
    out.detail = "destructiveHint=true";
    decided = true;
  } else if (h.read_only == false && h.destructive == false) {
    // It changes state without destroying: a write, unless its words say it runs something.
    out.cls = tool_class::write;
    out.decided_by = signal_kind::annotations;
    out.detail = "readOnlyHint=false, destructiveHint=false";
    const std::optional<verb_hit> nv = name_verb(tool.name);
    const std::optional<verb_hit> dv = nv ? std::nullopt : description_verb(tool.description);
    if (nv && nv->cls == tool_class::execute) {
      out.cls = tool_class::execute;
      out.decided_by = signal_kind::annotations_name;
      out.detail += ", name verb '" + nv->word + "'";
    } else if (dv && dv->cls == tool_class::execute) {
      out.cls = tool_class::execute;
      out.decided_by = signal_kind::annotations_description;
      out.detail += ", description verb '" + dv->word + "'";
    }
    decided = true;
  }

  if (!decided) {
    if (std::optional<verb_hit> nv = name_verb(tool.name)) {
      out.cls = nv->cls;
      out.decided_by = signal_kind::name;
      out.detail = "name verb '" + nv->word + "'";
    } else if (std::optional<verb_hit> dv = description_verb(tool.description)) {
      out.cls = dv->cls;
      out.decided_by = signal_kind::description;
      out.detail = "description verb '" + dv->word + "'";
    } else {
      out.cls = tool_class::execute;
      out.decided_by = signal_kind::fallback;
      out.detail = "no annotation or known verb";
    }
  }

  out.risk = base_risk(out.cls);
  if (h.open_world == true && out.risk != risk_level::high) {
    out.risk = out.risk == risk_level::low ? risk_level::medium : risk_level::high;
    out.detail += "; openWorldHint=true raises the risk";
  }
  return out;
}

std::string_view to_string(tool_class c) {
  switch (c) {
    case tool_class::read:
      return "read";
    case tool_class::write:
      return "write";
    case tool_class::execute:
      return "execute";
    case tool_class::destructive:
      return "destructive";
  }
  return "execute";
}

std::string_view to_string(risk_level r) {
  switch (r) {
    case risk_level::low:
      return "low";
    case risk_level::medium:
      return "medium";
    case risk_level::high:
      return "high";
  }
  return "high";
}

std::string_view to_string(signal_kind s) {
  switch (s) {
    case signal_kind::annotations:
      return "annotations";
    case signal_kind::annotations_name:
      return "annotations+name";
    case signal_kind::annotations_description:
      return "annotations+description";
    case signal_kind::name:
      return "name";
    case signal_kind::description:
      return "description";
    case signal_kind::fallback:
      return "fallback";
  }
  return "fallback";
}

}  // namespace sluice::init
