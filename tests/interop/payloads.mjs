// Clerk payloads the interop tests send: the event envelope and a session object,
// shaped like the reference's examples. Shared so every test speaks the same Clerk.

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
