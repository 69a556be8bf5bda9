/* test_journal.c -- unit tests for the append-only journal (bridge/journal.c):
 * ordering across segments, reader timeouts and close, recovery and
 * checkpoints, torn tails, backpressure, sequence numbers, CRC-32, the
 * fsync policies, the on-disk format (header, version, magic, version 0),
 * errstr under the lock, and a full disk (through the journal_io hooks: a
 * fake disk of a few KiB, no root needed). Each test works in its own fresh
 * directory under /tmp, removed afterwards; every wait is bounded. */
#include <dirent.h>
#include <errno.h>
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
#define SEG_HDR 28                     /* magic | u32 version | u64 | u32 crc */
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

/* Walk the record headers of one segment file, after its header. */
static void scan_file(const char *path, struct seginfo *si) {
    unsigned char h[HDR];
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    memset(si, 0, sizeof(*si));
    assert_int_equal(fseek(fp, SEG_HDR, SEEK_SET), 0);
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
    f->o = (struct journal_opts){ .dir = f->dir, .fsync = JOURNAL_FSYNC_NEVER,
        .fsync_ms = 100, .max_bytes = 64u << 20, .segment_bytes = SEG_SMALL };
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

/* ==================== Files by hand ==================== */

#define MAGIC_LEN 12
static const char seg_magic[] = "CBJOURNAL\r\n\x1a";
static const char ckpt_magic[] = "CBCHECKPT\r\n\x1a";

/* A whole file in a malloc'd buffer (len set); fails the test if absent. */
static unsigned char *slurp(const char *path, size_t *len) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    unsigned char *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fread(buf, 1, (size_t)st.st_size, fp), (size_t)st.st_size);
    fclose(fp);
    *len = (size_t)st.st_size;
    return buf;
}

/* Write len bytes to path, replacing it. */
static void spew(const char *path, const void *data, size_t len) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* Append len bytes to path. */
static void spew_append(const char *path, const void *data, size_t len) {
    FILE *fp = fopen(path, "ab");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* A 28-byte header as journal.h documents it: magic, version, value,
 * crc32 of the 24 bytes before it. */
static void make_head(unsigned char *b, const char *magic, uint32_t version, uint64_t value) {
    memcpy(b, magic, MAGIC_LEN);
    put_le(b + 12, version, 4);
    put_le(b + 16, value, 8);
    put_le(b + 24, journal_crc32(0, b, 24), 4);
}

/* Check a header read from a file: magic, version 1, crc; its value. */
static uint64_t check_head(const unsigned char *b, const char *magic) {
    assert_memory_equal(b, magic, MAGIC_LEN);
    assert_int_equal(get_le(b + 12, 4), 1);
    assert_int_equal(get_le(b + 24, 4), journal_crc32(0, b, 24));
    return get_le(b + 16, 8);
}

/* One record in the version 0 (and 1) record format, appended to path. */
static void put_record(const char *path, uint64_t seq, const char *data) {
    unsigned char h[HDR];
    size_t len = strlen(data);
    put_le(h, len, 4);
    put_le(h + 8, seq, 8);
    put_le(h + 4, journal_crc32(journal_crc32(0, h + 8, 8), data, len), 4);
    spew_append(path, h, HDR);
    spew_append(path, data, len);
}

/* 1 when the segment file at path is a header and whole records, ending
 * exactly at the end of the file (nothing torn). */
static int seg_clean(const char *path) {
    size_t len, off = SEG_HDR;
    unsigned char *b = slurp(path, &len);
    int ok = len >= SEG_HDR && memcmp(b, seg_magic, MAGIC_LEN) == 0;
    while (ok && off + HDR <= len) {
        size_t plen = (size_t)get_le(b + off, 4);
        ok = off + HDR + plen <= len &&
             get_le(b + off + 4, 4) == journal_crc32(journal_crc32(0, b + off + 8, 8),
                                                     b + off + HDR, plen);
        off += HDR + plen;
    }
    free(b);
    return ok && off == len;
}

/* Every segment of dir is clean (seg_clean). */
static void assert_all_clean(const char *dir) {
    char names[MAXREC][32], path[600];
    int n = list_logs(dir, names, MAXREC);
    assert_true(n <= MAXREC);
    for (int k = 0; k < n; k++) {
        snprintf(path, sizeof(path), "%s/%.31s", dir, names[k]);
        if (!seg_clean(path)) fail_msg("%s holds a torn or foreign record", path);
    }
}

/* A copy of every file of a directory, to show a refused open left them
 * byte for byte as they were. */
struct snap {
    int n;
    char names[16][64];
    unsigned char *data[16];
    size_t len[16];
};

/* Take the snapshot of dir (flat, at most 16 files). */
static void snap_take(const char *dir, struct snap *s) {
    char path[600];
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    assert_true(n >= 0);
    s->n = 0;
    for (int k = 0; k < n; k++) {
        if (ents[k]->d_name[0] != '.' && s->n < 16) {
            snprintf(s->names[s->n], 64, "%.63s", ents[k]->d_name);
            snprintf(path, sizeof(path), "%s/%s", dir, ents[k]->d_name);
            s->data[s->n] = slurp(path, &s->len[s->n]);
            s->n++;
        }
        free(ents[k]);
    }
    free(ents);
}

/* dir holds exactly the files of s, with the same bytes; frees s. */
static void snap_same(const char *dir, struct snap *s) {
    struct snap now;
    snap_take(dir, &now);
    assert_int_equal(now.n, s->n);
    for (int k = 0; k < s->n; k++) {
        assert_string_equal(now.names[k], s->names[k]);
        assert_int_equal(now.len[k], s->len[k]);
        assert_memory_equal(now.data[k], s->data[k], s->len[k]);
    }
    for (int k = 0; k < s->n; k++) {
        free(s->data[k]);
        free(now.data[k]);
    }
}

/* journal_open must refuse the directory, with a message holding each of
 * the given words, and change no file. */
static void assert_refused(struct fx *f, const char *const *words) {
    char err[256] = "";
    struct snap s;
    struct journal_recovery rec;
    snap_take(f->dir, &s);
    struct journal *j = journal_open(&f->o, &rec, err, sizeof(err));
    if (j != NULL) {
        journal_free(j);
        fail_msg("journal_open accepted it");
    }
    for (; *words; words++)
        if (strstr(err, *words) == NULL) fail_msg("\"%s\" not in \"%s\"", *words, err);
    snap_same(f->dir, &s);
}

/* ==================== Tests: format and version ==================== */

/* A new journal's segments start with the header (magic, version 1, the
 * seq before them, crc), records after it; the checkpoint file is the
 * 28-byte version 1 one. */
static void test_format_header(void **state) {
    struct fx *f = *state;
    char names[MAXREC][32], path[600];
    size_t len;
    fx_open(f);
    for (size_t i = 0; i < 6; i++) append_one(f, i, 1500);    /* 3 segments */
    read_expect(f, 0, 6, 1);
    assert_int_equal(journal_checkpoint(f->j, f->seqs[1]), 0);
    journal_free(f->j);
    f->j = NULL;
    int n = list_logs(f->dir, names, MAXREC);
    assert_true(n >= 2);
    for (int k = 0; k < n; k++) {
        snprintf(path, sizeof(path), "%s/%.31s", f->dir, names[k]);
        unsigned char *b = slurp(path, &len);
        uint64_t base = check_head(b, seg_magic);
        struct seginfo si;
        scan_file(path, &si);
        assert_true(si.records > 0);
        assert_true(base < si.first_seq);
        assert_int_equal(base, f->seqs[2 * k + 1]); /* the last seq before it */
        assert_true(seg_clean(path));
        free(b);
    }
    snprintf(path, sizeof(path), "%s/checkpoint", f->dir);
    unsigned char *c = slurp(path, &len);
    assert_int_equal(len, 28);
    assert_int_equal(check_head(c, ckpt_magic), f->seqs[1]);
    free(c);
    fx_open(f);
    assert_int_equal(f->rec.legacy_segments, 0);
    read_expect(f, 2, 4, 1);
}

/* Two segments, the first with garbage after its records (which an open
 * would cut); the path of the newest into path. */
static void two_segments_one_torn(struct fx *f, char *path, size_t size) {
    char first[600], names[MAXREC][32];
    fx_open(f);
    for (size_t i = 0; i < 4; i++) append_one(f, i, 1500);
    journal_free(f->j);
    f->j = NULL;
    int n = list_logs(f->dir, names, MAXREC);
    assert_true(n >= 2);
    snprintf(first, sizeof(first), "%s/%s", f->dir, names[0]);
    spew_append(first, "garbage", 7);
    snprintf(path, size, "%s/%s", f->dir, names[n - 1]);
}

/* A segment of another format version is refused: open fails naming the
 * file and both versions, and no file changes (not even the torn tail of
 * the other segment, which a normal open cuts). */
static void test_format_unknown_version(void **state) {
    struct fx *f = *state;
    char path[600];
    size_t len;
    two_segments_one_torn(f, path, sizeof(path));
    unsigned char *b = slurp(path, &len);
    make_head(b, seg_magic, 2, get_le(b + 16, 8));
    spew(path, b, len);
    const char *words[] = { "format version 2", "reads version 1", "refusing",
                            strrchr(path, '/') + 1, NULL };
    assert_refused(f, words);
    make_head(b, seg_magic, 1, get_le(b + 16, 8));              /* put it back */
    spew(path, b, len);
    free(b);
    fx_open(f);
    assert_int_equal(f->rec.cut_bytes, 7);
    assert_int_equal(f->rec.records, 4);
}

/* A segment with a bad magic, or a header failing its checksum, is
 * refused untouched. */
static void test_format_bad_magic(void **state) {
    struct fx *f = *state;
    char path[600];
    size_t len;
    two_segments_one_torn(f, path, sizeof(path));
    unsigned char *b = slurp(path, &len), *orig = malloc(len);
    assert_non_null(orig);
    memcpy(orig, b, len);
    memcpy(b, "GARBAGE!", 8);
    spew(path, b, len);
    const char *magic[] = { "bad magic", "refusing", strrchr(path, '/') + 1, NULL };
    assert_refused(f, magic);
    memcpy(b, orig, len);
    b[20] ^= 0x01;                                              /* base seq */
    spew(path, b, len);
    const char *crc[] = { "checksum", "refusing", NULL };
    assert_refused(f, crc);
    spew(path, orig, len);
    free(b);
    free(orig);
    fx_open(f);
    assert_int_equal(f->rec.records, 4);
}

/* A checkpoint of another version, or a file that is no checkpoint, is
 * refused untouched. */
static void test_format_checkpoint_version(void **state) {
    struct fx *f = *state;
    char path[600], ck[600];
    unsigned char b[40];
    two_segments_one_torn(f, path, sizeof(path));
    snprintf(ck, sizeof(ck), "%s/checkpoint", f->dir);
    make_head(b, ckpt_magic, 3, f->seqs[1]);
    spew(ck, b, 28);
    const char *version[] = { "format version 3", "checkpoint", "refusing", NULL };
    assert_refused(f, version);
    memset(b, 'x', sizeof(b));
    spew(ck, b, sizeof(b));
    const char *junk[] = { "not a journal checkpoint", "refusing", NULL };
    assert_refused(f, junk);
    make_head(b, ckpt_magic, 1, f->seqs[1]);
    spew(ck, b, 28);
    fx_open(f);
    assert_int_equal(f->rec.pending, 2);
    read_expect(f, 2, 2, 1);
}

/* The payloads of the version 0 journal below. */
static const char *const legacy_texts[] = { "a", "bb", "", "dddd", "eeeee", "f", "gg", "hhh" };

/* A version 0 journal: records 1000..1004 in segment 1, 1005..1007 and 5
 * torn bytes in segment 2, the checkpoint at 1002. */
static void write_legacy(const struct fx *f) {
    char seg1[600], seg2[600], ck[600];
    unsigned char c[12];
    snprintf(seg1, sizeof(seg1), "%s/0000000000000001.log", f->dir);
    snprintf(seg2, sizeof(seg2), "%s/0000000000000002.log", f->dir);
    for (int k = 0; k < 8; k++)
        put_record(k < 5 ? seg1 : seg2, 1000 + (uint64_t)k, legacy_texts[k]);
    spew_append(seg2, "torn!", 5);
    put_le(c, 1002, 8);
    put_le(c + 8, journal_crc32(0, c, 8), 4);
    snprintf(ck, sizeof(ck), "%s/checkpoint", f->dir);
    spew(ck, c, sizeof(c));
}

/* A version 0 journal (no headers, 12-byte checkpoint), as the previous
 * bridge left it, torn tail included: read as such. New appends go to a
 * new segment with a header; a checkpoint past the old segments deletes
 * them and rewrites the checkpoint in version 1. */
static void test_format_legacy(void **state) {
    struct fx *f = *state;
    char seg1[600], ck[600], name[32];
    size_t len;
    const char *const *texts = legacy_texts;
    write_legacy(f);
    snprintf(ck, sizeof(ck), "%s/checkpoint", f->dir);
    fx_open(f);
    assert_int_equal(f->rec.segments, 2);
    assert_int_equal(f->rec.legacy_segments, 2);
    assert_int_equal(f->rec.records, 8);
    assert_int_equal(f->rec.pending, 5);
    assert_int_equal(f->rec.cut_bytes, 5);
    struct journal_entry e[8];
    size_t got = 0;
    for (int tries = 0; got < 5 && tries < 10; tries++) {
        size_t n = journal_read(f->j, e, 8, 1000);
        for (size_t x = 0; x < n; x++, got++) {
            assert_int_equal(e[x].seq, 1003 + got);
            assert_int_equal(e[x].len, strlen(texts[3 + got]));
            assert_memory_equal(e[x].data, texts[3 + got], e[x].len);
        }
        if (n > 0) journal_stored(f->j, e[n - 1].pos);
    }
    assert_int_equal(got, 5);
    append_one(f, 0, 10);
    assert_true(f->seqs[0] > 1007);
    last_segment(f, seg1, sizeof(seg1), name);
    assert_string_equal(name, "0000000000000003.log");
    assert_true(seg_clean(seg1));
    read_expect(f, 0, 1, 1);
    assert_int_equal(journal_checkpoint(f->j, f->seqs[0]), 0);
    assert_int_equal(count_logs(f->dir), 1);
    unsigned char *b = slurp(ck, &len);
    assert_int_equal(len, 28);
    assert_int_equal(check_head(b, ckpt_magic), f->seqs[0]);
    free(b);
    fx_reopen(f);
    assert_int_equal(f->rec.legacy_segments, 0);
    assert_int_equal(f->rec.pending, 0);
}

/* ==================== Fake disk ==================== */

/* The journal's calls, diverted for the tests below: a disk of `capacity`
 * bytes (the sum of the sizes of the files in dir; < 0: unlimited) that
 * writes what fits and then fails with ENOSPC, a write error of `werr`, a
 * read error of `rerr`, and gates that hold a call until opened. */
struct gate {
    atomic_int armed, entered, open;
};

static struct {
    const char *dir;
    atomic_llong capacity;
    atomic_int werr, rerr;
    struct gate wgate, rgate;
} disk;

/* Bytes in the files of dir. */
static long long dir_bytes(const char *dir) {
    char path[600];
    struct stat st;
    long long total = 0;
    DIR *d = opendir(dir);
    const struct dirent *e;
    if (d == NULL) return 0;
    while ((e = readdir(d)) != NULL) {
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.' && stat(path, &st) == 0) total += st.st_size;
    }
    closedir(d);
    return total;
}

/* Stop at an armed gate (once) until the test opens it, at most 5 s. */
static void gate_pass(struct gate *g) {
    if (!atomic_exchange(&g->armed, 0)) return;
    atomic_store(&g->entered, 1);
    for (int k = 0; k < 5000 && !atomic_load(&g->open); k++) sleep_ms(1);
}

/* Wait (bounded) until a thread stopped at gate g. */
static void gate_wait(struct gate *g) {
    for (int k = 0; k < POLL_LIMIT && !atomic_load(&g->entered); k++) sleep_ms(POLL_MS);
    assert_true(atomic_load(&g->entered));
}

/* writev on the fake disk: all of it, the part that fits (a short write),
 * or ENOSPC; or the forced error. */
static ssize_t fake_writev(int fd, const struct iovec *iov, int cnt) {
    size_t total = 0;
    gate_pass(&disk.wgate);
    if (atomic_load(&disk.werr)) {
        errno = atomic_load(&disk.werr);
        return -1;
    }
    for (int k = 0; k < cnt; k++) total += iov[k].iov_len;
    long long cap = atomic_load(&disk.capacity);
    long long room = cap < 0 ? (long long)total : cap - dir_bytes(disk.dir);
    if (room >= (long long)total) return writev(fd, iov, cnt);
    if (room <= 0) {
        errno = ENOSPC;
        return -1;
    }
    struct iovec part[4];
    int n = 0;
    for (int k = 0; k < cnt && n < 4 && room > 0; k++, n++) {
        part[n] = iov[k];
        if ((long long)part[n].iov_len > room) part[n].iov_len = (size_t)room;
        room -= (long long)part[n].iov_len;
    }
    return writev(fd, part, n);                                 /* short */
}

/* pread on the fake disk: the forced error, if any. */
static ssize_t fake_pread(int fd, void *buf, size_t len, off_t off) {
    gate_pass(&disk.rgate);
    if (atomic_load(&disk.rerr)) {
        errno = atomic_load(&disk.rerr);
        return -1;
    }
    return pread(fd, buf, len, off);
}

static const struct journal_io fake_io = { fake_writev, NULL, fake_pread, NULL };

/* Use the fake disk, of capacity bytes (< 0: unlimited). */
static void use_disk(struct fx *f, long long capacity) {
    memset(&disk, 0, sizeof(disk));
    disk.dir = f->dir;
    atomic_store(&disk.capacity, capacity);
    f->o.io = &fake_io;
}

/* The journal's error message. */
static const char *errstr_of(struct fx *f) {
    static char buf[256];
    journal_errstr(f->j, buf, sizeof(buf));
    return buf;
}

/* ==================== Tests: errstr ==================== */

/* A thread calling fn(f) once. */
struct side {
    pthread_t tid;
    struct fx *f;
    atomic_int done;
    long result;
    int arg;
};

/* Side thread body: one append of "w". */
static void *side_main_append(void *arg) {
    struct side *s = arg;
    s->result = (long)journal_append(s->f->j, "w", 1);
    atomic_store(&s->done, 1);
    return NULL;
}

/* Side thread body: one journal_wait_space of arg ms. */
static void *side_main_wait(void *arg) {
    struct side *s = arg;
    s->result = journal_wait_space(s->f->j, s->arg);
    atomic_store(&s->done, 1);
    return NULL;
}

/* Start fn in a side thread. */
static void side_start(struct side *s, struct fx *f, void *(*fn)(void *), int arg) {
    memset(s, 0, sizeof(*s));
    s->f = f;
    s->arg = arg;
    atomic_init(&s->done, 0);
    assert_int_equal(pthread_create(&s->tid, NULL, fn, s), 0);
}

/* Wait (bounded) for a side thread and join it. */
static void side_join(struct side *s) {
    for (int k = 0; k < POLL_LIMIT && !atomic_load(&s->done); k++) sleep_ms(POLL_MS);
    assert_true(atomic_load(&s->done));
    pthread_join(s->tid, NULL);
}

/* The reader sets errstr under the journal's lock: a read that fails while
 * an append holds the lock (stopped in its write) cannot return before
 * the append lets go. (Before, the reader wrote errstr without the lock,
 * and returned at once, while other threads read it.) */
static void test_errstr_reader_locked(void **state) {
    struct fx *f = *state;
    struct side app;
    use_disk(f, -1);
    fx_open(f);
    append_range(f, 0, 1);
    atomic_store(&disk.rerr, EIO);
    atomic_store(&disk.rgate.armed, 1);
    f->w.timeout_ms = 2000;
    start_worker(f, read_worker, 0, 1);
    gate_wait(&disk.rgate);                     /* the reader is in pread */
    atomic_store(&disk.wgate.armed, 1);
    side_start(&app, f, side_main_append, 0);
    gate_wait(&disk.wgate);                     /* the append holds the lock */
    atomic_store(&disk.rgate.open, 1);          /* the read fails now */
    sleep_ms(100);
    assert_false(worker_done(f));               /* ... and waits for the lock */
    atomic_store(&disk.wgate.open, 1);
    side_join(&app);
    join_worker(f);
    assert_true(app.result > 0);
    assert_int_equal(f->w.nread, 0);
    assert_non_null(strstr(errstr_of(f), "read segment"));
    assert_non_null(strstr(errstr_of(f), "Input/output error"));
}

/* A thread copying errstr until told to stop, counting the copies that
 * are not one whole message of the test below. */
struct errstr_reader {
    pthread_t tid;
    struct fx *f;
    atomic_int *stop;
    int bad, reads;
};

/* Thread body of an errstr_reader. */
static void *errstr_loop(void *arg) {
    struct errstr_reader *r = arg;
    char buf[256];
    while (!atomic_load(r->stop)) {
        journal_errstr(r->f->j, buf, sizeof(buf));
        r->reads++;
        size_t n = strlen(buf);
        int whole = n == 0 ||
            (strncmp(buf, "journal ", 8) == 0 &&
             ((n > 18 && strcmp(buf + n - 18, "Input/output error") == 0) ||
              strstr(buf, "until space comes back") == buf + n - 22));
        r->bad += !whole;
    }
    return NULL;
}

/* Threads reading errstr while the reader and the appender keep failing
 * and setting it: every copy is one whole message. (A stress test: it can
 * catch a torn message, not prove there is none; helgrind on it reports
 * the old unlocked write.) */
static void test_errstr_concurrent(void **state) {
    struct fx *f = *state;
    struct errstr_reader r[3];
    struct journal_entry e[1];
    atomic_int stop;
    atomic_init(&stop, 0);
    use_disk(f, -1);
    fx_open(f);
    append_range(f, 0, 1);
    atomic_store(&disk.rerr, EIO);
    atomic_store(&disk.capacity, 0);
    for (int k = 0; k < 3; k++) {
        r[k] = (struct errstr_reader){ .f = f, .stop = &stop };
        assert_int_equal(pthread_create(&r[k].tid, NULL, errstr_loop, &r[k]), 0);
    }
    for (int k = 0; k < 2000; k++) {
        assert_int_equal(journal_read(f->j, e, 1, 10), 0);
        assert_int_equal(journal_append(f->j, "x", 1), 0);
    }
    atomic_store(&stop, 1);
    for (int k = 0; k < 3; k++) {
        pthread_join(r[k].tid, NULL);
        assert_true(r[k].reads > 0);
        assert_int_equal(r[k].bad, 0);
    }
}

/* ==================== Tests: a full disk ==================== */

/* Append 500-byte records (from index first) until the disk refuses one:
 * returns the index of the refused one. */
static size_t fill_disk(struct fx *f, size_t first) {
    for (size_t i = first; i < MAXREC; i++) {
        f->lens[i] = 500;
        if (append_raw(f, i) == 0) return i;
        if (i > first) assert_true(f->seqs[i] > f->seqs[i - 1]);
    }
    fail_msg("the disk never filled");
    return 0;
}

/* The size of the newest segment file. */
static long newest_size(const struct fx *f) {
    char path[600];
    struct stat st;
    last_segment(f, path, sizeof(path), NULL);
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

/* With nothing stored, a full disk refuses the append and cuts the
 * partial write back; the journal is in the disk full state (waiting 1,
 * errstr, stats) until an append succeeds; nothing on disk is torn. */
static void test_diskfull_state(void **state) {
    struct fx *f = *state;
    struct journal_stats st;
    use_disk(f, 3 * 4096 + 300);
    fx_open(f);
    size_t n = fill_disk(f, 0);
    assert_true(n >= 6);
    long size = newest_size(f);
    assert_int_equal(journal_append_waiting(f->j), 1);
    assert_non_null(strstr(errstr_of(f), "disk full ("));
    assert_non_null(strstr(errstr_of(f), "holding the broker back"));
    assert_non_null(strstr(errstr_of(f), f->dir));
    journal_get_stats(f->j, &st);
    assert_int_equal(st.disk_full, 1);
    assert_int_equal(st.appended, n);
    assert_int_equal(st.unstored_bytes, n * (HDR + 500));
    assert_int_equal(st.released_early, 0);
    assert_all_clean(f->dir);                   /* the partial write was cut */
    atomic_store(&disk.capacity, -1);           /* room from outside */
    append_one(f, n, 500);
    assert_int_equal(journal_append_waiting(f->j), 0);
    journal_get_stats(f->j, &st);
    assert_int_equal(st.disk_full, 0);
    assert_true(newest_size(f) > size);
    atomic_store(&disk.capacity, 0);            /* nothing fits */
    f->lens[n + 1] = 500;
    assert_int_equal(append_raw(f, n + 1), 0);
    assert_non_null(strstr(errstr_of(f), "disk full (No space left on device)"));
    assert_int_equal(journal_append_waiting(f->j), 1);
    assert_all_clean(f->dir);
    read_expect(f, 0, n + 1, 1);
}

/* A short write (part of the record fits) is cut back, and says so. */
static void test_diskfull_short_write(void **state) {
    struct fx *f = *state;
    use_disk(f, -1);
    fx_open(f);
    append_one(f, 0, 100);
    long size = newest_size(f);
    atomic_store(&disk.capacity, dir_bytes(f->dir) + 50);
    f->lens[1] = 500;
    assert_int_equal(append_raw(f, 1), 0);
    assert_non_null(strstr(errstr_of(f), "disk full (short write)"));
    assert_int_equal(newest_size(f), size);
    assert_all_clean(f->dir);
    atomic_store(&disk.capacity, -1);
    append_one(f, 1, 500);
    read_expect(f, 0, 2, 1);
    fx_reopen(f);
    assert_int_equal(f->rec.cut_bytes, 0);
    read_expect(f, 0, 2, 1);
}

/* A write error that is not a full disk: the append fails and is held up
 * (waiting 1) without the disk full state; it goes through once the error
 * is gone. */
static void test_write_error(void **state) {
    struct fx *f = *state;
    struct journal_stats st;
    use_disk(f, -1);
    fx_open(f);
    append_one(f, 0, 10);
    atomic_store(&disk.werr, EIO);
    f->lens[1] = 10;
    assert_int_equal(append_raw(f, 1), 0);
    assert_non_null(strstr(errstr_of(f), "write: Input/output error"));
    assert_int_equal(journal_append_waiting(f->j), 1);
    journal_get_stats(f->j, &st);
    assert_int_equal(st.disk_full, 0);
    atomic_store(&disk.werr, 0);
    append_one(f, 1, 10);
    assert_int_equal(journal_append_waiting(f->j), 0);
    read_expect(f, 0, 2, 1);
}

/* Read records first..first+k-1 (checking them) without reporting them
 * stored; returns the pos after the last. */
static uint64_t read_only(struct fx *f, size_t first, size_t k) {
    struct journal_entry e[8];
    size_t got = 0;
    for (int tries = 0; got < k && tries < POLL_LIMIT; tries++) {
        size_t n = journal_read(f->j, e, k - got < 8 ? k - got : 8, 100);
        for (size_t x = 0; x < n; x++) check_entry(f, &e[x], first + got++, 1);
    }
    assert_int_equal(got, k);
    return f->rpos;
}

/* On a full disk, storing records gives their space back before the
 * checkpoint: the segments wholly stored go, the records after the
 * checkpoint in them are counted, appends resume; a reopen replays what
 * is left after the checkpoint, which holds every unstored record and no
 * deleted one. */
static void test_diskfull_reclaim(void **state) {
    struct fx *f = *state;
    struct journal_stats st;
    use_disk(f, 6 * 4096);
    fx_open(f);
    size_t n = fill_disk(f, 0);                 /* 7 a segment: 47 */
    int before = count_logs(f->dir);
    assert_true(n > 20);
    read_only(f, 0, 2);
    assert_int_equal(journal_checkpoint(f->j, f->seqs[1]), 0);  /* acked: 0..1 */
    uint64_t pos = read_only(f, 2, 12);
    journal_stored(f->j, pos);                  /* stored: 0..13 */
    journal_get_stats(f->j, &st);
    assert_int_equal(st.released_early, 14 - 2); /* segments 1 and 2 */
    assert_int_equal(st.disk_full, 1);          /* until an append succeeds */
    assert_true(count_logs(f->dir) < before);
    append_one(f, n, 500);
    assert_int_equal(journal_append_waiting(f->j), 0);
    journal_get_stats(f->j, &st);
    assert_int_equal(st.disk_full, 0);
    assert_all_clean(f->dir);
    fx_reopen(f);
    assert_int_equal(f->rec.cut_bytes, 0);
    size_t first = n + 1 - f->rec.records;
    assert_int_equal(first, 14);                /* segment 3 on */
    assert_int_equal(f->rec.pending, n + 1 - 14);
    read_expect(f, 14, n + 1 - 14, 1);
}

/* One segment as large as the disk, every record in it stored: it is cut
 * to its header and a new one started, so the appends go on (no
 * deadlock); the old one goes once the reader has left it. */
static void test_diskfull_single_segment(void **state) {
    struct fx *f = *state;
    struct journal_stats st;
    f->o.segment_bytes = 1u << 20;
    use_disk(f, 8192);
    fx_open(f);
    size_t n = fill_disk(f, 0);
    assert_int_equal(count_logs(f->dir), 1);
    uint64_t pos = read_only(f, 0, n);
    journal_stored(f->j, pos);
    journal_get_stats(f->j, &st);
    assert_int_equal(st.released_early, n);
    assert_int_equal(newest_size(f), SEG_HDR);
    append_one(f, n, 500);
    assert_int_equal(count_logs(f->dir), 2);
    read_expect(f, n, 1, 1);
    assert_int_equal(count_logs(f->dir), 1);    /* the reader left it */
    fill_disk(f, n + 1);                        /* and it fills again */
    fx_reopen(f);
    assert_true(f->rec.records >= 2);
    read_expect(f, n, f->rec.records, 1);
}

/* A new journal on a disk without room even for a segment header opens
 * (a bridge must start and hold the broker back, not exit); appends fail
 * as disk full until room comes, then the segment is made. */
static void test_diskfull_at_open(void **state) {
    struct fx *f = *state;
    use_disk(f, 0);
    fx_open(f);
    assert_int_equal(count_logs(f->dir), 0);
    f->lens[0] = 10;
    assert_int_equal(append_raw(f, 0), 0);
    assert_non_null(strstr(errstr_of(f), "disk full (No space left on device)"));
    assert_int_equal(journal_append_waiting(f->j), 1);
    atomic_store(&disk.capacity, -1);
    append_one(f, 0, 10);
    assert_int_equal(count_logs(f->dir), 1);
    assert_all_clean(f->dir);
    read_expect(f, 0, 1, 1);
    fx_reopen(f);
    read_expect(f, 0, 1, 1);
}

/* journal_wait_space: at once when no append failed; after a failed one,
 * until a store (or the timeout); CB_ERR_CLOSED once closed. */
static void test_wait_space(void **state) {
    struct fx *f = *state;
    struct side w;
    use_disk(f, -1);
    fx_open(f);
    long long t0 = mono_ms();
    assert_int_equal(journal_wait_space(f->j, 5000), 0);       /* not failing */
    assert_true(mono_ms() - t0 < 1000);
    append_one(f, 0, 10);
    atomic_store(&disk.capacity, 0);
    f->lens[1] = 10;
    assert_int_equal(append_raw(f, 1), 0);
    t0 = mono_ms();
    assert_int_equal(journal_wait_space(f->j, 100), 0);        /* timeout */
    assert_true(mono_ms() - t0 >= 95);
    side_start(&w, f, side_main_wait, 10000);
    sleep_ms(50);
    assert_false(atomic_load(&w.done));
    read_expect(f, 0, 1, 1);                                    /* a store wakes it */
    side_join(&w);
    assert_int_equal(w.result, 0);
    assert_int_equal(append_raw(f, 1), 0);
    side_start(&w, f, side_main_wait, 10000);
    sleep_ms(50);
    assert_false(atomic_load(&w.done));
    assert_int_equal(journal_checkpoint(f->j, f->seqs[0]), 0); /* so does this */
    side_join(&w);
    assert_int_equal(w.result, 0);
    assert_int_equal(append_raw(f, 1), 0);
    side_start(&w, f, side_main_wait, 10000);
    sleep_ms(50);
    assert_false(atomic_load(&w.done));
    journal_close(f->j);
    side_join(&w);
    assert_int_equal(w.result, -5);                             /* CB_ERR_CLOSED */
    assert_int_equal(journal_wait_space(f->j, 10000), -5);
}

/* on_wait: what it saw, called on the appender's thread without the lock
 * (it takes the lock itself, through journal_append_waiting). */
static atomic_int on_wait_calls, on_wait_saw_waiting;
static struct journal *on_wait_j;

static void count_on_wait(void *arg) {
    (void)arg;
    atomic_fetch_add(&on_wait_calls, 1);
    if (journal_append_waiting(on_wait_j)) atomic_fetch_add(&on_wait_saw_waiting, 1);
}

/* on_wait is called once when an append starts waiting for the backlog
 * bound, and at each append the disk refuses; each time
 * journal_append_waiting() already says 1. */
static void test_on_wait(void **state) {
    struct fx *f = *state;
    atomic_store(&on_wait_calls, 0);
    atomic_store(&on_wait_saw_waiting, 0);
    f->o.on_wait = count_on_wait;
    use_disk(f, -1);
    f->o.max_bytes = 3 * (HDR + 100);
    fx_open(f);
    on_wait_j = f->j;
    for (size_t i = 0; i < 4; i++) f->lens[i] = 100;
    start_worker(f, append_worker, 0, 4);
    assert_true(poll_until(append_blocked, f));
    sleep_ms(50);
    assert_int_equal(atomic_load(&on_wait_calls), 1);
    read_expect(f, 0, 3, 1);
    join_worker(f);
    assert_int_equal(atomic_load(&on_wait_calls), 1);
    read_expect(f, 3, 1, 1);
    atomic_store(&disk.capacity, 0);
    f->lens[4] = 10;
    assert_int_equal(append_raw(f, 4), 0);
    assert_int_equal(append_raw(f, 4), 0);
    assert_int_equal(atomic_load(&on_wait_calls), 3);
    assert_int_equal(atomic_load(&on_wait_saw_waiting), 3);
}

/* Thread body: append records first..first+count-1 as the bridge does,
 * retrying a failed append after journal_wait_space. */
static void *retry_appender(void *arg) {
    struct worker *w = arg;
    for (size_t i = w->first; i < w->first + w->count; i++) {
        while ((w->last = append_raw(w->f, i)) == 0)
            if (journal_wait_space(w->f->j, 200) != 0) goto out;
        atomic_fetch_add(&w->appended, 1);
    }
out:
    atomic_store(&w->done, 1);
    return NULL;
}

/* The bridge's loop on a small disk: an appender retrying through
 * journal_wait_space, this thread storing late and never checkpointing.
 * Everything arrives once, in order; space came back from stored records;
 * nothing on disk is torn; a reopen replays a suffix. */
static void test_diskfull_concurrent(void **state) {
    struct fx *f = *state;
    struct journal_stats st;
    const size_t n = 200;
    f->o.segment_bytes = 2048;
    use_disk(f, 6000);
    fx_open(f);
    for (size_t i = 0; i < n; i++) f->lens[i] = 100 + (i * 37) % 500;
    start_worker(f, retry_appender, 0, n);
    sleep_ms(100);                              /* Redis is down a while */
    assert_int_equal(journal_append_waiting(f->j), 1);
    read_expect(f, 0, n, 0);
    join_worker(f);
    assert_int_equal(atomic_load(&f->w.appended), n);
    assert_int_equal(f->rseq, f->w.last);
    journal_get_stats(f->j, &st);
    assert_true(st.released_early > 0);
    assert_all_clean(f->dir);
    assert_true(dir_bytes(f->dir) <= 6000);
    fx_reopen(f);
    size_t first = n - f->rec.records;
    read_expect(f, first, n - first, 1);
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
        T(test_format_header),
        T(test_format_unknown_version),
        T(test_format_bad_magic),
        T(test_format_checkpoint_version),
        T(test_format_legacy),
        T(test_errstr_reader_locked),
        T(test_errstr_concurrent),
        T(test_diskfull_state),
        T(test_diskfull_short_write),
        T(test_write_error),
        T(test_diskfull_reclaim),
        T(test_diskfull_single_segment),
        T(test_diskfull_at_open),
        T(test_wait_space),
        T(test_on_wait),
        T(test_diskfull_concurrent),
        T(test_read_max_zero),         /* last: if it fails, it leaves a spinning thread */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
