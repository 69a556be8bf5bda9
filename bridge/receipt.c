/* receipt.c -- coalescing of read receipts (see receipt.h).
 *
 * A chained hash table keyed by room and user. It holds the entries
 * announced within the last interval or with a receipt waiting, so its
 * size follows the rate of read markers, not the number of users. */
#include <stdlib.h>
#include <string.h>

#include "receipt.h"

#define RECEIPT_BUCKETS 1024

struct entry {
    struct entry *next;
    long long sent_ms;          /* when it was last announced */
    long long waiting;          /* marker to announce, 0 = none */
    char room[NAME_MAX_BYTES + 1];
    char user[NAME_MAX_BYTES + 1];
};

struct receipts {
    struct entry *bucket[RECEIPT_BUCKETS];
    size_t waiting;             /* entries with a receipt waiting */
    size_t entries;             /* all of them: none, nothing to sweep */
};

struct receipts *receipts_new(void) {
    return calloc(1, sizeof(struct receipts));
}

void receipts_free(struct receipts *t) {
    if (t == NULL) return;
    for (size_t i = 0; i < RECEIPT_BUCKETS; i++)
        for (struct entry *e = t->bucket[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(t);
}

/* FNV-1a over room, a separator, and user. */
static size_t receipt_hash(const char *room, const char *user) {
    unsigned h = 2166136261u;
    for (const char *p = room; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ 0xffu) * 16777619u;
    for (const char *p = user; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
    return h % RECEIPT_BUCKETS;
}

static struct entry *receipt_find(struct receipts *t, size_t h, const char *room,
                                  const char *user) {
    for (struct entry *e = t->bucket[h]; e; e = e->next)
        if (strcmp(e->room, room) == 0 && strcmp(e->user, user) == 0) return e;
    return NULL;
}

/* Copy a valid name (names.h bounds it) into a field of an entry. */
static void receipt_copy(char dst[NAME_MAX_BYTES + 1], const char *src) {
    size_t n = strlen(src);
    if (n > NAME_MAX_BYTES) n = NAME_MAX_BYTES;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int receipts_note(struct receipts *t, const char *room, const char *user,
                  long long read, long long now_ms) {
    size_t h = receipt_hash(room, user);
    struct entry *e = receipt_find(t, h, room, user);
    if (e && now_ms - e->sent_ms < RECEIPT_INTERVAL_MS) {
        if (e->waiting == 0) t->waiting++;
        if (read > e->waiting) e->waiting = read;
        return 0;
    }
    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        if (e == NULL) return 1;
        receipt_copy(e->room, room);
        receipt_copy(e->user, user);
        e->next = t->bucket[h];
        t->bucket[h] = e;
        t->entries++;
    }
    if (e->waiting) t->waiting--;
    e->waiting = 0;
    e->sent_ms = now_ms;
    return 1;
}

/* Walk one bucket: announce what is due, forget what is idle. */
static size_t receipt_sweep(struct receipts *t, struct entry **link, long long now_ms,
                            struct receipt *out, size_t max) {
    size_t n = 0;
    while (*link) {
        struct entry *e = *link;
        int over = now_ms - e->sent_ms >= RECEIPT_INTERVAL_MS;
        if (over && e->waiting && n < max) {
            memcpy(out[n].room, e->room, sizeof(e->room));
            memcpy(out[n].user, e->user, sizeof(e->user));
            out[n++].read = e->waiting;
            e->waiting = 0;
            e->sent_ms = now_ms;
            t->waiting--;
        } else if (over && e->waiting == 0) {
            *link = e->next;
            free(e);
            t->entries--;
            continue;
        }
        link = &e->next;
    }
    return n;
}

size_t receipts_due(struct receipts *t, long long now_ms, struct receipt *out, size_t max) {
    size_t n = 0;
    for (size_t i = 0; i < RECEIPT_BUCKETS && n < max && t->entries; i++)
        n += receipt_sweep(t, &t->bucket[i], now_ms, out + n, max - n);
    return n;
}

long long receipts_next(const struct receipts *t, long long now_ms) {
    long long best = -1;
    if (t->waiting == 0) return -1;
    for (size_t i = 0; i < RECEIPT_BUCKETS; i++)
        for (const struct entry *e = t->bucket[i]; e; e = e->next) {
            if (e->waiting == 0) continue;
            long long in = e->sent_ms + RECEIPT_INTERVAL_MS - now_ms;
            if (in < 0) in = 0;
            if (best < 0 || in < best) best = in;
        }
    return best;
}
