// Debian's redis-server (/usr/bin/redis-server), on a free loopback port, no
// persistence: the shared session store of several proxy replicas.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { freePort } from './proxy.js';

export const REDIS_SERVER = process.env.E2E_REDIS_SERVER || '/usr/bin/redis-server';

function ping(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.setTimeout(1000);
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => { s.destroy(); resolve(d.toString().startsWith('+PONG')); });
    s.on('error', () => resolve(false));
    s.on('timeout', () => { s.destroy(); resolve(false); });
  });
}

/** Starts redis-server; resolves once it answers PING. */
export async function startRedis({ dir }) {
  if (!fs.existsSync(REDIS_SERVER)) {
    throw new Error(`no redis-server at ${REDIS_SERVER}: apt-get install -y redis-server`);
  }
  const port = await freePort();
  const logFile = path.join(dir, 'redis.log');
  const log = fs.openSync(logFile, 'w');
  const child = spawn(REDIS_SERVER, [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir,
  ], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const deadline = Date.now() + 10000;
  while (!(await ping(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server not ready; log:\n${fs.readFileSync(logFile, 'utf8').slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    child,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}
