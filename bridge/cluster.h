/* cluster.h -- Redis Cluster slot routing over hiredis 0.14, and the
 * cluster's executor (rexec.h).
 *
 * hiredis 0.14 speaks to one server; this module routes commands to the
 * primaries of a Redis Cluster, and does nothing more: no replica reads,
 * no cluster management.
 *
 *  - A key's slot is CRC16 (XMODEM) of its hash tag, or of the whole key,
 *    modulo 16384 (cluster_keyslot). The caller gives the slot of each
 *    command: every key a command names must be in that slot, which a
 *    common hash tag guarantees (chatroom:{lobby}:messages).
 *  - The slot map (slot -> primary) comes from CLUSTER SLOTS, asked of the
 *    known primaries, then of the seeds, in turn (cluster_refresh). It is
 *    loaded by the first cluster_exec when nobody loaded it before.
 *  - One connection per primary, opened (rnode_open: timeout, AUTH) when a
 *    command first goes there, kept across refreshes while the node stays
 *    a primary, closed when it does not.
 *  - cluster_exec runs a batch of rexec_cmd: the commands are grouped by
 *    node and pipelined, every node's pipeline is sent before any reply is
 *    read, and the replies are given back to their commands. A -MOVED
 *    answer updates the map, marks it stale (reloaded at most once per
 *    batch) and sends the command again to the new owner; an -ASK answer
 *    sends ASKING and the command to the node named, the map unchanged. At
 *    most max_redirects redirections per command.
 *  - cluster_rexec_new makes the executor that runs batches this way; its
 *    "nodes" are the distinct primaries the map gives for the slots.
 *
 * Results are those of result.h: a function returns CB_OK or a cb_status,
 * a command's outcome is CB_PENDING, CB_DONE or CB_RETRY (rexec.h). The
 * detail of an error is in cluster_errstr(), never printed. A context
 * belongs to one thread; cluster_get_stats() may be called from any
 * thread. */
#ifndef CB_CLUSTER_H
#define CB_CLUSTER_H

#include <stddef.h>
#include <hiredis/hiredis.h>
#include "rexec.h"

#define CLUSTER_SLOTS 16384
#define CLUSTER_MAX_REDIRECTS 5

struct cluster;

struct cluster_opts {
    const char *const *seeds;  /* node lists (rnode_parse_list): "HOST:PORT"
                                * words, "[V6]:PORT" too, separated by
                                * spaces or commas */
    size_t nseeds;             /* at least 1 */
    const char *username;      /* Redis 6 ACL user; NULL: "default" */
    const char *password;      /* NULL: no AUTH */
    int timeout_ms;            /* connect, read and write, per node; 0: 5000 */
    int max_redirects;         /* per command and batch; 0: CLUSTER_MAX_REDIRECTS */
};

/* Counters since cluster_new(); read with cluster_get_stats(). */
struct cluster_stats {
    unsigned long long moved;      /* -MOVED answers */
    unsigned long long ask;        /* -ASK answers */
    unsigned long long retry;      /* -TRYAGAIN and -CLUSTERDOWN answers */
    unsigned long long refreshes;  /* slot maps loaded */
    unsigned long long connects;   /* node connections opened */
};

/* ---------------- The executor ---------------- */

/* The executor of a cluster (rexec.h) for opts' cluster_nodes, or
 * host:port when there are none. Connecting loads the slot map; a batch
 * that loses a node disconnects it all, so that the next connect reloads
 * the map. NULL when out of memory or a seed is not HOST:PORT. */
struct rexec *cluster_rexec_new(const struct rexec_opts *opts);

/* ---------------- The context ---------------- */

/* A context for these options (copied), nothing connected yet. NULL when
 * out of memory, or when there is no seed or a seed is not HOST:PORT
 * (check them first with rnode_parse_list). */
struct cluster *cluster_new(const struct cluster_opts *opts);

/* Close every connection and free the context. NULL is accepted. */
void cluster_free(struct cluster *c);

/* Close every node connection; the map is kept but marked stale, so the
 * next batch reloads it. */
void cluster_disconnect(struct cluster *c);

/* Load the slot map now: CLUSTER SLOTS of the connected primaries, then
 * of the seeds, then of the other nodes known, until one answers.
 * CB_OK, or CB_ERR_IO when none could be reached, CB_ERR_PROTO when none
 * gave a usable map, CB_ERR_OOM. */
int cluster_refresh(struct cluster *c);

/* ---------------- Batches ---------------- */

/* Run every command of cmds[0..n) that is CB_PENDING, pipelined per node;
 * commands with another result are skipped, so a batch can be passed
 * again after an I/O error. Commands are sent in their order in cmds; one
 * that is redirected is sent again after those of its round that were
 * not. Returns CB_OK when every command has a reply (CB_DONE) or is to be
 * retried (CB_RETRY), or CB_ERR_IO when some are still CB_PENDING: their
 * node could not be reached or its connection failed, and was dropped
 * and the map marked stale; the other commands went through. */
int cluster_exec(struct cluster *c, struct rexec_cmd *cmds, size_t n);

/* ---------------- Information ---------------- */

/* The slot of a key: CRC16 of its hash tag (the bytes between the first
 * '{' and the first '}' after it, when there is at least one), else of
 * the whole key, modulo 16384. */
unsigned cluster_keyslot(const char *key, size_t len);

/* "HOST:PORT" of the primary the map gives for slot, NULL when none.
 * Valid until the next call on c. */
const char *cluster_slot_addr(const struct cluster *c, unsigned slot);

/* The counters; any thread. */
void cluster_get_stats(const struct cluster *c, struct cluster_stats *out);

/* The last error, for the log. */
const char *cluster_errstr(const struct cluster *c);

/* ---------------- Parsers, public for the tests ---------------- */

enum cluster_redirect { CLUSTER_NO_REDIRECT = 0, CLUSTER_MOVED = 1, CLUSTER_ASK = 2 };

/* Parse an error reply's text: "MOVED <slot> <host>:<port>" or "ASK
 * <slot> <host>:<port>". Returns CLUSTER_MOVED or CLUSTER_ASK with *slot
 * and addr ("HOST:PORT") set, or CLUSTER_NO_REDIRECT for any other text,
 * a malformed one included. */
int cluster_parse_redirect(const char *err, unsigned *slot, char *addr,
                           size_t addrlen);

/* Install the map of a CLUSTER SLOTS reply that node 'from' ("HOST:PORT")
 * gave, as cluster_refresh does: an empty address in it means 'from'.
 * Connections to nodes still primaries are kept, the others closed.
 * CB_OK, CB_ERR_PROTO (map unchanged) or CB_ERR_OOM. */
int cluster_load_slots(struct cluster *c, const redisReply *r, const char *from);

#endif
