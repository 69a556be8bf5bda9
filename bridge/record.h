/* record.h -- one accepted request (request.h) as the journal stores it.
 *
 * The MQTT callback turns a validated request into a record and appends it
 * to the journal; the store worker reads records back and decodes them in
 * place (no copies: strings point into the journal's read buffer). The
 * format is private to this module, version 3:
 *
 *   u8 0x80|version | u8 kind | i32 limit | i64 ts | i64 id | i64 before |
 *   i64 after | 7 strings, each u32 length (0xffffffff = absent) | bytes | NUL
 *   (room, user, client_msg_id, text, reply topic, MQTT 5 correlation
 *    data, JSON correlation)
 *
 * little-endian. Version 2 is the same without "after" (read as -1: not
 * a catch-up); version 1 (bridges before the version byte) is version 2
 * without its first byte; its first byte is the kind, 1..3, so the two
 * never look alike. Records of both left in a journal by an older bridge
 * are still read. A record that does not parse is refused whole;
 * one of a version this bridge does not know is refused as such. */
#ifndef CB_RECORD_H
#define CB_RECORD_H

#include <stddef.h>
#include "request.h"

#define RECORD_VERSION 3


/* A growable buffer, reused for every record the callback writes. */
struct record_buf {
    char *data;
    size_t len, cap;
};

/* Serialise r into buf (replacing its contents). CB_OK or CB_ERR_OOM. */
int record_encode(struct record_buf *buf, const struct request *r);
void record_buf_free(struct record_buf *buf);

/* Parse data[0..len) into r, pointing into data. CB_OK, CB_ERR_FORMAT
 * for a version this bridge does not read, CB_ERR_PROTO when malformed. */
int record_decode(const char *data, size_t len, struct request *r);

#endif
