/* main.c -- chat-bridge: command line, signals, and the main loop.
 *
 * Everything real happens in bridge.c; main only loads the configuration,
 * starts the bridge, ticks it every 100 ms until a signal asks it to stop,
 * and tells systemd where it stands. Signal handlers only set flags. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "bridge.h"
#include "config.h"
#include "log.h"

#define CB_VERSION "0.1.0"

static volatile sig_atomic_t got_stop;
static volatile sig_atomic_t got_hup;

static void on_signal(int sig) {
    if (sig == SIGHUP) got_hup = 1;
    else got_stop = 1;
}

static void usage(FILE *out) {
    fprintf(out,
        "usage: chat-bridge [-c FILE] [-v] [--check-config] [--dump-config]\n"
        "  -c, --config FILE   configuration (default /etc/chat-bridge/chat-bridge.yaml)\n"
        "  -v, --verbose       log at debug level, whatever the file says\n"
        "      --check-config  validate the configuration and exit (0 valid, 2 not)\n"
        "      --dump-config   print the effective configuration and exit\n"
        "  -V, --version       print the version and exit\n"
        "  -h, --help          this text\n");
}

struct args {
    const char *config;
    int verbose, check, dump;
};

/* Parse the command line. Returns -1 to exit 0 (help, version), 2 on a
 * usage error, 0 to go on. */
static int parse_args(int argc, char **argv, struct args *a) {
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "verbose", no_argument, NULL, 'v' },
        { "check-config", no_argument, NULL, 'k' },
        { "dump-config", no_argument, NULL, 'd' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int ch;
    a->config = "/etc/chat-bridge/chat-bridge.yaml";
    while ((ch = getopt_long(argc, argv, "c:vVh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': a->config = optarg; break;
        case 'v': a->verbose = 1; break;
        case 'k': a->check = 1; break;
        case 'd': a->dump = 1; break;
        case 'V': printf("chat-bridge %s\n", CB_VERSION); return -1;
        case 'h': usage(stdout); return -1;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    return 0;
}

/* Load the configuration; print every problem on failure. */
static int load_config(const char *path, struct config *cfg) {
    static struct config_errors errs;
    if (config_load(cfg, path, &errs) == 0) return 0;
    for (int i = 0; i < errs.count && i < CONFIG_MAX_ERRORS; i++)
        fprintf(stderr, "%s\n", errs.msg[i]);
    if (errs.count > CONFIG_MAX_ERRORS)
        fprintf(stderr, "(%d more errors)\n", errs.count - CONFIG_MAX_ERRORS);
    return -1;
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Tell systemd once when the bridge is subscribed and Redis answers. */
static void notify_ready(struct bridge *b, int *ready) {
    struct bridge_stats st;
    if (*ready) return;
    bridge_stats(b, &st);
    if (!st.mqtt_ready || !st.redis_connected) return;
    *ready = 1;
    log_info("ready: subscribed and connected to Redis");
    sd_notify(0, "READY=1\nSTATUS=subscribed, Redis connected");
}

/* One line with the connection states, the journal and the counts, every
 * log.status_interval seconds. */
static void log_status(struct bridge *b, const struct config *cfg, time_t *next) {
    struct bridge_stats st;
    time_t now = time(NULL);
    if (cfg->status_interval == 0 || now < *next) return;
    *next = now + cfg->status_interval;
    bridge_stats(b, &st);
    log_info("status: mqtt %s, redis %s, journal %llu bytes (%llu not stored, max %llu), "
             "stored %lu, duplicates %lu, replayed %lu, rejected %lu, history %lu, "
             "deleted %lu, redis retries %lu, publish errors %lu",
             st.mqtt_ready ? "up" : "down", st.redis_connected ? "up" : "down",
             st.journal_bytes, st.journal_unstored, st.journal_max, st.stored,
             st.duplicates, st.replayed, st.rejected, st.history, st.deleted,
             st.redis_retries, st.publish_errors);
}

static int run(const struct config *cfg) {
    char err[256];
    int ready = 0;
    time_t next_status = time(NULL) + cfg->status_interval;
    struct bridge *b = bridge_new(cfg, err, sizeof(err));
    if (b == NULL || bridge_start(b, err, sizeof(err)) < 0) {
        log_error("%s", err);
        bridge_free(b);
        return 1;
    }
    while (!got_stop) {
        struct timespec tick = { 0, 100 * 1000000L };
        nanosleep(&tick, NULL);
        bridge_tick(b);
        notify_ready(b, &ready);
        log_status(b, cfg, &next_status);
        if (got_hup) {
            got_hup = 0;
            log_warn("SIGHUP: live reload is not supported yet; restart to apply changes");
        }
    }
    log_info("stopping");
    sd_notify(0, "STOPPING=1");
    bridge_stop(b, cfg->stop_timeout_ms);
    bridge_free(b);
    return 0;
}

int main(int argc, char **argv) {
    struct args a = { 0 };
    struct config cfg = { 0 };
    int rc = parse_args(argc, argv, &a);
    if (rc != 0) return rc < 0 ? 0 : rc;
    log_init(LOG_LEVEL_INFO, getenv("JOURNAL_STREAM") != NULL);
    if (load_config(a.config, &cfg) < 0) {
        config_free(&cfg);
        return 2;
    }
    if (a.check || a.dump) {
        if (a.dump) config_dump(&cfg, stdout);
        else printf("%s: configuration is valid\n", a.config);
        config_free(&cfg);
        return 0;
    }
    log_set_level(a.verbose ? LOG_LEVEL_DEBUG : cfg.log_level);
    install_signals();
    log_info("chat-bridge %s starting: broker %s, redis %s:%d", CB_VERSION,
             cfg.mqtt_uri, cfg.redis_host, cfg.redis_port);
    rc = run(&cfg);
    config_free(&cfg);
    return rc;
}
