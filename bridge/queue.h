/* queue.h -- the bounded queue between the MQTT side and the store worker.
 *
 * A ring of pointers guarded by one mutex. Producers (Paho's callback
 * thread) block while it is full: that is the backpressure, Paho stops
 * reading and the broker holds the messages. The consumer (the store
 * worker) takes whole batches at once, so the lock is taken once per batch,
 * not once per message. The queue never owns or frees what it carries. */
#ifndef CB_QUEUE_H
#define CB_QUEUE_H

#include <stddef.h>

struct queue;

/* A queue of at most 'capacity' items, or NULL when out of memory. */
struct queue *queue_new(size_t capacity);
void queue_free(struct queue *q);

/* Append item, waiting while the queue is full. Returns 0, or -1 once the
 * queue is closed (the item was not taken). */
int queue_push(struct queue *q, void *item);

/* Move up to max items into items[], oldest first, waiting up to
 * timeout_ms for the first one. Returns how many were taken: 0 on timeout,
 * or when the queue is closed and empty. */
size_t queue_pop_batch(struct queue *q, void **items, size_t max, int timeout_ms);

/* Refuse further pushes and wake every waiter. What is queued stays
 * available to queue_pop_batch. */
void queue_close(struct queue *q);

/* Items queued right now. */
size_t queue_depth(struct queue *q);

#endif
