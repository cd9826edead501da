// The runtime floor: a trivial Worker under the same wrangler dev as FlowCP. It answers any POST
// with a small JSON-RPC-shaped body, so the benchmark can subtract what workerd and wrangler's
// local proxy cost by themselves.
export default {
  async fetch(request) {
    const body = await request.text();
    let id = null;
    try { id = JSON.parse(body).id ?? null; } catch { /* not JSON */ }
    return new Response(JSON.stringify({ jsonrpc: "2.0", id, result: { content: [{ type: "text", text: "ok" }] } }), {
      headers: { "content-type": "application/json" },
    });
  },
};
