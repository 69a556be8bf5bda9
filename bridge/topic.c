/* topic.c -- topic routing: which request a topic carries, and where the
 * bridge publishes.
 *
 *   <prefix>/<room>/send | history | delete | edit | read
 *                                               requests, client -> bridge
 *   <prefix>/<room>/msgs                        stored messages, bridge -> clients
 *
 * The prefix may have several levels; the room is exactly one level. All
 * functions are pure and work on explicit lengths, since MQTT topics are
 * length-prefixed and need not be NUL-terminated. */
#include <stdio.h>
#include <string.h>

#include "topic.h"

#define TOPIC_MAX_BYTES 65535   /* an MQTT string length is 16 bits */

/* The last level of each request topic, indexed by topic_kind. */
static const char *const kind_leaf[] = {
    [REQ_SEND] = "send",
    [REQ_HISTORY] = "history",
    [REQ_DELETE] = "delete",
    [REQ_EDIT] = "edit",
    [REQ_READ] = "read",
    [REQ_MEMBERS] = "members",
    [REQ_ROOMS] = "$rooms",        /* right under the prefix, no room */
};

/* 1 when requests of kind name their sender in identity "topic": all but
 * history and members, which anyone may read. */
static int kind_has_sender(int kind) {
    return kind >= REQ_SEND && kind <= REQ_KIND_MAX && kind != REQ_HISTORY &&
           kind != REQ_MEMBERS;
}

/* ==================== Helpers ==================== */

/* Does s[0..len) equal the C string lit? */
static int span_eq(const char *s, size_t len, const char *lit) {
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

/* If topic[0..len) starts with "<prefix>/", return the length of that head,
 * else 0. The '/' is required so that prefix "chat" does not match
 * "chatter/...". */
static size_t prefix_head(const char *prefix, const char *topic, size_t len) {
    size_t plen = strlen(prefix);

    if (len <= plen || memcmp(topic, prefix, plen) != 0 || topic[plen] != '/')
        return 0;
    return plen + 1;
}

/* Offset of the last '/' in s[0..len), or len when there is none. Written
 * out rather than memrchr(), which is a GNU extension. */
static size_t last_slash(const char *s, size_t len) {
    for (size_t i = len; i > 0; i--)
        if (s[i - 1] == '/') return i - 1;
    return len;
}

/* The topic_kind whose leaf is s[0..len), or 0 when there is none. */
static int leaf_kind(const char *s, size_t len) {
    for (int k = 1; k <= REQ_KIND_MAX; k++)
        if (span_eq(s, len, kind_leaf[k])) return k;
    return 0;
}

/* ==================== Parsing ==================== */

/* Split "<prefix>/<room>/<leaf>". A topic outside the prefix or with an
 * unknown leaf is foreign (someone else's traffic); a known leaf with the
 * wrong number of levels in between is a malformed request; a room level
 * that breaks the name rules is a bad room. */
int topic_parse(const char *prefix, const char *topic, size_t len,
                char room[NAME_MAX_BYTES + 1]) {
    size_t head = prefix_head(prefix, topic, len);
    if (head == 0) return TOPIC_ERR_FOREIGN;

    const char *rest = topic + head;
    size_t rlen = len - head;
    size_t slash = last_slash(rest, rlen);
    if (slash == rlen) {
        /* "<prefix>/<x>": a user's rooms, a leaf with no room, or a room
         * with no leaf. */
        int kind = leaf_kind(rest, rlen);
        if (kind == REQ_ROOMS) {
            room[0] = '\0';
            return kind;
        }
        return kind ? TOPIC_ERR_LEVELS : TOPIC_ERR_FOREIGN;
    }

    int kind = leaf_kind(rest + slash + 1, rlen - slash - 1);
    if (kind == 0) return TOPIC_ERR_FOREIGN;
    if (kind == REQ_ROOMS) return TOPIC_ERR_LEVELS;
    if (memchr(rest, '/', slash) != NULL) return TOPIC_ERR_LEVELS;
    if (!name_valid_room(rest, slash)) return TOPIC_ERR_ROOM;

    memcpy(room, rest, slash);
    room[slash] = '\0';
    return kind;
}

/* Split "<prefix>/<room>/<leaf>/<user>" (send, delete, edit, read) or
 * "<prefix>/<room>/history": the part before the last level must then be
 * a topic_parse() topic of a kind with a sender, and the last level a
 * valid user name. */
int topic_parse_sender(const char *prefix, const char *topic, size_t len,
                       char room[NAME_MAX_BYTES + 1],
                       char user[NAME_MAX_BYTES + 1]) {
    size_t slash = last_slash(topic, len);
    int kind, head;

    user[0] = '\0';
    if (slash == len) return TOPIC_ERR_FOREIGN;
    kind = leaf_kind(topic + slash + 1, len - slash - 1);
    head = topic_parse(prefix, topic, slash, room);
    /* A sender may be called "send", "history" or "read": after a topic
     * of a kind with a sender, the last level is the sender whatever it
     * reads. */
    if (kind_has_sender(head)) kind = 0;
    if (kind == REQ_HISTORY || kind == REQ_MEMBERS) return topic_parse(prefix, topic, len, room);
    if (kind != 0) {         /* a kind with a sender, without its level */
        kind = topic_parse(prefix, topic, len, room);
        return kind < 0 ? kind : TOPIC_ERR_LEVELS;
    }
    kind = head;
    if (kind == REQ_HISTORY || kind == REQ_MEMBERS) return TOPIC_ERR_LEVELS;
    if (kind < 0) return kind;
    if (!name_valid_user(topic + slash + 1, len - slash - 1))
        return TOPIC_ERR_USER;
    memcpy(user, topic + slash + 1, len - slash - 1);
    user[len - slash - 1] = '\0';
    return kind;
}

/* ==================== Building ==================== */

/* snprintf() "<prefix>/<room>/<leaf>" into buf, refusing truncation: a cut
 * topic would publish to the wrong place. */
int topic_build(char *buf, size_t size, const char *prefix, const char *room,
                const char *leaf) {
    if (buf == NULL || size == 0) return -1;
    int n = snprintf(buf, size, "%s/%s/%s", prefix, room, leaf);
    if (n < 0 || (size_t)n >= size) return -1;
    return n;
}

/* The subscription filter for one request kind: the room level is '+'
 * ("<prefix>/$rooms" has none). */
int topic_filter(char *buf, size_t size, const char *prefix, int kind) {
    if (kind < 1 || kind > REQ_KIND_MAX) return -1;
    if (kind == REQ_ROOMS) {
        int n = buf && size ? snprintf(buf, size, "%s/%s", prefix, kind_leaf[kind]) : -1;
        return n < 0 || (size_t)n >= size ? -1 : n;
    }
    return topic_build(buf, size, prefix, "+", kind_leaf[kind]);
}

/* The filter for topic_parse_sender(): all kinds but history take a user
 * level. */
int topic_filter_sender(char *buf, size_t size, const char *prefix, int kind) {
    int n = topic_filter(buf, size, prefix, kind);

    if (n < 0 || !kind_has_sender(kind)) return n;
    if ((size_t)n + 2 >= size) return -1;
    memcpy(buf + n, "/+", 3);
    return n + 2;
}

/* ==================== Reply topics ==================== */

/* Decode the code point at p[0..) from UTF-8 already known to be valid
 * (name_utf8_valid() said so): only the lead byte decides the length. */
static size_t valid_utf8_next(const unsigned char *p, unsigned int *cp) {
    size_t n = p[0] < 0x80 ? 1 : p[0] < 0xE0 ? 2 : p[0] < 0xF0 ? 3 : 4;
    static const unsigned char lead_mask[] = { 0, 0x7F, 0x1F, 0x0F, 0x07 };

    *cp = p[0] & lead_mask[n];
    for (size_t i = 1; i < n; i++) *cp = (*cp << 6) | (p[i] & 0x3Fu);
    return n;
}

/* Does the valid UTF-8 s[0..len) hold a wildcard, a control character
 * (C0, DEL, C1) or a Unicode noncharacter? mosquitto 2.0 drops the
 * connection of a client that publishes to a topic with a control character
 * or a noncharacter, so a reply_to holding one would knock the whole bridge
 * off the broker. */
static int has_unsafe_char(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    unsigned int cp;

    while (i < len) {
        i += valid_utf8_next(p + i, &cp);
        if (cp == '+' || cp == '#') return 1;
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) return 1;
        if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFEu) == 0xFFFEu)
            return 1;
    }
    return 0;
}

/* Is rest[0..rlen) "<any one level>/<request leaf>|msgs"? The level
 * may be empty: the bridge's '+' filters match "<prefix>//send" too. */
static int is_room_leaf(const char *rest, size_t rlen) {
    size_t slash = last_slash(rest, rlen);
    if (slash == rlen || memchr(rest, '/', slash) != NULL) return 0;

    const char *leaf = rest + slash + 1;
    size_t llen = rlen - slash - 1;
    return leaf_kind(leaf, llen) != 0 || span_eq(leaf, llen, "msgs");
}

/* Is topic[0..len) one of the bridge's own topics: "<prefix>/<level>/
 * <request leaf>|msgs", the same with one more level after the leaf of a
 * kind with a sender (identity "topic"), or anything under "<prefix>/$"
 * (the status topics)? */
static int is_own_topic(const char *prefix, const char *topic, size_t len) {
    size_t head = prefix_head(prefix, topic, len);
    if (head == 0) return 0;

    const char *rest = topic + head;
    size_t rlen = len - head;
    if (rlen > 0 && rest[0] == '$') return 1;
    if (is_room_leaf(rest, rlen)) return 1;
    size_t slash = last_slash(rest, rlen);
    if (slash == rlen || !is_room_leaf(rest, slash)) return 0;
    int kind = leaf_kind(rest + last_slash(rest, slash) + 1,
                         slash - last_slash(rest, slash) - 1);
    return kind_has_sender(kind);
}

/* May a reply be published to topic[0..len)? See topic.h; besides the
 * rules there, characters the broker refuses are refused here as well. */
int topic_reply_allowed(const char *prefix, const char *topic, size_t len) {
    if (topic == NULL || len == 0 || len > TOPIC_MAX_BYTES) return 0;
    if (topic[0] == '$') return 0;
    if (!name_utf8_valid(topic, len)) return 0;
    if (has_unsafe_char(topic, len)) return 0;
    return !is_own_topic(prefix, topic, len);
}

/* A short description of a topic_parse() error, for logs and replies. */
const char *topic_error_text(int err) {
    switch (err) {
    case TOPIC_ERR_FOREIGN: return "not a request topic of this bridge";
    case TOPIC_ERR_LEVELS: return "wrong number of topic levels";
    case TOPIC_ERR_ROOM: return "invalid room name in topic";
    case TOPIC_ERR_USER: return "invalid user name in topic";
    default: return "unknown topic error";
    }
}
