// The soak's fake upstream (bench/soak.mjs): the Swagger Petstore's canned answers, with a share
// of injected faults, drawn per request: 503s, hangs past FlowCP's upstream timeout, and
// connections reset mid-body. Its own process, so it never competes with the load generator's
// event loop: `node bench/soak-upstream.mjs PORT` with SOAK_FAULT_5XX, SOAK_FAULT_TIMEOUT,
// SOAK_FAULT_RESET (shares, default 0.03 / 0.01 / 0.01) and SOAK_HANG_MS (default 3000).
// `GET /__stats` answers what it served, by kind.
import { createServer } from "node:http";

const share = (name, d) => Number(process.env[name] ?? d);
const F5XX = share("SOAK_FAULT_5XX", 0.03);
const FTIMEOUT = share("SOAK_FAULT_TIMEOUT", 0.01);
const FRESET = share("SOAK_FAULT_RESET", 0.01);
const HANG_MS = share("SOAK_HANG_MS", 3000);
const stats = { ok: 0, "5xx": 0, timeout: 0, reset: 0, other: 0 };

const pet = (id) => ({ id, name: `pet-${id}`, status: "available", photoUrls: [], tags: [{ id: 1, name: "soak" }] });

function answer(req, body) {
  const url = new URL(req.url, "http://x");
  const m = url.pathname.match(/^\/v2\/pet\/(\d+)$/);
  if (req.method === "GET" && m) return [200, pet(Number(m[1]))];
  if (req.method === "GET" && url.pathname === "/v2/pet/findByStatus") return [200, [pet(1), pet(2), pet(3)]];
  if (req.method === "POST" && url.pathname === "/v2/pet") {
    try {
      return [200, { ...JSON.parse(body || "{}"), id: 99 }];
    } catch {
      return [400, { error: "bad json" }];
    }
  }
  if (req.method === "GET" && url.pathname === "/v2/store/inventory") return [200, { available: 3, sold: 1 }];
  return [404, { error: "not found" }];
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    if (req.url === "/__stats") {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify(stats));
    }
    // Only the tool calls' operations are faulted (the owner's probe at verify is not).
    const faultable = !req.url.startsWith("/v2/store/");
    const r = Math.random();
    if (faultable && r < F5XX) {
      stats["5xx"]++;
      res.writeHead(503, { "content-type": "application/json", "retry-after": "1" });
      return res.end(JSON.stringify({ error: "overloaded" }));
    }
    if (faultable && r < F5XX + FTIMEOUT) {
      stats.timeout++;
      // Past FlowCP's upstream deadline; then the connection is dropped.
      const t = setTimeout(() => req.socket.destroy(), HANG_MS);
      req.socket.on("close", () => clearTimeout(t));
      return;
    }
    if (faultable && r < F5XX + FTIMEOUT + FRESET) {
      stats.reset++;
      // Headers and a first part of the body, then the connection is reset.
      res.writeHead(200, { "content-type": "application/json", "content-length": "400" });
      res.write('{"id": 7, "name": "half');
      return setTimeout(() => req.socket.destroy(), 5);
    }
    const [status, body] = answer(req, Buffer.concat(chunks).toString());
    stats[status === 200 ? "ok" : "other"]++;
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
