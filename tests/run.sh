#!/usr/bin/env bash
# The test command (README "Quick start", and what .ci/run runs after fmt,
# clippy and the linters): installs what the tests start for real when it is
# missing (Debian's nginx-light for forward-auth, redis-server for the shared
# session store, radicale for the legacy-app test, chromium and openssl for the
# browser suite), then runs the Rust tests and the end-to-end browser suite.
#
#   bash tests/run.sh               # install what is missing, then test
#   bash tests/run.sh --deps-only   # only the install (.ci/run, before clippy)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n=== %s\n' "$*"; }

packages=(ca-certificates pkg-config nginx-light redis-server radicale chromium openssl)
missing=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ "${1:-}" = "--deps-only" ] && exit 0

log "cargo test --workspace --locked"
cargo test --workspace --locked

log "end-to-end: oidc-provider + Debian chromium (tests/e2e/run.sh)"
bash tests/e2e/run.sh
