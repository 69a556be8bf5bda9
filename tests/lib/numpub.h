/* numpub.h -- a publisher process of numbered QoS 1 chat messages, for
 * the tests that check that every acknowledged message was stored exactly
 * once (the cluster and Sentinel scenarios).
 *
 * numpub_start() forks a process that connects to the broker (MQTT 5,
 * clean start, `window` publishes in flight), publishes messages 1..n,
 * paced at `rate` a second, each to the topic and with the payload the
 * test's function gives for its seq, and records every PUBACK in a
 * mapping it shares with the test: acked_flag[seq] and the counts. The
 * test reads them while the stream runs and after it ends. Every wait is
 * bounded. */
#ifndef CB_NUMPUB_H
#define CB_NUMPUB_H

#include <stddef.h>
#include <sys/types.h>

/* Shared between the test and the publisher process. */
struct numpub {
    int stop;                   /* test -> publisher: send no more */
    int sent, acked;            /* published, acknowledged so far */
    int failed, done;           /* the connection failed; the end */
    int maxn;
    unsigned char acked_flag[]; /* [1..maxn]: the broker acknowledged seq */
};

/* Message seq's topic and payload (NUL-terminated, within the sizes). */
typedef void numpub_msg_fn(int seq, char *topic, size_t tsize, char *payload, size_t psize);

struct numpub_opts {
    int port;                   /* the broker, on 127.0.0.1 */
    const char *client_id;
    int n, rate, window;
    numpub_msg_fn *msg;
};

/* A shared mapping for up to maxn messages; NULL on failure. */
struct numpub *numpub_map(int maxn);
void numpub_unmap(struct numpub *p);

/* Fork the publisher (the mapping reset first). Its pid, or -1. */
pid_t numpub_start(struct numpub *p, const struct numpub_opts *o);

/* Tell it to stop, wait for it (3 s, then SIGKILL) and reap it; *pid 0. */
void numpub_stop(struct numpub *p, pid_t *pid);

/* Wait until it sent count messages. 0, or -1 at the timeout. */
int numpub_wait_sent(const struct numpub *p, int count, int timeout_ms);

/* Wait until it is done and reap it. 0, or -1 when it failed or timed
 * out (then it is stopped). */
int numpub_wait_done(struct numpub *p, pid_t *pid, int timeout_ms);

#endif
