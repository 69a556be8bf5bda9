/* stats.c -- log-linear latency histograms (see stats.h). */
#include "stats.h"

/* Bucket of a duration: 4 sub-buckets per power of two from 4 up (buckets
 * 8 and above); values below 4 have buckets 0..3 of their own. */
static unsigned bucket_of(uint64_t v) {
    if (v < 4) return (unsigned)v;
    unsigned log2 = 63u - (unsigned)__builtin_clzll(v);
    unsigned sub = (unsigned)(v >> (log2 - 2)) & 3u;
    unsigned b = log2 * 4 + sub;
    return b < STATS_BUCKETS ? b : STATS_BUCKETS - 1;
}

/* The upper bound of a bucket, in microseconds: a percentile is reported
 * as the bucket's top, never under the truth. */
static double bucket_top(unsigned b) {
    if (b < 8) return b < 4 ? b : 3;     /* 4..7 are never used */
    unsigned log2 = b / 4, sub = b % 4;
    return (double)((4ull + sub + 1) << (log2 - 2)) - 1;
}

void stats_hist_add(struct stats_hist *h, uint64_t usec) {
    __atomic_add_fetch(&h->count[bucket_of(usec)], 1, __ATOMIC_RELAXED);
}

void stats_hist_percentiles(const struct stats_hist *h, const double *p,
                            double *out, size_t n) {
    uint64_t snap[STATS_BUCKETS], total = 0;
    for (unsigned b = 0; b < STATS_BUCKETS; b++) {
        snap[b] = __atomic_load_n(&h->count[b], __ATOMIC_RELAXED);
        total += snap[b];
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t want = (uint64_t)(p[i] * (double)total + 0.5), seen = 0;
        if (want == 0 && total) want = 1;
        out[i] = 0;
        for (unsigned b = 0; b < STATS_BUCKETS && total; b++) {
            seen += snap[b];
            if (seen >= want) {
                out[i] = bucket_top(b) / 1000.0;
                break;
            }
        }
    }
}
