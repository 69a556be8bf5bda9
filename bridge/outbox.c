/* outbox.c -- the list of publishes between the store worker and the
 * publisher thread (see outbox.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "outbox.h"

struct outbox {
    pthread_mutex_t lock;
    pthread_cond_t added;
    pthread_cond_t taken;
    struct outbox_msg *head, *tail;
    size_t len;
    int closed;
};

struct outbox *outbox_new(void) {
    struct outbox *o = calloc(1, sizeof(*o));
    if (o == NULL) return NULL;
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->added, NULL);
    pthread_cond_init(&o->taken, NULL);
    return o;
}

void outbox_free(struct outbox *o) {
    if (o == NULL) return;
    while (o->head) {
        struct outbox_msg *next = o->head->next;
        outbox_msg_free(o->head);
        o->head = next;
    }
    pthread_mutex_destroy(&o->lock);
    pthread_cond_destroy(&o->added);
    pthread_cond_destroy(&o->taken);
    free(o);
}

struct outbox_msg *outbox_msg_new(const char *topic, char *payload, size_t len,
                                  const char *corr, size_t corr_len, void *tag) {
    size_t tlen = strlen(topic) + 1;
    struct outbox_msg *m = malloc(sizeof(*m) + tlen + (corr ? corr_len : 0));
    if (m == NULL || payload == NULL) {
        free(m);
        free(payload);
        return NULL;
    }
    m->next = NULL;
    m->tag = tag;
    m->retain = 0;
    m->topic = (char *)(m + 1);
    memcpy(m->topic, topic, tlen);
    m->payload = payload;
    m->len = len;
    m->corr = corr ? m->topic + tlen : NULL;
    m->corr_len = corr ? corr_len : 0;
    if (corr) memcpy(m->corr, corr, corr_len);
    return m;
}

void outbox_msg_free(struct outbox_msg *m) {
    if (m == NULL) return;
    free(m->payload);
    free(m);
}

void outbox_put(struct outbox *o, struct outbox_msg *m) {
    pthread_mutex_lock(&o->lock);
    if (o->tail) o->tail->next = m;
    else o->head = m;
    o->tail = m;
    o->len++;
    pthread_cond_signal(&o->added);
    pthread_mutex_unlock(&o->lock);
}

/* An absolute CLOCK_REALTIME deadline timeout_ms from now. */
static struct timespec deadline_in(int timeout_ms) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += timeout_ms / 1000;
    t.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

struct outbox_msg *outbox_take_all(struct outbox *o, int timeout_ms) {
    struct timespec until = deadline_in(timeout_ms);
    pthread_mutex_lock(&o->lock);
    while (o->head == NULL && !o->closed)
        if (pthread_cond_timedwait(&o->added, &o->lock, &until) == ETIMEDOUT) break;
    struct outbox_msg *all = o->head;
    o->head = o->tail = NULL;
    o->len = 0;
    pthread_cond_broadcast(&o->taken);
    pthread_mutex_unlock(&o->lock);
    return all;
}

int outbox_wait_below(struct outbox *o, size_t level, int timeout_ms) {
    struct timespec until = deadline_in(timeout_ms);
    pthread_mutex_lock(&o->lock);
    while (o->len > level)
        if (pthread_cond_timedwait(&o->taken, &o->lock, &until) == ETIMEDOUT) break;
    int ok = o->len <= level;
    pthread_mutex_unlock(&o->lock);
    return ok;
}

size_t outbox_len(struct outbox *o) {
    pthread_mutex_lock(&o->lock);
    size_t n = o->len;
    pthread_mutex_unlock(&o->lock);
    return n;
}

void outbox_close(struct outbox *o) {
    pthread_mutex_lock(&o->lock);
    o->closed = 1;
    pthread_cond_broadcast(&o->added);
    pthread_mutex_unlock(&o->lock);
}

int outbox_closed(struct outbox *o) {
    pthread_mutex_lock(&o->lock);
    int c = o->closed;
    pthread_mutex_unlock(&o->lock);
    return c;
}
