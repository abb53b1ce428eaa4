#pragma once
// Removes what the policy hides (and denies outright) from tools/list answers, leaving
// every other byte as the upstream sent it. Works on a JSON-RPC response, a batch of them,
// and on the events of a text/event-stream answer.

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "policy/compiled_policy.h"

namespace sluice::net {

class tools_filter {
 public:
  tools_filter();
  ~tools_filter();
  tools_filter(const tools_filter&) = delete;
  tools_filter& operator=(const tools_filter&) = delete;

  // Appends `json` to `out` with unlisted entries removed from every `result.tools` array
  // (a response object or a batch). A tool entry whose name is missing, not a string, or
  // given twice is removed too: what a client cannot name safely, it does not see.
  // Returns false (out untouched) when `json` is not valid JSON.
  bool filter(std::string_view json, const policy::compiled_policy& policy, std::string& out);

  // Number of entries removed by the last filter() call.
  size_t removed() const { return removed_; }

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  size_t removed_ = 0;
};

// Splits a text/event-stream into whole events (each ending with a blank line), so an
// event can be rewritten before it is relayed. Bytes of an incomplete event are held.
class sse_splitter {
 public:
  // Calls `on_event(event)` for each complete event in the stream so far; `event` includes
  // its terminating blank line.
  void feed(std::string_view bytes, const std::function<void(std::string_view)>& on_event);
  // Bytes of an event not yet complete (relayed as they are when the stream ends).
  std::string_view pending() const { return buf_; }

 private:
  std::string buf_;
  size_t line_start_ = 0;  // in buf_: where the line not yet seen whole starts
  size_t scanned_ = 0;     // in buf_: searched for line ends up to here
};

// Rewrites one SSE event: when its data is a JSON-RPC response carrying result.tools, the
// data is filtered. Data that may carry tools but is not valid JSON is dropped (an SSE
// comment says so): fail closed. Appends the (possibly rewritten) event to `out`.
void filter_sse_event(std::string_view event, tools_filter& filter,
                      const policy::compiled_policy& policy, std::string& out);

}  // namespace sluice::net
