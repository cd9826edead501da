#!/bin/sh
# Builds the Worker: Rust -> wasm32 (opt-level z) -> wasm-bindgen -> build/worker/shim.mjs.
# Called by wrangler ([build] in wrangler.toml) and by `make build`. FLOWCP_SKIP_BUILD=1 skips
# it (the e2e tests build once, then start several `wrangler dev` instances).
set -eu
[ "${FLOWCP_SKIP_BUILD:-}" = "1" ] && [ -f build/worker/shim.mjs ] && exit 0
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_PROFILE_RELEASE_OPT_LEVEL="${FLOWCP_WASM_OPT_LEVEL:-z}"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$HOME/.cargo/bin/wasm-bindgen}"
if [ -z "${ESBUILD_BIN:-}" ]; then
  for f in node_modules/@esbuild/*/bin/esbuild; do [ -x "$f" ] && ESBUILD_BIN="$PWD/$f" && export ESBUILD_BIN && break; done
fi
FLOWCP_GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo dev)"
export FLOWCP_GIT_REV
exec worker-build --release
