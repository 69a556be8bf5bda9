/* client.h -- what an integration test does as a chat client, on the
 * servers harness.h started: read the bridge's JSON, ask it over MQTT 5,
 * look at Redis, and write into Redis as the seed's own program does.
 *
 * Shared by tests/integration/test_chat.c, tests/clients/test_clients.c
 * and tests/seed/test_seed.c. A function that needs the servers takes the
 * struct h_env the test started. None returns an error: what goes wrong
 * fails the running cmocka test (fail_msg), with what was received. Every
 * wait is bounded by CL_WAIT_MS. */
#ifndef CB_CLIENT_H
#define CB_CLIENT_H

#include <jansson.h>

#include "harness.h"

/* How long a reply may take, in ms. */
#define CL_WAIT_MS 5000

/* Milliseconds on a monotonic clock: for deadlines and measured delays,
 * not a Unix time. */
long long cl_now_ms(void);

/* ==================== JSON ==================== */

/* A received document, parsed (json_decref it); NULL or not JSON fails. */
json_t *cl_parse(const char *doc);
/* o's member key, which must be an integer / a string (borrowed). */
long long cl_jint(json_t *o, const char *key);
const char *cl_jstr(json_t *o, const char *key);

/* ==================== MQTT ==================== */

/* An MQTT 5 client of e's broker, subscribed to filter unless NULL. */
MQTTClient cl_client(struct h_env *e, const char *id, const char *filter);

/* Publish payload to topic with an MQTT 5 Response Topic (and correlation
 * data, which must come back) and wait for the reply on c, which must be
 * subscribed to reply_topic. The reply, parsed. */
json_t *cl_request(MQTTClient c, const char *topic, const char *payload,
                   const char *reply_topic);
/* cl_request() on chat/<room>/<leaf>, answered on reply/<room>. */
json_t *cl_ask(MQTTClient c, const char *room, const char *leaf, const char *payload);

/* Send {"user","text"} to chat/<room>/send, answered on reply_topic
 * (NULL: reply/<room>); it must be accepted. The message's id. */
long long cl_send(MQTTClient c, const char *room, const char *user, const char *text,
                  const char *reply_topic);

/* The reply must be {"ok":true,"id":id}. Releases r. */
void cl_expect_ok_id(json_t *r, long long id);
/* The reply must be the refusal {"ok":false,"error":code,"message":...};
 * what says which request it was, on failure. Releases r. */
void cl_expect_error(json_t *r, const char *code, const char *what);

/* Publish each line of lines to topic, QoS 1 and in order, with
 * mosquitto_pub -l (much faster than one synchronous publish each); it
 * returns once the broker has acknowledged them all. */
void cl_pub_lines(struct h_env *e, const char *topic, const char *lines);

/* ==================== Redis ==================== */

/* A command's string reply (malloc'd), or NULL for any other reply. */
char *cl_rstr(struct h_env *e, const char *fmt, ...);
/* A command's integer reply, or -1 for any other reply. */
long long cl_rnum(struct h_env *e, const char *fmt, ...);
/* The command's string reply must be expect; NULL: no string (nil). */
void cl_assert_str(struct h_env *e, const char *expect, const char *fmt, ...);
/* HGET key field must be expect; NULL: absent. */
void cl_assert_hget(struct h_env *e, const char *expect, const char *key, const char *field);

/* ==================== The seed's own writer ==================== */

/* A Redis connection of its own to e's server (redisFree it). */
redisContext *cl_seed_connect(struct h_env *e);
/* Run one command on c, which must not fail; its integer reply, or 0. */
long long cl_seed_cmd(redisContext *c, const char *fmt, ...);
/* The seed's send of text by user into room, in its two parts: first
 * INCR chatroom:R:messages -> N, HSET chatroom:R U N, HSET chatroom:R:U N T
 * (returns N), then HSET chatroom:R:N content T and timestamp <Unix s>. */
long long cl_seed_begin(redisContext *c, const char *room, const char *user,
                        const char *text);
void cl_seed_finish(redisContext *c, const char *room, long long n, const char *text);
/* Both parts: the seed's five commands, no transaction. Returns N. */
long long cl_seed_send(redisContext *c, const char *room, const char *user,
                       const char *text);

/* ==================== Set-up ==================== */

/* Clear e, start redis-server and mosquitto, then the bridge with
 * mqtt_keys (NULL: none) added to its mqtt section. 0 or -1: a cmocka
 * group set-up. */
int cl_start(struct h_env *e, const char *mqtt_keys);

#endif
