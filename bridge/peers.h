/* peers.h -- other bridges on the same broker, seen through their status
 * documents.
 *
 * Every bridge publishes a retained status document on
 * <prefix>/$bridge/<client_id>/status (status.c), naming its client id,
 * its shared group (or null) and an instance tag unique to the running
 * process. A bridge that reads the others' documents can tell the two
 * set-ups that go wrong:
 *
 *   - another bridge, online, on the same topics, and not in the same
 *     shared group: the broker gives every request to both, and every
 *     message is stored twice;
 *   - another running bridge with the same client id: the broker drops
 *     one whenever the other connects, and they take turns.
 *
 * Pure logic over the document; knows nothing of MQTT. Not thread-safe:
 * one caller (Paho's thread, or --check-config). */
#ifndef CB_PEERS_H
#define CB_PEERS_H

#include <stddef.h>

#define PEERS_MAX 64          /* peers remembered; once full, no more
                                 warnings (status documents can be forged) */

enum peers_verdict {
    PEERS_IGNORE = 0,         /* not a document, offline, ourselves, or seen */
    PEERS_FINE = 1,           /* another bridge of our shared group */
    PEERS_NO_GROUP = 2,       /* another bridge, not in our shared group */
    PEERS_SAME_ID = 3         /* another process with our client id */
};

struct peers {
    const char *client_id;    /* ours */
    const char *group;        /* ours; NULL: none */
    const char *instance;     /* ours */
    int n;
    char seen[PEERS_MAX][160]; /* "client_id instance" already judged */
};

/* Start with our own identity (the strings must outlive p). */
void peers_init(struct peers *p, const char *client_id, const char *group,
                const char *instance);

/* Judge one status document (payload[0..len)). A peer is judged once per
 * instance: later documents of it are PEERS_IGNORE. On a verdict above
 * PEERS_FINE, 'who' gets its client id (at most size bytes). */
int peers_judge(struct peers *p, const char *payload, size_t len,
                char *who, size_t size);

/* One sentence for a verdict, naming who: for the log and --check-config. */
void peers_explain(int verdict, const char *who, const char *group,
                   char *buf, size_t size);

#endif
