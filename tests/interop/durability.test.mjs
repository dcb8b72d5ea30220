// Durability: a 2xx means the delivery is on disk.
// 1. A store that fills up: deliveries that cannot be committed get 503 (so Svix
//    retries) and are absent; every delivery answered 200 is present. A server
//    that answered before committing would fail this.
// 2. A SIGKILL mid-stream: the store reopens and holds every delivery answered 2xx.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { Webhook } from 'svix';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);

function startVeille(dataDir, secret, extra = []) {
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir, ...extra],
    { env: { ...process.env, VEILLE_WEBHOOK_SECRET: secret }, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const port = new Promise((ok, fail) => {
    proc.stderr.on('data', (d) => {
      log += d;
      const m = /msg=listening addr=\S+ port=(\d+)/.exec(log);
      if (m) ok(Number(m[1]));
    });
    proc.on('exit', (code) => fail(new Error(`veille exited (${code}): ${log}`)));
  });
  return { proc, port };
}

function post(port, agent, body, headers) {
  return new Promise((ok) => {
    const req = request({ host: '127.0.0.1', port, path: '/webhooks/clerk', method: 'POST', agent, headers },
      (res) => { res.resume(); res.on('end', () => ok(res.statusCode)); res.on('error', () => ok(0)); });
    req.on('error', () => ok(0)); // the server was killed: no answer
    req.end(body);
  });
}

test('every delivery answered 2xx survives a SIGKILL', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'veille-durable-'));
  const secret = 'whsec_' + randomBytes(32).toString('base64');
  const wh = new Webhook(secret);
  const { proc, port: portP } = startVeille(dataDir, secret);
  const port = await portP;
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const now = Date.now();
  const N = 3000;
  const answered = []; // session ids whose delivery got a 2xx
  let killed = false;
  const sends = [];
  for (let i = 0; i < N; i++) {
    const sid = `sess_durable_${i}`;
    const body = JSON.stringify({ object: 'event', type: 'session.created', timestamp: now,
      data: { object: 'session', id: sid, user_id: 'user_durable', client_id: 'client_d', status: 'active',
        created_at: now - N + i, updated_at: now - N + i } });
    const id = `msg_durable_${i}`;
    const headers = { 'content-type': 'application/json', 'svix-id': id,
      'svix-timestamp': String(Math.floor(now / 1000)), 'svix-signature': wh.sign(id, new Date(now), body) };
    sends.push(post(port, agent, body, headers).then((status) => {
      if (status === 200) answered.push(sid);
      if (!killed && answered.length >= N / 3) { killed = true; proc.kill('SIGKILL'); }
    }));
  }
  await Promise.all(sends);
  agent.destroy();
  assert.ok(killed, 'the server was killed mid-stream');
  assert.ok(answered.length >= N / 3, `at least ${N / 3} answered before the kill`);
  const r = spawnSync(BIN, ['history', 'user_durable', '--limit', String(N), '--json', '--data', dataDir],
    { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const stored = new Set(r.stdout.trim().split('\n').map((l) => JSON.parse(l).session_id));
  const lost = answered.filter((sid) => !stored.has(sid));
  assert.deepEqual(lost, [], `${lost.length} deliveries were answered 2xx but are not in the store`);
  rmSync(dataDir, { recursive: true, force: true });
});

test('a full store answers 503 and stores nothing it did not answer 200 for', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'veille-full-'));
  const secret = 'whsec_' + randomBytes(32).toString('base64');
  const wh = new Webhook(secret);
  const { proc, port: portP } = startVeille(dataDir, secret, ['--map-size', '1M']);
  const port = await portP;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const now = Date.now();
  const ok = [], refused = [];
  for (let i = 0; i < 20000 && refused.length < 20; i++) {
    const sid = `sess_full_${i}`;
    const body = JSON.stringify({ object: 'event', type: 'session.created', timestamp: now,
      data: { object: 'session', id: sid, user_id: 'user_full', client_id: 'client_f', status: 'active',
        created_at: now - 20000 + i, updated_at: now - 20000 + i,
        latest_activity: { object: 'session_activity', id: 'a', is_mobile: false, ip_address: `198.51.${i >> 8 & 255}.${i & 255}`,
          browser_name: 'Firefox'.padEnd(200, 'x'), city: 'Lyon', country: 'FR' } } });
    const id = `msg_full_${i}`;
    const headers = { 'content-type': 'application/json', 'svix-id': id,
      'svix-timestamp': String(Math.floor(now / 1000)), 'svix-signature': wh.sign(id, new Date(now), body) };
    const status = await post(port, agent, body, headers);
    if (status === 200) ok.push(sid);
    else if (status === 503) refused.push(sid);
    else assert.fail(`unexpected status ${status} for delivery ${i}`);
  }
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  agent.destroy();
  proc.kill('SIGTERM');
  await new Promise((r) => proc.on('exit', r));
  assert.ok(ok.length > 100, `some deliveries fit (${ok.length})`);
  assert.ok(refused.length > 0, 'the full store answered 503');
  assert.match(metrics, /veille_commit_failures_total [1-9]/);
  const r = spawnSync(BIN, ['history', 'user_full', '--limit', '100000', '--json', '--data', dataDir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const stored = new Set(r.stdout.trim().split('\n').map((l) => JSON.parse(l).session_id));
  assert.deepEqual(ok.filter((s) => !stored.has(s)), [], 'answered 200 but not stored');
  assert.deepEqual(refused.filter((s) => stored.has(s)), [], 'answered 503 but stored');
  rmSync(dataDir, { recursive: true, force: true });
});
