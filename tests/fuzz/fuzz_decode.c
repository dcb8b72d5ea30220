/*
 * fuzz_decode.c: libFuzzer target for the envelope decoder (src/ingest/decode.c):
 * the whole JSON body of a verified delivery -> event_t. Checked, besides
 * ASan/UBSan/LSan:
 *   - the result is OK, BAD_JSON or BAD_EVENT, and a refusal says why;
 *   - on OK every text field is NUL-terminated inside its buffer, the type is
 *     in range and the envelope time is not negative;
 *   - on a refusal the event is zeroed except the delivery id;
 *   - decoding is deterministic (the same bytes decode to the same event).
 * Built and run by run.sh (target "decode").
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"

#define DELIVERY_ID "msg_2fuzzDeliveryId"

static void finding(const char *what)
{
    fprintf(stderr, "fuzz_decode: %s\n", what);
    abort();
}

#define TERMINATED(field)                                                  \
    do {                                                                   \
        if (strnlen((field), sizeof(field)) >= sizeof(field))              \
            finding(#field " is not terminated inside its buffer");       \
    } while (0)

static void check_strings(const event_t *ev)
{
    TERMINATED(ev->type_name);
    TERMINATED(ev->delivery_id);
    TERMINATED(ev->instance_id);
    TERMINATED(ev->user_agent);
    TERMINATED(ev->client_ip);
    TERMINATED(ev->user.id);
    TERMINATED(ev->user.email);
    TERMINATED(ev->user.first_name);
    TERMINATED(ev->user.last_name);
    TERMINATED(ev->user.username);
    TERMINATED(ev->user.external_id);
    TERMINATED(ev->session.session_id);
    TERMINATED(ev->session.user_id);
    TERMINATED(ev->session.client_id);
    TERMINATED(ev->session.status);
    TERMINATED(ev->session.ip);
    TERMINATED(ev->session.country);
    TERMINATED(ev->session.city);
    TERMINATED(ev->session.browser);
    TERMINATED(ev->session.device);
}

static event_t ev1, ev2, zero_but_id;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "";
    memset(&ev1, 0xa5, sizeof ev1); /* garbage in: the decoder zeroes first */
    ingest_result r = ingest_decode_event((const char *)data, size, DELIVERY_ID, &ev1, err, sizeof err);
    if (r != INGEST_OK && r != INGEST_ERR_BAD_JSON && r != INGEST_ERR_BAD_EVENT)
        finding("a result other than ok, bad_json or bad_event");
    if (strcmp(ev1.delivery_id, DELIVERY_ID) != 0)
        finding("the delivery id was not kept");
    if (r == INGEST_OK) {
        check_strings(&ev1);
        if ((unsigned)ev1.type >= EVENT_TYPE_COUNT)
            finding("the event type is out of range");
        if (ev1.timestamp_ms < 0)
            finding("a negative envelope time was accepted");
    } else {
        if (err[0] == '\0' || strnlen(err, sizeof err) >= sizeof err)
            finding("refused without a (terminated) reason");
        memset(&zero_but_id, 0, sizeof zero_but_id);
        memcpy(zero_but_id.delivery_id, DELIVERY_ID, sizeof DELIVERY_ID);
        if (memcmp(&ev1, &zero_but_id, sizeof ev1) != 0)
            finding("a refused body left fields set");
    }
    memset(&ev2, 0x5a, sizeof ev2);
    char err2[256] = "";
    if (ingest_decode_event((const char *)data, size, DELIVERY_ID, &ev2, err2, sizeof err2) != r ||
        memcmp(&ev1, &ev2, sizeof ev1) != 0 || strcmp(err, err2) != 0)
        finding("the same body decoded twice gives different events");
    return 0;
}
