// The access token expires and the user keeps working: portcullis refreshes it
// with the refresh token, which oidc-provider rotates on every use (re-using a
// rotated token would revoke the whole grant and end the session).

import { test, suite, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  startStack, signIn, seenByApp, pageFetch, sleep,
} from '../lib/stack.js';

// The proxy refreshes 30 s before expiry: with 40 s tokens a refresh is due
// 10 s after each one is issued.
const ACCESS_TOKEN_TTL = 40;

let stack;
before(async () => { stack = await startStack({ name: 'refresh', accessTokenTtl: ACCESS_TOKEN_TTL }); });
after(async () => { await stack?.stop(); });

const refreshes = (who) => stack.provider.eventsNamed('grant.success', (e) => e.grantType === 'refresh_token' && e.accountId === who);
const consumed = (who) => stack.provider.eventsNamed('refresh_token.consumed', (e) => e.accountId === who);
const grantErrors = (who) => stack.provider.eventsNamed('grant.error', (e) => e.accountId === who);

// These scenarios mostly wait for tokens and sessions to age: they run side by side.
suite('refresh', { concurrency: true }, () => {

test('the access token expires and the user keeps working (refresh, with rotation, one at a time)', { timeout: 120000 }, async () => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  await signIn(stack, page, '/dashboard', 'alice');
  const loggedInAt = Date.now();
  assert.equal(refreshes('alice').length, 0);

  // Past the refresh point, the token still valid: the next page refreshes it.
  await sleep(12000);
  const second = await page.goto(stack.url('/dashboard?step=2'));
  assert.equal(second.status(), 200);
  assert.equal(page.url(), stack.url('/dashboard?step=2'), 'no trip to the provider');
  assert.equal((await seenByApp(page)).headers['x-forwarded-user'], 'alice');
  assert.equal(refreshes('alice').length, 1, JSON.stringify(stack.provider.events.slice(-8)));
  assert.equal(consumed('alice').length, 1, 'the provider rotated the refresh token');

  // Idle for longer than a whole token lifetime: every token the session holds
  // has expired. The user comes back and six requests arrive at once.
  await sleep((ACCESS_TOKEN_TTL + 2) * 1000);
  assert.ok(Date.now() - loggedInAt > (ACCESS_TOKEN_TTL + 10) * 1000);
  const results = await page.evaluate(async () => Promise.all(
    [1, 2, 3, 4, 5, 6].map(async (i) => {
      const r = await fetch(`/api/items/${i}`);
      return { status: r.status, body: await r.json().catch(() => null) };
    }),
  ));
  for (const r of results) {
    assert.equal(r.status, 200, JSON.stringify(r));
    assert.equal(r.body.headers['x-forwarded-user'], 'alice');
    assert.equal(r.body.headers['x-forwarded-groups'], 'admin,user,engineering', 'roles survive a refresh');
  }
  assert.equal(refreshes('alice').length, 2, 'six concurrent requests caused one refresh');
  assert.equal(consumed('alice').length, 2);
  // Had the proxy used the rotated-out token, the provider would have refused it
  // (and revoked the grant).
  assert.deepEqual(grantErrors('alice'), []);

  // And the page still works as a page.
  const again = await page.goto(stack.url('/admin/reports'));
  assert.equal(again.status(), 200);
  const me = await pageFetch(page, '/_auth/userinfo');
  assert.equal(me.json.sub, 'alice');
  await ctx.close();
});

test('when the provider refuses the refresh (grant revoked) the session ends and the user signs in again', { timeout: 60000 }, async () => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  await signIn(stack, page, '/tickets', 'bob');
  const cookie = async () => (await ctx.cookies(stack.publicUrl)).find((c) => c.name === 'portcullis')?.value;
  const first = await cookie();
  assert.ok(first);
  // An administrator revokes bob's access at the provider.
  const { grantId } = stack.provider.eventsNamed('refresh_token.saved', (e) => e.accountId === 'bob').at(-1);
  await (await stack.provider.provider.Grant.find(grantId)).destroy();

  await sleep(12000);
  // The refresh is due; the provider refuses it: the page's script is told to log in.
  const r = await pageFetch(page, '/api/tickets');
  assert.equal(r.status, 401, r.text);
  assert.equal(r.json?.error, 'unauthenticated');
  // (Refused before the provider names the token's account: hence no accountId.)
  const refused = stack.provider.eventsNamed('grant.error', (e) => e.grantType === 'refresh_token' && e.accountId !== 'alice');
  assert.equal(refused.at(-1)?.error, 'invalid_grant', JSON.stringify(refused));
  // A navigation goes through the provider again (whose own session still
  // stands, so no password) and comes back with a new session.
  const logins = stack.provider.eventsNamed('grant.success', (e) => e.grantType === 'authorization_code' && e.accountId === 'bob').length;
  await page.goto(stack.url('/tickets?again=1'));
  await page.waitForURL(stack.url('/tickets?again=1'));
  assert.equal((await seenByApp(page)).headers['x-forwarded-user'], 'bob');
  assert.equal(stack.provider.eventsNamed('grant.success', (e) => e.grantType === 'authorization_code' && e.accountId === 'bob').length, logins + 1);
  const second = await cookie();
  assert.ok(second && second !== first, 'a new session id');
  await ctx.close();
});

// The idle timeout, with a session stack of its own (idle_timeout = 20s).
suite('idle timeout', { concurrency: true }, () => {
  let idle;
  before(async () => { idle = await startStack({ name: 'idle', idleTimeout: '20s' }); });
  after(async () => { await idle?.stop(); });

  test('a user idle for longer than idle_timeout must sign in again', { timeout: 60000 }, async () => {
    const ctx = await idle.newContext();
    const page = await ctx.newPage();
    await signIn(idle, page, '/x', 'alice');
    assert.equal((await pageFetch(page, '/api/ping')).status, 200);
    await sleep(22000);
    const r = await pageFetch(page, '/api/ping');
    assert.equal(r.status, 401, r.text);
    await ctx.close();
  });

  // Regression: activity used to be saved at most every 30 s, so with a short
  // idle_timeout an active user was logged out (fixed: every min(30 s, idle/4)).
  test('a user active every 4 s is not logged out by idle_timeout', { timeout: 60000 }, async () => {
    const ctx = await idle.newContext();
    const page = await ctx.newPage();
    await signIn(idle, page, '/x', 'bob');
    const started = Date.now();
    while (Date.now() - started < 28000) {
      await sleep(4000);
      const r = await pageFetch(page, '/api/ping');
      assert.equal(r.status, 200, `logged out ${Math.round((Date.now() - started) / 1000)} s after login while active`);
    }
    await ctx.close();
  });
});
});
