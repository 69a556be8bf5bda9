/* bridge.c -- wiring: MQTT in, queue, store worker, MQTT out (bridge.h). */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge.h"
#include "codec.h"
#include "log.h"
#include "mqtt.h"
#include "outbox.h"
#include "queue.h"
#include "store.h"
#include "topic.h"

#define TOPIC_MAX 512
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* One accepted request on its way through the queue. */
struct job {
    struct codec_req req;
    char room[NAME_MAX_BYTES + 1];
    long long ts;                 /* arrival, Unix ms */
    char *reply_topic;            /* NULL: no reply wanted */
    char *corr;                   /* MQTT 5 correlation data, NULL if none */
    size_t corr_len;
};

struct bridge {
    const struct config *cfg;
    struct codec_limits limits;
    struct mqtt *mqtt;
    struct store *store;
    struct queue *queue;          /* Paho callback -> store worker */
    struct outbox *outbox;        /* store worker -> publisher thread */
    size_t outbox_limit;          /* the worker waits above this many */
    pthread_t worker, publisher;
    int worker_started, publisher_started;
    int stopping;                 /* atomic */
    struct timespec give_up_at;   /* worker stops retrying Redis after it */
    struct log_ratelimit reject_rl;
    struct log_ratelimit publish_rl;
    void **items;                 /* the worker's batch: jobs ... */
    struct store_op *ops;         /* ... and their store operations */
    int redis_tried;              /* worker only: a connect was attempted */
    struct bridge_stats st;       /* counters updated atomically */
};

#define STAT_INC(b, field) __atomic_add_fetch(&(b)->st.field, 1, __ATOMIC_RELAXED)

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void job_free(struct job *j) {
    if (j == NULL) return;
    codec_req_free(&j->req);
    free(j->reply_topic);
    free(j->corr);
    free(j);
}

/* ==================== Publishing ==================== */

/* Hand one document to the publisher thread; never waits on Paho, so it
 * is safe on Paho's callback thread and on the store worker alike (see
 * outbox.h). Takes ownership of doc. */
static void bridge_publish(struct bridge *b, const char *topic, char *doc,
                           size_t len, const struct job *j) {
    struct outbox_msg *m = outbox_msg_new(topic, doc, len, j ? j->corr : NULL,
                                          j ? j->corr_len : 0);
    if (m == NULL) {
        STAT_INC(b, publish_errors);
        log_error("out of memory for a publish to %s", topic);
        return;
    }
    outbox_put(b->outbox, m);
}

/* The publisher thread: drains the outbox into Paho, in order. A refusal
 * by Paho (its buffer full while disconnected) is counted and logged
 * rate-limited. Ends once the outbox is closed and empty. */
static void *bridge_publisher(void *arg) {
    struct bridge *b = arg;
    for (;;) {
        struct outbox_msg *m = outbox_take_all(b->outbox, 200);
        if (m == NULL && outbox_closed(b->outbox) && outbox_len(b->outbox) == 0)
            break;
        while (m) {
            struct outbox_msg *next = m->next;
            int rc = mqtt_publish(b->mqtt, m->topic, m->payload, m->len,
                                  b->cfg->mqtt_qos, 0, m->corr, m->corr_len);
            if (rc != 0) {
                STAT_INC(b, publish_errors);
                if (log_ratelimit_ok(&b->publish_rl))
                    log_error("mqtt: publish to %s failed: %s", m->topic, mqtt_strerror(rc));
            }
            outbox_msg_free(m);
            m = next;
        }
    }
    return NULL;
}

/* Send a reply to the job's reply topic, if it named one. */
static void bridge_reply(struct bridge *b, const struct job *j, char *doc, size_t len) {
    if (j->reply_topic == NULL) {
        free(doc);
        return;
    }
    STAT_INC(b, replies);
    bridge_publish(b, j->reply_topic, doc, len, j);
}

static void bridge_reply_error(struct bridge *b, const struct job *j, int err) {
    size_t len;
    char *doc = codec_encode_error(err, j->req.correlation, &len);
    bridge_reply(b, j, doc, len);
}

/* Publish on the room's msgs topic. */
static void bridge_room_publish(struct bridge *b, const char *room, char *doc, size_t len) {
    char topic[TOPIC_MAX];
    if (topic_build(topic, sizeof(topic), b->cfg->topic_prefix, room, "msgs") < 0) {
        free(doc);
        return;
    }
    bridge_publish(b, topic, doc, len, NULL);
}

/* ==================== Inbound (Paho's thread) ==================== */

/* Log a refused request, rate-limited: input may come as a flood. */
static void bridge_log_reject(struct bridge *b, const struct mqtt_in *in, const char *why) {
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
 * when present, else the JSON "reply_to" of the 3.1.1 fallback. Returns 0,
 * or -1 when the topic is not one the bridge may publish to (the request
 * is then dropped without an answer). */
static int bridge_reply_address(struct bridge *b, const struct mqtt_in *in, struct job *j) {
    const char *prefix = b->cfg->topic_prefix;
    if (in->response_topic) {
        if (!topic_reply_allowed(prefix, in->response_topic, in->response_topic_len))
            return -1;
        j->reply_topic = dup_bytes(in->response_topic, in->response_topic_len);
        if (in->correlation)
            j->corr = dup_bytes(in->correlation, in->correlation_len);
        j->corr_len = in->correlation_len;
    } else if (j->req.reply_to) {
        if (!topic_reply_allowed(prefix, j->req.reply_to, strlen(j->req.reply_to)))
            return -1;
        j->reply_topic = strdup(j->req.reply_to);
    }
    return 0;
}

/* Turn an incoming message into a job: route, decode, validate. Returns
 * CODEC_OK, or the error to answer with. */
static int bridge_decode(struct bridge *b, const struct mqtt_in *in, struct job *j) {
    int kind = topic_parse(b->cfg->topic_prefix, in->topic, in->topic_len, j->room);
    int err = codec_decode(kind > 0 ? kind : CODEC_SEND, in->payload,
                           in->payload_len, &b->limits, &j->req);
    if (kind == TOPIC_ERR_ROOM) return CODEC_ERR_ROOM;
    if (kind < 0) return CODEC_ERR_TOPIC;
    if (err == CODEC_OK && kind == TOPIC_HISTORY && in->response_topic == NULL &&
        j->req.reply_to == NULL)
        return CODEC_ERR_REPLY_TO;    /* a history nobody will read */
    return err;
}

static void bridge_on_message(void *arg, const struct mqtt_in *in) {
    struct bridge *b = arg;
    struct job *j = calloc(1, sizeof(*j));
    STAT_INC(b, received);
    if (j == NULL) {
        bridge_log_reject(b, in, "out of memory");
        return;
    }
    int err = bridge_decode(b, in, j);
    if (bridge_reply_address(b, in, j) < 0) {
        bridge_log_reject(b, in, "reply topic refused");
        goto done;
    }
    if (err != CODEC_OK) {
        bridge_log_reject(b, in, codec_err_text(err));
        bridge_reply_error(b, j, err);
        goto done;
    }
    j->ts = now_ms();
    if (queue_push(b->queue, j) == 0) return;
    bridge_log_reject(b, in, "shutting down");
done:
    job_free(j);
}

/* ==================== Store worker ==================== */

/* Describe a job to the store. Pointers stay valid while the job lives. */
static void job_to_op(const struct job *j, struct store_op *op) {
    memset(op, 0, sizeof(*op));
    op->kind = j->req.kind;
    op->room = j->room;
    op->user = j->req.user;
    op->text = j->req.text;
    op->text_len = j->req.text_len;
    op->ts = j->ts;
    op->client_msg_id = j->req.client_msg_id;
    op->id = j->req.id;
    op->before = j->req.before;
    op->limit = j->req.limit;
}

static int bridge_giving_up(struct bridge *b) {
    struct timespec now;
    if (!__atomic_load_n(&b->stopping, __ATOMIC_ACQUIRE)) return 0;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > b->give_up_at.tv_sec ||
           (now.tv_sec == b->give_up_at.tv_sec && now.tv_nsec >= b->give_up_at.tv_nsec);
}

static void sleep_ms(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Wait before the next attempt: exponential, capped, with jitter. */
static void backoff(long *ms) {
    sleep_ms(*ms / 2 + rand() % (*ms / 2 + 1));
    *ms = *ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *ms * 2;
}

/* 1 when some op still needs Redis (never ran, or Redis said "later"). */
static int ops_unfinished(struct store_op *ops, size_t n) {
    int left = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].result == STORE_RETRY) ops[i].result = STORE_PENDING;
        if (ops[i].result == STORE_PENDING) left = 1;
    }
    return left;
}

/* Connect to Redis when not connected. The connection state is published
 * for bridge_stats; a change is logged once, not at every attempt. */
static int bridge_redis_up(struct bridge *b) {
    if (store_connected(b->store)) return 1;
    int was = __atomic_load_n(&b->st.redis_connected, __ATOMIC_RELAXED);
    int up = store_connect(b->store) == STORE_OK;
    if (up) log_info("redis: connected to %s:%d", b->cfg->redis_host, b->cfg->redis_port);
    else if (was || !b->redis_tried) log_warn("%s", store_errstr(b->store));
    b->redis_tried = 1;
    __atomic_store_n(&b->st.redis_connected, up, __ATOMIC_RELAXED);
    return up;
}

/* Run the batch until every op has an outcome, reconnecting to Redis as
 * needed. After an I/O error the ops without a reply are sent again: a
 * message may then be stored twice (at-least-once), never lost. Gives up
 * only when stopping and past the deadline. */
static void bridge_exec(struct bridge *b, struct store_op *ops, size_t n) {
    long wait = BACKOFF_MIN_MS;
    int retries = 0;
    while (ops_unfinished(ops, n) && !bridge_giving_up(b)) {
        if (bridge_redis_up(b) && store_exec(b->store, ops, n) == STORE_OK &&
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
}

/* A stored message: republish it to the room, then answer the sender. */
static void bridge_done_send(struct bridge *b, const struct job *j, const struct store_op *op) {
    size_t len;
    struct codec_msg m = { op->new_id, j->room, j->req.user, j->req.text,
                           j->ts, j->req.client_msg_id };
    STAT_INC(b, stored);
    char *doc = codec_encode_msg(&m, &len);
    bridge_room_publish(b, j->room, doc, len);
    STAT_INC(b, republished);
    if (j->reply_topic) {
        doc = codec_encode_ok(op->new_id, j->req.correlation, &len);
        bridge_reply(b, j, doc, len);
    }
}

/* A history page: the store gives newest first, the reply is oldest first. */
static void bridge_done_history(struct bridge *b, const struct job *j, const struct store_op *op) {
    size_t len, n = op->nmsgs;
    struct codec_msg *msgs = n ? calloc(n, sizeof(*msgs)) : NULL;
    STAT_INC(b, history);
    if (n && msgs == NULL) {
        bridge_reply_error(b, j, CODEC_ERR_INTERNAL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const struct store_msg *s = &op->msgs[n - 1 - i];
        msgs[i] = (struct codec_msg){ s->id, j->room, s->user, s->text, s->ts,
                                      s->client_msg_id };
    }
    char *doc = codec_encode_history(j->room, msgs, n, op->next_before,
                                     j->req.correlation, &len);
    free(msgs);
    bridge_reply(b, j, doc, len);
}

static void bridge_done_delete(struct bridge *b, const struct job *j) {
    size_t len;
    STAT_INC(b, deleted);
    char *doc = codec_encode_deleted(j->room, j->req.id, &len);
    bridge_room_publish(b, j->room, doc, len);
    if (j->reply_topic) {
        doc = codec_encode_ok(j->req.id, j->req.correlation, &len);
        bridge_reply(b, j, doc, len);
    }
}

/* Answer one job according to what the store did with it. */
static void bridge_respond(struct bridge *b, const struct job *j, const struct store_op *op) {
    switch (op->result) {
    case STORE_DONE:
        if (op->kind == STORE_SEND) bridge_done_send(b, j, op);
        else if (op->kind == STORE_HISTORY) bridge_done_history(b, j, op);
        else bridge_done_delete(b, j);
        break;
    case STORE_NOT_FOUND: bridge_reply_error(b, j, CODEC_ERR_NOT_FOUND); break;
    case STORE_FORBIDDEN: bridge_reply_error(b, j, CODEC_ERR_FORBIDDEN); break;
    case STORE_FAILED:
        log_error("request in room %s failed: %s", j->room, store_errstr(b->store));
        bridge_reply_error(b, j, CODEC_ERR_INTERNAL);
        break;
    default:          /* given up at shutdown */
        STAT_INC(b, lost);
        bridge_reply_error(b, j, CODEC_ERR_UNAVAILABLE);
        break;
    }
}

/* Let the publisher catch up before taking more work, but never while the
 * inbound queue is full: then Paho's callback may be waiting for us with
 * Paho's lock held, and the publisher cannot move until we do. */
static void bridge_wait_outbox(struct bridge *b) {
    while (!outbox_wait_below(b->outbox, b->outbox_limit, 10) &&
           queue_depth(b->queue) < (size_t)b->cfg->queue_size)
        ;
}

/* The store worker: batches off the queue, one pipeline per batch, then
 * the publishes. Ends when the queue is closed and drained. */
static void *bridge_worker(void *arg) {
    struct bridge *b = arg;
    size_t max = (size_t)b->cfg->batch_size;
    void **items = b->items;
    struct store_op *ops = b->ops;
    long wait = BACKOFF_MIN_MS;
    for (;;) {
        /* Connect before the first message too: readiness needs Redis. */
        if (!bridge_redis_up(b) && !__atomic_load_n(&b->stopping, __ATOMIC_ACQUIRE) &&
            queue_depth(b->queue) == 0) {
            backoff(&wait);
            continue;
        }
        wait = BACKOFF_MIN_MS;
        size_t n = queue_pop_batch(b->queue, items, max, 200);
        if (n == 0 && __atomic_load_n(&b->stopping, __ATOMIC_ACQUIRE) &&
            queue_depth(b->queue) == 0)
            break;
        for (size_t i = 0; i < n; i++) job_to_op(items[i], &ops[i]);
        if (n) bridge_exec(b, ops, n);
        for (size_t i = 0; i < n; i++) {
            bridge_respond(b, items[i], &ops[i]);
            store_op_clear(&ops[i]);
            job_free(items[i]);
        }
        bridge_wait_outbox(b);
    }
    store_disconnect(b->store);
    return NULL;
}

/* ==================== Lifecycle ==================== */

static struct mqtt *bridge_mqtt_new(struct bridge *b, char *err, size_t errlen) {
    const struct config *c = b->cfg;
    char filters[3][TOPIC_MAX];
    const char *fp[3] = { filters[0], filters[1], filters[2] };
    const int kinds[3] = { TOPIC_SEND, TOPIC_HISTORY, TOPIC_DELETE };
    for (int i = 0; i < 3; i++) {
        if (topic_filter(filters[i], TOPIC_MAX, c->topic_prefix, kinds[i]) < 0) {
            snprintf(err, errlen, "topic prefix too long");
            return NULL;
        }
    }
    struct mqtt_opts o = {
        .uri = c->mqtt_uri, .client_id = c->mqtt_client_id,
        .username = c->mqtt_username, .password = c->mqtt_password,
        .version = c->mqtt_version, .keepalive = c->mqtt_keepalive,
        .session_expiry = c->mqtt_session_expiry,
        .connect_timeout = c->mqtt_connect_timeout, .qos = c->mqtt_qos,
        .max_buffered = c->mqtt_max_buffered, .filters = fp, .nfilters = 3,
    };
    return mqtt_new(&o, bridge_on_message, b, err, errlen);
}

static struct store *bridge_store_new(const struct config *c) {
    struct store_opts o = {
        .host = c->redis_host, .port = c->redis_port,
        .password = c->redis_password, .key_prefix = c->key_prefix,
        .timeout_ms = c->redis_timeout_ms,
    };
    return store_new(&o);
}

struct bridge *bridge_new(const struct config *cfg, char *err, size_t errlen) {
    struct bridge *b = calloc(1, sizeof(*b));
    snprintf(err, errlen, "out of memory");
    if (b == NULL) return NULL;
    b->cfg = cfg;
    b->limits = (struct codec_limits){ (size_t)cfg->max_text_bytes,
                                       cfg->history_default, cfg->history_max };
    b->reject_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 10);
    b->publish_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 10);
    b->queue = queue_new((size_t)cfg->queue_size);
    b->outbox = outbox_new();
    b->outbox_limit = 4 * (size_t)cfg->batch_size;
    b->store = bridge_store_new(cfg);
    b->items = calloc((size_t)cfg->batch_size, sizeof(void *));
    b->ops = calloc((size_t)cfg->batch_size, sizeof(struct store_op));
    if (b->queue && b->outbox && b->store && b->items && b->ops)
        b->mqtt = bridge_mqtt_new(b, err, errlen);
    if (b->mqtt == NULL) {
        bridge_free(b);
        return NULL;
    }
    return b;
}

int bridge_start(struct bridge *b, char *err, size_t errlen) {
    if (pthread_create(&b->publisher, NULL, bridge_publisher, b) != 0) {
        snprintf(err, errlen, "cannot start the publisher thread");
        return -1;
    }
    b->publisher_started = 1;
    if (pthread_create(&b->worker, NULL, bridge_worker, b) != 0) {
        snprintf(err, errlen, "cannot start the store worker");
        return -1;
    }
    b->worker_started = 1;
    mqtt_start(b->mqtt);
    return 0;
}

void bridge_tick(struct bridge *b) {
    mqtt_tick(b->mqtt);
}

/* Stop in order: no new messages (the queue refuses them), the worker
 * drains the queue (bounded by timeout_ms when Redis is away), then the
 * broker gets what is still to publish and the session is closed. */
void bridge_stop(struct bridge *b, int timeout_ms) {
    clock_gettime(CLOCK_MONOTONIC, &b->give_up_at);
    b->give_up_at.tv_sec += timeout_ms / 1000;
    __atomic_store_n(&b->stopping, 1, __ATOMIC_RELEASE);
    queue_close(b->queue);
    if (b->worker_started) pthread_join(b->worker, NULL);
    b->worker_started = 0;
    outbox_close(b->outbox);
    if (b->publisher_started) pthread_join(b->publisher, NULL);
    b->publisher_started = 0;
    for (int i = 0; i < 100 && mqtt_ready(b->mqtt) && mqtt_pending(b->mqtt) > 0; i++)
        sleep_ms(20);
    mqtt_stop(b->mqtt, 1000);
    struct bridge_stats st;
    bridge_stats(b, &st);
    log_info("stopped: %lu stored, %lu rejected, %lu history, %lu deleted, %lu lost",
             st.stored, st.rejected, st.history, st.deleted, st.lost);
}

void bridge_free(struct bridge *b) {
    if (b == NULL) return;
    if (b->worker_started || b->publisher_started) bridge_stop(b, 0);
    mqtt_free(b->mqtt);
    store_free(b->store);
    queue_free(b->queue);
    outbox_free(b->outbox);
    free(b->items);
    free(b->ops);
    free(b);
}

void bridge_stats(struct bridge *b, struct bridge_stats *out) {
#define LOAD(field) out->field = __atomic_load_n(&b->st.field, __ATOMIC_RELAXED)
    LOAD(received); LOAD(stored); LOAD(republished); LOAD(replies);
    LOAD(rejected); LOAD(history); LOAD(deleted); LOAD(redis_retries);
    LOAD(publish_errors); LOAD(lost); LOAD(redis_connected);
#undef LOAD
    out->queued = queue_depth(b->queue);
    out->mqtt_ready = mqtt_ready(b->mqtt);
}
