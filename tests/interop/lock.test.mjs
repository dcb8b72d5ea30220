// One writer per store (issue 10, item 3): a second `veille serve` on a data
// directory already served drained the same outbox (every alert delivered twice).
// Serve holds DIR/veille.lock (flock) for its whole life: a second serve, and
// `replay --data`, exit 3 naming the PID that holds it; the read-only commands
// work beside it; a SIGKILL'd serve leaves a file that blocks nobody.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'svix';
import { envelope, postSigned, session, untilListening } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const SECRET = 'whsec_' + randomBytes(32).toString('base64');

let tmp, dataDir;
const env = () => ({ ...process.env, VEILLE_WEBHOOK_SECRET: SECRET });
const run = (args) => spawnSync(BIN, args, { encoding: 'utf8', timeout: 20000, env: env() });

function startServe(dir) {
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dir, '--rules', '/dev/null'],
    { env: env(), stdio: ['ignore', 'ignore', 'pipe'] });
  return untilListening({ proc, log: '', base: null });
}

async function post(base, id, body) {
  const res = await postSigned(Webhook, SECRET, base, id, body, 10000);
  await res.text();
  return res.status;
}

function exited(s, sig) {
  const done = new Promise((ok) => s.proc.once('exit', (code, signal) => ok({ code, signal })));
  s.proc.kill(sig);
  return done;
}

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'veille-lock-'));
  dataDir = join(tmp, 'data');
});

after(() => rmSync(tmp, { recursive: true, force: true }));

test('a second and a third serve on a served store exit 3 naming the PID that holds it', async () => {
  const first = await startServe(dataDir);
  try {
    for (const which of ['second', 'third']) {
      const r = run(['serve', '--listen', '127.0.0.1:0', '--data', dataDir, '--rules', '/dev/null']);
      assert.equal(r.signal, null, `${which} serve was still running (or killed): ${r.stderr}`);
      assert.equal(r.status, 3, `${which}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`in use by veille pid ${first.proc.pid}\\b`));
      assert.doesNotMatch(r.stderr, /msg=listening/);
    }
    assert.equal(readFileSync(join(dataDir, 'veille.lock'), 'utf8').trim(), String(first.proc.pid));
    // the first one is unharmed
    assert.equal(await post(first.base, 'msg_lock_1', envelope('session.created',
      session('sess_lock_1', 'user_lock', Date.now()))), 200);
  } finally {
    assert.deepEqual(await exited(first, 'SIGTERM'), { code: 0, signal: null });
  }
});

test('the read-only commands work beside a serve; replay --data is refused', async () => {
  const s = await startServe(dataDir);
  try {
    assert.equal(await post(s.base, 'msg_lock_2', envelope('session.created',
      session('sess_lock_2', 'user_lock', Date.now()))), 200);
    const h = run(['history', 'user_lock', '--json', '--data', dataDir]);
    assert.equal(h.status, 0, h.stderr);
    assert.match(h.stdout, /sess_lock_2/);
    for (const args of [['stats'], ['users'], ['alerts'], ['outbox']]) {
      const r = run([...args, '--data', dataDir]);
      assert.equal(r.status, 0, `${args[0]}: ${r.stderr}`);
    }
    const events = join(tmp, 'replay.ndjson');
    writeFileSync(events, envelope('session.created', session('sess_lock_r', 'user_lock', Date.now())) + '\n');
    const r = run(['replay', '--rules', '/dev/null', '--data', dataDir, events]);
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`in use by veille pid ${s.proc.pid}\\b`));
    const after = run(['history', 'user_lock', '--json', '--data', dataDir]);
    assert.doesNotMatch(after.stdout, /sess_lock_r/, 'replay wrote nothing');
    // without --data replay has a store of its own
    assert.equal(run(['replay', '--rules', '/dev/null', events]).status, 0);
  } finally {
    assert.deepEqual(await exited(s, 'SIGTERM'), { code: 0, signal: null });
  }
});

test('a serve killed with SIGKILL leaves a lock file that does not block the restart', async () => {
  const s = await startServe(dataDir);
  assert.deepEqual(await exited(s, 'SIGKILL'), { code: null, signal: 'SIGKILL' });
  assert.equal(readFileSync(join(dataDir, 'veille.lock'), 'utf8').trim(), String(s.proc.pid), 'stale file left');
  const again = await startServe(dataDir);
  assert.equal(readFileSync(join(dataDir, 'veille.lock'), 'utf8').trim(), String(again.proc.pid));
  // answered: its loop runs, so SIGTERM meets its handler (http_serve installs it after logging `listening`)
  assert.equal(await post(again.base, 'msg_lock_3', envelope('session.created',
    session('sess_lock_3', 'user_lock', Date.now()))), 200);
  assert.deepEqual(await exited(again, 'SIGTERM'), { code: 0, signal: null });
});
