/* harness.c -- real servers for integration tests (see harness.h). */
#include <arpa/inet.h>
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

static void h_sleep_ms(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* A port the kernel just gave out on 127.0.0.1; free when we return. */
static int h_free_port(void) {
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

/* Wait until something accepts connections on 127.0.0.1:port. */
static int h_wait_port(int port, int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        if (fd >= 0) close(fd);
        if (ok) return 0;
        h_sleep_ms(50);
    }
    return -1;
}

/* fork+exec argv with stdout and stderr appended to logfile. */
static pid_t h_spawn(char *const argv[], const char *logfile) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    execvp(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* SIGTERM, wait up to timeout_ms, then SIGKILL. Exit status or -1. */
static int h_stop_pid(pid_t pid, int timeout_ms) {
    int status;
    if (pid <= 0) return -1;
    kill(pid, SIGTERM);
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        h_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

static int h_write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f == NULL) return -1;
    fputs(text, f);
    return fclose(f);
}

int h_start_servers(struct h_env *e) {
    char path[300], conf[600], port[16];
    snprintf(e->dir, sizeof(e->dir), "/tmp/chat-bridge-test.XXXXXX");
    if (mkdtemp(e->dir) == NULL) return -1;
    e->redis_port = h_free_port();
    e->mqtt_port = h_free_port();
    snprintf(port, sizeof(port), "%d", e->redis_port);
    char *redis_argv[] = { "redis-server", "--port", port, "--bind", "127.0.0.1",
        "--dir", e->dir, "--save", "", "--appendonly", "no", NULL };
    snprintf(path, sizeof(path), "%s/redis.log", e->dir);
    e->redis_pid = h_spawn(redis_argv, path);

    snprintf(conf, sizeof(conf), "listener %d 127.0.0.1\nallow_anonymous true\n"
             "persistence false\nmax_queued_messages 100000\n", e->mqtt_port);
    snprintf(path, sizeof(path), "%s/mosquitto.conf", e->dir);
    if (h_write_file(path, conf) < 0) return -1;
    char *mq_argv[] = { "mosquitto", "-c", path, NULL };
    char log[300];
    snprintf(log, sizeof(log), "%s/mosquitto.log", e->dir);
    e->mqtt_pid = h_spawn(mq_argv, log);

    if (h_wait_port(e->redis_port, 10000) < 0 || h_wait_port(e->mqtt_port, 10000) < 0) {
        fprintf(stderr, "harness: servers did not start (see %s)\n", e->dir);
        return -1;
    }
    struct timeval tv = { 5, 0 };
    e->redis = redisConnectWithTimeout("127.0.0.1", e->redis_port, tv);
    return e->redis && !e->redis->err ? 0 : -1;
}

void h_stop_servers(struct h_env *e) {
    if (e->redis) redisFree(e->redis);
    e->redis = NULL;
    h_stop_pid(e->mqtt_pid, 5000);
    h_stop_pid(e->redis_pid, 5000);
    e->mqtt_pid = e->redis_pid = 0;
    if (getenv("CB_KEEP") == NULL) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
        if (system(cmd) != 0) fprintf(stderr, "harness: cannot remove %s\n", e->dir);
    }
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
    MQTTClient c = h_mqtt_connect(e, "harness-probe", 5);
    int rc = -1;
    if (c == NULL || h_subscribe(c, "harness/ready") != 0) goto done;
    for (int i = 0; i < 60 && rc < 0; i++) {
        int status;
        if (waitpid(e->bridge_pid, &status, WNOHANG) == e->bridge_pid) {
            e->bridge_pid = 0;
            break;
        }
        h_publish(c, "chat/ready/history", "{}", "harness/ready", NULL);
        char *reply = h_receive(c, 1000, NULL, NULL);
        if (reply) rc = 0;
        free(reply);
    }
done:
    h_mqtt_close(c);
    return rc;
}

int h_start_bridge(struct h_env *e, const char *extra_yaml) {
    char conf[300], log[300], yaml[2048], wrapper[512];
    char *argv[32];
    snprintf(conf, sizeof(conf), "%s/bridge.yaml", e->dir);
    snprintf(log, sizeof(log), "%s/bridge.log", e->dir);
    snprintf(yaml, sizeof(yaml),
             "mqtt:\n  uri: tcp://127.0.0.1:%d\n  client_id: chat-bridge-test\n"
             "  topic_prefix: chat\n  qos: 1\n"
             "redis:\n  host: 127.0.0.1\n  port: %d\n  key_prefix: chatroom\n%s",
             e->mqtt_port, e->redis_port, extra_yaml ? extra_yaml : "");
    if (h_write_file(conf, yaml) < 0) return -1;
    snprintf(wrapper, sizeof(wrapper), "%s", getenv("CB_WRAPPER") ? getenv("CB_WRAPPER") : "");
    h_bridge_argv(argv, 32, wrapper, conf);
    e->bridge_pid = h_spawn(argv, log);
    if (e->bridge_pid < 0 || h_wait_bridge(e) < 0) {
        fprintf(stderr, "harness: bridge did not become ready (see %s)\n", log);
        return -1;
    }
    return 0;
}

int h_stop_bridge(struct h_env *e) {
    int rc = h_stop_pid(e->bridge_pid, 30000);
    e->bridge_pid = 0;
    return rc;
}

int h_run(char *const argv[], char *out, size_t outsize, int timeout_ms) {
    char path[] = "/tmp/chat-bridge-run.XXXXXX";
    int fd = mkstemp(path), status = -1;
    if (fd < 0) return -1;
    close(fd);
    pid_t pid = h_spawn(argv, path);
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
