#!/bin/sh
# Installs the benchmark peers into bench/.peers/ (git-ignored), skipping what is already there:
# - fastmcp (PyPI) in the venv bench/.peers/venv
# - openapi-mcp-generator (npm) in bench/.peers/omg-tool (its own package.json, not the repo's)
# Then generates + builds openapi-mcp-generator's project for each SPEC given (default: the
# corpus Petstore documents used by the benchmark); start.mjs also does that on demand.
# Only the PyPI and npm registries are needed. Usage: sh bench/peers/setup.sh [SPEC.json...]
set -eu
cd "$(dirname "$0")/.."
BENCH="$(pwd)"
PEERS="$BENCH/.peers"
FASTMCP_VERSION=4.1.2
OMG_VERSION=4.0.1

say() { printf '\033[1mpeers:\033[0m %s\n' "$*"; }
command -v python3 >/dev/null || { echo "peers: python3 not found" >&2; exit 1; }
command -v node >/dev/null || { echo "peers: node not found" >&2; exit 1; }
mkdir -p "$PEERS"

if [ "$("$PEERS/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("fastmcp"))' 2>/dev/null)" != "$FASTMCP_VERSION" ]; then
  say "installing fastmcp $FASTMCP_VERSION in $PEERS/venv (~25 s)"
  [ -x "$PEERS/venv/bin/python" ] || python3 -m venv "$PEERS/venv"
  # fastmcp 4.x depends on httpx2 itself (FastMCP.from_openapi takes an httpx2.AsyncClient).
  "$PEERS/venv/bin/pip" install --quiet --disable-pip-version-check "fastmcp==$FASTMCP_VERSION"
fi
"$PEERS/venv/bin/python" -c 'import httpx2, fastmcp' || { echo "peers: fastmcp/httpx2 do not import" >&2; exit 1; }

if [ "$(node -p "require('$PEERS/omg-tool/node_modules/openapi-mcp-generator/package.json').version" 2>/dev/null)" != "$OMG_VERSION" ]; then
  say "installing openapi-mcp-generator $OMG_VERSION in $PEERS/omg-tool (~10 s)"
  mkdir -p "$PEERS/omg-tool"
  [ -f "$PEERS/omg-tool/package.json" ] || printf '{ "name": "omg-tool", "private": true }\n' > "$PEERS/omg-tool/package.json"
  (cd "$PEERS/omg-tool" && npm install --no-audit --no-fund --loglevel=error "openapi-mcp-generator@$OMG_VERSION")
fi

# openapi-mcp-generator projects (one per document; ~15 s each the first time, skipped after).
if [ "$#" -eq 0 ]; then
  CORPUS="$BENCH/../../shared/corpus/openapi"
  [ -d "$CORPUS" ] || CORPUS="$BENCH/../shared/corpus/openapi"
  set -- "$CORPUS/examples/3.0/petstore.json" "$CORPUS/real/petstore-3.1.yaml"
fi
for spec in "$@"; do
  if [ -f "$spec" ]; then
    node "$BENCH/peers/start.mjs" --prepare "$spec"
  else
    say "no document at $spec; skipping (start.mjs generates on demand)"
  fi
done
say "peers ready: fastmcp $FASTMCP_VERSION, openapi-mcp-generator $OMG_VERSION"
