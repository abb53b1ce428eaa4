#include "policy/decider.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tests/policy/test_util.h"

namespace sluice::policy {
namespace {

using testing::compile_text;
using ::testing::HasSubstr;
using testing::kNsPerMs;
using testing::kNsPerSecond;
using testing::padded_body;

constexpr int64_t kMinute = 60 * kNsPerSecond;
// A whole minute (2023-11-14T22:14:00Z): window boundaries are easy to read off.
constexpr int64_t kT0 = 1'700'000'040 * kNsPerSecond;
static_assert(kT0 % kMinute == 0);

constexpr std::string_view kPolicyLayer =
    R"({"version":"1","default":"deny","tools":{"policy_generation_start":{"limits":[{"counter":"policy_generation_start_rate","window":"minute","max":10,"scope":"grant"}]}}})";

std::string call(std::string_view tool, std::string_view args = "{}", int id = 1) {
  return R"({"jsonrpc":"2.0","id":)" + std::to_string(id) +
         R"(,"method":"tools/call","params":{"name":")" + std::string(tool) + R"(","arguments":)" +
         std::string(args) + "}}";
}

// A policy text with a header and the given `tools` object; `extra` adds top-level fields.
std::string policy(std::string_view tools, std::string_view extra = "",
                   std::string_view default_action = "deny") {
  return R"({"version":"1","default":")" + std::string(default_action) + R"(","tools":)" +
         std::string(tools) + std::string(extra) + "}";
}

class DeciderTest : public ::testing::Test {
 protected:
  void load(std::string_view text, limiter_options options = {}) {
    limiter_ = std::make_unique<limiter_shard>(options);
    policy_ = compile_text(text);
    ASSERT_NE(policy_, nullptr);
    decider_ = std::make_unique<decider>(policy_, *limiter_);
  }

  // Decides `body` as grant A, session s1, at kT0 unless told otherwise.
  const body_decision& decide(std::string_view body, identity who = {"A", "s1"},
                              int64_t now = kT0) {
    body_ = std::make_unique<padded_body>(body);
    return decider_->decide(body_->view(), who, now);
  }

  verdict verdict_of(std::string_view body, identity who = {"A", "s1"}, int64_t now = kT0) {
    return decide(body, who, now).overall.what;
  }

  std::shared_ptr<const compiled_policy> policy_;
  std::unique_ptr<limiter_shard> limiter_;
  std::unique_ptr<decider> decider_;
  std::unique_ptr<padded_body> body_;
};

// ---------------------------------------------------------------------------------------
// The PolicyLayer example, verbatim

TEST_F(DeciderTest, PolicyLayerExampleLimitsTenPerMinutePerGrant) {
  load(kPolicyLayer);
  const identity a{"A", "s1"}, b{"B", "s2"};
  for (int i = 0; i < 10; ++i) {
    const body_decision& d = decide(call("policy_generation_start"), a, kT0 + i * kNsPerSecond);
    EXPECT_EQ(d.overall.what, verdict::allow) << "call " << i;
    EXPECT_EQ(d.overall.rule, "/tools/policy_generation_start");
    EXPECT_EQ(d.overall.tool, "policy_generation_start");
    EXPECT_EQ(d.overall.taken_count, 1u);
  }
  const int64_t now = kT0 + 42 * kNsPerSecond + 250 * kNsPerMs;
  const body_decision& limited = decide(call("policy_generation_start"), a, now);
  EXPECT_EQ(limited.overall.what, verdict::rate_limited);
  EXPECT_EQ(limited.overall.rule, "/tools/policy_generation_start/limits/0");
  EXPECT_EQ(limited.overall.retry_after_ns, kT0 + kMinute - now);
  EXPECT_THAT(std::string(limited.overall.reason), HasSubstr("policy_generation_start_rate"));
  EXPECT_EQ(limited.overall.taken_count, 0u);

  // Grant B has its own count.
  EXPECT_EQ(verdict_of(call("policy_generation_start"), b, now), verdict::allow);
  // Still limited for A until the very end of the minute, free again at the boundary.
  EXPECT_EQ(verdict_of(call("policy_generation_start"), a, kT0 + kMinute - 1),
            verdict::rate_limited);
  EXPECT_EQ(verdict_of(call("policy_generation_start"), a, kT0 + kMinute), verdict::allow);

  const body_decision& other = decide(call("policy_generation_status"), a, now);
  EXPECT_EQ(other.overall.what, verdict::deny);
  EXPECT_EQ(other.overall.rule, "/default");
  EXPECT_FALSE(other.overall.reason.empty());
  EXPECT_TRUE(policy_->tool_listed("policy_generation_start"));
  EXPECT_FALSE(policy_->tool_listed("policy_generation_status"));
}

// ---------------------------------------------------------------------------------------
// Precedence

TEST_F(DeciderTest, ExactNameBeatsPattern) {
  load(policy(R"({"read_*":{"action":"deny"},"read_file":{}})"));
  const body_decision& d = decide(call("read_file"));
  EXPECT_EQ(d.overall.what, verdict::allow);
  EXPECT_EQ(d.overall.rule, "/tools/read_file");
  const body_decision& e = decide(call("read_dir"));
  EXPECT_EQ(e.overall.what, verdict::deny);
  EXPECT_EQ(e.overall.rule, "/tools/read_*");
}

TEST_F(DeciderTest, MostSpecificPatternWinsTiesToFirstListed) {
  load(policy(R"({"r*":{"action":"deny"},"read_*":{},"*_file":{"action":"deny"},"*":{}})"));
  const body_decision& d = decide(call("read_file"));  // read_* and *_file tie: first wins
  EXPECT_EQ(d.overall.what, verdict::allow);
  EXPECT_EQ(d.overall.rule, "/tools/read_*");
  const body_decision& e = decide(call("write_file"));
  EXPECT_EQ(e.overall.what, verdict::deny);
  EXPECT_EQ(e.overall.rule, "/tools/*_file");
  const body_decision& f = decide(call("rm"));
  EXPECT_EQ(f.overall.what, verdict::deny);
  EXPECT_EQ(f.overall.rule, "/tools/r*");
  const body_decision& g = decide(call("ls"));
  EXPECT_EQ(g.overall.what, verdict::allow);
  EXPECT_EQ(g.overall.rule, "/tools/*");

  load(policy(R"({"*_file":{"action":"deny"},"read_*":{}})"));
  EXPECT_EQ(decide(call("read_file")).overall.rule, "/tools/*_file");
}

TEST_F(DeciderTest, HideBeatsToolsExactAndPattern) {
  load(policy(R"({"debug_dump":{},"internal_x":{},"in*":{}})",
              R"(,"hide":["debug_dump","internal_*"])", "allow"));
  const body_decision& d = decide(call("debug_dump"));
  EXPECT_EQ(d.overall.what, verdict::deny);
  EXPECT_EQ(d.overall.rule, "/hide/0");
  // A hide pattern hides an exact tools entry...
  const body_decision& e = decide(call("internal_x"));
  EXPECT_EQ(e.overall.what, verdict::deny);
  EXPECT_EQ(e.overall.rule, "/hide/1");
  // ... and beats a tool pattern, and the default.
  const body_decision& f = decide(call("internal_y"));
  EXPECT_EQ(f.overall.what, verdict::deny);
  EXPECT_EQ(f.overall.rule, "/hide/1");
  // Not hidden: the tool pattern.
  const body_decision& g = decide(call("index"));
  EXPECT_EQ(g.overall.what, verdict::allow);
  EXPECT_EQ(g.overall.rule, "/tools/in*");
}

TEST_F(DeciderTest, ToolListedHidesHiddenAndDeniedTools) {
  load(policy(
      R"({"shell_exec":{"action":"deny"},"read_*":{},"delete_bucket":{"action":"require_approval"},"debug_dump":{}})",
      R"(,"hide":["debug_dump","internal_*"])"));
  EXPECT_TRUE(policy_->tool_listed("read_file"));
  EXPECT_TRUE(policy_->tool_listed("delete_bucket"));
  EXPECT_FALSE(policy_->tool_listed("shell_exec"));    // denied outright
  EXPECT_FALSE(policy_->tool_listed("debug_dump"));    // hidden, although in tools
  EXPECT_FALSE(policy_->tool_listed("internal_ops"));  // hidden by pattern
  EXPECT_FALSE(policy_->tool_listed("unknown"));       // default deny

  load(policy(R"({})", R"(,"hide":["internal_*"])", "allow"));
  EXPECT_TRUE(policy_->tool_listed("unknown"));
  EXPECT_FALSE(policy_->tool_listed("internal_ops"));
}

// ---------------------------------------------------------------------------------------
// Actions

TEST_F(DeciderTest, DenyActionReportsItsReason) {
  load(policy(
      R"({"shell_exec":{"action":"deny","reason":"no shell access from agents"},"rm":{"action":"deny"}})"));
  const body_decision& d = decide(call("shell_exec"));
  EXPECT_EQ(d.overall.what, verdict::deny);
  EXPECT_EQ(d.overall.rule, "/tools/shell_exec");
  EXPECT_EQ(d.overall.reason, "no shell access from agents");
  const body_decision& e = decide(call("rm"));
  EXPECT_EQ(e.overall.what, verdict::deny);
  EXPECT_THAT(std::string(e.overall.reason), HasSubstr("/tools/rm"));
}

TEST_F(DeciderTest, RequireApprovalHoldsTheCallWithoutCounting) {
  load(policy(
      R"({"delete_bucket":{"action":"require_approval","reason":"needs a human","limits":[{"counter":"del","window":"minute","max":1}]}})"));
  for (int i = 0; i < 3; ++i) {
    const body_decision& d = decide(call("delete_bucket"));
    EXPECT_EQ(d.overall.what, verdict::approval_required);
    EXPECT_EQ(d.overall.rule, "/tools/delete_bucket");
    EXPECT_EQ(d.overall.reason, "needs a human");
    EXPECT_EQ(d.overall.taken_count, 0u);
  }
}

TEST_F(DeciderTest, RequireApprovalStillAppliesChecksFirst) {
  load(policy(
      R"({"delete_bucket":{"action":"require_approval","deny_if":[{"path":"args.bucket","op":"regex","value":"^prod-"}]}})"));
  EXPECT_EQ(verdict_of(call("delete_bucket", R"({"bucket":"prod-1"})")), verdict::deny);
  EXPECT_EQ(verdict_of(call("delete_bucket", R"({"bucket":"dev-1"})")), verdict::approval_required);
}

// ---------------------------------------------------------------------------------------
// Argument checks: every op, in both lists

enum class outcome { holds, fails, wrong_type };

struct check_case {
  std::string_view check;  // the check object minus "path"
  std::string_view args;   // the call's arguments
  outcome want;
};

class CheckOpTest : public DeciderTest {
 protected:
  // Runs the case in `require` and in `deny_if`; expects what each list makes of it.
  void run(const check_case& c) {
    SCOPED_TRACE(std::string(c.check) + " on " + std::string(c.args));
    const std::string check = R"({"path":"args.x",)" + std::string(c.check) + "}";
    load(policy(R"({"r":{"require":[)" + check + R"(]},"d":{"deny_if":[)" + check + "]}}"));
    const body_decision& r = decide(call("r", c.args));
    if (c.want == outcome::holds) {
      EXPECT_EQ(r.overall.what, verdict::allow) << "require";
    } else {
      EXPECT_EQ(r.overall.what, verdict::deny) << "require";
      EXPECT_EQ(r.overall.rule, "/tools/r/require/0");
      EXPECT_FALSE(r.overall.reason.empty());
    }
    const body_decision& d = decide(call("d", c.args));
    if (c.want == outcome::fails) {
      EXPECT_EQ(d.overall.what, verdict::allow) << "deny_if";
    } else {
      EXPECT_EQ(d.overall.what, verdict::deny) << "deny_if";
      EXPECT_EQ(d.overall.rule, "/tools/d/deny_if/0");
      EXPECT_FALSE(d.overall.reason.empty());
    }
  }
};

TEST_F(CheckOpTest, Eq) {
  run({R"("op":"eq","value":"a")", R"({"x":"a"})", outcome::holds});
  run({R"("op":"eq","value":"a")", R"({"x":"\u0061"})", outcome::holds});
  run({R"("op":"eq","value":"a")", R"({"x":"A"})", outcome::fails});
  run({R"("op":"eq","value":"1")", R"({"x":1})", outcome::fails});  // no type coercion
  run({R"("op":"eq","value":1)", R"({"x":1.0})", outcome::holds});
  run({R"("op":"eq","value":1)", R"({"x":"1"})", outcome::fails});
  run({R"("op":"eq","value":true)", R"({"x":true})", outcome::holds});
  run({R"("op":"eq","value":true)", R"({"x":1})", outcome::fails});
  run({R"("op":"eq","value":null)", R"({"x":null})", outcome::holds});
  run({R"("op":"eq","value":null)", R"({})", outcome::fails});  // absent is not null
  run({R"("op":"eq","value":"a")", R"({})", outcome::fails});
}

TEST_F(CheckOpTest, Neq) {
  run({R"("op":"neq","value":"a")", R"({"x":"b"})", outcome::holds});
  run({R"("op":"neq","value":"a")", R"({"x":"a"})", outcome::fails});
  run({R"("op":"neq","value":"1")", R"({"x":1})", outcome::holds});
  run({R"("op":"neq","value":"a")", R"({})", outcome::fails});  // absent satisfies nothing
}

TEST_F(CheckOpTest, InAndNotIn) {
  run({R"("op":"in","value":["read","list"])", R"({"x":"list"})", outcome::holds});
  run({R"("op":"in","value":["read","list"])", R"({"x":"write"})", outcome::fails});
  run({R"("op":"in","value":[1,2])", R"({"x":2e0})", outcome::holds});
  run({R"("op":"in","value":[1,2])", R"({"x":"2"})", outcome::fails});
  run({R"("op":"in","value":["a"])", R"({})", outcome::fails});
  run({R"("op":"not_in","value":["read","list"])", R"({"x":"write"})", outcome::holds});
  run({R"("op":"not_in","value":["read","list"])", R"({"x":"read"})", outcome::fails});
  run({R"("op":"not_in","value":["a"])", R"({})", outcome::fails});
}

TEST_F(CheckOpTest, Ordering) {
  run({R"("op":"lt","value":10)", R"({"x":9.5})", outcome::holds});
  run({R"("op":"lt","value":10)", R"({"x":10})", outcome::fails});
  run({R"("op":"lte","value":10)", R"({"x":10})", outcome::holds});
  run({R"("op":"lte","value":10)", R"({"x":10.001})", outcome::fails});
  run({R"("op":"gt","value":10)", R"({"x":1e2})", outcome::holds});
  run({R"("op":"gt","value":10)", R"({"x":10})", outcome::fails});
  run({R"("op":"gte","value":10)", R"({"x":10})", outcome::holds});
  run({R"("op":"gte","value":10)", R"({"x":-11})", outcome::fails});
  run({R"("op":"lt","value":10)", R"({})", outcome::fails});
}

TEST_F(CheckOpTest, OrderingOnWrongTypeFailsClosed) {
  run({R"("op":"lt","value":10)", R"({"x":"9"})", outcome::wrong_type});
  run({R"("op":"lte","value":10)", R"({"x":null})", outcome::wrong_type});
  run({R"("op":"gt","value":10)", R"({"x":true})", outcome::wrong_type});
  run({R"("op":"gte","value":10)", R"({"x":[11]})", outcome::wrong_type});
}

TEST_F(CheckOpTest, Regex) {
  run({R"("op":"regex","value":"^prod-")", R"({"x":"prod-1"})", outcome::holds});
  run({R"("op":"regex","value":"^prod-")", R"({"x":"dev-prod-1"})", outcome::fails});
  run({R"("op":"regex","value":"prod")", R"({"x":"dev-prod-1"})", outcome::holds});  // partial
  run({R"("op":"regex","value":"^a$")", R"({"x":"\u0061"})", outcome::holds});
  run({R"("op":"regex","value":"^prod-")", R"({"x":5})", outcome::wrong_type});
  run({R"("op":"regex","value":"^prod-")", R"({"x":["prod-1"]})", outcome::wrong_type});
  run({R"("op":"regex","value":"^prod-")", R"({})", outcome::fails});
}

// Anchored patterns skip RE2 for subjects outside their match range (policy/regex_range.h);
// the answers stay RE2's, including subjects above the range's max that match by a prefix.
TEST_F(CheckOpTest, RegexAnchoredRange) {
  run({R"("op":"regex","value":"^/(etc|root)/")", R"({"x":"/data/reports/q3.parquet"})",
       outcome::fails});
  run({R"("op":"regex","value":"^/(etc|root)/")", R"({"x":"/root/.ssh/id_rsa"})", outcome::holds});
  run({R"("op":"regex","value":"^/(etc|root)/")", R"({"x":"/etc"})", outcome::fails});
  run({R"("op":"regex","value":"^a(bc)?")", R"({"x":"azz"})", outcome::holds});
  run({R"("op":"regex","value":"(?i)^/(etc|root)/")", R"({"x":"/ETC/passwd"})", outcome::holds});
  run({R"("op":"regex","value":"(?i)^k")", R"({"x":"\u212a"})", outcome::holds});  // Kelvin
  run({R"("op":"regex","value":"^\\/x|/etc/")", R"({"x":"/var/etc/x"})", outcome::holds});
  run({R"("op":"regex","value":"(?m)^/etc/")", R"({"x":"a\n/etc/x"})", outcome::holds});
  run({R"("op":"regex","value":"^é")", R"({"x":"\u00e9t\u00e9"})", outcome::holds});
  run({R"("op":"regex","value":"^é")", R"({"x":"\u00eat\u00e9"})", outcome::fails});
}

TEST_F(CheckOpTest, Contains) {
  run({R"("op":"contains","value":"@evil")", R"({"x":"a@evil.com"})", outcome::holds});
  run({R"("op":"contains","value":"@evil")", R"({"x":"a@good.com"})", outcome::fails});
  run({R"("op":"contains","value":"b")", R"({"x":["a","b"]})", outcome::holds});
  run({R"("op":"contains","value":"b")", R"({"x":["a","ab"]})", outcome::fails});
  run({R"("op":"contains","value":1)", R"({"x":[3,1.0]})", outcome::holds});
  run({R"("op":"contains","value":1)", R"({"x":["1"]})", outcome::fails});
  run({R"("op":"contains","value":null)", R"({"x":[null]})", outcome::holds});
  run({R"("op":"contains","value":"b")", R"({"x":["\u0062"]})", outcome::holds});
  run({R"("op":"contains","value":"b")", R"({"x":7})", outcome::wrong_type});
  run({R"("op":"contains","value":"b")", R"({"x":{"b":1}})", outcome::wrong_type});
  run({R"("op":"contains","value":"b")", R"({})", outcome::fails});
}

TEST_F(CheckOpTest, ExistsAndNotExists) {
  run({R"("op":"exists")", R"({"x":null})", outcome::holds});
  run({R"("op":"exists")", R"({"x":false})", outcome::holds});
  run({R"("op":"exists")", R"({"y":1})", outcome::fails});
  run({R"("op":"not_exists")", R"({"y":1})", outcome::holds});
  run({R"("op":"not_exists")", R"({"x":""})", outcome::fails});
}

TEST_F(CheckOpTest, MaxLengthCountsCodePointsOrElements) {
  run({R"("op":"max_length","value":3)", R"({"x":"abc"})", outcome::holds});
  run({R"("op":"max_length","value":3)", R"({"x":"abcd"})", outcome::fails});
  // Three code points in six bytes, and via escapes.
  run({R"("op":"max_length","value":3)", "{\"x\":\"\xC3\xA9\xC3\xA9\xC3\xA9\"}", outcome::holds});
  run({R"("op":"max_length","value":3)", R"({"x":"\u00e9\u00e9\u00e9"})", outcome::holds});
  run({R"("op":"max_length","value":3)", R"({"x":"\u00e9\u00e9\u00e9\u00e9"})", outcome::fails});
  run({R"("op":"max_length","value":2)", R"({"x":[1,[2,3]]})", outcome::holds});
  run({R"("op":"max_length","value":2)", R"({"x":[1,2,3]})", outcome::fails});
  run({R"("op":"max_length","value":0)", R"({"x":""})", outcome::holds});
  run({R"("op":"max_length","value":3)", R"({"x":12})", outcome::wrong_type});
  run({R"("op":"max_length","value":3)", R"({"x":{"a":1}})", outcome::wrong_type});
  run({R"("op":"max_length","value":3)", R"({})", outcome::fails});
}

TEST_F(DeciderTest, NestedAndIndexedArgumentPaths) {
  load(policy(
      R"({"t":{"require":[{"path":"args.options.mode","op":"in","value":["read"]}],"deny_if":[{"path":"/targets/0","op":"eq","value":"prod"}]}})"));
  EXPECT_EQ(verdict_of(call("t", R"({"options":{"mode":"read"},"targets":["dev","prod"]})")),
            verdict::allow);
  EXPECT_EQ(verdict_of(call("t", R"({"options":{"mode":"write"}})")), verdict::deny);
  const body_decision& d = decide(call("t", R"({"options":{"mode":"read"},"targets":["prod"]})"));
  EXPECT_EQ(d.overall.what, verdict::deny);
  EXPECT_EQ(d.overall.rule, "/tools/t/deny_if/0");
}

TEST_F(DeciderTest, RuleReasonIsToldForCheckDenials) {
  load(policy(
      R"({"send_email":{"reason":"only to our own domain","require":[{"path":"args.to","op":"regex","value":"@example\\.com$"}]}})"));
  const body_decision& d = decide(call("send_email", R"({"to":"x@evil.com"})"));
  EXPECT_EQ(d.overall.what, verdict::deny);
  EXPECT_EQ(d.overall.reason, "only to our own domain");
  EXPECT_EQ(verdict_of(call("send_email", R"({"to":"x@example.com"})")), verdict::allow);
}

// ---------------------------------------------------------------------------------------
// Limits and scopes

TEST_F(DeciderTest, GlobalScopeIsSharedByEveryone) {
  load(policy(R"({"t":{"limits":[{"counter":"c","window":"minute","max":2}]}})"));
  EXPECT_EQ(verdict_of(call("t"), {"A", "s1"}), verdict::allow);
  EXPECT_EQ(verdict_of(call("t"), {"B", "s2"}), verdict::allow);
  EXPECT_EQ(verdict_of(call("t"), {"C", "s3"}), verdict::rate_limited);
}

TEST_F(DeciderTest, SessionScopeCountsPerSession) {
  load(policy(R"({"t":{"limits":[{"counter":"c","window":"minute","max":1,"scope":"session"}]}})"));
  EXPECT_EQ(verdict_of(call("t"), {"A", "s1"}), verdict::allow);
  EXPECT_EQ(verdict_of(call("t"), {"A", "s1"}), verdict::rate_limited);
  EXPECT_EQ(verdict_of(call("t"), {"A", "s2"}), verdict::allow);
  // The same id sent by another grant is another count: a caller cannot use up a session of
  // another grant's by naming it.
  EXPECT_EQ(verdict_of(call("t"), {"B", "s1"}), verdict::allow);
  EXPECT_EQ(verdict_of(call("t"), {"B", "s1"}), verdict::rate_limited);
}

// Behind a stateless server calls carry no session id: each grant's are one count of their
// own, not one count for every caller. The grant and session are hashed apart, so "ab" + "c"
// is not "a" + "bc".
TEST_F(DeciderTest, CallsWithoutASessionAreCountedPerGrant) {
  load(policy(R"({"t":{"limits":[{"counter":"c","window":"minute","max":1,"scope":"session"}]}})"));
  EXPECT_EQ(verdict_of(call("t"), {"A", ""}), verdict::allow);
  EXPECT_EQ(verdict_of(call("t"), {"A", ""}), verdict::rate_limited);
  EXPECT_EQ(verdict_of(call("t"), {"B", ""}), verdict::allow);
  EXPECT_EQ(verdict_of(call("t"), {"B", ""}), verdict::rate_limited);
  EXPECT_EQ(verdict_of(call("t"), {"ab", "c"}), verdict::allow);
  EXPECT_EQ(verdict_of(call("t"), {"a", "bc"}), verdict::allow);
}

TEST_F(DeciderTest, GrantScopeCountsPerGrant) {
  load(policy(R"({"t":{"limits":[{"counter":"c","window":"minute","max":1,"scope":"grant"}]}})"));
  EXPECT_EQ(verdict_of(call("t"), {"A", "s1"}), verdict::allow);
  EXPECT_EQ(verdict_of(call("t"), {"A", "s2"}), verdict::rate_limited);  // same grant
  EXPECT_EQ(verdict_of(call("t"), {"B", "s1"}), verdict::allow);
}

TEST_F(DeciderTest, ArgScopeKeysOnTheValueAsTheUpstreamReadsIt) {
  load(policy(
      R"({"t":{"limits":[{"counter":"per_bucket","window":"day","max":1,"scope":"arg:args.bucket"}]}})"));
  EXPECT_EQ(verdict_of(call("t", R"({"bucket":1})")), verdict::allow);
  // 1, 1.0 and 1e0 are one number: one key.
  EXPECT_EQ(verdict_of(call("t", R"({"bucket":1.0})")), verdict::rate_limited);
  EXPECT_EQ(verdict_of(call("t", R"({"bucket":1e0})")), verdict::rate_limited);
  // The string "1" is another key.
  EXPECT_EQ(verdict_of(call("t", R"({"bucket":"1"})")), verdict::allow);
  EXPECT_EQ(verdict_of(call("t", R"({"bucket":"\u0031"})")), verdict::rate_limited);
  EXPECT_EQ(verdict_of(call("t", R"({"bucket":"a"})")), verdict::allow);
  EXPECT_EQ(verdict_of(call("t", R"({"bucket":"a"})")), verdict::rate_limited);
  // Absent is a key of its own (and so is null).
  EXPECT_EQ(verdict_of(call("t", R"({})")), verdict::allow);
  EXPECT_EQ(verdict_of(call("t", R"({"other":1})")), verdict::rate_limited);
  EXPECT_EQ(verdict_of(call("t", R"({"bucket":null})")), verdict::allow);
}

constexpr std::string_view kPerTarget =
    R"({"t":{"limits":[{"counter":"per_target","window":"day","max":1,"scope":"arg:args.target"}]}})";

TEST_F(DeciderTest, ArgScopeCountsAllArraysAsOneKey) {
  // However an array is spelled (or whatever it holds), it cannot escape its count.
  load(policy(kPerTarget));
  EXPECT_EQ(verdict_of(call("t", R"({"target":[1,2]})")), verdict::allow);
  EXPECT_EQ(verdict_of(call("t", R"({"target":[1, 2]})")), verdict::rate_limited);
  EXPECT_EQ(verdict_of(call("t", R"({"target":[1.0,2]})")), verdict::rate_limited);
  EXPECT_EQ(verdict_of(call("t", R"({"target":[2,1]})")), verdict::rate_limited);
  EXPECT_EQ(verdict_of(call("t", R"({"target":"[1,2]"})")), verdict::allow);  // a string
}

TEST_F(DeciderTest, ArgScopeCountsAllObjectsAsOneKey) {
  load(policy(kPerTarget));
  EXPECT_EQ(verdict_of(call("t", R"({"target":{"a":1}})")), verdict::allow);
  EXPECT_EQ(verdict_of(call("t", R"({"target":{"a":1}})")), verdict::rate_limited);
  EXPECT_EQ(verdict_of(call("t", R"({"target":{"a":2}})")), verdict::rate_limited);
  EXPECT_EQ(verdict_of(call("t", R"({"target":[1]})")), verdict::allow);  // arrays: another key
}

TEST_F(DeciderTest, CounterSharedByTwoToolsIsOneCount) {
  load(policy(
      R"({"a":{"limits":[{"counter":"shared","window":"minute","max":2}]},"b":{"limits":[{"counter":"shared","window":"minute","max":3}]}})"));
  EXPECT_EQ(verdict_of(call("a")), verdict::allow);
  EXPECT_EQ(verdict_of(call("b")), verdict::allow);
  // Two used: a (max 2) is limited, b (max 3) has one more.
  const body_decision& d = decide(call("a"));
  EXPECT_EQ(d.overall.what, verdict::rate_limited);
  EXPECT_EQ(d.overall.rule, "/tools/a/limits/0");
  EXPECT_EQ(verdict_of(call("b")), verdict::allow);
  EXPECT_EQ(verdict_of(call("b")), verdict::rate_limited);
}

TEST_F(DeciderTest, AllToolsLimitsCountEveryToolCall) {
  load(policy(
      R"({"a":{},"b":{"limits":[{"counter":"b_rate","window":"minute","max":100}]},"no":{"action":"deny"}})",
      R"(,"all_tools":{"limits":[{"counter":"all","window":"minute","max":3}]})", "allow"));
  EXPECT_EQ(verdict_of(call("a")), verdict::allow);
  EXPECT_EQ(decide(call("b")).overall.taken_count, 2u);     // its own and all_tools
  EXPECT_EQ(verdict_of(call("no")), verdict::deny);         // denied calls take no slot
  EXPECT_EQ(verdict_of(call("unlisted")), verdict::allow);  // default allow counts too
  const body_decision& d = decide(call("a"), {"A", "s1"}, kT0 + 30 * kNsPerSecond);
  EXPECT_EQ(d.overall.what, verdict::rate_limited);
  EXPECT_EQ(d.overall.rule, "/all_tools/limits/0");
  EXPECT_EQ(d.overall.retry_after_ns, 30 * kNsPerSecond);
  // Non-tool methods are not counted.
  EXPECT_EQ(verdict_of(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})"), verdict::allow);
}

TEST_F(DeciderTest, RateLimitedCallTakesNoSlotFromItsOtherCounters) {
  load(policy(R"({"a":{"limits":[{"counter":"a_rate","window":"minute","max":1}]},"b":{}})",
              R"(,"all_tools":{"limits":[{"counter":"all","window":"minute","max":3}]})"));
  EXPECT_EQ(verdict_of(call("a")), verdict::allow);
  EXPECT_EQ(verdict_of(call("a")), verdict::rate_limited);
  EXPECT_EQ(verdict_of(call("a")), verdict::rate_limited);
  // all_tools used once, not three times.
  EXPECT_EQ(verdict_of(call("b")), verdict::allow);
  EXPECT_EQ(verdict_of(call("b")), verdict::allow);
  EXPECT_EQ(verdict_of(call("b")), verdict::rate_limited);
}

TEST_F(DeciderTest, FullLimiterFailsClosed) {
  load(policy(R"({"t":{"limits":[{"counter":"c","window":"minute","max":5,"scope":"grant"}]}})"),
       limiter_options{.max_keys = 1});
  EXPECT_EQ(verdict_of(call("t"), {"A", "s"}), verdict::allow);
  const body_decision& d = decide(call("t"), {"B", "s"});
  EXPECT_EQ(d.overall.what, verdict::deny);
  EXPECT_EQ(d.overall.rule, "/tools/t/limits/0");
  EXPECT_THAT(std::string(d.overall.reason), HasSubstr("full"));
}

TEST_F(DeciderTest, ReleaseGivesTheSlotBack) {
  load(policy(R"({"t":{"limits":[{"counter":"c","window":"minute","max":1}]}})"));
  const body_decision& d = decide(call("t"));
  ASSERT_EQ(d.overall.what, verdict::allow);
  ASSERT_EQ(decider_->taken(d.overall).size(), 1u);
  decider_->release(d.overall);
  EXPECT_EQ(verdict_of(call("t")), verdict::allow);
  EXPECT_EQ(verdict_of(call("t")), verdict::rate_limited);
}

// ---------------------------------------------------------------------------------------
// Batches

TEST_F(DeciderTest, BatchWithADeniedElementIsDeniedAndReleasesTheOthersSlots) {
  load(policy(
      R"({"ok":{"limits":[{"counter":"ok_rate","window":"minute","max":1}]},"bad":{"action":"deny"}})"));
  const std::string batch = "[" + call("ok", "{}", 1) + "," + call("bad", "{}", 2) + "]";
  const body_decision& d = decide(batch);
  EXPECT_TRUE(d.batch);
  EXPECT_EQ(d.overall.what, verdict::deny);
  EXPECT_EQ(d.overall.tool, "bad");
  EXPECT_EQ(d.overall.rule, "/tools/bad");
  ASSERT_EQ(d.each.size(), 2u);
  EXPECT_EQ(d.each[0].what, verdict::allow);
  EXPECT_EQ(d.each[1].what, verdict::deny);
  // The allowed element was not forwarded: its slot is free for the next call.
  EXPECT_EQ(verdict_of(call("ok")), verdict::allow);
  EXPECT_EQ(verdict_of(call("ok")), verdict::rate_limited);
}

TEST_F(DeciderTest, BatchOfAllowedElementsKeepsEverySlot) {
  load(policy(R"({"ok":{"limits":[{"counter":"ok_rate","window":"minute","max":2}]}})"));
  const std::string batch = "[" + call("ok", "{}", 1) + "," + call("ok", "{}", 2) + "]";
  const body_decision& d = decide(batch);
  EXPECT_EQ(d.overall.what, verdict::allow);
  ASSERT_EQ(d.each.size(), 2u);
  EXPECT_EQ(d.each[0].what, verdict::allow);
  EXPECT_EQ(d.each[1].what, verdict::allow);
  EXPECT_EQ(verdict_of(call("ok")), verdict::rate_limited);
}

TEST_F(DeciderTest, BatchOverItsLimitIsRateLimitedAndTakesNothing) {
  load(policy(R"({"ok":{"limits":[{"counter":"ok_rate","window":"minute","max":2}]}})"));
  const std::string batch =
      "[" + call("ok", "{}", 1) + "," + call("ok", "{}", 2) + "," + call("ok", "{}", 3) + "]";
  const body_decision& d = decide(batch);
  EXPECT_EQ(d.overall.what, verdict::rate_limited);
  ASSERT_EQ(d.each.size(), 3u);
  EXPECT_EQ(d.each[2].what, verdict::rate_limited);
  EXPECT_EQ(verdict_of(call("ok")), verdict::allow);
  EXPECT_EQ(verdict_of(call("ok")), verdict::allow);
}

TEST_F(DeciderTest, BatchWithAnInvalidElementIsInvalid) {
  load(policy(R"({"ok":{"limits":[{"counter":"ok_rate","window":"minute","max":1}]}})"));
  const std::string batch = "[" + call("ok", "{}", 1) +
                            R"(,{"jsonrpc":"2.0","method":"tools/call","params":{"name":"ok"}}])";
  const body_decision& d = decide(batch);
  EXPECT_EQ(d.overall.what, verdict::invalid);
  EXPECT_EQ(d.overall.error, rpc_error::invalid_request);
  ASSERT_EQ(d.each.size(), 2u);
  EXPECT_EQ(d.each[0].what, verdict::allow);
  EXPECT_EQ(verdict_of(call("ok")), verdict::allow);  // released
}

TEST_F(DeciderTest, InvalidBodyHasAnErrorAndNoElements) {
  load(kPolicyLayer);
  const body_decision& d = decide(R"({"jsonrpc":"2.0","id":1,"method":"tools/call",)");
  EXPECT_EQ(d.overall.what, verdict::invalid);
  EXPECT_EQ(d.overall.error, rpc_error::parse);
  EXPECT_FALSE(d.overall.reason.empty());
  EXPECT_TRUE(d.each.empty());
  const body_decision& e = decide("[]");
  EXPECT_EQ(e.overall.what, verdict::invalid);
  EXPECT_EQ(e.overall.error, rpc_error::invalid_request);
}

// ---------------------------------------------------------------------------------------
// Encoding tricks

TEST_F(DeciderTest, EscapedToolNameIsTheSameTool) {
  load(policy(R"({"delete_bucket":{"action":"deny"}})", "", "allow"));
  const body_decision& d = decide(call(R"(delete\u005fbucket)"));
  EXPECT_EQ(d.overall.what, verdict::deny);
  EXPECT_EQ(d.overall.tool, "delete_bucket");
  EXPECT_EQ(d.overall.rule, "/tools/delete_bucket");
  EXPECT_EQ(
      verdict_of(
          R"({"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"delete_bucket"}})"),
      verdict::deny);
}

TEST_F(DeciderTest, DuplicateNameCannotSmuggleASecondTool) {
  load(policy(R"({"safe":{},"delete_bucket":{"action":"deny"}})"));
  for (
      std::string_view body :
      {R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe","name":"delete_bucket"}})",
       R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_bucket","name":"safe"}})",
       R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe","n\u0061me":"delete_bucket"}})"}) {
    const body_decision& d = decide(body);
    EXPECT_EQ(d.overall.what, verdict::invalid) << body;
    EXPECT_EQ(d.overall.error, rpc_error::invalid_request) << body;
  }
}

TEST_F(DeciderTest, DuplicateArgumentCannotSmuggleAValuePastARegex) {
  load(policy(
      R"({"delete_bucket":{"deny_if":[{"path":"args.bucket","op":"regex","value":"^prod-"}]}})"));
  EXPECT_EQ(verdict_of(call("delete_bucket", R"({"bucket":"prod-1"})")), verdict::deny);
  for (std::string_view args :
       {R"({"bucket":"dev","bucket":"prod-1"})", R"({"bucket":"prod-1","bucket":"dev"})",
        R"({"bucket":"dev","buck\u0065t":"prod-1"})"}) {
    const body_decision& d = decide(call("delete_bucket", args));
    EXPECT_EQ(d.overall.what, verdict::invalid) << args;
    EXPECT_EQ(d.overall.error, rpc_error::invalid_params) << args;
  }
  // An escaped value is compared unescaped.
  EXPECT_EQ(verdict_of(call("delete_bucket", R"({"bucket":"\u0070rod-1"})")), verdict::deny);
}

TEST_F(DeciderTest, ArgumentsBeforeNameAreStillChecked) {
  load(policy(
      R"({"delete_bucket":{"deny_if":[{"path":"args.bucket","op":"regex","value":"^prod-"}]}})"));
  EXPECT_EQ(
      verdict_of(
          R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"bucket":"prod-1"},"name":"delete_bucket"}})"),
      verdict::deny);
}

// ---------------------------------------------------------------------------------------
// Resources, prompts and other methods

std::string read_resource(std::string_view uri) {
  return R"({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":")" +
         std::string(uri) + R"("}})";
}

std::string get_prompt(std::string_view name) {
  return R"({"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":")" +
         std::string(name) + R"("}})";
}

TEST_F(DeciderTest, ResourcesAndPromptsPassWhenTheirSectionIsAbsent) {
  load(kPolicyLayer);  // default deny, no resources, no prompts
  const body_decision& r = decide(read_resource("file:///etc/passwd"));
  EXPECT_EQ(r.overall.what, verdict::allow);
  EXPECT_EQ(r.overall.rule, "");
  EXPECT_EQ(verdict_of(get_prompt("anything")), verdict::allow);
}

TEST_F(DeciderTest, ResourcesSectionAppliesRulesAndTheDefault) {
  load(policy(
      R"({})",
      R"(,"resources":{"file:///etc/*":{"action":"deny","reason":"system files"},"file:///srv/data.csv":{}})"));
  const body_decision& d = decide(read_resource("file:///etc/passwd"));
  EXPECT_EQ(d.overall.what, verdict::deny);
  EXPECT_EQ(d.overall.rule, "/resources/file:~1~1~1etc~1*");
  EXPECT_EQ(d.overall.reason, "system files");
  EXPECT_EQ(d.overall.tool, "file:///etc/passwd");
  EXPECT_EQ(verdict_of(read_resource("file:///srv/data.csv")), verdict::allow);
  const body_decision& e = decide(read_resource("file:///home/x"));
  EXPECT_EQ(e.overall.what, verdict::deny);
  EXPECT_EQ(e.overall.rule, "/default");
  // Prompts section absent: prompts pass even under default deny.
  EXPECT_EQ(verdict_of(get_prompt("summarize")), verdict::allow);

  load(policy(R"({})", R"(,"resources":{"file:///etc/*":{"action":"deny"}})", "allow"));
  EXPECT_EQ(verdict_of(read_resource("file:///home/x")), verdict::allow);
  EXPECT_EQ(verdict_of(read_resource("file:///etc/shadow")), verdict::deny);
}

TEST_F(DeciderTest, PromptsSectionAppliesRulesChecksAndTheDefault) {
  load(policy(
      R"({})",
      R"(,"prompts":{"summarize":{"deny_if":[{"path":"args.path","op":"contains","value":".."}]},"draft_*":{"action":"require_approval"}})"));
  const body_decision& d = decide(get_prompt("summarize"));
  EXPECT_EQ(d.overall.what, verdict::allow);
  EXPECT_EQ(d.overall.rule, "/prompts/summarize");
  EXPECT_EQ(
      verdict_of(
          R"({"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"summarize","arguments":{"path":"../x"}}})"),
      verdict::deny);
  EXPECT_EQ(verdict_of(get_prompt("draft_mail")), verdict::approval_required);
  const body_decision& e = decide(get_prompt("other"));
  EXPECT_EQ(e.overall.what, verdict::deny);
  EXPECT_EQ(e.overall.rule, "/default");
}

TEST_F(DeciderTest, HideAppliesToToolsOnly) {
  load(policy(R"({})", R"(,"hide":["secret*"],"prompts":{"secret*":{}})"));
  EXPECT_EQ(verdict_of(call("secret_tool")), verdict::deny);
  EXPECT_EQ(verdict_of(get_prompt("secret_prompt")), verdict::allow);
}

TEST_F(DeciderTest, OtherMethodsNotificationsAndResponsesPass) {
  load(policy(R"({})", R"(,"hide":["*"])"));  // nothing callable
  for (
      std::string_view body : {
          R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}})",
          R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})",
          R"({"jsonrpc":"2.0","method":"notifications/initialized"})",
          R"({"jsonrpc":"2.0","id":"srv-1","result":{}})",
          R"({"jsonrpc":"2.0","id":3,"method":"ping"})",
      }) {
    const body_decision& d = decide(body);
    EXPECT_EQ(d.overall.what, verdict::allow) << body;
    EXPECT_EQ(d.overall.rule, "") << body;
  }
  EXPECT_EQ(verdict_of(call("anything")), verdict::deny);
}

// ---------------------------------------------------------------------------------------
// Reload

TEST_F(DeciderTest, SetPolicyKeepsCountsByCounterName) {
  load(policy(R"({"a":{"limits":[{"counter":"c","window":"minute","max":2}]}})"));
  EXPECT_EQ(verdict_of(call("a")), verdict::allow);
  // New policy: another tool, same counter name, same window: the count carries over.
  decider_->set_policy(
      compile_text(policy(R"({"b":{"limits":[{"counter":"c","window":"minute","max":2}]}})")));
  EXPECT_EQ(verdict_of(call("b")), verdict::allow);
  EXPECT_EQ(verdict_of(call("b")), verdict::rate_limited);
  EXPECT_EQ(verdict_of(call("a")), verdict::deny);  // no longer in the policy
  // A raised max applies to the count so far.
  decider_->set_policy(
      compile_text(policy(R"({"b":{"limits":[{"counter":"c","window":"minute","max":3}]}})")));
  EXPECT_EQ(verdict_of(call("b")), verdict::allow);
  EXPECT_EQ(verdict_of(call("b")), verdict::rate_limited);
  // A renamed counter starts from zero.
  decider_->set_policy(
      compile_text(policy(R"({"b":{"limits":[{"counter":"c2","window":"minute","max":1}]}})")));
  EXPECT_EQ(verdict_of(call("b")), verdict::allow);
  EXPECT_EQ(verdict_of(call("b")), verdict::rate_limited);
}

TEST_F(DeciderTest, VerdictNames) {
  EXPECT_EQ(to_string(verdict::allow), "allow");
  EXPECT_EQ(to_string(verdict::rate_limited), "rate_limited");
  EXPECT_EQ(to_string(verdict::approval_required), "approval_required");
}

}  // namespace
}  // namespace sluice::policy
