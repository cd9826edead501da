#!/bin/sh
# Builds an earlier FlowCP's Worker so `make bench` measures it beside this one in the same run
# (same machine, same moment): `make bench BASELINE=<commit>`. The checkout is a git worktree
# outside this one (cargo would take a nested one for a member of this workspace), under
# $TMPDIR/flowcp-bench-baseline/<rev>; it borrows this checkout's node_modules, built dashboard
# and cargo target directory (so only the FlowCP crate itself is compiled again). Prints its path.
set -eu
cd "$(dirname "$0")/.."
REV="${1:?usage: bench-baseline.sh <commit>}"
SHORT="$(git rev-parse --short "$REV")"
DIR="${TMPDIR:-/tmp}/flowcp-bench-baseline/$SHORT"
if [ ! -f "$DIR/build/worker/shim.mjs" ]; then
  rm -rf "$DIR"
  git worktree prune
  git worktree add --force --detach "$DIR" "$REV" >&2
  ln -sfn "$PWD/node_modules" "$DIR/node_modules"
  mkdir -p "$DIR/dashboard"
  ln -sfn "$PWD/dashboard/dist" "$DIR/dashboard/dist"
  (cd "$DIR" && CARGO_TARGET_DIR="$OLDPWD/target" sh scripts/build-worker.sh) >&2
fi
echo "$DIR"
