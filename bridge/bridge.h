/* bridge.h -- the chat bridge itself: the only module that knows both the
 * MQTT side and the store, and wires them through the journal.
 *
 *   Paho thread:   message -> topic_parse -> codec_decode -> journal_append
 *                  (refusals are answered at once; nothing waits on Redis)
 *   store worker:  journal_read -> store_exec (one pipeline per batch)
 *                  -> outbox (republish on <prefix>/<room>/msgs, replies)
 *   publisher:     outbox -> Paho
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
    unsigned long replayed;     /* journal records found already stored */
    unsigned long duplicates;   /* repeated client_msg_id, not stored again */
    unsigned long republished;  /* stored messages published on .../msgs */
    unsigned long replies;      /* replies published */
    unsigned long rejected;     /* requests refused (bad topic or payload) */
    unsigned long history;      /* history requests answered */
    unsigned long deleted;      /* messages deleted */
    unsigned long redis_retries;/* batches retried after a Redis failure */
    unsigned long publish_errors; /* publishes Paho refused */
    unsigned long lost;         /* acknowledged but not journaled (journal
                                   closed at shutdown): should stay 0 */
    unsigned long long journal_bytes;    /* on disk */
    unsigned long long journal_unstored; /* not yet stored in Redis */
    unsigned long long journal_max;      /* journal.max_bytes */
    size_t outbox;              /* publishes waiting for Paho */
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

/* Store what the journal holds (giving up on Redis after timeout_ms),
 * flush publishes, disconnect; the rest stays in the journal. */
void bridge_stop(struct bridge *b, int timeout_ms);
void bridge_free(struct bridge *b);

void bridge_stats(struct bridge *b, struct bridge_stats *out);

#endif
