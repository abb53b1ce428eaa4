// `sluice bench`: an MCP load generator on the engine (see docs/benchmarks.md).

#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "policy/json_text.h"
#include "tools/sluice/bench_runner.h"
#include "tools/sluice/bench_traffic.h"
#include "tools/sluice/commands.h"

namespace sluice::cli {

namespace {

using namespace sluice::bench;

constexpr const char* kBenchUsage =
    "usage: sluice bench [options] URL\n"
    "\n"
    "Loads an MCP endpoint (Sluice's /mcp, any MCP server), the decision service (/v1/decide)\n"
    "or any HTTP/1.1 server with POSTed JSON-RPC messages over keep-alive connections, and\n"
    "reports throughput, latency percentiles and what was decided. Threads are pinned to the\n"
    "CPUs of the affinity mask in order (use taskset to choose them).\n"
    "\n"
    "load:\n"
    "  -c, --connections N   connections in all [64]\n"
    "  -t, --threads N       event-loop threads [1]\n"
    "  -p, --depth N         requests in flight per connection (pipelining) [1]\n"
    "  -r, --rate R          open loop: R requests/s in all, latency from when each was due;\n"
    "                        0: closed loop [0]\n"
    "  -d, --duration S      measured seconds [5]\n"
    "  -w, --warmup S        seconds sent but not counted, before the measured part [0]\n"
    "  -n, --requests N      stop after N answers instead (duration is then a cap) [0]\n"
    "      --kind K          mcp | decide: read decisions from JSON-RPC answers or from the\n"
    "                        status [decide when the path ends in /decide, else mcp]\n"
    "traffic (default: a mix of read_file, list_buckets, write_file, run_query):\n"
    "      --tool NAME[:W]   a tool in the mix with weight W [1], no arguments (repeatable)\n"
    "      --mix FILE        "
    "{\"tools\":[{\"name\":..,\"weight\":..,\"arguments\":{\"k\":[v,..]}}]}\n"
    "      --replay FILE     send these JSON-RPC messages (one per line) in turn\n"
    "      --token T         a grant's bearer token (repeatable; requests cycle through them)\n"
    "      --tokens-file F   tokens, one per line\n"
    "      --sessions N      open N MCP sessions first (initialize handshake) and send each\n"
    "                        request in one of them with its Mcp-Session-Id [0]\n"
    "      --header 'N: V'   an extra request header (repeatable)\n"
    "      --pool N          distinct requests drawn from the mix [4096]\n"
    "      --seed N          random seed for the mix [1]\n"
    "report:\n"
    "      --json            one JSON object on stdout instead of the text report\n"
    "      --plot FILE.svg   write a latency-by-percentile plot\n"
    "      --pid PID         sample this process's CPU time (the server's) over the measured\n"
    "                        part and report CPU microseconds per request\n"
    "      --label TEXT      name of this run in the report and the plot\n"
    "\n"
    "Exit status: 0 when the run completed (whatever the answers), 1 when it could not start\n"
    "or no request was answered, 2 on a bad argument.\n";

struct bench_options {
  run_config run;
  std::string url;
  std::string kind;
  std::vector<tool_spec> tools;
  std::string mix;
  std::string replay;
  std::vector<std::string> tokens;
  std::string tokens_file;
  uint32_t sessions = 0;
  std::vector<std::string> headers;
  uint32_t pool = 4096;
  uint64_t seed = 1;
  bool json = false;
  std::string plot;
  long pid = 0;
  std::string label;
  bool duration_given = false;
};

template <typename T>
bool parse_num(std::string_view v, T& out) {
  auto r = std::from_chars(v.data(), v.data() + v.size(), out);
  return r.ec == std::errc() && r.ptr == v.data() + v.size();
}

bool parse_double(std::string_view v, double& out) {
  std::string s(v);
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return !s.empty() && end == s.c_str() + s.size() && std::isfinite(out) && out >= 0;
}

// utime + stime of a process (all its threads) in seconds; < 0 when unreadable.
double cpu_seconds(const std::string& stat_path) {
  std::ifstream in(stat_path);
  std::string line;
  if (!std::getline(in, line)) return -1;
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream rest(line.substr(paren + 2));
  std::string field;
  double utime = 0, stime = 0;
  // Fields after the name start at 3 (state); utime and stime are 14 and 15.
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::strtod(field.c_str(), nullptr);
    if (i == 15) stime = std::strtod(field.c_str(), nullptr);
  }
  return (utime + stime) / double(sysconf(_SC_CLK_TCK));
}

// `s` escaped for the inside of a JSON string.
std::string json_escape(std::string_view s) {
  std::string o;
  policy::append_json_escaped(o, s);
  return o;
}

// Percentiles for reports and plots: 0 .. 99.999 on a 1/(1-p) scale.
const std::vector<double>& curve_points() {
  static const std::vector<double> kPoints = [] {
    std::vector<double> v;
    for (double p :
         {0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999})
      v.push_back(p);
    return v;
  }();
  return kPoints;
}

std::string fmt_latency(uint64_t ns) {
  char buf[32];
  if (ns < 1'000'000) {
    std::snprintf(buf, sizeof buf, "%.1f us", double(ns) / 1e3);
  } else if (ns < 1'000'000'000) {
    std::snprintf(buf, sizeof buf, "%.2f ms", double(ns) / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f s", double(ns) / 1e9);
  }
  return buf;
}

std::string with_commas(uint64_t v) {
  // Built forward (std::string::insert trips GCC 12's -Wrestrict false positive at -O3).
  char digits[24];
  const int n = std::snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i > 0 && (n - i) % 3 == 0) s += ',';
    s += digits[i];
  }
  return s;
}

}  // namespace

// Writes an SVG plot of latency (ms) by percentile on a 1/(1-p) axis, one line per series.
bool write_latency_plot(const std::string& path, const std::string& title,
                        const std::vector<std::pair<std::string, std::vector<double>>>& series_ms) {
  const std::vector<double>& pts = curve_points();
  const double w = 760, h = 420, left = 70, right = 190, top = 40, bottom = 50;
  const double pw = w - left - right, ph = h - top - bottom;
  double ymax = 0;
  for (const auto& s : series_ms)
    for (double v : s.second)
      ymax = std::max(ymax, v);
  // A round top for the y axis.
  double step = std::pow(10.0, std::floor(std::log10(std::max(ymax, 1e-3))));
  double ytop = std::ceil(std::max(ymax, 1e-3) / step) * step;
  auto xof = [&](double p) {
    const double x = std::log10(1.0 / (1.0 - std::min(p, 99.999) / 100.0));  // 0 .. 5
    return left + pw * x / 5.0;
  };
  auto yof = [&](double v) { return top + ph * (1.0 - v / ytop); };
  std::ofstream out(path);
  if (!out) return false;
  char buf[256];
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << left << "\" y=\"22\" font-size=\"15\">" << json_escape(title)
      << "</text>\n";
  for (int i = 0; i <= 5; ++i) {
    const double x = left + pw * i / 5.0;
    static const char* kLabels[] = {"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"};
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                  x, top, x, top + ph, x, top + ph + 18, kLabels[i]);
    out << buf;
  }
  for (int i = 0; i <= 4; ++i) {
    const double v = ytop * i / 4.0;
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                  left, yof(v), left + pw, yof(v), left - 6, yof(v) + 4, v);
    out << buf;
  }
  std::snprintf(buf, sizeof buf,
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">percentile</text>"
                "<text x=\"16\" y=\"%.1f\" transform=\"rotate(-90 16 %.1f)\" "
                "text-anchor=\"middle\">latency (ms)</text>\n",
                left + pw / 2, h - 12, top + ph / 2, top + ph / 2);
  out << buf;
  static const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                  "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22"};
  for (size_t s = 0; s < series_ms.size(); ++s) {
    const char* color = kColors[s % 10];
    out << "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"" << color << "\" points=\"";
    for (size_t i = 0; i < pts.size() && i < series_ms[s].second.size(); ++i) {
      std::snprintf(buf, sizeof buf, "%.1f,%.1f ", xof(pts[i]), yof(series_ms[s].second[i]));
      out << buf;
    }
    out << "\"/>\n";
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"3\" fill=\"%s\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\">",
                  left + pw + 14, top + 10 + 18.0 * double(s), color, left + pw + 30,
                  top + 15 + 18.0 * double(s));
    out << buf << json_escape(series_ms[s].first) << "</text>\n";
  }
  out << "</svg>\n";
  return bool(out);
}

int run_bench(std::span<char* const> args) {
  bench_options o;
  auto need = [&](size_t& i, std::string_view flag) -> const char* {
    if (i + 1 >= args.size()) {
      std::fprintf(stderr, "sluice bench: %.*s needs a value\n", int(flag.size()), flag.data());
      return nullptr;
    }
    return args[++i];
  };
  auto bad = [](std::string_view flag, std::string_view v) {
    std::fprintf(stderr, "sluice bench: bad value for %.*s: '%.*s'\n", int(flag.size()),
                 flag.data(), int(v.size()), v.data());
    return 2;
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kBenchUsage, stdout);
      return 0;
    }
    if (a == "--json") {
      o.json = true;
      continue;
    }
    if (a.substr(0, 1) != "-") {
      if (!o.url.empty()) {
        std::fprintf(stderr, "sluice bench: one URL only\n%s", kBenchUsage);
        return 2;
      }
      o.url = std::string(a);
      continue;
    }
    const char* v = need(i, a);
    if (v == nullptr) return 2;
    const std::string_view val = v;
    unsigned u = 0;
    if (a == "-c" || a == "--connections") {
      if (!parse_num(val, u) || u == 0 || u > 100000) return bad(a, val);
      o.run.connections = u;
    } else if (a == "-t" || a == "--threads") {
      if (!parse_num(val, u) || u == 0 || u > 1024) return bad(a, val);
      o.run.threads = u;
    } else if (a == "-p" || a == "--depth") {
      if (!parse_num(val, u) || u == 0 || u > 4096) return bad(a, val);
      o.run.depth = u;
    } else if (a == "-r" || a == "--rate") {
      if (!parse_double(val, o.run.rate)) return bad(a, val);
    } else if (a == "-d" || a == "--duration") {
      if (!parse_double(val, o.run.duration_s) || o.run.duration_s <= 0) return bad(a, val);
      o.duration_given = true;
    } else if (a == "-w" || a == "--warmup") {
      if (!parse_double(val, o.run.warmup_s)) return bad(a, val);
    } else if (a == "-n" || a == "--requests") {
      if (!parse_num(val, o.run.requests) || o.run.requests == 0) return bad(a, val);
    } else if (a == "--kind") {
      if (val != "mcp" && val != "decide") return bad(a, val);
      o.kind = std::string(val);
    } else if (a == "--tool") {
      tool_spec t;
      const size_t colon = val.rfind(':');
      t.name = std::string(val.substr(0, colon));
      if (colon != std::string_view::npos && !parse_double(val.substr(colon + 1), t.weight))
        return bad(a, val);
      if (t.name.empty()) return bad(a, val);
      o.tools.push_back(std::move(t));
    } else if (a == "--mix") {
      o.mix = std::string(val);
    } else if (a == "--replay") {
      o.replay = std::string(val);
    } else if (a == "--token") {
      o.tokens.emplace_back(val);
    } else if (a == "--tokens-file") {
      o.tokens_file = std::string(val);
    } else if (a == "--sessions") {
      if (!parse_num(val, o.sessions) || o.sessions > 100000) return bad(a, val);
    } else if (a == "--header") {
      if (val.find(':') == std::string_view::npos ||
          val.find_first_of("\r\n") != std::string_view::npos)
        return bad(a, val);
      o.headers.emplace_back(val);
    } else if (a == "--pool") {
      if (!parse_num(val, o.pool) || o.pool == 0 || o.pool > (1u << 20)) return bad(a, val);
    } else if (a == "--seed") {
      if (!parse_num(val, o.seed)) return bad(a, val);
    } else if (a == "--plot") {
      o.plot = std::string(val);
    } else if (a == "--pid") {
      if (!parse_num(val, o.pid) || o.pid <= 0) return bad(a, val);
    } else if (a == "--label") {
      o.label = std::string(val);
    } else {
      std::fprintf(stderr, "sluice bench: unknown option '%.*s'\n\n%s", int(a.size()), a.data(),
                   kBenchUsage);
      return 2;
    }
  }
  if (o.url.empty()) {
    std::fprintf(stderr, "sluice bench: no URL\n\n%s", kBenchUsage);
    return 2;
  }
  if (o.run.requests > 0 && !o.duration_given) o.run.duration_s = 60;

  std::string err;
  target tgt;
  if (!parse_target(o.url, tgt, err)) {
    std::fprintf(stderr, "sluice bench: %s\n", err.c_str());
    return 2;
  }
  traffic tr;
  tr.pool_size = o.pool;
  tr.seed = o.seed;
  tr.headers = o.headers;
  tr.tokens = o.tokens;
  if (!o.tokens_file.empty()) {
    std::vector<std::string> lines;
    if (!load_replay(o.tokens_file, lines, err)) {
      std::fprintf(stderr, "sluice bench: %s\n", err.c_str());
      return 2;
    }
    tr.tokens.insert(tr.tokens.end(), lines.begin(), lines.end());
  }
  if (!o.replay.empty()) {
    if (!load_replay(o.replay, tr.replay, err)) {
      std::fprintf(stderr, "sluice bench: %s\n", err.c_str());
      return 2;
    }
  } else {
    tr.tools = o.tools;
    if (!o.mix.empty() && !load_mix(o.mix, tr.tools, err)) {
      std::fprintf(stderr, "sluice bench: %s\n", err.c_str());
      return 2;
    }
    if (tr.tools.empty()) tr.tools = default_mix();
    double total = 0;
    for (const tool_spec& t : tr.tools)
      total += t.weight;
    if (!(total > 0)) {
      std::fprintf(stderr, "sluice bench: the tool weights add up to 0\n");
      return 2;
    }
  }
  const bool decide_path = tgt.path.size() >= 7 && tgt.path.ends_with("/decide");
  o.run.kind = o.kind == "decide" || (o.kind.empty() && decide_path) ? target_kind::decide
                                                                     : target_kind::mcp;
  if (o.sessions > 0 && !initialize_sessions(tgt, o.sessions, tr, err)) {
    std::fprintf(stderr, "sluice bench: %s\n", err.c_str());
    return 1;
  }
  const request_pool pool = build_pool(tgt, tr);
  o.run.tgt = &tgt;
  o.run.pool = &pool;
  o.run.connections = std::max(o.run.connections, o.run.threads);

  const std::string server_stat = o.pid > 0 ? "/proc/" + std::to_string(o.pid) + "/stat" : "";
  double server_cpu0 = 0, server_cpu1 = 0, self_cpu0 = 0, self_cpu1 = 0;
  const bool live = !o.json && isatty(STDOUT_FILENO) != 0;
  uint64_t last_answered = 0;
  double last_t = 0;
  int last_whole = -1;
  auto progress = [&](uint64_t answered, double t) {
    if (!live) return;
    const int whole = int(std::floor(t));
    if (whole == last_whole || t < 0.05) return;
    last_whole = whole;
    const double rate = t > last_t ? double(answered - last_answered) / (t - last_t) : 0;
    last_answered = answered;
    last_t = t;
    std::printf("\r\033[K  %5.1fs  %s answers  %s/s", t, with_commas(answered).c_str(),
                with_commas(uint64_t(rate)).c_str());
    std::fflush(stdout);
  };
  bench::run_result r = bench::run(
      o.run, progress,
      [&] {
        if (!server_stat.empty()) server_cpu0 = cpu_seconds(server_stat);
        self_cpu0 = cpu_seconds("/proc/self/stat");
      },
      [&] {
        if (!server_stat.empty()) server_cpu1 = cpu_seconds(server_stat);
        self_cpu1 = cpu_seconds("/proc/self/stat");
      });
  if (live) std::printf("\r\033[K");
  if (!r.error.empty()) {
    std::fprintf(stderr, "sluice bench: %s\n", r.error.c_str());
    return 1;
  }
  const stats& s = *r.total;
  const uint64_t answered = s.answered();
  const double rps = double(answered) / r.elapsed_s;
  const histogram& h = s.latency;
  const double server_cpu =
      server_stat.empty() || server_cpu0 < 0 || server_cpu1 < 0 ? -1 : server_cpu1 - server_cpu0;
  const double self_cpu = self_cpu1 - self_cpu0;
  const std::string label = o.label.empty() ? o.url : o.label;
  const std::string mode = o.run.rate > 0 ? "open" : "closed";

  std::vector<double> curve_ms;
  for (double p : curve_points())
    curve_ms.push_back(double(p == 0 ? h.min() : h.percentile(p)) / 1e6);

  if (o.json) {
    std::string j = "{";
    char buf[512];
    j += "\"label\":\"" + json_escape(label) + "\",\"url\":\"" + json_escape(o.url) + "\"";
    std::snprintf(buf, sizeof buf,
                  ",\"kind\":\"%s\",\"mode\":\"%s\",\"threads\":%u,\"connections\":%u,"
                  "\"depth\":%u,\"rate\":%.3f,\"elapsed_s\":%.6f,\"requests\":%llu,"
                  "\"throughput\":%.3f,\"bytes_in\":%llu",
                  o.run.kind == target_kind::decide ? "decide" : "mcp", mode.c_str(), o.run.threads,
                  o.run.connections, o.run.depth, o.run.rate, r.elapsed_s,
                  (unsigned long long)answered, rps, (unsigned long long)s.bytes_in);
    j += buf;
    std::snprintf(buf, sizeof buf,
                  ",\"latency_us\":{\"min\":%.3f,\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,"
                  "\"p99\":%.3f,\"p99.9\":%.3f,\"max\":%.3f}",
                  double(h.min()) / 1e3, h.mean() / 1e3, double(h.percentile(50)) / 1e3,
                  double(h.percentile(90)) / 1e3, double(h.percentile(99)) / 1e3,
                  double(h.percentile(99.9)) / 1e3, double(h.max()) / 1e3);
    j += buf;
    j += ",\"percentiles_ms\":[";
    for (size_t i = 0; i < curve_ms.size(); ++i) {
      std::snprintf(buf, sizeof buf, "%s[%g,%.6f]", i ? "," : "", curve_points()[i], curve_ms[i]);
      j += buf;
    }
    j += "],\"decisions\":{";
    for (size_t i = 0; i < kOutcomes; ++i) {
      const std::string_view n = outcome_name(outcome(i));
      std::snprintf(buf, sizeof buf, "%s\"%.*s\":%llu", i ? "," : "", int(n.size()), n.data(),
                    (unsigned long long)s.outcomes[i]);
      j += buf;
    }
    j += "},\"errors\":{";
    for (size_t i = 0; i < kErrorKinds; ++i) {
      const std::string_view n = error_name(error_kind(i));
      std::snprintf(buf, sizeof buf, "%s\"%.*s\":%llu", i ? "," : "", int(n.size()), n.data(),
                    (unsigned long long)s.errors[i]);
      j += buf;
    }
    j += "}";
    std::snprintf(buf, sizeof buf, ",\"client_cpu\":{\"cores\":%.4f,\"us_per_request\":%.4f}",
                  self_cpu / r.elapsed_s, answered ? 1e6 * self_cpu / double(answered) : 0.0);
    j += buf;
    if (server_cpu >= 0) {
      std::snprintf(buf, sizeof buf,
                    ",\"server_cpu\":{\"pid\":%ld,\"cores\":%.4f,\"us_per_request\":%.4f}", o.pid,
                    server_cpu / r.elapsed_s, answered ? 1e6 * server_cpu / double(answered) : 0.0);
      j += buf;
    }
    j += "}\n";
    std::fputs(j.c_str(), stdout);
  } else {
    std::printf("%s  %s (%s), %u thread%s, %u connections x depth %u, %s loop", label.c_str(),
                o.url.c_str(), o.run.kind == target_kind::decide ? "decide" : "mcp", o.run.threads,
                o.run.threads == 1 ? "" : "s", o.run.connections, o.run.depth, mode.c_str());
    if (o.run.rate > 0) std::printf(" at %.0f req/s", o.run.rate);
    std::printf(", %.2f s\n", r.elapsed_s);
    std::printf("  requests    %s   throughput %s req/s\n", with_commas(answered).c_str(),
                with_commas(uint64_t(rps)).c_str());
    std::printf("  latency     p50 %s   p90 %s   p99 %s   p99.9 %s   max %s\n",
                fmt_latency(h.percentile(50)).c_str(), fmt_latency(h.percentile(90)).c_str(),
                fmt_latency(h.percentile(99)).c_str(), fmt_latency(h.percentile(99.9)).c_str(),
                fmt_latency(h.max()).c_str());
    std::printf("  decisions  ");
    for (size_t i = 0; i < kOutcomes; ++i) {
      if (s.outcomes[i] == 0) continue;
      const std::string_view n = outcome_name(outcome(i));
      std::printf(" %.*s %s (%.1f%%)", int(n.size()), n.data(), with_commas(s.outcomes[i]).c_str(),
                  100.0 * double(s.outcomes[i]) / double(answered));
    }
    std::printf("\n  errors     ");
    bool any = false;
    for (size_t i = 0; i < kErrorKinds; ++i) {
      if (s.errors[i] == 0) continue;
      any = true;
      const std::string_view n = error_name(error_kind(i));
      std::printf(" %.*s %s", int(n.size()), n.data(), with_commas(s.errors[i]).c_str());
    }
    std::printf(any ? "\n" : " none\n");
    if (server_cpu >= 0) {
      std::printf("  server cpu  pid %ld: %.2f cores, %.2f us per request\n", o.pid,
                  server_cpu / r.elapsed_s, answered ? 1e6 * server_cpu / double(answered) : 0.0);
    }
    std::printf("  client cpu  %.2f cores, %.2f us per request\n", self_cpu / r.elapsed_s,
                answered ? 1e6 * self_cpu / double(answered) : 0.0);
  }
  if (!o.plot.empty() &&
      !write_latency_plot(o.plot, "sluice bench: latency by percentile", {{label, curve_ms}})) {
    std::fprintf(stderr, "sluice bench: cannot write %s\n", o.plot.c_str());
    return 1;
  }
  return answered > 0 ? 0 : 1;
}

}  // namespace sluice::cli
