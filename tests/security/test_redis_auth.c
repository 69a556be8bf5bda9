/* test_redis_auth.c -- the bridge's credentials for Redis, against a real
 * redis-server:
 *
 *   - requirepass, the password read from a password_file;
 *   - a Redis 6 ACL user limited to the bridge's key prefix, over the
 *     Unix socket;
 *   - a wrong password: a clear error in the log, retried until the
 *     password is right, and no secret in the log at any point;
 *   - a password_file others may read: the bridge refuses to start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "sys.h"

#define STORE_WAIT_MS 20000

static struct h_env env;

/* ==================== Helpers ==================== */

/* A Redis command whose reply must be +OK. */
static void redis_ok(const char *cmd) {
    redisReply *r = h_redis(&env, cmd);

    assert_non_null(r);
    if (r->type != REDIS_REPLY_STATUS) fail_msg("%s: %s", cmd, r->str ? r->str : "?");
    freeReplyObject(r);
}

/* Write secret into <dir>/name with the given mode; the path into path. */
static void write_secret(char *path, size_t size, const char *name,
                         const char *secret, mode_t mode) {
    snprintf(path, size, "%s/%s", env.dir, name);
    assert_int_equal(sys_write_file(path, secret), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* Publish one chat message to room as user through the broker (QoS 1). */
static void post(const char *room, const char *user) {
    char topic[128], body[128];
    MQTTClient c = h_mqtt_connect(&env, "poster", 5);

    assert_non_null(c);
    snprintf(topic, sizeof(topic), "chat/%s/send", room);
    snprintf(body, sizeof(body), "{\"user\":\"%s\",\"text\":\"hi\"}", user);
    assert_int_equal(h_publish(c, topic, body, NULL, NULL), 0);
    h_mqtt_close(c);
}

/* Wait until message 1 of room is stored; 1 when it is. */
static int stored(const char *room) {
    for (int waited = 0; waited < STORE_WAIT_MS; waited += 100) {
        redisReply *r = h_redis(&env, "EXISTS chatroom:%s:1", room);
        int yes = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;

        if (r) freeReplyObject(r);
        if (yes) return 1;
        h_sleep_ms(100);
    }
    return 0;
}

/* No secret of this test may ever reach the bridge's log. */
static void log_has_no_secret(void) {
    static const char *const secrets[] = { "rp-secret-1", "acl-secret-2",
                                           "wrong-secret-3" };
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        if (h_log_wait(&env, secrets[i], 1, 0) != 0)
            fail_msg("the log holds the secret %s", secrets[i]);
}

static int setup(void **state) {
    struct h_server_opts o = { .redis_unix = 1 };

    (void)state;
    return h_start_servers_opt(&env, &o);
}

static int teardown(void **state) {
    (void)state;
    return h_finish(&env);
}

/* ==================== Tests ==================== */

/* requirepass, the bridge's password from a 0600 file. (Our own client
 * stays authenticated: CONFIG SET does not log connections out.) */
static void test_requirepass_file(void **state) {
    char path[300], keys[400];

    (void)state;
    redis_ok("CONFIG SET requirepass rp-secret-1");
    write_secret(path, sizeof(path), "redis-pw", "rp-secret-1\n", 0600);
    snprintf(keys, sizeof(keys), "  password_file: %s\n", path);
    assert_int_equal(h_start_bridge_ex(&env, keys, NULL), 0);
    post("pw", "alice");
    assert_true(stored("pw"));
    log_has_no_secret();
    assert_int_equal(h_stop_bridge(&env), 0);
}

/* An ACL user that may touch only chatroom:* keys, over the Unix socket:
 * everything the bridge does stays inside its prefix. */
static void test_acl_user_unix_socket(void **state) {
    char keys[600];

    (void)state;
    redis_ok("ACL SETUSER chat-bridge on >acl-secret-2 ~chatroom:* +@all -@dangerous");
    snprintf(keys, sizeof(keys), "  unix_socket: %s/redis.sock\n"
             "  username: chat-bridge\n  password: acl-secret-2\n", env.dir);
    assert_int_equal(h_start_bridge_ex(&env, keys, NULL), 0);
    post("acl", "bob");
    assert_true(stored("acl"));
    log_has_no_secret();
    assert_int_equal(h_stop_bridge(&env), 0);
}

/* A wrong password: the log says Redis refused it, the bridge keeps
 * trying, and stores what it holds once the password is right. */
static void test_wrong_password(void **state) {
    (void)state;
    assert_int_equal(h_write_bridge_config(&env, "  password: wrong-secret-3\n", NULL), 0);
    assert_int_equal(h_spawn_bridge(&env), 0);
    assert_true(h_log_wait(&env, "refused the bridge's credentials", 1, 15000) >= 1);
    assert_true(h_log_wait(&env, "WRONGPASS", 1, 0) >= 1);
    post("late", "carol");                    /* journaled meanwhile */
    h_sleep_ms(1500);                         /* a retry or two */
    assert_true(h_bridge_alive(&env));
    redisReply *r = h_redis(&env, "EXISTS chatroom:late:1");
    assert_non_null(r);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    redis_ok("CONFIG SET requirepass wrong-secret-3");   /* now it is right */
    assert_true(stored("late"));
    log_has_no_secret();
    assert_int_equal(h_stop_bridge(&env), 0);
    redis_ok("CONFIG SET requirepass rp-secret-1");
}

/* A password file others may read has leaked: refuse to start, say why. */
static void test_readable_password_file(void **state) {
    char path[300], keys[400], out[2048], conf[300];

    (void)state;
    write_secret(path, sizeof(path), "open-pw", "rp-secret-1\n", 0644);
    snprintf(keys, sizeof(keys), "  password_file: %s\n", path);
    assert_int_equal(h_write_bridge_config(&env, keys, NULL), 0);
    snprintf(conf, sizeof(conf), "%s/bridge.yaml", env.dir);
    char *argv[] = { getenv("CB_BRIDGE") ? getenv("CB_BRIDGE") : "build/chat-bridge",
                     "--check-config", "-c", conf, NULL };
    assert_int_equal(h_run(argv, out, sizeof(out), 10000), 2);
    assert_non_null(strstr(out, "redis.password_file"));
    assert_non_null(strstr(out, "is accessible by others"));
    assert_null(strstr(out, "rp-secret-1"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requirepass_file),
        cmocka_unit_test(test_acl_user_unix_socket),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_readable_password_file),
    };

    return cmocka_run_group_tests_name("redis credentials", tests, setup, teardown);
}
