// Interop: one incident per attack. An IP spraying 15 accounts (15 new_country,
// 15 impossible_travel, 1 ip_many_users with the shipped catalog) is one
// incident: every stored alert names it, `veille incidents` lists it once,
// `veille incidents show ID` lists the 15 accounts the IP touched, the by-ip
// alert lists its accounts, and a file sink receives the first alert and an
// incident update, not 31 alerts. Deliveries are signed by the official `svix` library.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'svix';
import { envelope, postSigned, session, untilApplied, untilListening } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const SECRET = 'whsec_' + randomBytes(32).toString('base64');
const SPRAY_IP = '203.0.113.50';
const USERS = Array.from({ length: 15 }, (_, i) => `user_spray${String(i).padStart(2, '0')}`);

let tmp, dataDir, alertPath, srv;
const cli = (...args) => spawnSync(BIN, [...args, '--data', dataDir], { cwd: ROOT, encoding: 'utf8', timeout: 10000 });
const cliJson = (...args) => {
  const r = cli(...args, '--json');
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
};

let seq = 0;
async function deliver(body) {
  const id = `msg_incidents_${process.pid}_${++seq}`;
  const res = await postSigned(Webhook, SECRET, srv.base, id, body);
  assert.equal(res.status, 200, await res.text());
  await untilApplied(srv.base); // serve answers once the log holds it; the apply follows
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'veille-incidents-'));
  dataDir = join(tmp, 'data');
  alertPath = join(tmp, 'alerts.ndjson');
  srv = { log: '', base: null };
  srv.proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir, '--rules', 'rules/default.rules',
    '--ip-db', 'none', '--alert', 'file:' + alertPath, '--alert', 'file:' + alertPath + '.ocsf', '--format', 'ocsf',
    '--alert', 'file:' + alertPath + '.cef', '--format', 'cef'],
    { cwd: ROOT, env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET }, stdio: ['ignore', 'ignore', 'pipe'] });
  await untilListening(srv);
  // each account signed in from home in Paris an hour before; then the spray
  // from one US IP, an account every 40 s (9 min 20 s of event time)
  const t0 = Date.now() - 30 * 60000;
  for (const [i, u] of USERS.entries()) {
    const at = t0 - 3600000 + i * 1000;
    await deliver(envelope('session.created', session(`sess_home_${i}`, u, at, `192.0.2.${10 + i}`, 'FR', 'Paris'), at));
  }
  for (const [i, u] of USERS.entries()) {
    const at = t0 + i * 40000;
    await deliver(envelope('session.created', session(`sess_spray_${i}`, u, at, SPRAY_IP, 'US', 'Ashburn'), at));
  }
});

after(() => {
  srv?.proc.kill('SIGTERM');
  rmSync(tmp, { recursive: true, force: true });
});

test('the spray is one incident, and every alert names it', () => {
  const alerts = cliJson('alerts');
  assert.equal(alerts.length, 31, alerts.map((a) => a.rule).join(' '));
  const incidents = cliJson('incidents');
  assert.equal(incidents.length, 1, JSON.stringify(incidents));
  const inc = incidents[0];
  assert.match(inc.id, /^inc_[0-9a-f]{20}$/);
  assert.ok(alerts.every((a) => a.incident_id === inc.id));
  assert.equal(inc.count, 31);
  assert.equal(inc.users_total, 15);
  assert.deepEqual(inc.ips, [SPRAY_IP]);
  assert.equal(inc.severity, 'high');
  assert.deepEqual([...inc.rules].sort(), ['impossible_travel', 'ip_many_users', 'new_country']);
  assert.equal(cliJson('incidents', '--open').length, 1, 'its last alert is 20 minutes old');
});

test('the by-ip alert lists the accounts it counted', () => {
  const byIp = cliJson('alerts').filter((a) => a.rule === 'ip_many_users');
  assert.equal(byIp.length, 1);
  assert.equal(byIp[0].users_total, 10);
  assert.deepEqual(byIp[0].users, USERS.slice(0, 10));
});

test('incidents show lists every account the IP touched', () => {
  const [inc] = cliJson('incidents');
  const [shown] = cliJson('incidents', 'show', inc.id);
  assert.deepEqual(shown.accounts_by_ip[SPRAY_IP], USERS);
  const text = cli('incidents', 'show', inc.id);
  assert.equal(text.status, 0, text.stderr);
  for (const u of USERS) assert.match(text.stdout, new RegExp(`^    ${u}$`, 'm'));
  assert.match(text.stdout, /\(15 accounts\)/);
  const missing = cli('incidents', 'show', 'inc_nope');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /no incident 'inc_nope'/);
});

test('the file sink gets the first alert and an incident update, not 31 alerts', () => {
  const lines = (existsSync(alertPath) ? readFileSync(alertPath, 'utf8') : '').split('\n').filter(Boolean)
    .map((l) => JSON.parse(l));
  const [inc] = cliJson('incidents');
  assert.equal(lines.length, 2, JSON.stringify(lines, null, 1));
  assert.equal(lines[0].rule, 'new_country');
  assert.equal(lines[0].user_id, USERS[0]);
  assert.equal(lines[0].incident_id, inc.id);
  // 5 minutes of event time after the first alert: the 9th account (320 s)
  const u = lines[1];
  assert.equal(u.type, 'incident_update');
  assert.equal(u.incident_id, inc.id);
  assert.equal(u.first_at, inc.first_at);
  assert.equal(u.count, 17, 'new_country and impossible_travel of 8 accounts, then the 9th new_country');
  assert.equal(u.users_total, 9);
  assert.deepEqual(u.users, USERS.slice(0, 9));
  assert.deepEqual(u.ips, [SPRAY_IP]);
  assert.equal(u.severity, 'high');
  // the updates are for the sinks: veille alerts lists only alerts
  assert.ok(cliJson('alerts').every((a) => a.rule !== 'incident_update'));
});

test('formats: OCSF sends the update as an Update of the incident\'s finding; CEF sends its json', () => {
  const read = (p) => readFileSync(p, 'utf8').split('\n').filter(Boolean);
  const [inc] = cliJson('incidents');
  const ocsf = read(alertPath + '.ocsf').map((l) => JSON.parse(l));
  assert.equal(ocsf.length, 2);
  assert.equal(ocsf[0].activity_id, 1);
  assert.equal(ocsf[0].unmapped.incident_id, inc.id);
  assert.equal(ocsf[1].activity_id, 2);
  assert.equal(ocsf[1].activity_name, 'Update');
  assert.equal(ocsf[1].type_uid, 200402);
  assert.equal(ocsf[1].finding_info.uid, inc.id);
  const cef = read(alertPath + '.cef');
  assert.equal(cef.length, 2);
  assert.match(cef[0], /^CEF:0\|/);
  assert.equal(JSON.parse(cef[1]).type, 'incident_update');
});
