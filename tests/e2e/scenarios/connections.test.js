// Connected accounts (SPEC §13): a signed-in user links an account at a
// third-party OAuth service, and portcullis hands that service's access tokens
// to the routes that name the connection. The service is a second oidc-provider
// ("Issue Tracker", lib/provider.js on 127.0.0.2) with its own users, sign-in
// page, rotating refresh tokens, revocation and 70 s access tokens (the proxy
// refreshes 60 s ahead, so a token is due 10 s after it is issued). Its
// userinfo endpoint `/me` plays the third-party API.
//
// Routes: `/` public; `/tracker/...` goes to the service with the token
// (`strip_prefix`), `/with-token/...` to the app, which shows the
// `Authorization` it got; anything else needs a login.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import {
  startStack, signIn, submitSignIn, seenByApp, pageFetch, screenshot, eventually, sleep,
} from '../lib/stack.js';

const ACCESS_TOKEN_TTL = 70;
// The proxy refreshes a token expiring within 60 s (connections::tokens).
const DUE_AFTER_MS = (ACCESS_TOKEN_TTL - 60) * 1000;
const API_TOKEN = `offline-jobs-${randomBytes(16).toString('hex')}`;

const ROUTES = [
  { name: 'home', path_exact: '/', auth: 'public' },
  {
    name: 'tracker-api', path: '/tracker', upstream: 'tracker', strip_prefix: '/tracker', connections: ['tracker'],
  },
  { name: 'with-token', path: '/with-token', connections: ['tracker'] },
];

let stack;
let tracker;
// Tokens the service issues while this is set live 2 s (the outage case).
let shortTokens = false;
// alice's browser, kept from one case to the next.
let alice;
// bob's, from the callback case on.
let bob;

before(async () => {
  stack = await startStack({
    name: 'connections',
    routes: ROUTES,
    connectionsApiToken: API_TOKEN,
    services: {
      tracker: {
        brand: 'Issue Tracker',
        accessTokenTtl: () => (shortTokens ? 2 : ACCESS_TOKEN_TTL),
        display_name: 'Issue Tracker',
        // oidc-provider's userinfo (the "API") takes only tokens with openid.
        scopes: ['openid', 'profile', 'offline_access'],
        auth_params: { ui_locales: 'en' },
      },
    },
  });
  tracker = stack.services.tracker;
  alice = await stack.newContext();
});
after(async () => {
  await alice?.close().catch(() => {});
  await bob?.close().catch(() => {});
  await stack?.stop();
});

// === what the service saw ===

const codeGrants = (who) => tracker.eventsNamed('grant.success', (e) => e.grantType === 'authorization_code' && e.accountId === who);
const refreshes = (who) => tracker.eventsNamed('grant.success', (e) => e.grantType === 'refresh_token' && e.accountId === who);
const rotations = (who) => tracker.eventsNamed('refresh_token.consumed', (e) => e.accountId === who);
const refreshErrors = () => tracker.eventsNamed('grant.error', (e) => e.grantType === 'refresh_token');
/** The newest refresh token the service issued to `who` (opaque: its jti is the token). */
const latestRefreshToken = (who) => tracker.eventsNamed('refresh_token.saved', (e) => e.accountId === who).at(-1);
const latestAccessToken = (who) => tracker.eventsNamed('access_token.saved', (e) => e.accountId === who).at(-1);

/** The service's verdict on an access token: its owner while it is valid there. */
async function tokenOwner(token) {
  const found = await tracker.provider.AccessToken.find(token);
  return found ? { accountId: found.accountId, clientId: found.clientId } : null;
}

/** A refresh grant at the service's token endpoint, as the proxy's client. */
async function refreshAtService(refreshToken) {
  const r = await fetch(`${tracker.issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${tracker.clientId}:${tracker.clientSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }),
  });
  return { status: r.status, json: await r.json() };
}

// === in the browser ===

/** A new tab of `ctx` on the public front page (same origin for `fetch`). */
async function frontPage(ctx) {
  const page = await ctx.newPage();
  await page.goto(stack.url('/'));
  return page;
}

/** What the app got from the page's `fetch(path)`, as JSON. */
const fetchWithToken = (page, path, headers = {}) => pageFetch(page, path, { headers: { accept: 'application/json', ...headers } });

async function connections(page) {
  const r = await pageFetch(page, '/_auth/connections');
  assert.equal(r.status, 200, r.text);
  return r;
}

/** The access token the app received with its newest request for `url`. */
const appToken = (url) => stack.app.seen.findLast((s) => s.url === url)?.headers.authorization?.replace(/^Bearer /, '');

/**
 * Navigates `page` to `start` and stops the browser at the connect callback,
 * which is a redirect from the service: Playwright does not route redirects,
 * so the chromium DevTools protocol (Fetch) pauses it. Returns its URL.
 */
async function heldCallback(page, start) {
  const cdp = await page.context().newCDPSession(page);
  const held = new Promise((resolve, reject) => {
    setTimeout(() => reject(new Error(`no connect callback within 15 s of ${start}`)), 15000).unref();
    cdp.on('Fetch.requestPaused', ({ requestId, request }) => {
      resolve(request.url);
      cdp.send('Fetch.failRequest', { requestId, errorReason: 'Aborted' }).catch(() => {});
    });
  });
  await cdp.send('Fetch.enable', { patterns: [{ urlPattern: '*/_auth/connect/tracker/callback*' }] });
  page.goto(start).catch(() => { /* aborted at the callback */ });
  try {
    return await held;
  } finally {
    await cdp.send('Fetch.disable').catch(() => {});
    await cdp.detach().catch(() => {});
  }
}

const adminToken = (query, headers = {}) => fetch(
  `http://127.0.0.1:${stack.adminPort}/connections/tracker/token?${query}`,
  { headers },
);

test('a page on a route with connections goes through the service\'s sign-in and comes back working', async () => {
  const page = await alice.newPage();
  await signIn(stack, page, '/projects', 'alice');
  const hops = [];
  page.on('request', (r) => { if (r.isNavigationRequest()) hops.push(new URL(r.url())); });

  await page.goto(stack.url('/tracker/me'));
  // At the service's own sign-in page, another site than the proxy and the login provider.
  await page.locator('#password').waitFor({ timeout: 10000 });
  assert.equal(new URL(page.url()).origin, tracker.issuer);
  assert.match(await page.locator('.brand').textContent(), /Issue Tracker/);
  await screenshot(stack, page, 'connect-signin.png');

  const connect = hops.find((u) => u.pathname === '/_auth/connect/tracker');
  assert.ok(connect, hops.map(String).join('\n'));
  assert.equal(connect.origin, stack.publicUrl);
  assert.match(connect.searchParams.get('rd'), /\/tracker\/me$/);
  const authorize = hops.find((u) => u.origin === tracker.issuer && u.pathname === '/auth');
  const q = authorize.searchParams;
  assert.equal(q.get('response_type'), 'code');
  assert.equal(q.get('client_id'), tracker.clientId);
  assert.equal(q.get('redirect_uri'), stack.url('/_auth/connect/tracker/callback'));
  assert.equal(q.get('scope'), 'openid profile offline_access');
  assert.equal(q.get('code_challenge_method'), 'S256');
  assert.ok(q.get('state') && q.get('code_challenge'));
  assert.equal(q.get('ui_locales'), 'en', 'auth_params are passed on');

  await submitSignIn(page, 'alice');
  await page.waitForURL(stack.url('/tracker/me'), { timeout: 15000 });
  const me = JSON.parse(await page.locator('body').innerText());
  assert.equal(me.sub, 'alice', 'the service\'s API answered with the linked account');
  assert.equal(codeGrants('alice').length, 1);
  assert.ok(hops.some((u) => u.pathname === '/_auth/connect/tracker/callback'));
  await page.close();
});

test('the route\'s upstream gets a valid token in place of the client\'s; /_auth/connections says connected and shows no token', async () => {
  const page = await frontPage(alice);
  const r = await fetchWithToken(page, '/with-token/items', { authorization: 'Bearer forged-by-the-page' });
  assert.equal(r.status, 200, r.text);
  const token = appToken('/with-token/items');
  assert.ok(token && token !== 'forged-by-the-page', 'the client\'s Authorization was replaced');
  assert.equal(stack.app.seen.filter((s) => s.headers.authorization?.includes('forged')).length, 0);
  assert.deepEqual(await tokenOwner(token), { accountId: 'alice', clientId: tracker.clientId });
  assert.equal(token, latestAccessToken('alice').jti);

  const api = await pageFetch(page, '/tracker/me');
  assert.equal(api.status, 200, api.text);
  assert.equal(api.json.sub, 'alice');

  const listed = await connections(page);
  assert.equal(listed.json.length, 1);
  const [link] = listed.json;
  assert.equal(link.name, 'tracker');
  assert.equal(link.display_name, 'Issue Tracker');
  assert.equal(link.connected, true);
  assert.ok(link.scopes.includes('openid') && link.scopes.includes('profile'), JSON.stringify(link));
  const inSeconds = link.expires_at - Date.now() / 1000;
  assert.ok(inSeconds > 0 && inSeconds <= ACCESS_TOKEN_TTL + 2, `expires_at ${link.expires_at}`);
  assert.ok(!listed.text.includes(token), 'no access token in /_auth/connections');
  assert.ok(!listed.text.includes(latestRefreshToken('alice').jti), 'no refresh token in /_auth/connections');
  // The app never gets the refresh token.
  const refreshToken = latestRefreshToken('alice').jti;
  assert.ok(!stack.app.seen.some((s) => JSON.stringify(s.headers).includes(refreshToken)));

  const anonymous = await fetch(stack.url('/_auth/connections'));
  assert.equal(anonymous.status, 401);
  await page.close();
});

test('the token is refreshed once it is due: 32 concurrent requests cause one refresh, and no rotated token is reused', { timeout: 60000 }, async () => {
  const page = await frontPage(alice);
  const issued = latestAccessToken('alice');
  const oldToken = issued.jti;
  await sleep(Math.max(0, issued.at + DUE_AFTER_MS + 1000 - Date.now()));
  const refreshed = refreshes('alice').length;
  const rotated = rotations('alice').length;

  const results = await page.evaluate(async () => Promise.all(
    Array.from({ length: 32 }, async (_, i) => {
      const r = await fetch(`/with-token/burst/${i}`, { headers: { accept: 'application/json' } });
      const body = await r.json().catch(() => null);
      return { status: r.status, authorization: body?.headers?.authorization };
    }),
  ));
  for (const r of results) assert.equal(r.status, 200, JSON.stringify(r));
  assert.equal(refreshes('alice').length, refreshed + 1, 'one refresh for 32 requests');
  assert.equal(rotations('alice').length, rotated + 1, 'the refresh token was rotated once');
  assert.deepEqual(refreshErrors(), [], 'no rotated refresh token was presented again');

  const tokens = new Set(results.map((r) => r.authorization));
  assert.equal(tokens.size, 1, [...tokens].join('\n'));
  const newToken = [...tokens][0].replace(/^Bearer /, '');
  assert.notEqual(newToken, oldToken);
  assert.deepEqual(await tokenOwner(newToken), { accountId: 'alice', clientId: tracker.clientId });
  assert.equal((await pageFetch(page, '/tracker/me')).json?.sub, 'alice', 'the refreshed token works at the API');
  const [link] = (await connections(page)).json;
  assert.ok(link.expires_at * 1000 > issued.at + ACCESS_TOKEN_TTL * 1000, 'expires_at moved on');
  await page.close();
});

test('the admin listener hands the token to offline jobs with its secret only; the public listener has no such endpoint', async () => {
  const q = 'provider=default&sub=alice';
  assert.equal((await adminToken(q)).status, 401, 'no secret');
  assert.equal((await adminToken(q, { authorization: 'Bearer not-the-secret-0123456789abcdef0123' })).status, 401, 'wrong secret');
  assert.equal((await adminToken(q, { authorization: `Basic ${API_TOKEN}` })).status, 401, 'not a bearer');

  const ok = await adminToken(q, { authorization: `Bearer ${API_TOKEN}` });
  assert.equal(ok.status, 200);
  const body = await ok.json();
  assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_at', 'scopes']);
  assert.equal(body.access_token, latestAccessToken('alice').jti);
  assert.deepEqual(await tokenOwner(body.access_token), { accountId: 'alice', clientId: tracker.clientId });
  assert.ok(body.scopes.includes('profile'));
  assert.equal((await adminToken('provider=default&sub=bob', { authorization: `Bearer ${API_TOKEN}` })).status, 404, 'bob has no link');

  // On the public listener the path is just a page of the app: no token.
  const page = await frontPage(alice);
  const pub = await pageFetch(page, `/connections/tracker/token?${q}`, {
    headers: { authorization: `Bearer ${API_TOKEN}`, accept: 'application/json' },
  });
  assert.equal(pub.json?.url, `/connections/tracker/token?${q}`, `the app answered: ${pub.text.slice(0, 200)}`);
  assert.equal(pub.json?.access_token, undefined);
  assert.ok(!pub.text.includes(body.access_token));
  await page.close();
});

test('disconnect from the page revokes at the service: connected false, scripts get 403 connection_required, the refresh token is dead', async () => {
  const page = await frontPage(alice);
  const refreshToken = latestRefreshToken('alice');
  const accessToken = latestAccessToken('alice').jti;

  // Not from this site: refused, the link stays.
  const [cookie] = (await alice.cookies(stack.publicUrl)).filter((c) => c.name === 'portcullis');
  for (const headers of [{ origin: 'https://evil.example' }, { 'sec-fetch-site': 'cross-site' }, {}]) {
    const r = await fetch(stack.url('/_auth/connect/tracker/disconnect'), {
      method: 'POST', headers: { cookie: `portcullis=${cookie.value}`, ...headers },
    });
    assert.equal(r.status, 403, JSON.stringify(headers));
  }
  assert.equal((await connections(page)).json[0].connected, true);

  const r = await pageFetch(page, '/_auth/connect/tracker/disconnect', { method: 'POST' });
  assert.equal(r.status, 204, r.text);
  await eventually(() => tracker.eventsNamed('grant.revoked', (e) => e.grantId === refreshToken.grantId).length === 1,
    { what: 'the grant revoked at the service' });

  const [link] = (await connections(page)).json;
  assert.equal(link.connected, false);
  assert.deepEqual(link.scopes, []);
  assert.equal(link.expires_at, null);

  const refused = await fetchWithToken(page, '/with-token/items');
  assert.equal(refused.status, 403, refused.text);
  assert.equal(refused.json.error, 'connection_required');
  assert.equal(refused.json.connection, 'tracker');
  const connectUrl = new URL(refused.json.connect_url, stack.publicUrl);
  assert.equal(`${connectUrl.origin}${connectUrl.pathname}`, stack.url('/_auth/connect/tracker'));
  assert.match(connectUrl.searchParams.get('rd'), /\/with-token\/items$/);

  const again = await refreshAtService(refreshToken.jti);
  assert.equal(again.status, 400, JSON.stringify(again));
  assert.equal(again.json.error, 'invalid_grant');
  assert.equal(await tokenOwner(accessToken), null, 'the access token went with the grant');
  await page.close();
});

test('connect with a hostile rd (https://evil.example/) lands on /', async () => {
  const page = await alice.newPage();
  const hops = [];
  page.on('request', (r) => { if (r.isNavigationRequest()) hops.push(r.url()); });
  // alice is still signed in at the service: no password this time.
  await page.goto(stack.url(`/_auth/connect/tracker?rd=${encodeURIComponent('https://evil.example/')}`));
  await page.waitForURL(stack.url('/'), { timeout: 15000 });
  assert.equal((await seenByApp(page)).url, '/');
  assert.ok(!hops.some((u) => u.includes('evil.example') && !u.includes('rd=')), hops.join('\n'));
  assert.equal((await connections(page)).json[0].connected, true, 'linked again');
  await page.close();
});

test('a callback URL works once, in the browser that started the connect: elsewhere or again it is a 400 page', async () => {
  bob = await stack.newContext();
  const bobPage = await bob.newPage();
  await signIn(stack, bobPage, '/projects', 'bob');

  // alice (unlinked first, so that only this connect counts) starts a
  // connect; her browser's trip back is held, its URL kept.
  const page = await frontPage(alice);
  assert.equal((await pageFetch(page, '/_auth/connect/tracker/disconnect', { method: 'POST' })).status, 204);
  const grants = codeGrants('alice').length;
  const url = await heldCallback(page, stack.url('/_auth/connect/tracker?rd=/with-token/after'));
  assert.match(url, /[?&]code=/);

  // In bob's browser (signed in, but not where the connect began): refused, nothing stored.
  const elsewhere = await bobPage.goto(url);
  assert.equal(elsewhere.status(), 400);
  assert.match(await bobPage.locator('body').innerText(), /not valid in this browser/);
  await bobPage.goto(stack.url('/'));
  assert.equal((await connections(bobPage)).json[0].connected, false, 'nothing linked for bob');
  assert.equal(codeGrants('alice').length, grants, 'the code was not exchanged');

  // In alice's: it finishes the connect.
  const there = await page.goto(url);
  assert.equal(there.status(), 200);
  assert.equal(page.url(), stack.url('/with-token/after'));
  assert.equal(codeGrants('alice').length, grants + 1);

  // Replayed: the 400 page, no second exchange.
  const replayed = await page.goto(url);
  assert.equal(replayed.status(), 400);
  await screenshot(stack, page, 'connect-replayed.png');
  assert.equal(codeGrants('alice').length, grants + 1);
  assert.equal(tracker.eventsNamed('grant.error', (e) => e.grantType === 'authorization_code').length, 0);
  await page.close();
});

test('a link belongs to the user: it survives logout and a new sign-in', async () => {
  const page = await bob.newPage();
  await page.goto(stack.url('/tracker/me'));
  await page.locator('#password').waitFor({ timeout: 10000 });
  assert.equal(new URL(page.url()).origin, tracker.issuer);
  await submitSignIn(page, 'bob');
  await page.waitForURL(stack.url('/tracker/me'), { timeout: 15000 });
  assert.equal(JSON.parse(await page.locator('body').innerText()).sub, 'bob');
  const grants = codeGrants('bob').length;

  await page.goto(stack.url('/_auth/logout'));
  await page.locator('button[name=logout]').waitFor({ timeout: 10000 });
  await Promise.all([page.waitForLoadState('load'), page.locator('button[name=logout]').click()]);
  await page.waitForURL(stack.url('/'), { timeout: 15000 });
  assert.equal((await pageFetch(page, '/_auth/connections')).status, 401, 'signed out');

  await signIn(stack, page, '/projects', 'bob');
  const hops = [];
  page.on('request', (r) => { if (r.isNavigationRequest()) hops.push(new URL(r.url())); });
  const back = await page.goto(stack.url('/tracker/me'));
  assert.equal(back.status(), 200);
  assert.equal(JSON.parse(await page.locator('body').innerText()).sub, 'bob');
  assert.ok(!hops.some((u) => u.origin === tracker.issuer), 'not sent to the service again');
  assert.equal(codeGrants('bob').length, grants);
  assert.equal((await connections(page)).json[0].connected, true);
  await page.close();
});

// A relink must not revoke the replaced link's tokens: oidc-provider (like
// Google) keeps one grant per client and account, and RFC 7009 §2.1 lets it
// end the whole grant, the new link's included.
test('connecting again while linked replaces the link, and the new link works at the service', async () => {
  const page = await frontPage(alice);
  assert.equal((await connections(page)).json[0].connected, true);
  const old = latestRefreshToken('alice');

  // alice is signed in at the service, which keeps one grant per client and
  // account: the new tokens belong to the grant of the old ones.
  await page.goto(stack.url('/_auth/connect/tracker?rd=/with-token/relinked'));
  await page.waitForURL(stack.url('/with-token/relinked'), { timeout: 15000 });
  const fresh = latestRefreshToken('alice');
  assert.notEqual(fresh.jti, old.jti);

  const token = appToken('/with-token/relinked');
  assert.equal(token, latestAccessToken('alice').jti, 'the app got the new link\'s token');
  assert.deepEqual(await tokenOwner(token), { accountId: 'alice', clientId: tracker.clientId },
    `the new access token is valid at the service (events: ${JSON.stringify(tracker.events.slice(-4))})`);
  const api = await pageFetch(page, '/tracker/me');
  assert.equal(api.status, 200, api.text);
  assert.equal(api.json.sub, 'alice');
  await page.close();
});

test('the service down: 502 connection_unavailable and the link kept; the service refusing the refresh: the link deleted', { timeout: 60000 }, async () => {
  // Fresh links whose tokens expire in 2 s, for both users (no password: both
  // are signed in at the service).
  shortTokens = true;
  try {
    const pages = {};
    for (const [who, ctx] of [['alice', alice], ['bob', bob]]) {
      const page = await frontPage(ctx);
      // Unlinked first: the new link's tokens are the only ones of its grant.
      assert.equal((await pageFetch(page, '/_auth/connect/tracker/disconnect', { method: 'POST' })).status, 204);
      await page.goto(stack.url('/_auth/connect/tracker?rd=/'));
      await page.waitForURL(stack.url('/'), { timeout: 15000 });
      pages[who] = page;
    }
    await sleep(3000);

    tracker.setDown(true);
    const down = await fetchWithToken(pages.alice, '/with-token/while-down');
    tracker.setDown(false);
    assert.equal(down.status, 502, down.text);
    assert.equal(down.json?.error, 'connection_unavailable');
    assert.ok(tracker.eventsNamed('down.refused', (e) => e.path === '/token').length >= 1, 'a refresh was tried');
    assert.equal((await connections(pages.alice)).json[0].connected, true, 'the link is kept');

    // bob's access is revoked at the service by its administrator.
    const { grantId } = latestRefreshToken('bob');
    await (await tracker.provider.Grant.find(grantId)).destroy();
    const refused = await fetchWithToken(pages.bob, '/with-token/after-revoke');
    assert.equal(refused.status, 403, refused.text);
    assert.equal(refused.json?.error, 'connection_required');
    assert.equal(refreshErrors().at(-1)?.error, 'invalid_grant');
    assert.equal((await connections(pages.bob)).json[0].connected, false, 'the link is deleted');

    // alice's link outlived the outage: it refreshes now.
    const back = await fetchWithToken(pages.alice, '/with-token/after-outage');
    assert.equal(back.status, 200, back.text);
    assert.deepEqual(await tokenOwner(appToken('/with-token/after-outage')), { accountId: 'alice', clientId: tracker.clientId });
    for (const page of Object.values(pages)) await page.close();
  } finally {
    shortTokens = false;
    tracker.setDown(false);
  }
});
