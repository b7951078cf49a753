// Ending sessions, from the user's side: RP-initiated logout through the proxy,
// back-channel logout when the user signs out at the provider, and a page's
// WebSocket that is closed when its session ends.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  startStack, signIn, pageFetch, eventually, sleep,
} from '../lib/stack.js';

let stack;
let endSessionEndpoint;
before(async () => {
  stack = await startStack({ name: 'logout' });
  const meta = await (await fetch(`${stack.provider.issuer}/.well-known/openid-configuration`)).json();
  endSessionEndpoint = meta.end_session_endpoint;
  assert.ok(meta.backchannel_logout_supported);
});
after(async () => { await stack?.stop(); });

/** On the provider's "Sign out?" page: confirm. */
async function confirmSignOut(page) {
  await page.locator('button[name=logout]').waitFor();
  await Promise.all([page.waitForLoadState('load'), page.locator('button[name=logout]').click()]);
}

/** Opens a WebSocket from the page's JavaScript; resolves with its first message. */
async function openSocket(page) {
  return page.evaluate(() => new Promise((resolve, reject) => {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/chat`;
    const ws = new WebSocket(url);
    window.socket = ws;
    window.socketClosed = null;
    ws.onclose = (e) => { window.socketClosed = { at: Date.now(), code: e.code }; };
    ws.onmessage = (e) => { window.firstMessage = e.data; resolve(e.data); };
    ws.onerror = () => reject(new Error('websocket failed'));
    setTimeout(() => reject(new Error('no message in 5 s')), 5000);
  }));
}

async function echo(page, text) {
  return page.evaluate((t) => new Promise((resolve, reject) => {
    window.socket.onmessage = (e) => resolve(e.data);
    window.socket.send(t);
    setTimeout(() => reject(new Error('no echo in 5 s')), 5000);
  }), text);
}

test('logout ends the portcullis session and the provider session: the password is asked again', async () => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  await signIn(stack, page, '/projects?view=all', 'alice');
  const [session] = (await ctx.cookies(stack.publicUrl)).filter((c) => c.name === 'portcullis');
  assert.ok(session);
  // While the provider session lives, a new login would not ask for a password.
  const logoutHops = [];
  page.on('request', (r) => { if (r.isNavigationRequest()) logoutHops.push(r.url()); });

  await page.goto(stack.url('/_auth/logout'));
  // RP-initiated logout at the provider, with id_token_hint and where to come back.
  const atProvider = new URL(page.url());
  assert.equal(`${atProvider.origin}${atProvider.pathname}`, endSessionEndpoint);
  const endSession = new URL(logoutHops.find((u) => u.startsWith(endSessionEndpoint)));
  const hint = endSession.searchParams.get('id_token_hint') ?? '';
  assert.match(hint, /^eyJ/);
  // Auth0's shape: the namespaced roles are in the ID token itself.
  const idToken = JSON.parse(Buffer.from(hint.split('.')[1], 'base64url').toString());
  assert.deepEqual(idToken['https://app.example.com/roles'], ['admin', 'user']);
  assert.equal(endSession.searchParams.get('post_logout_redirect_uri'), stack.url('/'));
  assert.ok(!(await ctx.cookies(stack.publicUrl)).some((c) => c.name === 'portcullis'), 'cookie cleared');

  await confirmSignOut(page);
  // Back at the app's front page, which is protected: the provider asks again.
  await page.locator('#password').waitFor({ timeout: 10000 });
  assert.equal(new URL(page.url()).origin, stack.provider.issuer);
  assert.ok(stack.provider.eventsNamed('end_session.success').length >= 1);
  await eventually(() => stack.provider.eventsNamed('refresh_token.destroyed').length >= 1,
    { what: 'the refresh token revoked at the provider' });

  // The old session id is dead on the server, not only forgotten by the browser.
  const thief = await stack.newContext();
  await thief.addCookies([{ name: session.name, value: session.value, url: stack.publicUrl }]);
  const thiefPage = await thief.newPage();
  await thiefPage.goto(stack.url('/health'));
  const r = await pageFetch(thiefPage, '/api/me');
  assert.equal(r.status, 401, r.text);
  await thief.close();
  await ctx.close();
});

test('signing out at the provider ends the portcullis session (back-channel logout) and closes its WebSocket', async (t) => {
  const ctx = await stack.newContext();
  const app = await ctx.newPage();
  await signIn(stack, app, '/inbox', 'bob');
  assert.equal((await pageFetch(app, '/api/me')).status, 200);
  assert.equal(JSON.parse(await openSocket(app)).hello, 'bob');
  const before = stack.provider.eventsNamed('backchannel.success').length;

  // The user signs out at the provider itself, in another tab.
  const idp = await ctx.newPage();
  await idp.goto(endSessionEndpoint);
  await confirmSignOut(idp);
  await eventually(() => stack.provider.eventsNamed('backchannel.success').length > before,
    { what: 'back-channel logout delivered', timeoutMs: 5000 });
  const delivered = stack.provider.eventsNamed('backchannel.success').at(-1);
  assert.equal(delivered.accountId, 'bob');
  assert.ok(delivered.sid, 'the logout token names the provider session');
  assert.deepEqual(stack.provider.eventsNamed('backchannel.error'), []);
  const signedOutAt = Date.now();

  // The tab that is still open on the app: its session is gone.
  const r = await pageFetch(app, '/api/me');
  assert.equal(r.status, 401, r.text);
  assert.equal(r.json?.error, 'unauthenticated');
  const closed = await eventually(() => app.evaluate(() => window.socketClosed), { what: 'socket closed', timeoutMs: 6000 });
  t.diagnostic(`WebSocket closed ${closed.at - signedOutAt} ms after the back-channel logout (code ${closed.code})`);
  assert.ok(closed.at - signedOutAt < 5000, `closed ${closed.at - signedOutAt} ms after the logout`);
  await app.goto(stack.url('/inbox'));
  await app.locator('#password').waitFor({ timeout: 10000 });
  await ctx.close();
});

test('back-channel logout ends only the sessions of that provider session', async () => {
  // alice on two computers: two provider sessions, two portcullis sessions.
  const laptop = await stack.newContext();
  const phone = await stack.newContext();
  const onLaptop = await laptop.newPage();
  const onPhone = await phone.newPage();
  await signIn(stack, onLaptop, '/notes', 'alice');
  await signIn(stack, onPhone, '/notes', 'alice');
  const before = stack.provider.eventsNamed('backchannel.success').length;

  const idp = await laptop.newPage();
  await idp.goto(endSessionEndpoint);
  await confirmSignOut(idp);
  await eventually(() => stack.provider.eventsNamed('backchannel.success').length > before,
    { what: 'back-channel logout delivered', timeoutMs: 5000 });

  assert.equal((await pageFetch(onLaptop, '/api/me')).status, 401, 'the laptop session ended');
  const phoneNow = await pageFetch(onPhone, '/api/me');
  assert.equal(phoneNow.status, 200, 'the phone, another provider session, stays signed in');
  assert.equal(phoneNow.json.headers['x-forwarded-user'], 'alice');
  await laptop.close();
  await phone.close();
});

test('a WebSocket opened by the page works while logged in and is closed after logout', async (t) => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  await signIn(stack, page, '/chat', 'alice');
  const hello = JSON.parse(await openSocket(page));
  assert.equal(hello.hello, 'alice', 'the app saw the identity on the upgrade');
  assert.equal(await echo(page, 'ping'), 'echo:ping');
  const upgrade = stack.app.seen.filter((s) => s.upgrade).at(-1);
  assert.equal(upgrade.headers['x-forwarded-user'], 'alice');
  assert.ok(!(upgrade.headers.cookie ?? '').includes('portcullis'));
  // Still fine a while later.
  await sleep(2500);
  assert.equal(await echo(page, 'still here'), 'echo:still here');
  assert.equal(await page.evaluate(() => window.socketClosed), null);

  // The user logs out in another tab.
  const other = await ctx.newPage();
  await other.goto(stack.url('/_auth/logout'));
  const loggedOutAt = Date.now();
  const closed = await eventually(() => page.evaluate(() => window.socketClosed), { what: 'socket closed', timeoutMs: 6000 });
  const after = closed.at - loggedOutAt;
  t.diagnostic(`WebSocket closed ${after} ms after /_auth/logout (code ${closed.code})`);
  assert.ok(after < 4000, `closed ${after} ms after logout`);
  await confirmSignOut(other);

  // A new socket without a session is refused.
  await assert.rejects(openSocket(page), /websocket failed|no message/);
  const refused = stack.app.seen.filter((s) => s.upgrade);
  assert.equal(refused.at(-1), upgrade, 'the refused upgrade never reached the app');
  await ctx.close();
});
