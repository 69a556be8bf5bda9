/* journal_scan.h -- the bridge's journal read from outside, by its
 * documented format only (bridge/journal.h): segment files <dir>/<16
 * decimal digits>.log, each a 28-byte header (magic "CBJOURNAL\r\n\x1a",
 * u32 version 1, u64 seq, u32 crc32) then a run of records  u32 length |
 * u32 crc32 | u64 seq | payload  (little-endian, length = the payload's);
 * a segment of version 0 has no header. A workload message is recognised
 * in a payload by its client_msg_id "<tag>-<seq>", which the bridge keeps
 * verbatim. */
#ifndef CB_FAULTS_JOURNAL_SCAN_H
#define CB_FAULTS_JOURNAL_SCAN_H

#include <stddef.h>

/* Records in all segments of dir that hold a client_msg_id "<tag>-<n>";
 * -1 when dir cannot be read or holds a segment of another version. */
long js_count_tagged(const char *dir, const char *tag);

/* Tear the last record of the newest segment: cut `bytes` bytes (fewer
 * than the record's) off the end of the file, as a crash mid-write would.
 * The segment must end on a record boundary. Returns the seq of the
 * workload message that record held, and its file name in segment; -1 with
 * a message on stdout when the journal is not as documented. */
long js_tear_last(const char *dir, const char *tag, int bytes, char *segment, size_t size);

#endif
