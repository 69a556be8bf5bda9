/* kv.c -- the benchmark's Redis side (see bench.h): seeding history rooms
 * in the bridge's exact schema (README "Redis schema", prefix chatroom),
 * and a user's room list (chatroom:$user:<user>:rooms) over many small rooms,
 * reading the rooms' counters (on the single Redis or, with the room as
 * hash tag, on the node of a Redis Cluster that owns it), indexes,
 * encodings and INFO.
 *
 * Seeding is pipelined with redisAppendCommandArgv in chunks of SEED_CHUNK
 * messages: one HSET per message hash, and per chunk one multi-member
 * ZADD for the room index and, per user, one HSET of the user's hash and
 * one ZADD of the user's index. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <hiredis/hiredis.h>

#include "bench.h"

#define PREFIX "chatroom"
#define SEED_CHUNK 2000
#define KEY_MAX 160

/* A client of the benchmark's redis-server with 30 s timeouts (seeding
 * a big room sends large pipelines). */
struct redisContext *kv_connect(int port) {
    struct timeval tv = { 30, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == NULL || c->err) {
        fprintf(stderr, "bench: redis: %s\n", c ? c->errstr : "out of memory");
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

/* Close the client; NULL is fine. */
void kv_free(struct redisContext *c) {
    if (c) redisFree(c);
}

/* Read n pipelined replies; -1 if any is an error or missing. */
static int read_replies(redisContext *c, long n) {
    int rc = 0;
    for (long i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL) {
            fprintf(stderr, "bench: redis: %s\n", c->errstr);
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            if (rc == 0) fprintf(stderr, "bench: redis: %s\n", r->str);
            rc = -1;
        }
        freeReplyObject(r);
    }
    return rc;
}

/* ==================== Seeding ==================== */

struct seed {
    redisContext *c;
    const char *room;
    int users;
    const char *text;            /* every seeded message's text */
    long long ts0;               /* timestamp of message 0, Unix ms */
    const char **argv;           /* 2 + 2 * SEED_CHUNK arguments */
    size_t *lens;
    char (*ids)[24];             /* the chunk's ids as strings */
    char (*tss)[24];             /* ... and timestamps */
    char (*keys)[KEY_MAX];       /* ... and message hash keys */
    long appended;               /* commands waiting for a reply */
};

/* Append one command of argc arguments from s->argv. */
static void seed_append(struct seed *s, int argc) {
    for (int i = 0; i < argc; i++) s->lens[i] = strlen(s->argv[i]);
    redisAppendCommandArgv(s->c, argc, s->argv, s->lens);
    s->appended++;
}

/* The chunk's message hashes: content, timestamp, user. */
static void seed_messages(struct seed *s, long first, int n) {
    char user[16];
    for (int i = 0; i < n; i++) {
        long id = first + i;
        snprintf(user, sizeof(user), "u%ld", (id - 1) % s->users);
        snprintf(s->ids[i], sizeof(s->ids[i]), "%ld", id);
        snprintf(s->tss[i], sizeof(s->tss[i]), "%lld", s->ts0 + id);
        snprintf(s->keys[i], sizeof(s->keys[i]), PREFIX ":%s:%ld", s->room, id);
        const char *argv[8] = { "HSET", s->keys[i], "content", s->text,
                                "timestamp", s->tss[i], "user", user };
        memcpy(s->argv, argv, sizeof(argv));
        seed_append(s, 8);
    }
}

/* One index command over the chunk: for user u (or every message when u
 * is -1), "HSET key id text ..." (with_text) or "ZADD key id id ...". */
static void seed_index(struct seed *s, const char *key, long first, int n, int u,
                       int with_text) {
    int argc = 2;
    s->argv[0] = with_text ? "HSET" : "ZADD";
    s->argv[1] = key;
    for (int i = 0; i < n; i++) {
        if (u >= 0 && (first + i - 1) % s->users != u) continue;
        s->argv[argc++] = s->ids[i];
        s->argv[argc++] = with_text ? s->text : s->ids[i];
    }
    if (argc > 2) seed_append(s, argc);
}

/* Messages first..first+n-1 with both indexes and the users' hashes. */
static int seed_chunk(struct seed *s, long first, int n) {
    char key[KEY_MAX];
    seed_messages(s, first, n);
    snprintf(key, sizeof(key), PREFIX ":%s:messages:ids", s->room);
    seed_index(s, key, first, n, -1, 0);
    for (int u = 0; u < s->users; u++) {
        snprintf(key, sizeof(key), PREFIX ":%s:u%d", s->room, u);
        seed_index(s, key, first, n, u, 1);
        snprintf(key, sizeof(key), PREFIX ":%s:u%d:ids", s->room, u);
        seed_index(s, key, first, n, u, 0);
    }
    long pending = s->appended;
    s->appended = 0;
    return read_replies(s->c, pending);
}

/* The room counter and each user's last id. The counter moves by INCRBY,
 * as a writer's INCR would: the bridge hears of that (a SET of it is
 * found only by its reconcile at a (re)connect) and adopts the room. */
static int seed_finish(struct seed *s, long n) {
    char key[KEY_MAX], val[24], user[16], last[24];
    snprintf(key, sizeof(key), PREFIX ":%s:messages", s->room);
    snprintf(val, sizeof(val), "%ld", n);
    const char *set[3] = { "INCRBY", key, val };
    memcpy(s->argv, set, sizeof(set));
    seed_append(s, 3);
    snprintf(key, sizeof(key), PREFIX ":%s", s->room);
    for (int u = 0; u < s->users && u < n; u++) {
        long id = n - (n - 1 - u) % s->users;       /* u's newest message */
        snprintf(user, sizeof(user), "u%d", u);
        snprintf(last, sizeof(last), "%ld", id);
        const char *hset[4] = { "HSET", key, user, last };
        memcpy(s->argv, hset, sizeof(hset));
        seed_append(s, 4);
    }
    long pending = s->appended;
    s->appended = 0;
    return read_replies(s->c, pending);
}

/* The seed's buffers, and the text every seeded message carries: "seeded"
 * padded with 'x' to text_bytes. 0 or -1. */
static int seed_alloc(struct seed *s, int text_bytes) {
    char *text = malloc((size_t)text_bytes + 1);
    s->argv = calloc(2 + 2 * SEED_CHUNK, sizeof(*s->argv));
    s->lens = calloc(2 + 2 * SEED_CHUNK, sizeof(*s->lens));
    s->ids = calloc(SEED_CHUNK, sizeof(*s->ids));
    s->tss = calloc(SEED_CHUNK, sizeof(*s->tss));
    s->keys = calloc(SEED_CHUNK, sizeof(*s->keys));
    s->text = text;
    if (!text || !s->argv || !s->lens || !s->ids || !s->tss || !s->keys) return -1;
    memset(text, 'x', (size_t)text_bytes);
    memcpy(text, "seeded ", text_bytes < 7 ? (size_t)text_bytes : 7);
    text[text_bytes] = '\0';
    return 0;
}

/* Free what seed_alloc allocated. */
static void seed_free(struct seed *s) {
    free((char *)s->text);
    free(s->argv);
    free(s->lens);
    free(s->ids);
    free(s->tss);
    free(s->keys);
}

/* Seed a room chunk by chunk (see the top of this file), its newest
 * message (id n) stamped last_ms (Unix ms), message id last_ms - n + id. */
static int seed_room_at(redisContext *c, const char *room, long n, int users, int text_bytes,
                        long long last_ms) {
    struct seed s = { .c = c, .room = room, .users = users, .ts0 = last_ms - n };
    int rc = seed_alloc(&s, text_bytes);
    for (long first = 1; rc == 0 && first <= n && !bench_interrupted; first += SEED_CHUNK)
        rc = seed_chunk(&s, first, (int)(n - first + 1 < SEED_CHUNK ? n - first + 1 : SEED_CHUNK));
    if (rc == 0 && !bench_interrupted) rc = seed_finish(&s, n);
    seed_free(&s);
    return bench_interrupted ? -1 : rc;
}

/* A room whose newest message is of now (to the second). */
int kv_seed_room(struct redisContext *c, const char *room, long n, int users,
                 int text_bytes) {
    return seed_room_at(c, room, n, users, text_bytes, (long long)time(NULL) * 1000);
}

/* The rooms one by one, then the user's room list in one ZADD. */
int kv_seed_user_rooms(struct redisContext *c, const char *user, const char *prefix,
                       int rooms, long msgs, int users, int text_bytes) {
    char key[KEY_MAX], (*names)[KEY_MAX] = calloc((size_t)rooms, sizeof(*names));
    char (*scores)[24] = calloc((size_t)rooms, sizeof(*scores));
    const char **argv = calloc(2 + 2 * (size_t)rooms, sizeof(*argv));
    size_t *lens = calloc(2 + 2 * (size_t)rooms, sizeof(*lens));
    long long now = (long long)time(NULL) * 1000;
    int rc = names && scores && argv && lens ? 0 : -1;
    snprintf(key, sizeof(key), PREFIX ":$user:%s:rooms", user);
    argv[0] = "ZADD";
    argv[1] = key;
    for (int i = 0; rc == 0 && i < rooms; i++) {
        snprintf(names[i], sizeof(names[i]), "%s%d", prefix, i);
        snprintf(scores[i], sizeof(scores[i]), "%lld", now - i);
        argv[2 + 2 * i] = scores[i];
        argv[3 + 2 * i] = names[i];
        rc = seed_room_at(c, names[i], msgs, users, text_bytes, now - i);
    }
    if (rc == 0) {
        for (int i = 0; i < 2 + 2 * rooms; i++) lens[i] = strlen(argv[i]);
        redisReply *r = redisCommandArgv(c, 2 + 2 * rooms, argv, lens);
        if (r == NULL || r->type != REDIS_REPLY_INTEGER || r->integer != rooms) {
            fprintf(stderr, "bench: redis: ZADD %s: %s\n", key,
                    r == NULL ? c->errstr : r->type == REDIS_REPLY_ERROR ? r->str
                                                                        : "unexpected reply");
            rc = -1;
        }
        if (r) freeReplyObject(r);
    }
    free(names);
    free(scores);
    free(argv);
    free(lens);
    return rc;
}

/* ==================== Reading ==================== */

/* A numeric field "name:value" of an INFO section; -1 if absent. */
static long long info_field(redisContext *c, const char *section, const char *name,
                            char *str, size_t size) {
    redisReply *r = redisCommand(c, "INFO %s", section);
    long long v = -1;
    if (r && r->type == REDIS_REPLY_STRING) {
        char pat[64];
        snprintf(pat, sizeof(pat), "\r\n%s:", name);
        const char *p = strstr(r->str, pat);
        if (p) {
            p += strlen(pat);
            v = strtoll(p, NULL, 10);
            if (str) snprintf(str, size, "%.*s", (int)strcspn(p, "\r\n"), p);
        }
    }
    if (r) freeReplyObject(r);
    return v;
}

/* HGET every room's cursor id, pipelined in chunks. */
int kv_rooms_adopted(struct redisContext *c, const char *const *rooms, const long *last, int n) {
    int done = 0;
    for (int first = 0; first < n; first += SEED_CHUNK) {
        int k = n - first < SEED_CHUNK ? n - first : SEED_CHUNK;
        for (int i = 0; i < k; i++)
            redisAppendCommand(c, "HGET " PREFIX ":%s:messages:cursor id", rooms[first + i]);
        for (int i = 0; i < k; i++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL) return -1;
            if (r->type == REDIS_REPLY_STRING && strtol(r->str, NULL, 10) >= last[first + i])
                done++;
            freeReplyObject(r);
        }
    }
    return done;
}

/* INFO memory: used_memory in bytes. */
long long kv_used_memory(struct redisContext *c) {
    return info_field(c, "memory", "used_memory", NULL, 0);
}

/* Poll INFO persistence until no AOF rewrite runs or is scheduled. */
int kv_wait_rewrite(struct redisContext *c, int timeout_ms) {
    long long deadline = now_ns() + (long long)timeout_ms * 1000000LL;
    while (now_ns() < deadline && !bench_interrupted) {
        long long running = info_field(c, "persistence", "aof_rewrite_in_progress", NULL, 0);
        long long queued = info_field(c, "persistence", "aof_rewrite_scheduled", NULL, 0);
        if (running == 0 && queued == 0) return 0;
        sleep_until_ns(now_ns() + 100000000LL);
    }
    return -1;
}

/* INFO server: redis_version. */
void kv_version(struct redisContext *c, char *buf, size_t size) {
    snprintf(buf, size, "?");
    info_field(c, "server", "redis_version", buf, size);
}

/* GET every room counter, pipelined in chunks; with tagged, the cluster
 * key chatroom:{<room>}:messages. With owned (a cluster node), a room
 * whose slot another node owns (-MOVED) is skipped and each answered one
 * counted in owned[i]. */
static int get_counters(redisContext *c, const char *prefix, int tagged, int n,
                        long long *out, int *owned) {
    const char *fmt = tagged ? "GET " PREFIX ":{%s%d}:messages"
                             : "GET " PREFIX ":%s%d:messages";
    for (int first = 0; first < n; first += SEED_CHUNK) {
        int k = n - first < SEED_CHUNK ? n - first : SEED_CHUNK;
        for (int i = 0; i < k; i++) redisAppendCommand(c, fmt, prefix, first + i);
        for (int i = 0; i < k; i++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL) return -1;
            int moved = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "MOVED ", 6) == 0;
            if (!moved)
                out[first + i] = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
            if (!moved && owned) owned[first + i]++;
            freeReplyObject(r);
        }
    }
    return 0;
}

/* The single Redis's counters. */
int kv_counters(struct redisContext *c, const char *prefix, int n, long long *out) {
    return get_counters(c, prefix, 0, n, out, NULL);
}

/* Every node asked for every room; exactly one must own each. */
int kv_cluster_counters(struct redisContext *const *nodes, int nnodes, const char *prefix,
                        int n, long long *out) {
    int *owned = calloc((size_t)n, sizeof(*owned)), rc = owned ? 0 : -1;
    for (int j = 0; rc == 0 && j < nnodes; j++)
        rc = get_counters(nodes[j], prefix, 1, n, out, owned);
    for (int i = 0; rc == 0 && i < n; i++)
        if (owned[i] != 1) {
            fprintf(stderr, "bench: room %s%d answered by %d cluster nodes\n", prefix, i,
                    owned[i]);
            rc = -1;
        }
    free(owned);
    return rc;
}

/* CLUSTER INFO of one node says cluster_state:ok. */
static int cluster_ok(redisContext *c) {
    redisReply *r = redisCommand(c, "CLUSTER INFO");
    int ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok") != NULL;
    if (r) freeReplyObject(r);
    return ok;
}

/* Poll every node every 100 ms. */
int kv_cluster_wait_ok(struct redisContext *const *nodes, int nnodes, int timeout_ms) {
    long long deadline = now_ns() + (long long)timeout_ms * 1000000LL;
    while (now_ns() < deadline && !bench_interrupted) {
        int ok = 0;
        for (int j = 0; j < nnodes; j++) ok += cluster_ok(nodes[j]);
        if (ok == nnodes) return 0;
        sleep_until_ns(now_ns() + 100000000LL);
    }
    return -1;
}

/* A command's integer reply (hiredis format); -1 on error or another
 * type. */
static long long reply_int(redisContext *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r) freeReplyObject(r);
    return v;
}

/* A command's status or string reply into buf (hiredis format); "?" on
 * error or nil. */
static void reply_str(redisContext *c, char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    int ok = r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
    snprintf(buf, size, "%s", ok ? r->str : "?");
    if (r) freeReplyObject(r);
}

/* CONFIG GET of a numeric parameter: the reply is [name, value]. */
static long long config_int(redisContext *c, const char *name) {
    redisReply *r = redisCommand(c, "CONFIG GET %s", name);
    long long v = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        v = strtoll(r->element[1]->str, NULL, 10);
    if (r) freeReplyObject(r);
    return v;
}

/* ZCARD of the room index. */
long long kv_room_ids(struct redisContext *c, const char *room) {
    return reply_int(c, "ZCARD " PREFIX ":%s:messages:ids", room);
}

/* OBJECT ENCODING of the message hash and the room index, the message's
 * content length and the index's size, and the two thresholds. */
void kv_encodings(struct redisContext *c, const char *room, long id, struct encodings *e) {
    snprintf(e->msg_key, sizeof(e->msg_key), PREFIX ":%s:%ld", room, id);
    snprintf(e->index_key, sizeof(e->index_key), PREFIX ":%s:messages:ids", room);
    reply_str(c, e->msg, sizeof(e->msg), "OBJECT ENCODING %s", e->msg_key);
    reply_str(c, e->index, sizeof(e->index), "OBJECT ENCODING %s", e->index_key);
    e->msg_bytes = reply_int(c, "HSTRLEN %s content", e->msg_key);
    e->index_ids = kv_room_ids(c, room);
    e->hash_max_value = config_int(c, "hash-max-listpack-value");
    e->zset_max_entries = config_int(c, "zset-max-listpack-entries");
}

/* CONFIG SET name value. 0 or -1. */
int kv_config_set(struct redisContext *c, const char *name, const char *value) {
    redisReply *r = redisCommand(c, "CONFIG SET %s %s", name, value);
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
    return ok ? 0 : -1;
}
