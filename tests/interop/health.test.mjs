// Interop: /healthz tells what a delivery would get, and requests whose body
// framing is ambiguous (request smuggling) are refused.
// 1. A store that fills up (tiny --map-size, like durability.test.mjs): /healthz
//    answers 503 with the reason and Retry-After while the apply fails, and 200
//    again once an apply commits (retention frees room).
// 2. While stopping (SIGTERM), /healthz answers 503 "shutting down".
// 3. Past --max-backlog (the apply held back by another process holding the
//    store's writer lock), deliveries and /healthz get 503 "server busy" with the
//    backlog; once it is applied, 200 again.
// 3. Two Content-Length headers, or Content-Length with Transfer-Encoding, sent by
//    hand on a raw socket: 400 with a JSON reason, the connection closed, nothing
//    stored. h2o 2.2.5 alone takes the first Content-Length (or the chunked body).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { Agent, request } from 'node:http';
import { Webhook } from 'svix';
import { envelope, session, untilApplied, untilListening } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const SECRET = 'whsec_' + randomBytes(32).toString('base64');
const wh = new Webhook(SECRET);

async function startServer(extra = []) {
  const dataDir = mkdtempSync(join(tmpdir(), 'veille-health-'));
  const s = { log: '', base: null, dataDir };
  s.proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir, '--rules', '/dev/null', ...extra],
    { env: { ...process.env, VEILLE_WEBHOOK_SECRET: SECRET }, stdio: ['ignore', 'ignore', 'pipe'] });
  await untilListening(s);
  s.port = Number(new URL(s.base).port);
  return s;
}

async function stopServer(s, { keep = false } = {}) {
  if (s.proc.exitCode === null && s.proc.signalCode === null) {
    s.proc.kill('SIGTERM');
    await new Promise((ok) => s.proc.once('exit', ok));
  }
  if (!keep) rmSync(s.dataDir, { recursive: true, force: true });
}

function signedHeaders(id, body) {
  const now = new Date();
  return { 'content-type': 'application/json', 'svix-id': id, 'svix-timestamp': String(Math.floor(now / 1000)),
    'svix-signature': wh.sign(id, now, body) };
}

function post(port, agent, id, body) {
  return new Promise((ok) => {
    const req = request({ host: '127.0.0.1', port, path: '/webhooks/clerk', method: 'POST', agent,
      headers: signedHeaders(id, body) }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => ok({ status: res.statusCode, text }));
    });
    req.on('error', (e) => ok({ status: 0, text: String(e) }));
    req.end(body);
  });
}

async function healthz(s) {
  const res = await fetch(s.base + '/healthz', { signal: AbortSignal.timeout(5000) });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), json: await res.json() };
}

// Sends raw bytes; resolves with what came back and whether the server closed
// the connection (within 3 s).
function raw(port, bytes) {
  return new Promise((ok, fail) => {
    const sock = connect(port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => { sock.destroy(); ok({ data, closed: false }); }, 3000);
    sock.on('data', (d) => { data += d; });
    sock.on('end', () => { clearTimeout(timer); sock.destroy(); ok({ data, closed: true }); });
    sock.on('error', (e) => { clearTimeout(timer); fail(e); });
    sock.write(bytes);
  });
}

function parseResponse(text) {
  const at = text.indexOf('\r\n\r\n');
  assert.ok(at > 0, `an HTTP response: ${JSON.stringify(text)}`);
  const [statusLine, ...lines] = text.slice(0, at).split('\r\n');
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(),
    l.slice(l.indexOf(':') + 1).trim()]));
  let body = text.slice(at + 4);
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    let out = '';
    for (let m; (m = /^([0-9a-f]+)\r\n/i.exec(body)) && parseInt(m[1], 16) > 0;) {
      const n = parseInt(m[1], 16);
      out += body.slice(m[0].length, m[0].length + n);
      body = body.slice(m[0].length + n + 2);
    }
    body = out;
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

// ---- (1) a full store ----

test('/healthz answers 503 with the reason while the store is full, 200 once an apply succeeds again', async () => {
  // event times 52 s ago with --retention 1m: once the store is full they become
  // prunable a few seconds later, which frees the space for new deliveries
  const s = await startServer(['--map-size', '1M', '--retention', '1m']);
  try {
    assert.equal((await healthz(s)).status, 200, 'healthy at start');
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const at = Date.now() - 52000;
    const delivery = (i) => {
      const ses = session(`sess_health_${i}`, 'user_health', at + i, `198.51.${i >> 8 & 255}.${i & 255}`);
      ses.latest_activity.browser_name = 'Firefox'.padEnd(200, 'x');
      return envelope('session.created', ses);
    };
    let refused = null;
    for (let i = 0; i < 20000 && refused === null; i++) {
      const r = await post(s.port, agent, `msg_health_${i}`, delivery(i));
      if (r.status === 503) refused = r;
      else assert.equal(r.status, 200, r.text);
    }
    assert.ok(refused, 'the store filled up');
    const h = await healthz(s);
    assert.equal(h.status, 503, JSON.stringify(h.json));
    assert.equal(h.json.status, 'unavailable');
    assert.ok(h.json.backlog.records > 0, `the log keeps what the store refused: ${JSON.stringify(h.json)}`);
    assert.match(h.json.reason, /^store full: store is full \(map size 1 MiB\)/);
    assert.ok(h.json.reason.endsWith(JSON.parse(refused.text).error), `the reason a delivery got: ${refused.text}`);
    assert.ok(h.retryAfter, 'Retry-After');
    assert.ok(Math.abs(Date.parse(h.json.since) - Date.now()) < 60000, `since: ${h.json.since}`);
    // still full on a second look: nothing has been committed since
    assert.equal((await healthz(s)).status, 503);

    // retention prunes the old history, the apply's retry then commits what the
    // log kept: /healthz and the deliveries turn back to 200 together
    let stored = false;
    for (let i = 0; i < 100 && !stored; i++) {
      await new Promise((ok) => setTimeout(ok, 200));
      const r = await post(s.port, agent, `msg_health_after_${i}`,
        envelope('session.created', session(`sess_health_after_${i}`, 'user_health_after', Date.now())));
      if (r.status === 200) {
        stored = true;
      } else if ((await healthz(s)).status !== 503) {
        // the apply's retry (every second) committed between the two: then the
        // next delivery must be accepted, as /healthz says
        const next = await post(s.port, agent, `msg_health_next_${i}`,
          envelope('session.created', session(`sess_health_next_${i}`, 'user_health_after', Date.now())));
        assert.equal(next.status, 200, `/healthz said ok, a delivery got ${next.status}: ${next.text}`);
        stored = true;
      }
    }
    assert.ok(stored, `a delivery was stored again after pruning\n${s.log}`);
    await untilApplied(s.base);
    const after = await healthz(s);
    assert.equal(after.status, 200, JSON.stringify(after.json));
    assert.equal(after.json.status, 'ok');
    assert.equal(after.json.backlog.records, 0, 'what the log kept while full is applied');
    agent.destroy();
  } finally {
    await stopServer(s);
  }
});

// ---- (2) stopping ----

test('/healthz answers 503 "shutting down" once SIGTERM is received', async () => {
  const s = await startServer();
  try {
    const get = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
    const sock = connect(s.port, '127.0.0.1');
    let data = '';
    sock.on('data', (d) => { data += d; });
    sock.write(get);
    await new Promise((ok, fail) => {
      const t = setInterval(() => { if (data.includes('"status":"ok"')) { clearInterval(t); ok(); } }, 5);
      sock.on('error', fail);
    });
    data = '';
    // the same keep-alive connection, served while veille finishes what is in flight
    s.proc.kill('SIGTERM');
    sock.write(get);
    await new Promise((ok) => {
      const t = setInterval(() => { if (data.includes('}')) { clearInterval(t); ok(); } }, 5);
      sock.on('close', () => { clearInterval(t); ok(); });
    });
    sock.destroy();
    const r = parseResponse(data);
    assert.equal(r.status, 503, data);
    const b = JSON.parse(r.body);
    assert.deepEqual([b.status, b.reason], ['unavailable', 'shutting down']);
    assert.ok(r.headers['retry-after'], 'Retry-After');
  } finally {
    await stopServer(s);
  }
});

// ---- (3) backpressure: the backlog waiting to be applied ----

// tests/hold-writer holds the store's LMDB writer lock from another process:
// veille's apply waits on it, the log keeps accepting, the backlog grows.
const HOLD_WRITER = join(dirname(BIN), 'tests', 'hold-writer');

test('past --max-backlog, 503 "server busy" with Retry-After and the backlog in /healthz; everything accepted is applied', { timeout: 120000 }, async () => {
  const s = await startServer(['--max-backlog', '1M']);
  const holder = spawn(HOLD_WRITER, [s.dataDir], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    await new Promise((ok, fail) => {
      holder.stdout.on('data', (d) => { if (String(d).includes('held')) ok(); });
      holder.once('exit', (code) => fail(new Error(`hold-writer exited with ${code}`)));
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 32 });
    const at = Date.now() - 3600000;
    const accepted = [];
    let busy = null;
    // about 370 bytes of log per sign-in: 1 MiB is some 2,800 of them
    for (let i = 0; i < 20000 && busy === null; i += 256) {
      const answers = await Promise.all(Array.from({ length: 256 }, async (_, k) => {
        const n = i + k;
        const r = await post(s.port, agent, `msg_busy_${n}`,
          envelope('session.created', session(`sess_busy_${n}`, 'user_busy', at + n)));
        return { n, ...r };
      }));
      for (const r of answers) {
        if (r.status === 200) accepted.push(`sess_busy_${r.n}`);
        else if (r.status === 503) busy = busy ?? r;
        else assert.fail(`delivery ${r.n}: ${r.status} ${r.text}`);
      }
    }
    agent.destroy();
    assert.ok(busy, 'the backlog passed --max-backlog');
    assert.ok(accepted.length > 2000, `accepted until the bound: ${accepted.length}`);
    assert.match(JSON.parse(busy.text).error,
      /^server busy: \d+ bytes \(\d+ deliveries\) wait to be applied, past --max-backlog 1048576$/);
    const h = await healthz(s);
    assert.equal(h.status, 503, JSON.stringify(h.json));
    assert.match(h.json.reason, /^server busy: .* past --max-backlog 1048576$/);
    assert.ok(h.retryAfter, 'Retry-After');
    assert.equal(h.json.backlog.records, accepted.length, JSON.stringify(h.json));
    assert.ok(h.json.backlog.bytes > 1048576, JSON.stringify(h.json));
    // the writer lock released: the apply catches up, and veille accepts again
    holder.stdin.end();
    await untilApplied(s.base, 30000);
    assert.equal((await healthz(s)).status, 200);
    await stopServer(s, { keep: true });
    const r = spawnSync(BIN, ['history', 'user_busy', '--limit', '100000', '--json', '--data', s.dataDir],
      { encoding: 'utf8', maxBuffer: 256 << 20 });
    assert.equal(r.status, 0, r.stderr);
    const stored = new Set(r.stdout.trim().split('\n').map((l) => JSON.parse(l).session_id));
    assert.deepEqual(accepted.filter((sid) => !stored.has(sid)), [], 'accepted but not applied');
  } finally {
    holder.stdin.end();
    await stopServer(s);
  }
});

// ---- (4) ambiguous body framing ----

test('two Content-Length headers, or Content-Length with Transfer-Encoding: 400, connection closed, nothing stored', async () => {
  const s = await startServer();
  try {
    const agent = new Agent({ keepAlive: false });
    const cases = [
      { name: 'two Content-Length', reason: /more than one Content-Length/,
        framing: (body) => `Content-Length: ${Buffer.byteLength(body)}\r\nContent-Length: 0\r\n\r\n${body}` },
      { name: 'the same Content-Length twice', reason: /more than one Content-Length/,
        framing: (body) => `Content-Length: ${Buffer.byteLength(body)}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}` },
      { name: 'two Content-Length after an empty line', reason: /more than one Content-Length/, prefix: '\r\n',
        framing: (body) => `Content-Length: ${Buffer.byteLength(body)}\r\nContent-Length: 0\r\n\r\n${body}` },
      { name: 'Content-Length with Transfer-Encoding', reason: /Content-Length together with Transfer-Encoding/,
        framing: (body) => {
          const chunked = `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`;
          return `Content-Length: ${Buffer.byteLength(chunked)}\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`;
        } },
    ];
    for (const [i, c] of cases.entries()) {
      const id = `msg_smuggle_${i}`;
      const body = envelope('session.created', session(`sess_smuggle_${i}`, 'user_smuggle', Date.now()));
      const head = `POST /webhooks/clerk HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
        Object.entries(signedHeaders(id, body)).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      const got = await raw(s.port, (c.prefix ?? '') + head + c.framing(body));
      const r = parseResponse(got.data);
      assert.equal(r.status, 400, `${c.name}: ${got.data}`);
      assert.match(r.headers['content-type'], /application\/json/, c.name);
      assert.match(JSON.parse(r.body).error, c.reason, c.name);
      assert.ok(got.closed, `${c.name}: the connection is closed`);
      assert.equal(r.headers.connection, 'close', c.name);
      // not stored: the same delivery sent properly is new, not a duplicate
      const again = await post(s.port, agent, id, body);
      assert.equal(again.status, 200, again.text);
      assert.deepEqual(JSON.parse(again.text), { status: 'accepted' }, `${c.name}: was stored by the refused request`);
    }
    // the control: one Content-Length, sent the same way, is taken
    const body = envelope('session.created', session('sess_smuggle_ok', 'user_smuggle', Date.now()));
    const head = `POST /webhooks/clerk HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n` +
      Object.entries(signedHeaders('msg_smuggle_ok', body)).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    const ok = parseResponse((await raw(s.port, `${head}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)).data);
    assert.equal(ok.status, 200, ok.body);
    assert.deepEqual(JSON.parse(ok.body), { status: 'accepted' });
    assert.match(s.log, /msg="refused: ambiguous body framing"/);
  } finally {
    await stopServer(s);
  }
});
