#!/bin/sh
# The dashboard's browser tests run in Debian's Chromium (driven by playwright-core): installs
# it when missing. FLOWCP_CHROMIUM points at another Chromium binary instead.
set -eu
BIN="${FLOWCP_CHROMIUM:-/usr/bin/chromium}"
[ -x "$BIN" ] && exit 0
printf '\033[1msetup:\033[0m %s\n' "installing Debian's chromium for the dashboard tests (once per machine)"
SUDO=""
[ "$(id -u)" = "0" ] || SUDO="sudo"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || {
  $SUDO apt-get update >/dev/null 2>&1
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
}
[ -x "$BIN" ] || { echo "setup: no Chromium at $BIN" >&2; exit 1; }
