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

/* How h_start_servers_opt starts the servers, and h_redis_start and
 * h_mqtt_start start them again. All zero: what h_start_servers does. */
struct h_server_opts {
    int redis_aof;            /* --appendonly yes --appendfsync always */
    int redis_unix;           /* also listen on <dir>/redis.sock */
    int mqtt_persist;         /* mosquitto persistence in the temporary
                                 directory: saved every second and at exit */
    int mqtt_max_queued;      /* max_queued_messages; 0 = 100000 */
    const char *mqtt_extra;   /* appended to mosquitto.conf (listeners,
                                 acl_file, password_file...); when it says
                                 allow_anonymous, ours is left out */
};

struct h_env {
    char dir[256];            /* the temporary directory */
    int redis_port, mqtt_port;
    pid_t redis_pid, mqtt_pid, bridge_pid;
    redisContext *redis;      /* a client for assertions */
    struct h_server_opts opts;
    /* Set before starting the bridge (NULL: the defaults): */
    const char *bridge_mqtt_keys; /* added to the bridge's mqtt section;
                                     a "uri:" among them replaces ours */
    const char *probe_user, *probe_pass; /* the readiness probe's account */
    const char *probe_reply;  /* its reply topic; NULL = harness/ready */
};

/* Start redis-server and mosquitto. 0 or -1 (with a message on stderr). */
int h_start_servers(struct h_env *e);
/* The same with options (NULL: none). */
int h_start_servers_opt(struct h_env *e, const struct h_server_opts *o);
/* Write a bridge config for these servers ('extra', if given, is appended
 * verbatim: whole extra sections such as "limits:\n  max_text_bytes: 10\n")
 * and start $CB_BRIDGE on it, under $CB_WRAPPER when set (valgrind). Waits
 * until the bridge answers a history request. 0 or -1. */
int h_start_bridge(struct h_env *e, const char *extra_yaml);
/* The same, with redis_keys (e.g. "  timeout_ms: 1000\n") added to the
 * redis section; a "host:" among them replaces 127.0.0.1. */
int h_start_bridge_ex(struct h_env *e, const char *redis_keys, const char *extra_yaml);
/* Only write the configuration h_start_bridge_ex would start on (for a
 * reload: write, then send SIGHUP). 0 or -1. */
int h_write_bridge_config(struct h_env *e, const char *redis_keys, const char *extra_yaml);
/* Start the bridge again on the configuration last written; waits until
 * it is ready. 0 or -1. */
int h_restart_bridge(struct h_env *e);
/* Start it without waiting (for a bridge that is not meant to become
 * ready); its log is <dir>/bridge.log. 0 or -1. */
int h_spawn_bridge(struct h_env *e);
/* Wait up to timeout_ms until <dir>/bridge.log holds needle at least
 * times times. Returns how many times it was seen. */
int h_log_wait(struct h_env *e, const char *needle, int times, int timeout_ms);
/* Stop the bridge with SIGTERM; returns its exit status (-1 if killed). */
int h_stop_bridge(struct h_env *e);
/* SIGKILL the bridge and reap it. */
void h_kill_bridge(struct h_env *e);
/* 1 while the bridge process runs; 0 once it has exited (it is reaped). */
int h_bridge_alive(struct h_env *e);
void h_stop_servers(struct h_env *e);
/* The end of a test group: stop the bridge (if running), which must exit
 * 0 (under valgrind 99 means memory errors or leaks), then the servers;
 * the directory is kept when it did not. 0, or -1 for an unclean stop. */
int h_finish(struct h_env *e);
/* The same, removing the temporary directory only when keep is 0. */
void h_stop_servers_keep(struct h_env *e, int keep);

/* Faults: kill -9 redis-server (h_redis_kill), or stop it with SIGTERM
 * (h_redis_stop: its exit status, or -1), then start it again on the same
 * port and directory with the same options (h_redis_start: waits until it
 * listens and reconnects e->redis; 0 or -1). The same for mosquitto, whose
 * persistence, if on, is saved at a SIGTERM. */
void h_redis_kill(struct h_env *e);
int h_redis_stop(struct h_env *e);
int h_redis_start(struct h_env *e);
int h_mqtt_stop(struct h_env *e);
int h_mqtt_start(struct h_env *e);

/* This process's file descriptors of TCP connections to 127.0.0.1:port;
 * returns how many (at most max are stored). */
int h_tcp_fds(int port, int *fds, int max);
void h_sleep_ms(long ms);

/* Run a command with a time limit, capturing stdout+stderr into out.
 * Returns the exit status, or -1. */
int h_run(char *const argv[], char *out, size_t outsize, int timeout_ms);

/* MQTT: a connected synchronous client; version 5 or 4 (3.1.1). */
MQTTClient h_mqtt_connect(struct h_env *e, const char *client_id, int version);
/* The same with a username and password (NULL: none). */
MQTTClient h_mqtt_connect_as(struct h_env *e, const char *client_id, int version,
                             const char *user, const char *pass);
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
/* (Re)connect e->redis, e.g. after a command timed out. 0 or -1. */
int h_redis_reconnect(struct h_env *e);
/* Number of keys matching a pattern. */
long h_redis_count(struct h_env *e, const char *pattern);

#endif
