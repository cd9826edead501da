// Runs a Worker under Miniflare's API directly: workerd with local D1 and KV, without wrangler
// dev's proxy and middleware (issue 18: the production-like runtime of the benchmark). The
// bindings come from the Worker's own wrangler.toml (wrangler's unstable_getMiniflareWorkerOptions,
// the same translation wrangler dev makes), so the Worker sees what it sees under wrangler dev.
import { Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { dirname, join, resolve } from "node:path";

/**
 * Starts `config`'s Worker on 127.0.0.1:`port`. `vars` are added to (and override) its vars;
 * `stateDir` is a `wrangler dev --persist-to` directory (migrations applied by newState()), so
 * D1 and KV are the same local files wrangler dev would use; `inspectorPort` opens the DevTools
 * inspector (bench/profile.mjs). Returns { url, stop }.
 */
export async function startMiniflare({ config, port, vars = {}, stateDir = null, inspectorPort = undefined }) {
  const { workerOptions, main } = unstable_getMiniflareWorkerOptions(config);
  const root = dirname(resolve(config));
  const persist = stateDir ? { d1Persist: join(stateDir, "v3/d1"), kvPersist: join(stateDir, "v3/kv"), cachePersist: join(stateDir, "v3/cache") } : {};
  const mf = new Miniflare({
    host: "127.0.0.1",
    port,
    ...persist,
    ...(inspectorPort ? { inspectorPort } : {}),
    // workerd's own stderr reports every client that hangs up early (the SDK client closes its
    // streams) as an error; wrangler dev hides those at --log-level warn, and so does this.
    handleRuntimeStdio(stdout, stderr) {
      stdout.resume();
      stderr.on("data", (d) => { if (!/disconnected|^stack:/m.test(String(d))) process.stderr.write(d); });
    },
    workers: [{
      ...workerOptions,
      name: "bench",
      modules: true,
      modulesRoot: root,
      scriptPath: resolve(root, main),
      // Every .js beside the entry is an ES module (worker-build emits shim.mjs -> ../index.js).
      modulesRules: [{ type: "ESModule", include: ["**/*.js", "**/*.mjs"] }, ...(workerOptions.modulesRules ?? [])],
      bindings: { ...workerOptions.bindings, ...vars },
    }],
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  return { url, stop: () => mf.dispose() };
}
