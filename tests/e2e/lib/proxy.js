// Runs the real `portcullis run --config FILE` with a generated config.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../../..');

/** The proxy binary: $E2E_PROXY_BIN, else the debug build in the cargo target dir. */
export function proxyBinary() {
  if (process.env.E2E_PROXY_BIN) return process.env.E2E_PROXY_BIN;
  const target = process.env.CARGO_TARGET_DIR
    ? path.resolve(REPO, process.env.CARGO_TARGET_DIR)
    : path.join(REPO, 'target');
  return path.join(target, 'debug', 'portcullis');
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const q = (s) => JSON.stringify(String(s)); // a TOML basic string

/** A TOML value: a string, a list of strings, or an inline table of either. */
function tomlValue(v) {
  if (Array.isArray(v)) return `[${v.map(q).join(', ')}]`;
  if (v !== null && typeof v === 'object') {
    return `{ ${Object.entries(v).map(([k, x]) => `${q(k)} = ${tomlValue(x)}`).join(', ')} }`;
  }
  return q(v);
}

/**
 * The config for one run. `routes` are `[[route]]` tables as objects;
 * `providers` (SPEC §12), `connections` (SPEC §13) and `upstreams` (SPEC §11)
 * are `[SECTION.NAME]` tables, by name, as objects.
 */
export function renderConfig({
  port, adminPort, publicUrl, upstreamUrl, issuer, clientId, clientSecret,
  rolesClaim, scopes = ['openid', 'profile', 'email', 'offline_access'],
  tls, routes, idleTimeout = '30m', absoluteTimeout = '2h',
  displayName, providers = {}, connections = {}, upstreams = {}, connectionsApiToken,
  session = {},
}) {
  const lines = [
    '[server]',
    `listen = ${q(`127.0.0.1:${port}`)}`,
    `public_url = ${q(publicUrl)}`,
  ];
  if (tls) lines.push(`tls = { cert_file = ${q(tls.certFile)}, key_file = ${q(tls.keyFile)} }`);
  lines.push(
    '',
    '[admin]',
    `listen = ${q(`127.0.0.1:${adminPort}`)}`,
    ...(connectionsApiToken ? [`connections_api_token = ${q(connectionsApiToken)}`] : []),
    '',
    '[upstream]',
    `url = ${q(upstreamUrl)}`,
    '',
    '[oidc]',
    ...(displayName ? [`display_name = ${q(displayName)}`] : []),
    `issuer = ${q(issuer)}`,
    `client_id = ${q(clientId)}`,
    `client_secret = ${q(clientSecret)}`,
    `scopes = [${scopes.map(q).join(', ')}]`,
    `roles_claim = ${Array.isArray(rolesClaim) ? `[${rolesClaim.map(q).join(', ')}]` : q(rolesClaim)}`,
    '',
    '[session]',
    `idle_timeout = ${q(idleTimeout)}`,
    `absolute_timeout = ${q(absoluteTimeout)}`,
    // More `[session]` keys, e.g. `{ store: 'redis', redis_url, secret }`.
    ...Object.entries(session).map(([k, v]) => `${k} = ${tomlValue(v)}`),
    '',
    '[log]',
    'format = "json"',
    'level = "info,portcullis=debug"',
  );
  for (const [section, tables] of Object.entries({ providers, connections, upstreams })) {
    for (const [name, table] of Object.entries(tables)) {
      lines.push('', `[${section}.${name}]`);
      for (const [k, v] of Object.entries(table)) lines.push(`${k} = ${tomlValue(v)}`);
    }
  }
  for (const r of routes) {
    lines.push('', '[[route]]');
    for (const [k, v] of Object.entries(r)) lines.push(`${k} = ${tomlValue(v)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** A self-signed certificate for 127.0.0.1 and localhost, made with Debian's openssl. */
export function makeCertificate(dir) {
  const certFile = path.join(dir, 'tls.crt');
  const keyFile = path.join(dir, 'tls.key');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=portcullis-e2e',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'pipe' });
  return { certFile, keyFile };
}

async function waitReady(adminPort, child, logFile, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`portcullis exited with ${child.exitCode} before it was ready; log:\n${fs.readFileSync(logFile, 'utf8').slice(-4000)}`);
    }
    try {
      const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
      last = `${r.status} ${await r.text()}`;
      if (r.ok) return;
    } catch (e) {
      last = String(e.cause?.code ?? e.message);
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`portcullis not ready after ${timeoutMs} ms (last /readyz: ${last}); log:\n${fs.readFileSync(logFile, 'utf8').slice(-4000)}`);
}

/**
 * Writes the config and starts the proxy; resolves once /readyz says ready.
 * `label` names the files (`portcullis-LABEL.toml`, `.log`) when several run in one dir.
 */
export async function startProxy({ dir, config, port, adminPort, label }) {
  const bin = proxyBinary();
  if (!fs.existsSync(bin)) {
    throw new Error(`no portcullis binary at ${bin}: build it (cargo build) or set E2E_PROXY_BIN`);
  }
  const base = label ? `portcullis-${label}` : 'portcullis';
  const configFile = path.join(dir, `${base}.toml`);
  fs.writeFileSync(configFile, config);
  const logFile = path.join(dir, `${base}.log`);
  const log = fs.openSync(logFile, 'w');
  const child = spawn(bin, ['run', '--config', configFile], {
    stdio: ['ignore', log, log],
    // Only the generated file configures the proxy: PORTCULLIS_* variables are
    // config overrides (and unknown ones are refused), so none are passed on.
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PORTCULLIS_'))),
      RUST_BACKTRACE: '1',
    },
  });
  fs.closeSync(log);
  await waitReady(adminPort, child, logFile);
  return {
    child,
    configFile,
    logFile,
    /** The proxy's JSON log lines so far. */
    logLines() {
      return fs.readFileSync(logFile, 'utf8').split('\n').filter(Boolean).map((l) => {
        try { return JSON.parse(l); } catch { return { raw: l }; }
      });
    },
    async metrics() {
      return (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}
