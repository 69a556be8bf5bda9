/* mqtt.h -- the MQTT session: one Paho MQTTAsync client that connects,
 * keeps a persistent session, subscribes, hands every incoming message to
 * one handler, and publishes. Knows nothing of Redis or of the payloads.
 *
 * Threads: the handler runs on Paho's callback thread and must not wait on
 * anything slow; mqtt_publish() may be called from any thread. Paho sends
 * the PUBACK of a QoS 1 message as soon as the handler returns. */
#ifndef CB_MQTT_H
#define CB_MQTT_H

#include <stddef.h>
#include "result.h"

/* One incoming message. Pointers are valid only during the handler call;
 * response_topic and correlation are the MQTT 5 properties (NULL if absent,
 * not NUL-terminated). */
struct mqtt_in {
    const char *topic;
    size_t topic_len;
    const char *payload;
    size_t payload_len;
    const char *response_topic;
    size_t response_topic_len;
    const char *correlation;
    size_t correlation_len;
};

typedef void (*mqtt_handler)(void *arg, const struct mqtt_in *in);

struct mqtt_opts {
    const char *uri;
    const char *client_id;
    const char *username;          /* NULL: none */
    const char *password;          /* NULL: none */
    int version;                   /* 5, or 4 for MQTT 3.1.1 */
    int keepalive;                 /* seconds */
    int session_expiry;            /* seconds; 0 = clean session */
    int connect_timeout;           /* seconds */
    int qos;                       /* of the subscriptions */
    int max_buffered;              /* publishes kept while disconnected */
    const char *const *filters;    /* topic filters to subscribe */
    int nfilters;
    int nwatch;                    /* the last nwatch filters only watch
                                      (other bridges' status): QoS 0, and a
                                      refusal is logged, not fatal */
    const char *will_topic;        /* NULL: no last will */
    const char *will_payload;      /* published retained, QoS 1, if we die */
    /* TLS, for ssl:// and mqtts:// URIs (NULL: not set): */
    const char *tls_ca_file;       /* PEM CAs; with tls_ca_dir NULL too,
                                      the system's trust store */
    const char *tls_ca_dir;        /* hashed CA directory */
    const char *tls_cert_file;     /* client certificate chain */
    const char *tls_key_file;      /* its private key */
    int tls_verify_hostname;       /* 1: the certificate must name the host */
};

struct mqtt;

/* A client for these options (copied). NULL when Paho refuses them, or
 * when TLS files are given for a URI that is not TLS or a key without its
 * certificate, with the reason in err[0..errlen). Nothing is sent before
 * mqtt_start(). */
struct mqtt *mqtt_new(const struct mqtt_opts *opts, mqtt_handler handler,
                      void *arg, char *err, size_t errlen);
void mqtt_free(struct mqtt *m);

/* Begin connecting. Reconnection after a loss is automatic (Paho, with
 * backoff); a first connect that fails is retried by mqtt_tick(). */
int mqtt_start(struct mqtt *m);

/* Called about every 100 ms by the main loop: retries a failed first
 * connect with capped exponential backoff. */
void mqtt_tick(struct mqtt *m);

/* 1 when connected and every subscription was granted. */
int mqtt_ready(const struct mqtt *m);

/* How many connects succeeded so far, the first and every reconnect: a
 * change says the broker saw the connection go (and published the last
 * will) and come back. */
unsigned mqtt_connections(const struct mqtt *m);

/* The broker's Receive Maximum (MQTT 5 CONNACK): how many QoS 1 publishes
 * it takes unacknowledged at once; Paho queues beyond it. 0 while unknown
 * (not connected yet, MQTT 3.1.1, or not said). Paho tells it on a connect
 * the bridge began, not on its automatic reconnects: the last one told
 * holds. Any thread. */
int mqtt_receive_max(const struct mqtt *m);

/* Queue a publish (kept while disconnected, up to max_buffered). On MQTT 5
 * the correlation data, when given, goes out as the Correlation Data
 * property. done (result.h) may be NULL; it runs once, on Paho's thread,
 * with ok = 1 when the broker acknowledged the publish (for QoS 0: when it
 * was written), 0 when Paho gave up on it. Returns 0, or Paho's negative code (see
 * mqtt_strerror); done is then not called. */
int mqtt_publish(struct mqtt *m, const char *topic, const void *payload,
                 size_t len, int qos, int retain, const void *correlation,
                 size_t correlation_len, struct cb_done *done);

/* 1 when rc means "not now" (buffer full, disconnected): try again later. */
int mqtt_retryable(int rc);

/* Publishes Paho has accepted but not yet completed. */
int mqtt_pending(const struct mqtt *m);

/* Disconnect, giving in-flight publishes up to timeout_ms to complete. */
void mqtt_stop(struct mqtt *m, int timeout_ms);

/* Set TCP_NODELAY on the process's TCP sockets connected to the broker of
 * uri (Paho 1.3.12 has no option for it); other sockets are left alone.
 * Returns how many were set, or -1 when uri's host does not resolve.
 * Called by the module once connected; public for the tests. */
int mqtt_set_nodelay(const char *uri);

/* Paho's text for a return code. */
const char *mqtt_strerror(int rc);

#endif
