// portcullis's own development provider (crates/devidp) as a second, separate
// identity provider next to oidc-provider: the workspace example `bench_idp`
// runs it on its own with the clients given on its command line (the same
// binary bench/run.sh uses). `portcullis demo` cannot serve here: it registers
// only its own proxy's callback, with a secret it never prints.
//
// Users (crates/devidp demo_users): alice (roles admin, user) and bob (role
// user), picked with one button each on the provider's sign-in page; roles in
// the top-level claim `roles`. Issuer `http://127.0.0.1:PORT`.

import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { proxyBinary } from './proxy.js';

/** $E2E_DEVIDP_BIN, else `examples/bench_idp` next to the proxy binary. */
export function devidpBinary() {
  if (process.env.E2E_DEVIDP_BIN) return process.env.E2E_DEVIDP_BIN;
  return path.join(path.dirname(proxyBinary()), 'examples', 'bench_idp');
}

/**
 * Starts the development provider with one confidential client
 * (`client_secret_basic`) registered for `redirectUris` (matched exactly).
 * Resolves once it prints READY.
 *
 * @param {object} o
 * @param {string} o.dir            its output goes to `<dir>/devidp-<clientId>.log`
 * @param {string[]} o.redirectUris
 * @param {string} [o.clientId]
 * @param {number} [o.ttl]          token lifetimes, seconds
 */
export async function startDevProvider({
  dir,
  redirectUris,
  clientId = 'portcullis-partners',
  clientSecret = `devidp-${randomUUID()}`,
  ttl = 600,
}) {
  const bin = devidpBinary();
  if (!fs.existsSync(bin)) {
    throw new Error(`no development provider at ${bin}: build it (cargo build --example bench_idp) or set E2E_DEVIDP_BIN`);
  }
  const logFile = path.join(dir, `devidp-${clientId}.log`);
  const log = fs.createWriteStream(logFile);
  const child = spawn(bin, [
    '--listen', '127.0.0.1:0',
    '--ttl', String(ttl),
    '--client', clientId, clientSecret, redirectUris.join(','),
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.pipe(log, { end: false });

  const issuer = await new Promise((resolve, reject) => {
    let out = '';
    let found = null;
    const timer = setTimeout(() => reject(new Error(`development provider not ready after 15 s: ${out}`)), 15000);
    child.stdout.on('data', (d) => {
      out += d;
      log.write(d);
      found = found ?? out.match(/^ISSUER=(\S+)$/m)?.[1];
      if (found && /^READY$/m.test(out)) {
        clearTimeout(timer);
        resolve(found);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`development provider exited ${code} before it was ready: ${out}`));
    });
  });

  return {
    issuer,
    clientId,
    clientSecret,
    child,
    logFile,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
      log.end();
    },
  };
}

/** On the development provider's sign-in page: pick `user`'s button. */
export async function pickDevUser(page, user) {
  await page.locator(`button[name="user"][value="${user}"]`).click();
}
