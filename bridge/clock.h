/* clock.h -- the bridge's one clock helper.
 *
 * Wall time (CLOCK_REALTIME) is for what leaves the process: message
 * timestamps, log lines. Durations and deadlines are monotonic, and so are
 * condition variables' deadlines: every condition variable of the bridge
 * is made with clock_cond_init(), so a wall clock set back never stretches
 * a wait. */
#ifndef CB_CLOCK_H
#define CB_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Unix time in milliseconds, and in microseconds (wall clock). */
long long clock_wall_ms(void);
uint64_t clock_wall_us(void);

/* A monotonic time in microseconds, for durations. */
uint64_t clock_mono_us(void);

/* The monotonic instant ms milliseconds from now (nanoseconds carried
 * into seconds), for clock_cond_wait and clock_passed. */
struct timespec clock_deadline(long ms);

/* 1 once the monotonic clock has reached t. */
int clock_passed(const struct timespec *t);

/* Sleep ms milliseconds (whole, even when interrupted by a signal). */
void clock_sleep_ms(long ms);

/* A condition variable waited on with monotonic deadlines. 0 or errno. */
int clock_cond_init(pthread_cond_t *c);

/* pthread_cond_timedwait until the monotonic deadline t (a cond made by
 * clock_cond_init). 1 when the deadline has passed, else 0. */
int clock_cond_wait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *t);

#endif
