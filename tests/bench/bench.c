/* bench.c -- the chat-bridge benchmark: options and phases.
 *
 * Starts mosquitto, redis-server (AOF, everysec) and the bridge on free
 * 127.0.0.1 ports in a temporary directory, then measures, in order:
 *   1. saturation throughput, closed loop, bridge path then broker-only
 *      baseline, with the CPU each process spent per message and a check
 *      of the bridge's Redis counters against what was republished; then
 *      the baseline again through plain libmosquitto clients (the
 *      library's own thread per client) instead of the benchmark's loops,
 *      the reference showing that the load clients do not hold it down;
 *   2. latency at fixed offered rates, open loop, bridge and baseline:
 *      a ladder of 100/s, 1,000/s and 25, 50, 75 and 90% of the bridge's
 *      saturation (--quick: 1,000/s, 25, 50 and 75%);
 *   3. the scale curve over rooms and publishers;
 *   4. history requests on rooms seeded straight into Redis (after the
 *      AOF rewrite the seeding triggers): pages backwards, a catch-up
 *      page from the middle of the big room, and a user's rooms
 *      (chat/$rooms) over USER_ROOMS small rooms;
 *   5. retention: the bridge restarted with max_messages_per_room set,
 *      rooms filled ten times over, Redis memory after each fill; then
 *      the bridge restarted on the default configuration again;
 *   6. latency at 10,000/s, last because it may overload the bridge.
 * Prints a table and a JSON line, and with --plot draws the latencies
 * against the offered rate and the CPU per message of each process
 * (plot.c, gnuplot; without gnuplot the run says so and goes on). The
 * load clients are libmosquitto clients in this process: its CPU per
 * message is reported beside the others', and its busiest load thread,
 * to show they are not what limits a measurement. Exits 1 if any message
 * or reply went missing, was malformed, or was not stored, or a publish
 * was not acknowledged; 2 on a usage error. Timing never fails a run.
 * --only runs some of the phases (setup always runs; the report shows
 * only what ran). With --cluster it measures scaling out instead
 * (cluster.c): 1..n bridges in one shared group on a Redis Cluster; with
 * --compare, two bridge binaries alternated on the same servers
 * (compare.c). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "sys.h"

#define S_NS 1000000000LL

const char *const phase_names[PH_COUNT] = {
    [PH_SATURATION] = "saturation", [PH_LATENCY] = "latency", [PH_SCALE] = "scale",
    [PH_HISTORY] = "history", [PH_RETENTION] = "retention", [PH_HIGH] = "high" };

/* ==================== Options ==================== */

/* The --help text. */
static void usage(FILE *f) {
    fprintf(f,
        "usage: bench [options]\n"
        "  --duration S      saturation measurement window (default 10, quick 3)\n"
        "  --messages N      measure N messages per saturation phase instead\n"
        "  --rooms N         rooms of the saturation and latency phases (100;\n"
        "                    --cluster: 200)\n"
        "  --publishers N    publishers (10)\n"
        "  --payload BYTES   text size, 48..4096 (100)\n"
        "  --qos Q           QoS of the benchmark's publishes and subscription (1)\n"
        "  --window N        closed loop: messages in flight per publisher (20)\n"
        "  --quick           short phases for CI (under a minute)\n"
        "  --bridge PATH     the bridge binary (build/chat-bridge)\n"
        "  --json-only       print only the JSON line\n"
        "  --mosquitto-conf LINE  add LINE to the broker's configuration (repeatable;\n"
        "                    default: the settings of config/mosquitto.conf)\n"
        "  --keep            keep the temporary directory (servers' and bridge's logs)\n"
        "  --plot PNG        draw latency against offered rate and CPU per message by\n"
        "                    process into PNG with gnuplot (make bench: build/bench/bench.png)\n"
        "  --cluster         scaling out instead (make bench-cluster): the broker alone,\n"
        "                    1 bridge on one Redis, then 1..N bridges in one shared group\n"
        "                    on a 3-primary Redis Cluster, each --duration (default 20)\n"
        "  --bridges N       --cluster: the largest group (3, at most %d)\n"
        "  --only PHASES     run only these phases, comma-separated: saturation, latency,\n"
        "                    scale, history, retention, high (latency at 10000/s)\n"
        "  --compare OLD     A/B instead: the bridge binary OLD (\"old\") and --bridge\n"
        "                    (\"new\") take turns on the same mosquitto and Redis: per round\n"
        "                    each runs saturation (--duration) and %.0f/s open loop; medians\n"
        "  --rounds N        --compare: rounds (3, quick 2, at most %d)\n", PROCS_GROUP,
        CMP_RATE, CMP_ROUNDS_MAX);
}

/* --only's list: a mask of phase_names, or exit 2 on an unknown name. */
static unsigned parse_only(const char *arg) {
    unsigned mask = 0;
    for (const char *p = arg; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
        size_t n = strcspn(p, ","), i;
        for (i = 0; i < PH_COUNT; i++)
            if (strlen(phase_names[i]) == n && strncmp(p, phase_names[i], n) == 0) break;
        if (i == PH_COUNT) {
            fprintf(stderr, "bench: --only: unknown phase '%.*s' (saturation, latency, "
                    "scale, history, retention, high)\n", (int)n, p);
            exit(2);
        }
        mask |= PH_BIT(i);
    }
    if (mask == 0) {
        fprintf(stderr, "bench: --only: no phase named\n");
        exit(2);
    }
    return mask;
}

/* A whole number in lo..hi from an option argument, or exit 2. */
static long long opt_num(const char *name, const char *arg, long long lo, long long hi) {
    char *end;
    long long v = strtoll(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "bench: --%s: expected %lld..%lld, got '%s'\n", name, lo, hi, arg);
        exit(2);
    }
    return v;
}

/* Append a line to a buffer of lines, or exit 2 when it does not fit. */
static void add_line(char *buf, size_t size, const char *line) {
    size_t n = strlen(buf);
    if (n + strlen(line) + 2 > size) {
        fprintf(stderr, "bench: --mosquitto-conf: too long\n");
        exit(2);
    }
    snprintf(buf + n, size - n, "%s\n", line);
}

static const struct option longopts[] = {
    { "duration", 1, 0, 'd' }, { "messages", 1, 0, 'm' }, { "rooms", 1, 0, 'r' },
    { "publishers", 1, 0, 'p' }, { "payload", 1, 0, 's' }, { "qos", 1, 0, 'q' },
    { "window", 1, 0, 'w' }, { "quick", 0, 0, 'Q' }, { "bridge", 1, 0, 'b' },
    { "json-only", 0, 0, 'j' }, { "keep", 0, 0, 'k' }, { "mosquitto-conf", 1, 0, 'c' },
    { "cluster", 0, 0, 'C' }, { "bridges", 1, 0, 'n' }, { "plot", 1, 0, 'P' },
    { "only", 1, 0, 'o' }, { "compare", 1, 0, 'A' }, { "rounds", 1, 0, 'R' },
    { "help", 0, 0, 'h' }, { 0, 0, 0, 0 } };

/* Options that do not go together, and a --compare binary that cannot
 * run: a message, usage, exit 2. */
static void check_opts(const struct opts *o) {
    const char *why = NULL;
    if (o->cluster && o->messages) why = "--messages: not with --cluster";
    else if (o->cluster && o->compare) why = "--compare: not with --cluster";
    else if (o->only != PH_ALL && (o->cluster || o->compare))
        why = "--only: not with --cluster or --compare";
    else if (o->compare && access(o->compare, X_OK) != 0)
        why = "--compare: not an executable file";
    else if (o->compare && access(o->bridge, X_OK) != 0)
        why = "--bridge: not an executable file";
    if (why == NULL) return;
    fprintf(stderr, "bench: %s\n", why);
    usage(stderr);
    exit(2);
}

/* Parse the command line into o; exits 2 on a bad option. */
static void parse_opts(int argc, char **argv, struct opts *o) {
    *o = (struct opts){ .duration = -1, .rooms = 0, .publishers = 10, .payload = 100,
                        .qos = 1, .window = 20, .bridges = 3, .bridge = "build/chat-bridge",
                        .only = PH_ALL };
    for (int c; (c = getopt_long(argc, argv, "", longopts, NULL)) != -1;) {
        switch (c) {
        case 'd': o->duration = (double)opt_num("duration", optarg, 1, 3600); break;
        case 'm': o->messages = opt_num("messages", optarg, 1, 100000000); break;
        case 'r': o->rooms = (int)opt_num("rooms", optarg, 1, 100000); break;
        case 'p': o->publishers = (int)opt_num("publishers", optarg, 1, 1000); break;
        case 's': o->payload = (int)opt_num("payload", optarg, 48, PAYLOAD_MAX); break;
        case 'q': o->qos = (int)opt_num("qos", optarg, 0, 2); break;
        case 'w': o->window = (int)opt_num("window", optarg, 1, 10000); break;
        case 'Q': o->quick = 1; break;
        case 'b': o->bridge = optarg; break;
        case 'j': o->json_only = 1; break;
        case 'k': o->keep = 1; break;
        case 'c': add_line(o->broker_extra, sizeof(o->broker_extra), optarg); break;
        case 'C': o->cluster = 1; break;
        case 'n': o->bridges = (int)opt_num("bridges", optarg, 1, PROCS_GROUP); break;
        case 'P': o->plot = optarg; break;
        case 'o': o->only = parse_only(optarg); break;
        case 'A': o->compare = optarg; break;
        case 'R': o->rounds = (int)opt_num("rounds", optarg, 1, CMP_ROUNDS_MAX); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc) {
        usage(stderr);
        exit(2);
    }
    check_opts(o);
    if (o->rounds == 0) o->rounds = o->quick ? 2 : 3;
    if (o->duration < 0) o->duration = o->quick ? 3 : o->cluster ? 20 : 10;
    if (o->rooms == 0) o->rooms = o->cluster ? 200 : 100;
}

/* Phase lengths: full run, or --quick for CI. */
static void set_timing(struct ctx *c) {
    int q = c->o.quick;
    c->t = (struct timing){
        .warmup = q ? S_NS / 2 : S_NS,
        .latency = q ? S_NS : 5 * S_NS, .lat_warmup = q ? S_NS / 4 : S_NS,
        .history = q ? S_NS : 5 * S_NS, .hist_warmup = q ? S_NS / 5 : S_NS / 2,
        .scale = q ? 3 * S_NS / 2 : 5 * S_NS, .scale_warmup = q ? S_NS / 4 : S_NS,
        .drain = q ? 20 * S_NS : 60 * S_NS,
        .ret_round = q ? 10 * S_NS : 30 * S_NS, .ret_cap = q ? 200 : 1000 };
}

/* ==================== Measuring ==================== */

/* load_spec.mark: CPU of every process and of the load's threads, and
 * the context switches of the bridge and mosquitto, at the window's start
 * and end. */
static void mark_cpu(void *arg, int end) {
    struct ctx *c = arg;
    pid_t pids[4] = { c->pr.bridge_pid, c->pr.mqtt_pid, c->pr.redis_pid, getpid() };
    pid_t tids[LOAD_THREADS];
    int n = load_threads(c->load, tids, LOAD_THREADS);
    for (int i = 0; i < 2; i++) c->csw[end][i] = pids[i] > 0 ? proc_ctxsw(pids[i]) : -1;
    for (int i = 0; i < 4; i++) c->cpu[end][i] = pids[i] > 0 ? proc_cpu_s(pids[i]) : -1;
    for (int i = 0; i < LOAD_THREADS; i++) c->tcpu[end][i] = i < n ? proc_thread_cpu_s(tids[i]) : -1;
    c->cpu[end][4] = proc_machine_busy_s();
    c->mark_ns[end] = now_ns();
}

/* The busiest of the load's threads over the window, in cores; -1 if
 * unknown. */
static double load_busiest(const struct ctx *c) {
    double secs = (double)(c->mark_ns[1] - c->mark_ns[0]) / 1e9, most = -1;
    for (int i = 0; i < LOAD_THREADS && secs > 0; i++)
        if (c->tcpu[0][i] >= 0 && c->tcpu[1][i] >= 0 &&
            (c->tcpu[1][i] - c->tcpu[0][i]) / secs > most)
            most = (c->tcpu[1][i] - c->tcpu[0][i]) / secs;
    return most;
}

/* Cores that processes other than ours used during the window: other
 * sessions' tests, Redis's AOF rewrite child... -1 if unknown. */
static double other_cores(const struct ctx *c) {
    double ours = 0, secs = (double)(c->mark_ns[1] - c->mark_ns[0]) / 1e9;
    for (int i = 0; i < 5; i++)
        if (c->cpu[0][i] < 0 || c->cpu[1][i] < 0 || secs <= 0) return -1;
    for (int i = 0; i < 4; i++) ours += c->cpu[1][i] - c->cpu[0][i];
    double other = (c->cpu[1][4] - c->cpu[0][4] - ours) / secs;
    return other > 0 ? other : 0;
}

/* CPU seconds per 100,000 messages of one process, or -1. */
static double per_100k(const struct ctx *c, int i, long long msgs) {
    if (msgs <= 0 || c->cpu[0][i] < 0 || c->cpu[1][i] < 0) return -1;
    return (c->cpu[1][i] - c->cpu[0][i]) * 1e5 / (double)msgs;
}

/* Context switches per message of the bridge (i 0) or mosquitto (1)
 * over the window, or -1. */
static double per_msg_csw(const struct ctx *c, int i, long long msgs) {
    if (msgs <= 0 || c->csw[0][i] < 0 || c->csw[1][i] < c->csw[0][i]) return -1;
    return (double)(c->csw[1][i] - c->csw[0][i]) / (double)msgs;
}

/* The last window's CPU and context switches per message; the broker
 * alone's (target TARGET_BASELINE) without the bridge and Redis, which
 * are not on its path. */
static void window_cost(const struct ctx *c, enum load_target target, long long msgs,
                        struct cost *cpu, struct ctxsw *csw) {
    *cpu = (struct cost){ per_100k(c, 0, msgs), per_100k(c, 1, msgs), per_100k(c, 2, msgs),
                          per_100k(c, 3, msgs) };
    *csw = (struct ctxsw){ per_msg_csw(c, 0, msgs), per_msg_csw(c, 1, msgs) };
    if (target != TARGET_BASELINE) return;
    cpu->bridge = cpu->redis = csw->bridge = -1;
}

/* Count what went wrong in a phase (missing, malformed, send errors,
 * publishes refused or never acknowledged by the broker). */
static void note_run(struct ctx *c, const char *what, const struct load_result *r) {
    if (r->missing == 0 && r->bad == 0 && r->errors == 0 && r->rejected == 0 &&
        r->unacked == 0)
        return;
    c->res.problems++;
    fprintf(stderr, "bench: %s: %lld of %lld missing, %lld bad, %lld send errors, %lld "
            "PUBACKs refusing, %lld publishes unacknowledged\n", what, r->missing, r->sent,
            r->bad, r->errors, r->rejected, r->unacked);
}

/* The bridge stored what it republished: each room's Redis counter (the
 * rooms are new to the phase) equals the republishes received there. */
static void check_store(struct ctx *c, const char *prefix, int rooms, struct store_check *k) {
    long long *ctr = calloc((size_t)rooms, sizeof(*ctr));
    const long long *seen = load_room_counts(c->load);
    *k = (struct store_check){ 0 };
    if (ctr == NULL || kv_counters(c->kv, prefix, rooms, ctr) < 0) {
        c->res.problems++;
        fprintf(stderr, "bench: cannot read the rooms' counters\n");
        free(ctr);
        return;
    }
    k->done = 1;
    for (int i = 0; i < rooms; i++) {
        k->stored += ctr[i];
        k->republished += seen[i];
        if (ctr[i] != seen[i]) k->rooms_off++;
    }
    free(ctr);
    if (k->rooms_off == 0) return;
    c->res.problems++;
    fprintf(stderr, "bench: %s*: Redis counters say %lld stored, %lld republishes received; "
            "%d rooms differ\n", prefix, k->stored, k->republished, k->rooms_off);
}

/* A spec with the run's common settings. */
static struct load_spec spec_for(struct ctx *c, enum load_target target, const char *prefix,
                                 int rooms, int pubs) {
    return (struct load_spec){ .target = target, .room_prefix = prefix, .rooms = rooms,
        .publishers = pubs, .payload = c->o.payload, .window = c->o.window,
        .drain_ns = c->t.drain, .mark = mark_cpu, .mark_arg = c };
}

/* One closed-loop saturation point (see bench.h). */
int bench_run_sat(struct ctx *c, struct sat_point *pt, enum load_target target,
                  const char *prefix, long long warmup, long long duration,
                  long long max_messages) {
    struct load_spec s = spec_for(c, target, prefix, pt->rooms, pt->publishers);
    s.warmup_ns = warmup;
    s.duration_ns = duration;
    s.max_messages = max_messages;
    if (load_run(c->load, &s, &pt->r) < 0) return -1;
    window_cost(c, target, pt->r.measured, &pt->cpu, &pt->csw);
    pt->other_cores = other_cores(c);
    pt->load_busiest = load_busiest(c);
    note_run(c, prefix, &pt->r);
    if (target == TARGET_BRIDGE) check_store(c, prefix, pt->rooms, &pt->check);
    return 0;
}

/* ==================== The bridge ==================== */

/* load_probe's liveness test: the bridge process still runs. */
static int bridge_alive(void *arg) {
    return procs_bridge_alive(arg);
}

/* Start the bridge on the default configuration plus extra_yaml and wait
 * until it answers a history request. 0, or -1 with a message. */
static int start_bridge(struct ctx *c, const char *extra_yaml) {
    if (procs_start_bridge(&c->pr, c->o.bridge, extra_yaml) == 0 &&
        load_probe(c->load, 30000, bridge_alive, &c->pr) == 0)
        return 0;
    fprintf(stderr, "bench: the bridge did not answer\n");
    return -1;
}

/* Another binary in the bridge's place (see bench.h); its log goes on in
 * bridge.log. */
int bench_switch_bridge(struct ctx *c, const char *bridge_path, const char *journal) {
    if (c->pr.bridge_pid > 0) procs_stop_bridge(&c->pr);
    if (procs_start_bridge_journal(&c->pr, bridge_path, journal, "") == 0 &&
        load_probe(c->load, 30000, bridge_alive, &c->pr) == 0)
        return 0;
    fprintf(stderr, "bench: %s did not answer\n", bridge_path);
    procs_dump_log(&c->pr, "bridge.log");
    return -1;
}

/* Keep the bridge's peak RSS, the highest over its runs. */
static void note_hwm(struct ctx *c) {
    long kb = sys_proc_kb(c->pr.bridge_pid, "VmHWM");
    if (kb > c->res.bridge_hwm_kb) c->res.bridge_hwm_kb = kb;
}

/* Stop the bridge (it stores what it holds first) and start it again on
 * the default configuration plus extra_yaml. 0 or -1. */
static int restart_bridge(struct ctx *c, const char *extra_yaml) {
    note_hwm(c);
    procs_stop_bridge(&c->pr);
    return start_bridge(c, extra_yaml);
}

/* ==================== Phases ==================== */

/* The baseline once more through plain libmosquitto clients, with the
 * benchmark's own clients disconnected meanwhile (else the broker would
 * deliver to two subscribers). 0 or -1. */
static int saturation_plain(struct ctx *c, long long dur) {
    struct sat_point *p = &c->res.sat_plain;
    struct load *plain;
    p->rooms = c->o.rooms;
    p->publishers = c->o.publishers;
    PROGRESS("saturation, baseline through plain libmosquitto clients (%.0f s)", c->o.duration);
    load_free(c->load);
    c->load = plain = load_new_plain(c->pr.mqtt_port, c->o.publishers, c->o.qos);
    int rc = plain ? bench_run_sat(c, p, TARGET_BASELINE, "satplain", c->t.warmup, dur,
                             c->o.messages) : -1;
    load_free(plain);
    c->load = load_new(c->pr.mqtt_port, c->maxpub, c->o.qos);
    return rc == 0 && c->load ? 0 : -1;
}

/* 1. Saturation, bridge path then baseline (and its plain reference),
 * and Redis memory per message. */
static int phase_saturation(struct ctx *c) {
    struct results *r = &c->res;
    long long dur = (long long)(c->o.duration * S_NS);
    r->sat_bridge.rooms = r->sat_base.rooms = c->o.rooms;
    r->sat_bridge.publishers = r->sat_base.publishers = c->o.publishers;
    PROGRESS("saturation, bridge path (%.0f s)", c->o.duration);
    long long mem0 = kv_used_memory(c->kv);
    if (bench_run_sat(c, &r->sat_bridge, TARGET_BRIDGE, "sat", c->t.warmup, dur,
                      c->o.messages) < 0)
        return -1;
    long long mem1 = kv_used_memory(c->kv);
    if (mem0 >= 0 && mem1 >= 0 && r->sat_bridge.check.stored > 0)
        r->redis_bytes_per_msg = (double)(mem1 - mem0) / (double)r->sat_bridge.check.stored;
    else
        r->redis_bytes_per_msg = -1;
    kv_encodings(c->kv, "sat0", 1, &r->enc);
    PROGRESS("saturation, baseline (%.0f s)", c->o.duration);
    if (bench_run_sat(c, &r->sat_base, TARGET_BASELINE, "sat", c->t.warmup, dur,
                      c->o.messages) < 0)
        return -1;
    return saturation_plain(c, dur);
}

/* One open-loop run at a rate on one path (see bench.h). mark_cpu runs
 * at the window's first send, before it: the /proc reads delay that one
 * message by well under a millisecond. */
int bench_run_open(struct ctx *c, enum load_target target, const char *prefix, double rate,
                   struct load_result *r, struct store_check *check, struct cost *cpu,
                   struct ctxsw *csw) {
    struct load_spec s = spec_for(c, target, prefix, c->o.rooms, c->o.publishers);
    s.rate = rate;
    s.warmup_ns = c->t.lat_warmup;
    s.duration_ns = c->t.latency;
    if (load_run(c->load, &s, r) < 0) return -1;
    window_cost(c, target, r->measured, cpu, csw);
    note_run(c, prefix, r);
    if (check) check_store(c, prefix, c->o.rooms, check);
    return 0;
}

/* One rung of the latency ladder: a fixed rate, or a fraction of the
 * bridge's saturation throughput; quick: also in --quick. */
struct rung {
    double rate, frac;
    int quick;
};

/* Below saturation (phase 2), in this order; 10,000/s comes last. */
static const struct rung ladder[] = {
    { 100, 0, 0 }, { 1000, 0, 1 }, { 0, 0.25, 1 }, { 0, 0.5, 1 }, { 0, 0.75, 1 },
    { 0, 0.9, 0 } };

/* Latency at one offered rate (frac: its share of saturation, for the
 * label), bridge then baseline, each on rooms of its own, into the next
 * lat[] entry, which is then moved to its place by rate. */
static int latency_point(struct ctx *c, double rate, double frac) {
    static int seq;
    char prefix[16];
    struct results *r = &c->res;
    if (rate < 1 || r->nlat >= MAX_LAT) return 0;
    struct lat_point *p = &r->lat[r->nlat];
    *p = (struct lat_point){ .offered = rate };
    if (frac > 0) snprintf(p->label, sizeof(p->label), "%.0f/s (%.0f%% of sat.)", rate, 100 * frac);
    else snprintf(p->label, sizeof(p->label), "%.0f/s", rate);
    snprintf(prefix, sizeof(prefix), "lat%d-", seq++);
    PROGRESS("latency at %.0f msg/s, bridge and baseline", rate);
    if (bench_run_open(c, TARGET_BRIDGE, prefix, rate, &p->bridge, &p->check, &p->cpu[0],
                       &p->csw[0]) < 0 ||
        bench_run_open(c, TARGET_BASELINE, prefix, rate, &p->baseline, NULL, &p->cpu[1],
                       &p->csw[1]) < 0)
        return -1;
    p->done = 1;
    for (int i = r->nlat++; i > 0 && r->lat[i - 1].offered > r->lat[i].offered; i--) {
        struct lat_point t = r->lat[i];
        r->lat[i] = r->lat[i - 1];
        r->lat[i - 1] = t;
    }
    return 0;
}

/* 2. Latency along the ladder, below the bridge's saturation (whose
 * fractions need the saturation phase). */
static int phase_latency(struct ctx *c) {
    if (!(c->res.ran & PH_BIT(PH_SATURATION)))
        PROGRESS("latency: no saturation phase, so only the fixed rates of the ladder");
    for (size_t i = 0; i < sizeof(ladder) / sizeof(ladder[0]); i++) {
        const struct rung *g = &ladder[i];
        if (c->o.quick && !g->quick) continue;
        double rate = g->frac > 0 ? c->res.sat_bridge.r.rate * g->frac : g->rate;
        if (latency_point(c, rate, g->frac) < 0) return -1;
    }
    return 0;
}

/* 6. Latency at 10,000/s, last: on a small machine it overloads the
 * bridge, and the backlog must not spill into the other phases. */
static int phase_latency_high(struct ctx *c) {
    return latency_point(c, 10000, 0);
}

/* Wait, at most timeout_ns, until the bridge has adopted every seeded
 * room (it walks them in the background, republishing their newest
 * messages, which would compete with the measurements); records how long
 * it took, or -1 after the timeout. */
static void wait_adopted(struct ctx *c, long small, long big, long long timeout_ns) {
    static char names[USER_ROOMS][16];
    static const char *rooms[2 + USER_ROOMS];
    static long last[2 + USER_ROOMS];
    int n = 2 + USER_ROOMS, done = -1;
    rooms[0] = "hsmall";
    last[0] = small;
    rooms[1] = "hbig";
    last[1] = big;
    for (int i = 0; i < USER_ROOMS; i++) {
        snprintf(names[i], sizeof(names[i]), "ur%d", i);
        rooms[2 + i] = names[i];
        last[2 + i] = USER_ROOM_MSGS;
    }
    long long t0 = now_ns();
    while (now_ns() - t0 < timeout_ns && !bench_interrupted &&
           (done = kv_rooms_adopted(c->kv, rooms, last, n)) >= 0 && done < n)
        sleep_until_ns(now_ns() + 100000000LL);
    c->res.adopt_s = done == n ? (double)(now_ns() - t0) / 1e9 : -1;
    if (done != n) PROGRESS("the bridge has adopted %d of the %d seeded rooms", done, n);
    else sleep_until_ns(now_ns() + S_NS / 5);     /* the last republishes */
}

/* Seed the two history rooms and the user u0's USER_ROOMS rooms (ur<i>,
 * USER_ROOM_MSGS messages each, u0 among their senders); records how long
 * it took. 0 or -1. */
static int seed_history(struct ctx *c, long small, long big) {
    long rooms_msgs = (long)USER_ROOMS * USER_ROOM_MSGS;
    PROGRESS("seeding %ld + %ld messages, and %d rooms of %d for u0, into Redis", small, big,
             USER_ROOMS, USER_ROOM_MSGS);
    long long t0 = now_ns();
    if (kv_seed_room(c->kv, "hsmall", small, 10, c->o.payload) < 0 ||
        kv_seed_room(c->kv, "hbig", big, 10, c->o.payload) < 0 ||
        kv_seed_user_rooms(c->kv, "u0", "ur", USER_ROOMS, USER_ROOM_MSGS, USER_ROOM_MSGS,
                           c->o.payload) < 0)
        return -1;
    c->res.seed_s = (double)(now_ns() - t0) / 1e9;
    c->res.seeded = small + big + rooms_msgs;
    c->res.seeded_rooms = 2 + USER_ROOMS;
    t0 = now_ns();
    if (kv_wait_rewrite(c->kv, 300000) < 0) PROGRESS("Redis is still rewriting its AOF");
    c->res.rewrite_s = (double)(now_ns() - t0) / 1e9;
    wait_adopted(c, small, big, 120 * S_NS);
    return 0;
}

/* One history point: what is asked and what a good reply holds. */
struct hist_def {
    const char *room;             /* chat/<room>/history ... */
    const char *topic;            /* ... or this topic */
    const char *request;
    long room_msgs;
    int user_rooms;
    const char *user;             /* every message by this user */
    const char *start, *item, *has;   /* load_spec's expect_* */
};

/* Run one point into c->res.hist[i]. 0 or -1. */
static int history_point(struct ctx *c, int i, const struct hist_def *d) {
    static char labels[MAX_HIST][96], topics[MAX_HIST][80];
    struct hist_point *h = &c->res.hist[i];
    if (d->topic) {
        snprintf(topics[i], sizeof(topics[i]), "%s", d->topic);
        snprintf(labels[i], sizeof(labels[i]), "%s %s, %d rooms", d->topic, d->request,
                 d->user_rooms);
    } else {
        snprintf(topics[i], sizeof(topics[i]), "chat/%s/history", d->room);
        snprintf(labels[i], sizeof(labels[i]), "%s, room of %ld", d->request, d->room_msgs);
    }
    *h = (struct hist_point){ .label = labels[i], .topic = topics[i], .request = d->request,
                              .room_msgs = d->room_msgs, .user_rooms = d->user_rooms };
    struct load_spec s = spec_for(c, TARGET_HISTORY, d->room, 1, 1);
    s.window = HISTORY_WINDOW;
    s.request = d->request;
    s.topic = d->topic;
    s.expect_start = d->start;
    s.expect_item = d->item;
    s.expect_has = d->has;
    s.expect_msgs = 50;
    s.expect_user = d->user;
    s.warmup_ns = c->t.hist_warmup;
    s.duration_ns = c->t.history;
    s.mark = NULL;
    PROGRESS("history %s", labels[i]);
    if (load_run(c->load, &s, &h->r) < 0) return -1;
    c->res.nhist = i + 1;
    note_run(c, labels[i], &h->r);
    return 0;
}

/* 4. History: {"limit":50} on a small and a big room (HIST_REF, the
 * reference of the others), the big room filtered by one user (a tenth of
 * its messages), a catch-up page from the big room's middle (the 50 ids
 * after big/2, oldest first), and u0's rooms: 50 of USER_ROOMS. */
static int phase_history(struct ctx *c) {
    static char after[64], first[64];
    long small = 1000, big = c->o.quick ? 20000 : 1000000;
    if (seed_history(c, small, big) < 0) return -1;
    snprintf(after, sizeof(after), "{\"after\":%ld,\"limit\":50}", big / 2);
    snprintf(first, sizeof(first), "\"messages\":[{\"id\":%ld,", big / 2 + 1);
    const struct hist_def defs[MAX_HIST] = {
        { .room = "hsmall", .request = "{\"limit\":50}", .room_msgs = small },
        { .room = "hbig", .request = "{\"limit\":50}", .room_msgs = big },
        { .room = "hbig", .request = "{\"user\":\"u0\",\"limit\":50}", .room_msgs = big,
          .user = "u0" },
        { .room = "hbig", .request = after, .room_msgs = big, .has = first },
        { .room = "$rooms", .topic = "chat/$rooms", .request = "{\"user\":\"u0\",\"limit\":50}",
          .room_msgs = USER_ROOM_MSGS, .user_rooms = USER_ROOMS, .start = "{\"user\":\"u0\",",
          .item = "\"last_id\":", .has = "\"next_before\":" },
    };
    for (int i = 0; i < MAX_HIST; i++)
        if (history_point(c, i, &defs[i]) < 0) return -1;
    return 0;
}

/* One point of the scale curve (prefix "sc<n>-"). 0 or -1. */
static int scale_point(struct ctx *c, struct sat_point *p, int rooms, int pubs) {
    static int n;
    static char prefixes[2 * MAX_SCALE][16];
    char *prefix = prefixes[n++ % (2 * MAX_SCALE)];
    snprintf(prefix, sizeof(prefixes[0]), "sc%d-", n);
    p->rooms = rooms;
    p->publishers = pubs;
    PROGRESS("scale: %d rooms, %d publishers", rooms, pubs);
    return bench_run_sat(c, p, TARGET_BRIDGE, prefix, c->t.scale_warmup, c->t.scale, 0);
}

/* 3. The scale curve: rooms at the default publishers, publishers at the
 * default rooms; --quick runs only the largest point of each. */
static int phase_scale(struct ctx *c) {
    static const int rooms[MAX_SCALE] = { 1, 100, 10000 };
    static const int pubs[MAX_SCALE] = { 1, 10, 100 };
    struct results *r = &c->res;
    int first = c->o.quick ? MAX_SCALE - 1 : 0;
    for (int i = first; i < MAX_SCALE; i++) {
        if (scale_point(c, &r->scale_rooms[r->nscale_rooms], rooms[i], c->o.publishers) < 0)
            return -1;
        r->nscale_rooms++;
    }
    for (int i = first; i < MAX_SCALE; i++) {
        if (scale_point(c, &r->scale_pubs[r->nscale_pubs], c->o.rooms, pubs[i]) < 0)
            return -1;
        r->nscale_pubs++;
    }
    return 0;
}

/* One retention round: cap more messages to each room (publisher i
 * writes only to room ret<i>), then Redis's used_memory. 0 or -1. */
static int retention_round(struct ctx *c, struct ret_point *rt) {
    struct load_spec s = spec_for(c, TARGET_BRIDGE, "ret", RET_ROOMS, RET_ROOMS);
    struct load_result r;
    s.per_publisher = rt->cap;
    s.duration_ns = c->t.ret_round;
    s.mark = NULL;
    if (load_run(c->load, &s, &r) < 0) return -1;
    note_run(c, "retention", &r);
    rt->sent += r.sent;
    rt->received += r.received;
    rt->missing += r.missing;
    rt->bad += r.bad;
    rt->seconds += r.seconds;
    rt->mem[rt->rounds++] = kv_used_memory(c->kv);
    return 0;
}

/* Each room's index holds exactly cap ids, and its counter says every
 * message it was sent was stored. */
static void check_retention(struct ctx *c, struct ret_point *rt) {
    long long ctr[RET_ROOMS];
    char room[16];
    int have = kv_counters(c->kv, "ret", RET_ROOMS, ctr) == 0;
    for (int i = 0; i < RET_ROOMS; i++) {
        snprintf(room, sizeof(room), "ret%d", i);
        rt->ids[i] = kv_room_ids(c->kv, room);
        if (rt->ids[i] != rt->cap || !have || ctr[i] != rt->rounds * rt->cap) rt->rooms_off++;
    }
    if (rt->rooms_off == 0) return;
    c->res.problems++;
    fprintf(stderr, "bench: retention: %d of %d rooms do not hold %ld ids or did not store "
            "%ld messages\n", rt->rooms_off, RET_ROOMS, rt->cap, rt->rounds * rt->cap);
}

/* The rounds (up to the first that lost a message), with used_memory
 * before them. Redis 7 allocates a latency histogram (about 24 kB) for
 * each command at its first call; latency tracking is off meanwhile so
 * that the first trims' DEL, ZREM, HDEL... do not show as growth. */
static int retention_rounds(struct ctx *c, struct ret_point *rt) {
    int rc = 0;
    kv_config_set(c->kv, "latency-tracking", "no");
    rt->mem_before = kv_used_memory(c->kv);
    while (rc == 0 && rt->rounds < RET_ROUNDS && rt->missing == 0 && !bench_interrupted)
        rc = retention_round(c, rt);
    kv_config_set(c->kv, "latency-tracking", "yes");      /* Redis's default */
    return rc;
}

/* 5. Retention: the bridge restarted with max_messages_per_room = cap,
 * RET_ROUNDS rounds of cap messages per room, the rooms checked, and the
 * default bridge back. */
static int phase_retention(struct ctx *c) {
    struct ret_point *rt = &c->res.ret;
    char yaml[96];
    *rt = (struct ret_point){ .cap = c->t.ret_cap };
    snprintf(yaml, sizeof(yaml), "retention:\n  max_messages_per_room: %ld\n", rt->cap);
    PROGRESS("retention: max_messages_per_room %ld, %d rooms x %d x %ld messages", rt->cap,
             RET_ROOMS, RET_ROUNDS, rt->cap);
    if (restart_bridge(c, yaml) < 0 || retention_rounds(c, rt) < 0) return -1;
    check_retention(c, rt);
    rt->done = 1;
    return restart_bridge(c, "");
}

/* ==================== Run ==================== */

/* Servers, clients, bridge; then the versions for the report. 0 or -1. */
static int setup(struct ctx *c) {
    int maxpub = c->maxpub = c->o.publishers > 100 ? c->o.publishers : 100;
    PROGRESS("starting mosquitto, redis-server and %s", c->o.bridge);
    int rc = procs_start_servers(&c->pr);
    snprintf(c->res.broker_conf, sizeof(c->res.broker_conf), "%s", c->pr.broker_conf);
    if (rc < 0 || (c->kv = kv_connect(c->pr.redis_port)) == NULL) return -1;
    if ((c->load = load_new(c->pr.mqtt_port, maxpub, c->o.qos)) == NULL) return -1;
    if (start_bridge(c, "") < 0) {
        procs_dump_log(&c->pr, "bridge.log");
        return -1;
    }
    proc_mosquitto_version(c->res.mosquitto, sizeof(c->res.mosquitto));
    kv_version(c->kv, c->res.redis, sizeof(c->res.redis));
    load_client_version(c->res.client, sizeof(c->res.client));
    return 0;
}

/* Every phase asked for (--only), in order; stops at the first that
 * cannot run. */
static void run_phases(struct ctx *c) {
    static const struct {
        enum bench_phase ph;
        const char *name;
        int (*fn)(struct ctx *);
    } phases[] = {
        { PH_SATURATION, "saturation", phase_saturation },
        { PH_LATENCY, "latency", phase_latency }, { PH_SCALE, "scale", phase_scale },
        { PH_HISTORY, "history", phase_history }, { PH_RETENTION, "retention", phase_retention },
        { PH_HIGH, "latency at 10000/s", phase_latency_high } };
    for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
        if (!(c->o.only & PH_BIT(phases[i].ph))) continue;
        if (bench_interrupted) {
            snprintf(c->res.failed, sizeof(c->res.failed), "interrupted");
            return;
        }
        c->res.ran |= PH_BIT(phases[i].ph);
        if (phases[i].fn(c) < 0 || !procs_bridge_alive(&c->pr)) {
            snprintf(c->res.failed, sizeof(c->res.failed), "%s phase failed%s", phases[i].name,
                     procs_bridge_alive(&c->pr) ? "" : " (the bridge exited)");
            procs_dump_log(&c->pr, "bridge.log");
            return;
        }
    }
    note_hwm(c);
}

/* SIGINT/SIGTERM: stop the phases and clean up; a second one exits now. */
static void on_signal(int sig) {
    (void)sig;
    if (bench_interrupted) _exit(130);     /* children die with us (PDEATHSIG) */
    bench_interrupted = 1;
}

/* The run's settings and defaults, before anything is measured. */
static void init_results(struct ctx *c) {
    struct results *r = &c->res;
    time_t now = time(NULL);
    struct tm tm;
    r->cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    strftime(r->date, sizeof(r->date), "%Y-%m-%d %H:%M UTC", gmtime_r(&now, &tm));
    r->only = c->o.only;
    r->quick = c->o.quick;
    r->qos = c->o.qos;
    r->payload = c->o.payload;
    r->window = c->o.window;
    r->rooms = c->o.rooms;
    r->publishers = c->o.publishers;
    r->duration_s = c->o.duration;
    snprintf(r->mosquitto, sizeof(r->mosquitto), "?");
    snprintf(r->redis, sizeof(r->redis), "?");
    snprintf(r->client, sizeof(r->client), "?");
    snprintf(r->broker_extra, sizeof(r->broker_extra), "%s", c->o.broker_extra);
}

/* --cluster: run cluster.c's points and report them. Exit status as
 * main's. */
static int main_cluster(const struct opts *o) {
    static struct group_results r;
    struct group_opts g = { .duration = o->duration, .rooms = o->rooms,
        .publishers = o->publishers, .payload = o->payload, .qos = o->qos,
        .window = o->window, .bridges = o->bridges, .keep = o->keep, .bridge = o->bridge,
        .broker_extra = o->broker_extra };
    cluster_bench(&g, &r);
    if (!o->json_only) {
        report_group_table(&r);
        printf("\n");
    }
    report_group_json(&r);
    return r.problems || r.failed[0] ? 1 : 0;
}

/* The watchdog's limit: the longest a run may take. */
static int watchdog_s(const struct opts *o) {
    if (o->compare)
        return 600 + o->rounds * (3 * ((int)o->duration + 10) + 60);
    return o->quick ? 300 : 3600;
}

/* The servers and clients of the run, and the bridge, stopped by PID. */
static void teardown(struct ctx *c) {
    load_free(c->load);
    c->load = NULL;
    kv_free(c->kv);
    c->kv = NULL;
    procs_stop_all(&c->pr);
}

/* --compare: set up, compare.c's rounds, clean up, report. Exit status
 * as main's. */
static int main_compare(struct ctx *c) {
    static struct cmp_results r;
    if (c->o.plot) PROGRESS("--plot: no picture with --compare");
    if (setup(c) < 0) snprintf(c->res.failed, sizeof(c->res.failed), "setup failed");
    else compare_bench(c, &r);
    teardown(c);
    if (!c->o.json_only) {
        report_compare_table(&c->res, &r);
        printf("\n");
    }
    report_compare_json(&c->res, &r);
    return c->res.problems || c->res.failed[0] ? 1 : 0;
}

/* Set up, run the phases, clean up, report; see the top of this file. */
int main(int argc, char **argv) {
    static struct ctx c;
    parse_opts(argc, argv, &c.o);
    set_timing(&c);
    init_results(&c);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    if (c.o.cluster) return main_cluster(&c.o);
    c.pr.keep = c.o.keep;
    snprintf(c.pr.broker_extra, sizeof(c.pr.broker_extra), "%s", c.o.broker_extra);
    procs_watchdog(&c.pr, watchdog_s(&c.o));
    if (c.o.compare) return main_compare(&c);
    if (setup(&c) < 0) snprintf(c.res.failed, sizeof(c.res.failed), "setup failed");
    else run_phases(&c);
    teardown(&c);
    if (c.o.plot) plot_results(&c.res, c.o.plot);
    if (!c.o.json_only) {
        report_table(&c.res);
        printf("\n");
    }
    report_json(&c.res);
    return c.res.problems || c.res.failed[0] ? 1 : 0;
}
