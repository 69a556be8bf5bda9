/* harness.c -- real servers for integration tests (see harness.h). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "sys.h"

void h_sleep_ms(long ms) {
    sys_sleep_ms(ms);
}

/* Start redis-server on e->redis_port in e->dir, with e->opts. */
static void h_spawn_redis(struct h_env *e) {
    char path[300], port[16], sock[300];
    snprintf(port, sizeof(port), "%d", e->redis_port);
    snprintf(sock, sizeof(sock), "%s/redis.sock", e->dir);
    char *redis_argv[] = { "redis-server", "--port", port, "--bind", "127.0.0.1",
        "--dir", e->dir, "--save", "", "--appendonly", "no", NULL, NULL, NULL, NULL,
        NULL, NULL, NULL };
    int n = 11;
    if (e->opts.redis_aof) {
        redis_argv[10] = "yes";
        redis_argv[n++] = "--appendfsync";
        redis_argv[n++] = "always";
    }
    if (e->opts.redis_unix) {
        redis_argv[n++] = "--unixsocket";
        redis_argv[n++] = sock;
        redis_argv[n++] = "--unixsocketperm";
        redis_argv[n++] = "700";
    }
    snprintf(path, sizeof(path), "%s/redis.log", e->dir);
    e->redis_pid = sys_spawn(redis_argv, path, 0);
}

/* Write mosquitto.conf for e->mqtt_port and e->opts. 0 or -1. */
static int h_write_mqtt_conf(struct h_env *e) {
    char path[300], conf[4096];
    const char *extra = e->opts.mqtt_extra ? e->opts.mqtt_extra : "";
    int n = snprintf(conf, sizeof(conf), "listener %d 127.0.0.1\n%s%s", e->mqtt_port,
                     strstr(extra, "allow_anonymous") ? "" : "allow_anonymous true\n",
                     extra);
    /* As root, mosquitto would drop to its own user, which cannot write
     * its database into our private directory: stay root then. */
    if (e->opts.mqtt_persist)
        n += snprintf(conf + n, sizeof(conf) - (size_t)n, "persistence true\n"
                      "persistence_location %s/\nautosave_interval 1\n%s", e->dir,
                      geteuid() == 0 ? "user root\n" : "");
    else
        n += snprintf(conf + n, sizeof(conf) - (size_t)n, "persistence false\n");
    snprintf(conf + n, sizeof(conf) - (size_t)n, "max_queued_messages %d\n",
             e->opts.mqtt_max_queued > 0 ? e->opts.mqtt_max_queued : 100000);
    snprintf(path, sizeof(path), "%s/mosquitto.conf", e->dir);
    return sys_write_file(path, conf);
}

/* Start mosquitto on the configuration h_write_mqtt_conf wrote. */
static void h_spawn_mqtt(struct h_env *e) {
    char path[300], log[300];
    snprintf(path, sizeof(path), "%s/mosquitto.conf", e->dir);
    snprintf(log, sizeof(log), "%s/mosquitto.log", e->dir);
    char *mq_argv[] = { "mosquitto", "-c", path, NULL };
    e->mqtt_pid = sys_spawn(mq_argv, log, 0);
}

/* (Re)connect the assertion client e->redis. 0 or -1. */
int h_redis_reconnect(struct h_env *e) {
    struct timeval tv = { 5, 0 };
    if (e->redis) redisFree(e->redis);
    e->redis = redisConnectWithTimeout("127.0.0.1", e->redis_port, tv);
    return e->redis && !e->redis->err ? 0 : -1;
}

int h_start_servers(struct h_env *e) {
    return h_start_servers_opt(e, NULL);
}

/* A temporary directory, free ports, both servers; the Redis client. */
int h_start_servers_opt(struct h_env *e, const struct h_server_opts *o) {
    snprintf(e->dir, sizeof(e->dir), "/tmp/chat-bridge-test.XXXXXX");
    if (mkdtemp(e->dir) == NULL) return -1;
    e->opts = o ? *o : (struct h_server_opts){ 0 };
    e->redis_port = sys_free_port();
    e->mqtt_port = sys_free_port();
    h_spawn_redis(e);
    if (h_write_mqtt_conf(e) < 0) return -1;
    h_spawn_mqtt(e);
    if (sys_wait_port(e->redis_port, 10000, NULL) < 0 || sys_wait_port(e->mqtt_port, 10000, NULL) < 0) {
        fprintf(stderr, "harness: servers did not start (see %s)\n", e->dir);
        return -1;
    }
    return h_redis_reconnect(e);
}

int h_finish(struct h_env *e) {
    int rc = e->bridge_pid > 0 ? h_stop_bridge(e) : 0;
    if (rc != 0) {
        fprintf(stderr, "bridge exited with %d (see %s/bridge.log)\n", rc, e->dir);
        setenv("CB_KEEP", "1", 1);
    }
    h_stop_servers(e);
    return rc == 0 ? 0 : -1;
}

void h_stop_servers(struct h_env *e) {
    h_stop_servers_keep(e, getenv("CB_KEEP") != NULL);
}

/* Stop both servers by PID; remove the directory unless keep. */
void h_stop_servers_keep(struct h_env *e, int keep) {
    if (e->redis) redisFree(e->redis);
    e->redis = NULL;
    sys_stop_pid(e->mqtt_pid, 5000);
    sys_stop_pid(e->redis_pid, 5000);
    e->mqtt_pid = e->redis_pid = 0;
    if (!keep) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
        if (system(cmd) != 0) fprintf(stderr, "harness: cannot remove %s\n", e->dir);
    }
}

/* ==================== Faults ==================== */

/* kill -9 redis-server and reap it. */
void h_redis_kill(struct h_env *e) {
    if (e->redis) redisFree(e->redis);
    e->redis = NULL;
    if (e->redis_pid > 0) {
        kill(e->redis_pid, SIGKILL);
        waitpid(e->redis_pid, NULL, 0);
    }
    e->redis_pid = 0;
}

/* SIGTERM redis-server; its exit status. */
int h_redis_stop(struct h_env *e) {
    if (e->redis) redisFree(e->redis);
    e->redis = NULL;
    int rc = sys_stop_pid(e->redis_pid, 10000);
    e->redis_pid = 0;
    return rc;
}

/* redis-server again, same port, directory and options. */
int h_redis_start(struct h_env *e) {
    h_spawn_redis(e);
    if (sys_wait_port(e->redis_port, 10000, NULL) < 0) {
        fprintf(stderr, "harness: redis-server did not restart (see %s)\n", e->dir);
        return -1;
    }
    return h_redis_reconnect(e);
}

/* SIGTERM mosquitto (it saves its persistence); its exit status. */
int h_mqtt_stop(struct h_env *e) {
    int rc = sys_stop_pid(e->mqtt_pid, 10000);
    e->mqtt_pid = 0;
    return rc;
}

/* mosquitto again on the same configuration and port. */
int h_mqtt_start(struct h_env *e) {
    h_spawn_mqtt(e);
    if (sys_wait_port(e->mqtt_port, 10000, NULL) < 0) {
        fprintf(stderr, "harness: mosquitto did not restart (see %s)\n", e->dir);
        return -1;
    }
    return 0;
}


/* 1 when fd is a socket connected to 127.0.0.1:port. */
static int h_fd_peer_is(int fd, int port) {
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    if (getpeername(fd, (struct sockaddr *)&a, &len) != 0 || a.sin_family != AF_INET)
        return 0;
    return ntohs(a.sin_port) == port && a.sin_addr.s_addr == htonl(INADDR_LOOPBACK);
}

/* This process's sockets connected to 127.0.0.1:port. */
int h_tcp_fds(int port, int *fds, int max) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d == NULL) return 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        if (*end != '\0' || end == de->d_name || fd == dirfd(d)) continue;
        if (!h_fd_peer_is((int)fd, port)) continue;
        if (n < max) fds[n] = (int)fd;
        n++;
    }
    closedir(d);
    return n;
}

/* Split $CB_WRAPPER ("valgrind -q ...") and the bridge command into argv. */
static int h_bridge_argv(char **argv, int max, char *wrapper, char *conf) {
    int n = 0;
    for (char *tok = strtok(wrapper, " "); tok && n < max - 4; tok = strtok(NULL, " "))
        argv[n++] = tok;
    argv[n++] = getenv("CB_BRIDGE") ? getenv("CB_BRIDGE") : "build/chat-bridge";
    argv[n++] = "-c";
    argv[n++] = conf;
    argv[n] = NULL;
    return n;
}

/* Ask for a history page until the bridge answers (it is subscribed and
 * Redis is reachable), for at most 60 s: valgrind starts slowly. */
static int h_wait_bridge(struct h_env *e) {
    const char *reply = e->probe_reply ? e->probe_reply : "harness/ready";
    MQTTClient c = h_mqtt_connect_as(e, "harness-probe", 5, e->probe_user, e->probe_pass);
    int rc = -1;
    if (c == NULL || h_subscribe(c, reply) != 0) goto done;
    for (int i = 0; i < 60 && rc < 0; i++) {
        int status;
        if (waitpid(e->bridge_pid, &status, WNOHANG) == e->bridge_pid) {
            e->bridge_pid = 0;
            break;
        }
        h_publish(c, "chat/ready/history", "{}", reply, NULL);
        char *got = h_receive(c, 1000, NULL, NULL);
        if (got) rc = 0;
        free(got);
    }
done:
    h_mqtt_close(c);
    return rc;
}

int h_start_bridge(struct h_env *e, const char *extra_yaml) {
    return h_start_bridge_ex(e, NULL, extra_yaml);
}

/* Write the bridge's configuration and start it. */
int h_start_bridge_ex(struct h_env *e, const char *redis_keys, const char *extra_yaml) {
    if (h_write_bridge_config(e, redis_keys, extra_yaml) < 0) return -1;
    return h_restart_bridge(e);
}

/* Write <dir>/bridge.yaml for these servers, plus the extra sections. */
int h_write_bridge_config(struct h_env *e, const char *redis_keys, const char *extra_yaml) {
    const char *mqtt_keys = e->bridge_mqtt_keys ? e->bridge_mqtt_keys : "";
    char conf[300], yaml[4096], uri[64] = "";
    snprintf(conf, sizeof(conf), "%s/bridge.yaml", e->dir);
    char journal[400] = "";
    if (extra_yaml == NULL || strstr(extra_yaml, "journal:") == NULL)
        snprintf(journal, sizeof(journal), "journal:\n  dir: %s/journal\n", e->dir);
    if (strstr(mqtt_keys, "uri:") == NULL)
        snprintf(uri, sizeof(uri), "  uri: tcp://127.0.0.1:%d\n", e->mqtt_port);
    snprintf(yaml, sizeof(yaml),
             "mqtt:\n%s  client_id: chat-bridge-test\n"
             "  topic_prefix: chat\n  qos: 1\n%s"
             "redis:\n%s  port: %d\n  key_prefix: chatroom\n%s%s%s",
             uri, mqtt_keys, redis_keys && strstr(redis_keys, "host:") ? "" : "  host: 127.0.0.1\n",
             e->redis_port, redis_keys ? redis_keys : "", journal,
             extra_yaml ? extra_yaml : "");
    return sys_write_file(conf, yaml);
}

/* Start the bridge on the configuration last written, without waiting. */
int h_spawn_bridge(struct h_env *e) {
    char conf[300], log[300], wrapper[512];
    char *argv[32];
    snprintf(conf, sizeof(conf), "%s/bridge.yaml", e->dir);
    snprintf(log, sizeof(log), "%s/bridge.log", e->dir);
    snprintf(wrapper, sizeof(wrapper), "%s", getenv("CB_WRAPPER") ? getenv("CB_WRAPPER") : "");
    h_bridge_argv(argv, 32, wrapper, conf);
    e->bridge_pid = sys_spawn(argv, log, 0);
    return e->bridge_pid > 0 ? 0 : -1;
}

/* Start the bridge on the configuration last written; wait until ready. */
int h_restart_bridge(struct h_env *e) {
    char log[300];
    snprintf(log, sizeof(log), "%s/bridge.log", e->dir);
    if (h_spawn_bridge(e) < 0 || h_wait_bridge(e) < 0) {
        fprintf(stderr, "harness: bridge did not become ready (see %s)\n", log);
        return -1;
    }
    return 0;
}

/* Occurrences of needle in the bridge's log as it is now. */
static int h_log_count(struct h_env *e, const char *needle) {
    char path[300], line[4096];
    int n = 0;
    snprintf(path, sizeof(path), "%s/bridge.log", e->dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) return 0;
    while (fgets(line, sizeof(line), f))
        for (const char *p = line; (p = strstr(p, needle)) != NULL; p++) n++;
    fclose(f);
    return n;
}

int h_log_wait(struct h_env *e, const char *needle, int times, int timeout_ms) {
    int n = h_log_count(e, needle);
    for (int waited = 0; n < times && waited < timeout_ms; waited += 100) {
        h_sleep_ms(100);
        n = h_log_count(e, needle);
    }
    return n;
}

int h_stop_bridge(struct h_env *e) {
    int rc = sys_stop_pid(e->bridge_pid, 30000);
    e->bridge_pid = 0;
    return rc;
}

/* kill -9 the bridge and reap it. */
void h_kill_bridge(struct h_env *e) {
    if (e->bridge_pid > 0) {
        kill(e->bridge_pid, SIGKILL);
        waitpid(e->bridge_pid, NULL, 0);
    }
    e->bridge_pid = 0;
}

/* 1 while the bridge runs; reaps it once it has exited. */
int h_bridge_alive(struct h_env *e) {
    if (e->bridge_pid <= 0) return 0;
    if (waitpid(e->bridge_pid, NULL, WNOHANG) == 0) return 1;
    e->bridge_pid = 0;
    return 0;
}

int h_run(char *const argv[], char *out, size_t outsize, int timeout_ms) {
    char path[] = "/tmp/chat-bridge-run.XXXXXX";
    int fd = mkstemp(path), status = -1;
    if (fd < 0) return -1;
    close(fd);
    pid_t pid = sys_spawn(argv, path, 0);
    int waited = 0;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if ((waited += 20) > timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            status = -1;
            break;
        }
        h_sleep_ms(20);
    }
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(out, 1, outsize - 1, f) : 0;
    out[n] = '\0';
    if (f) fclose(f);
    unlink(path);
    return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ==================== MQTT client ==================== */

MQTTClient h_mqtt_connect(struct h_env *e, const char *client_id, int version) {
    return h_mqtt_connect_as(e, client_id, version, NULL, NULL);
}

MQTTClient h_mqtt_connect_as(struct h_env *e, const char *client_id, int version,
                             const char *user, const char *pass) {
    char uri[64];
    MQTTClient c;
    MQTTClient_createOptions co = MQTTClient_createOptions_initializer;
    MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
    MQTTClient_connectOptions opts5 = MQTTClient_connectOptions_initializer5;
    snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", e->mqtt_port);
    co.MQTTVersion = version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
    if (MQTTClient_createWithOptions(&c, uri, client_id, MQTTCLIENT_PERSISTENCE_NONE,
                                     NULL, &co) != MQTTCLIENT_SUCCESS)
        return NULL;
    if (version == 5) opts = opts5;
    opts.keepAliveInterval = 30;
    opts.username = user;
    opts.password = pass;
    int rc;
    if (version == 5) {
        MQTTResponse r = MQTTClient_connect5(c, &opts, NULL, NULL);
        rc = r.reasonCode;
        MQTTResponse_free(r);
    } else {
        rc = MQTTClient_connect(c, &opts);
    }
    if (rc != MQTTCLIENT_SUCCESS) {
        MQTTClient_destroy(&c);
        return NULL;
    }
    return c;
}

void h_mqtt_close(MQTTClient c) {
    if (c == NULL) return;
    if (MQTTClient_isConnected(c)) {
        MQTTClient_disconnect5(c, 1000, MQTTREASONCODE_SUCCESS, NULL);
        MQTTClient_disconnect(c, 1000);
    }
    MQTTClient_destroy(&c);
}

int h_subscribe(MQTTClient c, const char *filter) {
    MQTTResponse r = MQTTClient_subscribe5(c, filter, 1, NULL, NULL);
    int rc = r.reasonCode;
    MQTTResponse_free(r);
    if (rc == MQTTCLIENT_WRONG_MQTT_VERSION || rc == MQTTCLIENT_BAD_MQTT_VERSION)
        rc = MQTTClient_subscribe(c, filter, 1);
    return rc <= 2 ? 0 : -1;
}

/* Add a binary or string property to props. */
static void h_prop(MQTTProperties *props, enum MQTTPropertyCodes code, const char *v) {
    MQTTProperty p = { .identifier = code };
    p.value.data.data = (char *)v;
    p.value.data.len = (int)strlen(v);
    MQTTProperties_add(props, &p);
}

int h_publish(MQTTClient c, const char *topic, const char *payload,
              const char *response_topic, const char *correlation) {
    MQTTClient_message m = MQTTClient_message_initializer;
    MQTTClient_deliveryToken tok;
    m.payload = (void *)payload;
    m.payloadlen = (int)strlen(payload);
    m.qos = 1;
    if (response_topic) h_prop(&m.properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC, response_topic);
    if (correlation) h_prop(&m.properties, MQTTPROPERTY_CODE_CORRELATION_DATA, correlation);
    MQTTResponse r = MQTTClient_publishMessage5(c, topic, &m, &tok);
    int rc = r.reasonCode;
    MQTTResponse_free(r);
    MQTTProperties_free(&m.properties);
    if (rc == MQTTCLIENT_WRONG_MQTT_VERSION || rc == MQTTCLIENT_BAD_MQTT_VERSION)
        rc = MQTTClient_publishMessage(c, topic, &m, &tok);
    if (rc == MQTTCLIENT_SUCCESS) rc = MQTTClient_waitForCompletion(c, tok, 5000);
    return rc == MQTTCLIENT_SUCCESS ? 0 : -1;
}

char *h_receive(MQTTClient c, int timeout_ms, char **topic, char **corr) {
    char *name = NULL, *out = NULL;
    int len = 0;
    MQTTClient_message *m = NULL;
    if (corr) *corr = NULL;
    if (topic) *topic = NULL;
    for (int waited = 0; m == NULL && waited < timeout_ms; waited += 100)
        if (MQTTClient_receive(c, &name, &len, &m, 100) != MQTTCLIENT_SUCCESS) break;
    if (m == NULL) return NULL;
    out = calloc(1, (size_t)m->payloadlen + 1);
    if (out) memcpy(out, m->payload, (size_t)m->payloadlen);
    MQTTProperty *p = MQTTProperties_getProperty(&m->properties,
                                                 MQTTPROPERTY_CODE_CORRELATION_DATA);
    if (corr && p) *corr = strndup(p->value.data.data, (size_t)p->value.data.len);
    if (topic) *topic = strdup(name);
    MQTTClient_freeMessage(&m);
    MQTTClient_free(name);
    return out;
}

/* ==================== Redis client ==================== */

redisReply *h_redis(struct h_env *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(e->redis, fmt, ap);
    va_end(ap);
    return r;
}

long h_redis_count(struct h_env *e, const char *pattern) {
    redisReply *r = h_redis(e, "KEYS %s", pattern);
    long n = r && r->type == REDIS_REPLY_ARRAY ? (long)r->elements : -1;
    if (r) freeReplyObject(r);
    return n;
}
