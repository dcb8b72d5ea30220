#!/usr/bin/env node
// Scores rule catalogs on a labeled month (tests/replay/gen-month.mjs):
//
//   node tests/replay/evaluate.mjs [--month DIR] [--users N] [--seed S] [--bin VEILLE]
//                                  [--rules FILE]... [--json] [--by-rule]
//
// Without --month it generates one (N users, default 1,500) in a temporary folder.
// Without --rules it scores tests/replay/catalog-before.rules (the catalog before
// issue 12) and rules/default.rules. For each catalog it runs `veille replay --rules
// FILE --data TMP` over the month, reads the alerts it raised (stdout) and the stored
// incidents (`veille incidents --json`), and reports, over the month (the learning
// week before it is not scored):
//   - per attack class, the recall: the share of its victims (accounts reached) with at
//     least one alert on an attack event of that class;
//   - the share of benign sign-ins with at least one alert;
//   - alerts on benign events per benign user over the month;
//   - the share of alerts that are about an attack, and the incidents.
// --by-rule adds, per rule, its alerts on benign and attack events.
// --json prints one JSON object { catalogs: [{ rules, recall: {CLASS: r}, ... }] }.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { generate } from './gen-month.mjs';

const ROOT = resolve(new URL('../..', import.meta.url).pathname);
export const CLASSES = ['naive', 'vpn', 'targeted', 'stuffing', 'spray', 'lockout'];
export const TAKEOVERS = ['naive', 'vpn', 'targeted'];

// one catalog over one month: { rules, recall, takeover_recall, benign_share, ... }
export function score({ bin, rules, events, labels, dataDir, timeout = 600_000 }) {
  const data = join(dataDir, 'data-' + rules.replace(/\W+/g, '_'));
  const r = spawnSync(bin, ['replay', '--rules', rules, '--data', data, events],
    { cwd: ROOT, encoding: 'utf8', timeout, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`veille replay --rules ${rules}: exit ${r.status} ${r.signal ?? ''}\n${r.stderr}`);
  const alerts = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const inc = spawnSync(bin, ['incidents', '--json', '--data', data], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (inc.status !== 0) throw new Error(`veille incidents: exit ${inc.status}\n${inc.stderr}`);
  const incidents = inc.stdout.split('\n').filter(Boolean).length;

  const label = new Map(); // key -> { cls, user, phase, kind }
  for (const line of labels) {
    const [key, cls, user, phase, kind] = line.split('\t');
    label.set(key, { cls, user, phase, kind });
  }
  const flagged = new Set(); // label keys with an alert
  const byRule = new Map(); // rule -> { benign, attack }
  const attackIncidents = new Set();
  const allIncidents = new Set();
  let benignAlerts = 0;
  let attackAlerts = 0;
  let unlabeled = 0;
  for (const a of alerts) {
    const key = a.event_type === 'user.updated' ? `lock:${a.user_id}:${Date.parse(a.at)}` : a.session_id;
    const l = label.get(key);
    if (!l) { unlabeled++; continue; }
    if (l.phase !== 'month') continue;
    flagged.add(key);
    const row = byRule.get(a.rule) ?? { benign: 0, attack: 0, kinds: {} };
    byRule.set(a.rule, row);
    if (a.incident_id) allIncidents.add(a.incident_id);
    if (l.cls === 'benign') {
      benignAlerts++; row.benign++;
      row.kinds[l.kind] = (row.kinds[l.kind] ?? 0) + 1;
    } else {
      attackAlerts++; row.attack++;
      if (a.incident_id) attackIncidents.add(a.incident_id);
    }
  }
  const victims = new Map(CLASSES.map((c) => [c, new Set()]));
  const caught = new Map(CLASSES.map((c) => [c, new Set()]));
  const benignUsers = new Set();
  let benignSignIns = 0;
  let benignFlagged = 0;
  for (const [key, l] of label) {
    if (l.phase !== 'month') continue;
    if (l.cls === 'benign') {
      benignUsers.add(l.user);
      benignSignIns++;
      if (flagged.has(key)) benignFlagged++;
    } else {
      victims.get(l.cls).add(l.user);
      if (flagged.has(key)) caught.get(l.cls).add(l.user);
    }
  }
  const recall = {};
  for (const c of CLASSES) recall[c] = victims.get(c).size ? caught.get(c).size / victims.get(c).size : 0;
  const tv = TAKEOVERS.reduce((n, c) => n + victims.get(c).size, 0);
  const tc = TAKEOVERS.reduce((n, c) => n + caught.get(c).size, 0);
  return {
    rules, alerts: alerts.length, unlabeled, incidents, attack_incidents: attackIncidents.size,
    victims: Object.fromEntries(CLASSES.map((c) => [c, victims.get(c).size])),
    recall, takeover_recall: tv ? tc / tv : 0,
    benign_sign_ins: benignSignIns, benign_flagged: benignFlagged, benign_share: benignFlagged / benignSignIns,
    alerts_per_benign_user: benignAlerts / benignUsers.size,
    attack_alert_share: alerts.length ? attackAlerts / (attackAlerts + benignAlerts) : 0,
    by_rule: Object.fromEntries([...byRule].sort()),
  };
}

const pct = (x) => (100 * x).toFixed(2) + '%';
export function table(results) {
  const cols = ['', ...results.map((r) => r.rules)];
  const rows = [
    ...CLASSES.map((c) => [`recall ${c} (${results[0].victims[c]} accounts)`, ...results.map((r) => r.recall[c].toFixed(2))]),
    ['recall of takeovers (naive+vpn+targeted)', ...results.map((r) => r.takeover_recall.toFixed(2))],
    [`benign sign-ins flagged (of ${results[0].benign_sign_ins})`, ...results.map((r) => pct(r.benign_share))],
    ['alerts per benign user per month', ...results.map((r) => r.alerts_per_benign_user.toFixed(3))],
    ['alerts about an attack', ...results.map((r) => pct(r.attack_alert_share))],
    ['incidents (with an attack alert)', ...results.map((r) => `${r.incidents} (${r.attack_incidents})`)],
  ];
  const w = cols.map((_, i) => Math.max(...[cols, ...rows].map((row) => String(row[i]).length)));
  const fmt = (row) => row.map((v, i) => String(v).padEnd(w[i])).join('  ').trimEnd();
  return [fmt(cols), ...rows.map(fmt)].join('\n');
}

function main() {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : dflt;
  };
  const rulesList = args.flatMap((a, i) => (a === '--rules' ? [args[i + 1]] : []));
  const rules = rulesList.length ? rulesList : ['tests/replay/catalog-before.rules', 'rules/default.rules'];
  const bin = resolve(opt('--bin', process.env.VEILLE_BIN ?? join(ROOT, 'build/veille')));
  const tmp = mkdtempSync(join(tmpdir(), 'veille-eval-'));
  try {
    let month = opt('--month');
    if (!month) {
      month = tmp;
      const { lines, labels } = generate({ users: Number(opt('--users', 1500)), seed: Number(opt('--seed', 12)) });
      writeFileSync(join(tmp, 'month.ndjson'), lines.join('\n') + '\n');
      writeFileSync(join(tmp, 'labels.tsv'), labels.map((l) => l.join('\t')).join('\n') + '\n');
    }
    const events = resolve(month, 'month.ndjson');
    const labels = readFileSync(join(month, 'labels.tsv'), 'utf8').split('\n').filter(Boolean);
    const results = rules.map((r) => score({ bin, rules: r, events, labels, dataDir: tmp }));
    if (args.includes('--json')) {
      process.stdout.write(JSON.stringify({ catalogs: results }) + '\n');
    } else {
      process.stdout.write(table(results) + '\n');
      if (args.includes('--by-rule'))
        for (const r of results)
          process.stdout.write(`\n${r.rules}: alerts per rule on benign / attack events of the month\n` +
            Object.entries(r.by_rule).map(([k, v]) => `  ${k.padEnd(26)} ${v.benign} / ${v.attack}  (benign: ${Object.entries(v.kinds).map(([n, c]) => `${n} ${c}`).join(', ')})`).join('\n') + '\n');
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main();
