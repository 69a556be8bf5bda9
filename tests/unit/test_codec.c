/* test_codec.c -- unit tests for request decoding and document encoding
 * (bridge/codec.c), including out-of-memory paths via jansson's allocator
 * hooks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "codec.h"

static const struct codec_limits lim = {
    .max_text_bytes = 10, .history_default = 50, .history_max = 200,
};

/* Decode the C string payload p as 'kind' into *r. */
static int dec(int kind, const char *p, struct codec_req *r) {
    return codec_decode(kind, p, strlen(p), &lim, r);
}

/* Decode, free, and return the result: for tests that only need the code. */
static int dec_code(int kind, const char *p) {
    struct codec_req r;
    int err = dec(kind, p, &r);
    codec_req_free(&r);
    return err;
}

/* Assert that an encoder produced exactly 'want' and set *len to its
 * length, then free it. The length is read through a pointer because the
 * encoder call is an argument of this one. */
static void expect_doc(char *got, const size_t *len, const char *want) {
    assert_non_null(got);
    size_t got_len = strlen(got);
    int same = strcmp(got, want) == 0;
    if (!same) print_error("got  %s\nwant %s\n", got, want);
    free(got);
    assert_true(same);
    assert_int_equal(*len, got_len);
}

/* ==================== Decoding: the document ==================== */

/* Not JSON, invalid UTF-8, \u0000, duplicates, and non-objects. */
static void test_decode_document_errors(void **state) {
    struct codec_req r;
    (void)state;
    assert_int_equal(dec_code(REQ_SEND, "not json"), CODEC_ERR_JSON);
    assert_int_equal(dec_code(REQ_SEND, ""), CODEC_ERR_JSON);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"a\""), CODEC_ERR_JSON);
    assert_int_equal(dec_code(REQ_SEND, "{} x"), CODEC_ERR_JSON);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"a\\u0000b\"}"),
                     CODEC_ERR_JSON);
    assert_int_equal(dec_code(REQ_SEND,
                              "{\"user\":\"a\",\"user\":\"b\",\"text\":\"x\"}"),
                     CODEC_ERR_JSON);
    assert_int_equal(dec_code(REQ_HISTORY, "{\"limit\":1,\"limit\":2}"),
                     CODEC_ERR_JSON);
    assert_int_equal(codec_decode(REQ_SEND, "{}\0", 3, &lim, &r),
                     CODEC_ERR_JSON);
    codec_req_free(&r);
    assert_int_equal(codec_decode(REQ_SEND, NULL, 0, &lim, &r),
                     CODEC_ERR_JSON);
    codec_req_free(&r);

    assert_int_equal(dec_code(REQ_SEND, "{\"text\":\"caf\xc3\"}"),
                     CODEC_ERR_UTF8);
    assert_int_equal(dec_code(REQ_SEND, "{\"text\":\"\xc0\x80\"}"),
                     CODEC_ERR_UTF8);
    assert_int_equal(dec_code(REQ_SEND, "{\"text\":\"\xed\xa0\x80\"}"),
                     CODEC_ERR_UTF8);
    assert_int_equal(dec_code(REQ_SEND, "{\"text\":\"\xf4\x90\x80\x80\"}"),
                     CODEC_ERR_UTF8);
    assert_int_equal(dec_code(REQ_SEND, "\xff{}"), CODEC_ERR_UTF8);

    assert_int_equal(dec_code(REQ_SEND, "[{\"user\":\"a\"}]"),
                     CODEC_ERR_NOT_OBJECT);
    assert_int_equal(dec_code(REQ_HISTORY, "\"str\""), CODEC_ERR_NOT_OBJECT);
    assert_int_equal(dec_code(REQ_HISTORY, "42"), CODEC_ERR_NOT_OBJECT);
    assert_int_equal(dec_code(REQ_DELETE, "null"), CODEC_ERR_NOT_OBJECT);
    assert_int_equal(dec_code(0, "{}"), CODEC_ERR_INTERNAL);
}

/* reply_to and correlation are extracted even when the request is refused,
 * and a bad one of them does not stop the other being read. */
static void test_decode_reply_fields(void **state) {
    struct codec_req r;
    (void)state;
    assert_int_equal(dec(REQ_SEND, "{\"user\":\"alice\",\"text\":\"\","
                         "\"reply_to\":\"me/inbox\",\"correlation\":\"c-1\"}",
                         &r), CODEC_ERR_TEXT_EMPTY);
    assert_string_equal(r.reply_to, "me/inbox");
    assert_string_equal(r.correlation, "c-1");
    codec_req_free(&r);

    assert_int_equal(dec(REQ_DELETE, "{\"reply_to\":5,\"correlation\":\"c\"}",
                         &r), CODEC_ERR_REPLY_TO);
    assert_null(r.reply_to);
    assert_string_equal(r.correlation, "c");
    codec_req_free(&r);

    assert_int_equal(dec(REQ_HISTORY, "{\"reply_to\":\"t\",\"correlation\":{}}",
                         &r), CODEC_ERR_CORRELATION);
    assert_string_equal(r.reply_to, "t");
    assert_null(r.correlation);
    codec_req_free(&r);

    assert_int_equal(dec_code(REQ_HISTORY, "{\"reply_to\":null}"),
                     CODEC_ERR_REPLY_TO);

    assert_int_equal(dec(REQ_HISTORY, "{}", &r), CODEC_OK);
    assert_null(r.reply_to);
    assert_null(r.correlation);
    codec_req_free(&r);
    codec_req_free(&r);   /* a second free is harmless */
}

/* ==================== Decoding: send ==================== */

/* A complete send with unknown members and escapes. */
static void test_decode_send_ok(void **state) {
    struct codec_req r;
    (void)state;
    assert_int_equal(dec(REQ_SEND, "{\"user\":\"caf\xc3\xa9\",\"text\":\"a\\nb\","
                         "\"client_msg_id\":\"m-1\",\"extra\":[1,2]}", &r),
                     CODEC_OK);
    assert_int_equal(r.kind, REQ_SEND);
    assert_string_equal(r.user, "caf\xc3\xa9");
    assert_string_equal(r.text, "a\nb");
    assert_int_equal(r.text_len, 3);
    assert_string_equal(r.client_msg_id, "m-1");
    codec_req_free(&r);
    assert_null(r.text);

    assert_int_equal(dec(REQ_SEND, "{\"user\":\"bob\",\"text\":\"hi\"}", &r),
                     CODEC_OK);
    assert_string_equal(r.client_msg_id, "");
    codec_req_free(&r);
}

/* user: missing, not a string, or not a valid user name. */
static void test_decode_send_user(void **state) {
    (void)state;
    assert_int_equal(dec_code(REQ_SEND, "{\"text\":\"hi\"}"), CODEC_ERR_USER);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":5,\"text\":\"hi\"}"),
                     CODEC_ERR_USER);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":null,\"text\":\"hi\"}"),
                     CODEC_ERR_USER);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"\",\"text\":\"hi\"}"),
                     CODEC_ERR_USER);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"a:b\",\"text\":\"hi\"}"),
                     CODEC_ERR_USER);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"123\",\"text\":\"hi\"}"),
                     CODEC_ERR_USER);
    assert_int_equal(dec_code(REQ_SEND,
                              "{\"user\":\"messages\",\"text\":\"hi\"}"),
                     CODEC_ERR_USER);
    assert_int_equal(dec_code(REQ_SEND,
                              "{\"user\":\"a\\u0001\",\"text\":\"hi\"}"),
                     CODEC_ERR_USER);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"aaaaaaaaaaaaaaaaaaaaaaaaa"
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
                              "\"text\":\"hi\"}"), CODEC_ERR_USER); /* 65 B */
}

/* text: missing, not a string, empty, and the byte limit. */
static void test_decode_send_text(void **state) {
    struct codec_req r;
    (void)state;
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"a\"}"), CODEC_ERR_TEXT);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"a\",\"text\":1}"),
                     CODEC_ERR_TEXT);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"a\",\"text\":null}"),
                     CODEC_ERR_TEXT);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"a\",\"text\":\"\"}"),
                     CODEC_ERR_TEXT_EMPTY);
    assert_int_equal(dec(REQ_SEND, "{\"user\":\"a\",\"text\":\"0123456789\"}",
                         &r), CODEC_OK);
    assert_int_equal(r.text_len, 10);
    codec_req_free(&r);
    assert_int_equal(dec_code(REQ_SEND,
                              "{\"user\":\"a\",\"text\":\"0123456789a\"}"),
                     CODEC_ERR_TEXT_LONG);
    /* The limit counts bytes: five 2-byte characters fit, six do not. */
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"a\",\"text\":"
                              "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}"),
                     CODEC_OK);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"a\",\"text\":"
                              "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}"),
                     CODEC_ERR_TEXT_LONG);
}

/* client_msg_id: 64 bytes accepted, 65 refused, empty, non-string, and
 * control characters. */
static void test_decode_send_cmid(void **state) {
    char p[200];
    char id[80];
    struct codec_req r;
    (void)state;
    memset(id, 'm', 64);
    id[64] = '\0';
    snprintf(p, sizeof(p), "{\"user\":\"a\",\"text\":\"t\",\"client_msg_id\":\"%s\"}", id);
    assert_int_equal(dec(REQ_SEND, p, &r), CODEC_OK);
    assert_string_equal(r.client_msg_id, id);
    codec_req_free(&r);
    strcat(id, "m");
    snprintf(p, sizeof(p), "{\"user\":\"a\",\"text\":\"t\",\"client_msg_id\":\"%s\"}", id);
    assert_int_equal(dec_code(REQ_SEND, p), CODEC_ERR_CMID);

    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"a\",\"text\":\"t\","
                              "\"client_msg_id\":\"\"}"), CODEC_ERR_CMID);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"a\",\"text\":\"t\","
                              "\"client_msg_id\":7}"), CODEC_ERR_CMID);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"a\",\"text\":\"t\","
                              "\"client_msg_id\":null}"), CODEC_ERR_CMID);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"a\",\"text\":\"t\","
                              "\"client_msg_id\":\"a\\tb\"}"), CODEC_ERR_CMID);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"a\",\"text\":\"t\","
                              "\"client_msg_id\":\"a\\u007f\"}"), CODEC_ERR_CMID);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"a\",\"text\":\"t\","
                              "\"client_msg_id\":\"a\\u0085\"}"), CODEC_ERR_CMID);
    assert_int_equal(dec_code(REQ_SEND, "{\"user\":\"a\",\"text\":\"t\","
                              "\"client_msg_id\":\"a b/c:\xc2\xa0\"}"), CODEC_OK);
}

/* ==================== Decoding: history ==================== */

/* limit: default, given, clamped, and each refused form. */
static void test_decode_history_limit(void **state) {
    struct codec_req r;
    (void)state;
    assert_int_equal(dec(REQ_HISTORY, "{}", &r), CODEC_OK);
    assert_int_equal(r.kind, REQ_HISTORY);
    assert_int_equal(r.limit, 50);
    assert_int_equal(r.before, 0);
    assert_string_equal(r.user, "");
    codec_req_free(&r);

    assert_int_equal(dec(REQ_HISTORY, "{\"limit\":1}", &r), CODEC_OK);
    assert_int_equal(r.limit, 1);
    codec_req_free(&r);
    assert_int_equal(dec(REQ_HISTORY, "{\"limit\":200}", &r), CODEC_OK);
    assert_int_equal(r.limit, 200);
    codec_req_free(&r);
    assert_int_equal(dec(REQ_HISTORY, "{\"limit\":201}", &r), CODEC_OK);
    assert_int_equal(r.limit, 200);
    codec_req_free(&r);
    assert_int_equal(dec(REQ_HISTORY, "{\"limit\":9000000000000}", &r),
                     CODEC_OK);
    assert_int_equal(r.limit, 200);
    codec_req_free(&r);

    assert_int_equal(dec_code(REQ_HISTORY, "{\"limit\":0}"), CODEC_ERR_LIMIT);
    assert_int_equal(dec_code(REQ_HISTORY, "{\"limit\":-1}"), CODEC_ERR_LIMIT);
    assert_int_equal(dec_code(REQ_HISTORY, "{\"limit\":1.5}"), CODEC_ERR_LIMIT);
    assert_int_equal(dec_code(REQ_HISTORY, "{\"limit\":5.0}"), CODEC_ERR_LIMIT);
    assert_int_equal(dec_code(REQ_HISTORY, "{\"limit\":\"5\"}"), CODEC_ERR_LIMIT);
    assert_int_equal(dec_code(REQ_HISTORY, "{\"limit\":true}"), CODEC_ERR_LIMIT);
    assert_int_equal(dec_code(REQ_HISTORY, "{\"limit\":null}"), CODEC_ERR_LIMIT);
}

/* before and the optional user filter. */
static void test_decode_history_before_user(void **state) {
    struct codec_req r;
    (void)state;
    assert_int_equal(dec(REQ_HISTORY, "{\"before\":17,\"user\":\"bob\","
                         "\"limit\":3}", &r), CODEC_OK);
    assert_int_equal(r.before, 17);
    assert_string_equal(r.user, "bob");
    assert_int_equal(r.limit, 3);
    codec_req_free(&r);

    assert_int_equal(dec(REQ_HISTORY, "{\"before\":null,\"user\":null}", &r),
                     CODEC_OK);
    assert_int_equal(r.before, 0);
    assert_string_equal(r.user, "");
    codec_req_free(&r);

    assert_int_equal(dec_code(REQ_HISTORY, "{\"before\":0}"), CODEC_ERR_BEFORE);
    assert_int_equal(dec_code(REQ_HISTORY, "{\"before\":-5}"), CODEC_ERR_BEFORE);
    assert_int_equal(dec_code(REQ_HISTORY, "{\"before\":\"3\"}"),
                     CODEC_ERR_BEFORE);
    assert_int_equal(dec_code(REQ_HISTORY, "{\"before\":2.0}"),
                     CODEC_ERR_BEFORE);
    assert_int_equal(dec_code(REQ_HISTORY, "{\"user\":\"\"}"), CODEC_ERR_USER);
    assert_int_equal(dec_code(REQ_HISTORY, "{\"user\":\"7\"}"), CODEC_ERR_USER);
    assert_int_equal(dec_code(REQ_HISTORY, "{\"user\":[]}"), CODEC_ERR_USER);
}

/* ==================== Decoding: delete ==================== */

static void test_decode_delete(void **state) {
    struct codec_req r;
    (void)state;
    assert_int_equal(dec(REQ_DELETE, "{\"user\":\"alice\",\"id\":17,"
                         "\"correlation\":\"k\"}", &r), CODEC_OK);
    assert_int_equal(r.kind, REQ_DELETE);
    assert_string_equal(r.user, "alice");
    assert_int_equal(r.id, 17);
    assert_string_equal(r.correlation, "k");
    codec_req_free(&r);

    assert_int_equal(dec_code(REQ_DELETE, "{\"id\":1}"), CODEC_ERR_USER);
    assert_int_equal(dec_code(REQ_DELETE, "{\"user\":\"a\"}"), CODEC_ERR_ID);
    assert_int_equal(dec_code(REQ_DELETE, "{\"user\":\"a\",\"id\":0}"),
                     CODEC_ERR_ID);
    assert_int_equal(dec_code(REQ_DELETE, "{\"user\":\"a\",\"id\":-3}"),
                     CODEC_ERR_ID);
    assert_int_equal(dec_code(REQ_DELETE, "{\"user\":\"a\",\"id\":\"5\"}"),
                     CODEC_ERR_ID);
    assert_int_equal(dec_code(REQ_DELETE, "{\"user\":\"a\",\"id\":1.0}"),
                     CODEC_ERR_ID);
    assert_int_equal(dec_code(REQ_DELETE, "{\"user\":\"a\",\"id\":null}"),
                     CODEC_ERR_ID);
}

/* ==================== Decoding: catch-up, edit, read ==================== */

/* "after" makes a history request a catch-up: 0 is from the start, null
 * is no catch-up; anything but an integer >= 0 is invalid_after. */
static void test_decode_history_after(void **state) {
    struct codec_req r;
    (void)state;
    assert_int_equal(dec(REQ_HISTORY, "{\"limit\":5}", &r), CODEC_OK);
    assert_int_equal(r.after, -1);
    codec_req_free(&r);
    assert_int_equal(dec(REQ_HISTORY, "{\"after\":0}", &r), CODEC_OK);
    assert_int_equal(r.after, 0);
    codec_req_free(&r);
    assert_int_equal(dec(REQ_HISTORY, "{\"after\":100,\"before\":200,\"user\":\"bob\"}", &r),
                     CODEC_OK);
    assert_int_equal(r.after, 100);
    assert_int_equal(r.before, 200);
    assert_string_equal(r.user, "bob");
    codec_req_free(&r);
    assert_int_equal(dec(REQ_HISTORY, "{\"after\":null}", &r), CODEC_OK);
    assert_int_equal(r.after, -1);
    codec_req_free(&r);
    static const char *const bad[] = { "{\"after\":-1}", "{\"after\":\"5\"}",
        "{\"after\":1.5}", "{\"after\":true}", "{\"after\":[]}" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(dec_code(REQ_HISTORY, bad[i]), CODEC_ERR_AFTER);
}

/* An edit is a send with the id it changes: the same text rules. */
static void test_decode_edit(void **state) {
    struct codec_req r;
    (void)state;
    assert_int_equal(dec(REQ_EDIT, "{\"user\":\"alice\",\"id\":17,\"text\":\"new\","
                         "\"client_msg_id\":\"e-1\"}", &r), CODEC_OK);
    assert_int_equal(r.kind, REQ_EDIT);
    assert_int_equal(r.id, 17);
    assert_string_equal(r.user, "alice");
    assert_string_equal(r.text, "new");
    assert_int_equal(r.text_len, 3);
    assert_string_equal(r.client_msg_id, "e-1");
    codec_req_free(&r);
    assert_int_equal(dec_code(REQ_EDIT, "{\"id\":1,\"text\":\"x\"}"), CODEC_ERR_USER);
    assert_int_equal(dec_code(REQ_EDIT, "{\"user\":\"a\",\"text\":\"x\"}"), CODEC_ERR_ID);
    assert_int_equal(dec_code(REQ_EDIT, "{\"user\":\"a\",\"id\":0,\"text\":\"x\"}"),
                     CODEC_ERR_ID);
    assert_int_equal(dec_code(REQ_EDIT, "{\"user\":\"a\",\"id\":1}"), CODEC_ERR_TEXT);
    assert_int_equal(dec_code(REQ_EDIT, "{\"user\":\"a\",\"id\":1,\"text\":\"\"}"),
                     CODEC_ERR_TEXT_EMPTY);
    assert_int_equal(dec_code(REQ_EDIT, "{\"user\":\"a\",\"id\":1,\"text\":\"12345678901\"}"),
                     CODEC_ERR_TEXT_LONG);
    assert_int_equal(dec_code(REQ_EDIT, "{\"user\":\"a\",\"id\":1,\"text\":\"x\","
                              "\"client_msg_id\":\"\"}"), CODEC_ERR_CMID);
}

/* A read marker: a user and an id >= 1; in identity "topic" the user is
 * the topic's. */
static void test_decode_read(void **state) {
    struct codec_limits tl = lim;
    struct codec_req r;
    (void)state;
    assert_int_equal(dec(REQ_READ, "{\"user\":\"bob\",\"id\":42}", &r), CODEC_OK);
    assert_int_equal(r.kind, REQ_READ);
    assert_int_equal(r.id, 42);
    assert_string_equal(r.user, "bob");
    codec_req_free(&r);
    assert_int_equal(dec_code(REQ_READ, "{\"user\":\"bob\"}"), CODEC_ERR_ID);
    assert_int_equal(dec_code(REQ_READ, "{\"user\":\"bob\",\"id\":-1}"), CODEC_ERR_ID);
    assert_int_equal(dec_code(REQ_READ, "{\"id\":3}"), CODEC_ERR_USER);
    tl.sender = "bob";
    assert_int_equal(codec_decode(REQ_READ, "{\"id\":3}", 8, &tl, &r), CODEC_OK);
    assert_string_equal(r.user, "bob");
    codec_req_free(&r);
    const char *forged = "{\"id\":3,\"user\":\"eve\"}";
    assert_int_equal(codec_decode(REQ_READ, forged, strlen(forged), &tl, &r),
                     CODEC_ERR_SENDER);
    codec_req_free(&r);
}

/* members: a limit and an "after" name; rooms: a user, a limit and an
 * activity cursor. */
static void test_decode_members_rooms(void **state) {
    struct codec_req r;
    (void)state;
    assert_int_equal(dec(REQ_MEMBERS, "{}", &r), CODEC_OK);
    assert_int_equal(r.limit, 50);
    assert_string_equal(r.user, "");
    codec_req_free(&r);
    assert_int_equal(dec(REQ_MEMBERS, "{\"limit\":999,\"after\":\"bob\"}", &r), CODEC_OK);
    assert_int_equal(r.limit, 200);
    assert_string_equal(r.user, "bob");
    codec_req_free(&r);
    assert_int_equal(dec_code(REQ_MEMBERS, "{\"after\":3}"), CODEC_ERR_AFTER);
    assert_int_equal(dec_code(REQ_MEMBERS, "{\"after\":\"a:b\"}"), CODEC_ERR_AFTER);
    assert_int_equal(dec_code(REQ_MEMBERS, "{\"limit\":0}"), CODEC_ERR_LIMIT);
    assert_int_equal(dec(REQ_ROOMS, "{\"user\":\"alice\",\"before\":1764000000000}", &r),
                     CODEC_OK);
    assert_string_equal(r.user, "alice");
    assert_int_equal(r.before, 1764000000000LL);
    assert_int_equal(r.limit, 50);
    codec_req_free(&r);
    assert_int_equal(dec_code(REQ_ROOMS, "{}"), CODEC_ERR_USER);
    assert_int_equal(dec_code(REQ_ROOMS, "{\"user\":\"a\",\"before\":0}"), CODEC_ERR_BEFORE);
    assert_int_equal(dec_code(REQ_ROOMS, "{\"user\":\"a\",\"limit\":\"5\"}"), CODEC_ERR_LIMIT);
}

/* ==================== Error codes ==================== */

/* Every enum value has its documented wire code and a sentence. */
/* Identity "topic": the author comes from the topic; a payload user that
 * names anyone else is a forgery; null or absent is fine. */
static void test_decode_sender(void **state) {
    struct codec_limits tl = lim;
    struct codec_req r;
    static const char *const forged[] = {
        "{\"user\":\"bob\",\"text\":\"hi\"}",
        "{\"user\":\"Alice\",\"text\":\"hi\"}",
        "{\"user\":\"alic\",\"text\":\"hi\"}",
        "{\"user\":\"alice2\",\"text\":\"hi\"}",
        "{\"user\":7,\"text\":\"hi\"}",
        "{\"user\":\"\",\"text\":\"hi\"}",
    };
    (void)state;
    tl.sender = "alice";
    for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
        assert_int_equal(codec_decode(REQ_SEND, forged[i], strlen(forged[i]),
                                      &tl, &r), CODEC_ERR_SENDER);
        codec_req_free(&r);
    }
    const char *ok[] = { "{\"text\":\"hi\"}", "{\"user\":null,\"text\":\"hi\"}",
                         "{\"user\":\"alice\",\"text\":\"hi\"}" };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(codec_decode(REQ_SEND, ok[i], strlen(ok[i]), &tl, &r),
                         CODEC_OK);
        assert_string_equal(r.user, "alice");
        codec_req_free(&r);
    }
    const char *del = "{\"user\":\"bob\",\"id\":3}";
    assert_int_equal(codec_decode(REQ_DELETE, del, strlen(del), &tl, &r),
                     CODEC_ERR_SENDER);
    codec_req_free(&r);
    del = "{\"id\":3}";
    assert_int_equal(codec_decode(REQ_DELETE, del, strlen(del), &tl, &r), CODEC_OK);
    assert_string_equal(r.user, "alice");
    assert_int_equal(r.id, 3);
    codec_req_free(&r);
    assert_string_equal(codec_err_code(CODEC_ERR_SENDER), "user_mismatch");
}

static void test_err_codes(void **state) {
    static const char *const want[CODEC_ERR_COUNT] = {
        "ok", "invalid_json", "invalid_utf8", "not_object", "invalid_user",
        "invalid_text", "empty_text", "text_too_long", "invalid_client_msg_id",
        "invalid_limit", "invalid_before", "invalid_id", "invalid_reply_to",
        "invalid_correlation", "user_mismatch", "invalid_after", "invalid_topic", "invalid_room", "not_found",
        "forbidden", "unavailable", "internal",
    };
    (void)state;
    for (int e = 0; e < CODEC_ERR_COUNT; e++) {
        assert_string_equal(codec_err_code(e), want[e]);
        assert_non_null(codec_err_text(e));
        assert_true(strlen(codec_err_text(e)) > 0);
    }
    assert_string_equal(codec_err_code(-1), "internal");
    assert_string_equal(codec_err_code(CODEC_ERR_COUNT), "internal");
    assert_string_equal(codec_err_text(999),
                        codec_err_text(CODEC_ERR_INTERNAL));
}

/* ==================== Encoders ==================== */

static void test_encode_msg(void **state) {
    struct codec_msg m = { 17, "lobby", "alice", "hello", 1764000000123LL, NULL, 0 };
    size_t len = 0;
    (void)state;
    expect_doc(codec_encode_msg(&m, &len), &len,
               "{\"id\":17,\"room\":\"lobby\",\"user\":\"alice\","
               "\"text\":\"hello\",\"ts\":1764000000123}");
    m.client_msg_id = "";
    expect_doc(codec_encode_msg(&m, &len), &len,
               "{\"id\":17,\"room\":\"lobby\",\"user\":\"alice\","
               "\"text\":\"hello\",\"ts\":1764000000123}");
    m.client_msg_id = "m-1";
    m.text = "caf\xc3\xa9 \"q\"\n";
    expect_doc(codec_encode_msg(&m, &len), &len,
               "{\"id\":17,\"room\":\"lobby\",\"user\":\"alice\","
               "\"text\":\"caf\xc3\xa9 \\\"q\\\"\\n\",\"ts\":1764000000123,"
               "\"client_msg_id\":\"m-1\"}");
    /* Text that is not UTF-8 cannot be encoded. */
    m.text = "\xff";
    assert_null(codec_encode_msg(&m, &len));
}

static void test_encode_replies(void **state) {
    size_t len = 0;
    (void)state;
    expect_doc(codec_encode_deleted("lobby", 17, &len), &len,
               "{\"id\":17,\"room\":\"lobby\",\"deleted\":true}");
    expect_doc(codec_encode_ok(42, NULL, &len), &len, "{\"ok\":true,\"id\":42}");
    expect_doc(codec_encode_ok(42, "c-9", &len), &len,
               "{\"ok\":true,\"id\":42,\"correlation\":\"c-9\"}");
    expect_doc(codec_encode_error(CODEC_ERR_TEXT_EMPTY, "c-1", &len), &len,
               "{\"ok\":false,\"error\":\"empty_text\","
               "\"message\":\"text is empty\",\"correlation\":\"c-1\"}");
    expect_doc(codec_encode_error(CODEC_ERR_NOT_FOUND, NULL, &len), &len,
               "{\"ok\":false,\"error\":\"not_found\","
               "\"message\":\"no such message\"}");
    expect_doc(codec_encode_error(-7, NULL, &len), &len,
               "{\"ok\":false,\"error\":\"internal\","
               "\"message\":\"internal error\"}");
    /* len may be NULL. */
    char *s = codec_encode_ok(1, NULL, NULL);
    assert_string_equal(s, "{\"ok\":true,\"id\":1}");
    free(s);
}

/* The replies and events of edits, read markers and catch-up. */
static void test_encode_edit_read(void **state) {
    const struct codec_msg edited = { 17, "lobby", "alice", "new", 1000, NULL, 2500 };
    const struct codec_msg msgs[1] = { { 4, "lobby", "bob", "x", 1000, NULL, 0 } };
    size_t len = 0;
    (void)state;
    expect_doc(codec_encode_msg(&edited, &len), &len,
               "{\"id\":17,\"room\":\"lobby\",\"user\":\"alice\",\"text\":\"new\","
               "\"ts\":1000,\"edited\":2500}");
    expect_doc(codec_encode_edited(17, 2500, "c", &len), &len,
               "{\"ok\":true,\"id\":17,\"edited\":2500,\"correlation\":\"c\"}");
    expect_doc(codec_encode_read_ok(42, 7, NULL, &len), &len,
               "{\"ok\":true,\"read\":42,\"unread\":7}");
    expect_doc(codec_encode_receipt("lobby", "alice", 42, &len), &len,
               "{\"room\":\"lobby\",\"user\":\"alice\",\"read\":42}");
    expect_doc(codec_encode_catchup("lobby", msgs, 1, 4, NULL, &len), &len,
               "{\"room\":\"lobby\",\"messages\":[{\"id\":4,\"room\":\"lobby\","
               "\"user\":\"bob\",\"text\":\"x\",\"ts\":1000}],\"next_after\":4}");
    expect_doc(codec_encode_catchup("lobby", NULL, 0, 0, "k", &len), &len,
               "{\"room\":\"lobby\",\"messages\":[],\"next_after\":null,"
               "\"correlation\":\"k\"}");
}

/* A page of members and of a user's rooms. */
static void test_encode_members_rooms(void **state) {
    const struct codec_member m[2] = { { "alice", 3, 2, 1000 }, { "bob", 0, 0, 0 } };
    const struct codec_msg last = { 3, "lobby", "alice", "x", 1000, NULL, 0 };
    const struct codec_room rooms[2] = { { "lobby", 3, 2, 1, &last }, { "empty", 4, 0, 0, NULL } };
    size_t len = 0;
    (void)state;
    expect_doc(codec_encode_members("lobby", m, 2, "bob", "c", &len), &len,
               "{\"room\":\"lobby\",\"members\":[{\"user\":\"alice\",\"last_id\":3,"
               "\"read\":2,\"last_seen\":1000},{\"user\":\"bob\",\"last_id\":0,\"read\":0,"
               "\"last_seen\":null}],\"next_after\":\"bob\",\"correlation\":\"c\"}");
    expect_doc(codec_encode_members("lobby", NULL, 0, NULL, NULL, &len), &len,
               "{\"room\":\"lobby\",\"members\":[],\"next_after\":null}");
    expect_doc(codec_encode_rooms("alice", rooms, 2, 999, NULL, &len), &len,
               "{\"user\":\"alice\",\"rooms\":[{\"room\":\"lobby\",\"last_id\":3,\"read\":2,"
               "\"unread\":1,\"last\":{\"id\":3,\"room\":\"lobby\",\"user\":\"alice\","
               "\"text\":\"x\",\"ts\":1000}},{\"room\":\"empty\",\"last_id\":4,\"read\":0,"
               "\"unread\":0,\"last\":null}],\"next_before\":999}");
}

static void test_encode_history(void **state) {
    const struct codec_msg msgs[2] = {
        { 3, "lobby", "alice", "one", 1000, NULL, 0 },
        { 5, "lobby", "bob", "two", 2000, "x", 0 },
    };
    size_t len = 0;
    (void)state;
    expect_doc(codec_encode_history("lobby", NULL, 0, 0, NULL, &len), &len,
               "{\"room\":\"lobby\",\"messages\":[],\"next_before\":null}");
    expect_doc(codec_encode_history("lobby", msgs, 2, 3, "c", &len), &len,
               "{\"room\":\"lobby\",\"messages\":["
               "{\"id\":3,\"room\":\"lobby\",\"user\":\"alice\",\"text\":\"one\",\"ts\":1000},"
               "{\"id\":5,\"room\":\"lobby\",\"user\":\"bob\",\"text\":\"two\",\"ts\":2000,"
               "\"client_msg_id\":\"x\"}],\"next_before\":3,\"correlation\":\"c\"}");
    expect_doc(codec_encode_history("lobby", msgs, 2, 0, NULL, &len), &len,
               "{\"room\":\"lobby\",\"messages\":["
               "{\"id\":3,\"room\":\"lobby\",\"user\":\"alice\",\"text\":\"one\",\"ts\":1000},"
               "{\"id\":5,\"room\":\"lobby\",\"user\":\"bob\",\"text\":\"two\",\"ts\":2000,"
               "\"client_msg_id\":\"x\"}],\"next_before\":null}");
}

/* ==================== Out of memory ==================== */

/* A jansson allocator that fails once 'oom_budget' allocations are used. */
static long oom_budget = -1;

static void *oom_malloc(size_t n) {
    if (oom_budget == 0) return NULL;
    if (oom_budget > 0) oom_budget--;
    return malloc(n);
}

/* Encode every document with each jansson allocation failing in turn:
 * the encoders must return NULL and leak nothing (valgrind checks). */
static void test_encode_oom(void **state) {
    const struct codec_msg msgs[2] = {
        { 3, "lobby", "alice", "one", 1000, "a", 0 },
        { 5, "lobby", "bob", "two", 2000, "x", 0 },
    };
    int succeeded = 0;
    (void)state;
    json_set_alloc_funcs(oom_malloc, free);
    for (long budget = 0; budget < 200 && !succeeded; budget++) {
        char *docs[5];
        size_t len;
        oom_budget = budget;
        docs[0] = codec_encode_msg(&msgs[0], &len);
        docs[1] = codec_encode_deleted("lobby", 1, &len);
        docs[2] = codec_encode_ok(1, "c", &len);
        docs[3] = codec_encode_error(CODEC_ERR_ID, "c", &len);
        docs[4] = codec_encode_history("lobby", msgs, 2, 3, "c", &len);
        int made = 0;
        succeeded = docs[4] != NULL;
        for (int i = 0; i < 5; i++) {
            made += docs[i] != NULL;
            free(docs[i]);
        }
        if (budget == 0) assert_int_equal(made, 0);
    }
    oom_budget = -1;
    json_set_alloc_funcs(malloc, free);
    assert_true(succeeded);
}

/* Decode with each jansson allocation failing in turn: the result is an
 * error or success, and codec_req_free() releases everything. */
static void test_decode_oom(void **state) {
    const char *p = "{\"user\":\"alice\",\"text\":\"hello\",\"client_msg_id\":"
                    "\"m\",\"reply_to\":\"me\",\"correlation\":\"c\"}";
    int err = -1;
    (void)state;
    json_set_alloc_funcs(oom_malloc, free);
    for (long budget = 0; budget < 200 && err != CODEC_OK; budget++) {
        struct codec_req r;
        oom_budget = budget;
        err = dec(REQ_SEND, p, &r);
        if (err != CODEC_OK) assert_null(r.text);
        codec_req_free(&r);
    }
    oom_budget = -1;
    json_set_alloc_funcs(malloc, free);
    assert_int_equal(err, CODEC_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_document_errors),
        cmocka_unit_test(test_decode_reply_fields),
        cmocka_unit_test(test_decode_send_ok),
        cmocka_unit_test(test_decode_send_user),
        cmocka_unit_test(test_decode_sender),
        cmocka_unit_test(test_decode_send_text),
        cmocka_unit_test(test_decode_send_cmid),
        cmocka_unit_test(test_decode_history_limit),
        cmocka_unit_test(test_decode_history_before_user),
        cmocka_unit_test(test_decode_delete),
        cmocka_unit_test(test_decode_history_after),
        cmocka_unit_test(test_decode_edit),
        cmocka_unit_test(test_decode_read),
        cmocka_unit_test(test_decode_members_rooms),
        cmocka_unit_test(test_err_codes),
        cmocka_unit_test(test_encode_msg),
        cmocka_unit_test(test_encode_replies),
        cmocka_unit_test(test_encode_history),
        cmocka_unit_test(test_encode_edit_read),
        cmocka_unit_test(test_encode_members_rooms),
        cmocka_unit_test(test_encode_oom),
        cmocka_unit_test(test_decode_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
