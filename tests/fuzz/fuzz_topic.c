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
 * Invariants (a broken one calls abort()):
 *   - topic_parse() returns a topic_kind or a topic_error, nothing else;
 *     on success the room is a valid room name and building
 *     <prefix>/<room>/<leaf> gives back exactly the topic;
 *   - topic_parse_sender() likewise; on success the topic is exactly
 *     <prefix>/<room>/history (sender "") or <prefix>/<room>/send|delete|
 *     edit|read/<user> with a valid user name: every kind but history
 *     takes a sender level; a plain send, delete, edit or read topic is
 *     TOPIC_ERR_LEVELS and a history topic parses as topic_parse() says;
 *   - topic_reply_allowed() returns 0 or 1 and agrees with a model of the
 *     rules of topic.h written here from the header alone (UTF-8 with no
 *     control characters, noncharacters, + or #, not starting with '$',
 *     not <prefix>/<any level>/send|history|delete|edit|read|msgs, not
 *     <prefix>/<any>/send|delete|edit|read/<any>, nothing under
 *     <prefix>/$); in particular a topic either parser accepts is never a
 *     reply topic;
 *   - for a valid room, every request topic built from it parses back to
 *     its kind and room, and neither it nor the msgs topic is a reply
 *     topic; with a valid user name too, so do the identity "topic" forms;
 *   - topic_build() returns the length, and the whole topic is in the
 *     buffer, or -1 exactly when it does not fit (NUL included);
 *   - topic_filter() gives "<prefix>/+/<leaf>" for the five kinds, -1 for
 *     any outside request.h's, and a filter is neither a request nor a
 *     reply topic; topic_filter_sender() the same with "/+" after every
 *     leaf but history.
 *
 * The model knows the kinds send, history, delete, edit and read (leaves[]
 * below). When request.h has more (REQ_KIND_MAX past REQ_READ), their
 * topics would make the model and the router disagree; until the model
 * learns them, the target says so at start, skips every input with a
 * level equal to one of their leaves (taken from topic_filter()) and
 * leaves their kinds out of the filter checks. Everything else is checked
 * as above. */
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
#define KIND_LAST REQ_READ      /* the last kind modelled here */
static const char *const leaves[KIND_LAST + 1] = {
    [REQ_SEND] = "send", [REQ_HISTORY] = "history",
    [REQ_DELETE] = "delete", [REQ_EDIT] = "edit", [REQ_READ] = "read",
};
#define LEAF_MSGS "msgs"

/* The leaves of request.h's kinds after KIND_LAST, which the model does
 * not know (LLVMFuzzerInitialize), and how many there are. */
#define UNKNOWN_MAX 8
static char unknown_leaves[UNKNOWN_MAX][64];
static int nunknown;

/* ==================== The model of topic.h ==================== */

/* Is kind one of request.h's that this model knows? */
static int kind_known(int kind) {
    return kind >= REQ_SEND && kind <= KIND_LAST;
}

/* Does a request of kind name its sender in identity "topic"? All but
 * history, which anyone may read (topic.h). */
static int kind_sender(int kind) {
    return kind_known(kind) && kind != REQ_HISTORY;
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

/* Is t[0..len) one of the bridge's own topics under prefix: anything
 * under "<prefix>/$", "<prefix>/<level>/<leaf>" for the five request
 * leaves and msgs, or "<prefix>/<level>/send|delete|edit|read/<level>"
 * (levels may be empty)? */
static int own_topic(const char *prefix, const char *t, size_t len) {
    size_t plen = strlen(prefix), lvlen[3];
    const char *lv[3];
    int n;

    if (len <= plen || memcmp(t, prefix, plen) != 0 || t[plen] != '/')
        return 0;
    t += plen + 1;
    len -= plen + 1;
    if (len > 0 && t[0] == '$') return 1;
    n = split_levels(t, len, 3, lv, lvlen);
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

/* The result of topic_parse(); on success the room is valid and the topic
 * is exactly <prefix>/<room>/<leaf>, and no reply may go there. */
static void check_parse(const char *prefix, const char *t, size_t len) {
    char room[NAME_MAX_BYTES + 1], built[BUILD_MAX];
    int kind = topic_parse(prefix, t, len, room);

    if (kind < 0) {
        CHECK(kind == TOPIC_ERR_FOREIGN || kind == TOPIC_ERR_LEVELS ||
              kind == TOPIC_ERR_ROOM);
        CHECK(topic_error_text(kind) != NULL);
        return;
    }
    CHECK(kind_known(kind));
    CHECK(strlen(room) <= NAME_MAX_BYTES);
    CHECK(name_valid_room(room, strlen(room)));
    CHECK(topic_build(built, sizeof(built), prefix, room, leaves[kind]) ==
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
    if (plain == REQ_HISTORY)
        CHECK(kind == REQ_HISTORY && strcmp(room, room2) == 0);
    if (kind < 0) {
        CHECK(kind == TOPIC_ERR_FOREIGN || kind == TOPIC_ERR_LEVELS ||
              kind == TOPIC_ERR_ROOM || kind == TOPIC_ERR_USER);
        CHECK(topic_error_text(kind) != NULL);
        return;
    }
    CHECK(kind_known(kind));
    CHECK(strlen(room) <= NAME_MAX_BYTES && strlen(user) <= NAME_MAX_BYTES);
    CHECK(name_valid_room(room, strlen(room)));
    if (!kind_sender(kind)) {
        CHECK(kind == REQ_HISTORY && user[0] == '\0' && plain == REQ_HISTORY);
    } else {
        char built[2 * BUILD_MAX];

        CHECK(name_valid_user(user, strlen(user)));
        CHECK(snprintf(built, sizeof(built), "%s/%s/%s/%s", prefix, room,
                       leaves[kind], user) == (int)len);
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

/* A valid room: each request topic built from it parses back, and none of
 * them nor its msgs topic is a reply topic. */
static void check_room(size_t size, const char *prefix, const char *room) {
    char buf[BUILD_MAX], back[NAME_MAX_BYTES + 1];
    int n;

    for (int kind = REQ_SEND; kind <= KIND_LAST; kind++) {
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
}

/* A valid room that is also a valid user name, as both: the identity
 * "topic" forms <prefix>/<room>/send|delete|edit|read/<user> parse back to
 * the kind, room and sender, and are not reply topics; with the sender
 * level after history, the topic is malformed. */
static void check_sender(const char *prefix, const char *room,
                         const char *user) {
    char buf[2 * BUILD_MAX], back[NAME_MAX_BYTES + 1];
    char sender[NAME_MAX_BYTES + 1];

    for (int kind = REQ_SEND; kind <= KIND_LAST; kind++) {
        int n = snprintf(buf, sizeof(buf), "%s/%s/%s/%s", prefix, room,
                         leaves[kind], user);

        CHECK(n > 0 && (size_t)n < sizeof(buf));
        if (!kind_sender(kind)) {
            CHECK(topic_parse_sender(prefix, buf, (size_t)n, back, sender) ==
                  TOPIC_ERR_LEVELS);
            continue;
        }
        CHECK(topic_reply_allowed(prefix, buf, (size_t)n) == 0);
        CHECK(topic_parse_sender(prefix, buf, (size_t)n, back, sender) ==
              kind);
        CHECK(strcmp(back, room) == 0 && strcmp(sender, user) == 0);
    }
}

/* topic_filter() for kinds around the valid ones (those the model does
 * not know left out). */
static void check_filters(size_t size, const char *prefix) {
    char buf[BUILD_MAX], room[NAME_MAX_BYTES + 1];

    for (int kind = REQ_SEND - 1; kind <= REQ_KIND_MAX + 1; kind++) {
        int n = topic_filter(buf, sizeof(buf), prefix, kind);

        if (kind > KIND_LAST && kind <= REQ_KIND_MAX) continue;
        if (!kind_known(kind)) {
            CHECK(n == -1);
            continue;
        }
        CHECK(n > 0 && (size_t)n == strlen(buf));
        CHECK(topic_parse(prefix, buf, (size_t)n, room) == TOPIC_ERR_ROOM);
        CHECK(topic_reply_allowed(prefix, buf, (size_t)n) == 0);
        check_build(size, prefix, "+", leaves[kind]);
        CHECK(topic_filter(buf, size, prefix, kind) ==
              (strlen(prefix) + strlen(leaves[kind]) + 4 > size ? -1 : n));
    }
}

/* topic_filter_sender(): "<prefix>/+/send/+", "<prefix>/+/history",
 * "<prefix>/+/delete/+", "<prefix>/+/edit/+", "<prefix>/+/read/+", -1 for
 * other kinds or when it does not fit. */
static void check_filters_sender(size_t size, const char *prefix) {
    char buf[BUILD_MAX], want[BUILD_MAX], room[NAME_MAX_BYTES + 1];
    char user[NAME_MAX_BYTES + 1], *small = malloc(size ? size : 1);

    CHECK(small != NULL);
    for (int kind = REQ_SEND - 1; kind <= REQ_KIND_MAX + 1; kind++) {
        int n = topic_filter_sender(buf, sizeof(buf), prefix, kind), m;

        if (kind > KIND_LAST && kind <= REQ_KIND_MAX) continue;
        if (!kind_known(kind)) {
            CHECK(n == -1);
            continue;
        }
        m = snprintf(want, sizeof(want), "%s/+/%s%s", prefix, leaves[kind],
                     kind_sender(kind) ? "/+" : "");
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

/* libFuzzer's start-up hook: the leaves of the kinds the model does not
 * know, from their subscription filters under prefix "p", said aloud (see
 * the top of the file). */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char buf[BUILD_MAX];

    (void)argc;
    (void)argv;
    for (int kind = KIND_LAST + 1; kind <= REQ_KIND_MAX; kind++) {
        int n = topic_filter(buf, sizeof(buf), "p", kind);
        const char *leaf = n > 0 ? strrchr(buf, '/') : NULL;

        CHECK(leaf != NULL && nunknown < UNKNOWN_MAX &&
              strlen(leaf + 1) < sizeof(unknown_leaves[0]));
        strcpy(unknown_leaves[nunknown++], leaf + 1);
        fprintf(stderr, "fuzz_topic: WARNING: request kind %d (leaf \"%s\") "
                "is not modelled; inputs with a level \"%s\" are skipped\n",
                kind, leaf + 1, leaf + 1);
    }
    return 0;
}

/* Does s[0..len) have a level equal to the leaf of a kind the model does
 * not know? */
static int has_unknown_leaf(const char *s, size_t len) {
    if (nunknown == 0) return 0;
    for (;;) {
        const char *slash = memchr(s, '/', len);
        size_t l = slash ? (size_t)(slash - s) : len;

        for (int i = 0; i < nunknown; i++)
            if (span_is(s, l, unknown_leaves[i])) return 1;
        if (slash == NULL) return 0;
        s += l + 1;
        len -= l + 1;
    }
}

/* libFuzzer entry point: see the top of the file for the input layout. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char prefix[PREFIX_MAX + 1], *topic;
    const char *t;
    size_t len, bsize;

    if (size < 1 || !pick_prefix(data, size, prefix, &t, &len)) return 0;
    if (has_unknown_leaf(prefix, strlen(prefix)) || has_unknown_leaf(t, len))
        return 0;
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
    free(topic);
    return 0;
}
