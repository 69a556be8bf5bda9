/* result.h -- the one vocabulary of results inside bridge/.
 *
 * As hiredis has REDIS_OK/REDIS_ERR and mosquitto MOSQ_ERR_*: a function
 * that can fail returns CB_OK (0) or a negative cb_status; the detail goes
 * into the module's errstr, and the caller at the top logs it once.
 *
 * A request's own outcome (what Redis did with one command or one chat
 * request) is a cb_outcome: a value, not an error. */
#ifndef CB_RESULT_H
#define CB_RESULT_H

enum cb_status {
    CB_OK = 0,
    CB_ERR = -1,          /* failed; the module's errstr says why */
    CB_ERR_IO = -2,       /* a connection or a file failed: reconnect, retry */
    CB_ERR_PROTO = -3,    /* a peer answered something unexpected */
    CB_ERR_OOM = -4,      /* out of memory */
    CB_ERR_CLOSED = -5,   /* shut down: no more work is taken */
    CB_ERR_FULL = -6,     /* no room now (disk, queue): try again later */
    CB_ERR_FORMAT = -7    /* data of an unknown format or version: refused,
                             left untouched */
};

enum cb_outcome {
    CB_PENDING = 0,       /* not executed, or outcome unknown (I/O error):
                             run it again */
    CB_DONE = 1,          /* executed; the result fields say how */
    CB_NOT_FOUND = 2,     /* no such message */
    CB_FORBIDDEN = 3,     /* not the author */
    CB_RETRY = 4,         /* refused for now (LOADING, BUSY, TRYAGAIN, ...) */
    CB_FAILED = 5         /* refused for good; the module's errstr says why */
};

/* A completion: embed it first in your own struct; fn runs once, with
 * ok = 1 when the work was done (a publish acknowledged), 0 when it was
 * given up. */
struct cb_done {
    void (*fn)(struct cb_done *self, int ok);
};

#endif
