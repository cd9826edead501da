// The benchmark's floors, JS Workers under the same wrangler dev as FlowCP (issue 18):
//
// - `/mcp/floor`, the runtime floor: answers any POST with a small JSON-RPC-shaped body, so the
//   benchmark can subtract what workerd and wrangler's local proxy cost by themselves.
// - `/mcp/forward`, the forwarding floor: the least an MCP server in front of an API can do. It
//   speaks just enough MCP for the official SDK client (initialize, notifications, tools/list,
//   tools/call; stateless), maps each Petstore tool call to the same upstream request FlowCP sends (path,
//   query or JSON body) with one `fetch` to `UPSTREAM`, and returns the upstream's body as text.
//   No validation, no auth, no audit: FlowCP's time minus this one is FlowCP's own cost.
const ROUTES = {
  getPetById: (a) => ({ method: "GET", path: `/v2/pet/${encodeURIComponent(a.petId)}` }),
  findPetsByStatus: (a) => ({ method: "GET", path: `/v2/pet/findByStatus?${[].concat(a.status ?? []).map((s) => `status=${encodeURIComponent(s)}`).join("&")}` }),
  addPet: (a) => ({ method: "POST", path: "/v2/pet", body: JSON.stringify(a) }),
};

const json = (value, status = 200) =>
  new Response(JSON.stringify(value), { status, headers: { "content-type": "application/json" } });

async function forward(message, env) {
  const { id = null, method, params } = message;
  if (method === "initialize") {
    return json({ jsonrpc: "2.0", id, result: { protocolVersion: params?.protocolVersion ?? "2025-06-18", capabilities: { tools: {} }, serverInfo: { name: "forwarding-floor", version: "1" } } });
  }
  if (id === null || method?.startsWith("notifications/")) return new Response(null, { status: 202 });
  if (method === "tools/list") {
    // The benchmark passes the measured server's own tool list (TOOLS), so the clients of both
    // do the same work on it; without it, a minimal list.
    const tools = env.TOOLS ? JSON.parse(env.TOOLS) : Object.keys(ROUTES).map((name) => ({ name, inputSchema: { type: "object" } }));
    return json({ jsonrpc: "2.0", id, result: { tools } });
  }
  if (method !== "tools/call") return json({ jsonrpc: "2.0", id, error: { code: -32601, message: "method not found" } });
  const route = ROUTES[params?.name];
  if (!route) return json({ jsonrpc: "2.0", id, result: { isError: true, content: [{ type: "text", text: "unknown tool" }] } });
  const { method: verb, path, body } = route(params.arguments ?? {});
  const upstream = await fetch(`${env.UPSTREAM}${path}`, { method: verb, body, headers: body ? { "content-type": "application/json" } : {} });
  const text = await upstream.text();
  return json({ jsonrpc: "2.0", id, result: { isError: !upstream.ok, content: [{ type: "text", text }] } });
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/mcp/forward") {
      if (request.method !== "POST") return new Response(null, { status: 405 });
      let message;
      try { message = await request.json(); } catch { return json({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "parse error" } }, 400); }
      return forward(message, env);
    }
    const body = await request.text();
    let id = null;
    try { id = JSON.parse(body).id ?? null; } catch { /* not JSON */ }
    return new Response(JSON.stringify({ jsonrpc: "2.0", id, result: { content: [{ type: "text", text: "ok" }] } }), {
      headers: { "content-type": "application/json" },
    });
  },
};
