/* test_chat.c -- the whole chat path against a real mosquitto and a real
 * redis-server: send, store, republish, history, delete, refusals.
 * Each test uses rooms of its own, so tests share one set of servers. */
#include <setjmp.h>
#include <signal.h>
#include <unistd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "client.h"

static struct h_env env;

/* ==================== Sending ==================== */

/* One message: the exact keys of the schema, then the republished JSON. */
static void test_send_stores_schema(void **state) {
    (void)state;
    MQTTClient c = cl_client(&env, "t-send", "chat/lobby/msgs");
    assert_int_equal(h_publish(c, "chat/lobby/send",
        "{\"user\":\"alice\",\"text\":\"hello\",\"client_msg_id\":\"c-1\"}", NULL, NULL), 0);
    char *doc = h_receive(c, CL_WAIT_MS, NULL, NULL);
    json_t *m = cl_parse(doc);
    assert_int_equal(cl_jint(m, "id"), 1);
    assert_string_equal(cl_jstr(m, "room"), "lobby");
    assert_string_equal(cl_jstr(m, "user"), "alice");
    assert_string_equal(cl_jstr(m, "text"), "hello");
    assert_string_equal(cl_jstr(m, "client_msg_id"), "c-1");
    char ts[32], secs[32];
    snprintf(ts, sizeof(ts), "%lld", cl_jint(m, "ts"));
    snprintf(secs, sizeof(secs), "%lld", cl_jint(m, "ts") / 1000);
    assert_true(cl_jint(m, "ts") > 1700000000000LL);

    cl_assert_str(&env, "1", "GET %s", "chatroom:lobby:messages");
    cl_assert_hget(&env, "1", "chatroom:lobby", "alice");
    cl_assert_hget(&env, "hello", "chatroom:lobby:alice", "1");
    cl_assert_hget(&env, "hello", "chatroom:lobby:1", "content");
    cl_assert_hget(&env, "alice", "chatroom:lobby:1", "user");
    cl_assert_hget(&env, secs, "chatroom:lobby:1", "timestamp");
    cl_assert_hget(&env, ts, "chatroom:lobby:1", "timestamp_ms");
    cl_assert_hget(&env, "c-1", "chatroom:lobby:1", "client_msg_id");
    assert_int_equal(cl_rnum(&env, "HLEN chatroom:lobby:1"), 5);
    json_decref(m);
    free(doc);
    h_mqtt_close(c);
}

/* Ids count up per room, and rooms do not share counters. */
static void test_ids_per_room(void **state) {
    (void)state;
    MQTTClient c = cl_client(&env, "t-ids", "reply/ids");
    long long a1 = cl_send(c, "ida", "alice", "a1", "reply/ids");
    long long b1 = cl_send(c, "idb", "bob", "b1", "reply/ids");
    long long a2 = cl_send(c, "ida", "bob", "a2", "reply/ids");
    long long a3 = cl_send(c, "ida", "alice", "a3", "reply/ids");
    long long b2 = cl_send(c, "idb", "bob", "b2", "reply/ids");
    assert_int_equal(a1, 1);
    assert_int_equal(a2, 2);
    assert_int_equal(a3, 3);
    assert_int_equal(b1, 1);
    assert_int_equal(b2, 2);
    cl_assert_hget(&env, "3", "chatroom:ida", "alice");
    cl_assert_hget(&env, "a2", "chatroom:ida:bob", "2");
    cl_assert_hget(&env, "b2", "chatroom:idb:2", "content");
    h_mqtt_close(c);
}

/* A 3.1.1 client puts reply_to and correlation in the JSON. */
static void test_mqtt311_reply_to(void **state) {
    (void)state;
    MQTTClient c = h_mqtt_connect(&env, "t-311", 4);
    assert_non_null(c);
    assert_int_equal(h_subscribe(c, "reply/v311"), 0);
    assert_int_equal(h_publish(c, "chat/v311/send",
        "{\"user\":\"carol\",\"text\":\"hi\",\"reply_to\":\"reply/v311\",\"correlation\":\"k9\"}",
        NULL, NULL), 0);
    char *doc = h_receive(c, CL_WAIT_MS, NULL, NULL);
    json_t *r = cl_parse(doc);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_int_equal(cl_jint(r, "id"), 1);
    assert_string_equal(cl_jstr(r, "correlation"), "k9");
    json_decref(r);
    free(doc);

    assert_int_equal(h_publish(c, "chat/v311/history",
        "{\"reply_to\":\"reply/v311\",\"correlation\":\"k10\"}", NULL, NULL), 0);
    doc = h_receive(c, CL_WAIT_MS, NULL, NULL);
    r = cl_parse(doc);
    assert_string_equal(cl_jstr(r, "correlation"), "k10");
    assert_int_equal(json_array_size(json_object_get(r, "messages")), 1);
    json_decref(r);
    free(doc);
    h_mqtt_close(c);
}

/* ==================== History ==================== */

/* Ask for history and check the ids of the page and next_before. */
static void expect_page(MQTTClient c, const char *payload, const long long *ids,
                        size_t n, long long next_before) {
    json_t *r = cl_request(c, "chat/hist/history", payload, "reply/hist");
    json_t *msgs = json_object_get(r, "messages");
    assert_string_equal(cl_jstr(r, "room"), "hist");
    if (json_array_size(msgs) != n)
        fail_msg("%s: %zu messages, expected %zu", payload, json_array_size(msgs), n);
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(msgs, i);
        assert_int_equal(cl_jint(m, "id"), ids[i]);
        assert_string_equal(cl_jstr(m, "room"), "hist");
        assert_string_equal(cl_jstr(m, "user"), ids[i] % 2 ? "alice" : "bob");
    }
    json_t *nb = json_object_get(r, "next_before");
    if (next_before == 0) assert_true(json_is_null(nb));
    else assert_int_equal(json_integer_value(nb), next_before);
    json_decref(r);
}

static void test_history_paging(void **state) {
    (void)state;
    MQTTClient c = cl_client(&env, "t-hist", "reply/hist");
    for (int i = 1; i <= 7; i++)
        assert_int_equal(cl_send(c, "hist", i % 2 ? "alice" : "bob", "m", "reply/hist"), i);
    expect_page(c, "{\"limit\":3}", (long long[]){ 5, 6, 7 }, 3, 5);
    expect_page(c, "{\"limit\":3,\"before\":5}", (long long[]){ 2, 3, 4 }, 3, 2);
    expect_page(c, "{\"limit\":3,\"before\":2}", (long long[]){ 1 }, 1, 0);
    expect_page(c, "{}", (long long[]){ 1, 2, 3, 4, 5, 6, 7 }, 7, 0);
    expect_page(c, "{\"user\":\"alice\",\"limit\":2}", (long long[]){ 5, 7 }, 2, 5);
    expect_page(c, "{\"user\":\"alice\",\"limit\":2,\"before\":5}", (long long[]){ 1, 3 }, 2, 0);
    expect_page(c, "{\"user\":\"nobody\"}", NULL, 0, 0);

    /* After deletes, history skips the holes. */
    cl_expect_ok_id(cl_request(c, "chat/hist/delete", "{\"user\":\"alice\",\"id\":7}",
                               "reply/hist"), 7);
    cl_expect_ok_id(cl_request(c, "chat/hist/delete", "{\"user\":\"bob\",\"id\":4}",
                               "reply/hist"), 4);
    expect_page(c, "{\"limit\":3}", (long long[]){ 3, 5, 6 }, 3, 3);
    expect_page(c, "{\"limit\":3,\"before\":3}", (long long[]){ 1, 2 }, 2, 0);
    expect_page(c, "{\"user\":\"alice\"}", (long long[]){ 1, 3, 5 }, 3, 0);
    cl_assert_hget(&env, "5", "chatroom:hist", "alice");
    h_mqtt_close(c);
}

/* mosquitto_rr, as a person at a terminal would use it. */
static void test_mosquitto_rr(void **state) {
    (void)state;
    char port[16], out[4096];
    MQTTClient c = cl_client(&env, "t-rr", "reply/rr-setup");
    cl_send(c, "rr", "dave", "for rr", "reply/rr-setup");
    h_mqtt_close(c);
    snprintf(port, sizeof(port), "%d", env.mqtt_port);
    char *argv[] = { "mosquitto_rr", "-h", "127.0.0.1", "-p", port, "-t",
        "chat/rr/history", "-e", "reply/rr", "-m", "{\"limit\":5}", "-W", "10", NULL };
    assert_int_equal(h_run(argv, out, sizeof(out), 15000), 0);
    json_t *r = cl_parse(out);
    assert_string_equal(cl_jstr(r, "room"), "rr");
    json_t *m = json_array_get(json_object_get(r, "messages"), 0);
    assert_string_equal(cl_jstr(m, "text"), "for rr");
    assert_string_equal(cl_jstr(m, "user"), "dave");
    json_decref(r);
}

/* ==================== Delete ==================== */

static void test_delete(void **state) {
    (void)state;
    MQTTClient c = cl_client(&env, "t-del", "reply/del");
    MQTTClient sub = cl_client(&env, "t-del-sub", "chat/del/msgs");
    assert_int_equal(cl_send(c, "del", "alice", "mine", "reply/del"), 1);
    assert_int_equal(cl_send(c, "del", "bob", "his", "reply/del"), 2);
    for (int i = 0; i < 2; i++) free(h_receive(sub, CL_WAIT_MS, NULL, NULL));

    cl_expect_error(cl_request(c, "chat/del/delete", "{\"user\":\"bob\",\"id\":1}", "reply/del"),
                    "forbidden", "bob deletes alice's");
    cl_assert_hget(&env, "mine", "chatroom:del:1", "content");

    /* The author deletes: the ok reply, and the room's deleted notice. */
    cl_expect_ok_id(cl_request(c, "chat/del/delete", "{\"user\":\"alice\",\"id\":1}",
                               "reply/del"), 1);
    char *doc = h_receive(sub, CL_WAIT_MS, NULL, NULL);
    json_t *notice = cl_parse(doc);
    assert_true(json_is_true(json_object_get(notice, "deleted")));
    assert_int_equal(cl_jint(notice, "id"), 1);
    assert_string_equal(cl_jstr(notice, "room"), "del");
    json_decref(notice);
    free(doc);

    assert_int_equal(h_redis_count(&env, "chatroom:del:1"), 0);
    cl_assert_hget(&env, NULL, "chatroom:del:alice", "1");
    cl_assert_hget(&env, NULL, "chatroom:del", "alice");
    cl_assert_hget(&env, "2", "chatroom:del", "bob");

    cl_expect_error(cl_request(c, "chat/del/delete", "{\"user\":\"alice\",\"id\":1}",
                               "reply/del"), "not_found", "deleted already");
    cl_expect_error(cl_request(c, "chat/del/delete", "{\"user\":\"alice\",\"id\":99}",
                               "reply/del"), "not_found", "never sent");
    h_mqtt_close(sub);
    h_mqtt_close(c);
}

/* ==================== Refusals ==================== */

struct bad_case {
    const char *topic;
    const char *payload;
    const char *code;
};

/* Every refusal gets its error code on the reply topic and writes nothing. */
static void test_bad_input(void **state) {
    (void)state;
    static char long_text[4200], long_user[200], long_cmid[200];
    snprintf(long_text, sizeof(long_text), "{\"user\":\"alice\",\"text\":\"%4097s\"}", "x");
    snprintf(long_user, sizeof(long_user), "{\"user\":\"%65s\",\"text\":\"hi\"}", "u");
    snprintf(long_cmid, sizeof(long_cmid),
             "{\"user\":\"alice\",\"text\":\"hi\",\"client_msg_id\":\"%65s\"}", "c");
    for (char *p = long_user; *p; p++) if (*p == ' ') *p = 'u';
    for (char *p = long_cmid; *p; p++) if (*p == ' ') *p = 'c';
    const struct bad_case cases[] = {
        { "chat/bad/send", "not json", "invalid_json" },
        { "chat/bad/send", "", "invalid_json" },
        { "chat/bad/send", "{\"user\":\"alice\",\"text\":\"\xff\xfe\"}", "invalid_utf8" },
        { "chat/bad/send", "{\"user\":\"al\xc0\xafice\",\"text\":\"x\"}", "invalid_utf8" },
        { "chat/bad/send", "[1,2]", "not_object" },
        { "chat/bad/send", "\"text\"", "not_object" },
        { "chat/bad/send", "{\"text\":\"hi\"}", "invalid_user" },
        { "chat/bad/send", "{\"user\":5,\"text\":\"hi\"}", "invalid_user" },
        { "chat/bad/send", "{\"user\":\"12345\",\"text\":\"hi\"}", "invalid_user" },
        { "chat/bad/send", "{\"user\":\"messages\",\"text\":\"hi\"}", "invalid_user" },
        { "chat/bad/send", "{\"user\":\"a:b\",\"text\":\"hi\"}", "invalid_user" },
        { "chat/bad/send", "{\"user\":\"a b\",\"text\":\"hi\"}", "invalid_user" },
        { "chat/bad/send", "{\"user\":\"a{b}\",\"text\":\"hi\"}", "invalid_user" },
        { "chat/bad/send", "{\"user\":\"a\\u0001b\",\"text\":\"hi\"}", "invalid_user" },
        { "chat/bad/send", long_user, "invalid_user" },
        { "chat/bad/send", "{\"user\":\"alice\"}", "invalid_text" },
        { "chat/bad/send", "{\"user\":\"alice\",\"text\":7}", "invalid_text" },
        { "chat/bad/send", "{\"user\":\"alice\",\"text\":\"\"}", "empty_text" },
        { "chat/bad/send", long_text, "text_too_long" },
        { "chat/bad/send", long_cmid, "invalid_client_msg_id" },
        { "chat/bad/send", "{\"user\":\"alice\",\"text\":\"a\\u0000b\"}", "invalid_json" },
        { "chat/bad/send", "{\"user\":\"alice\",\"user\":\"bob\",\"text\":\"x\"}", "invalid_json" },
        { "chat/ba:d/send", "{\"user\":\"alice\",\"text\":\"hi\"}", "invalid_room" },
        { "chat/ba*d/send", "{\"user\":\"alice\",\"text\":\"hi\"}", "invalid_room" },
        { "chat/bad/history", "{\"limit\":\"x\"}", "invalid_limit" },
        { "chat/bad/history", "{\"limit\":0}", "invalid_limit" },
        { "chat/bad/history", "{\"before\":-3}", "invalid_before" },
        { "chat/bad/history", "{\"user\":\"a/b\"}", "invalid_user" },
        { "chat/bad/delete", "{\"user\":\"alice\"}", "invalid_id" },
        { "chat/bad/delete", "{\"user\":\"alice\",\"id\":\"1\"}", "invalid_id" },
        { "chat/bad/delete", "{\"id\":1}", "invalid_user" },
    };
    MQTTClient c = cl_client(&env, "t-bad", "reply/bad");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char what[160];
        snprintf(what, sizeof(what), "case %zu (%s)", i, cases[i].topic);
        cl_expect_error(cl_request(c, cases[i].topic, cases[i].payload, "reply/bad"),
                        cases[i].code, what);
    }
    /* Without a reply topic a refusal is only logged; a topic with extra
     * levels is not even delivered; a reply topic into the bridge's own
     * topics gets no answer at all. None of them stores anything. */
    assert_int_equal(h_publish(c, "chat/bad/send", "garbage", NULL, NULL), 0);
    assert_int_equal(h_publish(c, "chat/bad/x/send", "{\"user\":\"alice\",\"text\":\"hi\"}",
                               NULL, NULL), 0);
    assert_int_equal(h_publish(c, "chat/bad/send", "{\"user\":\"alice\",\"text\":\"hi\"}",
                               "chat/bad/send", NULL), 0);
    assert_int_equal(h_publish(c, "chat/bad/send",
        "{\"user\":\"alice\",\"text\":\"hi\",\"reply_to\":\"chat/lobby/msgs\"}", NULL, NULL), 0);
    /* The bridge is still up and the room still empty: the next good
     * message gets id 1. */
    assert_int_equal(cl_send(c, "bad", "alice", "good", "reply/bad"), 1);
    /* the one good message: 6 keys of the schema, its replay guard, the
     * room's adoption cursor, the read markers (the sender's own) and
     * the members */
    assert_int_equal(h_redis_count(&env, "chatroom:ba*"), 10);
    assert_int_equal(h_redis_count(&env, "chatroom:ba:d*"), 0);
    h_mqtt_close(c);
}

/* --check-config prints each problem with its line and exits 2. */
static void test_check_config(void **state) {
    (void)state;
    char path[300], out[4096];
    snprintf(path, sizeof(path), "%s/broken.yaml", env.dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("mqtt:\n  uri: tcp://127.0.0.1:1883\n  colour: blue\nredis:\n  port: 99999\n", f);
    fclose(f);
    char *bridge = getenv("CB_BRIDGE") ? getenv("CB_BRIDGE") : "build/chat-bridge";
    char *argv[] = { bridge, "--check-config", "-c", path, NULL };
    assert_int_equal(h_run(argv, out, sizeof(out), 10000), 2);
    assert_non_null(strstr(out, ":3:"));
    assert_non_null(strstr(out, "colour"));
    assert_non_null(strstr(out, ":5:"));
    assert_non_null(strstr(out, "redis.port"));

    char good[300];
    snprintf(good, sizeof(good), "%s/bridge.yaml", env.dir);
    char *argv2[] = { bridge, "--check-config", "-c", good, NULL };
    assert_int_equal(h_run(argv2, out, sizeof(out), 10000), 0);
}

/* ==================== Retention ==================== */

/* With retention.max_messages_per_room, a room keeps its newest messages
 * only, in every structure of the schema. Restarts the bridge. */
static void test_retention(void **state) {
    (void)state;
    assert_int_equal(h_stop_bridge(&env), 0);
    assert_int_equal(h_start_bridge(&env, "retention:\n  max_messages_per_room: 5\n"), 0);
    MQTTClient c = cl_client(&env, "t-ret", "reply/ret");
    for (int i = 1; i <= 12; i++)
        assert_int_equal(cl_send(c, "ret", i % 2 ? "amy" : "ben", "m", "reply/ret"), i);
    assert_int_equal(cl_rnum(&env, "ZCARD chatroom:ret:messages:ids"), 5);
    assert_int_equal(h_redis_count(&env, "chatroom:ret:7"), 0);
    assert_int_equal(h_redis_count(&env, "chatroom:ret:8"), 1);
    assert_int_equal(cl_rnum(&env, "HLEN chatroom:ret:amy"), 2);           /* 9 and 11 */
    assert_int_equal(cl_rnum(&env, "ZCARD chatroom:ret:ben:ids"), 3);      /* 8, 10, 12 */
    cl_assert_hget(&env, "11", "chatroom:ret", "amy");
    json_t *h = cl_request(c, "chat/ret/history", "{}", "reply/ret");
    json_t *msgs = json_object_get(h, "messages");
    assert_int_equal(json_array_size(msgs), 5);
    assert_int_equal(cl_jint(json_array_get(msgs, 0), "id"), 8);
    json_decref(h);
    h_mqtt_close(c);
}

/* ==================== Backpressure ==================== */

/* A tiny journal under a burst while Redis is paused: the journal fills,
 * Paho's callback blocks on it (holding Paho's lock) while the worker
 * publishes. Every message must still be stored once and republished
 * once, in order, without the bridge locking up. */
static void test_backpressure_burst(void **state) {
    (void)state;
    enum { N = 2000 };
    char extra[600], *lines = NULL;
    size_t len = 0;
    snprintf(extra, sizeof(extra), "limits:\n  batch_size: 1\njournal:\n"
             "  dir: %s/journal-bp\n  max_bytes: 65536\n  segment_bytes: 4096\n", env.dir);
    assert_int_equal(h_stop_bridge(&env), 0);
    assert_int_equal(h_start_bridge(&env, extra), 0);
    MQTTClient sub = cl_client(&env, "t-bp-sub", "chat/bp/msgs");

    FILE *f = open_memstream(&lines, &len);
    assert_non_null(f);
    for (int i = 0; i < N; i++)
        fprintf(f, "{\"user\":\"u%d\",\"text\":\"burst %d\"}\n", i % 7, i);
    fclose(f);
    redisReply *pause = h_redis(&env, "CLIENT PAUSE 2000 ALL");
    assert_non_null(pause);
    freeReplyObject(pause);
    cl_pub_lines(&env, "chat/bp/send", lines);
    free(lines);

    int seen = 0;
    for (char *doc; seen < N && (doc = h_receive(sub, 20000, NULL, NULL)) != NULL; seen++) {
        json_t *m = cl_parse(doc);
        assert_int_equal(cl_jint(m, "id"), seen + 1);
        json_decref(m);
        free(doc);
    }
    assert_int_equal(seen, N);
    char count[16];
    snprintf(count, sizeof(count), "%d", N);
    cl_assert_str(&env, count, "GET %s", "chatroom:bp:messages");
    assert_int_equal(cl_rnum(&env, "ZCARD chatroom:bp:messages:ids"), N);
    h_mqtt_close(sub);
}

/* ==================== Operations ==================== */

#define STATUS_TOPIC "chat/$bridge/chat-bridge-test/status"

/* The retained status document: states, journal, counts, latencies. */
static void test_status_document(void **state) {
    (void)state;
    MQTTClient c = cl_client(&env, "t-status", STATUS_TOPIC);
    char *doc = h_receive(c, CL_WAIT_MS, NULL, NULL);
    json_t *st = cl_parse(doc);
    assert_string_equal(cl_jstr(st, "client_id"), "chat-bridge-test");
    assert_true(json_is_true(json_object_get(st, "online")));
    assert_string_equal(cl_jstr(st, "mqtt"), "up");
    assert_string_equal(cl_jstr(st, "redis"), "up");
    assert_true(cl_jint(st, "uptime_s") >= 0);
    json_t *journal = json_object_get(st, "journal");
    assert_true(cl_jint(journal, "max") > 0);
    json_t *counts = json_object_get(st, "counts");
    assert_true(cl_jint(counts, "received") >= 0);
    json_t *lat = json_object_get(json_object_get(st, "latency_ms"), "end_to_end");
    assert_true(json_is_number(json_object_get(lat, "p99")));
    json_decref(st);
    free(doc);
    h_mqtt_close(c);
}

/* The broker restarted (without persistence: it forgets the retained
 * status): the bridge says it is online again as soon as it is back, not
 * at its next status_interval (30 s here). */
static void test_status_after_broker_restart(void **state) {
    (void)state;
    assert_int_equal(h_mqtt_stop(&env), 0);
    assert_int_equal(h_mqtt_start(&env), 0);
    MQTTClient c = NULL;
    for (int i = 0; i < 50 && c == NULL; i++) {      /* the broker listens again */
        c = h_mqtt_connect(&env, "t-status-2", 5);
        if (c == NULL) h_sleep_ms(100);
    }
    assert_non_null(c);
    assert_int_equal(h_subscribe(c, STATUS_TOPIC), 0);
    char *doc = h_receive(c, 15000, NULL, NULL);
    json_t *st = cl_parse(doc);
    assert_true(json_is_true(json_object_get(st, "online")));
    assert_string_equal(cl_jstr(st, "mqtt"), "up");
    json_decref(st);
    free(doc);
    h_mqtt_close(c);
}

/* Reload: a live limit changes at once, a refused file keeps the old
 * settings, a connection setting restarts the bridge without losing what
 * is sent meanwhile. */
static void test_reload(void **state) {
    (void)state;
    MQTTClient c = cl_client(&env, "t-reload", "reply/reload");
    assert_int_equal(h_write_bridge_config(&env, NULL, "limits:\n  max_text_bytes: 8\n"), 0);
    kill(env.bridge_pid, SIGHUP);
    json_t *r = NULL;
    for (int i = 0; i < 50; i++) {           /* until the reload took */
        r = cl_request(c, "chat/reload/send", "{\"user\":\"ann\",\"text\":\"0123456789\"}",
                       "reply/reload");
        if (json_is_false(json_object_get(r, "ok"))) break;
        json_decref(r);
        r = NULL;
        usleep(100000);
    }
    assert_non_null(r);
    cl_expect_error(r, "text_too_long", "10 bytes after the reload");
    long long before = cl_send(c, "reload", "ann", "short", "reply/reload");

    assert_int_equal(h_write_bridge_config(&env, NULL, "limits:\n  max_text_bytes: oops\n"), 0);
    kill(env.bridge_pid, SIGHUP);
    usleep(300000);
    cl_expect_error(cl_request(c, "chat/reload/send",
                               "{\"user\":\"ann\",\"text\":\"0123456789\"}", "reply/reload"),
                    "text_too_long", "10 bytes after a refused reload");

    /* An address change (same server, by name), with messages published
     * across the reconnect. */
    assert_int_equal(h_write_bridge_config(&env, "  host: localhost\n", NULL), 0);
    kill(env.bridge_pid, SIGHUP);
    for (int i = 0; i < 20; i++)
        assert_int_equal(h_publish(c, "chat/reload/send", "{\"user\":\"ann\",\"text\":\"across\"}",
                                   NULL, NULL), 0);
    long long after = cl_send(c, "reload", "ann", "0123456789", "reply/reload");
    assert_int_equal(after, before + 21);          /* all 20 stored, none lost */
    h_mqtt_close(c);
}

/* The last will: killed, the bridge is announced offline on its status
 * topic. Restarts the bridge afterwards. */
static void test_last_will(void **state) {
    (void)state;
    MQTTClient c = cl_client(&env, "t-will", STATUS_TOPIC);
    free(h_receive(c, CL_WAIT_MS, NULL, NULL));          /* the retained one */
    h_kill_bridge(&env);
    char *doc = h_receive(c, CL_WAIT_MS, NULL, NULL);
    json_t *st = cl_parse(doc);
    assert_true(json_is_false(json_object_get(st, "online")));
    assert_string_equal(cl_jstr(st, "client_id"), "chat-bridge-test");
    json_decref(st);
    free(doc);
    h_mqtt_close(c);
    assert_int_equal(h_restart_bridge(&env), 0);
}

/* ==================== Set-up ==================== */

static int setup(void **state) {
    (void)state;
    return cl_start(&env, NULL);
}

/* Stopping the bridge must be clean (h_finish). */
static int teardown(void **state) {
    (void)state;
    return h_finish(&env);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_stores_schema),
        cmocka_unit_test(test_ids_per_room),
        cmocka_unit_test(test_mqtt311_reply_to),
        cmocka_unit_test(test_history_paging),
        cmocka_unit_test(test_mosquitto_rr),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_check_config),
        cmocka_unit_test(test_status_document),
        cmocka_unit_test(test_status_after_broker_restart),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_last_will),
        cmocka_unit_test(test_retention),            /* restarts the bridge */
        cmocka_unit_test(test_backpressure_burst),   /* restarts the bridge: last */
    };
    return cmocka_run_group_tests_name("integration", tests, setup, teardown);
}
