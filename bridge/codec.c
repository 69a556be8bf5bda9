/* codec.c -- the JSON payload contract, on top of jansson.
 *
 * Decoding turns a request payload into a struct codec_req and says why a
 * request is refused; encoding turns what the bridge publishes into compact
 * JSON with a fixed member order. jansson does the parsing and serialising
 * (and rejects invalid UTF-8 and \u0000); this file only applies the rules
 * of codec.h. Nothing here knows about MQTT or Redis. */
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "codec.h"

/* ==================== Error codes ==================== */

/* Wire code and human sentence of every codec_err, indexed by value. */
static const struct {
    const char *code;
    const char *text;
} codec_errors[CODEC_ERR_COUNT] = {
    [CODEC_OK] = { "ok", "no error" },
    [CODEC_ERR_JSON] = { "invalid_json", "payload is not valid JSON" },
    [CODEC_ERR_UTF8] = { "invalid_utf8", "payload is not valid UTF-8" },
    [CODEC_ERR_NOT_OBJECT] = { "not_object", "payload is not a JSON object" },
    [CODEC_ERR_USER] = { "invalid_user", "user is missing or not a valid user name" },
    [CODEC_ERR_TEXT] = { "invalid_text", "text is missing or not a string" },
    [CODEC_ERR_TEXT_EMPTY] = { "empty_text", "text is empty" },
    [CODEC_ERR_TEXT_LONG] = { "text_too_long", "text is too long" },
    [CODEC_ERR_CMID] = { "invalid_client_msg_id",
                         "client_msg_id must be 1 to 64 bytes of text "
                         "without control characters" },
    [CODEC_ERR_LIMIT] = { "invalid_limit", "limit must be an integer >= 1" },
    [CODEC_ERR_BEFORE] = { "invalid_before", "before must be an integer >= 1" },
    [CODEC_ERR_ID] = { "invalid_id", "id is missing or not an integer >= 1" },
    [CODEC_ERR_REPLY_TO] = { "invalid_reply_to", "reply_to must be a string" },
    [CODEC_ERR_CORRELATION] = { "invalid_correlation", "correlation must be a string" },
    [CODEC_ERR_SENDER] = { "user_mismatch",
                           "user differs from the sender named by the topic" },
    [CODEC_ERR_AFTER] = { "invalid_after", "after must be an integer >= 0" },
    [CODEC_ERR_TOPIC] = { "invalid_topic", "topic is not a valid request topic" },
    [CODEC_ERR_ROOM] = { "invalid_room", "room is not a valid room name" },
    [CODEC_ERR_NOT_FOUND] = { "not_found", "no such message" },
    [CODEC_ERR_FORBIDDEN] = { "forbidden", "only the author may delete or edit a message" },
    [CODEC_ERR_UNAVAILABLE] = { "unavailable", "the message store is unavailable" },
    [CODEC_ERR_INTERNAL] = { "internal", "internal error" },
};

/* The wire code of err; anything out of range is reported as "internal". */
const char *codec_err_code(int err) {
    if (err < 0 || err >= CODEC_ERR_COUNT) err = CODEC_ERR_INTERNAL;
    return codec_errors[err].code;
}

/* A short human sentence for err, with the same out-of-range rule. */
const char *codec_err_text(int err) {
    if (err < 0 || err >= CODEC_ERR_COUNT) err = CODEC_ERR_INTERNAL;
    return codec_errors[err].text;
}

/* ==================== Decoding helpers ==================== */

/* A malloc'd NUL-terminated copy of the JSON string v, or NULL on OOM.
 * Uses the stored length: jansson strings are length-counted. */
static char *dup_string(const json_t *v) {
    size_t len = json_string_length(v);
    char *s = malloc(len + 1);

    if (s == NULL) return NULL;
    memcpy(s, json_string_value(v), len);
    s[len] = '\0';
    return s;
}

/* Copy the optional string member 'key' of obj into *out (malloc'd).
 * Absent leaves *out NULL and is fine; a non-string gives 'bad'. */
static int get_opt_string(const json_t *obj, const char *key, int bad,
                          char **out) {
    const json_t *v = json_object_get(obj, key);

    if (v == NULL) return CODEC_OK;
    if (!json_is_string(v)) return bad;
    *out = dup_string(v);
    return *out ? CODEC_OK : CODEC_ERR_INTERNAL;
}

/* Extract the MQTT 3.1.1 reply fallback. Both members are copied even when
 * one of them is bad, so that the refusal can still be addressed and
 * correlated as well as possible; the first error is returned. */
static int get_reply_fields(const json_t *obj, struct codec_req *out) {
    int err = get_opt_string(obj, "reply_to", CODEC_ERR_REPLY_TO,
                             &out->reply_to);
    int err2 = get_opt_string(obj, "correlation", CODEC_ERR_CORRELATION,
                              &out->correlation);
    return err != CODEC_OK ? err : err2;
}

/* Validate the user member v (may be NULL) and copy it into user[]. */
static int get_user(const json_t *v, char user[NAME_MAX_BYTES + 1]) {
    size_t len;

    if (!json_is_string(v)) return CODEC_ERR_USER;
    len = json_string_length(v);
    if (!name_valid_user(json_string_value(v), len)) return CODEC_ERR_USER;
    memcpy(user, json_string_value(v), len);
    user[len] = '\0';
    return CODEC_OK;
}

/* The author of a send or delete. In identity "topic" the topic named it
 * (lim->sender) and the broker's ACL vouched for it: "user" may be left
 * out, and one naming anyone else is a forgery. Otherwise get_user(). */
static int get_author(const json_t *v, const struct codec_limits *lim,
                      char user[NAME_MAX_BYTES + 1]) {
    if (lim->sender == NULL) return get_user(v, user);
    if (v != NULL && !json_is_null(v) &&
        (!json_is_string(v) || strcmp(json_string_value(v), lim->sender) != 0 ||
         json_string_length(v) != strlen(lim->sender)))
        return CODEC_ERR_SENDER;
    size_t len = strlen(lim->sender);
    if (!name_valid_user(lim->sender, len)) return CODEC_ERR_USER;
    memcpy(user, lim->sender, len + 1);
    return CODEC_OK;
}

/* Read v (may be NULL) as a JSON integer >= 1 into *out; 'bad' otherwise.
 * Reals are refused even when integral: 5.0 is not an id. */
static int get_positive(const json_t *v, int bad, long long *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 1) return bad;
    *out = json_integer_value(v);
    return CODEC_OK;
}

/* Does the UTF-8 string s[0..len) hold a control character (C0, DEL, C1)?
 * jansson has already checked the encoding, so C1 characters are exactly
 * the byte pairs C2 80 .. C2 9F. */
static int has_control(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7F) return 1;
        if (p[i] == 0xC2 && i + 1 < len && p[i + 1] <= 0x9F) return 1;
    }
    return 0;
}

/* ==================== Decoding requests ==================== */

/* The optional client_msg_id of a send: 1..64 bytes, no control chars. */
static int get_cmid(const json_t *obj, struct codec_req *out) {
    const json_t *v = json_object_get(obj, "client_msg_id");
    size_t len;

    if (v == NULL) return CODEC_OK;
    if (!json_is_string(v)) return CODEC_ERR_CMID;
    len = json_string_length(v);
    if (len == 0 || len > CODEC_CMID_MAX_BYTES ||
        has_control(json_string_value(v), len))
        return CODEC_ERR_CMID;
    memcpy(out->client_msg_id, json_string_value(v), len);
    out->client_msg_id[len] = '\0';
    return CODEC_OK;
}

/* send: {"user", "text", "client_msg_id"?}; "user" may be implied by
 * the topic (get_author). An edit is the same with the "id" of the
 * message it changes. */
static int decode_send(const json_t *obj, const struct codec_limits *lim,
                       struct codec_req *out) {
    const json_t *text = json_object_get(obj, "text");
    int err = get_author(json_object_get(obj, "user"), lim, out->user);

    if (err == CODEC_OK && out->kind == REQ_EDIT)
        err = get_positive(json_object_get(obj, "id"), CODEC_ERR_ID, &out->id);
    if (err != CODEC_OK) return err;
    if (!json_is_string(text)) return CODEC_ERR_TEXT;
    if (json_string_length(text) == 0) return CODEC_ERR_TEXT_EMPTY;
    if (json_string_length(text) > lim->max_text_bytes)
        return CODEC_ERR_TEXT_LONG;
    err = get_cmid(obj, out);
    if (err != CODEC_OK) return err;
    out->text = dup_string(text);
    if (out->text == NULL) return CODEC_ERR_INTERNAL;
    out->text_len = json_string_length(text);
    return CODEC_OK;
}

/* The optional "limit": the default when absent, clamped to the maximum. */
static int get_limit(const json_t *obj, const struct codec_limits *lim,
                     struct codec_req *out) {
    const json_t *limit = json_object_get(obj, "limit");
    long long n = lim->history_default;

    if (limit != NULL) {
        int err = get_positive(limit, CODEC_ERR_LIMIT, &n);
        if (err != CODEC_OK) return err;
    }
    out->limit = n > lim->history_max ? lim->history_max : (int)n;
    return CODEC_OK;
}

/* history: {"limit"?, "before"?, "after"?, "user"?}. A missing limit
 * takes the default and a large one is clamped; before, after and user
 * may also be null, which is what a client echoing "next_before": null
 * sends. "after" makes it a catch-up (oldest first); 0 is from the start. */
static int decode_history(const json_t *obj, const struct codec_limits *lim,
                          struct codec_req *out) {
    const json_t *before = json_object_get(obj, "before");
    const json_t *user = json_object_get(obj, "user");
    int err = get_limit(obj, lim, out);

    if (err != CODEC_OK) return err;
    if (before != NULL && !json_is_null(before)) {
        err = get_positive(before, CODEC_ERR_BEFORE, &out->before);
        if (err != CODEC_OK) return err;
    }
    const json_t *after = json_object_get(obj, "after");
    if (after != NULL && !json_is_null(after)) {
        if (!json_is_integer(after) || json_integer_value(after) < 0) return CODEC_ERR_AFTER;
        out->after = json_integer_value(after);
    }
    if (user != NULL && !json_is_null(user))
        return get_user(user, out->user);
    return CODEC_OK;
}

/* members: {"limit"?, "after"?}: "after" is a user name (the page's
 * cursor), kept in user; null is from the first. */
static int decode_members(const json_t *obj, const struct codec_limits *lim,
                          struct codec_req *out) {
    const json_t *after = json_object_get(obj, "after");
    int err = get_limit(obj, lim, out);

    if (err != CODEC_OK || after == NULL || json_is_null(after)) return err;
    return get_user(after, out->user) == CODEC_OK ? CODEC_OK : CODEC_ERR_AFTER;
}

/* rooms: {"user", "limit"?, "before"?}: "user" as for send; "before" is
 * an activity cursor (Unix ms), null from the most recent. */
static int decode_rooms(const json_t *obj, const struct codec_limits *lim,
                        struct codec_req *out) {
    const json_t *before = json_object_get(obj, "before");
    int err = get_author(json_object_get(obj, "user"), lim, out->user);

    if (err == CODEC_OK) err = get_limit(obj, lim, out);
    if (err != CODEC_OK || before == NULL || json_is_null(before)) return err;
    return get_positive(before, CODEC_ERR_BEFORE, &out->before);
}

/* delete and read: {"user", "id"}; "user" as for send. */
static int decode_delete(const json_t *obj, const struct codec_limits *lim,
                         struct codec_req *out) {
    int err = get_author(json_object_get(obj, "user"), lim, out->user);

    if (err != CODEC_OK) return err;
    return get_positive(json_object_get(obj, "id"), CODEC_ERR_ID, &out->id);
}

/* Map a jansson load failure to a codec_err: invalid UTF-8 has its own
 * wire code so clients can tell an encoding problem from a syntax one. */
static int load_error(const json_error_t *jerr) {
    switch (json_error_code(jerr)) {
    case json_error_invalid_utf8: return CODEC_ERR_UTF8;
    case json_error_out_of_memory: return CODEC_ERR_INTERNAL;
    default: return CODEC_ERR_JSON;
    }
}

/* Parse and validate one request. JSON_DECODE_ANY lets a valid non-object
 * document through the parser so that it is reported as not_object rather
 * than invalid_json; duplicate members are refused as invalid JSON since
 * which one wins would be a guess. */
int codec_decode(int kind, const char *payload, size_t len,
                 const struct codec_limits *lim, struct codec_req *out) {
    json_error_t jerr;
    json_t *doc = NULL;
    int err;

    memset(out, 0, sizeof(*out));
    out->kind = kind;
    out->after = -1;
    /* Some of jansson's out-of-memory paths leave the error code unset. */
    memset(&jerr, 0, sizeof(jerr));
    if (lim == NULL) return CODEC_ERR_INTERNAL;
    if (payload == NULL) return CODEC_ERR_JSON;   /* an empty MQTT payload */
    doc = json_loadb(payload, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                     &jerr);
    if (doc == NULL) return load_error(&jerr);
    if (!json_is_object(doc)) { err = CODEC_ERR_NOT_OBJECT; goto cleanup; }

    err = get_reply_fields(doc, out);
    if (err != CODEC_OK) goto cleanup;
    switch (kind) {
    case REQ_SEND:
    case REQ_EDIT: err = decode_send(doc, lim, out); break;
    case REQ_HISTORY: err = decode_history(doc, lim, out); break;
    case REQ_DELETE:
    case REQ_READ: err = decode_delete(doc, lim, out); break;
    case REQ_MEMBERS: err = decode_members(doc, lim, out); break;
    case REQ_ROOMS: err = decode_rooms(doc, lim, out); break;
    default: err = CODEC_ERR_INTERNAL; break;
    }

cleanup:
    json_decref(doc);
    return err;
}

/* Free what codec_decode() allocated; safe on a zeroed struct and twice. */
void codec_req_free(struct codec_req *r) {
    if (r == NULL) return;
    free(r->text);
    free(r->reply_to);
    free(r->correlation);
    r->text = r->reply_to = r->correlation = NULL;
    r->text_len = 0;
}

/* ==================== Encoding helpers ==================== */

/* Serialise doc compactly in insertion order, drop the reference, and
 * return the text (malloc'd by jansson's default allocator, so free() it)
 * with its length. NULL doc or OOM gives NULL. */
static char *dump_and_free(json_t *doc, size_t *len) {
    char *s = NULL;

    if (doc == NULL) return NULL;
    s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (s != NULL && len != NULL) *len = strlen(s);
    return s;
}

/* Dump o as dump_and_free does, unless building it failed: then free it
 * and return NULL. */
static char *dump_unless(json_t *o, int failed, size_t *len) {
    if (!failed) return dump_and_free(o, len);
    json_decref(o);
    return NULL;
}

/* Append "correlation" to a reply when the request carried one. The
 * json_object_set_new() family consumes the value even on failure, so
 * nesting the constructor leaks nothing. Returns 0 or -1. */
static int add_correlation(json_t *obj, const char *correlation) {
    if (correlation == NULL) return 0;
    return json_object_set_new(obj, "correlation", json_string(correlation));
}

/* A stored message as a new JSON object, or NULL on OOM or when a string
 * is missing or not valid UTF-8. */
static json_t *msg_object(const struct codec_msg *m) {
    json_t *o = json_object();

    if (o == NULL) return NULL;
    if (json_object_set_new(o, "id", json_integer(m->id)) ||
        json_object_set_new(o, "room", json_string(m->room)) ||
        json_object_set_new(o, "user", json_string(m->user)) ||
        json_object_set_new(o, "text", json_string(m->text)) ||
        json_object_set_new(o, "ts", json_integer(m->ts)))
        goto fail;
    if (m->client_msg_id != NULL && m->client_msg_id[0] != '\0' &&
        json_object_set_new(o, "client_msg_id", json_string(m->client_msg_id)))
        goto fail;
    if (m->edited > 0 && json_object_set_new(o, "edited", json_integer(m->edited)))
        goto fail;
    return o;

fail:
    json_decref(o);
    return NULL;
}

/* ==================== Encoders ==================== */

/* {"id","room","user","text","ts"[,"client_msg_id"][,"edited"]} */
char *codec_encode_msg(const struct codec_msg *m, size_t *len) {
    return dump_and_free(msg_object(m), len);
}

/* {"id","room","deleted":true} */
char *codec_encode_deleted(const char *room, long long id, size_t *len) {
    json_t *o = json_object();

    if (o == NULL) return NULL;
    return dump_unless(o, json_object_set_new(o, "id", json_integer(id)) ||
                       json_object_set_new(o, "room", json_string(room)) ||
                       json_object_set_new(o, "deleted", json_true()), len);
}

/* {"ok":true,"id":N[,"correlation"]} */
char *codec_encode_ok(long long id, const char *correlation, size_t *len) {
    json_t *o = json_object();

    if (o == NULL) return NULL;
    return dump_unless(o, json_object_set_new(o, "ok", json_true()) ||
                       json_object_set_new(o, "id", json_integer(id)) ||
                       add_correlation(o, correlation), len);
}

/* {"ok":true,"id":N,"edited":MS[,"correlation"]} */
char *codec_encode_edited(long long id, long long edited, const char *correlation,
                          size_t *len) {
    json_t *o = json_object();

    if (o == NULL) return NULL;
    return dump_unless(o, json_object_set_new(o, "ok", json_true()) ||
                       json_object_set_new(o, "id", json_integer(id)) ||
                       json_object_set_new(o, "edited", json_integer(edited)) ||
                       add_correlation(o, correlation), len);
}

/* {"ok":true,"read":N,"unread":N[,"correlation"]} */
char *codec_encode_read_ok(long long read, long long unread, const char *correlation,
                           size_t *len) {
    json_t *o = json_object();

    if (o == NULL) return NULL;
    return dump_unless(o, json_object_set_new(o, "ok", json_true()) ||
                       json_object_set_new(o, "read", json_integer(read)) ||
                       json_object_set_new(o, "unread", json_integer(unread)) ||
                       add_correlation(o, correlation), len);
}

/* {"room","user","read"} */
char *codec_encode_receipt(const char *room, const char *user, long long read,
                           size_t *len) {
    json_t *o = json_object();

    if (o == NULL) return NULL;
    return dump_unless(o, json_object_set_new(o, "room", json_string(room)) ||
                       json_object_set_new(o, "user", json_string(user)) ||
                       json_object_set_new(o, "read", json_integer(read)), len);
}

/* {"ok":false,"error":CODE,"message":TEXT[,"correlation"]} */
char *codec_encode_error(int err, const char *correlation, size_t *len) {
    json_t *o = json_object();

    if (o == NULL) return NULL;
    return dump_unless(o, json_object_set_new(o, "ok", json_false()) ||
                       json_object_set_new(o, "error", json_string(codec_err_code(err))) ||
                       json_object_set_new(o, "message", json_string(codec_err_text(err))) ||
                       add_correlation(o, correlation), len);
}

/* A JSON array of the n items at items (each size bytes), each made by
 * make(); NULL on failure. */
static json_t *array_of(const void *items, size_t n, size_t size,
                        json_t *(*make)(const void *)) {
    json_t *a = json_array();

    if (a == NULL) return NULL;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(a, make((const char *)items + i * size))) goto fail;
    return a;

fail:
    json_decref(a);
    return NULL;
}

static json_t *msg_item(const void *m) {
    return msg_object(m);
}

/* The messages array of a history reply, or NULL on failure. */
static json_t *msgs_array(const struct codec_msg *msgs, size_t n) {
    return array_of(msgs, n, sizeof(*msgs), msg_item);
}

/* {"room","messages":[...],<next>:N|null[,"correlation"]}: the two kinds
 * of page differ only in the cursor's name. */
static char *encode_page(const char *room, const struct codec_msg *msgs, size_t n,
                         const char *next_key, long long next,
                         const char *correlation, size_t *len) {
    json_t *o = json_object();

    if (o == NULL) return NULL;
    return dump_unless(o, json_object_set_new(o, "room", json_string(room)) ||
                       json_object_set_new(o, "messages", msgs_array(msgs, n)) ||
                       json_object_set_new(o, next_key, next > 0 ?
                                           json_integer(next) : json_null()) ||
                       add_correlation(o, correlation), len);
}

char *codec_encode_history(const char *room, const struct codec_msg *msgs,
                           size_t n, long long next_before,
                           const char *correlation, size_t *len) {
    return encode_page(room, msgs, n, "next_before", next_before, correlation, len);
}

char *codec_encode_catchup(const char *room, const struct codec_msg *msgs,
                           size_t n, long long next_after,
                           const char *correlation, size_t *len) {
    return encode_page(room, msgs, n, "next_after", next_after, correlation, len);
}

/* ==================== Members and rooms ==================== */

/* One member as a new JSON object, or NULL. */
static json_t *member_item(const void *p) {
    const struct codec_member *m = p;
    return json_pack("{s:s, s:I, s:I, s:o}", "user", m->user, "last_id", (json_int_t)m->last_id,
                     "read", (json_int_t)m->read, "last_seen",
                     m->last_seen > 0 ? json_integer(m->last_seen) : json_null());
}

/* {"room","members":[...],"next_after":U|null[,"correlation"]} */
char *codec_encode_members(const char *room, const struct codec_member *m, size_t n,
                           const char *next_after, const char *correlation, size_t *len) {
    json_t *o = json_object();

    if (o == NULL) return NULL;
    return dump_unless(o, json_object_set_new(o, "room", json_string(room)) ||
                       json_object_set_new(o, "members", array_of(m, n, sizeof(*m), member_item)) ||
                       json_object_set_new(o, "next_after", next_after ?
                                           json_string(next_after) : json_null()) ||
                       add_correlation(o, correlation), len);
}

/* One room as a new JSON object, or NULL. */
static json_t *room_item(const void *p) {
    const struct codec_room *r = p;
    json_t *last = r->last ? msg_object(r->last) : json_null();
    if (last == NULL) return NULL;
    return json_pack("{s:s, s:I, s:I, s:I, s:o}", "room", r->room,
                     "last_id", (json_int_t)r->last_id, "read", (json_int_t)r->read,
                     "unread", (json_int_t)r->unread, "last", last);
}

/* {"user","rooms":[...],"next_before":MS|null[,"correlation"]} */
char *codec_encode_rooms(const char *user, const struct codec_room *rooms, size_t n,
                         long long next_before, const char *correlation, size_t *len) {
    json_t *o = json_object();

    if (o == NULL) return NULL;
    return dump_unless(o, json_object_set_new(o, "user", json_string(user)) ||
                       json_object_set_new(o, "rooms",
                                           array_of(rooms, n, sizeof(*rooms), room_item)) ||
                       json_object_set_new(o, "next_before", next_before > 0 ?
                                           json_integer(next_before) : json_null()) ||
                       add_correlation(o, correlation), len);
}
