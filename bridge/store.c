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

#include "store.h"

/* The Lua scripts, embedded from bridge/lua/ at build time. */
extern const char script_send_lua[];
extern const char script_history_lua[];
extern const char script_delete_lua[];

enum { SCRIPT_SEND, SCRIPT_HISTORY, SCRIPT_DELETE, SCRIPT_COUNT };

static const char *const script_source[SCRIPT_COUNT] = {
    script_send_lua, script_history_lua, script_delete_lua
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
    if (s->unix_socket)
        snprintf(s->addr, sizeof(s->addr), "%s", s->unix_socket);
    else
        snprintf(s->addr, sizeof(s->addr), "%s:%d", s->host, s->port);
    s->timeout_ms = opts->timeout_ms;
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
    free(s);
}

void store_disconnect(struct store *s) {
    if (s->ctx) redisFree(s->ctx);
    s->ctx = NULL;
}

const char *store_address(const struct store *s) {
    return s->addr;
}

int store_connected(const struct store *s) {
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
    struct timeval tv = { s->timeout_ms / 1000, (s->timeout_ms % 1000) * 1000 };
    store_disconnect(s);
    s->ctx = s->unix_socket ? redisConnectUnixWithTimeout(s->unix_socket, tv)
                            : redisConnectWithTimeout(s->host, s->port, tv);
    if (s->ctx == NULL || s->ctx->err) {
        store_seterr(s, "redis %s: %s", s->addr, s->ctx ? s->ctx->errstr : "out of memory");
        store_disconnect(s);
        return STORE_ERR_IO;
    }
    if (redisSetTimeout(s->ctx, tv) != REDIS_OK) {
        store_seterr(s, "redis %s: cannot set timeout", s->addr);
        goto fail;
    }
    if (store_auth(s) < 0 || store_load_scripts(s) < 0) goto fail;
    return STORE_OK;
fail:
    store_disconnect(s);
    return STORE_ERR_IO;
}

/* ==================== Commands ==================== */

/* Append the EVALSHA of one operation to the pipeline. Key names are built
 * here from validated names only; every value is its own argument. */
static int store_append_send(struct store *s, const struct store_op *op) {
    char k[8][KEY_MAX], mprefix[KEY_MAX], ts[24], seq[24], window[24], ckpt[24];
    char keep[24], age[24];
    const char *p = s->prefix, *r = op->room, *u = op->user;
    snprintf(k[0], KEY_MAX, "%s:%s:messages", p, r);
    snprintf(k[1], KEY_MAX, "%s:%s", p, r);
    snprintf(k[2], KEY_MAX, "%s:%s:%s", p, r, u);
    snprintf(k[3], KEY_MAX, "%s:%s:messages:ids", p, r);
    snprintf(k[4], KEY_MAX, "%s:%s:%s:ids", p, r, u);
    snprintf(k[5], KEY_MAX, "%s:%s:messages:dedup", p, r);
    snprintf(k[6], KEY_MAX, "%s:%s:messages:dedup:ts", p, r);
    snprintf(k[7], KEY_MAX, "%s:%s:messages:journal:%s", p, r, s->bridge_id);
    snprintf(mprefix, KEY_MAX, "%s:%s:", p, r);
    snprintf(ts, sizeof(ts), "%lld", op->ts);
    snprintf(seq, sizeof(seq), "%llu", op->seq);
    snprintf(window, sizeof(window), "%lld", s->dedup_window_ms);
    snprintf(ckpt, sizeof(ckpt), "%llu", __atomic_load_n(&s->checkpoint, __ATOMIC_RELAXED));
    snprintf(keep, sizeof(keep), "%lld", s->retain_count);
    snprintf(age, sizeof(age), "%lld", s->retain_ms);
    const char *cmid = op->client_msg_id ? op->client_msg_id : "";
    const char *argv[] = { "EVALSHA", s->sha[SCRIPT_SEND], "8",
        k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7],
        mprefix, u, op->text, ts, cmid, seq, window, ckpt, keep, age };
    enum { ARGC = sizeof(argv) / sizeof(argv[0]), TEXT_ARG = 13 };
    size_t len[ARGC];
    for (size_t i = 0; i < ARGC; i++) len[i] = strlen(argv[i]);
    len[TEXT_ARG] = op->text_len;
    return redisAppendCommandArgv(s->ctx, ARGC, argv, len);
}

static int store_append_history(struct store *s, const struct store_op *op) {
    char index[KEY_MAX], mprefix[KEY_MAX], before[24], limit[16];
    if (op->user && op->user[0])
        snprintf(index, KEY_MAX, "%s:%s:%s:ids", s->prefix, op->room, op->user);
    else
        snprintf(index, KEY_MAX, "%s:%s:messages:ids", s->prefix, op->room);
    snprintf(mprefix, KEY_MAX, "%s:%s:", s->prefix, op->room);
    snprintf(before, sizeof(before), "%lld", op->before);
    snprintf(limit, sizeof(limit), "%d", op->limit);
    const char *argv[] = { "EVALSHA", s->sha[SCRIPT_HISTORY], "1",
        index, mprefix, before, limit };
    return redisAppendCommandArgv(s->ctx, 7, argv, NULL);
}

static int store_append_delete(struct store *s, const struct store_op *op) {
    char k[5][KEY_MAX], id[24];
    const char *p = s->prefix, *r = op->room, *u = op->user;
    snprintf(id, sizeof(id), "%lld", op->id);
    snprintf(k[0], KEY_MAX, "%s:%s", p, r);
    snprintf(k[1], KEY_MAX, "%s:%s:messages:ids", p, r);
    snprintf(k[2], KEY_MAX, "%s:%s:%s", p, r, u);
    snprintf(k[3], KEY_MAX, "%s:%s:%s:ids", p, r, u);
    snprintf(k[4], KEY_MAX, "%s:%s:%s", p, r, id);
    const char *argv[] = { "EVALSHA", s->sha[SCRIPT_DELETE], "5",
        k[0], k[1], k[2], k[3], k[4], id, u };
    return redisAppendCommandArgv(s->ctx, 10, argv, NULL);
}

static int store_append(struct store *s, const struct store_op *op) {
    switch (op->kind) {
    case STORE_SEND: return store_append_send(s, op);
    case STORE_HISTORY: return store_append_history(s, op);
    case STORE_DELETE: return store_append_delete(s, op);
    }
    return REDIS_ERR;
}

/* ==================== Replies ==================== */

/* Errors Redis gives while it cannot serve now but will later. */
static int store_transient(const char *err) {
    static const char *const codes[] = { "LOADING", "BUSY", "TRYAGAIN",
        "MASTERDOWN", "READONLY", "OOM", "CLUSTERDOWN" };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strncmp(err, codes[i], strlen(codes[i])) == 0) return 1;
    return 0;
}

/* Turn history.lua's flat reply into store_msg entries pointing into it. */
static int store_parse_history(struct store_op *op, redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        (r->elements - 1) % 5 != 0 || r->element[0]->type != REDIS_REPLY_INTEGER)
        return STORE_ERR_PROTO;
    size_t n = (r->elements - 1) / 5;
    op->next_before = r->element[0]->integer;
    op->msgs = n ? calloc(n, sizeof(*op->msgs)) : NULL;
    if (n && op->msgs == NULL) return STORE_ERR_OOM;
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
    return STORE_OK;
}

/* send.lua answers { id, how }. */
static int store_parse_send(struct store_op *op, const redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER ||
        r->element[1]->type != REDIS_REPLY_INTEGER)
        return STORE_ERR_PROTO;
    op->new_id = r->element[0]->integer;
    op->how = (int)r->element[1]->integer;
    op->result = STORE_DONE;
    return STORE_OK;
}

/* Record the outcome of one reply in its op. The reply is kept by history
 * ops (their messages point into it) and freed otherwise. */
static int store_take_reply(struct store *s, struct store_op *op, redisReply *r) {
    int rc = STORE_OK;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        s->noscript = 1;   /* the script did not run: stays pending */
    } else if (r->type == REDIS_REPLY_ERROR) {
        op->result = store_transient(r->str) ? STORE_RETRY : STORE_FAILED;
        store_seterr(s, "redis: %s", r->str);
    } else if (op->kind == STORE_HISTORY) {
        rc = store_parse_history(op, r);
        if (rc == STORE_OK) {
            op->reply = r;
            op->result = STORE_DONE;
            return STORE_OK;
        }
    } else if (op->kind == STORE_SEND) {
        rc = store_parse_send(op, r);
    } else if (r->type != REDIS_REPLY_INTEGER) {
        rc = STORE_ERR_PROTO;
    } else {
        op->result = r->integer == 1 ? STORE_DONE :
                     r->integer == 0 ? STORE_NOT_FOUND : STORE_FORBIDDEN;
    }
    if (rc != STORE_OK) {
        op->result = STORE_FAILED;
        store_seterr(s, "redis: unexpected reply to a script");
    }
    freeReplyObject(r);
    return STORE_OK;
}

/* ==================== Batches ==================== */

/* One pipelined pass over the ops that have no result yet. */
static int store_pass(struct store *s, struct store_op *ops, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (ops[i].result != STORE_PENDING) continue;
        if (store_append(s, &ops[i]) != REDIS_OK) goto io_error;
    }
    for (size_t i = 0; i < n; i++) {
        void *r;
        if (ops[i].result != STORE_PENDING) continue;
        if (redisGetReply(s->ctx, &r) != REDIS_OK || r == NULL) goto io_error;
        store_take_reply(s, &ops[i], r);
    }
    return STORE_OK;
io_error:
    store_seterr(s, "redis %s: %s", s->addr,
                 s->ctx->errstr[0] ? s->ctx->errstr : "connection lost");
    store_disconnect(s);
    return STORE_ERR_IO;
}

int store_exec(struct store *s, struct store_op *ops, size_t n) {
    if (s->ctx == NULL) {
        store_seterr(s, "redis %s: not connected", s->addr);
        return STORE_ERR_IO;
    }
    s->errstr[0] = '\0';
    s->noscript = 0;
    int rc = store_pass(s, ops, n);
    if (rc == STORE_OK && s->noscript) {
        /* The script cache was flushed (SCRIPT FLUSH, a restart without
         * our reconnect noticing): load again and run what did not run. */
        if (store_load_scripts(s) < 0) return s->ctx ? STORE_OK : STORE_ERR_IO;
        rc = store_pass(s, ops, n);
    }
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
    op->result = STORE_PENDING;
}
