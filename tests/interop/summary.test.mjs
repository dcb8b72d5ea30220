// The numbers of an alert, three ways: its human summary, its JSON evidence and
// `veille replay --explain` must print each value the same (one formatting
// function in the engine): exact where the value is known, "at least N" where a
// read stopped early, durations to the millisecond, travel to the tenth.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { envelope, session } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const run = (args) => spawnSync(BIN, args, { encoding: 'utf8', timeout: 15000 });
const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Date.UTC(2026, 0, 1);

const RULES = `
rule quick { description "Quick" severity low on session.created when count(session.created, 1h) > 2 }
rule again { severity low on session.created when since_last(session.created) < 1m }
rule far { description "Far" severity high on session.created when travel_km() > 500 and travel_kmh() > 900 }
rule known { description "Known" severity low on session.created
  when count_known(country, 1h) >= 1 and first_seen(country, 1h) }
`;

const signIn = (id, user, at, ip, country, city) =>
  envelope('session.created', session(id, user, at, ip, country, city), at);

let dir, rules;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'veille-summary-'));
  rules = join(dir, 'summary.rules');
  writeFileSync(rules, RULES);
});
after(() => rmSync(dir, { recursive: true, force: true }));

function replay(name, lines, ...flags) {
  const f = join(dir, name);
  writeFileSync(f, lines.join('\n') + '\n');
  const r = run(['replay', '--rules', rules, ...flags, f]);
  assert.equal(r.status, 0, r.stderr);
  return r;
}

// "NAME = VALUE, NAME = VALUE" -> Map; names hold ", " themselves, values never do
function values(text) {
  const m = new Map();
  for (const [, k, v] of text.matchAll(/(?:^|, )((?:[a-z_:]+\([^)]*\))|[a-z_.]+) = (.*?)(?=, [a-z_:.]+(?:\([^)]*\))? = |$)/g))
    m.set(k, v);
  return m;
}

test('--explain, the summary and the JSON evidence print the same values', () => {
  const r = replay('same.ndjson', [
    signIn('sess_q1', 'user_q', T0, '198.51.100.7', 'FR', 'Paris'),
    signIn('sess_q2', 'user_q', T0 + 10 * MIN, '198.51.100.7', 'FR', 'Paris'),
    signIn('sess_q3', 'user_q', T0 + 10 * MIN + 59_999, '198.51.100.7', 'US', 'New York'),
  ], '--explain');
  const raised = r.stdout.split('\n').filter(Boolean);
  const alerts = raised.map((l) => JSON.parse(l));
  assert.deepEqual(alerts.map((a) => a.rule).sort(), ['again', 'far', 'known', 'quick']);
  for (const [i, a] of alerts.entries()) {
    const ex = r.stderr.match(new RegExp(`^explain: line \\d+: ${a.rule} ${a.key} -> alert ${a.id}: (.*)$`, 'm'));
    assert.ok(ex, `${a.rule}: no explain line in\n${r.stderr}`);
    const tail = a.summary.slice(a.summary.indexOf('; ') + 2, -1);
    assert.equal(tail, ex[1], `${a.rule}: summary and --explain differ`);
    const shown = values(tail);
    assert.deepEqual([...shown.keys()], Object.keys(a.evidence), a.summary);
    for (const [k, v] of Object.entries(a.evidence))
      assert.equal(shown.get(k), String(v), `${a.rule}: ${k} in "${a.summary}" vs ${raised[i]}`);
  }
  const again = alerts.find((a) => a.rule === 'again');
  // 59.999 s: not "60.0" (which `< 1m` contradicts), and not 59.999000000000002 in the JSON
  assert.match(again.summary, /; since_last\(session\.created\) = 59\.999\.$/);
  assert.ok(raised.some((l) => l.includes('"since_last(session.created)":59.999}')), raised.join('\n'));
  const far = alerts.find((a) => a.rule === 'far');
  assert.match(far.summary, /^Far: user user_q from 198\.51\.100\.7 \(New York, US\); travel_km\(\) = 5835\.5, previous_location = FR\/Paris at 2026-01-01T00:10:00\.000Z, travel_kmh\(\) = [\d.]+\.$/);
});

test('a read that stopped early says "at least N" in the summary; a read from memory is exact', () => {
  const lines = [];
  for (let i = 0; i < 20; i++)
    lines.push(signIn(`sess_m${i}`, 'user_many', T0 + i * MIN, '198.51.100.8', 'FR', 'Paris'));
  const alerts = replay('many.ndjson', lines).stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const quick = alerts.filter((a) => a.rule === 'quick');
  assert.equal(quick.length, 18);
  // the 4th sign-in: the user's 16 newest records hold everything, the value is exact
  assert.match(quick[1].summary, /; count\(session\.created, 1h\) = 4\.$/);
  assert.deepEqual(quick[1].evidence, { 'count(session.created, 1h)': 4 });
  assert.equal(quick[1].at_least, undefined);
  // the 20th: more records than that, the store read stops at the 3 that decide `> 2`
  const last = quick.at(-1);
  assert.match(last.summary, /; count\(session\.created, 1h\) = at least 3\.$/);
  assert.doesNotMatch(last.summary, />=/);
  assert.deepEqual(last.evidence, { 'count(session.created, 1h)': 3 });
  assert.deepEqual(last.at_least, ['count(session.created, 1h)']);
});
