// server.js: the course's own Clerk webhook receiver, the durable peer in veille's
// benchmark: Express, the raw body verified with svix's Webhook.verify, then one
// PostgreSQL transaction per delivery (default durable settings: synchronous_commit
// on, fsync on), and 200 only after its COMMIT.
//   - dedupe on svix-id: a delivery id already stored answers "duplicate", nothing else written;
//   - user.created / user.updated: upsert the user, the newest updated_at wins;
//   - user.deleted: the user's row is marked deleted (newest wins too);
//   - session.*: one row per session event.
// Environment: PORT (required), CLERK_WEBHOOK_SECRET or VEILLE_WEBHOOK_SECRET, and
// the pg client's usual PGHOST / PGPORT / PGUSER / PGDATABASE.
'use strict';

const express = require('express');
const { Webhook } = require('svix');
const { Pool } = require('pg');

const secret = process.env.CLERK_WEBHOOK_SECRET || process.env.VEILLE_WEBHOOK_SECRET;
const port = Number.parseInt(process.env.PORT || '', 10);
if (!secret) {
  console.error('pg-receiver: set CLERK_WEBHOOK_SECRET (whsec_...)');
  process.exit(2);
}
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('pg-receiver: set PORT to a TCP port');
  process.exit(2);
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS webhook_deliveries (
  svix_id     text PRIMARY KEY,
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS users (
  id         text PRIMARY KEY,
  updated_at bigint NOT NULL,
  deleted    boolean NOT NULL DEFAULT false,
  data       jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS session_events (
  id         bigserial PRIMARY KEY,
  svix_id    text NOT NULL,
  type       text NOT NULL,
  session_id text NOT NULL,
  user_id    text NOT NULL,
  at         bigint NOT NULL,
  ip         text,
  data       jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS session_events_user_at ON session_events (user_id, at);
`;

// The pool as the tutorial leaves it: pg's defaults (10 clients).
const pool = new Pool();
const wh = new Webhook(secret);
const app = express();

app.get('/healthz', async (_req, res) => {
  try {
    await pool.query('SELECT 1');
    res.status(200).json({ status: 'ok' });
  } catch (err) {
    res.status(503).json({ status: 'unavailable', reason: err.message });
  }
});

const UPSERT_USER = `
INSERT INTO users (id, updated_at, deleted, data) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET updated_at = EXCLUDED.updated_at, deleted = EXCLUDED.deleted, data = EXCLUDED.data
WHERE users.updated_at < EXCLUDED.updated_at`;

async function apply(client, id, evt) {
  const d = evt.data || {};
  if (evt.type === 'user.created' || evt.type === 'user.updated') {
    await client.query(UPSERT_USER, [d.id, d.updated_at ?? evt.timestamp, false, d]);
  } else if (evt.type === 'user.deleted') {
    await client.query(UPSERT_USER, [d.id, evt.timestamp, true, d]);
  } else if (evt.type.startsWith('session.')) {
    const ip = d.latest_activity?.ip_address ?? evt.event_attributes?.http_request?.client_ip ?? null;
    await client.query(
      'INSERT INTO session_events (svix_id, type, session_id, user_id, at, ip, data) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [id, evt.type, d.id, d.user_id, d.updated_at ?? evt.timestamp, ip, d]);
  }
}

app.post('/webhooks/clerk', express.raw({ type: 'application/json' }), async (req, res) => {
  let evt;
  try {
    evt = wh.verify(req.body, req.headers);
  } catch (_err) {
    return res.status(400).json({ error: 'verification failed' });
  }
  const id = req.headers['svix-id'];
  let client;
  try {
    client = await pool.connect();
    await client.query('BEGIN');
    const seen = await client.query(
      'INSERT INTO webhook_deliveries (svix_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING svix_id', [id]);
    if (seen.rowCount === 0) {
      await client.query('ROLLBACK');
      return res.status(200).json({ status: 'duplicate' });
    }
    await apply(client, id, evt);
    await client.query('COMMIT');
    return res.status(200).json({ status: 'stored' });
  } catch (err) {
    if (client) await client.query('ROLLBACK').catch(() => {});
    console.error(`pg-receiver: ${id}: ${err.message}`);
    return res.status(503).set('Retry-After', '5').json({ error: 'storage unavailable' });
  } finally {
    if (client) client.release();
  }
});

pool.query(SCHEMA).then(() => {
  // Only the loopback interface: the benchmark never listens on anything else.
  const server = app.listen(port, '127.0.0.1', () => {
    console.error(`pg-receiver: listening on 127.0.0.1:${port}`);
  });
  server.keepAliveTimeout = 65000;
  process.on('SIGTERM', () => server.close(() => pool.end().then(() => process.exit(0))));
}, (err) => {
  console.error(`pg-receiver: cannot create the schema: ${err.message}`);
  process.exit(3);
});
