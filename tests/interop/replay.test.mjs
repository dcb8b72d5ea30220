// `veille replay` over a labeled two-day stream (tests/replay/labeled.ndjson, written
// by tests/replay/gen-labeled.mjs): the shipped catalog must raise exactly the
// alerts of tests/replay/labeled.expected, and nothing for the benign users and IPs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { generate } from '../replay/gen-labeled.mjs';
import * as PAYLOADS from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const EVENTS = 'tests/replay/labeled.ndjson';
const EXPECTED = 'tests/replay/labeled.expected';
const RULES = 'rules/default.rules';
// generous for the ASan build; the normal one takes milliseconds
const run = (args, opts = {}) => spawnSync(BIN, args, { cwd: ROOT, encoding: 'utf8', timeout: 15000, ...opts });

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const ruleNames = [...readFileSync(join(ROOT, RULES), 'utf8').matchAll(/^rule\s+(\w+)\s*\{/gm)].map((m) => m[1]);
const expectedLines = readFileSync(join(ROOT, EXPECTED), 'utf8').split('\n').filter(Boolean);
const eventLines = readFileSync(join(ROOT, EVENTS), 'utf8').split('\n').filter(Boolean);
const events = eventLines.map((l) => JSON.parse(l));
const { benignUsers, benignIps } = generate();

const jsonLines = (s) => s.split('\n').filter(Boolean).map((l) => JSON.parse(l));
const asLine = (a) => `${a.rule} ${a.key} ${a.session_id} ${a.suppressed}`;
// the per-rule table on stderr: NAME EVALUATED MATCHED ALERTS SUPPRESSED ALLOWED
function summaryTable(stderr) {
  const lines = stderr.split('\n');
  const h = lines.findIndex((l) => /^RULE\s+EVALUATED\s+MATCHED\s+ALERTS\s+SUPPRESSED\s+ALLOWED$/.test(l));
  assert.ok(h >= 0, stderr);
  const rows = new Map();
  for (const l of lines.slice(h + 1)) {
    const m = l.match(/^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/);
    if (m) rows.set(m[1], { evaluated: +m[2], matched: +m[3], alerts: +m[4], suppressed: +m[5] });
  }
  return rows;
}

let dir, data, first, stored;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'veille-replay-'));
  data = join(dir, 'data');
  first = run(['replay', '--rules', RULES, '--data', data, EVENTS]);
  const r = run(['alerts', '--json', '--data', data]);
  assert.equal(r.status, 0, r.stderr);
  stored = jsonLines(r.stdout);
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('the generator reproduces the committed stream and expected alerts byte for byte', () => {
  const out = join(dir, 'gen');
  const r = spawnSync(process.execPath, ['tests/replay/gen-labeled.mjs', '--out', out],
    { cwd: ROOT, encoding: 'utf8', timeout: 15000 });
  assert.equal(r.status, 0, r.stderr);
  for (const f of ['labeled.ndjson', 'labeled.expected'])
    assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(ROOT, 'tests/replay', f))),
      `tests/replay/${f} is stale: run node tests/replay/gen-labeled.mjs`);
  assert.ok(events.length >= 200, `${events.length} events`);
  assert.equal(new Set(eventLines).size, eventLines.length, 'every line is a distinct delivery');
});

test('replay raises exactly the labeled alerts, with their final suppressed counts', () => {
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stderr,
    new RegExp(`^replay: ${events.length} events: ${events.length} stored, 0 duplicates, 0 ignored, 0 rejected; ` +
      `${expectedLines.length} alerts$`, 'm'));
  const raised = jsonLines(first.stdout);
  // as raised, nothing has been folded in yet
  assert.deepEqual(raised.map(asLine).sort(), expectedLines.map((l) => l.replace(/ \d+$/, ' 0')).sort());
  assert.deepEqual(stored.map(asLine).sort(), expectedLines);
  assert.deepEqual(stored.map((a) => a.id).sort(), raised.map((a) => a.id).sort());
});

test('every alert line has the required fields, typed, at the event time of its session', () => {
  const created = new Map(events.filter((e) => e.type === 'session.created').map((e) => [e.data.id, e.data]));
  const raised = jsonLines(first.stdout);
  assert.ok(raised.length > 0);
  for (const a of [...raised, ...stored]) {
    const what = JSON.stringify(a);
    for (const f of ['id', 'rule', 'severity', 'key', 'user_id', 'ip', 'session_id', 'event_id', 'event_type',
      'at', 'summary'])
      assert.equal(typeof a[f], 'string', `${f} in ${what}`);
    assert.match(a.id, /^alr_[0-9a-f]+$/);
    assert.ok(ruleNames.includes(a.rule), what);
    assert.ok(['low', 'medium', 'high', 'critical'].includes(a.severity), what);
    assert.match(a.at, RFC3339, what);
    assert.ok(a.summary.length > 0, what);
    assert.ok(a.evidence !== null && typeof a.evidence === 'object' && !Array.isArray(a.evidence), what);
    assert.ok(Array.isArray(a.tags) && a.tags.length > 0 && a.tags.every((t) => typeof t === 'string'), what);
    assert.ok(Number.isInteger(a.suppressed) && a.suppressed >= 0, what);
    assert.equal(a.event_type, 'session.created', what);
    assert.equal(a.key, a.rule === 'ip_many_users' ? `ip:${a.ip}` : `user:${a.user_id}`, what);
    const s = created.get(a.session_id);
    assert.ok(s, `no session.created for ${a.session_id}`);
    assert.equal(a.user_id, s.user_id, what);
    assert.equal(a.ip, s.latest_activity.ip_address, what);
    assert.equal(Date.parse(a.at), s.created_at, `${a.rule} ${a.session_id}: at ${a.at}`);
  }
});

test('no alert mentions a benign user or IP', () => {
  assert.ok(benignUsers.length >= 20 && benignIps.length >= 20);
  const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const words = [...benignUsers, ...benignIps].map((w) => [w, new RegExp(`(?<![\\w.:])${esc(w)}(?![\\w:]|\\.\\d)`)]);
  for (const a of [...jsonLines(first.stdout), ...stored]) {
    assert.ok(!benignUsers.includes(a.user_id) && !benignIps.includes(a.ip), JSON.stringify(a));
    const text = JSON.stringify(a);
    for (const [w, re] of words) assert.doesNotMatch(text, re, `${w} in ${text}`);
  }
});

test('out-of-order delivery: each event is judged at its own time', () => {
  const order = events.filter((e) => e.data.user_id === 'user_ooo').map((e) => e.data.id);
  assert.ok(order.indexOf('sess_ooo_08') < order.indexOf('sess_ooo_01'), 'the stream delivers the latest first');
  const ooo = stored.filter((a) => a.key === 'user:user_ooo');
  assert.equal(ooo.length, 1, JSON.stringify(ooo));
  assert.equal(ooo[0].session_id, 'sess_ooo_06');
  assert.equal(ooo[0].at, '2024-06-04T20:05:00.000Z');
  assert.equal(ooo[0].evidence['count(session.created, 10m)'], 6);
});

test('the stderr summary lists all 14 rules with their alert and suppressed counts', () => {
  assert.equal(ruleNames.length, 14);
  const rows = summaryTable(first.stderr);
  assert.deepEqual([...rows.keys()], ruleNames);
  const sessionCreated = events.filter((e) => e.type === 'session.created').length;
  // the lockout rules are `on user.updated`; ip_lockouts (by ip) skips an update without client_ip
  const updates = events.filter((e) => e.type === 'user.updated');
  const evaluated = { account_locked: updates.length,
    ip_lockouts: updates.filter((e) => e.event_attributes?.http_request?.client_ip).length };
  for (const name of ruleNames) {
    const mine = expectedLines.filter((l) => l.startsWith(name + ' '));
    const row = rows.get(name);
    assert.equal(row.alerts, mine.length, name);
    assert.equal(row.suppressed, mine.reduce((n, l) => n + Number(l.split(' ')[3]), 0), name);
    assert.equal(row.matched, row.alerts + row.suppressed, name);
    // the others are `on session.created` (session_after_delete and drop_listed_ip also
    // on pending: none here)
    assert.equal(row.evaluated, evaluated[name] ?? sessionCreated, name);
  }
});

test('--explain shows the 5-sign-ins-in-10-minutes user as a near miss, not an alert', () => {
  const r = run(['replay', '--rules', RULES, '--explain', EVENTS]);
  assert.equal(r.status, 0, r.stderr);
  const near = [...r.stderr.matchAll(/^explain: line (\d+): rapid_logins user:user_five -> near miss: (.*)$/gm)];
  assert.ok(near.length >= 1, r.stderr);
  assert.ok(near.some((m) => /count\(session\.created, 10m\) = 5\b/.test(m[2])), near.map((m) => m[0]).join('\n'));
  for (const m of near) {
    const e = events[Number(m[1]) - 1]; // no blank lines: line N is events[N - 1]
    assert.equal(e.type, 'session.created');
    assert.equal(e.data.user_id, 'user_five');
  }
  assert.doesNotMatch(r.stderr, /user:user_five -> (alert|suppressed)/);
  const raised = jsonLines(r.stdout);
  assert.deepEqual(raised.map((a) => asLine(a)).sort(), expectedLines.map((l) => l.replace(/ \d+$/, ' 0')).sort());
  // each fold-in names the open alert of its rule and key, as often as the final count says
  const folds = [...r.stderr.matchAll(/^explain: line \d+: (\S+) (\S+) -> suppressed into (\S+):/gm)];
  const byId = new Map(raised.map((a) => [a.id, a]));
  for (const [line, rule, key, id] of folds) {
    const a = byId.get(id);
    assert.ok(a && a.rule === rule && a.key === key, line);
  }
  for (const l of expectedLines) {
    const [rule, key, , n] = l.split(' ');
    assert.equal(folds.filter((m) => m[1] === rule && m[2] === key).length, Number(n), l);
  }
});

test('replaying the same file into the same store again is all duplicates and raises nothing', () => {
  const r = run(['replay', '--rules', RULES, '--data', data, EVENTS]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr,
    new RegExp(`^replay: ${events.length} events: 0 stored, ${events.length} duplicates, 0 ignored, 0 rejected; ` +
      '0 alerts$', 'm'));
  const again = run(['alerts', '--json', '--data', data]);
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(jsonLines(again.stdout), stored);
});

test('a malformed line is reported as FILE:LINE, exits 2, and the other lines still count', () => {
  const brute = eventLines.filter((l) => JSON.parse(l).data.user_id === 'user_brute');
  assert.equal(brute.length, 10);
  const f = join(dir, 'one-bad.ndjson');
  writeFileSync(f, [...brute.slice(0, 3), '{"data":{"id":"sess_x"', ...brute.slice(3)].join('\n') + '\n');
  const r = run(['replay', '--rules', RULES, f]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4: error: `, 'm'));
  assert.match(r.stderr, /^replay: 11 events: 10 stored, 0 duplicates, 0 ignored, 1 rejected; 1 alerts$/m);
  assert.deepEqual(jsonLines(r.stdout).map(asLine), ['rapid_logins user:user_brute sess_brute_06 0']);
});

test('--explain prints a hostile key with visible escapes, never the raw control bytes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'veille-explain-'));
  try {
    const { envelope, session, RAPID } = PAYLOADS;
    const user = 'user_\x1b]0;pwned\x07\x1b[2J';
    const t0 = Date.parse('2026-01-05T09:00:00Z');
    const lines = [];
    for (let i = 0; i < 6; i++)
      lines.push(envelope('session.created', session(`sess_x${i}`, user, t0 + i * 1000), t0 + i * 1000));
    writeFileSync(join(dir, 'events.ndjson'), lines.join('\n') + '\n');
    writeFileSync(join(dir, 'rapid.rules'), RAPID);
    const r = run(['replay', '--rules', join(dir, 'rapid.rules'), '--explain', join(dir, 'events.ndjson')]);
    assert.equal(r.status, 0, r.stderr);
    const explain = r.stderr.split('\n').filter((l) => l.startsWith('explain:'));
    assert.ok(explain.length >= 1, r.stderr);
    for (const l of explain) assert.doesNotMatch(l, /[\x00-\x08\x0b-\x1f\x7f]/, JSON.stringify(l));
    assert.ok(explain.some((l) => l.includes('rapid user:user_\\x1b]0;pwned\\x07\\x1b[2J -> alert')), explain.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
