#!/usr/bin/env bash
# End-to-end tests: the real `portcullis run` between Debian's chromium (driven
# by playwright-core) and oidc-provider, the OpenID-Certified Node provider.
#
#   tests/e2e/run.sh [node --test file or pattern ...]
#
# Needs: node >= 20 and npm, /usr/bin/chromium (apt-get install chromium), openssl,
# cargo. Honours CARGO_TARGET_DIR; E2E_PROXY_BIN skips the build and uses that
# binary; E2E_DEVIDP_BIN (default: examples/bench_idp next to it) is the
# development provider of scenarios/providers.test.js. Screenshots and logs
# land in tests/e2e/artifacts/ (E2E_ARTIFACTS); E2E_UPDATE_DOCS=1 also copies
# the screenshots to docs/screenshots/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
started=$SECONDS

log() { printf '\n=== e2e: %s\n' "$*"; }

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "e2e: no chromium at $chromium: install Debian's (apt-get install -y chromium)" >&2
  exit 1
fi
for tool in node npm openssl; do
  command -v "$tool" >/dev/null || { echo "e2e: $tool is required" >&2; exit 1; }
done

log "npm ci ($(node --version), $("$chromium" --version 2>/dev/null | head -n1))"
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

if [ -z "${E2E_PROXY_BIN:-}" ]; then
  log "cargo build (portcullis, and the development provider: example bench_idp)"
  (cd "$repo" && cargo build --locked --bin portcullis --example bench_idp)
  target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
  export E2E_PROXY_BIN="$target_dir/debug/portcullis"
fi
[ -x "$E2E_PROXY_BIN" ] || { echo "e2e: no proxy binary at $E2E_PROXY_BIN" >&2; exit 1; }
log "proxy: $E2E_PROXY_BIN"
export E2E_DEVIDP_BIN="${E2E_DEVIDP_BIN:-$(dirname "$E2E_PROXY_BIN")/examples/bench_idp}"
[ -x "$E2E_DEVIDP_BIN" ] || echo "e2e: no development provider at $E2E_DEVIDP_BIN (scenarios/providers.test.js will fail)" >&2

export E2E_ARTIFACTS="${E2E_ARTIFACTS:-$here/artifacts}"
mkdir -p "$E2E_ARTIFACTS"

log "node --test"
cd "$here"
if [ "$#" -gt 0 ]; then
  files=("$@")
else
  files=(scenarios/*.test.js)
fi
status=0
node --test --test-concurrency="${E2E_CONCURRENCY:-1}" --test-timeout=180000 \
  --test-reporter=spec "${files[@]}" || status=$?

log "done in $((SECONDS - started)) s (artifacts: $E2E_ARTIFACTS)"
exit "$status"
