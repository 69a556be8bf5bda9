/* check.c -- the final check of a workload, message by message
 * (see wl_verify in workload.h).
 *
 * Redis is read the way a client of the schema reads it: for each room,
 * GET chatroom:<room>:messages, then HGET chatroom:<room>:<id> content for
 * every id up to it. Each text "m<seq>" names the message it came from. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workload.h"

#define MAX_EXAMPLES 10
#define SETTLE_POLL_MS 200
#define PROGRESS_MS 10000

enum kind {
    K_MISSING, K_DUPLICATE, K_GAP, K_STRANGE, K_WRONG_ROOM, K_UNSEEN,
    K_BAD_REPUBLISH, K_ORDER, K_COUNT
};

static const char *const kind_name[K_COUNT] = {
    "missing (acknowledged, not in Redis)", "stored more than once",
    "gap (id without its hash)", "not a message of this workload",
    "stored in the wrong room", "never republished",
    "wrong republish", "out of order"
};

/* Problems found, counted by kind; the first few of each are printed. */
struct report {
    int count[K_COUNT];
};

/* What Redis holds for the workload's rooms. */
struct scan {
    int n, rooms;
    long long *max;       /* per room: its counter */
    int **seq_at;         /* per room: id -> seq of its text (0: none) */
    int *stored;          /* per seq: how many ids hold it */
};

/* Count a problem; print it while there are few of its kind. */
static void report(struct report *r, enum kind k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(struct report *r, enum kind k, const char *fmt, ...) {
    va_list ap;
    if (r->count[k]++ >= MAX_EXAMPLES) return;
    printf("  %s: ", kind_name[k]);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

/* Print the totals; returns the number of problems. */
static int report_summary(const struct report *r) {
    int total = 0;
    for (int k = 0; k < K_COUNT; k++) {
        if (r->count[k]) printf("  => %d %s\n", r->count[k], kind_name[k]);
        total += r->count[k];
    }
    fflush(stdout);
    return total;
}

/* ==================== Reading Redis ==================== */

/* A reply to fmt, reconnecting first when the assertion client is broken
 * (Redis restarted, or a read timed out). NULL when Redis does not answer. */
static redisReply *redis_cmd(struct h_env *e, const char *fmt, ...) {
    va_list ap;
    if ((e->redis == NULL || e->redis->err) && h_redis_reconnect(e) < 0) return NULL;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(e->redis, fmt, ap);
    va_end(ap);
    return r;
}

/* The room's id counter; 0 when absent or Redis does not answer. */
static long long room_counter(struct h_env *e, int room) {
    redisReply *r = redis_cmd(e, "GET chatroom:f%d:messages", room);
    long long v = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    if (r) freeReplyObject(r);
    return v;
}

/* The sum of the rooms' counters: how many messages were stored. */
static long long stored_total(struct h_env *e, int rooms) {
    long long total = 0;
    for (int room = 0; room < rooms; room++) total += room_counter(e, room);
    return total;
}

/* Record what the hash of id in room holds. */
static void note_stored(struct scan *sc, struct report *rep, int room, long long id,
                        const redisReply *r) {
    if (r->type != REDIS_REPLY_STRING) {
        report(rep, K_GAP, "chatroom:f%d:%lld has no content", room, id);
        return;
    }
    long seq = wl_number_after(r->str, r->len, "m");
    if (seq < 1 || seq > sc->n) {
        report(rep, K_STRANGE, "chatroom:f%d:%lld holds \"%.40s\"", room, id, r->str);
        return;
    }
    sc->seq_at[room][id] = (int)seq;
    sc->stored[seq]++;
    if (seq % sc->rooms != room)
        report(rep, K_WRONG_ROOM, "m%ld is chatroom:f%d:%lld, was sent to f%ld",
               seq, room, id, seq % sc->rooms);
}

/* Read every message hash of one room, pipelined. 0, or -1 when Redis
 * does not answer. */
static int scan_room(struct h_env *e, struct scan *sc, int room, struct report *rep) {
    long long max = room_counter(e, room);
    if (max > 4LL * sc->n + 100) {
        report(rep, K_STRANGE, "chatroom:f%d:messages is %lld for %d messages", room, max,
               sc->n);
        max = 4LL * sc->n + 100;
    }
    sc->max[room] = max;
    sc->seq_at[room] = calloc((size_t)max + 1, sizeof(int));
    if (sc->seq_at[room] == NULL || e->redis == NULL) return -1;
    for (long long id = 1; id <= max; id++)
        redisAppendCommand(e->redis, "HGET chatroom:f%d:%lld content", room, id);
    for (long long id = 1; id <= max; id++) {
        void *r = NULL;
        if (redisGetReply(e->redis, &r) != REDIS_OK || r == NULL) return -1;
        note_stored(sc, rep, room, id, r);
        freeReplyObject(r);
    }
    return 0;
}

/* Scan every room into sc. 0, or -1 (printed) when Redis does not answer. */
static int scan_all(struct h_env *e, struct scan *sc, struct report *rep) {
    sc->max = calloc((size_t)sc->rooms, sizeof(*sc->max));
    sc->seq_at = calloc((size_t)sc->rooms, sizeof(*sc->seq_at));
    sc->stored = calloc((size_t)sc->n + 1, sizeof(*sc->stored));
    if (!sc->max || !sc->seq_at || !sc->stored) return -1;
    for (int room = 0; room < sc->rooms; room++) {
        if (scan_room(e, sc, room, rep) < 0) {
            printf("  cannot read room f%d from Redis\n", room);
            return -1;
        }
    }
    return 0;
}

static void scan_free(struct scan *sc) {
    for (int room = 0; sc->seq_at && room < sc->rooms; room++) free(sc->seq_at[room]);
    free(sc->seq_at);
    free(sc->max);
    free(sc->stored);
}

/* ==================== Checks ==================== */

/* 1 when message seq must be stored and republished. */
static int must_have(const struct wl_result *res, const struct wl_expect *x, int seq) {
    return res->acked[seq] && seq != x->lost_seq;
}

/* The ids in its room that hold seq, as text for a report. */
static void ids_of(const struct scan *sc, int seq, char *buf, size_t size) {
    int room = seq % sc->rooms;
    size_t len = 0;
    buf[0] = '\0';
    for (long long id = 1; id <= sc->max[room] && len + 24 < size; id++)
        if (sc->seq_at[room][id] == seq)
            len += (size_t)snprintf(buf + len, size - len, " %lld", id);
}

/* Each republish must name the id that holds its text; count them per seq. */
static void check_republishes(const struct wl_result *res, const struct scan *sc,
                              int *seen, struct report *rep) {
    for (size_t i = 0; i < res->nseen; i++) {
        const struct wl_seen *s = &res->seen[i];
        int room = s->seq % sc->rooms;
        if (s->room != room)
            report(rep, K_BAD_REPUBLISH, "m%d republished in room f%d", s->seq, s->room);
        else if (s->id < 1 || s->id > sc->max[room] || sc->seq_at[room][s->id] != s->seq)
            report(rep, K_BAD_REPUBLISH, "m%d republished as f%d:%lld, which holds m%d",
                   s->seq, room, s->id,
                   s->id >= 1 && s->id <= sc->max[room] ? sc->seq_at[room][s->id] : 0);
        seen[s->seq]++;
    }
    if (res->bad) report(rep, K_BAD_REPUBLISH, "%d republishes did not parse", res->bad);
}

/* Every acknowledged message stored exactly once and seen; none twice. */
static void check_messages(const struct wl_result *res, const struct wl_expect *x,
                           const struct scan *sc, const int *seen, struct report *rep) {
    char ids[128];
    for (int seq = 1; seq <= res->n; seq++) {
        int must = must_have(res, x, seq);
        if (must && sc->stored[seq] == 0)
            report(rep, K_MISSING, "m%d (room f%d)", seq, seq % sc->rooms);
        if (sc->stored[seq] > 1) {
            ids_of(sc, seq, ids, sizeof(ids));
            report(rep, K_DUPLICATE, "m%d %d times, room f%d ids%s", seq, sc->stored[seq],
                   seq % sc->rooms, ids);
        }
        if (must && seen[seq] == 0)
            report(rep, K_UNSEEN, "m%d (room f%d)", seq, seq % sc->rooms);
    }
    if (x->lost_seq > 0)
        printf("  m%d (the torn record) is stored %d times, republished %d times\n",
               x->lost_seq, sc->stored[x->lost_seq], seen[x->lost_seq]);
}

/* Within each room, ids must follow the publisher's order. */
static void check_order(const struct scan *sc, struct report *rep) {
    for (int room = 0; room < sc->rooms; room++) {
        int last = 0;
        for (long long id = 1; id <= sc->max[room]; id++) {
            int seq = sc->seq_at[room][id];
            if (seq && seq < last)
                report(rep, K_ORDER, "f%d:%lld holds m%d, after m%d", room, id, seq, last);
            if (seq > last) last = seq;
        }
    }
}

/* ==================== Waiting ==================== */

/* 1 when Redis holds at least as many messages as expected and the
 * subscriber saw every message it must have seen; with progress, print
 * how far they are otherwise. */
static int settled(struct workload *w, struct h_env *e, const struct wl_expect *x,
                   int progress) {
    struct wl_result res;
    wl_snapshot(w, &res);
    unsigned char *seen = calloc((size_t)res.n + 1, 1);
    int expect = 0, unseen = 0;
    for (size_t i = 0; seen && i < res.nseen; i++) seen[res.seen[i].seq] = 1;
    for (int seq = 1; seen && seq <= res.n; seq++) {
        expect += must_have(&res, x, seq);
        unseen += must_have(&res, x, seq) && !seen[seq];
    }
    long long stored = stored_total(e, res.rooms);
    int ok = seen && unseen == 0 && stored >= expect;
    if (!ok && progress)
        printf("  waiting: %lld of %d stored, %d of them not republished yet\n", stored,
               expect, unseen);
    free(seen);
    wl_result_free(&res);
    return ok;
}

/* Wait, bounded, until settled; a timeout is not an error here: the check
 * that follows says what is missing. */
static void wait_settled(struct workload *w, struct h_env *e, const struct wl_expect *x) {
    int timeout = x->timeout_ms > 0 ? x->timeout_ms : 60000;
    for (int waited = 0; waited < timeout; waited += SETTLE_POLL_MS) {
        if (settled(w, e, x, waited % PROGRESS_MS == 0 && waited > 0)) return;
        h_sleep_ms(SETTLE_POLL_MS);
    }
    printf("  still incomplete after %d ms\n", timeout);
}

/* Wait until settled, then scan Redis and check (see workload.h). */
int wl_verify(struct workload *w, struct h_env *e, const struct wl_expect *x) {
    struct wl_result res;
    struct report rep = { { 0 } };
    wait_settled(w, e, x);
    wl_snapshot(w, &res);
    struct scan sc = { .n = res.n, .rooms = res.rooms };
    int *seen = calloc((size_t)res.n + 1, sizeof(int));
    int rc = seen && res.acked && scan_all(e, &sc, &rep) == 0 ? 0 : -1;
    if (rc == 0) {
        check_republishes(&res, &sc, seen, &rep);
        check_messages(&res, x, &sc, seen, &rep);
        if (x->ordered) check_order(&sc, &rep);
        rc = report_summary(&rep);
    }
    if (rc == 0)
        printf("  check: every acknowledged message stored once, %zu republishes seen\n",
               res.nseen);
    fflush(stdout);
    free(seen);
    scan_free(&sc);
    wl_result_free(&res);
    return rc < 0 ? 1 : rc;
}
