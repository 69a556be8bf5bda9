/* fuzz_codec.c -- libFuzzer target for the request decoder and the
 * encoders (bridge/codec.c), with the name rules they rely on (names.c).
 *
 * Input: the first byte b picks the request kind (b % 7: send, history,
 * delete, edit, read, members, rooms, in the order of request.h), one of
 * four sets of limits ((b / 7) % 4) and the sender named by the topic in
 * identity "topic" mode ((b / 28) % 4: none, "alice", "caf\u00e9", "bob");
 * the rest is the MQTT payload given to codec_decode(). The seeds in
 * corpus/codec/ start with 'p' (send), 'q' (history), 'r' (delete), 's'
 * (edit), 't' (read), 'u' (members) or 'v' (rooms) under the default
 * limits and no sender; 'w' to '}' are the same under tiny limits; the
 * bytes 0x8C to 0x92 the same under the default limits with sender
 * "alice".
 *
 * Invariants (a broken one calls abort(), which libFuzzer reports as a
 * crash and saves the input):
 *   - codec_decode() returns CODEC_OK or a code the codec itself returns
 *     for that kind, never one of the bridge's own codes (not_found,
 *     forbidden...) nor one of another kind's (invalid_after only for
 *     history and members, invalid_before only for history and rooms,
 *     invalid_limit only for history, members and rooms, invalid_id only
 *     for delete, edit and read, invalid_text only for send and edit,
 *     invalid_user never for members, whose "user" is ignored...);
 *   - it agrees with jansson on the document: unparsable gives invalid_json
 *     or invalid_utf8, a non-object gives not_object;
 *   - reply_to and correlation are extracted before anything else: when
 *     the document is an object holding them as strings they are copied
 *     byte for byte, whatever else is wrong; a non-string one refuses it;
 *   - with a sender, a send, delete, edit, read or rooms request naming
 *     another user is refused as user_mismatch, and a decoded one has the
 *     sender as its user; history and members never are;
 *   - invalid_id, invalid_limit, invalid_before and invalid_after name a
 *     member that is really bad, and a bad one is never accepted; "after"
 *     is -1 unless a history request carries an integer >= 0 (null is
 *     absent);
 *   - members and rooms exactly: the error is one of the bad members'
 *     codes (members: "limit" not an integer >= 1, "after" set to anything
 *     but a valid user name; rooms: "user" as for send, "limit", "before"
 *     set to anything but an integer >= 1; null is absent but for limit),
 *     and a request with none bad is accepted;
 *   - on success: the user is a valid user name (history: "" or valid);
 *     the text (send, edit) is 1..max_text_bytes bytes, NUL-terminated at
 *     text_len, with no NUL inside, equal to the document's; client_msg_id
 *     is "" or 1..64 bytes without control characters; limit is the
 *     requested one (or the default) clamped to 1..history_max for
 *     history, members and rooms, 0 otherwise; before >= 0, the document's
 *     for history and rooms, 0 otherwise; after is the requested one or -1;
 *     id >= 1 and the document's for delete, edit and read, 0 otherwise;
 *     members: user is "after" (a valid user name) or "" when absent;
 *   - every encoder (message with and without "edited", deleted, ok, edit
 *     ok, read ok, receipt, error, history page, catch-up page, members
 *     page, rooms page with and without a last message) returns a
 *     document of length *len that json_loadb() parses back to an object
 *     with exactly the documented members, in the documented order,
 *     holding the values given, and that re-serialises compactly to the
 *     same bytes;
 *   - codec_req_free() releases everything (LeakSanitizer) and may run
 *     twice. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "codec.h"
#include "names.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

#define TS_SAMPLE 1764000000123LL   /* a receive time, Unix ms */

/* The kinds this target decodes, in the order of request.h: the first
 * input byte's layout and the seeds' first bytes depend on it, so a kind
 * added here must update both (later kinds of request.h are not covered
 * by this target). */
static const int kinds[] = { REQ_SEND, REQ_HISTORY, REQ_DELETE, REQ_EDIT,
                             REQ_READ, REQ_MEMBERS, REQ_ROOMS };
#define NKINDS ((int)(sizeof(kinds) / sizeof(kinds[0])))

/* The limit sets the first input byte chooses from. All are valid
 * configurations (history_default <= history_max, as config.c enforces). */
static const struct codec_limits limit_sets[4] = {
    { .max_text_bytes = 4096, .history_default = 50, .history_max = 200 },
    { .max_text_bytes = 16, .history_default = 1, .history_max = 1 },
    { .max_text_bytes = 1, .history_default = 10000, .history_max = 10000 },
    { .max_text_bytes = 1048576, .history_default = 7, .history_max = 10 },
};

/* The senders a topic may name (topic_parse_sender() checks they are
 * valid user names); NULL is identity "payload". */
static const char *const senders[4] = { NULL, "alice", "caf\xc3\xa9", "bob" };

/* ==================== Round-trip helpers ==================== */

/* Parse an encoder's output: non-NULL, *len bytes long, a JSON object that
 * re-serialises compactly (in order) to exactly the same bytes. Returns the
 * object, which the caller releases with json_decref(). */
static json_t *reparse(const char *s, size_t len) {
    json_t *o;
    char *again;

    CHECK(s != NULL);
    CHECK(strlen(s) == len);
    o = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL);
    CHECK(o != NULL && json_is_object(o));
    again = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    CHECK(again != NULL && strcmp(again, s) == 0);
    free(again);
    return o;
}

/* The members of obj are exactly keys[0..n), in this order. */
static void check_keys(json_t *obj, const char *const *keys, size_t n) {
    void *it = json_object_iter(obj);

    for (size_t i = 0; i < n; i++) {
        CHECK(it != NULL);
        CHECK(strcmp(json_object_iter_key(it), keys[i]) == 0);
        it = json_object_iter_next(obj, it);
    }
    CHECK(it == NULL);
}

/* Member key of obj is the string s[0..len). */
static void check_str(const json_t *obj, const char *key, const char *s,
                      size_t len) {
    const json_t *v = json_object_get(obj, key);

    CHECK(json_is_string(v));
    CHECK(json_string_length(v) == len);
    CHECK(memcmp(json_string_value(v), s, len) == 0);
}

/* Member key of obj is the integer n. */
static void check_int(const json_t *obj, const char *key, long long n) {
    const json_t *v = json_object_get(obj, key);

    CHECK(json_is_integer(v) && json_integer_value(v) == n);
}

/* A reply carries "correlation" as its last member exactly when the
 * request had one; returns the number of members expected besides it. */
static size_t check_correlation(const json_t *obj, const char *correlation) {
    if (correlation == NULL) {
        CHECK(json_object_get(obj, "correlation") == NULL);
        return 0;
    }
    check_str(obj, "correlation", correlation, strlen(correlation));
    return 1;
}

/* ==================== Encoders ==================== */

/* One stored message object as encode_msg and the pages write it:
 * "client_msg_id" when it is not empty, "edited" when it is > 0. */
static void check_msg_object(json_t *o, const struct codec_msg *m) {
    const char *keys[7] = { "id", "room", "user", "text", "ts" };
    size_t n = 5;
    int has_cmid = m->client_msg_id != NULL && m->client_msg_id[0] != '\0';

    if (has_cmid) keys[n++] = "client_msg_id";
    if (m->edited > 0) keys[n++] = "edited";
    check_keys(o, keys, n);
    check_int(o, "id", m->id);
    check_str(o, "room", m->room, strlen(m->room));
    check_str(o, "user", m->user, strlen(m->user));
    check_str(o, "text", m->text, strlen(m->text));
    check_int(o, "ts", m->ts);
    if (has_cmid)
        check_str(o, "client_msg_id", m->client_msg_id,
                  strlen(m->client_msg_id));
    if (m->edited > 0) check_int(o, "edited", m->edited);
}

/* codec_encode_msg() round-trips. */
static void fuzz_encode_msg(const struct codec_msg *m) {
    size_t len = 0;
    char *s = codec_encode_msg(m, &len);
    json_t *o = reparse(s, len);

    check_msg_object(o, m);
    json_decref(o);
    free(s);
}

/* codec_encode_deleted() round-trips. */
static void fuzz_encode_deleted(const char *room, long long id) {
    static const char *const keys[] = { "id", "room", "deleted" };
    size_t len = 0;
    char *s = codec_encode_deleted(room, id, &len);
    json_t *o = reparse(s, len);

    check_keys(o, keys, 3);
    check_int(o, "id", id);
    check_str(o, "room", room, strlen(room));
    CHECK(json_is_true(json_object_get(o, "deleted")));
    json_decref(o);
    free(s);
}

/* codec_encode_ok() round-trips, correlation echoed. */
static void fuzz_encode_ok(long long id, const char *correlation) {
    static const char *const keys[] = { "ok", "id", "correlation" };
    size_t len = 0;
    char *s = codec_encode_ok(id, correlation, &len);
    json_t *o = reparse(s, len);

    check_keys(o, keys, 2 + check_correlation(o, correlation));
    CHECK(json_is_true(json_object_get(o, "ok")));
    check_int(o, "id", id);
    json_decref(o);
    free(s);
}

/* codec_encode_edited() round-trips: the reply to an edit. */
static void fuzz_encode_edited(long long id, long long edited,
                               const char *correlation) {
    static const char *const keys[] = { "ok", "id", "edited", "correlation" };
    size_t len = 0;
    char *s = codec_encode_edited(id, edited, correlation, &len);
    json_t *o = reparse(s, len);

    check_keys(o, keys, 3 + check_correlation(o, correlation));
    CHECK(json_is_true(json_object_get(o, "ok")));
    check_int(o, "id", id);
    check_int(o, "edited", edited);
    json_decref(o);
    free(s);
}

/* codec_encode_read_ok() round-trips: the reply to a read marker. */
static void fuzz_encode_read_ok(long long read, long long unread,
                                const char *correlation) {
    static const char *const keys[] = { "ok", "read", "unread",
                                        "correlation" };
    size_t len = 0;
    char *s = codec_encode_read_ok(read, unread, correlation, &len);
    json_t *o = reparse(s, len);

    check_keys(o, keys, 3 + check_correlation(o, correlation));
    CHECK(json_is_true(json_object_get(o, "ok")));
    check_int(o, "read", read);
    check_int(o, "unread", unread);
    CHECK(json_object_get(o, "id") == NULL);
    json_decref(o);
    free(s);
}

/* codec_encode_receipt() round-trips: a receipt has "read" and no "id",
 * which is how a client tells it from a message. */
static void fuzz_encode_receipt(const char *room, const char *user,
                                long long read) {
    static const char *const keys[] = { "room", "user", "read" };
    size_t len = 0;
    char *s = codec_encode_receipt(room, user, read, &len);
    json_t *o = reparse(s, len);

    check_keys(o, keys, 3);
    check_str(o, "room", room, strlen(room));
    check_str(o, "user", user, strlen(user));
    check_int(o, "read", read);
    json_decref(o);
    free(s);
}

/* codec_encode_error() round-trips; out-of-range codes are "internal". */
static void fuzz_encode_error(int err, const char *correlation) {
    static const char *const keys[] = { "ok", "error", "message",
                                        "correlation" };
    size_t len = 0;
    char *s = codec_encode_error(err, correlation, &len);
    json_t *o = reparse(s, len);
    const char *code = codec_err_code(err);

    check_keys(o, keys, 3 + check_correlation(o, correlation));
    CHECK(json_is_false(json_object_get(o, "ok")));
    check_str(o, "error", code, strlen(code));
    check_str(o, "message", codec_err_text(err), strlen(codec_err_text(err)));
    if (err < 0 || err >= CODEC_ERR_COUNT)
        CHECK(strcmp(code, "internal") == 0);
    json_decref(o);
    free(s);
}

/* codec_encode_history() (next_key "next_before") or
 * codec_encode_catchup() ("next_after") round-trips: n messages, the
 * cursor or null when it is not > 0. */
static void fuzz_encode_page(const char *next_key, const char *room,
                             const struct codec_msg *msgs, size_t n,
                             long long next, const char *correlation) {
    const char *const keys[] = { "room", "messages", next_key,
                                 "correlation" };
    int catchup = strcmp(next_key, "next_after") == 0;
    size_t len = 0;
    char *s = catchup ?
        codec_encode_catchup(room, msgs, n, next, correlation, &len) :
        codec_encode_history(room, msgs, n, next, correlation, &len);
    json_t *o = reparse(s, len);
    json_t *a = json_object_get(o, "messages");

    check_keys(o, keys, 3 + check_correlation(o, correlation));
    check_str(o, "room", room, strlen(room));
    CHECK(json_is_array(a) && json_array_size(a) == n);
    for (size_t i = 0; i < n; i++)
        check_msg_object(json_array_get(a, i), &msgs[i]);
    if (next > 0)
        check_int(o, next_key, next);
    else
        CHECK(json_is_null(json_object_get(o, next_key)));
    json_decref(o);
    free(s);
}

/* codec_encode_members() round-trips: n members, each
 * {"user","last_id","read","last_seen"} with last_seen null when it is not
 * > 0; the cursor a string or null. */
static void fuzz_encode_members(const char *room, const struct codec_member *m,
                                size_t n, const char *next_after,
                                const char *correlation) {
    static const char *const keys[] = { "room", "members", "next_after",
                                        "correlation" };
    static const char *const mkeys[] = { "user", "last_id", "read",
                                         "last_seen" };
    size_t len = 0;
    char *s = codec_encode_members(room, m, n, next_after, correlation, &len);
    json_t *o = reparse(s, len);
    json_t *a = json_object_get(o, "members");

    check_keys(o, keys, 3 + check_correlation(o, correlation));
    check_str(o, "room", room, strlen(room));
    CHECK(json_is_array(a) && json_array_size(a) == n);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(a, i);

        check_keys(e, mkeys, 4);
        check_str(e, "user", m[i].user, strlen(m[i].user));
        check_int(e, "last_id", m[i].last_id);
        check_int(e, "read", m[i].read);
        if (m[i].last_seen > 0)
            check_int(e, "last_seen", m[i].last_seen);
        else
            CHECK(json_is_null(json_object_get(e, "last_seen")));
    }
    if (next_after != NULL)
        check_str(o, "next_after", next_after, strlen(next_after));
    else
        CHECK(json_is_null(json_object_get(o, "next_after")));
    json_decref(o);
    free(s);
}

/* codec_encode_rooms() round-trips: n rooms, each
 * {"room","last_id","read","unread","last"} with the last message as
 * encode_msg writes it, or null; the cursor null when it is not > 0. */
static void fuzz_encode_rooms(const char *user, const struct codec_room *rooms,
                              size_t n, long long next_before,
                              const char *correlation) {
    static const char *const keys[] = { "user", "rooms", "next_before",
                                        "correlation" };
    static const char *const rkeys[] = { "room", "last_id", "read", "unread",
                                         "last" };
    size_t len = 0;
    char *s = codec_encode_rooms(user, rooms, n, next_before, correlation, &len);
    json_t *o = reparse(s, len);
    json_t *a = json_object_get(o, "rooms");

    check_keys(o, keys, 3 + check_correlation(o, correlation));
    check_str(o, "user", user, strlen(user));
    CHECK(json_is_array(a) && json_array_size(a) == n);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(a, i);

        check_keys(e, rkeys, 5);
        check_str(e, "room", rooms[i].room, strlen(rooms[i].room));
        check_int(e, "last_id", rooms[i].last_id);
        check_int(e, "read", rooms[i].read);
        check_int(e, "unread", rooms[i].unread);
        if (rooms[i].last != NULL)
            check_msg_object(json_object_get(e, "last"), rooms[i].last);
        else
            CHECK(json_is_null(json_object_get(e, "last")));
    }
    if (next_before > 0)
        check_int(o, "next_before", next_before);
    else
        CHECK(json_is_null(json_object_get(o, "next_before")));
    json_decref(o);
    free(s);
}

/* ==================== Decoder ==================== */

/* Does a request of kind have an author ("user" as for send: implied by
 * the topic's sender in identity "topic")? All but history, whose "user"
 * is a filter, and members, which has none. */
static int kind_author(int kind) {
    return kind != REQ_HISTORY && kind != REQ_MEMBERS;
}

/* Is err one the codec may return itself for a request of 'kind'? The
 * document and reply-field codes for all kinds, "internal" (out of
 * memory) of the bridge's own codes, and then each kind's own members:
 * send and edit (which adds the id) as codec.h's send, delete and read
 * as delete, history its limit, before, after and user filter, members
 * its limit and after (a user name, refused as invalid_after), rooms its
 * author, limit and before. */
static int kind_error(int kind, int err) {
    switch (err) {
    case CODEC_ERR_JSON: case CODEC_ERR_UTF8: case CODEC_ERR_NOT_OBJECT:
    case CODEC_ERR_REPLY_TO: case CODEC_ERR_CORRELATION:
    case CODEC_ERR_INTERNAL:
        return 1;
    case CODEC_ERR_USER:
        return kind != REQ_MEMBERS;
    case CODEC_ERR_TEXT: case CODEC_ERR_TEXT_EMPTY: case CODEC_ERR_TEXT_LONG:
    case CODEC_ERR_CMID:
        return kind == REQ_SEND || kind == REQ_EDIT;
    case CODEC_ERR_ID:
        return kind == REQ_DELETE || kind == REQ_EDIT || kind == REQ_READ;
    case CODEC_ERR_SENDER:
        return kind_author(kind);
    case CODEC_ERR_LIMIT:
        return kind == REQ_HISTORY || kind == REQ_MEMBERS || kind == REQ_ROOMS;
    case CODEC_ERR_BEFORE:
        return kind == REQ_HISTORY || kind == REQ_ROOMS;
    case CODEC_ERR_AFTER:
        return kind == REQ_HISTORY || kind == REQ_MEMBERS;
    default:
        return 0;
    }
}

/* Is v (may be NULL: absent) not a JSON integer >= 1? Reals are, even
 * integral ones: 5.0 is not an id. */
static int not_positive(const json_t *v) {
    return !json_is_integer(v) || json_integer_value(v) < 1;
}

/* Is the optional cursor member v set (present and not null) to
 * anything but a JSON integer >= min? */
static int bad_cursor(const json_t *v, long long min) {
    return v != NULL && !json_is_null(v) &&
           (!json_is_integer(v) || json_integer_value(v) < min);
}

/* Is v (may be NULL) a JSON string holding a valid user name? */
static int user_name(const json_t *v) {
    return json_is_string(v) &&
           name_valid_user(json_string_value(v), json_string_length(v));
}

/* Is the optional "limit" v present and not a JSON integer >= 1 (null
 * included: only the cursors take null for absent)? */
static int bad_limit(const json_t *v) {
    return v != NULL && not_positive(v);
}

/* Does s[0..len) hold a control character (C0, DEL, C1)? Written out
 * from the byte patterns of UTF-8, independently of codec.c. */
static int has_control_char(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7F) return 1;
        if (p[i] == 0xC2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9F)
            return 1;
    }
    return 0;
}

/* A decoded string member (reply_to or correlation) matches the document:
 * NULL when absent, the same bytes when a string. Returns 1 when the
 * member is present but not a string (the request must then be refused). */
static int check_reply_member(const json_t *doc, const char *key,
                              const char *got) {
    const json_t *v = json_object_get(doc, key);

    if (v == NULL) {
        CHECK(got == NULL);
        return 0;
    }
    if (!json_is_string(v)) return 1;
    CHECK(got != NULL);
    CHECK(strlen(got) == json_string_length(v));
    CHECK(memcmp(got, json_string_value(v), json_string_length(v)) == 0);
    return 0;
}

/* Is the "user" member u (may be NULL) present, not null and not exactly
 * the sender? Such a request names someone else than the topic did. */
static int names_other(const json_t *u, const char *sender) {
    return u != NULL && !json_is_null(u) &&
           (!json_is_string(u) || json_string_length(u) != strlen(sender) ||
            memcmp(json_string_value(u), sender, strlen(sender)) != 0);
}

/* Identity "topic": a send, delete, edit, read or rooms request whose
 * "user" is present, not null and not exactly the sender is refused, and
 * user_mismatch means just that. Without a sender user_mismatch never
 * happens. */
static void check_author(const json_t *doc, int err,
                         const struct codec_limits *lim) {
    int other;

    if (lim->sender == NULL) {
        CHECK(err != CODEC_ERR_SENDER);
        return;
    }
    other = names_other(json_object_get(doc, "user"), lim->sender);
    if (err == CODEC_ERR_SENDER) CHECK(other);
    if (other) CHECK(err != CODEC_OK);
}

/* The requested limit (or the default) clamped to 1..history_max. */
static void check_limit(const json_t *doc, const struct codec_limits *lim,
                        const struct codec_req *r) {
    const json_t *limit = json_object_get(doc, "limit");
    long long want = limit ? json_integer_value(limit) : lim->history_default;

    CHECK(r->limit >= 1 && r->limit <= lim->history_max);
    CHECK(r->limit == (want > lim->history_max ? lim->history_max : want));
}

/* The fields of a successfully decoded request obey codec.h. */
static void check_decoded(const json_t *doc, const struct codec_limits *lim,
                          const struct codec_req *r) {
    size_t ulen = strlen(r->user), clen = strlen(r->client_msg_id);

    CHECK(clen <= CODEC_CMID_MAX_BYTES);
    CHECK(r->before >= 0);
    if (r->kind == REQ_HISTORY) {
        const json_t *before = json_object_get(doc, "before");
        const json_t *after = json_object_get(doc, "after");

        CHECK(ulen == 0 || name_valid_user(r->user, ulen));
        if (ulen) check_str(doc, "user", r->user, ulen);
        check_limit(doc, lim, r);
        CHECK(r->before == (json_is_integer(before) ?
                            json_integer_value(before) : 0));
        CHECK(r->after == (json_is_integer(after) ?
                           json_integer_value(after) : -1));
        CHECK(r->text == NULL && clen == 0 && r->id == 0);
        return;
    }
    if (r->kind == REQ_MEMBERS) {
        const json_t *after = json_object_get(doc, "after");

        check_limit(doc, lim, r);
        if (after == NULL || json_is_null(after)) {
            CHECK(ulen == 0);
        } else {
            CHECK(name_valid_user(r->user, ulen));
            check_str(doc, "after", r->user, ulen);
        }
        CHECK(r->before == 0 && r->after == -1 && r->id == 0);
        CHECK(r->text == NULL && r->text_len == 0 && clen == 0);
        return;
    }
    /* The kinds with an author. */
    CHECK(r->after == -1);
    CHECK(name_valid_user(r->user, ulen));
    if (lim->sender != NULL)
        CHECK(strcmp(r->user, lim->sender) == 0);
    else
        check_str(doc, "user", r->user, ulen);
    if (r->kind == REQ_ROOMS) {
        const json_t *before = json_object_get(doc, "before");

        check_limit(doc, lim, r);
        CHECK(r->before == (json_is_integer(before) ?
                            json_integer_value(before) : 0));
        CHECK(r->id == 0 && r->text == NULL && r->text_len == 0 && clen == 0);
        return;
    }
    CHECK(r->before == 0 && r->limit == 0);
    if (r->kind == REQ_DELETE || r->kind == REQ_READ) {
        CHECK(r->id >= 1);
        check_int(doc, "id", r->id);
        CHECK(r->text == NULL && r->text_len == 0 && clen == 0);
        return;
    }
    if (r->kind == REQ_EDIT) {
        CHECK(r->id >= 1);
        check_int(doc, "id", r->id);
    } else {
        CHECK(r->kind == REQ_SEND && r->id == 0);
    }
    CHECK(r->text != NULL);
    CHECK(r->text_len >= 1 && r->text_len <= lim->max_text_bytes);
    CHECK(strlen(r->text) == r->text_len);
    CHECK(name_utf8_valid(r->text, r->text_len));
    check_str(doc, "text", r->text, r->text_len);
    if (clen == 0) {
        CHECK(json_object_get(doc, "client_msg_id") == NULL);
    } else {
        CHECK(!has_control_char(r->client_msg_id, clen));
        check_str(doc, "client_msg_id", r->client_msg_id, clen);
    }
}

/* The numeric members (and the members' "after") against the error
 * codes: a code naming one means that member is bad, and a bad one is
 * never accepted. "after" is -1 unless a history request carried it as
 * an integer >= 0, whatever the outcome (the decoder may have read it
 * before refusing the user). */
static void check_numbers(const json_t *doc, int err,
                          const struct codec_req *r) {
    const json_t *id = json_object_get(doc, "id");
    const json_t *limit = json_object_get(doc, "limit");
    const json_t *before = json_object_get(doc, "before");
    const json_t *after = json_object_get(doc, "after");
    int k = r->kind;

    if (k == REQ_HISTORY || k == REQ_MEMBERS || k == REQ_ROOMS) {
        if (err == CODEC_ERR_LIMIT) CHECK(bad_limit(limit));
        if (bad_limit(limit)) CHECK(err != CODEC_OK);
    }
    if (k == REQ_HISTORY || k == REQ_ROOMS) {
        if (err == CODEC_ERR_BEFORE) CHECK(bad_cursor(before, 1));
        if (bad_cursor(before, 1)) CHECK(err != CODEC_OK);
    }
    if (k == REQ_HISTORY) {
        if (err == CODEC_ERR_AFTER) CHECK(bad_cursor(after, 0));
        if (bad_cursor(after, 0)) CHECK(err != CODEC_OK);
        CHECK(r->after == -1 ||
              (json_is_integer(after) && r->after >= 0 &&
               r->after == json_integer_value(after)));
        return;
    }
    CHECK(r->after == -1);
    if (k == REQ_MEMBERS) {
        int bad = after != NULL && !json_is_null(after) && !user_name(after);

        if (err == CODEC_ERR_AFTER) CHECK(bad);
        if (bad) CHECK(err != CODEC_OK);
    }
    if (k != REQ_DELETE && k != REQ_EDIT && k != REQ_READ) return;
    if (err == CODEC_ERR_ID) CHECK(not_positive(id));
    if (not_positive(id)) CHECK(err != CODEC_OK);
}

/* members and rooms, exactly, for an object with good reply fields: the
 * codes of the bad members (members: limit, after; rooms: the author,
 * limit, before), in no particular order; the request is refused with one
 * of them, or accepted when there is none. */
static void check_listing(const json_t *doc, int err,
                          const struct codec_limits *lim, int kind) {
    const json_t *after = json_object_get(doc, "after");
    const json_t *user = json_object_get(doc, "user");
    int bad[3], n = 0, found = 0;

    if (bad_limit(json_object_get(doc, "limit"))) bad[n++] = CODEC_ERR_LIMIT;
    if (kind == REQ_MEMBERS) {
        if (after != NULL && !json_is_null(after) && !user_name(after))
            bad[n++] = CODEC_ERR_AFTER;
    } else {
        if (lim->sender == NULL && !user_name(user))
            bad[n++] = CODEC_ERR_USER;
        if (lim->sender != NULL && names_other(user, lim->sender))
            bad[n++] = CODEC_ERR_SENDER;
        if (bad_cursor(json_object_get(doc, "before"), 1))
            bad[n++] = CODEC_ERR_BEFORE;
    }
    for (int i = 0; i < n; i++) found |= err == bad[i];
    CHECK(n == 0 ? err == CODEC_OK : found);
}

/* Decode again with jansson alone and check that codec_decode() agrees on
 * the document and on the reply fields; then the request fields. */
static void check_against_jansson(const uint8_t *p, size_t len, int err,
                                  const struct codec_limits *lim,
                                  const struct codec_req *r) {
    json_t *doc = json_loadb((const char *)p, len,
                             JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    int bad_reply;

    if (doc == NULL) {
        CHECK(err == CODEC_ERR_JSON || err == CODEC_ERR_UTF8 ||
              err == CODEC_ERR_INTERNAL);
        return;
    }
    if (!json_is_object(doc)) {
        CHECK(err == CODEC_ERR_NOT_OBJECT);
        json_decref(doc);
        return;
    }
    bad_reply = check_reply_member(doc, "reply_to", r->reply_to);
    bad_reply |= check_reply_member(doc, "correlation", r->correlation);
    if (bad_reply)
        CHECK(err == CODEC_ERR_REPLY_TO || err == CODEC_ERR_CORRELATION);
    else
        CHECK(err != CODEC_ERR_REPLY_TO && err != CODEC_ERR_CORRELATION);
    if (!bad_reply && kind_author(r->kind))
        check_author(doc, err, lim);
    if (!bad_reply && (r->kind == REQ_MEMBERS || r->kind == REQ_ROOMS))
        check_listing(doc, err, lim, r->kind);
    check_numbers(doc, err, r);
    if (err == CODEC_OK) check_decoded(doc, lim, r);
    json_decref(doc);
}
/* A members page as the bridge would answer a members request: n members
 * from the cursor on (the decoded "after" first when there is one),
 * last_seen around 0 (null or not), the cursor null or the last name. */
static void exercise_members(const char *room, const struct codec_req *r,
                             size_t n) {
    static const char *const names[3] = { "alice", "bob", "caf\xc3\xa9" };
    struct codec_member m[3];

    for (size_t i = 0; i < n && i < 3; i++)
        m[i] = (struct codec_member){
            .user = i == 0 && r->user[0] ? r->user : names[i],
            .last_id = (long long)r->limit * 1000 + (long long)i,
            .read = (long long)i * 3,
            .last_seen = i == 2 ? TS_SAMPLE : (long long)i - 1 };
    fuzz_encode_members(room, m, n, NULL, r->correlation);
    fuzz_encode_members(room, m, n, n ? m[n - 1].user : "bob", r->correlation);
}

/* A rooms page as the bridge would answer a rooms request for r->user:
 * n rooms, the second without a last message, the cursor the request's
 * "before" (0: null) and one less. */
static void exercise_rooms(const struct codec_req *r,
                           const struct codec_msg *msgs, size_t n) {
    static const char *const names[3] = { "lobby", "x$", "\xc3\xbc-raum" };
    struct codec_room rooms[3];

    for (size_t i = 0; i < n && i < 3; i++)
        rooms[i] = (struct codec_room){
            .room = names[i], .last_id = msgs[i].id, .read = (long long)i,
            .unread = msgs[i].id - (long long)i,
            .last = i == 1 ? NULL : &msgs[i] };
    fuzz_encode_rooms(r->user, rooms, n, r->before, r->correlation);
    fuzz_encode_rooms(r->user, rooms, n, r->before ? r->before - 1 : TS_SAMPLE,
                      r->correlation);
}

/* Exercise every encoder with what was decoded, as the bridge would:
 * the stored message (also as edited), the ok, edit ok, read ok or error
 * reply, a receipt, a history and a catch-up page, a delete, a members
 * and a rooms page. "edited" takes values around 0, where the member
 * appears or not. */
static void exercise_encoders(int err, const struct codec_req *r) {
    const char *room = r->user[0] ? r->user : "lobby";  /* a valid room too */
    struct codec_msg msgs[3], m;
    size_t n = 0;

    if (err != CODEC_OK) {
        fuzz_encode_error(err, r->correlation);
        fuzz_encode_error(CODEC_ERR_COUNT + err, r->correlation);
        return;
    }
    memset(msgs, 0, sizeof(msgs));
    for (n = 0; n < (size_t)(r->limit % 4) && n < 3; n++) {
        msgs[n].id = 1 + (long long)n;
        msgs[n].room = room;
        msgs[n].user = r->user[0] ? r->user : "alice";
        msgs[n].text = r->text ? r->text : "hello";
        msgs[n].ts = TS_SAMPLE + (long long)n;
        msgs[n].client_msg_id = n == 1 ? "c-1" : r->client_msg_id;
        msgs[n].edited = n == 2 ? TS_SAMPLE + 7 : (long long)n - 1;
    }
    m = (struct codec_msg){ .id = r->kind == REQ_SEND ? (long long)r->text_len : r->id,
                            .room = room, .user = r->user,
                            .text = r->text ? r->text : "hello", .ts = TS_SAMPLE,
                            .client_msg_id = r->client_msg_id };
    switch (r->kind) {
    case REQ_SEND:
        m.edited = (long long)(r->text_len % 3) - 1;     /* -1, 0, 1 */
        fuzz_encode_msg(&m);
        fuzz_encode_ok(m.id, r->correlation);
        break;
    case REQ_HISTORY:
        fuzz_encode_page("next_before", room, msgs, n, r->before, r->correlation);
        fuzz_encode_page("next_after", room, msgs, n, r->after, r->correlation);
        fuzz_encode_page("next_after", room, msgs, n,
                         r->after / 2 + (long long)n, r->correlation);
        break;
    case REQ_DELETE:
        fuzz_encode_deleted(room, r->id);
        fuzz_encode_ok(r->id, r->correlation);
        break;
    case REQ_EDIT:
        /* The room hears the message as it now stands; the author gets
         * the edit time. */
        m.edited = TS_SAMPLE + (long long)r->text_len;
        m.client_msg_id = NULL;
        fuzz_encode_msg(&m);
        fuzz_encode_edited(r->id, m.edited, r->correlation);
        fuzz_encode_edited(r->id, -r->id, r->correlation);
        break;
    case REQ_READ:
        fuzz_encode_read_ok(r->id, r->id / 3, r->correlation);
        fuzz_encode_read_ok(r->id, 0, r->correlation);
        fuzz_encode_receipt(room, r->user, r->id);
        break;
    case REQ_MEMBERS:
        exercise_members(room, r, n);
        break;
    case REQ_ROOMS:
        exercise_rooms(r, msgs, n);
        break;
    default:
        abort();
    }
}

/* libFuzzer entry point: see the top of the file for the input layout. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct codec_limits lim;
    struct codec_req req;
    int kind, err;

    if (size < 1) return 0;
    kind = kinds[data[0] % NKINDS];
    lim = limit_sets[(data[0] / NKINDS) % 4];
    lim.sender = senders[(data[0] / (NKINDS * 4)) % 4];
    err = codec_decode(kind, (const char *)data + 1, size - 1, &lim, &req);
    CHECK(err == CODEC_OK || kind_error(kind, err));
    CHECK(req.kind == kind);
    CHECK(req.after == -1 || (kind == REQ_HISTORY && req.after >= 0));
    check_against_jansson(data + 1, size - 1, err, &lim, &req);
    exercise_encoders(err, &req);
    codec_req_free(&req);
    codec_req_free(&req);
    return 0;
}
