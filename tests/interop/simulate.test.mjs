// Interop: `veille simulate` against a running serve. Every scenario is signed
// with the secret serve reads, answered 2xx, and raises the alerts of the default
// rules it is built for, which simulate prints from the store; a URL that is not
// loopback is refused without --allow-remote; --file sends recorded envelopes at
// --rate. Deliveries here are signed by veille itself: veille.test.mjs and the
// others check its verification against the official svix library.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { envelope, session, untilListening } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const SECRET = 'whsec_' + randomBytes(32).toString('base64');

let tmp, dataDir, srv;

// Runs veille asynchronously (serve's log pipe keeps draining meanwhile).
function run(args, env = {}) {
  return new Promise((ok) => {
    const p = spawn(BIN, args, { cwd: ROOT, env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET, ...env } });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), 20000);
    p.on('close', (status) => { clearTimeout(timer); ok({ status, stdout, stderr }); });
  });
}
const simulate = (...args) => run(['simulate', '--url', srv.base + '/webhooks/clerk', '--data', dataDir, ...args]);

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'veille-simulate-'));
  dataDir = join(tmp, 'data');
  srv = { proc: spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir, '--rules',
    join(ROOT, 'rules/default.rules')], { env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET } }), log: '', base: null };
  await untilListening(srv);
});

after(async () => {
  if (srv?.proc && srv.proc.exitCode === null) {
    srv.proc.kill('SIGTERM');
    await new Promise((ok) => srv.proc.once('exit', ok));
  }
  rmSync(tmp, { recursive: true, force: true });
});

// The answer lines ("TYPE ID -> STATUS ...") and the alert rows of simulate's output.
function parse(stdout) {
  const answers = [...stdout.matchAll(/^.*?\s(msg_sim_\S+) -> (\d{3}) /gm)].map((m) => Number(m[2]));
  const tail = stdout.split('alerts raised for these deliveries')[1] ?? '';
  const rules = [...tail.matchAll(/^ {2}(\w+)\s+(info|low|medium|high|critical)\s/gm)].map((m) => m[1]).sort();
  return { answers, rules, tail };
}

for (const [scenario, expected, count] of [
  ['sample', [], 3],
  ['brute-force', ['rapid_logins'], 9],
  ['impossible-travel', ['impossible_travel', 'new_country'], 3],
  ['spray', ['ip_many_users'], 12],
]) {
  test(`simulate ${scenario}: every delivery answered 2xx, the alerts raised are printed`, async () => {
    const r = await simulate(scenario);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const { answers, rules, tail } = parse(r.stdout);
    assert.equal(answers.length, count, r.stdout);
    assert.ok(answers.every((s) => s >= 200 && s < 300), r.stdout);
    assert.match(r.stdout, new RegExp(`^${count} sent, ${count} answered 2xx, 0 failed$`, 'm'));
    assert.deepEqual(rules, expected, r.stdout);
    if (expected.length === 0)
      assert.match(tail, /^ {2}none$/m);
  });
}

test('simulate twice: the second run is new users, not duplicates folded into the first', async () => {
  const a = await simulate('brute-force');
  const b = await simulate('brute-force');
  assert.equal(b.status, 0, b.stderr);
  assert.doesNotMatch(b.stdout, /duplicate/);
  assert.deepEqual(parse(b.stdout).rules, ['rapid_logins'], b.stdout);
  assert.notEqual(/user:(\S+)/.exec(a.stdout)[1], /user:(\S+)/.exec(b.stdout)[1]);
});

test('a URL that is not loopback is refused unless --allow-remote, before anything is sent', async () => {
  // 192.0.2.1 is TEST-NET-1: never contacted, the refusal comes first
  for (const url of ['http://192.0.2.1:8080/webhooks/clerk', 'http://[2001:db8::1]:8080/webhooks/clerk']) {
    const r = await run(['simulate', '--url', url, 'sample']);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /not a loopback address.*--allow-remote/);
    assert.doesNotMatch(r.stdout, /msg_sim_/);
  }
  const https = await run(['simulate', '--url', 'https://127.0.0.1:8443/webhooks/clerk']);
  assert.equal(https.status, 2);
  assert.match(https.stderr, /https is not supported/);
});

test('usage errors: unknown scenario, no secret, bad --rate', async () => {
  let r = await simulate('credential-stuffing');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown scenario 'credential-stuffing' \(one of: sample, brute-force/);
  r = await run(['simulate', '--url', srv.base + '/webhooks/clerk', 'sample'],
    { VEILLE_WEBHOOK_SECRET: '', CLERK_WEBHOOK_SIGNING_SECRET: '' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /no webhook signing secret: set VEILLE_WEBHOOK_SECRET/);
  r = await simulate('--rate', 'fast');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--rate fast: expected N or N\/s/);
});

test('signed with another secret: the 401s are printed and the exit status is 3', async () => {
  const r = await run(['simulate', '--url', srv.base + '/webhooks/clerk', '--data', dataDir, 'sample'],
    { VEILLE_WEBHOOK_SECRET: 'whsec_' + randomBytes(32).toString('base64') });
  assert.equal(r.status, 3, r.stdout + r.stderr);
  assert.equal(parse(r.stdout).answers.filter((s) => s === 401).length, 3, r.stdout);
  assert.match(r.stdout, /no signature matched/);
});

test('--file sends recorded envelopes at --rate, and serve stores them', async () => {
  const file = join(tmp, 'events.ndjson');
  const t = Date.now() - 60000;
  const user = `user_file_${process.pid}`;
  writeFileSync(file, [
    envelope('session.created', session(`sess_${user}_1`, user, t)),
    '',
    envelope('session.created', session(`sess_${user}_2`, user, t + 1000)),
    envelope('session.created', session(`sess_${user}_3`, user, t + 2000)),
    envelope('session.created', session(`sess_${user}_4`, user, t + 3000)),
  ].join('\n') + '\n');
  const started = Date.now();
  const r = await simulate('--file', file, '--rate', '5/s');
  const elapsed = Date.now() - started;
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const { answers } = parse(r.stdout);
  assert.deepEqual(answers, [200, 200, 200, 200], r.stdout);
  assert.match(r.stdout, /^line 5 session\.created +msg_sim_/m, 'labels name the file line and type, blank lines skipped');
  // four deliveries at 5/s: the last leaves 600 ms after the first
  assert.ok(elapsed >= 550, `took ${elapsed} ms`);
  const h = await run(['history', user, '--json', '--data', dataDir]);
  assert.equal(h.status, 0, h.stderr);
  assert.equal(h.stdout.trim().split('\n').length, 4);
});

test('--file: a missing file is a usage error', async () => {
  const r = await simulate('--file', join(tmp, 'nope.ndjson'));
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--file .*nope\.ndjson: No such file/);
});

test('the store not readable: the answers are printed, the alerts part says why it is skipped', async () => {
  const r = await run(['simulate', '--url', srv.base + '/webhooks/clerk', '--data', join(tmp, 'elsewhere'), 'sample']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /alerts: not shown, the store in .*elsewhere cannot be read/);
});
