/* topic.h -- topic routing: which request a topic carries, and where
 * the bridge publishes.
 *
 *   <prefix>/<room>/send      chat message, client -> bridge
 *   <prefix>/<room>/history   history request
 *   <prefix>/<room>/delete    delete request
 *   <prefix>/<room>/edit      edit request
 *   <prefix>/<room>/read      read marker
 *   <prefix>/<room>/members   the room's members
 *   <prefix>/$rooms           a user's rooms (no room level: the room is "")
 *   <prefix>/<room>/msgs      stored messages, edits, deletes and read
 *                             receipts, bridge -> clients
 *
 * The prefix may have several levels ("acme/chat"); <room> is exactly one
 * level and must be a valid room name (names.h; never starting with '$').
 * "<prefix>/<room>/$rooms" is TOPIC_ERR_LEVELS. Pure functions, no I/O. */
#ifndef CB_TOPIC_H
#define CB_TOPIC_H

#include <stddef.h>
#include "names.h"
#include "request.h"

enum topic_error {
    TOPIC_ERR_FOREIGN = -1,  /* not under prefix, or unknown last level */
    TOPIC_ERR_LEVELS = -2,   /* extra or missing levels */
    TOPIC_ERR_ROOM = -3,     /* the room level is not a valid room name */
    TOPIC_ERR_USER = -4      /* the sender level is not a valid user name */
};

/* Parse topic[0..len). On success returns a req_kind (request.h) and copies the room
 * (NUL-terminated) into room[NAME_MAX_BYTES + 1]; on failure returns a
 * topic_error and room is undefined. */
int topic_parse(const char *prefix, const char *topic, size_t len,
                char room[NAME_MAX_BYTES + 1]);

/* The same for identity "topic" (config.h), where the broker's ACL ties
 * the last level to the client's account:
 *
 *   <prefix>/<room>/send/<user>     chat message sent by <user>
 *   <prefix>/<room>/delete/<user>   delete request by <user>
 *   <prefix>/<room>/edit/<user>     edit request by <user>
 *   <prefix>/<room>/read/<user>     read marker of <user>
 *   <prefix>/$rooms/<user>          the rooms of <user> (room "")
 *   <prefix>/<room>/history         history request (no sender)
 *   <prefix>/<room>/members         members request (no sender)
 *
 * On success the sender is copied into user[] ("" for history and
 * members). A request of another kind without the sender level, or
 * history or members with one, is TOPIC_ERR_LEVELS. */
int topic_parse_sender(const char *prefix, const char *topic, size_t len,
                       char room[NAME_MAX_BYTES + 1],
                       char user[NAME_MAX_BYTES + 1]);

/* Write "<prefix>/<room>/<leaf>" into buf. Returns its length, or -1 when
 * it does not fit in size bytes (including the NUL). */
int topic_build(char *buf, size_t size, const char *prefix, const char *room,
                const char *leaf);

/* The subscription filter for a kind: "<prefix>/+/send" etc. into buf
 * ("<prefix>/$rooms" for REQ_ROOMS). Returns its length or -1 when it does
 * not fit. */
int topic_filter(char *buf, size_t size, const char *prefix, int kind);

/* The filter topic_parse_sender() expects: "<prefix>/+/send/+",
 * "<prefix>/+/history", "<prefix>/+/delete/+", "<prefix>/$rooms/+" and so
 * on. */
int topic_filter_sender(char *buf, size_t size, const char *prefix, int kind);

/* 1 when a reply may be published to 'topic': non-empty, at most 65535
 * bytes, valid UTF-8 without control characters or Unicode noncharacters
 * (mosquitto drops the connection of a client that publishes those), no
 * wildcards + #, not starting with '$',
 * and not one of the bridge's own topics (<prefix>/<any>/<request leaf>|
 * msgs, <prefix>/<any>/<leaf>/<any> for the leaves with a sender, or anything under
 * <prefix>/$ such as the status topic): those would loop back into it or
 * forge a room's stream or status, whichever identity mode is in use.
 * 0 otherwise. */
int topic_reply_allowed(const char *prefix, const char *topic, size_t len);

const char *topic_error_text(int err);

#endif
