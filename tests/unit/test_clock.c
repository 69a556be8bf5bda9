/* test_clock.c -- the clock helper: deadlines carry nanoseconds into
 * seconds (bridge_stop once added timeout_ms % 1000 to tv_nsec without
 * the carry, and gave up to a second early or failed its waits), and a
 * condition variable waits on the monotonic clock until the deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"

/* Every deadline is normalised (tv_nsec < 1e9) and lies ms after now,
 * within the time the check itself takes. */
static void test_deadline_carry(void **state) {
    (void)state;
    static const long ms[] = { 0, 1, 999, 1000, 1001, 1999, 2500, 59999 };
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        for (int k = 0; k < 200; k++) {          /* hit many tv_nsec */
            uint64_t before = clock_mono_us();
            struct timespec t = clock_deadline(ms[i]);
            uint64_t after = clock_mono_us();
            uint64_t at = (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
            assert_true(t.tv_nsec >= 0 && t.tv_nsec < 1000000000L);
            assert_true(at + 1 >= before + (uint64_t)ms[i] * 1000u);
            assert_true(at <= after + (uint64_t)ms[i] * 1000u + 1);
        }
    }
    struct timespec neg = clock_deadline(-5);
    assert_true(clock_passed(&neg));
}

/* A wait with nobody signalling returns at the deadline, not before. */
static void test_cond_wait(void **state) {
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c;
    (void)state;
    assert_int_equal(clock_cond_init(&c), 0);
    uint64_t t0 = clock_mono_us();
    struct timespec until = clock_deadline(1050);   /* 50 ms past a second */
    pthread_mutex_lock(&m);
    while (!clock_cond_wait(&c, &m, &until))
        ;
    pthread_mutex_unlock(&m);
    assert_true(clock_mono_us() - t0 >= 1050000u);
    assert_true(clock_passed(&until));
    pthread_cond_destroy(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadline_carry),
        cmocka_unit_test(test_cond_wait),
    };
    return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
