/* numpub.c -- the numbered publisher process (see numpub.h). */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <MQTTClient.h>

#include "numpub.h"
#include "sys.h"

static long numpub_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

struct numpub *numpub_map(int maxn) {
    size_t size = sizeof(struct numpub) + (size_t)maxn + 1;
    struct numpub *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                            -1, 0);
    if (p == MAP_FAILED) return NULL;
    p->maxn = maxn;
    return p;
}

void numpub_unmap(struct numpub *p) {
    if (p) munmap(p, sizeof(*p) + (size_t)p->maxn + 1);
}

/* ---- The publisher process's own state ---- */

/* Which message each token in flight is, filled after publishMessage
 * returns, while Paho's thread may already have seen its PUBACK (then
 * `early`). */
static struct numpub *shared;
static pthread_mutex_t tok_lock = PTHREAD_MUTEX_INITIALIZER;
static int tok_seq[65536];
static unsigned char tok_early[65536];
static int inflight;

/* A PUBACK for message seq; tok_lock held. */
static void numpub_acked(int seq) {
    if (seq >= 1 && seq <= shared->maxn) shared->acked_flag[seq] = 1;
    __atomic_add_fetch(&shared->acked, 1, __ATOMIC_RELEASE);
    __atomic_sub_fetch(&inflight, 1, __ATOMIC_RELEASE);
}

/* Paho's thread: the broker acknowledged a publish. */
static void numpub_delivered(void *ctx, MQTTClient_deliveryToken tok) {
    unsigned t = (unsigned)tok & 0xffff;
    (void)ctx;
    pthread_mutex_lock(&tok_lock);
    if (tok_seq[t]) numpub_acked(tok_seq[t]);
    else tok_early[t] = 1;
    tok_seq[t] = 0;
    pthread_mutex_unlock(&tok_lock);
}

/* Paho's thread: nothing is subscribed, but Paho wants the callback. */
static int numpub_arrived(void *ctx, char *topic, int len, MQTTClient_message *m) {
    (void)ctx;
    (void)len;
    MQTTClient_freeMessage(&m);
    MQTTClient_free(topic);
    return 1;
}

/* Paho's thread: the connection is gone; the publisher gives up. */
static void numpub_lost(void *ctx, char *cause) {
    (void)ctx;
    (void)cause;
    __atomic_store_n(&shared->failed, 1, __ATOMIC_RELEASE);
}

/* The connection: MQTT 5, clean start, o->window in flight. */
static MQTTClient numpub_connect(const struct numpub_opts *o) {
    char uri[64];
    MQTTClient c;
    MQTTClient_createOptions co = MQTTClient_createOptions_initializer;
    MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer5;
    snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", o->port);
    co.MQTTVersion = MQTTVERSION_5;
    if (MQTTClient_createWithOptions(&c, uri, o->client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL,
                                     &co) != MQTTCLIENT_SUCCESS)
        return NULL;
    MQTTClient_setCallbacks(c, NULL, numpub_lost, numpub_arrived, numpub_delivered);
    opts.keepAliveInterval = 30;
    opts.reliable = 0;
    opts.maxInflightMessages = o->window;
    MQTTResponse r = MQTTClient_connect5(c, &opts, NULL, NULL);
    int rc = r.reasonCode;
    MQTTResponse_free(r);
    if (rc != MQTTCLIENT_SUCCESS) MQTTClient_destroy(&c);
    return rc == MQTTCLIENT_SUCCESS ? c : NULL;
}

/* Wait until fewer than `most` publishes are in flight, at most 15 s. */
static int numpub_window(int most) {
    for (long t0 = numpub_now_ms(); __atomic_load_n(&inflight, __ATOMIC_ACQUIRE) >= most;
         sys_sleep_ms(1))
        if (numpub_now_ms() - t0 > 15000 || __atomic_load_n(&shared->failed, __ATOMIC_ACQUIRE))
            return -1;
    return 0;
}

/* Publish message seq (QoS 1) and note its token. 0 or -1. */
static int numpub_one(MQTTClient c, const struct numpub_opts *o, int seq) {
    char topic[256], payload[512];
    MQTTClient_deliveryToken tok;
    MQTTClient_message m = MQTTClient_message_initializer;
    o->msg(seq, topic, sizeof(topic), payload, sizeof(payload));
    m.payload = payload;
    m.payloadlen = (int)strlen(payload);
    m.qos = 1;
    __atomic_add_fetch(&inflight, 1, __ATOMIC_RELEASE);
    MQTTResponse r = MQTTClient_publishMessage5(c, topic, &m, &tok);
    int rc = r.reasonCode;
    MQTTResponse_free(r);
    if (rc != MQTTCLIENT_SUCCESS) return -1;
    unsigned t = (unsigned)tok & 0xffff;
    pthread_mutex_lock(&tok_lock);
    if (tok_early[t]) numpub_acked(seq);
    else tok_seq[t] = seq;
    tok_early[t] = 0;
    pthread_mutex_unlock(&tok_lock);
    return 0;
}

/* The publisher process: messages 1..n at o->rate a second, at most
 * o->window unacknowledged. Never returns. */
static void numpub_main(const struct numpub_opts *o) {
    int rc = 0;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    MQTTClient c = numpub_connect(o);
    long t0 = numpub_now_ms();
    for (int seq = 1; c && rc == 0 && seq <= o->n && seq <= shared->maxn &&
         !__atomic_load_n(&shared->stop, __ATOMIC_ACQUIRE); seq++) {
        long wait = (long)(seq - 1) * 1000 / o->rate - (numpub_now_ms() - t0);
        if (wait > 0) sys_sleep_ms(wait);
        rc = numpub_window(o->window);
        if (rc == 0) rc = numpub_one(c, o, seq);
        __atomic_store_n(&shared->sent, seq, __ATOMIC_RELEASE);
    }
    if (c && rc == 0) rc = numpub_window(1);
    __atomic_store_n(&shared->failed, c == NULL || rc != 0, __ATOMIC_RELEASE);
    __atomic_store_n(&shared->done, 1, __ATOMIC_RELEASE);
    if (c) {
        MQTTClient_disconnect5(c, 1000, MQTTREASONCODE_SUCCESS, NULL);
        MQTTClient_destroy(&c);
    }
    _exit(0);
}

pid_t numpub_start(struct numpub *p, const struct numpub_opts *o) {
    int maxn = p->maxn;
    memset(p, 0, sizeof(*p) + (size_t)maxn + 1);
    p->maxn = maxn;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        shared = p;
        numpub_main(o);
    }
    return pid > 0 ? pid : -1;
}

void numpub_stop(struct numpub *p, pid_t *pid) {
    if (*pid <= 0) return;
    __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
    sys_stop_pid(*pid, 3000);
    *pid = 0;
}

int numpub_wait_sent(const struct numpub *p, int count, int timeout_ms) {
    for (long t0 = numpub_now_ms(); numpub_now_ms() - t0 < timeout_ms; sys_sleep_ms(20))
        if (__atomic_load_n(&p->sent, __ATOMIC_ACQUIRE) >= count) return 0;
    return -1;
}

int numpub_wait_done(struct numpub *p, pid_t *pid, int timeout_ms) {
    int status;
    for (long t0 = numpub_now_ms(); numpub_now_ms() - t0 < timeout_ms; sys_sleep_ms(50))
        if (waitpid(*pid, &status, WNOHANG) == *pid) {
            *pid = 0;
            return __atomic_load_n(&p->done, __ATOMIC_ACQUIRE) &&
                   !__atomic_load_n(&p->failed, __ATOMIC_ACQUIRE) ? 0 : -1;
        }
    numpub_stop(p, pid);
    return -1;
}
