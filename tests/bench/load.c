/* load.c -- the MQTT load generator (see bench.h).
 *
 * One generator serves every phase: the bridge path, the broker-only
 * baseline and history requests. Publishers (Paho MQTTAsync, MQTT 5) send
 * messages that each carry a token "<phase> <publisher> <seq> <t_ns>":
 * chat messages in their text (padded with 'x' to the payload size),
 * history requests in their Correlation Data. One subscriber receives the
 * republished messages (chat/+/msgs), the baseline's (base/+/msgs) and
 * the history replies (bench/reply); a message is complete when the
 * subscriber has it, so latency and throughput are end to end.
 *
 * Closed loop: each publisher starts with `window` messages and sends the
 * next one whenever one of its messages completes, from the subscriber's
 * callback (no thread hand-off per message: the benchmark's own CPU per
 * message matters on a small machine), up to its quota if the spec sets
 * one. Open loop: the caller's thread sends on a fixed schedule, each
 * message stamped with its scheduled time, so a late generator shows up
 * as latency rather than hiding it.
 *
 * Threads: Paho runs the callback on its receive thread with Paho's lock
 * held, and the callback takes ours. Nobody calls Paho holding our lock:
 * sequence numbers are reserved under it, the publish happens after. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <MQTTAsync.h>

#include "bench.h"

#define REPLY_TOPIC "bench/reply"
#define PROBE "probe"
#define TOPIC_MAX 256
#define TOKEN_MAX 96
#define BUF_MAX (PAYLOAD_MAX + 256)
#define CONNECT_MS 10000
#define SEQ_MAX (1LL << 30)
#define MESSAGES_DEADLINE_NS (600 * 1000000000LL)  /* --messages: at most 10 min */

struct pub {
    MQTTAsync client;
    int state;                    /* atomic: 0 pending, 1 done, -1 failed */
    long long next_seq;           /* lock */
    unsigned char *seen;          /* per seq: received (lock) */
    size_t cap;
};

/* The running phase, shared with the subscriber's callback (lock). */
struct phase {
    int id, active;
    const struct load_spec *spec;
    int npub;
    long long ws, we;             /* measurement window, ns */
    long long sent, errors, received, measured, duplicates, bad;
    int refilling;                /* callbacks about to send the next message */
    int waiting;                  /* the driver waits on cond */
    long long *room_counts;
    struct hist lat;
};

struct load {
    int qos, npub;
    struct pub *pubs;
    MQTTAsync sub;
    int sub_state, probe_ok;      /* atomic */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct phase ph;
};

/* A parsed token. */
struct token {
    int phase, pub;
    long long seq, t_ns;
};

/* ==================== Tokens and checks ==================== */

/* Parse "<phase> <pub> <seq> <t_ns>" from the first n bytes of s. */
static int token_parse(const char *s, size_t n, struct token *t) {
    char tmp[96];
    if (n >= sizeof(tmp)) n = sizeof(tmp) - 1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return sscanf(tmp, "%d %d %lld %lld", &t->phase, &t->pub, &t->seq, &t->t_ns) == 4 ? 0 : -1;
}

/* The token at the start of the JSON member "text" of a chat message. */
static int token_from_text(const char *p, size_t n, struct token *t) {
    static const char key[] = "\"text\":\"";
    const char *v = memmem(p, n, key, sizeof(key) - 1);
    if (v == NULL) return -1;
    v += sizeof(key) - 1;
    return token_parse(v, n - (size_t)(v - p), t);
}

/* Occurrences of needle in p[0..n). */
static int count_of(const char *p, size_t n, const char *needle) {
    size_t k = strlen(needle);
    int c = 0;
    for (const char *q = p; (q = memmem(q, n - (size_t)(q - p), needle, k)) != NULL; q += k)
        c++;
    return c;
}

/* A history reply is good when it is a page (not an error: it starts
 * with expect_start, by default {"room":) of exactly expect_msgs items
 * (expect_item, by default {"id":, one per message), holding expect_has
 * when given, the messages all by expect_user when given. */
static int history_reply_ok(const struct load_spec *s, const char *p, size_t n) {
    char user[80];
    const char *start = s->expect_start ? s->expect_start : "{\"room\":";
    size_t k = strlen(start);
    if (n < k || memcmp(p, start, k) != 0) return 0;
    if (count_of(p, n, s->expect_item ? s->expect_item : "{\"id\":") != s->expect_msgs)
        return 0;
    if (s->expect_has && memmem(p, n, s->expect_has, strlen(s->expect_has)) == NULL) return 0;
    if (s->expect_user == NULL) return 1;
    snprintf(user, sizeof(user), "\"user\":\"%s\"", s->expect_user);
    return count_of(p, n, user) == s->expect_msgs;
}

/* The room a publisher's seq-th message goes to: publisher p covers rooms
 * p, p+npub, p+2*npub, ... so all publishers together cover every room. */
static int room_of(const struct phase *ph, int p, long long seq) {
    int rooms = ph->spec->rooms > 0 ? ph->spec->rooms : 1;
    return (int)(((long long)p + (long long)ph->npub * seq) % rooms);
}

/* The topic a message of this phase must arrive on. */
static void expected_topic(const struct phase *ph, int room, char *buf, size_t size) {
    const struct load_spec *s = ph->spec;
    if (s->target == TARGET_HISTORY)
        snprintf(buf, size, REPLY_TOPIC);
    else
        snprintf(buf, size, "%s/%s%d/msgs", s->target == TARGET_BRIDGE ? "chat" : "base",
                 s->room_prefix, room);
}

/* ==================== Sending ==================== */

/* Reserve publisher p's next sequence number (counted as sent); -1 once
 * it has sent its quota (the spec's per_publisher). */
static long long reserve(struct load *l, const struct load_spec *s, int p) {
    long long seq = -1;
    pthread_mutex_lock(&l->lock);
    if (s->per_publisher <= 0 || l->pubs[p].next_seq < s->per_publisher) {
        seq = l->pubs[p].next_seq++;
        l->ph.sent++;
    }
    pthread_mutex_unlock(&l->lock);
    return seq;
}

/* A reserved message that could not be published is not sent. */
static void unreserve(struct load *l) {
    pthread_mutex_lock(&l->lock);
    l->ph.sent--;
    l->ph.errors++;
    pthread_mutex_unlock(&l->lock);
}

/* Publish a history request with Response Topic and the token as
 * Correlation Data. Paho 1.3 takes MQTT 5 publish properties from the
 * response options. */
static int send_request(MQTTAsync c, const char *topic, const char *body,
                        const char *corr, int qos) {
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    MQTTProperty rt = { .identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC };
    MQTTProperty cd = { .identifier = MQTTPROPERTY_CODE_CORRELATION_DATA };
    rt.value.data.data = REPLY_TOPIC;
    rt.value.data.len = (int)strlen(REPLY_TOPIC);
    cd.value.data.data = (char *)corr;
    cd.value.data.len = (int)strlen(corr);
    MQTTProperties_add(&ro.properties, &rt);
    MQTTProperties_add(&ro.properties, &cd);
    int rc = MQTTAsync_send(c, topic, (int)strlen(body), body, qos, 0, &ro);
    MQTTProperties_free(&ro.properties);
    return rc == MQTTASYNC_SUCCESS ? 0 : -1;
}

/* Build {"user":"u<p>","text":"<token> xxx..."} in buf (BUF_MAX bytes)
 * with a text of exactly `payload` bytes (longer only if the token is). */
static size_t chat_payload(char *buf, int payload, int p, const char *token) {
    int n = snprintf(buf, BUF_MAX, "{\"user\":\"u%d\",\"text\":\"%s ", p, token);
    size_t end = (size_t)n - strlen(token) - 1 + (size_t)payload;
    if (end < (size_t)n) end = (size_t)n;
    memset(buf + n, 'x', end - (size_t)n);
    memcpy(buf + end, "\"}", 3);
    return end + 2;
}

/* Publish message seq of publisher p, stamped t_ns. 0 or -1. */
static int publish(struct load *l, const struct load_spec *s, int phase, int p,
                   long long seq, long long t_ns) {
    char topic[TOPIC_MAX], token[TOKEN_MAX], buf[BUF_MAX];
    snprintf(token, sizeof(token), "%d %d %lld %lld", phase, p, seq, t_ns);
    if (s->target == TARGET_HISTORY) {
        if (s->topic) snprintf(topic, sizeof(topic), "%s", s->topic);
        else snprintf(topic, sizeof(topic), "chat/%s/history", s->room_prefix);
        return send_request(l->pubs[p].client, topic, s->request, token, l->qos);
    }
    snprintf(topic, sizeof(topic), "%s/%s%d/%s", s->target == TARGET_BRIDGE ? "chat" : "base",
             s->room_prefix, room_of(&l->ph, p, seq),
             s->target == TARGET_BRIDGE ? "send" : "msgs");
    size_t len = chat_payload(buf, s->payload, p, token);
    return MQTTAsync_send(l->pubs[p].client, topic, (int)len, buf, l->qos, 0, NULL) ==
           MQTTASYNC_SUCCESS ? 0 : -1;
}

/* Reserve and publish publisher p's next message, if its quota allows.
 * 0 or -1. */
static int send_next(struct load *l, const struct load_spec *s, int phase, int p,
                     long long t_ns) {
    long long seq = reserve(l, s, p);
    if (seq < 0 || publish(l, s, phase, p, seq, t_ns) == 0) return 0;
    unreserve(l);
    return -1;
}

/* ==================== Subscriber (Paho's thread) ==================== */

/* Mark seq of publisher p as received; 0 if it was already. */
static int mark_seen(struct pub *p, long long seq) {
    if ((size_t)seq >= p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap <= (size_t)seq) cap *= 2;
        unsigned char *n = realloc(p->seen, cap);
        if (n == NULL) return 1;
        memset(n + p->cap, 0, cap - p->cap);
        p->seen = n;
        p->cap = cap;
    }
    if (p->seen[seq]) return 0;
    p->seen[seq] = 1;
    return 1;
}

/* Close the window early once --messages completions were measured, or
 * every publisher's quota completed, and wake the driver waiting for the
 * window's end. */
static void check_count(struct load *l, long long now) {
    struct phase *ph = &l->ph;
    const struct load_spec *s = ph->spec;
    int counted = s->max_messages > 0 && ph->measured >= s->max_messages;
    int quota = s->per_publisher > 0 && ph->received >= s->per_publisher * ph->npub;
    if (!(counted || quota) || ph->we <= now)
        return;
    ph->we = now;
    pthread_cond_signal(&l->cond);
}

/* Account one completion of the running phase (called with the lock).
 * Returns 1 when its publisher should send the next message: a closed
 * loop whose window is still open. */
static int complete(struct load *l, const struct token *t, const char *topic,
                    int body_ok, long long now) {
    struct phase *ph = &l->ph;
    char want[TOPIC_MAX];
    if (t->phase != ph->id || t->pub < 0 || t->pub >= ph->npub || t->seq < 0 ||
        t->seq >= SEQ_MAX)
        return 0;                               /* a straggler of another phase */
    if (!mark_seen(&l->pubs[t->pub], t->seq)) {
        ph->duplicates++;
        return 0;
    }
    int room = room_of(ph, t->pub, t->seq);
    expected_topic(ph, room, want, sizeof(want));
    if (!body_ok || strcmp(topic, want) != 0) ph->bad++;
    ph->received++;
    ph->room_counts[room]++;
    if (now >= ph->ws && now < ph->we) ph->measured++;
    if (t->t_ns >= ph->ws && t->t_ns < ph->we) hist_add(&ph->lat, now - t->t_ns);
    check_count(l, now);
    if (ph->waiting) pthread_cond_signal(&l->cond);     /* the drain counts */
    if (ph->spec->rate > 0 || now >= ph->we) return 0;
    ph->refilling++;                  /* the phase stays open until it is sent */
    return 1;
}

/* A history reply: the token is the correlation data. */
static int reply_token(struct load *l, MQTTAsync_message *m, struct token *t) {
    MQTTProperty *c = MQTTProperties_getProperty(&m->properties,
                                                 MQTTPROPERTY_CODE_CORRELATION_DATA);
    if (c == NULL) return -1;
    if ((size_t)c->value.data.len == strlen(PROBE) &&
        memcmp(c->value.data.data, PROBE, strlen(PROBE)) == 0) {
        __atomic_store_n(&l->probe_ok, 1, __ATOMIC_RELEASE);
        return -1;
    }
    return token_parse(c->value.data.data, (size_t)c->value.data.len, t);
}

/* The subscriber's callback: parse the token, count the completion, and
 * in a closed loop send the publisher's next message. */
static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m) {
    struct load *l = ctx;
    long long now = now_ns();
    struct token t;
    const char *p = m->payload;
    size_t n = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;
    int reply = strcmp(topic, REPLY_TOPIC) == 0, next = 0;
    const struct load_spec *s = NULL;
    (void)topic_len;     /* our topics hold no NUL: Paho's topic is terminated */
    int rc = reply ? reply_token(l, m, &t) : token_from_text(p, n, &t);
    pthread_mutex_lock(&l->lock);
    if (rc == 0 && l->ph.active) {              /* the spec is valid while active */
        s = l->ph.spec;
        next = complete(l, &t, topic, !reply || history_reply_ok(s, p, n), now);
    }
    pthread_mutex_unlock(&l->lock);
    if (next) {
        send_next(l, s, t.phase, t.pub, now_ns());
        pthread_mutex_lock(&l->lock);
        l->ph.refilling--;
        if (l->ph.waiting) pthread_cond_signal(&l->cond);
        pthread_mutex_unlock(&l->lock);
    }
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

/* ==================== Connecting ==================== */

/* A connect, subscribe or disconnect succeeded: *ctx = 1. */
static void on_ok(void *ctx, MQTTAsync_successData5 *r) {
    (void)r;
    __atomic_store_n((int *)ctx, 1, __ATOMIC_RELEASE);
}

/* It failed: *ctx = -1. */
static void on_fail(void *ctx, MQTTAsync_failureData5 *r) {
    (void)r;
    __atomic_store_n((int *)ctx, -1, __ATOMIC_RELEASE);
}

/* Wait until *state leaves 0; 0 when it became 1. */
static int wait_state(int *state, long long deadline) {
    int s;
    while ((s = __atomic_load_n(state, __ATOMIC_ACQUIRE)) == 0 && now_ns() < deadline &&
           !bench_interrupted)
        sleep_until_ns(now_ns() + 2000000);
    return s == 1 ? 0 : -1;
}

/* Create an MQTT 5 client and start connecting it (clean start); *state
 * becomes 1 once connected. A client given a load is the subscriber: it
 * gets the message callback and asks for Receive Maximum 65535, so that
 * the broker never holds messages back for it. */
static int client_start(MQTTAsync *c, int port, const char *id, int *state,
                        struct load *sub_of) {
    char uri[64];
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
    MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer5;
    MQTTProperties props = MQTTProperties_initializer;
    MQTTProperty rm = { .identifier = MQTTPROPERTY_CODE_RECEIVE_MAXIMUM };
    snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", port);
    co.maxBufferedMessages = 1 << 20;           /* counts queued publishes too */
    if (MQTTAsync_createWithOptions(c, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL,
                                    &co) != MQTTASYNC_SUCCESS)
        return -1;
    if (sub_of && MQTTAsync_setCallbacks(*c, sub_of, NULL, on_message, NULL) !=
                  MQTTASYNC_SUCCESS)
        return -1;
    rm.value.integer2 = 65535;
    if (sub_of) MQTTProperties_add(&props, &rm);
    o.keepAliveInterval = 60;
    o.cleanstart = 1;
    o.connectProperties = &props;
    o.onSuccess5 = on_ok;
    o.onFailure5 = on_fail;
    o.context = state;
    int rc = MQTTAsync_connect(*c, &o);
    MQTTProperties_free(&props);
    return rc == MQTTASYNC_SUCCESS ? 0 : -1;
}

/* Subscribe the subscriber to the three filters; 0 or -1. */
static int subscribe_all(struct load *l) {
    char *filters[3] = { "chat/+/msgs", "base/+/msgs", REPLY_TOPIC };
    int qos[3] = { l->qos, l->qos, l->qos };
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    int done = 0;
    ro.onSuccess5 = on_ok;
    ro.onFailure5 = on_fail;
    ro.context = &done;
    if (MQTTAsync_subscribeMany(l->sub, 3, filters, qos, &ro) != MQTTASYNC_SUCCESS)
        return -1;
    return wait_state(&done, now_ns() + CONNECT_MS * 1000000LL);
}

/* Connect the subscriber and every publisher. 0 or -1. */
static int load_connect(struct load *l, int port) {
    char id[32];
    long long deadline = now_ns() + CONNECT_MS * 1000000LL;
    if (client_start(&l->sub, port, "bench-sub", &l->sub_state, l) < 0) return -1;
    for (int i = 0; i < l->npub; i++) {
        snprintf(id, sizeof(id), "bench-pub-%d", i);
        if (client_start(&l->pubs[i].client, port, id, &l->pubs[i].state, NULL) < 0)
            return -1;
    }
    if (wait_state(&l->sub_state, deadline) < 0) return -1;
    for (int i = 0; i < l->npub; i++)
        if (wait_state(&l->pubs[i].state, deadline) < 0) return -1;
    if (proc_nodelay_to(port) < l->npub + 1)
        fprintf(stderr, "bench: warning: TCP_NODELAY not set on every client socket\n");
    return subscribe_all(l);
}

/* Allocate the load and connect its clients. */
struct load *load_new(int mqtt_port, int publishers, int qos) {
    struct load *l = calloc(1, sizeof(*l));
    if (l == NULL) return NULL;
    l->qos = qos;
    l->npub = publishers;
    l->pubs = calloc((size_t)publishers, sizeof(*l->pubs));
    pthread_condattr_t ca;                      /* deadlines are CLOCK_MONOTONIC */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, &ca);
    pthread_condattr_destroy(&ca);
    prctl(PR_SET_TIMERSLACK, 1UL);      /* the open loop's schedule is tight */
    if (l->pubs == NULL || load_connect(l, mqtt_port) < 0) {
        fprintf(stderr, "bench: cannot connect the MQTT clients\n");
        load_free(l);
        return NULL;
    }
    return l;
}

/* Disconnect (waiting a little for the broker) and destroy a client. */
static void client_close(MQTTAsync *c) {
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
    int done = 0;
    if (*c == NULL) return;
    d.timeout = 1000;
    d.onSuccess5 = on_ok;
    d.onFailure5 = on_fail;
    d.context = &done;
    if (MQTTAsync_isConnected(*c) && MQTTAsync_disconnect(*c, &d) == MQTTASYNC_SUCCESS)
        wait_state(&done, now_ns() + 2000000000LL);
    MQTTAsync_destroy(c);
}

/* Disconnect and free everything; NULL is fine. */
void load_free(struct load *l) {
    if (l == NULL) return;
    client_close(&l->sub);
    for (int i = 0; l->pubs && i < l->npub; i++) {
        client_close(&l->pubs[i].client);
        free(l->pubs[i].seen);
    }
    free(l->pubs);
    free(l->ph.room_counts);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
    free(l);
}

/* ==================== Phases ==================== */

/* Reset the per-phase state and open the phase to the subscriber. */
static int phase_begin(struct load *l, const struct load_spec *s) {
    struct phase *ph = &l->ph;
    long long *rc = calloc((size_t)(s->rooms > 0 ? s->rooms : 1), sizeof(*rc));
    if (rc == NULL) return -1;
    pthread_mutex_lock(&l->lock);
    free(ph->room_counts);
    *ph = (struct phase){ .id = ph->id + 1, .active = 1, .spec = s,
                          .npub = s->publishers, .room_counts = rc };
    hist_reset(&ph->lat);
    ph->ws = now_ns() + s->warmup_ns;
    ph->we = ph->ws + (s->max_messages > 0 ? MESSAGES_DEADLINE_NS : s->duration_ns);
    for (int i = 0; i < l->npub; i++) {
        l->pubs[i].next_seq = 0;
        if (l->pubs[i].seen) memset(l->pubs[i].seen, 0, l->pubs[i].cap);
    }
    pthread_mutex_unlock(&l->lock);
    return 0;
}

/* Call the spec's mark at the window's start (end 0) or end (end 1). */
static void phase_mark(const struct load_spec *s, int end) {
    if (s->mark) s->mark(s->mark_arg, end);
}

/* Wait on the condition until `until` (ns) at most; lock held. With
 * each_message, every completion wakes us (the drain counts them). */
static void wait_cond(struct load *l, long long until, int each_message) {
    struct timespec ts = { (time_t)(until / 1000000000LL), (long)(until % 1000000000LL) };
    l->ph.waiting = each_message;
    pthread_cond_timedwait(&l->cond, &l->lock, &ts);
    l->ph.waiting = 0;
}

/* The closed loop: fill every publisher's window; the subscriber's
 * callback keeps it full until the window ends (at its time, or earlier
 * once --messages completions were counted). */
static void drive_closed(struct load *l, const struct load_spec *s) {
    for (int k = 0; k < s->window; k++)
        for (int p = 0; p < s->publishers; p++)
            send_next(l, s, l->ph.id, p, now_ns());
    sleep_until_ns(l->ph.ws);
    phase_mark(s, 0);
    pthread_mutex_lock(&l->lock);
    while (now_ns() < l->ph.we && !bench_interrupted) {
        long long t = now_ns() + 100000000LL;
        wait_cond(l, t < l->ph.we ? t : l->ph.we, 0);
    }
    if (l->ph.we > now_ns()) l->ph.we = now_ns();    /* interrupted */
    pthread_mutex_unlock(&l->lock);
    phase_mark(s, 1);
}

/* The open loop: message k is due at t0 + k / rate and goes out from
 * publisher k mod npub, stamped with its due time. Gives up on the
 * schedule when more than a second late past the window. Returns the
 * window's messages and the time the last of them left. */
static long long drive_open(struct load *l, const struct load_spec *s, long long *last) {
    double period = 1e9 / s->rate;
    long long t0 = now_ns(), win_sent = 0;
    int started = 0;
    *last = l->ph.ws;
    for (long long k = 0; !bench_interrupted; k++) {
        long long due = t0 + (long long)((double)k * period);
        if (due >= l->ph.we) break;
        if (due > now_ns()) sleep_until_ns(due);
        else if (now_ns() > l->ph.we + 1000000000LL) break;
        if (!started && due >= l->ph.ws) {
            phase_mark(s, 0);
            started = 1;
        }
        if (send_next(l, s, l->ph.id, (int)(k % s->publishers), due) == 0 && due >= l->ph.ws) {
            win_sent++;
            *last = now_ns();
        }
    }
    sleep_until_ns(l->ph.we);
    if (!started) phase_mark(s, 0);
    phase_mark(s, 1);
    return win_sent;
}

/* The generator's own rate in the open loop: the window's messages over
 * the time they took to leave. */
static void open_result(const struct load_spec *s, const struct phase *ph, long long win_sent,
                        long long last, struct load_result *r) {
    double span = (double)(last > ph->we ? last : ph->we) - (double)ph->ws;
    r->offered = s->rate;
    r->achieved = span > 0 ? (double)win_sent * 1e9 / span : 0;
    r->reached = r->achieved >= 0.98 * s->rate;
}

/* Paho 1.3 queues QoS 1 publishes beyond the broker's Receive Maximum and
 * sends them only when another publish is queued or after a second. When
 * the schedule has ended, a QoS 0 publish nobody receives does that, so
 * an overloaded phase's last messages are not held back by the library. */
static void kick_paho(struct load *l) {
    MQTTAsync_send(l->pubs[0].client, "bench/kick", 1, "k", 0, 0, NULL);
}

/* Wait for the stragglers while they keep coming (none for 5 s: give up)
 * and at most drain_ns; then close the phase to the subscriber, once no
 * callback is still sending for it. */
static void phase_drain(struct load *l, const struct load_spec *s) {
    long long deadline = now_ns() + s->drain_ns, seen = -1, moved = now_ns(), kicked = 0;
    pthread_mutex_lock(&l->lock);
    while (l->ph.received < l->ph.sent && now_ns() < deadline && !bench_interrupted &&
           now_ns() - moved < 5000000000LL) {
        if (l->ph.received != seen) {
            seen = l->ph.received;
            moved = now_ns();
        }
        if (now_ns() - kicked >= 20000000LL) {          /* every 20 ms */
            pthread_mutex_unlock(&l->lock);
            kick_paho(l);
            pthread_mutex_lock(&l->lock);
            kicked = now_ns();
        }
        wait_cond(l, now_ns() + 20000000LL, 1);
    }
    while (l->ph.refilling > 0) wait_cond(l, now_ns() + 20000000LL, 1);
    l->ph.active = 0;
    l->ph.spec = NULL;
    pthread_mutex_unlock(&l->lock);
}

/* The phase's result from what the subscriber counted. */
static void phase_result(struct load *l, struct load_result *r) {
    const struct phase *ph = &l->ph;
    pthread_mutex_lock(&l->lock);
    r->sent = ph->sent;
    r->errors = ph->errors;
    r->received = ph->received;
    r->measured = ph->measured;
    r->duplicates = ph->duplicates;
    r->bad = ph->bad;
    r->missing = r->sent - r->received;
    r->seconds = (double)(ph->we - ph->ws) / 1e9;
    r->rate = r->seconds > 0 ? (double)r->measured / r->seconds : 0;
    hist_summary(&ph->lat, &r->lat);
    pthread_mutex_unlock(&l->lock);
}

/* One phase: open or closed loop, then the drain and the counts. */
int load_run(struct load *l, const struct load_spec *s, struct load_result *r) {
    memset(r, 0, sizeof(*r));
    if (s->publishers < 1 || s->publishers > l->npub || s->payload > PAYLOAD_MAX ||
        phase_begin(l, s) < 0)
        return -1;
    if (s->rate > 0) {
        long long last;
        long long win_sent = drive_open(l, s, &last);
        open_result(s, &l->ph, win_sent, last, r);
    } else {
        drive_closed(l, s);
        r->reached = 1;
    }
    phase_drain(l, s);
    phase_result(l, r);
    return 0;
}

/* The last phase's completions per room (valid until the next phase). */
const long long *load_room_counts(const struct load *l) {
    return l->ph.room_counts;
}

/* ==================== Readiness ==================== */

/* Send a history request every 500 ms until a reply comes back. */
int load_probe(struct load *l, int timeout_ms, int (*alive)(void *), void *arg) {
    long long deadline = now_ns() + (long long)timeout_ms * 1000000LL;
    __atomic_store_n(&l->probe_ok, 0, __ATOMIC_RELEASE);
    while (now_ns() < deadline && !bench_interrupted && alive(arg)) {
        send_request(l->pubs[0].client, "chat/" PROBE "/history", "{\"limit\":1}", PROBE,
                     1);
        long long until = now_ns() + 500000000LL;
        while (now_ns() < until && !__atomic_load_n(&l->probe_ok, __ATOMIC_ACQUIRE))
            sleep_until_ns(now_ns() + 5000000LL);
        if (__atomic_load_n(&l->probe_ok, __ATOMIC_ACQUIRE)) return 0;
    }
    return -1;
}

/* The "Version" entry of Paho's version information. */
void load_paho_version(char *buf, size_t size) {
    snprintf(buf, size, "?");
    for (MQTTAsync_nameValue *v = MQTTAsync_getVersionInfo(); v && v->name; v++)
        if (strcmp(v->name, "Version") == 0) snprintf(buf, size, "%s", v->value);
}
