// The proxy terminating TLS with a generated certificate: the session cookie is
// `__Host-portcullis`, Secure, HttpOnly, SameSite=Lax, Path=/, no Domain.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startStack, signIn, seenByApp, pageFetch } from '../lib/stack.js';

let stack;
before(async () => { stack = await startStack({ name: 'tls', tls: true }); });
after(async () => { await stack?.stop(); });

test('over https the session cookie is __Host-portcullis with Secure, HttpOnly and SameSite=Lax', async () => {
  assert.match(stack.publicUrl, /^https:\/\//);
  const ctx = await stack.newContext();
  const page = await ctx.newPage();
  // Responses kept as they arrive, headers read after sign-in (an async listener can lag).
  const responses = [];
  page.on('response', (r) => responses.push(r));
  await signIn(stack, page, '/secure/area?x=1', 'alice');
  const setCookies = [];
  for (const r of responses.filter((r) => r.url().startsWith(stack.publicUrl))) {
    for (const h of await r.headersArray()) if (h.name.toLowerCase() === 'set-cookie') setCookies.push(h.value);
  }
  assert.equal(page.url(), stack.url('/secure/area?x=1'));
  const seen = await seenByApp(page);
  assert.equal(seen.headers['x-forwarded-user'], 'alice');
  assert.equal(seen.headers['x-forwarded-proto'], 'https');

  const header = setCookies.find((c) => c.startsWith('__Host-portcullis='));
  assert.ok(header, `Set-Cookie: ${setCookies.join(' | ')}`);
  for (const flag of [/;\s*Secure/i, /;\s*HttpOnly/i, /;\s*SameSite=Lax/i, /;\s*Path=\/(;|$)/i]) {
    assert.match(header, flag);
  }
  assert.doesNotMatch(header, /;\s*Domain=/i, '__Host- cookies carry no Domain');
  // The login-state cookie is secure too.
  const loginCookie = setCookies.find((c) => /_login_/.test(c) && !/Max-Age=0/i.test(c));
  assert.ok(loginCookie, `login-state cookie: ${setCookies.join(' | ')}`);
  assert.match(loginCookie, /;\s*Secure/i, loginCookie);
  assert.match(loginCookie, /;\s*HttpOnly/i, loginCookie);

  const jar = await ctx.cookies(stack.publicUrl);
  const session = jar.find((c) => c.name === '__Host-portcullis');
  assert.ok(session, JSON.stringify(jar.map((c) => c.name)));
  assert.equal(session.secure, true);
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Lax');
  assert.equal(session.path, '/');
  assert.ok(!jar.some((c) => c.name === 'portcullis'), 'no unprefixed cookie over https');

  const me = await pageFetch(page, '/_auth/userinfo');
  assert.equal(me.json?.sub, 'alice');

  // A WebSocket over TLS (wss) is proxied too.
  const hello = await page.evaluate(() => new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://${location.host}/ws`);
    ws.onmessage = (e) => { resolve(e.data); ws.close(); };
    ws.onerror = () => reject(new Error('wss failed'));
  }));
  assert.equal(JSON.parse(hello).hello, 'alice');

  // No login-state cookie is left behind, and logout really removes the
  // __Host- cookie (a clearing Set-Cookie without Secure would be ignored).
  assert.ok(!(await ctx.cookies(stack.publicUrl)).some((c) => /_login_/.test(c.name)));
  await page.goto(stack.url('/_auth/logout'));
  const left = (await ctx.cookies(stack.publicUrl)).map((c) => c.name);
  assert.ok(!left.includes('__Host-portcullis'), `cookies after logout: ${left}`);
  await ctx.close();
});
