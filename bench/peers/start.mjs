// Starts benchmark peers: other tools that turn an OpenAPI document into an MCP server, run on this
// machine against the same upstream API as FlowCP. Install them first with `sh bench/peers/setup.sh`.
//
//   import { startPeer, toolNameFor, argsFor, callFailed } from "./peers/start.mjs";
//   const peer = await startPeer("fastmcp", { specPath, baseUrl, port });   // peer.url, peer.stop()
//   client.callTool({ name: toolNameFor(peer.name, "addPet"), arguments: argsFor(peer.name, { body }) })
//   callFailed(peer.name, result)   // openapi-mcp-generator never sets isError
//
// CLI (manual checks; keeps the peer running until Ctrl-C):
//   node bench/peers/start.mjs NAME SPEC.json BASE_URL PORT
//   node bench/peers/start.mjs --prepare SPEC.json     (generate + build openapi-mcp-generator's project)
//
// Peers:
// - "fastmcp": PyPI fastmcp 4.1.2, FastMCP.from_openapi(...) served with transport="http"
//   (Streamable HTTP) by bench/peers/fastmcp_peer.py, from the venv bench/.peers/venv.
// - "openapi-mcp-generator": npm openapi-mcp-generator 4.0.1 generates a TypeScript project per
//   document (bench/.peers/omg-<hash of document>/), built with tsc and run with node. Its
//   @modelcontextprotocol/sdk is pinned to 1.23.1: with the 1.32.x it resolves, the first request
//   crashes ("ReadableStream is locked"). The generated server connects its one MCP Server object to
//   each new session's transport, so only the NEWEST session answers: open one session and share it
//   (SESSION_POLICY below), and give concurrent requests in it distinct JSON-RPC ids (one SDK Client
//   issuing concurrent calls does; several Clients reusing one session id would collide on ids).
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { connect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
export const PEERS_DIR = resolve(HERE, "..", ".peers");
const VENV_PYTHON = join(PEERS_DIR, "venv", "bin", "python");
const OMG_CLI = join(PEERS_DIR, "omg-tool", "node_modules", ".bin", "openapi-mcp-generator");
const LOG_DIR = join(PEERS_DIR, "logs");

export const PEERS = ["fastmcp", "openapi-mcp-generator"];
export const VERSIONS = { fastmcp: "4.1.2", "openapi-mcp-generator": "4.0.1", omgSdk: "1.23.1" };

/** How a load generator should hold MCP sessions on each peer. */
export const SESSION_POLICY = {
  fastmcp: "per-client", // independent stateful sessions work
  "openapi-mcp-generator": "shared", // only the newest session works: one session for all clients
};

/**
 * The tool name a peer gives the operation with this operationId (both peers name tools after the
 * operationId, sanitised differently; FlowCP uses the operationId itself). Name collisions (two
 * operationIds equal after sanitising) are resolved by the peers with suffixes, not reproduced here.
 */
export function toolNameFor(peer, operationId) {
  if (peer === "flowcp") return operationId;
  if (peer === "fastmcp") {
    // fastmcp/server/providers/openapi/provider.py _generate_default_name + components.py _slugify
    let s = operationId.split("__")[0];
    s = s.replace(/[\s\-.]+/g, "_").replace(/[^a-zA-Z0-9_]/g, "").replace(/_+/g, "_");
    s = s.replace(/^_+|_+$/g, "");
    return s.slice(0, 56);
  }
  if (peer === "openapi-mcp-generator") {
    // openapi-mcp-generator dist/parser/extract-tools.js (names over 64 chars get abbreviated/hashed)
    const s = operationId.replace(/\./g, "_").replace(/[^a-z0-9_-]/gi, "_");
    if (s.length > 64) throw new Error(`toolNameFor: ${operationId} is over 64 chars; look it up in tools/list`);
    return s;
  }
  throw new Error(`unknown peer ${peer}`);
}

/**
 * A JSON copy of an OpenAPI document: the path itself for .json, else a YAML document converted with
 * the js-yaml that openapi-mcp-generator brings, written to bench/.peers/specs/<name>-<hash>.json.
 */
export function specAsJson(specPath) {
  if (/\.json$/i.test(specPath)) return resolve(specPath);
  const text = readFileSync(specPath, "utf8");
  const hash = createHash("sha256").update(text).digest("hex").slice(0, 12);
  const base = specPath.split("/").pop().replace(/\.(ya?ml)$/i, "");
  const out = join(PEERS_DIR, "specs", `${base}-${hash}.json`);
  if (!existsSync(out)) {
    const yaml = createRequire(join(PEERS_DIR, "omg-tool", "package.json"))("js-yaml");
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify(yaml.load(text), null, 2) + "\n");
  }
  return out;
}

/**
 * The tool arguments a peer expects for one call: `params` are the operation's path/query/header
 * parameters by name, `body` the JSON request body (an object) or undefined. FlowCP and fastmcp
 * take the body's properties flattened beside the parameters; openapi-mcp-generator takes the
 * body whole under `requestBody`. (Name clashes between parameters and body properties are
 * renamed by the peers and not reproduced here.)
 */
export function argsFor(peer, { params = {}, body } = {}) {
  if (body === undefined) return { ...params };
  if (peer === "openapi-mcp-generator") return { ...params, requestBody: body };
  if (peer === "fastmcp" || peer === "flowcp") return { ...params, ...body };
  throw new Error(`unknown peer ${peer}`);
}

/**
 * Whether a tools/call result is a failure. openapi-mcp-generator never sets isError: invalid
 * arguments, network errors and upstream 4xx/5xx all come back as plain text; its successes read
 * "API Response (Status: 2xx):". FlowCP and fastmcp set isError.
 */
export function callFailed(peer, result) {
  if (result?.isError) return true;
  if (peer === "openapi-mcp-generator") {
    const text = (result?.content || []).map((c) => c.text || "").join("");
    return !/^API Response \(Status: 2\d\d\)/.test(text);
  }
  return false;
}

/** Generates, installs and builds openapi-mcp-generator's project for a document (skipped when done). */
export function prepareOmg(specPath, { log = (m) => console.error(m) } = {}) {
  if (!existsSync(OMG_CLI)) throw new Error(`openapi-mcp-generator is not installed: run sh bench/peers/setup.sh`);
  const spec = readFileSync(specPath);
  const hash = createHash("sha256").update(VERSIONS["openapi-mcp-generator"]).update("\0").update(spec).digest("hex").slice(0, 16);
  const dir = join(PEERS_DIR, `omg-${hash}`);
  const entry = join(dir, "build", "index.js");
  const marker = join(dir, ".flowcp-bench-ready");
  if (existsSync(marker) && existsSync(entry)) return { dir, entry };
  const run = (cmd, args, cwd) => {
    const r = spawnSync(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  };
  const t0 = Date.now();
  log(`peers: generating openapi-mcp-generator project for ${specPath} in ${dir}`);
  // The base URL baked in here is a placeholder: the generated code reads API_BASE_URL at run time.
  run(OMG_CLI, ["-i", resolve(specPath), "-o", dir, "-t", "streamable-http", "-b", "http://127.0.0.1:9", "--force"], PEERS_DIR);
  const pkgPath = join(dir, "package.json");
  const pkg = JSON.parse(readFileSync(pkgPath, "utf8"));
  pkg.dependencies["@modelcontextprotocol/sdk"] = VERSIONS.omgSdk; // see the header comment
  writeFileSync(pkgPath, JSON.stringify(pkg, null, 2) + "\n");
  log(`peers: npm install in ${dir} (with @modelcontextprotocol/sdk@${VERSIONS.omgSdk})`);
  run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], dir);
  log(`peers: building (tsc)`);
  run("npm", ["run", "build", "--silent"], dir);
  writeFileSync(marker, new Date().toISOString() + "\n");
  log(`peers: openapi-mcp-generator project ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { dir, entry };
}

function portInUse(port) {
  return new Promise((res) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => (s.destroy(), res(true)));
    s.once("error", () => res(false));
  });
}

const INIT = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "flowcp-bench-probe", version: "0" } },
};

/** One initialize; true when it got a 200 with a JSON-RPC result (JSON or SSE body). */
async function probeInitialize(url) {
  try {
    const r = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify(INIT),
      signal: AbortSignal.timeout(5000),
    });
    const text = await r.text();
    if (r.status !== 200 || !text.includes('"result"')) return false;
    const sid = r.headers.get("mcp-session-id");
    // Close the probe's session where the peer supports DELETE (fastmcp); harmless elsewhere.
    if (sid) await fetch(url, { method: "DELETE", headers: { "mcp-session-id": sid } }).then((x) => x.text()).catch(() => {});
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts peer `name` serving MCP over Streamable HTTP for the OpenAPI document at `specPath` (JSON;
 * a YAML document is converted, see specAsJson), calling the upstream API at `baseUrl` (include the path prefix of the document's servers), on
 * 127.0.0.1:`port`. Resolves when the peer answers an MCP initialize.
 * Returns { name, url, pid, logFile, stop() }.
 */
export async function startPeer(name, { specPath, baseUrl, port, timeoutMs = 90_000, log = (m) => console.error(m) }) {
  if (!PEERS.includes(name)) throw new Error(`unknown peer ${name}; one of ${PEERS.join(", ")}`);
  if (!specPath || !baseUrl || !port) throw new Error("startPeer needs { specPath, baseUrl, port }");
  specPath = specAsJson(specPath);
  if (await portInUse(port)) throw new Error(`port ${port} on 127.0.0.1 is already in use`);
  mkdirSync(LOG_DIR, { recursive: true });
  let cmd, args, env;
  if (name === "fastmcp") {
    if (!existsSync(VENV_PYTHON)) throw new Error(`fastmcp is not installed: run sh bench/peers/setup.sh`);
    cmd = VENV_PYTHON;
    args = [join(HERE, "fastmcp_peer.py"), resolve(specPath), baseUrl, String(port)];
    env = { ...process.env, PYTHONUNBUFFERED: "1" };
  } else {
    const { entry } = prepareOmg(specPath, { log });
    cmd = process.execPath;
    args = [entry];
    // The generated server reads PORT and API_BASE_URL; it listens on all interfaces (@hono/node-server
    // default), reachable on 127.0.0.1.
    env = { ...process.env, PORT: String(port), API_BASE_URL: baseUrl.replace(/\/+$/, "") };
  }
  const logFile = join(LOG_DIR, `${name}-${port}.log`);
  const out = createWriteStream(logFile);
  await new Promise((r) => out.once("open", r));
  const child = spawn(cmd, args, { env, stdio: ["ignore", out, out] });
  let exited = null;
  const exitPromise = new Promise((r) => child.once("exit", (code, signal) => r((exited = { code, signal }))));
  // Don't leave the peer behind if this process ends without calling stop().
  const reap = () => !exited && child.kill("SIGKILL");
  process.once("exit", reap);
  exitPromise.then(() => process.off("exit", reap));
  const url = `http://127.0.0.1:${port}/mcp`;
  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      const t = setTimeout(() => !exited && child.kill("SIGKILL"), 5000);
      await exitPromise;
      clearTimeout(t);
    }
    out.end();
  };
  const t0 = Date.now();
  while (true) {
    if (exited) {
      out.end();
      const tail = readFileSync(logFile, "utf8").split("\n").slice(-30).join("\n");
      throw new Error(`${name} exited (${JSON.stringify(exited)}) before answering initialize; log ${logFile}:\n${tail}`);
    }
    if (await probeInitialize(url)) break;
    if (Date.now() - t0 > timeoutMs) {
      await stop();
      throw new Error(`${name} did not answer initialize at ${url} within ${timeoutMs} ms; log ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  log(`peers: ${name} ready at ${url} in ${((Date.now() - t0) / 1000).toFixed(1)} s (pid ${child.pid}, log ${logFile})`);
  return { name, url, pid: child.pid, logFile, stop };
}

// CLI
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  if (argv[0] === "--prepare" && argv.length >= 2) {
    for (const spec of argv.slice(1)) prepareOmg(specAsJson(spec));
  } else if (argv.length === 4) {
    const [name, specPath, baseUrl, port] = argv;
    const peer = await startPeer(name, { specPath, baseUrl, port: Number(port) });
    console.log(`${peer.name} serving MCP at ${peer.url} (upstream ${baseUrl}); Ctrl-C to stop`);
    const bye = async () => {
      await peer.stop();
      process.exit(0);
    };
    process.on("SIGINT", bye);
    process.on("SIGTERM", bye);
  } else {
    console.error("usage: node bench/peers/start.mjs NAME SPEC.json BASE_URL PORT\n       node bench/peers/start.mjs --prepare SPEC.json...");
    console.error(`NAME: ${PEERS.join(" | ")}`);
    process.exit(2);
  }
}
