// A damaged store is refused with exit 3 and what to do, never a signal (issue 10,
// item 4). LMDB maps data.mdb and trusts it: a truncated file made stats, history
// and serve die with SIGBUS, garbage over the last pages killed serve on the first
// POST, and an emptied file silently started a new store. Each case here is
// made from a real store written by `veille replay --data`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, openSync, closeSync, rmSync, statSync, truncateSync, writeFileSync,
  writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'svix';
import { envelope, postSigned, session, untilListening } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const SECRET = 'whsec_' + randomBytes(32).toString('base64');
const PAGE = 4096;
const ADVICE = /backup/;

let tmp, pristine;
const run = (args) => spawnSync(BIN, args, { encoding: 'utf8', timeout: 20000,
  env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET } });

// garbage that is the same on every run: a failure reproduces
function garbage(bytes, seed = 0x9e3779b9) {
  const b = Buffer.alloc(bytes);
  let x = seed >>> 0;
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

let copies = 0;
function copyStore() {
  const dir = join(tmp, `copy${++copies}`);
  cpSync(pristine, dir, { recursive: true });
  return dir;
}

// Refused as it should be: exit 3, a message, no signal.
function assertRefused(r, what, pattern) {
  assert.equal(r.signal, null, `${what} was killed by ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 3, `${what}: exit ${r.status}: ${r.stderr}`);
  assert.match(r.stderr, pattern, what);
}

function startServe(dir, extra = []) {
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dir, '--rules', '/dev/null', ...extra],
    { env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET }, stdio: ['ignore', 'ignore', 'pipe'] });
  return untilListening({ proc, log: '', base: null });
}

async function post(base, id, body) {
  const res = await postSigned(Webhook, SECRET, base, id, body, 10000);
  await res.text();
  return res.status;
}

async function stop(s) {
  if (s.proc.exitCode !== null || s.proc.signalCode !== null)
    return { code: s.proc.exitCode, signal: s.proc.signalCode };
  const done = new Promise((ok) => s.proc.once('exit', (code, signal) => ok({ code, signal })));
  s.proc.kill('SIGTERM');
  return done;
}

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'veille-damaged-'));
  pristine = join(tmp, 'pristine');
  // enough events for trees of a few levels, few enough to replay fast under ASan
  const now = Date.now() - 3600e3;
  const lines = [];
  for (let i = 0; i < 3000; i++)
    lines.push(envelope('session.created', session(`sess_dmg_${i}`, `user_dmg_${i % 97}`, now + i * 10,
      `198.51.100.${i % 250}`), now + i * 10));
  const events = join(tmp, 'events.ndjson');
  writeFileSync(events, lines.join('\n') + '\n');
  const r = run(['replay', '--rules', '/dev/null', '--data', pristine, events]);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(statSync(join(pristine, 'data.mdb')).size > 200 * PAGE, 'a store of some size');
});

after(() => rmSync(tmp, { recursive: true, force: true }));

test('a data.mdb truncated to half: stats, history and serve exit 3 saying so', () => {
  const dir = copyStore();
  const file = join(dir, 'data.mdb');
  truncateSync(file, Math.floor(statSync(file).size / 2 / PAGE) * PAGE);
  for (const args of [['stats'], ['history', 'user_dmg_1'], ['alerts']]) {
    const r = run([...args, '--data', dir]);
    assertRefused(r, args[0], /truncated/);
    assert.match(r.stderr, ADVICE);
  }
  const r = run(['serve', '--listen', '127.0.0.1:0', '--data', dir, '--rules', '/dev/null']);
  assertRefused(r, 'serve', /truncated/);
  assert.doesNotMatch(r.stderr, /msg=listening/, 'refused before listening');
});

test('garbage over the last 30 pages: serve refuses at start, or answers and survives', async () => {
  const dir = copyStore();
  const file = join(dir, 'data.mdb');
  const size = statSync(file).size;
  const fd = openSync(file, 'r+');
  writeSync(fd, garbage(30 * PAGE), 0, 30 * PAGE, size - 30 * PAGE);
  closeSync(fd);
  const r = run(['stats', '--data', dir]);
  assert.equal(r.signal, null, `stats was killed by ${r.signal}`);
  let s;
  try {
    s = await startServe(dir);
  } catch (e) {
    // refused at start: exit 3 and the message
    assert.match(e.message, /exited with 3/);
    assert.match(e.message, /damaged/);
    assert.match(e.message, ADVICE);
    return;
  }
  const status = await post(s.base, 'msg_dmg_tail', envelope('session.created',
    session('sess_dmg_tail', 'user_dmg_1', Date.now())));
  assert.ok(status >= 200 && status < 600, `answered (${status})`);
  const end = await stop(s);
  assert.equal(end.signal, null, `serve was killed by ${end.signal}:\n${s.log}`);
});

test('30 pages of garbage appended past the last page in use are harmless: LMDB never reads them', async () => {
  // what a commit that crashed before its meta write leaves behind; refusing it would
  // refuse every store after such a crash
  const dir = copyStore();
  appendFileSync(join(dir, 'data.mdb'), garbage(30 * PAGE, 7));
  assert.equal(run(['stats', '--data', dir]).status, 0);
  const s = await startServe(dir);
  const status = await post(s.base, 'msg_dmg_append', envelope('session.created',
    session('sess_dmg_append', 'user_dmg_2', Date.now())));
  assert.equal(status, 200);
  const end = await stop(s);
  assert.deepEqual(end, { code: 0, signal: null }, s.log);
  const h = run(['history', 'user_dmg_2', '--json', '--data', dir]);
  assert.equal(h.status, 0, h.stderr);
  assert.match(h.stdout, /sess_dmg_append/);
});

test('an empty data.mdb where veille.lock shows an earlier store: refused unless --init', async () => {
  const dir = copyStore();
  truncateSync(join(dir, 'data.mdb'), 0);
  const r = run(['serve', '--listen', '127.0.0.1:0', '--data', dir, '--rules', '/dev/null']);
  assertRefused(r, 'serve', /empty \(0 bytes\)/);
  assert.match(r.stderr, /veille\.lock shows it was served/);
  assert.match(r.stderr, /--init/);
  assertRefused(run(['stats', '--data', dir]), 'stats', /empty/);
  assertRefused(run(['history', 'user_dmg_1', '--data', dir]), 'history', /empty/);
  assert.equal(statSync(join(dir, 'data.mdb')).size, 0, 'left as found');

  const s = await startServe(dir, ['--init']);
  assert.equal(await post(s.base, 'msg_dmg_init', envelope('session.created',
    session('sess_dmg_init', 'user_dmg_3', Date.now()))), 200);
  const end = await stop(s);
  assert.deepEqual(end, { code: 0, signal: null }, s.log);
  const st = run(['stats', '--data', dir]);
  assert.equal(st.status, 0, st.stderr);
  assert.match(st.stdout, /users\s+1 /);
});
