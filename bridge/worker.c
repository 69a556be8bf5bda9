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
        if (worker_redis_up(b) && store_exec(b->store, ops, n) == CB_OK &&
            !worker_unfinished(ops, n))
            break;
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
                               r->client_msg_id };
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

/* Encode msgs[0..n) (oldest first) as a history reply of at most
 * limits.max_reply_bytes: a longer page leaves its oldest messages to the
 * next one, next_before then pointing at the oldest message kept. A page
 * holds at least one message, so paging always moves on; a reply is thus
 * never larger than the bound or one message. NULL when out of memory. */
static char *worker_encode_page(struct bridge *b, const struct request *r,
                                const struct codec_msg *msgs, size_t n,
                                long long next_before, size_t *len) {
    size_t max = (size_t)__atomic_load_n(&b->max_reply_bytes, __ATOMIC_RELAXED);
    char *doc = codec_encode_history(r->room, msgs, n, next_before, r->correlation, len);

    while (doc && *len > max && n > 1) {
        size_t keep = (size_t)((double)n * (double)max / (double)*len);
        keep = keep < 1 ? 1 : keep >= n ? n - 1 : keep;
        msgs += n - keep;
        n = keep;
        next_before = msgs[0].id;
        free(doc);
        doc = codec_encode_history(r->room, msgs, n, next_before, r->correlation, len);
    }
    return doc;
}

/* A history page: the store gives newest first, the reply is oldest first. */
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
        const struct store_msg *s = &op->msgs[n - 1 - i];
        msgs[i] = (struct codec_msg){ s->id, r->room, s->user, s->text, s->ts,
                                      s->client_msg_id };
    }
    char *doc = worker_encode_page(b, r, msgs, n, op->next_before, &len);
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

/* Answer one record according to what the store did with it. */
static void worker_respond(struct bridge *b, const struct request *r,
                           const struct store_op *op, struct delivery_ticket *t) {
    switch (op->result) {
    case CB_DONE:
        if (r->kind == REQ_SEND) worker_done_send(b, r, op, t);
        else if (r->kind == REQ_HISTORY) worker_done_history(b, r, op, t);
        else worker_done_delete(b, r, t);
        break;
    case CB_NOT_FOUND: bridge_reply_error(b, r, CODEC_ERR_NOT_FOUND, t); break;
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
        b->ops[k] = (struct store_op){ .req = &b->recs[k], .seq = b->entries[i].seq };
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
    for (size_t i = 0; i < k; i++) {
        worker_respond(b, &b->recs[i], &b->ops[i], t);
        store_op_clear(&b->ops[i]);
    }
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

