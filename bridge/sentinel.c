/* sentinel.c -- the primary that Redis Sentinel names, and its executor
 * (see sentinel.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "log.h"
#include "result.h"
#include "rexec.h"
#include "rnode.h"
#include "sentinel.h"

#define WATCH_TICK_MS 250       /* the watcher looks at its clocks this often */
#define WATCH_PING_MS 1000      /* silence before the watcher PINGs */
#define WATCH_DEAD_MS 3000      /* silence that means the sentinel is lost */
#define WATCH_RETRY_MS 1000     /* no sentinel reachable: try again after */
#define WHY_MAX 1024            /* what every sentinel answered */
#define NOTE_MAX 1400           /* one notify line */

struct sentinel_node {
    char host[RNODE_HOST_MAX];
    int port;
};

/* The watcher's subscription to one sentinel. */
struct sentinel_sub {
    redisContext *c;              /* NULL: not subscribed */
    uint64_t heard, pinged;       /* last byte read, last PING (mono us) */
    uint64_t retry_at;            /* not subscribed: next try */
    int said;                     /* its loss or failure was said */
};

struct sentinel {
    struct sentinel_node node[SENTINEL_MAX];
    size_t count;
    char *master, *password;
    int timeout_ms;
    sentinel_query_fn *query;
    void *query_arg;
    rexec_notify_fn *notify;
    void *notify_arg;
    /* the executor's thread (sentinel_locate) */
    size_t first;                 /* asked first: the last that answered */
    int fell_back;                /* the last primary is tried: said once */
    /* any thread, under lock */
    pthread_mutex_t lock;
    pthread_cond_t changed;       /* broadcast at each event followed */
    char primary_host[RNODE_HOST_MAX];
    int primary_port;             /* 0: none confirmed yet */
    uint64_t paused[SENTINEL_MAX];/* +try-failover from k: until (mono us) */
    char promoted_host[RNODE_HOST_MAX];
    int promoted_port;            /* +promoted-slave; 0: none */
    uint64_t promoted_at;
    char announced_host[RNODE_HOST_MAX];
    int announced_port;           /* the last node an event named; 0: none */
    char watching[REXEC_ADDR_MAX];
    unsigned long long failovers;
    unsigned long long gen;       /* atomic: raised when the node changes */
    /* the watcher */
    pthread_t thread;
    int started;                  /* the executor's thread */
    int stop;                     /* atomic */
    int wake[2];                  /* a byte here ends the watcher's waits */
    struct sentinel_sub sub[SENTINEL_MAX];
    int unwatched;                /* "no sentinel watched" was said */
};

/* ==================== Helpers ==================== */

static void sentinel_say(const struct sentinel *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One line for the caller's log, through opts->notify. */
static void sentinel_say(const struct sentinel *s, int level, const char *fmt, ...) {
    char msg[NOTE_MAX];
    va_list ap;
    if (s->notify == NULL) return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    s->notify(s->notify_arg, level, msg);
}

/* Append "HOST:PORT: why" to buf (size len, used bytes taken), "; "
 * between entries. Returns the bytes now taken (at most len - 1). */
static size_t sentinel_why(char *buf, size_t len, size_t used,
                           const struct sentinel_node *n, const char *why) {
    char addr[REXEC_ADDR_MAX];
    if (used + 1 >= len) return used;
    rnode_format_addr(addr, sizeof(addr), n->host, n->port);
    int w = snprintf(buf + used, len - used, "%s%s: %s", used ? "; " : "", addr,
                     why[0] ? why : "no answer");
    if (w < 0) return used;
    return used + (size_t)w >= len ? len - 1 : used + (size_t)w;
}

/* A port written in decimal, 1..65535, into *port. 0 or -1. */
static int sentinel_port(const char *s, int *port) {
    char *end;
    long p = strtol(s, &end, 10);
    if (end == s || *end != '\0' || p < 1 || p > 65535) return -1;
    *port = (int)p;
    return 0;
}

/* The primary confirmed last, formatted into out ("" when none). */
static void sentinel_primary(struct sentinel *s, char *out, size_t len) {
    pthread_mutex_lock(&s->lock);
    if (s->primary_port > 0) rnode_format_addr(out, len, s->primary_host, s->primary_port);
    else out[0] = '\0';
    pthread_mutex_unlock(&s->lock);
}

/* ==================== Replies ==================== */

int sentinel_parse_addr(const redisReply *r, const char *master, struct sentinel_answer *out) {
    const size_t len = sizeof(out->err);
    if (r->type == REDIS_REPLY_NIL || (r->type == REDIS_REPLY_ARRAY && r->elements == 0)) {
        snprintf(out->err, len, "monitors no master named '%s' (redis.sentinel_master)", master);
        return CB_ERR_PROTO;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(out->err, len, strncmp(r->str, "NOAUTH", 6) == 0
                 ? "%s (set redis.sentinel_password)" : "answered %s", r->str);
        return CB_ERR_PROTO;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
        r->element[0]->len > 0 && r->element[0]->len < sizeof(out->host) &&
        strlen(r->element[0]->str) == r->element[0]->len &&
        sentinel_port(r->element[1]->str, &out->port) == 0) {
        memcpy(out->host, r->element[0]->str, r->element[0]->len + 1);
        return CB_OK;
    }
    snprintf(out->err, len, "answered something other than an address");
    return CB_ERR_PROTO;
}

int sentinel_parse_role(const redisReply *r, char *what, size_t whatlen) {
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        snprintf(what, whatlen, "%s", r->element[0]->str);
        return strcmp(r->element[0]->str, "master") == 0 ? CB_OK : CB_ERR_PROTO;
    }
    snprintf(what, whatlen, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply");
    return CB_ERR_PROTO;
}

/* The kind of event a channel carries; SENTINEL_EV_NONE: not followed. */
static int sentinel_event_kind(const char *channel) {
    if (strcmp(channel, "+switch-master") == 0) return SENTINEL_EV_SWITCH;
    if (strcmp(channel, "+try-failover") == 0) return SENTINEL_EV_TRY;
    if (strcmp(channel, "+promoted-slave") == 0) return SENTINEL_EV_PROMOTED;
    if (strcmp(channel, "+failover-end") == 0 || strcmp(channel, "+failover-end-for-timeout") == 0 ||
        strncmp(channel, "-failover-abort-", 16) == 0)
        return SENTINEL_EV_END;
    return SENTINEL_EV_NONE;
}

/* An address from two words, into ev. CB_OK or CB_ERR_PROTO. */
static int sentinel_event_addr(struct sentinel_event *ev, const char *host, const char *port) {
    if (strlen(host) >= sizeof(ev->host) || sentinel_port(port, &ev->port) < 0)
        return CB_ERR_PROTO;
    snprintf(ev->host, sizeof(ev->host), "%s", host);
    return CB_OK;
}

/* The text's words (the first 8 in w, how many in all) by kind. */
static int sentinel_event_words(struct sentinel_event *ev, const char *master,
                                char *const *w, int n) {
    switch (ev->kind) {
    case SENTINEL_EV_SWITCH:
        if (n != 5 || strcmp(w[0], master) != 0) return CB_ERR_PROTO;
        return sentinel_event_addr(ev, w[3], w[4]);
    case SENTINEL_EV_PROMOTED:
        if (n < 8 || strcmp(w[0], "slave") != 0 || strcmp(w[4], "@") != 0 ||
            strcmp(w[5], master) != 0)
            return CB_ERR_PROTO;
        return sentinel_event_addr(ev, w[2], w[3]);
    case SENTINEL_EV_TRY:
    case SENTINEL_EV_END:
        return n >= 4 && strcmp(w[0], "master") == 0 && strcmp(w[1], master) == 0
               ? CB_OK : CB_ERR_PROTO;
    }
    return CB_ERR_PROTO;
}

int sentinel_parse_event(const redisReply *r, const char *master, struct sentinel_event *ev) {
    const redisReply *chan, *msg;
    char text[1024], *w[8], *save = NULL;
    int n = 0;
    memset(ev, 0, sizeof(*ev));
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->elements > 4 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(r->element[0]->str, r->elements == 3 ? "message" : "pmessage") != 0)
        return CB_ERR_PROTO;
    chan = r->element[r->elements - 2];
    msg = r->element[r->elements - 1];
    if (chan->type != REDIS_REPLY_STRING || msg->type != REDIS_REPLY_STRING ||
        msg->len >= sizeof(text) || (ev->kind = sentinel_event_kind(chan->str)) == 0)
        return CB_ERR_PROTO;
    snprintf(ev->name, sizeof(ev->name), "%s", chan->str);
    memcpy(text, msg->str, msg->len + 1);
    for (char *t = strtok_r(text, " ", &save); t; t = strtok_r(NULL, " ", &save))
        if (n++ < 8) w[n - 1] = t;
    return sentinel_event_words(ev, master, w, n);
}

/* ==================== Asking a sentinel ==================== */

/* AUTH with Sentinel's own password. CB_OK, CB_ERR_IO (link lost) or
 * CB_ERR_PROTO (refused: its answer names no secret). */
static int sentinel_auth(redisContext *c, const char *password, char *err, size_t errlen) {
    const char *argv[] = { "AUTH", password };
    redisReply *r = redisCommandArgv(c, 2, argv, NULL);
    int rc = CB_OK;
    if (r == NULL) {
        snprintf(err, errlen, "%s", c->errstr[0] ? c->errstr : "connection lost");
        return CB_ERR_IO;
    }
    if (r->type != REDIS_REPLY_STATUS) {
        snprintf(err, errlen, "refused the bridge's credentials (redis.sentinel_password): %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        rc = CB_ERR_PROTO;
    }
    freeReplyObject(r);
    return rc;
}

/* A connection to a sentinel, the timeout on connect and on every read
 * and write, authenticated when a password is set. CB_OK with *out, or
 * what sentinel_auth returns, or CB_ERR_IO; err says why. */
static int sentinel_open(const char *host, int port, const char *password, int timeout_ms,
                         redisContext **out, char *err, size_t errlen) {
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    int rc = CB_ERR_IO;
    *out = NULL;
    if (c == NULL || c->err) {
        snprintf(err, errlen, "%s", c ? c->errstr : "out of memory");
    } else if (redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(err, errlen, "cannot set the timeout");
    } else if (password == NULL || (rc = sentinel_auth(c, password, err, errlen)) == CB_OK) {
        *out = c;
        return CB_OK;
    }
    if (c) redisFree(c);
    return rc;
}

/* SENTINEL get-master-addr-by-name on an open connection. */
static int sentinel_ask(redisContext *c, const char *master, struct sentinel_answer *out) {
    const char *argv[] = { "SENTINEL", "get-master-addr-by-name", master };
    redisReply *r = redisCommandArgv(c, 3, argv, NULL);
    if (r == NULL) {
        snprintf(out->err, sizeof(out->err), "%s", c->errstr[0] ? c->errstr : "connection lost");
        return CB_ERR_IO;
    }
    int rc = sentinel_parse_addr(r, master, out);
    freeReplyObject(r);
    return rc;
}

/* The default sentinel_query_fn: one connection per question. */
static int sentinel_query_net(void *arg, const char *host, int port, const char *master,
                              const char *password, int timeout_ms,
                              struct sentinel_answer *out) {
    redisContext *c;
    (void)arg;
    int rc = sentinel_open(host, port, password, timeout_ms, &c, out->err, sizeof(out->err));
    if (rc != CB_OK) return rc;
    rc = sentinel_ask(c, master, out);
    redisFree(c);
    return rc;
}

/* ==================== The sentinel set ==================== */

/* rnode_parse_list's callback: one sentinel more. */
static int sentinel_add(void *arg, const char *host, int port) {
    struct sentinel *s = arg;
    if (s->count == SENTINEL_MAX) return CB_ERR_PROTO;
    snprintf(s->node[s->count].host, sizeof(s->node[0].host), "%s", host);
    s->node[s->count++].port = port;
    return 0;
}

struct sentinel *sentinel_new(const struct sentinel_opts *o) {
    struct sentinel *s = calloc(1, sizeof(*s));
    if (s == NULL) return NULL;
    s->wake[0] = s->wake[1] = -1;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        return NULL;
    }
    if (clock_cond_init(&s->changed) != 0) {
        pthread_mutex_destroy(&s->lock);
        free(s);
        return NULL;
    }
    if (o->sentinels == NULL || o->master == NULL ||
        rnode_parse_list(o->sentinels, sentinel_add, s) <= 0 ||
        (s->master = strdup(o->master)) == NULL ||
        (o->password && (s->password = strdup(o->password)) == NULL)) {
        sentinel_free(s);
        return NULL;
    }
    s->timeout_ms = o->timeout_ms > 0 && o->timeout_ms < SENTINEL_TIMEOUT_MS
                    ? o->timeout_ms : SENTINEL_TIMEOUT_MS;
    s->query = o->query ? o->query : sentinel_query_net;
    s->query_arg = o->query_arg;
    s->notify = o->notify;
    s->notify_arg = o->notify_arg;
    return s;
}

void sentinel_free(struct sentinel *s) {
    if (s == NULL) return;
    if (s->started) {
        __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
        if (write(s->wake[1], "x", 1) < 0) {
            /* the watcher's next tick sees the stop anyway */
        }
        pthread_join(s->thread, NULL);
    }
    if (s->wake[0] >= 0) close(s->wake[0]);
    if (s->wake[1] >= 0) close(s->wake[1]);
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->lock);
    free(s->master);
    free(s->password);
    free(s);
}

/* ==================== Locating ==================== */

/* No sentinel could be reached: the primary confirmed last, if any, is
 * tried again (ROLE decides), said once until a sentinel answers. 1 with
 * host and port, else 0. */
static int sentinel_fall_back(struct sentinel *s, char *host, size_t hostlen, int *port,
                              const char *why) {
    char addr[REXEC_ADDR_MAX];
    pthread_mutex_lock(&s->lock);
    int known = s->primary_port > 0 && strlen(s->primary_host) < hostlen;
    if (known) {
        snprintf(host, hostlen, "%s", s->primary_host);
        *port = s->primary_port;
    }
    pthread_mutex_unlock(&s->lock);
    if (!known) return 0;
    rnode_format_addr(addr, sizeof(addr), host, *port);
    if (!s->fell_back)
        sentinel_say(s, LOG_LEVEL_WARN, "sentinel: no sentinel can be reached (%s); trying %s, "
                     "the primary of %s confirmed last", why, addr, s->master);
    s->fell_back = 1;
    return 1;
}

/* The sentinel whose +try-failover pauses the writes now, or -1. Lock
 * held. */
static int sentinel_pausing(struct sentinel *s, uint64_t now) {
    for (size_t k = 0; k < s->count; k++)
        if (s->paused[k] > now) return (int)k;
    return -1;
}

/* Wait, at most SENTINEL_PAUSE_WAIT_MS, while a failover pauses the
 * writes (the watcher broadcasts its end). 0 when it does not (any
 * more); else 1 with err. */
static int sentinel_wait_pause(struct sentinel *s, char *err, size_t errlen) {
    struct timespec until = clock_deadline(SENTINEL_PAUSE_WAIT_MS);
    int k, passed = 0;
    pthread_mutex_lock(&s->lock);
    while ((k = sentinel_pausing(s, clock_mono_us())) >= 0 && !passed)
        passed = clock_cond_wait(&s->changed, &s->lock, &until);
    pthread_mutex_unlock(&s->lock);
    if (k < 0) return 0;
    snprintf(err, errlen, "sentinel: a failover of %s is under way (+try-failover from "
             "%s:%d); writes wait for the promoted replica", s->master, s->node[k].host,
             s->node[k].port);
    return 1;
}

/* After a failed connect: wait, at most ms and while some sentinel is
 * watched, for an event to raise the generation past gen (the failover
 * that follows a primary's death begins about down-after-milliseconds
 * later), so that the next attempt comes at once rather than after the
 * worker's backoff. 1 when it moved. */
static int sentinel_wait_move(struct sentinel *s, unsigned long long gen, long ms) {
    struct timespec until = clock_deadline(ms);
    int passed = 0;
    pthread_mutex_lock(&s->lock);
    while (sentinel_generation(s) == gen && s->watching[0] && !passed)
        passed = clock_cond_wait(&s->changed, &s->lock, &until);
    int moved = sentinel_generation(s) != gen;
    pthread_mutex_unlock(&s->lock);
    return moved;
}

/* The replica +promoted-slave named, until +switch-master (or for
 * SENTINEL_PROMOTED_MS): the sentinels still name the old primary. 1
 * with host and port, else 0. */
static int sentinel_promoted(struct sentinel *s, char *host, size_t hostlen, int *port) {
    pthread_mutex_lock(&s->lock);
    int yes = s->promoted_port > 0 && strlen(s->promoted_host) < hostlen &&
              clock_mono_us() - s->promoted_at < SENTINEL_PROMOTED_MS * 1000ULL;
    if (yes) {
        snprintf(host, hostlen, "%s", s->promoted_host);
        *port = s->promoted_port;
    }
    pthread_mutex_unlock(&s->lock);
    return yes;
}

int sentinel_locate(void *arg, char *host, size_t hostlen, int *port,
                    char *err, size_t errlen) {
    struct sentinel *s = arg;
    struct sentinel_answer a;
    char why[WHY_MAX] = "";
    size_t used = 0;
    int reached = 0;
    if (sentinel_wait_pause(s, err, errlen)) return CB_ERR_IO;
    if (sentinel_promoted(s, host, hostlen, port)) return CB_OK;
    for (size_t i = 0; i < s->count; i++) {
        size_t k = (s->first + i) % s->count;
        memset(&a, 0, sizeof(a));
        int rc = s->query(s->query_arg, s->node[k].host, s->node[k].port, s->master,
                          s->password, s->timeout_ms, &a);
        if (rc == CB_OK && strlen(a.host) < hostlen) {
            s->first = k;
            s->fell_back = 0;
            snprintf(host, hostlen, "%s", a.host);
            *port = a.port;
            return CB_OK;
        }
        reached |= rc != CB_ERR_IO;
        used = sentinel_why(why, sizeof(why), used, &s->node[k], a.err);
    }
    if (!reached && sentinel_fall_back(s, host, hostlen, port, why)) return CB_OK;
    snprintf(err, errlen, "sentinel: no sentinel named the primary of %s: %s", s->master, why);
    return CB_ERR_IO;
}

int sentinel_confirm(struct sentinel *s, const char *host, int port) {
    char was[REXEC_ADDR_MAX] = "", now[REXEC_ADDR_MAX];
    rnode_format_addr(now, sizeof(now), host, port);
    pthread_mutex_lock(&s->lock);
    int known = s->primary_port > 0;
    int moved = known && (s->primary_port != port || strcmp(s->primary_host, host) != 0);
    if (known) rnode_format_addr(was, sizeof(was), s->primary_host, s->primary_port);
    snprintf(s->primary_host, sizeof(s->primary_host), "%s", host);
    s->primary_port = port;
    unsigned long long n = s->failovers += (unsigned long long)moved;
    pthread_mutex_unlock(&s->lock);
    if (moved)
        sentinel_say(s, LOG_LEVEL_WARN, "sentinel: %s failed over: writing to the new primary "
                     "%s (was %s); failovers followed: %llu", s->master, now, was, n);
    else if (!known)
        sentinel_say(s, LOG_LEVEL_INFO, "sentinel: the primary of %s is %s", s->master, now);
    return moved;
}

unsigned long long sentinel_generation(const struct sentinel *s) {
    return __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);
}

void sentinel_counters(struct sentinel *s, struct rexec_counters *out) {
    pthread_mutex_lock(&s->lock);
    out->failovers = s->failovers;
    if (s->primary_port > 0)
        rnode_format_addr(out->primary, sizeof(out->primary), s->primary_host, s->primary_port);
    snprintf(out->watching, sizeof(out->watching), "%s", s->watching);
    pthread_mutex_unlock(&s->lock);
}

/* ==================== Events ==================== */

/* 1 when host:port is not the primary confirmed last (none: 0). Lock
 * held. */
static int sentinel_elsewhere(const struct sentinel *s, const char *host, int port) {
    return s->primary_port > 0 && (s->primary_port != port || strcmp(s->primary_host, host) != 0);
}

/* 1 when host:port is the node events named last. Lock held. */
static int sentinel_announced(const struct sentinel *s, const char *host, int port) {
    return s->announced_port == port && strcmp(s->announced_host, host) == 0;
}

/* The sentinels name host:port: +switch-master (announced: the failover
 * is over; every sentinel says it, and the leader said +promoted-slave
 * before), or what a sentinel answered when subscribed (not during a
 * failover, when its answer is older than the events). The generation
 * is raised for a node neither confirmed nor already announced (the
 * executor may be connecting to that one right now). */
static void sentinel_moved(struct sentinel *s, const char *from, const char *host, int port,
                           int announced) {
    char was[REXEC_ADDR_MAX] = "", now[REXEC_ADDR_MAX];
    pthread_mutex_lock(&s->lock);
    int busy = sentinel_pausing(s, clock_mono_us()) >= 0 || s->promoted_port > 0;
    int moved = (announced || !busy) && !sentinel_announced(s, host, port) &&
                sentinel_elsewhere(s, host, port);
    if (announced) {
        memset(s->paused, 0, sizeof(s->paused));
        s->promoted_port = 0;
        snprintf(s->announced_host, sizeof(s->announced_host), "%s", host);
        s->announced_port = port;
    }
    if (moved) {
        rnode_format_addr(was, sizeof(was), s->primary_host, s->primary_port);
        __atomic_add_fetch(&s->gen, 1, __ATOMIC_RELEASE);
    }
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    rnode_format_addr(now, sizeof(now), host, port);
    if (moved)
        sentinel_say(s, LOG_LEVEL_INFO, "sentinel %s: the primary of %s is %s%s, not %s; "
                     "following", from, s->master, now, announced ? " (+switch-master)" : "",
                     was);
}

/* +try-failover: no more writes to the primary, whose replica may be
 * promoted within 100 ms, until the failover's outcome is known. */
static void sentinel_pause(struct sentinel *s, size_t k, const char *from) {
    pthread_mutex_lock(&s->lock);
    s->paused[k] = clock_mono_us() + SENTINEL_PAUSE_MS * 1000ULL;
    __atomic_add_fetch(&s->gen, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    sentinel_say(s, LOG_LEVEL_WARN, "sentinel %s: a failover of %s has begun (+try-failover); "
                 "writes wait for the promoted replica (at most %d s)", from, s->master,
                 SENTINEL_PAUSE_MS / 1000);
}

/* +promoted-slave: the replica is the primary; written to at once. */
static void sentinel_promote(struct sentinel *s, const char *from, const struct sentinel_event *ev) {
    pthread_mutex_lock(&s->lock);
    memset(s->paused, 0, sizeof(s->paused));
    snprintf(s->promoted_host, sizeof(s->promoted_host), "%s", ev->host);
    s->promoted_port = ev->port;
    s->promoted_at = clock_mono_us();
    snprintf(s->announced_host, sizeof(s->announced_host), "%s", ev->host);
    s->announced_port = ev->port;
    __atomic_add_fetch(&s->gen, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    sentinel_say(s, LOG_LEVEL_INFO, "sentinel %s: %s:%d was promoted to primary of %s "
                 "(+promoted-slave); writing there", from, ev->host, ev->port, s->master);
}

/* The failover sentinel k led is over, or aborted: its pause ends. */
static void sentinel_resume(struct sentinel *s, size_t k, const char *from, const char *what) {
    pthread_mutex_lock(&s->lock);
    int was = s->paused[k] != 0;
    s->paused[k] = 0;
    int still = sentinel_pausing(s, clock_mono_us()) >= 0;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    if (was && !still)
        sentinel_say(s, LOG_LEVEL_INFO, "sentinel %s: the failover of %s is over (%s); "
                     "writes resume", from, s->master, what);
}

void sentinel_event(struct sentinel *s, size_t k, const struct sentinel_event *ev) {
    char from[REXEC_ADDR_MAX];
    if (k >= s->count) return;
    rnode_format_addr(from, sizeof(from), s->node[k].host, s->node[k].port);
    switch (ev->kind) {
    case SENTINEL_EV_SWITCH: sentinel_moved(s, from, ev->host, ev->port, 1); break;
    case SENTINEL_EV_TRY: sentinel_pause(s, k, from); break;
    case SENTINEL_EV_PROMOTED: sentinel_promote(s, from, ev); break;
    case SENTINEL_EV_END: sentinel_resume(s, k, from, ev->name); break;
    }
}

/* ==================== The watcher ==================== */

static int sentinel_stopping(struct sentinel *s) {
    return __atomic_load_n(&s->stop, __ATOMIC_ACQUIRE);
}

/* Subscribe to one sentinel's events, after asking it where the primary
 * is (a move announced while nobody listened is followed too). The
 * connection, or NULL with err. The confirmations are read by the loop. */
static redisContext *sentinel_subscribe(struct sentinel *s, size_t k, char *err, size_t errlen) {
    const struct sentinel_node *n = &s->node[k];
    struct sentinel_answer a = { .err = "" };
    char from[REXEC_ADDR_MAX];
    redisContext *c;
    if (sentinel_open(n->host, n->port, s->password, s->timeout_ms, &c, err, errlen) != CB_OK)
        return NULL;
    rnode_format_addr(from, sizeof(from), n->host, n->port);
    if (sentinel_ask(c, s->master, &a) != CB_OK) {
        snprintf(err, errlen, "%s", a.err);
        redisFree(c);
        return NULL;
    }
    sentinel_moved(s, from, a.host, a.port, 0);
    if (redisAppendCommand(c, "SUBSCRIBE +switch-master +try-failover +promoted-slave "
                           "+failover-end +failover-end-for-timeout") != REDIS_OK ||
        redisAppendCommand(c, "PSUBSCRIBE -failover-abort-*") != REDIS_OK) {
        snprintf(err, errlen, "out of memory");
        redisFree(c);
        return NULL;
    }
    return c;
}

/* The sentinels subscribed to, for the counters; says once when none
 * is. */
static void sentinel_watch_list(struct sentinel *s) {
    char list[REXEC_ADDR_MAX] = "", addr[REXEC_ADDR_MAX];
    size_t used = 0, on = 0;
    for (size_t k = 0; k < s->count; k++) {
        if (s->sub[k].c == NULL) continue;
        on++;
        rnode_format_addr(addr, sizeof(addr), s->node[k].host, s->node[k].port);
        int w = snprintf(list + used, sizeof(list) - used, "%s%s", used ? " " : "", addr);
        if (w < 0 || used + (size_t)w >= sizeof(list)) {
            list[used] = '\0';                  /* the rest left out */
            break;
        }
        used += (size_t)w;
    }
    pthread_mutex_lock(&s->lock);
    memcpy(s->watching, list, sizeof(list));
    pthread_mutex_unlock(&s->lock);
    if (on == 0 && !s->unwatched && !sentinel_stopping(s)) {
        char primary[REXEC_ADDR_MAX];
        sentinel_primary(s, primary, sizeof(primary));
        sentinel_say(s, LOG_LEVEL_WARN, "sentinel: no sentinel can be watched: a failover of %s "
                     "will not be followed until one answers; the bridge writes to %s "
                     "meanwhile", s->master, primary[0] ? primary : "no primary yet");
    }
    s->unwatched = on == 0;
}

/* Subscribe to each sentinel not subscribed to whose retry is due. */
static void sentinel_watch_connect(struct sentinel *s) {
    char err[SENTINEL_ERR_MAX];
    for (size_t k = 0; k < s->count && !sentinel_stopping(s); k++) {
        struct sentinel_sub *w = &s->sub[k];
        if (w->c || clock_mono_us() < w->retry_at) continue;
        w->c = sentinel_subscribe(s, k, err, sizeof(err));
        w->heard = clock_mono_us();
        w->pinged = 0;
        if (w->c == NULL) {
            w->retry_at = w->heard + WATCH_RETRY_MS * 1000ULL;
            if (!w->said)
                sentinel_say(s, LOG_LEVEL_WARN, "sentinel: cannot watch %s:%d (%s); trying "
                             "again every second", s->node[k].host, s->node[k].port, err);
            w->said = 1;
            continue;
        }
        w->said = 0;
        sentinel_say(s, LOG_LEVEL_INFO, "sentinel: watching %s:%d for failovers of %s",
                     s->node[k].host, s->node[k].port, s->master);
    }
    sentinel_watch_list(s);
}

/* Read what sentinel k sent and follow its events. CB_OK, or CB_ERR_IO
 * with why. */
static int sentinel_watch_read(struct sentinel *s, size_t k, char *why, size_t len) {
    redisContext *c = s->sub[k].c;
    struct sentinel_event ev;
    void *reply = NULL;
    if (redisBufferRead(c) != REDIS_OK) {
        snprintf(why, len, "%s", c->errstr[0] ? c->errstr : "connection lost");
        return CB_ERR_IO;
    }
    while (redisGetReplyFromReader(c, &reply) == REDIS_OK && reply) {
        const redisReply *r = reply;
        if (r->type == REDIS_REPLY_ERROR) snprintf(why, len, "%s", r->str);
        else if (sentinel_parse_event(r, s->master, &ev) == CB_OK) sentinel_event(s, k, &ev);
        freeReplyObject(reply);
        reply = NULL;
    }
    if (c->err) snprintf(why, len, "%s", c->errstr);
    return why[0] ? CB_ERR_IO : CB_OK;
}

/* PING on the subscription (allowed in that state), to learn that the
 * sentinel still answers. CB_OK, or CB_ERR_IO with why. */
static int sentinel_watch_ping(redisContext *c, char *why, size_t len) {
    int done = 0;
    if (redisAppendCommand(c, "PING") != REDIS_OK) {
        snprintf(why, len, "out of memory");
        return CB_ERR_IO;
    }
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK) {
            snprintf(why, len, "%s", c->errstr[0] ? c->errstr : "connection lost");
            return CB_ERR_IO;
        }
    return CB_OK;
}

/* Sentinel k's subscription failed: closed, said, tried again later. */
static void sentinel_watch_lost(struct sentinel *s, size_t k, const char *why) {
    struct sentinel_sub *w = &s->sub[k];
    size_t on = 0;
    redisFree(w->c);
    w->c = NULL;
    w->retry_at = clock_mono_us() + WATCH_RETRY_MS * 1000ULL;
    w->said = 1;
    for (size_t i = 0; i < s->count; i++) on += s->sub[i].c != NULL;
    sentinel_say(s, LOG_LEVEL_WARN, "sentinel: lost the sentinel %s:%d (%s); %zu of %zu "
                 "still watched", s->node[k].host, s->node[k].port, why, on, s->count);
}

/* After a poll: sentinel k read if it has something, PINGed after a
 * silence, given up after a longer one. */
static void sentinel_watch_one(struct sentinel *s, size_t k, int readable) {
    struct sentinel_sub *w = &s->sub[k];
    char why[SENTINEL_ERR_MAX] = "";
    uint64_t now = clock_mono_us();
    if (readable) {
        if (sentinel_watch_read(s, k, why, sizeof(why)) == CB_OK) w->heard = now;
    } else if (now - w->heard >= WATCH_DEAD_MS * 1000ULL) {
        snprintf(why, sizeof(why), "silent for %d ms", WATCH_DEAD_MS);
    } else if (now - w->heard >= WATCH_PING_MS * 1000ULL &&
               now - w->pinged >= WATCH_PING_MS * 1000ULL) {
        w->pinged = now;
        sentinel_watch_ping(w->c, why, sizeof(why));
    }
    if (why[0]) sentinel_watch_lost(s, k, why);
}

/* One round: wait for any subscription (or the stop), then see to each. */
static void sentinel_watch_poll(struct sentinel *s) {
    struct pollfd p[SENTINEL_MAX + 1];
    size_t of[SENTINEL_MAX + 1], n = 1;
    p[0] = (struct pollfd){ s->wake[0], POLLIN, 0 };
    for (size_t k = 0; k < s->count; k++) {
        if (s->sub[k].c == NULL) continue;
        p[n] = (struct pollfd){ s->sub[k].c->fd, POLLIN, 0 };
        of[n++] = k;
    }
    if (poll(p, n, WATCH_TICK_MS) < 0) return;     /* EINTR: next round */
    for (size_t i = 1; i < n && !sentinel_stopping(s); i++)
        sentinel_watch_one(s, of[i], p[i].revents != 0);
}

/* The watcher thread: every sentinel subscribed to, each tried again
 * every second while it does not answer. */
static void *sentinel_watch_main(void *arg) {
    struct sentinel *s = arg;
    while (!sentinel_stopping(s)) {
        sentinel_watch_connect(s);
        sentinel_watch_poll(s);
    }
    for (size_t k = 0; k < s->count; k++)
        if (s->sub[k].c) redisFree(s->sub[k].c);
    return NULL;
}

int sentinel_watch(struct sentinel *s) {
    if (s->started) return CB_OK;
    if (pipe2(s->wake, O_CLOEXEC) != 0) {
        s->wake[0] = s->wake[1] = -1;
        return CB_ERR;
    }
    if (pthread_create(&s->thread, NULL, sentinel_watch_main, s) != 0) {
        close(s->wake[0]);
        close(s->wake[1]);
        s->wake[0] = s->wake[1] = -1;
        return CB_ERR;
    }
    s->started = 1;
    return CB_OK;
}

/* ==================== The executor ==================== */

struct sentinel_rexec {
    struct rexec x;            /* first: the executor is a struct rexec */
    struct rexec *node;        /* the one-node executor, located by s */
    struct sentinel *s;
    unsigned long long gen;    /* the generation its connection is of */
};

/* ROLE on the new connection: only a master is written to. CB_OK, or
 * CB_ERR_IO (errstr says what the node is). */
static int sx_role(struct sentinel_rexec *r) {
    struct rexec_cmd cmd = { 0 };
    const char *argv[] = { "ROLE" };
    char what[128];
    int rc = rexec_cmd_format(&cmd, 0, 1, argv, NULL);
    if (rc != CB_OK) {
        rexec_seterr(&r->x, "redis %s: out of memory", r->x.addr);
        return rc;
    }
    rc = rexec_exec(r->node, &cmd, 1);
    if (rc != CB_OK) {
        rexec_seterr(&r->x, "%s", rexec_errstr(r->node));
    } else if (sentinel_parse_role(cmd.reply, what, sizeof(what)) != CB_OK) {
        rexec_seterr(&r->x, "redis %s: named as the primary of %s, but ROLE says %s; "
                     "asking the sentinels again", r->x.addr, r->s->master, what);
        rc = CB_ERR_IO;
    }
    rexec_cmd_clear(&cmd);
    return rc;
}

/* Ask the sentinels (the locator), connect, check ROLE, and take the
 * node as the primary of generation gen. CB_OK or CB_ERR_IO. */
static int sx_try(struct sentinel_rexec *r, unsigned long long gen) {
    char host[RNODE_HOST_MAX];
    int port;
    int rc = rexec_connect(r->node);
    snprintf(r->x.addr, sizeof(r->x.addr), "%s", rexec_address(r->node));
    if (rc != CB_OK) {
        rexec_seterr(&r->x, "%s", rexec_errstr(r->node));
        return CB_ERR_IO;
    }
    if (sx_role(r) != CB_OK) {
        rexec_disconnect(r->node);
        return CB_ERR_IO;
    }
    r->gen = gen;
    if (rnode_parse_addr(r->x.addr, host, sizeof(host), &port) == 0)
        sentinel_confirm(r->s, host, port);
    return CB_OK;
}

/* Connect where the sentinels say. The generation is read first: a move
 * announced while this runs makes the connection stale at once. A failed
 * attempt waits a little for a failover's event, then tries once more. */
static int sx_connect(struct rexec *x) {
    struct sentinel_rexec *r = (struct sentinel_rexec *)x;
    unsigned long long gen = sentinel_generation(r->s);
    if (sentinel_watch(r->s) != CB_OK)
        sentinel_say(r->s, LOG_LEVEL_WARN, "sentinel: cannot start the thread that follows "
                     "+switch-master; a failover is followed once the primary fails");
    if (sx_try(r, gen) == CB_OK) return CB_OK;
    if (!sentinel_wait_move(r->s, gen, SENTINEL_MOVE_WAIT_MS)) return CB_ERR_IO;
    return sx_try(r, sentinel_generation(r->s));
}

/* Connected, and no sentinel announced a move since. */
static int sx_connected(const struct rexec *x) {
    const struct sentinel_rexec *r = (const struct sentinel_rexec *)x;
    return rexec_connected(r->node) && sentinel_generation(r->s) == r->gen;
}

/* 1 when a reply of cmds[0..n) is -READONLY: the node is a replica now. */
static int sx_readonly(const struct rexec_cmd *cmds, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const redisReply *rp = cmds[i].reply;
        if (cmds[i].result == CB_DONE && rp && rp->type == REDIS_REPLY_ERROR &&
            strncmp(rp->str, "READONLY", 8) == 0)
            return 1;
    }
    return 0;
}

/* The batch on the node; after a -READONLY the connection is dropped, so
 * that the next connect asks the sentinels (the replies stand: the store
 * takes READONLY as "retry"). */
static int sx_exec(struct rexec *x, struct rexec_cmd *cmds, size_t n) {
    struct sentinel_rexec *r = (struct sentinel_rexec *)x;
    int rc = rexec_exec(r->node, cmds, n);
    if (rc != CB_OK) {
        rexec_seterr(x, "%s", rexec_errstr(r->node));
    } else if (sx_readonly(cmds, n)) {
        rexec_disconnect(r->node);
        sentinel_say(r->s, LOG_LEVEL_WARN, "sentinel: redis %s answered READONLY: it is no "
                     "longer the primary of %s; asking the sentinels again", x->addr,
                     r->s->master);
    }
    return rc;
}

/* Every slot goes to the one primary. */
static size_t sx_nodes(struct rexec *x, const unsigned *slots, size_t n, unsigned *out) {
    struct sentinel_rexec *r = (struct sentinel_rexec *)x;
    return r->node->funcs->nodes(r->node, slots, n, out);
}

static void sx_disconnect(struct rexec *x) {
    rexec_disconnect(((struct sentinel_rexec *)x)->node);
}

/* The node first (its locator points at s), then the sentinels. */
static void sx_free(struct rexec *x) {
    struct sentinel_rexec *r = (struct sentinel_rexec *)x;
    rexec_free(r->node);
    sentinel_free(r->s);
    free(r);
}

static void sx_counters(const struct rexec *x, struct rexec_counters *out) {
    sentinel_counters(((const struct sentinel_rexec *)x)->s, out);
}

static const struct rexec_funcs sentinel_funcs = {
    sx_connect, sx_connected, sx_exec, sx_nodes, sx_disconnect, sx_free, sx_counters
};

struct rexec *sentinel_rexec_new(const struct rexec_opts *opts) {
    struct sentinel_opts so = { opts->sentinels, opts->sentinel_master,
        opts->sentinel_password, opts->timeout_ms, NULL, NULL, opts->notify, opts->notify_arg };
    struct sentinel_rexec *r = calloc(1, sizeof(*r));
    if (r == NULL) return NULL;
    r->x.funcs = &sentinel_funcs;
    r->s = sentinel_new(&so);
    if (r->s) {
        struct rnode_locator where = { sentinel_locate, NULL, r->s };
        struct rexec_opts node = *opts;
        node.unix_socket = NULL;
        node.sentinels = NULL;
        r->node = rnode_rexec_new(&node, &where);
    }
    if (r->node == NULL) {
        sentinel_free(r->s);
        free(r);
        return NULL;
    }
    snprintf(r->x.addr, sizeof(r->x.addr), "%.200s (sentinel)", opts->sentinel_master);
    return &r->x;
}
