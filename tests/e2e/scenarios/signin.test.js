// Signing in through a real browser against oidc-provider, roles in a namespaced
// claim (Auth0's shape) and in `groups`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { jwtVerify, createLocalJWKSet } from 'jose';

import {
  startStack, signIn, submitSignIn, seenByApp, pageFetch, screenshot,
} from '../lib/stack.js';

let stack;
before(async () => { stack = await startStack({ name: 'signin' }); });
after(async () => { await stack?.stop(); });

test('sign in lands on the originally requested URL with its query; the app sees the identity', async () => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  const target = '/reports/q3?year=2026&sort=desc&tag=a%20b';
  const first = await page.goto(stack.url(target));
  // The browser was sent to the provider, which asks for a password.
  assert.equal(new URL(page.url()).origin, stack.provider.issuer);
  assert.equal(first.status(), 200);
  await page.locator('#password').waitFor();
  assert.match(await page.locator('h1').textContent(), /Sign in/);
  await screenshot(stack, page, 'signin.png');

  const auth = new URL(page.url());
  assert.match(auth.pathname, /^\/interaction\//);

  await submitSignIn(page, 'alice');
  await page.waitForURL((u) => u.origin === stack.publicUrl);
  assert.equal(page.url(), stack.url(target), 'landed on the original URL, query intact');

  const seen = await seenByApp(page);
  assert.equal(seen.url, target);
  assert.equal(seen.headers['x-forwarded-user'], 'alice');
  assert.equal(seen.headers['x-forwarded-email'], 'alice@example.com');
  assert.equal(seen.headers['x-forwarded-preferred-username'], 'alice');
  assert.equal(seen.headers['x-forwarded-groups'], 'admin,user,engineering');
  assert.ok(!(seen.headers.cookie ?? '').includes('portcullis'), `the app never gets the session cookie: ${seen.headers.cookie}`);
  assert.ok(!('authorization' in seen.headers), 'no access token passed by default');
  assert.equal(await page.locator('#who').textContent(), 'alice');
  await screenshot(stack, page, 'app.png');

  // The provider's view: a code grant by portcullis with PKCE.
  assert.ok(stack.provider.eventsNamed('grant.success', (e) => e.grantType === 'authorization_code').length >= 1);
  await ctx.close();
});

test('the app can verify X-Portcullis-Identity against /_auth/jwks.json', async (t) => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  await signIn(stack, page, '/whoami', 'alice');
  const token = (await seenByApp(page)).headers['x-portcullis-identity'];
  const jwks = await fetch(stack.url('/_auth/jwks.json'));
  if (!token && jwks.status === 404) {
    // SPEC §7; not built yet on this branch (issue 4). Fails as soon as half of it exists.
    t.skip('X-Portcullis-Identity and /_auth/jwks.json are not implemented yet');
    await ctx.close();
    return;
  }
  assert.equal(jwks.status, 200);
  assert.match(token ?? '', /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
  const { payload } = await jwtVerify(token, createLocalJWKSet(await jwks.json()));
  assert.match(String(payload.aud), /^127\.0\.0\.1(:\d+)?$/, 'aud is the request host');
  assert.equal(payload.sub, 'alice');
  assert.equal(payload.email, 'alice@example.com');
  assert.deepEqual(payload.roles, ['admin', 'user', 'engineering']);
  assert.ok(payload.exp - Math.floor(Date.now() / 1000) <= 60);
  await ctx.close();
});

test('a wrong password keeps the user at the provider, with a readable error', async () => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  await page.goto(stack.url('/private'));
  await page.locator('#password').waitFor();
  await submitSignIn(page, 'alice', 'not-her-password');
  assert.equal(new URL(page.url()).origin, stack.provider.issuer);
  assert.match(await page.locator('[role=alert]').textContent(), /Wrong username or password/);
  const cookies = await ctx.cookies(stack.publicUrl);
  assert.ok(!cookies.some((c) => c.name === 'portcullis'), 'no session without a password');
  await ctx.close();
});

test('cancelling at the provider shows a readable page whose "Try again" signs in', async () => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  await page.goto(stack.url('/orders?id=42'));
  await page.locator('#password').waitFor();
  const [landing] = await Promise.all([
    page.waitForResponse((r) => r.url().startsWith(stack.url('/_auth/callback'))),
    page.locator('button[name=cancel]').click(),
  ]);
  await page.waitForLoadState('load');
  assert.equal(landing.status(), 403);
  const text = await page.locator('body').innerText();
  assert.match(text, /cancelled|refused/i, text);
  assert.ok(!/panic|eyJ|secret/.test(text), text);
  assert.ok(!(await ctx.cookies(stack.publicUrl)).some((c) => c.name === 'portcullis'));
  await Promise.all([page.waitForLoadState('load'), page.getByRole('link', { name: 'Try again' }).click()]);
  await page.locator('#password').waitFor();
  await submitSignIn(page, 'bob');
  await page.waitForURL(stack.url('/orders?id=42'));
  await ctx.close();
});

test('an admin page admits an admin and shows a plain user a readable 403 page', async () => {
  const aliceCtx = await stack.newContext();
  const alice = await aliceCtx.newPage();
  await signIn(stack, alice, '/admin/settings', 'alice');
  assert.equal(alice.url(), stack.url('/admin/settings'));
  assert.equal((await seenByApp(alice)).headers['x-forwarded-user'], 'alice');

  const bobCtx = await stack.newContext();
  const bob = await bobCtx.newPage();
  const statuses = [];
  bob.on('response', (r) => { if (r.url() === stack.url('/admin/settings')) statuses.push(r.status()); });
  await signIn(stack, bob, '/admin/settings', 'bob');
  assert.equal(bob.url(), stack.url('/admin/settings'));
  assert.equal(statuses.at(-1), 403);
  const text = await bob.locator('body').innerText();
  assert.match(text, /403|forbidden|not allowed|denied|do not have access/i, text);
  assert.ok(!/panic|stack|secret|eyJ/.test(text), `no internals on the 403 page: ${text}`);
  const contentType = await bob.evaluate(() => document.contentType);
  assert.equal(contentType, 'text/html');
  await screenshot(stack, bob, 'forbidden.png');
  assert.ok(!stack.app.seen.some((s) => s.url === '/admin/settings' && s.headers['x-forwarded-user'] === 'bob'),
    'the app never saw the refused request');

  // The same refusal for the page's own script is JSON, not an HTML page.
  const json = await pageFetch(bob, '/admin/settings');
  assert.equal(json.status, 403);
  assert.equal(json.json?.error, 'forbidden', json.text);

  // Roles from `groups` count too: bob is in sales, not engineering; alice is.
  const eng = await bob.goto(stack.url('/engineering'));
  assert.equal(eng.status(), 403);
  const engAlice = await alice.goto(stack.url('/engineering'));
  assert.equal(engAlice.status(), 200);
  await aliceCtx.close();
  await bobCtx.close();
});

test('fetch() from page JavaScript without a session gets 401 JSON, never a redirect', async () => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  // A public page of the app, so the script runs on the proxy's origin without a session.
  await page.goto(stack.url('/health'));
  const before = stack.provider.eventsNamed('interaction.started').length;
  for (const init of [{}, { headers: { accept: 'application/json' } }, { method: 'POST', body: 'x=1' }]) {
    const r = await pageFetch(page, '/api/orders?page=2', init);
    assert.equal(r.status, 401, JSON.stringify(r));
    assert.equal(r.redirected, false);
    assert.equal(r.url, stack.url('/api/orders?page=2'));
    assert.match(r.contentType ?? '', /application\/json/);
    assert.equal(r.json?.error, 'unauthenticated');
    assert.equal(r.json?.login_url, `${stack.publicUrl}/_auth/login?rd=%2Fapi%2Forders%3Fpage%3D2`);
    assert.ok(r.wwwAuthenticate, 'WWW-Authenticate is set');
  }
  assert.equal(stack.provider.eventsNamed('interaction.started').length, before, 'no login was started at the provider');

  // login_url is a real way in: following it signs the user in and lands on the API.
  const r = await pageFetch(page, '/api/orders?page=2');
  await page.goto(r.json.login_url);
  await page.locator('#password').waitFor();
  await submitSignIn(page, 'bob');
  await page.waitForURL(stack.url('/api/orders?page=2'));
  const after = await pageFetch(page, '/api/orders?page=2');
  assert.equal(after.status, 200);
  assert.equal(after.json.headers['x-forwarded-user'], 'bob');
  await ctx.close();
});

test('the session cookie is HttpOnly and SameSite=Lax, opaque, and invisible to scripts', async () => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  // Responses are kept as they arrive and their headers read after sign-in: an async
  // listener could still be awaiting the callback's headers when signIn returns.
  const responses = [];
  page.on('response', (r) => responses.push(r));
  await signIn(stack, page, '/', 'alice');
  const setCookies = [];
  for (const r of responses.filter((r) => r.url().startsWith(stack.publicUrl))) {
    for (const h of await r.headersArray()) {
      if (h.name.toLowerCase() === 'set-cookie') setCookies.push(h.value);
    }
  }
  const header = setCookies.find((c) => c.startsWith('portcullis='));
  assert.ok(header, `Set-Cookie for the session: ${setCookies.join(' | ')}`);
  assert.match(header, /;\s*HttpOnly/i);
  assert.match(header, /;\s*SameSite=Lax/i);
  assert.match(header, /;\s*Path=\//i);
  assert.doesNotMatch(header, /;\s*Secure/i, 'plain http: not Secure');

  const jar = await ctx.cookies(stack.publicUrl);
  const session = jar.find((c) => c.name === 'portcullis');
  assert.ok(session, JSON.stringify(jar));
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Lax');
  assert.match(session.value, /^[A-Za-z0-9_-]{43,}$/, 'an opaque id of at least 256 bits');
  assert.ok(!session.value.startsWith('eyJ'), 'no token in the cookie');
  assert.ok(!(await page.evaluate(() => document.cookie)).includes('portcullis'), 'scripts cannot read it');

  // The SPA endpoint tells the page who it is, never a token.
  const me = await pageFetch(page, '/_auth/userinfo');
  assert.equal(me.status, 200);
  assert.equal(me.json.sub, 'alice');
  assert.deepEqual(me.json.roles, ['admin', 'user', 'engineering']);
  assert.ok(!/eyJ/.test(me.text), 'no token in userinfo');
  await ctx.close();
});

test('two tabs that both start a login each land where they were going', async () => {
  const ctx = await stack.newContext();
  const one = await ctx.newPage();
  const two = await ctx.newPage();
  // Both tabs restored after the session ended: both are sent to the provider.
  await one.goto(stack.url('/mail?folder=inbox'));
  await two.goto(stack.url('/calendar?week=47'));
  await one.locator('#password').waitFor();
  await two.locator('#password').waitFor();
  await submitSignIn(one, 'alice');
  await one.waitForURL(stack.url('/mail?folder=inbox'));
  // The second tab's login finishes after the first created the session.
  await submitSignIn(two, 'alice');
  await two.waitForURL(stack.url('/calendar?week=47'));
  assert.equal((await seenByApp(two)).headers['x-forwarded-user'], 'alice');
  // The first tab still works (its session may have been replaced by the second login).
  const r = await pageFetch(one, '/api/me');
  assert.equal(r.status, 200);
  await ctx.close();
});

test('a post-login target on another site falls back to the app, not the other site', async () => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  for (const rd of ['https://evil.example/steal', '//evil.example/steal', '/\\evil.example/steal']) {
    await page.goto(stack.url(`/_auth/login?rd=${encodeURIComponent(rd)}`));
    if (await page.locator('#password').count()) await submitSignIn(page, 'bob');
    await page.waitForURL((u) => u.origin === stack.publicUrl, { timeout: 10000 });
    assert.equal(new URL(page.url()).pathname, '/', `rd=${rd} landed on ${page.url()}`);
  }
  await ctx.close();
});

test('identity headers sent by the browser itself never reach the app', async () => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  await page.goto(stack.url('/health'));
  const forged = {
    'X-Forwarded-User': 'mallory',
    'X-Forwarded-Groups': 'admin',
    'X-Forwarded_Email': 'mallory@example.com',
    'X-Auth-Request-User': 'mallory',
  };
  await pageFetch(page, '/health/deep', { headers: forged });
  const seen = stack.app.seen.filter((s) => s.url === '/health/deep').at(-1);
  assert.ok(seen, 'the public route reached the app');
  for (const name of Object.keys(seen.headers)) {
    assert.ok(!/^x[-_]forwarded[-_](user|groups|email)$|^x-auth-request/i.test(name), `${name} reached the app`);
  }

  await signIn(stack, page, '/profile', 'bob');
  await pageFetch(page, '/api/profile', { headers: forged });
  const api = stack.app.seen.filter((s) => s.url === '/api/profile').at(-1);
  assert.equal(api.headers['x-forwarded-user'], 'bob');
  assert.equal(api.headers['x-forwarded-groups'], 'user,sales');
  assert.ok(!('x-forwarded_email' in api.headers));
  assert.ok(!('x-auth-request-user' in api.headers));
  await ctx.close();
});

// Last in this file: it stops the app.
test('when the app is down the user gets a short readable page, a script gets JSON', async () => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  await signIn(stack, page, '/', 'alice');
  await stack.app.stop();
  const r = await page.goto(stack.url('/reports'));
  assert.ok([502, 503, 504].includes(r.status()), `status ${r.status()}`);
  const text = await page.locator('body').innerText();
  assert.match(text, /not reachable|unavailable|bad gateway/i, text);
  assert.ok(!/panic|127\.0\.0\.1|ECONNREFUSED|Connection refused|eyJ/i.test(text), `no internals: ${text}`);
  const api = await pageFetch(page, '/api/reports');
  assert.ok([502, 503, 504].includes(api.status));
  assert.ok(api.json?.error, api.text);
  await ctx.close();
});
