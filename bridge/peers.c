/* peers.c -- other bridges on the same broker (see peers.h). */
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "peers.h"

void peers_init(struct peers *p, const char *client_id, const char *group,
                const char *instance) {
    memset(p, 0, sizeof(*p));
    p->client_id = client_id;
    p->group = group;
    p->instance = instance;
}

/* 1 when "client_id instance" was judged already; else remember it. */
static int peers_seen(struct peers *p, const char *id, const char *instance) {
    char key[sizeof(p->seen[0])];

    snprintf(key, sizeof(key), "%s %s", id, instance);
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->seen[i], key) == 0) return 1;
    if (p->n >= PEERS_MAX) return 1;     /* full: no more warnings */
    memcpy(p->seen[p->n++], key, sizeof(key));
    return 0;
}

/* Copy a peer's client id for the log: anyone may publish a status
 * document, so control characters become '?'. */
static void peers_name(char *out, size_t size, const char *id) {
    size_t i = 0;
    for (; id[i] && i + 1 < size; i++)
        out[i] = (unsigned char)id[i] < 0x20 || id[i] == 0x7f ? '?' : id[i];
    if (size) out[i] = '\0';
}

/* 1 when both are in the same shared group (two NULLs are not). */
static int same_group(const char *a, const char *b) {
    return a && b && strcmp(a, b) == 0;
}

/* The verdict on an online peer with this id, group and instance. */
static int peers_verdict(const struct peers *p, const char *id, const char *group,
                         const char *instance) {
    if (strcmp(id, p->client_id) == 0)
        return strcmp(instance, p->instance) == 0 ? PEERS_IGNORE : PEERS_SAME_ID;
    return same_group(group, p->group) ? PEERS_FINE : PEERS_NO_GROUP;
}

int peers_judge(struct peers *p, const char *payload, size_t len,
                char *who, size_t size) {
    json_t *doc = json_loadb(payload, len, 0, NULL);
    int verdict = PEERS_IGNORE;

    if (doc == NULL) return PEERS_IGNORE;
    const char *id = json_string_value(json_object_get(doc, "client_id"));
    const char *instance = json_string_value(json_object_get(doc, "instance"));
    const char *group = json_string_value(json_object_get(doc, "shared_group"));
    if (id && instance && json_is_true(json_object_get(doc, "online")) &&
        !(strcmp(id, p->client_id) == 0 && strcmp(instance, p->instance) == 0) &&
        !peers_seen(p, id, instance)) {
        verdict = peers_verdict(p, id, group, instance);
        if (verdict > PEERS_FINE && who) peers_name(who, size, id);
    }
    json_decref(doc);
    return verdict;
}

void peers_explain(int verdict, const char *who, const char *group,
                   char *buf, size_t size) {
    if (verdict == PEERS_SAME_ID)
        snprintf(buf, size, "another running bridge uses the client id %s: the "
                 "broker disconnects one whenever the other connects; give each "
                 "bridge its own mqtt.client_id", who);
    else if (verdict == PEERS_NO_GROUP)
        snprintf(buf, size, "bridge %s serves the same topics %s: every message "
                 "is stored by both; put every bridge in one mqtt.shared_group",
                 who, group ? "outside our shared group" : "and we have no "
                 "mqtt.shared_group");
    else
        snprintf(buf, size, "no conflict");
}
