/* test_config.c -- unit tests for config.c: defaults, a full file, every
 * kind of error with its line, password files, and garbage input. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "journal.h"
#include "log.h"

#define EXAMPLE_CONFIG "config/chat-bridge.yaml"

/* ==================== Helpers ==================== */

/* Load text as the file "t.yaml". */
static int load_text(struct config *c, struct config_errors *e,
                     const char *text) {
    return config_load_buffer(c, text, strlen(text), "t.yaml", e);
}

/* Fail unless s starts with prefix, showing both. */
static void assert_prefix(const char *s, const char *prefix) {
    if (strncmp(s, prefix, strlen(prefix)) != 0) {
        print_error("\"%s\" does not start with \"%s\"\n", s, prefix);
        fail();
    }
}

/* Fail unless s contains part, showing both. */
static void assert_contains(const char *s, const char *part) {
    if (strstr(s, part) == NULL) {
        print_error("\"%s\" does not contain \"%s\"\n", s, part);
        fail();
    }
}

/* Load text and expect exactly one error, equal to want. */
static void expect_error(const char *text, const char *want) {
    struct config c;
    struct config_errors e;

    assert_int_equal(load_text(&c, &e, text), -1);
    assert_int_equal(e.count, 1);
    assert_string_equal(e.msg[0], want);
    config_free(&c);
}

/* Load text and expect exactly one error starting with prefix. */
static void expect_error_prefix(const char *text, const char *prefix) {
    struct config c;
    struct config_errors e;

    assert_int_equal(load_text(&c, &e, text), -1);
    assert_int_equal(e.count, 1);
    assert_prefix(e.msg[0], prefix);
    config_free(&c);
}

/* Load "section:\n  key: value\n" and expect no error. */
static void expect_ok(const char *text) {
    struct config c;
    struct config_errors e;
    int rc = load_text(&c, &e, text);

    if (rc != 0) print_error("unexpected: %s\n", e.count ? e.msg[0] : "?");
    assert_int_equal(rc, 0);
    assert_int_equal(e.count, 0);
    config_free(&c);
}

/* Write len bytes to a new temporary file; its name goes into path. */
static void write_temp(char path[64], const void *data, size_t len) {
    int fd;

    strcpy(path, "/tmp/cb-test-config.XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* Check that c holds every default of config.h. */
static void assert_defaults(const struct config *c) {
    assert_string_equal(c->mqtt_uri, "tcp://127.0.0.1:1883");
    assert_string_equal(c->mqtt_client_id, "chat-bridge");
    assert_string_equal(c->topic_prefix, "chat");
    assert_int_equal(c->mqtt_qos, 1);
    assert_int_equal(c->mqtt_version, 5);
    assert_null(c->mqtt_username);
    assert_null(c->mqtt_password);
    assert_int_equal(c->mqtt_keepalive, 30);
    assert_int_equal(c->mqtt_session_expiry, 3600);
    assert_int_equal(c->mqtt_connect_timeout, 10);
    assert_int_equal(c->mqtt_max_buffered, 100000);
    assert_string_equal(c->redis_host, "127.0.0.1");
    assert_int_equal(c->redis_port, 6379);
    assert_null(c->redis_password);
    assert_string_equal(c->key_prefix, "chatroom");
    assert_int_equal(c->redis_timeout_ms, 5000);
    assert_int_equal(c->max_text_bytes, 4096);
    assert_int_equal(c->history_default, 50);
    assert_int_equal(c->history_max, 200);
    assert_int_equal(c->batch_size, 256);
    assert_int_equal(c->dedup_window, 86400);
    assert_int_equal(c->stop_timeout_ms, 10000);
    assert_string_equal(c->journal_dir, "");
    assert_int_equal(c->journal_fsync, JOURNAL_FSYNC_BATCH);
    assert_int_equal(c->journal_fsync_ms, 100);
    assert_int_equal(c->journal_max_bytes, 268435456);
    assert_int_equal(c->journal_segment_bytes, 16777216);
    assert_int_equal(c->log_level, LOG_LEVEL_INFO);
    assert_int_equal(c->status_interval, 60);
    assert_string_equal(c->status_topic, "");
    assert_int_equal(c->mqtt_status_interval, 30);
}

/* ==================== Defaults and valid files ==================== */

static void test_defaults(void **state) {
    struct config c;
    struct config zero;

    (void)state;
    assert_int_equal(config_defaults(&c), 0);
    assert_defaults(&c);
    config_free(&c);
    assert_null(c.mqtt_uri);
    config_free(&c);                 /* twice is harmless */
    memset(&zero, 0, sizeof(zero));
    config_free(&zero);              /* so is a zeroed struct */
}

static void test_full_valid_file(void **state) {
    const char *text =
        "# every option, none at its default\n"
        "mqtt:\n"
        "  uri: ssl://broker.example:8883\n"
        "  client_id: bridge-7\n"
        "  topic_prefix: acme/chat\n"
        "  qos: 2\n"
        "  version: \"3.1.1\"\n"
        "  username: alice\n"
        "  password: hunter2\n"
        "  keepalive: 65535\n"
        "  session_expiry: 0\n"
        "  connect_timeout: 300\n"
        "  max_buffered: 1\n"
        "redis:\n"
        "  host: redis.local\n"
        "  port: 6380\n"
        "  password: 'redis pw'\n"
        "  key_prefix: acme-chat\n"
        "  timeout_ms: 100\n"
        "limits:\n"
        "  max_text_bytes: 1048576\n"
        "  history_default: 10\n"
        "  history_max: 10000\n"
        "  batch_size: 10000\n"
        "  dedup_window: 0\n"
        "  stop_timeout_ms: 500\n"
        "journal:\n"
        "  dir: /tmp/j\n"
        "  fsync: always\n"
        "  fsync_ms: 7\n"
        "  max_bytes: 1048576\n"
        "  segment_bytes: 65536\n"
        "log:\n"
        "  level: debug\n"
        "  status_interval: 0\n";
    struct config c;
    struct config_errors e;

    (void)state;
    assert_int_equal(load_text(&c, &e, text), 0);
    assert_int_equal(e.count, 0);
    assert_string_equal(c.mqtt_uri, "ssl://broker.example:8883");
    assert_string_equal(c.mqtt_client_id, "bridge-7");
    assert_string_equal(c.topic_prefix, "acme/chat");
    assert_int_equal(c.mqtt_qos, 2);
    assert_int_equal(c.mqtt_version, 4);
    assert_string_equal(c.mqtt_username, "alice");
    assert_string_equal(c.mqtt_password, "hunter2");
    assert_int_equal(c.mqtt_keepalive, 65535);
    assert_int_equal(c.mqtt_session_expiry, 0);
    assert_int_equal(c.mqtt_connect_timeout, 300);
    assert_int_equal(c.mqtt_max_buffered, 1);
    assert_string_equal(c.redis_host, "redis.local");
    assert_int_equal(c.redis_port, 6380);
    assert_string_equal(c.redis_password, "redis pw");
    assert_string_equal(c.key_prefix, "acme-chat");
    assert_int_equal(c.redis_timeout_ms, 100);
    assert_int_equal(c.max_text_bytes, 1048576);
    assert_int_equal(c.history_default, 10);
    assert_int_equal(c.history_max, 10000);
    assert_int_equal(c.batch_size, 10000);
    assert_int_equal(c.dedup_window, 0);
    assert_int_equal(c.stop_timeout_ms, 500);
    assert_string_equal(c.journal_dir, "/tmp/j");
    assert_int_equal(c.journal_fsync, JOURNAL_FSYNC_ALWAYS);
    assert_int_equal(c.journal_fsync_ms, 7);
    assert_int_equal(c.journal_max_bytes, 1048576);
    assert_int_equal(c.journal_segment_bytes, 65536);
    assert_int_equal(c.log_level, LOG_LEVEL_DEBUG);
    assert_int_equal(c.status_interval, 0);
    config_free(&c);
}

/* A partial file keeps the defaults of everything it does not name. */
static void test_partial_file_keeps_defaults(void **state) {
    struct config c;
    struct config_errors e;

    (void)state;
    assert_int_equal(load_text(&c, &e, "redis:\n  port: 7000\n"), 0);
    assert_int_equal(c.redis_port, 7000);
    c.redis_port = 6379;
    assert_defaults(&c);
    config_free(&c);
}

static void test_empty_file_gives_defaults(void **state) {
    static const char *const texts[] = {
        "", "\n\n", "# only a comment\n", "   # indented comment", "---\n",
        "log:\n  # level: debug\n"
    };
    struct config c;
    struct config_errors e;

    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        assert_int_equal(load_text(&c, &e, texts[i]), 0);
        assert_int_equal(e.count, 0);
        assert_defaults(&c);
        config_free(&c);
    }
    assert_int_equal(config_load_buffer(&c, NULL, 0, "t.yaml", &e), 0);
    assert_defaults(&c);
    config_free(&c);
}

static void test_version_and_level(void **state) {
    static const struct { const char *text; int version; int level; } cases[] = {
        { "mqtt:\n  version: 3.1.1\n", 4, LOG_LEVEL_INFO },
        { "mqtt:\n  version: \"3.1.1\"\n", 4, LOG_LEVEL_INFO },
        { "mqtt:\n  version: 5\n", 5, LOG_LEVEL_INFO },
        { "mqtt:\n  version: '5'\n", 5, LOG_LEVEL_INFO },
        { "log:\n  level: error\n", 5, LOG_LEVEL_ERROR },
        { "log:\n  level: warn\n", 5, LOG_LEVEL_WARN },
        { "log:\n  level: info\n", 5, LOG_LEVEL_INFO },
        { "log:\n  level: debug\n", 5, LOG_LEVEL_DEBUG },
    };
    struct config c;
    struct config_errors e;

    (void)state;
    assert_int_equal(LOG_LEVEL_ERROR, 0);
    assert_int_equal(LOG_LEVEL_DEBUG, 3);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(load_text(&c, &e, cases[i].text), 0);
        assert_int_equal(c.mqtt_version, cases[i].version);
        assert_int_equal(c.log_level, cases[i].level);
        config_free(&c);
    }
}

/* An empty value leaves an optional string unset; a required one errs. */
static void test_null_values(void **state) {
    struct config c;
    struct config_errors e;

    (void)state;
    assert_int_equal(load_text(&c, &e, "mqtt:\n  username:\n  password: ~\n"
                                       "redis:\n  password_file: null\n"), 0);
    assert_null(c.mqtt_username);
    assert_null(c.mqtt_password);
    assert_null(c.redis_password);
    config_free(&c);
    expect_error("mqtt:\n  qos:\n  uri: tcp://x\n",
                 "t.yaml:2: mqtt.qos: missing value");
    expect_error("mqtt:\n  client_id: ~\n",
                 "t.yaml:2: mqtt.client_id: missing value");
}

/* ==================== Error kinds, with lines ==================== */

static void test_syntax_error(void **state) {
    (void)state;
    expect_error("mqtt:\n  qos: 1\n  uri: a: b\n",
                 "t.yaml:3: syntax error: "
                 "mapping values are not allowed in this context");
    expect_error_prefix("mqtt:\n  qos: 1\n\tclient_id: x\n",
                        "t.yaml:3: syntax error: ");
    /* Bad UTF-8 is reported by byte offset; the line is recomputed. */
    expect_error("mqtt:\n  qos: 1\n  uri: \xff\n",
                 "t.yaml:3: syntax error: invalid leading UTF-8 octet");
}

static void test_top_level_not_mapping(void **state) {
    (void)state;
    expect_error("- mqtt\n- redis\n",
                 "t.yaml:1: (top level): must be a mapping of sections "
                 "(mqtt, redis, limits, retention, journal, log)");
    expect_error("\n\njust a string\n",
                 "t.yaml:3: (top level): must be a mapping of sections "
                 "(mqtt, redis, limits, retention, journal, log)");
    expect_error("? [a, b]\n: 1\n",
                 "t.yaml:1: (top level): section name must be a plain name");
}

static void test_unknown_section(void **state) {
    (void)state;
    expect_error("mqtt:\n  qos: 1\nfoo:\n  x: 1\n",
                 "t.yaml:3: foo: unknown section");
}

static void test_unknown_key(void **state) {
    struct config c;
    struct config_errors e;

    (void)state;
    assert_int_equal(load_text(&c, &e, "mqtt:\n  qos: 1\n  bogus: 2\n"), -1);
    assert_int_equal(e.count, 1);
    assert_contains(e.msg[0], ":3:");
    assert_contains(e.msg[0], "bogus");
    assert_string_equal(e.msg[0], "t.yaml:3: mqtt.bogus: unknown key");
    config_free(&c);
    /* A key of another section is unknown here. */
    expect_error("redis:\n  qos: 1\n", "t.yaml:2: redis.qos: unknown key");
    expect_error("mqtt:\n  [a]: 1\n",
                 "t.yaml:2: mqtt: key must be a plain name");
}

static void test_section_not_mapping(void **state) {
    (void)state;
    expect_error("redis: 5\n",
                 "t.yaml:1: redis: section must be a mapping of keys");
    expect_error("mqtt:\n  qos: 1\nlog:\n  - level\n",
                 "t.yaml:4: log: section must be a mapping of keys");
}

static void test_non_scalar_value(void **state) {
    (void)state;
    expect_error("mqtt:\n  uri: [a, b]\n",
                 "t.yaml:2: mqtt.uri: value must be a scalar");
    expect_error("mqtt:\n  qos: 1\n  uri:\n    host: x\n",
                 "t.yaml:4: mqtt.uri: value must be a scalar");
    expect_error("mqtt:\n  client_id: \"a\\0b\"\n",
                 "t.yaml:2: mqtt.client_id: value contains a NUL byte");
}

static void test_wrong_type(void **state) {
    static const char *const bad[] = {
        "abc", "1x", "1.5", "0x10", "\" 1\"", "true", "''", "1 2", "--1"
    };
    char text[128];

    (void)state;
    expect_error("mqtt:\n  qos: abc\n",
                 "t.yaml:2: mqtt.qos: not an integer: \"abc\"");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "redis:\n  host: h\n  port: %s\n", bad[i]);
        expect_error_prefix(text, "t.yaml:3: redis.port: not an integer: ");
    }
    expect_ok("redis:\n  port: +6380\n");
    expect_ok("redis:\n  port: '6380'\n");
}

static void test_out_of_range(void **state) {
    (void)state;
    expect_error("mqtt:\n  qos: 3\n", "t.yaml:2: mqtt.qos: out of range 0..2: 3");
    expect_error("mqtt:\n  qos: -1\n", "t.yaml:2: mqtt.qos: out of range 0..2: -1");
    expect_error("redis:\n  port: 0\n",
                 "t.yaml:2: redis.port: out of range 1..65535: 0");
    expect_error("redis:\n  port: 65536\n",
                 "t.yaml:2: redis.port: out of range 1..65535: 65536");
    expect_error("mqtt:\n  keepalive: 99999999999999999999\n",
                 "t.yaml:2: mqtt.keepalive: out of range 1..65535: "
                 "99999999999999999999");
    expect_error("mqtt:\n  session_expiry: 2147483648\n",
                 "t.yaml:2: mqtt.session_expiry: out of range 0..2147483647: "
                 "2147483648");
    expect_error("redis:\n  timeout_ms: 99\n",
                 "t.yaml:2: redis.timeout_ms: out of range 100..600000: 99");
    expect_error("limits:\n  history_max: 10001\n",
                 "t.yaml:2: limits.history_max: out of range 1..10000: 10001");
    expect_ok("mqtt:\n  qos: 0\n  session_expiry: 2147483647\n");
}

static void test_bad_enum(void **state) {
    (void)state;
    expect_error("mqtt:\n  version: 4\n",
                 "t.yaml:2: mqtt.version: must be one of 5, 3.1.1, not \"4\"");
    expect_error("mqtt:\n  version: \"3.1\"\n",
                 "t.yaml:2: mqtt.version: must be one of 5, 3.1.1, not \"3.1\"");
    expect_error("log:\n  level: verbose\n",
                 "t.yaml:2: log.level: must be one of error, warn, info, debug, "
                 "not \"verbose\"");
    expect_error_prefix("log:\n\n  level: INFO\n", "t.yaml:3: log.level: ");
}

static void test_duplicate_key(void **state) {
    (void)state;
    expect_error("mqtt:\n  qos: 1\n  uri: tcp://a\n  qos: 2\n",
                 "t.yaml:4: mqtt.qos: duplicate key (first on line 2)");
    expect_error("mqtt:\n  qos: 1\nredis:\n  port: 1\nmqtt:\n  uri: tcp://a\n",
                 "t.yaml:5: mqtt: duplicate section (first on line 1)");
}

static void test_topic_prefix_rules(void **state) {
    static const char *const bad[] = {
        "\"\"", "a/+/b", "+", "chat/#", "$SYS", "/chat", "chat/", "a//b", "/"
    };
    static const char *const good[] = { "chat", "acme/chat", "a/b/c", "chat$" };
    char text[128];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "mqtt:\n  topic_prefix: %s\n", bad[i]);
        expect_error_prefix(text, "t.yaml:2: mqtt.topic_prefix: must not ");
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(text, sizeof(text), "mqtt:\n  topic_prefix: %s\n", good[i]);
        expect_ok(text);
    }
    expect_error("mqtt:\n  topic_prefix: a/#\n",
                 "t.yaml:2: mqtt.topic_prefix: must not contain '+' or '#'");
}

static void test_key_prefix_rules(void **state) {
    static const char *const bad[] = {
        "\"\"", "a:b", "\"a b\"", "\"{a}\"", "a}", "\"a\\tb\"", "\"a\\x7f\"",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    };
    static const char *const good[] = {
        "chatroom", "acme-chat.v2", "x",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    };
    char text[160];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "redis:\n  key_prefix: %s\n", bad[i]);
        expect_error_prefix(text, "t.yaml:2: redis.key_prefix: must ");
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(text, sizeof(text), "redis:\n  key_prefix: %s\n", good[i]);
        expect_ok(text);
    }
    expect_error("redis:\n  key_prefix: a:b\n",
                 "t.yaml:2: redis.key_prefix: "
                 "must not contain ':', ' ', '{' or '}'");
}

static void test_uri_and_client_id(void **state) {
    static const char *const good[] = {
        "tcp://h:1883", "mqtt://h", "ssl://h:8883", "mqtts://h", "ws://h/mqtt",
        "wss://h/mqtt"
    };
    char text[128];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(text, sizeof(text), "mqtt:\n  uri: %s\n", good[i]);
        expect_ok(text);
    }
    expect_error("mqtt:\n  uri: http://h\n",
                 "t.yaml:2: mqtt.uri: must start with tcp://, mqtt://, "
                 "ssl://, mqtts://, ws:// or wss://");
    expect_error_prefix("mqtt:\n  uri: 127.0.0.1:1883\n",
                        "t.yaml:2: mqtt.uri: must start with");
    expect_error("mqtt:\n  uri: tcp://\n",
                 "t.yaml:2: mqtt.uri: has no host after the scheme");
    expect_error("mqtt:\n  client_id: \"\"\n",
                 "t.yaml:2: mqtt.client_id: must not be empty");
    expect_error("redis:\n  host: ''\n",
                 "t.yaml:2: redis.host: must not be empty");
}

static void test_history_default_above_max(void **state) {
    (void)state;
    expect_error("limits:\n  history_default: 20\n  history_max: 10\n",
                 "t.yaml:2: limits.history_default: 20 is larger than "
                 "limits.history_max (10)");
    /* Only history_max in the file: the error points at it. */
    expect_error("limits:\n\n  history_max: 49\n",
                 "t.yaml:3: limits.history_default: 50 is larger than "
                 "limits.history_max (49)");
    expect_ok("limits:\n  history_default: 10\n  history_max: 10\n");
}

/* Several problems in one file: all reported, in file order, with the
 * check across options last. */
static void test_multiple_errors(void **state) {
    const char *text =
        "mqtt:\n"                    /* 1 */
        "  qos: 7\n"                 /* 2 */
        "  bogus: 1\n"               /* 3 */
        "redis:\n"                   /* 4 */
        "  port: abc\n"              /* 5 */
        "limits:\n"                  /* 6 */
        "  history_default: 300\n"   /* 7 */
        "nope: 1\n";                 /* 8 */
    struct config c;
    struct config_errors e;

    (void)state;
    assert_int_equal(load_text(&c, &e, text), -1);
    assert_int_equal(e.count, 5);
    assert_string_equal(e.msg[0], "t.yaml:2: mqtt.qos: out of range 0..2: 7");
    assert_string_equal(e.msg[1], "t.yaml:3: mqtt.bogus: unknown key");
    assert_string_equal(e.msg[2], "t.yaml:5: redis.port: not an integer: \"abc\"");
    assert_string_equal(e.msg[3], "t.yaml:8: nope: unknown section");
    assert_string_equal(e.msg[4], "t.yaml:7: limits.history_default: 300 is "
                                  "larger than limits.history_max (200)");
    config_free(&c);
}

/* More errors than the array holds: all counted, the first ones kept. */
static void test_error_overflow(void **state) {
    char text[2048], want[64];
    size_t n = 0;
    struct config c;
    struct config_errors e;

    (void)state;
    n += (size_t)snprintf(text + n, sizeof(text) - n, "mqtt:\n");
    for (int i = 0; i < CONFIG_MAX_ERRORS + 8; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "  k%d: 1\n", i);
    assert_true(n < sizeof(text));
    assert_int_equal(load_text(&c, &e, text), -1);
    assert_int_equal(e.count, CONFIG_MAX_ERRORS + 8);
    snprintf(want, sizeof(want), "t.yaml:%d: mqtt.k%d: unknown key",
             CONFIG_MAX_ERRORS + 1, CONFIG_MAX_ERRORS - 1);
    assert_string_equal(e.msg[CONFIG_MAX_ERRORS - 1], want);
    config_free(&c);
}

static void test_second_document(void **state) {
    (void)state;
    expect_error("mqtt:\n  qos: 1\n---\nredis:\n  port: 1\n",
                 "t.yaml:4: (top level): only one YAML document is allowed");
    expect_ok("mqtt:\n  qos: 1\n...\n");
}

/* ==================== Password files ==================== */

static void test_password_file(void **state) {
    static const struct { const char *data; const char *want; } cases[] = {
        { "s3cret\n", "s3cret" },
        { "s3cret\r\n", "s3cret" },
        { "no-newline", "no-newline" },
        { "two\n\n", "two\n" },
        { " spaces kept \n", " spaces kept " },
        { "lone-cr\r", "lone-cr\r" },
        { "x\r\n\r\n", "x\r\n" },
    };
    char path[64], text[256];
    struct config c;
    struct config_errors e;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_temp(path, cases[i].data, strlen(cases[i].data));
        snprintf(text, sizeof(text), "mqtt:\n  password_file: %s\n"
                 "redis:\n  password_file: '%s'\n", path, path);
        assert_int_equal(load_text(&c, &e, text), 0);
        assert_string_equal(c.mqtt_password, cases[i].want);
        assert_string_equal(c.redis_password, cases[i].want);
        config_free(&c);
        assert_int_equal(unlink(path), 0);
    }
}

static void test_password_file_errors(void **state) {
    char path[64], text[256], want[256], big[5000];

    (void)state;
    expect_error("mqtt:\n  qos: 1\n  password_file: /nonexistent/cb-secret\n",
                 "t.yaml:3: mqtt.password_file: cannot read "
                 "/nonexistent/cb-secret: No such file or directory");
    expect_error("redis:\n  password_file: /tmp\n",
                 "t.yaml:2: redis.password_file: cannot read /tmp: "
                 "Is a directory");

    write_temp(path, "\n", 1);
    snprintf(text, sizeof(text), "mqtt:\n  password_file: %s\n", path);
    snprintf(want, sizeof(want), "t.yaml:2: mqtt.password_file: %s: is empty",
             path);
    expect_error(text, want);
    unlink(path);

    write_temp(path, "ab\0cd", 5);
    snprintf(text, sizeof(text), "mqtt:\n  password_file: %s\n", path);
    snprintf(want, sizeof(want), "t.yaml:2: mqtt.password_file: %s: "
             "contains a NUL byte", path);
    expect_error(text, want);
    unlink(path);

    memset(big, 'x', sizeof(big));
    write_temp(path, big, 4097);
    snprintf(text, sizeof(text), "mqtt:\n  password_file: %s\n", path);
    snprintf(want, sizeof(want), "t.yaml:2: mqtt.password_file: cannot read "
             "%s: larger than 4096 bytes", path);
    expect_error(text, want);
    unlink(path);

    write_temp(path, big, 4096);     /* exactly the limit is fine */
    snprintf(text, sizeof(text), "mqtt:\n  password_file: %s\n", path);
    expect_ok(text);
    unlink(path);
}

/* A secret file or TLS key others may read is refused: it has leaked. */
static void test_secret_file_mode(void **state) {
    char path[64], text[256], want[256];

    (void)state;
    write_temp(path, "pw\n", 3);
    assert_int_equal(chmod(path, 0644), 0);
    snprintf(text, sizeof(text), "redis:\n  password_file: %s\n", path);
    snprintf(want, sizeof(want), "t.yaml:2: redis.password_file: %s: "
             "is accessible by others (chmod o-rwx it)", path);
    expect_error(text, want);
    snprintf(text, sizeof(text), "mqtt:\n  uri: ssl://b:8883\n  tls_cert_file: %s\n"
             "  tls_key_file: %s\n", path, path);
    expect_error(text, "t.yaml:4: mqtt.tls_key_file: is accessible by "
                 "others (chmod o-rwx it)");
    assert_int_equal(chmod(path, 0640), 0);     /* group is fine */
    {
        struct config c;
        struct config_errors e;

        assert_int_equal(load_text(&c, &e, text), 0);
        assert_string_equal(c.tls_key_file, path);
        config_free(&c);
    }
    assert_int_equal(unlink(path), 0);
}

/* Unknown names are quoted back without their control characters: an
 * error message must not drive the reader's terminal. */
static void test_unknown_names_sanitised(void **state) {
    (void)state;
    expect_error("mqtt:\n  \"\\e[31mred\": 1\n",
                 "t.yaml:2: mqtt.?[31mred: unknown key");
    expect_error("\"\\e]0;x\\a\":\n  a: 1\n", "t.yaml:1: ?]0;x?: unknown section");
}

/* TLS files need a TLS URI, and a key its certificate. */
static void test_tls_needs_tls_uri(void **state) {
    char path[64], text[256];

    (void)state;
    write_temp(path, "key", 3);
    snprintf(text, sizeof(text), "mqtt:\n  tls_ca_file: %s\n", path);
    expect_error(text, "t.yaml:2: mqtt.tls_ca_file: set, but mqtt.uri is not TLS "
                 "(ssl://, mqtts:// or wss://)");
    snprintf(text, sizeof(text), "mqtt:\n  uri: mqtts://b:8883\n  tls_key_file: %s\n",
             path);
    expect_error(text, "t.yaml:3: mqtt.tls_key_file: needs mqtt.tls_cert_file");
    assert_int_equal(unlink(path), 0);
}

/* Scale-out options: a group is one topic level, seeds are HOST:PORT. */
static void test_scale_out_options(void **state) {
    struct config c;
    struct config_errors e;

    (void)state;
    assert_int_equal(load_text(&c, &e, "mqtt:\n  shared_group: bridges\n"
                               "redis:\n  cluster: true\n"
                               "  cluster_nodes: 10.0.0.1:7000, h:7001 [::1]:7002\n"), 0);
    assert_string_equal(c.shared_group, "bridges");
    assert_int_equal(c.redis_cluster, 1);
    config_free(&c);
    expect_error("mqtt:\n  shared_group: a/b\n", "t.yaml:2: mqtt.shared_group: "
                 "must be one topic level without '/', '+', '#' or controls");
    expect_error("redis:\n  cluster_nodes: h:70000\n", "t.yaml:2: redis.cluster_nodes: "
                 "must be HOST:PORT words, separated by spaces or commas");
    expect_error("redis:\n  cluster_nodes: ' , '\n", "t.yaml:2: redis.cluster_nodes: "
                 "must name at least one HOST:PORT");
    expect_error("redis:\n  cluster_nodes: h:1 :2\n", "t.yaml:2: redis.cluster_nodes: "
                 "must be HOST:PORT words, separated by spaces or commas");
    expect_error("redis:\n  cluster_nodes: h:+7100\n", "t.yaml:2: redis.cluster_nodes: "
                 "must be HOST:PORT words, separated by spaces or commas");
    /* a socket that does not exist yet is fine (Redis may be starting) */
    assert_int_equal(load_text(&c, &e, "redis:\n  unix_socket: /nonexistent/redis.sock\n"), 0);
    config_free(&c);
    expect_error("redis:\n  cluster: true\n  unix_socket: /run/r.sock\n",
                 "t.yaml:3: redis.unix_socket: cannot be used with redis.cluster "
                 "(line 2): cluster nodes are HOST:PORT");
}

/* Sentinel: sentinels with the master's name, their own password (inline
 * or a private file); not with a cluster or a socket; the other keys
 * only with sentinels. */
static void test_sentinel_options(void **state) {
    struct config c;
    struct config_errors e;
    char path[64], text[512], want[256];

    (void)state;
    write_temp(path, "sentpw\n", 7);
    snprintf(text, sizeof(text), "redis:\n  sentinels: 10.0.0.1:26379, 10.0.0.2:26379 "
             "[::1]:26379\n  sentinel_master: my-master_1.a\n"
             "  sentinel_password_file: %s\n  wait_replicas: 1\n", path);
    assert_int_equal(load_text(&c, &e, text), 0);
    assert_string_equal(c.redis_sentinels, "10.0.0.1:26379, 10.0.0.2:26379 [::1]:26379");
    assert_string_equal(c.redis_sentinel_master, "my-master_1.a");
    assert_string_equal(c.redis_sentinel_password, "sentpw");
    assert_null(c.redis_password);                  /* the data nodes' is apart */
    config_free(&c);
    assert_int_equal(chmod(path, 0604), 0);
    snprintf(want, sizeof(want), "t.yaml:4: redis.sentinel_password_file: %s: "
             "is accessible by others (chmod o-rwx it)", path);
    expect_error(text, want);
    snprintf(text, sizeof(text), "redis:\n  sentinels: h:1\n  sentinel_master: m\n"
             "  sentinel_password: x\n  sentinel_password_file: %s\n", path);
    assert_int_equal(chmod(path, 0600), 0);
    expect_error(text, "t.yaml:5: redis.sentinel_password_file: both "
                 "redis.sentinel_password (line 4) and redis.sentinel_password_file "
                 "(line 5) are set; use one");
    unlink(path);

    expect_error("redis:\n  sentinels: h:1\n", "t.yaml:2: redis.sentinels: needs "
                 "redis.sentinel_master, the name the sentinels monitor");
    expect_error("redis:\n  cluster: true\n  sentinel_master: m\n  sentinels: h:1\n",
                 "t.yaml:4: redis.sentinels: cannot be used with redis.cluster (line 2): "
                 "a cluster fails over by itself");
    expect_error("redis:\n  sentinels: h:1\n  sentinel_master: m\n  unix_socket: /r.sock\n",
                 "t.yaml:2: redis.sentinels: cannot be used with redis.unix_socket (line 4): "
                 "the sentinels name a HOST:PORT");
    expect_error("redis:\n  sentinel_master: m\n",
                 "t.yaml:2: redis.sentinel_master: set, but redis.sentinels is not");
    expect_error("redis:\n  port: 1\n  sentinel_password: x\n",
                 "t.yaml:3: redis.sentinel_password: set, but redis.sentinels is not");
    expect_error("redis:\n  sentinels: h:1 h\n  sentinel_master: m\n",
                 "t.yaml:2: redis.sentinels: must be HOST:PORT words, separated by "
                 "spaces or commas");
    expect_error("redis:\n  sentinels: ''\n  sentinel_master: m\n",
                 "t.yaml:2: redis.sentinels: must name at least one HOST:PORT");
    expect_error("redis:\n  sentinels: h:1 h:2 h:3 h:4 h:5 h:6 h:7 h:8 h:9 h:10 h:11 h:12 "
                 "h:13 h:14 h:15 h:16 h:17\n  sentinel_master: m\n",
                 "t.yaml:2: redis.sentinels: names more than 16 sentinels");
    expect_error("redis:\n  sentinels: h:1\n  sentinel_master: 'my master'\n",
                 "t.yaml:3: redis.sentinel_master: may hold only letters, digits, "
                 "'.', '-' and '_'");
    expect_error("redis:\n  sentinels:\n    - h:1\n  sentinel_master: m\n",
                 "t.yaml:3: redis.sentinels: value must be a scalar");
}

/* identity and booleans are words; anything else is refused. */
static void test_identity_and_bools(void **state) {
    struct config c;
    struct config_errors e;

    (void)state;
    assert_int_equal(load_text(&c, &e, "mqtt:\n  identity: topic\n"
                               "  tls_verify_hostname: false\n"), 0);
    assert_int_equal(c.identity, CONFIG_IDENTITY_TOPIC);
    assert_int_equal(c.tls_verify_hostname, 0);
    config_free(&c);
    assert_int_equal(load_text(&c, &e, ""), 0);
    assert_int_equal(c.identity, CONFIG_IDENTITY_PAYLOAD);
    assert_int_equal(c.tls_verify_hostname, 1);
    config_free(&c);
    expect_error("mqtt:\n  identity: header\n",
                 "t.yaml:2: mqtt.identity: must be one of payload, topic, "
                 "not \"header\"");
    expect_error("mqtt:\n  tls_verify_hostname: maybe\n",
                 "t.yaml:2: mqtt.tls_verify_hostname: must be one of "
                 "true, false, not \"maybe\"");
}

static void test_password_and_password_file(void **state) {
    char path[64], text[256];

    (void)state;
    write_temp(path, "filepw\n", 7);
    snprintf(text, sizeof(text), "mqtt:\n  password: inline\n"
             "  password_file: %s\n", path);
    expect_error(text, "t.yaml:3: mqtt.password_file: both mqtt.password "
                 "(line 2) and mqtt.password_file (line 3) are set; use one");
    snprintf(text, sizeof(text), "redis:\n  password_file: %s\n"
             "  port: 1\n  password: inline\n", path);
    expect_error(text, "t.yaml:4: redis.password_file: both redis.password "
                 "(line 4) and redis.password_file (line 2) are set; use one");
    /* An empty password next to a file does not erase the file's. */
    snprintf(text, sizeof(text), "mqtt:\n  password_file: %s\n  password:\n",
             path);
    {
        struct config c;
        struct config_errors e;
        assert_int_equal(load_text(&c, &e, text), 0);
        assert_string_equal(c.mqtt_password, "filepw");
        config_free(&c);
    }
    unlink(path);
}

/* ==================== Files ==================== */

static void test_load_file(void **state) {
    const char *text = "mqtt:\n  qos: 0\n";
    char path[64];
    struct config c;
    struct config_errors e;

    (void)state;
    write_temp(path, text, strlen(text));
    assert_int_equal(config_load(&c, path, &e), 0);
    assert_int_equal(c.mqtt_qos, 0);
    config_free(&c);
    unlink(path);

    write_temp(path, "", 0);         /* an empty file is all defaults */
    assert_int_equal(config_load(&c, path, &e), 0);
    assert_defaults(&c);
    config_free(&c);
    unlink(path);
}

static void test_load_file_errors(void **state) {
    char path[64], want[128];
    struct config c;
    struct config_errors e;

    (void)state;
    assert_int_equal(config_load(&c, "/nonexistent/cb.yaml", &e), -1);
    assert_int_equal(e.count, 1);
    assert_string_equal(e.msg[0], "/nonexistent/cb.yaml: cannot open: "
                                  "No such file or directory");
    assert_defaults(&c);             /* still usable and freeable */
    config_free(&c);

    assert_int_equal(config_load(&c, "/tmp", &e), -1);
    assert_string_equal(e.msg[0], "/tmp: cannot read: Is a directory");
    config_free(&c);

    write_temp(path, "mqtt:\n  bogus: 1\n", 17);
    assert_int_equal(config_load(&c, path, &e), -1);
    snprintf(want, sizeof(want), "%s:2: mqtt.bogus: unknown key", path);
    assert_string_equal(e.msg[0], want);
    config_free(&c);
    unlink(path);

    /* errs may be NULL: the result alone still says it failed. */
    assert_int_equal(config_load_buffer(&c, "mqtt: 1\n", 8, NULL, NULL), -1);
    config_free(&c);
}

/* The shipped example must load cleanly and hold the product's values.
 * Tests run from the source tree (make test); skipped elsewhere. */
static void test_example_config(void **state) {
    struct config c;
    struct config_errors e;
    int rc;

    (void)state;
    if (access(EXAMPLE_CONFIG, R_OK) != 0) skip();
    rc = config_load(&c, EXAMPLE_CONFIG, &e);
    if (rc != 0) print_error("%s\n", e.count ? e.msg[0] : "?");
    assert_int_equal(rc, 0);
    assert_defaults(&c);
    config_free(&c);
}

/* ==================== Dump and garbage ==================== */

static void test_dump(void **state) {
    const char *text = "mqtt:\n  password: hunter2\n  version: 3.1.1\n"
                       "log:\n  level: debug\n";
    struct config c;
    struct config_errors e;
    char *out = NULL;
    size_t size = 0, lines = 0;
    FILE *f;

    (void)state;
    assert_int_equal(load_text(&c, &e, text), 0);
    f = open_memstream(&out, &size);
    assert_non_null(f);
    config_dump(&c, f);
    assert_int_equal(fclose(f), 0);
    assert_prefix(out, "mqtt.uri = tcp://127.0.0.1:1883\n");
    assert_contains(out, "\nmqtt.password = (set)\n");
    assert_contains(out, "\nredis.password = (unset)\n");
    assert_contains(out, "\nmqtt.username = (unset)\n");
    assert_contains(out, "\nmqtt.version = 3.1.1\n");
    assert_contains(out, "\nredis.port = 6379\n");
    assert_contains(out, "\nredis.key_prefix = chatroom\n");
    assert_contains(out, "\nlimits.history_max = 200\n");
    assert_contains(out, "\nlog.level = debug\n");
    assert_contains(out, "\njournal.fsync = batch\n");
    assert_null(strstr(out, "hunter2"));
    for (size_t i = 0; i < size; i++) lines += out[i] == '\n';
    assert_int_equal(lines, 51);     /* 54 options less 3 password_file */
    free(out);
    config_free(&c);
}

/* Limits, log level and intervals reload in place; anything else needs a
 * new bridge. */
static void test_needs_restart(void **state) {
    struct config a, b;
    struct config_errors e;
    (void)state;
    assert_int_equal(load_text(&a, &e, "limits:\n  history_max: 100\n"), 0);
    assert_int_equal(load_text(&b, &e, "limits:\n  history_max: 300\n"
                                       "log:\n  level: debug\n"), 0);
    assert_int_equal(config_needs_restart(&a, &b), 0);
    config_free(&b);
    assert_int_equal(load_text(&b, &e, "redis:\n  port: 6380\n"), 0);
    assert_int_equal(config_needs_restart(&a, &b), 1);
    config_free(&b);
    assert_int_equal(load_text(&b, &e, "mqtt:\n  password: x\n"), 0);
    assert_int_equal(config_needs_restart(&a, &b), 1);
    config_free(&b);
    config_free(&a);
}

/* A tiny deterministic PRNG, so a failure can be replayed. */
static uint32_t xorshift(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Check that a load result is coherent: 0 with no errors or -1 with some,
 * every kept message a terminated string. */
static void assert_coherent(int rc, const struct config_errors *e) {
    assert_true(rc == 0 || rc == -1);
    assert_int_equal(rc == 0, e->count == 0);
    for (int i = 0; i < e->count && i < CONFIG_MAX_ERRORS; i++)
        assert_true(memchr(e->msg[i], '\0', CONFIG_ERROR_LEN) != NULL);
}

static void test_binary_garbage(void **state) {
    static const char base[] = "mqtt:\n  uri: tcp://h:1\n  qos: 2\n"
                               "redis:\n  port: 1\nlog:\n  level: warn\n";
#define G(s) { s, sizeof(s) - 1 }
    static const struct { const char *data; size_t len; } fixed[] = {
        G("\0\0\0\0"), G("\xff\xfe\x00m\x00q"), G("\xef\xbb\xbf"),
        G("{{{{[[[["), G("&a *a"), G("*x"), G("!!binary AAAA"),
        G("%YAML 9.9\n---\n"), G("mqtt: !<tag:x> 1\n"), G("mqtt:\n  qos: 1\0\n"),
        G("\xfe\xff\x00m\x00q\x00t\x00t\x00:\x00 \x001"),
    };
#undef G
    char buf[512];
    struct config c;
    struct config_errors e;
    uint32_t seed = 12345;
    int rc;

    (void)state;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        rc = config_load_buffer(&c, fixed[i].data, fixed[i].len, "g", &e);
        assert_coherent(rc, &e);
        config_free(&c);
    }
    for (int round = 0; round < 2000; round++) {
        size_t len = xorshift(&seed) % sizeof(buf);
        if (round % 2) {             /* pure noise */
            for (size_t i = 0; i < len; i++) buf[i] = (char)xorshift(&seed);
        } else {                     /* a valid file with a few bytes hit */
            len = sizeof(base) - 1;
            memcpy(buf, base, len);
            for (int k = 0; k < 3; k++)
                buf[xorshift(&seed) % len] = (char)xorshift(&seed);
        }
        rc = config_load_buffer(&c, buf, len, "g", &e);
        assert_coherent(rc, &e);
        config_free(&c);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_valid_file),
        cmocka_unit_test(test_partial_file_keeps_defaults),
        cmocka_unit_test(test_empty_file_gives_defaults),
        cmocka_unit_test(test_version_and_level),
        cmocka_unit_test(test_null_values),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_top_level_not_mapping),
        cmocka_unit_test(test_unknown_section),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_section_not_mapping),
        cmocka_unit_test(test_non_scalar_value),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_bad_enum),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_topic_prefix_rules),
        cmocka_unit_test(test_key_prefix_rules),
        cmocka_unit_test(test_uri_and_client_id),
        cmocka_unit_test(test_history_default_above_max),
        cmocka_unit_test(test_multiple_errors),
        cmocka_unit_test(test_error_overflow),
        cmocka_unit_test(test_second_document),
        cmocka_unit_test(test_password_file),
        cmocka_unit_test(test_password_file_errors),
        cmocka_unit_test(test_password_and_password_file),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_example_config),
        cmocka_unit_test(test_dump),
        cmocka_unit_test(test_sentinel_options),
        cmocka_unit_test(test_secret_file_mode),
        cmocka_unit_test(test_identity_and_bools),
        cmocka_unit_test(test_unknown_names_sanitised),
        cmocka_unit_test(test_tls_needs_tls_uri),
        cmocka_unit_test(test_scale_out_options),
        cmocka_unit_test(test_needs_restart),
        cmocka_unit_test(test_binary_garbage),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
