// IP intelligence: the location database's fields (asn, as_name, ip.*), lists of
// ASNs, the country fallback and --ip-db, through `veille replay` and `veille serve`
// as a user runs them. The lookups need Debian's libloc-database (the 2022-10-29
// snapshot); without it those tests are skipped with a message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { envelope, session, RAPID } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const DB = '/var/lib/location/database.db';
const NO_DB = existsSync(DB) ? false : `${DB} is absent (apt-get install libloc-database)`;
const run = (args) => spawnSync(BIN, args, { cwd: ROOT, encoding: 'utf8', timeout: 15000 });
const jsonLines = (s) => s.split('\n').filter(Boolean).map((l) => JSON.parse(l));

const RULES = `
list hosting_asns { AS14061, AS16509 }
rule hosting { severity low on session.created when asn in hosting_asns }
rule named { severity low on session.created when as_name == "OVH SAS" and ip.country == "FR" }
rule proxy { severity medium on session.created when ip.anonymous_proxy }
rule dropped { severity high on session.created when ip.drop }
rule anycast { severity low on session.created when ip.anycast and not ip.drop }
rule private { severity low on session.created when ip.private }
rule french { severity low on session.created when country == "FR" }
rule no_flags { severity info on session.created when ip.drop == false and asn > 0 }
`;

const T = 1700000000000;
// one sign-in per user, each from an address whose facts `location lookup` shows
const SIGN_INS = {
  user_do: ['159.89.0.1', 'US'],       // AS14061 DigitalOcean
  user_ovh: ['51.68.1.1', 'FR'],       // AS16276 OVH SAS
  user_tor: ['185.220.101.1', 'DE'],   // AS60729, anonymous proxy
  user_drop: ['1.10.16.1', 'CN'],      // DROP range
  user_dns: ['8.8.8.8', 'US'],         // AS15169, anycast
  user_lan: ['10.1.2.3', 'FR'],        // RFC 1918
  user_free: ['82.64.1.1', 'FR'],      // AS12322 Free SAS, residential
};

let dir, events, rules;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'veille-ipintel-'));
  rules = join(dir, 'ip.rules');
  writeFileSync(rules, RULES);
  const lines = Object.entries(SIGN_INS).map(([u, [ip, country]], i) =>
    envelope('session.created', session(`sess_${u}`, u, T + i, ip, country, ''), T + i));
  // Clerk sent no latest_activity: the request's client_ip is the event's IP
  const bare = session('sess_bare', 'user_bare', T + 100);
  delete bare.latest_activity;
  lines.push(envelope('session.created', bare, T + 100).replace('203.0.113.9', '90.12.1.1'));
  events = join(dir, 'events.ndjson');
  writeFileSync(events, lines.join('\n') + '\n');
});
after(() => rmSync(dir, { recursive: true, force: true }));

const byRule = (alerts) => {
  const m = {};
  for (const a of alerts) (m[a.rule] ??= []).push(a);
  return m;
};
const users = (alerts) => (alerts ?? []).map((a) => a.user_id).sort();

test('replay reads asn, as_name, ip.country and the flags from the database', { skip: NO_DB }, () => {
  const r = run(['replay', '--rules', rules, events]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /^replay: ip database \/var\/lib\/location\/database\.db \(IPFire Project, built 2022-10-29\)$/m);
  const a = byRule(jsonLines(r.stdout));
  assert.deepEqual(users(a.hosting), ['user_do']);
  assert.equal(a.hosting[0].evidence.asn, 14061);
  assert.deepEqual(users(a.named), ['user_ovh']);
  assert.deepEqual(a.named[0].evidence, { as_name: 'OVH SAS', 'ip.country': 'FR' });
  assert.deepEqual(users(a.proxy), ['user_tor']);
  assert.deepEqual(users(a.dropped), ['user_drop']);
  assert.deepEqual(users(a.anycast), ['user_dns']);
  assert.deepEqual(users(a.private), ['user_lan']);
  // every public address the database knows and that is not DROP-listed
  assert.deepEqual(users(a.no_flags), ['user_bare', 'user_dns', 'user_do', 'user_free', 'user_ovh', 'user_tor']);
});

test('country falls back to the database when Clerk gives none, and the alert says so', { skip: NO_DB }, () => {
  const r = run(['replay', '--rules', rules, events]);
  assert.equal(r.status, 0, r.stderr);
  const french = byRule(jsonLines(r.stdout)).french;
  assert.deepEqual(users(french), ['user_bare', 'user_free', 'user_lan', 'user_ovh']);
  const bare = french.find((a) => a.user_id === 'user_bare');
  assert.deepEqual(bare.evidence, { country: 'FR', country_source: 'ip_database' });
  assert.match(bare.summary, /country_source = ip_database/);
  // Clerk's own country needs no note
  assert.deepEqual(french.find((a) => a.user_id === 'user_free').evidence, { country: 'FR' });
});

test('--ip-db none: the database fields are empty and compare false; ip.private still works', () => {
  const r = run(['replay', '--rules', rules, '--ip-db', 'none', events]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /^replay: no ip database \(--ip-db none\)/m);
  const a = byRule(jsonLines(r.stdout));
  for (const rule of ['hosting', 'named', 'proxy', 'dropped', 'anycast', 'no_flags'])
    assert.equal(a[rule], undefined, `${rule} must not fire without a database`);
  assert.deepEqual(users(a.private), ['user_lan']);
  assert.deepEqual(users(a.french), ['user_free', 'user_lan', 'user_ovh'], 'no fallback without a database');
});

test('--ip-db naming a file that cannot be read is a usage error that names it', () => {
  for (const cmd of [['replay', '--rules', rules, '--ip-db', join(dir, 'nope.db'), events],
    ['serve', '--listen', '127.0.0.1:0', '--data', join(dir, 'data'), '--rules', rules, '--ip-db', join(dir, 'nope.db')]]) {
    const r = spawnSync(BIN, cmd, { cwd: ROOT, encoding: 'utf8', timeout: 15000,
      env: { ...process.env, VEILLE_WEBHOOK_SECRET: 'whsec_' + Buffer.from('k'.repeat(24)).toString('base64') } });
    assert.equal(r.status, 2, `${cmd[0]}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`--ip-db: ${join(dir, 'nope.db')}: cannot open the location database`));
  }
  const junk = join(dir, 'junk.db');
  writeFileSync(junk, 'not a database\n');
  const r = run(['replay', '--rules', rules, '--ip-db', junk, events]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /not a location database/);
  assert.doesNotMatch(r.stderr, /libloc:/, 'libloc\'s own log lines stay out');
});

test('serve logs the database it opened (or warns that it has none) and takes ip-db in a config file', async () => {
  const conf = join(dir, 'veille.conf');
  writeFileSync(conf, `ip-db = ${NO_DB ? 'none' : DB}\n`);
  const rapid = join(dir, 'rapid.rules');
  writeFileSync(rapid, RAPID);
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', join(dir, 'serve-data'), '--rules', rapid,
    '--config', conf], { env: { ...process.env, VEILLE_WEBHOOK_SECRET: 'whsec_' +
      Buffer.from('k'.repeat(24)).toString('base64') } });
  let log = '';
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('no listening line:\n' + log)), 10000);
    proc.stderr.on('data', (d) => { log += d; if (/msg=listening/.test(log)) { clearTimeout(timer); ok(); } });
    proc.once('exit', (c) => { clearTimeout(timer); fail(new Error(`exited ${c}:\n${log}`)); });
  });
  proc.kill('SIGTERM');
  await new Promise((ok) => proc.once('exit', ok));
  if (NO_DB) assert.match(log, /level=info msg="no ip database \(--ip-db none\)/);
  else assert.match(log, /level=info msg="ip database \/var\/lib\/location\/database\.db \(IPFire Project, built 2022-10-29\)"/);
});

test('a rule file with an ASN list checks, and a bad one says what is wrong', () => {
  let r = run(['check', rules]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const bad = join(dir, 'bad.rules');
  writeFileSync(bad, 'list l { AS14061, "192.0.2.0/24" }\nrule r { severity low on session.created when ip in l }\n');
  r = run(['check', bad]);
  assert.equal(r.status, 1, r.stderr); // veille check: 1 when the file has errors
  assert.match(r.stderr, /bad\.rules:1:19: error: list 'l' mixes ASNs and networks/);
  assert.match(r.stderr, /bad\.rules:2:50: error: type mismatch: 'in l' \(a list of ASNs\) needs a number such as asn/);
});

test('the shipped hosting_asns list catches a cloud sign-in and spares a residential one', { skip: NO_DB }, () => {
  const catalog = readFileSync(join(ROOT, 'rules/default.rules'), 'utf8');
  const own = join(dir, 'own.rules');
  writeFileSync(own, catalog + '\nrule from_hosting { severity low on session.created when asn in hosting_asns }\n');
  const r = run(['replay', '--rules', own, events]);
  assert.equal(r.status, 0, r.stderr);
  const hits = jsonLines(r.stdout).filter((a) => a.rule === 'from_hosting').map((a) => a.user_id).sort();
  assert.deepEqual(hits, ['user_do', 'user_ovh']);
});
