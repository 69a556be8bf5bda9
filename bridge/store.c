/* store.c -- the Redis store (see store.h for the schema).
 *
 * The schema only: the keys and arguments of each script run, and what
 * its reply means. How the commands reach Redis (one node, a Unix socket,
 * a cluster) is the executor's business (rexec.h), owned by the store and
 * used by the store worker thread alone. Each batch is one pass: one
 * command per pending op, run pipelined by the executor; a NOSCRIPT sends
 * the scripts to the nodes of the ops that did not run, and those run
 * again; a batch that wrote ends with WAIT on each node written to. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "cluster.h"
#include "log.h"
#include "names.h"
#include "result.h"
#include "rexec.h"
#include "store.h"

/* The Lua scripts, embedded from bridge/lua/ at build time. */
extern const char script_send_lua[];
extern const char script_history_lua[];
extern const char script_delete_lua[];
extern const char script_adopt_lua[];
extern const char script_reap_lua[];
extern const char script_edit_lua[];
extern const char script_read_lua[];
extern const char script_members_lua[];
extern const char script_rooms_lua[];

enum { SCRIPT_SEND, SCRIPT_HISTORY, SCRIPT_DELETE, SCRIPT_ADOPT, SCRIPT_REAP,
       SCRIPT_EDIT, SCRIPT_READ, SCRIPT_MEMBERS, SCRIPT_ROOMS, SCRIPT_COUNT };

static const char *const script_source[SCRIPT_COUNT] = {
    script_send_lua, script_history_lua, script_delete_lua, script_adopt_lua,
    script_reap_lua, script_edit_lua, script_read_lua, script_members_lua,
    script_rooms_lua
};

/* Their SHA1s, computed at build time (embed.sh): what EVALSHA names. */
extern const char script_send_sha[];
extern const char script_history_sha[];
extern const char script_delete_sha[];
extern const char script_adopt_sha[];
extern const char script_reap_sha[];
extern const char script_edit_sha[];
extern const char script_read_sha[];
extern const char script_members_sha[];
extern const char script_rooms_sha[];
static const char *const script_sha[SCRIPT_COUNT] = {
    script_send_sha, script_history_sha, script_delete_sha, script_adopt_sha,
    script_reap_sha, script_edit_sha, script_read_sha, script_members_sha,
    script_rooms_sha
};

#define KEY_MAX 256

struct store {
    struct rexec *x;       /* how commands reach Redis */
    int cluster;           /* the schema: keys hash-tagged by room */
    char *prefix;
    char *bridge_id;
    long long dedup_window_ms;
    long long retain_count, retain_ms;
    unsigned long long checkpoint;   /* atomic */
    int wait_replicas, wait_timeout_ms;
    unsigned long long wait_short;   /* atomic: WAITs short of replicas */
    rexec_notify_fn *notify;   /* a line for the log (store_opts) */
    void *notify_arg;
    int noscript;          /* a reply said NOSCRIPT: load and run again */
    int advanced;          /* ops that moved to their second step */
    struct rexec_cmd *cmds;  /* one pass: the commands of its pending ops */
    size_t *cmd_op;        /* cmds[i] belongs to ops[cmd_op[i]] ... */
    size_t *cmd_sub;       /* ... and is its cmd_sub[i]-th (a user's rooms) */
    size_t cur_op, cur_sub;  /* what store_emit() marks the next command */
    unsigned *slots;       /* the slots of some commands (NOSCRIPT, WAIT) */
    size_t nslots;         /* NOSCRIPT: the slots of the refused commands */
    size_t ncmds, cap;
    char errstr[REXEC_ERR_MAX];
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

/* ==================== Lifecycle ==================== */

struct store *store_new(const struct store_opts *opts) {
    struct rexec_opts xo = {
        .host = opts->host, .port = opts->port, .unix_socket = opts->unix_socket,
        .cluster = opts->cluster, .cluster_nodes = opts->cluster_nodes,
        .username = opts->username, .password = opts->password,
        .timeout_ms = opts->timeout_ms, .sentinels = opts->sentinels,
        .sentinel_master = opts->sentinel_master,
        .sentinel_password = opts->sentinel_password,
        .notify = opts->notify, .notify_arg = opts->notify_arg,
    };
    struct store *s = calloc(1, sizeof(*s));
    if (s == NULL) return NULL;
    if (rexec_opt_dup(&s->prefix, opts->key_prefix) || rexec_opt_dup(&s->bridge_id, opts->bridge_id) ||
        (s->x = rexec_new(&xo)) == NULL) {
        store_free(s);
        return NULL;
    }
    s->cluster = opts->cluster;
    s->notify = opts->notify;
    s->notify_arg = opts->notify_arg;
    s->wait_replicas = opts->wait_replicas;
    s->wait_timeout_ms = opts->wait_timeout_ms;
    s->dedup_window_ms = opts->dedup_window_ms;
    s->retain_count = opts->retain_count;
    s->retain_ms = opts->retain_ms;
    return s;
}

void store_free(struct store *s) {
    if (s == NULL) return;
    rexec_free(s->x);
    free(s->prefix);
    free(s->bridge_id);
    free(s->cmds);
    free(s->cmd_op);
    free(s->cmd_sub);
    free(s->slots);
    free(s);
}

/* Connect and authenticate (a cluster: load the slot map). The scripts'
 * SHA1s are known from the build: each node gets the scripts on its
 * first NOSCRIPT, not at connect. */
int store_connect(struct store *s) {
    if (rexec_connect(s->x) == CB_OK) return CB_OK;
    store_seterr(s, "%s", rexec_errstr(s->x));
    return CB_ERR_IO;
}

int store_connected(const struct store *s) {
    return rexec_connected(s->x);
}

void store_disconnect(struct store *s) {
    rexec_disconnect(s->x);
}

void store_counters(const struct store *s, struct store_counters *out) {
    struct rexec_counters xc;
    rexec_counters(s->x, &xc);
    out->moved = xc.moved;
    out->ask = xc.ask;
    out->failovers = xc.failovers;
    memcpy(out->primary, xc.primary, sizeof(out->primary));
    memcpy(out->watching, xc.watching, sizeof(out->watching));
    out->wait_short = __atomic_load_n(&s->wait_short, __ATOMIC_RELAXED);
}

const char *store_address(const struct store *s) {
    return rexec_address(s->x);
}

const char *store_errstr(const struct store *s) {
    return s->errstr;
}

/* ==================== Commands ==================== */

/* The room part of every key: the room, or in cluster mode "{room}", a
 * hash tag that puts all of a room's keys in one slot so that each script
 * stays atomic on one node. */
static void store_room_tag(const struct store *s, const char *room,
                           char out[NAME_MAX_BYTES + 3]) {
    snprintf(out, NAME_MAX_BYTES + 3, s->cluster ? "{%s}" : "%s", room);
}

/* The slot of every key of an op: that of its room (the hash tag in
 * cluster mode; a single node ignores it). */
static unsigned store_op_slot(const struct store_op *op) {
    return cluster_keyslot(op->req->room, strlen(op->req->room));
}

static int store_reserve(struct store *s, size_t n);
static unsigned store_user_rooms_key(const struct store *s, const char *user,
                                     char key[KEY_MAX]);

/* What the send and read scripts get for the user's rooms: its key on one
 * node, where they add the room themselves, "" in cluster mode, where it
 * is another slot and a step of its own (store_then_index). */
static void store_user_index(const struct store *s, const char *user, char key[KEY_MAX]) {
    if (s->cluster) key[0] = '\0';
    else store_user_rooms_key(s, user, key);
}

/* Queue one command for slot in the pass being built, marked as the
 * current op's (cur_op, cur_sub). CB_OK or CB_ERR_OOM. */
static int store_emit_slot(struct store *s, unsigned slot, int argc, const char **argv,
                           const size_t *len) {
    if (store_reserve(s, s->ncmds + 1) < 0) return CB_ERR_OOM;
    int rc = rexec_cmd_format(&s->cmds[s->ncmds], slot, argc, argv, len);
    if (rc != CB_OK) return rc;
    s->cmd_op[s->ncmds] = s->cur_op;
    s->cmd_sub[s->ncmds++] = s->cur_sub;
    return CB_OK;
}

/* The same in the slot of op's room. */
static int store_emit(struct store *s, const struct store_op *op, int argc,
                      const char **argv, const size_t *len) {
    return store_emit_slot(s, store_op_slot(op), argc, argv, len);
}

/* Queue the EVALSHA of one operation. Key names are built
 * here from validated names only; every value is its own argument. */
static int store_append_send(struct store *s, const struct store_op *op) {
    char k[12][KEY_MAX], mprefix[KEY_MAX], ts[24], seq[24], window[24], ckpt[24];
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
    snprintf(k[8], KEY_MAX, "%s:%s:messages:cursor", p, r);
    snprintf(k[9], KEY_MAX, "%s:%s:messages:read", p, r);
    snprintf(k[10], KEY_MAX, "%s:%s:messages:members", p, r);
    store_user_index(s, u, k[11]);
    snprintf(mprefix, KEY_MAX, "%s:%s:", p, r);
    snprintf(ts, sizeof(ts), "%lld", op->req->ts);
    snprintf(seq, sizeof(seq), "%llu", op->seq);
    snprintf(window, sizeof(window), "%lld", s->dedup_window_ms);
    snprintf(ckpt, sizeof(ckpt), "%llu", __atomic_load_n(&s->checkpoint, __ATOMIC_RELAXED));
    snprintf(keep, sizeof(keep), "%lld", s->retain_count);
    snprintf(age, sizeof(age), "%lld", s->retain_ms);
    const char *cmid = op->req->client_msg_id ? op->req->client_msg_id : "";
    const char *argv[] = { "EVALSHA", script_sha[SCRIPT_SEND], "11",
        k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8], k[9], k[10],
        mprefix, u, op->req->text, ts, cmid, seq, window, ckpt, keep, age, op->req->room, k[11],
        op->fresh ? "1" : "0" };
    enum { ARGC = sizeof(argv) / sizeof(argv[0]), TEXT_ARG = 16 };
    size_t len[ARGC];
    for (size_t i = 0; i < ARGC; i++) len[i] = strlen(argv[i]);
    len[TEXT_ARG] = op->req->text_len;
    return store_emit(s, op, ARGC, argv, len);
}

static int store_append_history(struct store *s, const struct store_op *op) {
    char index[KEY_MAX], mprefix[KEY_MAX], before[24], after[24], limit[16];
    char r[NAME_MAX_BYTES + 3];
    store_room_tag(s, op->req->room, r);
    if (op->req->user && op->req->user[0])
        snprintf(index, KEY_MAX, "%s:%s:%s:ids", s->prefix, r, op->req->user);
    else
        snprintf(index, KEY_MAX, "%s:%s:messages:ids", s->prefix, r);
    snprintf(mprefix, KEY_MAX, "%s:%s:", s->prefix, r);
    snprintf(before, sizeof(before), "%lld", op->req->before);
    snprintf(limit, sizeof(limit), "%d", op->req->limit);
    snprintf(after, sizeof(after), "%lld", op->req->after < 0 ? -1 : op->req->after);
    const char *argv[] = { "EVALSHA", script_sha[SCRIPT_HISTORY], "1",
        index, mprefix, before, limit, after };
    return store_emit(s, op, 8, argv, NULL);
}

/* An edit: the message and its author's hash, the edits' dedup, the
 * replay guard of send.lua. */
static int store_append_edit(struct store *s, const struct store_op *op) {
    char k[5][KEY_MAX], id[24], ts[24], seq[24], window[24], ckpt[24];
    char r[NAME_MAX_BYTES + 3];
    const char *p = s->prefix, *u = op->req->user;
    store_room_tag(s, op->req->room, r);
    snprintf(id, sizeof(id), "%lld", op->req->id);
    snprintf(k[0], KEY_MAX, "%s:%s:%s", p, r, u);
    snprintf(k[1], KEY_MAX, "%s:%s:%s", p, r, id);
    snprintf(k[2], KEY_MAX, "%s:%s:messages:edits", p, r);
    snprintf(k[3], KEY_MAX, "%s:%s:messages:edits:ts", p, r);
    snprintf(k[4], KEY_MAX, "%s:%s:messages:journal:%s", p, r, s->bridge_id);
    snprintf(ts, sizeof(ts), "%lld", op->req->ts);
    snprintf(seq, sizeof(seq), "%llu", op->seq);
    snprintf(window, sizeof(window), "%lld", s->dedup_window_ms);
    snprintf(ckpt, sizeof(ckpt), "%llu", __atomic_load_n(&s->checkpoint, __ATOMIC_RELAXED));
    const char *cmid = op->req->client_msg_id ? op->req->client_msg_id : "";
    const char *argv[] = { "EVALSHA", script_sha[SCRIPT_EDIT], "5",
        k[0], k[1], k[2], k[3], k[4], id, u, op->req->text, ts, cmid, seq, window, ckpt };
    enum { ARGC = sizeof(argv) / sizeof(argv[0]), TEXT_ARG = 10 };
    size_t len[ARGC];
    for (size_t i = 0; i < ARGC; i++) len[i] = strlen(argv[i]);
    len[TEXT_ARG] = op->req->text_len;
    return store_emit(s, op, ARGC, argv, len);
}

/* A read marker: the room's counter and index, the markers, the user's
 * index, the members and when they last marked. */
static int store_append_read(struct store *s, const struct store_op *op) {
    char k[7][KEY_MAX], id[24], ts[24], r[NAME_MAX_BYTES + 3];
    const char *p = s->prefix, *u = op->req->user;
    store_room_tag(s, op->req->room, r);
    snprintf(id, sizeof(id), "%lld", op->req->id);
    snprintf(ts, sizeof(ts), "%lld", op->req->ts);
    snprintf(k[0], KEY_MAX, "%s:%s:messages", p, r);
    snprintf(k[1], KEY_MAX, "%s:%s:messages:read", p, r);
    snprintf(k[2], KEY_MAX, "%s:%s:messages:ids", p, r);
    snprintf(k[3], KEY_MAX, "%s:%s:%s:ids", p, r, u);
    snprintf(k[4], KEY_MAX, "%s:%s:messages:members", p, r);
    snprintf(k[5], KEY_MAX, "%s:%s:messages:seen", p, r);
    store_user_index(s, u, k[6]);
    const char *argv[] = { "EVALSHA", script_sha[SCRIPT_READ], "6",
        k[0], k[1], k[2], k[3], k[4], k[5], id, u, ts, op->req->room, k[6] };
    return store_emit(s, op, 14, argv, NULL);
}

/* A page of the room's members. */
static int store_append_members(struct store *s, const struct store_op *op) {
    char k[5][KEY_MAX], mprefix[KEY_MAX], limit[16], r[NAME_MAX_BYTES + 3];
    const char *p = s->prefix;
    store_room_tag(s, op->req->room, r);
    snprintf(k[0], KEY_MAX, "%s:%s:messages:members", p, r);
    snprintf(k[1], KEY_MAX, "%s:%s", p, r);
    snprintf(k[2], KEY_MAX, "%s:%s:messages:read", p, r);
    snprintf(k[3], KEY_MAX, "%s:%s:messages:seen", p, r);
    snprintf(k[4], KEY_MAX, "%s:%s:messages:cursor", p, r);
    snprintf(mprefix, KEY_MAX, "%s:%s:", p, r);
    snprintf(limit, sizeof(limit), "%d", op->req->limit);
    const char *argv[] = { "EVALSHA", script_sha[SCRIPT_MEMBERS], "5",
        k[0], k[1], k[2], k[3], k[4], mprefix, op->req->user, limit };
    return store_emit(s, op, 11, argv, NULL);
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
    const char *argv[] = { "EVALSHA", script_sha[SCRIPT_DELETE], "5",
        k[0], k[1], k[2], k[3], k[4], id, u };
    return store_emit(s, op, 10, argv, NULL);
}

/* ---- A user's rooms: a key of its own, outside the rooms' slots ---- */

/* "P:$user:U:rooms" (cluster mode: "P:$user:{U}:rooms", in the user's
 * slot): the rooms where U sent or marked read, scored by when U last did
 * (Unix ms). No key of the schema has four parts ending in ":rooms", so
 * it is no room's key, even of a room an older bridge let start with '$'. */
static unsigned store_user_rooms_key(const struct store *s, const char *user,
                                     char key[KEY_MAX]) {
    snprintf(key, KEY_MAX, s->cluster ? "%s:$user:{%s}:rooms" : "%s:$user:%s:rooms", s->prefix,
             user);
    return cluster_keyslot(user, strlen(user));
}

/* The second step of a send or a read marker that succeeded: the room in
 * the user's rooms. Another slot than the room's, hence another command;
 * GT makes it idempotent (a replay, or another bridge, never moves it
 * back). */
static int store_append_index(struct store *s, const struct store_op *op) {
    char key[KEY_MAX], ts[24];
    unsigned slot = store_user_rooms_key(s, op->req->user, key);
    snprintf(ts, sizeof(ts), "%lld", op->req->ts);
    const char *argv[] = { "ZADD", key, "GT", ts, op->req->room };
    return store_emit_slot(s, slot, 5, argv, NULL);
}

/* A user's rooms, first step: on one node, rooms.lua over the
 * STORE_ROOMS_MAX rooms the user was most recently active in, all at
 * once; in cluster mode, where they are in other slots, only that list. */
static int store_append_rooms(struct store *s, const struct store_op *op) {
    char key[KEY_MAX], prefix[KEY_MAX], max[16];
    unsigned slot = store_user_rooms_key(s, op->req->user, key);
    snprintf(prefix, sizeof(prefix), "%s:", s->prefix);
    snprintf(max, sizeof(max), "%d", STORE_ROOMS_MAX);
    if (s->cluster) {
        const char *argv[] = { "ZREVRANGE", key, "0", "-1" };
        snprintf(max, sizeof(max), "%d", STORE_ROOMS_MAX - 1);
        argv[3] = max;
        return store_emit_slot(s, slot, 4, argv, NULL);
    }
    const char *argv[] = { "EVALSHA", script_sha[SCRIPT_ROOMS], "1", key, prefix,
                           op->req->user, "0", "", max };
    return store_emit_slot(s, slot, 9, argv, NULL);
}

/* Cluster mode, second step: rooms.lua in each listed room that has no
 * answer yet, in its room's slot. */
static int store_append_room_each(struct store *s, const struct store_op *op) {
    char counter[KEY_MAX], prefix[KEY_MAX], r[NAME_MAX_BYTES + 3];
    int rc = CB_OK;
    snprintf(prefix, sizeof(prefix), "%s:", s->prefix);
    for (size_t i = 0; i < op->nall && rc == CB_OK; i++) {
        const char *room = op->all[i].room;
        if (op->subs[i]) continue;
        store_room_tag(s, room, r);
        snprintf(counter, KEY_MAX, "%s:%s:messages", s->prefix, r);
        const char *argv[] = { "EVALSHA", script_sha[SCRIPT_ROOMS], "1", counter, prefix,
                               op->req->user, "1", room, "1" };
        s->cur_sub = i;
        rc = store_emit_slot(s, cluster_keyslot(room, strlen(room)), 9, argv, NULL);
    }
    return rc;
}

/* Queue the command(s) of op's current step; an op of no known kind fails
 * for good, without a command. CB_OK or CB_ERR_OOM. */
static int store_append(struct store *s, struct store_op *op) {
    if (op->step == 1)
        return op->req->kind == REQ_ROOMS ? store_append_room_each(s, op)
                                          : store_append_index(s, op);
    switch (op->req->kind) {
    case REQ_SEND: return store_append_send(s, op);
    case REQ_HISTORY: return store_append_history(s, op);
    case REQ_DELETE: return store_append_delete(s, op);
    case REQ_EDIT: return store_append_edit(s, op);
    case REQ_READ: return store_append_read(s, op);
    case REQ_MEMBERS: return store_append_members(s, op);
    case REQ_ROOMS: return store_append_rooms(s, op);
    }
    op->result = CB_FAILED;
    store_seterr(s, "store: request kind %d unknown", op->req->kind);
    return CB_OK;
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
    enum { STRIDE = 6 };
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        (r->elements - 1) % STRIDE != 0 || r->element[0]->type != REDIS_REPLY_INTEGER)
        return CB_ERR_PROTO;
    size_t n = (r->elements - 1) / STRIDE;
    if (op->req->after >= 0) op->next_after = r->element[0]->integer;
    else op->next_before = r->element[0]->integer;
    op->msgs = n ? calloc(n, sizeof(*op->msgs)) : NULL;
    if (n && op->msgs == NULL) return CB_ERR_OOM;
    op->nmsgs = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply **e = r->element + 1 + i * STRIDE;
        if (e[1]->type != REDIS_REPLY_STRING || e[2]->type != REDIS_REPLY_STRING)
            continue;          /* a message hash without its fields: skip */
        struct store_msg *m = &op->msgs[op->nmsgs++];
        m->id = strtoll(e[0]->str ? e[0]->str : "0", NULL, 10);
        m->user = e[1]->str;
        m->text = e[2]->str;
        m->ts = e[3]->type == REDIS_REPLY_STRING ? strtoll(e[3]->str, NULL, 10) : 0;
        m->client_msg_id = e[4]->type == REDIS_REPLY_STRING ? e[4]->str : NULL;
        m->edited = e[5]->type == REDIS_REPLY_STRING ? strtoll(e[5]->str, NULL, 10) : 0;
    }
    return CB_OK;
}

/* 1 when r is an array of n elements whose first 'ints' are integers. */
static int store_reply_shape(const redisReply *r, size_t n, size_t ints) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) return 0;
    for (size_t i = 0; i < ints; i++)
        if (r->element[i]->type != REDIS_REPLY_INTEGER) return 0;
    return 1;
}

/* 1 when e[0..n) are integers. */
static int store_reply_shape_at(redisReply *const *e, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (e[i]->type != REDIS_REPLY_INTEGER) return 0;
    return 1;
}

/* The outcome of a script's status: 1 done, 0 not found, -1 forbidden. */
static int store_status(long long status) {
    return status == 1 ? CB_DONE : status == 0 ? CB_NOT_FOUND : CB_FORBIDDEN;
}

/* edit.lua answers { status, how, ts, edited, text }; the text points
 * into the reply, which the op keeps. */
static int store_parse_edit(struct store_op *op, const redisReply *r) {
    if (!store_reply_shape(r, 5, 4) || r->element[4]->type != REDIS_REPLY_STRING)
        return CB_ERR_PROTO;
    op->result = store_status(r->element[0]->integer);
    op->how = (int)r->element[1]->integer;
    op->edited = (struct store_msg){ .id = op->req->id, .user = op->req->user,
        .ts = r->element[2]->integer, .edited = r->element[3]->integer,
        .text = r->element[4]->str };
    return CB_OK;
}

/* read.lua answers { status, read, unread, moved }; status 0 is an id
 * above the room's last, which the worker answers as invalid. */
static int store_parse_read(struct store_op *op, const redisReply *r) {
    if (!store_reply_shape(r, 4, 4)) return CB_ERR_PROTO;
    op->result = store_status(r->element[0]->integer);
    op->read = r->element[1]->integer;
    op->unread = r->element[2]->integer;
    op->moved = (int)r->element[3]->integer;
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

/* members.lua answers { next_after, user, last_id, read, last_seen, ... }
 * (next_after '' when no more); the names point into the reply. */
static int store_parse_members(struct store_op *op, const redisReply *r) {
    enum { STRIDE = 4 };
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || (r->elements - 1) % STRIDE ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return CB_ERR_PROTO;
    size_t n = (r->elements - 1) / STRIDE;
    op->members = n ? calloc(n, sizeof(*op->members)) : NULL;
    if (n && op->members == NULL) return CB_ERR_OOM;
    for (size_t i = 0; i < n; i++) {
        redisReply **e = r->element + 1 + i * STRIDE;
        if (e[0]->type != REDIS_REPLY_STRING || !store_reply_shape_at(e + 1, 3))
            return CB_ERR_PROTO;
        op->members[i] = (struct store_member){ e[0]->str, e[1]->integer, e[2]->integer,
                                                e[3]->integer };
    }
    op->nmembers = n;
    op->members_next = r->element[0]->str[0] ? r->element[0]->str : NULL;
    op->result = CB_DONE;
    return CB_OK;
}

/* The first step of a user's rooms: the listed names (a name that is no
 * valid room, written there by someone else, is passed over). With none,
 * the op is done; else it goes on to room.lua in each. */
static int store_parse_rooms(struct store *s, struct store_op *op, const redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY) return CB_ERR_PROTO;
    size_t n = r->elements;
    op->all = n ? calloc(n, sizeof(*op->all)) : NULL;
    op->subs = n ? calloc(n, sizeof(*op->subs)) : NULL;
    if (n && (op->all == NULL || op->subs == NULL)) return CB_ERR_OOM;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING || !name_valid_room(e->str, e->len)) continue;
        memcpy(op->all[op->nall++].room, e->str, e->len + 1);
    }
    if (op->nall == 0) {
        op->result = CB_DONE;
        return CB_OK;
    }
    op->step = 1;
    s->advanced++;
    return CB_OK;
}

/* Most recently active first; the same activity by name. */
static int store_room_cmp(const void *a, const void *b) {
    const struct store_room *x = a, *y = b;
    if (x->activity != y->activity) return x->activity > y->activity ? -1 : 1;
    return strcmp(x->room, y->room);
}

/* Every room answered: sort, and cut the page at the cursor. A page never
 * ends inside a run of rooms of one activity (the cursor is an activity:
 * the next page starts below it), unless that run fills the page alone. */
static void store_rooms_page(struct store_op *op) {
    size_t start = 0, limit = (size_t)op->req->limit, n;
    op->result = CB_DONE;
    if (op->nall == 0) return;
    qsort(op->all, op->nall, sizeof(*op->all), store_room_cmp);
    while (op->req->before > 0 && start < op->nall && op->all[start].activity >= op->req->before)
        start++;
    op->rooms = op->all + start;
    n = op->nall - start;
    op->nrooms = n > limit ? limit : n;
    if (n > limit) {
        long long cut = op->rooms[limit].activity;
        size_t keep = limit;
        while (keep > 0 && op->rooms[keep - 1].activity == cut) keep--;
        if (keep == 0)
            for (keep = limit; keep < n && op->rooms[keep].activity == cut; keep++) {}
        op->nrooms = keep;
        op->next_before = keep < n ? op->rooms[keep].activity + 1 : 0;
    }
    op->result = CB_DONE;
}

/* One room of rooms.lua's answer, e[0..9): { room, last_id, read,
 * unread, id, user, text, ts, edited }; the strings stay in the reply. */
static int store_room_fill(struct store_room *room, redisReply *const *e) {
    if (e[0]->type != REDIS_REPLY_STRING || !name_valid_room(e[0]->str, e[0]->len) ||
        !store_reply_shape_at(e + 1, 4) || e[5]->type != REDIS_REPLY_STRING ||
        e[6]->type != REDIS_REPLY_STRING || !store_reply_shape_at(e + 7, 2))
        return CB_ERR_PROTO;
    memcpy(room->room, e[0]->str, e[0]->len + 1);
    room->last_id = e[1]->integer;
    room->read = e[2]->integer;
    room->unread = e[3]->integer;
    room->last = (struct store_msg){ .id = e[4]->integer, .user = e[5]->str,
        .text = e[6]->str, .ts = e[7]->integer, .edited = e[8]->integer };
    room->activity = room->last.id ? room->last.ts : 0;
    return CB_OK;
}

enum { ROOM_FIELDS = 9 };

/* On one node: every room at once. A room name that is no valid room
 * (written there by someone else) is passed over. */
static int store_parse_rooms_all(struct store_op *op, redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements % ROOM_FIELDS) return CB_ERR_PROTO;
    size_t n = r->elements / ROOM_FIELDS;
    op->all = n ? calloc(n, sizeof(*op->all)) : NULL;
    if (n && op->all == NULL) return CB_ERR_OOM;
    for (size_t i = 0; i < n; i++) {
        redisReply **e = r->element + i * ROOM_FIELDS;
        if (e[0]->type == REDIS_REPLY_STRING && !name_valid_room(e[0]->str, e[0]->len))
            continue;
        if (store_room_fill(&op->all[op->nall], e) != CB_OK) return CB_ERR_PROTO;
        op->nall++;
    }
    store_rooms_page(op);
    return CB_OK;
}

/* Cluster mode: the sub-th room's answer; the reply is kept. */
static int store_parse_room(struct store_op *op, size_t sub, redisReply *r) {
    if (sub >= op->nall || r->type != REDIS_REPLY_ARRAY || r->elements != ROOM_FIELDS ||
        store_room_fill(&op->all[sub], r->element) != CB_OK)
        return CB_ERR_PROTO;
    if (op->subs[sub]) freeReplyObject(op->subs[sub]);
    op->subs[sub] = r;
    for (size_t i = 0; i < op->nall; i++)
        if (op->subs[i] == NULL) return CB_OK;
    store_rooms_page(op);
    return CB_OK;
}

/* The answer to a step 1 command of a send or a read marker (the user's
 * rooms, cluster mode): it does not change the request's outcome, and an
 * error, even one that would pass, does not hold the batch back (U's node
 * may be down while the room's answers): it is logged, and the room joins
 * U's list at U's next send or marker there. err is NULL when it went. */
static void store_take_index(struct store *s, struct store_op *op, const char *err) {
    if (err) {
        char msg[REXEC_ERR_MAX];
        snprintf(msg, sizeof(msg), "redis: %s's rooms do not list %s yet: %s", op->req->user,
                 op->req->room, err);
        if (s->notify) s->notify(s->notify_arg, LOG_LEVEL_WARN, msg);
    }
    op->result = CB_DONE;
}

/* 1 when op is at its second step as a send or read marker: the user's
 * rooms, whose failure is no failure of the request. */
static int store_op_indexing(const struct store_op *op) {
    return op->step == 1 && op->req->kind != REQ_ROOMS;
}

/* A send or read marker that succeeded goes on to its second step, in
 * cluster mode (store_user_index). */
static void store_then_index(struct store *s, struct store_op *op) {
    if (op->result != CB_DONE || !s->cluster) return;
    op->step = 1;
    op->result = CB_PENDING;
    s->advanced++;
}

/* Parse reply r of op's current step into op. Returns CB_OK when r is
 * taken over by op (kept or freed), CB_ERR_PROTO or CB_ERR_OOM
 * otherwise (r is then the caller's). */
static int store_parse(struct store *s, struct store_op *op, size_t sub, redisReply *r) {
    int rc = CB_OK, kind = op->req->kind;
    if (op->step == 1 && kind == REQ_ROOMS) return store_parse_room(op, sub, r);
    if (op->step == 1) store_take_index(s, op, r->type == REDIS_REPLY_ERROR ? r->str : NULL);
    else if (kind == REQ_HISTORY) rc = store_parse_history(op, r);
    else if (kind == REQ_EDIT) rc = store_parse_edit(op, r);
    else if (kind == REQ_MEMBERS) rc = store_parse_members(op, r);
    else if (kind == REQ_SEND || kind == REQ_READ) {
        rc = kind == REQ_SEND ? store_parse_send(op, r) : store_parse_read(op, r);
        if (rc == CB_OK) store_then_index(s, op);
    } else if (kind == REQ_ROOMS) {
        rc = s->cluster ? store_parse_rooms(s, op, r) : store_parse_rooms_all(op, r);
    }
    else if (r->type != REDIS_REPLY_INTEGER) rc = CB_ERR_PROTO;
    else op->result = store_status(r->integer);
    if (rc != CB_OK) return rc;
    if (kind == REQ_HISTORY) op->result = CB_DONE;
    if (op->step == 0 && (kind == REQ_HISTORY || kind == REQ_EDIT || kind == REQ_MEMBERS ||
                          (kind == REQ_ROOMS && !s->cluster)))
        op->reply = r;          /* the strings point into it */
    else
        freeReplyObject(r);
    return CB_OK;
}

/* Record the outcome of one reply (of op's sub-th command) in its op. A
 * NOSCRIPT leaves the op pending: the scripts are loaded into the node of
 * slot, and the op runs again. */
static void store_take_reply(struct store *s, struct store_op *op, size_t sub, unsigned slot,
                             redisReply *r) {
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        s->noscript = 1;
        s->slots[s->nslots++] = slot;
    } else if (r->type == REDIS_REPLY_ERROR && !store_op_indexing(op)) {
        op->result = store_transient(r->str) ? CB_RETRY : CB_FAILED;
        store_seterr(s, "redis: %s", r->str);
    } else {
        int rc = store_parse(s, op, sub, r);
        if (rc == CB_OK) return;
        op->result = CB_FAILED;
        store_seterr(s, rc == CB_ERR_OOM ? "redis: out of memory for a reply"
                                         : "redis: unexpected reply to a script");
    }
    freeReplyObject(r);
}

/* ==================== Batches ==================== */

/* Room for n commands, op indices and slots; new commands zeroed, as
 * rexec_cmd_format wants them. 0 or -1. */
static int store_reserve(struct store *s, size_t n) {
    if (n <= s->cap) return 0;
    if (n < s->cap * 2) n = s->cap * 2;
    size_t *map = realloc(s->cmd_op, n * sizeof(*map));
    if (map == NULL) return -1;
    s->cmd_op = map;
    map = realloc(s->cmd_sub, n * sizeof(*map));
    if (map == NULL) return -1;
    s->cmd_sub = map;
    unsigned *slots = realloc(s->slots, n * sizeof(*slots));
    if (slots == NULL) return -1;
    s->slots = slots;
    struct rexec_cmd *cmds = realloc(s->cmds, n * sizeof(*cmds));
    if (cmds == NULL) return -1;
    memset(cmds + s->cap, 0, (n - s->cap) * sizeof(*cmds));
    s->cmds = cmds;
    s->cap = n;
    return 0;
}

/* Clear cmds[0..n) for the next use. */
static void store_clear(struct store *s, size_t n) {
    for (size_t i = 0; i < n; i++) rexec_cmd_clear(&s->cmds[i]);
    s->ncmds = 0;
}

/* Give one command's outcome to its op: a reply is interpreted; -TRYAGAIN,
 * -CLUSTERDOWN and too many redirections make the op retry later; a
 * command still pending leaves its op pending. */
static void store_take(struct store *s, struct store_op *op, size_t sub, struct rexec_cmd *cmd) {
    if (cmd->result == CB_DONE) {
        store_take_reply(s, op, sub, cmd->slot, cmd->reply);
        cmd->reply = NULL;
    } else if (cmd->result == CB_RETRY && store_op_indexing(op)) {
        store_take_index(s, op, cmd->reply && cmd->reply->str ? cmd->reply->str
                                                              : rexec_errstr(s->x));
    } else if (cmd->result == CB_RETRY) {
        op->result = CB_RETRY;
        if (cmd->reply && cmd->reply->str)
            store_seterr(s, "redis %s: %s", rexec_address(s->x), cmd->reply->str);
        else
            store_seterr(s, "%s", rexec_errstr(s->x));
    }
}

/* One pipelined pass over the ops that have no result yet. */
static int store_pass(struct store *s, struct store_op *ops, size_t n) {
    int rc = CB_OK;
    for (size_t i = 0; i < n && rc == CB_OK; i++) {
        if (ops[i].result != CB_PENDING) continue;
        s->cur_op = i;
        s->cur_sub = 0;
        rc = store_append(s, &ops[i]);
    }
    if (rc != CB_OK) {
        store_clear(s, s->ncmds);
        store_seterr(s, "redis %s: out of memory", rexec_address(s->x));
        return CB_ERR_OOM;
    }
    rc = rexec_exec(s->x, s->cmds, s->ncmds);
    for (size_t i = 0; i < s->ncmds; i++)
        store_take(s, &ops[s->cmd_op[i]], s->cmd_sub[i], &s->cmds[i]);
    store_clear(s, s->ncmds);
    if (rc != CB_OK) store_seterr(s, "%s", rexec_errstr(s->x));
    return rc;
}

/* 1 when op changed the data set: a send or an edit applied now, a
 * delete, a read marker moved. */
static int store_op_wrote(const struct store_op *op) {
    if (op->result != CB_DONE) return 0;
    switch (op->req->kind) {
    case REQ_DELETE: return 1;
    case REQ_SEND:
    case REQ_EDIT: return op->how == STORE_NEW;
    case REQ_READ: return op->moved;
    default: return 0;
    }
}

/* The slots of the ops with want(op), into s->slots. How many. */
static size_t store_slots(struct store *s, const struct store_op *ops, size_t n,
                          int (*want)(const struct store_op *)) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (want(&ops[i])) s->slots[k++] = store_op_slot(&ops[i]);
    return k;
}

/* 1 when a SCRIPT LOAD answered the SHA1 the build computed. */
static int store_loaded(struct store *s, const struct rexec_cmd *cmd, int script) {
    const redisReply *r = cmd->reply;
    if (cmd->result == CB_DONE && r->type == REDIS_REPLY_STRING &&
        strcmp(r->str, script_sha[script]) == 0)
        return 1;
    if (cmd->result == CB_PENDING) return 0;        /* errstr says why */
    store_seterr(s, "redis %s: SCRIPT LOAD: %s", rexec_address(s->x),
                 r && r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    return 0;
}

/* Load every script into the nodes of the ops that did not run (each node
 * has its own script cache: a restart, a SCRIPT FLUSH, a new primary after
 * a failover or a reshard start empty). CB_OK when every node took them;
 * else the ops stay pending (CB_ERR_IO: the executor is disconnected). */
static int store_load_scripts(struct store *s) {
    size_t k = s->nslots, nout = 0;
    int rc = CB_OK, loaded = 1;
    for (int i = 0; i < SCRIPT_COUNT && rc == CB_OK && loaded; i++) {
        const char *argv[] = { "SCRIPT", "LOAD", script_source[i] };
        rc = rexec_each(s->x, s->slots, k, 3, argv, s->cmds, &nout);
        for (size_t j = 0; j < nout && loaded; j++) loaded = store_loaded(s, &s->cmds[j], i);
        store_clear(s, nout);
    }
    if (rc != CB_OK) store_seterr(s, "%s", rexec_errstr(s->x));
    return rc != CB_OK ? rc : loaded ? CB_OK : CB_ERR_PROTO;
}

/* Count a WAIT that saw fewer replicas than asked. The writes stand (WAIT
 * cannot undo them): a failover within the window may still lose them. */
static void store_wait_result(struct store *s, const redisReply *r) {
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer >= s->wait_replicas) return;
    __atomic_add_fetch(&s->wait_short, 1, __ATOMIC_RELAXED);
    store_seterr(s, "redis %s: WAIT: %lld of %d replicas within %d ms", rexec_address(s->x),
                 r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1LL,
                 s->wait_replicas, s->wait_timeout_ms);
}

/* With redis.wait_replicas set, after a batch that wrote: wait until that
 * many replicas of each node written to hold the writes (or the timeout),
 * before the caller acknowledges and the journal lets the records go. A
 * WAIT that failed counts as short; a lost connection is found by the
 * next batch. */
static void store_wait(struct store *s, const struct store_op *ops, size_t n) {
    char count[16], ms[16];
    const char *argv[] = { "WAIT", count, ms };
    size_t k, nout = 0;

    if (s->wait_replicas <= 0 || (k = store_slots(s, ops, n, store_op_wrote)) == 0)
        return;
    snprintf(count, sizeof(count), "%d", s->wait_replicas);
    snprintf(ms, sizeof(ms), "%d", s->wait_timeout_ms);
    if (rexec_each(s->x, s->slots, k, 3, argv, s->cmds, &nout) == CB_ERR_OOM)
        store_wait_result(s, NULL);       /* say it did not wait */
    for (size_t i = 0; i < nout; i++)
        store_wait_result(s, s->cmds[i].result == CB_DONE ? s->cmds[i].reply : NULL);
    store_clear(s, nout);
}

/* A NOSCRIPT (a node that has not seen the scripts) loads them where the
 * ops that did not run go, and those run again. */
int store_exec(struct store *s, struct store_op *ops, size_t n) {
    int rc = CB_OK;
    s->errstr[0] = '\0';
    if (store_reserve(s, n) < 0) {
        store_seterr(s, "redis %s: out of memory", rexec_address(s->x));
        return CB_ERR_OOM;
    }
    /* One pass per step: ops that moved on to their second step (a user's
     * rooms index, a user's rooms) run again at once. */
    for (int step = 0; step < 2 && rc == CB_OK; step++) {
        s->noscript = s->advanced = 0;
        s->nslots = 0;
        rc = store_pass(s, ops, n);
        if (rc == CB_OK && s->noscript) {
            rc = store_load_scripts(s);
            if (rc == CB_ERR_PROTO) return CB_OK;   /* refused: the ops stay pending */
            s->nslots = 0;                /* the rerun's NOSCRIPTs, if any, wait */
            if (rc == CB_OK) rc = store_pass(s, ops, n);
        }
        if (!s->advanced) break;
    }
    if (rc == CB_OK) store_wait(s, ops, n);
    return rc;
}

void store_set_checkpoint(struct store *s, unsigned long long seq) {
    __atomic_store_n(&s->checkpoint, seq, __ATOMIC_RELAXED);
}

void store_op_clear(struct store_op *op) {
    if (op->reply) freeReplyObject(op->reply);
    for (size_t i = 0; op->subs && i < op->nall; i++)
        if (op->subs[i]) freeReplyObject(op->subs[i]);
    free(op->subs);
    free(op->all);
    free(op->members);
    op->subs = NULL;
    op->all = op->rooms = NULL;
    op->members = NULL;
    op->nall = op->nrooms = op->nmembers = 0;
    op->members_next = NULL;
    op->step = 0;
    free(op->msgs);
    op->reply = NULL;
    op->msgs = NULL;
    op->nmsgs = 0;
    op->next_before = op->next_after = 0;
    op->new_id = 0;
    op->how = 0;
    op->edited = (struct store_msg){ 0 };
    op->read = op->unread = 0;
    op->moved = 0;
    op->result = CB_PENDING;
}

/* ==================== Other writers ==================== */

/* Run cmds[0..n) (scripts of the store), pipelined; a NOSCRIPT loads the
 * scripts into the nodes that answered it, and those commands run again.
 * CB_OK when every command has a reply (maybe an error reply), else what
 * the executor said (errstr set). */
static int store_run(struct store *s, size_t n) {
    int rc = rexec_exec(s->x, s->cmds, n);
    size_t k = 0, nout = 0;
    for (size_t i = 0; i < n && rc == CB_OK; i++) {
        redisReply *r = s->cmds[i].reply;
        if (s->cmds[i].result != CB_DONE || r->type != REDIS_REPLY_ERROR ||
            strncmp(r->str, "NOSCRIPT", 8) != 0)
            continue;
        freeReplyObject(r);
        s->cmds[i].reply = NULL;
        s->cmds[i].result = CB_PENDING;
        s->slots[k++] = s->cmds[i].slot;
    }
    for (int i = 0; i < SCRIPT_COUNT && rc == CB_OK && k; i++) {
        const char *argv[] = { "SCRIPT", "LOAD", script_source[i] };
        rc = rexec_each(s->x, s->slots, k, 3, argv, s->cmds + n, &nout);
        for (size_t j = 0; j < nout; j++) {
            if (rc == CB_OK && !store_loaded(s, &s->cmds[n + j], i)) rc = CB_ERR_PROTO;
            rexec_cmd_clear(&s->cmds[n + j]);
        }
    }
    if (rc == CB_OK && k) rc = rexec_exec(s->x, s->cmds, n);
    if (rc != CB_OK && rc != CB_ERR_PROTO) store_seterr(s, "%s", rexec_errstr(s->x));
    return rc;
}

/* The keys every adopt.lua and reap.lua call names, for room. */
static void store_room_keys(const struct store *s, const char *room,
                            char k[4][KEY_MAX], char mprefix[KEY_MAX]) {
    char r[NAME_MAX_BYTES + 3];
    store_room_tag(s, room, r);
    snprintf(k[0], KEY_MAX, "%s:%s:messages", s->prefix, r);
    snprintf(k[1], KEY_MAX, "%s:%s:messages:cursor", s->prefix, r);
    snprintf(k[2], KEY_MAX, "%s:%s", s->prefix, r);
    snprintf(k[3], KEY_MAX, "%s:%s:messages:ids", s->prefix, r);
    snprintf(mprefix, KEY_MAX, "%s:%s:", s->prefix, r);
}

/* Queue adopt.lua for a->room into s->cmds[i]. CB_OK or CB_ERR_OOM. */
static int store_format_adopt(struct store *s, size_t i, const struct store_adopt *a,
                              long long now_ms) {
    char k[4][KEY_MAX], mprefix[KEY_MAX], now[24], wait[16], walk[16], win[16], age[16];
    store_room_keys(s, a->room, k, mprefix);
    snprintf(now, sizeof(now), "%lld", now_ms);
    snprintf(wait, sizeof(wait), "%d", STORE_ADOPT_WAIT_MS);
    snprintf(walk, sizeof(walk), "%d", STORE_ADOPT_WALK);
    snprintf(win, sizeof(win), "%d", STORE_REPUBLISH_IDS);
    snprintf(age, sizeof(age), "%d", STORE_REPUBLISH_AGE_S);
    const char *argv[] = { "EVALSHA", script_sha[SCRIPT_ADOPT], "4", k[0], k[1], k[2],
        k[3], mprefix, s->bridge_id, now, wait, walk, win, age, a->redo ? "1" : "0" };
    return rexec_cmd_format(&s->cmds[i], cluster_keyslot(a->room, strlen(a->room)),
                            15, argv, NULL);
}

/* adopt.lua's { state, skipped, id, user, text, ts, ... } into a, whose
 * messages point into the reply a keeps. CB_OK, CB_ERR_PROTO, CB_ERR_OOM. */
static int store_parse_adopt(struct store_adopt *a, redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || (r->elements - 2) % 4 ||
        r->element[0]->type != REDIS_REPLY_INTEGER ||
        r->element[1]->type != REDIS_REPLY_INTEGER)
        return CB_ERR_PROTO;
    size_t n = (r->elements - 2) / 4;
    a->state = (int)r->element[0]->integer;
    a->skipped = r->element[1]->integer;
    a->msgs = n ? calloc(n, sizeof(*a->msgs)) : NULL;
    if (n && a->msgs == NULL) return CB_ERR_OOM;
    for (size_t i = 0; i < n; i++) {
        redisReply **e = r->element + 2 + i * 4;
        for (int j = 0; j < 4; j++)
            if (e[j]->type != REDIS_REPLY_STRING) return CB_ERR_PROTO;
        a->msgs[i] = (struct store_msg){ strtoll(e[0]->str, NULL, 10), e[1]->str,
                                         e[2]->str, strtoll(e[3]->str, NULL, 10), NULL, 0 };
    }
    a->nmsgs = n;
    a->reply = r;
    return CB_OK;
}

/* Give one adopt.lua outcome to a. */
static void store_take_adopt(struct store *s, struct store_adopt *a, struct rexec_cmd *cmd) {
    redisReply *r = cmd->reply;
    if (cmd->result != CB_DONE) {
        a->result = CB_RETRY;
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        a->result = store_transient(r->str) ? CB_RETRY : CB_FAILED;
        store_seterr(s, "redis: adopt.lua: %s", r->str);
        return;
    }
    int rc = store_parse_adopt(a, r);
    if (rc == CB_OK) {
        cmd->reply = NULL;     /* kept by a */
        a->result = CB_DONE;
        return;
    }
    free(a->msgs);
    a->msgs = NULL;
    a->result = CB_FAILED;
    store_seterr(s, "redis: %s", rc == CB_ERR_OOM ? "out of memory"
                                                  : "unexpected reply to adopt.lua");
}

int store_adopt(struct store *s, struct store_adopt *a, size_t n, long long now_ms) {
    int rc = CB_OK;
    s->errstr[0] = '\0';
    if (store_reserve(s, n * 2) < 0) rc = CB_ERR_OOM;
    for (size_t i = 0; i < n && rc == CB_OK; i++) {
        store_adopt_clear(&a[i]);
        rc = store_format_adopt(s, i, &a[i], now_ms);
        if (rc != CB_OK) store_clear(s, i);
    }
    if (rc != CB_OK) {
        store_seterr(s, "redis %s: out of memory", rexec_address(s->x));
        return rc;
    }
    rc = store_run(s, n);
    for (size_t i = 0; i < n; i++) store_take_adopt(s, &a[i], &s->cmds[i]);
    store_clear(s, n);
    return rc == CB_ERR_PROTO ? CB_OK : rc;
}

void store_adopt_clear(struct store_adopt *a) {
    if (a->reply) freeReplyObject(a->reply);
    free(a->msgs);
    a->reply = NULL;
    a->msgs = NULL;
    a->nmsgs = 0;
    a->state = 0;
    a->skipped = 0;
    a->result = CB_PENDING;
}

/* Queue reap.lua for r (or, confirm: the HDEL of this bridge's pending
 * claim) into s->cmds[i]. CB_OK or CB_ERR_OOM. */
static int store_format_reap(struct store *s, size_t i, const struct store_reap *r) {
    char k[4][KEY_MAX], mprefix[KEY_MAX], id[24];
    unsigned slot = cluster_keyslot(r->room, strlen(r->room));
    store_room_keys(s, r->room, k, mprefix);
    if (r->id == 0) {
        char field[KEY_MAX];
        snprintf(field, sizeof(field), "pending:%s", s->bridge_id);
        const char *argv[] = { "HDEL", k[1], field };
        return rexec_cmd_format(&s->cmds[i], slot, 3, argv, NULL);
    }
    snprintf(id, sizeof(id), "%lld", r->id);
    const char *argv[] = { "EVALSHA", script_sha[SCRIPT_REAP], "2", k[2], k[3],
                           mprefix, id };
    return rexec_cmd_format(&s->cmds[i], slot, 7, argv, NULL);
}

int store_reap(struct store *s, struct store_reap *r, size_t n) {
    int rc = CB_OK;
    s->errstr[0] = '\0';
    if (store_reserve(s, n * 2) < 0) rc = CB_ERR_OOM;
    for (size_t i = 0; i < n && rc == CB_OK; i++) {
        rc = store_format_reap(s, i, &r[i]);
        if (rc != CB_OK) store_clear(s, i);
    }
    if (rc != CB_OK) {
        store_seterr(s, "redis %s: out of memory", rexec_address(s->x));
        return rc;
    }
    rc = store_run(s, n);
    for (size_t i = 0; i < n; i++) {
        const redisReply *rep = s->cmds[i].reply;
        r[i].reaped = 0;
        if (s->cmds[i].result != CB_DONE || rep == NULL) {
            r[i].result = CB_RETRY;
            continue;
        }
        r[i].result = rep->type == REDIS_REPLY_INTEGER ? CB_DONE : CB_FAILED;
        if (r[i].result == CB_DONE) r[i].reaped = r[i].id && rep->integer == 1;
        else if (rep->type == REDIS_REPLY_ERROR) store_seterr(s, "redis: %s", rep->str);
    }
    store_clear(s, n);
    return rc == CB_ERR_PROTO ? CB_OK : rc;
}
