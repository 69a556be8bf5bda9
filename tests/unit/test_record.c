/* test_record.c -- the journal's record format: round trips and refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "codec.h"
#include "record.h"
#include "result.h"

/* A send with every field set, binary correlation data included. */
static const struct request full = {
    .kind = REQ_SEND, .limit = 50, .ts = 1764000000123LL, .id = -1,
    .before = 1LL << 40, .after = 1LL << 41, .room = "lobby", .user = "alice",
    .client_msg_id = "c-1", .text = "hello", .text_len = 5,
    .reply_topic = "reply/alice", .corr = "\0\1\2", .corr_len = 3,
    .correlation = "k9",
};

static void assert_same_str(const char *a, const char *b) {
    if (a == NULL || b == NULL) {
        assert_ptr_equal(a, b);
        return;
    }
    assert_string_equal(a, b);
}

static void test_round_trip(void **state) {
    struct record_buf buf = { 0 };
    struct request r;
    (void)state;
    assert_int_equal(record_encode(&buf, &full), 0);
    assert_int_equal(record_decode(buf.data, buf.len, &r), 0);
    assert_int_equal(r.kind, full.kind);
    assert_int_equal(r.limit, full.limit);
    assert_int_equal(r.ts, full.ts);
    assert_int_equal(r.id, full.id);
    assert_int_equal(r.before, full.before);
    assert_int_equal(r.after, full.after);
    assert_same_str(r.room, full.room);
    assert_same_str(r.user, full.user);
    assert_same_str(r.client_msg_id, full.client_msg_id);
    assert_int_equal(r.text_len, 5);
    assert_memory_equal(r.text, "hello", 6);
    assert_same_str(r.reply_topic, full.reply_topic);
    assert_int_equal(r.corr_len, 3);
    assert_memory_equal(r.corr, "\0\1\2", 3);
    assert_same_str(r.correlation, full.correlation);
    record_buf_free(&buf);
}

/* Absent optional fields come back NULL, empty strings come back empty;
 * the buffer is reused for a second, smaller record. */
static void test_absent_fields(void **state) {
    struct record_buf buf = { 0 };
    struct request in = { .kind = REQ_HISTORY, .limit = 7, .room = "r",
                         .user = "", .client_msg_id = "" }, r;
    (void)state;
    assert_int_equal(record_encode(&buf, &full), 0);
    assert_int_equal(record_encode(&buf, &in), 0);
    assert_int_equal(record_decode(buf.data, buf.len, &r), 0);
    assert_int_equal(r.kind, REQ_HISTORY);
    assert_int_equal(r.limit, 7);
    assert_string_equal(r.user, "");
    assert_string_equal(r.client_msg_id, "");
    assert_null(r.text);
    assert_null(r.reply_topic);
    assert_null(r.corr);
    assert_int_equal(r.corr_len, 0);
    assert_null(r.correlation);
    record_buf_free(&buf);
}

/* Every truncation, a missing NUL, trailing bytes and a record without a
 * room are refused. */
static void test_malformed(void **state) {
    struct record_buf buf = { 0 };
    struct request r, noroom = full;
    (void)state;
    assert_int_equal(record_encode(&buf, &full), 0);
    for (size_t len = 0; len < buf.len; len++)
        assert_int_equal(record_decode(buf.data, len, &r), CB_ERR_PROTO);
    char *longer = malloc(buf.len + 1);
    assert_non_null(longer);
    memcpy(longer, buf.data, buf.len);
    longer[buf.len] = 'x';
    assert_int_equal(record_decode(longer, buf.len + 1, &r), CB_ERR_PROTO);
    longer[buf.len - 1] = 'x';                 /* the last string's NUL */
    assert_int_equal(record_decode(longer, buf.len, &r), CB_ERR_PROTO);
    free(longer);
    noroom.room = NULL;
    assert_int_equal(record_encode(&buf, &noroom), 0);
    assert_int_equal(record_decode(buf.data, buf.len, &r), CB_ERR_PROTO);
    record_buf_free(&buf);
}

/* The record of an older version: version 2 is version 3 without its
 * "after" (the 8 bytes after "before"), version 1 is version 2 without
 * its first byte. Returns its length in out. */
static size_t older_record(const struct record_buf *v3, int version, char *out) {
    enum { AFTER_AT = 1 + 1 + 4 + 8 + 8 + 8 };
    memcpy(out, v3->data, AFTER_AT);
    memcpy(out + AFTER_AT, v3->data + AFTER_AT + 8, v3->len - AFTER_AT - 8);
    out[0] = (char)(0x80 | 2);
    size_t len = v3->len - 8;
    if (version == 1) memmove(out, out + 1, --len);
    return len;
}

/* Records of versions 1 (before the version byte) and 2 (before "after")
 * are still read, so a journal left by an older bridge replays after an
 * upgrade: "after" reads as -1 (not a catch-up). Kinds those versions did
 * not have are refused in them. */
static void test_older_versions(void **state) {
    struct record_buf buf = { 0 };
    struct request r, edit = full;
    char old[512];
    (void)state;
    assert_int_equal(record_encode(&buf, &full), CB_OK);
    assert_true(buf.len < sizeof(old));
    assert_int_equal((unsigned char)buf.data[0], 0x80 | RECORD_VERSION);
    for (int version = 1; version <= 2; version++) {
        size_t len = older_record(&buf, version, old);
        assert_int_equal(record_decode(old, len, &r), CB_OK);
        assert_int_equal(r.kind, REQ_SEND);
        assert_int_equal(r.ts, full.ts);
        assert_int_equal(r.before, full.before);
        assert_int_equal(r.after, -1);
        assert_string_equal(r.room, "lobby");
        assert_memory_equal(r.text, "hello", 6);
        assert_same_str(r.correlation, full.correlation);
    }
    edit.kind = REQ_EDIT;
    assert_int_equal(record_encode(&buf, &edit), CB_OK);
    assert_int_equal(record_decode(buf.data, buf.len, &r), CB_OK);
    assert_int_equal(r.kind, REQ_EDIT);
    assert_int_equal(record_decode(old, older_record(&buf, 2, old), &r), CB_ERR_PROTO);
    record_buf_free(&buf);
}

/* A record of a version this bridge does not know is refused as such,
 * and so is a first byte that is neither a version nor a kind. */
static void test_unknown_version(void **state) {
    struct record_buf buf = { 0 };
    struct request r;
    (void)state;
    assert_int_equal(record_encode(&buf, &full), CB_OK);
    buf.data[0] = (char)(0x80 | (RECORD_VERSION + 1));
    assert_int_equal(record_decode(buf.data, buf.len, &r), CB_ERR_FORMAT);
    buf.data[0] = 0;
    assert_int_equal(record_decode(buf.data, buf.len, &r), CB_ERR_PROTO);
    buf.data[0] = 4;
    assert_int_equal(record_decode(buf.data, buf.len, &r), CB_ERR_PROTO);
    record_buf_free(&buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_absent_fields),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_older_versions),
        cmocka_unit_test(test_unknown_version),
    };
    return cmocka_run_group_tests_name("record", tests, NULL, NULL);
}
