/* rexec.c -- the executor interface (see rexec.h): what every transport
 * shares, and the dispatch through its table of functions. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "cluster.h"
#include "result.h"
#include "rexec.h"
#include "rnode.h"
#include "sentinel.h"

/* ==================== Options ==================== */

int rexec_opt_dup(char **dst, const char *src) {
    *dst = NULL;
    if (src == NULL) return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

/* ==================== Commands ==================== */

int rexec_cmd_format(struct rexec_cmd *cmd, unsigned slot, int argc,
                     const char **argv, const size_t *argvlen) {
    char *buf = NULL;
    int len = redisFormatCommandArgv(&buf, argc, argv, argvlen);
    if (len < 0) return CB_ERR_OOM;
    rexec_cmd_clear(cmd);
    cmd->buf = buf;
    cmd->len = (size_t)len;
    cmd->slot = slot & (CLUSTER_SLOTS - 1);
    return CB_OK;
}

void rexec_cmd_clear(struct rexec_cmd *cmd) {
    if (cmd->buf) redisFreeCommand(cmd->buf);
    if (cmd->reply) freeReplyObject(cmd->reply);
    memset(cmd, 0, sizeof(*cmd));
}

/* ==================== Executors ==================== */

/* The transport the options ask for. */
struct rexec *rexec_new(const struct rexec_opts *opts) {
    if (opts->cluster) return cluster_rexec_new(opts);
    if (opts->sentinels) return sentinel_rexec_new(opts);
    return rnode_rexec_new(opts, NULL);
}

void rexec_free(struct rexec *x) {
    if (x == NULL) return;
    x->funcs->disconnect(x);
    x->funcs->free(x);
}

int rexec_connect(struct rexec *x) {
    x->errstr[0] = '\0';
    x->funcs->disconnect(x);
    return x->funcs->connect(x);
}

int rexec_connected(const struct rexec *x) {
    return x->funcs->connected(x);
}

void rexec_disconnect(struct rexec *x) {
    x->funcs->disconnect(x);
}

int rexec_exec(struct rexec *x, struct rexec_cmd *cmds, size_t n) {
    if (!x->funcs->connected(x)) {
        rexec_seterr(x, "redis %s: not connected", x->addr);
        return CB_ERR_IO;
    }
    x->errstr[0] = '\0';
    return x->funcs->exec(x, cmds, n);
}

/* The nodes are found first (one slot of each), then the command is sent
 * once per node in one batch, so that no node sees it twice. */
int rexec_each(struct rexec *x, const unsigned *slots, size_t n, int argc,
               const char **argv, struct rexec_cmd *out, size_t *nout) {
    unsigned *one;
    size_t k;

    *nout = 0;
    if (n == 0) return CB_OK;
    one = malloc(n * sizeof(*one));
    if (one == NULL) {
        rexec_seterr(x, "redis %s: out of memory", x->addr);
        return CB_ERR_OOM;
    }
    k = x->funcs->nodes(x, slots, n, one);
    for (size_t i = 0; i < k; i++) {
        if (rexec_cmd_format(&out[i], one[i], argc, argv, NULL) == CB_OK) continue;
        while (i > 0) rexec_cmd_clear(&out[--i]);
        free(one);
        rexec_seterr(x, "redis %s: out of memory", x->addr);
        return CB_ERR_OOM;
    }
    free(one);
    *nout = k;
    return rexec_exec(x, out, k);
}

const char *rexec_address(const struct rexec *x) {
    return x->addr;
}

const char *rexec_errstr(const struct rexec *x) {
    return x->errstr;
}

void rexec_counters(const struct rexec *x, struct rexec_counters *out) {
    memset(out, 0, sizeof(*out));
    x->funcs->counters(x, out);
}

void rexec_seterr(struct rexec *x, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->errstr, sizeof(x->errstr), fmt, ap);
    va_end(ap);
}
