#pragma once
// Incremental HTTP/1.1 request parser for one connection (Boost.Beast basic_parser underneath;
// Beast is included only by http1_parser.cc).
//
// Bytes are parsed in place: views point into the caller's buffer. Only when a request straddles
// two feeds are its bytes kept in a per-connection accumulation buffer; bodies that span feeds
// or are chunked are copied into a per-connection body buffer. All buffers are reused: no
// allocation per request after warm-up. Every buffer keeps 64 readable bytes after its data.

#include <cstdint>
#include <memory>
#include <span>

#include "net/http1.h"

namespace sluice::net {

// Receives each complete request; returns false to stop parsing (e.g. the connection will
// close after this request): the remaining input is dropped.
class request_sink {
 public:
  virtual bool on_parsed(const http_request& req) = 0;
  // The request being read asked for "100 Continue" (Expect: 100-continue, HTTP/1.1): its
  // header is complete and the client may be waiting for the interim answer before it sends
  // the body. Called once per such request, before its on_parsed, only while its body is
  // incomplete.
  virtual void on_expect_continue() {}

 protected:
  ~request_sink() = default;
};

class http1_parser {
 public:
  explicit http1_parser(const http_limits& limits);
  ~http1_parser();
  http1_parser(const http1_parser&) = delete;
  http1_parser& operator=(const http1_parser&) = delete;

  // Parses everything in bytes, calling sink.on_parsed for each complete request, in order.
  // Returns 0 when all bytes were consumed or kept for later, or the HTTP status to answer
  // with before closing (400, 413, 415, 417, 431) after the requests before the bad one were
  // delivered.
  // bytes must have 64 readable bytes past its end (provided buffers do).
  [[nodiscard]] int feed(std::span<const char> bytes, request_sink& sink);

  // A request has started but is not complete (some bytes are held).
  [[nodiscard]] bool in_request() const;
  // Forgets any partial request (connection reuse).
  void reset();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace sluice::net
