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
 * Files: <dir>/<16 digits>.log segments, rotated at segment_bytes. Each
 * record is  u32 length | u32 crc32(seq, payload) | u64 seq | payload,
 * little-endian. Sequence numbers increase strictly; a new journal starts
 * from the current time in microseconds, so a wiped journal never reuses
 * the numbers of an older one. At open, a record that is short or fails its
 * checksum (a torn write after a crash) is cut off with everything after it
 * in that segment, and reported.
 *
 * Threads: one appender (Paho's callback), one reader (the store worker),
 * and journal_tick() from the main loop; all may run at once. */
#ifndef CB_JOURNAL_H
#define CB_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

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

struct journal_opts {
    const char *dir;
    int fsync;                   /* journal_fsync */
    int fsync_ms;
    uint64_t max_bytes;          /* bound on bytes not yet stored */
    uint64_t segment_bytes;
};

/* What open found, for the caller to log. */
struct journal_recovery {
    int segments;                /* segment files found */
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
    uint64_t disk_bytes;         /* size of all segments */
    uint64_t unstored_bytes;     /* appended, not yet stored */
    uint64_t max_bytes;
    uint64_t last_seq;           /* newest appended */
    uint64_t checkpoint_seq;
    uint64_t appended;           /* records appended since open */
};

struct journal;

/* Open (creating dir if needed) and recover. NULL with err set on failure. */
struct journal *journal_open(const struct journal_opts *o,
                             struct journal_recovery *rec, char *err, size_t errlen);
void journal_free(struct journal *j);

/* Append one record, waiting while more than max_bytes are not yet stored.
 * Returns the record's seq (> 0), or 0 when the journal is closed or the
 * write failed (see journal_errstr). */
uint64_t journal_append(struct journal *j, const void *data, size_t len);

/* 1 while an append is waiting for space. */
int journal_append_waiting(struct journal *j);

/* Up to max records after the reader's position, waiting up to timeout_ms
 * for the first. Records at or before the checkpoint found at open are
 * skipped. Returns how many; 0 on timeout or once closed. */
size_t journal_read(struct journal *j, struct journal_entry *out, size_t max,
                    int timeout_ms);

/* The reader has stored everything before pos (an entry's pos). */
void journal_stored(struct journal *j, uint64_t pos);

/* Everything up to seq is stored and its publishes acknowledged: persist
 * the checkpoint and delete the segments it covers. 0 or -1 (errstr). */
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
const char *journal_errstr(struct journal *j);

/* CRC-32 (IEEE), exposed for tests. */
uint32_t journal_crc32(uint32_t crc, const void *data, size_t len);

#endif
