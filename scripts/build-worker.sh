#!/bin/sh
# Builds the Worker: Rust -> wasm32 (opt-level z) -> wasm-bindgen -> wasm-opt -Os ->
# build/worker/shim.mjs.
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
worker-build --release
# worker-build's own wasm-opt download fails here (TOOLCHAIN.md); npm's binaryen (a pinned dev
# dependency) shrinks the module instead: about 18% less gzip, measured by `make size`.
# FLOWCP_WASM_OPT=0 skips it; FLOWCP_WASM_OPT_FLAG picks its level (bench/size-matrix.mjs compares them).
WASM_OPT="node_modules/.bin/wasm-opt"
if [ "${FLOWCP_WASM_OPT:-1}" != "0" ] && [ -x "$WASM_OPT" ]; then
  # The features rustc and wasm-bindgen emit, and no others (binaryen's newer encodings, such
  # as compact imports, do not load in workerd).
  "$WASM_OPT" "${FLOWCP_WASM_OPT_FLAG:--Os}" --enable-exception-handling --enable-reference-types --enable-multivalue \
    --enable-bulk-memory --enable-bulk-memory-opt --enable-sign-ext --enable-nontrapping-float-to-int \
    --enable-mutable-globals --enable-call-indirect-overlong \
    build/index_bg.wasm -o build/index_bg.opt.wasm
  mv build/index_bg.opt.wasm build/index_bg.wasm
fi
