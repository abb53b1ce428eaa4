#pragma once
// JSON-RPC extraction for MCP messages: simdjson On Demand over the bytes as they arrived,
// reading exactly what the upstream server will read.
//
// Hard to fool by construction:
//  - keys and strings are compared after JSON unescaping ("tools\/call" is tools/call);
//  - a duplicate key on any path the decision reads (jsonrpc, id, method, params, name,
//    uri, arguments, and every argument path the policy checks) makes the message invalid;
//  - the whole document is validated (not only the fields read): invalid UTF-8, bad
//    escapes, bad numbers, trailing bytes, nesting over the limit are all invalid;
//  - a batch has every element read; a tools/call without an id is invalid.

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "policy/arguments.h"

namespace sluice::policy {

// JSON-RPC error codes a client expects.
enum class rpc_error : int {
  none = 0,
  parse = -32700,            // not JSON: syntax, UTF-8, trailing bytes
  invalid_request = -32600,  // JSON, but not a valid JSON-RPC / MCP message
  invalid_params = -32602,   // a tools/call (etc.) whose params are malformed
};

enum class message_kind : uint8_t { request, notification, response };

enum class method_id : uint8_t {
  other,
  initialize,
  tools_call,
  tools_list,
  resources_read,
  prompts_get,
};

struct message {
  message_kind kind = message_kind::request;
  method_id method_kind = method_id::other;
  std::string_view id;      // raw JSON token as sent (quotes and escapes kept); empty if none
  std::string_view method;  // unescaped
  std::string_view target;  // tools/call, prompts/get: params.name; resources/read: params.uri
  uint32_t args_begin = 0;  // first of this message's argument slots in the reader
  rpc_error error = rpc_error::none;  // set when this message is invalid
  std::string_view error_text;        // static text saying what is wrong
};

struct reader_limits {
  size_t max_bytes = 4 << 20;  // a larger message is invalid (-32600)
  uint32_t max_depth = 64;     // nesting beyond this is invalid (-32600)
  size_t max_batch = 1024;     // elements per batch
};

class message_reader {
 public:
  explicit message_reader(reader_limits limits = {});
  ~message_reader();
  message_reader(const message_reader&) = delete;
  message_reader& operator=(const message_reader&) = delete;

  // Reads one HTTP body: a message or a batch. `data` must have SIMDJSON_PADDING (64)
  // readable bytes past its end and stay unchanged while results are used. Argument
  // values are captured for every path in `trie`. Returns false when the body as a
  // whole is invalid (see error()); a batch may also hold individually invalid messages.
  // Does not allocate once warm (buffers are reused across calls).
  bool read(std::string_view data, const arg_trie& trie);

  bool is_batch() const { return batch_; }
  std::span<const message> messages() const { return messages_; }
  std::span<const arg_value> args(const message& m) const {
    return {values_.data() + m.args_begin, slots_};
  }
  rpc_error error() const { return error_; }
  std::string_view error_text() const { return error_text_; }

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  std::vector<message> messages_;
  std::vector<arg_value> values_;
  size_t slots_ = 0;
  bool batch_ = false;
  rpc_error error_ = rpc_error::none;
  std::string_view error_text_;
  friend struct impl;
};

std::string_view to_string(rpc_error e);

}  // namespace sluice::policy
