// The command line itself: every subcommand answers --help and refuses an unknown
// flag with its usage, `veille --version` says what runs, error messages name their
// flag once, and replay finds the installed rules from any working directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

const run = (args, opts = {}) => spawnSync(BIN, args, {
  cwd: ROOT, encoding: 'utf8', timeout: 15000, ...opts,
  env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET, ...opts.env },
});

// the dispatch table of src/main.c: a command added there is tested here without an edit
const COMMANDS = [...readFileSync(join(ROOT, 'src/main.c'), 'utf8').matchAll(/\{"([a-z-]+)", [a-z]+_\w+\}/g)]
  .map((m) => m[1]);
const VERSION = readFileSync(join(ROOT, 'meson.build'), 'utf8').match(/version\s*:\s*'([^']+)'/)[1];

test('main.c has the commands this test expects to find', () => {
  for (const c of ['serve', 'history', 'users', 'stats', 'check', 'replay', 'version'])
    assert.ok(COMMANDS.includes(c), `${c} not found in main.c's table: ${COMMANDS}`);
});

test('veille --help lists every command', () => {
  const r = run(['--help']);
  assert.equal(r.status, 0, r.stderr);
  for (const c of COMMANDS) assert.match(r.stdout, new RegExp(`^  ${c} `, 'm'), `${c} missing from veille --help`);
});

for (const cmd of COMMANDS) {
  test(`veille ${cmd} --help and -h: usage on stdout, exit 0`, () => {
    for (const flag of ['--help', '-h']) {
      const r = run([cmd, flag]);
      assert.equal(r.status, 0, `${cmd} ${flag}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^usage: veille ${cmd}\\b`), `${cmd} ${flag}`);
      assert.equal(r.stderr, '', `${cmd} ${flag}`);
    }
    // --help wins over whatever else is on the line, even an incomplete flag
    const r = run([cmd, '--data', '/nonexistent', '--help']);
    assert.equal(r.status, 0, `${cmd} --data X --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^usage: veille ${cmd}\\b`));
  });

  test(`veille ${cmd} --no-such-flag: usage on stderr, exit 2`, () => {
    const r = run([cmd, '--no-such-flag']);
    assert.equal(r.status, 2, `${cmd}: ${r.stderr}`);
    assert.match(r.stderr, /--no-such-flag/);
    assert.match(r.stderr, new RegExp(`usage: veille ${cmd}\\b`), r.stderr);
    assert.equal(r.stdout, '');
  });
}

test('veille --version and veille version: meson\'s project version, then the libraries', () => {
  for (const args of [['--version'], ['version']]) {
    const r = run(args);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], `veille ${VERSION}`);
    for (const lib of [/^ {2}h2o \d+\.\d+\.\d+/, /^ {2}LMDB \d+\.\d+\.\d+/, /^ {2}OpenSSL \d+\.\d+/,
      /^ {2}jansson \d+\.\d+/, /^ {2}msgpack-c \d+\.\d+\.\d+/])
      assert.ok(lines.some((l) => lib.test(l)), `${lib} in ${r.stdout}`);
  }
  const r = run(['version', 'extra']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /usage: veille version/);
});

test('serve logs the version it runs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'veille-cli-version-'));
  try {
    // a data "directory" that is a file: serve logs its start line, then fails to open the store
    const data = join(dir, 'file');
    writeFileSync(data, '');
    const r = run(['serve', '--listen', '127.0.0.1:0', '--data', data], { timeout: 5000 });
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`msg=starting version=${VERSION.replace(/\./g, '\\.')} `));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Every message about a bad value names its flag once, as its prefix: "veille serve:
// --min-severity: 'x' is not one of ...", never "--min-severity: min-severity: ...".
const count = (s, word) => s.split(word).length - 1;
test('a bad flag value: exit 2, and the message names the flag exactly once', () => {
  const bad = [
    ['serve', '--listen', 'nowhere'], ['serve', '--listen', '127.0.0.1:99999'], ['serve', '--data', ''],
    ['serve', '--rules', ''], ['serve', '--alert', 'bogus'], ['serve', '--alert', 'webhook:ftp://x'],
    ['serve', '--min-severity', 'loud'], ['serve', '--alert', 'stdout', '--min-severity', 'loud'],
    ['serve', '--alert', 'syslog', '--facility', 'local9'], ['serve', '--alert', 'stdout', '--facility', 'user'],
    ['serve', '--alert', 'webhook:https://h/x', '--header', 'X A: b'],
    ['serve', '--alert', 'webhook:https://h/x', '--header', 'Host: evil'],
    ['serve', '--alert', 'syslog', '--header', 'X-A: b'], ['serve', '--alert', 'syslog', '--ca', '/x.pem'],
    ['serve', '--alert-retry-for', '5'], ['serve', '--alert-retry-for', '100ms'], ['serve', '--alert-timeout', 'x'],
    ['serve', '--outbox-max', '0'], ['serve', '--max-body', 'lots'], ['serve', '--map-size', '1K'],
    ['serve', '--max-backlog', 'x'], ['serve', '--max-backlog', '512K'],
    ['serve', '--retention', '1s'], ['serve', '--retention', '90'],
    ['serve', '--log-level', 'chatty'],
    ['test-alert', '--alert', 'syslog', '--facility', 'local9'], ['test-alert', '--alert', 'stdout', '--header', 'A: b'],
    ['test-alert', '--alert', 'bogus'], ['test-alert', '--alert', 'stdout', '--severity', 'loud'],
    ['test-alert', '--alert', 'stdout', '--alert-timeout', '1ms'],
    ['history', 'user_x', '--since', 'x'], ['alerts', '--since', 'x'],
  ];
  for (const args of bad) {
    const flag = args.at(-2);
    const r = run(args, { timeout: 5000 });
    const what = `${args.join(' ')}: ${r.stderr}`;
    assert.equal(r.status, 2, what);
    assert.match(r.stderr, new RegExp(`^veille ${args[0]}: ${flag}: `, 'm'), what);
    const msg = r.stderr.replace(`veille ${args[0]}: `, ''); // "test-alert:" is not a repeat of "alert:"
    assert.equal(count(msg, `${flag.slice(2)}:`), 1, `'${flag.slice(2)}:' more than once in: ${what}`);
    assert.doesNotMatch(r.stderr, /msg=listening/);
  }
});

// the map's pages are page cache, not veille's memory: nothing to bound (README "Store layout")
test('--map-resident is gone: refused as an unknown argument (and as an unknown setting in a config file)', () => {
  const r = run(['serve', '--map-resident', '24M'], { timeout: 5000 });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /unknown argument '--map-resident'/);
  assert.doesNotMatch(r.stderr, /msg=listening/);
});

test('a bad config line: FILE:LINE: setting: message, the setting named once', () => {
  const dir = mkdtempSync(join(tmpdir(), 'veille-cli-conf-'));
  try {
    for (const [line, key] of [['max-body = lots', 'max-body'], ['alert = bogus', 'alert'],
      ['min-severity = loud', 'min-severity'], ['retention = 1s', 'retention'], ['colour = blue', 'colour'],
      ['listen = nowhere', 'listen'], ['max-backlog = 1K', 'max-backlog'], ['map-resident = 24M', 'map-resident']]) {
      const conf = join(dir, 'veille.conf');
      writeFileSync(conf, `# comment\nalert = stdout\n${line}\n`);
      const r = run(['serve', '--config', conf], { timeout: 5000 });
      const what = `${line}: ${r.stderr}`;
      assert.equal(r.status, 2, what);
      assert.match(r.stderr, new RegExp(`veille\\.conf:3: ${key}: `), what);
      assert.equal(count(r.stderr, `${key}:`), 1, what);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('check refuses a flag rather than reading a file named like one', () => {
  const r = run(['check', '--strict', 'rules/default.rules']);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /unknown flag '--strict'/);
  assert.match(r.stderr, /usage: veille check/);
});

test('replay from another working directory runs the default rules, and says which file', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'veille-cli-cwd-'));
  try {
    const events = join(ROOT, 'tests/replay/labeled.ndjson');
    const expected = readFileSync(join(ROOT, 'tests/replay/labeled.expected'), 'utf8').split('\n').filter(Boolean);
    const r = run(['replay', events], { cwd });
    assert.equal(r.status, 0, r.stderr);
    const rules = realpathSync(join(ROOT, 'rules/default.rules'));
    assert.match(r.stderr, new RegExp(`^replay: rules ${rules.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(14 rules\\)$`, 'm'));
    assert.equal(r.stdout.split('\n').filter(Boolean).length, expected.length, r.stderr);

    // --rules none: the events are decoded and stored, nothing is raised
    const none = run(['replay', '--rules', 'none', events], { cwd });
    assert.equal(none.status, 0, none.stderr);
    assert.match(none.stderr, /^replay: rules none \(0 rules\)$/m);
    assert.match(none.stderr, / 0 rejected; 0 alerts$/m);
    assert.equal(none.stdout, '');

    // a relative --rules is the caller's cwd's, as any path argument
    writeFileSync(join(cwd, 'mine.rules'), '');
    const mine = run(['replay', '--rules', 'mine.rules', events], { cwd });
    assert.equal(mine.status, 0, mine.stderr);
    assert.match(mine.stderr, new RegExp(`^replay: rules ${realpathSync(cwd)}/mine\\.rules \\(0 rules\\)$`, 'm'));
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});

// ---- serve's options: one table (src/serve/options.c) drives the flags, the config
// file, --help and the errors. These tests read the options from --help and README
// "Configuration", so an option added to or removed from one place only fails here.

// --help's option entries: name -> { indent, line (index), text (continuation lines joined) }
function serveHelpOptions() {
  const r = run(['serve', '--help']);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  const options = new Map();
  let last = null;
  lines.forEach((l, i) => {
    const m = l.match(/^( +)--([a-z-]+) /);
    if (m) {
      last = { indent: m[1].length, line: i, text: l.trim() };
      options.set(m[2], last);
    } else if (last && /^ {20,}\S/.test(l) && !/^ +\[/.test(l)) {
      last.text += ` ${l.trim()}`; // a wrapped help line
    } else {
      last = null;
    }
  });
  return { options, lines, stdout: r.stdout };
}

// README "Configuration": flag -> default, as written in its table (backticks dropped)
function readmeOptions() {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Configuration\n'));
  assert.ok(section, 'README has a "## Configuration" section');
  const rows = new Map();
  for (const l of section.split('\n')) {
    const cells = l.split('|');
    const m = l.startsWith('| `--') && cells[1].match(/`--([a-z-]+)/);
    if (m) rows.set(m[1], cells[2].replace(/`/g, '').trim());
  }
  return rows;
}

test('serve --help and README "Configuration" list the same options with the same defaults', () => {
  const { options } = serveHelpOptions();
  const readme = readmeOptions();
  assert.ok(readme.size >= 10, `README's table has rows: ${[...readme.keys()]}`);
  assert.deepEqual([...options.keys()].sort(), [...readme.keys()].sort(),
    'every --flag of README\'s table is in serve --help, and every option of --help in README');
  for (const [name, def] of readme) {
    const m = options.get(name).text.match(/\(default: ([^)]*)\)$/);
    assert.ok(m, `--${name} in --help shows its default: ${options.get(name).text}`);
    assert.equal(m[1], def, `--${name}: README's default vs --help's`);
  }
});

test('serve --help groups the sink options under --alert, with the SPEC forms', () => {
  const { options, lines, stdout } = serveHelpOptions();
  const alert = options.get('alert');
  assert.ok(alert, stdout);
  const next = [...options.values()].filter((o) => o.indent === alert.indent && o.line > alert.line)
    .reduce((a, o) => Math.min(a, o.line), lines.length);
  for (const sink of ['min-severity', 'facility', 'header', 'ca']) {
    const o = options.get(sink);
    assert.ok(o, `--${sink} in --help`);
    assert.ok(o.line > alert.line && o.line < next && o.indent > alert.indent,
      `--${sink} is listed under --alert, indented: ${stdout}`);
  }
  const block = lines.slice(alert.line, next).join('\n');
  for (const form of ['stdout', 'file:PATH', 'syslog:PATH', 'syslog://HOST:PORT', 'syslog+tcp://HOST:PORT',
    'webhook:http(s)://HOST/PATH'])
    assert.ok(block.includes(form), `${form} under --alert in --help`);
  assert.match(options.get('header').text, /\(repeatable\)/);
  assert.match(options.get('alert').text, /\(repeatable\)/);
});

test('every serve option, as --name=value, --name value and a config line, names itself once in its error', () => {
  const { options } = serveHelpOptions();
  const dir = mkdtempSync(join(tmpdir(), 'veille-cli-opts-'));
  try {
    const conf = join(dir, 'veille.conf');
    for (const name of options.keys()) {
      if (name === 'config') continue; // its errors name the file (below)
      // an empty value is wrong for every option (and a sink option has no sink yet);
      // a switch (--init: no value in --help) takes its value only as --name=VALUE
      const isSwitch = new RegExp(`^--${name} {2,}`).test(options.get(name).text);
      for (const args of isSwitch ? [[`--${name}=`]] : [[`--${name}=`], [`--${name}`, '']]) {
        const r = run(['serve', ...args], { timeout: 5000 });
        const what = `${args.join(' ')}: ${r.stderr}`;
        assert.equal(r.status, 2, what);
        assert.match(r.stderr, new RegExp(`^veille serve: --${name}: `), what);
        assert.equal(count(r.stderr.replace(/\nusage:[^]*/, ''), `${name}:`), 1, what);
      }
      writeFileSync(conf, `alert = stdout\n${name} = ""\n`);
      const r = run(['serve', '--config', conf], { timeout: 5000 });
      assert.equal(r.status, 2, `${name} = "": ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^veille serve: ${conf.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: ${name}: `),
        `${name} = "": ${r.stderr}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('serve: a flag without its value says which value it needs', () => {
  for (const [flag, value] of [['--listen', 'HOST:PORT'], ['--alert', 'SPEC'], ['--max-body', 'BYTES']]) {
    const r = run(['serve', flag], { timeout: 5000 });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr, `veille serve: ${flag}: needs a value (${value})\n`);
  }
});

test('a config file cannot read another: config is a flag only, said as such', () => {
  const dir = mkdtempSync(join(tmpdir(), 'veille-cli-conf-'));
  try {
    const conf = join(dir, 'veille.conf');
    writeFileSync(conf, `config = ${conf}\n`);
    const r = run(['serve', '--config', conf], { timeout: 5000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /veille\.conf:1: config: only as a flag \(--config FILE\), not in a config file$/m);
    // the unknown-setting message lists the config keys, from the same table
    writeFileSync(conf, 'colour = blue\n');
    const u = run(['serve', '--config', conf], { timeout: 5000 });
    assert.equal(u.status, 2, u.stderr);
    const keys = u.stderr.match(/colour: unknown setting \(([^)]*)\)/)[1].split(', ');
    assert.deepEqual(keys.sort(), [...serveHelpOptions().options.keys()].filter((k) => k !== 'config').sort());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
