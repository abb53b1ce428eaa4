// The dashboard in headless Chromium (Debian's chromium, driven by playwright-core):
// the page loads, a call that needs approval shows up, a click on Approve releases it and the
// agent receives the tool's result. Run by tests/integration/dashboard_test.cc against a live
// `sluice serve --admin`:  node dashboard_e2e.mjs ADMIN_PORT MCP_PORT TOKEN
import { launch } from "./chromium.mjs";

const [adminPort, mcpPort, token] = process.argv.slice(2);
const deadline = setTimeout(() => {
  console.error("dashboard e2e: over 50 s");
  process.exit(1);
}, 50_000);

const browser = await launch();
let failed = false;
try {
  const page = browser.page;
  await page.goto(`http://127.0.0.1:${adminPort}/dashboard#token=${encodeURIComponent(token)}`);
  // Loaded and authorized: the status line names the policy version.
  await page.locator("#status", { hasText: "policy v1" }).waitFor();
  await page.locator("#chart").waitFor();

  // The agent's call waits for a human.
  const agent = fetch(`http://127.0.0.1:${mcpPort}/mcp`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream" },
    body: JSON.stringify({
      jsonrpc: "2.0", id: 42, method: "tools/call",
      params: { name: "run_query", arguments: { sql: "select 42" } },
    }),
  }).then(async (r) => ({ status: r.status, body: await r.text() }));

  const row = page.locator("tr.approval", { hasText: "run_query" });
  await row.waitFor();
  const text = await row.innerText();
  if (!text.includes('"sql":"select 42"')) throw new Error(`row lacks the arguments: ${text}`);
  await row.locator("button.approve").click();

  const answer = await agent;
  if (answer.status !== 200 || !answer.body.includes("ran run_query with")) {
    throw new Error(`agent got ${answer.status}: ${answer.body}`);
  }
  await row.waitFor({ state: "detached" });
  // The refusal list and top tools render from the same stats.
  await page.locator("#tools tbody tr", { hasText: "run_query" }).waitFor();
  // The upstream section: the approved call went upstream, nothing failed, its connection is
  // back in the pool (idle · busy · stream).
  const upstream = page.locator("#upstream tbody tr");
  await upstream.locator("td:nth-child(3)", { hasText: "none" }).waitFor();
  await upstream.locator("td:nth-child(4)", { hasText: /^[1-9]\d* · 0 · 0$/ }).waitFor();
  // Answers by class: the agent's calls were answered, none with a 5xx.
  await upstream.locator("td:nth-child(7)", { hasText: /^\d+ · 0$/ }).waitFor();
  if (process.env.SLUICE_DASHBOARD_SCREENSHOT) {
    await page.screenshot({ path: process.env.SLUICE_DASHBOARD_SCREENSHOT, fullPage: true });
  }
  console.log("dashboard e2e: ok");
} catch (e) {
  failed = true;
  console.error(`dashboard e2e: ${e.stack ?? e}`);
} finally {
  await browser.close();
  clearTimeout(deadline);
}
process.exit(failed ? 1 : 0);
