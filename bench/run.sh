#!/usr/bin/env bash
# The benchmark suite (issues 8 and 22): portcullis against a plain nginx
# reverse proxy, the reference (a bare hyper proxy, ../shared/perf-reference,
# `localpool` mode) and Apache httpd + mod_auth_openidc, in one run on this
# machine, plus scale figures. Writes bench/results.md (a markdown report) and
# prints it.
#
# Usage: bash bench/run.sh [SECONDS_PER_RUN=8] [ROUNDS=3] [CONNECTIONS=64]
#
# Environment (all optional):
#   BENCH_THREADS=1         wrk threads (issue 22's figures are wrk -t1)
#   BENCH_SESSIONS=100000   sessions stored for the memory-per-session figure
#   BENCH_LOGINS=300        logins for the login round-trip figure
#   BENCH_STARTUPS=5        cold starts for the startup-time figure
#   BENCH_OUT=bench/results.md
#   BENCH_TIMEOUT=SECS      hard limit on everything after the build (default:
#                           computed from the run parameters, ~9 min for defaults)
#   BENCH_KEEP=1            keep the temporary directory (configs, logs)
#   BENCH_SKIP_BUILD=1      use the release binaries already built
#   CARGO_TARGET_DIR        honoured (the binaries are found with cargo metadata)
#   REFERENCE_DIR=DIR       the reference's sources (default: ../shared/perf-reference
#                           from the repo root; empty or missing: no reference row,
#                           and the target that needs it is reported as not measured)
#   REFERENCE_TARGET_DIR    where the reference is built (default
#                           /tmp/perf-reference-target; nothing is written into REFERENCE_DIR)
#
# What it does:
#   1. installs what is missing from Debian (wrk nginx-light apache2
#      libapache2-mod-auth-openidc redis-server, curl, python3), running
#      `apt-get update` first only then; the packages' system services are not
#      started by the install and never used;
#   2. builds portcullis and the bench examples in release (`--locked`), and the
#      reference (`--locked`, in REFERENCE_TARGET_DIR);
#   3. starts, all on 127.0.0.1 and on free ports, from files in a temporary
#      directory: a fixed fast upstream (nginx answering "hello"), a plain nginx
#      reverse proxy (bench/bench.py nginx-proxy-conf), the reference
#      (`proto localpool`), redis-server, the development OpenID provider
#      (examples/bench_idp.rs, with one client for portcullis and one for
#      Apache), three `portcullis run` processes (10 routes with the memory
#      store, 10 routes with the Redis store, 10,000 routes), and Apache httpd
#      (mpm_event, foreground, its own config) with mod_auth_openidc and
#      mod_proxy_http; signs in as alice at portcullis and at Apache with curl
#      through the provider's real sign-in form;
#   4. runs wrk against every target, interleaved, ROUNDS times, and checks every
#      run: no answer >= 400, and the upstream saw at least as many requests as
#      wrk counted responses (so no 302 to a login page was counted as a success),
#      and measures the user and the system CPU time the server process (all its
#      threads; nginx and Apache: with their workers) used in each run
#      (/proc/PID/stat utime, stime), per response wrk counted;
#   5. measures memory per session (examples/session_memory.rs), idle RSS and
#      startup time (exec to /readyz 200) of `portcullis run`, and the login
#      round trip (examples/login_roundtrip.rs);
#   6. writes the report (bench/bench.py report).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
secs=${1:-8}; rounds=${2:-3}; conns=${3:-64}
threads=${BENCH_THREADS:-1}
sessions=${BENCH_SESSIONS:-100000}
logins=${BENCH_LOGINS:-300}
startups=${BENCH_STARTUPS:-5}
out=${BENCH_OUT:-bench/results.md}
for n in "$secs" "$rounds" "$conns" "$threads" "$sessions" "$logins" "$startups"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "usage: bash bench/run.sh [SECONDS] [ROUNDS] [CONNECTIONS] (positive integers)" >&2; exit 2; }
done
[ "$conns" -ge "$threads" ] || { echo "CONNECTIONS must be >= BENCH_THREADS ($threads)" >&2; exit 2; }

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf '\nbench/run.sh: FAILED: %s\n' "$*" >&2; exit 1; }

# === 1. Packages ===
PATH=$PATH:/usr/sbin:/sbin
need_install() {
  for tool in wrk nginx apache2 redis-server redis-cli curl python3; do
    command -v "$tool" >/dev/null || return 0
  done
  [ -e /usr/lib/apache2/modules/mod_auth_openidc.so ] || return 0
  [ -e /usr/lib/apache2/modules/mod_proxy_http.so ] || return 0
  return 1
}
if need_install; then
  say "installing wrk nginx-light apache2 libapache2-mod-auth-openidc redis-server from Debian"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "missing packages and not root: apt-get install -y wrk nginx-light apache2 libapache2-mod-auth-openidc redis-server curl python3"
    sudo=(sudo)
  fi
  # Keep the packages' system services (nginx and Apache on port 80) from being
  # started by the install: this benchmark runs its own, on loopback.
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    made_policy=1
  fi
  rc=0
  { "${sudo[@]}" apt-get update -q &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      wrk nginx-light apache2 libapache2-mod-auth-openidc redis-server curl python3; } >&2 || rc=$?
  [ -n "$made_policy" ] && "${sudo[@]}" rm -f "$policy"
  [ "$rc" -eq 0 ] || die "apt-get install failed"
  need_install && die "packages still missing after apt-get install"
fi

# === 2. Build ===
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  say "building portcullis and the bench examples (release)"
  cargo build --release --locked --bin portcullis \
    --example bench_idp --example session_memory --example login_roundtrip >&2
fi
# What was built (the tree as it is now, local changes included).
B_GIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock crates 2>/dev/null || echo '+local changes')"
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin=$target_dir/release/portcullis
examples=$target_dir/release/examples
for b in "$bin" "$examples/bench_idp" "$examples/session_memory" "$examples/login_roundtrip"; do
  [ -x "$b" ] || die "$b was not built"
done
# The reference: a bare hyper 1.x HTTP/1.1 proxy, outside this repository
# (issue 22's yardstick). Built where REFERENCE_TARGET_DIR says, not in place.
ref_dir=${REFERENCE_DIR-$(realpath -m "$repo/../shared/perf-reference")}
ref_bin=
if [ -n "$ref_dir" ] && [ -f "$ref_dir/Cargo.toml" ]; then
  ref_target=${REFERENCE_TARGET_DIR:-/tmp/perf-reference-target}
  ref_bin=$ref_target/release/proto
  if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
    say "building the reference ($ref_dir, target dir $ref_target)"
    cargo build --release --locked --manifest-path "$ref_dir/Cargo.toml" --target-dir "$ref_target" >&2 \
      || die "the reference ($ref_dir) did not build; REFERENCE_DIR= runs without it"
  fi
  [ -x "$ref_bin" ] || die "$ref_bin was not built"
else
  echo "note: no reference at '${ref_dir}' (REFERENCE_DIR); the 'reference localpool' row is skipped" >&2
fi

# === Processes and clean-up ===
work=$(mktemp -d /tmp/portcullis-bench.XXXXXX)
chmod 755 "$work" # nginx and Apache workers run as other users when we are root
pids=()
watchdog=
ok=
cleanup() {
  local p
  [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  if [ -z "$ok" ] || [ -n "${BENCH_KEEP:-}" ]; then
    echo "configs and logs kept in $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'echo "bench/run.sh: interrupted or out of time (BENCH_TIMEOUT)" >&2; exit 1' INT TERM

# A hard limit on everything after the build.
budget=${BENCH_TIMEOUT:-$((180 + 9 * (3 + rounds * (secs + 4)) * 3 / 2))}
( sleep "$budget" & s=$!; trap 'kill $s 2>/dev/null; exit 0' TERM; wait $s; kill -TERM $$ 2>/dev/null ) &
watchdog=$!

py() { python3 "$repo/bench/bench.py" "$@"; }
wait_http() { # url [status] — until it answers (any status, or the given one), 20 s at most
  local code
  for _ in $(seq 200); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true)
    if [ -n "${2:-}" ]; then [ "$code" = "$2" ] && return 0; else [ "$code" != 000 ] && return 0; fi
    sleep 0.1
  done
  die "$1 did not answer ${2:-}"
}

read -r up up_status nginx_port ref_port redis_port idp_port apache_port \
  p_mem a_mem p_red a_red p_10k a_10k p_start a_start p_start10k a_start10k <<<"$(py ports 17)"

# === 3. Servers ===
say "starting the upstream, nginx proxy, the reference, redis, the provider, portcullis x3, Apache"
# The fixed fast upstream: one nginx process answering a small body, plus a
# stub_status listener so every run can check how many requests got through.
# /app/whoami and /api/whoami show the identity headers a proxy passed (checked
# once per target before the load).
mkdir -p "$work/upstream" "$work/nginx"
cat > "$work/upstream/nginx.conf" <<NGINX
daemon off; master_process off; worker_processes 1; pid $work/upstream/nginx.pid;
error_log $work/upstream/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $work/upstream/b; proxy_temp_path $work/upstream/p; fastcgi_temp_path $work/upstream/f;
  uwsgi_temp_path $work/upstream/u; scgi_temp_path $work/upstream/s;
  keepalive_timeout 300s; # keepalive_requests: nginx's default, 1000
  server {
    listen 127.0.0.1:$up;
    location / { return 200 "hello\n"; }
    location ~ ^/(app|api)/whoami$ { return 200 "user=\$http_x_forwarded_user groups=\$http_x_forwarded_groups identity=\$http_x_portcullis_identity apache_sub=\$http_oidc_claim_sub apache_roles=\$http_oidc_claim_roles\n"; }
  }
  server { listen 127.0.0.1:$up_status; location / { stub_status; } }
}
NGINX
nginx -c "$work/upstream/nginx.conf" -p "$work/upstream" & up_pid=$!; pids+=("$up_pid")

# A plain nginx reverse proxy (no auth), as nginx is usually deployed in front
# of an app: 2 workers (one per core, like portcullis's serving threads),
# keep-alive to the upstream (the config: bench/bench.py nginx-proxy-conf, shared
# with bench/quick.sh).
py nginx-proxy-conf "$work/nginx" "$nginx_port" "$up" "$conns" > "$work/nginx/nginx.conf"
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" & nginx_pid=$!; pids+=("$nginx_pid")

# The reference, `localpool` mode: one thread per core, each with its own
# listener and a pool of idle upstream connections.
if [ -n "$ref_bin" ]; then
  "$ref_bin" localpool "$ref_port" "$up" > "$work/reference.log" 2>&1 & ref_pid=$!; pids+=("$ref_pid")
fi

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --dir "$work" > "$work/redis.log" 2>&1 & redis_pid=$!; pids+=("$redis_pid")

# The development provider: client "portcullis" for every portcullis instance
# that signs in, client "apache" for mod_auth_openidc; a bearer token for alice.
p_secret=bench-portcullis-secret
a_secret=bench-apache-secret
cb() { echo "http://127.0.0.1:$1/_auth/callback"; }
"$examples/bench_idp" --listen "127.0.0.1:$idp_port" --ttl 7200 \
  --client portcullis "$p_secret" "$(cb "$p_mem"),$(cb "$p_red"),$(cb "$p_10k")" \
  --client apache "$a_secret" "http://127.0.0.1:$apache_port/oidc/callback" \
  --bearer alice portcullis > "$work/idp.out" 2> "$work/idp.log" & pids+=($!)
for _ in $(seq 200); do grep -q '^READY' "$work/idp.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^READY' "$work/idp.out" || die "the development provider did not start: $(cat "$work/idp.log")"
issuer=$(sed -n 's/^ISSUER=//p' "$work/idp.out")
bearer=$(sed -n 's/^BEARER=//p' "$work/idp.out")

portcullis_config() { # file port admin_port routes [redis]
  {
    cat <<TOML
[server]
listen = "127.0.0.1:$2"
public_url = "http://127.0.0.1:$2"

[admin]
listen = "127.0.0.1:$3"

[upstream]
url = "http://127.0.0.1:$up"

[oidc]
issuer = "$issuer"
client_id = "portcullis"
client_secret = "$p_secret"
scopes = ["openid", "profile", "email", "offline_access"]

[log]
level = "warn"

TOML
    if [ -n "${5:-}" ]; then
      printf '[session]\nstore = "redis"\nredis_url = "%s"\nsecret = "%s"\n\n' "$5" "$(head -c 32 /dev/urandom | base64)"
    fi
    py routes "$4"
  } > "$1"
}
portcullis_config "$work/mem.toml" "$p_mem" "$a_mem" 10
portcullis_config "$work/redis.toml" "$p_red" "$a_red" 10 "redis://127.0.0.1:$redis_port/0"
portcullis_config "$work/routes10k.toml" "$p_10k" "$a_10k" 10000
portcullis_config "$work/start.toml" "$p_start" "$a_start" 10
portcullis_config "$work/start10k.toml" "$p_start10k" "$a_start10k" 10000
"$bin" check --config "$work/routes10k.toml" > /dev/null 2> "$work/check.log" || die "portcullis check refused the config: $(head -20 "$work/check.log")"

"$bin" run --config "$work/mem.toml" 2> "$work/mem.log" & mem_pid=$!; pids+=("$mem_pid")
"$bin" run --config "$work/routes10k.toml" 2> "$work/routes10k.log" & r10k_pid=$!; pids+=("$r10k_pid")
for _ in $(seq 100); do [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
[ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ] || die "redis-server did not start: $(tail -5 "$work/redis.log")"
"$bin" run --config "$work/redis.toml" 2> "$work/redis-portcullis.log" & red_pid=$!; pids+=("$red_pid")

# Apache httpd + mod_auth_openidc: mpm_event, two processes with enough threads
# for every connection, 1000 requests per keep-alive connection (as nginx), the
# session in mod_auth_openidc's default shared-memory cache, the same role rule,
# claims passed upstream as headers; mod_proxy_http to the same upstream.
mkdir -p "$work/apache/run"
apache_threads=$((conns / 2 + 16))
as_root_user=
if [ "$(id -u)" -eq 0 ]; then
  as_root_user="User www-data
Group www-data"
  chown www-data "$work/apache/run"
fi
m=/usr/lib/apache2/modules
cat > "$work/apache/httpd.conf" <<APACHE
ServerRoot $work/apache
ServerName 127.0.0.1
Listen 127.0.0.1:$apache_port
PidFile $work/apache/run/httpd.pid
DefaultRuntimeDir $work/apache/run
Mutex file:$work/apache/run default
ErrorLog $work/apache/error.log
LogLevel warn
$as_root_user
LoadModule mpm_event_module $m/mod_mpm_event.so
LoadModule authn_core_module $m/mod_authn_core.so
LoadModule authz_core_module $m/mod_authz_core.so
LoadModule authz_user_module $m/mod_authz_user.so
LoadModule auth_openidc_module $m/mod_auth_openidc.so
LoadModule proxy_module $m/mod_proxy.so
LoadModule proxy_http_module $m/mod_proxy_http.so
StartServers 2
ServerLimit 2
ThreadLimit $apache_threads
ThreadsPerChild $apache_threads
MaxRequestWorkers $((2 * apache_threads))
MinSpareThreads $apache_threads
MaxSpareThreads $((2 * apache_threads))
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 1000
KeepAliveTimeout 300

OIDCProviderMetadataURL $issuer/.well-known/openid-configuration
OIDCClientID apache
OIDCClientSecret $a_secret
OIDCProviderTokenEndpointAuth client_secret_basic
OIDCRedirectURI http://127.0.0.1:$apache_port/oidc/callback
OIDCCryptoPassphrase $(head -c 32 /dev/urandom | base64 | tr -d "+/=")
OIDCScope "openid profile email"
OIDCPKCEMethod S256
OIDCClaimPrefix OIDC-Claim-
OIDCSessionInactivityTimeout 3600
OIDCSessionMaxDuration 7200

<Location />
  AuthType openid-connect
  Require valid-user
</Location>
<Location /app>
  Require claim roles:admin
</Location>
ProxyPass /app http://127.0.0.1:$up/app
APACHE
apache2 -t -f "$work/apache/httpd.conf" 2> "$work/apache/configtest.log" || die "Apache refused its config: $(cat "$work/apache/configtest.log")"
apache2 -f "$work/apache/httpd.conf" -DFOREGROUND 2>> "$work/apache/error.log" & apache_pid=$!; pids+=("$apache_pid")

wait_http "http://127.0.0.1:$up/"
wait_http "http://127.0.0.1:$nginx_port/"
[ -n "$ref_bin" ] && wait_http "http://127.0.0.1:$ref_port/"
for a in "$a_mem" "$a_red" "$a_10k"; do wait_http "http://127.0.0.1:$a/readyz" 200; done
wait_http "http://127.0.0.1:$apache_port/oidc/callback"

# === Sign in with curl, the way a browser does ===
login() { # name start_url cookie_name -> the session cookie's value
  local jar=$work/$1.jar code form
  code=$(curl -sS --max-time 10 -L --max-redirs 10 -c "$jar" -b "$jar" -H 'Accept: text/html' \
    -o "$work/$1.signin.html" -w '%{http_code}' "$2") || die "$1: sign-in page unreachable"
  [ "$code" = 200 ] || die "$1: $2 led to $code, not the provider's sign-in page"
  form=$(py signin-form "$work/$1.signin.html" alice) || die "$1: no sign-in form"
  code=$(curl -sS --max-time 10 -L --max-redirs 10 -c "$jar" -b "$jar" -H 'Accept: text/html' \
    --data "$form" -o "$work/$1.landed" -w '%{http_code}' "$issuer/authorize") || die "$1: sign-in failed"
  [ "$code" = 200 ] || die "$1: signing in ended with $code: $(head -c 300 "$work/$1.landed")"
  py cookie "$jar" "$3"
}
say "signing in as alice (curl through the provider's sign-in form)"
mem_cookie=portcullis=$(login mem "http://127.0.0.1:$p_mem/app/x" portcullis)
red_cookie=portcullis=$(login redis "http://127.0.0.1:$p_red/app/x" portcullis)
r10k_cookie=portcullis=$(login routes10k "http://127.0.0.1:$p_10k/app/x" portcullis)
apache_cookie=mod_auth_openidc_session=$(login apache "http://127.0.0.1:$apache_port/app/x" mod_auth_openidc_session)

# === The targets: key, base URL, path, header, PID whose RSS is reported ===
keys=(upstream nginx public session bearer redis apache routes10k)
[ -n "$ref_bin" ] && keys=(upstream nginx reference public session bearer redis apache routes10k)
declare -A base path hdr pid url
target() { base[$1]=$2; path[$1]=$3; hdr[$1]=$4; pid[$1]=$5; url[$1]=$2$3; }
target upstream  "http://127.0.0.1:$up"          /app/x    ""                              "$up_pid"
target nginx     "http://127.0.0.1:$nginx_port"  /app/x    ""                              "$nginx_pid"
[ -n "$ref_bin" ] &&
target reference "http://127.0.0.1:$ref_port"   /app/x    ""                              "$ref_pid"
target public    "http://127.0.0.1:$p_mem"       /public/x ""                              "$mem_pid"
target session   "http://127.0.0.1:$p_mem"       /app/x    "Cookie: $mem_cookie"           "$mem_pid"
target bearer    "http://127.0.0.1:$p_mem"       /api/x    "Authorization: Bearer $bearer" "$mem_pid"
target redis     "http://127.0.0.1:$p_red"       /app/x    "Cookie: $red_cookie"           "$red_pid"
target apache    "http://127.0.0.1:$apache_port" /app/x    "Cookie: $apache_cookie"        "$apache_pid"
target routes10k "http://127.0.0.1:$p_10k"       /app/x    "Cookie: $r10k_cookie"          "$r10k_pid"

get() { # key path -> body; fails unless 200
  local h=() code
  [ -n "${hdr[$1]}" ] && h=(-H "${hdr[$1]}")
  code=$(curl -sS --max-time 5 -o "$work/get.body" -w '%{http_code}' "${h[@]}" -H 'Accept: text/html' "${base[$1]}$2") \
    || die "$1: ${base[$1]}$2 unreachable"
  [ "$code" = 200 ] || die "$1: ${base[$1]}$2 answered $code, not 200: $(head -c 300 "$work/get.body")"
  cat "$work/get.body"
}
say "checking every target answers 200 from the upstream, with identity where expected"
for k in "${keys[@]}"; do
  body=$(get "$k" "${path[$k]}")
  [ "$body" = hello ] || die "$k: ${url[$k]} answered ${body@Q}, not the upstream's hello"
done
for k in session redis routes10k bearer; do
  whoami=$(get "$k" "${path[$k]%/x}/whoami")
  case $whoami in *"user=alice groups=admin,user identity=ey"*) ;; *) die "$k: the upstream did not get alice's identity headers: $whoami";; esac
done
whoami=$(get apache /app/whoami)
case $whoami in *"apache_sub=alice"*) ;; *) die "apache: the upstream did not get alice's claims: $whoami";; esac

# === 4. Load ===
results=$work/results.jsonl
: > "$results"
stub="http://127.0.0.1:$up_status/"
bench() { # key round (round 0 = warm-up, not recorded)
  local k=$1 h=() before after user0 sys0 user1 sys1 up_before up_after redis_before busy_before busy_after wrk_ms json rss_kib reached
  [ -n "${hdr[$k]}" ] && h=(-H "${hdr[$k]}")
  local d=$secs
  [ "$2" = 0 ] && d=2
  before=$(py stub-requests "$stub")
  read -r user0 sys0 <<<"$(py cputimes "${pid[$k]}")"
  up_before=$(py cpu "$up_pid")
  redis_before=$(py cpu "$redis_pid")
  busy_before=$(py busy)
  wrk_ms=$(py run-wrk "$work/wrk-$k.out" $((d + 30)) -t"$threads" -c"$conns" -d"${d}s" --latency "${h[@]}" "${url[$k]}") \
    || die "$k: wrk failed: $(cat "$work/wrk-$k.out")"
  busy_after=$(py busy)
  up_after=$(py cpu "$up_pid")
  read -r user1 sys1 <<<"$(py cputimes "${pid[$k]}")"
  after=$(py stub-requests "$stub")
  rss_kib=$(py rss "${pid[$k]}")
  json=$(py wrk "$work/wrk-$k.out") || die "$k: unreadable wrk output"
  # The upstream counts the stub_status request made after the run too.
  reached=$((after - before - 1))
  # What everything else on the machine used meanwhile (other people's builds).
  local upstream_ms=$((up_after - up_before))
  [ "$k" = upstream ] && upstream_ms=0
  [ "$k" = redis ] && upstream_ms=$((upstream_ms + $(py cpu "$redis_pid") - redis_before))
  local user_us=$((user1 - user0)) sys_us=$((sys1 - sys0))
  local other_ms=$((busy_after - busy_before - (user_us + sys_us) / 1000 - upstream_ms - wrk_ms))
  python3 - "$k" "$2" "$json" "$reached" "$rss_kib" "$user_us" "$sys_us" "$other_ms" "$d" "$results" <<'PY' || die "$k: run $2 is not a valid measurement (see above; wrk output in the kept directory)"
import json, sys
key, rnd, wrk, reached, rss, user_us, sys_us, other_ms, secs, path = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9]), sys.argv[10]
user_us /= max(wrk["requests"], 1)
sys_us /= max(wrk["requests"], 1)
cpu_us = user_us + sys_us
other = max(other_ms, 0) / 1000 / secs
bad = []
if wrk["non2xx"]:
    bad.append(f'{wrk["non2xx"]} answers >= 400')
if reached < wrk["requests"]:
    bad.append(f'only {reached} of {wrk["requests"]} responses came from the upstream (redirects or errors from the proxy)')
if wrk["socket_errors"] > wrk["requests"] / 100:
    bad.append(f'{wrk["socket_errors"]} socket errors')
line = f'{key:>10} round {rnd}: {wrk["rps"]:>10,.0f} req/s  p50 {wrk["p50"]:6.2f} ms  p99 {wrk["p99"]:6.2f} ms  RSS {rss / 1024:6.1f} MiB  user {user_us:5.1f} sys {sys_us:5.1f} us/req  other load {other:.2f} cores'
print(line + ("   " + "; ".join(bad) if bad else ""), file=sys.stderr)
if bad:
    sys.exit(1)
if rnd > 0:
    with open(path, "a") as f:
        f.write(json.dumps(dict(wrk, target=key, round=rnd, rss_kib=rss, cpu_us=cpu_us, user_us=user_us,
                                sys_us=sys_us, other_cores=other)) + "\n")
PY
}
idle_load=$(py load 2)
say "other load on the machine before the runs: $idle_load cores"
if python3 -c "import sys; sys.exit(0 if $idle_load > 0.25 else 1)"; then
  echo "warning: something else is using $idle_load cores; the figures will be noisy (see 'other load' in the report)" >&2
fi
say "warm-up: 2 s per target"
for k in "${keys[@]}"; do bench "$k" 0; done
n=${#keys[@]}
for r in $(seq "$rounds"); do
  say "round $r of $rounds: ${secs}s x $n targets"
  for i in $(seq 0 $((n - 1))); do
    bench "${keys[$(((i + r - 1) % n))]}" "$r" # each round starts one target later
  done
done
redis_rss=$(py rss "$redis_pid")

# === 5. Scale figures ===
say "memory per session ($sessions sessions in the memory store)"
timeout 300 "$examples/session_memory" "$sessions" > "$work/session_memory.out" || die "session_memory failed"
cat "$work/session_memory.out" >&2
timeout 300 "$examples/session_memory" --pass-access-token "$sessions" > "$work/session_memory_token.out" || die "session_memory --pass-access-token failed"
cat "$work/session_memory_token.out" >&2
say "startup time and idle RSS (x$startups, 10 routes, then 10,000 routes)"
start10=$(py startup "$bin" "$work/start.toml" "$a_start" "$startups") || die "startup measurement failed"
start10k=$(py startup "$bin" "$work/start10k.toml" "$a_start10k" "$startups") || die "startup measurement (10,000 routes) failed"
echo "$start10" >&2; echo "$start10k" >&2
say "login round trip ($logins sequential logins)"
timeout 300 "$examples/login_roundtrip" "$logins" > "$work/login.out" 2> "$work/login.log" || die "login_roundtrip failed: $(tail -5 "$work/login.log")"
cat "$work/login.out" >&2

# === 6. Report ===
export B_SECS=$secs B_ROUNDS=$rounds B_CONNS=$conns B_THREADS=$threads B_SESSIONS=$sessions B_STARTUPS=$startups
export B_START10=$start10 B_START10K=$start10k B_REDIS_RSS=$redis_rss B_IDLE_LOAD=$idle_load
B_VERSIONS="$(nginx -v 2>&1 | sed 's/.*version: //'), $(apache2 -v | sed -n 's/^Server version: //p'), mod_auth_openidc $(dpkg-query -W -f '${Version}' libapache2-mod-auth-openidc 2>/dev/null || echo '?'), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $(rustc --version | cut -d' ' -f1-2)"
# The reference: what it was built from (its Cargo.lock's hyper and tokio).
B_REFERENCE=
if [ -n "$ref_bin" ]; then
  B_REFERENCE="$ref_dir, $(python3 - "$ref_dir/Cargo.lock" <<'PY'
import re, sys
lock = open(sys.argv[1]).read()
found = dict(re.findall(r'\[\[package\]\]\nname = "([^"]+)"\nversion = "([^"]+)"', lock))
print(", ".join(f"{n} {found[n]}" for n in ("hyper", "hyper-util", "tokio") if n in found))
PY
)"
fi
export B_GIT B_VERSIONS B_REFERENCE
python3 - "$work/session_memory.out" "$work/login.out" "$work/meta.json" "$work/session_memory_token.out" <<'PY'
import json, os, platform, re, sys, datetime
sessions = int(os.environ["B_SESSIONS"])
def session_memory(path):
    mem = open(path).read()
    m = re.search(rf"^\s*{sessions} sessions: RSS \+\s*\d+ KiB,\s*(\d+) B/session", mem, re.M)
    payload = re.search(r"payload per session \(string bytes\): (\d+) B", mem)
    return (int(m.group(1)), int(payload.group(1))) if m and payload else None
plain, token = session_memory(sys.argv[1]), session_memory(sys.argv[4])
login = re.search(r"([0-9.]+) ms per login, ([0-9.]+) logins/s", open(sys.argv[2]).read())
if not (plain and token and login):
    sys.exit("cannot read the session_memory or login_roundtrip output")
s10, s10k = json.loads(os.environ["B_START10"]), json.loads(os.environ["B_START10K"])
cpu = "unknown CPU"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
meta = {
    "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
    "git": os.environ["B_GIT"], "cpu": cpu, "cores": os.cpu_count(),
    "kernel": f"Linux {platform.release()}", "versions": os.environ["B_VERSIONS"],
    "seconds": int(os.environ["B_SECS"]), "rounds": int(os.environ["B_ROUNDS"]),
    "connections": int(os.environ["B_CONNS"]), "threads": int(os.environ["B_THREADS"]),
    "idle_load": float(os.environ["B_IDLE_LOAD"]),
    "reference": os.environ["B_REFERENCE"],
    "scale": {
        "sessions": sessions, "bytes_per_session": plain[0], "payload_bytes": plain[1],
        "bytes_per_session_token": token[0], "payload_bytes_token": token[1],
        "idle_rss_kib": s10["idle_rss_kib"], "idle_rss_10k_kib": s10k["idle_rss_kib"],
        "startup_ms": s10["startup_ms"], "startup_10k_ms": s10k["startup_ms"],
        "startups": int(os.environ["B_STARTUPS"]),
        "login_ms": float(login.group(1)), "logins_per_s": float(login.group(2)),
    },
    "notes": (
        "Notes. nginx's and Apache's RSS sum their processes, so pages they share are counted once per "
        "process. Portcullis's RSS is its one process; with the Redis store, redis-server held another "
        f"{int(os.environ['B_REDIS_RSS']) / 1024:.1f} MiB. The public, session and bearer targets share one "
        "portcullis process (10 routes, memory store), so their RSS is that process's after each run. "
        "The 10- and 10,000-route configs are the same ten routes, the 10,000 with 9,990 others in front "
        "(path prefixes, exact paths, hosts, wildcard hosts, prefixes under /app, 1% regexes; "
        "bench/bench.py routes); the benchmarked route `/app` (session, roles_any admin) is the last one. "
        "Tokens from the development provider live 2 h, so no run includes a token refresh. "
        "Memory per session: examples/session_memory.rs, sessions shaped like real ones (a ~900-byte ID "
        "token, a refresh token, an identity with 3 roles, and with upstream.pass_access_token = true "
        "an ~800-byte access token, which the proxy keeps only then), RSS growth of the "
        "process divided by the count. Login round trip: examples/login_roundtrip.rs (in-process proxy and "
        "provider, 7 HTTP round trips per login, one client)."
    ),
}
json.dump(meta, open(sys.argv[3], "w"))
PY
py report "$results" "$work/meta.json" > "$out"
ok=1
say "results ($out)"
cat "$out"
