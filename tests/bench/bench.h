/* bench.h -- the chat-bridge benchmark: shared types and module interfaces.
 *
 *   bench.c   options, the phases in order, the exit status
 *   proc.c    temporary directory, mosquitto / redis-server / bridge
 *             processes (started and stopped by PID), /proc measurements
 *   load.c    the MQTT load generator (libmosquitto, MQTT 5, TCP_NODELAY,
 *             two epoll loops of its own): publishers and one subscriber,
 *             closed or open loop, for the bridge path, the broker-only
 *             baseline and history requests alike
 *   kv.c      hiredis: seeding rooms in the bridge's schema, counters, INFO
 *   hist.c    latency histogram (log-linear buckets, < 1% error)
 *   report.c  the table and the JSON line
 *   plot.c    the picture: latency against offered rate, CPU per message
 *             by process (gnuplot, PNG)
 *   cluster.c bench --cluster: 1..n bridges in one shared group against a
 *             3-primary Redis Cluster (make bench-cluster)
 *   compare.c bench --compare: two bridge binaries alternated on the same
 *             mosquitto and Redis, medians over rounds (A/B) */
#ifndef CB_BENCH_H
#define CB_BENCH_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ==================== Time (hist.c) ==================== */

/* CLOCK_MONOTONIC in nanoseconds. */
long long now_ns(void);
/* Sleep until the CLOCK_MONOTONIC time t (ns); returns at once if past. */
void sleep_until_ns(long long t);

/* Progress on stderr (stdout is the report). */
#define PROGRESS(...) do { fprintf(stderr, "bench: " __VA_ARGS__); fputc('\n', stderr); } while (0)

/* Set by SIGINT/SIGTERM: every phase stops early and the run cleans up. */
extern volatile sig_atomic_t bench_interrupted;

/* ==================== Latency histogram (hist.c) ==================== */

#define HIST_SUB_BITS 7                       /* 128 sub-buckets per octave */
#define HIST_SUB (1 << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t count, max;
    uint64_t b[HIST_BUCKETS];
};

/* Percentiles of a histogram, in milliseconds. */
struct lat_summary {
    long long n;
    double p50, p99, p999, max;
};

void hist_reset(struct hist *h);
void hist_add(struct hist *h, long long ns);
/* The value (ns) at quantile q in 0..1; 0 when empty. */
long long hist_quantile(const struct hist *h, double q);
void hist_summary(const struct hist *h, struct lat_summary *s);

/* ==================== Processes (proc.c) ==================== */

#define PROCS_NODES 3             /* Redis Cluster primaries (--cluster) */
#define PROCS_GROUP 8             /* most bridges in one shared group */

struct procs {
    char dir[256];                /* the temporary directory */
    int redis_port, mqtt_port;
    pid_t redis_pid, mqtt_pid, bridge_pid;
    int keep;                     /* leave the directory (logs) in place */
    char broker_extra[1024];      /* lines appended to mosquitto.conf */
    char broker_conf[1024];       /* the settings taken from the shipped
                                     config/mosquitto.conf, one a line */
    int node_port[PROCS_NODES], node_bus[PROCS_NODES];   /* --cluster */
    pid_t node_pid[PROCS_NODES];
    pid_t group_pid[PROCS_GROUP]; /* the bridges of a shared group */
};

/* The benchmark's own broker settings, after the shipped ones.
 * max_queued_messages bounds the queue of an absent client (config/
 * mosquitto.conf: "this queue only matters while the bridge is down"), so
 * it changes no figure measured here; but Debian 12's mosquitto
 * (2.0.11-1.2+deb12u2) also drops a connected subscriber's outgoing QoS 1
 * messages once a per-client packet count, which drifts upward whenever
 * several packets wait for that client at once, reaches the limit: at the
 * broker-alone baseline's 20,000 msg/s and more it dropped bursts of
 * messages within seconds (tests/bench/README-performance.md). 0 is no
 * limit; --mosquitto-conf "max_queued_messages 100000" restores the
 * shipped value. */
#define BROKER_OWN "max_queued_messages 0\n"
#define BROKER_OWN_WHY "no limit on an absent client's queue, which no figure here depends " \
    "on; with a limit, mosquitto 2.0.11 (Debian 12) drops bursts of a fast subscriber's " \
    "QoS 1 messages"

/* Make the temporary directory and start redis-server (AOF, everysec) and
 * mosquitto on free 127.0.0.1 ports. mosquitto runs with the settings of
 * the shipped config/mosquitto.conf (set_tcp_nodelay, max_queued_messages,
 * persistence...: every broker-wide setting, not its listeners nor what
 * names files, users or plugins; recorded in broker_conf), persistence in the
 * temporary directory, then broker_extra. 0, or -1 with a message on
 * stderr. */
int procs_start_servers(struct procs *p);
/* Write the bridge's configuration (journal in the temporary directory,
 * everything else default, then the YAML lines extra_yaml) and start the
 * bridge. 0 or -1. */
int procs_start_bridge(struct procs *p, const char *bridge_path, const char *extra_yaml);
/* The same with the journal in the directory `journal` of the temporary
 * one (procs_start_bridge: "journal"), e.g. one per binary with
 * --compare. 0 or -1. */
int procs_start_bridge_journal(struct procs *p, const char *bridge_path, const char *journal,
                               const char *extra_yaml);
/* Stop the bridge by PID (SIGTERM: it stores what it holds; SIGKILL after
 * a deadline). */
void procs_stop_bridge(struct procs *p);
/* 1 while the bridge runs; 0 once it exited (it is reaped). */
int procs_bridge_alive(struct procs *p);
/* Stop the bridge, mosquitto and redis-server by PID (SIGTERM, then SIGKILL
 * after a deadline) and remove the temporary directory unless keep is set.
 * Idempotent. */
void procs_stop_all(struct procs *p);
/* Start PROCS_NODES redis-server primaries in cluster mode (config/redis.conf,
 * each in its own directory under the temporary one, client and bus ports
 * both free ones) and join them with redis-cli --cluster create. 0, or -1
 * with a message. The caller waits for cluster_state:ok (kv.c). */
int procs_start_cluster(struct procs *p);
/* Start bridge i of a shared group, called name: name.yaml, name.log and
 * the journal name.journal/ in the temporary directory; the mqtt section
 * holds the broker, client_id name, then mqtt_lines (indented YAML); the
 * redis section is redis_lines. 0 or -1. */
int procs_start_group_bridge(struct procs *p, int i, const char *bridge_path, const char *name,
                             const char *mqtt_lines, const char *redis_lines);
/* Stop every bridge of the group by PID (SIGTERM first, all at once). */
void procs_stop_group(struct procs *p);
/* 1 while bridge i of the group runs; 0 once it exited (it is reaped). */
int procs_group_alive(struct procs *p, int i);
/* In the log `name`.log of the temporary directory, the last line holding
 * marker: the number right after it (0 if none); -1 when no line does. */
long long procs_log_find(const struct procs *p, const char *name, const char *marker);
/* Print the last lines of a log in the temporary directory to stderr. */
void procs_dump_log(const struct procs *p, const char *name);
/* Kill every child and exit if the run is still going after `seconds`. */
void procs_watchdog(struct procs *p, int seconds);

/* utime+stime of a process (all threads), in seconds; -1 if unknown. */
double proc_cpu_s(pid_t pid);
/* Context switches of a process: voluntary_ctxt_switches plus
 * nonvoluntary_ctxt_switches summed over every thread it has now
 * (/proc/<pid>/task/<tid>/status); -1 if unknown. */
long long proc_ctxsw(pid_t pid);
/* The same for one thread of this process; -1 if unknown. */
double proc_thread_cpu_s(pid_t tid);
/* CPU seconds all processes of the machine have used since boot; -1 on
 * error. */
double proc_machine_busy_s(void);
/* "2.0.11" from `mosquitto -h`; "?" when not found. */
void proc_mosquitto_version(char *buf, size_t size);
/* The three load averages of /proc/loadavg, "0.61 0.58 0.64"; "?" if
 * unreadable. */
void proc_loadavg(char *buf, size_t size);

/* ==================== Redis (kv.c) ==================== */

struct redisContext;

/* How Redis stores one bridge-stored message hash and its room's index
 * (OBJECT ENCODING: "listpack" is compact, "hashtable" and "skiplist"
 * are not), with the sizes and thresholds that decide it. */
struct encodings {
    char msg_key[96], msg[32];    /* chatroom:<room>:<id> */
    long long msg_bytes;          /* HSTRLEN of its content */
    long long hash_max_value;     /* CONFIG hash-max-listpack-value */
    char index_key[96], index[32];/* chatroom:<room>:messages:ids */
    long long index_ids;          /* its ZCARD */
    long long zset_max_entries;   /* CONFIG zset-max-listpack-entries */
};

struct redisContext *kv_connect(int port);
void kv_free(struct redisContext *c);
/* Store n messages 1..n in room (users u0..u<users-1> in turn, texts of
 * text_bytes) exactly as the bridge would. 0 or -1. */
int kv_seed_room(struct redisContext *c, const char *room, long n, int users,
                 int text_bytes);
/* A user's rooms: rooms <prefix>0..<prefix><rooms-1>, each seeded like
 * kv_seed_room with msgs messages of users u0..u<users-1> (so user, one of
 * them, is among the senders), room i's newest message i ms older than
 * room 0's (every room a distinct activity); and the user's room list
 * chatroom:$user:<user>:rooms (ZADD, score = that room's newest message's
 * time, Unix ms). 0 or -1. */
int kv_seed_user_rooms(struct redisContext *c, const char *user, const char *prefix,
                       int rooms, long msgs, int users, int text_bytes);
/* How many of the n rooms the bridge has adopted up to last[i] (the
 * cursor's id of chatroom:<room>:messages:cursor; a seeded room is
 * adopted, and its newest messages republished, in the background). -1
 * on error. */
int kv_rooms_adopted(struct redisContext *c, const char *const *rooms, const long *last, int n);
/* INFO memory used_memory; -1 on error. */
long long kv_used_memory(struct redisContext *c);
/* Wait until Redis has no AOF rewrite running or scheduled (seeding a
 * big room triggers one, which would compete for the CPU). 0, or -1 after
 * timeout_ms. */
int kv_wait_rewrite(struct redisContext *c, int timeout_ms);
/* INFO server redis_version into buf. */
void kv_version(struct redisContext *c, char *buf, size_t size);
/* The counters chatroom:<prefix><i>:messages for i in 0..n-1 into out
 * (0 where absent). 0 or -1. */
int kv_counters(struct redisContext *c, const char *prefix, int n, long long *out);
/* kv_counters on a Redis Cluster: chatroom:{<prefix><i>}:messages (the
 * room as hash tag), each read from the node owning its slot. 0, or -1
 * when a node failed or a room was answered by none or several. */
int kv_cluster_counters(struct redisContext *const *nodes, int nnodes, const char *prefix,
                        int n, long long *out);
/* Wait until every node says cluster_state:ok. 0, or -1 after timeout_ms. */
int kv_cluster_wait_ok(struct redisContext *const *nodes, int nnodes, int timeout_ms);
/* ZCARD of chatroom:<room>:messages:ids, the room's live ids; -1 on error. */
long long kv_room_ids(struct redisContext *c, const char *room);
/* The encodings of message id of room and of the room's index ("?" where
 * unknown, -1 for unknown numbers). */
void kv_encodings(struct redisContext *c, const char *room, long id, struct encodings *e);
/* CONFIG SET name value. 0 or -1. */
int kv_config_set(struct redisContext *c, const char *name, const char *value);

/* ==================== Load generator (load.c) ==================== */

#define PAYLOAD_MAX 4096              /* the bridge's default max_text_bytes */

enum load_target {
    TARGET_BRIDGE,                /* chat/<room>/send, received on chat/+/msgs */
    TARGET_BASELINE,              /* base/<room>/msgs, broker only */
    TARGET_HISTORY,               /* chat/<room>/history (or the spec's topic),
                                     reply on bench/reply */
};

struct load_spec {
    enum load_target target;
    const char *room_prefix;      /* rooms <room_prefix><i>, i < rooms;
                                     history: the room itself */
    int rooms;
    int publishers;               /* the first n publishers of the load */
    int payload;                  /* text bytes (chat targets) */
    int window;                   /* closed loop: per publisher, sent but
                                     not yet received by the subscriber */
    double rate;                  /* open loop: msg/s over all; 0 = closed */
    long long warmup_ns, duration_ns;
    long long max_messages;       /* closed loop: end the window after this
                                     many completions; 0 = duration only */
    long long per_publisher;      /* closed loop: each publisher sends exactly
                                     this many, and the window ends once all
                                     completed (duration_ns is then the
                                     deadline); 0 = no quota */
    long long drain_ns;           /* after the window, wait for stragglers
                                     while they keep coming, at most this */
    const char *request;          /* history: the request body */
    const char *topic;            /* history: the request topic; NULL =
                                     chat/<room_prefix>/history */
    const char *expect_start;     /* history: what a good reply starts with;
                                     NULL = {"room": */
    const char *expect_item;      /* history: the token counted in it, which
                                     must occur expect_msgs times; NULL =
                                     {"id": (one per message) */
    int expect_msgs;              /* history: messages each reply must hold */
    const char *expect_user;      /* history: ... all by this user (or NULL) */
    const char *expect_has;       /* history: a string the reply must also
                                     hold (or NULL) */
    /* Called at the start (end = 0) and end (end = 1) of the measurement
     * window, e.g. to read CPU counters. May be NULL. */
    void (*mark)(void *arg, int end);
    void *mark_arg;
};

struct load_result {
    long long sent;               /* published, warm-up included */
    long long received;           /* distinct completions */
    long long measured;           /* completions inside the window */
    long long missing;            /* sent, never received by the deadline */
    long long duplicates, bad, errors;
    long long acked;              /* PUBACKs received in the phase (QoS > 0) */
    long long rejected;           /* ... with a reason code >= 0x80 */
    long long unacked;            /* QoS > 0 publishes never acknowledged,
                                     at the end of the phase's drain */
    double seconds;               /* measurement window */
    double rate;                  /* measured / seconds */
    double offered, achieved;     /* open loop: asked and actually sent, msg/s */
    int reached;                  /* open loop: achieved >= 98% of offered */
    struct lat_summary lat;       /* of messages sent inside the window */
};

struct load;

/* Connect `publishers` publishers and one subscriber (chat/+/msgs,
 * base/+/msgs, bench/reply) to the broker, libmosquitto clients with
 * TCP_NODELAY, MQTT 5. NULL with a message on failure. */
struct load *load_new(int mqtt_port, int publishers, int qos);
/* The same clients run the way a plain libmosquitto program runs them:
 * the library's own network thread per client (mosquitto_loop_start).
 * The reference for the broker-alone baseline; client ids bench-plain-*. */
struct load *load_new_plain(int mqtt_port, int publishers, int qos);
void load_free(struct load *l);
/* Ask for a history page until the bridge answers; 0, or -1 after
 * timeout_ms or once alive() says the bridge exited. */
int load_probe(struct load *l, int timeout_ms, int (*alive)(void *), void *arg);
/* Run one phase. 0, or -1 when it could not run at all. */
int load_run(struct load *l, const struct load_spec *s, struct load_result *r);
/* Distinct completions per room of the last phase (rooms entries). */
const long long *load_room_counts(const struct load *l);
/* The client library's version, "libmosquitto 2.0.11". */
void load_client_version(char *buf, size_t size);
/* The thread ids of the load's network loops (the subscriber's first);
 * how many (at most max). The benchmark reads their CPU to show that no
 * load thread is near a full core, i.e. that the load clients are not what
 * limits a measurement. */
int load_threads(const struct load *l, pid_t *tids, int max);
#define LOAD_THREADS 2

/* ==================== Results (bench.c, report.c) ==================== */

/* CPU seconds per 100,000 messages; bench is this process: the load
 * clients. */
struct cost {
    double bridge, mosquitto, redis, bench;
};

/* Context switches per message (all threads) of the bridge and of
 * mosquitto over a measurement window; -1 where unknown or not on the
 * path. */
struct ctxsw {
    double bridge, mosquitto;
};

/* The bridge's Redis counters against what the subscriber received. */
struct store_check {
    int done;
    long long stored, republished;
    int rooms_off;                /* rooms whose counter differs */
};

/* One closed-loop saturation measurement. */
struct sat_point {
    int rooms, publishers;
    struct load_result r;
    struct cost cpu;
    double other_cores;           /* CPU used meanwhile by every other process
                                     of the machine, in cores (-1: unknown) */
    double load_busiest;          /* the busiest load thread, in cores (-1) */
    struct ctxsw csw;
    struct store_check check;
};

struct lat_point {
    int done;
    double offered;               /* msg/s */
    char label[48];               /* "1000/s", "1234/s (50% of sat.)" */
    struct load_result bridge, baseline;
    struct cost cpu[2];           /* CPU s per 100k: [0] bridge path, [1]
                                     baseline (its bridge and redis -1) */
    struct ctxsw csw[2];          /* ... context switches per message */
    struct store_check check;     /* of the bridge path */
};

#define MAX_LAT 8                 /* latency points: a ladder of offered rates */

#define HISTORY_WINDOW 4          /* history requests in flight */

struct hist_point {
    const char *label;
    const char *topic;            /* the request topic */
    const char *request;          /* the JSON body */
    long room_msgs;               /* messages of the room (of each room) */
    int user_rooms;               /* chat/$rooms: the user's rooms; else 0 */
    struct load_result r;
};

#define MAX_HIST 5                /* history points */
#define HIST_REF 1                /* the one the others are compared to:
                                     {"limit":50} on the big room */
#define USER_ROOMS 1000           /* chat/$rooms: the user's rooms */
#define USER_ROOM_MSGS 5          /* ... messages in each */

#define MAX_SCALE 3

#define RET_ROUNDS 10             /* retention: rounds of `cap` messages per room */
#define RET_ROOMS 5               /* ... rooms, one publisher each */

/* The retention phase: a bridge with retention.max_messages_per_room =
 * cap gets RET_ROUNDS x cap messages in each room; Redis's used_memory
 * after each round should stay flat once the rooms are full. */
struct ret_point {
    int done;
    long cap;
    int rounds;                   /* rounds completed */
    long long mem_before;         /* used_memory before the first round */
    long long mem[RET_ROUNDS];    /* ... after each round */
    long long sent, received, missing, bad;  /* all rounds */
    double seconds;               /* the rounds' windows together */
    long long ids[RET_ROOMS];     /* each room's index (ZCARD) at the end */
    int rooms_off;                /* rooms whose index or counter is wrong */
};

/* The phases of a normal run, in order (bench --only picks some). */
enum bench_phase {
    PH_SATURATION, PH_LATENCY, PH_SCALE, PH_HISTORY, PH_RETENTION, PH_HIGH, PH_COUNT
};
#define PH_ALL ((1u << PH_COUNT) - 1)
#define PH_BIT(ph) (1u << (ph))
/* Their --only names: saturation, latency, scale, history, retention,
 * high (latency at 10000/s). */
extern const char *const phase_names[PH_COUNT];

struct results {
    unsigned only;                /* the phases asked for (PH_ALL: all) */
    unsigned ran;                 /* ... those started (a phase that did
                                     not run prints nothing) */
    int cores, quick, qos, payload, window, rooms, publishers;
    char date[32];                /* when the run started, UTC */
    char broker_extra[1024];      /* --mosquitto-conf lines, if any */
    double duration_s;
    char mosquitto[64], redis[64], client[64];
    char broker_conf[1024];       /* settings from config/mosquitto.conf */
    struct sat_point sat_bridge, sat_base;
    struct sat_point sat_plain;   /* the baseline through load_new_plain's
                                     clients (rooms 0: not measured) */
    double redis_bytes_per_msg;
    struct encodings enc;         /* of a saturation message and its room */
    long bridge_hwm_kb;           /* highest over the bridge's runs */
    struct lat_point lat[MAX_LAT];/* by offered rate, ascending */
    int nlat;
    double seed_s, rewrite_s;     /* seeding, then Redis's AOF rewrite */
    double adopt_s;               /* ... then the bridge's adoption of the
                                     seeded rooms (-1: not seen to end) */
    long seeded;                  /* messages */
    int seeded_rooms;
    struct hist_point hist[MAX_HIST];
    int nhist;
    struct sat_point scale_rooms[MAX_SCALE], scale_pubs[MAX_SCALE];
    int nscale_rooms, nscale_pubs;
    struct ret_point ret;
    int problems;                 /* anything lost, bad or mismatched */
    char failed[256];             /* why the run stopped early, if it did */
    char plot[512];               /* the picture written, or why not */
    int plotted;                  /* 1: written to plot */
};

/* The human-readable table, to stdout. */
void report_table(const struct results *r);
/* The one-line JSON, to stdout. */
void report_json(const struct results *r);
/* 1 when the broker's settings (the shipped ones, then the extra lines)
 * end with set_tcp_nodelay true. */
int broker_nodelay(const char *conf, const char *extra);
/* The picture of the run (plot.c): latency p50/p99 against offered rate,
 * bridge path and broker alone, and CPU per message by process, as PNG at
 * path, through gnuplot (its data and script beside it, path with .dat
 * and .gp). Sets r->plotted and r->plot (the path, or why not: gnuplot
 * missing or failing is said there, never a failure of the run). */
void plot_results(struct results *r, const char *path);

/* ==================== Scaling out (cluster.c, report.c) ==================== */

/* bench --cluster's settings (from bench.c's options). */
struct group_opts {
    double duration;              /* each point's measurement window, s */
    int rooms, publishers, payload, qos, window;
    int bridges;                  /* the largest group, 1..PROCS_GROUP */
    int keep;
    const char *bridge;           /* the bridge binary */
    const char *broker_extra;     /* --mosquitto-conf lines */
};

/* One closed-loop saturation point: the baseline (broker only), one
 * bridge on the single Redis, or n bridges in one shared group on the
 * cluster. CPU in seconds over the measurement window. */
struct group_point {
    char label[48];
    int bridges;                  /* 0: the baseline */
    int cluster;                  /* on the Redis Cluster (else single Redis) */
    struct load_result r;
    double bridge_cpu;            /* sum over the group's bridges */
    double mosquitto_cpu, redis_cpu, bench_cpu;   /* redis: the one(s) in use */
    double other_cores;           /* everything else on the machine, cores */
    long long stored[PROCS_GROUP];/* each bridge's own count ("stopped: N
                                     stored" in its log), whole point */
    struct store_check check;
};

#define GROUP_POINTS (2 + PROCS_GROUP)   /* baseline, reference, 1..n bridges */

struct group_results {
    int cores, qos, payload, window, rooms, publishers, bridges;
    double duration_s;
    char mosquitto[64], redis[64], client[64];
    char broker_conf[1024];       /* settings from config/mosquitto.conf */
    char load_before[64], load_after[64];    /* /proc/loadavg */
    struct group_point pts[GROUP_POINTS];
    int npts;
    int problems;                 /* anything lost, bad or mismatched */
    char failed[256];             /* why the run stopped early, if it did */
};

/* Run bench --cluster into r (see cluster.c). 0, or -1 when it stopped
 * early (r->failed says why). */
int cluster_bench(const struct group_opts *o, struct group_results *r);
/* Its table and JSON line, to stdout. */
void report_group_table(const struct group_results *r);
void report_group_json(const struct group_results *r);

/* ==================== The run (bench.c, compare.c) ==================== */

struct opts {
    double duration;              /* saturation window, s */
    long long messages;           /* saturation: measure this many instead */
    int rooms, publishers, payload, qos, window, quick, json_only, keep;
    int cluster, bridges;         /* --cluster: up to `bridges` in a group */
    unsigned only;                /* --only: the phases to run (PH_ALL) */
    const char *compare;          /* --compare: the old bridge binary */
    int rounds;                   /* --compare: rounds */
    char broker_extra[1024];      /* --mosquitto-conf lines */
    const char *bridge;
    const char *plot;             /* --plot: the PNG to write, or NULL */
};

/* Phase lengths (and the retention phase's cap), set from --quick. */
struct timing {
    long long warmup, latency, lat_warmup, history, hist_warmup, scale, scale_warmup,
              drain, ret_round;   /* ret_round: a retention round's deadline */
    long ret_cap;                 /* retention.max_messages_per_room */
};

/* Everything a run holds: options, processes, clients, results, and the
 * counters mark_cpu() samples at a window's start [0] and end [1]. */
struct ctx {
    struct opts o;
    struct timing t;
    struct procs pr;
    struct load *load;
    int maxpub;                   /* the load's publishers */
    struct redisContext *kv;
    struct results res;
    double cpu[2][5];             /* mark(): bridge, mosquitto, redis, bench,
                                     and the whole machine */
    double tcpu[2][LOAD_THREADS]; /* ... the load's threads */
    long long csw[2][2];          /* ... context switches: bridge, mosquitto */
    long long mark_ns[2];         /* ... and when */
};

/* One closed-loop saturation point into pt (rooms and publishers set):
 * its CPU and context switches per message, and on the bridge path the
 * store check. 0, or -1 if it could not run. */
int bench_run_sat(struct ctx *c, struct sat_point *pt, enum load_target target,
                  const char *prefix, long long warmup, long long duration,
                  long long max_messages);
/* One open-loop run at rate on one path (the latency phase's timing):
 * the result, CPU s per 100k and context switches per message; on the
 * bridge path (check not NULL) the store check. 0 or -1. */
int bench_run_open(struct ctx *c, enum load_target target, const char *prefix, double rate,
                   struct load_result *r, struct store_check *check, struct cost *cpu,
                   struct ctxsw *csw);
/* Stop the running bridge, if any, and start bridge_path on the default
 * configuration, its journal in the directory `journal`; waits until it
 * answers. 0 or -1. */
int bench_switch_bridge(struct ctx *c, const char *bridge_path, const char *journal);

/* ==================== A/B (compare.c, report.c) ==================== */

#define CMP_ROUNDS_MAX 15
#define CMP_RATE 1000.0           /* the open-loop point: the latency phase's */
enum { CMP_OLD, CMP_NEW, CMP_BASE, CMP_SIDES };   /* --compare, --bridge, broker alone */

/* One binary's (or the broker alone's) figures in one round; -1 or NAN
 * where unknown or not on the path. */
struct cmp_run {
    int done;
    double sat_rate;              /* closed loop, msg/s */
    struct cost cpu;              /* ... CPU s per 100,000 messages */
    double cpu_ratio;             /* ... bridge / mosquitto CPU */
    struct ctxsw csw;             /* ... context switches per message */
    double p50, p99;              /* open loop at CMP_RATE, ms */
    double open_rate;             /* ... delivered msg/s */
    double open_ratio;            /* ... bridge / mosquitto CPU */
    struct ctxsw open_csw;        /* ... context switches per message */
    double hwm_mb;                /* the bridge's peak RSS, MB */
    double other_cores;           /* other processes during the saturation
                                     run, cores: a disturbed run shows */
};

struct cmp_results {
    char path[2][256];            /* CMP_OLD, CMP_NEW binaries */
    int rounds;                   /* asked for */
    int done;                     /* completed */
    int new_first[CMP_ROUNDS_MAX];/* the round's order: new,old */
    struct cmp_run run[CMP_ROUNDS_MAX][CMP_SIDES];
};

/* Run bench --compare's rounds on c's servers (set up, the --bridge
 * binary running). 0, or -1 when it stopped early (c->res.failed). */
int compare_bench(struct ctx *c, struct cmp_results *r);
/* Its table and JSON line (the run's settings from head), to stdout. */
void report_compare_table(const struct results *head, const struct cmp_results *r);
void report_compare_json(const struct results *head, const struct cmp_results *r);

#endif
