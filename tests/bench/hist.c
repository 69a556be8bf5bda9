/* hist.c -- time helpers and the latency histogram (see bench.h).
 *
 * Log-linear buckets: values below 2*HIST_SUB ns exactly, above that
 * HIST_SUB buckets per power of two, so a percentile is within 1/128 of the
 * true value. Fixed size, no allocation; the maximum is kept exactly. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "bench.h"

volatile sig_atomic_t bench_interrupted;

/* CLOCK_MONOTONIC in nanoseconds. */
long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Sleep until an absolute CLOCK_MONOTONIC time in ns. */
void sleep_until_ns(long long t) {
    struct timespec ts = { (time_t)(t / 1000000000LL), (long)(t % 1000000000LL) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR &&
           !bench_interrupted)
        ;
}

/* Empty the histogram. */
void hist_reset(struct hist *h) {
    memset(h, 0, sizeof(*h));
}

/* Bucket of a value: exact below 2*HIST_SUB, then the top HIST_SUB_BITS+1
 * bits of the value select the bucket within its power of two. */
static int hist_index(uint64_t v) {
    if (v < 2 * HIST_SUB) return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - HIST_SUB_BITS;
    return (shift + 1) * HIST_SUB + (int)((v >> shift) - HIST_SUB);
}

/* The middle of a bucket's range. */
static uint64_t hist_value(int idx) {
    if (idx < 2 * HIST_SUB) return (uint64_t)idx;
    int shift = idx / HIST_SUB - 1;
    uint64_t low = (uint64_t)(idx % HIST_SUB + HIST_SUB) << shift;
    return low + ((1ULL << shift) >> 1);
}

/* Count one value (ns); negatives count as 0. */
void hist_add(struct hist *h, long long ns) {
    uint64_t v = ns > 0 ? (uint64_t)ns : 0;
    h->b[hist_index(v)]++;
    h->count++;
    if (v > h->max) h->max = v;
}

/* The value at quantile q: the middle of the bucket holding that rank,
 * never above the exact maximum. */
long long hist_quantile(const struct hist *h, double q) {
    if (h->count == 0) return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    uint64_t seen = 0;
    if (rank < 1) rank = 1;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);
            return (long long)(v > h->max ? h->max : v);
        }
    }
    return (long long)h->max;
}

/* p50, p99, p99.9 and max in milliseconds. */
void hist_summary(const struct hist *h, struct lat_summary *s) {
    s->n = (long long)h->count;
    s->p50 = (double)hist_quantile(h, 0.50) / 1e6;
    s->p99 = (double)hist_quantile(h, 0.99) / 1e6;
    s->p999 = (double)hist_quantile(h, 0.999) / 1e6;
    s->max = (double)h->max / 1e6;
}
