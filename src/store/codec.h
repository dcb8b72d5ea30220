/*
 * codec.h: msgpack form of the store's values (private to src/store).
 * Every value is a map with short string keys so that a record can gain fields
 * later: a decoder skips keys it does not know and reads a missing key as zero or
 * "". A known key holding the wrong msgpack type makes the record undecodable.
 * Encoders append to a caller-initialised msgpack_sbuffer; decoders copy into
 * fixed-size fields (free text cut on a UTF-8 boundary) and never keep pointers
 * into the input, which lives in LMDB memory.
 */
#ifndef VEILLE_STORE_CODEC_H
#define VEILLE_STORE_CODEC_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "event/event.h"
#include "store/store.h"

/* All return 0, or -1 on failure (out of memory while encoding, malformed input
 * while decoding). */
int store_codec_user_encode(msgpack_sbuffer *out, const event_user *u);
int store_codec_user_decode(const void *data, size_t len, event_user *out);

int store_codec_history_encode(msgpack_sbuffer *out, const store_history_entry *e);
int store_codec_history_decode(const void *data, size_t len, store_history_entry *out);

int store_codec_delivery_encode(msgpack_sbuffer *out, int64_t received_ms, event_type type);
int store_codec_delivery_decode(const void *data, size_t len, int64_t *received_ms, event_type *type);

int store_codec_alert_encode(msgpack_sbuffer *out, const store_alert *a);
int store_codec_alert_decode(const void *data, size_t len, store_alert *out);
/* alert_open values: the alert a later match is folded into, and the matches
 * folded so far (kept here, in a small record, rather than rewriting the alert
 * on every match; store_txn_alert_add moves them into the alert when it closes). */
typedef struct {
    int64_t at_ms;
    char id[STORE_ALERT_ID_MAX];
    int64_t suppressed;
    int64_t last_suppressed_at_ms;
} store_open_alert;

int store_codec_open_alert_encode(msgpack_sbuffer *out, const store_open_alert *r);
int store_codec_open_alert_decode(const void *data, size_t len, store_open_alert *out);

/* outbox_due / outbox_dead values: the delivery state of one alert for one sink
 * (the key holds sink, times and id). */
int store_codec_outbox_encode(msgpack_sbuffer *out, const store_outbox_entry *e);
int store_codec_outbox_decode(const void *data, size_t len, store_outbox_entry *e);

int store_codec_sink_state_encode(msgpack_sbuffer *out, const store_sink_state *st);
int store_codec_sink_state_decode(const void *data, size_t len, store_sink_state *out);

/* The meta database's values are bare unsigned integers. */
int store_codec_uint_encode(msgpack_sbuffer *out, uint64_t v);
int store_codec_uint_decode(const void *data, size_t len, uint64_t *out);

/* triage and allow values (triage.c, allow.c); the allow key holds rule, kind, value. */
int store_codec_triage_encode(msgpack_sbuffer *out, const store_triage *r);
int store_codec_triage_decode(const void *data, size_t len, store_triage *out);
int store_codec_allow_encode(msgpack_sbuffer *out, const store_allow_entry *e);
int store_codec_allow_decode(const void *data, size_t len, store_allow_entry *out);
#endif
