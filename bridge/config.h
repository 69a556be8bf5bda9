/* config.h -- the bridge's configuration: one struct, one table, one loader.
 *
 * The YAML file has two levels: sections (mqtt, redis, limits, retention, journal, log) holding
 * scalar keys.  config.c keeps one table of options (key, type, range,
 * default, field of struct config) and walks the YAML tree against it, so
 * there is exactly one place that knows each option.  Unknown keys, wrong
 * types and values out of range are errors carrying the YAML line.
 *
 * Errors are returned, never printed: the caller prints them (--check-config
 * prints every one and exits 2). */
#ifndef CB_CONFIG_H
#define CB_CONFIG_H

#include <stdio.h>

#define CONFIG_MAX_ERRORS 32
#define CONFIG_ERROR_LEN 256

struct config {
    /* mqtt: */
    char *mqtt_uri;          /* mqtt.uri, default tcp://127.0.0.1:1883 */
    char *mqtt_client_id;    /* mqtt.client_id, default chat-bridge */
    char *topic_prefix;      /* mqtt.topic_prefix, default chat; no + # */
    int mqtt_qos;            /* mqtt.qos 0..2, default 1 */
    int mqtt_version;        /* mqtt.version "5" -> 5 (default), "3.1.1" -> 4 */
    char *mqtt_username;     /* mqtt.username, default NULL */
    char *mqtt_password;     /* mqtt.password, or contents of mqtt.password_file */
    int mqtt_keepalive;      /* mqtt.keepalive seconds 1..65535, default 30 */
    int mqtt_session_expiry; /* mqtt.session_expiry seconds 0..., default 3600 */
    int mqtt_connect_timeout;/* mqtt.connect_timeout seconds 1..300, default 10 */
    int mqtt_max_buffered;   /* mqtt.max_buffered publishes kept while
                                disconnected, 1..1000000, default 100000 */
    int mqtt_max_inflight;   /* mqtt.max_inflight 1..65535, default 100:
                                publishes awaiting the broker's ack; over
                                MQTT 5 also kept below the broker's
                                Receive Maximum */
    char *status_topic;      /* mqtt.status_topic; "" (default):
                                <prefix>/$bridge/<client_id>/status */
    int mqtt_status_interval;/* mqtt.status_interval seconds 0..86400,
                                default 30; 0 = no status document */
    int identity;            /* mqtt.identity payload (default) | topic:
                                CONFIG_IDENTITY_* */
    char *tls_ca_file;       /* mqtt.tls_ca_file: PEM CAs; NULL = system's */
    char *tls_ca_dir;        /* mqtt.tls_ca_dir: hashed CA directory */
    char *tls_cert_file;     /* mqtt.tls_cert_file: client certificate */
    char *tls_key_file;      /* mqtt.tls_key_file: its key, not readable
                                by others */
    int tls_verify_hostname; /* mqtt.tls_verify_hostname, default true */
    char *shared_group;      /* mqtt.shared_group: subscribe through
                                $share/<group>/...; NULL (default) = off */
    /* redis: */
    char *redis_host;        /* redis.host, default 127.0.0.1 */
    int redis_port;          /* redis.port 1..65535, default 6379 */
    char *redis_unix_socket; /* redis.unix_socket: path; replaces host/port */
    int redis_cluster;       /* redis.cluster, default false: Redis Cluster,
                                keys hash-tagged by room */
    char *redis_cluster_nodes; /* redis.cluster_nodes: "HOST:PORT ..." seeds;
                                NULL = host:port */
    char *redis_sentinels;   /* redis.sentinels: "HOST:PORT ..." of Redis
                                Sentinels; NULL (default) = no Sentinel */
    char *redis_sentinel_master; /* redis.sentinel_master: the name they
                                monitor; needed with redis.sentinels */
    char *redis_sentinel_password; /* redis.sentinel_password, or contents
                                of redis.sentinel_password_file */
    int redis_wait_replicas; /* redis.wait_replicas 0..16, default 0: after
                                a batch that wrote, WAIT for this many
                                replicas of each primary written */
    int redis_wait_timeout_ms; /* redis.wait_timeout_ms 1..60000, default 1000 */
    char *redis_username;    /* redis.username: Redis 6 ACL user, NULL = default */
    char *redis_password;    /* redis.password, or contents of redis.password_file */
    char *key_prefix;        /* redis.key_prefix, default chatroom; no ':' etc. */
    int redis_timeout_ms;    /* redis.timeout_ms 100..600000, default 5000 */
    /* limits: */
    int max_text_bytes;      /* limits.max_text_bytes 1..1048576, default 4096 */
    int history_default;     /* limits.history_default 1..history_max, default 50 */
    int history_max;         /* limits.history_max 1..10000, default 200 */
    int max_reply_bytes;     /* limits.max_reply_bytes 4 KiB..16 MiB, default
                                1 MiB: a history reply holds fewer messages
                                rather than grow past it */
    int batch_size;          /* limits.batch_size 1..10000, default 256 */
    int dedup_window;        /* limits.dedup_window seconds 0..30 days, default
                                86400: a repeated client_msg_id is not stored */
    int stop_timeout_ms;     /* limits.stop_timeout_ms 0..600000, default 10000 */
    /* retention: */
    int retain_count;        /* retention.max_messages_per_room, 0 (default) = all */
    int retain_age;          /* retention.max_age seconds, 0 (default) = all */
    /* journal: */
    char *journal_dir;       /* journal.dir; "" (default): $STATE_DIRECTORY/journal
                                under systemd, else ./state/journal */
    int journal_fsync;       /* journal.fsync never|batch|always, default batch */
    int journal_fsync_ms;    /* journal.fsync_ms 1..60000, default 100 */
    int journal_max_bytes;   /* journal.max_bytes 64 KiB..2 GiB, default 256 MiB */
    int journal_segment_bytes; /* journal.segment_bytes 4 KiB..max_bytes,
                                default 16 MiB */
    /* log: */
    int log_level;           /* log.level error|warn|info|debug, default info */
    int status_interval;     /* log.status_interval seconds 0..86400, default
                                60: a status line in the log; 0 = off */
};

enum config_identity {
    CONFIG_IDENTITY_PAYLOAD = 0,   /* the sender is the payload's "user" */
    CONFIG_IDENTITY_TOPIC = 1      /* the sender is the topic's last level */
};

struct config_errors {
    int count;               /* number of errors found (may exceed the array) */
    char msg[CONFIG_MAX_ERRORS][CONFIG_ERROR_LEN]; /* "FILE:LINE: key: why" */
};

/* Fill every field with its default (strings are heap copies). 0 or -1 (OOM). */
int config_defaults(struct config *c);

/* Load and validate a YAML file into c (defaults first, then the file).
 * Returns 0 when valid; -1 with errs filled otherwise (c is then still
 * safe to config_free). A missing or unreadable file is an error too. */
int config_load(struct config *c, const char *path, struct config_errors *errs);

/* Same as config_load on a buffer; 'name' stands for the file in messages. */
int config_load_buffer(struct config *c, const char *buf, size_t len,
                       const char *name, struct config_errors *errs);

/* Free the strings of c (not c itself). Safe on a zeroed struct. */
void config_free(struct config *c);

/* 1 when b differs from a in an option a reload cannot apply in place
 * (addresses, credentials, prefixes, journal...): the bridge must then be
 * restarted on b. Live options are the limits, log level and intervals. */
int config_needs_restart(const struct config *a, const struct config *b);

/* Write the effective configuration as "section.key = value" lines,
 * secrets shown as "(set)". */
void config_dump(const struct config *c, FILE *out);

#endif
