/* codec.h -- the JSON payload contract: decoding and validating requests,
 * encoding what the bridge publishes. Built on jansson; knows nothing of
 * MQTT or Redis.
 *
 * Requests (all JSON objects; unknown members are ignored):
 *   send     {"user": U, "text": T, "client_msg_id": C?}
 *            (identity "topic": "user" optional, must be the sender)
 *   history  {"limit": N?, "before": ID?, "after": ID?, "user": U?}
 *   delete   {"user": U, "id": ID}
 *   edit     {"user": U, "id": ID, "text": T, "client_msg_id": C?}
 *   read     {"user": U, "id": ID}
 *   members  {"limit": N?, "after": U?}          (after: a user name)
 *   rooms    {"user": U, "limit": N?, "before": MS?}
 * (identity "topic": "user" of delete, edit and read as for send)
 * Any request may carry the MQTT 3.1.1 reply fallback:
 *   "reply_to": TOPIC, "correlation": STRING
 *
 * Published documents:
 *   message  {"id","room","user","text","ts"[,"client_msg_id"][,"edited"]}
 *   deleted  {"id","room","deleted":true}
 *   receipt  {"room","user","read"}
 *   ok       {"ok":true,"id":N}, after an edit {"ok":true,"id":N,"edited":MS}
 *   read ok  {"ok":true,"read":N,"unread":N}
 *   error    {"ok":false,"error":CODE,"message":TEXT}
 *   history  {"room","messages":[message...],"next_before":N|null}
 *   catch-up {"room","messages":[message...],"next_after":N|null}
 *   members  {"room","members":[{"user","last_id","read","last_seen"}...],
 *             "next_after":U|null}
 *   rooms    {"user","rooms":[{"room","last_id","read","unread","last":
 *             message|null}...],"next_before":MS|null}
 * Replies echo "correlation" when the request carried it in JSON. */
#ifndef CB_CODEC_H
#define CB_CODEC_H

#include <stddef.h>
#include "names.h"
#include "request.h"

#define CODEC_CMID_MAX_BYTES 64

/* Why a request was refused. codec_err_code() gives the wire code. */
enum codec_err {
    CODEC_OK = 0,
    CODEC_ERR_JSON,          /* "invalid_json": not JSON at all */
    CODEC_ERR_UTF8,          /* "invalid_utf8": JSON with invalid UTF-8 */
    CODEC_ERR_NOT_OBJECT,    /* "not_object" */
    CODEC_ERR_USER,          /* "invalid_user": missing, not a string, bad name */
    CODEC_ERR_TEXT,          /* "invalid_text": missing or not a string */
    CODEC_ERR_TEXT_EMPTY,    /* "empty_text" */
    CODEC_ERR_TEXT_LONG,     /* "text_too_long": over limits.max_text_bytes */
    CODEC_ERR_CMID,          /* "invalid_client_msg_id": not a string, empty, >64 B */
    CODEC_ERR_LIMIT,         /* "invalid_limit": not an integer >= 1 */
    CODEC_ERR_BEFORE,        /* "invalid_before": not an integer >= 1 */
    CODEC_ERR_ID,            /* "invalid_id": missing, not an integer >= 1 */
    CODEC_ERR_REPLY_TO,      /* "invalid_reply_to": not a string */
    CODEC_ERR_CORRELATION,   /* "invalid_correlation": not a string */
    CODEC_ERR_SENDER,        /* "user_mismatch": identity "topic", and the
                                payload's user is not the topic's sender */
    CODEC_ERR_AFTER,         /* "invalid_after": not an integer >= 0 */
    /* Codes the codec never returns itself, for the bridge's own refusals: */
    CODEC_ERR_TOPIC,         /* "invalid_topic": extra levels, unknown kind */
    CODEC_ERR_ROOM,          /* "invalid_room" */
    CODEC_ERR_NOT_FOUND,     /* "not_found": no such message */
    CODEC_ERR_FORBIDDEN,     /* "forbidden": not the author */
    CODEC_ERR_UNAVAILABLE,   /* "unavailable": the store could not be reached */
    CODEC_ERR_INTERNAL,      /* "internal": also the codec's out of memory */
    CODEC_ERR_COUNT
};

const char *codec_err_code(int err);    /* "invalid_json", ... */
const char *codec_err_text(int err);    /* a short human sentence */

struct codec_limits {
    size_t max_text_bytes;   /* longest accepted text, in bytes */
    int history_default;     /* limit when the request gives none */
    int history_max;         /* larger limits are clamped to this */
    const char *sender;      /* identity "topic": the sender the topic
                                named, NULL otherwise. A send or delete
                                may then leave "user" out; one that names
                                anyone else is CODEC_ERR_SENDER */
};

/* A decoded request. Every pointer is owned by the struct and freed by
 * codec_req_free(); strings are NUL-terminated (JSON text cannot hold NUL:
 * the decoder rejects \u0000). */
struct codec_req {
    int kind;                                /* req_kind (request.h) */
    char user[NAME_MAX_BYTES + 1];           /* send, delete; history filter, "" = all */
    char client_msg_id[CODEC_CMID_MAX_BYTES + 1]; /* send, edit; "" = absent */
    char *text;                              /* send, edit */
    size_t text_len;
    long long id;                            /* delete, edit, read */
    long long before;                        /* history; 0 = from the newest */
    long long after;                         /* history; -1 = absent */
    int limit;                               /* history; default applied, clamped */
    char *reply_to;                          /* JSON "reply_to", NULL if absent */
    char *correlation;                       /* JSON "correlation", NULL if absent */
};

/* Decode payload[0..len) as a request of 'kind' into *out (zeroed first).
 * Returns CODEC_OK or a codec_err. reply_to and correlation are extracted
 * before anything else is validated, so a refused request can still be
 * answered; call codec_req_free() whatever the result. */
int codec_decode(int kind, const char *payload, size_t len,
                 const struct codec_limits *lim, struct codec_req *out);
void codec_req_free(struct codec_req *r);

/* A stored message, as published and as returned by history. */
struct codec_msg {
    long long id;
    const char *room;
    const char *user;
    const char *text;
    long long ts;                 /* Unix milliseconds */
    const char *client_msg_id;    /* NULL or "" when absent */
    long long edited;             /* last edit, Unix ms; 0 = never */
};

/* Encoders return a malloc'd NUL-terminated compact JSON document and its
 * length in *len, or NULL when out of memory. 'correlation' may be NULL. */
char *codec_encode_msg(const struct codec_msg *m, size_t *len);
char *codec_encode_deleted(const char *room, long long id, size_t *len);
char *codec_encode_ok(long long id, const char *correlation, size_t *len);
/* {"ok":true,"id":N,"edited":MS} */
char *codec_encode_edited(long long id, long long edited, const char *correlation,
                          size_t *len);
/* {"ok":true,"read":N,"unread":N} */
char *codec_encode_read_ok(long long read, long long unread, const char *correlation,
                           size_t *len);
/* {"room","user","read"}: a read marker moved, for the room. */
char *codec_encode_receipt(const char *room, const char *user, long long read,
                           size_t *len);
char *codec_encode_error(int err, const char *correlation, size_t *len);
/* msgs[0..n) oldest first; next_before 0 encodes as null. */
char *codec_encode_history(const char *room, const struct codec_msg *msgs,
                           size_t n, long long next_before,
                           const char *correlation, size_t *len);
/* A catch-up page: msgs[0..n) oldest first; next_after 0 encodes as null
 * (the client is caught up). */
char *codec_encode_catchup(const char *room, const struct codec_msg *msgs,
                           size_t n, long long next_after,
                           const char *correlation, size_t *len);

/* One member of a room; last_seen 0 encodes as null. */
struct codec_member {
    const char *user;
    long long last_id, read, last_seen;
};
char *codec_encode_members(const char *room, const struct codec_member *m, size_t n,
                           const char *next_after, const char *correlation, size_t *len);

/* One of a user's rooms; last NULL encodes as null (no message). */
struct codec_room {
    const char *room;
    long long last_id, read, unread;
    const struct codec_msg *last;
};
/* next_before 0 encodes as null. */
char *codec_encode_rooms(const char *user, const struct codec_room *rooms, size_t n,
                         long long next_before, const char *correlation, size_t *len);

#endif
