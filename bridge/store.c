/* store.c -- the Redis store (see store.h for the schema).
 *
 * One hiredis context, owned by the store worker thread. Each batch is
 * pipelined: every EVALSHA is appended to hiredis' output buffer, then the
 * replies are read in order. hiredis 0.14 has no reconnect of its own and
 * a context that saw an I/O error cannot be reused, so on any I/O error the
 * context is dropped and the caller reconnects. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "cluster.h"
#include "names.h"
#include "result.h"
#include "store.h"

/* The Lua scripts, embedded from bridge/lua/ at build time. */
extern const char script_send_lua[];
extern const char script_history_lua[];
extern const char script_delete_lua[];

enum { SCRIPT_SEND, SCRIPT_HISTORY, SCRIPT_DELETE, SCRIPT_COUNT };

static const char *const script_source[SCRIPT_COUNT] = {
    script_send_lua, script_history_lua, script_delete_lua
};

/* Their SHA1s, computed at build time (embed.sh): what EVALSHA names. */
extern const char script_send_sha[];
extern const char script_history_sha[];
extern const char script_delete_sha[];
static const char *const script_sha[SCRIPT_COUNT] = {
    script_send_sha, script_history_sha, script_delete_sha
};

#define KEY_MAX 256

struct store {
    char *host;
    char *unix_socket;
    char *username;
    char *password;
    char addr[300];        /* "HOST:PORT" or the socket's path */
    char *prefix;
    char *bridge_id;
    long long dedup_window_ms;
    long long retain_count, retain_ms;
    unsigned long long checkpoint;
    int port;
    int timeout_ms;
    redisContext *ctx;
    char sha[SCRIPT_COUNT][41];
    int noscript;          /* a reply said NOSCRIPT: reload and run again */
    int wait_replicas, wait_timeout_ms;
    unsigned long long wait_short; /* atomic: WAITs short of replicas */
    /* Cluster mode (ctx unused): */
    int cluster;
    char **seeds;          /* cluster_nodes split, or host:port */
    size_t nseeds;
    struct cluster *cl;
    int cl_up;             /* the map is loaded and the scripts known */
    struct cluster_cmd *cmds; /* one pass: the commands of its pending ops */
    size_t *cmd_op;        /* cmds[i] belongs to ops[cmd_op[i]] */
    size_t ncmds, cmds_cap;
    char errstr[256];
};

/* ==================== Helpers ==================== */

static void store_seterr(struct store *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void store_seterr(struct store *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errstr, sizeof(s->errstr), fmt, ap);
    va_end(ap);
}

/* strdup that accepts NULL. Returns 0, or -1 when out of memory. */
static int dup_opt(char **dst, const char *src) {
    *dst = NULL;
    if (src == NULL) return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

static int store_cluster_new(struct store *s, const char *nodes);
static int store_cluster_connect(struct store *s);
static int store_cluster_exec(struct store *s, struct store_op *ops, size_t n);
static void store_wait(struct store *s, const struct store_op *ops, size_t n);
static int store_op_wrote(const struct store_op *op);

/* ==================== Lifecycle ==================== */

struct store *store_new(const struct store_opts *opts) {
    struct store *s = calloc(1, sizeof(*s));
    if (s == NULL) return NULL;
    if (dup_opt(&s->host, opts->host) || dup_opt(&s->password, opts->password) ||
        dup_opt(&s->unix_socket, opts->unix_socket) ||
        dup_opt(&s->username, opts->username) ||
        dup_opt(&s->prefix, opts->key_prefix) || dup_opt(&s->bridge_id, opts->bridge_id)) {
        store_free(s);
        return NULL;
    }
    s->port = opts->port;
    s->timeout_ms = opts->timeout_ms;
    for (int i = 0; i < SCRIPT_COUNT; i++)
        snprintf(s->sha[i], sizeof(s->sha[i]), "%s", script_sha[i]);
    s->wait_replicas = opts->wait_replicas;
    s->wait_timeout_ms = opts->wait_timeout_ms;
    if (s->unix_socket)
        snprintf(s->addr, sizeof(s->addr), "%s", s->unix_socket);
    else
        snprintf(s->addr, sizeof(s->addr), "%s:%d", s->host, s->port);
    if (opts->cluster && store_cluster_new(s, opts->cluster_nodes) < 0) {
        store_free(s);
        return NULL;
    }
    s->dedup_window_ms = opts->dedup_window_ms;
    s->retain_count = opts->retain_count;
    s->retain_ms = opts->retain_ms;
    return s;
}

void store_free(struct store *s) {
    if (s == NULL) return;
    store_disconnect(s);
    free(s->host);
    free(s->unix_socket);
    free(s->username);
    free(s->password);
    free(s->prefix);
    free(s->bridge_id);
    cluster_free(s->cl);
    for (size_t i = 0; i < s->nseeds; i++) free(s->seeds[i]);
    free(s->seeds);
    free(s->cmds);
    free(s->cmd_op);
    free(s);
}

void store_disconnect(struct store *s) {
    if (s->ctx) redisFree(s->ctx);
    s->ctx = NULL;
    if (s->cl) cluster_disconnect(s->cl);
    s->cl_up = 0;
}

void store_counters(const struct store *s, struct store_counters *out) {
    struct cluster_stats st = { 0 };
    if (s->cl) cluster_get_stats(s->cl, &st);
    out->moved = st.moved;
    out->ask = st.ask;
    out->wait_short = __atomic_load_n(&s->wait_short, __ATOMIC_RELAXED);
}

const char *store_address(const struct store *s) {
    return s->addr;
}

int store_connected(const struct store *s) {
    if (s->cluster) return s->cl_up;
    return s->ctx != NULL;
}

const char *store_errstr(const struct store *s) {
    return s->errstr;
}

/* Run one command synchronously during connection setup, expecting a
 * reply of 'type'. The reply is returned (caller frees) or NULL with
 * errstr set; an I/O error also drops the context. */
static redisReply *store_command(struct store *s, int type, int argc,
                                 const char **argv) {
    redisReply *r = redisCommandArgv(s->ctx, argc, argv, NULL);
    if (r == NULL) {
        store_seterr(s, "redis %s: %s", s->addr, s->ctx->errstr);
        store_disconnect(s);
        return NULL;
    }
    if (r->type != type) {
        store_seterr(s, "redis %s: %s", argv[0],
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* (Re)load every script and remember its SHA1, for EVALSHA. */
static int store_load_scripts(struct store *s) {
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        const char *argv[] = { "SCRIPT", "LOAD", script_source[i] };
        redisReply *r = store_command(s, REDIS_REPLY_STRING, 3, argv);
        if (r == NULL) return -1;
        snprintf(s->sha[i], sizeof(s->sha[i]), "%s", r->str);
        freeReplyObject(r);
    }
    return 0;
}

/* AUTH [username] password, when a password is set. The reply of a
 * refused AUTH ("WRONGPASS invalid username-password pair ...") names
 * neither, so it can be logged; the secret itself never is. */
static int store_auth(struct store *s) {
    const char *argv[] = { "AUTH", s->username, s->password };
    redisReply *r;

    if (s->password == NULL) return 0;
    if (s->username == NULL) {
        argv[1] = s->password;
        r = store_command(s, REDIS_REPLY_STATUS, 2, argv);
    } else {
        r = store_command(s, REDIS_REPLY_STATUS, 3, argv);
    }
    if (r == NULL) {
        if (s->ctx) {           /* Redis answered: say what to fix */
            char why[sizeof(s->errstr)];
            snprintf(why, sizeof(why), "%s", s->errstr);
            store_seterr(s, "redis %s refused the bridge's credentials "
                         "(redis.username, redis.password): %s", s->addr, why);
        }
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

/* Connect with a timeout that also bounds every later read and write
 * (hiredis' connect timeout alone does not), authenticate, load scripts. */
int store_connect(struct store *s) {
    if (s->cluster) return store_cluster_connect(s);
    struct timeval tv = { s->timeout_ms / 1000, (s->timeout_ms % 1000) * 1000 };
    store_disconnect(s);
    s->ctx = s->unix_socket ? redisConnectUnixWithTimeout(s->unix_socket, tv)
                            : redisConnectWithTimeout(s->host, s->port, tv);
    if (s->ctx == NULL || s->ctx->err) {
        store_seterr(s, "redis %s: %s", s->addr, s->ctx ? s->ctx->errstr : "out of memory");
        store_disconnect(s);
        return CB_ERR_IO;
    }
    if (redisSetTimeout(s->ctx, tv) != REDIS_OK) {
        store_seterr(s, "redis %s: cannot set timeout", s->addr);
        goto fail;
    }
    if (store_auth(s) < 0 || store_load_scripts(s) < 0) goto fail;
    return CB_OK;
fail:
    store_disconnect(s);
    return CB_ERR_IO;
}

/* ==================== Commands ==================== */

/* The room part of every key: the room, or in cluster mode "{room}", a
 * hash tag that puts all of a room's keys in one slot so that each script
 * stays atomic on one node. */
static void store_room_tag(const struct store *s, const char *room,
                           char out[NAME_MAX_BYTES + 3]) {
    snprintf(out, NAME_MAX_BYTES + 3, s->cluster ? "{%s}" : "%s", room);
}

static int store_cluster_emit(struct store *s, const char *room, int argc,
                              const char **argv, const size_t *len);

/* Queue one command of a room: on the connection, or for cluster_exec. */
static int store_emit(struct store *s, const char *room, int argc,
                      const char **argv, const size_t *len) {
    if (s->cluster) return store_cluster_emit(s, room, argc, argv, len);
    return redisAppendCommandArgv(s->ctx, argc, argv, len);
}

/* Append the EVALSHA of one operation to the pipeline. Key names are built
 * here from validated names only; every value is its own argument. */
static int store_append_send(struct store *s, const struct store_op *op) {
    char k[8][KEY_MAX], mprefix[KEY_MAX], ts[24], seq[24], window[24], ckpt[24];
    char keep[24], age[24], r[NAME_MAX_BYTES + 3];
    const char *p = s->prefix, *u = op->req->user;
    store_room_tag(s, op->req->room, r);
    snprintf(k[0], KEY_MAX, "%s:%s:messages", p, r);
    snprintf(k[1], KEY_MAX, "%s:%s", p, r);
    snprintf(k[2], KEY_MAX, "%s:%s:%s", p, r, u);
    snprintf(k[3], KEY_MAX, "%s:%s:messages:ids", p, r);
    snprintf(k[4], KEY_MAX, "%s:%s:%s:ids", p, r, u);
    snprintf(k[5], KEY_MAX, "%s:%s:messages:dedup", p, r);
    snprintf(k[6], KEY_MAX, "%s:%s:messages:dedup:ts", p, r);
    snprintf(k[7], KEY_MAX, "%s:%s:messages:journal:%s", p, r, s->bridge_id);
    snprintf(mprefix, KEY_MAX, "%s:%s:", p, r);
    snprintf(ts, sizeof(ts), "%lld", op->req->ts);
    snprintf(seq, sizeof(seq), "%llu", op->seq);
    snprintf(window, sizeof(window), "%lld", s->dedup_window_ms);
    snprintf(ckpt, sizeof(ckpt), "%llu", __atomic_load_n(&s->checkpoint, __ATOMIC_RELAXED));
    snprintf(keep, sizeof(keep), "%lld", s->retain_count);
    snprintf(age, sizeof(age), "%lld", s->retain_ms);
    const char *cmid = op->req->client_msg_id ? op->req->client_msg_id : "";
    const char *argv[] = { "EVALSHA", s->sha[SCRIPT_SEND], "8",
        k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7],
        mprefix, u, op->req->text, ts, cmid, seq, window, ckpt, keep, age };
    enum { ARGC = sizeof(argv) / sizeof(argv[0]), TEXT_ARG = 13 };
    size_t len[ARGC];
    for (size_t i = 0; i < ARGC; i++) len[i] = strlen(argv[i]);
    len[TEXT_ARG] = op->req->text_len;
    return store_emit(s, op->req->room, ARGC, argv, len);
}

static int store_append_history(struct store *s, const struct store_op *op) {
    char index[KEY_MAX], mprefix[KEY_MAX], before[24], limit[16], r[NAME_MAX_BYTES + 3];
    store_room_tag(s, op->req->room, r);
    if (op->req->user && op->req->user[0])
        snprintf(index, KEY_MAX, "%s:%s:%s:ids", s->prefix, r, op->req->user);
    else
        snprintf(index, KEY_MAX, "%s:%s:messages:ids", s->prefix, r);
    snprintf(mprefix, KEY_MAX, "%s:%s:", s->prefix, r);
    snprintf(before, sizeof(before), "%lld", op->req->before);
    snprintf(limit, sizeof(limit), "%d", op->req->limit);
    const char *argv[] = { "EVALSHA", s->sha[SCRIPT_HISTORY], "1",
        index, mprefix, before, limit };
    return store_emit(s, op->req->room, 7, argv, NULL);
}

static int store_append_delete(struct store *s, const struct store_op *op) {
    char k[5][KEY_MAX], id[24], r[NAME_MAX_BYTES + 3];
    const char *p = s->prefix, *u = op->req->user;
    store_room_tag(s, op->req->room, r);
    snprintf(id, sizeof(id), "%lld", op->req->id);
    snprintf(k[0], KEY_MAX, "%s:%s", p, r);
    snprintf(k[1], KEY_MAX, "%s:%s:messages:ids", p, r);
    snprintf(k[2], KEY_MAX, "%s:%s:%s", p, r, u);
    snprintf(k[3], KEY_MAX, "%s:%s:%s:ids", p, r, u);
    snprintf(k[4], KEY_MAX, "%s:%s:%s", p, r, id);
    const char *argv[] = { "EVALSHA", s->sha[SCRIPT_DELETE], "5",
        k[0], k[1], k[2], k[3], k[4], id, u };
    return store_emit(s, op->req->room, 10, argv, NULL);
}

static int store_append(struct store *s, const struct store_op *op) {
    switch (op->req->kind) {
    case REQ_SEND: return store_append_send(s, op);
    case REQ_HISTORY: return store_append_history(s, op);
    case REQ_DELETE: return store_append_delete(s, op);
    }
    return REDIS_ERR;
}

/* ==================== Replies ==================== */

/* Errors Redis gives while it cannot serve now but will later. A script
 * that touches a key its node does not hold while the slot migrates fails
 * with "non local key"; the scripts are written so that nothing is left
 * half-written then (send.lua), and the migration ends in a MOVED. */
static int store_transient(const char *err) {
    static const char *const codes[] = { "LOADING", "BUSY", "TRYAGAIN",
        "MASTERDOWN", "READONLY", "OOM", "CLUSTERDOWN" };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strncmp(err, codes[i], strlen(codes[i])) == 0) return 1;
    return strstr(err, "non local key") != NULL;
}

/* Turn history.lua's flat reply into store_msg entries pointing into it. */
static int store_parse_history(struct store_op *op, redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        (r->elements - 1) % 5 != 0 || r->element[0]->type != REDIS_REPLY_INTEGER)
        return CB_ERR_PROTO;
    size_t n = (r->elements - 1) / 5;
    op->next_before = r->element[0]->integer;
    op->msgs = n ? calloc(n, sizeof(*op->msgs)) : NULL;
    if (n && op->msgs == NULL) return CB_ERR_OOM;
    op->nmsgs = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply **e = r->element + 1 + i * 5;
        if (e[1]->type != REDIS_REPLY_STRING || e[2]->type != REDIS_REPLY_STRING)
            continue;          /* a message hash without its fields: skip */
        struct store_msg *m = &op->msgs[op->nmsgs++];
        m->id = strtoll(e[0]->str ? e[0]->str : "0", NULL, 10);
        m->user = e[1]->str;
        m->text = e[2]->str;
        m->ts = e[3]->type == REDIS_REPLY_STRING ? strtoll(e[3]->str, NULL, 10) : 0;
        m->client_msg_id = e[4]->type == REDIS_REPLY_STRING ? e[4]->str : NULL;
    }
    return CB_OK;
}

/* send.lua answers { id, how }. */
static int store_parse_send(struct store_op *op, const redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER ||
        r->element[1]->type != REDIS_REPLY_INTEGER)
        return CB_ERR_PROTO;
    op->new_id = r->element[0]->integer;
    op->how = (int)r->element[1]->integer;
    op->result = CB_DONE;
    return CB_OK;
}

/* Record the outcome of one reply in its op. The reply is kept by history
 * ops (their messages point into it) and freed otherwise. */
static int store_take_reply(struct store *s, struct store_op *op, redisReply *r) {
    int rc = CB_OK;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        s->noscript = 1;   /* the script did not run: stays pending */
    } else if (r->type == REDIS_REPLY_ERROR) {
        op->result = store_transient(r->str) ? CB_RETRY : CB_FAILED;
        store_seterr(s, "redis: %s", r->str);
    } else if (op->req->kind == REQ_HISTORY) {
        rc = store_parse_history(op, r);
        if (rc == CB_OK) {
            op->reply = r;
            op->result = CB_DONE;
            return CB_OK;
        }
    } else if (op->req->kind == REQ_SEND) {
        rc = store_parse_send(op, r);
    } else if (r->type != REDIS_REPLY_INTEGER) {
        rc = CB_ERR_PROTO;
    } else {
        op->result = r->integer == 1 ? CB_DONE :
                     r->integer == 0 ? CB_NOT_FOUND : CB_FORBIDDEN;
    }
    if (rc != CB_OK) {
        op->result = CB_FAILED;
        store_seterr(s, "redis: unexpected reply to a script");
    }
    freeReplyObject(r);
    return CB_OK;
}

/* ==================== Batches ==================== */

/* One pipelined pass over the ops that have no result yet. */
static int store_pass(struct store *s, struct store_op *ops, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (ops[i].result != CB_PENDING) continue;
        if (store_append(s, &ops[i]) != REDIS_OK) goto io_error;
    }
    for (size_t i = 0; i < n; i++) {
        void *r;
        if (ops[i].result != CB_PENDING) continue;
        if (redisGetReply(s->ctx, &r) != REDIS_OK || r == NULL) goto io_error;
        store_take_reply(s, &ops[i], r);
    }
    return CB_OK;
io_error:
    store_seterr(s, "redis %s: %s", s->addr,
                 s->ctx->errstr[0] ? s->ctx->errstr : "connection lost");
    store_disconnect(s);
    return CB_ERR_IO;
}

int store_exec(struct store *s, struct store_op *ops, size_t n) {
    if (s->cluster) return store_cluster_exec(s, ops, n);
    if (s->ctx == NULL) {
        store_seterr(s, "redis %s: not connected", s->addr);
        return CB_ERR_IO;
    }
    s->errstr[0] = '\0';
    s->noscript = 0;
    int rc = store_pass(s, ops, n);
    if (rc == CB_OK && s->noscript) {
        /* The script cache was flushed (SCRIPT FLUSH, a restart without
         * our reconnect noticing): load again and run what did not run. */
        if (store_load_scripts(s) < 0) return s->ctx ? CB_OK : CB_ERR_IO;
        rc = store_pass(s, ops, n);
    }
    if (rc == CB_OK) store_wait(s, ops, n);
    return rc;
}

void store_set_checkpoint(struct store *s, unsigned long long seq) {
    __atomic_store_n(&s->checkpoint, seq, __ATOMIC_RELAXED);
}

void store_op_clear(struct store_op *op) {
    if (op->reply) freeReplyObject(op->reply);
    free(op->msgs);
    op->reply = NULL;
    op->msgs = NULL;
    op->nmsgs = 0;
    op->next_before = 0;
    op->new_id = 0;
    op->how = 0;
    op->result = CB_PENDING;
}

/* ==================== Cluster mode ==================== */

/* Split "HOST:PORT HOST:PORT,..." (config.c checked it) into s->seeds; no
 * list means host:port. The seeds also name the store in messages. */
static int store_split_seeds(struct store *s, const char *nodes) {
    char one[300], hostport[300];
    const char *p = nodes;

    if (p == NULL) {
        snprintf(hostport, sizeof(hostport), "%s:%d", s->host, s->port);
        p = hostport;
    }
    snprintf(s->addr, sizeof(s->addr), "cluster %.280s", p);
    while (*p) {
        size_t len = strcspn(p, " ,");
        if (len > 0 && len < sizeof(one)) {
            char **grown = realloc(s->seeds, (s->nseeds + 1) * sizeof(*grown));
            if (grown == NULL) return -1;
            s->seeds = grown;
            snprintf(one, sizeof(one), "%.*s", (int)len, p);
            if ((s->seeds[s->nseeds] = strdup(one)) == NULL) return -1;
            s->nseeds++;
        }
        p += len + (p[len] != '\0');
    }
    return s->nseeds ? 0 : -1;
}

/* The cluster context for these seeds, with the store's credentials. */
static int store_cluster_new(struct store *s, const char *nodes) {
    s->cluster = 1;
    if (store_split_seeds(s, nodes) < 0) return -1;
    struct cluster_opts o = { (const char *const *)s->seeds, s->nseeds,
        s->username, s->password, s->timeout_ms, 0 };
    s->cl = cluster_new(&o);
    return s->cl ? 0 : -1;
}

/* Room for n commands in the pass arrays. 0 or -1. */
static int store_cmds_reserve(struct store *s, size_t n) {
    if (n <= s->cmds_cap) return 0;
    struct cluster_cmd *cmds = realloc(s->cmds, n * sizeof(*cmds));
    if (cmds == NULL) return -1;
    s->cmds = cmds;
    size_t *map = realloc(s->cmd_op, n * sizeof(*map));
    if (map == NULL) return -1;
    s->cmd_op = map;
    s->cmds_cap = n;
    return 0;
}

/* Queue one command for the pass being built, in its room's slot. */
static int store_cluster_emit(struct store *s, const char *room, int argc,
                              const char **argv, const size_t *len) {
    struct cluster_cmd *cmd = &s->cmds[s->ncmds];
    memset(cmd, 0, sizeof(*cmd));
    if (cluster_cmd_format(cmd, cluster_keyslot(room, strlen(room)), argc, argv,
                           len) != CLUSTER_OK)
        return REDIS_ERR;
    s->ncmds++;
    return REDIS_OK;
}

/* Run the commands queued; every one is cleared afterwards. */
static int store_cluster_run(struct store *s) {
    int rc = cluster_exec(s->cl, s->cmds, s->ncmds);
    if (rc != CLUSTER_OK)
        store_seterr(s, "redis %s: %s", s->addr, cluster_errstr(s->cl));
    return rc;
}

static void store_cluster_clear(struct store *s) {
    for (size_t i = 0; i < s->ncmds; i++) cluster_cmd_clear(&s->cmds[i]);
    s->ncmds = 0;
}

/* The distinct primaries that ops[i] with want(&ops[i]) go to, as one
 * slot of each, into slots[] (room for n). Returns how many. */
static size_t store_cluster_nodes(struct store *s, const struct store_op *ops,
                                  size_t n, int (*want)(const struct store_op *),
                                  unsigned *slots) {
    char addr[300];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!want(&ops[i])) continue;
        unsigned slot = cluster_keyslot(ops[i].req->room, strlen(ops[i].req->room));
        const char *a = cluster_slot_addr(s->cl, slot);
        size_t j = 0;
        if (a == NULL) continue;
        snprintf(addr, sizeof(addr), "%s", a);
        for (; j < k; j++) {
            const char *b = cluster_slot_addr(s->cl, slots[j]);
            if (b && strcmp(addr, b) == 0) break;
        }
        if (j == k) slots[k++] = slot;
    }
    return k;
}

/* Queue argv once for each of slots[0..k) (one per node). 0 or -1. */
static int store_cluster_each(struct store *s, const unsigned *slots, size_t k,
                              int argc, const char **argv) {
    for (size_t i = 0; i < k; i++) {
        memset(&s->cmds[s->ncmds], 0, sizeof(s->cmds[0]));
        if (cluster_cmd_format(&s->cmds[s->ncmds], slots[i], argc, argv, NULL) != CLUSTER_OK)
            return -1;
        s->ncmds++;
    }
    return 0;
}

/* Load every script into the primaries of slots[0..k) (each primary has
 * its own script cache: a new one after a failover or a reshard starts
 * empty). 0, or -1 when a node could not be reached. */
static int store_cluster_load(struct store *s, const unsigned *slots, size_t k) {
    int rc = 0;
    s->ncmds = 0;
    if (store_cmds_reserve(s, k * SCRIPT_COUNT) < 0) return -1;
    for (int i = 0; i < SCRIPT_COUNT && rc == 0; i++) {
        const char *argv[] = { "SCRIPT", "LOAD", script_source[i] };
        rc = store_cluster_each(s, slots, k, 3, argv);
    }
    if (rc == 0) store_cluster_run(s);
    for (size_t i = 0; rc == 0 && i < s->ncmds; i++)
        if (s->cmds[i].result != CLUSTER_REPLY) rc = -1;
    if (rc < 0 && s->errstr[0] == '\0')
        store_seterr(s, "redis %s: cannot load the scripts", s->addr);
    store_cluster_clear(s);
    return rc;
}

/* Load the slot map. The scripts' SHA1s are known from the build; each
 * primary gets the scripts on its first NOSCRIPT. */
static int store_cluster_connect(struct store *s) {
    s->cl_up = 0;
    if (cluster_refresh(s->cl) != CLUSTER_OK) {
        store_seterr(s, "redis %s: %s", s->addr, cluster_errstr(s->cl));
        return CB_ERR_IO;
    }
    s->cl_up = 1;
    return CB_OK;
}

/* 1 when op still waits for Redis. */
static int store_op_pending(const struct store_op *op) {
    return op->result == CB_PENDING;
}

/* Give each command's outcome to its op: a reply is taken like on one
 * connection; -TRYAGAIN, -CLUSTERDOWN and too many redirections make the
 * op retry later; a failed node leaves it pending (CB_ERR_IO). */
static int store_cluster_results(struct store *s, struct store_op *ops) {
    int rc = CB_OK;
    for (size_t i = 0; i < s->ncmds; i++) {
        struct cluster_cmd *cmd = &s->cmds[i];
        struct store_op *op = &ops[s->cmd_op[i]];
        if (cmd->result == CLUSTER_REPLY) {
            store_take_reply(s, op, cmd->reply);
            cmd->reply = NULL;
        } else if (cmd->result == CLUSTER_RETRY) {
            op->result = CB_RETRY;
            store_seterr(s, "redis %s: %s", s->addr, cmd->reply && cmd->reply->str
                         ? cmd->reply->str : cluster_errstr(s->cl));
        } else {
            rc = CB_ERR_IO;
        }
    }
    return rc;
}

/* One pass over the pending ops, routed by slot. */
static int store_cluster_pass(struct store *s, struct store_op *ops, size_t n) {
    if (store_cmds_reserve(s, n) < 0) return CB_ERR_OOM;
    s->ncmds = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].result != CB_PENDING) continue;
        s->cmd_op[s->ncmds] = i;
        if (store_append(s, &ops[i]) != REDIS_OK) {
            store_cluster_clear(s);
            return CB_ERR_OOM;
        }
    }
    store_cluster_run(s);
    int rc = store_cluster_results(s, ops);
    store_cluster_clear(s);
    if (rc == CB_ERR_IO) {
        store_seterr(s, "redis %s: %s", s->addr, cluster_errstr(s->cl));
        store_disconnect(s);         /* the caller reconnects: map reload */
    }
    return rc;
}

/* store_exec in cluster mode. A NOSCRIPT (a primary that has not seen the
 * scripts) loads them into the primaries of the ops that did not run, and
 * those run again. */
static int store_cluster_exec(struct store *s, struct store_op *ops, size_t n) {
    if (!s->cl_up) {
        store_seterr(s, "redis %s: not connected", s->addr);
        return CB_ERR_IO;
    }
    s->errstr[0] = '\0';
    s->noscript = 0;
    int rc = store_cluster_pass(s, ops, n);
    if (rc == CB_OK && s->noscript) {
        unsigned *slots = malloc(n * sizeof(*slots));
        size_t k = slots ? store_cluster_nodes(s, ops, n, store_op_pending, slots) : 0;
        int loaded = slots ? store_cluster_load(s, slots, k) : -1;
        free(slots);
        if (loaded < 0) {
            store_disconnect(s);
            return CB_ERR_IO;
        }
        s->noscript = 0;
        rc = store_cluster_pass(s, ops, n);
    }
    if (rc == CB_OK) store_wait(s, ops, n);
    return rc;
}

/* ==================== Replication (WAIT) ==================== */

/* 1 when op changed the data set: a send stored now, or a delete. */
static int store_op_wrote(const struct store_op *op) {
    return op->result == CB_DONE &&
           (op->req->kind == REQ_DELETE || (op->req->kind == REQ_SEND && op->how == STORE_NEW));
}

/* Count a WAIT that saw fewer replicas than asked. The writes stand (WAIT
 * cannot undo them): a failover within the window may still lose them. */
static void store_wait_result(struct store *s, const redisReply *r) {
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer >= s->wait_replicas) return;
    __atomic_add_fetch(&s->wait_short, 1, __ATOMIC_RELAXED);
    store_seterr(s, "redis %s: WAIT: %lld of %d replicas within %d ms", s->addr,
                 r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1LL,
                 s->wait_replicas, s->wait_timeout_ms);
}

/* Cluster mode: one WAIT per primary written to, sent in a slot it owns. */
static void store_cluster_wait(struct store *s, const struct store_op *ops, size_t n) {
    char count[16], ms[16];
    const char *argv[] = { "WAIT", count, ms };
    unsigned *slots = malloc(n * sizeof(*slots));
    size_t k = slots ? store_cluster_nodes(s, ops, n, store_op_wrote, slots) : 0;

    snprintf(count, sizeof(count), "%d", s->wait_replicas);
    snprintf(ms, sizeof(ms), "%d", s->wait_timeout_ms);
    s->ncmds = 0;
    if (k > 0 && store_cmds_reserve(s, k) == 0 &&
        store_cluster_each(s, slots, k, 3, argv) == 0) {
        store_cluster_run(s);
        for (size_t i = 0; i < s->ncmds; i++)
            store_wait_result(s, s->cmds[i].result == CLUSTER_REPLY ? s->cmds[i].reply : NULL);
    } else if (k > 0) {
        store_wait_result(s, NULL);      /* out of memory: say it did not wait */
    }
    store_cluster_clear(s);
    free(slots);
}

/* With redis.wait_replicas set, after a batch that wrote: wait until that
 * many replicas hold the writes (or the timeout), before the caller
 * acknowledges and the journal lets the records go. */
static void store_wait(struct store *s, const struct store_op *ops, size_t n) {
    char count[16], ms[16];
    size_t i = 0;
    if (s->wait_replicas <= 0) return;
    while (i < n && !store_op_wrote(&ops[i])) i++;
    if (i == n) return;
    if (s->cluster) {
        store_cluster_wait(s, ops, n);
        return;
    }
    snprintf(count, sizeof(count), "%d", s->wait_replicas);
    snprintf(ms, sizeof(ms), "%d", s->wait_timeout_ms);
    const char *argv[] = { "WAIT", count, ms };
    redisReply *r = redisCommandArgv(s->ctx, 3, argv, NULL);
    store_wait_result(s, r);
    if (r) freeReplyObject(r);
    else store_disconnect(s);          /* the next batch reconnects */
}
