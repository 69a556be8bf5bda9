/* report.c -- the benchmark's output: a table for people and one JSON line
 * for scripts, both from struct results (see bench.h); the same two for
 * bench --cluster from struct group_results. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* a / b, or NAN when b is not positive (printed "-" or null). */
static double ratio(double a, double b) {
    return b > 0 && a >= 0 ? a / b : NAN;
}

/* The value of the last line "set_tcp_nodelay <v>" of the broker's
 * settings (the shipped ones, then --mosquitto-conf's): 1 when true. */
int broker_nodelay(const char *conf, const char *extra) {
    int on = 0;
    const char *texts[2] = { conf, extra };
    for (int t = 0; t < 2; t++)
        for (const char *l = texts[t]; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0))
            if (strncmp(l, "set_tcp_nodelay", 15) == 0 && (l[15] == ' ' || l[15] == '\t'))
                on = strncmp(l + 16 + strspn(l + 16, " \t"), "true", 4) == 0;
    return on;
}

/* ==================== Table ==================== */

/* Lines as "[a] [b] [c]". */
static void print_lines(const char *lines) {
    for (const char *l = lines; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0))
        printf(" [%.*s]", (int)strcspn(l, "\n"), l);
}

/* Which broker settings were used, and TCP_NODELAY everywhere. */
static void broker_lines(const char *conf, const char *extra) {
    printf("mosquitto runs with the settings of config/mosquitto.conf:");
    print_lines(conf);
    printf("\n");
    printf("... then the benchmark's own: [%.*s] (%s)\n", (int)strcspn(BROKER_OWN, "\n"),
           BROKER_OWN, BROKER_OWN_WHY);
    if (extra[0]) {
        printf("mosquitto.conf additions:");
        print_lines(extra);
        printf("\n");
    }
    if (broker_nodelay(conf, extra))
        printf("TCP_NODELAY on every hop: the broker (set_tcp_nodelay true, as shipped), the "
               "bridge, the load clients.\n");
    else
        printf("WARNING: the broker runs without set_tcp_nodelay: small packets may wait ~40 ms "
               "for a delayed ACK.\n");
}

/* "%*.*f" or a dash for an unknown value. */
static void cell(double v, int width, int prec) {
    if (isnan(v) || v < 0) printf(" %*s", width, "-");
    else printf(" %*.*f", width, prec, v);
}

/* Machine, versions and settings. */
static void table_header(const struct results *r) {
    printf("chat-bridge benchmark (%s run, %s): %d cores, mosquitto %s, Redis %s, load "
           "clients %s\n", r->quick ? "quick" : "full", r->date, r->cores, r->mosquitto,
           r->redis, r->client);
    printf("QoS %d, %d-byte texts, %d publishers x %d in flight, %d rooms, %.1f s per "
           "saturation phase\n", r->qos, r->payload, r->publishers, r->window, r->rooms,
           r->duration_s);
    printf("The benchmark's clients, mosquitto, the bridge and Redis (AOF everysec) "
           "share these cores.\n");
    broker_lines(r->broker_conf, r->broker_extra);
}

/* Closed-loop throughput, both paths, their ratio and the stored check. */
static void table_saturation(const struct results *r) {
    const struct sat_point *b = &r->sat_bridge, *s = &r->sat_base;
    printf("\nSaturation throughput (closed loop, counted at the subscriber)\n");
    printf("  %-44s %10s %9s %8s\n", "", "msg/s", "received", "missing");
    printf("  %-44s", "bridge   chat/<room>/send -> chat/+/msgs");
    cell(b->r.rate, 10, 0);
    printf(" %9lld %8lld\n", b->r.received, b->r.missing);
    printf("  %-44s", "baseline base/<room>/msgs, broker only");
    cell(s->r.rate, 10, 0);
    printf(" %9lld %8lld\n", s->r.received, s->r.missing);
    printf("  %-44s", "ratio bridge/baseline");
    cell(ratio(b->r.rate, s->r.rate), 10, 3);
    if (r->sat_plain.rooms) {
        const struct sat_point *q = &r->sat_plain;
        printf("\n  %-44s", "baseline, plain libmosquitto clients (ref.)");
        cell(q->r.rate, 10, 0);
        printf(" %9lld %8lld", q->r.received, q->r.missing);
        printf("\n  %-44s", "ratio baseline/reference");
        cell(ratio(s->r.rate, q->r.rate), 10, 3);
        printf("  (>= ~1: the load clients do not hold the baseline down;\n  %44s  the "
               "reference runs one library thread per client, mosquitto_loop_start)", "");
    }
    printf("\n  stored check: Redis counters %lld, republishes received %lld, %d rooms "
           "differ%s\n", b->check.stored, b->check.republished, b->check.rooms_off,
           b->check.rooms_off || b->check.stored != b->check.republished ? "  MISMATCH" : "");
    printf("  other processes on the machine meanwhile: %.2f cores (bridge phase), %.2f "
           "(baseline)\n", b->other_cores, s->other_cores);
}

/* One latency row: percentiles in ms, delivered rate, and a note. */
static void lat_row(const char *label, const char *path, const struct load_result *x) {
    printf("  %-20s %-9s", label, path);
    cell(x->lat.p50, 8, 3);
    cell(x->lat.p99, 8, 3);
    cell(x->lat.p999, 8, 3);
    cell(x->lat.max, 8, 3);
    cell(x->rate, 10, 0);
    if (!x->reached) printf("  offered rate not reached (sent %.0f/s)", x->achieved);
    else if (x->rate < 0.95 * x->offered) printf("  overloaded: delivered < offered");
    if (x->missing) printf("  %lld missing", x->missing);
    if (x->rejected || x->unacked) printf("  %lld refused, %lld unacknowledged", x->rejected,
                                          x->unacked);
    printf("\n");
}

/* Open-loop latency: bridge, baseline and ratio per offered rate. */
static void table_latency(const struct results *r) {
    printf("\nLatency at fixed offered rates (open loop, ms from scheduled send to receipt)\n");
    printf("  %-20s %-9s %8s %8s %8s %8s %10s\n", "offered", "path", "p50", "p99",
           "p99.9", "max", "deliv/s");
    for (int i = 0; i < r->nlat; i++) {
        const struct lat_point *p = &r->lat[i];
        if (!p->done) continue;
        lat_row(p->label, "bridge", &p->bridge);
        lat_row("", "baseline", &p->baseline);
        printf("  %-20s %-9s", "", "ratio");
        cell(ratio(p->bridge.lat.p50, p->baseline.lat.p50), 8, 2);
        cell(ratio(p->bridge.lat.p99, p->baseline.lat.p99), 8, 2);
        cell(ratio(p->bridge.lat.p999, p->baseline.lat.p999), 8, 2);
        cell(ratio(p->bridge.lat.max, p->baseline.lat.max), 8, 2);
        printf("\n");
    }
}

/* One row of the fixed-rate cost table: CPU of each process, the
 * bridge/mosquitto ratio, context switches per message. */
static void fixed_row(const char *label, const char *path, const struct cost *c,
                      const struct ctxsw *k) {
    printf("  %-20s %-9s", label, path);
    cell(c->bridge, 8, 3);
    cell(c->mosquitto, 9, 3);
    cell(c->redis, 8, 3);
    cell(c->bench, 8, 3);
    cell(ratio(c->bridge, c->mosquitto), 8, 2);
    cell(k->bridge, 8, 2);
    cell(k->mosquitto, 8, 2);
    printf("\n");
}

/* CPU and context switches per message at each offered rate: the
 * bridge/mosquitto CPU ratio at a fixed rate, beside the saturation's. */
static void table_fixed_cost(const struct results *r) {
    printf("\nCost per message at fixed offered rates (open loop; CPU s per 100,000 messages "
           "over the window;\nctx sw: context switches per message, all threads)\n");
    printf("  %-20s %-9s %8s %9s %8s %8s %8s %8s %8s\n", "offered", "path", "bridge",
           "mosquitto", "redis", "load", "br/mosq", "ctxsw br", "ctxsw mq");
    for (int i = 0; i < r->nlat; i++) {
        const struct lat_point *p = &r->lat[i];
        if (!p->done) continue;
        fixed_row(p->label, "bridge", &p->cpu[0], &p->csw[0]);
        fixed_row("", "baseline", &p->cpu[1], &p->csw[1]);
    }
}

/* One encoding: the key, its encoding, and the size that decides it
 * against Redis's listpack threshold. */
static void encoding_row(const char *what, const char *key, const char *enc, long long size,
                         const char *unit, const char *limit, long long max) {
    printf("    %-13s %-30s %-10s (%lld %s %s %s %lld)\n", what, key, enc, size, unit,
           size > max ? ">" : "<=", limit, max);
}

/* OBJECT ENCODING of a stored message and of its room's index. */
static void table_encodings(const struct encodings *e) {
    printf("  Redis encoding (listpack is the compact one):\n");
    encoding_row("message hash", e->msg_key, e->msg, e->msg_bytes, "content bytes",
                 "hash-max-listpack-value", e->hash_max_value);
    encoding_row("room index", e->index_key, e->index, e->index_ids, "ids",
                 "zset-max-listpack-entries", e->zset_max_entries);
}

/* CPU s per 100,000 messages at a rate, in cores; NAN if unknown. */
static double cores(double per_100k, double rate) {
    return per_100k >= 0 && rate > 0 ? per_100k * rate / 1e5 : NAN;
}

/* One row of the cost table: the four processes. */
static void cost_row(const char *label, const struct cost *c, double scale_rate, int prec) {
    printf("  %-24s", label);
    cell(scale_rate > 0 ? cores(c->bridge, scale_rate) : c->bridge, 10, prec);
    cell(scale_rate > 0 ? cores(c->mosquitto, scale_rate) : c->mosquitto, 10, prec);
    cell(scale_rate > 0 ? cores(c->redis, scale_rate) : c->redis, 12, prec);
    cell(scale_rate > 0 ? cores(c->bench, scale_rate) : c->bench, 13, prec);
}

/* Whether the load clients could have limited a saturation point: their
 * busiest thread near a full core. */
static const char *load_verdict(double busiest) {
    if (busiest < 0) return "unknown";
    return busiest < 0.85 ? "below a core: not the limit" : "NEAR A FULL CORE: may be the limit";
}

/* CPU per message of each process (the load clients are this process),
 * the cores each used, RSS and Redis memory per message. */
static void table_cost(const struct results *r) {
    const struct cost *b = &r->sat_bridge.cpu, *s = &r->sat_base.cpu;
    printf("\nCost per message (saturation phase; CPU seconds per 100,000 messages; load "
           "clients: this\nbenchmark's own process, its libmosquitto publishers and "
           "subscriber)\n");
    printf("  %-24s %10s %10s %12s %13s\n", "", "bridge", "mosquitto", "redis-server",
           "load clients");
    cost_row("bridge path", b, 0, 3);
    printf("\n");
    cost_row("baseline", s, 0, 3);
    printf("\n");
    cost_row("cores used, bridge path", b, r->sat_bridge.r.rate, 2);
    printf("\n");
    cost_row("cores used, baseline", s, r->sat_base.r.rate, 2);
    printf("\n  busiest load thread, cores: bridge path");
    cell(r->sat_bridge.load_busiest, 0, 2);
    printf(" (%s), baseline", load_verdict(r->sat_bridge.load_busiest));
    cell(r->sat_base.load_busiest, 0, 2);
    printf(" (%s)\n", load_verdict(r->sat_base.load_busiest));
    printf("  load clients / bridge, CPU per message ");
    cell(ratio(b->bench, b->bridge), 0, 2);
    printf("\n  bridge/mosquitto (bridge path) ");
    cell(ratio(b->bridge, b->mosquitto), 0, 2);
    printf("; bridge / mosquitto of the baseline ");
    cell(ratio(b->bridge, s->mosquitto), 0, 2);
    printf("\n  context switches per message (all threads): bridge path: bridge");
    cell(r->sat_bridge.csw.bridge, 0, 2);
    printf(", mosquitto");
    cell(r->sat_bridge.csw.mosquitto, 0, 2);
    printf("; baseline: mosquitto");
    cell(r->sat_base.csw.mosquitto, 0, 2);
    printf("\n  bridge peak RSS (VmHWM, whole run) %.1f MB\n", (double)r->bridge_hwm_kb / 1024);
    printf("  Redis used_memory per stored message ");
    cell(r->redis_bytes_per_msg, 0, 0);
    printf(" bytes\n");
    table_encodings(&r->enc);
}

/* A history point's requests/s over the reference point's ({"limit":50}
 * on the big room), NAN when either is missing. */
static double hist_ratio(const struct results *r, int i) {
    if (i >= r->nhist || r->nhist <= HIST_REF) return NAN;
    return ratio(r->hist[i].r.rate, r->hist[HIST_REF].r.rate);
}

/* History request rate and latency per request kind. */
static void table_history(const struct results *r) {
    printf("\nHistory (MQTT 5 request/response, closed loop of %d requests; the user u0 "
           "has 1/10 of a room,\nand is in %d rooms of %d messages; /ref: req/s over "
           "{\"limit\":50} on the big room)\n", HISTORY_WINDOW, USER_ROOMS, USER_ROOM_MSGS);
    printf("  %-50s %9s %6s %8s %8s\n", "request", "req/s", "/ref", "p50 ms", "p99 ms");
    for (int i = 0; i < r->nhist; i++) {
        const struct hist_point *h = &r->hist[i];
        printf("  %-50s", h->label);
        cell(h->r.rate, 9, 0);
        cell(hist_ratio(r, i), 6, 3);
        cell(h->r.lat.p50, 8, 3);
        cell(h->r.lat.p99, 8, 3);
        if (h->r.missing || h->r.bad)
            printf("  %lld missing, %lld bad replies", h->r.missing, h->r.bad);
        printf("\n");
    }
    printf("  (seeded %ld messages in %d rooms straight into Redis in %.1f s, then waited "
           "%.1f s for its AOF rewrite\n   and", r->seeded, r->seeded_rooms, r->seed_s,
           r->rewrite_s);
    cell(r->adopt_s, 0, 1);
    printf(" s for the bridge to adopt the seeded rooms)\n");
}

/* One scale row. */
static void scale_row(const char *what, const struct sat_point *p) {
    char label[64];
    snprintf(label, sizeof(label), "by %-10s %5d rooms, %3d publishers", what, p->rooms,
             p->publishers);
    printf("  %-40s", label);
    cell(p->r.rate, 10, 0);
    cell(p->cpu.bridge, 12, 3);
    cell(p->r.lat.p99, 9, 2);
    cell(p->other_cores, 8, 2);
    if (p->r.missing) printf("  %lld missing", p->r.missing);
    if (p->check.rooms_off) printf("  %d rooms' counters differ", p->check.rooms_off);
    printf("\n");
}

/* Throughput and bridge CPU per point of the scale curve. */
static void table_scale(const struct results *r) {
    printf("\nScale (closed loop, bridge path; bridge CPU s per 100k msgs; cores used by "
           "other processes)\n");
    printf("  %-40s %10s %12s %9s %8s\n", "", "msg/s", "bridge CPU", "p99 ms", "others");
    for (int i = 0; i < r->nscale_rooms; i++) scale_row("rooms", &r->scale_rooms[i]);
    for (int i = 0; i < r->nscale_pubs; i++) scale_row("publishers", &r->scale_pubs[i]);
}

/* used_memory after the last round over after the first (the rooms just
 * full); with net, both counted from the phase's start, so that what the
 * earlier phases left in Redis does not dilute the ratio. */
static double ret_ratio(const struct ret_point *t, int net) {
    if (t->rounds < 2 || t->mem_before < 0 || t->mem[0] < 0 || t->mem[t->rounds - 1] < 0)
        return NAN;
    long long base = net ? t->mem_before : 0;
    return ratio((double)(t->mem[t->rounds - 1] - base), (double)(t->mem[0] - base));
}

/* Redis memory per round of the retention phase, the ratios, the rooms. */
static void table_retention(const struct results *r) {
    const struct ret_point *t = &r->ret;
    printf("\nRetention (bridge restarted with retention.max_messages_per_room %ld; %d rooms, "
           "one publisher each, closed loop)\n", t->cap, RET_ROOMS);
    printf("  %-22s %8d", "messages per room", 0);
    for (int i = 0; i < t->rounds; i++) printf(" %8ld", (i + 1) * t->cap);
    printf("\n  %-22s", "Redis used_memory, MB");
    cell((double)t->mem_before / 1e6, 8, 3);
    for (int i = 0; i < t->rounds; i++) cell((double)t->mem[i] / 1e6, 8, 3);
    printf("\n  last / first after the cap: used_memory");
    cell(ret_ratio(t, 0), 0, 3);
    printf(", growth since the phase's start");
    cell(ret_ratio(t, 1), 0, 3);
    printf(" (flat: 1.0)\n  %lld sent, %lld missing, %lld bad,", t->sent, t->missing, t->bad);
    cell(ratio((double)t->received, t->seconds), 0, 0);
    printf(" msg/s; ZCARD of chatroom:ret<i>:messages:ids:");
    for (int i = 0; i < RET_ROOMS; i++) printf(" %lld", t->ids[i]);
    printf("%s\n", t->rooms_off ? "  MISMATCH" : "");
}

/* With --only: the phases asked for, and those left out. */
static void table_only(const struct results *r) {
    if (r->only == PH_ALL) return;
    printf("Phases (--only):");
    for (int i = 0; i < PH_COUNT; i++)
        if (r->only & PH_BIT(i)) printf(" %s", phase_names[i]);
    printf("; skipped:");
    for (int i = 0; i < PH_COUNT; i++)
        if (!(r->only & PH_BIT(i))) printf(" %s", phase_names[i]);
    printf("\n");
}

/* Every section of the phases that ran, then the verdict. */
void report_table(const struct results *r) {
    int sat = (r->ran & PH_BIT(PH_SATURATION)) != 0;
    int lat = (r->ran & (PH_BIT(PH_LATENCY) | PH_BIT(PH_HIGH))) != 0;
    table_header(r);
    table_only(r);
    if (sat) table_saturation(r);
    if (lat) table_latency(r);
    if (sat) table_cost(r);
    else if (r->ran) printf("\nBridge peak RSS (VmHWM, whole run) %.1f MB\n",
                            (double)r->bridge_hwm_kb / 1024);
    if (lat) table_fixed_cost(r);
    if (r->nhist) table_history(r);
    if (r->nscale_rooms + r->nscale_pubs) table_scale(r);
    if (r->ret.done) table_retention(r);
    if (r->plot[0]) printf("\nPicture: %s\n", r->plot);
    if (r->failed[0]) printf("\nRun stopped early: %s\n", r->failed);
    printf("\nResult: %s\n", r->problems || r->failed[0] ?
           "FAILED (see above and stderr)" :
           "ok: every message arrived, was acknowledged and was stored");
}

/* ==================== Table: scaling out ==================== */

/* Machine, versions, settings and the load average before the run. */
static void group_header(const struct group_results *r) {
    printf("chat-bridge scale-out benchmark: %d cores, mosquitto %s, Redis %s, load clients "
           "%s\n", r->cores, r->mosquitto, r->redis, r->client);
    broker_lines(r->broker_conf, "");
    printf("QoS %d, %d-byte texts, %d publishers x %d in flight, %d rooms, %.1f s per point.\n",
           r->qos, r->payload, r->publishers, r->window, r->rooms, r->duration_s);
    printf("Bridges of a point share one mqtt.shared_group; the cluster is %d primaries, no "
           "replicas,\nAOF everysec like the single Redis. The benchmark's clients, mosquitto, "
           "the bridges and\nRedis share these cores. Load average before the run: %s\n",
           PROCS_NODES, r->load_before);
}

/* One point: rate, ratio to the baseline, latency, CPU over the window. */
static void group_row(const struct group_point *p, double base_rate) {
    printf("  %-26s", p->label);
    cell(p->r.rate, 7, 0);
    cell(ratio(p->r.rate, base_rate), 6, 3);
    cell(p->r.lat.p50, 6, 1);
    cell(p->r.lat.p99, 6, 1);
    cell(p->bridge_cpu, 7, 2);
    cell(ratio((double)p->r.measured, p->bridge_cpu), 8, 0);
    cell(p->mosquitto_cpu, 6, 2);
    cell(p->redis_cpu, 6, 2);
    cell(p->bench_cpu, 6, 2);
    cell(p->other_cores, 6, 2);
    if (p->r.missing) printf("  %lld missing", p->r.missing);
    if (p->check.rooms_off) printf("  %d rooms' counters differ", p->check.rooms_off);
    printf("\n");
}

/* CPU microseconds per message measured, of each process. */
static void group_cost(const struct group_results *r) {
    printf("\nCPU per message, microseconds (CPU s over the window / messages measured)\n");
    printf("  %-26s %7s %7s %7s %7s %7s\n", "", "bridges", "mosq.", "redis", "bench", "all");
    for (int i = 0; i < r->npts; i++) {
        const struct group_point *p = &r->pts[i];
        double n = (double)p->r.measured / 1e6, all = p->mosquitto_cpu + p->bench_cpu;
        all += (p->bridge_cpu > 0 ? p->bridge_cpu : 0) + (p->redis_cpu > 0 ? p->redis_cpu : 0);
        printf("  %-26s", p->label);
        cell(ratio(p->bridge_cpu, n), 7, 1);
        cell(ratio(p->mosquitto_cpu, n), 7, 1);
        cell(ratio(p->redis_cpu, n), 7, 1);
        cell(ratio(p->bench_cpu, n), 7, 1);
        cell(p->mosquitto_cpu < 0 || p->bench_cpu < 0 ? NAN : ratio(all, n), 7, 1);
        printf("\n");
    }
}

/* Each bridge's stored count and share, per bridge point. */
static void group_shares(const struct group_results *r) {
    printf("\nEach bridge's share (its own stored count at its stop: the whole point, "
           "warm-up and drain included)\n");
    for (int i = 0; i < r->npts; i++) {
        const struct group_point *p = &r->pts[i];
        long long total = 0;
        if (p->bridges == 0) continue;
        for (int b = 0; b < p->bridges; b++) total += p->stored[b] > 0 ? p->stored[b] : 0;
        printf("  %-26s", p->label);
        for (int b = 0; b < p->bridges; b++) {
            double share = 100 * ratio((double)p->stored[b], (double)total);
            if (isnan(share)) printf(" %8lld (-)", p->stored[b]);
            else printf(" %8lld (%.1f%%)", p->stored[b], share);
        }
        printf("   Redis counters %lld\n", p->check.stored);
    }
}

/* The table of every point, the shares, the verdict. */
void report_group_table(const struct group_results *r) {
    double base = r->npts > 0 && r->pts[0].bridges == 0 ? r->pts[0].r.rate : NAN;
    group_header(r);
    printf("\nSaturation (closed loop; counted at the subscriber: stored in Redis and "
           "republished).\nCPU in seconds over the window; \"msg per bridge CPU s\" = "
           "messages / the bridges' CPU s.\n");
    printf("  %-26s %7s %6s %6s %6s %7s %8s %6s %6s %6s %6s\n", "", "msg/s", "ratio", "p50",
           "p99", "bridge", "msg per", "mosq.", "redis", "bench", "other");
    printf("  %-26s %7s %6s %6s %6s %7s %8s %6s %6s %6s %6s\n", "", "", "/base", "ms", "ms",
           "CPU s", "bridge", "CPU s", "CPU s", "CPU s", "cores");
    printf("  %-26s %7s %6s %6s %6s %7s %8s\n", "", "", "", "", "", "", "CPU s");
    for (int i = 0; i < r->npts; i++) group_row(&r->pts[i], base);
    printf("  (a closed loop's latency at saturation is mostly its queue: %d messages in "
           "flight / msg/s)\n", r->publishers * r->window);
    group_cost(r);
    group_shares(r);
    printf("\nLoad average before the run: %s; after: %s\n", r->load_before, r->load_after);
    if (r->failed[0]) printf("\nRun stopped early: %s\n", r->failed);
    printf("\nResult: %s\n", r->problems || r->failed[0] ?
           "FAILED (see above and stderr)" :
           "ok: every message arrived, was acknowledged and was stored");
}

/* ==================== JSON ==================== */

/* A minimal writer: tracks whether a comma is due at each depth. */
struct jw {
    int depth;
    int comma[16];
};

/* A comma if due, then "key": (nothing for array elements). */
static void jw_key(struct jw *w, const char *key) {
    if (w->comma[w->depth]) putchar(',');
    w->comma[w->depth] = 1;
    if (key) printf("\"%s\":", key);
}

/* Open an object or array. */
static void jw_open(struct jw *w, const char *key, char c) {
    jw_key(w, key);
    putchar(c);
    w->comma[++w->depth] = 0;
}

/* Close it. */
static void jw_close(struct jw *w, char c) {
    putchar(c);
    w->depth--;
}

/* A number; NaN and infinities are null. */
static void jw_num(struct jw *w, const char *key, double v) {
    jw_key(w, key);
    if (isnan(v) || isinf(v)) printf("null");
    else printf("%.6g", v);
}

/* An integer. */
static void jw_int(struct jw *w, const char *key, long long v) {
    jw_key(w, key);
    printf("%lld", v);
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void jw_str(struct jw *w, const char *key, const char *v) {
    jw_key(w, key);
    putchar('"');
    for (; *v; v++) {
        unsigned char ch = (unsigned char)*v;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch == '\n') printf("\\n");
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

/* true or false. */
static void jw_bool(struct jw *w, const char *key, int v) {
    jw_key(w, key);
    printf(v ? "true" : "false");
}

/* One phase's counts, rate and latency. */
static void json_run(struct jw *w, const char *key, const struct load_result *x, int open) {
    jw_open(w, key, '{');
    jw_num(w, "msgs_per_s", x->rate);
    jw_int(w, "sent", x->sent);
    jw_int(w, "received", x->received);
    jw_int(w, "missing", x->missing);
    jw_int(w, "duplicates", x->duplicates);
    jw_int(w, "bad", x->bad);
    jw_int(w, "errors", x->errors);
    jw_int(w, "acked", x->acked);
    jw_int(w, "rejected", x->rejected);
    jw_int(w, "unacked", x->unacked);
    jw_num(w, "seconds", x->seconds);
    jw_num(w, "p50_ms", x->lat.p50);
    jw_num(w, "p99_ms", x->lat.p99);
    jw_num(w, "p999_ms", x->lat.p999);
    jw_num(w, "max_ms", x->lat.max);
    if (open) {
        jw_num(w, "offered", x->offered);
        jw_num(w, "achieved", x->achieved);
        jw_bool(w, "reached", x->reached);
    }
    jw_close(w, '}');
}

/* CPU seconds per 100,000 messages of each process. */
static void json_cost(struct jw *w, const char *key, const struct cost *c) {
    jw_open(w, key, '{');
    jw_num(w, "bridge", c->bridge);
    jw_num(w, "mosquitto", c->mosquitto);
    jw_num(w, "redis", c->redis);
    jw_num(w, "bench", c->bench);           /* the load clients */
    jw_close(w, '}');
}

/* The bridge's Redis counters against the republishes, if checked. */
static void json_check(struct jw *w, const struct store_check *k) {
    if (!k->done) return;
    jw_open(w, "stored_check", '{');
    jw_int(w, "stored", k->stored);
    jw_int(w, "republished", k->republished);
    jw_int(w, "rooms_off", k->rooms_off);
    jw_close(w, '}');
}

/* Context switches per message of the bridge and mosquitto. */
static void json_ctxsw(struct jw *w, const char *key, const struct ctxsw *k) {
    jw_open(w, key, '{');
    jw_num(w, "bridge", k->bridge >= 0 ? k->bridge : NAN);
    jw_num(w, "mosquitto", k->mosquitto >= 0 ? k->mosquitto : NAN);
    jw_close(w, '}');
}

/* A saturation point: its run, CPU cost and (bridge path) stored check. */
static void json_sat(struct jw *w, const char *key, const struct sat_point *p) {
    jw_open(w, key, '{');
    jw_int(w, "rooms", p->rooms);
    jw_int(w, "publishers", p->publishers);
    json_run(w, "run", &p->r, 0);
    json_cost(w, "cpu_s_per_100k", &p->cpu);
    jw_open(w, "cores", '{');
    jw_num(w, "bridge", cores(p->cpu.bridge, p->r.rate));
    jw_num(w, "mosquitto", cores(p->cpu.mosquitto, p->r.rate));
    jw_num(w, "redis", cores(p->cpu.redis, p->r.rate));
    jw_num(w, "bench", cores(p->cpu.bench, p->r.rate));
    jw_close(w, '}');
    json_ctxsw(w, "ctxsw_per_msg", &p->csw);
    jw_num(w, "load_busiest_thread_cores", p->load_busiest);
    jw_num(w, "other_cores", p->other_cores);
    json_check(w, &p->check);
    jw_close(w, '}');
}

/* Machine, versions and settings. */
static void json_head(struct jw *w, const struct results *r) {
    jw_str(w, "bench", "chat-bridge");
    jw_bool(w, "quick", r->quick);
    jw_str(w, "date", r->date);
    jw_int(w, "cores", r->cores);
    jw_open(w, "versions", '{');
    jw_str(w, "mosquitto", r->mosquitto);
    jw_str(w, "redis", r->redis);
    jw_str(w, "load_clients", r->client);
    jw_close(w, '}');
    jw_open(w, "config", '{');
    jw_int(w, "qos", r->qos);
    jw_int(w, "payload", r->payload);
    jw_int(w, "publishers", r->publishers);
    jw_int(w, "rooms", r->rooms);
    jw_int(w, "window", r->window);
    jw_num(w, "duration_s", r->duration_s);
    jw_str(w, "mosquitto_conf_shipped", r->broker_conf);
    jw_str(w, "mosquitto_conf_bench", BROKER_OWN);
    jw_str(w, "mosquitto_conf_extra", r->broker_extra);
    jw_bool(w, "broker_tcp_nodelay", broker_nodelay(r->broker_conf, r->broker_extra));
    jw_close(w, '}');
}

/* OBJECT ENCODING of a stored message and of its room's index. */
static void json_encodings(struct jw *w, const struct encodings *e) {
    jw_open(w, "redis_encoding", '{');
    jw_str(w, "message_key", e->msg_key);
    jw_str(w, "message", e->msg);
    jw_int(w, "message_content_bytes", e->msg_bytes);
    jw_int(w, "hash_max_listpack_value", e->hash_max_value);
    jw_str(w, "room_index_key", e->index_key);
    jw_str(w, "room_index", e->index);
    jw_int(w, "room_index_ids", e->index_ids);
    jw_int(w, "zset_max_listpack_entries", e->zset_max_entries);
    jw_close(w, '}');
}

/* Saturation of both paths and the cost figures; without the saturation
 * phase, only the bridge's peak RSS. */
static void json_saturation(struct jw *w, const struct results *r) {
    if (!(r->ran & PH_BIT(PH_SATURATION))) {
        jw_open(w, "cost", '{');
        jw_int(w, "bridge_hwm_kb", r->bridge_hwm_kb);
        jw_close(w, '}');
        return;
    }
    jw_open(w, "saturation", '{');
    json_sat(w, "bridge", &r->sat_bridge);
    json_sat(w, "baseline", &r->sat_base);
    jw_num(w, "ratio", ratio(r->sat_bridge.r.rate, r->sat_base.r.rate));
    if (r->sat_plain.rooms) {
        json_sat(w, "baseline_plain_libmosquitto", &r->sat_plain);
        jw_num(w, "baseline_over_plain", ratio(r->sat_base.r.rate, r->sat_plain.r.rate));
    }
    jw_close(w, '}');
    jw_open(w, "cost", '{');
    const struct cost *b = &r->sat_bridge.cpu;
    jw_num(w, "bridge_over_mosquitto", ratio(b->bridge, b->mosquitto));
    jw_num(w, "bridge_over_baseline_mosquitto", ratio(b->bridge, r->sat_base.cpu.mosquitto));
    jw_num(w, "load_clients_over_bridge", ratio(b->bench, b->bridge));
    json_ctxsw(w, "ctxsw_per_msg", &r->sat_bridge.csw);
    jw_num(w, "baseline_mosquitto_ctxsw_per_msg",
           r->sat_base.csw.mosquitto >= 0 ? r->sat_base.csw.mosquitto : NAN);
    jw_int(w, "bridge_hwm_kb", r->bridge_hwm_kb);
    jw_num(w, "redis_bytes_per_msg", r->redis_bytes_per_msg);
    json_encodings(w, &r->enc);
    jw_close(w, '}');
}

/* One object per offered rate. */
static void json_latency(struct jw *w, const struct results *r) {
    jw_open(w, "latency", '[');
    for (int i = 0; i < r->nlat; i++) {
        const struct lat_point *p = &r->lat[i];
        if (!p->done) continue;
        jw_open(w, NULL, '{');
        jw_str(w, "label", p->label);
        jw_num(w, "offered", p->offered);
        json_run(w, "bridge", &p->bridge, 1);
        json_run(w, "baseline", &p->baseline, 1);
        json_check(w, &p->check);
        json_cost(w, "cpu_s_per_100k", &p->cpu[0]);
        json_cost(w, "baseline_cpu_s_per_100k", &p->cpu[1]);
        jw_num(w, "bridge_over_mosquitto", ratio(p->cpu[0].bridge, p->cpu[0].mosquitto));
        json_ctxsw(w, "ctxsw_per_msg", &p->csw[0]);
        json_ctxsw(w, "baseline_ctxsw_per_msg", &p->csw[1]);
        jw_open(w, "ratio", '{');
        jw_num(w, "p50", ratio(p->bridge.lat.p50, p->baseline.lat.p50));
        jw_num(w, "p99", ratio(p->bridge.lat.p99, p->baseline.lat.p99));
        jw_num(w, "p999", ratio(p->bridge.lat.p999, p->baseline.lat.p999));
        jw_num(w, "max", ratio(p->bridge.lat.max, p->baseline.lat.max));
        jw_close(w, '}');
        jw_close(w, '}');
    }
    jw_close(w, ']');
}

/* One object per history request kind, and the seeding. */
static void json_history(struct jw *w, const struct results *r) {
    jw_open(w, "history", '[');
    for (int i = 0; i < r->nhist; i++) {
        jw_open(w, NULL, '{');
        jw_str(w, "topic", r->hist[i].topic);
        jw_str(w, "request", r->hist[i].request);
        jw_int(w, "room_msgs", r->hist[i].room_msgs);
        jw_int(w, "user_rooms", r->hist[i].user_rooms);
        json_run(w, "run", &r->hist[i].r, 0);
        jw_num(w, "ratio_to_big_limit50", hist_ratio(r, i));
        jw_close(w, '}');
    }
    jw_close(w, ']');
    jw_open(w, "seed", '{');
    jw_int(w, "messages", r->seeded);
    jw_int(w, "rooms", r->seeded_rooms);
    jw_num(w, "seconds", r->seed_s);
    jw_num(w, "aof_rewrite_wait_s", r->rewrite_s);
    jw_num(w, "adopt_wait_s", r->adopt_s);
    jw_close(w, '}');
}

/* The scale curve, by rooms and by publishers. */
static void json_scale(struct jw *w, const struct results *r) {
    jw_open(w, "scale", '{');
    jw_open(w, "rooms", '[');
    for (int i = 0; i < r->nscale_rooms; i++) json_sat(w, NULL, &r->scale_rooms[i]);
    jw_close(w, ']');
    jw_open(w, "publishers", '[');
    for (int i = 0; i < r->nscale_pubs; i++) json_sat(w, NULL, &r->scale_pubs[i]);
    jw_close(w, ']');
    jw_close(w, '}');
}

/* An array of integers. */
static void json_ints(struct jw *w, const char *key, const long long *v, int n) {
    jw_open(w, key, '[');
    for (int i = 0; i < n; i++) jw_int(w, NULL, v[i]);
    jw_close(w, ']');
}

/* The retention phase, if it ran: memory per round, ratios, rooms. */
static void json_retention(struct jw *w, const struct results *r) {
    const struct ret_point *t = &r->ret;
    if (!t->done) return;
    jw_open(w, "retention", '{');
    jw_int(w, "max_messages_per_room", t->cap);
    jw_int(w, "rooms", RET_ROOMS);
    jw_int(w, "rounds", t->rounds);
    jw_int(w, "used_memory_before", t->mem_before);
    json_ints(w, "used_memory", t->mem, t->rounds);
    jw_num(w, "ratio_last_first", ret_ratio(t, 0));
    jw_num(w, "growth_ratio_last_first", ret_ratio(t, 1));
    jw_int(w, "sent", t->sent);
    jw_int(w, "received", t->received);
    jw_int(w, "missing", t->missing);
    jw_int(w, "bad", t->bad);
    jw_num(w, "msgs_per_s", ratio((double)t->received, t->seconds));
    json_ints(w, "room_index_ids", t->ids, RET_ROOMS);
    jw_int(w, "rooms_off", t->rooms_off);
    jw_close(w, '}');
}

/* With --only: the phases asked for and those skipped (absent above). */
static void json_only(struct jw *w, const struct results *r) {
    if (r->only == PH_ALL) return;
    for (int skipped = 0; skipped < 2; skipped++) {
        jw_open(w, skipped ? "skipped" : "only", '[');
        for (int i = 0; i < PH_COUNT; i++)
            if (((r->only & PH_BIT(i)) == 0) == skipped) jw_str(w, NULL, phase_names[i]);
        jw_close(w, ']');
    }
}

/* Everything that ran on one line; a phase that did not is absent. */
void report_json(const struct results *r) {
    struct jw w = { 0 };
    jw_open(&w, NULL, '{');
    json_head(&w, r);
    json_only(&w, r);
    json_saturation(&w, r);
    if (r->ran & (PH_BIT(PH_LATENCY) | PH_BIT(PH_HIGH))) json_latency(&w, r);
    if (r->ran & PH_BIT(PH_HISTORY)) json_history(&w, r);
    if (r->ran & PH_BIT(PH_SCALE)) json_scale(&w, r);
    json_retention(&w, r);
    if (r->plotted) {
        jw_str(&w, "plot", r->plot);
    } else {
        jw_key(&w, "plot");
        printf("null");
    }
    jw_int(&w, "problems", r->problems);
    if (r->failed[0]) jw_str(&w, "failed", r->failed);
    jw_bool(&w, "ok", !r->problems && !r->failed[0]);
    jw_close(&w, '}');
    putchar('\n');
    fflush(stdout);
}

/* One point of bench --cluster. */
static void json_group_point(struct jw *w, const struct group_point *p) {
    jw_open(w, NULL, '{');
    jw_str(w, "label", p->label);
    jw_int(w, "bridges", p->bridges);
    jw_bool(w, "cluster", p->cluster);
    json_run(w, "run", &p->r, 0);
    jw_num(w, "bridge_cpu_s", p->bridge_cpu);
    jw_num(w, "msgs_per_bridge_cpu_s", ratio((double)p->r.measured, p->bridge_cpu));
    jw_num(w, "mosquitto_cpu_s", p->mosquitto_cpu);
    jw_num(w, "redis_cpu_s", p->redis_cpu);
    jw_num(w, "bench_cpu_s", p->bench_cpu);
    jw_num(w, "other_cores", p->other_cores);
    if (p->bridges) json_ints(w, "stored_per_bridge", p->stored, p->bridges);
    json_check(w, &p->check);
    jw_close(w, '}');
}

/* bench --cluster on one line. */
void report_group_json(const struct group_results *r) {
    struct jw w = { 0 };
    jw_open(&w, NULL, '{');
    jw_str(&w, "mode", "cluster");
    jw_int(&w, "cores", r->cores);
    jw_str(&w, "mosquitto", r->mosquitto);
    jw_str(&w, "redis", r->redis);
    jw_str(&w, "load_clients", r->client);
    jw_str(&w, "mosquitto_conf_shipped", r->broker_conf);
    jw_str(&w, "mosquitto_conf_bench", BROKER_OWN);
    jw_bool(&w, "broker_tcp_nodelay", broker_nodelay(r->broker_conf, ""));
    jw_int(&w, "qos", r->qos);
    jw_int(&w, "payload", r->payload);
    jw_int(&w, "publishers", r->publishers);
    jw_int(&w, "window", r->window);
    jw_int(&w, "rooms", r->rooms);
    jw_int(&w, "cluster_nodes", PROCS_NODES);
    jw_num(&w, "duration_s", r->duration_s);
    jw_str(&w, "loadavg_before", r->load_before);
    jw_str(&w, "loadavg_after", r->load_after);
    jw_open(&w, "points", '[');
    for (int i = 0; i < r->npts; i++) json_group_point(&w, &r->pts[i]);
    jw_close(&w, ']');
    jw_int(&w, "problems", r->problems);
    if (r->failed[0]) jw_str(&w, "failed", r->failed);
    jw_bool(&w, "ok", !r->problems && !r->failed[0]);
    jw_close(&w, '}');
    putchar('\n');
    fflush(stdout);
}

/* ==================== A/B: bench --compare ==================== */

/* One figure of struct cmp_run: where it is, how it is shown, whether
 * the broker alone has it (for the ratios against it), and whether it is
 * only context, no figure of the binaries (no ratios). */
struct cmp_metric {
    const char *label, *key;
    size_t off;
    int prec, base, context;
};

/* The rows of the comparison, in order ("1000/s": CMP_RATE). */
static const struct cmp_metric cmp_metrics[] = {
    { "saturation, msg/s", "sat_msgs_per_s", offsetof(struct cmp_run, sat_rate), 0, 1, 0 },
    { "bridge CPU s per 100k msgs", "bridge_cpu_s_per_100k",
      offsetof(struct cmp_run, cpu.bridge), 3, 0, 0 },
    { "mosquitto CPU s per 100k", "mosquitto_cpu_s_per_100k",
      offsetof(struct cmp_run, cpu.mosquitto), 3, 1, 0 },
    { "redis-server CPU s per 100k", "redis_cpu_s_per_100k",
      offsetof(struct cmp_run, cpu.redis), 3, 0, 0 },
    { "load clients CPU s per 100k", "load_clients_cpu_s_per_100k",
      offsetof(struct cmp_run, cpu.bench), 3, 1, 0 },
    { "bridge / mosquitto CPU", "bridge_over_mosquitto_cpu",
      offsetof(struct cmp_run, cpu_ratio), 3, 0, 0 },
    { "ctx switches per msg, bridge", "ctxsw_per_msg_bridge",
      offsetof(struct cmp_run, csw.bridge), 3, 0, 0 },
    { "ctx switches per msg, mosquitto", "ctxsw_per_msg_mosquitto",
      offsetof(struct cmp_run, csw.mosquitto), 3, 1, 0 },
    { "1000/s: p50, ms", "p50_ms_at_rate", offsetof(struct cmp_run, p50), 3, 1, 0 },
    { "1000/s: p99, ms", "p99_ms_at_rate", offsetof(struct cmp_run, p99), 3, 1, 0 },
    { "1000/s: bridge / mosquitto CPU", "bridge_over_mosquitto_cpu_at_rate",
      offsetof(struct cmp_run, open_ratio), 3, 0, 0 },
    { "1000/s: ctx sw per msg, bridge", "ctxsw_per_msg_bridge_at_rate",
      offsetof(struct cmp_run, open_csw.bridge), 3, 0, 0 },
    { "1000/s: ctx sw per msg, mosquitto", "ctxsw_per_msg_mosquitto_at_rate",
      offsetof(struct cmp_run, open_csw.mosquitto), 3, 1, 0 },
    { "bridge peak RSS, MB", "bridge_hwm_mb", offsetof(struct cmp_run, hwm_mb), 1, 0, 0 },
    { "other processes, cores (saturation)", "other_cores",
      offsetof(struct cmp_run, other_cores), 2, 1, 1 },
};
#define CMP_METRICS (sizeof(cmp_metrics) / sizeof(cmp_metrics[0]))

/* The figure m of a run; NAN where unknown (negative or NAN). */
static double cmp_value(const struct cmp_run *run, const struct cmp_metric *m) {
    double v;
    memcpy(&v, (const char *)run + m->off, sizeof(v));
    return run->done && v >= 0 ? v : NAN;
}

/* qsort: doubles in ascending order. */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median over the completed rounds of figure m of one side (the mean
 * of the middle two for an even count); NAN when no round has it. */
static double cmp_median(const struct cmp_results *r, int side, const struct cmp_metric *m) {
    double v[CMP_ROUNDS_MAX];
    int n = 0;
    for (int i = 0; i < r->done && i < CMP_ROUNDS_MAX; i++) {
        double x = cmp_value(&r->run[i][side], m);
        if (!isnan(x)) v[n++] = x;
    }
    if (n == 0) return NAN;
    qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* What was compared, and how. */
static void compare_header(const struct results *head, const struct cmp_results *r) {
    table_header(head);
    printf("\nA/B: old = %s (--compare), new = %s (--bridge), on the same mosquitto and "
           "Redis.\n", r->path[CMP_OLD], r->path[CMP_NEW]);
    printf("%d of %d rounds; each: the broker alone, then each binary (bridge restarted on "
           "it): a closed-loop\nsaturation run (%.1f s) and an open-loop run at %.0f/s. "
           "Order per round:", r->done, r->rounds, head->duration_s, CMP_RATE);
    for (int i = 0; i < r->done; i++)
        printf("%s %s", i ? ";" : "", r->new_first[i] ? "new,old" : "old,new");
    printf("\n");
}

/* One row of the medians: old, new, new/old, the broker alone, and each
 * binary over it. */
static void compare_row(const struct cmp_results *r, const struct cmp_metric *m) {
    double old = cmp_median(r, CMP_OLD, m), new = cmp_median(r, CMP_NEW, m);
    double base = m->base ? cmp_median(r, CMP_BASE, m) : NAN;
    printf("  %-34s", m->label);
    cell(old, 9, m->prec);
    cell(new, 9, m->prec);
    cell(m->context ? NAN : ratio(new, old), 8, 3);
    cell(base, 9, m->prec);
    cell(m->context ? NAN : ratio(old, base), 8, 3);
    cell(m->context ? NAN : ratio(new, base), 8, 3);
    printf("\n");
}

/* The key figures of every round, to judge the spread. */
static void compare_rounds(const struct cmp_results *r) {
    printf("\nPer round: saturation msg/s, bridge CPU s per 100k, p50 / p99 ms at %.0f/s, "
           "other processes' cores\n", CMP_RATE);
    for (int i = 0; i < r->done; i++) {
        printf("  round %d (%s):", i + 1, r->new_first[i] ? "new,old" : "old,new");
        for (int side = 0; side < CMP_SIDES; side++) {
            const struct cmp_run *x = &r->run[i][side];
            printf("  %s", side == CMP_OLD ? "old" : side == CMP_NEW ? "new" : "broker alone");
            cell(x->sat_rate, 0, 0);
            if (side != CMP_BASE) cell(x->cpu.bridge, 0, 2);
            cell(x->p50, 0, 3);
            printf(" /");
            cell(x->p99, 0, 3);
            printf(" (others");
            cell(x->other_cores, 0, 2);
            printf(")");
        }
        printf("\n");
    }
}

/* The most other processes used during any saturation run, in cores. */
static double cmp_disturbance(const struct cmp_results *r) {
    double most = 0;
    for (int i = 0; i < r->done; i++)
        for (int side = 0; side < CMP_SIDES; side++)
            if (r->run[i][side].other_cores > most) most = r->run[i][side].other_cores;
    return most;
}

/* The medians, new/old and the ratios to the broker alone; the rounds;
 * the verdict. */
void report_compare_table(const struct results *head, const struct cmp_results *r) {
    compare_header(head, r);
    printf("\nMedians over %d rounds%s\n", r->done,
           r->done < 3 ? " (fewer than 3: read the per-round figures too)" : "");
    printf("  %-34s %9s %9s %8s %9s %8s %8s\n", "", "old", "new", "new/old", "broker",
           "old/", "new/");
    printf("  %-34s %9s %9s %8s %9s %8s %8s\n", "", "", "", "", "alone", "broker", "broker");
    for (size_t i = 0; i < CMP_METRICS; i++) compare_row(r, &cmp_metrics[i]);
    compare_rounds(r);
    if (cmp_disturbance(r) > 0.2)
        printf("\nWARNING: other processes used up to %.2f cores during a saturation run: "
               "the figures may be\ndisturbed (see the per-round spread); rerun on a quiet "
               "machine.\n", cmp_disturbance(r));
    if (head->failed[0]) printf("\nRun stopped early: %s\n", head->failed);
    printf("\nResult: %s\n", head->problems || head->failed[0] ?
           "FAILED (see above and stderr)" :
           "ok: every message arrived, was acknowledged and was stored");
}

/* The figures of one side: medians (round < 0) or one round's. */
static void json_cmp_side(struct jw *w, const char *key, const struct cmp_results *r, int side,
                          int round) {
    jw_open(w, key, '{');
    for (size_t i = 0; i < CMP_METRICS; i++) {
        const struct cmp_metric *m = &cmp_metrics[i];
        if (side == CMP_BASE && !m->base) continue;
        jw_num(w, m->key, round < 0 ? cmp_median(r, side, m) : cmp_value(&r->run[round][side], m));
    }
    jw_close(w, '}');
}

/* new/old of each median, and each binary's over the broker alone's. */
static void json_cmp_ratios(struct jw *w, const struct cmp_results *r) {
    jw_open(w, "new_over_old", '{');
    for (size_t i = 0; i < CMP_METRICS; i++)
        if (!cmp_metrics[i].context)
            jw_num(w, cmp_metrics[i].key, ratio(cmp_median(r, CMP_NEW, &cmp_metrics[i]),
                                                cmp_median(r, CMP_OLD, &cmp_metrics[i])));
    jw_close(w, '}');
    jw_open(w, "over_broker_alone", '{');
    for (int side = CMP_OLD; side <= CMP_NEW; side++) {
        jw_open(w, side == CMP_OLD ? "old" : "new", '{');
        for (size_t i = 0; i < CMP_METRICS; i++)
            if (cmp_metrics[i].base && !cmp_metrics[i].context)
                jw_num(w, cmp_metrics[i].key, ratio(cmp_median(r, side, &cmp_metrics[i]),
                                                    cmp_median(r, CMP_BASE, &cmp_metrics[i])));
        jw_close(w, '}');
    }
    jw_close(w, '}');
}

/* bench --compare on one line. */
void report_compare_json(const struct results *head, const struct cmp_results *r) {
    struct jw w = { 0 };
    jw_open(&w, NULL, '{');
    jw_str(&w, "mode", "compare");
    json_head(&w, head);
    jw_str(&w, "old", r->path[CMP_OLD]);
    jw_str(&w, "new", r->path[CMP_NEW]);
    jw_int(&w, "rounds", r->rounds);
    jw_int(&w, "rounds_done", r->done);
    jw_num(&w, "open_loop_rate", CMP_RATE);
    jw_open(&w, "median", '{');
    json_cmp_side(&w, "old", r, CMP_OLD, -1);
    json_cmp_side(&w, "new", r, CMP_NEW, -1);
    json_cmp_side(&w, "broker_alone", r, CMP_BASE, -1);
    jw_close(&w, '}');
    json_cmp_ratios(&w, r);
    jw_open(&w, "per_round", '[');
    for (int i = 0; i < r->done; i++) {
        jw_open(&w, NULL, '{');
        jw_str(&w, "order", r->new_first[i] ? "new,old" : "old,new");
        json_cmp_side(&w, "old", r, CMP_OLD, i);
        json_cmp_side(&w, "new", r, CMP_NEW, i);
        json_cmp_side(&w, "broker_alone", r, CMP_BASE, i);
        jw_close(&w, '}');
    }
    jw_close(&w, ']');
    jw_int(&w, "problems", head->problems);
    if (head->failed[0]) jw_str(&w, "failed", head->failed);
    jw_bool(&w, "ok", !head->problems && !head->failed[0]);
    jw_close(&w, '}');
    putchar('\n');
    fflush(stdout);
}
