"""Serves one OpenAPI document as an MCP server with FastMCP (PyPI `fastmcp` 4.x), for benchmarks.

Usage: bench/.peers/venv/bin/python bench/peers/fastmcp_peer.py SPEC.json BASE_URL PORT
Serves MCP over Streamable HTTP at http://127.0.0.1:PORT/mcp; tool calls go to BASE_URL.
Started by bench/peers/start.mjs; installed by bench/peers/setup.sh.
"""

import json
import sys

import httpx2
from fastmcp import FastMCP


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit("usage: fastmcp_peer.py SPEC.json BASE_URL PORT")
    spec_path, base_url, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    # fastmcp 4.x takes an httpx2 client (not httpx); its base_url carries any path prefix of the
    # document's servers (e.g. http://127.0.0.1:8080/v2), and operation paths are appended to it.
    client = httpx2.AsyncClient(base_url=base_url, timeout=30.0)
    title = (spec.get("info") or {}).get("title") or "OpenAPI Server"
    mcp = FastMCP.from_openapi(openapi_spec=spec, client=client, name=title)
    # transport="http" is Streamable HTTP; defaults otherwise (stateful sessions, SSE responses).
    mcp.run(transport="http", host="127.0.0.1", port=port, path="/mcp", show_banner=False)


if __name__ == "__main__":
    main()
