// Import memory (security review F3) inside the Worker under wrangler dev: documents that
// amplify on import end in a clear 422 naming what was too large; the largest real documents
// import; the Worker's wasm memory stays under the platform's 128 MB and it keeps serving.
// The documents mirror `flowcp_engine::tools::hostile_documents` (the Rust tests use those).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { gunzipSync } from "node:zlib";
import { Client as McpClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startWorker, testSecrets, Client, ROOT } from "./harness.mjs";
import { startEchoUpstream } from "./echo-upstream.mjs";

const secrets = testSecrets();
let w, c, P;
before(async () => {
  w = await startWorker({ vars: secrets });
  c = new Client(w.url);
  const ws = (await c.signup("importer@example.com")).workspace.id;
  P = (p) => `/api/v1/workspaces/${ws}${p}`;
});
after(async () => { await w?.stop(); w?.cleanup(); });

const words = (n) => Array.from({ length: n }, (_, i) => `w${String(i).padStart(8, "0")}`);
const doc = (paths, components) => ({ openapi: "3.0.3", info: { title: "hostile", version: "1" }, paths, components });
const bodyOf = (properties) => ({
  operationId: "x", responses: { 200: { description: "ok" } },
  requestBody: { content: { "application/json": { schema: { type: "object", properties } } } },
});
const props = (n, schema) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`p${i}`, schema]));
const enumFanout = (size, uses) =>
  doc({ "/x": { post: bodyOf(props(uses, { $ref: "#/components/schemas/E" })) } },
    { schemas: { E: { type: "string", enum: words(size) } } });
const manyPaths = (n, prefix, item) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`/${prefix}${i}`, item]));

const HOSTILE = {
  "enum-fanout": enumFanout(40_000, 2_500),
  "sibling-fanout": doc({ "/x": { post: bodyOf(props(2_500, { $ref: "#/components/schemas/E", description: "d" })) } },
    { schemas: { E: { type: "string", enum: words(40_000) } } }),
  "default-chain": doc({ "/x": { post: bodyOf(props(1_000, { $ref: "#/components/schemas/A" })) } },
    { schemas: { A: { $ref: "#/components/schemas/B" }, B: { type: "array", default: words(80_000) } } }),
  "shared-parameter": doc(manyPaths(5_000, "p", { get: { parameters: [{ $ref: "#/components/parameters/P" }], responses: {} } }),
    { parameters: { P: { name: "p", in: "query", schema: { type: "string", enum: words(80_000) } } } }),
  "swagger2-shared-body": {
    swagger: "2.0", info: { title: "hostile", version: "1" },
    paths: manyPaths(5_000, "s", { post: { parameters: [{ $ref: "#/parameters/B" }], responses: {} } }),
    parameters: { B: { name: "b", in: "body", schema: { type: "string", enum: words(80_000) } } },
  },
};

async function wasmBytes() {
  const r = await fetch(`${w.url}/healthz`, { headers: { authorization: `Bearer ${secrets.FLOWCP_OPERATOR_TOKEN}` } });
  assert.equal(r.status, 200);
  return (await r.json()).memory.wasm_bytes;
}

async function upload(name, body, contentType = "application/json") {
  const app = (await c.post(P("/apps"), { name })).body;
  return c.post(P(`/apps/${app.id}/imports`), undefined, { body, contentType });
}

const MB = 1024 * 1024;
const LIMIT = 128 * MB;
const figures = [];

test("amplifying documents answer 422 naming the operation that took the most", async () => {
  for (const [name, d] of Object.entries(HOSTILE)) {
    const body = JSON.stringify(d);
    const r = await upload(name, body);
    assert.equal(r.status, 422, `${name}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    assert.equal(r.body.error.code, "document_too_large", name);
    assert.match(r.body.error.message, /would exceed 72 MB; the largest parts: `\/paths\/~1/, name);
    const mem = await wasmBytes();
    figures.push(`${name} (${(body.length / 1024).toFixed(0)} KB): wasm memory ${(mem / MB).toFixed(1)} MB`);
    assert.ok(mem < LIMIT, `${name}: wasm memory ${mem} bytes`);
  }
});

test("the largest real documents and one just under the budget import, within the memory limit", async () => {
  const real = [
    ["github", gunzipSync(readFileSync(`${ROOT}/../shared/corpus/openapi/real/github-api.json.gz`)), "application/json"],
    ["stripe", gunzipSync(readFileSync(`${ROOT}/../shared/corpus/openapi/real/stripe.yaml.gz`)), "application/yaml"],
    ["fits-enum-fanout", Buffer.from(JSON.stringify(enumFanout(40_000, 12))), "application/json"],
  ];
  for (const [name, body, type] of real) {
    const r = await upload(name, body, type);
    assert.equal(r.status, 201, `${name}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    const mem = await wasmBytes();
    figures.push(`${name} (${(body.length / 1024).toFixed(0)} KB): wasm memory ${(mem / MB).toFixed(1)} MB`);
    assert.ok(mem < LIMIT, `${name}: wasm memory ${mem} bytes`);
  }
  // Still serving, and nothing stored was lost.
  assert.equal((await c.get(P("/apps"))).status, 200);
  console.log(`# import memory under wrangler dev:\n# ${figures.join("\n# ")}`);
});

// Issue 18: a 20 MB document of 10,000 operations (`flowcp large-doc`), in an isolate of its
// own so the wasm high-water mark is this import's: it imports (in batches) within the
// platform's 128 MB; a server of every tool verifies and publishes (a sharded manifest, written
// a shard at a time), and the official SDK client pages through every tool and calls one,
// still within the limit.
test("a 20 MB document of 10,000 operations imports, publishes and serves within the memory limit", async () => {
  const file = `${ROOT}/.wrangler/large-10000.json`;
  const made = spawnSync("cargo", ["run", "-q", "--bin", "flowcp", "--", "large-doc", "10000", file], { cwd: ROOT, encoding: "utf8" });
  assert.equal(made.status, 0, made.stderr);
  const up = await startEchoUpstream();
  const own = await startWorker({ vars: secrets });
  try {
    const oc = new Client(own.url);
    const memory = async () => (await (await fetch(`${own.url}/healthz`, { headers: { authorization: `Bearer ${secrets.FLOWCP_OPERATOR_TOKEN}` } })).json()).memory.wasm_bytes;
    const ws = (await oc.signup("large@example.com")).workspace.id;
    const OP = (p) => `/api/v1/workspaces/${ws}${p}`;
    const app = (await oc.post(OP("/apps"), { name: "Large" })).body;
    const body = readFileSync(file);
    let t0 = performance.now();
    const r = await oc.post(OP(`/apps/${app.id}/imports`), undefined, { body, contentType: "application/json" });
    const ms = Math.round(performance.now() - t0);
    assert.equal(r.status, 201, `${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    assert.equal(r.body.tool_count, 10_000);
    let mem = await memory();
    console.log(`# large-10000 (${(body.length / MB).toFixed(1)} MB): import ${ms} ms, wasm high-water ${(mem / MB).toFixed(1)} MB`);
    assert.ok(mem < LIMIT, `wasm memory ${mem} bytes`);
    // Every tool is stored and listed, a page at a time.
    const page = await oc.get(OP(`/apps/${app.id}/tools?limit=5`));
    assert.equal(page.status, 200);
    assert.equal(page.body.items.length, 5);
    // A server of every tool, against a fake upstream: verified and published.
    const srv = (await oc.post(OP("/servers"), { app_id: app.id })).body;
    const patched = await oc.patch(OP(`/servers/${srv.id}`), { auth_mode: "none", base_url: up.url });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const v = await oc.post(OP(`/servers/${srv.id}/verify`));
    assert.equal(v.body.state, "verified", JSON.stringify(v.body).slice(0, 600));
    // With every tool listed, verification recommends discovery mode (it is not required).
    assert.match(v.body.findings.find((f) => f.check === "tools_enabled").message, /10000 enabled tools; .*turn on discovery mode/);
    t0 = performance.now();
    const pub = await oc.post(OP(`/servers/${srv.id}/publish`));
    const publishMs = Math.round(performance.now() - t0);
    assert.equal(pub.status, 200, JSON.stringify(pub.body).slice(0, 600));
    assert.equal(pub.body.manifest.tools, 10_000);
    const key = (await oc.post(OP(`/servers/${srv.id}/keys`), {})).body.key;
    const transport = new StreamableHTTPClientTransport(new URL(srv.mcp_url), { requestInit: { headers: { Authorization: `Bearer ${key}` } } });
    const agent = new McpClient({ name: "flowcp-e2e-large", version: "1.0.0" });
    await agent.connect(transport);
    t0 = performance.now();
    const tools = [];
    let cursor;
    do {
      const listed = await agent.listTools(cursor ? { cursor } : {});
      tools.push(...listed.tools);
      cursor = listed.nextCursor;
    } while (cursor);
    const names = tools.map((t) => t.name);
    const listMs = Math.round(performance.now() - t0);
    assert.equal(names.length, 10_000);
    assert.equal(new Set(names).size, 10_000);
    assert.deepEqual(names, [...names].sort(), "in name order");
    // A read of one resource, far into the name order (its shard loaded alone).
    const reads = tools.filter((t) => JSON.stringify(t.inputSchema.required) === '["id"]' && t.annotations?.readOnlyHint);
    const target = reads[Math.floor(reads.length * 0.8)];
    assert.ok(target, "a read of one resource is listed");
    const id = "0b6e5f4e-9a51-4c43-9a53-2f8e7e0c7777";
    const called = await agent.callTool({ name: target.name, arguments: { id } });
    assert.ok(Array.isArray(called.content), JSON.stringify(called).slice(0, 400));
    assert.ok(up.received.some((q) => q.method === "GET" && q.url.endsWith(`/${id}`)), `the call reached the upstream: ${JSON.stringify(called).slice(0, 300)}`);
    await agent.close();
    mem = await memory();
    console.log(`# large-10000 server: publish ${publishMs} ms, tools/list of 100 pages ${listMs} ms (client side), wasm high-water ${(mem / MB).toFixed(1)} MB`);
    assert.ok(mem < LIMIT, `wasm memory ${mem} bytes`);
  } finally {
    await own.stop();
    own.cleanup();
    await up.close();
  }
});
