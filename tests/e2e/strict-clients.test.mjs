// Issue 12: tools published from real documents work in strict clients, whatever the API
// answers. The official TypeScript SDK client validates every result's structuredContent
// against the tool's outputSchema and throws when it does not conform; here a fake upstream
// answers each call with a deliberately non-conforming body ({}, missing fields, wrong types,
// an error envelope with 200, an array, text) and every call must still come back as a result
// the client accepts, with the right isError and text. Browser clients: CORS preflight and a
// cross-origin call with a key work, and the Host allow-list still refuses other hosts.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { createServer, request } from "node:http";
import { resolve } from "node:path";
import { Client as McpClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Client, startWorker, testSecrets, ROOT } from "./harness.mjs";

const CORPUS = resolve(ROOT, "../shared/corpus/openapi/real");

// What the upstream answers to the next call (one body per call, chosen by the test).
const ODD_BODIES = [
  { name: "empty object", body: "{}" },
  { name: "wrong types", body: JSON.stringify({ id: 12345, object: 7, created: "yesterday", livemode: "no", data: "not a list" }) },
  { name: "error envelope with 200", body: JSON.stringify({ error: { message: "No such invoice", type: "invalid_request_error" } }) },
  { name: "nulls everywhere", body: JSON.stringify({ id: null, object: null, metadata: null, data: null }) },
  { name: "an array", body: "[1,2,3]" },
  { name: "text", body: "OK", type: "text/plain" },
];

function startOddUpstream() {
  const state = { next: ODD_BODIES[0], received: 0 };
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      state.received++;
      res.writeHead(200, { "content-type": state.next.type ?? "application/json" });
      res.end(state.next.body);
    });
  });
  return new Promise((r) => server.listen(0, "127.0.0.1", () => r({
    state, url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((c) => server.close(c)),
  })));
}

// Arguments that satisfy an input schema's required parts (so calls reach the upstream).
function sample(s, depth = 0) {
  if (!s || typeof s !== "object" || depth > 8) return "x";
  const alts = s.anyOf ?? s.oneOf;
  if (alts?.length) return sample(alts.find((a) => a.type !== "null") ?? alts[0], depth + 1);
  if (Array.isArray(s.enum) && s.enum.length) return s.enum[0];
  if ("const" in s) return s.const;
  if (s.default !== undefined) return s.default;
  if (Array.isArray(s.examples) && s.examples.length) return s.examples[0];
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== "null") : s.type;
  switch (type ?? (s.properties ? "object" : "string")) {
    case "object": {
      const o = {};
      for (const k of s.required ?? []) o[k] = sample(s.properties?.[k] ?? {}, depth + 1);
      return o;
    }
    case "array": return s.minItems ? Array.from({ length: s.minItems }, () => sample(s.items ?? {}, depth + 1)) : [];
    case "integer": return Math.max(1, Math.ceil(s.minimum ?? 1));
    case "number": return Math.max(1, s.minimum ?? 1);
    case "boolean": return true;
    default: {
      const byFormat = { "date-time": "2026-01-01T00:00:00Z", date: "2026-01-01", email: "a@example.com", uri: "https://example.com/x", uuid: "123e4567-e89b-12d3-a456-426614174000" };
      if (byFormat[s.format]) return byFormat[s.format];
      return "x".repeat(Math.max(1, s.minLength ?? 1));
    }
  }
}

let w, up, owner, ws;
const P = (p) => `/api/v1/workspaces/${ws}${p}`;

async function publishDocument(name, text) {
  const app = (await owner.post(P("/apps"), { name })).body;
  const imp = await owner.post(P(`/apps/${app.id}/imports`), undefined, { body: text, contentType: name.endsWith("json") ? "application/json" : "application/yaml" });
  assert.equal(imp.status, 201, JSON.stringify(imp.body).slice(0, 500));
  const srv = (await owner.post(P("/servers"), { app_id: app.id, name })).body;
  let r = await owner.patch(P(`/servers/${srv.id}`), { base_url: up.url });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  up.state.next = ODD_BODIES[0];
  r = await owner.post(P(`/servers/${srv.id}/verify`));
  assert.equal(r.body.state, "verified", JSON.stringify(r.body).slice(0, 800));
  r = await owner.post(P(`/servers/${srv.id}/publish`));
  assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 500));
  const key = (await owner.post(P(`/servers/${srv.id}/keys`), {})).body.key;
  return { id: srv.id, url: srv.mcp_url, key };
}

async function connect(server) {
  const transport = new StreamableHTTPClientTransport(new URL(server.url), { requestInit: { headers: { Authorization: `Bearer ${server.key}` } } });
  const client = new McpClient({ name: "strict-e2e", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

async function allTools(client) {
  const tools = [];
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor);
  return tools;
}

before(async () => {
  up = await startOddUpstream();
  // Every tool of two large APIs is called in a few seconds: the per-server rate limit is off.
  w = await startWorker({ vars: { ...testSecrets(), FLOWCP_RATE_LIMITS: "off" } });
  owner = new Client(w.url);
  ws = (await owner.signup("strict-owner@example.com")).workspace.id;
});
after(async () => { await w?.stop(); w?.cleanup(); await up?.close(); });

for (const [file, minTools] of [["stripe.yaml.gz", 500], ["github-api.json.gz", 1000]]) {
  test(`${file}: every tool called through the official SDK client gets a result it accepts, whatever the upstream answers`, async () => {
    const raw = readFileSync(resolve(CORPUS, file));
    const text = (file.endsWith(".gz") ? gunzipSync(raw) : raw).toString("utf8");
    const server = await publishDocument(file.replace(/\.gz$/, ""), text);
    const client = await connect(server);
    try {
      const tools = await allTools(client);
      assert.ok(tools.length >= minTools, `${tools.length} tools`);
      const withOutput = tools.filter((t) => t.outputSchema);
      assert.ok(withOutput.length > 0, "the document declares response schemas");
      const tally = { calls: 0, reached: 0, structured: 0, fallback: 0, invalid: 0 };
      let i = 0;
      for (const tool of tools) {
        const odd = ODD_BODIES[i++ % ODD_BODIES.length];
        up.state.next = odd;
        const before = up.state.received;
        let result;
        try {
          result = await client.callTool({ name: tool.name, arguments: sample(tool.inputSchema) });
        } catch (e) {
          assert.fail(`${tool.name} (${odd.name}): the SDK client threw: ${e.message}`);
        }
        tally.calls++;
        const reached = up.state.received > before;
        if (reached) tally.reached++;
        const textOut = result.content?.[0]?.text ?? "";
        assert.ok(textOut.length > 0, `${tool.name}: a result always has text`);
        if (!reached) {
          tally.invalid++;
          assert.equal(result.isError, true, `${tool.name}: a call refused before the upstream is an error`);
          continue;
        }
        if (result.structuredContent) {
          tally.structured++;
          assert.ok(!result.isError, `${tool.name}: structured content is never an error`);
        } else if (tool.outputSchema) {
          tally.fallback++;
          assert.equal(result.isError, true, `${tool.name} (${odd.name}): ${textOut.slice(0, 200)}`);
          assert.match(textOut, /^The API answered HTTP 200, so the call may have taken effect, but /, tool.name);
          assert.ok(textOut.includes(odd.body.slice(0, 40)), `${tool.name}: the body is shown: ${textOut.slice(0, 300)}`);
        } else {
          assert.ok(!result.isError, `${tool.name}: a 2xx without an output schema is a plain result`);
        }
        if (tool.outputSchema && odd.name === "empty object") {
          assert.ok(result.structuredContent && !result.isError, `${tool.name}: {} conforms to every output schema`);
        }
      }
      console.log(`${file}: ${tools.length} tools, ${withOutput.length} with an output schema:`, JSON.stringify(tally));
      assert.ok(tally.reached >= tools.length * 0.9, `most calls reach the upstream: ${JSON.stringify(tally)}`);
      assert.ok(tally.structured > 0 && (tally.fallback > 0 || withOutput.length < 10), JSON.stringify(tally));
    } finally {
      await client.close();
    }
  });
}

test("browser clients: a CORS preflight from a foreign origin passes, the call works with its key, and a Host off the allow-list is still refused", async () => {
  const spec = readFileSync(resolve(CORPUS, "petstore-3.1.yaml"), "utf8");
  const server = await publishDocument("cors petstore.yaml", spec);
  const origin = "https://inspector.example";
  const pre = await fetch(server.url, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type, mcp-protocol-version" },
  });
  assert.equal(pre.status, 204, await pre.text());
  assert.equal(pre.headers.get("access-control-allow-origin"), origin);
  assert.match(pre.headers.get("access-control-allow-headers"), /Authorization/i);
  assert.match(pre.headers.get("access-control-allow-methods"), /POST/);
  const call = (headers) => fetch(server.url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", origin, ...headers },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} }),
  });
  let r = await call({ authorization: `Bearer ${server.key}` });
  const listed = await r.text();
  assert.equal(r.status, 200, listed);
  assert.equal(r.headers.get("access-control-allow-origin"), origin);
  assert.match(r.headers.get("access-control-expose-headers"), /WWW-Authenticate/);
  assert.ok(JSON.parse(listed).result.tools.length > 0);
  r = await call({});
  assert.equal(r.status, 401);
  assert.equal(r.headers.get("access-control-allow-origin"), origin, "the challenge is readable cross-origin");

  // The owner restricts origins: the next publish refuses the others.
  let u = await owner.patch(P(`/servers/${server.id}`), { allowed_origins: ["https://app.example"] });
  assert.equal(u.status, 200, JSON.stringify(u.body));
  assert.equal((await owner.post(P(`/servers/${server.id}/verify`))).body.state, "verified");
  assert.equal((await owner.post(P(`/servers/${server.id}/publish`))).status, 200);
  let refused;
  for (let i = 0; i < 20; i++) {
    refused = await call({ authorization: `Bearer ${server.key}` });
    if (refused.status === 403) break;
    await new Promise((s) => setTimeout(s, 250)); // the isolate's short manifest cache
  }
  assert.equal(refused.status, 403);
  assert.equal(refused.headers.get("access-control-allow-origin"), null);
  r = await call({ authorization: `Bearer ${server.key}`, origin: "https://app.example" });
  assert.equal(r.status, 200);

  // DNS rebinding: a Host this deployment does not serve is refused before anything else.
  const port = Number(new URL(w.url).port);
  const status = await new Promise((res, rej) => {
    const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" });
    const req = request({
      host: "127.0.0.1", port, path: `/mcp/${server.id}`, method: "POST",
      headers: { Host: "rebound.example", origin: "https://app.example", authorization: `Bearer ${server.key}`, "content-type": "application/json", accept: "application/json", "content-length": Buffer.byteLength(body) },
    }, (resp) => { resp.resume(); resp.on("end", () => res(resp.statusCode)); });
    req.on("error", rej);
    req.end(body);
  });
  assert.equal(status, 403);
});
