/* test_seed.c -- the seed's own writer as a member of the chat (issue #13).
 *
 * A writer in C over hiredis issues exactly the seed's commands (room R,
 * user U, text T):
 *   send    INCR chatroom:R:messages -> N; HSET chatroom:R U N;
 *           HSET chatroom:R:U N T; HSET chatroom:R:N content T;
 *           HSET chatroom:R:N timestamp <Unix seconds>
 *   delete  HDEL chatroom:R:U N; HDEL chatroom:R:N content;
 *           HDEL chatroom:R:N timestamp
 *   read    HGETALL chatroom:R:U, then HGET content and timestamp per id
 * against a real redis-server (keyspace notifications left off: the
 * bridge turns them on itself), mosquitto and the bridge. Every wait is
 * bounded; delays are measured and printed, never asserted. */
#include <setjmp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <jansson.h>

#include "client.h"

#define MIX_EACH 500          /* test 1: messages from each side */
#define MIX_USERS 5

static struct h_env env;

/* ==================== Helpers ==================== */

/* The seed's delete: three HDELs. */
static void seed_delete(redisContext *c, const char *room, const char *user, long long n) {
    cl_seed_cmd(c, "HDEL chatroom:%s:%s %lld", room, user, n);
    cl_seed_cmd(c, "HDEL chatroom:%s:%lld content", room, n);
    cl_seed_cmd(c, "HDEL chatroom:%s:%lld timestamp", room, n);
}

/* What a subscriber to chat/<room>/msgs saw: per id, how many times it
 * was republished (seen[id]), when first (at[id]), and deletions. */
struct seen {
    int *count, *deleted;
    long long *at;
    char **user, **text;
    long long max;
};

static void seen_init(struct seen *s, long long max) {
    s->max = max;
    s->count = calloc((size_t)max + 1, sizeof(int));
    s->deleted = calloc((size_t)max + 1, sizeof(int));
    s->at = calloc((size_t)max + 1, sizeof(long long));
    s->user = calloc((size_t)max + 1, sizeof(char *));
    s->text = calloc((size_t)max + 1, sizeof(char *));
    assert_true(s->count && s->deleted && s->at && s->user && s->text);
}

static void seen_free(struct seen *s) {
    for (long long i = 0; i <= s->max; i++) {
        free(s->user[i]);
        free(s->text[i]);
    }
    free(s->count); free(s->deleted); free(s->at); free(s->user); free(s->text);
}

/* Receive for up to ms; returns how many documents came. */
static int seen_collect(struct seen *s, MQTTClient c, int ms) {
    int got = 0;
    long long end = cl_now_ms() + ms;
    while (cl_now_ms() < end) {
        char *doc = h_receive(c, 100, NULL, NULL);
        if (doc == NULL) continue;
        json_t *j = cl_parse(doc);
        long long id = cl_jint(j, "id");
        assert_true(id >= 1 && id <= s->max);
        if (json_is_true(json_object_get(j, "deleted"))) {
            s->deleted[id]++;
        } else {
            if (s->count[id]++ == 0) s->at[id] = cl_now_ms();
            free(s->user[id]);
            free(s->text[id]);
            s->user[id] = strdup(json_string_value(json_object_get(j, "user")));
            s->text[id] = strdup(json_string_value(json_object_get(j, "text")));
        }
        json_decref(j);
        free(doc);
        got++;
    }
    return got;
}

/* Receive until ids 1..n were all republished, or ms passed. */
static void seen_until(struct seen *s, MQTTClient c, long long n, int ms) {
    long long end = cl_now_ms() + ms;
    for (;;) {
        long long missing = 0;
        for (long long i = 1; i <= n; i++) missing += s->count[i] == 0;
        if (missing == 0 || cl_now_ms() >= end) return;
        seen_collect(s, c, 200);
    }
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* Print p50 and p99 of d[0..n) (ms). */
static void print_delays(const char *what, long long *d, size_t n) {
    if (n == 0) return;
    qsort(d, n, sizeof(*d), cmp_ll);
    printf("  %s: %zu messages, republish delay after the last write p50 %lld ms, "
           "p99 %lld ms, max %lld ms\n", what, n, d[n / 2], d[(n * 99) / 100], d[n - 1]);
}

/* Page through a room's history (user: NULL for all) with limit; ids
 * into out (newest page first, each page oldest first). Asserts every
 * page is non-empty when next_before is set. How many. */
static size_t history_all(MQTTClient c, const char *room, const char *user, int limit,
                          long long *out, size_t max, char **users) {
    char topic[128], payload[256];
    long long before = 0;
    size_t n = 0;
    snprintf(topic, sizeof(topic), "chat/%s/history", room);
    for (int pages = 0; pages < 1000; pages++) {
        int k = snprintf(payload, sizeof(payload), "{\"limit\":%d", limit);
        if (before) k += snprintf(payload + k, sizeof(payload) - (size_t)k, ",\"before\":%lld", before);
        if (user) k += snprintf(payload + k, sizeof(payload) - (size_t)k, ",\"user\":\"%s\"", user);
        snprintf(payload + k, sizeof(payload) - (size_t)k, "}");
        json_t *r = cl_request(c, topic, payload, "seed/hist");
        json_t *msgs = json_object_get(r, "messages"), *nb = json_object_get(r, "next_before");
        assert_true(json_is_array(msgs));
        if (!json_is_null(nb)) assert_true(json_array_size(msgs) > 0);
        for (size_t i = 0; i < json_array_size(msgs) && n < max; i++) {
            json_t *m = json_array_get(msgs, i);
            if (users) users[n] = strdup(json_string_value(json_object_get(m, "user")));
            out[n++] = cl_jint(m, "id");
        }
        before = json_is_null(nb) ? 0 : json_integer_value(nb);
        json_decref(r);
        if (before == 0) return n;
    }
    fail_msg("history of %s did not end", room);
    return n;
}

/* ==================== 1. Both writers in one room ==================== */

struct writer {
    long long ids[MIX_EACH];
    long long done_at[MIX_EACH];     /* wall ms of its last write */
};

static void *seed_writer(void *arg) {
    struct writer *w = arg;
    redisContext *c = cl_seed_connect(&env);
    char user[16], text[32];
    for (int i = 0; i < MIX_EACH; i++) {
        snprintf(user, sizeof(user), "s%d", i % MIX_USERS);
        snprintf(text, sizeof(text), "seed-%d", i);
        w->ids[i] = cl_seed_send(c, "mix", user, text);
        w->done_at[i] = cl_now_ms();
    }
    redisFree(c);
    return NULL;
}

struct collector {
    struct seen *s;
    MQTTClient sub;
    long long n;
};

/* The subscriber on a thread of its own, so that arrival times are the
 * times messages came, not when the test got round to reading them. */
static void *collect(void *arg) {
    struct collector *c = arg;
    seen_until(c->s, c->sub, c->n, 60000);
    seen_collect(c->s, c->sub, 1000);            /* anything repeated */
    return NULL;
}

/* 500 seed messages and 500 MQTT messages at once: history returns all
 * 1,000 in id order, by-user history each user's own, every message
 * republished exactly once, ids unique. */
static void test_mixed_room(void **state) {
    (void)state;
    enum { N = 2 * MIX_EACH };
    MQTTClient sub = cl_client(&env, "seed-sub", "chat/mix/msgs");
    MQTTClient pub = cl_client(&env, "seed-pub", "seed/hist");
    static struct writer w;
    struct seen s;
    pthread_t t, tc;
    char payload[128];
    seen_init(&s, N);
    struct collector col = { &s, sub, N };
    assert_int_equal(pthread_create(&tc, NULL, collect, &col), 0);
    assert_int_equal(pthread_create(&t, NULL, seed_writer, &w), 0);
    for (int i = 0; i < MIX_EACH; i++) {
        snprintf(payload, sizeof(payload), "{\"user\":\"m%d\",\"text\":\"mqtt-%d\"}",
                 i % MIX_USERS, i);
        assert_int_equal(h_publish(pub, "chat/mix/send", payload, NULL, NULL), 0);
    }
    pthread_join(t, NULL);
    pthread_join(tc, NULL);
    long long delays[MIX_EACH];
    for (int i = 0; i < MIX_EACH; i++) {
        assert_int_equal(s.count[w.ids[i]], 1);
        char user[16], text[32];
        snprintf(user, sizeof(user), "s%d", i % MIX_USERS);
        snprintf(text, sizeof(text), "seed-%d", i);
        assert_string_equal(s.user[w.ids[i]], user);
        assert_string_equal(s.text[w.ids[i]], text);
        delays[i] = s.at[w.ids[i]] - w.done_at[i];
    }
    for (long long id = 1; id <= N; id++) assert_int_equal(s.count[id], 1);
    print_delays("foreign writes, 500 mixed with 500 MQTT", delays, MIX_EACH);

    /* history: all 1,000, newest page first, each page in id order */
    static long long ids[N + 10];
    size_t n = history_all(pub, "mix", NULL, 200, ids, N + 10, NULL);
    assert_int_equal(n, N);
    for (size_t p = 0; p < N / 200; p++)
        for (size_t i = 0; i < 200; i++) assert_int_equal(ids[p * 200 + i], N - 200 * (p + 1) + 1 + i);
    /* by user: each user's own, 100 each */
    for (int u = 0; u < 2 * MIX_USERS; u++) {
        char user[8];
        char *users[N];
        snprintf(user, sizeof(user), "%c%d", u < MIX_USERS ? 's' : 'm', u % MIX_USERS);
        n = history_all(pub, "mix", user, 37, ids, N, users);
        assert_int_equal(n, MIX_EACH / MIX_USERS);
        for (size_t i = 0; i < n; i++) {
            assert_string_equal(users[i], user);
            assert_string_equal(s.user[ids[i]], user);
            free(users[i]);
        }
    }
    seen_free(&s);
    h_mqtt_close(sub);
    h_mqtt_close(pub);
}

/* ==================== 2. Written while the bridge was away ==================== */

#define AWAY_ROOMS 20
#define AWAY_EACH 150

/* One republish of an away room into s[room], if one comes within 200
 * ms. 1 when one came. */
static int away_receive(MQTTClient sub, struct seen *s) {
    char *topic = NULL, *d = h_receive(sub, 200, &topic, NULL);
    if (d && strncmp(topic, "chat/away", 9) == 0) {
        int r = atoi(topic + strlen("chat/away"));
        json_t *j = cl_parse(d);
        assert_true(r >= 0 && r < AWAY_ROOMS);
        s[r].count[cl_jint(j, "id")]++;
        json_decref(j);
    }
    int got = d != NULL;
    free(d);
    free(topic);
    return got;
}

/* Messages written while the bridge is stopped are indexed and
 * republished after it starts; a SIGKILL during that catch-up loses
 * nothing and stores nothing twice. A republish the broker had and the
 * bridge had not yet confirmed is republished again after the restart
 * (at least once, as the bridge's own, README Guarantees): counted. */
static void test_catch_up(void **state) {
    (void)state;
    MQTTClient sub = cl_client(&env, "seed-away", "chat/+/msgs");
    redisContext *c = cl_seed_connect(&env);
    char room[16], text[32];
    assert_int_equal(h_stop_bridge(&env), 0);
    for (int i = 0; i < AWAY_ROOMS * AWAY_EACH; i++) {
        snprintf(room, sizeof(room), "away%d", i % AWAY_ROOMS);
        snprintf(text, sizeof(text), "w%d", i);
        cl_seed_send(c, room, (i / AWAY_ROOMS) % 2 ? "ann" : "ben", text);
    }
    struct seen s[AWAY_ROOMS];
    for (int r = 0; r < AWAY_ROOMS; r++) seen_init(&s[r], AWAY_EACH);
    assert_int_equal(h_restart_bridge(&env), 0);
    /* the first republish of the catch-up: kill it there */
    int got = 0;
    for (int i = 0; i < 100 && !got; i++) got = away_receive(sub, s);
    assert_true(got);
    h_kill_bridge(&env);
    assert_int_equal(h_restart_bridge(&env), 0);

    long long end = cl_now_ms() + 30000, missing = 1;
    int dups = 0;
    while (missing && cl_now_ms() < end) {
        away_receive(sub, s);
        missing = 0;
        for (int r = 0; r < AWAY_ROOMS; r++)
            for (long long id = 1; id <= AWAY_EACH; id++) missing += s[r].count[id] == 0;
    }
    for (int r = 0; r < AWAY_ROOMS && missing; r++) {
        int k = 0;
        for (long long id = 1; id <= AWAY_EACH; id++) k += s[r].count[id] == 0;
        if (k) printf("  room away%d: %d messages never republished (see %s)\n", r, k, env.dir);
    }
    assert_int_equal(missing, 0);
    MQTTClient q = cl_client(&env, "seed-away-q", "seed/hist");
    for (int r = 0; r < AWAY_ROOMS; r++) {
        static long long ids[AWAY_EACH + 5];
        snprintf(room, sizeof(room), "away%d", r);
        size_t n = history_all(q, room, NULL, 50, ids, AWAY_EACH + 5, NULL);
        assert_int_equal(n, AWAY_EACH);
        qsort(ids, n, sizeof(*ids), cmp_ll);
        for (size_t i = 0; i < n; i++) assert_int_equal(ids[i], (long long)i + 1);
        for (long long id = 1; id <= AWAY_EACH; id++) dups += s[r].count[id] - 1;
        assert_int_equal(cl_rnum(&env, "ZCARD chatroom:away%d:ann:ids", r), AWAY_EACH / 2);
        seen_free(&s[r]);
    }
    printf("  catch-up of %d messages in %d rooms with a SIGKILL: 0 lost, %d republished "
           "twice (unconfirmed at the kill)\n", AWAY_ROOMS * AWAY_EACH, AWAY_ROOMS, dups);
    redisFree(c);
    h_mqtt_close(q);
    h_mqtt_close(sub);
}

/* ==================== 3. Half-written messages ==================== */

/* Counter and user hash only, completed 300 ms later: republished once,
 * complete. One never completed: skipped after the bound and counted;
 * the message after it is republished. */
static void test_half_written(void **state) {
    (void)state;
    MQTTClient sub = cl_client(&env, "seed-half", "chat/half/msgs");
    redisContext *c = cl_seed_connect(&env);
    struct seen s;
    seen_init(&s, 10);
    long long a = cl_seed_begin(c, "half", "hal", "late");
    h_sleep_ms(300);
    cl_seed_finish(c, "half", a, "late");
    seen_until(&s, sub, a, CL_WAIT_MS);
    assert_int_equal(s.count[a], 1);
    assert_string_equal(s.user[a], "hal");
    assert_string_equal(s.text[a], "late");

    long long never = cl_seed_begin(c, "half", "hal", "never");
    long long after = cl_seed_send(c, "half", "hal", "after");
    for (int i = 0; i < 100 && s.count[after] == 0; i++) seen_collect(&s, sub, 100);
    assert_int_equal(s.count[after], 1);
    assert_string_equal(s.text[after], "after");
    seen_collect(&s, sub, 500);
    assert_int_equal(s.count[a], 1);
    assert_int_equal(s.count[never], 0);
    cl_assert_hget(&env, "1", "chatroom:half:messages:cursor", "skipped");
    assert_true(h_log_wait(&env, "never completed", 1, CL_WAIT_MS) >= 1);
    seen_free(&s);
    redisFree(c);
    h_mqtt_close(sub);
}

/* ==================== 4. Deletes ==================== */

/* The deleted notices seen for id within ms. */
static int deleted_seen(MQTTClient sub, struct seen *s, long long id, int ms) {
    for (int i = 0; i < ms / 100 && s->deleted[id] == 0; i++) seen_collect(s, sub, 100);
    seen_collect(s, sub, 500);                      /* and nothing more */
    return s->deleted[id];
}

/* A page of history; asserts the page is not empty when next_before is
 * set. Returns the reply (the caller frees it). */
static json_t *page(MQTTClient c, const char *payload) {
    json_t *r = cl_request(c, "chat/del/history", payload, "seed/del");
    if (!json_is_null(json_object_get(r, "next_before")))
        assert_true(json_array_size(json_object_get(r, "messages")) > 0);
    return r;
}

/* A foreign message is deleted through the bridge by its author only;
 * a bridge message deleted with the seed's three HDELs is announced once
 * and leaves no empty page. */
static void test_delete(void **state) {
    (void)state;
    MQTTClient sub = cl_client(&env, "seed-del", "chat/del/msgs");
    MQTTClient c = cl_client(&env, "seed-delc", "seed/del");
    redisContext *rc = cl_seed_connect(&env);
    struct seen s;
    seen_init(&s, 10);
    long long keep = cl_send(c, "del", "alice", "keep", "seed/del");
    long long f = cl_seed_send(rc, "del", "sam", "foreign");
    seen_until(&s, sub, f, CL_WAIT_MS);
    assert_int_equal(s.count[f], 1);
    char payload[128];
    snprintf(payload, sizeof(payload), "{\"user\":\"bob\",\"id\":%lld}", f);
    cl_expect_error(cl_request(c, "chat/del/delete", payload, "seed/del"), "forbidden",
                    "bob deletes sam's");
    snprintf(payload, sizeof(payload), "{\"user\":\"sam\",\"id\":%lld}", f);
    cl_expect_ok_id(cl_request(c, "chat/del/delete", payload, "seed/del"), f);
    assert_int_equal(deleted_seen(sub, &s, f, CL_WAIT_MS), 1);
    assert_int_equal(h_redis_count(&env, "chatroom:del:2"), 0);
    assert_int_equal(cl_rnum(&env, "HEXISTS chatroom:del:sam %lld", f), 0);

    /* the seed's delete of the bridge's message: announced once */
    long long b = cl_send(c, "del", "alice", "gone", "seed/del");
    long long top = cl_send(c, "del", "alice", "top", "seed/del");
    seed_delete(rc, "del", "alice", b);
    snprintf(payload, sizeof(payload), "{\"limit\":1,\"before\":%lld}", top);
    json_t *r = page(c, payload);                   /* at once: skipped */
    json_t *m = json_array_get(json_object_get(r, "messages"), 0);
    assert_int_equal(cl_jint(m, "id"), keep);
    assert_true(json_is_null(json_object_get(r, "next_before")));
    json_decref(r);
    assert_int_equal(deleted_seen(sub, &s, b, CL_WAIT_MS), 1);
    r = page(c, payload);                           /* after the reap */
    assert_int_equal(json_array_size(json_object_get(r, "messages")), 1);
    json_decref(r);
    r = page(c, "{\"limit\":1}");
    m = json_array_get(json_object_get(r, "messages"), 0);
    assert_int_equal(cl_jint(m, "id"), top);
    assert_int_equal(cl_jint(r, "next_before"), top);
    json_decref(r);
    assert_int_equal(h_redis_count(&env, "chatroom:del:3"), 0);
    cl_assert_str(&env, NULL, "ZSCORE chatroom:del:messages:ids %lld", b);
    seen_free(&s);
    redisFree(rc);
    h_mqtt_close(c);
    h_mqtt_close(sub);
}

/* ==================== 5. The seed's reader ==================== */

/* The seed's reader reads the bridge's messages, with Unix seconds in
 * timestamp. */
static void test_seed_reader(void **state) {
    (void)state;
    MQTTClient c = cl_client(&env, "seed-read", "seed/read");
    long long before = (long long)time(NULL);
    long long id = cl_send(c, "reader", "alice", "hello", "seed/read");
    long long after = (long long)time(NULL);
    redisContext *rc = cl_seed_connect(&env);
    redisReply *all = redisCommand(rc, "HGETALL chatroom:reader:alice");
    assert_non_null(all);
    assert_int_equal(all->elements, 2);
    assert_int_equal(atoll(all->element[0]->str), id);
    redisReply *t = redisCommand(rc, "HGET chatroom:reader:%s content", all->element[0]->str);
    assert_string_equal(t->str, "hello");
    freeReplyObject(t);
    t = redisCommand(rc, "HGET chatroom:reader:%s timestamp", all->element[0]->str);
    assert_int_equal(t->type, REDIS_REPLY_STRING);
    long long secs = atoll(t->str);
    assert_true(secs >= before && secs <= after);   /* seconds, not ms */
    freeReplyObject(t);
    t = redisCommand(rc, "HGET chatroom:reader:%s timestamp_ms", all->element[0]->str);
    assert_true(atoll(t->str) / 1000 == secs);
    freeReplyObject(t);
    freeReplyObject(all);
    redisFree(rc);
    h_mqtt_close(c);
}

/* ==================== 6. Notifications refused ==================== */

/* A Redis whose notifications are off, for a bridge user that may not
 * CONFIG SET them nor subscribe: the bridge says so once, and still
 * republishes other writers' messages, found by its periodic reconcile. */
static void test_events_refused(void **state) {
    (void)state;
    MQTTClient sub = cl_client(&env, "seed-poll", "chat/poll/msgs");
    redisContext *c = cl_seed_connect(&env);
    struct seen s;
    seen_init(&s, 4);
    cl_seed_cmd(c, "CONFIG SET notify-keyspace-events %s", "");
    cl_seed_cmd(c, "ACL SETUSER limited on >limited-pw ~chatroom:* resetchannels +@all -@dangerous");
    assert_int_equal(h_stop_bridge(&env), 0);
    assert_int_equal(h_write_bridge_config(&env, "  username: limited\n  password: limited-pw\n",
                                           NULL), 0);
    assert_int_equal(h_restart_bridge(&env), 0);
    assert_int_equal(h_log_wait(&env, "CONFIG SET was refused", 1, CL_WAIT_MS), 1);
    long long id = cl_seed_send(c, "poll", "pat", "polled");
    long long t0 = cl_now_ms();
    seen_until(&s, sub, id, 25000);
    assert_int_equal(s.count[id], 1);
    printf("  notifications refused: republished by the periodic reconcile after %lld ms\n",
           s.at[id] - t0);
    assert_int_equal(h_log_wait(&env, "CONFIG SET was refused", 2, 0), 1);   /* once */
    seen_free(&s);
    redisFree(c);
    h_mqtt_close(sub);
}

/* ==================== Main ==================== */

static int setup(void **state) {
    (void)state;
    return cl_start(&env, NULL);
}

static int teardown(void **state) {
    (void)state;
    return h_finish(&env);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_reader),
        cmocka_unit_test(test_mixed_room),
        cmocka_unit_test(test_half_written),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_catch_up),       /* restarts the bridge */
        cmocka_unit_test(test_events_refused), /* restarts it as a limited user: last */
    };
    if (getenv("CB_SEED_ONLY")) cmocka_set_test_filter(getenv("CB_SEED_ONLY"));
    return cmocka_run_group_tests_name("seed", tests, setup, teardown);
}
