#!/usr/bin/env bash
# A quick throughput comparison, interleaved in one run on this machine:
#   the upstream alone (nginx answering "hello"), portcullis on a public route,
#   portcullis on an authenticated route with a role rule (memory store), and the
#   same with the Redis store.
# Usage: bash bench/quick.sh [SECONDS_PER_RUN=8] [ROUNDS=3] [CONNECTIONS=64]
# BASELINE_BIN=path/to/an/older/bench_stack adds that build's public and
# session rows to the same rounds (a before/after in one run): build it with
#   git worktree add /tmp/base REV && (cd /tmp/base && cargo build --release --example bench_stack)
# Needs: wrk, nginx, redis-server (apt-get install wrk nginx-light redis-server).
# Prints a markdown table of medians and ratios. Everything binds 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}; rounds=${2:-3}; conns=${3:-64}
for tool in wrk nginx redis-server; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install wrk nginx-light redis-server" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The fixed fast upstream.
up=$(free_port)
cat > "$work/nginx.conf" <<NGINX
daemon off; master_process off; worker_processes 1; pid $work/nginx.pid; error_log $work/error.log;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $work/b; proxy_temp_path $work/p; fastcgi_temp_path $work/f; uwsgi_temp_path $work/u; scgi_temp_path $work/s;
  server { listen 127.0.0.1:$up; location / { return 200 "hello\n"; } } }
NGINX
nginx -c "$work/nginx.conf" -p "$work" & pids+=($!)

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >/dev/null & pids+=($!)

cargo build --release --quiet --example bench_stack
bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/examples/bench_stack
sleep 0.5
# Started in this shell (not in a command substitution), so that the cleanup
# trap knows their pids and no stack outlives the run.
start_stack() { # name binary [redis-url]
  local out="$work/stack-$1.out"
  "$2" "http://127.0.0.1:$up" ${3:-} > "$out" 2>/dev/null & pids+=($!)
  for _ in $(seq 100); do grep -q '^PROXY=' "$out" 2>/dev/null && break; sleep 0.1; done
}
stack_addr() { grep '^PROXY=' "$work/stack-$1.out" | sed 's/PROXY=//; s/COOKIE=//'; }
start_stack memory "$bin"
start_stack redis "$bin" "redis://127.0.0.1:$redis_port/0"
read -r mem_proxy mem_cookie <<<"$(stack_addr memory)"
read -r red_proxy red_cookie <<<"$(stack_addr redis)"
targets="upstream public session-memory session-redis"
if [ -n "${BASELINE_BIN:-}" ]; then
  start_stack baseline "$BASELINE_BIN"
  read -r base_proxy base_cookie <<<"$(stack_addr baseline)"
  targets="$targets baseline-public baseline-session"
fi

run() { # name url [cookie]
  local args=(-t2 -c"$conns" -d"${secs}s" --latency)
  [ -n "${3:-}" ] && args+=(-H "Cookie: $3")
  wrk "${args[@]}" "$2" > "$work/wrk.out"
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
  p50=$(awk '$1=="50%" {print $2}' "$work/wrk.out")
  p99=$(awk '$1=="99%" {print $2}' "$work/wrk.out")
  if grep -q "Non-2xx" "$work/wrk.out"; then echo "$1: non-2xx answers: $(grep Non-2xx "$work/wrk.out")" >&2; exit 1; fi
  echo "$1 $rps $p50 $p99" >> "$work/results"
}
for round in $(seq "$rounds"); do
  run upstream "http://127.0.0.1:$up/app/x"
  run public "${mem_proxy}/public/x"
  run session-memory "${mem_proxy}/app/x" "$mem_cookie"
  run session-redis "${red_proxy}/app/x" "$red_cookie"
  if [ -n "${BASELINE_BIN:-}" ]; then
    run baseline-public "${base_proxy}/public/x"
    run baseline-session "${base_proxy}/app/x" "$base_cookie"
  fi
done
python3 - "$work/results" "$secs" "$rounds" "$conns" $targets <<'PY'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    name, rps, p50, p99 = line.split()
    rows.setdefault(name, []).append((float(rps), p50, p99))
def ms(t):
    return float(t[:-2]) if t.endswith("ms") else float(t[:-2]) / 1000 if t.endswith("us") else float(t[:-1]) * 1000
base = statistics.median(r[0] for r in rows["upstream"])
print(f"wrk -t2 -c{sys.argv[4]} -d{sys.argv[2]}s, {sys.argv[3]} interleaved rounds, medians\n")
print("| target | req/s | p50 ms | p99 ms | vs upstream |")
print("| --- | ---: | ---: | ---: | ---: |")
for name in sys.argv[5:]:
    r = rows[name]
    rps = statistics.median(x[0] for x in r)
    p50 = statistics.median(ms(x[1]) for x in r)
    p99 = statistics.median(ms(x[2]) for x in r)
    print(f"| {name} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {rps/base:.2f} |")
PY
