/* test_topic.c -- unit tests for topic parsing, building and the reply
 * topic check (bridge/topic.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "topic.h"

/* Parse a C string topic under prefix p. */
static int parse(const char *p, const char *t, char *room) {
    return topic_parse(p, t, strlen(t), room);
}

/* May a reply go to the C string topic t under prefix "chat"? */
static int allowed(const char *t) {
    return topic_reply_allowed("chat", t, strlen(t));
}

/* Each request kind parses and yields the room. */
static void test_parse_kinds(void **state) {
    char room[NAME_MAX_BYTES + 1];
    (void)state;
    assert_int_equal(parse("chat", "chat/lobby/send", room), REQ_SEND);
    assert_string_equal(room, "lobby");
    assert_int_equal(parse("chat", "chat/r2/history", room), REQ_HISTORY);
    assert_string_equal(room, "r2");
    assert_int_equal(parse("chat", "chat/caf\xc3\xa9/delete", room),
                     REQ_DELETE);
    assert_string_equal(room, "caf\xc3\xa9");
    assert_int_equal(parse("chat", "chat/r3/edit", room), REQ_EDIT);
    assert_int_equal(parse("chat", "chat/r3/read", room), REQ_READ);
    assert_int_equal(parse("chat", "chat/r3/members", room), REQ_MEMBERS);
    assert_string_equal(room, "r3");
    /* a user's rooms: right under the prefix, no room */
    assert_int_equal(parse("chat", "chat/$rooms", room), REQ_ROOMS);
    assert_string_equal(room, "");
    assert_int_equal(parse("chat", "chat/lobby/$rooms", room), TOPIC_ERR_LEVELS);
    assert_int_equal(parse("chat", "chat/$x/send", room), TOPIC_ERR_ROOM);
}

/* A prefix of several levels; the topic length, not a NUL, ends it. */
static void test_parse_multilevel_prefix(void **state) {
    char room[NAME_MAX_BYTES + 1];
    const char *t = "acme/chat/lobby/sendXXX";
    (void)state;
    assert_int_equal(parse("acme/chat", "acme/chat/lobby/send", room),
                     REQ_SEND);
    assert_string_equal(room, "lobby");
    assert_int_equal(topic_parse("acme/chat", t, strlen(t) - 3, room),
                     REQ_SEND);
    assert_string_equal(room, "lobby");
    assert_int_equal(parse("acme/chat", "acme/lobby/send", room),
                     TOPIC_ERR_FOREIGN);
    assert_int_equal(parse("a/b/c", "a/b/c/x/history", room), REQ_HISTORY);
    assert_string_equal(room, "x");
}

/* A room of exactly 64 bytes fits room[]; 65 bytes is refused. */
static void test_parse_room_length(void **state) {
    char room[NAME_MAX_BYTES + 1];
    char topic[100];
    (void)state;
    strcpy(topic, "c/");
    memset(topic + 2, 'r', 64);
    strcpy(topic + 66, "/send");
    assert_int_equal(parse("c", topic, room), REQ_SEND);
    assert_int_equal(strlen(room), 64);
    memset(topic + 2, 'r', 65);
    strcpy(topic + 67, "/send");
    assert_int_equal(parse("c", topic, room), TOPIC_ERR_ROOM);
}

/* Wrong prefix, unknown leaf, missing and extra levels. */
static void test_parse_errors(void **state) {
    char room[NAME_MAX_BYTES + 1];
    (void)state;
    assert_int_equal(parse("chat", "other/lobby/send", room), TOPIC_ERR_FOREIGN);
    assert_int_equal(parse("chat", "chatter/lobby/send", room), TOPIC_ERR_FOREIGN);
    assert_int_equal(parse("chat", "cha", room), TOPIC_ERR_FOREIGN);
    assert_int_equal(parse("chat", "chat", room), TOPIC_ERR_FOREIGN);
    assert_int_equal(parse("chat", "chat/", room), TOPIC_ERR_FOREIGN);
    assert_int_equal(parse("chat", "", room), TOPIC_ERR_FOREIGN);
    assert_int_equal(parse("chat", "chat/lobby/msgs", room), TOPIC_ERR_FOREIGN);
    assert_int_equal(parse("chat", "chat/lobby/Send", room), TOPIC_ERR_FOREIGN);
    assert_int_equal(parse("chat", "chat/lobby/sendx", room), TOPIC_ERR_FOREIGN);
    assert_int_equal(parse("chat", "chat/lobby", room), TOPIC_ERR_FOREIGN);
    assert_int_equal(parse("chat", "chat/lobby/send/x", room), TOPIC_ERR_FOREIGN);
    assert_int_equal(parse("chat", "chat/lobby/send/", room), TOPIC_ERR_FOREIGN);
    /* missing room level */
    assert_int_equal(parse("chat", "chat/send", room), TOPIC_ERR_LEVELS);
    /* extra level between prefix and leaf */
    assert_int_equal(parse("chat", "chat/a/b/send", room), TOPIC_ERR_LEVELS);
    assert_int_equal(parse("chat", "chat/a/b/c/delete", room), TOPIC_ERR_LEVELS);
    assert_int_equal(parse("chat", "chat//x/send", room), TOPIC_ERR_LEVELS);
}

/* Room levels that break the name rules. '+' and '#' cannot reach the
 * bridge in a PUBLISH topic, but the parser refuses them anyway. */
static void test_parse_bad_room(void **state) {
    char room[NAME_MAX_BYTES + 1];
    (void)state;
    assert_int_equal(parse("chat", "chat//send", room), TOPIC_ERR_ROOM);
    assert_int_equal(parse("chat", "chat/a:b/send", room), TOPIC_ERR_ROOM);
    assert_int_equal(parse("chat", "chat/a b/send", room), TOPIC_ERR_ROOM);
    assert_int_equal(parse("chat", "chat/{x}/history", room), TOPIC_ERR_ROOM);
    assert_int_equal(parse("chat", "chat/a*/delete", room), TOPIC_ERR_ROOM);
    assert_int_equal(parse("chat", "chat/a+b/send", room), TOPIC_ERR_ROOM);
    assert_int_equal(parse("chat", "chat/a\x01/send", room), TOPIC_ERR_ROOM);
    assert_int_equal(parse("chat", "chat/\xc0\x80/send", room), TOPIC_ERR_ROOM);
    /* An embedded NUL inside the given length. */
    assert_int_equal(topic_parse("chat", "chat/a\0b/send", 13, room),
                     TOPIC_ERR_ROOM);
}

/* Parse a C string topic in identity "topic" form under "chat". */
static int parse_sender(const char *t, char *room, char *user) {
    return topic_parse_sender("chat", t, strlen(t), room, user);
}

/* Identity "topic": send and delete carry the sender as a last level,
 * history does not; a missing or invalid sender is refused. */
static void test_parse_sender(void **state) {
    char room[NAME_MAX_BYTES + 1], user[NAME_MAX_BYTES + 1];
    (void)state;
    assert_int_equal(parse_sender("chat/lobby/send/alice", room, user), REQ_SEND);
    assert_string_equal(room, "lobby");
    assert_string_equal(user, "alice");
    assert_int_equal(parse_sender("chat/r2/delete/bob", room, user), REQ_DELETE);
    assert_string_equal(room, "r2");
    assert_string_equal(user, "bob");
    assert_int_equal(parse_sender("chat/r2/history", room, user), REQ_HISTORY);
    assert_string_equal(user, "");
    assert_int_equal(parse_sender("chat/r3/edit/carol", room, user), REQ_EDIT);
    assert_string_equal(user, "carol");
    assert_int_equal(parse_sender("chat/r3/read/dave", room, user), REQ_READ);
    assert_string_equal(room, "r3");
    assert_string_equal(user, "dave");
    assert_int_equal(parse_sender("chat/lobby/read/edit", room, user), REQ_READ);
    assert_string_equal(user, "edit");
    assert_int_equal(parse_sender("chat/lobby/edit", room, user), TOPIC_ERR_LEVELS);
    assert_int_equal(parse_sender("chat/$rooms/alice", room, user), REQ_ROOMS);
    assert_string_equal(room, "");
    assert_string_equal(user, "alice");
    assert_int_equal(parse_sender("chat/$rooms", room, user), TOPIC_ERR_LEVELS);
    assert_int_equal(parse_sender("chat/lobby/$rooms/alice", room, user), TOPIC_ERR_LEVELS);
    assert_int_equal(parse_sender("chat/lobby/members", room, user), REQ_MEMBERS);
    assert_string_equal(user, "");
    assert_int_equal(parse_sender("chat/lobby/members/alice", room, user), TOPIC_ERR_LEVELS);
    assert_int_equal(parse_sender("chat/lobby/read", room, user), TOPIC_ERR_LEVELS);
    /* a sender may be called like a leaf (found by tests/fuzz/fuzz_topic) */
    assert_int_equal(parse_sender("chat/lobby/send/history", room, user), REQ_SEND);
    assert_string_equal(user, "history");
    assert_int_equal(parse_sender("chat/lobby/delete/send", room, user), REQ_DELETE);
    assert_string_equal(user, "send");
    assert_int_equal(parse_sender("chat/lobby/send", room, user), TOPIC_ERR_LEVELS);
    assert_int_equal(parse_sender("chat/lobby/delete", room, user), TOPIC_ERR_LEVELS);
    assert_int_equal(parse_sender("chat/lobby/history/alice", room, user),
                     TOPIC_ERR_LEVELS);
    assert_int_equal(parse_sender("chat/lobby/send/a:b", room, user), TOPIC_ERR_USER);
    assert_int_equal(parse_sender("chat/lobby/send/", room, user), TOPIC_ERR_USER);
    assert_int_equal(parse_sender("chat/a:b/send/alice", room, user), TOPIC_ERR_ROOM);
    assert_int_equal(parse_sender("chat/a/b/send/alice", room, user), TOPIC_ERR_LEVELS);
    assert_int_equal(parse_sender("chat/lobby/msgs/alice", room, user),
                     TOPIC_ERR_FOREIGN);
    assert_int_equal(parse_sender("other/lobby/send/alice", room, user),
                     TOPIC_ERR_FOREIGN);
    assert_int_equal(parse_sender("chat", room, user), TOPIC_ERR_FOREIGN);
    assert_int_equal(parse_sender("", room, user), TOPIC_ERR_FOREIGN);
}

/* Filters for identity "topic": a '+' level after send and delete. */
static void test_filter_sender(void **state) {
    char buf[32];
    (void)state;
    assert_int_equal(topic_filter_sender(buf, sizeof(buf), "chat", REQ_SEND), 13);
    assert_string_equal(buf, "chat/+/send/+");
    assert_int_equal(topic_filter_sender(buf, sizeof(buf), "chat", REQ_DELETE), 15);
    assert_string_equal(buf, "chat/+/delete/+");
    assert_int_equal(topic_filter_sender(buf, sizeof(buf), "chat", REQ_HISTORY), 14);
    assert_string_equal(buf, "chat/+/history");
    assert_int_equal(topic_filter_sender(buf, sizeof(buf), "chat", REQ_EDIT), 13);
    assert_string_equal(buf, "chat/+/edit/+");
    assert_int_equal(topic_filter_sender(buf, sizeof(buf), "chat", REQ_READ), 13);
    assert_string_equal(buf, "chat/+/read/+");
    assert_int_equal(topic_filter_sender(buf, sizeof(buf), "chat", REQ_MEMBERS), 14);
    assert_string_equal(buf, "chat/+/members");
    assert_int_equal(topic_filter_sender(buf, sizeof(buf), "chat", REQ_ROOMS), 13);
    assert_string_equal(buf, "chat/$rooms/+");
    assert_int_equal(topic_filter(buf, sizeof(buf), "acme/chat", REQ_ROOMS), 16);
    assert_string_equal(buf, "acme/chat/$rooms");
    assert_int_equal(topic_filter(buf, 16, "acme/chat", REQ_ROOMS), -1);
    assert_int_equal(topic_filter_sender(buf, 14, "chat", REQ_SEND), 13);
    assert_int_equal(topic_filter_sender(buf, 13, "chat", REQ_SEND), -1);
    assert_int_equal(topic_filter_sender(buf, sizeof(buf), "chat", 9), -1);
}

/* Built topics and filters, and -1 when the buffer is too small. */
static void test_build_and_filter(void **state) {
    char buf[32];
    (void)state;
    assert_int_equal(topic_build(buf, sizeof(buf), "chat", "lobby", "msgs"), 15);
    assert_string_equal(buf, "chat/lobby/msgs");
    assert_int_equal(topic_build(buf, 16, "chat", "lobby", "msgs"), 15);
    assert_int_equal(topic_build(buf, 15, "chat", "lobby", "msgs"), -1);
    assert_int_equal(topic_build(buf, 0, "chat", "lobby", "msgs"), -1);
    assert_int_equal(topic_build(NULL, 0, "chat", "lobby", "msgs"), -1);

    assert_int_equal(topic_filter(buf, sizeof(buf), "acme/chat", REQ_SEND), 16);
    assert_string_equal(buf, "acme/chat/+/send");
    assert_int_equal(topic_filter(buf, sizeof(buf), "chat", REQ_HISTORY), 14);
    assert_string_equal(buf, "chat/+/history");
    assert_int_equal(topic_filter(buf, sizeof(buf), "chat", REQ_DELETE), 13);
    assert_string_equal(buf, "chat/+/delete");
    assert_int_equal(topic_filter(buf, 13, "chat", REQ_DELETE), -1);
    assert_int_equal(topic_filter(buf, sizeof(buf), "chat", 0), -1);
    assert_int_equal(topic_filter(buf, sizeof(buf), "chat", REQ_KIND_MAX + 1), -1);
}

/* Ordinary reply topics are allowed, including ones near the prefix. */
static void test_reply_allowed_ok(void **state) {
    (void)state;
    assert_true(allowed("clients/alice/inbox"));
    assert_true(allowed("r"));
    assert_true(allowed("chat"));
    assert_true(allowed("chat/lobby"));
    assert_true(allowed("chat/lobby/inbox"));
    assert_true(allowed("chat/a/b/send"));       /* not one of ours */
    assert_true(allowed("chatter/lobby/send"));
    assert_true(allowed("other/lobby/msgs"));
    assert_true(allowed("caf\xc3\xa9/\xe6\x97\xa5"));
    assert_true(allowed("a$b"));
    assert_true(allowed("/leading/slash"));
}

/* Loops into the bridge's own request topics or its message streams. */
static void test_reply_allowed_loops(void **state) {
    (void)state;
    assert_false(allowed("chat/lobby/send"));
    assert_false(allowed("chat/lobby/history"));
    assert_false(allowed("chat/lobby/delete"));
    assert_false(allowed("chat/lobby/msgs"));
    assert_false(allowed("chat//send"));         /* '+' matches empty */
    assert_false(allowed("chat/no:such:room/msgs"));
    assert_false(topic_reply_allowed("acme/chat", "acme/chat/x/msgs", 16));
    assert_false(topic_reply_allowed("chat", "chat/$bridge/b1/status", 22));
    assert_true(topic_reply_allowed("chat", "chat/x$/status", 14));
    assert_true(topic_reply_allowed("acme/chat", "chat/x/msgs", 11));
    /* identity "topic" request topics, whatever the mode */
    assert_false(allowed("chat/lobby/send/alice"));
    assert_false(allowed("chat/lobby/delete/alice"));
    assert_false(allowed("chat/lobby/edit/alice"));
    assert_false(allowed("chat/lobby/read/alice"));
    assert_false(allowed("chat/lobby/edit"));
    assert_false(allowed("chat/lobby/read"));
    assert_false(allowed("chat//send/"));
    assert_true(allowed("chat/lobby/msgs/alice"));
    assert_true(allowed("chat/lobby/history/alice"));
    assert_true(allowed("chat/a/b/send/alice"));
}

/* Empty, too long, wildcards, '$', NUL, invalid UTF-8, and characters the
 * broker would refuse (controls, noncharacters). */
static void test_reply_allowed_refused(void **state) {
    char *big;
    (void)state;
    assert_false(allowed(""));
    assert_false(topic_reply_allowed("chat", NULL, 0));
    assert_false(allowed("a/+/b"));
    assert_false(allowed("a/#"));
    assert_false(allowed("+"));
    assert_false(allowed("$SYS/x"));
    assert_false(allowed("$share/g/t"));
    assert_false(topic_reply_allowed("chat", "a\0b", 3));
    assert_false(allowed("a\xc0\x80"));
    assert_false(allowed("\xed\xa0\x80"));
    assert_false(allowed("a\xc3"));
    assert_false(allowed("a\x01" "b"));
    assert_false(allowed("a\nb"));
    assert_false(allowed("a\x7f" "b"));
    assert_false(allowed("a\xc2\x85" "b"));      /* C1 NEL */
    assert_false(allowed("a\xef\xbf\xbf"));      /* U+FFFF */
    assert_false(allowed("a\xef\xb7\x90"));      /* U+FDD0 */
    assert_false(allowed("\xf0\x9f\xbf\xbe"));   /* U+1FFFE */
    assert_true(allowed("\xf0\x9f\x98\x80"));    /* U+1F600 */

    big = malloc(65536);
    assert_non_null(big);
    memset(big, 'a', 65536);
    assert_true(topic_reply_allowed("chat", big, 65535));
    assert_false(topic_reply_allowed("chat", big, 65536));
    free(big);
}

/* Every error has a text, and unknown values have one too. */
static void test_error_text(void **state) {
    (void)state;
    assert_string_not_equal(topic_error_text(TOPIC_ERR_FOREIGN),
                            topic_error_text(TOPIC_ERR_LEVELS));
    assert_string_not_equal(topic_error_text(TOPIC_ERR_LEVELS),
                            topic_error_text(TOPIC_ERR_ROOM));
    assert_non_null(topic_error_text(0));
    assert_non_null(topic_error_text(-99));
    assert_true(strlen(topic_error_text(TOPIC_ERR_ROOM)) > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_kinds),
        cmocka_unit_test(test_parse_multilevel_prefix),
        cmocka_unit_test(test_parse_room_length),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_bad_room),
        cmocka_unit_test(test_parse_sender),
        cmocka_unit_test(test_build_and_filter),
        cmocka_unit_test(test_filter_sender),
        cmocka_unit_test(test_reply_allowed_ok),
        cmocka_unit_test(test_reply_allowed_loops),
        cmocka_unit_test(test_reply_allowed_refused),
        cmocka_unit_test(test_error_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
