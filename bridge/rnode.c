/* rnode.c -- one Redis node: addresses, connections, the one-node
 * executor (see rnode.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <hiredis/hiredis.h>

#include "result.h"
#include "rexec.h"
#include "rnode.h"

/* ==================== Addresses ==================== */

int rnode_parse_addr(const char *s, char *host, size_t hostlen, int *port) {
    const char *colon = strrchr(s, ':');
    size_t hlen;
    char *end;
    long p;

    if (colon == NULL || !isdigit((unsigned char)colon[1])) return -1;
    p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 1 || p > 65535) return -1;
    hlen = (size_t)(colon - s);
    if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
        s++;
        hlen -= 2;
    }
    if (hlen >= hostlen) return -1;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}

int rnode_parse_list(const char *list,
                     int (*each)(void *arg, const char *host, int port),
                     void *arg) {
    char word[REXEC_ADDR_MAX], host[RNODE_HOST_MAX];
    const char *p = list;
    int n = 0, port, rc;

    while (*p) {
        size_t len = strcspn(p, " ,");
        if (len > 0) {
            if (len >= sizeof(word)) return CB_ERR_PROTO;
            memcpy(word, p, len);
            word[len] = '\0';
            if (rnode_parse_addr(word, host, sizeof(host), &port) < 0 || host[0] == '\0')
                return CB_ERR_PROTO;
            if (each && (rc = each(arg, host, port)) < 0) return rc;
            n++;
        }
        p += len + (p[len] != '\0');
    }
    return n;
}

void rnode_format_addr(char *out, size_t outlen, const char *host, int port) {
    snprintf(out, outlen, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

/* ==================== Connections ==================== */

/* AUTH [username] password on a new connection, when a password is set.
 * The reply of a refused AUTH ("WRONGPASS invalid username-password pair
 * ...") names neither, so it can be logged; the secret itself never is. */
static int rnode_auth(const struct rnode_conf *conf, redisContext *ctx,
                      const char *addr, char *err, size_t errlen) {
    const char *argv[] = { "AUTH", conf->username, conf->password };
    int argc = 3;
    redisReply *r;

    if (conf->password == NULL) return 0;
    if (conf->username == NULL) {
        argv[1] = conf->password;
        argc = 2;
    }
    r = redisCommandArgv(ctx, argc, argv, NULL);
    if (r == NULL) {
        snprintf(err, errlen, "redis %s: %s", addr,
                 ctx->errstr[0] ? ctx->errstr : "connection lost");
        return -1;
    }
    if (r->type != REDIS_REPLY_STATUS) {
        snprintf(err, errlen, "redis %s refused the bridge's credentials "
                 "(redis.username, redis.password): %s", addr,
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

redisContext *rnode_open(const struct rnode_conf *conf, const char *host,
                         int port, const char *path, char *err, size_t errlen) {
    int ms = conf->timeout_ms > 0 ? conf->timeout_ms : RNODE_TIMEOUT_MS;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    char addr[REXEC_ADDR_MAX];
    redisContext *ctx;

    if (path)
        snprintf(addr, sizeof(addr), "%s", path);
    else
        rnode_format_addr(addr, sizeof(addr), host, port);
    ctx = path ? redisConnectUnixWithTimeout(path, tv)
               : redisConnectWithTimeout(host, port, tv);
    if (ctx == NULL || ctx->err) {
        snprintf(err, errlen, "redis %s: %s", addr, ctx ? ctx->errstr : "out of memory");
        goto fail;
    }
    if (redisSetTimeout(ctx, tv) != REDIS_OK) {
        snprintf(err, errlen, "redis %s: cannot set the timeout", addr);
        goto fail;
    }
    if (rnode_auth(conf, ctx, addr, err, errlen) < 0) goto fail;
    return ctx;
fail:
    if (ctx) redisFree(ctx);
    return NULL;
}

/* ==================== The one-node executor ==================== */

struct rnode_rexec {
    struct rexec x;            /* first: the executor is a struct rexec */
    char *host, *path, *username, *password;
    int port;
    struct rnode_conf conf;    /* points at the strings above */
    struct rnode_locator where;
    redisContext *ctx;
};

/* Ask the locator where the node is now; the address follows it. */
static int rnode_locate(struct rnode_rexec *r, char *host, int *port) {
    r->x.errstr[0] = '\0';
    if (r->where.locate(r->where.arg, host, RNODE_HOST_MAX, port, r->x.errstr,
                        sizeof(r->x.errstr)) != CB_OK) {
        if (r->x.errstr[0] == '\0')
            rexec_seterr(&r->x, "redis %s: cannot locate the node", r->x.addr);
        return CB_ERR_IO;
    }
    rnode_format_addr(r->x.addr, sizeof(r->x.addr), host, *port);
    return CB_OK;
}

static int rnode_connected(const struct rexec *x) {
    return ((const struct rnode_rexec *)x)->ctx != NULL;
}

static void rnode_disconnect(struct rexec *x) {
    struct rnode_rexec *r = (struct rnode_rexec *)x;
    if (r->ctx) redisFree(r->ctx);
    r->ctx = NULL;
}

/* PING on the new connection: the node counts as connected once it has
 * answered, and a Redis still loading its data set (-LOADING) does not. */
static int rnode_ping(struct rnode_rexec *r) {
    redisReply *reply = redisCommand(r->ctx, "PING");
    int ok = reply && reply->type == REDIS_REPLY_STATUS;

    if (!ok)
        rexec_seterr(&r->x, "redis %s: PING: %s", r->x.addr,
                     reply == NULL ? (r->ctx->errstr[0] ? r->ctx->errstr : "connection lost")
                     : reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    if (reply) freeReplyObject(reply);
    if (ok) return CB_OK;
    rnode_disconnect(&r->x);
    return CB_ERR_IO;
}

/* Open (where the locator says, when there is one), authenticate, PING. */
static int rnode_connect(struct rexec *x) {
    struct rnode_rexec *r = (struct rnode_rexec *)x;
    char host[RNODE_HOST_MAX];
    const char *h = r->host, *path = r->path;
    int port = r->port;

    if (r->where.locate) {
        if (rnode_locate(r, host, &port) != CB_OK) return CB_ERR_IO;
        h = host;
        path = NULL;
    }
    r->ctx = rnode_open(&r->conf, h, port, path, x->errstr, sizeof(x->errstr));
    return r->ctx ? rnode_ping(r) : CB_ERR_IO;
}

/* Append every pending command to the output buffer, then read the
 * replies in order (the first read writes the buffer out). */
static int rnode_exec(struct rexec *x, struct rexec_cmd *cmds, size_t n) {
    struct rnode_rexec *r = (struct rnode_rexec *)x;
    for (size_t i = 0; i < n; i++) {
        if (cmds[i].result != CB_PENDING) continue;
        if (redisAppendFormattedCommand(r->ctx, cmds[i].buf, cmds[i].len) != REDIS_OK)
            goto io_error;
    }
    for (size_t i = 0; i < n; i++) {
        void *reply = NULL;
        if (cmds[i].result != CB_PENDING) continue;
        if (redisGetReply(r->ctx, &reply) != REDIS_OK || reply == NULL) goto io_error;
        if (cmds[i].reply) freeReplyObject(cmds[i].reply);   /* a stale one */
        cmds[i].reply = reply;
        cmds[i].result = CB_DONE;
    }
    return CB_OK;
io_error:
    rexec_seterr(x, "redis %s: %s", x->addr,
                 r->ctx->errstr[0] ? r->ctx->errstr : "connection lost");
    rnode_disconnect(x);
    return CB_ERR_IO;
}

/* Every slot goes to the one node. */
static size_t rnode_nodes(struct rexec *x, const unsigned *slots, size_t n,
                          unsigned *out) {
    (void)x;
    if (n == 0) return 0;
    out[0] = slots[0];
    return 1;
}

static void rnode_free(struct rexec *x) {
    struct rnode_rexec *r = (struct rnode_rexec *)x;
    if (r->where.free) r->where.free(r->where.arg);
    free(r->host);
    free(r->path);
    free(r->username);
    free(r->password);
    free(r);
}

/* No redirections on one node. Its address, when it is fixed: a
 * located one changes on the executor's thread (its wrapper says). */
static void rnode_counters(const struct rexec *x, struct rexec_counters *out) {
    const struct rnode_rexec *r = (const struct rnode_rexec *)x;
    out->moved = out->ask = 0;
    if (r->where.locate == NULL) snprintf(out->primary, sizeof(out->primary), "%s", x->addr);
}

static const struct rexec_funcs rnode_funcs = {
    rnode_connect, rnode_connected, rnode_exec, rnode_nodes,
    rnode_disconnect, rnode_free, rnode_counters
};

struct rexec *rnode_rexec_new(const struct rexec_opts *opts,
                              const struct rnode_locator *where) {
    struct rnode_rexec *r = calloc(1, sizeof(*r));
    if (r == NULL) return NULL;
    r->x.funcs = &rnode_funcs;
    if (where) r->where = *where;
    if (rexec_opt_dup(&r->host, opts->host ? opts->host : "127.0.0.1") ||
        rexec_opt_dup(&r->path, opts->unix_socket) ||
        rexec_opt_dup(&r->username, opts->username) || rexec_opt_dup(&r->password, opts->password)) {
        rnode_free(&r->x);
        return NULL;
    }
    r->port = opts->port;
    r->conf = (struct rnode_conf){ r->username, r->password, opts->timeout_ms };
    if (r->path)
        snprintf(r->x.addr, sizeof(r->x.addr), "%s", r->path);
    else
        rnode_format_addr(r->x.addr, sizeof(r->x.addr), r->host, r->port);
    return &r->x;
}
