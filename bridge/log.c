/* log.c -- logging to stderr, for a terminal or for journald.
 *
 * Under systemd (JOURNAL_STREAM set, or -j) each line starts with "<N>",
 * the syslog priority journald understands; on a terminal it starts with a
 * local timestamp. One fprintf per line keeps lines whole across threads. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

#include "clock.h"
#include "log.h"

static int log_level = LOG_LEVEL_INFO;
static int log_journal;
static pthread_mutex_t log_rl_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "error", "warn", "info", "debug" };
static const int level_syslog[] = { 3, 4, 6, 7 };

/* ==================== Setup ==================== */

void log_init(int level, int journal) {
    log_level = level;
    log_journal = journal;
}

void log_set_level(int level) {
    __atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

int log_get_level(void) {
    return __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

int log_level_parse(const char *name) {
    for (int i = 0; i <= LOG_LEVEL_DEBUG; i++)
        if (strcmp(name, level_names[i]) == 0) return i;
    return -1;
}

const char *log_level_name(int level) {
    if (level < 0 || level > LOG_LEVEL_DEBUG) return "?";
    return level_names[level];
}

/* ==================== Output ==================== */

/* Format one line and write it with a single call, so that lines from the
 * MQTT thread and the store worker never interleave. */
void log_write(int level, const char *fmt, ...) {
    if (level > log_get_level()) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (log_journal) {
        fprintf(stderr, "<%d>%s\n", level_syslog[level], msg);
        return;
    }
    struct tm tm;
    char when[32];
    long long ms = clock_wall_ms();
    time_t sec = (time_t)(ms / 1000);
    localtime_r(&sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(stderr, "%s.%03lld %-5s %s\n", when, ms % 1000, level_names[level], msg);
}

/* Token bucket: refill one token per period, spend one per line. Input an
 * attacker controls must never flood the log, but the first lines and a
 * count of what was dropped must still show. */
int log_ratelimit_ok(struct log_ratelimit *rl) {
    time_t now = time(NULL);
    int ok;
    unsigned long dropped = 0;

    pthread_mutex_lock(&log_rl_lock);
    if (rl->last == 0) rl->last = now;
    if (rl->period > 0 && now - rl->last >= rl->period) {
        long refill = (long)((now - rl->last) / rl->period);
        rl->tokens = refill >= rl->burst ? rl->burst : rl->tokens + (int)refill;
        if (rl->tokens > rl->burst) rl->tokens = rl->burst;
        rl->last = now;
    }
    ok = rl->tokens > 0;
    if (ok) {
        rl->tokens--;
        dropped = rl->suppressed;
        rl->suppressed = 0;
    } else {
        rl->suppressed++;
    }
    pthread_mutex_unlock(&log_rl_lock);
    if (dropped) log_warn("(%lu similar lines suppressed)", dropped);
    return ok;
}
