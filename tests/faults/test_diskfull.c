/* test_diskfull.c -- the journal's file system fills up (issue #12), against
 * real mosquitto, redis-server and the bridge.
 *
 * The bridge's journal.dir is a 512 KiB tmpfs mounted for the test. Redis
 * is stopped while 8,000 numbered QoS 1 messages arrive at 800/s, more
 * than the journal can hold: the disk fills, the bridge says so and holds
 * the broker back. Then Redis comes back, and a full disk must only have
 * slowed the bridge down: every message the broker acknowledged is stored
 * exactly once and republished, and the bridge still runs and exits 0 on
 * SIGTERM. Once with 64 KiB segments, once with one segment larger than
 * the file system (it can only be freed by starting a new one). A third
 * case stops the bridge while the disk is full and Redis still down: it
 * must exit, and after Redis and a new bridge come up nothing the broker
 * acknowledged is missing or stored twice.
 *
 * Needs root to mount; as another user, or when the mount is refused (a
 * container without the capability), it says so and exits 0. Every wait
 * is bounded; sleeps only pace the faults. Environment: CB_BRIDGE (the
 * binary), CB_KEEP (keep the directories; a failed test's is always kept,
 * with a copy of its journal in journal.kept). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "sys.h"
#include "workload.h"

#define FS_SIZE "512k"
#define ROOMS 10
#define MESSAGES 8000
#define RATE 800
#define STOP_TIMEOUT_MS 3000
#define ACK_TIMEOUT_MS 150000
#define FULL_TIMEOUT_MS 60000
#define DRAIN_TIMEOUT_MS 180000

/* One test's servers, journal mount, bridge and workload. */
struct fx {
    struct h_env env;
    char jdir[300];
    int mounted;
    struct workload *wl;
    struct wl_opts opts;
    char extra[700];                /* the bridge's configuration */
    int passed;
};

/* ==================== Mounting ==================== */

/* Mount a tmpfs of FS_SIZE on dir. 0, or -1 with errno. */
static int tmpfs_mount(const char *dir) {
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) return -1;
    return mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                 "size=" FS_SIZE ",mode=0700");
}

/* Unmount dir (lazily if still busy) and remove it. */
static void tmpfs_unmount(const char *dir) {
    if (umount(dir) < 0) umount2(dir, MNT_DETACH);
    rmdir(dir);
}

/* The reason the test cannot run here, or NULL: not root, or no mount. */
static const char *cannot_mount(void) {
    static char why[200];
    char dir[] = "/tmp/cb-diskfull-probe.XXXXXX";
    if (geteuid() != 0) return "not root: mounting a tmpfs needs root";
    if (mkdtemp(dir) == NULL) return "cannot make a temporary directory";
    int rc = mount("tmpfs", dir, "tmpfs", 0, "size=" FS_SIZE);
    snprintf(why, sizeof(why), "mount -t tmpfs refused: %s", strerror(errno));
    if (rc == 0) umount(dir);
    rmdir(dir);
    return rc == 0 ? NULL : why;
}

/* Bytes used and size of the journal's file system. */
static void fs_usage(const char *dir, long *used_kb, long *size_kb) {
    struct statvfs vfs;
    *used_kb = *size_kb = -1;
    if (statvfs(dir, &vfs) != 0) return;
    *size_kb = (long)(vfs.f_blocks * vfs.f_frsize / 1024);
    *used_kb = (long)((vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize / 1024);
}

/* ==================== Fixture ==================== */

static int fx_setup(void **state) {
    *state = calloc(1, sizeof(struct fx));
    return *state ? 0 : -1;
}

/* Stop what the test started, by PID; unmount (a failed test's journal
 * copied to journal.kept first); keep the directory of a failed test. */
static int fx_teardown(void **state) {
    struct fx *f = *state;
    wl_free(f->wl);
    h_kill_bridge(&f->env);
    int keep = !f->passed || getenv("CB_KEEP") != NULL;
    if (f->mounted && keep) {
        char kept[320], log[320];
        snprintf(kept, sizeof(kept), "%s.kept", f->jdir);
        snprintf(log, sizeof(log), "%s/cp.log", f->env.dir);
        char *cp[] = { "cp", "-a", f->jdir, kept, NULL };
        sys_run(cp, log, 10000, NULL);
    }
    if (f->mounted) tmpfs_unmount(f->jdir);
    if (f->env.dir[0]) {
        if (!f->passed) printf("  logs kept in %s\n", f->env.dir);
        h_stop_servers_keep(&f->env, keep);
    }
    free(f);
    return 0;
}

/* Servers, the journal's tmpfs, and the bridge on it with segments of
 * segment_bytes (0: the default, 16 MiB). */
static void fx_start(struct fx *f, int segment_bytes) {
    char seg[64] = "";
    assert_int_equal(h_start_servers_opt(&f->env, NULL), 0);
    snprintf(f->jdir, sizeof(f->jdir), "%s/journal", f->env.dir);
    if (tmpfs_mount(f->jdir) != 0) fail_msg("mount %s: %s", f->jdir, strerror(errno));
    f->mounted = 1;
    if (segment_bytes) snprintf(seg, sizeof(seg), "  segment_bytes: %d\n", segment_bytes);
    snprintf(f->extra, sizeof(f->extra), "limits:\n  stop_timeout_ms: %d\n"
             "journal:\n  dir: %s\n%s", STOP_TIMEOUT_MS, f->jdir, seg);
    assert_int_equal(h_start_bridge_ex(&f->env, NULL, f->extra), 0);
}

/* Milliseconds since t0. */
static long long elapsed_ms(const struct timespec *t0) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000LL + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* ==================== The scenario ==================== */

/* Redis down while the messages fill the journal's file system; the
 * bridge must say the disk is full and keep running; Redis back; every
 * acknowledged message stored once and republished; a clean stop. */
static void diskfull_case(struct fx *f, const char *name, int segment_bytes) {
    struct wl_stats st;
    struct timespec t0;
    long used, size;
    fx_start(f, segment_bytes);
    assert_int_equal(h_redis_stop(&f->env), 0);
    f->opts = (struct wl_opts){ .name = name, .n = MESSAGES, .rooms = ROOMS, .rate = RATE };
    f->wl = wl_start(&f->env, &f->opts);
    assert_non_null(f->wl);
    if (h_log_wait(&f->env, "disk full", 1, FULL_TIMEOUT_MS) < 1)
        fail_msg("the bridge never logged that the disk was full");
    fs_usage(f->jdir, &used, &size);
    wl_stats(f->wl, &st);
    printf("  %s: disk full logged after %d messages sent; journal fs %ld of %ld KiB\n",
           name, st.sent, used, size);
    if (wl_wait_acked(f->wl, ACK_TIMEOUT_MS) != 0) {
        wl_stats(f->wl, &st);
        fail_msg("the broker acknowledged %d of %d messages", st.acked, MESSAGES);
    }
    h_sleep_ms(2000);                           /* Redis stays down a while longer */
    assert_true(h_bridge_alive(&f->env));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(h_redis_start(&f->env), 0);
    int problems = wl_verify(f->wl, &f->env, &(struct wl_expect){ .timeout_ms = DRAIN_TIMEOUT_MS });
    long long drained = elapsed_ms(&t0);
    wl_stats(f->wl, &st);
    fs_usage(f->jdir, &used, &size);
    printf("  %s: %d acknowledged, %d republishes seen; stored and republished %lld ms "
           "after Redis came back; journal fs then %ld of %ld KiB; \"disk full\" logged "
           "%d times\n", name, st.acked, st.republishes, drained, used, size,
           h_log_wait(&f->env, "disk full", 0, 0));
    if (problems) fail_msg("%s: %d problems (listed above)", name, problems);
    assert_true(h_bridge_alive(&f->env));
    int rc = h_stop_bridge(&f->env);
    if (rc != 0) fail_msg("the bridge exited with %d on SIGTERM", rc);
    f->passed = 1;
}

/* 3. SIGTERM while the disk is full and Redis is down: Paho's callback is
 * stuck on an append that nothing will free, and holds Paho's lock. The
 * bridge must still exit (as a crash would: its journal keeps what it
 * acknowledged, and the broker keeps the one it was receiving); then with
 * Redis and a new bridge, every acknowledged message is stored once and
 * republished. */
static void test_diskfull_stop(void **state) {
    struct fx *f = *state;
    fx_start(f, 65536);
    assert_int_equal(h_redis_stop(&f->env), 0);
    f->opts = (struct wl_opts){ .name = "df3", .n = MESSAGES, .rooms = ROOMS, .rate = RATE };
    f->wl = wl_start(&f->env, &f->opts);
    assert_non_null(f->wl);
    if (h_log_wait(&f->env, "disk full", 1, FULL_TIMEOUT_MS) < 1)
        fail_msg("the bridge never logged that the disk was full");
    h_sleep_ms(1500);
    int rc = h_stop_bridge(&f->env);
    printf("  df3: SIGTERM with the disk full and Redis down: exit status %d\n", rc);
    if (rc != 0) fail_msg("the bridge did not exit cleanly (status %d)", rc);
    if (h_log_wait(&f->env, "disk is still full at the stop", 1, 1000) < 1)
        fail_msg("the bridge did not say why it left without a clean stop");
    if (wl_wait_acked(f->wl, ACK_TIMEOUT_MS) != 0) fail_msg("not every message acknowledged");
    assert_int_equal(h_redis_start(&f->env), 0);
    assert_int_equal(h_start_bridge_ex(&f->env, NULL, f->extra), 0);
    int problems = wl_verify(f->wl, &f->env, &(struct wl_expect){ .timeout_ms = DRAIN_TIMEOUT_MS });
    if (problems) fail_msg("df3: %d problems (listed above)", problems);
    rc = h_stop_bridge(&f->env);
    if (rc != 0) fail_msg("the second bridge exited with %d on SIGTERM", rc);
    f->passed = 1;
}

/* 1. 64 KiB segments, eight of them fill the file system: the ones
 * already stored are freed before their republishes are acknowledged. */
static void test_diskfull_segments(void **state) {
    diskfull_case(*state, "df1", 65536);
}

/* 2. The default 16 MiB segment, larger than the file system: one
 * segment fills it, and only starting a new one frees it. */
static void test_diskfull_one_segment(void **state) {
    diskfull_case(*state, "df2", 0);
}

#define DISKFULL_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        DISKFULL_TEST(test_diskfull_segments),
        DISKFULL_TEST(test_diskfull_one_segment),
        DISKFULL_TEST(test_diskfull_stop),
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *why = cannot_mount();
    if (why) {
        printf("diskfull: skipped (%s)\n", why);
        return 0;
    }
    return cmocka_run_group_tests_name("diskfull", tests, NULL, NULL);
}
