// Interop: the web console (`serve --console`), over a store with known alerts
// raised by deliveries signed with the official `svix` library. First its API
// and its guards with fetch (token, CSP, listeners kept apart, bad input), then
// the page itself in headless Chromium driven by puppeteer-core: the numbers and
// rows shown, the filters, an alert's, a user's and an IP's page, and no
// Content-Security-Policy violation. Screenshots go to BUILD/console-screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { get as httpGet } from 'node:http';
import { Webhook } from 'svix';
import { envelope, postSigned, RAPID, session, untilApplied, untilListening } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const SHOTS = process.env.CONSOLE_SCREENSHOTS ?? join(dirname(BIN), 'console-screenshots');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SECRET = 'whsec_' + randomBytes(32).toString('base64');
const TOKEN = randomBytes(24).toString('base64');
const AUTH = { Authorization: 'Bearer ' + TOKEN };

// two rules: `two` (medium) at a user's 2nd sign-in in 10 minutes, `rapid` (high) at the 6th
const RULES = RAPID + `
rule two {
  severity medium
  on       session.created
  when     count(session.created, 10m) > 1
  suppress 30m
}
`;
const IP1 = '198.51.100.7', IP2 = '203.0.113.50';
const DEAD_SINK = 'webhook:http://127.0.0.1:9/alerts';

let tmp, dataDir, srv;
let seq = 0;

async function deliver(body) {
  const id = `msg_console_${process.pid}_${++seq}`;
  const res = await postSigned(Webhook, SECRET, srv.base, id, body);
  assert.equal(res.status, 200, await res.text());
  await untilApplied(srv.base); // serve answers once the log holds it; the apply follows
}

async function burst(userId, n, ip) {
  const t0 = Date.now() - 240000;
  for (let i = 1; i <= n; i++)
    await deliver(envelope('session.created', session(`sess_${userId}_${i}`, userId, t0 + (i - 1) * 10000, ip)));
}

// node:http rather than fetch where the headers matter: fetch always sends Sec-Fetch-Mode: cors
const raw = (path, headers) => new Promise((ok, fail) => {
  httpGet(srv.console + path, { headers }, (res) => {
    let body = '';
    res.on('data', (d) => { body += d; });
    res.on('end', () => ok({ status: res.statusCode, headers: res.headers, body }));
  }).on('error', fail);
});
const get = (path, headers = AUTH) => fetch(srv.console + path, { headers, signal: AbortSignal.timeout(5000) });
async function getJson(path) {
  const r = await get(path);
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  return body;
}

// --incident-window 0s: the outbox figures count one queued alert per alert
// (with incidents, a sink gets only each incident's first alert and updates)
function serve(args, env) {
  return spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir, '--incident-window', '0s', ...args],
    { cwd: ROOT, env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'veille-console-'));
  dataDir = join(tmp, 'data');
  writeFileSync(join(tmp, 'test.rules'), RULES);
  srv = { log: '', base: null, console: null };
  // a webhook sink nobody listens on: its outbox holds every alert (the overview's outbox health)
  srv.proc = serve(['--rules', join(tmp, 'test.rules'), '--console', '127.0.0.1:0', '--alert', DEAD_SINK],
    { VEILLE_CONSOLE_TOKEN: TOKEN, VEILLE_ALERT_WEBHOOK_SECRET: 'whsec_' + randomBytes(32).toString('base64') });
  await untilListening(srv);
  const end = Date.now() + 5000;
  while (!/msg="console listening" addr=\S+ port=(\d+)/.test(srv.log)) {
    if (Date.now() > end) throw new Error('no console line:\n' + srv.log);
    await new Promise((ok) => setTimeout(ok, 20));
  }
  srv.console = 'http://127.0.0.1:' + /msg="console listening" addr=\S+ port=(\d+)/.exec(srv.log)[1];
  // alice: 7 sign-ins from IP1 (two + rapid), bob: 6 from IP2 (two + rapid), carol: 2 from IP1 (two)
  await burst('user_alice', 7, IP1);
  await burst('user_bob', 6, IP2);
  await burst('user_carol', 2, IP1);
});

after(() => {
  if (srv && srv.proc.exitCode === null) srv.proc.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

test('without the token: 401, a basic-auth challenge, and the CSP on the refusal too', async () => {
  for (const headers of [{}, { Authorization: 'Bearer wrong-token-of-some-length' },
    { Authorization: 'Basic ' + Buffer.from('admin:nope').toString('base64') }]) {
    for (const path of ['/', '/app.js', '/api/overview', '/api/alerts']) {
      const r = await raw(path, headers);
      assert.equal(r.status, 401, path);
      assert.match(r.headers['www-authenticate'], /^Basic realm="veille console"/);
      assert.match(r.headers['content-security-policy'], /default-src 'none'/);
      assert.doesNotMatch(r.body, /veille console<\/title>|alerts/);
    }
  }
  // the challenge is for a navigation (or curl); a page's own fetch() gets none, so no prompt pops up over it
  assert.match((await raw('/', { 'Sec-Fetch-Mode': 'navigate' })).headers['www-authenticate'], /^Basic/);
  const fromPage = await raw('/api/overview', { 'Sec-Fetch-Mode': 'same-origin' });
  assert.equal(fromPage.status, 401);
  assert.equal(fromPage.headers['www-authenticate'], undefined);
  // basic auth with the token as the password, any user name
  const basic = await get('/api/overview', { Authorization: 'Basic ' + Buffer.from('me:' + TOKEN).toString('base64') });
  assert.equal(basic.status, 200);
});

test('every answer has the strict Content-Security-Policy and no third-party host', async () => {
  const want = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
  for (const path of ['/', '/app.js', '/app.css', '/favicon.svg', '/api/overview', '/api/nope', '/nope']) {
    const r = await get(path);
    assert.equal(r.headers.get('content-security-policy'), want, path);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    const body = await r.text();
    // the assets name no host (the API's data may: a sink's URL)
    if (!path.startsWith('/api/'))
      assert.doesNotMatch(body, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/, `${path} names another host`);
  }
  assert.match((await get('/')).headers.get('content-type'), /^text\/html/);
  assert.match((await get('/app.js')).headers.get('content-type'), /^text\/javascript/);
  assert.equal((await get('/nope')).status, 404);
});

test('the console and the webhook listener are apart; the console is read-only', async () => {
  const onWebhook = await fetch(srv.base + '/api/overview', { headers: AUTH });
  assert.equal(onWebhook.status, 404);
  assert.equal((await fetch(srv.base + '/', { headers: AUTH })).status, 404);
  const post = await fetch(srv.console + '/webhooks/clerk', { method: 'POST', headers: AUTH, body: '{}' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
});

test('GET /api/overview: totals, by rule, by state, top users and IPs, ingest, outbox', async () => {
  const o = await getJson('/api/overview?range=24h');
  assert.equal(o.total, 5);
  assert.deepEqual(o.by_severity, { medium: 3, high: 2 });
  assert.deepEqual(o.by_rule, [{ rule: 'two', count: 3 }, { rule: 'rapid', count: 2 }]);
  assert.deepEqual(o.by_state, [{ state: 'open', count: 5 }]);
  assert.equal(o.series.length, 24);
  assert.equal(o.series.reduce((n, b) => n + Object.values(b.counts).reduce((x, y) => x + y, 0), 0), 5);
  assert.deepEqual(o.top_ips, [{ ip: IP1, count: 3 }, { ip: IP2, count: 2 }]);
  assert.deepEqual(o.top_users.map((u) => u.count), [2, 2, 1]);
  assert.equal(o.top_users[2].user_id, 'user_carol');
  assert.equal(o.ingest.events_stored, 15);
  assert.equal(o.ingest.alerts_raised, 5);
  assert.ok(o.ingest.apply_lag_ms > 0);
  assert.equal(o.outbox.length, 1);
  assert.match(o.outbox[0].sink, /127\.0\.0\.1:9/);
  assert.equal(o.outbox[0].pending + o.outbox[0].dead, 5);
  assert.equal((await getJson('/api/overview?range=7d')).series.length, 28);
  assert.equal((await getJson('/api/overview?range=30d')).series.length, 30);
  const bad = await get('/api/overview?range=1y');
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /range: expected 24h, 7d or 30d/);
});

test('GET /api/alerts: the filters of `veille alerts`, newest first, and the same alerts it lists', async () => {
  const all = await getJson('/api/alerts');
  assert.equal(all.matched, 5);
  const cliIds = spawnSync(BIN, ['alerts', '--json', '--data', dataDir], { encoding: 'utf8' }).stdout
    .trim().split('\n').map((l) => JSON.parse(l).id);
  assert.deepEqual(all.alerts.map((a) => a.id), cliIds.reverse());
  assert.equal((await getJson('/api/alerts?rule=rapid')).matched, 2);
  assert.equal((await getJson('/api/alerts?severity=medium')).matched, 3);
  assert.equal((await getJson('/api/alerts?user=user_carol')).matched, 1);
  assert.equal((await getJson('/api/alerts?ip=' + IP1)).matched, 3);
  assert.equal((await getJson('/api/alerts?rule=rapid&ip=' + IP2)).matched, 1);
  assert.equal((await getJson('/api/alerts?since=1h')).matched, 5);
  const two = await getJson('/api/alerts?limit=2');
  assert.equal(two.shown, 2);
  assert.deepEqual(two.alerts.map((a) => a.id), all.alerts.slice(0, 2).map((a) => a.id));
  for (const [q, msg] of [['ip=not-an-ip', /ip: 'not-an-ip' is not an IP address/], ['since=soon', /^since: /],
    ['limit=0', /limit: expected a number from 1 to 1000/], ['rule=' + 'x'.repeat(100), /rule: too long/]]) {
    const r = await get('/api/alerts?' + q);
    assert.equal(r.status, 400, q);
    assert.match((await r.json()).error, msg);
  }
});

test('GET /api/alerts/ID, /api/users/ID, /api/ips/IP', async () => {
  const [first] = (await getJson('/api/alerts?rule=rapid&user=user_alice')).alerts;
  const a = await getJson('/api/alerts/' + first.id);
  assert.equal(a.rule, 'rapid');
  assert.equal(a.evidence['count(session.created, 10m)'], 6);
  assert.equal((await get('/api/alerts/alr_000000000000000000000000')).status, 404);

  const u = await getJson('/api/users/user_alice');
  assert.equal(u.user.id, 'user_alice');
  assert.equal(u.history.length, 7);
  assert.equal(u.history[0].session_id, 'sess_user_alice_7'); // newest first
  assert.deepEqual(u.locations.map((l) => [l.country, l.city, l.ip, l.count]), [['FR', 'Paris', IP1, 7]]);
  assert.deepEqual(u.alerts.map((x) => x.rule).sort(), ['rapid', 'two']);
  assert.equal((await get('/api/users/user_nobody')).status, 404);

  const ip = await getJson('/api/ips/' + IP1);
  assert.deepEqual(ip.users, [{ user_id: 'user_alice', count: 7 }, { user_id: 'user_carol', count: 2 }]);
  assert.equal(ip.history.length, 9);
  assert.equal(ip.alerts.length, 3);
  assert.equal((await get('/api/ips/banana')).status, 400);
  assert.equal((await get('/api/ips/192.0.2.99')).status, 404);
  assert.equal((await get('/api/bogus')).status, 404);
});

test('serve refuses a console without a usable token (exit 2, saying how to make one)', () => {
  for (const [env, why] of [[{ VEILLE_CONSOLE_TOKEN: '' }, /it is not set/], [{ VEILLE_CONSOLE_TOKEN: 'short' }, /another length/]]) {
    const r = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', join(tmp, 'never'), '--console', '9999'],
      { cwd: ROOT, env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET, ...env }, encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--console: the console needs VEILLE_CONSOLE_TOKEN, a secret of 16 to 256 characters/);
    assert.match(r.stderr, /head -c 24 \/dev\/urandom \| base64/);
    assert.match(r.stderr, why);
    assert.ok(!existsSync(join(tmp, 'never')), 'nothing was created');
  }
  // a port in use: refused at start, after the webhook listener, naming --console (exit 3, a runtime error)
  const busy = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', join(tmp, 'busy'), '--console',
    srv.console.replace('http://', '')], { cwd: ROOT, encoding: 'utf8', timeout: 10000,
    env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET, VEILLE_CONSOLE_TOKEN: TOKEN } });
  assert.equal(busy.status, 3, busy.stderr);
  assert.match(busy.stderr, /veille serve: --console: cannot listen on 127\.0\.0\.1:\d+: Address already in use/);
  const bad = spawnSync(BIN, ['serve', '--console', 'localhost:http'], { cwd: ROOT, encoding: 'utf8',
    env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET, VEILLE_CONSOLE_TOKEN: TOKEN } });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--console: 'localhost:http' is not HOST:PORT or a port number/);
});

// ---- in a real browser ----

async function launch() {
  const { default: puppeteer } = await import('puppeteer-core');
  return puppeteer.launch({ executablePath: CHROMIUM, headless: true, userDataDir: mkdtempSync(join(tmp, 'chromium-')),
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
}

const rows = (page, sel) => page.$$eval(sel + ' tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent.trim())));
async function ready(page) {
  await page.waitForSelector('body[data-ready="1"]', { timeout: 10000 });
}
async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, name + '.png'), fullPage: true });
}

test('the console in headless Chromium: overview, alerts list and filters, an alert, a user, an IP', { skip: !existsSync(CHROMIUM) && `no ${CHROMIUM} (scripts/install-deps.sh --tests installs it)` }, async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const problems = [], requests = [];
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('request', (r) => requests.push(r.url()));

    await page.setExtraHTTPHeaders(AUTH);
    const res = await page.goto(srv.console + '/#/');
    assert.equal(res.status(), 200);
    await ready(page);
    assert.equal(await page.$eval('#total', (e) => e.textContent), '5');
    assert.deepEqual(await rows(page, '#by-rule'), [['two', '3'], ['rapid', '2']]);
    assert.deepEqual(await rows(page, '#by-state'), [['open', '5']]);
    assert.deepEqual(await rows(page, '#top-ips'), [[IP1, '3'], [IP2, '2']]);
    assert.deepEqual((await rows(page, '#top-users')).map((r) => r[1]), ['2', '2', '1']);
    assert.equal(await page.$$eval('#chart rect.bar', (r) => r.length) > 0, true);
    assert.match(await page.$eval('#ingest', (e) => e.textContent), /events stored15/);
    const [sink] = await rows(page, '#outbox');
    assert.match(sink[0], /127\.0\.0\.1:9/);
    assert.equal(Number(sink[1]) + Number(sink[2]), 5);
    await shot(page, 'overview');

    await page.click('#nav-alerts');
    await page.waitForSelector('#alerts tbody tr');
    assert.equal((await rows(page, '#alerts')).length, 5);
    assert.match(await page.$eval('#alert-count', (e) => e.textContent), /^5 matching, 5 shown/);
    // the filter form, as a user fills it in
    await page.type('#filters input[name=rule]', 'rapid');
    await page.click('#filters button');
    await page.waitForFunction(() => /^2 matching/.test(document.getElementById('alert-count')?.textContent));
    assert.match(await page.evaluate(() => location.hash), /^#\/alerts\?rule=rapid$/);
    const rapid = await rows(page, '#alerts');
    assert.equal(rapid.length, 2);
    assert.ok(rapid.every((r) => r[1] === 'high' && r[2] === 'rapid'));
    await shot(page, 'alerts-rapid');

    // follow an alert to its page
    await page.click('#alerts tbody tr a.alert-link');
    await page.waitForSelector('#alert-rule');
    assert.match(await page.evaluate(() => location.hash), /^#\/alert\/alr_/);
    assert.equal(await page.$eval('#alert-rule', (e) => e.textContent), 'rapid');
    const fields = await page.$eval('#alert-fields', (e) => e.textContent);
    assert.match(fields, /keyuser:user_/);
    assert.match(await page.$eval('#alert-evidence', (e) => e.textContent), /count\(session\.created, 10m\)6/);
    await shot(page, 'alert');

    await page.goto(srv.console + '/#/user/user_alice');
    await page.waitForSelector('#user-id');
    assert.equal(await page.$eval('#user-id', (e) => e.textContent), 'user_alice');
    assert.equal((await rows(page, '#history')).length, 7);
    assert.deepEqual(await rows(page, '#locations'), [['FR', 'Paris', IP1, '7', (await rows(page, '#locations'))[0][4]]]);
    assert.equal((await rows(page, '#user-alerts')).length, 2);
    await shot(page, 'user');

    await page.goto(srv.console + '/#/ip/' + IP1);
    await page.waitForSelector('#ip-id');
    assert.deepEqual(await rows(page, '#ip-users'), [['user_alice', '7'], ['user_carol', '2']]);
    assert.equal((await rows(page, '#ip-alerts')).length, 3);
    await shot(page, 'ip');

    assert.deepEqual(problems, [], 'no script error and no CSP violation');

    // the page's own API call, without the token: 401, with the CSP
    await page.setExtraHTTPHeaders({});
    const [status, policy, challenge] = await page.evaluate(() => fetch('/api/overview')
      .then((r) => [r.status, r.headers.get('content-security-policy'), r.headers.get('www-authenticate')]));
    assert.equal(status, 401);
    assert.match(policy, /default-src 'none'/);
    assert.equal(challenge, null, 'no basic-auth prompt over the page');
    assert.deepEqual(requests.filter((u) => !u.startsWith(srv.console)), [], 'nothing fetched from another host');
  } finally {
    await browser.close();
  }
});

// ---- triage: after the read-only checks above, which count every alert open ----

const post = (path, body, headers = { ...AUTH, 'Content-Type': 'application/json' }) =>
  fetch(srv.console + '/api' + path, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(5000) });
const cli = (...args) => spawnSync(BIN, [...args, '--data', dataDir], { encoding: 'utf8' });
// {alert id: state} as `veille alerts --state STATE --json` sees them (its --json is the sinks' object, stateless)
const cliStates = () => Object.fromEntries(['open', 'acked', 'resolved', 'fp'].flatMap((st) =>
  cli('alerts', '--state', st, '--json').stdout.trim().split('\n').filter(Boolean).map((l) => [JSON.parse(l).id, st])));

test('POST /api/alerts/ID/ack|resolve|false-positive: the decision in the store, seen by the CLI', async () => {
  const [alice] = (await getJson('/api/alerts?rule=two&user=user_alice')).alerts;
  const [bob] = (await getJson('/api/alerts?rule=two&user=user_bob')).alerts;
  assert.equal(alice.state, 'open');

  const acked = await post(`/alerts/${alice.id}/ack`, { note: 'looking into it' });
  const body = await acked.json();
  assert.equal(acked.status, 200, JSON.stringify(body));
  assert.equal(body.state, 'acked');
  assert.equal(body.by, 'console');
  assert.equal(body.allowed, false);
  assert.match(cli('alerts', '--state', 'acked').stdout, new RegExp(alice.id));
  assert.doesNotMatch(cli('alerts', '--state', 'acked').stdout, new RegExp(bob.id));
  const one = await getJson('/api/alerts/' + alice.id);
  assert.equal(one.state, 'acked');
  assert.deepEqual([one.triage.by, one.triage.note], ['console', 'looking into it']);
  assert.deepEqual((await getJson('/api/alerts?state=acked')).alerts.map((a) => a.id), [alice.id]);
  assert.equal((await getJson('/api/alerts?state=open')).matched, 4);
  assert.deepEqual((await getJson('/api/overview')).by_state, [{ state: 'open', count: 4 }, { state: 'acked', count: 1 }]);

  const res = await post(`/alerts/${alice.id}/resolve`, { by: 'ana' });
  assert.equal(res.status, 200);
  assert.equal(cliStates()[alice.id], 'resolved');

  // false positive with "also allow this key": the key on the allow list for the rule, as --allow does
  const fp = await post(`/alerts/${bob.id}/false-positive`, { note: 'bob tests the login page', allow: true });
  assert.equal(fp.status, 200, await fp.clone().text());
  assert.deepEqual(await fp.json().then((b) => [b.state, b.allowed]), ['fp', true]);
  assert.equal(cliStates()[bob.id], 'fp');
  const allowed = cli('allow', 'list').stdout;
  assert.match(allowed, /two/);
  assert.match(allowed, /user_bob/);
  assert.match(allowed, new RegExp(`false positive ${bob.id}: bob tests the login page`));
});

test('POST triage: 401 without the token, 415 unless JSON, 400 on bad input, 404 unknown, 405 elsewhere', async () => {
  const [carol] = (await getJson('/api/alerts?user=user_carol')).alerts;
  const before = cliStates()[carol.id];
  const noToken = await post(`/alerts/${carol.id}/ack`, {}, { 'Content-Type': 'application/json' });
  assert.equal(noToken.status, 401);
  // what a cross-site form can send: refused, whatever the token
  for (const type of ['application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'text/plain', null]) {
    const headers = { ...AUTH };
    if (type) headers['Content-Type'] = type;
    const r = await post(`/alerts/${carol.id}/ack`, type === null ? '{}' : 'note=hi', headers);
    assert.equal(r.status, 415, String(type));
    assert.match((await r.json()).error, /Content-Type: application\/json/);
  }
  assert.equal((await post(`/alerts/${carol.id}/ack`, {}, { ...AUTH, 'Content-Type': 'Application/JSON; charset=utf-8' })).status, 200);
  assert.equal(cliStates()[carol.id], 'acked');
  for (const [action, body, msg] of [
    ['false-positive', {}, /note: required for a false positive/],
    ['false-positive', { note: '  ' }, null],
    ['ack', '{"note": "x"', /the body is not JSON/],
    ['ack', '[]', /must be a JSON object/],
    ['ack', { note: 7 }, /note: expected a string of at most 511 bytes/],
    ['ack', { note: 'x'.repeat(512) }, /note: expected a string/],
    ['ack', { by: '' }, /by: empty/],
    ['ack', { allow: true }, /allow: only with false-positive/],
    ['false-positive', { note: 'n', allow: 'yes' }, /allow: expected true or false/],
    ['ack', { notes: 'typo' }, /unknown field 'notes'/],
  ]) {
    if (msg === null) continue; // a blank note is the client's to refuse; the API takes any text
    const r = await post(`/alerts/${carol.id}/${action}`, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.match((await r.json()).error, msg);
  }
  assert.equal(cliStates()[carol.id], 'acked', 'no bad request changed anything');
  assert.equal(before, 'open');
  const unknown = await post('/alerts/alr_000000000000000000000000/ack', { note: 'x' });
  assert.equal(unknown.status, 404);
  for (const path of ['/alerts/' + carol.id + '/delete', '/alerts', '/overview']) {
    const r = await post(path, {});
    assert.equal(r.status, 405, path);
  }
});

test('triage in headless Chromium: ack an alert with a note, see the state on the page and in veille alerts', { skip: !existsSync(CHROMIUM) && `no ${CHROMIUM}` }, async () => {
  const [target] = (await getJson('/api/alerts?rule=rapid&user=user_alice')).alerts;
  assert.equal(target.state, 'open');
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const problems = [];
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    page.on('pageerror', (e) => problems.push(String(e)));
    await page.setExtraHTTPHeaders(AUTH);
    await page.goto(srv.console + '/#/alerts?state=open&rule=rapid&user=user_alice');
    await page.waitForSelector('#alerts tbody tr');
    const open = await rows(page, '#alerts');
    assert.equal(open.length, 1);
    assert.equal(open[0][3], 'open'); // the state column
    await page.click('#alerts tbody tr a.alert-link');
    await page.waitForSelector('#triage-ack');
    assert.equal(await page.$eval('#alert-state', (e) => e.textContent), 'open');
    // a false positive without a note is refused on the page, nothing sent
    await page.click('#triage-false-positive');
    await page.waitForFunction(() => /needs a note/.test(document.getElementById('triage-status').textContent));
    await page.type('#triage-note', 'on call: checking with alice');
    await page.click('#triage-ack');
    await page.waitForFunction(() => document.getElementById('alert-state')?.textContent === 'acked');
    assert.match(await page.$eval('#triage-last', (e) => e.textContent), /byconsole.*noteon call: checking with alice/);
    await shot(page, 'alert-acked');
    assert.equal(cliStates()[target.id], 'acked');
    assert.match(cli('alerts', '--state', 'acked').stdout, new RegExp(target.id));
    // the list's state filter, as a user picks it
    await page.goto(srv.console + '/#/alerts');
    await page.waitForSelector('#alerts tbody tr');
    await page.select('#filters select[name=state]', 'acked');
    await page.click('#filters button');
    await page.waitForFunction(() => /^2 matching/.test(document.getElementById('alert-count')?.textContent));
    assert.ok((await rows(page, '#alerts')).every((r) => r[3] === 'acked'));
    await shot(page, 'alerts-acked');
    assert.deepEqual(problems, [], 'no script error and no CSP violation');
  } finally {
    await browser.close();
  }
});

test('SIGTERM stops serve with its console cleanly (under ASan: no error, no leak)', async () => {
  const exited = new Promise((ok) => srv.proc.once('exit', (code, signal) => ok({ code, signal })));
  srv.proc.kill('SIGTERM');
  const { code, signal } = await exited;
  assert.equal(signal, null, srv.log);
  assert.equal(code, 0, srv.log);
  assert.doesNotMatch(srv.log, /Sanitizer|runtime error/);
  assert.match(srv.log, /msg=stopped/);
});
