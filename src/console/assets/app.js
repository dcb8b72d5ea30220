/* veille console: a hash-routed page over /api/ (README "Web console").
 * Everything the store holds is shown with textContent, never as HTML: alert
 * summaries and user fields come from webhook payloads. No inline script or
 * style (the Content-Security-Policy forbids them), no other host. */
'use strict';

const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'];
const COLORS = { critical: '#8e1b1b', high: '#d0481f', medium: '#c99a06', low: '#3b7dd8', info: '#7b8794', other: '#555' };
const SVG = 'http://www.w3.org/2000/svg';

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}
function svg(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
}
const main = () => document.getElementById('main');
function show(...nodes) { main().replaceChildren(...nodes); }

async function api(path, payload) {
  const init = { credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (payload !== undefined) {
    init.method = 'POST';
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(payload);
  }
  const r = await fetch('/api' + path, init);
  const body = await r.json().catch(() => ({ error: 'not JSON (HTTP ' + r.status + ')' }));
  if (!r.ok) throw new Error(body.error || 'HTTP ' + r.status);
  return body;
}

const enc = encodeURIComponent;
const userLink = (id) => id ? el('a', { href: '#/user/' + enc(id), class: 'mono', text: id }) : '-';
const ipLink = (ip) => ip ? el('a', { href: '#/ip/' + enc(ip), class: 'mono', text: ip }) : '-';
const sev = (s) => el('span', { class: 'sev sev-' + (SEVERITIES.includes(s) ? s : 'other'), text: s || '?' });
const card = (title, ...kids) => el('section', { class: 'card' }, el('h2', { text: title }), ...kids);
const time = (t) => t ? t.replace('T', ' ').replace(/\.\d+Z$|Z$/, 'Z') : '-';

function table(id, cols, rows, empty) {
  if (!rows.length) return el('p', { class: 'muted', id: id, text: empty || 'none' });
  const head = el('tr', {}, ...cols.map((c) => el('th', { class: c.num ? 'num' : null, text: c.title })));
  const body = rows.map((r) => el('tr', { 'data-id': r.id || null },
    ...cols.map((c) => el('td', { class: c.num ? 'num' : null }, c.cell(r)))));
  return el('table', { id: id }, el('thead', {}, head), el('tbody', {}, ...body));
}

/* The alert columns; a column whose field no alert has (state, before triage
 * exists) is left out, so adding it to the API is what makes it appear. */
const ALERT_COLUMNS = [
  { title: 'Time', cell: (a) => time(a.at) },
  { title: 'Severity', cell: (a) => sev(a.severity) },
  { title: 'Rule', cell: (a) => a.rule },
  { title: 'State', field: 'state', cell: (a) => a.state || '-' },
  { title: 'User', cell: (a) => userLink(a.user_id) },
  { title: 'IP', cell: (a) => ipLink(a.ip) },
  { title: 'Summary', cell: (a) => el('a', { href: '#/alert/' + enc(a.id), class: 'alert-link', text: a.summary || a.id }) },
];
function alertTable(id, alerts) {
  const cols = ALERT_COLUMNS.filter((c) => !c.field || alerts.some((a) => a[c.field] !== undefined));
  return table(id, cols, alerts, 'no alerts');
}

/* Alerts over time, stacked by severity, hand-drawn. */
function chart(series, bucketMs) {
  const W = 1200, H = 180, pad = 24, n = series.length;
  const totals = series.map((b) => Object.values(b.counts).reduce((x, y) => x + y, 0));
  const max = Math.max(1, ...totals);
  const bw = (W - pad) / n;
  const g = svg('svg', { viewBox: `0 0 ${W} ${H + 20}`, role: 'img', 'aria-label': 'alerts over time by severity', id: 'chart' });
  g.append(svg('line', { x1: pad, y1: H, x2: W, y2: H, stroke: '#999' }));
  g.append(svg('text', { x: 0, y: 12, 'font-size': 11, fill: '#666', text: String(max) }));
  g.append(svg('text', { x: 0, y: H, 'font-size': 11, fill: '#666', text: '0' }));
  series.forEach((b, i) => {
    let y = H;
    for (const s of [...SEVERITIES, 'other'].reverse()) {
      const c = b.counts[s] || 0;
      if (!c) continue;
      const h = (c / max) * (H - 10);
      y -= h;
      const r = svg('rect', { x: pad + i * bw + 1, y, width: Math.max(1, bw - 2), height: h, fill: COLORS[s], class: 'bar' });
      r.append(svg('title', { text: `${time(b.start)}: ${c} ${s}` }));
      g.append(r);
    }
    if (i % Math.ceil(n / 8) === 0) {
      const d = new Date(b.start_ms);
      const label = bucketMs < 86400000 ? d.toISOString().slice(5, 13).replace('T', ' ') + 'h' : d.toISOString().slice(5, 10);
      g.append(svg('text', { x: pad + i * bw, y: H + 14, 'font-size': 10, fill: '#666', text: label }));
    }
  });
  const legend = el('div', { class: 'legend' }, ...SEVERITIES.map((s) => el('span', {}, el('i', { class: 'sev-' + s }), s)));
  return el('div', { class: 'chart' }, g, legend);
}

async function overview(params) {
  const range = ['24h', '7d', '30d'].includes(params.get('range')) ? params.get('range') : '24h';
  const o = await api('/overview?range=' + range);
  const ranges = el('div', { class: 'ranges' }, ...['24h', '7d', '30d'].map((r) =>
    el('a', { href: '#/?range=' + r, class: r === range ? 'active' : null, id: 'range-' + r, text: 'last ' + r })));
  const ing = o.ingest;
  show(el('h1', { text: 'Overview' }),
    el('div', { class: 'grid' },
      el('section', { class: 'card wide' }, el('h2', { text: 'Alerts over time' }), ranges,
        el('p', {}, el('span', { class: 'big', id: 'total' }, String(o.total)), ' alerts in the last ' + range), chart(o.series, o.bucket_ms)),
      card('By severity', table('by-severity', [{ title: 'Severity', cell: (r) => sev(r.s) }, { title: 'Alerts', num: 1, cell: (r) => r.n }],
        SEVERITIES.filter((s) => o.by_severity[s]).map((s) => ({ s, n: o.by_severity[s] })))),
      card('By rule', table('by-rule', [{ title: 'Rule', cell: (r) => el('a', { href: '#/alerts?rule=' + enc(r.rule), text: r.rule }) },
        { title: 'Alerts', num: 1, cell: (r) => r.count }], o.by_rule)),
      card('By state', table('by-state', [{ title: 'State', cell: (r) => r.state }, { title: 'Alerts', num: 1, cell: (r) => r.count }], o.by_state)),
      card('Top users', table('top-users', [{ title: 'User', cell: (r) => userLink(r.user_id) }, { title: 'Alerts', num: 1, cell: (r) => r.count }], o.top_users)),
      card('Top IPs', table('top-ips', [{ title: 'IP', cell: (r) => ipLink(r.ip) }, { title: 'Alerts', num: 1, cell: (r) => r.count }], o.top_ips)),
      card('Ingest', el('dl', { class: 'kv', id: 'ingest' },
        el('dt', { text: 'events stored' }), el('dd', { text: String(ing.events_stored) }),
        el('dt', { text: 'rate' }), el('dd', { text: ing.events_per_min.toFixed(1) + ' / min since start' }),
        el('dt', { text: 'apply lag' }), el('dd', { text: ing.apply_lag_ms.toFixed(2) + ' ms per commit (mean)' }),
        el('dt', { text: 'waiting' }), el('dd', { text: String(ing.waiting) }),
        el('dt', { text: 'alerts raised' }), el('dd', { text: String(ing.alerts_raised) + ' since ' + time(ing.started) }))),
      card('Outbox', table('outbox', [{ title: 'Sink', cell: (r) => el('span', { class: 'mono', text: r.sink }) },
        { title: 'Pending', num: 1, cell: (r) => r.pending }, { title: 'Dead', num: 1, cell: (r) => r.dead },
        { title: 'Health', cell: (r) => r.failing_since ? 'failing since ' + time(r.failing_since) + ': ' + (r.last_error || '') : 'ok' }],
        o.outbox, 'no remote sink has queued an alert'))));
}

const FILTERS = ['rule', 'severity', 'state', 'user', 'ip', 'since'];
const STATES = ['open', 'acked', 'resolved', 'fp'];
const CHOICES = { severity: SEVERITIES, state: STATES };
async function alerts(params) {
  const q = new URLSearchParams();
  for (const f of FILTERS) if (params.get(f)) q.set(f, params.get(f));
  const form = el('form', { class: 'filters', id: 'filters' },
    ...FILTERS.map((f) => el('label', {}, f, CHOICES[f]
      ? el('select', { name: f }, el('option', { value: '', text: 'any' }), ...CHOICES[f].map((s) => {
        const o = el('option', { value: s, text: s }); if (params.get(f) === s) o.selected = true; return o; }))
      : el('input', { name: f, value: params.get(f) || '', placeholder: f === 'since' ? '24h' : '' }))),
    el('button', { type: 'submit', text: 'Filter' }));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) next.set(k, v);
    location.hash = '#/alerts?' + next.toString();
  });
  show(el('h1', { text: 'Alerts' }), form, el('p', { class: 'muted', text: 'Loading…' }));
  try {
    const r = await api('/alerts?' + q.toString());
    show(el('h1', { text: 'Alerts' }), form,
      el('p', { class: 'muted', id: 'alert-count', text: `${r.matched} matching, ${r.shown} shown, newest first` }),
      el('div', { class: 'card' }, alertTable('alerts', r.alerts)));
  } catch (e) {
    show(el('h1', { text: 'Alerts' }), form, el('p', { class: 'error', id: 'error', text: e.message }));
  }
}

function kv(id, pairs) {
  return el('dl', { class: 'kv', id }, ...pairs.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', {}, v === null || v === undefined || v === '' ? '-' : v)]));
}

async function alertPage(id) {
  const a = await api('/alerts/' + enc(id));
  const atLeast = a.at_least || [];
  const ev = Object.entries(a.evidence || {}).map(([k, v]) => [k, (atLeast.includes(k) ? '≥ ' : '') + JSON.stringify(v)]);
  show(el('h1', {}, sev(a.severity), ' ', el('span', { id: 'alert-rule', text: a.rule })),
    el('p', { id: 'alert-summary', text: a.summary }),
    el('div', { class: 'grid' },
      card('Alert', kv('alert-fields', [['id', a.id], ['time', time(a.at)], ['raised', time(a.raised_at)], ['key', a.key],
        ['user', userLink(a.user_id)], ['ip', ipLink(a.ip)], ['session', a.session_id], ['event', a.event_type],
        ['delivery', a.event_id], ['suppressed', String(a.suppressed ?? 0)], ['tags', (a.tags || []).join(', ')],
        ...(a.state !== undefined ? [['state', el('span', { id: 'alert-state', text: a.state })]] : [])])),
      card('Evidence', kv('alert-evidence', ev)),
      triageCard(a)));
}

/* The triage actions: POST /api/alerts/ID/ACTION, then the page again from the
 * API, so what it shows is what the store holds. */
const ACTIONS = [['ack', 'Acknowledge'], ['resolve', 'Resolve'], ['false-positive', 'False positive']];
function triageCard(a) {
  const t = a.triage;
  const note = el('textarea', { name: 'note', id: 'triage-note', rows: 3, maxlength: 511,
    placeholder: 'note (required for a false positive)' });
  const allow = el('input', { type: 'checkbox', name: 'allow', id: 'triage-allow' });
  const status = el('p', { class: 'muted', id: 'triage-status' });
  const buttons = ACTIONS.map(([action, label]) => {
    const b = el('button', { type: 'button', id: 'triage-' + action, text: label });
    b.addEventListener('click', async () => {
      const body = { note: note.value };
      if (action === 'false-positive') body.allow = allow.checked;
      else if (allow.checked) { status.className = 'error'; status.textContent = '"also allow this key" goes with a false positive'; return; }
      if (action === 'false-positive' && !note.value.trim()) { status.className = 'error'; status.textContent = 'a false positive needs a note: say why'; return; }
      buttons.forEach((x) => { x.disabled = true; });
      try {
        await api('/alerts/' + enc(a.id) + '/' + action, body);
        document.body.dataset.ready = '';
        await alertPage(a.id);
        document.body.dataset.ready = '1';
      } catch (e) {
        status.className = 'error';
        status.textContent = e.message;
        buttons.forEach((x) => { x.disabled = false; });
      }
    });
    return b;
  });
  return card('Triage',
    t ? kv('triage-last', [['state', t.state], ['by', t.by], ['at', time(t.at)], ['note', t.note]])
      : el('p', { class: 'muted', id: 'triage-last', text: 'nobody has decided yet: the alert is open' }),
    el('form', { class: 'triage', id: 'triage' }, note,
      el('label', {}, allow, ' also allow this key for the rule (with a false positive)'),
      el('div', { class: 'actions' }, ...buttons)),
    status);
}

function historyTable(id, rows, byIp) {
  return table(id, [{ title: 'Time', cell: (h) => time(h.at) }, { title: 'Event', cell: (h) => h.type },
    byIp ? { title: 'User', cell: (h) => userLink(h.user_id) } : { title: 'IP', cell: (h) => ipLink(h.ip) },
    { title: 'Location', cell: (h) => [h.country, h.city].filter(Boolean).join(' / ') || '-' },
    { title: 'Device', cell: (h) => [h.browser, h.device].filter(Boolean).join(' on ') || '-' }], rows, 'no history');
}

async function userPage(id) {
  const r = await api('/users/' + enc(id));
  const u = r.user || {};
  show(el('h1', {}, 'User ', el('span', { class: 'mono', id: 'user-id', text: r.user_id })),
    el('div', { class: 'grid' },
      card('Synced record', r.user ? kv('user-record', [['email', u.email], ['name', [u.first_name, u.last_name].filter(Boolean).join(' ')],
        ['username', u.username], ['created', time(u.created_at)], ['last sign-in', time(u.last_sign_in_at)],
        ['banned', String(u.banned)], ['locked', String(u.locked)], ['deleted', String(u.deleted)], ['placeholder', String(u.placeholder)]])
        : el('p', { class: 'muted', text: 'no user record stored' })),
      card('Locations', table('locations', [{ title: 'Country', cell: (p) => p.country || '-' }, { title: 'City', cell: (p) => p.city || '-' },
        { title: 'IP', cell: (p) => ipLink(p.ip) }, { title: 'Events', num: 1, cell: (p) => p.count },
        { title: 'Last seen', cell: (p) => time(p.last) }], r.locations)),
      el('section', { class: 'card wide' }, el('h2', { text: 'Alerts' }), alertTable('user-alerts', r.alerts)),
      el('section', { class: 'card wide' }, el('h2', { text: 'History (newest first)' }), historyTable('history', r.history, false))));
}

async function ipPage(ip) {
  const r = await api('/ips/' + enc(ip));
  show(el('h1', {}, 'IP ', el('span', { class: 'mono', id: 'ip-id', text: r.ip })),
    el('div', { class: 'grid' },
      card('Users seen', table('ip-users', [{ title: 'User', cell: (x) => userLink(x.user_id) }, { title: 'Events', num: 1, cell: (x) => x.count }], r.users)),
      el('section', { class: 'card wide' }, el('h2', { text: 'Alerts' }), alertTable('ip-alerts', r.alerts)),
      el('section', { class: 'card wide' }, el('h2', { text: 'History (newest first)' }), historyTable('history', r.history, true))));
}

async function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, qs] = hash.split('?');
  const params = new URLSearchParams(qs || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  document.querySelectorAll('header nav a').forEach((a) => a.classList.remove('active'));
  document.getElementById(parts[0] === 'alerts' || parts[0] === 'alert' ? 'nav-alerts' : 'nav-overview').classList.add('active');
  document.body.dataset.page = parts[0] || 'overview';
  try {
    if (!parts.length) await overview(params);
    else if (parts[0] === 'alerts') await alerts(params);
    else if (parts[0] === 'alert' && parts[1]) await alertPage(parts[1]);
    else if (parts[0] === 'user' && parts[1]) await userPage(parts[1]);
    else if (parts[0] === 'ip' && parts[1]) await ipPage(parts[1]);
    else show(el('p', { class: 'error', id: 'error', text: 'no such page' }));
  } catch (e) {
    show(el('p', { class: 'error', id: 'error', text: e.message }));
  }
  document.body.dataset.ready = '1';
}

window.addEventListener('hashchange', () => { document.body.dataset.ready = ''; route(); });
document.addEventListener('DOMContentLoaded', route);
