#!/usr/bin/env node
// Writes a labeled month of Clerk webhook deliveries for the catalog's evaluation
// (tests/replay/evaluate.mjs; README "Evaluation of the catalog"):
//
//   node tests/replay/gen-month.mjs --out DIR [--users N] [--seed S]
//
// DIR/month.ndjson   one Clerk envelope per line, in delivery order (`veille replay` input)
// DIR/labels.tsv     one line per sign-in or lockout: KEY CLASS USER PHASE KIND
//                    KEY is the session id (session.created) or `lock:USER:MS` (a lockout's
//                    user.updated); CLASS is benign or an attack class; PHASE is `learn`
//                    for the 7 days before the month (benign only, not scored: a deployed
//                    veille has history) or `month`; KIND is the benign user's profile.
//
// Deterministic: the same --users and --seed write the same bytes. Node only, no npm.
// Default 1,500 users (~190k events); --users 300 is the small month of the test.
//
// The IPs are real-looking addresses in networks that the IPFire location database
// (libloc-database, 2022-10-29) maps as named below, so `asn`, `ip.country` and the
// flags are what a deployment would see (check with `location lookup IP`): each
// range below lies in networks of one country (sampled with `location lookup`).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const LEARN_DAYS = 7;
const MONTH_DAYS = 30;
const BASE = Date.UTC(2024, 5, 3); // Monday: learning starts; the month starts a week later

// ---- networks ----
const ip4 = (s) => s.split('.').reduce((a, o) => a * 256 + Number(o), 0);
const str4 = (n) => [24, 16, 8, 0].map((b) => Math.floor(n / 2 ** b) % 256).join('.');
const net = (cidr, extra) => {
  const [a, len] = cidr.split('/');
  return { cidr, base: ip4(a), size: 2 ** (32 - Number(len)), ...extra };
};
// residential ISPs (home addresses rotate within one of them)
const ISPS = {
  FR: [net('82.64.0.0/14', { as: 'Free', city: 'Paris' }), net('90.12.0.0/16', { as: 'Orange', city: 'Lyon' })],
  US: [net('73.0.0.0/8', { as: 'Comcast', city: 'New York' }), net('73.0.0.0/8', { as: 'Comcast', city: 'Chicago' })],
  DE: [net('2.200.0.0/13', { as: 'Vodafone', city: 'Berlin' })],
  GB: [net('86.0.0.0/15', { as: 'Virgin Media', city: 'London' })],
};
// mobile carriers: a NAT pool shared by every subscriber, a new address per sign-in
const CARRIERS = {
  FR: net('92.184.100.0/22', { as: 'Orange mobile', city: 'Paris', pool: 96 }),
  US: net('172.56.0.0/16', { as: 'T-Mobile', city: 'New York', pool: 128 }),
  DE: net('80.187.0.0/16', { as: 'Telekom mobile', city: 'Berlin', pool: 96 }),
  GB: net('86.0.0.0/15', { as: 'Virgin Media', city: 'London', pool: 96 }),
};
// hosting networks (each in hosting_asns), by the country the database gives them
const HOSTING = {
  US: net('159.89.8.0/21', { as: 'DigitalOcean' }), // 159.89.7.0/24 is DigitalOcean's Frankfurt
  FR: net('51.68.64.0/18', { as: 'OVH' }), // the rest of 51.68/16 is partly OVH's PL, DE, GB
  DE: net('88.198.0.0/16', { as: 'Hetzner' }),
  GB: net('18.130.0.0/16', { as: 'AWS' }),
};
const TOR = net('185.220.101.0/24', { as: 'Zwiebelfreunde (Tor exits, anonymous proxy)' });
const DROP = net('1.10.16.0/20', { as: 'drop-listed' });
const JP = net('126.1.0.0/16', { as: 'SoftBank', city: 'Tokyo' });
const COUNTRIES = ['FR', 'US', 'DE', 'GB'];
const CAPITAL = { FR: 'Paris', US: 'New York', DE: 'Berlin', GB: 'London', JP: 'Tokyo' };
// flight hours between the capitals (business travel lands after them)
const FLIGHT = { 'FR-US': 8.5, 'FR-DE': 2, 'FR-GB': 1.5, 'US-DE': 9, 'US-GB': 7.5, 'DE-GB': 2, 'FR-JP': 14,
  'US-JP': 14, 'DE-JP': 13, 'GB-JP': 14 };
const flightHours = (a, b) => FLIGHT[`${a}-${b}`] ?? FLIGHT[`${b}-${a}`];

// ---- user agents (what uap-core reads) ----
const UA = {
  chromeWin: (v) => `Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${v}.0.0.0 Safari/537.36`,
  chromeMac: (v) => `Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${v}.0.0.0 Safari/537.36`,
  firefoxWin: (v) => `Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:${v}.0) Gecko/20100101 Firefox/${v}.0`,
  firefoxLinux: (v) => `Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:${v}.0) Gecko/20100101 Firefox/${v}.0`,
  safariMac: (v) => `Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/${v}.5 Safari/605.1.15`,
  edgeWin: (v) => `Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${v}.0.0.0 Safari/537.36 Edg/${v}.0.0.0`,
  iphone: (v) => `Mozilla/5.0 (iPhone; CPU iPhone OS ${v}_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/${v}.5 Mobile/15E148 Safari/604.1`,
  android: (v) => `Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${v}.0.0.0 Mobile Safari/537.36`,
};
// [ua kind, major before the update, after, Clerk's browser_name, device_type, is_mobile, family]
const DESKTOPS = [
  ['chromeWin', 124, 125, 'Chrome', 'desktop', false, 'chrome'],
  ['chromeMac', 124, 125, 'Chrome', 'desktop', false, 'chrome'],
  ['firefoxWin', 126, 127, 'Firefox', 'desktop', false, 'firefox'],
  ['firefoxLinux', 126, 127, 'Firefox', 'desktop', false, 'firefox'],
  ['safariMac', 17, 17, 'Safari', 'desktop', false, 'safari'],
  ['edgeWin', 124, 125, 'Edge', 'desktop', false, 'chrome'],
];
const MOBILES = [
  ['iphone', 17, 17, 'Safari', 'mobile', true, 'safari'],
  ['android', 124, 125, 'Chrome', 'mobile', true, 'chrome'],
];
const TOOLS = ['python-requests/2.31.0', 'curl/8.4.0', 'Go-http-client/1.1', 'okhttp/4.12.0'];

export function generate({ users: NUSERS = 1500, seed = 12 } = {}) {
  // mulberry32: small, seeded, the same on every platform
  let s = seed >>> 0;
  const rnd = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  const int = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));
  const host = (n) => str4(n.base + 1 + Math.floor(rnd() * (n.size - 2)));
  // a carrier's NAT pool: the first `pool` addresses of a fixed /24 in its network
  const poolIp = (n) => str4(n.base + 256 * 7 + 1 + Math.floor(rnd() * n.pool));

  const events = []; // { t, seq, line }
  const labels = []; // [key, class, user, phase, kind]
  let seq = 0;
  const phase = (t) => (t < BASE + LEARN_DAYS * DAY ? 'learn' : 'month');
  const push = (t, obj) => events.push({ t, seq: seq++, line: JSON.stringify(obj) });
  const envelope = (type, data, ts, ip, ua) => ({
    data, object: 'event', type, timestamp: ts, instance_id: 'ins_month',
    event_attributes: { http_request: { client_ip: ip, user_agent: ua } },
  });
  let sessions = 0;
  // where: { ip, country, city, dev: [kind, major, ...], v: major }
  function signIn(user, t, where, cls, kind, opt = {}) {
    const sid = `sess_${(sessions++).toString(36).padStart(6, '0')}`;
    const [uaKind, , , browserName, deviceType, isMobile] = where.dev;
    const ua = where.ua ?? UA[uaKind](where.v);
    // 30% of deliveries carry no latest_activity: then only the request's IP and UA
    const noActivity = opt.noActivity ?? rnd() < 0.3;
    const activity = noActivity ? null : {
      object: 'session_activity', id: 'sess_activity_' + sid.slice(5), device_type: deviceType,
      is_mobile: isMobile, browser_name: browserName, browser_version: `${where.v}.0`,
      ip_address: where.ip, city: where.city ?? '', country: where.country,
    };
    const session = (status, updated) => ({
      object: 'session', id: sid, user_id: user, client_id: 'client_' + sid.slice(5), status, actor: null,
      last_active_organization_id: null, last_active_at: updated, expire_at: t + 7 * DAY,
      abandon_at: t + 30 * DAY, created_at: t, updated_at: updated, latest_activity: activity,
    });
    push(t, envelope('session.created', session('active', t), t + 150, where.ip, ua));
    labels.push([sid, cls, user, phase(t), kind]);
    const end = t + (opt.length ?? int(20, 300) * MIN);
    push(end, envelope('session.ended', session('ended', end), end + 150, where.ip, ua));
  }
  const userRecord = (user, t, locked) => ({
    id: user, object: 'user', created_at: BASE - 30 * DAY, updated_at: t,
    email_addresses: [{ id: 'idn_' + user.slice(5), email_address: `${user.slice(5)}@example.com`,
      object: 'email_address', verification: { status: 'verified', strategy: 'email_code' }, linked_to: [] }],
    primary_email_address_id: 'idn_' + user.slice(5), primary_phone_number_id: null,
    first_name: 'User', last_name: user.slice(5), username: null, external_id: null, image_url: null,
    last_sign_in_at: null, banned: false, locked, lockout_expires_in_seconds: locked ? 1800 : null,
    public_metadata: {}, private_metadata: {}, unsafe_metadata: {},
  });
  function userCreated(user, t) {
    const rec = userRecord(user, t, false);
    rec.created_at = t;
    push(t, envelope('user.created', rec, t + 200, '', ''));
  }
  // Clerk's lockout: user.updated locked (the attacker's request), unlocked 30 min later
  function lockout(user, t, ip, ua, cls) {
    push(t, envelope('user.updated', userRecord(user, t, true), t + 100, ip, ua));
    labels.push([`lock:${user}:${t}`, cls, user, phase(t), 'lockout']);
    const back = t + 30 * MIN;
    push(back, envelope('user.updated', userRecord(user, back, false), back + 100, '', ''));
  }

  // ---- offices: one NAT IP each, shared by its staff, everyone in at 9:00 ----
  const offices = [];
  for (let i = 0; i < Math.max(4, Math.round(NUSERS / 60)); i++) {
    const country = COUNTRIES[i % 4];
    const isp = pick(ISPS[country]);
    offices.push({ ip: host(isp), country, city: isp.city });
  }

  // ---- the users ----
  const users = [];
  for (let i = 0; i < NUSERS; i++) {
    const id = `user_m${String(i).padStart(5, '0')}`;
    const country = pick(COUNTRIES);
    const isp = pick(ISPS[country]);
    const r = rnd();
    const u = {
      id, country, isp, city: isp.city, homeIp: host(isp), nextMove: BASE + int(3, 15) * DAY,
      desk: pick(DESKTOPS), mobile: rnd() < 0.6 ? pick(MOBILES) : null,
      // the browser update lands on a day of the month (Chrome 125, Firefox 127)
      updateAt: BASE + int(LEARN_DAYS + 2, LEARN_DAYS + 25) * DAY,
      office: rnd() < 0.45 ? pick(offices.filter((o) => o.city === isp.city)) ?? null : null,
      kind: r < 0.04 ? 'vpn' : r < 0.10 ? 'traveller' : r < 0.16 ? 'new' : r < 0.24 ? 'second-device' : 'ordinary',
      created: BASE - 60 * DAY,
    };
    if (u.office) u.kind = u.kind === 'ordinary' ? 'office' : u.kind;
    if (u.kind === 'vpn') {
      const h = HOSTING[country];
      u.vpnIps = Array.from({ length: 6 }, () => host(h)); // the provider's exits
      u.vpnCountry = country;
    }
    if (u.kind === 'new') u.created = BASE + int(LEARN_DAYS + 1, LEARN_DAYS + MONTH_DAYS - 5) * DAY + int(8, 20) * HOUR;
    if (u.kind === 'second-device') u.secondAt = BASE + int(LEARN_DAYS + 1, LEARN_DAYS + 25) * DAY;
    if (u.kind === 'traveller') {
      const dest = pick([...COUNTRIES.filter((c) => c !== country), 'JP']);
      const leave = BASE + int(LEARN_DAYS + 2, LEARN_DAYS + 22) * DAY + int(6, 16) * HOUR;
      const stay = int(2, 5) * DAY;
      u.trip = { dest, leave, land: leave + flightHours(country, dest) * HOUR + 2 * HOUR, back: leave + stay };
      u.trip.home = u.trip.back + flightHours(country, dest) * HOUR + 2 * HOUR;
      const n = dest === 'JP' ? JP : pick(ISPS[dest]);
      u.trip.hotel = { ip: host(n), country: dest, city: CAPITAL[dest] };
    }
    users.push(u);
  }

  const deskAt = (u, t) => ({ dev: u.desk, v: t >= u.updateAt ? u.desk[2] : u.desk[1] });
  const mobAt = (u, t) => ({ dev: u.mobile, v: t >= u.updateAt ? u.mobile[2] : u.mobile[1] });
  function homeWhere(u, t) {
    if (t >= u.nextMove) { // the ISP hands out a new address now and then
      u.homeIp = host(u.isp);
      u.nextMove = t + int(5, 15) * DAY;
    }
    if (u.kind === 'vpn') { // steady VPN user: always through the provider
      const h = HOSTING[u.vpnCountry];
      return { ip: pick(u.vpnIps), country: u.vpnCountry, city: '', ...deskAt(u, t), _h: h };
    }
    return { ip: u.homeIp, country: u.country, city: u.city, ...deskAt(u, t) };
  }
  function travelWhere(u, t) {
    const tr = u.trip;
    if (!tr || t < tr.land || t >= tr.home) return null;
    if (t < tr.back) return { ...tr.hotel, ...deskAt(u, t) };
    return null; // in the air or just back: no sign-in
  }

  // ---- benign days ----
  for (const u of users) {
    if (u.kind === 'new') userCreated(u.id, u.created);
    for (let d = 0; d < LEARN_DAYS + MONTH_DAYS; d++) {
      const day = BASE + d * DAY;
      if (day + DAY <= u.created) continue;
      const weekday = d % 7 < 5;
      const slots = [];
      if (u.office && weekday && rnd() < 0.9) slots.push(['office', day + 8 * HOUR + int(45, 70) * MIN]);
      if (rnd() < (u.office ? 0.55 : 0.8)) slots.push(['home', day + int(18, 22) * HOUR + int(0, 59) * MIN]);
      if (!u.office && rnd() < 0.55) slots.push(['home', day + int(8, 12) * HOUR + int(0, 59) * MIN]);
      if (u.mobile && rnd() < 0.7) slots.push(['mobile', day + int(7, 21) * HOUR + int(0, 59) * MIN]);
      if (u.kind === 'second-device' && day >= u.secondAt && rnd() < 0.5)
        slots.push(['second', day + int(12, 17) * HOUR + int(0, 59) * MIN]);
      for (const [where, t] of slots) {
        if (t < u.created) continue;
        const trip = travelWhere(u, t);
        if (u.trip && t >= u.trip.leave && t < u.trip.home && !trip) continue;
        let w;
        if (trip) w = trip;
        else if (where === 'office') w = { ip: u.office.ip, country: u.office.country, city: u.office.city, ...deskAt(u, t) };
        else if (where === 'mobile') {
          const c = CARRIERS[u.country];
          w = { ip: poolIp(c), country: u.country, city: u.city, ...mobAt(u, t) };
        } else if (where === 'second') { // a new laptop: another browser family on another OS
          const other = DESKTOPS.find((x) => x[6] !== u.desk[6] && x[0] !== u.desk[0]);
          w = { ...homeWhere(u, t), dev: other, v: other[1] };
        } else w = homeWhere(u, t);
        delete w._h;
        signIn(u.id, t, w, 'benign', u.kind);
      }
    }
  }

  // ---- attacks (all in the month; victims are otherwise ordinary users) ----
  const monthStart = BASE + LEARN_DAYS * DAY;
  const at = () => monthStart + int(1, MONTH_DAYS - 2) * DAY + int(0, 23) * HOUR + int(0, 59) * MIN;
  const scale = NUSERS / 1500;
  const victims = users.filter((u) => u.kind === 'ordinary' || u.kind === 'office');
  let vi = 0;
  const nextVictim = () => victims[(vi++ * 7919) % victims.length];
  const count = (n) => Math.max(5, Math.round(n * scale));
  // the three attacker models of the RBA literature (Wiefling et al.)
  for (let i = 0; i < count(40); i++) { // naive: any IP, any user agent
    const v = nextVictim();
    const c = pick(['US', 'DE', 'GB', 'FR', 'JP'].filter((x) => x !== v.country));
    const n = c === 'JP' ? JP : rnd() < 0.5 ? HOSTING[c] ?? JP : pick(ISPS[c] ?? [JP]);
    const ua = rnd() < 0.5 ? pick(TOOLS) : null;
    const dev = pick(DESKTOPS);
    const t = at();
    for (let k = 0; k < int(1, 3); k++)
      signIn(v.id, t + k * int(5, 90) * MIN, { ip: host(n), country: c, city: n.city ?? '', dev, v: dev[2], ua }, 'naive', 'attack');
  }
  for (let i = 0; i < count(40); i++) { // VPN: the victim's country, from a hosting network
    const v = nextVictim();
    const h = HOSTING[v.country];
    const dev = pick(DESKTOPS);
    const t = at();
    for (let k = 0; k < int(1, 3); k++)
      signIn(v.id, t + k * int(5, 90) * MIN, { ip: host(h), country: v.country, city: '', dev, v: dev[2] }, 'vpn', 'attack');
  }
  for (let i = 0; i < count(40); i++) { // targeted: the victim's city and ISP, the victim's browser family
    const v = nextVictim();
    // the family, not the exact device: any desktop of it, current or two versions old
    const dev = pick(DESKTOPS.filter((x) => x[6] === v.desk[6]));
    const ver = rnd() < 0.5 ? dev[2] : dev[1] - 2;
    const t = at();
    for (let k = 0; k < int(1, 2); k++)
      signIn(v.id, t + k * int(5, 90) * MIN, { ip: host(v.isp), country: v.country, city: v.city, dev, v: ver },
        'targeted', 'attack');
  }
  // credential stuffing: a few hosting IPs, 30-120 accounts an hour, the ones whose leaked password works
  for (let w = 0; w < 2; w++) {
    const c = w ? 'US' : 'DE';
    const ips = [host(HOSTING[c]), host(HOSTING[c]), host(HOSTING.FR), host(HOSTING.GB)];
    const rate = w ? 120 : 30;
    let t = at();
    const dev = DESKTOPS[0];
    for (let k = 0; k < count(w ? 90 : 45); k++) {
      const v = nextVictim();
      t += Math.round(HOUR / rate) + int(0, 20) * 1000;
      const ip = ips[k % ips.length];
      const hn = ip.startsWith('159.89') ? 'US' : ip.startsWith('88.198') ? 'DE' : ip.startsWith('51.68') ? 'FR' : 'GB';
      signIn(v.id, t, { ip, country: hn, city: '', dev, v: 121, ua: k % 3 ? null : pick(TOOLS) }, 'stuffing', 'attack',
        { noActivity: rnd() < 0.5 });
    }
  }
  // slow spraying through residential proxies: one address per attempt, a few accounts a day
  {
    let t = monthStart + DAY; // a few a day over the month
    const dev = DESKTOPS[1];
    for (let k = 0; k < count(40); k++) {
      const v = nextVictim();
      t += int(6, 30) * HOUR;
      const c = pick(COUNTRIES);
      const n = pick(ISPS[c]);
      signIn(v.id, t, { ip: host(n), country: c, city: n.city, dev, v: 124 }, 'spray', 'attack');
    }
  }
  // lockout storms: one IP fails its way through accounts until Clerk locks them
  for (let w = 0; w < 3; w++) {
    const ip = w === 2 ? host(TOR) : w === 1 ? host(DROP) : host(HOSTING.US);
    let t = at();
    for (let k = 0; k < count(20); k++) {
      const v = nextVictim();
      t += int(1, 4) * MIN;
      lockout(v.id, t, ip, pick(TOOLS), 'lockout');
    }
  }

  events.sort((a, b) => a.t - b.t || a.seq - b.seq);
  return { lines: events.map((e) => e.line), labels };
}

function main() {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : dflt;
  };
  const out = opt('--out');
  if (!out) {
    process.stderr.write('usage: gen-month.mjs --out DIR [--users N] [--seed S]\n');
    process.exit(2);
  }
  const { lines, labels } = generate({ users: Number(opt('--users', 1500)), seed: Number(opt('--seed', 12)) });
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'month.ndjson'), lines.join('\n') + '\n');
  writeFileSync(join(out, 'labels.tsv'), labels.map((l) => l.join('\t')).join('\n') + '\n');
  process.stderr.write(`gen-month: ${lines.length} events, ${labels.length} labeled sign-ins and lockouts in ${out}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) main();
