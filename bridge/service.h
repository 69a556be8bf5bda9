/* service.h -- telling systemd how the daemon is doing (sd_notify).
 *
 * All calls are no-ops when not started by systemd (no NOTIFY_SOCKET).
 * The watchdog is pinged only from the main loop, so a stuck loop stops
 * the pings and systemd restarts the service. */
#ifndef CB_SERVICE_H
#define CB_SERVICE_H

/* Read the watchdog interval systemd asked for (WatchdogSec=). */
void service_init(void);

void service_ready(void);            /* READY=1 */
void service_reloading(void);        /* RELOADING=1 */
void service_stopping(void);         /* STOPPING=1 */

/* STATUS=<text>, shown by systemctl status; sent only when it changed. */
void service_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* WATCHDOG=1, when half the interval has passed since the last ping. */
void service_watchdog(void);

#endif
