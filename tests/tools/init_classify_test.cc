// The classifier of `sluice init` (tools/sluice/init_classify.cc): every rule of docs/risk.md.

#include "tools/sluice/init_classify.h"

#include <gtest/gtest.h>

namespace sluice::init {
namespace {

tool_info tool(std::string name, std::string description = "", hints h = {}) {
  return tool_info{std::move(name), std::move(description), h};
}

hints ann(std::optional<bool> ro, std::optional<bool> destructive,
          std::optional<bool> idempotent = std::nullopt,
          std::optional<bool> open_world = std::nullopt) {
  return hints{ro, destructive, idempotent, open_world};
}

void expect(const classification& c, tool_class cls, risk_level risk, signal_kind by) {
  EXPECT_EQ(to_string(c.cls), to_string(cls)) << c.detail;
  EXPECT_EQ(to_string(c.risk), to_string(risk)) << c.detail;
  EXPECT_EQ(to_string(c.decided_by), to_string(by)) << c.detail;
}

constexpr auto kRead = tool_class::read;
constexpr auto kWrite = tool_class::write;
constexpr auto kExecute = tool_class::execute;
constexpr auto kDestructive = tool_class::destructive;
constexpr auto kLow = risk_level::low;
constexpr auto kMedium = risk_level::medium;
constexpr auto kHigh = risk_level::high;

// --- annotations, every combination of readOnlyHint x destructiveHint -----------------------

TEST(Classify, ReadOnlyTrueIsReadWhateverDestructiveSays) {
  for (const std::optional<bool> d :
       {std::optional<bool>{}, std::optional<bool>{true}, std::optional<bool>{false}}) {
    expect(classify(tool("x", "", ann(true, d))), kRead, kLow, signal_kind::annotations);
  }
}

TEST(Classify, ReadOnlyFalseAndDestructiveTrueIsDestructive) {
  expect(classify(tool("x", "", ann(false, true))), kDestructive, kHigh, signal_kind::annotations);
}

TEST(Classify, ReadOnlyFalseWithoutDestructiveHintTakesTheMcpDefault) {
  const classification c = classify(tool("get_x", "", ann(false, std::nullopt)));
  expect(c, kDestructive, kHigh, signal_kind::annotations);
  EXPECT_NE(c.detail.find("MCP default"), std::string::npos);
}

TEST(Classify, ReadOnlyFalseAndDestructiveFalseIsWrite) {
  expect(classify(tool("x", "", ann(false, false))), kWrite, kMedium, signal_kind::annotations);
  expect(classify(tool("save_note", "", ann(false, false, true, false))), kWrite, kMedium,
         signal_kind::annotations);
}

TEST(Classify, NonDestructiveWriteWithAnExecuteVerbIsExecute) {
  expect(classify(tool("start_build", "", ann(false, false))), kExecute, kMedium,
         signal_kind::annotations_name);
  expect(classify(tool("job", "Runs a job.", ann(false, false))), kExecute, kMedium,
         signal_kind::annotations_description);
  // A name verb of another class keeps it a write; the description is not consulted then.
  expect(classify(tool("create_job", "Runs a job.", ann(false, false))), kWrite, kMedium,
         signal_kind::annotations);
  // A destructive name cannot overrule destructiveHint=false.
  expect(classify(tool("delete_tmp", "", ann(false, false))), kWrite, kMedium,
         signal_kind::annotations);
}

TEST(Classify, DestructiveTrueWithoutReadOnlyHintIsDestructive) {
  expect(classify(tool("get_x", "", ann(std::nullopt, true))), kDestructive, kHigh,
         signal_kind::annotations);
}

TEST(Classify, DestructiveFalseAloneLeavesItToTheWords) {
  expect(classify(tool("list_x", "", ann(std::nullopt, false))), kRead, kLow, signal_kind::name);
  expect(classify(tool("x", "", ann(std::nullopt, false))), kExecute, kMedium,
         signal_kind::fallback);
}

TEST(Classify, IdempotentAndOpenWorldAloneDoNotDecideTheClass) {
  expect(classify(tool("get_x", "", ann(std::nullopt, std::nullopt, true, false))), kRead, kLow,
         signal_kind::name);
}

// --- risk -----------------------------------------------------------------------------------

TEST(Classify, OpenWorldRaisesTheRiskOneLevel) {
  expect(classify(tool("x", "", ann(true, false, true, true))), kRead, kMedium,
         signal_kind::annotations);
  expect(classify(tool("x", "", ann(false, false, true, true))), kWrite, kHigh,
         signal_kind::annotations);
  expect(classify(tool("x", "", ann(false, true, true, true))), kDestructive, kHigh,
         signal_kind::annotations);
  // openWorldHint=false, or absent, changes nothing.
  expect(classify(tool("x", "", ann(true, false, true, false))), kRead, kLow,
         signal_kind::annotations);
  // It applies when the words decided, too.
  expect(classify(tool("list_x", "", ann(std::nullopt, std::nullopt, std::nullopt, true))), kRead,
         kMedium, signal_kind::name);
}

// --- names ----------------------------------------------------------------------------------

TEST(Classify, NameVerbsOfEachClass) {
  expect(classify(tool("get_user")), kRead, kLow, signal_kind::name);
  expect(classify(tool("list_buckets")), kRead, kLow, signal_kind::name);
  expect(classify(tool("describe_instances")), kRead, kLow, signal_kind::name);
  expect(classify(tool("create_user")), kWrite, kMedium, signal_kind::name);
  expect(classify(tool("update_record")), kWrite, kMedium, signal_kind::name);
  expect(classify(tool("put_object")), kWrite, kMedium, signal_kind::name);
  expect(classify(tool("start_job")), kExecute, kMedium, signal_kind::name);
  expect(classify(tool("run_query")), kExecute, kMedium, signal_kind::name);
  expect(classify(tool("invoke_lambda")), kExecute, kMedium, signal_kind::name);
  expect(classify(tool("delete_bucket")), kDestructive, kHigh, signal_kind::name);
  expect(classify(tool("drop_table")), kDestructive, kHigh, signal_kind::name);
  expect(classify(tool("terminate_instances")), kDestructive, kHigh, signal_kind::name);
}

TEST(Classify, NameWordsSplitOnCaseAndPunctuation) {
  expect(classify(tool("getUserProfile")), kRead, kLow, signal_kind::name);
  expect(classify(tool("HTTPDelete")), kDestructive, kHigh, signal_kind::name);
  expect(classify(tool("bucket.create")), kWrite, kMedium, signal_kind::name);
  expect(classify(tool("jobs/run-now")), kExecute, kMedium, signal_kind::name);
  // Words, not substrings: "listen" is not "list", "target" is not "get".
  expect(classify(tool("listen_target")), kExecute, kMedium, signal_kind::fallback);
}

TEST(Classify, FirstNameVerbDecidesButDestructiveAnywhereWins) {
  expect(classify(tool("get_run_status")), kRead, kLow, signal_kind::name);
  expect(classify(tool("user_delete")), kDestructive, kHigh, signal_kind::name);
  expect(classify(tool("get_or_delete")), kDestructive, kHigh, signal_kind::name);
}

// --- descriptions ---------------------------------------------------------------------------

TEST(Classify, DescriptionFirstVerbDecidesWhenTheNameSaysNothing) {
  expect(classify(tool("frobnicate", "Deletes every widget.")), kDestructive, kHigh,
         signal_kind::description);
  expect(classify(tool("widgets", "Lists widgets; never deletes them.")), kRead, kLow,
         signal_kind::description);
  expect(classify(tool("q", "Queries the index.")), kRead, kLow, signal_kind::description);
  expect(classify(tool("p", "Pushes a commit.")), kWrite, kMedium, signal_kind::description);
}

TEST(Classify, NothingDecidesFallsBackToExecute) {
  const classification c = classify(tool("mystery", "Does a thing."));
  expect(c, kExecute, kMedium, signal_kind::fallback);
}

// --- precedence: annotations > name > description -------------------------------------------

TEST(Classify, AnnotationsBeatTheName) {
  expect(classify(tool("delete_everything", "Deletes it all.", ann(true, std::nullopt))), kRead,
         kLow, signal_kind::annotations);
  expect(classify(tool("get_thing", "Gets a thing.", ann(false, true))), kDestructive, kHigh,
         signal_kind::annotations);
}

TEST(Classify, NameBeatsTheDescription) {
  expect(classify(tool("get_thing", "Deletes the thing.")), kRead, kLow, signal_kind::name);
  expect(classify(tool("delete_thing", "Gets the thing.")), kDestructive, kHigh, signal_kind::name);
}

TEST(VerbClass, InflectionsAndCase) {
  EXPECT_EQ(verb_class("Lists"), tool_class::read);
  EXPECT_EQ(verb_class("pushes"), tool_class::write);
  EXPECT_EQ(verb_class("queries"), tool_class::read);
  EXPECT_EQ(verb_class("DELETE"), tool_class::destructive);
  EXPECT_EQ(verb_class("process"), tool_class::execute);
  EXPECT_EQ(verb_class("deleted"), std::nullopt);
  EXPECT_EQ(verb_class("status"), std::nullopt);
  EXPECT_EQ(verb_class(""), std::nullopt);
}

}  // namespace
}  // namespace sluice::init
