// Interop: triage and rule management. Alerts raised by a signed serve (the
// official svix library signs), then looked at and decided with `veille alerts
// show|ack|resolve|false-positive` while that serve runs (the CLI writes beside
// it), listed by --state/--severity, counted in stats and /metrics; the allow
// list (an allowed key raises nothing and is counted, --for expires, serve sees
// changes without a restart); `veille rules`, `rules show`, `enabled false`,
// --disable-rule, and replay --explain naming an allowed key.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'svix';
import { envelope, postSigned, session, untilApplied, untilListening } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const SECRET = 'whsec_' + randomBytes(32).toString('base64');

// as written, with a comment inside: `rules show` must print it back unchanged
const RULES = `rule rapid {
  # the 6th sign-in within 10 minutes
  description "More than 5 sign-ins"
  severity high
  on       session.created
  when     count(session.created, 10m) > 5
  suppress 30m
}

rule quiet {
  severity critical
  on       session.created
  when     count(session.created, 10m) > 0
  enabled  false
}
`;

let tmp, dataDir, rulesPath, srv;
const run = (args) => spawnSync(BIN, args, { cwd: ROOT, encoding: 'utf8', timeout: 15000,
  env: { ...process.env, USER: 'tester' } });
const cli = (...args) => run([...args, '--data', dataDir]);
const jsonLines = (s) => s.split('\n').filter(Boolean).map((l) => JSON.parse(l));
function cliJson(...args) {
  const r = cli(...args, '--json');
  assert.equal(r.status, 0, r.stderr);
  return jsonLines(r.stdout);
}

let seq = 0;
async function deliver(body) {
  const id = `msg_triage_${process.pid}_${++seq}`;
  const res = await postSigned(Webhook, SECRET, srv.base, id, body);
  assert.equal(res.status, 200, await res.text());
  await untilApplied(srv.base); // serve answers once the log holds it; the apply follows
  return id;
}

// n sign-ins of one user, 10 s apart in event time, starting `from` ms ago
async function signIns(userId, n, ip, from = 240000, first = 1) {
  const t0 = Date.now() - from;
  for (let i = first; i < first + n; i++)
    await deliver(envelope('session.created', session(`sess_${userId}_${i}`, userId, t0 + (i - 1) * 10000, ip)));
}

async function metric(sample) {
  const res = await fetch(srv.base + '/metrics', { signal: AbortSignal.timeout(5000) });
  const line = (await res.text()).split('\n').find((l) => l.startsWith(sample + ' '));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

function startServer(args) {
  const s = { log: '', base: null };
  s.proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir, ...args],
    { cwd: ROOT, env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET }, stdio: ['ignore', 'ignore', 'pipe'] });
  return untilListening(s);
}

const alertOf = (user) => cliJson('alerts', '--user', user)[0];

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'veille-triage-'));
  dataDir = join(tmp, 'data');
  rulesPath = join(tmp, 'triage.rules');
  writeFileSync(rulesPath, RULES);
  srv = await startServer(['--rules', rulesPath]);
  await signIns('user_a', 6, '198.51.100.7');
  await signIns('user_b', 6, '198.51.100.8');
});

after(() => {
  if (srv && srv.proc.exitCode === null) srv.proc.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

test('a disabled rule is loaded, logged and never runs', () => {
  assert.match(srv.log, /msg="rule disabled" rule=quiet/);
  assert.deepEqual(cliJson('alerts').map((a) => a.rule), ['rapid', 'rapid']);
});

test('alerts show prints the alert, its evidence, the event, the user and the key history', () => {
  const a = alertOf('user_a');
  const r = cli('alerts', 'show', a.id, '--rules', rulesPath);
  assert.equal(r.status, 0, r.stderr);
  for (const want of [/^alert\s+alr_/m, /^state\s+open$/m, /^evidence$/m, /count\(session\.created, 10m\)\s+6/,
    /^triggering event$/m, new RegExp(`^delivery\\s+${a.event_id}$`, 'm'), /^user$/m, /^id\s+user_a$/m,
    /^window\s+600s before and after/m])
    assert.match(r.stdout, want);
  const history = r.stdout.split('\n').filter((l) => /^[> ]\s+\d{4}-\d\d-\d\dT.*session\.created/.test(l));
  assert.equal(history.length, 6, r.stdout);
  assert.equal(history.filter((l) => l.startsWith('>')).length, 1, 'the triggering event is marked');

  const [j] = cliJson('alerts', 'show', a.id, '--rules', rulesPath);
  assert.equal(j.alert.id, a.id);
  assert.equal(j.triage.state, 'open');
  assert.equal(j.user.id, 'user_a');
  assert.equal(j.window_ms, 600000);
  assert.equal(j.history.length, 6);
  assert.ok(j.history.some((e) => e.delivery_id === a.event_id));

  const none = cli('alerts', 'show', 'alr_000000000000000000000000');
  assert.equal(none.status, 1);
  assert.match(none.stderr, /no alert 'alr_000000000000000000000000'/);
});

test('ack, resolve and false-positive record who and when beside a running serve; --state and --severity filter', async () => {
  const a = alertOf('user_a'), b = alertOf('user_b');
  assert.equal(await metric('veille_alerts_open{rule="rapid",severity="high"}'), 2);
  let r = cli('alerts', 'ack', a.id, '--note', 'looking into it');
  assert.equal(r.status, 0, r.stderr);
  let [j] = cliJson('alerts', 'show', a.id);
  assert.equal(j.triage.state, 'acked');
  assert.equal(j.triage.by, 'tester', '$USER');
  assert.equal(j.triage.note, 'looking into it');
  assert.ok(Math.abs(Date.parse(j.triage.at) - Date.now()) < 60000, j.triage.at);
  r = cli('alerts', 'resolve', a.id, '--by', 'alice');
  assert.equal(r.status, 0, r.stderr);
  [j] = cliJson('alerts', 'show', a.id);
  assert.deepEqual([j.triage.state, j.triage.by], ['resolved', 'alice']);

  r = cli('alerts', 'false-positive', b.id);
  assert.equal(r.status, 2, 'a false positive needs a note');
  assert.match(r.stderr, /--note TEXT is required/);
  r = cli('alerts', 'false-positive', b.id, '--note', 'load test account', '--allow');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(cli('alerts', 'ack', 'alr_nope').status, 1);

  assert.deepEqual(cliJson('alerts', '--state', 'resolved').map((x) => x.id), [a.id]);
  assert.deepEqual(cliJson('alerts', '--state', 'fp').map((x) => x.id), [b.id]);
  assert.deepEqual(cliJson('alerts', '--state', 'open'), []);
  assert.equal(cliJson('alerts', '--severity', 'high').length, 2);
  assert.deepEqual(cliJson('alerts', '--severity', 'critical'), []);
  assert.equal(cli('alerts', '--state', 'closed').status, 2);
  assert.equal(cli('alerts', '--severity', 'loud').status, 2);
  const table = cli('alerts').stdout.split('\n');
  assert.match(table[0], /^TIME\s+RULE\s+SEVERITY\s+STATE\s+KEY/);
  assert.ok(table.some((l) => l.includes('resolved') && l.includes(a.id)), table.join('\n'));

  const [st] = cliJson('stats');
  assert.deepEqual(st.alerts_by_state, { open: 0, acked: 0, resolved: 1, fp: 1 });
  assert.match(cli('stats').stdout, /^alert states\s+0 open, 0 acked, 1 resolved, 1 fp$/m);
  assert.equal(await metric('veille_alerts_open{rule="rapid",severity="high"}'), undefined, 'none open');

  // --allow put the key on the list for the rule: serve sees it at once, no restart
  const [entry] = cliJson('allow', 'list');
  assert.deepEqual([entry.kind, entry.value, entry.rule, entry.by], ['user', 'user_b', 'rapid', 'tester']);
  assert.equal(await metric('veille_rule_allowed_total{rule="rapid"}'), 0);
  await signIns('user_b', 1, '198.51.100.8', 170000, 7);
  assert.equal(await metric('veille_rule_allowed_total{rule="rapid"}'), 1);
  assert.equal(await metric('veille_rule_suppressed_total{rule="rapid"}'), 0, 'skipped, not folded');
});

test('an allowed key raises nothing until its --for expires', async () => {
  let r = cli('allow', 'add', 'user', 'user_c', '--for', '3s', '--note', 'pen test');
  assert.equal(r.status, 0, r.stderr);
  const added = Date.now();
  await signIns('user_c', 6, '198.51.100.9');
  assert.ok(Date.now() - added < 3000, 'the burst ran inside the entry\'s life');
  assert.equal(cliJson('alerts', '--user', 'user_c').length, 0);
  assert.equal(await metric('veille_rule_allowed_total{rule="rapid"}'), 2);
  await new Promise((ok) => setTimeout(ok, Math.max(0, 3100 - (Date.now() - added))));
  const [e] = cliJson('allow', 'list').filter((x) => x.value === 'user_c');
  assert.equal(e.expired, true);
  await signIns('user_c', 1, '198.51.100.9', 170000, 7);
  assert.equal(cliJson('alerts', '--user', 'user_c').length, 1, 'expired: the 7th sign-in raises');

  r = cli('allow', 'add', 'ip', '10.0.0.0/33', '--note', 'x');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /not an IP address or CIDR/);
  assert.equal(cli('allow', 'add', 'user', 'u', '--note', '').status, 2);
  assert.equal(cli('allow', 'rm', 'user', 'user_c', '--rule', 'x').status, 1, 'its entry is for every rule');
  assert.equal(cli('allow', 'rm', 'user', 'user_c').status, 0);
  r = cli('allow', 'add', 'ip', '203.0.113.0/24', '--note', 'office');
  assert.equal(r.status, 0, r.stderr);
  r = cli('allow', 'rm', 'ip', '203.0.113.0/24');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(cliJson('allow', 'list').filter((x) => x.kind === 'ip').length, 0);
});

test('veille rules lists state and hits; rules show prints the rule as written', () => {
  const rows = cliJson('rules', '--rules', rulesPath);
  assert.deepEqual(rows.map((x) => [x.name, x.state, x.hits_24h, x.hits_30d]),
    [['rapid', 'enabled', 3, 3], ['quiet', 'disabled', 0, 0]]);
  const t = cli('rules', '--rules', rulesPath);
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /^rapid\s+high\s+session\.created\s+user\s+30m\s+enabled\s+3\s+3$/m);
  assert.match(t.stdout, /^quiet\s+critical\s+session\.created\s+user\s+-\s+disabled\s+0\s+0$/m);
  const show = run(['rules', 'show', 'rapid', '--rules', rulesPath]);
  assert.equal(show.status, 0, show.stderr);
  assert.equal(show.stdout, `# ${rulesPath}:1 (enabled)\n${RULES.slice(0, RULES.indexOf('}') + 1)}\n`);
  assert.equal(run(['rules', 'show', 'nope', '--rules', rulesPath]).status, 1);
});

test('serve --disable-rule: the rule does not run, and stays off across a reload', async () => {
  const other = await new Promise((ok, fail) => {
    const s = { log: '', base: null };
    s.proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', join(tmp, 'disabled'), '--rules', rulesPath,
      '--disable-rule', 'rapid'], { cwd: ROOT, env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET },
      stdio: ['ignore', 'ignore', 'pipe'] });
    untilListening(s).then(ok, fail);
  });
  const main = srv;
  try {
    srv = other;
    assert.match(other.log, /msg="rule disabled" rule=rapid/);
    await signIns('user_d', 6, '198.51.100.10');
    assert.equal(await metric('veille_rule_evaluations_total{rule="rapid"}'), 0);
    other.proc.kill('SIGHUP');
    const end = Date.now() + 5000;
    while (!/msg="rules reloaded"/.test(other.log) && Date.now() < end) await new Promise((ok) => setTimeout(ok, 20));
    assert.match(other.log, /msg="rule disabled" rule=rapid[^]*msg="rule disabled" rule=rapid[^]*rules reloaded/);
    await signIns('user_d', 1, '198.51.100.10', 170000, 7);
    assert.equal(await metric('veille_rule_evaluations_total{rule="rapid"}'), 0);
  } finally {
    srv = main;
    other.proc.kill('SIGKILL');
  }
});

test('serve --disable-rule: an unknown name stops start-up', () => {
  const r = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', join(tmp, 'other'), '--rules', rulesPath,
    '--disable-rule', 'nope'], { env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET }, encoding: 'utf8',
    timeout: 10000 });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--disable-rule: no rule 'nope'/);
});

test('replay --explain names a match skipped by the allow list', () => {
  const data = join(tmp, 'replayed');
  const t0 = Date.now() - 600000;
  const lines = (user, from, n) => Array.from({ length: n }, (_, k) =>
    envelope('session.created', session(`sess_r_${user}_${from + k}`, user, t0 + (from + k) * 10000))).join('\n') + '\n';
  const first = join(tmp, 'first.ndjson'), second = join(tmp, 'second.ndjson');
  writeFileSync(first, lines('user_r', 0, 1));
  writeFileSync(second, lines('user_r', 1, 6));
  let r = run(['replay', '--rules', rulesPath, '--data', data, first]);
  assert.equal(r.status, 0, r.stderr);
  r = run(['allow', 'add', 'user', 'user_r', '--rule', 'rapid', '--note', 'replayed', '--data', data]);
  assert.equal(r.status, 0, r.stderr);
  r = run(['replay', '--rules', rulesPath, '--data', data, '--explain', second]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '', 'no alert');
  assert.match(r.stderr, /explain: line 5: rapid user:user_r -> allowed \(allow list\), nothing raised:/);
  assert.match(r.stderr, /^rapid\s+6\s+2\s+0\s+0\s+2$/m);
});
