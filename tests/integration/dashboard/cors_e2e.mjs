// An MCP client in a browser page (headless Chromium, driven by playwright-core) talking to
// `sluice serve` on another origin, so every request is a real CORS request with a preflight.
// A page on http://localhost (an allowed origin) initializes a session, reads the
// Mcp-Session-Id Sluice exposes, and makes an allowed and a denied call with it; a page on
// http://127.0.0.2 (not allowed) cannot. Run by tests/integration/dashboard_test.cc:
//   node cors_e2e.mjs MCP_PORT
import http from "node:http";
import { launch } from "./chromium.mjs";

const [mcpPort] = process.argv.slice(2);
const deadline = setTimeout(() => {
  console.error("cors e2e: over 50 s");
  process.exit(1);
}, 50_000);

// An empty page for each origin.
const listen = (host) =>
  new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      res.writeHead(200, { "Content-Type": "text/html" }).end("<!doctype html><title>agent</title>");
    });
    server.listen(0, host, () => resolve(server));
  });
const allowedSite = await listen("127.0.0.1");
const otherSite = await listen("127.0.0.2");

// Runs in the page: one MCP session, as a browser MCP client would make it.
async function session(url) {
  const post = async (body, sid) => {
    const headers = { "Content-Type": "application/json", Accept: "application/json, text/event-stream" };
    if (sid) headers["Mcp-Session-Id"] = sid;
    const r = await fetch(url, { method: "POST", headers, body: JSON.stringify(body) });
    return { status: r.status, sid: r.headers.get("Mcp-Session-Id"), body: await r.text() };
  };
  try {
    const init = await post({
      jsonrpc: "2.0", id: 0, method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "page", version: "1" } },
    });
    if (!init.sid) return { error: `no Mcp-Session-Id readable: ${JSON.stringify(init)}` };
    const note = await post({ jsonrpc: "2.0", method: "notifications/initialized" }, init.sid);
    const echo = await post({
      jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "echo", arguments: { text: "from the page" } },
    }, init.sid);
    const denied = await post({
      jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "delete_bucket", arguments: { bucket: "prod" } },
    }, init.sid);
    return { init: init.status, note: note.status, echo, denied };
  } catch (e) {
    return { error: String(e) };
  }
}

const browser = await launch();
let failed = false;
const check = (ok, what) => {
  if (!ok) failed = true;
  console.log(`${ok ? "ok" : "FAILED"}: ${what}`);
};
try {
  const page = browser.page;
  const mcp = `http://127.0.0.1:${mcpPort}/mcp`;

  await page.goto(`http://localhost:${allowedSite.address().port}/`);
  const a = await page.evaluate(session, mcp);
  check(!a.error, `allowed origin: no error (${a.error ?? ""})`);
  check(a.init === 200 && a.note === 202, `allowed origin: initialize 200, initialized 202 (${a.init}, ${a.note})`);
  check(a.echo?.status === 200 && a.echo.body.includes("from the page"), `allowed origin: echo answered (${JSON.stringify(a.echo)})`);
  check(a.denied?.status === 200 && a.denied.body.includes("[POLICY DENIED]"), `allowed origin: delete_bucket denied (${JSON.stringify(a.denied)})`);

  await page.goto(`http://127.0.0.2:${otherSite.address().port}/`);
  const b = await page.evaluate(session, mcp);
  check(b.error !== undefined && b.error.includes("TypeError"), `other origin: refused by the browser (${JSON.stringify(b)})`);
} catch (e) {
  failed = true;
  console.error(`cors e2e: ${e.stack ?? e}`);
} finally {
  await browser.close();
  allowedSite.close();
  otherSite.close();
  clearTimeout(deadline);
}
if (!failed) console.log("cors e2e: ok");
process.exit(failed ? 1 : 0);
