// Start-up refusals a user meets before the first delivery: no secret, a bad
// secret, a bad flag, a port already taken. Each must be a clear message, never a crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
