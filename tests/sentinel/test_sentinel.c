/* test_sentinel.c -- the bridge on a primary that Redis Sentinel names
 * (issue #15), against real servers on loopback.
 *
 * Three redis-server (a primary and two replicas; requirepass and
 * masterauth "data" password, no persistence), three sentinels
 * (redis-server --sentinel on a written config: quorum 2,
 * down-after-milliseconds 1000, failover-timeout 4000, their own
 * requirepass), one mosquitto, and the bridge from the integration
 * harness with redis.sentinels, redis.sentinel_master, the sentinels'
 * password in a file and the data password inline. A publisher process
 * sends numbered QoS 1 messages, {"user":"u<seq%7>","text":"n=<seq>"}
 * (no client_msg_id: a message stored twice would show), over 20 rooms,
 * and records each PUBACK. After each stream the primary is read room by
 * room: every message acknowledged to the publisher must be there once,
 * ids 1..counter without gaps.
 *
 *  1. The primary SIGKILLed mid-stream with redis.wait_replicas: 1: the
 *     sentinels promote a replica, the bridge follows; exactly once. The
 *     gap (kill to the first message stored on the new primary: the
 *     promoted node's counters grow past their value at the kill) and
 *     the failover's length are printed.
 *  3. The killed primary started again (as a master with an empty data
 *     set, as after a crash); the bridge's connection is killed while the
 *     sentinels convert that node into a replica: the bridge never writes
 *     to it (no EVALSHA, no READONLY error there, none in the bridge's
 *     log) and the stream is stored exactly once.
 *  1b. The same kill without redis.wait_replicas (reload by SIGHUP): what
 *     was lost is measured and printed, not asserted; nothing duplicated.
 *  2. SENTINEL FAILOVER (planned switchover) mid-stream, without and with
 *     redis.wait_replicas: exactly once both times.
 *  4. One sentinel SIGKILLed, then the two others, the primary up: the
 *     bridge keeps writing (also through a reconnect forced meanwhile,
 *     to the primary it confirmed last), says in the log what it cannot
 *     follow, and its status document shows no sentinel watched; the
 *     sentinels back, it watches them again.
 *  5. A second bridge (own prefixes, client id, journal) with a wrong
 *     master name, then (reloaded) a wrong sentinel password: it says why
 *     in its log, keeps the messages in its journal (status document),
 *     stores nothing, retries, and stores every one exactly once as soon
 *     as the sentinels accept (the name monitored, the password added).
 *
 * Every wait is bounded in count and time; no assertion is on a timing.
 * Figures are printed. Processes are stopped by PID and die with the
 * test (PDEATHSIG); /tmp/chat-bridge-sentinel.XXXXXX is removed unless
 * CB_KEEP is set. $CB_BRIDGE is the bridge, run under $CB_WRAPPER when
 * set. CB_SENTINEL_ONLY=<pattern> runs only the matching tests. */
#define _GNU_SOURCE
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <MQTTClient.h>

#include "../integration/harness.h"
#include "numpub.h"
#include "sys.h"

enum { NODES = 3, SENTINELS = 3, ROOMS = 20, MAXN = 4000, WINDOW = 16, RATE = 300 };

#define MASTER "mymaster"
#define DATA_PASS "data-s3cret"
#define SENT_PASS "sentinel-s3cret"

static char dir[] = "/tmp/chat-bridge-sentinel.XXXXXX";
static int made_dir;
static int rport[NODES], sport[SENTINELS];
static pid_t rpid[NODES], spid[SENTINELS];      /* 0: not running */
static redisContext *rctx[NODES];               /* the test's connection to each node */
static struct h_env env;                        /* dir, mqtt, the bridge (harness) */
static int dead = -1;                           /* the node scenario 1 killed */
static int wait_replicas = 1;                   /* the bridge's configuration now */

/* ==================== Small helpers ==================== */

static long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* A free port not already given to a server of this test. */
static int fresh_port(void) {
    for (int tries = 0; tries < 50; tries++) {
        int p = sys_free_port(), dup = p == env.mqtt_port;
        for (int i = 0; i < NODES; i++) dup |= p == rport[i] || p == sport[i];
        if (p > 0 && !dup) return p;
    }
    return -1;
}

/* nftw callback: remove one entry (children first). */
static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Occurrences of needle in a log of the test directory. */
static int log_count(const char *name, const char *needle) {
    char path[300], line[4096];
    int n = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL) return 0;
    while (fgets(line, sizeof(line), f))
        for (const char *p = line; (p = strstr(p, needle)) != NULL; p++) n++;
    fclose(f);
    return n;
}

/* Wait up to timeout_ms until the log holds needle at least times times.
 * How many times it does. */
static int log_wait(const char *name, const char *needle, int times, int timeout_ms) {
    int n = log_count(name, needle);
    for (long t0 = now_ms(); n < times && now_ms() - t0 < timeout_ms; n = log_count(name, needle))
        sys_sleep_ms(100);
    return n;
}

/* ==================== Redis nodes ==================== */

/* Start node i on its port, as a replica of `of` (-1: as a master). */
static int start_node(int i, int of) {
    char port[16], master[16], ndir[300], log[300];
    snprintf(port, sizeof(port), "%d", rport[i]);
    snprintf(master, sizeof(master), "%d", of >= 0 ? rport[of] : 0);
    snprintf(ndir, sizeof(ndir), "%s/node-%d", dir, rport[i]);
    snprintf(log, sizeof(log), "%s/redis-%d.log", dir, rport[i]);
    mkdir(ndir, 0700);
    char *argv[] = { "redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", ndir,
        "--save", "", "--appendonly", "no", "--requirepass", DATA_PASS,
        "--masterauth", DATA_PASS, of >= 0 ? "--replicaof" : NULL, "127.0.0.1", master, NULL };
    rpid[i] = sys_spawn(argv, log, 1);
    return rpid[i] > 0 && sys_wait_port(rport[i], 10000, NULL) == 0 ? 0 : -1;
}

/* (Re)connect to node i, authenticated; -1 when it does not answer. */
static int connect_node(int i) {
    struct timeval tv = { 2, 0 };
    if (rctx[i]) redisFree(rctx[i]);
    rctx[i] = NULL;
    if (rpid[i] <= 0) return -1;
    rctx[i] = redisConnectWithTimeout("127.0.0.1", rport[i], tv);
    if (rctx[i] == NULL || rctx[i]->err || redisSetTimeout(rctx[i], tv) != REDIS_OK) {
        if (rctx[i]) redisFree(rctx[i]);
        rctx[i] = NULL;
        return -1;
    }
    redisReply *r = redisCommand(rctx[i], "AUTH %s", DATA_PASS);
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
    return ok ? 0 : -1;
}

/* A command on node i; NULL when it cannot be reached (the connection is
 * made again next time). */
static redisReply *node_cmd(int i, const char *fmt, ...) {
    va_list ap;
    if ((rctx[i] == NULL || rctx[i]->err) && connect_node(i) < 0) return NULL;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rctx[i], fmt, ap);
    va_end(ap);
    return r;
}

/* The integer after "field" in node i's answer to cmd (INFO ...), or -1. */
static long long node_field(int i, const char *cmd, const char *field) {
    redisReply *r = node_cmd(i, cmd);
    const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, field) : NULL;
    long long v = p ? strtoll(p + strlen(field), NULL, 10) : -1;
    if (r) freeReplyObject(r);
    return v;
}

/* 1 when node i says ROLE master. */
static int is_master(int i) {
    redisReply *r = rpid[i] > 0 ? node_cmd(i, "ROLE") : NULL;
    int yes = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
              r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") == 0;
    if (r) freeReplyObject(r);
    return yes;
}

/* SIGKILL node i (a crash) and reap it. */
static void kill_node(int i) {
    if (rpid[i] > 0) {
        kill(rpid[i], SIGKILL);
        waitpid(rpid[i], NULL, 0);
    }
    rpid[i] = 0;
    if (rctx[i]) redisFree(rctx[i]);
    rctx[i] = NULL;
}

static int node_by_port(int port) {
    for (int i = 0; i < NODES; i++)
        if (rport[i] == port) return i;
    return -1;
}

/* ==================== Sentinels ==================== */

/* Sentinel j's configuration (rewritten by the sentinel as it runs). */
static int write_sentinel_conf(int j) {
    char path[300], text[1024];
    snprintf(path, sizeof(path), "%s/sentinel-%d.conf", dir, sport[j]);
    snprintf(text, sizeof(text),
             "port %d\nbind 127.0.0.1\ndir %s\nrequirepass " SENT_PASS "\n"
             "sentinel sentinel-pass " SENT_PASS "\n"
             "sentinel monitor " MASTER " 127.0.0.1 %d 2\n"
             "sentinel auth-pass " MASTER " " DATA_PASS "\n"
             "sentinel down-after-milliseconds " MASTER " 1000\n"
             "sentinel failover-timeout " MASTER " 4000\n"
             "sentinel parallel-syncs " MASTER " 2\n", sport[j], dir, rport[0]);
    return sys_write_file(path, text);
}

static int start_sentinel(int j) {
    char conf[300], log[300];
    snprintf(conf, sizeof(conf), "%s/sentinel-%d.conf", dir, sport[j]);
    snprintf(log, sizeof(log), "%s/sentinel-%d.log", dir, sport[j]);
    char *argv[] = { "redis-server", conf, "--sentinel", NULL };
    spid[j] = sys_spawn(argv, log, 1);
    return spid[j] > 0 && sys_wait_port(sport[j], 10000, NULL) == 0 ? 0 : -1;
}

static void kill_sentinel(int j) {
    if (spid[j] > 0) {
        kill(spid[j], SIGKILL);
        waitpid(spid[j], NULL, 0);
    }
    spid[j] = 0;
}

/* A command on sentinel j (a connection of its own, authenticated);
 * NULL when it does not answer. */
static redisReply *sent_cmd(int j, const char *fmt, ...) {
    struct timeval tv = { 2, 0 };
    if (spid[j] <= 0) return NULL;
    redisContext *c = redisConnectWithTimeout("127.0.0.1", sport[j], tv);
    redisReply *r = NULL;
    if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK) {
        va_list ap;
        r = redisCommand(c, "AUTH %s", SENT_PASS);
        if (r) freeReplyObject(r);
        va_start(ap, fmt);
        r = redisvCommand(c, fmt, ap);
        va_end(ap);
    }
    if (c) redisFree(c);
    return r;
}

/* The node sentinel j names as the primary, or -1. */
static int named_by(int j) {
    redisReply *r = sent_cmd(j, "SENTINEL get-master-addr-by-name " MASTER);
    int i = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2
            ? node_by_port(atoi(r->element[1]->str)) : -1;
    if (r) freeReplyObject(r);
    return i;
}

/* A field of a SENTINEL MASTER / REPLICAS entry (flat name/value list). */
static const char *entry_field(const redisReply *e, const char *name) {
    for (size_t k = 0; e->type == REDIS_REPLY_ARRAY && k + 1 < e->elements; k += 2)
        if (e->element[k]->type == REDIS_REPLY_STRING && strcmp(e->element[k]->str, name) == 0)
            return e->element[k + 1]->str;
    return "";
}

/* Sentinel j sees the master sane (flags "master" only), the other live
 * sentinels, and want replicas flagged "slave" only, which it last saw
 * (INFO) as replicas of that master with their link up. (A sentinel
 * reads a replica's INFO every 10 s: one that still remembers a replica
 * as a master would turn it back into a replica the moment a failover
 * promotes it, and the failover would fail.) */
static int sentinel_sane(int j, int m, int want, int others) {
    redisReply *x = sent_cmd(j, "SENTINEL MASTER " MASTER);
    int ok = x && strcmp(entry_field(x, "flags"), "master") == 0 &&
             atoi(entry_field(x, "num-other-sentinels")) >= others;
    if (x) freeReplyObject(x);
    redisReply *r = ok ? sent_cmd(j, "SENTINEL REPLICAS " MASTER) : NULL;
    int good = 0;
    for (size_t k = 0; r && r->type == REDIS_REPLY_ARRAY && k < r->elements; k++) {
        const redisReply *e = r->element[k];
        good += strcmp(entry_field(e, "flags"), "slave") == 0 &&
                strcmp(entry_field(e, "role-reported"), "slave") == 0 &&
                strcmp(entry_field(e, "master-link-status"), "ok") == 0 &&
                atoi(entry_field(e, "master-port")) == rport[m];
    }
    if (r) freeReplyObject(r);
    return ok && good == want;
}

/* The node the live sentinels name, else the first live master. */
static int current_primary(void) {
    for (int j = 0; j < SENTINELS; j++) {
        int i = named_by(j);
        if (i >= 0) return i;
    }
    for (int i = 0; i < NODES; i++)
        if (is_master(i)) return i;
    return -1;
}

/* Settled: one master with want replicas online, named by every live
 * sentinel, each of which sees it sane with want good replicas. The
 * master, or -1. */
static int settled(int want) {
    int m = -1, masters = 0, live = 0;
    for (int i = 0; i < NODES; i++)
        if (is_master(i)) {
            m = i;
            masters++;
        }
    if (masters != 1 || node_field(m, "INFO replication", "connected_slaves:") != want)
        return -1;
    redisReply *r = node_cmd(m, "INFO replication");
    int online = 0;
    for (const char *p = r && r->type == REDIS_REPLY_STRING ? r->str : ""; (p = strstr(p, "state=online")); p++)
        online++;
    if (r) freeReplyObject(r);
    if (online != want) return -1;
    for (int j = 0; j < SENTINELS; j++) live += spid[j] > 0;
    for (int j = 0; j < SENTINELS; j++)
        if (spid[j] > 0 && (named_by(j) != m || !sentinel_sane(j, m, want, live - 1))) return -1;
    return m;
}

/* Wait up to timeout_ms for settled(want). The master, or -1. */
static int wait_settled(int want, int timeout_ms, long *took) {
    long t0 = now_ms();
    for (; now_ms() - t0 < timeout_ms; sys_sleep_ms(100)) {
        int m = settled(want);
        if (m >= 0) {
            if (took) *took = now_ms() - t0;
            return m;
        }
    }
    fprintf(stderr, "the nodes and sentinels did not settle with %d replicas in %d ms (see %s)\n",
            want, timeout_ms, dir);
    return -1;
}

/* Start again any node not running (a master, which the sentinels
 * make a replica, as after a crash) and wait for the two replicas: a
 * scenario that failed leaves the next one a full set. The master. */
static int full_set(void) {
    long took = 0;
    int revived = 0;
    for (int i = 0; i < NODES; i++)
        if (rpid[i] <= 0) revived += start_node(i, -1) == 0;
    for (int j = 0; j < SENTINELS; j++)
        if (spid[j] <= 0) revived += start_sentinel(j) == 0;
    int m = wait_settled(2, 60000, &took);
    if (revived) printf("  %d servers started again; settled in %ld ms\n", revived, took);
    return m;
}

/* ==================== Broker and bridge ==================== */

static int start_mqtt(void) {
    char conf[300], log[300], text[512];
    snprintf(text, sizeof(text), "listener %d 127.0.0.1\nallow_anonymous true\n"
             "persistence false\nmax_queued_messages 100000\nset_tcp_nodelay true\n",
             env.mqtt_port);
    snprintf(conf, sizeof(conf), "%s/mosquitto.conf", dir);
    snprintf(log, sizeof(log), "%s/mosquitto.log", dir);
    if (sys_write_file(conf, text) < 0) return -1;
    char *argv[] = { "mosquitto", "-c", conf, NULL };
    env.mqtt_pid = sys_spawn(argv, log, 1);
    return env.mqtt_pid > 0 ? sys_wait_port(env.mqtt_port, 10000, NULL) : -1;
}

/* "127.0.0.1:A 127.0.0.1:B 127.0.0.1:C" */
static void sentinel_list(char *out, size_t len) {
    snprintf(out, len, "127.0.0.1:%d 127.0.0.1:%d 127.0.0.1:%d", sport[0], sport[1], sport[2]);
}

/* The main bridge's configuration (the harness's file), with the
 * sentinels, their password in a file, the data nodes' inline. */
static int write_bridge(int wait) {
    char keys[1024], list[96];
    sentinel_list(list, sizeof(list));
    snprintf(keys, sizeof(keys), "  sentinels: \"%s\"\n  sentinel_master: " MASTER "\n"
             "  sentinel_password_file: %s/sentinel-password\n  password: " DATA_PASS "\n"
             "  wait_replicas: %d\n  wait_timeout_ms: 1000\n  timeout_ms: 2000\n",
             list, dir, wait);
    wait_replicas = wait;
    return h_write_bridge_config(&env, keys, "log:\n  status_interval: 5\n");
}

/* Reload the main bridge on redis.wait_replicas `wait` (SIGHUP: the
 * bridge restarts inside its process) and wait until it is ready. */
static void reload_bridge(int wait) {
    int ready = log_count("bridge.log", "ready: subscribed");
    assert_int_equal(write_bridge(wait), 0);
    assert_int_equal(kill(env.bridge_pid, SIGHUP), 0);
    if (log_wait("bridge.log", "ready: subscribed", ready + 1, 30000) <= ready)
        fail_msg("the bridge was not ready again after the reload (see %s/bridge.log)", dir);
}

/* ==================== Status documents ==================== */

struct bstat {
    int have, redis_up;
    long long stored, received, unstored, failovers;
    char primary[64];
    int watching;              /* sentinels in "sentinel.watching" */
};

static long long count_of(const json_t *o, const char *name) {
    const json_t *v = json_object_get(o, name);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static void parse_status(const char *payload, struct bstat *st) {
    json_t *j = json_loads(payload, 0, NULL);
    const json_t *sen = json_object_get(j, "sentinel");
    const char *rd = json_string_value(json_object_get(j, "redis"));
    const char *pr = json_string_value(json_object_get(j, "redis_primary"));
    if (j && json_is_true(json_object_get(j, "online"))) {
        st->have = 1;
        st->redis_up = rd && strcmp(rd, "up") == 0;
        st->stored = count_of(json_object_get(j, "counts"), "stored");
        st->received = count_of(json_object_get(j, "counts"), "received");
        st->unstored = count_of(json_object_get(j, "journal"), "unstored");
        st->failovers = count_of(sen, "failovers");
        snprintf(st->primary, sizeof(st->primary), "%s", pr ? pr : "");
        st->watching = (int)json_array_size(json_object_get(sen, "watching"));
    }
    json_decref(j);
}

/* The latest status document on topic (retained, then what comes
 * within listen_ms: one a second). 0 or -1. */
static int read_status(const char *topic, struct bstat *st, int listen_ms) {
    static int serial;
    char cid[48];
    snprintf(cid, sizeof(cid), "sentinel-status-%d", ++serial);
    memset(st, 0, sizeof(*st));
    MQTTClient c = h_mqtt_connect(&env, cid, 5);
    if (c == NULL || h_subscribe(c, topic) != 0) {
        h_mqtt_close(c);
        return -1;
    }
    for (long t0 = now_ms(), left = listen_ms; left > 0; left = listen_ms - (now_ms() - t0)) {
        char *doc = h_receive(c, (int)left, NULL, NULL);
        if (doc) parse_status(doc, st);
        free(doc);
    }
    h_mqtt_close(c);
    return st->have ? 0 : -1;
}

#define MAIN_STATUS "chat/$bridge/chat-bridge-test/status"

/* ==================== Publisher ==================== */

/* The stream running: its tag (rooms "<tag>r<i>") and size. */
static struct {
    char tag[8];
    int n;
} sc;

/* The publisher process (numpub.h) and what it shares with the test. */
static struct numpub *pub;
static pid_t pub_pid;

static void room_name(char *out, size_t len, int r) {
    snprintf(out, len, "%sr%d", sc.tag, r);
}

/* Message seq: to room seq % ROOMS, numbered, no client_msg_id (a message
 * stored twice would show). */
static void pub_msg(int seq, char *topic, size_t tsize, char *payload, size_t psize) {
    char room[32];
    room_name(room, sizeof(room), seq % ROOMS);
    snprintf(topic, tsize, "chat/%s/send", room);
    snprintf(payload, psize, "{\"user\":\"u%d\",\"text\":\"n=%d\"}", seq % 7, seq);
}

static void pub_kill(void) {
    numpub_stop(pub, &pub_pid);
}

static int pub_wait_sent(int count, int timeout_ms) {
    return numpub_wait_sent(pub, count, timeout_ms);
}

static int pub_wait_done(int timeout_ms) {
    return numpub_wait_done(pub, &pub_pid, timeout_ms);
}

/* Start a stream of n messages in rooms "<tag>r<i>". */
static long stream_t0;
static void stream_start(const char *tag, int n) {
    snprintf(sc.tag, sizeof(sc.tag), "%s", tag);
    sc.n = n;
    stream_t0 = now_ms();
    char cid[48];
    snprintf(cid, sizeof(cid), "sentinel-pub-%s", sc.tag);
    struct numpub_opts o = { .port = env.mqtt_port, .client_id = cid, .n = n, .rate = RATE,
                             .window = WINDOW, .msg = pub_msg };
    pub_pid = numpub_start(pub, &o);
    assert_true(pub_pid > 0);
}

/* ==================== Checks ==================== */

struct outcome {
    int acked, stored, lost, dup, gaps, wrong, index_bad, unread, unacked_stored;
    long long counted;
    long publish_ms, drain_ms;
};
static unsigned char seen[MAXN + 1];

/* The sum of the stream's room counters on node i, or -1. */
static long long counters_on(int i) {
    const char *argv[1 + ROOMS];
    char keys[ROOMS][64], room[32];
    argv[0] = "MGET";
    for (int r = 0; r < ROOMS; r++) {
        room_name(room, sizeof(room), r);
        snprintf(keys[r], sizeof(keys[r]), "chatroom:%s:messages", room);
        argv[1 + r] = keys[r];
    }
    if (rpid[i] <= 0 || ((rctx[i] == NULL || rctx[i]->err) && connect_node(i) < 0)) return -1;
    redisReply *x = redisCommandArgv(rctx[i], 1 + ROOMS, argv, NULL);
    long long sum = x && x->type == REDIS_REPLY_ARRAY ? 0 : -1;
    for (size_t k = 0; sum >= 0 && k < x->elements; k++)
        if (x->element[k]->type == REDIS_REPLY_STRING) sum += strtoll(x->element[k]->str, NULL, 10);
    if (x) freeReplyObject(x);
    return sum;
}

/* Wait until the primary holds `acked` messages of the stream and stops
 * changing, or stops moving for 3 s with the bridge's journal empty; at
 * most timeout_ms. Milliseconds waited. */
static long wait_drained(int acked, int timeout_ms) {
    long t0 = now_ms(), changed = t0;
    long long last = -2;
    struct bstat st;
    while (now_ms() - t0 < timeout_ms) {
        int m = current_primary();
        long long total = m >= 0 ? counters_on(m) : -1;
        if (total != last) changed = now_ms();
        last = total;
        if (total >= acked) {
            sys_sleep_ms(1000);
            if (counters_on(m) == total) break;
            continue;
        }
        if (now_ms() - changed > 3000 && read_status(MAIN_STATUS, &st, 1200) == 0 &&
            st.unstored == 0 && counters_on(m) == total)
            break;
        sys_sleep_ms(300);
    }
    return now_ms() - t0;
}

/* One message hash: content "n=<seq>", user "u<seq%7>", in room r. */
static void check_message(const redisReply *m, int r, struct outcome *o) {
    int seq = -1, used = 0;
    char want[16];
    if (m->type != REDIS_REPLY_ARRAY || m->elements != 2 || m->element[0]->type != REDIS_REPLY_STRING) {
        o->gaps++;
        return;
    }
    if (sscanf(m->element[0]->str, "n=%d%n", &seq, &used) != 1 ||
        used != (int)m->element[0]->len || seq < 1 || seq > sc.n) {
        o->wrong++;
        return;
    }
    snprintf(want, sizeof(want), "u%d", seq % 7);
    if (seq % ROOMS != r || m->element[1]->type != REDIS_REPLY_STRING ||
        strcmp(m->element[1]->str, want) != 0)
        o->wrong++;
    if (seen[seq] < 255) seen[seq]++;
}

/* Read room r on node i: its counter, hashes 1..counter (pipelined) and
 * its id index. 0 or -1. */
static int scan_room(int i, int r, struct outcome *o) {
    char room[32];
    room_name(room, sizeof(room), r);
    redisReply *c = node_cmd(i, "GET chatroom:%s:messages", room);
    if (c == NULL || (c->type != REDIS_REPLY_STRING && c->type != REDIS_REPLY_NIL)) {
        if (c) freeReplyObject(c);
        return -1;
    }
    long long count = c->type == REDIS_REPLY_STRING ? strtoll(c->str, NULL, 10) : 0;
    freeReplyObject(c);
    for (long long id = 1; id <= count; id++)
        redisAppendCommand(rctx[i], "HMGET chatroom:%s:%lld content user", room, id);
    redisAppendCommand(rctx[i], "ZCARD chatroom:%s:messages:ids", room);
    for (long long id = 0; id <= count; id++) {
        redisReply *m = NULL;
        if (redisGetReply(rctx[i], (void **)&m) != REDIS_OK || m == NULL) return -1;
        if (id < count) check_message(m, r, o);
        else if (m->type != REDIS_REPLY_INTEGER || m->integer != count) o->index_bad++;
        freeReplyObject(m);
    }
    o->counted += count;
    return 0;
}

/* Read the stream's rooms on the primary; compare with what was acked. */
static void scan(struct outcome *o) {
    int m = current_primary();
    memset(seen, 0, sizeof(seen));
    for (int r = 0; r < ROOMS; r++)
        o->unread += m < 0 || scan_room(m, r, o) < 0;
    for (int seq = 1; seq <= sc.n; seq++) {
        o->stored += seen[seq] > 0;
        o->dup += seen[seq] > 1 ? seen[seq] - 1 : 0;
        o->lost += pub->acked_flag[seq] && !seen[seq];
        o->unacked_stored += !pub->acked_flag[seq] && seen[seq];
    }
}

/* End the stream: the publisher done, the bridge drained, Redis read. */
static void stream_finish(struct outcome *o) {
    memset(o, 0, sizeof(*o));
    int rc = pub_wait_done(120000);
    o->publish_ms = now_ms() - stream_t0;
    o->acked = __atomic_load_n(&pub->acked, __ATOMIC_ACQUIRE);
    if (rc != 0) fail_msg("the publisher failed or timed out (%d of %d acked)", o->acked, sc.n);
    o->drain_ms = wait_drained(o->acked, 60000);
    scan(o);
}

static void print_outcome(const char *what, const struct outcome *o) {
    printf("  %s: %d acked, %d stored (counters %lld, %d not acked), lost %d, duplicated %d, "
           "gaps %d, wrong %d, index %d, unreadable rooms %d; publish %ld ms, drain %ld ms\n",
           what, o->acked, o->stored, o->counted, o->unacked_stored, o->lost, o->dup, o->gaps,
           o->wrong, o->index_bad, o->unread, o->publish_ms, o->drain_ms);
}

/* Nothing stored twice, nothing malformed, every room read. */
static void assert_clean(const struct outcome *o) {
    if (o->dup || o->gaps || o->wrong || o->index_bad || o->unread)
        fail_msg("duplicated %d, gaps %d, wrong %d, index %d, unreadable rooms %d (logs in %s)",
                 o->dup, o->gaps, o->wrong, o->index_bad, o->unread, dir);
}

/* Every acknowledged message stored exactly once. */
static void assert_exactly_once(const struct outcome *o) {
    assert_clean(o);
    if (o->lost) fail_msg("%d acknowledged messages lost (logs in %s)", o->lost, dir);
    assert_int_equal(o->acked, sc.n);
    assert_int_equal(o->stored, sc.n);
}

/* After a kill at t_kill: the first time a surviving node that says
 * ROLE master has counters past their value 100 ms after the kill
 * (replication stopped then, so only the bridge writing to the promoted
 * node moves them; a replica that follows it later is not looked at).
 * Milliseconds from the kill, or -1 after timeout_ms; *on gets the node. */
static long first_store_after(long t_kill, int timeout_ms, int *on) {
    long long base[NODES];
    sys_sleep_ms(100);
    for (int i = 0; i < NODES; i++) base[i] = counters_on(i);
    for (; now_ms() - t_kill < timeout_ms; sys_sleep_ms(20))
        for (int i = 0; i < NODES; i++) {
            if (base[i] < 0 || !is_master(i)) continue;
            if (counters_on(i) > base[i]) {
                *on = i;
                return now_ms() - t_kill;
            }
        }
    return -1;
}

/* ==================== Setup ==================== */

static pid_t b5_pid;            /* scenario 5's bridge */

static void cleanup(void) {
    pub_kill();
    sys_stop_pid(b5_pid, 20000);
    b5_pid = 0;
    if (env.bridge_pid > 0 && sys_stop_pid(env.bridge_pid, 20000) != 0)
        fprintf(stderr, "the bridge did not exit cleanly on SIGTERM (see %s/bridge.log)\n", dir);
    env.bridge_pid = 0;
    sys_stop_pid(env.mqtt_pid, 5000);
    env.mqtt_pid = 0;
    for (int j = 0; j < SENTINELS; j++) {
        sys_stop_pid(spid[j], 5000);
        spid[j] = 0;
    }
    for (int i = 0; i < NODES; i++) {
        if (rctx[i]) redisFree(rctx[i]);
        rctx[i] = NULL;
        sys_stop_pid(rpid[i], 5000);
        rpid[i] = 0;
    }
    numpub_unmap(pub);
    pub = NULL;
    if (made_dir && getenv("CB_KEEP") == NULL) nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    else if (made_dir) printf("  kept %s\n", dir);
    made_dir = 0;
}

/* Ports, the nodes (0 the primary), the sentinels, the broker. */
static int setup_servers(void) {
    char path[300];
    long took = 0;
    if (mkdtemp(dir) == NULL) return -1;
    made_dir = 1;
    snprintf(env.dir, sizeof(env.dir), "%s", dir);
    if ((pub = numpub_map(MAXN)) == NULL) return -1;
    for (int i = 0; i < NODES; i++)
        if ((rport[i] = fresh_port()) < 0 || (sport[i] = fresh_port()) < 0) return -1;
    if ((env.mqtt_port = fresh_port()) < 0) return -1;
    env.redis_port = rport[0];           /* unused with sentinels */
    for (int i = 0; i < NODES; i++)
        if (start_node(i, i == 0 ? -1 : 0) < 0) return -1;
    for (int j = 0; j < SENTINELS; j++)
        if (write_sentinel_conf(j) < 0 || start_sentinel(j) < 0) return -1;
    if (wait_settled(2, 60000, &took) < 0) return -1;
    printf("  primary %d, replicas %d %d, sentinels %d %d %d: settled in %ld ms\n", rport[0],
           rport[1], rport[2], sport[0], sport[1], sport[2], took);
    snprintf(path, sizeof(path), "%s/sentinel-password", dir);
    if (sys_write_file(path, SENT_PASS "\n") < 0 || chmod(path, 0600) < 0) return -1;
    return start_mqtt();
}

static int setup(void **state) {
    (void)state;
    long t0 = now_ms();
    env.bridge_mqtt_keys = "  status_interval: 1\n";
    if (setup_servers() < 0 || write_bridge(1) < 0 || h_restart_bridge(&env) < 0) {
        cleanup();
        return -1;
    }
    printf("  servers and bridge up in %ld ms (dir %s)\n", now_ms() - t0, dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    cleanup();
    return 0;
}

/* ==================== Scenarios ==================== */

/* The primary SIGKILLed at 30% of a stream of n; returns the gap (kill to
 * the first message stored on the new primary) and prints the figures.
 * *killed gets the node killed. */
static long kill_primary_mid_stream(const char *tag, const char *what, int n, struct outcome *o,
                                    int *killed) {
    struct bstat a, b;
    long settle;
    int m = full_set(), on = -1;
    assert_true(m >= 0);
    assert_int_equal(read_status(MAIN_STATUS, &a, 1500), 0);
    stream_start(tag, n);
    assert_int_equal(pub_wait_sent(n * 3 / 10, 30000), 0);
    int at = __atomic_load_n(&pub->sent, __ATOMIC_ACQUIRE);
    long t_kill = now_ms();
    kill_node(m);
    *killed = m;
    long gap = first_store_after(t_kill, 60000, &on);
    int m2 = wait_settled(1, 60000, &settle);
    long t_settled = now_ms();
    assert_true(m2 >= 0);
    stream_finish(o);
    print_outcome(what, o);
    assert_int_equal(read_status(MAIN_STATUS, &b, 1500), 0);
    printf("  primary %d SIGKILLed at message %d; %d promoted; settled %ld ms after the kill\n",
           rport[m], at, rport[m2], t_settled - t_kill);
    printf("  failover gap (kill to the first message stored on the new primary %d): %ld ms\n",
           on >= 0 ? rport[on] : -1, gap);
    printf("  bridge: failovers %lld -> %lld, writes to %s\n", a.failovers, b.failovers, b.primary);
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%d", rport[m2]);
    assert_string_equal(b.primary, want);
    /* Sentinel may promote one replica, abort (failover-timeout) and
     * promote the other on its next try: the bridge then follows twice,
     * and the first messages after the kill landed on the first one. */
    if (on != m2)
        printf("  the sentinels promoted %d, then %d: the bridge followed both\n",
               on >= 0 ? rport[on] : -1, rport[m2]);
    assert_true(on >= 0 && on != m);
    assert_true(b.failovers >= a.failovers + 1);
    assert_true(b.failovers <= a.failovers + (on == m2 ? 1 : 2));
    return gap;
}

/* 1. SIGKILL of the primary with redis.wait_replicas: 1: exactly once. */
static void test_1_primary_killed(void **state) {
    struct outcome o;
    (void)state;
    pub_kill();
    if (wait_replicas != 1) reload_bridge(1);
    kill_primary_mid_stream("k1", "1 primary killed, wait_replicas 1", 3000, &o, &dead);
    assert_exactly_once(&o);
}

/* Client ids of node i's clients whose last command was one of the
 * bridge's (EVALSHA, WAIT, SCRIPT, ROLE, PING from another process). */
static int kill_bridge_connections(int i) {
    redisReply *r = node_cmd(i, "CLIENT LIST TYPE normal");
    int killed = 0;
    for (char *save = NULL, *line = r && r->type == REDIS_REPLY_STRING ? strtok_r(r->str, "\n", &save)
         : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        const char *cmd = strstr(line, " cmd=");
        if (cmd == NULL || !(strncmp(cmd, " cmd=evalsha", 12) == 0 || strncmp(cmd, " cmd=wait", 9) == 0))
            continue;
        redisReply *k = node_cmd(i, "CLIENT KILL ID %lld", strtoll(line + 3, NULL, 10));
        killed += k && k->type == REDIS_REPLY_INTEGER && k->integer == 1;
        if (k) freeReplyObject(k);
    }
    if (r) freeReplyObject(r);
    return killed;
}

/* 3. The killed primary back (a master, empty, as after a crash): the
 * sentinels make it a replica; the bridge, made to reconnect meanwhile,
 * never writes to it. */
static void test_3_old_primary_back(void **state) {
    struct outcome o;
    struct bstat a, b;
    long took = 0;
    (void)state;
    pub_kill();
    int old = dead;
    dead = -1;                 /* started again here, whatever happens */
    assert_true(old >= 0);
    int m = wait_settled(1, 60000, NULL);
    assert_true(m >= 0);
    int readonly_logged = log_count("bridge.log", "READONLY");
    assert_int_equal(read_status(MAIN_STATUS, &a, 1500), 0);
    stream_start("r3", 2000);
    assert_int_equal(pub_wait_sent(300, 30000), 0);
    long t0 = now_ms();
    assert_int_equal(start_node(old, -1), 0);
    assert_true(is_master(old));                   /* for now */
    sys_sleep_ms(500);
    int cut = kill_bridge_connections(m);
    stream_finish(&o);
    int m2 = wait_settled(2, 60000, &took);
    long t_settled = now_ms();
    assert_int_equal(m2, m);
    long long evalsha = node_field(old, "INFO commandstats", "cmdstat_evalsha:calls=");
    long long readonly = node_field(old, "INFO errorstats", "errorstat_READONLY:count=");
    assert_int_equal(read_status(MAIN_STATUS, &b, 1500), 0);
    print_outcome("3 old primary back", &o);
    printf("  %d started again as a master, settled as a replica of %d within %ld ms; the "
           "bridge's connections cut meanwhile: %d; on %d: EVALSHA %lld, READONLY %lld (-1: "
           "none); failovers %lld -> %lld\n", rport[old], rport[m], t_settled - t0,
           cut, rport[old], evalsha, readonly, a.failovers, b.failovers);
    assert_true(cut >= 1);
    assert_true(evalsha <= 0);
    assert_true(readonly <= 0);
    assert_int_equal(log_count("bridge.log", "READONLY"), readonly_logged);
    assert_int_equal(b.failovers, a.failovers);
    assert_exactly_once(&o);
}

/* 1b. The same kill without redis.wait_replicas: the loss measured. */
static void test_1b_primary_killed_no_wait(void **state) {
    struct outcome o;
    int killed = -1;
    long took = 0;
    (void)state;
    pub_kill();
    reload_bridge(0);
    long gap = kill_primary_mid_stream("k0", "1b primary killed, no wait_replicas", 3000, &o,
                                       &killed);
    printf("  lost without redis.wait_replicas: %d of %d acknowledged (gap %ld ms)\n", o.lost,
           o.acked, gap);
    assert_clean(&o);
    assert_int_equal(start_node(killed, -1), 0);     /* back for the next scenarios */
    assert_true(wait_settled(2, 60000, &took) >= 0);
    printf("  %d back as a replica after %ld ms\n", rport[killed], took);
}

/* SENTINEL FAILOVER at 40% of a stream: exactly once. */
static void switchover(const char *tag, int wait) {
    struct outcome o;
    struct bstat a, b;
    long took = 0;
    pub_kill();
    if (wait_replicas != wait) reload_bridge(wait);
    int m = full_set();
    assert_true(m >= 0);
    assert_int_equal(read_status(MAIN_STATUS, &a, 1500), 0);
    stream_start(tag, 2000);
    assert_int_equal(pub_wait_sent(800, 30000), 0);
    long t0 = now_ms();
    redisReply *r = sent_cmd(1, "SENTINEL FAILOVER " MASTER);
    assert_true(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    stream_finish(&o);
    int m2 = wait_settled(2, 60000, &took);
    assert_int_equal(read_status(MAIN_STATUS, &b, 1500), 0);
    printf("  SENTINEL FAILOVER with wait_replicas %d: %d took over from %d, settled %ld ms "
           "after the command; bridge failovers %lld -> %lld, writes to %s\n", wait,
           m2 >= 0 ? rport[m2] : -1, rport[m], now_ms() - t0, a.failovers, b.failovers, b.primary);
    print_outcome(wait ? "2 switchover, wait_replicas 1" : "2 switchover, no wait_replicas", &o);
    assert_true(m2 >= 0 && m2 != m);
    assert_int_equal(b.failovers, a.failovers + 1);
    assert_exactly_once(&o);
}

/* 2. SENTINEL FAILOVER mid-stream, without then with redis.wait_replicas. */
static void test_2_switchover(void **state) {
    (void)state;
    switchover("f0", 0);
    switchover("f1", 1);
}

/* 4. One sentinel down, then all three, the primary up: the bridge keeps
 * writing (also after its connection is cut), says what it cannot
 * follow; the sentinels back, it watches them again. */
static void test_4_sentinels_down(void **state) {
    struct outcome o;
    struct bstat down;
    char needle[96];
    (void)state;
    pub_kill();
    int m = full_set();
    assert_true(m >= 0);
    int watching = log_count("bridge.log", "sentinel: watching");
    struct bstat up, back;
    assert_int_equal(read_status(MAIN_STATUS, &up, 1500), 0);
    stream_start("d4", 3000);
    assert_int_equal(pub_wait_sent(600, 30000), 0);
    kill_sentinel(0);
    snprintf(needle, sizeof(needle), "sentinel: lost the sentinel 127.0.0.1:%d", sport[0]);
    assert_int_equal(log_wait("bridge.log", needle, 1, 10000) >= 1, 1);
    assert_int_equal(pub_wait_sent(1500, 30000), 0);
    kill_sentinel(1);
    kill_sentinel(2);
    assert_int_equal(log_wait("bridge.log", "sentinel: no sentinel can be watched", 1, 10000), 1);
    int cut = kill_bridge_connections(m);
    snprintf(needle, sizeof(needle), "trying 127.0.0.1:%d, the primary of " MASTER
             " confirmed last", rport[m]);
    int fell_back = log_wait("bridge.log", needle, 1, 10000);
    assert_int_equal(read_status(MAIN_STATUS, &down, 1500), 0);
    stream_finish(&o);
    print_outcome("4 sentinels down", &o);
    printf("  all sentinels down: status says watching %d, redis %s, primary %s; connection "
           "cut %d, reconnected to the last primary: %s\n", down.watching,
           down.redis_up ? "up" : "down", down.primary, cut, fell_back ? "yes" : "no");
    for (int j = 0; j < SENTINELS; j++) assert_int_equal(start_sentinel(j), 0);
    int again = log_wait("bridge.log", "sentinel: watching", watching + SENTINELS, 15000) - watching;
    assert_int_equal(read_status(MAIN_STATUS, &back, 1500), 0);
    printf("  status: sentinels watched %d before, %d while down, %d once back (%d log lines)\n",
           up.watching, down.watching, back.watching, again);
    assert_int_equal(up.watching, SENTINELS);
    assert_int_equal(down.watching, 0);
    assert_int_equal(back.watching, SENTINELS);
    assert_true(cut >= 1);
    assert_true(fell_back >= 1);
    assert_int_equal(again, SENTINELS);
    assert_exactly_once(&o);
    assert_true(wait_settled(2, 60000, NULL) == m);
}

/* ---- 5: a second bridge with a wrong master name, a wrong password ---- */

#define B5_STATUS "t5/$bridge/bridge-5/status"

/* bridge-5's configuration: its own prefixes, client id and journal. */
static int write_b5(const char *master, const char *password) {
    char path[300], yaml[1400], list[96];
    sentinel_list(list, sizeof(list));
    snprintf(path, sizeof(path), "%s/bridge-5.yaml", dir);
    snprintf(yaml, sizeof(yaml),
             "mqtt:\n  uri: tcp://127.0.0.1:%d\n  client_id: bridge-5\n  topic_prefix: t5\n"
             "  status_interval: 1\n"
             "redis:\n  sentinels: \"%s\"\n  sentinel_master: %s\n  sentinel_password: %s\n"
             "  password: " DATA_PASS "\n  key_prefix: t5room\n  timeout_ms: 2000\n"
             "journal:\n  dir: %s/journal-5\n", env.mqtt_port, list, master, password, dir);
    return sys_write_file(path, yaml);
}

static int spawn_b5(void) {
    char conf[300], log[300];
    snprintf(conf, sizeof(conf), "%s/bridge-5.yaml", dir);
    snprintf(log, sizeof(log), "%s/bridge-5.log", dir);
    char *argv[] = { getenv("CB_BRIDGE") ? getenv("CB_BRIDGE") : "build/chat-bridge", "-c", conf, NULL };
    b5_pid = sys_spawn(argv, log, 1);
    return b5_pid > 0 ? 0 : -1;
}

/* Publish messages from..to (QoS 1, each acknowledged) to t5/lobby. */
static void b5_publish(int from, int to) {
    char body[64];
    MQTTClient c = h_mqtt_connect(&env, "sentinel-b5-pub", 5);
    assert_non_null(c);
    for (int i = from; i <= to; i++) {
        snprintf(body, sizeof(body), "{\"user\":\"eve\",\"text\":\"n=%d\"}", i);
        assert_int_equal(h_publish(c, "t5/lobby/send", body, NULL, NULL), 0);
    }
    h_mqtt_close(c);
}

/* Messages of t5/lobby on the primary: the counter and distinct texts. */
static long long b5_stored(int *distinct) {
    int m = current_primary();
    redisReply *r = m >= 0 ? node_cmd(m, "GET t5room:lobby:messages") : NULL;
    long long n = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    if (r) freeReplyObject(r);
    unsigned char got[128] = { 0 };
    *distinct = 0;
    for (long long id = 1; m >= 0 && id <= n; id++) {
        int k = 0;
        r = node_cmd(m, "HGET t5room:lobby:%lld content", id);
        if (r && r->type == REDIS_REPLY_STRING && sscanf(r->str, "n=%d", &k) == 1 && k > 0 &&
            k < 128 && !got[k]++)
            (*distinct)++;
        if (r) freeReplyObject(r);
    }
    return n;
}

/* Wait until t5/lobby holds want messages, at most timeout_ms. */
static long long b5_wait_stored(long long want, int *distinct, int timeout_ms) {
    long long n = b5_stored(distinct);
    for (long t0 = now_ms(); n < want && now_ms() - t0 < timeout_ms; n = b5_stored(distinct))
        sys_sleep_ms(200);
    return n;
}

/* The same command on every sentinel; how many answered OK. */
static int on_sentinels(const char *cmd) {
    int ok = 0;
    for (int j = 0; j < SENTINELS; j++) {
        redisReply *r = sent_cmd(j, cmd);
        ok += r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
    }
    return ok;
}

/* bridge-5 with a wrong master name: it says so, holds messages 1..30
 * in its journal, stores nothing; once the sentinels monitor that name
 * (the same primary), its retry stores them all, once. */
static void b5_wrong_name(int m) {
    struct bstat st;
    char cmd[128];
    int distinct = 0;
    assert_int_equal(write_b5("nosuch", SENT_PASS), 0);
    assert_int_equal(spawn_b5(), 0);
    /* subscribed first: the broker keeps nothing for a session not made yet */
    assert_true(log_wait("bridge-5.log", "mqtt: subscribed", 1, 15000) >= 1);
    b5_publish(1, 30);
    assert_true(log_wait("bridge-5.log", "monitors no master named 'nosuch' "
                         "(redis.sentinel_master)", 1, 15000) >= 1);
    assert_int_equal(read_status(B5_STATUS, &st, 1500), 0);
    printf("  wrong master name: status redis %s, journal unstored %lld bytes, stored %lld\n",
           st.redis_up ? "up" : "down", st.unstored, b5_stored(&distinct));
    assert_false(st.redis_up);
    assert_true(st.unstored > 0);
    assert_int_equal(b5_stored(&distinct), 0);
    snprintf(cmd, sizeof(cmd), "SENTINEL MONITOR nosuch 127.0.0.1 %d 2", rport[m]);
    assert_int_equal(on_sentinels(cmd), SENTINELS);
    assert_int_equal(on_sentinels("SENTINEL SET nosuch auth-pass " DATA_PASS), SENTINELS);
    long long n = b5_wait_stored(30, &distinct, 30000);
    printf("  master 'nosuch' monitored: %lld stored, %d distinct\n", n, distinct);
    assert_int_equal(n, 30);
    assert_int_equal(distinct, 30);
}

/* bridge-5 reloaded with a wrong sentinel password: it says so, holds
 * messages 31..60; once the sentinels take that password too, its
 * retry stores them all, once. */
static void b5_wrong_password(void) {
    struct bstat st;
    int distinct = 0;
    int refused = log_count("bridge-5.log", "refused the bridge's credentials "
                            "(redis.sentinel_password)");
    assert_int_equal(write_b5("nosuch", "wrong-password"), 0);
    assert_int_equal(kill(b5_pid, SIGHUP), 0);
    /* refused first: the bridge before the reload stores what it holds */
    assert_true(log_wait("bridge-5.log", "refused the bridge's credentials "
                         "(redis.sentinel_password)", refused + 1, 15000) > refused);
    b5_publish(31, 60);
    assert_int_equal(read_status(B5_STATUS, &st, 1500), 0);
    printf("  wrong sentinel password: status redis %s, journal unstored %lld bytes, "
           "stored %lld\n", st.redis_up ? "up" : "down", st.unstored, b5_stored(&distinct));
    assert_true(st.unstored > 0);
    assert_int_equal(b5_stored(&distinct), 30);
    assert_int_equal(on_sentinels("ACL SETUSER default on >wrong-password"), SENTINELS);
    long long n = b5_wait_stored(60, &distinct, 30000);
    printf("  the password accepted: %lld stored, %d distinct\n", n, distinct);
    assert_int_equal(n, 60);
    assert_int_equal(distinct, 60);
}

/* 5. A wrong master name, then a wrong sentinel password. */
static void test_5_wrong_name_and_password(void **state) {
    (void)state;
    pub_kill();
    int m = full_set();
    assert_true(m >= 0);
    b5_wrong_name(m);
    b5_wrong_password();
    on_sentinels("ACL SETUSER default <wrong-password");
    on_sentinels("SENTINEL REMOVE nosuch");
    assert_int_equal(sys_stop_pid(b5_pid, 20000), 0);
    b5_pid = 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_1_primary_killed),
        cmocka_unit_test(test_3_old_primary_back),
        cmocka_unit_test(test_1b_primary_killed_no_wait),
        cmocka_unit_test(test_2_switchover),
        cmocka_unit_test(test_4_sentinels_down),
        cmocka_unit_test(test_5_wrong_name_and_password),
    };
    if (getenv("CB_SENTINEL_ONLY")) cmocka_set_test_filter(getenv("CB_SENTINEL_ONLY"));
    setvbuf(stdout, NULL, _IOLBF, 0);
    return cmocka_run_group_tests_name("the bridge on redis sentinel", tests, setup, teardown);
}
