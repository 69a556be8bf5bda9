/* main.c -- chat-bridge: command line, signals, and the main loop.
 *
 * Everything real happens in bridge.c; main only loads the configuration,
 * starts the bridge, ticks it every 100 ms until a signal asks it to stop
 * or to reload, and tells systemd where it stands. Signal handlers only
 * set flags. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "bridge.h"
#include "check.h"
#include "config.h"
#include "log.h"
#include "result.h"
#include "service.h"

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

/* Load the configuration; report every problem on failure: on stderr at
 * start (and for --check-config), through the log on a reload, so that
 * journald files them as errors. */
static int load_config(const char *path, struct config *cfg, int to_log) {
    static struct config_errors errs;
    if (config_load(cfg, path, &errs) == 0) return 0;
    for (int i = 0; i < errs.count && i < CONFIG_MAX_ERRORS; i++) {
        if (to_log) log_error("%s", errs.msg[i]);
        else fprintf(stderr, "%s\n", errs.msg[i]);
    }
    if (errs.count > CONFIG_MAX_ERRORS && to_log)
        log_error("(%d more errors)", errs.count - CONFIG_MAX_ERRORS);
    else if (errs.count > CONFIG_MAX_ERRORS)
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

/* ==================== Running ==================== */

/* What the main loop carries: the bridge, the configuration it was built
 * on, and the latest configuration accepted by a reload. */
struct daemon {
    const char *path;
    struct bridge *bridge;
    struct config *built;        /* the bridge points into it */
    struct config *current;      /* == built, or a newer live-only change */
    int ready;
    int verbose;                 /* -v: debug whatever the file says */
    time_t next_status;
};

static void config_destroy(struct config *c) {
    if (c == NULL) return;
    config_free(c);
    free(c);
}

/* Tell systemd once when the bridge is subscribed and Redis answers. */
static void notify_ready(struct daemon *d) {
    struct stats_snapshot st;
    if (d->ready) return;
    bridge_stats(d->bridge, &st);
    if (!st.mqtt_ready || !st.redis_connected) return;
    d->ready = 1;
    log_info("ready: subscribed and connected to Redis");
    service_ready();
}

/* The connection states, the journal and the counts: in the log every
 * log.status_interval seconds, and as systemd's STATUS= every tick. */
static void report_status(struct daemon *d) {
    struct stats_snapshot st;
    time_t now = time(NULL);
    const struct config *cfg = d->current;
    bridge_stats(d->bridge, &st);
    service_status("mqtt %s, redis %s, journal %llu bytes not stored; stored %lu, "
                   "duplicates %lu, rejected %lu", st.mqtt_ready ? "up" : "down",
                   st.redis_connected ? "up" : "down", st.journal_unstored,
                   st.stored, st.duplicates, st.rejected);
    if (cfg->status_interval == 0 || now < d->next_status) return;
    d->next_status = now + cfg->status_interval;
    if (cfg->redis_sentinels)
        log_info("status: sentinel master %s: primary %s, failovers followed %llu, %s%s",
                 cfg->redis_sentinel_master, st.redis_primary[0] ? st.redis_primary : "unknown",
                 st.redis_failovers, st.redis_sentinel[0] ? "watching " : "no sentinel watched: "
                 "failovers not followed", st.redis_sentinel);
    log_info("status: mqtt %s, redis %s, journal %llu bytes (%llu not stored, max %llu), "
             "stored %lu, duplicates %lu, replayed %lu, rejected %lu, history %lu, "
             "deleted %lu, redis retries %lu, publish errors %lu",
             st.mqtt_ready ? "up" : "down", st.redis_connected ? "up" : "down",
             st.journal_bytes, st.journal_unstored, st.journal_max, st.stored,
             st.duplicates, st.replayed, st.rejected, st.history, st.deleted,
             st.redis_retries, st.publish_errors);
}

/* Build and start a bridge on d->built. */
static int start_bridge(struct daemon *d) {
    char err[256];
    d->bridge = bridge_new(d->built, err, sizeof(err));
    if (d->bridge == NULL || bridge_start(d->bridge, err, sizeof(err)) < 0) {
        log_error("%s", err);
        bridge_free(d->bridge);
        d->bridge = NULL;
        return -1;
    }
    d->ready = 0;
    return 0;
}

/* Stop and free the bridge. A stop that cannot end in order (an append
 * stuck on a full disk, bridge.h) ends the process here with 'status',
 * as a crash would: the journal keeps what was acknowledged, and the
 * message in Paho's callback was not acknowledged, so the broker delivers
 * it again. */
static void stop_bridge(struct daemon *d, int status) {
    if (bridge_stop(d->bridge, d->current->stop_timeout_ms) == CB_ERR_FULL) {
        log_error("journal: the disk is still full at the stop's deadline; exiting "
                  "without acknowledging the message being received (the broker "
                  "delivers it again)");
        _exit(status);
    }
    bridge_free(d->bridge);
}

/* SIGHUP: read the file again. A bad file changes nothing. Limits, log
 * level and intervals apply at once; anything else (addresses, prefixes,
 * credentials, journal) restarts the bridge on the new settings, which
 * loses nothing: the journal and the broker's session carry the messages
 * across. */
static void reload(struct daemon *d) {
    struct config *next = calloc(1, sizeof(*next));
    service_reloading();
    log_info("reloading %s", d->path);
    if (next == NULL || load_config(d->path, next, 1) < 0) {
        log_error("reload: the new configuration is refused; keeping the old one");
        config_destroy(next);
        service_ready();
        return;
    }
    log_set_level(d->verbose ? LOG_LEVEL_DEBUG : next->log_level);
    if (!config_needs_restart(d->built, next)) {
        bridge_set_live(d->bridge, next);
        if (d->current != d->built) config_destroy(d->current);
        d->current = next;
        log_info("reload: applied in place");
        service_ready();
        return;
    }
    log_info("reload: connection settings changed; restarting the bridge");
    stop_bridge(d, 1);
    if (d->current != d->built) config_destroy(d->current);
    config_destroy(d->built);
    d->built = d->current = next;
    start_bridge(d);             /* READY=1 again once it is up */
}

static int run(struct daemon *d) {
    if (start_bridge(d) < 0) return 1;
    while (!got_stop && d->bridge) {
        clock_sleep_ms(100);
        bridge_tick(d->bridge);
        notify_ready(d);
        report_status(d);
        service_watchdog();
        if (got_hup) {
            got_hup = 0;
            reload(d);
        }
    }
    if (d->bridge == NULL) return 1;
    log_info("stopping");
    service_stopping();
    stop_bridge(d, 0);
    return 0;
}

int main(int argc, char **argv) {
    struct args a = { 0 };
    struct daemon d = { 0 };
    int rc = parse_args(argc, argv, &a);
    if (rc != 0) return rc < 0 ? 0 : rc;
    log_init(LOG_LEVEL_INFO, getenv("JOURNAL_STREAM") != NULL);
    d.path = a.config;
    d.verbose = a.verbose;
    d.built = d.current = calloc(1, sizeof(*d.built));
    if (d.built == NULL || load_config(a.config, d.built, 0) < 0) {
        config_destroy(d.built);
        return 2;
    }
    if (a.check || a.dump) {
        if (a.dump) config_dump(d.built, stdout);
        else printf("%s: configuration is valid\n", a.config);
        if (a.check) {
            fflush(stdout);
            log_set_level(LOG_LEVEL_ERROR);     /* the probe's own chatter */
            check_peers(d.built, stdout, 3000);
        }
        config_destroy(d.built);
        return 0;
    }
    log_set_level(a.verbose ? LOG_LEVEL_DEBUG : d.built->log_level);
    install_signals();
    service_init();
    if (d.built->redis_cluster)
        log_info("chat-bridge %s starting: broker %s, redis cluster %s", CB_VERSION,
                 d.built->mqtt_uri, d.built->redis_cluster_nodes
                 ? d.built->redis_cluster_nodes : d.built->redis_host);
    else if (d.built->redis_sentinels)
        log_info("chat-bridge %s starting: broker %s, redis: the primary of %s named by "
                 "sentinels %s", CB_VERSION, d.built->mqtt_uri, d.built->redis_sentinel_master,
                 d.built->redis_sentinels);
    else if (d.built->redis_unix_socket)
        log_info("chat-bridge %s starting: broker %s, redis %s", CB_VERSION,
                 d.built->mqtt_uri, d.built->redis_unix_socket);
    else
        log_info("chat-bridge %s starting: broker %s, redis %s:%d", CB_VERSION,
                 d.built->mqtt_uri, d.built->redis_host, d.built->redis_port);
    rc = run(&d);
    if (d.current != d.built) config_destroy(d.current);
    config_destroy(d.built);
    return rc;
}
