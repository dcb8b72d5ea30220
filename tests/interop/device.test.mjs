// Devices end to end through `veille replay`: the request's user agent
// (event_attributes.http_request.user_agent) read by uap-core, on deliveries
// with and without latest_activity. A browser update is not a new device;
// another browser or OS is; Clerk's device_type stays what Clerk sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { session } from './payloads.mjs';

const BIN = resolve(process.env.VEILLE_BIN ?? new URL('../../build/veille', import.meta.url).pathname);
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const run = (args) => spawnSync(BIN, args, { cwd: ROOT, encoding: 'utf8', timeout: 20000 });

const RULES = `rule new_device {
  severity low
  on       session.created
  when     first_seen(device, 90d)
}
rule iphone_on_mobile {
  severity info
  on       session.created
  when     ua.device == "iPhone" and ua.os == "iOS" and ua.os_major >= 17 and device == "mobile"
}
`;
const UA = {
  chrome119: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36',
  chrome120: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
  firefox: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0',
  iphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
};
const T0 = Date.parse('2026-06-01T08:00:00Z');

// A session.created of user_dev from ua; withActivity false drops
// latest_activity, as older deliveries do.
function signIn(i, ua, withActivity, deviceType = 'desktop') {
  const at = T0 + i * 3600000;
  const data = session(`sess_dev_${i}`, 'user_dev', at);
  if (withActivity) data.latest_activity.device_type = deviceType;
  else delete data.latest_activity;
  return JSON.stringify({ data, object: 'event', type: 'session.created', timestamp: at, instance_id: 'ins_dev',
    event_attributes: { http_request: { client_ip: '198.51.100.7', user_agent: ua } } });
}

let dir, data, replay, alerts;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'veille-device-'));
  data = join(dir, 'data');
  writeFileSync(join(dir, 'device.rules'), RULES);
  const lines = [
    signIn(1, UA.chrome119, true),           // first device: on record, not new
    signIn(2, UA.chrome120, false),          // browser update, no latest_activity: same device
    signIn(3, UA.firefox, false),            // another browser: new
    signIn(4, UA.iphone, true, 'mobile'),    // another OS and device: new, and the iPhone rule
    signIn(5, UA.chrome119, false),          // a known device again
  ];
  writeFileSync(join(dir, 'events.ndjson'), lines.join('\n') + '\n');
  replay = run(['replay', '--rules', join(dir, 'device.rules'), '--data', data, join(dir, 'events.ndjson')]);
  const r = run(['alerts', '--json', '--data', data]);
  assert.equal(r.status, 0, r.stderr);
  alerts = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('replay with rules reading devices runs clean', () => {
  assert.equal(replay.status, 0, replay.stderr);
});

test('first_seen(device): a browser update is not a new device, another browser or OS is', () => {
  const got = alerts.filter((a) => a.rule === 'new_device').map((a) => a.session_id).sort();
  assert.deepEqual(got, ['sess_dev_3', 'sess_dev_4']);
  const keys = alerts.filter((a) => a.rule === 'new_device').map((a) => a.evidence.device_key).sort();
  assert.deepEqual(keys, ['Firefox / Windows / Other', 'Mobile Safari / iOS / iPhone']);
});

test('ua.* fields read the user agent while device stays Clerk\'s device_type', () => {
  const got = alerts.filter((a) => a.rule === 'iphone_on_mobile');
  assert.deepEqual(got.map((a) => a.session_id), ['sess_dev_4']);
  const ev = got[0].evidence;
  assert.equal(ev['ua.device'], 'iPhone');
  assert.equal(ev['ua.os_major'], 17);
  assert.equal(ev.device, 'mobile');
});
