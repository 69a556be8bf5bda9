/* test_identity.c -- who may talk as whom, against a real mosquitto that
 * runs the shipped example (config/secure/acl, a password file made with
 * mosquitto_passwd) and a bridge with identity "topic":
 *
 *   - alice posts and deletes as alice;
 *   - alice cannot post as bob: the broker drops chat/<room>/send/bob from
 *     her, and the bridge refuses a payload "user" that is not the topic's
 *     sender (user_mismatch);
 *   - alice cannot delete bob's message, by either road;
 *   - alice edits her own message, marks her own reading and lists her own
 *     rooms and a room's members; she can do none of it as bob;
 *   - a client without an account cannot connect.
 *
 * Then identity "payload" on an open broker, to pin down what the README
 * says of it: the payload's user is trusted as written. And the bound on
 * one history reply (limits.max_reply_bytes). */
#include <setjmp.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "harness.h"
#include "sys.h"

#define WAIT_MS 5000
#define QUIET_MS 500

static struct h_env env;
static char pwdir[] = "/tmp/chat-bridge-pw.XXXXXX";

/* ==================== Helpers ==================== */

/* A received document as JSON; fails the test when it is not. */
static json_t *parse(char *doc) {
    json_error_t err;
    json_t *j;

    if (doc == NULL) fail_msg("no document received");
    j = json_loads(doc, 0, &err);
    if (j == NULL) fail_msg("not JSON: %s (%s)", doc, err.text);
    free(doc);
    return j;
}

/* A connected client of account user (password "<user>-pw"). */
static MQTTClient login(const char *user) {
    char pass[64];
    MQTTClient c;

    snprintf(pass, sizeof(pass), "%s-pw", user);
    c = h_mqtt_connect_as(&env, user, 5, user, pass);
    if (c == NULL) fail_msg("%s cannot log in", user);
    return c;
}

/* Publish a request and return the reply on reply_topic (subscribed). */
static json_t *request(MQTTClient c, const char *topic, const char *payload,
                       const char *reply_topic) {
    assert_int_equal(h_publish(c, topic, payload, reply_topic, "c1"), 0);
    return parse(h_receive(c, WAIT_MS, NULL, NULL));
}

/* The {"ok":true,"id":N} reply's id, or the test fails. */
static long long ok_id(json_t *r) {
    long long id;

    if (!json_is_true(json_object_get(r, "ok")))
        fail_msg("not ok: %s", json_string_value(json_object_get(r, "error")));
    id = json_integer_value(json_object_get(r, "id"));
    json_decref(r);
    return id;
}

/* The refusal code of an {"ok":false} reply, compared with want. */
static void expect_refusal(json_t *r, const char *want) {
    const char *code = json_string_value(json_object_get(r, "error"));

    assert_true(json_is_false(json_object_get(r, "ok")));
    assert_non_null(code);
    assert_string_equal(code, want);
    json_decref(r);
}

/* The author Redis holds for message id of room, or NULL (free it). */
static char *author(const char *room, long long id) {
    redisReply *r = h_redis(&env, "HGET chatroom:%s:%lld user", room, id);
    char *s = r && r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;

    if (r) freeReplyObject(r);
    return s;
}

/* Write the password file with mosquitto_passwd (the README's recipe):
 * the bridge, a readiness probe, alice and bob, each "<name>-pw". */
static int write_passwords(char *path, size_t size) {
    static const char *const users[] = { "chat-bridge", "probe", "alice", "bob" };
    char out[512], pass[64];

    if (mkdtemp(pwdir) == NULL) return -1;
    snprintf(path, size, "%s/passwd", pwdir);
    if (sys_write_file(path, "") < 0) return -1;
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        char *argv[] = { "mosquitto_passwd", "-b", path, (char *)users[i], pass, NULL };

        snprintf(pass, sizeof(pass), "%s-pw", users[i]);
        if (h_run(argv, out, sizeof(out), 10000) != 0) {
            fprintf(stderr, "mosquitto_passwd: %s\n", out);
            return -1;
        }
    }
    return 0;
}

/* ==================== identity: topic, shipped ACL ==================== */

/* The broker with the shipped ACL and a password file; the bridge on its
 * own account with identity "topic"; the probe logs in as "probe". */
static int setup_topic(void **state) {
    char passwd[300], acl[PATH_MAX], extra[PATH_MAX + 512];
    struct h_server_opts o = { 0 };

    (void)state;
    if (realpath("config/secure/acl", acl) == NULL) {
        fprintf(stderr, "config/secure/acl not found (run from the top)\n");
        return -1;
    }
    if (write_passwords(passwd, sizeof(passwd)) < 0) return -1;
    /* As root, mosquitto would read the files as its own user, to whom
     * our private directory is closed: stay root then. */
    snprintf(extra, sizeof(extra), "per_listener_settings false\n"
             "allow_anonymous false\npassword_file %s\nacl_file %s\n%s", passwd, acl,
             geteuid() == 0 ? "user root\n" : "");
    o.mqtt_extra = extra;
    if (h_start_servers_opt(&env, &o) < 0) return -1;
    env.bridge_mqtt_keys = "  username: chat-bridge\n  password: chat-bridge-pw\n"
                           "  identity: topic\n";
    env.probe_user = "probe";
    env.probe_pass = "probe-pw";
    env.probe_reply = "reply/probe/ready";
    return h_start_bridge(&env, NULL);
}

static int teardown(void **state) {
    (void)state;
    int rc = h_finish(&env);
    memset(&env, 0, sizeof(env));
    if (pwdir[strlen(pwdir) - 1] != 'X') {
        char cmd[300];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pwdir);
        if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", pwdir);
    }
    return rc;
}

/* alice posts as alice: stored under her name, republished, her reply
 * reaches her private inbox. */
static void test_post_as_self(void **state) {
    MQTTClient alice = login("alice"), bob = login("bob");
    char *who;

    (void)state;
    assert_int_equal(h_subscribe(alice, "reply/alice/#"), 0);
    assert_int_equal(h_subscribe(bob, "chat/lobby/msgs"), 0);
    long long id = ok_id(request(alice, "chat/lobby/send/alice",
                                 "{\"text\":\"hello\"}", "reply/alice/1"));
    json_t *m = parse(h_receive(bob, WAIT_MS, NULL, NULL));
    assert_string_equal(json_string_value(json_object_get(m, "user")), "alice");
    assert_int_equal(json_integer_value(json_object_get(m, "id")), id);
    json_decref(m);
    who = author("lobby", id);
    assert_non_null(who);
    assert_string_equal(who, "alice");
    free(who);
    h_mqtt_close(alice);
    h_mqtt_close(bob);
}

/* alice cannot post as bob: the broker drops her publish to bob's send
 * topic, and the bridge refuses a payload that names bob on hers. */
static void test_cannot_post_as_other(void **state) {
    MQTTClient alice = login("alice");
    redisReply *r;

    (void)state;
    assert_int_equal(h_subscribe(alice, "reply/alice/#"), 0);
    h_publish(alice, "chat/forge/send/bob", "{\"text\":\"as bob\"}", "reply/alice/2", "c1");
    h_publish(alice, "chat/forge/send/bob", "{\"user\":\"bob\",\"text\":\"as bob\"}",
              NULL, NULL);
    expect_refusal(request(alice, "chat/forge/send/alice",
                           "{\"user\":\"bob\",\"text\":\"as bob\"}", "reply/alice/3"),
                   "user_mismatch");
    /* alice's own message after them: once it is stored, so would they be */
    assert_int_equal(ok_id(request(alice, "chat/forge/send/alice",
                                   "{\"user\":\"alice\",\"text\":\"me\"}",
                                   "reply/alice/4")), 1);
    r = h_redis(&env, "HGET chatroom:forge bob");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    assert_int_equal(h_redis_count(&env, "chatroom:forge:bob*"), 0);
    assert_null(h_receive(alice, QUIET_MS, NULL, NULL));   /* no other reply */
    h_mqtt_close(alice);
}

/* alice cannot delete bob's message: bob's delete topic is closed to her,
 * and through her own the bridge finds she is not the author. bob can. */
static void test_delete_only_own(void **state) {
    MQTTClient alice = login("alice"), bob = login("bob");
    char body[64], *who;

    (void)state;
    assert_int_equal(h_subscribe(alice, "reply/alice/#"), 0);
    assert_int_equal(h_subscribe(bob, "reply/bob/#"), 0);
    long long id = ok_id(request(bob, "chat/del/send/bob", "{\"text\":\"mine\"}",
                                 "reply/bob/1"));
    snprintf(body, sizeof(body), "{\"id\":%lld}", id);
    h_publish(alice, "chat/del/delete/bob", body, "reply/alice/5", "c1");
    expect_refusal(request(alice, "chat/del/delete/alice", body, "reply/alice/6"),
                   "forbidden");
    assert_null(h_receive(alice, QUIET_MS, NULL, NULL));
    who = author("del", id);
    assert_non_null(who);                  /* still there */
    free(who);
    assert_int_equal(ok_id(request(bob, "chat/del/delete/bob", body, "reply/bob/2")), id);
    assert_null(author("del", id));
    h_mqtt_close(alice);
    h_mqtt_close(bob);
}

/* A string member of a reply, or the test fails. */
static const char *jstr_of(json_t *r, const char *key) {
    const char *v = json_string_value(json_object_get(r, key));
    if (v == NULL) fail_msg("no string %s in the reply", key);
    return v;
}

/* The requests of issue #14 through the shipped ACL: alice edits her
 * message, marks the room read and lists her rooms and its members; bob's
 * edit, read and $rooms topics are closed to her (the broker drops the
 * publishes: no reply, nothing changed). */
static void test_own_edit_read_rooms(void **state) {
    MQTTClient alice = login("alice"), bob = login("bob");
    char body[96];
    (void)state;
    assert_int_equal(h_subscribe(alice, "reply/alice/#"), 0);
    assert_int_equal(h_subscribe(bob, "reply/bob/#"), 0);
    long long id = ok_id(request(alice, "chat/own/send/alice", "{\"text\":\"v1\"}",
                                 "reply/alice/7"));
    assert_int_equal(ok_id(request(bob, "chat/own/send/bob", "{\"text\":\"hi\"}",
                                   "reply/bob/3")), id + 1);
    snprintf(body, sizeof(body), "{\"id\":%lld,\"text\":\"v2\"}", id);
    assert_int_equal(ok_id(request(alice, "chat/own/edit/alice", body, "reply/alice/8")), id);
    h_publish(alice, "chat/own/edit/bob", body, "reply/alice/9", "c1");
    h_publish(alice, "chat/own/read/bob", "{\"id\":1}", "reply/alice/10", "c1");
    h_publish(alice, "chat/$rooms/bob", "{}", "reply/alice/11", "c1");
    assert_null(h_receive(alice, QUIET_MS, NULL, NULL));
    json_t *r = request(alice, "chat/own/read/alice", "{\"id\":2}", "reply/alice/12");
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_int_equal(json_integer_value(json_object_get(r, "read")), 2);
    json_decref(r);
    r = request(alice, "chat/$rooms/alice", "{}", "reply/alice/13");
    json_t *rooms = json_object_get(r, "rooms");
    assert_int_equal(json_array_size(rooms), 3);   /* lobby, forge, own */
    assert_string_equal(jstr_of(json_array_get(rooms, 0), "room"), "own");   /* newest */
    json_decref(r);
    r = request(alice, "chat/own/members", "{}", "reply/alice/14");
    assert_int_equal(json_array_size(json_object_get(r, "members")), 2);
    json_decref(r);
    redisReply *x = h_redis(&env, "HGET chatroom:own:%lld content", id);
    assert_non_null(x);
    assert_string_equal(x->str, "v2");
    freeReplyObject(x);
    x = h_redis(&env, "HGET chatroom:own:messages:read bob");
    assert_non_null(x);
    assert_string_equal(x->str, "2");        /* his own send's, not alice's 1 */
    freeReplyObject(x);
    h_mqtt_close(alice);
    h_mqtt_close(bob);
}

/* Without an account, or with a wrong password, nobody gets in. */
static void test_no_anonymous(void **state) {
    (void)state;
    assert_null(h_mqtt_connect(&env, "anon", 5));
    assert_null(h_mqtt_connect_as(&env, "eve", 5, "alice", "wrong"));
}

/* ==================== identity: payload, open broker ==================== */

/* An open broker and a bridge with identity "payload" (the default), and
 * history replies bounded to 4 KiB. */
static int setup_payload(void **state) {
    (void)state;
    if (h_start_servers(&env) < 0) return -1;
    return h_start_bridge(&env, "limits:\n  max_reply_bytes: 4096\n"
                                "  max_text_bytes: 2000\n");
}

/* In payload mode the payload's user is taken as written: mallory can
 * post as bob. This is the documented trust of that mode. */
static void test_payload_user_trusted(void **state) {
    MQTTClient mallory = h_mqtt_connect(&env, "mallory", 5);
    char *who;

    (void)state;
    assert_non_null(mallory);
    assert_int_equal(h_subscribe(mallory, "inbox/mallory"), 0);
    long long id = ok_id(request(mallory, "chat/trust/send",
                                 "{\"user\":\"bob\",\"text\":\"as bob\"}",
                                 "inbox/mallory"));
    who = author("trust", id);
    assert_non_null(who);
    assert_string_equal(who, "bob");
    free(who);
    /* the topic form of identity "topic" is not listened to here */
    h_publish(mallory, "chat/trust/send/bob", "{\"text\":\"x\"}", "inbox/mallory", "c1");
    assert_null(h_receive(mallory, QUIET_MS, NULL, NULL));
    h_mqtt_close(mallory);
}

/* One history page of 12 messages of 1 KB under a 4 KiB bound: each
 * reply stays within it and the pages still cover every message once. */
static void test_reply_bound(void **state) {
    MQTTClient c = h_mqtt_connect(&env, "pager", 5);
    char text[1001], body[1100];
    long long before = 0, seen = 0, pages = 0;

    (void)state;
    assert_non_null(c);
    assert_int_equal(h_subscribe(c, "inbox/pager"), 0);
    memset(text, 'x', 1000);
    text[1000] = '\0';
    snprintf(body, sizeof(body), "{\"user\":\"p\",\"text\":\"%s\"}", text);
    for (int i = 1; i <= 12; i++)
        assert_int_equal(ok_id(request(c, "chat/big/send", body, "inbox/pager")), i);
    do {
        char req[64];
        snprintf(req, sizeof(req), before ? "{\"limit\":12,\"before\":%lld}"
                                          : "{\"limit\":12}", before);
        assert_int_equal(h_publish(c, "chat/big/history", req, "inbox/pager", "c1"), 0);
        char *doc = h_receive(c, WAIT_MS, NULL, NULL);
        assert_non_null(doc);
        assert_true(strlen(doc) <= 4096);
        json_t *page = parse(doc), *msgs = json_object_get(page, "messages");
        size_t n = json_array_size(msgs);
        assert_true(n >= 1 && n < 12);
        for (size_t i = 0; i < n; i++)     /* oldest first, no gap */
            assert_int_equal(json_integer_value(json_object_get(
                json_array_get(msgs, i), "id")), 12 - seen - (long long)n + 1 + (long long)i);
        seen += (long long)n;
        before = json_integer_value(json_object_get(page, "next_before"));
        if (before) assert_int_equal(before, 12 - seen + 1);
        json_decref(page);
    } while (before && ++pages < 12);
    assert_int_equal(seen, 12);
    h_mqtt_close(c);
}

int main(void) {
    const struct CMUnitTest topic_mode[] = {
        cmocka_unit_test(test_post_as_self),
        cmocka_unit_test(test_cannot_post_as_other),
        cmocka_unit_test(test_delete_only_own),
        cmocka_unit_test(test_no_anonymous),
        cmocka_unit_test(test_own_edit_read_rooms),
    };

    const struct CMUnitTest payload_mode[] = {
        cmocka_unit_test(test_payload_user_trusted),
        cmocka_unit_test(test_reply_bound),
    };
    int failed = cmocka_run_group_tests_name("identity topic", topic_mode,
                                             setup_topic, teardown);

    return failed + cmocka_run_group_tests_name("identity payload", payload_mode,
                                                setup_payload, teardown);
}
