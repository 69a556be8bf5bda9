/* status.h -- the bridge's status document, published retained on the
 * status topic: connection states, journal, counts and latencies, as JSON.
 * Pure functions of the configuration and a stats snapshot. */
#ifndef CB_STATUS_H
#define CB_STATUS_H

#include <stddef.h>
#include "config.h"
#include "stats.h"

/* The status document for st; malloc'd, NULL when out of memory.
 * online = 0 gives the document published as the bridge leaves. */
char *status_doc(const struct config *cfg, const struct stats_snapshot *st,
                 int online, size_t *len);

/* The last will: {"version":1,"client_id":..,"online":false}; malloc'd. */
char *status_offline_doc(const struct config *cfg, size_t *len);

#endif
