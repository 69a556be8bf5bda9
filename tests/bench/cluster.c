/* cluster.c -- bench --cluster: the bridge scaled out (make bench-cluster).
 *
 * Starts mosquitto, a single redis-server (the reference) and a Redis
 * Cluster of PROCS_NODES primaries without replicas, all Redis servers
 * from config/redis.conf (AOF everysec), on free 127.0.0.1 ports in one
 * temporary directory. Then closed-loop saturation points, each with the
 * same publishers, window, rooms and measurement time, counted at the
 * subscriber (on the bridge path a message completes once the bridge
 * stored it in Redis and republished it), in order:
 *   1. the baseline: the broker alone (base/<room>/msgs);
 *   2. the reference: one bridge on the single Redis;
 *   3. 1, 2, ... n bridges in one shared group on the cluster.
 * Every bridge point starts its own bridges (their own client ids,
 * journals and shared group name; mqtt.session_expiry 0, so that no
 * session, nor its share of the group, outlives the point), waits until
 * each logged "ready" and a history request is answered, and stops them
 * afterwards; each bridge's share is its own "stopped: N stored" count.
 * CPU comes from /proc/<pid>/stat at the window's edges: the bridges
 * (summed), mosquitto, the Redis server(s) in use, the benchmark itself,
 * and what every other process of the machine used. Each point writes to
 * rooms of its own, whose Redis counters must equal the republishes
 * received. Every child is stopped by PID, the directory removed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "sys.h"

#define S_NS 1000000000LL
#define WARMUP_NS S_NS                /* before each window */
#define DRAIN_NS (60 * S_NS)          /* at most, for the stragglers */
#define READY_MS 30000                /* a group's bridges ready */

/* The processes mark() reads: mosquitto, the single Redis, the cluster's
 * primaries, the benchmark, the group's bridges; then the machine. */
enum {
    W_MOSQ, W_REDIS, W_NODE0, W_BENCH = W_NODE0 + PROCS_NODES, W_BRIDGE0,
    W_COUNT = W_BRIDGE0 + PROCS_GROUP
};

struct gctx {
    const struct group_opts *o;
    struct group_results *res;
    struct procs pr;
    struct load *load;
    struct redisContext *kv, *node[PROCS_NODES];
    int group_n;                  /* bridges in the running group */
    double cpu[2][W_COUNT + 1];   /* CPU s at the window's start and end;
                                     [W_COUNT]: the whole machine */
    long long mark_ns[2];
};

/* ==================== Measuring ==================== */

/* The PID of mark()'s slot i (0 when that process is not running). */
static pid_t watched(const struct gctx *c, int i) {
    if (i == W_MOSQ) return c->pr.mqtt_pid;
    if (i == W_REDIS) return c->pr.redis_pid;
    if (i < W_BENCH) return c->pr.node_pid[i - W_NODE0];
    if (i == W_BENCH) return getpid();
    return c->pr.group_pid[i - W_BRIDGE0];
}

/* load_spec.mark: CPU of every process and of the machine, and when. */
static void mark_cpu(void *arg, int end) {
    struct gctx *c = arg;
    for (int i = 0; i < W_COUNT; i++) {
        pid_t pid = watched(c, i);
        c->cpu[end][i] = pid > 0 ? proc_cpu_s(pid) : -1;
    }
    c->cpu[end][W_COUNT] = proc_machine_busy_s();
    c->mark_ns[end] = now_ns();
}

/* CPU seconds the slots from..to-1 used in the window (a slot with no
 * process at either edge counts 0); -1 if one was read at one edge only. */
static double cpu_sum(const struct gctx *c, int from, int to) {
    double sum = 0;
    for (int i = from; i < to; i++) {
        if (c->cpu[0][i] < 0 && c->cpu[1][i] < 0) continue;
        if (c->cpu[0][i] < 0 || c->cpu[1][i] < 0) return -1;
        sum += c->cpu[1][i] - c->cpu[0][i];
    }
    return sum;
}

/* The point's CPU figures from the last window's marks. */
static void record_cpu(const struct gctx *c, struct group_point *pt) {
    double secs = (double)(c->mark_ns[1] - c->mark_ns[0]) / 1e9;
    double machine = c->cpu[1][W_COUNT] - c->cpu[0][W_COUNT], ours = cpu_sum(c, 0, W_COUNT);
    pt->bridge_cpu = pt->bridges ? cpu_sum(c, W_BRIDGE0, W_COUNT) : -1;
    pt->mosquitto_cpu = cpu_sum(c, W_MOSQ, W_MOSQ + 1);
    pt->redis_cpu = !pt->bridges ? -1 : pt->cluster ? cpu_sum(c, W_NODE0, W_BENCH)
                                                    : cpu_sum(c, W_REDIS, W_REDIS + 1);
    pt->bench_cpu = cpu_sum(c, W_BENCH, W_BENCH + 1);
    pt->other_cores = -1;
    if (ours >= 0 && secs > 0 && c->cpu[0][W_COUNT] >= 0 && c->cpu[1][W_COUNT] >= 0)
        pt->other_cores = machine > ours ? (machine - ours) / secs : 0;
}

/* Count what went wrong in a point (missing, malformed, send errors). */
static void note_run(struct gctx *c, const struct group_point *pt) {
    const struct load_result *r = &pt->r;
    if (r->missing == 0 && r->bad == 0 && r->errors == 0 && r->rejected == 0 &&
        r->unacked == 0)
        return;
    c->res->problems++;
    fprintf(stderr, "bench: %s: %lld of %lld missing, %lld bad, %lld send errors, %lld "
            "PUBACKs refusing, %lld publishes unacknowledged\n", pt->label, r->missing,
            r->sent, r->bad, r->errors, r->rejected, r->unacked);
}

/* Each room's Redis counter (on the Redis the point used) equals the
 * republishes the subscriber received there. */
static void check_store(struct gctx *c, struct group_point *pt, const char *prefix) {
    int n = c->o->rooms, rc = -1;
    long long *ctr = calloc((size_t)n, sizeof(*ctr));
    const long long *seen = load_room_counts(c->load);
    struct store_check *k = &pt->check;
    if (ctr)
        rc = pt->cluster ? kv_cluster_counters(c->node, PROCS_NODES, prefix, n, ctr)
                         : kv_counters(c->kv, prefix, n, ctr);
    *k = (struct store_check){ .done = rc == 0 };
    for (int i = 0; rc == 0 && i < n; i++) {
        k->stored += ctr[i];
        k->republished += seen[i];
        if (ctr[i] != seen[i]) k->rooms_off++;
    }
    free(ctr);
    if (rc == 0 && k->rooms_off == 0) return;
    c->res->problems++;
    fprintf(stderr, "bench: %s: %s\n", pt->label, rc < 0 ? "cannot read the rooms' counters"
            : "Redis counters and republishes received differ");
}

/* One closed-loop window over the rooms <prefix><i>; the CPU figures and,
 * on the bridge path, the store check. 0, or -1 if it could not run. */
static int run_window(struct gctx *c, struct group_point *pt, const char *prefix) {
    const struct group_opts *o = c->o;
    struct load_spec s = { .target = pt->bridges ? TARGET_BRIDGE : TARGET_BASELINE,
        .room_prefix = prefix, .rooms = o->rooms, .publishers = o->publishers,
        .payload = o->payload, .window = o->window, .warmup_ns = WARMUP_NS,
        .duration_ns = (long long)(o->duration * S_NS), .drain_ns = DRAIN_NS,
        .mark = mark_cpu, .mark_arg = c };
    if (load_run(c->load, &s, &pt->r) < 0) return -1;
    record_cpu(c, pt);
    note_run(c, pt);
    if (pt->bridges) check_store(c, pt, prefix);
    return 0;
}

/* ==================== The group of bridges ==================== */

/* Bridge i of the group tag: "<tag>-b<i>", its client id and file names. */
static void bridge_name(const char *tag, int i, char *buf, size_t size) {
    snprintf(buf, size, "%s-b%d", tag, i);
}

/* load_probe's liveness test: every bridge of the group still runs. */
static int group_alive(void *arg) {
    struct gctx *c = arg;
    for (int i = 0; i < c->group_n; i++)
        if (!procs_group_alive(&c->pr, i)) return 0;
    return 1;
}

/* Each bridge's log: its last lines to stderr. */
static void dump_group(const struct gctx *c, int n, const char *tag) {
    char name[32], log[40];
    for (int i = 0; i < n; i++) {
        bridge_name(tag, i, name, sizeof(name));
        snprintf(log, sizeof(log), "%s.log", name);
        procs_dump_log(&c->pr, log);
    }
}

/* Every bridge logged "ready" (subscribed, Redis answered), then one of
 * them answers a history request. 0 or -1. */
static int wait_group(struct gctx *c, int n, const char *tag) {
    long long deadline = now_ns() + READY_MS * 1000000LL;
    char name[32];
    for (int i = 0; i < n; i++) {
        bridge_name(tag, i, name, sizeof(name));
        while (procs_log_find(&c->pr, name, "ready: ") < 0) {
            if (!procs_group_alive(&c->pr, i) || now_ns() > deadline || bench_interrupted) {
                fprintf(stderr, "bench: bridge %s did not get ready\n", name);
                return -1;
            }
            sys_sleep_ms(50);
        }
    }
    if (load_probe(c->load, READY_MS, group_alive, c) == 0) return 0;
    fprintf(stderr, "bench: the group %s did not answer\n", tag);
    return -1;
}

/* The redis section of the group's bridges: the single Redis, or the
 * cluster with every primary as a seed. */
static void redis_yaml(const struct gctx *c, int cluster, char *buf, size_t size) {
    if (!cluster) {
        snprintf(buf, size, "  port: %d\n", c->pr.redis_port);
        return;
    }
    size_t len = (size_t)snprintf(buf, size, "  cluster: true\n  cluster_nodes: \"");
    for (int i = 0; i < PROCS_NODES && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s127.0.0.1:%d", i ? " " : "",
                                c->pr.node_port[i]);
    if (len < size) snprintf(buf + len, size - len, "\"\n");
}

/* Start n bridges in the shared group tag and wait until they serve. */
static int start_group(struct gctx *c, int n, int cluster, const char *tag) {
    char mqtt[128], redis[256], name[32];
    snprintf(mqtt, sizeof(mqtt), "  shared_group: %s\n  session_expiry: 0\n", tag);
    redis_yaml(c, cluster, redis, sizeof(redis));
    c->group_n = n;
    for (int i = 0; i < n; i++) {
        bridge_name(tag, i, name, sizeof(name));
        if (procs_start_group_bridge(&c->pr, i, c->o->bridge, name, mqtt, redis) < 0) {
            fprintf(stderr, "bench: cannot start bridge %s\n", name);
            return -1;
        }
    }
    return wait_group(c, n, tag);
}

/* Stop the group; each bridge's own stored count from its last log line. */
static void stop_group(struct gctx *c, struct group_point *pt, const char *tag) {
    char name[32];
    procs_stop_group(&c->pr);
    for (int i = 0; i < pt->bridges; i++) {
        bridge_name(tag, i, name, sizeof(name));
        pt->stored[i] = procs_log_find(&c->pr, name, "stopped: ");
    }
}

/* ==================== Points ==================== */

/* The next point of the results, labelled. */
static struct group_point *new_point(struct gctx *c, int bridges, int cluster) {
    struct group_point *pt = &c->res->pts[c->res->npts];
    *pt = (struct group_point){ .bridges = bridges, .cluster = cluster };
    if (bridges == 0) snprintf(pt->label, sizeof(pt->label), "baseline (broker only)");
    else snprintf(pt->label, sizeof(pt->label), "%d bridge%s, %s", bridges,
                  bridges > 1 ? "s" : "", cluster ? "Redis Cluster" : "single Redis");
    return pt;
}

/* 1. The broker alone. 0 or -1. */
static int baseline_point(struct gctx *c) {
    struct group_point *pt = new_point(c, 0, 0);
    PROGRESS("%s (%.0f s)", pt->label, c->o->duration);
    if (run_window(c, pt, "base") < 0) return -1;
    c->res->npts++;
    return 0;
}

/* 2 and 3. n bridges in a group of their own, on the single Redis or the
 * cluster: started, measured, checked, stopped. 0 or -1. */
static int bridge_point(struct gctx *c, int n, int cluster) {
    struct group_point *pt = new_point(c, n, cluster);
    char tag[16], prefix[20];
    if (cluster) snprintf(tag, sizeof(tag), "c%d", n);
    else snprintf(tag, sizeof(tag), "ref");
    snprintf(prefix, sizeof(prefix), "%s-", tag);
    PROGRESS("%s (%.0f s)", pt->label, c->o->duration);
    int rc = start_group(c, n, cluster, tag);
    if (rc == 0) rc = run_window(c, pt, prefix);
    if (rc == 0 && !group_alive(c)) {
        fprintf(stderr, "bench: a bridge of %s exited\n", tag);
        rc = -1;
    }
    stop_group(c, pt, tag);
    if (rc < 0) dump_group(c, n, tag);
    else c->res->npts++;
    return rc;
}

/* Every point in order; stops at the first that cannot run. */
static void run_points(struct gctx *c) {
    struct group_results *r = c->res;
    int rc = baseline_point(c);
    if (rc == 0) rc = bridge_point(c, 1, 0);
    for (int n = 1; rc == 0 && n <= c->o->bridges && !bench_interrupted; n++)
        rc = bridge_point(c, n, 1);
    if (bench_interrupted) snprintf(r->failed, sizeof(r->failed), "interrupted");
    else if (rc < 0) snprintf(r->failed, sizeof(r->failed), "point %d (%s) failed",
                              r->npts + 1, r->pts[r->npts].label);
}

/* ==================== Run ==================== */

/* mosquitto and the single Redis, the cluster (until cluster_state:ok),
 * the clients; then the versions for the report. 0 or -1. */
static int setup(struct gctx *c) {
    PROGRESS("starting mosquitto, redis-server and a Redis Cluster of %d primaries",
             PROCS_NODES);
    int rc = procs_start_servers(&c->pr);
    snprintf(c->res->broker_conf, sizeof(c->res->broker_conf), "%s", c->pr.broker_conf);
    if (rc < 0 || (c->kv = kv_connect(c->pr.redis_port)) == NULL ||
        procs_start_cluster(&c->pr) < 0)
        return -1;
    for (int i = 0; i < PROCS_NODES; i++)
        if ((c->node[i] = kv_connect(c->pr.node_port[i])) == NULL) return -1;
    if (kv_cluster_wait_ok(c->node, PROCS_NODES, 30000) < 0) {
        fprintf(stderr, "bench: the cluster did not reach cluster_state:ok\n");
        return -1;
    }
    if ((c->load = load_new(c->pr.mqtt_port, c->o->publishers, c->o->qos)) == NULL) return -1;
    proc_mosquitto_version(c->res->mosquitto, sizeof(c->res->mosquitto));
    kv_version(c->kv, c->res->redis, sizeof(c->res->redis));
    load_client_version(c->res->client, sizeof(c->res->client));
    return 0;
}

/* The run's settings, before anything is measured. */
static void init_results(const struct group_opts *o, struct group_results *r) {
    *r = (struct group_results){ .cores = (int)sysconf(_SC_NPROCESSORS_ONLN), .qos = o->qos,
        .payload = o->payload, .window = o->window, .rooms = o->rooms,
        .publishers = o->publishers, .bridges = o->bridges, .duration_s = o->duration };
    snprintf(r->mosquitto, sizeof(r->mosquitto), "?");
    snprintf(r->redis, sizeof(r->redis), "?");
    snprintf(r->client, sizeof(r->client), "?");
    proc_loadavg(r->load_before, sizeof(r->load_before));
}

/* Set up, run the points, stop everything by PID; see the top of this
 * file. */
int cluster_bench(const struct group_opts *o, struct group_results *r) {
    static struct gctx c;         /* the watchdog keeps a pointer to c.pr */
    c = (struct gctx){ .o = o, .res = r };
    init_results(o, r);
    c.pr.keep = o->keep;
    snprintf(c.pr.broker_extra, sizeof(c.pr.broker_extra), "%s", o->broker_extra);
    procs_watchdog(&c.pr, 900);
    if (setup(&c) < 0) snprintf(r->failed, sizeof(r->failed), "setup failed");
    else run_points(&c);
    load_free(c.load);
    kv_free(c.kv);
    for (int i = 0; i < PROCS_NODES; i++) kv_free(c.node[i]);
    procs_stop_all(&c.pr);
    proc_loadavg(r->load_after, sizeof(r->load_after));
    return r->failed[0] ? -1 : 0;
}
