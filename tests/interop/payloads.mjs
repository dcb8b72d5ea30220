// Clerk payloads the interop tests send: the event envelope and a session object,
// shaped like the reference's examples. Shared so every test speaks the same Clerk.
// Also the one way tests wait for a `veille serve` they spawned to listen.

// The rule the alert and sink tests raise alerts with: the 6th sign-in of a user
// within 10 minutes is a high alert, later ones fold into it for 30 minutes.
export const RAPID = `# brute force: more than 5 sign-ins for one user within 10 minutes
rule rapid {
  severity high
  on       session.created
  when     count(session.created, 10m) > 5
  suppress 30m
  tags     "t"
}
`;

// POST body to base's Clerk route signed by the official svix library as Svix signs
// (timestamp now); resolves with the response.
export async function postSigned(Webhook, secret, base, id, body, timeoutMs = 5000) {
  const when = new Date();
  const headers = { 'content-type': 'application/json', 'svix-id': id,
    'svix-timestamp': String(Math.floor(when.getTime() / 1000)),
    'svix-signature': new Webhook(secret).sign(id, when, body) };
  return fetch(base + '/webhooks/clerk', { method: 'POST', headers, body, signal: AbortSignal.timeout(timeoutMs) });
}

export function envelope(type, data, ts = Date.now()) {
  return JSON.stringify({ data, object: 'event', type, timestamp: ts, instance_id: 'ins_interop',
    event_attributes: { http_request: { client_ip: '203.0.113.9', user_agent: 'Mozilla/5.0 (interop)' } } });
}

export function session(id, userId, at, ip = '198.51.100.7', country = 'FR', city = 'Paris') {
  return { object: 'session', id, user_id: userId, client_id: 'client_interop', status: 'active', actor: null,
    last_active_at: at, expire_at: at + 86400000, abandon_at: at + 30 * 86400000, created_at: at, updated_at: at,
    latest_activity: { object: 'session_activity', id: 'sess_activity_' + id, device_type: 'desktop',
      is_mobile: false, browser_name: 'Chrome', browser_version: '128.0.0.0', ip_address: ip, city, country } };
}

// Resolves with s once s.proc (a spawned `veille serve --listen 127.0.0.1:0`)
// logs its port, setting s.base; rejects with its log if it exits or is silent
// for 10 s. s.log collects stderr.
export function untilListening(s) {
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('veille did not start:\n' + s.log)), 10000);
    s.proc.stderr.on('data', (d) => {
      s.log += d;
      const m = /msg=listening addr=\S+ port=(\d+)/.exec(s.log);
      if (m && s.base === null) { clearTimeout(timer); s.base = `http://127.0.0.1:${m[1]}`; ok(s); }
    });
    s.proc.once('exit', (code) => { clearTimeout(timer); fail(new Error(`veille exited with ${code}:\n${s.log}`)); });
  });
}

// Resolves once every delivery `veille serve` at base has acknowledged is applied
// to the store (its rules run, its alerts raised): "accepted" means durable in the
// write-ahead log, and the apply follows within milliseconds. A delivery answered
// 2xx is already counted in the log position, so a backlog of 0 covers it.
export async function untilApplied(base, timeoutMs = 10000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const text = await (await fetch(base + '/metrics')).text();
    if (/^veille_backlog_records 0$/m.test(text)) return;
    if (Date.now() > end) throw new Error('the backlog was not applied within ' + timeoutMs + ' ms');
    await new Promise((r) => setTimeout(r, 5));
  }
}
