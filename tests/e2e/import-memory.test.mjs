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
import { startWorker, testSecrets, Client, ROOT } from "./harness.mjs";

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
// platform's 128 MB, and a server of every tool is refused with a clear answer, not a crash.
test("a 20 MB document of 10,000 operations imports within the memory limit", async () => {
  const file = `${ROOT}/.wrangler/large-10000.json`;
  const made = spawnSync("cargo", ["run", "-q", "--bin", "flowcp", "--", "large-doc", "10000", file], { cwd: ROOT, encoding: "utf8" });
  assert.equal(made.status, 0, made.stderr);
  const own = await startWorker({ vars: secrets });
  try {
    const oc = new Client(own.url);
    const ws = (await oc.signup("large@example.com")).workspace.id;
    const OP = (p) => `/api/v1/workspaces/${ws}${p}`;
    const app = (await oc.post(OP("/apps"), { name: "Large" })).body;
    const body = readFileSync(file);
    const t0 = performance.now();
    const r = await oc.post(OP(`/apps/${app.id}/imports`), undefined, { body, contentType: "application/json" });
    const ms = Math.round(performance.now() - t0);
    assert.equal(r.status, 201, `${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    assert.equal(r.body.tool_count, 10_000);
    const mem = (await (await fetch(`${own.url}/healthz`, { headers: { authorization: `Bearer ${secrets.FLOWCP_OPERATOR_TOKEN}` } })).json()).memory.wasm_bytes;
    console.log(`# large-10000 (${(body.length / MB).toFixed(1)} MB): ${ms} ms, wasm high-water ${(mem / MB).toFixed(1)} MB`);
    assert.ok(mem < LIMIT, `wasm memory ${mem} bytes`);
    // Every tool is stored and listed, a page at a time.
    const page = await oc.get(OP(`/apps/${app.id}/tools?limit=5`));
    assert.equal(page.status, 200);
    assert.equal(page.body.items.length, 5);
    const srv = (await oc.post(OP("/servers"), { app_id: app.id })).body;
    const v = await oc.post(OP(`/servers/${srv.id}/verify`));
    assert.equal(v.status, 422, JSON.stringify(v.body));
    assert.equal(v.body.error.code, "manifest_too_large");
    assert.match(v.body.error.message, /10000 enabled tools/);
  } finally {
    await own.stop();
    own.cleanup();
  }
});
