/* worker.c -- the store worker: journal records in batches, one
 * pipelined Redis round trip per batch (store.h), then the republishes
 * and replies to the delivery, and journal_stored. Retries Redis with
 * capped exponential backoff and jitter; gives up only when stopping and
 * past the stop's deadline (the records then stay in the journal). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_int.h"
#include "clock.h"
#include "topic.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* 1 once stopping and past the stop's deadline for Redis. */
static int worker_giving_up(struct bridge *b) {
    return __atomic_load_n(&b->stopping, __ATOMIC_ACQUIRE) && clock_passed(&b->give_up_at);
}

/* Wait before the next attempt: exponential, capped, with jitter. */
static void worker_backoff(long *ms) {
    clock_sleep_ms(*ms / 2 + rand() % (*ms / 2 + 1));
    *ms = *ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *ms * 2;
}

/* 1 when some op still needs Redis (never ran, or Redis said "later"). */
static int worker_unfinished(struct store_op *ops, size_t n) {
    int left = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].result == CB_RETRY) ops[i].result = CB_PENDING;
        if (ops[i].result == CB_PENDING) left = 1;
    }
    return left;
}

/* Connect to Redis when not connected. The connection state is published
 * for bridge_stats; a change is logged once, not at every attempt. */
static int worker_redis_up(struct bridge *b) {
    if (store_connected(b->store)) return 1;
    int was = __atomic_load_n(&b->st.redis_connected, __ATOMIC_RELAXED);
    int up = store_connect(b->store) == CB_OK;
    if (up) log_info("redis: connected to %s", store_address(b->store));
    else if (was || !b->redis_tried) log_warn("%s", store_errstr(b->store));
    b->redis_tried = 1;
    __atomic_store_n(&b->st.redis_connected, up, __ATOMIC_RELAXED);
    return up;
}

/* Run the batch until every op has an outcome, reconnecting to Redis as
 * needed. After an I/O error the ops without a reply run again; the send
 * script's replay guard makes that safe. Gives up only when stopping and
 * past the deadline: the records then stay in the journal. */
static int worker_exec(struct bridge *b, struct store_op *ops, size_t n) {
    long wait = BACKOFF_MIN_MS;
    int retries = 0;
    while (worker_unfinished(ops, n) && !worker_giving_up(b)) {
        int rc = worker_redis_up(b) ? store_exec(b->store, ops, n) : CB_ERR;
        for (size_t i = 0; i < n; i++) ops[i].fresh = 0;   /* may have run */
        if (rc == CB_OK && !worker_unfinished(ops, n)) break;
        if (!store_connected(b->store))
            __atomic_store_n(&b->st.redis_connected, 0, __ATOMIC_RELAXED);
        if (retries++ == 0) log_warn("%s; retrying", store_errstr(b->store));
        STAT_INC(b, redis_retries);
        worker_backoff(&wait);
    }
    if (retries && !worker_unfinished(ops, n))
        log_info("redis: batch applied after %d retries", retries);
    return !worker_unfinished(ops, n);
}

/* A stored message: republish it to the room, then answer the sender. A
 * record replayed after a restart is republished again (its first
 * republish may not have reached the broker); a client's repeat of a
 * client_msg_id only gets the original id back. */
static void worker_done_send(struct bridge *b, const struct request *r,
                             const struct store_op *op, struct delivery_ticket *t) {
    size_t len;
    if (op->how == STORE_DUPLICATE) {
        STAT_INC(b, duplicates);
    } else {
        struct codec_msg m = { op->new_id, r->room, r->user, r->text, r->ts,
                               r->client_msg_id, 0 };
        char *doc = codec_encode_msg(&m, &len);
        if (op->how == STORE_NEW) STAT_INC(b, stored);
        else STAT_INC(b, replayed);
        long long age = clock_wall_ms() - r->ts;
        stats_hist_add(&b->e2e_lat, age > 0 ? (uint64_t)age * 1000 : 0);
        bridge_room_publish(b, r->room, doc, len, t);
        STAT_INC(b, republished);
    }
    if (r->reply_topic) {
        char *doc = codec_encode_ok(op->new_id, r->correlation, &len);
        bridge_reply(b, r, doc, len, t);
    }
}

/* Encode msgs[0..n) (oldest first) as a history or catch-up reply of at
 * most limits.max_reply_bytes. A longer page leaves messages to the next
 * one: going back its oldest, next_before then pointing at the oldest
 * kept; catching up its newest, next_after then the newest kept. A page
 * holds at least one message, so paging always moves on; a reply is thus
 * never larger than the bound or one message. NULL when out of memory. */
static char *worker_encode_page(struct bridge *b, const struct request *r,
                                const struct codec_msg *msgs, size_t n,
                                long long next, size_t *len) {
    size_t max = (size_t)__atomic_load_n(&b->max_reply_bytes, __ATOMIC_RELAXED);
    char *(*encode)(const char *, const struct codec_msg *, size_t, long long,
                    const char *, size_t *) =
        r->after >= 0 ? codec_encode_catchup : codec_encode_history;
    char *doc = encode(r->room, msgs, n, next, r->correlation, len);

    while (doc && *len > max && n > 1) {
        size_t keep = (size_t)((double)n * (double)max / (double)*len);
        keep = keep < 1 ? 1 : keep >= n ? n - 1 : keep;
        if (r->after < 0) msgs += n - keep;
        n = keep;
        next = r->after < 0 ? msgs[0].id : msgs[n - 1].id;
        free(doc);
        doc = encode(r->room, msgs, n, next, r->correlation, len);
    }
    return doc;
}

/* A history page: the store gives a page back newest first, a catch-up
 * oldest first; the reply is oldest first. */
static void worker_done_history(struct bridge *b, const struct request *r,
                                const struct store_op *op, struct delivery_ticket *t) {
    size_t len, n = op->nmsgs;
    struct codec_msg *msgs = n ? calloc(n, sizeof(*msgs)) : NULL;
    STAT_INC(b, history);
    if (n && msgs == NULL) {
        bridge_reply_error(b, r, CODEC_ERR_INTERNAL, t);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const struct store_msg *s = &op->msgs[r->after >= 0 ? i : n - 1 - i];
        msgs[i] = (struct codec_msg){ s->id, r->room, s->user, s->text, s->ts,
                                      s->client_msg_id, s->edited };
    }
    long long next = r->after >= 0 ? op->next_after : op->next_before;
    char *doc = worker_encode_page(b, r, msgs, n, next, &len);
    free(msgs);
    bridge_reply(b, r, doc, len, t);
}

static void worker_done_delete(struct bridge *b, const struct request *r, struct delivery_ticket *t) {
    size_t len;
    STAT_INC(b, deleted);
    char *doc = codec_encode_deleted(r->room, r->id, &len);
    bridge_room_publish(b, r->room, doc, len, t);
    if (r->reply_topic) {
        doc = codec_encode_ok(r->id, r->correlation, &len);
        bridge_reply(b, r, doc, len, t);
    }
}

/* An edit: the room hears the message as it now stands (also after a
 * replay, whose first announcement may not have reached the broker; not
 * after a repeated client_msg_id); the author gets the edit time. */
static void worker_done_edit(struct bridge *b, const struct request *r,
                             const struct store_op *op, struct delivery_ticket *t) {
    const struct store_msg *e = &op->edited;
    size_t len;
    if (op->how != STORE_DUPLICATE) {
        struct codec_msg m = { e->id, r->room, r->user, e->text, e->ts, NULL, e->edited };
        if (op->how == STORE_NEW) STAT_INC(b, edited);
        char *doc = codec_encode_msg(&m, &len);
        bridge_room_publish(b, r->room, doc, len, t);
    }
    if (r->reply_topic) {
        char *doc = codec_encode_edited(e->id, e->edited, r->correlation, &len);
        bridge_reply(b, r, doc, len, t);
    }
}

/* A page of the room's members. */
static void worker_done_members(struct bridge *b, const struct request *r,
                                const struct store_op *op, struct delivery_ticket *t) {
    size_t len, n = op->nmembers;
    struct codec_member *m = n ? calloc(n, sizeof(*m)) : NULL;
    STAT_INC(b, history);
    if (n && m == NULL) {
        bridge_reply_error(b, r, CODEC_ERR_INTERNAL, t);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const struct store_member *s = &op->members[i];
        m[i] = (struct codec_member){ s->user, s->last_id, s->read, s->last_seen };
    }
    size_t max = (size_t)__atomic_load_n(&b->max_reply_bytes, __ATOMIC_RELAXED);
    const char *next = op->members_next;
    char *doc = codec_encode_members(r->room, m, n, next, r->correlation, &len);
    while (doc && len > max && n > 1) {      /* cut as history pages are */
        n /= 2;
        next = m[n - 1].user;
        free(doc);
        doc = codec_encode_members(r->room, m, n, next, r->correlation, &len);
    }
    free(m);
    bridge_reply(b, r, doc, len, t);
}

/* Where to cut a page of rooms[0..n) that is too large: about half, but
 * between two rooms of different activity (the cursor is an activity:
 * the next page starts below it, so a run of one activity must not be
 * split); 0 when there is no such place, the page then going as it is. */
static size_t worker_rooms_cut(const struct store_room *rooms, size_t n) {
    for (size_t k = n / 2; k > 0; k--)
        if (rooms[k - 1].activity != rooms[k].activity) return k;
    for (size_t k = n / 2 + 1; k < n; k++)
        if (rooms[k - 1].activity != rooms[k].activity) return k;
    return 0;
}

/* A page of a user's rooms, each with its last message. A page larger
 * than limits.max_reply_bytes is cut, as history pages are: it keeps its
 * first (most recent) rooms and next_before points past them. */
static void worker_done_rooms(struct bridge *b, const struct request *r,
                              const struct store_op *op, struct delivery_ticket *t) {
    size_t len, n = op->nrooms;
    size_t max = (size_t)__atomic_load_n(&b->max_reply_bytes, __ATOMIC_RELAXED);
    struct codec_room *rooms = n ? calloc(n, sizeof(*rooms)) : NULL;
    struct codec_msg *last = n ? calloc(n, sizeof(*last)) : NULL;
    STAT_INC(b, history);
    if (n && (rooms == NULL || last == NULL)) {
        free(rooms);
        free(last);
        bridge_reply_error(b, r, CODEC_ERR_INTERNAL, t);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const struct store_room *s = &op->rooms[i];
        last[i] = (struct codec_msg){ s->last.id, s->room, s->last.user, s->last.text,
                                      s->last.ts, NULL, s->last.edited };
        rooms[i] = (struct codec_room){ s->room, s->last_id, s->read, s->unread,
                                        s->last.id ? &last[i] : NULL };
    }
    long long next = op->next_before;
    char *doc = codec_encode_rooms(r->user, rooms, n, next, r->correlation, &len);
    while (doc && len > max && (n = worker_rooms_cut(op->rooms, n)) > 0) {
        next = op->rooms[n].activity + 1;
        free(doc);
        doc = codec_encode_rooms(r->user, rooms, n, next, r->correlation, &len);
    }
    free(rooms);
    free(last);
    bridge_reply(b, r, doc, len, t);
}

/* Publish a read receipt on the room's stream. */
static void worker_receipt(struct bridge *b, const char *room, const char *user,
                           long long read, struct delivery_ticket *t) {
    size_t len;
    STAT_INC(b, receipts);
    char *doc = codec_encode_receipt(room, user, read, &len);
    bridge_room_publish(b, room, doc, len, t);
}

/* A read marker: the reader gets the marker and the unread count; the
 * room hears a move, at most once a second per user (receipt.h). */
static void worker_done_read(struct bridge *b, const struct request *r,
                             const struct store_op *op, struct delivery_ticket *t) {
    size_t len;
    if (op->moved) {
        STAT_INC(b, read_markers);
        if (receipts_note(b->receipts, r->room, r->user, op->read, clock_wall_ms()))
            worker_receipt(b, r->room, r->user, op->read, t);
    }
    if (r->reply_topic) {
        char *doc = codec_encode_read_ok(op->read, op->unread, r->correlation, &len);
        bridge_reply(b, r, doc, len, t);
    }
}

/* The receipts whose second has passed (receipt.h); returns the ms until
 * the next one is due, or -1. */
static long worker_receipts_due(struct bridge *b) {
    struct receipt due[16];
    size_t n;
    long long now = clock_wall_ms();
    while ((n = receipts_due(b->receipts, now, due, 16)) > 0)
        for (size_t i = 0; i < n; i++)
            worker_receipt(b, due[i].room, due[i].user, due[i].read, NULL);
    return (long)receipts_next(b->receipts, now);
}

/* Answer one record according to what the store did with it. */
static void worker_respond(struct bridge *b, const struct request *r,
                           const struct store_op *op, struct delivery_ticket *t) {
    switch (op->result) {
    case CB_DONE:
        switch (r->kind) {
        case REQ_SEND: worker_done_send(b, r, op, t); break;
        case REQ_HISTORY: worker_done_history(b, r, op, t); break;
        case REQ_EDIT: worker_done_edit(b, r, op, t); break;
        case REQ_READ: worker_done_read(b, r, op, t); break;
        case REQ_MEMBERS: worker_done_members(b, r, op, t); break;
        case REQ_ROOMS: worker_done_rooms(b, r, op, t); break;
        default: worker_done_delete(b, r, t); break;
        }
        break;
    case CB_NOT_FOUND:        /* a read marker past the room's last id */
        bridge_reply_error(b, r, r->kind == REQ_READ ? CODEC_ERR_ID : CODEC_ERR_NOT_FOUND, t);
        break;
    case CB_FORBIDDEN: bridge_reply_error(b, r, CODEC_ERR_FORBIDDEN, t); break;
    default:
        log_error("request in room %s failed: %s", r->room, store_errstr(b->store));
        bridge_reply_error(b, r, CODEC_ERR_INTERNAL, t);
        break;
    }
}

/* What lets the worker go on without waiting for the delivery: a stop,
 * or an append waiting for the journal (Paho's callback then holds Paho's
 * lock, and the delivery cannot move until we store more). The journal
 * wakes the wait when an append begins to wait (bridge_journal_open). */
int worker_hold(void *arg) {
    struct bridge *b = arg;
    return __atomic_load_n(&b->stopping, __ATOMIC_ACQUIRE) ||
           journal_append_waiting(b->journal);
}

/* Decode a batch of journal entries into records and store ops. A record
 * that does not decode is skipped: its checksum held, so only a bridge of
 * another version (the journal's own version check makes that unlikely)
 * or a lying disk can have written it. */
static size_t worker_prepare(struct bridge *b, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = record_decode(b->entries[i].data, b->entries[i].len, &b->recs[k]);
        if (rc != CB_OK) {
            log_error("journal: record %llu %s; skipped", (unsigned long long)b->entries[i].seq,
                      rc == CB_ERR_FORMAT ? "is of a record version this bridge does not read"
                                          : "does not decode");
            continue;
        }
        b->ops[k] = (struct store_op){ .req = &b->recs[k], .seq = b->entries[i].seq,
                                       .fresh = b->entries[i].seq > b->replay_until };
        k++;
    }
    return k;
}

/* The batch's ticket, waiting for memory if need be: publishing without
 * one would let the checkpoint pass the batch before its publishes
 * completed. */
static struct delivery_ticket *worker_ticket(struct bridge *b, uint64_t seq) {
    long wait = BACKOFF_MIN_MS;
    struct delivery_ticket *t;
    while ((t = delivery_ticket_new(b->delivery, seq)) == NULL) {
        log_error("out of memory for a batch's ticket; retrying");
        worker_backoff(&wait);
    }
    return t;
}

/* Store one batch and hand its publishes to the delivery. Returns 0, or -1
 * when it gave up at shutdown (the records stay in the journal). */
static int worker_batch(struct bridge *b, size_t n) {
    size_t k = worker_prepare(b, n);
    uint64_t t0 = clock_mono_us();
    int done = k == 0 || worker_exec(b, b->ops, k);
    stats_hist_add(&b->store_lat, clock_mono_us() - t0);
    if (!done) {
        for (size_t i = 0; i < k; i++) store_op_clear(&b->ops[i]);
        return -1;
    }
    struct delivery_ticket *t = worker_ticket(b, b->entries[n - 1].seq);
    delivery_defer(b->delivery, 1);
    for (size_t i = 0; i < k; i++) {
        worker_respond(b, &b->recs[i], &b->ops[i], t);
        store_op_clear(&b->ops[i]);
    }
    delivery_defer(b->delivery, 0);
    journal_stored(b->journal, b->entries[n - 1].pos);
    delivery_ticket_release(b->delivery, t);     /* the worker's own hold */
    __atomic_store_n(&b->last_seq, b->entries[n - 1].seq, __ATOMIC_RELAXED);
    return 0;
}

/* The store worker: journal records in batches, one pipeline per batch.
 * When stopping, it ends once it has reached the record that was last
 * when the stop began, or at the deadline. */
void *worker_main(void *arg) {
    struct bridge *b = arg;
    size_t max = (size_t)b->cfg->batch_size;
    long wait = BACKOFF_MIN_MS;
    for (;;) {
        int stopping = __atomic_load_n(&b->stopping, __ATOMIC_ACQUIRE);
        if (!worker_redis_up(b) && !stopping) {   /* readiness needs Redis too */
            worker_backoff(&wait);
            continue;
        }
        wait = BACKOFF_MIN_MS;
        int idle = stopping ? 20 : (int)foreign_step(b, b->foreign);
        long receipt_in = worker_receipts_due(b);
        if (receipt_in >= 0 && receipt_in < idle) idle = (int)receipt_in;
        size_t n = journal_read(b->journal, b->entries, max, idle);
        if (n == 0) {
            delivery_checkpoint(b->delivery);
            if (stopping) break;
            continue;
        }
        if (worker_batch(b, n) < 0 || (stopping && b->entries[n - 1].seq >= b->stop_seq))
            break;
        delivery_wait_room(b->delivery, worker_hold, b);
    }
    store_disconnect(b->store);
    return NULL;
}

