/* test_delivery.c -- the delivery pipeline without Paho or a broker: the
 * publish function is a fake that records what it is handed and
 * completes publishes when the test says so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "clock.h"
#include "delivery.h"

#define MAXP 256
#define WAIT_MS 5000

/* The fake broker client. */
struct fake {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    char topics[MAXP][32];          /* handed over, in order */
    struct cb_done *done[MAXP];     /* their completions, NULL once used */
    int n;
    int auto_ok;                    /* complete at once with ok = 1 */
    int full;                       /* answer CB_ERR_FULL this many times */
    int refuse;                     /* answer CB_ERR for this topic index */
    uint64_t checkpoints[MAXP];     /* every checkpoint call, in order */
    int ncheck;
    int max_out;                    /* most publishes out at once */
};

static int fake_publish(void *arg, const struct delivery_msg *m, struct cb_done *done) {
    struct fake *f = arg;
    pthread_mutex_lock(&f->lock);
    if (f->full > 0) {
        f->full--;
        pthread_mutex_unlock(&f->lock);
        return CB_ERR_FULL;
    }
    int i = f->n++;
    snprintf(f->topics[i], sizeof(f->topics[i]), "%s", m->topic);
    int refuse = f->refuse == i + 1;
    f->done[i] = refuse ? NULL : done;
    pthread_cond_broadcast(&f->changed);
    int out = 0;
    for (int k = 0; k < f->n; k++) out += f->done[k] != NULL;
    if (out > f->max_out) f->max_out = out;
    int now = f->auto_ok && !refuse;
    if (now) f->done[i] = NULL;
    pthread_mutex_unlock(&f->lock);
    if (refuse) return CB_ERR;
    if (now) done->fn(done, 1);
    return CB_OK;
}

static void fake_checkpoint(void *arg, uint64_t seq) {
    struct fake *f = arg;
    pthread_mutex_lock(&f->lock);
    f->checkpoints[f->ncheck++] = seq;
    pthread_mutex_unlock(&f->lock);
}

/* Wait (bounded) until the fake was handed n publishes in all. */
static int wait_handed(struct fake *f, int n) {
    struct timespec until = clock_deadline(WAIT_MS);
    pthread_mutex_lock(&f->lock);
    while (f->n < n && !clock_cond_wait(&f->changed, &f->lock, &until))
        ;
    int got = f->n;
    pthread_mutex_unlock(&f->lock);
    return got;
}

/* Complete publish i with ok. */
static void complete(struct fake *f, int i, int ok) {
    pthread_mutex_lock(&f->lock);
    struct cb_done *d = f->done[i];
    f->done[i] = NULL;
    pthread_mutex_unlock(&f->lock);
    assert_non_null(d);
    d->fn(d, ok);
}

static uint64_t last_checkpoint(struct fake *f) {
    pthread_mutex_lock(&f->lock);
    uint64_t s = f->ncheck ? f->checkpoints[f->ncheck - 1] : 0;
    pthread_mutex_unlock(&f->lock);
    return s;
}

static struct fake *fake_new(void) {
    struct fake *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    pthread_mutex_init(&f->lock, NULL);
    clock_cond_init(&f->changed);
    return f;
}

static struct delivery *delivery_for(struct fake *f, int window, size_t limit) {
    struct delivery_opts o = { .window = window, .queue_limit = limit,
        .retry_ms = 5, .publish = fake_publish,
        .checkpoint = fake_checkpoint, .arg = f };
    struct delivery *d = delivery_new(&o);
    assert_non_null(d);
    assert_int_equal(delivery_start(d), CB_OK);
    return d;
}

static void put(struct delivery *d, struct delivery_ticket *t, const char *topic) {
    assert_int_equal(delivery_put(d, t, topic, strdup("x"), 1, NULL, 0, 0), CB_OK);
}

static void done_all(struct delivery *d, struct fake *f) {
    delivery_free(d);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->changed);
    free(f);
}

/* Publishes are handed over in the order they were put, across batches,
 * and the checkpoint follows each batch once its publishes completed. */
static void test_order(void **state) {
    struct fake *f = fake_new();
    char topic[32];
    (void)state;
    f->auto_ok = 1;
    struct delivery *d = delivery_for(f, 4, 1000);
    for (int b = 0; b < 10; b++) {
        struct delivery_ticket *t = delivery_ticket_new(d, (uint64_t)(b + 1) * 100);
        assert_non_null(t);
        for (int i = 0; i < 10; i++) {
            snprintf(topic, sizeof(topic), "t/%d", b * 10 + i);
            put(d, t, topic);
        }
        delivery_ticket_release(d, t);
    }
    assert_int_equal(wait_handed(f, 100), 100);
    for (int i = 0; i < 100; i++) {
        snprintf(topic, sizeof(topic), "t/%d", i);
        assert_string_equal(f->topics[i], topic);
    }
    assert_int_equal(delivery_close(d, 1000), 1);
    delivery_checkpoint(d);
    assert_int_equal(last_checkpoint(f), 1000);
    for (int i = 1; i < f->ncheck; i++)           /* never moves back */
        assert_true(f->checkpoints[i] > f->checkpoints[i - 1]);
    done_all(d, f);
}

/* At most 'window' publishes are out at once; each completion lets the
 * next one go. */
static void test_window(void **state) {
    struct fake *f = fake_new();
    struct delivery_stats st;
    (void)state;
    struct delivery *d = delivery_for(f, 3, 1000);
    for (int i = 0; i < 8; i++) put(d, NULL, "w");
    assert_int_equal(wait_handed(f, 3), 3);
    clock_sleep_ms(50);                      /* room for a wrong 4th */
    assert_int_equal(wait_handed(f, 3), 3);
    delivery_get_stats(d, &st);
    assert_int_equal(st.in_flight, 3);
    complete(f, 1, 1);
    assert_int_equal(wait_handed(f, 4), 4);
    for (int i = 0; i < 8; i++) {
        if (i == 1) continue;
        assert_true(wait_handed(f, i + 1) >= i + 1);
        complete(f, i, 1);
    }
    assert_int_equal(f->max_out, 3);
    assert_int_equal(delivery_close(d, 1000), 1);
    delivery_get_stats(d, &st);
    assert_int_equal(st.completed, 8);
    assert_int_equal(st.in_flight, 0);
    done_all(d, f);
}

static int limit_now = 2;       /* what fake_limit answers */

static int fake_limit(void *arg) {
    (void)arg;
    return __atomic_load_n(&limit_now, __ATOMIC_ACQUIRE);
}

/* The client's limit (the broker's Receive Maximum) holds the window
 * below its size: 2 of 8 out while it says 2; all 8 once it says 0
 * (unknown). */
static void test_limit(void **state) {
    struct fake *f = fake_new();
    struct delivery_opts o = { .window = 8, .queue_limit = 1000, .retry_ms = 5,
        .publish = fake_publish, .checkpoint = fake_checkpoint, .limit = fake_limit,
        .arg = f };
    (void)state;
    __atomic_store_n(&limit_now, 2, __ATOMIC_RELEASE);
    struct delivery *d = delivery_new(&o);
    assert_non_null(d);
    assert_int_equal(delivery_start(d), CB_OK);
    for (int i = 0; i < 12; i++) put(d, NULL, "l");
    assert_int_equal(wait_handed(f, 2), 2);
    clock_sleep_ms(50);                      /* room for a wrong 3rd */
    assert_int_equal(wait_handed(f, 2), 2);
    complete(f, 0, 1);
    assert_int_equal(wait_handed(f, 3), 3);
    assert_int_equal(f->max_out, 2);
    __atomic_store_n(&limit_now, 0, __ATOMIC_RELEASE);
    complete(f, 1, 1);                        /* the next take sees 0 */
    assert_int_equal(wait_handed(f, 10), 10);
    pthread_mutex_lock(&f->lock);
    int out = f->max_out;
    pthread_mutex_unlock(&f->lock);
    assert_int_equal(out, 8);
    for (int i = 2; i < 12; i++) {
        assert_true(wait_handed(f, i + 1) >= i + 1);
        complete(f, i, 1);
    }
    assert_int_equal(delivery_close(d, 1000), 1);
    done_all(d, f);
}

/* A publish the client gave up on (ok = 0) is handed over again, and the
 * checkpoint does not pass its batch until it completed. */
static void test_failed_publish_retried(void **state) {
    struct fake *f = fake_new();
    struct delivery_stats st;
    (void)state;
    struct delivery *d = delivery_for(f, 4, 1000);
    struct delivery_ticket *t = delivery_ticket_new(d, 42);
    put(d, t, "a");
    put(d, t, "b");
    delivery_ticket_release(d, t);
    assert_int_equal(wait_handed(f, 2), 2);
    complete(f, 1, 1);
    complete(f, 0, 0);                       /* "a" failed */
    assert_int_equal(wait_handed(f, 3), 3);
    assert_string_equal(f->topics[2], "a");
    delivery_checkpoint(d);
    assert_int_equal(last_checkpoint(f), 0);  /* "a" not yet through */
    complete(f, 2, 1);
    delivery_checkpoint(d);
    assert_int_equal(last_checkpoint(f), 42);
    delivery_get_stats(d, &st);
    assert_int_equal(st.retried, 1);
    assert_int_equal(st.completed, 2);
    assert_int_equal(delivery_close(d, 1000), 1);
    done_all(d, f);
}

/* Tickets completing out of order: the checkpoint moves over the
 * completed prefix only. */
static void test_out_of_order(void **state) {
    struct fake *f = fake_new();
    (void)state;
    struct delivery *d = delivery_for(f, 8, 1000);
    struct delivery_ticket *t1 = delivery_ticket_new(d, 10);
    put(d, t1, "one");
    delivery_ticket_release(d, t1);
    struct delivery_ticket *t2 = delivery_ticket_new(d, 20);
    put(d, t2, "two");
    delivery_ticket_release(d, t2);
    struct delivery_ticket *t3 = delivery_ticket_new(d, 30);
    put(d, t3, "three");
    delivery_ticket_release(d, t3);
    assert_int_equal(wait_handed(f, 3), 3);
    complete(f, 2, 1);
    complete(f, 1, 1);
    delivery_checkpoint(d);
    assert_int_equal(last_checkpoint(f), 0);
    complete(f, 0, 1);
    delivery_checkpoint(d);
    assert_int_equal(last_checkpoint(f), 30);
    assert_int_equal(f->ncheck, 1);          /* one call, straight to 30 */
    /* the worker's hold counts too: a batch whose publishes are done but
     * not released is not passed */
    struct delivery_ticket *t4 = delivery_ticket_new(d, 40);
    put(d, t4, "four");
    assert_int_equal(wait_handed(f, 4), 4);
    complete(f, 3, 1);
    delivery_checkpoint(d);
    assert_int_equal(last_checkpoint(f), 30);
    delivery_ticket_release(d, t4);
    assert_int_equal(last_checkpoint(f), 40);
    assert_int_equal(delivery_close(d, 1000), 1);
    done_all(d, f);
}

/* Closing with publishes pending: what never completed keeps its batch
 * open (the checkpoint stays before it, for the next start), what had no
 * room is left, failures are no longer retried, and close returns. */
static void test_close_pending(void **state) {
    struct fake *f = fake_new();
    struct delivery_stats st;
    (void)state;
    struct delivery *d = delivery_for(f, 2, 1000);
    struct delivery_ticket *t0 = delivery_ticket_new(d, 5);
    put(d, t0, "done");
    delivery_ticket_release(d, t0);
    assert_int_equal(wait_handed(f, 1), 1);
    complete(f, 0, 1);
    struct delivery_ticket *t = delivery_ticket_new(d, 9);
    for (int i = 0; i < 5; i++) put(d, t, "p");
    delivery_ticket_release(d, t);
    assert_int_equal(wait_handed(f, 3), 3);  /* the window: 2 out */
    assert_int_equal(delivery_close(d, 50), 0);
    complete(f, 1, 0);                       /* a failure while closing */
    delivery_checkpoint(d);
    assert_int_equal(last_checkpoint(f), 5);
    delivery_get_stats(d, &st);
    assert_int_equal(st.retried, 0);
    assert_int_equal(st.left, 4);            /* 3 with no room + 1 failed */
    assert_int_equal(st.in_flight, 1);
    assert_int_equal(delivery_put(d, NULL, "late", strdup("x"), 1, NULL, 0, 0),
                     CB_ERR_CLOSED);
    complete(f, 2, 1);
    done_all(d, f);
}

/* "Not now" is tried again; a refusal for good is dropped and does not
 * hold the checkpoint back. */
static void test_full_and_refused(void **state) {
    struct fake *f = fake_new();
    struct delivery_stats st;
    (void)state;
    f->auto_ok = 1;
    f->full = 3;
    f->refuse = 2;
    struct delivery *d = delivery_for(f, 2, 1000);
    struct delivery_ticket *t = delivery_ticket_new(d, 7);
    put(d, t, "a");
    put(d, t, "bad");
    put(d, t, "c");
    delivery_ticket_release(d, t);
    assert_int_equal(wait_handed(f, 3), 3);
    assert_int_equal(delivery_close(d, 1000), 1);
    delivery_checkpoint(d);
    assert_int_equal(last_checkpoint(f), 7);
    delivery_get_stats(d, &st);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.completed, 2);
    assert_string_equal(f->topics[0], "a");
    assert_string_equal(f->topics[2], "c");
    done_all(d, f);
}

/* The worker's wait for room: it waits while the queue is over the limit
 * and leaves as soon as its hold predicate says so after a wake. */
struct holder {
    struct delivery *d;
    int hold;                                /* atomic */
    int returned;                            /* atomic */
};

static int hold_fn(void *arg) {
    return __atomic_load_n(&((struct holder *)arg)->hold, __ATOMIC_ACQUIRE);
}

static void *waiter(void *arg) {
    struct holder *h = arg;
    delivery_wait_room(h->d, hold_fn, h);
    __atomic_store_n(&h->returned, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_wait_room(void **state) {
    struct fake *f = fake_new();
    pthread_t th;
    (void)state;
    struct delivery *d = delivery_for(f, 1, 2);
    struct holder h = { d, 0, 0 };
    put(d, NULL, "first");                   /* taken, stuck in the window */
    assert_int_equal(wait_handed(f, 1), 1);
    for (int i = 0; i < 5; i++) put(d, NULL, "q");
    clock_sleep_ms(20);                      /* let the thread take them */
    put(d, NULL, "q"); put(d, NULL, "q"); put(d, NULL, "q");
    assert_int_equal(pthread_create(&th, NULL, waiter, &h), 0);
    clock_sleep_ms(50);
    assert_int_equal(__atomic_load_n(&h.returned, __ATOMIC_ACQUIRE), 0);
    __atomic_store_n(&h.hold, 1, __ATOMIC_RELEASE);
    delivery_wake(d);
    pthread_join(th, NULL);
    assert_int_equal(h.returned, 1);
    f->auto_ok = 1;
    complete(f, 0, 1);
    assert_int_equal(wait_handed(f, 9), 9);
    assert_int_equal(delivery_close(d, 1000), 1);
    done_all(d, f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_failed_publish_retried),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_close_pending),
        cmocka_unit_test(test_full_and_refused),
        cmocka_unit_test(test_wait_room),
    };
    return cmocka_run_group_tests_name("delivery", tests, NULL, NULL);
}
