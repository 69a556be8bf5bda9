/* record.c -- the journal's record format (see record.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "result.h"

#define ABSENT 0xffffffffu
#define FIXED_LEN_V2 (1 + 4 + 8 + 8 + 8)    /* after the version byte */
#define FIXED_LEN (FIXED_LEN_V2 + 8)          /* version 3: + after */
#define VERSION_BYTE (0x80 | RECORD_VERSION)
#define NSTRINGS 7

/* ==================== Encoding ==================== */

/* Make room for n more bytes. */
static int buf_reserve(struct record_buf *b, size_t n) {
    if (b->len + n <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

static void put_le(struct record_buf *b, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) b->data[b->len++] = (char)(v >> (8 * i));
}

/* A string field: length (or ABSENT for NULL), bytes, NUL. */
static void put_str(struct record_buf *b, const char *s, size_t len) {
    put_le(b, s ? (uint32_t)len : ABSENT, 4);
    if (s == NULL) return;
    memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len++] = '\0';
}

static size_t slen(const char *s) {
    return s ? strlen(s) : 0;
}

int record_encode(struct record_buf *b, const struct request *r) {
    const char *s[NSTRINGS] = { r->room, r->user, r->client_msg_id, r->text,
                                r->reply_topic, r->corr, r->correlation };
    size_t n[NSTRINGS] = { slen(r->room), slen(r->user), slen(r->client_msg_id),
                           r->text_len, slen(r->reply_topic), r->corr_len,
                           slen(r->correlation) };
    size_t total = 1 + FIXED_LEN;
    for (int i = 0; i < NSTRINGS; i++) total += 4 + (s[i] ? n[i] + 1 : 0);
    b->len = 0;
    if (buf_reserve(b, total) < 0) return CB_ERR_OOM;
    put_le(b, VERSION_BYTE, 1);
    put_le(b, (uint64_t)r->kind, 1);
    put_le(b, (uint64_t)(uint32_t)r->limit, 4);
    put_le(b, (uint64_t)r->ts, 8);
    put_le(b, (uint64_t)r->id, 8);
    put_le(b, (uint64_t)r->before, 8);
    put_le(b, (uint64_t)r->after, 8);
    for (int i = 0; i < NSTRINGS; i++) put_str(b, s[i], n[i]);
    return CB_OK;
}

void record_buf_free(struct record_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ==================== Decoding ==================== */

static uint64_t get_le(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Read one string field at *off; *s is NULL when absent. -1 if it overruns
 * the record or lacks its NUL. */
static int get_str(const char *data, size_t len, size_t *off, const char **s, size_t *n) {
    if (len - *off < 4) return -1;
    uint32_t l = (uint32_t)get_le((const unsigned char *)data + *off, 4);
    *off += 4;
    *s = NULL;
    *n = 0;
    if (l == ABSENT) return 0;
    if (len - *off < (size_t)l + 1 || data[*off + l] != '\0') return -1;
    *s = data + *off;
    *n = l;
    *off += (size_t)l + 1;
    return 0;
}

/* The version a record was written in: RECORD_VERSION, 1 for the records
 * of bridges before the version byte (they start with the kind), or 0
 * for neither. */
static int record_version(const unsigned char *p, size_t len) {
    if (len == 0) return 0;
    if (p[0] >= REQ_SEND && p[0] <= REQ_DELETE) return 1;
    if (p[0] & 0x80) return p[0] & 0x7f;
    return 0;
}

int record_decode(const char *data, size_t len, struct request *r) {
    int version = record_version((const unsigned char *)data, len);
    if (version < 1 || version > RECORD_VERSION)
        return version ? CB_ERR_FORMAT : CB_ERR_PROTO;
    if (version > 1) {
        data++;
        len--;
    }
    const unsigned char *p = (const unsigned char *)data;
    const char **s[NSTRINGS] = { &r->room, &r->user, &r->client_msg_id, &r->text,
                                 &r->reply_topic, &r->corr, &r->correlation };
    size_t n[NSTRINGS], off = version == RECORD_VERSION ? FIXED_LEN : FIXED_LEN_V2;
    if (len < off) return CB_ERR_PROTO;
    memset(r, 0, sizeof(*r));
    r->kind = p[0];
    r->limit = (int)(int32_t)get_le(p + 1, 4);
    r->ts = (long long)get_le(p + 5, 8);
    r->id = (long long)get_le(p + 13, 8);
    r->before = (long long)get_le(p + 21, 8);
    r->after = version == RECORD_VERSION ? (long long)get_le(p + 29, 8) : -1;
    for (int i = 0; i < NSTRINGS; i++)
        if (get_str(data, len, &off, s[i], &n[i]) < 0) return CB_ERR_PROTO;
    r->text_len = n[3];
    r->corr_len = n[5];
    if (off != len || r->room == NULL || r->user == NULL || r->client_msg_id == NULL ||
        r->kind < REQ_SEND || r->kind > (version == RECORD_VERSION ? REQ_KIND_MAX : REQ_DELETE))
        return CB_ERR_PROTO;
    return CB_OK;
}
