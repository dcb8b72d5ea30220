// Interop: several Clerk applications on one serve. Each VEILLE_WEBHOOK_SECRET_<NAME>
// is served at /webhooks/clerk/<name> and verifies with its own secret only; the
// unnamed VEILLE_WEBHOOK_SECRET keeps /webhooks/clerk; the event's instance_id is
// kept in history and alerts, and a rule can filter on `instance`. Deliveries are
// signed by the official `svix` library.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'svix';
import { session, untilApplied, untilListening } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const newSecret = () => 'whsec_' + randomBytes(32).toString('base64');
const UNNAMED = newSecret(), DEV = newSecret(), PROD = newSecret();
const ENV = { VEILLE_WEBHOOK_SECRET: UNNAMED, VEILLE_WEBHOOK_SECRET_DEV: DEV, VEILLE_WEBHOOK_SECRET_PROD: PROD };

// a sign-in from production raises; the same from development does not
const RULES = `rule prod_sign_in {
  severity low
  on       session.created
  when     instance == "ins_prod"
  tags     "prod"
}
`;

let tmp, dataDir, srv;
let seq = 0;

function startServe(env, data) {
  const s = { proc: spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', data, '--rules', join(tmp, 'inst.rules')],
    { env: { ...process.env, VEILLE_WEBHOOK_SECRET: '', CLERK_WEBHOOK_SIGNING_SECRET: '', ...env } }), log: '', base: null };
  return untilListening(s);
}

async function stopServe(s) {
  if (s?.proc && s.proc.exitCode === null) {
    s.proc.kill('SIGTERM');
    await new Promise((ok) => s.proc.once('exit', ok));
  }
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'veille-instances-'));
  dataDir = join(tmp, 'data');
  writeFileSync(join(tmp, 'inst.rules'), RULES);
  srv = await startServe(ENV, dataDir);
});

after(async () => {
  await stopServe(srv);
  rmSync(tmp, { recursive: true, force: true });
});

function signIn(user, instance) {
  const at = Date.now() - 1000;
  return JSON.stringify({ data: session(`sess_${user}`, user, at), object: 'event', type: 'session.created',
    timestamp: at, instance_id: instance });
}

async function deliver(base, path, secret, body) {
  const id = `msg_inst_${process.pid}_${++seq}`;
  const when = new Date();
  const headers = { 'content-type': 'application/json', 'svix-id': id,
    'svix-timestamp': String(Math.floor(when.getTime() / 1000)),
    'svix-signature': new Webhook(secret).sign(id, when, body) };
  const res = await fetch(base + path, { method: 'POST', headers, body, signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (res.status === 200) await untilApplied(base); // the apply follows the answer
  return { status: res.status, text };
}

const cliJson = (...args) => {
  const r = spawnSync(BIN, [...args, '--json', '--data', dataDir], { cwd: ROOT, encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
};

test('each named route verifies with its own secret only', async () => {
  const u = `user_inst_${process.pid}`;
  assert.equal((await deliver(srv.base, '/webhooks/clerk/dev', DEV, signIn(u + '_dev', 'ins_dev'))).status, 200);
  assert.equal((await deliver(srv.base, '/webhooks/clerk/prod', PROD, signIn(u + '_prod', 'ins_prod'))).status, 200);
  // dev's secret on prod's route (and the reverse, and the unnamed one) never verifies
  for (const [path, secret] of [['/webhooks/clerk/prod', DEV], ['/webhooks/clerk/dev', PROD],
    ['/webhooks/clerk/prod', UNNAMED], ['/webhooks/clerk', DEV]]) {
    const r = await deliver(srv.base, path, secret, signIn(u + '_x', 'ins_x'));
    assert.equal(r.status, 401, `${path}: ${r.text}`);
    assert.match(r.text, /no signature matched/);
  }
  const none = spawnSync(BIN, ['history', u + '_x', '--data', dataDir], { encoding: 'utf8', timeout: 10000 });
  assert.equal(none.status, 1, 'nothing refused was stored: ' + none.stdout);
});

test('the unnamed secret on /webhooks/clerk keeps working', async () => {
  const u = `user_unnamed_${process.pid}`;
  const r = await deliver(srv.base, '/webhooks/clerk', UNNAMED, signIn(u, 'ins_main'));
  assert.equal(r.status, 200, r.text);
  assert.equal(cliJson('history', u)[0].instance_id, 'ins_main');
});

test('an instance that is not configured is 404, naming what to set', async () => {
  const r = await deliver(srv.base, '/webhooks/clerk/staging', DEV, signIn('user_staging', 'ins_s'));
  assert.equal(r.status, 404);
  assert.match(r.text, /VEILLE_WEBHOOK_SECRET_<NAME>/);
});

test('the instance is shown in history and alerts, and a rule filters on it', async () => {
  const u = `user_inst_${process.pid}`;
  assert.equal(cliJson('history', u + '_dev')[0].instance_id, 'ins_dev');
  assert.equal(cliJson('history', u + '_prod')[0].instance_id, 'ins_prod');
  const alerts = cliJson('alerts', '--rule', 'prod_sign_in');
  assert.deepEqual(alerts.map((a) => [a.user_id, a.instance_id]), [[u + '_prod', 'ins_prod']]);
  const user = cliJson('user', u + '_dev');
  assert.equal(user[0].instance_id, 'ins_dev');
});

test('simulate signs with the named secret of the route it is given', async () => {
  const r = spawnSync(BIN, ['simulate', '--url', srv.base + '/webhooks/clerk/dev', '--data', dataDir, 'sample'],
    { cwd: ROOT, encoding: 'utf8', timeout: 20000, env: { ...process.env, ...ENV } });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /signed with VEILLE_WEBHOOK_SECRET_DEV/);
  assert.match(r.stdout, /^3 sent, 3 answered 2xx, 0 failed$/m);
});

test('named instances only: serve starts, and /webhooks/clerk is 404', async () => {
  const s = await startServe({ VEILLE_WEBHOOK_SECRET_DEV: DEV }, join(tmp, 'only-named'));
  try {
    assert.match(s.log, /msg=instance name=dev endpoint=\/webhooks\/clerk\/dev secrets=1/);
    const r = await deliver(s.base, '/webhooks/clerk', DEV, signIn('user_only', 'ins_dev'));
    assert.equal(r.status, 404);
    assert.match(r.text, /no unnamed secret/);
    assert.equal((await deliver(s.base, '/webhooks/clerk/dev', DEV, signIn('user_only', 'ins_dev'))).status, 200);
  } finally {
    await stopServe(s);
  }
});

test('a bad instance name or secret is refused at start-up, naming the variable', () => {
  for (const [env, message] of [
    [{ 'VEILLE_WEBHOOK_SECRET_BAD-NAME': DEV }, /VEILLE_WEBHOOK_SECRET_BAD-NAME: an instance name is 1 to 31 letters/],
    [{ VEILLE_WEBHOOK_SECRET_DEV: 'whsec_short' }, /VEILLE_WEBHOOK_SECRET_DEV: secret #1/],
    [{ VEILLE_WEBHOOK_SECRET_DEV: DEV, VEILLE_WEBHOOK_SECRET_dev: PROD }, /set twice/],
  ]) {
    const r = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', join(tmp, 'refused'), '--rules', 'none'],
      { encoding: 'utf8', timeout: 10000, env: { ...process.env, VEILLE_WEBHOOK_SECRET: '', ...env } });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, new RegExp(DEV.slice(6, 20).replace(/[+/]/g, '.')), 'the value is never shown');
  }
});
