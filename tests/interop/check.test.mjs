// `veille check` as an analyst uses it before deploying a rule file, and `serve`
// refusing a broken one at start-up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const run = (args, env = {}) => spawnSync(BIN, args, { cwd: ROOT, encoding: 'utf8', timeout: 5000,
  env: { ...process.env, ...env } });

test('the shipped catalog checks clean', () => {
  const r = run(['check', 'rules/default.rules']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'rules/default.rules: 14 rules, 1 list, ok\n');
});

test('every error is reported with file:line:col, the line and a caret', () => {
  const dir = mkdtempSync(join(tmpdir(), 'veille-check-'));
  const f = join(dir, 'team.rules');
  writeFileSync(f, 'rule a {\n  severity high\n  on session.created\n  when count(session.created, 10m) > "5"\n}\n' +
    'rule b {\n  severity loud\n  on session.created\n  when counts(session.created, 10m) > 5\n}\n');
  const r = run(['check', 'rules/default.rules', f]);
  rmSync(dir, { recursive: true, force: true });
  assert.equal(r.status, 1);
  assert.match(r.stdout, /rules\/default\.rules: 14 rules, 1 list, ok/);
  const lines = r.stderr.split('\n');
  const at = (re) => lines.findIndex((l) => re.test(l));
  const mismatch = at(/team\.rules:4:\d+: error: .*/);
  assert.ok(mismatch >= 0, r.stderr);
  assert.equal(lines[mismatch + 1], '  when count(session.created, 10m) > "5"');
  assert.match(lines[mismatch + 2], /^\s+\^/);
  assert.ok(at(/team\.rules:7:12: error: unknown severity 'loud'/) >= 0, r.stderr);
  assert.ok(at(/team\.rules:9:8: error: unknown function 'counts'/) >= 0, r.stderr);
  assert.match(r.stderr, /team\.rules: 3 errors/);
});

test('a missing file is an error, not a crash', () => {
  const r = run(['check', '/nonexistent/x.rules']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /x\.rules.*(No such file|cannot)/);
});

test('serve refuses to start with a broken rule file and says why', () => {
  const dir = mkdtempSync(join(tmpdir(), 'veille-check-serve-'));
  const f = join(dir, 'bad.rules');
  writeFileSync(f, 'rule a {\n  severity high\n  on session.created\n  when count(session.created, 10m) > 5\n');
  const r = run(['serve', '--listen', '127.0.0.1:0', '--data', join(dir, 'data'), '--rules', f],
    { VEILLE_WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /bad\.rules:\d+:\d+: error: /);
  assert.match(r.stderr, /not starting/);
});
