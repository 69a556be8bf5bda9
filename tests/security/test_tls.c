/* test_tls.c -- the bridge's TLS to the broker (ssl://, mqtts://), against
 * real mosquitto TLS listeners and certificates made here with openssl:
 *
 *   - a broker signed by the configured CA (file or hashed directory):
 *     the bridge connects, stores and republishes;
 *   - a broker signed by another CA, or whose certificate names another
 *     host: the bridge refuses, says why once (not at every retry), stores
 *     nothing and stays up; tls_verify_hostname: false accepts the name;
 *   - a listener that requires a client certificate: the bridge connects
 *     with tls_cert_file/tls_key_file, and is refused without;
 *   - brokers that speak at most TLS 1.1 (an OpenSSL configuration given
 *     to mosquitto, since its tls_version is only a minimum): refused,
 *     including with RSA key exchange, which OpenSSL 3 would otherwise
 *     accept at Paho's security level; a TLS 1.2 broker is accepted;
 *   - tls_* options with a tcp:// URI: the bridge does not start.
 *
 * The plain listener of the harness stays: the readiness probe and the
 * test clients use it (the test's Paho client has no TLS). Bridges that
 * must not become ready are started here, not by h_start_bridge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "sys.h"

#define WAIT_MS 5000

static struct h_env env;
static char pki[] = "/tmp/chat-bridge-tls.XXXXXX";
static int pki_made;
/* Listeners of the harness's broker, and the two legacy brokers. */
static int port_good, port_wrong, port_client, port_tls11_ec, port_tls11_rsa, port_tls12;
static pid_t tls11_pid, tls12_pid;
static pid_t spawned;              /* a bridge started by spawn_bridge() */
static char keys[1024];            /* the bridge's mqtt keys (env.bridge_mqtt_keys) */

/* ==================== Helpers ==================== */

/* Bound of a wait for the bridge: longer under valgrind. */
static int bridge_wait_ms(void) {
    return getenv("CB_WRAPPER") && getenv("CB_WRAPPER")[0] ? 60000 : 20000;
}

/* Run a shell command line (bounded); its exit status, output in out. */
static int sh(const char *cmd, char *out, size_t outsize) {
    char *argv[] = { "sh", "-c", (char *)cmd, NULL };
    return h_run(argv, out, outsize, 60000);
}

/* The CAs, broker and client certificates, in pki: EC keys except the
 * RSA pair needed for RSA key exchange. Brokers' keys are readable by
 * mosquitto's own user (it drops root); the bridge's is 0600 as the
 * configuration requires. 0 or -1. */
static int make_pki(void) {
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof(cmd),
        "set -e; cd '%s'\n"
        "EC='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
        "RSA='-newkey rsa:2048 -nodes'\n"
        "openssl req -x509 $EC -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca\n"
        "openssl req -x509 $EC -keyout ca2.key -out ca2.crt -days 2 -subj /CN=other-ca\n"
        "openssl req -x509 $RSA -keyout rca.key -out rca.crt -days 2 -subj /CN=rsa-ca\n"
        "sign() {\n"
        "  openssl req $3 -keyout $1.key -out $1.csr -subj /CN=$4\n"
        "  printf 'subjectAltName=%%s\\n' \"$5\" > $1.ext\n"
        "  openssl x509 -req -in $1.csr -CA $2.crt -CAkey $2.key -CAcreateserial \\\n"
        "    -days 2 -extfile $1.ext -out $1.crt\n"
        "}\n"
        "sign server ca \"$EC\" localhost DNS:localhost,IP:127.0.0.1\n"
        "sign wrong ca \"$EC\" wrong.example DNS:wrong.example\n"
        "sign client ca \"$EC\" chat-bridge DNS:chat-bridge\n"
        "sign rserver rca \"$RSA\" localhost DNS:localhost,IP:127.0.0.1\n"
        "mkdir cadir; cp ca.crt cadir/; openssl rehash cadir\n"
        "chmod 755 .; chmod 644 *.crt server.key wrong.key rserver.key\n"
        "chmod 600 client.key ca.key ca2.key rca.key\n", pki);
    if (sh(cmd, out, sizeof(out)) != 0) {
        fprintf(stderr, "openssl failed:\n%s\n", out);
        return -1;
    }
    return 0;
}

/* mosquitto listener lines for a TLS port with this certificate. */
static int listener(char *buf, size_t size, int port, const char *cert, const char *extra) {
    return snprintf(buf, size, "listener %d 127.0.0.1\ncafile %s/ca.crt\n"
                    "certfile %s/%s.crt\nkeyfile %s/%s.key\n%s",
                    port, pki, pki, cert, pki, cert, extra);
}

/* A mosquitto of our own whose OpenSSL allows at most max_proto (its
 * tls_version is only the least version), from conf_text; its PID. */
static pid_t start_legacy_broker(const char *name, const char *max_proto,
                                 const char *conf_text, int port) {
    char cnf[300], conf[300], log[300], env_arg[320], text[512];
    snprintf(cnf, sizeof(cnf), "%s/%s.cnf", pki, name);
    snprintf(conf, sizeof(conf), "%s/%s.conf", pki, name);
    snprintf(log, sizeof(log), "%s/%s.log", pki, name);
    snprintf(text, sizeof(text), "openssl_conf = conf_sect\n[conf_sect]\n"
             "ssl_conf = ssl_sect\n[ssl_sect]\nsystem_default = sys_sect\n"
             "[sys_sect]\nMinProtocol = TLSv1\nMaxProtocol = %s\n"
             "CipherString = DEFAULT:@SECLEVEL=0\n", max_proto);
    if (sys_write_file(cnf, text) < 0 || sys_write_file(conf, conf_text) < 0) return -1;
    snprintf(env_arg, sizeof(env_arg), "OPENSSL_CONF=%s", cnf);
    char *argv[] = { "env", env_arg, "mosquitto", "-c", conf, NULL };
    pid_t pid = sys_spawn(argv, log, 0);
    if (pid < 0 || sys_wait_port(port, 10000, NULL) < 0) {
        fprintf(stderr, "%s broker did not start (see %s)\n", name, log);
        return -1;
    }
    return pid;
}

/* Both legacy brokers: TLS 1.1 at most (ECDSA, and RSA with RSA key
 * exchange only, which needs no signature OpenSSL 3 would refuse), and
 * TLS 1.2 only. */
static int start_legacy_brokers(void) {
    char conf[2048];
    int n = listener(conf, sizeof(conf), port_tls11_ec, "server", "tls_version tlsv1.1\n");
    snprintf(conf + n, sizeof(conf) - (size_t)n, "listener %d 127.0.0.1\n"
             "cafile %s/rca.crt\ncertfile %s/rserver.crt\nkeyfile %s/rserver.key\n"
             "tls_version tlsv1.1\nciphers AES256-SHA:AES128-SHA:@SECLEVEL=0\n"
             "allow_anonymous true\npersistence false\n", port_tls11_rsa, pki, pki, pki);
    if ((tls11_pid = start_legacy_broker("tls11", "TLSv1.1", conf, port_tls11_ec)) < 0 ||
        sys_wait_port(port_tls11_rsa, 10000, NULL) < 0)
        return -1;
    snprintf(conf, sizeof(conf), "listener %d 127.0.0.1\ncafile %s/rca.crt\n"
             "certfile %s/rserver.crt\nkeyfile %s/rserver.key\n"
             "allow_anonymous true\npersistence false\n", port_tls12, pki, pki, pki);
    tls12_pid = start_legacy_broker("tls12", "TLSv1.2", conf, port_tls12);
    return tls12_pid < 0 ? -1 : 0;
}

/* The bridge's mqtt keys: this URI and CA file, plus more (e.g. a
 * certificate); no persistent session, so that no broker queues chat for
 * the bridge's id, which every test reuses. */
static void tls_keys(const char *uri, const char *ca, const char *more) {
    snprintf(keys, sizeof(keys), "  uri: %s\n  tls_ca_file: %s/%s\n  session_expiry: 0\n"
             "  connect_timeout: 5\n%s", uri, pki, ca, more ? more : "");
    env.bridge_mqtt_keys = keys;
}

/* Start the bridge on these mqtt keys without waiting for it to be ready
 * (under $CB_WRAPPER like the harness's); its log is <dir>/bridge-<name>.log. */
static pid_t spawn_bridge(const char *name, const char *extra_yaml, char *log, size_t logsize) {
    char conf[300], wrapper[512];
    char *argv[32];
    int n = 0;
    assert_int_equal(h_write_bridge_config(&env, NULL, extra_yaml), 0);
    snprintf(conf, sizeof(conf), "%s/bridge.yaml", env.dir);
    snprintf(log, logsize, "%s/bridge-%s.log", env.dir, name);
    snprintf(wrapper, sizeof(wrapper), "%s", getenv("CB_WRAPPER") ? getenv("CB_WRAPPER") : "");
    for (char *tok = strtok(wrapper, " "); tok && n < 27; tok = strtok(NULL, " "))
        argv[n++] = tok;
    argv[n++] = getenv("CB_BRIDGE") ? getenv("CB_BRIDGE") : "build/chat-bridge";
    argv[n++] = "-c";
    argv[n++] = conf;
    argv[n] = NULL;
    spawned = sys_spawn(argv, log, 0);
    assert_true(spawned > 0);
    return spawned;
}

/* Stop the bridge spawn_bridge() started: it must exit 0 (under valgrind,
 * 99 is a memory error or leak). */
static void stop_spawned(void) {
    int rc = sys_stop_pid(spawned, 30000);
    spawned = 0;
    assert_int_equal(rc, 0);
}

/* 1 while that bridge runs. */
static int spawned_alive(void) {
    return spawned > 0 && waitpid(spawned, NULL, WNOHANG) == 0;
}

/* How many lines of the file hold needle. */
static int count_lines(const char *path, const char *needle) {
    char line[2048];
    int n = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) return 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

/* Wait (bounded) until the file has a line holding needle; 1 if it came. */
static int wait_log(const char *path, const char *needle, int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        if (count_lines(path, needle) > 0) return 1;
        h_sleep_ms(100);
    }
    return 0;
}

/* The refusal line, or the whole log, for a failing assertion. */
static void show_log(const char *path) {
    char cmd[400], out[8192];
    snprintf(cmd, sizeof(cmd), "grep -v status: '%s' | tail -20", path);
    sh(cmd, out, sizeof(out));
    fprintf(stderr, "--- %s:\n%s---\n", path, out);
}

/* Start a bridge that must be refused: wait (bounded) until its log
 * gives the reason (needle), failing at once if it connects; then check
 * it stays up. Leaves it running. */
static void expect_refused(const char *name, const char *needle, const char *extra_yaml,
                           char *log, size_t logsize) {
    int found = 0, connected = 0;
    spawn_bridge(name, extra_yaml, log, logsize);
    for (int waited = 0; !found && !connected && waited < bridge_wait_ms(); waited += 100) {
        h_sleep_ms(100);
        connected = count_lines(log, "mqtt: connected") > 0;
        found = count_lines(log, needle) > 0;
    }
    if (connected || !found) {
        show_log(log);
        fail_msg("bridge %s: %s", name, connected ? "connected" : "no reason in its log");
    }
    assert_true(spawned_alive());
}

/* Send one chat message to room through the plain listener; with a
 * subscriber on the room's msgs when sub is given. */
static void send_chat(const char *room, const char *text, MQTTClient *sub) {
    char topic[128], payload[256];
    MQTTClient c = h_mqtt_connect(&env, "tls-test-sender", 5);
    assert_non_null(c);
    if (sub) {
        snprintf(topic, sizeof(topic), "chat/%s/msgs", room);
        *sub = h_mqtt_connect(&env, "tls-test-sub", 5);
        assert_non_null(*sub);
        assert_int_equal(h_subscribe(*sub, topic), 0);
    }
    snprintf(topic, sizeof(topic), "chat/%s/send", room);
    snprintf(payload, sizeof(payload), "{\"user\":\"alice\",\"text\":\"%s\"}", text);
    assert_int_equal(h_publish(c, topic, payload, NULL, NULL), 0);
    h_mqtt_close(c);
}

/* Start a bridge that must connect (the harness waits until it answers
 * on the broker) and stop it cleanly. */
static void expect_connects(void) {
    assert_int_equal(h_start_bridge(&env, NULL), 0);
    assert_int_equal(h_stop_bridge(&env), 0);
}

/* ==================== Verified brokers ==================== */

/* The right CA: connected over TLS, a message is stored and republished. */
static void test_good_ca(void **state) {
    char uri[64];
    MQTTClient sub = NULL;
    (void)state;
    snprintf(uri, sizeof(uri), "ssl://localhost:%d", port_good);
    tls_keys(uri, "ca.crt", NULL);
    assert_int_equal(h_start_bridge(&env, NULL), 0);
    send_chat("tls-good", "over tls", &sub);
    char *doc = h_receive(sub, WAIT_MS, NULL, NULL);
    if (doc == NULL) fail_msg("no republish on chat/tls-good/msgs");
    assert_non_null(strstr(doc, "\"text\":\"over tls\""));
    free(doc);
    h_mqtt_close(sub);
    redisReply *r = h_redis(&env, "HGET chatroom:tls-good:1 content");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "over tls");
    freeReplyObject(r);
    assert_int_equal(h_stop_bridge(&env), 0);
}

/* The CA as a hashed directory (tls_ca_dir), and the mqtts:// scheme. */
static void test_ca_dir(void **state) {
    (void)state;
    snprintf(keys, sizeof(keys), "  uri: mqtts://localhost:%d\n  tls_ca_dir: %s/cadir\n"
             "  session_expiry: 0\n", port_good, pki);
    env.bridge_mqtt_keys = keys;
    expect_connects();
}

/* Another CA: refused with OpenSSL's reason, said once however many
 * retries; nothing is stored; the bridge stays up. */
static void test_wrong_ca(void **state) {
    char uri[64], log[300];
    (void)state;
    snprintf(uri, sizeof(uri), "ssl://localhost:%d", port_good);
    tls_keys(uri, "ca2.crt", NULL);
    expect_refused("wrong-ca", "certificate verify failed", "log:\n  level: debug\n",
                   log, sizeof(log));
    assert_int_equal(count_lines(log, "not signed by a trusted CA"), 1);
    send_chat("tls-wrong-ca", "must not be stored", NULL);
    /* Retries go on (at debug level) without another warning. */
    if (!wait_log(log, "debug mqtt: cannot connect", bridge_wait_ms())) {
        show_log(log);
        fail_msg("no retry seen");
    }
    assert_int_equal(count_lines(log, "warn  mqtt: cannot connect"), 1);
    assert_int_equal(h_redis_count(&env, "chatroom:tls-wrong-ca:*"), 0);
    assert_true(spawned_alive());
    stop_spawned();
}

/* A certificate for wrong.example on localhost: refused for the name. */
static void test_wrong_hostname(void **state) {
    char uri[64], log[300];
    (void)state;
    snprintf(uri, sizeof(uri), "ssl://localhost:%d", port_wrong);
    tls_keys(uri, "ca.crt", NULL);
    expect_refused("wrong-host", "hostname localhost does not match the broker's certificate",
                   NULL, log, sizeof(log));
    send_chat("tls-wrong-host", "must not be stored", NULL);
    h_sleep_ms(1000);
    assert_int_equal(h_redis_count(&env, "chatroom:tls-wrong-host:*"), 0);
    assert_true(spawned_alive());
    stop_spawned();
}

/* tls_verify_hostname: false accepts that certificate (its CA is still
 * checked: see test_wrong_ca). */
static void test_hostname_check_off(void **state) {
    char uri[64];
    (void)state;
    snprintf(uri, sizeof(uri), "ssl://localhost:%d", port_wrong);
    tls_keys(uri, "ca.crt", "  tls_verify_hostname: false\n");
    expect_connects();
}

/* ==================== Client certificates ==================== */

/* require_certificate: with our certificate and key, connected. */
static void test_client_cert(void **state) {
    char uri[64], more[600];
    (void)state;
    snprintf(uri, sizeof(uri), "ssl://localhost:%d", port_client);
    snprintf(more, sizeof(more), "  tls_cert_file: %s/client.crt\n"
             "  tls_key_file: %s/client.key\n", pki, pki);
    tls_keys(uri, "ca.crt", more);
    expect_connects();
}

/* Without: the broker drops us after the handshake (TLS 1.3 sends its
 * refusal after the client's Finished), and the log says what to check. */
static void test_no_client_cert(void **state) {
    char uri[64], log[300];
    (void)state;
    snprintf(uri, sizeof(uri), "ssl://localhost:%d", port_client);
    tls_keys(uri, "ca.crt", NULL);
    expect_refused("no-cert", "client certificate", NULL, log, sizeof(log));
    stop_spawned();
}

/* ==================== Protocol versions ==================== */

/* The TLS 1.1 broker really is one: openssl s_client gets TLS 1.1 with
 * RSA key exchange, and nothing with TLS 1.2. */
static void test_tls11_broker_is_tls11(void **state) {
    char cmd[600], out[4096];
    (void)state;
    snprintf(cmd, sizeof(cmd), "openssl s_client -connect 127.0.0.1:%d -tls1_1 "
             "-cipher 'AES256-SHA:@SECLEVEL=0' -CAfile %s/rca.crt -brief </dev/null 2>&1",
             port_tls11_rsa, pki);
    assert_int_equal(sh(cmd, out, sizeof(out)), 0);
    if (strstr(out, "Protocol version: TLSv1.1") == NULL) fail_msg("s_client: %s", out);
    snprintf(cmd, sizeof(cmd), "openssl s_client -connect 127.0.0.1:%d -tls1_2 "
             "-CAfile %s/rca.crt -brief </dev/null 2>&1", port_tls11_rsa, pki);
    assert_int_not_equal(sh(cmd, out, sizeof(out)), 0);
}

/* TLS 1.1 with ECDHE (signed with the legacy MD5+SHA-1, which OpenSSL 3
 * refuses at Paho's security level) and with RSA key exchange (no such
 * signature: only our cipher list refuses it). */
static void test_tls11_refused(void **state) {
    char uri[64], log[300];
    (void)state;
    snprintf(uri, sizeof(uri), "ssl://localhost:%d", port_tls11_ec);
    tls_keys(uri, "ca.crt", NULL);
    expect_refused("tls11-ec", "TLS 1.2 or later", NULL, log, sizeof(log));
    stop_spawned();
    snprintf(uri, sizeof(uri), "ssl://localhost:%d", port_tls11_rsa);
    tls_keys(uri, "rca.crt", NULL);
    expect_refused("tls11-rsa", "TLS 1.2 or later", NULL, log, sizeof(log));
    stop_spawned();
}

/* A broker that speaks TLS 1.2 and nothing later: accepted (the probe of
 * the harness cannot reach it; the log says when it has subscribed). */
static void test_tls12_accepted(void **state) {
    char uri[64], log[300];
    (void)state;
    snprintf(uri, sizeof(uri), "ssl://localhost:%d", port_tls12);
    tls_keys(uri, "rca.crt", NULL);
    spawn_bridge("tls12", NULL, log, sizeof(log));
    if (!wait_log(log, "mqtt: subscribed", bridge_wait_ms())) {
        show_log(log);
        fail_msg("the bridge did not connect to the TLS 1.2 broker");
    }
    stop_spawned();
}

/* ==================== Configuration ==================== */

/* tls_* options with a tcp:// URI: a configuration error (exit 2), said
 * once, and the bridge does not start. */
static void test_tls_options_need_tls_uri(void **state) {
    char uri[64], log[300];
    int status = -1;
    (void)state;
    snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", env.mqtt_port);
    tls_keys(uri, "ca.crt", NULL);
    spawn_bridge("tcp-with-tls", NULL, log, sizeof(log));
    for (int waited = 0; waited < bridge_wait_ms(); waited += 100) {
        if (waitpid(spawned, &status, WNOHANG) == spawned) break;
        status = -1;
        h_sleep_ms(100);
    }
    if (status == -1) fail_msg("the bridge is still running");
    spawned = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_int_equal(count_lines(log, "is not TLS"), 1);
}

/* ==================== Set-up ==================== */

/* The certificates, the harness's servers with our TLS listeners, and
 * the legacy brokers. 0 or -1. */
static int start_all(void) {
    char extra[4096];
    int n;
    if (mkdtemp(pki) == NULL) return -1;
    pki_made = 1;
    if (make_pki() < 0) return -1;
    port_good = sys_free_port();
    port_wrong = sys_free_port();
    port_client = sys_free_port();
    port_tls11_ec = sys_free_port();
    port_tls11_rsa = sys_free_port();
    port_tls12 = sys_free_port();
    n = listener(extra, sizeof(extra), port_good, "server", "");
    n += listener(extra + n, sizeof(extra) - (size_t)n, port_wrong, "wrong", "");
    listener(extra + n, sizeof(extra) - (size_t)n, port_client, "server",
             "require_certificate true\n");
    struct h_server_opts o = { .mqtt_extra = extra };
    if (h_start_servers_opt(&env, &o) < 0) return -1;
    if (sys_wait_port(port_good, 10000, NULL) < 0) {
        fprintf(stderr, "no TLS listener (see %s/mosquitto.log)\n", env.dir);
        return -1;
    }
    return start_legacy_brokers();
}

static int teardown(void **state);

/* After each test, even a failed one: no bridge left running. */
static int stop_bridges(void **state) {
    (void)state;
    if (spawned > 0) sys_stop_pid(spawned, 30000);
    if (env.bridge_pid > 0) h_stop_bridge(&env);
    spawned = 0;
    return 0;
}

/* cmocka runs no group teardown after a failed setup: clean up here. */
static int setup(void **state) {
    if (start_all() == 0) return 0;
    teardown(state);
    return -1;
}

static int teardown(void **state) {
    stop_bridges(state);
    if (tls11_pid > 0) sys_stop_pid(tls11_pid, 5000);
    if (tls12_pid > 0) sys_stop_pid(tls12_pid, 5000);
    if (env.dir[0]) h_stop_servers(&env);
    if (getenv("CB_KEEP") == NULL && pki_made) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pki);
        if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", pki);
    }
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_good_ca, stop_bridges),
        cmocka_unit_test_teardown(test_ca_dir, stop_bridges),
        cmocka_unit_test_teardown(test_wrong_ca, stop_bridges),
        cmocka_unit_test_teardown(test_wrong_hostname, stop_bridges),
        cmocka_unit_test_teardown(test_hostname_check_off, stop_bridges),
        cmocka_unit_test_teardown(test_client_cert, stop_bridges),
        cmocka_unit_test_teardown(test_no_client_cert, stop_bridges),
        cmocka_unit_test_teardown(test_tls11_broker_is_tls11, stop_bridges),
        cmocka_unit_test_teardown(test_tls11_refused, stop_bridges),
        cmocka_unit_test_teardown(test_tls12_accepted, stop_bridges),
        cmocka_unit_test_teardown(test_tls_options_need_tls_uri, stop_bridges),
    };
    return cmocka_run_group_tests_name("tls", tests, setup, teardown);
}
