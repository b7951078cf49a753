// Connected accounts (SPEC §13) on the Redis session store, across two proxy
// replicas: one redis-server (lib/redis.js), two `portcullis run` processes
// with the same config but `server.listen` (both with replica A's
// `public_url`). The browser talks to A; the test sends the browser's cookies
// to B directly. The service is the same "Issue Tracker" oidc-provider as in
// connections.test.js, with 70 s access tokens (due 10 s after issue, since the
// proxy refreshes 60 s ahead).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  startStack, signIn, submitSignIn, pageFetch, sleep,
} from '../lib/stack.js';

const ACCESS_TOKEN_TTL = 70;
const DUE_AFTER_MS = (ACCESS_TOKEN_TTL - 60) * 1000;

const ROUTES = [
  { name: 'home', path_exact: '/', auth: 'public' },
  {
    name: 'tracker-api', path: '/tracker', upstream: 'tracker', strip_prefix: '/tracker', connections: ['tracker'],
  },
  { name: 'with-token', path: '/with-token', connections: ['tracker'] },
];

let stack;
let tracker;
let replicaB;
let alice;

before(async () => {
  stack = await startStack({
    name: 'connections-redis',
    routes: ROUTES,
    store: 'redis',
    replicas: 2,
    services: {
      tracker: {
        brand: 'Issue Tracker',
        accessTokenTtl: ACCESS_TOKEN_TTL,
        display_name: 'Issue Tracker',
        scopes: ['openid', 'profile', 'offline_access'],
      },
    },
  });
  tracker = stack.services.tracker;
  [, replicaB] = stack.replicas;
  alice = await stack.newContext();
});
after(async () => {
  await alice?.close().catch(() => {});
  await stack?.stop();
});

const codeGrants = (who) => tracker.eventsNamed('grant.success', (e) => e.grantType === 'authorization_code' && e.accountId === who);
const refreshes = (who) => tracker.eventsNamed('grant.success', (e) => e.grantType === 'refresh_token' && e.accountId === who);
const rotations = (who) => tracker.eventsNamed('refresh_token.consumed', (e) => e.accountId === who);
const refreshErrors = () => tracker.eventsNamed('grant.error', (e) => e.grantType === 'refresh_token');
const latestAccessToken = (who) => tracker.eventsNamed('access_token.saved', (e) => e.accountId === who).at(-1);

async function tokenOwner(token) {
  const found = await tracker.provider.AccessToken.find(token);
  return found ? { accountId: found.accountId, clientId: found.clientId } : null;
}

/** The browser's cookies for the proxy, as a Cookie header (sent to replica B by node). */
async function cookieHeader(ctx) {
  return (await ctx.cookies(stack.publicUrl)).map((c) => `${c.name}=${c.value}`).join('; ');
}

/** `fetch` at replica B with alice's browser cookies. */
async function atB(p, init = {}) {
  const r = await fetch(replicaB.url(p), {
    ...init,
    headers: { accept: 'application/json', cookie: await cookieHeader(alice), ...init.headers },
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not json */ }
  return { status: r.status, text, json };
}

async function frontPage(ctx) {
  const page = await ctx.newPage();
  await page.goto(stack.url('/'));
  return page;
}

test('a link made through replica A in the browser is visible and used on replica B', async () => {
  const page = await alice.newPage();
  await signIn(stack, page, '/projects', 'alice');
  await page.goto(stack.url('/tracker/me'));
  await page.locator('#password').waitFor({ timeout: 10000 });
  assert.equal(new URL(page.url()).origin, tracker.issuer);
  await submitSignIn(page, 'alice');
  await page.waitForURL(stack.url('/tracker/me'), { timeout: 15000 });
  assert.equal(JSON.parse(await page.locator('body').innerText()).sub, 'alice');
  assert.equal(codeGrants('alice').length, 1);
  await page.close();

  const listed = await atB('/_auth/connections');
  assert.equal(listed.status, 200, listed.text);
  assert.equal(listed.json.length, 1);
  assert.equal(listed.json[0].name, 'tracker');
  assert.equal(listed.json[0].connected, true, listed.text);

  const me = await atB('/tracker/me');
  assert.equal(me.status, 200, me.text);
  assert.equal(me.json.sub, 'alice', 'the service answered replica B with the linked account');
  const viaApp = await atB('/with-token/from-b');
  assert.equal(viaApp.status, 200, viaApp.text);
  const token = viaApp.json.headers.authorization.replace(/^Bearer /, '');
  assert.deepEqual(await tokenOwner(token), { accountId: 'alice', clientId: tracker.clientId });
  assert.equal(codeGrants('alice').length, 1, 'no second trip to the service');

  assert.equal((await fetch(replicaB.url('/_auth/connections'))).status, 401, 'B without cookies');
});

test('once due, 32 concurrent requests split between A and B cause one refresh, and no rotated token is reused', { timeout: 60000 }, async () => {
  const page = await frontPage(alice);
  const issued = latestAccessToken('alice');
  const oldToken = issued.jti;
  await sleep(Math.max(0, issued.at + DUE_AFTER_MS + 1000 - Date.now()));
  const refreshed = refreshes('alice').length;
  const rotated = rotations('alice').length;
  const cookie = await cookieHeader(alice);

  // Both halves start together: 16 fetch()es in the page to A, 16 from node to B.
  const fromA = page.evaluate(async () => Promise.all(
    Array.from({ length: 16 }, async (_, i) => {
      const r = await fetch(`/with-token/burst-a/${i}`, { headers: { accept: 'application/json' } });
      const body = await r.json().catch(() => null);
      return { via: 'a', status: r.status, authorization: body?.headers?.authorization };
    }),
  ));
  const fromB = Promise.all(Array.from({ length: 16 }, async (_, i) => {
    const r = await fetch(replicaB.url(`/with-token/burst-b/${i}`), { headers: { accept: 'application/json', cookie } });
    const body = await r.json().catch(() => null);
    return { via: 'b', status: r.status, authorization: body?.headers?.authorization };
  }));
  const results = [...await fromA, ...await fromB];
  assert.equal(results.length, 32);
  for (const r of results) assert.equal(r.status, 200, JSON.stringify(r));
  assert.equal(refreshes('alice').length, refreshed + 1, 'one refresh for 32 requests on two replicas');
  assert.equal(rotations('alice').length, rotated + 1, 'the refresh token was rotated once');
  assert.deepEqual(refreshErrors(), [], 'no rotated refresh token was presented again');

  const tokens = new Set(results.map((r) => r.authorization));
  assert.equal(tokens.size, 1, [...tokens].join('\n'));
  const newToken = [...tokens][0].replace(/^Bearer /, '');
  assert.notEqual(newToken, oldToken);
  assert.deepEqual(await tokenOwner(newToken), { accountId: 'alice', clientId: tracker.clientId });
  assert.equal((await pageFetch(page, '/tracker/me')).json?.sub, 'alice', 'A: the refreshed token works at the API');
  assert.equal((await atB('/tracker/me')).json?.sub, 'alice', 'B: the refreshed token works at the API');
  await page.close();
});

test('replica B restarted: the link still works on it', async () => {
  const stored = latestAccessToken('alice').jti;
  await replicaB.restart();
  const listed = await atB('/_auth/connections');
  assert.equal(listed.status, 200, listed.text);
  assert.equal(listed.json[0].connected, true, listed.text);
  const me = await atB('/tracker/me');
  assert.equal(me.status, 200, me.text);
  assert.equal(me.json.sub, 'alice');
  const viaApp = await atB('/with-token/after-restart');
  assert.equal(viaApp.status, 200, viaApp.text);
  assert.equal(viaApp.json.headers.authorization, `Bearer ${stored}`, 'the stored token, no new grant');
  assert.equal(codeGrants('alice').length, 1, 'no relink');
  // And A still agrees.
  const page = await frontPage(alice);
  assert.equal((await pageFetch(page, '/tracker/me')).json?.sub, 'alice');
  await page.close();
});
