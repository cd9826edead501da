// A fast fake of the Swagger Petstore (corpus examples/3.0/petstore.json) for benchmarks: every
// operation answers a small canned JSON at once. Run as its own process so it never competes
// with the load generator's event loop: `node bench/upstream.mjs PORT`.
import { createServer } from "node:http";

const pet = (id) => ({ id, name: `pet-${id}`, status: "available", photoUrls: [], tags: [{ id: 1, name: "bench" }] });

const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const url = new URL(req.url, "http://x");
    let status = 200;
    let body;
    const m = url.pathname.match(/^\/v2\/pet\/(\d+)$/);
    // The OAuth provider of the oauth-mode row: signs in at once, issues a fixed user token.
    if (url.pathname === "/oauth/authorize") {
      const back = new URL(url.searchParams.get("redirect_uri"));
      back.searchParams.set("code", "bench-code");
      back.searchParams.set("state", url.searchParams.get("state"));
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (url.pathname === "/oauth/token") {
      const p = new URLSearchParams(Buffer.concat(chunks).toString());
      const ok = p.get("code") === "bench-code" || p.get("grant_type") === "refresh_token";
      // An OpenID ID token (the user_key row's portal identifies the user by it).
      const idToken = [{ alg: "none" }, { iss: "https://bench-idp.example", sub: "bench-user", aud: p.get("client_id") }, {}]
        .map((x, i) => (i < 2 ? Buffer.from(JSON.stringify(x)).toString("base64url") : "")).join(".");
      const text = JSON.stringify(ok ? { access_token: "bench-user-token", refresh_token: "bench-user-refresh", expires_in: 28800, token_type: "bearer", id_token: idToken } : { error: "invalid_grant" });
      res.writeHead(ok ? 200 : 400, { "content-type": "application/json" });
      return res.end(text);
    }
    if (req.method === "GET" && m) body = pet(Number(m[1]));
    else if (req.method === "GET" && url.pathname === "/v2/pet/findByStatus") body = [pet(1), pet(2), pet(3)];
    else if (req.method === "POST" && url.pathname === "/v2/pet") {
      try { body = { ...JSON.parse(Buffer.concat(chunks).toString() || "{}"), id: 99 }; } catch { status = 400; body = { error: "bad json" }; }
    } else if (req.method === "GET" && url.pathname === "/v2/store/inventory") body = { available: 3, sold: 1 };
    else if (req.method === "GET" && /^\/any\/g\d+\/res\d+\/[^/]+$/.test(url.pathname)) {
      // One resource of the generated 10,000-operation API (`flowcp large-doc`), as its schema says.
      body = { id: url.pathname.split("/").pop(), name: "resource" };
    } else if (req.method === "GET") body = {}; // any other GET (probes of big documents' servers)
    else { status = 404; body = { error: "not found" }; }
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
