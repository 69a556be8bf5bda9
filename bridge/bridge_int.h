/* bridge_int.h -- the bridge's insides, shared by its three files:
 *
 *   bridge.c    lifecycle, the publish helpers, the status document's figures
 *   inbound.c   Paho's callback thread: route, decode, validate, journal
 *   worker.c    the store worker: journal -> Redis -> the delivery
 *   foreign.c   the worker's side of other writers: what the keyspace
 *               listener (watch.h) saw -> adopt, reap -> the delivery
 *
 * Nothing outside these three includes it; the rest of the program sees
 * bridge.h only. */
#ifndef CB_BRIDGE_INT_H
#define CB_BRIDGE_INT_H

#include <pthread.h>
#include <time.h>

#include "bridge.h"
#include "codec.h"
#include "delivery.h"
#include "journal.h"
#include "log.h"
#include "mqtt.h"
#include "peers.h"
#include "receipt.h"
#include "record.h"
#include "stats.h"
#include "store.h"
#include "watch.h"

struct foreign;

#define TOPIC_MAX 512

struct bridge {
    const struct config *cfg;
    struct codec_limits limits;
    int max_reply_bytes;           /* limits.max_reply_bytes (live) */
    struct mqtt *mqtt;
    struct store *store;
    struct watch *watch;          /* other writers, seen live (watch.h) */
    struct foreign *foreign;      /* the worker's state for them */
    struct receipts *receipts;    /* read receipts: the worker's only */
    struct journal *journal;      /* Paho callback -> store worker */
    struct delivery *delivery;    /* store worker -> broker (delivery.h) */
    pthread_t worker;
    int worker_started, delivery_started;
    int stopping;                 /* atomic */
    unsigned long long stop_seq;  /* the worker stops after this record */
    unsigned long long replay_until; /* the journal's newest record at the
                                     start: up to it, records may have been
                                     stored before (store_op.fresh) */
    unsigned long long last_seq;  /* atomic: the worker's last batch ends here */
    unsigned long long ckpt_seq;  /* atomic: the delivery's last checkpoint */
    unsigned long long puts;      /* atomic: documents given to delivery_put */
    struct timespec give_up_at;   /* worker stops retrying Redis after it */
    unsigned long publish_oom;    /* publishes lost to out of memory */
    unsigned long publish_closed; /* publishes put after the delivery closed */
    int append_stuck;             /* atomic: Paho's callback is retrying an
                                     append that failed (a full disk) */
    struct record_buf recbuf;     /* Paho's thread only */
    struct log_ratelimit reject_rl, publish_rl, journal_rl;
    struct journal_entry *entries;/* the worker's batch: records ... */
    struct request *recs;         /* ... decoded ... */
    struct store_op *ops;         /* ... and their store operations */
    int redis_tried;              /* worker only: a connect was attempted */
    int journal_warned;           /* the 80% warning is up */
    int disk_warned;              /* the disk full warning is up */
    int status_interval;          /* seconds, live */
    char status_topic[TOPIC_MAX];
    char peer_filter[TOPIC_MAX];  /* "<prefix>/$bridge/+/status" or "" */
    char instance[96];            /* "host:pid:start", in the status doc */
    struct peers peers;           /* Paho's thread only */
    time_t started, next_status;
    unsigned status_conns;        /* mqtt_connections() at the last status */
    struct stats_hist store_lat;  /* per batch, Redis round trip */
    struct stats_hist e2e_lat;    /* per message, arrival to republish queued */
    struct stats_snapshot st;     /* counters updated atomically */
};

#define STAT_INC(b, field) __atomic_add_fetch(&(b)->st.field, 1, __ATOMIC_RELAXED)


/* ---- bridge.c: the way out, any thread (never waits on Paho) ---- */

/* Queue doc (owned) for topic, with r's correlation data when r is given;
 * counted by ticket t when not NULL. */
void bridge_publish(struct bridge *b, const char *topic, char *doc, size_t len,
                    const struct request *r, struct delivery_ticket *t);

/* Send doc (owned) to r's reply topic, if it named one. */
void bridge_reply(struct bridge *b, const struct request *r, char *doc, size_t len,
                  struct delivery_ticket *t);

/* The error reply for err (codec_err) to r's reply topic. */
void bridge_reply_error(struct bridge *b, const struct request *r, int err,
                        struct delivery_ticket *t);

/* Publish doc (owned) on the room's <prefix>/<room>/msgs. */
void bridge_room_publish(struct bridge *b, const char *room, char *doc, size_t len,
                         struct delivery_ticket *t);

/* ---- inbound.c ---- */

/* The MQTT handler (mqtt.h), on Paho's callback thread. */
void inbound_on_message(void *arg, const struct mqtt_in *in);

/* ---- foreign.c: the store worker's thread ---- */

struct foreign *foreign_new(void);
void foreign_free(struct foreign *f);

/* Adopt, reap and confirm what other writers did (see foreign.c). Returns
 * how many ms until it has work again (0..200). */
long foreign_step(struct bridge *b, struct foreign *f);

/* ---- worker.c ---- */

/* The store worker thread's body; arg is the bridge. */
void *worker_main(void *arg);

/* What lets the worker go on without waiting for the delivery (a stop, an
 * append waiting for the journal): delivery_wait_room's hold. */
int worker_hold(void *arg);

#endif
