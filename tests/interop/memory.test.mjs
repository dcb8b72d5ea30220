// Private memory of `veille serve`: RssAnon + RssShmem from /proc/PID/status.
// The LMDB map's pages are file-backed: the kernel's page cache, shared with every
// reader of data.mdb and reclaimable, so they count in RSS (RssFile) without being
// memory veille holds. Private memory is what a leak, a cache or a per-event
// allocation would grow.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { Webhook } from 'svix';
import { envelope, session, untilListening } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const MiB = 1024 * 1024;

function statusKiB(pid, field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, `${field} in /proc/PID/status`);
  return Number(m[1]) * 1024;
}

const privateBytes = (pid) => statusKiB(pid, 'RssAnon') + statusKiB(pid, 'RssShmem');

// Under ASan the shadow memory and the quarantine are private memory of the
// sanitizer's, not veille's: the bound means nothing there.
const underAsan = (pid) => readFileSync(`/proc/${pid}/maps`, 'utf8').includes('libasan');

function post(base, agent, wh, n, user, at) {
  const body = envelope('session.created', session(`sess_mem_${n}`, user, at, `10.${(n >> 8) & 255}.${n & 255}.1`), at);
  const id = `msg_mem_${n}`;
  const ts = new Date();
  const headers = { 'content-type': 'application/json', 'svix-id': id,
    'svix-timestamp': String(Math.floor(ts.getTime() / 1000)), 'svix-signature': wh.sign(id, ts, body) };
  const url = new URL('/webhooks/clerk', base);
  return new Promise((ok, fail) => {
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, headers },
      (res) => { res.resume(); res.on('end', () => ok(res.statusCode)); });
    req.on('error', fail);
    req.end(body);
  });
}

test('private memory stays bounded while the store grows', { timeout: 120000 }, async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'veille-mem-'));
  const secret = 'whsec_' + randomBytes(32).toString('base64');
  const wh = new Webhook(secret);
  const s = { log: '', base: null,
    proc: spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir],
      { env: { ...process.env, VEILLE_WEBHOOK_SECRET: secret }, stdio: ['ignore', 'ignore', 'pipe'] }) };
  try {
    await untilListening(s);
    if (underAsan(s.proc.pid)) { t.skip('ASan build: private memory is the sanitizer\'s'); return; }
    const agent = new Agent({ keepAlive: true, maxSockets: 32 });
    const at = Date.now() - 3600000;
    // distinct users, one per sign-in: every event lands on new pages of the store
    const load = async (from, to) => {
      for (let i = from; i < to; i += 500) {
        const statuses = await Promise.all(Array.from({ length: Math.min(500, to - i) },
          (_, k) => post(s.base, agent, wh, i + k, `user_mem_${i + k}`, at + i + k)));
        assert.deepEqual(statuses.filter((c) => c !== 200), [], 'every delivery accepted');
      }
      await new Promise((r) => setTimeout(r, 300));
      return { priv: privateBytes(s.proc.pid), file: statusKiB(s.proc.pid, 'RssFile') };
    };
    const before = await load(0, 500); // the first buffers and connections
    const after = await load(500, 5000);
    agent.destroy();
    assert.ok(after.priv < 64 * MiB, `private memory ${(after.priv / MiB).toFixed(1)} MiB after 5,000 events`);
    assert.ok(after.priv - before.priv < 8 * MiB,
      `private memory grew by ${((after.priv - before.priv) / MiB).toFixed(1)} MiB over 4,500 events`);
    t.diagnostic(`private ${(after.priv / MiB).toFixed(1)} MiB, file-backed ${(after.file / MiB).toFixed(1)} MiB`);
  } finally {
    s.proc.kill('SIGTERM');
    await new Promise((r) => (s.proc.exitCode !== null ? r() : s.proc.once('exit', r)));
    rmSync(dataDir, { recursive: true, force: true });
  }
});
