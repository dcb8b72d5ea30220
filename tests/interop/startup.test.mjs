// Start-up refusals a user meets before the first delivery: no secret, a bad
// secret, a bad flag, a port already taken, no rule file. Each must be a clear
// message, never a crash. And which rule file is in force, whatever the cwd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const GOOD = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

function serve(args, env) {
  const dir = mkdtempSync(join(tmpdir(), 'veille-start-'));
  const base = { ...process.env };
  delete base.VEILLE_WEBHOOK_SECRET;
  delete base.CLERK_WEBHOOK_SIGNING_SECRET;
  const r = spawnSync(BIN, ['serve', '--data', dir, '--listen', '127.0.0.1:0', ...args],
    { env: { ...base, ...env }, encoding: 'utf8', timeout: 5000 });
  rmSync(dir, { recursive: true, force: true });
  return r;
}

test('no secret: refuses to start and names the variable', () => {
  const r = serve([], {});
  assert.equal(r.status, 2);
  assert.match(r.stderr, /VEILLE_WEBHOOK_SECRET/);
});

test('a secret that does not decode: refuses without echoing it', () => {
  const bad = 'whsec_%%%not-base64%%%';
  const r = serve([], { VEILLE_WEBHOOK_SECRET: bad });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /secret/);
  assert.ok(!r.stderr.includes('not-base64'), r.stderr);
});

test('a second secret that is too short is refused too', () => {
  const r = serve([], { CLERK_WEBHOOK_SIGNING_SECRET: `${GOOD}, whsec_c2hvcnQ=` });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /CLERK_WEBHOOK_SIGNING_SECRET/);
});

test('bad flags and config lines are reported with what is wrong', () => {
  let r = serve(['--max-body', 'lots'], { VEILLE_WEBHOOK_SECRET: GOOD });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--max-body/);
  r = serve(['--retention', '90'], { VEILLE_WEBHOOK_SECRET: GOOD });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /needs a unit/);
  r = serve(['--bogus'], { VEILLE_WEBHOOK_SECRET: GOOD });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown argument '--bogus'/);
  r = serve(['--rules', '/nonexistent/x.rules'], { VEILLE_WEBHOOK_SECRET: GOOD });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /x\.rules/);
  const dir = mkdtempSync(join(tmpdir(), 'veille-conf-'));
  const conf = join(dir, 'veille.conf');
  writeFileSync(conf, '# comment\nlisten = 127.0.0.1:0\nretention = 30d\nmax-body = nope\n');
  r = serve(['--config', conf], { VEILLE_WEBHOOK_SECRET: GOOD });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /veille\.conf:4: max-body/);
});

test('a port already in use is a start-up error, not a hang', async () => {
  const blocker = createServer();
  await new Promise((ok) => blocker.listen(0, '127.0.0.1', ok));
  const port = blocker.address().port;
  const r = serve(['--listen', `127.0.0.1:${port}`], { VEILLE_WEBHOOK_SECRET: GOOD });
  blocker.close();
  assert.equal(r.status, 3);
  assert.match(r.stderr, /cannot listen on 127\.0\.0\.1:\d+/);
});

// ---- which rule file is in force (never the working directory's)

const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// Start serve in cwd, wait until it listens (or exits), stop it; its status and stderr.
// onListening(p, stderr): what to do once serve listens; by default SIGTERM. It is
// called again on every stderr chunk after that until it returns true.
function serveUntilListening(bin, args, cwd, onListening = (p) => { p.kill('SIGTERM'); return true; }) {
  return new Promise((done, fail) => {
    const base = { ...process.env };
    delete base.CLERK_WEBHOOK_SIGNING_SECRET;
    const p = spawn(bin, ['serve', '--data', join(cwd, 'data'), '--listen', '127.0.0.1:0', ...args],
      { cwd, env: { ...base, VEILLE_WEBHOOK_SECRET: GOOD }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let handled = false;
    const timer = setTimeout(() => p.kill('SIGKILL'), 10000);
    p.stderr.on('data', (d) => {
      stderr += d;
      if (!handled && /msg=listening/.test(stderr)) handled = onListening(p, stderr);
    });
    p.on('error', fail);
    p.on('close', (status) => {
      clearTimeout(timer);
      done({ status, stderr });
    });
  });
}

test('serve from another working directory runs the default rules and logs their absolute path', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'veille-cwd-'));
  try {
    const r = await serveUntilListening(BIN, [], cwd);
    assert.match(r.stderr, /msg=listening/, r.stderr);
    const rules = escapeRe(realpathSync(join(ROOT, 'rules/default.rules')));
    assert.match(r.stderr, new RegExp(`level=info msg="rules loaded" rules=${rules} count=14 `));
    assert.match(r.stderr, new RegExp(`msg=starting version=\\S+ rules=${rules} `));
    assert.doesNotMatch(r.stderr, /level=warn/);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});

test('a relative --rules is logged as the absolute path of the file in force', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'veille-cwd-'));
  try {
    writeFileSync(join(cwd, 'mine.rules'), '');
    const r = await serveUntilListening(BIN, ['--rules', 'mine.rules'], cwd);
    assert.match(r.stderr, new RegExp(`msg=starting version=\\S+ rules=${escapeRe(realpathSync(cwd))}/mine\\.rules `),
      r.stderr);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});

test('--rules none runs without detection and says so in a warn line', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'veille-cwd-'));
  try {
    const r = await serveUntilListening(BIN, ['--rules', 'none'], cwd);
    assert.match(r.stderr, /msg=listening/, r.stderr);
    assert.match(r.stderr, /level=warn msg="detection off/);
    assert.match(r.stderr, /msg=starting version=\S+ rules=none /);
    assert.doesNotMatch(r.stderr, /rules loaded/);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});

test('SIGHUP under --rules none is not a refused reload: detection stays off, said in one info line', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'veille-cwd-'));
  try {
    let hupped = false;
    const r = await serveUntilListening(BIN, ['--rules', 'none'], cwd, (p, stderr) => {
      if (!hupped) { hupped = true; p.kill('SIGHUP'); return false; }
      if (!/rules reload/.test(stderr)) return false;
      p.kill('SIGTERM');
      return true;
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /level=info msg="rules reload: --rules none, detection stays off"/);
    assert.doesNotMatch(r.stderr, /level=error/);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});

test('no rule file anywhere and no --rules: refuses to start, names the paths tried and --rules none', async (t) => {
  // the share directory is compiled in; serve --help names it
  const share = spawnSync(BIN, ['serve', '--help'], { encoding: 'utf8' }).stdout.match(/installed rules\/default\.rules \(([^)]+)\)/)[1];
  if (existsSync(join(share, 'rules/default.rules'))) return t.skip(`${share}/rules/default.rules is installed`);
  // a copy of the binary where neither its directory nor its parent holds rules/
  const dir = mkdtempSync(join(tmpdir(), 'veille-norules-'));
  try {
    mkdirSync(join(dir, 'bin'));
    const bin = join(dir, 'bin', 'veille');
    copyFileSync(BIN, bin);
    chmodSync(bin, 0o755);
    writeFileSync(join(dir, 'bin', 'default.rules'), ''); // not in a rules/ folder: not a candidate
    mkdirSync(join(dir, 'cwd', 'rules'), { recursive: true });
    writeFileSync(join(dir, 'cwd', 'rules', 'default.rules'), ''); // the cwd's: never used
    const r = await serveUntilListening(bin, [], join(dir, 'cwd'));
    assert.equal(r.status, 2, r.stderr);
    assert.doesNotMatch(r.stderr, /msg=listening/);
    const real = realpathSync(dir);
    for (const p of [`${share}/rules/default.rules`, `${real}/bin/rules/default.rules`, `${real}/rules/default.rules`])
      assert.ok(r.stderr.includes(p), `${p} in ${r.stderr}`);
    assert.match(r.stderr, /--rules none/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- the order of start-up (src/serve/startup.c): options, secrets, sinks, rules

test('flags override the config file whatever their position; several --config are read in order', () => {
  const dir = mkdtempSync(join(tmpdir(), 'veille-conf-'));
  try {
    const a = join(dir, 'a.conf');
    const b = join(dir, 'b.conf');
    writeFileSync(a, 'max-body = 2K\nretention = 2d\n');
    writeFileSync(b, 'retention = 3d\n');
    const data = join(dir, 'file'); // not a directory: serve logs its start line, then exits 3
    writeFileSync(data, '');
    const r = spawnSync(BIN, ['serve', '--max-body=4K', '--config', a, '--data', data, '--config', b,
      '--listen', '127.0.0.1:0'], { env: { ...process.env, VEILLE_WEBHOOK_SECRET: GOOD }, encoding: 'utf8',
      timeout: 5000 });
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, / max_body=4096 retention_s=259200$/m, r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every start-up refusal has one "veille serve:" prefix and exits 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'veille-refuse-'));
  try {
    const broken = join(dir, 'broken.rules');
    writeFileSync(broken, 'rule x {\n');
    for (const [args, env, message] of [
      [[], {}, /^veille serve: no webhook signing secret: set VEILLE_WEBHOOK_SECRET/],
      [[], { VEILLE_WEBHOOK_SECRET: 'whsec_c2hvcnQ=' }, /^veille serve: VEILLE_WEBHOOK_SECRET: /],
      [['--alert', 'syslog://127.0.0.1:514', '--retention', '1h'], { VEILLE_WEBHOOK_SECRET: GOOD },
        /^veille serve: --retention \(3600s\) is shorter than --alert-retry-for \(259200s\)/],
      [['--rules', join(dir, 'missing.rules')], { VEILLE_WEBHOOK_SECRET: GOOD }, /^veille serve: --rules \S+missing\.rules: /],
      [['--rules', broken], { VEILLE_WEBHOOK_SECRET: GOOD }, /^veille serve: \S+broken\.rules: has errors; not starting/m],
    ]) {
      const r = serve(args, env);
      const what = `${args.join(' ')}: ${r.stderr}`;
      assert.equal(r.status, 2, what);
      assert.match(r.stderr, message, what);
      assert.doesNotMatch(r.stderr, /^veille: /m, what);
      assert.doesNotMatch(r.stderr, /msg=listening/, what);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
