/* test_clients.c -- what chat clients need beyond send/history/delete
 * (issue #14), against a real redis-server, mosquitto and bridge:
 *
 *   Catch-up   chat/<room>/history with "after": the oldest page of ids
 *              above it, "next_after" until null. A client that saw id 100
 *              catches up on 1000 more, page by page (default limit, 100,
 *              one cut to limits.history_max), every id once and in order;
 *              by user; the range after < id < before; bad "after" values
 *              refused with invalid_after, writing nothing.
 *   Edits      chat/<room>/edit: the author only; the reply, the republish
 *              with the original ts and "edited", the Redis fields, history;
 *              every refusal writes nothing; a repeated client_msg_id
 *              changes nothing; edits journaled before a SIGKILL are
 *              applied once after the restart.
 *   Reads      chat/<room>/read: the marker never moves back, "unread"
 *              counts other users' messages above it, a send moves the
 *              sender's own marker, the Redis hash; the room's read events
 *              are limited to one per user, room and second (a burst of 10
 *              markers gives the first at once and one more with the last).
 *   MQTT 3.1.1 reply_to/correlation in the JSON, for catch-up, read, edit.
 *   Hostile    malformed edit/read/catch-up requests: each refused, nothing
 *              written, the bridge still answering afterwards.
 *   Members    chat/<room>/members: 50 members (40 who sent, 10 who only
 *              marked read), by name in byte order, paged by 20, by 7 and
 *              from a name that is no member's, each with its last_id,
 *              read and last_seen; a room the seed's own commands wrote
 *              before any members request (the index built from chatroom:R
 *              and the markers), joined later through the bridge and the
 *              seed; bad limit/after refused, nothing written.
 *   Rooms      chat/$rooms: a user active in 30 rooms (sent, or only
 *              marked read), reordered by another user's later messages;
 *              paged by 7 with next_before until null: every room once,
 *              newest last message first, never splitting a millisecond,
 *              with last_id, read, unread and the last message; a user
 *              without rooms; bad user/before/limit; rooms named '$...'
 *              refused for every request, nothing written.
 *   Identity   a second group with mqtt.identity "topic":
 *              chat/<room>/edit/<user>, chat/<room>/read/<user> and
 *              chat/$rooms/<user>.
 *
 * Each test uses rooms of its own; messages filled in bulk are by "alice"
 * (odd ids) and "bob" (even ids) with text "m<id>". Every wait is bounded;
 * nothing asserts a duration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "client.h"

#define MAX_PAGES 64               /* bound of every catch-up loop */
#define USER_OF(i) ((i) % 2 ? "alice" : "bob")

static struct h_env env;

/* ==================== Helpers: requests ==================== */

/* Messages first..last into a room whose last id is first - 1, "m<id>" by
 * USER_OF(id): all but the last without a reply (mosquitto_pub), the last
 * with one, from another client once those were acknowledged: its id
 * proves every one before it stored with the expected id. */
static void fill(MQTTClient c, const char *room, long long first, long long last) {
    char topic[160], text[32], *lines = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&lines, &len);

    assert_non_null(f);
    for (long long i = first; i < last; i++)
        fprintf(f, "{\"user\":\"%s\",\"text\":\"m%lld\"}\n", USER_OF(i), i);
    fclose(f);
    snprintf(topic, sizeof(topic), "chat/%s/send", room);
    if (len > 0) cl_pub_lines(&env, topic, lines);
    free(lines);
    snprintf(text, sizeof(text), "m%lld", last);
    assert_int_equal(cl_send(c, room, USER_OF(last), text, NULL), last);
}

/* An edit request; the reply. */
static json_t *edit(MQTTClient c, const char *room, const char *user, long long id,
                    const char *text, const char *cmid) {
    char payload[512], cm[160] = "";

    if (cmid) snprintf(cm, sizeof(cm), ",\"client_msg_id\":\"%s\"", cmid);
    snprintf(payload, sizeof(payload), "{\"user\":\"%s\",\"id\":%lld,\"text\":\"%s\"%s}",
             user, id, text, cm);
    return cl_ask(c, room, "edit", payload);
}

/* An accepted edit of id: its "edited" (Unix ms). */
static long long edit_ok(MQTTClient c, const char *room, const char *user, long long id,
                         const char *text, const char *cmid) {
    json_t *r = edit(c, room, user, id, text, cmid);
    long long ms;

    if (!json_is_true(json_object_get(r, "ok")))
        fail_msg("edit refused: %s", json_string_value(json_object_get(r, "error")));
    assert_int_equal(cl_jint(r, "id"), id);
    ms = cl_jint(r, "edited");
    assert_true(ms > 1700000000000LL);
    json_decref(r);
    return ms;
}

/* A read marker request; the reply must be {"ok":true,"read":read,
 * "unread":unread}. */
static void expect_read(MQTTClient c, const char *room, const char *user, long long id,
                        long long read, long long unread) {
    char payload[256];
    json_t *r;

    snprintf(payload, sizeof(payload), "{\"user\":\"%s\",\"id\":%lld}", user, id);
    r = cl_ask(c, room, "read", payload);
    if (!json_is_true(json_object_get(r, "ok")))
        fail_msg("%s read %lld refused: %s", user, id,
                 json_string_value(json_object_get(r, "error")));
    if (cl_jint(r, "read") != read || cl_jint(r, "unread") != unread)
        fail_msg("%s read %lld in %s: read %lld unread %lld, expected %lld and %lld", user,
                 id, room, cl_jint(r, "read"), cl_jint(r, "unread"), read, unread);
    json_decref(r);
}

/* ==================== Helpers: Redis ==================== */

static void assert_hget_ll(long long expect, const char *key, const char *field) {
    char want[32];

    snprintf(want, sizeof(want), "%lld", expect);
    cl_assert_hget(&env, want, key, field);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Append the names of the keys matching pattern to keys[*n..max). */
static void add_keys(const char *pattern, char **keys, size_t *n, size_t max) {
    redisReply *r = redisCommand(env.redis, "KEYS %s", pattern);

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements && *n < max; i++)
        keys[(*n)++] = strdup(r->element[i]->str);
    freeReplyObject(r);
}

/* Every key of room with its DUMP, sorted, as one string (free it). Left
 * out: the journal's replay guard and the adoption cursor, which the
 * bridge moves on its own (checkpoints, keyspace notifications). */
static char *snapshot(const char *room) {
    char pattern[160], *keys[4096], *buf = NULL;
    size_t n = 0, len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    snprintf(pattern, sizeof(pattern), "chatroom:%s", room);
    add_keys(pattern, keys, &n, 4096);
    snprintf(pattern, sizeof(pattern), "chatroom:%s:*", room);
    add_keys(pattern, keys, &n, 4096);
    qsort(keys, n, sizeof(keys[0]), cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (!strstr(keys[i], ":messages:journal:") && !strstr(keys[i], ":messages:cursor")) {
            redisReply *d = redisCommand(env.redis, "DUMP %s", keys[i]);
            assert_non_null(d);
            fprintf(f, "%s=", keys[i]);
            for (size_t b = 0; d->type == REDIS_REPLY_STRING && b < d->len; b++)
                fprintf(f, "%02x", (unsigned char)d->str[b]);
            fputc('\n', f);
            freeReplyObject(d);
        }
        free(keys[i]);
    }
    fclose(f);
    return buf;
}

/* The room must be as the snapshot before (which is released). */
static void assert_unchanged(const char *room, char *before) {
    char *after = snapshot(room);

    if (strcmp(before, after) != 0)
        fail_msg("room %s changed:\nbefore:\n%.2000s\nafter:\n%.2000s", room, before, after);
    free(before);
    free(after);
}

/* ==================== Catch-up ==================== */

/* One message of a filled room: fields and author by its id. */
static void check_filled(json_t *m, const char *room) {
    long long id = cl_jint(m, "id");
    char text[32];

    snprintf(text, sizeof(text), "m%lld", id);
    assert_string_equal(cl_jstr(m, "room"), room);
    assert_string_equal(cl_jstr(m, "user"), USER_OF(id));
    assert_string_equal(cl_jstr(m, "text"), text);
    assert_true(cl_jint(m, "ts") > 1700000000000LL);
    assert_null(json_object_get(m, "edited"));
}

/* A catch-up page's next_after: 0 for null. */
static long long next_after(json_t *r) {
    json_t *na = json_object_get(r, "next_after");

    if (na == NULL) fail_msg("no next_after in a catch-up reply");
    if (json_object_get(r, "next_before") != NULL) fail_msg("next_before in a catch-up reply");
    if (json_is_null(na)) return 0;
    return cl_jint(r, "next_after");
}

/* Catch up on a filled room from after, following next_after until null
 * (at most MAX_PAGES pages); extra is added to each request (",\"limit\":
 * 100"). Every id goes into ids (at most max); returns how many, the pages
 * in *pages. Ids must rise, each page's next_after be its last id. */
static size_t catch_up(MQTTClient c, const char *room, long long after, const char *extra,
                       long long *ids, size_t max, int *pages) {
    char payload[256];
    size_t n = 0;

    for (*pages = 1; *pages <= MAX_PAGES; (*pages)++) {
        snprintf(payload, sizeof(payload), "{\"after\":%lld%s}", after, extra);
        json_t *r = cl_ask(c, room, "history", payload);
        json_t *msgs = json_object_get(r, "messages");
        long long last = after, next = next_after(r);

        assert_true(json_is_array(msgs));
        assert_string_equal(cl_jstr(r, "room"), room);
        for (size_t i = 0; i < json_array_size(msgs); i++) {
            json_t *m = json_array_get(msgs, i);
            if (cl_jint(m, "id") <= last) fail_msg("id %lld after %lld", cl_jint(m, "id"), last);
            last = cl_jint(m, "id");
            check_filled(m, room);
            if (n < max) ids[n] = last;
            n++;
        }
        json_decref(r);
        if (next == 0) return n;
        if (next != last || last == after) fail_msg("next_after %lld, last id %lld", next, last);
        after = next;
    }
    fail_msg("catch-up of %s not done within %d pages", room, MAX_PAGES);
    return n;
}

/* A whole catch-up must give exactly first, first+step, ... up to last, in
 * the given number of pages (0: any). */
static void expect_catch_up(MQTTClient c, const char *room, long long after, const char *extra,
                            long long first, long long last, long long step, int want_pages) {
    size_t max = (size_t)((last - first) / step + 1);
    long long *ids = calloc(max + 64, sizeof(*ids));
    int pages = 0;
    size_t n;

    assert_non_null(ids);
    n = catch_up(c, room, after, extra, ids, max + 64, &pages);
    if (n != max) fail_msg("after %lld%s: %zu ids, expected %zu", after, extra, n, max);
    for (size_t i = 0; i < n; i++)
        if (ids[i] != first + (long long)i * step)
            fail_msg("after %lld%s: id %lld at %zu", after, extra, ids[i], i);
    if (want_pages > 0 && pages != want_pages)
        fail_msg("after %lld%s: %d pages, expected %d", after, extra, pages, want_pages);
    free(ids);
}

/* One catch-up request: exactly these ids, then next_after (0: null). */
static void expect_page(MQTTClient c, const char *room, const char *payload,
                        const long long *ids, size_t n, long long next) {
    json_t *r = cl_ask(c, room, "history", payload);
    json_t *msgs = json_object_get(r, "messages");

    if (json_array_size(msgs) != n)
        fail_msg("%s: %zu messages, expected %zu", payload, json_array_size(msgs), n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(cl_jint(json_array_get(msgs, i), "id"), ids[i]);
        check_filled(json_array_get(msgs, i), room);
    }
    if (next_after(r) != next)
        fail_msg("%s: next_after %lld, expected %lld", payload, next_after(r), next);
    json_decref(r);
}

/* A client that saw id 100 catches up on the 1000 sent since, by pages of
 * the default size (50), of 100, and of a limit cut to 200. */
static void test_catchup_pages(void **state) {
    (void)state;
    MQTTClient c = cl_client(&env, "t-cu", "reply/cu");
    fill(c, "cu", 1, 100);
    long long seen = 100;
    fill(c, "cu", 101, 1100);
    expect_catch_up(c, "cu", seen, "", 101, 1100, 1, 20);
    expect_catch_up(c, "cu", seen, ",\"limit\":100", 101, 1100, 1, 10);
    expect_catch_up(c, "cu", seen, ",\"limit\":500", 101, 1100, 1, 5);
    /* only bob's (even ids; the room's last is his) */
    expect_catch_up(c, "cu", seen, ",\"limit\":100,\"user\":\"bob\"", 102, 1100, 2, 5);
    expect_page(c, "cu", "{\"after\":0,\"limit\":3}", (long long[]){ 1, 2, 3 }, 3, 3);
    expect_page(c, "cu", "{\"after\":1100}", NULL, 0, 0);
    expect_page(c, "cu", "{\"after\":5000}", NULL, 0, 0);
    expect_page(c, "cu", "{\"after\":9223372036854775807}", NULL, 0, 0);
    h_mqtt_close(c);
}

/* after < id < before, alone, by user, and with a hole from a delete. */
static void test_catchup_range(void **state) {
    (void)state;
    MQTTClient c = cl_client(&env, "t-cr", "reply/crange");
    fill(c, "crange", 1, 30);
    expect_page(c, "crange", "{\"after\":10,\"before\":21,\"limit\":4}",
                (long long[]){ 11, 12, 13, 14 }, 4, 14);
    expect_page(c, "crange", "{\"after\":14,\"before\":21,\"limit\":4}",
                (long long[]){ 15, 16, 17, 18 }, 4, 18);
    expect_page(c, "crange", "{\"after\":18,\"before\":21,\"limit\":4}",
                (long long[]){ 19, 20 }, 2, 0);
    /* a page that ends exactly at the end of the range */
    expect_page(c, "crange", "{\"after\":14,\"before\":19,\"limit\":4}",
                (long long[]){ 15, 16, 17, 18 }, 4, 0);
    expect_page(c, "crange", "{\"after\":10,\"before\":11}", NULL, 0, 0);
    expect_catch_up(c, "crange", 10, ",\"before\":21,\"limit\":2,\"user\":\"bob\"", 12, 20, 2, 3);
    expect_catch_up(c, "crange", 10, ",\"before\":21,\"user\":\"alice\"", 11, 19, 2, 1);

    cl_expect_ok_id(cl_ask(c, "crange", "delete", "{\"user\":\"bob\",\"id\":12}"), 12);
    expect_page(c, "crange", "{\"after\":10,\"before\":21,\"limit\":4}",
                (long long[]){ 11, 13, 14, 15 }, 4, 15);
    h_mqtt_close(c);
}

/* "after" must be an integer >= 0: invalid_after, nothing written. */
static void test_catchup_bad_after(void **state) {
    (void)state;
    static const char *const bad[] = {
        "{\"after\":-1}", "{\"after\":\"x\"}", "{\"after\":1.5}", "{\"after\":\"5\"}",
        "{\"after\":true}", "{\"after\":[1]}", "{\"after\":{}}", "{\"after\":1e2}",
        "{\"after\":-9223372036854775808}", "{\"after\":-1,\"before\":3,\"limit\":2}",
        "{\"after\":-1,\"user\":\"alice\"}",
    };
    MQTTClient c = cl_client(&env, "t-cbad", "reply/cbad");
    fill(c, "cbad", 1, 3);
    char *before = snapshot("cbad");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cl_expect_error(cl_ask(c, "cbad", "history", bad[i]), "invalid_after", bad[i]);
    assert_unchanged("cbad", before);
    expect_page(c, "cbad", "{\"after\":0}", (long long[]){ 1, 2, 3 }, 3, 0);
    h_mqtt_close(c);
}

/* ==================== Edits ==================== */

/* Wait for the room's next republish that is not a read event. */
static json_t *next_message(MQTTClient sub) {
    long long end = cl_now_ms() + CL_WAIT_MS;

    for (int i = 0; i < 100 && cl_now_ms() < end; i++) {
        char *doc = h_receive(sub, (int)(end - cl_now_ms()), NULL, NULL);
        if (doc == NULL) break;
        json_t *m = cl_parse(doc);
        free(doc);
        if (json_object_get(m, "read") == NULL) return m;
        json_decref(m);
    }
    fail_msg("no message republished");
    return NULL;
}

/* The Redis fields of an edited message. */
static void assert_edited(const char *room, const char *user, long long id, const char *text,
                          long long edited) {
    char key[160], field[32];

    snprintf(key, sizeof(key), "chatroom:%s:%s", room, user);
    snprintf(field, sizeof(field), "%lld", id);
    cl_assert_hget(&env, text, key, field);
    snprintf(key, sizeof(key), "chatroom:%s:%lld", room, id);
    cl_assert_hget(&env, text, key, "content");
    cl_assert_hget(&env, user, key, "user");
    if (edited > 0) assert_hget_ll(edited, key, "edited");
}

/* History (both directions) shows message 1 edited, message 2 not. */
static void check_edited_history(MQTTClient c, const char *payload, const char *text,
                                 long long edited) {
    json_t *r = cl_ask(c, "ed", "history", payload);
    json_t *msgs = json_object_get(r, "messages");

    assert_int_equal(json_array_size(msgs), 2);
    assert_int_equal(cl_jint(json_array_get(msgs, 0), "id"), 1);
    assert_string_equal(cl_jstr(json_array_get(msgs, 0), "text"), text);
    assert_int_equal(cl_jint(json_array_get(msgs, 0), "edited"), edited);
    assert_string_equal(cl_jstr(json_array_get(msgs, 1), "text"), "second");
    assert_null(json_object_get(json_array_get(msgs, 1), "edited"));
    json_decref(r);
}

/* The author edits: reply, republish with the original ts, Redis, history. */
static void test_edit(void **state) {
    (void)state;
    MQTTClient sub = cl_client(&env, "t-ed-sub", "chat/ed/msgs");
    MQTTClient c = cl_client(&env, "t-ed", "reply/ed");
    assert_int_equal(cl_send(c, "ed", "alice", "first", NULL), 1);
    assert_int_equal(cl_send(c, "ed", "bob", "second", NULL), 2);
    json_t *m = next_message(sub);
    assert_int_equal(cl_jint(m, "id"), 1);
    long long ts = cl_jint(m, "ts");
    json_decref(m);
    json_decref(next_message(sub));

    long long ms = edit_ok(c, "ed", "alice", 1, "first, edited", NULL);
    assert_true(ms >= ts);
    m = next_message(sub);
    assert_int_equal(cl_jint(m, "id"), 1);
    assert_string_equal(cl_jstr(m, "room"), "ed");
    assert_string_equal(cl_jstr(m, "user"), "alice");
    assert_string_equal(cl_jstr(m, "text"), "first, edited");
    assert_int_equal(cl_jint(m, "ts"), ts);
    assert_int_equal(cl_jint(m, "edited"), ms);
    json_decref(m);

    assert_edited("ed", "alice", 1, "first, edited", ms);
    assert_hget_ll(ts, "chatroom:ed:1", "timestamp_ms");
    check_edited_history(c, "{}", "first, edited", ms);
    check_edited_history(c, "{\"after\":0}", "first, edited", ms);

    long long ms2 = edit_ok(c, "ed", "alice", 1, "caf\xc3\xa9 \xe2\x9c\x93", NULL);
    assert_true(ms2 >= ms);
    assert_edited("ed", "alice", 1, "caf\xc3\xa9 \xe2\x9c\x93", ms2);
    char *n = cl_rstr(&env, "GET chatroom:ed:messages");
    assert_string_equal(n, "2");                 /* an edit is no new message */
    free(n);
    cl_assert_hget(&env, "1", "chatroom:ed", "alice");
    h_mqtt_close(c);
    h_mqtt_close(sub);
}

/* Every refusal of an edit, with its code; none writes anything. */
static void test_edit_refusals(void **state) {
    (void)state;
    static char too_long[4200 + 64], just_fits[4096 + 64];
    snprintf(too_long, sizeof(too_long), "{\"user\":\"alice\",\"id\":1,\"text\":\"%4097s\"}", "x");
    static const struct { const char *payload, *code; } cases[] = {
        { "{\"user\":\"bob\",\"id\":1,\"text\":\"mine now\"}", "forbidden" },
        { "{\"user\":\"alice\",\"id\":2,\"text\":\"mine now\"}", "forbidden" },
        { "{\"user\":\"alice\",\"id\":3,\"text\":\"deleted\"}", "not_found" },
        { "{\"user\":\"alice\",\"id\":4,\"text\":\"never\"}", "not_found" },
        { "{\"user\":\"alice\",\"id\":99,\"text\":\"never\"}", "not_found" },
        { "{\"user\":\"alice\",\"id\":1,\"text\":\"\"}", "empty_text" },
        { "{\"user\":\"alice\",\"id\":1,\"text\":7}", "invalid_text" },
        { "{\"user\":\"alice\",\"id\":1}", "invalid_text" },
        { "{\"user\":\"alice\",\"id\":1,\"text\":[\"x\"]}", "invalid_text" },
        { "{\"user\":\"alice\",\"text\":\"x\"}", "invalid_id" },
        { "{\"user\":\"alice\",\"id\":\"1\",\"text\":\"x\"}", "invalid_id" },
        { "{\"user\":\"alice\",\"id\":0,\"text\":\"x\"}", "invalid_id" },
        { "{\"user\":\"alice\",\"id\":-1,\"text\":\"x\"}", "invalid_id" },
        { "{\"user\":\"alice\",\"id\":1.5,\"text\":\"x\"}", "invalid_id" },
        { "{\"id\":1,\"text\":\"x\"}", "invalid_user" },
        { "{\"user\":5,\"id\":1,\"text\":\"x\"}", "invalid_user" },
        { "{\"user\":\"a:b\",\"id\":1,\"text\":\"x\"}", "invalid_user" },
        { "{\"user\":\"12345\",\"id\":1,\"text\":\"x\"}", "invalid_user" },
        { "{\"user\":\"messages\",\"id\":1,\"text\":\"x\"}", "invalid_user" },
    };
    MQTTClient c = cl_client(&env, "t-edr", "reply/edr");
    assert_int_equal(h_subscribe(c, "reply/edrnone"), 0);
    assert_int_equal(cl_send(c, "edr", "alice", "keep", NULL), 1);
    assert_int_equal(cl_send(c, "edr", "bob", "bobs", NULL), 2);
    assert_int_equal(cl_send(c, "edr", "alice", "gone", NULL), 3);
    cl_expect_ok_id(cl_ask(c, "edr", "delete", "{\"user\":\"alice\",\"id\":3}"), 3);

    char *before = snapshot("edr");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cl_expect_error(cl_ask(c, "edr", "edit", cases[i].payload), cases[i].code,
                        cases[i].payload);
    cl_expect_error(cl_ask(c, "edr", "edit", too_long), "text_too_long", "4097 bytes");
    assert_unchanged("edr", before);
    assert_int_equal(h_redis_count(&env, "chatroom:edr:3"), 0);

    /* a room that does not exist: not_found, and it still does not */
    cl_expect_error(cl_ask(c, "edrnone", "edit", "{\"user\":\"alice\",\"id\":1,\"text\":\"x\"}"),
                    "not_found", "no room");
    assert_int_equal(h_redis_count(&env, "chatroom:edrnone*"), 0);

    /* limits.max_text_bytes (4096) itself is accepted */
    snprintf(just_fits, sizeof(just_fits), "{\"user\":\"alice\",\"id\":1,\"text\":\"%4096s\"}", "y");
    json_t *r = cl_ask(c, "edr", "edit", just_fits);
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    assert_int_equal(cl_rnum(&env, "HSTRLEN chatroom:edr:1 content"), 4096);
    h_mqtt_close(c);
}

/* The room's republished edits (messages with "edited"; others are
 * skipped) up to the one with text last: the first must have text
 * first_text, none text never. */
static void expect_edit_events(MQTTClient sub, const char *first_text, const char *last,
                               const char *never) {
    for (int i = 0, edits = 0; i < 20; i++) {
        json_t *m = next_message(sub);
        const char *t = cl_jstr(m, "text");
        if (json_object_get(m, "edited") == NULL) {
            json_decref(m);
            continue;
        }
        if (strcmp(t, never) == 0) fail_msg("a refused edit was republished: %s", t);
        if (edits++ == 0 && strcmp(t, first_text) != 0) fail_msg("first edit heard: %s", t);
        if (strcmp(t, last) == 0) {
            json_decref(m);
            return;
        }
        json_decref(m);
    }
    fail_msg("edit %s not heard", last);
}

/* The same client_msg_id again for an edit of the room: ok, same id,
 * nothing changed, even with another text; other ids and rooms apply. */
static void test_edit_dedup(void **state) {
    (void)state;
    MQTTClient c = cl_client(&env, "t-edd", "reply/edd");
    assert_int_equal(h_subscribe(c, "reply/eddtwo"), 0);
    assert_int_equal(cl_send(c, "edd", "alice", "v0", NULL), 1);
    assert_int_equal(cl_send(c, "eddtwo", "alice", "w0", NULL), 1);
    MQTTClient sub = cl_client(&env, "t-edd-sub", "chat/edd/msgs");

    long long e1 = edit_ok(c, "edd", "alice", 1, "v1", "e-1");
    char *before = snapshot("edd");
    cl_expect_ok_id(edit(c, "edd", "alice", 1, "v1", "e-1"), 1);
    cl_expect_ok_id(edit(c, "edd", "alice", 1, "v2", "e-1"), 1);
    assert_unchanged("edd", before);
    assert_edited("edd", "alice", 1, "v1", e1);

    long long e3 = edit_ok(c, "edd", "alice", 1, "v3", "e-2");
    assert_true(e3 >= e1);
    assert_edited("edd", "alice", 1, "v3", e3);
    expect_edit_events(sub, "v1", "v3", "v2");

    /* the same client_msg_id in another room is another edit */
    edit_ok(c, "eddtwo", "alice", 1, "w1", "e-1");
    assert_edited("eddtwo", "alice", 1, "w1", 0);
    h_mqtt_close(sub);
    h_mqtt_close(c);
}

/* Poll (bounded) until the message's content is text. */
static void wait_content(const char *room, long long id, const char *text) {
    char *s = NULL;

    for (int i = 0; i < 100; i++) {
        s = cl_rstr(&env, "HGET chatroom:%s:%lld content", room, id);
        if (s && strcmp(s, text) == 0) break;
        free(s);
        s = NULL;
        h_sleep_ms(100);
    }
    if (s == NULL) fail_msg("%s:%lld never became %s", room, id, text);
    free(s);
}

/* Edits (and a send) acknowledged by the broker, then SIGKILL: after the
 * restart each is applied once, the last edit's text wins, no message is
 * added or duplicated, and a client's retry of an applied edit changes
 * nothing. Restarts the bridge. */
static void test_edit_after_kill(void **state) {
    (void)state;
    static const char *const edits[] = {
        "{\"user\":\"alice\",\"id\":1,\"text\":\"e1-a\",\"client_msg_id\":\"ek-1\"}",
        "{\"user\":\"alice\",\"id\":2,\"text\":\"e2-a\",\"client_msg_id\":\"ek-2\"}",
        "{\"user\":\"alice\",\"id\":1,\"text\":\"e1-b\",\"client_msg_id\":\"ek-3\"}",
        "{\"user\":\"alice\",\"text\":\"new\",\"client_msg_id\":\"ek-s\"}",    /* a send */
        "{\"user\":\"alice\",\"id\":1,\"text\":\"e1-c\",\"client_msg_id\":\"ek-4\"}",
        "{\"user\":\"alice\",\"id\":2,\"text\":\"e2-b\",\"client_msg_id\":\"ek-5\"}",
    };
    MQTTClient c = cl_client(&env, "t-ek", "reply/ek");
    assert_int_equal(cl_send(c, "ek", "alice", "one", NULL), 1);
    assert_int_equal(cl_send(c, "ek", "alice", "two", NULL), 2);
    assert_int_equal(cl_send(c, "ek", "bob", "three", NULL), 3);
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++)
        assert_int_equal(h_publish(c, i == 3 ? "chat/ek/send" : "chat/ek/edit", edits[i],
                                   NULL, NULL), 0);
    h_kill_bridge(&env);
    assert_int_equal(h_restart_bridge(&env), 0);

    wait_content("ek", 1, "e1-c");
    wait_content("ek", 2, "e2-b");
    cl_expect_ok_id(cl_ask(c, "ek", "edit", edits[2]), 1);          /* a retry of e1-b */
    assert_edited("ek", "alice", 1, "e1-c", 0);
    assert_edited("ek", "alice", 2, "e2-b", 0);
    char *n = cl_rstr(&env, "GET chatroom:ek:messages");
    assert_string_equal(n, "4");
    free(n);
    assert_int_equal(cl_rnum(&env, "ZCARD chatroom:ek:messages:ids"), 4);
    assert_int_equal(cl_rnum(&env, "HLEN chatroom:ek:alice"), 3);

    json_t *r = cl_ask(c, "ek", "history", "{\"after\":0}");
    json_t *msgs = json_object_get(r, "messages");
    static const char *const texts[] = { "e1-c", "e2-b", "three", "new" };
    assert_int_equal(json_array_size(msgs), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *m = json_array_get(msgs, i);
        assert_int_equal(cl_jint(m, "id"), (long long)i + 1);
        assert_string_equal(cl_jstr(m, "text"), texts[i]);
        assert_int_equal(json_object_get(m, "edited") != NULL, i < 2);
    }
    assert_int_equal(next_after(r), 0);
    json_decref(r);
    h_mqtt_close(c);
}

/* ==================== Read markers ==================== */

/* Markers never move back; unread counts other users' messages above the
 * marker; a send moves the sender's marker; deleted messages do not count. */
static void test_read_unread(void **state) {
    (void)state;
    MQTTClient c = cl_client(&env, "t-ur", "reply/ur");
    for (int i = 1; i <= 3; i++) assert_int_equal(cl_send(c, "ur", "alice", "a", NULL), i);
    cl_assert_hget(&env, "3", "chatroom:ur:messages:read", "alice");
    cl_assert_hget(&env, NULL, "chatroom:ur:messages:read", "bob");
    expect_read(c, "ur", "bob", 1, 1, 2);
    cl_assert_hget(&env, "1", "chatroom:ur:messages:read", "bob");
    assert_int_equal(cl_send(c, "ur", "bob", "b", NULL), 4);
    cl_assert_hget(&env, "4", "chatroom:ur:messages:read", "bob");
    expect_read(c, "ur", "bob", 2, 4, 0);               /* lower: not moved back */
    cl_assert_hget(&env, "4", "chatroom:ur:messages:read", "bob");
    expect_read(c, "ur", "alice", 3, 3, 1);
    expect_read(c, "ur", "alice", 4, 4, 0);
    assert_int_equal(cl_send(c, "ur", "alice", "a", NULL), 5);
    assert_int_equal(cl_send(c, "ur", "alice", "a", NULL), 6);
    expect_read(c, "ur", "bob", 4, 4, 2);
    expect_read(c, "ur", "bob", 5, 5, 1);
    expect_read(c, "ur", "bob", 6, 6, 0);
    expect_read(c, "ur", "alice", 2, 6, 0);
    expect_read(c, "ur", "carol", 2, 2, 4);             /* never sent, never read */
    cl_expect_error(cl_ask(c, "ur", "read", "{\"user\":\"bob\",\"id\":7}"), "invalid_id",
                    "above last");
    cl_assert_hget(&env, "6", "chatroom:ur:messages:read", "bob");
    assert_int_equal(cl_send(c, "ur", "bob", "b", NULL), 7);
    expect_read(c, "ur", "alice", 6, 6, 1);
    expect_read(c, "ur", "carol", 2, 2, 5);
    cl_expect_ok_id(cl_ask(c, "ur", "delete", "{\"user\":\"bob\",\"id\":4}"), 4);
    expect_read(c, "ur", "carol", 2, 2, 4);             /* 3, 5, 6, 7 */
    cl_assert_hget(&env, "6", "chatroom:ur:messages:read", "alice");
    cl_assert_hget(&env, "7", "chatroom:ur:messages:read", "bob");
    cl_assert_hget(&env, "2", "chatroom:ur:messages:read", "carol");
    assert_int_equal(cl_rnum(&env, "HLEN chatroom:ur:messages:read"), 3);
    h_mqtt_close(c);
}

/* Every refusal of a read marker, with its code; none writes anything. */
static void test_read_refusals(void **state) {
    (void)state;
    static const struct { const char *room, *payload, *code; } cases[] = {
        { "rbad", "{\"user\":\"alice\"}", "invalid_id" },
        { "rbad", "{\"user\":\"alice\",\"id\":0}", "invalid_id" },
        { "rbad", "{\"user\":\"alice\",\"id\":-1}", "invalid_id" },
        { "rbad", "{\"user\":\"alice\",\"id\":\"1\"}", "invalid_id" },
        { "rbad", "{\"user\":\"alice\",\"id\":1.5}", "invalid_id" },
        { "rbad", "{\"user\":\"alice\",\"id\":null}", "invalid_id" },
        { "rbad", "{\"user\":\"alice\",\"id\":3}", "invalid_id" },
        { "rbad", "{\"user\":\"alice\",\"id\":1000}", "invalid_id" },
        { "rbad", "{\"id\":1}", "invalid_user" },
        { "rbad", "{\"user\":5,\"id\":1}", "invalid_user" },
        { "rbad", "{\"user\":\"a:b\",\"id\":1}", "invalid_user" },
        { "rbad", "{\"user\":\"messages\",\"id\":1}", "invalid_user" },
        { "rbad", "{\"user\":\"4711\",\"id\":1}", "invalid_user" },
        { "rempty", "{\"user\":\"alice\",\"id\":1}", "invalid_id" },
    };
    MQTTClient c = cl_client(&env, "t-rbad", "reply/rbad");
    assert_int_equal(h_subscribe(c, "reply/rempty"), 0);
    fill(c, "rbad", 1, 2);
    char *before = snapshot("rbad");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cl_expect_error(cl_ask(c, cases[i].room, "read", cases[i].payload), cases[i].code,
                        cases[i].payload);
    assert_unchanged("rbad", before);
    assert_int_equal(h_redis_count(&env, "chatroom:rempty*"), 0);
    expect_read(c, "rbad", "carol", 2, 2, 0);
    h_mqtt_close(c);
}

#define MAX_EVENTS 64

struct read_ev {
    char room[32], user[32];
    long long read;
};

/* Keep a read event of the room's republishes (others are left out). */
static int keep_event(const char *doc, struct read_ev *ev) {
    json_t *m = cl_parse(doc);
    int kept = json_object_get(m, "read") != NULL;

    if (kept) {
        snprintf(ev->room, sizeof(ev->room), "%s", cl_jstr(m, "room"));
        snprintf(ev->user, sizeof(ev->user), "%s", cl_jstr(m, "user"));
        ev->read = cl_jint(m, "read");
    }
    json_decref(m);
    return kept;
}

static int has_event(const struct read_ev *ev, int n, const char *room, const char *user,
                     long long read) {
    for (int i = 0; i < n; i++)
        if (!strcmp(ev[i].room, room) && !strcmp(ev[i].user, user) && ev[i].read == read)
            return 1;
    return 0;
}

/* Read events until the expected ones arrived (at most wait_ms), then for
 * quiet_ms more, to see any that should not come. */
static int collect_events(MQTTClient sub, struct read_ev *ev, int wait_ms, int quiet_ms) {
    long long end = cl_now_ms() + wait_ms;
    int n = 0, quiet = 0;

    while (n < MAX_EVENTS && cl_now_ms() < end) {
        char *doc = h_receive(sub, (int)(end - cl_now_ms()), NULL, NULL);
        if (doc == NULL) break;
        n += keep_event(doc, &ev[n]);
        free(doc);
        if (!quiet && has_event(ev, n, "rb", "alice", 10) && has_event(ev, n, "rb", "carol", 5) &&
            has_event(ev, n, "rbtwo", "alice", 1)) {
            quiet = 1;
            end = cl_now_ms() + quiet_ms;
        }
    }
    return n;
}

/* A burst of 10 markers from alice (mosquitto_pub, a few ms): the first
 * event at once, at most one more per second (carrying the latest marker),
 * so 2 when the burst lasts under a second. Other users and other rooms
 * have limits of their own. */
static void test_read_events(void **state) {
    (void)state;
    struct read_ev ev[MAX_EVENTS];
    char burst[512] = "", sends[512] = "";
    MQTTClient c = cl_client(&env, "t-rb", "reply/rb");
    assert_int_equal(h_subscribe(c, "reply/rbtwo"), 0);
    for (int i = 1; i < 10; i++) strcat(sends, "{\"user\":\"bob\",\"text\":\"b\"}\n");
    cl_pub_lines(&env, "chat/rb/send", sends);                 /* all bob's */
    assert_int_equal(cl_send(c, "rb", "bob", "b", NULL), 10);
    cl_expect_ok_id(cl_ask(c, "rbtwo", "send", "{\"user\":\"bob\",\"text\":\"b\"}"), 1);
    MQTTClient sub = cl_client(&env, "t-rb-sub", "chat/rb/msgs");
    assert_int_equal(h_subscribe(sub, "chat/rbtwo/msgs"), 0);

    for (int i = 1; i <= 10; i++)
        snprintf(burst + strlen(burst), sizeof(burst) - strlen(burst),
                 "{\"user\":\"alice\",\"id\":%d}\n", i);
    long long start = cl_now_ms();
    cl_pub_lines(&env, "chat/rb/read", burst);
    /* answered after the burst (one room, in order): no new marker */
    expect_read(c, "rb", "alice", 10, 10, 0);
    long long span = cl_now_ms() - start;       /* the bridge took them within it */
    expect_read(c, "rb", "carol", 5, 5, 5);
    expect_read(c, "rbtwo", "alice", 1, 1, 0);
    int n = collect_events(sub, ev, 3000 + (int)span, 1500);

    /* alice's events in rb rise and end at 10; the first is the first
     * marker the bridge handled (1, unless it took several at once). At
     * most one per second after the first: a burst the bridge handled
     * within span ms allows 2 + span / 1000 (2 below a second). */
    long long last = 0;
    int alice = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(ev[i].room, "rb") || strcmp(ev[i].user, "alice")) continue;
        if (ev[i].read <= last) fail_msg("read event %lld after %lld", ev[i].read, last);
        last = ev[i].read;
        alice++;
    }
    if (alice < 1 || alice > 2 + span / 1000)
        fail_msg("%d read events for a burst of %lld ms", alice, span);
    assert_int_equal(last, 10);
    assert_true(has_event(ev, n, "rb", "carol", 5));
    assert_true(has_event(ev, n, "rbtwo", "alice", 1));
    cl_assert_hget(&env, "10", "chatroom:rb:messages:read", "alice");
    cl_assert_hget(&env, "5", "chatroom:rb:messages:read", "carol");
    h_mqtt_close(sub);
    h_mqtt_close(c);
}

/* ==================== MQTT 3.1.1 ==================== */

/* A 3.1.1 request with reply_to/correlation in the JSON; the reply. */
static json_t *ask311(MQTTClient c, const char *topic, const char *payload, const char *corr) {
    char *doc;
    json_t *r;

    assert_int_equal(h_publish(c, topic, payload, NULL, NULL), 0);
    doc = h_receive(c, CL_WAIT_MS, NULL, NULL);
    if (doc == NULL) fail_msg("no reply to %s", payload);
    r = cl_parse(doc);
    free(doc);
    assert_string_equal(cl_jstr(r, "correlation"), corr);
    return r;
}

static void test_mqtt311(void **state) {
    (void)state;
    MQTTClient c5 = cl_client(&env, "t-v3-fill", "reply/vthree");
    fill(c5, "vthree", 1, 3);
    h_mqtt_close(c5);
    MQTTClient c = h_mqtt_connect(&env, "t-v3", 4);
    assert_non_null(c);
    assert_int_equal(h_subscribe(c, "reply/v311"), 0);

    json_t *r = ask311(c, "chat/vthree/history", "{\"after\":0,\"limit\":2,"
                       "\"reply_to\":\"reply/v311\",\"correlation\":\"k1\"}", "k1");
    assert_int_equal(json_array_size(json_object_get(r, "messages")), 2);
    assert_int_equal(next_after(r), 2);
    json_decref(r);
    r = ask311(c, "chat/vthree/history", "{\"after\":2,\"limit\":2,"
               "\"reply_to\":\"reply/v311\",\"correlation\":\"k2\"}", "k2");
    assert_int_equal(cl_jint(json_array_get(json_object_get(r, "messages"), 0), "id"), 3);
    assert_int_equal(next_after(r), 0);
    json_decref(r);

    r = ask311(c, "chat/vthree/read", "{\"user\":\"dan\",\"id\":2,"
               "\"reply_to\":\"reply/v311\",\"correlation\":\"k3\"}", "k3");
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_int_equal(cl_jint(r, "read"), 2);
    assert_int_equal(cl_jint(r, "unread"), 1);
    json_decref(r);
    cl_assert_hget(&env, "2", "chatroom:vthree:messages:read", "dan");

    r = ask311(c, "chat/vthree/edit", "{\"user\":\"alice\",\"id\":1,\"text\":\"via 311\","
               "\"reply_to\":\"reply/v311\",\"correlation\":\"k4\"}", "k4");
    cl_expect_ok_id(r, 1);
    assert_edited("vthree", "alice", 1, "via 311", 0);
    h_mqtt_close(c);
}

/* ==================== Hostile input ==================== */

/* Requests built at run time: deep nesting, oversized members. */
static char deep[8200], huge_text[200100], huge_user[200100];

static void build_hostile(void) {
    memset(deep, '[', 4000);
    memset(deep + 4000, ']', 4000);
    deep[8000] = '\0';
    snprintf(huge_text, sizeof(huge_text), "{\"user\":\"alice\",\"id\":1,\"text\":\"%200000s\"}",
             "x");
    snprintf(huge_user, sizeof(huge_user), "{\"after\":0,\"user\":\"%200000s\"}", "u");
    for (char *p = huge_user; *p; p++) if (*p == ' ') *p = 'u';
}

/* Malformed edit, read and catch-up requests: each refused, nothing
 * written, and the bridge still up and answering. */
static void test_hostile(void **state) {
    (void)state;
    const struct { const char *leaf, *payload; } cases[] = {
        { "edit", "" }, { "edit", "{" }, { "edit", "null" }, { "edit", "[1,2]" }, { "edit", deep },
        { "edit", "{\"user\":\"alice\",\"id\":1,\"text\":\"x\"" },
        { "edit", "{\"user\":\"alice\",\"id\":99999999999999999999999,\"text\":\"x\"}" },
        { "edit", "{\"user\":\"alice\",\"id\":9223372036854775807,\"text\":\"x\"}" },
        { "edit", "{\"user\":\"alice\",\"id\":-9223372036854775808,\"text\":\"x\"}" },
        { "edit", "{\"user\":\"alice\",\"id\":1e308,\"text\":\"x\"}" },
        { "edit", "{\"user\":\"alice\",\"id\":{\"id\":1},\"text\":\"x\"}" },
        { "edit", "{\"user\":\"alice\",\"id\":1,\"text\":\"a\\u0000b\"}" },
        { "edit", "{\"user\":\"alice\",\"id\":1,\"text\":\"\xff\xfe\"}" },
        { "edit", "{\"user\":\"alice\",\"id\":1,\"id\":2,\"text\":\"x\"}" },
        { "edit", "{\"user\":\"alice\\u0000\",\"id\":1,\"text\":\"x\"}" },
        { "edit", "{\"user\":\"alice\",\"id\":1,\"text\":{\"t\":\"x\"}}" },
        { "edit", "{\"user\":\"alice\",\"id\":1,\"text\":\"x\",\"correlation\":7}" },
        { "edit", huge_text },
        { "read", "" }, { "read", "\"read\"" }, { "read", deep },
        { "read", "{\"user\":\"bob\",\"id\":9223372036854775807}" },
        { "read", "{\"user\":\"bob\",\"id\":99999999999999999999999}" },
        { "read", "{\"user\":\"bob\",\"id\":2e0}" },
        { "read", "{\"user\":[\"bob\"],\"id\":1}" },
        { "read", "{\"user\":\"b*b\",\"id\":1}" },
        { "read", "{\"user\":\"bob\",\"id\":1,\"user\":\"eve\"}" },
        { "history", "{\"after\":99999999999999999999999}" },
        { "history", "{\"after\":-0.0}" },
        { "history", "{\"after\":0,\"limit\":-5}" },
        { "history", "{\"after\":0,\"before\":-1}" },
        { "history", "{\"after\":0,\"user\":\"a/b\"}" },
        { "history", huge_user },
        { "history", deep },
    };
    build_hostile();
    MQTTClient c = cl_client(&env, "t-hx", "reply/hx");
    fill(c, "hx", 1, 2);
    char *before = snapshot("hx");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *r = cl_ask(c, "hx", cases[i].leaf, cases[i].payload);
        if (!json_is_false(json_object_get(r, "ok")) || !json_is_string(json_object_get(r, "error")))
            fail_msg("case %zu (%s %.80s) not refused", i, cases[i].leaf, cases[i].payload);
        json_decref(r);
    }
    /* Unanswerable ones: no reply topic, one into the bridge's own topics,
     * extra topic levels, an empty room. */
    assert_int_equal(h_publish(c, "chat/hx/edit", "garbage", NULL, NULL), 0);
    assert_int_equal(h_publish(c, "chat/hx/read", "{\"user\":\"bob\",\"id\":1}",
                               "chat/hx/read", NULL), 0);
    assert_int_equal(h_publish(c, "chat/hx/edit/alice", "{\"user\":\"alice\",\"id\":1,"
                               "\"text\":\"x\"}", NULL, NULL), 0);
    assert_int_equal(h_publish(c, "chat//read", "{\"user\":\"bob\",\"id\":1}", NULL, NULL), 0);
    expect_page(c, "hx", "{\"after\":0}", (long long[]){ 1, 2 }, 2, 0);
    assert_unchanged("hx", before);
    assert_int_equal(h_bridge_alive(&env), 1);
    assert_int_equal(cl_send(c, "hx", "alice", "m3", NULL), 3);
    h_mqtt_close(c);
}

/* ==================== Members ==================== */

/* A member as the test expects it. */
struct member {
    char name[40];
    long long last_id, read;
};

static int cmp_member(const void *a, const void *b) {
    return strcmp(((const struct member *)a)->name, ((const struct member *)b)->name);
}

/* A message's time in Unix ms as the bridge reads it: timestamp_ms, or
 * the seed's timestamp (seconds) x 1000. */
static long long message_ms(const char *room, long long id) {
    char *s = cl_rstr(&env, "HGET chatroom:%s:%lld timestamp_ms", room, id);
    long long ms;

    if (s == NULL) {
        s = cl_rstr(&env, "HGET chatroom:%s:%lld timestamp", room, id);
        if (s == NULL) fail_msg("%s:%lld has no timestamp", room, id);
        ms = atoll(s) * 1000;
    } else {
        ms = atoll(s);
    }
    free(s);
    return ms;
}

/* Wait (bounded) until sub heard n messages by user: the bridge has taken
 * the seed's messages into its indexes once it republished them. */
static void wait_republished(MQTTClient sub, const char *user, int n) {
    long long end = cl_now_ms() + 2 * CL_WAIT_MS;
    int heard = 0;

    for (int i = 0; i < 200 && heard < n && cl_now_ms() < end; i++) {
        char *doc = h_receive(sub, (int)(end - cl_now_ms()), NULL, NULL);
        if (doc == NULL) break;
        json_t *m = cl_parse(doc);
        json_t *u = json_object_get(m, "user");
        heard += json_object_get(m, "id") != NULL && json_is_string(u) &&
                 strcmp(json_string_value(u), user) == 0;
        json_decref(m);
        free(doc);
    }
    if (heard < n) fail_msg("%d of %d messages by %s republished", heard, n, user);
}

/* One members request on chat/<room>/members; the reply (of room). */
static json_t *members(MQTTClient c, const char *room, const char *payload) {
    json_t *r = cl_ask(c, room, "members", payload);

    if (json_object_get(r, "error") != NULL)
        fail_msg("members %s refused: %s", payload, cl_jstr(r, "error"));
    assert_string_equal(cl_jstr(r, "room"), room);
    assert_true(json_is_array(json_object_get(r, "members")));
    assert_non_null(json_object_get(r, "next_after"));
    return r;
}

/* All the room's members, by pages of limit (0: no limit given) from
 * after (NULL: the first), following next_after until null (at most
 * MAX_PAGES pages): a page that is not the last holds limit members and
 * its next_after is its last name. The members in one array (decref it);
 * the pages in *pages. */
static json_t *members_all(MQTTClient c, const char *room, int limit, const char *after,
                           int *pages) {
    json_t *all = json_array();
    char payload[256], next[80] = "";

    assert_non_null(all);
    if (after) snprintf(next, sizeof(next), "%s", after);
    for (*pages = 1; *pages <= MAX_PAGES; (*pages)++) {
        char lim[32] = "";
        if (limit) snprintf(lim, sizeof(lim), "\"limit\":%d%s", limit, next[0] ? "," : "");
        if (next[0]) snprintf(payload, sizeof(payload), "{%s\"after\":\"%s\"}", lim, next);
        else snprintf(payload, sizeof(payload), "{%s}", lim);
        json_t *r = members(c, room, payload);
        json_t *page = json_object_get(r, "members");
        size_t n = json_array_size(page);

        if (limit && n > (size_t)limit) fail_msg("%s: %zu members", payload, n);
        json_array_extend(all, page);
        if (json_is_null(json_object_get(r, "next_after"))) {
            json_decref(r);
            return all;
        }
        if (limit && n != (size_t)limit) fail_msg("%s: %zu members and a next_after", payload, n);
        if (n == 0 || strcmp(cl_jstr(r, "next_after"),
                             cl_jstr(json_array_get(page, n - 1), "user")) != 0)
            fail_msg("%s: next_after is not the page's last name", payload);
        snprintf(next, sizeof(next), "%s", cl_jstr(r, "next_after"));
        json_decref(r);
    }
    fail_msg("members of %s not done within %d pages", room, MAX_PAGES);
    return NULL;
}

/* The listed members (from members_all) must be exp[0..n) in this order,
 * with their last_id and read, and last_seen as Redis has it: the later of
 * their last message's time and their last marker's (messages:seen), null
 * when neither is known. Releases all. */
static void expect_members(const char *room, json_t *all, const struct member *exp, size_t n) {
    if (json_array_size(all) != n)
        fail_msg("%s: %zu members, expected %zu", room, json_array_size(all), n);
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(all, i);
        char *seen = cl_rstr(&env, "HGET chatroom:%s:messages:seen %s", room, exp[i].name);
        long long want = seen ? atoll(seen) : 0;
        json_t *ls = json_object_get(m, "last_seen");

        free(seen);
        if (exp[i].last_id > 0 && message_ms(room, exp[i].last_id) > want)
            want = message_ms(room, exp[i].last_id);
        if (strcmp(cl_jstr(m, "user"), exp[i].name) != 0)
            fail_msg("%s: member %zu is %s, expected %s", room, i, cl_jstr(m, "user"),
                     exp[i].name);
        if (cl_jint(m, "last_id") != exp[i].last_id || cl_jint(m, "read") != exp[i].read)
            fail_msg("%s: %s last_id %lld read %lld, expected %lld and %lld", room, exp[i].name,
                     cl_jint(m, "last_id"), cl_jint(m, "read"), exp[i].last_id, exp[i].read);
        if (want == 0 && !json_is_null(ls))
            fail_msg("%s: %s last_seen not null", room, exp[i].name);
        if (want > 0 && (!json_is_integer(ls) || json_integer_value(ls) != want))
            fail_msg("%s: %s last_seen %lld, expected %lld", room, exp[i].name,
                     json_is_integer(ls) ? (long long)json_integer_value(ls) : -1, want);
    }
    json_decref(all);
}

/* A room of 50 members, 40 who sent (three of them twice, one also read
 * further) and 10 who only marked read; names mixing upper and lower case,
 * '_', '-' and UTF-8, so that name order is byte order and not the order
 * they came in. Paged by 20 and by 7, in one page by default and with a
 * limit cut to 200, and from a name that is no member's. */
static void test_members_pages(void **state) {
    (void)state;
    enum { SENDERS = 40, MEMBERS = 50 };
    static const char *const prefix[] = { "Zoe", "adam", "_x", "b-", "\xc3\xa9mile" };
    struct member exp[MEMBERS];
    MQTTClient c = cl_client(&env, "t-mem", "reply/mem");
    int pages;

    assert_int_equal(h_subscribe(c, "reply/memnone"), 0);
    memset(exp, 0, sizeof(exp));
    for (int i = 0; i < MEMBERS; i++) {
        int k = (i * 17) % MEMBERS;                 /* a permutation of 0..49 */
        snprintf(exp[i].name, sizeof(exp[i].name), "%s%02d", prefix[k % 5], k);
    }
    for (int i = 0; i < SENDERS; i++) {
        exp[i].last_id = exp[i].read = cl_send(c, "mem", exp[i].name, "hi", NULL);
        assert_int_equal(exp[i].last_id, i + 1);
    }
    for (int i = 3; i < SENDERS; i += 13)           /* 3, 16, 29 again: ids 41..43 */
        exp[i].last_id = exp[i].read = cl_send(c, "mem", exp[i].name, "again", NULL);
    expect_read(c, "mem", exp[5].name, 43, 43, 0);
    exp[5].read = 43;
    for (int i = SENDERS; i < MEMBERS; i++) {       /* readers only */
        exp[i].last_id = 0;
        exp[i].read = i - SENDERS + 1;
        expect_read(c, "mem", exp[i].name, exp[i].read, exp[i].read, 43 - exp[i].read);
    }
    qsort(exp, MEMBERS, sizeof(exp[0]), cmp_member);

    expect_members("mem", members_all(c, "mem", 20, NULL, &pages), exp, MEMBERS);
    assert_int_equal(pages, 3);
    expect_members("mem", members_all(c, "mem", 7, NULL, &pages), exp, MEMBERS);
    assert_int_equal(pages, 8);
    expect_members("mem", members_all(c, "mem", 0, NULL, &pages), exp, MEMBERS);
    assert_int_equal(pages, 1);                     /* the default, 50 */
    expect_members("mem", members_all(c, "mem", 500, NULL, &pages), exp, MEMBERS);
    assert_int_equal(pages, 1);                     /* cut to 200 */
    /* after a name that is no member's: the names above it in byte order
     * (only the UTF-8 ones are above "zzz") */
    size_t first = 0;
    while (first < MEMBERS && strcmp(exp[first].name, "zzz") <= 0) first++;
    assert_int_equal(MEMBERS - first, 10);
    expect_members("mem", members_all(c, "mem", 4, "zzz", &pages), exp + first, MEMBERS - first);
    expect_members("mem", members_all(c, "mem", 0, exp[MEMBERS - 1].name, &pages), NULL, 0);

    json_t *r = members(c, "memnone", "{}");       /* no room */
    assert_int_equal(json_array_size(json_object_get(r, "members")), 0);
    assert_true(json_is_null(json_object_get(r, "next_after")));
    json_decref(r);
    h_mqtt_close(c);
}

/* A room the seed's own commands wrote before any members request, with a
 * marker a bridge left before the member index existed: the index is
 * built from chatroom:R and the markers. Later members join it: one who
 * sends through the bridge, one through the seed's commands (once the
 * bridge took that message: it is republished). */
static void test_members_seed(void **state) {
    (void)state;
    redisContext *rc = cl_seed_connect(&env);
    MQTTClient c = cl_client(&env, "t-mseed", "reply/memseed");
    MQTTClient sub = cl_client(&env, "t-mseed-sub", "chat/memseed/msgs");
    long long s1 = cl_seed_send(rc, "memseed", "sam", "one");
    long long s2 = cl_seed_send(rc, "memseed", "sue", "two");
    long long s3 = cl_seed_send(rc, "memseed", "sam", "three");
    cl_seed_cmd(rc, "HSET chatroom:memseed:messages:read dora %lld", s1);
    int pages;

    struct member exp[3] = { { "dora", 0, s1 }, { "sam", s3, 0 }, { "sue", s2, 0 } };
    expect_members("memseed", members_all(c, "memseed", 2, NULL, &pages), exp, 3);
    assert_int_equal(pages, 2);

    long long t = cl_send(c, "memseed", "tom", "via mqtt", NULL);
    long long sid = cl_seed_send(rc, "memseed", "sid", "four");
    wait_republished(sub, "sid", 1);
    struct member more[5] = {
        { "dora", 0, s1 }, { "sam", s3, 0 }, { "sid", sid, 0 }, { "sue", s2, 0 },
        { "tom", t, t },
    };
    expect_members("memseed", members_all(c, "memseed", 0, NULL, &pages), more, 5);
    redisFree(rc);
    h_mqtt_close(sub);
    h_mqtt_close(c);
}

/* Bad limit and after values: refused with their codes, nothing written. */
static void test_members_refusals(void **state) {
    (void)state;
    static const struct { const char *payload, *code; } cases[] = {
        { "{\"limit\":\"x\"}", "invalid_limit" },
        { "{\"limit\":0}", "invalid_limit" },
        { "{\"limit\":-1}", "invalid_limit" },
        { "{\"limit\":1.5}", "invalid_limit" },
        { "{\"after\":5}", "invalid_after" },
        { "{\"after\":\"\"}", "invalid_after" },
        { "{\"after\":\"a:b\"}", "invalid_after" },
        { "{\"after\":\"a b\"}", "invalid_after" },
        { "{\"after\":\"4711\"}", "invalid_after" },
        { "{\"after\":\"messages\"}", "invalid_after" },
        { "{\"after\":[\"alice\"]}", "invalid_after" },
        { "{\"after\":\"alice\",\"limit\":\"2\"}", "invalid_limit" },
        { "[\"after\"]", "not_object" },
        { "{", "invalid_json" },
    };
    MQTTClient c = cl_client(&env, "t-mbad", "reply/membad");
    assert_int_equal(cl_send(c, "membad", "alice", "hi", NULL), 1);
    json_decref(members(c, "membad", "{}"));       /* the index, built */
    char *before = snapshot("membad");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cl_expect_error(cl_ask(c, "membad", "members", cases[i].payload), cases[i].code,
                        cases[i].payload);
    assert_unchanged("membad", before);
    json_t *r = members(c, "membad", "{\"after\":\"alice\",\"limit\":1}");
    assert_int_equal(json_array_size(json_object_get(r, "members")), 0);
    json_decref(r);
    h_mqtt_close(c);
}

/* ==================== A user's rooms ==================== */

#define ROOMS 30

/* One room as the user "rita" should see it. */
struct room_exp {
    char room[16];
    long long last_id, read, unread, last;
    char user[8], text[32];
    long long ts;                    /* of its last message, from Redis */
};

/* A page of a user's rooms on chat/$rooms, answered on reply/rooms. */
static json_t *rooms_page(MQTTClient c, const char *payload) {
    json_t *r = cl_request(c, "chat/$rooms", payload, "reply/rooms");

    if (json_object_get(r, "error") != NULL)
        fail_msg("rooms %s refused: %s", payload, cl_jstr(r, "error"));
    assert_true(json_is_array(json_object_get(r, "rooms")));
    assert_non_null(json_object_get(r, "next_before"));
    return r;
}

/* The time of a listed room's last message. */
static long long room_ts(json_t *room) {
    return cl_jint(json_object_get(room, "last"), "ts");
}

/* All of user's rooms, by pages of limit, passing next_before as before
 * until it is null (at most MAX_PAGES pages). Each page holds rooms whose
 * last message is older than the before it was asked with, at most limit
 * of them unless they all share one millisecond, and none as old as the
 * next_before it gives (a millisecond is never split across pages). The
 * rooms in one array (decref it); the pages in *pages. */
static json_t *rooms_all(MQTTClient c, const char *user, int limit, int *pages) {
    json_t *all = json_array();
    char payload[256];
    long long before = 0;

    assert_non_null(all);
    for (*pages = 1; *pages <= MAX_PAGES; (*pages)++) {
        int k = snprintf(payload, sizeof(payload), "{\"user\":\"%s\",\"limit\":%d", user, limit);
        if (before)
            k += snprintf(payload + k, sizeof(payload) - (size_t)k, ",\"before\":%lld", before);
        snprintf(payload + k, sizeof(payload) - (size_t)k, "}");
        json_t *r = rooms_page(c, payload);
        json_t *page = json_object_get(r, "rooms"), *nb = json_object_get(r, "next_before");
        size_t n = json_array_size(page);

        assert_string_equal(cl_jstr(r, "user"), user);
        for (size_t i = 0; i < n; i++) {
            long long ts = room_ts(json_array_get(page, i));
            if (before && ts >= before) fail_msg("%s: a room of %lld", payload, ts);
            if (!json_is_null(nb) && ts < cl_jint(r, "next_before"))
                fail_msg("%s: a room of %lld, next_before %lld", payload, ts,
                         cl_jint(r, "next_before"));
        }
        if (n > (size_t)limit && room_ts(json_array_get(page, 0)) !=
                                 room_ts(json_array_get(page, n - 1)))
            fail_msg("%s: %zu rooms", payload, n);
        json_array_extend(all, page);
        if (json_is_null(nb)) {
            json_decref(r);
            return all;
        }
        if (n == 0) fail_msg("%s: an empty page with a next_before", payload);
        before = cl_jint(r, "next_before");
        json_decref(r);
    }
    fail_msg("the rooms of %s not done within %d pages", user, MAX_PAGES);
    return NULL;
}

/* Newest last message first; the same millisecond by name. */
static int cmp_room_exp(const void *a, const void *b) {
    const struct room_exp *x = a, *y = b;
    if (x->ts != y->ts) return x->ts > y->ts ? -1 : 1;
    return strcmp(x->room, y->room);
}

/* The listed rooms must be exp[0..n) in this order, each as expected.
 * Releases all. */
static void expect_rooms(json_t *all, const struct room_exp *exp, size_t n) {
    if (json_array_size(all) != n) fail_msg("%zu rooms, expected %zu", json_array_size(all), n);
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(all, i), *last = json_object_get(r, "last");
        const struct room_exp *e = &exp[i];

        if (strcmp(cl_jstr(r, "room"), e->room) != 0)
            fail_msg("room %zu is %s (%lld), expected %s (%lld)", i, cl_jstr(r, "room"),
                     room_ts(r), e->room, e->ts);
        if (cl_jint(r, "last_id") != e->last_id || cl_jint(r, "read") != e->read ||
            cl_jint(r, "unread") != e->unread)
            fail_msg("%s: last_id %lld read %lld unread %lld, expected %lld %lld %lld", e->room,
                     cl_jint(r, "last_id"), cl_jint(r, "read"), cl_jint(r, "unread"),
                     e->last_id, e->read, e->unread);
        assert_int_equal(cl_jint(last, "id"), e->last);
        assert_string_equal(cl_jstr(last, "room"), e->room);
        assert_string_equal(cl_jstr(last, "user"), e->user);
        assert_string_equal(cl_jstr(last, "text"), e->text);
        assert_int_equal(cl_jint(last, "ts"), e->ts);
    }
    json_decref(all);
}

/* A message into e's room by user, which moves its last message (and,
 * from another user than rita, what she has unread). */
static void room_send(MQTTClient c, struct room_exp *e, const char *user, const char *text) {
    e->last = e->last_id = cl_send(c, e->room, user, text, NULL);
    snprintf(e->user, sizeof(e->user), "%s", user);
    snprintf(e->text, sizeof(e->text), "%s", text);
    if (strcmp(user, "rita") == 0) e->read = e->last;
    else e->unread++;
}

/* rita is active in 30 rooms: she sent in 20 of them (first in 10, after
 * cara in 10), only marked read in the other 10. Then sam writes into 5
 * of them with the seed's own commands (their timestamp in seconds: one
 * millisecond for all 5, a run a page must not split), and rob posts into
 * 6 others, newest last into rl00, which moves those to the top. Paged by
 * 7 until next_before is null, in one page by default, and by a limit
 * that would end a page inside the run: every room once, newest last
 * message first (the same millisecond by name), with the right last_id,
 * read, unread and last message. */
static void test_rooms(void **state) {
    (void)state;
    static const int sams[] = { 2, 7, 13, 19, 23 };
    struct room_exp exp[ROOMS];
    char text[64];
    int pages;
    MQTTClient c = cl_client(&env, "t-rooms", "reply/rooms");
    MQTTClient sub = cl_client(&env, "t-rooms-sub", NULL);
    redisContext *rc = cl_seed_connect(&env);

    memset(exp, 0, sizeof(exp));
    for (int i = 0; i < ROOMS; i++) {
        struct room_exp *e = &exp[i];
        snprintf(e->room, sizeof(e->room), "rl%02d", i);
        snprintf(text, sizeof(text), "reply/rl%02d", i);
        assert_int_equal(h_subscribe(c, text), 0);
        for (int m = 1; m <= (i % 3 == 0 ? 0 : i % 3 == 1 ? 2 : 3); m++) {
            snprintf(text, sizeof(text), "cara %d %d", i, m);
            room_send(c, e, "cara", text);
        }
        if (i % 3 == 2) {                            /* rita only reads, up to 2 */
            expect_read(c, e->room, "rita", 2, 2, 1);
            e->read = 2;
            e->unread = 1;
        } else {
            snprintf(text, sizeof(text), "rita %d", i);
            room_send(c, e, "rita", text);
            e->unread = 0;
        }
    }
    for (size_t k = 0; k < sizeof(sams) / sizeof(sams[0]); k++) {
        snprintf(text, sizeof(text), "chat/rl%02d/msgs", sams[k]);
        assert_int_equal(h_subscribe(sub, text), 0);
    }
    for (size_t k = 0; k < sizeof(sams) / sizeof(sams[0]); k++) {
        struct room_exp *e = &exp[sams[k]];
        snprintf(e->text, sizeof(e->text), "sam %d", sams[k]);
        e->last = e->last_id = cl_seed_send(rc, e->room, "sam", e->text);
        snprintf(e->user, sizeof(e->user), "sam");
        e->unread++;
    }
    wait_republished(sub, "sam", (int)(sizeof(sams) / sizeof(sams[0])));
    for (int i = 25; i >= 0; i -= 5) {               /* rl25 first, rl00 last */
        snprintf(text, sizeof(text), "rob %d", i);
        room_send(c, &exp[i], "rob", text);
        if (i == 10) room_send(c, &exp[i], "rob", "rob 10 again");
    }
    /* rob's messages are newer than any other room's last message */
    for (int i = 0; i < ROOMS; i++) exp[i].ts = message_ms(exp[i].room, exp[i].last);
    for (int i = 0; i < ROOMS; i++)
        for (int j = 0; j < ROOMS; j++)
            if (i % 5 == 0 && j % 5 != 0 && exp[i].ts < exp[j].ts)
                fail_msg("%s older than %s", exp[i].room, exp[j].room);
    qsort(exp, ROOMS, sizeof(exp[0]), cmp_room_exp);
    assert_string_equal(exp[0].room, "rl00");

    expect_rooms(rooms_all(c, "rita", 7, &pages), exp, ROOMS);
    assert_true(pages >= 5);                       /* 30 by 7, never more than 7 here */
    expect_rooms(rooms_all(c, "rita", 50, &pages), exp, ROOMS);
    assert_int_equal(pages, 1);
    json_t *r = rooms_page(c, "{\"user\":\"rita\"}");  /* the default limit, 50 */
    assert_true(json_is_null(json_object_get(r, "next_before")));
    expect_rooms(json_incref(json_object_get(r, "rooms")), exp, ROOMS);
    json_decref(r);

    /* sam's rooms share one millisecond (two, if his writes straddled a
     * second): a page whose limit ends two rooms into the run stops
     * before it, shorter than its limit, and the next page holds it. */
    int run = 0;
    for (int i = 2; i < ROOMS && run == 0; i++)     /* where a run starts, not first */
        if (exp[i].ts == exp[i - 1].ts && exp[i - 1].ts != exp[i - 2].ts) run = i - 1;
    if (run == 0) fail_msg("no two rooms of one millisecond");
    snprintf(text, sizeof(text), "{\"user\":\"rita\",\"limit\":%d}", run + 2);
    r = rooms_page(c, text);
    if (json_array_size(json_object_get(r, "rooms")) != (size_t)run)
        fail_msg("%s: %zu rooms, expected the %d before %s's millisecond", text,
                 json_array_size(json_object_get(r, "rooms")), run, exp[run].room);
    json_decref(r);
    expect_rooms(rooms_all(c, "rita", run + 2, &pages), exp, ROOMS);
    redisFree(rc);
    h_mqtt_close(sub);
    h_mqtt_close(c);
}

/* A user with no rooms; a request without a user, with a bad before or
 * limit. Room names starting with '$' are refused (chat/$ is the
 * bridge's), whatever the request, and nothing is written. */
static void test_rooms_refusals(void **state) {
    (void)state;
    static const struct { const char *payload, *code; } cases[] = {
        { "{}", "invalid_user" },
        { "{\"limit\":5}", "invalid_user" },
        { "{\"user\":7}", "invalid_user" },
        { "{\"user\":\"a:b\"}", "invalid_user" },
        { "{\"user\":\"4711\"}", "invalid_user" },
        { "{\"user\":\"rita\",\"before\":0}", "invalid_before" },
        { "{\"user\":\"rita\",\"before\":-5}", "invalid_before" },
        { "{\"user\":\"rita\",\"before\":\"x\"}", "invalid_before" },
        { "{\"user\":\"rita\",\"before\":1.5}", "invalid_before" },
        { "{\"user\":\"rita\",\"limit\":\"x\"}", "invalid_limit" },
        { "{\"user\":\"rita\",\"limit\":0}", "invalid_limit" },
    };
    static const struct { const char *topic, *payload; } dollar[] = {
        { "chat/$x/send", "{\"user\":\"dolly\",\"text\":\"hi\"}" },
        { "chat/$rooms/send", "{\"user\":\"dolly\",\"text\":\"hi\"}" },
        { "chat/$x/read", "{\"user\":\"dolly\",\"id\":1}" },
        { "chat/$x/history", "{}" },
        { "chat/$x/members", "{}" },
    };
    MQTTClient c = cl_client(&env, "t-roomsbad", "reply/rooms");
    assert_int_equal(h_subscribe(c, "reply/dollar"), 0);

    json_t *r = rooms_page(c, "{\"user\":\"nobody\",\"limit\":7}");
    assert_string_equal(cl_jstr(r, "user"), "nobody");
    assert_int_equal(json_array_size(json_object_get(r, "rooms")), 0);
    assert_true(json_is_null(json_object_get(r, "next_before")));
    json_decref(r);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cl_expect_error(cl_request(c, "chat/$rooms", cases[i].payload, "reply/rooms"),
                        cases[i].code, cases[i].payload);

    for (size_t i = 0; i < sizeof(dollar) / sizeof(dollar[0]); i++)
        cl_expect_error(cl_request(c, dollar[i].topic, dollar[i].payload, "reply/dollar"),
                        "invalid_room", dollar[i].topic);
    assert_int_equal(h_redis_count(&env, "chatroom:$x*"), 0);
    assert_int_equal(h_redis_count(&env, "chatroom:$rooms:messages*"), 0);
    assert_int_equal(h_redis_count(&env, "chatroom:*dolly*"), 0);
    r = rooms_page(c, "{\"user\":\"dolly\"}");
    assert_int_equal(json_array_size(json_object_get(r, "rooms")), 0);
    json_decref(r);
    h_mqtt_close(c);
}

/* ==================== identity: topic ==================== */

/* A request on chat/idt/<leaf>/<user>, answered on reply/idt. */
static json_t *ask_as(MQTTClient c, const char *leaf, const char *user, const char *payload) {
    char topic[160];

    snprintf(topic, sizeof(topic), "chat/idt/%s/%s", leaf, user);
    return cl_request(c, topic, payload, "reply/idt");
}

/* The sender is the topic's last level for edit and read too. */
static void test_identity_topic(void **state) {
    (void)state;
    MQTTClient c = cl_client(&env, "t-idt", "reply/idt");
    cl_expect_ok_id(ask_as(c, "send", "alice", "{\"text\":\"a1\"}"), 1);
    cl_expect_ok_id(ask_as(c, "send", "bob", "{\"text\":\"b1\"}"), 2);

    cl_expect_ok_id(ask_as(c, "edit", "alice", "{\"id\":1,\"text\":\"a1 edited\"}"), 1);
    assert_edited("idt", "alice", 1, "a1 edited", 0);
    cl_expect_error(ask_as(c, "edit", "bob", "{\"id\":1,\"text\":\"hijack\"}"), "forbidden",
                    "bob edits alice's");
    cl_expect_error(ask_as(c, "edit", "alice", "{\"user\":\"bob\",\"id\":2,\"text\":\"x\"}"),
                    "user_mismatch", "payload names bob");
    cl_expect_ok_id(ask_as(c, "edit", "alice",
                           "{\"user\":\"alice\",\"id\":1,\"text\":\"a1 again\"}"), 1);
    assert_edited("idt", "alice", 1, "a1 again", 0);
    assert_edited("idt", "bob", 2, "b1", 0);

    json_t *r = ask_as(c, "read", "carol", "{\"id\":1}");
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_int_equal(cl_jint(r, "read"), 1);
    assert_int_equal(cl_jint(r, "unread"), 1);
    json_decref(r);
    cl_expect_error(ask_as(c, "read", "carol", "{\"user\":\"dave\",\"id\":2}"), "user_mismatch",
                    "payload names dave");
    cl_assert_hget(&env, "1", "chatroom:idt:messages:read", "carol");
    cl_assert_hget(&env, NULL, "chatroom:idt:messages:read", "dave");

    r = cl_request(c, "chat/idt/history", "{\"after\":0}", "reply/idt");
    json_t *m = json_array_get(json_object_get(r, "messages"), 0);
    assert_string_equal(cl_jstr(m, "text"), "a1 again");
    assert_true(cl_jint(m, "edited") > 1700000000000LL);
    assert_int_equal(json_array_size(json_object_get(r, "messages")), 2);
    json_decref(r);
    h_mqtt_close(c);
}

/* chat/$rooms/<user>: the user is the topic's last level, a payload
 * naming another is user_mismatch; members need no sender. */
static void test_identity_rooms(void **state) {
    (void)state;
    MQTTClient c = cl_client(&env, "t-idr", "reply/idr");
    cl_expect_ok_id(cl_request(c, "chat/idr/send/tina", "{\"text\":\"t1\"}", "reply/idr"), 1);
    cl_expect_ok_id(cl_request(c, "chat/idr/send/ugo", "{\"text\":\"u1\"}", "reply/idr"), 2);

    static const char *const asks[] = { "{}", "{\"user\":\"tina\",\"limit\":1}" };
    for (size_t i = 0; i < 2; i++) {
        json_t *r = cl_request(c, "chat/$rooms/tina", asks[i], "reply/idr");
        json_t *rooms = json_object_get(r, "rooms"), *room = json_array_get(rooms, 0);
        assert_string_equal(cl_jstr(r, "user"), "tina");
        assert_int_equal(json_array_size(rooms), 1);
        assert_true(json_is_null(json_object_get(r, "next_before")));
        assert_string_equal(cl_jstr(room, "room"), "idr");
        assert_int_equal(cl_jint(room, "last_id"), 2);
        assert_int_equal(cl_jint(room, "read"), 1);
        assert_int_equal(cl_jint(room, "unread"), 1);
        assert_string_equal(cl_jstr(json_object_get(room, "last"), "user"), "ugo");
        assert_string_equal(cl_jstr(json_object_get(room, "last"), "text"), "u1");
        json_decref(r);
    }
    cl_expect_error(cl_request(c, "chat/$rooms/tina", "{\"user\":\"ugo\"}", "reply/idr"),
                    "user_mismatch", "tina asks for ugo's rooms");

    json_t *r = cl_request(c, "chat/idr/members", "{}", "reply/idr");
    json_t *m = json_object_get(r, "members");
    assert_int_equal(json_array_size(m), 2);
    assert_string_equal(cl_jstr(json_array_get(m, 0), "user"), "tina");
    assert_string_equal(cl_jstr(json_array_get(m, 1), "user"), "ugo");
    assert_int_equal(cl_jint(json_array_get(m, 1), "last_id"), 2);
    json_decref(r);
    h_mqtt_close(c);
}

/* ==================== Set-up ==================== */

static int setup(void **state) {
    (void)state;
    return cl_start(&env, NULL);
}

static int setup_topic(void **state) {
    (void)state;
    return cl_start(&env, "  identity: topic\n");
}

/* Stopping the bridge must be clean (h_finish). */
static int teardown(void **state) {
    (void)state;
    return h_finish(&env);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catchup_pages),
        cmocka_unit_test(test_catchup_range),
        cmocka_unit_test(test_catchup_bad_after),
        cmocka_unit_test(test_edit),
        cmocka_unit_test(test_edit_refusals),
        cmocka_unit_test(test_edit_dedup),
        cmocka_unit_test(test_read_unread),
        cmocka_unit_test(test_read_refusals),
        cmocka_unit_test(test_read_events),
        cmocka_unit_test(test_mqtt311),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_members_pages),
        cmocka_unit_test(test_members_seed),
        cmocka_unit_test(test_members_refusals),
        cmocka_unit_test(test_rooms),
        cmocka_unit_test(test_rooms_refusals),
        cmocka_unit_test(test_edit_after_kill),      /* restarts the bridge: last */
    };
    const struct CMUnitTest topic_mode[] = {
        cmocka_unit_test(test_identity_topic),
        cmocka_unit_test(test_identity_rooms),
    };
    int failed = cmocka_run_group_tests_name("clients", tests, setup, teardown);
    return failed + cmocka_run_group_tests_name("clients identity topic", topic_mode,
                                                setup_topic, teardown);
}
