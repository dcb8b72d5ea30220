// Interop: deliveries signed by the official `svix` library, posted to a real
// `veille serve`, then read back with the CLI, as a user would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'svix';
import { envelope as clerkEnvelope, session, untilApplied } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const secret = (n) => 'whsec_' + randomBytes(32).toString('base64');
const OLD = secret(), NEW = secret(), STRANGER = secret();
const MAX_BODY = 65536;
let server, base, dataDir, serverLog = '';

const cli = (...args) => spawnSync(BIN, [...args, '--data', dataDir], { encoding: 'utf8' });
const cliJson = (...args) => {
  const r = cli(...args, '--json');
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
};

let seq = 0;
const newId = () => `msg_interop_${process.pid}_${++seq}`;
const nowMs = Date.now();
const envelope = (type, data, ts = nowMs) => clerkEnvelope(type, data, ts);


function user(id, updatedAt, extra = {}) {
  return { id, object: 'user', created_at: nowMs - 86400000, updated_at: updatedAt,
    email_addresses: [{ id: 'idn_other', email_address: 'other@example.org', object: 'email_address' },
                      { id: 'idn_primary', email_address: 'ada@example.org', object: 'email_address' }],
    primary_email_address_id: 'idn_primary', first_name: 'Ada', last_name: 'Lovelace', username: null,
    external_id: 'ext-1', last_sign_in_at: null, banned: false, locked: false, public_metadata: {},
    private_metadata: {}, unsafe_metadata: {}, ...extra };
}

// Sign with the official library exactly as Svix does; `when` is a Date.
function signed(body, { id = newId(), key = OLD, when = new Date(), prefix = 'svix' } = {}) {
  const sig = new Webhook(key).sign(id, when, body);
  return { id, headers: { 'content-type': 'application/json', [`${prefix}-id`]: id,
    [`${prefix}-timestamp`]: String(Math.floor(when.getTime() / 1000)), [`${prefix}-signature`]: sig } };
}

async function post(body, headers) {
  const res = await fetch(base + '/webhooks/clerk', { method: 'POST', headers, body });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* asserted by callers */ }
  if (res.status === 200) await untilApplied(base); // the CLI reads the store next
  return { status: res.status, json, text };
}

async function deliver(body, opts) {
  const { headers } = signed(body, opts);
  return post(body, headers);
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'veille-interop-'));
  server = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir, '--max-body', String(MAX_BODY)], {
    env: { ...process.env, VEILLE_WEBHOOK_SECRET: `${OLD}, ${NEW}` }, stdio: ['ignore', 'ignore', 'pipe'] });
  const port = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('veille did not start:\n' + serverLog)), 10000);
    server.stderr.on('data', (d) => {
      serverLog += d;
      const m = /msg=listening addr=\S+ port=(\d+)/.exec(serverLog);
      if (m) { clearTimeout(timer); ok(Number(m[1])); }
    });
    server.on('exit', (code) => fail(new Error(`veille exited with ${code}:\n${serverLog}`)));
  });
  base = `http://127.0.0.1:${port}`;
});

after(() => {
  if (server && server.exitCode === null) server.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

test('healthz answers 200 when the store is writable', async () => {
  const r = await fetch(base + '/healthz');
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { status: 'ok', backlog: { records: 0, bytes: 0, oldest_seconds: 0 } });
});

test('a valid delivery is stored and readable with the CLI', async () => {
  const r = await deliver(envelope('session.created', session('sess_valid', 'user_ada', nowMs - 5000)));
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { status: 'accepted' });
  const events = cliJson('history', 'user_ada');
  const e = events.find((x) => x.session_id === 'sess_valid');
  assert.ok(e, 'history shows the session');
  assert.equal(e.type, 'session.created');
  assert.equal(e.ip, '198.51.100.7');
  assert.equal(e.country, 'FR');
  assert.equal(e.city, 'Paris');
  assert.equal(e.at, new Date(nowMs - 5000).toISOString());
});

test('the same delivery id again (a Svix retry) is answered 2xx and not stored twice', async () => {
  const body = envelope('session.created', session('sess_dup', 'user_dup', nowMs - 4000));
  const { headers } = signed(body);
  const first = await post(body, headers);
  const again = await post(body, headers);
  assert.equal(first.status, 200);
  assert.equal(again.status, 200);
  assert.deepEqual(again.json, { status: 'duplicate' });
  assert.equal(cliJson('history', 'user_dup').length, 1);
});

test('rotation: the second configured secret verifies, and any matching v1 entry is enough', async () => {
  const r1 = await deliver(envelope('session.created', session('sess_rot1', 'user_rot', nowMs - 3000)), { key: NEW });
  assert.equal(r1.status, 200, r1.text);
  const body = envelope('session.created', session('sess_rot2', 'user_rot', nowMs - 2000));
  const good = signed(body);
  const bad = signed(body, { id: good.id, key: STRANGER });
  const headers = { ...good.headers, 'svix-signature': `${bad.headers['svix-signature']} v2,abc ${good.headers['svix-signature']}` };
  const r2 = await post(body, headers);
  assert.equal(r2.status, 200, r2.text);
  assert.equal(cliJson('history', 'user_rot').length, 2);
});

test('Standard Webhooks headers (webhook-*) are accepted too', async () => {
  const r = await deliver(envelope('session.created', session('sess_std', 'user_std', nowMs)), { prefix: 'webhook' });
  assert.equal(r.status, 200, r.text);
});

test('a tampered body is refused with 401 and not stored', async () => {
  const body = envelope('session.created', session('sess_tamper', 'user_tamper', nowMs));
  const { headers } = signed(body);
  const r = await post(body.replace('198.51.100.7', '198.51.100.8'), headers);
  assert.equal(r.status, 401);
  assert.ok(r.json.error, r.text);
  assert.equal(cli('history', 'user_tamper').status, 1, 'unknown user after a forged delivery');
});

test('a signature by an unknown secret is refused with 401', async () => {
  const r = await deliver(envelope('session.created', session('sess_forged', 'user_forged', nowMs)), { key: STRANGER });
  assert.equal(r.status, 401);
});

test('a non-canonical base64 text of the right MAC is refused with 401, as svix refuses it', async () => {
  const body = envelope('session.created', session('sess_b64', 'user_b64', nowMs));
  const { headers } = signed(body);
  const sig = headers['svix-signature']; // "v1," + 43 characters + "="
  // The last character before '=' carries 2 bits past the MAC: flip one, same bytes.
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const odd = sig.slice(0, -2) + abc[abc.indexOf(sig.at(-2)) ^ 1] + '=';
  assert.ok(Buffer.from(odd.slice(3), 'base64').equals(Buffer.from(sig.slice(3), 'base64')), 'same bytes');
  const oddHeaders = { ...headers, 'svix-signature': odd };
  assert.throws(() => new Webhook(OLD).verify(body, oddHeaders), 'svix itself refuses the text');
  const r = await post(body, oddHeaders);
  assert.equal(r.status, 401, r.text);
  assert.equal(cli('history', 'user_b64').status, 1, 'nothing stored');
});

test('a stale timestamp (over 5 minutes old) is refused with 401 "too old"', async () => {
  const r = await deliver(envelope('session.created', session('sess_stale', 'user_stale', nowMs)),
    { when: new Date(Date.now() - 400 * 1000) });
  assert.equal(r.status, 401);
  assert.match(r.json.error, /too old/);
});

test('a future timestamp (over 5 minutes ahead) is refused with 401 "too new"', async () => {
  const r = await deliver(envelope('session.created', session('sess_future', 'user_future', nowMs)),
    { when: new Date(Date.now() + 400 * 1000) });
  assert.equal(r.status, 401);
  assert.match(r.json.error, /too new/);
});

test('a body over --max-body is refused with 413', async () => {
  const big = envelope('session.created', { ...session('sess_big', 'user_big', nowMs), pad: 'x'.repeat(MAX_BODY) });
  const r = await deliver(big);
  assert.equal(r.status, 413);
});

test('missing signature headers give 400, bad JSON with a valid signature gives 400', async () => {
  const r1 = await post(envelope('session.created', session('s', 'u', nowMs)), { 'content-type': 'application/json' });
  assert.equal(r1.status, 400);
  const r2 = await deliver('{"type": "session.created", "data": ');
  assert.equal(r2.status, 400);
  const r3 = await deliver(envelope('session.created', { object: 'session', id: 'sess_no_user' }));
  assert.equal(r3.status, 400);
  assert.match(r3.json.error, /user_id/);
});

test('an event type veille does not use is answered 2xx and not stored', async () => {
  const r = await deliver(envelope('email.created', { object: 'email', id: 'ema_1', to_email_address: 'a@b.c' }));
  assert.equal(r.status, 200);
  assert.equal(r.json.status, 'ignored');
});

test('user sync: created, older update ignored, delete leaves a tombstone', async () => {
  const t = nowMs - 60000;
  assert.equal((await deliver(envelope('user.created', user('user_sync', t)))).status, 200);
  let u = cliJson('user', 'user_sync')[0];
  assert.equal(u.email, 'ada@example.org');
  assert.equal(u.first_name, 'Ada');
  assert.equal(u.deleted, false);
  // an update that is older than what is stored arrives late: ignored
  const r = await deliver(envelope('user.updated', user('user_sync', t - 1000, { first_name: 'Old' })));
  assert.equal(r.status, 200);
  assert.equal(cliJson('user', 'user_sync')[0].first_name, 'Ada');
  assert.equal((await deliver(envelope('user.updated', user('user_sync', t + 1000, { first_name: 'Augusta' })))).status, 200);
  assert.equal(cliJson('user', 'user_sync')[0].first_name, 'Augusta');
  assert.equal((await deliver(envelope('user.deleted', { object: 'user', id: 'user_sync', deleted: true }))).status, 200);
  u = cliJson('user', 'user_sync')[0];
  assert.equal(u.deleted, true);
  assert.equal(u.email, null, 'personal fields erased');
  assert.equal(u.first_name, null);
  // a newer update arriving after the delete never resurrects the user
  await deliver(envelope('user.updated', user('user_sync', t + 5000, { first_name: 'Back' })));
  u = cliJson('user', 'user_sync')[0];
  assert.equal(u.deleted, true);
  assert.equal(u.first_name, null);
});

test('out-of-order sessions are listed by event time; a session for an unknown user makes a placeholder', async () => {
  const t0 = nowMs - 30000;
  for (const [id, off] of [['sess_c', 2000], ['sess_a', 0], ['sess_b', 1000]])
    assert.equal((await deliver(envelope('session.created', session(id, 'user_ooo', t0 + off)))).status, 200);
  const ended = { ...session('sess_a', 'user_ooo', t0), status: 'ended', updated_at: t0 + 3000 };
  assert.equal((await deliver(envelope('session.ended', ended))).status, 200);
  const events = cliJson('history', 'user_ooo');
  assert.deepEqual(events.map((e) => `${e.type}:${e.session_id}`),
    ['session.created:sess_a', 'session.created:sess_b', 'session.created:sess_c', 'session.ended:sess_a']);
  const u = cliJson('user', 'user_ooo')[0];
  assert.equal(u.placeholder, true);
  assert.equal((await deliver(envelope('user.created', user('user_ooo', nowMs)))).status, 200);
  assert.equal(cliJson('user', 'user_ooo')[0].placeholder, false);
  // the readable table has a header and one row per event
  const table = cli('history', 'user_ooo');
  assert.equal(table.status, 0);
  assert.match(table.stdout, /^TIME\s+EVENT\s+SESSION\s+IP/);
  assert.equal(table.stdout.trim().split('\n').length, 5);
  // --limit keeps the most recent
  assert.deepEqual(cliJson('history', 'user_ooo', '--limit', '1').map((e) => e.type), ['session.ended']);
  // --since filters by event time: these events are 27 to 30 s old
  assert.equal(cliJson('history', 'user_ooo', '--since', '10m').length, 4);
  assert.deepEqual(cliJson('history', 'user_ooo', '--since', '5s'), []);
  const bad = cli('history', 'user_ooo', '--since', '10');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /needs a unit/);
});

test('the CLI says so for an unknown user and a missing store', () => {
  const r = cli('user', 'user_nobody');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /no user 'user_nobody'/);
  const m = spawnSync(BIN, ['stats', '--data', join(dataDir, 'nope')], { encoding: 'utf8' });
  assert.notEqual(m.status, 0);
  assert.match(m.stderr, /no veille store/);
});

test('metrics count deliveries, signature failures and duplicates', async () => {
  const text = await (await fetch(base + '/metrics')).text();
  assert.match(text, /veille_deliveries_total\{type="session.created",outcome="accepted"\} [1-9]/);
  assert.match(text, /veille_signature_failures_total\{reason="too_old"\} 1/);
  assert.match(text, /veille_signature_failures_total\{reason="too_new"\} 1/);
  assert.match(text, /veille_duplicates_total 1/);
  assert.match(text, /veille_commit_batch_size_count [1-9]/);
  // the apply: every accepted delivery applied, the stale update too, and its lag measured
  assert.match(text, /veille_backlog_records 0\n/);
  assert.match(text, /veille_applied_total\{outcome="stale"\} [1-9]/);
  assert.match(text, /veille_apply_lag_seconds_count [1-9]/);
});

test('stats and users list what was stored', () => {
  const s = cliJson('stats')[0];
  assert.ok(s.users >= 6, JSON.stringify(s));
  assert.ok(s.history_entries >= 8);
  const ids = cliJson('users').map((u) => u.id);
  assert.ok(ids.includes('user_ada') && ids.includes('user_sync'));
  assert.ok(!ids.includes('user_tamper'));
});

test('the log never contains a secret', () => {
  for (const s of [OLD, NEW]) assert.ok(!serverLog.includes(s.slice(6)), 'secret leaked in the log');
});

test('SIGTERM stops cleanly and the data stays readable', async () => {
  const exited = new Promise((ok) => server.on('exit', (code, sig) => ok({ code, sig })));
  server.kill('SIGTERM');
  const { code } = await exited;
  assert.equal(code, 0, serverLog);
  assert.match(serverLog, /msg=stopped/);
  assert.equal(cliJson('history', 'user_ooo').length, 4);
});
