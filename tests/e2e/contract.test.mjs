// The API keeps the promise its own OpenAPI document makes: one owner journey through the real
// Worker touches every documented operation with a successful call, plus a few deliberate
// errors, and every response is validated against the document with ajv (JSON Schema 2020-12,
// as OpenAPI 3.1 uses it). The test is stricter than the document: an object schema that lists
// its properties is closed here, so a field the Worker sends but the document does not declare
// fails the test — the document stays tolerant for its clients, the contract test does not.
// Violations are collected over the whole journey and reported once at the end.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { Client, connectAgent, sleep, startWorker, testSecrets } from "./harness.mjs";
import { startFakeUpstream } from "./fake-upstream.mjs";
import { githubVars, startFakeGitHub } from "./fake-github.mjs";

const DOC_ID = "flowcp-api";
const LOOSE = "x-contract-loose"; // top-level-open copies of components used as composition parts
const INLINE = "x-contract-inline"; // response schemas written inline in the document

const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const COMPOSITIONS = ["allOf", "anyOf", "oneOf"];
// Keywords whose value is one subschema, a map of subschemas, or a list of subschemas.
const ONE = ["additionalProperties", "unevaluatedProperties", "items", "contains", "not", "if", "then", "else",
  "propertyNames", "unevaluatedItems", "contentSchema"];
const MAP = ["properties", "patternProperties", "$defs", "dependentSchemas"];
const LIST = ["prefixItems", ...COMPOSITIONS];

/**
 * Closes every object schema of an OpenAPI 3.1 document's components for validation.
 * Returns { components, tighten(schema) }: `components` is a deep copy to register under
 * `$id: DOC_ID`; `tighten` closes a schema written inline in the document the same way.
 *
 * A plain object schema with `properties` and no `additionalProperties` gets
 * `additionalProperties: false` (maps that declare `additionalProperties` are left alone).
 * A schema that merges parts — `allOf`, a `$ref` next to other keywords, or `properties` next to
 * `oneOf`/`anyOf` — cannot close its parts (each would refuse the others' fields), so it gets
 * `unevaluatedProperties: false` itself, which sees the properties every part evaluated, and its
 * parts are used open at their top level (a `$ref` part points at an open copy under LOOSE).
 * A pure union (`oneOf` of complete variants, nothing beside it) keeps its variants closed.
 */
export function strictComponents(components = {}) {
  const source = components.schemas ?? {};
  const added = new WeakMap(); // node -> the closing keyword this function added to it
  const tight = {};
  const loose = {};
  const building = new Set();
  const COMPONENT = /^#\/components\/schemas\/([^/]+)$/;

  const tightComponent = (name) => {
    if (!(name in tight)) {
      if (building.has(name)) throw new Error(`schema ${name} composes itself through allOf/$ref`);
      building.add(name);
      tight[name] = tighten(source[name]);
      building.delete(name);
    }
    return tight[name];
  };

  // The same schema, open at its top level (and at the top level of its own parts).
  const loosen = (node) => {
    if (!isObj(node)) return node;
    const copy = { ...node };
    if (added.has(node)) delete copy[added.get(node)];
    const m = typeof copy.$ref === "string" && copy.$ref.match(COMPONENT);
    const name = m && unescapePointer(m[1]);
    if (m && name in source) {
      if (!(name in loose)) {
        loose[name] = {}; // placeholder: a recursive reference resolves to the copy being built
        loose[name] = loosen(tightComponent(name));
      }
      copy.$ref = `#/components/${LOOSE}/${m[1]}`;
    }
    for (const k of COMPOSITIONS) if (Array.isArray(copy[k])) copy[k] = copy[k].map(loosen);
    return copy;
  };

  function tighten(node) {
    if (Array.isArray(node)) return node.map(tighten);
    if (!isObj(node)) return node;
    const out = { ...node };
    for (const k of ONE) if (isObj(out[k])) out[k] = tighten(out[k]);
    for (const k of MAP) {
      if (isObj(out[k])) out[k] = Object.fromEntries(Object.entries(out[k]).map(([n, s]) => [n, tighten(s)]));
    }
    for (const k of LIST) if (Array.isArray(out[k])) out[k] = out[k].map(tighten);
    const hasProps = isObj(out.properties);
    const refBeside = typeof out.$ref === "string" && (hasProps || COMPOSITIONS.some((k) => k in out));
    const merging = Array.isArray(out.allOf) || refBeside || (hasProps && (Array.isArray(out.oneOf) || Array.isArray(out.anyOf)));
    if (merging) {
      if (typeof out.$ref === "string") out.$ref = loosen({ $ref: out.$ref }).$ref;
      if (Array.isArray(out.allOf)) out.allOf = out.allOf.map(loosen);
      if (hasProps || refBeside) for (const k of ["oneOf", "anyOf"]) if (Array.isArray(out[k])) out[k] = out[k].map(loosen);
    }
    const open = "additionalProperties" in out || "unevaluatedProperties" in out;
    if (!open && (merging || hasProps)) {
      const key = merging ? "unevaluatedProperties" : "additionalProperties";
      out[key] = false;
      added.set(out, key);
    }
    return out;
  }

  for (const name of Object.keys(source)) tightComponent(name);
  return { components: { ...structuredClone(components), schemas: tight, [LOOSE]: loose }, tighten };
}

function unescapePointer(token) {
  return decodeURIComponent(token).replace(/~1/g, "/").replace(/~0/g, "~");
}

/** Follows a local `$ref` of the document (for response objects that point at components). */
function deref(doc, v) {
  for (let i = 0; isObj(v) && typeof v.$ref === "string" && i < 10; i++) {
    if (!v.$ref.startsWith("#/")) throw new Error(`external $ref ${v.$ref} is not supported`);
    v = v.$ref.slice(2).split("/").map(unescapePointer).reduce((o, p) => o?.[p], doc);
  }
  return v;
}

/**
 * A checker for responses against an OpenAPI 3.1 document, strict as described above.
 * check(method, path, status, body, headers) returns a list of violation strings (empty when
 * the response keeps the contract) and counts the operation as exercised on a 2xx.
 */
export function contractChecker(doc) {
  const ajv = new Ajv2020({ strict: false, allErrors: true, logger: false });
  addFormats(ajv);
  const { components, tighten } = strictComponents(doc.components);
  const ops = []; // { method, template, segments, literals, op }
  for (const [template, item] of Object.entries(doc.paths ?? {})) {
    for (const [method, op] of Object.entries(item)) {
      if (!["get", "put", "post", "delete", "patch", "head", "options", "trace"].includes(method)) continue;
      const segments = template.split("/");
      ops.push({ method: method.toUpperCase(), template, segments, literals: segments.filter((s) => !/^\{.+\}$/.test(s)).length, op });
    }
  }
  // Every response schema is closed and registered with the components before anything is
  // compiled, so `#/components/...` references inside them resolve against the same document.
  // A schema ajv cannot compile (say a dangling $ref) is a violation of its own, not a crash.
  const inline = [];
  const where = new Map(); // response schema object -> its pointer inside DOC_ID
  for (const { op } of ops) {
    for (const resp of Object.values(op.responses ?? {})) {
      for (const media of Object.values(deref(doc, resp)?.content ?? {})) {
        const schema = media.schema;
        if (!isObj(schema) || where.has(schema)) continue;
        const plainRef = typeof schema.$ref === "string" && Object.keys(schema).length === 1 && /^#\/components\/schemas\/[^/]+$/.test(schema.$ref);
        if (plainRef) where.set(schema, schema.$ref);
        else {
          inline.push(tighten(schema));
          where.set(schema, `#/components/${INLINE}/${inline.length - 1}`);
        }
      }
    }
  }
  ajv.addSchema({ $id: DOC_ID, components: { ...components, [INLINE]: inline } });
  const validators = new Map();
  const validatorFor = (schema) => {
    if (!validators.has(schema)) {
      try {
        validators.set(schema, ajv.compile({ $ref: `${DOC_ID}${where.get(schema)}` }));
      } catch (e) {
        validators.set(schema, Object.assign(() => false, { errors: [{ instancePath: "", message: `schema does not compile: ${e.message}` }] }));
      }
    }
    return validators.get(schema);
  };

  const exercised = new Set();
  let responses = 0;
  const find = (method, path) => {
    const segs = path.split("/");
    const fits = ops.filter((o) => o.method === method && o.segments.length === segs.length &&
      o.segments.every((s, i) => /^\{.+\}$/.test(s) ? segs[i] !== "" : s === segs[i]));
    // A concrete path beats a templated one (OpenAPI's own matching rule), e.g. /tools/bulk.
    return fits.sort((a, b) => b.literals - a.literals)[0];
  };

  const check = (method, rawPath, status, body, headers) => {
    const path = rawPath.split("?")[0];
    const found = find(method, path);
    if (!found) return [`${method} ${path} ${status}: no operation in the document matches`];
    responses++;
    const r = found.op.responses ?? {};
    const exact = r[String(status)] ?? r[`${String(status)[0]}XX`];
    // A success answered with a status the document does not list is checked against `default`
    // (usually the error shape), whose errors alone would not say why: the label does.
    const listed = Object.keys(r).filter((k) => k !== "default").join(", ");
    const where = `${method} ${found.template} ${status}` +
      (!exact && r.default && status < 400 ? ` (not documented: ${listed}; checked against default)` : "");
    if (status >= 200 && status < 300) exercised.add(`${found.method} ${found.template}`);
    const declared = deref(doc, exact ?? r.default);
    if (!declared) return [`${where}: status not documented and no default response`];
    const type = headers.get("content-type") ?? "";
    const length = headers.get("content-length");
    const hasBody = body !== null || (length !== null && length !== "0");
    if (status === 204) {
      return hasBody || type ? [`${where}: a 204 came with a body (content-type ${type || "none"}, length ${length})`] : [];
    }
    const media = declared.content?.["application/json"];
    if (!declared.content || Object.keys(declared.content).length === 0) {
      return hasBody ? [`${where}: the document declares no content, but a body arrived (${type})`] : [];
    }
    if (!media) return [`${where}: the document declares ${Object.keys(declared.content).join(", ")}, not application/json`];
    if (!/^application\/json\b/.test(type)) return [`${where}: content-type is ${type || "missing"}, the document says application/json`];
    if (!hasBody || typeof body === "string") return [`${where}: the body is not JSON (${JSON.stringify(body)?.slice(0, 80)})`];
    if (!media.schema) return [];
    const validate = validatorFor(media.schema);
    if (validate(body)) return [];
    return validate.errors.map((e) => {
      const extra = e.params?.additionalProperty ?? e.params?.unevaluatedProperty ?? e.params?.allowedValues;
      return `${where}: ${e.instancePath || "/"} ${e.message}${extra !== undefined ? ` (${JSON.stringify(extra)})` : ""}`;
    });
  };

  const missing = () => ops.map((o) => `${o.method} ${o.template}`).filter((k) => !exercised.has(k));
  return { check, missing, operations: ops.length, responses: () => responses };
}

// ---------------------------------------------------------------------------------------------

const UPSTREAM_KEY = "sk_test_contract_" + Math.random().toString(36).slice(2);
const PASSWORD = "contract password " + Math.random().toString(36).slice(2);
const NEW_PASSWORD = "contract password two " + Math.random().toString(36).slice(2);
const SECRET_VALUE = "sk_live_contract_" + Math.random().toString(36).slice(2);
let w, up, gh, doc, contract;
const violations = [];
// Every answer's raw text, for the leak scan at the end: a field the document declares can
// still carry a secret (a schema derived from the same types would declare it too).
const answers = [];
let owner, member, anon;

/** A dashboard client whose every response is checked against the document. */
function client() {
  const c = new Client(w.url);
  const orig = c.call.bind(c);
  c.call = async (method, path, opts) => {
    const r = await orig(method, path, opts);
    violations.push(...contract.check(method, path, r.status, r.body, r.headers));
    answers.push({ what: `${method} ${path} ${r.status}`, text: JSON.stringify(r.body ?? null), cookies: [c.cookie] });
    return r;
  };
  return c;
}

/** Asserts the status of one call; the message carries the body, for a journey step that broke. */
function expect(r, status, what) {
  assert.equal(r.status, status, `${what}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

before(async () => {
  up = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  gh = await startFakeGitHub();
  w = await startWorker({ vars: { ...testSecrets(), ...githubVars(gh) } });
  // The document is fetched once, raw, so its own answer is checked like every other below.
  const r = await fetch(`${w.url}/api/v1/openapi.json`);
  assert.equal(r.status, 200);
  doc = await r.json();
  contract = contractChecker(doc);
  violations.push(...contract.check("GET", "/api/v1/openapi.json", r.status, doc, r.headers));
  owner = client();
  member = client();
  anon = client();
});
after(async () => { await w?.stop(); w?.cleanup(); await up?.close(); await gh?.close(); });

let ws, scratchWs, memberId, appA, appB, tools, srv, spare, accessKey;
const P = (p) => `/api/v1/workspaces/${ws}${p}`;

// Issue 15 (no drift): FlowCP's own MCP tools are decided per operation of the live document;
// a route added without a decision in src/mcp/management_tools.json fails here too.
test("the management curation decides every operation of the live document, and nothing else", async () => {
  const { readFileSync } = await import("node:fs");
  const curation = JSON.parse(readFileSync(new URL("../../src/mcp/management_tools.json", import.meta.url), "utf8"));
  delete curation._about;
  const live = new Set(Object.values(doc.paths).flatMap((item) => Object.values(item).map((op) => op.operationId)));
  const decided = new Set(Object.keys(curation));
  assert.deepEqual([...live].filter((op) => !decided.has(op)), [], "operations without a decision");
  assert.deepEqual([...decided].filter((op) => !live.has(op)), [], "decisions without an operation");
  for (const op of ["deleteAccount", "changePassword", "signup"]) assert.ok(curation[op].exclude, `${op} must stay excluded`);
});

test("accounts: sign up, log in and out, me, change password; 401 without a session", async () => {
  expect(await anon.get("/api/v1/me"), 401, "me without a session");
  const s = await owner.signup("contract-owner@example.com", PASSWORD, "Contract");
  ws = s.workspace.id;
  memberId = (await member.signup("contract-member@example.com", PASSWORD, "Member's own")).user.id;
  expect(await anon.post("/api/v1/auth/signup", { email: "x@example.com", password: PASSWORD }), 400, "signup with missing fields");
  const late = client();
  await late.signup("contract-late@example.com", PASSWORD, "Late", { verify: false });
  expect(await late.post("/api/v1/me/verification"), 202, "resend the verification link");
  await late.verifyEmail("contract-late@example.com");
  expect(await late.post("/api/v1/me/verification"), 409, "resend when verified");
  expect(await anon.post("/api/v1/auth/verify-email", { token: "no-such-token" }), 401, "a link without a session");
  expect(await late.post("/api/v1/auth/verify-email", { token: "no-such-token" }), 404, "an unknown link");
  expect(await anon.post("/api/v1/auth/password-reset", { email: "contract-late@example.com" }), 202, "ask for a reset");
  const resetToken = await anon.linkToken("contract-late@example.com", "/reset-password");
  expect(await anon.post("/api/v1/auth/password-reset/confirm", { token: resetToken, new_password: NEW_PASSWORD }), 204, "reset");
  // The reset ended late's sessions: sign in again, then rename and move the account.
  expect(await late.post("/api/v1/auth/login", { email: "contract-late@example.com", password: NEW_PASSWORD }), 200, "login after the reset");
  expect(await late.patch("/api/v1/me", { display_name: "Late Comer" }), 200, "change the display name");
  expect(await late.patch("/api/v1/me", { display_name: "" }), 422, "an empty display name");
  expect(await late.post("/api/v1/me/email", { new_email: "contract-moved@example.com", current_password: "not it" }), 403, "address change, wrong password");
  expect(await late.post("/api/v1/me/email", { new_email: "contract-moved@example.com", current_password: NEW_PASSWORD }), 202, "ask to change the address");
  const moveToken = await late.linkToken("contract-moved@example.com", "/confirm-email");
  expect(await late.post("/api/v1/auth/confirm-email", { token: moveToken }), 200, "confirm the new address");
  expect(await late.post("/api/v1/auth/confirm-email", { token: moveToken }), 404, "a used address-change link");
  // Agents connected to FlowCP's own MCP server as this account.
  expect(await late.get("/api/v1/me/connections"), 200, "no agent connections");
  const lateWs = expect(await late.get("/api/v1/workspaces"), 200, "late's workspaces").items[0].id;
  await connectAgent(w.url, late, lateWs, { clientName: "Contract agent" });
  const agents = expect(await late.get("/api/v1/me/connections"), 200, "agent connections").items;
  assert.equal(agents.length, 1);
  expect(await late.del("/api/v1/me/connections/0000000000000000"), 404, "an unknown agent connection");
  expect(await late.del(`/api/v1/me/connections/${agents[0].connection_hash}`), 204, "disconnect an agent");
  expect(await anon.post("/api/v1/auth/login", { email: "contract-owner@example.com", password: "wrong password here" }), 401, "wrong login");
  const second = client();
  expect(await second.post("/api/v1/auth/login", { email: "contract-owner@example.com", password: PASSWORD }), 200, "login");
  expect(await second.post("/api/v1/auth/logout"), 204, "logout");
  expect(await owner.get("/api/v1/me"), 200, "me");
  expect(await owner.post("/api/v1/me/password", { current_password: PASSWORD, new_password: "short" }), 422, "weak password");
  expect(await owner.post("/api/v1/me/password", { current_password: PASSWORD, new_password: NEW_PASSWORD }), 200, "change password");
});

test("workspaces and members", async () => {
  expect(await owner.get("/api/v1/workspaces"), 200, "list workspaces");
  expect(await owner.post("/api/v1/workspaces", { name: "Scratch", extra: 1 }), 400, "unknown field");
  scratchWs = expect(await owner.post("/api/v1/workspaces", { name: "Scratch" }), 201, "create workspace").id;
  expect(await owner.get(P("")), 200, "get workspace");
  const inv = expect(await owner.post(P("/invitations"), { email: "contract-member@example.com", role: "member" }), 202, "invite");
  expect(await owner.get(P("/invitations")), 200, "list invitations");
  const token = await member.linkToken("contract-member@example.com", "/invitations/accept");
  expect(await member.post("/api/v1/invitations/accept", { token }), 200, "accept invitation");
  const spareInv = expect(await owner.post(P("/invitations"), { email: "contract-spare@example.com", role: "admin" }), 202, "invite again");
  assert.notEqual(spareInv.id, inv.id);
  expect(await owner.del(P(`/invitations/${spareInv.id}`)), 204, "withdraw invitation");
  expect(await owner.get(P("/members")), 200, "list members");
  expect(await owner.patch(P(`/members/${memberId}`), { role: "admin" }), 200, "change role");
  expect(await owner.del(P(`/members/${memberId}`)), 204, "remove member");
  const renamed = expect(await owner.patch(`/api/v1/workspaces/${ws}`, { audit_retention_days: 90 }), 200, "set the audit retention");
  assert.equal(renamed.audit_retention_days, 90);
  expect(await owner.patch(`/api/v1/workspaces/${ws}`, { audit_retention_days: 365 }), 400, "a retention over 90 days");
  expect(await owner.patch(`/api/v1/workspaces/${ws}`, { audit_retention_days: 30 }), 200, "set the audit retention back");
  assert.ok(expect(await owner.get("/api/v1/templates"), 200, "list templates").items.length >= 1);
  expect(await anon.get("/api/v1/templates"), 401, "templates need a session");
  expect(await owner.post(P("/templates/power-automate"), { tenant: "x/../evil" }), 422, "a bad tenant makes nothing");
  const fromTemplate = expect(await owner.post(P("/templates/power-automate"), {}), 201, "an app and a server from a template");
  expect(await owner.del(P(`/apps/${fromTemplate.app_id}`)), 204, "delete the template's app");
  expect(await owner.post(P("/templates/power-automate"), { surprise: 1 }), 400, "unknown fields are refused");
  const plan = expect(await owner.get(P("/plan")), 200, "the plan and this month's use");
  assert.equal(plan.plan, null, "the local deployment sets no default plan: unmetered");
  assert.match(plan.month, /^\d{4}-\d{2}$/);
});

test("apps: create, page through, get, rename, delete; 404 on an unknown id", async () => {
  appA = expect(await owner.post(P("/apps"), { name: "Widgets" }), 201, "create app");
  appB = expect(await owner.post(P("/apps"), { name: "Uploaded" }), 201, "create app");
  const page1 = expect(await owner.get(P("/apps?limit=1")), 200, "apps page 1");
  assert.equal(typeof page1.next_cursor, "string");
  const page2 = expect(await owner.get(P(`/apps?limit=1&cursor=${page1.next_cursor}`)), 200, "apps page 2");
  assert.equal(page2.next_cursor, null);
  expect(await owner.get(P("/apps")), 200, "list apps");
  expect(await owner.get(P(`/apps/${appA.id}`)), 200, "get app");
  expect(await owner.patch(P(`/apps/${appA.id}`), { name: "Widgets API" }), 200, "rename app");
  expect(await owner.get(P("/apps/app_doesnotexist")), 404, "unknown app");
  const temp = expect(await owner.post(P("/apps"), { name: "Temporary" }), 201, "create app");
  expect(await owner.del(P(`/apps/${temp.id}`)), 204, "delete app");
});

test("imports: by URL from the fake upstream and by JSON upload; history", async () => {
  expect(await owner.post(P(`/apps/${appA.id}/imports`), { url: `${up.url}/openapi.json` }), 201, "import by URL");
  const document = {
    openapi: "3.1.0",
    info: { title: "Uploaded", version: "1" },
    servers: [{ url: "https://api.example.com" }],
    paths: { "/ping": { get: { operationId: "ping", summary: "Ping", responses: { 200: { description: "ok" } } } } },
  };
  expect(await owner.post(P(`/apps/${appB.id}/imports`), document), 201, "import by upload");
  expect(await owner.post(P(`/apps/${appB.id}/imports`), "{}", { contentType: "text/html" }), 415, "wrong media type");
  expect(await owner.get(P(`/apps/${appA.id}/imports`)), 200, "import history");
  expect(await owner.get(P(`/apps/${appB.id}/imports`)), 200, "import history");
});

test("tools: list with filters and pages, curate one, bulk enable/disable", async () => {
  tools = expect(await owner.get(P(`/apps/${appA.id}/tools`)), 200, "list tools").items;
  assert.deepEqual(tools.map((t) => t.name), ["createWidget", "getWidget", "listWidgets"]);
  expect(await owner.get(P(`/apps/${appA.id}/tools?include=schema`)), 200, "tools with schema");
  expect(await owner.get(P(`/apps/${appA.id}/tools?enabled=true`)), 200, "enabled tools");
  expect(await owner.get(P(`/apps/${appA.id}/tools?q=widget`)), 200, "tool search");
  const page = expect(await owner.get(P(`/apps/${appA.id}/tools?limit=1`)), 200, "tools page");
  assert.equal(typeof page.next_cursor, "string");
  const get = tools.find((t) => t.name === "getWidget");
  expect(await owner.patch(P(`/apps/${appA.id}/tools/${get.id}`), { name: "fetch_widget", description: "Fetch one widget." }), 200, "curate");
  expect(await owner.patch(P(`/apps/${appA.id}/tools/${get.id}`), { description: null }), 200, "restore description");
  expect(await owner.patch(P(`/apps/${appA.id}/tools/${get.id}`), { name: "has space" }), 422, "bad tool name");
  const create = tools.find((t) => t.name === "createWidget");
  expect(await owner.post(P(`/apps/${appA.id}/tools/bulk`), { tool_ids: [create.id], enabled: false }), 200, "bulk disable");
});

test("servers: configure api_key auth, credential, verify, publish, keys, an MCP call, unpublish, delete", async () => {
  srv = expect(await owner.post(P("/servers"), { app_id: appA.id, name: "Widgets MCP" }), 201, "create server");
  spare = expect(await owner.post(P("/servers"), { app_id: appB.id }), 201, "create server");
  expect(await owner.get(P("/servers")), 200, "list servers");
  expect(await owner.get(P(`/servers/${srv.id}`)), 200, "get server");
  expect(await owner.patch(P(`/servers/${srv.id}`), { auth_mode: "api_key", auth_config: { in: "header", name: "X-Api-Key" } }), 200, "configure");
  expect(await owner.patch(P(`/servers/${srv.id}`), { auth_mode: "nonsense" }), 422, "bad auth mode");
  expect(await owner.post(P(`/servers/${spare.id}/publish`)), 409, "publish unverified");
  expect(await owner.put(P(`/servers/${srv.id}/credential`), { value: UPSTREAM_KEY }), 409, "credential without a confirmed origin");
  expect(await owner.put(P(`/servers/${srv.id}/credential`), { value: UPSTREAM_KEY, origin: up.url }), 200, "set credential");
  const v = expect(await owner.post(P(`/servers/${srv.id}/verify`)), 200, "verify");
  assert.equal(v.state, "verified", JSON.stringify(v));
  expect(await owner.post(P(`/servers/${srv.id}/publish`)), 200, "publish");
  const onboarded = expect(await owner.post(P("/onboard"), { url: `${up.url}/openapi.json`, name: "Onboarded", read_only: true, credential: UPSTREAM_KEY, credential_origin: up.url }), 200, "onboard in one call");
  assert.equal(onboarded.published, true, JSON.stringify(onboarded.steps));
  expect(await owner.post(P("/onboard"), { url: `${up.url}/openapi.json`, auth_mode: "oauth" }), 400, "onboard with oauth");
  const key = expect(await owner.post(P(`/servers/${srv.id}/keys`), { name: "laptop" }), 201, "create key");
  accessKey = key.key;
  expect(await owner.post(P(`/servers/${srv.id}/keys`)), 201, "create key without a body");
  expect(await owner.get(P(`/servers/${srv.id}/keys`)), 200, "list keys");
  // The export while a credential, a secret and access keys are live: it must name them and
  // hold none of their values (checked with every other answer at the end).
  expect(await owner.put(P("/secrets/LIVE_KEY"), { value: SECRET_VALUE }), 200, "put a live secret");
  const exported = expect(await owner.get("/api/v1/me/export"), 200, "export with live secrets");
  const exportedWs = exported.workspaces.find((x) => x.servers.some((s) => s.server.id === srv.id));
  assert.ok(exportedWs.servers.find((s) => s.server.id === srv.id).credential_set, "the export says the credential is set");
  assert.ok(exportedWs.secrets.some((s) => s.name === "LIVE_KEY"), "the export names the secret");

  // Two audited tool calls, so the audit list has a row and a page with a cursor.
  await mcp("initialize", { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "contract", version: "1" } });
  for (let i = 0; i < 2; i++) {
    const call = await mcp("tools/call", { name: "listWidgets", arguments: {} });
    assert.equal(call.result?.isError, undefined, JSON.stringify(call));
  }
  let rows = [];
  for (let attempt = 0; attempt < 50 && rows.length < 2; attempt++) {
    rows = expect(await owner.get(P("/audit")), 200, "audit").items;
    if (rows.length < 2) await sleep(200);
  }
  assert.equal(rows.length, 2, "the tool calls were not audited");
  const auditPage = expect(await owner.get(P("/audit?limit=1")), 200, "audit page");
  assert.equal(typeof auditPage.next_cursor, "string");
  expect(await owner.get(P("/audit?outcome=sideways")), 400, "bad audit filter");
  const activity = expect(await owner.get(P("/activity")), 200, "activity");
  assert.equal(activity.total.calls, 2, JSON.stringify(activity));
  expect(await owner.get(P(`/activity?server=${srv.id}&tool=listWidgets&since=${Date.now() - 3_600_000}&bucket=60000`)), 200, "activity, filtered");
  expect(await owner.get(P("/activity?since=5&until=5")), 400, "an empty activity window");
  const versions = expect(await owner.get(P(`/servers/${srv.id}/versions`)), 200, "versions");
  assert.ok(versions.live_version >= 1 && versions.versions.length >= 1, JSON.stringify(versions));
  const plan = expect(await owner.post(P(`/servers/${srv.id}/try`), { tool: "listWidgets" }), 200, "try: the request plan");
  assert.ok(plan.request.url.startsWith(up.url), JSON.stringify(plan));
  expect(await owner.post(P(`/servers/${srv.id}/try`), { tool: "listWidgets", run: true }), 200, "try: run it");
  expect(await owner.post(P(`/servers/${srv.id}/try`), { tool: "noSuchTool" }), 404, "try an unknown tool");

  expect(await owner.del(P(`/servers/${srv.id}/credential`)), 200, "clear credential");
  expect(await owner.post(P(`/servers/${srv.id}/unpublish`)), 200, "unpublish");
  expect(await owner.del(P(`/servers/${srv.id}/keys/${key.id}`)), 204, "revoke key");
  expect(await owner.del(P(`/servers/${spare.id}`)), 204, "delete server");
});

/** One JSON-RPC request to the published server with the access key (JSON or SSE answer). */
async function mcp(method, params) {
  const r = await fetch(srv.mcp_url, {
    method: "POST",
    headers: {
      accept: "application/json, text/event-stream",
      "content-type": "application/json",
      "mcp-protocol-version": "2025-06-18",
      authorization: `Bearer ${accessKey}`,
    },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const text = await r.text();
  assert.equal(r.status, 200, `${method}: ${r.status} ${text}`);
  const data = text.trimStart().startsWith("{") ? text : text.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("");
  return JSON.parse(data);
}

test("oauth connections: an end user's sign-in appears in the owner's list and can be revoked", async () => {
  // A minimal provider on 127.0.0.1: it signs the user in at once and issues a token.
  const { createServer } = await import("node:http");
  const idp = createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/authorize") {
      const back = new URL(url.searchParams.get("redirect_uri"));
      back.searchParams.set("code", "c");
      back.searchParams.set("state", url.searchParams.get("state"));
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    req.resume();
    req.on("end", () => { res.writeHead(200, { "content-type": "application/json" }); res.end(JSON.stringify({ access_token: "user-token", expires_in: 3600 })); });
  });
  await new Promise((r) => idp.listen(0, "127.0.0.1", r));
  const idpUrl = `http://127.0.0.1:${idp.address().port}`;
  try {
    const s = expect(await owner.post(P("/servers"), { app_id: appA.id, name: "Widgets as you" }), 201, "create oauth server");
    expect(await owner.patch(P(`/servers/${s.id}`), { auth_mode: "oauth", auth_config: { authorize_url: `${idpUrl}/authorize`, token_url: `${idpUrl}/token`, client_id: "owner-app", scopes: ["read"] } }), 200, "configure oauth");
    expect(await owner.put(P(`/servers/${s.id}/credential`), { value: "owner-client-secret", origin: up.url }), 200, "set client secret");
    expect(await owner.post(P(`/servers/${s.id}/verify`)), 200, "verify oauth server");
    expect(await owner.post(P(`/servers/${s.id}/publish`)), 200, "publish oauth server");
    const reg = await fetch(`${w.url}/oauth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ client_name: "contract client", redirect_uris: ["http://localhost/cb"] }) });
    const clientId = (await reg.json()).client_id;
    const q = new URLSearchParams({ response_type: "code", client_id: clientId, redirect_uri: "http://localhost:9/cb", code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", code_challenge_method: "S256", resource: s.mcp_url });
    const page = await fetch(`${w.url}/oauth/authorize?${q}`, { redirect: "manual" });
    const ticket = (await page.text()).match(/name="ticket" value="([^"]+)"/)[1];
    const decided = await fetch(`${w.url}/oauth/authorize`, { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded", cookie: page.headers.get("set-cookie").split(";")[0] }, body: new URLSearchParams({ ticket, decision: "approve" }).toString() });
    const stateCookie = decided.headers.getSetCookie().map((c) => c.split(";")[0]).find((c) => c.startsWith("__Host-fcp_state="));
    const callback = (await fetch(decided.headers.get("location"), { redirect: "manual" })).headers.get("location");
    const back = await fetch(callback, { redirect: "manual", headers: { cookie: stateCookie } });
    assert.equal(back.status, 302);
    const conns = expect(await owner.get(P(`/servers/${s.id}/connections`)), 200, "list connections").items;
    assert.equal(conns.length, 1);
    assert.equal(conns[0].client_name, "contract client");
    expect(await owner.del(P(`/servers/${s.id}/connections/${conns[0].connection_hash}`)), 204, "revoke a connection");
    expect(await owner.del(P(`/servers/${s.id}/connections/ffffffffffffffff`)), 404, "revoke an unknown connection");
    assert.ok(expect(await owner.get(P(`/servers/${s.id}/connections`)), 200, "list connections").items[0].revoked_at);
  } finally {
    await new Promise((r) => idp.close(r));
  }
});

test("key users: an end user's portal sign-in appears in the owner's list and can be revoked", async () => {
  // A minimal OpenID provider on 127.0.0.1: it signs the user in at once and names them.
  const { createServer } = await import("node:http");
  const idp = createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/authorize") {
      const back = new URL(url.searchParams.get("redirect_uri"));
      back.searchParams.set("code", "c");
      back.searchParams.set("state", url.searchParams.get("state"));
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    req.resume();
    const idToken = ["{}", JSON.stringify({ iss: "https://idp.example", sub: "u-1", aud: "owner-app" }), ""].map((x) => Buffer.from(x).toString("base64url")).join(".");
    req.on("end", () => { res.writeHead(200, { "content-type": "application/json" }); res.end(JSON.stringify({ access_token: "user-token", refresh_token: "user-refresh", expires_in: 3600, id_token: idToken })); });
  });
  await new Promise((r) => idp.listen(0, "127.0.0.1", r));
  const idpUrl = `http://127.0.0.1:${idp.address().port}`;
  try {
    const s = expect(await owner.post(P("/servers"), { app_id: appA.id, name: "Widgets with keys" }), 201, "create user_key server");
    expect(await owner.patch(P(`/servers/${s.id}`), { auth_mode: "user_key", auth_config: { authorize_url: `${idpUrl}/authorize`, token_url: `${idpUrl}/token`, client_id: "owner-app", scopes: ["read"] } }), 200, "configure user_key");
    expect(await owner.put(P(`/servers/${s.id}/credential`), { value: "owner-client-secret", origin: up.url }), 200, "set client secret");
    expect(await owner.post(P(`/servers/${s.id}/verify`)), 200, "verify user_key server");
    expect(await owner.post(P(`/servers/${s.id}/publish`)), 200, "publish user_key server");
    expect(await owner.get(P(`/servers/${s.id}/key-users`)), 200, "no key users yet");
    const start = await fetch(`${w.url}/oauth/portal/${s.id}/sign-in`, { redirect: "manual" });
    const stateCookie = start.headers.get("set-cookie").split(";")[0];
    const callback = (await fetch(start.headers.get("location"), { redirect: "manual" })).headers.get("location");
    const back = await fetch(callback, { redirect: "manual", headers: { cookie: stateCookie } });
    assert.equal(back.status, 302, await back.text());
    const users = expect(await owner.get(P(`/servers/${s.id}/key-users`)), 200, "list key users").items;
    assert.equal(users.length, 1);
    assert.equal(users[0].status, "active");
    assert.deepEqual(Object.keys(users[0]).sort(), ["calls_30d", "created_at", "key_issued_at", "signed_in_at", "status", "user_hash"]);
    expect(await owner.del(P(`/servers/${s.id}/key-users/${users[0].user_hash}`)), 204, "revoke a key user");
    expect(await owner.del(P(`/servers/${s.id}/key-users/ffffffffffffffff`)), 404, "revoke an unknown key user");
    assert.equal(expect(await owner.get(P(`/servers/${s.id}/key-users`)), 200, "list key users").items[0].status, "revoked");
  } finally {
    await new Promise((r) => idp.close(r));
  }
});

test("git: connect GitHub, test, follow a document, sync, rollback, stop following, disconnect", async () => {
  const api = (ops) => JSON.stringify({
    openapi: "3.1.0", info: { title: "Git API", version: "1" }, servers: [{ url: "https://api.example.com" }],
    paths: Object.fromEntries(ops.map((op) => [`/${op}`, { get: { operationId: op, responses: { 200: { description: "ok" } } } }])),
  });
  gh.addRepo("contract/api", { files: { "openapi.json": api(["ping"]) } });
  expect(await owner.post(P("/git/connections"), { provider: "gitlab" }), 422, "an unknown provider");
  const started = expect(await owner.post(P("/git/connections"), { provider: "github", return_to_app: appB.id }), 201, "connect GitHub");
  // The browser: GitHub's consent (auto-approved by the fake), then FlowCP's callback, which is
  // not an API operation (a redirect back to the dashboard).
  const consent = await fetch(started.authorize_url, { redirect: "manual" });
  const back = new URL(consent.headers.get("location"));
  const browser = new Client(w.url);
  browser.cookie = owner.cookie;
  const landed = await browser.call("GET", back.pathname + back.search);
  assert.equal(landed.headers.get("location"), `/apps/${appB.id}?git=connected`);
  const conn = started.connection.id;
  assert.equal(expect(await owner.get(P("/git/connections")), 200, "list git connections").items[0].status, "active");
  const tested = expect(await owner.post(P("/git/test"), { connection_id: conn, repo: "contract/api", branch: "main", path: "openapi.json" }), 200, "test a git source");
  assert.equal(tested.file.ok, true);
  expect(await owner.put(P(`/apps/${appB.id}/source`), { connection_id: conn, repo: "contract/api", branch: "main", path: "a/../b.json" }), 422, "a path with ..");
  expect(await owner.put(P(`/apps/${appB.id}/source`), { connection_id: conn, repo: "contract/api", branch: "main", path: "openapi.json" }), 200, "follow a document");
  expect(await owner.get(P(`/apps/${appB.id}/source`)), 200, "the source");
  expect(await owner.patch(P(`/apps/${appB.id}/source`), { auto_publish: true }), 200, "auto-publish on");
  await gh.push("contract/api", "main", { "openapi.json": api(["ping", "pong"]) }, { deliver: false });
  assert.equal(expect(await owner.post(P(`/apps/${appB.id}/source/sync`)), 200, "sync now").outcome, "imported");
  const imports = expect(await owner.get(P(`/apps/${appB.id}/imports`)), 200, "imports").items;
  expect(await owner.post(P(`/apps/${appB.id}/imports/${imports.at(-1).id}/restore`)), 201, "rollback");
  expect(await owner.del(P(`/apps/${appB.id}/source`)), 204, "stop following");
  expect(await owner.get(P(`/apps/${appB.id}/source`)), 404, "no source");
  expect(await owner.del(P(`/git/connections/${conn}`)), 204, "disconnect");
});

test("secrets: put, list, delete", async () => {
  expect(await owner.put(P("/secrets/STRIPE_KEY"), { value: "sk_live_contract" }), 200, "put secret");
  expect(await owner.get(P("/secrets")), 200, "list secrets");
  expect(await owner.del(P("/secrets/STRIPE_KEY")), 204, "delete secret");
  expect(await owner.del(P("/secrets/STRIPE_KEY")), 404, "delete it again");
});

test("data rights: export, delete workspaces, delete the account (last)", async () => {
  expect(await owner.get("/api/v1/me/export"), 200, "export");
  expect(await owner.del(P(`/servers/${srv.id}`)), 204, "delete server");
  expect(await owner.del(`/api/v1/workspaces/${scratchWs}`), 204, "delete workspace");
  expect(await owner.del(P("")), 204, "delete workspace");
  expect(await owner.del("/api/v1/me", { password: "not the password" }), 403, "delete account, wrong password");
  expect(await owner.del("/api/v1/me", { password: NEW_PASSWORD }), 204, "delete account");
  expect(await owner.get("/api/v1/me"), 401, "me after deletion");
  expect(await member.get("/api/v1/openapi.json"), 200, "the document through a client");
});

// No answer carries a password, the upstream credential, a secret's value, a session cookie,
// a KV key of a sealed value, or an access key (except the one answer that creates it).
test("no answer of the journey carries a secret value", () => {
  const forbidden = [UPSTREAM_KEY, PASSWORD, NEW_PASSWORD, SECRET_VALUE, "sk_live_contract", "cred:srv_", "wsec:", "akey:",
    gh.clientSecret, ...gh.tokens.flatMap((t) => [t.access_token, t.refresh_token].filter(Boolean))];
  const leaks = [];
  for (const a of answers) {
    for (const f of forbidden) if (a.text.includes(f)) leaks.push(`${a.what} carries ${f.slice(0, 12)}…`);
    for (const c of a.cookies) {
      const value = c?.split("=")[1];
      if (value && value.length > 16 && a.text.includes(value)) leaks.push(`${a.what} carries the session cookie`);
    }
    if (accessKey && a.text.includes(accessKey) && !/^POST \S+\/keys 201$/.test(a.what)) leaks.push(`${a.what} carries the access key`);
  }
  assert.ok(answers.length > 70, `only ${answers.length} answers were recorded`);
  assert.deepEqual(leaks, []);
});

// Keep this the last test: it judges every response the tests above received.
test("every documented operation was exercised and every response kept the contract", (t) => {
  t.diagnostic(`${contract.operations} operations, ${contract.responses()} responses validated`);
  const missing = contract.missing();
  assert.deepEqual(missing, [], `operations never called successfully:\n  ${missing.join("\n  ")}`);
  // Every operation once plus the deliberate errors: fewer means the checking wrapper was bypassed.
  assert.ok(contract.responses() >= contract.operations + 10, `only ${contract.responses()} responses were validated`);
  assert.equal(violations.length, 0, `${violations.length} contract violations:\n  ${violations.join("\n  ")}`);
});
