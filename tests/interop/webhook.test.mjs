// Interop: the webhook alert sink (Standard Webhooks), checked by a receiver that
// verifies every request with the official `standardwebhooks` library. Deliveries
// into veille are signed by the official `svix` library, as in alerts.test.mjs.
// Covered: a delivery and its headers, the durable outbox across a restart, retries
// with backoff, a stuck receiver not stalling ingestion, https with --ca (and the
// refusal without it), --min-severity, --alert-retry-for, the start-up refusal
// without VEILLE_ALERT_WEBHOOK_SECRET, and `veille test-alert`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Webhook as SvixWebhook } from 'svix';
import { Webhook } from 'standardwebhooks';
import { RAPID, envelope, session, untilApplied, untilListening } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
// Two different secrets: the Svix one veille verifies incoming deliveries with, and
// the one it signs its own alert webhooks with. Mixing them up fails verification.
const SECRET = 'whsec_' + randomBytes(32).toString('base64');
const ALERT_SECRET = 'whsec_' + randomBytes(32).toString('base64');


// The fields every sink must carry as stored (suppressed aside: sinks see 0).
const ALERT_FIELDS = ['id', 'rule', 'severity', 'key', 'user_id', 'ip', 'session_id', 'event_id',
  'event_type', 'at', 'raised_at', 'summary', 'evidence', 'tags'];

let tmp, rulesPath, certs;
const procs = new Set();
const receivers = new Set();

// ---- small utilities ----

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const isRfc3339 = (s) => typeof s === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(s)
  && !Number.isNaN(Date.parse(s));

// Poll an async (or sync) function until it returns something truthy; returns that value.
async function poll(what, fn, ms = 5000, every = 50, diag = () => '') {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${diag()}`);
    await sleep(every);
  }
}

// A port with nothing listening on it (bound then released by this process).
function freePort() {
  return new Promise((ok, fail) => {
    const s = createNetServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

const hookSpec = (port, path = '/hook', scheme = 'http') => `webhook:${scheme}://127.0.0.1:${port}${path}`;

// ---- the receiver ----
//
// An http or https server on 127.0.0.1 that verifies every request with
// `new Webhook(ALERT_SECRET).verify(rawBody, headers)` and records every attempt.
// Behaviour (changeable at any time through r.behave):
//   status      the answer once the failures are used up (default 204)
//   failFirst   answer failStatus (default 500) to the first N attempts
//   delayMs     wait this long before answering
//   hold        do not answer at all until r.release()
// "Not listening at all" is simply freePort() with no receiver on it.
async function startReceiver({ port = 0, tls = null, ...behave } = {}) {
  const r = {
    attempts: [], tlsErrors: [], held: [], sockets: new Set(),
    behave: { status: 204, failFirst: 0, failStatus: 500, delayMs: 0, hold: false, ...behave },
    at: (path) => r.attempts.filter((a) => a.path === path),
    verified: (path) => r.attempts.filter((a) => (path === undefined || a.path === path) && a.verified),
    release() {
      for (const h of r.held.splice(0)) answer(h.a, h.res);
    },
    describe: () => JSON.stringify(r.attempts.map(({ t, path, status, verified, error, headers }) =>
      ({ t, path, status, verified, error, id: headers['webhook-id'] })), null, 1)
      + (r.tlsErrors.length ? `\ntls errors: ${r.tlsErrors.join('; ')}` : ''),
  };
  function answer(a, res) {
    a.status = a.n <= r.behave.failFirst ? r.behave.failStatus : r.behave.status;
    a.answeredAt = Date.now();
    res.writeHead(a.status, { 'content-type': 'text/plain' });
    res.end(a.status >= 200 && a.status < 300 && a.status !== 204 ? 'ok' : undefined);
  }
  const handler = (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const a = { n: r.attempts.length + 1, t: Date.now(), method: req.method, path: req.url,
        headers: { ...req.headers }, body, json: null, verified: false, error: null, status: null, answeredAt: null };
      try {
        a.json = new Webhook(ALERT_SECRET).verify(body, req.headers);
        a.verified = true;
      } catch (e) {
        a.error = String(e && e.message);
        try { a.json = JSON.parse(body); } catch { /* left null */ }
      }
      r.attempts.push(a);
      if (r.behave.hold) r.held.push({ a, res });
      else if (r.behave.delayMs > 0) setTimeout(() => answer(a, res), r.behave.delayMs);
      else answer(a, res);
    });
  };
  const server = tls ? createHttpsServer({ key: tls.key, cert: tls.cert }, handler) : createHttpServer(handler);
  server.on('connection', (s) => { r.sockets.add(s); s.on('close', () => r.sockets.delete(s)); });
  server.on('secureConnection', (s) => { r.sockets.add(s); s.on('close', () => r.sockets.delete(s)); });
  server.on('tlsClientError', (e) => r.tlsErrors.push(String(e && (e.code || e.message))));
  await new Promise((ok, fail) => { server.once('error', fail); server.listen(port, '127.0.0.1', ok); });
  r.port = server.address().port;
  r.close = () => new Promise((ok) => {
    for (const h of r.held.splice(0)) h.res.destroy();
    server.close(() => ok());
    for (const s of r.sockets) s.destroy();
    receivers.delete(r);
  });
  receivers.add(r);
  return r;
}

// A raw request from this process to a receiver (for checking the receiver itself).
function request(url, { method = 'POST', headers = {}, body = '', ca, servername } = {}) {
  return new Promise((ok, fail) => {
    const u = new URL(url);
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u,
      { method, headers, ca, servername, agent: false, timeout: 5000 }, (res) => {
        let text = '';
        res.on('data', (d) => { text += d; });
        res.on('end', () => ok({ status: res.statusCode, text }));
      });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', fail);
    req.end(body);
  });
}

// Sign like a Standard Webhooks sender would (what veille is expected to do).
function swHeaders(id, body, when = new Date(), secret = ALERT_SECRET) {
  return { 'content-type': 'application/json', 'webhook-id': id,
    'webhook-timestamp': String(Math.floor(when.getTime() / 1000)),
    'webhook-signature': new Webhook(secret).sign(id, when, body) };
}

// ---- certificates (openssl CLI) ----

function makeCerts(dir) {
  const ssl = (...args) => execFileSync('/usr/bin/openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
    '-subj', '/CN=veille interop test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-addext', 'subjectKeyIdentifier=hash');
  ssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'server.ext'), [
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    'subjectKeyIdentifier=hash',
    'authorityKeyIdentifier=keyid,issuer', ''].join('\n'));
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '2',
    '-days', '2', '-out', 'server.pem', '-extfile', 'server.ext');
  return { caPath: join(dir, 'ca.pem'), ca: readFileSync(join(dir, 'ca.pem')),
    key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.pem')),
    certPath: join(dir, 'server.pem') };
}

// ---- veille ----

// Any veille command, asynchronously: the receivers live in this process and must
// keep answering while the command runs (spawnSync would block them).
function run(args, { env = {}, omitEnv = [], cwd = ROOT, timeout = 15000 } = {}) {
  return new Promise((ok) => {
    const e = { ...process.env, ...env };
    for (const k of omitEnv) delete e[k];
    const p = spawn(BIN, args, { cwd, env: e, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeout);
    p.on('error', (err) => { clearTimeout(timer); ok({ status: null, signal: null, stdout, stderr: stderr + String(err) }); });
    p.on('close', (status, signal) => { clearTimeout(timer); ok({ status, signal, stdout, stderr }); });
  });
}

async function cliJson(dataDir, ...args) {
  const r = await run([...args, '--data', dataDir, '--json']);
  assert.equal(r.status, 0, `veille ${args.join(' ')} --json: ${r.stderr}`);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
}
const outbox = (dataDir, ...more) => cliJson(dataDir, 'outbox', ...more);

function startVeille(dataDir, sinkArgs, { env = { VEILLE_ALERT_WEBHOOK_SECRET: ALERT_SECRET } } = {}) {
  const s = { log: '', out: '', base: null, dataDir };
  // every alert its own incident: these tests count the alerts a sink receives
  s.proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir, '--rules', rulesPath,
    '--incident-window', '0s', ...sinkArgs],
    { cwd: ROOT, env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(s.proc);
  s.exited = new Promise((ok) => s.proc.on('exit', (code, signal) => { procs.delete(s.proc); ok({ code, signal }); }));
  s.proc.stdout.on('data', (d) => { s.out += d; });
  return untilListening(s);
}

// SIGTERM, then wait for the exit; veille must stop cleanly (status 0).
async function stopVeille(s) {
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) return;
  s.proc.kill('SIGTERM');
  const timer = setTimeout(() => s.proc.kill('SIGKILL'), 10000);
  const { code, signal } = await s.exited;
  clearTimeout(timer);
  assert.equal(signal, null, `veille did not stop within 10 s of SIGTERM:\n${s.log}`);
  assert.equal(code, 0, s.log);
}

let seq = 0;
const newId = () => `msg_webhook_${process.pid}_${++seq}`;

// One Clerk delivery into veille, signed by the official svix library at the current time.
async function deliver(s, body, id = newId()) {
  const when = new Date();
  const headers = { 'content-type': 'application/json', 'svix-id': id,
    'svix-timestamp': String(Math.floor(when.getTime() / 1000)),
    'svix-signature': new SvixWebhook(SECRET).sign(id, when, body) };
  let res, text;
  try {
    res = await fetch(s.base + '/webhooks/clerk', { method: 'POST', headers, body, signal: AbortSignal.timeout(10000) });
    text = await res.text();
  } catch (e) {
    throw new Error(`delivery ${id} into veille not answered within 10 s (${e.message})\n--- veille stderr:\n${s.log}`);
  }
  let json = null;
  try { json = JSON.parse(text); } catch { /* asserted by callers */ }
  if (res.status === 200) await untilApplied(s.base); // alerts are raised at apply
  return { id, status: res.status, json, text };
}

// n session.created for one user, 10 s apart in event time, the first 4 min ago.
async function burst(s, userId, n, ip = '198.51.100.7') {
  const t0 = Date.now() - 240000;
  const sent = [];
  for (let i = 1; i <= n; i++) {
    const r = await deliver(s, envelope('session.created', session(`sess_${userId}_${i}`, userId, t0 + (i - 1) * 10000, ip)));
    assert.equal(r.status, 200, `delivery ${i} for ${userId}: ${r.text}\n${s.log}`);
    assert.deepEqual(r.json, { status: 'accepted' });
    sent.push(r.id);
  }
  return sent;
}

// Six sign-ins raise one `rapid` alert (severity high); returns it as stored.
async function raise(s, userId, n = 6, ip = '198.51.100.7') {
  const sent = await burst(s, userId, n, ip);
  const stored = await cliJson(s.dataDir, 'alerts', '--user', userId);
  assert.equal(stored.length, 1, JSON.stringify(stored));
  assert.equal(stored[0].rule, 'rapid');
  assert.equal(stored[0].severity, 'high');
  assert.equal(stored[0].event_id, sent[5]);
  return stored[0];
}

async function metrics(s) {
  const res = await fetch(s.base + '/metrics', { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  return res.text();
}
function metric(text, sample) {
  const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}
const sinkMetric = (text, name, spec) => metric(text, `${name}{sink="${spec}"}`);

// Wait until a sink's series reaches at least `want`; returns that /metrics text
// (callers then assert the exact value, so an overshoot is reported as such).
async function waitSinkMetric(s, name, spec, want, ms = 5000) {
  let text = '';
  await poll(`${name}{sink="${spec}"} >= ${want}`, async () => {
    text = await metrics(s);
    return sinkMetric(text, name, spec) >= want;
  }, ms, 50, () => `--- last /metrics:\n${text}\n--- veille stderr:\n${s.log}`);
  return text;
}

// Every field of the stored alert, as the sink must have received it.
function assertSameAlert(got, stored, what = 'the delivered body') {
  for (const f of ['id', 'rule', 'severity', 'key', 'user_id', 'ip', 'event_id', 'summary'])
    assert.deepEqual(got[f], stored[f], `${what}: field ${f}`);
  for (const f of ALERT_FIELDS) assert.deepEqual(got[f], stored[f], `${what}: field ${f}`);
  assert.equal(got.suppressed, 0, `${what}: sinks see suppressed as it was when raised`);
  assert.deepEqual({ ...got, suppressed: stored.suppressed }, stored, `${what}: the same object as veille alerts --json`);
}

function assertSignedPost(a, alertId, path = '/hook') {
  assert.equal(a.method, 'POST');
  assert.equal(a.path, path);
  assert.ok(a.verified, `standardwebhooks verify failed: ${a.error}\nheaders: ${JSON.stringify(a.headers)}`);
  assert.equal(a.headers['webhook-id'], alertId, 'webhook-id is the alert id');
  assert.match(a.headers['content-type'] ?? '', /^application\/json\b/);
  assert.match(a.headers['webhook-signature'], /^v1,[A-Za-z0-9+/]{43}=( |$)/);
  const ts = Number(a.headers['webhook-timestamp']);
  assert.ok(Number.isInteger(ts), `webhook-timestamp in unix seconds: ${a.headers['webhook-timestamp']}`);
  assert.ok(Math.abs(ts * 1000 - a.t) < 60000, `webhook-timestamp ${ts} is the time of the attempt (${a.t})`);
}

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'veille-webhook-'));
  rulesPath = join(tmp, 'test.rules');
  writeFileSync(rulesPath, RAPID);
  certs = makeCerts(tmp);
});

after(async () => {
  for (const p of procs) p.kill('SIGKILL');
  for (const r of [...receivers]) await r.close();
  rmSync(tmp, { recursive: true, force: true });
});

let dirs = 0;
const newDataDir = () => join(tmp, `data${++dirs}`);

// ---- (0) the harness itself: these pass whatever veille does ----

test('receiver: a request signed with standardwebhooks verifies; a tampered body or a wrong secret does not', async () => {
  const r = await startReceiver();
  try {
    const url = `http://127.0.0.1:${r.port}/hook`;
    const body = JSON.stringify({ id: 'alr_selfcheck', rule: 'x', severity: 'high' });
    const headers = swHeaders('alr_selfcheck', body);
    assert.equal((await request(url, { headers, body })).status, 204);
    assert.equal((await request(url, { headers, body: body.replace('high', 'low') })).status, 204);
    assert.equal((await request(url, { headers: swHeaders('alr_other', body, new Date(),
      'whsec_' + randomBytes(32).toString('base64')), body })).status, 204);
    const old = new Date(Date.now() - 600000);
    assert.equal((await request(url, { headers: swHeaders('alr_old', body, old), body })).status, 204);
    const [ok, tampered, stranger, stale] = r.attempts;
    assert.equal(ok.verified, true, ok.error);
    assert.deepEqual(ok.json, JSON.parse(body));
    assert.equal(ok.headers['webhook-id'], 'alr_selfcheck');
    assert.equal(ok.path, '/hook');
    assert.equal(tampered.verified, false);
    assert.match(tampered.error, /No matching signature/);
    assert.equal(stranger.verified, false);
    assert.match(stranger.error, /No matching signature/);
    assert.equal(stale.verified, false);
    assert.match(stale.error, /too old/);
  } finally {
    await r.close();
  }
});

test('receiver: programmable answers (500 for the first N, delay, hold until released)', async () => {
  const r = await startReceiver({ failFirst: 2 });
  try {
    const url = `http://127.0.0.1:${r.port}/hook`;
    const body = '{"id":"alr_x"}';
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await request(url, { headers: swHeaders('alr_x', body), body })).status);
    assert.deepEqual(statuses, [500, 500, 204]);
    assert.deepEqual(r.attempts.map((a) => a.status), [500, 500, 204]);
    assert.ok(r.attempts.every((a) => a.verified));

    r.behave.delayMs = 300;
    let t = Date.now();
    assert.equal((await request(url, { headers: swHeaders('alr_x', body), body })).status, 204);
    assert.ok(Date.now() - t >= 280, 'delayed');

    r.behave.delayMs = 0;
    r.behave.hold = true;
    t = Date.now();
    const pending = request(url, { headers: swHeaders('alr_x', body), body });
    await poll('the held request', () => r.held.length === 1);
    setTimeout(() => { r.behave.hold = false; r.release(); }, 200);
    assert.equal((await pending).status, 204);
    assert.ok(Date.now() - t >= 180, 'held until released');
  } finally {
    await r.close();
  }
  // a closed port refuses
  const port = await freePort();
  await assert.rejects(request(`http://127.0.0.1:${port}/hook`), /ECONNREFUSED/);
});

test('receiver: https with the generated CA (IP and DNS names); refused without the CA', async () => {
  const out = execFileSync('/usr/bin/openssl', ['verify', '-x509_strict', '-CAfile', certs.caPath, certs.certPath],
    { encoding: 'utf8' });
  assert.match(out, /OK/);
  const r = await startReceiver({ tls: certs });
  try {
    const body = '{"id":"alr_tls"}';
    const url = `https://127.0.0.1:${r.port}/hook`;
    assert.equal((await request(url, { headers: swHeaders('alr_tls', body), body, ca: certs.ca })).status, 204);
    // the DNS name too (connecting to 127.0.0.1, checking the name localhost)
    assert.equal((await request(url, { headers: swHeaders('alr_tls', body), body, ca: certs.ca, servername: 'localhost' })).status, 204);
    assert.equal(r.verified('/hook').length, 2);
    await assert.rejects(request(url, { headers: swHeaders('alr_tls', body), body }),
      (e) => /SELF_SIGNED|UNABLE_TO_VERIFY|certificate/i.test(`${e.code} ${e.message}`));
    assert.equal(r.attempts.length, 2, 'the refused handshake never became a request');
  } finally {
    await r.close();
  }
});

// ---- (1) a delivery ----

test('an alert is POSTed once, signed (standardwebhooks verifies), webhook-id = alert id, extra header, metrics, empty outbox', { timeout: 60000 }, async () => {
  const r = await startReceiver();
  const spec = hookSpec(r.port);
  const s = await startVeille(newDataDir(), ['--alert', spec, '--header', 'Authorization: Bearer t0k']);
  try {
    const alert = await raise(s, 'user_wh_ok');
    assert.equal(alert.suppressed, 0);
    await poll('the webhook POST', () => r.attempts.length >= 1, 10000, 20, () => s.log);
    const m = await waitSinkMetric(s, 'veille_sink_delivered_total', spec, 1);
    // a 7th sign-in folds into the open alert: stored suppressed 1, the sink still saw 0
    const seventh = await deliver(s, envelope('session.created',
      session('sess_user_wh_ok_7', 'user_wh_ok', Date.now() - 170000, '198.51.100.7')));
    assert.deepEqual(seventh.json, { status: 'accepted' }, seventh.text);
    const [now] = await cliJson(s.dataDir, 'alerts', '--user', 'user_wh_ok');
    assert.equal(now.id, alert.id);
    assert.equal(now.suppressed, 1, 'the 7th sign-in is counted on the stored alert');
    await sleep(300); // nothing more may arrive
    assert.equal(r.attempts.length, 1, `exactly one POST: ${r.describe()}`);
    const [a] = r.attempts;
    assertSignedPost(a, alert.id);
    assert.equal(a.status, 204);
    assert.equal(a.headers.authorization, 'Bearer t0k', 'the --header arrives');
    assert.match(alert.id, /^alr_[0-9a-f]{24}$/);
    assertSameAlert(a.json, now);
    assert.deepEqual(JSON.parse(a.body), a.json);

    assert.equal(sinkMetric(m, 'veille_sink_delivered_total', spec), 1);
    assert.equal(sinkMetric(m, 'veille_sink_queue_depth', spec), 0);
    assert.equal(sinkMetric(m, 'veille_sink_retried_total', spec), 0);
    assert.equal(sinkMetric(m, 'veille_sink_dead_total', spec), 0);
    assert.equal(sinkMetric(m, 'veille_sink_outbox_full_total', spec), 0);
    assert.equal(sinkMetric(m, 'veille_sink_delivery_latency_seconds_count', spec), 1);
    assert.ok(sinkMetric(m, 'veille_sink_delivery_latency_seconds_sum', spec) >= 0);
    const last = sinkMetric(m, 'veille_sink_last_success_timestamp_seconds', spec);
    assert.ok(Math.abs(last * 1000 - a.t) < 60000, `last success ${last} near the POST`);

    assert.deepEqual(await outbox(s.dataDir), [], 'nothing waiting');
    assert.deepEqual(await outbox(s.dataDir, '--dead'), []);
    assert.ok(!s.log.includes(ALERT_SECRET.slice('whsec_'.length)), 'the alert secret is never logged');
    assert.ok(!s.log.includes('t0k'), 'header values are not logged');
  } finally {
    await stopVeille(s);
    await r.close();
  }
});

// ---- (2) the outbox survives a restart while the receiver is down ----

test('receiver down: the alert waits in the outbox, survives a restart, and arrives once the receiver is back', { timeout: 60000 }, async () => {
  const port = await freePort();
  const spec = hookSpec(port);
  const dataDir = newDataDir();
  let s = await startVeille(dataDir, ['--alert', spec]);
  let r;
  try {
    const alert = await raise(s, 'user_wh_down');
    const entry = await poll('a failed attempt in veille outbox', async () => {
      const rows = await outbox(dataDir);
      return rows.find((x) => x.alert_id === alert.id && x.attempts >= 1 && x.last_error) || null;
    }, 10000, 100, () => s.log);
    assert.equal(entry.sink, spec);
    assert.equal(entry.rule, 'rapid');
    assert.equal(entry.severity, 'high');
    assert.equal(entry.state, 'pending');
    assert.equal(typeof entry.last_error, 'string');
    assert.ok(entry.last_error.length > 0);
    assert.ok(isRfc3339(entry.queued_at), `queued_at: ${entry.queued_at}`);
    assert.ok(isRfc3339(entry.next_try_at), `next_try_at: ${entry.next_try_at}`);
    assert.ok(Date.parse(entry.next_try_at) >= Date.parse(entry.queued_at), 'next try after queueing');
    assert.equal((await outbox(dataDir)).length, 1, 'one alert, one sink: one entry');
    // `veille alerts --pending` prints the same thing
    const pending = await cliJson(dataDir, 'alerts', '--pending');
    assert.deepEqual(pending.map((x) => [x.sink, x.alert_id, x.state]), [[spec, alert.id, 'pending']]);

    const m = await metrics(s);
    assert.equal(sinkMetric(m, 'veille_sink_queue_depth', spec), 1);
    assert.ok(sinkMetric(m, 'veille_sink_retried_total', spec) >= 1);
    assert.equal(sinkMetric(m, 'veille_sink_delivered_total', spec), 0);
    assert.equal(sinkMetric(m, 'veille_sink_last_success_timestamp_seconds', spec), 0, '0 = never');

    await stopVeille(s);
    // still there with veille stopped
    assert.deepEqual((await outbox(dataDir)).map((x) => x.alert_id), [alert.id]);

    r = await startReceiver({ port });
    s = await startVeille(dataDir, ['--alert', spec]);
    await poll('the alert after the restart', () => r.verified().length >= 1, 20000, 50,
      () => `${s.log}\nreceiver: ${r.describe()}`);
    await poll('an empty outbox', async () => (await outbox(dataDir)).length === 0, 5000, 100);
    await sleep(200);
    assert.equal(r.attempts.length, 1, `delivered once: ${r.describe()}`);
    assertSignedPost(r.attempts[0], alert.id);
    assertSameAlert(r.attempts[0].json, alert);
    const m2 = await waitSinkMetric(s, 'veille_sink_delivered_total', spec, 1);
    assert.equal(sinkMetric(m2, 'veille_sink_delivered_total', spec), 1);
    assert.equal(sinkMetric(m2, 'veille_sink_queue_depth', spec), 0);
  } finally {
    await stopVeille(s);
    if (r) await r.close();
  }
});

// ---- (3) retries with backoff ----

test('500, 500, then 204: retried with backoff, one success, the same webhook-id on every attempt', { timeout: 60000 }, async () => {
  const r = await startReceiver({ failFirst: 2, failStatus: 500, status: 204 });
  const spec = hookSpec(r.port);
  const s = await startVeille(newDataDir(), ['--alert', spec]);
  try {
    const alert = await raise(s, 'user_wh_retry');
    // first retry after 0.5-1.5 s, the second after 1-3 s more
    await poll('the third attempt', () => r.attempts.length >= 3, 15000, 20, () => `${s.log}\nreceiver: ${r.describe()}`);
    await waitSinkMetric(s, 'veille_sink_delivered_total', spec, 1);
    await sleep(300);
    const m = await metrics(s);
    assert.deepEqual(r.attempts.map((a) => a.status), [500, 500, 204], r.describe());
    for (const a of r.attempts) assertSignedPost(a, alert.id);
    for (const a of r.attempts) assertSameAlert(a.json, alert, `attempt ${a.n}`);
    const gaps = r.attempts.slice(1).map((a, i) => a.t - r.attempts[i].answeredAt);
    assert.ok(gaps.every((g) => g >= 400), `backoff between attempts, got gaps ${gaps} ms`);
    assert.ok(gaps[0] <= 4000, `first retry after about 1 s, got ${gaps[0]} ms`);
    assert.ok(gaps[1] <= 8000, `second retry after about 2 s, got ${gaps[1]} ms`);

    assert.ok(sinkMetric(m, 'veille_sink_retried_total', spec) >= 2, m);
    assert.equal(sinkMetric(m, 'veille_sink_delivered_total', spec), 1);
    assert.equal(sinkMetric(m, 'veille_sink_dead_total', spec), 0);
    assert.equal(sinkMetric(m, 'veille_sink_queue_depth', spec), 0);
    assert.deepEqual(await outbox(s.dataDir), []);
  } finally {
    await stopVeille(s);
    await r.close();
  }
});

// ---- (4) a stuck receiver does not stall ingestion ----

test('a receiver that does not answer does not slow down ingestion', { timeout: 90000 }, async () => {
  const r = await startReceiver({ hold: true });
  const spec = hookSpec(r.port);
  // a long attempt timeout, so the stuck POST stays in flight for the whole measurement
  const s = await startVeille(newDataDir(), ['--alert', spec, '--alert-timeout', '60s']);
  const N = 100;
  async function measure(tag) {
    const ms = [];
    for (let i = 0; i < N; i++) {
      const at = Date.now() - 60000;
      const t = performance.now();
      const d = await deliver(s, envelope('session.created', session(`sess_${tag}_${i}`, `user_${tag}_${i}`, at, '198.51.100.20')));
      ms.push(performance.now() - t);
      assert.equal(d.status, 200, `${tag} delivery ${i}: ${d.text}`);
      assert.deepEqual(d.json, { status: 'accepted' });
    }
    return ms;
  }
  try {
    const baseline = await measure('base');
    const alert = await raise(s, 'user_wh_stuck');
    await poll('the POST reaching the stuck receiver', () => r.held.length === 1, 10000, 20, () => s.log);
    const stuck = await measure('stuck');
    assert.equal(r.held.length, 1, 'all of them answered while the webhook POST was still unanswered');
    assert.equal(r.attempts.length, 1, `no second attempt meanwhile: ${r.describe()}`);
    const report = `baseline median ${median(baseline).toFixed(1)} ms max ${Math.max(...baseline).toFixed(1)} ms; `
      + `while stuck median ${median(stuck).toFixed(1)} ms max ${Math.max(...stuck).toFixed(1)} ms`;
    assert.ok(Math.max(...stuck) < 2000, report);
    assert.ok(median(stuck) < Math.max(100, 4 * median(baseline)), report);

    // let it through: delivered once, verified
    r.behave.hold = false;
    r.release();
    await waitSinkMetric(s, 'veille_sink_delivered_total', spec, 1);
    assert.equal(r.attempts.length, 1, r.describe());
    assertSignedPost(r.attempts[0], alert.id);
    assertSameAlert(r.attempts[0].json, alert);
  } finally {
    r.behave.hold = false;
    r.release();
    await stopVeille(s);
    await r.close();
  }
});

// ---- (5) https ----

test('https: delivered with --ca; without it the certificate is refused and the alert waits', { timeout: 60000 }, async () => {
  const r = await startReceiver({ tls: certs });
  const withCa = hookSpec(r.port, '/hook', 'https');
  const noCa = hookSpec(r.port, '/noca', 'https');
  const s = await startVeille(newDataDir(), ['--alert', withCa, '--ca', certs.caPath, '--alert', noCa]);
  try {
    const alert = await raise(s, 'user_wh_tls');
    await poll('the https POST', () => r.verified('/hook').length >= 1, 10000, 20, () => `${s.log}\nreceiver: ${r.describe()}`);
    const entry = await poll('the refused sink in the outbox', async () =>
      (await outbox(s.dataDir)).find((x) => x.sink === noCa && x.last_error) || null, 10000, 100,
    () => `${s.log}\nreceiver: ${r.describe()}`);
    assert.equal(entry.alert_id, alert.id);
    assert.equal(entry.state, 'pending');
    assert.ok(entry.attempts >= 1);
    assert.match(entry.last_error, /certif/i, 'the error names the certificate');
    assert.equal(r.at('/hook').length, 1, r.describe());
    assertSignedPost(r.at('/hook')[0], alert.id, '/hook');
    assertSameAlert(r.at('/hook')[0].json, alert);
    assert.equal(r.at('/noca').length, 0, 'no request without a verified server');
    assert.deepEqual((await outbox(s.dataDir)).map((x) => x.sink), [noCa], 'only the sink without --ca waits');

    const m = await metrics(s);
    assert.equal(sinkMetric(m, 'veille_sink_delivered_total', withCa), 1);
    assert.equal(sinkMetric(m, 'veille_sink_queue_depth', withCa), 0);
    assert.equal(sinkMetric(m, 'veille_sink_delivered_total', noCa), 0);
    assert.equal(sinkMetric(m, 'veille_sink_queue_depth', noCa), 1);
    assert.ok(sinkMetric(m, 'veille_sink_retried_total', noCa) >= 1);
  } finally {
    await stopVeille(s);
    await r.close();
  }
});

// ---- (6) --min-severity ----

test('--min-severity critical receives nothing for a high alert; high and unfiltered sinks do; labels drop the query', { timeout: 60000 }, async () => {
  const r = await startReceiver();
  const crit = hookSpec(r.port, '/crit');
  const high = hookSpec(r.port, '/high');
  const all = hookSpec(r.port, '/all?k=v');
  const allLabel = hookSpec(r.port, '/all');
  const s = await startVeille(newDataDir(), ['--alert', crit, '--min-severity', 'critical',
    '--alert', high, '--min-severity', 'high', '--alert', all]);
  try {
    const alert = await raise(s, 'user_wh_sev');
    await poll('the two deliveries', () => r.verified('/all?k=v').length >= 1 && r.verified('/high').length >= 1,
      10000, 20, () => `${s.log}\nreceiver: ${r.describe()}`);
    await waitSinkMetric(s, 'veille_sink_delivered_total', allLabel, 1);
    await waitSinkMetric(s, 'veille_sink_delivered_total', high, 1);
    await sleep(1000); // what the critical sink would have got by now
    assert.equal(r.at('/crit').length, 0, `the critical-only sink got nothing: ${r.describe()}`);
    assert.equal(r.attempts.length, 2, r.describe());
    assertSignedPost(r.at('/all?k=v')[0], alert.id, '/all?k=v');
    assertSignedPost(r.at('/high')[0], alert.id, '/high');
    assertSameAlert(r.at('/high')[0].json, alert);

    const m = await metrics(s);
    assert.equal(sinkMetric(m, 'veille_sink_delivered_total', allLabel), 1);
    assert.equal(sinkMetric(m, 'veille_sink_delivered_total', high), 1);
    assert.equal(sinkMetric(m, 'veille_sink_delivered_total', crit), 0);
    assert.equal(sinkMetric(m, 'veille_sink_queue_depth', crit), 0);
    assert.equal(sinkMetric(m, 'veille_sink_delivered_total', all), undefined, 'no ?query in the label');
    assert.deepEqual(await outbox(s.dataDir), [], 'the filtered alert is not queued for the critical sink');
  } finally {
    await stopVeille(s);
    await r.close();
  }
});

// ---- (7) --alert-retry-for: given up, "dead" ----

test('--alert-retry-for: an alert that cannot be delivered in time is dead, shown by outbox --dead only', { timeout: 60000 }, async () => {
  const port = await freePort();
  const spec = hookSpec(port);
  const s = await startVeille(newDataDir(), ['--alert', spec, '--alert-retry-for', '2s']);
  try {
    const alert = await raise(s, 'user_wh_dead');
    const dead = await poll('the dead entry', async () =>
      (await outbox(s.dataDir, '--dead')).find((x) => x.alert_id === alert.id && x.state === 'dead') || null,
    15000, 200, () => s.log);
    assert.equal(dead.sink, spec);
    assert.ok(dead.attempts >= 1);
    assert.equal(typeof dead.last_error, 'string');
    assert.deepEqual(await outbox(s.dataDir), [], 'pending only without --dead');
    const m = await waitSinkMetric(s, 'veille_sink_dead_total', spec, 1);
    assert.equal(sinkMetric(m, 'veille_sink_dead_total', spec), 1);
    assert.equal(sinkMetric(m, 'veille_sink_queue_depth', spec), 0);
    assert.equal(sinkMetric(m, 'veille_sink_delivered_total', spec), 0);
  } finally {
    await stopVeille(s);
  }
});

test('--outbox-max: past the cap an alert is stored but not queued for the sink, logged once and counted', { timeout: 60000 }, async () => {
  const port = await freePort();
  const spec = hookSpec(port);
  const s = await startVeille(newDataDir(), ['--alert', spec, '--outbox-max', '1']);
  try {
    const first = await raise(s, 'user_wh_cap1');
    const second = await raise(s, 'user_wh_cap2');
    const third = await raise(s, 'user_wh_cap3');
    const stored = (await cliJson(s.dataDir, 'alerts')).map((a) => a.id);
    for (const a of [first, second, third]) assert.ok(stored.includes(a.id), `alert ${a.id} is stored`);
    const waiting = await outbox(s.dataDir);
    assert.deepEqual(waiting.map((x) => x.alert_id), [first.id], 'only the first fits in the outbox');
    const m = await waitSinkMetric(s, 'veille_sink_outbox_full_total', spec, 2);
    assert.equal(sinkMetric(m, 'veille_sink_outbox_full_total', spec), 2);
    assert.equal(sinkMetric(m, 'veille_sink_queue_depth', spec), 1);
    assert.equal((s.log.match(/outbox full/g) || []).length, 1, `one log line for the run of refusals:\n${s.log}`);
  } finally {
    await stopVeille(s);
  }
});

// ---- (8) the secret is required ----

test('a webhook sink without VEILLE_ALERT_WEBHOOK_SECRET: serve and test-alert exit 2 naming the variable', async () => {
  const port = await freePort();
  const r = await run(['serve', '--listen', '127.0.0.1:0', '--data', newDataDir(), '--rules', rulesPath,
    '--alert', hookSpec(port)], { env: { VEILLE_WEBHOOK_SECRET: SECRET }, omitEnv: ['VEILLE_ALERT_WEBHOOK_SECRET'], timeout: 5000 });
  assert.equal(r.status, 2, `serve: ${r.stderr}`);
  assert.match(r.stderr, /VEILLE_ALERT_WEBHOOK_SECRET/);
  assert.doesNotMatch(r.stderr, /msg=listening/);

  const t = await run(['test-alert', '--alert', hookSpec(port)],
    { omitEnv: ['VEILLE_ALERT_WEBHOOK_SECRET'], cwd: tmp, timeout: 5000 });
  assert.equal(t.status, 2, `test-alert: ${t.stderr}`);
  assert.match(t.stderr, /VEILLE_ALERT_WEBHOOK_SECRET/);
});

// ---- (9) veille test-alert ----

test('veille test-alert delivers one signed sample (even below --min-severity); a closed port fails with status 1', { timeout: 60000 }, async () => {
  const r = await startReceiver();
  const spec = hookSpec(r.port);
  const env = { env: { VEILLE_ALERT_WEBHOOK_SECRET: ALERT_SECRET }, cwd: tmp };
  try {
    let t = await run(['test-alert', '--alert', spec, '--header', 'X-Veille-Test: yes'], env);
    assert.equal(t.status, 0, t.stderr);
    assert.match(t.stdout, /delivered:/);
    assert.equal(r.attempts.length, 1, r.describe());
    let [a] = r.attempts;
    assert.ok(a.json, a.body);
    assertSignedPost(a, a.json.id);
    assert.equal(a.json.rule, 'veille_test_alert');
    assert.match(a.json.id, /^alr_test_/);
    assert.equal(a.json.severity, 'info', 'default severity');
    assert.equal(a.headers['x-veille-test'], 'yes');

    t = await run(['test-alert', '--alert', spec, '--min-severity', 'critical', '--severity', 'high'], env);
    assert.equal(t.status, 0, t.stderr);
    assert.equal(r.attempts.length, 2, r.describe());
    a = r.attempts[1];
    assertSignedPost(a, a.json.id);
    assert.equal(a.json.rule, 'veille_test_alert');
    assert.equal(a.json.severity, 'high');
  } finally {
    await r.close();
  }

  const closed = hookSpec(await freePort());
  const t = await run(['test-alert', '--alert', closed], { env: { VEILLE_ALERT_WEBHOOK_SECRET: ALERT_SECRET }, cwd: tmp });
  assert.equal(t.status, 1, `closed port: ${t.stdout}${t.stderr}`);
  assert.ok(t.stderr.includes(`failed: ${closed}`), t.stderr);
  assert.doesNotMatch(t.stdout, /delivered:/);

  const usage = await run(['test-alert'], { env: { VEILLE_ALERT_WEBHOOK_SECRET: ALERT_SECRET }, cwd: tmp });
  assert.equal(usage.status, 2, `test-alert without --alert is a usage error: ${usage.stderr}`);
});

// ---- (10) formats: a Slack-shaped receiver, a Teams card, OCSF, a template ----

// What Slack's incoming webhooks accept (api.slack.com/reference/block-kit): a
// fallback `text`, at most 50 blocks of known types, a plain_text header of at
// most 150 characters, section text up to 3000 and at most 10 fields of up to 2000,
// context elements of type mrkdwn/plain_text. In mrkdwn, '<' '>' '&' from data
// must arrive as &lt; &gt; &amp; (a raw '<' opens a link or <!channel>).
function assertSlackShaped(msg) {
  assert.equal(typeof msg.text, 'string', 'a fallback text for notifications');
  assert.ok(Array.isArray(msg.blocks) && msg.blocks.length >= 1 && msg.blocks.length <= 50, 'blocks');
  const texts = [];
  for (const b of msg.blocks) {
    assert.ok(['header', 'section', 'context', 'divider', 'actions'].includes(b.type), `block type ${b.type}`);
    if (b.type === 'header') {
      assert.equal(b.text.type, 'plain_text');
      assert.ok(b.text.text.length > 0 && b.text.text.length <= 150, 'header text length');
    }
    if (b.type === 'section') {
      assert.ok(b.text || b.fields, 'a section has text or fields');
      if (b.text) { assert.ok(['mrkdwn', 'plain_text'].includes(b.text.type)); assert.ok(b.text.text.length <= 3000); texts.push(b.text); }
      if (b.fields) {
        assert.ok(b.fields.length <= 10, 'at most 10 fields');
        for (const f of b.fields) { assert.ok(f.text.length <= 2000); texts.push(f); }
      }
    }
    if (b.type === 'context') {
      assert.ok(b.elements.length >= 1 && b.elements.length <= 10);
      for (const e of b.elements) { assert.ok(['mrkdwn', 'plain_text'].includes(e.type)); texts.push(e); }
    }
  }
  for (const t of texts.filter((x) => x.type === 'mrkdwn'))
    assert.doesNotMatch(t.text.replace(/&(amp|lt|gt);/g, ''), /[<>&]/, `mrkdwn escaped: ${t.text}`);
  return msg;
}

// Slack's mrkdwn read back as a person sees it.
const slackText = (s) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

test('--format slack, teams, ocsf and --template: each sink gets its shape, signed, with the sign-in\'s location', { timeout: 60000 }, async () => {
  const r = await startReceiver({ status: 200 }); // Slack answers 200 "ok"
  const tmpl = join(tmp, 'ticket.tmpl');
  writeFileSync(tmpl, '{"summary": "{{rule}} for {{user_id}}", "description": "{{summary}}", "where": "{{location}}", ' +
    '"ua": "{{user_agent}}", "link": "https://tickets.test/?u={{user_id | url}}", "run": "{{command}}"}\n');
  const spec = { slack: hookSpec(r.port, '/slack'), teams: hookSpec(r.port, '/teams'), ocsf: hookSpec(r.port, '/ocsf'),
    ticket: hookSpec(r.port, '/ticket') };
  const s = await startVeille(newDataDir(), ['--alert', spec.slack, '--format', 'slack', '--alert', spec.teams,
    '--format', 'teams', '--alert', spec.ocsf, '--format', 'ocsf', '--alert', spec.ticket, '--template', tmpl]);
  try {
    // a user id with the characters the markups must escape
    const user = 'user_<!here>&*x*_[l](https://e.test)';
    const alert = await raise(s, user);
    await poll('the four deliveries', () => ['/slack', '/teams', '/ocsf', '/ticket'].every((p) => r.verified(p).length >= 1),
      10000, 20, () => `${s.log}\nreceiver: ${r.describe()}`);
    for (const p of ['/slack', '/teams', '/ocsf', '/ticket']) {
      assert.equal(r.at(p).length, 1, `one POST to ${p}: ${r.describe()}`);
      assertSignedPost(r.at(p)[0], alert.id, p);
    }

    const slack = assertSlackShaped(r.at('/slack')[0].json);
    const [header, section, context] = slack.blocks;
    assert.equal(header.type, 'header');
    assert.equal(header.text.text, 'High alert: rapid');
    assert.equal(slackText(section.text.text), alert.summary);
    const fields = Object.fromEntries(section.fields.map((f) => {
      const m = /^\*([^*]+)\*\n([\s\S]*)$/.exec(f.text);
      assert.ok(m, `a field is *Title*\\nvalue: ${f.text}`);
      return [m[1], slackText(m[2])];
    }));
    assert.deepEqual(fields, { Rule: 'rapid', Severity: 'High', User: user, IP: '198.51.100.7',
      Location: 'Paris, France (FR)' });
    assert.equal(context.type, 'context');
    assert.equal(context.elements[0].text, `\`veille alerts show ${alert.id}\``);
    assert.ok(slack.text.includes('rapid'), slack.text);

    const teams = r.at('/teams')[0].json;
    assert.equal(teams.type, 'message');
    assert.equal(teams.attachments.length, 1);
    const [att] = teams.attachments;
    assert.equal(att.contentType, 'application/vnd.microsoft.card.adaptive');
    assert.equal(att.content.type, 'AdaptiveCard');
    assert.equal(att.content.version, '1.4');
    const facts = att.content.body.find((b) => b.type === 'FactSet').facts;
    const unescape = (v) => v.replace(/\\([\\`*_[\]()~])/g, '$1');
    assert.deepEqual(Object.fromEntries(facts.map((f) => [f.title, unescape(f.value)])), { Rule: 'rapid',
      Severity: 'High', User: user, IP: '198.51.100.7', Location: 'Paris, France (FR)' });
    assert.ok(!facts.find((f) => f.title === 'User').value.includes('[l](https'), 'a link in data is escaped, not a link');
    assert.ok(att.content.body.some((b) => b.type === 'TextBlock' && unescape(b.text) === `veille alerts show ${alert.id}`));

    const ocsf = r.at('/ocsf')[0].json;
    assert.deepEqual([ocsf.class_uid, ocsf.category_uid, ocsf.activity_id, ocsf.type_uid, ocsf.severity_id],
      [2004, 2, 1, 200401, 4]);
    assert.equal(ocsf.finding_info.uid, alert.id);
    assert.equal(ocsf.finding_info.title, 'rapid');
    assert.equal(ocsf.time, Date.parse(alert.raised_at));
    assert.equal(ocsf.finding_info.related_events[0].uid, alert.event_id);
    assert.equal(ocsf.metadata.product.name, 'veille');
    const [ev] = ocsf.evidences;
    assert.deepEqual([ev.class_uid, ev.activity_id, ev.type_uid], [3002, 1, 300201]);
    assert.deepEqual(ev.user, { uid: user });
    assert.deepEqual(ev.src_endpoint, { ip: '198.51.100.7', location: { country: 'FR', city: 'Paris' } });
    assert.equal(ev.http_request.user_agent, 'Mozilla/5.0 (interop)');
    assert.equal(ev.session.uid, alert.session_id);
    assert.equal(ev.time, Date.parse(alert.at));

    const ticket = r.at('/ticket')[0].json;
    assert.ok(ticket, `the template made JSON: ${r.at('/ticket')[0].body}`);
    assert.deepEqual(ticket, { summary: `rapid for ${user}`, description: alert.summary, where: 'Paris, France (FR)',
      ua: 'Mozilla/5.0 (interop)', link: `https://tickets.test/?u=${encodeURIComponent(user).replace(/[!'()*]/g,
        (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())}`, run: `veille alerts show ${alert.id}` });
  } finally {
    await stopVeille(s);
    await r.close();
  }
});

test('--format and --template refusals at start-up: exit 2 with the reason, nothing listens', async () => {
  const port = await freePort();
  const bad = join(tmp, 'bad.tmpl');
  writeFileSync(bad, '{"a": "{{ rule }}",\n "b": "{{ nope }}"}\n');
  for (const [args, want] of [
    [['--alert', hookSpec(port), '--format', 'cef'], /--format: cef is for stdout, file and syslog sinks/],
    [['--alert', 'stdout', '--format', 'slack'], /--format: slack is for webhook sinks, not stdout/],
    [['--alert', 'stdout', '--format', 'xml'], /'xml' is not one of json, ocsf, cef, slack, teams/],
    [['--alert', 'stdout', '--template', bad], new RegExp(`--template: ${bad.replace(/[.]/g, '\\.')}:2:8: unknown placeholder 'nope'`)],
    [['--alert', 'stdout', '--format', 'ocsf', '--format', 'json'], /one per sink/],
  ]) {
    const r = await run(['serve', '--listen', '127.0.0.1:0', '--data', newDataDir(), '--rules', rulesPath, ...args],
      { env: { VEILLE_WEBHOOK_SECRET: SECRET, VEILLE_ALERT_WEBHOOK_SECRET: ALERT_SECRET }, timeout: 5000 });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want);
    assert.doesNotMatch(r.stderr, /msg=listening/);
  }
  // the config file takes the same sink options, after the sink's alert line
  const conf = join(tmp, 'formats.conf');
  writeFileSync(conf, `alert = webhook:http://127.0.0.1:${port}/x\nformat = teams\nalert = stdout\nformat = teams\n`);
  const r = await run(['serve', '--config', conf, '--listen', '127.0.0.1:0', '--data', newDataDir(), '--rules', rulesPath],
    { env: { VEILLE_WEBHOOK_SECRET: SECRET, VEILLE_ALERT_WEBHOOK_SECRET: ALERT_SECRET }, timeout: 5000 });
  assert.equal(r.status, 2, r.stderr);
  assert.ok(r.stderr.includes(`${conf}:4: format: teams is for webhook sinks, not stdout`), r.stderr);
});

test('veille test-alert --format slack posts the Slack blocks of the sample alert', { timeout: 30000 }, async () => {
  const r = await startReceiver({ status: 200 });
  try {
    const t = await run(['test-alert', '--alert', hookSpec(r.port, '/slack'), '--format', 'slack'],
      { env: { VEILLE_ALERT_WEBHOOK_SECRET: ALERT_SECRET }, cwd: tmp });
    assert.equal(t.status, 0, t.stderr);
    assert.match(t.stdout, /^delivered: .*: alert alr_test_\w+ \(slack\) in \d+ ms$/m);
    assert.equal(r.attempts.length, 1, r.describe());
    const msg = assertSlackShaped(r.attempts[0].json);
    assert.match(msg.blocks[0].text.text, /veille_test_alert/);
    assert.ok(r.attempts[0].verified, r.attempts[0].error);
  } finally {
    await r.close();
  }
});
