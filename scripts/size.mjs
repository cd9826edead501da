// Prints the size of the release Worker bundle (the .wasm and .js files under build/), raw and
// gzip, and fails above the budget: Cloudflare's limit is 3 MiB gzip (paid plan), and the
// budget keeps well under it so growth is a decision, not an accident.
import { readdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";

// 1.125 MiB. Measured: ~745 KiB (2026-11); 1024.5 KiB (2026-12-02, after issue 16's plans,
// store tools and template). Raised by decision then; issue 18 owns making it smaller
// (opt-level, wasm-opt).
const BUDGET_GZIP = 1152 * 1024;

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : /\.(wasm|m?js)$/.test(e.name) ? [join(dir, e.name)] : []);
}
let raw = 0, gz = 0;
for (const f of files("build")) {
  const data = readFileSync(f);
  raw += data.length;
  gz += gzipSync(data, { level: 9 }).length;
}
const kib = (n) => (n / 1024).toFixed(1) + " KiB";
console.log(`worker bundle (build/): raw ${kib(raw)}, gzip ${kib(gz)} (budget ${kib(BUDGET_GZIP)} gzip; Cloudflare limit: 3 MiB gzip)`);
// The dashboard's first load: the scripts index.html loads (and the modules they preload).
const DASHBOARD_BUDGET_GZIP = 150 * 1024;
let dash = 0;
try {
  const html = readFileSync("dashboard/dist/index.html", "utf8");
  for (const m of html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.js)"/g)) {
    dash += gzipSync(readFileSync(join("dashboard/dist", m[1])), { level: 9 }).length;
  }
} catch { /* not built */ }
console.log(`dashboard first-load JS (dashboard/dist): gzip ${kib(dash)} (budget ${kib(DASHBOARD_BUDGET_GZIP)})`);
if (dash === 0 || dash > DASHBOARD_BUDGET_GZIP) {
  console.error(dash === 0 ? "size: no dashboard build; run make setup" : `size: the dashboard is over its budget by ${kib(dash - DASHBOARD_BUDGET_GZIP)}`);
  process.exit(1);
}
if (raw === 0 || gz > BUDGET_GZIP) {
  console.error(raw === 0 ? "size: no bundle under build/; run make build" : `size: the bundle is over its budget by ${kib(gz - BUDGET_GZIP)}`);
  process.exit(1);
}
