/*
 * codec.c: msgpack encoding of user records, history entries and delivery ids.
 * One table per record type drives both directions, so a field added to a
 * record is added in one place and old records simply read it as zero.
 */
#include "store/codec.h"

#include <stdbool.h>
#include <string.h>

#include "util/util.h"

typedef enum { F_STR, F_I64, F_BOOL, F_TYPE, F_F64 } field_kind;

typedef struct {
    const char *key;
    field_kind kind;
    size_t off;
    size_t size; /* F_STR: capacity of the char array */
} field;

#define STR(k, T, m) { k, F_STR, offsetof(T, m), sizeof(((T *)0)->m) }
#define I64(k, T, m) { k, F_I64, offsetof(T, m), sizeof(int64_t) }
#define BOOL(k, T, m) { k, F_BOOL, offsetof(T, m), sizeof(bool) }
#define TYPE(k, T, m) { k, F_TYPE, offsetof(T, m), sizeof(event_type) }
#define F64(k, T, m) { k, F_F64, offsetof(T, m), sizeof(double) }

/* Keys are stored on disk: never rename one, only add. */
static const field user_fields[] = {
    STR("id", event_user, id),
    STR("em", event_user, email),
    STR("fn", event_user, first_name),
    STR("ln", event_user, last_name),
    STR("un", event_user, username),
    STR("xid", event_user, external_id),
    I64("ca", event_user, created_at),
    I64("ua", event_user, updated_at),
    I64("ls", event_user, last_sign_in_at),
    BOOL("b", event_user, banned),
    BOOL("l", event_user, locked),
    BOOL("d", event_user, deleted),
    I64("da", event_user, deleted_at),
    BOOL("p", event_user, placeholder),
    STR("iid", event_user, instance_id),
    I64("lx", event_user, lockout_expires_in_s),
    BOOL("wb", event_user, was_banned),
    BOOL("wl", event_user, was_locked),
};

static const field history_fields[] = {
    TYPE("t", store_history_entry, type),
    I64("at", store_history_entry, at_ms),
    STR("did", store_history_entry, delivery_id),
    STR("uid", store_history_entry, user_id),
    STR("sid", store_history_entry, session_id),
    STR("cid", store_history_entry, client_id),
    STR("ip", store_history_entry, ip),
    STR("co", store_history_entry, country),
    STR("ci", store_history_entry, city),
    STR("br", store_history_entry, browser),
    STR("dv", store_history_entry, device),
    BOOL("m", store_history_entry, is_mobile),
    STR("ua", store_history_entry, user_agent),
    I64("ex", store_history_entry, expire_at),
    STR("iid", store_history_entry, instance_id),
};

/* A decoded delivery waiting in the write-ahead log (store_event_record). The
 * decoder's IP-drop notes are not kept: the server counted them when it
 * acknowledged the delivery. */
#define EV(k, kind, m) { k, kind, offsetof(store_event_record, m), sizeof(((store_event_record *)0)->m) }
static const field event_record_fields[] = {
    EV("rcv", F_I64, received_ms),
    EV("t", F_TYPE, ev.type),
    EV("did", F_STR, ev.delivery_id),
    EV("ts", F_I64, ev.timestamp_ms),
    EV("at", F_I64, ev.at_ms),
    EV("iid", F_STR, ev.instance_id),
    EV("ua", F_STR, ev.user_agent),
    EV("cip", F_STR, ev.client_ip),
    EV("hu", F_BOOL, ev.has_user),
    EV("u.id", F_STR, ev.user.id),
    EV("u.em", F_STR, ev.user.email),
    EV("u.fn", F_STR, ev.user.first_name),
    EV("u.ln", F_STR, ev.user.last_name),
    EV("u.un", F_STR, ev.user.username),
    EV("u.xid", F_STR, ev.user.external_id),
    EV("u.ca", F_I64, ev.user.created_at),
    EV("u.ua", F_I64, ev.user.updated_at),
    EV("u.ls", F_I64, ev.user.last_sign_in_at),
    EV("u.b", F_BOOL, ev.user.banned),
    EV("u.l", F_BOOL, ev.user.locked),
    EV("u.lx", F_I64, ev.user.lockout_expires_in_s),
    EV("u.d", F_BOOL, ev.user.deleted),
    EV("u.da", F_I64, ev.user.deleted_at),
    EV("u.p", F_BOOL, ev.user.placeholder),
    EV("u.iid", F_STR, ev.user.instance_id),
    EV("s.id", F_STR, ev.session.session_id),
    EV("s.uid", F_STR, ev.session.user_id),
    EV("s.cid", F_STR, ev.session.client_id),
    EV("s.st", F_STR, ev.session.status),
    EV("s.ca", F_I64, ev.session.created_at),
    EV("s.ua", F_I64, ev.session.updated_at),
    EV("s.ex", F_I64, ev.session.expire_at),
    EV("s.ip", F_STR, ev.session.ip),
    EV("s.co", F_STR, ev.session.country),
    EV("s.ci", F_STR, ev.session.city),
    EV("s.br", F_STR, ev.session.browser),
    EV("s.dv", F_STR, ev.session.device),
    EV("s.m", F_BOOL, ev.session.is_mobile),
};

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

static int pack_key(msgpack_packer *pk, const char *k)
{
    return msgpack_pack_str_with_body(pk, k, strlen(k));
}

/* The string field's length, bounded by its array so a record whose terminator
 * went missing cannot make us read past it. */
static size_t field_strlen(const char *p, size_t cap)
{
    const char *nul = memchr(p, '\0', cap);
    return nul != NULL ? (size_t)(nul - p) : cap;
}

/* Zero values are left out: they read back as zero anyway and most records are
 * sparse (a placeholder user, a session without activity). */
static bool field_is_zero(const field *f, const unsigned char *base)
{
    const void *p = base + f->off;
    switch (f->kind) {
    case F_STR: return ((const char *)p)[0] == '\0';
    case F_I64: return *(const int64_t *)p == 0;
    case F_BOOL: return !*(const bool *)p;
    case F_TYPE: return *(const event_type *)p == EVENT_UNKNOWN;
    case F_F64: return *(const double *)p == 0.0;
    }
    return true;
}

static int encode_field_values(msgpack_packer *pk, const field *fs, size_t n, const void *rec);

/* Packs a map of the non-zero fields plus `extra` entries the caller packs
 * next with pk. */
static int encode_fields_into(msgpack_packer *pk, const field *fs, size_t n, const void *rec, size_t extra)
{
    const unsigned char *base = rec;
    size_t present = extra;
    for (size_t i = 0; i < n; i++)
        if (!field_is_zero(&fs[i], base))
            present++;
    if (msgpack_pack_map(pk, present) != 0)
        return -1;
    return encode_field_values(pk, fs, n, rec);
}

static int encode_fields(msgpack_sbuffer *out, const field *fs, size_t n, const void *rec)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    return encode_fields_into(&pk, fs, n, rec, 0);
}

static int encode_field_values(msgpack_packer *pkp, const field *fs, size_t n, const void *rec)
{
    const unsigned char *base = rec;
    msgpack_packer pk = *pkp;
    for (size_t i = 0; i < n; i++) {
        const field *f = &fs[i];
        const void *p = base + f->off;
        if (field_is_zero(f, base))
            continue;
        if (pack_key(&pk, f->key) != 0)
            return -1;
        int rc = 0;
        switch (f->kind) {
        case F_STR: rc = msgpack_pack_str_with_body(&pk, p, field_strlen(p, f->size)); break;
        case F_I64: rc = msgpack_pack_int64(&pk, *(const int64_t *)p); break;
        case F_BOOL: rc = *(const bool *)p ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk); break;
        case F_F64: rc = msgpack_pack_double(&pk, *(const double *)p); break;
        case F_TYPE: {
            /* by name, so reordering event.h's enum cannot reinterpret old records */
            const char *name = event_type_name(*(const event_type *)p);
            rc = msgpack_pack_str_with_body(&pk, name, strlen(name));
            break;
        }
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int obj_to_i64(const msgpack_object *o, int64_t *out)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return -1;
        *out = (int64_t)o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return 0;
    }
    return -1;
}

static int decode_field(const field *f, const msgpack_object *v, unsigned char *base)
{
    void *p = base + f->off;
    switch (f->kind) {
    case F_STR:
        if (v->type != MSGPACK_OBJECT_STR)
            return -1;
        /* an embedded NUL would silently shorten the string; it was never written */
        if (memchr(v->via.str.ptr, '\0', v->via.str.size) != NULL)
            return -1;
        util_copy_utf8(p, f->size, v->via.str.ptr, v->via.str.size);
        return 0;
    case F_I64:
        return obj_to_i64(v, p);
    case F_F64:
        if (v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64) {
            *(double *)p = v->via.f64;
            return 0;
        }
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            *(double *)p = (double)v->via.u64;
            return 0;
        }
        if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            *(double *)p = (double)v->via.i64;
            return 0;
        }
        return -1;
    case F_BOOL:
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return -1;
        *(bool *)p = v->via.boolean;
        return 0;
    case F_TYPE: {
        if (v->type != MSGPACK_OBJECT_STR || v->via.str.size >= 64)
            return -1;
        char name[64];
        memcpy(name, v->via.str.ptr, v->via.str.size);
        name[v->via.str.size] = '\0';
        /* a type written by a newer veille reads as unknown, not as an error */
        *(event_type *)p = event_type_from_name(name);
        return 0;
    }
    }
    return -1;
}

/* Unpack exactly one map filling the whole buffer and hand it to fn. */
typedef int (*map_fn)(const msgpack_object_map *m, void *ctx);

static int mp_check_bounds(const void *data, size_t len);

static int decode_map(const void *data, size_t len, map_fn fn, void *ctx)
{
    if (data == NULL || len == 0 || mp_check_bounds(data, len) < 0)
        return -1;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rc = -1;
    if (msgpack_unpack_next(&u, data, len, &off) != MSGPACK_UNPACK_SUCCESS)
        goto done;
    if (off != len || u.data.type != MSGPACK_OBJECT_MAP)
        goto done;
    rc = fn(&u.data.via.map, ctx);
done:
    msgpack_unpacked_destroy(&u);
    return rc;
}

typedef struct {
    const field *fs;
    size_t n;
    unsigned char *base;
} fields_ctx;

static int fields_map(const msgpack_object_map *m, void *vctx)
{
    fields_ctx *c = vctx;
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            return -1;
        for (size_t j = 0; j < c->n; j++) {
            const char *name = c->fs[j].key;
            if (strlen(name) == k->via.str.size && memcmp(name, k->via.str.ptr, k->via.str.size) == 0) {
                if (decode_field(&c->fs[j], &m->ptr[i].val, c->base) < 0)
                    return -1;
                break;
            }
        }
    }
    return 0;
}

/* ---- a flat reader for the hot path ----
 * The rules engine decodes thousands of history records a second. msgpack-c's
 * unpacker allocates a zone per record; flat records need none, so they are
 * read in place: each value becomes a msgpack_object whose strings point into
 * the input, and decode_field() applies the same rules as for the unpacker. */

typedef struct {
    const unsigned char *p, *end;
} mp_reader;

static int mp_take(mp_reader *r, size_t n, const unsigned char **out)
{
    if ((size_t)(r->end - r->p) < n)
        return -1;
    *out = r->p;
    r->p += n;
    return 0;
}

static uint64_t mp_be(const unsigned char *b, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | b[i];
    return v;
}

/* A big-endian unsigned of n bytes. */
static int mp_uint(mp_reader *r, size_t n, uint64_t *v)
{
    const unsigned char *b;
    if (mp_take(r, n, &b) < 0)
        return -1;
    *v = mp_be(b, n);
    return 0;
}

/* The next value into *o. Containers are skipped whole (depth-bounded) and
 * reported as an empty array/map: no record field ever holds one. */
static int mp_next(mp_reader *r, msgpack_object *o, int depth)
{
    const unsigned char *b;
    uint64_t n = 0;
    if (depth > 16 || mp_take(r, 1, &b) < 0)
        return -1;
    unsigned c = b[0];
    memset(o, 0, sizeof *o);
    if (c <= 0x7f) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = c;
        return 0;
    }
    if (c >= 0xe0) {
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = (int8_t)c;
        return 0;
    }
    if ((c & 0xe0) == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb) {
        if ((c & 0xe0) == 0xa0)
            n = c & 0x1f;
        else if (mp_uint(r, (size_t)1 << (c - 0xd9), &n) < 0)
            return -1;
        if (n > (uint64_t)(r->end - r->p) || mp_take(r, (size_t)n, &b) < 0)
            return -1;
        o->type = MSGPACK_OBJECT_STR;
        o->via.str.ptr = (const char *)b;
        o->via.str.size = (uint32_t)n;
        return 0;
    }
    bool is_map = false;
    switch (c) {
    case 0xc0: o->type = MSGPACK_OBJECT_NIL; return 0;
    case 0xc2:
    case 0xc3: o->type = MSGPACK_OBJECT_BOOLEAN; o->via.boolean = c == 0xc3; return 0;
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        if (mp_uint(r, (size_t)1 << (c - 0xcc), &n) < 0)
            return -1;
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = n;
        return 0;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        size_t w = (size_t)1 << (c - 0xd0);
        if (mp_uint(r, w, &n) < 0)
            return -1;
        int64_t v = w == 8 ? (int64_t)n : (int64_t)(n ^ (1ULL << (8 * w - 1))) - (int64_t)(1ULL << (8 * w - 1));
        o->type = v < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER : MSGPACK_OBJECT_POSITIVE_INTEGER;
        if (v < 0)
            o->via.i64 = v;
        else
            o->via.u64 = (uint64_t)v;
        return 0;
    }
    case 0xca: {
        if (mp_uint(r, 4, &n) < 0)
            return -1;
        uint32_t u = (uint32_t)n;
        float f;
        memcpy(&f, &u, sizeof f);
        o->type = MSGPACK_OBJECT_FLOAT32;
        o->via.f64 = f;
        return 0;
    }
    case 0xcb: {
        if (mp_uint(r, 8, &n) < 0)
            return -1;
        double d;
        memcpy(&d, &n, sizeof d);
        o->type = MSGPACK_OBJECT_FLOAT64;
        o->via.f64 = d;
        return 0;
    }
    case 0xc4: case 0xc5: case 0xc6: /* bin: skipped, never a field */
        if (mp_uint(r, (size_t)1 << (c - 0xc4), &n) < 0 || n > (uint64_t)(r->end - r->p))
            return -1;
        r->p += n;
        o->type = MSGPACK_OBJECT_BIN;
        return 0;
    case 0xc7: case 0xc8: case 0xc9: /* ext */
        if (mp_uint(r, (size_t)1 << (c - 0xc7), &n) < 0 || n + 1 > (uint64_t)(r->end - r->p))
            return -1;
        r->p += n + 1;
        o->type = MSGPACK_OBJECT_EXT;
        return 0;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: /* fixext */
        n = ((uint64_t)1 << (c - 0xd4)) + 1;
        if (n > (uint64_t)(r->end - r->p))
            return -1;
        r->p += n;
        o->type = MSGPACK_OBJECT_EXT;
        return 0;
    case 0xdc: case 0xdd:
        if (mp_uint(r, c == 0xdc ? 2 : 4, &n) < 0)
            return -1;
        break;
    case 0xde: case 0xdf:
        if (mp_uint(r, c == 0xde ? 2 : 4, &n) < 0)
            return -1;
        is_map = true;
        break;
    default:
        if ((c & 0xf0) == 0x80) {
            n = c & 0x0f;
            is_map = true;
        } else if ((c & 0xf0) == 0x90) {
            n = c & 0x0f;
        } else {
            return -1; /* 0xc1: never used */
        }
    }
    /* every element takes at least one byte: a huge count is a lie */
    if (n > (uint64_t)(r->end - r->p))
        return -1;
    msgpack_object skip;
    for (uint64_t i = 0; i < n * (is_map ? 2 : 1); i++)
        if (mp_next(r, &skip, depth + 1) < 0)
            return -1;
    o->type = is_map ? MSGPACK_OBJECT_MAP : MSGPACK_OBJECT_ARRAY;
    return 0;
}

/*
 * The trap: msgpack_unpack_next allocates each array or map for its declared
 * count before reading an element, so a 5-byte "array of 4 G elements" asks the
 * zone for ~100 GiB. Walk the value first with the flat reader, which refuses a
 * count larger than the bytes left (every element takes one byte at least) and
 * anything truncated or nested deeper than 16: the unpacker then only sees counts
 * that are really there, so it allocates at most ~50 bytes per record byte.
 */
static int mp_check_bounds(const void *data, size_t len)
{
    mp_reader r = { data, (const unsigned char *)data + len };
    msgpack_object o;
    if (mp_next(&r, &o, 0) < 0 || r.p != r.end)
        return -1;
    return 0;
}

static int read_fields(mp_reader *r, const field *fs, size_t n, unsigned char *base)
{
    const unsigned char *b;
    uint64_t count;
    if (mp_take(r, 1, &b) < 0)
        return -1;
    if ((b[0] & 0xf0) == 0x80)
        count = b[0] & 0x0f;
    else if (b[0] == 0xde || b[0] == 0xdf) {
        if (mp_uint(r, b[0] == 0xde ? 2 : 4, &count) < 0)
            return -1;
    } else {
        return -1; /* not a map */
    }
    for (uint64_t i = 0; i < count; i++) {
        msgpack_object k, v;
        if (mp_next(r, &k, 0) < 0 || k.type != MSGPACK_OBJECT_STR || mp_next(r, &v, 0) < 0)
            return -1;
        for (size_t j = 0; j < n; j++) {
            const char *name = fs[j].key;
            if (strlen(name) == k.via.str.size && memcmp(name, k.via.str.ptr, k.via.str.size) == 0) {
                if (decode_field(&fs[j], &v, base) < 0)
                    return -1;
                break;
            }
        }
    }
    return 0;
}

static int decode_fields(const void *data, size_t len, const field *fs, size_t n, void *rec, size_t recsize)
{
    memset(rec, 0, recsize);
    mp_reader r = { data, (const unsigned char *)data + len };
    if (data == NULL || len == 0 || read_fields(&r, fs, n, rec) < 0 || r.p != r.end) {
        /* never hand back half a record */
        memset(rec, 0, recsize);
        return -1;
    }
    return 0;
}

/* msgpack-c writes into a caller's fixed buffer: past its end the packer fails. */
typedef struct {
    unsigned char *p;
    size_t len, cap;
} fixed_buffer;

static int fixed_write(void *data, const char *buf, size_t len)
{
    fixed_buffer *f = data;
    if (len > f->cap - f->len)
        return -1;
    memcpy(f->p + f->len, buf, len);
    f->len += len;
    return 0;
}

int store_event_record_encode(const store_event_record *r, void *buf, size_t cap, size_t *len)
{
    fixed_buffer f = {buf, 0, cap};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &f, fixed_write);
    *len = 0;
    if (encode_fields_into(&pk, event_record_fields, NFIELDS(event_record_fields), r, 0) < 0)
        return -1;
    *len = f.len;
    return 0;
}

int store_event_record_decode(const void *data, size_t len, store_event_record *out)
{
    if (decode_fields(data, len, event_record_fields, NFIELDS(event_record_fields), out, sizeof *out) < 0)
        return -1;
    /* an event veille stores has a type and an id: anything else is not a record of ours */
    if (out->ev.type == EVENT_UNKNOWN || out->ev.delivery_id[0] == '\0') {
        memset(out, 0, sizeof *out);
        return -1;
    }
    return 0;
}

int store_codec_user_encode(msgpack_sbuffer *out, const event_user *u)
{
    return encode_fields(out, user_fields, NFIELDS(user_fields), u);
}

int store_codec_user_decode(const void *data, size_t len, event_user *out)
{
    return decode_fields(data, len, user_fields, NFIELDS(user_fields), out, sizeof *out);
}

int store_codec_history_encode(msgpack_sbuffer *out, const store_history_entry *e)
{
    return encode_fields(out, history_fields, NFIELDS(history_fields), e);
}

int store_codec_history_decode(const void *data, size_t len, store_history_entry *out)
{
    return decode_fields(data, len, history_fields, NFIELDS(history_fields), out, sizeof *out);
}

typedef struct {
    int64_t received_ms;
    event_type type;
} delivery_rec;

static const field delivery_fields[] = {
    I64("r", delivery_rec, received_ms),
    TYPE("t", delivery_rec, type),
};

int store_codec_delivery_encode(msgpack_sbuffer *out, int64_t received_ms, event_type type)
{
    delivery_rec d = { received_ms, type };
    return encode_fields(out, delivery_fields, NFIELDS(delivery_fields), &d);
}

int store_codec_delivery_decode(const void *data, size_t len, int64_t *received_ms, event_type *type)
{
    delivery_rec d;
    if (decode_fields(data, len, delivery_fields, NFIELDS(delivery_fields), &d, sizeof d) < 0)
        return -1;
    if (received_ms != NULL)
        *received_ms = d.received_ms;
    if (type != NULL)
        *type = d.type;
    return 0;
}

int store_codec_uint_encode(msgpack_sbuffer *out, uint64_t v)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    return msgpack_pack_uint64(&pk, v) == 0 ? 0 : -1;
}

int store_codec_uint_decode(const void *data, size_t len, uint64_t *out)
{
    if (data == NULL || len == 0 || mp_check_bounds(data, len) < 0)
        return -1;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rc = -1;
    if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len &&
        u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *out = u.data.via.u64;
        rc = 0;
    }
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* ---- alerts: scalar fields by table, evidence and tags as arrays ---- */

static const field alert_fields[] = {
    STR("id", store_alert, id),
    STR("r", store_alert, rule),
    STR("sv", store_alert, severity),
    STR("k", store_alert, key),
    STR("uid", store_alert, user_id),
    STR("ip", store_alert, ip),
    STR("sid", store_alert, session_id),
    STR("eid", store_alert, event_id),
    TYPE("t", store_alert, event_type),
    I64("at", store_alert, at_ms),
    I64("ra", store_alert, raised_ms),
    STR("s", store_alert, summary),
    I64("sup", store_alert, suppressed),
    I64("lsa", store_alert, last_suppressed_at_ms),
    STR("iid", store_alert, instance_id),
    STR("cc", store_alert, country),
    STR("city", store_alert, city),
    STR("ua", store_alert, user_agent),
    STR("un", store_alert, user_name),
    STR("inc", store_alert, incident_id),
    I64("ust", store_alert, users_total),
    BOOL("iu", store_alert, incident_update),
};

/* store_evidence with its enum widened to int64, so the table can carry it. */
typedef struct {
    char name[sizeof(((store_evidence *)0)->name)];
    int64_t kind;
    double num;
    bool b;
    char str[sizeof(((store_evidence *)0)->str)];
    bool at_least;
} evidence_wire;

static const field evidence_fields[] = {
    STR("n", evidence_wire, name),
    I64("k", evidence_wire, kind),
    F64("v", evidence_wire, num),
    BOOL("b", evidence_wire, b),
    STR("s", evidence_wire, str),
    BOOL("al", evidence_wire, at_least),
};

int store_codec_alert_encode(msgpack_sbuffer *out, const store_alert *a)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    size_t nev = a->n_evidence < STORE_EVIDENCE_MAX ? a->n_evidence : STORE_EVIDENCE_MAX;
    size_t ntags = a->n_tags < STORE_ALERT_TAGS_MAX ? a->n_tags : STORE_ALERT_TAGS_MAX;
    size_t nusers = a->n_users < STORE_ALERT_USERS_MAX ? a->n_users : STORE_ALERT_USERS_MAX;
    if (encode_fields_into(&pk, alert_fields, NFIELDS(alert_fields), a, 3) < 0)
        return -1;
    if (pack_key(&pk, "us") != 0 || msgpack_pack_array(&pk, nusers) != 0)
        return -1;
    for (size_t i = 0; i < nusers; i++)
        if (msgpack_pack_str_with_body(&pk, a->users[i], field_strlen(a->users[i], sizeof a->users[i])) != 0)
            return -1;
    if (pack_key(&pk, "ev") != 0 || msgpack_pack_array(&pk, nev) != 0)
        return -1;
    for (size_t i = 0; i < nev; i++) {
        const store_evidence *e = &a->evidence[i];
        evidence_wire w;
        memset(&w, 0, sizeof w);
        memcpy(w.name, e->name, sizeof w.name);
        w.kind = (int64_t)e->kind;
        w.num = e->num;
        w.b = e->b;
        memcpy(w.str, e->str, sizeof w.str);
        w.at_least = e->at_least;
        if (encode_fields_into(&pk, evidence_fields, NFIELDS(evidence_fields), &w, 0) < 0)
            return -1;
    }
    if (pack_key(&pk, "tg") != 0 || msgpack_pack_array(&pk, ntags) != 0)
        return -1;
    for (size_t i = 0; i < ntags; i++)
        if (msgpack_pack_str_with_body(&pk, a->tags[i], field_strlen(a->tags[i], sizeof a->tags[i])) != 0)
            return -1;
    return 0;
}

static bool key_is(const msgpack_object *k, const char *name)
{
    return k->type == MSGPACK_OBJECT_STR && strlen(name) == k->via.str.size &&
           memcmp(name, k->via.str.ptr, k->via.str.size) == 0;
}

static int alert_map(const msgpack_object_map *m, void *vctx)
{
    store_alert *a = vctx;
    fields_ctx c = { alert_fields, NFIELDS(alert_fields), (unsigned char *)a };
    if (fields_map(m, &c) < 0)
        return -1;
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
        if (key_is(k, "ev")) {
            if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > STORE_EVIDENCE_MAX)
                return -1;
            for (uint32_t j = 0; j < v->via.array.size; j++) {
                const msgpack_object *o = &v->via.array.ptr[j];
                evidence_wire w;
                memset(&w, 0, sizeof w);
                fields_ctx ec = { evidence_fields, NFIELDS(evidence_fields), (unsigned char *)&w };
                if (o->type != MSGPACK_OBJECT_MAP || fields_map(&o->via.map, &ec) < 0)
                    return -1;
                if (w.kind < STORE_EVIDENCE_NULL || w.kind > STORE_EVIDENCE_STRING)
                    return -1;
                store_evidence *e = &a->evidence[j];
                memcpy(e->name, w.name, sizeof e->name);
                e->kind = (store_evidence_kind)w.kind;
                e->num = w.num;
                e->b = w.b;
                memcpy(e->str, w.str, sizeof e->str);
                e->at_least = w.at_least;
            }
            a->n_evidence = v->via.array.size;
        } else if (key_is(k, "tg")) {
            if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > STORE_ALERT_TAGS_MAX)
                return -1;
            for (uint32_t j = 0; j < v->via.array.size; j++) {
                const msgpack_object *o = &v->via.array.ptr[j];
                if (o->type != MSGPACK_OBJECT_STR || memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
                    return -1;
                util_copy_utf8(a->tags[j], sizeof a->tags[j], o->via.str.ptr, o->via.str.size);
            }
            a->n_tags = v->via.array.size;
        } else if (key_is(k, "us")) {
            if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > STORE_ALERT_USERS_MAX)
                return -1;
            for (uint32_t j = 0; j < v->via.array.size; j++) {
                const msgpack_object *o = &v->via.array.ptr[j];
                if (o->type != MSGPACK_OBJECT_STR || memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
                    return -1;
                util_copy_utf8(a->users[j], sizeof a->users[j], o->via.str.ptr, o->via.str.size);
            }
            a->n_users = v->via.array.size;
        }
    }
    return 0;
}

int store_codec_alert_decode(const void *data, size_t len, store_alert *out)
{
    memset(out, 0, sizeof *out);
    if (decode_map(data, len, alert_map, out) < 0) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    return 0;
}

static const field open_fields[] = {
    I64("at", store_open_alert, at_ms),
    STR("id", store_open_alert, id),
    I64("sup", store_open_alert, suppressed),
    I64("lsa", store_open_alert, last_suppressed_at_ms),
};

int store_codec_open_alert_encode(msgpack_sbuffer *out, const store_open_alert *r)
{
    return encode_fields(out, open_fields, NFIELDS(open_fields), r);
}

int store_codec_open_alert_decode(const void *data, size_t len, store_open_alert *out)
{
    return decode_fields(data, len, open_fields, NFIELDS(open_fields), out, sizeof *out);
}

/* ---- outbox: the state by table; sink, times and id live in the key ---- */

static const field outbox_fields[] = {
    I64("at", store_outbox_entry, alert_at_ms),
    I64("tr", store_outbox_entry, attempts),
    STR("e", store_outbox_entry, last_error),
};

int store_codec_outbox_encode(msgpack_sbuffer *out, const store_outbox_entry *e)
{
    return encode_fields(out, outbox_fields, NFIELDS(outbox_fields), e);
}

int store_codec_outbox_decode(const void *data, size_t len, store_outbox_entry *e)
{
    return decode_fields(data, len, outbox_fields, NFIELDS(outbox_fields), e, sizeof *e);
}

static const field sink_state_fields[] = {
    STR("snk", store_sink_state, sink),
    I64("fs", store_sink_state, failing_since_ms),
    I64("n", store_sink_state, next_try_ms),
    I64("f", store_sink_state, failures),
    STR("e", store_sink_state, last_error),
};

int store_codec_sink_state_encode(msgpack_sbuffer *out, const store_sink_state *st)
{
    return encode_fields(out, sink_state_fields, NFIELDS(sink_state_fields), st);
}

int store_codec_sink_state_decode(const void *data, size_t len, store_sink_state *out)
{
    return decode_fields(data, len, sink_state_fields, NFIELDS(sink_state_fields), out, sizeof *out);
}

/* triage.c, allow.c */
static const field triage_fields[] = {
    STR("id", store_triage, alert_id),
    I64("st", store_triage, state),
    STR("by", store_triage, by),
    I64("at", store_triage, at_ms),
    STR("note", store_triage, note),
};

int store_codec_triage_encode(msgpack_sbuffer *out, const store_triage *r)
{
    return encode_fields(out, triage_fields, NFIELDS(triage_fields), r);
}
int store_codec_triage_decode(const void *data, size_t len, store_triage *out)
{
    return decode_fields(data, len, triage_fields, NFIELDS(triage_fields), out, sizeof *out);
}

static const field allow_fields[] = {
    STR("note", store_allow_entry, note),
    STR("by", store_allow_entry, by),
    I64("add", store_allow_entry, added_ms),
    I64("exp", store_allow_entry, expires_ms),
};

int store_codec_allow_encode(msgpack_sbuffer *out, const store_allow_entry *e)
{
    return encode_fields(out, allow_fields, NFIELDS(allow_fields), e);
}
int store_codec_allow_decode(const void *data, size_t len, store_allow_entry *out)
{
    return decode_fields(data, len, allow_fields, NFIELDS(allow_fields), out, sizeof *out);
}
