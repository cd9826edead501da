// A fake GitHub on 127.0.0.1 for the Git integration e2e tests. One server plays both origins
// as GitHub Enterprise Server lays them out: the web one (OAuth pages, `gh.url`) and the REST
// API under /api/v3 (`gh.apiUrl`). Repositories, commits, tokens and webhooks live in memory;
// push and ping webhooks are signed and delivered with fetch; every request is logged.
//
// It keeps GitHub's quirks, so FlowCP meets them here first: token errors are HTTP 200, the
// token answer is form-encoded unless the client accepts JSON, a refresh rotates both tokens
// (the old pair dies), base64 content is wrapped every 60 characters, pagination links use
// /repositories/{id}/..., a hook's content_type defaults to "form" (payload=<json>), a second
// hook with the same URL is refused, a push that creates a branch has created: true and a zero
// `before`, a User-Agent is required, and a token in a query string is refused.
import { createServer } from "node:http";
import { createHash, createHmac, randomBytes, randomUUID } from "node:crypto";

const JSON_TYPE = "application/json; charset=utf-8";
const DOCS = "https://docs.github.com/rest";
const USER = { login: "octocat", id: 583231, type: "User" };
const ZERO = "0".repeat(40);
const ACCESS_TTL = 28800;
const REFRESH_TTL = 15811200;
const CODE_TTL_MS = 10 * 60 * 1000;
const NOT_FOUND = { message: "Not Found", documentation_url: DOCS };
const BAD_CREDENTIALS = { message: "Bad credentials", documentation_url: DOCS };

/** `sha256=` + hex HMAC-SHA256 of the body with the secret (X-Hub-Signature-256). */
export function sign(secret, body) {
  return "sha256=" + createHmac("sha256", secret).update(body).digest("hex");
}

const sha1 = (s) => createHash("sha1").update(s).digest("hex");
const s256 = (s) => createHash("sha256").update(s).digest("base64url");
const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
const decode = (s) => { try { return decodeURIComponent(s); } catch { return null; } };
const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const alnum = (n) => [...randomBytes(n)].map((b) => ALNUM[b % ALNUM.length]).join("");
// Git's own blob id, so a file's sha changes exactly when its content does.
const blobSha = (content) => sha1(`blob ${Buffer.byteLength(content)}\0${content}`);

export async function startFakeGitHub(options = {}) {
  const repos = new Map();     // lowercased "owner/name" -> repo
  const commits = new Map();   // sha -> { sha, repo, parent, files, changes, message, author, email, date }
  const codes = new Map();     // code -> { redirect_uri, code_challenge, method, used, expires }
  const access = new Map();    // access token -> { refresh, expires }
  const refreshes = new Map(); // refresh token -> { access, expires }
  const sent = new Map();      // delivery id -> { id, event, url, headers, body } (for redeliver)
  const pending = new Set();
  let seq = 0;
  let hookSeq = 400000;

  const gh = {
    url: "",
    apiUrl: "",
    clientId: options.clientId ?? "Iv1.fakeclient",
    clientSecret: options.clientSecret ?? "fake-github-client-secret-0123456789",
    hooksForbidden: Boolean(options.hooksForbidden),
    // The user clicks "Cancel" on the consent page: the redirect carries error=access_denied.
    denyConsent: false,
    requests: [],
    stats: { codeExchanges: 0, refreshes: 0, notModified: 0, tokenInUrl: 0 },
    tokens: [],     // every { access_token, refresh_token } issued, for "never leaked" checks
    deliveries: [], // every webhook attempt { id, event, url, status, body }, pings included
  };

  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url, "http://x");
      const log = { method: req.method, path: url.pathname, search: url.search, headers: { ...req.headers }, status: 0 };
      gh.requests.push(log);
      if (url.search.includes("access_token=")) gh.stats.tokenInUrl++;
      const send = (status, body = "", headers = {}) => {
        log.status = status;
        res.writeHead(status, headers);
        res.end(body);
      };
      const json = (status, value, headers = {}) => send(status, JSON.stringify(value), { "content-type": JSON_TYPE, ...headers });
      try {
        route(req, url, Buffer.concat(chunks).toString("utf8"), send, json);
      } catch (e) {
        json(500, { message: `fake-github: ${e?.message ?? e}` });
      }
    });
  });

  function route(req, url, body, send, json) {
    if (url.pathname === "/login/oauth/authorize" && req.method === "GET") return authorize(url.searchParams, send);
    if (url.pathname === "/login/oauth/access_token" && req.method === "POST") return token(req, url, body, send, json);
    if (url.pathname.startsWith("/api/v3/")) return api(req, url, body, send, json);
    return json(404, NOT_FOUND);
  }

  // --- OAuth (web origin) ---

  // Auto-consents as octocat and redirects back with a single-use code (10 minutes).
  function authorize(q, send) {
    const text = (status, s) => send(status, s, { "content-type": "text/plain; charset=utf-8" });
    if (q.get("client_id") !== gh.clientId) return text(404, "Not Found");
    const redirect = q.get("redirect_uri");
    if (!redirect) return text(400, "fake-github: redirect_uri is required");
    const params = new URLSearchParams();
    if (gh.denyConsent) {
      params.set("error", "access_denied");
      params.set("error_description", "The user has denied your application access.");
      params.set("error_uri", "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied");
    } else {
      const code = randomBytes(10).toString("hex");
      codes.set(code, { redirect_uri: redirect, code_challenge: q.get("code_challenge"), method: q.get("code_challenge_method"), used: false, expires: Date.now() + CODE_TTL_MS });
      params.set("code", code);
    }
    if (q.has("state")) params.set("state", q.get("state"));
    send(302, "", { location: redirect + (redirect.includes("?") ? "&" : "?") + params });
  }

  function token(req, url, body, send, json) {
    const p = Object.fromEntries(url.searchParams);
    if ((req.headers["content-type"] ?? "").includes("json")) {
      try { Object.assign(p, JSON.parse(body)); } catch { /* an empty grant: fails below */ }
    } else {
      Object.assign(p, Object.fromEntries(new URLSearchParams(body)));
    }
    const str = (k) => (p[k] === undefined || p[k] === null ? undefined : String(p[k]));
    // Real GitHub answers form-encoded text unless the client accepts JSON, errors included.
    const answer = (obj) => ((req.headers.accept ?? "").includes("application/json")
      ? json(200, obj)
      : send(200, new URLSearchParams(obj).toString(), { "content-type": "application/x-www-form-urlencoded; charset=utf-8" }));
    const fail = (error, description) => answer({ error, error_description: description,
      error_uri: `https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#${error.replace(/_/g, "-")}` });

    if (str("client_id") !== gh.clientId || str("client_secret") !== gh.clientSecret) {
      return fail("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.");
    }
    if (str("grant_type") === "refresh_token") {
      const old = str("refresh_token") ?? "";
      const r = refreshes.get(old);
      if (!r || r.expires < Date.now()) return fail("bad_refresh_token", "The refresh token passed is incorrect or expired.");
      // Rotation: the used refresh token and the access token it came with both die.
      refreshes.delete(old);
      access.delete(r.access);
      gh.stats.refreshes++;
      return answer(issue());
    }
    const c = codes.get(str("code") ?? "");
    const fresh = c && !c.used && c.expires > Date.now();
    if (c) c.used = true; // single use, even when the exchange fails
    if (!fresh) return fail("bad_verification_code", "The code passed is incorrect or expired.");
    if (str("redirect_uri") !== undefined && str("redirect_uri") !== c.redirect_uri) {
      return fail("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.");
    }
    if (c.code_challenge && s256(str("code_verifier") ?? "") !== c.code_challenge) {
      return fail("bad_verification_code", "The code passed is incorrect or expired.");
    }
    gh.stats.codeExchanges++;
    return answer(issue());
  }

  function issue() {
    const a = "ghu_" + alnum(36);
    const r = "ghr_" + alnum(76);
    access.set(a, { refresh: r, expires: Date.now() + ACCESS_TTL * 1000 });
    refreshes.set(r, { access: a, expires: Date.now() + REFRESH_TTL * 1000 });
    gh.tokens.push({ access_token: a, refresh_token: r });
    return { access_token: a, expires_in: ACCESS_TTL, refresh_token: r, refresh_token_expires_in: REFRESH_TTL, scope: "", token_type: "bearer" };
  }

  // --- REST API (/api/v3) ---

  function api(req, url, body, send, json) {
    if (!req.headers["user-agent"]) {
      return json(403, { message: "Request forbidden by administrative rules. Please make sure your request has a User-Agent header", documentation_url: DOCS });
    }
    if (url.search.includes("access_token=")) {
      return json(400, { message: "Must specify access token via Authorization header.", documentation_url: DOCS });
    }
    const m = /^(?:bearer|token)\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
    const t = m && access.get(m[1]);
    if (!t || t.expires < Date.now()) return json(401, BAD_CREDENTIALS);

    const path = url.pathname.slice("/api/v3".length);
    if (path === "/user" && req.method === "GET") return json(200, USER);
    // /repos/{owner}/{repo}/... and the /repositories/{id}/... form GitHub's Link headers use.
    let repo, rest;
    const byName = /^\/repos\/([^/]+)\/([^/]+)(?:\/(.*))?$/.exec(path);
    const byId = /^\/repositories\/(\d+)(?:\/(.*))?$/.exec(path);
    if (byName) {
      repo = repos.get(`${decode(byName[1])}/${decode(byName[2])}`.toLowerCase());
      rest = byName[3] ?? "";
    } else if (byId) {
      repo = [...repos.values()].find((r) => r.id === Number(byId[1]));
      rest = byId[2] ?? "";
    }
    if (!repo) return json(404, NOT_FOUND);
    const get = req.method === "GET";

    if (rest === "" && get) return json(200, repoJson(repo));
    if (rest === "branches" && get) return branches(repo, url.searchParams, json);
    if (rest.startsWith("branches/") && get) {
      const name = decode(rest.slice("branches/".length));
      if (!repo.branches.has(name)) return json(404, { message: "Branch not found", documentation_url: DOCS });
      return json(200, { name, commit: commitJson(repo, commits.get(repo.branches.get(name))), protected: false });
    }
    if (rest.startsWith("commits/") && get) {
      const ref = decode(rest.slice("commits/".length)) ?? "";
      const c = resolve(repo, ref);
      if (!c) return json(422, { message: `No commit found for SHA: ${ref}`, documentation_url: DOCS });
      const etag = `W/"${createHash("sha256").update(`commit ${c.sha}`).digest("hex")}"`;
      const tags = (req.headers["if-none-match"] ?? "").split(",").map((s) => s.trim().replace(/^W\//, ""));
      if (tags.includes(etag.slice(2))) {
        gh.stats.notModified++;
        return send(304, "", { etag });
      }
      return json(200, commitJson(repo, c), { etag });
    }
    if ((rest === "contents" || rest.startsWith("contents/")) && get) return contents(req, repo, rest, url.searchParams, send, json);
    if (rest === "hooks" && get) return json(200, repo.hooks.map(hookJson));
    if (rest === "hooks" && req.method === "POST") return createHook(repo, body, json);
    const h = /^hooks\/(\d+)$/.exec(rest);
    if (h && req.method === "DELETE") {
      const i = repo.hooks.findIndex((x) => x.id === Number(h[1]));
      if (i < 0) return json(404, NOT_FOUND);
      repo.hooks.splice(i, 1);
      return send(204);
    }
    return json(404, NOT_FOUND);
  }

  // A branch name first, then a full or abbreviated (7+) sha of this repository.
  function resolve(repo, ref) {
    if (repo.branches.has(ref)) return commits.get(repo.branches.get(ref));
    if (!/^[0-9a-f]{7,40}$/.test(ref)) return null;
    return [...commits.values()].find((c) => c.repo === repo && c.sha.startsWith(ref)) ?? null;
  }

  function branches(repo, q, json) {
    const perPage = Math.min(100, Math.max(1, Number.parseInt(q.get("per_page"), 10) || 30));
    const page = Math.max(1, Number.parseInt(q.get("page"), 10) || 1);
    const names = [...repo.branches.keys()].sort();
    const last = Math.max(1, Math.ceil(names.length / perPage));
    const link = (n, rel) => `<${gh.apiUrl}/repositories/${repo.id}/branches?per_page=${perPage}&page=${n}>; rel="${rel}"`;
    const links = [];
    if (page > 1) links.push(link(page - 1, "prev"), link(1, "first"));
    if (page < last) links.push(link(page + 1, "next"), link(last, "last"));
    const list = names.slice((page - 1) * perPage, page * perPage).map((name) => {
      const sha = repo.branches.get(name);
      return { name, commit: { sha, url: `${gh.apiUrl}/repos/${repo.full}/commits/${sha}` }, protected: false };
    });
    return json(200, list, links.length ? { link: links.join(", ") } : {});
  }

  function contents(req, repo, rest, q, send, json) {
    const segments = rest.slice("contents".length).split("/").filter(Boolean).map(decode);
    if (segments.includes(null)) return json(404, NOT_FOUND);
    const path = segments.join("/");
    const c = resolve(repo, q.get("ref") || repo.defaultBranch);
    if (!c) return json(404, NOT_FOUND);
    const base = `${gh.apiUrl}/repos/${repo.full}/contents`;
    if (Object.hasOwn(c.files, path)) {
      const content = c.files[path];
      if (/application\/vnd\.github(\.v3)?\.raw/.test(req.headers.accept ?? "")) {
        return send(200, Buffer.from(content), { "content-type": "application/vnd.github.raw; charset=utf-8" });
      }
      const size = Buffer.byteLength(content);
      const b64 = Buffer.from(content).toString("base64").match(/.{1,60}/g) ?? [];
      // Over 1 MB GitHub gives no content in JSON (encoding "none"); the raw media type still works.
      const big = size > 1024 * 1024;
      return json(200, { type: "file", encoding: big ? "none" : "base64", size, name: path.split("/").pop(), path,
        content: big ? "" : b64.map((l) => l + "\n").join(""), sha: blobSha(content), url: `${base}/${path}?ref=${c.sha}`,
        html_url: `${gh.url}/${repo.full}/blob/${c.sha}/${path}` });
    }
    // A directory (the raw media type gets the JSON listing too, as on GitHub).
    const prefix = path ? path + "/" : "";
    const entries = new Map();
    for (const [p, content] of Object.entries(c.files)) {
      if (!p.startsWith(prefix)) continue;
      const [name, ...deeper] = p.slice(prefix.length).split("/");
      if (deeper.length) entries.set(name, { type: "dir", name, path: prefix + name, sha: sha1(`tree ${c.sha} ${prefix}${name}`), size: 0 });
      else entries.set(name, { type: "file", name, path: p, sha: blobSha(content), size: Buffer.byteLength(content) });
    }
    if (!entries.size) return json(404, NOT_FOUND);
    return json(200, [...entries.values()].sort((a, b) => (a.name < b.name ? -1 : 1)).map((e) => ({ ...e, url: `${base}/${e.path}?ref=${c.sha}` })));
  }

  function createHook(repo, body, json) {
    // Without the webhooks permission GitHub hides the endpoint.
    if (gh.hooksForbidden) return json(404, NOT_FOUND);
    let b;
    try { b = JSON.parse(body); } catch { b = null; }
    if (!b || typeof b !== "object" || Array.isArray(b)) return json(400, { message: "Problems parsing JSON", documentation_url: DOCS });
    const config = b.config && typeof b.config === "object" ? b.config : {};
    const invalid = (message) => json(422, { message: "Validation Failed", errors: [{ resource: "Hook", code: "custom", message }], documentation_url: DOCS });
    if (typeof config.url !== "string" || !config.url) return invalid("Config must contain url");
    if (repo.hooks.some((x) => x.url === config.url)) return invalid("Hook already exists on this repository");
    const hook = {
      id: ++hookSeq,
      url: config.url,
      secret: config.secret ? String(config.secret) : "",
      events: Array.isArray(b.events) && b.events.length ? b.events.map(String) : ["push"],
      active: b.active !== false,
      content_type: config.content_type === "json" ? "json" : "form", // GitHub's default is form
      insecure_ssl: String(config.insecure_ssl ?? "0"),
      created_at: now(),
    };
    repo.hooks.push(hook);
    json(201, hookJson(hook));
    if (hook.active) {
      setTimeout(() => track(deliver(repo, hook, "ping", { zen: "Design for failure.", hook_id: hook.id, hook: hookJson(hook), repository: repoPayload(repo), sender: USER })), 0);
    }
  }

  // --- JSON shapes ---

  function repoJson(repo) {
    return { id: repo.id, node_id: `R_kgDO${repo.id}`, name: repo.name, full_name: repo.full, private: false,
      owner: { login: repo.owner, type: "User" }, html_url: `${gh.url}/${repo.full}`, url: `${gh.apiUrl}/repos/${repo.full}`,
      default_branch: repo.defaultBranch, permissions: { admin: true, push: true, pull: true } };
  }

  // The repository as push payloads carry it (owner with a name, timestamps as Unix seconds).
  function repoPayload(repo) {
    return { id: repo.id, name: repo.name, full_name: repo.full, private: false, owner: { login: repo.owner, name: repo.owner },
      html_url: `${gh.url}/${repo.full}`, url: `${gh.url}/${repo.full}`, default_branch: repo.defaultBranch,
      master_branch: repo.defaultBranch, created_at: repo.createdAt, pushed_at: Math.floor(Date.now() / 1000) };
  }

  function commitJson(repo, c) {
    const who = { name: c.author, email: c.email, date: c.date };
    const files = [...c.changes.added.map((f) => [f, "added"]), ...c.changes.modified.map((f) => [f, "modified"]), ...c.changes.removed.map((f) => [f, "removed"])];
    return { sha: c.sha, node_id: `C_kwDO${c.sha.slice(0, 20)}`, url: `${gh.apiUrl}/repos/${repo.full}/commits/${c.sha}`,
      html_url: `${gh.url}/${repo.full}/commit/${c.sha}`,
      commit: { message: c.message, author: who, committer: who, tree: { sha: sha1(`tree ${c.sha}`) } },
      author: { login: USER.login, id: USER.id }, committer: { login: USER.login, id: USER.id },
      parents: c.parent ? [{ sha: c.parent, url: `${gh.apiUrl}/repos/${repo.full}/commits/${c.parent}` }] : [],
      files: files.map(([filename, status]) => ({ filename, status })) };
  }

  function hookJson(h) {
    const config = { content_type: h.content_type, insecure_ssl: h.insecure_ssl, url: h.url, ...(h.secret ? { secret: "********" } : {}) };
    return { type: "Repository", id: h.id, name: "web", active: h.active, events: h.events, config, created_at: h.created_at, updated_at: h.created_at };
  }

  // --- commits and webhooks ---

  function need(fullName) {
    const repo = repos.get(String(fullName).toLowerCase());
    if (!repo) throw new Error(`fake-github: no repository ${fullName}`);
    return repo;
  }

  function makeCommit(repo, parent, files, remove, message, author) {
    const tree = { ...(parent?.files ?? {}) };
    const changes = { added: [], removed: [], modified: [] };
    for (const [p, content] of Object.entries(files)) {
      const s = String(content);
      if (!Object.hasOwn(tree, p)) changes.added.push(p);
      else if (tree[p] !== s) changes.modified.push(p);
      tree[p] = s;
    }
    for (const p of remove) if (Object.hasOwn(tree, p)) { delete tree[p]; changes.removed.push(p); }
    const sha = sha1(`commit ${repo.full} ${parent?.sha ?? ""} ${++seq} ${Date.now()} ${randomUUID()} ${message}`);
    const email = `${author.toLowerCase().replace(/[^a-z0-9]+/g, ".")}@example.com`;
    const c = { sha, repo, parent: parent?.sha ?? null, files: tree, changes, message, author, email, date: now() };
    commits.set(sha, c);
    return c;
  }

  // Signs and POSTs one event to a hook, keeping it for redeliver.
  async function deliver(repo, hook, event, payload) {
    const text = JSON.stringify(payload);
    const form = hook.content_type !== "json";
    const body = form ? new URLSearchParams({ payload: text }).toString() : text;
    const headers = {
      "content-type": form ? "application/x-www-form-urlencoded" : "application/json",
      "user-agent": "GitHub-Hookshot/fake",
      "x-github-event": event,
      "x-github-delivery": randomUUID(),
      "x-github-hook-id": String(hook.id),
      "x-github-hook-installation-target-id": String(repo.id),
      "x-github-hook-installation-target-type": "repository",
    };
    if (hook.secret) {
      headers["x-hub-signature"] = "sha1=" + createHmac("sha1", hook.secret).update(body).digest("hex");
      headers["x-hub-signature-256"] = sign(hook.secret, body);
    }
    const d = { id: headers["x-github-delivery"], event, url: hook.url, headers, body };
    sent.set(d.id, d);
    return attempt(d);
  }

  async function attempt(d) {
    const result = { id: d.id, ...(await post(d.url, d.headers, d.body)) };
    gh.deliveries.push({ event: d.event, url: d.url, ...result });
    return result;
  }

  // GitHub gives a receiver 10 s and follows no redirects; status 0 means no answer at all.
  async function post(url, headers, body) {
    try {
      const r = await fetch(url, { method: "POST", headers, body, redirect: "manual", signal: AbortSignal.timeout(10_000) });
      return { status: r.status, body: await r.text() };
    } catch (e) {
      return { status: 0, body: String(e?.cause?.message ?? e?.message ?? e) };
    }
  }

  function track(promise) {
    pending.add(promise);
    promise.finally(() => pending.delete(promise));
    return promise;
  }

  // --- the test's handle ---

  Object.assign(gh, {
    sign,
    addRepo(fullName, { defaultBranch = "main", files = {} } = {}) {
      const [owner, name, extra] = String(fullName).split("/");
      if (!owner || !name || extra !== undefined) throw new Error(`fake-github: bad repository name ${fullName}`);
      if (repos.has(fullName.toLowerCase())) throw new Error(`fake-github: ${fullName} exists`);
      const repo = { id: 100000 + repos.size + 1, owner, name, full: fullName, defaultBranch, branches: new Map(), hooks: [], createdAt: Math.floor(Date.now() / 1000) };
      repos.set(fullName.toLowerCase(), repo);
      const c = makeCommit(repo, null, files, [], "Initial commit", "Octo Cat");
      repo.branches.set(defaultBranch, c.sha);
      return c.sha;
    },
    async push(fullName, branch, files = {}, { message = "Update", author = "Octo Cat", deliver: doDeliver = true, remove = [] } = {}) {
      const repo = need(fullName);
      const existed = repo.branches.has(branch);
      const parent = commits.get(repo.branches.get(existed ? branch : repo.defaultBranch));
      const c = makeCommit(repo, parent, files, remove, message, author);
      repo.branches.set(branch, c.sha);
      if (!doDeliver) return { sha: c.sha, deliveries: [] };
      const before = existed ? parent.sha : ZERO;
      const head = { id: c.sha, tree_id: sha1(`tree ${c.sha}`), distinct: true, message, timestamp: c.date,
        url: `${gh.url}/${repo.full}/commit/${c.sha}`, author: { name: author, email: c.email, username: USER.login },
        committer: { name: author, email: c.email, username: USER.login }, ...c.changes };
      const payload = { ref: `refs/heads/${branch}`, before, after: c.sha, created: !existed, deleted: false, forced: false,
        base_ref: null, compare: `${gh.url}/${repo.full}/compare/${before.slice(0, 12)}...${c.sha.slice(0, 12)}`,
        commits: [head], head_commit: head, repository: repoPayload(repo),
        pusher: { name: USER.login, email: `${USER.login}@example.com` }, sender: USER };
      const hooks = repo.hooks.filter((h) => h.active && (h.events.includes("push") || h.events.includes("*")));
      const deliveries = await Promise.all(hooks.map((h) => track(deliver(repo, h, "push", payload))));
      return { sha: c.sha, deliveries };
    },
    // The same delivery again: same X-GitHub-Delivery id, signature and body.
    async redeliver(deliveryId) {
      const d = sent.get(deliveryId);
      if (!d) throw new Error(`fake-github: no delivery ${deliveryId}`);
      return track(attempt(d));
    },
    async deliverRaw(url, { headers = {}, body = "" } = {}) {
      return post(url, headers, typeof body === "string" ? body : JSON.stringify(body));
    },
    hooks(fullName) {
      return need(fullName).hooks.map(({ id, url, secret, events, active }) => ({ id, url, secret, events: [...events], active }));
    },
    revokeAll() { access.clear(); refreshes.clear(); },
    expireAccessTokens() { access.clear(); },
    // Waits for every delivery under way (the asynchronous pings included).
    async settled() { while (pending.size) await Promise.allSettled([...pending]); },
    close() {
      return new Promise((r) => { server.close(r); server.closeAllConnections(); });
    },
  });

  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  gh.url = `http://127.0.0.1:${server.address().port}`;
  gh.apiUrl = `${gh.url}/api/v3`;
  return gh;
}

/** The Worker's vars that point FlowCP's GitHub integration at `gh`. */
export function githubVars(gh) {
  return {
    FLOWCP_GITHUB_CLIENT_ID: gh.clientId,
    FLOWCP_GITHUB_CLIENT_SECRET: gh.clientSecret,
    FLOWCP_GITHUB_URL: gh.url,
    FLOWCP_GITHUB_API_URL: gh.apiUrl,
  };
}

/**
 * Connects `client`'s workspace `ws` to the fake GitHub the way a browser does: FlowCP's consent
 * URL, GitHub's redirect back with a code, FlowCP's callback in the owner's session. Answers
 * the connection's id and where the callback sent the browser.
 */
export async function connectGitHub(client, ws, { app } = {}) {
  const started = await client.post(`/api/v1/workspaces/${ws}/git/connections`, { provider: "github", ...(app ? { return_to_app: app } : {}) });
  if (started.status !== 201) throw new Error(`connect: ${started.status} ${JSON.stringify(started.body)}`);
  const consent = await fetch(started.body.authorize_url, { redirect: "manual" });
  const back = new URL(consent.headers.get("location"));
  const done = await client.call("GET", back.pathname + back.search);
  return { id: started.body.connection.id, location: done.headers.get("location"), status: done.status, started: started.body };
}
