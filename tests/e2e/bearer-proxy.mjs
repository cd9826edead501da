// A proxy on 127.0.0.1 that adds `Authorization: Bearer <token>` to every request and forwards
// it to a Worker, for clients that cannot send headers (the conformance suite). Like a reverse
// proxy, it rewrites its own names (Host and Origin `127.0.0.1:<port>` or `localhost:<port>`)
// to the Worker's (a token's audience is the Worker's origin); any other Host or Origin (a
// rebinding one) goes through as sent. Run as its own process, so that a test blocking its
// event loop (spawnSync) does not block the proxy: `node bearer-proxy.mjs <worker url> <token>`
// prints `listening <port>`.
import { createServer, request } from "node:http";

const [target, token] = process.argv.slice(2);
const worker = new URL(target);
const proxy = createServer((req, res) => {
  const chunks = [];
  req.on("data", (d) => chunks.push(d));
  req.on("end", () => {
    try {
      const headers = { ...req.headers, authorization: `Bearer ${token}` };
      const own = [`127.0.0.1:${proxy.address().port}`, `localhost:${proxy.address().port}`];
      if (own.includes(headers.host)) headers.host = worker.host;
      if (headers.origin && own.some((h) => headers.origin === `http://${h}`)) headers.origin = worker.origin;
      const body = Buffer.concat(chunks);
      headers["content-length"] = String(body.length);
      delete headers["transfer-encoding"];
      delete headers.connection;
      // node:http, not fetch: fetch would replace the Host header with the URL's.
      const up = request({ host: worker.hostname, port: worker.port, path: req.url, method: req.method, headers }, (r) => {
        const out = { ...r.headers };
        delete out["content-length"];
        delete out["transfer-encoding"];
        delete out.connection;
        const parts = [];
        r.on("data", (d) => parts.push(d));
        r.on("end", () => { res.writeHead(r.statusCode, out); res.end(Buffer.concat(parts)); });
      });
      up.on("error", (e) => { res.writeHead(502, { "content-type": "text/plain" }); res.end(String(e)); });
      up.end(body);
    } catch (e) {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end(String(e));
    }
  });
});
proxy.listen(0, "127.0.0.1", () => console.log(`listening ${proxy.address().port}`));
