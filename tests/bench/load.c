/* load.c -- the MQTT load generator (see bench.h).
 *
 * One generator serves every phase: the bridge path, the broker-only
 * baseline and history requests. Publishers (libmosquitto, MQTT 5,
 * TCP_NODELAY) send messages that each carry a token
 * "<phase> <publisher> <seq> <t_ns>": chat messages in their text (padded
 * with 'x' to the payload size), history requests in their Correlation
 * Data, with bench/reply as Response Topic. One subscriber receives the
 * republished messages (chat/+/msgs), the baseline's (base/+/msgs) and
 * the history replies (bench/reply); a message is complete when the
 * subscriber has it, so latency and throughput are end to end. Every QoS 1
 * publish must also be acknowledged (PUBACK, reason code below 0x80)
 * before a phase ends.
 *
 * Closed loop: each publisher starts with `window` messages and sends the
 * next one whenever one of its messages completes, from the subscriber's
 * callback (no thread hand-off per message: the benchmark's own CPU per
 * message matters on a small machine), up to its quota if the spec sets
 * one. Open loop: the caller's thread sends on a fixed schedule, each
 * message stamped with its scheduled time, so a late generator shows up
 * as latency rather than hiding it.
 *
 * Threads: libmosquitto's own loop thread (mosquitto_loop_start) would
 * take every publish through a wake-up of that thread; instead two epoll
 * loops of ours drive the clients through mosquitto_loop_read/write/misc,
 * one for the subscriber and one for all publishers, and the clients stay
 * in libmosquitto's unthreaded mode, where mosquitto_publish writes the
 * packet at once from the calling thread (libmosquitto serialises writers
 * with its own locks). A packet it could not write at once (socket full,
 * or the client busy in a callback of its own) is left to the client's
 * loop, woken through an eventfd. The subscriber's callback takes our
 * lock; nobody calls libmosquitto holding it: sequence numbers are
 * reserved under it, the publish happens after.
 *
 * load_new_plain makes the reference instead: the same clients on
 * libmosquitto's own thread per client (mosquitto_loop_start), as a plain
 * libmosquitto program would run them, to show that the broker-alone
 * baseline through our loops is as fast as through plain clients. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "bench.h"

#define REPLY_TOPIC "bench/reply"
#define PROBE "probe"
#define TOPIC_MAX 256
#define TOKEN_MAX 96
#define BUF_MAX (PAYLOAD_MAX + 256)
#define CONNECT_MS 10000
#define KEEPALIVE_S 60
#define MISC_NS 500000000LL       /* mosquitto_loop_misc (keep-alive) period */
#define SEQ_MAX (1LL << 30)
#define MESSAGES_DEADLINE_NS (600 * 1000000000LL)  /* --messages: at most 10 min */
#define LOOPS 2                   /* 0: the subscriber, 1: the publishers */

struct netloop;

/* One MQTT connection. */
struct client {
    struct mosquitto *m;
    struct load *load;
    struct netloop *loop;
    int fd;                       /* its socket (the loop's) */
    int out_armed;                /* EPOLLOUT registered (the loop's) */
    int state;                    /* atomic: 0 pending, 1 done, -1 failed */
    int sub_state;                /* subscriber: 0 pending, 1 granted, -1 refused */
};

/* An epoll loop driving some clients. */
struct netloop {
    pthread_t thread;
    int started, ep, efd;         /* epoll fd; eventfd to wake it */
    int stop;                     /* atomic */
    pid_t tid;                    /* atomic: its thread id, for its CPU */
    struct client **c;
    int n;
};

struct pub {
    struct client cl;
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
    long long acked0, rejected0;  /* the load's counters at the phase's start */
    int refilling;                /* callbacks about to send the next message */
    int waiting;                  /* the driver waits on cond */
    long long *room_counts;
    struct hist lat;
};

struct load {
    int qos, npub;
    int plain;                    /* the library's own loop thread per client */
    struct pub *pubs;
    struct client sub;
    struct netloop loops[LOOPS];
    int probe_ok;                 /* atomic */
    long long published;          /* atomic: QoS > 0 publishes handed to the library */
    long long acked, rejected;    /* atomic: PUBACKs, those with a reason >= 0x80 */
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

/* ==================== Event loops ==================== */

/* Wake a client's loop (it then writes what the client still holds). */
static void loop_wake(struct netloop *lp) {
    uint64_t one = 1;
    if (write(lp->efd, &one, sizeof(one)) < 0) { /* full counter: it is awake anyway */ }
}

/* Watch the socket for writing exactly while the client holds output. */
static void arm_out(struct client *c) {
    int want = c->fd >= 0 && mosquitto_want_write(c->m);
    if (want == c->out_armed || c->fd < 0) return;
    struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
    if (epoll_ctl(c->loop->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->out_armed = want;
}

/* The connection broke (the library closed the socket): the client is
 * failed, and what it still had to send is lost (counted as missing). */
static void client_lost(struct client *c, int rc) {
    if (__atomic_exchange_n(&c->state, -1, __ATOMIC_ACQ_REL) != -1 &&
        !__atomic_load_n(&c->loop->stop, __ATOMIC_ACQUIRE))
        fprintf(stderr, "bench: MQTT client %d: connection lost (%s)\n", c->fd,
                mosquitto_strerror(rc));
    c->fd = -1;
}

/* Read what the socket has (one packet or more), write what is pending. */
static void client_io(struct client *c, uint32_t events) {
    int rc = MOSQ_ERR_SUCCESS;
    if (c->fd < 0) return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) rc = mosquitto_loop_read(c->m, 1);
    if (rc == MOSQ_ERR_SUCCESS && (events & EPOLLOUT || mosquitto_want_write(c->m)))
        rc = mosquitto_loop_write(c->m, 1);
    if (rc != MOSQ_ERR_SUCCESS) client_lost(c, rc);
    else arm_out(c);
}

/* A loop thread: epoll over its clients' sockets and its eventfd. */
static void *loop_main(void *arg) {
    struct netloop *lp = arg;
    struct epoll_event ev[64];
    long long misc = now_ns() + MISC_NS;
    __atomic_store_n(&lp->tid, gettid(), __ATOMIC_RELEASE);
    while (!__atomic_load_n(&lp->stop, __ATOMIC_ACQUIRE)) {
        int n = epoll_wait(lp->ep, ev, 64, 100), rescan = 0;
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == NULL) {             /* the eventfd */
                uint64_t v;
                if (read(lp->efd, &v, sizeof(v)) < 0) { /* already drained */ }
                rescan = 1;
            } else {
                client_io(ev[i].data.ptr, ev[i].events);
            }
        }
        if (rescan)
            for (int i = 0; i < lp->n; i++)
                if (lp->c[i]->fd >= 0 && mosquitto_want_write(lp->c[i]->m))
                    client_io(lp->c[i], EPOLLOUT);
        if (now_ns() >= misc) {
            for (int i = 0; i < lp->n; i++) {
                if (lp->c[i]->fd < 0) continue;
                int rc = mosquitto_loop_misc(lp->c[i]->m);
                if (rc != MOSQ_ERR_SUCCESS) client_lost(lp->c[i], rc);
                else arm_out(lp->c[i]);
            }
            misc = now_ns() + MISC_NS;
        }
    }
    return NULL;
}

/* Create a loop for the clients c[0..n) (their sockets connected). */
static int loop_init(struct netloop *lp, struct client **c, int n) {
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    lp->c = c;
    lp->n = n;
    lp->ep = epoll_create1(EPOLL_CLOEXEC);
    lp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (lp->ep < 0 || lp->efd < 0 || epoll_ctl(lp->ep, EPOLL_CTL_ADD, lp->efd, &ev) < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        struct epoll_event ce = { .events = EPOLLIN, .data.ptr = c[i] };
        c[i]->loop = lp;
        c[i]->out_armed = 0;
        if (epoll_ctl(lp->ep, EPOLL_CTL_ADD, c[i]->fd, &ce) < 0) return -1;
        arm_out(c[i]);
    }
    if (pthread_create(&lp->thread, NULL, loop_main, lp) != 0) return -1;
    lp->started = 1;
    return 0;
}

/* Stop a loop's thread and close its descriptors. */
static void loop_stop(struct netloop *lp) {
    if (lp->started) {
        __atomic_store_n(&lp->stop, 1, __ATOMIC_RELEASE);
        loop_wake(lp);
        pthread_join(lp->thread, NULL);
        lp->started = 0;
    }
    if (lp->ep > 0) close(lp->ep);
    if (lp->efd > 0) close(lp->efd);
    lp->ep = lp->efd = -1;
}

/* After a publish from outside the client's loop: if the library could
 * not write it all at once, the loop must. */
static void after_publish(struct client *c) {
    if (c->loop && mosquitto_want_write(c->m)) loop_wake(c->loop);
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

/* Publish on a client; counts QoS > 0 publishes for the PUBACK check. */
static int client_publish(struct load *l, struct client *c, const char *topic, size_t len,
                          const void *payload, int qos, const mosquitto_property *props) {
    int rc = mosquitto_publish_v5(c->m, NULL, topic, (int)len, payload, qos, false, props);
    if (rc == MOSQ_ERR_SUCCESS && qos > 0) __atomic_add_fetch(&l->published, 1, __ATOMIC_RELAXED);
    after_publish(c);
    return rc == MOSQ_ERR_SUCCESS ? 0 : -1;
}

/* Publish a history request with Response Topic and the token as
 * Correlation Data (MQTT 5 request/response). */
static int send_request(struct load *l, struct client *c, const char *topic, const char *body,
                        const char *corr, int qos) {
    mosquitto_property *props = NULL;
    int rc = -1;
    if (mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, REPLY_TOPIC) ==
            MOSQ_ERR_SUCCESS &&
        mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, corr,
                                      (uint16_t)strlen(corr)) == MOSQ_ERR_SUCCESS)
        rc = client_publish(l, c, topic, strlen(body), body, qos, props);
    mosquitto_property_free_all(&props);
    return rc;
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
        return send_request(l, &l->pubs[p].cl, topic, s->request, token, l->qos);
    }
    snprintf(topic, sizeof(topic), "%s/%s%d/%s", s->target == TARGET_BRIDGE ? "chat" : "base",
             s->room_prefix, room_of(&l->ph, p, seq),
             s->target == TARGET_BRIDGE ? "send" : "msgs");
    size_t len = chat_payload(buf, s->payload, p, token);
    return client_publish(l, &l->pubs[p].cl, topic, len, buf, l->qos, NULL);
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

/* ==================== Subscriber (its loop's thread) ==================== */

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
static int reply_token(struct load *l, const mosquitto_property *props, struct token *t) {
    void *v = NULL;
    uint16_t len = 0;
    int rc = -1;
    if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &v, &len, false) ==
        NULL)
        return -1;
    if (len == strlen(PROBE) && memcmp(v, PROBE, len) == 0)
        __atomic_store_n(&l->probe_ok, 1, __ATOMIC_RELEASE);
    else
        rc = token_parse(v, len, t);
    free(v);
    return rc;
}

/* The subscriber's callback: parse the token, count the completion, and
 * in a closed loop send the publisher's next message. */
static void on_message(struct mosquitto *m, void *ctx, const struct mosquitto_message *msg,
                       const mosquitto_property *props) {
    struct load *l = ((struct client *)ctx)->load;
    long long now = now_ns();
    struct token t;
    const char *p = msg->payload;
    size_t n = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    int reply = strcmp(msg->topic, REPLY_TOPIC) == 0, next = 0;
    const struct load_spec *s = NULL;
    (void)m;
    int rc = reply ? reply_token(l, props, &t) : token_from_text(p, n, &t);
    pthread_mutex_lock(&l->lock);
    if (rc == 0 && l->ph.active) {              /* the spec is valid while active */
        s = l->ph.spec;
        next = complete(l, &t, msg->topic, !reply || history_reply_ok(s, p, n), now);
    }
    pthread_mutex_unlock(&l->lock);
    if (next) {
        send_next(l, s, t.phase, t.pub, now_ns());
        pthread_mutex_lock(&l->lock);
        l->ph.refilling--;
        if (l->ph.waiting) pthread_cond_signal(&l->cond);
        pthread_mutex_unlock(&l->lock);
    }
}

/* A publisher's PUBACK: counted; a reason code of 0x80 or more is a
 * refusal (0x10, no matching subscribers, is a success). */
static void on_publish(struct mosquitto *m, void *ctx, int mid, int reason,
                       const mosquitto_property *props) {
    struct load *l = ((struct client *)ctx)->load;
    (void)m;
    (void)mid;
    (void)props;
    if (reason >= 0x80) __atomic_add_fetch(&l->rejected, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&l->acked, 1, __ATOMIC_RELEASE);
}

/* ==================== Connecting ==================== */

/* CONNACK: the client is connected, or refused. */
static void on_connect(struct mosquitto *m, void *ctx, int rc, int flags,
                       const mosquitto_property *props) {
    struct client *c = ctx;
    (void)m;
    (void)flags;
    (void)props;
    if (rc != 0) fprintf(stderr, "bench: MQTT connect refused: %s\n", mosquitto_reason_string(rc));
    __atomic_store_n(&c->state, rc == 0 ? 1 : -1, __ATOMIC_RELEASE);
}

/* SUBACK: every filter granted at the QoS asked for. */
static void on_subscribe(struct mosquitto *m, void *ctx, int mid, int n, const int *granted,
                         const mosquitto_property *props) {
    struct client *c = ctx;
    int ok = n == 3;
    (void)m;
    (void)mid;
    (void)props;
    for (int i = 0; i < n; i++) ok &= granted[i] == c->load->qos;
    __atomic_store_n(&c->sub_state, ok ? 1 : -1, __ATOMIC_RELEASE);
}

/* Wait until *state leaves 0; 0 when it became 1. */
static int wait_state(int *state, long long deadline) {
    int s;
    while ((s = __atomic_load_n(state, __ATOMIC_ACQUIRE)) == 0 && now_ns() < deadline &&
           !bench_interrupted)
        sleep_until_ns(now_ns() + 2000000);
    return s == 1 ? 0 : -1;
}

/* Create an MQTT 5 client with TCP_NODELAY and connect its socket (clean
 * start; CONNECT is sent, the CONNACK comes to its loop). The subscriber
 * (sub set) gets the message callback and asks for Receive Maximum 65535,
 * so that the broker never holds messages back for it; publishers count
 * their PUBACKs. */
static int client_start(struct load *l, struct client *c, int port, const char *id, int sub) {
    c->load = l;
    c->fd = -1;
    c->m = mosquitto_new(id, true, c);
    if (c->m == NULL ||
        mosquitto_int_option(c->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5) != 0 ||
        mosquitto_int_option(c->m, MOSQ_OPT_TCP_NODELAY, 1) != 0 ||
        (sub && mosquitto_int_option(c->m, MOSQ_OPT_RECEIVE_MAXIMUM, 65535) != 0))
        return -1;
    mosquitto_connect_v5_callback_set(c->m, on_connect);
    if (sub) {
        mosquitto_message_v5_callback_set(c->m, on_message);
        mosquitto_subscribe_v5_callback_set(c->m, on_subscribe);
    } else {
        mosquitto_publish_v5_callback_set(c->m, on_publish);
    }
    int rc = mosquitto_connect_bind_v5(c->m, "127.0.0.1", port, KEEPALIVE_S, NULL, NULL);
    if (rc == MOSQ_ERR_SUCCESS && l->plain) rc = mosquitto_loop_start(c->m);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "bench: MQTT connect to port %d: %s\n", port, mosquitto_strerror(rc));
        return -1;
    }
    c->fd = mosquitto_socket(c->m);
    return c->fd >= 0 ? 0 : -1;
}

/* Subscribe the subscriber to the three filters; 0 or -1. */
static int subscribe_all(struct load *l) {
    char *filters[3] = { "chat/+/msgs", "base/+/msgs", REPLY_TOPIC };
    if (mosquitto_subscribe_multiple(l->sub.m, NULL, 3, filters, l->qos, 0, NULL) !=
        MOSQ_ERR_SUCCESS)
        return -1;
    after_publish(&l->sub);
    return wait_state(&l->sub.sub_state, now_ns() + CONNECT_MS * 1000000LL);
}

/* Connect the subscriber and every publisher, start their loops, wait
 * for every CONNACK, subscribe. 0 or -1. */
static int load_connect(struct load *l, int port) {
    static struct client *subs[1];
    const char *who = l->plain ? "bench-plain" : "bench";
    char id[32];
    long long deadline = now_ns() + CONNECT_MS * 1000000LL;
    struct client **pubs = calloc((size_t)l->npub, sizeof(*pubs));
    if (pubs == NULL) return -1;
    subs[0] = &l->sub;
    l->loops[1].c = pubs;                       /* freed with the load */
    snprintf(id, sizeof(id), "%s-sub", who);
    if (client_start(l, &l->sub, port, id, 1) < 0) return -1;
    for (int i = 0; i < l->npub; i++) {
        snprintf(id, sizeof(id), "%s-pub-%d", who, i);
        pubs[i] = &l->pubs[i].cl;
        if (client_start(l, pubs[i], port, id, 0) < 0) return -1;
    }
    if (!l->plain &&
        (loop_init(&l->loops[0], subs, 1) < 0 || loop_init(&l->loops[1], pubs, l->npub) < 0))
        return -1;
    if (wait_state(&l->sub.state, deadline) < 0) return -1;
    for (int i = 0; i < l->npub; i++)
        if (wait_state(&l->pubs[i].cl.state, deadline) < 0) return -1;
    return subscribe_all(l);
}

/* Allocate a load and connect its clients. */
static struct load *load_make(int mqtt_port, int publishers, int qos, int plain) {
    struct load *l = calloc(1, sizeof(*l));
    if (l == NULL) return NULL;
    mosquitto_lib_init();
    l->plain = plain;
    l->qos = qos;
    l->npub = publishers;
    l->pubs = calloc((size_t)publishers, sizeof(*l->pubs));
    for (int i = 0; i < LOOPS; i++) l->loops[i].ep = l->loops[i].efd = -1;
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

/* The load: our two epoll loops. */
struct load *load_new(int mqtt_port, int publishers, int qos) {
    return load_make(mqtt_port, publishers, qos, 0);
}

/* The reference: libmosquitto's own thread per client. */
struct load *load_new_plain(int mqtt_port, int publishers, int qos) {
    return load_make(mqtt_port, publishers, qos, 1);
}

/* Send DISCONNECT if connected (our loops are stopped by now: it is
 * written at once; a plain client's thread writes it and then ends). */
static void client_disconnect(const struct load *l, struct client *c) {
    int connected = c->m && __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == 1;
    if (connected) mosquitto_disconnect_v5(c->m, 0, NULL);
    if (l->plain && c->m) mosquitto_loop_stop(c->m, !connected);
}

/* Stop the loops, disconnect, free everything; NULL is fine. */
void load_free(struct load *l) {
    if (l == NULL) return;
    for (int i = 0; i < LOOPS; i++) loop_stop(&l->loops[i]);
    client_disconnect(l, &l->sub);
    for (int i = 0; l->pubs && i < l->npub; i++) client_disconnect(l, &l->pubs[i].cl);
    if (l->sub.m) mosquitto_destroy(l->sub.m);
    for (int i = 0; l->pubs && i < l->npub; i++) {
        if (l->pubs[i].cl.m) mosquitto_destroy(l->pubs[i].cl.m);
        free(l->pubs[i].seen);
    }
    free(l->loops[1].c);
    free(l->pubs);
    free(l->ph.room_counts);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
    free(l);
    mosquitto_lib_cleanup();
}

/* The loops' thread ids (the subscriber's first). */
int load_threads(const struct load *l, pid_t *tids, int max) {
    int n = 0;
    for (int i = 0; i < LOOPS && n < max; i++) {
        pid_t t = __atomic_load_n(&l->loops[i].tid, __ATOMIC_ACQUIRE);
        if (t > 0) tids[n++] = t;
    }
    return n;
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
                          .npub = s->publishers, .room_counts = rc,
                          .acked0 = __atomic_load_n(&l->acked, __ATOMIC_ACQUIRE),
                          .rejected0 = __atomic_load_n(&l->rejected, __ATOMIC_ACQUIRE) };
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

/* QoS > 0 publishes the broker has not acknowledged yet. */
static long long unacked(struct load *l) {
    return __atomic_load_n(&l->published, __ATOMIC_ACQUIRE) -
           __atomic_load_n(&l->acked, __ATOMIC_ACQUIRE);
}

/* Wait for the stragglers and the last PUBACKs while they keep coming
 * (nothing for 5 s: give up) and at most drain_ns; then close the phase
 * to the subscriber, once no callback is still sending for it. */
static void phase_drain(struct load *l, const struct load_spec *s) {
    long long deadline = now_ns() + s->drain_ns, seen = -1, moved = now_ns();
    pthread_mutex_lock(&l->lock);
    while ((l->ph.received < l->ph.sent || unacked(l) > 0) && now_ns() < deadline &&
           !bench_interrupted && now_ns() - moved < 5000000000LL) {
        long long progress = l->ph.received + __atomic_load_n(&l->acked, __ATOMIC_ACQUIRE);
        if (progress != seen) {
            seen = progress;
            moved = now_ns();
        }
        wait_cond(l, now_ns() + 20000000LL, 1);
    }
    while (l->ph.refilling > 0) wait_cond(l, now_ns() + 20000000LL, 1);
    l->ph.active = 0;
    l->ph.spec = NULL;
    pthread_mutex_unlock(&l->lock);
}

/* The phase's result from what the subscriber and the PUBACKs counted. */
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
    r->acked = __atomic_load_n(&l->acked, __ATOMIC_ACQUIRE) - ph->acked0;
    r->rejected = __atomic_load_n(&l->rejected, __ATOMIC_ACQUIRE) - ph->rejected0;
    r->unacked = l->qos > 0 ? unacked(l) : 0;
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
        send_request(l, &l->pubs[0].cl, "chat/" PROBE "/history", "{\"limit\":1}", PROBE, 1);
        long long until = now_ns() + 500000000LL;
        while (now_ns() < until && !__atomic_load_n(&l->probe_ok, __ATOMIC_ACQUIRE))
            sleep_until_ns(now_ns() + 5000000LL);
        if (__atomic_load_n(&l->probe_ok, __ATOMIC_ACQUIRE)) return 0;
    }
    return -1;
}

/* "libmosquitto 2.0.11", the library's version at run time. */
void load_client_version(char *buf, size_t size) {
    int major, minor, rev;
    mosquitto_lib_version(&major, &minor, &rev);
    snprintf(buf, size, "libmosquitto %d.%d.%d", major, minor, rev);
}
