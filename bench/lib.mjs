// What the benchmarks share: the operations every target calls, the raw JSON-RPC target, and
// a published FlowCP Petstore server (bench/run.mjs, bench/size-matrix.mjs).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Client, ROOT } from "../tests/e2e/harness.mjs";
import { argsFor } from "./peers/start.mjs";

export const CORPUS = join(ROOT, "../shared/corpus/openapi");

// The three operations every target calls, round robin: path, query and body parameters.
// Arguments are given as {params, body}; each peer gets them in its own shape (argsFor).
export const OPS = [
  { op: "getPetById", args: { params: { petId: 7 } }, direct: (u) => fetch(`${u}/v2/pet/7`) },
  { op: "findPetsByStatus", args: { params: { status: ["available"] } }, direct: (u) => fetch(`${u}/v2/pet/findByStatus?status=available`) },
  { op: "addPet", args: { body: { name: "rex", photoUrls: [] } }, direct: (u) => fetch(`${u}/v2/pet`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "rex", photoUrls: [] }) }) },
];

/**
 * The same calls as raw JSON-RPC over fetch, no SDK client: what the server costs, without the
 * client's own work (the SDK validates structured results against each tool's outputSchema).
 * FlowCP minus the forwarding floor here is FlowCP's own server-side cost.
 */
export function rawTarget(name, url, headers) {
  const post = async (body) => {
    const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers }, body: JSON.stringify(body) });
    const text = await r.text();
    if (!r.ok || text.includes('"isError":true')) throw new Error(`${r.status} ${text.slice(0, 200)}`);
    return text;
  };
  return {
    name,
    makeClient: async () => null,
    async call(_c, k) {
      const { op, args } = OPS[k % OPS.length];
      await post({ jsonrpc: "2.0", id: k, method: "tools/call", params: { name: op, arguments: argsFor("flowcp", args) } });
    },
    list: (_c, k = 0) => post({ jsonrpc: "2.0", id: k, method: "tools/list", params: {} }),
  };
}

export function petstoreFor(upstream) {
  const doc = JSON.parse(readFileSync(join(CORPUS, "examples/3.0/petstore.json"), "utf8"));
  doc.servers = [{ url: `${upstream}/v2` }];
  const path = "/tmp/flowcp-bench-petstore.json";
  writeFileSync(path, JSON.stringify(doc));
  return { doc, path };
}

export async function flowcpServer(w, upstream, docText, { name = "Petstore", discovery = false, contentType = "application/json" } = {}) {
  const c = new Client(w.url);
  await c.signup(`bench-${Math.random().toString(36).slice(2)}@example.com`);
  const ws = (await c.get("/api/v1/me")).body.workspaces[0].id;
  const P = (p) => `/api/v1/workspaces/${ws}${p}`;
  const app = (await c.post(P("/apps"), { name })).body;
  const t0 = performance.now();
  const imp = await c.call("POST", P(`/apps/${app.id}/imports`), { body: docText, contentType });
  const importMs = performance.now() - t0;
  if (imp.status !== 201) throw new Error(`import failed: ${imp.status} ${JSON.stringify(imp.body).slice(0, 300)}`);
  const srv = (await c.post(P("/servers"), { app_id: app.id, name })).body;
  await c.patch(P(`/servers/${srv.id}`), { discovery_mode: discovery, probe_tool: name === "Petstore" ? "getInventory" : null, base_url: `${upstream}/${name === "Petstore" ? "v2" : "any"}` });
  const v = await c.post(P(`/servers/${srv.id}/verify`));
  if (v.body.state !== "verified") throw new Error(`verify: ${JSON.stringify(v.body)}`);
  const key = (await c.post(P(`/servers/${srv.id}/keys`), {})).body.key;
  return { c, P, srv, key, importMs, toolCount: imp.body.tool_count };
}

