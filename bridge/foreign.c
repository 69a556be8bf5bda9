/* foreign.c -- the store worker's side of other writers (watch.h,
 * store.h "Other writers").
 *
 * Between journal batches the worker takes what the keyspace listener
 * saw and: finishes deletes other writers did (store_reap), announcing
 * each one this bridge removed; adopts the rooms that have something new
 * (store_adopt), republishing what comes back in id order through the
 * same delivery as its own messages; comes back to a room whose next id
 * is half-written (STORE_ADOPT_WAIT_MS at most, then the store skips it);
 * and, once the delivery is empty (every republish acknowledged by the
 * broker), confirms the rooms it republished in, so that a restart
 * republishes again only what was not confirmed.
 *
 * Rooms are kept in one list, each with when it is due; the list grows
 * with the rooms that have work, and a room leaves it once caught up. */
#include <stdlib.h>
#include <string.h>

#include "bridge_int.h"
#include "clock.h"
#include "codec.h"
#include "watch.h"

#define FOREIGN_TAKE 256        /* events taken per step */
#define FOREIGN_ROUND 64        /* rooms adopted per pipeline */
#define FOREIGN_BUDGET_US 50000 /* adoption time per step, then the journal */
#define FOREIGN_WAIT_RETRY_MS 25  /* a half-written message: no event tells
                                   when it is complete (watch.h) */
#define FOREIGN_FAIL_RETRY_MS 1000
#define FOREIGN_OUTSTANDING 512 /* republishes not yet confirmed, at most:
                                   what a crash can make republish twice */

struct foreign_room {
    char room[NAME_MAX_BYTES + 1];
    int redo;                   /* republish again what a previous run
                                   left unconfirmed */
    size_t unconfirmed;         /* republished since the last confirm */
    unsigned long long seq;     /* ... with a ticket at this journal seq */
    long long due;              /* adopt at (wall ms); 0: only confirm */
};

struct foreign {
    struct foreign_room *rooms;
    size_t n, cap;
    int first_done;             /* the start's reconcile is all taken */
    size_t outstanding;         /* the rooms' unconfirmed, summed */
    struct watch_event ev[FOREIGN_TAKE];
    struct store_adopt adopt[FOREIGN_ROUND];
    size_t pick[FOREIGN_ROUND];
    struct store_reap reap[FOREIGN_TAKE];
    struct log_ratelimit rl;
};

struct foreign *foreign_new(void) {
    struct foreign *f = calloc(1, sizeof(*f));
    if (f) f->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5, 60);
    return f;
}

void foreign_free(struct foreign *f) {
    if (f == NULL) return;
    for (size_t i = 0; i < FOREIGN_ROUND; i++) store_adopt_clear(&f->adopt[i]);
    free(f->rooms);
    free(f);
}

/* The room's entry, added when absent. NULL when out of memory. */
static struct foreign_room *foreign_room(struct foreign *f, const char *room) {
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->rooms[i].room, room) == 0) return &f->rooms[i];
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        struct foreign_room *r = realloc(f->rooms, cap * sizeof(*r));
        if (r == NULL) return NULL;
        f->rooms = r;
        f->cap = cap;
    }
    struct foreign_room *r = &f->rooms[f->n++];
    memset(r, 0, sizeof(*r));
    snprintf(r->room, sizeof(r->room), "%s", room);
    return r;
}

/* Remove rooms[i] (order does not matter). */
static void foreign_forget(struct foreign *f, size_t i) {
    f->rooms[i] = f->rooms[--f->n];
}

/* Finish the deletes other writers did; announce those this call removed. */
static void foreign_reap(struct bridge *b, struct foreign *f, size_t n) {
    size_t k = 0, len;
    for (size_t i = 0; i < n; i++)
        if (f->ev[i].kind == WATCH_GONE)
            f->reap[k++] = (struct store_reap){ .room = f->ev[i].room, .id = f->ev[i].id };
    if (k == 0 || store_reap(b->store, f->reap, k) != CB_OK) return;
    for (size_t i = 0; i < k; i++) {
        if (!f->reap[i].reaped) continue;
        char *doc = codec_encode_deleted(f->reap[i].room, f->reap[i].id, &len);
        if (doc == NULL) continue;
        bridge_room_publish(b, f->reap[i].room, doc, len, NULL);
        STAT_INC(b, deleted);
    }
}

/* Take what the listener queued: deletes now, rooms into the list. */
static void foreign_take(struct bridge *b, struct foreign *f) {
    int ready = watch_ready(b->watch);
    size_t n = watch_take(b->watch, f->ev, FOREIGN_TAKE);
    long long now = clock_wall_ms();
    foreign_reap(b, f, n);
    for (size_t i = 0; i < n; i++) {
        if (f->ev[i].kind == WATCH_GONE) continue;
        struct foreign_room *r = foreign_room(f, f->ev[i].room);
        if (r == NULL) {
            if (log_ratelimit_ok(&f->rl)) log_error("out of memory for room %s", f->ev[i].room);
            continue;
        }
        if (f->ev[i].kind == WATCH_SCAN && !f->first_done) r->redo = 1;
        if (r->due == 0 || r->due > now) r->due = now;
    }
    if (ready && n < FOREIGN_TAKE) f->first_done = 1;
}

/* Republish what adopt.lua returned for room, oldest first, counted by a
 * ticket at the journal seq of the worker's last batch: once the
 * checkpoint passes that seq, the broker has them all (foreign_confirm). */
static void foreign_publish(struct bridge *b, struct foreign_room *r,
                            const struct store_adopt *a) {
    size_t len;
    const char *room = r->room;
    unsigned long long seq = __atomic_load_n(&b->last_seq, __ATOMIC_RELAXED);
    struct delivery_ticket *t = seq && a->nmsgs ? delivery_ticket_new(b->delivery, seq) : NULL;
    if (a->nmsgs) r->seq = t ? seq : ~0ULL;   /* no ticket: only a drained
                                                 delivery says */
    for (size_t i = 0; i < a->nmsgs; i++) {
        const struct store_msg *m = &a->msgs[i];
        struct codec_msg cm = { m->id, room, m->user, m->text, m->ts, NULL, 0 };
        char *doc = codec_encode_msg(&cm, &len);
        if (doc == NULL) {
            __atomic_add_fetch(&b->publish_oom, 1, __ATOMIC_RELAXED);
            continue;
        }
        bridge_room_publish(b, room, doc, len, t);
        STAT_INC(b, republished);
    }
    delivery_ticket_release(b->delivery, t);
}

/* What one room's adoption came to: publish, then when to come back. */
static void foreign_done(struct bridge *b, struct foreign *f, struct foreign_room *r,
                         const struct store_adopt *a, long long now) {
    if (a->result != CB_DONE) {
        if (log_ratelimit_ok(&f->rl))
            log_warn("room %s: adopting other writers' messages failed: %s; retrying",
                     r->room, store_errstr(b->store));
        r->due = now + FOREIGN_FAIL_RETRY_MS;
        return;
    }
    r->redo = 0;
    foreign_publish(b, r, a);
    r->unconfirmed += a->nmsgs;
    f->outstanding += a->nmsgs;
    if (a->skipped)
        log_warn("room %s: %lld message(s) another writer began never completed within "
                 "%d ms; skipped (counted in the room's cursor)", r->room, a->skipped,
                 STORE_ADOPT_WAIT_MS);
    r->due = a->state == STORE_ADOPT_MORE ? now :
             a->state == STORE_ADOPT_WAITING ? now + FOREIGN_WAIT_RETRY_MS : 0;
}

/* One pipelined round over the rooms due. How many rooms it adopted. */
static size_t foreign_round(struct bridge *b, struct foreign *f) {
    long long now = clock_wall_ms();
    size_t k = 0;
    /* each room may give STORE_ADOPT_WALK republishes: stay within
     * FOREIGN_OUTSTANDING, but always let one room go when none is out */
    size_t room_for = f->outstanding == 0 ? 1 : 0;
    if (f->outstanding < FOREIGN_OUTSTANDING)
        room_for = (FOREIGN_OUTSTANDING - f->outstanding) / STORE_ADOPT_WALK;
    for (size_t i = 0; i < f->n && k < FOREIGN_ROUND && k < room_for; i++) {
        if (f->rooms[i].due == 0 || f->rooms[i].due > now) continue;
        f->pick[k] = i;
        f->adopt[k].room = f->rooms[i].room;
        f->adopt[k++].redo = f->rooms[i].redo;
    }
    if (k == 0) return 0;
    if (store_adopt(b->store, f->adopt, k, now) != CB_OK) {
        for (size_t i = 0; i < k; i++) store_adopt_clear(&f->adopt[i]);
        return 0;            /* the worker reconnects; the rooms stay due */
    }
    for (size_t i = 0; i < k; i++) {
        foreign_done(b, f, &f->rooms[f->pick[i]], &f->adopt[i], now);
        store_adopt_clear(&f->adopt[i]);
    }
    return k;
}

/* 1 when every document ever given to the delivery is done with
 * (acknowledged, or dropped for good): the counts are read before the
 * puts, so a put racing with this makes it 0, never a false 1. The
 * delivery's own queued and in_flight would not do: a message its thread
 * has taken from the queue and not yet handed to Paho is in neither. */
static int foreign_drained(struct bridge *b) {
    struct delivery_stats ds;
    delivery_get_stats(b->delivery, &ds);
    unsigned long long puts = __atomic_load_n(&b->puts, __ATOMIC_ACQUIRE);
    return ds.completed + ds.refused + ds.left >= puts;
}

/* 1 when the broker has every republish of room r: the checkpoint
 * passed its ticket, or the delivery is drained. */
static int foreign_acked(struct bridge *b, const struct foreign_room *r, int drained) {
    return r->unconfirmed &&
           (drained || __atomic_load_n(&b->ckpt_seq, __ATOMIC_RELAXED) > r->seq);
}

/* Confirm the rooms whose republishes the broker has; rooms with nothing
 * left to do leave the list. */
static void foreign_confirm(struct bridge *b, struct foreign *f) {
    size_t k = 0;
    int drained = foreign_drained(b);
    for (size_t i = 0; i < f->n && k < FOREIGN_TAKE; i++)
        if (foreign_acked(b, &f->rooms[i], drained))
            f->reap[k++] = (struct store_reap){ .room = f->rooms[i].room, .id = 0 };
    if (k && store_reap(b->store, f->reap, k) == CB_OK) {
        for (size_t i = 0, j = 0; i < f->n && j < k; i++) {
            if (!foreign_acked(b, &f->rooms[i], drained)) continue;
            if (f->reap[j++].result != CB_DONE) continue;
            f->outstanding -= f->rooms[i].unconfirmed;
            f->rooms[i].unconfirmed = 0;
        }
    }
    for (size_t i = f->n; i-- > 0;)
        if (f->rooms[i].due == 0 && !f->rooms[i].unconfirmed) foreign_forget(f, i);
}

/* The worker's turn for other writers: take, reap, adopt (within a time
 * budget, so journal batches are not held back), confirm. Returns how
 * many ms until something is due (0: at once; at most 200). */
long foreign_step(struct bridge *b, struct foreign *f) {
    if (b->watch == NULL || !store_connected(b->store)) return 200;
    uint64_t t0 = clock_mono_us();
    foreign_take(b, f);
    while (foreign_round(b, f) && clock_mono_us() - t0 < FOREIGN_BUDGET_US)
        ;
    foreign_confirm(b, f);
    long long now = clock_wall_ms(), next = 200;
    for (size_t i = 0; i < f->n; i++) {
        if (f->rooms[i].due == 0) continue;
        long long in = f->rooms[i].due - now;
        if (in < next) next = in < 0 ? 0 : in;
    }
    for (size_t i = 0; i < f->n && next > 20; i++)
        if (f->rooms[i].unconfirmed) next = 20;
    if (f->outstanding + STORE_ADOPT_WALK > FOREIGN_OUTSTANDING && next < 20)
        next = 20;           /* held back until the broker acknowledges */
    return (long)next;
}
