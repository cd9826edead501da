// The local demo `make dev` seeds: the seeding script against a fresh Worker, then an MCP client
// calling the demo server with the printed access key. A second run must see it is seeded.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { Client as McpClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ROOT, startWorker } from "./harness.mjs";

let w;
before(async () => { w = await startWorker(); });
after(async () => { await w?.stop(); w?.cleanup(); });

function seed() {
  const r = spawnSync(process.execPath, [join(ROOT, "scripts/seed-demo.mjs"), w.url], { encoding: "utf8", timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test("the demo is seeded once and its published server answers MCP with the printed key", async () => {
  const first = seed();
  assert.equal(first.status, 0, first.out);
  const url = first.out.match(/MCP server\s+(\S+)/)?.[1];
  const key = first.out.match(/access key\s+(fcp_sk_\S+)/)?.[1];
  assert.ok(url && key, first.out);
  const client = new McpClient({ name: "demo-e2e", version: "1" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
  const tools = (await client.listTools()).tools.map((t) => t.name).sort();
  assert.deepEqual(tools, ["createBook", "getBook", "listBooks"]);
  const r = await client.callTool({ name: "listBooks", arguments: { q: "le guin", limit: 2 } });
  assert.equal(r.isError, undefined, JSON.stringify(r));
  assert.equal(r.structuredContent.items.length, 2);
  await client.close();
  const second = seed();
  assert.equal(second.status, 0);
  assert.match(second.out, /already seeded/);
});
