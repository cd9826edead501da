#!/bin/sh
# Applies local D1 migrations, runs the Worker under wrangler dev (workerd, local D1 + KV), and
# seeds the demo (account, app, published server) when the local database is empty.
set -eu
cd "$(dirname "$0")/.."
PORT="${PORT:-8787}"
export WRANGLER_SEND_METRICS=false
sh scripts/build-worker.sh
npx wrangler d1 migrations apply DB --local
echo "FlowCP: http://127.0.0.1:$PORT  (health: /healthz; mail FlowCP sends: /dev/outbox?to=<address>)"
npx wrangler dev --ip 127.0.0.1 --port "$PORT" --test-scheduled --show-interactive-dev-session=false &
WRANGLER=$!
trap 'kill $WRANGLER 2>/dev/null || true' INT TERM EXIT
node scripts/seed-demo.mjs "http://127.0.0.1:$PORT" || echo "demo seeding failed (the server still runs)" >&2
wait $WRANGLER
