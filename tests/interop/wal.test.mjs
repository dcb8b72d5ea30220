// The write-ahead log across restarts, tampered with while veille is stopped:
// 1. garbage after the last record (a crash mid-append): cut with a warn line at
//    the next start, every earlier record applied, new deliveries go on;
// 2. the last record cut short, after it was applied: cut with a warn line,
//    the store keeps it, and new deliveries take positions after it (a log that
//    handed out applied positions again would lose them: they would be skipped).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'svix';
import { envelope, session, untilApplied, untilListening } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const SECRET = 'whsec_' + randomBytes(32).toString('base64');
const wh = new Webhook(SECRET);

async function start(dataDir) {
  const s = { log: '', base: null };
  s.proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir, '--rules', 'none'],
    { env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET }, stdio: ['ignore', 'ignore', 'pipe'] });
  return untilListening(s);
}

async function stop(s, signal) {
  const exited = new Promise((r) => s.proc.once('exit', r));
  s.proc.kill(signal);
  await exited;
}

async function deliver(s, user, i) {
  const id = `msg_wal_${user}_${i}`;
  const body = envelope('session.created', session(`sess_${user}_${i}`, user, Date.now() - 60000 + i));
  const when = new Date();
  const res = await fetch(s.base + '/webhooks/clerk', { method: 'POST', body, signal: AbortSignal.timeout(5000),
    headers: { 'content-type': 'application/json', 'svix-id': id, 'svix-timestamp': String(Math.floor(when / 1000)),
      'svix-signature': wh.sign(id, when, body) } });
  assert.equal(res.status, 200, await res.text());
}

function newestSegment(dataDir) {
  const segs = readdirSync(join(dataDir, 'wal')).filter((f) => f.endsWith('.wal')).sort();
  assert.ok(segs.length > 0, 'a log segment');
  return join(dataDir, 'wal', segs[segs.length - 1]);
}

function sessions(dataDir, user) {
  const r = spawnSync(BIN, ['history', user, '--json', '--limit', '1000', '--data', dataDir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l).session_id);
}

const expected = (user, n) => Array.from({ length: n }, (_, i) => `sess_${user}_${i}`);

test('garbage after the last record: cut at start with a log line, every earlier record applied', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'veille-wal-'));
  try {
    const s = await start(dataDir);
    for (let i = 0; i < 30; i++) await deliver(s, 'user_torn', i);
    await stop(s, 'SIGKILL'); // some may still wait to be applied
    appendFileSync(newestSegment(dataDir), randomBytes(37));
    const again = await start(dataDir);
    assert.match(again.log, /level=warn msg="write-ahead log: torn tail cut[^\n]*bytes=37 /);
    for (let i = 30; i < 35; i++) await deliver(again, 'user_torn', i);
    await untilApplied(again.base);
    await stop(again, 'SIGTERM');
    assert.deepEqual(sessions(dataDir, 'user_torn').sort(), expected('user_torn', 35).sort());
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('the last record cut short after it was applied: cut, kept in the store, new positions after it', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'veille-wal-'));
  try {
    const s = await start(dataDir);
    for (let i = 0; i < 30; i++) await deliver(s, 'user_cut', i);
    await stop(s, 'SIGTERM'); // everything applied
    const seg = newestSegment(dataDir);
    truncateSync(seg, statSync(seg).size - 7);
    const again = await start(dataDir);
    assert.match(again.log, /msg="write-ahead log: torn tail cut/);
    assert.match(again.log, /msg="write-ahead log ends before the store's applied position[^\n]*applied=30/);
    for (let i = 30; i < 35; i++) await deliver(again, 'user_cut', i);
    await untilApplied(again.base);
    await stop(again, 'SIGTERM');
    // and once more: the padded log reopens cleanly
    const third = await start(dataDir);
    await stop(third, 'SIGTERM');
    assert.doesNotMatch(third.log, /torn tail|level=error/);
    assert.deepEqual(sessions(dataDir, 'user_cut').sort(), expected('user_cut', 35).sort());
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
