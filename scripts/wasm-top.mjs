// Where a wasm module's code goes: function body sizes by Rust crate (and the largest functions),
// read from the module's name section. Needs a build that keeps names:
//   FLOWCP_WASM_OPT=0 CARGO_PROFILE_RELEASE_STRIP=none sh scripts/build-worker.sh
//   node scripts/wasm-top.mjs build/index_bg.wasm [top-N]
// (A small twiggy: no download, no compile of the module, which Node 20 cannot do for this one.)
import { readFileSync } from "node:fs";

const b = readFileSync(process.argv[2]);
const TOP = Number(process.argv[3] ?? 30);
let p = 8;
const leb = () => { let r = 0, s = 0, x; do { x = b[p++]; r += (x & 0x7f) * 2 ** s; s += 7; } while (x & 0x80); return r; };
const str = () => { const n = leb(); const s = b.slice(p, p + n).toString(); p += n; return s; };
let importedFns = 0;
const bodies = [];
const names = new Map();
let data = 0;
while (p < b.length) {
  const id = b[p++];
  const size = leb();
  const end = p + size;
  if (id === 2) {
    for (let n = leb(), i = 0; i < n; i++) {
      str(); str();
      const kind = b[p++];
      if (kind === 0) { leb(); importedFns++; }
      else if (kind === 1) { p++; const f = leb(); leb(); if (f & 1) leb(); }
      else if (kind === 2) { const f = leb(); leb(); if (f & 1) leb(); }
      else if (kind === 3) { p++; p++; }
      else if (kind === 4) { p++; leb(); }
    }
  } else if (id === 10) {
    for (let n = leb(), i = 0; i < n; i++) { const sz = leb(); bodies.push(sz); p += sz; }
  } else if (id === 11) {
    data = size;
  } else if (id === 0 && str() === "name") {
    while (p < end) {
      const sub = b[p++];
      const len = leb();
      const subEnd = p + len;
      if (sub === 1) for (let n = leb(), i = 0; i < n; i++) { const idx = leb(); names.set(idx, str()); }
      p = subEnd;
    }
  }
  p = end;
}
if (names.size === 0) {
  console.error("no name section: build with FLOWCP_WASM_OPT=0 CARGO_PROFILE_RELEASE_STRIP=none");
  process.exit(1);
}
const demangle = (s) => s.replace(/::h[0-9a-f]{16}$/, "");
// The crate a function belongs to: the first path segment of its (demangled) name, looking
// inside generic impls (`<serde_json::Value as ...>` -> serde_json; `core::ptr::drop_in_place<flowcp::X>` -> flowcp).
function crateOf(name) {
  const inner = name.match(/^(?:core|alloc)::[\w:]+<(?:&(?:mut )?)?([a-z_][\w]*)::/);
  if (inner) return inner[1];
  const impl = name.match(/^<(?:&(?:mut )?)?([a-z_][\w]*)::/);
  if (impl) return impl[1];
  const plain = name.match(/^([a-z_][\w]*)::/);
  return plain ? plain[1] : "(other)";
}
const total = bodies.reduce((a, x) => a + x, 0);
const byCrate = new Map();
const fns = bodies.map((size, i) => ({ size, name: demangle(names.get(i + importedFns) ?? `func[${i + importedFns}]`) }));
for (const f of fns) byCrate.set(crateOf(f.name), (byCrate.get(crateOf(f.name)) ?? 0) + f.size);
const kib = (n) => (n / 1024).toFixed(1).padStart(8) + " KiB";
console.log(`code ${kib(total)} in ${bodies.length} functions; data ${kib(data)}`);
console.log("by crate:");
for (const [c, s] of [...byCrate].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${kib(s)} ${(100 * s / total).toFixed(1).padStart(5)}%  ${c}`);
console.log("largest functions:");
if (process.env.MATCH) { const re = new RegExp(process.env.MATCH); const hit = fns.filter((f) => re.test(f.name)); console.log(`matching ${process.env.MATCH}: ${kib(hit.reduce((a, f) => a + f.size, 0))} in ${hit.length} functions`); }
for (const f of fns.sort((a, b) => b.size - a.size).slice(0, TOP)) console.log(`${kib(f.size)}  ${f.name.slice(0, 140)}`);
