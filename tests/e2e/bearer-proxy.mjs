// A proxy on 127.0.0.1 that adds `Authorization: Bearer <token>` to every request and forwards
// it to a Worker, for clients that cannot send headers (the conformance suite). Like a reverse
// proxy, it rewrites its own names (Host and Origin `127.0.0.1:<port>` or `localhost:<port>`)
// to the Worker's (a token's audience is the Worker's origin); any other Host or Origin (a
// rebinding one) goes through as sent. Run as its own process, so that a test blocking its
// event loop (spawnSync) does not block the proxy: `node bearer-proxy.mjs <worker url> <token>`
// prints `listening <port>`.
import { createServer } from "node:http";

const [target, token] = process.argv.slice(2);
const worker = new URL(target);
const proxy = createServer((req, res) => {
  const chunks = [];
  req.on("data", (d) => chunks.push(d));
  req.on("end", async () => {
    try {
      const headers = { ...req.headers, authorization: `Bearer ${token}` };
      const own = [`127.0.0.1:${proxy.address().port}`, `localhost:${proxy.address().port}`];
      if (own.includes(headers.host)) headers.host = worker.host;
      if (headers.origin && own.some((h) => headers.origin === `http://${h}`)) headers.origin = worker.origin;
      delete headers["content-length"];
      delete headers.connection;
      const body = ["GET", "HEAD"].includes(req.method) ? undefined : Buffer.concat(chunks);
      const r = await fetch(`${target}${req.url}`, { method: req.method, headers, body });
      const out = {};
      r.headers.forEach((v, k) => { if (!["content-encoding", "content-length", "transfer-encoding", "connection"].includes(k)) out[k] = v; });
      res.writeHead(r.status, out);
      res.end(Buffer.from(await r.arrayBuffer()));
    } catch (e) {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end(String(e));
    }
  });
});
proxy.listen(0, "127.0.0.1", () => console.log(`listening ${proxy.address().port}`));
