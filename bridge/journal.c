/* journal.c -- the append-only journal (see journal.h for the contract). */
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

#include "journal.h"

#define HDR_LEN 16                      /* u32 len, u32 crc, u64 seq */
#define MAX_RECORD (8u << 20)           /* larger lengths mean corruption */
#define READ_CHUNK (256u << 10)
#define CKPT_NAME "checkpoint"

struct segment {
    uint64_t index;                     /* file name number */
    uint64_t size;
    uint64_t start_pos;                 /* journal position of its first byte */
    uint64_t last_seq;                  /* 0 when empty */
};

struct journal {
    struct journal_opts o;
    char *dir;
    pthread_mutex_t lock;
    pthread_cond_t data;                /* reader waits for records */
    pthread_cond_t space;               /* appender waits for room */
    struct segment *segs;               /* oldest first; never empty */
    size_t nsegs, capsegs;
    int wfd;                            /* the last segment, for appends */
    int ckfd;                           /* the checkpoint file */
    uint64_t last_seq, end_pos, stored_pos, checkpoint_seq, skip_until;
    uint64_t appended;
    int closed, waiting, dirty, unbounded;
    struct timespec last_sync;
    /* reader state, touched by the reader thread only */
    uint64_t rindex, roff;
    int rfd;
    char *rbuf;
    size_t rcap;
    char errstr[256];
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

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
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

/* ==================== Recovery ==================== */

/* Add a segment at the end of the list. */
static int seg_push(struct journal *j, uint64_t index) {
    if (j->nsegs == j->capsegs) {
        size_t cap = j->capsegs ? j->capsegs * 2 : 16;
        struct segment *s = realloc(j->segs, cap * sizeof(*s));
        if (s == NULL) return -1;
        j->segs = s;
        j->capsegs = cap;
    }
    struct segment *s = &j->segs[j->nsegs++];
    memset(s, 0, sizeof(*s));
    s->index = index;
    s->start_pos = j->end_pos;
    return 0;
}

/* Read one record at off: returns its total length, or 0 when what is
 * there is not a whole valid record following prev_seq. */
static size_t scan_record(int fd, uint64_t off, uint64_t prev_seq, char **buf,
                          size_t *cap, uint64_t *seq) {
    unsigned char h[HDR_LEN];
    if (pread(fd, h, HDR_LEN, (off_t)off) != HDR_LEN) return 0;
    uint32_t len = get_u32(h);
    *seq = get_u64(h + 8);
    if (len > MAX_RECORD || *seq <= prev_seq) return 0;
    if (len > *cap) {
        char *b = realloc(*buf, len);
        if (b == NULL) return 0;
        *buf = b;
        *cap = len;
    }
    if (pread(fd, *buf, len, (off_t)(off + HDR_LEN)) != (ssize_t)len) return 0;
    if (record_crc(h + 8, *buf, len) != get_u32(h + 4)) return 0;
    return HDR_LEN + len;
}

/* Validate one segment file record by record; cut a torn or corrupt tail. */
static int scan_segment(struct journal *j, uint64_t index, struct journal_recovery *rec) {
    char path[600], *buf = NULL;
    size_t cap = 0, n;
    uint64_t off = 0, seq;
    struct stat st;
    seg_path(j, index, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || seg_push(j, index) < 0) goto fail;
    struct segment *s = &j->segs[j->nsegs - 1];
    while ((n = scan_record(fd, off, j->last_seq, &buf, &cap, &seq)) > 0) {
        off += n;
        j->last_seq = s->last_seq = seq;
        rec->records++;
        if (seq > j->checkpoint_seq) rec->pending++;
    }
    if (off < (uint64_t)st.st_size) {
        rec->cut_bytes += (uint64_t)st.st_size - off;
        snprintf(rec->cut_file, sizeof(rec->cut_file), "%016llu.log",
                 (unsigned long long)index);
        if (ftruncate(fd, (off_t)off) < 0) goto fail;
    }
    s->size = off;
    j->end_pos += off;
    rec->segments++;
    free(buf);
    close(fd);
    return 0;
fail:
    jerr(j, "journal %s: %s", path, strerror(errno));
    free(buf);
    if (fd >= 0) close(fd);
    return -1;
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

/* Read the checkpoint: u64 seq, u32 crc32 of it. Missing or torn: 0. */
static int open_checkpoint(struct journal *j) {
    char path[600];
    unsigned char b[12];
    snprintf(path, sizeof(path), "%s/%s", j->dir, CKPT_NAME);
    j->ckfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (j->ckfd < 0) {
        jerr(j, "journal %s: %s", path, strerror(errno));
        return -1;
    }
    if (pread(j->ckfd, b, sizeof(b), 0) == (ssize_t)sizeof(b) &&
        journal_crc32(0, b, 8) == get_u32(b + 8))
        j->checkpoint_seq = get_u64(b);
    j->skip_until = j->checkpoint_seq;
    return 0;
}

/* Open the last segment for appending, creating the first when none. */
static int open_writer(struct journal *j) {
    char path[600];
    if (j->nsegs == 0 && seg_push(j, 1) < 0) {
        jerr(j, "journal: out of memory");
        return -1;
    }
    seg_path(j, j->segs[j->nsegs - 1].index, path, sizeof(path));
    j->wfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (j->wfd < 0) {
        jerr(j, "journal %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ==================== Open and close ==================== */

static struct journal *journal_alloc(const struct journal_opts *o) {
    struct journal *j = calloc(1, sizeof(*j));
    if (j == NULL) return NULL;
    j->o = *o;
    j->wfd = j->ckfd = j->rfd = -1;
    j->dir = strdup(o->dir);
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->data, NULL);
    pthread_cond_init(&j->space, NULL);
    clock_gettime(CLOCK_MONOTONIC, &j->last_sync);
    if (j->dir == NULL) {
        journal_free(j);
        return NULL;
    }
    return j;
}

struct journal *journal_open(const struct journal_opts *o,
                             struct journal_recovery *rec, char *err, size_t errlen) {
    struct journal *j = journal_alloc(o);
    uint64_t *idx = NULL;
    size_t n = 0;
    memset(rec, 0, sizeof(*rec));
    snprintf(err, errlen, "journal: out of memory");
    if (j == NULL) return NULL;
    if (mkdirs(j->dir) < 0 || list_segments(j, &idx, &n) < 0) {
        jerr(j, "journal %s: %s", j->dir, strerror(errno));
        goto fail;
    }
    if (open_checkpoint(j) < 0) goto fail;
    for (size_t i = 0; i < n; i++)
        if (scan_segment(j, idx[i], rec) < 0) goto fail;
    if (open_writer(j) < 0) goto fail;
    j->rindex = j->segs[0].index;
    free(idx);
    return j;
fail:
    snprintf(err, errlen, "%s", j->errstr);
    free(idx);
    journal_free(j);
    return NULL;
}

void journal_free(struct journal *j) {
    if (j == NULL) return;
    if (j->wfd >= 0) {
        if (j->o.fsync != JOURNAL_FSYNC_NEVER) fdatasync(j->wfd);
        close(j->wfd);
    }
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

/* ==================== Appending ==================== */

/* Start a new segment when the current one would grow past segment_bytes.
 * Called with the lock held. */
static int maybe_rotate(struct journal *j, size_t reclen) {
    struct segment *last = &j->segs[j->nsegs - 1];
    if (last->size == 0 || last->size + reclen <= j->o.segment_bytes) return 0;
    if (j->o.fsync != JOURNAL_FSYNC_NEVER) fdatasync(j->wfd);
    close(j->wfd);
    j->wfd = -1;
    if (seg_push(j, last->index + 1) < 0) {
        jerr(j, "journal: out of memory");
        return -1;
    }
    return open_writer(j);
}

/* Write header and payload in one call; on a short write, cut the file
 * back so no torn record stays behind a good one. */
static int write_record(struct journal *j, uint64_t seq, const void *data, size_t len) {
    unsigned char h[HDR_LEN];
    struct iovec iov[2] = { { h, HDR_LEN }, { (void *)data, len } };
    struct segment *s = &j->segs[j->nsegs - 1];
    put_u32(h, (uint32_t)len);
    put_u64(h + 8, seq);
    put_u32(h + 4, record_crc(h + 8, data, len));
    ssize_t w = writev(j->wfd, iov, 2);
    if (w != (ssize_t)(HDR_LEN + len))
        jerr(j, "journal: write: %s", w < 0 ? strerror(errno) : "short write");
    else if (j->o.fsync == JOURNAL_FSYNC_ALWAYS && fdatasync(j->wfd) < 0)
        jerr(j, "journal: fdatasync: %s", strerror(errno));
    else
        w = 0;
    if (w != 0) {
        /* Cut the file back: a record the caller was told failed must not
         * be read, nor stand between good ones. Recovery cuts it if not. */
        if (ftruncate(j->wfd, (off_t)s->size) < 0) { /* see above */ }
        return -1;
    }
    s->size += HDR_LEN + len;
    s->last_seq = seq;
    return 0;
}

uint64_t journal_append(struct journal *j, const void *data, size_t len) {
    uint64_t seq = 0, reclen = HDR_LEN + len;
    pthread_mutex_lock(&j->lock);
    while (!j->closed && !j->unbounded && j->end_pos > j->stored_pos &&
           j->end_pos - j->stored_pos + reclen > j->o.max_bytes) {
        j->waiting = 1;
        pthread_cond_wait(&j->space, &j->lock);
    }
    j->waiting = 0;
    if (j->closed || len > MAX_RECORD || maybe_rotate(j, reclen) < 0) goto done;
    uint64_t now = now_us();
    seq = now > j->last_seq ? now : j->last_seq + 1;
    if (write_record(j, seq, data, len) < 0) {
        seq = 0;
        goto done;
    }
    j->last_seq = seq;
    j->end_pos += reclen;
    j->appended++;
    j->dirty = 1;
    pthread_cond_signal(&j->data);
done:
    pthread_mutex_unlock(&j->lock);
    return seq;
}

int journal_append_waiting(struct journal *j) {
    pthread_mutex_lock(&j->lock);
    int w = j->waiting;
    pthread_mutex_unlock(&j->lock);
    return w;
}

/* ==================== Reading ==================== */

static struct segment *seg_find(struct journal *j, uint64_t index) {
    for (size_t i = 0; i < j->nsegs; i++)
        if (j->segs[i].index == index) return &j->segs[i];
    return NULL;
}

/* Wait until the reader's segment has unread bytes, moving on to the next
 * segment at the end of one. Returns 1 with the unread byte count and the
 * journal position of the first, 0 on timeout or when closed. */
static int reader_wait(struct journal *j, int timeout_ms, uint64_t *avail, uint64_t *pos) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) { until.tv_sec++; until.tv_nsec -= 1000000000L; }
    int rc = 0;
    pthread_mutex_lock(&j->lock);
    for (;;) {
        struct segment *s = seg_find(j, j->rindex);
        if (s == NULL) s = &j->segs[0];        /* ours was deleted: cannot be */
        if (j->roff < s->size) {
            *avail = s->size - j->roff;
            *pos = s->start_pos + j->roff;
            rc = 1;
            break;
        }
        if (s != &j->segs[j->nsegs - 1]) {
            j->rindex = s[1].index;
            j->roff = 0;
            if (j->rfd >= 0) close(j->rfd);
            j->rfd = -1;
            continue;
        }
        if (j->closed || pthread_cond_timedwait(&j->data, &j->lock, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&j->lock);
    return rc;
}

/* Fill the read buffer from the reader's position: at least one whole
 * record, at most READ_CHUNK bytes unless one record is larger. Returns
 * the bytes read, or -1. */
static ssize_t reader_fill(struct journal *j, uint64_t avail) {
    char path[600];
    unsigned char h[HDR_LEN];
    if (j->rfd < 0) {
        seg_path(j, j->rindex, path, sizeof(path));
        if ((j->rfd = open(path, O_RDONLY | O_CLOEXEC)) < 0) goto fail;
    }
    if (pread(j->rfd, h, HDR_LEN, (off_t)j->roff) != HDR_LEN) goto fail;
    size_t want = HDR_LEN + get_u32(h);
    if (want < READ_CHUNK) want = READ_CHUNK;
    if (want > avail) want = avail;
    if (want > j->rcap) {
        char *b = realloc(j->rbuf, want);
        if (b == NULL) goto fail;
        j->rbuf = b;
        j->rcap = want;
    }
    ssize_t n = pread(j->rfd, j->rbuf, want, (off_t)j->roff);
    if (n > 0) return n;
fail:
    jerr(j, "journal: read segment %016llu: %s", (unsigned long long)j->rindex,
         strerror(errno));
    return -1;
}

/* Parse whole records out of the read buffer into out[]; skips the ones
 * the checkpoint found at open covers. Returns how many were taken and
 * advances the reader over everything parsed. */
static size_t reader_parse(struct journal *j, ssize_t got, uint64_t pos,
                           struct journal_entry *out, size_t max) {
    size_t n = 0, off = 0;
    uint64_t skipped = 0;
    while (n < max && (size_t)got - off >= HDR_LEN) {
        const unsigned char *h = (const unsigned char *)j->rbuf + off;
        size_t len = get_u32(h);
        if ((size_t)got - off < HDR_LEN + len) break;
        uint64_t seq = get_u64(h + 8);
        off += HDR_LEN + len;
        if (seq <= j->skip_until) {            /* applied before the restart */
            skipped = pos + off;
            continue;
        }
        out[n++] = (struct journal_entry){ seq, (const char *)h + HDR_LEN, len, pos + off };
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
        pthread_cond_broadcast(&j->space);
    }
    pthread_mutex_unlock(&j->lock);
}

/* Delete the segments wholly covered by the checkpoint, never the last
 * (appends go there) nor the reader's. Called with the lock held. */
static void drop_segments(struct journal *j) {
    size_t drop = 0;
    char path[600];
    while (drop + 1 < j->nsegs && j->segs[drop].last_seq <= j->checkpoint_seq &&
           j->segs[drop].index != j->rindex) {
        seg_path(j, j->segs[drop].index, path, sizeof(path));
        unlink(path);
        drop++;
    }
    if (drop == 0) return;
    memmove(j->segs, j->segs + drop, (j->nsegs - drop) * sizeof(*j->segs));
    j->nsegs -= drop;
}

int journal_checkpoint(struct journal *j, uint64_t seq) {
    pthread_mutex_lock(&j->lock);
    int rc = 0;
    if (seq > j->checkpoint_seq) {
        unsigned char b[12];
        put_u64(b, seq);
        put_u32(b + 8, journal_crc32(0, b, 8));
        if (pwrite(j->ckfd, b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
            jerr(j, "journal: checkpoint: %s", strerror(errno));
            rc = -1;
        } else {
            j->checkpoint_seq = seq;
            drop_segments(j);
        }
    }
    pthread_mutex_unlock(&j->lock);
    return rc;
}

/* The batch policy: fdatasync when something was written and fsync_ms
 * passed. The sync runs on a duplicate descriptor, outside the lock, so
 * appends do not wait for the disk. */
void journal_tick(struct journal *j) {
    struct timespec now;
    int fd = -1;
    if (j->o.fsync != JOURNAL_FSYNC_BATCH) return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (now.tv_sec - j->last_sync.tv_sec) * 1000 +
              (now.tv_nsec - j->last_sync.tv_nsec) / 1000000;
    pthread_mutex_lock(&j->lock);
    if (j->dirty && ms >= j->o.fsync_ms && j->wfd >= 0) {
        fd = dup(j->wfd);
        j->dirty = 0;
        j->last_sync = now;
    }
    pthread_mutex_unlock(&j->lock);
    if (fd < 0) return;
    fdatasync(fd);
    close(fd);
}

void journal_get_stats(struct journal *j, struct journal_stats *st) {
    pthread_mutex_lock(&j->lock);
    st->disk_bytes = j->end_pos - j->segs[0].start_pos;
    st->unstored_bytes = j->end_pos - j->stored_pos;
    st->max_bytes = j->o.max_bytes;
    st->last_seq = j->last_seq;
    st->checkpoint_seq = j->checkpoint_seq;
    st->appended = j->appended;
    pthread_mutex_unlock(&j->lock);
}

const char *journal_errstr(struct journal *j) {
    return j->errstr;
}
