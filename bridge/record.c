/* record.c -- the journal's record format (see record.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

#define ABSENT 0xffffffffu
#define FIXED_LEN (1 + 4 + 8 + 8 + 8)
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

int record_encode(struct record_buf *b, const struct record *r) {
    const char *s[NSTRINGS] = { r->room, r->user, r->client_msg_id, r->text,
                                r->reply_topic, r->corr, r->correlation };
    size_t n[NSTRINGS] = { slen(r->room), slen(r->user), slen(r->client_msg_id),
                           r->text_len, slen(r->reply_topic), r->corr_len,
                           slen(r->correlation) };
    size_t total = FIXED_LEN;
    for (int i = 0; i < NSTRINGS; i++) total += 4 + (s[i] ? n[i] + 1 : 0);
    b->len = 0;
    if (buf_reserve(b, total) < 0) return -1;
    put_le(b, (uint64_t)r->kind, 1);
    put_le(b, (uint64_t)(uint32_t)r->limit, 4);
    put_le(b, (uint64_t)r->ts, 8);
    put_le(b, (uint64_t)r->id, 8);
    put_le(b, (uint64_t)r->before, 8);
    for (int i = 0; i < NSTRINGS; i++) put_str(b, s[i], n[i]);
    return 0;
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

int record_decode(const char *data, size_t len, struct record *r) {
    const unsigned char *p = (const unsigned char *)data;
    const char **s[NSTRINGS] = { &r->room, &r->user, &r->client_msg_id, &r->text,
                                 &r->reply_topic, &r->corr, &r->correlation };
    size_t n[NSTRINGS], off = FIXED_LEN;
    if (len < FIXED_LEN) return -1;
    memset(r, 0, sizeof(*r));
    r->kind = p[0];
    r->limit = (int)(int32_t)get_le(p + 1, 4);
    r->ts = (long long)get_le(p + 5, 8);
    r->id = (long long)get_le(p + 13, 8);
    r->before = (long long)get_le(p + 21, 8);
    for (int i = 0; i < NSTRINGS; i++)
        if (get_str(data, len, &off, s[i], &n[i]) < 0) return -1;
    r->text_len = n[3];
    r->corr_len = n[5];
    if (off != len || r->room == NULL || r->user == NULL || r->client_msg_id == NULL)
        return -1;
    return 0;
}
