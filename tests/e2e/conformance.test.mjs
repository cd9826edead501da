// The official MCP conformance suite (@modelcontextprotocol/conformance, Node 22 via npm)
// against a published, keyless demo server under wrangler dev. The suite cannot send custom
// headers, so the server is public. Expected failures are listed and explained in
// tests/conformance/expected-failures.yml; the 2026-07-28-era scenarios, which only the newer
// (alpha) package has, run check by check against tests/conformance/expected-failures-2026.json.
// FlowCP's own MCP server (`/mcp`, issue 15) needs an OAuth token: the same scenarios run
// against it through a proxy on 127.0.0.1 that adds the agent's bearer token (and passes every
// other header, a rebinding Host among them, as sent).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Client, ROOT, connectAgent, startWorker } from "./harness.mjs";

const CONFORMANCE = "@modelcontextprotocol/conformance@0.1.16";
let w, url, proxy, managementUrl;

function conformance(args, pkg = CONFORMANCE, target = url) {
  const r = spawnSync("npx", ["-y", "-p", "node@22", "-p", pkg, "--", "conformance", "server", "--url", target, ...args], {
    cwd: ROOT, encoding: "utf8", timeout: 600_000, env: { ...process.env, npm_config_yes: "true" },
  });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

before(async () => {
  w = await startWorker();
  const c = new Client(w.url);
  const ws = (await c.signup("conformance@example.com")).workspace.id;
  const P = (p) => `/api/v1/workspaces/${ws}${p}`;
  const app = (await c.post(P("/apps"), { name: "Demo Bookshop" })).body;
  assert.equal((await c.post(P(`/apps/${app.id}/imports`), { url: `${w.url}/demo/openapi.json` })).status, 201);
  const srv = (await c.post(P("/servers"), { app_id: app.id, name: "Demo Bookshop" })).body;
  await c.patch(P(`/servers/${srv.id}`), { is_public: true });
  assert.equal((await c.post(P(`/servers/${srv.id}/verify`))).body.state, "verified");
  assert.equal((await c.post(P(`/servers/${srv.id}/publish`))).status, 200);
  url = srv.mcp_url;
  // FlowCP's own server, as an agent signed in with this account and bound to its workspace.
  const { access_token } = await connectAgent(w.url, c, ws, { clientName: "Conformance" });
  proxy = spawn(process.execPath, [join(ROOT, "tests/e2e/bearer-proxy.mjs"), w.url, access_token], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise((resolve, reject) => {
    proxy.stdout.on("data", (d) => { const m = String(d).match(/listening (\d+)/); if (m) resolve(m[1]); });
    proxy.on("exit", (code) => reject(new Error(`the proxy exited (${code})`)));
  });
  managementUrl = `http://127.0.0.1:${port}/mcp`;
});
after(async () => { proxy?.kill(); await w?.stop(); w?.cleanup(); });

for (const scenario of ["server-initialize", "ping", "tools-list", "dns-rebinding-protection"]) {
  test(`conformance scenario ${scenario} passes`, () => {
    const r = conformance(["--scenario", scenario]);
    assert.equal(r.status, 0, r.out);
    // v0.1.16 prints "Passed: 1/1, 0 failed, 0 warnings" and exits 0 on warnings too: a run
    // with no checks, a failure or any warning must not count as a pass.
    const out = r.out.replace(/\x1b\[[0-9;]*m/g, "");
    assert.match(out, /^Passed: ([1-9]\d*)\/\1, 0 failed, 0 warnings$/m, out);
    assert.doesNotMatch(out, /\] (FAILURE|WARNING) /, out);
  });
}

for (const scenario of ["server-initialize", "ping", "tools-list", "dns-rebinding-protection"]) {
  test(`conformance scenario ${scenario} passes against FlowCP's own /mcp`, () => {
    const r = conformance(["--scenario", scenario], CONFORMANCE, managementUrl);
    assert.equal(r.status, 0, r.out);
    const out = r.out.replace(/\x1b\[[0-9;]*m/g, "");
    assert.match(out, /^Passed: ([1-9]\d*)\/\1, 0 failed, 0 warnings$/m, out);
    assert.doesNotMatch(out, /\] (FAILURE|WARNING) /, out);
  });
}

test("the active suite fails only the listed, explained scenarios", () => {
  const r = conformance(["--expected-failures", join(ROOT, "tests/conformance/expected-failures.yml")]);
  assert.equal(r.status, 0, r.out.slice(-4000));
});

test("the active suite against FlowCP's own /mcp fails only the same listed scenarios", () => {
  const r = conformance(["--expected-failures", join(ROOT, "tests/conformance/expected-failures.yml")], CONFORMANCE, managementUrl);
  assert.equal(r.status, 0, r.out.slice(-4000));
});

const MODERN = JSON.parse(readFileSync(join(ROOT, "tests/conformance/expected-failures-2026.json"), "utf8"));
for (const [scenario, expected] of Object.entries(MODERN.scenarios)) {
  test(`2026-07-28 conformance scenario ${scenario} fails only its listed checks`, () => {
    const r = conformance(["--scenario", scenario], MODERN.package);
    const out = r.out.replace(/\x1b\[[0-9;]*m/g, "");
    const totals = out.match(/^Passed: (\d+)\/(\d+), (\d+) failed, (\d+) warnings$/m);
    assert.ok(totals, out);
    const [passed, total, , warnings] = totals.slice(1).map(Number);
    assert.ok(total > 0, `no checks ran:\n${out}`);
    assert.equal(warnings, 0, out);
    const failed = [...out.matchAll(/\[([\w-]+)\s*\] FAILURE /g)].map((m) => m[1]).sort();
    assert.deepEqual(failed, Object.keys(expected).sort(), out);
    assert.equal(passed, total - failed.length, out);
    assert.equal(r.status, failed.length ? 1 : 0, out);
  });
}
