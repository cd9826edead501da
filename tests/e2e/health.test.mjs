// /healthz, the error model and the refusal to serve without secrets, against wrangler dev.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { startWorker, testSecrets } from "./harness.mjs";

const secrets = testSecrets();
let w;
before(async () => { w = await startWorker({ vars: secrets }); });
after(async () => { await w?.stop(); w?.cleanup(); });

test("the public healthz is liveness only: no version, no memory figure, no backend work", async () => {
  const r = await fetch(`${w.url}/healthz`);
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { status: "ok" });
  assert.equal((await fetch(`${w.url}/healthz`, { method: "HEAD" })).status, 200);
  const wrong = await fetch(`${w.url}/healthz`, { headers: { authorization: "Bearer not-the-operator-token" } });
  assert.equal(wrong.status, 401);
  assert.equal((await wrong.json()).error.code, "unauthenticated");
});

test("healthz with the operator token reports version and a real D1 and KV round trip", async () => {
  const r = await fetch(`${w.url}/healthz`, { headers: { authorization: `Bearer ${secrets.FLOWCP_OPERATOR_TOKEN}` } });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /application\/json/);
  const body = await r.json();
  assert.equal(body.status, "ok");
  assert.deepEqual(body.checks, { d1: "ok", kv: "ok" });
  assert.match(body.version, /^\d+\.\d+\.\d+\+\w+$/);
  assert.ok(body.memory.wasm_bytes >= 65_536 && body.memory.wasm_bytes % 65_536 === 0, "wasm memory in whole pages");
});

test("unknown route answers 404 with the JSON error shape", async () => {
  const r = await fetch(`${w.url}/api/v1/nope`);
  assert.equal(r.status, 404);
  assert.deepEqual(await r.json(), { error: { code: "not_found", message: "The requested resource does not exist." } });
});

test("wrong method on healthz is 405", async () => {
  const r = await fetch(`${w.url}/healthz`, { method: "DELETE" });
  assert.equal(r.status, 405);
  assert.equal((await r.json()).error.code, "method_not_allowed");
});

test("a body over the global limit is refused with 413 before it is read", async () => {
  const big = new Uint8Array(21 * 1024 * 1024);
  const r = await fetch(`${w.url}/healthz`, { method: "POST", body: big });
  assert.equal(r.status, 413);
  assert.equal((await r.json()).error.code, "payload_too_large");
});

/** Streams `mb` MiB as a chunked POST (no Content-Length) and resolves with the status the
 * Worker answers; writing stops once an answer arrives. */
function chunkedPost(path, mb) {
  return new Promise((resolve, reject) => {
    const u = new URL(w.url + path);
    let sent = 0;
    let answered = false;
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: "POST", headers: { "content-type": "application/json", "transfer-encoding": "chunked" } });
    req.on("response", (res) => {
      answered = true;
      let text = "";
      res.on("data", (d) => { text += d; });
      res.on("end", () => resolve({ status: res.statusCode, text, sentMiB: sent }));
    });
    req.on("error", (e) => { if (!answered) reject(e); });
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    const pump = () => {
      while (!answered && sent < mb) {
        sent++;
        if (!req.write(chunk)) return req.once("drain", pump);
      }
      if (!answered) req.end();
    };
    req.write("[\"");
    pump();
  });
}

test("a 50 MB chunked body to /mcp/<id> and to the login route is refused with 413, and the worker keeps serving", async () => {
  for (const path of ["/mcp/srv_doesnotexist00000", "/api/v1/auth/login"]) {
    const r = await chunkedPost(path, 50);
    assert.equal(r.status, 413, `${path}: ${r.status} ${r.text.slice(0, 200)}`);
    assert.equal(JSON.parse(r.text).error.code, "payload_too_large");
    const alive = await fetch(`${w.url}/healthz`);
    assert.equal(alive.status, 200, "the worker keeps serving");
  }
});

test("the dashboard is served as static assets", async () => {
  const r = await fetch(`${w.url}/`);
  assert.equal(r.status, 200);
  assert.match(await r.text(), /<title>FlowCP<\/title>/);
  // The pages emailed links open are the dashboard's (single-page fallback), with no referrer...
  for (const page of ["/verify-email", "/reset-password", "/invitations/accept"]) {
    const p = await fetch(`${w.url}${page}`);
    assert.equal(p.status, 200, page);
    assert.match(await p.text(), /<meta name="referrer" content="no-referrer" \/>/, page);
  }
  // ...while the Worker's own paths still answer as the Worker.
  const api = await fetch(`${w.url}/api/v1/no-such-route`);
  assert.equal(api.status, 404);
  assert.equal((await api.json()).error.code, "not_found");
});

test("no secret value appears in the worker output", async () => {
  await fetch(`${w.url}/healthz`);
  const logs = w.logs();
  assert.match(logs, /GET \/healthz -> 200/);
  for (const name of ["FLOWCP_ENCRYPTION_KEYS", "FLOWCP_SESSION_SECRET"]) {
    assert.ok(!logs.includes(secrets[name].replace(/^k1:/, "")), `${name} leaked into the log`);
  }
});

test("without a required secret the worker refuses to serve with 503 and a log line", async () => {
  const vars = { ...testSecrets(), FLOWCP_SESSION_SECRET: "" };
  const broken = await startWorker({ vars, anyAnswer: true });
  try {
    const r = await fetch(`${broken.url}/healthz`);
    assert.equal(r.status, 503);
    const body = await r.json();
    assert.equal(body.error.code, "not_configured");
    await broken.waitForLog(/required secret FLOWCP_SESSION_SECRET is not set/);
  } finally {
    await broken.stop();
    broken.cleanup();
  }
});

test("an empty host allow-list refuses to serve (the DNS-rebinding defence never fails open)", async () => {
  const broken = await startWorker({ vars: { ...testSecrets(), FLOWCP_ALLOWED_HOSTS: "" }, anyAnswer: true });
  try {
    const r = await fetch(`${broken.url}/healthz`);
    assert.equal(r.status, 503);
    assert.equal((await r.json()).error.code, "not_configured");
    await broken.waitForLog(/FLOWCP_ALLOWED_HOSTS is invalid: must list at least one host/);
  } finally {
    await broken.stop();
    broken.cleanup();
  }
});

test("outside development the demo API is not served", async () => {
  const prod = await startWorker({ vars: { ...testSecrets(), FLOWCP_ENV: "production" } });
  try {
    assert.equal((await fetch(`${prod.url}/healthz`)).status, 200);
    const r = await fetch(`${prod.url}/demo/openapi.json`);
    assert.equal(r.status, 404);
    assert.equal((await r.json()).error.code, "not_found");
  } finally {
    await prod.stop();
    prod.cleanup();
  }
});
