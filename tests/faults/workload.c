/* workload.c -- publisher and subscriber of the fault tests (workload.h).
 *
 * The test forks a workload process; both see one shared mapping (struct
 * shared and the arrays after it) guarded by a process-shared, robust
 * mutex. In the workload process, Paho's MQTTClient runs our callbacks on
 * its own thread; they only touch the shared part, under the mutex, and no
 * Paho call is made with the mutex held (Paho holds its own lock around
 * callbacks). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include <MQTTClient.h>

#include "workload.h"

#define TOKENS 65536
#define USERS 7
#define MAX_FDS 64
#define ALIGN(n) (((n) + 15) & ~(size_t)15)

enum { ST_UNSENT, ST_INFLIGHT, ST_ACKED };
enum role { ROLE_PUB, ROLE_SUB };

/* What the test and the workload process share. */
struct shared {
    pthread_mutex_t lock;         /* process-shared, robust */
    int stop;                     /* test -> workload: end */
    int ready;                    /* workload -> test: 1 subscribed, -1 failed */
    int finished;                 /* workload -> test: 1 all acked, -1 gave up */
    int inflight;
    int hiwater;                  /* highest seq published so far */
    int pub_lost, sub_lost;       /* a connection was lost */
    size_t nseen, capseen;
    struct wl_stats st;
};

struct workload {
    struct wl_opts o;
    pid_t pid;                    /* the workload process */
    struct shared *sh;            /* the mapping, of maplen bytes: */
    size_t maplen;
    unsigned char *state;         /*   per seq 1..n: ST_* */
    struct wl_seen *seen;         /*   capseen republishes */
    /* the workload process's own */
    char uri[64];
    int mqtt_port;
    MQTTClient pub, sub;
    int pub_fd;                   /* the publisher's socket; -1 unknown */
    int cursor;                   /* every seq below it is sent or acked */
    int *tok_seq;                 /* token -> seq in flight (0: none) */
    unsigned char *early;         /* token acknowledged before tok_seq was set */
    unsigned char *sends;         /* publishes per seq, saturating at 255 */
    struct timespec t0;
};

/* ==================== Small helpers ==================== */

/* Milliseconds elapsed since t. */
static long ms_since(const struct timespec *t) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* "m17" -> 17 for prefix "m" (see workload.h). */
long wl_number_after(const char *s, size_t n, const char *prefix) {
    size_t plen = strlen(prefix);
    long v = 0;
    if (n <= plen || strncmp(s, prefix, plen) != 0) return -1;
    for (size_t i = plen; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > 100000000) return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Take the shared lock, recovering it if its holder died (a killed
 * workload process). */
static void sh_lock(struct workload *w) {
    if (pthread_mutex_lock(&w->sh->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&w->sh->lock);
}

static void sh_unlock(struct workload *w) {
    pthread_mutex_unlock(&w->sh->lock);
}

/* Set a shared flag under the lock. */
static void sh_set(struct workload *w, int *flag, int v) {
    sh_lock(w);
    *flag = v;
    sh_unlock(w);
}

/* Read a shared flag under the lock. */
static int sh_get(struct workload *w, const int *flag) {
    sh_lock(w);
    int v = *flag;
    sh_unlock(w);
    return v;
}

/* ==================== Callbacks (Paho's thread) ==================== */

/* A publish of ours is acknowledged; lock held. */
static void mark_acked(struct workload *w, int seq) {
    if (w->state[seq] == ST_INFLIGHT) w->sh->inflight--;
    if (w->state[seq] != ST_ACKED) w->sh->st.acked++;
    w->state[seq] = ST_ACKED;
}

/* The broker acknowledged a publish (PUBACK). */
static void pub_delivered(void *ctx, MQTTClient_deliveryToken tok) {
    struct workload *w = ctx;
    unsigned t = (unsigned)tok % TOKENS;
    sh_lock(w);
    if (w->tok_seq[t]) mark_acked(w, w->tok_seq[t]);
    else w->early[t] = 1;
    w->tok_seq[t] = 0;
    sh_unlock(w);
}

/* The publisher subscribes to nothing; Paho wants the callback anyway. */
static int pub_arrived(void *ctx, char *topic, int topic_len, MQTTClient_message *m) {
    (void)ctx;
    (void)topic_len;
    MQTTClient_freeMessage(&m);
    MQTTClient_free(topic);
    return 1;
}

/* Decode a republish. 1 when it is of one of our rooms (s filled), 0 when
 * of another room, -1 when it does not parse. */
static int parse_republish(const struct workload *w, const void *data, size_t len,
                           struct wl_seen *s) {
    json_t *j = json_loadb(data, len, 0, NULL);
    const char *room = json_string_value(json_object_get(j, "room"));
    const char *text = json_string_value(json_object_get(j, "text"));
    json_t *id = json_object_get(j, "id");
    int rc = -1;
    long r = room ? wl_number_after(room, strlen(room), "f") : -1;
    if (room && (r < 0 || r >= w->o.rooms)) {
        rc = 0;
    } else if (room && text && json_is_integer(id)) {
        s->room = (int)r;
        s->seq = (int)wl_number_after(text, strlen(text), "m");
        s->id = json_integer_value(id);
        rc = s->seq >= 1 && s->seq <= w->o.n ? 1 : -1;
    }
    json_decref(j);
    return rc;
}

/* A republish reached the subscriber: record it (a full record counts as
 * bad, which fails the check). */
static int sub_arrived(void *ctx, char *topic, int topic_len, MQTTClient_message *m) {
    struct workload *w = ctx;
    struct wl_seen s;
    (void)topic_len;
    int rc = parse_republish(w, m->payload, (size_t)m->payloadlen, &s);
    sh_lock(w);
    if (rc > 0 && w->sh->nseen < w->sh->capseen) {
        w->seen[w->sh->nseen++] = s;
        w->sh->st.republishes++;
    } else if (rc == 0) {
        w->sh->st.foreign++;
    } else {
        w->sh->st.bad++;
    }
    sh_unlock(w);
    MQTTClient_freeMessage(&m);
    MQTTClient_free(topic);
    return 1;
}

/* A connection was lost: the workload loop reconnects. */
static void pub_lost(void *ctx, char *cause) {
    struct workload *w = ctx;
    (void)cause;
    sh_set(w, &w->sh->pub_lost, 1);
}

static void sub_lost(void *ctx, char *cause) {
    struct workload *w = ctx;
    (void)cause;
    sh_set(w, &w->sh->sub_lost, 1);
}

/* ==================== Connecting ==================== */

/* Add a 2- or 4-byte integer property. */
static void add_int_prop(MQTTProperties *props, enum MQTTPropertyCodes code, int v) {
    MQTTProperty p = { .identifier = code };
    if (code == MQTTPROPERTY_CODE_RECEIVE_MAXIMUM) p.value.integer2 = (unsigned short)v;
    else p.value.integer4 = (unsigned int)v;
    MQTTProperties_add(props, &p);
}

/* Connect c (created for role): the publisher with a clean start and our
 * window, the subscriber resuming its session and subscribing. 0 or -1. */
static int wl_connect(struct workload *w, MQTTClient c, enum role role) {
    MQTTClient_connectOptions co = MQTTClient_connectOptions_initializer5;
    MQTTProperties props = MQTTProperties_initializer;
    co.keepAliveInterval = 10;
    co.connectTimeout = 2;
    co.reliable = 0;
    co.maxInflightMessages = w->o.window;
    co.cleanstart = role == ROLE_PUB;
    if (role == ROLE_SUB) {
        add_int_prop(&props, MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL, 3600);
        add_int_prop(&props, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM, 65535);
    }
    MQTTResponse r = MQTTClient_connect5(c, &co, &props, NULL);
    int rc = r.reasonCode;
    MQTTResponse_free(r);
    MQTTProperties_free(&props);
    if (rc == MQTTCLIENT_SUCCESS && role == ROLE_SUB) {
        r = MQTTClient_subscribe5(c, "chat/+/msgs", 1, NULL, NULL);
        rc = r.reasonCode >= 0 && r.reasonCode <= 2 ? MQTTCLIENT_SUCCESS : -1;
        MQTTResponse_free(r);
    }
    return rc == MQTTCLIENT_SUCCESS ? 0 : -1;
}

/* A new client for role with its callbacks set; NULL on failure. */
static MQTTClient wl_client(struct workload *w, enum role role) {
    char id[96];
    MQTTClient c;
    MQTTClient_createOptions co = MQTTClient_createOptions_initializer;
    co.MQTTVersion = MQTTVERSION_5;
    snprintf(id, sizeof(id), "%s-%s", w->o.name, role == ROLE_PUB ? "pub" : "sub");
    if (MQTTClient_createWithOptions(&c, w->uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL,
                                     &co) != MQTTCLIENT_SUCCESS)
        return NULL;
    int rc = role == ROLE_PUB
        ? MQTTClient_setCallbacks(c, w, pub_lost, pub_arrived, pub_delivered)
        : MQTTClient_setCallbacks(c, w, sub_lost, sub_arrived, NULL);
    if (rc != MQTTCLIENT_SUCCESS) MQTTClient_destroy(&c);
    return rc == MQTTCLIENT_SUCCESS ? c : NULL;
}

/* Resume the subscriber's session when its connection was lost. */
static void sub_maintain(struct workload *w) {
    sh_lock(w);
    int lost = w->sh->sub_lost;
    w->sh->sub_lost = 0;
    sh_unlock(w);
    if (!lost) return;
    int rc = wl_connect(w, w->sub, ROLE_SUB);
    sh_lock(w);
    if (rc == 0) w->sh->st.sub_reconnects++;
    else w->sh->sub_lost = 1;
    sh_unlock(w);
    if (rc != 0) h_sleep_ms(100);
}

/* Forget the publisher's connection: what was in flight is to be sent
 * again. Called with no Paho publisher alive, so no callback races. */
static void pub_forget(struct workload *w) {
    sh_lock(w);
    for (int seq = 1; seq <= w->o.n; seq++)
        if (w->state[seq] == ST_INFLIGHT) w->state[seq] = ST_UNSENT;
    memset(w->tok_seq, 0, TOKENS * sizeof(*w->tok_seq));
    memset(w->early, 0, TOKENS);
    w->sh->inflight = 0;
    w->sh->pub_lost = 0;
    sh_unlock(w);
    w->cursor = 1;
}

/* The one socket to the broker in after[] that is not in before[], or -1. */
static int new_fd(const int *before, int nb, const int *after, int na) {
    int fd = -1, found = 0;
    for (int i = 0; i < na && i < MAX_FDS; i++) {
        int old = 0;
        for (int k = 0; k < nb && k < MAX_FDS; k++) old |= before[k] == after[i];
        if (!old) {
            fd = after[i];
            found++;
        }
    }
    return found == 1 ? fd : -1;
}

/* (Re)connect the publisher with a fresh client, noting its socket. */
static void pub_reconnect(struct workload *w) {
    int before[MAX_FDS], after[MAX_FDS];
    if (w->pub) MQTTClient_destroy(&w->pub);
    w->pub = NULL;
    w->pub_fd = -1;
    pub_forget(w);
    int nb = h_tcp_fds(w->mqtt_port, before, MAX_FDS);
    MQTTClient c = wl_client(w, ROLE_PUB);
    if (c == NULL || wl_connect(w, c, ROLE_PUB) < 0) {
        if (c) MQTTClient_destroy(&c);
        h_sleep_ms(100);
        return;
    }
    w->pub = c;
    w->pub_fd = new_fd(before, nb, after, h_tcp_fds(w->mqtt_port, after, MAX_FDS));
    sh_lock(w);
    w->sh->st.connects++;
    sh_unlock(w);
}

/* ==================== Publishing (the workload process) ==================== */

/* 1 when the next new message is due (pacing). */
static int pace_ok(const struct workload *w, int hiwater) {
    if (w->o.rate <= 0) return 1;
    return ms_since(&w->t0) >= (long)hiwater * 1000 / w->o.rate;
}

/* The next message to publish: the lowest not sent (a resend first, then
 * a new one when it is due). 0 when none now; -1 when all are acked. */
static int pub_next(struct workload *w) {
    int seq = 0;
    sh_lock(w);
    if (w->sh->st.acked == w->o.n) {
        seq = -1;
    } else if (w->sh->inflight < w->o.window) {
        while (w->cursor <= w->o.n && w->state[w->cursor] != ST_UNSENT) w->cursor++;
        if (w->cursor <= w->o.n &&
            (w->cursor <= w->sh->hiwater || pace_ok(w, w->sh->hiwater)))
            seq = w->cursor;
    }
    sh_unlock(w);
    return seq;
}

/* Book a publish Paho accepted with token tok. Returns 1 when it was the
 * first publish of seq. */
static int pub_booked(struct workload *w, int seq, MQTTClient_deliveryToken tok) {
    unsigned t = (unsigned)tok % TOKENS;
    int first = w->sends[seq] == 0;
    if (w->sends[seq] < 255) w->sends[seq]++;
    sh_lock(w);
    if (w->early[t]) {
        w->early[t] = 0;
        mark_acked(w, seq);
    } else if (w->state[seq] == ST_UNSENT) {
        w->state[seq] = ST_INFLIGHT;
        w->tok_seq[t] = seq;
        w->sh->inflight++;
    }
    if (first) {
        w->sh->hiwater = seq > w->sh->hiwater ? seq : w->sh->hiwater;
        w->sh->st.sent++;
    } else {
        w->sh->st.resent++;
    }
    sh_unlock(w);
    return first;
}

/* Shut the publisher's socket down under Paho: the broker sees the
 * connection drop without a DISCONNECT, with our last publishes in flight. */
static void pub_cut(struct workload *w) {
    if (w->pub_fd < 0) return;
    sh_lock(w);
    w->sh->st.cuts++;
    w->sh->st.inflight_at_cuts += w->sh->inflight;
    w->sh->pub_lost = 1;
    sh_unlock(w);
    shutdown(w->pub_fd, SHUT_RDWR);
    w->pub_fd = -1;
}

/* Publish message seq once. */
static void pub_send(struct workload *w, int seq) {
    char topic[64], payload[192];
    MQTTClient_message m = MQTTClient_message_initializer;
    MQTTClient_deliveryToken tok = 0;
    snprintf(topic, sizeof(topic), "chat/f%d/send", seq % w->o.rooms);
    snprintf(payload, sizeof(payload),
             "{\"user\":\"u%d\",\"text\":\"m%d\",\"client_msg_id\":\"%s-%d\"}",
             seq % USERS, seq, w->o.name, seq);
    m.payload = payload;
    m.payloadlen = (int)strlen(payload);
    m.qos = 1;
    MQTTResponse r = MQTTClient_publishMessage5(w->pub, topic, &m, &tok);
    int rc = r.reasonCode;
    MQTTResponse_free(r);
    if (rc == MQTTCLIENT_MAX_MESSAGES_INFLIGHT)
        h_sleep_ms(1);
    else if (rc != MQTTCLIENT_SUCCESS)
        sh_set(w, &w->sh->pub_lost, 1);
    else if (pub_booked(w, seq, tok) && w->o.cut_every > 0 && seq % w->o.cut_every == 0)
        pub_cut(w);
}

/* One step of the publisher: reconnect, send one message, or wait. */
static void pub_step(struct workload *w) {
    if (ms_since(&w->t0) > w->o.deadline_ms) {
        sh_set(w, &w->sh->finished, -1);
        return;
    }
    if (w->pub == NULL || sh_get(w, &w->sh->pub_lost)) {
        pub_reconnect(w);
        return;
    }
    int seq = pub_next(w);
    if (seq < 0) sh_set(w, &w->sh->finished, 1);
    else if (seq == 0) h_sleep_ms(1);
    else pub_send(w, seq);
}

/* ==================== The workload process ==================== */

/* Disconnect (if connected) and destroy a client. */
static void close_client(MQTTClient *c) {
    if (*c == NULL) return;
    if (MQTTClient_isConnected(*c))
        MQTTClient_disconnect5(*c, 500, MQTTREASONCODE_SUCCESS, NULL);
    MQTTClient_destroy(c);
}

/* Connect the subscriber and report to the test. 0 or -1. */
static int child_subscribe(struct workload *w) {
    w->sub = wl_client(w, ROLE_SUB);
    int rc = w->sub && wl_connect(w, w->sub, ROLE_SUB) == 0 ? 0 : -1;
    sh_set(w, &w->sh->ready, rc == 0 ? 1 : -1);
    return rc;
}

/* The workload process: subscribe, then keep the subscriber connected
 * until told to stop and publish until every message is acknowledged. */
static void child_main(struct workload *w) {
    w->tok_seq = calloc(TOKENS, sizeof(*w->tok_seq));
    w->early = calloc(TOKENS, 1);
    w->sends = calloc((size_t)w->o.n + 1, 1);
    int ok = w->tok_seq && w->early && w->sends && child_subscribe(w) == 0;
    if (!ok) sh_set(w, &w->sh->ready, -1);
    clock_gettime(CLOCK_MONOTONIC, &w->t0);
    while (ok && !sh_get(w, &w->sh->stop)) {
        sub_maintain(w);
        if (sh_get(w, &w->sh->finished) == 0) pub_step(w);
        else h_sleep_ms(20);
    }
    close_client(&w->pub);
    close_client(&w->sub);
    free(w->tok_seq);
    free(w->early);
    free(w->sends);
}

/* ==================== The test's side ==================== */

/* Map the shared part and make its mutex process-shared and robust. */
static int wl_map(struct workload *w) {
    size_t capseen = 8 * (size_t)w->o.n + 1024;
    size_t off_state = ALIGN(sizeof(struct shared));
    size_t off_seen = ALIGN(off_state + (size_t)w->o.n + 1);
    pthread_mutexattr_t a;
    w->maplen = off_seen + capseen * sizeof(struct wl_seen);
    void *p = mmap(NULL, w->maplen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -1;
    w->sh = p;
    w->state = (unsigned char *)p + off_state;
    w->seen = (struct wl_seen *)(void *)((char *)p + off_seen);
    w->sh->capseen = capseen;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&w->sh->lock, &a);
    pthread_mutexattr_destroy(&a);
    return 0;
}

/* Allocate a workload and its shared mapping (zeroed: all unsent). */
static struct workload *wl_new(struct h_env *e, const struct wl_opts *o) {
    struct workload *w = calloc(1, sizeof(*w));
    if (w == NULL) return NULL;
    w->o = *o;
    if (w->o.window <= 0) w->o.window = 16;
    if (w->o.deadline_ms <= 0) w->o.deadline_ms = 120000;
    w->mqtt_port = e->mqtt_port;
    w->pub_fd = -1;
    w->cursor = 1;
    snprintf(w->uri, sizeof(w->uri), "tcp://127.0.0.1:%d", e->mqtt_port);
    if (wl_map(w) < 0) {
        free(w);
        return NULL;
    }
    return w;
}

/* Fork the workload process; it dies with the test (PR_SET_PDEATHSIG). */
static int wl_fork(struct workload *w) {
    fflush(stdout);
    fflush(stderr);
    w->pid = fork();
    if (w->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        child_main(w);
        _exit(0);
    }
    return w->pid > 0 ? 0 : -1;
}

/* Wait up to 10 s for the workload's subscriber. 0 or -1. */
static int wl_wait_ready(struct workload *w) {
    for (int waited = 0; waited < 10000; waited += 10) {
        int ready = sh_get(w, &w->sh->ready);
        if (ready) return ready > 0 ? 0 : -1;
        h_sleep_ms(10);
    }
    return -1;
}

/* Fork the workload process and wait for its subscriber (workload.h). */
struct workload *wl_start(struct h_env *e, const struct wl_opts *o) {
    if (o->n <= 0 || o->rooms <= 0 || o->rooms > 100) return NULL;
    struct workload *w = wl_new(e, o);
    if (w == NULL) return NULL;
    if (wl_fork(w) < 0 || wl_wait_ready(w) < 0) {
        fprintf(stderr, "workload %s: the subscriber cannot connect\n", o->name);
        wl_free(w);
        return NULL;
    }
    return w;
}

/* Ask the workload process to stop; kill it after 10 s; free. */
void wl_free(struct workload *w) {
    if (w == NULL) return;
    if (w->pid > 0) {
        int reaped = 0;
        sh_set(w, &w->sh->stop, 1);
        for (int waited = 0; !reaped && waited < 10000; waited += 10) {
            reaped = waitpid(w->pid, NULL, WNOHANG) == w->pid;
            if (!reaped) h_sleep_ms(10);
        }
        if (!reaped) {
            kill(w->pid, SIGKILL);
            waitpid(w->pid, NULL, 0);
        }
    }
    pthread_mutex_destroy(&w->sh->lock);
    munmap(w->sh, w->maplen);
    free(w);
}

/* ==================== Observing ==================== */

/* Copy the workload's counters. */
void wl_stats(struct workload *w, struct wl_stats *st) {
    sh_lock(w);
    *st = w->sh->st;
    sh_unlock(w);
}

/* Poll until `count` distinct messages went out (workload.h). */
int wl_wait_sent(struct workload *w, int count, int timeout_ms) {
    struct wl_stats st;
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        wl_stats(w, &st);
        if (st.sent >= count) return 0;
        h_sleep_ms(10);
    }
    return -1;
}

/* Poll until the publisher finished or gave up (workload.h). */
int wl_wait_acked(struct workload *w, int timeout_ms) {
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        int f = sh_get(w, &w->sh->finished);
        if (f != 0) return f > 0 ? 0 : -1;
        h_sleep_ms(20);
    }
    return -1;
}

/* Copy what was acknowledged and seen, under the shared lock. */
void wl_snapshot(struct workload *w, struct wl_result *r) {
    memset(r, 0, sizeof(*r));
    r->n = w->o.n;
    r->rooms = w->o.rooms;
    r->acked = calloc((size_t)w->o.n + 1, 1);
    sh_lock(w);
    r->seen = malloc((w->sh->nseen ? w->sh->nseen : 1) * sizeof(*r->seen));
    if (r->acked && r->seen) {
        for (int seq = 1; seq <= w->o.n; seq++) r->acked[seq] = w->state[seq] == ST_ACKED;
        memcpy(r->seen, w->seen, w->sh->nseen * sizeof(*r->seen));
        r->nseen = w->sh->nseen;
    }
    r->bad = w->sh->st.bad;
    sh_unlock(w);
}

/* Free a snapshot. */
void wl_result_free(struct wl_result *r) {
    free(r->acked);
    free(r->seen);
    memset(r, 0, sizeof(*r));
}
