// Two identity providers at once (SPEC §12): oidc-provider as `default`
// ("Example IdP", users sign in with a password) and portcullis's development
// provider as `partners` ("Partner SSO", users picked with a button), each with
// its own client and callback (`/_auth/callback`, `/_auth/callback/partners`).
// Routes: `/` public, `/staff` admits `default` only, `/partners` admits
// `partners` only, `/shared` admits both (a browser gets the sign-in chooser).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  startStack, submitSignIn, seenByApp, screenshot,
} from '../lib/stack.js';
import { pickDevUser } from '../lib/devidp.js';

const ROUTES = [
  { name: 'home', path_exact: '/', auth: 'public' },
  { name: 'staff', path: '/staff', auth: 'login', providers: ['default'] },
  { name: 'partners', path: '/partners', auth: 'login', providers: ['partners'] },
  { name: 'shared', path: '/shared', auth: 'login', providers: ['default', 'partners'] },
];

let stack;
let partnersIssuer;
// One browser (cookie jar) for the first two cases: a partners session meets a
// route that admits only `default`.
let roaming;

before(async () => {
  stack = await startStack({
    name: 'providers',
    routes: ROUTES,
    displayName: 'Example IdP',
    devProviders: { partners: { display_name: 'Partner SSO' } },
  });
  partnersIssuer = stack.devProviders.partners.issuer;
  roaming = await stack.newContext();
});
after(async () => {
  await roaming?.close().catch(() => {});
  await stack?.stop();
});

const origin = (page) => new URL(page.url()).origin;

/** The value of header `name` as the app's page shows it in the browser. */
const shownHeader = (page, name) => page.locator(`td[data-header="${name}"]`).textContent();

test('/partners goes straight to the development provider; alice signs in there and the app sees provider partners', async () => {
  const page = await roaming.newPage();
  await page.goto(stack.url('/partners/home?x=1'));
  assert.equal(origin(page), partnersIssuer, 'sent to the development provider');
  assert.notEqual(origin(page), stack.provider.issuer);
  await page.locator('button[name="user"][value="alice"]').waitFor();
  assert.equal(await page.locator('#password').count(), 0, "not oidc-provider's password page");
  assert.equal(stack.provider.eventsNamed('signin.page').length, 0, 'oidc-provider never asked');

  await pickDevUser(page, 'alice');
  await page.waitForURL((u) => u.origin === stack.publicUrl, { timeout: 15000 });
  assert.equal(page.url(), stack.url('/partners/home?x=1'));
  assert.equal(await shownHeader(page, 'x-forwarded-provider'), 'partners');
  assert.equal(await shownHeader(page, 'x-forwarded-user'), 'alice');
  const seen = await seenByApp(page);
  assert.equal(seen.headers['x-forwarded-provider'], 'partners');
  assert.equal(seen.headers['x-forwarded-groups'], 'admin,user', 'roles from the development provider');
  await page.close();
});

test('the same browser on /staff is sent to oidc-provider (a partners session is not admitted), signs in, and the app sees provider default', async () => {
  const page = await roaming.newPage();
  await page.goto(stack.url('/staff/rota'));
  assert.equal(origin(page), stack.provider.issuer, 'sent to oidc-provider');
  await page.locator('#password').waitFor();
  await submitSignIn(page, 'alice');
  await page.waitForURL((u) => u.origin === stack.publicUrl, { timeout: 15000 });
  assert.equal(page.url(), stack.url('/staff/rota'));
  assert.equal(await shownHeader(page, 'x-forwarded-provider'), 'default');
  const seen = await seenByApp(page);
  assert.equal(seen.headers['x-forwarded-provider'], 'default');
  assert.equal(seen.headers['x-forwarded-user'], 'alice');
  assert.equal(seen.headers['x-forwarded-groups'], 'admin,user,engineering', 'roles from oidc-provider');

  // The signed-in page names the provider of the session now held.
  await page.goto(stack.url('/_auth/'));
  const text = await page.locator('body').innerText();
  assert.match(text, /signed in/i);
  assert.match(text, /Example IdP/);
  assert.doesNotMatch(text, /Partner SSO/);
  await page.close();
});

test('/shared shows the chooser with both providers; "Partner SSO" signs in at the development provider and lands back on /shared', async () => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  const resp = await page.goto(stack.url('/shared/board?tab=2'));
  assert.equal(resp.status(), 200);
  assert.equal(origin(page), stack.publicUrl, 'the chooser is served by the proxy');
  const links = page.locator('a.provider');
  assert.equal(await links.count(), 2);
  const byName = {};
  for (const a of await links.all()) {
    byName[await a.getAttribute('data-provider')] = {
      text: (await a.textContent()).trim(),
      href: new URL(await a.getAttribute('href'), stack.publicUrl),
    };
  }
  assert.deepEqual(Object.keys(byName).sort(), ['default', 'partners']);
  assert.equal(byName.default.text, 'Example IdP');
  assert.equal(byName.partners.text, 'Partner SSO');
  for (const [name, { href }] of Object.entries(byName)) {
    assert.equal(href.pathname, '/_auth/login');
    assert.equal(href.searchParams.get('provider'), name);
    assert.equal(href.searchParams.get('rd'), '/shared/board?tab=2');
  }
  await screenshot(stack, page, 'chooser.png');

  await page.locator('a.provider[data-provider="partners"]').click();
  await page.waitForURL((u) => u.origin === partnersIssuer, { timeout: 15000 });
  await pickDevUser(page, 'alice');
  await page.waitForURL((u) => u.origin === stack.publicUrl, { timeout: 15000 });
  assert.equal(page.url(), stack.url('/shared/board?tab=2'));
  assert.equal(await shownHeader(page, 'x-forwarded-provider'), 'partners');
  await ctx.close();
});

test('the signed-in page /_auth/ shows the provider of the session', async () => {
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  await page.goto(stack.url('/partners'));
  await pickDevUser(page, 'bob');
  await page.waitForURL((u) => u.origin === stack.publicUrl, { timeout: 15000 });
  assert.equal((await seenByApp(page)).headers['x-forwarded-user'], 'bob');

  const resp = await page.goto(stack.url('/_auth/'));
  assert.equal(resp.status(), 200);
  const text = await page.locator('body').innerText();
  assert.match(text, /signed in/i);
  assert.match(text, /Partner SSO/);
  assert.doesNotMatch(text, /Example IdP/);
  await screenshot(stack, page, 'signed-in-partners.png');
  await ctx.close();
});

test('/ is public under both providers, and X-Forwarded-Provider sent by the browser never reaches the app', async () => {
  const ctx = await stack.newContext();
  await ctx.setExtraHTTPHeaders({ 'X-Forwarded-Provider': 'partners', 'X-Forwarded-User': 'mallory' });
  const page = await ctx.newPage();
  const resp = await page.goto(stack.url('/'));
  assert.equal(resp.status(), 200);
  assert.equal(origin(page), stack.publicUrl, 'no sign-in for the public page');
  const anon = await seenByApp(page);
  assert.ok(!('x-forwarded-provider' in anon.headers), `forged header stripped: ${JSON.stringify(anon.headers)}`);
  assert.ok(!('x-forwarded-user' in anon.headers));

  await page.goto(stack.url('/staff'));
  await page.locator('#password').waitFor();
  await submitSignIn(page, 'bob');
  await page.waitForURL((u) => u.origin === stack.publicUrl, { timeout: 15000 });
  const seen = await seenByApp(page);
  assert.equal(seen.headers['x-forwarded-provider'], 'default', 'the proxy\'s value, not the browser\'s');
  assert.equal(seen.headers['x-forwarded-user'], 'bob');
  await ctx.close();
});
