/* journal.c -- the append-only journal (see journal.h for the contract and
 * the format). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "journal.h"
#include "result.h"

#define REC_HDR 16                      /* u32 len, u32 crc, u64 seq */
#define MAX_RECORD (8u << 20)           /* larger lengths mean corruption */
#define READ_CHUNK (256u << 10)
#define CKPT_NAME "checkpoint"
#define MAGIC_LEN 12
#define SEG_MAGIC "CBJOURNAL\r\n\x1a"
#define CKPT_MAGIC "CBCHECKPT\r\n\x1a"
#define HEAD_LEN 28                     /* magic, u32 version, u64, u32 crc */
#define CKPT_V0_LEN 12                  /* version 0: u64 seq, u32 crc */
#define PATH_LEN 600

struct segment {
    uint64_t index;                     /* file name number */
    uint64_t size;                      /* record bytes (the file has hdr more) */
    uint64_t start_pos;                 /* journal position of its first record */
    uint64_t first_seq, last_seq;       /* 0 when empty */
    uint64_t records;
    uint64_t base_seq;                  /* from its header: seqs in it are larger */
    unsigned hdr;                       /* header length: 0 for version 0 */
    int nohead;                         /* no valid header (new, or torn while
                                           made): holds nothing */
    int released;                       /* cut to its header on a full disk */
};

struct journal {
    struct journal_opts o;
    struct journal_io io;               /* o.io with the defaults filled in */
    char *dir;
    pthread_mutex_t lock;
    pthread_cond_t data;                /* reader waits for records */
    pthread_cond_t space;               /* appender waits for room */
    struct segment *segs;               /* oldest first; never empty */
    size_t nsegs, capsegs;
    int wfd;                            /* the last segment, for appends; -1
                                           when it is still to be made */
    int ckfd;                           /* the checkpoint file */
    uint64_t last_seq, end_pos, stored_pos, checkpoint_seq, skip_until;
    uint64_t appended, released_early;
    uint64_t space_gen, fail_gen;       /* space events; the count at the
                                           last failed append */
    int closed, waiting, dirty, unbounded;
    int poked;                          /* journal_poke: end the reader's wait */
    int failing;                        /* the last append failed */
    int full;                           /* ... for want of space */
    int roll;                           /* next append starts a new segment */
    uint64_t last_sync_us;               /* clock_mono_us() of the last sync */
    /* reader state, touched by the reader thread only (rindex written
     * under the lock: drop_segments reads it) */
    uint64_t rindex, roff;
    unsigned rhdr;
    int rfd;
    char *rbuf;
    size_t rcap;
    char errstr[256];                   /* under the lock, or before open
                                           returns */
};

/* ==================== Helpers ==================== */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t journal_crc32(uint32_t crc, const void *data, size_t len) {
    const unsigned char *p = data;
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    while (len--) crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static const char *const fsync_names[] = { "never", "batch", "always" };

int journal_fsync_parse(const char *name) {
    for (int i = 0; i < 3; i++)
        if (strcmp(name, fsync_names[i]) == 0) return i;
    return -1;
}

const char *journal_fsync_name(int mode) {
    return mode >= 0 && mode < 3 ? fsync_names[mode] : "?";
}

/* The checksum of a record covers its seq and its payload. */
static uint32_t record_crc(const unsigned char *seq8, const void *data, size_t len) {
    return journal_crc32(journal_crc32(0, seq8, 8), data, len);
}

/* Set errstr. With the lock held, or while open has the journal alone. */
static void jerr(struct journal *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void jerr(struct journal *j, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->errstr, sizeof(j->errstr), fmt, ap);
    va_end(ap);
}

static void seg_path(const struct journal *j, uint64_t index, char *buf, size_t size) {
    snprintf(buf, size, "%s/%016llu.log", j->dir, (unsigned long long)index);
}


/* Create dir and its missing parents. */
static int mkdirs(const char *dir) {
    char path[512];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) return -1;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(path, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* ==================== Headers ==================== */

/* What the first bytes of a segment or checkpoint file say. */
enum head {
    HEAD_OK,                            /* ours, this version, intact */
    HEAD_NONE,                          /* does not start with the magic */
    HEAD_TORN,                          /* too short for the header it starts */
    HEAD_VERSION,                       /* ours, another version */
    HEAD_CORRUPT                        /* ours, fails its checksum */
};

/* A header: magic, u32 version, u64 value, u32 crc32 of the rest. */
static void head_encode(unsigned char *b, const char *magic, uint64_t value) {
    memcpy(b, magic, MAGIC_LEN);
    put_u32(b + MAGIC_LEN, JOURNAL_FORMAT_VERSION);
    put_u64(b + MAGIC_LEN + 4, value);
    put_u32(b + HEAD_LEN - 4, journal_crc32(0, b, HEAD_LEN - 4));
}

/* Decode the n bytes a file starts with (n may be short): the version is
 * looked at before the rest, since another version may lay it out
 * otherwise. */
static enum head head_decode(const unsigned char *b, size_t n, const char *magic,
                             uint32_t *version, uint64_t *value) {
    if (memcmp(b, magic, n < MAGIC_LEN ? n : MAGIC_LEN) != 0) return HEAD_NONE;
    if (n < MAGIC_LEN + 4) return HEAD_TORN;
    *version = get_u32(b + MAGIC_LEN);
    if (*version != JOURNAL_FORMAT_VERSION) return HEAD_VERSION;
    if (n < HEAD_LEN) return HEAD_TORN;
    if (journal_crc32(0, b, HEAD_LEN - 4) != get_u32(b + HEAD_LEN - 4)) return HEAD_CORRUPT;
    *value = get_u64(b + MAGIC_LEN + 4);
    return HEAD_OK;
}

/* Read up to len bytes at the start of path. The count, or -1 with errstr
 * set (ENOENT left in errno, without errstr, when absent_ok). */
static ssize_t read_head(struct journal *j, const char *path, unsigned char *b,
                         size_t len, int absent_ok) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : j->io.pread(fd, b, len, 0);
    int e = errno;
    if (fd >= 0) close(fd);
    errno = e;
    if (n < 0 && !(absent_ok && e == ENOENT)) jerr(j, "journal %s: %s", path, strerror(e));
    return n;
}

/* ==================== Recovery ==================== */

/* Make room for one more segment in the list. */
static int seg_reserve(struct journal *j) {
    if (j->nsegs < j->capsegs) return 0;
    size_t cap = j->capsegs ? j->capsegs * 2 : 16;
    struct segment *s = realloc(j->segs, cap * sizeof(*s));
    if (s == NULL) return -1;
    j->segs = s;
    j->capsegs = cap;
    return 0;
}

/* Add an empty segment at the end of the list; NULL when out of memory. */
static struct segment *seg_push(struct journal *j, uint64_t index) {
    if (seg_reserve(j) < 0) return NULL;
    struct segment *s = &j->segs[j->nsegs++];
    memset(s, 0, sizeof(*s));
    s->index = index;
    s->hdr = HEAD_LEN;
    s->start_pos = j->end_pos;
    return s;
}

/* Refuse a file: say which and why, for journal_open to return NULL. */
static int refuse(struct journal *j, const char *path, const char *why, uint32_t version) {
    if (why == NULL)
        jerr(j, "journal %s: format version %u, this bridge reads version %d: "
             "refusing to touch it", path, version, JOURNAL_FORMAT_VERSION);
    else
        jerr(j, "journal %s: %s: refusing to touch it", path, why);
    return CB_ERR_FORMAT;
}

/* Read the header of segment index, without changing the file, and add
 * the segment to the list: version 1, version 0 (its first 4 bytes a
 * record length), or nothing in it yet. Any other file is refused. */
static int seg_check(struct journal *j, uint64_t index) {
    char path[PATH_LEN];
    unsigned char b[HEAD_LEN];
    uint32_t version = 0;
    seg_path(j, index, path, sizeof(path));
    ssize_t n = read_head(j, path, b, sizeof(b), 0);
    struct segment *s = n < 0 ? NULL : seg_push(j, index);
    if (s == NULL) return n < 0 ? CB_ERR_IO : CB_ERR_OOM;
    switch (head_decode(b, (size_t)n, SEG_MAGIC, &version, &s->base_seq)) {
    case HEAD_OK: return CB_OK;
    case HEAD_TORN: s->nohead = 1; return CB_OK;
    case HEAD_VERSION: return refuse(j, path, NULL, version);
    case HEAD_CORRUPT: return refuse(j, path, "segment header fails its checksum", 0);
    case HEAD_NONE: break;
    }
    if (n >= 4 && get_u32(b) > MAX_RECORD)
        return refuse(j, path, "not a journal segment (bad magic)", 0);
    s->hdr = 0;                          /* version 0: records from byte 0 */
    return CB_OK;
}

/* Read one record at off: returns its total length, or 0 when what is
 * there is not a whole valid record following prev_seq. */
static size_t scan_record(struct journal *j, int fd, uint64_t off, uint64_t prev_seq,
                          char **buf, size_t *cap, uint64_t *seq) {
    unsigned char h[REC_HDR];
    if (j->io.pread(fd, h, REC_HDR, (off_t)off) != REC_HDR) return 0;
    uint32_t len = get_u32(h);
    *seq = get_u64(h + 8);
    if (len > MAX_RECORD || *seq <= prev_seq) return 0;
    if (len > *cap) {
        char *b = realloc(*buf, len);
        if (b == NULL) return 0;
        *buf = b;
        *cap = len;
    }
    if (j->io.pread(fd, *buf, len, (off_t)(off + REC_HDR)) != (ssize_t)len) return 0;
    if (record_crc(h + 8, *buf, len) != get_u32(h + 4)) return 0;
    return REC_HDR + len;
}

/* Validate one checked segment record by record; cut a torn or corrupt
 * tail. */
static int seg_scan(struct journal *j, struct segment *s, struct journal_recovery *rec) {
    char path[PATH_LEN], *buf = NULL;
    size_t cap = 0, n;
    uint64_t off = s->hdr, seq;
    struct stat st;
    seg_path(j, s->index, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) goto fail;
    s->start_pos = j->end_pos;
    if (s->base_seq > j->last_seq) j->last_seq = s->base_seq;
    while (!s->nohead && (n = scan_record(j, fd, off, j->last_seq, &buf, &cap, &seq)) > 0) {
        off += n;
        if (s->records++ == 0) s->first_seq = seq;
        j->last_seq = s->last_seq = seq;
        rec->records++;
        if (seq > j->checkpoint_seq) rec->pending++;
    }
    if (!s->nohead && off < (uint64_t)st.st_size) {
        rec->cut_bytes += (uint64_t)st.st_size - off;
        snprintf(rec->cut_file, sizeof(rec->cut_file), "%016llu.log",
                 (unsigned long long)s->index);
        if (ftruncate(fd, (off_t)off) < 0) goto fail;
    }
    s->size = s->nohead ? 0 : off - s->hdr;
    j->end_pos += s->size;
    rec->segments++;
    rec->legacy_segments += s->hdr == 0;
    free(buf);
    close(fd);
    return CB_OK;
fail:
    jerr(j, "journal %s: %s", path, strerror(errno));
    free(buf);
    if (fd >= 0) close(fd);
    return CB_ERR_IO;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The segment numbers present in dir, sorted. */
static int list_segments(struct journal *j, uint64_t **out, size_t *n) {
    DIR *d = opendir(j->dir);
    size_t cap = 0;
    struct dirent *e;
    *out = NULL;
    *n = 0;
    if (d == NULL) return -1;
    while ((e = readdir(d)) != NULL) {
        char *end;
        unsigned long long v = strtoull(e->d_name, &end, 10);
        if (strlen(e->d_name) != 20 || end != e->d_name + 16 || strcmp(end, ".log") != 0)
            continue;
        if (*n == cap) {
            uint64_t *g = realloc(*out, (cap = cap ? cap * 2 : 16) * sizeof(**out));
            if (g == NULL) break;
            *out = g;
        }
        (*out)[(*n)++] = v;
    }
    closedir(d);
    if (*n) qsort(*out, *n, sizeof(**out), cmp_u64);
    return 0;
}

/* Read the checkpoint without changing it: version 1, or version 0 (12
 * bytes); missing, or torn by a crash mid-rewrite: 0 (replay everything
 * there is). Another version, or a file that is neither, is refused. */
static int read_checkpoint(struct journal *j) {
    char path[PATH_LEN];
    unsigned char b[HEAD_LEN + 1];
    uint32_t version = 0;
    uint64_t seq = 0;
    snprintf(path, sizeof(path), "%s/%s", j->dir, CKPT_NAME);
    ssize_t n = read_head(j, path, b, sizeof(b), 1);
    if (n < 0) return errno == ENOENT ? CB_OK : CB_ERR_IO;
    if (n == CKPT_V0_LEN && journal_crc32(0, b, 8) == get_u32(b + 8)) {
        seq = get_u64(b);
    } else {
        size_t m = n > HEAD_LEN ? HEAD_LEN : (size_t)n;
        enum head h = head_decode(b, m, CKPT_MAGIC, &version, &seq);
        if (h == HEAD_VERSION) return refuse(j, path, NULL, version);
        if ((h == HEAD_NONE && n > CKPT_V0_LEN) || n > HEAD_LEN)
            return refuse(j, path, "not a journal checkpoint (bad magic or size)", 0);
        if (h != HEAD_OK) seq = 0;
    }
    j->checkpoint_seq = j->skip_until = seq;
    return CB_OK;
}

/* Open the checkpoint file for journal_checkpoint, creating it. */
static int open_checkpoint(struct journal *j) {
    char path[PATH_LEN];
    snprintf(path, sizeof(path), "%s/%s", j->dir, CKPT_NAME);
    j->ckfd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (j->ckfd >= 0) return CB_OK;
    jerr(j, "journal %s: %s", path, strerror(errno));
    return CB_ERR_IO;
}

/* ==================== Writing files ==================== */

/* A write of ours failed: w < 0 (errno says why) or short. Sets errstr;
 * CB_ERR_FULL when the disk is out of space (a short write means that
 * too), else CB_ERR_IO. */
static int write_failed(struct journal *j, const char *what, ssize_t w) {
    int e = errno;
    if (w >= 0 || e == ENOSPC || e == EDQUOT) {
        jerr(j, "journal %s: disk full (%s): holding the broker back until space "
             "comes back", j->dir, w >= 0 ? "short write" : strerror(e));
        return CB_ERR_FULL;
    }
    jerr(j, "journal %s: %s: %s", j->dir, what, strerror(e));
    return CB_ERR_IO;
}

/* Sync (per the policy) and close the segment appends went to. */
static void writer_close(struct journal *j) {
    if (j->wfd < 0) return;
    if (j->o.fsync != JOURNAL_FSYNC_NEVER) j->io.fdatasync(j->wfd);
    close(j->wfd);
    j->wfd = -1;
}

/* Create (or empty) the file of segment index and write its header. The
 * descriptor, or -1 with the file removed, errstr set and *rc CB_ERR_FULL
 * (no room for it) or CB_ERR_IO. */
static int seg_create(struct journal *j, uint64_t index, int *rc) {
    char path[PATH_LEN];
    unsigned char h[HEAD_LEN];
    struct iovec iov = { h, HEAD_LEN };
    seg_path(j, index, path, sizeof(path));
    head_encode(h, SEG_MAGIC, j->last_seq);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    ssize_t w = fd < 0 ? -1 : j->io.writev(fd, &iov, 1);
    if (w == HEAD_LEN) return fd;
    *rc = write_failed(j, fd < 0 ? "create segment" : "write segment header", w);
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    return -1;
}

/* Give the last segment, empty and without a header (new, torn while
 * made, or version 0), its file and header, and append to it. */
static int seg_init(struct journal *j, struct segment *s) {
    int rc = CB_OK, fd = seg_create(j, s->index, &rc);
    if (fd < 0) return rc;
    s->hdr = HEAD_LEN;
    s->nohead = 0;
    j->wfd = fd;
    return CB_OK;
}

/* Start a new segment after the last one and append to it from now on. */
static int seg_next(struct journal *j) {
    int rc = CB_OK;
    if (seg_reserve(j) < 0) {
        jerr(j, "journal: out of memory");
        return CB_ERR_OOM;
    }
    uint64_t index = j->segs[j->nsegs - 1].index + 1;
    int fd = seg_create(j, index, &rc);
    if (fd < 0) return rc;
    writer_close(j);
    seg_push(j, index);                 /* cannot fail: reserved */
    j->wfd = fd;
    j->roll = 0;
    return CB_OK;
}

/* Open the last segment for appending at open. One with records of
 * version 0 is left alone (the first append starts a new one); one with
 * nothing in it gets a header now, or at the first append when the disk
 * has no room for it yet. */
static int open_writer(struct journal *j) {
    char path[PATH_LEN];
    if (j->nsegs == 0) {
        struct segment *first = seg_push(j, 1);
        if (first == NULL) {
            jerr(j, "journal: out of memory");
            return CB_ERR_OOM;
        }
        first->nohead = 1;
    }
    struct segment *last = &j->segs[j->nsegs - 1];
    if (last->size > 0 && last->hdr == 0) {
        j->roll = 1;
        return CB_OK;
    }
    if (last->size == 0 && (last->nohead || last->hdr == 0)) {
        int rc = seg_init(j, last);
        return rc == CB_ERR_FULL ? CB_OK : rc;
    }
    seg_path(j, last->index, path, sizeof(path));
    j->wfd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (j->wfd >= 0) return CB_OK;
    jerr(j, "journal %s: %s", path, strerror(errno));
    return CB_ERR_IO;
}

/* ==================== Open and close ==================== */

static struct journal *journal_alloc(const struct journal_opts *o) {
    static const struct journal_io sys = { writev, pwrite, pread, fdatasync };
    struct journal *j = calloc(1, sizeof(*j));
    if (j == NULL) return NULL;
    j->o = *o;
    j->io = o->io ? *o->io : sys;
    if (j->io.writev == NULL) j->io.writev = sys.writev;
    if (j->io.pwrite == NULL) j->io.pwrite = sys.pwrite;
    if (j->io.pread == NULL) j->io.pread = sys.pread;
    if (j->io.fdatasync == NULL) j->io.fdatasync = sys.fdatasync;
    j->wfd = j->ckfd = j->rfd = -1;
    j->dir = strdup(o->dir);
    pthread_mutex_init(&j->lock, NULL);
    clock_cond_init(&j->data);
    clock_cond_init(&j->space);
    j->last_sync_us = clock_mono_us();
    if (j->dir == NULL) {
        journal_free(j);
        return NULL;
    }
    return j;
}

/* Check every file before changing any (a refused journal is left as it
 * is), then recover: scan the segments, cutting torn tails. */
static int journal_recover(struct journal *j, struct journal_recovery *rec) {
    uint64_t *idx = NULL;
    size_t n = 0;
    int rc = CB_OK;
    if (mkdirs(j->dir) < 0 || list_segments(j, &idx, &n) < 0) {
        jerr(j, "journal %s: %s", j->dir, strerror(errno));
        return CB_ERR_IO;
    }
    rc = read_checkpoint(j);
    for (size_t i = 0; i < n && rc == CB_OK; i++) rc = seg_check(j, idx[i]);
    for (size_t i = 0; i < j->nsegs && rc == CB_OK; i++) rc = seg_scan(j, &j->segs[i], rec);
    free(idx);
    if (rc == CB_ERR_OOM) jerr(j, "journal: out of memory");
    if (j->checkpoint_seq > j->last_seq) j->last_seq = j->checkpoint_seq;
    return rc;
}

struct journal *journal_open(const struct journal_opts *o,
                             struct journal_recovery *rec, char *err, size_t errlen) {
    struct journal *j = journal_alloc(o);
    memset(rec, 0, sizeof(*rec));
    snprintf(err, errlen, "journal: out of memory");
    if (j == NULL) return NULL;
    if (journal_recover(j, rec) != CB_OK || open_checkpoint(j) != CB_OK ||
        open_writer(j) != CB_OK) {
        snprintf(err, errlen, "%s", j->errstr);
        journal_free(j);
        return NULL;
    }
    j->rindex = j->segs[0].index;
    j->rhdr = j->segs[0].hdr;
    return j;
}

void journal_free(struct journal *j) {
    if (j == NULL) return;
    writer_close(j);
    if (j->ckfd >= 0) close(j->ckfd);
    if (j->rfd >= 0) close(j->rfd);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->data);
    pthread_cond_destroy(&j->space);
    free(j->segs);
    free(j->rbuf);
    free(j->dir);
    free(j);
}

/* Wake whoever waits for room. Called with the lock held. */
static void space_signal(struct journal *j) {
    j->space_gen++;
    pthread_cond_broadcast(&j->space);
}

void journal_unbound(struct journal *j) {
    pthread_mutex_lock(&j->lock);
    j->unbounded = 1;
    pthread_cond_broadcast(&j->space);
    pthread_mutex_unlock(&j->lock);
}

void journal_close(struct journal *j) {
    pthread_mutex_lock(&j->lock);
    j->closed = 1;
    pthread_cond_broadcast(&j->data);
    pthread_cond_broadcast(&j->space);
    pthread_mutex_unlock(&j->lock);
}

/* ==================== Space ==================== */

/* Delete the segments at the head that the checkpoint covers or that were
 * released, never the last (appends go there) nor the reader's. Returns
 * how many. Called with the lock held. */
static size_t drop_segments(struct journal *j) {
    size_t drop = 0;
    char path[PATH_LEN];
    while (drop + 1 < j->nsegs && j->segs[drop].index != j->rindex &&
           (j->segs[drop].released || j->segs[drop].last_seq <= j->checkpoint_seq)) {
        seg_path(j, j->segs[drop].index, path, sizeof(path));
        unlink(path);
        drop++;
    }
    if (drop == 0) return 0;
    memmove(j->segs, j->segs + drop, (j->nsegs - drop) * sizeof(*j->segs));
    j->nsegs -= drop;
    return drop;
}

/* Make the checkpoint durable before segments it covers are deleted
 * (unless journal.fsync is "never"): after a power loss, an older
 * checkpoint must not be left pointing into deleted segments. Once per
 * segment, not per checkpoint. */
static void sync_before_drop(struct journal *j) {
    if (j->o.fsync != JOURNAL_FSYNC_NEVER && j->nsegs > 1 &&
        j->segs[0].index != j->rindex && j->segs[0].last_seq <= j->checkpoint_seq)
        j->io.fdatasync(j->ckfd);
}

/* How many records of s come after seq ckpt. Only a segment holding the
 * checkpoint is read (record headers only), once, when released. */
static uint64_t records_after(struct journal *j, const struct segment *s, uint64_t ckpt) {
    char path[PATH_LEN];
    unsigned char h[REC_HDR];
    uint64_t before = 0, off = s->hdr, end = s->hdr + s->size;
    if (s->first_seq > ckpt || s->last_seq <= ckpt) return s->first_seq > ckpt ? s->records : 0;
    seg_path(j, s->index, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd >= 0 && off < end && j->io.pread(fd, h, REC_HDR, (off_t)off) == REC_HDR &&
           get_u64(h + 8) <= ckpt) {
        before++;
        off += REC_HDR + get_u32(h);
    }
    if (fd >= 0) close(fd);
    return s->records - before;
}

/* Give back the space of a segment whose records are all stored, before
 * the checkpoint reaches it: cut its file to the header (which frees the
 * space even while the reader still has it open) and count the records
 * after the checkpoint it lets go. The active segment is closed: the next
 * append starts a new one. drop_segments deletes it once the reader has
 * left it. Called with the lock held. */
static int release_segment(struct journal *j, struct segment *s) {
    char path[PATH_LEN];
    uint64_t early = records_after(j, s, j->checkpoint_seq);
    seg_path(j, s->index, path, sizeof(path));
    if (truncate(path, (off_t)s->hdr) < 0) return CB_ERR_IO;
    s->released = 1;
    j->released_early += early;
    if (s == &j->segs[j->nsegs - 1]) {
        writer_close(j);
        j->roll = 1;
    }
    return CB_OK;
}

/* The disk is full: release every segment wholly stored and delete those
 * the reader has left. Returns how many segments it released or deleted.
 * Called with the lock held. */
static size_t reclaim(struct journal *j) {
    size_t n = 0;
    for (size_t i = 0; i < j->nsegs; i++) {
        struct segment *s = &j->segs[i];
        if (s->start_pos + s->size > j->stored_pos) break;
        if (!s->released && s->size > 0 && release_segment(j, s) == CB_OK) n++;
    }
    n += drop_segments(j);
    if (n) space_signal(j);
    return n;
}

/* ==================== Appending ==================== */

/* Wait while the backlog would pass max_bytes, telling on_wait once when
 * the wait starts (without the lock, so it may call back in). Called with
 * the lock held. */
static void wait_backlog(struct journal *j, uint64_t reclen) {
    int told = 0;
    while (!j->closed && !j->unbounded && j->end_pos > j->stored_pos &&
           j->end_pos - j->stored_pos + reclen > j->o.max_bytes) {
        j->waiting = 1;
        if (!told && j->o.on_wait) {
            told = 1;
            pthread_mutex_unlock(&j->lock);
            j->o.on_wait(j->o.on_wait_arg);
            pthread_mutex_lock(&j->lock);
            continue;
        }
        pthread_cond_wait(&j->space, &j->lock);
    }
    j->waiting = 0;
}

/* Make the last segment ready to take reclen more bytes: a new one past
 * segment_bytes, after a roll, or the file of an empty one still to be
 * made. Called with the lock held. */
static int writer_ready(struct journal *j, uint64_t reclen) {
    struct segment *last = &j->segs[j->nsegs - 1];
    if (j->wfd >= 0 && !j->roll &&
        (last->size == 0 || last->hdr + last->size + reclen <= j->o.segment_bytes))
        return CB_OK;
    if (j->wfd < 0 && !j->roll && last->size == 0) return seg_init(j, last);
    return seg_next(j);
}

/* Write header and payload in one call. On failure, cut the file back so
 * no torn record stays behind a good one; if even that fails, nothing
 * more goes into this segment (recovery cuts the torn record). */
static int write_record(struct journal *j, uint64_t seq, const void *data, size_t len) {
    unsigned char h[REC_HDR];
    struct iovec iov[2] = { { h, REC_HDR }, { (void *)data, len } };
    struct segment *s = &j->segs[j->nsegs - 1];
    int rc = CB_OK;
    put_u32(h, (uint32_t)len);
    put_u64(h + 8, seq);
    put_u32(h + 4, record_crc(h + 8, data, len));
    ssize_t w = j->io.writev(j->wfd, iov, 2);
    if (w != (ssize_t)(REC_HDR + len))
        rc = write_failed(j, "write", w);
    else if (j->o.fsync == JOURNAL_FSYNC_ALWAYS && j->io.fdatasync(j->wfd) < 0)
        rc = write_failed(j, "fdatasync", -1);
    if (rc != CB_OK) {
        if (ftruncate(j->wfd, (off_t)(s->hdr + s->size)) < 0) j->roll = 1;
        return rc;
    }
    s->size += REC_HDR + len;
    if (s->records++ == 0) s->first_seq = seq;
    s->last_seq = seq;
    return CB_OK;
}

/* Append one record with the lock held: its seq in *seq, or a cb_status. */
static int append_locked(struct journal *j, const void *data, size_t len, uint64_t *seq) {
    if (len > MAX_RECORD) {
        jerr(j, "journal %s: a record of %zu bytes is over the limit of %u",
             j->dir, len, MAX_RECORD);
        return CB_ERR;
    }
    int rc = writer_ready(j, REC_HDR + len);
    uint64_t now = clock_wall_us(), next = now > j->last_seq ? now : j->last_seq + 1;
    if (rc != CB_OK || (rc = write_record(j, next, data, len)) != CB_OK) return rc;
    *seq = j->last_seq = next;
    j->end_pos += REC_HDR + len;
    j->appended++;
    j->dirty = 1;
    pthread_cond_signal(&j->data);
    return CB_OK;
}

uint64_t journal_append(struct journal *j, const void *data, size_t len) {
    uint64_t seq = 0;
    pthread_mutex_lock(&j->lock);
    wait_backlog(j, REC_HDR + len);
    if (j->closed) {
        pthread_mutex_unlock(&j->lock);
        return 0;
    }
    int rc = append_locked(j, data, len, &seq);
    if (rc == CB_ERR_FULL && reclaim(j) > 0) rc = append_locked(j, data, len, &seq);
    j->failing = rc != CB_OK;
    j->full = rc == CB_ERR_FULL;
    j->fail_gen = j->space_gen;
    pthread_mutex_unlock(&j->lock);
    if (rc != CB_OK && j->o.on_wait) j->o.on_wait(j->o.on_wait_arg);
    return rc == CB_OK ? seq : 0;
}

int journal_wait_space(struct journal *j, int timeout_ms) {
    struct timespec until = clock_deadline(timeout_ms);
    pthread_mutex_lock(&j->lock);
    while (!j->closed && j->failing && j->space_gen == j->fail_gen)
        if (clock_cond_wait(&j->space, &j->lock, &until)) break;
    int rc = j->closed ? CB_ERR_CLOSED : CB_OK;
    pthread_mutex_unlock(&j->lock);
    return rc;
}

int journal_append_waiting(struct journal *j) {
    pthread_mutex_lock(&j->lock);
    int w = j->waiting || j->failing;
    pthread_mutex_unlock(&j->lock);
    return w;
}

/* ==================== Reading ==================== */

static struct segment *seg_find(struct journal *j, uint64_t index) {
    for (size_t i = 0; i < j->nsegs; i++)
        if (j->segs[i].index == index) return &j->segs[i];
    return NULL;
}

/* Move the reader to the segment after s, which it has read to the end;
 * s may then go. Called with the lock held. */
static void reader_next(struct journal *j, const struct segment *s) {
    j->rindex = s[1].index;
    j->rhdr = s[1].hdr;
    j->roff = 0;
    if (j->rfd >= 0) close(j->rfd);
    j->rfd = -1;
    if (drop_segments(j) > 0) space_signal(j);
}

/* Wait until the reader's segment has unread bytes, moving on to the next
 * segment at the end of one. Returns 1 with the unread byte count and the
 * journal position of the first, 0 on timeout or when closed. */
static int reader_wait(struct journal *j, int timeout_ms, uint64_t *avail, uint64_t *pos) {
    struct timespec until = clock_deadline(timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&j->lock);
    for (;;) {
        struct segment *s = seg_find(j, j->rindex);
        if (s == NULL) s = &j->segs[0];        /* ours was deleted: cannot be */
        if (j->roff < s->size) {
            *avail = s->size - j->roff;
            *pos = s->start_pos + j->roff;
            j->rhdr = s->hdr;
            rc = 1;
            break;
        }
        if (s != &j->segs[j->nsegs - 1]) {
            reader_next(j, s);
            continue;
        }
        if (j->closed || j->poked || clock_cond_wait(&j->data, &j->lock, &until))
            break;
    }
    j->poked = 0;
    pthread_mutex_unlock(&j->lock);
    return rc;
}

void journal_poke(struct journal *j) {
    pthread_mutex_lock(&j->lock);
    j->poked = 1;
    pthread_cond_signal(&j->data);
    pthread_mutex_unlock(&j->lock);
}

/* A read failed (got < 0: errno says why; else it was short): errstr,
 * formatted here, is set under the lock. */
static void reader_error(struct journal *j, ssize_t got) {
    char msg[sizeof(j->errstr)];
    snprintf(msg, sizeof(msg), "journal %s: read segment %016llu: %s", j->dir,
             (unsigned long long)j->rindex, got < 0 ? strerror(errno) : "short read");
    pthread_mutex_lock(&j->lock);
    memcpy(j->errstr, msg, sizeof(msg));
    pthread_mutex_unlock(&j->lock);
}

/* Fill the read buffer from the reader's position: at least one whole
 * record, at most READ_CHUNK bytes unless one record is larger. Returns
 * the bytes read, or -1. */
static ssize_t reader_fill(struct journal *j, uint64_t avail) {
    char path[PATH_LEN];
    unsigned char h[REC_HDR];
    off_t at = (off_t)(j->rhdr + j->roff);
    ssize_t n = -1;
    if (j->rfd < 0) {
        seg_path(j, j->rindex, path, sizeof(path));
        if ((j->rfd = open(path, O_RDONLY | O_CLOEXEC)) < 0) goto fail;
    }
    if ((n = j->io.pread(j->rfd, h, REC_HDR, at)) != REC_HDR) goto fail;
    size_t want = REC_HDR + get_u32(h);
    if (want < READ_CHUNK) want = READ_CHUNK;
    if (want > avail) want = avail;
    if (want > j->rcap) {
        char *b = realloc(j->rbuf, want);
        if (b == NULL) goto fail;
        j->rbuf = b;
        j->rcap = want;
    }
    if ((n = j->io.pread(j->rfd, j->rbuf, want, at)) > 0) return n;
fail:
    reader_error(j, n);
    return -1;
}

/* Parse whole records out of the read buffer into out[]; skips the ones
 * the checkpoint found at open covers. Returns how many were taken and
 * advances the reader over everything parsed. */
static size_t reader_parse(struct journal *j, ssize_t got, uint64_t pos,
                           struct journal_entry *out, size_t max) {
    size_t n = 0, off = 0;
    uint64_t skipped = 0;
    while (n < max && (size_t)got - off >= REC_HDR) {
        const unsigned char *h = (const unsigned char *)j->rbuf + off;
        size_t len = get_u32(h);
        if ((size_t)got - off < REC_HDR + len) break;
        uint64_t seq = get_u64(h + 8);
        off += REC_HDR + len;
        if (seq <= j->skip_until) {            /* applied before the restart */
            skipped = pos + off;
            continue;
        }
        out[n++] = (struct journal_entry){ seq, (const char *)h + REC_HDR, len, pos + off };
    }
    j->roff += off;
    if (skipped) journal_stored(j, skipped);
    return n;
}

size_t journal_read(struct journal *j, struct journal_entry *out, size_t max,
                    int timeout_ms) {
    uint64_t avail, pos;
    size_t n = 0;
    if (max == 0) return 0;
    while (n == 0 && reader_wait(j, timeout_ms, &avail, &pos)) {
        ssize_t got = reader_fill(j, avail);
        if (got <= 0) break;
        n = reader_parse(j, got, pos, out, max);
    }
    return n;
}

/* ==================== Progress ==================== */

void journal_stored(struct journal *j, uint64_t pos) {
    pthread_mutex_lock(&j->lock);
    if (pos > j->stored_pos) {
        j->stored_pos = pos;
        if (j->full) reclaim(j);
        space_signal(j);
    }
    pthread_mutex_unlock(&j->lock);
}

int journal_checkpoint(struct journal *j, uint64_t seq) {
    int rc = CB_OK;
    pthread_mutex_lock(&j->lock);
    if (seq > j->checkpoint_seq) {
        unsigned char b[HEAD_LEN];
        head_encode(b, CKPT_MAGIC, seq);
        ssize_t w = j->io.pwrite(j->ckfd, b, sizeof(b), 0);
        if (w != (ssize_t)sizeof(b)) {
            jerr(j, "journal %s/%s: %s", j->dir, CKPT_NAME,
                 w < 0 ? strerror(errno) : "short write");
            rc = CB_ERR_IO;
        } else {
            j->checkpoint_seq = seq;
            sync_before_drop(j);
            drop_segments(j);
            space_signal(j);
        }
    }
    pthread_mutex_unlock(&j->lock);
    return rc;
}

/* The batch policy: fdatasync when something was written and fsync_ms
 * passed. The sync runs on a duplicate descriptor, outside the lock, so
 * appends do not wait for the disk. */
void journal_tick(struct journal *j) {
    int fd = -1;
    if (j->o.fsync != JOURNAL_FSYNC_BATCH) return;
    uint64_t now = clock_mono_us();
    pthread_mutex_lock(&j->lock);
    if (j->dirty && now - j->last_sync_us >= (uint64_t)j->o.fsync_ms * 1000u && j->wfd >= 0) {
        fd = dup(j->wfd);
        j->dirty = 0;
        j->last_sync_us = now;
    }
    pthread_mutex_unlock(&j->lock);
    if (fd < 0) return;
    j->io.fdatasync(fd);
    close(fd);
}

void journal_get_stats(struct journal *j, struct journal_stats *st) {
    pthread_mutex_lock(&j->lock);
    st->disk_bytes = 0;
    for (size_t i = 0; i < j->nsegs; i++)
        if (!j->segs[i].released) st->disk_bytes += j->segs[i].size;
    st->unstored_bytes = j->end_pos - j->stored_pos;
    st->max_bytes = j->o.max_bytes;
    st->last_seq = j->last_seq;
    st->checkpoint_seq = j->checkpoint_seq;
    st->appended = j->appended;
    st->released_early = j->released_early;
    st->disk_full = j->full;
    pthread_mutex_unlock(&j->lock);
}

void journal_errstr(struct journal *j, char *buf, size_t len) {
    if (len == 0) return;
    pthread_mutex_lock(&j->lock);
    snprintf(buf, len, "%s", j->errstr);
    pthread_mutex_unlock(&j->lock);
}
