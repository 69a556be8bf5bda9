/* delivery.h -- the way out: publishes from the store worker to the
 * broker, in order, and the journal checkpoint that waits for them.
 *
 * Why a thread of its own: Paho calls messageArrived with its global lock
 * held, and that callback may wait for journal space (the backpressure, or
 * a full disk). A QoS 1 publish from any other thread takes the same lock.
 * If the store worker published itself, a full journal would deadlock it:
 * the callback waits for the worker, the worker for the lock. So the
 * worker only queues here and never waits on the broker client; the
 * delivery thread hands the queue to the injected publish function.
 *
 *   queue     unbounded; the worker keeps it short with delivery_wait_room,
 *             which it leaves at once when its 'hold' predicate says the
 *             inbound side needs it (an append waiting for the journal).
 *   window    at most opts.window publishes handed over and not completed,
 *             and at most opts.limit() (the broker's Receive Maximum):
 *             Paho queues publishes beyond it and drains that queue
 *             slowly; completions let the next ones go at once.
 *   tickets   one per batch of journal records: its publishes plus the
 *             worker's own hold. Tickets complete in any order; the
 *             checkpoint moves over the completed prefix, through the
 *             injected checkpoint function.
 *   failures  a publish the client took and then gave up (done with
 *             ok = 0) is handed over again, its ticket open meanwhile; it
 *             then leaves after publishes queued behind it (the only case
 *             where a room's order is not kept). Once closing it is not:
 *             its ticket stays open for good, so the checkpoint stays
 *             before it and the next start publishes it again. So does a
 *             publish that finds no room (broker gone) when closing, and
 *             one that could not be queued for want of memory. A publish
 *             the client refuses at once and for good is counted and
 *             dropped: it would be refused forever.
 *
 * Threads: any thread puts (Paho's callback answers refusals through
 * here); one worker uses tickets and delivery_wait_room; completions come
 * on any thread. Nothing here waits on the broker but the delivery thread. */
#ifndef CB_DELIVERY_H
#define CB_DELIVERY_H

#include <stddef.h>
#include <stdint.h>
#include "result.h"

/* One publish. Fields are read-only for the publish function. */
struct delivery_msg {
    struct delivery_msg *next;
    char *topic;
    char *payload;
    size_t len;
    char *corr;                 /* MQTT 5 correlation data, NULL if none */
    size_t corr_len;
    int retain;
    struct delivery_ticket *ticket;
};

struct delivery_opts {
    int window;                 /* publishes in flight at once, >= 1 */
    size_t queue_limit;         /* delivery_wait_room waits above this */
    int retry_ms;               /* between tries of a publish refused for
                                   now; 0: 50 */
    /* Hand m to the broker client. CB_OK: done->fn runs once later.
     * CB_ERR_FULL: not now (disconnected, buffer full), try again. Any
     * other value: refused for good, done is not called. */
    int (*publish)(void *arg, const struct delivery_msg *m, struct cb_done *done);
    /* Everything up to seq is stored and its publishes completed. Called
     * by delivery_checkpoint's caller's thread, one call at a time. */
    void (*checkpoint)(void *arg, uint64_t seq);
    /* NULL, or how many publishes the client takes at once now (the
     * broker's Receive Maximum: Paho queues beyond it and drains that
     * queue slowly); 0 or more than window: window. Read before each
     * publish, so it may change while running. */
    int (*limit)(void *arg);
    void *arg;
};

/* Counters since delivery_new; any thread. */
struct delivery_stats {
    unsigned long long published;  /* handed to the publish function */
    unsigned long long completed;  /* ... and done with ok = 1 */
    unsigned long long retried;    /* done with ok = 0, handed over again */
    unsigned long long refused;    /* refused for good, dropped */
    unsigned long long left;       /* closing: left for the next start */
    size_t queued;                 /* waiting for the delivery thread */
    size_t in_flight;              /* handed over, not completed */
};

struct delivery;
struct delivery_ticket;

/* A delivery for these options (copied); its thread not started. NULL
 * when out of memory or window < 1. */
struct delivery *delivery_new(const struct delivery_opts *o);

/* Start the delivery thread. CB_OK or CB_ERR. */
int delivery_start(struct delivery *d);

/* Queue a publish of payload (owned from now on, even on failure) to
 * topic, counted by ticket t when not NULL. Never waits. CB_OK,
 * CB_ERR_OOM (t then stays open: the next start publishes it again), or
 * CB_ERR_CLOSED after delivery_close. */
int delivery_put(struct delivery *d, struct delivery_ticket *t, const char *topic,
                 char *payload, size_t len, const char *corr, size_t corr_len,
                 int retain);

/* While on, puts queue without waking the delivery thread; turning it
 * off wakes it once for all of them. The worker brackets a batch's
 * publishes with it: one wake a batch instead of one a publish. */
void delivery_defer(struct delivery *d, int on);

/* A ticket for the batch of journal records ending at seq, held by the
 * caller until delivery_ticket_release. Tickets must be made in seq
 * order. NULL when out of memory: try again (publishing the batch without
 * one would let the checkpoint pass it before its publishes completed). */
struct delivery_ticket *delivery_ticket_new(struct delivery *d, uint64_t seq);

/* Release the caller's hold on t (NULL is accepted) and move the
 * checkpoint over what completed. */
void delivery_ticket_release(struct delivery *d, struct delivery_ticket *t);

/* Move the checkpoint over every completed ticket at the head. */
void delivery_checkpoint(struct delivery *d);

/* Wait while more than queue_limit publishes are queued, unless hold(arg)
 * is true (hold may be NULL) or the delivery is closing. hold is checked
 * again at every delivery_wake. */
void delivery_wait_room(struct delivery *d, int (*hold)(void *), void *arg);

/* Make delivery_wait_room check its hold now (something it depends on
 * changed). Any thread; must not be called holding a lock that hold()
 * takes. */
void delivery_wake(struct delivery *d);

/* No more puts: the thread hands over what is queued, as long as the
 * window has room within timeout_ms, and ends; what is left, and failures
 * from now on, are left for the next start. Then wait, within the same
 * timeout_ms, for every publish handed over to complete. 1 when all did,
 * else 0. */
int delivery_close(struct delivery *d, int timeout_ms);

void delivery_get_stats(struct delivery *d, struct delivery_stats *out);

/* Stop (as delivery_close(d, 0) if needed) and free what is left. */
void delivery_free(struct delivery *d);

#endif
