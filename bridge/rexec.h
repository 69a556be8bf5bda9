/* rexec.h -- how commands reach Redis: one executor interface.
 *
 * The store (store.h) knows the schema: keys, scripts, replies. How its
 * commands reach Redis is an executor's business, and the transport varies
 * through a table of functions (struct rexec_funcs), as in hiredis'
 * redisContextFuncs, never through "if (cluster)" branches in the caller.
 * Implementations:
 *
 *   rnode.h     one node: TCP host:port or a Unix socket, one connection;
 *   cluster.h   a Redis Cluster: commands routed by slot to the primaries,
 *               MOVED and ASK followed;
 *   sentinel.h  the primary that Redis Sentinel names: the one-node
 *               executor with a locator that asks the sentinels, ROLE
 *               checked at each connect, failovers followed.
 *
 * rexec_new() picks one from the options.
 *
 * A command is RESP text plus the slot of every key it names (ignored by
 * a single node). rexec_exec() runs a batch pipelined: every command is
 * sent before any reply is read, and each reply is given to its command.
 * Each command's outcome is a cb_outcome (result.h):
 *
 *   CB_PENDING  not run, or its connection failed before the reply came:
 *               it may or may not have been applied; pass it again
 *   CB_DONE     a reply came, in cmd->reply: maybe an error reply, such
 *               as NOSCRIPT, which the caller interprets
 *   CB_RETRY    not executed, try later (a cluster's -TRYAGAIN or
 *               -CLUSTERDOWN, in cmd->reply; too many redirections; a
 *               slot without a primary)
 *
 * rexec_each() runs one command once on every node that some slots go to:
 * SCRIPT LOAD after a NOSCRIPT (each node has its own script cache) and
 * WAIT after a batch that wrote (each primary has its own replicas).
 *
 * Adding a transport is one more table. The Sentinel executor (issue
 * #15) is one: it wraps the one-node executor, whose locator asks the
 * sentinels for the primary's address before each connect, checks ROLE
 * after it, and drops the connection when a node answers -READONLY or a
 * sentinel announces a failover, so that the next connect asks again.
 *
 * An executor may have something to say outside any call's result (the
 * Sentinel executor's watcher thread: a sentinel lost, a failover
 * followed): it calls opts->notify, from any of its threads, and the
 * caller logs the line.
 *
 * Errors are returned as values (CB_OK or a cb_status); the detail is in
 * rexec_errstr(), never printed. An executor belongs to one thread;
 * rexec_counters() may be called from any thread. */
#ifndef CB_REXEC_H
#define CB_REXEC_H

#include <stddef.h>
#include <hiredis/hiredis.h>

#define REXEC_ADDR_MAX 300
#define REXEC_ERR_MAX 512

/* ---------------- Commands ---------------- */

/* One command of a batch. rexec_cmd_format() fills the inputs; the
 * executor the outputs. */
struct rexec_cmd {
    char *buf;                 /* the command, RESP-encoded (owned) */
    size_t len;
    unsigned slot;             /* the slot of every key it names */
    /* outputs */
    int result;                /* cb_outcome: CB_PENDING, CB_DONE, CB_RETRY */
    redisReply *reply;         /* CB_DONE, CB_RETRY: the answer, if any.
                                * Freed by rexec_cmd_clear(); a caller
                                * keeping it sets this to NULL */
    /* scratch of the executor (the cluster's routing) */
    int node, target, asking, redirects, failed;
};

/* A copy of an option string into *dst (NULL stays NULL), for the
 * executors and the store that keep their options. 0, or -1 when out of
 * memory. */
int rexec_opt_dup(char **dst, const char *src);

/* Set cmd to argv[0..argc) (argvlen NULL: NUL-terminated strings) for
 * slot (taken modulo 16384), outputs cleared. cmd must be zeroed ({0}) or
 * cleared before its first use. CB_OK or CB_ERR_OOM (cmd unchanged). */
int rexec_cmd_format(struct rexec_cmd *cmd, unsigned slot, int argc,
                     const char **argv, const size_t *argvlen);

/* Free cmd's buffer and reply; cmd is then empty. */
void rexec_cmd_clear(struct rexec_cmd *cmd);

/* ---------------- Executors ---------------- */

/* A line for the log: level is one of log.h's (LOG_LEVEL_WARN,
 * LOG_LEVEL_INFO); msg names no secret. Called from the executor's
 * threads, never with a lock of the caller's held. */
typedef void rexec_notify_fn(void *arg, int level, const char *msg);

struct rexec_opts {
    const char *host;          /* one node: host and port ... */
    int port;
    const char *unix_socket;   /* ... or this socket's path when set */
    int cluster;               /* 1: a Redis Cluster */
    const char *cluster_nodes; /* its seeds, "HOST:PORT ..."; NULL: host:port */
    const char *username;      /* Redis 6 ACL user; NULL: "default" */
    const char *password;      /* NULL: no AUTH */
    int timeout_ms;            /* connect, read and write; <= 0: 5000 */
    const char *sentinels;     /* Sentinel: "HOST:PORT ..." of the sentinels */
    const char *sentinel_master;   /* ... the master they monitor ... */
    const char *sentinel_password; /* ... and their own AUTH; NULL: none */
    rexec_notify_fn *notify;   /* NULL: nothing is said */
    void *notify_arg;
};

/* Counters since the executor was made, and where it writes now. */
struct rexec_counters {
    unsigned long long moved, ask;   /* -MOVED and -ASK answers (cluster) */
    unsigned long long failovers;    /* Sentinel: moves to another primary */
    char primary[REXEC_ADDR_MAX];    /* the node written to: one node's
                                        address, Sentinel's confirmed
                                        primary; "" when unknown or many */
    char watching[REXEC_ADDR_MAX];   /* Sentinel: the sentinels whose events
                                        are followed, "HOST:PORT ..."; ""
                                        when none */
};

struct rexec;

/* What an implementation provides. Called through the rexec_* functions
 * below, which check what is common (connected, errstr cleared). */
struct rexec_funcs {
    /* Connect (authenticated), or load what the transport needs (a slot
     * map). CB_OK or CB_ERR_IO. */
    int (*connect)(struct rexec *x);
    int (*connected)(const struct rexec *x);
    /* Run the CB_PENDING commands of cmds[0..n), pipelined. CB_OK when
     * none is left CB_PENDING; CB_ERR_IO when some are, and then the
     * executor is disconnected. */
    int (*exec)(struct rexec *x, struct rexec_cmd *cmds, size_t n);
    /* One slot per distinct node among slots[0..n), into out (room for
     * n); a slot that goes nowhere known is left out. How many. */
    size_t (*nodes)(struct rexec *x, const unsigned *slots, size_t n,
                    unsigned *out);
    void (*disconnect)(struct rexec *x);
    void (*free)(struct rexec *x);      /* the implementation's state */
    void (*counters)(const struct rexec *x, struct rexec_counters *out);
};

/* The part common to every executor; an implementation embeds it first. */
struct rexec {
    const struct rexec_funcs *funcs;
    char addr[REXEC_ADDR_MAX];      /* where it goes, for messages */
    char errstr[REXEC_ERR_MAX];
};

/* An executor for these options (copied), not connected: a cluster's when
 * opts->cluster, Sentinel's when opts->sentinels, else one node's. NULL
 * when out of memory or when a cluster node or a sentinel is not
 * HOST:PORT (config.c checks them first). */
struct rexec *rexec_new(const struct rexec_opts *opts);

/* Disconnect and free. NULL is accepted. */
void rexec_free(struct rexec *x);

/* CB_OK or CB_ERR_IO (errstr says why). Connecting again first closes
 * what is open. */
int rexec_connect(struct rexec *x);
int rexec_connected(const struct rexec *x);
void rexec_disconnect(struct rexec *x);

/* Run the CB_PENDING commands of cmds[0..n), pipelined; the others are
 * skipped, so a batch can be passed again after an I/O error. CB_OK when
 * every command has a result; CB_ERR_IO when some are still CB_PENDING
 * (not connected, or a connection failed): the executor is then
 * disconnected, and rexec_connect() comes before the next batch. */
int rexec_exec(struct rexec *x, struct rexec_cmd *cmds, size_t n);

/* Run argv[0..argc) once on each distinct node that slots[0..n) go to,
 * pipelined. out (room for n, zeroed or cleared) gets one command per
 * node, *nout how many, each with its result and reply as rexec_exec
 * gives them; the caller clears them. Returns what rexec_exec returns, or
 * CB_ERR_OOM. */
int rexec_each(struct rexec *x, const unsigned *slots, size_t n, int argc,
               const char **argv, struct rexec_cmd *out, size_t *nout);

/* Where it connects: "HOST:PORT", the socket's path, or "cluster " and
 * the seeds (Sentinel: the primary last located). The executor's thread
 * only; rexec_counters() says where it writes from any thread. */
const char *rexec_address(const struct rexec *x);

/* The last error, for the log. */
const char *rexec_errstr(const struct rexec *x);

/* The counters and where it writes; any thread. */
void rexec_counters(const struct rexec *x, struct rexec_counters *out);

/* For implementations: format errstr. */
void rexec_seterr(struct rexec *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
