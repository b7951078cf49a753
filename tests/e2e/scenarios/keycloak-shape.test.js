// A second provider shape: roles in Keycloak's nested `realm_access.roles`,
// delivered by userinfo only (the ID token carries no profile claims), read
// with the dotted path `roles_claim = "realm_access.roles"`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  startStack, signIn, seenByApp, pageFetch, sleep,
} from '../lib/stack.js';

let stack;
before(async () => {
  stack = await startStack({
    name: 'keycloak-shape', shape: 'keycloak', rolesClaim: 'realm_access.roles', accessTokenTtl: 40,
  });
});
after(async () => { await stack?.stop(); });

test('roles from realm_access.roles: an admin is admitted, a user is refused', async () => {
  const aliceCtx = await stack.newContext();
  const alice = await aliceCtx.newPage();
  await signIn(stack, alice, '/admin/users?page=1', 'alice');
  assert.equal(alice.url(), stack.url('/admin/users?page=1'));
  const seen = await seenByApp(alice);
  assert.equal(seen.headers['x-forwarded-user'], 'alice');
  assert.equal(seen.headers['x-forwarded-email'], 'alice@example.com');
  assert.equal(seen.headers['x-forwarded-groups'], 'offline_access,uma_authorization,admin,user');
  const me = await pageFetch(alice, '/_auth/userinfo');
  assert.deepEqual(me.json.roles, ['offline_access', 'uma_authorization', 'admin', 'user']);

  const bobCtx = await stack.newContext();
  const bob = await bobCtx.newPage();
  let last;
  bob.on('response', (r) => { if (r.url() === stack.url('/admin/users')) last = r.status(); });
  await signIn(stack, bob, '/admin/users', 'bob');
  assert.equal(last, 403);
  assert.match(await bob.locator('body').innerText(), /403|forbidden|not allowed|denied|do not have access/i);
  const ok = await bob.goto(stack.url('/home'));
  assert.equal(ok.status(), 200);
  assert.equal((await seenByApp(bob)).headers['x-forwarded-groups'], 'offline_access,uma_authorization,user');
  // Only `realm_access.roles` is read here: groups are not roles in this config.
  const eng = await alice.goto(stack.url('/engineering'));
  assert.equal(eng.status(), 403, 'alice is in the engineering group, but groups are not roles here');
  await aliceCtx.close();
  await bobCtx.close();
});

test('roles that only userinfo carries survive a refresh', { timeout: 60000 }, async () => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  await signIn(stack, page, '/admin', 'alice');
  const before = stack.provider.eventsNamed('grant.success', (e) => e.grantType === 'refresh_token').length;
  await sleep(12000); // 40 s tokens are refreshed 30 s before they expire
  const r = await page.goto(stack.url('/admin/after-refresh'));
  assert.equal(r.status(), 200);
  assert.ok(stack.provider.eventsNamed('grant.success', (e) => e.grantType === 'refresh_token').length > before, 'refreshed');
  assert.equal((await seenByApp(page)).headers['x-forwarded-groups'], 'offline_access,uma_authorization,admin,user');

  // The ID token (seen as logout's id_token_hint) indeed carries no roles here.
  const hops = [];
  page.on('request', (req) => hops.push(req.url()));
  await page.goto(stack.url('/_auth/logout'));
  const hint = new URL(hops.find((u) => u.includes('id_token_hint='))).searchParams.get('id_token_hint');
  const idToken = JSON.parse(Buffer.from(hint.split('.')[1], 'base64url').toString());
  assert.equal(idToken.sub, 'alice');
  assert.ok(!('realm_access' in idToken), JSON.stringify(idToken));
  await ctx.close();
});

// Last in this file: it stops the provider.
test('while the provider is down, signed-in users keep working past their token refresh', { timeout: 60000 }, async () => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  await signIn(stack, page, '/work', 'bob');
  await stack.provider.stop();
  await sleep(12000); // the refresh is due, and cannot reach the provider
  const r = await page.goto(stack.url('/work?later=1'));
  assert.equal(r.status(), 200);
  assert.equal((await seenByApp(page)).headers['x-forwarded-user'], 'bob');
  assert.equal((await pageFetch(page, '/api/work')).status, 200);
  // The proxy did try, and kept the session.
  const tried = stack.proxy.logLines().filter((l) => /refresh failed/.test(l.message ?? ''));
  assert.ok(tried.length >= 1, 'the proxy attempted a refresh');
  await ctx.close();
});
