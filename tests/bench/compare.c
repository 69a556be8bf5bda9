/* compare.c -- bench --compare: two bridge binaries, A/B (see bench.h).
 *
 * Runs on bench.c's setup: mosquitto, Redis, the load clients, and the
 * --bridge binary once answering. Then N rounds (--rounds), each:
 *   1. the broker alone: a closed-loop saturation run (--duration) and an
 *      open-loop run at CMP_RATE (the latency phase's timing), the
 *      reference the ratios against the broker alone are taken from;
 *   2. each binary in turn, old then new in even rounds, new then old in
 *      odd ones (neither always runs first, on a cooler machine, or right
 *      after the broker alone): the bridge stopped (SIGTERM: it stores
 *      what it holds) and the other binary started on the same
 *      configuration, client id and session, with a journal directory of
 *      its own (journal-old, journal-new: neither reads what the other
 *      wrote); then the same two runs.
 * Every run writes to rooms of its own (ab<round><o|n|b><s|o>-<i>), whose
 * Redis counters must equal the republishes received. The report (report.c)
 * gives per binary the median over rounds of every figure, new/old, and
 * each binary over the broker alone. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "sys.h"

#define S_NS 1000000000LL

static const char *const side_names[CMP_SIDES] = { "old", "new", "broker alone" };

/* a / b, or NAN when either is unknown. */
static double div_or_nan(double a, double b) {
    return a >= 0 && b > 0 ? a / b : NAN;
}

/* The closed-loop saturation run of one side into run. 0 or -1. */
static int measure_sat(struct ctx *c, int side, const char *prefix, struct cmp_run *run) {
    struct sat_point pt = { .rooms = c->o.rooms, .publishers = c->o.publishers };
    enum load_target target = side == CMP_BASE ? TARGET_BASELINE : TARGET_BRIDGE;
    long long dur = (long long)(c->o.duration * S_NS);
    if (bench_run_sat(c, &pt, target, prefix, c->t.warmup, dur, c->o.messages) < 0) return -1;
    run->sat_rate = pt.r.rate;
    run->cpu = pt.cpu;
    run->csw = pt.csw;
    run->cpu_ratio = div_or_nan(pt.cpu.bridge, pt.cpu.mosquitto);
    run->other_cores = pt.other_cores;
    return 0;
}

/* The open-loop run at CMP_RATE of one side into run. 0 or -1. */
static int measure_open(struct ctx *c, int side, const char *prefix, struct cmp_run *run) {
    struct load_result r;
    struct store_check k;
    struct cost cpu;
    enum load_target target = side == CMP_BASE ? TARGET_BASELINE : TARGET_BRIDGE;
    if (bench_run_open(c, target, prefix, CMP_RATE, &r, side == CMP_BASE ? NULL : &k, &cpu,
                       &run->open_csw) < 0)
        return -1;
    run->p50 = r.lat.n > 0 ? r.lat.p50 : NAN;
    run->p99 = r.lat.n > 0 ? r.lat.p99 : NAN;
    run->open_rate = r.rate;
    run->open_ratio = div_or_nan(cpu.bridge, cpu.mosquitto);
    return 0;
}

/* Both runs of one side in round i, on rooms of their own; for a binary,
 * its peak RSS after them. 0 or -1. */
static int measure(struct ctx *c, int side, int i, struct cmp_run *run) {
    char sat[24], open[24];
    snprintf(sat, sizeof(sat), "ab%d%cs-", i, "onb"[side]);
    snprintf(open, sizeof(open), "ab%d%co-", i, "onb"[side]);
    *run = (struct cmp_run){ .hwm_mb = -1 };
    if (measure_sat(c, side, sat, run) < 0 || measure_open(c, side, open, run) < 0) return -1;
    if (side != CMP_BASE) {
        long kb = sys_proc_kb(c->pr.bridge_pid, "VmHWM");
        run->hwm_mb = kb >= 0 ? (double)kb / 1024 : -1;
    }
    run->done = 1;
    return 0;
}

/* Round i: the broker alone, then the two binaries in this round's
 * order. 0 or -1. */
static int run_round(struct ctx *c, struct cmp_results *r, int i) {
    static const char *const journals[2] = { "journal-old", "journal-new" };
    int first = i % 2 ? CMP_NEW : CMP_OLD;
    r->new_first[i] = first == CMP_NEW;
    PROGRESS("round %d of %d: broker alone (%.0f s, then %.0f/s)", i + 1, r->rounds,
             c->o.duration, CMP_RATE);
    if (measure(c, CMP_BASE, i, &r->run[i][CMP_BASE]) < 0) return -1;
    for (int k = 0; k < 2 && !bench_interrupted; k++) {
        int side = k == 0 ? first : 1 - first;
        PROGRESS("round %d of %d: %s, %s (%.0f s, then %.0f/s)", i + 1, r->rounds,
                 side_names[side], r->path[side], c->o.duration, CMP_RATE);
        if (bench_switch_bridge(c, r->path[side], journals[side]) < 0 ||
            measure(c, side, i, &r->run[i][side]) < 0 || !procs_bridge_alive(&c->pr))
            return -1;
    }
    return 0;
}

/* Every round in turn; stops at the first that cannot run. */
int compare_bench(struct ctx *c, struct cmp_results *r) {
    *r = (struct cmp_results){ .rounds = c->o.rounds };
    snprintf(r->path[CMP_OLD], sizeof(r->path[CMP_OLD]), "%s", c->o.compare);
    snprintf(r->path[CMP_NEW], sizeof(r->path[CMP_NEW]), "%s", c->o.bridge);
    for (int i = 0; i < r->rounds; i++) {
        int rc = bench_interrupted ? -1 : run_round(c, r, i);
        if (bench_interrupted) {
            snprintf(c->res.failed, sizeof(c->res.failed), "interrupted");
            return -1;
        }
        if (rc < 0) {
            snprintf(c->res.failed, sizeof(c->res.failed), "round %d failed%s", i + 1,
                     procs_bridge_alive(&c->pr) ? "" : " (the bridge exited)");
            procs_dump_log(&c->pr, "bridge.log");
            return -1;
        }
        r->done = i + 1;
    }
    return 0;
}
