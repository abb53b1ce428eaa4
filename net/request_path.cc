#include "net/request_path.h"

namespace sluice::net {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool unreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// In an absolute-form target ("http://host:port/path?query", scheme in any case), where its
// path starts (the end, or a '?', when it has none); 0 for any other target.
size_t absolute_form_path(std::string_view target) {
  size_t at = 0;
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.size() < scheme.size()) continue;
    bool match = true;
    for (size_t i = 0; i < scheme.size() && match; ++i) {
      char c = target[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      match = c == scheme[i];
    }
    if (match) at = scheme.size();
  }
  if (at == 0) return 0;
  const size_t end = target.find_first_of("/?", at);
  const size_t path_at = end == std::string_view::npos ? target.size() : end;
  return path_at > at ? path_at : 0;  // an empty authority is no absolute-form
}

}  // namespace

bool normalize_request_path(std::string_view target, std::string& out, std::string_view& error) {
  std::string_view path;
  if (!normalized_path(target, out, path, error)) return false;
  if (path.data() != out.data()) out.assign(path);
  return true;
}

bool normalized_path(std::string_view target, std::string& scratch, std::string_view& path,
                     std::string_view& error) {
  // The common case, in one pass: a path with nothing to decode, no query and no segment
  // starting with '.' is its own normal form.
  bool plain = !target.empty() && target.front() == '/';
  for (size_t i = 1; plain && i < target.size(); ++i) {
    const char c = target[i];
    plain = c != '%' && c != '\\' && c != '?' && !(c == '.' && target[i - 1] == '/');
  }
  if (plain) {
    path = target;
    return true;
  }
  std::string& out = scratch;
  out.clear();
  if (const size_t path_at = absolute_form_path(target); path_at != 0) {
    // RFC 9112 3.2.2: a server must accept the absolute-form (what a client sends to a
    // forward proxy). Routing is by path alone: the authority, like Host, names nothing here.
    target.remove_prefix(path_at);
    if (target.empty() || target.front() == '?') target = "/";
  }
  const size_t q = target.find('?');
  if (q != std::string_view::npos) target = target.substr(0, q);
  if (target.empty() || target.front() != '/') {
    error = "the request target must be a path starting with '/'";
    return false;
  }
  for (size_t i = 0; i < target.size(); ++i) {
    // Copy the run up to the next '%' or '\\' in one append (a path is usually one run).
    size_t j = i;
    while (j < target.size() && target[j] != '%' && target[j] != '\\')
      ++j;
    out.append(target.substr(i, j - i));
    i = j;
    if (i == target.size()) break;
    if (target[i] == '\\') {
      error = "'\\' is not allowed in the path";
      return false;
    }
    if (i + 2 >= target.size()) {
      error = "'%' must be followed by two hex digits";
      return false;
    }
    const int hi = hex_value(target[i + 1]), lo = hex_value(target[i + 2]);
    if (hi < 0 || lo < 0) {
      error = "'%' must be followed by two hex digits";
      return false;
    }
    const char decoded = static_cast<char>(hi * 16 + lo);
    if (decoded == '/' || decoded == '\\') {
      error = "an encoded '/' or '\\' is not allowed in the path";
      return false;
    }
    if (unreserved(decoded)) {
      out += decoded;
    } else {
      out.append(target.substr(i, 3));
    }
    i += 2;
  }
  // Dot segments, after decoding: refused rather than resolved, so that no spelling of a
  // path climbs out of the one it names.
  size_t start = 1;
  while (start <= out.size()) {
    size_t end = out.find('/', start);
    if (end == std::string::npos) end = out.size();
    const std::string_view seg(out.data() + start, end - start);
    if (seg == "." || seg == "..") {
      error = "'.' and '..' path segments are not allowed";
      return false;
    }
    start = end + 1;
  }
  path = out;
  return true;
}

bool valid_server_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_'))
      return false;
  }
  return true;
}

}  // namespace sluice::net
