/* stats.h -- latency histograms.
 *
 * A histogram counts durations in microseconds in log-linear buckets (four
 * per power of two, so a percentile is known within 19%), with atomic
 * counters: any thread records, any thread reads. The status document is
 * percentiles go into the bridge's status document. */
#ifndef CB_STATS_H
#define CB_STATS_H

#include <stddef.h>
#include <stdint.h>

#define STATS_BUCKETS (64 * 4)

struct stats_hist {
    uint64_t count[STATS_BUCKETS];
};

/* Count one duration. */
void stats_hist_add(struct stats_hist *h, uint64_t usec);

/* Percentiles of everything counted so far. p[] in [0, 1]; out[] in
 * milliseconds (0 when nothing was counted). */
void stats_hist_percentiles(const struct stats_hist *h, const double *p,
                            double *out, size_t n);

#endif
