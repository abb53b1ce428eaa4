#include "net/tools_filter.h"

#include <simdjson.h>

#include <cstring>
#include <vector>

namespace sluice::net {

namespace od = simdjson::ondemand;

struct tools_filter::impl {
  od::parser outer, inner;
  simdjson::dom::parser validator;  // On Demand skips what it does not read: validate first
  std::string padded;               // the input, with SIMDJSON_PADDING readable bytes after it
  struct splice {
    size_t begin, end;  // replace json[begin, end) (the inside of a tools array)
    std::vector<std::string_view> kept;
  };
  std::vector<splice> splices;
  size_t removed = 0;

  // The name of one tool entry (its raw JSON), when it has exactly one string "name".
  bool entry_name(std::string_view raw, std::string_view& name) {
    od::document doc;
    const size_t room = static_cast<size_t>(padded.data() + padded.capacity() - raw.data());
    if (inner.iterate(raw.data(), raw.size(), room).get(doc)) return false;
    od::object o;
    if (doc.get_object().get(o)) return false;
    bool found = false;
    for (auto fr : o) {
      od::field f;
      if (std::move(fr).get(f)) return false;
      std::string_view key;
      if (f.unescaped_key().get(key)) return false;
      if (key != "name") continue;
      if (found) return false;  // duplicate "name": refuse to guess which one a client reads
      found = true;
      if (f.value().get_string().get(name)) return false;
    }
    return found;
  }

  bool tools_array(od::value v, const policy::compiled_policy& policy) {
    const char* open = v.raw_json_token().data();  // '['
    od::array arr;
    if (v.get_array().get(arr)) return false;
    splice s{static_cast<size_t>(open + 1 - padded.data()), 0, {}};
    for (auto er : arr) {
      od::value el;
      if (std::move(er).get(el)) return false;
      od::json_type t;
      if (el.type().get(t)) return false;
      std::string_view raw;
      if (t == od::json_type::object) {
        od::object o;
        if (el.get_object().get(o) || o.raw_json().get(raw)) return false;
      } else {
        raw = el.raw_json_token();  // a scalar entry: not a tool, kept as it is
        while (!raw.empty() && std::strchr(" \t\r\n", raw.back()) != nullptr)
          raw.remove_suffix(1);
        if (t == od::json_type::array) {
          od::array a;
          if (el.get_array().get(a) || a.raw_json().get(raw)) return false;
        } else {
          std::string_view skip;
          (void)el.raw_json_token();
          if (t == od::json_type::string && el.get_string().get(skip)) return false;
          if (t != od::json_type::string) {
            double d;
            bool b;
            if (t == od::json_type::number && el.get_double().get(d)) return false;
            if (t == od::json_type::boolean && el.get_bool().get(b)) return false;
          }
        }
        s.kept.push_back(raw);
        continue;
      }
      std::string_view name;
      // Copy the name before the next entry reuses the inner parser's buffers.
      if (entry_name(raw, name) && policy.tool_listed(name)) {
        s.kept.push_back(raw);
      } else {
        ++removed;
      }
    }
    const char* after = nullptr;
    if (outer_doc->current_location().get(after)) after = padded.data() + padded.size();
    const char* close = after - 1;
    while (close > open && *close != ']')
      --close;
    s.end = static_cast<size_t>(close - padded.data());
    splices.push_back(std::move(s));
    return true;
  }

  // A JSON-RPC response object: look for result.tools.
  bool response(od::object o, const policy::compiled_policy& policy) {
    for (auto fr : o) {
      od::field f;
      if (std::move(fr).get(f)) return false;
      std::string_view key;
      if (f.unescaped_key().get(key)) return false;
      if (key != "result") continue;
      od::object result;
      if (f.value().get_object().get(result)) return true;  // not an object: nothing to filter
      for (auto rr : result) {
        od::field rf;
        if (std::move(rr).get(rf)) return false;
        std::string_view rkey;
        if (rf.unescaped_key().get(rkey)) return false;
        if (rkey != "tools") continue;
        od::json_type t;
        if (rf.value().type().get(t)) return false;
        if (t == od::json_type::array && !tools_array(rf.value(), policy)) return false;
      }
    }
    return true;
  }

  od::document* outer_doc = nullptr;
};

tools_filter::tools_filter() : impl_(std::make_unique<impl>()) {}
tools_filter::~tools_filter() = default;

bool tools_filter::filter(std::string_view json, const policy::compiled_policy& policy,
                          std::string& out) {
  impl& m = *impl_;
  m.splices.clear();
  m.removed = 0;
  m.padded.assign(json);
  m.padded.reserve(json.size() + simdjson::SIMDJSON_PADDING);
  // tools/list answers are rare: a full DOM parse first makes sure what is spliced is JSON.
  simdjson::dom::element root;
  if (m.validator.parse(m.padded.data(), m.padded.size(), false).get(root)) return false;
  od::document doc;
  m.outer_doc = &doc;
  if (m.outer.iterate(m.padded.data(), m.padded.size(), m.padded.capacity()).get(doc)) return false;
  od::json_type t;
  if (doc.type().get(t)) return false;
  bool ok = true;
  if (t == od::json_type::object) {
    od::object o;
    ok = !doc.get_object().get(o) && m.response(o, policy);
  } else if (t == od::json_type::array) {
    od::array a;
    if (doc.get_array().get(a)) return false;
    for (auto er : a) {
      od::value el;
      od::object o;
      if (std::move(er).get(el) || el.get_object().get(o) || !m.response(o, policy)) {
        ok = false;
        break;
      }
    }
  }
  if (!ok) return false;
  // Splice: everything as it came, except the inside of each filtered tools array.
  size_t at = 0;
  for (const impl::splice& s : m.splices) {
    out.append(m.padded, at, s.begin - at);
    for (size_t i = 0; i < s.kept.size(); ++i) {
      if (i != 0) out.push_back(',');
      out.append(s.kept[i]);
    }
    at = s.end;
  }
  out.append(m.padded, at, std::string::npos);
  removed_ = m.removed;
  return true;
}

void sse_splitter::feed(std::string_view bytes,
                        const std::function<void(std::string_view)>& on_event) {
  buf_.append(bytes);
  // Lines end with "\n", "\r\n" or "\r" (the SSE spec); an empty line ends an event. A "\r"
  // at the very end may be the first half of "\r\n": wait for the next byte to know. Each
  // byte is searched once, however long its line: a line that never ends costs linear time.
  size_t event_start = 0;
  size_t line_start = line_start_;  // start of the first line not yet seen whole
  size_t pos = scanned_;            // bytes before it hold no line end after line_start
  while (true) {
    const size_t eol = buf_.find_first_of("\r\n", pos);
    if (eol == std::string::npos) {
      pos = buf_.size();
      break;
    }
    size_t next = eol + 1;
    if (buf_[eol] == '\r') {
      if (next == buf_.size()) {
        pos = eol;  // look at this "\r" again with the next byte
        break;
      }
      if (buf_[next] == '\n') ++next;
    }
    const bool empty_line = eol == line_start;
    line_start = pos = next;
    if (empty_line) {
      on_event(std::string_view(buf_).substr(event_start, line_start - event_start));
      event_start = line_start;
    }
  }
  buf_.erase(0, event_start);
  line_start_ = line_start - event_start;
  scanned_ = pos - event_start;
}

void filter_sse_event(std::string_view event, tools_filter& filter,
                      const policy::compiled_policy& policy, std::string& out) {
  // Gather the data lines; keep the others (event:, id:, retry:, comments) as they are.
  std::string data;
  std::string other;
  size_t data_lines = 0;
  size_t pos = 0;
  while (pos < event.size()) {
    size_t eol = event.find_first_of("\r\n", pos);
    if (eol == std::string_view::npos) eol = event.size();
    const std::string_view line = event.substr(pos, eol - pos);
    size_t next = eol;
    if (next < event.size() && event[next] == '\r') ++next;
    if (next < event.size() && event[next] == '\n' && (next == eol || event[eol] == '\r')) ++next;
    if (next == eol) ++next;
    pos = next;
    if (line.empty()) continue;
    if (line.substr(0, 5) == "data:") {
      std::string_view v = line.substr(5);
      if (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      if (data_lines++ != 0) data.push_back('\n');
      data.append(v);
    } else {
      other.append(line);
      other.push_back('\n');
    }
  }
  std::string filtered;
  // A key can spell "tools" only literally or with \u escapes ("\u0074ools"): skip the parse
  // only when neither can be there.
  const bool may_list_tools =
      data.find("\"tools\"") != std::string::npos || data.find("\\u") != std::string::npos;
  if (data_lines == 0 || !may_list_tools) {
    out.append(event);
    return;
  }
  if (!filter.filter(data, policy, filtered)) {
    // Fail closed: data that might list tools but cannot be read is not relayed.
    out.append(": sluice dropped an event it could not read\n\n");
    return;
  }
  if (filter.removed() == 0) {
    out.append(event);
    return;
  }
  out.append(other);
  // One data line per line of the filtered text: the data joined its lines with '\n', which a
  // single data line cannot hold (it would end the line, or with an empty line the event).
  std::string_view rest = filtered;
  for (;;) {
    const size_t nl = rest.find('\n');
    out.append("data: ");
    out.append(rest.substr(0, nl));
    out.push_back('\n');
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  out.push_back('\n');
}

}  // namespace sluice::net
