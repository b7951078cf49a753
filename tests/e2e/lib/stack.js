// One test file's world: the provider, the app, portcullis in front of the app,
// and Debian's chromium driven by playwright-core. Everything on free loopback
// ports; everything stopped by `stop()`.

import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { startProvider, ROLES_CLAIM, USERS } from './provider.js';
import { startDevProvider } from './devidp.js';
import { startUpstream } from './upstream.js';
import { startRedis } from './redis.js';
import { startProxy, freePort, renderConfig, makeCertificate } from './proxy.js';

export { USERS, ROLES_CLAIM };

const here = path.dirname(fileURLToPath(import.meta.url));
export const E2E_DIR = path.resolve(here, '..');
export const ARTIFACTS = process.env.E2E_ARTIFACTS
  ? path.resolve(process.env.E2E_ARTIFACTS)
  : path.join(E2E_DIR, 'artifacts');
export const DOCS_SCREENSHOTS = path.resolve(E2E_DIR, '../../docs/screenshots');

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

// Without the background-networking flags, chromium's own connections to the
// outside (refused on a closed network) crowd out the test's.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

export const DEFAULT_ROUTES = [
  { name: 'health', path: '/health', auth: 'public' },
  { name: 'admin', path: '/admin', roles_any: ['admin'] },
  { name: 'engineering', path: '/engineering', roles_any: ['engineering'] },
  { name: 'api', path: '/api', auth: 'login' },
];

/**
 * @param {object} o
 * @param {string} o.name            artifacts go to artifacts/<name>/
 * @param {string} [o.shape]         "auth0" | "keycloak" (see provider.js)
 * @param {string|string[]} [o.rolesClaim]
 * @param {number} [o.accessTokenTtl] seconds
 * @param {boolean} [o.tls]          serve the proxy over https with a generated certificate
 * @param {string} [o.displayName]   `[oidc] display_name` (oidc-provider, provider "default")
 * @param {object} [o.devProviders]  more providers, by name, each a development provider
 *                                   (lib/devidp.js) whose client is registered for
 *                                   `{public_url}/_auth/callback/NAME`: `{ display_name, ... }`
 *                                   are more keys of its `[providers.NAME]` table
 * @param {object} [o.services]      third-party OAuth services for connected accounts (SPEC §13),
 *                                   by connection name: each a second oidc-provider (lib/provider.js)
 *                                   on 127.0.0.2, its client registered for
 *                                   `{public_url}/_auth/connect/NAME/callback`; the proxy gets
 *                                   `[connections.NAME]` (found by issuer discovery) and
 *                                   `[upstreams.NAME]` (the service's origin, whose userinfo `/me`
 *                                   plays the third-party API). `{ accessTokenTtl, brand }` go to
 *                                   the provider, anything else into `[connections.NAME]`.
 * @param {string} [o.connectionsApiToken] `[admin] connections_api_token`
 * @param {string} [o.store]         "memory" (default) | "redis": a redis-server of its own
 *                                   (lib/redis.js), `[session] store = "redis"`, a random `secret`
 * @param {number} [o.replicas]      proxy processes, same config but `server.listen` (all with
 *                                   replica A's `public_url`); `stack.replicas[i]` has
 *                                   `{ label, port, adminPort, url(p), proxy, restart() }`
 */
export async function startStack({
  name,
  shape = 'auth0',
  rolesClaim = [ROLES_CLAIM, 'groups'],
  accessTokenTtl = 600,
  tls = false,
  routes = DEFAULT_ROUTES,
  idleTimeout,
  absoluteTimeout,
  displayName,
  devProviders = {},
  services = {},
  connectionsApiToken,
  store = 'memory',
  replicas = 1,
} = {}) {
  const dir = path.join(ARTIFACTS, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const stoppers = [];
  const stack = { dir, name };
  try {
    const port = await freePort();
    const adminPort = await freePort();
    const publicUrl = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    stack.publicUrl = publicUrl;

    const app = await startUpstream();
    stoppers.push(() => app.stop());
    const provider = await startProvider({ publicUrl, shape, accessTokenTtl });
    stoppers.push(() => provider.stop());

    const providers = {};
    stack.devProviders = {};
    for (const [pname, extra] of Object.entries(devProviders)) {
      const dev = await startDevProvider({
        dir,
        clientId: `portcullis-${pname}`,
        redirectUris: [`${publicUrl}/_auth/callback/${pname}`],
      });
      stoppers.push(() => dev.stop());
      stack.devProviders[pname] = dev;
      providers[pname] = {
        issuer: dev.issuer,
        client_id: dev.clientId,
        client_secret: dev.clientSecret,
        scopes: ['openid', 'profile', 'email', 'offline_access'],
        roles_claim: 'roles',
        ...extra,
      };
    }

    const connections = {};
    const upstreams = {};
    stack.services = {};
    for (const [cname, { accessTokenTtl: ttl, brand, ...extra }] of Object.entries(services)) {
      const service = await startProvider({
        publicUrl,
        host: '127.0.0.2',
        issuerHost: '127.0.0.2',
        clientId: `portcullis-${cname}`,
        redirectUris: [`${publicUrl}/_auth/connect/${cname}/callback`],
        logoutUris: false,
        ...(ttl ? { accessTokenTtl: ttl } : {}),
        ...(brand ? { brand } : {}),
      });
      stoppers.push(() => service.stop());
      stack.services[cname] = service;
      connections[cname] = {
        issuer: service.issuer,
        client_id: service.clientId,
        client_secret: service.clientSecret,
        ...extra,
      };
      upstreams[cname] = { url: service.issuer };
    }

    let session = {};
    if (store === 'redis') {
      const redis = await startRedis({ dir });
      stoppers.push(() => redis.stop());
      stack.redis = redis;
      session = { store: 'redis', redis_url: redis.url, secret: randomBytes(32).toString('base64') };
    }

    const configArgs = {
      port,
      adminPort,
      publicUrl,
      upstreamUrl: app.url,
      issuer: provider.issuer,
      clientId: provider.clientId,
      clientSecret: provider.clientSecret,
      rolesClaim,
      tls: tls ? makeCertificate(dir) : undefined,
      routes,
      displayName,
      providers,
      connections,
      upstreams,
      connectionsApiToken,
      ...(idleTimeout ? { idleTimeout } : {}),
      ...(absoluteTimeout ? { absoluteTimeout } : {}),
      session,
    };
    const config = renderConfig(configArgs);
    const proxy = await startProxy({ dir, config, port, adminPort });
    stoppers.push(() => proxy.stop());
    stack.replicas = [{
      label: 'a', port, adminPort, proxy, url: (p = '/') => `${publicUrl}${p}`,
    }];
    // More replicas: their own listeners, everything else the same.
    for (let i = 1; i < replicas; i += 1) {
      const label = String.fromCharCode(97 + i);
      const rPort = await freePort();
      const rAdminPort = await freePort();
      const rConfig = renderConfig({ ...configArgs, port: rPort, adminPort: rAdminPort });
      const replica = {
        label,
        port: rPort,
        adminPort: rAdminPort,
        url: (p = '/') => `${tls ? 'https' : 'http'}://127.0.0.1:${rPort}${p}`,
        proxy: await startProxy({ dir, config: rConfig, port: rPort, adminPort: rAdminPort, label }),
        starts: 1,
        /** Stops this replica's process and starts a new one on the same ports and config. */
        async restart() {
          await replica.proxy.stop();
          replica.starts += 1;
          replica.proxy = await startProxy({
            dir, config: rConfig, port: rPort, adminPort: rAdminPort, label: `${label}-${replica.starts}`,
          });
          return replica.proxy;
        },
      };
      stoppers.push(() => replica.proxy.stop());
      stack.replicas.push(replica);
    }
    // /readyz waits for the default provider only; the others are named in its
    // body until discovered (their routes answer 503 meanwhile).
    for (const pname of Object.keys(devProviders)) {
      await eventually(async () => {
        const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
        return (await r.text()).includes(`provider ${pname}: ok`);
      }, { timeoutMs: 15000, what: `provider ${pname} discovered (/readyz)` });
    }

    // chromium.launch() runs the browser on a fresh temporary user data dir of its
    // own; each test then takes a new context (its own cookie jar).
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS, ...(tls ? ['--ignore-certificate-errors'] : [])],
    });
    stoppers.push(() => browser.close());
    Object.assign(stack, { app, provider, proxy, browser, port, adminPort });
  } catch (e) {
    for (const stop of stoppers.reverse()) await stop().catch(() => {});
    throw e;
  }

  stack.url = (p = '/') => `${stack.publicUrl}${p}`;

  /** A fresh cookie jar: a new incognito-like context of the same chromium. */
  stack.newContext = () => stack.browser.newContext({
    ignoreHTTPSErrors: tls,
    viewport: { width: 1100, height: 720 },
  });

  stack.stop = async () => {
    for (const stop of stoppers.reverse()) {
      try { await stop(); } catch { /* keep stopping the rest */ }
    }
  };
  return stack;
}

/** Saves a screenshot as a test artifact, and as the committed copy when asked. */
export async function screenshot(stack, page, file) {
  const out = path.join(stack.dir, file);
  await page.screenshot({ path: out, fullPage: false });
  if (process.env.E2E_UPDATE_DOCS === '1') {
    fs.mkdirSync(DOCS_SCREENSHOTS, { recursive: true });
    fs.copyFileSync(out, path.join(DOCS_SCREENSHOTS, file));
  }
  return out;
}

/** On the provider's sign-in page: type the user's name and password, submit. */
export async function submitSignIn(page, user, password = USERS[user]?.password) {
  await page.locator('#username').fill(user);
  await page.locator('#password').fill(password);
  await Promise.all([
    page.waitForLoadState('load'),
    page.locator('button[type=submit]:not([name=cancel])').click(),
  ]);
}

/**
 * Navigates to `target` (a path at the proxy), expects the provider's password
 * page, signs in, and waits to be back on the proxy's origin.
 */
export async function signIn(stack, page, target, user) {
  await page.goto(stack.url(target));
  await page.locator('#password').waitFor({ timeout: 10000 });
  await submitSignIn(page, user);
  await page.waitForURL((u) => u.origin === stack.publicUrl, { timeout: 15000 });
}

/** What the app saw for the page currently shown (embedded by the app as JSON). */
export async function seenByApp(page) {
  return JSON.parse(await page.locator('#seen').textContent());
}

/** Runs `fetch(path)` from the page's own JavaScript, with a browser's defaults. */
export async function pageFetch(page, p, init = {}) {
  return page.evaluate(async ([p2, init2]) => {
    const r = await fetch(p2, init2);
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not json */ }
    return {
      status: r.status,
      redirected: r.redirected,
      url: r.url,
      type: r.type,
      contentType: r.headers.get('content-type'),
      wwwAuthenticate: r.headers.get('www-authenticate'),
      text,
      json,
    };
  }, [p, init]);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value, or throws after `timeoutMs`. */
export async function eventually(fn, { timeoutMs = 10000, everyMs = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(everyMs);
  }
  throw new Error(`${what} not met within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}
