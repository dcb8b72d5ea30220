// Interop: what the analyst sees in the CLI's text output. Payload text (names,
// emails, cities, browsers) and a receiver's error reach the terminal escaped,
// columns line up on accented text, `history --ip` shows the users, `alerts`
// the IP and alert id, bad --ip / --rule values are named, a deleted user keeps
// its sign-in time, the Clerk instance is shown, and `stats` counts alerts and
// the outbox. Deliveries are signed by the official `svix` library.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'svix';
import { envelope, postSigned, RAPID, session, untilApplied, untilListening } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const SECRET = 'whsec_' + randomBytes(32).toString('base64');
const ALERT_SECRET = 'whsec_' + randomBytes(32).toString('base64');
const QUIET = `rule quiet {
  severity low
  on       session.created
  when     count(session.created, 10m) > 1000
}
`;

// What a hostile sign-up can put in its profile and session: an OSC retitle,
// a clear screen, row-forging line breaks, a C1 CSI, a bidi override, a DEL.
const EVIL_FIRST = '\x1b]0;pwned\x07\x1b[2J';
const EVIL_LAST = 'x\r\nuser_forged                         forged@example.org';
const EVIL_EMAIL = 'evil\x1b[31m@example.org';
const EVIL_CITY = 'Gen\x1b[2J\u00e8ve\r\nFORGED ROW';
const EVIL_BROWSER = '\u202eemorhC\u009b2J';
const EVIL_DEVICE = 'desk\x7ftop';
const IP = '198.51.100.66';

let tmp, dataDir, rulesPath, srv, receiver, receiverPort;
const t0 = Date.now() - 240000;

const cli = (...args) => spawnSync(BIN, [...args, '--data', dataDir], { cwd: ROOT, encoding: 'buffer', timeout: 10000 });
const text = (r) => r.stdout.toString('utf8');
const cliJson = (...args) => {
  const r = cli(...args, '--json');
  assert.equal(r.status, 0, r.stderr.toString());
  return text(r).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
};

// The terminal contract: valid UTF-8, no control byte but the row ends, no C1
// control, no bidi control. Returns the rows.
function assertTerminalSafe(r, what) {
  assert.equal(r.status, 0, `${what}: ${r.stderr}`);
  const out = new TextDecoder('utf-8', { fatal: true }).decode(r.stdout); // throws on invalid UTF-8
  for (const [i, ch] of [...out].entries()) {
    const c = ch.codePointAt(0);
    const bad = (c < 0x20 && c !== 0x0a) || c === 0x7f || (c >= 0x80 && c <= 0x9f) ||
      (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
    assert.ok(!bad, `${what}: raw U+${c.toString(16).padStart(4, '0')} at ${i} in:\n${JSON.stringify(out)}`);
  }
  assert.ok(out.endsWith('\n'), `${what}: ends with a row end`);
  return out.slice(0, -1).split('\n');
}

// The display column (code points: the test's text is all 1-wide) where each
// header title starts.
const columnOf = (header, title) => [...header.slice(0, header.indexOf(title))].length;

// Every row has a column boundary where the header has it: two spaces, then text.
function assertAligned(rows, title, what) {
  const col = columnOf(rows[0], title);
  assert.ok(col > 0, `${what}: header has ${title}`);
  for (const row of rows.slice(1)) {
    const cps = [...row];
    assert.ok(cps[col - 1] === ' ' && cps[col - 2] === ' ' && cps[col] !== ' ',
      `${what}: column ${title} starts at ${col} in\n${rows[0]}\n${row}`);
  }
}

let seq = 0;
async function deliver(body) {
  const id = `msg_output_${process.pid}_${++seq}`;
  const res = await postSigned(Webhook, SECRET, srv.base, id, body);
  assert.equal(res.status, 200, await res.text());
  await untilApplied(srv.base); // serve answers once the log holds it; the apply follows
}

const user = (id, first, last, email) => ({ id, object: 'user', created_at: t0 - 86400000, updated_at: t0,
  email_addresses: [{ id: 'idn_1', email_address: email, object: 'email_address' }], primary_email_address_id: 'idn_1',
  first_name: first, last_name: last, username: null, external_id: null, last_sign_in_at: null, banned: false,
  locked: false, public_metadata: {}, private_metadata: {}, unsafe_metadata: {} });

function evilSession(id, at) {
  const s = session(id, 'user_evil', at, IP, 'FR', EVIL_CITY);
  s.latest_activity.browser_name = EVIL_BROWSER;
  s.latest_activity.device_type = EVIL_DEVICE;
  return s;
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'veille-output-'));
  dataDir = join(tmp, 'data');
  rulesPath = join(tmp, 'test.rules');
  writeFileSync(rulesPath, RAPID + QUIET);
  // a webhook receiver whose reason phrase carries a C1 CSI and a byte that is not UTF-8
  receiver = createNetServer((sock) => {
    sock.on('error', () => {});
    sock.once('data', () => sock.end(Buffer.concat([Buffer.from('HTTP/1.1 500 bad '),
      Buffer.from([0xc2, 0x9b, 0x32, 0x4a, 0xff]), Buffer.from('\r\ncontent-length: 0\r\nconnection: close\r\n\r\n')])));
  });
  await new Promise((ok) => receiver.listen(0, '127.0.0.1', ok));
  receiverPort = receiver.address().port;
  const s = { log: '', out: '', base: null };
  s.proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir, '--rules', rulesPath,
    '--alert', `webhook:http://127.0.0.1:${receiverPort}/hook`],
  { cwd: ROOT, env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET, VEILLE_ALERT_WEBHOOK_SECRET: ALERT_SECRET },
    stdio: ['ignore', 'ignore', 'pipe'] });
  srv = await untilListening(s);

  await deliver(envelope('user.created', user('user_evil', EVIL_FIRST, EVIL_LAST, EVIL_EMAIL)));
  await deliver(envelope('user.created', user('user_chloe', 'Chloé', 'Zürich-Genève', 'chloe@example.org')));
  await deliver(envelope('user.created', user('user_ada', 'Ada', 'Lovelace', 'ada@example.org')));
  // six sign-ins raise the rapid alert, whose summary names the (hostile) city
  for (let i = 1; i <= 6; i++) await deliver(envelope('session.created', evilSession(`sess_evil_${i}`, t0 + i * 10000)));
  await deliver(envelope('session.created', session('sess_chloe_1', 'user_chloe', t0 + 70000, IP, 'CH', 'Genève')));
  await deliver(envelope('user.deleted', { object: 'user', id: 'user_chloe', deleted: true }));

  // the webhook sink has tried once and failed: the entry waits with the receiver's error
  const end = Date.now() + 10000;
  for (;;) {
    const e = cliJson('outbox')[0];
    if (e !== undefined && e.attempts >= 1) break;
    assert.ok(Date.now() < end, 'the webhook sink did not try the alert within 10 s:\n' + srv.log);
    await new Promise((ok) => setTimeout(ok, 50));
  }
});

after(() => {
  if (srv && srv.proc.exitCode === null && srv.proc.signalCode === null) srv.proc.kill('SIGKILL');
  receiver?.close();
  rmSync(tmp, { recursive: true, force: true });
});

test('history escapes every column and keeps one row per event', () => {
  const rows = assertTerminalSafe(cli('history', 'user_evil'), 'history');
  assert.equal(rows.length, 7, rows.join('\n'));
  assert.match(rows[1], /Gen\\x1b\[2Jève/);
  assert.match(rows[1], /\\u202eemorhC\\u009b2J on desk\\x7ftop/);
  assertAligned(rows, 'DEVICE', 'history');
});

test('history --ip has a USER column; the v4-mapped form finds the same rows; columns line up on Genève', () => {
  const rows = assertTerminalSafe(cli('history', '--ip', IP), 'history --ip');
  assert.match(rows[0], /^TIME\s+EVENT\s+USER\s+SESSION\s+IP\s+LOCATION\s+INSTANCE\s+DEVICE$/);
  assert.equal(rows.length, 8);
  assert.deepEqual(rows.slice(1).map((r) => r.split(/\s+/)[2]), [...Array(6).fill('user_evil'), 'user_chloe']);
  assert.match(rows[7], /CH\/Genève\s+ins_interop\s+Chrome on desktop$/);
  assertAligned(rows, 'INSTANCE', 'history --ip');
  assertAligned(rows, 'DEVICE', 'history --ip');
  assertAligned(rows, 'LOCATION', 'history --ip');
  const mapped = cli('history', '--ip', `::ffff:${IP}`);
  assert.equal(mapped.status, 0, mapped.stderr.toString());
  assert.equal(text(mapped), rows.join('\n') + '\n');
});

test('history --ip refuses what is not one address, and names an IP never seen', () => {
  for (const bad of ['10.0.0.0/8', 'nonsense', '198.51.100.66 ', '1.2.3.4%eth0']) {
    const r = cli('history', '--ip', bad);
    assert.equal(r.status, 2, `${bad}: ${r.stdout}`);
    assert.match(r.stderr.toString(), /not an IP address/);
    assert.equal(text(r), '', 'nothing on stdout');
  }
  assert.match(cli('history', '--ip', '10.0.0.0/8').stderr.toString(), /CIDR/);
  const unseen = cli('history', '--ip', '192.0.2.200');
  assert.equal(unseen.status, 1);
  assert.match(unseen.stderr.toString(), /no sign-in from IP 192\.0\.2\.200/);
});

test('user and users escape names and emails; users columns line up on Chloé', () => {
  const u = assertTerminalSafe(cli('user', 'user_evil'), 'user');
  assert.ok(u.includes('name             \\x1b]0;pwned\\x07\\x1b[2J x\\r\\nuser_forged                         forged@example.org'),
    u.join('\n'));
  assert.ok(u.includes('email            evil\\x1b[31m@example.org'), u.join('\n'));
  const rows = assertTerminalSafe(cli('users'), 'users');
  assert.equal(rows.length, 4, rows.join('\n'));
  assertAligned(rows, 'NAME', 'users');
  assertAligned(rows, 'STATE', 'users');
  assert.ok(!rows.some((r) => r.startsWith('user_forged')), 'no forged row');
});

test('a deleted user keeps its last sign-in; the Clerk instance is shown', () => {
  const u = cliJson('user', 'user_chloe')[0];
  assert.equal(u.deleted, true);
  assert.equal(u.first_name, null, 'personal fields erased');
  assert.equal(Date.parse(u.last_sign_in_at), t0 + 70000);
  assert.equal(u.instance_id, 'ins_interop');
  const rows = assertTerminalSafe(cli('user', 'user_chloe'), 'user');
  assert.ok(rows.includes(`last_sign_in_at  ${new Date(t0 + 70000).toISOString()}`), rows.join('\n'));
  assert.ok(rows.includes('instance_id      ins_interop'), rows.join('\n'));
  assert.ok(cliJson('history', 'user_evil').every((e) => e.instance_id === 'ins_interop'));
  const [alert] = cliJson('alerts');
  assert.equal(alert.instance_id, 'ins_interop');
});

test('alerts escape the summary and show the IP and alert id; --ip canonicalises', () => {
  const [alert] = cliJson('alerts');
  const rows = assertTerminalSafe(cli('alerts'), 'alerts');
  assert.match(rows[0], /^TIME\s+RULE\s+SEVERITY\s+STATE\s+KEY\s+SUPPRESSED\s+IP\s+ID\s+INSTANCE\s+SUMMARY$/);
  assert.equal(rows.length, 2, rows.join('\n'));
  assert.match(rows[1], new RegExp(`user:user_evil\\s+0\\s+${IP.replaceAll('.', '\\.')}\\s+${alert.id}\\s`));
  assert.match(rows[1], /Gen\\x1b\[2Jève\\r\\nFORGED ROW/);
  assertAligned(rows, 'SUMMARY', 'alerts');
  assert.deepEqual(cliJson('alerts', '--ip', `::ffff:${IP}`).map((a) => a.id), [alert.id]);
  const bad = cli('alerts', '--ip', '198.51.100.0/24');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr.toString(), /not an IP address/);
});

test('alerts --rule: an unknown rule is named (exit 1); a known one without alerts is an empty table (exit 0)', () => {
  const none = cli('alerts', '--rule', 'nosuchrule', '--rules', rulesPath);
  assert.equal(none.status, 1);
  assert.match(none.stderr.toString(), /no rule 'nosuchrule' in .*test\.rules nor in any alert stored/);
  // the default rule file (rules/default.rules, relative to the working directory) is read too
  assert.equal(cli('alerts', '--rule', 'nosuchrule').status, 1);
  const quiet = cli('alerts', '--rule', 'quiet', '--rules', rulesPath);
  assert.equal(quiet.status, 0, quiet.stderr.toString());
  assert.equal(text(quiet).trim().split('\n').length, 1, 'the header only');
  assert.match(quiet.stderr.toString(), /^0 alerts$/m);
  // in the store though no longer in the rule file: still a known rule
  const stored = cli('alerts', '--rule', 'rapid', '--rules', join(ROOT, 'rules/default.rules'));
  assert.equal(stored.status, 0, stored.stderr.toString());
  assert.equal(text(stored).trim().split('\n').length, 2);
  const broken = cli('alerts', '--rule', 'rapid', '--rules', join(tmp, 'missing.rules'));
  assert.equal(broken.status, 2);
});

test('outbox escapes the receiver error', () => {
  const rows = assertTerminalSafe(cli('outbox'), 'outbox');
  assert.equal(rows.length, 2, rows.join('\n'));
  assert.match(rows[1], /HTTP 500 bad \\u009b2J\\xff/);
});

test('stats counts alerts by severity and the outbox by sink', () => {
  const rows = assertTerminalSafe(cli('stats'), 'stats');
  assert.ok(rows.includes('alerts             1 (critical 0, high 1, medium 0, low 0, info 0)'), rows.join('\n'));
  assert.ok(rows.includes(`outbox             1 pending, 0 dead: webhook:http://127.0.0.1:${receiverPort}/hook`),
    rows.join('\n'));
  const [s] = cliJson('stats');
  assert.equal(s.alerts, 1);
  assert.deepEqual(s.alerts_by_severity, { critical: 0, high: 1, medium: 0, low: 0, info: 0 });
  assert.deepEqual(s.outbox, [{ sink: `webhook:http://127.0.0.1:${receiverPort}/hook`, pending: 1, dead: 0 }]);
});
