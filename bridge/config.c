/* config.c -- load and validate the bridge's YAML configuration.
 *
 * Every option lives in one static table below: its key as written in the
 * file ("mqtt.uri"), its type, its range, its default and the offset of the
 * field of struct config that holds it. config_defaults(), the loader,
 * config_free() and config_dump() all walk that table, so adding an option
 * means adding one row.
 *
 * The file is parsed with libyaml's document API (yaml_parser_load) and the
 * resulting tree, two levels deep (section -> key -> scalar), is walked
 * against the table. Every problem found becomes one "FILE:LINE: key: why"
 * entry in struct config_errors; the walk goes on after an error so that
 * --check-config can show all of them at once. Nothing here prints. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "config.h"
#include "journal.h"
#include "log.h"
#include "rnode.h"
#include "sentinel.h"

#define CONFIG_FILE_MAX (1024 * 1024)  /* largest config file we read */
#define SECRET_FILE_MAX 4096           /* largest password_file we read */
#define KEY_PREFIX_MAX 64              /* redis.key_prefix, in bytes */
#define OPTION_KEY_MAX 128             /* "section.key" buffer */
#define VALUE_SHOWN_MAX 40             /* bytes of a bad value quoted back */

enum opt_type {
    OPT_STRING,   /* heap string; may have a check function */
    OPT_SECRET,   /* heap string never printed (passwords) */
    OPT_FILE,     /* path whose contents go into the OPT_SECRET at 'off' */
    OPT_INT,      /* int within [min, max] */
    OPT_ENUM      /* a name turned into an int by en->parse */
};

/* Names accepted by an OPT_ENUM option and the way back for config_dump. */
struct enum_def {
    int (*parse)(const char *name);   /* -1 for an unknown name */
    const char *(*name)(int value);
    const char *choices;              /* shown in the error message */
};

struct option {
    const char *key;          /* "section.key" as written in the file */
    enum opt_type type;
    long long min, max;       /* OPT_INT range */
    long long def;            /* OPT_INT and OPT_ENUM default */
    const char *def_str;      /* OPT_STRING and OPT_SECRET default or NULL */
    size_t off;               /* offsetof(struct config, field) */
    const char *(*check)(const char *s); /* NULL or the reason s is bad */
    const struct enum_def *en;           /* OPT_ENUM only */
    int live;                 /* 1: a reload applies it without reconnecting */
};

static const char *check_nonempty(const char *s);
static const char *check_uri(const char *s);
static const char *check_topic_prefix(const char *s);
static const char *check_key_prefix(const char *s);
static const char *check_readable(const char *s);
static const char *check_group(const char *s);
static const char *check_socket_path(const char *s);
static const char *check_nodes(const char *s);
static const char *check_sentinels(const char *s);
static const char *check_master_name(const char *s);
static const char *check_private(const char *s);
static int version_parse(const char *name);
static const char *version_name(int value);
static int identity_parse(const char *name);
static const char *identity_name(int value);
static int bool_parse(const char *name);
static const char *bool_name(int value);

static const struct enum_def version_enum = {
    version_parse, version_name, "5, 3.1.1"
};
static const struct enum_def identity_enum = {
    identity_parse, identity_name, "payload, topic"
};
static const struct enum_def bool_enum = {
    bool_parse, bool_name, "true, false"
};
static const struct enum_def level_enum = {
    log_level_parse, log_level_name, "error, warn, info, debug"
};
static const struct enum_def fsync_enum = {
    journal_fsync_parse, journal_fsync_name, "never, batch, always"
};

#define F(field) offsetof(struct config, field)
#define STR(k, field, def, chk) { k, OPT_STRING, 0, 0, 0, def, F(field), chk, NULL, 0 }
#define SECRET(k, field) { k, OPT_SECRET, 0, 0, 0, NULL, F(field), NULL, NULL, 0 }
#define SFILE(k, field) { k, OPT_FILE, 0, 0, 0, NULL, F(field), NULL, NULL, 0 }
#define INT(k, field, lo, hi, def) { k, OPT_INT, lo, hi, def, NULL, F(field), NULL, NULL, 0 }
#define ENUM(k, field, en, def) { k, OPT_ENUM, 0, 0, def, NULL, F(field), NULL, en, 0 }
#define LIVE_INT(k, field, lo, hi, def) { k, OPT_INT, lo, hi, def, NULL, F(field), NULL, NULL, 1 }
#define LIVE_ENUM(k, field, en, def) { k, OPT_ENUM, 0, 0, def, NULL, F(field), NULL, en, 1 }

static const struct option options[] = {
    STR("mqtt.uri", mqtt_uri, "tcp://127.0.0.1:1883", check_uri),
    STR("mqtt.client_id", mqtt_client_id, "chat-bridge", check_nonempty),
    STR("mqtt.topic_prefix", topic_prefix, "chat", check_topic_prefix),
    INT("mqtt.qos", mqtt_qos, 0, 2, 1),
    ENUM("mqtt.version", mqtt_version, &version_enum, 5),
    STR("mqtt.username", mqtt_username, NULL, NULL),
    SECRET("mqtt.password", mqtt_password),
    SFILE("mqtt.password_file", mqtt_password),
    INT("mqtt.keepalive", mqtt_keepalive, 1, 65535, 30),
    INT("mqtt.session_expiry", mqtt_session_expiry, 0, INT_MAX, 3600),
    INT("mqtt.connect_timeout", mqtt_connect_timeout, 1, 300, 10),
    INT("mqtt.max_buffered", mqtt_max_buffered, 1, 1000000, 100000),
    INT("mqtt.max_inflight", mqtt_max_inflight, 1, 65535, 100),
    STR("mqtt.status_topic", status_topic, "", NULL),
    LIVE_INT("mqtt.status_interval", mqtt_status_interval, 0, 86400, 30),
    ENUM("mqtt.identity", identity, &identity_enum, CONFIG_IDENTITY_PAYLOAD),
    STR("mqtt.tls_ca_file", tls_ca_file, NULL, check_readable),
    STR("mqtt.tls_ca_dir", tls_ca_dir, NULL, check_readable),
    STR("mqtt.tls_cert_file", tls_cert_file, NULL, check_readable),
    STR("mqtt.tls_key_file", tls_key_file, NULL, check_private),
    ENUM("mqtt.tls_verify_hostname", tls_verify_hostname, &bool_enum, 1),
    STR("mqtt.shared_group", shared_group, NULL, check_group),
    STR("redis.host", redis_host, "127.0.0.1", check_nonempty),
    INT("redis.port", redis_port, 1, 65535, 6379),
    STR("redis.unix_socket", redis_unix_socket, NULL, check_socket_path),
    ENUM("redis.cluster", redis_cluster, &bool_enum, 0),
    STR("redis.cluster_nodes", redis_cluster_nodes, NULL, check_nodes),
    STR("redis.sentinels", redis_sentinels, NULL, check_sentinels),
    STR("redis.sentinel_master", redis_sentinel_master, NULL, check_master_name),
    SECRET("redis.sentinel_password", redis_sentinel_password),
    SFILE("redis.sentinel_password_file", redis_sentinel_password),
    INT("redis.wait_replicas", redis_wait_replicas, 0, 16, 0),
    INT("redis.wait_timeout_ms", redis_wait_timeout_ms, 1, 60000, 1000),
    STR("redis.username", redis_username, NULL, check_nonempty),
    SECRET("redis.password", redis_password),
    SFILE("redis.password_file", redis_password),
    STR("redis.key_prefix", key_prefix, "chatroom", check_key_prefix),
    INT("redis.timeout_ms", redis_timeout_ms, 100, 600000, 5000),
    LIVE_INT("limits.max_text_bytes", max_text_bytes, 1, 1048576, 4096),
    LIVE_INT("limits.history_default", history_default, 1, 10000, 50),
    LIVE_INT("limits.history_max", history_max, 1, 10000, 200),
    LIVE_INT("limits.max_reply_bytes", max_reply_bytes, 4096, 16777216, 1048576),
    INT("limits.batch_size", batch_size, 1, 10000, 256),
    INT("limits.dedup_window", dedup_window, 0, 2592000, 86400),
    LIVE_INT("limits.stop_timeout_ms", stop_timeout_ms, 0, 600000, 10000),
    INT("retention.max_messages_per_room", retain_count, 0, INT_MAX, 0),
    INT("retention.max_age", retain_age, 0, INT_MAX, 0),
    STR("journal.dir", journal_dir, "", NULL),
    ENUM("journal.fsync", journal_fsync, &fsync_enum, JOURNAL_FSYNC_BATCH),
    INT("journal.fsync_ms", journal_fsync_ms, 1, 60000, 100),
    INT("journal.max_bytes", journal_max_bytes, 65536, INT_MAX, 268435456),
    INT("journal.segment_bytes", journal_segment_bytes, 4096, INT_MAX, 16777216),
    LIVE_ENUM("log.level", log_level, &level_enum, LOG_LEVEL_INFO),
    LIVE_INT("log.status_interval", status_interval, 0, 86400, 60),
};

#define NOPTIONS ((int)(sizeof(options) / sizeof(options[0])))

/* State of one load: where errors go and which options the file set. */
struct load {
    struct config *c;
    struct config_errors *errs;
    const char *name;            /* file name used in messages */
    const char *buf;             /* the text, to locate reader errors */
    size_t len;
    yaml_document_t *doc;
    int seen[NOPTIONS];          /* line of the option's key, 0 = absent */
    int given[NOPTIONS];         /* line of a non-null value, 0 = none */
    unsigned char bad[NOPTIONS]; /* 1 when the option's value was refused */
    int section_seen[NOPTIONS];  /* by the section's first option */
};

/* ==================== Small helpers ==================== */

/* The field of c an option stands for: a char * for OPT_STRING, OPT_SECRET
 * and OPT_FILE rows, an int for OPT_INT and OPT_ENUM rows. The _value
 * forms read a const config (config_dump). */
static char **str_field(struct config *c, const struct option *o) {
    return (char **)(void *)((char *)c + o->off);
}

static int *int_field(struct config *c, const struct option *o) {
    return (int *)(void *)((char *)c + o->off);
}

static const char *str_value(const struct config *c, const struct option *o) {
    return *(const char *const *)(const void *)((const char *)c + o->off);
}

static int int_value(const struct config *c, const struct option *o) {
    return *(const int *)(const void *)((const char *)c + o->off);
}

/* Record one error as "NAME:LINE: KEY: REASON" (no LINE when line <= 0).
 * The count keeps growing past CONFIG_MAX_ERRORS so the caller can say how
 * many were left out; only the message is dropped. */
static void add_error(struct load *ld, int line, const char *key,
                      const char *fmt, ...) {
    struct config_errors *e = ld->errs;
    char *dst;
    va_list ap;
    int n;

    if (e->count++ >= CONFIG_MAX_ERRORS) return;
    dst = e->msg[e->count - 1];
    if (line > 0)
        n = snprintf(dst, CONFIG_ERROR_LEN, "%s:%d: %s: ", ld->name, line, key);
    else
        n = snprintf(dst, CONFIG_ERROR_LEN, "%s: %s: ", ld->name, key);
    if (n < 0 || n >= CONFIG_ERROR_LEN) return;    /* already truncated */
    va_start(ap, fmt);
    vsnprintf(dst + n, (size_t)(CONFIG_ERROR_LEN - n), fmt, ap);
    va_end(ap);
}

/* Copy at most VALUE_SHOWN_MAX bytes of s into out for an error message,
 * with control bytes replaced by '?': a bad value is quoted back to the
 * user and must not be able to drive their terminal. */
static const char *shown(const char *s, char out[VALUE_SHOWN_MAX + 4]) {
    size_t i;

    for (i = 0; i < VALUE_SHOWN_MAX && s[i]; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    if (s[i]) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

/* The 1-based line where a node starts. */
static int node_line(const yaml_node_t *n) {
    return (int)n->start_mark.line + 1;
}

/* 1 for a plain scalar YAML reads as null: empty, "~" or "null". Such a
 * value means "not set" (an empty section, an unset optional string). */
static int is_null(const yaml_node_t *n) {
    const char *s;

    if (n->type != YAML_SCALAR_NODE) return 0;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    s = (const char *)n->data.scalar.value;
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* 1 when a scalar holds a NUL byte ("\0" escape): C strings would cut it. */
static int has_nul(const yaml_node_t *n) {
    return strlen((const char *)n->data.scalar.value) != n->data.scalar.length;
}

/* Index of the option called key ("mqtt.uri"), or -1. */
static int find_option(const char *key) {
    for (int i = 0; i < NOPTIONS; i++)
        if (strcmp(options[i].key, key) == 0) return i;
    return -1;
}

/* Index of the first option of section 'name', or -1 for an unknown
 * section: the sections are exactly the prefixes used in the table. */
static int find_section(const char *name) {
    size_t len = strlen(name);

    for (int i = 0; i < NOPTIONS; i++)
        if (strncmp(options[i].key, name, len) == 0 &&
            options[i].key[len] == '.') return i;
    return -1;
}

/* Read a whole file of at most max bytes into a new NUL-terminated buffer.
 * Returns 0 and sets *out, *len; or -1 when it cannot be opened and -2 when
 * it cannot be read (EFBIG: longer than max), with errno set. */
static int read_file(const char *path, size_t max, char **out, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;
    char *buf = NULL;
    size_t n = 0;

    if (fd < 0) return -1;
    /* max + 1 bytes: reading one more than allowed tells "too long". */
    if ((buf = malloc(max + 1)) == NULL) { err = ENOMEM; goto cleanup; }
    while (n <= max) {
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { err = errno; goto cleanup; }
        if (r == 0) break;
        n += (size_t)r;
    }
    if (n > max) { err = EFBIG; goto cleanup; }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
cleanup:
    close(fd);
    free(buf);
    errno = err;
    return err ? -2 : 0;
}

/* ==================== Value checks ==================== */

/* mqtt.version: "5" is MQTT 5, "3.1.1" is protocol level 4. */
static int version_parse(const char *name) {
    if (strcmp(name, "5") == 0) return 5;
    if (strcmp(name, "3.1.1") == 0) return 4;
    return -1;
}

/* The name of an mqtt.version value, for config_dump. */
static const char *version_name(int value) {
    return value == 4 ? "3.1.1" : value == 5 ? "5" : "?";
}

/* mqtt.identity: who the sender of a message is (config.h). */
static int identity_parse(const char *name) {
    if (strcmp(name, "payload") == 0) return CONFIG_IDENTITY_PAYLOAD;
    if (strcmp(name, "topic") == 0) return CONFIG_IDENTITY_TOPIC;
    return -1;
}

static const char *identity_name(int value) {
    return value == CONFIG_IDENTITY_TOPIC ? "topic" : "payload";
}

/* A YAML 1.1 boolean, as libyaml leaves it: a plain word. */
static int bool_parse(const char *name) {
    static const char *const yes[] = { "true", "True", "TRUE", "yes", "on" };
    static const char *const no[] = { "false", "False", "FALSE", "no", "off" };

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(name, yes[i]) == 0) return 1;
        if (strcmp(name, no[i]) == 0) return 0;
    }
    return -1;
}

static const char *bool_name(int value) {
    return value ? "true" : "false";
}

/* mqtt.shared_group: one topic level, so no '/', wildcards or controls. */
static const char *check_group(const char *s) {
    if (s[0] == '\0') return "must not be empty";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p == '/' || *p == '+' || *p == '#' || *p < 0x20 || *p == 0x7f)
            return "must be one topic level without '/', '+', '#' or controls";
    return strlen(s) > 64 ? "longer than 64 bytes" : NULL;
}

/* redis.cluster_nodes: HOST:PORT words separated by spaces or commas,
 * with the parser the cluster reads them with. */
static const char *check_nodes(const char *s) {
    int n = rnode_parse_list(s, NULL, NULL);
    if (n < 0) return "must be HOST:PORT words, separated by spaces or commas";
    return n ? NULL : "must name at least one HOST:PORT";
}

/* redis.sentinels: like cluster_nodes, at most SENTINEL_MAX of them. */
static const char *check_sentinels(const char *s) {
    const char *why = check_nodes(s);
    if (why) return why;
    return rnode_parse_list(s, NULL, NULL) > SENTINEL_MAX ? "names more than 16 sentinels" : NULL;
}

/* redis.sentinel_master: a name as sentinel.conf allows it (letters,
 * digits, '.', '-', '_'), so that it is one word of +switch-master. */
static const char *check_master_name(const char *s) {
    size_t len = strlen(s);
    if (len == 0 || len > 128) return "must be 1 to 128 bytes";
    if (strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != len)
        return "may hold only letters, digits, '.', '-' and '_'";
    return NULL;
}

/* redis.unix_socket: a path that fits a socket address. It need not exist
 * yet: Redis may be starting, and the bridge retries like for TCP. */
static const char *check_socket_path(const char *s) {
    if (s[0] == '\0') return "must not be empty";
    return strlen(s) >= 108 ? "longer than a Unix socket path may be (107 bytes)" : NULL;
}

/* A path the bridge will read later (CA file or directory, certificate,
 * Redis socket): refuse now, with the reason, rather than at connect. */
static const char *check_readable(const char *s) {
    if (s[0] == '\0') return "must not be empty";
    if (access(s, R_OK) != 0) return strerror(errno);
    return NULL;
}

/* A file holding a secret (a private key, a password): like
 * check_readable, and no access for others, whom it would leak to. */
static const char *check_private(const char *s) {
    struct stat st;

    if (s[0] == '\0') return "must not be empty";
    if (access(s, R_OK) != 0 || stat(s, &st) != 0) return strerror(errno);
    if (st.st_mode & S_IRWXO)
        return "is accessible by others (chmod o-rwx it)";
    return NULL;
}

/* Checks below return NULL for a good value or the reason it is bad,
 * which becomes the end of the error message. */
static const char *check_nonempty(const char *s) {
    return s[0] ? NULL : "must not be empty";
}

/* The URI schemes Paho accepts, with something after the scheme. */
static const char *check_uri(const char *s) {
    static const char *const schemes[] = {
        "tcp://", "mqtt://", "ssl://", "mqtts://", "ws://", "wss://"
    };

    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t n = strlen(schemes[i]);
        if (strncmp(s, schemes[i], n) == 0)
            return s[n] ? NULL : "has no host after the scheme";
    }
    return "must start with tcp://, mqtt://, ssl://, mqtts://, ws:// or wss://";
}

/* A topic prefix is one or more non-empty topic levels that the bridge
 * subscribes under: no wildcards, no '$' (reserved for the broker). */
static const char *check_topic_prefix(const char *s) {
    size_t len = strlen(s);

    if (len == 0) return "must not be empty";
    if (strpbrk(s, "+#")) return "must not contain '+' or '#'";
    if (s[0] == '$') return "must not start with '$'";
    if (s[0] == '/' || s[len - 1] == '/')
        return "must not start or end with '/'";
    if (strstr(s, "//")) return "must not contain an empty level ('//')";
    return NULL;
}

/* A key prefix starts every Redis key: short, and none of the characters
 * that separate key parts (':'), break cluster hash tags ('{' '}') or make
 * keys awkward to type (space, control characters). */
static const char *check_key_prefix(const char *s) {
    size_t len = strlen(s);

    if (len == 0 || len > KEY_PREFIX_MAX) return "must be 1 to 64 bytes";
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return "must not contain control characters";
        if (strchr(": {}", ch))
            return "must not contain ':', ' ', '{' or '}'";
    }
    return NULL;
}

/* Parse a whole string as a base-10 integer. 0 on success, -1 when it is
 * not an integer, -2 when it does not fit a long long. */
static int parse_integer(const char *s, long long *out) {
    char *end;

    if (!(s[0] == '-' || s[0] == '+' || (s[0] >= '0' && s[0] <= '9')))
        return -1;
    errno = 0;
    *out = strtoll(s, &end, 10);
    if (end == s || *end != '\0') return -1;
    return errno == ERANGE ? -2 : 0;
}

/* ==================== Defaults and freeing ==================== */

/* Zero c, then give every option its default from the table. Strings are
 * heap copies so that config_free() works the same whatever set them. On
 * OOM returns -1, and c is still safe to config_free(). */
int config_defaults(struct config *c) {
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < NOPTIONS; i++) {
        const struct option *o = &options[i];

        if (o->type == OPT_INT || o->type == OPT_ENUM) {
            *int_field(c, o) = (int)o->def;
        } else if (o->def_str) {
            if ((*str_field(c, o) = strdup(o->def_str)) == NULL) return -1;
        }
    }
    return 0;
}

/* Free every string option. OPT_FILE rows share their field with the
 * OPT_SECRET row, so only the owning rows free. */
void config_free(struct config *c) {
    for (int i = 0; i < NOPTIONS; i++) {
        const struct option *o = &options[i];

        if (o->type != OPT_STRING && o->type != OPT_SECRET) continue;
        free(*str_field(c, o));
        *str_field(c, o) = NULL;
    }
}

/* ==================== Setting one option ==================== */

/* Replace a string field with a copy of s, after the option's check. */
static void set_string(struct load *ld, int idx, int line, const char *s) {
    const struct option *o = &options[idx];
    const char *why = o->check ? o->check(s) : NULL;
    char *copy;

    if (why) {
        add_error(ld, line, o->key, "%s", why);
        return;
    }
    if ((copy = strdup(s)) == NULL) {
        add_error(ld, line, o->key, "out of memory");
        return;
    }
    free(*str_field(ld->c, o));
    *str_field(ld->c, o) = copy;
}

/* Set an int field from s: a whole integer within the option's range. */
static void set_int(struct load *ld, int idx, int line, const char *s) {
    const struct option *o = &options[idx];
    char tmp[VALUE_SHOWN_MAX + 4];
    long long v = 0;
    int rc = parse_integer(s, &v);

    if (rc == -1) {
        add_error(ld, line, o->key, "not an integer: \"%s\"", shown(s, tmp));
    } else if (rc == -2 || v < o->min || v > o->max) {
        add_error(ld, line, o->key, "out of range %lld..%lld: %s",
                  o->min, o->max, shown(s, tmp));
    } else {
        *int_field(ld->c, o) = (int)v;
    }
}

/* Set an enum field from one of its names. */
static void set_enum(struct load *ld, int idx, int line, const char *s) {
    const struct option *o = &options[idx];
    int v = o->en->parse(s);

    if (v < 0) {
        char tmp[VALUE_SHOWN_MAX + 4];
        add_error(ld, line, o->key, "must be one of %s, not \"%s\"",
                  o->en->choices, shown(s, tmp));
    } else {
        *int_field(ld->c, o) = v;
    }
}

/* Read a secret from the file at path into the option's field. One
 * trailing newline ("\n" or "\r\n") is dropped: editors add one. An empty
 * secret, one holding a NUL byte, or a file others may read is refused
 * rather than used. */
static void set_file(struct load *ld, int idx, int line, const char *path) {
    const struct option *o = &options[idx];
    char tmp[VALUE_SHOWN_MAX + 4];
    const char *why;
    char *buf = NULL;
    size_t len = 0;

    if (read_file(path, SECRET_FILE_MAX, &buf, &len) != 0) {
        add_error(ld, line, o->key, "cannot read %s: %s", shown(path, tmp),
                  errno == EFBIG ? "larger than 4096 bytes" : strerror(errno));
        return;
    }
    if ((why = check_private(path)) != NULL) {
        add_error(ld, line, o->key, "%s: %s", shown(path, tmp), why);
        free(buf);
        return;
    }
    if (len && buf[len - 1] == '\n') {
        buf[--len] = '\0';
        if (len && buf[len - 1] == '\r') buf[--len] = '\0';
    }
    if (len == 0 || memchr(buf, '\0', len)) {
        add_error(ld, line, o->key, "%s: %s", shown(path, tmp),
                  len ? "contains a NUL byte" : "is empty");
        free(buf);
        return;
    }
    free(*str_field(ld->c, o));
    *str_field(ld->c, o) = buf;
}

/* Apply one "key: value" pair of the file to the option idx. Errors carry
 * the value's line, except for a missing value (whose empty node may start
 * on the next line), which carries the key's. */
static void apply_value(struct load *ld, int idx, int key_line,
                        const yaml_node_t *v) {
    const struct option *o = &options[idx];
    const char *s;
    int line = node_line(v);

    if (v->type != YAML_SCALAR_NODE) {
        add_error(ld, line, o->key, "value must be a scalar");
    } else if (has_nul(v)) {
        add_error(ld, line, o->key, "value contains a NUL byte");
    } else if (is_null(v)) {
        /* An optional string (default NULL) stays unset: each key is
         * seen once, so nothing can have set it yet -- except for a
         * password, by its password_file, which must be kept. */
        int optional = o->type == OPT_FILE ||
                       ((o->type == OPT_STRING || o->type == OPT_SECRET) &&
                        o->def_str == NULL);
        if (!optional) add_error(ld, key_line, o->key, "missing value");
    } else {
        s = (const char *)v->data.scalar.value;
        ld->given[idx] = line;
        switch (o->type) {
        case OPT_STRING:
        case OPT_SECRET: set_string(ld, idx, line, s); break;
        case OPT_FILE: set_file(ld, idx, line, s); break;
        case OPT_INT: set_int(ld, idx, line, s); break;
        case OPT_ENUM: set_enum(ld, idx, line, s); break;
        }
    }
}

/* ==================== Walking the tree ==================== */

/* Walk the keys of one section. Each key must be known and appear once. */
static void walk_section(struct load *ld, const char *sec,
                         const yaml_node_t *map) {
    char key[OPTION_KEY_MAX];

    if (is_null(map)) return;            /* "log:" with every key commented */
    if (map->type != YAML_MAPPING_NODE) {
        add_error(ld, node_line(map), sec, "section must be a mapping of keys");
        return;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
         p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(ld->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(ld->doc, p->value);
        int idx = -1;

        if (k->type != YAML_SCALAR_NODE || has_nul(k)) {
            add_error(ld, node_line(k), sec, "key must be a plain name");
            continue;
        }
        snprintf(key, sizeof(key), "%s.%s", sec, (char *)k->data.scalar.value);
        if ((idx = find_option(key)) < 0) {
            char tmp[VALUE_SHOWN_MAX + 4];   /* quoted back: no raw controls */
            add_error(ld, node_line(k), shown(key, tmp), "unknown key");
        } else if (ld->seen[idx]) {
            add_error(ld, node_line(k), key, "duplicate key (first on line %d)",
                      ld->seen[idx]);
        } else {
            int before = ld->errs->count;

            ld->seen[idx] = node_line(k);
            apply_value(ld, idx, ld->seen[idx], v);
            ld->bad[idx] = ld->errs->count != before;
        }
    }
}

/* Walk the top level: a mapping from section names to sections. An empty
 * document (empty file, only comments) leaves every default in place. */
static void walk_root(struct load *ld) {
    yaml_node_t *root = yaml_document_get_root_node(ld->doc);

    if (root == NULL || is_null(root)) return;
    if (root->type != YAML_MAPPING_NODE) {
        add_error(ld, node_line(root), "(top level)",
                  "must be a mapping of sections (mqtt, redis, limits, retention, journal, log)");
        return;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(ld->doc, p->key);
        const char *name = "";
        int sec = -1;

        if (k->type == YAML_SCALAR_NODE && !has_nul(k)) {
            name = (const char *)k->data.scalar.value;
            sec = find_section(name);
        }
        if (k->type != YAML_SCALAR_NODE || has_nul(k)) {
            add_error(ld, node_line(k), "(top level)",
                      "section name must be a plain name");
        } else if (sec < 0) {
            char tmp[VALUE_SHOWN_MAX + 4];
            add_error(ld, node_line(k), shown(name, tmp), "unknown section");
        } else if (ld->section_seen[sec]) {
            add_error(ld, node_line(k), name,
                      "duplicate section (first on line %d)",
                      ld->section_seen[sec]);
        } else {
            ld->section_seen[sec] = node_line(k);
            walk_section(ld, name, yaml_document_get_node(ld->doc, p->value));
        }
    }
}

/* ==================== Whole-file checks ==================== */

/* Report a password given both inline and as password_file: which one
 * should win is a guess we refuse to make. */
static void check_secret_pairs(struct load *ld) {
    for (int f = 0; f < NOPTIONS; f++) {
        if (options[f].type != OPT_FILE || !ld->given[f]) continue;
        for (int s = 0; s < NOPTIONS; s++) {
            if (options[s].type != OPT_SECRET || !ld->given[s] ||
                options[s].off != options[f].off) continue;
            add_error(ld, ld->given[f] > ld->given[s] ? ld->given[f]
                                                      : ld->given[s],
                      options[f].key, "both %s (line %d) and %s (line %d) "
                      "are set; use one", options[s].key, ld->given[s],
                      options[f].key, ld->given[f]);
        }
    }
}

/* TLS files only mean something for a TLS URI; a key needs its
 * certificate (Paho would ignore it silently). A cluster is not reached
 * through a Unix socket. */
static void check_transport(struct load *ld) {
    static const char *const tls_keys[] = { "mqtt.tls_ca_file", "mqtt.tls_ca_dir",
        "mqtt.tls_cert_file", "mqtt.tls_key_file" };
    const char *uri = ld->c->mqtt_uri;
    int tls = strncmp(uri, "ssl://", 6) == 0 || strncmp(uri, "mqtts://", 8) == 0 ||
              strncmp(uri, "wss://", 6) == 0;

    for (size_t i = 0; !tls && i < sizeof(tls_keys) / sizeof(tls_keys[0]); i++) {
        int idx = find_option(tls_keys[i]);
        if (ld->given[idx] && !ld->bad[idx])
            add_error(ld, ld->given[idx], tls_keys[i], "set, but mqtt.uri is not "
                      "TLS (ssl://, mqtts:// or wss://)");
    }
    int cl = find_option("redis.cluster"), sock = find_option("redis.unix_socket");
    if (ld->c->redis_cluster && ld->given[sock])
        add_error(ld, ld->given[sock], options[sock].key, "cannot be used with "
                  "redis.cluster (line %d): cluster nodes are HOST:PORT", ld->given[cl]);
    int wt = find_option("redis.wait_timeout_ms"), to = find_option("redis.timeout_ms");
    if (ld->c->redis_wait_replicas > 0 && !ld->bad[wt] && !ld->bad[to] &&
        ld->c->redis_wait_timeout_ms >= ld->c->redis_timeout_ms)
        add_error(ld, ld->seen[wt] ? ld->seen[wt] : ld->seen[to], options[wt].key,
                  "%d must be less than redis.timeout_ms (%d): a WAIT longer than "
                  "the read timeout would look like a lost connection",
                  ld->c->redis_wait_timeout_ms, ld->c->redis_timeout_ms);
    int key = find_option("mqtt.tls_key_file"), cert = find_option("mqtt.tls_cert_file");
    if (ld->given[key] && !ld->given[cert])
        add_error(ld, ld->given[key], options[key].key, "needs mqtt.tls_cert_file");
}

/* Sentinel: the sentinels need the master's name and exclude a cluster
 * (which fails over by itself) and a socket (the sentinels name
 * HOST:PORT); its other keys mean nothing without them. */
static void check_sentinel(struct load *ld) {
    static const char *const keys[] = { "redis.sentinel_master", "redis.sentinel_password",
        "redis.sentinel_password_file" };
    int sen = find_option("redis.sentinels"), cl = find_option("redis.cluster");
    int sock = find_option("redis.unix_socket"), master = find_option(keys[0]);
    int at = ld->given[sen];

    if (ld->bad[sen]) return;            /* already refused */
    if (!at) {
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            int k = find_option(keys[i]);
            if (ld->given[k] && !ld->bad[k])
                add_error(ld, ld->given[k], keys[i], "set, but redis.sentinels is not");
        }
        return;
    }
    if (!ld->given[master])
        add_error(ld, at, options[sen].key, "needs redis.sentinel_master, the name "
                  "the sentinels monitor");
    if (ld->c->redis_cluster)
        add_error(ld, at, options[sen].key, "cannot be used with redis.cluster (line %d): "
                  "a cluster fails over by itself", ld->given[cl]);
    if (ld->given[sock])
        add_error(ld, at, options[sen].key, "cannot be used with redis.unix_socket "
                  "(line %d): the sentinels name a HOST:PORT", ld->given[sock]);
}

/* Checks that involve more than one option, skipped for an option whose
 * own value was already refused (the message would be about a default). */
static void check_cross(struct load *ld) {
    int hd = find_option("limits.history_default");
    int hm = find_option("limits.history_max");
    int jm = find_option("journal.max_bytes");
    int js = find_option("journal.segment_bytes");

    check_secret_pairs(ld);
    check_transport(ld);
    check_sentinel(ld);
    if (!ld->bad[hd] && !ld->bad[hm] &&
        ld->c->history_default > ld->c->history_max)
        add_error(ld, ld->seen[hd] ? ld->seen[hd] : ld->seen[hm],
                  options[hd].key, "%d is larger than limits.history_max (%d)",
                  ld->c->history_default, ld->c->history_max);
    if (!ld->bad[jm] && !ld->bad[js] &&
        ld->c->journal_segment_bytes > ld->c->journal_max_bytes)
        add_error(ld, ld->seen[js] ? ld->seen[js] : ld->seen[jm],
                  options[js].key, "%d is larger than journal.max_bytes (%d)",
                  ld->c->journal_segment_bytes, ld->c->journal_max_bytes);
}

/* The 1-based line of byte offset off in the text, for reader errors
 * (bad UTF-8), which libyaml reports by offset only. */
static int offset_line(const struct load *ld, size_t off) {
    int line = 1;

    for (size_t i = 0; i < off && i < ld->len; i++)
        if (ld->buf[i] == '\n') line++;
    return line;
}

/* Turn the parser's error into one message with its line. */
static void syntax_error(struct load *ld, const yaml_parser_t *p) {
    int line = p->error == YAML_READER_ERROR
                   ? offset_line(ld, p->problem_offset)
                   : (int)p->problem_mark.line + 1;

    if (p->error == YAML_MEMORY_ERROR)
        add_error(ld, 0, "yaml", "out of memory");
    else if (p->context)
        add_error(ld, line, "syntax error", "%s (%s)",
                  p->problem ? p->problem : "unknown problem", p->context);
    else
        add_error(ld, line, "syntax error", "%s",
                  p->problem ? p->problem : "unknown problem");
}

/* After the first document, the stream must end: a second document would
 * be silently ignored otherwise. An empty one ("---" at the end) is fine. */
static void check_single_document(struct load *ld, yaml_parser_t *p) {
    yaml_document_t next;
    yaml_node_t *root;

    if (!yaml_parser_load(p, &next)) {
        syntax_error(ld, p);
        return;
    }
    root = yaml_document_get_root_node(&next);
    if (root != NULL && !is_null(root))
        add_error(ld, node_line(root), "(top level)",
                  "only one YAML document is allowed");
    yaml_document_delete(&next);
}

/* Parse the text and walk it. Errors go to ld->errs. */
static void parse_and_walk(struct load *ld) {
    yaml_parser_t parser;
    yaml_document_t doc;

    if (!yaml_parser_initialize(&parser)) {
        add_error(ld, 0, "yaml", "out of memory");
        return;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)ld->buf,
                                 ld->len);
    if (!yaml_parser_load(&parser, &doc)) {
        syntax_error(ld, &parser);
        goto cleanup;
    }
    ld->doc = &doc;
    walk_root(ld);
    check_single_document(ld, &parser);
    yaml_document_delete(&doc);
    ld->doc = NULL;
    check_cross(ld);
cleanup:
    yaml_parser_delete(&parser);
}

/* ==================== Public API ==================== */

/* Defaults, then the text of buf, then the checks across options. */
int config_load_buffer(struct config *c, const char *buf, size_t len,
                       const char *name, struct config_errors *errs) {
    struct config_errors scratch;
    struct load ld;

    if (errs == NULL) errs = &scratch;
    memset(&ld, 0, sizeof(ld));
    ld.c = c;
    ld.errs = errs;
    ld.name = name ? name : "(config)";
    ld.buf = buf ? buf : "";
    ld.len = buf ? len : 0;
    errs->count = 0;
    if (config_defaults(c) != 0)
        add_error(&ld, 0, "config", "out of memory");
    else
        parse_and_walk(&ld);
    return ld.errs->count ? -1 : 0;
}

/* Read the file, then load it as a buffer. A file that cannot be read
 * still leaves c holding the defaults, so it is safe to free. */
int config_load(struct config *c, const char *path,
                struct config_errors *errs) {
    struct config_errors scratch;
    char *buf = NULL;
    size_t len = 0;
    int rc = read_file(path, CONFIG_FILE_MAX, &buf, &len);

    if (errs == NULL) errs = &scratch;
    if (rc != 0) {
        struct load ld = { .errs = errs, .name = path };
        const char *why = errno == EFBIG ? "larger than 1 MiB" : strerror(errno);

        errs->count = 0;
        if (config_defaults(c) != 0) add_error(&ld, 0, "config", "out of memory");
        add_error(&ld, 0, rc == -1 ? "cannot open" : "cannot read", "%s", why);
        return -1;
    }
    rc = config_load_buffer(c, buf, len, path, errs);
    free(buf);
    return rc;
}

/* Print every option as "section.key = value". Secrets print as "(set)" or
 * "(unset)"; password_file rows are skipped since their contents live in
 * the password field (the path itself is not kept). */
void config_dump(const struct config *c, FILE *out) {
    for (int i = 0; i < NOPTIONS; i++) {
        const struct option *o = &options[i];

        switch (o->type) {
        case OPT_STRING:
            fprintf(out, "%s = %s\n", o->key,
                    str_value(c, o) ? str_value(c, o) : "(unset)");
            break;
        case OPT_SECRET:
            fprintf(out, "%s = %s\n", o->key,
                    str_value(c, o) ? "(set)" : "(unset)");
            break;
        case OPT_INT:
            fprintf(out, "%s = %d\n", o->key, int_value(c, o));
            break;
        case OPT_ENUM:
            fprintf(out, "%s = %s\n", o->key, o->en->name(int_value(c, o)));
            break;
        case OPT_FILE:
            break;
        }
    }
}

/* 1 when option i has the same value in a and b. */
static int option_same(int i, const struct config *a, const struct config *b) {
    const struct option *o = &options[i];
    if (o->type == OPT_INT || o->type == OPT_ENUM)
        return *(const int *)((const char *)a + o->off) ==
               *(const int *)((const char *)b + o->off);
    const char *x = *(char *const *)((const char *)a + o->off);
    const char *y = *(char *const *)((const char *)b + o->off);
    return x == y || (x && y && strcmp(x, y) == 0);
}

int config_needs_restart(const struct config *a, const struct config *b) {
    for (int i = 0; i < NOPTIONS; i++)
        if (!options[i].live && !option_same(i, a, b)) return 1;
    return 0;
}
