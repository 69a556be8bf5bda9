/* names.c -- the rules for room and user names, and a strict UTF-8 check.
 *
 * A name is 1 to NAME_MAX_BYTES bytes of valid UTF-8 with no control
 * characters (C0, DEL, C1) and none of the characters that mean something to
 * Redis keys, key patterns or MQTT topics. User names have two more rules,
 * see name_valid_user(). Everything here is pure and length-based: the
 * input need not be NUL-terminated and may contain NUL bytes (rejected). */
#include <string.h>

#include "names.h"

/* Printable ASCII characters a name may not contain: space and ':' separate
 * Redis key parts, '{' '}' are cluster hash tags, '*' '?' '[' ']' are
 * pattern characters, '/' '+' '#' are MQTT level separator and wildcards. */
static const char forbidden_ascii[] = " :{},/+#*?[]";

/* ==================== UTF-8 ==================== */

/* Decode the UTF-8 sequence at p[0..avail) into *cp. Returns its length in
 * bytes (1-4), or 0 when it is not well formed: a stray continuation byte,
 * a truncated sequence, an overlong form, a surrogate or a code point above
 * U+10FFFF. The second-byte ranges are those of Unicode's table 3-7, which
 * rules out overlongs, surrogates and > U+10FFFF in a single comparison. */
static size_t utf8_decode(const unsigned char *p, size_t avail,
                          unsigned int *cp) {
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n;

    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xC2 && c <= 0xDF) { n = 2; *cp = c & 0x1Fu; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; *cp = c & 0x0Fu; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; *cp = c & 0x07u; }
    else return 0;

    if (c == 0xE0) lo = 0xA0;          /* overlong 3-byte form */
    else if (c == 0xED) hi = 0x9F;     /* UTF-16 surrogates */
    else if (c == 0xF0) lo = 0x90;     /* overlong 4-byte form */
    else if (c == 0xF4) hi = 0x8F;     /* above U+10FFFF */

    if (avail < n || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        *cp = (*cp << 6) | (p[i] & 0x3Fu);
    }
    return n;
}

/* Is s[0..len) valid UTF-8? Public so that other modules (topics, replies)
 * apply exactly the same definition as the name rules. */
int name_utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    unsigned int cp;

    if (s == NULL) return len == 0;
    while (i < len) {
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0) return 0;
        i += n;
    }
    return 1;
}

/* ==================== Names ==================== */

/* The control characters: C0 (U+0000-U+001F), DEL and C1 (U+0080-U+009F). */
static int is_control(unsigned int cp) {
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

/* The rules shared by room and user names: length, UTF-8, no control
 * characters, no forbidden ASCII characters. One pass over the bytes. */
static int name_valid_common(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    unsigned int cp;

    if (s == NULL || len == 0 || len > NAME_MAX_BYTES) return 0;
    while (i < len) {
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0 || is_control(cp)) return 0;
        if (cp < 0x80 && memchr(forbidden_ascii, (int)cp,
                                sizeof(forbidden_ascii) - 1) != NULL)
            return 0;
        i += n;
    }
    return 1;
}

/* A room name follows the shared rules and does not start with '$'
 * (names.h). */
int name_valid_room(const char *s, size_t len) {
    return name_valid_common(s, len) && s[0] != '$';
}

/* A user name also may not be all digits, because a user's hash stores
 * message ids as fields next to other fields, nor "messages", the name of
 * the room's id counter key. */
int name_valid_user(const char *s, size_t len) {
    size_t i;

    if (!name_valid_common(s, len)) return 0;
    if (len == 8 && memcmp(s, "messages", 8) == 0) return 0;
    for (i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9') break;
    return i < len;
}
