// risk() and Clerk's lockout state end to end through `veille replay`:
// the score is low at home and high from another country, IP and browser,
// missing below --risk-min-history; --explain shows each feature's value,
// p, p|u and factor. `user.locked and not user.was_locked` fires once per
// lockout, with the request's client_ip as the alert's IP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { session } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const run = (args) => spawnSync(BIN, args, { cwd: ROOT, encoding: 'utf8', timeout: 30000 });

const RULES = `rule risky_sign_in {
  severity medium
  on       session.created
  when     risk() > 1
}
rule scored {
  severity info
  on       session.created
  when     risk() >= 0
}
rule account_locked {
  severity medium
  on       user.updated
  when     user.locked and not user.was_locked
}
`;
const UA = {
  chrome: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
  firefox: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0',
};
const T0 = Date.parse('2026-06-01T08:00:00Z');
const DAY = 86400000;

function signIn(id, user, at, ip, country, ua) {
  const data = session(id, user, at, ip, country, '');
  return JSON.stringify({ data, object: 'event', type: 'session.created', timestamp: at, instance_id: 'ins_risk',
    event_attributes: { http_request: { client_ip: ip, user_agent: ua } } });
}

function userEvent(type, at, locked) {
  const data = { id: 'user_lk', object: 'user', created_at: T0 - DAY, updated_at: at, email_addresses: [],
    primary_email_address_id: null, first_name: 'L', last_name: null, username: 'lk', external_id: null,
    last_sign_in_at: null, banned: false, locked, lockout_expires_in_seconds: locked ? 1800 : null };
  return JSON.stringify({ data, object: 'event', type, timestamp: at, instance_id: 'ins_risk',
    event_attributes: { http_request: { client_ip: '203.0.113.66', user_agent: 'Clerk' } } });
}

let dir, replay, alerts;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'veille-risk-'));
  writeFileSync(join(dir, 'risk.rules'), RULES);
  const lines = [];
  // ten users at home in DE with Firefox, and user_risk in FR with Chrome, daily
  for (let k = 0; k < 6; k++) {
    for (let u = 0; u < 10; u++)
      lines.push(signIn(`sess_bg${u}_${k}`, `user_bg${u}`, T0 + k * DAY + u * 60000, `198.51.100.${u + 1}`, 'DE',
        UA.firefox));
    lines.push(signIn(`sess_home_${k}`, 'user_risk', T0 + k * DAY + 3600000, '203.0.113.7', 'FR', UA.chrome));
  }
  lines.push(signIn('sess_away', 'user_risk', T0 + 6 * DAY, '198.51.100.250', 'DE', UA.firefox));
  // Clerk's lockout: locked, still locked, unlocked, locked again
  lines.push(userEvent('user.created', T0, false));
  lines.push(userEvent('user.updated', T0 + 1000, false));
  lines.push(userEvent('user.updated', T0 + 2000, true));
  lines.push(userEvent('user.updated', T0 + 3000, true));
  lines.push(userEvent('user.updated', T0 + 4000, false));
  lines.push(userEvent('user.updated', T0 + 5000, true));
  writeFileSync(join(dir, 'events.ndjson'), lines.join('\n') + '\n');
  replay = run(['replay', '--rules', join(dir, 'risk.rules'), '--ip-db', 'none', '--explain',
    join(dir, 'events.ndjson')]);
  alerts = replay.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('replay with risk() runs clean', () => {
  assert.equal(replay.status, 0, replay.stderr);
});

test('risk(): only the sign-in from another country, IP and browser is risky', () => {
  const got = alerts.filter((a) => a.rule === 'risky_sign_in').map((a) => a.session_id);
  assert.deepEqual(got, ['sess_away']);
  const ev = alerts.find((a) => a.rule === 'risky_sign_in').evidence;
  assert.ok(ev['risk()'] > 1, JSON.stringify(ev));
  assert.match(ev['risk.ip'], /^198\.51\.100\.250 \(DE\): p [0-9.e-]+, p\|u [0-9.e-]+, factor [0-9.e+-]+$/);
  assert.match(ev['risk.user_agent'], /^Firefox 121 \(Windows 10\): p /);
});

test('--explain shows each feature\'s contribution, and missing below 5 sign-ins', () => {
  // `risk() >= 0` holds for every sign-in with a score: the first five have none
  const lines = replay.stderr.split('\n').filter((l) => l.includes(': scored user:user_risk'));
  assert.equal(lines.length, 2, replay.stderr);
  assert.deepEqual(alerts.filter((a) => a.rule === 'scored' && a.user_id === 'user_risk').map((a) => a.session_id),
    ['sess_home_5', 'sess_away']);
  const home = /risk\(\) = ([0-9.e-]+), risk\.ip = 203\.0\.113\.7 \(FR\): p [0-9.e-]+, p\|u [0-9.e-]+, factor [0-9.e-]+, risk\.user_agent = Chrome 120 \(Windows 10\): p /;
  assert.match(lines[0], home);
  assert.ok(Number(lines[0].match(home)[1]) < 0.1, lines[0]);
  assert.match(lines[1], /risk\.ip = 198\.51\.100\.250 \(DE\): p .*risk\.user_agent = Firefox 121/);
});

test('--risk-min-history: with 7 earlier sign-ins needed, nobody has a score yet', () => {
  const r = run(['replay', '--rules', join(dir, 'risk.rules'), '--ip-db', 'none', '--risk-min-history', '7',
    join(dir, 'events.ndjson')]);
  assert.equal(r.status, 0, r.stderr);
  const got = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((a) => a.rule === 'risky_sign_in');
  assert.deepEqual(got, []);
  const bad = run(['replay', '--risk-min-history', '0', join(dir, 'events.ndjson')]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--risk-min-history: '0' is not a positive whole number/);
});

test('user.locked and not user.was_locked fires once per lockout, from the request\'s client_ip', () => {
  const got = alerts.filter((a) => a.rule === 'account_locked');
  assert.equal(got.length, 2, JSON.stringify(got));
  assert.deepEqual(got.map((a) => a.at), [T0 + 2000, T0 + 5000].map((t) => new Date(t).toISOString()));
  for (const a of got) assert.equal(a.ip, '203.0.113.66');
});
