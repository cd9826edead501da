// Issue 14: the owners' dashboard in a real browser — Debian's Chromium driven by playwright-core
// — against the Worker under wrangler dev and fake APIs on 127.0.0.1. Every owner journey: sign
// up through the form (consent boxes), import and re-import, curate, try a tool, configure,
// verify, publish, connect an MCP client, read the activity, manage members and the account;
// keyboard-only use; no console error; no serious or critical axe-core violation on any screen.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";
import { Client, ROOT, startWorker, testSecrets } from "./harness.mjs";
import { githubVars, startFakeGitHub } from "./fake-github.mjs";

const CHROMIUM = process.env.FLOWCP_CHROMIUM ?? "/usr/bin/chromium";
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
let w, gh, browser, page;
const errors = [];

before(async () => {
  gh = await startFakeGitHub();
  w = await startWorker({ vars: { ...testSecrets(), ...githubVars(gh), FLOWCP_RATE_LIMITS: "off" } });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
});
after(async () => { await browser?.close(); await w?.stop(); w?.cleanup(); await gh?.close(); });

// Each screen checked: axe-core, then a screenshot in light and dark mode at 1280x800 under
// docs/screenshots/ (linked from the README).
const SHOTS = join(ROOT, "docs/screenshots");
mkdirSync(SHOTS, { recursive: true });

async function noSeriousViolations(what, { top = true } = {}) {
  if (top) await page.evaluate(() => window.scrollTo(0, 0));
  for (const scheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: scheme });
    // Charts redraw in the new scheme's colors on the media change.
    await page.waitForTimeout(150);
    await page.screenshot({ path: join(SHOTS, `${what.replace(/\W+/g, "-")}-${scheme}.png`) });
  }
  await page.emulateMedia({ colorScheme: "light" });
  await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.help}`), [], `${what}: ${JSON.stringify(bad.map((v) => v.nodes.map((n) => n.target)))}`);
}

test("an owner signs up with the consent boxes, creates an app, signs out and back in", async () => {
  await page.goto(`${w.url}/`);
  await page.waitForURL(`${w.url}/sign-in`);
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  // Time to interactive: from navigation to the sign-in form on screen (after /api/v1/me).
  const tti = await page.evaluate(() => performance.now());
  console.log(`dashboard: time to interactive ${tti.toFixed(0)} ms under wrangler dev`);
  await noSeriousViolations("sign in");
  await page.getByRole("link", { name: "Create an account" }).click();
  await page.waitForURL(`${w.url}/sign-up`);
  await page.getByLabel("Your name").fill("Ada");
  await page.getByLabel("Email").fill("ada-dashboard@example.com");
  await page.getByLabel("Password").fill("correct horse battery staple");
  await page.getByLabel("Workspace name").fill("Ada's APIs");
  // Without the consent boxes the form says why and keeps what was typed.
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("alert").filter({ hasText: "Accept the terms" }).waitFor();
  assert.equal(await page.getByLabel("Email").inputValue(), "ada-dashboard@example.com");
  await noSeriousViolations("sign up");
  await page.getByLabel("I accept the terms of service").check();
  await page.getByLabel("I accept the privacy policy").check();
  await page.getByRole("button", { name: "Create account" }).click();
  await page.waitForURL(`${w.url}/`);
  await page.getByRole("heading", { name: "Ada's APIs" }).waitFor();
  await noSeriousViolations("workspace");

  await page.getByLabel("New app name").fill("Petstore");
  await page.getByRole("button", { name: "Create app" }).click();
  await page.getByRole("list", { name: "Apps" }).getByText("Petstore").waitFor();
  // An empty name is stopped in the browser; a name the API refuses (a bidi override) gets the
  // API's readable message, never raw JSON, and what was typed stays.
  await page.getByRole("button", { name: "Create app" }).click();
  assert.equal(await page.getByRole("alert").count(), 0);
  await page.getByLabel("New app name").fill("Pet\u202Estore");
  await page.getByRole("button", { name: "Create app" }).click();
  const alert = await page.getByRole("alert").textContent();
  assert.ok(alert && !alert.includes("{") && /name/i.test(alert), alert);
  assert.equal(await page.getByLabel("New app name").inputValue(), "Pet\u202Estore");

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(`${w.url}/sign-in`);
  await page.goto(`${w.url}/`);
  await page.waitForURL(`${w.url}/sign-in`);
  await page.getByLabel("Email").fill("ada-dashboard@example.com");
  await page.getByLabel("Password").fill("wrong password here");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").waitFor();
  await page.getByLabel("Password").fill("correct horse battery staple");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${w.url}/`);
  await page.getByRole("list", { name: "Apps" }).getByText("Petstore").waitFor();
  assert.deepEqual(errors.filter((e) => !/401|Failed to load resource/.test(e)), []);
});

test("deep links and the legal pages load as the dashboard", async () => {
  for (const [path, heading] of [["/privacy", "Privacy policy"], ["/terms", "Terms of service"], ["/no/such/page", "Not found"]]) {
    await page.goto(`${w.url}${path}`);
    await page.getByRole("heading", { name: heading }).waitFor();
  }
  await page.goto(`${w.url}/privacy`);
  assert.match(await page.textContent("article"), /keeps no end-user token|keeps\s+no\s+end-user token/i);
  await noSeriousViolations("privacy");
  // The security contact the privacy page links to (RFC 9116: Contact and Expires).
  const txt = await (await fetch(`${w.url}/.well-known/security.txt`)).text();
  assert.match(txt, /^Contact: mailto:security@127\.0\.0\.1$/m);
  assert.ok(new Date(txt.match(/^Expires: (.+)$/m)[1]) > new Date(), txt);
});

// The Petstore document served on 127.0.0.1 (an import by URL) by a fake of its API, which
// answers its operations; GitHub's 13 MB one uploaded.
const CORPUS = join(ROOT, "../shared/corpus/openapi");
let petApi, petServer;
before(async () => {
  petServer = createServer((req, res) => {
    const json = (v) => { res.writeHead(200, { "content-type": "application/json" }); res.end(JSON.stringify(v)); };
    if (req.url === "/petstore.json" || req.url === "/petstore.json?v=2") {
      const doc = JSON.parse(readFileSync(join(CORPUS, "examples/3.0/petstore.json"), "utf8"));
      doc.servers = [{ url: `${petApi}/v2` }];
      // The document's next version adds one operation.
      if (req.url.endsWith("v=2")) doc.paths["/pet/{petId}/vaccinations"] = { get: { operationId: "listVaccinations", summary: "A pet's vaccinations", parameters: [{ name: "petId", in: "path", required: true, schema: { type: "integer" } }], responses: { 200: { description: "ok" } } } };
      return json(doc);
    }
    if (req.url.startsWith("/v2/store/inventory")) return json({ available: 3, sold: 1 });
    if (req.url.startsWith("/v2/pet/")) return json({ id: 7, name: "rex", photoUrls: [], status: "available" });
    json({});
  });
  await new Promise((r) => petServer.listen(0, "127.0.0.1", r));
  petApi = `http://127.0.0.1:${petServer.address().port}`;
});
after(() => petServer?.close());

test("an owner imports Petstore by URL and GitHub by upload, and curates GitHub's 1,223 tools", { timeout: 300_000 }, async () => {
  await page.goto(`${w.url}/`);
  await page.getByRole("link", { name: "Petstore" }).click();
  await page.getByRole("heading", { name: "Petstore" }).waitFor();
  await page.getByLabel("Document URL").fill(`${petApi}/petstore.json`);
  await page.getByRole("button", { name: "Import from URL" }).click();
  const report = page.getByLabel("Import report");
  await report.waitFor();
  assert.match(await report.textContent(), /\d+ tools/);
  await page.getByRole("table", { name: "Tools" }).getByText("getPetById").waitFor();
  // Re-import the document's next version: the report names the tool it added, and the
  // history keeps both imports with their changes.
  await page.getByLabel("Document URL").fill(`${petApi}/petstore.json?v=2`);
  await page.getByRole("button", { name: "Import from URL" }).click();
  await page.getByLabel("Import report").filter({ hasText: "1 added" }).waitFor();
  await page.getByLabel("Import report").getByText("Added (1)").click();
  await page.getByLabel("Import report").getByText("listVaccinations").waitFor();
  const imports = page.getByRole("table", { name: "Imports" });
  await imports.locator("tbody tr").nth(1).waitFor();
  assert.equal(await imports.locator("tbody tr").count(), 2);
  assert.match(await imports.locator("tbody tr").first().textContent(), /\+1\s*−0\s*~0/);
  await noSeriousViolations("app");

  // GitHub: a new app, the document uploaded as a file.
  await page.goto(`${w.url}/`);
  await page.getByLabel("New app name").fill("GitHub");
  await page.getByRole("button", { name: "Create app" }).click();
  await page.getByRole("link", { name: "GitHub" }).click();
  await page.getByRole("heading", { name: "GitHub" }).waitFor();
  const github = gunzipSync(readFileSync(join(CORPUS, "real/github-api.json.gz")));
  const started = Date.now();
  await page.locator("#doc-file").setInputFiles({ name: "github-api.json", mimeType: "application/json", buffer: github });
  await page.getByLabel("Import report").waitFor({ timeout: 120_000 });
  assert.match(await page.getByLabel("Import report").textContent(), /1223 tools/);
  await page.getByText("1223 of 1223 tools").waitFor({ timeout: 60_000 });
  const importMs = Date.now() - started;
  // Filtering 1,223 tools in the browser: time from a keystroke to the new count on screen.
  const filterMs = await page.evaluate(async () => {
    const input = document.getElementById("f-tool_q");
    const t0 = performance.now();
    input.value = "issue";
    input.dispatchEvent(new Event("input", { bubbles: true }));
    for (;;) {
      const live = [...document.querySelectorAll("[aria-live]")].map((e) => e.textContent).join(" ");
      if (/\d+ of 1223 tools/.test(live) && !/1223 of 1223/.test(live)) break;
      await new Promise((r) => requestAnimationFrame(r));
    }
    return performance.now() - t0;
  });
  // Scrolling the whole table renders only the rows in view.
  const rowsInDom = await page.locator("[role=row]").count();
  assert.ok(rowsInDom < 40, `${rowsInDom} rows in the DOM`);
  // Bulk: disable every tool the search shows; the count of enabled ones drops by as many.
  const shownText = await page.getByText(/\d+ of 1223 tools/).textContent();
  const shown = Number(shownText.match(/(\d+) of/)[1]);
  await page.getByRole("button", { name: "Select shown" }).click();
  await page.getByRole("button", { name: "Disable selected" }).click();
  await page.getByLabel("Search tools").fill("");
  await page.getByLabel("Show").selectOption("disabled");
  await page.getByText(`${shown} of 1223 tools`).waitFor();
  // Rename one tool and curate its description, beside the generated text.
  await page.getByLabel("Show").selectOption("all");
  await page.getByLabel("Search tools").fill("meta");
  await page.getByRole("table", { name: "Tools" }).getByRole("button").first().click();
  const editor = page.getByRole("form", { name: /^Edit / });
  await editor.getByLabel("Tool name").fill("github_api_root");
  await editor.getByLabel("Description clients see").fill("The GitHub API's root: links to every resource.");
  await editor.getByRole("button", { name: "Save tool" }).click();
  await editor.waitFor({ state: "detached" });
  await page.getByLabel("Search tools").fill("github_api_root");
  await page.getByRole("table", { name: "Tools" }).getByRole("button", { name: "github_api_root" }).waitFor();
  console.log(`dashboard: GitHub upload to table ${importMs} ms; filter 1,223 tools ${filterMs.toFixed(1)} ms; ${rowsInDom} rows in the DOM`);
});

/** Presses Tab until the focused element's text or label matches `name` (at most 80 times). */
async function tabTo(name) {
  for (let i = 0; i < 80; i++) {
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => {
      const e = document.activeElement;
      const label = e?.id ? document.querySelector(`label[for="${e.id}"]`)?.textContent : "";
      return { text: `${e?.getAttribute("aria-label") ?? ""} ${label ?? ""} ${e?.textContent ?? ""}`.trim(), outline: getComputedStyle(e).outlineStyle };
    });
    if (name.test(focused.text)) {
      assert.notEqual(focused.outline, "none", `the focus on ${focused.text} is visible`);
      return;
    }
  }
  assert.fail(`Tab never reached ${name}`);
}

test("keyboard only: navigate, open an app, curate a tool and filter the activity without a mouse", async () => {
  await page.goto(`${w.url}/`);
  await page.getByRole("list", { name: "Apps" }).waitFor();
  await tabTo(/^Petstore$/);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Petstore" }).waitFor();
  await tabTo(/^Search tools/);
  await page.keyboard.type("getPetById");
  await tabTo(/^getPetById$/);
  await page.keyboard.press("Enter");
  await page.getByRole("form", { name: "Edit getPetById" }).waitFor();
  await tabTo(/^Description clients see/);
  await page.keyboard.press("Control+A");
  await page.keyboard.type("Finds one pet by its id.");
  await tabTo(/^Save tool$/);
  await page.keyboard.press("Enter");
  await page.getByRole("form", { name: "Edit getPetById" }).waitFor({ state: "detached" });
  await page.keyboard.press("Shift+Tab");
  await page.goto(`${w.url}/`);
  await tabTo(/^Activity$/);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Activity" }).waitFor();
  await tabTo(/^Window/);
  await page.keyboard.press("ArrowDown");
  await page.waitForFunction(() => document.getElementById("f-window").value === String(7 * 86_400_000));
});

test("the owner creates a server, verifies, publishes, copies the config, an MCP client calls a tool, and the call shows in the activity", { timeout: 300_000 }, async () => {
  // Publishing needs a verified address: the emailed link, opened in this browser.
  const token = await new Client(w.url).linkToken("ada-dashboard@example.com", "/verify-email");
  await page.goto(`${w.url}/verify-email#token=${token}`);
  await page.getByText("Your email address is verified.").waitFor();
  await page.goto(`${w.url}/`);
  await page.getByRole("link", { name: "Petstore" }).click();
  await page.getByRole("button", { name: "Create a server" }).click();
  await page.waitForURL(/\/servers\/srv_/);
  await page.getByRole("heading", { name: "Verify and publish" }).waitFor();
  // The public switch says what it means before anything is saved.
  await page.getByLabel("Public: no access key needed").check();
  await page.getByText("Warning: anyone who finds the URL").waitFor();
  await page.getByLabel("Public: no access key needed").uncheck();
  await page.getByLabel("Authentication").selectOption("none");
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await page.getByRole("status").waitFor();
  await page.getByRole("button", { name: "Verify" }).click();
  await page.getByText("Verification: verified").waitFor();
  const findings = await page.getByRole("list", { name: "Verification findings" }).textContent();
  assert.match(findings, /probe \(pass\)/, findings);
  await page.getByRole("button", { name: "Publish" }).click();
  await page.getByText("Live", { exact: true }).waitFor();
  await page.getByText("The draft is the same as live version 1.").waitFor();
  await page.getByText("Versions (1)").click();
  assert.match(await page.getByRole("table", { name: "Versions" }).textContent(), /v1 live/);
  await page.getByRole("button", { name: "Create an access key" }).click();
  const key = await page.getByLabel("Your new key (copy it now)").inputValue();
  assert.match(key, /^fcp_sk_/);
  await noSeriousViolations("server");
  // The VS Code configuration, as copied from the page, is what the client uses.
  const vscode = JSON.parse(await page.getByLabel("VS Code (.vscode/mcp.json) configuration").textContent());
  const entry = Object.values(vscode.servers)[0];
  assert.equal(entry.headers.Authorization, `Bearer ${key}`);
  const { Client: McpClient } = await import("@modelcontextprotocol/sdk/client/index.js");
  const { StreamableHTTPClientTransport } = await import("@modelcontextprotocol/sdk/client/streamableHttp.js");
  const client = new McpClient({ name: "dashboard-e2e", version: "1" });
  await client.connect(new StreamableHTTPClientTransport(new URL(entry.url), { requestInit: { headers: entry.headers } }));
  const r = await client.callTool({ name: "getInventory", arguments: {} });
  assert.equal(r.isError, undefined, JSON.stringify(r));
  await client.close();
  // Revoking the key in the page ends it for clients.
  const prefix = key.slice(0, 12);
  await page.getByRole("button", { name: new RegExp(`^Revoke ${prefix}`) }).click();
  await page.getByRole("list", { name: "Access keys" }).waitFor({ state: "detached" });
  const revokedCall = await fetch(entry.url, { method: "POST", headers: { ...entry.headers, "content-type": "application/json", accept: "application/json, text/event-stream" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }) });
  let status = revokedCall.status;
  for (let i = 0; i < 20 && status !== 401; i++) {
    await new Promise((r) => setTimeout(r, 250));
    status = (await fetch(entry.url, { method: "POST", headers: { ...entry.headers, "content-type": "application/json", accept: "application/json, text/event-stream" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }) })).status;
  }
  assert.equal(status, 401, "a revoked key stops working");
  // The call is in the activity view, with the key's connection hash.
  await page.getByRole("link", { name: "Activity" }).click();
  await page.getByRole("table", { name: "Tool calls" }).getByText("getInventory").waitFor();
  assert.match(await page.getByLabel("Summary").textContent(), /1 calls/);
  await page.getByRole("table", { name: "Busiest tools" }).getByText("getInventory").waitFor();
  await page.locator(".chart canvas").nth(1).waitFor();
  await noSeriousViolations("activity");
  // Filtering by an outcome no call had empties the log and the summary.
  await page.getByLabel("Outcome").selectOption("denied");
  await page.getByText("No call in this window.").waitFor();
});

test("try it shows a tool's schema and the exact request, and sends it to the API", async () => {
  await page.goto(`${w.url}/`);
  await page.getByRole("link", { name: "Petstore" }).click();
  await page.getByLabel("Search tools").fill("getPetById");
  await page.getByRole("table", { name: "Tools" }).getByRole("button", { name: "getPetById" }).click();
  const tree = page.locator(".tree").first();
  await tree.getByText("petId").waitFor();
  assert.match(await tree.textContent(), /petId\s*integer\s*required/);
  await page.getByLabel(/^petId/).fill("7");
  await page.getByRole("button", { name: "Show the request" }).click();
  const plan = page.getByRole("region", { name: "Request plan" });
  await plan.getByText(`GET ${petApi}/v2/pet/7`).waitFor();
  // An argument of the wrong type is refused in the page, before anything is sent.
  await page.getByLabel(/^petId/).fill("seven");
  await page.getByRole("button", { name: "Show the request" }).click();
  await page.getByRole("alert").filter({ hasText: "petId must be a whole number" }).waitFor();
  await page.getByLabel(/^petId/).fill("7");
  await page.getByRole("button", { name: "Send it to the API" }).click();
  await plan.getByText("HTTP 200").waitFor();
  assert.match(await plan.textContent(), /"name":\s*"rex"/);
  await page.getByRole("button", { name: "Show the request" }).scrollIntoViewIfNeeded();
  await noSeriousViolations("try it", { top: false });
});

test("the OAuth wizard configures a provider preset and shows the callback to register", async () => {
  await page.goto(`${w.url}/`);
  await page.getByRole("link", { name: "Petstore" }).click();
  await page.getByRole("list", { name: "Servers" }).getByRole("link").first().click();
  await page.getByLabel("Authentication").selectOption("oauth");
  await page.getByLabel("Sign-in provider").selectOption("github");
  await page.getByLabel("Client ID").fill("Iv1.dashboard");
  await page.getByLabel("Scopes").fill("repo read:user");
  await page.getByLabel("Client secret").fill("dashboard-client-secret");
  await page.getByLabel("API origin").fill(petApi);
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await page.getByRole("status").waitFor();
  const callback = await page.getByText("Register this callback at the provider").textContent();
  assert.match(callback, new RegExp(`${w.url}/oauth/callback/srv_`));
  await page.reload();
  assert.equal(await page.getByLabel("Sign-in provider").inputValue(), "github");
  assert.match(await page.getByLabel("Replace the stored client secret").getAttribute("aria-describedby"), /hint/);
  // The secret never comes back to the page.
  assert.ok(!(await page.content()).includes("dashboard-client-secret"));
});

test("the Power Automate template makes a per-user-key server in one click", async () => {
  await page.goto(`${w.url}/`);
  await page.getByRole("button", { name: "Create a Power Automate server" }).click();
  await page.waitForURL(/\/servers\/srv_/);
  assert.equal(await page.getByLabel("Authentication").inputValue(), "user_key");
  assert.equal(await page.getByLabel("Sign-in provider").inputValue(), "entra");
  await page.goto(`${w.url}/`);
  await page.getByRole("list", { name: "Apps" }).getByRole("link", { name: "Power Automate" }).first().waitFor();
  await noSeriousViolations("home");
});

test("secrets are set write-only, listed by name and deleted", async () => {
  await page.goto(`${w.url}/secrets`);
  await page.getByRole("heading", { name: "Secrets" }).waitFor();
  await page.getByLabel("Name").fill("STRIPE_KEY");
  await page.getByLabel("Value").fill("sk_test_dashboard_value_123");
  await page.getByRole("button", { name: "Save secret" }).click();
  await page.getByRole("list", { name: "Secrets" }).getByText("STRIPE_KEY", { exact: true }).waitFor();
  assert.ok(!(await page.content()).includes("sk_test_dashboard_value_123"), "the value is never shown");
  await noSeriousViolations("secrets");
  await page.getByRole("button", { name: "Delete STRIPE_KEY" }).click();
  await page.getByText("No secret yet.").waitFor();
});

test("members are listed and an invitation is sent and withdrawn", async () => {
  await page.goto(`${w.url}/members`);
  await page.getByRole("table", { name: "Members" }).getByText("Ada (you)").waitFor();
  await page.getByLabel("Email to invite").fill("grace-dashboard@example.com");
  await page.getByRole("button", { name: "Send invitation" }).click();
  await page.getByRole("list", { name: "Invitations" }).getByText(/grace-dashboard@example.com as member/).waitFor();
  await noSeriousViolations("members");
  await page.getByRole("button", { name: "Withdraw grace-dashboard@example.com" }).click();
  await page.getByRole("list", { name: "Invitations" }).waitFor({ state: "detached" });
  // Grace accepts a new invitation from her own session; the owner makes her an admin, then
  // removes her.
  const grace = new Client(w.url);
  await grace.signup("grace-dashboard@example.com");
  await page.getByLabel("Email to invite").fill("grace-dashboard@example.com");
  await page.getByRole("button", { name: "Send invitation" }).click();
  await page.getByRole("list", { name: "Invitations" }).waitFor();
  const invite = await grace.linkToken("grace-dashboard@example.com", "/invitations/accept");
  assert.equal((await grace.post("/api/v1/invitations/accept", { token: invite })).status, 200);
  await page.reload();
  await page.getByLabel("Role of grace-dashboard@example.com").selectOption("admin");
  await page.waitForFunction(() => document.querySelector("[aria-label='Role of grace-dashboard@example.com']")?.value === "admin");
  const ws = (await grace.get("/api/v1/workspaces")).body.items.find((x) => x.name === "Ada's APIs");
  const graceRole = (await grace.get(`/api/v1/workspaces/${ws.id}/members`)).body.items.find((m) => m.email === "grace-dashboard@example.com").role;
  assert.equal(graceRole, "admin");
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Remove grace-dashboard@example.com" }).click();
  await page.getByRole("status").filter({ hasText: "grace-dashboard@example.com was removed." }).waitFor();
  assert.equal((await grace.get(`/api/v1/workspaces/${ws.id}/members`)).status, 404);
});

test("an agent's sign-in goes through the dashboard's sign-in and the consent page; the account lists and disconnects it", async () => {
  // The agent's side: a registered client, PKCE, and a callback that records the code.
  let code = null;
  // Only /cb counts: the browser also asks this origin for /favicon.ico, which must not erase the code.
  const callback = createServer((req, res) => { const u = new URL(req.url, "http://x"); if (u.pathname === "/cb") code = u.searchParams.get("code"); res.end("ok"); });
  await new Promise((r) => callback.listen(0, "127.0.0.1", r));
  const redirect = `http://127.0.0.1:${callback.address().port}/cb`;
  const reg = await (await fetch(`${w.url}/oauth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ client_name: "Dashboard agent", redirect_uris: [redirect] }) })).json();
  const verifier = randomBytes(32).toString("base64url");
  const auth = new URL(`${w.url}/oauth/authorize`);
  for (const [k, v] of Object.entries({ response_type: "code", client_id: reg.client_id, redirect_uri: redirect, code_challenge: createHash("sha256").update(verifier).digest("base64url"), code_challenge_method: "S256", state: "st", resource: `${w.url}/mcp` })) auth.searchParams.set(k, v);

  // Signed out, the browser lands on the sign-in page, which brings it back to the consent page.
  await page.goto(`${w.url}/`);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(`${w.url}/sign-in`);
  await page.goto(auth.toString());
  await page.waitForURL((u) => u.pathname === "/sign-in");
  await page.getByRole("note").filter({ hasText: "An app asked to connect to FlowCP" }).waitFor();
  await page.getByLabel("Email").fill("ada-dashboard@example.com");
  await page.getByLabel("Password").fill("correct horse battery staple");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((u) => u.pathname === "/oauth/authorize");
  await page.getByRole("heading", { name: "Connect an agent to FlowCP?" }).waitFor();
  assert.match(await page.locator("body").innerText(), /Dashboard agent wants to manage FlowCP as you, ada-dashboard@example\.com/);
  // The page's CSP (no script at all) stops axe: it is checked in a second tab that bypasses it.
  const axeContext = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 800 } });
  await axeContext.addCookies(await page.context().cookies());
  const main = page;
  page = await axeContext.newPage();
  await page.goto(main.url());
  await page.getByRole("heading", { name: "Connect an agent to FlowCP?" }).waitFor();
  await noSeriousViolations("agent consent");
  await axeContext.close();
  page = main;
  const options = await page.getByLabel("Workspace").locator("option").allInnerTexts();
  assert.ok(options.includes("Ada's APIs (owner)"), options.join());
  await page.getByLabel("Workspace").selectOption({ label: "Ada's APIs (owner)" });
  await page.getByRole("button", { name: "Allow" }).click();
  await page.waitForURL((u) => u.toString().startsWith(redirect));
  assert.ok(code, "the agent got its code");
  const t = await (await fetch(`${w.url}/oauth/token`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ grant_type: "authorization_code", code, client_id: reg.client_id, redirect_uri: redirect, code_verifier: verifier }).toString() })).json();
  const list = () => fetch(`${w.url}/mcp`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18", authorization: `Bearer ${t.access_token}` }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} }) });
  assert.equal((await list()).status, 200);
  callback.close();

  // The account page lists the agent with its workspace, and disconnects it.
  await page.goto(`${w.url}/account`);
  const row = page.getByRole("row").filter({ hasText: "Dashboard agent" });
  await row.getByText("Ada's APIs").waitFor();
  page.once("dialog", (d) => d.accept());
  await row.getByRole("button", { name: /^Disconnect/ }).click();
  await row.getByText(/^disconnected /).waitFor();
  assert.equal((await list()).status, 401);
});

test("an app follows its document in GitHub: connect, test, follow, sync a push, restore an earlier import", async () => {
  const doc = (ops) => JSON.stringify({
    openapi: "3.0.3", info: { title: "Dash API", version: "1" }, servers: [{ url: "https://api.example.com" }],
    paths: Object.fromEntries(ops.map((op) => [`/${op}`, { get: { operationId: op, summary: `Get ${op}`, responses: { 200: { description: "ok" } } } }])),
  });
  gh.addRepo("octo/dash", { files: { "api/openapi.json": doc(["ping"]) } });
  await page.goto(`${w.url}/`);
  await page.getByLabel("New app name").fill("Dash API");
  await page.getByRole("button", { name: "Create app" }).click();
  await page.getByRole("list", { name: "Apps" }).getByRole("link", { name: "Dash API" }).click();
  await page.waitForURL(/\/apps\//);
  const appPath = new URL(page.url()).pathname;
  // GitHub's consent (the fake approves at once) and back to this app.
  await page.getByRole("button", { name: "Connect GitHub" }).click();
  await page.waitForURL((u) => u.pathname === appPath && u.searchParams.get("git") === "connected");
  await page.getByRole("status").filter({ hasText: "GitHub is connected." }).waitFor();
  await page.getByText("Connected to GitHub as octocat").waitFor();
  await page.getByLabel("Repository").fill("octo/dash");
  await page.getByLabel("Document path").fill("api/openapi.json");
  await page.getByRole("button", { name: "Test", exact: true }).click();
  await page.getByRole("region", { name: "Test result" }).getByText("The document imports: Dash API").waitFor();
  await page.getByRole("button", { name: "Follow", exact: true }).click();
  const card = page.getByLabel("Git source");
  await card.getByText("Follows octo/dash").waitFor();
  await card.getByText("pushes arrive by webhook").waitFor();
  await noSeriousViolations("git source", { top: false });
  // A push without a webhook delivery: "Sync now" imports it and the report names the commit.
  await gh.push("octo/dash", "main", { "api/openapi.json": doc(["ping", "pong"]) }, { message: "Add pong", author: "Grace", deliver: false });
  await card.getByRole("button", { name: "Sync now" }).click();
  await card.getByRole("status").filter({ hasText: "1 added" }).waitFor();
  await card.getByLabel("Last sync").getByText("by Grace: Add pong").waitFor();
  const history = page.getByRole("table", { name: "Imports" });
  await history.getByText("Grace: Add pong").waitFor();
  // Rollback: the first import's tools again.
  page.once("dialog", (d) => d.accept());
  await history.getByRole("button", { name: /^Restore/ }).last().click();
  await page.getByLabel("Import report").getByText("0 added, 1 removed").waitFor();
});

test("the account page changes the password, exports the data and deletes the account", async () => {
  await page.goto(`${w.url}/account`);
  await page.getByRole("heading", { name: "Your account", exact: true }).waitFor();
  await noSeriousViolations("account");
  await page.getByLabel("Display name").fill("Ada Lovelace");
  await page.getByRole("button", { name: "Save name" }).click();
  await page.locator("header").getByText("Ada Lovelace").waitFor();
  await page.getByLabel("Current password").fill("correct horse battery staple");
  await page.getByLabel("New password").fill("a brand new passphrase 42");
  await page.getByRole("button", { name: "Change password" }).click();
  await page.getByRole("status").filter({ hasText: "Password changed" }).waitFor();
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download the export" }).click()]);
  const exported = JSON.parse(readFileSync(await download.path(), "utf8"));
  assert.ok(JSON.stringify(exported).includes("ada-dashboard@example.com"));
  assert.ok(!JSON.stringify(exported).includes("a brand new passphrase 42"));
  // A new address takes effect only once its emailed link is opened, signed in.
  await page.getByLabel("New email address").fill("ada-new@example.com");
  await page.getByLabel("Your password").fill("a brand new passphrase 42");
  await page.getByRole("button", { name: "Send the confirmation link" }).click();
  await page.getByRole("status").filter({ hasText: "on its way to ada-new@example.com" }).waitFor();
  assert.match(await page.locator("section > p").first().textContent(), /ada-dashboard@example\.com/);
  const token = await new Client(w.url).linkToken("ada-new@example.com", "/confirm-email");
  await page.goto(`${w.url}/confirm-email#token=${token}`);
  await page.getByText("Your account now uses ada-new@example.com.").waitFor();
  await page.goto(`${w.url}/account`);
  await page.locator("section > p").first().getByText("ada-new@example.com").waitFor();
  page.once("dialog", (d) => d.accept());
  await page.getByLabel("Password to confirm").fill("a brand new passphrase 42");
  await page.getByRole("button", { name: "Delete my account" }).click();
  await page.waitForURL(`${w.url}/sign-in`);
  await page.getByLabel("Email").fill("ada-new@example.com");
  await page.getByLabel("Password").fill("a brand new passphrase 42");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").waitFor();
});
