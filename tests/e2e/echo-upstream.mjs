// A fake upstream API for the MCP runtime tests: it records the exact request it received and
// echoes it back, and has operations for every parameter location and style, every body kind,
// each API-key placement, and hostile responses (4xx/5xx, slow, huge, non-JSON, redirects).
import { createServer } from "node:http";
import { gzipSync } from "node:zlib";

export async function startEchoUpstream() {
  const received = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const entry = { method: req.method, url: req.url, headers: req.headers, body };
      received.push(entry);
      const url = new URL(req.url, "http://x");
      const json = (status, v) => { res.writeHead(status, { "content-type": "application/json" }); res.end(JSON.stringify(v)); };
      if (url.pathname === "/openapi.json") return json(200, document(`http://127.0.0.1:${server.address().port}`));
      if (url.pathname === "/ping") return json(200, { pong: true });
      if (url.pathname.startsWith("/status/")) return json(Number(url.pathname.slice(8)), { error: "as requested", code: Number(url.pathname.slice(8)) });
      if (url.pathname === "/slow") { setTimeout(() => json(200, { late: true }), 5000); return; }
      if (url.pathname === "/huge") { res.writeHead(200, { "content-type": "application/json" }); res.end(JSON.stringify({ data: "x".repeat(300_000) })); return; }
      // 6 MB (over FlowCP's 4 MiB read cap) without a Content-Length (chunked), and gzip-encoded
      // with the small compressed length declared: both must be read incrementally and cut.
      if (url.pathname === "/huge-chunked") { res.writeHead(200, { "content-type": "application/json" }); for (let i = 0; i < 6; i++) res.write(i === 0 ? `{"data":"${"x".repeat(1 << 20)}` : "x".repeat(1 << 20)); res.end('"}'); return; }
      if (url.pathname === "/huge-gzip") { const z = gzipSync(JSON.stringify({ data: "x".repeat(6 << 20) })); res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip", "content-length": z.length }); res.end(z); return; }
      if (url.pathname === "/html") { res.writeHead(200, { "content-type": "text/html" }); res.end("<html><body>hello</body></html>"); return; }
      if (url.pathname === "/redirect-away") { res.writeHead(302, { location: `http://localhost:${server.address().port}/ping` }); res.end(); return; }
      if (url.pathname === "/redirect-same") { res.writeHead(302, { location: "/ping" }); res.end(); return; }
      return json(200, { echo: { method: req.method, path: url.pathname, query: url.search, body } });
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}`, received, close: () => new Promise((r) => server.close(r)) };
}

const ok = { 200: { description: "ok", content: { "application/json": { schema: { type: "object" } } } } };

function document(base) {
  return {
    openapi: "3.0.3",
    info: { title: "Echo", version: "1.0.0" },
    servers: [{ url: base }],
    components: {
      securitySchemes: {
        headerKey: { type: "apiKey", in: "header", name: "X-Api-Key" },
        queryKey: { type: "apiKey", in: "query", name: "api_key" },
        cookieKey: { type: "apiKey", in: "cookie", name: "key" },
        bearer: { type: "http", scheme: "bearer" },
      },
    },
    paths: {
      "/ping": { get: { operationId: "ping", responses: ok } },
      "/items/{id}": {
        get: {
          operationId: "getItem",
          parameters: [
            { name: "id", in: "path", required: true, schema: { type: "string" } },
            { name: "tags", in: "query", schema: { type: "array", items: { type: "string" } } },
            { name: "ids", in: "query", explode: false, schema: { type: "array", items: { type: "integer" } } },
            { name: "colors", in: "query", style: "pipeDelimited", explode: false, schema: { type: "array", items: { type: "string" } } },
            { name: "words", in: "query", style: "spaceDelimited", explode: false, schema: { type: "array", items: { type: "string" } } },
            { name: "filter", in: "query", style: "deepObject", explode: true, schema: { type: "object", properties: { min: { type: "integer" }, max: { type: "integer" } } } },
            { name: "X-Trace", in: "header", schema: { type: "string" } },
            { name: "session_hint", in: "cookie", schema: { type: "string" } },
          ],
          responses: ok,
        },
      },
      "/label/{val}": { get: { operationId: "labelStyle", parameters: [{ name: "val", in: "path", required: true, style: "label", schema: { type: "array", items: { type: "string" } } }], responses: ok } },
      "/matrix/{val}": { get: { operationId: "matrixStyle", parameters: [{ name: "val", in: "path", required: true, style: "matrix", explode: true, schema: { type: "array", items: { type: "string" } } }], responses: ok } },
      "/json": { post: { operationId: "postJson", requestBody: { required: true, content: { "application/json": { schema: { type: "object", required: ["name"], properties: { name: { type: "string" }, count: { type: "integer" } } } } } }, responses: ok } },
      "/form": { post: { operationId: "postForm", requestBody: { content: { "application/x-www-form-urlencoded": { schema: { type: "object", properties: { a: { type: "string" }, b: { type: "integer" } } } } } }, responses: ok } },
      "/multipart": { post: { operationId: "postMultipart", requestBody: { content: { "multipart/form-data": { schema: { type: "object", properties: { title: { type: "string" }, file: { type: "string", format: "binary" } } } } } }, responses: ok } },
      "/text": { post: { operationId: "postText", requestBody: { content: { "text/plain": { schema: { type: "string" } } } }, responses: ok } },
      "/status/{code}": { get: { operationId: "status", parameters: [{ name: "code", in: "path", required: true, schema: { type: "integer" } }], responses: ok } },
      "/slow": { get: { operationId: "slow", responses: ok } },
      "/huge": { get: { operationId: "huge", responses: ok } },
      "/huge-chunked": { get: { operationId: "hugeChunked", responses: ok } },
      "/huge-gzip": { get: { operationId: "hugeGzip", responses: ok } },
      "/html": { get: { operationId: "html", responses: ok } },
      "/redirect-away": { get: { operationId: "redirectAway", responses: ok } },
      "/redirect-same": { get: { operationId: "redirectSame", responses: ok } },
    },
  };
}
