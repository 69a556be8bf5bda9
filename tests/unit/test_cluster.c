/* test_cluster.c -- Redis Cluster routing (bridge/cluster.c): CRC16 and
 * hash tags against the specification and redis-cli CLUSTER KEYSLOT, the
 * parsers of CLUSTER SLOTS and of MOVED/ASK, and the batch logic against
 * two fake nodes on loopback (threads of this process answering what each
 * test scripts): redirections, their bound, reply order across nodes,
 * TRYAGAIN and a connection dropped in the middle of a batch. */
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

#include "cluster.h"
#include "result.h"
#include "rexec.h"
#include "rnode.h"

/* ==================== Slots ==================== */

/* The specification's CRC16 check value: "123456789" -> 0x31C3. */
static void test_crc16_vector(void **state) {
    (void)state;
    assert_int_equal(cluster_keyslot("123456789", 9), 0x31C3);
    assert_int_equal(cluster_keyslot("123456789", 9), 12739);
}

/* What redis-cli CLUSTER KEYSLOT answers (Redis 7.0.15). */
static void test_keyslot_redis(void **state) {
    static const struct { const char *key; unsigned slot; } known[] = {
        { "foo", 12182 }, { "bar", 5061 }, { "hello", 866 },
        { "somekey", 11058 }, { "user1000", 3443 }, { "", 0 },
        { "{}", 15257 }, { "{", 4092 }, { "}", 12090 }, { "a{b", 13340 },
        { "a}b{c}", 7365 }, { "{a}", 15495 }, { "a", 15495 },
        { "foo{}{bar}", 8363 }, { "foo{{bar}}zap", 4015 },
        { "foo{bar}{zap}", 5061 },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        assert_int_equal(cluster_keyslot(known[i].key, strlen(known[i].key)),
                         known[i].slot);
}

/* The specification's hash tag examples. */
static void test_hash_tags(void **state) {
    (void)state;
#define SLOT(s) cluster_keyslot(s, sizeof(s) - 1)
    assert_int_equal(SLOT("{user1000}.following"), SLOT("{user1000}.followers"));
    assert_int_equal(SLOT("{user1000}.following"), SLOT("user1000"));
    assert_int_equal(SLOT("foo{}{bar}"), SLOT("foo{}{bar}"));
    assert_int_not_equal(SLOT("foo{}{bar}"), SLOT("bar"));   /* whole key */
    assert_int_equal(SLOT("foo{{bar}}zap"), SLOT("{bar"));   /* tag "{bar" */
    assert_int_equal(SLOT("foo{bar}{zap}"), SLOT("bar"));    /* first tag */
    /* Only len bytes count; NUL is an ordinary byte. */
    assert_int_equal(cluster_keyslot("{a}xyz", 3), SLOT("a"));
    assert_int_equal(cluster_keyslot("a\0b", 3), cluster_keyslot("a\0b", 3));
    assert_int_not_equal(cluster_keyslot("a\0b", 3), SLOT("a"));
}

/* Every key of one room, as store.c would name them in cluster mode, is
 * in the slot of the room's name. */
static void test_room_keys(void **state) {
    static const char *const keys[] = {
        "chatroom:{lobby}:messages", "chatroom:{lobby}", "chatroom:{lobby}:alice",
        "chatroom:{lobby}:17", "chatroom:{lobby}:messages:ids",
        "chatroom:{lobby}:alice:ids", "chatroom:{lobby}:messages:dedup",
        "chatroom:{lobby}:messages:dedup:ts",
        "chatroom:{lobby}:messages:journal:chat-bridge",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_int_equal(cluster_keyslot(keys[i], strlen(keys[i])), 10294);
    assert_int_equal(SLOT("lobby"), 10294);
    assert_int_not_equal(SLOT("chatroom:{kitchen}:messages"), 10294);
}

/* ==================== Parsers ==================== */

static void test_parse_addr(void **state) {
    char host[64];
    int port = 0;
    (void)state;
    assert_int_equal(rnode_parse_addr("127.0.0.1:6379", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6379);
    assert_int_equal(rnode_parse_addr("redis-1.example:7001", host, sizeof(host), &port), 0);
    assert_string_equal(host, "redis-1.example");
    assert_int_equal(rnode_parse_addr("[::1]:7000", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(rnode_parse_addr("::1:7000", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(rnode_parse_addr(":6380", host, sizeof(host), &port), 0);
    assert_string_equal(host, "");
    assert_int_equal(port, 6380);
    static const char *const bad[] = { "localhost", "h:", "h:0", "h:65536",
        "h:12x", "h:-1", "h: 1", "h:+1", "" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(rnode_parse_addr(bad[i], host, sizeof(host), &port), -1);
    assert_int_equal(rnode_parse_addr("abcdef:1", host, 6, &port), -1);
    assert_int_equal(rnode_parse_addr("abcde:1", host, 6, &port), 0);
}

static void test_parse_redirect(void **state) {
    char addr[64];
    unsigned slot = 0;
    (void)state;
    assert_int_equal(cluster_parse_redirect("MOVED 3999 127.0.0.1:6381", &slot,
                                            addr, sizeof(addr)), CLUSTER_MOVED);
    assert_int_equal(slot, 3999);
    assert_string_equal(addr, "127.0.0.1:6381");
    assert_int_equal(cluster_parse_redirect("ASK 16383 10.0.0.2:7002", &slot,
                                            addr, sizeof(addr)), CLUSTER_ASK);
    assert_int_equal(slot, 16383);
    assert_string_equal(addr, "10.0.0.2:7002");
    assert_int_equal(cluster_parse_redirect("MOVED 0 :6380", &slot, addr,
                                            sizeof(addr)), CLUSTER_MOVED);
    assert_int_equal(slot, 0);
    assert_string_equal(addr, ":6380");
    static const char *const other[] = { "MOVED 16384 h:1", "MOVED x h:1",
        "MOVED 1 h", "MOVED 1 h:0", "MOVED -1 h:1", "MOVED 1", "MOVED",
        "MOVEDX 1 h:1", "ASK 12", "moved 1 h:1", "ERR unknown command",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "CLUSTERDOWN The cluster is down", "" };
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
        assert_int_equal(cluster_parse_redirect(other[i], &slot, addr, sizeof(addr)),
                         CLUSTER_NO_REDIRECT);
    /* An address that does not fit is no redirection either. */
    assert_int_equal(cluster_parse_redirect("ASK 1 127.0.0.1:6381", &slot, addr, 8),
                     CLUSTER_NO_REDIRECT);
}

/* A reply parsed from RESP text, as hiredis would have read it. */
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

static struct cluster *new_cluster(const char *seed, int timeout_ms) {
    const char *seeds[] = { seed };
    struct cluster_opts o = { .seeds = seeds, .nseeds = 1, .timeout_ms = timeout_ms };
    struct cluster *c = cluster_new(&o);
    assert_non_null(c);
    return c;
}

/* Redis 7.0's form: a node is { ip, port, id, { metadata } }, replicas
 * after the primary. One range has an empty ip (the node asked), one an
 * unknown endpoint ("?"). */
static const char slots_7[] =
    "*4\r\n"
    "*4\r\n:0\r\n:5460\r\n"
        "*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n*0\r\n"
        "*4\r\n$9\r\n127.0.0.1\r\n:7100\r\n$2\r\nre\r\n*0\r\n"
    "*3\r\n:5461\r\n:10922\r\n"
        "*3\r\n$9\r\n127.0.0.2\r\n:7001\r\n$2\r\nid\r\n"
    "*3\r\n:10923\r\n:16382\r\n"
        "*2\r\n$0\r\n\r\n:7002\r\n"
    "*3\r\n:16383\r\n:16383\r\n"
        "*2\r\n$1\r\n?\r\n:7003\r\n";

static void test_load_slots(void **state) {
    struct cluster *c = new_cluster("127.0.0.1:7000", 1000);
    redisReply *r = resp(slots_7);
    struct cluster_stats st;
    (void)state;
    assert_null(cluster_slot_addr(c, 0));
    assert_int_equal(cluster_load_slots(c, r, "10.1.1.1:7002"), CB_OK);
    assert_string_equal(cluster_slot_addr(c, 0), "127.0.0.1:7000");
    assert_string_equal(cluster_slot_addr(c, 5460), "127.0.0.1:7000");
    assert_string_equal(cluster_slot_addr(c, 5461), "127.0.0.2:7001");
    assert_string_equal(cluster_slot_addr(c, 10922), "127.0.0.2:7001");
    assert_string_equal(cluster_slot_addr(c, 10923), "10.1.1.1:7002");
    assert_string_equal(cluster_slot_addr(c, 16382), "10.1.1.1:7002");
    assert_null(cluster_slot_addr(c, 16383));
    assert_null(cluster_slot_addr(c, 16384));
    freeReplyObject(r);

    /* A second map: 7000 leaves, 7004 (IPv6) arrives. */
    r = resp("*2\r\n*3\r\n:0\r\n:99\r\n*2\r\n$3\r\n::1\r\n:7004\r\n"
             "*3\r\n:100\r\n:16383\r\n*2\r\n$9\r\n127.0.0.2\r\n:7001\r\n");
    assert_int_equal(cluster_load_slots(c, r, "127.0.0.2:7001"), CB_OK);
    assert_string_equal(cluster_slot_addr(c, 0), "[::1]:7004");
    assert_string_equal(cluster_slot_addr(c, 100), "127.0.0.2:7001");
    assert_string_equal(cluster_slot_addr(c, 16383), "127.0.0.2:7001");
    freeReplyObject(r);

    /* A node serving no slot (reset, or a cluster being created) is not
     * asked to wipe the map: refused, the map kept, the next node tried. */
    r = resp("*0\r\n");
    assert_int_equal(cluster_load_slots(c, r, "127.0.0.2:7001"), CB_ERR_PROTO);
    assert_string_equal(cluster_slot_addr(c, 100), "127.0.0.2:7001");
    freeReplyObject(r);
    cluster_get_stats(c, &st);
    assert_int_equal(st.refreshes, 2);
    assert_int_equal(st.moved + st.ask + st.retry + st.connects, 0);
    cluster_free(c);
}

/* A malformed answer is refused whole: the map stays as it was. */
static void test_load_slots_malformed(void **state) {
    static const char *const bad[] = {
        "-ERR This instance has cluster support disabled\r\n",
        "$2\r\nno\r\n",
        "*1\r\n:1\r\n",
        "*1\r\n*2\r\n:0\r\n:1\r\n",                                  /* no node */
        "*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$1\r\nh\r\n:1\r\n",           /* start > end */
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",       /* end too far */
        "*1\r\n*3\r\n:-1\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        "*1\r\n*3\r\n$1\r\n0\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n",      /* start string */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n$4\r\n7000\r\n",   /* port string */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n",           /* port 0 */
        "*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nh\r\n",                 /* no port */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:1\r\n:1\r\n",                /* ip integer */
    };
    struct cluster *c = new_cluster("127.0.0.1:7000", 1000);
    redisReply *good = resp("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$1\r\nh\r\n:9\r\n");
    (void)state;
    assert_int_equal(cluster_load_slots(c, good, "h:9"), CB_OK);
    freeReplyObject(good);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        redisReply *r = resp(bad[i]);
        assert_int_equal(cluster_load_slots(c, r, "h:9"), CB_ERR_PROTO);
        assert_true(strncmp(cluster_errstr(c), "CLUSTER SLOTS: ", 15) == 0);
        assert_string_equal(cluster_slot_addr(c, 1), "h:9");
        freeReplyObject(r);
    }
    cluster_free(c);
}

static void test_new_refuses(void **state) {
    const char *bad[] = { "nohost" }, *empty[] = { ":6379" },
               *range[] = { "h:70000" }, *good[] = { "h:1", "[::1]:2" };
    struct cluster_opts o = { .seeds = good, .nseeds = 0 };
    (void)state;
    assert_null(cluster_new(&o));
    o.nseeds = 1;
    o.seeds = bad;
    assert_null(cluster_new(&o));
    o.seeds = empty;
    assert_null(cluster_new(&o));
    o.seeds = range;
    assert_null(cluster_new(&o));
    o.seeds = good;
    o.nseeds = 2;
    o.username = "u";
    o.password = "p";
    struct cluster *c = cluster_new(&o);
    assert_non_null(c);
    cluster_free(c);
    cluster_free(NULL);
}

static void test_cmd_format(void **state) {
    struct rexec_cmd cmd = { 0 };
    const char *argv[] = { "SET", "k\0x", "v" };
    size_t len[] = { 3, 3, 1 };
    static const char want[] = "*3\r\n$3\r\nSET\r\n$3\r\nk\0x\r\n$1\r\nv\r\n";
    (void)state;
    assert_int_equal(rexec_cmd_format(&cmd, 16384 + 5, 3, argv, len), CB_OK);
    assert_int_equal(cmd.len, sizeof(want) - 1);
    assert_memory_equal(cmd.buf, want, sizeof(want) - 1);
    assert_int_equal(cmd.slot, 5);
    assert_int_equal(cmd.result, CB_PENDING);
    /* Formatting again replaces the buffer (valgrind: no leak). */
    assert_int_equal(rexec_cmd_format(&cmd, 7, 1, argv, NULL), CB_OK);
    assert_memory_equal(cmd.buf, "*1\r\n$3\r\nSET\r\n", cmd.len);
    rexec_cmd_clear(&cmd);
    assert_null(cmd.buf);
    assert_int_equal(cmd.len, 0);
}

/* Nothing listens on 127.0.0.1:1: every command is an I/O error, and the
 * error names the address. */
static void test_unreachable(void **state) {
    struct cluster *c = new_cluster("127.0.0.1:1", 300);
    struct rexec_cmd cmds[2] = { { 0 } };
    const char *argv[] = { "GET", "k" };
    (void)state;
    for (int i = 0; i < 2; i++)
        assert_int_equal(rexec_cmd_format(&cmds[i], cluster_keyslot("k", 1), 2,
                                          argv, NULL), CB_OK);
    assert_int_equal(cluster_exec(c, cmds, 2), CB_ERR_IO);
    assert_int_equal(cmds[0].result, CB_PENDING);
    assert_int_equal(cmds[1].result, CB_PENDING);
    assert_null(cmds[0].reply);
    assert_non_null(strstr(cluster_errstr(c), "127.0.0.1:1"));
    assert_int_equal(cluster_refresh(c), CB_ERR_IO);

    /* A map naming a dead node: its commands are I/O errors; a slot
     * without a primary is to be retried. */
    redisReply *r = resp("*1\r\n*3\r\n:0\r\n:100\r\n*2\r\n$9\r\n127.0.0.1\r\n:1\r\n");
    assert_int_equal(cluster_load_slots(c, r, "127.0.0.1:1"), CB_OK);
    freeReplyObject(r);
    assert_int_equal(rexec_cmd_format(&cmds[0], 50, 2, argv, NULL), CB_OK);
    assert_int_equal(rexec_cmd_format(&cmds[1], 5000, 2, argv, NULL), CB_OK);
    assert_int_equal(cluster_exec(c, cmds, 2), CB_ERR_IO);
    assert_int_equal(cmds[0].result, CB_PENDING);
    assert_int_equal(cmds[1].result, CB_RETRY);
    for (int i = 0; i < 2; i++) rexec_cmd_clear(&cmds[i]);
    cluster_free(c);
}

/* ==================== Fake nodes ==================== */

/* Two fake nodes, A (0) and B (1). Each is a thread accepting up to four
 * connections and answering every request with what the current test's
 * script says; it handles ASKING itself (+OK, and the next request of
 * that connection is flagged). Requests are parsed with hiredis' reader. */
enum { FAKES = 2, FAKE_CLIENTS = 4 };

/* Answer one request of node 'node' into out; -1 closes the connection. */
typedef int (*fake_script)(int node, int asking, const redisReply *req,
                           char *out, size_t outlen);

struct fake {
    int id, lfd, port, stop[2];
    pthread_t thread;
};

static struct fake fakes[FAKES];
static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static fake_script script;
static int split = CLUSTER_SLOTS;       /* slots below: A, the others: B */
static int requests[FAKES], asked[FAKES];   /* counted under fake_lock */
static char seen[FAKES][512];           /* first words of the requests */

struct fake_client { int fd; int asking; redisReader *rd; };

static void fake_close(struct fake_client *cl) {
    if (cl->fd < 0) return;
    close(cl->fd);
    redisReaderFree(cl->rd);
    cl->fd = -1;
}

/* One request: ASKING or the script's answer. -1: close. */
static int fake_request(struct fake *f, struct fake_client *cl, const redisReply *req) {
    char out[1024];
    int rc = 0;
    if (req->type != REDIS_REPLY_ARRAY || req->elements == 0) return -1;
    pthread_mutex_lock(&fake_lock);
    requests[f->id]++;
    size_t used = strlen(seen[f->id]);
    snprintf(seen[f->id] + used, sizeof(seen[0]) - used, "%s ", req->element[0]->str);
    if (strcmp(req->element[0]->str, "ASKING") == 0) {
        asked[f->id]++;
        cl->asking = 1;
        snprintf(out, sizeof(out), "+OK\r\n");
    } else {
        rc = script(f->id, cl->asking, req, out, sizeof(out));
        cl->asking = 0;
    }
    pthread_mutex_unlock(&fake_lock);
    if (rc == 0 && write(cl->fd, out, strlen(out)) != (ssize_t)strlen(out)) rc = -1;
    return rc;
}

/* Read what a client sent and answer every whole request in it. */
static void fake_readable(struct fake *f, struct fake_client *cl) {
    char buf[4096];
    void *req = NULL;
    ssize_t got = read(cl->fd, buf, sizeof(buf));
    if (got <= 0 || redisReaderFeed(cl->rd, buf, (size_t)got) != REDIS_OK) {
        fake_close(cl);
        return;
    }
    while (cl->fd >= 0 && redisReaderGetReply(cl->rd, &req) == REDIS_OK && req) {
        if (fake_request(f, cl, req) < 0) fake_close(cl);
        freeReplyObject(req);
        req = NULL;
    }
}

static void *fake_main(void *arg) {
    struct fake *f = arg;
    struct fake_client cl[FAKE_CLIENTS];
    for (int i = 0; i < FAKE_CLIENTS; i++) cl[i].fd = -1;
    for (;;) {
        struct pollfd p[2 + FAKE_CLIENTS] = { { f->stop[0], POLLIN, 0 }, { f->lfd, POLLIN, 0 } };
        for (int i = 0; i < FAKE_CLIENTS; i++) p[2 + i] = (struct pollfd){ cl[i].fd, POLLIN, 0 };
        if (poll(p, 2 + FAKE_CLIENTS, -1) < 0 || p[0].revents) break;
        for (int i = 0; i < FAKE_CLIENTS; i++)
            if (cl[i].fd >= 0 && p[2 + i].revents) fake_readable(f, &cl[i]);
        if (!p[1].revents) continue;
        int fd = accept(f->lfd, NULL, NULL), i = 0;
        while (i < FAKE_CLIENTS && cl[i].fd >= 0) i++;
        if (fd >= 0 && i == FAKE_CLIENTS) close(fd);
        if (fd < 0 || i == FAKE_CLIENTS) continue;
        cl[i] = (struct fake_client){ fd, 0, redisReaderCreate() };
    }
    for (int i = 0; i < FAKE_CLIENTS; i++) fake_close(&cl[i]);
    return NULL;
}

static void fake_start(struct fake *f, int id) {
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->id = id;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->lfd, 8), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &len), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pipe(f->stop), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f) {
    assert_int_equal(write(f->stop[1], "x", 1), 1);
    pthread_join(f->thread, NULL);
    close(f->stop[0]);
    close(f->stop[1]);
    close(f->lfd);
}

static int fakes_setup(void **state) {
    (void)state;
    for (int i = 0; i < FAKES; i++) fake_start(&fakes[i], i);
    return 0;
}

static int fakes_teardown(void **state) {
    (void)state;
    for (int i = 0; i < FAKES; i++) fake_stop(&fakes[i]);
    return 0;
}

/* Per test: a script, the map split, the counters zeroed. */
static void fakes_reset(fake_script s, int at) {
    pthread_mutex_lock(&fake_lock);
    script = s;
    split = at;
    memset(requests, 0, sizeof(requests));
    memset(asked, 0, sizeof(asked));
    memset(seen, 0, sizeof(seen));
    pthread_mutex_unlock(&fake_lock);
}

/* CLUSTER SLOTS as both fakes answer it, from 'split'. */
static void slots_answer(char *out, size_t outlen) {
    char a[128] = "", b[128] = "";
    int n = 0;
    if (split > 0)
        n++, snprintf(a, sizeof(a), "*3\r\n:0\r\n:%d\r\n*2\r\n$9\r\n127.0.0.1\r\n:%d\r\n",
                      split - 1, fakes[0].port);
    if (split < CLUSTER_SLOTS)
        n++, snprintf(b, sizeof(b), "*3\r\n:%d\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:%d\r\n",
                      split, fakes[1].port);
    snprintf(out, outlen, "*%d\r\n%s%s", n, a, b);
}

static int is(const redisReply *req, size_t i, const char *s) {
    return i < req->elements && strcmp(req->element[i]->str, s) == 0;
}

/* "$<len>\r\n<s>\r\n" */
static void bulk(char *out, size_t outlen, const char *s) {
    snprintf(out, outlen, "$%zu\r\n%s\r\n", strlen(s), s);
}

static void fmt_cmd(struct rexec_cmd *cmd, const char *verb, const char *key) {
    const char *argv[] = { verb, key };
    assert_int_equal(rexec_cmd_format(cmd, cluster_keyslot(key, strlen(key)), 2,
                                      argv, NULL), CB_OK);
}

static struct cluster *fake_cluster(void) {
    char seed[32];
    snprintf(seed, sizeof(seed), "127.0.0.1:%d", fakes[0].port);
    return new_cluster(seed, 2000);
}

static void assert_bulk(const struct rexec_cmd *cmd, const char *s) {
    assert_int_equal(cmd->result, CB_DONE);
    assert_non_null(cmd->reply);
    assert_int_equal(cmd->reply->type, REDIS_REPLY_STRING);
    assert_string_equal(cmd->reply->str, s);
}

/* ---- Every GET k answers "<node>:<k>": replies reach their commands. ---- */

static int echo_script(int node, int asking, const redisReply *req, char *out, size_t outlen) {
    char v[128];
    (void)asking;
    if (is(req, 0, "CLUSTER")) {
        slots_answer(out, outlen);
        return 0;
    }
    snprintf(v, sizeof(v), "%c:%s", "AB"[node], req->element[1]->str);
    bulk(out, outlen, v);
    return 0;
}

static void test_order_across_nodes(void **state) {
    enum { N = 40 };
    struct cluster *c = fake_cluster();
    struct rexec_cmd cmds[N] = { { 0 } };
    char key[16], want[32];
    struct cluster_stats st;
    (void)state;
    fakes_reset(echo_script, 8192);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key:%d", i);
        fmt_cmd(&cmds[i], "GET", key);
    }
    assert_int_equal(cluster_exec(c, cmds, N), CB_OK);
    int on[FAKES] = { 0 };
    for (int i = 0; i < N; i++) {
        int node = cmds[i].slot < 8192 ? 0 : 1;
        on[node]++;
        snprintf(want, sizeof(want), "%c:key:%d", "AB"[node], i);
        assert_bulk(&cmds[i], want);
    }
    assert_true(on[0] > 5 && on[1] > 5);
    /* One CLUSTER SLOTS, then exactly the GETs, pipelined per node. */
    assert_int_equal(requests[0] + requests[1], N + 1);
    cluster_get_stats(c, &st);
    assert_int_equal(st.refreshes, 1);
    assert_int_equal(st.connects, 2);      /* the seed's connection is kept */
    assert_int_equal(st.moved + st.ask, 0);

    /* Passing the batch again runs nothing: every command has a result. */
    assert_int_equal(cluster_exec(c, cmds, N), CB_OK);
    assert_int_equal(requests[0] + requests[1], N + 1);
    /* A refresh asks the connected node again, on its connection. */
    assert_int_equal(cluster_refresh(c), CB_OK);
    cluster_get_stats(c, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.refreshes, 2);
    for (int i = 0; i < N; i++) rexec_cmd_clear(&cmds[i]);
    cluster_free(c);
}

/* ---- MOVED: the slot now is B's, but A's map still says A. ---- */

static int moved_script(int node, int asking, const redisReply *req, char *out, size_t outlen) {
    (void)asking;
    if (is(req, 0, "CLUSTER")) {
        slots_answer(out, outlen);
        return 0;
    }
    if (node == 0 && is(req, 1, "moved")) {
        snprintf(out, outlen, "-MOVED %u 127.0.0.1:%d\r\n",
                 cluster_keyslot("moved", 5), fakes[1].port);
        return 0;
    }
    echo_script(node, asking, req, out, outlen);
    return 0;
}

static void again(struct cluster *c, struct rexec_cmd *cmds, size_t n) {
    fmt_cmd(&cmds[1], "GET", "moved");
    assert_int_equal(cluster_exec(c, cmds, n), CB_OK);
    assert_bulk(&cmds[0], "A:x");
    assert_bulk(&cmds[1], "B:moved");
    assert_bulk(&cmds[2], "A:y");
}

static void test_moved(void **state) {
    struct cluster *c = fake_cluster();
    struct rexec_cmd cmds[3] = { { 0 } };
    struct cluster_stats st;
    unsigned slot = cluster_keyslot("moved", 5);
    char b[32];
    (void)state;
    fakes_reset(moved_script, CLUSTER_SLOTS - 1);    /* B owns 16383 only */
    assert_true(slot < CLUSTER_SLOTS - 1);
    fmt_cmd(&cmds[0], "GET", "x");
    fmt_cmd(&cmds[2], "GET", "y");
    snprintf(b, sizeof(b), "127.0.0.1:%d", fakes[1].port);

    /* The first load was this batch's refresh: MOVED fixes the map. */
    again(c, cmds, 3);
    cluster_get_stats(c, &st);
    assert_int_equal(st.moved, 1);
    assert_int_equal(st.refreshes, 1);
    assert_string_equal(cluster_slot_addr(c, slot), b);

    /* Next batch: the stale map is reloaded first; A still says A, so the
     * command goes to A, which says MOVED again. */
    again(c, cmds, 3);
    cluster_get_stats(c, &st);
    assert_int_equal(st.moved, 2);
    assert_int_equal(st.refreshes, 2);

    /* A fresh map and MOVED in the batch: reloaded between the MOVED and
     * the resend; B stays a primary, so the resend still goes to B. */
    assert_int_equal(cluster_refresh(c), CB_OK);
    again(c, cmds, 3);
    cluster_get_stats(c, &st);
    assert_int_equal(st.moved, 3);
    assert_int_equal(st.refreshes, 4);

    /* The same when B owns nothing: the reload forgets B, so the resend
     * goes to A per the map, MOVED again, then to B. */
    fakes_reset(moved_script, CLUSTER_SLOTS);
    assert_int_equal(cluster_refresh(c), CB_OK);
    again(c, cmds, 3);
    cluster_get_stats(c, &st);
    assert_int_equal(st.moved, 5);
    assert_int_equal(st.refreshes, 6);

    /* Once the cluster agrees, the map says B and nothing is redirected. */
    fakes_reset(moved_script, (int)slot);
    assert_int_equal(cluster_refresh(c), CB_OK);
    assert_string_equal(cluster_slot_addr(c, slot), b);
    again(c, cmds, 3);
    cluster_get_stats(c, &st);
    assert_int_equal(st.moved, 5);
    assert_int_equal(requests[1], 1);
    for (int i = 0; i < 3; i++) rexec_cmd_clear(&cmds[i]);
    cluster_free(c);
}

/* ---- MOVED to and fro: bounded. ---- */

static int pingpong_script(int node, int asking, const redisReply *req, char *out, size_t outlen) {
    (void)asking;
    if (is(req, 0, "CLUSTER")) {
        slots_answer(out, outlen);
        return 0;
    }
    snprintf(out, outlen, "-MOVED %u 127.0.0.1:%d\r\n",
             cluster_keyslot(req->element[1]->str, strlen(req->element[1]->str)),
             fakes[!node].port);
    return 0;
}

static void test_redirect_bound(void **state) {
    struct cluster *c = fake_cluster();
    struct rexec_cmd cmd = { 0 };
    struct cluster_stats st;
    (void)state;
    fakes_reset(pingpong_script, CLUSTER_SLOTS);
    fmt_cmd(&cmd, "GET", "k");
    assert_int_equal(cluster_exec(c, &cmd, 1), CB_OK);
    assert_int_equal(cmd.result, CB_RETRY);
    assert_non_null(cmd.reply);
    assert_true(strncmp(cmd.reply->str, "MOVED ", 6) == 0);
    assert_non_null(strstr(cluster_errstr(c), "redirections"));
    cluster_get_stats(c, &st);
    assert_int_equal(st.moved, CLUSTER_MAX_REDIRECTS + 1);
    assert_int_equal(st.refreshes, 1);       /* the first load was the batch's */
    assert_int_equal(requests[0] + requests[1], 1 + CLUSTER_MAX_REDIRECTS + 1);
    rexec_cmd_clear(&cmd);
    cluster_free(c);
}

/* ---- ASK: B serves the slot's key only after ASKING. ---- */

static int ask_script(int node, int asking, const redisReply *req, char *out, size_t outlen) {
    unsigned slot;
    if (is(req, 0, "CLUSTER")) {
        slots_answer(out, outlen);
        return 0;
    }
    slot = cluster_keyslot(req->element[1]->str, strlen(req->element[1]->str));
    if (node == 0 && is(req, 1, "migrated"))
        snprintf(out, outlen, "-ASK %u 127.0.0.1:%d\r\n", slot, fakes[1].port);
    else if (node == 1 && !asking)
        snprintf(out, outlen, "-MOVED %u 127.0.0.1:%d\r\n", slot, fakes[0].port);
    else
        echo_script(node, asking, req, out, outlen);
    return 0;
}

static void test_ask(void **state) {
    struct cluster *c = fake_cluster();
    struct rexec_cmd cmds[3] = { { 0 } };
    struct cluster_stats st;
    char a[32];
    (void)state;
    fakes_reset(ask_script, CLUSTER_SLOTS);
    fmt_cmd(&cmds[0], "GET", "migrated");
    fmt_cmd(&cmds[1], "GET", "stays");
    fmt_cmd(&cmds[2], "GET", "migrated");
    assert_int_equal(cluster_exec(c, cmds, 3), CB_OK);
    assert_bulk(&cmds[0], "B:migrated");
    assert_bulk(&cmds[1], "A:stays");
    assert_bulk(&cmds[2], "B:migrated");
    cluster_get_stats(c, &st);
    assert_int_equal(st.ask, 2);
    assert_int_equal(st.moved, 0);
    assert_int_equal(asked[1], 2);
    assert_int_equal(st.refreshes, 1);       /* ASK leaves the map alone */
    snprintf(a, sizeof(a), "127.0.0.1:%d", fakes[0].port);
    assert_string_equal(cluster_slot_addr(c, cluster_keyslot("migrated", 8)), a);
    assert_string_equal(seen[1], "ASKING GET ASKING GET ");
    for (int i = 0; i < 3; i++) rexec_cmd_clear(&cmds[i]);
    cluster_free(c);
}

/* ---- TRYAGAIN and CLUSTERDOWN: to be retried, the reply kept. ---- */

static int tryagain_script(int node, int asking, const redisReply *req, char *out, size_t outlen) {
    if (is(req, 1, "busy"))
        snprintf(out, outlen, "-TRYAGAIN Multiple keys request during rehashing of slot\r\n");
    else if (is(req, 1, "down"))
        snprintf(out, outlen, "-CLUSTERDOWN The cluster is down\r\n");
    else if (is(req, 1, "nokey"))
        snprintf(out, outlen, "-ERR wrong number of arguments\r\n");
    else
        echo_script(node, asking, req, out, outlen);
    return 0;
}

static void test_tryagain(void **state) {
    struct cluster *c = fake_cluster();
    struct rexec_cmd cmds[4] = { { 0 } };
    struct cluster_stats st;
    (void)state;
    fakes_reset(tryagain_script, CLUSTER_SLOTS);
    fmt_cmd(&cmds[0], "GET", "busy");
    fmt_cmd(&cmds[1], "GET", "down");
    fmt_cmd(&cmds[2], "GET", "nokey");
    fmt_cmd(&cmds[3], "GET", "fine");
    assert_int_equal(cluster_exec(c, cmds, 4), CB_OK);
    assert_int_equal(cmds[0].result, CB_RETRY);
    assert_true(strncmp(cmds[0].reply->str, "TRYAGAIN", 8) == 0);
    assert_int_equal(cmds[1].result, CB_RETRY);
    assert_true(strncmp(cmds[1].reply->str, "CLUSTERDOWN", 11) == 0);
    assert_int_equal(cmds[2].result, CB_DONE);       /* any other error */
    assert_int_equal(cmds[2].reply->type, REDIS_REPLY_ERROR);
    assert_bulk(&cmds[3], "A:fine");
    cluster_get_stats(c, &st);
    assert_int_equal(st.retry, 2);
    for (int i = 0; i < 4; i++) rexec_cmd_clear(&cmds[i]);
    cluster_free(c);
}

/* ---- B drops the connection at "kill" (once): B's commands of that
 * round fail, A's go through; the batch passed again completes. ---- */

static int died;

static int drop_script(int node, int asking, const redisReply *req, char *out, size_t outlen) {
    if (node == 1 && is(req, 1, "kill") && !died++) return -1;
    if (is(req, 0, "CLUSTER")) {
        slots_answer(out, outlen);
        return 0;
    }
    echo_script(node, asking, req, out, outlen);
    return 0;
}

static void test_connection_lost(void **state) {
    enum { N = 12 };
    struct cluster *c = fake_cluster();
    struct rexec_cmd cmds[N] = { { 0 } };
    struct cluster_stats st;
    char key[16];
    (void)state;
    died = 0;
    fakes_reset(drop_script, 8192);
    assert_true(cluster_keyslot("kill", 4) >= 8192);     /* on B */
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key:%d", i);
        fmt_cmd(&cmds[i], "GET", i == N / 2 ? "kill" : key);
    }
    assert_int_equal(cluster_exec(c, cmds, N), CB_ERR_IO);
    /* B answered what came before "kill" (unless the close became a
     * reset that lost those answers); nothing from "kill" on. */
    for (int i = 0; i < N; i++) {
        if (cmds[i].slot < 8192)
            assert_int_equal(cmds[i].result, CB_DONE);
        else if (i >= N / 2)
            assert_int_equal(cmds[i].result, CB_PENDING);
        else
            assert_true(cmds[i].result == CB_DONE || cmds[i].result == CB_PENDING);
    }
    assert_non_null(strchr(cluster_errstr(c), ':'));
    /* Again: only the failed ones run, on a new connection to B. */
    int before = requests[0];
    assert_int_equal(cluster_exec(c, cmds, N), CB_OK);
    for (int i = 0; i < N; i++) assert_int_equal(cmds[i].result, CB_DONE);
    assert_bulk(&cmds[N / 2], "B:kill");
    cluster_get_stats(c, &st);
    assert_int_equal(st.refreshes, 2);       /* the map was stale: reloaded */
    assert_int_equal(requests[0] - before, 1);   /* that CLUSTER SLOTS only */
    assert_int_equal(st.connects, 3);
    for (int i = 0; i < N; i++) rexec_cmd_clear(&cmds[i]);
    cluster_free(c);
}

/* ---- AUTH: first on every new connection; a refusal is an I/O error
 * whose text does not hold the password. ---- */

static int auth_script(int node, int asking, const redisReply *req, char *out, size_t outlen) {
    if (!is(req, 0, "AUTH")) return tryagain_script(node, asking, req, out, outlen);
    if (req->elements == 3 && is(req, 1, "bridge") && is(req, 2, "s3cret"))
        snprintf(out, outlen, "+OK\r\n");
    else
        snprintf(out, outlen, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    return 0;
}

static void test_auth(void **state) {
    char seed[32];
    const char *seeds[] = { seed };
    struct cluster_opts o = { .seeds = seeds, .nseeds = 1, .timeout_ms = 2000,
                              .username = "bridge", .password = "s3cret" };
    struct rexec_cmd cmds[2] = { { 0 } };
    (void)state;
    snprintf(seed, sizeof(seed), "127.0.0.1:%d", fakes[0].port);
    fakes_reset(auth_script, 8192);
    struct cluster *c = cluster_new(&o);
    assert_non_null(c);
    fmt_cmd(&cmds[0], "GET", "key:0");      /* on A */
    fmt_cmd(&cmds[1], "GET", "key:2");      /* on B */
    assert_true(cmds[0].slot < 8192 && cmds[1].slot >= 8192);
    assert_int_equal(cluster_exec(c, cmds, 2), CB_OK);
    assert_bulk(&cmds[0], "A:key:0");
    assert_bulk(&cmds[1], "B:key:2");
    assert_string_equal(seen[0], "AUTH CLUSTER GET ");
    assert_string_equal(seen[1], "AUTH GET ");
    cluster_free(c);

    o.password = "wrong-s3cret";
    c = cluster_new(&o);
    assert_non_null(c);
    /* Run again: cluster_exec frees the replies of the first run. */
    for (int i = 0; i < 2; i++) cmds[i].result = CB_PENDING;
    assert_int_equal(cluster_exec(c, cmds, 2), CB_ERR_IO);
    assert_int_equal(cmds[0].result, CB_PENDING);
    assert_null(cmds[0].reply);
    assert_non_null(strstr(cluster_errstr(c), "refused the bridge's credentials (redis.username, redis.password): WRONGPASS"));
    assert_null(strstr(cluster_errstr(c), "s3cret"));
    for (int i = 0; i < 2; i++) rexec_cmd_clear(&cmds[i]);
    cluster_free(c);
}

/* ==================== The cluster's executor ==================== */

static struct rexec *fake_rexec(void) {
    char seed[32];
    snprintf(seed, sizeof(seed), "127.0.0.1:%d", fakes[0].port);
    struct rexec_opts o = { .cluster = 1, .cluster_nodes = seed, .timeout_ms = 2000 };
    struct rexec *x = rexec_new(&o);
    assert_non_null(x);
    return x;
}

/* The broadcast (SCRIPT LOAD, WAIT) reaches each primary of the slots
 * once, however many of the slots it owns. */
static void test_rexec_each(void **state) {
    struct rexec *x = fake_rexec();
    const char *argv[] = { "WAIT", "1", "100" };
    unsigned slots[8];
    struct rexec_cmd out[8] = { { 0 } };
    size_t nout = 0;
    char key[16];
    (void)state;
    fakes_reset(echo_script, 8192);
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "key:%d", i);
        slots[i] = cluster_keyslot(key, strlen(key));
    }
    assert_int_equal(rexec_connect(x), CB_OK);
    assert_int_equal(rexec_each(x, slots, 1, 3, argv, out, &nout), CB_OK);
    assert_int_equal(nout, 1);
    rexec_cmd_clear(&out[0]);
    fakes_reset(echo_script, 8192);
    assert_int_equal(rexec_each(x, slots, 8, 3, argv, out, &nout), CB_OK);
    assert_int_equal(nout, 2);
    assert_true((out[0].slot < 8192) != (out[1].slot < 8192));
    for (size_t i = 0; i < nout; i++) {
        assert_int_equal(out[i].result, CB_DONE);
        rexec_cmd_clear(&out[i]);
    }
    assert_string_equal(seen[0], "WAIT ");
    assert_string_equal(seen[1], "WAIT ");
    rexec_free(x);
}

/* Through the executor: MOVED and ASK counted; a lost node disconnects
 * the executor, whose next connect reloads the map. */
static void test_rexec_cluster(void **state) {
    struct rexec *x = fake_rexec();
    struct rexec_cmd cmds[3] = { { 0 } };
    struct rexec_counters xc;
    (void)state;
    assert_true(strncmp(rexec_address(x), "cluster 127.0.0.1:", 18) == 0);
    fakes_reset(moved_script, CLUSTER_SLOTS - 1);
    assert_int_equal(rexec_exec(x, cmds, 0), CB_ERR_IO);      /* not connected */
    assert_int_equal(rexec_connect(x), CB_OK);
    fmt_cmd(&cmds[0], "GET", "x");
    fmt_cmd(&cmds[2], "GET", "y");
    fmt_cmd(&cmds[1], "GET", "moved");
    assert_int_equal(rexec_exec(x, cmds, 3), CB_OK);
    assert_bulk(&cmds[1], "B:moved");
    rexec_counters(x, &xc);
    assert_int_equal(xc.moved, 1);
    assert_int_equal(xc.ask, 0);

    died = 0;
    fakes_reset(drop_script, 8192);
    fmt_cmd(&cmds[0], "GET", "kill");
    fmt_cmd(&cmds[1], "GET", "key:0");
    assert_int_equal(rexec_connect(x), CB_OK);      /* the map as it is now */
    assert_int_equal(rexec_exec(x, cmds, 2), CB_ERR_IO);
    assert_int_equal(cmds[0].result, CB_PENDING);
    assert_false(rexec_connected(x));
    assert_true(strncmp(rexec_errstr(x), "redis cluster 127.0.0.1:", 24) == 0);
    assert_int_equal(rexec_connect(x), CB_OK);
    assert_int_equal(rexec_exec(x, cmds, 2), CB_OK);
    assert_bulk(&cmds[0], "B:kill");
    for (int i = 0; i < 3; i++) rexec_cmd_clear(&cmds[i]);
    rexec_free(x);
}

int main(void) {
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_crc16_vector),
        cmocka_unit_test(test_keyslot_redis),
        cmocka_unit_test(test_hash_tags),
        cmocka_unit_test(test_room_keys),
        cmocka_unit_test(test_parse_addr),
        cmocka_unit_test(test_parse_redirect),
        cmocka_unit_test(test_load_slots),
        cmocka_unit_test(test_load_slots_malformed),
        cmocka_unit_test(test_new_refuses),
        cmocka_unit_test(test_cmd_format),
        cmocka_unit_test(test_unreachable),
    };
    const struct CMUnitTest faked[] = {
        cmocka_unit_test(test_order_across_nodes),
        cmocka_unit_test(test_moved),
        cmocka_unit_test(test_redirect_bound),
        cmocka_unit_test(test_ask),
        cmocka_unit_test(test_tryagain),
        cmocka_unit_test(test_connection_lost),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_rexec_each),
        cmocka_unit_test(test_rexec_cluster),
    };
    int failed = cmocka_run_group_tests_name("cluster", pure, NULL, NULL);
    return failed + cmocka_run_group_tests_name("cluster, fake nodes", faked,
                                                fakes_setup, fakes_teardown);
}
