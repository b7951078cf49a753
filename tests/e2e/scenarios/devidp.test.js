// The same core flows against the second provider shape: portcullis's built-in
// development provider, as `portcullis demo` runs it (provider, demo app and
// proxy), driven by the same real browser.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

import { chromium } from 'playwright-core';

import { CHROMIUM, pageFetch } from '../lib/stack.js';
import { proxyBinary, freePort } from '../lib/proxy.js';

const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let demo;
let browser;
let base;

before(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PORTCULLIS_')));
  demo = spawn(proxyBinary(), ['demo', '--port', String(port)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`demo did not start: ${out}`)), 30000);
    demo.stdout.on('data', (d) => {
      out += d;
      if (out.includes('portcullis demo is running')) { clearTimeout(timer); resolve(); }
    });
    demo.on('exit', (code) => reject(new Error(`demo exited ${code}: ${out}`)));
  });
  // Readiness: discovery happens in the background; wait for the login redirect.
  for (let i = 0; i < 100; i++) {
    const r = await fetch(`${base}/me`, { redirect: 'manual', headers: { accept: 'text/html' } });
    if (r.status === 302) break;
    await new Promise((r2) => setTimeout(r2, 100));
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
});

after(async () => {
  await browser?.close();
  demo?.kill('SIGTERM');
});

async function signIn(page, target, user) {
  await page.goto(`${base}${target}`);
  await page.locator(`button[value="${user}"]`).click();
  await page.waitForURL((u) => u.origin === base);
}

test('demo: alice signs in at the development provider and reaches /admin', async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, '/admin?tab=users', 'alice');
  assert.equal(page.url(), `${base}/admin?tab=users`);
  assert.match(await page.content(), /Signed in as <strong>alice<\/strong>/);
  assert.match(await page.content(), /x-forwarded-groups/);
  await ctx.close();
});

test('demo: bob is refused /admin with a readable 403 page', async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, '/me', 'bob');
  const resp = await page.goto(`${base}/admin`);
  assert.equal(resp.status(), 403);
  assert.match(await page.locator('h1').textContent(), /403|forbidden|do not have access/i);
  await ctx.close();
});

test('demo: fetch() without a session gets 401 JSON; logout asks to sign in again', async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(`${base}/`);
  const r = await pageFetch(page, '/me');
  assert.equal(r.status, 401);
  assert.equal(JSON.parse(r.text).error, 'unauthenticated');

  await signIn(page, '/me', 'alice');
  await page.goto(`${base}/_auth/logout`);
  await page.waitForURL((u) => u.origin === base);
  await page.goto(`${base}/me`);
  assert.ok(await page.locator('button[value="alice"]').count() > 0, 'the provider asks again');
  await ctx.close();
});
