/* bridge.h -- the chat bridge itself: the only module that knows both the
 * MQTT side and the store, and wires them through the queue.
 *
 *   Paho thread:   message -> topic_parse -> codec_decode -> queue_push
 *                  (refusals are answered at once; nothing waits on Redis)
 *   store worker:  queue_pop_batch -> store_exec (one pipeline per batch)
 *                  -> republish on <prefix>/<room>/msgs, reply, free
 *
 * The main thread only starts, ticks and stops it. */
#ifndef CB_BRIDGE_H
#define CB_BRIDGE_H

#include <stddef.h>
#include "config.h"

struct bridge;

/* Counters, read with bridge_stats(). */
struct bridge_stats {
    unsigned long received;     /* messages handed over by the broker */
    unsigned long stored;       /* chat messages stored */
    unsigned long republished;  /* stored messages published on .../msgs */
    unsigned long replies;      /* replies published */
    unsigned long rejected;     /* requests refused (bad topic or payload) */
    unsigned long history;      /* history requests answered */
    unsigned long deleted;      /* messages deleted */
    unsigned long redis_retries;/* batches retried after a Redis failure */
    unsigned long publish_errors; /* publishes Paho refused */
    unsigned long lost;         /* accepted requests given up at shutdown */
    size_t queued;              /* requests waiting for the store worker */
    int mqtt_ready;
    int redis_connected;
};

/* A bridge for cfg (copied where needed; cfg must outlive the bridge).
 * NULL with the reason in err when something cannot be created. */
struct bridge *bridge_new(const struct config *cfg, char *err, size_t errlen);

/* Start the store worker and begin connecting to the broker. 0 or -1. */
int bridge_start(struct bridge *b, char *err, size_t errlen);

/* Periodic work for the main loop (about every 100 ms). */
void bridge_tick(struct bridge *b);

/* Stop taking messages, let the worker finish what is queued (giving up
 * on Redis after timeout_ms), flush publishes, disconnect. */
void bridge_stop(struct bridge *b, int timeout_ms);
void bridge_free(struct bridge *b);

void bridge_stats(struct bridge *b, struct bridge_stats *out);

#endif
