/* log.h -- the bridge's one logging module.
 *
 * Every module reports errors as return values; only the top level (main,
 * the worker loop, the MQTT callbacks) logs them, once, through here.
 * Lines go to stderr: with a "<N>" syslog priority prefix when running under
 * systemd (journald reads it), with a local timestamp on a terminal.
 * log_write() is thread-safe (one fprintf per line, stderr unbuffered). */
#ifndef CB_LOG_H
#define CB_LOG_H

#include <time.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3
};

/* A token bucket for lines that input can trigger (rejected messages):
 * at most 'burst' lines, refilled at one per 'period' seconds. */
struct log_ratelimit {
    time_t last;
    int tokens;
    int burst;
    int period;
    unsigned long suppressed;
};
#define LOG_RATELIMIT_INIT(burst, period) { 0, (burst), (burst), (period), 0 }

/* Choose the output style: journal != 0 prefixes "<N>" and drops the time. */
void log_init(int level, int journal);
void log_set_level(int level);
int log_get_level(void);

/* "error", "warn", "info", "debug" -> level; -1 for anything else. */
int log_level_parse(const char *name);
const char *log_level_name(int level);

void log_write(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Returns 1 when a line may be written now, 0 when it must be dropped.
 * When lines were dropped, the next allowed line is preceded by a count. */
int log_ratelimit_ok(struct log_ratelimit *rl);

#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
