/* store.h -- the Redis store: the chat schema, its Lua scripts and what
 * their replies mean. The commands reach Redis through an executor
 * (rexec.h: one node, a Unix socket or a cluster), which the store owns.
 * Knows nothing of MQTT or JSON.
 *
 * Schema, for prefix P (redis.key_prefix), room R, user U, message id N:
 *   P:R:messages         string  the room's counter, from 1: other writers
 *                                INCR it; the send script SETs it to the
 *                                next id (no INCR event: watch.h)
 *   P:R                  hash    U -> N, each user's last message id
 *   P:R:U                hash    N -> text, each user's messages
 *   P:R:N                hash    content, timestamp (Unix seconds, as the
 *                                seed writes it), timestamp_ms (Unix ms),
 *                                user [, client_msg_id] [, edited (Unix
 *                                ms of the last edit)]
 *   P:R:messages:ids     zset    every live id of the room (score = id)
 *   P:R:U:ids            zset    every live id of U in R (score = id)
 *   P:R:messages:dedup   hash    client_msg_id -> id, within the window
 *   P:R:messages:dedup:ts zset   client_msg_id scored by arrival (ms)
 *   P:R:messages:journal:B zset  ids bridge B stored, scored by journal seq,
 *                                until B's checkpoint passes them
 *   P:R:messages:read    hash    U -> the id U has read up to (a read
 *                                marker; sending moves one's own)
 *   P:R:messages:cursor  hash    adoption of other writers' messages: id
 *                                (every id up to it dealt with), waiting
 *                                and since (a half-written id), skipped,
 *                                pending:B (bridge B's first unconfirmed
 *                                republish)
 * The two first sorted sets are indexes for history (O(log n + limit));
 * the last three make a send idempotent: a journal record replayed after a
 * restart, or a client's repeat of a client_msg_id, is not stored twice.
 * The hashes are the seed's layout, unchanged. Retention (count, age) is
 * applied by the send script: the room's oldest messages go from every
 * structure, a few per message stored. Names never contain ':' and
 * user names are never all digits nor "messages", so keys cannot collide.
 *
 * Every write of one message, or of one delete, is one Lua script run
 * (EVALSHA of the SHA1 computed at build time; a node that answers
 * NOSCRIPT is sent the scripts, and what did not run runs again), so a
 * reader never sees half a message. Operations are executed in batches:
 * all the script calls of a batch are pipelined, then their replies read.
 *
 * Other writers. Any program that writes the seed's layout with the
 * seed's five commands (INCR P:R:messages, HSET P:R U N, HSET P:R:U N T,
 * HSET P:R:N content T, HSET P:R:N timestamp SECONDS; no user field, no
 * index) is a member of the chat: store_adopt() walks a room's ids past
 * its cursor and, for each one not in the room index whose hash is
 * complete, finds its author (the user whose hash holds the id), adds
 * the user field, indexes it (room and user) and returns it to be
 * republished. An id whose hash is not complete yet is waited for
 * (STORE_ADOPT_WAIT_MS), then skipped and counted (the cursor's skipped);
 * one with no trace at all (no hash) below the room's newest 64 ids is
 * taken as deleted before adoption, not waited for.
 * Only messages among the room's newest STORE_REPUBLISH_IDS ids and at
 * most STORE_REPUBLISH_AGE_S old are returned for republishing; older
 * ones (a bridge long away, a bulk import) are indexed only. The cursor
 * moves atomically, so with several bridges each message is adopted by
 * one. A delete done the seed's way (HDEL of the user-hash entry, content
 * and timestamp) is finished by store_reap(), which tells whether this
 * call removed it, so that it is announced once.
 *
 * Errors are returned as values; the detail is in store_errstr(). */
#ifndef CB_STORE_H
#define CB_STORE_H

#include <stddef.h>
#include "names.h"
#include "request.h"
#include "result.h"
#include "rexec.h"

struct store;

struct store_opts {
    const char *host;
    int port;
    const char *unix_socket;   /* NULL: host and port; else this path */
    int cluster;               /* 1: Redis Cluster, keys hash-tagged by room */
    const char *cluster_nodes; /* "HOST:PORT ..." seeds; NULL: host:port */
    const char *sentinels;     /* "HOST:PORT ..." of Redis Sentinels: write
                                  to the primary they name (sentinel.h) */
    const char *sentinel_master;   /* the master they monitor */
    const char *sentinel_password; /* Sentinel's own AUTH; NULL: none */
    rexec_notify_fn *notify;   /* lines for the log from the transport's
                                  threads (rexec.h); NULL: none */
    void *notify_arg;
    int wait_replicas;         /* > 0: WAIT for them after a batch that wrote */
    int wait_timeout_ms;
    const char *username;      /* Redis 6 ACL user; NULL: "default" */
    const char *password;      /* NULL: no AUTH */
    const char *key_prefix;
    const char *bridge_id;     /* names this bridge's replay guard (client id) */
    long long dedup_window_ms; /* 0: client_msg_id not de-duplicated */
    long long retain_count;    /* most messages kept per room, 0 = all */
    long long retain_ms;       /* oldest message age kept, 0 = all */
    int timeout_ms;            /* connect, read and write timeout */
};

/* How a send was stored. */
enum store_how {
    STORE_NEW = 0,             /* stored now */
    STORE_REPLAY = 1,          /* this journal record was stored before */
    STORE_DUPLICATE = 2        /* a repeated client_msg_id: the original id */
};

/* One stored message as history returns it. Strings point into the reply
 * held by the operation and live until store_op_clear(). */
struct store_msg {
    long long id;
    const char *user;
    const char *text;
    long long ts;
    const char *client_msg_id;   /* NULL when absent */
    long long edited;            /* Unix ms of the last edit, 0 = never */
};

/* One member of a room, as members returns it (user points into the
 * op's reply). */
struct store_member {
    const char *user;
    long long last_id;           /* their last message, 0 = none */
    long long read;              /* their read marker, 0 = none */
    long long last_seen;         /* Unix ms of their last message or
                                    marker, 0 = unknown */
};

/* One of a user's rooms, as rooms returns it. */
struct store_room {
    char room[NAME_MAX_BYTES + 1];
    long long last_id;           /* the room's counter */
    long long read, unread;      /* the user's marker; the others'
                                    messages above it */
    long long activity;          /* the newest message's ts (Unix ms), 0 */
    struct store_msg last;       /* that message; id 0 when none */
};

#define STORE_ROOMS_MAX 1000     /* a user's rooms: the most recent kept */

/* One operation: a request (request.h) and what the store made of it.
 * The caller sets req and seq; store_exec() fills the outputs. The
 * request's strings are NUL-terminated and valid names (names.h). */
struct store_op {
    const struct request *req;   /* borrowed for the op's life */
    unsigned long long seq;      /* send: the journal record's seq */
    int fresh;                   /* send: 1 when this record was never sent
                                    to Redis (not replayed after a start,
                                    not retried after a failed batch): the
                                    replay guard's lookup is skipped */
    /* outputs */
    int result;                  /* cb_outcome (result.h) */
    long long new_id;            /* send: the id given */
    int how;                     /* send, edit: STORE_NEW, STORE_REPLAY,
                                    STORE_DUPLICATE */
    struct store_msg *msgs;      /* history: newest first; a catch-up
                                    (req->after >= 0): oldest first */
    size_t nmsgs;
    long long next_before;       /* history: 0 when nothing older */
    long long next_after;        /* catch-up: 0 when nothing newer */
    struct store_msg edited;     /* edit: the message as it now stands
                                    (id, text, ts, edited; text in reply) */
    long long read, unread;      /* read: the marker after the request, and
                                    the others' messages above it */
    int moved;                   /* read: 1 when this request moved it */
    struct store_member *members;    /* members: by name */
    size_t nmembers;
    const char *members_next;    /* members: the last name when more
                                    follow, else NULL */
    struct store_room *rooms;    /* rooms: most recently active first */
    size_t nrooms;
    /* private */
    void *reply;
    int step;                    /* 1: the op's second command(s) */
    struct store_room *all;      /* rooms: every room listed ... */
    void **subs;                 /* ... and its room.lua reply */
    size_t nall;
};

/* A store for these options (copied), not yet connected; NULL on OOM. */
struct store *store_new(const struct store_opts *opts);
void store_free(struct store *s);

/* Connect and authenticate, until Redis answers (one node: PING; a
 * cluster: its slot map loaded). CB_OK or CB_ERR_IO. */
int store_connect(struct store *s);
int store_connected(const struct store *s);
void store_disconnect(struct store *s);

/* Execute ops[0..n) in one pipeline, in order. Returns CB_OK when every
 * reply was read (each op's result says how it went; one left CB_PENDING
 * is to be run again), CB_ERR_IO when a connection broke: the ops still
 * CB_PENDING may or may not have been applied, and the store must be
 * reconnected; CB_ERR_OOM when out of memory. Ops already holding a
 * result are skipped, so a batch can be passed again after reconnecting. */
int store_exec(struct store *s, struct store_op *ops, size_t n);

/* The journal checkpoint: sends pass it on so the replay guard can forget
 * what can no longer be replayed. */
void store_set_checkpoint(struct store *s, unsigned long long seq);

/* Release what store_exec attached to op (history results) and reset its
 * outputs. */
void store_op_clear(struct store_op *op);

/* ---- Other writers ---- */

#define STORE_ADOPT_WAIT_MS 2000    /* wait for a half-written message */
#define STORE_ADOPT_WALK 256        /* ids walked per adopt.lua call */
#define STORE_REPUBLISH_IDS 10000   /* republish among a room's newest ids */
#define STORE_REPUBLISH_AGE_S 600   /* ... written at most this long ago */

enum store_adopt_state {
    STORE_ADOPT_DONE = 0,           /* the room is caught up */
    STORE_ADOPT_MORE = 1,           /* more ids to walk: call again */
    STORE_ADOPT_WAITING = 2         /* an id is half-written: call again later */
};

/* One room to adopt. The caller sets room and redo; store_adopt() sets
 * the rest, which store_adopt_clear() releases. */
struct store_adopt {
    const char *room;            /* borrowed */
    int redo;                    /* 1: first return again what this bridge
                                    adopted and never confirmed (a restart) */
    /* outputs */
    int result;                  /* cb_outcome: CB_DONE, CB_RETRY, CB_FAILED */
    int state;                   /* enum store_adopt_state */
    long long skipped;           /* ids given up as never completed */
    struct store_msg *msgs;      /* to republish, oldest first; strings
                                    point into reply */
    size_t nmsgs;
    void *reply;                 /* private */
};

/* Adopt the rooms a[0..n), pipelined; now_ms is the wall clock. CB_OK
 * when every room has a result, else CB_ERR_IO (reconnect) or CB_ERR_OOM.
 * What a call returned is claimed by this bridge until store_reap()
 * confirms the room (id 0): the broker then has the republishes. */
int store_adopt(struct store *s, struct store_adopt *a, size_t n, long long now_ms);
void store_adopt_clear(struct store_adopt *a);

/* One indexed message another writer deleted (id > 0), or, with id 0,
 * the confirmation that this bridge's republishes of room reached the
 * broker. */
struct store_reap {
    const char *room;            /* borrowed */
    long long id;
    /* outputs */
    int result;                  /* CB_DONE, CB_RETRY, CB_FAILED */
    int reaped;                  /* 1: this call removed it: announce it */
};

/* Run r[0..n), pipelined. Returns as store_adopt(). */
int store_reap(struct store *s, struct store_reap *r, size_t n);

/* The last error, for the log. */
const char *store_errstr(const struct store *s);

/* Where the store connects: "HOST:PORT" or the Unix socket's path (in
 * cluster mode, the seeds; with Sentinel, the primary last located). The
 * store worker's thread only. */
const char *store_address(const struct store *s);

/* Counters since the start, and where writes go; any thread. */
struct store_counters {
    unsigned long long moved, ask;   /* cluster mode: -MOVED, -ASK answers */
    unsigned long long wait_short;   /* WAITs that saw fewer replicas than
                                        redis.wait_replicas in time */
    unsigned long long failovers;    /* Sentinel: moves to another primary */
    char primary[REXEC_ADDR_MAX];    /* the node written to ("" unknown,
                                        or a cluster) */
    char watching[REXEC_ADDR_MAX];   /* Sentinel: the sentinels followed */
};
void store_counters(const struct store *s, struct store_counters *out);

#endif
