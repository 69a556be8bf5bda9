/* inbound.c -- Paho's callback thread: every message the broker hands
 * over is routed (topic.h), decoded and validated (codec.h), answered at
 * once when refused, and otherwise appended to the journal before the
 * callback returns (Paho sends the PUBACK then). Nothing here waits on
 * Redis; the only wait is the journal's (its bound, or a full disk). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_int.h"
#include "clock.h"
#include "topic.h"

/* Log a refused request, rate-limited: input may come as a flood. */
static void inbound_log_reject(struct bridge *b, const struct mqtt_in *in, int err) {
    const char *why = err >= 0 ? codec_err_text(err) : "reply topic refused";
    if (err >= 0 && err < CODEC_ERR_COUNT) STAT_INC(b, rejected_by[err]);
    else STAT_INC(b, reply_refused);
    STAT_INC(b, rejected);
    if (log_ratelimit_ok(&b->reject_rl))
        log_warn("rejected message on %.*s: %s",
                 (int)(in->topic_len > 128 ? 128 : in->topic_len), in->topic, why);
}

/* Copy n bytes into a new NUL-terminated string; NULL when out of memory. */
static char *inbound_dup(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d == NULL) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Take the reply address: the MQTT 5 Response Topic and Correlation Data
 * when present, else the JSON "reply_to" of the 3.1.1 fallback. *topic is
 * malloc'd. Returns 0, or -1 when the topic is not one the bridge may
 * publish to (the request is then dropped without an answer). */
static int inbound_reply_address(struct bridge *b, const struct mqtt_in *in,
                                const struct codec_req *req, struct request *r,
                                char **topic) {
    const char *prefix = b->cfg->topic_prefix;
    *topic = NULL;
    if (in->response_topic) {
        if (!topic_reply_allowed(prefix, in->response_topic, in->response_topic_len))
            return -1;
        *topic = inbound_dup(in->response_topic, in->response_topic_len);
        r->corr = in->correlation;
        r->corr_len = in->correlation_len;
    } else if (req->reply_to) {
        if (!topic_reply_allowed(prefix, req->reply_to, strlen(req->reply_to)))
            return -1;
        *topic = strdup(req->reply_to);
    }
    r->reply_topic = *topic;
    r->correlation = req->correlation;
    return 0;
}

/* Route and decode one message into req and r. Returns CODEC_OK or the
 * error to answer with. */
static int inbound_decode(struct bridge *b, const struct mqtt_in *in, char *room,
                         struct codec_req *req, struct request *r) {
    struct codec_limits lim = b->limits;
    char sender[NAME_MAX_BYTES + 1] = "";
    int kind = b->cfg->identity == CONFIG_IDENTITY_TOPIC
        ? topic_parse_sender(b->cfg->topic_prefix, in->topic, in->topic_len, room, sender)
        : topic_parse(b->cfg->topic_prefix, in->topic, in->topic_len, room);
    if (sender[0]) lim.sender = sender;
    int err = codec_decode(kind > 0 ? kind : REQ_SEND, in->payload,
                           in->payload_len, &lim, req);
    if (kind == TOPIC_ERR_ROOM) return CODEC_ERR_ROOM;
    if (kind == TOPIC_ERR_USER) return CODEC_ERR_USER;
    if (kind < 0) return CODEC_ERR_TOPIC;
    *r = (struct request){ .kind = kind, .limit = req->limit, .ts = clock_wall_ms(),
        .id = req->id, .before = req->before, .after = req->after, .room = room, .user = req->user,
        .client_msg_id = req->client_msg_id, .text = req->text,
        .text_len = req->text_len };
    int asks = kind == REQ_HISTORY || kind == REQ_MEMBERS || kind == REQ_ROOMS;
    if (err == CODEC_OK && asks && in->response_topic == NULL && req->reply_to == NULL)
        return CODEC_ERR_REPLY_TO;    /* an answer nobody will read */
    return err;
}

/* Append a record to the journal. Only a closed journal (shutting down)
 * makes it give up; a failing disk is retried, holding the broker back,
 * since returning would acknowledge a message that is nowhere. */
static void inbound_journal(struct bridge *b, const struct mqtt_in *in, const struct request *r) {
    if (record_encode(&b->recbuf, r) < 0) {
        inbound_log_reject(b, in, CODEC_ERR_INTERNAL);
        return;
    }
    for (;;) {
        if (journal_append(b->journal, b->recbuf.data, b->recbuf.len) > 0) {
            __atomic_store_n(&b->append_stuck, 0, __ATOMIC_RELEASE);
            return;
        }
        __atomic_store_n(&b->append_stuck, 1, __ATOMIC_RELEASE);
        if (__atomic_load_n(&b->stopping, __ATOMIC_ACQUIRE) > 1) break;
        if (log_ratelimit_ok(&b->journal_rl)) {
            char why[256];
            journal_errstr(b->journal, why, sizeof(why));
            log_error("%s; retrying", why);
        }
        if (journal_wait_space(b->journal, 1000) == CB_ERR_CLOSED) break;
    }
    STAT_INC(b, lost);
    log_error("journal closed: a message on %.*s was not kept",
              (int)(in->topic_len > 128 ? 128 : in->topic_len), in->topic);
}

/* 1 when topic is the status topic of a bridge (peer_filter's shape). */
static int inbound_is_peer_topic(const struct bridge *b, const struct mqtt_in *in) {
    size_t head = strlen(b->peer_filter) - strlen("+/status");
    return b->peer_filter[0] && in->topic_len > head + 7 &&
           memcmp(in->topic, b->peer_filter, head) == 0 &&
           memcmp(in->topic + in->topic_len - 7, "/status", 7) == 0;
}

/* 1 when the topic is a request's, whatever its payload: such a topic is
 * never taken for a status document (a room may be called "$bridge", and
 * in identity "topic" a user "status"). */
static int inbound_is_request_topic(const struct bridge *b, const struct mqtt_in *in) {
    char room[NAME_MAX_BYTES + 1], user[NAME_MAX_BYTES + 1];
    int kind = b->cfg->identity == CONFIG_IDENTITY_TOPIC
        ? topic_parse_sender(b->cfg->topic_prefix, in->topic, in->topic_len, room, user)
        : topic_parse(b->cfg->topic_prefix, in->topic, in->topic_len, room);
    return kind != TOPIC_ERR_FOREIGN;
}

/* Another bridge's status document: warn, once per bridge, when it would
 * store what we store too or shares our client id (peers.h). */
static void inbound_on_peer(struct bridge *b, const struct mqtt_in *in) {
    char who[80], why[300];
    int verdict = peers_judge(&b->peers, in->payload, in->payload_len, who, sizeof(who));
    if (verdict <= PEERS_FINE) return;
    peers_explain(verdict, who, b->cfg->shared_group, why, sizeof(why));
    log_warn("%s", why);
}

void inbound_on_message(void *arg, const struct mqtt_in *in) {
    struct bridge *b = arg;
    struct codec_req req;
    struct request r = { 0 };
    char room[NAME_MAX_BYTES + 1] = "", *reply = NULL;
    if (inbound_is_peer_topic(b, in) && !inbound_is_request_topic(b, in)) {
        inbound_on_peer(b, in);
        return;
    }
    STAT_INC(b, received);
    int err = inbound_decode(b, in, room, &req, &r);
    if (inbound_reply_address(b, in, &req, &r, &reply) < 0) {
        inbound_log_reject(b, in, -1);
    } else if (err != CODEC_OK) {
        inbound_log_reject(b, in, err);
        bridge_reply_error(b, &r, err, NULL);
    } else {
        inbound_journal(b, in, &r);
    }
    free(reply);
    codec_req_free(&req);
}

