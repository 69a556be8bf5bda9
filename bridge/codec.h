/* codec.h -- the JSON payload contract: decoding and validating requests,
 * encoding what the bridge publishes. Built on jansson; knows nothing of
 * MQTT or Redis.
 *
 * Requests (all JSON objects; unknown members are ignored):
 *   send     {"user": U, "text": T, "client_msg_id": C?}
 *            (identity "topic": "user" optional, must be the sender)
 *   history  {"limit": N?, "before": ID?, "user": U?}
 *   delete   {"user": U, "id": ID}
 * Any request may carry the MQTT 3.1.1 reply fallback:
 *   "reply_to": TOPIC, "correlation": STRING
 *
 * Published documents:
 *   message  {"id","room","user","text","ts"[,"client_msg_id"]}
 *   deleted  {"id","room","deleted":true}
 *   ok       {"ok":true,"id":N}
 *   error    {"ok":false,"error":CODE,"message":TEXT}
 *   history  {"room","messages":[message...],"next_before":N|null}
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
    char client_msg_id[CODEC_CMID_MAX_BYTES + 1]; /* send; "" = absent */
    char *text;                              /* send */
    size_t text_len;
    long long id;                            /* delete */
    long long before;                        /* history; 0 = from the newest */
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
};

/* Encoders return a malloc'd NUL-terminated compact JSON document and its
 * length in *len, or NULL when out of memory. 'correlation' may be NULL. */
char *codec_encode_msg(const struct codec_msg *m, size_t *len);
char *codec_encode_deleted(const char *room, long long id, size_t *len);
char *codec_encode_ok(long long id, const char *correlation, size_t *len);
char *codec_encode_error(int err, const char *correlation, size_t *len);
/* msgs[0..n) oldest first; next_before 0 encodes as null. */
char *codec_encode_history(const char *room, const struct codec_msg *msgs,
                           size_t n, long long next_before,
                           const char *correlation, size_t *len);

#endif
