// The access token expires and the user keeps working: portcullis refreshes it
// with the refresh token, which oidc-provider rotates on every use (re-using a
// rotated token would revoke the whole grant and end the session).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startStack, signIn, seenByApp, pageFetch, sleep } from '../lib/stack.js';

// The proxy refreshes 30 s before expiry: with 40 s tokens a refresh is due
// 10 s after each one is issued.
const ACCESS_TOKEN_TTL = 40;

let stack;
before(async () => { stack = await startStack({ name: 'refresh', accessTokenTtl: ACCESS_TOKEN_TTL }); });
after(async () => { await stack?.stop(); });

const refreshes = () => stack.provider.eventsNamed('grant.success', (e) => e.grantType === 'refresh_token');
const grantErrors = () => stack.provider.eventsNamed('grant.error');

test('the access token expires and the user keeps working (refresh, with rotation, one at a time)', { timeout: 120000 }, async () => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  await signIn(stack, page, '/dashboard', 'alice');
  const loggedInAt = Date.now();
  assert.equal(refreshes().length, 0);

  // Past the refresh point, the token still valid: the next page refreshes it.
  await sleep(12000);
  const second = await page.goto(stack.url('/dashboard?step=2'));
  assert.equal(second.status(), 200);
  assert.equal(page.url(), stack.url('/dashboard?step=2'), 'no trip to the provider');
  assert.equal((await seenByApp(page)).headers['x-forwarded-user'], 'alice');
  assert.equal(refreshes().length, 1, JSON.stringify(stack.provider.events.slice(-8)));
  assert.equal(stack.provider.eventsNamed('refresh_token.consumed').length, 1, 'the provider rotated the refresh token');

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
  assert.equal(refreshes().length, 2, 'six concurrent requests caused one refresh');
  assert.equal(stack.provider.eventsNamed('refresh_token.consumed').length, 2);
  // Had the proxy used the rotated-out token, the provider would have refused it
  // (and revoked the grant).
  assert.deepEqual(grantErrors(), []);
  assert.equal(stack.provider.eventsNamed('grant.revoked').length, 0);

  // And the page still works as a page.
  const again = await page.goto(stack.url('/admin/reports'));
  assert.equal(again.status(), 200);
  const me = await pageFetch(page, '/_auth/userinfo');
  assert.equal(me.json.sub, 'alice');
  await ctx.close();
});
