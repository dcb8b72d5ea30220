// veille-loadgen, the benchmark's load generator (bench/loadgen.c), against a receiver
// written here with the svix package: what it sends must be what Svix sends (ids
// shaped and ordered as Svix's, signatures svix accepts, pre-signed or not), and
// both of veille's acknowledgements ("stored" after the LMDB commit, "accepted" from
// the write-ahead log) count as success.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'svix';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const LOADGEN = join(dirname(BIN), 'bench', 'veille-loadgen');

// A receiver that verifies every delivery with svix, keeps the svix-ids in arrival
// order, and answers with the status word answer(n) for the n-th delivery.
async function receiver(secret, answer) {
  const wh = new Webhook(secret);
  const ids = [];
  let bad = 0;
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      try {
        wh.verify(body, req.headers);
      } catch {
        bad++;
        res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"verification failed"}');
        return;
      }
      ids.push(req.headers['svix-id']);
      res.writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ status: answer(ids.length - 1) }));
    });
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, ids, bad: () => bad, port: server.address().port };
}

function runLoadgen(args, secret) {
  return new Promise((ok, fail) => {
    const p = spawn(LOADGEN, args, { env: { ...process.env, VEILLE_WEBHOOK_SECRET: secret },
      stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), 30000);
    p.on('error', fail);
    p.on('close', (code) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('RESULT ')) ?? '';
      const result = Object.fromEntries(line.slice(7).split(' ').filter(Boolean).map((kv) => kv.split('=')));
      ok({ code, out, err, result });
    });
  });
}

const KSUID_ID = /^msg_[0-9A-Za-z]{27}$/;

for (const presign of [true, false]) {
  test(`loadgen ${presign ? '--presign' : 'signing on the fly'}: svix-ids are Svix-shaped KSUIDs, unique and in sending order; "stored" and "accepted" both succeed`,
    { skip: !existsSync(LOADGEN) && `no ${LOADGEN}` }, async () => {
      const secret = 'whsec_' + randomBytes(32).toString('base64');
      const r = await receiver(secret, (n) => (n % 2 ? 'stored' : 'accepted'));
      try {
        const events = 300;
        // One connection: arrival order is sending order.
        const args = ['--url', `http://127.0.0.1:${r.port}/webhooks/clerk`, '--connections', '1',
          '--events', String(events), '--expect-2xx', '--quiet', '--run-id', 'idcheck'];
        if (presign) args.push('--presign');
        const run = await runLoadgen(args, secret);
        assert.equal(run.code, 0, `loadgen exit code (stderr: ${run.err})`);
        assert.equal(r.bad(), 0, 'every signature verified by svix');
        assert.equal(r.ids.length, events);
        for (const id of r.ids) assert.match(id, KSUID_ID);
        assert.equal(new Set(r.ids).size, events, 'ids are unique');
        for (let i = 1; i < events; i++)
          assert.ok(r.ids[i - 1] < r.ids[i], `id ${i - 1} ${r.ids[i - 1]} sorts before id ${i} ${r.ids[i]}`);
        assert.equal(run.result.ok_2xx, String(events));
        assert.equal(run.result.accepted, String(events / 2));
        assert.equal(run.result.stored, String(events / 2));
        assert.equal(run.result.duplicate, '0');
      } finally {
        r.server.close();
      }
    });
}

test('loadgen: two runs a second apart make ids that sort by time, the later run after the earlier',
  { skip: !existsSync(LOADGEN) && `no ${LOADGEN}` }, async () => {
    const secret = 'whsec_' + randomBytes(32).toString('base64');
    const r = await receiver(secret, () => 'accepted');
    try {
      const args = (run) => ['--url', `http://127.0.0.1:${r.port}/webhooks/clerk`, '--connections', '4',
        '--events', '20', '--expect-2xx', '--quiet', '--run-id', run];
      // "zz" hashes above "aa" or not: only the time part may decide the order.
      assert.equal((await runLoadgen(args('zzlater'), secret)).code, 0);
      const first = r.ids.splice(0);
      await new Promise((ok) => setTimeout(ok, 1100));
      assert.equal((await runLoadgen(args('aaearly'), secret)).code, 0);
      const second = r.ids.splice(0);
      const lastOfFirst = first.slice().sort().at(-1);
      const firstOfSecond = second.slice().sort()[0];
      assert.ok(lastOfFirst < firstOfSecond, `${lastOfFirst} (run 1) sorts before ${firstOfSecond} (run 2)`);
    } finally {
      r.server.close();
    }
  });
