/* mqtt.c -- the MQTT session over Paho MQTTAsync (see mqtt.h).
 *
 * Paho runs every callback on its own thread. Our state shared with other
 * threads is a few atomics, and the failure log under fails_lock;
 * no lock of ours is ever held across a Paho call, since Paho's own lock is
 * taken both by its callbacks and by calls.
 *
 * TLS (ssl://, mqtts://, wss://): the broker's certificate is always
 * verified, its name unless tls_verify_hostname is 0, and TLS 1.2 is the
 * least version. tlsdiag.c says why a TLS connect failed. */
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <MQTTAsync.h>

#include "clock.h"
#include "log.h"
#include "mqtt.h"
#include "tlsdiag.h"

#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 30000
#define NSTRINGS 10
#define REASON_LEN 512
#define FAIL_SLOTS 4               /* distinct failure reasons remembered */
#define FAIL_RELOG_S 600           /* a reason is logged again after this */

/* A failure reason and when it was last logged. */
struct fail_seen {
    char reason[REASON_LEN];
    uint64_t logged_us;            /* clock_mono_us() when last logged */
    unsigned long repeats;         /* attempts failing so since then */
};

struct mqtt {
    MQTTAsync client;
    struct mqtt_opts opts;         /* strings point into the owned copies */
    char *strings[NSTRINGS];       /* uri, client_id, username, password,
                                      will topic, will payload, TLS CA file,
                                      CA dir, certificate, key */
    int tls;                       /* the URI is TLS */
    char **filters;
    int *qoss;
    mqtt_handler handler;
    void *arg;
    int ready;                     /* atomic: connected and subscribed */
    unsigned connections;          /* atomic: connects that succeeded */
    int receive_max;               /* atomic: the broker's, 0 unknown */
    int connecting;                /* atomic: a connect is in progress */
    int need_connect;              /* atomic: first connect failed, retry */
    long retry_ms;                 /* current backoff (main thread only) */
    struct timespec retry_at;      /* monotonic; tv_sec 0: none planned */
    pthread_mutex_t stop_lock;     /* mqtt_stop waits for the disconnect */
    pthread_cond_t stopped;
    int disconnected;              /* under stop_lock */
    struct fail_seen fails[FAIL_SLOTS]; /* under fails_lock; cleared once
                                           connected */
};

static pthread_mutex_t fails_lock = PTHREAD_MUTEX_INITIALIZER;

static int uri_is_tls(const char *uri) {
    return strncmp(uri, "ssl://", 6) == 0 || strncmp(uri, "mqtts://", 8) == 0 ||
           strncmp(uri, "wss://", 6) == 0;
}

/* ==================== Callbacks (Paho's thread) ==================== */

/* Paho 1.3.12 fills alt.sub.reasonCodes only for two or more filters (with
 * one, the pointer is left uninitialised and the code is in reasonCode). */
static void on_subscribe(void *ctx, MQTTAsync_successData5 *resp) {
    struct mqtt *m = ctx;
    for (int i = 0; resp->alt.sub.reasonCodeCount > 1 &&
                    i < resp->alt.sub.reasonCodeCount; i++) {
        if (resp->alt.sub.reasonCodes[i] < 0x80) continue;
        if (i >= m->opts.nfilters - m->opts.nwatch) {
            log_warn("mqtt: subscription to %s refused (reason 0x%02x): other "
                     "bridges go unseen", m->filters[i], resp->alt.sub.reasonCodes[i]);
            continue;
        }
        log_error("mqtt: subscription to %s refused (reason 0x%02x)",
                  m->filters[i], resp->alt.sub.reasonCodes[i]);
        return;
    }
    if (resp->alt.sub.reasonCodeCount <= 1 && resp->reasonCode >= 0x80) {
        log_error("mqtt: subscription refused (reason 0x%02x)", resp->reasonCode);
        return;
    }
    __atomic_store_n(&m->ready, 1, __ATOMIC_RELEASE);
    log_info("mqtt: subscribed to %d topics", m->opts.nfilters);
}

static void on_subscribe3(void *ctx, MQTTAsync_successData *resp) {
    struct mqtt *m = ctx;
    (void)resp;
    __atomic_store_n(&m->ready, 1, __ATOMIC_RELEASE);
    log_info("mqtt: subscribed to %d topics", m->opts.nfilters);
}

static void on_subscribe_fail5(void *ctx, MQTTAsync_failureData5 *resp) {
    (void)ctx;
    log_error("mqtt: subscribe failed: %s", resp->message ? resp->message :
              MQTTAsync_strerror(resp->code));
}

static void on_subscribe_fail(void *ctx, MQTTAsync_failureData *resp) {
    (void)ctx;
    log_error("mqtt: subscribe failed: %s", resp->message ? resp->message :
              MQTTAsync_strerror(resp->code));
}

/* Split a broker URI ("tcp://host:port", "ssl://[::1]:8883", "ws://h/p")
 * into host and port, the scheme's default port when none is given.
 * 0, or -1 when it does not parse. */
static int uri_host_port(const char *uri, char *host, size_t hostlen, int *port) {
    const char *p = strstr(uri, "://");
    int tls = uri_is_tls(uri), ws = strncmp(uri, "ws", 2) == 0;
    p = p ? p + 3 : uri;
    size_t n = *p == '[' ? strcspn(p, "]") + 1 : strcspn(p, ":/");
    if (n == 0 || n >= hostlen || (*p == '[' && p[n - 1] != ']')) return -1;
    snprintf(host, hostlen, "%.*s", (int)(*p == '[' ? n - 2 : n), *p == '[' ? p + 1 : p);
    *port = p[n] == ':' ? atoi(p + n + 1) : ws ? (tls ? 443 : 80) : (tls ? 8883 : 1883);
    return *port > 0 && *port < 65536 ? 0 : -1;
}

/* 1 when fd is a TCP socket whose peer is one of the addresses of ai. */
static int peer_is(int fd, const struct addrinfo *ai) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) return 0;
    for (; ai; ai = ai->ai_next) {
        if (ai->ai_family != ss.ss_family) continue;
        if (ai->ai_family == AF_INET &&
            memcmp(ai->ai_addr, &ss, sizeof(struct sockaddr_in)) == 0) return 1;
        if (ai->ai_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const void *)ai->ai_addr, *b = (const void *)&ss;
            if (a->sin6_port == b->sin6_port &&
                memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0) return 1;
        }
    }
    return 0;
}

/* Paho 1.3.12 cannot set TCP_NODELAY (a later Paho added the option), and
 * without it every small publish waits for the broker's delayed ACK: about
 * 40 ms per republish or reply at low rates. Paho does not give its
 * socket, so once connected the bridge looks for it: the process's TCP
 * sockets connected to the broker's address and port. Other sockets
 * (Redis, anything a library opened) are left as they are. */
int mqtt_set_nodelay(const char *uri) {
    char host[256], portstr[8];
    int port, one = 1, n = 0;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
    if (uri_host_port(uri, host, sizeof(host), &port) < 0) return -1;
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(host, portstr, &hints, &ai) != 0) return -1;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (fd > 2 && fd != dirfd(d) && peer_is(fd, ai) &&
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
            n++;
    }
    if (d) closedir(d);
    freeaddrinfo(ai);
    return n;
}

/* ==================== Why a connect failed (Paho's thread) ==================== */

/* The slot remembering reason, or the one to reuse for it (empty or the
 * least recently logged); 1 if reason was there. Under fails_lock. */
static int fail_slot(struct mqtt *m, const char *reason, struct fail_seen **slot) {
    struct fail_seen *f = &m->fails[0];
    for (int i = 0; i < FAIL_SLOTS; i++) {
        struct fail_seen *g = &m->fails[i];
        if (g->reason[0] && strcmp(g->reason, reason) == 0) {
            *slot = g;
            return 1;
        }
        if (f->reason[0] && (g->reason[0] == '\0' || g->logged_us < f->logged_us))
            f = g;
    }
    *slot = f;
    return 0;
}

/* Log a failed connect: at warn level the first time its reason is seen
 * since the last connection, then again only every FAIL_RELOG_S with the
 * count of failures in between (each one at debug level), so that a
 * broker we cannot verify does not flood the log at every retry. */
static void log_connect_fail(struct mqtt *m, const char *reason) {
    struct fail_seen *f;
    unsigned long repeats = 0;
    int warn = 1;
    pthread_mutex_lock(&fails_lock);
    if (!fail_slot(m, reason, &f)) {
        snprintf(f->reason, sizeof(f->reason), "%s", reason);
        f->repeats = 0;
    } else if (clock_mono_us() - f->logged_us < FAIL_RELOG_S * 1000000ull) {
        f->repeats++;
        warn = 0;
    } else {
        repeats = f->repeats;
        f->repeats = 0;
    }
    if (warn) f->logged_us = clock_mono_us();
    pthread_mutex_unlock(&fails_lock);
    if (!warn)
        log_debug("mqtt: cannot connect to %s: %s", m->opts.uri, reason);
    else if (repeats)
        log_warn("mqtt: cannot connect to %s: %s (%lu more failures since "
                 "last said)", m->opts.uri, reason, repeats);
    else
        log_warn("mqtt: cannot connect to %s: %s", m->opts.uri, reason);
}

/* ==================== Session callbacks (Paho's thread) ==================== */

/* Connected, first time or after an automatic reconnect: (re)subscribe.
 * With a persistent session the broker may still hold the subscriptions;
 * subscribing again is harmless and covers a lost session. A later failure
 * is news again; the protocol trace is not needed until then. */
static void on_connected(void *ctx, char *cause) {
    struct mqtt *m = ctx;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    __atomic_store_n(&m->connecting, 0, __ATOMIC_RELEASE);
    __atomic_add_fetch(&m->connections, 1, __ATOMIC_RELEASE);
    (void)cause;      /* Paho says "automatic reconnect" even the first time */
    log_info("mqtt: connected to %s", m->opts.uri);
    pthread_mutex_lock(&fails_lock);
    memset(m->fails, 0, sizeof(m->fails));
    pthread_mutex_unlock(&fails_lock);
    if (m->tls) {
        tlsdiag_clear();
        tlsdiag_watch(0);
    }
    mqtt_set_nodelay(m->opts.uri);
    ro.context = m;
    if (m->opts.version >= 5) {
        ro.onSuccess5 = on_subscribe;
        ro.onFailure5 = on_subscribe_fail5;
    } else {
        ro.onSuccess = on_subscribe3;
        ro.onFailure = on_subscribe_fail;
    }
    int rc = MQTTAsync_subscribeMany(m->client, m->opts.nfilters, m->filters,
                                     m->qoss, &ro);
    if (rc != MQTTASYNC_SUCCESS)
        log_error("mqtt: subscribe: %s", MQTTAsync_strerror(rc));
}

/* A connect failed: say why (once), and have mqtt_tick() retry. */
static void connect_failed(struct mqtt *m, const char *reason) {
    log_connect_fail(m, reason);
    __atomic_store_n(&m->connecting, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&m->need_connect, 1, __ATOMIC_RELEASE);
}

/* MQTT 5 connect done: keep the broker's Receive Maximum (the publish
 * window must not pass it). on_connected does the rest. */
static void on_connect5(void *ctx, MQTTAsync_successData5 *resp) {
    struct mqtt *m = ctx;
    int rm = 0;
    if (resp && MQTTProperties_hasProperty(&resp->properties,
                                           MQTTPROPERTY_CODE_RECEIVE_MAXIMUM))
        rm = MQTTProperties_getNumericValue(&resp->properties,
                                            MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
    __atomic_store_n(&m->receive_max, rm > 0 ? rm : 0, __ATOMIC_RELEASE);
    if (rm > 0) log_info("mqtt: the broker takes %d publishes in flight (Receive Maximum)", rm);
}

/* Paho's failure callbacks: its message, or in TLS terms what caused it. */
static void on_connect_fail_common(struct mqtt *m, const char *why) {
    char reason[REASON_LEN];
    if (!m->tls || !tlsdiag_reason(why, m->opts.tls_cert_file != NULL, reason,
                                   sizeof(reason)))
        snprintf(reason, sizeof(reason), "%s", why);
    connect_failed(m, reason);
}

static void on_connect_fail5(void *ctx, MQTTAsync_failureData5 *resp) {
    on_connect_fail_common(ctx, resp->message ? resp->message :
                           MQTTAsync_strerror(resp->code));
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *resp) {
    on_connect_fail_common(ctx, resp->message ? resp->message :
                           MQTTAsync_strerror(resp->code));
}

/* Paho reconnects by itself; trace its attempts to explain a failure. */
static void on_connection_lost(void *ctx, char *cause) {
    struct mqtt *m = ctx;
    __atomic_store_n(&m->ready, 0, __ATOMIC_RELEASE);
    if (m->tls) tlsdiag_watch(1);
    log_warn("mqtt: connection lost%s%s; reconnecting", cause ? ": " : "",
             cause ? cause : "");
}

/* Find a binary property (Response Topic, Correlation Data) of a message. */
static void get_prop(MQTTProperties *props, enum MQTTPropertyCodes code,
                     const char **data, size_t *len) {
    MQTTProperty *p = MQTTProperties_getProperty(props, code);
    *data = p ? p->value.data.data : NULL;
    *len = p ? (size_t)p->value.data.len : 0;
}

/* Hand the message to the handler, then free it. Returning 1 tells Paho
 * the message was taken; its PUBACK goes out now. */
static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg) {
    struct mqtt *m = ctx;
    struct mqtt_in in = {
        .topic = topic,
        .topic_len = topic_len > 0 ? (size_t)topic_len : strlen(topic),
        .payload = msg->payload,
        .payload_len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0,
    };
    get_prop(&msg->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC,
             &in.response_topic, &in.response_topic_len);
    get_prop(&msg->properties, MQTTPROPERTY_CODE_CORRELATION_DATA,
             &in.correlation, &in.correlation_len);
    m->handler(m->arg, &in);
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    return 1;
}

/* ==================== Lifecycle ==================== */

/* Keep our own copies of the option strings: the caller's config may be
 * replaced while the client lives. */
static int mqtt_copy_opts(struct mqtt *m, const struct mqtt_opts *o) {
    const char *src[NSTRINGS] = { o->uri, o->client_id, o->username, o->password,
                                  o->will_topic, o->will_payload, o->tls_ca_file,
                                  o->tls_ca_dir, o->tls_cert_file, o->tls_key_file };
    m->opts = *o;
    for (int i = 0; i < NSTRINGS; i++)
        if (src[i] && (m->strings[i] = strdup(src[i])) == NULL) return -1;
    m->opts.uri = m->strings[0];
    m->opts.client_id = m->strings[1];
    m->opts.username = m->strings[2];
    m->opts.password = m->strings[3];
    m->opts.will_topic = m->strings[4];
    m->opts.will_payload = m->strings[5];
    m->opts.tls_ca_file = m->strings[6];
    m->opts.tls_ca_dir = m->strings[7];
    m->opts.tls_cert_file = m->strings[8];
    m->opts.tls_key_file = m->strings[9];
    m->filters = calloc((size_t)o->nfilters, sizeof(char *));
    m->qoss = calloc((size_t)o->nfilters, sizeof(int));
    if (m->filters == NULL || m->qoss == NULL) return -1;
    for (int i = 0; i < o->nfilters; i++) {
        if ((m->filters[i] = strdup(o->filters[i])) == NULL) return -1;
        m->qoss[i] = i >= o->nfilters - o->nwatch ? 0 : o->qos;
    }
    m->opts.filters = (const char *const *)m->filters;
    return 0;
}

/* Create the Paho client: no Paho persistence, publishes buffered while
 * disconnected (even before the first connect), oldest never dropped. */
static int mqtt_create(struct mqtt *m, char *err, size_t errlen) {
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
    co.MQTTVersion = m->opts.version >= 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
    co.sendWhileDisconnected = 1;
    co.allowDisconnectedSendAtAnyTime = 1;
    co.maxBufferedMessages = m->opts.max_buffered;
    co.deleteOldestMessages = 0;
    int rc = MQTTAsync_createWithOptions(&m->client, m->opts.uri, m->opts.client_id,
                                         MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
    if (rc == MQTTASYNC_SUCCESS)
        rc = MQTTAsync_setCallbacks(m->client, m, on_connection_lost, on_message, NULL);
    if (rc == MQTTASYNC_SUCCESS)
        rc = MQTTAsync_setConnected(m->client, m, on_connected);
    if (rc != MQTTASYNC_SUCCESS) {
        snprintf(err, errlen, "mqtt %s: %s", m->opts.uri, MQTTAsync_strerror(rc));
        return -1;
    }
    return 0;
}

/* TLS options with a URI that is not TLS would be ignored, and whoever
 * set them expects an encrypted connection to a verified broker: refuse
 * them, as a key without its certificate, which Paho would ignore too. */
static int mqtt_check_tls(const struct mqtt_opts *o, char *err, size_t errlen) {
    if (!uri_is_tls(o->uri) && (o->tls_ca_file || o->tls_ca_dir ||
                                o->tls_cert_file || o->tls_key_file)) {
        snprintf(err, errlen, "mqtt.uri %s is not TLS (ssl://, mqtts:// or wss://) "
                 "but mqtt.tls_* options are set", o->uri);
        return -1;
    }
    if (o->tls_key_file && o->tls_cert_file == NULL) {
        snprintf(err, errlen, "mqtt.tls_key_file is set without mqtt.tls_cert_file");
        return -1;
    }
    return 0;
}

struct mqtt *mqtt_new(const struct mqtt_opts *opts, mqtt_handler handler,
                      void *arg, char *err, size_t errlen) {
    if (mqtt_check_tls(opts, err, errlen) < 0) return NULL;
    struct mqtt *m = calloc(1, sizeof(*m));
    snprintf(err, errlen, "out of memory");
    if (m == NULL) return NULL;
    m->handler = handler;
    m->arg = arg;
    m->retry_ms = RETRY_MIN_MS;
    m->tls = uri_is_tls(opts->uri);
    pthread_mutex_init(&m->stop_lock, NULL);
    clock_cond_init(&m->stopped);
    if (mqtt_copy_opts(m, opts) < 0 || mqtt_create(m, err, errlen) < 0) {
        mqtt_free(m);
        return NULL;
    }
    return m;
}

void mqtt_free(struct mqtt *m) {
    if (m == NULL) return;
    if (m->client) MQTTAsync_destroy(&m->client);
    if (m->tls) tlsdiag_stop();
    for (int i = 0; i < NSTRINGS; i++) free(m->strings[i]);
    for (int i = 0; m->filters && i < m->opts.nfilters; i++) free(m->filters[i]);
    free(m->filters);
    free(m->qoss);
    pthread_mutex_destroy(&m->stop_lock);
    pthread_cond_destroy(&m->stopped);
    free(m);
}

/* ==================== Connecting ==================== */

/* The TLS options: the broker's certificate verified against tls_ca_file
 * and tls_ca_dir (neither: the system's CAs), its name checked unless
 * tls_verify_hostname is 0, our certificate if any, TLS 1.2 or later; and
 * the callback that keeps OpenSSL's reasons. Paho copies the strings. */
static void mqtt_ssl_opts(const struct mqtt *m, MQTTAsync_SSLOptions *ssl) {
    ssl->trustStore = m->opts.tls_ca_file;
    ssl->CApath = m->opts.tls_ca_dir;
    ssl->keyStore = m->opts.tls_cert_file;
    ssl->privateKey = m->opts.tls_key_file;
    ssl->enableServerCertAuth = 1;
    ssl->verify = m->opts.tls_verify_hostname != 0;
    ssl->sslVersion = MQTT_SSL_VERSION_TLS_1_2;
    ssl->enabledCipherSuites = TLS_CIPHERS;
    ssl->ssl_error_cb = tlsdiag_ssl_error;
}

/* Fill the version-specific half of the connect options: a persistent
 * session unless session_expiry is 0, and the failure callback. */
static void mqtt_connect_version(struct mqtt *m, MQTTAsync_connectOptions *co,
                                 MQTTProperties *props) {
    if (m->opts.version >= 5) {
        MQTTProperty p = { .identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL };
        p.value.integer4 = (unsigned int)m->opts.session_expiry;
        MQTTProperties_add(props, &p);
        co->connectProperties = props;
        co->cleanstart = m->opts.session_expiry == 0;
        co->onSuccess5 = on_connect5;
        co->onFailure5 = on_connect_fail5;
    } else {
        co->cleansession = m->opts.session_expiry == 0;
        co->onFailure = on_connect_fail;
    }
}

static int mqtt_connect(struct mqtt *m) {
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    MQTTAsync_connectOptions co5 = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    MQTTProperties props = MQTTProperties_initializer;
    if (m->opts.version >= 5) co = co5;
    co.keepAliveInterval = m->opts.keepalive;
    co.connectTimeout = m->opts.connect_timeout;
    co.automaticReconnect = 1;
    co.minRetryInterval = 1;
    co.maxRetryInterval = RETRY_MAX_MS / 1000;
    co.username = m->opts.username;
    co.password = m->opts.password;
    co.context = m;
    if (m->tls) {
        mqtt_ssl_opts(m, &ssl);
        co.ssl = &ssl;
        tlsdiag_watch(1);
    }
    if (m->opts.will_topic && m->opts.will_payload) {
        will.topicName = m->opts.will_topic;
        will.message = m->opts.will_payload;
        will.retained = 1;
        will.qos = 1;
        co.will = &will;
    }
    mqtt_connect_version(m, &co, &props);
    __atomic_store_n(&m->connecting, 1, __ATOMIC_RELEASE);
    int rc = MQTTAsync_connect(m->client, &co);
    MQTTProperties_free(&props);
    if (rc != MQTTASYNC_SUCCESS) {
        connect_failed(m, MQTTAsync_strerror(rc));
        return -1;
    }
    return 0;
}

int mqtt_start(struct mqtt *m) {
    return mqtt_connect(m);
}

/* Retry a failed first connect (Paho reconnects by itself only after a
 * connection that once succeeded), doubling the wait up to RETRY_MAX_MS
 * with jitter so that many bridges do not retry in step. */
void mqtt_tick(struct mqtt *m) {
    if (mqtt_ready(m)) m->retry_ms = RETRY_MIN_MS;
    if (!__atomic_load_n(&m->need_connect, __ATOMIC_ACQUIRE)) return;
    if (m->retry_at.tv_sec == 0) {
        long wait = m->retry_ms / 2 + rand() % (m->retry_ms / 2 + 1);
        m->retry_at = clock_deadline(wait);
        m->retry_ms = m->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : m->retry_ms * 2;
        return;
    }
    if (!clock_passed(&m->retry_at)) return;
    m->retry_at.tv_sec = 0;
    __atomic_store_n(&m->need_connect, 0, __ATOMIC_RELEASE);
    mqtt_connect(m);
}

int mqtt_ready(const struct mqtt *m) {
    return __atomic_load_n(&m->ready, __ATOMIC_ACQUIRE);
}

int mqtt_receive_max(const struct mqtt *m) {
    return __atomic_load_n(&m->receive_max, __ATOMIC_ACQUIRE);
}

unsigned mqtt_connections(const struct mqtt *m) {
    return __atomic_load_n(&m->connections, __ATOMIC_ACQUIRE);
}

/* ==================== Publishing ==================== */

static void on_published5(void *ctx, MQTTAsync_successData5 *resp) {
    struct cb_done *d = ctx;
    (void)resp;
    d->fn(d, 1);
}

static void on_publish_fail5(void *ctx, MQTTAsync_failureData5 *resp) {
    struct cb_done *d = ctx;
    (void)resp;
    d->fn(d, 0);
}

static void on_published(void *ctx, MQTTAsync_successData *resp) {
    struct cb_done *d = ctx;
    (void)resp;
    d->fn(d, 1);
}

static void on_publish_fail(void *ctx, MQTTAsync_failureData *resp) {
    struct cb_done *d = ctx;
    (void)resp;
    d->fn(d, 0);
}

/* Point the response options at the completion callbacks of the version. */
static void set_done(const struct mqtt *m, MQTTAsync_responseOptions *ro,
                     struct cb_done *done) {
    ro->context = done;
    if (done == NULL) return;
    if (m->opts.version >= 5) {
        ro->onSuccess5 = on_published5;
        ro->onFailure5 = on_publish_fail5;
    } else {
        ro->onSuccess = on_published;
        ro->onFailure = on_publish_fail;
    }
}

int mqtt_publish(struct mqtt *m, const char *topic, const void *payload,
                 size_t len, int qos, int retain, const void *correlation,
                 size_t correlation_len, struct cb_done *done) {
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    MQTTAsync_responseOptions *rop = done ? &ro : NULL;
    set_done(m, &ro, done);
    if (m->opts.version >= 5) {
        /* Paho 1.3 takes MQTT 5 publish properties from the response
         * options only; the message's own properties are ignored. */
        if (correlation) {
            MQTTProperty p = { .identifier = MQTTPROPERTY_CODE_CORRELATION_DATA };
            p.value.data.data = (char *)correlation;
            p.value.data.len = (int)correlation_len;
            if (MQTTProperties_add(&ro.properties, &p) != 0) return MQTTASYNC_FAILURE;
        }
        rop = &ro;
    }
    int rc = MQTTAsync_send(m->client, topic, (int)len, payload, qos, retain, rop);
    MQTTProperties_free(&ro.properties);
    return rc;
}

int mqtt_pending(const struct mqtt *m) {
    MQTTAsync_token *tokens = NULL;
    int n = 0;
    if (MQTTAsync_getPendingTokens(m->client, &tokens) == MQTTASYNC_SUCCESS && tokens) {
        while (tokens[n] != -1) n++;
        MQTTAsync_free(tokens);
    }
    return n;
}

/* Disconnect cleanly, letting Paho finish in-flight publishes first. */
/* The disconnect finished (either way): wake mqtt_stop. */
static void stop_done(struct mqtt *m) {
    pthread_mutex_lock(&m->stop_lock);
    m->disconnected = 1;
    pthread_cond_broadcast(&m->stopped);
    pthread_mutex_unlock(&m->stop_lock);
}

static void on_disconnect(void *ctx, MQTTAsync_successData *r) { (void)r; stop_done(ctx); }
static void on_disconnect_fail(void *ctx, MQTTAsync_failureData *r) { (void)r; stop_done(ctx); }
static void on_disconnect5(void *ctx, MQTTAsync_successData5 *r) { (void)r; stop_done(ctx); }
static void on_disconnect_fail5(void *ctx, MQTTAsync_failureData5 *r) { (void)r; stop_done(ctx); }

void mqtt_stop(struct mqtt *m, int timeout_ms) {
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
    MQTTAsync_disconnectOptions d5 = MQTTAsync_disconnectOptions_initializer5;
    if (m->opts.version >= 5) {
        d = d5;
        d.onSuccess5 = on_disconnect5;
        d.onFailure5 = on_disconnect_fail5;
    } else {
        d.onSuccess = on_disconnect;
        d.onFailure = on_disconnect_fail;
    }
    d.context = m;
    d.timeout = timeout_ms;
    __atomic_store_n(&m->ready, 0, __ATOMIC_RELEASE);
    if (!MQTTAsync_isConnected(m->client) ||
        MQTTAsync_disconnect(m->client, &d) != MQTTASYNC_SUCCESS)
        return;
    struct timespec until = clock_deadline(timeout_ms + 100);
    pthread_mutex_lock(&m->stop_lock);
    while (!m->disconnected && !clock_cond_wait(&m->stopped, &m->stop_lock, &until))
        ;
    pthread_mutex_unlock(&m->stop_lock);
}

int mqtt_retryable(int rc) {
    return rc == MQTTASYNC_MAX_BUFFERED_MESSAGES || rc == MQTTASYNC_DISCONNECTED ||
           rc == MQTTASYNC_NO_MORE_MSGIDS;
}

const char *mqtt_strerror(int rc) {
    return MQTTAsync_strerror(rc);
}
