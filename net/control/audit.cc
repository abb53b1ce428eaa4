#include "net/control/audit.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "net/control/metrics.h"

namespace sluice::control {

void append_rfc3339(std::string& out, int64_t wall_ns) {
  const time_t secs = static_cast<time_t>(wall_ns / 1'000'000'000);
  tm t;
  gmtime_r(&secs, &t);
  char buf[40];
  const int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ",
                              t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min,
                              t.tm_sec, static_cast<long long>((wall_ns % 1'000'000'000) / 1000));
  out.append(buf, static_cast<size_t>(n));
}

namespace {

template <size_t N>
void field(std::string& out, std::string_view name, const fixed_text<N>& t) {
  out += ",\"";
  out += name;
  out += "\":";
  append_json(out, t.view());
  if (t.truncated) {
    out += ",\"";
    out += name;
    out += "_truncated\":true";
  }
}

}  // namespace

void append_audit_line(std::string& out, const audit_record& r) {
  out += "{\"time\":\"";
  append_rfc3339(out, r.time_ns);
  out += "\",\"event\":";
  switch (r.event) {
    case audit_event::decision:
      out += "\"decision\",\"verdict\":\"";
      out += verdict_name(r.verdict);
      out += "\",\"policy_version\":";
      out += std::to_string(r.policy_version);
      break;
    case audit_event::approval_approved:
      out += "\"approval\",\"verdict\":\"approved\"";
      break;
    case audit_event::approval_denied:
      out += "\"approval\",\"verdict\":\"denied\"";
      break;
    case audit_event::approval_timed_out:
      out += "\"approval\",\"verdict\":\"timed_out\"";
      break;
  }
  out += ",\"shard\":";
  out += std::to_string(r.shard);
  if (r.event != audit_event::decision) field(out, "approval_id", r.rpc_id);
  if (r.server.len != 0) field(out, "server", r.server);
  field(out, "grant", r.grant);
  field(out, "session", r.session);
  field(out, "method", r.method);
  field(out, "tool", r.tool);
  field(out, "rule", r.rule);
  field(out, "reason", r.reason);
  out += ",\"args_sha256\":";
  if (r.has_digest) {
    static constexpr char kHex[] = "0123456789abcdef";
    out += '"';
    for (unsigned char c : r.args_sha256) {
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
    out += '"';
  } else {
    out += "null";
  }
  out += ",\"latency_ns\":";
  out += std::to_string(r.latency_ns);
  out += "}\n";
}

audit_file::~audit_file() {
  close();
}

bool audit_file::open(const std::string& path, std::string& error) {
  close();
  path_ = path;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd_ < 0) {
    error = "audit log " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

bool audit_file::reopen(std::string& error) {
  std::string e;
  const bool flushed = flush(e);
  const bool opened = open(path_, error);
  if (!flushed && opened) error = e;
  return flushed && opened;
}

bool audit_file::flush(std::string& error) {
  size_t off = 0;
  bool ok = true;
  while (off < buf_.size()) {
    if (fd_ < 0) {
      error = "audit log " + path_ + ": not open";
      ok = false;
      break;
    }
    const ssize_t n = ::write(fd_, buf_.data() + off, buf_.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = "audit log " + path_ + ": " + std::strerror(errno);
      ok = false;
      break;
    }
    off += static_cast<size_t>(n);
  }
  buf_.clear();
  return ok;
}

void audit_file::close() {
  if (fd_ >= 0) {
    std::string ignored;
    flush(ignored);
    ::close(fd_);
    fd_ = -1;
  }
}

}  // namespace sluice::control
