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
#include "codec.h"
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
    unsigned long rejected_by[CODEC_ERR_COUNT]; /* the same, by error code */
    unsigned long reply_refused;/* dropped: their reply topic was refused */
    unsigned long history;      /* history requests answered */
    unsigned long deleted;      /* messages deleted */
    unsigned long redis_retries;/* batches retried after a Redis failure */
    unsigned long long redis_moved, redis_ask; /* cluster redirections */
    unsigned long long redis_wait_short; /* WAIT saw too few replicas */
    unsigned long publish_errors; /* publishes Paho refused */
    unsigned long lost;         /* acknowledged but not journaled (journal
                                   closed at shutdown): should stay 0 */
    unsigned long long journal_bytes;    /* on disk */
    unsigned long long journal_unstored; /* not yet stored in Redis */
    unsigned long long journal_max;      /* journal.max_bytes */
    size_t outbox;              /* publishes waiting for Paho */
    double store_ms[3];         /* store round trip per batch: p50, p99, max */
    double e2e_ms[3];           /* arrival to republish handed over: same */
    long uptime_s;
    int mqtt_ready;
    int redis_connected;
    char instance[96];          /* this process: "host:pid:start" */
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

/* Apply the options a reload may change in place (limits, intervals). */
void bridge_set_live(struct bridge *b, const struct config *cfg);

/* The status document (JSON) for these stats; malloc'd, NULL when out of
 * memory. online = 0 gives the document published as the bridge leaves. */
char *bridge_status_doc(const struct config *cfg, const struct bridge_stats *st,
                        int online, size_t *len);

/* The last will: {"version":1,"client_id":..,"online":false}; malloc'd. */
char *bridge_offline_doc(const struct config *cfg, size_t *len);

#endif
