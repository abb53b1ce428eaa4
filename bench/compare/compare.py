#!/usr/bin/env python3
"""Sluice beside its peers (run through bench/compare/run.sh, which installs them).

Every server under test runs alone on CPU 1. The load generator (sluice bench, one thread,
64 connections) and the shared upstream (sluice-example-server) run on CPU 0. Each run is
short; the table compares within this one run: throughput, p50, p99, the server's CPU
microseconds per request (utime+stime over the measured part) and each figure's ratio to
Sluice (the decision service for `return 200`-like rows, the gateway for proxies).

It also measures the load generator against wrk on the same targets (client CPU per request
from the kernel's accounting of each child).
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

UP_PORT = 18081
PORT = 18080
CALL = ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file",'
        '"arguments":{"path":"/data/1/file.parquet","region":"eu-west-1","limit":10}}}')
DECIDE_ANSWER = '{"decision":"allow","tool":"read_file","rule":"/tools/read_file","reason":""}'

NGINX_CONF = """worker_processes 1;
daemon off;
error_log {dir}/nginx-error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  upstream example {{ server 127.0.0.1:{up}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location /v1/decide {{ default_type application/json; return 200 '{answer}'; }}
    location /mcp {{ proxy_pass http://example; proxy_http_version 1.1;
                    proxy_set_header Connection ""; proxy_buffering off; }}
  }}
}}
"""

# A per-client request-rate limit in a stick table (high enough never to refuse in a run).
HAPROXY_CONF = """global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:{port}
  stick-table type ip size 100k expire 60s store http_req_rate(10s)
  http-request track-sc0 src
  http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt 100000000 }}
  default_backend example
backend example
  http-reuse always
  server up 127.0.0.1:{up} maxconn 64
"""

POLICY = '{"version":"1","default":"allow","tools":{"delete_*":{"action":"deny"}}}'


def wait_port(port, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def port_free(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                time.sleep(0.1)
        except OSError:
            return True
    return False


def machine():
    model = cores = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            if k.strip() == "Model name":
                model = v.strip()
            elif k.strip() == "CPU(s)":
                cores = v.strip()
    except OSError:
        pass
    load = os.getloadavg()
    return {"cpu": model, "cpus": cores, "kernel": platform.release(),
            "load_before": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"}


class server:
    def __init__(self, argv, cpu, env=None, cwd=None):
        self.argv = argv
        full = ["taskset", "-c", str(cpu)] + argv
        self.proc = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=env, cwd=cwd, start_new_session=True)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def group_pids(pgid):
    """Every process in a process group (a proxy and the stdio child it starts)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.getpgid(int(d)) == pgid:
                    pids.append(int(d))
            except OSError:
                pass
    return pids


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def run_bench(sluice, url, seconds, extra, pids):
    """sluice bench on CPU 0; server CPU read here over the whole process group."""
    argv = ["taskset", "-c", "0", sluice, "bench", "--json", "-c", "64", "-t", "1",
            "-w", "0.5", "-d", str(seconds)] + extra + [url]
    tck = os.sysconf("SC_CLK_TCK")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Measure the server over the measured part only (after the warm-up).
    time.sleep(0.5)
    c0 = cpu_ticks(pids)
    t0 = time.time()
    out, err = proc.communicate()
    c1 = cpu_ticks(pids)
    t1 = time.time()
    if proc.returncode not in (0, 1) or not out.strip():
        return {"error": (err or out).strip()[:300]}
    r = json.loads(out)
    n = r["requests"] * (t1 - t0) / max(r["elapsed_s"], 1e-9)
    r["server_us_per_request"] = 1e6 * (c1 - c0) / tck / n if n > 0 else None
    r["server_cores"] = (c1 - c0) / tck / (t1 - t0)
    return r


def run_wrk(url, seconds, lua):
    """wrk -t1 -c64 on CPU 0; its CPU from wait4's rusage."""
    argv = ["taskset", "-c", "0", "wrk", "-t1", "-c64", f"-d{max(1, round(seconds))}s", "--latency",
            "-s", lua, url]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = b""
    for chunk in iter(lambda: proc.stdout.read(65536), b""):
        out += chunk
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = status
    text = out.decode()
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        print("  wrk: " + (text + proc.stderr.read().decode())[-300:], flush=True)
    rps = float(m.group(1)) if m else 0.0
    cpu = ru.ru_utime + ru.ru_stime
    seconds = max(1, round(seconds))
    return {"throughput": rps, "client_us_per_request": 1e6 * cpu / (rps * seconds) if rps else None,
            "client_cores": cpu / seconds}


def fmt_ms(us):
    return "—" if us is None else (f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} us")


def ratio(a, b):
    if not a or not b:
        return "—"
    return f"{a / b:.2f}" if a / b >= 0.1 else f"{a / b:.4f}"


def svg_plot(path, series, title):
    pts = [0.0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999]
    import math
    w, h, left, right, top, bottom = 820, 440, 70, 250, 40, 50
    pw, ph = w - left - right, h - top - bottom
    ymax = max([v for _, s in series for v in s] + [0.001])
    ymax = min(ymax, 10 * sorted([s[7] for _, s in series])[len(series) // 2] + 0.001)
    step = 10 ** math.floor(math.log10(ymax))
    ytop = math.ceil(ymax / step) * step
    x = lambda p: left + pw * math.log10(1 / (1 - min(p, 99.999) / 100)) / 5
    y = lambda v: top + ph * (1 - min(v, ytop) / ytop)
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
              "#7f7f7f", "#17becf", "#bcbd22"]
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
         f'font-family="sans-serif" font-size="12">',
         '<rect width="100%" height="100%" fill="white"/>',
         f'<text x="{left}" y="22" font-size="15">{title}</text>']
    for i, lab in enumerate(["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]):
        xx = left + pw * i / 5
        o.append(f'<line x1="{xx:.1f}" y1="{top}" x2="{xx:.1f}" y2="{top + ph}" stroke="#ddd"/>'
                 f'<text x="{xx:.1f}" y="{top + ph + 18}" text-anchor="middle">{lab}</text>')
    for i in range(5):
        v = ytop * i / 4
        o.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + pw}" y2="{y(v):.1f}" '
                 f'stroke="#ddd"/><text x="{left - 6}" y="{y(v) + 4:.1f}" '
                 f'text-anchor="end">{v:g}</text>')
    o.append(f'<text x="{left + pw / 2}" y="{h - 12}" text-anchor="middle">percentile</text>'
             f'<text x="16" y="{top + ph / 2}" transform="rotate(-90 16 {top + ph / 2})" '
             f'text-anchor="middle">latency (ms, clipped)</text>')
    for i, (name, s) in enumerate(series):
        c = colors[i % len(colors)]
        p = " ".join(f"{x(pp):.1f},{y(v):.1f}" for pp, v in zip(pts, s))
        o.append(f'<polyline fill="none" stroke-width="2" stroke="{c}" points="{p}"/>')
        o.append(f'<rect x="{left + pw + 14}" y="{top + 10 + 18 * i}" width="12" height="3" '
                 f'fill="{c}"/><text x="{left + pw + 30}" y="{top + 15 + 18 * i}">{name}</text>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--node-bin", required=True)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "results"))
    a = ap.parse_args()
    sluice = os.path.join(a.build, "tools/sluice/sluice")
    example = os.path.join(a.build, "tools/example_server/sluice-example-server")
    os.makedirs(a.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="sluice-compare-")
    with open(f"{tmp}/call.jsonl", "w") as f:
        f.write(CALL + "\n")
    with open(f"{tmp}/policy.json", "w") as f:
        f.write(POLICY)
    with open(f"{tmp}/nginx.conf", "w") as f:
        f.write(NGINX_CONF.format(dir=tmp, up=UP_PORT, port=PORT, answer=DECIDE_ANSWER))
    with open(f"{tmp}/haproxy.cfg", "w") as f:
        f.write(HAPROXY_CONF.format(up=UP_PORT, port=PORT))
    with open(f"{tmp}/post.lua", "w") as f:
        f.write('wrk.method = "POST"\nwrk.body = \'' + CALL + '\'\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                'wrk.headers["Accept"] = "application/json, text/event-stream"\n')
    info = machine()
    print(f"machine: {info['cpu']}, {info['cpus']} CPUs, Linux {info['kernel']}, "
          f"load {info['load_before']}", flush=True)
    if not port_free(PORT) or not port_free(UP_PORT):
        sys.exit(f"ports {PORT}/{UP_PORT} are in use")

    upstream = server([example, "--listen", f"127.0.0.1:{UP_PORT}"], 0)
    if not wait_port(UP_PORT):
        sys.exit("sluice-example-server did not start")
    base = f"http://127.0.0.1:{PORT}"
    mcp = ["--replay", f"{tmp}/call.jsonl", "--sessions", "4"]
    decide = ["--replay", f"{tmp}/call.jsonl"]
    node_env = dict(os.environ, PORT=str(PORT), TARGET_SERVER_URL=f"http://127.0.0.1:{UP_PORT}",
                    TARGET_SERVER_MCP_PATH="/mcp", LOG_LEVEL="error")
    peers = [
        # name, group, argv, env, [(label, path, extra)]
        ("Sluice", "sluice", [sluice, "serve", "--shards", "1", "--listen", f"127.0.0.1:{PORT}",
                              "--policy", f"{tmp}/policy.json",
                              "--upstream", f"http://127.0.0.1:{UP_PORT}/mcp"], None,
         [("Sluice decision service", "/v1/decide", decide, "decide"),
          ("Sluice gateway", "/mcp", mcp, "proxy")]),
        ("nginx", "nginx", ["nginx", "-c", f"{tmp}/nginx.conf", "-p", tmp], None,
         [("nginx return 200", "/v1/decide", decide, "decide"),
          ("nginx proxy_pass", "/mcp", mcp, "proxy")]),
        ("HAProxy", "haproxy", ["haproxy", "-f", f"{tmp}/haproxy.cfg"], None,
         [("HAProxy stick-table + proxy", "/mcp", mcp, "proxy")]),
        ("civic", "civic", ["node", os.path.realpath(os.path.join(
             os.path.dirname(a.node_bin), "@civic/passthrough-mcp-server/dist/cli.js"))],
         node_env,
         [("@civic/passthrough-mcp-server 0.12.1", "/mcp", mcp, "proxy")]),
        ("mcp-proxy", "mcp-proxy",
         [os.path.join(a.node_bin, "mcp-proxy"), "--port", str(PORT), "--host", "127.0.0.1",
          "--server", "stream", "--", os.path.join(a.node_bin, "mcp-remote"),
          f"http://127.0.0.1:{UP_PORT}/mcp", "--allow-http", "--transport", "http-only"],
         None, [("mcp-proxy 6.7.19 + mcp-remote 0.15.1 (stdio)", "/mcp", mcp, "proxy")]),
    ]
    rows = []
    wrk_rows = []
    for name, _, argv, env, runs in peers:
        if not port_free(PORT):
            print(f"  port {PORT} still busy; skipping {name}", flush=True)
            continue
        s = server(argv, 1, env=env, cwd=tmp)
        try:
            if not wait_port(PORT, 30):
                err = s.proc.stderr.read(300).decode(errors="replace") if s.proc.poll() is not None else "no listener"
                for label, _, _, kind in runs:
                    rows.append({"name": label, "kind": kind, "error": f"did not start: {err}"})
                print(f"  {name}: did not start", flush=True)
                continue
            pids = group_pids(s.proc.pid)
            for label, path, extra, kind in runs:
                r = run_bench(sluice, base + path, a.seconds, extra, pids)
                r["name"], r["kind"] = label, kind
                rows.append(r)
                if "error" in r:
                    print(f"  {label}: {r['error']}", flush=True)
                else:
                    print(f"  {label}: {r['throughput']:.0f} req/s, p50 "
                          f"{fmt_ms(r['latency_us']['p50'])}, p99 {fmt_ms(r['latency_us']['p99'])}"
                          f", {r['server_us_per_request'] or 0:.2f} us CPU/req", flush=True)
                if name in ("nginx",) or (name == "Sluice" and kind == "proxy"):
                    w = run_wrk(base + path, a.seconds, f"{tmp}/post.lua")
                    b = run_bench(sluice, base + path, a.seconds, decide, pids)
                    wrk_rows.append({"target": label, "wrk": w, "bench": b})
        finally:
            s.stop()
    upstream.stop()

    # Ratios to Sluice: decision-service rows against the decision service, proxies against
    # the gateway.
    ref = {r["kind"]: r for r in rows if r["name"].startswith("Sluice") and "error" not in r}
    lines = ["| server (CPU 1) | req/s | p50 | p99 | server us CPU/req | req/s vs Sluice | "
             "CPU/req vs Sluice |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | failed: {r['error'][:80]} | | | | | |")
            continue
        b = ref.get(r["kind"], {})
        lines.append(
            f"| {r['name']} | {r['throughput']:,.0f} | {fmt_ms(r['latency_us']['p50'])} | "
            f"{fmt_ms(r['latency_us']['p99'])} | {r['server_us_per_request'] or 0:.2f} | "
            f"{ratio(r['throughput'], b.get('throughput'))} | "
            f"{ratio(r['server_us_per_request'], b.get('server_us_per_request'))} |")
    wlines = ["| target | wrk req/s | wrk us CPU/req | sluice bench req/s | sluice bench us CPU/req |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for w in wrk_rows:
        b = w["bench"]
        if "error" in b:
            continue
        wlines.append(f"| {w['target']} | {w['wrk']['throughput']:,.0f} | "
                      f"{w['wrk']['client_us_per_request'] or 0:.2f} | {b['throughput']:,.0f} | "
                      f"{b['client_cpu']['us_per_request']:.2f} |")
    head = (f"Machine: {info['cpu']}, {info['cpus']} vCPUs, Linux {info['kernel']}; load average "
            f"before the run {info['load_before']}. Each run: sluice bench -t1 -c64, "
            f"{a.seconds:g} s after 0.5 s warm-up, on CPU 0 with the upstream; server on CPU 1.")
    md = "\n".join([head, "", *lines, "", "Load generator against wrk (same target, same pinning):",
                    "", *wlines, ""])
    print("\n" + md)
    with open(os.path.join(a.out, "compare.md"), "w") as f:
        f.write(md)
    with open(os.path.join(a.out, "compare.json"), "w") as f:
        json.dump({"machine": info, "rows": rows, "wrk": wrk_rows}, f, indent=1)
    series = [(r["name"], [v for _, v in r["percentiles_ms"]]) for r in rows if "error" not in r]
    if series:
        svg_plot(os.path.join(a.out, "compare.svg"), series,
                 "Latency by percentile, 64 connections, closed loop (one run)")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {a.out}/compare.md, compare.json, compare.svg")


if __name__ == "__main__":
    main()
