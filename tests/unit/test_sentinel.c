/* test_sentinel.c -- bridge/sentinel.c without a sentinel: the replies it
 * reads (get-master-addr-by-name, ROLE, +switch-master) built from RESP
 * text, and the locator with an injected sentinel_query_fn in place of
 * the network: the order sentinels are asked in, what each answered in
 * the error, the last primary tried when none can be reached (and only
 * then), failovers counted, announced moves raising the generation, what
 * is said to the log. Then the executor against a fake node on loopback
 * that is sentinel and data node at once: ROLE checked at each connect,
 * the connection dropped on -READONLY. The executor over real sentinels
 * is tested by tests/sentinel/. */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "log.h"
#include "result.h"
#include "rexec.h"
#include "sentinel.h"

/* ==================== Helpers ==================== */

/* The reply RESP text stands for. */
static redisReply *resp(const char *text) {
    redisReader *rd = redisReaderCreate();
    void *r = NULL;
    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, text, strlen(text)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
    assert_non_null(r);
    redisReaderFree(rd);
    return r;
}

static void assert_contains(const char *s, const char *part) {
    if (strstr(s, part) == NULL) {
        print_error("\"%s\" does not contain \"%s\"\n", s, part);
        fail();
    }
}

/* ---- A scripted set of sentinels: what each answers, what was asked ---- */

enum { DOWN, KNOWS, UNKNOWN, REFUSES };

static struct {
    int says[4];               /* per sentinel port 1..3: DOWN, KNOWS, ... */
    int primary_port;          /* what a KNOWS sentinel answers */
    char asked[64];            /* the ports asked, in order: "213" */
    const char *password;      /* the last password passed */
    int timeout_ms;
} fake;

static int fake_query(void *arg, const char *host, int port, const char *master,
                      const char *password, int timeout_ms, struct sentinel_answer *out) {
    size_t n = strlen(fake.asked);
    (void)arg;
    assert_string_equal(host, "10.0.0.1");
    assert_string_equal(master, "mymaster");
    fake.asked[n] = (char)('0' + port);
    fake.asked[n + 1] = '\0';
    fake.password = password;
    fake.timeout_ms = timeout_ms;
    switch (fake.says[port]) {
    case KNOWS:
        snprintf(out->host, sizeof(out->host), "10.0.1.%d", fake.primary_port);
        out->port = 6000 + fake.primary_port;
        return CB_OK;
    case UNKNOWN:
        snprintf(out->err, sizeof(out->err), "monitors no master named 'mymaster'");
        return CB_ERR_PROTO;
    case REFUSES:
        snprintf(out->err, sizeof(out->err), "refused the bridge's credentials "
                 "(redis.sentinel_password): WRONGPASS invalid username-password pair");
        return CB_ERR_PROTO;
    }
    snprintf(out->err, sizeof(out->err), "Connection refused");
    return CB_ERR_IO;
}

/* ---- What the module says for the log ---- */

static struct {
    int count, level;
    char last[2048];
    char all[8192];            /* every line, for the executor's test */
} said;
static pthread_mutex_t said_lock = PTHREAD_MUTEX_INITIALIZER;

/* The notify function; the executor's watcher thread calls it too. */
static void note(void *arg, int level, const char *msg) {
    (void)arg;
    pthread_mutex_lock(&said_lock);
    said.count++;
    said.level = level;
    snprintf(said.last, sizeof(said.last), "%s", msg);
    size_t n = strlen(said.all);
    snprintf(said.all + n, sizeof(said.all) - n, "%s\n", msg);
    pthread_mutex_unlock(&said_lock);
}

/* Wait up to 5 s for the notify lines to hold part (the watcher thread
 * says what it watches on its own time), then assert they do. */
static void assert_said(const char *part) {
    char all[sizeof(said.all)];
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&said_lock);
        memcpy(all, said.all, sizeof(all));
        pthread_mutex_unlock(&said_lock);
        if (strstr(all, part)) break;
        usleep(10000);
    }
    assert_contains(all, part);
}

/* Three sentinels on ports 1, 2, 3, as the fake answers them. */
static struct sentinel *three(int s1, int s2, int s3, const char *password, int timeout_ms) {
    struct sentinel_opts o = { "10.0.0.1:1 10.0.0.1:2,10.0.0.1:3", "mymaster", password,
                               timeout_ms, fake_query, NULL, note, NULL };
    memset(&fake, 0, sizeof(fake));
    memset(&said, 0, sizeof(said));
    fake.says[1] = s1;
    fake.says[2] = s2;
    fake.says[3] = s3;
    fake.primary_port = 1;
    struct sentinel *s = sentinel_new(&o);
    assert_non_null(s);
    return s;
}

/* Locate; CB_OK with "host:port" in addr, or the error in err. */
static int locate(struct sentinel *s, char *addr, size_t len, char *err, size_t errlen) {
    char host[RNODE_HOST_MAX];
    int port = 0;
    int rc = sentinel_locate(s, host, sizeof(host), &port, err, errlen);
    if (rc == CB_OK) snprintf(addr, len, "%s:%d", host, port);
    return rc;
}

/* ==================== Replies ==================== */

static void test_parse_addr(void **state) {
    struct sentinel_answer a = { .err = "" };
    (void)state;
    redisReply *r = resp("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n");
    assert_int_equal(sentinel_parse_addr(r, "m", &a), CB_OK);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 6380);
    freeReplyObject(r);

    r = resp("*-1\r\n");                                    /* nil: unknown master */
    assert_int_equal(sentinel_parse_addr(r, "nosuch", &a), CB_ERR_PROTO);
    assert_string_equal(a.err, "monitors no master named 'nosuch' (redis.sentinel_master)");
    freeReplyObject(r);
    r = resp("$-1\r\n");
    assert_int_equal(sentinel_parse_addr(r, "m", &a), CB_ERR_PROTO);
    freeReplyObject(r);

    r = resp("-NOAUTH Authentication required.\r\n");
    assert_int_equal(sentinel_parse_addr(r, "m", &a), CB_ERR_PROTO);
    assert_string_equal(a.err, "NOAUTH Authentication required. (set redis.sentinel_password)");
    freeReplyObject(r);
    r = resp("-ERR unknown command 'SENTINEL'\r\n");
    assert_int_equal(sentinel_parse_addr(r, "m", &a), CB_ERR_PROTO);
    assert_string_equal(a.err, "answered ERR unknown command 'SENTINEL'");
    freeReplyObject(r);

    static const char *const bad[] = {
        "*2\r\n$1\r\nh\r\n$5\r\n70000\r\n",                 /* port out of range */
        "*2\r\n$1\r\nh\r\n$2\r\n6x\r\n",                    /* not a number */
        "*2\r\n$0\r\n\r\n$4\r\n6380\r\n",                   /* no host */
        "*1\r\n$1\r\nh\r\n",                                /* one element */
        "*2\r\n:1\r\n:2\r\n",                               /* integers */
        "+OK\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = resp(bad[i]);
        assert_int_equal(sentinel_parse_addr(r, "m", &a), CB_ERR_PROTO);
        assert_string_equal(a.err, "answered something other than an address");
        freeReplyObject(r);
    }
}

static void test_parse_role(void **state) {
    char what[64];
    (void)state;
    redisReply *r = resp("*3\r\n$6\r\nmaster\r\n:3129\r\n*0\r\n");
    assert_int_equal(sentinel_parse_role(r, what, sizeof(what)), CB_OK);
    assert_string_equal(what, "master");
    freeReplyObject(r);
    r = resp("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:9000\r\n$9\r\nconnected\r\n:3167\r\n");
    assert_int_equal(sentinel_parse_role(r, what, sizeof(what)), CB_ERR_PROTO);
    assert_string_equal(what, "slave");
    freeReplyObject(r);
    r = resp("*2\r\n$8\r\nsentinel\r\n*0\r\n");
    assert_int_equal(sentinel_parse_role(r, what, sizeof(what)), CB_ERR_PROTO);
    assert_string_equal(what, "sentinel");
    freeReplyObject(r);
    r = resp("-LOADING Redis is loading the dataset in memory\r\n");
    assert_int_equal(sentinel_parse_role(r, what, sizeof(what)), CB_ERR_PROTO);
    assert_string_equal(what, "LOADING Redis is loading the dataset in memory");
    freeReplyObject(r);
    r = resp("*0\r\n");
    assert_int_equal(sentinel_parse_role(r, what, sizeof(what)), CB_ERR_PROTO);
    assert_string_equal(what, "an unexpected reply");
    freeReplyObject(r);
}

/* A pub/sub message on channel with this payload. */
static redisReply *message(const char *channel, const char *payload) {
    char text[512];
    snprintf(text, sizeof(text), "*3\r\n$7\r\nmessage\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n",
             strlen(channel), channel, strlen(payload), payload);
    return resp(text);
}

/* Parse a message; its kind (SENTINEL_EV_NONE when refused). */
static int event_of(const char *channel, const char *payload, struct sentinel_event *ev) {
    redisReply *r = message(channel, payload);
    int rc = sentinel_parse_event(r, "mymaster", ev);
    freeReplyObject(r);
    return rc == CB_OK ? ev->kind : SENTINEL_EV_NONE;
}

static void test_parse_event(void **state) {
    struct sentinel_event ev;
    (void)state;
    assert_int_equal(event_of("+switch-master", "mymaster 127.0.0.1 6379 127.0.0.1 6380", &ev),
                     SENTINEL_EV_SWITCH);
    assert_string_equal(ev.host, "127.0.0.1");
    assert_int_equal(ev.port, 6380);
    assert_string_equal(ev.name, "+switch-master");
    assert_int_equal(event_of("+switch-master", "mymaster ::1 6379 ::1 6381", &ev),
                     SENTINEL_EV_SWITCH);                   /* IPv6, no brackets */
    assert_string_equal(ev.host, "::1");
    assert_int_equal(event_of("+try-failover", "master mymaster 127.0.0.1 6379", &ev),
                     SENTINEL_EV_TRY);
    assert_int_equal(event_of("+promoted-slave", "slave 127.0.0.1:6380 127.0.0.1 6380 @ "
                              "mymaster 127.0.0.1 6379", &ev), SENTINEL_EV_PROMOTED);
    assert_string_equal(ev.host, "127.0.0.1");
    assert_int_equal(ev.port, 6380);
    assert_int_equal(event_of("+failover-end", "master mymaster 127.0.0.1 6379", &ev),
                     SENTINEL_EV_END);
    assert_int_equal(event_of("+failover-end-for-timeout", "master mymaster 10.0.0.1 6379", &ev),
                     SENTINEL_EV_END);
    assert_int_equal(event_of("-failover-abort-no-good-slave", "master mymaster 10.0.0.1 6379 7",
                              &ev), SENTINEL_EV_END);

    static const char *const bad[][2] = {
        { "+switch-master", "other 127.0.0.1 6379 127.0.0.1 6380" },   /* another master */
        { "+switch-master", "mymaste 127.0.0.1 6379 127.0.0.1 6380" },
        { "+switch-master", "mymaster 127.0.0.1 6379 127.0.0.1" },     /* four words */
        { "+switch-master", "mymaster 127.0.0.1 6379 127.0.0.1 6380 x" },
        { "+switch-master", "mymaster 127.0.0.1 6379 127.0.0.1 0" },   /* port 0 */
        { "+switch-master", "" },
        { "+try-failover", "master other 127.0.0.1 6379" },
        { "+try-failover", "slave mymaster 127.0.0.1 6379" },
        { "+promoted-slave", "slave 127.0.0.1:6380 127.0.0.1 6380 @ other 127.0.0.1 6379" },
        { "+promoted-slave", "slave 127.0.0.1:6380 127.0.0.1 6380" },
        { "+sdown", "master mymaster 127.0.0.1 6379" },               /* not followed */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(event_of(bad[i][0], bad[i][1], &ev), SENTINEL_EV_NONE);

    redisReply *r = resp("*4\r\n$8\r\npmessage\r\n$17\r\n-failover-abort-*\r\n"
                         "$27\r\n-failover-abort-not-elected\r\n"
                         "$30\r\nmaster mymaster 127.0.0.1 6379\r\n");
    assert_int_equal(sentinel_parse_event(r, "mymaster", &ev), CB_OK);
    assert_int_equal(ev.kind, SENTINEL_EV_END);
    assert_string_equal(ev.name, "-failover-abort-not-elected");
    freeReplyObject(r);
    r = resp("*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n");   /* a confirmation */
    assert_int_equal(sentinel_parse_event(r, "mymaster", &ev), CB_ERR_PROTO);
    freeReplyObject(r);
    r = resp("*2\r\n$4\r\npong\r\n$0\r\n\r\n");                            /* PING's answer */
    assert_int_equal(sentinel_parse_event(r, "mymaster", &ev), CB_ERR_PROTO);
    freeReplyObject(r);
}

/* ==================== The sentinel set ==================== */

static void test_new(void **state) {
    char many[1024] = "";
    (void)state;
    static const char *const bad[] = { "", " , ", "h", "h:0", ":26379", "h:1 x" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sentinel_opts o = { bad[i], "m", NULL, 0, fake_query, NULL, NULL, NULL };
        assert_null(sentinel_new(&o));
    }
    for (int i = 0; i <= SENTINEL_MAX; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "h:%d ", 1000 + i);
    struct sentinel_opts o = { many, "m", NULL, 0, fake_query, NULL, NULL, NULL };
    assert_null(sentinel_new(&o));                          /* 17 */
    o.sentinels = "h:1";
    o.master = NULL;
    assert_null(sentinel_new(&o));
    sentinel_free(NULL);
}

/* In turn from the one that answered last; the first address wins. */
static void test_locate_in_turn(void **state) {
    char addr[REXEC_ADDR_MAX], err[1024];
    (void)state;
    struct sentinel *s = three(DOWN, KNOWS, KNOWS, "s3cret", 5000);
    assert_int_equal(locate(s, addr, sizeof(addr), err, sizeof(err)), CB_OK);
    assert_string_equal(addr, "10.0.1.1:6001");
    assert_string_equal(fake.asked, "12");
    assert_string_equal(fake.password, "s3cret");           /* Sentinel's own AUTH */
    assert_int_equal(fake.timeout_ms, SENTINEL_TIMEOUT_MS); /* capped */
    fake.asked[0] = '\0';
    assert_int_equal(locate(s, addr, sizeof(addr), err, sizeof(err)), CB_OK);
    assert_string_equal(fake.asked, "2");                   /* the last that answered */
    fake.says[2] = UNKNOWN;                                 /* lagging or reset */
    fake.asked[0] = '\0';
    assert_int_equal(locate(s, addr, sizeof(addr), err, sizeof(err)), CB_OK);
    assert_string_equal(fake.asked, "23");
    assert_int_equal(said.count, 0);
    sentinel_free(s);

    s = three(KNOWS, KNOWS, KNOWS, NULL, 300);
    assert_int_equal(locate(s, addr, sizeof(addr), err, sizeof(err)), CB_OK);
    assert_null(fake.password);
    assert_int_equal(fake.timeout_ms, 300);
    sentinel_free(s);
}

/* Nobody names the primary: every sentinel's answer is in the error. */
static void test_locate_errors(void **state) {
    char addr[REXEC_ADDR_MAX], err[1024];
    (void)state;
    struct sentinel *s = three(UNKNOWN, DOWN, UNKNOWN, NULL, 0);
    assert_int_equal(locate(s, addr, sizeof(addr), err, sizeof(err)), CB_ERR_IO);
    assert_string_equal(err, "sentinel: no sentinel named the primary of mymaster: "
                        "10.0.0.1:1: monitors no master named 'mymaster'; "
                        "10.0.0.1:2: Connection refused; "
                        "10.0.0.1:3: monitors no master named 'mymaster'");
    assert_string_equal(fake.asked, "123");
    sentinel_free(s);

    s = three(REFUSES, REFUSES, REFUSES, "wrong-s3cret", 0);
    assert_int_equal(locate(s, addr, sizeof(addr), err, sizeof(err)), CB_ERR_IO);
    assert_contains(err, "10.0.0.1:3: refused the bridge's credentials (redis.sentinel_password)");
    assert_null(strstr(err, "s3cret"));
    char small[40];                                         /* cut, still terminated */
    assert_int_equal(locate(s, addr, sizeof(addr), small, sizeof(small)), CB_ERR_IO);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    sentinel_free(s);
}

/* None reachable: the primary confirmed last is tried (said once), but
 * never before one was confirmed nor when a sentinel answered "no". */
static void test_locate_fall_back(void **state) {
    char addr[REXEC_ADDR_MAX], err[1024];
    (void)state;
    struct sentinel *s = three(DOWN, DOWN, DOWN, NULL, 0);
    assert_int_equal(locate(s, addr, sizeof(addr), err, sizeof(err)), CB_ERR_IO);
    fake.says[3] = KNOWS;
    assert_int_equal(locate(s, addr, sizeof(addr), err, sizeof(err)), CB_OK);
    assert_int_equal(sentinel_confirm(s, "10.0.1.1", 6001), 0);
    fake.says[3] = DOWN;
    assert_int_equal(locate(s, addr, sizeof(addr), err, sizeof(err)), CB_OK);
    assert_string_equal(addr, "10.0.1.1:6001");
    assert_int_equal(said.level, LOG_LEVEL_WARN);
    assert_contains(said.last, "no sentinel can be reached (10.0.0.1:3: Connection refused; "
                    "10.0.0.1:1: Connection refused; 10.0.0.1:2: Connection refused); "
                    "trying 10.0.1.1:6001, the primary of mymaster confirmed last");
    int n = said.count;
    assert_int_equal(locate(s, addr, sizeof(addr), err, sizeof(err)), CB_OK);
    assert_int_equal(said.count, n);                        /* once */
    fake.says[2] = UNKNOWN;                                 /* one answers "no" */
    assert_int_equal(locate(s, addr, sizeof(addr), err, sizeof(err)), CB_ERR_IO);
    assert_contains(err, "10.0.0.1:2: monitors no master named 'mymaster'");
    sentinel_free(s);
}

/* A confirmed primary other than the last is a failover: counted, said,
 * in the counters. */
static void test_confirm_counts(void **state) {
    struct rexec_counters c;
    (void)state;
    struct sentinel *s = three(KNOWS, KNOWS, KNOWS, NULL, 0);
    memset(&c, 0, sizeof(c));
    sentinel_counters(s, &c);
    assert_string_equal(c.primary, "");
    assert_string_equal(c.watching, "");
    assert_int_equal(sentinel_confirm(s, "10.0.1.1", 6001), 0);
    assert_int_equal(said.level, LOG_LEVEL_INFO);
    assert_string_equal(said.last, "sentinel: the primary of mymaster is 10.0.1.1:6001");
    assert_int_equal(sentinel_confirm(s, "10.0.1.1", 6001), 0);  /* a reconnect */
    assert_int_equal(said.count, 1);
    assert_int_equal(sentinel_confirm(s, "10.0.1.2", 6002), 1);
    assert_string_equal(said.last, "sentinel: mymaster failed over: writing to the new "
                        "primary 10.0.1.2:6002 (was 10.0.1.1:6001); failovers followed: 1");
    assert_int_equal(sentinel_confirm(s, "::1", 6001), 1);
    sentinel_counters(s, &c);
    assert_int_equal(c.failovers, 2);
    assert_string_equal(c.primary, "[::1]:6001");
    sentinel_free(s);
}

/* An event; from sentinel k (0-based). */
static void announce(struct sentinel *s, size_t k, int kind, const char *host, int port) {
    struct sentinel_event ev = { .kind = kind, .name = "+test", .port = port };
    snprintf(ev.host, sizeof(ev.host), "%s", host ? host : "");
    sentinel_event(s, k, &ev);
}

/* +switch-master raises the generation when it names another node. */
static void test_switch_event(void **state) {
    (void)state;
    struct sentinel *s = three(KNOWS, KNOWS, KNOWS, NULL, 0);
    unsigned long long g = sentinel_generation(s);
    announce(s, 0, SENTINEL_EV_SWITCH, "10.0.1.2", 6002);   /* no primary yet */
    assert_int_equal(sentinel_generation(s), g);
    sentinel_confirm(s, "10.0.1.1", 6001);
    announce(s, 0, SENTINEL_EV_SWITCH, "10.0.1.1", 6001);   /* where we are */
    assert_int_equal(sentinel_generation(s), g);
    announce(s, 1, SENTINEL_EV_SWITCH, "10.0.1.2", 6002);
    assert_int_equal(sentinel_generation(s), g + 1);
    assert_string_equal(said.last, "sentinel 10.0.0.1:2: the primary of mymaster is "
                        "10.0.1.2:6002 (+switch-master), not 10.0.1.1:6001; following");
    sentinel_confirm(s, "10.0.1.2", 6002);
    struct rexec_counters c;
    memset(&c, 0, sizeof(c));
    sentinel_counters(s, &c);
    assert_int_equal(c.failovers, 1);
    sentinel_free(s);
}

/* A planned switchover: +try-failover pauses (locate names nothing),
 * +promoted-slave names the new primary before the sentinels do,
 * +switch-master ends it; an abort ends a pause. */
static void test_failover_events(void **state) {
    char addr[REXEC_ADDR_MAX], err[1024];
    (void)state;
    struct sentinel *s = three(KNOWS, KNOWS, KNOWS, NULL, 0);
    assert_int_equal(locate(s, addr, sizeof(addr), err, sizeof(err)), CB_OK);
    sentinel_confirm(s, "10.0.1.1", 6001);
    unsigned long long g = sentinel_generation(s);

    announce(s, 2, SENTINEL_EV_TRY, NULL, 0);
    assert_int_equal(sentinel_generation(s), g + 1);       /* the connection goes */
    assert_int_equal(said.level, LOG_LEVEL_WARN);
    assert_contains(said.last, "sentinel 10.0.0.1:3: a failover of mymaster has begun "
                    "(+try-failover); writes wait for the promoted replica");
    fake.asked[0] = '\0';
    assert_int_equal(locate(s, addr, sizeof(addr), err, sizeof(err)), CB_ERR_IO);  /* 1 s */
    assert_string_equal(err, "sentinel: a failover of mymaster is under way (+try-failover "
                        "from 10.0.0.1:3); writes wait for the promoted replica");
    assert_string_equal(fake.asked, "");                   /* nobody asked */

    announce(s, 2, SENTINEL_EV_PROMOTED, "10.0.1.2", 6002);
    assert_int_equal(sentinel_generation(s), g + 2);
    assert_int_equal(locate(s, addr, sizeof(addr), err, sizeof(err)), CB_OK);
    assert_string_equal(addr, "10.0.1.2:6002");            /* not the sentinels' 10.0.1.1 */
    assert_string_equal(fake.asked, "");
    /* the sentinels catch up while the executor connects: no reconnect */
    announce(s, 0, SENTINEL_EV_SWITCH, "10.0.1.2", 6002);
    announce(s, 1, SENTINEL_EV_SWITCH, "10.0.1.2", 6002);
    assert_int_equal(sentinel_generation(s), g + 2);
    assert_int_equal(sentinel_confirm(s, "10.0.1.2", 6002), 1);
    announce(s, 2, SENTINEL_EV_SWITCH, "10.0.1.2", 6002);
    assert_int_equal(sentinel_generation(s), g + 2);
    fake.primary_port = 2;
    assert_int_equal(locate(s, addr, sizeof(addr), err, sizeof(err)), CB_OK);
    assert_string_equal(fake.asked, "1");                  /* asking again */
    assert_string_equal(addr, "10.0.1.2:6002");

    announce(s, 1, SENTINEL_EV_TRY, NULL, 0);               /* a failover that aborts */
    announce(s, 1, SENTINEL_EV_END, NULL, 0);
    assert_contains(said.last, "sentinel 10.0.0.1:2: the failover of mymaster is over "
                    "(+test); writes resume");
    assert_int_equal(locate(s, addr, sizeof(addr), err, sizeof(err)), CB_OK);
    assert_string_equal(addr, "10.0.1.2:6002");
    sentinel_free(s);
}

/* The executor is chosen by the options; a bad list makes none. */
static void test_rexec_new(void **state) {
    struct rexec_opts o = { .sentinels = "127.0.0.1:1 127.0.0.1:2", .sentinel_master = "m",
                            .timeout_ms = 200 };
    struct rexec_counters c;
    (void)state;
    struct rexec *x = rexec_new(&o);
    assert_non_null(x);
    assert_string_equal(rexec_address(x), "m (sentinel)");
    assert_false(rexec_connected(x));
    rexec_counters(x, &c);
    assert_string_equal(c.primary, "");
    assert_int_equal(rexec_connect(x), CB_ERR_IO);          /* nothing listens there */
    assert_contains(rexec_errstr(x), "sentinel: no sentinel named the primary of m: "
                    "127.0.0.1:1: Connection refused; 127.0.0.1:2: Connection refused");
    assert_false(rexec_connected(x));
    rexec_free(x);                                          /* stops the watcher */
    o.sentinels = "127.0.0.1";
    assert_null(rexec_new(&o));
}

/* ==================== A fake sentinel and node ==================== */

/* One thread on a loopback port answering as a sentinel (it names
 * itself as the primary, takes subscriptions) and as a data node (PING,
 * ROLE as fk.role, anything else +OK or -READONLY). */
enum { FK_CLIENTS = 8 };

static struct {
    int lfd, port, stop[2];
    pthread_t thread;
    pthread_mutex_t lock;
    char role[16];             /* what ROLE answers */
    int readonly;              /* other commands answer -READONLY */
} fk = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The answer to one request, into out. */
static void fk_answer(const redisReply *q, char *out, size_t len) {
    const char *cmd = q->element[0]->str;
    char port[8];
    size_t n = 0;
    snprintf(port, sizeof(port), "%d", fk.port);
    pthread_mutex_lock(&fk.lock);
    if (strcasecmp(cmd, "PING") == 0 || strcasecmp(cmd, "AUTH") == 0)
        snprintf(out, len, "+%s\r\n", cmd[0] == 'P' || cmd[0] == 'p' ? "PONG" : "OK");
    else if (strcasecmp(cmd, "SENTINEL") == 0)
        snprintf(out, len, "*2\r\n$9\r\n127.0.0.1\r\n$%zu\r\n%s\r\n", strlen(port), port);
    else if (strcasecmp(cmd, "ROLE") == 0)
        snprintf(out, len, "*3\r\n$%zu\r\n%s\r\n:0\r\n*0\r\n", strlen(fk.role), fk.role);
    else if (strcasecmp(cmd, "SUBSCRIBE") == 0 || strcasecmp(cmd, "PSUBSCRIBE") == 0)
        for (size_t i = 1; i < q->elements && n < len; i++)
            n += (size_t)snprintf(out + n, len - n, "*3\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n:%zu\r\n",
                                  strlen(cmd), cmd, q->element[i]->len, q->element[i]->str, i);
    else
        snprintf(out, len, "%s", fk.readonly ? "-READONLY You can't write against a read "
                 "only replica.\r\n" : "+OK\r\n");
    pthread_mutex_unlock(&fk.lock);
}

/* Read what client i sent and answer every whole request; -1 when it
 * has gone. */
static int fk_readable(int fd, redisReader *rd) {
    char buf[4096], out[2048];
    void *q = NULL;
    ssize_t got = read(fd, buf, sizeof(buf));
    if (got <= 0 || redisReaderFeed(rd, buf, (size_t)got) != REDIS_OK) return -1;
    while (redisReaderGetReply(rd, &q) == REDIS_OK && q) {
        fk_answer(q, out, sizeof(out));
        if (write(fd, out, strlen(out)) < 0) return -1;
        freeReplyObject(q);
        q = NULL;
    }
    return 0;
}

static void *fk_main(void *arg) {
    int fd[FK_CLIENTS];
    redisReader *rd[FK_CLIENTS] = { NULL };
    (void)arg;
    for (int i = 0; i < FK_CLIENTS; i++) fd[i] = -1;
    for (;;) {
        struct pollfd p[2 + FK_CLIENTS] = { { fk.stop[0], POLLIN, 0 }, { fk.lfd, POLLIN, 0 } };
        for (int i = 0; i < FK_CLIENTS; i++) p[2 + i] = (struct pollfd){ fd[i], POLLIN, 0 };
        if (poll(p, 2 + FK_CLIENTS, -1) < 0 || p[0].revents) break;
        for (int i = 0; i < FK_CLIENTS; i++)
            if (fd[i] >= 0 && p[2 + i].revents && fk_readable(fd[i], rd[i]) < 0) {
                close(fd[i]);
                redisReaderFree(rd[i]);
                fd[i] = -1;
            }
        int i = 0, c = p[1].revents ? accept(fk.lfd, NULL, NULL) : -1;
        while (i < FK_CLIENTS && fd[i] >= 0) i++;
        if (c >= 0 && i == FK_CLIENTS) close(c);
        else if (c >= 0) rd[i] = redisReaderCreate(), fd[i] = c;
    }
    for (int i = 0; i < FK_CLIENTS; i++)
        if (fd[i] >= 0) close(fd[i]), redisReaderFree(rd[i]);
    return NULL;
}

static void fk_start(void) {
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fk.lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fk.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fk.lfd, 8), 0);
    assert_int_equal(getsockname(fk.lfd, (struct sockaddr *)&a, &len), 0);
    fk.port = ntohs(a.sin_port);
    assert_int_equal(pipe(fk.stop), 0);
    assert_int_equal(pthread_create(&fk.thread, NULL, fk_main, NULL), 0);
}

static void fk_stop(void) {
    assert_int_equal(write(fk.stop[1], "x", 1), 1);
    pthread_join(fk.thread, NULL);
    close(fk.stop[0]);
    close(fk.stop[1]);
    close(fk.lfd);
}

static void fk_set(const char *role, int readonly) {
    pthread_mutex_lock(&fk.lock);
    snprintf(fk.role, sizeof(fk.role), "%s", role);
    fk.readonly = readonly;
    pthread_mutex_unlock(&fk.lock);
}

/* A node named by the sentinels is written to only once ROLE says
 * master; a -READONLY reply drops the connection, so that the next
 * connect asks the sentinels again. */
static void test_role_and_readonly(void **state) {
    char list[32], addr[32];
    struct rexec_cmd cmd = { 0 };
    struct rexec_counters c;
    const char *set[] = { "SET", "k", "v" };
    (void)state;
    fk_start();
    snprintf(list, sizeof(list), "127.0.0.1:%d", fk.port);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", fk.port);
    struct rexec_opts o = { .sentinels = list, .sentinel_master = "m", .timeout_ms = 500,
                            .notify = note };
    pthread_mutex_lock(&said_lock);
    memset(&said, 0, sizeof(said));
    pthread_mutex_unlock(&said_lock);
    struct rexec *x = rexec_new(&o);
    assert_non_null(x);
    fk_set("slave", 0);
    assert_int_equal(rexec_connect(x), CB_ERR_IO);     /* after 2 s for an event */
    assert_contains(rexec_errstr(x), "named as the primary of m, but ROLE says slave");
    assert_false(rexec_connected(x));
    fk_set("master", 0);
    assert_int_equal(rexec_connect(x), CB_OK);
    assert_string_equal(rexec_address(x), addr);
    memset(&c, 0, sizeof(c));
    rexec_counters(x, &c);
    assert_string_equal(c.primary, addr);
    fk_set("master", 1);
    assert_int_equal(rexec_cmd_format(&cmd, 0, 3, set, NULL), CB_OK);
    assert_int_equal(rexec_exec(x, &cmd, 1), CB_OK);   /* the reply stands ... */
    assert_int_equal(cmd.reply->type, REDIS_REPLY_ERROR);
    assert_false(rexec_connected(x));                   /* ... the connection goes */
    assert_said("answered READONLY: it is no longer the primary of m");
    assert_said("sentinel: watching 127.0.0.1:");   /* the watcher's */
    fk_set("master", 0);
    assert_int_equal(rexec_connect(x), CB_OK);
    rexec_cmd_clear(&cmd);
    rexec_free(x);
    fk_stop();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_addr),
        cmocka_unit_test(test_parse_role),
        cmocka_unit_test(test_parse_event),
        cmocka_unit_test(test_new),
        cmocka_unit_test(test_locate_in_turn),
        cmocka_unit_test(test_locate_errors),
        cmocka_unit_test(test_locate_fall_back),
        cmocka_unit_test(test_confirm_counts),
        cmocka_unit_test(test_switch_event),
        cmocka_unit_test(test_failover_events),
        cmocka_unit_test(test_rexec_new),
        cmocka_unit_test(test_role_and_readonly),
    };
    return cmocka_run_group_tests_name("sentinel", tests, NULL, NULL);
}
