// Interop: IPs are checked at ingest. Signed deliveries whose IP fields are not
// addresses are still stored (the sign-in counts for its user) with the IP dropped;
// valid ones are stored canonical; each drop is counted in /metrics and logged once
// per delivery id, its value quoted so it cannot forge a log line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'svix';
import { postSigned, RAPID, session, untilApplied, untilListening } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const SECRET = 'whsec_' + randomBytes(32).toString('base64');
const USER = 'user_ipcheck';
let tmp, dataDir, srv;

const cliJson = (...args) => {
  const r = spawnSync(BIN, [...args, '--data', dataDir, '--json'], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
};

// A session.created whose latest_activity.ip_address and http_request.client_ip are given.
function body(sessionId, at, ip, clientIp = '203.0.113.9') {
  return JSON.stringify({ data: session(sessionId, USER, at, ip), object: 'event', type: 'session.created',
    timestamp: at, instance_id: 'ins_interop',
    event_attributes: { http_request: { client_ip: clientIp, user_agent: 'Mozilla/5.0 (interop)' } } });
}

async function post(text, id) {
  const res = await postSigned(Webhook, SECRET, srv.base, id, text);
  const json = await res.json();
  if (res.status === 200) await untilApplied(srv.base); // counted and logged at acknowledgement, read at apply
  return { status: res.status, json };
}

async function metric(sample) {
  const text = await (await fetch(srv.base + '/metrics', { signal: AbortSignal.timeout(5000) })).text();
  const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

const dropLines = () => srv.log.split('\n').filter((l) => l.includes('msg="invalid ip dropped"'));

async function waitForDrops(n) {
  const end = Date.now() + 5000;
  while (dropLines().length < n) {
    if (Date.now() > end) throw new Error(`expected ${n} "invalid ip dropped" lines:\n${srv.log}`);
    await new Promise((ok) => setTimeout(ok, 20));
  }
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'veille-ip-'));
  dataDir = join(tmp, 'data');
  writeFileSync(join(tmp, 'rapid.rules'), RAPID);
  srv = { log: '', base: null };
  srv.proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir, '--rules', join(tmp, 'rapid.rules')],
    { env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET }, stdio: ['ignore', 'ignore', 'pipe'] });
  await untilListening(srv);
});

after(() => {
  if (srv?.proc && srv.proc.exitCode === null) srv.proc.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

const id = (n) => `msg_ip_${process.pid}_${n}`;
const t0 = Date.now() - 120000;
// [svix-id, session, ip_address sent, client_ip sent, ip stored]
const CASES = [
  [id(1), 'sess_ip_garbage', 'not-an-ip', '203.0.113.9', ''],
  [id(2), 'sess_ip_path', '../../etc/passwd', '203.0.113.9', ''],
  [id(3), 'sess_ip_newline', '1.2.3.4\n5.6.7.8', '203.0.113.9', ''],
  [id(4), 'sess_ip_mapped', '::ffff:10.1.2.3', '203.0.113.9', '10.1.2.3'],
  [id(5), 'sess_ip_upper', '2001:DB8::1', '203.0.113.9', '2001:db8::1'],
  [id(6), 'sess_ip_client', '198.51.100.7', 'not-a-client-ip', '198.51.100.7'],
];

test('deliveries with invalid IPs are stored, the IPs dropped or made canonical, counted and logged once', async () => {
  for (const [i, [sid, sess, ip, clientIp]] of CASES.entries()) {
    const r = await post(body(sess, t0 + i * 1000, ip, clientIp), sid);
    assert.equal(r.status, 200, `${sess}: ${JSON.stringify(r.json)}`);
    assert.deepEqual(r.json, { status: 'accepted' }, sess);
  }

  // the history shows every sign-in, with the canonical IP or none
  const history = cliJson('history', USER);
  assert.equal(history.length, CASES.length, JSON.stringify(history));
  for (const [, sess, , , stored] of CASES)
    assert.equal(history.find((e) => e.session_id === sess)?.ip, stored, sess);
  // the IP index is keyed by the canonical form
  assert.deepEqual(cliJson('history', '--ip', '10.1.2.3').map((e) => e.session_id), ['sess_ip_mapped']);
  assert.deepEqual(cliJson('history', '--ip', '2001:db8::1').map((e) => e.session_id), ['sess_ip_upper']);

  // the events still count for the user: the 6th sign-in in 10 minutes raises the alert
  const alerts = cliJson('alerts', '--user', USER);
  assert.equal(alerts.length, 1, JSON.stringify(alerts));
  assert.equal(alerts[0].event_id, id(6));

  assert.equal(await metric('veille_invalid_ip_total{field="data.latest_activity.ip_address"}'), 3);
  assert.equal(await metric('veille_invalid_ip_total{field="event_attributes.http_request.client_ip"}'), 1);

  await waitForDrops(4);
  const lines = dropLines();
  assert.equal(lines.length, 4, lines.join('\n'));
  const lineOf = (n) => lines.filter((l) => l.includes(` id=${id(n)} `));
  assert.match(lineOf(1)[0], /level=warn .* type=session\.created data\.latest_activity\.ip_address=not-an-ip$/);
  assert.match(lineOf(2)[0], / data\.latest_activity\.ip_address=\.\.\/\.\.\/etc\/passwd$/);
  // the newline is shown as a visible \n inside the quoted field: one line, and the value is not disguised
  assert.match(lineOf(3)[0], / data\.latest_activity\.ip_address="1\.2\.3\.4\\n5\.6\.7\.8"$/);
  assert.match(lineOf(6)[0], / event_attributes\.http_request\.client_ip=not-a-client-ip$/);
  assert.equal(lineOf(4).length + lineOf(5).length, 0, 'valid IPs are not logged');
  for (const l of srv.log.split('\n').filter(Boolean)) assert.match(l, /^ts=\S+ level=/, 'no forged log line');
});

test('a Svix retry of a delivery with an invalid IP is a duplicate: not counted or logged again', async () => {
  const [sid, sess, ip] = CASES[0];
  const r = await post(body(sess, t0, ip), sid);
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { status: 'duplicate' });
  // a later delivery that does log, so the retry's line (if any) would be in by then
  const later = await post(body('sess_ip_later', t0 + 10000, 'still-not-an-ip'), id(7));
  assert.deepEqual(later.json, { status: 'accepted' });
  await waitForDrops(5);
  assert.equal(dropLines().filter((l) => l.includes(` id=${sid} `)).length, 1, srv.log);
  assert.equal(await metric('veille_invalid_ip_total{field="data.latest_activity.ip_address"}'), 4);
});

test('replay keeps an event whose IP is not an address and warns with FILE:LINE', () => {
  const file = join(tmp, 'events.ndjson');
  writeFileSync(file, [body('sess_replay_bad', t0, '1.2.3.4\n5.6.7.8'), body('sess_replay_ok', t0 + 1000, '::FFFF:10.9.8.7')]
    .join('\n') + '\n');
  const r = spawnSync(BIN, ['replay', '--rules', join(tmp, 'rapid.rules'), '--data', join(tmp, 'replayed'), file],
    { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stderr.includes(`${file}:1: warning: data.latest_activity.ip_address is not an IP address, ` +
    'dropped: "1.2.3.4\\n5.6.7.8"\n'), r.stderr);
  assert.doesNotMatch(r.stderr, /:2: warning/);
  assert.match(r.stderr, /replay: 2 events: 2 stored, 0 duplicates, 0 ignored, 0 rejected;/);
  const h = spawnSync(BIN, ['history', USER, '--data', join(tmp, 'replayed'), '--json'], { encoding: 'utf8' });
  assert.equal(h.status, 0, h.stderr);
  assert.deepEqual(h.stdout.trim().split('\n').map((l) => JSON.parse(l).ip), ['', '10.9.8.7']);
});
