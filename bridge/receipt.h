/* receipt.h -- read receipts for the rooms, at most one a second per user
 * and room.
 *
 * When a read marker moves, the room hears {"room","user","read"} on its
 * stream. A client that marks as it scrolls moves its marker many times a
 * second; the room then hears the first move at once and the latest one
 * when the second has passed, nothing in between (coalescing). This
 * module only keeps the clock: who was announced when, and which marker
 * waits. One thread (the store worker) uses a table; no I/O. */
#ifndef CB_RECEIPT_H
#define CB_RECEIPT_H

#include <stddef.h>
#include "names.h"

#define RECEIPT_INTERVAL_MS 1000

struct receipts;

/* A receipt to announce now. */
struct receipt {
    char room[NAME_MAX_BYTES + 1];
    char user[NAME_MAX_BYTES + 1];
    long long read;
};

struct receipts *receipts_new(void);     /* NULL when out of memory */
void receipts_free(struct receipts *t);

/* The marker of user in room moved to read at now_ms. Returns 1 when it
 * is to be announced now, 0 when it waits for receipts_due() (a later
 * move replaces a waiting one). Out of memory it answers 1: a receipt too
 * many rather than one lost. */
int receipts_note(struct receipts *t, const char *room, const char *user,
                  long long read, long long now_ms);

/* Up to max receipts whose second has passed at now_ms, into out; they
 * count as announced now. Entries with nothing waiting and whose second
 * has passed are forgotten, so the table holds only the last second's
 * users. Returns how many were written. */
size_t receipts_due(struct receipts *t, long long now_ms, struct receipt *out, size_t max);

/* Milliseconds from now_ms until a waiting receipt is due (0 if one is
 * due already), or -1 when none waits. */
long long receipts_next(const struct receipts *t, long long now_ms);

#endif
