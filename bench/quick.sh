#!/usr/bin/env bash
# A quick throughput and CPU comparison, interleaved in one run on this machine,
# all in front of the same fixed upstream (nginx answering "hello"):
#   the upstream alone; a plain nginx reverse proxy (bench/run.sh's config,
#   bench/bench.py nginx-proxy-conf); the reference, a bare hyper proxy in
#   `localpool` mode (../shared/perf-reference from the repo root, issue 22);
#   portcullis on a public route, on an authenticated route with a role rule
#   (memory store), and the same with the Redis store.
# For every row: req/s, p50, p99, the ratio to the nginx proxy, and the server
# process's user and system CPU per request (/proc/PID/stat utime and stime
# before and after each wrk run, over the requests wrk counted; nginx: master
# and workers); for portcullis rows also user CPU per request / the reference's.
#
# Usage: bash bench/quick.sh [SECONDS_PER_RUN=8] [ROUNDS=3] [CONNECTIONS=64]
# Environment (all optional):
#   WRK_THREADS=1          wrk threads (issue 22's figures are wrk -t1)
#   BASELINE_BIN=path/to/an/older/bench_stack adds that build's public and
#     session rows to the same rounds (a before/after in one run): build it with
#     git worktree add /tmp/base REV && (cd /tmp/base && cargo build --release --example bench_stack)
#   REFERENCE_DIR=DIR      the reference's sources (default: ../shared/perf-reference
#                          from the repo root; empty or missing: no reference row)
#   REFERENCE_TARGET_DIR   where it is built (default /tmp/perf-reference-target;
#                          nothing is written into REFERENCE_DIR)
# Needs: wrk, nginx, redis-server, curl (apt-get install wrk nginx-light redis-server curl).
# Prints a markdown table of medians and ratios. Everything binds 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
secs=${1:-8}; rounds=${2:-3}; conns=${3:-64}
wrk_threads=${WRK_THREADS:-1}
for n in "$secs" "$rounds" "$conns" "$wrk_threads"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "usage: bash bench/quick.sh [SECONDS] [ROUNDS] [CONNECTIONS] (positive integers; WRK_THREADS too)" >&2; exit 2; }
done
[ "$conns" -ge "$wrk_threads" ] || { echo "CONNECTIONS must be >= WRK_THREADS ($wrk_threads)" >&2; exit 2; }
PATH=$PATH:/usr/sbin:/sbin
for tool in wrk nginx redis-server curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install wrk nginx-light redis-server curl" >&2; exit 1; }
done
die() { printf 'bench/quick.sh: FAILED: %s\n' "$*" >&2; exit 1; }
py() { python3 "$repo/bench/bench.py" "$@"; }

# Build first, so nothing is running yet if a build fails.
cargo build --release --quiet --example bench_stack
bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/examples/bench_stack
ref_dir=${REFERENCE_DIR-$(realpath -m "$repo/../shared/perf-reference")}
ref_bin=
if [ -n "$ref_dir" ] && [ -f "$ref_dir/Cargo.toml" ]; then
  ref_target=${REFERENCE_TARGET_DIR:-/tmp/perf-reference-target}
  echo "building the reference ($ref_dir, target dir $ref_target)" >&2
  cargo build --release --quiet --locked --manifest-path "$ref_dir/Cargo.toml" --target-dir "$ref_target" \
    || die "the reference ($ref_dir) did not build; REFERENCE_DIR= runs without it"
  ref_bin=$ref_target/release/proto
  [ -x "$ref_bin" ] || die "$ref_bin was not built"
else
  ref_note="no reference at '${ref_dir}'"; [ -n "$ref_dir" ] || ref_note="REFERENCE_DIR is empty"
  echo "note: $ref_note; the 'reference localpool' row is skipped" >&2
fi

work=$(mktemp -d)
chmod 755 "$work" # nginx's workers run as another user when we are root
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "bench/quick.sh: interrupted" >&2; exit 1' INT TERM

read -r up nginx_port ref_port redis_port <<<"$(py ports 4)"

# The fixed fast upstream: one nginx process.
mkdir -p "$work/upstream" "$work/nginx"
py hello-upstream-conf "$work/upstream" "$up" > "$work/upstream/nginx.conf"
nginx -c "$work/upstream/nginx.conf" -p "$work/upstream" & up_pid=$!; pids+=("$up_pid")

# The plain nginx reverse proxy, the same config as bench/run.sh's.
py nginx-proxy-conf "$work/nginx" "$nginx_port" "$up" "$conns" > "$work/nginx/nginx.conf"
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" & nginx_pid=$!; pids+=("$nginx_pid")

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no --dir "$work" >/dev/null & pids+=($!)

if [ -n "$ref_bin" ]; then
  "$ref_bin" localpool "$ref_port" "$up" > "$work/reference.log" 2>&1 & ref_pid=$!; pids+=("$ref_pid")
fi
sleep 0.5
# Started in this shell (not in a command substitution), so that the cleanup
# trap knows their pids and no stack outlives the run.
declare -A stack_pid
start_stack() { # name binary [redis-url]
  local out="$work/stack-$1.out"
  "$2" "http://127.0.0.1:$up" ${3:-} > "$out" 2> "$work/stack-$1.err" & pids+=($!); stack_pid[$1]=$!
  for _ in $(seq 200); do grep -q '^PROXY=' "$out" 2>/dev/null && return 0; sleep 0.1; done
  die "the $1 stack did not start: $(tail -5 "$work/stack-$1.err")"
}
stack_addr() { grep '^PROXY=' "$work/stack-$1.out" | sed 's/PROXY=//; s/COOKIE=//'; }
start_stack memory "$bin"
start_stack redis "$bin" "redis://127.0.0.1:$redis_port/0"
read -r mem_proxy mem_cookie <<<"$(stack_addr memory)"
read -r red_proxy red_cookie <<<"$(stack_addr redis)"

# The targets: name, URL, PID whose CPU is measured, header.
names=()
declare -A url pid hdr
target() { names+=("$1"); url[$1]=$2; pid[$1]=$3; hdr[$1]=${4:-}; }
target upstream "http://127.0.0.1:$up/app/x" "$up_pid"
target nginx "http://127.0.0.1:$nginx_port/app/x" "$nginx_pid"
[ -n "$ref_bin" ] && target reference "http://127.0.0.1:$ref_port/app/x" "$ref_pid"
target public "${mem_proxy}/public/x" "${stack_pid[memory]}"
target session-memory "${mem_proxy}/app/x" "${stack_pid[memory]}" "Cookie: $mem_cookie"
target session-redis "${red_proxy}/app/x" "${stack_pid[redis]}" "Cookie: $red_cookie"
if [ -n "${BASELINE_BIN:-}" ]; then
  start_stack baseline "$BASELINE_BIN"
  read -r base_proxy base_cookie <<<"$(stack_addr baseline)"
  target baseline-public "${base_proxy}/public/x" "${stack_pid[baseline]}"
  target baseline-session "${base_proxy}/app/x" "${stack_pid[baseline]}" "Cookie: $base_cookie"
fi

# Every target answers 200 with the upstream's body before the load.
for k in "${names[@]}"; do
  h=(); [ -n "${hdr[$k]}" ] && h=(-H "${hdr[$k]}")
  body=
  for _ in $(seq 50); do
    body=$(curl -s --max-time 2 "${h[@]}" "${url[$k]}" || true)
    [ "$body" = hello ] && break
    sleep 0.1
  done
  [ "$body" = hello ] || die "$k: ${url[$k]} answered ${body@Q}, not the upstream's hello"
done

run() { # name round (0: a 1 s warm-up, not recorded)
  local k=$1 h=() d=$secs u0 s0 u1 s1
  [ -n "${hdr[$k]}" ] && h=(-H "${hdr[$k]}")
  [ "$2" = 0 ] && d=1
  read -r u0 s0 <<<"$(py cputimes "${pid[$k]}")"
  timeout $((d + 30)) wrk -t"$wrk_threads" -c"$conns" -d"${d}s" --latency "${h[@]}" "${url[$k]}" > "$work/wrk.out" \
    || die "$k: wrk failed: $(cat "$work/wrk.out")"
  read -r u1 s1 <<<"$(py cputimes "${pid[$k]}")"
  if [ "$2" = 0 ]; then
    py quick-record "$k" 0 "$work/wrk.out" "$u0" "$s0" "$u1" "$s1" > /dev/null || die "$k: warm-up run failed"
  else
    py quick-record "$k" "$2" "$work/wrk.out" "$u0" "$s0" "$u1" "$s1" >> "$work/results.jsonl" || die "$k: run $2 failed"
  fi
}
: > "$work/results.jsonl"
for k in "${names[@]}"; do run "$k" 0; done
n=${#names[@]}
for round in $(seq "$rounds"); do
  for i in $(seq 0 $((n - 1))); do
    run "${names[$(((i + round - 1) % n))]}" "$round" # each round starts one target later
  done
done
[ -n "$ref_bin" ] || echo "note: no reference row ($ref_note)"
py quick-report "$work/results.jsonl" "$secs" "$rounds" "$conns" "$wrk_threads" "${names[@]}"
