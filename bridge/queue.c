/* queue.c -- a bounded blocking ring of pointers (see queue.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "queue.h"

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    void **ring;
    size_t capacity;
    size_t head;     /* next item to pop */
    size_t count;
    int closed;
};

struct queue *queue_new(size_t capacity) {
    struct queue *q = calloc(1, sizeof(*q));
    if (q == NULL || capacity == 0) goto fail;
    q->ring = calloc(capacity, sizeof(void *));
    if (q->ring == NULL) goto fail;
    q->capacity = capacity;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    return q;
fail:
    free(q);
    return NULL;
}

void queue_free(struct queue *q) {
    if (q == NULL) return;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    free(q->ring);
    free(q);
}

int queue_push(struct queue *q, void *item) {
    int rc = -1;
    pthread_mutex_lock(&q->lock);
    while (q->count == q->capacity && !q->closed)
        pthread_cond_wait(&q->not_full, &q->lock);
    if (!q->closed) {
        q->ring[(q->head + q->count) % q->capacity] = item;
        q->count++;
        pthread_cond_signal(&q->not_empty);
        rc = 0;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* Wait for the first item until an absolute deadline, so spurious wakeups
 * do not stretch the timeout. Called with the lock held. */
static void queue_wait_item(struct queue *q, int timeout_ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    while (q->count == 0 && !q->closed)
        if (pthread_cond_timedwait(&q->not_empty, &q->lock, &deadline) == ETIMEDOUT)
            break;
}

size_t queue_pop_batch(struct queue *q, void **items, size_t max, int timeout_ms) {
    size_t n = 0;
    pthread_mutex_lock(&q->lock);
    queue_wait_item(q, timeout_ms);
    while (n < max && q->count > 0) {
        items[n++] = q->ring[q->head];
        q->head = (q->head + 1) % q->capacity;
        q->count--;
    }
    if (n > 0) pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
    return n;
}

void queue_close(struct queue *q) {
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
}

size_t queue_depth(struct queue *q) {
    pthread_mutex_lock(&q->lock);
    size_t n = q->count;
    pthread_mutex_unlock(&q->lock);
    return n;
}
