/* client.c -- a chat client's side of the integration tests (client.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "client.h"

/* The correlation data of every request (it must come back). */
#define CORRELATION "corr-1"

long long cl_now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ==================== JSON ==================== */

json_t *cl_parse(const char *doc) {
    json_error_t err;
    json_t *j;

    if (doc == NULL) fail_msg("nothing received");
    j = json_loads(doc, 0, &err);
    if (j == NULL) fail_msg("not JSON: %s (%s)", doc, err.text);
    return j;
}

long long cl_jint(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) fail_msg("%s is not an integer", key);
    return json_integer_value(v);
}

const char *cl_jstr(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) fail_msg("%s is not a string", key);
    return json_string_value(v);
}

/* ==================== MQTT ==================== */

MQTTClient cl_client(struct h_env *e, const char *id, const char *filter) {
    MQTTClient c = h_mqtt_connect(e, id, 5);
    assert_non_null(c);
    if (filter) assert_int_equal(h_subscribe(c, filter), 0);
    return c;
}

json_t *cl_request(MQTTClient c, const char *topic, const char *payload,
                   const char *reply_topic) {
    char *corr = NULL, *doc;
    json_t *j;

    assert_int_equal(h_publish(c, topic, payload, reply_topic, CORRELATION), 0);
    doc = h_receive(c, CL_WAIT_MS, NULL, &corr);
    if (doc == NULL) fail_msg("no reply to %.200s on %s", payload, topic);
    if (corr == NULL || strcmp(corr, CORRELATION) != 0) fail_msg("correlation lost: %s", doc);
    free(corr);
    j = cl_parse(doc);
    free(doc);
    return j;
}

json_t *cl_ask(MQTTClient c, const char *room, const char *leaf, const char *payload) {
    char topic[160], reply[160];

    snprintf(topic, sizeof(topic), "chat/%s/%s", room, leaf);
    snprintf(reply, sizeof(reply), "reply/%s", room);
    return cl_request(c, topic, payload, reply);
}

long long cl_send(MQTTClient c, const char *room, const char *user, const char *text,
                  const char *reply_topic) {
    char topic[160], reply[160], payload[512];
    json_t *r;
    long long id;

    snprintf(topic, sizeof(topic), "chat/%s/send", room);
    snprintf(reply, sizeof(reply), "reply/%s", room);
    snprintf(payload, sizeof(payload), "{\"user\":\"%s\",\"text\":\"%s\"}", user, text);
    r = cl_request(c, topic, payload, reply_topic ? reply_topic : reply);
    if (!json_is_true(json_object_get(r, "ok")))
        fail_msg("send refused: %s", json_string_value(json_object_get(r, "error")));
    id = cl_jint(r, "id");
    json_decref(r);
    return id;
}

void cl_expect_ok_id(json_t *r, long long id) {
    if (!json_is_true(json_object_get(r, "ok")))
        fail_msg("refused: %s", json_string_value(json_object_get(r, "error")));
    assert_int_equal(cl_jint(r, "id"), id);
    json_decref(r);
}

void cl_expect_error(json_t *r, const char *code, const char *what) {
    const char *got = json_string_value(json_object_get(r, "error"));

    if (!json_is_false(json_object_get(r, "ok")) || got == NULL || strcmp(got, code) != 0)
        fail_msg("%s: got %s, expected %s", what, got ? got : "(no error)", code);
    assert_true(strlen(cl_jstr(r, "message")) > 0);
    json_decref(r);
}

void cl_pub_lines(struct h_env *e, const char *topic, const char *lines) {
    char path[300], port[16], out[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/lines.txt", e->dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(lines, f);
    fclose(f);
    snprintf(port, sizeof(port), "%d", e->mqtt_port);
    char *argv[] = { "sh", "-c", "mosquitto_pub -h 127.0.0.1 -p \"$0\" -q 1 -t \"$1\" -l < \"$2\"",
                     port, (char *)topic, path, NULL };
    if (h_run(argv, out, sizeof(out), 60000) != 0) fail_msg("mosquitto_pub: %s", out);
}

/* ==================== Redis ==================== */

char *cl_rstr(struct h_env *e, const char *fmt, ...) {
    va_list ap;
    redisReply *r;
    char *s;

    va_start(ap, fmt);
    r = redisvCommand(e->redis, fmt, ap);
    va_end(ap);
    s = r && r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    if (r) freeReplyObject(r);
    return s;
}

long long cl_rnum(struct h_env *e, const char *fmt, ...) {
    va_list ap;
    redisReply *r;
    long long n;

    va_start(ap, fmt);
    r = redisvCommand(e->redis, fmt, ap);
    va_end(ap);
    n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r) freeReplyObject(r);
    return n;
}

/* The string reply of the command fmt/ap must be expect (NULL: none). The
 * formats the tests use (%s, %lld) print as the command was sent. */
static void assert_vstr(struct h_env *e, const char *expect, const char *fmt, va_list ap) {
    char cmd[256];
    va_list copy;
    redisReply *r;

    va_copy(copy, ap);
    vsnprintf(cmd, sizeof(cmd), fmt, copy);
    va_end(copy);
    r = redisvCommand(e->redis, fmt, ap);
    const char *s = r && r->type == REDIS_REPLY_STRING ? r->str : NULL;
    if (expect == NULL && s != NULL) fail_msg("%s: %s, expected nothing", cmd, s);
    if (expect != NULL && (s == NULL || strcmp(s, expect) != 0))
        fail_msg("%s: %s, expected %s", cmd, s ? s : "(nil)", expect);
    if (r) freeReplyObject(r);
}

void cl_assert_str(struct h_env *e, const char *expect, const char *fmt, ...) {
    va_list ap;

    va_start(ap, fmt);
    assert_vstr(e, expect, fmt, ap);
    va_end(ap);
}

void cl_assert_hget(struct h_env *e, const char *expect, const char *key, const char *field) {
    cl_assert_str(e, expect, "HGET %s %s", key, field);
}

/* ==================== The seed's own writer ==================== */

redisContext *cl_seed_connect(struct h_env *e) {
    redisContext *c = redisConnect("127.0.0.1", e->redis_port);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    return c;
}

long long cl_seed_cmd(redisContext *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) fail_msg("redis: %s", r->str);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return v;
}

long long cl_seed_begin(redisContext *c, const char *room, const char *user,
                        const char *text) {
    long long n = cl_seed_cmd(c, "INCR chatroom:%s:messages", room);
    cl_seed_cmd(c, "HSET chatroom:%s %s %lld", room, user, n);
    cl_seed_cmd(c, "HSET chatroom:%s:%s %lld %s", room, user, n, text);
    return n;
}

void cl_seed_finish(redisContext *c, const char *room, long long n, const char *text) {
    cl_seed_cmd(c, "HSET chatroom:%s:%lld content %s", room, n, text);
    cl_seed_cmd(c, "HSET chatroom:%s:%lld timestamp %lld", room, n, (long long)time(NULL));
}

long long cl_seed_send(redisContext *c, const char *room, const char *user,
                       const char *text) {
    long long n = cl_seed_begin(c, room, user, text);
    cl_seed_finish(c, room, n, text);
    return n;
}

/* ==================== Set-up ==================== */

int cl_start(struct h_env *e, const char *mqtt_keys) {
    memset(e, 0, sizeof(*e));
    if (h_start_servers(e) < 0) return -1;
    e->bridge_mqtt_keys = mqtt_keys;
    return h_start_bridge(e, NULL);
}
