/* request.h -- one chat request, from the topic it came on to the store.
 *
 * The MQTT side routes a topic to a kind (topic.h), the codec validates
 * the payload of that kind (codec.h), the journal keeps the request as a
 * record (record.h) and the store executes it (store.h): all of them speak
 * of the same kinds and pass the same struct, filled once by the MQTT
 * callback and decoded in place by the store worker. Pointers are
 * borrowed: from the callback's buffers, then from the journal's. */
#ifndef CB_REQUEST_H
#define CB_REQUEST_H

#include <stddef.h>

enum req_kind {
    REQ_SEND = 1,               /* <prefix>/<room>/send: store a message */
    REQ_HISTORY = 2,            /* <prefix>/<room>/history: a page back */
    REQ_DELETE = 3,             /* <prefix>/<room>/delete: delete one */
    REQ_EDIT = 4,               /* <prefix>/<room>/edit: new text for one */
    REQ_READ = 5,               /* <prefix>/<room>/read: a read marker */
    REQ_MEMBERS = 6,            /* <prefix>/<room>/members: who is in it */
    REQ_ROOMS = 7               /* <prefix>/$rooms: a user's rooms (room "") */
};
#define REQ_KIND_MAX REQ_ROOMS

struct request {
    int kind;                   /* req_kind */
    int limit;                  /* history, members, rooms: default
                                   applied, clamped */
    long long ts;               /* arrival, Unix ms */
    long long id;               /* delete, edit, read */
    long long before;           /* history: 0 = from the newest; rooms:
                                   activity (Unix ms) cursor, 0 = none */
    long long after;            /* history: catch up from here (oldest
                                   first); -1 = a page back from before */
    const char *room;
    const char *user;           /* sender; history filter ("" = all);
                                   rooms: whose; members: the cursor (the
                                   names after it, "" = from the first) */
    const char *client_msg_id;  /* send, edit: "" when none */
    const char *text;           /* send, edit; NULL otherwise */
    size_t text_len;
    const char *reply_topic;    /* NULL: no reply wanted */
    const char *corr;           /* MQTT 5 correlation data, NULL if none */
    size_t corr_len;
    const char *correlation;    /* 3.1.1 JSON "correlation", NULL if none */
};

#endif
