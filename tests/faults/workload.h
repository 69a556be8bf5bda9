/* workload.h -- the fault tests' traffic, and the check that nothing was
 * lost or stored twice.
 *
 * A workload is a publisher and a subscriber of its own on the broker of an
 * h_env, both MQTT 5, run by a child process so that the test is free to
 * inject faults meanwhile. (A process, not a thread: Paho's MQTTClient
 * refuses the harness's synchronous receive in a process where a client
 * with callbacks is connected.) What it records is in memory shared with
 * the test.
 *
 * The publisher sends messages 1..n at QoS 1: message k goes to
 * chat/f<k % rooms>/send as
 *     {"user":"u<k % 7>","text":"m<k>","client_msg_id":"<name>-<k>"}
 * with at most `window` unacknowledged, optionally paced. It records which
 * ones the broker acknowledged (PUBACK). Whenever its connection is lost it
 * connects again (clean start) and sends again, in order, every message not
 * acknowledged yet, with the same client_msg_id.
 *
 * The subscriber (clean start off, session expiry 1 h, Receive Maximum
 * 65535 so the broker never queues for it while it is connected) records
 * (room, id, text) of every republish on chat/+/msgs, and reconnects when
 * its connection is lost. */
#ifndef CB_FAULTS_WORKLOAD_H
#define CB_FAULTS_WORKLOAD_H

#include <stddef.h>

#include "../integration/harness.h"

struct wl_opts {
    const char *name;      /* client ids <name>-pub, <name>-sub; client_msg_id prefix */
    int n;                 /* messages, numbered 1..n */
    int rooms;             /* rooms f0..f<rooms-1> (at most 100) */
    int rate;              /* new messages per second; 0 = as fast as the window allows */
    int window;            /* most unacknowledged publishes; 0 = 16 */
    int cut_every;         /* after every cut_every-th new message, shut the
                              publisher's socket down under Paho (an abrupt
                              disconnect with messages in flight); 0 = never */
    int deadline_ms;       /* the publisher gives up after this; 0 = 120 s */
};

struct wl_stats {
    int sent;              /* distinct messages published at least once */
    int acked;             /* distinct messages the broker acknowledged */
    int resent;            /* publishes of a message sent before */
    int connects;          /* publisher connections made */
    int cuts;              /* abrupt disconnects made (cut_every) */
    int inflight_at_cuts;  /* unacknowledged messages at those cuts, summed */
    int sub_reconnects;    /* subscriber reconnections */
    int republishes;       /* republishes of our rooms seen, duplicates included */
    int foreign;           /* republishes of other rooms (ignored) */
    int bad;               /* republishes in our rooms that do not parse */
};

/* One republish the subscriber saw. */
struct wl_seen {
    int seq;               /* the k of its text "m<k>" */
    int room;              /* the k of its room "f<k>" */
    long long id;
};

/* A copy of what the workload recorded, for the check. */
struct wl_result {
    int n, rooms;
    unsigned char *acked;  /* per seq 1..n: 1 when acknowledged */
    struct wl_seen *seen;
    size_t nseen;
    int bad;
};

/* What the final check expects beyond the rule (every acknowledged message
 * stored exactly once, ids 1..max without gaps, each seen at least once). */
struct wl_expect {
    int lost_seq;          /* this message may be missing (and unseen); 0 = none */
    int ordered;           /* ids must follow the publisher's order in each room */
    int timeout_ms;        /* wait for Redis and the subscriber; 0 = 60 s */
};

struct workload;

/* Start the workload process; returns once its subscriber is subscribed.
 * NULL, with a message on stderr, when it cannot. */
struct workload *wl_start(struct h_env *e, const struct wl_opts *o);
/* Stop the workload process (by its PID) and free. NULL is fine. */
void wl_free(struct workload *w);

void wl_stats(struct workload *w, struct wl_stats *st);
/* Wait until `count` distinct messages were published (to pace faults
 * mid-stream). 0, or -1 after timeout_ms. */
int wl_wait_sent(struct workload *w, int count, int timeout_ms);
/* Wait until the broker acknowledged all n. 0, or -1 after timeout_ms or
 * once the publisher gave up. */
int wl_wait_acked(struct workload *w, int timeout_ms);

/* Snapshot the workload's records (free with wl_result_free). */
void wl_snapshot(struct workload *w, struct wl_result *r);
void wl_result_free(struct wl_result *r);

/* The number after prefix at the start of s[0..n) ("m17" -> 17 for
 * prefix "m"), or -1 when s is not prefix followed by digits only. */
long wl_number_after(const char *s, size_t n, const char *prefix);

/* The final check (check.c): waits, bounded, until Redis holds as many
 * messages as were acknowledged and the subscriber saw them, then checks
 * message by message. Prints every kind of problem with examples; returns
 * the number of problems (0 = pass). */
int wl_verify(struct workload *w, struct h_env *e, const struct wl_expect *x);

#endif
