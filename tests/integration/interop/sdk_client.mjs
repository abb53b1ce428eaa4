#!/usr/bin/env node
// Interop: the official TypeScript SDK client (@modelcontextprotocol/sdk, Streamable HTTP)
// talks to @modelcontextprotocol/server-everything through `sluice serve`, with the policy
// tests/integration/policies/interop.json. Nobody on this team wrote either end.
//
//   node sdk_client.mjs http://127.0.0.1:PORT/mcp [scenario ...]
//
// Prints one line per check, "ok - NAME" or "not ok - NAME: why", then "scenario S: passed"
// (or FAILED) after each scenario, and exits non-zero when a check failed. Scenarios (default: all): basics, progress, sampling, elicitation, roots,
// isolation, terminate, revisions. Only when named: streams (needs SLUICE_ADMIN_URL and
// SLUICE_ADMIN_TOKEN, the gateway's admin endpoint, to see its upstream streams).
import {AsyncLocalStorage} from 'node:async_hooks';
import {Client} from '@modelcontextprotocol/sdk/client/index.js';
import {StreamableHTTPClientTransport} from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';

const url = new URL(process.argv[2]);
const wanted = process.argv.slice(3);
let failures = 0;

// Scenarios run concurrently (each on its own sessions); a failed check is counted against the
// scenario it ran in.
const current = new AsyncLocalStorage();
const failed = new Map();
function check(name, cond, why) {
  if (cond) {
    console.log(`ok - ${name}`);
  } else {
    failures++;
    const scenario = current.getStore();
    failed.set(scenario, (failed.get(scenario) ?? 0) + 1);
    console.log(`not ok - ${name}: ${why}`);
  }
}
const text = (result) => (result?.content ?? []).map((c) => c.text ?? '').join('\n');

// A client announcing sampling, elicitation and roots; answers each with recognisable data.
async function connect(tag = 'a', onRoots = () => {}) {
  const client = new Client(
      {name: 'sluice-interop', version: '1.0.0'},
      {capabilities: {sampling: {}, elicitation: {form: {}}, roots: {listChanged: true}}});
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => ({
    model: `interop-model-${tag}`,
    role: 'assistant',
    content: {type: 'text', text: `sampled-${tag}: ${req.params.messages[0].content.text}`},
  }));
  client.setRequestHandler(ElicitRequestSchema, async () => ({
    action: 'accept',
    content: {name: `Ada-${tag}`, check: true},
  }));
  client.setRequestHandler(ListRootsRequestSchema, async () => {
    onRoots();
    return {roots: [{uri: `file:///interop/root-${tag}`, name: `root-${tag}`}]};
  });
  const transport = new StreamableHTTPClientTransport(url);
  await client.connect(transport);
  return {client, transport};
}

async function basics() {
  const {client, transport} = await connect();
  check('connect: server info relayed', client.getServerVersion()?.name !== undefined,
        JSON.stringify(client.getServerVersion()));
  check('connect: session id issued', typeof transport.sessionId === 'string' &&
        transport.sessionId.length > 0, `session ${transport.sessionId}`);

  const {tools} = await client.listTools();
  const names = tools.map((t) => t.name);
  check('tools/list: allowed tools present', names.includes('echo') && names.includes('get-sum'),
        names.join(','));
  check('tools/list: hidden tool absent', !names.includes('get-env'), names.join(','));
  check('tools/list: denied tool absent', !names.includes('gzip-file-as-resource'),
        names.join(','));

  const echo = await client.callTool({name: 'echo', arguments: {message: 'through sluice'}});
  check('tools/call: allowed tool answered', !echo.isError && text(echo).includes('through sluice'),
        JSON.stringify(echo));

  const denied = await client.callTool(
      {name: 'gzip-file-as-resource', arguments: {name: 'x.gz', data: 'https://example.com/'}});
  check('tools/call: denied tool is an isError result with the reason',
        denied.isError === true &&
            text(denied).startsWith('[POLICY DENIED] ') &&
            text(denied).includes('no fetching from agents'),
        JSON.stringify(denied));

  const hidden = await client.callTool({name: 'get-env', arguments: {}});
  check('tools/call: hidden tool is refused', hidden.isError === true &&
        text(hidden).startsWith('[POLICY DENIED] '), JSON.stringify(hidden));

  const sums = [];
  for (let i = 0; i < 3; i++) sums.push(await client.callTool({name: 'get-sum', arguments: {a: i, b: 1}}));
  check('tools/call: calls within the limit answered',
        !sums[0].isError && !sums[1].isError && text(sums[1]).includes('2'),
        JSON.stringify(sums.slice(0, 2)));
  check('tools/call: call over the limit is rate-limited with a retry hint',
        sums[2].isError === true && text(sums[2]).startsWith('[POLICY DENIED] rate limit') &&
            typeof sums[2]._meta?.['sluice/retry_after'] === 'number',
        JSON.stringify(sums[2]));

  const prompts = await client.listPrompts();
  check('prompts/list relayed', prompts.prompts.length > 0, JSON.stringify(prompts));
  const resources = await client.listResources();
  check('resources/list relayed', resources.resources.length > 0, 'no resources');
  await client.ping();
  check('ping answered', true, '');
  await client.close();
}

async function progress() {
  const {client} = await connect();
  const seen = [];
  const result = await client.callTool(
      {name: 'trigger-long-running-operation', arguments: {duration: 0.3, steps: 3}}, undefined,
      {onprogress: (p) => seen.push(p), resetTimeoutOnProgress: true});
  check('progress: long-running tool completed', text(result).includes('completed'),
        JSON.stringify(result));
  check('progress: every progress notification relayed in order',
        seen.length === 3 && seen.map((p) => p.progress).join(',') === '1,2,3' &&
            seen.every((p) => p.total === 3),
        JSON.stringify(seen));
  await client.close();
}

async function sampling() {
  const {client} = await connect();
  const r = await client.callTool(
      {name: 'trigger-sampling-request', arguments: {prompt: 'hello', maxTokens: 10}});
  check('sampling: server request reached the client and its answer the server',
        !r.isError && text(r).includes('sampled-a:') && text(r).includes('interop-model-a'),
        JSON.stringify(r));
  await client.close();
}

async function elicitation() {
  const {client} = await connect();
  const r = await client.callTool({name: 'trigger-elicitation-request', arguments: {}});
  check('elicitation: the answer was relayed to the server',
        !r.isError && text(r).includes('Ada-a'), JSON.stringify(r));
  await client.close();
}

async function roots() {
  // server-everything asks for the roots 350 ms after `initialized`, on the session's GET
  // stream, which the SDK client opens without waiting. Its server SDK drops a request sent
  // before that stream exists, and get-roots-list then waits on the dropped request forever
  // (a race in the server, seen directly too; through a gateway the GET and the next POST ride
  // different connections and may reach the server in either order). So wait for that first
  // roots/list to arrive (the GET stream is then open) before calling the tool; if it never
  // comes (it was dropped), the tool asks again, now over the open stream.
  let asked;
  const firstAsk = new Promise((resolve) => { asked = resolve; });
  const {client} = await connect('a', () => asked());
  let timer;
  await Promise.race([firstAsk, new Promise((resolve) => { timer = setTimeout(resolve, 10000); })]);
  clearTimeout(timer);
  const r = await client.callTool({name: 'get-roots-list', arguments: {}});
  check('roots: roots/list answered through the gateway',
        !r.isError && text(r).includes('file:///interop/root-a'), JSON.stringify(r));
  await client.close();
}

// Two sessions at once, each with a long-running call and a sampling round trip: every
// message each client sees is its own.
async function isolation() {
  const a = await connect('a');
  const b = await connect('b');
  check('isolation: distinct sessions', a.transport.sessionId !== b.transport.sessionId,
        `${a.transport.sessionId} ${b.transport.sessionId}`);
  const seenA = [];
  const seenB = [];
  const [pa, pb, sa, sb] = await Promise.all([
    a.client.callTool({name: 'trigger-long-running-operation', arguments: {duration: 0.4, steps: 4}},
                      undefined, {onprogress: (p) => seenA.push(p)}),
    b.client.callTool({name: 'trigger-long-running-operation', arguments: {duration: 0.2, steps: 2}},
                      undefined, {onprogress: (p) => seenB.push(p)}),
    a.client.callTool({name: 'trigger-sampling-request', arguments: {prompt: 'from-a'}}),
    b.client.callTool({name: 'trigger-sampling-request', arguments: {prompt: 'from-b'}}),
  ]);
  check('isolation: each session got only its own progress',
        seenA.map((p) => `${p.progress}/${p.total}`).join(',') === '1/4,2/4,3/4,4/4' &&
            seenB.map((p) => `${p.progress}/${p.total}`).join(',') === '1/2,2/2',
        `${JSON.stringify(seenA)} ${JSON.stringify(seenB)}`);
  check('isolation: each long-running call got its own answer',
        text(pa).includes('Steps: 4') && text(pb).includes('Steps: 2'),
        `${text(pa)} | ${text(pb)}`);
  check('isolation: each sampling request went to its own client',
        text(sa).includes('sampled-a:') && text(sa).includes('from-a') && !text(sa).includes('-b') &&
            text(sb).includes('sampled-b:') && text(sb).includes('from-b'),
        `${text(sa)} | ${text(sb)}`);
  await a.client.close();
  await b.client.close();
}

async function terminate() {
  const {client, transport} = await connect();
  const sid = transport.sessionId;
  await transport.terminateSession();
  check('terminate: DELETE accepted, client forgot the session', transport.sessionId === undefined,
        `session ${transport.sessionId}`);
  // The old session is gone upstream: a request that still names it is refused.
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'accept': 'application/json, text/event-stream',
      'mcp-session-id': sid,
      'mcp-protocol-version': '2025-06-18',
    },
    body: JSON.stringify({jsonrpc: '2.0', id: 9, method: 'tools/list'}),
  });
  await res.text();
  check('terminate: the ended session is refused afterwards', res.status === 404 || res.status === 400,
        `status ${res.status}`);
  await client.close();
}

// Protocol revisions by hand (fetch): each version is negotiated through the gateway; a
// 2025-03-26 batch is decided element by element and answered; the 2026-07-28 Mcp-Method /
// Mcp-Name headers must match the body (else 400, -32020) and are forwarded when they do.
async function post(body, headers = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {'content-type': 'application/json', 'accept': 'application/json, text/event-stream',
      ...headers},
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const raw = await res.text();
  let messages = [];
  if ((res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    for (const line of raw.split('\n')) {
      if (line.startsWith('data:') && line.slice(5).trim()) messages.push(JSON.parse(line.slice(5)));
    }
  } else if (raw) {
    const v = JSON.parse(raw);
    messages = Array.isArray(v) ? v : [v];
  }
  return {status: res.status, session: res.headers.get('mcp-session-id'), messages};
}
const answers = (r) => r.messages.filter((m) => m.id !== undefined && m.method === undefined);

async function revisions() {
  for (const version of ['2025-03-26', '2025-06-18', '2025-11-25']) {
    const init = await post({jsonrpc: '2.0', id: 1, method: 'initialize', params: {
      protocolVersion: version, capabilities: {}, clientInfo: {name: 'rev', version: '1'}}});
    const agreed = answers(init)[0]?.result?.protocolVersion;
    check(`revision ${version}: negotiated through the gateway`, init.status === 200 && agreed === version,
          `${init.status} ${JSON.stringify(init.messages)}`);
    const h = {'mcp-session-id': init.session, 'mcp-protocol-version': version};
    const note = await post({jsonrpc: '2.0', method: 'notifications/initialized'}, h);
    const call = await post({jsonrpc: '2.0', id: 2, method: 'tools/call',
      params: {name: 'echo', arguments: {message: `v${version}`}}}, h);
    check(`revision ${version}: a call is answered`, note.status === 202 &&
          JSON.stringify(answers(call)[0]?.result ?? {}).includes(`v${version}`),
          `${note.status} ${JSON.stringify(call.messages)}`);
    if (version === '2025-03-26') {
      const batch = await post([
        {jsonrpc: '2.0', id: 10, method: 'tools/call', params: {name: 'echo', arguments: {message: 'b1'}}},
        {jsonrpc: '2.0', id: 11, method: 'tools/call', params: {name: 'get-sum', arguments: {a: 20, b: 22}}},
        {jsonrpc: '2.0', method: 'notifications/progress', params: {progressToken: 'none', progress: 1}},
      ], h);
      const got = answers(batch);
      const byId = Object.fromEntries(got.map((m) => [m.id, JSON.stringify(m.result ?? m.error)]));
      check('revision 2025-03-26: an allowed batch is forwarded and every request answered',
            batch.status === 200 && got.length === 2 && byId[10]?.includes('b1') && byId[11]?.includes('42'),
            `${batch.status} ${JSON.stringify(batch.messages)}`);
      const refused = await post([
        {jsonrpc: '2.0', id: 12, method: 'tools/call', params: {name: 'echo', arguments: {message: 'b2'}}},
        {jsonrpc: '2.0', id: 13, method: 'tools/call', params: {name: 'gzip-file-as-resource', arguments: {}}},
      ], h);
      const r = Object.fromEntries(answers(refused).map((m) => [m.id, m]));
      check('revision 2025-03-26: a batch with a denied element is not forwarded, each request answered',
            refused.status === 200 && r[12]?.error?.code === -32010 &&
                r[13]?.result?.isError === true && !JSON.stringify(r[12]).includes('Echo'),
            `${refused.status} ${JSON.stringify(refused.messages)}`);
    }
    const echo = {jsonrpc: '2.0', id: 3, method: 'tools/call', params: {name: 'echo', arguments: {message: 'hdr'}}};
    const honest = await post(echo, {...h, 'mcp-method': 'tools/call', 'mcp-name': 'echo'});
    const lying = await post(echo, {...h, 'mcp-method': 'tools/call', 'mcp-name': 'get-sum'});
    check(`revision ${version}: Mcp-Method / Mcp-Name headers checked against the body`,
          honest.status === 200 && JSON.stringify(answers(honest)[0]?.result ?? {}).includes('hdr') &&
              lying.status === 400 && lying.messages[0]?.error?.code === -32020,
          `${honest.status} ${JSON.stringify(honest.messages)} ${lying.status} ${JSON.stringify(lying.messages)}`);
    await fetch(url, {method: 'DELETE', headers: h});
  }
}

// The SDK opens a GET stream for each session after notifications/initialized. Four sessions
// hold four streams at the gateway (waited for on its /metrics), and then each session's call
// is answered: run against a gateway with one upstream connection for calls.
async function streams() {
  const admin = process.env.SLUICE_ADMIN_URL;
  const token = process.env.SLUICE_ADMIN_TOKEN;
  check('streams: admin endpoint given', admin && token, 'SLUICE_ADMIN_URL or _TOKEN unset');
  if (!admin || !token) return;
  const sessions = [];
  for (let i = 0; i < 4; i++) sessions.push(await connect(`s${i}`));
  const streamsOpen = async () => {
    const r = await fetch(`${admin}/metrics`, {headers: {authorization: `Bearer ${token}`}});
    const line = (await r.text()).split('\n').find(
        (l) => l.startsWith('sluice_upstream_connections{state="stream"} '));
    return line ? Number(line.split(' ').pop()) : -1;
  };
  let open = -1;
  for (const deadline = Date.now() + 30000; Date.now() < deadline;) {
    open = await streamsOpen();
    if (open >= sessions.length) break;
    await new Promise((resolve) => setTimeout(resolve, 20));  // a poll with a deadline
  }
  check('streams: every session\'s GET stream is open at the gateway', open === sessions.length,
        `streams=${open}`);
  const results = await Promise.all(sessions.map(({client}, i) =>
    client.callTool({name: 'echo', arguments: {message: `call ${i}`}})));
  check('streams: every session\'s call answered while the streams stay open',
        results.every((r, i) => !r.isError && text(r).includes(`call ${i}`)),
        JSON.stringify(results));
  for (const {client} of sessions) await client.close();
}

const scenarios = {basics, progress, sampling, elicitation, roots, isolation, terminate, revisions};
const byName = {...scenarios, streams};
const chosen = wanted.length === 0 ? scenarios :
    Object.fromEntries(wanted.filter((n) => n in byName).map((n) => [n, byName[n]]));
await Promise.all(Object.entries(chosen).map(([name, fn]) =>
  current.run(name, async () => {
    try {
      await fn();
    } catch (e) {
      check(`${name}: threw`, false, e?.stack ?? e);
    }
    console.log(`scenario ${name}: ${failed.has(name) ? 'FAILED' : 'passed'}`);
  })));
console.log(failures === 0 ? 'interop: all checks passed' : `interop: ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
