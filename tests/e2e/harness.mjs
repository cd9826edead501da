// E2E harness: runs the real Worker under `wrangler dev` (workerd + local D1 and KV) on a free
// port with an isolated state directory, captures its output, and always stops it.
// The Worker must already be built (make build); FLOWCP_SKIP_BUILD=1 keeps wrangler from
// rebuilding it for every instance.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createHash, randomBytes } from "node:crypto";

export const ROOT = resolve(import.meta.dirname, "../..");
const WRANGLER = join(ROOT, "node_modules/.bin/wrangler");
const BASE_ENV = { ...process.env, FLOWCP_SKIP_BUILD: "1", WRANGLER_SEND_METRICS: "false", CI: "1", NO_COLOR: "1" };

export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/** Fresh random secrets for one test run (so tests can search the logs for them). */
export function testSecrets() {
  return {
    FLOWCP_ENCRYPTION_KEYS: "k1:" + randomBytes(32).toString("hex"),
    FLOWCP_SESSION_SECRET: randomBytes(32).toString("hex"),
    FLOWCP_TOKEN_SECRET: "t1:" + randomBytes(32).toString("hex"),
    // Opens the deep /healthz check (version, D1 and KV round trip, memory).
    FLOWCP_OPERATOR_TOKEN: randomBytes(32).toString("hex"),
    FLOWCP_ALLOW_LOCAL_FETCH: "1",
    // The local outbox (/dev/outbox) and the demo API; wrangler.toml leaves it unset (production).
    FLOWCP_ENV: "development",
    // Tests log every request so the "no secret in the log" checks see the request lines too.
    FLOWCP_LOG_REQUESTS: "1",
  };
}

function wrangler(args, opts = {}) {
  const r = spawnSync(WRANGLER, args, { cwd: ROOT, env: BASE_ENV, encoding: "utf8", timeout: 120_000, ...opts });
  if (r.status !== 0) {
    throw new Error(`wrangler ${args.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

/** A state directory with the D1 migrations applied. */
export function newState() {
  const dir = mkdtempSync(join(tmpdir(), "flowcp-e2e-"));
  wrangler(["d1", "migrations", "apply", "DB", "--local", "--persist-to", dir]);
  return dir;
}

/** Runs SQL against the local D1 of a state directory (only while no worker uses it). */
export function d1(stateDir, sql) {
  const out = wrangler(["d1", "execute", "DB", "--local", "--persist-to", stateDir, "--json", "--command", sql]);
  const parsed = JSON.parse(out.slice(out.indexOf("[")));
  return parsed.flatMap((r) => r.results ?? []);
}

/**
 * Starts `wrangler dev`. Options: vars (object of bindings, e.g. secrets), stateDir, anyAnswer
 * (a deliberately misconfigured Worker: ready once it answers /healthz with any JSON).
 * Returns { url, logs(), waitForLog(re), stop(), stateDir }.
 */
export async function startWorker({ vars = testSecrets(), stateDir = newState(), logLevel = "log", extraArgs = [], anyAnswer = false, config = null } = {}) {
  const port = await freePort();
  const args = ["dev", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", stateDir,
    "--test-scheduled", "--show-interactive-dev-session=false", "--log-level", logLevel];
  // Another checkout's already-built Worker (the bench's baseline), run by this checkout's wrangler.
  if (config) args.push("--config", config);
  for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);
  args.push(...extraArgs);
  const child = spawn(WRANGLER, args, { cwd: ROOT, env: BASE_ENV, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  let exited = false;
  child.on("exit", () => (exited = true));

  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (!exited) {
      try { process.kill(-child.pid, "SIGTERM"); } catch { /* already gone */ }
      const deadline = Date.now() + 10_000;
      while (!exited && Date.now() < deadline) await sleep(100);
      if (!exited) try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ }
    }
  };
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (exited) throw new Error(`wrangler dev exited early:\n${output}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev did not answer within 90 s:\n${output}`);
    }
    try {
      // Ready means this Worker answers on its own routes: the health check with its version,
      // and an API route (not the static-assets front, which answers before the Worker is up).
      const token = vars.FLOWCP_OPERATOR_TOKEN;
      const h = await fetch(`${url}/healthz`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
      const health = await h.json().catch(() => null);
      // A deliberately misconfigured Worker (anyAnswer) only has to answer at all.
      if (anyAnswer && health) break;
      const api = await fetch(`${url}/api/v1/openapi.json`);
      const doc = await api.json().catch(() => null);
      // The Worker's own answers (the static-assets front answers neither): the deep check with
      // its version when the operator token is set, else the liveness answer.
      const alive = token ? Boolean(health?.version) : health?.status === "ok";
      if (alive && api.status === 200 && doc?.openapi) break;
      await sleep(250);
    } catch {
      await sleep(250);
    }
  }
  const logs = () => output;
  const waitForLog = async (re, ms = 15_000) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const m = output.match(re);
      if (m) return m;
      await sleep(100);
    }
    throw new Error(`log line ${re} not seen within ${ms} ms:\n${output}`);
  };
  return { url, logs, waitForLog, stop, stateDir, cleanup: () => rmSync(stateDir, { recursive: true, force: true }) };
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** A dashboard-API client with a cookie jar and the CSRF token. */
export class Client {
  constructor(base) {
    this.base = base;
    this.cookie = null;
    this.csrf = null;
  }

  async call(method, path, { json, body, contentType, headers = {}, csrf = true } = {}) {
    const h = { ...headers };
    if (this.cookie) h.cookie = this.cookie;
    if (csrf && this.csrf && !["GET", "HEAD"].includes(method)) h["x-csrf-token"] = this.csrf;
    let payload = body;
    if (json !== undefined) {
      payload = JSON.stringify(json);
      h["content-type"] = "application/json";
    }
    if (contentType) h["content-type"] = contentType;
    const r = await fetch(this.base + path, { method, headers: h, body: payload, redirect: "manual" });
    for (const c of r.headers.getSetCookie()) {
      const first = c.split(";")[0];
      this.cookie = first.endsWith("=") ? null : first;
    }
    const text = await r.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
    if (parsed && typeof parsed === "object" && parsed.csrf_token) this.csrf = parsed.csrf_token;
    return { status: r.status, body: parsed, headers: r.headers };
  }

  get(p, o) { return this.call("GET", p, o); }
  post(p, json, o = {}) { return this.call("POST", p, { json, ...o }); }
  patch(p, json, o = {}) { return this.call("PATCH", p, { json, ...o }); }
  put(p, json, o = {}) { return this.call("PUT", p, { json, ...o }); }
  del(p, json, o = {}) { return this.call("DELETE", p, { json, ...o }); }

  /** Signs up and, unless `verify` is false, redeems the emailed verification link (a build
   * without address verification answers no `email_verified`, and there is nothing to do). */
  async signup(email, password = "correct horse battery staple", workspace = "Acme", { verify = true } = {}) {
    const r = await this.post("/api/v1/auth/signup", {
      email, password, display_name: "Test User", workspace_name: workspace, accept_terms: true, accept_privacy: true,
    });
    if (r.status !== 201) throw new Error(`signup failed: ${r.status} ${JSON.stringify(r.body)}`);
    if (verify && r.body.user?.email_verified === false) await this.verifyEmail(email);
    return r.body;
  }

  /** The messages the development outbox holds for `email`, oldest first. */
  async outbox(email) {
    const r = await fetch(`${this.base}/dev/outbox?to=${encodeURIComponent(email)}`);
    if (r.status !== 200) throw new Error(`outbox: HTTP ${r.status}`);
    return (await r.json()).messages;
  }

  /** The token of the newest link to `page` (say "/verify-email") sent to `email`. */
  async linkToken(email, page) {
    const marker = `${page}#token=`;
    const messages = await this.outbox(email);
    for (const m of messages.reverse()) {
      const at = m.text.indexOf(marker);
      if (at >= 0) return m.text.slice(at + marker.length).split(/\s/)[0];
    }
    throw new Error(`no ${page} link was sent to ${email}`);
  }

  async verifyEmail(email) {
    const token = await this.linkToken(email, "/verify-email");
    const r = await this.post("/api/v1/auth/verify-email", { token });
    if (r.status !== 200) throw new Error(`verify-email failed: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }
}

/** `owner` invites `email` to workspace `ws` as `role`; `invitee` (signed in as that address,
 * verified) accepts the emailed link. Returns the accepted workspace. */
export async function inviteAndAccept(owner, ws, invitee, email, role = "member") {
  const invited = await owner.post(`/api/v1/workspaces/${ws}/invitations`, { email, role });
  if (invited.status !== 202) throw new Error(`invite failed: ${invited.status} ${JSON.stringify(invited.body)}`);
  const token = await invitee.linkToken(email, "/invitations/accept");
  const r = await invitee.post("/api/v1/invitations/accept", { token });
  if (r.status !== 200) throw new Error(`accept failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/**
 * What a user's browser does with an authorization URL of FlowCP's authorization server:
 * FlowCP's consent page (approve, with its cookie), the provider's sign-in (a fake that
 * redirects back at once), FlowCP's callback (with the state cookie). Returns the redirect to
 * the client (its `code`, `state`, `iss`); `deliver` also visits it (a client listening there).
 */
export async function approveInBrowser(authUrl, { deliver = false } = {}) {
  const manual = (url, init = {}) => fetch(url, { redirect: "manual", ...init });
  const page = await manual(authUrl);
  const html = await page.text();
  if (page.status !== 200) throw new Error(`consent page: ${page.status} ${html.slice(0, 300)}`);
  const cookie = page.headers.get("set-cookie").split(";")[0];
  const ticket = html.match(/name="ticket" value="([^"]+)"/)[1];
  const decided = await manual(new URL("/oauth/authorize", authUrl), { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", cookie }, body: new URLSearchParams({ ticket, decision: "approve" }).toString() });
  if (decided.status !== 302) throw new Error(`decision: ${decided.status}`);
  const stateCookie = decided.headers.getSetCookie().map((c) => c.split(";")[0]).find((c) => c.startsWith("__Host-fcp_state="));
  const fromProvider = await manual(decided.headers.get("location"));
  const back = await manual(fromProvider.headers.get("location"), { headers: { cookie: stateCookie } });
  if (back.status !== 302) throw new Error(`callback: ${back.status} ${(await back.text()).slice(0, 300)}`);
  const toClient = new URL(back.headers.get("location"));
  if (deliver) await fetch(toClient);
  return toClient;
}

/**
 * Publishes a per-user OAuth server over the document at `${base}/openapi.json`, with the
 * provider at `${base}/authorize` and `${base}/token` (client secret `owner-client-secret`,
 * scope `read:user`). Returns the server and its verification.
 */
export async function publishOAuthServer(owner, ws, base) {
  const P = (p) => `/api/v1/workspaces/${ws}${p}`;
  const must = (r, status = 200) => { if (r.status !== status) throw new Error(`${r.status} ${JSON.stringify(r.body)}`); return r.body; };
  const app = must(await owner.post(P("/apps"), { name: "Me" }), 201);
  must(await owner.post(P(`/apps/${app.id}/imports`), { url: `${base}/openapi.json` }), 201);
  const srv = must(await owner.post(P("/servers"), { app_id: app.id, name: "Me as you" }), 201);
  must(await owner.patch(P(`/servers/${srv.id}`), { auth_mode: "oauth", auth_config: { authorize_url: `${base}/authorize`, token_url: `${base}/token`, client_id: "owner-app", scopes: ["read:user"] } }));
  must(await owner.put(P(`/servers/${srv.id}/credential`), { value: "owner-client-secret", origin: base }));
  const verification = must(await owner.post(P(`/servers/${srv.id}/verify`)));
  if (verification.state !== "verified") throw new Error(`verify: ${JSON.stringify(verification)}`);
  must(await owner.post(P(`/servers/${srv.id}/publish`)));
  return { srv, verification };
}

/**
 * Connects an agent to FlowCP's own MCP server (`/mcp`) as `user` (a signed-in Client), bound
 * to workspace `ws`, the way a browser would: registration, the authorize page (consent with
 * the workspace choice), the decision, and the code exchanged with PKCE. Returns the tokens.
 */
export async function connectAgent(base, user, ws, { clientName = "Agent", redirect = "http://127.0.0.1:7799/callback" } = {}) {
  const manual = (url, init = {}) => fetch(url, { redirect: "manual", ...init });
  const reg = await fetch(`${base}/oauth/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ client_name: clientName, redirect_uris: [redirect], token_endpoint_auth_method: "none" }),
  });
  if (reg.status !== 201) throw new Error(`register: ${reg.status}`);
  const clientId = (await reg.json()).client_id;
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const authUrl = new URL(`${base}/oauth/authorize`);
  for (const [k, v] of Object.entries({ response_type: "code", client_id: clientId, redirect_uri: redirect, code_challenge: challenge, code_challenge_method: "S256", state: "s", resource: `${base}/mcp` })) {
    authUrl.searchParams.set(k, v);
  }
  const page = await manual(authUrl, { headers: { cookie: user.cookie } });
  const html = await page.text();
  if (page.status !== 200) throw new Error(`consent page: ${page.status} ${html.slice(0, 300)}`);
  const nonce = page.headers.get("set-cookie").split(";")[0];
  const ticket = html.match(/name="ticket" value="([^"]+)"/)[1];
  const decided = await manual(`${base}/oauth/authorize`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", cookie: `${user.cookie}; ${nonce}` },
    body: new URLSearchParams({ ticket, workspace: ws, decision: "approve" }).toString(),
  });
  if (decided.status !== 302) throw new Error(`decision: ${decided.status} ${(await decided.text()).slice(0, 300)}`);
  const code = new URL(decided.headers.get("location")).searchParams.get("code");
  const t = await fetch(`${base}/oauth/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "authorization_code", code, client_id: clientId, redirect_uri: redirect, code_verifier: verifier }).toString(),
  });
  if (t.status !== 200) throw new Error(`token: ${t.status}`);
  return { clientId, ...(await t.json()) };
}
