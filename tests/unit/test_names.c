/* test_names.c -- unit tests for the room/user name rules and the strict
 * UTF-8 validator (bridge/names.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "names.h"

/* Helpers taking a C string literal; the explicit-length forms below cover
 * embedded NUL bytes. */
#define ROOM(s) name_valid_room((s), strlen(s))
#define USER(s) name_valid_user((s), strlen(s))
#define UTF8(s) name_utf8_valid((s), sizeof(s) - 1)

/* Plain ASCII names and multi-byte UTF-8 names are accepted. */
static void test_valid_names(void **state) {
    (void)state;
    assert_true(ROOM("lobby"));
    assert_true(ROOM("a"));
    assert_true(ROOM("room-1_2.x~!@$%^&()=;'\"<>|\\`"));
    /* '$' only inside: <prefix>/$... topics and P:$... keys are the bridge's */
    assert_false(ROOM("$rooms"));
    assert_false(ROOM("$"));
    assert_true(ROOM("a$"));
    assert_true(ROOM("42"));           /* all digits is fine for rooms */
    assert_true(ROOM("messages"));     /* and so is "messages" */
    assert_true(ROOM("caf\xc3\xa9"));  /* café */
    assert_true(ROOM("\xe6\x97\xa5\xe6\x9c\xac")); /* 日本 */
    assert_true(ROOM("\xf0\x9f\x98\x80"));         /* U+1F600, 4 bytes */
    assert_true(ROOM("\xc2\xa0"));     /* U+00A0, first after C1 */
    assert_true(USER("alice"));
    assert_true(USER("caf\xc3\xa9"));
    assert_true(USER("\xe6\x97\xa5\xe6\x9c\xac"));
    assert_true(USER("a1"));
    assert_true(USER("1a"));
    assert_true(USER("message"));
    assert_true(USER("messages2"));
    assert_true(USER("Messages"));
}

/* Empty, 64 bytes (accepted) and 65 bytes (refused), in ASCII and with a
 * multi-byte character straddling the limit. */
static void test_lengths(void **state) {
    char buf[80];
    (void)state;
    assert_false(name_valid_room("", 0));
    assert_false(name_valid_user("", 0));
    assert_false(name_valid_room(NULL, 0));
    assert_false(name_valid_user(NULL, 3));

    memset(buf, 'r', sizeof(buf));
    assert_true(name_valid_room(buf, 64));
    assert_true(name_valid_user(buf, 64));
    assert_false(name_valid_room(buf, 65));
    assert_false(name_valid_user(buf, 65));

    /* 62 x 'r' + "é" = 64 bytes; 63 x 'r' + "é" = 65 bytes. */
    memcpy(buf + 62, "\xc3\xa9", 2);
    assert_true(name_valid_room(buf, 64));
    memset(buf, 'r', sizeof(buf));
    memcpy(buf + 63, "\xc3\xa9", 2);
    assert_false(name_valid_room(buf, 65));
    assert_int_equal(NAME_MAX_BYTES, 64);
}

/* Every forbidden printable ASCII character, alone and inside a name. */
static void test_forbidden_chars(void **state) {
    const char *forbidden = " :{},/+#*?[]";
    char buf[4];
    (void)state;
    for (const char *c = forbidden; *c; c++) {
        buf[0] = 'a'; buf[1] = *c; buf[2] = 'b'; buf[3] = '\0';
        assert_false(name_valid_room(buf, 3));
        assert_false(name_valid_user(buf, 3));
        assert_false(name_valid_room(c, 1));
        assert_false(name_valid_user(c, 1));
    }
}

/* C0 (including NUL), DEL and C1 control characters are refused. */
static void test_control_chars(void **state) {
    char buf[3] = { 'a', 0, 'b' };
    (void)state;
    for (int c = 0; c < 0x20; c++) {
        buf[1] = (char)c;
        assert_false(name_valid_room(buf, 3));
        assert_false(name_valid_user(buf, 3));
    }
    assert_false(ROOM("a\x7f" "b"));
    assert_false(USER("a\x7f" "b"));
    for (int c = 0x80; c <= 0x9F; c++) {
        char c1[4] = { 'a', (char)0xC2, (char)c, 0 };
        assert_false(name_valid_room(c1, 3));
        assert_false(name_valid_user(c1, 3));
        /* Control characters are still valid UTF-8. */
        assert_true(name_utf8_valid(c1, 3));
    }
    /* A NUL inside the given length is refused even after a valid name. */
    assert_false(name_valid_room("ab\0", 3));
}

/* User names may not be all digits nor "messages". */
static void test_user_reserved(void **state) {
    (void)state;
    assert_false(USER("0"));
    assert_false(USER("17"));
    assert_false(USER("1234567890"));
    assert_false(USER("messages"));
    assert_true(ROOM("17"));
}

/* The validator itself: accepted forms and each class of malformed input. */
static void test_utf8(void **state) {
    (void)state;
    assert_true(UTF8(""));
    assert_true(UTF8("plain ascii"));
    assert_true(UTF8("\xc2\x80"));             /* U+0080 */
    assert_true(UTF8("\xdf\xbf"));             /* U+07FF */
    assert_true(UTF8("\xe0\xa0\x80"));         /* U+0800 */
    assert_true(UTF8("\xed\x9f\xbf"));         /* U+D7FF */
    assert_true(UTF8("\xee\x80\x80"));         /* U+E000 */
    assert_true(UTF8("\xef\xbf\xbf"));         /* U+FFFF */
    assert_true(UTF8("\xf0\x90\x80\x80"));     /* U+10000 */
    assert_true(UTF8("\xf4\x8f\xbf\xbf"));     /* U+10FFFF */
    assert_true(name_utf8_valid("a\0b", 3));   /* NUL is valid UTF-8 */

    assert_false(UTF8("\xc0\x80"));            /* overlong NUL */
    assert_false(UTF8("\xc1\xbf"));            /* overlong 2-byte */
    assert_false(UTF8("\xe0\x80\xaf"));        /* overlong 3-byte '/' */
    assert_false(UTF8("\xe0\x9f\xbf"));        /* overlong 3-byte */
    assert_false(UTF8("\xf0\x80\x80\xaf"));    /* overlong 4-byte '/' */
    assert_false(UTF8("\xf0\x8f\xbf\xbf"));    /* overlong 4-byte */
    assert_false(UTF8("\xed\xa0\x80"));        /* U+D800 surrogate */
    assert_false(UTF8("\xed\xbf\xbf"));        /* U+DFFF surrogate */
    assert_false(UTF8("\xf4\x90\x80\x80"));    /* U+110000 */
    assert_false(UTF8("\xf5\x80\x80\x80"));
    assert_false(UTF8("\xf8\x88\x80\x80\x80")); /* 5-byte form */
    assert_false(UTF8("\xfe"));
    assert_false(UTF8("\xff"));
    assert_false(UTF8("\x80"));                /* lone continuation */
    assert_false(UTF8("a\xbf" "b"));
    assert_false(UTF8("\xc3"));                /* truncated 2-byte */
    assert_false(UTF8("\xe6\x97"));            /* truncated 3-byte */
    assert_false(UTF8("\xf0\x9f\x98"));        /* truncated 4-byte */
    assert_false(UTF8("\xc3" "a"));            /* bad continuation */
    assert_false(UTF8("\xe6\x97" "a"));
    /* A valid sequence cut by the length argument is truncated too. */
    assert_false(name_utf8_valid("\xe6\x97\xa5", 2));
    assert_true(name_utf8_valid(NULL, 0));
    assert_false(name_utf8_valid(NULL, 1));
}

/* Names are refused when their UTF-8 is. */
static void test_invalid_utf8_names(void **state) {
    (void)state;
    assert_false(ROOM("a\xc0\x80"));
    assert_false(ROOM("\xed\xa0\x80"));
    assert_false(ROOM("\xf4\x90\x80\x80"));
    assert_false(ROOM("caf\xc3"));
    assert_false(ROOM("\x80" "abc"));
    assert_false(USER("a\xc0\x80"));
    assert_false(USER("\xed\xa0\x80"));
    assert_false(USER("\xf4\x90\x80\x80"));
    assert_false(USER("caf\xc3"));
    assert_false(USER("\x80" "abc"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_names),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_forbidden_chars),
        cmocka_unit_test(test_control_chars),
        cmocka_unit_test(test_user_reserved),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_invalid_utf8_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
