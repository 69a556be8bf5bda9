/* watch.h -- the keyspace listener: what other writers do in Redis.
 *
 * The bridge stores its own messages; any other program that writes the
 * seed's schema (store.h, "Other writers") is seen here. A thread of its
 * own, with hiredis connections of its own (never the store's, never
 * Paho), subscribes to Redis keyevent notifications and hands what it saw
 * of the schema's keys to the store worker through a small queue:
 *
 *   incrby on P:R:messages       another writer's INCR    -> WATCH_ROOM
 *   hdel, del on P:R:N           a message hash emptied   -> WATCH_GONE
 *
 * Keyevent channels (__keyevent@0__:incrby, :hdel, :del), not keyspace
 * patterns: Redis then sends nothing for the bridges' own sends, which
 * SET the counter and HSET the message hash. A foreign message whose
 * hash is not complete at its INCR is looked at again by the worker
 * (foreign.c) until it is, within the store's bound.
 *
 * The worker adopts the room (indexes and republishes what is new) or
 * finishes the delete (store_adopt, store_reap); nothing here touches the
 * schema beyond reading it.
 *
 * Notifications are fire and forget: whatever happens while no connection
 * is subscribed is never told. So every (re)connect first subscribes, then
 * walks the room counters (SCAN MATCH P:*:messages) and queues every room
 * as WATCH_SCAN: the reconcile, which finds what was written meanwhile.
 *
 * Where: one node (host:port or a Unix socket); the primary a locator
 * names (Sentinel); or every primary of a Redis Cluster (notifications are
 * per node: each primary tells only about its own keys), re-read every
 * 5 s, all reconnected when the set of primaries changed. Each node needs
 * notify-keyspace-events with E, $, h and g (or E and A): when they are missing
 * the listener adds them with CONFIG SET; when that is refused it says so
 * once through the notify callback and reconciles every 10 s instead.
 *
 * The queue holds WATCH_QUEUE events; a burst beyond it (the worker
 * behind) is not dropped silently: the listener reconnects, which
 * reconciles every room. Errors never stop the thread; it reconnects with
 * backoff, and says what failed through the notify callback (rate-limited
 * to changes), never by printing. */
#ifndef CB_WATCH_H
#define CB_WATCH_H

#include <stddef.h>
#include "names.h"
#include "rexec.h"

#define WATCH_QUEUE 4096

enum watch_kind {
    WATCH_ROOM = 1,       /* something new in room: adopt it */
    WATCH_GONE = 2,       /* message id of room lost fields: reap it */
    WATCH_SCAN = 3        /* room found by a reconcile: adopt it, and
                             republish again what this bridge left
                             unconfirmed */
};

struct watch_event {
    int kind;
    long long id;                     /* WATCH_GONE */
    char room[NAME_MAX_BYTES + 1];
};

struct watch_opts {
    const char *host;
    int port;
    const char *unix_socket;          /* NULL: host and port */
    int cluster;                      /* every primary, keys tagged {room} */
    const char *cluster_nodes;        /* seeds; NULL: host:port */
    const char *username, *password;
    int timeout_ms;
    const char *key_prefix;
    /* NULL, or where the primary is now ("HOST:PORT", 0; -1: unknown):
     * Sentinel's choice, as the store last found it. */
    int (*locate)(void *arg, char *addr, size_t len);
    void *locate_arg;
    rexec_notify_fn *notify;          /* lines for the log; any thread */
    void *notify_arg;
    /* NULL, or called on the listener's thread, no lock held, when an
     * event was queued into an empty queue: wake the taker. */
    void (*on_event)(void *arg);
    void *on_event_arg;
};

struct watch;

/* A listener for these options (copied), not started. NULL on OOM. */
struct watch *watch_new(const struct watch_opts *o);

/* Start its thread. CB_OK or CB_ERR. */
int watch_start(struct watch *w);

/* Move up to max queued events into out, oldest first, without waiting.
 * How many. The store worker's thread. */
size_t watch_take(struct watch *w, struct watch_event *out, size_t max);

/* 1 once the listener is subscribed everywhere and has queued its
 * reconcile (for tests and the status). Any thread. */
int watch_ready(struct watch *w);

/* Stop the thread (within about 200 ms) and free. NULL accepted. */
void watch_free(struct watch *w);

#endif
