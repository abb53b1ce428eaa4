// The starter policy of `sluice init` (tools/sluice/init_policy.cc): every profile loads with
// the gateway's loader and decides each class as promised in `sluice init --help`.

#include "tools/sluice/init_policy.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "policy/decider.h"
#include "tests/policy/test_util.h"

namespace sluice::init {
namespace {

using policy::verdict;
using policy::testing::compile_text;
using policy::testing::kNsPerSecond;
using policy::testing::padded_body;

constexpr int64_t kT0 = 1'700'000'040 * kNsPerSecond;  // a whole minute

std::vector<tool_info> sample_tools() {
  return {
      {"read_it", "", {true, false, true, false}},
      {"write_it", "", {false, false, true, false}},
      {"start_it", "", {false, false, false, false}},
      {"delete_it", "", {false, true, false, false}},
      {"odd \"name\"/with~chars", "Lists things.", {}},
  };
}

std::string call(std::string_view tool) {
  std::string body = R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":)";
  append_json_string(body, tool);
  return body + R"(,"arguments":{}}})";
}

class ProfileTest : public ::testing::Test {
 protected:
  void load(std::string_view profile_name) {
    const std::optional<profile> p = find_profile(profile_name);
    ASSERT_TRUE(p.has_value());
    tools_ = classify_all(sample_tools());
    text_ = render_policy(tools_, *p);
    auto compiled = compile_text(text_);
    ASSERT_NE(compiled, nullptr) << text_;
    limiter_ = std::make_unique<policy::limiter_shard>();
    decider_ = std::make_unique<policy::decider>(compiled, *limiter_);
  }

  // The verdicts of n calls to `tool` by one grant within one minute.
  std::vector<verdict> calls(std::string_view tool, int n, std::string_view grant = "A") {
    std::vector<verdict> out;
    for (int i = 0; i < n; ++i) {
      padded_body body(call(tool));
      out.push_back(decider_->decide(body.view(), {grant, "s"}, kT0 + i).overall.what);
    }
    return out;
  }

  // How many of n calls are allowed before the first that is not, and what that one is.
  std::pair<int, verdict> allowed_then(std::string_view tool, int n, std::string_view grant = "A") {
    const std::vector<verdict> v = calls(tool, n, grant);
    int i = 0;
    while (i < n && v[static_cast<size_t>(i)] == verdict::allow)
      ++i;
    return {i, i < n ? v[static_cast<size_t>(i)] : verdict::allow};
  }

  std::string reason_of(std::string_view tool) {
    padded_body body(call(tool));
    return std::string(decider_->decide(body.view(), {"Z", "s"}, kT0).overall.reason);
  }

  std::vector<classified_tool> tools_;
  std::string text_;
  std::unique_ptr<policy::limiter_shard> limiter_;
  std::unique_ptr<policy::decider> decider_;
};

TEST_F(ProfileTest, DefaultProfile) {
  load("default");
  EXPECT_EQ(allowed_then("read_it", 200), std::make_pair(200, verdict::allow));
  EXPECT_EQ(allowed_then("write_it", 61), std::make_pair(60, verdict::rate_limited));
  EXPECT_EQ(allowed_then("start_it", 11), std::make_pair(10, verdict::rate_limited));
  // Per grant: another grant has its own ten.
  EXPECT_EQ(allowed_then("start_it", 11, "B"), std::make_pair(10, verdict::rate_limited));
  EXPECT_EQ(calls("delete_it", 1)[0], verdict::approval_required);
  EXPECT_EQ(calls("unknown_tool", 1)[0], verdict::deny);
  EXPECT_EQ(calls("odd \"name\"/with~chars", 1)[0], verdict::allow);
  EXPECT_NE(text_.find("\"default\": \"deny\""), std::string::npos);
}

TEST_F(ProfileTest, StrictProfile) {
  load("strict");
  EXPECT_EQ(allowed_then("read_it", 61), std::make_pair(60, verdict::rate_limited));
  EXPECT_EQ(calls("write_it", 1)[0], verdict::approval_required);
  EXPECT_EQ(calls("start_it", 1)[0], verdict::approval_required);
  EXPECT_EQ(calls("delete_it", 1)[0], verdict::deny);
}

TEST_F(ProfileTest, PermissiveProfile) {
  load("permissive");
  EXPECT_EQ(allowed_then("write_it", 200), std::make_pair(200, verdict::allow));
  EXPECT_EQ(allowed_then("start_it", 61), std::make_pair(60, verdict::rate_limited));
  EXPECT_EQ(calls("delete_it", 1)[0], verdict::approval_required);
}

TEST_F(ProfileTest, EveryRuleNamesItsClass) {
  load("default");
  EXPECT_NE(reason_of("delete_it").find("destructive tool"), std::string::npos);
  load("strict");
  EXPECT_NE(reason_of("delete_it").find("destructive tool"), std::string::npos);
  EXPECT_NE(reason_of("write_it").find("write tool"), std::string::npos);
  EXPECT_NE(reason_of("start_it").find("execute tool"), std::string::npos);
  for (const classified_tool& t : tools_) {
    const std::string r = rule_reason(t, *find_profile("default"));
    EXPECT_EQ(r.rfind(std::string(to_string(t.cls.cls)) + " tool (", 0), 0u) << r;
  }
}

TEST(ClassifyAll, LeavesOutDuplicatesAndGlobNames) {
  std::vector<tool_info> in = {{"a", "", {}}, {"a", "", {}}, {"b*", "", {}}, {"c?", "", {}}};
  const std::vector<classified_tool> out = classify_all(std::move(in));
  ASSERT_EQ(out.size(), 4u);
  EXPECT_TRUE(out[0].included);
  EXPECT_FALSE(out[1].included);
  EXPECT_FALSE(out[2].included);
  EXPECT_FALSE(out[3].included);
  const std::string text = render_policy(out, *find_profile("default"));
  EXPECT_EQ(text.find("b*"), std::string::npos);
  EXPECT_NE(compile_text(text), nullptr);
}

TEST(RenderPolicy, NoToolsStillLoads) {
  const std::string text = render_policy({}, *find_profile("default"));
  EXPECT_NE(compile_text(text), nullptr) << text;
}

TEST(FindProfile, OnlyTheThreeNames) {
  EXPECT_TRUE(find_profile("strict"));
  EXPECT_TRUE(find_profile("default"));
  EXPECT_TRUE(find_profile("permissive"));
  EXPECT_FALSE(find_profile("lax"));
}

}  // namespace
}  // namespace sluice::init
