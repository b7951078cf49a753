#!/usr/bin/env python3
"""Render and lint the portcullis chart offline, without a helm binary.

Uses the Helm v4 Go SDK through the `helm-python-sdk` wheel (PyPI; Python >= 3.12):
    python3.13 -m venv /tmp/hv && /tmp/hv/bin/pip install helm-python-sdk pyyaml
    /tmp/hv/bin/python deploy/helm/render_check.py deploy/helm/portcullis
Renders the default values and a Redis + ingress + ServiceMonitor set, checks that
values which would deploy something broken are refused, runs `helm lint --strict`,
and writes the rendered configs to /tmp/default.toml and /tmp/redis.toml for
`portcullis check`. Exits non-zero on any failure.
"""
import json, sys, yaml, helm_python as helm
chart_dir = sys.argv[1]
ok = True
def render(values, label):
    global ok
    ch = helm.Chart.load(chart_dir)
    try:
        out = ch.render(values, name="rel", namespace="default", is_install=True)
    except Exception as e:
        print(f"[{label}] render error: {e}")
        ok = False
        return None
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"): continue
        for d in yaml.safe_load_all(text):
            if d: docs.append((path, d))
    print(f"[{label}] " + ", ".join(f"{d['kind']}/{d['metadata']['name']}" for _, d in docs))
    return {(d['kind'], d['metadata']['name']): d for _, d in docs}
base = {"secrets": {"existingSecret": "portcullis"}}
r = render(base, "default")
open("/tmp/default.toml","w").write(r[("ConfigMap","rel-portcullis")]["data"]["portcullis.toml"])
r = render({"replicaCount": 3, "config": {"session": {"store": "redis"}, "oidc": {"authParams": {"audience": "https://api.example.com", "hd": "example.com"}}},
            "secrets": {"create": True, "clientSecret": "c", "sessionSecret": "s", "redisUrl": "redis://:pw@r:6379/0"},
            "ingress": {"enabled": True, "className": "nginx", "tls": [{"secretName": "t", "hosts": ["app.example.com"]}]},
            "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}, "redis+ingress+sm")
open("/tmp/redis.toml","w").write(r[("ConfigMap","rel-portcullis")]["data"]["portcullis.toml"])
for bad, label in [({}, "no-secret"), ({"replicaCount": 2, **base}, "memory-2-replicas"), ({"config": {"session": {"store": "mem"}}, **base}, "bad-store")]:
    ch = helm.Chart.load(chart_dir)
    try:
        ch.render(bad, name="rel", namespace="default", is_install=True); print(f"[{label}] UNEXPECTEDLY rendered"); ok=False
    except Exception as e:
        print(f"[{label}] refused as expected: {str(e)[:160]}")
rep = helm.lint(chart_dir, base, strict=True)
print("lint:", json.dumps(rep))
if rep.get("errors") or any(m.get("severity",0) >= 2 for m in rep.get("messages", [])): ok=False
sys.exit(0 if ok else 1)
