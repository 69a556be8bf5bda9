/* sys.c -- child processes and loopback ports (see sys.h). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sys.h"

void sys_sleep_ms(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

int sys_free_port(void) {
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

int sys_wait_port(int port, int timeout_ms, const volatile int *cancel) {
    for (int waited = 0; waited < timeout_ms && !(cancel && *cancel); waited += 50) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        if (fd >= 0) close(fd);
        if (ok) return 0;
        sys_sleep_ms(50);
    }
    return -1;
}

pid_t sys_spawn(char *const argv[], const char *logfile, int die_with_parent) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    if (die_with_parent) prctl(PR_SET_PDEATHSIG, SIGKILL);
    close_range(3, ~0U, 0);          /* not the parent's connections */
    int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    execvp(argv[0], argv);
    static const char msg[] = "exec failed\n";   /* no stdio after fork */
    if (write(2, msg, sizeof(msg) - 1) < 0) _exit(126);
    _exit(127);
}

int sys_stop_pid(pid_t pid, int timeout_ms) {
    int status;
    if (pid <= 0) return -1;
    kill(pid, SIGTERM);
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        sys_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

int sys_write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f == NULL) return -1;
    fputs(text, f);
    return fclose(f);
}

long sys_proc_kb(pid_t pid, const char *field) {
    char path[64], line[256];
    long kb = -1;
    size_t flen = strlen(field);
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    while (kb < 0 && fgets(line, sizeof(line), f))
        if (strncmp(line, field, flen) == 0 && line[flen] == ':')
            kb = strtol(line + flen + 1, NULL, 10);
    fclose(f);
    return kb;
}
/* The argv of one node, with --cluster-node-timeout only when asked. */
pid_t sys_spawn_cluster_node(const char *dir, int port, int bus, int node_timeout_ms) {
    char p[16], b[16], t[16], conf[512], log[512];
    snprintf(p, sizeof(p), "%d", port);
    snprintf(b, sizeof(b), "%d", bus);
    snprintf(t, sizeof(t), "%d", node_timeout_ms > 0 ? node_timeout_ms : 15000);
    snprintf(conf, sizeof(conf), "%s/nodes-%d.conf", dir, port);
    snprintf(log, sizeof(log), "%s/redis-%d.log", dir, port);
    char *argv[] = { "redis-server", "--port", p, "--cluster-port", b,
        "--cluster-enabled", "yes", "--cluster-config-file", conf,
        "--cluster-node-timeout", t, "--bind", "127.0.0.1", "--dir", (char *)dir,
        "--save", "", "--appendonly", "no", NULL };
    return sys_spawn(argv, log, 1);
}

/* Spawn, then poll every 50 ms until the child ends or time runs out. */
int sys_run(char *const argv[], const char *logfile, int timeout_ms,
            const volatile int *cancel) {
    pid_t child = sys_spawn(argv, logfile, 1);
    int status;
    if (child <= 0) return -1;
    for (int waited = 0; waited < timeout_ms && !(cancel && *cancel); waited += 50) {
        if (waitpid(child, &status, WNOHANG) == child)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        sys_sleep_ms(50);
    }
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    return -1;
}

