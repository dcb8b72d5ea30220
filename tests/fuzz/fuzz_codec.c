/*
 * fuzz_codec.c: libFuzzer target for the store's msgpack record decoders
 * (src/store/codec.c). Every decoder reads the same arbitrary bytes, as if a
 * corrupt or hostile data.mdb held them. Checked, besides ASan/UBSan/LSan:
 *   - the allocation bound: no single allocation made while decoding asks for
 *     more than ALLOC_FACTOR times the record's size (plus a zone chunk). A
 *     24-byte record declaring 4 G array elements must be refused, not turned
 *     into a 96 GiB request;
 *   - a refused record leaves the output zeroed ("never half a record");
 *   - a decoded record is a fixed point: encode -> decode -> encode gives the
 *     same bytes (compared encoded, so -0.0 and 0.0, both left out, agree).
 * Built and run by run.sh (target "codec").
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sanitizer/allocator_interface.h>

#include "store/codec.h"

/* msgpack-c's zone allocates in 8 KiB chunks, and an object is 24 bytes, a map
 * pair 48: a container whose declared count is bounded by the bytes left costs
 * at most ~48 bytes per input byte. */
#define ALLOC_FACTOR 64
#define ALLOC_SLACK (64 * 1024)

/* Set only around the decoder calls; the hook runs on every malloc of the process. */
static size_t alloc_limit;

static void malloc_hook(const volatile void *ptr, size_t size)
{
    (void)ptr;
    if (alloc_limit != 0 && size > alloc_limit) {
        fprintf(stderr, "fuzz_codec: one allocation of %zu bytes while decoding a record (limit %zu)\n", size,
                alloc_limit);
        abort();
    }
}

static void free_hook(const volatile void *ptr)
{
    (void)ptr;
}

static void require_zero(const void *p, size_t n, const char *what)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0) {
            fprintf(stderr, "fuzz_codec: %s refused but the output is not zeroed (byte %zu)\n", what, i);
            abort();
        }
}

/* Encoded bytes of the first and second encode must agree. */
static void require_same(const msgpack_sbuffer *a, const msgpack_sbuffer *b, const char *what)
{
    if (a->size != b->size || memcmp(a->data, b->data, a->size) != 0) {
        fprintf(stderr, "fuzz_codec: %s: encode(decode(encode(x))) differs from encode(x)\n", what);
        abort();
    }
}

/* One decoder type-erased: decode into rec, encode rec. */
typedef struct {
    const char *name;
    size_t size;
    int (*decode)(const void *data, size_t len, void *rec);
    int (*encode)(msgpack_sbuffer *out, const void *rec);
} codec;

#define CODEC(NAME, T)                                                                                     \
    static int NAME##_dec(const void *d, size_t n, void *r) { return store_codec_##NAME##_decode(d, n, r); } \
    static int NAME##_enc(msgpack_sbuffer *o, const void *r) { return store_codec_##NAME##_encode(o, r); }
CODEC(user, event_user)
CODEC(history, store_history_entry)
CODEC(alert, store_alert)
CODEC(open_alert, store_open_alert)
CODEC(outbox, store_outbox_entry)
CODEC(sink_state, store_sink_state)

typedef struct {
    int64_t received_ms;
    event_type type;
} delivery_pair;

static int delivery_dec(const void *d, size_t n, void *r)
{
    delivery_pair *p = r;
    return store_codec_delivery_decode(d, n, &p->received_ms, &p->type);
}

static int delivery_enc(msgpack_sbuffer *o, const void *r)
{
    const delivery_pair *p = r;
    return store_codec_delivery_encode(o, p->received_ms, p->type);
}

static int uint_dec(const void *d, size_t n, void *r) { return store_codec_uint_decode(d, n, r); }
static int uint_enc(msgpack_sbuffer *o, const void *r) { return store_codec_uint_encode(o, *(const uint64_t *)r); }

static const codec codecs[] = {
    { "user", sizeof(event_user), user_dec, user_enc },
    { "history", sizeof(store_history_entry), history_dec, history_enc },
    { "alert", sizeof(store_alert), alert_dec, alert_enc },
    { "open_alert", sizeof(store_open_alert), open_alert_dec, open_alert_enc },
    { "outbox", sizeof(store_outbox_entry), outbox_dec, outbox_enc },
    { "sink_state", sizeof(store_sink_state), sink_state_dec, sink_state_enc },
    /* the delivery and uint decoders do not zero on failure: not checked */
    { "delivery", 0, delivery_dec, delivery_enc },
    { "uint", 0, uint_dec, uint_enc },
};

/* Big enough for the largest record (store_alert). */
static union {
    event_user u;
    store_history_entry h;
    store_alert a;
    store_open_alert o;
    store_outbox_entry ob;
    store_sink_state s;
    delivery_pair d;
    uint64_t n;
} rec1, rec2;

static int decode_bounded(const codec *c, const void *data, size_t len, void *rec)
{
    alloc_limit = len * ALLOC_FACTOR + ALLOC_SLACK;
    int rc = c->decode(data, len, rec);
    alloc_limit = 0;
    return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (__sanitizer_install_malloc_and_free_hooks(malloc_hook, free_hook) == 0) {
        fprintf(stderr, "fuzz_codec: cannot install the malloc hook\n");
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++) {
        const codec *c = &codecs[i];
        memset(&rec1, 0xa5, sizeof rec1); /* garbage in: decoders must overwrite or zero */
        if (decode_bounded(c, data, size, &rec1) != 0) {
            if (c->size != 0)
                require_zero(&rec1, c->size, c->name);
            continue;
        }
        msgpack_sbuffer e1, e2;
        msgpack_sbuffer_init(&e1);
        msgpack_sbuffer_init(&e2);
        if (c->encode(&e1, &rec1) != 0) {
            fprintf(stderr, "fuzz_codec: %s: a decoded record does not encode\n", c->name);
            abort();
        }
        memset(&rec2, 0x5a, sizeof rec2);
        if (decode_bounded(c, e1.data, e1.size, &rec2) != 0) {
            fprintf(stderr, "fuzz_codec: %s: the encoding of a decoded record does not decode\n", c->name);
            abort();
        }
        if (c->encode(&e2, &rec2) != 0)
            abort();
        require_same(&e1, &e2, c->name);
        msgpack_sbuffer_destroy(&e1);
        msgpack_sbuffer_destroy(&e2);
    }
    return 0;
}
