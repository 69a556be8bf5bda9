/* test_hostile.c -- hostile input through a real broker (issue #7).
 *
 * A corpus of nearly three thousand crafted requests, generated below from
 * tables and generators, goes through a real mosquitto to a running
 * bridge: deep JSON nesting, huge and odd numbers, NUL bytes in payloads
 * and \u0000 in JSON strings, overlong and invalid UTF-8, lone surrogates,
 * empty and 1 MiB payloads, duplicate keys, wrong types for every field,
 * room and user names holding Redis key separators, glob characters,
 * spaces and control characters, odd but legal topics (chat//send,
 * chat/%20/send, extra levels, 60 KB room levels), topics the broker
 * itself must refuse (sent over a raw socket, bypassing Paho's checks), and
 * reply topics (MQTT 5 Response Topic and the JSON "reply_to" fallback)
 * pointing back into the bridge. Every payload row goes to each request
 * kind it is meant for: send, history, delete, edit, read, members
 * (chat/<room>/members) and a user's rooms (chat/$rooms, no room level);
 * edits, read markers, catch-ups ("after"), members and rooms requests
 * have rows of their own (huge, negative, real and string ids, limits,
 * cursors and user names, nested objects, 1 MiB texts and members,
 * control characters in client_msg_id, someone else's message, ids past
 * the room's last), and members and $rooms topics at the wrong level
 * (chat/lobby/$rooms, chat/$rooms/x/y, chat/lobby/members/x). None of
 * them may write: an edit or read that is refused never reaches Redis,
 * one refused by the store (not_found, forbidden, an id past the room's
 * last) writes nothing. No members request is valid (a valid one would
 * build the room's member index, setting "members" in its cursor); the
 * few valid rooms requests (legal but odd limits and cursors) only read.
 * A few VALID messages are interleaved.
 *
 * What the test proves, after the corpus:
 *   1. the bridge is still running, kept its MQTT session (no "connection
 *      lost" in its log) and still answers a history request;
 *   2. its peak RSS (VmHWM) stays under RSS_BOUND_KB (not under valgrind);
 *   3. every key in Redis (SCAN) has one of the shapes of the README's
 *      schema for a room and user of the VALID messages: no hostile input
 *      created a key (no read marker's "seen" hash either: no read was
 *      valid);
 *   4. the valid messages were stored with consecutive ids per room, with
 *      exactly their content (never edited: no "edited" field, no edit in
 *      the replay guard or the dedup hash), answered {"ok":true,"id":N}
 *      and republished once each; each room's read markers, members and
 *      each user's rooms are exactly what the valid sends made them (a
 *      sender's marker at its last message), no room's member index was
 *      built by a members request (no "members" field in its cursor), and
 *      the status counts no edit, moved read marker or receipt;
 *   5. every hostile request got exactly the answer it deserves on its
 *      reply topic (the error code, or a history, catch-up or rooms page,
 *      or nothing for a forbidden reply topic), and nothing the bridge
 *      published landed anywhere else: not on chat/+/send|history|delete|
 *      edit|read|members, not on chat/$rooms, not on chat/+/msgs except
 *      the valid republishes (no edit, no receipt), not on $SYS/x;
 *   6. (teardown) the bridge exits 0 on SIGTERM; under valgrind
 *      (CB_WRAPPER) a leak or memory error makes that 99.
 *
 * One observer client publishes the corpus and subscribes to '#' and
 * '$SYS/x' with MQTT 5 No Local, so everything it receives was published
 * by someone else: the bridge, or one of the raw-socket publishes the
 * broker let through (recognised byte for byte, see raw_echo). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "harness.h"
#include "sys.h"

#define BRIDGE_ID "chat-bridge-test"          /* the harness's client_id */
#define STATUS_TOPIC "chat/$bridge/" BRIDGE_ID "/status"
#define REPLY "reply/hostile"                 /* the usable reply topic */
#define MIB (1024 * 1024)
#define MAX_TEXT 4096                         /* limits.max_text_bytes default */
#define MAX_CASES 4000
#define MAX_SEEN 20000
#define VALID_STRIDE 50                       /* a valid message every N cases */
#define ALIVE_EVERY 25                        /* check the bridge every N cases */
#define CORPUS_DEADLINE_MS 60000
#define DRAIN_DEADLINE_MS 60000
#define SETTLE_MS 1500                        /* drained after the last reply */
#define NAME_BUF 128                          /* a room name and its NUL */
#define MAX_REPORT 60                         /* mismatches printed in full */

/* Peak RSS bound for the bridge. Measured: about 7 MB once started and
 * 23 MB after the corpus (printed in the final report line): jansson holds
 * a 1 MiB document plus its decoded copy, Paho the messages in flight
 * towards the bridge (mosquitto lets 20 be in flight), and a 1 MiB JSON
 * correlation is echoed in a reply. The corpus sends about 80 MiB in
 * 1 MiB payloads, so a bridge that kept any of them, or buffered them
 * without bound, would pass 64 MB, while allocator slack stays well under. */
#define RSS_BOUND_KB (64L * 1024)

enum { K_SEND, K_HISTORY, K_DELETE, K_EDIT, K_READ, K_MEMBERS, K_ROOMS, K_COUNT };
/* The last level of each kind's topic: chat/<room>/<leaf>, but chat/$rooms
 * (no room level) for K_ROOMS. */
static const char *const leaf[K_COUNT] = { "send", "history", "delete", "edit", "read",
                                           "members", "$rooms" };

/* One hostile request and what became of it. */
struct hcase {
    const char *cat;              /* category, for the summary */
    char *topic;                  /* may hold NUL (raw cases only) */
    size_t topic_len;
    char *payload;
    size_t len;
    char *resp;                   /* MQTT 5 Response Topic, NULL = none */
    size_t resp_len;
    char *corr;                   /* MQTT 5 Correlation Data (with resp) */
    size_t corr_len;
    char *jcorr;                  /* the JSON "correlation" it carries */
    char *reply_at;               /* where a reply must land */
    const char *expect;           /* '|'-separated outcomes, see outcome_of */
    int raw;                      /* sent over a raw socket */
    int dup_of;                   /* valid index an "ok" must name, or -1 */
    int echoed;                   /* raw: the broker passed it on */
    int publish_rc;               /* 0 when the broker took it (Paho only) */
    int nreplies;
    int bad_topic;                /* a reply landed elsewhere than reply_at */
    char got[48];
};

/* One valid message, sent between the hostile ones. */
struct valid {
    const char *room, *user, *text, *cmid;
    const char *literal;          /* sent as is (text is then its decoding) */
    const char *extra;            /* members appended to the built object */
    const char *json_reply;       /* JSON reply_to instead of MQTT 5 */
    long long id;                 /* expected: its rank in its room */
    int replied, republished;
};

/* A message the observer received. */
struct seen {
    char *topic;
    char *payload;
    size_t len;
    char *corr;
    size_t corr_len;
};

static struct h_env env;
static struct hcase cases[MAX_CASES];
static int ncases;
static struct seen *seen;
static int nseen;
static int violations;            /* publishes that matched nothing */

/* Long names and texts, filled in by prepare_valids(). */
static char text4096[MAX_TEXT + 1];
static char room64[65], user64[65];
static char deep_extra[8 + 2 * 1000 + 1];

static struct valid valids[] = {
    { "lobby", "alice", "hello", NULL, NULL, NULL, NULL, 0, 0, 0 },
    { "lobby", "bob", "h\xC3\xA9llo w\xC3\xB6rld \xE2\x9C\x93 *?[]{}: \"q\" b\\s",
      NULL, NULL, NULL, NULL, 0, 0, 0 },
    { "lobby", "alice", "with an id", "cm-1", NULL, NULL, NULL, 0, 0, 0 },
    { "lobby", "carol", text4096, NULL, NULL, NULL, NULL, 0, 0, 0 },
    { "lobby", "dave", "line1\nline2\ttab", NULL, NULL, NULL, NULL, 0, 0, 0 },
    { "lobby", "erin", "\xF0\x9F\x98\x80 \xC3\xA9", NULL,
      "{\"user\":\"erin\",\"text\":\"\\ud83d\\ude00 \\u00e9\"}", NULL, NULL, 0, 0, 0 },
    { "lobby", "frank", "deep but legal", NULL, NULL, deep_extra, NULL, 0, 0, 0 },
    { "%20", "grace", "percent room", NULL, NULL, NULL, NULL, 0, 0, 0 },
    { "x$", "heidi", "dollar room", NULL, NULL, NULL, NULL, 0, 0, 0 },
    { room64, user64, "longest names", NULL, NULL, NULL, NULL, 0, 0, 0 },
    { "\xC3\xBC-raum", "\xC3\xBC-user", "unicode names", NULL, NULL, NULL, NULL, 0, 0, 0 },
    { "messages", "ivan", "a room called messages", NULL, NULL, NULL, NULL, 0, 0, 0 },
    { "lobby", "judy", "MQTT 5 reply topic wins", NULL, NULL,
      "\"reply_to\":\"chat/lobby/send\"", NULL, 0, 0, 0 },
    { "lobby", "ken", "JSON reply_to", NULL, NULL, NULL, "reply/json", 0, 0, 0 },
    { "lobby", "alice", "last", NULL, NULL, NULL, NULL, 0, 0, 0 },
};
#define NVALID ((int)(sizeof(valids) / sizeof(valids[0])))
#define NVALID_FIRST 3            /* sent before the corpus: deletes refer to them */

/* ==================== Small helpers ==================== */

/* Milliseconds on the monotonic clock. */
static long long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A malloc'd copy of p[0..n) with a NUL after it. */
static char *dupmem(const void *p, size_t n) {
    char *d = malloc(n + 1);
    assert_non_null(d);
    if (n) memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

/* A malloc'd printf. */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    assert_true(n >= 0);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

/* A malloc'd string of n copies of the string unit. */
static char *repeat(const char *unit, size_t n) {
    size_t ul = strlen(unit);
    char *s = malloc(ul * n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) memcpy(s + i * ul, unit, ul);
    s[ul * n] = '\0';
    return s;
}

/* t[0..len) as a JSON string literal: quotes, backslashes and control
 * bytes escaped, every other byte (invalid UTF-8 too) kept as is. */
static char *json_quote(const char *t, size_t len) {
    char *s = malloc(6 * len + 3), *p = s;
    assert_non_null(s);
    *p++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '"' || c == '\\') { *p++ = '\\'; *p++ = (char)c; }
        else if (c < 0x20 || c == 0x7F) p += sprintf(p, "\\u%04x", c);
        else *p++ = (char)c;
    }
    *p++ = '"';
    *p = '\0';
    return s;
}

/* s[0..len) printable into out (\xNN for other bytes), cut at max bytes. */
static const char *show(const char *s, size_t len, char *out, size_t size) {
    size_t o = 0, i;
    for (i = 0; i < len && o + 8 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7F) out[o++] = (char)c;
        else o += (size_t)snprintf(out + o, size - o, "\\x%02X", c);
    }
    if (i < len) o += (size_t)snprintf(out + o, size - o, "...(%zu B)", len);
    out[o < size ? o : size - 1] = '\0';
    return out;
}

/* Are a[0..alen) and b[0..blen) the same bytes? */
static int span_eq(const char *a, size_t alen, const char *b, size_t blen) {
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Is word one of the '|'-separated alternatives of list? */
static int expect_has(const char *list, const char *word) {
    size_t wl = strlen(word);
    for (const char *p = list; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == wl && memcmp(p, word, n) == 0) return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

/* ==================== Building the corpus ==================== */

#define P(s) s, sizeof(s) - 1
#define ALL(e) { e, e, e, e, e, e, e }
#define SEND(e) { e, NULL, NULL, NULL, NULL, NULL, NULL }
#define HIST(e) { NULL, e, NULL, NULL, NULL, NULL, NULL }
#define DEL(e) { NULL, NULL, e, NULL, NULL, NULL, NULL }
#define EDIT(e) { NULL, NULL, NULL, e, NULL, NULL, NULL }
#define READ(e) { NULL, NULL, NULL, NULL, e, NULL, NULL }
#define MEMB(e) { NULL, NULL, NULL, NULL, NULL, e, NULL }
#define ROOMS(e) { NULL, NULL, NULL, NULL, NULL, NULL, e }
#define EJ "invalid_json"
#define EU "invalid_utf8"
#define EJU "invalid_json|invalid_utf8"
#define EO "not_object"
#define PAGE "page"
#define RPAGE "rooms"             /* a rooms reply, see outcome_of */
#define NONE "none"
/* A request whose only flaw is b in the text, or in the user. */
#define TXT(b) "{\"user\":\"mallory\",\"text\":\"" b "\",\"id\":1}"
#define USR(b) "{\"user\":\"" b "\",\"text\":\"hi\",\"id\":1}"
#define OK3 "\"user\":\"mallory\",\"text\":\"hi\",\"id\":1"
/* An edit of message 1 (alice's) by its author whose only flaw is b in
 * the text or client_msg_id: without the flaw it would change it. */
#define AEDIT(b) "{\"user\":\"alice\",\"id\":1,\"text\":\"" b "\"}"
#define ACMID(b) "{\"user\":\"alice\",\"id\":1,\"text\":\"hi\",\"client_msg_id\":" b "}"

/* A payload case: sent to each kind whose expectation is not NULL. */
struct pdef {
    const char *cat;
    const char *payload;
    size_t len;
    const char *expect[K_COUNT];
};

static const struct pdef payload_table[] = {
    /* NUL bytes in the payload: a strlen() anywhere would see a valid
     * request and store it. */
    { "nul-byte", P("\0"), ALL(EJ) },
    { "nul-byte", P("\0\0\0\0"), ALL(EJ) },
    { "nul-byte", P("{" OK3 "}\0"), ALL(EJ) },
    { "nul-byte", P("{" OK3 "}\0{\"user\":\"x\"}"), ALL(EJ) },
    { "nul-byte", P("\0{" OK3 "}"), ALL(EJ) },
    { "nul-byte", P("{\"user\":\"mal\0lory\",\"text\":\"hi\",\"id\":1}"), ALL(EJ) },
    { "nul-byte", P("{\"user\":\"mallory\",\"text\":\"h\0i\",\"id\":1}"), ALL(EJ) },
    { "nul-byte", P("{\"user\":\"mallory\",\0\"text\":\"hi\",\"id\":1}"), ALL(EJ) },
    { "nul-byte", P("{\"us\0er\":\"mallory\",\"text\":\"hi\",\"id\":1}"), ALL(EJ) },
    /* \u0000 inside JSON strings: keys, values, every member. */
    { "u0000", P(USR("mallory\\u0000")), ALL(EJ) },
    { "u0000", P(TXT("h\\u0000i")), ALL(EJ) },
    { "u0000", P(TXT("\\u0000")), ALL(EJ) },
    { "u0000", P("{" OK3 ",\"client_msg_id\":\"a\\u0000\"}"), ALL(EJ) },
    { "u0000", P("{" OK3 ",\"reply_to\":\"reply/\\u0000\"}"), ALL(EJ) },
    { "u0000", P("{" OK3 ",\"correlation\":\"\\u0000\"}"), ALL(EJ) },
    { "u0000", P("{\"user\\u0000\":\"mallory\",\"text\":\"hi\",\"id\":1}"), ALL(EJ) },
    { "u0000", P("{\"\\u0000\":1," OK3 "}"), ALL(EJ) },
    { "u0000", P("{" OK3 ",\"x\":[\"\\u0000\"]}"), ALL(EJ) },
    { "u0000", P("{" OK3 ",\"x\":{\"y\":\"\\u0000\"}}"), ALL(EJ) },
    /* Overlong UTF-8 (C0 AF is '/', C0 80 is NUL in "modified UTF-8"). */
    { "overlong-utf8", P(TXT("\xC0\xAF")), ALL(EU) },
    { "overlong-utf8", P(TXT("\xC0\x80")), ALL(EU) },
    { "overlong-utf8", P(TXT("\xC1\xBF")), ALL(EU) },
    { "overlong-utf8", P(TXT("\xE0\x80\xAF")), ALL(EU) },
    { "overlong-utf8", P(TXT("\xE0\x9F\xBF")), ALL(EU) },
    { "overlong-utf8", P(TXT("\xF0\x80\x80\xAF")), ALL(EU) },
    { "overlong-utf8", P(TXT("\xF0\x8F\xBF\xBF")), ALL(EU) },
    { "overlong-utf8", P(USR("\xC0\xAF")), ALL(EU) },
    { "overlong-utf8", P(USR("a\xC0\xBA" "b")), ALL(EU) },      /* overlong ':' */
    /* Invalid UTF-8: encoded surrogates, > U+10FFFF, 5 and 6 byte forms,
     * stray continuation bytes, truncated sequences. */
    { "invalid-utf8", P(TXT("\xED\xA0\x80")), ALL(EU) },
    { "invalid-utf8", P(TXT("\xED\xBF\xBF")), ALL(EU) },
    { "invalid-utf8", P(TXT("\xF4\x90\x80\x80")), ALL(EU) },
    { "invalid-utf8", P(TXT("\xF5\x80\x80\x80")), ALL(EU) },
    { "invalid-utf8", P(TXT("\xF8\x88\x80\x80\x80")), ALL(EU) },
    { "invalid-utf8", P(TXT("\xFC\x84\x80\x80\x80\x80")), ALL(EU) },
    { "invalid-utf8", P(TXT("\xFF")), ALL(EU) },
    { "invalid-utf8", P(TXT("\xFE")), ALL(EU) },
    { "invalid-utf8", P(TXT("\x80")), ALL(EU) },
    { "invalid-utf8", P(TXT("\xBF")), ALL(EU) },
    { "invalid-utf8", P(TXT("a\xE2\x82")), ALL(EU) },
    { "invalid-utf8", P(TXT("\xC3")), ALL(EU) },
    { "invalid-utf8", P(TXT("\xE2\x28\xA1")), ALL(EU) },
    { "invalid-utf8", P(TXT("\xC3\x28")), ALL(EU) },
    { "invalid-utf8", P("{" OK3 ",\"\xFF\":1}"), ALL(EU) },
    { "invalid-utf8", P("{" OK3 ",\"x\":\"\xC0\xAF\"}"), ALL(EU) },
    { "invalid-utf8", P("{" OK3 ",\"reply_to\":\"reply/\xFF\"}"), ALL(EU) },
    { "invalid-utf8", P("{" OK3 "}\xC0\xAF"), ALL(EJU) },
    { "invalid-utf8", P("\xFF\xFE{\0\"\0u\0\"\0:\0"), ALL(EJU) },      /* UTF-16 */
    { "invalid-utf8", P("\xEF\xBB\xBF{" OK3 "}"), ALL(EJU) },           /* BOM */
    /* Lone and misordered surrogates as escapes. */
    { "lone-surrogate", P(TXT("\\ud800")), ALL(EJU) },
    { "lone-surrogate", P(TXT("\\udc00")), ALL(EJU) },
    { "lone-surrogate", P(TXT("\\uDFFF")), ALL(EJU) },
    { "lone-surrogate", P(TXT("\\ud800\\u0041")), ALL(EJU) },
    { "lone-surrogate", P(TXT("\\ud800\\ud800")), ALL(EJU) },
    { "lone-surrogate", P(TXT("\\udbff\\udbff")), ALL(EJU) },
    { "lone-surrogate", P(TXT("x\\ud83d")), ALL(EJU) },
    { "lone-surrogate", P(TXT("\\ude00\\ud83d")), ALL(EJU) },
    { "lone-surrogate", P(USR("\\ud800")), ALL(EJU) },
    { "lone-surrogate", P("{" OK3 ",\"\\udc00\":1}"), ALL(EJU) },
    /* Numbers: out of range (refused by the parser), or in range but not
     * an object. */
    { "huge-number", P("1e400"), ALL(EJ) },
    { "huge-number", P("-1e400"), ALL(EJ) },
    { "huge-number", P("1e309"), ALL(EJ) },
    { "huge-number", P("18446744073709551616"), ALL(EJ) },
    { "huge-number", P("9223372036854775808"), ALL(EJ) },
    { "huge-number", P("-9223372036854775809"), ALL(EJ) },
    { "huge-number", P("123456789012345678901234567890"), ALL(EJ) },
    { "huge-number", P("9223372036854775807"), ALL(EO) },
    { "huge-number", P("-9223372036854775808"), ALL(EO) },
    { "huge-number", P("-0"), ALL(EO) },
    { "huge-number", P("1.5"), ALL(EO) },
    { "huge-number", P("1e-400"), ALL("not_object|invalid_json") },
    { "huge-number", P("{" OK3 ",\"limit\":1,\"n\":1e400}"), ALL(EJ) },
    { "huge-number", P("{" OK3 ",\"limit\":1,\"n\":-18446744073709551616}"), ALL(EJ) },
    { "huge-number", P("NaN"), ALL(EJ) },
    { "huge-number", P("Infinity"), ALL(EJ) },
    { "huge-number", P("-Infinity"), ALL(EJ) },
    { "huge-number", P("0x10"), ALL(EJ) },
    { "huge-number", P("01"), ALL(EJ) },
    { "huge-number", P("+1"), ALL(EJ) },
    { "huge-number", P(".5"), ALL(EJ) },
    { "huge-number", P("1e"), ALL(EJ) },
    /* Empty and non-object documents. */
    { "empty", P(""), ALL(EJ) },
    { "empty", P(" "), ALL(EJ) },
    { "empty", P(" \t\r\n"), ALL(EJ) },
    { "not-object", P("null"), ALL(EO) },
    { "not-object", P("true"), ALL(EO) },
    { "not-object", P("false"), ALL(EO) },
    { "not-object", P("0"), ALL(EO) },
    { "not-object", P("\"\""), ALL(EO) },
    { "not-object", P("\"chat/lobby/send\""), ALL(EO) },
    { "not-object", P("[]"), ALL(EO) },
    { "not-object", P("[{" OK3 "}]"), ALL(EO) },
    /* Syntax errors and trailing data. */
    { "syntax", P("{"), ALL(EJ) },
    { "syntax", P("}"), ALL(EJ) },
    { "syntax", P("{}}"), ALL(EJ) },
    { "syntax", P("{,}"), ALL(EJ) },
    { "syntax", P("{" OK3 ",}"), ALL(EJ) },
    { "syntax", P("{\"a\":1,,\"b\":2}"), ALL(EJ) },
    { "syntax", P("{'user':'mallory'}"), ALL(EJ) },
    { "syntax", P("{user:\"mallory\"}"), ALL(EJ) },
    { "syntax", P("/*c*/{" OK3 "}"), ALL(EJ) },
    { "syntax", P("{" OK3 "} // c"), ALL(EJ) },
    { "syntax", P("{" OK3 "} {" OK3 "}"), ALL(EJ) },
    { "syntax", P("{" OK3 "}]"), ALL(EJ) },
    { "syntax", P("{\"user\":\"mallory\",\"text\":\"a\tb\",\"id\":1}"), ALL(EJ) },
    { "syntax", P(TXT("\\x41")), ALL(EJ) },
    { "syntax", P(TXT("\\u12")), ALL(EJ) },
    { "syntax", P("{\"user\":\"mallory\",\"text\":\"unterminated}"), ALL(EJ) },
    { "syntax", P("{\"user\" \"mallory\"}"), ALL(EJ) },
    { "syntax", P("{\"user\":\"mallory\"\"text\":\"hi\"}"), ALL(EJ) },
    /* Duplicate keys, also under another spelling and nested. */
    { "duplicate-key", P("{\"user\":\"alice\",\"user\":\"mallory\",\"text\":\"hi\",\"id\":1}"), ALL(EJ) },
    { "duplicate-key", P("{\"user\":\"mallory\",\"text\":\"a\",\"text\":\"b\",\"id\":1}"), ALL(EJ) },
    { "duplicate-key", P("{\"user\":\"alice\",\"\\u0075ser\":\"mallory\",\"text\":\"hi\",\"id\":1}"), ALL(EJ) },
    { "duplicate-key", P("{" OK3 ",\"id\":2}"), ALL(EJ) },
    { "duplicate-key", P("{" OK3 ",\"limit\":1,\"limit\":2}"), ALL(EJ) },
    { "duplicate-key", P("{" OK3 ",\"before\":1,\"before\":null}"), ALL(EJ) },
    { "duplicate-key", P("{" OK3 ",\"client_msg_id\":\"a\",\"client_msg_id\":\"b\"}"), ALL(EJ) },
    { "duplicate-key", P("{" OK3 ",\"reply_to\":\"reply/a\",\"reply_to\":\"chat/lobby/send\"}"), ALL(EJ) },
    { "duplicate-key", P("{" OK3 ",\"correlation\":\"a\",\"correlation\":\"b\"}"), ALL(EJ) },
    { "duplicate-key", P("{\"x\":1,\"x\":2," OK3 "}"), ALL(EJ) },
    { "duplicate-key", P("{" OK3 ",\"o\":{\"a\":1,\"a\":2}}"), ALL(EJ) },
    { "duplicate-key", P("{" OK3 ",\"a\":[{\"b\":1,\"b\":1}]}"), ALL(EJ) },
    /* The reply fields with wrong types, for every kind (checked first). */
    { "wrong-type", P("{" OK3 ",\"reply_to\":1}"), ALL("invalid_reply_to") },
    { "wrong-type", P("{" OK3 ",\"reply_to\":true}"), ALL("invalid_reply_to") },
    { "wrong-type", P("{" OK3 ",\"reply_to\":null}"), ALL("invalid_reply_to") },
    { "wrong-type", P("{" OK3 ",\"reply_to\":[\"reply/x\"]}"), ALL("invalid_reply_to") },
    { "wrong-type", P("{" OK3 ",\"reply_to\":{\"t\":\"reply/x\"}}"), ALL("invalid_reply_to") },
    { "wrong-type", P("{" OK3 ",\"correlation\":1}"), ALL("invalid_correlation") },
    { "wrong-type", P("{" OK3 ",\"correlation\":false}"), ALL("invalid_correlation") },
    { "wrong-type", P("{" OK3 ",\"correlation\":null}"), ALL("invalid_correlation") },
    { "wrong-type", P("{" OK3 ",\"correlation\":[]}"), ALL("invalid_correlation") },
    { "wrong-type", P("{" OK3 ",\"correlation\":{}}"), ALL("invalid_correlation") },
    { "wrong-type", P("{\"user\":1,\"text\":1,\"id\":\"x\",\"reply_to\":1}"), ALL("invalid_reply_to") },
    /* send: every field with every wrong type. */
    { "wrong-type", P("{\"user\":1,\"text\":\"hi\"}"), SEND("invalid_user") },
    { "wrong-type", P("{\"user\":-1,\"text\":\"hi\"}"), SEND("invalid_user") },
    { "wrong-type", P("{\"user\":1.5,\"text\":\"hi\"}"), SEND("invalid_user") },
    { "wrong-type", P("{\"user\":true,\"text\":\"hi\"}"), SEND("invalid_user") },
    { "wrong-type", P("{\"user\":false,\"text\":\"hi\"}"), SEND("invalid_user") },
    { "wrong-type", P("{\"user\":null,\"text\":\"hi\"}"), SEND("invalid_user") },
    { "wrong-type", P("{\"user\":[],\"text\":\"hi\"}"), SEND("invalid_user") },
    { "wrong-type", P("{\"user\":{},\"text\":\"hi\"}"), SEND("invalid_user") },
    { "wrong-type", P("{\"user\":[\"mallory\"],\"text\":\"hi\"}"), SEND("invalid_user") },
    { "wrong-type", P("{\"user\":{\"name\":\"mallory\"},\"text\":\"hi\"}"), SEND("invalid_user") },
    { "wrong-type", P("{\"text\":\"hi\"}"), SEND("invalid_user") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":1}"), SEND("invalid_text") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":1.5}"), SEND("invalid_text") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":true}"), SEND("invalid_text") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":false}"), SEND("invalid_text") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":null}"), SEND("invalid_text") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":[]}"), SEND("invalid_text") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":{}}"), SEND("invalid_text") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":[\"hi\"]}"), SEND("invalid_text") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":{\"t\":\"hi\"}}"), SEND("invalid_text") },
    { "wrong-type", P("{\"user\":\"mallory\"}"), SEND("invalid_text") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":\"\"}"), SEND("empty_text") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":\"hi\",\"client_msg_id\":1}"), SEND("invalid_client_msg_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":\"hi\",\"client_msg_id\":true}"), SEND("invalid_client_msg_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":\"hi\",\"client_msg_id\":null}"), SEND("invalid_client_msg_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":\"hi\",\"client_msg_id\":[]}"), SEND("invalid_client_msg_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":\"hi\",\"client_msg_id\":{}}"), SEND("invalid_client_msg_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":\"hi\",\"client_msg_id\":\"\"}"), SEND("invalid_client_msg_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":\"hi\",\"client_msg_id\":\"a\\u0001b\"}"), SEND("invalid_client_msg_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":\"hi\",\"client_msg_id\":\"a\\u007fb\"}"), SEND("invalid_client_msg_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":\"hi\",\"client_msg_id\":\"a\\u0085b\"}"), SEND("invalid_client_msg_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":\"hi\",\"client_msg_id\":\"a\\nb\"}"), SEND("invalid_client_msg_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"text\":\"hi\",\"client_msg_id\":"
                      "\"ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"}"),
      SEND("invalid_client_msg_id") },                              /* 65 bytes */
    /* history: limit, before and user with wrong types and out of range;
     * some are legal (clamped, null) and get a page. */
    { "wrong-type", P("{\"limit\":0}"), HIST("invalid_limit") },
    { "wrong-type", P("{\"limit\":-1}"), HIST("invalid_limit") },
    { "wrong-type", P("{\"limit\":-0}"), HIST("invalid_limit") },
    { "wrong-type", P("{\"limit\":1.5}"), HIST("invalid_limit") },
    { "wrong-type", P("{\"limit\":1e2}"), HIST("invalid_limit") },
    { "wrong-type", P("{\"limit\":\"10\"}"), HIST("invalid_limit") },
    { "wrong-type", P("{\"limit\":true}"), HIST("invalid_limit") },
    { "wrong-type", P("{\"limit\":null}"), HIST("invalid_limit") },
    { "wrong-type", P("{\"limit\":[]}"), HIST("invalid_limit") },
    { "wrong-type", P("{\"limit\":{}}"), HIST("invalid_limit") },
    { "wrong-type", P("{\"limit\":[1]}"), HIST("invalid_limit") },
    { "wrong-type", P("{\"limit\":-9223372036854775808}"), HIST("invalid_limit") },
    { "huge-number", P("{\"limit\":2147483648}"), HIST(PAGE) },
    { "huge-number", P("{\"limit\":4294967297}"), HIST(PAGE) },
    { "huge-number", P("{\"limit\":9223372036854775807}"), HIST(PAGE) },
    { "wrong-type", P("{\"before\":0}"), HIST("invalid_before") },
    { "wrong-type", P("{\"before\":-5}"), HIST("invalid_before") },
    { "wrong-type", P("{\"before\":-0}"), HIST("invalid_before") },
    { "wrong-type", P("{\"before\":1.5}"), HIST("invalid_before") },
    { "wrong-type", P("{\"before\":\"5\"}"), HIST("invalid_before") },
    { "wrong-type", P("{\"before\":true}"), HIST("invalid_before") },
    { "wrong-type", P("{\"before\":[]}"), HIST("invalid_before") },
    { "wrong-type", P("{\"before\":{}}"), HIST("invalid_before") },
    { "wrong-type", P("{\"before\":-9223372036854775808}"), HIST("invalid_before") },
    { "huge-number", P("{\"before\":null}"), HIST(PAGE) },
    { "huge-number", P("{\"before\":9223372036854775807}"), HIST(PAGE) },
    { "wrong-type", P("{\"user\":1}"), HIST("invalid_user") },
    { "wrong-type", P("{\"user\":true}"), HIST("invalid_user") },
    { "wrong-type", P("{\"user\":[]}"), HIST("invalid_user") },
    { "wrong-type", P("{\"user\":{}}"), HIST("invalid_user") },
    { "wrong-type", P("{\"user\":null,\"limit\":1,\"before\":1}"), HIST(PAGE) },
    { "wrong-type", P("{\"user\":\"mallory\"}"), HIST(PAGE) },
    /* delete: id and user. */
    { "wrong-type", P("{\"user\":\"mallory\",\"id\":0}"), DEL("invalid_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"id\":-1}"), DEL("invalid_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"id\":-0}"), DEL("invalid_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"id\":1.5}"), DEL("invalid_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"id\":1e0}"), DEL("invalid_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"id\":1.0}"), DEL("invalid_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"id\":\"1\"}"), DEL("invalid_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"id\":true}"), DEL("invalid_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"id\":null}"), DEL("invalid_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"id\":[]}"), DEL("invalid_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"id\":{}}"), DEL("invalid_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"id\":[1]}"), DEL("invalid_id") },
    { "wrong-type", P("{\"user\":\"mallory\",\"id\":-9223372036854775808}"), DEL("invalid_id") },
    { "wrong-type", P("{\"user\":\"mallory\"}"), DEL("invalid_id") },
    { "wrong-type", P("{\"user\":1,\"id\":1}"), DEL("invalid_user") },
    { "wrong-type", P("{\"user\":null,\"id\":1}"), DEL("invalid_user") },
    { "wrong-type", P("{\"user\":[],\"id\":1}"), DEL("invalid_user") },
    { "wrong-type", P("{\"user\":{},\"id\":1}"), DEL("invalid_user") },
    { "wrong-type", P("{\"id\":1}"), DEL("invalid_user") },
    { "huge-number", P("{\"user\":\"mallory\",\"id\":9223372036854775807}"), DEL("not_found") },
    { "huge-number", P("{\"user\":\"mallory\",\"id\":999999}"), DEL("not_found") },
    /* Deleting someone else's message (the first valid ones are sent
     * before the corpus: 1 and 3 alice, 2 bob). */
    { "forbidden", P("{\"user\":\"mallory\",\"id\":1}"), DEL("forbidden") },
    { "forbidden", P("{\"user\":\"bob\",\"id\":1}"), DEL("forbidden") },
    { "forbidden", P("{\"user\":\"alice\",\"id\":2}"), DEL("forbidden") },
    { "forbidden", P("{\"user\":\"carol\",\"id\":3}"), DEL("forbidden") },
    { "forbidden", P("{\"user\":\"Alice\",\"id\":1}"), DEL("forbidden") },
    /* edit: the id as for delete, in an edit of message 1 by its author
     * (valid but for the id). */
    { "edit-id", P("{\"user\":\"alice\",\"id\":0,\"text\":\"x\"}"), EDIT("invalid_id") },
    { "edit-id", P("{\"user\":\"alice\",\"id\":-1,\"text\":\"x\"}"), EDIT("invalid_id") },
    { "edit-id", P("{\"user\":\"alice\",\"id\":-0,\"text\":\"x\"}"), EDIT("invalid_id") },
    { "edit-id", P("{\"user\":\"alice\",\"id\":1.5,\"text\":\"x\"}"), EDIT("invalid_id") },
    { "edit-id", P("{\"user\":\"alice\",\"id\":1.0,\"text\":\"x\"}"), EDIT("invalid_id") },
    { "edit-id", P("{\"user\":\"alice\",\"id\":1e0,\"text\":\"x\"}"), EDIT("invalid_id") },
    { "edit-id", P("{\"user\":\"alice\",\"id\":1e18,\"text\":\"x\"}"), EDIT("invalid_id") },
    { "edit-id", P("{\"user\":\"alice\",\"id\":\"1\",\"text\":\"x\"}"), EDIT("invalid_id") },
    { "edit-id", P("{\"user\":\"alice\",\"id\":true,\"text\":\"x\"}"), EDIT("invalid_id") },
    { "edit-id", P("{\"user\":\"alice\",\"id\":null,\"text\":\"x\"}"), EDIT("invalid_id") },
    { "edit-id", P("{\"user\":\"alice\",\"id\":[],\"text\":\"x\"}"), EDIT("invalid_id") },
    { "edit-id", P("{\"user\":\"alice\",\"id\":[1],\"text\":\"x\"}"), EDIT("invalid_id") },
    { "edit-id", P("{\"user\":\"alice\",\"id\":{},\"text\":\"x\"}"), EDIT("invalid_id") },
    { "edit-id", P("{\"user\":\"alice\",\"id\":{\"id\":1},\"text\":\"x\"}"), EDIT("invalid_id") },
    { "edit-id", P("{\"user\":\"alice\",\"id\":-9223372036854775808,\"text\":\"x\"}"), EDIT("invalid_id") },
    { "edit-id", P("{\"user\":\"alice\",\"text\":\"x\"}"), EDIT("invalid_id") },
    { "edit-id", P("{\"user\":\"alice\",\"id\":9223372036854775808,\"text\":\"x\"}"), EDIT(EJ) },
    { "edit-id", P("{\"user\":\"alice\",\"id\":18446744073709551616,\"text\":\"x\"}"), EDIT(EJ) },
    { "edit-id", P("{\"user\":\"alice\",\"id\":1e400,\"text\":\"x\"}"), EDIT(EJ) },
    { "edit-id", P("{\"user\":\"alice\",\"id\":9223372036854775807,\"text\":\"x\"}"), EDIT("not_found") },
    { "edit-id", P("{\"user\":\"alice\",\"id\":999999,\"text\":\"x\"}"), EDIT("not_found") },
    { "edit-id", P("{\"user\":\"alice\",\"id\":999999,\"text\":\"x\",\"client_msg_id\":\"e-1\"}"),
      EDIT("not_found") },
    /* edit: the user, text and client_msg_id as for send. */
    { "edit-type", P("{\"user\":1,\"id\":1,\"text\":\"x\"}"), EDIT("invalid_user") },
    { "edit-type", P("{\"user\":null,\"id\":1,\"text\":\"x\"}"), EDIT("invalid_user") },
    { "edit-type", P("{\"user\":[\"alice\"],\"id\":1,\"text\":\"x\"}"), EDIT("invalid_user") },
    { "edit-type", P("{\"user\":{\"name\":\"alice\"},\"id\":1,\"text\":\"x\"}"), EDIT("invalid_user") },
    { "edit-type", P("{\"user\":\"\",\"id\":1,\"text\":\"x\"}"), EDIT("invalid_user") },
    { "edit-type", P("{\"id\":1,\"text\":\"x\"}"), EDIT("invalid_user") },
    { "edit-type", P("{\"user\":\"alice\",\"id\":1,\"text\":1}"), EDIT("invalid_text") },
    { "edit-type", P("{\"user\":\"alice\",\"id\":1,\"text\":1.5}"), EDIT("invalid_text") },
    { "edit-type", P("{\"user\":\"alice\",\"id\":1,\"text\":true}"), EDIT("invalid_text") },
    { "edit-type", P("{\"user\":\"alice\",\"id\":1,\"text\":null}"), EDIT("invalid_text") },
    { "edit-type", P("{\"user\":\"alice\",\"id\":1,\"text\":[\"x\"]}"), EDIT("invalid_text") },
    { "edit-type", P("{\"user\":\"alice\",\"id\":1,\"text\":{}}"), EDIT("invalid_text") },
    { "edit-type", P("{\"user\":\"alice\",\"id\":1,\"text\":{\"t\":{\"u\":\"x\"}}}"), EDIT("invalid_text") },
    { "edit-type", P("{\"user\":\"alice\",\"id\":1}"), EDIT("invalid_text") },
    { "edit-type", P(AEDIT("")), EDIT("empty_text") },
    { "edit-utf8", P(AEDIT("\xC0\xAF")), EDIT(EU) },
    { "edit-utf8", P(AEDIT("\xED\xA0\x80")), EDIT(EU) },
    { "edit-utf8", P(AEDIT("\xF4\x90\x80\x80")), EDIT(EU) },
    { "edit-utf8", P(AEDIT("a\xE2\x82")), EDIT(EU) },
    { "edit-utf8", P(AEDIT("\xFF")), EDIT(EU) },
    { "edit-utf8", P(AEDIT("a\\u0000b")), EDIT(EJ) },
    { "edit-utf8", P(AEDIT("\\ud800")), EDIT(EJU) },
    { "edit-utf8", P("{\"user\":\"alice\",\"id\":1,\"text\":\"h\0i\"}"), EDIT(EJ) },
    { "edit-cmid", P(ACMID("1")), EDIT("invalid_client_msg_id") },
    { "edit-cmid", P(ACMID("true")), EDIT("invalid_client_msg_id") },
    { "edit-cmid", P(ACMID("null")), EDIT("invalid_client_msg_id") },
    { "edit-cmid", P(ACMID("[]")), EDIT("invalid_client_msg_id") },
    { "edit-cmid", P(ACMID("{\"c\":\"x\"}")), EDIT("invalid_client_msg_id") },
    { "edit-cmid", P(ACMID("\"\"")), EDIT("invalid_client_msg_id") },
    { "edit-cmid", P(ACMID("\"a\\u0001b\"")), EDIT("invalid_client_msg_id") },
    { "edit-cmid", P(ACMID("\"a\\u001fb\"")), EDIT("invalid_client_msg_id") },
    { "edit-cmid", P(ACMID("\"a\\u007fb\"")), EDIT("invalid_client_msg_id") },
    { "edit-cmid", P(ACMID("\"a\\u0085b\"")), EDIT("invalid_client_msg_id") },
    { "edit-cmid", P(ACMID("\"a\xC2\x9F" "b\"")), EDIT("invalid_client_msg_id") },
    { "edit-cmid", P(ACMID("\"a\\nb\"")), EDIT("invalid_client_msg_id") },
    { "edit-cmid", P(ACMID("\"a\\tb\"")), EDIT("invalid_client_msg_id") },
    { "edit-cmid", P(ACMID("\"\\r\"")), EDIT("invalid_client_msg_id") },
    { "edit-cmid", P(ACMID("\"ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"")),
      EDIT("invalid_client_msg_id") },                              /* 65 bytes */
    { "edit-cmid", P(ACMID("\"a\\u0000\"")), EDIT(EJ) },
    { "edit-cmid", P(ACMID("\"\xC0\xAF\"")), EDIT(EU) },
    /* edit: someone else's message (1 and 3 alice, 2 bob), also reusing
     * the client_msg_id of a send (an edit's dedup is its own) */
    { "edit-forbidden", P("{\"user\":\"mallory\",\"id\":1,\"text\":\"hijacked\"}"), EDIT("forbidden") },
    { "edit-forbidden", P("{\"user\":\"bob\",\"id\":1,\"text\":\"hijacked\"}"), EDIT("forbidden") },
    { "edit-forbidden", P("{\"user\":\"Alice\",\"id\":1,\"text\":\"hijacked\"}"), EDIT("forbidden") },
    { "edit-forbidden", P("{\"user\":\"alice\",\"id\":2,\"text\":\"hijacked\"}"), EDIT("forbidden") },
    { "edit-forbidden", P("{\"user\":\"carol\",\"id\":3,\"text\":\"hijacked\"}"), EDIT("forbidden") },
    { "edit-forbidden", P("{\"user\":\"mallory\",\"id\":3,\"text\":\"hijacked\",\"client_msg_id\":\"cm-1\"}"),
      EDIT("forbidden") },
    /* read: the id as for delete, and every id past the room's last,
     * which the store refuses without writing. */
    { "read-id", P("{\"user\":\"mallory\",\"id\":0}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":-1}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":-0}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":1.5}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":1.0}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":1e0}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":\"1\"}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":\"9999999999999999999999\"}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":true}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":false}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":null}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":[]}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":[1]}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":{}}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":{\"id\":1}}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":[[[[{\"id\":1}]]]]}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":-9223372036854775808}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\"}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":9223372036854775808}"), READ(EJ) },
    { "read-id", P("{\"user\":\"mallory\",\"id\":-9223372036854775809}"), READ(EJ) },
    { "read-id", P("{\"user\":\"mallory\",\"id\":1e400}"), READ(EJ) },
    { "read-id", P("{\"user\":\"mallory\",\"id\":9223372036854775807}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"mallory\",\"id\":999999}"), READ("invalid_id") },
    { "read-id", P("{\"user\":\"alice\",\"id\":999999}"), READ("invalid_id") },
    { "read-type", P("{\"user\":1,\"id\":1}"), READ("invalid_user") },
    { "read-type", P("{\"user\":null,\"id\":1}"), READ("invalid_user") },
    { "read-type", P("{\"user\":true,\"id\":1}"), READ("invalid_user") },
    { "read-type", P("{\"user\":[\"mallory\"],\"id\":1}"), READ("invalid_user") },
    { "read-type", P("{\"user\":{\"name\":\"mallory\"},\"id\":1}"), READ("invalid_user") },
    { "read-type", P("{\"user\":\"\",\"id\":1}"), READ("invalid_user") },
    { "read-type", P("{\"id\":1}"), READ("invalid_user") },
    { "read-type", P("{\"user\":\"mal\xC0\xAFlory\",\"id\":1}"), READ(EU) },
    { "read-type", P("{\"user\":\"mallory\\u0000\",\"id\":1}"), READ(EJ) },
    { "read-type", P("{\"user\":\"mallory\",\"id\":1,\"id\":2}"), READ(EJ) },
    /* history with "after" (a catch-up): an integer >= 0 or null, else
     * invalid_after; limit and before are judged first. */
    { "after", P("{\"after\":-1}"), HIST("invalid_after") },
    { "after", P("{\"after\":-9223372036854775808}"), HIST("invalid_after") },
    { "after", P("{\"after\":0.0}"), HIST("invalid_after") },
    { "after", P("{\"after\":1.5}"), HIST("invalid_after") },
    { "after", P("{\"after\":1e2}"), HIST("invalid_after") },
    { "after", P("{\"after\":\"5\"}"), HIST("invalid_after") },
    { "after", P("{\"after\":\"0\"}"), HIST("invalid_after") },
    { "after", P("{\"after\":\"\"}"), HIST("invalid_after") },
    { "after", P("{\"after\":true}"), HIST("invalid_after") },
    { "after", P("{\"after\":false}"), HIST("invalid_after") },
    { "after", P("{\"after\":[]}"), HIST("invalid_after") },
    { "after", P("{\"after\":[0]}"), HIST("invalid_after") },
    { "after", P("{\"after\":{}}"), HIST("invalid_after") },
    { "after", P("{\"after\":{\"after\":1}}"), HIST("invalid_after") },
    { "after", P("{\"after\":-1,\"user\":1}"), HIST("invalid_after") },
    { "after", P("{\"after\":-1,\"limit\":0}"), HIST("invalid_limit") },
    { "after", P("{\"after\":-1,\"before\":0}"), HIST("invalid_before") },
    { "after", P("{\"after\":1,\"user\":\"a:b\"}"), HIST("invalid_user") },
    { "after", P("{\"after\":9223372036854775808}"), HIST(EJ) },
    { "after", P("{\"after\":-9223372036854775809}"), HIST(EJ) },
    { "after", P("{\"after\":1e400}"), HIST(EJ) },
    { "after", P("{\"after\":1,\"after\":2}"), HIST(EJ) },
    { "after", P("{\"after\":\"\xFF\"}"), HIST(EU) },
    { "after", P("{\"after\":null}"), HIST(PAGE) },
    { "after", P("{\"after\":0}"), HIST(PAGE) },
    { "after", P("{\"after\":-0}"), HIST(PAGE) },
    { "after", P("{\"after\":9223372036854775807}"), HIST(PAGE) },
    { "after", P("{\"after\":9223372036854775806,\"limit\":9223372036854775807}"), HIST(PAGE) },
    { "after", P("{\"after\":0,\"before\":9223372036854775807,\"limit\":1}"), HIST(PAGE) },
    { "after", P("{\"after\":5,\"before\":2}"), HIST(PAGE) },
    { "after", P("{\"after\":0,\"user\":\"mallory\"}"), HIST(PAGE) },
    /* members: limit as for history; after a user name (the page's
     * cursor) or null, else invalid_after; the limit is judged first and
     * "user" is no member of it. None is valid: a valid one would build
     * the room's member index. */
    { "members-limit", P("{\"limit\":0}"), MEMB("invalid_limit") },
    { "members-limit", P("{\"limit\":-1}"), MEMB("invalid_limit") },
    { "members-limit", P("{\"limit\":-0}"), MEMB("invalid_limit") },
    { "members-limit", P("{\"limit\":1.5}"), MEMB("invalid_limit") },
    { "members-limit", P("{\"limit\":1.0}"), MEMB("invalid_limit") },
    { "members-limit", P("{\"limit\":1e2}"), MEMB("invalid_limit") },
    { "members-limit", P("{\"limit\":\"10\"}"), MEMB("invalid_limit") },
    { "members-limit", P("{\"limit\":true}"), MEMB("invalid_limit") },
    { "members-limit", P("{\"limit\":null}"), MEMB("invalid_limit") },
    { "members-limit", P("{\"limit\":[]}"), MEMB("invalid_limit") },
    { "members-limit", P("{\"limit\":[1]}"), MEMB("invalid_limit") },
    { "members-limit", P("{\"limit\":{}}"), MEMB("invalid_limit") },
    { "members-limit", P("{\"limit\":{\"limit\":{\"limit\":1}}}"), MEMB("invalid_limit") },
    { "members-limit", P("{\"limit\":-9223372036854775808}"), MEMB("invalid_limit") },
    { "members-limit", P("{\"limit\":0,\"after\":\"alice\"}"), MEMB("invalid_limit") },
    { "members-limit", P("{\"after\":1,\"limit\":0}"), MEMB("invalid_limit") },
    { "members-limit", P("{\"after\":null,\"limit\":-5}"), MEMB("invalid_limit") },
    { "members-limit", P("{\"limit\":9223372036854775808}"), MEMB(EJ) },
    { "members-limit", P("{\"limit\":18446744073709551616}"), MEMB(EJ) },
    { "members-limit", P("{\"limit\":1e400}"), MEMB(EJ) },
    { "members-limit", P("{\"limit\":1,\"limit\":2}"), MEMB(EJ) },
    { "members-after", P("{\"after\":0}"), MEMB("invalid_after") },
    { "members-after", P("{\"after\":1}"), MEMB("invalid_after") },
    { "members-after", P("{\"after\":-1}"), MEMB("invalid_after") },
    { "members-after", P("{\"after\":1.5}"), MEMB("invalid_after") },
    { "members-after", P("{\"after\":true}"), MEMB("invalid_after") },
    { "members-after", P("{\"after\":false}"), MEMB("invalid_after") },
    { "members-after", P("{\"after\":[]}"), MEMB("invalid_after") },
    { "members-after", P("{\"after\":[\"alice\"]}"), MEMB("invalid_after") },
    { "members-after", P("{\"after\":{}}"), MEMB("invalid_after") },
    { "members-after", P("{\"after\":{\"after\":\"alice\"}}"), MEMB("invalid_after") },
    { "members-after", P("{\"after\":{\"a\":{\"b\":{\"c\":[\"alice\"]}}}}"), MEMB("invalid_after") },
    { "members-after", P("{\"after\":\"\"}"), MEMB("invalid_after") },
    { "members-after", P("{\"after\":-9223372036854775808}"), MEMB("invalid_after") },
    { "members-after", P("{\"after\":9223372036854775807}"), MEMB("invalid_after") },
    { "members-after", P("{\"after\":9223372036854775807,\"limit\":9223372036854775807}"),
      MEMB("invalid_after") },
    { "members-after", P("{\"after\":\"a:b\",\"limit\":2147483648}"), MEMB("invalid_after") },
    { "members-after", P("{\"after\":1,\"user\":\"alice\",\"before\":1}"), MEMB("invalid_after") },
    { "members-after", P("{\"user\":1,\"after\":1}"), MEMB("invalid_after") },
    { "members-after", P("{\"after\":9223372036854775808}"), MEMB(EJ) },
    { "members-after", P("{\"after\":1e400}"), MEMB(EJ) },
    { "members-after", P("{\"after\":\"alice\\u0000\"}"), MEMB(EJ) },
    { "members-after", P("{\"after\":\"al\xC0\xAFice\"}"), MEMB(EU) },
    { "members-after", P("{\"after\":\"\xFF\"}"), MEMB(EU) },
    { "members-after", P("{\"after\":\"\\ud800\"}"), MEMB(EJU) },
    { "members-after", P("{\"after\":\"alice\",\"after\":\"bob\"}"), MEMB(EJ) },
    { "members-after", P("{\"after\":\"al\0ice\"}"), MEMB(EJ) },
    /* rooms (chat/$rooms): "user" as for send, then limit, then before
     * (an integer >= 1 or null). The valid ones only read: an empty list
     * for mallory, a clamped limit, the largest cursor. */
    { "rooms-user", P("{}"), ROOMS("invalid_user") },
    { "rooms-user", P("{\"user\":null}"), ROOMS("invalid_user") },
    { "rooms-user", P("{\"user\":1}"), ROOMS("invalid_user") },
    { "rooms-user", P("{\"user\":-1}"), ROOMS("invalid_user") },
    { "rooms-user", P("{\"user\":1.5}"), ROOMS("invalid_user") },
    { "rooms-user", P("{\"user\":true}"), ROOMS("invalid_user") },
    { "rooms-user", P("{\"user\":false}"), ROOMS("invalid_user") },
    { "rooms-user", P("{\"user\":[]}"), ROOMS("invalid_user") },
    { "rooms-user", P("{\"user\":[\"alice\"]}"), ROOMS("invalid_user") },
    { "rooms-user", P("{\"user\":{}}"), ROOMS("invalid_user") },
    { "rooms-user", P("{\"user\":{\"name\":\"alice\"}}"), ROOMS("invalid_user") },
    { "rooms-user", P("{\"user\":[[[[{\"user\":\"alice\"}]]]]}"), ROOMS("invalid_user") },
    { "rooms-user", P("{\"user\":\"\"}"), ROOMS("invalid_user") },
    { "rooms-user", P("{\"limit\":1,\"before\":1}"), ROOMS("invalid_user") },
    { "rooms-user", P("{\"user\":1,\"limit\":0,\"before\":0}"), ROOMS("invalid_user") },
    { "rooms-user", P("{\"user\":\"alice\\u0000\"}"), ROOMS(EJ) },
    { "rooms-user", P("{\"user\":\"al\xC0\xAFice\"}"), ROOMS(EU) },
    { "rooms-user", P("{\"user\":\"\\udc00\"}"), ROOMS(EJU) },
    { "rooms-user", P("{\"user\":\"alice\",\"user\":\"bob\"}"), ROOMS(EJ) },
    { "rooms-user", P("{\"user\":\"al\0ice\"}"), ROOMS(EJ) },
    { "rooms-limit", P("{\"user\":\"mallory\",\"limit\":0}"), ROOMS("invalid_limit") },
    { "rooms-limit", P("{\"user\":\"mallory\",\"limit\":-1}"), ROOMS("invalid_limit") },
    { "rooms-limit", P("{\"user\":\"mallory\",\"limit\":-0}"), ROOMS("invalid_limit") },
    { "rooms-limit", P("{\"user\":\"mallory\",\"limit\":1.5}"), ROOMS("invalid_limit") },
    { "rooms-limit", P("{\"user\":\"mallory\",\"limit\":1.0}"), ROOMS("invalid_limit") },
    { "rooms-limit", P("{\"user\":\"mallory\",\"limit\":\"10\"}"), ROOMS("invalid_limit") },
    { "rooms-limit", P("{\"user\":\"mallory\",\"limit\":true}"), ROOMS("invalid_limit") },
    { "rooms-limit", P("{\"user\":\"mallory\",\"limit\":null}"), ROOMS("invalid_limit") },
    { "rooms-limit", P("{\"user\":\"mallory\",\"limit\":[]}"), ROOMS("invalid_limit") },
    { "rooms-limit", P("{\"user\":\"mallory\",\"limit\":{}}"), ROOMS("invalid_limit") },
    { "rooms-limit", P("{\"user\":\"mallory\",\"limit\":[1]}"), ROOMS("invalid_limit") },
    { "rooms-limit", P("{\"user\":\"mallory\",\"limit\":-9223372036854775808}"),
      ROOMS("invalid_limit") },
    { "rooms-limit", P("{\"user\":\"mallory\",\"limit\":0,\"before\":0}"), ROOMS("invalid_limit") },
    { "rooms-limit", P("{\"user\":\"mallory\",\"limit\":9223372036854775808}"), ROOMS(EJ) },
    { "rooms-limit", P("{\"user\":\"mallory\",\"limit\":1e400}"), ROOMS(EJ) },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":0}"), ROOMS("invalid_before") },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":-1}"), ROOMS("invalid_before") },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":-0}"), ROOMS("invalid_before") },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":1.5}"), ROOMS("invalid_before") },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":1.0}"), ROOMS("invalid_before") },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":1e3}"), ROOMS("invalid_before") },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":\"5\"}"), ROOMS("invalid_before") },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":\"\"}"), ROOMS("invalid_before") },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":true}"), ROOMS("invalid_before") },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":false}"), ROOMS("invalid_before") },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":[]}"), ROOMS("invalid_before") },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":[1]}"), ROOMS("invalid_before") },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":{}}"), ROOMS("invalid_before") },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":{\"before\":1}}"), ROOMS("invalid_before") },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":-9223372036854775808}"),
      ROOMS("invalid_before") },
    { "rooms-before", P("{\"user\":\"alice\",\"limit\":9223372036854775807,\"before\":0}"),
      ROOMS("invalid_before") },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":9223372036854775808}"), ROOMS(EJ) },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":-9223372036854775809}"), ROOMS(EJ) },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":1e400}"), ROOMS(EJ) },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":\"\xFF\"}"), ROOMS(EU) },
    { "rooms-before", P("{\"user\":\"mallory\",\"before\":1,\"before\":2}"), ROOMS(EJ) },
    { "rooms-legal", P("{\"user\":\"mallory\"}"), ROOMS(RPAGE) },
    { "rooms-legal", P("{\"user\":\"alice\",\"limit\":9223372036854775807}"), ROOMS(RPAGE) },
    { "rooms-legal", P("{\"user\":\"alice\",\"limit\":2147483648,\"before\":9223372036854775807}"),
      ROOMS(RPAGE) },
    { "rooms-legal", P("{\"user\":\"bob\",\"before\":1,\"limit\":1}"), ROOMS(RPAGE) },
    { "rooms-legal", P("{\"user\":\"alice\",\"before\":null,\"after\":-1,\"id\":\"x\"}"),
      ROOMS(RPAGE) },
    { "rooms-legal", P("{\"user\":\"$rooms\"}"), ROOMS(RPAGE) },
};
#define NPAYLOAD ((int)(sizeof(payload_table) / sizeof(payload_table[0])))

/* User names that break the rules, as JSON literals. */
static const char *const bad_users[] = {
    "\"a:b\"", "\":\"", "\"alice:ids\"", "\"messages:ids\"", "\"1:content\"",
    "\"lobby:alice\"", "\"{a}\"", "\"{\"", "\"}\"", "\"*\"", "\"a*\"", "\"?\"",
    "\"[a-z]\"", "\"[\"", "\"]\"", "\"a b\"", "\" \"", "\" alice\"", "\"a,b\"",
    "\"a/b\"", "\"a+b\"", "\"#\"", "\"\\t\"", "\"a\\nb\"", "\"\\r\"", "\"\\u0001\"",
    "\"\\u001f\"", "\"\\u007f\"", "\"\\u0080\"", "\"\\u0085\"", "\"\\u009f\"",
    "\"messages\"", "\"0\"", "\"123\"", "\"18446744073709551616\"", "\"\"",
};
#define NBAD_USERS ((int)(sizeof(bad_users) / sizeof(bad_users[0])))

/* Room levels a client may publish to but that are not valid rooms. */
static const char *const bad_rooms[] = {
    "a:b", ":", "lobby:1", "lobby:messages", "lobby:alice:ids", "{a}", "{", "}",
    "{lobby}", "*", "a*b", "?", "[a]", "[", "]", "a b", " ", "lobby ", "a,b", "",
    "$x", "$", "$rooms", "$bridge", "$lobby",
};
#define NBAD_ROOMS ((int)(sizeof(bad_rooms) / sizeof(bad_rooms[0])))

/* Topics the bridge does not subscribe to, or that are not requests. */
static const char *const foreign_topics[] = {
    "chat/a/b/send", "chat/lobby/send/x", "chat/lobby//send", "chat/send",
    "chat/history", "chat/lobby/Send", "chat/lobby/SEND", "chat/lobby/send/",
    "chat/lobby/send ", "/chat/lobby/send", "chatter/lobby/send",
    "Chat/lobby/send", "chat/lobby/msgs", "chat/lobby", "chat",
    "chat/$bridge/" BRIDGE_ID "/status",
    "chat/a/b/edit", "chat/a/b/read", "chat/lobby/edit/x", "chat/lobby/read/x",
    "chat/lobby/edit/alice", "chat/lobby/read/alice", "chat/r/edit/x/y", "chat/r/read/x/y",
    "chat/lobby//edit", "chat/lobby//read", "chat/edit", "chat/read", "chat/lobby/Edit",
    "chat/lobby/READ", "chat/lobby/edit/", "chat/lobby/read/", "chat/lobby/read ",
    "chat/lobby/edited", "chat/lobby/reads", "/chat/lobby/edit", "chatter/lobby/read",
    "chat/lobby/edit/read", "chat/lobby/read/edit",
    /* members and $rooms at the wrong level: $rooms has no room level and,
     * in identity "payload", no sender level; members never a sender. */
    "chat/lobby/$rooms", "chat/$rooms/x", "chat/$rooms/alice", "chat/$rooms/x/y",
    "chat/$rooms/", "chat/lobby/$rooms/alice", "chat/$rooms/$rooms", "chat/$rooms/lobby/send",
    "chat/lobby/members/x", "chat/lobby/members/alice", "chat/lobby/members/", "chat/a/b/members",
    "chat/r/members/x/y", "chat/members", "chat/lobby/Members", "chat/lobby/MEMBERS",
    "chat/lobby/member", "chat/lobby/membersx", "chat/$Rooms", "chat/$ROOMS", "chat/rooms",
    "chat/lobby/rooms", "chat/$rooms ", "/chat/$rooms", "chatter/$rooms",
    "chat/lobby/members ", "/chat/lobby/members", "chatter/lobby/members",
    "chat/lobby/members/members", "chat/lobby/members/send",
};
#define NFOREIGN ((int)(sizeof(foreign_topics) / sizeof(foreign_topics[0])))

/* Topics MQTT forbids or mosquitto refuses; only a raw socket sends them. */
static const struct { const char *t; size_t len; } raw_topics[] = {
    { P("chat/a\x01" "b/send") }, { P("chat/\x1f/send") }, { P("chat/\x7f/send") },
    { P("chat/\xC2\x85/send") }, { P("chat/\xEF\xBF\xBF/send") },
    { P("chat/\xEF\xB7\x90/send") }, { P("chat/\xC0\xAF/send") },
    { P("chat/\xED\xA0\x80/send") }, { P("chat/\xFF/send") },
    { P("chat/a\0b/send") }, { P("chat/lobby\0/send") }, { P("chat/+/send") },
    { P("chat/#") }, { P("chat/lobby/#") }, { P("+/+/send") }, { P("#") },
    { P("chat/a+b/send") }, { P("chat/a#/send") },
    { P("chat/a\x01" "b/edit") }, { P("chat/\x7f/read") }, { P("chat/\xC2\x85/edit") },
    { P("chat/\xEF\xBF\xBF/read") }, { P("chat/\xC0\xAF/edit") }, { P("chat/\xFF/read") },
    { P("chat/lobby\0/edit") }, { P("chat/lobby\0/read") }, { P("chat/+/edit") },
    { P("chat/+/read") }, { P("chat/lobby/edit/#") }, { P("chat/a#/read") },
    { P("chat/a\x01" "b/members") }, { P("chat/\xC2\x85/members") }, { P("chat/\xFF/members") },
    { P("chat/lobby\0/members") }, { P("chat/+/members") }, { P("chat/lobby/members/#") },
};
#define NRAW_TOPICS ((int)(sizeof(raw_topics) / sizeof(raw_topics[0])))

/* The same for a user's rooms, which the bridge refuses at the broker's
 * word or ignores (no room to be invalid). */
static const struct { const char *t; size_t len; } raw_rooms_topics[] = {
    { P("chat/$rooms\0") }, { P("chat/$rooms\0/x") }, { P("chat/\0$rooms") },
    { P("chat/$rooms/#") }, { P("chat/$rooms/+") }, { P("chat/+") }, { P("chat/$rooms\x01") },
    { P("chat/$rooms\x7f") }, { P("chat/$rooms\xC2\x85") }, { P("chat/$rooms\xFF") },
    { P("chat/\xC0\xA4rooms") }, { P("chat/$rooms\xEF\xBF\xBF") },
};
#define NRAW_ROOMS_TOPICS ((int)(sizeof(raw_rooms_topics) / sizeof(raw_rooms_topics[0])))

/* Reply topics the bridge must never publish to. */
static const struct { const char *t; size_t len; } bad_replies[] = {
    { P("chat/lobby/send") }, { P("chat/lobby/msgs") }, { P("chat/lobby/history") },
    { P("chat/lobby/delete") }, { P("chat//send") }, { P("chat//msgs") },
    { P("chat/lobby/edit") }, { P("chat/lobby/read") }, { P("chat//edit") }, { P("chat//read") },
    { P("chat/other/read") }, { P("chat/lobby/edit/alice") }, { P("chat/lobby/read/x") },
    { P("chat/x/edit/") }, { P("chat//read/") }, { P("chat/lobby/send/alice") },
    { P("chat/lobby/delete/x") }, { P("chat/$x/read") },
    { P("chat/other/msgs") }, { P("chat/%20/msgs") }, { P("chat/$x/msgs") },
    { P("chat/$bridge/x/status") }, { P("chat/$bridge/" BRIDGE_ID "/status") },
    { P("chat/$x") }, { P("chat/$") }, { P("#") }, { P("+") }, { P("chat/+/msgs") },
    { P("chat/#") }, { P("reply/#") }, { P("reply/+") }, { P("a/+/b") },
    { P("$SYS/x") }, { P("$SYS/broker/uptime") }, { P("$share/g/reply") }, { P("$") },
    { P("") }, { P("reply/\x01") }, { P("reply/\x1f") }, { P("reply/\x7f") },
    { P("reply/\xC2\x85") }, { P("reply/\xEF\xBF\xBF") }, { P("reply/\xEF\xB7\x90") },
    { P("reply/\xF0\x9F\xBF\xBE") }, { P("reply/\xC0\xAF") }, { P("reply/\xED\xA0\x80") },
    { P("reply/\xFF") }, { P("reply/a\0b") },
    { P("chat/lobby/members") }, { P("chat//members") }, { P("chat/other/members") },
    { P("chat/$x/members") }, { P("chat/$rooms") }, { P("chat/$rooms/alice") },
    { P("chat/$rooms/x/y") }, { P("chat/$rooms/") }, { P("chat/lobby/$rooms") },
    { P("chat/lobby/$rooms/alice") }, { P("chat//$rooms") }, { P("chat/+/members") },
    { P("chat/$rooms/+") }, { P("$rooms") }, { P("chat/lobby/members\x01") },
};
#define NBAD_REPLIES ((int)(sizeof(bad_replies) / sizeof(bad_replies[0])))

/* Odd reply topics that are allowed: the answer must land exactly there. */
static const char *const odd_replies[] = {
    "reply/a b", "reply/\xC3\xBC", "reply/$x", "chat/lobby/x", "chat/lobby/msgs/x",
    "chat/lobby", "chat", "reply/:{}*?[]",
    "chat/lobby/edit/x/y", "chat/lobby/read/x/y", "chat/lobby/edited", "chat/lobby/reads",
    "chat/lobby/Edit", "chat/lobby/history/x", "reply/edit", "reply/read",
    "chat/lobby/members/x", "chat/lobby/members/alice", "chat/members", "chat/x/y/$rooms",
    "chat/x/y/members", "chat/lobby/Members", "chat/rooms", "chat/lobby/rooms",
    "reply/members", "reply/$rooms", "reply/$rooms/alice",
};
#define NODD_REPLIES ((int)(sizeof(odd_replies) / sizeof(odd_replies[0])))

/* Append a case: by default it is answered on REPLY (MQTT 5) with
 * correlation "h<index>". */
static struct hcase *add_case(const char *cat, const char *topic, size_t tlen,
                              const char *payload, size_t plen, const char *expect) {
    assert_true(ncases < MAX_CASES);
    struct hcase *c = &cases[ncases];
    memset(c, 0, sizeof(*c));
    c->cat = cat;
    c->topic = dupmem(topic, tlen);
    c->topic_len = tlen;
    c->payload = dupmem(payload, plen);
    c->len = plen;
    c->resp = dupmem(REPLY, strlen(REPLY));
    c->resp_len = strlen(REPLY);
    c->corr = fmt("h%04d", ncases);
    c->corr_len = strlen(c->corr);
    c->reply_at = dupmem(REPLY, strlen(REPLY));
    c->expect = expect;
    c->dup_of = -1;
    ncases++;
    return c;
}

/* "chat/<room>/<leaf of kind>", malloc'd; *len set. A user's rooms have
 * no room level: "chat/$rooms", whatever room says. */
static char *room_topic(const char *room, size_t rlen, int kind, size_t *len) {
    char *t = malloc(rlen + 16);
    assert_non_null(t);
    if (kind == K_ROOMS) {
        *len = (size_t)sprintf(t, "chat/%s", leaf[kind]);
        return t;
    }
    memcpy(t, "chat/", 5);
    memcpy(t + 5, room, rlen);
    *len = 5 + rlen + (size_t)sprintf(t + 5 + rlen, "/%s", leaf[kind]);
    return t;
}

/* A case on chat/<room>/<kind> (chat/$rooms for K_ROOMS). */
static struct hcase *add_room_case(const char *cat, const char *room, size_t rlen, int kind,
                                   const char *payload, size_t plen, const char *expect) {
    size_t tlen;
    char *topic = room_topic(room, rlen, kind, &tlen);
    struct hcase *c = add_case(cat, topic, tlen, payload, plen, expect);
    free(topic);
    return c;
}

/* Replace a case's MQTT 5 reply address. */
static void set_resp(struct hcase *c, const char *t, size_t len) {
    free(c->resp);
    free(c->reply_at);
    c->resp = dupmem(t, len);
    c->resp_len = len;
    c->reply_at = dupmem(t, len);
}

/* A case answered through the JSON fallback: no Response Topic, the
 * payload "{<body>,"reply_to":T,"correlation":"h<index>"}". */
static struct hcase *add_json_reply_case(const char *cat, const char *topic, const char *body,
                                         const char *t, size_t tlen, const char *expect) {
    char *q = json_quote(t, tlen);
    char *payload = fmt("{%s%s\"reply_to\":%s,\"correlation\":\"h%04d\"}", body,
                        body[0] ? "," : "", q, ncases);
    struct hcase *c = add_case(cat, topic, strlen(topic), payload, strlen(payload), expect);
    free(c->resp);
    free(c->reply_at);
    c->resp = NULL;
    c->resp_len = 0;
    c->reply_at = dupmem(t, tlen);
    c->jcorr = fmt("h%04d", (int)(c - cases));
    free(q);
    free(payload);
    return c;
}

/* Printable ASCII, which Paho carries as an MQTT 5 property without a
 * doubt; anything else (and the empty topic) goes over the raw socket. */
static int printable_ascii(const char *s, size_t len) {
    if (len == 0) return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] > 0x7E) return 0;
    return 1;
}

/* The payload table, each row to every kind it has an expectation for. */
static void gen_payload_table(void) {
    for (int i = 0; i < NPAYLOAD; i++)
        for (int k = 0; k < K_COUNT; k++)
            if (payload_table[i].expect[k])
                add_room_case(payload_table[i].cat, P("lobby"), k, payload_table[i].payload,
                              payload_table[i].len, payload_table[i].expect[k]);
}

/* Deep nesting: past jansson's depth limit (refused), and just under it
 * (parsed, then judged on its members: a history page; for members, which
 * would take it, with a bad limit too). */
static void gen_nesting(void) {
    char *open = repeat("[", 10000), *obj = repeat("{\"a\":", 5000);
    char *o2100 = repeat("[", 2100), *c2100 = repeat("]", 2100);
    char *o1000 = repeat("[", 1000), *c1000 = repeat("]", 1000);
    char *deep = fmt("%s%s", o2100, c2100), *legal = fmt("%s%s", o1000, c1000);
    char *member = fmt("{" OK3 ",\"n\":%s%s}", o2100, c2100);
    char *alone = fmt("{\"n\":%s%s}", o1000, c1000);
    char *alone_m = fmt("{\"n\":%s%s,\"limit\":0}", o1000, c1000);
    char *mixed = repeat("[{\"a\":", 3000);
    for (int k = 0; k < K_COUNT; k++) {
        add_room_case("deep-nesting", P("lobby"), k, open, strlen(open), EJ);
        add_room_case("deep-nesting", P("lobby"), k, obj, strlen(obj), EJ);
        add_room_case("deep-nesting", P("lobby"), k, deep, strlen(deep), EJ);
        add_room_case("deep-nesting", P("lobby"), k, legal, strlen(legal), EO);
        add_room_case("deep-nesting", P("lobby"), k, member, strlen(member), EJ);
        add_room_case("deep-nesting", P("lobby"), k, mixed, strlen(mixed), EJ);
        if (k == K_MEMBERS)
            add_room_case("deep-nesting", P("lobby"), k, alone_m, strlen(alone_m),
                          "invalid_limit");
        else
            add_room_case("deep-nesting", P("lobby"), k, alone, strlen(alone),
                          k == K_HISTORY ? PAGE : "invalid_user");
    }
    free(open); free(obj); free(o2100); free(c2100); free(o1000); free(c1000);
    free(deep); free(legal); free(member); free(alone); free(alone_m); free(mixed);
}

/* A 1 MiB payload: head, then filler bytes, then tail. */
static char *mib_payload(const char *head, char fill, const char *tail) {
    size_t hl = strlen(head), tl = strlen(tail);
    char *p = malloc(MIB + 1);
    assert_non_null(p);
    memcpy(p, head, hl);
    memset(p + hl, fill, MIB - hl - tl);
    memcpy(p + MIB - tl, tail, tl);
    p[MIB] = '\0';
    return p;
}

/* 1 MiB of bytes from a fixed pseudo-random sequence. */
static char *mib_random(void) {
    char *p = malloc(MIB);
    uint32_t x = 2463534242u;
    assert_non_null(p);
    for (size_t i = 0; i < MIB; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        p[i] = (char)(x >> 24);
    }
    p[0] = '{';
    return p;
}

/* An object of distinct keys filling 1 MiB after the members in head
 * ("{" and a member or two, unclosed). */
static char *mib_keys(const char *head) {
    char *p = malloc(MIB + 64);
    assert_non_null(p);
    size_t n = (size_t)sprintf(p, "%s", head);
    for (int i = 0; n + 32 < MIB; i++) n += (size_t)sprintf(p + n, ",\"k%07d\":0", i);
    n += (size_t)sprintf(p + n, "}");
    p[n] = '\0';
    return p;
}

/* 1 MiB payloads (mosquitto's default message_size_limit is 0: anything
 * up to MQTT's 256 MiB passes). Each goes to every kind but members,
 * which would take most of them (gen_members_rooms_big has its own); to a
 * user's rooms alice's are valid and only read. */
static void gen_big(void) {
    char *text = mib_payload("{\"user\":\"alice\",\"text\":\"", 'a', "\"}");
    char *brackets = mib_payload("", '[', "");
    char *nuls = calloc(1, MIB);
    char *rnd = mib_random();
    char *spaces = mib_payload("", ' ', "{}");
    char *keys = mib_keys("{\"user\":\"alice\"");
    char *user = mib_payload("{\"user\":\"", 'u', "\",\"text\":\"hi\",\"id\":1}");
    char *esc = repeat("\\u00e9", MIB / 6 - 8);
    char *escaped = fmt("{\"user\":\"alice\",\"text\":\"%s\"}", esc);
    char *longkey = mib_payload("{\"", 'k', "\":1}");
    assert_non_null(nuls);
    for (int k = 0; k < K_COUNT; k++) {
        add_room_case("1mib", P("lobby"), k, brackets, MIB, EJ);
        add_room_case("1mib", P("lobby"), k, nuls, MIB, EJ);
        add_room_case("1mib", P("lobby"), k, rnd, MIB, EJU);
        if (k == K_MEMBERS) continue;
        add_room_case("1mib", P("lobby"), k, text, MIB, k == K_SEND ? "text_too_long" :
                      k == K_HISTORY ? PAGE : k == K_ROOMS ? RPAGE : "invalid_id");
        add_room_case("1mib", P("lobby"), k, spaces, MIB, k == K_HISTORY ? PAGE : "invalid_user");
        add_room_case("1mib", P("lobby"), k, keys, strlen(keys), k == K_SEND ? "invalid_text" :
                      k == K_HISTORY ? PAGE : k == K_ROOMS ? RPAGE : "invalid_id");
        add_room_case("1mib", P("lobby"), k, user, MIB, "invalid_user");
        add_room_case("1mib", P("lobby"), k, escaped, strlen(escaped), k == K_SEND ?
                      "text_too_long" : k == K_HISTORY ? PAGE : k == K_ROOMS ? RPAGE : "invalid_id");
        add_room_case("1mib", P("lobby"), k, longkey, MIB, k == K_HISTORY ? PAGE : "invalid_user");
    }
    free(text); free(brackets); free(nuls); free(rnd); free(spaces); free(keys);
    free(user); free(esc); free(escaped); free(longkey);
}

/* A 1 MiB JSON correlation on a refused send: echoed back whole. */
static void gen_big_correlation(void) {
    char *big = repeat("c", MIB - 64);
    char *payload = fmt("{\"user\":\"mallory\",\"correlation\":\"h%04d%s\"}", ncases, big);
    struct hcase *c = add_room_case("1mib", P("lobby"), K_SEND, payload, strlen(payload),
                                    "invalid_text");
    c->jcorr = fmt("h%04d%s", (int)(c - cases), big);
    free(big);
    free(payload);
}

/* Texts just over the limit, counted in bytes after JSON decoding. */
static void gen_text_limits(void) {
    char *a4097 = repeat("a", MAX_TEXT + 1), *euro = repeat("\xE2\x82\xAC", 1366);
    char *a4095 = repeat("a", MAX_TEXT - 1), *esc = repeat("\\u20ac", 1366);
    char *big = repeat("a", 100000);
    const char *texts[] = { a4097, euro, esc, big };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        char *p = fmt("{\"user\":\"mallory\",\"text\":\"%s\"}", texts[i]);
        add_room_case("text-limit", P("lobby"), K_SEND, p, strlen(p), "text_too_long");
        free(p);
    }
    char *p = fmt("{\"user\":\"mallory\",\"text\":\"%s\\u00e9\"}", a4095);
    add_room_case("text-limit", P("lobby"), K_SEND, p, strlen(p), "text_too_long");
    free(p); free(a4097); free(euro); free(a4095); free(esc); free(big);
}

/* Edits, read markers and catch-ups with 1 MiB members, long texts and
 * deep nesting: the edits are the author's own of message 1, so only the
 * flaw keeps them from changing it. */
static void gen_edit_read_big(void) {
    char *text = mib_payload("{\"user\":\"alice\",\"id\":1,\"text\":\"", 'a', "\"}");
    char *esc = repeat("\\u00e9", MIB / 6 - 8);
    char *escaped = fmt("{\"user\":\"alice\",\"id\":1,\"text\":\"%s\"}", esc);
    char *cmid = mib_payload("{\"user\":\"alice\",\"id\":1,\"text\":\"hi\",\"client_msg_id\":\"",
                             'c', "\"}");
    char *edit_id = mib_payload("{\"user\":\"alice\",\"text\":\"hi\",\"id\":1", '0', "}");
    char *read_id = mib_payload("{\"user\":\"mallory\",\"id\":1", '0', "}");
    char *read_pad = mib_payload("{\"user\":\"mallory\",\"id\":0,\"pad\":\"", 'p', "\"}");
    char *after_str = mib_payload("{\"after\":\"", '9', "\"}");
    char *after_num = mib_payload("{\"after\":1", '0', "}");
    char *o1000 = repeat("[", 1000), *c1000 = repeat("]", 1000);
    char *o2100 = repeat("[", 2100), *c2100 = repeat("]", 2100);
    char *after_deep = fmt("{\"after\":%s%s}", o1000, c1000);
    char *after_deeper = fmt("{\"after\":%s%s}", o2100, c2100);
    char *read_deep = fmt("{\"user\":\"mallory\",\"id\":%s1%s}", o1000, c1000);
    char *edit_deep = fmt("{\"user\":\"alice\",\"id\":1,\"text\":%s\"x\"%s}", o1000, c1000);
    char *a4097 = repeat("a", MAX_TEXT + 1), *a4095 = repeat("a", MAX_TEXT - 1);
    char *euro = repeat("\xE2\x82\xAC", 1366);
    const char *texts[] = { a4097, euro };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        char *p = fmt("{\"user\":\"alice\",\"id\":1,\"text\":\"%s\"}", texts[i]);
        add_room_case("edit-limit", P("lobby"), K_EDIT, p, strlen(p), "text_too_long");
        free(p);
    }
    char *p = fmt("{\"user\":\"alice\",\"id\":1,\"text\":\"%s\\u00e9\"}", a4095);
    add_room_case("edit-limit", P("lobby"), K_EDIT, p, strlen(p), "text_too_long");
    add_room_case("1mib", P("lobby"), K_EDIT, text, MIB, "text_too_long");
    add_room_case("1mib", P("lobby"), K_EDIT, escaped, strlen(escaped), "text_too_long");
    add_room_case("1mib", P("lobby"), K_EDIT, cmid, MIB, "invalid_client_msg_id");
    add_room_case("1mib", P("lobby"), K_EDIT, edit_id, MIB, EJ);
    add_room_case("1mib", P("lobby"), K_READ, read_id, MIB, EJ);
    add_room_case("1mib", P("lobby"), K_READ, read_pad, MIB, "invalid_id");
    add_room_case("1mib", P("lobby"), K_HISTORY, after_str, MIB, "invalid_after");
    add_room_case("1mib", P("lobby"), K_HISTORY, after_num, MIB, EJ);
    add_room_case("deep-nesting", P("lobby"), K_HISTORY, after_deep, strlen(after_deep),
                  "invalid_after");
    add_room_case("deep-nesting", P("lobby"), K_HISTORY, after_deeper, strlen(after_deeper), EJ);
    add_room_case("deep-nesting", P("lobby"), K_READ, read_deep, strlen(read_deep), "invalid_id");
    add_room_case("deep-nesting", P("lobby"), K_EDIT, edit_deep, strlen(edit_deep), "invalid_text");
    free(p); free(text); free(esc); free(escaped); free(cmid); free(edit_id); free(read_id);
    free(read_pad); free(after_str); free(after_num); free(o1000); free(c1000); free(o2100);
    free(c2100); free(after_deep); free(after_deeper); free(read_deep); free(edit_deep);
    free(a4097); free(a4095); free(euro);
}

/* Members and rooms requests with 1 MiB members, long names and deep
 * nesting: each with a flaw, the members ones above all (a valid one
 * would build the room's member index). */
static void gen_members_rooms_big(void) {
    char *esc = repeat("\\u00e9", MIB / 6 - 8);
    char *o1000 = repeat("[", 1000), *c1000 = repeat("]", 1000);
    char *o2100 = repeat("[", 2100), *c2100 = repeat("]", 2100);
    char *m[] = {
        mib_payload("{\"after\":\"", 'u', "\"}"),
        fmt("{\"after\":\"%s\"}", esc),
        mib_payload("{\"limit\":\"", '9', "\"}"),
        mib_payload("{\"limit\":0,\"pad\":\"", 'p', "\"}"),
        mib_payload("", ' ', "{\"after\":[]}"),
        mib_keys("{\"after\":0"),
        mib_keys("{\"limit\":-1"),
        fmt("{\"after\":%s\"alice\"%s}", o1000, c1000),
        fmt("{\"limit\":%s1%s}", o1000, c1000),
        mib_payload("{\"after\":1", '0', "}"),
        fmt("{\"after\":%s%s}", o2100, c2100),
    };
    static const char *const mwant[] = {
        "invalid_after", "invalid_after", "invalid_limit", "invalid_limit", "invalid_after",
        "invalid_after", "invalid_limit", "invalid_after", "invalid_limit", EJ, EJ,
    };
    char *r[] = {
        mib_payload("{\"user\":\"alice\",\"before\":\"", '9', "\"}"),
        mib_payload("{\"user\":\"alice\",\"limit\":-1,\"pad\":\"", 'p', "\"}"),
        fmt("{\"user\":\"%s\"}", esc),
        mib_keys("{\"user\":\"alice\",\"before\":0"),
        mib_keys("{\"user\":1"),
        fmt("{\"user\":\"alice\",\"before\":%s1%s}", o1000, c1000),
        fmt("{\"user\":%s\"alice\"%s}", o1000, c1000),
        mib_payload("{\"user\":\"alice\",\"before\":1", '0', "}"),
        fmt("{\"user\":\"alice\",\"limit\":%s%s}", o2100, c2100),
    };
    static const char *const rwant[] = {
        "invalid_before", "invalid_limit", "invalid_user", "invalid_before", "invalid_user",
        "invalid_before", "invalid_user", EJ, EJ,
    };
    assert_int_equal(sizeof(m) / sizeof(m[0]), sizeof(mwant) / sizeof(mwant[0]));
    assert_int_equal(sizeof(r) / sizeof(r[0]), sizeof(rwant) / sizeof(rwant[0]));
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        add_room_case(strlen(m[i]) >= MIB - 64 ? "1mib" : "members-big", P("lobby"), K_MEMBERS,
                      m[i], strlen(m[i]), mwant[i]);
        free(m[i]);
    }
    for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
        add_room_case(strlen(r[i]) >= MIB - 64 ? "1mib" : "rooms-big", P("lobby"), K_ROOMS,
                      r[i], strlen(r[i]), rwant[i]);
        free(r[i]);
    }
    free(esc); free(o1000); free(c1000); free(o2100); free(c2100);
}

/* One bad user name in each kind of request; for members as the cursor
 * ("after"), which is refused as invalid_after. */
static void add_bad_user(const char *name) {
    char *p[K_COUNT] = {
        fmt("{\"user\":%s,\"text\":\"bad user\"}", name),
        fmt("{\"user\":%s}", name),
        fmt("{\"user\":%s,\"id\":1}", name),
        fmt("{\"user\":%s,\"id\":1,\"text\":\"bad user\"}", name),
        fmt("{\"user\":%s,\"id\":1}", name),
        fmt("{\"after\":%s}", name),
        fmt("{\"user\":%s,\"limit\":1}", name),
    };
    for (int k = 0; k < K_COUNT; k++) {
        add_room_case("bad-user", P("lobby"), k, p[k], strlen(p[k]),
                      k == K_MEMBERS ? "invalid_after" : "invalid_user");
        free(p[k]);
    }
}

/* User names with key separators, glob characters, spaces, control
 * characters, reserved names, and too long. */
static void gen_bad_users(void) {
    for (int i = 0; i < NBAD_USERS; i++) add_bad_user(bad_users[i]);
    char *u65 = repeat("u", 65), *e33 = repeat("\xC3\xA9", 33), *huge = repeat("u", 100000);
    const char *longs[] = { u65, e33, huge };
    for (size_t i = 0; i < sizeof(longs) / sizeof(longs[0]); i++) {
        char *q = json_quote(longs[i], strlen(longs[i]));
        add_bad_user(q);
        free(q);
    }
    free(u65); free(e33); free(huge);
}

/* The valid-looking request of each kind, from mallory. */
static const char *const mallory[K_COUNT] = {
    "{\"user\":\"mallory\",\"text\":\"bad room\"}", "{\"limit\":1}",
    "{\"user\":\"mallory\",\"id\":1}", "{\"user\":\"mallory\",\"id\":1,\"text\":\"bad room\"}",
    "{\"user\":\"mallory\",\"id\":1}", "{\"limit\":1}", "{\"user\":\"mallory\"}",
};

/* Room levels that are legal MQTT but invalid rooms, including 65 bytes,
 * 60000 bytes and a topic of exactly 65535 bytes, for every kind with a
 * room level (chat/$rooms has none). */
static void gen_bad_rooms(void) {
    for (int i = 0; i < NBAD_ROOMS; i++)
        for (int k = 0; k < K_COUNT; k++)
            if (k != K_ROOMS)
                add_room_case("bad-room", bad_rooms[i], strlen(bad_rooms[i]), k, mallory[k],
                              strlen(mallory[k]), "invalid_room");
    char *r65 = repeat("r", 65), *r60k = repeat("r", 60000), *rmax = repeat("r", 65535 - 10);
    for (int k = 0; k < K_COUNT; k++) {
        if (k == K_ROOMS) continue;
        add_room_case("bad-room", r65, 65, k, mallory[k], strlen(mallory[k]), "invalid_room");
        add_room_case("bad-room", r60k, 60000, k, mallory[k], strlen(mallory[k]), "invalid_room");
    }
    add_room_case("bad-room", rmax, strlen(rmax), K_SEND, mallory[K_SEND],
                  strlen(mallory[K_SEND]), "invalid_room");
    free(r65); free(r60k); free(rmax);
}

/* Topics the bridge must ignore (no reply), and topics only a raw socket
 * can send (the broker drops them, or the bridge refuses the room). */
static void gen_topics(void) {
    for (int i = 0; i < NFOREIGN; i++)
        add_case("foreign-topic", foreign_topics[i], strlen(foreign_topics[i]),
                 mallory[K_SEND], strlen(mallory[K_SEND]), NONE);
    for (int i = 0; i < NRAW_TOPICS; i++)
        add_case("raw-topic", raw_topics[i].t, raw_topics[i].len, mallory[K_SEND],
                 strlen(mallory[K_SEND]), "invalid_room|none")->raw = 1;
    for (int i = 0; i < NRAW_ROOMS_TOPICS; i++)
        add_case("raw-topic", raw_rooms_topics[i].t, raw_rooms_topics[i].len, mallory[K_ROOMS],
                 strlen(mallory[K_ROOMS]), NONE)->raw = 1;
}

static const char send_body[] = "\"user\":\"mallory\",\"text\":\"reply attack\"";
/* Valid but for their reply topic: the author's edit of message 1, and a
 * read marker of mallory's (which would set one, and join mallory to the
 * room's members and the room to mallory's rooms); a members request
 * (which would build the room's member index) and mallory's rooms. */
#define EDIT_BODY "\"user\":\"alice\",\"id\":1,\"text\":\"reply attack\""
#define READ_BODY "\"user\":\"mallory\",\"id\":1"
#define MEMBERS_BODY "\"limit\":5"
#define ROOMS_BODY "\"user\":\"mallory\""

/* One forbidden reply topic t[0..len), thirteen ways: a valid send, a
 * valid history, a refused delete, the author's valid edit of message 1,
 * a valid read marker of mallory, a valid members request and mallory's
 * valid rooms request with t as Response Topic, and the send, the
 * history, the edit, the read, the members and the rooms request with t
 * as JSON reply_to. None may be answered; the send may not be stored, the
 * edit not applied, the marker not set, the member index not built. A
 * Response Topic that is not printable ASCII goes over the raw socket:
 * mosquitto may refuse it. */
static void add_bad_reply(const char *t, size_t len) {
    static const char *const body[K_COUNT] = {
        "{\"user\":\"mallory\",\"text\":\"reply attack\"}", "{\"limit\":5}", "not json",
        "{" EDIT_BODY "}", "{" READ_BODY "}", "{" MEMBERS_BODY "}", "{" ROOMS_BODY "}",
    };
    for (int k = 0; k < K_COUNT; k++) {
        struct hcase *c = add_room_case("bad-reply", P("lobby"), k, body[k], strlen(body[k]), NONE);
        set_resp(c, t, len);
        c->raw = !printable_ascii(t, len);
    }
    add_json_reply_case("bad-reply", "chat/lobby/send", send_body, t, len, NONE);
    add_json_reply_case("bad-reply", "chat/lobby/history", "\"limit\":5", t, len, NONE);
    add_json_reply_case("bad-reply", "chat/lobby/edit", EDIT_BODY, t, len, NONE);
    add_json_reply_case("bad-reply", "chat/lobby/read", READ_BODY, t, len, NONE);
    add_json_reply_case("bad-reply", "chat/lobby/members", MEMBERS_BODY, t, len, NONE);
    add_json_reply_case("bad-reply", "chat/$rooms", ROOMS_BODY, t, len, NONE);
}

/* Every forbidden reply topic, and a few special cases. */
static void gen_bad_replies(void) {
    for (int i = 0; i < NBAD_REPLIES; i++) add_bad_reply(bad_replies[i].t, bad_replies[i].len);
    /* The Response Topic wins over a usable JSON reply_to. */
    struct hcase *c = add_room_case("bad-reply", P("lobby"), K_SEND,
        P("{\"user\":\"mallory\",\"text\":\"x\",\"reply_to\":\"" REPLY "\"}"), NONE);
    set_resp(c, P("chat/lobby/send"));
    /* A reply_to past MQTT's 65535 bytes. */
    char *huge = repeat("x", 70000);
    add_json_reply_case("bad-reply", "chat/lobby/history", "\"limit\":1", huge, 70000, NONE);
    add_json_reply_case("bad-reply", "chat/lobby/send", send_body, huge, 70000, NONE);
    free(huge);
    /* The author's own delete, with a forbidden reply topic: dropped, so
     * message 1 must survive. */
    c = add_room_case("bad-reply", P("lobby"), K_DELETE, P("{\"user\":\"alice\",\"id\":1}"), NONE);
    set_resp(c, P("chat/lobby/msgs"));
    add_json_reply_case("bad-reply", "chat/lobby/delete", "\"user\":\"alice\",\"id\":1",
                        P("chat/lobby/send"), NONE);
}

/* Odd but allowed reply topics: the answer lands exactly there. Also a
 * JSON reply_to of exactly 65535 bytes. */
static void gen_odd_replies(void) {
    for (int i = 0; i < NODD_REPLIES; i++) {
        const char *t = odd_replies[i];
        struct hcase *c = add_room_case("odd-reply", P("lobby"), K_HISTORY, P("{\"limit\":1}"), PAGE);
        set_resp(c, t, strlen(t));
        add_json_reply_case("odd-reply", "chat/lobby/history", "\"limit\":1", t, strlen(t), PAGE);
    }
    char *max = repeat("x", 65535);
    memcpy(max, "reply/", 6);
    add_json_reply_case("odd-reply", "chat/lobby/history", "\"limit\":1", max, 65535, PAGE);
    free(max);
}

/* Binary and long correlation data, echoed byte for byte. */
static void gen_correlation(void) {
    static const char bin[] = "\0\xFF\x01\x80\xC0\xAF";
    struct hcase *c = add_room_case("correlation", P("lobby"), K_DELETE, P("not json"), EJ);
    c->corr = realloc(c->corr, c->corr_len + sizeof(bin));
    memcpy(c->corr + c->corr_len, bin, sizeof(bin));
    c->corr_len += sizeof(bin);
    c = add_room_case("correlation", P("lobby"), K_HISTORY, P("{\"limit\":1}"), PAGE);
    char *longc = repeat("z", 65000);
    memcpy(longc, c->corr, c->corr_len);
    free(c->corr);
    c->corr = longc;
    c->corr_len = 65000;
}

/* A repeat of a valid client_msg_id by another user: answered with the
 * original id, neither stored nor republished. */
static void gen_dedup(void) {
    struct hcase *c = add_room_case("dedup", P("lobby"), K_SEND,
        P("{\"user\":\"mallory\",\"text\":\"overwrite\",\"client_msg_id\":\"cm-1\"}"), "ok");
    c->dup_of = 2;
    c = add_room_case("dedup", P("lobby"), K_SEND,
        P("{\"user\":\"alice\",\"text\":\"with an id\",\"client_msg_id\":\"cm-1\"}"), "ok");
    c->dup_of = 2;
}

/* The whole corpus. */
static void build_corpus(void) {
    gen_payload_table();
    gen_nesting();
    gen_big();
    gen_big_correlation();
    gen_text_limits();
    gen_edit_read_big();
    gen_members_rooms_big();
    gen_bad_users();
    gen_bad_rooms();
    gen_topics();
    gen_bad_replies();
    gen_odd_replies();
    gen_correlation();
    gen_dedup();
}

/* Print how many cases of each category. */
static void print_summary(void) {
    const char *cats[64];
    int counts[64], n = 0;
    for (int i = 0; i < ncases; i++) {
        int j = 0;
        while (j < n && strcmp(cats[j], cases[i].cat) != 0) j++;
        if (j == n && n < 64) { cats[n] = cases[i].cat; counts[n++] = 0; }
        if (j < n) counts[j]++;
    }
    printf("[ hostile  ] %d cases:", ncases);
    for (int j = 0; j < n; j++) printf(" %s=%d", cats[j], counts[j]);
    printf("\n");
}

/* Free the cases and the received messages. */
static void free_corpus(void) {
    for (int i = 0; i < ncases; i++) {
        free(cases[i].topic); free(cases[i].payload); free(cases[i].resp);
        free(cases[i].corr); free(cases[i].jcorr); free(cases[i].reply_at);
    }
    ncases = 0;
    for (int i = 0; i < nseen; i++) {
        free(seen[i].topic); free(seen[i].payload); free(seen[i].corr);
    }
    free(seen);
    seen = NULL;
    nseen = 0;
}

/* ==================== Publishing ==================== */

/* Add a binary or string property of len bytes. */
static void add_prop(MQTTProperties *props, enum MQTTPropertyCodes code,
                     const char *v, size_t len) {
    MQTTProperty p = { .identifier = code };
    p.value.data.data = (char *)v;
    p.value.data.len = (int)len;
    MQTTProperties_add(props, &p);
}

/* Publish payload[0..len) at QoS 1 with Paho, length-aware (NUL bytes
 * included), with an optional Response Topic and Correlation Data. Does
 * not wait for the PUBACK (see observer_connect, wait_acknowledged).
 * 0, or Paho's error code. */
static int publish_bytes(MQTTClient c, const char *topic, const char *payload, size_t len,
                         const char *resp, size_t resp_len, const char *corr, size_t corr_len) {
    MQTTClient_message m = MQTTClient_message_initializer;
    MQTTClient_deliveryToken tok;
    m.payload = (void *)payload;
    m.payloadlen = (int)len;
    m.qos = 1;
    if (resp) add_prop(&m.properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC, resp, resp_len);
    if (resp && corr) add_prop(&m.properties, MQTTPROPERTY_CODE_CORRELATION_DATA, corr, corr_len);
    MQTTResponse r = MQTTClient_publishMessage5(c, topic, &m, &tok);
    int rc = r.reasonCode;
    MQTTResponse_free(r);
    MQTTProperties_free(&m.properties);
    return rc;
}

/* Encode n as an MQTT variable byte integer at p; returns its length. */
static size_t raw_varint(unsigned char *p, size_t n) {
    size_t i = 0;
    do {
        p[i] = (unsigned char)(n % 128);
        n /= 128;
        if (n) p[i] |= 0x80;
        i++;
    } while (n && i < 4);
    return i;
}

/* A two-byte big-endian length, then the bytes. Returns the length. */
static size_t raw_field(unsigned char *p, const char *s, size_t len) {
    p[0] = (unsigned char)(len >> 8);
    p[1] = (unsigned char)len;
    memcpy(p + 2, s, len);
    return 2 + len;
}

/* Write all of buf[0..len). 0 or -1. */
static int raw_send(int fd, const unsigned char *buf, size_t len) {
    for (size_t off = 0; off < len;) {
        ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n <= 0) return -1;
        off += (size_t)n;
    }
    return 0;
}

/* A TCP connection to the broker with an MQTT 5 session: CONNECT sent,
 * CONNACK read (2 s at most). The socket, or -1. */
static int raw_connect(int port, int n) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    struct timeval tv = { 2, 0 };
    unsigned char pkt[64], ack[64];
    char id[32];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    snprintf(id, sizeof(id), "hostile-raw-%d", n);
    static const unsigned char head[] = { 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 0 };
    size_t len = sizeof(head) + 2 + strlen(id);
    pkt[0] = 0x10;
    size_t off = 1 + raw_varint(pkt + 1, len);
    memcpy(pkt + off, head, sizeof(head));
    off += sizeof(head);
    off += raw_field(pkt + off, id, strlen(id));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || raw_send(fd, pkt, off) != 0 ||
        recv(fd, ack, sizeof(ack), 0) < 4 || ack[0] != 0x20 || ack[3] != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Publish one case at QoS 0 over a raw socket of its own, bypassing every
 * check a client library makes: the broker alone decides what passes.
 * 0 when the bytes went out. */
static int raw_publish(int port, const struct hcase *c, int n) {
    size_t props = (c->resp ? 3 + c->resp_len : 0) + (c->resp ? 3 + c->corr_len : 0);
    size_t rem = 2 + c->topic_len + 4 + props + c->len;
    unsigned char *pkt = malloc(rem + 8), *p;
    int fd = raw_connect(port, n), rc = -1;
    assert_non_null(pkt);
    if (fd < 0) goto done;
    pkt[0] = 0x30;
    p = pkt + 1;
    unsigned char pl[4];
    size_t pll = raw_varint(pl, props);
    rem = 2 + c->topic_len + pll + props + c->len;
    p += raw_varint(p, rem);
    p += raw_field(p, c->topic, c->topic_len);
    memcpy(p, pl, pll);
    p += pll;
    if (c->resp) {
        *p++ = 0x08;
        p += raw_field(p, c->resp, c->resp_len);
        *p++ = 0x09;
        p += raw_field(p, c->corr, c->corr_len);
    }
    memcpy(p, c->payload, c->len);
    p += c->len;
    static const unsigned char disconnect[] = { 0xE0, 0x00 };
    rc = raw_send(fd, pkt, (size_t)(p - pkt)) == 0 &&
         raw_send(fd, disconnect, sizeof(disconnect)) == 0 ? 0 : -1;
    close(fd);
done:
    free(pkt);
    return rc;
}

/* Subscribe with No Local: what we publish ourselves never comes back. */
static int subscribe_nolocal(MQTTClient c, const char *filter) {
    MQTTSubscribe_options so = MQTTSubscribe_options_initializer;
    so.noLocal = 1;
    MQTTResponse r = MQTTClient_subscribe5(c, filter, 1, &so, NULL);
    int rc = r.reasonCode;
    MQTTResponse_free(r);
    return rc >= 0 && rc <= 2 ? 0 : -1;
}

/* The observer: publishes the corpus, sees everything the bridge
 * publishes. Paho's synchronous client waits 100 ms for each PUBACK when
 * a publish must complete before the next; with reliable off it keeps up
 * to mosquitto's 20 publishes in flight instead. */
static MQTTClient observer_connect(void) {
    char uri[64];
    MQTTClient c;
    MQTTClient_createOptions co = MQTTClient_createOptions_initializer;
    MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer5;
    snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", env.mqtt_port);
    co.MQTTVersion = MQTTVERSION_5;
    assert_int_equal(MQTTClient_createWithOptions(&c, uri, "hostile-observer",
                     MQTTCLIENT_PERSISTENCE_NONE, NULL, &co), MQTTCLIENT_SUCCESS);
    opts.keepAliveInterval = 30;
    opts.reliable = 0;
    opts.maxInflightMessages = 20;
    MQTTResponse r = MQTTClient_connect5(c, &opts, NULL, NULL);
    int rc = r.reasonCode;
    MQTTResponse_free(r);
    assert_int_equal(rc, MQTTCLIENT_SUCCESS);
    assert_int_equal(subscribe_nolocal(c, "#"), 0);
    assert_int_equal(subscribe_nolocal(c, "$SYS/x"), 0);
    return c;
}

/* Keep one received message. */
static void keep_seen(const char *topic, int tlen, const MQTTClient_message *m) {
    if (nseen == MAX_SEEN) return;
    if (seen == NULL) {
        seen = calloc(MAX_SEEN, sizeof(*seen));
        assert_non_null(seen);
    }
    struct seen *s = &seen[nseen++];
    s->topic = dupmem(topic, tlen > 0 ? (size_t)tlen : strlen(topic));
    s->payload = dupmem(m->payload, (size_t)m->payloadlen);
    s->len = (size_t)m->payloadlen;
    MQTTProperty *p = MQTTProperties_getProperty((MQTTProperties *)&m->properties,
                                                 MQTTPROPERTY_CODE_CORRELATION_DATA);
    if (p) {
        s->corr = dupmem(p->value.data.data, (size_t)p->value.data.len);
        s->corr_len = (size_t)p->value.data.len;
    }
}

/* Receive for up to ms milliseconds, keeping everything; stops early once
 * a message with correlation 'until' arrived (if given). 1 when it did. */
static int drain(MQTTClient c, int ms, const char *until) {
    long long end = mono_ms() + ms;
    while (mono_ms() < end) {
        char *topic = NULL;
        int tlen = 0;
        MQTTClient_message *m = NULL;
        if (MQTTClient_receive(c, &topic, &tlen, &m, 100) != MQTTCLIENT_SUCCESS) break;
        if (m == NULL) continue;
        keep_seen(topic, tlen, m);
        int hit = until && seen[nseen - 1].corr && strcmp(seen[nseen - 1].corr, until) == 0;
        MQTTClient_freeMessage(&m);
        MQTTClient_free(topic);
        if (hit) return 1;
    }
    return 0;
}

/* Wait (10 s at most) until the broker acknowledged every publish, while
 * receiving. 0, or -1 when some are still pending. */
static int wait_acknowledged(MQTTClient c) {
    for (int i = 0; i < 100; i++) {
        MQTTClient_deliveryToken *tokens = NULL;
        if (MQTTClient_getPendingDeliveryTokens(c, &tokens) != MQTTCLIENT_SUCCESS) return -1;
        int pending = tokens != NULL;
        MQTTClient_free(tokens);
        if (!pending) return 0;
        drain(c, 100, NULL);
    }
    return -1;
}

/* Publish one valid message, answered on REPLY or via JSON reply_to. */
static void send_valid(MQTTClient c, int i) {
    struct valid *v = &valids[i];
    char topic[160], corr[16];
    char *payload;
    snprintf(topic, sizeof(topic), "chat/%s/send", v->room);
    snprintf(corr, sizeof(corr), "v%04d", i);
    if (v->literal) {
        payload = strdup(v->literal);
    } else {
        json_t *o = json_pack("{s:s, s:s}", "user", v->user, "text", v->text);
        if (v->cmid) json_object_set_new(o, "client_msg_id", json_string(v->cmid));
        if (v->json_reply) {
            json_object_set_new(o, "reply_to", json_string(v->json_reply));
            json_object_set_new(o, "correlation", json_string(corr));
        }
        char *doc = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        assert_non_null(doc);
        doc[strlen(doc) - 1] = '\0';                 /* the closing brace */
        payload = fmt("%s%s%s}", doc, v->extra ? "," : "", v->extra ? v->extra : "");
        free(doc);
    }
    int rc = h_publish(c, topic, payload, v->json_reply ? NULL : REPLY,
                       v->json_reply ? NULL : corr);
    if (rc != 0) fail_msg("valid message %d could not be published", i);
    free(payload);
}

/* Publish one case; on a dropped connection reconnect the observer (what
 * it had received is kept first). */
static void send_case(MQTTClient *c, int i) {
    struct hcase *k = &cases[i];
    if (k->raw) {
        k->publish_rc = 0;               /* the broker may refuse it: fine */
        raw_publish(env.mqtt_port, k, i);
        return;
    }
    k->publish_rc = publish_bytes(*c, k->topic, k->payload, k->len, k->resp, k->resp_len,
                                  k->corr, k->corr_len);
    if (k->publish_rc != 0 && !MQTTClient_isConnected(*c)) {
        drain(*c, 0, NULL);
        h_mqtt_close(*c);
        *c = observer_connect();
    }
}

/* Fill the long names and texts of the valid messages and compute their
 * expected ids: their rank in their room, in sending order. */
static void prepare_valids(void) {
    memset(text4096, 'c', MAX_TEXT);
    memset(room64, 'r', 64);
    memset(user64, 'u', 64);
    char *o = repeat("[", 1000), *cl = repeat("]", 1000);
    snprintf(deep_extra, sizeof(deep_extra), "\"x\":%s%s", o, cl);
    free(o);
    free(cl);
    for (int i = 0; i < NVALID; i++) {
        valids[i].id = 1;
        for (int j = 0; j < i; j++)
            if (strcmp(valids[j].room, valids[i].room) == 0) valids[i].id++;
        valids[i].replied = valids[i].republished = 0;
    }
}

/* The corpus with the valid messages interleaved; fails at once if the
 * bridge dies, naming the cases just sent. Bounded in time. */
static void send_corpus(MQTTClient *c) {
    long long end = mono_ms() + CORPUS_DEADLINE_MS;
    int next_valid = 0;
    for (; next_valid < NVALID_FIRST; next_valid++) send_valid(*c, next_valid);
    for (int i = 0; i < ncases; i++) {
        if (i % VALID_STRIDE == VALID_STRIDE - 1 && next_valid < NVALID - 1)
            send_valid(*c, next_valid++);
        send_case(c, i);
        if (i % ALIVE_EVERY == ALIVE_EVERY - 1 && !h_bridge_alive(&env))
            fail_msg("the bridge died during cases %d..%d (last: %s)",
                     i + 1 - ALIVE_EVERY, i, cases[i].cat);
        if (mono_ms() > end) fail_msg("corpus not sent within %d ms (at case %d)",
                                      CORPUS_DEADLINE_MS, i);
    }
    while (next_valid < NVALID) send_valid(*c, next_valid++);
    if (wait_acknowledged(*c) != 0) fail_msg("the broker did not acknowledge the corpus");
}

/* ==================== Checking what came back ==================== */

/* What a reply says: "ok", an error code, "page" (a history reply),
 * "rooms" (a user's rooms), "members" (a room's: never expected),
 * "garbage" or "other". */
static void outcome_of(const struct seen *s, char *out, size_t size, long long *id) {
    json_t *j = json_loadb(s->payload, s->len, 0, NULL);
    const json_t *ok = json_object_get(j, "ok");
    *id = json_integer_value(json_object_get(j, "id"));
    if (j == NULL) snprintf(out, size, "garbage");
    else if (json_is_true(ok)) snprintf(out, size, "ok");
    else if (json_is_false(ok) && json_is_string(json_object_get(j, "error")))
        snprintf(out, size, "%s", json_string_value(json_object_get(j, "error")));
    else if (json_is_array(json_object_get(j, "messages"))) snprintf(out, size, "page");
    else if (json_is_array(json_object_get(j, "rooms"))) snprintf(out, size, RPAGE);
    else if (json_is_array(json_object_get(j, "members"))) snprintf(out, size, "members");
    else snprintf(out, size, "other");
    json_decref(j);
}

/* The index in "h0123..." / "v0123...", or -1. */
static int tag_index(const char *s, size_t len, char tag) {
    if (s == NULL || len < 5 || s[0] != tag) return -1;
    int n = 0;
    for (int i = 1; i < 5; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        n = n * 10 + (s[i] - '0');
    }
    return n;
}

/* The JSON "correlation" of a reply, malloc'd, or NULL. */
static char *json_correlation(const struct seen *s) {
    json_t *j = json_loadb(s->payload, s->len, 0, NULL);
    const json_t *v = json_object_get(j, "correlation");
    char *out = json_is_string(v) ? dupmem(json_string_value(v), json_string_length(v)) : NULL;
    json_decref(j);
    return out;
}

/* The case a message answers, by MQTT 5 or JSON correlation; *exact is 0
 * when the correlation was not echoed byte for byte. -1 for none. */
static int case_of(const struct seen *s, int *exact) {
    int i = tag_index(s->corr, s->corr_len, 'h');
    *exact = 1;
    if (i >= 0 && i < ncases) {
        *exact = s->corr_len == cases[i].corr_len && memcmp(s->corr, cases[i].corr, s->corr_len) == 0;
        if (cases[i].jcorr) {
            char *jc = json_correlation(s);
            *exact = *exact && jc && strcmp(jc, cases[i].jcorr) == 0;
            free(jc);
        }
        return i;
    }
    char *jc = json_correlation(s);
    i = jc ? tag_index(jc, strlen(jc), 'h') : -1;
    if (i >= ncases) i = -1;
    if (i >= 0) *exact = cases[i].jcorr && strcmp(jc, cases[i].jcorr) == 0;
    free(jc);
    return i;
}

/* Record a reply to case i. */
static void record_case_reply(int i, const struct seen *s, int exact) {
    struct hcase *c = &cases[i];
    long long id = 0;
    c->nreplies++;
    outcome_of(s, c->got, sizeof(c->got), &id);
    if (!exact) snprintf(c->got, sizeof(c->got), "corr-mangled");
    if (strcmp(c->got, "ok") == 0 && c->dup_of >= 0 && id != valids[c->dup_of].id)
        snprintf(c->got, sizeof(c->got), "ok-id-%lld", id);
    if (strcmp(s->topic, c->reply_at) != 0) c->bad_topic = 1;
}

/* The valid message a reply answers ("v0003" as MQTT 5 or JSON
 * correlation), or -1. */
static int valid_of(const struct seen *s) {
    int i = tag_index(s->corr, s->corr_len, 'v');
    if (i < 0) {
        char *jc = json_correlation(s);
        i = jc ? tag_index(jc, strlen(jc), 'v') : -1;
        free(jc);
    }
    return i >= 0 && i < NVALID ? i : -1;
}

/* A reply to a valid message: {"ok":true,"id":<its expected id>} on the
 * right topic. Returns 0 or 1 (a problem, printed). */
static int record_valid_reply(int i, const struct seen *s) {
    char got[48];
    long long id = 0;
    const char *at = valids[i].json_reply ? valids[i].json_reply : REPLY;
    outcome_of(s, got, sizeof(got), &id);
    valids[i].replied++;
    if (strcmp(got, "ok") == 0 && id == valids[i].id && strcmp(s->topic, at) == 0) return 0;
    printf("VALID %d (%s/%s): reply %s id %lld on %s, expected ok id %lld on %s\n", i,
           valids[i].room, valids[i].user, got, id, s->topic, valids[i].id, at);
    return 1;
}

/* The room of "chat/<room>/msgs" into room[], or 0 when not that shape. */
static int msgs_room(const char *topic, char *room, size_t size) {
    size_t tl = strlen(topic);
    if (tl < 11 || strncmp(topic, "chat/", 5) != 0 || strcmp(topic + tl - 5, "/msgs") != 0)
        return 0;
    size_t rl = tl - 10;
    if (rl >= size || memchr(topic + 5, '/', rl)) return 0;
    memcpy(room, topic + 5, rl);
    room[rl] = '\0';
    return 1;
}

/* A republish: must be exactly one of the valid messages. 0 or 1. */
static int record_republish(const char *room, const struct seen *s) {
    json_t *j = json_loadb(s->payload, s->len, 0, NULL);
    long long id = json_integer_value(json_object_get(j, "id"));
    const json_t *text = json_object_get(j, "text");
    const json_t *cmid = json_object_get(j, "client_msg_id");
    const char *user = json_string_value(json_object_get(j, "user"));
    const char *jroom = json_string_value(json_object_get(j, "room"));
    int bad = 1;
    for (int i = 0; i < NVALID && bad; i++) {
        const struct valid *v = &valids[i];
        if (strcmp(v->room, room) != 0 || v->id != id) continue;
        bad = !(jroom && strcmp(jroom, room) == 0 && user && strcmp(user, v->user) == 0 &&
                json_string_length(text) == strlen(v->text) &&
                memcmp(json_string_value(text), v->text, strlen(v->text)) == 0 &&
                (v->cmid ? json_is_string(cmid) && strcmp(json_string_value(cmid), v->cmid) == 0
                         : cmid == NULL) &&
                json_integer_value(json_object_get(j, "ts")) > 1700000000000LL);
        valids[i].republished++;
    }
    json_decref(j);
    return bad;
}

/* A raw case's own publish, passed on by the broker to the observer (No
 * Local only hides the observer's own): same topic, payload and
 * correlation. Returns 1 and counts it. */
static int raw_echo(const struct seen *s) {
    for (int i = 0; i < ncases; i++) {
        struct hcase *c = &cases[i];
        if (c->raw && span_eq(s->topic, strlen(s->topic), c->topic, c->topic_len) &&
            span_eq(s->payload, s->len, c->payload, c->len) &&
            span_eq(s->corr, s->corr_len, c->resp ? c->corr : NULL, c->resp ? c->corr_len : 0)) {
            c->echoed++;
            return 1;
        }
    }
    return 0;
}

/* Sort every received message; count what matched nothing. Returns the
 * index of the sentinel reply, or -1. */
static int classify_seen(const char *sentinel, int *problems) {
    int sentinel_at = -1;
    char buf[200], room[NAME_BUF];
    for (int n = 0; n < nseen; n++) {
        const struct seen *s = &seen[n];
        int exact, i;
        if (strcmp(s->topic, STATUS_TOPIC) == 0 || raw_echo(s)) continue;
        if (s->corr && strcmp(s->corr, sentinel) == 0) { sentinel_at = n; continue; }
        if ((i = case_of(s, &exact)) >= 0) { record_case_reply(i, s, exact); continue; }
        if ((i = valid_of(s)) >= 0) { *problems += record_valid_reply(i, s); continue; }
        if (msgs_room(s->topic, room, sizeof(room)) && record_republish(room, s) == 0) continue;
        violations++;
        if (violations <= MAX_REPORT)
            printf("STRAY publish on '%s': %s\n", s->topic, show(s->payload, s->len, buf, sizeof(buf)));
    }
    return sentinel_at;
}

/* Every case got what it deserves: exactly one reply with the expected
 * outcome on its reply topic, or none when none is expected. Returns the
 * number of mismatches, printing each. */
static int check_cases(void) {
    int bad = 0;
    char t[120], p[120], r[120];
    for (int i = 0; i < ncases; i++) {
        const struct hcase *c = &cases[i];
        const char *got = c->nreplies == 0 ? "none" : c->nreplies > 1 ? "multiple" : c->got;
        if (c->publish_rc == 0 && expect_has(c->expect, got) && !c->bad_topic) continue;
        if (++bad > MAX_REPORT) continue;
        printf("CASE %d [%s] topic '%s' payload '%s' reply-to '%s'%s: expected %s, got %s%s",
               i, c->cat, show(c->topic, c->topic_len, t, sizeof(t)),
               show(c->payload, c->len, p, sizeof(p)), show(c->reply_at, strlen(c->reply_at),
               r, sizeof(r)), c->resp ? "" : " (JSON)",
               c->expect, got, c->bad_topic ? " (on another topic)" : "");
        if (c->publish_rc) printf(" (publish failed: %d)", c->publish_rc);
        printf("\n");
    }
    return bad;
}

/* Each valid message answered once and republished once. */
static int check_valids(void) {
    int bad = 0;
    for (int i = 0; i < NVALID; i++) {
        if (valids[i].replied == 1 && valids[i].republished == 1) continue;
        printf("VALID %d (%s/%s): %d replies, %d republishes, expected 1 and 1\n", i,
               valids[i].room, valids[i].user, valids[i].replied, valids[i].republished);
        bad++;
    }
    return bad;
}

/* The final history page of the lobby: every valid lobby message, oldest
 * first, with its content, and nothing else. */
static int check_sentinel(const struct seen *s) {
    json_t *j = json_loadb(s->payload, s->len, 0, NULL);
    const json_t *msgs = json_object_get(j, "messages");
    size_t k = 0;
    int bad = !json_is_array(msgs) || !json_is_null(json_object_get(j, "next_before"));
    for (int i = 0; i < NVALID && !bad; i++) {
        const struct valid *v = &valids[i];
        if (strcmp(v->room, "lobby") != 0) continue;
        const json_t *m = json_array_get(msgs, k++);
        const json_t *text = json_object_get(m, "text");
        bad = json_integer_value(json_object_get(m, "id")) != v->id ||
              !json_is_string(json_object_get(m, "user")) ||
              strcmp(json_string_value(json_object_get(m, "user")), v->user) != 0 ||
              json_string_length(text) != strlen(v->text) ||
              memcmp(json_string_value(text), v->text, strlen(v->text)) != 0;
    }
    if (!bad && json_array_size(msgs) != k) bad = 1;
    if (bad) {
        char buf[300];
        printf("HISTORY of lobby after the corpus is wrong: %s\n",
               show(s->payload, s->len, buf, sizeof(buf)));
    }
    json_decref(j);
    return bad;
}

/* How many valid messages went to room r[0..len). */
static int room_count(const char *r, size_t len) {
    int n = 0;
    for (int i = 0; i < NVALID; i++)
        if (strlen(valids[i].room) == len && memcmp(valids[i].room, r, len) == 0) n++;
    return n;
}

/* Did user u[0..ulen) send a valid message to room r[0..rlen)? With
 * cmid set: one with a client_msg_id (any user). */
static int room_has(const char *r, size_t rlen, const char *u, size_t ulen, int cmid) {
    for (int i = 0; i < NVALID; i++) {
        const struct valid *v = &valids[i];
        if (strlen(v->room) != rlen || memcmp(v->room, r, rlen) != 0) continue;
        if (cmid ? v->cmid != NULL : strlen(v->user) == ulen && memcmp(v->user, u, ulen) == 0)
            return 1;
    }
    return 0;
}

/* Does s[0..len) equal the C string lit? */
static int span_is(const char *s, size_t len, const char *lit) {
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

/* Is s[0..len) all digits (and not empty)? Its value in *n. */
static int span_number(const char *s, size_t len, long long *n) {
    *n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || i > 17) return 0;
        *n = *n * 10 + (s[i] - '0');
    }
    return len > 0;
}

/* Did user u[0..ulen) send a valid message (to any room)? */
static int user_sent(const char *u, size_t ulen) {
    for (int i = 0; i < NVALID; i++)
        if (span_is(u, ulen, valids[i].user)) return 1;
    return 0;
}

/* Why key[0..len) of Redis type 'type' is not a key of a valid message
 * under the README's schema, or NULL when it is. A read marker's "seen"
 * hash is never one: no valid request set a marker (a send moves its
 * sender's marker in messages:read only). */
static const char *key_problem(const char *key, size_t len, const char *type) {
    static const char pre[] = "chatroom:", jkey[] = "messages:journal:" BRIDGE_ID;
    static const char urooms[] = "chatroom:$user:", utail[] = ":rooms";  /* U's rooms */
    size_t ul = sizeof(urooms) - 1, ut = sizeof(utail) - 1;
    if (len > ul + ut && memcmp(key, urooms, ul) == 0 && memcmp(key + len - ut, utail, ut) == 0) {
        if (!user_sent(key + ul, len - ul - ut))
            return "the rooms of a user of no valid message";
        return strcmp(type, "zset") == 0 ? NULL : "the wrong type for its shape";
    }
    if (len <= sizeof(pre) - 1 || memcmp(key, pre, sizeof(pre) - 1) != 0)
        return "outside the key prefix";
    const char *r = key + sizeof(pre) - 1, *colon = memchr(r, ':', len - (sizeof(pre) - 1));
    size_t rl = colon ? (size_t)(colon - r) : len - (sizeof(pre) - 1);
    int count = room_count(r, rl);
    const char *want, *t = colon ? colon + 1 : r + rl;  /* what follows "R:" */
    size_t tl = colon ? len - (sizeof(pre) - 1) - rl - 1 : 0;
    long long n;
    if (count == 0) return "a room no valid message went to";
    if (colon == NULL) want = "hash";                               /* R: user -> last id */
    else if (span_is(t, tl, "messages")) want = "string";
    else if (span_is(t, tl, "messages:ids")) want = "zset";
    else if (span_is(t, tl, "messages:dedup")) want = room_has(r, rl, NULL, 0, 1) ? "hash" : NULL;
    else if (span_is(t, tl, "messages:dedup:ts")) want = room_has(r, rl, NULL, 0, 1) ? "zset" : NULL;
    else if (span_is(t, tl, jkey)) want = "zset";
    else if (span_is(t, tl, "messages:cursor")) want = "hash";      /* adoption cursor */
    else if (span_is(t, tl, "messages:read")) want = "hash";        /* U -> read marker */
    else if (span_is(t, tl, "messages:members")) want = "zset";     /* the room's users */
    else if (span_number(t, tl, &n)) want = n >= 1 && n <= count ? "hash" : NULL;
    else if (tl > 4 && memcmp(t + tl - 4, ":ids", 4) == 0)
        want = room_has(r, rl, t, tl - 4, 0) ? "zset" : NULL;
    else want = room_has(r, rl, t, tl, 0) ? "hash" : NULL;
    if (want == NULL) return "a user, id or suffix of no valid message";
    return strcmp(want, type) == 0 ? NULL : "the wrong type for its shape";
}

/* SCAN every key; each must belong to a valid message. Returns the number
 * of keys that do not, printing them; *nkeys gets the total. */
static int check_keys(int *nkeys) {
    char cursor[32] = "0", buf[200];
    int bad = 0;
    *nkeys = 0;
    for (int round = 0; round < 10000; round++) {
        redisReply *r = h_redis(&env, "SCAN %s COUNT 1000", cursor);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        const redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const redisReply *k = keys->element[i];
            redisReply *t = h_redis(&env, "TYPE %b", k->str, (size_t)k->len);
            const char *why = key_problem(k->str, (size_t)k->len, t && t->str ? t->str : "?");
            (*nkeys)++;
            if (why && ++bad <= MAX_REPORT)
                printf("KEY '%s' (%s): %s\n", show(k->str, (size_t)k->len, buf, sizeof(buf)),
                       t && t->str ? t->str : "?", why);
            if (t) freeReplyObject(t);
        }
        freeReplyObject(r);
        if (strcmp(cursor, "0") == 0) return bad;
    }
    fail_msg("SCAN did not finish");
    return bad;
}

/* A Redis reply as a malloc'd string (integers too), or NULL. */
static char *redis_get(const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    redisReply *r = redisvCommand(env.redis, f, ap);
    va_end(ap);
    char *s = NULL;
    if (r && r->type == REDIS_REPLY_STRING) s = dupmem(r->str, (size_t)r->len);
    else if (r && r->type == REDIS_REPLY_INTEGER) s = fmt("%lld", r->integer);
    if (r) freeReplyObject(r);
    return s;
}

/* Compare a Redis value with the expected one; 0 or 1 (printed). */
static int expect_redis(const char *got_owned, const char *want, const char *what) {
    int bad = got_owned == NULL || strcmp(got_owned, want) != 0;
    if (bad) {
        char buf[120];
        printf("REDIS %s: %s, expected %s\n", what,
               got_owned ? show(got_owned, strlen(got_owned), buf, sizeof(buf)) : "(nil)",
               show(want, strlen(want), buf + 60, 60));
    }
    free((void *)got_owned);
    return bad;
}

/* The last id of user u in room r among the valid messages. */
static long long last_id(const char *r, const char *u) {
    long long id = 0;
    for (int i = 0; i < NVALID; i++)
        if (strcmp(valids[i].room, r) == 0 && strcmp(valids[i].user, u) == 0) id = valids[i].id;
    return id;
}

/* One valid message in every structure of the schema. Returns problems. */
static int check_stored(const struct valid *v) {
    char key[200], n[24], last[24];
    int bad = 0;
    snprintf(n, sizeof(n), "%lld", v->id);
    snprintf(last, sizeof(last), "%lld", last_id(v->room, v->user));
    snprintf(key, sizeof(key), "chatroom:%s:%s", v->room, n);
    bad += expect_redis(redis_get("HGET %s content", key), v->text, key);
    bad += expect_redis(redis_get("HGET %s user", key), v->user, key);
    bad += expect_redis(redis_get("HLEN %s", key), v->cmid ? "5" : "4", key);
    if (v->cmid) bad += expect_redis(redis_get("HGET %s client_msg_id", key), v->cmid, key);
    char *ts = redis_get("HGET %s timestamp", key);            /* Unix seconds */
    bad += ts == NULL || atoll(ts) < 1700000000LL || atoll(ts) >= 100000000000LL;
    free(ts);
    ts = redis_get("HGET %s timestamp_ms", key);               /* Unix ms */
    bad += ts == NULL || atoll(ts) < 1700000000000LL;
    free(ts);
    snprintf(key, sizeof(key), "chatroom:%s:%s", v->room, v->user);
    bad += expect_redis(redis_get("HGET %s %s", key, n), v->text, key);
    snprintf(key, sizeof(key), "chatroom:%s:%s:ids", v->room, v->user);
    bad += expect_redis(redis_get("ZSCORE %s %s", key, n), n, key);
    snprintf(key, sizeof(key), "chatroom:%s:messages:ids", v->room);
    bad += expect_redis(redis_get("ZSCORE %s %s", key, n), n, key);
    snprintf(key, sizeof(key), "chatroom:%s", v->room);
    bad += expect_redis(redis_get("HGET %s %s", key, v->user), last, key);
    return bad;
}

/* Every valid message stored, each room's counter and index exactly the
 * valid messages (consecutive ids from 1), the dedup entry untouched. */
static int check_redis_content(void) {
    int bad = 0;
    char key[200], count[24];
    for (int i = 0; i < NVALID; i++) {
        bad += check_stored(&valids[i]);
        snprintf(count, sizeof(count), "%d", room_count(valids[i].room, strlen(valids[i].room)));
        snprintf(key, sizeof(key), "chatroom:%s:messages", valids[i].room);
        bad += expect_redis(redis_get("GET %s", key), count, key);
        snprintf(key, sizeof(key), "chatroom:%s:messages:ids", valids[i].room);
        bad += expect_redis(redis_get("ZCARD %s", key), count, key);
    }
    char id[24];
    snprintf(id, sizeof(id), "%lld", valids[2].id);
    bad += expect_redis(redis_get("HGET chatroom:lobby:messages:dedup cm-1"), id, "dedup cm-1");
    bad += expect_redis(redis_get("HLEN chatroom:lobby:messages:dedup"), "1", "dedup size");
    return bad;
}

/* Is valids[i] the first valid message of its user in its room? */
static int first_of_pair(int i) {
    for (int j = 0; j < i; j++)
        if (strcmp(valids[j].room, valids[i].room) == 0 &&
            strcmp(valids[j].user, valids[i].user) == 0) return 0;
    return 1;
}

/* How many distinct users sent valid messages to room r. */
static int room_senders(const char *r) {
    int n = 0;
    for (int i = 0; i < NVALID; i++)
        n += strcmp(valids[i].room, r) == 0 && first_of_pair(i);
    return n;
}

/* To how many distinct rooms user u sent valid messages. */
static int user_room_count(const char *u) {
    int n = 0;
    for (int i = 0; i < NVALID; i++)
        n += strcmp(valids[i].user, u) == 0 && first_of_pair(i);
    return n;
}

/* Print a problem with key; returns 1. */
static int read_state_bad(const char *key, const char *what, const char *s, size_t len) {
    char buf[120], kb[120];
    printf("REDIS %s: %s '%s'\n", show(key, strlen(key), kb, sizeof(kb)), what,
           s ? show(s, len, buf, sizeof(buf)) : "");
    return 1;
}

/* Room r's read markers, members and replay guard are what its valid
 * sends made them: each sender's marker at its last message, the senders
 * as members, no edit, and no member index built by a members request
 * ("members" in the cursor: none was valid). No hostile edit, read or
 * members request touched them. */
static int check_room_state(const char *r) {
    char key[200];
    int bad = 0, users = room_senders(r);
    snprintf(key, sizeof(key), "chatroom:%s:messages:read", r);
    redisReply *x = h_redis(&env, "HGETALL %s", key);
    assert_non_null(x);
    if (x->type != REDIS_REPLY_ARRAY || x->elements != 2 * (size_t)users)
        bad += read_state_bad(key, "holds another number of markers than senders", NULL, 0);
    for (size_t i = 0; x->type == REDIS_REPLY_ARRAY && i + 1 < x->elements; i += 2) {
        const redisReply *f = x->element[i], *v = x->element[i + 1];
        char *u = dupmem(f->str, (size_t)f->len), want[24];
        snprintf(want, sizeof(want), "%lld", last_id(r, u));
        if (!room_has(r, strlen(r), f->str, (size_t)f->len, 0))
            bad += read_state_bad(key, "a marker of a user who sent nothing here", f->str,
                                  (size_t)f->len);
        else if (strcmp(v->str, want) != 0)
            bad += read_state_bad(key, "a marker moved from the sender's last message", f->str,
                                  (size_t)f->len);
        free(u);
    }
    freeReplyObject(x);
    snprintf(key, sizeof(key), "chatroom:%s:messages:members", r);
    x = h_redis(&env, "ZRANGE %s 0 -1", key);
    assert_non_null(x);
    if (x->type != REDIS_REPLY_ARRAY || x->elements != (size_t)users)
        bad += read_state_bad(key, "holds another number of members than senders", NULL, 0);
    for (size_t i = 0; x->type == REDIS_REPLY_ARRAY && i < x->elements; i++)
        if (!room_has(r, strlen(r), x->element[i]->str, (size_t)x->element[i]->len, 0))
            bad += read_state_bad(key, "a member who sent nothing here", x->element[i]->str,
                                  (size_t)x->element[i]->len);
    freeReplyObject(x);
    snprintf(key, sizeof(key), "chatroom:%s:messages:cursor", r);
    x = h_redis(&env, "HEXISTS %s members", key);
    assert_non_null(x);
    if (x->type != REDIS_REPLY_INTEGER || x->integer != 0)
        bad += read_state_bad(key, "a member index built by a members request", NULL, 0);
    freeReplyObject(x);
    snprintf(key, sizeof(key), "chatroom:%s:messages:journal:" BRIDGE_ID, r);
    x = h_redis(&env, "ZRANGE %s 0 -1", key);
    assert_non_null(x);
    for (size_t i = 0; x->type == REDIS_REPLY_ARRAY && i < x->elements; i++)
        if (strncmp(x->element[i]->str, "edit:", 5) == 0)
            bad += read_state_bad(key, "an edit was applied", x->element[i]->str,
                                  (size_t)x->element[i]->len);
    freeReplyObject(x);
    return bad;
}

/* User u's rooms are exactly the rooms u sent valid messages to. */
static int check_user_rooms(const char *u) {
    char key[200];
    int bad = 0;
    snprintf(key, sizeof(key), "chatroom:$user:%s:rooms", u);
    redisReply *x = h_redis(&env, "ZRANGE %s 0 -1", key);
    assert_non_null(x);
    if (x->type != REDIS_REPLY_ARRAY || x->elements != (size_t)user_room_count(u))
        bad += read_state_bad(key, "holds another number of rooms than the user sent to", NULL, 0);
    for (size_t i = 0; x->type == REDIS_REPLY_ARRAY && i < x->elements; i++)
        if (!room_has(x->element[i]->str, (size_t)x->element[i]->len, u, strlen(u), 0))
            bad += read_state_bad(key, "a room the user sent nothing to", x->element[i]->str,
                                  (size_t)x->element[i]->len);
    freeReplyObject(x);
    return bad;
}

/* The read state of every room and user of the valid messages. */
static int check_read_state(void) {
    int bad = 0;
    for (int i = 0; i < NVALID; i++) {
        int first_room = 1, first_user = 1;
        for (int j = 0; j < i; j++) {
            if (strcmp(valids[j].room, valids[i].room) == 0) first_room = 0;
            if (strcmp(valids[j].user, valids[i].user) == 0) first_user = 0;
        }
        if (first_room) bad += check_room_state(valids[i].room);
        if (first_user) bad += check_user_rooms(valids[i].user);
    }
    return bad;
}

/* The bridge kept its MQTT session: a publish to a topic the broker
 * refuses (control characters, noncharacters) would have cost it its
 * connection. Returns 0 or 1. */
static int check_log(void) {
    char path[300], line[512];
    int bad = 0;
    snprintf(path, sizeof(path), "%s/bridge.log", env.dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    for (int n = 0; n < 1000000 && fgets(line, sizeof(line), f); n++)
        if (strstr(line, "connection lost") && ++bad <= 5) printf("BRIDGE LOG: %s", line);
    fclose(f);
    return bad > 0;
}

/* Print the counts of the last status document after the sentinel; the
 * bridge must have stored exactly the valid messages. 0 or 1. */
static int check_status(int after) {
    json_t *j = NULL;
    for (int n = nseen - 1; n > after && j == NULL; n--)
        if (strcmp(seen[n].topic, STATUS_TOPIC) == 0)
            j = json_loadb(seen[n].payload, seen[n].len, 0, NULL);
    if (j == NULL) {
        printf("STATUS: no status document after the corpus\n");
        return 1;
    }
    const json_t *c = json_object_get(j, "counts");
    long long stored = json_integer_value(json_object_get(c, "stored"));
    char *by = json_dumps(json_object_get(c, "rejected_by"), JSON_COMPACT);
    printf("[ hostile  ] bridge counts: received %lld, stored %lld, rejected %lld, replies %lld;"
           " rejected_by %s\n", json_integer_value(json_object_get(c, "received")), stored,
           json_integer_value(json_object_get(c, "rejected")),
           json_integer_value(json_object_get(c, "replies")), by ? by : "?");
    free(by);
    int bad = 0;
    static const char *const none[] = { "edited", "read_markers", "receipts" };
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        const json_t *n = json_object_get(c, none[i]);
        if (json_is_integer(n) && json_integer_value(n) == 0) continue;
        printf("STATUS: %s is %lld, expected 0\n", none[i], json_integer_value(n));
        bad = 1;
    }
    json_decref(j);
    if (stored == NVALID) return bad;
    printf("STATUS: %lld messages stored, expected %d\n", stored, NVALID);
    return 1;
}

/* ==================== The test ==================== */

/* The corpus, then every assertion of the header comment but the exit
 * status, which the teardown checks. */
static void test_hostile_corpus(void **state) {
    (void)state;
    long long t0 = mono_ms();
    prepare_valids();
    build_corpus();
    print_summary();
    assert_true(ncases >= 200);
    MQTTClient c = observer_connect();
    long hwm0 = sys_proc_kb(env.bridge_pid, "VmHWM");

    send_corpus(&c);
    long long t1 = mono_ms();
    assert_int_equal(h_publish(c, "chat/lobby/history", "{\"limit\":200}", REPLY, "final"), 0);
    int answered = drain(c, DRAIN_DEADLINE_MS, "final");
    drain(c, SETTLE_MS, NULL);
    long long t2 = mono_ms();
    h_mqtt_close(c);

    /* 1. Still up, still answering. */
    assert_true(h_bridge_alive(&env));
    if (!answered) fail_msg("no answer to the history request after the corpus");
    long hwm = sys_proc_kb(env.bridge_pid, "VmHWM");

    int problems = 0, nkeys = 0;
    int at = classify_seen("final", &problems);
    assert_true(at >= 0);
    problems += check_sentinel(&seen[at]);
    problems += check_cases();
    problems += check_valids();
    problems += violations;
    problems += check_keys(&nkeys);
    problems += check_redis_content();
    problems += check_read_state();
    problems += check_log();
    problems += check_status(at);
    int raw = 0, passed = 0;
    for (int i = 0; i < ncases; i++) {
        raw += cases[i].raw;
        passed += cases[i].echoed > 0;
    }
    printf("[ hostile  ] %d of the %d raw-socket publishes passed the broker\n", passed, raw);
    printf("[ hostile  ] %d cases + %d valid messages sent in %lld ms, answered within %lld ms;"
           " %d publishes seen, %d keys in Redis; bridge VmHWM %ld kB at start, %ld kB after"
           " (bound %ld kB%s); %lld ms in all\n", ncases, NVALID, t1 - t0, t2 - t1, nseen, nkeys,
           hwm0, hwm, RSS_BOUND_KB, getenv("CB_WRAPPER") ? ", not applied under CB_WRAPPER" : "",
           mono_ms() - t0);
    free_corpus();
    assert_int_equal(problems, 0);
    /* 2. Peak RSS. Under CB_WRAPPER (valgrind) the process measured is
     * the wrapper with its shadow memory, so the bound does not apply. */
    if (getenv("CB_WRAPPER") == NULL || getenv("CB_WRAPPER")[0] == '\0') {
        assert_true(hwm > 0);
        assert_true(hwm < RSS_BOUND_KB);
    }
}

/* Servers and a bridge publishing its status every second (the counts
 * are read at the end). */
static int setup(void **state) {
    (void)state;
    if (h_start_servers(&env) < 0) return -1;
    env.bridge_mqtt_keys = "  status_interval: 1\n";
    return h_start_bridge(&env, NULL);
}

/* Stopping the bridge must be clean (h_finish). */
static int teardown(void **state) {
    (void)state;
    return h_finish(&env);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_corpus),
    };
    return cmocka_run_group_tests_name("hostile", tests, setup, teardown);
}
