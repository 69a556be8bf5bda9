/* record.h -- one accepted request as the journal stores it.
 *
 * The MQTT callback turns a validated request into a record and appends it
 * to the journal; the store worker reads records back and decodes them in
 * place (no copies: strings point into the journal's read buffer). The
 * format is private to this module:
 *
 *   u8 kind | i32 limit | i64 ts | i64 id | i64 before |
 *   7 strings, each u32 length (0xffffffff = absent) | bytes | NUL
 *   (room, user, client_msg_id, text, reply topic, MQTT 5 correlation
 *    data, JSON correlation)
 *
 * little-endian. A record that does not parse is refused whole. */
#ifndef CB_RECORD_H
#define CB_RECORD_H

#include <stddef.h>

struct record {
    int kind;                    /* codec_kind: send, history, delete */
    int limit;                   /* history */
    long long ts;                /* arrival, Unix ms */
    long long id;                /* delete */
    long long before;            /* history */
    const char *room;
    const char *user;            /* "" when none (history without filter) */
    const char *client_msg_id;   /* "" when none */
    const char *text;            /* send; NULL otherwise */
    size_t text_len;
    const char *reply_topic;     /* NULL: no reply wanted */
    const char *corr;            /* MQTT 5 correlation data, NULL if none */
    size_t corr_len;
    const char *correlation;     /* 3.1.1 JSON "correlation", NULL if none */
};

/* A growable buffer, reused for every record the callback writes. */
struct record_buf {
    char *data;
    size_t len, cap;
};

/* Serialise r into buf (replacing its contents). 0, or -1 out of memory. */
int record_encode(struct record_buf *buf, const struct record *r);
void record_buf_free(struct record_buf *buf);

/* Parse data[0..len) into r, pointing into data. 0, or -1 when malformed. */
int record_decode(const char *data, size_t len, struct record *r);

#endif
