// Smoke test of the benchmark peers against a fake Petstore upstream on 127.0.0.1, through the
// official MCP TypeScript SDK client (the repo's @modelcontextprotocol/sdk). Not part of CI.
//   sh bench/peers/setup.sh && node bench/peers/smoke.mjs [PEER...]
// For each document (the corpus's Petstore 3.0 and Petstore 3.1) and each peer: start the peer,
// list its tools, call list / get / create through the mapped tool names, run 8 concurrent calls
// on one session, and (openapi-mcp-generator) show the shared-session behaviour. Ends with
// "N passed, N failed".
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { PEERS, SESSION_POLICY, argsFor, callFailed, startPeer, toolNameFor } from "./start.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const CORPUS = [resolve(HERE, "../../../shared/corpus/openapi"), resolve(HERE, "../../shared/corpus/openapi")].find((d) => existsSync(d));

// The documents, the path prefix of their `servers` URL, and "the same operations" by operationId.
const DOCS = [
  {
    label: "petstore 3.0 (examples/3.0/petstore.json)",
    spec: join(CORPUS, "examples/3.0/petstore.json"), // servers: http://petstore.swagger.io/v2
    prefix: "/v2",
    list: { op: "findPetsByStatus", params: { status: ["available"] } },
    get: { op: "getPetById", params: { petId: 7 } },
    create: { op: "addPet", body: { name: "rex", photoUrls: ["p.png"] } },
    missing: {},
  },
  {
    label: "petstore 3.1 (real/petstore-3.1.yaml)",
    spec: join(CORPUS, "real/petstore-3.1.yaml"), // servers: http://petstore.swagger.io/v1
    prefix: "/v1",
    list: { op: "listPets", params: { limit: 2 } },
    get: { op: "showPetById", params: { petId: "7" } },
    create: { op: "createPets" },
    // fastmcp 4.1.2 skips path items that are a $ref (here to components/pathItems, OpenAPI 3.1).
    missing: { fastmcp: ["showPetById"] },
  },
];

const PETS = [
  { id: 1, name: "tom", tag: "cat", photoUrls: [], status: "available" },
  { id: 2, name: "rex", tag: "dog", photoUrls: [], status: "available" },
  { id: 7, name: "fido", tag: "dog", photoUrls: [], status: "available" },
];

/** Fake upstream: both Petstores' operations, each under its own servers path prefix. */
function startUpstream() {
  const received = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const url = new URL(req.url, "http://x");
      received.push(`${req.method} ${url.pathname}${url.search}${body ? " " + body : ""}`);
      const send = (status, value) => {
        res.writeHead(status, value === undefined ? {} : { "content-type": "application/json" });
        res.end(value === undefined ? "" : JSON.stringify(value));
      };
      const p = url.pathname;
      let m;
      // Petstore 3.0 (Swagger Petstore v2 paths)
      if (req.method === "GET" && p === "/v2/pet/findByStatus") {
        const want = (url.searchParams.getAll("status").join(",") || "available").split(",");
        return send(200, PETS.filter((x) => want.includes(x.status)));
      }
      if (req.method === "GET" && (m = p.match(/^\/v2\/pet\/(\d+)$/))) {
        const pet = PETS.find((x) => x.id === Number(m[1]));
        return pet ? send(200, pet) : send(404, { code: 404, message: "not found" });
      }
      if (req.method === "POST" && p === "/v2/pet") return send(200, { id: 99, ...JSON.parse(body || "{}") });
      // Petstore 3.1 (/v1/pets)
      if (req.method === "GET" && p === "/v1/pets") {
        const limit = Number(url.searchParams.get("limit") || PETS.length);
        return send(200, PETS.slice(0, limit).map(({ id, name, tag }) => ({ id, name, tag })));
      }
      if (req.method === "POST" && p === "/v1/pets") return send(201);
      if (req.method === "GET" && (m = p.match(/^\/v1\/pets\/([^/]+)$/))) {
        const pet = PETS.find((x) => String(x.id) === decodeURIComponent(m[1]));
        return pet ? send(200, [{ id: pet.id, name: pet.name, tag: pet.tag }]) : send(404, { code: 404, message: "not found" });
      }
      return send(404, { code: 404, message: `no route ${req.method} ${p}` });
    });
  });
  return new Promise((r) =>
    server.listen(0, "127.0.0.1", () =>
      r({ url: `http://127.0.0.1:${server.address().port}`, received, close: () => new Promise((c) => server.close(c)) }),
    ),
  );
}

async function connectClient(url, sessionId) {
  const client = new Client({ name: "flowcp-peer-smoke", version: "0.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url), sessionId ? { sessionId } : undefined);
  await client.connect(transport); // with a sessionId set, the SDK skips initialize (reuses the session)
  return { client, transport };
}

const text = (r) => (r.content || []).map((c) => (c.type === "text" ? c.text : `[${c.type}]`)).join(" ");
const short = (s, n = 300) => (s.length > n ? s.slice(0, n) + "…" : s);

let passed = 0;
let failed = 0;
let skipped = 0;
function check(ok, what, detail = "") {
  if (ok) passed++;
  else failed++;
  console.log(`  ${ok ? "ok  " : "FAIL"} ${what}${detail ? ` — ${detail}` : ""}`);
}

async function smokePeer(name, doc, upstream, port) {
  console.log(`\n== ${name} on ${doc.label}`);
  const t0 = Date.now();
  let peer;
  try {
    peer = await startPeer(name, { specPath: doc.spec, baseUrl: upstream.url + doc.prefix, port, log: () => {} });
  } catch (e) {
    check(false, "start", e.message);
    return;
  }
  console.log(`  started in ${((Date.now() - t0) / 1000).toFixed(1)} s at ${peer.url}`);
  const clients = [];
  try {
    const a = await connectClient(peer.url);
    clients.push(a);
    const { tools } = await a.client.listTools();
    const names = tools.map((t) => t.name);
    console.log(`  tools (${names.length}): ${names.join(", ")}`);
    for (const kind of ["list", "get", "create"]) {
      const { op } = doc[kind];
      const args = argsFor(name, doc[kind]);
      const tool = toolNameFor(name, op);
      if ((doc.missing[name] || []).includes(op)) {
        check(!names.includes(tool), `${name} does not expose ${op} (known gap)`);
        skipped++;
        console.log(`  skip ${kind} call: ${op} is not exposed by ${name}`);
        continue;
      }
      check(names.includes(tool), `toolNameFor(${name}, ${op}) = ${tool} is listed`);
      const before = upstream.received.length;
      try {
        const r = await a.client.callTool({ name: tool, arguments: args });
        const reached = upstream.received.slice(before);
        console.log(`  ${tool}(${JSON.stringify(args)}) -> failed=${callFailed(name, r)} upstream=[${reached.join("; ")}]`);
        console.log(`    result: ${short(text(r))}`);
        if (r.structuredContent) console.log(`    structuredContent: ${short(JSON.stringify(r.structuredContent))}`);
        check(!callFailed(name, r) && reached.length === 1 && !reached[0].includes("no route"), `${kind} call reaches the upstream route`);
        if (doc[kind].body) check(reached[0]?.includes(JSON.stringify(doc[kind].body.name)), `${kind} call sends the body`);
      } catch (e) {
        check(false, `${kind} call`, e.message);
      }
    }
    // 8 concurrent calls on one session (one Client: distinct JSON-RPC ids).
    const { op } = doc.list;
    const args = argsFor(name, doc.list);
    const t1 = Date.now();
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => a.client.callTool({ name: toolNameFor(name, op), arguments: args })));
    const okCount = results.filter((r) => r.status === "fulfilled" && !callFailed(name, r.value)).length;
    check(okCount === 8, `8 concurrent calls on one session`, `${okCount}/8 ok in ${Date.now() - t1} ms`);

    if (SESSION_POLICY[name] === "shared") {
      // A second Client reusing the first one's session id (no initialize): works.
      const b = await connectClient(peer.url, a.transport.sessionId);
      clients.push(b);
      const r = await b.client.callTool({ name: toolNameFor(name, op), arguments: args }).catch((e) => ({ isError: true, content: [{ type: "text", text: e.message }] }));
      check(!callFailed(name, r), "second client sharing the session id works");
      // A new session (second initialize) takes over: the older session stops answering.
      const c = await connectClient(peer.url);
      clients.push(c);
      const newer = await c.client.callTool({ name: toolNameFor(name, op), arguments: args }).catch((e) => ({ isError: true, content: [{ type: "text", text: e.message }] }));
      check(!callFailed(name, newer), "newest session works");
      const older = await Promise.race([
        a.client.callTool({ name: toolNameFor(name, op), arguments: args }).then(
          () => "answered",
          (e) => `error: ${e.message}`,
        ),
        new Promise((r) => setTimeout(() => r("no answer within 5 s"), 5000)),
      ]);
      console.log(`  older session after a newer initialize: ${short(older, 160)}`);
    } else {
      const c = await connectClient(peer.url);
      clients.push(c);
      const r1 = await c.client.callTool({ name: toolNameFor(name, op), arguments: args });
      const r2 = await a.client.callTool({ name: toolNameFor(name, op), arguments: args });
      check(!callFailed(name, r1) && !callFailed(name, r2), "two independent sessions both work");
    }
  } catch (e) {
    check(false, "session", e.stack || e.message);
  } finally {
    for (const { transport } of clients) await transport.close().catch(() => {});
    await peer.stop();
    console.log(`  stopped (log ${peer.logFile})`);
  }
}

const only = process.argv.slice(2);
const upstream = await startUpstream();
console.log(`fake upstream at ${upstream.url}`);
let port = 18600;
for (const doc of DOCS) for (const name of PEERS) if (!only.length || only.includes(name)) await smokePeer(name, doc, upstream, port++);
await upstream.close();
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);
