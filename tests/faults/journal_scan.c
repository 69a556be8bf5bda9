/* journal_scan.c -- read and tear the bridge's journal (journal_scan.h). */
#define _GNU_SOURCE                /* memmem */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal_scan.h"

#define HDR_LEN 16
#define NAME_DIGITS 16
#define MAGIC "CBJOURNAL\r\n\x1a"
#define MAGIC_LEN 12
#define SEG_HDR 28                 /* magic, u32 version, u64 seq, u32 crc */
#define VERSION 1

/* One record found in a segment. */
struct js_record {
    size_t offset;                 /* of its header in the file */
    const unsigned char *payload;
    size_t len;
};

typedef void js_visit(void *arg, const struct js_record *r);

/* 1 for a segment name: 16 decimal digits then ".log". */
static int js_is_segment(const struct dirent *de) {
    const char *s = de->d_name;
    for (int i = 0; i < NAME_DIGITS; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return strcmp(s + NAME_DIGITS, ".log") == 0;
}

/* The segment names of dir, oldest first (fixed width: sorting by name is
 * sorting by number). Free with js_free_names. -1 when dir is unreadable. */
static int js_segments(const char *dir, struct dirent ***names) {
    return scandir(dir, names, js_is_segment, alphasort);
}

/* Free what js_segments returned. */
static void js_free_names(struct dirent **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* Read a whole file into a malloc'd buffer; NULL on error. */
static unsigned char *js_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    long size = -1;
    if (f && fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size >= 0 && fseek(f, 0, SEEK_SET) == 0) buf = malloc((size_t)size + 1);
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    if (f) fclose(f);
    *len = buf ? (size_t)size : 0;
    return buf;
}

/* A little-endian u32. */
static uint32_t js_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Where the records of a segment start: after the header of version 1,
 * at 0 in a version 0 segment (no header). -1 for another version, whose
 * layout this does not know. */
static long js_records_start(const unsigned char *buf, size_t len) {
    if (len < MAGIC_LEN || memcmp(buf, MAGIC, MAGIC_LEN) != 0) return 0;
    return len >= SEG_HDR && js_u32(buf + MAGIC_LEN) == VERSION ? SEG_HDR : -1;
}

/* Visit each whole record of buf from start; returns the offset where the
 * records end (== len for a segment that ends on a record boundary). */
static size_t js_walk(const unsigned char *buf, size_t len, size_t start, js_visit *visit,
                      void *arg) {
    size_t off = start;
    while (len - off >= HDR_LEN) {
        size_t plen = js_u32(buf + off);
        if (plen > len - off - HDR_LEN) break;
        struct js_record r = { off, buf + off + HDR_LEN, plen };
        visit(arg, &r);
        off += HDR_LEN + plen;
    }
    return off;
}

/* The n of a client_msg_id "<tag>-<n>" in the payload, or -1. */
static long js_tagged_seq(const struct js_record *r, const char *tag) {
    char needle[80];
    int nlen = snprintf(needle, sizeof(needle), "%s-", tag);
    const unsigned char *p = memmem(r->payload, r->len, needle, (size_t)nlen);
    if (p == NULL) return -1;
    long v = -1;
    for (p += nlen; p < r->payload + r->len && *p >= '0' && *p <= '9'; p++)
        v = (v < 0 ? 0 : v * 10) + (*p - '0');
    return v;
}

/* ==================== Counting ==================== */

struct js_count {
    const char *tag;
    long count;
};

/* Count a record that holds one of the workload's messages. */
static void js_count_one(void *arg, const struct js_record *r) {
    struct js_count *c = arg;
    if (js_tagged_seq(r, c->tag) >= 0) c->count++;
}

/* Count the workload's records in every segment (journal_scan.h). */
long js_count_tagged(const char *dir, const char *tag) {
    struct dirent **names;
    struct js_count c = { tag, 0 };
    int n = js_segments(dir, &names);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
        char path[512];
        size_t len;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        unsigned char *buf = js_read(path, &len);
        long start = buf ? js_records_start(buf, len) : 0;
        if (start < 0) c.count = -1;
        else if (buf && c.count >= 0) js_walk(buf, len, (size_t)start, js_count_one, &c);
        free(buf);
    }
    js_free_names(names, n);
    return c.count;
}

/* ==================== Tearing ==================== */

/* Remember the last record visited. */
static void js_keep_last(void *arg, const struct js_record *r) {
    *(struct js_record *)arg = *r;
}

/* Find the last record of the segment at path and cut bytes off it.
 * Returns its workload seq, or -1 (printed). */
static long js_tear_file(const char *path, const char *tag, int bytes) {
    size_t len;
    struct js_record last = { 0, NULL, 0 };
    unsigned char *buf = js_read(path, &len);
    long seq = -1;
    if (buf == NULL) {
        printf("  cannot read %s\n", path);
        return -1;
    }
    long start = js_records_start(buf, len);
    size_t end = start < 0 ? 0 : js_walk(buf, len, (size_t)start, js_keep_last, &last);
    if (start < 0)
        printf("  %s: a segment of another format version\n", path);
    else if (last.payload == NULL || end != len)
        printf("  %s: %zu bytes, records end at %zu\n", path, len, end);
    else if ((seq = js_tagged_seq(&last, tag)) < 0)
        printf("  %s: the last record (%zu bytes at %zu) holds no %s-<n>\n", path,
               last.len, last.offset, tag);
    else if ((size_t)bytes >= HDR_LEN + last.len || truncate(path, (off_t)(len - (size_t)bytes)) != 0)
        seq = -1;
    free(buf);
    return seq;
}

/* Tear the last record of the newest segment (journal_scan.h). */
long js_tear_last(const char *dir, const char *tag, int bytes, char *segment, size_t size) {
    struct dirent **names;
    char path[512];
    int n = js_segments(dir, &names);
    if (n <= 0) {
        printf("  no journal segment in %s\n", dir);
        if (n == 0) free(names);
        return -1;
    }
    snprintf(segment, size, "%s", names[n - 1]->d_name);
    snprintf(path, sizeof(path), "%s/%s", dir, names[n - 1]->d_name);
    js_free_names(names, n);
    return js_tear_file(path, tag, bytes);
}
