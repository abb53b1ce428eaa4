// `sluice`: the command line. Subcommands live in their own files (check.cc, eval.cc, ...).

#include <cstdio>
#include <span>
#include <string_view>

#include "tools/sluice/commands.h"

namespace {

constexpr const char* kUsage =
    "usage: sluice COMMAND [ARGS...]\n"
    "\n"
    "Sluice is a policy gateway for MCP tool calls.\n"
    "\n"
    "commands:\n"
    "  serve --policy FILE ...  run the gateway and the decision service\n"
    "  check POLICY...          validate policy files; print a summary or every error\n"
    "  eval --policy FILE ...   decide JSON-RPC messages from a file or stdin, offline\n"
    "  bench [options] URL      load-test an MCP endpoint or the decision service\n"
    "  hash-token               print the SHA-256 of a bearer token read from stdin\n"
    "                           (for the grants file)\n"
    "  init --from URL ...      classify a live server's tools; print a starter policy\n"
    "\n"
    "`sluice COMMAND --help` describes each command. Policy language: docs/policy.md.\n";

bool cpu_supported() {
#if defined(__x86_64__) && defined(__AVX2__)
  // Built for x86-64-v3 (see meson_options.txt: cpu_level): refuse to run rather than die
  // on an illegal instruction.
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2") &&
         __builtin_cpu_supports("pclmul");
#else
  return true;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  if (!cpu_supported()) {
    std::fputs(
        "sluice: this build needs an x86-64-v3 CPU (AVX2, BMI2, PCLMUL); rebuild with "
        "-Dcpu_level=x86-64 for older CPUs\n",
        stderr);
    return 1;
  }
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string_view cmd(argv[1]);
  const std::span<char* const> rest(argv + 2, static_cast<size_t>(argc - 2));
  if (cmd == "check") return sluice::cli::run_check(rest);
  if (cmd == "eval") return sluice::cli::run_eval(rest);
  if (cmd == "serve") return sluice::cli::run_serve(rest);
  if (cmd == "bench") return sluice::cli::run_bench(rest);
  if (cmd == "hash-token") return sluice::cli::run_hash_token(rest);
  if (cmd == "init") return sluice::cli::run_init(rest);
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "--version" || cmd == "version") {
    std::printf("sluice %s\n", SLUICE_VERSION);
    return 0;
  }
  std::fprintf(stderr, "sluice: unknown command '%s'\n\n%s", argv[1], kUsage);
  return 2;
}
