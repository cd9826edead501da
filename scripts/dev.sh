#!/bin/sh
# Applies local D1 migrations and runs the Worker under wrangler dev (workerd, local D1 + KV).
set -eu
cd "$(dirname "$0")/.."
PORT="${PORT:-8787}"
export WRANGLER_SEND_METRICS=false
sh scripts/build-worker.sh
npx wrangler d1 migrations apply DB --local
echo "FlowCP: http://127.0.0.1:$PORT  (health: http://127.0.0.1:$PORT/healthz)"
exec npx wrangler dev --ip 127.0.0.1 --port "$PORT" --test-scheduled --show-interactive-dev-session=false
