#!/bin/sh
# A short, coverage-guided run of every fuzz target on stable Rust (part of `make test`, so the
# targets keep compiling and the parsers meet a few hundred thousand hostile inputs per run).
# cargo-fuzz needs nightly for sanitizers; the coverage instrumentation libFuzzer steers by is
# stable (the same flags cargo-fuzz passes). Long runs: FUZZ_SECONDS=300 sh scripts/fuzz-smoke.sh;
# one target: FUZZ_TARGETS=dispatch.
set -eu
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-15}"
TARGET="$(rustc -vV | awk '/^host:/ {print $2}')"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# The fuzz crate is its own workspace; start from the main lock so it builds the same versions.
[ -f fuzz/Cargo.lock ] || cp Cargo.lock fuzz/Cargo.lock
# --target keeps the instrumentation off build scripts; a separate target dir keeps it off the
# ordinary builds.
cargo build --release --manifest-path fuzz/Cargo.toml --target-dir target/fuzz --target "$TARGET"
BIN="target/fuzz/$TARGET/release"

TARGETS="${FUZZ_TARGETS:-import parsers dispatch request sealed}"
# FUZZ_CORPUS_DIR keeps the grown corpus (long runs); by default it is thrown away.
if [ -n "${FUZZ_CORPUS_DIR:-}" ]; then
  WORK="$FUZZ_CORPUS_DIR"
else
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
fi
# Seeds: the committed corpus per target (fuzz/seeds/<target>), and small real documents.
for t in $TARGETS; do
  mkdir -p "$WORK/$t"
  cp fuzz/seeds/"$t"/* "$WORK/$t/"
done
for f in ../shared/corpus/openapi/examples/3.0/petstore.json ../shared/corpus/openapi/examples/2.0/petstore-simple.json \
         ../shared/corpus/openapi/examples/3.1/webhooks.json; do
  [ -f "$f" ] && [ -d "$WORK/import" ] && cp "$f" "$WORK/import/"
done

mkdir -p target/fuzz-artifacts
for t in $TARGETS; do
  echo "fuzz: $t for ${SECONDS_PER_TARGET} s"
  "$BIN/$t" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="target/fuzz-artifacts/$t-" -print_final_stats=1 "$WORK/$t" 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done|==|SUMMARY|thread .* panicked)" || true
  # libFuzzer exits non-zero on a crash; re-run the crash's artifact check explicitly.
  if ls target/fuzz-artifacts/"$t"-* >/dev/null 2>&1; then
    echo "fuzz: $t found a failing input (kept; make it a regression test, then delete it):" >&2
    ls target/fuzz-artifacts/"$t"-* >&2
    exit 1
  fi
done
