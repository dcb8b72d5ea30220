// Interop: the syslog alert sinks against a real rsyslogd. Each test starts its own
// rsyslogd in the foreground on free loopback ports and a unix socket in a temp dir
// (never /dev/log, never the system's rsyslog), and writes every message it receives
// as one JSON line of rsyslog's own parsed properties (pri, facility, severity,
// timereported, hostname, app-name, procid, msgid, structured-data, msg, and
// mmpstrucdata's reading of the SD). So what is asserted is what rsyslog understood,
// not what veille meant to send. Deliveries are signed by the official `svix` library
// and alerts raised by a rule file, as in alerts.test.mjs.
//
// Set RSYSLOGD to use another rsyslogd than /usr/sbin/rsyslogd (Debian's `rsyslog`).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { Webhook } from 'svix';
import { envelope, session, untilApplied, untilListening } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const RSYSLOGD = process.env.RSYSLOGD ?? '/usr/sbin/rsyslogd';
const SECRET = 'whsec_' + randomBytes(32).toString('base64');
const HOST = hostname();

const SD_ID = 'veille@32473';
const SEVERITY = { critical: 2, high: 3, medium: 4, low: 5, info: 6 };
const FACILITY = { authpriv: 10, local3: 19 };
// A rule name longer than the 32 characters RFC 5424 allows in MSGID: veille cuts it.
// (rsyslog itself accepts a longer MSGID, so the cut is asserted here, not by rsyslog.)
const LONG = 'medium_rule_with_a_name_longer_than_32';
const RULES = `# brute force: more than 5 sign-ins for one user within 10 minutes
rule rapid {
  severity high
  on       session.created
  when     count(session.created, 10m) > 5
  suppress 30m
  tags     "brute"
}
# a second sign-in within 10 minutes
rule ${LONG} {
  severity medium
  on       session.created
  when     count(session.created, 10m) > 1
  suppress 30m
}
`;

let tmp, rulesPath;
const children = new Set(); // every process started here, killed in after() if still running

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'veille-syslog-'));
  rulesPath = join(tmp, 'syslog.rules');
  writeFileSync(rulesPath, RULES);
});

after(async () => {
  for (const p of children) await stopChild(p, 'SIGTERM', 3000);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// ---- generic helpers ----

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const running = (p) => p.exitCode === null && p.signalCode === null;

async function stopChild(p, signal = 'SIGTERM', ms = 3000) {
  if (!running(p)) { children.delete(p); return; }
  const exited = new Promise((ok) => p.once('exit', ok));
  p.kill(signal);
  let timer;
  const late = new Promise((ok) => { timer = setTimeout(() => ok(true), ms); });
  if (await Promise.race([exited.then(() => false), late])) {
    p.kill('SIGKILL');
    await exited;
  }
  clearTimeout(timer); // a pending timer would keep node alive for `ms`
  children.delete(p);
}

// Poll cond() (which may throw to fail at once) until it returns a truthy value.
async function waitFor(what, cond, ms, diag = () => '') {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${diag()}`);
    await sleep(50);
  }
}

const usedPorts = new Set();
async function freeTcpPort() {
  for (;;) {
    const s = net.createServer();
    await new Promise((ok, fail) => { s.once('error', fail); s.listen(0, '127.0.0.1', ok); });
    const { port } = s.address();
    await new Promise((ok) => s.close(ok));
    if (!usedPorts.has(port)) { usedPorts.add(port); return port; }
  }
}
async function freeUdpPort() {
  for (;;) {
    const s = dgram.createSocket('udp4');
    await new Promise((ok, fail) => { s.once('error', fail); s.bind(0, '127.0.0.1', ok); });
    const { port } = s.address();
    await new Promise((ok) => s.close(ok));
    if (!usedPorts.has(port)) { usedPorts.add(port); return port; }
  }
}

// ---- the rsyslogd harness ----

// What rsyslog writes per message: one JSON object per line (format="json" escapes
// each property), then "vars": all message variables, i.e. $!input (the input label)
// and $!rfc5424-sd (mmpstrucdata's parse of the structured data, values unescaped).
const PROPS = [
  ['inputname', 'inputname'], ['pri', 'pri'], ['facility', 'syslogfacility'],
  ['severity', 'syslogseverity'], ['timereported', 'timereported', 'rfc3339'],
  ['hostname', 'hostname'], ['appname', 'app-name'], ['procid', 'procid'], ['msgid', 'msgid'],
  ['sd', 'structured-data'], ['programname', 'programname'], ['syslogtag', 'syslogtag'],
  ['msg', 'msg'], ['rawmsg', 'rawmsg'],
];
function jsonlTemplate() {
  const parts = [];
  PROPS.forEach(([key, prop, date], i) => {
    parts.push(`constant(value="${i === 0 ? '{' : '\\",'}\\"${key}\\":\\"")`);
    parts.push(`property(name="${prop}" format="json"${date ? ` dateFormat="${date}"` : ''})`);
  });
  parts.push('constant(value="\\",\\"vars\\":")', 'property(name="$!")', 'constant(value="}\\n")');
  return `template(name="veille_jsonl" type="list") {\n  ${parts.join('\n  ')}\n}`;
}

// inputs: [{ label, type: 'udp'|'tcp'|'unix', port | path }]. Each input has its own
// ruleset writing to DIR/<label>.jsonl, so every transport has its own file.
function rsyslogConf(dir, inputs) {
  const types = new Set(inputs.map((i) => i.type));
  const lines = [
    `# generated by tests/interop/syslog.test.mjs`,
    // maxMessageSize must come before the inputs are loaded; the default (8k) would
    // cut longer messages and, over TCP, deliver the rest as extra messages.
    `global(workDirectory="${dir}/work" maxMessageSize="64k" net.enableDNS="off")`,
  ];
  // SysSock.Use="off": no /dev/log; only the socket of the input below
  if (types.has('unix')) lines.push('module(load="imuxsock" SysSock.Use="off")');
  if (types.has('udp')) lines.push('module(load="imudp")');
  if (types.has('tcp')) lines.push('module(load="imtcp")');
  lines.push('module(load="mmpstrucdata")', jsonlTemplate());
  for (const i of inputs) {
    lines.push(`ruleset(name="in_${i.label}") {`, `  set $!input = "${i.label}";`,
      '  action(type="mmpstrucdata")',
      `  action(type="omfile" file="${join(dir, i.label + '.jsonl')}" template="veille_jsonl")`, '}');
    if (i.type === 'udp') lines.push(`input(type="imudp" address="127.0.0.1" port="${i.port}" ruleset="in_${i.label}")`);
    // octet-counted framing (RFC 6587) is recognised per frame by default
    if (i.type === 'tcp') lines.push(`input(type="imtcp" address="127.0.0.1" port="${i.port}" ruleset="in_${i.label}")`);
    // By default imuxsock stamps local messages with the reception time (UseSysTimeStamp)
    // and ignores theirs (IgnoreTimestamp): both off, so timereported is what was sent.
    if (i.type === 'unix') lines.push(`input(type="imuxsock" socket="${i.path}" ruleset="in_${i.label}" ` +
      'IgnoreTimestamp="off" UseSysTimeStamp="off" ParseHostname="off" RateLimit.Interval="0")');
  }
  // rsyslogd's own messages (start, errors) go to the default ruleset
  lines.push(`*.* action(type="omfile" file="${join(dir, 'internal.log')}")`);
  return lines.join('\n') + '\n';
}

const PROBE = 'rsyslog_probe';
const isProbe = (r) => r.appname === PROBE || r.programname === PROBE;
const hasLogger = spawnSync('logger', ['--version'], { encoding: 'utf8' }).status === 0;
const octet = (m) => `${Buffer.byteLength(m)} ${m}`;

function sendUdp(port, msg) {
  const s = dgram.createSocket('udp4');
  return new Promise((ok, fail) => s.send(Buffer.from(msg), port, '127.0.0.1', (err) => {
    s.close();
    if (err) fail(err); else ok();
  }));
}

// Resolves true once the bytes are written and the connection closed, false if refused.
function sendTcp(port, data) {
  return new Promise((ok, fail) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => c.end(data));
    c.once('close', (hadError) => { if (!hadError) ok(true); });
    c.once('error', (e) => (e.code === 'ECONNREFUSED' ? ok(false) : fail(e)));
  });
}

// A local (glibc-style, no hostname) datagram to a unix socket, through util-linux
// logger: node has no unix datagram sockets. `-i` logs logger's own pid.
function sendUnix(path, tag, msg, prio = 'user.notice') {
  const r = spawnSync('logger', ['--socket', path, '-d', '-t', tag, '-i', '-p', prio, '--', msg],
    { encoding: 'utf8', timeout: 5000 });
  assert.equal(r.status, 0, `logger: ${r.stderr}`);
  return r.pid;
}

async function startRsyslog(name, inputs) {
  const dir = join(tmp, `rsyslog-${name}`);
  mkdirSync(join(dir, 'work'), { recursive: true });
  const conf = join(dir, 'rsyslog.conf');
  writeFileSync(conf, rsyslogConf(dir, inputs));
  if (!existsSync(RSYSLOGD)) throw new Error(`${RSYSLOGD} not found: install Debian's rsyslog package (tests/run.sh does) or set RSYSLOGD`);
  // rsyslogd -n keeps running on a broken config; -N1 validates it and exits non-zero
  const check = spawnSync(RSYSLOGD, ['-N1', '-f', conf], { encoding: 'utf8', timeout: 10000 });
  if (check.status !== 0) throw new Error(`rsyslogd -N1 refused ${conf} (${check.status}):\n${check.stderr}\n${readFileSync(conf, 'utf8')}`);

  const env = { ...process.env };
  for (const k of ['NOTIFY_SOCKET', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES']) delete env[k];
  const proc = spawn(RSYSLOGD, ['-n', '-f', conf, '-i', join(dir, 'rsyslogd.pid')],
    { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  const rs = { name, dir, conf, proc, inputs, log: '' };
  proc.stdout.on('data', (d) => { rs.log += d; });
  proc.stderr.on('data', (d) => { rs.log += d; });
  proc.once('exit', () => children.delete(proc));
  const byLabel = Object.fromEntries(inputs.map((i) => [i.label, i]));

  rs.file = (label) => join(dir, `${label}.jsonl`);
  // Every record received on one input, probes left out. A line that is not JSON is a
  // harness bug (the template), so it fails loudly.
  rs.all = (label) => {
    if (!byLabel[label]) throw new Error(`no input ${label} in rsyslog ${name}`);
    const f = rs.file(label);
    if (!existsSync(f)) return [];
    return readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => {
      try { return JSON.parse(l); } catch (e) { throw new Error(`rsyslog ${name} wrote a line that is not JSON (${e.message}): ${l}`); }
    });
  };
  rs.records = (label) => rs.all(label).filter((r) => !isProbe(r));
  rs.diag = () => {
    const internal = join(dir, 'internal.log');
    return `--- rsyslogd ${name} (pid ${proc.pid}, exit ${proc.exitCode ?? proc.signalCode}) output:\n${rs.log}` +
      (existsSync(internal) ? `--- internal.log:\n${readFileSync(internal, 'utf8')}` : '') +
      inputs.map((i) => `--- ${i.label}.jsonl:\n${existsSync(rs.file(i.label)) ? readFileSync(rs.file(i.label), 'utf8') : '(none)'}`).join('\n');
  };
  rs.stop = () => stopChild(proc, 'SIGTERM', 3000);

  // Ready = a probe sent to every input came out in its file. rsyslogd does not exit
  // when a port is taken (it logs "Could not create ... listener" and carries on), so
  // its output is watched too.
  const seen = (label) => rs.all(label).some(isProbe);
  const probe = `<13>1 - - ${PROBE} - - - probe`;
  let lastUdp = 0;
  const sent = new Set();
  const ready = (i) => seen(i.label) || (i.type === 'unix' && !hasLogger && existsSync(i.path));
  try {
    await waitFor(`rsyslogd ${name} to be ready`, async () => {
      if (!running(proc)) throw new Error(`rsyslogd ${name} exited early (${proc.exitCode ?? proc.signalCode})`);
      if (/could not create|address already in use|error during/i.test(rs.log)) throw new Error(`rsyslogd ${name} reported an error`);
      for (const i of inputs) {
        if (ready(i)) continue;
        // UDP to a port not bound yet is lost: resend every 200 ms. A TCP frame or a
        // unix datagram, once accepted, waits for rsyslogd: sent once.
        if (i.type === 'udp' && Date.now() - lastUdp > 200) { lastUdp = Date.now(); await sendUdp(i.port, probe); }
        if (i.type === 'tcp' && !sent.has(i.label) && await sendTcp(i.port, octet(probe))) sent.add(i.label);
        if (i.type === 'unix' && hasLogger && !sent.has(i.label) && existsSync(i.path)) { sendUnix(i.path, PROBE, 'probe'); sent.add(i.label); }
      }
      return inputs.every(ready);
    }, 10000, rs.diag);
  } catch (e) {
    await rs.stop();
    e.message += `\n${rs.diag()}`;
    throw e;
  }
  return rs;
}

// ---- RFC 5424 helpers ----

// STRUCTURED-DATA parsed strictly by RFC 5424 section 6.3: inside a PARAM-VALUE, '"',
// '\' and ']' must be escaped with '\'; '\' before anything else is a literal
// backslash. rsyslog is laxer (it accepts an unescaped ']' in a value), hence this.
function parseSD(sd) {
  if (sd === '-') return {};
  const out = {};
  let i = 0;
  const fail = (why) => { throw new Error(`malformed STRUCTURED-DATA (${why}) at offset ${i}: ${sd}`); };
  const name = () => {
    let s = '';
    while (i < sd.length && !' ]="'.includes(sd[i])) s += sd[i++];
    if (s === '' || s.length > 32) fail(`bad name '${s}'`);
    return s;
  };
  while (i < sd.length) {
    if (sd[i++] !== '[') fail('expected [');
    const id = name();
    if (id in out) fail(`SD-ID ${id} twice`);
    const params = {};
    while (sd[i] === ' ') {
      i++;
      const p = name();
      if (sd[i++] !== '=') fail('expected =');
      if (sd[i++] !== '"') fail('expected "');
      let v = '';
      for (;;) {
        if (i >= sd.length) fail('unterminated PARAM-VALUE');
        const c = sd[i++];
        if (c === '"') break;
        if (c === ']') fail('unescaped ] in PARAM-VALUE');
        if (c === '\\') {
          if (i >= sd.length) fail('\\ at the end');
          const n = sd[i++];
          v += '"\\]'.includes(n) ? n : '\\' + n;
        } else v += c;
      }
      if (p in params) fail(`PARAM-NAME ${p} twice`);
      params[p] = v;
    }
    if (sd[i++] !== ']') fail('expected ]');
    out[id] = params;
  }
  return out;
}
const sdEscape = (v) => v.replace(/["\\\]]/g, (c) => '\\' + c);

// The SD params the contract promises for an alert: empty values left out.
function expectedSD(a) {
  const p = { id: a.id, rule: a.rule, severity: a.severity, user: a.user_id, ip: a.ip, session: a.session_id };
  return Object.fromEntries(Object.entries(p).filter(([, v]) => typeof v === 'string' && v !== ''));
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad2 = (n) => String(n).padStart(2, '0');

// ---- veille helpers ----

let seq = 0;
const newId = () => `msg_syslog_${process.pid}_${++seq}`;

function startVeille(dataDir, args) {
  const s = { log: '', out: '', base: null, dataDir };
  // every alert its own incident: these tests count the alerts a sink receives
  s.proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir, '--incident-window', '0s', ...args],
    { cwd: ROOT, env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(s.proc);
  s.proc.once('exit', () => children.delete(s.proc));
  s.proc.stdout.on('data', (d) => { s.out += d; });
  s.stop = () => stopChild(s.proc, 'SIGTERM', 5000);
  return untilListening(s);
}

const cli = (dataDir, ...args) => spawnSync(BIN, [...args, '--data', dataDir], { cwd: ROOT, encoding: 'utf8', timeout: 10000 });
const cliJson = (dataDir, ...args) => {
  const r = cli(dataDir, ...args, '--json');
  assert.equal(r.status, 0, `veille ${args.join(' ')} --json: ${r.stderr}`);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
};

async function deliver(srv, body, id = newId()) {
  const when = new Date();
  const headers = { 'content-type': 'application/json', 'svix-id': id,
    'svix-timestamp': String(Math.floor(when.getTime() / 1000)),
    'svix-signature': new Webhook(SECRET).sign(id, when, body) };
  const res = await fetch(srv.base + '/webhooks/clerk', { method: 'POST', headers, body, signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (res.status === 200) await untilApplied(srv.base); // alerts are raised at apply
  return { id, status: res.status, text };
}

// n session.created for one user, 10 s of event time apart, the first 4 min ago.
// ip null: a session with no latest_activity, hence an alert with an empty ip.
async function burst(srv, userId, n, ip) {
  const t0 = Date.now() - 240000;
  for (let i = 1; i <= n; i++) {
    const s = session(`sess_${randomBytes(4).toString('hex')}_${i}`, userId, t0 + (i - 1) * 10000, ip ?? undefined);
    if (ip === null) s.latest_activity = null;
    const r = await deliver(srv, envelope('session.created', s));
    assert.equal(r.status, 200, `delivery ${i} for ${userId}: ${r.text}`);
  }
}

async function metricsText(srv) {
  const res = await fetch(srv.base + '/metrics', { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  return res.text();
}

// The value of `name{...,sink="SINK",...}`; undefined if there is no such sample.
function sinkMetric(text, name, sink) {
  const label = `sink="${sink.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
  for (const l of text.split('\n')) {
    if (!l.startsWith(name + '{')) continue;
    const close = l.lastIndexOf('}');
    const labels = l.slice(name.length + 1, close);
    if (labels === label || labels.startsWith(label + ',') || labels.includes(',' + label + ',') || labels.endsWith(',' + label))
      return Number(l.slice(close + 1).trim());
  }
  return undefined;
}

// A received message checked against an alert, field by field, as rsyslog parsed it.
// `alert` is the file-sink line (what every sink sees, suppressed 0), `stored` the same
// alert from `veille alerts --json`.
function assertRemote(rec, alert, stored, { facility, pid, transport }) {
  const where = `${transport} ${alert.rule}: ${rec.rawmsg}`;
  const pri = facility * 8 + SEVERITY[alert.severity];
  assert.equal(rec.pri, String(pri), `PRI ${where}`);
  assert.equal(rec.facility, String(facility), where);
  assert.equal(rec.severity, String(SEVERITY[alert.severity]), where);
  assert.ok(rec.rawmsg.startsWith(`<${pri}>1 `), `RFC 5424 version 1 header: ${where}`);
  assert.equal(rec.appname, 'veille', `APP-NAME ${where}`);
  assert.equal(rec.procid, String(pid), `PROCID is veille's pid: ${where}`);
  assert.equal(rec.msgid, alert.rule.slice(0, 32), `MSGID is the rule name cut to 32: ${where}`);
  assert.equal(rec.hostname, HOST, `HOSTNAME: ${where}`);
  // rsyslog prints TIMESTAMP back as received: RFC 3339, milliseconds, Z
  assert.equal(rec.timereported, alert.raised_at, `TIMESTAMP is raised_at: ${where}`);
  assert.match(rec.timereported, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  // structured data: strictly parsed here, and as rsyslog's mmpstrucdata read it
  const want = expectedSD(alert);
  assert.deepEqual(parseSD(rec.sd), { [SD_ID]: want }, `STRUCTURED-DATA ${where}`);
  assert.deepEqual(rec.vars['rfc5424-sd'], { [SD_ID]: want }, `mmpstrucdata's reading: ${where}`);
  for (const [k, v] of Object.entries(want)) assert.ok(rec.sd.includes(` ${k}="${sdEscape(v)}"`), `${k} escaped: ${rec.sd}`);
  // MSG: the alert JSON, nothing before or after it (no BOM, no trailing newline)
  let msg;
  assert.doesNotThrow(() => { msg = JSON.parse(rec.msg); }, `MSG is one JSON object: ${where}`);
  assert.equal(rec.msg, rec.msg.trim(), `MSG has no surrounding whitespace: ${where}`);
  assert.deepEqual(msg, alert, `MSG is the alert JSON: ${where}`);
  const { suppressed: _s, ...s } = stored;
  const { suppressed, ...m } = msg;
  assert.deepEqual(m, s, `MSG matches veille alerts --json: ${where}`);
  assert.equal(suppressed, 0);
}

// ---- (0) the harness itself, with hand-made messages ----

test('harness: rsyslogd parses hand-made RFC 5424 UDP, octet-counted TCP and local unix messages', async (t) => {
  const udp = await freeUdpPort(), tcp = await freeTcpPort();
  const sock = join(tmp, 'selftest.sock');
  const rs = await startRsyslog('selftest', [{ label: 'udp', type: 'udp', port: udp },
    { label: 'tcp', type: 'tcp', port: tcp }, { label: 'unix', type: 'unix', path: sock }]);

  const sdUser = 'u_q"b\\s]x_é';
  const json = JSON.stringify({ id: 'alr_hand', summary: 'a "quoted" \\ back ] bracket ünï' });
  const sd = `[${SD_ID} id="alr_hand" rule="rapid" severity="high" user="${sdEscape(sdUser)}" session="sess_1"]`;
  await sendUdp(udp, `<155>1 2024-05-01T10:11:12.345Z ${HOST} veille 4242 rapid ${sd} ${json}`);
  // two frames in one write, then one of 20 kB (over rsyslog's default 8k limit)
  const f1 = `<83>1 2024-05-01T10:11:13.001Z ${HOST} veille 4243 one [${SD_ID} id="alr_1"] ${json}`;
  const f2 = `<84>1 2024-05-01T10:11:13.002Z ${HOST} veille 4243 two - {"n":2}`;
  const big = `<84>1 2024-05-01T10:11:13.003Z ${HOST} veille 4243 big - ${'x'.repeat(20000)}`;
  assert.ok(await sendTcp(tcp, octet(f1) + octet(f2) + octet(big)));
  const loggerPid = hasLogger ? sendUnix(sock, 'veille', json, 'authpriv.err') : null;

  await waitFor('the hand-made messages', () => rs.records('udp').length >= 1 && rs.records('tcp').length >= 3 &&
    (!hasLogger || rs.records('unix').length >= 1), 5000, rs.diag);

  const [u] = rs.records('udp');
  assert.equal(rs.records('udp').length, 1);
  assert.deepEqual([u.inputname, u.pri, u.facility, u.severity, u.timereported, u.hostname, u.appname, u.procid, u.msgid],
    ['imudp', '155', '19', '3', '2024-05-01T10:11:12.345Z', HOST, 'veille', '4242', 'rapid']);
  assert.equal(u.sd, sd, 'structured-data is the raw SD, escapes kept');
  assert.deepEqual(parseSD(u.sd), { [SD_ID]: { id: 'alr_hand', rule: 'rapid', severity: 'high', user: sdUser, session: 'sess_1' } });
  assert.deepEqual(u.vars, { input: 'udp', 'rfc5424-sd': { [SD_ID]: { id: 'alr_hand', rule: 'rapid', severity: 'high', user: sdUser, session: 'sess_1' } } });
  assert.equal(u.msg, json, 'msg is MSG exactly, no leading space');
  assert.equal(u.programname, 'veille');
  assert.equal(u.syslogtag, 'veille[4242]');

  const tr = rs.records('tcp');
  assert.equal(tr.length, 3, 'three frames, three messages');
  assert.deepEqual(tr.map((r) => [r.pri, r.msgid, r.timereported]), [['83', 'one', '2024-05-01T10:11:13.001Z'],
    ['84', 'two', '2024-05-01T10:11:13.002Z'], ['84', 'big', '2024-05-01T10:11:13.003Z']]);
  assert.equal(tr[0].msg, json);
  assert.equal(tr[1].sd, '-');
  assert.deepEqual(tr[1].vars, { input: 'tcp' }, 'no SD, no rfc5424-sd');
  assert.equal(tr[2].msg.length, 20000, 'maxMessageSize=64k: a 20 kB message arrives whole');

  if (!hasLogger) { t.diagnostic('logger not found: the unix socket was only checked to exist'); return rs.stop(); }
  const [x] = rs.records('unix');
  assert.equal(rs.records('unix').length, 1);
  assert.match(x.rawmsg, new RegExp(`^<83>[A-Z][a-z]{2} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d veille\\[${loggerPid}\\]: `));
  assert.deepEqual([x.inputname, x.pri, x.programname, x.syslogtag, x.appname, x.procid, x.hostname],
    ['imuxsock', '83', 'veille', `veille[${loggerPid}]:`, 'veille', String(loggerPid), HOST]);
  assert.equal(x.msg, ' ' + json, 'imuxsock keeps the space after "veille[PID]:" in msg');
  // timereported comes from the message (seconds, local time), not the reception time
  assert.match(x.timereported, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/);
  await rs.stop();
  assert.equal(rs.proc.exitCode, 0, rs.diag());
});

// ---- (1) one veille, four syslog sinks, one rsyslogd ----

describe('veille serve with syslog sinks, received by rsyslogd', () => {
  let rs, srv, dataDir, filePath, ports, sockPath, alerts, stored;
  const spec = {};

  before(async () => {
    ports = { udp: await freeUdpPort(), tcp: await freeTcpPort(), crit: await freeTcpPort() };
    sockPath = join(tmp, 'log.sock');
    rs = await startRsyslog('main', [{ label: 'udp', type: 'udp', port: ports.udp },
      { label: 'tcp', type: 'tcp', port: ports.tcp }, { label: 'crit', type: 'tcp', port: ports.crit },
      { label: 'unix', type: 'unix', path: sockPath }]);
    spec.udp = `syslog://127.0.0.1:${ports.udp}`;
    spec.tcp = `syslog+tcp://127.0.0.1:${ports.tcp}`;
    spec.unix = `syslog:${sockPath}`;
    spec.crit = `syslog+tcp://127.0.0.1:${ports.crit}`;
    dataDir = join(tmp, 'data-main');
    filePath = join(tmp, 'alerts.ndjson');
    srv = await startVeille(dataDir, ['--rules', rulesPath,
      '--alert', spec.udp, '--facility', 'local3',
      '--alert', spec.tcp,
      '--alert', spec.unix,
      '--alert', spec.crit, '--min-severity', 'critical',
      '--alert', `file:${filePath}`]);
  });

  after(async () => {
    if (srv) await srv.stop();
    if (rs) await rs.stop();
  });

  const diag = () => `--- veille:\n${srv?.log}\n${rs?.diag()}`;
  const fromServe = (label) => rs.records(label).filter((r) => r.procid === String(srv.proc.pid));
  const byId = (label) => Object.fromEntries(fromServe(label).map((r) => [JSON.parse(r.msg.trim()).id, r]));

  test('raised alerts arrive on every syslog transport, once each', async () => {
    // user_brute: the medium rule fires on the 2nd sign-in, `rapid` (high) on the 6th.
    // The second user's id needs SD escaping and is not ASCII; its sessions have no IP,
    // so its alert has an empty ip, which the SD must leave out.
    await burst(srv, 'user_brute', 6, '198.51.100.7');
    await burst(srv, 'user_q"b\\s]x_é', 2, null);

    await waitFor('3 lines in the file sink', () => existsSync(filePath) &&
      readFileSync(filePath, 'utf8').split('\n').filter(Boolean).length === 3, 5000, diag);
    alerts = readFileSync(filePath, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.deepEqual(alerts.map((a) => [a.rule, a.severity, a.user_id]).sort(), [
      [LONG, 'medium', 'user_brute'], [LONG, 'medium', 'user_q"b\\s]x_é'], ['rapid', 'high', 'user_brute']].sort());
    assert.equal(alerts.find((a) => a.user_id !== 'user_brute').ip, '', 'no IP on the second user\'s alert');
    stored = Object.fromEntries(cliJson(dataDir, 'alerts').map((a) => [a.id, a]));
    assert.deepEqual(Object.keys(stored).sort(), alerts.map((a) => a.id).sort());

    await waitFor('the 3 alerts at rsyslogd over UDP, TCP and the unix socket', () =>
      ['udp', 'tcp', 'unix'].every((l) => fromServe(l).length >= 3), 10000, diag);
    // the sinks are done once their counters say so; nothing may arrive after that
    await waitFor('veille_sink_delivered_total 3 on the three sinks', async () => {
      const m = await metricsText(srv);
      return ['udp', 'tcp', 'unix'].every((l) => sinkMetric(m, 'veille_sink_delivered_total', spec[l]) === 3);
    }, 5000, diag);
    for (const l of ['udp', 'tcp', 'unix']) {
      const got = rs.records(l);
      assert.equal(got.length, 3, `exactly 3 messages on ${l}, nothing else (no frame merged, split or repeated):\n` +
        got.map((r) => r.rawmsg).join('\n'));
      assert.deepEqual(Object.keys(byId(l)).sort(), alerts.map((a) => a.id).sort(), `each alert once on ${l}`);
    }
  });

  test('UDP, facility local3: RFC 5424 header, SD and MSG as rsyslog parsed them', () => {
    assert.ok(alerts, 'alerts were raised');
    const got = byId('udp');
    for (const a of alerts) assertRemote(got[a.id], a, stored[a.id], { facility: FACILITY.local3, pid: srv.proc.pid, transport: 'udp' });
    assert.equal(got[alerts.find((a) => a.rule === 'rapid').id].pri, '155', 'local3 + high');
  });

  test('TCP with octet counting, default facility authpriv: the same, one message per frame', () => {
    assert.ok(alerts, 'alerts were raised');
    const got = byId('tcp');
    for (const a of alerts) assertRemote(got[a.id], a, stored[a.id], { facility: FACILITY.authpriv, pid: srv.proc.pid, transport: 'tcp' });
    assert.equal(got[alerts.find((a) => a.rule === 'rapid').id].pri, '83', 'authpriv + high');
    for (const r of rs.records('tcp')) {
      assert.equal(r.inputname, 'imtcp');
      assert.doesNotMatch(r.rawmsg, /^\s|#012|\s$/, 'no stray newline before, inside or after a frame');
    }
  });

  test('local socket: <PRI>Mmm dd HH:MM:SS veille[PID]: JSON, programname veille, local time', () => {
    assert.ok(alerts, 'alerts were raised');
    const got = byId('unix');
    for (const a of alerts) {
      const r = got[a.id];
      const pri = FACILITY.authpriv * 8 + SEVERITY[a.severity];
      assert.equal(r.inputname, 'imuxsock');
      const m = /^<(\d+)>([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) veille\[(\d+)\]: (.*)$/s.exec(r.rawmsg);
      assert.ok(m, `traditional local format: ${r.rawmsg}`);
      assert.equal(m[1], String(pri), `PRI authpriv: ${r.rawmsg}`);
      assert.equal(m[7], String(srv.proc.pid));
      // the timestamp is raised_at in local time (this process and veille share TZ)
      const t = new Date(Date.parse(a.raised_at));
      assert.deepEqual([m[2], Number(m[3]), `${m[4]}:${m[5]}:${m[6]}`],
        [MONTHS[t.getMonth()], t.getDate(), `${pad2(t.getHours())}:${pad2(t.getMinutes())}:${pad2(t.getSeconds())}`],
        `timestamp is raised_at ${a.raised_at} in local time: ${r.rawmsg}`);
      assert.equal(r.pri, String(pri));
      assert.equal(r.programname, 'veille');
      assert.equal(r.syslogtag, `veille[${srv.proc.pid}]:`);
      assert.equal(r.procid, String(srv.proc.pid));
      assert.equal(r.hostname, HOST, 'rsyslog names the local host');
      assert.deepEqual(JSON.parse(r.msg), a, 'MSG is the alert JSON');
      assert.equal(r.msg, ' ' + m[8], 'nothing after the JSON');
      assert.equal(m[8], m[8].trim());
    }
  });

  test('the critical-only sink receives nothing, and its outbox stays empty', async () => {
    assert.ok(alerts, 'alerts were raised');
    assert.deepEqual(fromServe('crit'), [], 'no high or medium alert on a --min-severity critical sink');
    const m = await metricsText(srv);
    assert.equal(sinkMetric(m, 'veille_sink_delivered_total', spec.crit), 0);
    assert.equal(sinkMetric(m, 'veille_sink_queue_depth', spec.crit), 0);
  });

  test('/metrics: delivered equals what rsyslogd received, queues empty, nothing retried or dead', async () => {
    assert.ok(alerts, 'alerts were raised');
    const m = await metricsText(srv);
    for (const l of ['udp', 'tcp', 'unix', 'crit']) {
      const s = spec[l];
      assert.equal(sinkMetric(m, 'veille_sink_delivered_total', s), fromServe(l).length, `delivered on ${s}\n${m}`);
      assert.equal(sinkMetric(m, 'veille_sink_queue_depth', s), 0, `queue depth of ${s}`);
      assert.equal(sinkMetric(m, 'veille_sink_retried_total', s), 0, `retried on ${s}`);
      assert.equal(sinkMetric(m, 'veille_sink_dead_total', s), 0, `dead on ${s}`);
      assert.equal(sinkMetric(m, 'veille_sink_outbox_full_total', s), 0, `outbox full on ${s}`);
    }
    for (const l of ['udp', 'tcp', 'unix']) {
      const last = sinkMetric(m, 'veille_sink_last_success_timestamp_seconds', spec[l]);
      assert.ok(last > Date.now() / 1000 - 120 && last <= Date.now() / 1000 + 5, `last success of ${spec[l]}: ${last}`);
      assert.equal(sinkMetric(m, 'veille_sink_delivery_latency_seconds_count', spec[l]), 3);
      assert.ok(sinkMetric(m, 'veille_sink_delivery_latency_seconds_sum', spec[l]) >= 0);
    }
    assert.deepEqual(cliJson(dataDir, 'outbox'), [], 'nothing waiting in the outbox');
  });

  // ---- (2) veille test-alert ----

  test('veille test-alert over TCP is received by rsyslogd with MSGID veille_test_alert', async () => {
    const r = spawnSync(BIN, ['test-alert', '--alert', spec.tcp], { cwd: tmp, encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.match(r.stdout, /delivered: /);
    const rec = await waitFor('the test alert at rsyslogd', () =>
      rs.records('tcp').find((x) => x.msgid === 'veille_test_alert'), 10000, diag);
    assert.equal(rec.appname, 'veille');
    assert.equal(rec.procid, String(r.pid), 'PROCID is the test-alert process');
    assert.equal(rec.hostname, HOST);
    assert.equal(rec.pri, String(FACILITY.authpriv * 8 + SEVERITY.info), 'default severity info, facility authpriv');
    const body = JSON.parse(rec.msg);
    assert.match(body.id, /^alr_test_/);
    assert.equal(body.rule, 'veille_test_alert');
    assert.equal(body.severity, 'info');
    assert.equal(rec.timereported, body.raised_at);
    assert.deepEqual(parseSD(rec.sd)[SD_ID], expectedSD(body));
    assert.equal(rs.records('tcp').filter((x) => x.msgid === 'veille_test_alert').length, 1, 'sent once');
  });

  test('veille test-alert ignores --min-severity and honours --facility and --severity (UDP)', async () => {
    const r = spawnSync(BIN, ['test-alert', '--alert', spec.udp, '--facility', 'local3', '--min-severity', 'critical',
      '--severity', 'high'], { cwd: tmp, encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    const rec = await waitFor('the test alert over UDP', () =>
      rs.records('udp').find((x) => x.msgid === 'veille_test_alert'), 10000, diag);
    assert.equal(rec.pri, '155', 'local3 + high');
    assert.equal(rec.procid, String(r.pid));
    assert.equal(JSON.parse(rec.msg).severity, 'high');
  });

  test('veille test-alert to a closed TCP port fails with exit 1 and "failed:" on stderr', async () => {
    const closed = await freeTcpPort();
    const s = `syslog+tcp://127.0.0.1:${closed}`;
    const r = spawnSync(BIN, ['test-alert', '--alert', s], { cwd: tmp, encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 1, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.match(r.stderr, /failed: /);
    assert.ok(r.stderr.includes(`failed: ${s}: `), `names the sink: ${r.stderr}`);
    assert.doesNotMatch(r.stdout, /delivered:/);
  });
});

// ---- (3) a TCP receiver that is down, then up ----

test('syslog+tcp: an alert raised while the receiver is down is retried and arrives once it is up', async () => {
  const port = await freeTcpPort(); // nothing listens here yet
  const s = `syslog+tcp://127.0.0.1:${port}`;
  const dataDir = join(tmp, 'data-late');
  const srv = await startVeille(dataDir, ['--rules', rulesPath, '--alert', s]);
  let rs;
  try {
    await burst(srv, 'user_late', 2, '198.51.100.20'); // the medium rule fires on the 2nd
    const stored = cliJson(dataDir, 'alerts');
    assert.equal(stored.length, 1, JSON.stringify(stored));
    const [a] = stored;

    // pending, with the connection error recorded
    const pend = await waitFor('the alert pending in `veille outbox` with a last_error', () =>
      cliJson(dataDir, 'outbox').find((o) => o.alert_id === a.id && o.last_error), 8000, () => srv.log);
    assert.equal(pend.sink, s);
    assert.equal(pend.rule, a.rule);
    assert.equal(pend.severity, a.severity);
    assert.equal(pend.state, 'pending');
    assert.ok(Number.isInteger(pend.attempts) && pend.attempts >= 1, `attempts: ${pend.attempts}`);
    assert.equal(typeof pend.last_error, 'string');
    assert.ok(!Number.isNaN(Date.parse(pend.queued_at)), `queued_at: ${pend.queued_at}`);
    assert.ok(!Number.isNaN(Date.parse(pend.next_try_at)), `next_try_at: ${pend.next_try_at}`);
    let m = await metricsText(srv);
    assert.equal(sinkMetric(m, 'veille_sink_queue_depth', s), 1);
    assert.equal(sinkMetric(m, 'veille_sink_delivered_total', s), 0);
    assert.ok(sinkMetric(m, 'veille_sink_retried_total', s) >= 1, 'the failed attempt is counted as retried');
    assert.equal(sinkMetric(m, 'veille_sink_last_success_timestamp_seconds', s), 0, 'never delivered yet');

    // now the receiver comes up: the next retry (backoff ~1 s, doubling) delivers
    rs = await startRsyslog('late', [{ label: 'tcp', type: 'tcp', port }]);
    const rec = await waitFor('the alert at the late rsyslogd', () => rs.records('tcp')[0], 15000,
      () => `--- veille:\n${srv.log}\n${rs.diag()}`);
    const [line] = cliJson(dataDir, 'alerts');
    assertRemote(rec, { ...line, suppressed: 0 }, line, { facility: FACILITY.authpriv, pid: srv.proc.pid, transport: 'tcp (late)' });
    assert.equal(rec.timereported, a.raised_at, 'TIMESTAMP is when it was raised, not when it was sent');

    await waitFor('the outbox to empty', () => cliJson(dataDir, 'outbox').length === 0, 5000, () => srv.log);
    m = await metricsText(srv);
    assert.equal(sinkMetric(m, 'veille_sink_delivered_total', s), 1);
    assert.equal(sinkMetric(m, 'veille_sink_queue_depth', s), 0);
    assert.equal(sinkMetric(m, 'veille_sink_dead_total', s), 0);
    assert.equal(rs.records('tcp').length, 1, 'delivered once');
  } finally {
    await srv.stop();
    if (rs) await rs.stop();
  }
});

// ---- (4) veille test-alert over UDP, without rsyslogd ----

// A spawned veille, its exit status and output, without blocking this loop (a
// datagram socket here must be able to receive while it runs).
function runCli(args) {
  return new Promise((ok) => {
    const p = spawn(BIN, args, { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(p);
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('exit', (status) => { children.delete(p); ok({ status, stdout, stderr }); });
  });
}

test('veille test-alert over UDP to a port nobody listens on: exit 1, "refused" (ICMP port unreachable)', async () => {
  const port = await freeUdpPort();
  const s = `syslog://127.0.0.1:${port}`;
  const r = await runCli(['test-alert', '--alert', s]);
  assert.equal(r.status, 1, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.ok(r.stderr.includes(`failed: ${s}: refused`), r.stderr);
  assert.doesNotMatch(r.stdout, /delivered|sent/);
});

test('veille test-alert over UDP with a listener: exit 0, "sent (UDP gives no acknowledgement)", one datagram', async () => {
  const sock = dgram.createSocket('udp4');
  const got = [];
  sock.on('message', (m) => got.push(m.toString()));
  await new Promise((ok, fail) => { sock.once('error', fail); sock.bind(0, '127.0.0.1', ok); });
  try {
    const s = `syslog://127.0.0.1:${sock.address().port}`;
    const r = await runCli(['test-alert', '--alert', s]);
    assert.equal(r.status, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.ok(r.stdout.startsWith(`sent (UDP gives no acknowledgement): ${s}: alert alr_test_`), r.stdout);
    assert.doesNotMatch(r.stdout, /delivered/);
    await waitFor('the datagram', () => got.length > 0, 5000);
    assert.equal(got.length, 1);
    assert.match(got[0], / veille_test_alert \[veille@32473 /);
  } finally {
    sock.close();
  }
});

// ---- (5) --format cef, parsed back from what rsyslogd received ----

// A CEF line read as a CEF parser does: the header is seven '|'-separated fields
// where '\|' and '\\' are escapes; the extension is key=value pairs where a value
// runs to the space before the next unescaped "key=", with '\=', '\\', '\n', '\r'.
function parseCEF(line) {
  const header = [];
  let i = 0, cur = '';
  while (header.length < 7) {
    if (i >= line.length) throw new Error(`CEF header cut short: ${line}`);
    const c = line[i++];
    if (c === '\\' && (line[i] === '|' || line[i] === '\\')) cur += line[i++];
    else if (c === '|') { header.push(cur); cur = ''; } else cur += c;
  }
  const ext = {};
  const rest = line.slice(i);
  const keyAt = /(?:^| )([A-Za-z0-9_]+)=/g; // a key starts the extension or follows a space, before an unescaped '='
  const starts = [];
  for (let m; (m = keyAt.exec(rest)) !== null;) {
    let bs = 0;
    for (let j = m.index + m[0].length - 2; j >= 0 && rest[j] === '\\'; j--) bs++;
    if (bs % 2 === 0) starts.push({ key: m[1], at: m.index + (m[0].startsWith(' ') ? 1 : 0), value: m.index + m[0].length });
  }
  starts.forEach((s, k) => {
    const end = k + 1 < starts.length ? starts[k + 1].at - 1 : rest.length;
    const raw = rest.slice(s.value, end);
    assert.doesNotMatch(raw.replace(/\\[\\=nr]/g, ''), /[=\\\n\r]/, `CEF value of ${s.key} escaped: ${raw}`);
    ext[s.key] = raw.replace(/\\([\\=nr])/g, (_, c) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c));
  });
  const [version, vendor, product, deviceVersion, signature, name, severity] = header;
  return { version, vendor, product, deviceVersion, signature, name, severity, ext };
}

test('--format cef on syslog+tcp and the local socket: rsyslogd receives CEF that parses back to the alert', async () => {
  const port = await freeTcpPort();
  const sock = join(tmp, 'cef.sock');
  const rs = await startRsyslog('cef', [{ label: 'tcp', type: 'tcp', port }, { label: 'unix', type: 'unix', path: sock }]);
  const dataDir = join(tmp, 'data-cef');
  const filePath = join(tmp, 'cef-alerts.ndjson');
  const tcp = `syslog+tcp://127.0.0.1:${port}`;
  const srv = await startVeille(dataDir, ['--rules', rulesPath, '--alert', tcp, '--format', 'cef',
    '--alert', `syslog:${sock}`, '--format', 'cef', '--alert', `file:${filePath}`]);
  const diag = () => `--- veille:\n${srv.log}\n${rs.diag()}`;
  try {
    // a user id with every character CEF escapes: '|' and '\' in the header (the
    // summary names the user), '=' and '\' in the extension
    const user = 'user_c|e=f\\g';
    await burst(srv, user, 2, '198.51.100.9');
    await waitFor('the alert in the file sink', () => existsSync(filePath) &&
      readFileSync(filePath, 'utf8').trim() !== '', 5000, diag);
    const [a] = readFileSync(filePath, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(a.user_id, user);
    await waitFor('the CEF alert on both inputs', () => rs.records('tcp').length >= 1 &&
      (!hasLogger || rs.records('unix').length >= 1), 10000, diag);

    const [t] = rs.records('tcp');
    assert.equal(rs.records('tcp').length, 1);
    // RFC 5424 framing is kept: PRI, MSGID and the structured data, with CEF as MSG
    assert.equal(t.pri, String(FACILITY.authpriv * 8 + SEVERITY.medium));
    assert.equal(t.msgid, LONG.slice(0, 32));
    assert.deepEqual(t.vars['rfc5424-sd'], { [SD_ID]: expectedSD(a) });
    assert.ok(t.msg.startsWith('CEF:0|veille|veille|'), t.msg);
    const cef = parseCEF(t.msg);
    assert.deepEqual([cef.version, cef.vendor, cef.product, cef.signature, cef.severity],
      ['CEF:0', 'veille', 'veille', LONG, '5']);
    assert.match(cef.deviceVersion, /^\d+\.\d+\.\d+/);
    assert.equal(cef.name, a.summary, 'the summary, with its | and \\ unescaped back');
    assert.ok(cef.name.includes(user));
    assert.equal(cef.ext.suser, user);
    assert.equal(cef.ext.src, '198.51.100.9');
    assert.equal(cef.ext.externalId, a.id);
    assert.equal(Number(cef.ext.rt), Date.parse(a.raised_at));
    assert.equal(Number(cef.ext.start), Date.parse(a.at));
    assert.equal(cef.ext.requestClientApplication, 'Mozilla/5.0 (interop)');
    assert.equal(cef.ext.cat, 'session.created');
    assert.deepEqual([cef.ext.cs1Label, cef.ext.cs1], ['key', a.key]);
    assert.deepEqual([cef.ext.cs2Label, cef.ext.cs2], ['sessionId', a.session_id]);
    assert.deepEqual([cef.ext.cs3Label, cef.ext.cs3], ['deliveryId', a.event_id]);
    assert.deepEqual([cef.ext.cs4Label, cef.ext.cs4], ['clerkInstance', 'ins_interop']);
    assert.deepEqual([cef.ext.cs5Label, cef.ext.cs5], ['location', 'Paris, France (FR)']);
    assert.doesNotMatch(t.rawmsg, /#012|\n/, 'one line');

    if (!hasLogger) return;
    const [u] = rs.records('unix');
    assert.equal(rs.records('unix').length, 1);
    assert.equal(u.programname, 'veille');
    assert.equal(u.msg.trim(), t.msg, 'the same CEF line on the local socket');
  } finally {
    await srv.stop();
    await rs.stop();
  }
});
