/* plot.c -- the benchmark's picture (see bench.h): gnuplot draws, from
 * the figures of the run just made,
 *   left:  latency p50 and p99 against the offered rate (open loop, log
 *          scales), the bridge path and the broker alone, with each
 *          path's saturation throughput marked;
 *   right: CPU microseconds per message of each process (bridge,
 *          mosquitto, redis-server, the load clients, all four) in the
 *          saturation phase, bridge path beside the broker alone.
 * Beside the PNG: its data (.dat, two gnuplot data blocks) and script
 * (.gp), so the picture can be redrawn or restyled by hand, and
 * gnuplot's output (.log). Without gnuplot the run says so and goes on. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "sys.h"

#define GNUPLOT_MS 60000

/* 1 when an executable `name` is on the PATH. */
static int on_path(const char *name) {
    const char *path = getenv("PATH");
    char buf[1024];
    if (path == NULL) path = "/usr/bin:/bin";
    for (const char *p = path; *p; p += strcspn(p, ":") + (p[strcspn(p, ":")] == ':')) {
        int n = (int)strcspn(p, ":");
        snprintf(buf, sizeof(buf), "%.*s/%s", n, n ? p : ".", name);
        if (access(buf, X_OK) == 0) return 1;
    }
    return 0;
}

/* A positive value, or gnuplot's missing-value mark. */
static void val(FILE *f, double v) {
    if (isnan(v) || v <= 0) fprintf(f, " ?");
    else fprintf(f, " %.6g", v);
}

/* CPU s per 100,000 messages as microseconds per message (or NAN). */
static double us(double per_100k) {
    return per_100k >= 0 ? per_100k * 10 : NAN;
}

/* The sum of the known parts, NAN if none. */
static double all_of(const struct cost *c) {
    const double parts[4] = { c->bridge, c->mosquitto, c->redis, c->bench };
    double sum = 0;
    int known = 0;
    for (int i = 0; i < 4; i++)
        if (parts[i] >= 0) {
            sum += parts[i];
            known++;
        }
    return known ? sum : NAN;
}

/* 1 when the saturation phase ran and measured the bridge path (bench
 * --only may have left it out). */
static int have_cost(const struct results *r) {
    return (r->ran & PH_BIT(PH_SATURATION)) && r->sat_bridge.r.rate > 0;
}

/* Latency points measured (bench --only may have run none). */
static int lat_points(const struct results *r) {
    int n = 0;
    for (int i = 0; i < r->nlat; i++) n += r->lat[i].done;
    return n;
}

/* The data: block 0 the latency ladder (rate, bridge p50, p99, broker
 * alone p50, p99, in ms), block 1 CPU per message by process (label,
 * bridge path, broker alone, in microseconds). 0 or -1. */
static int write_data(const struct results *r, const char *path) {
    FILE *f = fopen(path, "w");
    if (f == NULL) return -1;
    fprintf(f, "# chat-bridge benchmark, %s: latency (ms) against offered rate (msg/s)\n"
            "# rate bridge_p50 bridge_p99 baseline_p50 baseline_p99\n", r->date);
    for (int i = 0; i < r->nlat; i++) {
        const struct lat_point *p = &r->lat[i];
        if (!p->done) continue;
        fprintf(f, "%.6g", p->offered);
        val(f, p->bridge.lat.p50);
        val(f, p->bridge.lat.p99);
        val(f, p->baseline.lat.p50);
        val(f, p->baseline.lat.p99);
        fprintf(f, "\n");
    }
    if (lat_points(r) == 0)                     /* keeps block 1 "index 1" */
        fprintf(f, "# no latency phase in this run (bench --only)\n0 ? ? ? ?\n");
    const struct cost *b = &r->sat_bridge.cpu, *s = &r->sat_base.cpu;
    const struct { const char *name; double bridge, base; } rows[] = {
        { "bridge", b->bridge, s->bridge }, { "mosquitto", b->mosquitto, s->mosquitto },
        { "redis-server", b->redis, s->redis }, { "load clients", b->bench, s->bench },
        { "all four", all_of(b), all_of(s) } };
    fprintf(f, "\n\n# CPU microseconds per message, saturation phase\n"
            "# process bridge_path baseline\n");
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        fprintf(f, "\"%s\"", rows[i].name);
        val(f, us(rows[i].bridge));
        val(f, us(rows[i].base));
        fprintf(f, "\n");
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* A dotted vertical line at a saturation rate, labelled (arrow and label
 * number n; nothing when the rate is unknown). */
static void plot_saturation_mark(FILE *f, int n, double rate, const char *who,
                                 const char *color) {
    if (rate <= 0) return;
    fprintf(f, "set arrow %d from %.0f, graph 0 to %.0f, graph 1 nohead dt 3 lc rgb '%s'\n"
               "set label %d '%s saturation %.0f/s' at %.0f, graph 0.03 left rotate by 90 "
               "offset 1.2,0 tc rgb '%s'\n", n, rate, rate, color, n, who, rate, rate, color);
}

/* Left: latency against offered rate (bench --only may have left the
 * latency phases out: then the panel stays empty). */
static void plot_latency(FILE *f, const struct results *r, const char *dat) {
    fprintf(f, "set title 'Latency against offered rate (open loop, ms from scheduled send "
               "to receipt)'\n"
               "set logscale xy\nset grid xtics ytics mxtics mytics lw 0.5\n"
               "set xlabel 'offered rate, msg/s'\nset ylabel 'latency, ms'\n"
               "set key top left box opaque\nset format y '%%g'\nset format x '%%g'\n");
    double lo = 0, hi = 0;                      /* every rate drawn, and the marks */
    const double marks[2] = { r->sat_bridge.r.rate, r->sat_base.r.rate };
    for (int i = 0; i < r->nlat + 2; i++) {
        double v = i < r->nlat ? r->lat[i].offered : marks[i - r->nlat];
        if (v <= 0) continue;
        if (lo == 0 || v < lo) lo = v;
        if (v > hi) hi = v;
    }
    if (lo > 0) fprintf(f, "set xrange [%.6g:%.6g]\n", lo / 1.4, hi * 1.4);
    plot_saturation_mark(f, 1, r->sat_bridge.r.rate, "bridge", "#c0392b");
    plot_saturation_mark(f, 2, r->sat_base.r.rate, "broker-alone", "#2471a3");
    fprintf(f, "plot '%s' index 0 using 1:2 with linespoints lw 2 pt 7 lc rgb '#c0392b' "
               "title 'bridge path p50', \\\n"
               "  '' index 0 using 1:3 with linespoints lw 2 pt 5 dt 2 lc rgb '#c0392b' "
               "title 'bridge path p99', \\\n"
               "  '' index 0 using 1:4 with linespoints lw 2 pt 7 lc rgb '#2471a3' "
               "title 'broker alone p50', \\\n"
               "  '' index 0 using 1:5 with linespoints lw 2 pt 5 dt 2 lc rgb '#2471a3' "
               "title 'broker alone p99'\n", dat);
}

/* Right: CPU per message by process (without the saturation phase the
 * panel stays empty). */
static void plot_cost(FILE *f, const struct results *r, const char *dat) {
    fprintf(f, "unset logscale\nunset arrow\nunset label\nunset mxtics\nunset mytics\n"
               "set autoscale x\n"
               "set grid noxtics ytics\nset title 'CPU per message by process (saturation, "
               "closed loop)'\n"
               "set xlabel ''\nset ylabel 'CPU microseconds per message'\nset yrange [0:*]\n"
               "set style data histograms\nset style histogram clustered gap 1\n"
               "set style fill solid 0.85 border -1\nset boxwidth 0.9\nset xtics nomirror\n"
               "set key top left box opaque\nset format y '%%g'\n");
    fprintf(f, "plot '%s' index 1 using 2:xtic(1) lc rgb '#c0392b' title 'bridge path "
               "(%.0f msg/s)', \\\n"
               "  '' index 1 using 0:2:(sprintf('%%.0f', $2)) with labels offset -1.6,0.7 "
               "notitle, \\\n"
               "  '' index 1 using 3 lc rgb '#2471a3' title 'broker alone (%.0f msg/s)', \\\n"
               "  '' index 1 using 0:3:(sprintf('%%.0f', $3)) with labels offset 1.6,0.7 "
               "notitle\n", dat, r->sat_bridge.r.rate, r->sat_base.r.rate);
}

/* The gnuplot script drawing png from dat. 0 or -1. */
static int write_script(const struct results *r, const char *path, const char *dat,
                        const char *png) {
    FILE *f = fopen(path, "w");
    if (f == NULL) return -1;
    fprintf(f, "# Draws %s from %s (bench --plot); gnuplot %s\n", png, dat, path);
    fprintf(f, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
               "  set terminal pngcairo size 1500,600 font 'DejaVu Sans,10'\n"
               "} else {\n  set terminal png size 1500,600\n}\n");
    fprintf(f, "set output '%s'\nset datafile missing '?'\n", png);
    fprintf(f, "set multiplot layout 1,2 title \"chat-bridge benchmark, %s (%s run, %s): %d "
               "cores shared by all processes; QoS %d, %d-byte texts, %d rooms\\n"
               "mosquitto %s (set\\\\_tcp\\\\_nodelay %s), Redis %s (AOF everysec), load "
               "clients %s%s\" font ',11'\n",
            r->date, r->quick ? "quick" : "full", r->failed[0] || r->problems ? "FAILED" : "ok",
            r->cores, r->qos, r->payload, r->rooms, r->mosquitto,
            broker_nodelay(r->broker_conf, r->broker_extra) ? "true" : "NOT SET", r->redis,
            r->client, r->quick ? " - a quick run's short phases: rough figures" : "");
    if (lat_points(r) > 0) plot_latency(f, r, dat);
    else fprintf(f, "set multiplot next\n");          /* the left panel left empty */
    if (have_cost(r)) plot_cost(f, r, dat);
    fprintf(f, "unset multiplot\n");
    return fclose(f) == 0 ? 0 : -1;
}

/* Write the data and the script beside path, then run gnuplot on them. */
void plot_results(struct results *r, const char *path) {
    char base[128], dat[136], gp[136], log[136];
    size_t n = strlen(path);
    r->plotted = 0;
    if (n >= sizeof(base) || strchr(path, '\'') || strchr(path, '"')) {
        snprintf(r->plot, sizeof(r->plot), "not drawn: unusable path");
        return;
    }
    snprintf(base, sizeof(base), "%.*s", (int)(n > 4 && strcmp(path + n - 4, ".png") == 0 ?
                                                n - 4 : n), path);
    snprintf(dat, sizeof(dat), "%s.dat", base);
    snprintf(gp, sizeof(gp), "%s.gp", base);
    snprintf(log, sizeof(log), "%s.log", base);
    if (lat_points(r) == 0 && !have_cost(r)) {
        snprintf(r->plot, sizeof(r->plot), "not drawn: no figures (the run stopped early)");
        return;
    }
    if (write_data(r, dat) < 0 || write_script(r, gp, dat, path) < 0) {
        snprintf(r->plot, sizeof(r->plot), "not drawn: cannot write %s or %s", dat, gp);
        PROGRESS("%s", r->plot);
        return;
    }
    if (!on_path("gnuplot")) {
        snprintf(r->plot, sizeof(r->plot), "not drawn: gnuplot is not installed (Debian "
                 "package gnuplot-nox; make deps); its data and script are %s and %s", dat, gp);
        PROGRESS("%s", r->plot);
        return;
    }
    remove(log);
    char *argv[] = { "gnuplot", gp, NULL };
    int rc = sys_run(argv, log, GNUPLOT_MS, &bench_interrupted);
    if (rc != 0 || access(path, R_OK) != 0) {
        snprintf(r->plot, sizeof(r->plot), "not drawn: gnuplot failed (exit %d), see %s", rc,
                 log);
        PROGRESS("%s", r->plot);
        return;
    }
    snprintf(r->plot, sizeof(r->plot), "%s", path);
    r->plotted = 1;
    PROGRESS("picture: %s", path);
}
