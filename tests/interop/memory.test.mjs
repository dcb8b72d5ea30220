// --map-resident: how much of the LMDB map `veille serve` keeps in its page tables.
// The committer reads the store through LMDB's map, so every page it walks stays
// resident until dropped. With `off` they stay; with a budget they are dropped
// once file-backed resident memory (the map plus the program's own code) passes it.
// Read from /proc/PID/status (RssFile), as an operator's `ps` or `top` would show it.
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

function rssFileBytes(pid) {
  const m = /^RssFile:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, 'RssFile in /proc/PID/status');
  return Number(m[1]) * 1024;
}

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

// Starts veille with `resident`, stores `n` sign-ins of distinct users (so the
// committer walks pages all over the store), then one more after 100 ms (the
// committer checks the budget after a batch, at most every 20 ms). Returns the
// file-backed resident bytes before and after. "Before" is read after a first
// small load, so the program's own code that serving maps in is in both.
async function residentAfterLoad(resident, n) {
  const dataDir = mkdtempSync(join(tmpdir(), 'veille-mem-'));
  const secret = 'whsec_' + randomBytes(32).toString('base64');
  const wh = new Webhook(secret);
  const s = { log: '', base: null,
    proc: spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir, '--rules', '/dev/null',
      '--map-resident', resident], { env: { ...process.env, VEILLE_WEBHOOK_SECRET: secret },
      stdio: ['ignore', 'ignore', 'pipe'] }) };
  try {
    await untilListening(s);
    const agent = new Agent({ keepAlive: true, maxSockets: 32 });
    const at = Date.now() - 3600000;
    const load = async (from, to) => {
      const statuses = await Promise.all(Array.from({ length: to - from },
        (_, i) => post(s.base, agent, wh, from + i, `user_mem_${from + i}`, at + from + i)));
      assert.deepEqual(statuses.filter((c) => c !== 200), [], 'every delivery stored');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(await post(s.base, agent, wh, to, `user_mem_${to}`, at + to), 200);
      await new Promise((r) => setTimeout(r, 100));
      return rssFileBytes(s.proc.pid);
    };
    const before = await load(0, 200);
    const after = await load(201, 201 + n);
    agent.destroy();
    return { before, after };
  } finally {
    s.proc.kill('SIGTERM');
    await new Promise((r) => (s.proc.exitCode !== null ? r() : s.proc.once('exit', r)));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

test('--map-resident off keeps the store\'s pages resident; a budget drops them', { timeout: 120000 }, async () => {
  const N = 6000;
  const kept = await residentAfterLoad('off', N);
  const dropped = await residentAfterLoad('1M', N);
  // off: the pages the committer walked are still mapped (several MiB for 6,000 users)
  assert.ok(kept.after - kept.before > 4 * MiB,
    `off: file-backed RSS grew by only ${((kept.after - kept.before) / MiB).toFixed(1)} MiB`);
  // 1M: below the program's own code already, so every check drops the map's pages
  assert.ok(dropped.after - dropped.before < 2 * MiB,
    `1M: file-backed RSS grew by ${((dropped.after - dropped.before) / MiB).toFixed(1)} MiB`);
});

test('--map-resident refuses what is not a size of at least 1M, or off', { timeout: 30000 }, async () => {
  for (const [value, want] of [['0', /is not a size .*or off/], ['512K', /at least 1M, or off/], ['lots', /is not a size/]]) {
    const p = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--map-resident', value],
      { env: { ...process.env, VEILLE_WEBHOOK_SECRET: 'whsec_' + randomBytes(32).toString('base64') },
        stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    const code = await new Promise((r) => p.once('exit', r));
    assert.equal(code, 2, `--map-resident ${value} exits 2 (usage)`);
    assert.match(err, want);
  }
});
