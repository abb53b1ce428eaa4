#include "policy/loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "tests/temp_file.h"

namespace sluice::policy {
namespace {

using ::testing::HasSubstr;

constexpr std::string_view kPolicyLayer =
    R"({"version":"1","default":"deny","tools":{"policy_generation_start":{"limits":[{"counter":"policy_generation_start_rate","window":"minute","max":10,"scope":"grant"}]}}})";

// Wraps a `tools` body in a valid header.
std::string with_tools(std::string_view tools) {
  return std::string(R"({"version":"1","default":"deny","tools":)") + std::string(tools) + "}";
}

policy_def load_ok(std::string_view text) {
  load_result r = load_policy_text(text, "p.json");
  for (const load_error& e : r.errors)
    ADD_FAILURE() << e.to_string();
  EXPECT_TRUE(r.policy.has_value());
  return r.policy.value_or(policy_def{});
}

// Loads text that must fail; checks that no policy is returned.
std::vector<load_error> load_bad(std::string_view text) {
  load_result r = load_policy_text(text, "p.json");
  EXPECT_FALSE(r.policy.has_value());
  EXPECT_FALSE(r.errors.empty());
  for (const load_error& e : r.errors)
    EXPECT_EQ(e.file, "p.json");
  return r.errors;
}

// The single error of a load that must fail with exactly one.
load_error one_error(std::string_view text) {
  std::vector<load_error> errors = load_bad(text);
  EXPECT_EQ(errors.size(), 1u);
  for (const load_error& e : errors) {
    if (errors.size() != 1) ADD_FAILURE() << "error: " << e.to_string();
  }
  return errors.empty() ? load_error{} : errors.front();
}

// ---------------------------------------------------------------------------------------
// Accepted policies

TEST(LoaderTest, PolicyLayerExampleLoadsUnchanged) {
  const policy_def p = load_ok(kPolicyLayer);
  EXPECT_EQ(p.source, "p.json");
  EXPECT_EQ(p.default_action, action::deny);
  ASSERT_EQ(p.tools.size(), 1u);
  const rule_def& r = p.tools[0];
  EXPECT_EQ(r.key, "policy_generation_start");
  EXPECT_FALSE(r.is_pattern);
  EXPECT_EQ(r.act, action::allow);
  EXPECT_EQ(r.reason, "");
  EXPECT_EQ(r.pointer, "/tools/policy_generation_start");
  EXPECT_TRUE(r.require.empty());
  EXPECT_TRUE(r.deny_if.empty());
  ASSERT_EQ(r.limits.size(), 1u);
  const limit_def& l = r.limits[0];
  EXPECT_EQ(l.counter, "policy_generation_start_rate");
  EXPECT_EQ(l.window_seconds, 60);
  EXPECT_EQ(l.max, 10u);
  EXPECT_EQ(l.scope, scope_kind::grant);
  EXPECT_TRUE(l.arg.segments.empty());
  EXPECT_EQ(l.pointer, "/tools/policy_generation_start/limits/0");
  EXPECT_TRUE(p.hide.empty());
  EXPECT_TRUE(p.all_tools.empty());
  EXPECT_FALSE(p.has_resources);
  EXPECT_TRUE(p.resources.empty());
  EXPECT_FALSE(p.has_prompts);
  EXPECT_TRUE(p.prompts.empty());
}

TEST(LoaderTest, MinimalPolicy) {
  const policy_def p = load_ok(R"({"version":"1","default":"allow"})");
  EXPECT_EQ(p.default_action, action::allow);
  EXPECT_TRUE(p.tools.empty());
  EXPECT_FALSE(p.has_resources);
  EXPECT_FALSE(p.has_prompts);
}

TEST(LoaderTest, EveryFieldAccepted) {
  const policy_def p = load_ok(R"({
    "version": "1",
    "default": "allow",
    "tools": {
      "delete_bucket": {
        "action": "require_approval",
        "reason": "destructive",
        "limits": [
          {"counter": "del", "window": "second", "max": 1},
          {"counter": "del_h", "window": "hour", "max": 4294967295, "scope": "session"},
          {"counter": "del_d", "window": "day", "max": 3, "scope": "global"},
          {"counter": "per_bucket", "window": 90, "max": 2, "scope": "arg:args.bucket.name"},
          {"counter": "per_ptr", "window": 1e3, "max": 5.0, "scope": "arg:/a~1b/c~0d"}
        ],
        "require": [
          {"path": "args.bucket", "op": "exists"},
          {"path": "args.region", "op": "in", "value": ["eu", 1, true, null]},
          {"path": "args.size", "op": "lt", "value": 10},
          {"path": "args.size", "op": "lte", "value": 10.5},
          {"path": "args.size", "op": "gt", "value": -1},
          {"path": "args.size", "op": "gte", "value": 0},
          {"path": "args.name", "op": "max_length", "value": 0}
        ],
        "deny_if": [
          {"path": "/bucket", "op": "eq", "value": "prod"},
          {"path": "/bucket", "op": "neq", "value": null},
          {"path": "/bucket", "op": "not_in", "value": ["a"]},
          {"path": "/bucket", "op": "regex", "value": "^prod-.*$"},
          {"path": "/bucket", "op": "contains", "value": "prod"},
          {"path": "/force", "op": "not_exists"},
          {"path": "/force", "op": "eq", "value": false}
        ]
      },
      "read_*": {"action": "allow"},
      "drop_?": {"action": "deny", "reason": "no"}
    },
    "hide": ["internal_*", "debug"],
    "all_tools": {"limits": [{"counter": "all", "window": "minute", "max": 100},
                             {"counter": "all_g", "window": 60, "max": 5, "scope": "grant"}]},
    "resources": {"file:///etc/*": {"action": "deny"}},
    "prompts": {"summarize": {}}
  })");
  EXPECT_EQ(p.default_action, action::allow);
  ASSERT_EQ(p.tools.size(), 3u);

  const rule_def& del = p.tools[0];
  EXPECT_EQ(del.key, "delete_bucket");
  EXPECT_EQ(del.act, action::require_approval);
  EXPECT_EQ(del.reason, "destructive");
  ASSERT_EQ(del.limits.size(), 5u);
  EXPECT_EQ(del.limits[0].window_seconds, 1);
  EXPECT_EQ(del.limits[0].scope, scope_kind::global);
  EXPECT_EQ(del.limits[1].window_seconds, 3600);
  EXPECT_EQ(del.limits[1].max, 4294967295u);
  EXPECT_EQ(del.limits[1].scope, scope_kind::session);
  EXPECT_EQ(del.limits[2].window_seconds, 86400);
  EXPECT_EQ(del.limits[2].scope, scope_kind::global);
  EXPECT_EQ(del.limits[3].window_seconds, 90);
  EXPECT_EQ(del.limits[3].scope, scope_kind::arg);
  EXPECT_EQ(del.limits[3].arg.segments, (std::vector<std::string>{"bucket", "name"}));
  EXPECT_EQ(del.limits[3].arg.text, "args.bucket.name");
  EXPECT_EQ(del.limits[3].pointer, "/tools/delete_bucket/limits/3");
  EXPECT_EQ(del.limits[4].window_seconds, 1000);
  EXPECT_EQ(del.limits[4].max, 5u);
  EXPECT_EQ(del.limits[4].arg.segments, (std::vector<std::string>{"a/b", "c~d"}));

  ASSERT_EQ(del.require.size(), 7u);
  EXPECT_EQ(del.require[0].op, check_op::exists);
  EXPECT_EQ(del.require[0].path.segments, (std::vector<std::string>{"bucket"}));
  EXPECT_EQ(del.require[0].pointer, "/tools/delete_bucket/require/0");
  EXPECT_EQ(del.require[1].op, check_op::in);
  ASSERT_EQ(del.require[1].value.type, literal::kind::list);
  ASSERT_EQ(del.require[1].value.items.size(), 4u);
  EXPECT_EQ(del.require[1].value.items[0].type, literal::kind::string);
  EXPECT_EQ(del.require[1].value.items[0].string, "eu");
  EXPECT_EQ(del.require[1].value.items[1].type, literal::kind::number);
  EXPECT_EQ(del.require[1].value.items[1].number, 1.0);
  EXPECT_EQ(del.require[1].value.items[2].type, literal::kind::boolean);
  EXPECT_TRUE(del.require[1].value.items[2].boolean);
  EXPECT_EQ(del.require[1].value.items[3].type, literal::kind::null);
  EXPECT_EQ(del.require[2].op, check_op::lt);
  EXPECT_EQ(del.require[2].value.number, 10.0);
  EXPECT_EQ(del.require[3].op, check_op::lte);
  EXPECT_EQ(del.require[3].value.number, 10.5);
  EXPECT_EQ(del.require[4].op, check_op::gt);
  EXPECT_EQ(del.require[4].value.number, -1.0);
  EXPECT_EQ(del.require[5].op, check_op::gte);
  EXPECT_EQ(del.require[6].op, check_op::max_length);
  EXPECT_EQ(del.require[6].value.type, literal::kind::number);
  EXPECT_EQ(del.require[6].value.number, 0.0);

  ASSERT_EQ(del.deny_if.size(), 7u);
  EXPECT_EQ(del.deny_if[0].op, check_op::eq);
  EXPECT_EQ(del.deny_if[0].value.string, "prod");
  EXPECT_EQ(del.deny_if[0].path.text, "/bucket");
  EXPECT_EQ(del.deny_if[0].pointer, "/tools/delete_bucket/deny_if/0");
  EXPECT_EQ(del.deny_if[1].op, check_op::neq);
  EXPECT_EQ(del.deny_if[1].value.type, literal::kind::null);
  EXPECT_EQ(del.deny_if[2].op, check_op::not_in);
  EXPECT_EQ(del.deny_if[3].op, check_op::regex);
  EXPECT_EQ(del.deny_if[3].value.string, "^prod-.*$");
  EXPECT_EQ(del.deny_if[4].op, check_op::contains);
  EXPECT_EQ(del.deny_if[5].op, check_op::not_exists);
  EXPECT_EQ(del.deny_if[6].value.type, literal::kind::boolean);
  EXPECT_FALSE(del.deny_if[6].value.boolean);

  EXPECT_EQ(p.tools[1].key, "read_*");
  EXPECT_TRUE(p.tools[1].is_pattern);
  EXPECT_EQ(p.tools[1].act, action::allow);
  EXPECT_EQ(p.tools[2].key, "drop_?");
  EXPECT_TRUE(p.tools[2].is_pattern);
  EXPECT_EQ(p.tools[2].act, action::deny);
  EXPECT_EQ(p.tools[2].reason, "no");

  ASSERT_EQ(p.hide.size(), 2u);
  EXPECT_EQ(p.hide[0].key, "internal_*");
  EXPECT_TRUE(p.hide[0].is_pattern);
  EXPECT_EQ(p.hide[0].pointer, "/hide/0");
  EXPECT_EQ(p.hide[1].key, "debug");
  EXPECT_FALSE(p.hide[1].is_pattern);
  EXPECT_EQ(p.hide[1].pointer, "/hide/1");

  ASSERT_EQ(p.all_tools.size(), 2u);
  EXPECT_EQ(p.all_tools[0].counter, "all");
  EXPECT_EQ(p.all_tools[0].max, 100u);
  EXPECT_EQ(p.all_tools[1].pointer, "/all_tools/limits/1");
  EXPECT_EQ(p.all_tools[1].scope, scope_kind::grant);

  EXPECT_TRUE(p.has_resources);
  ASSERT_EQ(p.resources.size(), 1u);
  EXPECT_EQ(p.resources[0].key, "file:///etc/*");
  EXPECT_TRUE(p.resources[0].is_pattern);
  EXPECT_EQ(p.resources[0].act, action::deny);
  EXPECT_EQ(p.resources[0].pointer, "/resources/file:~1~1~1etc~1*");

  EXPECT_TRUE(p.has_prompts);
  ASSERT_EQ(p.prompts.size(), 1u);
  EXPECT_EQ(p.prompts[0].key, "summarize");
  EXPECT_EQ(p.prompts[0].act, action::allow);
  EXPECT_EQ(p.prompts[0].pointer, "/prompts/summarize");
}

TEST(LoaderTest, EmptySectionsAreStillPresent) {
  const policy_def p =
      load_ok(R"({"version":"1","default":"deny","tools":{},"resources":{},"prompts":{}})");
  EXPECT_TRUE(p.has_resources);
  EXPECT_TRUE(p.has_prompts);
  EXPECT_TRUE(p.resources.empty());
}

TEST(LoaderTest, RulesKeepFileOrder) {
  const policy_def p = load_ok(with_tools(R"({"z":{},"a":{},"m*":{},"b":{}})"));
  ASSERT_EQ(p.tools.size(), 4u);
  EXPECT_EQ(p.tools[0].key, "z");
  EXPECT_EQ(p.tools[1].key, "a");
  EXPECT_EQ(p.tools[2].key, "m*");
  EXPECT_EQ(p.tools[3].key, "b");
}

TEST(LoaderTest, StringsAreUnescaped) {
  const policy_def p = load_ok(
      with_tools(R"({"t\u00e9st\"":{"deny_if":[{"path":"args.x","op":"eq","value":"a\nb"}]}})"));
  ASSERT_EQ(p.tools.size(), 1u);
  EXPECT_EQ(p.tools[0].key, "t\xc3\xa9st\"");
  EXPECT_EQ(p.tools[0].deny_if[0].value.string, "a\nb");
}

TEST(LoaderTest, SameCounterMayDifferInMax) {
  const policy_def p = load_ok(with_tools(R"({
    "a": {"limits": [{"counter": "c", "window": "minute", "max": 1, "scope": "grant"}]},
    "b": {"limits": [{"counter": "c", "window": 60, "max": 7, "scope": "grant"}]}})"));
  EXPECT_EQ(p.tools[0].limits[0].max, 1u);
  EXPECT_EQ(p.tools[1].limits[0].max, 7u);
}

TEST(LoaderTest, AbsentScopeEqualsGlobal) {
  load_ok(R"({"version":"1","default":"deny",
    "all_tools": {"limits": [{"counter": "c", "window": "minute", "max": 1}]},
    "tools": {"a": {"limits": [{"counter": "c", "window": "minute", "max": 2, "scope": "global"}]}}})");
}

// ---------------------------------------------------------------------------------------
// Pointers

TEST(LoaderTest, PointersEscapeTildeAndSlash) {
  const policy_def p = load_ok(with_tools(
      R"({"a/b~c": {"limits": [{"counter":"c","window":1,"max":1}],
                    "deny_if": [{"path":"args.x","op":"exists"}]}})"));
  ASSERT_EQ(p.tools.size(), 1u);
  EXPECT_EQ(p.tools[0].key, "a/b~c");
  EXPECT_EQ(p.tools[0].pointer, "/tools/a~1b~0c");
  EXPECT_EQ(p.tools[0].limits[0].pointer, "/tools/a~1b~0c/limits/0");
  EXPECT_EQ(p.tools[0].deny_if[0].pointer, "/tools/a~1b~0c/deny_if/0");
}

TEST(LoaderTest, ErrorPointersEscapeTildeAndSlash) {
  const load_error e = one_error(with_tools(R"({"a/b~c": {"acton": "deny"}})"));
  EXPECT_EQ(e.pointer, "/tools/a~1b~0c/acton");
  EXPECT_THAT(e.message, HasSubstr("unknown field"));
}

// ---------------------------------------------------------------------------------------
// Unknown fields at every level

TEST(LoaderTest, UnknownTopLevelField) {
  const load_error e = one_error(R"({"version":"1","default":"deny","tool":{}})");
  EXPECT_EQ(e.pointer, "/tool");
  EXPECT_EQ(e.message,
            "unknown field; expected one of version, default, tools, hide, all_tools, resources, "
            "prompts");
}

TEST(LoaderTest, UnknownRuleField) {
  const load_error e = one_error(with_tools(R"({"x": {"acton": "deny"}})"));
  EXPECT_EQ(e.pointer, "/tools/x/acton");
  EXPECT_EQ(e.message, "unknown field; expected one of action, reason, limits, require, deny_if");
  EXPECT_EQ(e.to_string(),
            "p.json: /tools/x/acton: unknown field; expected one of action, reason, limits, "
            "require, deny_if");
}

TEST(LoaderTest, UnknownLimitField) {
  const load_error e =
      one_error(with_tools(R"({"x": {"limits": [{"counter":"c","window":1,"max":1,"burst":2}]}})"));
  EXPECT_EQ(e.pointer, "/tools/x/limits/0/burst");
  EXPECT_EQ(e.message, "unknown field; expected one of counter, window, max, scope");
}

TEST(LoaderTest, UnknownCheckField) {
  const load_error e = one_error(
      with_tools(R"({"x": {"require": [{"path":"args.a","op":"exists","negate":true}]}})"));
  EXPECT_EQ(e.pointer, "/tools/x/require/0/negate");
  EXPECT_EQ(e.message, "unknown field; expected one of path, op, value");
}

TEST(LoaderTest, UnknownAllToolsField) {
  const load_error e =
      one_error(R"({"version":"1","default":"deny","all_tools":{"action":"deny"}})");
  EXPECT_EQ(e.pointer, "/all_tools/action");
  EXPECT_EQ(e.message, "unknown field; expected one of limits");
}

TEST(LoaderTest, UnknownFieldInResourcesAndPrompts) {
  const std::vector<load_error> errors = load_bad(
      R"({"version":"1","default":"deny","resources":{"file:///x":{"uri":1}},"prompts":{"p":{"x":1}}})");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].pointer, "/resources/file:~1~1~1x/uri");
  EXPECT_THAT(errors[0].message, HasSubstr("unknown field"));
  EXPECT_EQ(errors[1].pointer, "/prompts/p/x");
  EXPECT_THAT(errors[1].message, HasSubstr("unknown field"));
}

// ---------------------------------------------------------------------------------------
// Duplicate keys

TEST(LoaderTest, DuplicateTopLevelKey) {
  const load_error e = one_error(R"({"version":"1","default":"deny","default":"allow"})");
  EXPECT_EQ(e.pointer, "/default");
  EXPECT_EQ(e.message, "duplicate key \"default\"");
}

TEST(LoaderTest, DuplicateToolName) {
  const load_error e = one_error(with_tools(R"({"x": {}, "y": {}, "x": {"action":"deny"}})"));
  EXPECT_EQ(e.pointer, "/tools/x");
  EXPECT_EQ(e.message, "duplicate key \"x\"");
}

TEST(LoaderTest, DuplicateNestedKeys) {
  const std::vector<load_error> errors = load_bad(with_tools(R"({"x": {
      "action": "deny", "action": "allow",
      "limits": [{"counter":"c","window":1,"max":1,"max":2}],
      "deny_if": [{"path":"args.a","op":"exists","op":"eq"}]}})"));
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].pointer, "/tools/x/action");
  EXPECT_EQ(errors[0].message, "duplicate key \"action\"");
  EXPECT_EQ(errors[1].pointer, "/tools/x/limits/0/max");
  EXPECT_EQ(errors[1].message, "duplicate key \"max\"");
  EXPECT_EQ(errors[2].pointer, "/tools/x/deny_if/0/op");
  EXPECT_EQ(errors[2].message, "duplicate key \"op\"");
}

TEST(LoaderTest, DuplicateKeyInAllTools) {
  const load_error e =
      one_error(R"({"version":"1","default":"deny","all_tools":{"limits":[],"limits":[]}})");
  EXPECT_EQ(e.pointer, "/all_tools/limits");
  EXPECT_EQ(e.message, "duplicate key \"limits\"");
}

TEST(LoaderTest, DuplicateHideEntry) {
  const load_error e = one_error(R"({"version":"1","default":"deny","hide":["a","b*","a"]})");
  EXPECT_EQ(e.pointer, "/hide/2");
  EXPECT_THAT(e.message, HasSubstr("duplicate entry \"a\""));
  EXPECT_THAT(e.message, HasSubstr("/hide/0"));
}

// ---------------------------------------------------------------------------------------
// Header fields

TEST(LoaderTest, VersionMustBeTheString1) {
  for (std::string_view v : {R"(1)", R"("2")", R"("1.0")", R"(null)"}) {
    const load_error e =
        one_error(std::string(R"({"version":)") + std::string(v) + R"(,"default":"deny"})");
    EXPECT_EQ(e.pointer, "/version") << v;
    EXPECT_THAT(e.message, HasSubstr("expected the string \"1\", got " + std::string(v)));
  }
}

TEST(LoaderTest, MissingVersionAndDefault) {
  const std::vector<load_error> errors = load_bad(R"({"tools":{}})");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].pointer, "/version");
  EXPECT_THAT(errors[0].message, HasSubstr("missing required field"));
  EXPECT_EQ(errors[1].pointer, "/default");
  EXPECT_THAT(errors[1].message, HasSubstr("missing required field"));
  EXPECT_THAT(errors[1].message, HasSubstr("\"allow\" or \"deny\""));
}

TEST(LoaderTest, BadDefault) {
  const load_error e = one_error(R"({"version":"1","default":"require_approval"})");
  EXPECT_EQ(e.pointer, "/default");
  EXPECT_EQ(e.message, "expected \"allow\" or \"deny\", got \"require_approval\"");
}

TEST(LoaderTest, SectionsOfTheWrongType) {
  const std::vector<load_error> errors = load_bad(
      R"({"version":"1","default":"deny","tools":[],"hide":"x","all_tools":[],"resources":1,"prompts":null})");
  ASSERT_EQ(errors.size(), 5u);
  EXPECT_EQ(errors[0].pointer, "/tools");
  EXPECT_THAT(errors[0].message, HasSubstr("expected an object mapping tool names"));
  EXPECT_THAT(errors[0].message, HasSubstr("got an array"));
  EXPECT_EQ(errors[1].pointer, "/hide");
  EXPECT_THAT(errors[1].message, HasSubstr("expected an array"));
  EXPECT_EQ(errors[2].pointer, "/all_tools");
  EXPECT_THAT(errors[2].message, HasSubstr("expected an object"));
  EXPECT_EQ(errors[3].pointer, "/resources");
  EXPECT_THAT(errors[3].message, HasSubstr("got 1"));
  EXPECT_EQ(errors[4].pointer, "/prompts");
  EXPECT_THAT(errors[4].message, HasSubstr("got null"));
}

TEST(LoaderTest, TopLevelMustBeAnObject) {
  const load_error e = one_error("[]");
  EXPECT_EQ(e.pointer, "");
  EXPECT_THAT(e.message, HasSubstr("expected a JSON object at the top level"));
  EXPECT_EQ(e.to_string(), "p.json: /: expected a JSON object at the top level, got an array");
}

// ---------------------------------------------------------------------------------------
// Rules

TEST(LoaderTest, RuleMustBeAnObject) {
  const load_error e = one_error(with_tools(R"({"x": "deny"})"));
  EXPECT_EQ(e.pointer, "/tools/x");
  EXPECT_THAT(e.message, HasSubstr("expected a rule object"));
  EXPECT_THAT(e.message, HasSubstr("got \"deny\""));
}

TEST(LoaderTest, BadActionAndReason) {
  const std::vector<load_error> errors =
      load_bad(with_tools(R"({"x": {"action": "block", "reason": 5}})"));
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].pointer, "/tools/x/action");
  EXPECT_EQ(errors[0].message,
            "expected \"allow\", \"deny\" or \"require_approval\", got \"block\"");
  EXPECT_EQ(errors[1].pointer, "/tools/x/reason");
  EXPECT_EQ(errors[1].message, "expected a string, got 5");
}

TEST(LoaderTest, EmptyToolName) {
  const load_error e = one_error(with_tools(R"({"": {}})"));
  EXPECT_EQ(e.pointer, "/tools/");
  EXPECT_THAT(e.message, HasSubstr("empty name"));
}

TEST(LoaderTest, ListsOfTheWrongType) {
  const std::vector<load_error> errors =
      load_bad(with_tools(R"({"x": {"limits": {}, "require": "args.a", "deny_if": [1]}})"));
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].pointer, "/tools/x/limits");
  EXPECT_THAT(errors[0].message, HasSubstr("expected an array of limits, got an object"));
  EXPECT_EQ(errors[1].pointer, "/tools/x/require");
  EXPECT_THAT(errors[1].message, HasSubstr("expected an array of checks"));
  EXPECT_EQ(errors[2].pointer, "/tools/x/deny_if/0");
  EXPECT_THAT(errors[2].message, HasSubstr("expected a check object"));
}

// ---------------------------------------------------------------------------------------
// Limits

std::string limit_policy(std::string_view limit) {
  return with_tools(std::string(R"({"x": {"limits": [)") + std::string(limit) + "]}}");
}

TEST(LoaderTest, BadWindow) {
  const load_error e = one_error(limit_policy(R"({"counter":"c","window":"fortnight","max":1})"));
  EXPECT_EQ(e.pointer, "/tools/x/limits/0/window");
  EXPECT_EQ(e.message,
            "expected \"second\", \"minute\", \"hour\", \"day\" or a positive whole number of "
            "seconds, got \"fortnight\"");
}

TEST(LoaderTest, WindowNumbersMustBePositiveWhole) {
  for (std::string_view w : {"0", "-60", "1.5", "-0.0", "true", "[60]", "\"60\"", "\"Minute\""}) {
    const load_error e = one_error(
        limit_policy(std::string(R"({"counter":"c","window":)") + std::string(w) + R"(,"max":1})"));
    EXPECT_EQ(e.pointer, "/tools/x/limits/0/window") << w;
    EXPECT_THAT(e.message, HasSubstr("positive whole number of seconds")) << w;
  }
}

TEST(LoaderTest, WindowHasAnUpperBound) {
  // window_seconds * 1e9 must fit in int64_t downstream.
  load_ok(limit_policy(R"({"counter":"c","window":4294967295,"max":1})"));
  const load_error e = one_error(limit_policy(R"({"counter":"c","window":4294967296,"max":1})"));
  EXPECT_EQ(e.pointer, "/tools/x/limits/0/window");
  EXPECT_EQ(e.message, "expected a whole number of seconds from 1 to 4294967295, got 4294967296");
}

TEST(LoaderTest, BadMax) {
  for (std::string_view m :
       {"0", "-1", "1.5", "4294967296", "18446744073709551615", "\"10\"", "null"}) {
    const load_error e = one_error(
        limit_policy(std::string(R"({"counter":"c","window":1,"max":)") + std::string(m) + "}"));
    EXPECT_EQ(e.pointer, "/tools/x/limits/0/max") << m;
    EXPECT_EQ(e.message, "expected a whole number from 1 to 4294967295, got " + std::string(m));
  }
}

TEST(LoaderTest, BadScope) {
  for (std::string_view s :
       {R"("user")", R"("arg:")", R"("arg:a.b")", R"("arg:args.")", R"("Grant")", "1"}) {
    const load_error e = one_error(limit_policy(
        std::string(R"({"counter":"c","window":1,"max":1,"scope":)") + std::string(s) + "}"));
    EXPECT_EQ(e.pointer, "/tools/x/limits/0/scope") << s;
    EXPECT_THAT(e.message, HasSubstr("\"global\", \"grant\", \"session\" or \"arg:<path>\""));
    EXPECT_THAT(e.message, HasSubstr("got " + std::string(s)));
  }
}

TEST(LoaderTest, BadCounter) {
  for (std::string_view c : {R"("")", "1", "null"}) {
    const load_error e = one_error(
        limit_policy(std::string(R"({"counter":)") + std::string(c) + R"(,"window":1,"max":1})"));
    EXPECT_EQ(e.pointer, "/tools/x/limits/0/counter") << c;
    EXPECT_THAT(e.message, HasSubstr("expected a non-empty counter name"));
  }
}

TEST(LoaderTest, LimitMissingRequiredFields) {
  const std::vector<load_error> errors = load_bad(limit_policy(R"({"scope":"grant"})"));
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].pointer, "/tools/x/limits/0/counter");
  EXPECT_THAT(errors[0].message, HasSubstr("missing required field"));
  EXPECT_EQ(errors[1].pointer, "/tools/x/limits/0/window");
  EXPECT_THAT(errors[1].message, HasSubstr("missing required field"));
  EXPECT_EQ(errors[2].pointer, "/tools/x/limits/0/max");
  EXPECT_THAT(errors[2].message, HasSubstr("missing required field"));
}

TEST(LoaderTest, LimitMustBeAnObject) {
  const load_error e = one_error(limit_policy(R"("c")"));
  EXPECT_EQ(e.pointer, "/tools/x/limits/0");
  EXPECT_THAT(e.message, HasSubstr("expected a limit object"));
}

TEST(LoaderTest, CounterWindowMismatch) {
  const load_error e = one_error(with_tools(R"({
    "a": {"limits": [{"counter": "x", "window": "minute", "max": 1}]},
    "b": {"limits": [{"counter": "y", "window": 1, "max": 1},
                     {"counter": "x", "window": "hour", "max": 1}]}})"));
  EXPECT_EQ(e.pointer, "/tools/b/limits/1");
  EXPECT_THAT(e.message,
              HasSubstr("counter 'x' is declared with window 60 at /tools/a/limits/0; every use "
                        "of a counter must have the same window and scope"));
}

TEST(LoaderTest, CounterScopeMismatchAcrossSections) {
  const load_error e = one_error(R"({"version":"1","default":"deny",
    "all_tools": {"limits": [{"counter": "x", "window": 60, "max": 1}]},
    "prompts": {"p": {"limits": [{"counter": "x", "window": 60, "max": 1, "scope": "grant"}]}}})");
  EXPECT_EQ(e.pointer, "/prompts/p/limits/0");
  EXPECT_THAT(e.message, HasSubstr("counter 'x' is declared with scope \"global\" at "
                                   "/all_tools/limits/0; every use of a counter must have the "
                                   "same window and scope"));
}

TEST(LoaderTest, CounterArgScopeComparesAsText) {
  const load_error e = one_error(with_tools(R"({
    "a": {"limits": [{"counter": "x", "window": 60, "max": 1, "scope": "arg:args.user"}]},
    "b": {"limits": [{"counter": "x", "window": 60, "max": 1, "scope": "arg:args.team"}]}})"));
  EXPECT_EQ(e.pointer, "/tools/b/limits/0");
  EXPECT_THAT(e.message, HasSubstr("scope \"arg:args.user\" at /tools/a/limits/0"));
}

TEST(LoaderTest, CounterOrderFollowsTheFile) {
  // resources come first in this file, so the tools limit is the later occurrence.
  const load_error e = one_error(R"({"version":"1","default":"deny",
    "resources": {"r": {"limits": [{"counter": "x", "window": 1, "max": 1}]}},
    "tools": {"t": {"limits": [{"counter": "x", "window": 2, "max": 1}]}}})");
  EXPECT_EQ(e.pointer, "/tools/t/limits/0");
  EXPECT_THAT(e.message, HasSubstr("window 1 at /resources/r/limits/0"));
}

// ---------------------------------------------------------------------------------------
// Checks

std::string check_policy(std::string_view check) {
  return with_tools(std::string(R"({"x": {"deny_if": [)") + std::string(check) + "]}}");
}

TEST(LoaderTest, BadOp) {
  const load_error e = one_error(check_policy(R"({"path":"args.a","op":"matches","value":"x"})"));
  EXPECT_EQ(e.pointer, "/tools/x/deny_if/0/op");
  EXPECT_EQ(e.message,
            "expected one of eq, neq, in, not_in, lt, lte, gt, gte, regex, contains, exists, "
            "not_exists, max_length, got \"matches\"");
}

TEST(LoaderTest, CheckMissingRequiredFields) {
  const std::vector<load_error> errors = load_bad(check_policy(R"({"value":1})"));
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].pointer, "/tools/x/deny_if/0/path");
  EXPECT_THAT(errors[0].message, HasSubstr("missing required field"));
  EXPECT_EQ(errors[1].pointer, "/tools/x/deny_if/0/op");
  EXPECT_THAT(errors[1].message, HasSubstr("missing required field"));
}

TEST(LoaderTest, BadArgPaths) {
  for (std::string_view path :
       {R"("")", R"("args")", R"("args.")", R"("a.b")", R"("args.a..b")", R"("args..a")", R"("/")",
        R"("/a//b")", R"("/a/")", R"("/a~2")", R"("/a~")", "5"}) {
    const load_error e = one_error(
        check_policy(std::string(R"({"path":)") + std::string(path) + R"(,"op":"exists"})"));
    EXPECT_EQ(e.pointer, "/tools/x/deny_if/0/path") << path;
    EXPECT_THAT(e.message, HasSubstr("expected an argument path")) << path;
    EXPECT_THAT(e.message, HasSubstr("got " + std::string(path))) << path;
  }
}

TEST(LoaderTest, ValueOnExistsIsAnError) {
  const load_error e = one_error(check_policy(R"({"path":"args.a","op":"not_exists","value":1})"));
  EXPECT_EQ(e.pointer, "/tools/x/deny_if/0/value");
  EXPECT_THAT(e.message, HasSubstr("takes no value"));
}

TEST(LoaderTest, MissingValue) {
  for (std::string_view op :
       {"eq", "neq", "in", "not_in", "lt", "lte", "gt", "gte", "regex", "contains", "max_length"}) {
    const load_error e = one_error(
        check_policy(std::string(R"({"path":"args.a","op":")") + std::string(op) + "\"}"));
    EXPECT_EQ(e.pointer, "/tools/x/deny_if/0/value") << op;
    EXPECT_THAT(e.message, HasSubstr("missing required field for op \"" + std::string(op) + "\""));
  }
}

TEST(LoaderTest, ValueTypesPerOp) {
  struct bad {
    std::string_view op;
    std::string_view value;
    std::string_view expected;
  };
  for (const bad& b : {
           bad{"eq", "[1]", "expected a string, number, boolean or null"},
           bad{"neq", "{}", "expected a string, number, boolean or null"},
           bad{"contains", "[\"a\"]", "expected a string, number, boolean or null"},
           bad{"in", "[]", "expected a non-empty array"},
           bad{"not_in", "\"a\"", "expected a non-empty array"},
           bad{"lt", "\"3\"", "expected a number"},
           bad{"lte", "null", "expected a number"},
           bad{"gt", "true", "expected a number"},
           bad{"gte", "[1]", "expected a number"},
           bad{"max_length", "-1", "expected a non-negative whole number"},
           bad{"max_length", "2.5", "expected a non-negative whole number"},
           bad{"max_length", "\"5\"", "expected a non-negative whole number"},
           bad{"regex", "5", "expected a string holding an RE2 regular expression"},
       }) {
    const load_error e =
        one_error(check_policy(std::string(R"({"path":"args.a","op":")") + std::string(b.op) +
                               R"(","value":)" + std::string(b.value) + "}"));
    EXPECT_EQ(e.pointer, "/tools/x/deny_if/0/value") << b.op << " " << b.value;
    EXPECT_THAT(e.message, HasSubstr(std::string(b.expected))) << b.op << " " << b.value;
    EXPECT_THAT(e.message, HasSubstr("for op \"" + std::string(b.op) + "\""));
  }
}

TEST(LoaderTest, InListItemsMustBeScalars) {
  const std::vector<load_error> errors =
      load_bad(check_policy(R"({"path":"args.a","op":"in","value":["a",[1],{"b":2}]})"));
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].pointer, "/tools/x/deny_if/0/value/1");
  EXPECT_THAT(errors[0].message, HasSubstr("got an array"));
  EXPECT_EQ(errors[1].pointer, "/tools/x/deny_if/0/value/2");
  EXPECT_THAT(errors[1].message, HasSubstr("got an object"));
}

TEST(LoaderTest, RegexThatDoesNotCompile) {
  const load_error e = one_error(check_policy(R"({"path":"args.a","op":"regex","value":"(a"})"));
  EXPECT_EQ(e.pointer, "/tools/x/deny_if/0/value");
  EXPECT_THAT(e.message, HasSubstr("invalid regular expression \"(a\""));
  EXPECT_THAT(e.message, HasSubstr("missing )"));  // RE2's own words
}

TEST(LoaderTest, RegexWithBackreferenceIsNotRe2) {
  const load_error e =
      one_error(check_policy(R"({"path":"args.a","op":"regex","value":"(a)\\1"})"));
  EXPECT_EQ(e.pointer, "/tools/x/deny_if/0/value");
  EXPECT_THAT(e.message, HasSubstr("invalid regular expression"));
}

TEST(LoaderTest, ValidationContinuesAfterBadPath) {
  const std::vector<load_error> errors =
      load_bad(check_policy(R"({"path":"x","op":"lt","value":"y"})"));
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].pointer, "/tools/x/deny_if/0/path");
  EXPECT_EQ(errors[1].pointer, "/tools/x/deny_if/0/value");
}

// ---------------------------------------------------------------------------------------
// hide

TEST(LoaderTest, HideEntriesMustBeNonEmptyStrings) {
  const std::vector<load_error> errors =
      load_bad(R"({"version":"1","default":"deny","hide":["ok","",3,null]})");
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].pointer, "/hide/1");
  EXPECT_THAT(errors[0].message, HasSubstr("expected a non-empty tool name or glob, got \"\""));
  EXPECT_EQ(errors[1].pointer, "/hide/2");
  EXPECT_EQ(errors[2].pointer, "/hide/3");
}

// ---------------------------------------------------------------------------------------
// JSON syntax

TEST(LoaderTest, JsonSyntaxError) {
  const load_error e = one_error(R"({"version":"1","default":"deny",})");
  EXPECT_EQ(e.pointer, "");
  EXPECT_THAT(e.message, HasSubstr("invalid JSON"));
}

TEST(LoaderTest, TrailingGarbage) {
  const load_error e = one_error(std::string(kPolicyLayer) + " x");
  EXPECT_EQ(e.pointer, "");
  EXPECT_THAT(e.message, HasSubstr("invalid JSON"));
}

TEST(LoaderTest, TwoDocuments) {
  const load_error e = one_error(std::string(kPolicyLayer) + std::string(kPolicyLayer));
  EXPECT_EQ(e.pointer, "");
  EXPECT_THAT(e.message, HasSubstr("invalid JSON"));
}

TEST(LoaderTest, EmptyInput) {
  const load_error e = one_error("");
  EXPECT_EQ(e.pointer, "");
  EXPECT_THAT(e.message, HasSubstr("invalid JSON"));
  EXPECT_EQ(e.to_string().rfind("p.json: /: invalid JSON", 0), 0u);
}

TEST(LoaderTest, InvalidUtf8) {
  const load_error e =
      one_error("{\"version\":\"1\",\"default\":\"deny\",\"tools\":{\"\xff\":{}}}");
  EXPECT_EQ(e.pointer, "");
}

// ---------------------------------------------------------------------------------------
// Many errors in one load

TEST(LoaderTest, ReportsEveryError) {
  const std::vector<load_error> errors = load_bad(R"({
    "version": "2",
    "default": "deny",
    "extra": true,
    "tools": {
      "a": {"acton": "deny",
            "limits": [{"counter": "c", "window": "fortnight", "max": 0}],
            "deny_if": [{"path": "args.x", "op": "regex", "value": "["}]},
      "b": {"action": "maybe"}
    },
    "hide": ["a", "a"]
  })");
  ASSERT_EQ(errors.size(), 8u);
  EXPECT_EQ(errors[0].pointer, "/extra");
  EXPECT_EQ(errors[1].pointer, "/version");
  EXPECT_EQ(errors[2].pointer, "/tools/a/acton");
  EXPECT_EQ(errors[3].pointer, "/tools/a/limits/0/window");
  EXPECT_EQ(errors[4].pointer, "/tools/a/limits/0/max");
  EXPECT_EQ(errors[5].pointer, "/tools/a/deny_if/0/value");
  EXPECT_EQ(errors[6].pointer, "/tools/b/action");
  EXPECT_EQ(errors[7].pointer, "/hide/1");
}

// ---------------------------------------------------------------------------------------
// Files

TEST(LoaderTest, LoadsFile) {
  const sluice::testing::temp_file file(kPolicyLayer);
  const std::string& name = file.path();
  ASSERT_FALSE(name.empty());
  const load_result r = load_policy_file(name);
  EXPECT_TRUE(r.errors.empty());
  ASSERT_TRUE(r.policy.has_value());
  EXPECT_EQ(r.policy->source, name);
  ASSERT_EQ(r.policy->tools.size(), 1u);
  EXPECT_EQ(r.policy->tools[0].limits[0].max, 10u);
}

TEST(LoaderTest, FileErrorsNameTheFile) {
  const sluice::testing::temp_file file(
      R"({"version":"1","default":"deny","tools":{"x":{"acton":1}}})");
  const std::string& name = file.path();
  ASSERT_FALSE(name.empty());
  const load_result r = load_policy_file(name);
  EXPECT_FALSE(r.policy.has_value());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].file, name);
  EXPECT_EQ(r.errors[0].to_string().rfind(name + ": /tools/x/acton: unknown field", 0), 0u);
}

TEST(LoaderTest, UnreadableFileIsOneError) {
  const load_result r = load_policy_file("/nonexistent/sluice/policy.json");
  EXPECT_FALSE(r.policy.has_value());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].file, "/nonexistent/sluice/policy.json");
  EXPECT_EQ(r.errors[0].pointer, "");
  EXPECT_THAT(r.errors[0].message, HasSubstr("cannot read the policy file"));
  EXPECT_THAT(r.errors[0].message, HasSubstr("No such file or directory"));
}

// ---------------------------------------------------------------------------------------
// parse_arg_path and is_glob

TEST(ArgPathTest, DottedForm) {
  arg_path p;
  ASSERT_TRUE(parse_arg_path("args.a.b", p));
  EXPECT_EQ(p.segments, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(p.text, "args.a.b");
  ASSERT_TRUE(parse_arg_path("args.0", p));
  EXPECT_EQ(p.segments, (std::vector<std::string>{"0"}));
}

TEST(ArgPathTest, PointerForm) {
  arg_path p;
  ASSERT_TRUE(parse_arg_path("/a/b", p));
  EXPECT_EQ(p.segments, (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(parse_arg_path("/a~1b/~0c~01", p));
  EXPECT_EQ(p.segments, (std::vector<std::string>{"a/b", "~c~1"}));
  EXPECT_EQ(p.text, "/a~1b/~0c~01");
  ASSERT_TRUE(parse_arg_path("/args", p));
  EXPECT_EQ(p.segments, (std::vector<std::string>{"args"}));
}

TEST(ArgPathTest, Rejected) {
  arg_path p;
  for (std::string_view bad : {"", "args", "args.", "args..a", "args.a.", "a.b", "a", "/", "//",
                               "/a/", "/a~", "/a~2", "Args.a", " args.a"}) {
    EXPECT_FALSE(parse_arg_path(bad, p)) << '"' << bad << '"';
  }
}

TEST(IsGlobTest, Metacharacters) {
  EXPECT_TRUE(is_glob("read_*"));
  EXPECT_TRUE(is_glob("a?c"));
  EXPECT_FALSE(is_glob("plain_name"));
  EXPECT_FALSE(is_glob(""));
  EXPECT_FALSE(is_glob("a[b]"));
}

TEST(LoadErrorTest, ToString) {
  EXPECT_EQ((load_error{"f.json", "/tools/x", "bad"}).to_string(), "f.json: /tools/x: bad");
  EXPECT_EQ((load_error{"f.json", "", "bad"}).to_string(), "f.json: /: bad");
}

}  // namespace
}  // namespace sluice::policy
