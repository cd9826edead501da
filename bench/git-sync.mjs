// The Git integration's costs under wrangler dev (issue 17), in one run against a fake GitHub on
// 127.0.0.1, with a plain upload import of the same document as the baseline:
//   - "sync now" when the branch did not move (one head request) and when the commit did not
//     change the document (head + file + hash);
//   - a sync that imports a change, against uploading that same document directly;
//   - a signed webhook's answer time, and push → synced (the sync runs after the answer).
// Prints p50 / p90 in ms and the ratios. Run: `make build && node bench/git-sync.mjs` (ROUNDS=20).
import { Client, sleep, startWorker, testSecrets } from "../tests/e2e/harness.mjs";
import { githubVars, startFakeGitHub } from "../tests/e2e/fake-github.mjs";

const ROUNDS = Number(process.env.ROUNDS ?? 20);
const REPO = "bench/api";

/** A document of `n` operations whose summaries carry `tag` (a change per round). */
function doc(n, tag) {
  const paths = {};
  for (let i = 0; i < n; i++) {
    paths[`/items${i}/{id}`] = {
      get: {
        operationId: `getItem${i}`,
        summary: `Get item ${i} (${tag})`,
        parameters: [{ name: "id", in: "path", required: true, schema: { type: "integer" } }],
        responses: { 200: { description: "ok", content: { "application/json": { schema: { type: "object", properties: { id: { type: "integer" }, name: { type: "string" } } } } } } },
      },
    };
  }
  return JSON.stringify({ openapi: "3.0.3", info: { title: "Bench", version: "1" }, servers: [{ url: "https://api.example.com" }], paths });
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: s[Math.floor(s.length * 0.5)], p90: s[Math.floor(s.length * 0.9)] };
};
const fmt = (x) => x.toFixed(1).padStart(7);

async function timed(fn) {
  const t = performance.now();
  const r = await fn();
  return [performance.now() - t, r];
}

const gh = await startFakeGitHub();
const w = await startWorker({ vars: { ...testSecrets(), ...githubVars(gh), FLOWCP_RATE_LIMITS: "off" } });
try {
  const owner = new Client(w.url);
  const ws = (await owner.signup("git-bench@example.com")).workspace.id;
  const P = (p) => `/api/v1/workspaces/${ws}${p}`;
  const gitApp = (await owner.post(P("/apps"), { name: "Git" })).body.id;
  const plainApp = (await owner.post(P("/apps"), { name: "Plain" })).body.id;
  const OPS = Number(process.env.OPS ?? 100);
  gh.addRepo(REPO, { files: { "openapi.json": doc(OPS, "r0") } });
  const started = (await owner.post(P("/git/connections"), { provider: "github" })).body;
  const back = new URL((await fetch(started.authorize_url, { redirect: "manual" })).headers.get("location"));
  await owner.call("GET", back.pathname + back.search);
  const set = await owner.put(P(`/apps/${gitApp}/source`), { connection_id: started.connection.id, repo: REPO, branch: "main", path: "openapi.json" });
  if (set.body?.sync?.outcome !== "imported") throw new Error(JSON.stringify(set.body));
  await owner.post(P(`/apps/${plainApp}/imports`), JSON.parse(doc(OPS, "r0")));

  const rows = { unmoved: [], same: [], imported: [], upload: [], webhook: [], pushToSynced: [] };
  for (let i = 1; i <= ROUNDS; i++) {
    rows.unmoved.push((await timed(() => owner.post(P(`/apps/${gitApp}/source/sync`))))[0]);
    // A commit that does not touch the document.
    await gh.push(REPO, "main", { [`notes/${i}.md`]: `round ${i}` }, { deliver: false });
    rows.same.push((await timed(() => owner.post(P(`/apps/${gitApp}/source/sync`))))[0]);
    // A commit that changes every tool's description.
    await gh.push(REPO, "main", { "openapi.json": doc(OPS, `r${i}`) }, { deliver: false });
    const [ms, r] = await timed(() => owner.post(P(`/apps/${gitApp}/source/sync`)));
    if (r.body.outcome !== "imported") throw new Error(JSON.stringify(r.body));
    rows.imported.push(ms);
    rows.upload.push((await timed(() => owner.post(P(`/apps/${plainApp}/imports`), JSON.parse(doc(OPS, `u${i}`)))))[0]);
  }
  // Webhooks: the answer, and push → the source's check time moving past the push.
  for (let i = 1; i <= ROUNDS; i++) {
    const before = Date.now();
    const t = performance.now();
    const pushed = await gh.push(REPO, "main", { "openapi.json": doc(OPS, `w${i}`) });
    rows.webhook.push(performance.now() - t);
    if (pushed.deliveries[0]?.status !== 202) throw new Error(JSON.stringify(pushed.deliveries));
    for (;;) {
      const s = (await owner.get(P(`/apps/${gitApp}/source`))).body;
      if (s.checked_at > before && s.last_sync?.trigger === "webhook" && s.last_sha === pushed.sha) break;
      await sleep(20);
    }
    rows.pushToSynced.push(performance.now() - t);
  }
  const upload = stats(rows.upload).p50;
  console.log(`Git sync costs under wrangler dev, ${OPS} operations, ${ROUNDS} rounds (ms)`);
  console.log("what                                   p50     p90   p50 / upload import");
  for (const [name, label] of [
    ["unmoved", "sync now, branch not moved"],
    ["same", "sync now, document unchanged"],
    ["imported", "sync now, document changed (import)"],
    ["upload", "upload import of the same document"],
    ["webhook", "webhook delivery answered"],
    ["pushToSynced", "push → synced (webhook)"],
  ]) {
    const s = stats(rows[name]);
    console.log(`${label.padEnd(36)} ${fmt(s.p50)} ${fmt(s.p90)}   ${(s.p50 / upload).toFixed(2)}`);
  }
  console.log(`GitHub requests: ${gh.requests.length} in all; 304s served: ${gh.stats.notModified}; token refreshes: ${gh.stats.refreshes}`);
} finally {
  await w.stop();
  w.cleanup();
  await gh.close();
}
