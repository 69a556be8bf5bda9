/* harness.h -- real servers for integration tests.
 *
 * Starts redis-server, mosquitto (from a written config) and the bridge on
 * free 127.0.0.1 ports, inside one temporary directory, and stops each by
 * its PID. Provides small MQTT (Paho synchronous client, MQTT 5 or 3.1.1)
 * and Redis (hiredis) clients for the assertions. Every wait is bounded. */
#ifndef CB_HARNESS_H
#define CB_HARNESS_H

#include <stddef.h>
#include <sys/types.h>
#include <hiredis/hiredis.h>
#include <MQTTClient.h>

struct h_env {
    char dir[256];            /* the temporary directory */
    int redis_port, mqtt_port;
    pid_t redis_pid, mqtt_pid, bridge_pid;
    redisContext *redis;      /* a client for assertions */
};

/* Start redis-server and mosquitto. 0 or -1 (with a message on stderr). */
int h_start_servers(struct h_env *e);
/* Write a bridge config for these servers ('extra', if given, is appended
 * verbatim: whole extra sections such as "limits:\n  max_text_bytes: 10\n")
 * and start $CB_BRIDGE on it, under $CB_WRAPPER when set (valgrind). Waits
 * until the bridge answers a history request. 0 or -1. */
int h_start_bridge(struct h_env *e, const char *extra_yaml);
/* Stop the bridge with SIGTERM; returns its exit status (-1 if killed). */
int h_stop_bridge(struct h_env *e);
void h_stop_servers(struct h_env *e);

/* Run a command with a time limit, capturing stdout+stderr into out.
 * Returns the exit status, or -1. */
int h_run(char *const argv[], char *out, size_t outsize, int timeout_ms);

/* MQTT: a connected synchronous client; version 5 or 4 (3.1.1). */
MQTTClient h_mqtt_connect(struct h_env *e, const char *client_id, int version);
void h_mqtt_close(MQTTClient c);
int h_subscribe(MQTTClient c, const char *filter);
/* Publish QoS 1; MQTT 5 properties response_topic / correlation if given. */
int h_publish(MQTTClient c, const char *topic, const char *payload,
              const char *response_topic, const char *correlation);
/* Wait up to timeout_ms for a message; returns its payload (malloc'd,
 * NUL-terminated) and, if corr is given, its correlation data (malloc'd or
 * NULL). NULL on timeout. */
char *h_receive(MQTTClient c, int timeout_ms, char **topic, char **corr);

/* Redis: a command's reply (free with freeReplyObject). */
redisReply *h_redis(struct h_env *e, const char *fmt, ...);
/* Number of keys matching a pattern. */
long h_redis_count(struct h_env *e, const char *pattern);

#endif
