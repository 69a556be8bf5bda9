/* check.h -- what --check-config checks beyond the file itself: whether
 * other bridges already serve these topics in a way that clashes with
 * this configuration (peers.h), read from their retained status
 * documents on the broker. */
#ifndef CB_CHECK_H
#define CB_CHECK_H

#include <stdio.h>

#include "config.h"

/* Connect to c's broker for at most about wait_ms, read the status
 * documents of the bridges under c's topic prefix, and write one line per
 * finding to out. Returns the number of clashes (another bridge outside
 * our shared group), or -1 when the broker could not be reached (said on
 * out; the file itself may still be fine). */
int check_peers(const struct config *c, FILE *out, int wait_ms);

#endif
