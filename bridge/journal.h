/* journal.h -- the append-only journal between the MQTT side and the store.
 *
 * Paho acknowledges a QoS 1 message as soon as its callback returns, so the
 * callback appends every accepted request here first: what the broker was
 * told is safe is on disk (or in the page cache, see the fsync policies)
 * before the PUBACK leaves. The store worker reads the journal in order,
 * applies it to Redis, and reports two positions back:
 *
 *   stored      everything up to here is in Redis. Governs backpressure:
 *               appends wait while the bytes not yet stored exceed max_bytes.
 *   checkpoint  everything up to here is stored *and* its publishes were
 *               acknowledged by the broker. Persisted in <dir>/checkpoint;
 *               replay after a restart starts after it, and segments wholly
 *               at or before it are deleted.
 *
 * Format (version 1; every integer little-endian):
 *
 *   <dir>/<16 digits>.log   a segment, rotated at segment_bytes (the header
 *                           included). It starts with a 28-byte header:
 *                             12 bytes  magic "CBJOURNAL\r\n\x1a"
 *                             u32       format version (1)
 *                             u64       the journal's last seq when the
 *                                       segment was made (seqs in it and
 *                                       after it are larger)
 *                             u32       crc32 of the 24 bytes before it
 *                           then records, each
 *                             u32 length | u32 crc32(seq, payload) | u64 seq
 *                             | payload (length bytes, at most 8 MiB)
 *   <dir>/checkpoint        28 bytes: magic "CBCHECKPT\r\n\x1a", u32 format
 *                           version (1), u64 seq, u32 crc32 of the 24 bytes
 *                           before it. Rewritten in place.
 *
 * Sequence numbers increase strictly; a new journal starts from the current
 * time in microseconds, so a wiped journal never reuses the numbers of an
 * older one. Journal positions (stored, journal_entry.pos, the byte counts
 * in journal_stats) count record bytes only, never headers.
 *
 * Open checks every file before it changes any: a segment or checkpoint of
 * another format version, a segment with a bad magic or a header failing
 * its checksum, is refused: journal_open returns NULL, says which file and
 * why, and leaves every file as it was. Then, in each segment, a record that
 * is short or fails its checksum (a torn write after a crash) is cut off
 * with everything after it in that segment, and reported. A segment or
 * checkpoint too short to hold its header and starting like one (a crash
 * while it was made) holds nothing.
 *
 * Version 0, the format before headers, is still read: a segment whose
 * first 4 bytes are a record length (at most 8 MiB; the magic read as a
 * length is over 1 GiB, so the two cannot be confused) is a run of records
 * from its first byte, and a 12-byte checkpoint (u64 seq, u32 crc32 of it)
 * holds the seq. Appends never go to a version 0 segment: the first one
 * after open starts a new segment, and the first checkpoint rewrites the
 * file in version 1. Old segments go as the checkpoint passes them.
 *
 * A full disk. An append that fails for want of space (ENOSPC, EDQUOT, a
 * short write) is cut back off the file, returns 0, and puts the journal in
 * the "disk full" state until an append succeeds: journal_append_waiting()
 * is 1 (the store worker keeps storing instead of waiting for the
 * publisher), errstr says so, and the appender retries after
 * journal_wait_space(). Meanwhile space comes back from *stored* records
 * without waiting for the checkpoint: every segment wholly at or before the
 * stored position is cut to its header (the active one too: the next
 * append starts a new segment, so one segment as large as the disk cannot
 * stop it) and deleted once the reader has left it. Those records are
 * already in Redis and their republishes still in memory; what they lose is
 * only the replay of those republishes after a crash before the broker
 * acknowledged them. journal_stats.released_early counts them. The
 * checkpoint is not moved: a restart replays what is left after it, which
 * never includes a deleted segment and never skips an unstored record.
 *
 * Threads: one appender (Paho's callback), one reader (the store worker),
 * and journal_tick() from the main loop; all may run at once. */
#ifndef CB_JOURNAL_H
#define CB_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define JOURNAL_FORMAT_VERSION 1

enum journal_fsync {
    JOURNAL_FSYNC_NEVER = 0,     /* the OS writes back: survives a crash of
                                    the bridge, not of the machine */
    JOURNAL_FSYNC_BATCH = 1,     /* fdatasync every fsync_ms: a power loss
                                    loses at most that much */
    JOURNAL_FSYNC_ALWAYS = 2     /* fdatasync before each append returns */
};

/* "never", "batch", "always" <-> journal_fsync; -1 for another name. */
int journal_fsync_parse(const char *name);
const char *journal_fsync_name(int mode);

/* The calls through which the journal reads and writes its files, as
 * hiredis takes redisContextFuncs: tests replace them to make a disk fill
 * up (ENOSPC, short writes) or a read fail. A NULL member is the system's
 * own call. Segments and records are written with writev, the checkpoint
 * with pwrite, everything read with pread. */
struct journal_io {
    ssize_t (*writev)(int fd, const struct iovec *iov, int iovcnt);
    ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
    ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
    int (*fdatasync)(int fd);
};

struct journal_opts {
    const char *dir;
    int fsync;                   /* journal_fsync */
    int fsync_ms;
    uint64_t max_bytes;          /* bound on bytes not yet stored */
    uint64_t segment_bytes;
    /* Called, without the journal's lock held and on the appender's
     * thread, whenever an append starts waiting: for the backlog bound, or
     * for the disk (the append failed and will be retried). The store
     * worker may be waiting for the publisher, which cannot move while the
     * appender holds Paho's lock: wake it. NULL: none. */
    void (*on_wait)(void *arg);
    void *on_wait_arg;
    const struct journal_io *io; /* NULL: the system's calls */
};

/* What open found, for the caller to log. */
struct journal_recovery {
    int segments;                /* segment files found */
    int legacy_segments;         /* of which version 0 (no header) */
    uint64_t records;            /* valid records in them */
    uint64_t pending;            /* of which after the checkpoint: replayed */
    uint64_t cut_bytes;          /* bytes cut off as torn or corrupt */
    char cut_file[64];           /* the segment they were cut from */
};

/* One record handed to the reader. data is valid until the next
 * journal_read(); pos is the journal position just after the record. */
struct journal_entry {
    uint64_t seq;
    const char *data;
    size_t len;
    uint64_t pos;
};

struct journal_stats {
    uint64_t disk_bytes;         /* record bytes in the segments on disk */
    uint64_t unstored_bytes;     /* appended, not yet stored */
    uint64_t max_bytes;
    uint64_t last_seq;           /* newest appended */
    uint64_t checkpoint_seq;
    uint64_t appended;           /* records appended since open */
    uint64_t released_early;     /* records after the checkpoint deleted
                                    since open to make room on a full disk:
                                    stored, but their republish is no
                                    longer replayed after a crash */
    int disk_full;               /* 1 in the disk full state */
};

struct journal;

/* Open (creating dir if needed) and recover. NULL with err set on failure;
 * a journal of another format is refused untouched (see above). */
struct journal *journal_open(const struct journal_opts *o,
                             struct journal_recovery *rec, char *err, size_t errlen);
void journal_free(struct journal *j);

/* Append one record, waiting while more than max_bytes are not yet stored.
 * Returns the record's seq (> 0), or 0 when the journal is closed or the
 * write failed (see journal_errstr): then nothing of it is in the journal,
 * and the caller may call journal_wait_space() and try again. */
uint64_t journal_append(struct journal *j, const void *data, size_t len);

/* After a failed append: wait until something may have made room (a
 * store, a checkpoint, space given back by the disk full state), at most
 * timeout_ms (space can also come from outside). Returns at once when the
 * last append did not fail. CB_OK, or CB_ERR_CLOSED once closed. */
int journal_wait_space(struct journal *j, int timeout_ms);

/* 1 while the appender is held up: an append waits for the backlog bound,
 * or the last append failed (disk full, or another write error) and has
 * not succeeded since. */
int journal_append_waiting(struct journal *j);

/* End the reader's wait now (or its next one, when it is not waiting):
 * journal_read then returns 0 at once, as on a timeout. For other work of
 * the reader's thread that just came (other writers' events). Any
 * thread. */
void journal_poke(struct journal *j);

/* Up to max records after the reader's position, waiting up to timeout_ms
 * for the first. Records at or before the checkpoint found at open are
 * skipped. Returns how many; 0 on timeout or once closed. */
size_t journal_read(struct journal *j, struct journal_entry *out, size_t max,
                    int timeout_ms);

/* The reader has stored everything before pos (an entry's pos). */
void journal_stored(struct journal *j, uint64_t pos);

/* Everything up to seq is stored and its publishes acknowledged: persist
 * the checkpoint and delete the segments it covers. CB_OK or CB_ERR_IO
 * (errstr). */
int journal_checkpoint(struct journal *j, uint64_t seq);

/* Periodic work (fsync for the batch policy). Call about every 100 ms. */
void journal_tick(struct journal *j);

/* Stop bounding the backlog: appends no longer wait (a waiting one goes
 * ahead). For shutdown, when nothing will store the backlog any more but
 * the MQTT callback must still be able to return. */
void journal_unbound(struct journal *j);

/* Refuse further appends and wake every waiter. */
void journal_close(struct journal *j);

void journal_get_stats(struct journal *j, struct journal_stats *st);

/* The last error, copied into buf (NUL-terminated, cut to len): errstr is
 * written and read under the journal's lock, so any thread may ask. */
void journal_errstr(struct journal *j, char *buf, size_t len);

/* CRC-32 (IEEE), exposed for tests. */
uint32_t journal_crc32(uint32_t crc, const void *data, size_t len);

#endif
