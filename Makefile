# FlowCP — the two commands: `make dev` (run locally) and `make test` (everything CI runs).
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
PORT ?= 8787

.PHONY: dev test setup build lint unit fuzz e2e size bench size-matrix profile import-large large-servers retention-volume soak deploy clean

## make dev: install what is missing, build, migrate local D1, serve http://127.0.0.1:$(PORT)
dev: setup
	PORT=$(PORT) sh scripts/dev.sh

## make test: setup, fmt, clippy (host + wasm32), cargo test, a short fuzz run, release wasm
## build, size budget, e2e suite
test: setup lint unit fuzz build size e2e

setup:
	sh scripts/setup.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --lib --target wasm32-unknown-unknown -- -D warnings
	node scripts/gen-api-types.mjs --check
	npx tsc -p dashboard

unit:
	cargo test --workspace
	npm test -w dashboard

## a short coverage-guided run of every fuzz target (FUZZ_SECONDS=300 for a longer one)
fuzz:
	sh scripts/fuzz-smoke.sh

build:
	sh scripts/build-worker.sh

size:
	@node scripts/size.mjs

e2e:
	sh scripts/setup-browser.sh
	FLOWCP_SKIP_BUILD=1 node --test --test-concurrency=1 --test-timeout=900000 tests/e2e/*.test.mjs

## make bench: FlowCP vs the direct floor, the runtime floor and peers (not a test; ~10 min);
## BASELINE=<commit> also measures that commit's Worker in the same run
bench: setup build
	cargo build --release --bin flowcp
	sh bench/peers/setup.sh
	baseline=""; if [ -n "$(BASELINE)" ]; then baseline="$$(sh scripts/bench-baseline.sh $(BASELINE))" || exit 1; fi; \
	  BENCH_BASELINE="$$baseline" FLOWCP_SKIP_BUILD=1 node bench/run.mjs

## make size-matrix: the Worker at opt-level z, s, 3, with and without wasm-opt: size, start-up and
## hot path of each under Miniflare (not a test; ~30 min; leaves the default build in build/)
size-matrix: setup
	node bench/size-matrix.mjs

## make import-large: imports of GitHub, Stripe and a generated 10,000-operation document inside the
## Worker under Miniflare: request time and wasm high-water mark of each (not a test; ~3 min)
import-large: setup build
	cargo build --release --bin flowcp
	node bench/import-large.mjs

## make large-servers: GitHub's server (every tools/list page, discovery search) and a published
## server of 10,000 tools (publish, pages, tools/call beside Petstore's) under Miniflare (~4 min);
## BASELINE_CONFIG=<checkout>/wrangler.toml measures another build in the same run
large-servers: setup build
	cargo build --release --bin flowcp
	node bench/large-servers.mjs

## make retention-volume: the hourly cron against 1,000,000 expired audit rows in a local D1
## (ROWS=<n> to change), run until none is left: rows and time per run, time per 100k rows
retention-volume: setup build
	node bench/retention-volume.mjs

## make soak: N SDK clients over M servers for 10 minutes against a faulty upstream: req/s,
## p50/p99, results by kind, audit rows = calls, workerd RSS over time (SOAK_CLIENTS=32,
## SOAK_SERVERS=4, SOAK_SECONDS=600; bench/soak.mjs)
soak: setup build
	node bench/soak.mjs

## make profile: a CPU profile of the Worker's tools/call hot path (bench/results/hot-path.cpuprofile)
profile: setup build
	FLOWCP_SKIP_BUILD=1 node bench/profile.mjs

## make deploy: build and deploy to Cloudflare (FLOWCP_DEPLOY=pages for the dashboard on Pages;
## DRY_RUN=1 to build and check without uploading); see docs/operations.md
deploy:
	sh scripts/deploy.sh

clean:
	rm -rf build target dashboard/dist .wrangler
