/* test_faults.c -- the bridge under faults, against real mosquitto and
 * redis-server: Redis killed, paused and stopped; the broker restarted; the
 * bridge killed and stopped mid-stream; repeated sends; a torn journal.
 *
 * Each test has servers, a bridge (its journal in the test's directory, so
 * it outlives restarts of the bridge) and a workload of its own, and ends
 * with the message-by-message check of workload.h. Every wait is bounded;
 * sleeps only pace the faults. Environment: CB_BRIDGE (the binary),
 * CB_FAULT_SEED (repeat test 4's random kill points), CB_FAULTS_FILTER
 * (run only the tests matching a pattern), CB_KEEP (keep every directory;
 * a failed test's is always kept). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "journal_scan.h"
#include "sys.h"
#include "workload.h"

#define ROOMS 10
#define STOP_TIMEOUT_MS 3000
#define ACK_TIMEOUT_MS 150000
#define RSS_BOUND_KB (64 * 1024)
#define MAX_KILLS 8

/* One test's servers, bridge and workload. */
struct fx {
    struct h_env env;
    struct workload *wl;
    struct wl_opts opts;
    int reported;                 /* the workload's figures were printed */
    int passed;
};

/* ==================== Fixture ==================== */

/* A zeroed fixture for each test. */
static int fx_setup(void **state) {
    *state = calloc(1, sizeof(struct fx));
    return *state ? 0 : -1;
}

/* Stop whatever the test started, by PID; keep the directory of a test
 * that failed, for its logs. */
static int fx_teardown(void **state) {
    struct fx *f = *state;
    wl_free(f->wl);
    h_kill_bridge(&f->env);
    if (f->env.dir[0]) {
        int keep = !f->passed || getenv("CB_KEEP") != NULL;
        if (!f->passed) printf("  logs kept in %s\n", f->env.dir);
        h_stop_servers_keep(&f->env, keep);
    }
    free(f);
    return 0;
}

/* Start the servers and the bridge; redis_keys go into the bridge's redis
 * section. */
static void fx_start(struct fx *f, const struct h_server_opts *so, const char *redis_keys) {
    char extra[600];
    assert_int_equal(h_start_servers_opt(&f->env, so), 0);
    snprintf(extra, sizeof(extra), "limits:\n  stop_timeout_ms: %d\n"
             "journal:\n  dir: %s/journal\n", STOP_TIMEOUT_MS, f->env.dir);
    assert_int_equal(h_start_bridge_ex(&f->env, redis_keys, extra), 0);
}

/* Start the test's workload, over the ROOMS rooms. */
static void fx_workload(struct fx *f, struct wl_opts o) {
    o.rooms = ROOMS;
    f->opts = o;
    f->wl = wl_start(&f->env, &f->opts);
    assert_non_null(f->wl);
}

/* Wait until the stream has reached its count-th message. */
static void fx_wait_sent(struct fx *f, int count) {
    if (wl_wait_sent(f->wl, count, 60000) != 0)
        fail_msg("the publisher did not reach message %d", count);
}

/* Wait until the broker acknowledged every message; print the figures. */
static void fx_wait_acked(struct fx *f) {
    struct wl_stats st;
    int rc = wl_wait_acked(f->wl, ACK_TIMEOUT_MS);
    wl_stats(f->wl, &st);
    if (f->reported++ == 0)
        printf("  %s: %d sent, %d acknowledged, %d resent, %d connects, %d cuts "
               "(%d in flight), %d republishes seen, subscriber reconnects %d\n",
               f->opts.name, st.sent, st.acked, st.resent, st.connects, st.cuts,
               st.inflight_at_cuts, st.republishes, st.sub_reconnects);
    if (rc != 0) fail_msg("the broker acknowledged %d of %d messages", st.acked, f->opts.n);
}

/* The check: all acknowledged, Redis and the republishes as expected, and
 * the bridge still running. */
static void fx_check(struct fx *f, const struct wl_expect *x) {
    fx_wait_acked(f);
    int problems = wl_verify(f->wl, &f->env, x);
    if (problems) fail_msg("%s: %d problems (listed above)", f->opts.name, problems);
    assert_true(h_bridge_alive(&f->env));
}

/* SIGTERM: the bridge must exit 0. Then the test has passed. */
static void fx_stop_clean(struct fx *f) {
    int rc = h_stop_bridge(&f->env);
    if (rc != 0) fail_msg("the bridge exited with %d on SIGTERM", rc);
    f->passed = 1;
}

/* fx_check, then a clean stop. */
static void fx_finish(struct fx *f, const struct wl_expect *x) {
    fx_check(f, x);
    fx_stop_clean(f);
}

/* ==================== Small helpers ==================== */

/* Milliseconds since t0. */
static long long elapsed_ms(const struct timespec *t0) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000LL + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* The seed of the random faults: $CB_FAULT_SEED, or time and pid. */
static unsigned fault_seed(void) {
    const char *s = getenv("CB_FAULT_SEED");
    unsigned seed = s ? (unsigned)strtoul(s, NULL, 10)
                      : (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
    printf("  seed %u (CB_FAULT_SEED=%u repeats these faults)\n", seed, seed);
    return seed;
}

/* qsort order of ints. */
static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* n random points in [lo, hi), ascending. */
static void random_points(unsigned *seed, int *at, int n, int lo, int hi) {
    for (int i = 0; i < n; i++) at[i] = lo + rand_r(seed) % (hi - lo);
    qsort(at, (size_t)n, sizeof(*at), cmp_int);
}

/* The size of a file; 0 when absent. */
static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* 1 when the log, from offset on, has a line naming the segment and saying
 * a torn record was cut from it. */
static int log_mentions_cut(const char *path, long from, const char *segment) {
    char line[1024];
    int found = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL || fseek(f, from, SEEK_SET) != 0) {
        if (f) fclose(f);
        return 0;
    }
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, segment) &&
                (strstr(line, "cut") || strstr(line, "torn") || strstr(line, "corrupt"));
    fclose(f);
    return found;
}

/* Wait until the journal holds `count` records of the workload. */
static void wait_journal(const char *dir, const char *tag, long count) {
    long have = -1;
    for (int waited = 0; waited < 30000; waited += 100) {
        if ((have = js_count_tagged(dir, tag)) >= count) return;
        h_sleep_ms(100);
    }
    fail_msg("the journal in %s holds %ld of %ld messages", dir, have, count);
}

/* Send on chat/dup/send with an MQTT 5 reply topic; the id of the
 * {"ok":true,"id":N} reply. */
static long long send_for_id(MQTTClient c, const char *payload) {
    assert_int_equal(h_publish(c, "chat/dup/send", payload, "reply/t6a", NULL), 0);
    char *doc = h_receive(c, 10000, NULL, NULL);
    if (doc == NULL) fail_msg("no reply to %s", payload);
    json_t *r = json_loads(doc, 0, NULL);
    if (!json_is_true(json_object_get(r, "ok")) || !json_is_integer(json_object_get(r, "id")))
        fail_msg("reply to %s: %s", payload, doc);
    long long id = json_integer_value(json_object_get(r, "id"));
    json_decref(r);
    free(doc);
    return id;
}

/* Republishes of text `counted` on sub, until the one of text `last`. */
static int republishes_until(MQTTClient sub, const char *counted, const char *last) {
    int count = 0, done = 0;
    while (!done) {
        char *doc = h_receive(sub, 10000, NULL, NULL);
        if (doc == NULL) fail_msg("no republish of \"%s\"", last);
        json_t *m = json_loads(doc, 0, NULL);
        const char *text = json_string_value(json_object_get(m, "text"));
        count += text && strcmp(text, counted) == 0;
        done = text && strcmp(text, last) == 0;
        json_decref(m);
        free(doc);
    }
    return count;
}

/* The room's id counter. */
static long long dup_counter(struct fx *f) {
    redisReply *r = h_redis(&f->env, "GET chatroom:dup:messages");
    long long v = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    if (r) freeReplyObject(r);
    return v;
}

/* ==================== Redis ==================== */

/* 1. Redis killed (SIGKILL) mid-stream, started again 2 s later on the
 * same port and directory, AOF with fsync always: the bridge keeps
 * running, reconnects, and stores every message exactly once. */
static void test_redis_sigkill(void **state) {
    struct fx *f = *state;
    fx_start(f, &(struct h_server_opts){ .redis_aof = 1 }, NULL);
    fx_workload(f, (struct wl_opts){ .name = "t1", .n = 1500, .rate = 500 });
    fx_wait_sent(f, 500);
    h_redis_kill(&f->env);
    h_sleep_ms(2000);
    assert_int_equal(h_redis_start(&f->env), 0);
    fx_finish(f, &(struct wl_expect){ 0 });
}

/* 2. Redis paused (CLIENT PAUSE 3000 ALL) mid-stream, longer than the
 * bridge's redis.timeout_ms (1 s): its batch times out and is retried on a
 * new connection; still each message stored once. */
static void test_redis_pause(void **state) {
    struct fx *f = *state;
    fx_start(f, NULL, "  timeout_ms: 1000\n");
    fx_workload(f, (struct wl_opts){ .name = "t2", .n = 1500, .rate = 500 });
    fx_wait_sent(f, 500);
    redisReply *r = h_redis(&f->env, "CLIENT PAUSE 3000 ALL");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    fx_finish(f, &(struct wl_expect){ 0 });
}

/* 7. Redis stopped while 5000 messages (five times the broker's
 * max_queued_messages of 1000) go through the bridge: the broker must not
 * have to drop any, the bridge's peak RSS stays under 64 MiB, and once
 * Redis is back everything is stored, in the publisher's order per room. */
static void test_redis_down_backlog(void **state) {
    struct fx *f = *state;
    fx_start(f, &(struct h_server_opts){ .mqtt_max_queued = 1000 }, NULL);
    assert_int_equal(h_redis_stop(&f->env), 0);
    fx_workload(f, (struct wl_opts){ .name = "t7", .n = 5000 });
    fx_wait_acked(f);
    h_sleep_ms(2000);                   /* Redis stays down a while longer */
    assert_true(h_bridge_alive(&f->env));
    long down_kb = sys_proc_kb(f->env.bridge_pid, "VmHWM");
    printf("  bridge peak RSS (VmHWM) with Redis down: %ld kB (bound %d kB)\n", down_kb,
           RSS_BOUND_KB);
    assert_true(down_kb > 0 && down_kb < RSS_BOUND_KB);
    assert_int_equal(h_redis_start(&f->env), 0);
    fx_check(f, &(struct wl_expect){ .ordered = 1 });
    long peak_kb = sys_proc_kb(f->env.bridge_pid, "VmHWM");
    printf("  bridge peak RSS (VmHWM) at the end: %ld kB\n", peak_kb);
    assert_true(peak_kb > 0 && peak_kb < RSS_BOUND_KB);
    fx_stop_clean(f);
}

/* ==================== Broker ==================== */

/* 3. mosquitto stopped (SIGTERM, so it saves its persistence) mid-stream
 * and started again 1.5 s later on the same port: the bridge resumes its
 * session, the publisher reconnects and sends again what was not
 * acknowledged, and each message is stored once. */
static void test_broker_restart(void **state) {
    struct fx *f = *state;
    struct wl_stats st;
    fx_start(f, &(struct h_server_opts){ .mqtt_persist = 1 }, NULL);
    fx_workload(f, (struct wl_opts){ .name = "t3", .n = 1500, .rate = 500 });
    fx_wait_sent(f, 500);
    assert_int_equal(h_mqtt_stop(&f->env), 0);
    h_sleep_ms(1500);
    assert_int_equal(h_mqtt_start(&f->env), 0);
    fx_wait_acked(f);
    wl_stats(f->wl, &st);
    assert_true(st.connects >= 2);
    fx_finish(f, &(struct wl_expect){ 0 });
}

/* ==================== The bridge ==================== */

/* 4. The bridge killed (SIGKILL) 5 to 7 times at random points of the
 * stream and started again each time: what the broker acknowledged to it
 * is in its journal, so each message is stored exactly once. */
static void test_bridge_sigkill(void **state) {
    struct fx *f = *state;
    enum { N = 2000 };
    int at[MAX_KILLS] = { 0 };
    unsigned seed = fault_seed();
    int kills = 5 + rand_r(&seed) % 3;
    random_points(&seed, at, kills, N / 10, N * 85 / 100);
    fx_start(f, NULL, NULL);
    fx_workload(f, (struct wl_opts){ .name = "t4", .n = N, .rate = 200 });
    for (int i = 0; i < kills; i++) {
        fx_wait_sent(f, at[i]);
        h_kill_bridge(&f->env);
        printf("  killed the bridge at message %d\n", at[i]);
        h_sleep_ms(rand_r(&seed) % 500);
        assert_int_equal(h_restart_bridge(&f->env), 0);
    }
    fx_finish(f, &(struct wl_expect){ 0 });
}

/* 5. The bridge stopped with SIGTERM mid-stream: exits 0; started again,
 * it stores everything exactly once. */
static void test_bridge_sigterm(void **state) {
    struct fx *f = *state;
    fx_start(f, NULL, NULL);
    fx_workload(f, (struct wl_opts){ .name = "t5", .n = 1500, .rate = 500 });
    fx_wait_sent(f, 600);
    assert_int_equal(h_stop_bridge(&f->env), 0);
    assert_int_equal(h_restart_bridge(&f->env), 0);
    fx_finish(f, &(struct wl_expect){ 0 });
}

/* 5b. SIGTERM while Redis is down: the bridge exits 0 within
 * limits.stop_timeout_ms (plus 5 s of margin); what it could not apply
 * stays in the journal and is stored after the next start. */
static void test_bridge_sigterm_redis_down(void **state) {
    struct fx *f = *state;
    struct timespec t0;
    fx_start(f, &(struct h_server_opts){ .redis_aof = 1 }, NULL);
    fx_workload(f, (struct wl_opts){ .name = "t5b", .n = 1000, .rate = 400 });
    fx_wait_sent(f, 300);
    assert_int_equal(h_redis_stop(&f->env), 0);
    fx_wait_sent(f, 600);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = h_stop_bridge(&f->env);
    long long took = elapsed_ms(&t0);
    printf("  SIGTERM with Redis down: exit %d after %lld ms\n", rc, took);
    assert_int_equal(rc, 0);
    assert_true(took < STOP_TIMEOUT_MS + 5000);
    assert_int_equal(h_redis_start(&f->env), 0);
    assert_int_equal(h_restart_bridge(&f->env), 0);
    fx_finish(f, &(struct wl_expect){ 0 });
}

/* ==================== Repeated sends ==================== */

/* 6a. The same send (same client_msg_id) twice, and once more after a
 * restart of the bridge: stored and republished once, and every repeat's
 * reply carries the original id. */
static void test_dedup_same_send(void **state) {
    struct fx *f = *state;
    const char *once = "{\"user\":\"alice\",\"text\":\"once\",\"client_msg_id\":\"t6a-same\"}";
    fx_start(f, NULL, NULL);
    MQTTClient c = h_mqtt_connect(&f->env, "t6a-req", 5);
    MQTTClient sub = h_mqtt_connect(&f->env, "t6a-sub", 5);
    assert_true(c && sub);
    assert_int_equal(h_subscribe(c, "reply/t6a"), 0);
    assert_int_equal(h_subscribe(sub, "chat/dup/msgs"), 0);
    long long id = send_for_id(c, once);
    assert_int_equal(send_for_id(c, once), id);
    assert_int_equal(send_for_id(c, "{\"user\":\"alice\",\"text\":\"after\","
                                    "\"client_msg_id\":\"t6a-next\"}"), id + 1);
    assert_int_equal(republishes_until(sub, "once", "after"), 1);
    h_mqtt_close(c);
    h_mqtt_close(sub);
    assert_int_equal(h_stop_bridge(&f->env), 0);
    assert_int_equal(h_restart_bridge(&f->env), 0);
    c = h_mqtt_connect(&f->env, "t6a-req", 5);
    assert_non_null(c);
    assert_int_equal(h_subscribe(c, "reply/t6a"), 0);
    assert_int_equal(send_for_id(c, once), id);
    h_mqtt_close(c);
    assert_int_equal(dup_counter(f), id + 1);
    fx_stop_clean(f);
}

/* 6b. A publisher whose connection drops abruptly (its socket shut down
 * under Paho, no DISCONNECT) with messages in flight, every 150 messages;
 * it reconnects and sends those again with the same client_msg_id: each
 * stored once. */
static void test_publisher_abrupt_disconnect(void **state) {
    struct fx *f = *state;
    struct wl_stats st;
    fx_start(f, NULL, NULL);
    fx_workload(f, (struct wl_opts){ .name = "t6b", .n = 1000, .cut_every = 150 });
    fx_wait_acked(f);
    wl_stats(f->wl, &st);
    assert_true(st.cuts >= 3);
    assert_true(st.inflight_at_cuts > 0);
    assert_true(st.resent > 0);
    fx_finish(f, &(struct wl_expect){ 0 });
}

/* ==================== The journal ==================== */

/* 8. A torn last record: the bridge killed while Redis is down (so its
 * journal holds everything, unapplied), the newest segment cut by 3 bytes,
 * Redis and the bridge started again. The bridge starts, logs the cut, and
 * stores everything but that one record. */
static void test_torn_journal(void **state) {
    struct fx *f = *state;
    char jdir[300], log[300], segment[64];
    fx_start(f, NULL, NULL);
    snprintf(jdir, sizeof(jdir), "%s/journal", f->env.dir);
    snprintf(log, sizeof(log), "%s/bridge.log", f->env.dir);
    assert_int_equal(h_redis_stop(&f->env), 0);
    fx_workload(f, (struct wl_opts){ .name = "t8", .n = 1000 });
    fx_wait_acked(f);
    wait_journal(jdir, "t8", 1000);
    h_sleep_ms(500);                    /* the bridge's last PUBACKs go out */
    h_kill_bridge(&f->env);
    long seq = js_tear_last(jdir, "t8", 3, segment, sizeof(segment));
    printf("  tore the record of m%ld at the end of %s\n", seq, segment);
    assert_true(seq > 0);
    long from = file_size(log);
    assert_int_equal(h_redis_start(&f->env), 0);
    assert_int_equal(h_restart_bridge(&f->env), 0);
    if (!log_mentions_cut(log, from, segment))
        fail_msg("the bridge did not log the cut in %s", segment);
    fx_finish(f, &(struct wl_expect){ .lost_seq = (int)seq });
}

#define FAULT_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

/* Every test with its own fixture; CB_FAULTS_FILTER picks some. */
int main(void) {
    const struct CMUnitTest tests[] = {
        FAULT_TEST(test_redis_sigkill),
        FAULT_TEST(test_redis_pause),
        FAULT_TEST(test_broker_restart),
        FAULT_TEST(test_bridge_sigkill),
        FAULT_TEST(test_bridge_sigterm),
        FAULT_TEST(test_bridge_sigterm_redis_down),
        FAULT_TEST(test_dedup_same_send),
        FAULT_TEST(test_publisher_abrupt_disconnect),
        FAULT_TEST(test_redis_down_backlog),
        FAULT_TEST(test_torn_journal),
    };
    if (getenv("CB_FAULTS_FILTER")) cmocka_set_test_filter(getenv("CB_FAULTS_FILTER"));
    setvbuf(stdout, NULL, _IOLBF, 0);
    return cmocka_run_group_tests_name("faults", tests, NULL, NULL);
}
