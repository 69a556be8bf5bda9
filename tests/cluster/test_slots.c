/* test_slots.c -- bridge/cluster.c against a real Redis Cluster.
 *
 * Three redis-server primaries on free loopback ports (client and cluster
 * bus ports both picked free), in a directory of their own, joined with
 * redis-cli --cluster create. Then, through the module only: keys spread
 * over the three and each found on the node owning its slot; our CRC16
 * against CLUSTER KEYSLOT; scripts whose keys share a hash tag; a slot
 * moved by hand (SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE) with
 * the ASK, TRYAGAIN and MOVED answers that staging gives, counted; and a
 * primary stopped under the module. Every wait is bounded; every server
 * is stopped by its PID and the directory removed. */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "cluster.h"
#include "result.h"
#include "rexec.h"
#include "rnode.h"
#include "sys.h"

enum { NODES = 3 };

static char dir[] = "/tmp/chat-bridge-cluster.XXXXXX";
static int made_dir;
static int port[NODES], bus[NODES];
static pid_t pid[NODES];
static char id[NODES][48];
static redisContext *direct[NODES];    /* the test's own view of each node */
static struct cluster *cl;

/* ==================== Servers ==================== */

/* A free port not already given to another server of this test. */
static int fresh_port(void) {
    for (int tries = 0; tries < 50; tries++) {
        int p = sys_free_port(), dup = 0;
        for (int i = 0; i < NODES; i++) dup |= p == port[i] || p == bus[i];
        if (p > 0 && !dup) return p;
    }
    return -1;
}

static int start_node(int i) {
    pid[i] = sys_spawn_cluster_node(dir, port[i], bus[i], 0);
    return pid[i] > 0 ? 0 : -1;
}

/* Run argv to its end, at most timeout_ms. Its exit status, or -1. */
static int run(char *const argv[], const char *log, int timeout_ms) {
    return sys_run(argv, log, timeout_ms, NULL);
}

/* A command on node i's own connection (not through the module). */
static redisReply *on(int i, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(direct[i], fmt, ap);
    va_end(ap);
    if (r == NULL) fail_msg("node %d: %s", port[i], direct[i]->errstr);
    return r;
}

/* Every node says cluster_state:ok, within timeout_ms. 0 or -1. */
static int wait_cluster_ok(int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        int ok = 0;
        for (int i = 0; i < NODES; i++) {
            redisReply *r = redisCommand(direct[i], "CLUSTER INFO");
            ok += r && r->type == REDIS_REPLY_STRING &&
                  strstr(r->str, "cluster_state:ok") != NULL;
            if (r) freeReplyObject(r);
        }
        if (ok == NODES) return 0;
        sys_sleep_ms(100);
    }
    return -1;
}

static int create_cluster(void) {
    char addr[NODES][32], log[300];
    for (int i = 0; i < NODES; i++) snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%d", port[i]);
    snprintf(log, sizeof(log), "%s/create.log", dir);
    char *argv[] = { "redis-cli", "--cluster", "create", addr[0], addr[1], addr[2],
                     "--cluster-yes", NULL };
    if (run(argv, log, 30000) != 0) {
        fprintf(stderr, "redis-cli --cluster create failed, see %s\n", log);
        return -1;
    }
    return wait_cluster_ok(20000);
}

static int connect_direct(int i) {
    struct timeval tv = { 5, 0 };
    direct[i] = redisConnectWithTimeout("127.0.0.1", port[i], tv);
    if (direct[i] == NULL || direct[i]->err || redisSetTimeout(direct[i], tv) != REDIS_OK)
        return -1;
    redisReply *r = redisCommand(direct[i], "CLUSTER MYID");
    if (r == NULL || r->type != REDIS_REPLY_STRING) return -1;
    snprintf(id[i], sizeof(id[i]), "%s", r->str);
    freeReplyObject(r);
    return 0;
}

static int setup(void **state) {
    char seed[NODES][32];
    const char *seeds[] = { seed[0], seed[1] };
    (void)state;
    if (mkdtemp(dir) == NULL) return -1;
    made_dir = 1;
    for (int i = 0; i < NODES; i++)
        if ((port[i] = fresh_port()) < 0 || (bus[i] = fresh_port()) < 0) return -1;
    for (int i = 0; i < NODES; i++)
        if (start_node(i) < 0) return -1;
    for (int i = 0; i < NODES; i++)
        if (sys_wait_port(port[i], 10000, NULL) < 0 || connect_direct(i) < 0) {
            fprintf(stderr, "redis-server on %d did not start, see %s\n", port[i], dir);
            return -1;
        }
    if (create_cluster() < 0) return -1;
    for (int i = 0; i < 2; i++) snprintf(seed[i], sizeof(seed[i]), "127.0.0.1:%d", port[i]);
    struct cluster_opts o = { .seeds = seeds, .nseeds = 2, .timeout_ms = 5000 };
    cl = cluster_new(&o);
    return cl ? 0 : -1;
}

/* Remove what the servers left in dir, then dir. */
static void remove_dir(void) {
    DIR *d = opendir(dir);
    const struct dirent *e;
    char path[600];
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static int teardown(void **state) {
    (void)state;
    cluster_free(cl);
    for (int i = 0; i < NODES; i++) {
        if (direct[i]) redisFree(direct[i]);
        sys_stop_pid(pid[i], 5000);
        pid[i] = 0;
    }
    if (made_dir && getenv("CB_KEEP") == NULL) remove_dir();
    return 0;
}

/* ==================== Helpers ==================== */

/* The node whose port is in "127.0.0.1:PORT", or -1. */
static int node_of(const char *addr) {
    for (int i = 0; addr && i < NODES; i++) {
        char want[32];
        snprintf(want, sizeof(want), "127.0.0.1:%d", port[i]);
        if (strcmp(addr, want) == 0) return i;
    }
    return -1;
}

static int owner(const char *key) {
    return node_of(cluster_slot_addr(cl, cluster_keyslot(key, strlen(key))));
}

/* cmd = argv (NUL-terminated strings), routed by the slot of argv[key]. */
static void cmd_set(struct rexec_cmd *cmd, int key, int argc, const char **argv) {
    unsigned slot = cluster_keyslot(argv[key], strlen(argv[key]));
    assert_int_equal(rexec_cmd_format(cmd, slot, argc, argv, NULL), CB_OK);
}

static void exec_ok(struct rexec_cmd *cmds, size_t n) {
    int rc = cluster_exec(cl, cmds, n);
    if (rc != CB_OK) fail_msg("cluster_exec: %d: %s", rc, cluster_errstr(cl));
}

static void assert_reply_str(const struct rexec_cmd *cmd, int type, const char *s) {
    assert_int_equal(cmd->result, CB_DONE);
    if (cmd->reply->type != type || strcmp(cmd->reply->str, s) != 0)
        fail_msg("reply %d '%s', wanted %d '%s'", cmd->reply->type,
                 cmd->reply->str ? cmd->reply->str : "", type, s);
}

static void clear(struct rexec_cmd *cmds, size_t n) {
    for (size_t i = 0; i < n; i++) rexec_cmd_clear(&cmds[i]);
}

static long long count_in_slot(int node, unsigned slot) {
    redisReply *r = on(node, "CLUSTER COUNTKEYSINSLOT %u", slot);
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return n;
}

static void print_stats(const char *when) {
    struct cluster_stats st;
    cluster_get_stats(cl, &st);
    printf("  %-28s moved %llu, ask %llu, retry %llu, refreshes %llu, connects %llu\n",
           when, st.moved, st.ask, st.retry, st.refreshes, st.connects);
}

/* ==================== Tests ==================== */

/* Our CRC16 and hash tags give the slots the cluster computes. */
static void test_keyslot_matches_redis(void **state) {
    static const char *const shapes[] = { "k:%d", "chatroom:{room%d}:messages",
        "{%d}", "x{%d}y{z}", "foo{}{%d}", "{{%d}}", "user%d{", "%d}{" };
    char key[64];
    (void)state;
    for (int i = 0; i < 400; i++) {
        snprintf(key, sizeof(key), shapes[i % 8], i);
        redisReply *r = on(i % NODES, "CLUSTER KEYSLOT %s", key);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        assert_int_equal(cluster_keyslot(key, strlen(key)), r->integer);
        freeReplyObject(r);
    }
}

/* SET and GET 300 keys in one batch each; every key is on the node the
 * module's map names, and only there; one connection per primary. */
static void test_spread(void **state) {
    enum { N = 300 };
    static struct rexec_cmd set[N], get[N];
    char key[N][16], val[N][16];
    int per[NODES] = { 0 };
    struct cluster_stats st;
    (void)state;
    for (int i = 0; i < N; i++) {
        snprintf(key[i], sizeof(key[i]), "k:%d", i);
        snprintf(val[i], sizeof(val[i]), "v:%d", i);
        const char *s[] = { "SET", key[i], val[i] }, *g[] = { "GET", key[i] };
        cmd_set(&set[i], 1, 3, s);
        cmd_set(&get[i], 1, 2, g);
    }
    exec_ok(set, N);
    exec_ok(get, N);
    for (int i = 0; i < N; i++) {
        assert_reply_str(&set[i], REDIS_REPLY_STATUS, "OK");
        assert_reply_str(&get[i], REDIS_REPLY_STRING, val[i]);
        int o = owner(key[i]);
        assert_true(o >= 0);
        per[o]++;
        for (int n = 0; n < NODES; n++) {
            redisReply *r = on(n, "EXISTS %s", key[i]);
            if (n == o)
                assert_true(r->type == REDIS_REPLY_INTEGER && r->integer == 1);
            else   /* not its slot: the node redirects to the owner */
                assert_true(r->type == REDIS_REPLY_ERROR && strncmp(r->str, "MOVED ", 6) == 0);
            freeReplyObject(r);
        }
    }
    printf("  keys per primary: %d %d %d\n", per[0], per[1], per[2]);
    for (int n = 0; n < NODES; n++) assert_true(per[n] > 50);
    cluster_get_stats(cl, &st);
    assert_int_equal(st.moved + st.ask + st.retry, 0);
    assert_int_equal(st.refreshes, 1);
    assert_int_equal(st.connects, NODES);    /* the seed's connection kept */
    /* A refresh keeps the connections of nodes still primaries. */
    assert_int_equal(cluster_refresh(cl), CB_OK);
    cluster_get_stats(cl, &st);
    assert_int_equal(st.connects, NODES);
    print_stats("after spread:");
    clear(set, N);
    clear(get, N);
}

/* send.lua's shape: declared keys, plus the message hash named from a
 * prefix in ARGV[1] (an undeclared key, in the same slot when the prefix
 * carries the room's hash tag). */
static const char script[] =
    "local id = redis.call('INCR', KEYS[1]) "
    "redis.call('ZADD', KEYS[2], id, id) "
    "redis.call('HSET', ARGV[1] .. id, 'content', 'hi') "
    "return { id, redis.call('ZCARD', KEYS[2]) }";

/* A room whose slot is on another primary than lobby's. */
static void other_room(char *room, size_t len) {
    for (int i = 0; i < 1000; i++) {
        snprintf(room, len, "room%d", i);
        if (owner(room) != owner("lobby")) return;
    }
    fail_msg("every room is on lobby's node");
}

/* EVALSHA of a script whose KEYS share a hash tag runs on the slot's
 * primary, and may write an undeclared key of the same tag; a script is
 * cached per node (NOSCRIPT elsewhere, until EVAL); keys of two slots are
 * refused by the node (CROSSSLOT), not by us, and so is an undeclared key
 * of another slot. */
static void test_evalsha_hash_tag(void **state) {
    struct rexec_cmd c[8] = { { 0 } };
    char room[16], k1[64], k2[64], mp[64], untagged[64], key3[80];
    const char *load[] = { "SCRIPT", "LOAD", script };
    (void)state;
    /* SCRIPT LOAD names no key: sent to the node of lobby's slot. */
    assert_int_equal(rexec_cmd_format(&c[0], cluster_keyslot("lobby", 5), 3, load, NULL),
                     CB_OK);
    exec_ok(c, 1);
    assert_int_equal(c[0].result, CB_DONE);
    assert_int_equal(c[0].reply->type, REDIS_REPLY_STRING);
    char sha[41];
    snprintf(sha, sizeof(sha), "%s", c[0].reply->str);

    other_room(room, sizeof(room));
    snprintf(k1, sizeof(k1), "chatroom:{%s}:messages", room);
    snprintf(k2, sizeof(k2), "chatroom:{%s}:alice:ids", room);
    snprintf(mp, sizeof(mp), "chatroom:{%s}:", room);
    const char *e1[] = { "EVALSHA", sha, "2", "chatroom:{lobby}:messages",
                         "chatroom:{lobby}:alice:ids", "chatroom:{lobby}:" };
    const char *e2[] = { "EVALSHA", sha, "2", k1, k2, mp };
    const char *e3[] = { "EVAL", script, "2", k1, k2, mp };
    const char *e4[] = { "EVALSHA", sha, "2", "chatroom:{lobby}:x", "chatroom:{kitchen}:x",
                         "chatroom:{lobby}:" };
    /* An untagged prefix whose third message (c[6] gets id 3) is on
     * another node than lobby's slot. */
    for (int i = 0; i < 1000; i++) {
        snprintf(untagged, sizeof(untagged), "chatroom:lobby%d:", i);
        snprintf(key3, sizeof(key3), "%s3", untagged);
        if (owner(key3) != owner("lobby")) break;
    }
    const char *e5[] = { "EVALSHA", sha, "2", "chatroom:{lobby}:messages",
                         "chatroom:{lobby}:alice:ids", untagged };
    const char *h[] = { "HGET", "chatroom:{lobby}:2", "content" };
    cmd_set(&c[0], 3, 6, e1);
    cmd_set(&c[1], 3, 6, e1);
    cmd_set(&c[2], 3, 6, e2);          /* not loaded on that node */
    cmd_set(&c[3], 3, 6, e3);
    cmd_set(&c[4], 3, 6, e2);          /* EVAL cached it there */
    cmd_set(&c[5], 3, 6, e4);
    cmd_set(&c[6], 3, 6, e5);          /* the prefix without the tag */
    cmd_set(&c[7], 1, 3, h);
    exec_ok(c, 8);
    for (int i = 0; i < 8; i++) assert_int_equal(c[i].result, CB_DONE);
    assert_int_equal(c[0].reply->element[0]->integer, 1);
    assert_int_equal(c[1].reply->element[0]->integer, 2);
    assert_int_equal(c[1].reply->element[1]->integer, 2);
    assert_int_equal(c[2].reply->type, REDIS_REPLY_ERROR);
    assert_true(strncmp(c[2].reply->str, "NOSCRIPT", 8) == 0);
    assert_int_equal(c[3].reply->element[0]->integer, 1);
    assert_int_equal(c[4].reply->element[0]->integer, 2);
    assert_int_equal(c[5].reply->type, REDIS_REPLY_ERROR);
    assert_true(strncmp(c[5].reply->str, "CROSSSLOT", 9) == 0);
    assert_int_equal(c[6].reply->type, REDIS_REPLY_ERROR);
    printf("  untagged prefix: %s\n", c[6].reply->str);
    assert_non_null(strstr(c[6].reply->str, "non local key"));
    assert_reply_str(&c[7], REDIS_REPLY_STRING, "hi");
    clear(c, 8);
}

/* GET {mig}a, {mig}b, {mig}c in one batch: 1, 2, 3. */
static void get_mig(struct rexec_cmd *c) {
    const char *g[3][2] = { { "GET", "{mig}a" }, { "GET", "{mig}b" }, { "GET", "{mig}c" } };
    for (int i = 0; i < 3; i++) cmd_set(&c[i], 1, 2, g[i]);
    exec_ok(c, 3);
    assert_reply_str(&c[0], REDIS_REPLY_STRING, "1");
    assert_reply_str(&c[1], REDIS_REPLY_STRING, "2");
    assert_reply_str(&c[2], REDIS_REPLY_STRING, "3");
    clear(c, 3);
}

/* Move the slot of {mig} from its owner to the next node by hand. Staged
 * between the steps: {mig}a migrated, {mig}c not yet. The owner then
 * answers -ASK for {mig}a and for a new key, -TRYAGAIN for both keys at
 * once; after SETSLOT NODE, -MOVED for all of them. */
static void test_migrate_slot(void **state) {
    struct rexec_cmd c[4] = { { 0 } };
    struct cluster_stats st0, st;
    unsigned slot = cluster_keyslot("{mig}", 5);
    (void)state;
    int src = owner("{mig}"), dst = (src + 1) % NODES, third = (src + 2) % NODES;
    const char *s1[] = { "SET", "{mig}a", "1" }, *s3[] = { "SET", "{mig}c", "3" };
    cmd_set(&c[0], 1, 3, s1);
    cmd_set(&c[1], 1, 3, s3);
    exec_ok(c, 2);
    clear(c, 2);

    freeReplyObject(on(dst, "CLUSTER SETSLOT %u IMPORTING %s", slot, id[src]));
    freeReplyObject(on(src, "CLUSTER SETSLOT %u MIGRATING %s", slot, id[dst]));
    redisReply *r = on(src, "MIGRATE 127.0.0.1 %d %s 0 5000 KEYS {mig}a", port[dst], "");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);

    cluster_get_stats(cl, &st0);
    const char *g1[] = { "GET", "{mig}a" }, *g3[] = { "GET", "{mig}c" },
               *s2[] = { "SET", "{mig}b", "2" }, *m[] = { "MGET", "{mig}a", "{mig}c" };
    cmd_set(&c[0], 1, 2, g1);
    cmd_set(&c[1], 1, 2, g3);
    cmd_set(&c[2], 1, 3, s2);
    cmd_set(&c[3], 1, 3, m);
    exec_ok(c, 4);
    assert_reply_str(&c[0], REDIS_REPLY_STRING, "1");     /* ASK -> dst */
    assert_reply_str(&c[1], REDIS_REPLY_STRING, "3");     /* still on src */
    assert_reply_str(&c[2], REDIS_REPLY_STATUS, "OK");    /* ASK -> dst */
    assert_int_equal(c[3].result, CB_RETRY);              /* TRYAGAIN */
    assert_true(strncmp(c[3].reply->str, "TRYAGAIN", 8) == 0);
    cluster_get_stats(cl, &st);
    assert_int_equal(st.ask - st0.ask, 2);
    assert_int_equal(st.retry - st0.retry, 1);
    assert_int_equal(st.moved - st0.moved, 0);
    assert_int_equal(node_of(cluster_slot_addr(cl, slot)), src);   /* ASK: map kept */
    assert_int_equal(count_in_slot(dst, slot), 2);
    assert_int_equal(count_in_slot(src, slot), 1);
    print_stats("during the migration:");
    clear(c, 4);

    r = on(src, "MIGRATE 127.0.0.1 %d %s 0 5000 KEYS {mig}c", port[dst], "");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    int order[] = { dst, src, third };
    for (int i = 0; i < NODES; i++) {
        r = on(order[i], "CLUSTER SETSLOT %u NODE %s", slot, id[dst]);
        assert_int_equal(r->type, REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
    get_mig(c);
    cluster_get_stats(cl, &st0);
    assert_int_equal(st0.moved - st.moved, 3);            /* all three went to src */
    assert_int_equal(st0.refreshes - st.refreshes, 1);    /* once for the batch */
    assert_int_equal(node_of(cluster_slot_addr(cl, slot)), dst);
    assert_int_equal(count_in_slot(src, slot), 0);
    print_stats("after the move:");

    /* The map is right now: nothing redirected. */
    get_mig(c);
    cluster_get_stats(cl, &st);
    assert_int_equal(st.moved, st0.moved);
    assert_int_equal(st.refreshes, st0.refreshes);
}

/* A primary stops: its commands are I/O errors (and again on the next
 * try: connection refused), the others' commands go through. */
static void test_primary_lost(void **state) {
    enum { N = 30 };
    struct rexec_cmd c[N] = { { 0 } };
    char key[N][16];
    int victim = 2, io = 0;
    (void)state;
    for (int i = 0; i < N; i++) {
        snprintf(key[i], sizeof(key[i]), "k:%d", i);
        const char *g[] = { "GET", key[i] };
        cmd_set(&c[i], 1, 2, g);
    }
    assert_int_equal(sys_stop_pid(pid[victim], 5000), 0);
    pid[victim] = 0;
    assert_int_equal(cluster_exec(cl, c, N), CB_ERR_IO);
    printf("  after the stop: %s\n", cluster_errstr(cl));
    for (int i = 0; i < N; i++) {
        int o = owner(key[i]);
        assert_int_equal(c[i].result, o == victim ? CB_PENDING : CB_DONE);
        io += o == victim;
    }
    assert_true(io > 0);
    assert_int_equal(cluster_exec(cl, c, N), CB_ERR_IO);
    for (int i = 0; i < N; i++)
        assert_int_equal(c[i].result, owner(key[i]) == victim ? CB_PENDING : CB_DONE);
    print_stats("after a primary stopped:");
    clear(c, N);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyslot_matches_redis),
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_evalsha_hash_tag),
        cmocka_unit_test(test_migrate_slot),
        cmocka_unit_test(test_primary_lost),
    };
    return cmocka_run_group_tests_name("redis cluster", tests, setup, teardown);
}
