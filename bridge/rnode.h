/* rnode.h -- one Redis node: its address, a connection to it, and the
 * executor (rexec.h) that sends every command to it.
 *
 *  - Addresses are "HOST:PORT" or "[V6]:PORT" (rnode_parse_addr); a list
 *    of them is separated by spaces or commas, as redis.cluster_nodes is
 *    written (rnode_parse_list). These are the only parsers of both:
 *    config.c checks the option with them, the cluster reads its seeds and
 *    its redirections with them.
 *  - rnode_open() is the only way a connection is opened, by the one-node
 *    executor and by the cluster for each of its nodes: connect (TCP or a
 *    Unix socket) within the timeout, set the same timeout on every later
 *    read and write (hiredis' connect timeout alone does not bound them),
 *    then AUTH [username] password when a password is set.
 *  - rnode_rexec_new() makes the one-node executor: one hiredis context,
 *    connected once the node answered a PING (a Redis still loading its
 *    data set does not count); a batch is appended to its output buffer
 *    whole, then the replies are read in order. hiredis 0.14 has no reconnect of its own and a context
 *    that saw an I/O error cannot be reused: on any I/O error the context
 *    is dropped, the commands not answered stay CB_PENDING, and the caller
 *    connects again.
 *  - Where the node is comes from the options, or, given a locator, from
 *    asking it before every connect. That is the seam for a primary that
 *    Sentinel names (issue #15): the locator asks the sentinels.
 *
 * Errors are returned as values; the detail goes into the caller's buffer
 * (rnode_open) or the executor's errstr, never printed. No secret is ever
 * put in an error. */
#ifndef CB_RNODE_H
#define CB_RNODE_H

#include <stddef.h>
#include <hiredis/hiredis.h>
#include "rexec.h"

#define RNODE_HOST_MAX 256
#define RNODE_TIMEOUT_MS 5000

/* ---------------- Addresses ---------------- */

/* Split "HOST:PORT" (or "[V6]:PORT") into host and port. HOST may be
 * empty (":PORT" in a redirection: the node that sent it). 0, or -1 when
 * it is not of that form, the port is not 1..65535 or HOST is too long. */
int rnode_parse_addr(const char *s, char *host, size_t hostlen, int *port);

/* Walk "HOST:PORT HOST:PORT,...": words separated by spaces or commas,
 * each HOST:PORT with a non-empty HOST. each (NULL: none) is called with
 * every address in order; a negative return stops the walk and is
 * returned. Returns the number of addresses, or CB_ERR_PROTO when a word
 * is not such an address. An empty list has 0. */
int rnode_parse_list(const char *list,
                     int (*each)(void *arg, const char *host, int port),
                     void *arg);

/* "HOST:PORT" into out; "[HOST]:PORT" when HOST holds a ':' (IPv6). */
void rnode_format_addr(char *out, size_t outlen, const char *host, int port);

/* ---------------- Connections ---------------- */

struct rnode_conf {
    const char *username;      /* Redis 6 ACL user; NULL: "default" */
    const char *password;      /* NULL: no AUTH */
    int timeout_ms;            /* connect, read and write; <= 0: RNODE_TIMEOUT_MS */
};

/* A connection to host:port, or to the Unix socket path when path is not
 * NULL, with the timeout on connect, reads and writes, authenticated.
 * NULL on failure, with the reason in err: "redis ADDR: ...", or, when
 * Redis refused AUTH, "redis ADDR refused the bridge's credentials
 * (redis.username, redis.password): " and Redis' answer (which names
 * neither). */
redisContext *rnode_open(const struct rnode_conf *conf, const char *host,
                         int port, const char *path, char *err, size_t errlen);

/* ---------------- The one-node executor ---------------- */

/* Where the node is, asked before each connect. locate writes host and
 * port and returns CB_OK, or returns CB_ERR_IO with the reason in err. */
struct rnode_locator {
    int (*locate)(void *arg, char *host, size_t hostlen, int *port,
                  char *err, size_t errlen);
    void (*free)(void *arg);   /* called on arg at rexec_free(); may be NULL */
    void *arg;
};

/* The executor of one node: opts' unix_socket when set, else host:port,
 * or where the locator says (when not NULL). The locator is copied and
 * its arg owned by the executor from here on, freed even when this fails.
 * NULL when out of memory. */
struct rexec *rnode_rexec_new(const struct rexec_opts *opts,
                              const struct rnode_locator *where);

#endif
