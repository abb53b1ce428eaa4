// The dashboard page, embedded: plain HTML and a script that polls GET /admin/stats once a
// second with the admin token and draws on a canvas. No build tooling, no external assets.

#include "net/control/plane_impl.h"

namespace sluice::control {

std::string_view dashboard_html() {
  static constexpr std::string_view kPage = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sluice</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d232b}
header{background:#1d232b;color:#fff;padding:10px 18px;display:flex;gap:18px;align-items:center}
header h1{font-size:17px;margin:0}#status{opacity:.8}
main{display:grid;grid-template-columns:1fr 1fr;gap:14px;padding:14px}
section{background:#fff;border-radius:6px;padding:12px;box-shadow:0 1px 2px #0002}
section.wide{grid-column:1/3}h2{font-size:14px;margin:0 0 8px}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:3px 6px;border-bottom:1px solid #eee;vertical-align:top}
code{font-size:12px;word-break:break-all}.legend span{margin-right:12px}
button{cursor:pointer;padding:3px 10px;margin-right:4px}.empty{color:#888}
#login{padding:40px;text-align:center}
</style></head><body>
<header><h1>Sluice</h1><span id="status">connecting…</span></header>
<div id="login" hidden><p>Admin token:</p><input id="token" type="password" size="40">
<button id="go">Open</button></div>
<main id="ui" hidden>
<section class="wide"><h2>Decisions per second</h2>
<canvas id="chart" width="1000" height="200" style="width:100%;height:200px"></canvas>
<div class="legend" id="legend"></div></section>
<section class="wide"><h2>Waiting for approval</h2>
<table id="approvals"><thead><tr><th>id</th><th>tool</th><th>arguments</th><th>grant</th><th>session</th><th>age</th><th></th></tr></thead><tbody></tbody></table></section>
<section><h2>Top tools</h2><table id="tools"><thead><tr><th>tool</th><th>total</th><th>allow</th><th>deny</th><th>limited</th><th>approval</th></tr></thead><tbody></tbody></table></section>
<section><h2>Recent refusals</h2><table id="refusals"><thead><tr><th>time</th><th>tool</th><th>verdict</th><th>reason</th></tr></thead><tbody></tbody></table></section>
<section class="wide"><h2>Upstream</h2><table id="upstream"><thead><tr><th>calls/s</th><th>failed/s</th><th>failures since start</th><th>connections idle · busy · stream</th><th>waiting</th><th>slow clients held · cut off</th><th>answers 4xx · 5xx</th></tr></thead><tbody><tr><td></td><td></td><td></td><td></td><td></td><td></td><td></td></tr></tbody></table></section>
</main>
<script>
"use strict";
const V = ["allow","deny","rate_limited","approval_required","invalid"];
const C = {allow:"#2e9d57",deny:"#d0413a",rate_limited:"#e39b21",approval_required:"#3a6fd0",invalid:"#888"};
let token = sessionStorage.getItem("sluice-token") || "";
const m = location.hash.match(/token=([^&]+)/);
if (m) { token = decodeURIComponent(m[1]); sessionStorage.setItem("sluice-token", token); history.replaceState(null, "", location.pathname); }
const series = []; let last = null;
const $ = (s) => document.querySelector(s);
function cell(tr, text) { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); return td; }
async function api(path, opts) {
  opts = opts || {}; opts.headers = Object.assign({"Authorization": "Bearer " + token}, opts.headers || {});
  const r = await fetch(path, opts);
  if (r.status === 401) { $("#ui").hidden = true; $("#login").hidden = false; throw new Error("token"); }
  return r.json();
}
async function decide(id, decision) {
  const reason = decision === "deny" ? (prompt("Reason for the agent:", "denied by an operator") || "") : "approved by an operator";
  await api("/admin/approvals/" + id, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({decision, reason})});
  refresh();
}
function draw() {
  const cv = $("#chart"), g = cv.getContext("2d"), w = cv.width, h = cv.height;
  g.clearRect(0, 0, w, h);
  let max = 1; for (const p of series) for (const v of V) max = Math.max(max, p[v]);
  g.strokeStyle = "#eee"; g.fillStyle = "#888"; g.font = "12px sans-serif";
  for (let i = 0; i <= 4; i++) { const y = h - 20 - (h - 30) * i / 4; g.beginPath(); g.moveTo(40, y); g.lineTo(w, y); g.stroke(); g.fillText((max * i / 4).toFixed(max < 4 ? 1 : 0), 2, y + 4); }
  for (const v of V) {
    g.strokeStyle = C[v]; g.lineWidth = 2; g.beginPath();
    series.forEach((p, i) => { const x = 40 + (w - 40) * i / 59, y = h - 20 - (h - 30) * p[v] / max; i ? g.lineTo(x, y) : g.moveTo(x, y); });
    g.stroke();
  }
  $("#legend").innerHTML = "";
  for (const v of V) { const s = document.createElement("span"); s.style.color = C[v]; s.textContent = "■ " + v + " " + (series.length ? series[series.length - 1][v].toFixed(1) : 0) + "/s"; $("#legend").appendChild(s); }
}
function render(s) {
  if (last) {
    const dt = Math.max(0.001, (s.time_ms - last.time_ms) / 1000), p = {};
    for (const v of V) p[v] = Math.max(0, (s.messages[v] - last.messages[v]) / dt);
    series.push(p); if (series.length > 60) series.shift();
  }
  const u = s.upstream, failed = (x) => Object.values(x.errors).reduce((a, b) => a + b, 0);
  const ur = $("#upstream tbody tr").cells, dt = last ? Math.max(0.001, (s.time_ms - last.time_ms) / 1000) : 0;
  ur[0].textContent = last ? Math.max(0, (u.requests - last.upstream.requests) / dt).toFixed(1) : "…";
  ur[1].textContent = last ? Math.max(0, (failed(u) - failed(last.upstream)) / dt).toFixed(1) : "…";
  ur[2].textContent = Object.entries(u.errors).filter(([, n]) => n).map(([k, n]) => k + " " + n).join(", ") || "none";
  ur[3].textContent = u.connections.idle + " · " + u.connections.busy + " · " + u.connections.stream;
  ur[4].textContent = u.waiting; ur[5].textContent = s.clients.holds + " · " + s.clients.send_timeouts;
  ur[6].textContent = s.responses["4xx"] + " · " + s.responses["5xx"];
  last = s; draw();
  const ab = $("#approvals tbody"); ab.innerHTML = "";
  if (!s.approvals.length) { const tr = ab.insertRow(); const td = cell(tr, "nothing waits"); td.colSpan = 7; td.className = "empty"; }
  for (const a of s.approvals) {
    const tr = ab.insertRow(); tr.dataset.id = a.id; tr.className = "approval";
    cell(tr, a.id); cell(tr, a.tool); const c = cell(tr, ""); const code = document.createElement("code"); code.textContent = JSON.stringify(a.arguments); c.appendChild(code);
    cell(tr, a.grant); cell(tr, a.session); cell(tr, Math.round(a.age_ms / 1000) + " s");
    const b = cell(tr, "");
    for (const [label, d] of [["Approve", "approve"], ["Deny", "deny"]]) { const btn = document.createElement("button"); btn.textContent = label; btn.className = d; btn.onclick = () => decide(a.id, d); b.appendChild(btn); }
  }
  const tb = $("#tools tbody"); tb.innerHTML = "";
  for (const t of s.top_tools) { const tr = tb.insertRow(); cell(tr, t.tool); cell(tr, t.total); cell(tr, t.allow); cell(tr, t.deny); cell(tr, t.rate_limited); cell(tr, t.approval_required); }
  const rb = $("#refusals tbody"); rb.innerHTML = "";
  for (const r of s.recent_refusals.slice(0, 20)) { const tr = rb.insertRow(); cell(tr, r.time.slice(11, 19)); cell(tr, r.tool); cell(tr, r.verdict); cell(tr, r.reason); }
  $("#status").textContent = "policy v" + s.policy_version + " · " + s.open_connections + " connections · " + s.approvals.length + " waiting" + (s.audit_dropped ? " · audit dropped " + s.audit_dropped : "");
}
async function refresh() { try { render(await api("/admin/stats")); } catch (e) { if (e.message !== "token") $("#status").textContent = "unreachable"; } }
function open() { $("#login").hidden = true; $("#ui").hidden = false; refresh(); }
$("#go").onclick = () => { token = $("#token").value; sessionStorage.setItem("sluice-token", token); open(); };
if (token) open(); else $("#login").hidden = false;
setInterval(() => { if (token && !$("#ui").hidden) refresh(); }, 1000);
</script></body></html>
)HTML";
  return kPage;
}

}  // namespace sluice::control
