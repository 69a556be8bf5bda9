/* sentinel.h -- a primary that Redis Sentinel names, and the executor
 * (rexec.h) that writes to it (issue #15).
 *
 * With redis.sentinels and redis.sentinel_master set, the bridge does not
 * write to a fixed address: it asks the sentinels where the primary of the
 * master is, writes there, and follows it when it moves.
 *
 *  - Asking (sentinel_locate): SENTINEL get-master-addr-by-name <master>,
 *    to each sentinel in turn, starting with the one that answered last
 *    (as Redis's guidelines for Sentinel clients ask), each with its own
 *    connection, AUTH <redis.sentinel_password> first when one is set
 *    (Sentinel's own password, not the data nodes'), and a short timeout:
 *    min(redis.timeout_ms, 1000) ms, so that a sentinel that is down costs
 *    little. The first address given wins. When no sentinel can be reached
 *    at all and a primary was confirmed before, that primary is tried
 *    again (ROLE still decides), so that losing every sentinel does not
 *    stop a bridge whose primary is fine; a sentinel that answers without
 *    an address (a wrong master name, refused credentials) never leads to
 *    that. How one sentinel is asked is a function (sentinel_query_fn):
 *    the network by default, a fake in the unit tests. During a failover
 *    (below) the locator waits instead, or names the promoted replica.
 *  - Confirming: the executor is the one-node executor (rnode.h) with
 *    sentinel_locate as its locator, wrapped by a table of its own. After
 *    each connect (AUTH and PING done) it sends ROLE and keeps the
 *    connection only when the node says "master": a sentinel's answer may
 *    lag behind a failover, and a demoted primary comes back as a replica.
 *    Nothing is written before that.
 *  - Following: the connection is dropped, so that the next connect asks
 *    the sentinels again, when it is lost (the one-node executor drops it
 *    on any I/O error; Sentinel itself kills the clients of a node it
 *    reconfigures), when a reply is -READONLY (the node was demoted under
 *    us), when ROLE is not master, and when a sentinel announces a move
 *    (below). The batch then stays with the store worker, which retries
 *    it (the journal keeps everything meanwhile; the send script's replay
 *    guard makes running a batch again harmless).
 *  - A planned switchover (SENTINEL FAILOVER) loses writes unless the
 *    bridge stops writing before the replica is promoted: Sentinel does
 *    not pause the old primary, which accepts writes for seconds after
 *    the promotion and then drops them when it resyncs as a replica (and
 *    the other replicas drop theirs in a full resync, so WAIT does not
 *    help). So a failover is followed from its start: on +try-failover
 *    (the leader says it, 100 to 300 ms before it sends REPLICAOF NO ONE)
 *    the connection is dropped and the locator names nothing until
 *    +promoted-slave names the new primary, which is then written to at
 *    once (the sentinels name the old one until +switch-master), or the
 *    failover ends or aborts (+failover-end, -failover-abort-*), or
 *    SENTINEL_PAUSE_MS pass. A locate during the pause waits for its end
 *    up to SENTINEL_PAUSE_WAIT_MS before it gives up (the worker then
 *    retries). +switch-master to another address than the one written to
 *    moves the bridge too.
 *  - A connect that failed (the primary is dead, or still named while
 *    the sentinels agree that it is) waits, at most SENTINEL_MOVE_WAIT_MS
 *    and only while a sentinel is watched, for the next event, then tries
 *    again at once: the store worker's backoff (up to 5 s) would
 *    otherwise decide when a promoted replica is first written to. So
 *    one connect may block the worker a few seconds; messages keep
 *    arriving into the journal meanwhile.
 *  - The watcher: these events arrive over pub/sub, which blocks a
 *    hiredis 0.14 context, and only the sentinel leading a failover says
 *    +try-failover; so one small thread of this module holds one
 *    subscription per sentinel, its own connections, and polls them
 *    together. It is never the store worker: polling the sentinels
 *    between batches instead would add a round trip to every batch, see
 *    nothing while the worker waits in a backoff, and could not catch the
 *    start of a failover in time. The thread only raises a generation
 *    number (atomic) and sets the pause, under a mutex; the executor
 *    compares the generation before each batch and drops its connection
 *    when it changed. It never touches the data connection, and nothing
 *    waits on it. On each (re)subscription it asks that sentinel where
 *    the primary is (a move announced while nobody listened is followed
 *    too); it PINGs a silent sentinel after 1 s and takes 3 s without a
 *    byte as a lost one, then tries it again every second. Connecting to
 *    a sentinel blocks the thread for at most the sentinel timeout. With
 *    no sentinel watched it says once that failovers are not followed
 *    meanwhile. It starts at the executor's first connect and stops (a
 *    pipe wakes it) at rexec_free().
 *
 * Where it writes and what it found are reported two ways, both safe from
 * any thread: the counters (rexec_counters: the primary confirmed, the
 * sentinels watched, failovers followed: a primary confirmed other than
 * the previous one), and notify lines (rexec_opts.notify) for the log: a
 * failover begun and followed, a sentinel lost or back, no sentinel to
 * follow failovers with, a READONLY reply. Errors are returned as
 * values, with the detail in the executor's errstr; nothing here prints,
 * and no secret is ever put in a message. */
#ifndef CB_SENTINEL_H
#define CB_SENTINEL_H

#include <stddef.h>
#include <hiredis/hiredis.h>
#include "rexec.h"
#include "rnode.h"

#define SENTINEL_MAX 16                 /* sentinels in redis.sentinels */
#define SENTINEL_TIMEOUT_MS 1000        /* most a sentinel is waited for */
#define SENTINEL_PAUSE_MS 10000         /* most writes wait for a failover */
#define SENTINEL_PAUSE_WAIT_MS 1000     /* most one locate waits for it */
#define SENTINEL_MOVE_WAIT_MS 2000      /* most a failed connect waits for
                                           a failover's event */
#define SENTINEL_PROMOTED_MS 60000      /* a promoted replica is written to
                                           without asking, until then */
#define SENTINEL_ERR_MAX 256

struct sentinel;

/* What one sentinel said about the master. */
struct sentinel_answer {
    char host[RNODE_HOST_MAX];          /* CB_OK: the primary */
    int port;
    char err[SENTINEL_ERR_MAX];         /* otherwise: why not */
};

/* Ask the sentinel at host:port (AUTH password first when not NULL;
 * timeout_ms for connect, reads and writes) where the primary of master
 * is. CB_OK with out->host and out->port; CB_ERR_IO when the sentinel
 * could not be reached or the link broke; CB_ERR_PROTO when it answered
 * without an address (it does not know the master, refused the
 * credentials, answered an error). out->err says why. */
typedef int sentinel_query_fn(void *arg, const char *host, int port, const char *master,
                              const char *password, int timeout_ms,
                              struct sentinel_answer *out);

struct sentinel_opts {
    const char *sentinels;     /* "HOST:PORT ..." (rnode_parse_list) */
    const char *master;        /* the name the sentinels monitor */
    const char *password;      /* Sentinel's AUTH; NULL: none */
    int timeout_ms;            /* redis.timeout_ms; capped at SENTINEL_TIMEOUT_MS */
    sentinel_query_fn *query;  /* NULL: over the network */
    void *query_arg;
    rexec_notify_fn *notify;   /* NULL: say nothing */
    void *notify_arg;
};

/* ---------------- The sentinels ---------------- */

/* A sentinel set for these options (copied), no thread started. NULL when
 * out of memory, or when the list is empty, is not HOST:PORT words or
 * names more than SENTINEL_MAX (config.c checks it first). */
struct sentinel *sentinel_new(const struct sentinel_opts *o);

/* Stop the watcher, if it runs, and free. NULL is accepted. */
void sentinel_free(struct sentinel *s);

/* Where the primary is now: ask the sentinels in turn (see above). CB_OK
 * with host and port, or CB_ERR_IO with err "sentinel: ..." naming what
 * each sentinel answered. An rnode_locator's locate (arg: s). */
int sentinel_locate(void *s, char *host, size_t hostlen, int *port,
                    char *err, size_t errlen);

/* The node at host:port answered ROLE master: it is where writes go.
 * Returns 1 when that is a failover (another primary was confirmed
 * before), else 0. */
int sentinel_confirm(struct sentinel *s, const char *host, int port);

/* What a sentinel announced, as far as the bridge follows it. */
enum sentinel_event_kind {
    SENTINEL_EV_NONE = 0,
    SENTINEL_EV_SWITCH,        /* +switch-master: the sentinels name host:port */
    SENTINEL_EV_TRY,           /* +try-failover: a failover begins */
    SENTINEL_EV_PROMOTED,      /* +promoted-slave: host:port is the primary */
    SENTINEL_EV_END            /* +failover-end[-for-timeout],
                                  -failover-abort-*: it is over */
};

struct sentinel_event {
    int kind;                  /* enum sentinel_event_kind */
    char name[48];             /* the channel, for messages */
    char host[RNODE_HOST_MAX]; /* SWITCH, PROMOTED */
    int port;
};

/* Follow what sentinel k (its place in redis.sentinels) announced: a
 * pause from TRY until PROMOTED, SWITCH or its END (or SENTINEL_PAUSE_MS);
 * the generation raised whenever the node to write to changes. Any
 * thread (the watcher's). */
void sentinel_event(struct sentinel *s, size_t k, const struct sentinel_event *ev);

/* The generation: raised by each announced move (any thread). */
unsigned long long sentinel_generation(const struct sentinel *s);

/* Start the watcher thread (once; later calls do nothing). CB_OK, or
 * CB_ERR when the thread cannot be made (failovers are then followed only
 * through lost connections, READONLY and ROLE). */
int sentinel_watch(struct sentinel *s);

/* Failovers followed, the primary confirmed ("" before the first) and the
 * sentinels watched ("HOST:PORT ...", "" when none), into out. Any
 * thread. */
void sentinel_counters(struct sentinel *s, struct rexec_counters *out);

/* ---------------- Replies ---------------- */

/* SENTINEL get-master-addr-by-name's reply into out: CB_OK with the
 * address, CB_ERR_PROTO with out->err (nil: the master is unknown; an
 * error reply; anything else). */
int sentinel_parse_addr(const redisReply *r, const char *master, struct sentinel_answer *out);

/* ROLE's reply: CB_OK when the node is a master; otherwise CB_ERR_PROTO,
 * with what it is ("slave", "sentinel", the error) in what. */
int sentinel_parse_role(const redisReply *r, char *what, size_t whatlen);

/* A pub/sub message (["message", channel, text] or ["pmessage",
 * pattern, channel, text]) into ev: CB_OK when it is an event above about
 * master. The texts: "+switch-master": "<name> <old-ip> <old-port>
 * <new-ip> <new-port>"; "+promoted-slave": "slave <ip:port> <ip> <port>
 * @ <name> <ip> <port>"; the others: "master <name> <ip> <port> ...".
 * Anything else (another master, a subscription's confirmation, a PING's
 * answer) is CB_ERR_PROTO. */
int sentinel_parse_event(const redisReply *r, const char *master, struct sentinel_event *ev);

/* ---------------- The executor ---------------- */

/* The executor of the primary opts->sentinel_master that the sentinels
 * opts->sentinels name (rexec.h), not connected. NULL when out of memory
 * or when the list is bad. */
struct rexec *sentinel_rexec_new(const struct rexec_opts *opts);

#endif
