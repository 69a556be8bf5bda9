/* cluster.c -- Redis Cluster slot routing over hiredis, and the cluster's
 * executor (see cluster.h).
 *
 * The map is CLUSTER_SLOTS node indices into c->nodes. Node entries keep
 * their index for as long as they are known: a refresh reuses the entries
 * of nodes that stay primaries (with their connections), frees the others
 * and puts new nodes in free entries; MOVED and ASK add unknown nodes at
 * the end. So an index a batch holds (a redirection's target) still names
 * the same node after the refresh of that batch, or a free entry.
 *
 * CLUSTER SLOTS rather than CLUSTER SHARDS: it is all the map needs (one
 * entry per range of slots, its primary first), Redis 3.0 to 7.x answer
 * it, and it parses in a few lines; SHARDS (7.0+) describes every node of
 * every shard as a map of fields we would only skip. */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "cluster.h"
#include "result.h"
#include "rexec.h"
#include "rnode.h"

#define HOST_MAX RNODE_HOST_MAX
#define ADDR_MAX (HOST_MAX + 16)     /* "[" HOST "]:" PORT */
#define NO_NODE 0xFFFFu              /* a slot without a known primary */

struct node {
    char host[HOST_MAX];
    int port;
    char addr[ADDR_MAX];     /* "HOST:PORT"; "" when the entry is free */
    redisContext *ctx;       /* NULL until a command goes there */
    int mark;                /* scratch for refresh and load */
};

struct cluster {
    struct node *seeds;      /* never connected for long: no ctx */
    size_t nseeds;
    char *username;
    char *password;
    struct rnode_conf conf;  /* the two above and the timeout */
    int max_redirects;
    struct node *nodes;
    size_t nnodes, cap;
    uint16_t slots[CLUSTER_SLOTS];
    int loaded;              /* a map was installed once */
    int stale;               /* the map needs reloading */
    int refreshed;           /* reloaded during the current batch */
    struct cluster_stats stats;
    char errstr[REXEC_ERR_MAX];
};

/* ==================== Helpers ==================== */

static void cluster_seterr(struct cluster *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void cluster_seterr(struct cluster *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof(c->errstr), fmt, ap);
    va_end(ap);
}

static void stat_add(unsigned long long *counter) {
    __atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

/* Name an entry host:port, without a connection. */
static void node_set(struct node *n, const char *host, int port) {
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    rnode_format_addr(n->addr, sizeof(n->addr), host, port);
    n->ctx = NULL;
}

/* ==================== Slots ==================== */

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as in the
 * Redis Cluster specification. */
static uint16_t crc16(const char *buf, size_t len) {
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned cluster_keyslot(const char *key, size_t len) {
    size_t lb = 0;
    while (lb < len && key[lb] != '{') lb++;
    if (lb < len) {
        size_t rb = lb + 1;
        while (rb < len && key[rb] != '}') rb++;
        if (rb < len && rb > lb + 1) {      /* a non-empty tag */
            key += lb + 1;
            len = rb - lb - 1;
        }
    }
    return crc16(key, len) & (CLUSTER_SLOTS - 1);
}

/* ==================== Parsers ==================== */

int cluster_parse_redirect(const char *err, unsigned *slot, char *addr,
                           size_t addrlen) {
    char host[HOST_MAX];
    const char *p;
    char *end;
    unsigned long s;
    int kind, port;

    if (strncmp(err, "MOVED ", 6) == 0) {
        kind = CLUSTER_MOVED;
        p = err + 6;
    } else if (strncmp(err, "ASK ", 4) == 0) {
        kind = CLUSTER_ASK;
        p = err + 4;
    } else {
        return CLUSTER_NO_REDIRECT;
    }
    if (!isdigit((unsigned char)*p)) return CLUSTER_NO_REDIRECT;
    s = strtoul(p, &end, 10);
    if (*end != ' ' || s >= CLUSTER_SLOTS ||
        rnode_parse_addr(end + 1, host, sizeof(host), &port) < 0 ||
        (size_t)snprintf(addr, addrlen, "%s", end + 1) >= addrlen)
        return CLUSTER_NO_REDIRECT;
    *slot = (unsigned)s;
    return kind;
}

/* A map read from a reply, before it is installed: slot -> index into
 * node[], whose hosts point into the reply (or at the 'from' host). */
struct parsed {
    uint16_t slot[CLUSTER_SLOTS];
    size_t n;
    struct { const char *host; int port; int index; } node[];
};

/* One CLUSTER SLOTS entry: start, end, then the primary as { ip, port,
 * ... }; replicas after it are ignored. *host is NULL when the primary's
 * endpoint is unknown ("?" or nil). 0, or -1 when malformed. */
static int parse_range(const redisReply *e, long long *lo, long long *hi,
                       const char **host, int *port) {
    const redisReply *n;
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3) return -1;
    n = e->element[2];
    if (e->element[0]->type != REDIS_REPLY_INTEGER ||
        e->element[1]->type != REDIS_REPLY_INTEGER ||
        n->type != REDIS_REPLY_ARRAY || n->elements < 2 ||
        n->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    *lo = e->element[0]->integer;
    *hi = e->element[1]->integer;
    if (*lo < 0 || *lo > *hi || *hi >= CLUSTER_SLOTS) return -1;
    if (n->element[1]->integer < 1 || n->element[1]->integer > 65535) return -1;
    *port = (int)n->element[1]->integer;
    *host = NULL;
    if (n->element[0]->type == REDIS_REPLY_NIL) return 0;
    if (n->element[0]->type != REDIS_REPLY_STRING || n->element[0]->len >= HOST_MAX)
        return -1;
    if (strcmp(n->element[0]->str, "?") != 0) *host = n->element[0]->str;
    return 0;
}

/* The index of host:port in p, added when new. */
static uint16_t parsed_node(struct parsed *p, const char *host, int port) {
    for (size_t i = 0; i < p->n; i++)
        if (p->node[i].port == port && strcmp(p->node[i].host, host) == 0)
            return (uint16_t)i;
    p->node[p->n].host = host;
    p->node[p->n].port = port;
    return (uint16_t)p->n++;
}

/* Read a CLUSTER SLOTS reply into p (room for r->elements nodes). An
 * empty host means the node that answered, fromhost. */
static int parse_slots(struct cluster *c, const redisReply *r,
                       const char *fromhost, struct parsed *p) {
    memset(p->slot, 0xff, sizeof(p->slot));
    p->n = 0;
    if (r->type != REDIS_REPLY_ARRAY) {
        cluster_seterr(c, "CLUSTER SLOTS: %s", r->type == REDIS_REPLY_ERROR ?
                       r->str : "not an array");
        return CB_ERR_PROTO;
    }
    for (size_t i = 0; i < r->elements; i++) {
        long long lo, hi;
        const char *host;
        int port;
        if (parse_range(r->element[i], &lo, &hi, &host, &port) < 0) {
            cluster_seterr(c, "CLUSTER SLOTS: entry %zu is malformed", i);
            return CB_ERR_PROTO;
        }
        if (host == NULL) continue;      /* unknown endpoint: no owner */
        uint16_t ix = parsed_node(p, host[0] ? host : fromhost, port);
        for (long long s = lo; s <= hi; s++) p->slot[s] = ix;
    }
    return CB_OK;
}

/* ==================== Nodes ==================== */

static int node_find(const struct cluster *c, const char *host, int port) {
    for (size_t i = 0; i < c->nnodes; i++)
        if (c->nodes[i].addr[0] && c->nodes[i].port == port &&
            strcmp(c->nodes[i].host, host) == 0)
            return (int)i;
    return -1;
}

/* Room for 'more' entries beyond nnodes. 0, or -1 when out of memory. */
static int nodes_reserve(struct cluster *c, size_t more) {
    size_t cap = c->cap ? c->cap : 8;
    struct node *nodes;
    if (c->nnodes + more >= NO_NODE) return -1;
    if (c->nnodes + more <= c->cap) return 0;
    while (cap < c->nnodes + more) cap *= 2;
    nodes = realloc(c->nodes, cap * sizeof(*nodes));
    if (nodes == NULL) return -1;
    c->nodes = nodes;
    c->cap = cap;
    return 0;
}

/* The index of host:port, added at the end when unknown; -1 when out of
 * memory. Free entries are left alone: see the top of the file. */
static int node_add(struct cluster *c, const char *host, int port) {
    int i = node_find(c, host, port);
    if (i >= 0) return i;
    if (nodes_reserve(c, 1) < 0) return -1;
    node_set(&c->nodes[c->nnodes], host, port);
    c->nodes[c->nnodes].mark = 0;
    return (int)c->nnodes++;
}

/* Close a node's connection after an error: what it was doing is unknown
 * and its place in the cluster may have changed. */
static void node_drop(struct cluster *c, size_t i) {
    if (c->nodes[i].ctx) redisFree(c->nodes[i].ctx);
    c->nodes[i].ctx = NULL;
    c->stale = 1;
}

/* A new connection to n (rnode_open). NULL with errstr set on failure. */
static redisContext *node_open(struct cluster *c, const struct node *n) {
    redisContext *ctx = rnode_open(&c->conf, n->host, n->port, NULL, c->errstr,
                                   sizeof(c->errstr));
    if (ctx) stat_add(&c->stats.connects);
    return ctx;
}

/* Connect node i unless it is. 0, or -1 (errstr set, map stale). */
static int node_connect(struct cluster *c, size_t i) {
    if (c->nodes[i].ctx) return 0;
    c->nodes[i].ctx = node_open(c, &c->nodes[i]);
    if (c->nodes[i].ctx) return 0;
    c->stale = 1;
    return -1;
}

/* ==================== The map ==================== */

/* Give every node of p an entry: its own when known (its connection
 * kept), else a free one or a new one. Marks the entries used. Cannot
 * fail: room was reserved. */
static void install_nodes(struct cluster *c, struct parsed *p) {
    for (size_t i = 0; i < c->nnodes; i++) c->nodes[i].mark = 0;
    for (size_t k = 0; k < p->n; k++) {
        int i = node_find(c, p->node[k].host, p->node[k].port);
        if (i < 0) {
            for (i = 0; (size_t)i < c->nnodes && c->nodes[i].addr[0]; i++) {}
            if ((size_t)i == c->nnodes) c->nnodes++;
            node_set(&c->nodes[i], p->node[k].host, p->node[k].port);
        }
        c->nodes[i].mark = 1;
        p->node[k].index = i;
    }
}

/* Install p: nodes no longer primaries are closed and their entries
 * freed. CB_OK or CB_ERR_OOM (nothing changed). */
static int install_map(struct cluster *c, struct parsed *p) {
    if (nodes_reserve(c, p->n) < 0) {
        cluster_seterr(c, "cluster: out of memory");
        return CB_ERR_OOM;
    }
    install_nodes(c, p);
    for (size_t i = 0; i < c->nnodes; i++) {
        if (c->nodes[i].mark || c->nodes[i].addr[0] == '\0') continue;
        if (c->nodes[i].ctx) redisFree(c->nodes[i].ctx);
        c->nodes[i].ctx = NULL;
        c->nodes[i].addr[0] = '\0';
    }
    for (size_t s = 0; s < CLUSTER_SLOTS; s++)
        c->slots[s] = p->slot[s] == NO_NODE ? NO_NODE : (uint16_t)p->node[p->slot[s]].index;
    c->loaded = 1;
    c->stale = 0;
    stat_add(&c->stats.refreshes);
    return CB_OK;
}

int cluster_load_slots(struct cluster *c, const redisReply *r, const char *from) {
    char fromhost[HOST_MAX];
    struct parsed *p = NULL;
    int port, rc;
    size_t room = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;

    if (rnode_parse_addr(from, fromhost, sizeof(fromhost), &port) < 0) {
        cluster_seterr(c, "cluster: bad node address %s", from);
        return CB_ERR_PROTO;
    }
    p = malloc(sizeof(*p) + room * sizeof(p->node[0]));
    if (p == NULL) {
        cluster_seterr(c, "cluster: out of memory");
        rc = CB_ERR_OOM;
        goto cleanup;
    }
    rc = parse_slots(c, r, fromhost, p);
    if (rc == CB_OK && p->n == 0) {      /* a reset or stray node */
        cluster_seterr(c, "cluster: %s serves no slots", from);
        rc = CB_ERR_PROTO;
    }
    if (rc == CB_OK) rc = install_map(c, p);
cleanup:
    free(p);
    return rc;
}

/* CLUSTER SLOTS on ctx, a connection to 'n', and install the answer.
 * CB_ERR_IO means ctx is broken. */
static int ask_slots(struct cluster *c, redisContext *ctx, const struct node *n) {
    char addr[ADDR_MAX];
    redisReply *r = redisCommand(ctx, "CLUSTER SLOTS");
    int rc;

    if (r == NULL) {
        cluster_seterr(c, "redis %s: %s", n->addr, ctx->errstr);
        return CB_ERR_IO;
    }
    snprintf(addr, sizeof(addr), "%s", n->addr);   /* n may move */
    rc = cluster_load_slots(c, r, addr);
    freeReplyObject(r);
    return rc;
}

/* Refresh from node i, connecting it first if need be. */
static int refresh_node(struct cluster *c, size_t i) {
    int rc;
    c->nodes[i].mark = 1;               /* tried */
    if (node_connect(c, i) < 0) return CB_ERR_IO;
    rc = ask_slots(c, c->nodes[i].ctx, &c->nodes[i]);
    if (rc == CB_ERR_IO) node_drop(c, i);
    return rc;
}

/* Refresh from a seed on a connection of its own, handed to the seed's
 * node entry afterwards when that has none. */
static int refresh_seed(struct cluster *c, const struct node *seed) {
    redisContext *ctx = node_open(c, seed);
    int rc, i;

    if (ctx == NULL) return CB_ERR_IO;
    rc = ask_slots(c, ctx, seed);
    i = node_find(c, seed->host, seed->port);
    if (rc == CB_OK && i >= 0 && c->nodes[i].ctx == NULL) {
        c->nodes[i].ctx = ctx;
        ctx = NULL;
    }
    if (ctx) redisFree(ctx);
    return rc;
}

int cluster_refresh(struct cluster *c) {
    int rc = CB_ERR_IO;
    size_t i;

    for (i = 0; i < c->nnodes; i++) c->nodes[i].mark = 0;
    for (i = 0; i < c->nnodes; i++)
        if (c->nodes[i].ctx && (rc = refresh_node(c, i)) == CB_OK) return rc;
    for (i = 0; i < c->nseeds && rc != CB_ERR_OOM; i++)
        if ((rc = refresh_seed(c, &c->seeds[i])) == CB_OK) return rc;
    for (i = 0; i < c->nnodes && rc != CB_ERR_OOM; i++)
        if (c->nodes[i].addr[0] && !c->nodes[i].mark &&
            (rc = refresh_node(c, i)) == CB_OK)
            return rc;
    c->stale = 1;
    return rc;
}

/* ==================== Lifecycle ==================== */

/* rnode_parse_list's callback: one more seed. */
static int seed_add(void *arg, const char *host, int port) {
    struct cluster *c = arg;
    struct node *grown = realloc(c->seeds, (c->nseeds + 1) * sizeof(*grown));
    if (grown == NULL) return CB_ERR_OOM;
    c->seeds = grown;
    node_set(&c->seeds[c->nseeds++], host, port);
    return CB_OK;
}

struct cluster *cluster_new(const struct cluster_opts *opts) {
    struct cluster *c;

    if (opts->nseeds == 0) return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL) return NULL;
    if (rexec_opt_dup(&c->username, opts->username) || rexec_opt_dup(&c->password, opts->password))
        goto fail;
    for (size_t i = 0; i < opts->nseeds; i++)
        if (rnode_parse_list(opts->seeds[i], seed_add, c) <= 0) goto fail;
    c->conf = (struct rnode_conf){ c->username, c->password, opts->timeout_ms };
    c->max_redirects = opts->max_redirects > 0 ? opts->max_redirects : CLUSTER_MAX_REDIRECTS;
    memset(c->slots, 0xff, sizeof(c->slots));
    c->stale = 1;
    return c;
fail:
    cluster_free(c);
    return NULL;
}

void cluster_disconnect(struct cluster *c) {
    for (size_t i = 0; i < c->nnodes; i++) node_drop(c, i);
    c->stale = 1;
}

void cluster_free(struct cluster *c) {
    if (c == NULL) return;
    cluster_disconnect(c);
    free(c->nodes);
    free(c->seeds);
    free(c->username);
    free(c->password);
    free(c);
}

/* ==================== Replies ==================== */

/* Errors that say the cluster cannot serve the slot now, but will. */
static int retryable(const char *err) {
    return strncmp(err, "TRYAGAIN", 8) == 0 || strncmp(err, "CLUSTERDOWN", 11) == 0;
}

/* Follow a MOVED or ASK answer of cmd: the next round sends it to addr
 * (ASKING first for ASK); MOVED also fixes the map and marks it stale.
 * 0, or -1 when cmd may not be redirected again (errstr set). */
static int follow(struct cluster *c, struct rexec_cmd *cmd, int kind,
                  unsigned slot, const char *addr) {
    char host[HOST_MAX];
    int port, node;

    stat_add(kind == CLUSTER_MOVED ? &c->stats.moved : &c->stats.ask);
    if (cmd->redirects >= c->max_redirects) {
        cluster_seterr(c, "cluster: slot %u: more than %d redirections",
                       slot, c->max_redirects);
        return -1;
    }
    rnode_parse_addr(addr, host, sizeof(host), &port);   /* checked */
    if (host[0] == '\0')         /* ":PORT": the host of the node that said it */
        snprintf(host, sizeof(host), "%s", c->nodes[cmd->node].host);
    node = node_add(c, host, port);
    if (node < 0) {
        cluster_seterr(c, "cluster: out of memory");
        return -1;
    }
    cmd->redirects++;
    cmd->target = node;
    cmd->asking = kind == CLUSTER_ASK;
    if (kind == CLUSTER_MOVED) {
        c->slots[slot] = (uint16_t)node;
        c->stale = 1;
    }
    return 0;
}

/* Give reply r to cmd: a result, or a redirection followed (r freed,
 * cmd pending again). */
static void take_reply(struct cluster *c, struct rexec_cmd *cmd, redisReply *r) {
    char addr[ADDR_MAX];
    unsigned slot;
    int error = r->type == REDIS_REPLY_ERROR;
    int kind = error ? cluster_parse_redirect(r->str, &slot, addr, sizeof(addr))
                     : CLUSTER_NO_REDIRECT;

    cmd->reply = r;
    cmd->result = CB_DONE;
    if (kind != CLUSTER_NO_REDIRECT) {
        if (follow(c, cmd, kind, slot, addr) < 0) {
            cmd->result = CB_RETRY;          /* errstr says why */
            return;
        }
        freeReplyObject(r);
        cmd->reply = NULL;
        cmd->result = CB_PENDING;
    } else if (error && retryable(r->str)) {
        stat_add(&c->stats.retry);
        cluster_seterr(c, "redis %s: %s", c->nodes[cmd->node].addr, r->str);
        cmd->result = CB_RETRY;
    }
}

/* ==================== Batches ==================== */

/* cmd's node could not be reached or failed during this batch: it stays
 * CB_PENDING (applied or not, nobody knows) and is not sent again before
 * the next cluster_exec. */
static void cmd_failed(struct rexec_cmd *cmd) {
    cmd->result = CB_PENDING;
    cmd->failed = 1;
}

/* 1 when cmd is to be sent in this round. */
static int cmd_sendable(const struct rexec_cmd *cmd) {
    return cmd->result == CB_PENDING && !cmd->failed;
}

/* The node cmd goes to, connected, or -1 with cmd's result set. */
static int route(struct cluster *c, struct rexec_cmd *cmd) {
    unsigned slot = cmd->slot & (CLUSTER_SLOTS - 1);
    int node = cmd->target;

    if (node < 0 || c->nodes[node].addr[0] == '\0') {
        node = c->slots[slot] == NO_NODE ? -1 : c->slots[slot];
        cmd->target = -1;
        cmd->asking = 0;
    }
    if (node < 0) {
        /* Never loaded: the refresh's error says why. */
        if (c->loaded) cluster_seterr(c, "cluster: slot %u has no primary", slot);
        if (c->loaded)
            cmd->result = CB_RETRY;
        else
            cmd_failed(cmd);
        c->stale = 1;
        return -1;
    }
    if (node_connect(c, (size_t)node) < 0) {
        cmd_failed(cmd);
        return -1;
    }
    return node;
}

/* Append cmd (after ASKING when asked to) to node's pipeline. 0, or -1
 * when hiredis could not (out of memory): the pipeline is then unusable. */
static int append(struct cluster *c, const struct rexec_cmd *cmd, int node) {
    static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
    redisContext *ctx = c->nodes[node].ctx;

    if ((cmd->asking &&
         redisAppendFormattedCommand(ctx, asking, sizeof(asking) - 1) != REDIS_OK) ||
        redisAppendFormattedCommand(ctx, cmd->buf, cmd->len) != REDIS_OK) {
        cluster_seterr(c, "redis %s: %s", c->nodes[node].addr, ctx->errstr);
        return -1;
    }
    return 0;
}

/* Node's pipeline broke while commands 0..last were routed: those that
 * went to it get an I/O error, its connection is dropped. A later command
 * of the round opens a new one, whose replies are its own. */
static void append_failed(struct cluster *c, struct rexec_cmd *cmds,
                          size_t last, int node) {
    for (size_t j = 0; j <= last; j++) {
        if (cmds[j].node != node) continue;
        cmds[j].node = -1;
        cmd_failed(&cmds[j]);
    }
    node_drop(c, (size_t)node);
}

/* Route and append every pending command; refresh the map first when it
 * is stale and was not reloaded during this batch. The number sent. */
static size_t round_send(struct cluster *c, struct rexec_cmd *cmds, size_t n) {
    size_t sent = 0, pending = 0;

    for (size_t i = 0; i < n; i++) pending += cmd_sendable(&cmds[i]);
    if (pending && c->stale && !c->refreshed) {
        c->refreshed = 1;
        (void)cluster_refresh(c);   /* on failure, the map as it is */
    }
    for (size_t i = 0; i < n; i++) {
        cmds[i].node = -1;
        if (!cmd_sendable(&cmds[i])) continue;
        int node = route(c, &cmds[i]);
        if (node < 0) continue;
        cmds[i].node = node;
        if (append(c, &cmds[i], node) == 0)
            sent++;
        else
            append_failed(c, cmds, i, node);
    }
    return sent;
}

/* Write every node's pipeline before reading any reply, so that the
 * nodes work at the same time. */
static void round_flush(struct cluster *c) {
    for (size_t i = 0; i < c->nnodes; i++) {
        int done = 0;
        while (c->nodes[i].ctx && !done) {
            if (redisBufferWrite(c->nodes[i].ctx, &done) != REDIS_OK) {
                cluster_seterr(c, "redis %s: %s", c->nodes[i].addr,
                               c->nodes[i].ctx->errstr);
                node_drop(c, i);
            }
        }
    }
}

/* The next reply of cmd's node (after that of ASKING), or NULL when the
 * connection failed or was dropped during this round. */
static redisReply *read_reply(struct cluster *c, const struct rexec_cmd *cmd) {
    redisContext *ctx = c->nodes[cmd->node].ctx;
    void *asking = NULL, *r = NULL;

    if (ctx == NULL) return NULL;
    if (cmd->asking && redisGetReply(ctx, &asking) != REDIS_OK) goto fail;
    if (asking) freeReplyObject(asking);
    if (redisGetReply(ctx, &r) != REDIS_OK || r == NULL) goto fail;
    return r;
fail:
    cluster_seterr(c, "redis %s: %s", c->nodes[cmd->node].addr,
                   ctx->errstr[0] ? ctx->errstr : "connection lost");
    node_drop(c, (size_t)cmd->node);
    return NULL;
}

/* Read the replies of what round_send sent. Each node answers its
 * commands in the order they were appended, which is their order in
 * cmds, so reading in that order reads each node's pipeline in order. */
static void round_read(struct cluster *c, struct rexec_cmd *cmds, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (cmds[i].node < 0) continue;
        redisReply *r = read_reply(c, &cmds[i]);
        if (r == NULL)
            cmd_failed(&cmds[i]);
        else
            take_reply(c, &cmds[i], r);
    }
}

int cluster_exec(struct cluster *c, struct rexec_cmd *cmds, size_t n) {
    int rc = CB_OK;

    c->errstr[0] = '\0';
    c->refreshed = 0;
    for (size_t i = 0; i < n; i++) {
        if (cmds[i].result != CB_PENDING) continue;
        if (cmds[i].reply) freeReplyObject(cmds[i].reply);   /* a stale one */
        cmds[i].reply = NULL;
        cmds[i].target = -1;
        cmds[i].asking = 0;
        cmds[i].redirects = 0;
        cmds[i].failed = 0;
    }
    /* Each round gives every command sent a result or a redirection, and
     * redirections are bounded: the loop ends. */
    while (round_send(c, cmds, n) > 0) {
        round_flush(c);
        round_read(c, cmds, n);
    }
    for (size_t i = 0; i < n; i++)
        if (cmds[i].result == CB_PENDING) rc = CB_ERR_IO;
    return rc;
}

/* ==================== Information ==================== */

const char *cluster_slot_addr(const struct cluster *c, unsigned slot) {
    if (slot >= CLUSTER_SLOTS || c->slots[slot] == NO_NODE) return NULL;
    return c->nodes[c->slots[slot]].addr;
}

void cluster_get_stats(const struct cluster *c, struct cluster_stats *out) {
    out->moved = __atomic_load_n(&c->stats.moved, __ATOMIC_RELAXED);
    out->ask = __atomic_load_n(&c->stats.ask, __ATOMIC_RELAXED);
    out->retry = __atomic_load_n(&c->stats.retry, __ATOMIC_RELAXED);
    out->refreshes = __atomic_load_n(&c->stats.refreshes, __ATOMIC_RELAXED);
    out->connects = __atomic_load_n(&c->stats.connects, __ATOMIC_RELAXED);
}

const char *cluster_errstr(const struct cluster *c) {
    return c->errstr;
}

/* ==================== The executor ==================== */

struct cluster_rexec {
    struct rexec x;            /* first: the executor is a struct rexec */
    struct cluster *c;
    int up;                    /* the map was loaded since the last disconnect */
};

/* Connecting is loading the slot map; nodes are connected as commands
 * go to them. */
static int cx_connect(struct rexec *x) {
    struct cluster_rexec *cx = (struct cluster_rexec *)x;
    if (cluster_refresh(cx->c) != CB_OK) {
        rexec_seterr(x, "redis %s: %s", x->addr, cluster_errstr(cx->c));
        return CB_ERR_IO;
    }
    cx->up = 1;
    return CB_OK;
}

static int cx_connected(const struct rexec *x) {
    return ((const struct cluster_rexec *)x)->up;
}

static void cx_disconnect(struct rexec *x) {
    struct cluster_rexec *cx = (struct cluster_rexec *)x;
    cluster_disconnect(cx->c);
    cx->up = 0;
}

/* A batch. A lost node disconnects it all, so that the map is reloaded
 * by the next connect, before anything runs again. The cluster's error
 * (a command to retry has one too) goes into errstr. */
static int cx_exec(struct rexec *x, struct rexec_cmd *cmds, size_t n) {
    struct cluster_rexec *cx = (struct cluster_rexec *)x;
    int rc = cluster_exec(cx->c, cmds, n);
    if (cluster_errstr(cx->c)[0])
        rexec_seterr(x, "redis %s: %s", x->addr, cluster_errstr(cx->c));
    if (rc != CB_OK) cx_disconnect(x);
    return rc;
}

/* One slot of each distinct primary that the map gives for slots. */
static size_t cx_nodes(struct rexec *x, const unsigned *slots, size_t n,
                       unsigned *out) {
    const struct cluster *c = ((const struct cluster_rexec *)x)->c;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned slot = slots[i] & (CLUSTER_SLOTS - 1);
        size_t j = 0;
        if (c->slots[slot] == NO_NODE) continue;
        while (j < k && c->slots[out[j]] != c->slots[slot]) j++;
        if (j == k) out[k++] = slot;
    }
    return k;
}

static void cx_free(struct rexec *x) {
    struct cluster_rexec *cx = (struct cluster_rexec *)x;
    cluster_free(cx->c);
    free(cx);
}

static void cx_counters(const struct rexec *x, struct rexec_counters *out) {
    struct cluster_stats st;
    cluster_get_stats(((const struct cluster_rexec *)x)->c, &st);
    out->moved = st.moved;
    out->ask = st.ask;
}

static const struct rexec_funcs cluster_funcs = {
    cx_connect, cx_connected, cx_exec, cx_nodes, cx_disconnect, cx_free, cx_counters
};

struct rexec *cluster_rexec_new(const struct rexec_opts *opts) {
    char hostport[REXEC_ADDR_MAX];
    const char *list = opts->cluster_nodes;
    struct cluster_rexec *cx;

    if (list == NULL) {
        if (opts->host == NULL) return NULL;
        rnode_format_addr(hostport, sizeof(hostport), opts->host, opts->port);
        list = hostport;
    }
    const char *seeds[] = { list };
    struct cluster_opts o = { seeds, 1, opts->username, opts->password,
                              opts->timeout_ms, 0 };
    cx = calloc(1, sizeof(*cx));
    if (cx == NULL) return NULL;
    cx->x.funcs = &cluster_funcs;
    snprintf(cx->x.addr, sizeof(cx->x.addr), "cluster %.280s", list);
    cx->c = cluster_new(&o);
    if (cx->c == NULL) {
        free(cx);
        return NULL;
    }
    return &cx->x;
}
