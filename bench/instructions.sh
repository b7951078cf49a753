#!/usr/bin/env bash
# Instructions per request (callgrind), the measure that does not move with the
# machine's load: wall-clock CPU on a shared 2-core box varies by 5-10% between
# runs, an instruction count by 1-2% (how often the runtime parks). For each
# target, valgrind runs the server with instrumentation off, wrk warms it up,
# instrumentation is switched on for a steady wrk run (-t1 -c4), and the
# instructions executed are divided by the requests wrk counted.
#
# Targets: public and session (examples/bench_stack: the development provider,
# a proxy with ten routes, alice signed in; session = /app with a role rule and
# the identity headers), and reference (../shared/perf-reference `localpool`,
# one thread). All in front of one nginx answering "hello".
#
# Usage: bash bench/instructions.sh [SECONDS=5] [TARGET...]   (default: all three)
# Environment (all optional):
#   BIN=path/to/bench_stack   another build (e.g. a baseline worktree's)
#   KEEP=DIR                  keep each target's callgrind output there
#                             (callgrind_annotate DIR/TARGET.out to read one)
#   REFERENCE_DIR, REFERENCE_TARGET_DIR: as for bench/quick.sh
# Needs: valgrind, wrk, nginx, curl (apt-get install valgrind wrk nginx-light curl).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
secs=${1:-5}
[[ $secs =~ ^[1-9][0-9]*$ ]] || { echo "usage: bash bench/instructions.sh [SECONDS] [public|session|reference ...]" >&2; exit 2; }
shift || true
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(public session reference)
PATH=$PATH:/usr/sbin:/sbin
for tool in valgrind callgrind_control callgrind_annotate wrk nginx curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install valgrind wrk nginx-light curl" >&2; exit 1; }
done
die() { printf 'bench/instructions.sh: FAILED: %s\n' "$*" >&2; exit 1; }
py() { python3 "$repo/bench/bench.py" "$@"; }

bin=${BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet --example bench_stack
  bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/examples/bench_stack
fi
ref_bin=
if [[ " ${targets[*]} " == *" reference "* ]]; then
  ref_dir=${REFERENCE_DIR-$(realpath -m "$repo/../shared/perf-reference")}
  [ -f "$ref_dir/Cargo.toml" ] || die "no reference at '$ref_dir' (REFERENCE_DIR)"
  ref_target=${REFERENCE_TARGET_DIR:-/tmp/perf-reference-target}
  cargo build --release --quiet --locked --manifest-path "$ref_dir/Cargo.toml" --target-dir "$ref_target"
  ref_bin=$ref_target/release/proto
fi

work=$(mktemp -d)
chmod 755 "$work" # nginx's workers run as another user when we are root
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

read -r up port <<<"$(py ports 2)"
mkdir -p "$work/upstream"
py hello-upstream-conf "$work/upstream" "$up" > "$work/upstream/nginx.conf"
nginx -c "$work/upstream/nginx.conf" -p "$work/upstream" & pids+=($!)

measure() { # target
  local target=$1 out="$work/$1.out" url hdr=() vg
  local grind=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out")
  if [ "$target" = reference ]; then
    "${grind[@]}" "$ref_bin" localpool "$port" "$up" 1 > "$work/$target.log" 2>&1 & vg=$!
    url="http://127.0.0.1:$port/app/x"
  else
    "${grind[@]}" "$bin" "http://127.0.0.1:$up" > "$work/$target.stdout" 2> "$work/$target.log" & vg=$!
    for _ in $(seq 600); do grep -q '^PROXY=' "$work/$target.stdout" 2>/dev/null && break; sleep 0.1; done
    grep -q '^PROXY=' "$work/$target.stdout" || die "$target: the stack did not start: $(tail -5 "$work/$target.log")"
    read -r proxy cookie <<<"$(grep '^PROXY=' "$work/$target.stdout" | sed 's/PROXY=//; s/COOKIE=//')"
    url="$proxy/public/x"
    [ "$target" = session ] && { url="$proxy/app/x"; hdr=(-H "Cookie: $cookie"); }
  fi
  pids+=("$vg")
  local body=
  for _ in $(seq 100); do
    body=$(curl -s --max-time 5 "${hdr[@]}" "$url" || true)
    [ "$body" = hello ] && break
    sleep 0.2
  done
  [ "$body" = hello ] || die "$target: $url answered ${body@Q}, not the upstream's hello"
  wrk -t1 -c4 -d2s "${hdr[@]}" "$url" > /dev/null
  callgrind_control -i on "$vg" > /dev/null 2>&1
  wrk -t1 -c4 -d"${secs}s" "${hdr[@]}" "$url" > "$work/$target.wrk"
  callgrind_control -i off "$vg" > /dev/null 2>&1
  callgrind_control -d "$vg" > /dev/null 2>&1
  kill -TERM "$vg" 2>/dev/null || true
  wait "$vg" 2>/dev/null || true
  # `-d` wrote the counted run to OUT.1; OUT itself is the (uncounted) rest at exit.
  local requests total dump="$out.1"
  requests=$(grep -o '[0-9]* requests in' "$work/$target.wrk" | cut -d' ' -f1)
  total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  [ -n "$requests" ] && [ -n "$total" ] || die "$target: no count (see $work/$target.log)"
  [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$dump" "$KEEP/$target.out"
  printf '| %s | %s | %s | %s |\n' "$target" "$requests" "$total" "$((total / requests))"
}

echo "| target | requests | instructions | per request |"
echo "| --- | ---: | ---: | ---: |"
for target in "${targets[@]}"; do
  case $target in
    public | session | reference) measure "$target" ;;
    *) die "unknown target '$target' (public, session, reference)" ;;
  esac
done
