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

/* The meta database's values are bare unsigned integers. */
int store_codec_uint_encode(msgpack_sbuffer *out, uint64_t v);
int store_codec_uint_decode(const void *data, size_t len, uint64_t *out);

#endif
