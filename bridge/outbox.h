/* outbox.h -- publishes on their way from the store worker to the broker.
 *
 * Why it exists: Paho calls messageArrived with its global lock held, and
 * the callback blocks while the journal is full (that is the
 * backpressure). A QoS 1 publish from any other thread takes that same
 * lock. If the store worker published itself, a full journal would
 * deadlock it: the callback waits for the worker, the worker for the lock.
 * So the worker only appends here, never waiting on Paho, and a publisher
 * thread drains the outbox into Paho, in order.
 *
 * The outbox is a list without a hard bound; the worker keeps it short with
 * outbox_wait_below(), a wait it gives up whenever the inbound side needs
 * the worker to move. */
#ifndef CB_OUTBOX_H
#define CB_OUTBOX_H

#include <stddef.h>

/* One publish. outbox_msg_new() makes it in one allocation with the topic
 * and correlation data; the payload is taken over and freed with it. */
struct outbox_msg {
    struct outbox_msg *next;
    char *topic;
    char *payload;
    size_t len;
    char *corr;               /* MQTT 5 correlation data, NULL if none */
    size_t corr_len;
    void *tag;                /* the caller's, e.g. what to tell when sent */
    int retain;               /* 0 unless set after outbox_msg_new() */
};

struct outbox;

struct outbox *outbox_new(void);
void outbox_free(struct outbox *o);      /* frees messages still queued */

/* A message for topic carrying payload (owned from now on, even on
 * failure). NULL when out of memory. */
struct outbox_msg *outbox_msg_new(const char *topic, char *payload, size_t len,
                                  const char *corr, size_t corr_len, void *tag);
void outbox_msg_free(struct outbox_msg *m);

/* Append; never waits. */
void outbox_put(struct outbox *o, struct outbox_msg *m);

/* Take every queued message, oldest first, waiting up to timeout_ms for
 * the first. NULL on timeout, or when closed and empty. */
struct outbox_msg *outbox_take_all(struct outbox *o, int timeout_ms);

/* Wait up to timeout_ms for the outbox to hold at most 'level' messages.
 * Returns 1 when it does. */
int outbox_wait_below(struct outbox *o, size_t level, int timeout_ms);

size_t outbox_len(struct outbox *o);

/* No more puts will come: outbox_take_all returns NULL once empty. */
void outbox_close(struct outbox *o);
int outbox_closed(struct outbox *o);

#endif
