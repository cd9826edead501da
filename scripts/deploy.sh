#!/bin/sh
# make deploy: build FlowCP and deploy it to Cloudflare.
#
#   make deploy                        one Worker: the API, MCP, OAuth and the dashboard as its
#                                      static assets, on one origin (the recommended shape)
#   make deploy FLOWCP_DEPLOY=pages    the dashboard as a Cloudflare Pages project on the same
#                                      custom domain (FLOWCP_DOMAIN), the Worker's paths routed
#                                      to the Worker by zone routes
#   DRY_RUN=1 make deploy ...          build and check everything, upload nothing (no account)
#
# Needs CLOUDFLARE_API_TOKEN (Workers Scripts, D1, KV and, for Pages, Pages: Edit) unless DRY_RUN,
# and the D1 and KV ids in wrangler.toml (docs/operations.md, "Deploying").
set -eu
set -f # the route patterns below hold `*`: no pathname expansion anywhere in this script
cd "$(dirname "$0")/.."
target=${FLOWCP_DEPLOY:-worker}
dry=${DRY_RUN:-}
say() { printf '\n== %s\n' "$*"; }

case "$target" in worker | pages) ;; *) echo "FLOWCP_DEPLOY must be worker or pages" >&2; exit 2 ;; esac
if [ -z "$dry" ] && [ -z "${CLOUDFLARE_API_TOKEN:-}" ]; then
  echo "set CLOUDFLARE_API_TOKEN (or DRY_RUN=1 to check the build only)" >&2
  exit 2
fi
if [ "$target" = pages ] && [ -z "${FLOWCP_DOMAIN:-}" ]; then
  echo "FLOWCP_DEPLOY=pages needs FLOWCP_DOMAIN, the custom domain both are served on (flowcp.example.com)" >&2
  exit 2
fi

[ -d node_modules ] || npm ci --no-audit --no-fund
say "building the Worker (wasm32) and the dashboard"
sh scripts/build-worker.sh
npx vite build dashboard
node scripts/size.mjs

if [ -z "$dry" ]; then
  # Migrations before code: newer code may write values an older schema refuses.
  say "applying D1 migrations"
  npx wrangler d1 migrations apply DB --remote
fi

deploy_flags=""
[ -n "$dry" ] && deploy_flags="--dry-run --outdir .wrangler/deploy-dry-run"
if [ "$target" = worker ]; then
  say "deploying the Worker with the dashboard as its static assets"
  # shellcheck disable=SC2086
  npx wrangler deploy $deploy_flags
  exit 0
fi

# Pages: the Worker answers only its own paths on the domain (zone routes take precedence over
# the Pages custom domain); everything else is the Pages project, which serves index.html for
# unknown paths (deep links) since the build has no 404.html. One origin, so the __Host-
# session cookie stays first-party.
routes=""
for p in /api/* /mcp/* /mcp /oauth/* /git/* /.well-known/* /healthz /ops/* /demo/* /dev/*; do
  routes="$routes --route $FLOWCP_DOMAIN$p"
done
say "deploying the Worker on its routes of $FLOWCP_DOMAIN"
# shellcheck disable=SC2086
npx wrangler deploy $deploy_flags $routes
project=${FLOWCP_PAGES_PROJECT:-flowcp-dashboard}
if [ -n "$dry" ]; then
  say "dry run: would deploy dashboard/dist to the Pages project $project"
  exit 0
fi
say "deploying the dashboard to the Pages project $project"
# Creating a project that exists fails: that one failure is expected (any other shows below).
npx wrangler pages project create "$project" --production-branch main || true
npx wrangler pages deploy dashboard/dist --project-name "$project" --branch main --commit-dirty=true
say "once: add $FLOWCP_DOMAIN as a custom domain of $project (dashboard › Workers & Pages › $project › Custom domains)"
