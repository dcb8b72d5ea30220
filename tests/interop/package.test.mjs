// Interop: what the Debian package and the systemd unit rely on.
// 1. sd_notify: `veille serve` under a fake $NOTIFY_SOCKET (a unix datagram socket
//    that a python3 helper binds, as systemd does; node has no unix datagrams)
//    sends READY=1 once it answers on its port, and STOPPING=1 on SIGTERM, for a
//    path and for an abstract '@' name; an unreachable socket is a warning only.
// 2. dist/veille.service: `systemd-analyze verify` passes, the hardening
//    directives are there, `systemd-analyze security` scores it at most 2.0.
// 3. man/: every page renders with `groff -ww -mandoc` without a warning, the
//    meson-built copies carry the version; no drift: every subcommand and flag of
//    `veille --help` / `veille COMMAND --help` is in veille.1 and in both shell
//    completions, every serve option in dist/veille.conf, every field and window
//    function of src/rules/check.c in veille.rules.5, whose examples pass
//    `veille check`; the shipped veille.conf starts veille.
// Tools that are absent (python3, systemd-analyze, groff, zsh) skip their test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { untilListening } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const SECRET = 'whsec_' + randomBytes(32).toString('base64');
const src = (p) => readFileSync(join(ROOT, p), 'utf8');
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { encoding: 'utf8', ...opts });

// The man page as a reader sees it: ASCII, no overstrike, hyphens as '-'; no
// hyphenation and long lines, so that a name is never cut across two lines.
function rendered(page) {
  const r = run('groff', ['-mandoc', '-Tascii', '-P-cbou', '-rHY=0', '-rLL=300n', join(ROOT, 'man', page)]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

function freePort() {
  return new Promise((ok) => {
    const s = createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

// A unix datagram socket at name ('@x' abstract) printing each datagram as a line.
const RECEIVER = `
import socket, sys
name = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(('\\0' + name[1:]) if name.startswith('@') else name)
print('bound', flush=True)
while True:
    print(s.recv(4096).decode(), flush=True)
`;

function startReceiver(name) {
  const r = { lines: [], waiters: [] };
  r.proc = spawn('python3', ['-c', RECEIVER, name], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  r.proc.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      r.lines.push(buf.slice(0, i)); buf = buf.slice(i + 1);
      r.waiters = r.waiters.filter((w) => !w());
    }
  });
  // Resolves with the index of the first line equal to want, or rejects after 10 s.
  r.until = (want) => new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`no ${want} on the notify socket; got ${JSON.stringify(r.lines)}`)), 10000);
    const check = () => { const i = r.lines.indexOf(want); if (i >= 0) { clearTimeout(timer); ok(i); return true; } return false; };
    if (!check()) r.waiters.push(check);
  });
  return r;
}

async function notifyRun(notifySocket, t) {
  const dataDir = mkdtempSync(join(tmpdir(), 'veille-pkg-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const port = await freePort();
  const s = { log: '', base: null };
  s.proc = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data', dataDir, '--rules', 'none'],
    { env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET, NOTIFY_SOCKET: notifySocket }, stdio: ['ignore', 'ignore', 'pipe'] });
  s.proc.stderr.on('data', (d) => { s.log += d; });
  t.after(() => { if (s.proc.exitCode === null) s.proc.kill('SIGKILL'); });
  return { s, port };
}

for (const kind of ['path', 'abstract']) {
  test(`sd_notify over a ${kind} NOTIFY_SOCKET: READY=1 once it answers, STOPPING=1 on SIGTERM`, { skip: !has('python3') && 'python3 is not installed' }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'veille-notify-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const name = kind === 'path' ? join(dir, 'notify') : `@veille-test-${process.pid}-${randomBytes(4).toString('hex')}`;
    const r = startReceiver(name);
    t.after(() => r.proc.kill());
    await r.until('bound');
    const { s, port } = await notifyRun(name, t);
    const ready = await r.until('READY=1');
    // systemd starts dependants on READY=1: the port must already answer.
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(r.lines.indexOf('STOPPING=1'), -1, 'STOPPING before SIGTERM');
    const exited = new Promise((ok) => s.proc.once('exit', (code) => ok(code)));
    s.proc.kill('SIGTERM');
    const stopping = await r.until('STOPPING=1');
    assert.ok(stopping > ready);
    assert.equal(await exited, 0, s.log);
    assert.doesNotMatch(s.log, /sd_notify failed/);
  });
}

test('an unreachable NOTIFY_SOCKET is logged as a warning and veille serves anyway', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'veille-pkg-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const s = { log: '', base: null };
  s.proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir, '--rules', 'none'],
    { env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET, NOTIFY_SOCKET: join(dataDir, 'no-such-socket') },
      stdio: ['ignore', 'ignore', 'pipe'] });
  await untilListening(s);
  assert.equal((await fetch(s.base + '/healthz')).status, 200);
  const exited = new Promise((ok) => s.proc.once('exit', ok));
  s.proc.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.match(s.log, /level=warn msg="sd_notify failed" error="cannot send READY=1 to NOTIFY_SOCKET .*no-such-socket/);
});

// The unit as key -> [values] ("Key=" lines of every section).
function unitDirectives(text) {
  const d = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) (d[m[1]] ??= []).push(m[2]);
  }
  return d;
}

test('veille.service: Type=notify, reload by SIGHUP, secrets from an EnvironmentFile, the hardening', () => {
  const d = unitDirectives(src('dist/veille.service'));
  const want = {
    Type: 'notify', ExecStart: '/usr/bin/veille serve --config /etc/veille/veille.conf',
    ExecReload: '/bin/kill -HUP $MAINPID', EnvironmentFile: '/etc/veille/secrets', User: 'veille',
    ProtectSystem: 'strict', ReadWritePaths: '/var/lib/veille', StateDirectory: 'veille', NoNewPrivileges: 'yes',
    PrivateTmp: 'yes', ProtectHome: 'yes', RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
    MemoryDenyWriteExecute: 'yes', CapabilityBoundingSet: '',
  };
  for (const [k, v] of Object.entries(want)) assert.deepEqual(d[k], [v], k);
  assert.ok(d.SystemCallFilter?.includes('@system-service'), 'SystemCallFilter=@system-service');
  // the configuration the unit starts veille with is the one the package ships
  assert.match(src('debian/veille.install'), /^etc\/veille\/veille\.conf$/m);
});

test('systemd-analyze verify passes on veille.service and security scores it at most 2.0', { skip: !has('systemd-analyze') && 'systemd-analyze is not installed' }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'veille-unit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // verify checks that ExecStart exists: point it at the binary under test.
  const unit = join(dir, 'veille.service');
  writeFileSync(unit, src('dist/veille.service').replace('ExecStart=/usr/bin/veille', `ExecStart=${BIN}`));
  // and it runs `man` for each Documentation= page: give it this tree's pages.
  for (const page of PAGES) {
    const sect = join(dir, 'man', 'man' + page.slice(-1));
    mkdirSync(sect, { recursive: true });
    copyFileSync(join(ROOT, 'man', page), join(sect, page));
  }
  const v = run('systemd-analyze', ['verify', unit], { env: { ...process.env, MANPATH: join(dir, 'man') } });
  assert.equal(v.status, 0, v.stdout + v.stderr);
  assert.equal(v.stderr.trim(), '', 'no warning');
  const s = run('systemd-analyze', ['security', '--offline=true', unit]);
  assert.equal(s.status, 0, s.stderr);
  const m = /Overall exposure level for veille\.service: (\d+\.\d)/.exec(s.stdout);
  assert.ok(m, s.stdout);
  assert.ok(Number(m[1]) <= 2.0, `exposure ${m[1]}`);
});

const PAGES = ['veille.1', 'veille.rules.5', 'veille.conf.5'];

test('the man pages render without a groff warning, and the built ones carry the version', { skip: !has('groff') && 'groff is not installed' }, () => {
  for (const page of PAGES) {
    const r = run('groff', ['-ww', '-mandoc', '-Tutf8', '-z', join(ROOT, 'man', page)]);
    assert.equal(r.status, 0, page);
    assert.equal(r.stderr, '', page);
    const built = join(dirname(BIN), 'man', page);
    if (existsSync(built)) {
      const version = /^veille (\S+)/.exec(run(BIN, ['--version']).stdout)[1];
      assert.match(readFileSync(built, 'utf8'), new RegExp(`^\\.TH \\S+ \\d \\S+ "veille ${version}"`, 'm'), built);
    }
  }
});

// veille --help: "  NAME  description" lines; veille NAME --help: its --flags.
function subcommands() {
  const r = run(BIN, ['--help']);
  const names = [...r.stdout.matchAll(/^ {2}([a-z][a-z-]*) /gm)].map((m) => m[1]);
  assert.ok(names.includes('serve') && names.length >= 8, r.stdout);
  return names;
}
function flagsOf(cmd) {
  const r = run(BIN, [cmd, '--help']);
  return [...new Set([...r.stdout.matchAll(/--[a-z][a-z-]*(?![a-z-]|=)/g)].map((m) => m[0]))];
}

test('no drift: every subcommand and flag of --help is in veille.1 and both completions', { skip: !has('groff') && 'groff is not installed' }, () => {
  const man = rendered('veille.1');
  const bash = src('dist/veille.bash');
  const zsh = src('dist/_veille');
  const missing = [];
  for (const cmd of subcommands()) {
    if (!new RegExp(`^ {7}${cmd}\\b`, 'm').test(man)) missing.push(`veille.1: command ${cmd} (under COMMANDS)`);
    if (!new RegExp(`\\b${cmd}\\b`).test(bash)) missing.push(`veille.bash: ${cmd}`);
    if (!zsh.includes(`'${cmd}:`)) missing.push(`_veille: ${cmd}`);
    for (const flag of flagsOf(cmd)) {
      if (!new RegExp(`${flag}(?![a-z-])`).test(man)) missing.push(`veille.1: ${cmd} ${flag}`);
      if (!new RegExp(`${flag}(?![a-z-])`).test(bash)) missing.push(`veille.bash: ${cmd} ${flag}`);
      if (!new RegExp(`${flag}(?![a-z-])`).test(zsh)) missing.push(`_veille: ${cmd} ${flag}`);
    }
  }
  for (const flag of flagsOf('serve')) {
    if (!new RegExp(`^ {7}${flag}(?![a-z-])`, 'm').test(man)) missing.push(`veille.1: ${flag} has no entry`);
  }
  assert.deepEqual(missing, []);
});

test('no drift: every serve option is in dist/veille.conf and veille.conf.5, which starts veille', async (t) => {
  const conf = src('dist/veille.conf');
  const missing = flagsOf('serve').filter((f) => f !== '--help' && f !== '--config')
    .filter((f) => !new RegExp(`^#?\\s*${f.slice(2)} = `, 'm').test(conf));
  assert.deepEqual(missing, []);
  assert.match(conf, /^# \(config = \.\.\. is refused here/m);
  if (has('groff')) {
    const man = rendered('veille.conf.5');
    assert.deepEqual(flagsOf('serve').filter((f) => f !== '--help' && f !== '--config')
      .filter((f) => !new RegExp(`\\b${f.slice(2)}\\b`).test(man)), []);
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'veille-pkg-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const s = { log: '', base: null };
  s.proc = spawn(BIN, ['serve', '--config', join(ROOT, 'dist/veille.conf'), '--data', dataDir, '--listen', '127.0.0.1:0'],
    { env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET }, stdio: ['ignore', 'ignore', 'pipe'] });
  await untilListening(s);
  const exited = new Promise((ok) => s.proc.once('exit', ok));
  s.proc.kill('SIGTERM');
  assert.equal(await exited, 0);
});

test('no drift: every field and window function of the checker is in veille.rules.5; its examples check', { skip: !has('groff') && 'groff is not installed' }, (t) => {
  const check = src('src/rules/check.c');
  // the names as written; comments dropped, and `device` once (RULES_F_DEVICE_KEY is an internal alias)
  const names = /field_names\[RULES_F_COUNT\] = \{([^}]*)\}/.exec(check)[1].replace(/\/\*[\s\S]*?\*\//g, '');
  const fields = [...new Set(JSON.parse('[' + names.replace(/,\s*$/, '') + ']'))];
  const funcs = [.../^\s*\{"([a-z_]+)", \d, \{/gm[Symbol.matchAll](check)].map((m) => m[1]);
  assert.ok(fields.length >= 10 && funcs.length >= 8, `${fields} ${funcs}`);
  const man = rendered('veille.rules.5');
  const missing = [...fields.filter((f) => !new RegExp(`^ {7}(.*, )?${f.replace('.', '\\.')}\\b`, 'm').test(man)),
    ...funcs.filter((f) => !man.includes(`${f}(`))];
  assert.deepEqual(missing, []);
  const example = /^\.SH EXAMPLES\n\.EX\n([\s\S]*?)^\.EE/m.exec(src('man/veille.rules.5'))[1].replace(/\\-/g, '-');
  const dir = mkdtempSync(join(tmpdir(), 'veille-rules-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'example.rules'), example);
  const r = run(BIN, ['check', join(dir, 'example.rules')]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('the completions parse: bash -n and zsh -n', () => {
  const b = run('bash', ['-n', join(ROOT, 'dist/veille.bash')]);
  assert.equal(b.status, 0, b.stderr);
  if (has('zsh')) {
    const z = run('zsh', ['-n', join(ROOT, 'dist/_veille')]);
    assert.equal(z.status, 0, z.stderr);
  }
});
