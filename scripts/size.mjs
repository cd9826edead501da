// Prints the size of the release Worker bundle (the .wasm and .js files under build/), raw and
// gzip, and fails above the budget: Cloudflare's limit is 3 MiB gzip (paid plan), and the
// budget keeps well under it so growth is a decision, not an accident.
import { readdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";

const BUDGET_GZIP = 1024 * 1024; // 1 MiB (measured 2026-11: ~745 KiB)

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
if (raw === 0 || gz > BUDGET_GZIP) {
  console.error(raw === 0 ? "size: no bundle under build/; run make build" : `size: the bundle is over its budget by ${kib(gz - BUDGET_GZIP)}`);
  process.exit(1);
}
