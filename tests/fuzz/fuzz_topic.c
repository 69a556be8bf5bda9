/* fuzz_topic.c -- libFuzzer target for the topic router (bridge/topic.c):
 * topic_parse(), topic_parse_sender(), topic_reply_allowed(),
 * topic_build(), topic_filter() and topic_filter_sender().
 *
 * Input: the first byte b picks the prefix (b % 4: "chat", "acme/chat",
 * "c", or, for 3, the bytes up to the first NUL of the rest, used when
 * config.c would accept it as mqtt.topic_prefix) and a buffer size for
 * topic_build() (b / 4 * 2, 0..126 bytes). The rest is the topic; when it
 * is a valid room name it is also used as a room (and as a sender when
 * it is a valid user name). The seeds in corpus/topic/ start with '0',
 * '1', '2' or '3'.
 *
 * The model knows every kind of request.h: send, history, delete, edit,
 * read and members take a room level (<prefix>/<room>/<leaf>), $rooms
 * none (<prefix>/$rooms, room ""); in identity "topic" all but history
 * and members add the sender as a last level (<prefix>/<room>/send/<user>,
 * <prefix>/$rooms/<user>). A kind added to request.h stops the build
 * (KIND_LAST below) until the model learns it.
 *
 * Invariants (a broken one calls abort()):
 *   - topic_parse() returns exactly what a model of topic.h written here
 *     says: foreign when not under "<prefix>/" or when the last level is
 *     no request leaf; $rooms right under the prefix (room ""), any other
 *     level count for $rooms, or for another leaf anything but one room
 *     level, is TOPIC_ERR_LEVELS; a room level that is no valid room name
 *     (names.h: never starting with '$') TOPIC_ERR_ROOM. On success the
 *     topic is built back exactly from prefix, room and leaf;
 *   - topic_parse_sender(): on success the topic is exactly
 *     <prefix>/<room>/history|members (sender "", as topic_parse() says),
 *     <prefix>/<room>/send|delete|edit|read/<user> or <prefix>/$rooms/<user>
 *     (room "") with a valid user name; a plain send, delete, edit, read
 *     or $rooms topic is TOPIC_ERR_LEVELS, and a history or members topic
 *     parses as topic_parse() says;
 *   - topic_reply_allowed() returns 0 or 1 and agrees with a model of the
 *     rules of topic.h written here from the header alone (UTF-8 with no
 *     control characters, noncharacters, + or #, not starting with '$',
 *     not <prefix>/<any level>/<request leaf>|msgs -- members and $rooms
 *     included --, not <prefix>/<any>/send|delete|edit|read|$rooms/<any>,
 *     nothing under <prefix>/$, which holds <prefix>/$rooms and
 *     <prefix>/$rooms/<any>); <prefix>/<any>/history|members/<any> may be
 *     one; a topic either parser accepts is never a reply topic;
 *   - for a valid room, every request topic built from it parses back to
 *     its kind and room, <prefix>/<room>/$rooms (with or without a sender
 *     after it) is TOPIC_ERR_LEVELS, and no request topic nor the msgs
 *     topic is a reply topic; with a valid user name too, so do the
 *     identity "topic" forms, <prefix>/$rooms/<user> included;
 *   - topic_build() returns the length, and the whole topic is in the
 *     buffer, or -1 exactly when it does not fit (NUL included);
 *   - topic_filter() gives "<prefix>/+/<leaf>" for the kinds with a room,
 *     "<prefix>/$rooms" for REQ_ROOMS (which parses as that request), -1
 *     for any kind outside request.h's or when it does not fit; no filter
 *     is a reply topic; topic_filter_sender() the same with "/+" after
 *     every leaf but history and members ("<prefix>/$rooms/+"). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "topic.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

#define PREFIX_MAX 256          /* longest custom prefix tried */
#define BUILD_MAX 512           /* room for any prefix + room + leaf */
#define TOPIC_MAX_BYTES 65535   /* topic.h: a reply topic's longest length */

static const char *const fixed_prefixes[3] = { "chat", "acme/chat", "c" };

/* The leaf of each request kind, and of the messages the bridge sends. */
#define KIND_LAST REQ_ROOMS     /* the last kind modelled here */
_Static_assert(REQ_KIND_MAX == KIND_LAST,
               "request.h has a kind fuzz_topic.c does not model: add its "
               "leaf and level rules");
static const char *const leaves[KIND_LAST + 1] = {
    [REQ_SEND] = "send", [REQ_HISTORY] = "history",
    [REQ_DELETE] = "delete", [REQ_EDIT] = "edit", [REQ_READ] = "read",
    [REQ_MEMBERS] = "members", [REQ_ROOMS] = "$rooms",
};
#define LEAF_MSGS "msgs"

/* ==================== The model of topic.h ==================== */

/* Is kind one of request.h's? */
static int kind_known(int kind) {
    return kind >= REQ_SEND && kind <= KIND_LAST;
}

/* Does a request of kind name its sender in identity "topic"? All but
 * history and members, which anyone may read (topic.h). */
static int kind_sender(int kind) {
    return kind_known(kind) && kind != REQ_HISTORY && kind != REQ_MEMBERS;
}

/* Does a request of kind have a room level? All but a user's rooms. */
static int kind_room(int kind) {
    return kind_known(kind) && kind != REQ_ROOMS;
}

/* The request kind whose leaf is s[0..len), or 0. */
static int leaf_of(const char *s, size_t len) {
    for (int k = REQ_SEND; k <= KIND_LAST; k++)
        if (strlen(leaves[k]) == len && memcmp(s, leaves[k], len) == 0)
            return k;
    return 0;
}

/* Would config.c accept s as mqtt.topic_prefix? Non-empty, no wildcards,
 * no leading '$', no leading, trailing or double '/'. */
static int prefix_ok(const char *s) {
    size_t len = strlen(s);

    return len > 0 && strpbrk(s, "+#") == NULL && s[0] != '$' &&
           s[0] != '/' && s[len - 1] != '/' && strstr(s, "//") == NULL;
}

/* Does s[0..len) equal the C string lit? */
static int span_is(const char *s, size_t len, const char *lit) {
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

/* Is the valid UTF-8 t[0..len) free of control characters (C0, DEL, C1),
 * noncharacters (U+FDD0..U+FDEF, U+xxFFFE, U+xxFFFF) and wildcards?
 * Matched on the encoded bytes rather than by decoding. */
static int chars_ok(const unsigned char *t, size_t len) {
    for (size_t i = 0; i < len; i++) {
        size_t left = len - i;

        if (t[i] < 0x20 || t[i] == 0x7F || t[i] == '+' || t[i] == '#')
            return 0;
        if (t[i] == 0xC2 && left >= 2 && t[i + 1] <= 0x9F) return 0;
        if (t[i] == 0xEF && left >= 3 && t[i + 1] == 0xB7 &&
            t[i + 2] >= 0x90 && t[i + 2] <= 0xAF) return 0;
        if (t[i] == 0xEF && left >= 3 && t[i + 1] == 0xBF && t[i + 2] >= 0xBE)
            return 0;
        if (t[i] >= 0xF0 && t[i] <= 0xF4 && left >= 4 &&
            (t[i + 1] & 0x0F) == 0x0F && t[i + 2] == 0xBF &&
            t[i + 3] >= 0xBE) return 0;
    }
    return 1;
}

/* Split s[0..len) at '/' into at most max levels (start, length); returns
 * the number of levels, or max + 1 when there are more. */
static int split_levels(const char *s, size_t len, int max,
                        const char **lv, size_t *lvlen) {
    int n = 0;

    for (;;) {
        const char *slash = memchr(s, '/', len);
        size_t l = slash ? (size_t)(slash - s) : len;

        if (n == max) return max + 1;
        lv[n] = s;
        lvlen[n++] = l;
        if (slash == NULL) return n;
        s += l + 1;
        len -= l + 1;
    }
}

/* If t[0..len) is "<prefix>/<rest>", point *rest at rest and return 1. */
static int under_prefix(const char *prefix, const char *t, size_t len,
                        const char **rest, size_t *rlen) {
    size_t plen = strlen(prefix);

    if (len <= plen || memcmp(t, prefix, plen) != 0 || t[plen] != '/')
        return 0;
    *rest = t + plen + 1;
    *rlen = len - plen - 1;
    return 1;
}

/* The last level of s[0..len) into *leaf, *llen; returns how many levels
 * come before it. */
static size_t last_level(const char *s, size_t len, const char **leaf,
                         size_t *llen) {
    size_t i = len, before = 0;

    while (i > 0 && s[i - 1] != '/') i--;
    *leaf = s + i;
    *llen = len - i;
    for (size_t j = 0; j < i; j++) before += s[j] == '/';
    return before;
}

/* topic_parse() as topic.h describes it: the kind or the topic_error.
 * The room of a success into room[] (not NUL-terminated: *rlen). */
static int parse_model(const char *prefix, const char *t, size_t len,
                       const char **room, size_t *rlen) {
    const char *rest, *leaf;
    size_t restlen, llen, before;
    int kind;

    if (!under_prefix(prefix, t, len, &rest, &restlen))
        return TOPIC_ERR_FOREIGN;
    before = last_level(rest, restlen, &leaf, &llen);
    kind = leaf_of(leaf, llen);
    *room = rest;
    *rlen = 0;
    if (kind == 0) return TOPIC_ERR_FOREIGN;
    if (!kind_room(kind)) return before == 0 ? kind : TOPIC_ERR_LEVELS;
    if (before != 1) return TOPIC_ERR_LEVELS;
    *rlen = restlen - llen - 1;
    return name_valid_room(rest, *rlen) ? kind : TOPIC_ERR_ROOM;
}

/* Is t[0..len) one of the bridge's own topics under prefix: anything
 * under "<prefix>/$" (the status topics, $rooms with or without a user),
 * "<prefix>/<level>/<leaf>" for every request leaf and msgs, or
 * "<prefix>/<level>/<leaf>/<level>" for the leaves with a sender (levels
 * may be empty)? */
static int own_topic(const char *prefix, const char *t, size_t len) {
    const char *rest, *lv[3];
    size_t rlen, lvlen[3];
    int n;

    if (!under_prefix(prefix, t, len, &rest, &rlen)) return 0;
    if (rlen > 0 && rest[0] == '$') return 1;
    n = split_levels(rest, rlen, 3, lv, lvlen);
    if (n == 2)
        return leaf_of(lv[1], lvlen[1]) != 0 ||
               span_is(lv[1], lvlen[1], LEAF_MSGS);
    if (n == 3)
        return kind_sender(leaf_of(lv[1], lvlen[1]));
    return 0;
}

/* topic_reply_allowed() as topic.h describes it. */
static int reply_model(const char *prefix, const char *t, size_t len) {
    if (len == 0 || len > TOPIC_MAX_BYTES || t[0] == '$') return 0;
    if (!name_utf8_valid(t, len)) return 0;
    if (!chars_ok((const unsigned char *)t, len)) return 0;
    return !own_topic(prefix, t, len);
}

/* The request topic of kind: "<prefix>/<room>/<leaf>", or
 * "<prefix>/$rooms" (room ignored); with a sender, "/<user>" after it.
 * Returns the length. */
static int request_topic(char *buf, size_t size, const char *prefix,
                         const char *room, int kind, const char *user) {
    int n = kind_room(kind)
        ? snprintf(buf, size, "%s/%s/%s", prefix, room, leaves[kind])
        : snprintf(buf, size, "%s/%s", prefix, leaves[kind]);

    CHECK(n > 0 && (size_t)n < size);
    if (user != NULL) {
        int m = snprintf(buf + n, size - (size_t)n, "/%s", user);

        CHECK(m > 0 && (size_t)m < size - (size_t)n);
        n += m;
    }
    return n;
}

/* ==================== Checks ==================== */

/* topic_build() into a buffer of 'size' bytes: the length and the whole
 * topic, or -1 exactly when it does not fit. */
static void check_build(size_t size, const char *prefix, const char *room,
                        const char *leaf) {
    char buf[BUILD_MAX], *small = malloc(size ? size : 1);
    size_t want = strlen(prefix) + strlen(room) + strlen(leaf) + 2;
    int n = topic_build(buf, sizeof(buf), prefix, room, leaf);
    int m;

    CHECK(small != NULL);
    CHECK(n >= 0 && (size_t)n == want && strlen(buf) == want);
    m = topic_build(small, size, prefix, room, leaf);
    if (want + 1 > size) {
        CHECK(m == -1);
    } else {
        CHECK(m == n && memcmp(small, buf, want + 1) == 0);
    }
    CHECK(topic_build(NULL, 0, prefix, room, leaf) == -1);
    free(small);
}

/* The result of topic_parse() is the model's; on success the room is
 * valid ("" for $rooms), the topic is exactly the request topic of the
 * kind and room, and no reply may go there. */
static void check_parse(const char *prefix, const char *t, size_t len) {
    char room[NAME_MAX_BYTES + 1], built[BUILD_MAX];
    const char *mroom;
    size_t mrlen;
    int kind = topic_parse(prefix, t, len, room);
    int want = parse_model(prefix, t, len, &mroom, &mrlen);

    CHECK(kind == want);
    if (kind < 0) {
        CHECK(kind == TOPIC_ERR_FOREIGN || kind == TOPIC_ERR_LEVELS ||
              kind == TOPIC_ERR_ROOM);
        CHECK(topic_error_text(kind) != NULL);
        return;
    }
    CHECK(kind_known(kind));
    CHECK(strlen(room) == mrlen && memcmp(room, mroom, mrlen) == 0);
    if (kind_room(kind)) {
        CHECK(strlen(room) <= NAME_MAX_BYTES);
        CHECK(name_valid_room(room, strlen(room)));
    } else {
        CHECK(room[0] == '\0');
    }
    CHECK(request_topic(built, sizeof(built), prefix, room, kind, NULL) ==
          (int)len);
    CHECK(memcmp(built, t, len) == 0);
    CHECK(topic_reply_allowed(prefix, t, len) == 0);
}

/* The result of topic_parse_sender(), against topic_parse() and by
 * building the topic back from prefix, room, leaf and sender. */
static void check_parse_sender(const char *prefix, const char *t,
                               size_t len) {
    char room[NAME_MAX_BYTES + 1], user[NAME_MAX_BYTES + 1];
    char room2[NAME_MAX_BYTES + 1];
    int kind = topic_parse_sender(prefix, t, len, room, user);
    int plain = topic_parse(prefix, t, len, room2);

    if (kind_sender(plain))
        CHECK(kind == TOPIC_ERR_LEVELS);
    if (plain == REQ_HISTORY || plain == REQ_MEMBERS)
        CHECK(kind == plain && strcmp(room, room2) == 0);
    if (kind < 0) {
        CHECK(kind == TOPIC_ERR_FOREIGN || kind == TOPIC_ERR_LEVELS ||
              kind == TOPIC_ERR_ROOM || kind == TOPIC_ERR_USER);
        CHECK(topic_error_text(kind) != NULL);
        return;
    }
    CHECK(kind_known(kind));
    CHECK(strlen(room) <= NAME_MAX_BYTES && strlen(user) <= NAME_MAX_BYTES);
    if (kind_room(kind))
        CHECK(name_valid_room(room, strlen(room)));
    else
        CHECK(room[0] == '\0');
    if (!kind_sender(kind)) {
        CHECK((kind == REQ_HISTORY || kind == REQ_MEMBERS) &&
              user[0] == '\0' && plain == kind);
    } else {
        char built[2 * BUILD_MAX];

        CHECK(name_valid_user(user, strlen(user)));
        CHECK(request_topic(built, sizeof(built), prefix, room, kind, user) ==
              (int)len);
        CHECK(memcmp(built, t, len) == 0);
    }
    CHECK(topic_reply_allowed(prefix, t, len) == 0);
}

/* The reply rule agrees with the model; an allowed reply topic is never
 * one the bridge would take as a request. */
static void check_reply(const char *prefix, const char *t, size_t len) {
    int ok = topic_reply_allowed(prefix, t, len);

    CHECK(ok == 0 || ok == 1);
    CHECK(ok == reply_model(prefix, t, len));
    if (ok) {
        char room[NAME_MAX_BYTES + 1], user[NAME_MAX_BYTES + 1];

        CHECK(topic_parse(prefix, t, len, room) < 0);
        CHECK(topic_parse_sender(prefix, t, len, room, user) < 0);
    }
}

/* A valid room: each request topic with a room built from it parses back,
 * and none of them nor its msgs topic is a reply topic; $rooms has no room
 * level, so "<prefix>/<room>/$rooms" is malformed, with or without a
 * sender level after it (taken as the room itself: a valid user name). */
static void check_room(size_t size, const char *prefix, const char *room) {
    char buf[2 * BUILD_MAX], back[NAME_MAX_BYTES + 1];
    char user[NAME_MAX_BYTES + 1];
    int n;

    for (int kind = REQ_SEND; kind <= KIND_LAST; kind++) {
        if (!kind_room(kind)) continue;
        n = topic_build(buf, sizeof(buf), prefix, room, leaves[kind]);

        CHECK(n > 0);
        CHECK(topic_parse(prefix, buf, (size_t)n, back) == kind);
        CHECK(strcmp(back, room) == 0);
        CHECK(topic_reply_allowed(prefix, buf, (size_t)n) == 0);
        check_build(size, prefix, room, leaves[kind]);
    }
    n = topic_build(buf, sizeof(buf), prefix, room, LEAF_MSGS);
    CHECK(n > 0);
    CHECK(topic_parse(prefix, buf, (size_t)n, back) == TOPIC_ERR_FOREIGN);
    CHECK(topic_reply_allowed(prefix, buf, (size_t)n) == 0);

    n = topic_build(buf, sizeof(buf), prefix, room, leaves[REQ_ROOMS]);
    CHECK(n > 0);
    CHECK(topic_parse(prefix, buf, (size_t)n, back) == TOPIC_ERR_LEVELS);
    CHECK(topic_parse_sender(prefix, buf, (size_t)n, back, user) ==
          TOPIC_ERR_LEVELS);
    CHECK(topic_reply_allowed(prefix, buf, (size_t)n) == 0);
    n = snprintf(buf, sizeof(buf), "%s/%s/%s/%s", prefix, room,
                 leaves[REQ_ROOMS], room);
    CHECK(n > 0 && (size_t)n < sizeof(buf));
    CHECK(topic_parse(prefix, buf, (size_t)n, back) < 0);
    CHECK(topic_parse_sender(prefix, buf, (size_t)n, back, user) ==
          TOPIC_ERR_LEVELS);
    CHECK(topic_reply_allowed(prefix, buf, (size_t)n) == 0);
}

/* A valid room that is also a valid user name, as both: the identity
 * "topic" forms <prefix>/<room>/send|delete|edit|read/<user> and
 * <prefix>/$rooms/<user> parse back to the kind, room and sender, and are
 * not reply topics; with the sender level after history or members, the
 * topic is malformed (and a reply topic may go there when its characters
 * allow: nobody reads it). */
static void check_sender(const char *prefix, const char *room,
                         const char *user) {
    char buf[2 * BUILD_MAX], back[NAME_MAX_BYTES + 1];
    char sender[NAME_MAX_BYTES + 1];

    for (int kind = REQ_SEND; kind <= KIND_LAST; kind++) {
        int n = request_topic(buf, sizeof(buf), prefix, room, kind, user);

        if (!kind_sender(kind)) {
            CHECK(topic_parse_sender(prefix, buf, (size_t)n, back, sender) ==
                  TOPIC_ERR_LEVELS);
            CHECK(!own_topic(prefix, buf, (size_t)n));
            CHECK(topic_reply_allowed(prefix, buf, (size_t)n) ==
                  reply_model(prefix, buf, (size_t)n));
            continue;
        }
        CHECK(topic_reply_allowed(prefix, buf, (size_t)n) == 0);
        CHECK(topic_parse_sender(prefix, buf, (size_t)n, back, sender) ==
              kind);
        CHECK(strcmp(back, kind_room(kind) ? room : "") == 0);
        CHECK(strcmp(sender, user) == 0);
    }
}

/* topic_filter() for kinds around the valid ones: "<prefix>/+/<leaf>",
 * which is a request topic of no valid room, or "<prefix>/$rooms", which
 * is the request itself; -1 when it does not fit. */
static void check_filters(size_t size, const char *prefix) {
    char buf[BUILD_MAX], want[BUILD_MAX], room[NAME_MAX_BYTES + 1];

    for (int kind = REQ_SEND - 1; kind <= REQ_KIND_MAX + 1; kind++) {
        int n = topic_filter(buf, sizeof(buf), prefix, kind), m;

        CHECK(topic_filter(NULL, 0, prefix, kind) == -1);
        if (!kind_known(kind)) {
            CHECK(n == -1);
            continue;
        }
        m = kind_room(kind)
            ? snprintf(want, sizeof(want), "%s/+/%s", prefix, leaves[kind])
            : snprintf(want, sizeof(want), "%s/%s", prefix, leaves[kind]);
        CHECK(n == m && strcmp(buf, want) == 0);
        CHECK(topic_parse(prefix, buf, (size_t)n, room) ==
              (kind_room(kind) ? TOPIC_ERR_ROOM : kind));
        CHECK(topic_reply_allowed(prefix, buf, (size_t)n) == 0);
        if (kind_room(kind)) check_build(size, prefix, "+", leaves[kind]);
        CHECK(topic_filter(buf, size, prefix, kind) ==
              ((size_t)n + 1 > size ? -1 : n));
    }
}

/* topic_filter_sender(): "<prefix>/+/send/+", "<prefix>/+/history",
 * "<prefix>/+/delete/+", "<prefix>/+/edit/+", "<prefix>/+/read/+",
 * "<prefix>/+/members", "<prefix>/$rooms/+", -1 for other kinds or when
 * it does not fit. */
static void check_filters_sender(size_t size, const char *prefix) {
    char buf[BUILD_MAX], want[BUILD_MAX], room[NAME_MAX_BYTES + 1];
    char user[NAME_MAX_BYTES + 1], *small = malloc(size ? size : 1);

    CHECK(small != NULL);
    for (int kind = REQ_SEND - 1; kind <= REQ_KIND_MAX + 1; kind++) {
        int n = topic_filter_sender(buf, sizeof(buf), prefix, kind), m;

        if (!kind_known(kind)) {
            CHECK(n == -1);
            continue;
        }
        m = request_topic(want, sizeof(want), prefix, "+", kind,
                          kind_sender(kind) ? "+" : NULL);
        CHECK(n == m && strcmp(buf, want) == 0);
        CHECK(topic_parse_sender(prefix, buf, (size_t)n, room, user) < 0);
        CHECK(topic_reply_allowed(prefix, buf, (size_t)n) == 0);
        m = topic_filter_sender(small, size, prefix, kind);
        if ((size_t)n + 1 > size)
            CHECK(m == -1);
        else
            CHECK(m == n && strcmp(small, want) == 0);
    }
    free(small);
}

/* The topics of a user's rooms, which depend on the prefix alone:
 * "<prefix>/$rooms" is REQ_ROOMS with room "" and, in identity "topic",
 * malformed; "<prefix>/$rooms/<user>" the reverse (with "alice", and with
 * leaves as user names: a sender may be called "history"). Neither is a
 * reply topic. */
static void check_rooms_topics(const char *prefix) {
    static const char *const users[] = { "alice", "history", "members",
                                         "send", "$rooms" };
    char buf[2 * BUILD_MAX], room[NAME_MAX_BYTES + 1];
    char user[NAME_MAX_BYTES + 1];
    int n = request_topic(buf, sizeof(buf), prefix, "", REQ_ROOMS, NULL);

    CHECK(topic_parse(prefix, buf, (size_t)n, room) == REQ_ROOMS);
    CHECK(room[0] == '\0');
    CHECK(topic_parse_sender(prefix, buf, (size_t)n, room, user) ==
          TOPIC_ERR_LEVELS);
    CHECK(topic_reply_allowed(prefix, buf, (size_t)n) == 0);
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        n = request_topic(buf, sizeof(buf), prefix, "", REQ_ROOMS, users[i]);
        CHECK(topic_parse(prefix, buf, (size_t)n, room) < 0);
        CHECK(topic_parse_sender(prefix, buf, (size_t)n, room, user) ==
              REQ_ROOMS);
        CHECK(room[0] == '\0' && strcmp(user, users[i]) == 0);
        CHECK(topic_reply_allowed(prefix, buf, (size_t)n) == 0);
    }
}

/* The prefix chosen by the first byte into prefix[], and the topic that
 * follows it in *t, *len. Returns 0 for an input to skip: a custom prefix
 * without its NUL, too long, or one config.c would refuse. */
static int pick_prefix(const uint8_t *data, size_t size,
                       char prefix[PREFIX_MAX + 1], const char **t,
                       size_t *len) {
    const char *nul;
    size_t plen;

    *t = (const char *)data + 1;
    *len = size - 1;
    if (data[0] % 4 < 3) {
        strcpy(prefix, fixed_prefixes[data[0] % 4]);
        return 1;
    }
    nul = memchr(*t, '\0', *len);
    if (nul == NULL || (plen = (size_t)(nul - *t)) > PREFIX_MAX) return 0;
    memcpy(prefix, *t, plen);
    prefix[plen] = '\0';
    *t += plen + 1;
    *len -= plen + 1;
    return prefix_ok(prefix);
}

/* When topic[0..len) is a valid room name, use it as a room (and as a
 * sender when it is a valid user name too). */
static void check_as_room(size_t bsize, const char *prefix, const char *topic,
                          size_t len) {
    char room[NAME_MAX_BYTES + 1];

    if (!name_valid_room(topic, len)) return;
    memcpy(room, topic, len);
    room[len] = '\0';
    check_room(bsize, prefix, room);
    if (name_valid_user(room, len)) check_sender(prefix, room, room);
}

/* libFuzzer entry point: see the top of the file for the input layout. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char prefix[PREFIX_MAX + 1], *topic;
    const char *t;
    size_t len, bsize;

    if (size < 1 || !pick_prefix(data, size, prefix, &t, &len)) return 0;
    bsize = (size_t)(data[0] / 4) * 2;

    /* A heap copy of exactly len bytes, so ASan sees any read past it. */
    topic = malloc(len ? len : 1);
    CHECK(topic != NULL);
    memcpy(topic, t, len);
    check_parse(prefix, topic, len);
    check_parse_sender(prefix, topic, len);
    check_reply(prefix, topic, len);
    check_as_room(bsize, prefix, topic, len);
    check_filters(bsize, prefix);
    check_filters_sender(bsize, prefix);
    check_rooms_topics(prefix);
    free(topic);
    return 0;
}
