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

#include "bridge_int.h"
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

/* ==================== Publishing ==================== */

/* Hand one document to the delivery; never waits on Paho, so it is safe
 * on Paho's callback thread and on the store worker alike (delivery.h).
 * Takes ownership of doc. The ticket, if any, counts it. */
void bridge_publish(struct bridge *b, const char *topic, char *doc, size_t len,
                           const struct request *r, struct delivery_ticket *t) {
    __atomic_add_fetch(&b->puts, 1, __ATOMIC_RELEASE);      /* foreign.c's drained */
    int rc = delivery_put(b->delivery, t, topic, doc, len, r ? r->corr : NULL,
                          r ? r->corr_len : 0, 0);
    if (rc == CB_OK) return;
    if (rc == CB_ERR_CLOSED) {
        __atomic_sub_fetch(&b->puts, 1, __ATOMIC_RELEASE);
        __atomic_add_fetch(&b->publish_closed, 1, __ATOMIC_RELAXED);
        return;
    }
    __atomic_add_fetch(&b->publish_oom, 1, __ATOMIC_RELAXED);
    log_error("out of memory for a publish to %s", topic);
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
    if (journal_checkpoint(b->journal, seq) < 0 && log_ratelimit_ok(&b->journal_rl)) {
        char why[256];
        journal_errstr(b->journal, why, sizeof(why));
        log_error("%s", why);
    }
    store_set_checkpoint(b->store, seq);
    __atomic_store_n(&b->ckpt_seq, seq, __ATOMIC_RELAXED);
}

/* Send a reply to the request's reply topic, if it named one. */
void bridge_reply(struct bridge *b, const struct request *r, char *doc,
                         size_t len, struct delivery_ticket *t) {
    if (r->reply_topic == NULL) {
        free(doc);
        return;
    }
    STAT_INC(b, replies);
    bridge_publish(b, r->reply_topic, doc, len, r, t);
}

void bridge_reply_error(struct bridge *b, const struct request *r, int err,
                               struct delivery_ticket *t) {
    size_t len;
    char *doc = codec_encode_error(err, r->correlation, &len);
    bridge_reply(b, r, doc, len, t);
}

/* Publish on the room's msgs topic. */
void bridge_room_publish(struct bridge *b, const char *room, char *doc,
                                size_t len, struct delivery_ticket *t) {
    char topic[TOPIC_MAX];
    if (topic_build(topic, sizeof(topic), b->cfg->topic_prefix, room, "msgs") < 0) {
        free(doc);
        return;
    }
    bridge_publish(b, topic, doc, len, NULL, t);
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
    char filters[REQ_KIND_MAX][TOPIC_MAX];
    const char *fp[REQ_KIND_MAX + 1];
    int (*filter)(char *, size_t, const char *, int) =
        c->identity == CONFIG_IDENTITY_TOPIC ? topic_filter_sender : topic_filter;
    for (int k = REQ_SEND; k <= REQ_KIND_MAX; k++) {     /* one per request kind */
        fp[k - 1] = filters[k - 1];
        if (bridge_filter(c, filter, filters[k - 1], k) < 0) {
            snprintf(err, errlen, "topic prefix too long");
            return NULL;
        }
    }
    fp[REQ_KIND_MAX] = b->peer_filter;
    size_t len;
    char *will = status_offline_doc(c, &len);
    struct mqtt_opts o = {
        .uri = c->mqtt_uri, .client_id = c->mqtt_client_id,
        .username = c->mqtt_username, .password = c->mqtt_password,
        .version = c->mqtt_version, .keepalive = c->mqtt_keepalive,
        .session_expiry = c->mqtt_session_expiry,
        .connect_timeout = c->mqtt_connect_timeout, .qos = c->mqtt_qos,
        .max_buffered = c->mqtt_max_buffered, .filters = fp,
        .nfilters = REQ_KIND_MAX + (b->peer_filter[0] ? 1 : 0), .nwatch = b->peer_filter[0] ? 1 : 0,
        .will_topic = will ? b->status_topic : NULL, .will_payload = will,
        .tls_ca_file = c->tls_ca_file, .tls_ca_dir = c->tls_ca_dir,
        .tls_cert_file = c->tls_cert_file, .tls_key_file = c->tls_key_file,
        .tls_verify_hostname = c->tls_verify_hostname,
    };
    struct mqtt *m = mqtt_new(&o, inbound_on_message, b, err, errlen);
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

/* The transport's own lines (Sentinel's watcher: a sentinel lost, a
 * failover followed), from its threads, into the log. */
static void bridge_redis_note(void *arg, int level, const char *msg) {
    (void)arg;
    log_write(level, "%s", msg);
}

static struct store *bridge_store_new(const struct config *c) {
    struct store_opts o = {
        .host = c->redis_host, .port = c->redis_port,
        .unix_socket = c->redis_unix_socket, .username = c->redis_username,
        .cluster = c->redis_cluster, .cluster_nodes = c->redis_cluster_nodes,
        .sentinels = c->redis_sentinels, .sentinel_master = c->redis_sentinel_master,
        .sentinel_password = c->redis_sentinel_password, .notify = bridge_redis_note,
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

/* The watcher's locator under Sentinel: the primary the store found. */
static int bridge_primary(void *arg, char *addr, size_t len) {
    struct bridge *b = arg;
    struct store_counters sc;
    store_counters(b->store, &sc);
    if (sc.primary[0] == '\0') return -1;
    snprintf(addr, len, "%s", sc.primary);
    return 0;
}

/* watch_opts.on_event: other writers did something; the store worker
 * waits on the journal, so end that wait. */
static void bridge_watch_event(void *arg) {
    struct bridge *b = arg;
    if (b->journal) journal_poke(b->journal);
}

/* The keyspace listener (watch.h), on the same Redis as the store. */
static struct watch *bridge_watch_new(struct bridge *b) {
    const struct config *c = b->cfg;
    struct watch_opts o = {
        .host = c->redis_host, .port = c->redis_port,
        .unix_socket = c->redis_unix_socket, .cluster = c->redis_cluster,
        .cluster_nodes = c->redis_cluster_nodes, .username = c->redis_username,
        .password = c->redis_password, .timeout_ms = c->redis_timeout_ms,
        .key_prefix = c->key_prefix, .notify = bridge_redis_note,
        .locate = c->redis_sentinels ? bridge_primary : NULL, .locate_arg = b,
        .on_event = bridge_watch_event, .on_event_arg = b,
    };
    return watch_new(&o);
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

/* The journal's on_wait: an append begins to wait (for the bound or the
 * disk), so the worker must not wait for the delivery (worker_hold). */
static void bridge_journal_waits(void *arg) {
    struct bridge *b = arg;
    delivery_wake(b->delivery);
}

/* Open the journal and say what recovery found. */
static struct journal *bridge_journal_open(struct bridge *b, char *err, size_t errlen) {
    const struct config *c = b->cfg;
    char dir[512];
    struct journal_recovery rec;
    journal_dir(c, dir, sizeof(dir));
    struct journal_opts o = { .dir = dir, .fsync = c->journal_fsync,
        .fsync_ms = c->journal_fsync_ms, .max_bytes = (uint64_t)c->journal_max_bytes,
        .segment_bytes = (uint64_t)c->journal_segment_bytes,
        .on_wait = bridge_journal_waits, .on_wait_arg = b };
    struct journal *j = journal_open(&o, &rec, err, errlen);
    if (j == NULL) return NULL;
    if (rec.legacy_segments)
        log_info("journal: %d segments of format version 0 read; new segments are "
                 "written in version %d", rec.legacy_segments, JOURNAL_FORMAT_VERSION);
    if (rec.cut_bytes)
        log_warn("journal: cut %llu bytes of a torn or corrupt record from %s",
                 (unsigned long long)rec.cut_bytes, rec.cut_file);
    log_info("journal %s: %llu records in %d segments, %llu to replay", dir,
             (unsigned long long)rec.records, rec.segments,
             (unsigned long long)rec.pending);
    struct journal_stats js;
    journal_get_stats(j, &js);
    b->replay_until = js.last_seq;    /* every later record is new */
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

/* delivery_opts.limit: the broker's Receive Maximum, once known. */
static int bridge_publish_limit(void *arg) {
    struct bridge *b = arg;
    return b->mqtt ? mqtt_receive_max(b->mqtt) : 0;
}

/* The delivery: at most mqtt.max_inflight publishes with Paho (fewer when
 * the broker's Receive Maximum is lower), and the worker waits while more
 * than four batches' worth are queued. */
static struct delivery *bridge_delivery_new(struct bridge *b) {
    struct delivery_opts o = {
        .window = b->cfg->mqtt_max_inflight,
        .queue_limit = 4 * (size_t)b->cfg->batch_size,
        .publish = bridge_mqtt_publish, .checkpoint = bridge_on_checkpoint,
        .limit = bridge_publish_limit, .arg = b,
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
    if (b->store) b->watch = bridge_watch_new(b);
    b->foreign = foreign_new();
    b->receipts = receipts_new();
    if (b->delivery && b->watch && b->foreign && b->receipts && bridge_alloc_batch(b) == 0 &&
        (b->journal = bridge_journal_open(b, err, errlen)) != NULL)
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
    if (pthread_create(&b->worker, NULL, worker_main, b) != 0) {
        snprintf(err, errlen, "cannot start the store worker");
        return -1;
    }
    b->worker_started = 1;
    if (watch_start(b->watch) != CB_OK) {
        snprintf(err, errlen, "cannot start the keyspace listener");
        return -1;
    }
    mqtt_start(b->mqtt);
    return 0;
}

/* Say once when the journal's disk fills, and when it has room again. */
static void bridge_watch_disk(struct bridge *b, const struct journal_stats *js) {
    if (js->disk_full == b->disk_warned) return;
    b->disk_warned = js->disk_full;
    if (js->disk_full) {
        char why[256];
        journal_errstr(b->journal, why, sizeof(why));
        log_warn("%s", why);
    } else {
        log_info("journal: room on disk again; %llu records were freed before the "
                 "broker acknowledged their republish", (unsigned long long)js->released_early);
    }
}

/* Warn once when the backlog passes 80% of the journal's bound. */
static void bridge_watch_journal(struct bridge *b) {
    struct journal_stats js;
    journal_get_stats(b->journal, &js);
    bridge_watch_disk(b, &js);
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

/* Publish the status document, retained, every status_interval seconds,
 * and as soon as a connection is up: the first, and every reconnect,
 * since the broker published the last will ("online": false) when the
 * connection went. */
static void bridge_publish_status(struct bridge *b, int online) {
    struct stats_snapshot st;
    size_t len;
    bridge_stats(b, &st);
    char *doc = status_doc(b->cfg, &st, online, &len);
    if (doc == NULL) return;
    __atomic_add_fetch(&b->puts, 1, __ATOMIC_RELEASE);
    if (delivery_put(b->delivery, NULL, b->status_topic, doc, len, NULL, 0, 1) == CB_ERR_CLOSED)
        __atomic_sub_fetch(&b->puts, 1, __ATOMIC_RELEASE);
}

void bridge_tick(struct bridge *b) {
    time_t now = time(NULL);
    int interval = __atomic_load_n(&b->status_interval, __ATOMIC_RELAXED);
    mqtt_tick(b->mqtt);
    journal_tick(b->journal);
    delivery_checkpoint(b->delivery);
    bridge_watch_journal(b);
    unsigned conns = mqtt_connections(b->mqtt);
    if (interval > 0 && (now >= b->next_status || conns != b->status_conns) &&
        mqtt_ready(b->mqtt)) {
        b->next_status = now + interval;
        b->status_conns = conns;
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
 * journal for the next start.
 *
 * One case cannot end in order: Paho's callback retrying an append on a
 * full disk that nothing will free (Redis gone). It holds Paho's lock, so
 * neither a publish nor the disconnect can go on, and returning from it
 * would acknowledge a message that is nowhere. Then bridge_stop returns
 * CB_ERR_FULL at once, and the caller must end the process without
 * freeing the bridge: like a crash, which the journal is made for; the
 * message in the callback was never acknowledged, so the broker delivers
 * it again. Otherwise CB_OK. */
int bridge_stop(struct bridge *b, int timeout_ms) {
    struct journal_stats js;
    struct delivery_stats ds;
    journal_get_stats(b->journal, &js);
    b->stop_seq = js.last_seq;
    b->give_up_at = clock_deadline(timeout_ms);
    __atomic_store_n(&b->stopping, 1, __ATOMIC_RELEASE);
    delivery_wake(b->delivery);
    journal_unbound(b->journal);
    if (b->worker_started) pthread_join(b->worker, NULL);
    b->worker_started = 0;
    if (__atomic_load_n(&b->append_stuck, __ATOMIC_ACQUIRE)) return CB_ERR_FULL;
    watch_free(b->watch);             /* the worker no longer takes from it */
    b->watch = NULL;
    if (b->delivery_started && b->status_interval > 0) bridge_publish_status(b, 0);
    if (b->delivery_started) delivery_close(b->delivery, 2000);
    b->worker_started = b->delivery_started = 0;
    delivery_checkpoint(b->delivery);
    mqtt_stop(b->mqtt, 1000);
    delivery_checkpoint(b->delivery);  /* what the disconnect let complete */
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
    return CB_OK;
}

void bridge_free(struct bridge *b) {
    if (b == NULL) return;
    if (b->worker_started || b->delivery_started) bridge_stop(b, 0);
    mqtt_free(b->mqtt);               /* first: no completion comes later */
    watch_free(b->watch);
    foreign_free(b->foreign);
    receipts_free(b->receipts);
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
    LOAD(deleted); LOAD(edited); LOAD(read_markers); LOAD(receipts);
    LOAD(redis_retries); LOAD(lost);
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
    out->journal_released_early = js.released_early;
    out->journal_disk_full = js.disk_full;
    struct delivery_stats ds;
    delivery_get_stats(b->delivery, &ds);
    out->outbox = ds.queued;
    out->publish_errors = ds.refused + ds.left +
                          __atomic_load_n(&b->publish_oom, __ATOMIC_RELAXED) +
                          __atomic_load_n(&b->publish_closed, __ATOMIC_RELAXED);
    out->mqtt_ready = mqtt_ready(b->mqtt);
    memcpy(out->instance, b->instance, sizeof(out->instance));
    struct store_counters sc;
    store_counters(b->store, &sc);
    out->redis_moved = sc.moved;
    out->redis_ask = sc.ask;
    out->redis_wait_short = sc.wait_short;
    out->redis_failovers = sc.failovers;
    snprintf(out->redis_primary, sizeof(out->redis_primary), "%s", sc.primary);
    snprintf(out->redis_sentinel, sizeof(out->redis_sentinel), "%s", sc.watching);
}
