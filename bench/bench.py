#!/usr/bin/env python3
"""Helpers for bench/run.sh (Python 3 standard library only).

  ports N                         N distinct free loopback ports
  rss PID...                      VmRSS in KiB of the PIDs and all their descendants, summed
  cpu PID...                      CPU time (user + system) in ms of the PIDs and their descendants
  cputimes PID...                 user and system CPU time in us (two numbers) of the PIDs and their
                                  descendants, from /proc/PID/stat utime and stime (clock ticks)
  busy                            CPU time in ms the whole machine has been busy (all cores, /proc/stat)
  load SECS                       cores busy on average over the next SECS seconds
  run-wrk OUT TIMEOUT WRK_ARGS... runs wrk (output to OUT); prints wrk's own CPU time in ms
  signin-form HTML USER           the dev provider's sign-in form as posted for USER
  cookie JAR NAME                 a cookie's value from a curl cookie jar
  routes N                        N [[route]] tables (see routes() below) on stdout
  nginx-proxy-conf DIR PORT UPSTREAM_PORT KEEPALIVE
                                  the plain nginx reverse proxy's config (bench/run.sh and quick.sh)
  stub-requests URL               nginx stub_status: the total request count
  wrk FILE                        wrk --latency output as JSON
  startup BIN CONFIG ADMIN N      N cold starts: ms from exec to /readyz 200, idle RSS
  report RESULTS.jsonl META.json  the markdown report on stdout
  quick-record NAME ROUND WRK_OUT USER0 SYS0 USER1 SYS1
                                  bench/quick.sh: one run as a JSON line (fails on answers >= 400)
  quick-report RESULTS.jsonl SECS ROUNDS CONNS THREADS NAME...
                                  bench/quick.sh: the table of medians
"""

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request


def ports(n):
    socks = []
    for _ in range(int(n)):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def descendants(pid):
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parentheses.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [int(pid)]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def vmrss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss(*pids):
    seen = set()
    total = 0
    for pid in pids:
        for p in descendants(pid):
            if p not in seen:
                seen.add(p)
                total += vmrss_kib(p)
    print(total)


def cpu(*pids):
    user, system = cpu_ticks(*pids)
    print((user + system) * 1000 // os.sysconf("SC_CLK_TCK"))


def cpu_ticks(*pids):
    """(user, system) CPU time in clock ticks of the PIDs and all their
    descendants (nginx: master and workers), from /proc/PID/stat fields 14 and
    15 (utime, stime; every thread of the process included)."""
    seen = set()
    user = system = 0
    for pid in pids:
        for p in descendants(pid):
            if p in seen:
                continue
            seen.add(p)
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            user += int(fields[11])
            system += int(fields[12])
    return user, system


def cpu_times_us(*pids):
    """(user, system) CPU time in microseconds of the PIDs and all their
    descendants (see cpu_ticks)."""
    ticks = os.sysconf("SC_CLK_TCK")
    user, system = cpu_ticks(*pids)
    return user * 1_000_000 // ticks, system * 1_000_000 // ticks


def cputimes(*pids):
    print(*cpu_times_us(*pids))


def busy_ms():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: user, nice, system, irq, softirq
    busy_ticks = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
    return busy_ticks * 1000 // os.sysconf("SC_CLK_TCK")


def busy():
    print(busy_ms())


def load(secs):
    """Cores busy, averaged over `secs` seconds of wall time."""
    t0, b0 = time.monotonic(), busy_ms()
    time.sleep(float(secs))
    t1, b1 = time.monotonic(), busy_ms()
    print(f"{(b1 - b0) / 1000 / (t1 - t0):.2f}")


def run_wrk(out, timeout, *args):
    import resource
    with open(out, "w") as f:
        try:
            rc = subprocess.run(["wrk", *args], stdout=f, stderr=subprocess.STDOUT,
                                timeout=float(timeout)).returncode
        except subprocess.TimeoutExpired:
            sys.exit(f"wrk ran past {timeout} s")
    if rc != 0:
        sys.exit(f"wrk exited with {rc}")
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(int((r.ru_utime + r.ru_stime) * 1000))


def unescape(s):
    for a, b in (("&quot;", '"'), ("&#39;", "'"), ("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&")):
        s = s.replace(a, b)
    return s


def signin_form(html_file, user):
    html = open(html_file, encoding="utf-8", errors="replace").read()
    if 'name="user"' not in html:
        sys.exit(f"{html_file} is not the provider's sign-in page:\n{html[:500]}")
    fields = [(unescape(k), unescape(v)) for k, v in
              re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', html)]
    fields.append(("user", user))
    print(urllib.parse.urlencode(fields))


def cookie(jar, name):
    for line in open(jar):
        parts = line.rstrip("\n").split("\t")
        if len(parts) == 7 and parts[5] == name:
            print(parts[6])
            return
    sys.exit(f"no cookie {name} in {jar}")


def routes(n):
    """`n` routes ending with the ten of the small config, so the route the
    benchmark hits (`/app`, session + role rule) is always the last defined.

    The first n - 10 are a deterministic mix of what a large config holds:
    path prefixes (70%), exact paths (10%), exact hosts (8%), wildcard hosts
    (4%), prefixes under /app itself (7%), anchored regexes (1%); auth modes
    and role rules vary. None of them matches the benchmarked requests."""
    n = int(n)
    core = [
        ('name = "health"', 'path_exact = "/healthz"', 'auth = "public"'),
        ('name = "public"', 'path = "/public"', 'auth = "public"'),
        ('name = "static"', 'path = "/static"', 'methods = ["GET"]', 'auth = "public"'),
        ('name = "admin-host"', 'host = "admin.example.com"', 'roles_any = ["admin"]'),
        ('name = "tenants"', 'host = "*.tenants.example.com"', 'auth = "login"'),
        ('name = "export"', 'path_regex = "^/reports/[0-9]+/export$"', 'roles_any = ["billing"]'),
        ('name = "api"', 'path = "/api"', 'auth = "bearer"', 'roles_any = ["admin"]'),
        ('name = "legacy"', 'path = "/legacy"', 'auth = "deny"'),
        ('name = "settings"', 'path = "/app/settings"', 'roles_all = ["admin", "user"]'),
        ('name = "app"', 'path = "/app"', 'roles_any = ["admin"]'),
    ]
    if n < len(core):
        sys.exit(f"routes: at least {len(core)}")
    auths = ['auth = "login"', 'auth = "public"', 'auth = "bearer"', 'roles_any = ["ops", "admin"]',
             'auth = "login_or_bearer"', 'roles_all = ["user", "editor"]', 'auth = "deny"']
    out = []
    for i in range(n - len(core)):
        auth = auths[i % len(auths)]
        kind = i % 100
        if kind < 70:
            match = (f'path = "/svc{i:05}/v{i % 3 + 1}"',)
        elif kind < 80:
            match = (f'path_exact = "/pages/p{i:05}"',)
        elif kind < 88:
            match = (f'host = "h{i:05}.example.com"', f'path = "/p{i % 50}"')
        elif kind < 92:
            match = (f'host = "*.t{i:05}.example.com"',)
        elif kind < 99:
            match = (f'path = "/app/area{i:05}"', 'methods = ["GET", "POST"]')
        else:
            match = (f'path_regex = "^/r{i:05}/[0-9]+/(view|edit)$"',)
        out.append((f'name = "r{i:05}"',) + match + (auth,))
    out.extend(core)
    print("\n".join("[[route]]\n" + "\n".join(r) + "\n" for r in out))


def nginx_proxy_conf(dir, port, upstream_port, keepalive):
    """A plain nginx reverse proxy (no auth), as nginx is usually deployed in
    front of an app: 2 workers (one per core, like portcullis's serving
    threads), keep-alive to the upstream with up to KEEPALIVE idle connections
    per worker, Host and X-Forwarded-For set."""
    print(f"""daemon off; worker_processes 2; pid {dir}/nginx.pid; error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/b; proxy_temp_path {dir}/p; fastcgi_temp_path {dir}/f;
  uwsgi_temp_path {dir}/u; scgi_temp_path {dir}/s;
  keepalive_timeout 300s; # keepalive_requests: nginx's default, 1000
  upstream app {{ server 127.0.0.1:{upstream_port}; keepalive {keepalive}; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}""")


def hello_upstream_conf(dir, port):
    """The fixed fast upstream of bench/quick.sh and bench/instructions.sh: one
    nginx process answering "hello" to everything, with keep-alive."""
    print(f"""daemon off; master_process off; worker_processes 1; pid {dir}/nginx.pid; error_log {dir}/error.log;
events {{ worker_connections 8192; }}
http {{ access_log off; keepalive_timeout 300s;
  client_body_temp_path {dir}/b; proxy_temp_path {dir}/p; fastcgi_temp_path {dir}/f;
  uwsgi_temp_path {dir}/u; scgi_temp_path {dir}/s;
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "hello\\n"; }} }} }}""")


def stub_requests(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    # "Active connections: 1 \nserver accepts handled requests\n 10 10 12 \n..."
    print(text.splitlines()[2].split()[2])


def to_ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"latency {text!r}")
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v if unit == "ms" else v * 1000 if unit == "s" else v * 60000


def wrk(path):
    print(json.dumps(parse_wrk(path)))


def parse_wrk(path):
    text = open(path).read()
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    total = re.search(r"([0-9]+) requests in", text)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    if not (rps and total and p50 and p99):
        sys.exit(f"cannot read wrk output {path}:\n{text}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+([0-9]+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "rps": float(rps.group(1)),
        "requests": int(total.group(1)),
        "p50": to_ms(p50.group(1)),
        "p99": to_ms(p99.group(1)),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
    }


def startup(binary, config, admin, n):
    """Median time from exec to the first /readyz 200, and the idle RSS one
    second later (nothing has been requested but /readyz)."""
    times, idle = [], []
    url = f"http://127.0.0.1:{admin}/readyz"
    for _ in range(int(n)):
        env = dict(os.environ, RUST_LOG="warn")
        started = time.monotonic()
        log = open(config + ".log", "w")
        proc = subprocess.Popen([binary, "run", "--config", config], env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = started + 30
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None:
                    log.close()
                    sys.exit(f"portcullis exited with {proc.returncode} before /readyz: "
                             f"{open(config + '.log').read()[-2000:]}")
                if time.monotonic() > deadline:
                    sys.exit("portcullis not ready within 30 s")
                time.sleep(0.002)
            times.append((time.monotonic() - started) * 1000)
            time.sleep(1)
            idle.append(vmrss_kib(proc.pid))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    print(json.dumps({"startup_ms": statistics.median(times), "startup_ms_all": times,
                      "idle_rss_kib": statistics.median(idle)}))


TARGETS = [
    # key, label
    ("upstream", "nginx upstream alone (the ceiling)"),
    ("nginx", "nginx reverse proxy, no auth"),
    ("reference", "reference: bare hyper proxy, `localpool` (no auth)"),
    ("public", "portcullis, public route"),
    ("session", "portcullis, session + role rule + identity headers (memory store)"),
    ("bearer", "portcullis, bearer JWT + role rule + identity headers"),
    ("redis", "portcullis, session + role rule + identity headers (Redis store)"),
    ("apache", "Apache httpd + mod_auth_openidc, session + role rule"),
    ("routes10k", "portcullis, session route, 10,000 routes (matched route last)"),
]
PORTCULLIS = {"public", "session", "bearer", "redis", "routes10k"}


def report(results_path, meta_path):
    meta = json.load(open(meta_path))
    runs = {}
    for line in open(results_path):
        r = json.loads(line)
        runs.setdefault(r["target"], []).append(r)
    med = {}
    for key, rs in runs.items():
        med[key] = {f: statistics.median(r[f] for r in rs)
                    for f in ("rps", "p50", "p99", "rss_kib", "cpu_us", "user_us", "sys_us")}
        med[key]["socket_errors"] = sum(r["socket_errors"] for r in rs)
    base = med["upstream"]["rps"]
    has_ref = "reference" in med
    out = []
    p = out.append
    p("# portcullis benchmark results\n")
    p(f"Generated by `bench/run.sh` on {meta['date']}, portcullis {meta['git']}.\n")
    p(f"Machine: {meta['cpu']}, {meta['cores']} cores, {meta['kernel']}. Everything on loopback, "
      "wrk, the servers and the upstream sharing those cores, so absolute numbers are low "
      "and comparisons within one run are what counts.\n")
    p(f"Load: `wrk -t{meta['threads']} -c{meta['connections']} -d{meta['seconds']}s --latency`, "
      f"{meta['rounds']} interleaved rounds (every target once per round, in turn), medians over the "
      "rounds. Every target is in front of the same upstream. RSS: VmRSS of the server process "
      "(nginx and Apache: master plus workers, summed) right after each run. CPU: the user and the "
      "system time the server process (all its threads; nginx and Apache: with their workers) used "
      "during the run (/proc/PID/stat utime and stime), per response. It tells what each server "
      "costs apart from how the cores were split between wrk, the server and the upstream, but it is "
      "not a constant: it rises when cores are free (async runtimes and event loops poll and wake more "
      "when they are not saturated), so compare it within a run. Every run is checked: no answer "
      ">= 400 in wrk's count, and the upstream's request counter grew by at least the number of "
      "responses wrk counted, so no answer came from anywhere but the upstream (a 302 to a login "
      "page would fail the run).\n")
    p(f"Versions: {meta['versions']}.\n")
    if meta.get("reference"):
        p(f"The reference (issue 22's yardstick, not part of portcullis): a bare hyper 1.x HTTP/1.1 "
          f"proxy that forwards everything and does nothing else, `proto localpool` (a per-thread pool "
          f"of idle upstream connections, one current-thread runtime and listener per core); built "
          f"from {meta['reference']}.\n")
    else:
        p("The reference (a bare hyper proxy, ../shared/perf-reference) was not found, so it has no "
          "row and the target that needs it is not measured.\n")
    p("| target | req/s | p50 ms | p99 ms | RSS MiB | user us/req | sys us/req | vs nginx proxy | vs upstream "
      "| user CPU vs reference |")
    p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key, label in TARGETS:
        if key not in med:
            continue
        m = med[key]
        vs_ref = f"{m['user_us'] / med['reference']['user_us']:.2f}x" if has_ref and key in PORTCULLIS else ""
        p(f"| {label} | {m['rps']:,.0f} | {m['p50']:.2f} | {m['p99']:.2f} | "
          f"{m['rss_kib'] / 1024:.1f} | {m['user_us']:.1f} | {m['sys_us']:.1f} | "
          f"{m['rps'] / med['nginx']['rps']:.2f} | {m['rps'] / base:.2f} | {vs_ref} |")
    p("")

    def ratio(a, b, field="rps"):
        return med[a][field] / med[b][field]

    checks = []
    s = meta["scale"]
    if s:
        kib_per_session = s["bytes_per_session"] / 1024
        idle_mib = s["idle_rss_kib"] / 1024
    p("## Ratios\n")
    p("| ratio | throughput | p99 latency | user CPU per request | system CPU per request |")
    p("| --- | ---: | ---: | ---: | ---: |")
    rows = [
        ("portcullis session / plain nginx proxy", "session", "nginx"),
        ("portcullis public / plain nginx proxy", "public", "nginx"),
        ("reference / plain nginx proxy", "reference", "nginx"),
        ("portcullis session / reference", "session", "reference"),
        ("portcullis public / reference", "public", "reference"),
        ("portcullis session / mod_auth_openidc", "session", "apache"),
        ("portcullis bearer / portcullis session", "bearer", "session"),
        ("portcullis Redis store / memory store", "redis", "session"),
        ("portcullis 10,000 routes / 10 routes", "routes10k", "session"),
    ]
    for label, a, b in rows:
        if a in med and b in med:
            p(f"| {label} | {ratio(a, b):.2f}x | {ratio(a, b, 'p99'):.2f}x | {ratio(a, b, 'user_us'):.2f}x | "
              f"{ratio(a, b, 'sys_us'):.2f}x |")
    p("")
    p("## Scale\n")
    p("| figure | value |")
    p("| --- | ---: |")
    p(f"| throughput, session route, 10 routes | {med['session']['rps']:,.0f} req/s |")
    p(f"| throughput, session route, 10,000 routes (matched route last) | {med['routes10k']['rps']:,.0f} req/s "
      f"({ratio('routes10k', 'session'):.2f}x) |")
    if s:
        p(f"| memory store, {s['sessions']:,} sessions | {s['bytes_per_session']:,} B/session "
          f"({kib_per_session:.2f} KiB; token payload {s['payload_bytes']:,} B) |")
        if "bytes_per_session_token" in s:
            p(f"| the same with `upstream.pass_access_token = true` (the access token kept too) | "
              f"{s['bytes_per_session_token']:,} B/session ({s['bytes_per_session_token'] / 1024:.2f} KiB; "
              f"token payload {s['payload_bytes_token']:,} B) |")
        p(f"| idle RSS of portcullis (started, provider discovered, no traffic) | {idle_mib:.1f} MiB |")
        p(f"| idle RSS with 10,000 routes | {s['idle_rss_10k_kib'] / 1024:.1f} MiB |")
        p(f"| startup, exec to /readyz 200 (median of {s['startups']}) | {s['startup_ms']:.0f} ms |")
        p(f"| startup with 10,000 routes | {s['startup_10k_ms']:.0f} ms |")
        p(f"| login round trip against the dev provider (one client, sequential) | "
          f"{s['login_ms']:.2f} ms, {s['logins_per_s']:,.0f} logins/s |")
    p("")
    p("## Issue 22 targets\n")
    p("| target | measured | met |")
    p("| --- | ---: | :---: |")

    def check(label, value, ok):
        checks.append(ok)
        p(f"| {label} | {value} | {'yes' if ok else '**no**'} |")

    check("session route >= 1.0x plain nginx proxy throughput", f"{ratio('session', 'nginx'):.2f}x",
          ratio("session", "nginx") >= 1.0)
    if has_ref:
        check("session route user CPU per request <= 1.5x the reference `localpool`'s",
              f"{ratio('session', 'reference', 'user_us'):.2f}x "
              f"({med['session']['user_us']:.1f} / {med['reference']['user_us']:.1f} us)",
              ratio("session", "reference", "user_us") <= 1.5)
    else:
        p("| session route user CPU per request <= 1.5x the reference `localpool`'s | not measured (no reference) | - |")
    check("public route >= 1.05x plain nginx proxy throughput", f"{ratio('public', 'nginx'):.2f}x",
          ratio("public", "nginx") >= 1.05)
    check("Redis store >= 0.9x memory store throughput", f"{ratio('redis', 'session'):.2f}x",
          ratio("redis", "session") >= 0.9)
    check("bearer >= 0.9x session throughput", f"{ratio('bearer', 'session'):.2f}x",
          ratio("bearer", "session") >= 0.9)
    check("10,000 routes >= 0.95x of 10 routes", f"{ratio('routes10k', 'session'):.2f}x",
          ratio("routes10k", "session") >= 0.95)
    if s:
        check("<= 2 KiB per session (memory store, default config)", f"{kib_per_session:.2f} KiB", kib_per_session <= 2.0)
        check("idle RSS <= 20 MiB", f"{idle_mib:.1f} MiB", idle_mib <= 20.0)
    check("session route p99 <= 1.2x nginx proxy p99", f"{ratio('session', 'nginx', 'p99'):.2f}x",
          ratio("session", "nginx", "p99") <= 1.2)
    p("")
    p("## Every run\n")
    p("| target | " + " | ".join(f"round {i + 1}: req/s, p99 ms, user/sys us/req, other load"
                              for i in range(meta["rounds"])) + " |")
    p("| --- | " + " | ".join("---:" for _ in range(meta["rounds"])) + " |")
    for key, _ in TARGETS:
        if key in runs:
            p(f"| {key} | " + " | ".join(f"{r['rps']:,.0f}, {r['p99']:.2f}, {r['user_us']:.1f}/{r['sys_us']:.1f}, "
                                        f"{r['other_cores']:.2f}" for r in runs[key]) + " |")
    others = [r["other_cores"] for rs in runs.values() for r in rs]
    p(f"\nOther load (CPU used during the runs by processes outside the benchmark, e.g. builds): "
      f"median {statistics.median(others):.2f} cores, max {max(others):.2f} cores of {meta['cores']}; "
      f"{meta['idle_load']:.2f} cores in the 2 s before the first run.")
    errs = {k: m["socket_errors"] for k, m in med.items() if m["socket_errors"]}
    if errs:
        p("\nwrk socket errors (summed over rounds): " + ", ".join(f"{k} {v}" for k, v in errs.items()))
    if meta.get("notes"):
        p("\n" + meta["notes"])
    print("\n".join(out))


QUICK_LABELS = {
    "upstream": "upstream alone (nginx, the ceiling)",
    "nginx": "nginx proxy (plain reverse proxy, no auth)",
    "reference": "reference localpool (bare hyper proxy)",
    "public": "portcullis public route",
    "session-memory": "portcullis session + role (memory store)",
    "session-redis": "portcullis session + role (Redis store)",
    "baseline-public": "baseline public route",
    "baseline-session": "baseline session + role (memory store)",
}
QUICK_PORTCULLIS = {"public", "session-memory", "session-redis", "baseline-public", "baseline-session"}


def quick_record(name, rnd, wrk_out, user0, sys0, user1, sys1):
    w = parse_wrk(wrk_out)
    if w["non2xx"]:
        sys.exit(f"{name}: {w['non2xx']} answers >= 400 (wrk output: {wrk_out})")
    if w["socket_errors"] > w["requests"] / 100:
        sys.exit(f"{name}: {w['socket_errors']} socket errors in {w['requests']} requests")
    n = max(w["requests"], 1)
    user = (int(user1) - int(user0)) / n
    system = (int(sys1) - int(sys0)) / n
    print(f"{name:>16} round {rnd}: {w['rps']:>9,.0f} req/s  p50 {w['p50']:6.2f} ms  p99 {w['p99']:6.2f} ms  "
          f"user {user:5.1f} us/req  sys {system:5.1f} us/req", file=sys.stderr)
    print(json.dumps(dict(w, target=name, round=int(rnd), user_us=user, sys_us=system)))


def quick_report(results, secs, rounds, conns, threads, *names):
    runs = {}
    for line in open(results):
        r = json.loads(line)
        runs.setdefault(r["target"], []).append(r)
    med = {k: {f: statistics.median(r[f] for r in rs) for f in ("rps", "p50", "p99", "user_us", "sys_us")}
           for k, rs in runs.items()}
    nginx = med.get("nginx")
    ref = med.get("reference")
    print(f"wrk -t{threads} -c{conns} -d{secs}s, {rounds} interleaved rounds, medians; "
          "user/sys: CPU time of the server process (all its threads; nginx: master and workers) "
          "per request, from /proc/PID/stat\n")
    print("| target | req/s | p50 ms | p99 ms | vs nginx proxy | user us/req | sys us/req | user vs reference |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        if name not in med:
            continue
        m = med[name]
        vs_nginx = f"{m['rps'] / nginx['rps']:.2f}" if nginx else "-"
        vs_ref = f"{m['user_us'] / ref['user_us']:.2f}x" if ref and name in QUICK_PORTCULLIS else ""
        print(f"| {QUICK_LABELS.get(name, name)} | {m['rps']:,.0f} | {m['p50']:.2f} | {m['p99']:.2f} | "
              f"{vs_nginx} | {m['user_us']:.1f} | {m['sys_us']:.1f} | {vs_ref} |")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {
        "ports": ports, "rss": rss, "cpu": cpu, "busy": busy, "load": load, "run-wrk": run_wrk, "signin-form": signin_form, "cookie": cookie,
        "routes": routes, "stub-requests": stub_requests, "wrk": wrk, "startup": startup,
        "report": report, "cputimes": cputimes, "nginx-proxy-conf": nginx_proxy_conf,
        "hello-upstream-conf": hello_upstream_conf,
        "quick-record": quick_record, "quick-report": quick_report,
    }.get(cmd)
    if fn is None:
        sys.exit(__doc__)
    fn(*args)


if __name__ == "__main__":
    main()
