// Issue 14 (first part): the owners' dashboard in a real browser — Debian's Chromium driven by
// playwright-core — against the Worker under wrangler dev. Sign up through the form (consent
// boxes), land in the workspace, create an app, sign out, sign back in; deep links and the
// legal pages; no console error; no serious or critical axe-core violation on these screens.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";
import { startWorker, testSecrets } from "./harness.mjs";

const CHROMIUM = process.env.FLOWCP_CHROMIUM ?? "/usr/bin/chromium";
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
let w, browser, page;
const errors = [];

before(async () => {
  w = await startWorker({ vars: { ...testSecrets(), FLOWCP_RATE_LIMITS: "off" } });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
});
after(async () => { await browser?.close(); await w?.stop(); w?.cleanup(); });

async function noSeriousViolations(what) {
  await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.help}`), [], `${what}: ${JSON.stringify(bad.map((v) => v.nodes.map((n) => n.target)))}`);
}

test("an owner signs up with the consent boxes, creates an app, signs out and back in", async () => {
  await page.goto(`${w.url}/`);
  await page.waitForURL(`${w.url}/sign-in`);
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
});
