// server.js: the baseline veille's benchmark compares against: the minimal Clerk
// webhook receiver as the usual tutorial writes it (Express, raw body, svix's
// Webhook.verify, 200 or 400), with no database and so no durability at all.
// Environment: PORT (required), CLERK_WEBHOOK_SECRET or VEILLE_WEBHOOK_SECRET.
'use strict';

const express = require('express');
const { Webhook } = require('svix');

const secret = process.env.CLERK_WEBHOOK_SECRET || process.env.VEILLE_WEBHOOK_SECRET;
const port = Number.parseInt(process.env.PORT || '', 10);
if (!secret) {
  console.error('express-receiver: set CLERK_WEBHOOK_SECRET (whsec_...)');
  process.exit(2);
}
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('express-receiver: set PORT to a TCP port');
  process.exit(2);
}

const wh = new Webhook(secret);
const app = express();

app.get('/healthz', (_req, res) => {
  res.status(200).json({ status: 'ok' });
});

// The raw body is verified, never a re-serialised JSON: express.raw keeps the bytes.
app.post('/webhooks/clerk', express.raw({ type: 'application/json' }), (req, res) => {
  let evt;
  try {
    evt = wh.verify(req.body, req.headers);
  } catch (_err) {
    return res.status(400).json({ error: 'verification failed' });
  }
  // A real handler would act on evt.type here; the tutorial's stops at acknowledging.
  void evt;
  return res.status(200).json({ status: 'received' });
});

// Only the loopback interface: the benchmark never listens on anything else.
const server = app.listen(port, '127.0.0.1', () => {
  console.error(`express-receiver: listening on 127.0.0.1:${port}`);
});
server.keepAliveTimeout = 65000;

process.on('SIGTERM', () => server.close(() => process.exit(0)));
