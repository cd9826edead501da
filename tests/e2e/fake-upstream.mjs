// A fake upstream API on 127.0.0.1 that serves its own OpenAPI document and records every
// request it receives (method, url, headers, body), for e2e tests of imports, probes and calls.
import { createServer } from "node:http";

export async function startFakeUpstream({ apiKey = null } = {}) {
  const received = [];
  let version = 1;
  const server = createServer((req, res) => {
    let chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      received.push({ method: req.method, url: req.url, headers: req.headers, body });
      const base = `http://127.0.0.1:${server.address().port}`;
      const send = (status, value, type = "application/json") => {
        res.writeHead(status, { "content-type": type });
        res.end(typeof value === "string" ? value : JSON.stringify(value));
      };
      const url = new URL(req.url, base);
      if (url.pathname === "/openapi.json") return send(200, document(base, version));
      if (url.pathname === "/redirect-to-metadata") {
        res.writeHead(302, { location: "http://169.254.169.254/latest/meta-data" });
        return res.end();
      }
      if (apiKey && req.headers["x-api-key"] !== apiKey) return send(401, { error: "bad key" });
      if (url.pathname === "/api/widgets" && req.method === "GET") return send(200, { items: [{ id: 1, name: "gear" }] });
      if (url.pathname.startsWith("/api/widgets/") && req.method === "GET") return send(200, { id: 1, name: "gear" });
      if (url.pathname === "/api/widgets" && req.method === "POST") return send(201, { id: 2, ...JSON.parse(body || "{}") });
      return send(404, { error: "not found" });
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    received,
    setVersion: (v) => (version = v),
    close: () => new Promise((r) => server.close(r)),
  };
}

/** Version 1 has list/get/create; version 2 drops create and adds delete. */
function document(base, version) {
  const paths = {
    "/widgets": {
      get: {
        operationId: "listWidgets",
        summary: "List widgets",
        tags: ["widgets"],
        parameters: [{ name: "limit", in: "query", schema: { type: "integer" } }],
        responses: { 200: { description: "ok", content: { "application/json": { schema: { type: "object" } } } } },
      },
    },
    "/widgets/{widgetId}": {
      get: {
        operationId: "getWidget",
        summary: "Get a widget",
        tags: ["widgets"],
        parameters: [{ name: "widgetId", in: "path", required: true, schema: { type: "integer" } }],
        responses: { 200: { description: "ok" } },
      },
    },
  };
  if (version === 1) {
    paths["/widgets"].post = {
      operationId: "createWidget",
      summary: "Create a widget",
      tags: ["admin"],
      requestBody: { content: { "application/json": { schema: { type: "object", properties: { name: { type: "string" } } } } } },
      responses: { 201: { description: "created" } },
    };
  } else {
    paths["/widgets/{widgetId}"].delete = {
      operationId: "deleteWidget",
      summary: "Delete a widget",
      parameters: [{ name: "widgetId", in: "path", required: true, schema: { type: "integer" } }],
      responses: { 204: { description: "deleted" } },
    };
  }
  return {
    openapi: "3.0.3",
    info: { title: "Widgets", version: `${version}.0.0` },
    servers: [{ url: `${base}/api` }],
    components: { securitySchemes: { key: { type: "apiKey", in: "header", name: "X-API-Key" } } },
    security: [{ key: [] }],
    paths,
  };
}
