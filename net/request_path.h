#pragma once
// The path a request is routed by: the request target without its query, percent-decoded
// where that cannot change its meaning, and refused where it could. Several servers behind
// one gateway (`/servers/<name>/mcp`) each carry their own policy, so two spellings of one
// path must never reach different servers, and no spelling may climb from one server's path
// into another's.
//
// Rules (docs/gateway.md, "Path normalisation"):
//  - the absolute-form ("http://host/path", RFC 9112 3.2.2) is routed by its path (none: "/");
//  - the query (from the first '?') is ignored;
//  - %XX naming an unreserved character (A-Z a-z 0-9 - . _ ~) is decoded; hex digits may be
//    either case; any other %XX is kept as written (it then matches no route);
//  - refused (400): a target that does not start with '/', a '%' not followed by two hex
//    digits, an encoded '/' (%2F) or '\' (%5C), a literal '\', and any "." or ".." segment
//    after decoding (so "/a/%2e%2e/b" is refused like "/a/../b");
//  - nothing else is collapsed: "//x", "/x/" and "/X" are paths of their own (404 unless a
//    route has exactly that spelling).

#include <string>
#include <string_view>

namespace sluice::net {

// Writes the normalised path of `target` to `out` and returns true, or returns false with
// `error` set to a short reason. Does not allocate once `out` has grown to the longest path.
[[nodiscard]] bool normalize_request_path(std::string_view target, std::string& out,
                                          std::string_view& error);

// The same, without copying the usual target: `path` is `target` itself when that is already
// its normal form, else the normalised path written to `scratch` (valid until scratch
// changes). The gateway's routing uses this one.
[[nodiscard]] bool normalized_path(std::string_view target, std::string& scratch,
                                   std::string_view& path, std::string_view& error);

// Whether `name` is a valid server name: [A-Za-z0-9_-]+.
[[nodiscard]] bool valid_server_name(std::string_view name);

}  // namespace sluice::net
