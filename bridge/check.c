/* check.c -- the broker side of --check-config (see check.h).
 *
 * A short-lived client (its own client id, a clean session, no will)
 * subscribes to <prefix>/$bridge/+/status; the broker hands it the
 * retained status document of every bridge that ever ran, and peers.c
 * judges the online ones against this configuration. A running bridge
 * with this very client id is most likely this configuration's own, so
 * it is reported as a note, not as a clash. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "check.h"
#include "mqtt.h"
#include "peers.h"
#include "topic.h"

#define CHECK_TOPIC_MAX 512

struct check {
    struct peers peers;
    const struct config *c;
    FILE *out;
    int clashes;                   /* Paho's thread writes, main reads after */
};

/* One status document: judge it and say what it means. */
static void check_on_message(void *arg, const struct mqtt_in *in) {
    struct check *k = arg;
    char who[80], why[300];
    int verdict = peers_judge(&k->peers, in->payload, in->payload_len, who, sizeof(who));

    if (verdict == PEERS_SAME_ID) {
        fprintf(k->out, "note: a bridge with client id %s is running (this "
                "configuration's, or another one's with the same id)\n", who);
    } else if (verdict == PEERS_NO_GROUP) {
        peers_explain(verdict, who, k->c->shared_group, why, sizeof(why));
        fprintf(k->out, "warning: %s\n", why);
        __atomic_add_fetch(&k->clashes, 1, __ATOMIC_RELAXED);
    }
}

/* The probe's options: c's broker and credentials, a client id of its
 * own, a clean session, the status filter. */
static void check_opts(const struct config *c, struct mqtt_opts *o, char *id,
                       size_t idsize, const char *const *filter) {
    snprintf(id, idsize, "%.100s-check-%ld", c->mqtt_client_id, (long)getpid());
    *o = (struct mqtt_opts){
        .uri = c->mqtt_uri, .client_id = id, .username = c->mqtt_username,
        .password = c->mqtt_password, .version = c->mqtt_version,
        .keepalive = 30, .session_expiry = 0, .connect_timeout = 3, .qos = 0,
        .max_buffered = 1, .filters = filter, .nfilters = 1,
        .tls_ca_file = c->tls_ca_file, .tls_ca_dir = c->tls_ca_dir,
        .tls_cert_file = c->tls_cert_file, .tls_key_file = c->tls_key_file,
        .tls_verify_hostname = c->tls_verify_hostname,
    };
}

int check_peers(const struct config *c, FILE *out, int wait_ms) {
    char filter[CHECK_TOPIC_MAX], id[128], err[256];
    const char *fp[1] = { filter };
    struct check k = { .c = c, .out = out };
    struct mqtt_opts o;
    struct mqtt *m;
    int waited = 0;

    snprintf(filter, sizeof(filter), "%s/$bridge/+/status", c->topic_prefix);
    peers_init(&k.peers, c->mqtt_client_id, c->shared_group, "");
    check_opts(c, &o, id, sizeof(id), fp);
    if ((m = mqtt_new(&o, check_on_message, &k, err, sizeof(err))) == NULL) {
        fprintf(out, "note: other bridges not checked: %s\n", err);
        return -1;
    }
    mqtt_start(m);
    for (; waited < wait_ms && !mqtt_ready(m); waited += 50) clock_sleep_ms(50);
    if (mqtt_ready(m)) clock_sleep_ms(500);     /* the retained documents */
    int reached = mqtt_ready(m);
    mqtt_stop(m, 500);
    mqtt_free(m);
    if (!reached) {
        fprintf(out, "note: broker %s not reachable: other bridges not checked\n",
                c->mqtt_uri);
        return -1;
    }
    return __atomic_load_n(&k.clashes, __ATOMIC_RELAXED);
}
