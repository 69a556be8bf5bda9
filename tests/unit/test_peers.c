/* test_peers.c -- unit tests for telling other bridges apart by their
 * status documents (bridge/peers.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "peers.h"

/* The verdict on one document given as a C string. */
static int judge(struct peers *p, const char *doc, char *who) {
    return peers_judge(p, doc, strlen(doc), who, 80);
}

/* A peer of our group is fine; one outside it, or with no group when we
 * have one, would store everything twice; each is judged once. */
static void test_groups(void **state) {
    struct peers p;
    char who[80] = "";

    (void)state;
    peers_init(&p, "b1", "g", "h:1:1");
    assert_int_equal(judge(&p, "{\"client_id\":\"b2\",\"online\":true,"
                           "\"shared_group\":\"g\",\"instance\":\"h:2:1\"}", who), PEERS_FINE);
    assert_int_equal(judge(&p, "{\"client_id\":\"b3\",\"online\":true,"
                           "\"shared_group\":\"other\",\"instance\":\"h:3:1\"}", who),
                     PEERS_NO_GROUP);
    assert_string_equal(who, "b3");
    assert_int_equal(judge(&p, "{\"client_id\":\"b3\",\"online\":true,"
                           "\"shared_group\":\"other\",\"instance\":\"h:3:1\"}", who),
                     PEERS_IGNORE);                 /* said once */
    assert_int_equal(judge(&p, "{\"client_id\":\"b4\",\"online\":true,"
                           "\"shared_group\":null,\"instance\":\"h:4:1\"}", who),
                     PEERS_NO_GROUP);
    peers_init(&p, "b1", NULL, "h:1:1");            /* neither has a group */
    assert_int_equal(judge(&p, "{\"client_id\":\"b2\",\"online\":true,"
                           "\"instance\":\"h:2:1\"}", who), PEERS_NO_GROUP);
}

/* A forged document cannot drive the log (control characters) nor flood
 * it (new instances past PEERS_MAX are not judged). */
static void test_forged(void **state) {
    struct peers p;
    char who[80], doc[200];
    int warned = 0;

    (void)state;
    peers_init(&p, "b1", NULL, "h:1:1");
    assert_int_equal(judge(&p, "{\"client_id\":\"evil\\nFAKE\",\"online\":true,"
                           "\"instance\":\"x\"}", who), PEERS_NO_GROUP);
    assert_string_equal(who, "evil?FAKE");
    for (int i = 0; i < 2 * PEERS_MAX; i++) {
        snprintf(doc, sizeof(doc), "{\"client_id\":\"e\",\"online\":true,"
                 "\"instance\":\"%d\"}", i);
        warned += judge(&p, doc, who) != PEERS_IGNORE;
    }
    assert_int_equal(warned, PEERS_MAX - 1);
}

/* Our own document is ignored; another process with our id is not. */
static void test_same_id(void **state) {
    struct peers p;
    char who[80] = "";

    (void)state;
    peers_init(&p, "b1", "g", "h:1:1");
    assert_int_equal(judge(&p, "{\"client_id\":\"b1\",\"online\":true,"
                           "\"shared_group\":\"g\",\"instance\":\"h:1:1\"}", who),
                     PEERS_IGNORE);
    assert_int_equal(judge(&p, "{\"client_id\":\"b1\",\"online\":true,"
                           "\"shared_group\":\"g\",\"instance\":\"h:9:5\"}", who),
                     PEERS_SAME_ID);
    assert_string_equal(who, "b1");
}

/* Offline bridges (last will), documents of an older version without an
 * instance, and garbage are ignored. */
static void test_ignored(void **state) {
    static const char *const docs[] = {
        "{\"client_id\":\"b2\",\"online\":false,\"instance\":\"h:2:1\"}",
        "{\"client_id\":\"b2\",\"online\":true}",
        "{\"online\":true,\"instance\":\"x\"}",
        "[1,2]", "not json", "",
        "{\"client_id\":7,\"online\":true,\"instance\":\"x\"}",
    };
    struct peers p;
    char who[80];

    (void)state;
    peers_init(&p, "b1", NULL, "h:1:1");
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
        assert_int_equal(judge(&p, docs[i], who), PEERS_IGNORE);
}

/* The sentences name the peer and the fix. */
static void test_explain(void **state) {
    char buf[300];

    (void)state;
    peers_explain(PEERS_SAME_ID, "b1", NULL, buf, sizeof(buf));
    assert_non_null(strstr(buf, "client id b1"));
    assert_non_null(strstr(buf, "mqtt.client_id"));
    peers_explain(PEERS_NO_GROUP, "b7", NULL, buf, sizeof(buf));
    assert_non_null(strstr(buf, "bridge b7"));
    assert_non_null(strstr(buf, "mqtt.shared_group"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_same_id),
        cmocka_unit_test(test_forged),
        cmocka_unit_test(test_ignored),
        cmocka_unit_test(test_explain),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
