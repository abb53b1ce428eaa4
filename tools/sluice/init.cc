// `sluice init`: connect to a live MCP server, classify every tool it lists, and print a
// starter policy (or a table, or JSON). The classification rules are in docs/risk.md.

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>

#include "policy/loader.h"
#include "tools/sluice/commands.h"
#include "tools/sluice/init_client.h"
#include "tools/sluice/init_policy.h"

namespace sluice::cli {

namespace {

constexpr const char* kUsage =
    "usage: sluice init (--from URL | --from-command \"CMD ARGS...\") [options]\n"
    "\n"
    "Connects to a live MCP server as a client (initialize, notifications/initialized,\n"
    "tools/list to the last page), classifies every tool as read, write, execute or\n"
    "destructive with a risk of low, medium or high (annotations first, then the verbs of\n"
    "its name, then of its description; see docs/risk.md), and prints a starter policy\n"
    "that `sluice check` accepts: default deny, one rule per tool, each with a reason\n"
    "naming its class.\n"
    "\n"
    "  --from URL             a Streamable HTTP server, e.g. http://127.0.0.1:8081/mcp\n"
    "  --from-command CMD     a stdio server, started with /bin/sh -c CMD; on the way out\n"
    "                         its stdin is closed, then it gets SIGTERM, then SIGKILL\n"
    "  --profile NAME         what each class gets (default: default):\n"
    "                           class        strict          default         permissive\n"
    "                           read         allow 60/min    allow           allow\n"
    "                           write        approval        allow 60/min    allow\n"
    "                           execute      approval        allow 10/min    allow 60/min\n"
    "                           destructive  deny            approval        approval\n"
    "                         (n/min: calls a minute per grant, per tool; approval:\n"
    "                         require_approval)\n"
    "  --explain              print a table (tool, class, risk, signal, rule) instead of\n"
    "                         the policy\n"
    "  --json                 print the classification and the policy as JSON instead\n"
    "  -o, --output FILE      write the policy to FILE (atomically: a temporary file, then\n"
    "                         rename); stdout still gets the table or JSON if asked for\n"
    "  --timeout SECONDS      limit on each connect, request and answer (default 10)\n"
    "  --max-pages N          tools/list pages to follow at most (default 100)\n"
    "  --verbose              trace the JSON-RPC exchange (and a stdio server's stderr)\n"
    "\n"
    "Exit status: 0 done; 1 the server could not be reached or answered badly (nothing is\n"
    "written); 2 bad usage.\n";

bool parse_count(std::string_view text, size_t& out) {
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && p == text.data() + text.size() && out > 0;
}

// Writes `text` to `path` through a temporary file in the same directory and a rename, so
// a reader sees the old file or the whole new one, never a part.
bool write_atomically(const std::string& path, const std::string& text, std::string& error) {
  std::string tmp = path + ".tmp.XXXXXX";
  const int fd = mkstemp(tmp.data());
  if (fd < 0) {
    error = path + ": cannot create a temporary file: " + std::strerror(errno);
    return false;
  }
  bool ok = true;
  size_t done = 0;
  while (ok && done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      ok = false;
    }
  }
  ok = ok && fchmod(fd, 0644) == 0 && fsync(fd) == 0;
  if (!ok) error = path + ": " + std::strerror(errno);
  if (::close(fd) != 0 && ok) {
    ok = false;
    error = path + ": " + std::strerror(errno);
  }
  if (ok && std::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    error = path + ": " + std::strerror(errno);
  }
  if (!ok) ::unlink(tmp.c_str());
  return ok;
}

}  // namespace

int run_init(std::span<char* const> args) {
  std::string url, command, output, profile_name = "default";
  bool explain = false, json = false;
  init::client_options opts;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view a(args[i]);
    auto value = [&](std::string& out) {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "sluice init: %s needs a value\n", args[i]);
        return false;
      }
      out = args[++i];
      return true;
    };
    std::string text;
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--from") {
      if (!value(url)) return 2;
    } else if (a == "--from-command") {
      if (!value(command)) return 2;
    } else if (a == "--profile") {
      if (!value(profile_name)) return 2;
    } else if (a == "-o" || a == "--output") {
      if (!value(output)) return 2;
    } else if (a == "--explain") {
      explain = true;
    } else if (a == "--json") {
      json = true;
    } else if (a == "--verbose") {
      opts.verbose = true;
    } else if (a == "--timeout") {
      size_t secs = 0;
      if (!value(text)) return 2;
      if (!parse_count(text, secs) || secs > 3600) {
        std::fprintf(stderr, "sluice init: --timeout takes whole seconds from 1 to 3600\n");
        return 2;
      }
      opts.timeout = std::chrono::seconds(secs);
    } else if (a == "--max-pages") {
      if (!value(text)) return 2;
      if (!parse_count(text, opts.max_pages)) {
        std::fprintf(stderr, "sluice init: --max-pages takes a positive whole number\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "sluice init: unexpected argument '%s'\n\n%s", args[i], kUsage);
      return 2;
    }
  }
  if (url.empty() == command.empty()) {
    std::fprintf(stderr, "sluice init: give exactly one of --from URL and --from-command CMD\n\n%s",
                 kUsage);
    return 2;
  }
  if (explain && json) {
    std::fprintf(stderr, "sluice init: --explain and --json exclude each other\n");
    return 2;
  }
  const std::optional<init::profile> prof = init::find_profile(profile_name);
  if (!prof) {
    std::fprintf(stderr,
                 "sluice init: unknown profile '%s'; expected strict, default or permissive\n",
                 profile_name.c_str());
    return 2;
  }

  // A server that dies while we write to it must give an error, not kill us.
  ::signal(SIGPIPE, SIG_IGN);

  init::server_listing listing;
  std::string error;
  const bool ok = url.empty() ? init::list_tools_command(command, opts, listing, error)
                              : init::list_tools_http(url, opts, listing, error);
  if (!ok) {
    std::fprintf(stderr, "sluice init: %s: %s\n", url.empty() ? command.c_str() : url.c_str(),
                 error.c_str());
    return 1;
  }

  const std::vector<init::classified_tool> tools = init::classify_all(std::move(listing.tools));
  const std::string policy_text = init::render_policy(tools, *prof);

  // What we print must load; if it does not, that is our bug, and nothing is written.
  const policy::load_result check = policy::load_policy_text(policy_text, "<generated>");
  if (!check.errors.empty()) {
    for (const policy::load_error& e : check.errors)
      std::fprintf(stderr, "sluice init: internal error: %s\n", e.to_string().c_str());
    return 1;
  }
  for (const init::classified_tool& t : tools) {
    if (!t.included)
      std::fprintf(stderr, "sluice init: warning: tool '%s' left out: %s\n", t.tool.name.c_str(),
                   t.skip_reason.c_str());
  }

  if (!output.empty() && !write_atomically(output, policy_text, error)) {
    std::fprintf(stderr, "sluice init: %s\n", error.c_str());
    return 1;
  }
  std::string out;
  if (explain) {
    out = init::render_explain(tools, *prof);
  } else if (json) {
    out = init::render_json(tools, *prof, listing.server);
  } else if (output.empty()) {
    out = policy_text;
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  if (std::fflush(stdout) != 0) return 1;
  if (!output.empty())
    std::fprintf(stderr, "sluice init: wrote %s: %zu tools from %s, profile %s\n", output.c_str(),
                 tools.size(),
                 listing.server.name.empty() ? "the server" : listing.server.name.c_str(),
                 prof->name.data());
  return 0;
}

}  // namespace sluice::cli
