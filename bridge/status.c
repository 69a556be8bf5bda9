/* status.c -- the bridge's status document, published retained on the
 * status topic: connection states, journal, counts and latencies. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>

#include "status.h"

#define CB_STATUS_VERSION 1

/* {"p50": .., "p99": .., "max": ..} in milliseconds. */
static json_t *latency(const double *ms) {
    return json_pack("{s:f, s:f, s:f}", "p50", ms[0], "p99", ms[1], "max", ms[2]);
}

/* Refusals by error code, only the codes that occurred. */
static json_t *rejections(const struct stats_snapshot *st) {
    json_t *o = json_object();
    for (int i = 1; o && i < CODEC_ERR_COUNT; i++)
        if (st->rejected_by[i])
            json_object_set_new(o, codec_err_code(i), json_integer((json_int_t)st->rejected_by[i]));
    if (o && st->reply_refused)
        json_object_set_new(o, "reply_topic_refused", json_integer((json_int_t)st->reply_refused));
    return o;
}

static json_t *counts(const struct stats_snapshot *st) {
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
                     " s:I, s:I, s:I, s:o}",
        "received", (json_int_t)st->received, "stored", (json_int_t)st->stored,
        "republished", (json_int_t)st->republished, "replies", (json_int_t)st->replies,
        "duplicates", (json_int_t)st->duplicates, "replayed", (json_int_t)st->replayed,
        "history", (json_int_t)st->history, "deleted", (json_int_t)st->deleted,
        "edited", (json_int_t)st->edited, "read_markers", (json_int_t)st->read_markers,
        "receipts", (json_int_t)st->receipts,
        "redis_retries", (json_int_t)st->redis_retries,
        "redis_moved", (json_int_t)st->redis_moved, "redis_ask", (json_int_t)st->redis_ask,
        "redis_wait_short", (json_int_t)st->redis_wait_short,
        "redis_failovers", (json_int_t)st->redis_failovers,
        "publish_errors", (json_int_t)st->publish_errors,
        "rejected", (json_int_t)st->rejected, "rejected_by", rejections(st));
}

/* A string, or null when empty. */
static json_t *string_or_null(const char *s) {
    return s[0] ? json_string(s) : json_null();
}

/* The words of a space-separated list as a JSON array. */
static json_t *words(const char *list) {
    json_t *a = json_array();
    for (const char *p = list; a && *p; ) {
        size_t n = strcspn(p, " ");
        if (n) json_array_append_new(a, json_stringn(p, n));
        p += n + (p[n] == ' ');
    }
    return a;
}

/* Where writes go: "redis_primary" (null: not known yet, or a cluster);
 * with Sentinel, "sentinel": the master's name, the sentinels whose
 * failover events are followed ([]: none answers) and the failovers
 * followed; null otherwise. */
static void redis_where(json_t *doc, const struct config *cfg, const struct stats_snapshot *st) {
    const char *master = cfg->redis_sentinel_master ? cfg->redis_sentinel_master : "";
    json_object_set_new(doc, "redis_primary", string_or_null(st->redis_primary));
    json_object_set_new(doc, "sentinel", cfg->redis_sentinels
        ? json_pack("{s:s, s:o, s:I}", "master", master, "watching", words(st->redis_sentinel),
                    "failovers", (json_int_t)st->redis_failovers)
        : json_null());
}

char *status_doc(const struct config *cfg, const struct stats_snapshot *st,
                        int online, size_t *len) {
    json_t *doc = json_pack("{s:i, s:s, s:b, s:I, s:I, s:s, s:s, s:{s:I, s:I, s:I}, "
                            "s:I, s:o, s:{s:o, s:o}}",
        "version", CB_STATUS_VERSION, "client_id", cfg->mqtt_client_id,
        "online", online, "ts", (json_int_t)time(NULL) * 1000,
        "uptime_s", (json_int_t)st->uptime_s,
        "mqtt", online && st->mqtt_ready ? "up" : "down",
        "redis", online && st->redis_connected ? "up" : "down",
        "journal", "bytes", (json_int_t)st->journal_bytes,
        "unstored", (json_int_t)st->journal_unstored, "max", (json_int_t)st->journal_max,
        "outbox", (json_int_t)st->outbox, "counts", counts(st),
        "latency_ms", "store", latency(st->store_ms), "end_to_end", latency(st->e2e_ms));
    if (doc == NULL) return NULL;
    /* which group of bridges shares the requests (null: none) */
    json_object_set_new(doc, "shared_group", cfg->shared_group
                        ? json_string(cfg->shared_group) : json_null());
    json_object_set_new(doc, "instance", json_string(st->instance));
    redis_where(doc, cfg, st);
    json_t *j = json_object_get(doc, "journal");
    json_object_set_new(j, "disk_full", json_boolean(st->journal_disk_full));
    json_object_set_new(j, "released_early",
                        json_integer((json_int_t)st->journal_released_early));
    char *s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (s) *len = strlen(s);
    return s;
}

char *status_offline_doc(const struct config *cfg, size_t *len) {
    json_t *doc = json_pack("{s:i, s:s, s:b}", "version", CB_STATUS_VERSION,
                            "client_id", cfg->mqtt_client_id, "online", 0);
    if (doc == NULL) return NULL;
    char *s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (s) *len = strlen(s);
    return s;
}
