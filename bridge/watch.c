/* watch.c -- the keyspace listener (see watch.h).
 *
 * One thread: connect to every node (one, the located primary, or each
 * cluster primary), make sure keyevent notifications are on, SUBSCRIBE to
 * the incrby, hdel and del channels, then reconcile (SCAN the room counters on a second, short connection
 * per node); from then on poll the subscribed sockets and turn each
 * notification into a queued event. Any error drops every connection and
 * the loop starts again after a backoff, which reconciles again. */
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "log.h"
#include "result.h"
#include "rnode.h"
#include "watch.h"

#define WATCH_NODES_MAX 64
#define WATCH_POLL_MS 200
#define WATCH_CHECK_MS 5000        /* cluster, locator: re-read the primaries */
#define WATCH_RESCAN_MS 10000      /* notifications off: reconcile this often */
#define WATCH_BACKOFF_MAX_MS 5000
#define WATCH_EVENTS "E$hg"        /* what notify-keyspace-events needs */
#define WATCH_CHANNELS 3           /* incrby, hdel, del (watch_subscribe) */

struct watch_node {
    char host[RNODE_HOST_MAX];
    int port;
    redisContext *c;               /* subscribed; NULL when not connected */
};

struct watch {
    struct watch_opts o;           /* strings owned */
    pthread_t thread;
    int started, stop;             /* stop: atomic */
    pthread_mutex_t lock;          /* the queue */
    pthread_cond_t moved;          /* the worker took events */
    struct watch_event *q;
    size_t head, count;
    int overflow;                  /* an event was dropped: reconcile */
    struct watch_node nodes[WATCH_NODES_MAX];
    size_t nnodes;
    int ready;                     /* atomic */
    int live;                      /* every node has notifications on */
    int said_off, said_sub, said_err;  /* the notify lines already given */
    long long next_check, next_scan;
};

/* ==================== Lifecycle ==================== */

/* strdup that accepts NULL. 0, or -1 when out of memory. */
static int watch_dup(const char **dst, const char *src) {
    *dst = src ? strdup(src) : NULL;
    return src && *dst == NULL ? -1 : 0;
}

struct watch *watch_new(const struct watch_opts *o) {
    struct watch *w = calloc(1, sizeof(*w));
    if (w == NULL) return NULL;
    pthread_mutex_init(&w->lock, NULL);
    clock_cond_init(&w->moved);
    w->o = *o;
    w->o.host = w->o.unix_socket = w->o.cluster_nodes = NULL;
    w->o.username = w->o.password = w->o.key_prefix = NULL;
    w->q = calloc(WATCH_QUEUE, sizeof(*w->q));
    if (w->q == NULL || watch_dup(&w->o.host, o->host) ||
        watch_dup(&w->o.unix_socket, o->unix_socket) ||
        watch_dup(&w->o.cluster_nodes, o->cluster_nodes) ||
        watch_dup(&w->o.username, o->username) || watch_dup(&w->o.password, o->password) ||
        watch_dup(&w->o.key_prefix, o->key_prefix ? o->key_prefix : "chatroom")) {
        watch_free(w);
        return NULL;
    }
    return w;
}

/* Close every subscribed connection. */
static void watch_drop(struct watch *w) {
    for (size_t i = 0; i < w->nnodes; i++) {
        if (w->nodes[i].c) redisFree(w->nodes[i].c);
        w->nodes[i].c = NULL;
    }
    w->nnodes = 0;
    __atomic_store_n(&w->ready, 0, __ATOMIC_RELAXED);
}

void watch_free(struct watch *w) {
    if (w == NULL) return;
    if (w->started) {
        __atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
        pthread_mutex_lock(&w->lock);
        pthread_cond_broadcast(&w->moved);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
    }
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->moved);
    watch_drop(w);
    free((char *)w->o.host);
    free((char *)w->o.unix_socket);
    free((char *)w->o.cluster_nodes);
    free((char *)w->o.username);
    free((char *)w->o.password);
    free((char *)w->o.key_prefix);
    free(w->q);
    free(w);
}

static int watch_stopping(struct watch *w) {
    return __atomic_load_n(&w->stop, __ATOMIC_ACQUIRE);
}

int watch_ready(struct watch *w) {
    return __atomic_load_n(&w->ready, __ATOMIC_RELAXED);
}

/* A line for the log, through the caller's callback. */
static void watch_say(struct watch *w, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void watch_say(struct watch *w, int level, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (w->o.notify) w->o.notify(w->o.notify_arg, level, msg);
}

/* ==================== The queue ==================== */

/* Queue ev. A room already last in the queue for the same reason is not
 * queued twice. When full: wait for room (block), or drop it and mark
 * the overflow, which makes the thread reconcile. The first event of an
 * empty queue wakes the taker (on_event). */
static void watch_push(struct watch *w, const struct watch_event *ev, int block) {
    pthread_mutex_lock(&w->lock);
    if (w->count) {
        const struct watch_event *last = &w->q[(w->head + w->count - 1) % WATCH_QUEUE];
        if (ev->kind != WATCH_GONE && last->kind == ev->kind &&
            strcmp(last->room, ev->room) == 0) {
            pthread_mutex_unlock(&w->lock);
            return;
        }
    }
    while (block && w->count == WATCH_QUEUE && !watch_stopping(w)) {
        struct timespec t = clock_deadline(WATCH_POLL_MS);
        clock_cond_wait(&w->moved, &w->lock, &t);
    }
    int first = w->count == 0;
    if (w->count < WATCH_QUEUE) w->q[(w->head + w->count++) % WATCH_QUEUE] = *ev;
    else w->overflow = 1;
    pthread_mutex_unlock(&w->lock);
    if (first && w->o.on_event) w->o.on_event(w->o.on_event_arg);
}

size_t watch_take(struct watch *w, struct watch_event *out, size_t max) {
    size_t n = 0;
    pthread_mutex_lock(&w->lock);
    while (n < max && w->count) {
        out[n++] = w->q[w->head];
        w->head = (w->head + 1) % WATCH_QUEUE;
        w->count--;
    }
    if (n) pthread_cond_broadcast(&w->moved);
    pthread_mutex_unlock(&w->lock);
    return n;
}

/* 1 once (and only once) after an event was dropped. */
static int watch_overflowed(struct watch *w) {
    pthread_mutex_lock(&w->lock);
    int o = w->overflow;
    w->overflow = 0;
    pthread_mutex_unlock(&w->lock);
    return o;
}

/* ==================== Keys ==================== */

/* Parse a key of the schema: P:R:messages (kind WATCH_ROOM) or P:R:N
 * (id N). In cluster mode the room is written {R}. 0, or -1 for any
 * other key. */
static int watch_parse_key(const struct watch *w, const char *key, size_t len,
                           struct watch_event *ev, int *is_counter) {
    size_t pl = strlen(w->o.key_prefix), rl;
    if (len <= pl + 1 || memcmp(key, w->o.key_prefix, pl) != 0 || key[pl] != ':') return -1;
    const char *r = key + pl + 1, *end = key + len, *colon;
    if (w->o.cluster) {
        if (*r != '{' || (colon = memchr(r, '}', (size_t)(end - r))) == NULL) return -1;
        r++;
        rl = (size_t)(colon - r);
        colon++;
    } else {
        if ((colon = memchr(r, ':', (size_t)(end - r))) == NULL) return -1;
        rl = (size_t)(colon - r);
    }
    if (colon >= end || *colon != ':' || rl == 0 || rl > NAME_MAX_BYTES ||
        !name_valid_room(r, rl))
        return -1;
    const char *rest = colon + 1;
    size_t restl = (size_t)(end - rest);
    memcpy(ev->room, r, rl);
    ev->room[rl] = '\0';
    *is_counter = restl == 8 && memcmp(rest, "messages", 8) == 0;
    if (*is_counter) return 0;
    if (restl == 0 || restl > 18 || strspn(rest, "0123456789") < restl) return -1;
    ev->id = strtoll(rest, NULL, 10);
    return ev->id > 0 ? 0 : -1;
}

/* One notification: channel "__keyevent@0__:EVENT", the key as the
 * message. A counter's incrby (a writer's INCR: the bridge's own sends
 * SET it, and are not told here) is news in the room; a message hash's
 * hdel or del a delete to finish. Anything else (another key, another
 * program's keys) is not ours. */
static void watch_on_event(struct watch *w, const char *chan, const char *key, size_t len) {
    static const char pre[] = "__keyevent@0__:";
    struct watch_event ev = { 0 };
    int counter;
    if (strncmp(chan, pre, sizeof(pre) - 1) != 0) return;
    const char *what = chan + sizeof(pre) - 1;
    if (watch_parse_key(w, key, len, &ev, &counter)) return;
    if (counter && strcmp(what, "incrby") == 0) ev.kind = WATCH_ROOM;
    else if (!counter && (strcmp(what, "hdel") == 0 || strcmp(what, "del") == 0))
        ev.kind = WATCH_GONE;
    if (counter) ev.id = 0;
    if (ev.kind) watch_push(w, &ev, 0);
}

/* ==================== Nodes ==================== */

/* A connection to node (its Unix socket when the options name one). */
static redisContext *watch_open(struct watch *w, const struct watch_node *n,
                                char *err, size_t errlen) {
    struct rnode_conf conf = { w->o.username, w->o.password, w->o.timeout_ms };
    int unix_path = w->o.unix_socket && !w->o.cluster && !w->o.locate;
    return rnode_open(&conf, n->host, n->port, unix_path ? w->o.unix_socket : NULL,
                      err, errlen);
}

/* Add host:port to out unless it is there. */
static void watch_add_node(struct watch_node *out, size_t *n, const char *host, int port) {
    for (size_t i = 0; i < *n; i++)
        if (out[i].port == port && strcmp(out[i].host, host) == 0) return;
    if (*n == WATCH_NODES_MAX) return;
    snprintf(out[*n].host, sizeof(out[*n].host), "%s", host);
    out[*n].port = port;
    out[(*n)++].c = NULL;
}

/* The primaries of CLUSTER SLOTS as one seed answers it. */
static int watch_cluster_from(struct watch *w, const char *host, int port,
                              struct watch_node *out, size_t *n) {
    char err[256];
    struct watch_node seed = { .port = port };
    snprintf(seed.host, sizeof(seed.host), "%s", host);
    redisContext *c = watch_open(w, &seed, err, sizeof(err));
    if (c == NULL) return -1;
    redisReply *r = redisCommand(c, "CLUSTER SLOTS");
    int rc = r && r->type == REDIS_REPLY_ARRAY && r->elements ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < r->elements; i++) {
        const redisReply *s = r->element[i];
        if (s->type != REDIS_REPLY_ARRAY || s->elements < 3 ||
            s->element[2]->type != REDIS_REPLY_ARRAY || s->element[2]->elements < 2)
            continue;
        const redisReply *h = s->element[2]->element[0], *p = s->element[2]->element[1];
        if (h->type == REDIS_REPLY_STRING && p->type == REDIS_REPLY_INTEGER)
            watch_add_node(out, n, h->str[0] ? h->str : host, (int)p->integer);
    }
    if (r) freeReplyObject(r);
    redisFree(c);
    return rc;
}

/* Callback of rnode_parse_list: ask one seed, until one answered. */
static int watch_seed(void *arg, const char *host, int port) {
    void **a = arg;
    struct watch *w = a[0];
    size_t *n = a[2];
    if (*n == 0) watch_cluster_from(w, host, port, a[1], n);
    return 0;
}

/* Where to subscribe now, into out; how many (0: nowhere known yet). */
static size_t watch_targets(struct watch *w, struct watch_node *out) {
    size_t n = 0;
    char addr[REXEC_ADDR_MAX], host[RNODE_HOST_MAX];
    int port;
    if (w->o.cluster) {
        void *a[3] = { w, out, &n };
        char seed[REXEC_ADDR_MAX];
        rnode_format_addr(seed, sizeof(seed), w->o.host, w->o.port);
        rnode_parse_list(w->o.cluster_nodes ? w->o.cluster_nodes : seed, watch_seed, a);
    } else if (w->o.locate) {
        if (w->o.locate(w->o.locate_arg, addr, sizeof(addr)) == 0 &&
            rnode_parse_addr(addr, host, sizeof(host), &port) == 0)
            watch_add_node(out, &n, host, port);
    } else {
        watch_add_node(out, &n, w->o.host ? w->o.host : "127.0.0.1", w->o.port);
    }
    return n;
}

/* 1 when flags (notify-keyspace-events) cover what the listener needs. */
static int watch_flags_ok(const char *flags) {
    if (strchr(flags, 'E') == NULL) return 0;
    if (strchr(flags, 'A')) return 1;
    return strchr(flags, '$') && strchr(flags, 'h') && strchr(flags, 'g');
}

/* Make sure node c sends the notifications: read notify-keyspace-events,
 * add what is missing with CONFIG SET. 1 when they are on, 0 when they
 * are off and could not be turned on (said once). */
static int watch_events_on(struct watch *w, redisContext *c, const char *addr) {
    char flags[64] = "", want[80];
    redisReply *r = redisCommand(c, "CONFIG GET notify-keyspace-events");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        snprintf(flags, sizeof(flags), "%s", r->element[1]->str);
    if (r) freeReplyObject(r);
    if (watch_flags_ok(flags)) return 1;
    snprintf(want, sizeof(want), "%s%s", flags, WATCH_EVENTS);
    r = redisCommand(c, "CONFIG SET notify-keyspace-events %s", want);
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (ok)
        watch_say(w, LOG_LEVEL_INFO, "redis %s: notify-keyspace-events was \"%s\"; set to "
                  "\"%s\" to see other writers' messages live", addr, flags, want);
    else if (!w->said_off++)
        watch_say(w, LOG_LEVEL_WARN, "redis %s: keyspace notifications are off "
                  "(notify-keyspace-events \"%s\") and CONFIG SET was refused (%s): "
                  "messages other programs write into Redis are not seen live, only by "
                  "a reconcile every %d s; set notify-keyspace-events %s", addr, flags,
                  r && r->type == REDIS_REPLY_ERROR ? r->str : "no answer",
                  WATCH_RESCAN_MS / 1000, WATCH_EVENTS);
    if (r) freeReplyObject(r);
    return ok;
}

/* Node n refused the subscription (an ACL without the channel): say so
 * once, and reconcile every WATCH_RESCAN_MS instead. Takes r. 0. */
static int watch_unsubscribed(struct watch *w, struct watch_node *n, const char *addr,
                              redisReply *r) {
    if (!w->said_sub++)
        watch_say(w, LOG_LEVEL_WARN, "redis %s: SUBSCRIBE to keyevent notifications "
                  "refused (%s): messages other programs write into Redis are not seen "
                  "live, only by a reconcile every %d s; allow the channels "
                  "__keyevent@0__:incrby __keyevent@0__:hdel __keyevent@0__:del",
                  addr, r->str, WATCH_RESCAN_MS / 1000);
    freeReplyObject(r);
    redisFree(n->c);
    n->c = NULL;
    w->live = 0;
    return 0;
}

/* Connect node n, notifications checked, subscribed to the three
 * events other writers' sends and deletes make (keyevent channels: the
 * bridge's own writes, told on others, are never sent to it). 0 or -1
 * (err says why). */
static int watch_subscribe(struct watch *w, struct watch_node *n, char *err, size_t errlen) {
    char addr[REXEC_ADDR_MAX];
    redisReply *r = NULL;
    rnode_format_addr(addr, sizeof(addr), n->host, n->port);
    n->c = watch_open(w, n, err, errlen);
    if (n->c == NULL) return -1;
    if (!watch_events_on(w, n->c, addr)) w->live = 0;
    if (redisAppendCommand(n->c, "SUBSCRIBE __keyevent@0__:incrby __keyevent@0__:hdel "
                           "__keyevent@0__:del") == REDIS_OK) {
        for (int i = 0; i < WATCH_CHANNELS; i++) {    /* a reply per channel */
            if (redisGetReply(n->c, (void **)&r) != REDIS_OK) break;
            if (r->type == REDIS_REPLY_ERROR) return watch_unsubscribed(w, n, addr, r);
            freeReplyObject(r);
            if (i == WATCH_CHANNELS - 1) return 0;
        }
    }
    snprintf(err, errlen, "redis %s: SUBSCRIBE: %s", addr,
             n->c->err ? n->c->errstr : "refused");
    return -1;
}

/* The reconcile of one node: every room counter it holds, queued as
 * WATCH_SCAN (waiting for room in the queue). 0 or -1. */
static int watch_scan_node(struct watch *w, const struct watch_node *n) {
    char err[256], match[300], cursor[32] = "0";
    struct watch_event ev = { .kind = WATCH_SCAN };
    redisContext *c = watch_open(w, n, err, sizeof(err));
    if (c == NULL) return -1;
    snprintf(match, sizeof(match), "%s:*:messages", w->o.key_prefix);
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, match);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r) freeReplyObject(r);
            redisFree(c);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str ? r->element[0]->str : "0");
        for (size_t i = 0; i < r->element[1]->elements && !watch_stopping(w); i++) {
            const redisReply *k = r->element[1]->element[i];
            int counter;
            if (watch_parse_key(w, k->str, k->len, &ev, &counter) == 0 && counter)
                watch_push(w, &ev, 1);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0 && !watch_stopping(w));
    redisFree(c);
    return 0;
}

/* Subscribe everywhere, then reconcile everywhere. 0 or -1. */
static int watch_connect(struct watch *w, char *err, size_t errlen) {
    struct watch_node t[WATCH_NODES_MAX];
    size_t n = watch_targets(w, t);
    snprintf(err, errlen, "no Redis node to subscribe to");
    if (n == 0) return -1;
    w->live = 1;
    for (size_t i = 0; i < n; i++) {
        w->nodes[w->nnodes++] = t[i];
        if (watch_subscribe(w, &w->nodes[w->nnodes - 1], err, errlen) < 0) return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (watch_scan_node(w, &w->nodes[i]) < 0) {
            snprintf(err, errlen, "redis %s:%d: SCAN of the room counters failed",
                     w->nodes[i].host, w->nodes[i].port);
            return -1;
        }
    }
    w->next_check = clock_wall_ms() + WATCH_CHECK_MS;
    w->next_scan = clock_wall_ms() + WATCH_RESCAN_MS;
    __atomic_store_n(&w->ready, 1, __ATOMIC_RELAXED);
    return 0;
}

/* 1 when the primaries moved (cluster, locator) since the connect. */
static int watch_moved(struct watch *w) {
    struct watch_node t[WATCH_NODES_MAX];
    if (!w->o.cluster && !w->o.locate) return 0;
    size_t n = watch_targets(w, t);
    if (n == 0) return 0;                       /* unknown now: keep them */
    if (n != w->nnodes) return 1;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < w->nnodes && (w->nodes[j].port != t[i].port ||
                                 strcmp(w->nodes[j].host, t[i].host) != 0))
            j++;
        if (j == w->nnodes) return 1;
    }
    return 0;
}

/* Handle every reply node c has buffered. 0 or -1 (connection lost). */
static int watch_drain(struct watch *w, redisContext *c) {
    void *p;
    if (redisBufferRead(c) != REDIS_OK) return -1;
    while (redisGetReplyFromReader(c, &p) == REDIS_OK && p) {
        redisReply *r = p;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            r->element[1]->type == REDIS_REPLY_STRING &&
            r->element[2]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[0]->str, "message") == 0)
            watch_on_event(w, r->element[1]->str, r->element[2]->str, r->element[2]->len);
        freeReplyObject(r);
    }
    return c->err ? -1 : 0;
}

/* Wait up to WATCH_POLL_MS for notifications and handle them. 0 or -1. */
static int watch_poll(struct watch *w) {
    struct pollfd fds[WATCH_NODES_MAX];
    size_t at[WATCH_NODES_MAX], nfds = 0;
    for (size_t i = 0; i < w->nnodes; i++) {
        if (w->nodes[i].c == NULL) continue;       /* not subscribed: polled */
        at[nfds] = i;
        fds[nfds++] = (struct pollfd){ .fd = w->nodes[i].c->fd, .events = POLLIN };
    }
    int k = poll(fds, nfds, WATCH_POLL_MS);
    for (size_t i = 0; k > 0 && i < nfds; i++)
        if (fds[i].revents && watch_drain(w, w->nodes[at[i]].c) < 0) return -1;
    return 0;
}

/* While connected: poll; every WATCH_CHECK_MS see whether the primaries
 * moved; without notifications reconcile every WATCH_RESCAN_MS. Returns
 * when a reconnect is needed or at the stop. */
static void watch_listen(struct watch *w) {
    while (!watch_stopping(w)) {
        if (watch_poll(w) < 0 || watch_overflowed(w)) return;
        long long now = clock_wall_ms();
        if (now >= w->next_check) {
            if (watch_moved(w)) return;
            w->next_check = now + WATCH_CHECK_MS;
        }
        if (!w->live && now >= w->next_scan) {
            for (size_t i = 0; i < w->nnodes; i++)
                if (watch_scan_node(w, &w->nodes[i]) < 0) return;
            w->next_scan = now + WATCH_RESCAN_MS;
        }
    }
}

/* Sleep ms, in steps, unless stopping. */
static void watch_sleep(struct watch *w, long ms) {
    for (long t = 0; t < ms && !watch_stopping(w); t += 100) clock_sleep_ms(100);
}

static void *watch_main(void *arg) {
    struct watch *w = arg;
    long wait = 100;
    char err[512];
    while (!watch_stopping(w)) {
        if (watch_connect(w, err, sizeof(err)) == 0) {
            if (w->said_err) watch_say(w, LOG_LEVEL_INFO, "redis: keyspace listener subscribed again");
            w->said_err = 0;
            wait = 100;
            watch_listen(w);
        } else if (!w->said_err++) {
            watch_say(w, LOG_LEVEL_WARN, "%s; the keyspace listener retries", err);
        }
        watch_drop(w);
        watch_sleep(w, wait);
        wait = wait * 2 > WATCH_BACKOFF_MAX_MS ? WATCH_BACKOFF_MAX_MS : wait * 2;
    }
    return NULL;
}

int watch_start(struct watch *w) {
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) return CB_ERR;
    w->started = 1;
    return CB_OK;
}
