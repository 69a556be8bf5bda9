/* bridge.h -- the chat bridge itself: the only module that knows both the
 * MQTT side and the store, and wires them through the journal.
 *
 *   Paho thread:   message -> topic_parse -> codec_decode -> journal_append
 *                  (refusals are answered at once; nothing waits on Redis)
 *   store worker:  journal_read -> store_exec (one pipeline per batch)
 *                  -> delivery (republish on <prefix>/<room>/msgs, replies)
 *   delivery:      its own thread: queue -> Paho, in order; the journal
 *                  checkpoint follows the broker's acknowledgements
 *
 * The main thread only starts, ticks and stops it. */
#ifndef CB_BRIDGE_H
#define CB_BRIDGE_H

#include <stddef.h>
#include "config.h"
#include "stats.h"

struct bridge;

/* A bridge for cfg (copied where needed; cfg must outlive the bridge).
 * NULL with the reason in err when something cannot be created. */
struct bridge *bridge_new(const struct config *cfg, char *err, size_t errlen);

/* Start the store worker and begin connecting to the broker. 0 or -1. */
int bridge_start(struct bridge *b, char *err, size_t errlen);

/* Periodic work for the main loop (about every 100 ms). */
void bridge_tick(struct bridge *b);

/* Store what the journal holds (giving up on Redis after timeout_ms),
 * flush publishes, disconnect; the rest stays in the journal. CB_OK, or
 * CB_ERR_FULL when Paho's callback is stuck on a full disk: the caller
 * must then end the process without bridge_free (see bridge.c). */
int bridge_stop(struct bridge *b, int timeout_ms);
void bridge_free(struct bridge *b);

/* The counters and latencies now (stats.h), for the status document. */
void bridge_stats(struct bridge *b, struct stats_snapshot *out);

/* Apply the options a reload may change in place (limits, intervals). */
void bridge_set_live(struct bridge *b, const struct config *cfg);

#endif
