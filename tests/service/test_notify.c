/* test_notify.c -- the bridge's sd_notify protocol, as systemd would see it,
 * against a real mosquitto and redis-server (tests/integration/harness.h).
 *
 * The test owns an AF_UNIX datagram socket, starts $CB_BRIDGE with
 * NOTIFY_SOCKET pointing at it, WATCHDOG_USEC=2000000 and WATCHDOG_PID set
 * to the bridge, STATE_DIRECTORY and JOURNAL_STREAM set as systemd sets
 * them, and records every notification with its arrival time and sender.
 * The tests run in order on one bridge:
 *
 *   Redis down at start: no READY=1 for 3 s, WATCHDOG=1 pings all the same;
 *   Redis started: READY=1; the journal is in $STATE_DIRECTORY/journal;
 *   STATUS= lines arrive, more than one;
 *   WATCHDOG=1 keeps coming, never further apart than WATCHDOG_USEC;
 *   SIGHUP (same file, invalid file, new client id): RELOADING=1, then
 *   READY=1;
 *   SIGTERM: STOPPING=1, exit status 0;
 *   every log line has a <N> priority prefix (JOURNAL_STREAM is set).
 *
 * Every notification must come from the main PID (NotifyAccess=main) and be
 * VARIABLE=value lines. Every wait is bounded; sleeps only pace. CB_KEEP
 * keeps the temporary directory (it is always kept when a test failed). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE           /* struct ucred */
#endif
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

#define WATCHDOG_USEC 2000000LL
#define NO_READY_MS 3000          /* Redis down: no READY=1 for this long */
#define READY_MS 30000            /* READY=1 after Redis is up, at most */
#define STATUS_MS 30000           /* a second STATUS= line, at most */
#define RELOAD_MS 15000           /* RELOADING=1 then READY=1, at most */
#define STOP_MS 30000             /* STOPPING=1 and exit, at most */
#define MAX_EVENTS 8192

/* One line of one notification datagram. */
struct event {
    char line[256];
    long long ms;                 /* arrival, ms since the bridge started */
    pid_t pid;                    /* sender, from SCM_CREDENTIALS */
};

static struct {
    struct h_env env;
    int fd;                       /* the notification socket */
    char sock_path[300];
    pid_t pid;                    /* the bridge; 0 once reaped */
    pid_t main_pid;               /* the bridge, as started */
    long long t0;                 /* its start, ms */
    int ready_at;                 /* index of the first READY=1, or -1 */
    struct event ev[MAX_EVENTS];
    int nev, dropped;
    int failures;                 /* tests started and not finished */
} S;

/* ==================== Time ==================== */

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ==================== The notification socket ==================== */

/* Bind an AF_UNIX datagram socket in the test's directory, asking the
 * kernel for the sender's credentials on each message. */
static int notify_open(const char *dir) {
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    int one = 1;
    snprintf(S.sock_path, sizeof(S.sock_path), "%s/notify.sock", dir);
    if (strlen(S.sock_path) >= sizeof(a.sun_path)) return -1;
    strcpy(a.sun_path, S.sock_path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Record each line of one datagram. */
static void record(char *buf, pid_t pid) {
    long long t = now_ms() - S.t0;
    for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (S.nev == MAX_EVENTS) {
            S.dropped++;
            continue;
        }
        struct event *e = &S.ev[S.nev++];
        snprintf(e->line, sizeof(e->line), "%s", l);
        e->ms = t;
        e->pid = pid;
        if (S.ready_at < 0 && strcmp(l, "READY=1") == 0) S.ready_at = S.nev - 1;
    }
}

/* The sender's PID of a received message, or -1. */
static pid_t sender_pid(struct msghdr *mh) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred u;
            memcpy(&u, CMSG_DATA(c), sizeof(u));
            return u.pid;
        }
    return -1;
}

/* Receive one datagram if one is waiting. 1, 0 (none) or -1. */
static int notify_recv_one(void) {
    char buf[4096];
    /* aligned for struct cmsghdr */
    _Alignas(struct cmsghdr) char ctl[CMSG_SPACE(sizeof(struct ucred))];
    struct iovec iov = { buf, sizeof(buf) - 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = ctl, .msg_controllen = sizeof(ctl) };
    ssize_t n = recvmsg(S.fd, &mh, MSG_DONTWAIT);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    buf[n] = '\0';
    record(buf, sender_pid(&mh));
    return 1;
}

/* Record what arrives for ms milliseconds. */
static void notify_pump(long ms) {
    long long end = now_ms() + ms;
    for (long long left = ms; left > 0; left = end - now_ms()) {
        struct pollfd p = { .fd = S.fd, .events = POLLIN };
        if (poll(&p, 1, (int)left) > 0)
            while (notify_recv_one() > 0) {}
    }
}

/* The first event at or after index from that is exactly line (or starts
 * with it when line ends with '='), or -1. */
static int find_event(const char *line, int from) {
    size_t len = strlen(line);
    int prefix = len > 0 && line[len - 1] == '=';
    for (int i = from; i < S.nev; i++)
        if (prefix ? strncmp(S.ev[i].line, line, len) == 0 : strcmp(S.ev[i].line, line) == 0)
            return i;
    return -1;
}

static int count_events(const char *line, int from) {
    int n = 0;
    for (int i = find_event(line, from); i >= 0; i = find_event(line, i + 1)) n++;
    return n;
}

/* Wait up to timeout_ms for such an event at or after from. */
static int wait_event(const char *line, int from, long timeout_ms) {
    long long end = now_ms() + timeout_ms;
    int i;
    while ((i = find_event(line, from)) < 0 && now_ms() < end) notify_pump(100);
    return i;
}

/* ==================== The bridge ==================== */

/* The bridge's configuration: the harness's servers, status every second,
 * no journal.dir (so $STATE_DIRECTORY/journal is used); extra (or NULL) is
 * appended verbatim. */
static int write_config(const char *client_id, const char *extra) {
    char path[300];
    snprintf(path, sizeof(path), "%s/bridge.yaml", S.env.dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) return -1;
    fprintf(f, "mqtt:\n  uri: tcp://127.0.0.1:%d\n  client_id: %s\n"
               "redis:\n  host: 127.0.0.1\n  port: %d\n  timeout_ms: 1000\n"
               "log:\n  status_interval: 1\n%s",
            S.env.mqtt_port, client_id, S.env.redis_port, extra ? extra : "");
    return fclose(f);
}

/* In the child: the environment systemd gives a Type=notify service with
 * WatchdogSec= and StateDirectory=, stdout and stderr to the log. */
static void child_env(const char *log) {
    char v[64];
    struct stat st;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    setenv("NOTIFY_SOCKET", S.sock_path, 1);
    snprintf(v, sizeof(v), "%lld", WATCHDOG_USEC);
    setenv("WATCHDOG_USEC", v, 1);
    snprintf(v, sizeof(v), "%d", (int)getpid());
    setenv("WATCHDOG_PID", v, 1);
    setenv("STATE_DIRECTORY", S.env.dir, 1);
    if (fstat(2, &st) == 0) {
        snprintf(v, sizeof(v), "%lu:%lu", (unsigned long)st.st_dev, (unsigned long)st.st_ino);
        setenv("JOURNAL_STREAM", v, 1);
    }
}

static pid_t spawn_bridge(void) {
    char conf[300], log[300];
    const char *bin = getenv("CB_BRIDGE") ? getenv("CB_BRIDGE") : "build/chat-bridge";
    snprintf(conf, sizeof(conf), "%s/bridge.yaml", S.env.dir);
    snprintf(log, sizeof(log), "%s/bridge.log", S.env.dir);
    if (write_config("chat-bridge-notify", NULL) < 0) return -1;
    S.t0 = now_ms();
    pid_t pid = fork();
    if (pid != 0) return pid;
    child_env(log);
    execl(bin, bin, "-c", conf, (char *)NULL);
    fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
    _exit(127);
}

/* Wait up to timeout_ms for the bridge to exit, recording notifications
 * meanwhile. Its exit status, or -1 (killed by a signal, or still running). */
static int wait_exit(long timeout_ms) {
    long long end = now_ms() + timeout_ms;
    int status;
    while (now_ms() < end) {
        if (waitpid(S.pid, &status, WNOHANG) == S.pid) {
            S.pid = 0;
            notify_pump(0);
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        notify_pump(50);
    }
    return -1;
}

static int bridge_alive(void) {
    return S.pid > 0 && waitpid(S.pid, NULL, WNOHANG) == 0;
}

/* ==================== Reporting ==================== */

/* Every notification, except a STATUS= line equal to the previous one. */
static void dump_events(void) {
    const char *status = "";
    int repeats = 0;
    printf("  notifications received (ms since start, sender):\n");
    for (int i = 0; i < S.nev; i++) {
        if (strncmp(S.ev[i].line, "STATUS=", 7) == 0) {
            if (strcmp(S.ev[i].line, status) == 0) {
                repeats++;
                continue;
            }
            status = S.ev[i].line;
        }
        printf("  %7lld  %d  %s\n", S.ev[i].ms, (int)S.ev[i].pid, S.ev[i].line);
    }
    printf("  (%d repeated STATUS= lines not shown", repeats);
    printf(S.dropped ? "; %d more dropped)\n" : ")\n", S.dropped);
}

/* Fail if two WATCHDOG=1 before event index 'until' are WATCHDOG_USEC or
 * more apart: systemd would have killed the bridge. */
static void assert_watchdog_gaps(int until) {
    long long prev = -1;
    for (int i = find_event("WATCHDOG=1", 0); i >= 0 && i < until;
         i = find_event("WATCHDOG=1", i + 1)) {
        if (prev >= 0 && S.ev[i].ms - prev >= WATCHDOG_USEC / 1000)
            fail_msg("WATCHDOG=1 at %lld ms, %lld ms after the previous one",
                     S.ev[i].ms, S.ev[i].ms - prev);
        prev = S.ev[i].ms;
    }
}

/* ==================== Tests ==================== */

/* Redis down at start: the bridge runs and pings the watchdog, but must
 * not claim to be ready. */
static void test_no_ready_while_redis_down(void **state) {
    (void)state;
    S.failures++;
    h_redis_stop(&S.env);
    assert_int_equal(S.env.redis_pid, 0);
    S.pid = S.main_pid = spawn_bridge();
    assert_true(S.pid > 0);
    notify_pump(NO_READY_MS);
    assert_true(bridge_alive());
    if (S.ready_at >= 0)
        fail_msg("READY=1 at %lld ms while Redis was down", S.ev[S.ready_at].ms);
    assert_true(count_events("WATCHDOG=1", 0) >= 2);
    S.failures--;
}

/* Redis up: READY=1 comes, and the journal is where StateDirectory= says. */
static void test_ready_once_redis_answers(void **state) {
    (void)state;
    char journal[300];
    struct stat st;
    S.failures++;
    assert_true(S.pid > 0);
    assert_int_equal(h_redis_start(&S.env), 0);
    long long started = now_ms() - S.t0;
    if (wait_event("READY=1", 0, READY_MS) < 0)
        fail_msg("no READY=1 within %d ms of Redis starting", READY_MS);
    printf("  READY=1 %lld ms after Redis started\n", S.ev[S.ready_at].ms - started);
    snprintf(journal, sizeof(journal), "%s/journal", S.env.dir);
    assert_int_equal(stat(journal, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    S.failures--;
}

/* STATUS= lines with some text, more than one (they are periodic). */
static void test_status_lines(void **state) {
    (void)state;
    S.failures++;
    int first = wait_event("STATUS=", 0, STATUS_MS);
    if (first < 0) fail_msg("no STATUS= line within %d ms", STATUS_MS);
    if (wait_event("STATUS=", first + 1, STATUS_MS) < 0)
        fail_msg("only one STATUS= line in %d ms: %s", STATUS_MS, S.ev[first].line);
    for (int i = find_event("STATUS=", 0); i >= 0; i = find_event("STATUS=", i + 1))
        assert_true(strlen(S.ev[i].line) > strlen("STATUS="));
    int last = first;
    for (int i = first; i >= 0; i = find_event("STATUS=", i + 1)) last = i;
    printf("  last status: %s\n", S.ev[last].line);
    S.failures--;
}

/* Pings keep coming, never further apart than WATCHDOG_USEC (systemd
 * would kill the bridge then). */
static void test_watchdog_pings(void **state) {
    (void)state;
    S.failures++;
    int from = S.nev;
    notify_pump(3 * WATCHDOG_USEC / 1000 / 2);
    assert_true(count_events("WATCHDOG=1", from) >= 2);
    assert_watchdog_gaps(S.nev);
    S.failures--;
}

/* SIGHUP, then RELOADING=1, then READY=1, and no READY=1 in between. */
static void assert_reload(const char *what) {
    assert_true(bridge_alive());
    notify_pump(0);
    int from = S.nev;
    assert_int_equal(kill(S.pid, SIGHUP), 0);
    int reloading = wait_event("RELOADING=1", from, RELOAD_MS);
    if (reloading < 0) fail_msg("%s: no RELOADING=1 within %d ms of SIGHUP", what, RELOAD_MS);
    int early = find_event("READY=1", from);
    if (early >= 0 && early < reloading)
        fail_msg("%s: READY=1 before RELOADING=1 after SIGHUP", what);
    int ready = wait_event("READY=1", reloading + 1, RELOAD_MS);
    if (ready < 0)
        fail_msg("%s: RELOADING=1 but no READY=1 after it within %d ms", what, RELOAD_MS);
    printf("  %s: READY=1 %lld ms after RELOADING=1\n", what,
           S.ev[ready].ms - S.ev[reloading].ms);
    assert_true(bridge_alive());
}

/* The same file again. */
static void test_sighup_reload(void **state) {
    (void)state;
    S.failures++;
    assert_reload("unchanged file");
    S.failures--;
}

/* A file with an error: refused, the bridge goes on, ready again. */
static void test_sighup_bad_file(void **state) {
    (void)state;
    S.failures++;
    assert_int_equal(write_config("chat-bridge-notify", "limits:\n  colour: red\n"), 0);
    assert_reload("invalid file");
    S.failures--;
}

/* A new client id: the bridge reconnects, READY=1 once it is back. */
static void test_sighup_new_connection(void **state) {
    (void)state;
    S.failures++;
    assert_int_equal(write_config("chat-bridge-notify-2", NULL), 0);
    assert_reload("new mqtt.client_id");
    S.failures--;
}

/* Every log line has a syslog priority prefix, since JOURNAL_STREAM was
 * set: the configuration errors a refused reload printed included. */
static void test_log_priorities(void **state) {
    (void)state;
    char path[300], line[1024];
    int lines = 0;
    S.failures++;
    snprintf(path, sizeof(path), "%s/bridge.log", S.env.dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        lines++;
        if (line[0] != '<' || !isdigit((unsigned char)line[1]) || line[2] != '>') {
            fclose(f);
            fail_msg("log line %d without a <N> priority prefix: %s", lines, line);
        }
    }
    fclose(f);
    assert_true(lines > 0);
    S.failures--;
}

/* SIGTERM: STOPPING=1, exit 0. */
static void test_sigterm_stop(void **state) {
    (void)state;
    S.failures++;
    assert_true(bridge_alive());
    notify_pump(0);
    int from = S.nev;
    assert_int_equal(kill(S.pid, SIGTERM), 0);
    int rc = wait_exit(STOP_MS);
    if (find_event("STOPPING=1", from) < 0) fail_msg("no STOPPING=1 after SIGTERM");
    assert_int_equal(rc, 0);
    S.failures--;
}

/* Whatever the bridge sent: VARIABLE=value lines, all from its main PID;
 * the watchdog kept up through the reload, until STOPPING=1. */
static void test_protocol_well_formed(void **state) {
    (void)state;
    S.failures++;
    assert_true(S.nev > 0);
    pid_t main_pid = S.main_pid;
    for (int i = 0; i < S.nev; i++) {
        const char *eq = strchr(S.ev[i].line, '=');
        if (eq == NULL || eq == S.ev[i].line)
            fail_msg("not VARIABLE=value: %s", S.ev[i].line);
        for (const char *c = S.ev[i].line; c < eq; c++)
            if (!isupper((unsigned char)*c) && *c != '_' && !isdigit((unsigned char)*c))
                fail_msg("bad variable name: %s", S.ev[i].line);
        if (S.ev[i].pid != main_pid)
            fail_msg("%s sent by pid %d, not the main pid %d (NotifyAccess=main)",
                     S.ev[i].line, (int)S.ev[i].pid, (int)main_pid);
    }
    int stopping = find_event("STOPPING=1", 0);
    assert_watchdog_gaps(stopping >= 0 ? stopping : S.nev);
    S.failures--;
}

/* ==================== Setup ==================== */

static int setup(void **state) {
    (void)state;
    S.fd = -1;
    S.ready_at = -1;
    if (h_start_servers(&S.env) < 0) return -1;
    S.fd = notify_open(S.env.dir);
    return S.fd >= 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    int keep = S.failures > 0 || getenv("CB_KEEP") != NULL;
    if (S.pid > 0) {
        kill(S.pid, SIGKILL);
        waitpid(S.pid, NULL, 0);
        notify_pump(0);
    }
    if (keep) {
        dump_events();
        printf("  logs kept in %s\n", S.env.dir);
    }
    if (S.fd >= 0) close(S.fd);
    h_stop_servers_keep(&S.env, keep);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_ready_while_redis_down),
        cmocka_unit_test(test_ready_once_redis_answers),
        cmocka_unit_test(test_status_lines),
        cmocka_unit_test(test_watchdog_pings),
        cmocka_unit_test(test_sighup_reload),
        cmocka_unit_test(test_sighup_bad_file),
        cmocka_unit_test(test_sighup_new_connection),
        cmocka_unit_test(test_sigterm_stop),
        cmocka_unit_test(test_protocol_well_formed),
        cmocka_unit_test(test_log_priorities),
    };
    return cmocka_run_group_tests_name("service-notify", tests, setup, teardown);
}
