/* test_receipt.c -- coalescing of read receipts (bridge/receipt.c): the
 * first move of a marker is announced at once, the moves within the next
 * second wait and only the latest is announced when it has passed; idle
 * entries are forgotten. Time is passed in, so nothing sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "receipt.h"

static void test_first_then_coalesced(void **state) {
    struct receipts *t = receipts_new();
    struct receipt out[4];
    (void)state;
    assert_non_null(t);
    assert_int_equal(receipts_next(t, 0), -1);
    assert_int_equal(receipts_note(t, "lobby", "alice", 1, 10000), 1);
    for (long long id = 2; id <= 10; id++)        /* a burst within 200 ms */
        assert_int_equal(receipts_note(t, "lobby", "alice", id, 10000 + id * 20), 0);
    assert_int_equal(receipts_next(t, 10200), 800);
    assert_int_equal(receipts_due(t, 10999, out, 4), 0);
    assert_int_equal(receipts_due(t, 11000, out, 4), 1);
    assert_string_equal(out[0].room, "lobby");
    assert_string_equal(out[0].user, "alice");
    assert_int_equal(out[0].read, 10);
    assert_int_equal(receipts_next(t, 11000), -1);
    /* announced at 11000: a move at 11500 waits until 12000 */
    assert_int_equal(receipts_note(t, "lobby", "alice", 11, 11500), 0);
    assert_int_equal(receipts_next(t, 11500), 500);
    assert_int_equal(receipts_due(t, 12000, out, 4), 1);
    assert_int_equal(out[0].read, 11);
    /* a second idle: forgotten, the next move goes at once */
    assert_int_equal(receipts_due(t, 13000, out, 4), 0);
    assert_int_equal(receipts_note(t, "lobby", "alice", 12, 13001), 1);
    receipts_free(t);
}

/* Users and rooms are counted apart; a lower waiting marker never
 * replaces a higher one; due() stops at max and gives the rest later. */
static void test_apart_and_bounded(void **state) {
    struct receipts *t = receipts_new();
    struct receipt out[2];
    char user[16];
    (void)state;
    assert_non_null(t);
    assert_int_equal(receipts_note(t, "a", "alice", 5, 0), 1);
    assert_int_equal(receipts_note(t, "b", "alice", 5, 0), 1);
    assert_int_equal(receipts_note(t, "a", "bob", 5, 0), 1);
    assert_int_equal(receipts_note(t, "a", "alice", 9, 100), 0);
    assert_int_equal(receipts_note(t, "a", "alice", 7, 200), 0);
    assert_int_equal(receipts_note(t, "b", "alice", 6, 300), 0);
    assert_int_equal(receipts_note(t, "a", "bob", 8, 400), 0);
    for (int i = 0; i < 50; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        assert_int_equal(receipts_note(t, "c", user, 1, 0), 1);
    }
    size_t n = receipts_due(t, 1000, out, 2);
    assert_int_equal(n, 2);
    n += receipts_due(t, 1000, out, 2);
    assert_int_equal(n, 3);
    assert_int_equal(receipts_due(t, 1000, out, 2), 0);
    receipts_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_then_coalesced),
        cmocka_unit_test(test_apart_and_bounded),
    };
    return cmocka_run_group_tests_name("receipt", tests, NULL, NULL);
}
