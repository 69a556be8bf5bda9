/* test_journal.c -- unit tests for the append-only journal (bridge/journal.c):
 * ordering across segments, reader timeouts and close, recovery and
 * checkpoints, torn tails, backpressure, sequence numbers, CRC-32 and the
 * fsync policies. Each test works in its own fresh directory under /tmp,
 * removed afterwards; every wait is bounded. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "journal.h"

#define HDR 16u                        /* u32 len | u32 crc | u64 seq */
#define MAXREC 256                     /* records one test may append */
#define BIG (100u * 1024u)             /* the "about 100 KiB" record */
#define POLL_MS 10                     /* one poll step */
#define POLL_LIMIT 500                 /* so at most 5 s per wait */
#define SEG_SMALL 4096u
#define US_PER_S 1000000ull

/* Payload sizes, cycled by record index: empty, tiny, ~100 KiB, and sizes
 * around the 4096-byte segments used by most tests. */
static const size_t sizes[] = { 0, 1, 37, BIG, 2000, 0, 513, 4096,
                                3000, 64, 1500, 9, BIG + 3, 700, 250 };

struct fx;

/* A background thread: an appender (may block on backpressure) or a reader
 * (may block in journal_read). */
struct worker {
    pthread_t tid;
    int started;
    atomic_int done;
    struct fx *f;
    size_t first, count;               /* appender: records to append;
                                          reader: count is max */
    atomic_size_t appended;            /* appender: how many succeeded */
    uint64_t last;                     /* appender: last seq, 0 on failure */
    int timeout_ms;                    /* reader: journal_read's timeout */
    size_t nread;                      /* reader: journal_read's result */
};

/* Per-test state: the directory, the options, the open journal, what was
 * appended, and how far the reader has got. */
struct fx {
    char dir[64];
    struct journal_opts o;
    struct journal *j;
    struct journal_recovery rec;
    uint64_t seqs[MAXREC];
    size_t lens[MAXREC];
    uint64_t rseq, rpos;               /* last entry read (this open) */
    struct worker w;
};

/* ==================== Small helpers ==================== */

/* Sleep for ms milliseconds. */
static void sleep_ms(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Milliseconds on the monotonic clock. */
static long long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The wall clock in microseconds, like a fresh journal's first seq. */
static uint64_t wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * US_PER_S + (uint64_t)ts.tv_nsec / 1000u;
}

/* The payload size of record i in the cycling tests. */
static size_t size_of(size_t i) {
    return sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
}

/* Byte x of record i's payload: depends on both so a swap or shift shows. */
static unsigned char byte_at(size_t i, size_t x) {
    return (unsigned char)((i * 131u) ^ (x * 7u) ^ (x >> 8) ^ 0x5a);
}

/* Little-endian helpers for reading and forging segment files. */
static uint64_t get_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; k--) v = (v << 8) | p[k];
    return v;
}

/* Store v as n little-endian bytes at p. */
static void put_le(unsigned char *p, uint64_t v, int n) {
    for (int k = 0; k < n; k++) p[k] = (unsigned char)(v >> (8 * k));
}

/* Poll pred(f) every POLL_MS, at most POLL_LIMIT times: 1 once it holds. */
static int poll_until(int (*pred)(struct fx *), struct fx *f) {
    for (int k = 0; k < POLL_LIMIT; k++) {
        if (pred(f)) return 1;
        sleep_ms(POLL_MS);
    }
    return pred(f);
}

/* ==================== Directory helpers ==================== */

/* scandir filter: segment files, "<16 digits>.log". */
static int is_log(const struct dirent *e) {
    size_t n = strlen(e->d_name);
    return n == 20 && strcmp(e->d_name + 16, ".log") == 0;
}

/* The segment file names in dir, oldest first, into names (up to max);
 * returns how many there are. */
static int list_logs(const char *dir, char (*names)[32], int max) {
    struct dirent **ents;
    int n = scandir(dir, &ents, is_log, alphasort);
    assert_true(n >= 0);
    for (int k = 0; k < n; k++) {
        if (k < max) snprintf(names[k], 32, "%.20s", ents[k]->d_name);
        free(ents[k]);
    }
    free(ents);
    return n;
}

/* How many segment files dir holds. */
static int count_logs(const char *dir) {
    return list_logs(dir, NULL, 0);
}

/* The path (and, if name is not NULL, the name) of the newest segment. */
static void last_segment(const struct fx *f, char *path, size_t size, char *name) {
    char names[MAXREC][32];
    int n = list_logs(f->dir, names, MAXREC);
    assert_true(n > 0 && n <= MAXREC);
    snprintf(path, size, "%s/%s", f->dir, names[n - 1]);
    if (name != NULL) snprintf(name, 32, "%s", names[n - 1]);
}

/* Remove dir and the plain files in it (the journal directory is flat). */
static void rm_dir(const char *dir) {
    char path[600];
    DIR *d = opendir(dir);
    const struct dirent *e;
    if (d == NULL) return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* What a segment file holds, parsed by the format in journal.h. */
struct seginfo {
    size_t records;
    uint64_t first_seq, last_seq;
};

/* Walk the record headers of one segment file. */
static void scan_file(const char *path, struct seginfo *si) {
    unsigned char h[HDR];
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    memset(si, 0, sizeof(*si));
    while (fread(h, 1, HDR, fp) == HDR) {
        uint64_t seq = get_le(h + 8, 8);
        if (si->records++ == 0) si->first_seq = seq;
        si->last_seq = seq;
        assert_int_equal(fseek(fp, (long)get_le(h, 4), SEEK_CUR), 0);
    }
    fclose(fp);
}

/* ==================== Journal helpers ==================== */

/* Open the journal with the fixture's options; the reader starts over. */
static void fx_open(struct fx *f) {
    char err[256] = "";
    f->j = journal_open(&f->o, &f->rec, err, sizeof(err));
    if (f->j == NULL) fail_msg("journal_open %s: %s", f->dir, err);
    f->rseq = f->rpos = 0;
}

/* Free the journal (no checkpoint) and open it again. */
static void fx_reopen(struct fx *f) {
    journal_free(f->j);
    f->j = NULL;
    fx_open(f);
}

/* Append record i of f->lens[i] bytes without asserting (usable from a
 * thread): its seq, or 0 on failure. */
static uint64_t append_raw(struct fx *f, size_t i) {
    size_t len = f->lens[i];
    unsigned char *buf = malloc(len + 1);
    if (buf == NULL) return 0;
    for (size_t x = 0; x < len; x++) buf[x] = byte_at(i, x);
    uint64_t seq = journal_append(f->j, buf, len);
    free(buf);
    f->seqs[i] = seq;
    return seq;
}

/* Append record i with len bytes; its seq must exceed the previous one. */
static void append_one(struct fx *f, size_t i, size_t len) {
    assert_true(i < MAXREC);
    f->lens[i] = len;
    uint64_t seq = append_raw(f, i);
    assert_true(seq > 0);
    if (i > 0) assert_true(seq > f->seqs[i - 1]);
}

/* Append records first..first+k-1 with the cycling sizes. */
static void append_range(struct fx *f, size_t first, size_t k) {
    for (size_t i = first; i < first + k; i++) append_one(f, i, size_of(i));
}

/* Check that e is record i: length, payload, seq strictly after the last
 * one read (and the appended seq when known), pos advancing by at least
 * the record's size. */
static void check_entry(struct fx *f, const struct journal_entry *e, size_t i, int known) {
    assert_int_equal(e->len, f->lens[i]);
    for (size_t x = 0; x < e->len; x++)
        if ((unsigned char)e->data[x] != byte_at(i, x))
            fail_msg("record %zu byte %zu differs", i, x);
    assert_true(e->seq > f->rseq);
    if (known) assert_int_equal(e->seq, f->seqs[i]);
    assert_true(e->pos >= f->rpos + HDR + e->len);
    f->rseq = e->seq;
    f->rpos = e->pos;
}

/* Read records first..first+k-1, checking each, and report them stored.
 * journal_read may return 0 early, so retry a bounded number of times. */
static void read_expect(struct fx *f, size_t first, size_t k, int known) {
    struct journal_entry e[8];
    size_t got = 0;
    for (int tries = 0; got < k && tries < POLL_LIMIT; tries++) {
        size_t n = journal_read(f->j, e, 8, 100);
        assert_true(n <= 8 && got + n <= k);
        for (size_t x = 0; x < n; x++) check_entry(f, &e[x], first + got++, known);
        if (n > 0) journal_stored(f->j, e[n - 1].pos);
    }
    assert_int_equal(got, k);
}

/* Nothing is unread: journal_read waits about ms and returns 0. */
static void assert_idle(struct fx *f, int ms) {
    struct journal_entry e[1];
    long long t0 = mono_ms();
    assert_int_equal(journal_read(f->j, e, 1, ms), 0);
    long long dt = mono_ms() - t0;
    assert_true(dt >= ms - 5);
    assert_true(dt < ms + 2000);
}

/* ==================== Worker threads ==================== */

/* Thread body: append records first..first+count-1. */
static void *append_worker(void *arg) {
    struct worker *w = arg;
    for (size_t i = w->first; i < w->first + w->count; i++) {
        w->last = append_raw(w->f, i);
        if (w->last == 0) break;
        atomic_fetch_add(&w->appended, 1);
    }
    atomic_store(&w->done, 1);
    return NULL;
}

/* Thread body: one journal_read of up to count (0 or 1) entries. */
static void *read_worker(void *arg) {
    struct worker *w = arg;
    struct journal_entry e[1];
    w->nread = journal_read(w->f->j, e, w->count, w->timeout_ms);
    atomic_store(&w->done, 1);
    return NULL;
}

/* Start the fixture's worker thread running fn. */
static void start_worker(struct fx *f, void *(*fn)(void *), size_t first, size_t count) {
    f->w.f = f;
    f->w.first = first;
    f->w.count = count;
    atomic_init(&f->w.appended, 0);
    f->w.nread = 0;
    f->w.last = 0;
    atomic_init(&f->w.done, 0);
    assert_int_equal(pthread_create(&f->w.tid, NULL, fn, &f->w), 0);
    f->w.started = 1;
}

/* poll_until predicate: the worker has finished. */
static int worker_done(struct fx *f) {
    return atomic_load(&f->w.done);
}

/* poll_until predicate: an append is waiting for space. */
static int append_blocked(struct fx *f) {
    return journal_append_waiting(f->j) == 1;
}

/* Wait (bounded) for the worker to finish, then join it. */
static void join_worker(struct fx *f) {
    assert_true(poll_until(worker_done, f));
    pthread_join(f->w.tid, NULL);
    f->w.started = 0;
}

/* ==================== Fixture ==================== */

/* A fresh directory and default options: no fsync, room for everything,
 * small segments so rotation happens. */
static int setup(void **state) {
    struct fx *f = calloc(1, sizeof(*f));
    if (f == NULL) return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_journal.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    f->o = (struct journal_opts){ f->dir, JOURNAL_FSYNC_NEVER, 100, 64u << 20, SEG_SMALL };
    *state = f;
    return 0;
}

/* Stop a worker left running by a failed test (if even close and unbound
 * cannot wake it, leak it rather than hang), free the journal, and remove
 * the directory. */
static int teardown(void **state) {
    struct fx *f = *state;
    if (f->w.started) {
        journal_close(f->j);
        journal_unbound(f->j);
        if (!poll_until(worker_done, f)) {
            pthread_detach(f->w.tid);
            rm_dir(f->dir);
            return -1;
        }
        pthread_join(f->w.tid, NULL);
    }
    journal_free(f->j);
    rm_dir(f->dir);
    free(f);
    return 0;
}

/* ==================== Tests: format and order ==================== */

/* The IEEE CRC-32 check value, also computed in two pieces. */
static void test_crc32(void **state) {
    (void)state;
    assert_int_equal(journal_crc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(journal_crc32(journal_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
    assert_int_equal(journal_crc32(0, "", 0), 0);
}

/* Records of varying sizes (0 bytes to ~100 KiB) come back in order with
 * their data, across many segments; the stats add up. */
static void test_append_read_across_segments(void **state) {
    struct fx *f = *state;
    struct journal_stats st;
    const size_t n = 40;
    uint64_t bytes = 0;
    fx_open(f);
    assert_int_equal(f->rec.records, 0);
    append_range(f, 0, n);
    assert_true(count_logs(f->dir) >= 8);
    read_expect(f, 0, n, 1);
    assert_idle(f, 50);
    for (size_t i = 0; i < n; i++) bytes += HDR + f->lens[i];
    journal_get_stats(f->j, &st);
    assert_int_equal(st.appended, n);
    assert_int_equal(st.last_seq, f->seqs[n - 1]);
    assert_int_equal(st.disk_bytes, bytes);
    assert_int_equal(st.unstored_bytes, 0);
}

/* ==================== Tests: reader waits ==================== */

/* With nothing unread, journal_read returns 0 after its timeout, both on
 * a fresh journal and once everything was read. */
static void test_read_timeout(void **state) {
    struct fx *f = *state;
    fx_open(f);
    assert_idle(f, 150);
    append_range(f, 0, 1);
    read_expect(f, 0, 1, 1);
    assert_idle(f, 100);
}

/* journal_close wakes a reader blocked in journal_read, which returns 0;
 * later reads return 0 at once and appends are refused. */
static void test_read_after_close(void **state) {
    struct fx *f = *state;
    struct journal_entry e[1];
    fx_open(f);
    f->w.timeout_ms = 10000;
    start_worker(f, read_worker, 0, 1);
    sleep_ms(50);
    assert_false(worker_done(f));
    long long t0 = mono_ms();
    journal_close(f->j);
    join_worker(f);
    assert_true(mono_ms() - t0 < 1000);
    assert_int_equal(f->w.nread, 0);
    t0 = mono_ms();
    assert_int_equal(journal_read(f->j, e, 1, 5000), 0);
    assert_true(mono_ms() - t0 < 1000);
    assert_int_equal(journal_append(f->j, "x", 1), 0);
}

/* journal_read with max 0 takes nothing and returns 0 (in a thread: it
 * must come back even though a record is waiting). */
static void test_read_max_zero(void **state) {
    struct fx *f = *state;
    fx_open(f);
    append_range(f, 0, 1);
    f->w.timeout_ms = 100;
    start_worker(f, read_worker, 0, 0);
    join_worker(f);
    assert_int_equal(f->w.nread, 0);
    read_expect(f, 0, 1, 1);
}

/* ==================== Tests: recovery and checkpoints ==================== */

/* Reopening without a checkpoint replays every record, with the same seqs,
 * and appends continue after them. */
static void test_reopen_replays_all(void **state) {
    struct fx *f = *state;
    const size_t n = 30;
    fx_open(f);
    append_range(f, 0, n);
    read_expect(f, 0, n, 1);
    fx_reopen(f);
    assert_int_equal(f->rec.segments, count_logs(f->dir));
    assert_int_equal(f->rec.records, n);
    assert_int_equal(f->rec.pending, n);
    assert_int_equal(f->rec.cut_bytes, 0);
    read_expect(f, 0, n, 1);
    assert_idle(f, 50);
    append_range(f, n, 1);
    read_expect(f, n, 1, 1);
}

/* After a checkpoint at record k of n, the remaining segment files hold a
 * suffix of the records that starts at or before k+1, and each file but
 * the newest has a record after the checkpoint. Returns where it starts. */
static size_t check_remaining(const struct fx *f, size_t k, size_t n) {
    char names[MAXREC][32], path[600];
    struct seginfo si;
    size_t total = 0;
    uint64_t first = 0;
    int nf = list_logs(f->dir, names, MAXREC);
    assert_true(nf > 0 && nf <= MAXREC);
    for (int x = 0; x < nf; x++) {
        snprintf(path, sizeof(path), "%s/%s", f->dir, names[x]);
        scan_file(path, &si);
        if (x == 0) first = si.first_seq;
        if (x < nf - 1) assert_true(si.last_seq > f->seqs[k]);
        total += si.records;
    }
    assert_true(total <= n);
    size_t m = n - total;
    assert_true(m <= k + 1);
    assert_int_equal(first, f->seqs[m]);
    return m;
}

/* journal_checkpoint deletes the segments it wholly covers (never the
 * last), and a reopen replays only the records after it. With 4096-byte
 * segments records 13..17 share one, so a checkpoint at 15 keeps 13..15 on
 * disk and the reopened reader has to skip them. */
static void test_checkpoint_reopen(void **state) {
    struct fx *f = *state;
    struct journal_stats st;
    const size_t n = 30, k = 15;
    fx_open(f);
    append_range(f, 0, n);
    read_expect(f, 0, n, 1);
    int before = count_logs(f->dir);
    assert_int_equal(journal_checkpoint(f->j, f->seqs[k]), 0);
    int after = count_logs(f->dir);
    assert_true(after < before);
    size_t m = check_remaining(f, k, n);
    assert_true(m <= k);                /* some covered records were kept */
    journal_get_stats(f->j, &st);
    assert_int_equal(st.checkpoint_seq, f->seqs[k]);
    fx_reopen(f);
    assert_int_equal(f->rec.segments, after);
    assert_int_equal(f->rec.records, n - m);
    assert_int_equal(f->rec.pending, n - k - 1);
    read_expect(f, k + 1, n - k - 1, 1);
    assert_idle(f, 50);
    append_range(f, n, 1);
    read_expect(f, n, 1, 1);
}

/* A checkpoint at the last record of a segment the reader has just
 * finished: after a reopen the records after it are replayed by the first
 * journal_read, which must not return 0 while they are there. */
static void test_checkpoint_at_segment_end(void **state) {
    struct fx *f = *state;
    struct journal_entry e[8];
    fx_open(f);
    for (size_t i = 0; i < 4; i++) append_one(f, i, 1000);  /* 4 x 1016 fill one */
    assert_int_equal(count_logs(f->dir), 1);
    read_expect(f, 0, 4, 1);
    assert_int_equal(journal_checkpoint(f->j, f->seqs[3]), 0);
    for (size_t i = 4; i < 7; i++) append_one(f, i, 1000);
    assert_int_equal(count_logs(f->dir), 2);
    fx_reopen(f);
    assert_int_equal(f->rec.pending, 3);
    size_t got = journal_read(f->j, e, 8, 1000);
    assert_int_equal(got, 3);
    for (size_t x = 0; x < got; x++) check_entry(f, &e[x], 4 + x, 1);
}

/* ==================== Tests: torn and corrupt tails ==================== */

/* Damage to the newest segment file, given its path, size and the last
 * record's payload length: returns the bytes recovery should cut. */
typedef uint64_t (*damage_fn)(const char *path, off_t size, size_t last_len);

/* A crash mid-write: the last few bytes never reached the file. */
static uint64_t damage_truncate(const char *path, off_t size, size_t last_len) {
    assert_int_equal(truncate(path, size - 5), 0);
    return HDR + last_len - 5;
}

/* A flipped byte in the middle of the last record's payload. */
static uint64_t damage_flip(const char *path, off_t size, size_t last_len) {
    unsigned char c;
    off_t at = size - (off_t)last_len + (off_t)(last_len / 2);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, at), 1);
    c ^= 0xff;
    assert_int_equal(pwrite(fd, &c, 1, at), 1);
    close(fd);
    return HDR + last_len;
}

/* Garbage after the last record. */
static uint64_t damage_garbage(const char *path, off_t size, size_t last_len) {
    unsigned char junk[37];
    (void)size;
    (void)last_len;
    memset(junk, 0xa5, sizeof(junk));
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    close(fd);
    return sizeof(junk);
}

/* Append n records, damage the newest segment, reopen: recovery reports
 * the cut in that file, the first `kept` records come back, and a new
 * append lands after them and survives another reopen cleanly. */
static void torn_case(struct fx *f, damage_fn damage, size_t kept) {
    const size_t n = 10;
    char path[600], name[32];
    struct stat st;
    fx_open(f);
    append_range(f, 0, n);
    assert_true(f->lens[n - 1] >= 8);
    journal_free(f->j);
    f->j = NULL;
    last_segment(f, path, sizeof(path), name);
    assert_int_equal(stat(path, &st), 0);
    uint64_t cut = damage(path, st.st_size, f->lens[n - 1]);
    fx_open(f);
    assert_int_equal(f->rec.cut_bytes, cut);
    size_t slen = strlen(f->rec.cut_file);
    assert_true(slen >= strlen(name));
    assert_string_equal(f->rec.cut_file + slen - strlen(name), name);
    assert_int_equal(f->rec.records, kept);
    read_expect(f, 0, kept, 1);
    assert_idle(f, 50);
    append_range(f, kept, 1);
    read_expect(f, kept, 1, 1);
    fx_reopen(f);
    assert_int_equal(f->rec.cut_bytes, 0);
    assert_int_equal(f->rec.records, kept + 1);
    read_expect(f, 0, kept + 1, 1);
}

/* A truncated last record is cut; the others survive. */
static void test_torn_truncated(void **state) {
    torn_case(*state, damage_truncate, 9);
}

/* A last record failing its checksum is cut. */
static void test_torn_checksum(void **state) {
    torn_case(*state, damage_flip, 9);
}

/* Garbage after the last record is cut; every record survives. */
static void test_torn_garbage(void **state) {
    torn_case(*state, damage_garbage, 10);
}

/* ==================== Tests: backpressure ==================== */

/* max_bytes holds three 100-byte records: a thread appends four, and the
 * fourth blocks and stays blocked (a thread, so no append here can hang). */
static void fill_and_block(struct fx *f) {
    f->o.max_bytes = 3 * (HDR + 100);
    fx_open(f);
    for (size_t i = 0; i < 4; i++) f->lens[i] = 100;
    start_worker(f, append_worker, 0, 4);
    assert_true(poll_until(append_blocked, f));
    sleep_ms(50);
    assert_false(worker_done(f));
    assert_int_equal(atomic_load(&f->w.appended), 3);
    assert_int_equal(journal_append_waiting(f->j), 1);
}

/* A blocked append waits while records are merely read, and completes once
 * journal_stored frees room for it. */
static void test_backpressure_stored(void **state) {
    struct fx *f = *state;
    struct journal_entry e[8];
    fill_and_block(f);
    size_t n = journal_read(f->j, e, 8, 1000);
    assert_int_equal(n, 3);
    for (size_t x = 0; x < n; x++) check_entry(f, &e[x], x, 1);
    sleep_ms(50);
    assert_false(worker_done(f));
    journal_stored(f->j, e[0].pos);
    join_worker(f);
    assert_int_equal(atomic_load(&f->w.appended), 4);
    assert_true(f->w.last > f->seqs[2]);
    assert_int_equal(journal_append_waiting(f->j), 0);
    read_expect(f, 3, 1, 1);
}

/* journal_close wakes a blocked append, which returns 0. */
static void test_backpressure_close(void **state) {
    struct fx *f = *state;
    fill_and_block(f);
    journal_close(f->j);
    join_worker(f);
    assert_int_equal(atomic_load(&f->w.appended), 3);
    assert_int_equal(f->w.last, 0);
    assert_int_equal(journal_append_waiting(f->j), 0);
}

/* journal_unbound lets a blocked append go ahead, and later appends no
 * longer wait (checked in a thread, so a regression cannot hang the run). */
static void test_backpressure_unbound(void **state) {
    struct fx *f = *state;
    fill_and_block(f);
    journal_unbound(f->j);
    join_worker(f);
    assert_int_equal(atomic_load(&f->w.appended), 4);
    assert_true(f->w.last > f->seqs[2]);
    for (size_t i = 4; i < 8; i++) f->lens[i] = 100;
    start_worker(f, append_worker, 4, 4);
    join_worker(f);
    assert_int_equal(atomic_load(&f->w.appended), 4);
    assert_int_equal(journal_append_waiting(f->j), 0);
}

/* An appender thread and this reader run at once under tight backpressure
 * (some records larger than max_bytes): everything arrives in order. */
static void test_concurrent_append_read(void **state) {
    struct fx *f = *state;
    const size_t n = 200;
    f->o.max_bytes = 8192;
    fx_open(f);
    for (size_t i = 0; i < n; i++) f->lens[i] = size_of(i);
    start_worker(f, append_worker, 0, n);
    read_expect(f, 0, n, 0);
    join_worker(f);
    assert_int_equal(atomic_load(&f->w.appended), n);
    assert_int_equal(f->rseq, f->w.last);
    assert_idle(f, 20);
}

/* ==================== Tests: sequence numbers ==================== */

/* Append a valid record with the given seq to the newest segment file,
 * written by hand in the format journal.h documents. */
static void forge_record(const struct fx *f, uint64_t seq, const char *data) {
    char path[600];
    unsigned char h[HDR];
    size_t len = strlen(data);
    last_segment(f, path, sizeof(path), NULL);
    put_le(h, len, 4);
    put_le(h + 8, seq, 8);
    put_le(h + 4, journal_crc32(journal_crc32(0, h + 8, 8), data, len), 4);
    FILE *fp = fopen(path, "ab");
    assert_non_null(fp);
    assert_int_equal(fwrite(h, 1, HDR, fp), HDR);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* A fresh journal's seqs are the current time in microseconds; after a
 * reopen new seqs exceed the old ones, even one far in the future. */
static void test_seq_time_and_reopen(void **state) {
    struct fx *f = *state;
    uint64_t t0 = wall_us();
    fx_open(f);
    append_range(f, 0, 3);
    uint64_t t1 = wall_us();
    assert_true(f->seqs[0] + 5 * US_PER_S >= t0);
    assert_true(f->seqs[0] <= t1 + 5 * US_PER_S);
    fx_reopen(f);
    append_range(f, 3, 1);
    journal_free(f->j);
    f->j = NULL;
    uint64_t future = wall_us() + 3600 * US_PER_S;
    forge_record(f, future, "from the future");
    fx_open(f);
    assert_int_equal(f->rec.records, 5);
    assert_int_equal(f->rec.cut_bytes, 0);
    uint64_t seq = journal_append(f->j, "next", 4);
    assert_true(seq > future);
}

/* ==================== Tests: fsync policies and open ==================== */

/* Policy names convert both ways; unknown ones are refused. */
static void test_fsync_names(void **state) {
    static const char *const names[] = { "never", "batch", "always" };
    (void)state;
    assert_int_equal(JOURNAL_FSYNC_NEVER, 0);
    assert_int_equal(JOURNAL_FSYNC_BATCH, 1);
    assert_int_equal(JOURNAL_FSYNC_ALWAYS, 2);
    for (int m = 0; m < 3; m++) {
        assert_int_equal(journal_fsync_parse(names[m]), m);
        assert_string_equal(journal_fsync_name(m), names[m]);
    }
    assert_int_equal(journal_fsync_parse("sometimes"), -1);
    assert_int_equal(journal_fsync_parse(""), -1);
    assert_int_equal(journal_fsync_parse("Always"), -1);
    assert_string_equal(journal_fsync_name(-1), "?");
    assert_string_equal(journal_fsync_name(3), "?");
}

/* Under the given policy (ticking every few ms), records append, read,
 * and are all there after a reopen. */
static void fsync_roundtrip(struct fx *f, int policy) {
    const size_t n = 12;
    f->o.fsync = policy;
    f->o.fsync_ms = 1;
    fx_open(f);
    for (size_t i = 0; i < n; i++) {
        append_range(f, i, 1);
        sleep_ms(2);
        journal_tick(f->j);
    }
    read_expect(f, 0, n, 1);
    fx_reopen(f);
    assert_int_equal(f->rec.records, n);
    assert_int_equal(f->rec.cut_bytes, 0);
    read_expect(f, 0, n, 1);
}

/* JOURNAL_FSYNC_ALWAYS keeps working. */
static void test_fsync_always(void **state) {
    fsync_roundtrip(*state, JOURNAL_FSYNC_ALWAYS);
}

/* JOURNAL_FSYNC_BATCH with journal_tick keeps working. */
static void test_fsync_batch(void **state) {
    fsync_roundtrip(*state, JOURNAL_FSYNC_BATCH);
}

/* Open fails, with a message, when the directory cannot be created. */
static void test_open_fails(void **state) {
    struct fx *f = *state;
    char bad[128], err[256] = "";
    struct journal_recovery rec;
    snprintf(bad, sizeof(bad), "%s/plain", f->dir);
    FILE *fp = fopen(bad, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(bad, sizeof(bad), "%s/plain/sub", f->dir);
    f->o.dir = bad;
    assert_null(journal_open(&f->o, &rec, err, sizeof(err)));
    assert_true(err[0] != '\0');
}

/* Every test with a fresh directory. */
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_crc32),
        T(test_append_read_across_segments),
        T(test_read_timeout),
        T(test_read_after_close),
        T(test_reopen_replays_all),
        T(test_checkpoint_reopen),
        T(test_checkpoint_at_segment_end),
        T(test_torn_truncated),
        T(test_torn_checksum),
        T(test_torn_garbage),
        T(test_backpressure_stored),
        T(test_backpressure_close),
        T(test_backpressure_unbound),
        T(test_concurrent_append_read),
        T(test_seq_time_and_reopen),
        T(test_fsync_names),
        T(test_fsync_always),
        T(test_fsync_batch),
        T(test_open_fails),
        T(test_read_max_zero),         /* last: if it fails, it leaves a spinning thread */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
