/* proc.c -- the benchmark's servers and bridge as child processes, and
 * what /proc says about them (see bench.h).
 *
 * Every child is started with fork+exec, its output appended to a log in
 * the temporary directory, and asked to die with the benchmark
 * (PR_SET_PDEATHSIG), so nothing outlives a benchmark killed with -9. They
 * are stopped by PID only. bench --cluster adds three Redis Cluster
 * primaries and a shared group of bridges, each with its own files. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "sys.h"

/* ==================== Helpers ==================== */

/* Start argv with its output appended to dir/logname; it dies with us. */
static pid_t spawn(char *const argv[], const char *dir, const char *logname) {
    char log[512];
    snprintf(log, sizeof(log), "%s/%s", dir, logname);
    return sys_spawn(argv, log, 1);
}

/* Stop a child by PID (SIGTERM, then SIGKILL) and forget it. */
static void stop_pid(pid_t *pid, int timeout_ms) {
    sys_stop_pid(*pid, timeout_ms);
    *pid = 0;
}

/* ==================== Servers ==================== */

/* redis-server from config/redis.conf (AOF everysec, compact hashes), as
 * make run starts it, on our port and directory. make runs us from the
 * project's top directory. */
static void spawn_redis(struct procs *p) {
    char port[16];
    snprintf(port, sizeof(port), "%d", p->redis_port);
    char *argv[] = { "redis-server", "config/redis.conf", "--port", port,
        "--bind", "127.0.0.1", "--dir", p->dir, NULL };
    p->redis_pid = spawn(argv, p->dir, "redis.log");
}

#define SHIPPED_CONF "config/mosquitto.conf"

/* What config/mosquitto.conf said when the benchmark was written: used
 * only if the file cannot be read. */
static const char fallback_conf[] =
    "allow_anonymous true\npersistence true\nautosave_interval 10\n"
    "max_queued_messages 100000\nset_tcp_nodelay true\n";

/* 1 for a setting of the shipped file that the benchmark must not take:
 * a listener and what belongs to one (the benchmark has its own), or one
 * naming a file, directory, user or plugin of the machine the file was
 * written for. */
static int conf_skip(const char *key, size_t n) {
    static const char *const names[] = { "listener", "port", "bind_address", "bind_interface",
        "protocol", "socket_domain", "mount_point", "http_dir", "max_connections",
        "accept_protocol_versions", "require_certificate", "use_identity_as_username",
        "use_subject_as_username", "use_username_as_clientid", "capath", "user", "log_dest",
        "include_dir", "plugin", "auth_plugin", "persistence_location" };
    static const char *const prefixes[] = { "plugin_opt_", "auth_opt_", "tls_", "psk_",
        "ciphers", "websockets_" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == n && memcmp(key, names[i], n) == 0) return 1;
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (n >= strlen(prefixes[i]) && memcmp(key, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return n >= 4 && memcmp(key + n - 4, "file", 4) == 0;    /* certfile, pid_file... */
}

/* The broker-wide settings of config/mosquitto.conf, one a line, into
 * out: its lines less comments, the settings conf_skip names and bridge
 * sections (from a `connection` line to the next listener). 0, or -1 when
 * the file could not be read (out then holds fallback_conf). */
static int shipped_settings(char *out, size_t size) {
    char line[512];
    size_t used = 0;
    int in_bridge = 0;
    FILE *f = fopen(SHIPPED_CONF, "r");
    snprintf(out, size, "%s", fallback_conf);
    if (f == NULL) return -1;
    out[0] = '\0';
    while (fgets(line, sizeof(line), f)) {
        char *k = line + strspn(line, " \t");
        size_t n = strcspn(k, " \t\r\n"), len = strcspn(k, "\r\n");
        if (n == 0 || *k == '#') continue;
        if (n == 10 && memcmp(k, "connection", 10) == 0) in_bridge = 1;
        if (n == 8 && memcmp(k, "listener", 8) == 0) in_bridge = 0;
        while (len > 0 && (k[len - 1] == ' ' || k[len - 1] == '\t')) len--;
        if (in_bridge || conf_skip(k, n) || used + len + 2 > size) continue;
        used += (size_t)snprintf(out + used, size - used, "%.*s\n", (int)len, k);
    }
    fclose(f);
    return 0;
}

/* mosquitto on our port with the settings of config/mosquitto.conf (see
 * procs_start_servers), then the benchmark's own (BROKER_OWN, see bench.h),
 * its database in the temporary directory, then --mosquitto-conf's lines
 * (the last value of a setting wins). Started as root, mosquitto would
 * switch to its own user and could not write there. 0 or -1. */
static int spawn_mosquitto(struct procs *p) {
    char conf[4096], path[300];
    if (shipped_settings(p->broker_conf, sizeof(p->broker_conf)) < 0)
        fprintf(stderr, "bench: cannot read %s; using its settings as of the benchmark's "
                "writing\n", SHIPPED_CONF);
    snprintf(conf, sizeof(conf), "listener %d 127.0.0.1\n%s%s%spersistence_location %s/\n%s%s",
             p->mqtt_port, p->broker_conf,
             strstr(p->broker_conf, "allow_anonymous") ? "" : "allow_anonymous true\n",
             BROKER_OWN, p->dir, geteuid() == 0 ? "user root\n" : "", p->broker_extra);
    snprintf(path, sizeof(path), "%s/mosquitto.conf", p->dir);
    if (sys_write_file(path, conf) < 0) return -1;
    char *argv[] = { "mosquitto", "-c", path, NULL };
    p->mqtt_pid = spawn(argv, p->dir, "mosquitto.log");
    return 0;
}

/* The temporary directory, free ports, both servers; waits until they
 * accept connections. */
int procs_start_servers(struct procs *p) {
    snprintf(p->dir, sizeof(p->dir), "/tmp/chat-bridge-bench.XXXXXX");
    if (mkdtemp(p->dir) == NULL) {
        fprintf(stderr, "bench: mkdtemp: %s\n", strerror(errno));
        p->dir[0] = '\0';
        return -1;
    }
    p->redis_port = sys_free_port();
    p->mqtt_port = sys_free_port();
    spawn_redis(p);
    if (spawn_mosquitto(p) < 0 || p->redis_pid < 0 || p->mqtt_pid < 0 ||
        sys_wait_port(p->redis_port, 10000, &bench_interrupted) < 0 || sys_wait_port(p->mqtt_port, 10000, &bench_interrupted) < 0) {
        fprintf(stderr, "bench: mosquitto or redis-server did not start\n");
        procs_dump_log(p, "redis.log");
        procs_dump_log(p, "mosquitto.log");
        return -1;
    }
    return 0;
}

/* ==================== Redis Cluster ==================== */

/* A free port not yet given to this run (the client + 10000 default of a
 * bus port is impossible above 55535: bus ports are free ports too). */
static int fresh_port(const struct procs *p) {
    for (int tries = 0; tries < 50; tries++) {
        int port = sys_free_port(), dup = port == p->redis_port || port == p->mqtt_port;
        for (int i = 0; i < PROCS_NODES; i++)
            dup |= port == p->node_port[i] || port == p->node_bus[i];
        if (port > 0 && !dup) return port;
    }
    return -1;
}

/* Primary i: config/redis.conf (AOF everysec, as the single Redis) in
 * cluster mode, its data and nodes.conf in dir/node-<i>. 0 or -1. */
static int spawn_node(struct procs *p, int i) {
    char port[16], bus[16], dir[300], nodes[320], log[32];
    snprintf(port, sizeof(port), "%d", p->node_port[i]);
    snprintf(bus, sizeof(bus), "%d", p->node_bus[i]);
    snprintf(dir, sizeof(dir), "%s/node-%d", p->dir, i);
    snprintf(nodes, sizeof(nodes), "%s/nodes.conf", dir);
    snprintf(log, sizeof(log), "node-%d.log", i);
    if (mkdir(dir, 0700) != 0) return -1;
    char *argv[] = { "redis-server", "config/redis.conf", "--port", port,
        "--cluster-enabled", "yes", "--cluster-port", bus, "--cluster-config-file", nodes,
        "--bind", "127.0.0.1", "--dir", dir, NULL };
    p->node_pid[i] = spawn(argv, p->dir, log);
    return p->node_pid[i] > 0 ? 0 : -1;
}

/* Run argv to its end, at most timeout_ms, its output appended to
 * dir/logname. Its exit status, or -1. */
static int run_to_end(char *const argv[], const char *dir, const char *logname,
                      int timeout_ms) {
    char log[512];
    snprintf(log, sizeof(log), "%s/%s", dir, logname);
    return sys_run(argv, log, timeout_ms, &bench_interrupted);
}

/* redis-cli --cluster create over the primaries, no replicas. */
static int create_cluster(struct procs *p) {
    char addr[PROCS_NODES][32];
    char *argv[PROCS_NODES + 5] = { "redis-cli", "--cluster", "create" };
    for (int i = 0; i < PROCS_NODES; i++) {
        snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%d", p->node_port[i]);
        argv[3 + i] = addr[i];
    }
    argv[3 + PROCS_NODES] = "--cluster-yes";
    if (run_to_end(argv, p->dir, "cluster-create.log", 60000) == 0) return 0;
    fprintf(stderr, "bench: redis-cli --cluster create failed\n");
    procs_dump_log(p, "cluster-create.log");
    return -1;
}

/* Ports, the primaries, their ports open, the cluster created. */
int procs_start_cluster(struct procs *p) {
    for (int i = 0; i < PROCS_NODES; i++)
        if ((p->node_port[i] = fresh_port(p)) < 0 || (p->node_bus[i] = fresh_port(p)) < 0)
            return -1;
    for (int i = 0; i < PROCS_NODES; i++)
        if (spawn_node(p, i) < 0) {
            fprintf(stderr, "bench: cannot start Redis Cluster node %d\n", i);
            return -1;
        }
    for (int i = 0; i < PROCS_NODES; i++)
        if (sys_wait_port(p->node_port[i], 10000, &bench_interrupted) < 0) {
            char log[32];
            snprintf(log, sizeof(log), "node-%d.log", i);
            fprintf(stderr, "bench: Redis Cluster node %d did not start\n", i);
            procs_dump_log(p, log);
            return -1;
        }
    return create_cluster(p);
}

/* ==================== Bridges ==================== */

/* Write bridge.yaml (broker, Redis, journal in the temporary directory;
 * every other option default unless extra_yaml sets it) and start the
 * bridge on it. */
int procs_start_bridge(struct procs *p, const char *bridge_path, const char *extra_yaml) {
    return procs_start_bridge_journal(p, bridge_path, "journal", extra_yaml);
}

/* procs_start_bridge with the journal in dir/<journal>: two binaries
 * taking turns (bench --compare) each keep their own, so that neither
 * reads a journal the other wrote. */
int procs_start_bridge_journal(struct procs *p, const char *bridge_path, const char *journal,
                               const char *extra_yaml) {
    char conf[300], yaml[1024];
    snprintf(conf, sizeof(conf), "%s/bridge.yaml", p->dir);
    if (snprintf(yaml, sizeof(yaml),
                 "mqtt:\n  uri: tcp://127.0.0.1:%d\n"
                 "redis:\n  port: %d\n"
                 "journal:\n  dir: %s/%s\n%s", p->mqtt_port, p->redis_port, p->dir,
                 journal, extra_yaml) >= (int)sizeof(yaml) ||
        sys_write_file(conf, yaml) < 0)
        return -1;
    char *argv[] = { (char *)bridge_path, "-c", conf, NULL };
    p->bridge_pid = spawn(argv, p->dir, "bridge.log");
    return p->bridge_pid > 0 ? 0 : -1;
}

/* SIGTERM first: the bridge stores its journal before it exits. */
void procs_stop_bridge(struct procs *p) {
    stop_pid(&p->bridge_pid, 15000);
}

/* Reap the bridge if it exited. */
int procs_bridge_alive(struct procs *p) {
    int status;
    if (p->bridge_pid <= 0) return 0;
    if (waitpid(p->bridge_pid, &status, WNOHANG) != p->bridge_pid) return 1;
    p->bridge_pid = 0;
    return 0;
}

/* name.yaml: broker and client id, the caller's mqtt lines, its redis
 * section, the journal in name.journal/; then the bridge on it. */
int procs_start_group_bridge(struct procs *p, int i, const char *bridge_path, const char *name,
                             const char *mqtt_lines, const char *redis_lines) {
    char conf[320], yaml[1024], log[80];
    if (i < 0 || i >= PROCS_GROUP) return -1;
    snprintf(conf, sizeof(conf), "%s/%s.yaml", p->dir, name);
    snprintf(log, sizeof(log), "%s.log", name);
    if (snprintf(yaml, sizeof(yaml),
                 "mqtt:\n  uri: tcp://127.0.0.1:%d\n  client_id: %s\n%s"
                 "redis:\n%s"
                 "journal:\n  dir: %s/%s.journal\n", p->mqtt_port, name, mqtt_lines,
                 redis_lines, p->dir, name) >= (int)sizeof(yaml) ||
        sys_write_file(conf, yaml) < 0)
        return -1;
    char *argv[] = { (char *)bridge_path, "-c", conf, NULL };
    p->group_pid[i] = spawn(argv, p->dir, log);
    return p->group_pid[i] > 0 ? 0 : -1;
}

/* SIGTERM to all, then each waited for (SIGKILL after 15 s): they store
 * what they hold in parallel. */
void procs_stop_group(struct procs *p) {
    for (int i = 0; i < PROCS_GROUP; i++)
        if (p->group_pid[i] > 0) kill(p->group_pid[i], SIGTERM);
    for (int i = 0; i < PROCS_GROUP; i++)
        if (p->group_pid[i] > 0) stop_pid(&p->group_pid[i], 15000);
}

/* Reap bridge i of the group if it exited. */
int procs_group_alive(struct procs *p, int i) {
    int status;
    if (i < 0 || i >= PROCS_GROUP || p->group_pid[i] <= 0) return 0;
    if (waitpid(p->group_pid[i], &status, WNOHANG) != p->group_pid[i]) return 1;
    p->group_pid[i] = 0;
    return 0;
}

/* Scan the log line by line; the last line with the marker wins. */
long long procs_log_find(const struct procs *p, const char *name, const char *marker) {
    char path[512], line[1024];
    long long v = -1;
    snprintf(path, sizeof(path), "%s/%s.log", p->dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    while (fgets(line, sizeof(line), f)) {
        const char *m = strstr(line, marker);
        if (m) v = strtoll(m + strlen(marker), NULL, 10);
    }
    fclose(f);
    return v;
}

/* nftw callback: remove one entry, children first. */
static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0) fprintf(stderr, "bench: cannot remove %s\n", path);
    return 0;
}

/* The bridges first (they store what they hold), then the broker and the
 * Redis servers. */
void procs_stop_all(struct procs *p) {
    procs_stop_bridge(p);
    procs_stop_group(p);
    stop_pid(&p->mqtt_pid, 5000);
    stop_pid(&p->redis_pid, 10000);
    for (int i = 0; i < PROCS_NODES; i++)
        if (p->node_pid[i] > 0) stop_pid(&p->node_pid[i], 10000);
    if (p->dir[0] && p->keep) fprintf(stderr, "bench: logs kept in %s\n", p->dir);
    else if (p->dir[0]) nftw(p->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    p->dir[0] = '\0';
}

/* The last 20 lines of a log, to stderr. */
void procs_dump_log(const struct procs *p, const char *name) {
    char path[512], line[512], ring[20][512];
    int n = 0;
    snprintf(path, sizeof(path), "%s/%s", p->dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL) return;
    while (fgets(line, sizeof(line), f)) snprintf(ring[n++ % 20], sizeof(line), "%s", line);
    fclose(f);
    fprintf(stderr, "---- last lines of %s ----\n", name);
    for (int i = n > 20 ? n - 20 : 0; i < n; i++) fputs(ring[i % 20], stderr);
}

/* ==================== Watchdog ==================== */

struct watchdog {
    struct procs *p;
    int seconds;
};

static struct watchdog g_watchdog;

/* The last resort if a phase hangs despite its deadline: kill the
 * children by PID, remove the directory, exit. */
static void *watchdog_main(void *arg) {
    struct watchdog *w = arg;
    sleep_until_ns(now_ns() + (long long)w->seconds * 1000000000LL);
    fprintf(stderr, "bench: still running after %d s; giving up\n", w->seconds);
    pid_t pids[3] = { w->p->bridge_pid, w->p->mqtt_pid, w->p->redis_pid };
    for (int i = 0; i < 3; i++)
        if (pids[i] > 0) kill(pids[i], SIGKILL);
    for (int i = 0; i < PROCS_GROUP; i++)
        if (w->p->group_pid[i] > 0) kill(w->p->group_pid[i], SIGKILL);
    for (int i = 0; i < PROCS_NODES; i++)
        if (w->p->node_pid[i] > 0) kill(w->p->node_pid[i], SIGKILL);
    if (w->p->dir[0]) nftw(w->p->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    _exit(3);
}

/* Start the watchdog thread (detached). */
void procs_watchdog(struct procs *p, int seconds) {
    pthread_t t;
    g_watchdog = (struct watchdog){ p, seconds };
    if (pthread_create(&t, NULL, watchdog_main, &g_watchdog) == 0) pthread_detach(t);
}

/* ==================== /proc ==================== */

/* Fields 14 and 15 of a /proc stat file, in seconds. */
static double stat_cpu_s(const char *path) {
    char buf[1024];
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *s = strrchr(buf, ')');      /* the name may hold spaces */
    unsigned long long ut, st;
    if (s == NULL || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                            &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* /proc/<pid>/stat: every thread of the process. */
double proc_cpu_s(pid_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    return stat_cpu_s(path);
}

/* voluntary_ctxt_switches + nonvoluntary_ctxt_switches of one thread's
 * status file; -1 unless both were read. */
static long long task_ctxsw(const char *path) {
    char line[256];
    long long sum = 0, v;
    int seen = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "voluntary_ctxt_switches: %lld", &v) == 1 ||
            sscanf(line, "nonvoluntary_ctxt_switches: %lld", &v) == 1) {
            sum += v;
            seen++;
        }
    fclose(f);
    return seen == 2 ? sum : -1;
}

/* /proc/<pid>/status counts the main thread only: every task's instead.
 * A thread gone since the last call takes its count with it (the bridge
 * and mosquitto keep their threads for their whole life). */
long long proc_ctxsw(pid_t pid) {
    char dir[64], path[128];
    long long sum = 0;
    int n = 0;
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (d == NULL) return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        snprintf(path, sizeof(path), "%s/%.20s/status", dir, e->d_name);
        long long v = task_ctxsw(path);
        if (v < 0) continue;               /* the thread just exited */
        sum += v;
        n++;
    }
    closedir(d);
    return n > 0 ? sum : -1;
}

/* /proc/self/task/<tid>/stat: one thread of ours. */
double proc_thread_cpu_s(pid_t tid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    return stat_cpu_s(path);
}

/* The first line of /proc/stat: user, nice, system, idle, iowait, irq,
 * softirq, steal; busy is all but idle and iowait. */
double proc_machine_busy_s(void) {
    unsigned long long v[8] = { 0 };
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL) return -1;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8) return -1;
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}


/* mosquitto -h prints "mosquitto version X" (and exits non-zero). */
void proc_mosquitto_version(char *buf, size_t size) {
    char line[256];
    snprintf(buf, size, "?");
    FILE *f = popen("mosquitto -h 2>&1", "r");
    if (f == NULL) return;
    while (fgets(line, sizeof(line), f)) {
        const char *v = strstr(line, "mosquitto version ");
        if (v) snprintf(buf, size, "%.*s", (int)strcspn(v + 18, " \r\n"), v + 18);
    }
    pclose(f);
}

/* The first three fields of /proc/loadavg. */
void proc_loadavg(char *buf, size_t size) {
    double a[3];
    snprintf(buf, size, "?");
    FILE *f = fopen("/proc/loadavg", "r");
    if (f == NULL) return;
    if (fscanf(f, "%lf %lf %lf", &a[0], &a[1], &a[2]) == 3)
        snprintf(buf, size, "%.2f %.2f %.2f", a[0], a[1], a[2]);
    fclose(f);
}
