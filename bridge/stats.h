/* stats.h -- the bridge's counters and latency histograms.
 *
 * A histogram counts durations in microseconds in log-linear buckets (four
 * per power of two, so a percentile is known within 19%), with atomic
 * counters: any thread records, any thread reads. A stats_snapshot is
 * what the status document (status.h) says: counters, journal and
 * delivery figures, and the histograms' percentiles. */
#ifndef CB_STATS_H
#define CB_STATS_H

#include <stddef.h>
#include <stdint.h>
#include "codec.h"

#define STATS_BUCKETS (64 * 4)
#define STATS_ADDR_MAX 300          /* an address, as rexec.h writes it */

struct stats_hist {
    uint64_t count[STATS_BUCKETS];
};

/* Count one duration. */
void stats_hist_add(struct stats_hist *h, uint64_t usec);

/* Percentiles of everything counted so far. p[] in [0, 1]; out[] in
 * milliseconds (0 when nothing was counted). */
void stats_hist_percentiles(const struct stats_hist *h, const double *p,
                            double *out, size_t n);

/* What the bridge counted, at one moment: the status document's content
 * (status.h). Filled by bridge_stats(). */
struct stats_snapshot {
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
    unsigned long edited;       /* messages edited */
    unsigned long read_markers; /* read markers that moved */
    unsigned long receipts;     /* read receipts published to the rooms */
    unsigned long redis_retries;/* batches retried after a Redis failure */
    unsigned long long redis_moved, redis_ask; /* cluster redirections */
    unsigned long long redis_wait_short; /* WAIT saw too few replicas */
    unsigned long long redis_failovers;  /* Sentinel: moves to another primary */
    char redis_primary[STATS_ADDR_MAX];  /* where writes go ("": unknown, or
                                            a cluster) */
    char redis_sentinel[STATS_ADDR_MAX]; /* Sentinel: the sentinels whose
                                            failover events are followed,
                                            "HOST:PORT ..." ("": none) */
    unsigned long publish_errors; /* publishes Paho refused, or left for
                                   the next start at a stop */
    unsigned long lost;         /* acknowledged but not journaled (journal
                                   closed at shutdown): should stay 0 */
    unsigned long long journal_bytes;    /* on disk */
    unsigned long long journal_unstored; /* not yet stored in Redis */
    unsigned long long journal_max;      /* journal.max_bytes */
    unsigned long long journal_released_early; /* freed on a full disk
                                   before their republish was acknowledged */
    int journal_disk_full;      /* the journal's disk is full now */
    size_t outbox;              /* publishes queued for the delivery */
    double store_ms[3];         /* store round trip per batch: p50, p99, max */
    double e2e_ms[3];           /* arrival to republish handed over: same */
    long uptime_s;
    int mqtt_ready;
    int redis_connected;
    char instance[96];          /* this process: "host:pid:start" */
};

#endif
