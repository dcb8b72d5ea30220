/*
 * pending.c: the delivery ids in the log but not yet applied, so a Svix retry
 * arriving before the apply answers "duplicate" exactly. Chained hashing; the
 * table doubles when it holds as many ids as buckets.
 */
#include "pipeline/internal.h"

#include <stdlib.h>
#include <string.h>

struct pipeline_pending_entry {
    pipeline_pending_entry *next;
    uint32_t count;
    char id[];
};

static size_t id_hash(const char *id)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (size_t)h;
}

static pipeline_pending_entry **slot_of(const pipeline_pending *p, const char *id)
{
    pipeline_pending_entry **e = &p->buckets[id_hash(id) & (p->nbuckets - 1)];
    while (*e != NULL && strcmp((*e)->id, id) != 0)
        e = &(*e)->next;
    return e;
}

static int grow(pipeline_pending *p)
{
    size_t n = p->nbuckets ? 2 * p->nbuckets : 1024;
    pipeline_pending_entry **b = calloc(n, sizeof *b);
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < p->nbuckets; i++) {
        for (pipeline_pending_entry *e = p->buckets[i], *next; e != NULL; e = next) {
            next = e->next;
            size_t k = id_hash(e->id) & (n - 1);
            e->next = b[k];
            b[k] = e;
        }
    }
    free(p->buckets);
    p->buckets = b;
    p->nbuckets = n;
    return 0;
}

int pipeline_pending_add(pipeline_pending *p, const char *id)
{
    if (p->count >= p->nbuckets && grow(p) < 0 && p->nbuckets == 0)
        return -1; /* a table that could not grow still works, only slower */
    pipeline_pending_entry **e = slot_of(p, id);
    if (*e != NULL) {
        (*e)->count++;
        return 0;
    }
    size_t len = strlen(id);
    pipeline_pending_entry *n = malloc(sizeof *n + len + 1);
    if (n == NULL)
        return -1;
    n->next = NULL;
    n->count = 1;
    memcpy(n->id, id, len + 1);
    *e = n;
    p->count++;
    return 0;
}

bool pipeline_pending_has(const pipeline_pending *p, const char *id)
{
    return p->nbuckets > 0 && *slot_of(p, id) != NULL;
}

void pipeline_pending_remove(pipeline_pending *p, const char *id)
{
    if (p->nbuckets == 0)
        return;
    pipeline_pending_entry **e = slot_of(p, id);
    if (*e == NULL || --(*e)->count > 0)
        return;
    pipeline_pending_entry *gone = *e;
    *e = gone->next;
    free(gone);
    p->count--;
}

void pipeline_pending_free(pipeline_pending *p)
{
    for (size_t i = 0; i < p->nbuckets; i++)
        for (pipeline_pending_entry *e = p->buckets[i], *next; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    free(p->buckets);
    memset(p, 0, sizeof *p);
}
