#!/usr/bin/env bash
# Builds every cargo-fuzz target once, then fuzzes each TARGET (default: all)
# for SECONDS (default 60) from its committed seeds; exits 1 if any target
# finds a crash, an invariant violation (a panic), a timeout or an OOM.
#
#   fuzz/run.sh 60                        # every target, 60 s each
#   fuzz/run.sh 300 jwt_verify            # one target, 5 minutes
#   fuzz/run.sh 0                         # only replay seeds and corpus (a smoke test)
#
# Targets: normalize_rules, redirect_target, session_cookie, jwt_verify,
# config_load (fuzz/fuzz_targets/*.rs; each states its invariants on top).
#
# Toolchain: nightly when rustup has one (`cargo +nightly fuzz`), else the
# default toolchain with RUSTC_BOOTSTRAP=1 (cargo-fuzz passes `-Z` flags only
# for sanitizers; the fallback makes those work on stable too). cargo-fuzz is
# installed (`cargo install cargo-fuzz --locked`) when missing.
#
# Environment:
#   FUZZ_TOOLCHAIN  the rustup toolchain to build with (default: nightly when
#                   installed, else the default one with RUSTC_BOOTSTRAP=1)
#   FUZZ_SANITIZER  none (default: portcullis forbids `unsafe`, and a build
#                   without one runs faster and is smaller) or address, leak,
#                   memory, thread (on stable these need RUSTC_BOOTSTRAP=1)
#   FUZZ_JOBS       cargo build jobs (default: cargo's choice)
#
# Each target reads seeds/<target>/ and <target>.dict; new inputs go to
# corpus/<target>/ and a failing input to artifacts/<target>/ (both ignored by
# git). Reproduce one with target/<triple>/release/<target> FILE.
set -euo pipefail

usage() {
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
}

seconds="${1:-60}"
case "$seconds" in
    ''|*[!0-9]*) usage ;;
esac
[ "$#" -gt 0 ] && shift

cd "$(dirname "$0")"
all=()
for file in fuzz_targets/*.rs; do
    name="${file#fuzz_targets/}"
    all+=("${name%.rs}")
done
targets=("$@")
[ "${#targets[@]}" -eq 0 ] && targets=("${all[@]}")
for target in "${targets[@]}"; do
    [ -f "fuzz_targets/$target.rs" ] || { echo "unknown target: $target (have: ${all[*]})" >&2; exit 2; }
done

toolchain="${FUZZ_TOOLCHAIN:-}"
if [ -z "$toolchain" ] && cargo +nightly --version >/dev/null 2>&1; then
    toolchain=nightly
fi
if [ -n "$toolchain" ]; then
    cargo=(cargo "+$toolchain")
    rustc=(rustc "+$toolchain")
else
    cargo=(cargo)
    rustc=(rustc)
fi
case "$toolchain" in
    nightly*) ;;
    *)
        echo "not nightly: building with $("${cargo[@]}" --version) and RUSTC_BOOTSTRAP=1" >&2
        export RUSTC_BOOTSTRAP=1
        ;;
esac
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

triple="$("${rustc[@]}" -vV | sed -n 's/^host: //p')"
sanitizer="${FUZZ_SANITIZER:-none}"
# No debuginfo: panics still name file and line; a backtrace names functions.
export RUSTFLAGS="-Cdebuginfo=0 ${RUSTFLAGS:-}"
[ -n "${FUZZ_JOBS:-}" ] && export CARGO_BUILD_JOBS="$FUZZ_JOBS"

# The lock file must be complete: a build may not resolve anything anew.
"${cargo[@]}" fetch --locked --quiet
"${cargo[@]}" fuzz build --sanitizer "$sanitizer" --target "$triple"
bin_dir="${CARGO_TARGET_DIR:-target}/$triple/release"

failed=()
for target in "${targets[@]}"; do
    case "$target" in
        normalize_rules) max_len=256 ;;
        redirect_target) max_len=512 ;;
        session_cookie) max_len=1024 ;;
        jwt_verify) max_len=2048 ;;
        *) max_len=4096 ;;
    esac
    dict=()
    [ -f "$target.dict" ] && dict=(-dict="$target.dict")
    mkdir -p "corpus/$target" "artifacts/$target"
    budget=(-max_total_time="$seconds")
    [ "$seconds" -eq 0 ] && budget=(-runs=0)
    echo "=== $target: ${seconds}s" >&2
    if ! "$bin_dir/$target" "corpus/$target" "seeds/$target" \
        "${dict[@]}" \
        -max_len="$max_len" \
        -timeout=10 \
        "${budget[@]}" \
        -artifact_prefix="artifacts/$target/" \
        -print_final_stats=1; then
        failed+=("$target")
    fi
done

passed=$(( ${#targets[@]} - ${#failed[@]} ))
if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED: ${failed[*]} (inputs under $(pwd)/artifacts/)" >&2
    echo "fuzz: $passed passed, ${#failed[@]} failed"
    exit 1
fi
echo "ok: ${targets[*]} (${seconds}s each)" >&2
# The plain closing line CI reads: one line per run of this script.
echo "fuzz: $passed passed, 0 failed"
