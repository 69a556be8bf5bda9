/* bridge.c -- wiring: MQTT in, journal, store worker, delivery, MQTT out.
 *
 *   Paho's thread   message -> route, decode, validate -> journal_append
 *                   (refusals are answered at once; nothing waits on Redis)
 *   store worker    journal_read -> one pipelined batch -> delivery
 *                   -> journal_stored; the delivery moves the checkpoint
 *                   once the broker has acknowledged a batch's publishes
 *   delivery        its own thread: queue -> Paho, in order (delivery.h) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge.h"
#include "clock.h"
#include "delivery.h"
#include "codec.h"
#include "journal.h"
#include "log.h"
#include "mqtt.h"
#include "peers.h"
#include "record.h"
#include "stats.h"
#include "status.h"
#include "store.h"
#include "topic.h"

#define TOPIC_MAX 512
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct bridge {
    const struct config *cfg;
    struct codec_limits limits;
    int max_reply_bytes;           /* limits.max_reply_bytes (live) */
    struct mqtt *mqtt;
    struct store *store;
    struct journal *journal;      /* Paho callback -> store worker */
    struct delivery *delivery;    /* store worker -> broker (delivery.h) */
    pthread_t worker;
    int worker_started, delivery_started;
    int stopping;                 /* atomic */
    unsigned long long stop_seq;  /* the worker stops after this record */
    struct timespec give_up_at;   /* worker stops retrying Redis after it */
    unsigned long publish_oom;    /* publishes lost to out of memory */
    struct record_buf recbuf;     /* Paho's thread only */
    struct log_ratelimit reject_rl, publish_rl, journal_rl;
    struct journal_entry *entries;/* the worker's batch: records ... */
    struct request *recs;          /* ... decoded ... */
    struct store_op *ops;         /* ... and their store operations */
    int redis_tried;              /* worker only: a connect was attempted */
    int journal_warned;           /* the 80% warning is up */
    int status_interval;          /* seconds, live */
    char status_topic[TOPIC_MAX];
    char peer_filter[TOPIC_MAX];  /* "<prefix>/$bridge/+/status" or "" */
    char instance[96];            /* "host:pid:start", in the status doc */
    struct peers peers;           /* Paho's thread only */
    time_t started, next_status;
    struct stats_hist store_lat;  /* per batch, Redis round trip */
    struct stats_hist e2e_lat;    /* per message, arrival to outbox */
    struct stats_snapshot st;       /* counters updated atomically */
};

#define STAT_INC(b, field) __atomic_add_fetch(&(b)->st.field, 1, __ATOMIC_RELAXED)

/* ==================== Publishing ==================== */

/* Hand one document to the delivery; never waits on Paho, so it is safe
 * on Paho's callback thread and on the store worker alike (delivery.h).
 * Takes ownership of doc. The ticket, if any, counts it. */
static void bridge_publish(struct bridge *b, const char *topic, char *doc, size_t len,
                           const struct request *r, struct delivery_ticket *t) {
    int rc = delivery_put(b->delivery, t, topic, doc, len, r ? r->corr : NULL,
                          r ? r->corr_len : 0, 0);
    if (rc == CB_OK) return;
    __atomic_add_fetch(&b->publish_oom, 1, __ATOMIC_RELAXED);
    if (rc == CB_ERR_OOM) log_error("out of memory for a publish to %s", topic);
}

/* The delivery's publish function: one message to Paho. Paho's "not now"
 * (disconnected with its buffer full) is CB_ERR_FULL, tried again. */
static int bridge_mqtt_publish(void *arg, const struct delivery_msg *m, struct cb_done *done) {
    struct bridge *b = arg;
    int rc = mqtt_publish(b->mqtt, m->topic, m->payload, m->len, b->cfg->mqtt_qos,
                          m->retain, m->corr, m->corr_len, done);
    if (rc == 0) return CB_OK;
    if (mqtt_retryable(rc)) return CB_ERR_FULL;
    if (log_ratelimit_ok(&b->publish_rl))
        log_error("mqtt: publish to %s failed: %s", m->topic, mqtt_strerror(rc));
    return CB_ERR;
}

/* The delivery's checkpoint function: persist it, and let the replay
 * guard forget what can no longer be replayed. */
static void bridge_on_checkpoint(void *arg, uint64_t seq) {
    struct bridge *b = arg;
    char why[256];
    if (journal_checkpoint(b->journal, seq) < 0 && log_ratelimit_ok(&b->journal_rl)) {
        snprintf(why, sizeof(why), "%s", journal_errstr(b->journal));
        log_error("%s", why);
    }
    store_set_checkpoint(b->store, seq);
}

/* Send a reply to the request's reply topic, if it named one. */
static void bridge_reply(struct bridge *b, const struct request *r, char *doc,
                         size_t len, struct delivery_ticket *t) {
    if (r->reply_topic == NULL) {
        free(doc);
        return;
    }
    STAT_INC(b, replies);
    bridge_publish(b, r->reply_topic, doc, len, r, t);
}

static void bridge_reply_error(struct bridge *b, const struct request *r, int err,
                               struct delivery_ticket *t) {
    size_t len;
    char *doc = codec_encode_error(err, r->correlation, &len);
    bridge_reply(b, r, doc, len, t);
}

/* Publish on the room's msgs topic. */
static void bridge_room_publish(struct bridge *b, const char *room, char *doc,
                                size_t len, struct delivery_ticket *t) {
    char topic[TOPIC_MAX];
    if (topic_build(topic, sizeof(topic), b->cfg->topic_prefix, room, "msgs") < 0) {
        free(doc);
        return;
    }
    bridge_publish(b, topic, doc, len, NULL, t);
}

/* ==================== Inbound (Paho's thread) ==================== */

/* Log a refused request, rate-limited: input may come as a flood. */
static void bridge_log_reject(struct bridge *b, const struct mqtt_in *in, int err) {
    const char *why = err >= 0 ? codec_err_text(err) : "reply topic refused";
    if (err >= 0 && err < CODEC_ERR_COUNT) STAT_INC(b, rejected_by[err]);
    else STAT_INC(b, reply_refused);
    STAT_INC(b, rejected);
    if (log_ratelimit_ok(&b->reject_rl))
        log_warn("rejected message on %.*s: %s",
                 (int)(in->topic_len > 128 ? 128 : in->topic_len), in->topic, why);
}

/* Copy n bytes into a new NUL-terminated string; NULL when out of memory. */
static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d == NULL) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Take the reply address: the MQTT 5 Response Topic and Correlation Data
 * when present, else the JSON "reply_to" of the 3.1.1 fallback. *topic is
 * malloc'd. Returns 0, or -1 when the topic is not one the bridge may
 * publish to (the request is then dropped without an answer). */
static int bridge_reply_address(struct bridge *b, const struct mqtt_in *in,
                                const struct codec_req *req, struct request *r,
                                char **topic) {
    const char *prefix = b->cfg->topic_prefix;
    *topic = NULL;
    if (in->response_topic) {
        if (!topic_reply_allowed(prefix, in->response_topic, in->response_topic_len))
            return -1;
        *topic = dup_bytes(in->response_topic, in->response_topic_len);
        r->corr = in->correlation;
        r->corr_len = in->correlation_len;
    } else if (req->reply_to) {
        if (!topic_reply_allowed(prefix, req->reply_to, strlen(req->reply_to)))
            return -1;
        *topic = strdup(req->reply_to);
    }
    r->reply_topic = *topic;
    r->correlation = req->correlation;
    return 0;
}

/* Route and decode one message into req and r. Returns CODEC_OK or the
 * error to answer with. */
static int bridge_decode(struct bridge *b, const struct mqtt_in *in, char *room,
                         struct codec_req *req, struct request *r) {
    struct codec_limits lim = b->limits;
    char sender[NAME_MAX_BYTES + 1] = "";
    int kind = b->cfg->identity == CONFIG_IDENTITY_TOPIC
        ? topic_parse_sender(b->cfg->topic_prefix, in->topic, in->topic_len, room, sender)
        : topic_parse(b->cfg->topic_prefix, in->topic, in->topic_len, room);
    if (sender[0]) lim.sender = sender;
    int err = codec_decode(kind > 0 ? kind : REQ_SEND, in->payload,
                           in->payload_len, &lim, req);
    if (kind == TOPIC_ERR_ROOM) return CODEC_ERR_ROOM;
    if (kind == TOPIC_ERR_USER) return CODEC_ERR_USER;
    if (kind < 0) return CODEC_ERR_TOPIC;
    *r = (struct request){ .kind = kind, .limit = req->limit, .ts = clock_wall_ms(),
        .id = req->id, .before = req->before, .room = room, .user = req->user,
        .client_msg_id = req->client_msg_id, .text = req->text,
        .text_len = req->text_len };
    if (err == CODEC_OK && kind == REQ_HISTORY && in->response_topic == NULL &&
        req->reply_to == NULL)
        return CODEC_ERR_REPLY_TO;    /* a history nobody will read */
    return err;
}

/* Append a record to the journal. Only a closed journal (shutting down)
 * makes it give up; a failing disk is retried, holding the broker back,
 * since returning would acknowledge a message that is nowhere. */
static void bridge_journal(struct bridge *b, const struct mqtt_in *in, const struct request *r) {
    if (record_encode(&b->recbuf, r) < 0) {
        bridge_log_reject(b, in, CODEC_ERR_INTERNAL);
        return;
    }
    for (;;) {
        if (journal_append(b->journal, b->recbuf.data, b->recbuf.len) > 0) return;
        if (__atomic_load_n(&b->stopping, __ATOMIC_ACQUIRE) > 1) break;
        if (log_ratelimit_ok(&b->journal_rl))
            log_error("%s; retrying", journal_errstr(b->journal));
        clock_sleep_ms(100);
    }
    STAT_INC(b, lost);
    log_error("journal closed: a message on %.*s was not kept",
              (int)(in->topic_len > 128 ? 128 : in->topic_len), in->topic);
}

/* 1 when topic is the status topic of a bridge (peer_filter's shape). */
static int bridge_is_peer_topic(const struct bridge *b, const struct mqtt_in *in) {
    size_t head = strlen(b->peer_filter) - strlen("+/status");
    return b->peer_filter[0] && in->topic_len > head + 7 &&
           memcmp(in->topic, b->peer_filter, head) == 0 &&
           memcmp(in->topic + in->topic_len - 7, "/status", 7) == 0;
}

/* 1 when the topic is a request's, whatever its payload: such a topic is
 * never taken for a status document (a room may be called "$bridge", and
 * in identity "topic" a user "status"). */
static int bridge_is_request_topic(const struct bridge *b, const struct mqtt_in *in) {
    char room[NAME_MAX_BYTES + 1], user[NAME_MAX_BYTES + 1];
    int kind = b->cfg->identity == CONFIG_IDENTITY_TOPIC
        ? topic_parse_sender(b->cfg->topic_prefix, in->topic, in->topic_len, room, user)
        : topic_parse(b->cfg->topic_prefix, in->topic, in->topic_len, room);
    return kind != TOPIC_ERR_FOREIGN;
}

/* Another bridge's status document: warn, once per bridge, when it would
 * store what we store too or shares our client id (peers.h). */
static void bridge_on_peer(struct bridge *b, const struct mqtt_in *in) {
    char who[80], why[300];
    int verdict = peers_judge(&b->peers, in->payload, in->payload_len, who, sizeof(who));
    if (verdict <= PEERS_FINE) return;
    peers_explain(verdict, who, b->cfg->shared_group, why, sizeof(why));
    log_warn("%s", why);
}

static void bridge_on_message(void *arg, const struct mqtt_in *in) {
    struct bridge *b = arg;
    struct codec_req req;
    struct request r = { 0 };
    char room[NAME_MAX_BYTES + 1] = "", *reply = NULL;
    if (bridge_is_peer_topic(b, in) && !bridge_is_request_topic(b, in)) {
        bridge_on_peer(b, in);
        return;
    }
    STAT_INC(b, received);
    int err = bridge_decode(b, in, room, &req, &r);
    if (bridge_reply_address(b, in, &req, &r, &reply) < 0) {
        bridge_log_reject(b, in, -1);
    } else if (err != CODEC_OK) {
        bridge_log_reject(b, in, err);
        bridge_reply_error(b, &r, err, NULL);
    } else {
        bridge_journal(b, in, &r);
    }
    free(reply);
    codec_req_free(&req);
}

/* ==================== Store worker ==================== */

/* 1 once stopping and past the stop's deadline for Redis. */
static int bridge_giving_up(struct bridge *b) {
    return __atomic_load_n(&b->stopping, __ATOMIC_ACQUIRE) && clock_passed(&b->give_up_at);
}

/* Wait before the next attempt: exponential, capped, with jitter. */
static void backoff(long *ms) {
    clock_sleep_ms(*ms / 2 + rand() % (*ms / 2 + 1));
    *ms = *ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *ms * 2;
}

/* 1 when some op still needs Redis (never ran, or Redis said "later"). */
static int ops_unfinished(struct store_op *ops, size_t n) {
    int left = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].result == CB_RETRY) ops[i].result = CB_PENDING;
        if (ops[i].result == CB_PENDING) left = 1;
    }
    return left;
}

/* Connect to Redis when not connected. The connection state is published
 * for bridge_stats; a change is logged once, not at every attempt. */
static int bridge_redis_up(struct bridge *b) {
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
static int bridge_exec(struct bridge *b, struct store_op *ops, size_t n) {
    long wait = BACKOFF_MIN_MS;
    int retries = 0;
    while (ops_unfinished(ops, n) && !bridge_giving_up(b)) {
        if (bridge_redis_up(b) && store_exec(b->store, ops, n) == CB_OK &&
            !ops_unfinished(ops, n))
            break;
        if (!store_connected(b->store))
            __atomic_store_n(&b->st.redis_connected, 0, __ATOMIC_RELAXED);
        if (retries++ == 0) log_warn("%s; retrying", store_errstr(b->store));
        STAT_INC(b, redis_retries);
        backoff(&wait);
    }
    if (retries && !ops_unfinished(ops, n))
        log_info("redis: batch applied after %d retries", retries);
    return !ops_unfinished(ops, n);
}

/* A stored message: republish it to the room, then answer the sender. A
 * record replayed after a restart is republished again (its first
 * republish may not have reached the broker); a client's repeat of a
 * client_msg_id only gets the original id back. */
static void bridge_done_send(struct bridge *b, const struct request *r,
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
static char *bridge_encode_page(struct bridge *b, const struct request *r,
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
static void bridge_done_history(struct bridge *b, const struct request *r,
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
    char *doc = bridge_encode_page(b, r, msgs, n, op->next_before, &len);
    free(msgs);
    bridge_reply(b, r, doc, len, t);
}

static void bridge_done_delete(struct bridge *b, const struct request *r, struct delivery_ticket *t) {
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
static void bridge_respond(struct bridge *b, const struct request *r,
                           const struct store_op *op, struct delivery_ticket *t) {
    switch (op->result) {
    case CB_DONE:
        if (r->kind == REQ_SEND) bridge_done_send(b, r, op, t);
        else if (r->kind == REQ_HISTORY) bridge_done_history(b, r, op, t);
        else bridge_done_delete(b, r, t);
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
static int bridge_hold(void *arg) {
    struct bridge *b = arg;
    return __atomic_load_n(&b->stopping, __ATOMIC_ACQUIRE) ||
           journal_append_waiting(b->journal);
}

/* Decode a batch of journal entries into records and store ops. A record
 * that does not decode (it cannot be, unless the disk lies) is skipped. */
static size_t bridge_prepare(struct bridge *b, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (record_decode(b->entries[i].data, b->entries[i].len, &b->recs[k]) < 0) {
            log_error("journal: record %llu does not decode; skipped",
                      (unsigned long long)b->entries[i].seq);
            continue;
        }
        b->ops[k] = (struct store_op){ .req = &b->recs[k], .seq = b->entries[i].seq };
        k++;
    }
    return k;
}

/* Store one batch and hand its publishes to the delivery. Returns 0, or -1
 * when it gave up at shutdown (the records stay in the journal). */
static int bridge_batch(struct bridge *b, size_t n) {
    size_t k = bridge_prepare(b, n);
    uint64_t t0 = clock_mono_us();
    int done = k == 0 || bridge_exec(b, b->ops, k);
    stats_hist_add(&b->store_lat, clock_mono_us() - t0);
    if (!done) {
        for (size_t i = 0; i < k; i++) store_op_clear(&b->ops[i]);
        return -1;
    }
    struct delivery_ticket *t = delivery_ticket_new(b->delivery, b->entries[n - 1].seq);
    for (size_t i = 0; i < k; i++) {
        bridge_respond(b, &b->recs[i], &b->ops[i], t);
        store_op_clear(&b->ops[i]);
    }
    journal_stored(b->journal, b->entries[n - 1].pos);
    delivery_ticket_release(b->delivery, t);     /* the worker's own hold */
    return 0;
}

/* The store worker: journal records in batches, one pipeline per batch.
 * When stopping, it ends once it has reached the record that was last
 * when the stop began, or at the deadline. */
static void *bridge_worker(void *arg) {
    struct bridge *b = arg;
    size_t max = (size_t)b->cfg->batch_size;
    long wait = BACKOFF_MIN_MS;
    for (;;) {
        int stopping = __atomic_load_n(&b->stopping, __ATOMIC_ACQUIRE);
        if (!bridge_redis_up(b) && !stopping) {   /* readiness needs Redis too */
            backoff(&wait);
            continue;
        }
        wait = BACKOFF_MIN_MS;
        size_t n = journal_read(b->journal, b->entries, max, stopping ? 20 : 200);
        if (n == 0) {
            delivery_checkpoint(b->delivery);
            if (stopping) break;
            continue;
        }
        if (bridge_batch(b, n) < 0 || (stopping && b->entries[n - 1].seq >= b->stop_seq))
            break;
        delivery_wait_room(b->delivery, bridge_hold, b);
    }
    store_disconnect(b->store);
    return NULL;
}

/* ==================== Lifecycle ==================== */

/* The subscription filter of one request kind, through the shared group
 * when there is one ("$share/<group>/chat/+/send"): the broker then gives
 * each message to one bridge of the group. */
static int bridge_filter(const struct config *c,
                         int (*filter)(char *, size_t, const char *, int),
                         char *buf, int kind) {
    char plain[TOPIC_MAX];
    if (filter(plain, TOPIC_MAX, c->topic_prefix, kind) < 0) return -1;
    int n = c->shared_group
        ? snprintf(buf, TOPIC_MAX, "$share/%s/%s", c->shared_group, plain)
        : snprintf(buf, TOPIC_MAX, "%s", plain);
    return n > 0 && n < TOPIC_MAX ? n : -1;
}

static struct mqtt *bridge_mqtt_new(struct bridge *b, char *err, size_t errlen) {
    const struct config *c = b->cfg;
    char filters[3][TOPIC_MAX];
    const char *fp[4] = { filters[0], filters[1], filters[2], b->peer_filter };
    const int kinds[3] = { REQ_SEND, REQ_HISTORY, REQ_DELETE };
    int (*filter)(char *, size_t, const char *, int) =
        c->identity == CONFIG_IDENTITY_TOPIC ? topic_filter_sender : topic_filter;
    for (int i = 0; i < 3; i++) {
        if (bridge_filter(c, filter, filters[i], kinds[i]) < 0) {
            snprintf(err, errlen, "topic prefix too long");
            return NULL;
        }
    }
    size_t len;
    char *will = status_offline_doc(c, &len);
    struct mqtt_opts o = {
        .uri = c->mqtt_uri, .client_id = c->mqtt_client_id,
        .username = c->mqtt_username, .password = c->mqtt_password,
        .version = c->mqtt_version, .keepalive = c->mqtt_keepalive,
        .session_expiry = c->mqtt_session_expiry,
        .connect_timeout = c->mqtt_connect_timeout, .qos = c->mqtt_qos,
        .max_buffered = c->mqtt_max_buffered, .filters = fp,
        .nfilters = b->peer_filter[0] ? 4 : 3, .nwatch = b->peer_filter[0] ? 1 : 0,
        .will_topic = will ? b->status_topic : NULL, .will_payload = will,
        .tls_ca_file = c->tls_ca_file, .tls_ca_dir = c->tls_ca_dir,
        .tls_cert_file = c->tls_cert_file, .tls_key_file = c->tls_key_file,
        .tls_verify_hostname = c->tls_verify_hostname,
    };
    struct mqtt *m = mqtt_new(&o, bridge_on_message, b, err, errlen);
    free(will);
    return m;
}

/* The status topic: mqtt.status_topic, else <prefix>/$bridge/<client_id>/status;
 * with the latter, the other bridges' status topics are read too (peers.h).
 * The instance tag tells this process from another with the same id. */
static int bridge_status_topic(struct bridge *b) {
    const struct config *c = b->cfg;
    char host[64] = "?";
    int own = c->status_topic && c->status_topic[0];
    int n = own ? snprintf(b->status_topic, TOPIC_MAX, "%s", c->status_topic)
                : snprintf(b->status_topic, TOPIC_MAX, "%s/$bridge/%s/status",
                           c->topic_prefix, c->mqtt_client_id);
    if (n <= 0 || n >= TOPIC_MAX) return -1;
    if (!own && c->mqtt_status_interval > 0)
        snprintf(b->peer_filter, TOPIC_MAX, "%s/$bridge/+/status", c->topic_prefix);
    gethostname(host, sizeof(host) - 1);
    snprintf(b->instance, sizeof(b->instance), "%s:%ld:%lld", host, (long)getpid(),
             (long long)b->started);
    peers_init(&b->peers, c->mqtt_client_id, c->shared_group, b->instance);
    return 0;
}

static struct store *bridge_store_new(const struct config *c) {
    struct store_opts o = {
        .host = c->redis_host, .port = c->redis_port,
        .unix_socket = c->redis_unix_socket, .username = c->redis_username,
        .cluster = c->redis_cluster, .cluster_nodes = c->redis_cluster_nodes,
        .wait_replicas = c->redis_wait_replicas,
        .wait_timeout_ms = c->redis_wait_timeout_ms,
        .password = c->redis_password, .key_prefix = c->key_prefix,
        .bridge_id = c->mqtt_client_id,
        .dedup_window_ms = (long long)c->dedup_window * 1000,
        .retain_count = c->retain_count,
        .retain_ms = (long long)c->retain_age * 1000,
        .timeout_ms = c->redis_timeout_ms,
    };
    return store_new(&o);
}

/* The journal directory: journal.dir, else $STATE_DIRECTORY/journal (the
 * first of systemd's list), else ./state/journal. */
static void journal_dir(const struct config *c, char *buf, size_t size) {
    const char *state = getenv("STATE_DIRECTORY");
    if (c->journal_dir && c->journal_dir[0])
        snprintf(buf, size, "%s", c->journal_dir);
    else if (state && state[0])
        snprintf(buf, size, "%.*s/journal", (int)strcspn(state, ":"), state);
    else
        snprintf(buf, size, "state/journal");
}

/* Open the journal and say what recovery found. */
static struct journal *bridge_journal_open(const struct config *c, char *err, size_t errlen) {
    char dir[512];
    struct journal_recovery rec;
    journal_dir(c, dir, sizeof(dir));
    struct journal_opts o = { dir, c->journal_fsync, c->journal_fsync_ms,
        (uint64_t)c->journal_max_bytes, (uint64_t)c->journal_segment_bytes };
    struct journal *j = journal_open(&o, &rec, err, errlen);
    if (j == NULL) return NULL;
    if (rec.cut_bytes)
        log_warn("journal: cut %llu bytes of a torn or corrupt record from %s",
                 (unsigned long long)rec.cut_bytes, rec.cut_file);
    log_info("journal %s: %llu records in %d segments, %llu to replay", dir,
             (unsigned long long)rec.records, rec.segments,
             (unsigned long long)rec.pending);
    return j;
}

/* The per-batch arrays of the worker. */
static int bridge_alloc_batch(struct bridge *b) {
    size_t n = (size_t)b->cfg->batch_size;
    b->entries = calloc(n, sizeof(*b->entries));
    b->recs = calloc(n, sizeof(*b->recs));
    b->ops = calloc(n, sizeof(*b->ops));
    return b->entries && b->recs && b->ops ? 0 : -1;
}

/* The delivery: at most mqtt.max_inflight publishes with Paho, and the
 * worker waits while more than four batches' worth are queued. */
static struct delivery *bridge_delivery_new(struct bridge *b) {
    struct delivery_opts o = {
        .window = b->cfg->mqtt_max_inflight,
        .queue_limit = 4 * (size_t)b->cfg->batch_size,
        .publish = bridge_mqtt_publish, .checkpoint = bridge_on_checkpoint, .arg = b,
    };
    return delivery_new(&o);
}

struct bridge *bridge_new(const struct config *cfg, char *err, size_t errlen) {
    struct bridge *b = calloc(1, sizeof(*b));
    snprintf(err, errlen, "out of memory");
    if (b == NULL) return NULL;
    b->cfg = cfg;
    b->limits = (struct codec_limits){ (size_t)cfg->max_text_bytes,
                                       cfg->history_default, cfg->history_max, NULL };
    b->reject_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 10);
    b->publish_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 10);
    b->journal_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5, 10);
    b->status_interval = cfg->mqtt_status_interval;
    b->max_reply_bytes = cfg->max_reply_bytes;
    b->started = time(NULL);
    if (bridge_status_topic(b) < 0) {
        snprintf(err, errlen, "status topic too long");
        bridge_free(b);
        return NULL;
    }
    b->delivery = bridge_delivery_new(b);
    b->store = bridge_store_new(cfg);
    if (b->delivery && b->store && bridge_alloc_batch(b) == 0 &&
        (b->journal = bridge_journal_open(cfg, err, errlen)) != NULL)
        b->mqtt = bridge_mqtt_new(b, err, errlen);
    if (b->mqtt == NULL) {
        bridge_free(b);
        return NULL;
    }
    return b;
}

int bridge_start(struct bridge *b, char *err, size_t errlen) {
    if (delivery_start(b->delivery) != CB_OK) {
        snprintf(err, errlen, "cannot start the delivery thread");
        return -1;
    }
    b->delivery_started = 1;
    if (pthread_create(&b->worker, NULL, bridge_worker, b) != 0) {
        snprintf(err, errlen, "cannot start the store worker");
        return -1;
    }
    b->worker_started = 1;
    mqtt_start(b->mqtt);
    return 0;
}

/* Warn once when the backlog passes 80% of the journal's bound. */
static void bridge_watch_journal(struct bridge *b) {
    struct journal_stats js;
    journal_get_stats(b->journal, &js);
    int high = js.unstored_bytes * 5 > js.max_bytes * 4;
    if (high && !b->journal_warned)
        log_warn("journal: %llu of %llu bytes not yet stored in Redis (over 80%%)",
                 (unsigned long long)js.unstored_bytes, (unsigned long long)js.max_bytes);
    else if (!high && b->journal_warned && js.unstored_bytes * 2 < js.max_bytes)
        log_info("journal: backlog back under 50%%");
    else
        return;
    b->journal_warned = high;
}

/* Publish the status document, retained, every status_interval seconds
 * (and once as soon as the session is up). */
static void bridge_publish_status(struct bridge *b, int online) {
    struct stats_snapshot st;
    size_t len;
    bridge_stats(b, &st);
    char *doc = status_doc(b->cfg, &st, online, &len);
    if (doc) delivery_put(b->delivery, NULL, b->status_topic, doc, len, NULL, 0, 1);
}

void bridge_tick(struct bridge *b) {
    time_t now = time(NULL);
    int interval = __atomic_load_n(&b->status_interval, __ATOMIC_RELAXED);
    mqtt_tick(b->mqtt);
    journal_tick(b->journal);
    delivery_checkpoint(b->delivery);
    bridge_watch_journal(b);
    if (interval > 0 && now >= b->next_status && mqtt_ready(b->mqtt)) {
        b->next_status = now + interval;
        bridge_publish_status(b, 1);
    }
}

void bridge_set_live(struct bridge *b, const struct config *cfg) {
    __atomic_store_n(&b->limits.max_text_bytes, (size_t)cfg->max_text_bytes, __ATOMIC_RELAXED);
    __atomic_store_n(&b->limits.history_default, cfg->history_default, __ATOMIC_RELAXED);
    __atomic_store_n(&b->limits.history_max, cfg->history_max, __ATOMIC_RELAXED);
    __atomic_store_n(&b->status_interval, cfg->mqtt_status_interval, __ATOMIC_RELAXED);
    __atomic_store_n(&b->max_reply_bytes, cfg->max_reply_bytes, __ATOMIC_RELAXED);
    b->next_status = 0;
}

/* Stop in order: the worker stores what the journal held when the stop
 * began (giving up on Redis after timeout_ms), the delivery hands the
 * last publishes to Paho and the broker acknowledges them (2 s at most),
 * the checkpoint moves, then the session closes. Messages arriving
 * meanwhile are still journaled (the bound is lifted so the callback can
 * always return); what was not stored, or not acknowledged, stays in the
 * journal for the next start. */
void bridge_stop(struct bridge *b, int timeout_ms) {
    struct journal_stats js;
    struct delivery_stats ds;
    journal_get_stats(b->journal, &js);
    b->stop_seq = js.last_seq;
    b->give_up_at = clock_deadline(timeout_ms);
    __atomic_store_n(&b->stopping, 1, __ATOMIC_RELEASE);
    delivery_wake(b->delivery);
    journal_unbound(b->journal);
    if (b->worker_started) pthread_join(b->worker, NULL);
    if (b->delivery_started && b->status_interval > 0) bridge_publish_status(b, 0);
    if (b->delivery_started) delivery_close(b->delivery, 2000);
    b->worker_started = b->delivery_started = 0;
    delivery_checkpoint(b->delivery);
    mqtt_stop(b->mqtt, 1000);
    __atomic_store_n(&b->stopping, 2, __ATOMIC_RELEASE);
    journal_close(b->journal);
    journal_get_stats(b->journal, &js);
    delivery_get_stats(b->delivery, &ds);
    if (ds.left)
        log_warn("mqtt: %llu publishes not acknowledged by the broker; they are "
                 "published again at the next start", ds.left);
    log_info("stopped: %lu stored, %lu duplicates, %lu rejected; %llu bytes of "
             "journal kept for the next start", b->st.stored, b->st.duplicates,
             b->st.rejected, (unsigned long long)js.unstored_bytes);
}

void bridge_free(struct bridge *b) {
    if (b == NULL) return;
    if (b->worker_started || b->delivery_started) bridge_stop(b, 0);
    mqtt_free(b->mqtt);               /* first: no completion comes later */
    store_free(b->store);
    journal_free(b->journal);
    delivery_free(b->delivery);
    record_buf_free(&b->recbuf);
    free(b->entries);
    free(b->recs);
    free(b->ops);
    free(b);
}

void bridge_stats(struct bridge *b, struct stats_snapshot *out) {
    struct journal_stats js;
#define LOAD(field) out->field = __atomic_load_n(&b->st.field, __ATOMIC_RELAXED)
    LOAD(received); LOAD(stored); LOAD(replayed); LOAD(duplicates);
    LOAD(republished); LOAD(replies); LOAD(rejected); LOAD(history);
    LOAD(deleted); LOAD(redis_retries); LOAD(lost);
    LOAD(redis_connected); LOAD(reply_refused);
    for (int i = 0; i < CODEC_ERR_COUNT; i++) LOAD(rejected_by[i]);
#undef LOAD
    static const double p[3] = { 0.5, 0.99, 1.0 };
    stats_hist_percentiles(&b->store_lat, p, out->store_ms, 3);
    stats_hist_percentiles(&b->e2e_lat, p, out->e2e_ms, 3);
    out->uptime_s = (long)(time(NULL) - b->started);
    journal_get_stats(b->journal, &js);
    out->journal_bytes = js.disk_bytes;
    out->journal_unstored = js.unstored_bytes;
    out->journal_max = js.max_bytes;
    struct delivery_stats ds;
    delivery_get_stats(b->delivery, &ds);
    out->outbox = ds.queued;
    out->publish_errors = ds.refused + ds.left +
                          __atomic_load_n(&b->publish_oom, __ATOMIC_RELAXED);
    out->mqtt_ready = mqtt_ready(b->mqtt);
    memcpy(out->instance, b->instance, sizeof(out->instance));
    struct store_counters sc;
    store_counters(b->store, &sc);
    out->redis_moved = sc.moved;
    out->redis_ask = sc.ask;
    out->redis_wait_short = sc.wait_short;
}
