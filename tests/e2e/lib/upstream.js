// The protected application: an unmodified web app that knows nothing of OIDC.
// It shows the headers it receives (as a page, or JSON for scripts and /api),
// and echoes WebSocket messages on /ws. It records every request, so a test can
// check what the app saw (and that it saw nothing it should not have).

import http from 'node:http';

import { WebSocketServer } from 'ws';

const IDENTITY = [
  'x-forwarded-user',
  'x-forwarded-email',
  'x-forwarded-preferred-username',
  'x-forwarded-groups',
];

// 0 for a header the proxy adds (sorted first), 1 for the rest.
const isIdentity = (k) => (IDENTITY.includes(k) || k === 'x-portcullis-identity' ? 0 : 1);

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function htmlPage(seen) {
  const h = seen.headers;
  const who = h['x-forwarded-preferred-username'] || h['x-forwarded-user'] || 'stranger';
  const rows = Object.entries(h)
    // The identity the proxy added first, then everything else by name.
    .sort(([a], [b]) => (isIdentity(a) - isIdentity(b)) || a.localeCompare(b))
    .map(([k, v]) => {
      const shown = k === 'x-portcullis-identity' ? `${String(v).slice(0, 48)}…` : v;
      const mark = isIdentity(k) === 0 ? ' class="id"' : '';
      return `<tr${mark}><th>${escape(k)}</th><td data-header="${escape(k)}">${escape(shown)}</td></tr>`;
    })
    .join('\n');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Demo app</title>
<style>
  body { font-family: system-ui, "DejaVu Sans", sans-serif; margin: 0; background: #f7f8fa; color: #1c2333; }
  header { background: #1f2a44; color: #fff; padding: 14px 28px; display: flex; justify-content: space-between; align-items: center; }
  header a { color: #c9d6ff; }
  main { padding: 20px 28px; }
  h1 { font-size: 22px; margin: 0 0 6px; }
  p.path { color: #5a6478; margin: 0 0 16px; font-family: monospace; }
  table { border-collapse: collapse; background: #fff; box-shadow: 0 1px 4px rgba(0,0,0,.1); font-size: 13px; }
  th, td { text-align: left; padding: 6px 12px; border-bottom: 1px solid #e6e9ef; vertical-align: top; }
  th { font-family: monospace; color: #39414f; white-space: nowrap; }
  td { font-family: monospace; word-break: break-all; max-width: 640px; }
  tr.id th, tr.id td { background: #eef7ee; color: #14532d; font-weight: 600; }
</style></head>
<body>
<header><strong>Demo app</strong><span>signed in as <b id="who">${escape(who)}</b> · <a href="/_auth/logout">Sign out</a></span></header>
<main>
<h1>Hello, ${escape(who)}</h1>
<p class="path" id="target">${escape(seen.method)} ${escape(seen.url)}</p>
<table id="headers">
${rows}
</table>
<script type="application/json" id="seen">${JSON.stringify(seen).replace(/</g, '\\u003c')}</script>
</main>
</body></html>`;
}

/** Starts the app on a free loopback port. */
export async function startUpstream() {
  const seen = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const entry = { method: req.method, url: req.url, headers: { ...req.headers } };
    seen.push(entry);
    const wantsJson = req.url.startsWith('/api') || (req.headers.accept ?? '').includes('application/json');
    res.setHeader('cache-control', 'no-store');
    if (wantsJson) {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(entry));
    } else {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(htmlPage(entry));
    }
    req.resume();
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    const entry = { method: req.method, url: req.url, headers: { ...req.headers }, upgrade: true };
    seen.push(entry);
    if (!req.url.startsWith('/ws')) {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      ws.on('close', () => sockets.delete(ws));
      ws.send(JSON.stringify({ hello: req.headers['x-forwarded-user'] ?? null }));
      ws.on('message', (data) => ws.send(`echo:${data}`));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    openSockets: () => sockets.size,
    async stop() {
      for (const ws of sockets) ws.terminate();
      wss.close();
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
