/* test_rexec.c -- the executor interface (bridge/rexec.c), the one-node
 * executor (bridge/rnode.c) and the store over it (bridge/store.c),
 * without a Redis server: a fake node, a thread of this process on a Unix
 * socket or on loopback TCP, answers what each test scripts. Covered:
 * pipelining and reply order, a connection lost in the middle of a batch,
 * the per-node broadcast (rexec_each), AUTH and its refusal, the locator
 * (the seam for Sentinel), the address parsers; the store's NOSCRIPT
 * reload, WAIT, transient and permanent errors, keys as named before.
 * The cluster executor is tested in test_cluster.c. */
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
#include <sys/un.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "request.h"
#include "result.h"
#include "rexec.h"
#include "rnode.h"
#include "store.h"

extern const char script_send_lua[], script_history_lua[], script_delete_lua[];
extern const char script_send_sha[], script_history_sha[], script_delete_sha[];
extern const char script_adopt_lua[], script_reap_lua[];     /* issue #13 */
extern const char script_adopt_sha[], script_reap_sha[];
extern const char script_edit_lua[], script_read_lua[];       /* issue #14 */
extern const char script_edit_sha[], script_read_sha[];
extern const char script_members_lua[], script_rooms_lua[];
extern const char script_members_sha[], script_rooms_sha[];

/* ==================== The fake node ==================== */

/* Answer one request into out; -1 closes the connection (after the
 * answers already given: a FIN, never a reset). */
typedef int (*fake_script)(const redisReply *req, char *out, size_t outlen);

enum { FAKE_CLIENTS = 4, FAKE_OUT = 65536 };

struct fake_client {
    int fd, closing;
    redisReader *rd;
    char out[FAKE_OUT];        /* answers held back (see hold) */
    size_t used;
};

static struct {
    int unix_fd, tcp_fd, port, stop[2];
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    pthread_t thread;
} fake;

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static fake_script script;
static int hold;              /* answers are held until this many requests */
static int loading;           /* PING answers -LOADING */
static int requests;          /* counted under fake_lock */
static char seen[2048];       /* the first word of every request */

static void fake_close(struct fake_client *cl) {
    if (cl->fd < 0) return;
    close(cl->fd);
    redisReaderFree(cl->rd);
    cl->fd = -1;
}

/* Write what the client is owed, once 'hold' requests have come. */
static void fake_flush(struct fake_client *cl) {
    if (requests < hold || cl->used == 0) return;
    if (write(cl->fd, cl->out, cl->used) != (ssize_t)cl->used) cl->closing = 1;
    cl->used = 0;
}

/* One request: counted, noted, answered by the script. */
static void fake_request(struct fake_client *cl, const redisReply *req) {
    char out[1024] = "";
    pthread_mutex_lock(&fake_lock);
    requests++;
    size_t n = strlen(seen);
    snprintf(seen + n, sizeof(seen) - n, "%s ", req->element[0]->str);
    int rc = 0;
    if (strcmp(req->element[0]->str, "PING") == 0)
        snprintf(out, sizeof(out), loading ? "-LOADING Redis is loading the dataset "
                 "in memory\r\n" : "+PONG\r\n");
    else
        rc = script(req, out, sizeof(out));
    size_t len = strlen(out);
    if (cl->used + len <= sizeof(cl->out)) {
        memcpy(cl->out + cl->used, out, len);
        cl->used += len;
    }
    fake_flush(cl);
    pthread_mutex_unlock(&fake_lock);
    if (rc < 0 && !cl->closing) {
        cl->closing = 1;
        shutdown(cl->fd, SHUT_WR);        /* what was answered arrives */
    }
}

/* Read what a client sent and answer every whole request in it; a
 * closing client's requests are read and dropped until it goes. */
static void fake_readable(struct fake_client *cl) {
    char buf[8192];
    void *req = NULL;
    ssize_t got = read(cl->fd, buf, sizeof(buf));
    if (got <= 0 || redisReaderFeed(cl->rd, buf, (size_t)got) != REDIS_OK) {
        fake_close(cl);
        return;
    }
    while (redisReaderGetReply(cl->rd, &req) == REDIS_OK && req) {
        if (!cl->closing) fake_request(cl, req);
        freeReplyObject(req);
        req = NULL;
    }
}

static void fake_accept(struct fake_client *cl, int lfd) {
    int fd = accept(lfd, NULL, NULL), i = 0;
    while (i < FAKE_CLIENTS && cl[i].fd >= 0) i++;
    if (fd >= 0 && i == FAKE_CLIENTS) close(fd);
    if (fd < 0 || i == FAKE_CLIENTS) return;
    cl[i].fd = fd;
    cl[i].closing = 0;
    cl[i].used = 0;
    cl[i].rd = redisReaderCreate();
}

static void *fake_main(void *arg) {
    static struct fake_client cl[FAKE_CLIENTS];
    (void)arg;
    for (int i = 0; i < FAKE_CLIENTS; i++) cl[i].fd = -1;
    for (;;) {
        struct pollfd p[3 + FAKE_CLIENTS] = { { fake.stop[0], POLLIN, 0 },
            { fake.unix_fd, POLLIN, 0 }, { fake.tcp_fd, POLLIN, 0 } };
        for (int i = 0; i < FAKE_CLIENTS; i++) p[3 + i] = (struct pollfd){ cl[i].fd, POLLIN, 0 };
        if (poll(p, 3 + FAKE_CLIENTS, -1) < 0 || p[0].revents) break;
        for (int i = 0; i < FAKE_CLIENTS; i++)
            if (cl[i].fd >= 0 && p[3 + i].revents) fake_readable(&cl[i]);
        if (p[1].revents) fake_accept(cl, fake.unix_fd);
        if (p[2].revents) fake_accept(cl, fake.tcp_fd);
    }
    for (int i = 0; i < FAKE_CLIENTS; i++) fake_close(&cl[i]);
    return NULL;
}

static int fake_setup(void **state) {
    struct sockaddr_un u = { .sun_family = AF_UNIX };
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    (void)state;
    snprintf(fake.path, sizeof(fake.path), "/tmp/cb-test-rexec-%d.sock", (int)getpid());
    snprintf(u.sun_path, sizeof(u.sun_path), "%s", fake.path);
    unlink(fake.path);
    fake.unix_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fake.unix_fd, (struct sockaddr *)&u, sizeof(u)), 0);
    assert_int_equal(listen(fake.unix_fd, 8), 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fake.tcp_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fake.tcp_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fake.tcp_fd, 8), 0);
    assert_int_equal(getsockname(fake.tcp_fd, (struct sockaddr *)&a, &len), 0);
    fake.port = ntohs(a.sin_port);
    assert_int_equal(pipe(fake.stop), 0);
    assert_int_equal(pthread_create(&fake.thread, NULL, fake_main, NULL), 0);
    return 0;
}

static int fake_teardown(void **state) {
    (void)state;
    assert_int_equal(write(fake.stop[1], "x", 1), 1);
    pthread_join(fake.thread, NULL);
    close(fake.stop[0]);
    close(fake.stop[1]);
    close(fake.unix_fd);
    close(fake.tcp_fd);
    unlink(fake.path);
    return 0;
}

/* Per test: a script, how many requests to hold answers for, counters
 * zeroed. The fake answers PING itself. */
static void fake_reset(fake_script s, int held) {
    pthread_mutex_lock(&fake_lock);
    script = s;
    hold = held;
    loading = 0;
    requests = 0;
    seen[0] = '\0';
    pthread_mutex_unlock(&fake_lock);
}

static int fake_requests(void) {
    pthread_mutex_lock(&fake_lock);
    int n = requests;
    pthread_mutex_unlock(&fake_lock);
    return n;
}

static int is(const redisReply *req, size_t i, const char *s) {
    return i < req->elements && strcmp(req->element[i]->str, s) == 0;
}

static void bulk(char *out, size_t outlen, const char *s) {
    snprintf(out, outlen, "$%zu\r\n%s\r\n", strlen(s), s);
}

/* GET k answers k; WAIT answers 1; anything else +OK. */
static int echo_script(const redisReply *req, char *out, size_t outlen) {
    if (is(req, 0, "GET"))
        bulk(out, outlen, req->element[1]->str);
    else if (is(req, 0, "WAIT"))
        snprintf(out, outlen, ":1\r\n");
    else
        snprintf(out, outlen, "+OK\r\n");
    return 0;
}

/* ==================== Helpers ==================== */

static struct rexec *unix_exec(const char *user, const char *pass) {
    struct rexec_opts o = { .unix_socket = fake.path, .username = user,
                            .password = pass, .timeout_ms = 2000 };
    struct rexec *x = rexec_new(&o);
    assert_non_null(x);
    return x;
}

static void fmt_get(struct rexec_cmd *cmd, const char *key) {
    const char *argv[] = { "GET", key };
    assert_int_equal(rexec_cmd_format(cmd, 0, 2, argv, NULL), CB_OK);
}

static void assert_bulk(const struct rexec_cmd *cmd, const char *s) {
    assert_int_equal(cmd->result, CB_DONE);
    assert_non_null(cmd->reply);
    assert_int_equal(cmd->reply->type, REDIS_REPLY_STRING);
    assert_string_equal(cmd->reply->str, s);
}

/* ==================== Addresses ==================== */

struct collected { int n; char addr[4][64]; };

static int collect(void *arg, const char *host, int port) {
    struct collected *c = arg;
    if (c->n == 3) return CB_ERR_OOM;
    rnode_format_addr(c->addr[c->n++], sizeof(c->addr[0]), host, port);
    return CB_OK;
}

static void test_parse_list(void **state) {
    struct collected c = { 0 };
    (void)state;
    assert_int_equal(rnode_parse_list("10.0.0.1:7000, h:7001 [::1]:7002", collect, &c), 3);
    assert_string_equal(c.addr[0], "10.0.0.1:7000");
    assert_string_equal(c.addr[1], "h:7001");
    assert_string_equal(c.addr[2], "[::1]:7002");
    assert_int_equal(rnode_parse_list("a:1,,b:2", NULL, NULL), 2);
    assert_int_equal(rnode_parse_list("", NULL, NULL), 0);
    assert_int_equal(rnode_parse_list(" , ", NULL, NULL), 0);
    static const char *const bad[] = { "h:1 :2", "h:70000", "h:+7100", "h", "h:1 x" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(rnode_parse_list(bad[i], NULL, NULL), CB_ERR_PROTO);
    /* What the callback returns stops the walk. */
    c.n = 0;
    assert_int_equal(rnode_parse_list("a:1 b:2 c:3 d:4", collect, &c), CB_ERR_OOM);
    char longword[400];
    memset(longword, 'h', sizeof(longword));
    snprintf(longword + 380, 20, ":1");
    assert_int_equal(rnode_parse_list(longword, NULL, NULL), CB_ERR_PROTO);
}

static void test_addresses(void **state) {
    struct rexec_opts o = { .host = "127.0.0.1", .port = 6379 };
    struct rexec *x;
    (void)state;
    x = rexec_new(&o);
    assert_string_equal(rexec_address(x), "127.0.0.1:6379");
    rexec_free(x);
    o.host = "::1";
    x = rexec_new(&o);
    assert_string_equal(rexec_address(x), "[::1]:6379");
    rexec_free(x);
    o.unix_socket = "/run/redis.sock";
    x = rexec_new(&o);
    assert_string_equal(rexec_address(x), "/run/redis.sock");
    rexec_free(x);
    o = (struct rexec_opts){ .host = "h", .port = 7000, .cluster = 1 };
    x = rexec_new(&o);
    assert_string_equal(rexec_address(x), "cluster h:7000");
    rexec_free(x);
    o.cluster_nodes = "a:1, b:2";
    x = rexec_new(&o);
    assert_string_equal(rexec_address(x), "cluster a:1, b:2");
    rexec_free(x);
    o.cluster_nodes = "a:1 b";
    assert_null(rexec_new(&o));
    rexec_free(NULL);
}

/* ==================== One node ==================== */

/* Nothing listens: connecting fails and says where; a batch before any
 * connect is an I/O error too, its commands left pending. */
static void test_unreachable(void **state) {
    struct rexec_opts o = { .unix_socket = "/nonexistent/redis.sock", .timeout_ms = 500 };
    struct rexec *x = rexec_new(&o);
    struct rexec_cmd cmd = { 0 };
    (void)state;
    assert_int_equal(rexec_connect(x), CB_ERR_IO);
    assert_non_null(strstr(rexec_errstr(x), "/nonexistent/redis.sock"));
    assert_false(rexec_connected(x));
    fmt_get(&cmd, "k");
    assert_int_equal(rexec_exec(x, &cmd, 1), CB_ERR_IO);
    assert_int_equal(cmd.result, CB_PENDING);
    assert_non_null(strstr(rexec_errstr(x), "not connected"));
    rexec_cmd_clear(&cmd);
    rexec_free(x);
}

/* Connected means answered: a Redis still loading is not connected. */
static void test_loading(void **state) {
    struct rexec *x = unix_exec(NULL, NULL);
    (void)state;
    fake_reset(echo_script, 0);
    loading = 1;
    assert_int_equal(rexec_connect(x), CB_ERR_IO);
    assert_false(rexec_connected(x));
    assert_non_null(strstr(rexec_errstr(x), "PING: LOADING"));
    loading = 0;
    assert_int_equal(rexec_connect(x), CB_OK);
    assert_string_equal(seen, "PING PING ");
    rexec_free(x);
}

/* The fake holds every answer until all N requests came: a client that
 * waited for a reply before sending the next command would time out. */
static void test_pipelined_in_order(void **state) {
    enum { N = 50 };
    struct rexec *x = unix_exec(NULL, NULL);
    struct rexec_cmd cmds[N] = { { 0 } };
    char key[16];
    (void)state;
    fake_reset(echo_script, 0);
    assert_int_equal(rexec_connect(x), CB_OK);
    assert_true(rexec_connected(x));
    fake_reset(echo_script, N - 1);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key:%d", i);
        fmt_get(&cmds[i], key);
    }
    cmds[3].result = CB_DONE;                /* has a result: skipped */
    assert_int_equal(rexec_exec(x, cmds, N), CB_OK);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key:%d", i);
        if (i != 3) assert_bulk(&cmds[i], key);
    }
    assert_null(cmds[3].reply);
    assert_int_equal(fake_requests(), N - 1);
    /* Passing it again runs nothing. */
    assert_int_equal(rexec_exec(x, cmds, N), CB_OK);
    assert_int_equal(fake_requests(), N - 1);
    for (int i = 0; i < N; i++) rexec_cmd_clear(&cmds[i]);
    rexec_free(x);
}

/* ---- The connection closes at "kill" (once). ---- */

static int died;

static int drop_script(const redisReply *req, char *out, size_t outlen) {
    if (is(req, 1, "kill") && !died++) return -1;
    return echo_script(req, out, outlen);
}

static void test_lost_mid_batch(void **state) {
    enum { N = 10, KILL = 6 };
    struct rexec *x = unix_exec(NULL, NULL);
    struct rexec_cmd cmds[N] = { { 0 } };
    char key[16];
    (void)state;
    died = 0;
    fake_reset(drop_script, 0);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key:%d", i);
        fmt_get(&cmds[i], i == KILL ? "kill" : key);
    }
    assert_int_equal(rexec_connect(x), CB_OK);
    assert_int_equal(rexec_exec(x, cmds, N), CB_ERR_IO);
    for (int i = 0; i < N; i++)
        assert_int_equal(cmds[i].result, i < KILL ? CB_DONE : CB_PENDING);
    assert_null(cmds[KILL].reply);
    assert_false(rexec_connected(x));
    assert_non_null(strstr(rexec_errstr(x), fake.path));
    /* Reconnected, the batch again: only the unanswered ones run. */
    assert_int_equal(rexec_connect(x), CB_OK);
    fake_reset(drop_script, 0);
    assert_int_equal(rexec_exec(x, cmds, N), CB_OK);
    assert_int_equal(fake_requests(), N - KILL);
    assert_bulk(&cmds[KILL], "kill");
    assert_bulk(&cmds[N - 1], "key:9");
    for (int i = 0; i < N; i++) rexec_cmd_clear(&cmds[i]);
    rexec_free(x);
}

/* One node: the broadcast runs once, whatever the slots. */
static void test_each_one_node(void **state) {
    const unsigned slots[] = { 1, 5000, 9000, 1, 16383 };
    const char *argv[] = { "WAIT", "1", "100" };
    struct rexec_cmd out[5] = { { 0 } };
    struct rexec *x = unix_exec(NULL, NULL);
    size_t nout = 9;
    (void)state;
    assert_int_equal(rexec_connect(x), CB_OK);
    fake_reset(echo_script, 0);
    assert_int_equal(rexec_each(x, slots, 0, 3, argv, out, &nout), CB_OK);
    assert_int_equal(nout, 0);
    assert_int_equal(rexec_each(x, slots, 5, 3, argv, out, &nout), CB_OK);
    assert_int_equal(nout, 1);
    assert_int_equal(out[0].result, CB_DONE);
    assert_int_equal(out[0].reply->integer, 1);
    assert_string_equal(seen, "WAIT ");
    rexec_cmd_clear(&out[0]);
    rexec_free(x);
}

/* ---- AUTH ---- */

static int auth_script(const redisReply *req, char *out, size_t outlen) {
    if (!is(req, 0, "AUTH")) return echo_script(req, out, outlen);
    if ((req->elements == 3 && is(req, 1, "bridge") && is(req, 2, "s3cret")) ||
        (req->elements == 2 && is(req, 1, "pw")))
        snprintf(out, outlen, "+OK\r\n");
    else
        snprintf(out, outlen, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    return 0;
}

static void test_auth(void **state) {
    struct rexec_cmd cmd = { 0 };
    struct rexec *x = unix_exec("bridge", "s3cret");
    (void)state;
    fake_reset(auth_script, 0);
    assert_int_equal(rexec_connect(x), CB_OK);
    fmt_get(&cmd, "k");
    assert_int_equal(rexec_exec(x, &cmd, 1), CB_OK);
    assert_bulk(&cmd, "k");
    assert_string_equal(seen, "AUTH PING GET ");
    rexec_free(x);

    x = unix_exec(NULL, "pw");                 /* AUTH password */
    fake_reset(auth_script, 0);
    assert_int_equal(rexec_connect(x), CB_OK);
    assert_string_equal(seen, "AUTH PING ");
    rexec_free(x);

    x = unix_exec("bridge", "wrong-s3cret");
    fake_reset(auth_script, 0);
    assert_int_equal(rexec_connect(x), CB_ERR_IO);
    assert_false(rexec_connected(x));
    assert_non_null(strstr(rexec_errstr(x), "refused the bridge's credentials "
                           "(redis.username, redis.password): WRONGPASS"));
    assert_non_null(strstr(rexec_errstr(x), fake.path));
    assert_null(strstr(rexec_errstr(x), "s3cret"));
    rexec_cmd_clear(&cmd);
    rexec_free(x);
}

/* ---- The locator: where the node is, asked at each connect. ---- */

struct where { int calls, freed, fail; };

static int locate(void *arg, char *host, size_t hostlen, int *port, char *err,
                  size_t errlen) {
    struct where *w = arg;
    w->calls++;
    if (w->fail) {
        snprintf(err, errlen, "sentinel: no primary for mymaster");
        return CB_ERR_IO;
    }
    snprintf(host, hostlen, "127.0.0.1");
    *port = fake.port;
    return CB_OK;
}

static void where_free(void *arg) {
    ((struct where *)arg)->freed++;
}

static struct where located;

static void test_locator(void **state) {
    struct rnode_locator loc = { locate, where_free, &located };
    struct rexec_opts o = { .host = "mymaster", .port = 1, .timeout_ms = 2000 };
    struct rexec_cmd cmd = { 0 };
    char addr[32];
    (void)state;
    struct rexec *x = rnode_rexec_new(&o, &loc);
    assert_non_null(x);
    fake_reset(echo_script, 0);
    assert_int_equal(rexec_connect(x), CB_OK);      /* over TCP */
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", fake.port);
    assert_string_equal(rexec_address(x), addr);
    fmt_get(&cmd, "k");
    assert_int_equal(rexec_exec(x, &cmd, 1), CB_OK);
    assert_bulk(&cmd, "k");
    assert_int_equal(rexec_connect(x), CB_OK);
    assert_int_equal(located.calls, 2);
    located.fail = 1;
    assert_int_equal(rexec_connect(x), CB_ERR_IO);
    assert_string_equal(rexec_errstr(x), "sentinel: no primary for mymaster");
    assert_false(rexec_connected(x));
    rexec_cmd_clear(&cmd);
    rexec_free(x);
    assert_int_equal(located.freed, 1);
}

/* ==================== The store over one node ==================== */

/* Which script a SCRIPT LOAD carries, as its SHA1; NULL: none of ours. */
static const char *script_of(const char *body) {
    if (strcmp(body, script_send_lua) == 0) return script_send_sha;
    if (strcmp(body, script_history_lua) == 0) return script_history_sha;
    if (strcmp(body, script_delete_lua) == 0) return script_delete_sha;
    if (strcmp(body, script_adopt_lua) == 0) return script_adopt_sha;
    if (strcmp(body, script_reap_lua) == 0) return script_reap_sha;
    if (strcmp(body, script_edit_lua) == 0) return script_edit_sha;
    if (strcmp(body, script_read_lua) == 0) return script_read_sha;
    if (strcmp(body, script_members_lua) == 0) return script_members_sha;
    if (strcmp(body, script_rooms_lua) == 0) return script_rooms_sha;
    return NULL;
}

#define SCRIPTS 9               /* and edit, read, members, rooms (issue #14) */
static int loaded;              /* scripts the fake has */
static long long wait_acks;     /* what WAIT answers */
static char first_key[128];     /* KEYS[1] of the last EVALSHA */
static char fresh_args[64];     /* each send's last argument (ARGV[13]) */

/* A Redis that knows the scripts once loaded. A send answers { 7, 0 }
 * except in room "busy", "ro", "nonlocal" and "bad"; a delete 1. */
static int store_script(const redisReply *req, char *out, size_t outlen) {
    if (is(req, 0, "SCRIPT")) {
        const char *sha = script_of(req->element[2]->str);
        loaded += sha != NULL;
        bulk(out, outlen, sha ? sha : "0000");
    } else if (is(req, 0, "WAIT")) {
        snprintf(out, outlen, ":%lld\r\n", wait_acks);
    } else if (loaded < SCRIPTS) {
        snprintf(out, outlen, "-NOSCRIPT No matching script. Please use EVAL.\r\n");
    } else {
        const char *k = req->element[3]->str;
        snprintf(first_key, sizeof(first_key), "%s", k);
        if (is(req, 1, script_send_sha) && strlen(fresh_args) + 2 < sizeof(fresh_args))
            strcat(fresh_args, req->element[req->elements - 1]->str);
        if (strstr(k, ":busy:"))
            snprintf(out, outlen, "-BUSY Redis is busy running a script.\r\n");
        else if (strstr(k, ":ro:"))
            snprintf(out, outlen, "-READONLY You can't write against a read only replica.\r\n");
        else if (strstr(k, ":nonlocal:"))
            snprintf(out, outlen, "-ERR Error running script: non local key\r\n");
        else if (strstr(k, ":bad:"))
            snprintf(out, outlen, "-ERR wrong number of arguments\r\n");
        else if (is(req, 1, script_delete_sha))
            snprintf(out, outlen, ":1\r\n");
        else
            snprintf(out, outlen, "*2\r\n:7\r\n:0\r\n");
    }
    return 0;
}

static struct store *fake_store(int wait_replicas) {
    struct store_opts o = { .unix_socket = fake.path, .key_prefix = "chatroom",
        .bridge_id = "b1", .timeout_ms = 2000, .wait_replicas = wait_replicas,
        .wait_timeout_ms = 100 };
    struct store *s = store_new(&o);
    assert_non_null(s);
    assert_int_equal(store_connect(s), CB_OK);
    return s;
}

static struct request send_req(const char *room) {
    return (struct request){ .kind = REQ_SEND, .room = room, .user = "alice",
                             .client_msg_id = "", .text = "hi", .text_len = 2 };
}

/* The first batch meets NOSCRIPT: the scripts are loaded (their SHA1s
 * those of the build) and the batch runs again, then WAIT once. */
static void test_store_noscript_wait(void **state) {
    struct request r[3] = { send_req("lobby"), send_req("kitchen"),
        { .kind = REQ_DELETE, .room = "lobby", .user = "alice", .id = 3 } };
    struct store_op ops[3];
    struct store_counters sc;
    struct store *s;
    (void)state;
    loaded = 0;
    wait_acks = 1;
    fake_reset(store_script, 0);
    s = fake_store(1);
    for (int i = 0; i < 3; i++) ops[i] = (struct store_op){ .req = &r[i], .seq = 10 + i };
    assert_int_equal(store_exec(s, ops, 3), CB_OK);
    assert_string_equal(seen, "PING EVALSHA EVALSHA EVALSHA SCRIPT SCRIPT SCRIPT SCRIPT SCRIPT "
                              "SCRIPT SCRIPT SCRIPT SCRIPT EVALSHA EVALSHA EVALSHA WAIT ");
    assert_int_equal(ops[0].result, CB_DONE);
    assert_int_equal(ops[0].new_id, 7);
    assert_int_equal(ops[0].how, STORE_NEW);
    assert_int_equal(ops[2].result, CB_DONE);
    assert_string_equal(first_key, "chatroom:lobby");      /* the delete's */
    store_counters(s, &sc);
    assert_int_equal(sc.wait_short + sc.moved + sc.ask, 0);

    /* Scripts known now; a WAIT short of replicas is counted. */
    wait_acks = 0;
    fake_reset(store_script, 0);
    for (int i = 0; i < 3; i++) store_op_clear(&ops[i]);
    assert_int_equal(store_exec(s, ops, 2), CB_OK);
    assert_string_equal(seen, "EVALSHA EVALSHA WAIT ");
    assert_string_equal(first_key, "chatroom:kitchen:messages");
    store_counters(s, &sc);
    assert_int_equal(sc.wait_short, 1);
    assert_non_null(strstr(store_errstr(s), "WAIT: 0 of 1 replicas"));
    for (int i = 0; i < 3; i++) store_op_clear(&ops[i]);
    store_free(s);
}

/* A send tells the script whether its record was ever sent before: a
 * fresh one skips the replay guard's lookup (ARGV[13] "1"), any other
 * "0"; a rerun after NOSCRIPT (nothing ran) keeps it fresh. */
static void test_store_fresh(void **state) {
    struct request r[3] = { send_req("lobby"), send_req("kitchen"), send_req("hall") };
    struct store_op ops[3];
    struct store *s;
    (void)state;
    loaded = 0;
    wait_acks = 0;
    fake_reset(store_script, 0);
    s = fake_store(0);
    for (int i = 0; i < 3; i++)
        ops[i] = (struct store_op){ .req = &r[i], .seq = 10 + i, .fresh = i != 1 };
    fresh_args[0] = '\0';
    assert_int_equal(store_exec(s, ops, 3), CB_OK);
    assert_string_equal(fresh_args, "101");   /* the rerun after NOSCRIPT */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ops[i].result, CB_DONE);
        store_op_clear(&ops[i]);
    }
    store_free(s);
}

/* Transient errors are retried, others fail; nothing written: no WAIT. */
static void test_store_errors(void **state) {
    static const char *const rooms[] = { "busy", "ro", "nonlocal", "bad" };
    static const int want[] = { CB_RETRY, CB_RETRY, CB_RETRY, CB_FAILED };
    struct request r[4];
    struct store_op ops[4];
    struct store *s;
    (void)state;
    loaded = SCRIPTS;
    fake_reset(store_script, 0);
    s = fake_store(1);
    for (int i = 0; i < 4; i++) {
        r[i] = send_req(rooms[i]);
        ops[i] = (struct store_op){ .req = &r[i] };
    }
    assert_int_equal(store_exec(s, ops, 4), CB_OK);
    for (int i = 0; i < 4; i++) assert_int_equal(ops[i].result, want[i]);
    assert_string_equal(seen, "PING EVALSHA EVALSHA EVALSHA EVALSHA ");
    assert_non_null(strstr(store_errstr(s), "wrong number of arguments"));
    for (int i = 0; i < 4; i++) store_op_clear(&ops[i]);
    store_free(s);
}

/* Refused SCRIPT LOAD: the ops stay pending, the connection is kept. */
static int noperm_script(const redisReply *req, char *out, size_t outlen) {
    if (is(req, 0, "SCRIPT"))
        snprintf(out, outlen, "-NOPERM this user has no permissions to run 'script'\r\n");
    else
        snprintf(out, outlen, "-NOSCRIPT No matching script. Please use EVAL.\r\n");
    return 0;
}

static void test_store_load_refused(void **state) {
    struct request r = send_req("lobby");
    struct store_op op = { .req = &r };
    struct store *s;
    (void)state;
    fake_reset(noperm_script, 0);
    s = fake_store(0);
    assert_int_equal(store_exec(s, &op, 1), CB_OK);
    assert_int_equal(op.result, CB_PENDING);
    assert_true(store_connected(s));
    assert_non_null(strstr(store_errstr(s), "SCRIPT LOAD: NOPERM"));
    assert_string_equal(seen, "PING EVALSHA SCRIPT ");
    store_free(s);
}

/* A connection lost in the middle of a batch: what was answered keeps
 * its result, the rest stays pending; reconnected, the rest runs. */
static int store_drop_script(const redisReply *req, char *out, size_t outlen) {
    if (is(req, 0, "EVALSHA") && strstr(req->element[3]->str, ":kill:") && !died++)
        return -1;
    return store_script(req, out, outlen);
}

static void test_store_lost(void **state) {
    struct request r[3] = { send_req("a"), send_req("kill"), send_req("c") };
    struct store_op ops[3];
    struct store *s;
    (void)state;
    loaded = SCRIPTS;
    died = 0;
    fake_reset(store_drop_script, 0);
    s = fake_store(0);
    for (int i = 0; i < 3; i++) ops[i] = (struct store_op){ .req = &r[i] };
    assert_int_equal(store_exec(s, ops, 3), CB_ERR_IO);
    assert_false(store_connected(s));
    assert_int_equal(ops[0].result, CB_DONE);
    assert_int_equal(ops[1].result, CB_PENDING);
    assert_int_equal(ops[2].result, CB_PENDING);
    assert_non_null(strstr(store_errstr(s), fake.path));
    assert_int_equal(store_exec(s, ops, 3), CB_ERR_IO);   /* not connected */
    assert_int_equal(store_connect(s), CB_OK);
    fake_reset(store_drop_script, 0);
    assert_int_equal(store_exec(s, ops, 3), CB_OK);
    assert_int_equal(fake_requests(), 2);
    for (int i = 0; i < 3; i++) assert_int_equal(ops[i].result, CB_DONE);
    for (int i = 0; i < 3; i++) store_op_clear(&ops[i]);
    store_free(s);
}

/* A node that answers NOSCRIPT to every EVALSHA, even right after its
 * SCRIPT LOAD (a slot importing on another node answers so under ASK):
 * the batch stays pending, and the slots of the rerun's refusals are not
 * added to the first pass's (they overran their array). */
static int store_noscript_always(const redisReply *req, char *out, size_t outlen) {
    if (is(req, 0, "SCRIPT")) {
        const char *sha = script_of(req->element[2]->str);
        bulk(out, outlen, sha ? sha : "0000");
    } else {
        snprintf(out, outlen, "-NOSCRIPT No matching script. Please use EVAL.\r\n");
    }
    return 0;
}

static void test_store_noscript_twice(void **state) {
    enum { N = 40 };
    struct request r[N];
    struct store_op ops[N];
    (void)state;
    fake_reset(store_noscript_always, 0);
    struct store *s = fake_store(0);
    for (int i = 0; i < N; i++) {
        r[i] = send_req("lobby");
        ops[i] = (struct store_op){ .req = &r[i], .seq = 100 + i };
    }
    assert_int_equal(store_exec(s, ops, N), CB_OK);
    for (int i = 0; i < N; i++) assert_int_equal(ops[i].result, CB_PENDING);
    for (int i = 0; i < N; i++) store_op_clear(&ops[i]);
    store_free(s);
}

/* A user's rooms (issue #14), on one node: rooms.lua reads the user's
 * list and answers every room at once. Rooms a (last message at 3000 ms),
 * b and c (2000), d (no message); the list also holds "$bad", no valid
 * room, which is passed over. */
static int store_rooms_script(const redisReply *req, char *out, size_t outlen) {
    static const struct { const char *room; long long ts; } rooms[] = {
        { "b", 2000 }, { "d", 0 }, { "$bad", 1 }, { "a", 3000 }, { "c", 2000 } };
    if (!is(req, 0, "EVALSHA") || !is(req, 1, script_rooms_sha))
        return store_script(req, out, outlen);
    size_t n = (size_t)snprintf(out, outlen, "*%d\r\n", 5 * 9);
    for (size_t i = 0; i < 5 && n < outlen; i++) {
        if (rooms[i].ts == 0)
            n += (size_t)snprintf(out + n, outlen - n, "$%zu\r\n%s\r\n:5\r\n:0\r\n:0\r\n"
                                  ":0\r\n$0\r\n\r\n$0\r\n\r\n:0\r\n:0\r\n",
                                  strlen(rooms[i].room), rooms[i].room);
        else
            n += (size_t)snprintf(out + n, outlen - n, "$%zu\r\n%s\r\n:9\r\n:4\r\n:2\r\n"
                                  ":9\r\n$3\r\nbob\r\n$2\r\nhi\r\n:%lld\r\n:0\r\n",
                                  strlen(rooms[i].room), rooms[i].room, rooms[i].ts);
    }
    return 0;
}

/* One page of alice's rooms, before cursor; the names on it. */
static long long rooms_page(struct store *s, long long before, char *names) {
    struct request r = { .kind = REQ_ROOMS, .room = "", .user = "alice", .limit = 2,
                         .before = before, .client_msg_id = "" };
    struct store_op op = { .req = &r };
    assert_int_equal(store_exec(s, &op, 1), CB_OK);
    assert_int_equal(op.result, CB_DONE);
    names[0] = '\0';
    for (size_t i = 0; i < op.nrooms; i++) strcat(names, op.rooms[i].room);
    if (op.nrooms && op.rooms[0].last.id) {
        assert_string_equal(op.rooms[0].last.user, "bob");
        assert_int_equal(op.rooms[0].unread, 2);
    }
    long long next = op.next_before;
    store_op_clear(&op);
    return next;
}

/* Most recently active first; a page never ends inside a run of one
 * activity (b and c), so the cursor loses nothing and repeats nothing. */
static void test_store_rooms(void **state) {
    char names[16];
    (void)state;
    loaded = SCRIPTS;
    fake_reset(store_rooms_script, 0);
    struct store *s = fake_store(0);
    assert_int_equal(rooms_page(s, 0, names), 2001);
    assert_string_equal(names, "a");
    assert_string_equal(seen, "PING EVALSHA ");      /* one script, one round trip */
    assert_int_equal(rooms_page(s, 2001, names), 1);
    assert_string_equal(names, "bc");
    assert_int_equal(rooms_page(s, 1, names), 0);
    assert_string_equal(names, "d");
    store_free(s);
}

int main(void) {
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_parse_list),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_unreachable),
    };
    const struct CMUnitTest faked[] = {
        cmocka_unit_test(test_loading),
        cmocka_unit_test(test_pipelined_in_order),
        cmocka_unit_test(test_lost_mid_batch),
        cmocka_unit_test(test_each_one_node),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_locator),
        cmocka_unit_test(test_store_noscript_wait),
        cmocka_unit_test(test_store_fresh),
        cmocka_unit_test(test_store_errors),
        cmocka_unit_test(test_store_load_refused),
        cmocka_unit_test(test_store_lost),
        cmocka_unit_test(test_store_rooms),
        cmocka_unit_test(test_store_noscript_twice),
    };
    int failed = cmocka_run_group_tests_name("rexec", pure, NULL, NULL);
    return failed + cmocka_run_group_tests_name("rexec, fake node", faked,
                                                fake_setup, fake_teardown);
}
