/* fuzz_config.c -- libFuzzer target for the configuration loader
 * (bridge/config.c): config_load_buffer() on the input as YAML, then
 * config_dump() into /dev/null when it loads, config_free() always.
 *
 * The loader reads files the YAML names (mqtt.password_file, TLS files):
 * the fuzz build links a copy of config.o whose open(), access() and
 * stat() calls are renamed (objcopy --redefine-sym, see the Makefile) to
 * the cb_fuzz_*() functions below. They serve a few in-memory files
 * ("fuzz-secret", "fuzz-big", ...; see vfiles[]) and refuse every other
 * path with ENOENT, so the fuzzer never touches the real file system: no
 * device or FIFO to block on, nothing to write.
 *
 * Invariants (a broken one calls abort()):
 *   - the loader returns 0 with no error, or -1 with at least one error,
 *     each "NAME:..." and NUL-terminated within CONFIG_ERROR_LEN;
 *   - it never asks to open a file for writing, and closes what it opens
 *     (a leaked descriptor ends in a failed memfd_create(), which aborts);
 *   - a loaded configuration obeys the documented ranges and the checks
 *     across options (history_default <= history_max, segment_bytes <=
 *     max_bytes), its topic and key prefixes follow their rules, and
 *     config_needs_restart() of it against itself is 0;
 *   - config_dump() and config_free() run clean under ASan/UBSan, and
 *     nothing leaks (LeakSanitizer). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

#define FUZZ_NAME "fuzz.yaml"
#define SECRET_FILE_MAX 4096        /* config.c: largest password_file */

/* ==================== The in-memory files ==================== */

/* A file the sandbox serves. data NULL means len bytes of 'x'. */
struct vfile {
    const char *path;
    const char *data;
    size_t len;
    mode_t mode;
};

static const struct vfile vfiles[] = {
    { "fuzz-secret", "hunter2\n", 8, 0600 },
    { "fuzz-secret-crlf", "hunter2\r\n", 9, 0600 },
    { "fuzz-public", "hunter2\n", 8, 0644 },       /* readable by others */
    { "fuzz-empty", "", 0, 0600 },
    { "fuzz-newline", "\n", 1, 0600 },
    { "fuzz-nul", "a\0b\n", 4, 0600 },
    { "fuzz-max", NULL, SECRET_FILE_MAX, 0600 },
    { "fuzz-big", NULL, SECRET_FILE_MAX + 1, 0600 },
};

static char filler[SECRET_FILE_MAX + 1];   /* the 'x' bytes */
static FILE *devnull;                      /* config_dump() goes here */

/* The in-memory file called path, or NULL with errno ENOENT. */
static const struct vfile *vfile_find(const char *path) {
    for (size_t i = 0; i < sizeof(vfiles) / sizeof(vfiles[0]); i++)
        if (strcmp(vfiles[i].path, path) == 0) return &vfiles[i];
    errno = ENOENT;
    return NULL;
}

/* The names config.o's calls are renamed to: both the plain and the
 * large-file forms, as _FILE_OFFSET_BITS decides which one it calls. */
int cb_fuzz_open(const char *path, int flags, ...);
int cb_fuzz_open64(const char *path, int flags, ...);
int cb_fuzz_access(const char *path, int mode);
int cb_fuzz_stat(const char *path, struct stat *st);
int cb_fuzz_stat64(const char *path, struct stat *st);

/* open() for config.o: read-only, and only the in-memory files, served
 * through a memfd so that read() and close() work unchanged. */
int cb_fuzz_open(const char *path, int flags, ...) {
    const struct vfile *f;
    size_t done = 0;
    int fd;

    CHECK((flags & O_ACCMODE) == O_RDONLY);
    CHECK((flags & (O_CREAT | O_TRUNC | O_APPEND)) == 0);
    if ((f = vfile_find(path)) == NULL) return -1;
    fd = memfd_create("fuzz-vfile", MFD_CLOEXEC);
    CHECK(fd >= 0);
    while (done < f->len) {
        ssize_t n = write(fd, (f->data ? f->data : filler) + done,
                          f->len - done);
        CHECK(n > 0);
        done += (size_t)n;
    }
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    return fd;
}

/* open64(): the same; the flags given never need the mode argument. */
int cb_fuzz_open64(const char *path, int flags, ...) {
    return cb_fuzz_open(path, flags);
}

/* access() for config.o: the in-memory files exist and are readable. */
int cb_fuzz_access(const char *path, int mode) {
    (void)mode;
    return vfile_find(path) ? 0 : -1;
}

/* stat() for config.o: a regular file with the vfile's mode and size. */
int cb_fuzz_stat(const char *path, struct stat *st) {
    const struct vfile *f = vfile_find(path);

    if (f == NULL) return -1;
    memset(st, 0, sizeof(*st));
    st->st_mode = S_IFREG | f->mode;
    st->st_size = (off_t)f->len;
    st->st_nlink = 1;
    return 0;
}

/* stat64(): the same (struct stat is the 64-bit one in this build). */
int cb_fuzz_stat64(const char *path, struct stat *st) {
    return cb_fuzz_stat(path, st);
}

/* ==================== Checks ==================== */

/* Would config.c accept s as mqtt.topic_prefix? (config.h: no + #; the
 * rest is the rule documented in config/chat-bridge.yaml.) */
static int topic_prefix_ok(const char *s) {
    size_t len = strlen(s);

    return len > 0 && strpbrk(s, "+#") == NULL && s[0] != '$' &&
           s[0] != '/' && s[len - 1] != '/' && strstr(s, "//") == NULL;
}

/* redis.key_prefix: 1..64 bytes, no control characters, ':', ' ', '{'
 * or '}'. */
static int key_prefix_ok(const char *s) {
    size_t len = strlen(s);

    if (len == 0 || len > 64) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7F || strchr(": {}", ch) != NULL) return 0;
    }
    return 1;
}

/* The error list of a refused file: count >= 1, every kept message
 * NUL-terminated in its slot and starting with the file's name. */
static void check_errors(const struct config_errors *e) {
    int kept = e->count < CONFIG_MAX_ERRORS ? e->count : CONFIG_MAX_ERRORS;

    CHECK(e->count >= 1);
    for (int i = 0; i < kept; i++) {
        CHECK(memchr(e->msg[i], '\0', CONFIG_ERROR_LEN) != NULL);
        CHECK(strncmp(e->msg[i], FUZZ_NAME ":", sizeof(FUZZ_NAME)) == 0);
    }
}

/* A loaded configuration within the ranges config.h documents. */
static void check_loaded(const struct config *c) {
    CHECK(c->mqtt_uri && c->mqtt_client_id && c->topic_prefix &&
          c->redis_host && c->key_prefix);
    CHECK(c->mqtt_client_id[0] != '\0' && c->redis_host[0] != '\0');
    CHECK(strstr(c->mqtt_uri, "://") != NULL);
    CHECK(topic_prefix_ok(c->topic_prefix));
    CHECK(key_prefix_ok(c->key_prefix));
    CHECK(c->mqtt_qos >= 0 && c->mqtt_qos <= 2);
    CHECK(c->mqtt_version == 4 || c->mqtt_version == 5);
    CHECK(c->mqtt_keepalive >= 1 && c->mqtt_keepalive <= 65535);
    CHECK(c->mqtt_session_expiry >= 0);
    CHECK(c->redis_port >= 1 && c->redis_port <= 65535);
    CHECK(c->max_text_bytes >= 1 && c->max_text_bytes <= 1048576);
    CHECK(c->history_default >= 1 && c->history_max <= 10000);
    CHECK(c->history_default <= c->history_max);
    CHECK(c->journal_segment_bytes >= 4096);
    CHECK(c->journal_segment_bytes <= c->journal_max_bytes);
    CHECK(c->retain_count >= 0 && c->retain_age >= 0);
    CHECK(config_needs_restart(c, c) == 0);
}

/* ==================== libFuzzer entry points ==================== */

/* Once: the filler of the large in-memory files and the dump sink. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    memset(filler, 'x', sizeof(filler));
    devnull = fopen("/dev/null", "w");
    CHECK(devnull != NULL);
    return 0;
}

/* The whole input is the YAML text. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct config c;
    struct config_errors errs;
    int rc;

    memset(&errs, 0, sizeof(errs));
    rc = config_load_buffer(&c, (const char *)data, size, FUZZ_NAME, &errs);
    CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        CHECK(errs.count == 0);
        check_loaded(&c);
        config_dump(&c, devnull);
    } else {
        check_errors(&errs);
    }
    config_free(&c);
    return 0;
}
