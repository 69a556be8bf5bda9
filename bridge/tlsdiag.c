/* tlsdiag.c -- why a TLS connect to the broker failed, in words.
 *
 * Paho 1.3 reports nearly every failed TLS connect as "TCP/TLS connect
 * failure". What happened is in two other places: OpenSSL's error queue,
 * which Paho hands to an ssl_error_cb, and Paho's own protocol trace (the
 * handshake's progress, the fatal alerts, its hostname check, which fails
 * without any OpenSSL error). While a TLS connect is under way this module
 * listens to both and keeps what the attempt told (struct tls_diag); when
 * it fails, tlsdiag_reason() words it. The trace is turned down to errors
 * once connected, so a running bridge pays nothing for it. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <MQTTAsync.h>

#include "tlsdiag.h"

/* What the current connect attempt told us about TLS: set by Paho's SSL
 * error callback and its protocol trace, read when the attempt fails. The
 * trace callback has no context argument, so this is per process: the
 * bridge has one client. */
enum tls_stage { TLS_NONE, TLS_STARTED, TLS_DONE };
struct tls_diag {
    int stage;                     /* how far the handshake got */
    int host_mismatch;             /* Paho's hostname check failed */
    char host[128];                /* the name it checked */
    char error[160];               /* OpenSSL's first error reason */
    char alert_sent[64];           /* our fatal alert, e.g. "unknown CA" */
    char alert_received[64];       /* the broker's */
};

static pthread_mutex_t tlsdiag_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_diag tls_diag;   /* under tlsdiag_lock */

/* ==================== Listening (Paho's thread) ==================== */

/* dst = s[0..len), cut to fit, NUL-terminated. */
static void copy_text(char *dst, size_t size, const char *s, size_t len) {
    if (len >= size) len = size - 1;
    memcpy(dst, s, len);
    dst[len] = '\0';
}

/* dst = the rest of msg after prefix, up to end (or its end); 1 if found. */
static int copy_after(char *dst, size_t size, const char *msg, const char *prefix,
                      const char *end) {
    const char *p = strstr(msg, prefix), *q;
    if (p == NULL) return 0;
    p += strlen(prefix);
    q = end ? strstr(p, end) : NULL;
    copy_text(dst, size, p, q ? (size_t)(q - p) : strlen(p));
    return 1;
}

/* Paho's SSL error callback, called through ERR_print_errors_cb with one
 * line per OpenSSL error: "thread:error:code:library:function:reason:
 * file:line:data". Keeps the reason of the attempt's first error (the
 * whole line if it has another form). Returns > 0: go on. */
int tlsdiag_ssl_error(const char *str, size_t len, void *ctx) {
    const char *p = str, *end = str + len, *q = NULL;
    (void)ctx;
    for (int i = 0; i < 5 && p; i++)
        if ((p = memchr(p, ':', (size_t)(end - p))) != NULL) p++;
    if (p) q = memchr(p, ':', (size_t)(end - p));
    if (p == NULL || q == NULL) {
        p = str;
        q = end;
    }
    while (q > p && (q[-1] == '\n' || q[-1] == ' ')) q--;
    pthread_mutex_lock(&tlsdiag_lock);
    if (tls_diag.error[0] == '\0')
        copy_text(tls_diag.error, sizeof(tls_diag.error), p, (size_t)(q - p));
    pthread_mutex_unlock(&tlsdiag_lock);
    return 1;
}

/* Paho's trace, at protocol level while connecting over TLS: a new
 * attempt, how far the handshake got, the fatal alerts, and Paho's own
 * hostname check (after the handshake), which fails the connect without
 * any OpenSSL error. These are Paho 1.3's texts: should they change, the
 * reasons only get less precise. */
static void tlsdiag_trace(enum MQTTASYNC_TRACE_LEVELS level, char *msg) {
    struct tls_diag *d = &tls_diag;
    (void)level;
    pthread_mutex_lock(&tlsdiag_lock);
    if (strstr(msg, "Connecting to serverURI"))
        memset(d, 0, sizeof(*d));
    else if (strstr(msg, "SSL handshake started"))
        d->stage = TLS_STARTED;
    else if (strstr(msg, "SSL handshake done"))
        d->stage = TLS_DONE;
    else if (strstr(msg, "X509_check_host") && strstr(msg, " failed"))
        d->host_mismatch = copy_after(d->host, sizeof(d->host), msg,
                                      "for hostname ", " failed");
    else if (!copy_after(d->alert_sent, sizeof(d->alert_sent), msg,
                         "SSL alert write:fatal:", NULL))
        copy_after(d->alert_received, sizeof(d->alert_received), msg,
                   "SSL alert read:fatal:", NULL);
    pthread_mutex_unlock(&tlsdiag_lock);
}

/* What to add to an OpenSSL reason: its likely cause in our terms. */
static const char *tls_hint(const char *error) {
    static const char *const version[] = { "handshake failure", "protocol version",
        "unsupported protocol", "no shared cipher", "no ciphers", "legacy sigalg" };
    if (strstr(error, "certificate verify failed"))
        return "; the broker's certificate is not signed by a trusted CA "
               "(mqtt.tls_ca_file, mqtt.tls_ca_dir)";
    for (size_t i = 0; i < sizeof(version) / sizeof(version[0]); i++)
        if (strstr(error, version[i]))
            return "; the bridge requires TLS 1.2 or later";
    return "";
}

/* A fatal alert as " (alert: name)"; "" for none, one the error already
 * names, or one OpenSSL cannot name (TLS 1.3's certificate_required is
 * "unknown" to OpenSSL 3.0). */
static void tls_alert(char *buf, size_t size, const char *alert, const char *error) {
    if (alert[0] && strcmp(alert, "unknown") != 0 && strstr(error, alert) == NULL)
        snprintf(buf, size, " (alert: %s)", alert);
    else
        buf[0] = '\0';
}

/* Word the TLS cause of a failed connect into buf; 0 when nothing TLS
 * explains it (Paho's own message is then the reason). */
int tlsdiag_reason(const char *why, int have_cert, char *buf, size_t size) {
    struct tls_diag d;
    char alert[80];
    int closed = strcmp(why, "TCP/TLS connect failure") == 0 ||
                 strcmp(why, "TCP connect completion failure") == 0 ||
                 strcmp(why, "socket error") == 0;
    pthread_mutex_lock(&tlsdiag_lock);
    d = tls_diag;
    memset(&tls_diag, 0, sizeof(tls_diag));
    pthread_mutex_unlock(&tlsdiag_lock);
    if (d.error[0]) {
        tls_alert(alert, sizeof(alert), d.alert_sent[0] ? d.alert_sent : d.alert_received,
                  d.error);
        snprintf(buf, size, "TLS: %s%s%s", d.error, alert, tls_hint(d.error));
    } else if (d.host_mismatch) {
        snprintf(buf, size, "TLS: hostname %s does not match the broker's "
                 "certificate (mqtt.tls_verify_hostname)", d.host);
    } else if (closed && d.stage == TLS_DONE) {
        tls_alert(alert, sizeof(alert), d.alert_received, "");
        snprintf(buf, size, "TLS: the broker closed the connection after the "
                 "handshake%s; %s", alert, have_cert
                 ? "did it refuse the client certificate?"
                 : "does it require a client certificate (mqtt.tls_cert_file)?");
    } else if (closed && d.stage == TLS_STARTED) {
        snprintf(buf, size, "TLS: the connection closed during the handshake; "
                 "is the broker's port a TLS listener?");
    } else {
        return 0;
    }
    return 1;
}

/* ==================== Switching ==================== */

/* Protocol-level trace while connecting, errors only once connected. */
void tlsdiag_watch(int on) {
    MQTTAsync_setTraceCallback(tlsdiag_trace);
    MQTTAsync_setTraceLevel(on ? MQTTASYNC_TRACE_PROTOCOL : MQTTASYNC_TRACE_ERROR);
}

/* Forget the attempt (after a success). */
void tlsdiag_clear(void) {
    pthread_mutex_lock(&tlsdiag_lock);
    memset(&tls_diag, 0, sizeof(tls_diag));
    pthread_mutex_unlock(&tlsdiag_lock);
}

/* Stop listening: the client is gone. */
void tlsdiag_stop(void) {
    MQTTAsync_setTraceCallback(NULL);
}
