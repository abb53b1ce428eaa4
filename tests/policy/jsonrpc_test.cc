#include "policy/jsonrpc.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "policy/loader.h"
#include "tests/policy/test_util.h"

namespace sluice::policy {
namespace {

using testing::padded_body;

// A reader and a trie holding the argument paths the tests read.
class JsonRpcTest : public ::testing::Test {
 protected:
  JsonRpcTest() {
    path_ = add("args.path");
    a_b_ = add("args.a.b");
    item0_ = add("/items/0");
    items_ = add("args.items");
    flag_ = add("args.flag");
    n_ = add("args.n");
    none_ = add("args.none");
  }

  uint32_t add(std::string_view text) {
    arg_path p;
    EXPECT_TRUE(parse_arg_path(text, p)) << text;
    return trie_.add(p);
  }

  // Reads `text`; returns whether the body as a whole was accepted.
  bool read(std::string_view text, reader_limits limits = {}) {
    body_ = std::make_unique<padded_body>(text);
    reader_ = std::make_unique<message_reader>(limits);
    return reader_->read(body_->view(), trie_);
  }

  // Reads a single message that must be accepted; returns it.
  const message& one(std::string_view text) {
    const bool ok = read(text);
    EXPECT_TRUE(ok) << text << ": " << reader_->error_text();
    EXPECT_FALSE(reader_->is_batch());
    EXPECT_EQ(reader_->messages().size(), 1u);
    if (reader_->messages().empty()) {
      static const message kEmpty;
      return kEmpty;
    }
    return reader_->messages()[0];
  }

  // Reads a body that must be rejected as a whole; returns the error code.
  rpc_error fails(std::string_view text, reader_limits limits = {}) {
    const bool ok = read(text, limits);
    EXPECT_FALSE(ok) << text;
    EXPECT_FALSE(reader_->error_text().empty()) << text;
    return reader_->error();
  }

  const arg_value& arg(uint32_t slot, size_t message_index = 0) {
    return reader_->args(reader_->messages()[message_index])[slot];
  }

  static std::string call(std::string_view args) {
    return R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":)" +
           std::string(args) + "}}";
  }

  arg_trie trie_;
  uint32_t path_, a_b_, item0_, items_, flag_, n_, none_;
  std::unique_ptr<padded_body> body_;
  std::unique_ptr<message_reader> reader_;
};

// ---------------------------------------------------------------------------------------
// Envelope: id, method, name

TEST_F(JsonRpcTest, ToolsCallIsClassified) {
  const message& m =
      one(R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_file"}})");
  EXPECT_EQ(m.error, rpc_error::none);
  EXPECT_EQ(m.kind, message_kind::request);
  EXPECT_EQ(m.method_kind, method_id::tools_call);
  EXPECT_EQ(m.method, "tools/call");
  EXPECT_EQ(m.target, "read_file");
  EXPECT_EQ(m.id, "7");
  EXPECT_EQ(reader_->error(), rpc_error::none);
}

TEST_F(JsonRpcTest, StringIdIsKeptRawWithQuotesAndEscapes) {
  const message& m =
      one(R"({"jsonrpc":"2.0","id":"a\u0062","method":"tools/call","params":{"name":"t"}})");
  EXPECT_EQ(m.id, R"("a\u0062")");
}

TEST_F(JsonRpcTest, IdFollowedByWhitespaceIsTrimmed) {
  const message& m = one("{\"jsonrpc\":\"2.0\",\"id\" : -12 \n,\"method\":\"ping\"}");
  EXPECT_EQ(m.id, "-12");
  EXPECT_EQ(m.kind, message_kind::request);
  EXPECT_EQ(m.method_kind, method_id::other);
}

TEST_F(JsonRpcTest, BigIntegerIdIsKeptRaw) {
  // Beyond 64 bits: valid JSON and a valid JSON-RPC id; the gateway echoes it raw.
  for (std::string_view id : {"123456789012345678901234567890", "-123456789012345678901234567890",
                              "18446744073709551616"}) {
    const std::string text = R"({"jsonrpc":"2.0","id":)" + std::string(id) +
                             R"(,"method":"tools/call","params":{"name":"t"}})";
    const message& m = one(text);
    EXPECT_EQ(m.id, id);
    EXPECT_EQ(m.error, rpc_error::none);
  }
}

TEST_F(JsonRpcTest, BigIntegersElsewhereAreValidJson) {
  one(call(R"({"n":123456789012345678901234567890,"other":[99999999999999999999999]})"));
  EXPECT_EQ(arg(n_).type, arg_value::kind::number);
  EXPECT_DOUBLE_EQ(arg(n_).number, 1.2345678901234568e29);
  EXPECT_EQ(arg(n_).text, "123456789012345678901234567890");
  EXPECT_EQ(one(R"({"jsonrpc":"2.0","id":1,"result":{"big":184467440737095516160}})").kind,
            message_kind::response);
  // Still malformed: a leading zero, an out-of-range double.
  EXPECT_EQ(fails(call(R"({"n":0123456789012345678901234567890})")), rpc_error::parse);
  EXPECT_EQ(fails(call(R"({"n":1e400})")), rpc_error::parse);
  EXPECT_EQ(fails(call(R"({"x":-})")), rpc_error::parse);
}

TEST_F(JsonRpcTest, RequestIdMustBeStringOrInteger) {
  for (std::string_view id : {"1.5", "1.0", "1e3", "null", "{}", "[1]", "true"}) {
    const std::string text = R"({"jsonrpc":"2.0","id":)" + std::string(id) +
                             R"(,"method":"tools/call","params":{"name":"t"}})";
    EXPECT_EQ(fails(text), rpc_error::invalid_request) << id;
  }
}

TEST_F(JsonRpcTest, MethodIsUnescaped) {
  EXPECT_EQ(
      one(R"({"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"t"}})").method_kind,
      method_id::tools_call);
  const message& m =
      one(R"({"jsonrpc":"2.0","id":1,"method":"tools\u002fcall","params":{"name":"t"}})");
  EXPECT_EQ(m.method_kind, method_id::tools_call);
  EXPECT_EQ(m.method, "tools/call");
}

TEST_F(JsonRpcTest, KeysAreUnescaped) {
  const message& m = one(
      R"({"jsonrp\u0063":"2.0","\u0069d":1,"meth\u006fd":"tools/call","par\u0061ms":{"n\u0061me":"t"}})");
  EXPECT_EQ(m.method_kind, method_id::tools_call);
  EXPECT_EQ(m.target, "t");
}

TEST_F(JsonRpcTest, ToolNameIsUnescaped) {
  const message& m = one(
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete\u005fbucket"}})");
  EXPECT_EQ(m.target, "delete_bucket");
}

TEST_F(JsonRpcTest, FieldOrderDoesNotMatter) {
  const message& m = one(
      R"({"params":{"arguments":{"path":"/x"},"name":"t"},"method":"tools/call","id":"q","jsonrpc":"2.0"})");
  EXPECT_EQ(m.method_kind, method_id::tools_call);
  EXPECT_EQ(m.target, "t");
  EXPECT_EQ(m.id, R"("q")");
  EXPECT_EQ(arg(path_).type, arg_value::kind::string);
  EXPECT_EQ(arg(path_).text, "/x");
}

TEST_F(JsonRpcTest, ResourcesReadTargetsUri) {
  const message& m = one(
      R"({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:\/\/\/etc\/passwd"}})");
  EXPECT_EQ(m.method_kind, method_id::resources_read);
  EXPECT_EQ(m.target, "file:///etc/passwd");
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":7}})"),
            rpc_error::invalid_params);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{}})"),
            rpc_error::invalid_params);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","method":"resources/read","params":{"uri":"x"}})"),
            rpc_error::invalid_request);
}

TEST_F(JsonRpcTest, PromptsGetTargetsName) {
  const message& m = one(
      R"({"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"summ\u0061rize","arguments":{"path":"p"}}})");
  EXPECT_EQ(m.method_kind, method_id::prompts_get);
  EXPECT_EQ(m.target, "summarize");
  EXPECT_EQ(arg(path_).text, "p");
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":null}})"),
            rpc_error::invalid_params);
}

TEST_F(JsonRpcTest, OtherMethodsAreClassified) {
  EXPECT_EQ(
      one(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"name":5}})").method_kind,
      method_id::initialize);
  EXPECT_EQ(one(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})").method_kind,
            method_id::tools_list);
  // A method that merely starts like tools/call is not tools/call.
  EXPECT_EQ(one(R"({"jsonrpc":"2.0","id":1,"method":"tools/callx"})").method_kind,
            method_id::other);
}

// ---------------------------------------------------------------------------------------
// Duplicate keys

TEST_F(JsonRpcTest, DuplicateEnvelopeKeysAreInvalidRequest) {
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"tools/list"})"),
            rpc_error::invalid_request);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","id":1,"id":2,"method":"tools/list"})"),
            rpc_error::invalid_request);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"})"),
            rpc_error::invalid_request);
  EXPECT_EQ(
      fails(
          R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}})"),
      rpc_error::invalid_request);
  // A duplicate spelled with an escape is still a duplicate.
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","id":1,"method":"tools/list","m\u0065thod":"tools/call"})"),
            rpc_error::invalid_request);
}

// JavaScript servers that copy an object with Object.assign take a "__proto__" key's value for
// the copy's prototype, so they would read fields the policy never saw.
TEST_F(JsonRpcTest, ProtoKeyAnywhereIsInvalidRequest) {
  for (const char* body : {
           R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file",)"
           R"("arguments":{"__proto__":{"path":"/etc/passwd"}}}})",
           R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t",)"
           R"("arguments":{"a":[{"b":{"__proto__":1}}]}}})",
           R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","__proto__":{}}})",
           R"({"jsonrpc":"2.0","id":1,"method":"tools/list","__proto__":null})",
       }) {
    EXPECT_EQ(fails(body), rpc_error::invalid_request) << body;
  }
  // Only that exact key.
  EXPECT_EQ(one(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t",)"
                R"("arguments":{"__proto":1,"proto__":2,"__PROTO__":3,"constructor":4}}})")
                .error,
            rpc_error::none);
}

TEST_F(JsonRpcTest, DuplicateNameOrArgumentsInParamsIsInvalidRequest) {
  EXPECT_EQ(
      fails(
          R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe","name":"delete_bucket"}})"),
      rpc_error::invalid_request);
  EXPECT_EQ(
      fails(
          R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe","n\u0061me":"delete_bucket"}})"),
      rpc_error::invalid_request);
  EXPECT_EQ(
      fails(
          R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{},"arguments":{}}})"),
      rpc_error::invalid_request);
  EXPECT_EQ(
      fails(R"({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a","uri":"b"}})"),
      rpc_error::invalid_request);
}

TEST_F(JsonRpcTest, DuplicateArgumentOnATriePathIsInvalidParams) {
  EXPECT_EQ(fails(call(R"({"path":"a","path":"b"})")), rpc_error::invalid_params);
  EXPECT_EQ(fails(call(R"({"path":"a","p\u0061th":"b"})")), rpc_error::invalid_params);
  // Nested: the intermediate object `a` twice.
  EXPECT_EQ(fails(call(R"({"a":{"b":1},"a":{"b":2}})")), rpc_error::invalid_params);
  EXPECT_EQ(fails(call(R"({"a":{"b":1,"b":2}})")), rpc_error::invalid_params);
}

TEST_F(JsonRpcTest, AnArgumentSeenInOneMessageIsNoDuplicateInTheNext) {
  // One reader, as a shard keeps it: the next body, and the next message of a batch, start
  // with nothing seen.
  message_reader reader;
  for (int i = 0; i < 3; ++i) {
    padded_body body(call(R"({"path":"a","a":{"b":1}})"));
    ASSERT_TRUE(reader.read(body.view(), trie_));
    EXPECT_EQ(reader.messages()[0].error, rpc_error::none) << i;
  }
  padded_body batch("[" + call(R"({"path":"a"})") + "," + call(R"({"path":"b","path":"c"})") + "," +
                    call(R"({"path":"d"})") + "]");
  ASSERT_TRUE(reader.read(batch.view(), trie_));
  ASSERT_EQ(reader.messages().size(), 3u);
  EXPECT_EQ(reader.messages()[0].error, rpc_error::none);
  EXPECT_EQ(reader.messages()[1].error, rpc_error::invalid_params);  // its own duplicate
  EXPECT_EQ(reader.messages()[2].error, rpc_error::none);
}

TEST_F(JsonRpcTest, DuplicateArgumentOffTheTrieIsAllowed) {
  // Nothing the policy reads is ambiguous, so the message stands.
  const message& m = one(call(R"({"other":1,"other":2,"path":"p"})"));
  EXPECT_EQ(m.error, rpc_error::none);
  EXPECT_EQ(arg(path_).text, "p");
}

// ---------------------------------------------------------------------------------------
// Argument capture

TEST_F(JsonRpcTest, CapturesScalars) {
  one(call(R"({"path":"a\u00e9\n\"b","flag":true,"n":-2.5e1,"none":null})"));
  EXPECT_EQ(arg(path_).type, arg_value::kind::string);
  EXPECT_EQ(arg(path_).text, "a\xC3\xA9\n\"b");
  EXPECT_EQ(arg(flag_).type, arg_value::kind::boolean);
  EXPECT_TRUE(arg(flag_).boolean);
  EXPECT_EQ(arg(n_).type, arg_value::kind::number);
  EXPECT_EQ(arg(n_).number, -25.0);
  EXPECT_EQ(arg(n_).text, "-2.5e1");
  EXPECT_EQ(arg(none_).type, arg_value::kind::null);
  EXPECT_EQ(arg(a_b_).type, arg_value::kind::absent);
  EXPECT_EQ(arg(items_).type, arg_value::kind::absent);
}

TEST_F(JsonRpcTest, FalseIsCapturedAsFalse) {
  one(call(R"({"flag":false})"));
  EXPECT_EQ(arg(flag_).type, arg_value::kind::boolean);
  EXPECT_FALSE(arg(flag_).boolean);
}

TEST_F(JsonRpcTest, CapturesArrayCountAndRawText) {
  one(call(R"({"items":[ "x", {"k":[1,2]}, 3 ] , "path":"p"})"));
  EXPECT_EQ(arg(items_).type, arg_value::kind::array);
  EXPECT_EQ(arg(items_).count, 3u);
  EXPECT_EQ(arg(items_).text, R"([ "x", {"k":[1,2]}, 3 ])");
  EXPECT_EQ(arg(item0_).type, arg_value::kind::string);
  EXPECT_EQ(arg(item0_).text, "x");
  EXPECT_EQ(arg(path_).text, "p");
}

TEST_F(JsonRpcTest, CapturesArrayAsLastField) {
  one(call("{\"items\":[]\n}"));
  EXPECT_EQ(arg(items_).type, arg_value::kind::array);
  EXPECT_EQ(arg(items_).count, 0u);
  EXPECT_EQ(arg(items_).text, "[]");
  EXPECT_EQ(arg(item0_).type, arg_value::kind::absent);
}

TEST_F(JsonRpcTest, CapturesNestedPath) {
  one(call(R"({"a":{"x":0,"b":{"deep":[1]}}})"));
  EXPECT_EQ(arg(a_b_).type, arg_value::kind::object);
  one(call(R"({"a":{"b":"v"}})"));
  EXPECT_EQ(arg(a_b_).type, arg_value::kind::string);
  EXPECT_EQ(arg(a_b_).text, "v");
  // `a` that is not an object has no `b`.
  one(call(R"({"a":"b"})"));
  EXPECT_EQ(arg(a_b_).type, arg_value::kind::absent);
}

TEST_F(JsonRpcTest, ArrayIndexPathAlsoReadsObjectKey) {
  one(call(R"({"items":{"0":"zero"}})"));
  EXPECT_EQ(arg(item0_).type, arg_value::kind::string);
  EXPECT_EQ(arg(item0_).text, "zero");
  EXPECT_EQ(arg(items_).type, arg_value::kind::object);
}

TEST_F(JsonRpcTest, ArgumentsBeforeNameAreCaptured) {
  const message& m = one(
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"path":"early"},"name":"t"}})");
  EXPECT_EQ(m.target, "t");
  EXPECT_EQ(arg(path_).text, "early");
}

TEST_F(JsonRpcTest, ParamsBeforeMethodAreCaptured) {
  const message& m = one(
      R"({"params":{"name":"t","arguments":{"n":3}},"jsonrpc":"2.0","id":1,"method":"tools/call"})");
  EXPECT_EQ(m.method_kind, method_id::tools_call);
  EXPECT_EQ(arg(n_).number, 3.0);
}

TEST_F(JsonRpcTest, ValuesFromOneMessageDoNotLeakIntoTheNext) {
  one(call(R"({"path":"first"})"));
  EXPECT_EQ(arg(path_).text, "first");
  ASSERT_TRUE(reader_->read(body_->view(), trie_));  // same reader, same body: same value
  padded_body second(call(R"({})"));
  ASSERT_TRUE(reader_->read(second.view(), trie_));
  EXPECT_EQ(reader_->args(reader_->messages()[0])[path_].type, arg_value::kind::absent);
}

// ---------------------------------------------------------------------------------------
// Malformed params

TEST_F(JsonRpcTest, ArgumentsNotAnObjectIsInvalidParams) {
  EXPECT_EQ(fails(call(R"([1,2])")), rpc_error::invalid_params);
  EXPECT_EQ(fails(call(R"("x")")), rpc_error::invalid_params);
  EXPECT_EQ(fails(call(R"(null)")), rpc_error::invalid_params);
}

TEST_F(JsonRpcTest, ParamsNotAnObjectIsInvalidParams) {
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":["t"]})"),
            rpc_error::invalid_params);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","id":1,"method":"tools/call"})"), rpc_error::invalid_params);
}

TEST_F(JsonRpcTest, NameNotAStringIsInvalidParams) {
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":1}})"),
            rpc_error::invalid_params);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["t"]}})"),
            rpc_error::invalid_params);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}})"),
            rpc_error::invalid_params);
}

TEST_F(JsonRpcTest, ToolsCallWithoutIdIsInvalidRequest) {
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","method":"tools/call","params":{"name":"t"}})"),
            rpc_error::invalid_request);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","method":"prompts/get","params":{"name":"t"}})"),
            rpc_error::invalid_request);
}

// ---------------------------------------------------------------------------------------
// Version, shape, notifications, responses

TEST_F(JsonRpcTest, VersionMustBe20) {
  EXPECT_EQ(fails(R"({"jsonrpc":"1.0","id":1,"method":"tools/list"})"), rpc_error::invalid_request);
  EXPECT_EQ(fails(R"({"id":1,"method":"tools/list"})"), rpc_error::invalid_request);
  EXPECT_EQ(fails(R"({"jsonrpc":2.0,"id":1,"method":"tools/list"})"), rpc_error::invalid_request);
}

TEST_F(JsonRpcTest, TopLevelScalarIsInvalidRequest) {
  EXPECT_EQ(fails("42"), rpc_error::invalid_request);
  EXPECT_EQ(fails(R"("tools/call")"), rpc_error::invalid_request);
  EXPECT_EQ(fails("null"), rpc_error::invalid_request);
}

TEST_F(JsonRpcTest, MethodMustBeAString) {
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","id":1,"method":1})"), rpc_error::invalid_request);
}

TEST_F(JsonRpcTest, NotificationIsClassified) {
  const message& m = one(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  EXPECT_EQ(m.kind, message_kind::notification);
  EXPECT_EQ(m.method_kind, method_id::other);
  EXPECT_EQ(m.method, "notifications/initialized");
  EXPECT_TRUE(m.id.empty());
  EXPECT_EQ(m.error, rpc_error::none);
}

TEST_F(JsonRpcTest, ResponsesAreClassified) {
  const message& r = one(R"({"jsonrpc":"2.0","id":"s1","result":{"roots":[]}})");
  EXPECT_EQ(r.kind, message_kind::response);
  EXPECT_EQ(r.id, R"("s1")");
  const message& e =
      one(R"({"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no such method"}})");
  EXPECT_EQ(e.kind, message_kind::response);
  EXPECT_EQ(e.id, "3");
  // Neither or both of result and error; or no id: not a response.
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","id":3})"), rpc_error::invalid_request);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","id":3,"result":1,"error":{}})"), rpc_error::invalid_request);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","result":1})"), rpc_error::invalid_request);
}

// ---------------------------------------------------------------------------------------
// Batches

TEST_F(JsonRpcTest, BatchElementsAreEachClassified) {
  const std::string text =
      "[" + call(R"({"path":"one"})") + "," +
      R"({"jsonrpc":"2.0","method":"notifications/progress"},)" +
      R"({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"b","arguments":{"path":"two"}}},)" +
      R"(17,)" +
      R"({"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"c","name":"d"}}])";
  ASSERT_TRUE(read(text)) << reader_->error_text();
  EXPECT_TRUE(reader_->is_batch());
  const auto ms = reader_->messages();
  ASSERT_EQ(ms.size(), 5u);
  EXPECT_EQ(ms[0].method_kind, method_id::tools_call);
  EXPECT_EQ(ms[0].target, "t");
  EXPECT_EQ(ms[0].error, rpc_error::none);
  EXPECT_EQ(arg(path_, 0).text, "one");
  EXPECT_EQ(ms[1].kind, message_kind::notification);
  EXPECT_EQ(ms[1].error, rpc_error::none);
  EXPECT_EQ(ms[2].target, "b");
  EXPECT_EQ(arg(path_, 2).text, "two");
  EXPECT_EQ(ms[3].error, rpc_error::invalid_request);  // not an object
  EXPECT_EQ(arg(path_, 3).type, arg_value::kind::absent);
  EXPECT_EQ(ms[4].error, rpc_error::invalid_request);  // duplicate name
  EXPECT_EQ(reader_->error(), rpc_error::none);
}

TEST_F(JsonRpcTest, EmptyBatchIsInvalidRequest) {
  EXPECT_EQ(fails("[]"), rpc_error::invalid_request);
  EXPECT_EQ(fails(" [ ] "), rpc_error::invalid_request);
}

TEST_F(JsonRpcTest, BatchOverTheLimitIsInvalidRequest) {
  const std::string m = R"({"jsonrpc":"2.0","method":"n"})";
  EXPECT_TRUE(read("[" + m + "," + m + "]", reader_limits{.max_batch = 2}));
  EXPECT_EQ(fails("[" + m + "," + m + "," + m + "]", reader_limits{.max_batch = 2}),
            rpc_error::invalid_request);
}

// ---------------------------------------------------------------------------------------
// Whole-document validation

TEST_F(JsonRpcTest, TrailingBytesAreAParseError) {
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","method":"n"} x)"), rpc_error::parse);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","method":"n"}{"jsonrpc":"2.0","method":"n"})"),
            rpc_error::parse);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","method":"n"}})"), rpc_error::parse);
  EXPECT_EQ(fails(R"([{"jsonrpc":"2.0","method":"n"}] 1)"), rpc_error::parse);
  // Trailing whitespace is fine.
  EXPECT_TRUE(read("{\"jsonrpc\":\"2.0\",\"method\":\"n\"} \r\n\t"));
}

TEST_F(JsonRpcTest, InvalidUtf8IsAParseError) {
  EXPECT_EQ(fails(call("{\"path\":\"a\xff\"}")), rpc_error::parse);
  // Also where nothing reads it.
  EXPECT_EQ(fails("{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"x\":\"\xc3\"}"), rpc_error::parse);
}

TEST_F(JsonRpcTest, BadEscapeIsAParseError) {
  EXPECT_EQ(fails(call(R"({"path":"a\x41"})")), rpc_error::parse);
  // In a field nothing reads, and in a key.
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","method":"n","params":{"q":"\x"}})"), rpc_error::parse);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","method":"n","params":{"\x":1}})"), rpc_error::parse);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","id":"\x","method":"n"})"), rpc_error::parse);
}

TEST_F(JsonRpcTest, MalformedJsonIsAParseError) {
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","method":"n",})"), rpc_error::parse);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","method":"n")"), rpc_error::parse);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","method":"n","x":tru})"), rpc_error::parse);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","method":"n","x":01})"), rpc_error::parse);
  EXPECT_EQ(fails(call(R"({"n":1.})")), rpc_error::parse);
  EXPECT_EQ(fails(""), rpc_error::parse);
}

TEST_F(JsonRpcTest, NestingDeeperThanTheLimitIsInvalidRequest) {
  const reader_limits limits{.max_depth = 8};
  // Within the limit: arguments sit at depth 3.
  EXPECT_TRUE(read(call(R"({"x":[[1]]})"), limits)) << reader_->error_text();
  std::string deep = std::string(20, '[') + std::string(20, ']');
  EXPECT_EQ(fails(call("{\"x\":" + deep + "}"), limits), rpc_error::invalid_request);
  // Also under a path the trie reads, and outside params.
  EXPECT_EQ(fails(call("{\"items\":" + deep + "}"), limits), rpc_error::invalid_request);
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","method":"n","x":)" + deep + "}", limits),
            rpc_error::invalid_request);
}

TEST_F(JsonRpcTest, DeepNestingUnderTheDefaultLimitIsInvalidRequest) {
  std::string deep = std::string(5000, '[') + std::string(5000, ']');
  EXPECT_EQ(fails(R"({"jsonrpc":"2.0","method":"n","x":)" + deep + "}"),
            rpc_error::invalid_request);
}

TEST_F(JsonRpcTest, SizeOverMaxBytesIsInvalidRequest) {
  const std::string text = call(R"({"path":"0123456789"})");
  EXPECT_TRUE(read(text, reader_limits{.max_bytes = text.size()}));
  EXPECT_EQ(fails(text, reader_limits{.max_bytes = text.size() - 1}), rpc_error::invalid_request);
}

TEST_F(JsonRpcTest, ErrorCodesHaveNames) {
  EXPECT_EQ(static_cast<int>(rpc_error::parse), -32700);
  EXPECT_EQ(static_cast<int>(rpc_error::invalid_request), -32600);
  EXPECT_EQ(static_cast<int>(rpc_error::invalid_params), -32602);
  EXPECT_EQ(to_string(rpc_error::parse), "parse error");
}

TEST(ArgTrie, FindsEveryChildBelowAndAboveTheListedFew) {
  // A node keeps up to arg_trie's few children in a scanned list, more in a hash map: both
  // ways must find exactly the paths added, whatever their number.
  for (int count : {1, 7, 8, 9, 20}) {
    arg_trie trie;
    std::vector<uint32_t> slots;
    for (int i = 0; i < count; ++i) {
      arg_path p;
      ASSERT_TRUE(parse_arg_path("args.f" + std::to_string(i) + ".x", p));
      slots.push_back(trie.add(p));
    }
    for (int i = 0; i < count; ++i) {
      const uint32_t f = trie.child(arg_trie::kRoot, "f" + std::to_string(i));
      ASSERT_NE(f, arg_trie::kNoSlot) << count << " " << i;
      EXPECT_EQ(trie.slot(trie.child(f, "x")), slots[size_t(i)]) << count << " " << i;
      EXPECT_EQ(trie.child(f, "y"), arg_trie::kNoSlot);
    }
    EXPECT_EQ(trie.child(arg_trie::kRoot, "f" + std::to_string(count)), arg_trie::kNoSlot);
    EXPECT_EQ(trie.child(arg_trie::kRoot, "f"), arg_trie::kNoSlot);
    EXPECT_EQ(trie.child(arg_trie::kRoot, ""), arg_trie::kNoSlot);
  }
}

}  // namespace
}  // namespace sluice::policy
