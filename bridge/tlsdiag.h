/* tlsdiag.h -- why a TLS connect to the broker failed, in words.
 *
 * Paho reports a failed TLS connect as "TCP/TLS connect failure" whatever
 * the cause. This module listens, while a connect is under way, to
 * OpenSSL's errors (pass tlsdiag_ssl_error as the SSL options'
 * ssl_error_cb) and to Paho's protocol trace, and turns what they told
 * into a reason an operator can act on:
 *
 *   TLS: certificate verify failed (alert: unknown CA); the broker's
 *        certificate is not signed by a trusted CA (mqtt.tls_ca_file, ...)
 *   TLS: hostname localhost does not match the broker's certificate
 *   TLS: sslv3 alert handshake failure; the bridge requires TLS 1.2 or later
 *
 * Paho's trace callback has no context, so the state is per process: one
 * client at a time. It relies on Paho 1.3's trace texts; should they
 * change, reasons get less precise, never wrong. Thread-safe. */
#ifndef CB_TLSDIAG_H
#define CB_TLSDIAG_H

#include <stddef.h>

/* Cipher suites up to TLS 1.2 (TLS 1.3's are set apart and all kept):
 * only those that need TLS 1.2, so that a broker offering TLS 1.1 or less
 * has none in common with us. Paho 1.3.12 on OpenSSL >= 1.1 ignores
 * sslVersion, and at the security level it sets (1) OpenSSL 3 still
 * negotiates TLS 1.1 with RSA key exchange (tests/security/test_tls.c).
 * This also drops TLS 1.2's SHA-1 CBC suites, which no current broker
 * needs. */
#define TLS_CIPHERS "DEFAULT:!SSLv3:!TLSv1.0"

/* Paho's ssl_error_cb: keeps the reason of the attempt's first error. */
int tlsdiag_ssl_error(const char *str, size_t len, void *ctx);

/* 1: trace Paho's protocol (a TLS connect is starting or Paho is about to
 * reconnect); 0: errors only (connected). */
void tlsdiag_watch(int on);

/* Forget what the last attempt told (it succeeded). */
void tlsdiag_clear(void);

/* Remove the trace callback (the client is destroyed). */
void tlsdiag_stop(void);

/* Word the TLS cause of a failed connect, given Paho's message 'why' and
 * whether a client certificate was configured, into buf; and forget the
 * attempt. 0 when nothing TLS explains it (use Paho's message then). */
int tlsdiag_reason(const char *why, int have_cert, char *buf, size_t size);

#endif
