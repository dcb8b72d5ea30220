// Interop: rules evaluated inside the apply's transaction, alerts written to the
// stdout and file sinks before it commits, suppression, SIGHUP reloads, the
// `veille alerts` reader, the rule metrics, and the --alert start-up refusals.
// Deliveries are signed by the official `svix` library, as in veille.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'svix';
import { RAPID, envelope, session, untilApplied, untilListening } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const SECRET = 'whsec_' + randomBytes(32).toString('base64');

// four errors; line 3, column 12 is the bad severity
const BROKEN = `# a typo in the severity, and three more errors
rule broken {
  severity urgent
  on       session.nope
  when     bogus(1) > 1
  suppress 5parsecs
}
`;
const TWO = `rule two {
  severity medium
  on       session.created
  when     count(session.created, 10m) > 1
  suppress 30m
  tags     "second"
}
`;

let tmp, dataDir, rulesPath, alertPath, srv;

// ---- helpers (the same shapes as veille.test.mjs) ----

const cli = (...args) => spawnSync(BIN, [...args, '--data', dataDir], { cwd: ROOT, encoding: 'utf8', timeout: 10000 });
const cliJson = (...args) => {
  const r = cli(...args, '--json');
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
};

let seq = 0;
const newId = () => `msg_alerts_${process.pid}_${++seq}`;


// Sign with the official library exactly as Svix does, at the current time.
async function deliver(body, id = newId()) {
  const when = new Date();
  const headers = { 'content-type': 'application/json', 'svix-id': id,
    'svix-timestamp': String(Math.floor(when.getTime() / 1000)),
    'svix-signature': new Webhook(SECRET).sign(id, when, body) };
  const res = await fetch(srv.base + '/webhooks/clerk', { method: 'POST', headers, body,
    signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* asserted by callers */ }
  // "accepted" is durable in the log; the alert is raised when the apply follows
  if (res.status === 200) await untilApplied(srv.base);
  return { id, status: res.status, json, text };
}

// n session.created for one user, one every 10 s of event time, the first 4 min ago
// (event times may be in the past; the signature timestamp is now). Returns the
// svix-ids and event times in delivery order; `each(i)` runs after delivery i (1-based).
async function burst(userId, n, ip, each = () => {}) {
  const t0 = Date.now() - 240000;
  const sent = [];
  for (let i = 1; i <= n; i++) {
    const at = t0 + (i - 1) * 10000;
    const r = await deliver(envelope('session.created', session(`sess_${userId}_${i}`, userId, at, ip)));
    assert.equal(r.status, 200, `delivery ${i} for ${userId}: ${r.text}`);
    assert.deepEqual(r.json, { status: 'accepted' });
    sent.push({ id: r.id, at, session: `sess_${userId}_${i}` });
    each(i, sent);
  }
  return sent;
}

const fileLines = () => (existsSync(alertPath) ? readFileSync(alertPath, 'utf8') : '')
  .split('\n').filter(Boolean).map((l) => JSON.parse(l));

async function metrics() {
  const res = await fetch(srv.base + '/metrics', { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  return res.text();
}

// The value of one sample, e.g. metric(text, 'veille_rule_alerts_total{rule="rapid"}'); undefined if absent.
function metric(text, sample) {
  const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

async function waitFor(what, cond, ms = 5000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n--- stderr:\n${srv.log}`);
    await new Promise((ok) => setTimeout(ok, 20));
  }
}

function startServer(args) {
  const s = { log: '', out: '', base: null };
  s.proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir, ...args],
    { cwd: ROOT, env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET }, stdio: ['ignore', 'pipe', 'pipe'] });
  s.proc.stdout.on('data', (d) => { s.out += d; });
  return untilListening(s);
}

const stdoutLines = () => srv.out.split('\n').filter(Boolean).map((l) => JSON.parse(l));

// SIGHUP, then wait for the log line that says how it went (counted from now on).
async function reload(expect) {
  const from = srv.log.length;
  srv.proc.kill('SIGHUP');
  await waitFor(`"${expect}" in the log`, () => srv.log.slice(from).includes(expect));
  // the refusal is logged as several lines: give the last one time to arrive
  if (expect.includes('refused')) await waitFor('end of the refusal', () => /stay in force[^\n]*\n/.test(srv.log.slice(from)));
  return srv.log.slice(from);
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'veille-alerts-'));
  dataDir = join(tmp, 'data');
  rulesPath = join(tmp, 'test.rules');
  alertPath = join(tmp, 'alerts.ndjson');
  writeFileSync(rulesPath, RAPID);
  srv = await startServer(['--rules', rulesPath, '--alert', 'stdout', '--alert', `file:${alertPath}`]);
});

after(() => {
  if (srv && srv.proc.exitCode === null && srv.proc.signalCode === null) srv.proc.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

// ---- (1) a brute-force burst ----

test('a burst of 7 sign-ins raises one alert, on disk once the 6th delivery is applied, then suppresses', async () => {
  assert.match(srv.log, /msg="rules loaded"[^\n]*count=1/);
  const before6 = [];
  const sent = await burst('user_brute', 7, '198.51.100.7', (i) => {
    // read synchronously once applied: the file sink is fsync'd before the apply commits
    const lines = fileLines();
    if (i <= 5) assert.equal(lines.length, 0, `no alert after ${i} sign-ins: ${JSON.stringify(lines)}`);
    else assert.equal(lines.length, 1, `exactly one alert line after delivery ${i}`);
    if (i === 6) before6.push(...lines);
  });

  const [a] = before6;
  assert.equal(a.rule, 'rapid');
  assert.equal(a.severity, 'high');
  assert.equal(a.key, 'user:user_brute');
  assert.equal(a.user_id, 'user_brute');
  assert.equal(a.ip, '198.51.100.7');
  assert.equal(a.session_id, sent[5].session);
  assert.equal(a.event_id, sent[5].id, 'event_id is the svix-id of the 6th delivery');
  assert.equal(a.event_type, 'session.created');
  assert.equal(a.at, new Date(sent[5].at).toISOString(), 'at is the event time');
  assert.ok(Math.abs(Date.parse(a.raised_at) - Date.now()) < 60000, `raised_at near now: ${a.raised_at}`);
  assert.equal(typeof a.summary, 'string');
  assert.match(a.summary, /user_brute/);
  assert.equal(typeof a.evidence, 'object');
  assert.ok(a.evidence !== null && !Array.isArray(a.evidence), JSON.stringify(a.evidence));
  assert.ok('count(session.created, 10m)' in a.evidence, JSON.stringify(a.evidence));
  assert.deepEqual(a.tags, ['t']);
  assert.equal(a.suppressed, 0);
  assert.equal(typeof a.id, 'string');
  assert.ok(a.id.length > 0);

  // the 7th changed nothing in the file: folded into the open alert
  assert.deepEqual(fileLines(), [a]);
  // stdout carries the same line (read by this process asynchronously, so wait for it)
  await waitFor('the alert on stdout', () => srv.out.includes('\n'));
  assert.deepEqual(stdoutLines(), [a]);

  const stored = cliJson('alerts');
  assert.equal(stored.length, 1, JSON.stringify(stored));
  assert.equal(stored[0].id, a.id);
  assert.equal(stored[0].event_id, sent[5].id);
  assert.equal(stored[0].suppressed, 1, 'the 7th sign-in is counted on the open alert');

  const m = await metrics();
  assert.equal(metric(m, 'veille_rules_loaded'), 1);
  assert.equal(metric(m, 'veille_rule_evaluations_total{rule="rapid"}'), 7);
  assert.equal(metric(m, 'veille_rule_matches_total{rule="rapid"}'), 2);
  assert.equal(metric(m, 'veille_rule_alerts_total{rule="rapid"}'), 1);
  assert.equal(metric(m, 'veille_rule_suppressed_total{rule="rapid"}'), 1);
  assert.equal(metric(m, 'veille_alerts_total'), 1);
  assert.equal(metric(m, 'veille_rules_reloads_total{result="ok"}'), 0);
  assert.equal(metric(m, 'veille_rules_reloads_total{result="refused"}'), 0);
});

test('a Svix retry of the delivery that raised the alert raises nothing more', async () => {
  const a = fileLines()[0];
  // same svix-id, same body shape: answered "duplicate", not evaluated again
  const body = envelope('session.created', session('sess_user_brute_6', 'user_brute', Date.parse(a.at)));
  const r = await deliver(body, a.event_id);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { status: 'duplicate' });
  assert.equal(fileLines().length, 1);
  assert.equal(cliJson('alerts')[0].suppressed, 1);
  assert.equal(metric(await metrics(), 'veille_rule_evaluations_total{rule="rapid"}'), 7);
});

// ---- (2) SIGHUP reloads ----

test('SIGHUP with a broken rule file is refused with file:line:col and the running rules stay', async () => {
  writeFileSync(rulesPath, BROKEN);
  const log = await reload('rules reload refused');
  // one log line per error, each with its position in the file, then one summary line
  const refused = log.split('\n').filter((l) => l.includes('rules reload refused'));
  const errors = refused.filter((l) => /level=error msg="rules reload refused" error=/.test(l));
  assert.equal(errors.length, 4, `one line per error:\n${refused.join('\n')}`);
  assert.equal(refused.length, 5, `4 errors and the summary:\n${refused.join('\n')}`);
  assert.ok(errors[0].endsWith(`error="${rulesPath}:3:12: unknown severity 'urgent' (use info, low, medium, high or critical)"`),
    errors[0]);
  for (const [i, pos] of ['3:12', '4:12', '5:12', '6:12'].entries())
    assert.ok(errors[i].includes(`error="${rulesPath}:${pos}: `), errors[i]);
  assert.doesNotMatch(log, /\^~/, 'no caret lines in the log');
  assert.match(refused[4], /the running rules stay in force" rules=\S+ errors=4$/);
  assert.doesNotMatch(log, /rules reloaded/);

  // the old rule still runs: a burst for another user alerts
  const sent = await burst('user_second', 6, '198.51.100.8');
  const lines = fileLines();
  assert.equal(lines.length, 2);
  assert.equal(lines[1].rule, 'rapid');
  assert.equal(lines[1].key, 'user:user_second');
  assert.equal(lines[1].event_id, sent[5].id);

  const m = await metrics();
  assert.equal(metric(m, 'veille_rules_reloads_total{result="ok"}'), 0);
  assert.equal(metric(m, 'veille_rules_reloads_total{result="refused"}'), 1);
  assert.equal(metric(m, 'veille_rules_loaded'), 1);
  assert.equal(metric(m, 'veille_rule_alerts_total{rule="rapid"}'), 2);
  assert.equal(metric(m, 'veille_alerts_total'), 2);
});

test('SIGHUP with a valid file replaces the rules: the new rule fires, the old one no longer', async () => {
  writeFileSync(rulesPath, TWO);
  const log = await reload('rules reloaded');
  assert.match(log, /msg="rules reloaded"[^\n]*count=1/);

  // 6 sign-ins: `two` fires on the 2nd and suppresses 3..6; `rapid` would have fired on the 6th
  const sent = await burst('user_third', 6, '198.51.100.9', (i) => {
    assert.equal(fileLines().length, i >= 2 ? 3 : 2, `alert lines after delivery ${i}`);
  });
  const lines = fileLines();
  assert.equal(lines.length, 3, JSON.stringify(lines));
  assert.equal(lines[2].rule, 'two');
  assert.equal(lines[2].severity, 'medium');
  assert.equal(lines[2].key, 'user:user_third');
  assert.equal(lines[2].event_id, sent[1].id, 'raised by the 2nd delivery');
  assert.deepEqual(lines[2].tags, ['second']);
  assert.deepEqual(cliJson('alerts', '--user', 'user_third').map((x) => [x.rule, x.suppressed]), [['two', 4]]);

  await waitFor('3 alerts on stdout', () => srv.out.split('\n').filter(Boolean).length >= 3);
  assert.deepEqual(stdoutLines(), lines);

  const m = await metrics();
  assert.equal(metric(m, 'veille_rules_reloads_total{result="ok"}'), 1);
  assert.equal(metric(m, 'veille_rules_reloads_total{result="refused"}'), 1);
  assert.equal(metric(m, 'veille_rules_loaded'), 1);
  assert.equal(metric(m, 'veille_rule_evaluations_total{rule="two"}'), 6);
  assert.equal(metric(m, 'veille_rule_matches_total{rule="two"}'), 5);
  assert.equal(metric(m, 'veille_rule_alerts_total{rule="two"}'), 1);
  assert.equal(metric(m, 'veille_rule_suppressed_total{rule="two"}'), 4);
  assert.equal(metric(m, 'veille_rule_evaluations_total{rule="rapid"}'), undefined, 'the old rule is gone');
  assert.equal(metric(m, 'veille_alerts_total'), 3);
});

// ---- (4) the reader, while serve runs ----

test('veille alerts filters by rule, user, IP and age; the table has a header', () => {
  // oldest first by event time: two:user_third was raised by a 2nd sign-in (event time
  // t0 + 10 s), the rapid alerts by 6th ones (t0 + 50 s), each burst starting at now - 4 min
  const all = cliJson('alerts');
  assert.deepEqual(all.map((x) => `${x.rule}:${x.user_id}`), ['two:user_third', 'rapid:user_brute', 'rapid:user_second']);
  const byTime = [...fileLines()].sort((x, y) => Date.parse(x.at) - Date.parse(y.at));
  assert.deepEqual(all.map((x) => x.id), byTime.map((x) => x.id));
  assert.deepEqual(cliJson('alerts', '--rule', 'rapid').map((x) => x.user_id), ['user_brute', 'user_second']);
  assert.deepEqual(cliJson('alerts', '--rule', 'two').map((x) => x.user_id), ['user_third']);
  assert.equal(cli('alerts', '--rule', 'nope', '--json').status, 1, 'no such rule: named, not an empty list');
  const brute = cliJson('alerts', '--user', 'user_brute');
  assert.equal(brute.length, 1);
  assert.equal(brute[0].rule, 'rapid');
  assert.equal(brute[0].suppressed, 1);
  assert.deepEqual(cliJson('alerts', '--user', 'user_second', '--rule', 'two'), []);
  assert.deepEqual(cliJson('alerts', '--ip', '198.51.100.8').map((x) => x.user_id), ['user_second']);
  // --since by event time: all are 3 to 4 minutes old
  assert.equal(cliJson('alerts', '--since', '1h').length, 3);
  assert.deepEqual(cliJson('alerts', '--since', '30s'), []);

  const table = cli('alerts');
  assert.equal(table.status, 0, table.stderr);
  const rows = table.stdout.trim().split('\n');
  assert.match(rows[0], /^TIME\s+RULE\s+SEVERITY\s+STATE\s+KEY\s+SUPPRESSED\s+IP\s+ID\s+INSTANCE\s+SUMMARY/);
  assert.equal(rows.length, 4);
  assert.match(rows[2], /rapid\s+high\s+open\s+user:user_brute\s+1\s/);
  assert.match(rows[1], /two\s+medium\s+open\s+user:user_third\s+4\s/);
  const one = cli('alerts', '--rule', 'two');
  assert.equal(one.status, 0);
  assert.equal(one.stdout.trim().split('\n').length, 2);
  assert.match(one.stdout, /^TIME\s+RULE/);

  const bad = cli('alerts', '--since', '10');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /needs a unit/);
  const unknown = cli('alerts', '--bogus');
  assert.equal(unknown.status, 2);
});

test('SIGTERM stops cleanly; the alerts stay readable', async () => {
  const exited = new Promise((ok) => srv.proc.on('exit', (code) => ok(code)));
  srv.proc.kill('SIGTERM');
  assert.equal(await exited, 0, srv.log);
  assert.match(srv.log, /msg=stopped/);
  assert.equal(cliJson('alerts').length, 3);
  assert.equal(fileLines().length, 3);
});

// ---- (3) --alert refusals at start ----

function serveSync(args) {
  const dir = mkdtempSync(join(tmpdir(), 'veille-alert-start-'));
  try {
    return spawnSync(BIN, ['serve', '--data', join(dir, 'data'), '--listen', '127.0.0.1:0', ...args],
      { cwd: ROOT, env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET }, encoding: 'utf8', timeout: 5000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('malformed sinks and sink options are refused at start with status 2, naming the problem', () => {
  for (const args of [
    [['--alert', 'bogus'], /unknown sink/], [['--alert', 'file:'], /needs a path/], [['--alert', ''], /empty sink/],
    [['--alert', 'syslog:relative/path'], /absolute path/], [['--alert', 'syslog://127.0.0.1:99999'], /not a port/],
    [['--alert', 'webhook:ftp://x/y'], /http:\/\/ or https:\/\//],
    [['--alert', 'webhook:http://user:pw@127.0.0.1/h'], /credentials/],
    [['--min-severity', 'high'], /give alert \(--alert SPEC\) first/],
    [['--alert', 'stdout', '--min-severity', 'urgent'], /not one of info, low, medium, high, critical/],
    [['--alert', 'stdout', '--facility', 'local0'], /only for syslog sinks/],
    [['--alert', 'syslog', '--facility', 'local9'], /not a syslog facility/],
    [['--alert', 'syslog', '--header', 'A: b'], /only for webhook sinks/],
    [['--alert', 'webhook:http://127.0.0.1/h', '--ca', '/etc/hosts'], /only for https/],
    [['--alert', 'webhook:http://127.0.0.1/h', '--header', 'webhook-id: x'], /sets webhook-id itself/],
    [['--outbox-max', '0'], /positive whole number/], [['--alert-retry-for', '5'], /unit/],
    [['--alert', 'syslog://127.0.0.1:514', '--retention', '1h'], /shorter than --alert-retry-for/],
  ]) {
    const [flags, re] = args;
    const r = serveSync(flags);
    assert.equal(r.status, 2, `${flags.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, flags.join(' '));
    assert.doesNotMatch(r.stderr, /msg=listening/);
  }
});

test('the same sink twice is refused', () => {
  let r = serveSync(['--alert', 'stdout', '--alert', 'stdout']);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /twice/);
  const dir = mkdtempSync(join(tmpdir(), 'veille-alert-twice-'));
  try {
    const path = join(dir, 'a.ndjson');
    r = serveSync(['--alert', `file:${path}`, '--alert=file:' + path]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /twice/);
    assert.ok(!existsSync(path), 'nothing opened');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a config file line `alert = bogus` is refused like the flag', () => {
  const dir = mkdtempSync(join(tmpdir(), 'veille-alert-conf-'));
  try {
    const conf = join(dir, 'veille.conf');
    writeFileSync(conf, 'alert = stdout\nalert = bogus\n');
    const r = serveSync(['--config', conf]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /veille\.conf:2/);
    assert.match(r.stderr, /bogus/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file sink that cannot be opened fails at start and names the path', () => {
  const r = serveSync(['--alert', 'file:/nonexistent-dir/x.ndjson']);
  assert.equal(r.status, 3, `a runtime error, not a crash or a hang: ${r.stderr}`);
  assert.match(r.stderr, /\/nonexistent-dir\/x\.ndjson/);
  assert.doesNotMatch(r.stderr, /msg=listening/);
});
