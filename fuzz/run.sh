#!/usr/bin/env bash
# Runs the cargo-fuzz target `normalize_rules` for SECONDS (default 60) and
# fails if libFuzzer finds a crash or an invariant violation.
#
#   fuzz/run.sh 60
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs
# cargo-fuzz when it is missing. New inputs go to fuzz/corpus/ (ignored by git);
# the checked-in seeds in fuzz/seeds/ are read, never written. A failing input
# is saved under fuzz/artifacts/normalize_rules/ and printed.
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in
    ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

cd "$(dirname "$0")"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

mkdir -p corpus/normalize_rules
cargo +nightly fuzz run normalize_rules corpus/normalize_rules seeds/normalize_rules -- \
    -dict=normalize.dict \
    -max_len=256 \
    -max_total_time="$seconds" \
    -print_final_stats=1
