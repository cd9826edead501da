// Prints the size of the release Worker bundle (the .wasm and .js files under build/), raw and gzip.
import { readdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";

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
console.log(`worker bundle (build/): raw ${kib(raw)}, gzip ${kib(gz)} (Cloudflare limit: 3 MiB gzip)`);
