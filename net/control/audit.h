#pragma once
// The audit log: every decision as one JSON line. A shard fills a fixed-size audit_record and
// pushes it into its own ring (an SPSC queue, no lock, no allocation); the control thread
// drains every ring and appends the lines to the file. A full ring drops the record and
// counts it (shard_metrics::audit_dropped); the writer reports drops in the log and in the
// file itself, so a gap is never silent.

#include <cstdint>
#include <string>
#include <string_view>

#include "policy/json_text.h"

namespace sluice::control {

// What a record says happened.
enum class audit_event : uint8_t {
  decision,           // verdict = policy::verdict
  approval_approved,  // a human approved a parked call
  approval_denied,    // a human denied it
  approval_timed_out,
};

// Fixed-size text field: longer values are cut and marked truncated.
template <size_t N>
struct fixed_text {
  uint16_t len = 0;
  bool truncated = false;
  char data[N];
  void set(std::string_view s) {
    truncated = s.size() > N;
    len = static_cast<uint16_t>(truncated ? N : s.size());
    if (len != 0) __builtin_memcpy(data, s.data(), len);  // an empty view may have no data
  }
  [[nodiscard]] std::string_view view() const { return {data, len}; }
};

struct audit_record {
  int64_t time_ns = 0;     // wall clock
  int64_t latency_ns = 0;  // time to decide the body this message came in
  uint32_t shard = 0;
  audit_event event = audit_event::decision;
  uint8_t verdict = 0;          // policy::verdict
  uint64_t policy_version = 0;  // decisions: the version of the policy that decided
  bool has_digest = false;
  unsigned char args_sha256[32];
  fixed_text<16> rpc_id;  // not in the line: the approval id for approval events
  fixed_text<64> server;  // the server of several behind the gateway; empty: the top level
  fixed_text<64> grant;
  fixed_text<128> session;
  fixed_text<128> method;
  fixed_text<256> tool;
  fixed_text<128> rule;
  fixed_text<256> reason;
};

// Appends the JSON line for r (with the trailing newline).
void append_audit_line(std::string& out, const audit_record& r);

// A JSON string literal, quotes included (policy/json_text.h).
inline void append_json(std::string& out, std::string_view s) {
  policy::append_json_string(out, s);
}

// RFC 3339 UTC with microseconds: 2026-11-25T20:32:50.123456Z.
void append_rfc3339(std::string& out, int64_t wall_ns);

// The file side: owned by the control thread.
class audit_file {
 public:
  audit_file() = default;
  audit_file(const audit_file&) = delete;
  audit_file& operator=(const audit_file&) = delete;
  ~audit_file();

  // Opens (creating, appending). False with `error` set.
  bool open(const std::string& path, std::string& error);
  // Closes and opens the path again (logrotate moved the file away). False with `error`.
  bool reopen(std::string& error);
  // Writes out everything buffered. False on a write error (the buffer is dropped).
  bool flush(std::string& error);
  void close();
  [[nodiscard]] bool is_open() const { return fd_ >= 0; }
  [[nodiscard]] const std::string& path() const { return path_; }
  std::string& buffer() { return buf_; }
  [[nodiscard]] uint64_t lines() const { return lines_; }
  void count_line() { ++lines_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::string buf_;
  uint64_t lines_ = 0;
};

}  // namespace sluice::control
