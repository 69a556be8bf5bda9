/* service.c -- sd_notify for readiness, status, watchdog (see service.h). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-daemon.h>

#include "clock.h"
#include "service.h"

static uint64_t watchdog_usec;       /* 0: no watchdog */
static uint64_t last_ping;

void service_init(void) {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0) watchdog_usec = usec;
}

void service_ready(void) {
    sd_notify(0, "READY=1");
}

void service_reloading(void) {
    sd_notify(0, "RELOADING=1");
}

void service_stopping(void) {
    sd_notify(0, "STOPPING=1");
}

/* Only a changed text is sent: the main loop calls this every tick. */
void service_status(const char *fmt, ...) {
    static char last[512];
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (strcmp(text, last) == 0) return;
    memcpy(last, text, sizeof(last));
    sd_notifyf(0, "STATUS=%s", text);
}

void service_watchdog(void) {
    uint64_t now = clock_mono_us();
    if (watchdog_usec == 0 || now - last_ping < watchdog_usec / 2) return;
    last_ping = now;
    sd_notify(0, "WATCHDOG=1");
}
