// Durability: a 2xx means the delivery is durable in the write-ahead log, and
// applied to the store exactly once, whatever happens after the answer.
// 1. kill -9 during load, 10 short trials: after a restart (which applies what
//    the log holds before serving) every delivery answered 2xx is in the store
//    once, and a rule that fires once per user has raised exactly one alert for
//    every user with an answered delivery: no alert lost, none doubled by the
//    replay of a transaction the crash rolled back.
// 2. A store that fills up (tiny --map-size) while the log has room: deliveries
//    are acknowledged until the apply fails, then answered 503 (Svix retries);
//    /healthz says why. Restarted with room, every acknowledged delivery is
//    applied and none that got a 503 is there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { Webhook } from 'svix';
import { untilApplied, untilListening } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);

// the first sign-in of a user raises an alert; every later one folds into it
const ONCE = `rule first_sign_in {
  severity low
  on       session.created
  when     count(session.created, 1h) > 0
  suppress 1h
}
`;

async function startVeille(dataDir, secret, extra = []) {
  const s = { log: '', base: null };
  s.proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dataDir, ...extra],
    { env: { ...process.env, VEILLE_WEBHOOK_SECRET: secret }, stdio: ['ignore', 'ignore', 'pipe'] });
  await untilListening(s);
  s.port = Number(new URL(s.base).port);
  return s;
}

async function stop(s, signal = 'SIGTERM') {
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) return;
  const exited = new Promise((r) => s.proc.once('exit', r));
  s.proc.kill(signal);
  await exited;
}

function post(port, agent, body, headers) {
  return new Promise((ok) => {
    const req = request({ host: '127.0.0.1', port, path: '/webhooks/clerk', method: 'POST', agent, headers },
      (res) => { res.resume(); res.on('end', () => ok(res.statusCode)); res.on('error', () => ok(0)); });
    req.on('error', () => ok(0)); // the server was killed: no answer
    req.end(body);
  });
}

function signIn(wh, now, i, user, extra = {}) {
  const sid = `sess_${user}_${i}`;
  const body = JSON.stringify({ object: 'event', type: 'session.created', timestamp: now,
    data: { object: 'session', id: sid, user_id: user, client_id: 'client_d', status: 'active',
      created_at: now - 100000 + i, updated_at: now - 100000 + i, ...extra } });
  const id = `msg_${user}_${i}`;
  const headers = { 'content-type': 'application/json', 'svix-id': id,
    'svix-timestamp': String(Math.floor(now / 1000)), 'svix-signature': wh.sign(id, new Date(now), body) };
  return { sid, body, headers };
}

function cliJson(dataDir, ...args) {
  const r = spawnSync(BIN, [...args, '--json', '--data', dataDir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

test('kill -9 during load, 10 trials: every 2xx is applied exactly once after the restart, one alert per user',
  { timeout: 120000 }, async (t) => {
    const secret = 'whsec_' + randomBytes(32).toString('base64');
    const wh = new Webhook(secret);
    const tmp = mkdtempSync(join(tmpdir(), 'veille-kill-'));
    const rules = join(tmp, 'once.rules');
    writeFileSync(rules, ONCE);
    const USERS = 5, EACH = 80;
    let replayed = 0; // trials whose restart applied records the kill left in the log
    try {
      for (let trial = 0; trial < 10; trial++) {
        const dataDir = join(tmp, `data${trial}`);
        const s = await startVeille(dataDir, secret, ['--rules', rules]);
        const agent = new Agent({ keepAlive: true, maxSockets: 16 });
        const now = Date.now();
        const answered = new Map(); // user -> session ids answered 2xx
        const killAt = 40 + Math.floor(Math.random() * 200); // somewhere in the stream
        let count = 0, killed = false;
        const sends = [];
        for (let i = 0; i < EACH; i++) {
          for (let u = 0; u < USERS; u++) {
            const user = `user_kill_${trial}_${u}`;
            const d = signIn(wh, now, i, user);
            sends.push(post(s.port, agent, d.body, d.headers).then((status) => {
              if (status === 200) {
                if (!answered.has(user)) answered.set(user, []);
                answered.get(user).push(d.sid);
              }
              if (++count >= killAt && !killed) { killed = true; s.proc.kill('SIGKILL'); }
            }));
          }
        }
        await Promise.all(sends);
        agent.destroy();
        await stop(s); // already killed; waits for the exit
        assert.ok(killed, `trial ${trial}: killed mid-stream`);
        assert.ok(answered.size > 0, `trial ${trial}: some deliveries answered before the kill`);

        const again = await startVeille(dataDir, secret, ['--rules', rules]);
        await untilApplied(again.base);
        await stop(again);
        if (/msg="write-ahead log replayed" records=[1-9]/.test(again.log)) replayed++;
        for (const [user, sids] of answered) {
          const history = cliJson(dataDir, 'history', user, '--limit', '100000').map((e) => e.session_id);
          const lost = sids.filter((sid) => !history.includes(sid));
          assert.deepEqual(lost, [], `trial ${trial}: ${user}: answered 2xx but not in the store`);
          assert.equal(new Set(history).size, history.length, `trial ${trial}: ${user}: an event stored twice`);
        }
        const alerts = cliJson(dataDir, 'alerts');
        for (const user of answered.keys()) {
          const mine = alerts.filter((a) => a.user_id === user);
          assert.equal(mine.length, 1, `trial ${trial}: ${user}: ${mine.length} alerts, want exactly 1\n${again.log}`);
        }
        rmSync(dataDir, { recursive: true, force: true });
      }
      t.diagnostic(`${replayed} of 10 restarts applied records left in the log by the kill`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

test('a full store: acknowledged until the apply fails, then 503; nothing acknowledged is lost once it has room',
  { timeout: 120000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'veille-full-'));
    const secret = 'whsec_' + randomBytes(32).toString('base64');
    const wh = new Webhook(secret);
    try {
      const s = await startVeille(dataDir, secret, ['--map-size', '1M', '--rules', 'none']);
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const now = Date.now();
      const ok = [], refused = [];
      for (let i = 0; i < 20000 && refused.length < 20; i++) {
        const d = signIn(wh, now, i, 'user_full', {
          latest_activity: { object: 'session_activity', id: 'a', is_mobile: false,
            ip_address: `198.51.${i >> 8 & 255}.${i & 255}`, browser_name: 'Firefox'.padEnd(200, 'x'),
            city: 'Lyon', country: 'FR' } });
        const status = await post(s.port, agent, d.body, d.headers);
        if (status === 200) ok.push(d.sid);
        else if (status === 503) refused.push(d.sid);
        else assert.fail(`unexpected status ${status} for delivery ${i}`);
      }
      const h = await fetch(`${s.base}/healthz`);
      const hj = await h.json();
      const metrics = await (await fetch(`${s.base}/metrics`)).text();
      agent.destroy();
      await stop(s);
      assert.ok(ok.length > 100, `some deliveries fit (${ok.length})`);
      assert.ok(refused.length > 0, 'the full store answered 503');
      assert.equal(h.status, 503);
      assert.match(hj.reason, /^store full: store is full \(map size 1 MiB\)/);
      assert.ok(hj.backlog.records > 0, 'the log keeps the deliveries the store could not take');
      assert.match(metrics, /veille_apply_failures_total [1-9]/);
      assert.match(s.log, /msg="apply failed: deliveries stay in the write-ahead log/);

      // restarted with room: what the log kept is applied before serving
      const big = await startVeille(dataDir, secret, ['--map-size', '64M', '--rules', 'none']);
      await untilApplied(big.base);
      await stop(big);
      assert.match(big.log, /msg="write-ahead log replayed" records=[1-9]/);
      const stored = new Set(cliJson(dataDir, 'history', 'user_full', '--limit', '100000').map((e) => e.session_id));
      assert.deepEqual(ok.filter((sid) => !stored.has(sid)), [], 'answered 200 but not stored');
      assert.deepEqual(refused.filter((sid) => stored.has(sid)), [], 'answered 503 but stored');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
