// Audit lines: fields, escaping, truncation, digests; the file: append, reopen after a rename.

#include "net/control/audit.h"

#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace sluice::control {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(audit_line, carries_every_field_as_json) {
  audit_record r;
  r.time_ns = 1'764'100'000'123'456'789;  // 2025-11-25T19:46:40.123456Z
  r.latency_ns = 812;
  r.shard = 3;
  r.verdict = 1;
  r.policy_version = 7;
  r.grant.set("ci-agent");
  r.session.set("s\"1");
  r.method.set("tools/call");
  r.tool.set("delete_bucket");
  r.rule.set("/tools/delete_*");
  r.reason.set(std::string(300, 'r'));  // longer than its slot
  r.has_digest = true;
  for (size_t i = 0; i < 32; ++i)
    r.args_sha256[i] = static_cast<unsigned char>(i);
  std::string line;
  append_audit_line(line, r);
  ASSERT_EQ(line.back(), '\n');
  simdjson::dom::parser p;
  simdjson::dom::element j;
  ASSERT_EQ(p.parse(line).get(j), simdjson::SUCCESS) << line;
  EXPECT_EQ(std::string_view(j["time"].get_string().value_unsafe()), "2025-11-25T19:46:40.123456Z");
  EXPECT_EQ(std::string_view(j["event"].get_string().value_unsafe()), "decision");
  EXPECT_EQ(std::string_view(j["verdict"].get_string().value_unsafe()), "deny");
  EXPECT_EQ(j["policy_version"].get_int64().value_unsafe(), 7);
  EXPECT_EQ(j["shard"].get_int64().value_unsafe(), 3);
  EXPECT_EQ(std::string_view(j["session"].get_string().value_unsafe()), "s\"1");
  EXPECT_EQ(std::string_view(j["rule"].get_string().value_unsafe()), "/tools/delete_*");
  EXPECT_EQ(j["reason"].get_string().value_unsafe().size(), 256u);
  EXPECT_TRUE(j["reason_truncated"].get_bool().value_unsafe());
  EXPECT_EQ(std::string_view(j["args_sha256"].get_string().value_unsafe()),
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  EXPECT_EQ(j["latency_ns"].get_int64().value_unsafe(), 812);
}

TEST(audit_line, approval_events_and_missing_digest) {
  audit_record r;
  r.event = audit_event::approval_timed_out;
  r.rpc_id.set("42");
  std::string line;
  append_audit_line(line, r);
  EXPECT_NE(line.find(R"("event":"approval","verdict":"timed_out")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("approval_id":"42")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("args_sha256":null)"), std::string::npos) << line;
}

TEST(audit_file, appends_and_reopens_after_a_rename) {
  char tmpl[] = "/tmp/sluice-audit-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/audit.log";
  audit_file f;
  std::string error;
  ASSERT_TRUE(f.open(path, error)) << error;
  f.buffer() += "one\n";
  ASSERT_TRUE(f.flush(error)) << error;
  std::filesystem::rename(path, path + ".1");
  f.buffer() += "two\n";  // buffered before the reopen: goes to the old file
  ASSERT_TRUE(f.reopen(error)) << error;
  f.buffer() += "three\n";
  f.close();
  EXPECT_EQ(slurp(path + ".1"), "one\ntwo\n");
  EXPECT_EQ(slurp(path), "three\n");
  std::filesystem::remove_all(tmpl);
  audit_file bad;
  EXPECT_FALSE(bad.open("/nonexistent-dir/audit.log", error));
  EXPECT_NE(error.find("/nonexistent-dir/audit.log"), std::string::npos) << error;
}

}  // namespace
}  // namespace sluice::control
