#!/usr/bin/env node
// Writes tests/replay/labeled.ndjson (a labeled stream of Clerk webhook events
// over two days) and tests/replay/labeled.expected (the exact alert set that
// `veille replay --rules rules/default.rules` must raise on it, one line per
// alert: `RULE KEY SESSION_ID SUPPRESSED`, sorted).
//
// Deterministic: no clock, no randomness; running it again rewrites the same
// bytes (tests/interop/replay.test.mjs checks that).
//
//   node tests/replay/gen-labeled.mjs            rewrite the two files next to this script
//   node tests/replay/gen-labeled.mjs --out DIR  write them into DIR instead
//
// Every scenario has its own users and IPs, so each label is unambiguous:
// benign users and IPs (192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32) must raise
// nothing; labeled ones (203.0.113.0/24) raise exactly what `expect` says.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const BASE = Date.UTC(2024, 5, 3); // Monday 2024-06-03T00:00:00Z: day 0; day 1 is the 4th
const at = (day, h, m = 0, s = 0) => BASE + day * DAY + h * HOUR + m * MIN + s * 1000;

const pad = (n) => String(n).padStart(2, '0');

export function generate() {
  const events = []; // { deliver, seq, line }
  const expected = [];
  const benignUsers = new Set();
  const benignIps = new Set();
  let seq = 0;

  const push = (deliver, obj) => events.push({ deliver, seq: seq++, line: JSON.stringify(obj) });
  const envelope = (type, data, ts, ip = '') => ({
    data, object: 'event', type, timestamp: ts, instance_id: 'ins_replay_labeled',
    event_attributes: { http_request: { client_ip: ip, user_agent: 'Mozilla/5.0 (replay labeled)' } },
  });

  // A sign-in: session.created at t (data.created_at), optionally ended at `end`
  // (session.ended, or revoked with `endType`). `deliver` overrides the file position
  // (the default is event time order).
  function signIn(user, sid, t, where, opt = {}) {
    const { ip, country, city } = where;
    const expire = opt.expire ?? t + 7 * DAY;
    const activity = {
      object: 'session_activity', id: 'sess_activity_' + sid, device_type: where.device ?? 'desktop',
      is_mobile: where.mobile ?? false, browser_name: where.browser ?? 'Firefox', browser_version: '126.0',
      ip_address: ip, city, country,
    };
    const session = (status, updated) => ({
      object: 'session', id: sid, user_id: user, client_id: 'client_' + sid.slice(5), status, actor: null,
      last_active_organization_id: null, last_active_at: updated, expire_at: expire,
      abandon_at: t + 30 * DAY, created_at: t, updated_at: updated, latest_activity: activity,
    });
    push(opt.deliver ?? t, envelope('session.created', session('active', t), t + 150, ip));
    if (opt.end !== undefined) {
      const type = opt.endType ?? 'session.ended';
      const status = type.slice('session.'.length);
      push(opt.end, envelope(type, session(status, opt.end), opt.end + 150, ip));
    }
  }

  function userCreated(user, t, first, last) {
    push(t, envelope('user.created', {
      id: user, object: 'user', created_at: t, updated_at: t,
      email_addresses: [{ id: 'idn_' + user.slice(5), email_address: `${user.slice(5)}@example.com`,
        object: 'email_address', verification: { status: 'verified', strategy: 'email_code' }, linked_to: [] }],
      primary_email_address_id: 'idn_' + user.slice(5), primary_phone_number_id: null,
      first_name: first, last_name: last, username: null, external_id: null, image_url: null,
      last_sign_in_at: null, banned: false, locked: false,
      public_metadata: {}, private_metadata: {}, unsafe_metadata: {},
    }, t + 200));
  }

  const benign = (user, ...ips) => {
    benignUsers.add(user);
    for (const ip of ips) benignIps.add(ip);
  };
  const expect = (rule, key, sid, suppressed = 0) => expected.push(`${rule} ${key} ${sid} ${suppressed}`);

  // ---- benign: 24 office workers, twice a day from the same two places ----
  // Office A (Paris): 9 users behind one NAT IP sign in within 9 minutes: an IP
  // shared by 9 users must not be password spraying (threshold 10).
  const offices = [
    { name: 'A', ip: '198.51.100.10', country: 'FR', city: 'Paris', homeCity: 'Versailles', users: 9,
      office: [8, 0], step: 1, home: [19, 0] },
    { name: 'B', ip: '198.51.100.20', country: 'US', city: 'New York', homeCity: 'Brooklyn', users: 8,
      office: [13, 0], step: 4, home: [23, 0] },
    { name: 'C', ip: '198.51.100.30', country: 'DE', city: 'Berlin', homeCity: 'Potsdam', users: 7,
      office: [7, 0], step: 6, home: [18, 0] },
  ];
  const first = ['Ada', 'Alan', 'Grace', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia', 'Dennis',
    'Margaret', 'John', 'Hedy', 'Tim', 'Sophie', 'Niklaus', 'Karen', 'Leslie', 'Shafi', 'Butler', 'Jean',
    'Tony', 'Anita', 'Whitfield'];
  let n = 0;
  for (const o of offices) {
    for (let i = 0; i < o.users; i++) {
      n++;
      const user = `user_ben_${pad(n)}`;
      const homeIp = n % 3 === 0 ? `2001:db8:${n.toString(16)}::1` : `192.0.2.${n}`;
      benign(user, o.ip, homeIp);
      const office = { ip: o.ip, country: o.country, city: o.city, browser: 'Chrome' };
      const home = { ip: homeIp, country: o.country, city: o.homeCity, browser: 'Safari',
        device: n % 2 ? 'iPhone' : 'desktop', mobile: n % 2 === 1 };
      userCreated(user, at(0, 0, 30 + n), first[n - 1], `Office${o.name}`);
      for (let day = 0; day < 2; day++) {
        const t1 = at(day, o.office[0], o.office[1] + i * o.step + day * 2);
        signIn(user, `sess_ben_${pad(n)}_d${day}_office`, t1, office, { end: t1 + 4 * HOUR + i * 3 * MIN });
        const t2 = at(day, o.home[0], o.home[1] + i * 7 + day * 3);
        signIn(user, `sess_ben_${pad(n)}_d${day}_home`, t2, home, { end: t2 + 45 * MIN + i * MIN });
      }
    }
  }
  // a profile edit on day 1 (user.updated is stored but no rule reads it)
  push(at(1, 12, 0), envelope('user.updated', {
    id: 'user_ben_05', object: 'user', created_at: at(0, 0, 35), updated_at: at(1, 12, 0),
    email_addresses: [{ id: 'idn_ben_05', email_address: 'ben_05@example.org', object: 'email_address' }],
    primary_email_address_id: 'idn_ben_05', first_name: first[4], last_name: 'OfficeA', username: 'barbara',
    external_id: null, last_sign_in_at: at(1, 8, 6), banned: false, locked: false,
  }, at(1, 12, 0) + 200));

  // ---- benign: 5 sign-ins in 10 minutes (rapid_logins needs more than 5) ----
  benign('user_five', '192.0.2.101');
  for (let k = 1; k <= 5; k++)
    signIn('user_five', `sess_five_${pad(k)}`, at(0, 10, k - 1),
      { ip: '192.0.2.101', country: 'FR', city: 'Paris' }, { end: at(0, 10, 30 + k) });

  // ---- benign: 3 IPs within an hour (many_ips needs 4) ----
  benign('user_threeip', '192.0.2.111', '192.0.2.112', '198.51.100.111');
  [['192.0.2.111', at(0, 11, 0)], ['192.0.2.112', at(0, 11, 20)], ['198.51.100.111', at(0, 11, 40)],
    ['192.0.2.111', at(1, 11, 0)]].forEach(([ip, t], k) =>
    signIn('user_threeip', `sess_threeip_${pad(k + 1)}`, t, { ip, country: 'FR', city: 'Paris' },
      { end: t + 30 * MIN }));

  // ---- benign: a slow traveller within one country (New York -> Los Angeles in 6 h:
  // about 3,940 km at about 656 km/h; no new country, not impossible) ----
  benign('user_trav_slow', '192.0.2.121', '192.0.2.122');
  signIn('user_trav_slow', 'sess_trav_slow_01', at(0, 9, 0), { ip: '192.0.2.121', country: 'US', city: 'New York' },
    { end: at(0, 10, 0) });
  signIn('user_trav_slow', 'sess_trav_slow_02', at(0, 15, 0),
    { ip: '192.0.2.122', country: 'US', city: 'Los Angeles' }, { end: at(0, 18, 0) });
  signIn('user_trav_slow', 'sess_trav_slow_03', at(1, 16, 0),
    { ip: '192.0.2.122', country: 'US', city: 'Los Angeles' }, { end: at(1, 17, 0) });

  // ---- labeled: a traveller Paris -> London in 6 h (about 340 km: not impossible),
  // but GB is a country this user was not seen in: new_country ----
  signIn('user_trip_gb', 'sess_trip_gb_01', at(0, 8, 0), { ip: '203.0.113.40', country: 'FR', city: 'Paris' },
    { end: at(0, 9, 0) });
  signIn('user_trip_gb', 'sess_trip_gb_02', at(0, 14, 0), { ip: '203.0.113.41', country: 'GB', city: 'London' },
    { end: at(0, 16, 0) });
  expect('new_country', 'user:user_trip_gb', 'sess_trip_gb_02');

  // ---- attack: brute force, 8 sign-ins in under 5 minutes after an ordinary day:
  // the 6th matches (count 6 > 5) and raises; the 7th and 8th fold into it ----
  signIn('user_brute', 'sess_brute_home', at(0, 19, 30), { ip: '203.0.113.11', country: 'FR', city: 'Paris' },
    { end: at(0, 21, 0) });
  for (let k = 1; k <= 8; k++)
    signIn('user_brute', `sess_brute_${pad(k)}`, at(1, 13, 0, 40 * (k - 1)),
      { ip: '203.0.113.50', country: 'FR', city: 'Marseille', browser: 'curl' });
  expect('rapid_logins', 'user:user_brute', 'sess_brute_06', 2);

  // ---- attack: new country after an established one (Paris, then Berlin 16 h later) ----
  signIn('user_newc', 'sess_newc_01', at(0, 9, 10), { ip: '203.0.113.20', country: 'FR', city: 'Paris' },
    { end: at(0, 12, 0) });
  signIn('user_newc', 'sess_newc_02', at(0, 18, 10), { ip: '203.0.113.20', country: 'FR', city: 'Paris' },
    { end: at(0, 20, 0) });
  signIn('user_newc', 'sess_newc_03', at(1, 10, 0), { ip: '203.0.113.21', country: 'DE', city: 'Berlin' });
  expect('new_country', 'user:user_newc', 'sess_newc_03');

  // ---- attack: impossible travel, Paris then Tokyo 2 hours later (about 9,700 km);
  // Japan is also a new country for this user ----
  signIn('user_travel', 'sess_travel_01', at(0, 9, 20), { ip: '203.0.113.30', country: 'FR', city: 'Paris' },
    { end: at(0, 12, 0) });
  signIn('user_travel', 'sess_travel_02', at(0, 18, 20), { ip: '203.0.113.30', country: 'FR', city: 'Paris' },
    { end: at(0, 20, 0) });
  signIn('user_travel', 'sess_travel_03', at(1, 8, 0), { ip: '203.0.113.30', country: 'FR', city: 'Paris' });
  signIn('user_travel', 'sess_travel_04', at(1, 10, 0), { ip: '203.0.113.31', country: 'JP', city: 'Tokyo' });
  expect('impossible_travel', 'user:user_travel', 'sess_travel_04');
  expect('new_country', 'user:user_travel', 'sess_travel_04');

  // ---- attack: account sharing, 4 distinct IPs within the hour (the 4th raises; a 5th
  // sign-in 14 min later, from the first IP again, still sees 4 and folds into it) ----
  signIn('user_share', 'sess_share_01', at(0, 9, 30), { ip: '203.0.113.60', country: 'FR', city: 'Paris' },
    { end: at(0, 17, 30) });
  ['203.0.113.60', '203.0.113.61', '203.0.113.62', '203.0.113.63'].forEach((ip, k) =>
    signIn('user_share', `sess_share_${pad(k + 2)}`, at(1, 15, 12 * k), { ip, country: 'FR', city: 'Paris' }));
  signIn('user_share', 'sess_share_06', at(1, 15, 50), { ip: '203.0.113.60', country: 'FR', city: 'Paris' });
  expect('many_ips', 'user:user_share', 'sess_share_05', 1);

  // ---- attack: password spraying, 12 users from one IP in 5.5 minutes (the 10th
  // distinct user raises, the 11th and 12th fold into it) ----
  for (let k = 1; k <= 12; k++)
    signIn(`user_spray_${pad(k)}`, `sess_spray_${pad(k)}`, at(1, 3, 0, 30 * (k - 1)),
      { ip: '203.0.113.66', country: 'NL', city: 'Amsterdam', browser: 'python-requests' });
  expect('ip_many_users', 'ip:203.0.113.66', 'sess_spray_10', 2);

  // ---- attack: a session for a deleted user ----
  userCreated('user_gone', at(0, 7, 0), 'Gone', 'Away');
  signIn('user_gone', 'sess_gone_01', at(0, 9, 40), { ip: '203.0.113.70', country: 'FR', city: 'Paris' },
    { end: at(0, 10, 40) });
  push(at(1, 9, 0), envelope('user.deleted', { id: 'user_gone', deleted: true, object: 'user' }, at(1, 9, 0)));
  signIn('user_gone', 'sess_gone_02', at(1, 11, 0), { ip: '203.0.113.71', country: 'FR', city: 'Paris' });
  expect('session_after_delete', 'user:user_gone', 'sess_gone_02');

  // ---- attack: session flood. One day-0 session expired at 18:00 (not active on
  // day 1), then 12 sessions 30 min apart on day 1, the 3rd revoked after 10 min:
  // the 11th sees 10 active (no alert), the 12th 11 (> 10) ----
  signIn('user_flood', 'sess_flood_00', at(0, 6, 0), { ip: '203.0.113.80', country: 'FR', city: 'Paris' },
    { expire: at(0, 18, 0) });
  for (let k = 1; k <= 12; k++)
    signIn('user_flood', `sess_flood_${pad(k)}`, at(1, 0, 30 * (k - 1)),
      { ip: '203.0.113.80', country: 'FR', city: 'Paris' },
      k === 3 ? { end: at(1, 1, 10), endType: 'session.revoked' } : {});
  expect('session_flood', 'user:user_flood', 'sess_flood_12');

  // ---- attack, delivered out of order: 8 sign-ins one minute apart (20:00..20:07)
  // but the two latest (20:07, 20:06) arrive first. Each is judged at its own
  // time: those two see a count of 1, then 20:00..20:05 count up to 6 at the
  // 20:05 one (sess_ooo_06), which raises. Counting the later events would
  // raise at sess_ooo_04 instead. ----
  const oooFirst = at(1, 20, 0);
  for (let k = 1; k <= 8; k++)
    signIn('user_ooo', `sess_ooo_${pad(k)}`, at(1, 20, k - 1), { ip: '203.0.113.90', country: 'FR', city: 'Paris' },
      k >= 7 ? { deliver: oooFirst - (k === 8 ? 2 : 1) } : {});
  expect('rapid_logins', 'user:user_ooo', 'sess_ooo_06');

  events.sort((a, b) => a.deliver - b.deliver || a.seq - b.seq);
  return {
    ndjson: events.map((e) => e.line + '\n').join(''),
    expected: expected.sort().map((l) => l + '\n').join(''),
    events: events.length,
    benignUsers: [...benignUsers].sort(),
    benignIps: [...benignIps].sort(),
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out');
  const dir = i > 0 ? resolve(process.argv[i + 1] ?? '.') : dirname(fileURLToPath(import.meta.url));
  const g = generate();
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'labeled.ndjson'), g.ndjson);
  writeFileSync(join(dir, 'labeled.expected'), g.expected);
  console.log(`${join(dir, 'labeled.ndjson')}: ${g.events} events; ${join(dir, 'labeled.expected')}: ` +
    `${g.expected.split('\n').filter(Boolean).length} alerts`);
}
