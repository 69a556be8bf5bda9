/* sys.h -- child processes and loopback ports for the tests and the
 * benchmark: the one place that forks servers, waits for their ports and
 * stops them by PID. */
#ifndef CB_TEST_SYS_H
#define CB_TEST_SYS_H

#include <sys/types.h>

/* Sleep ms milliseconds. */
void sys_sleep_ms(long ms);

/* A port the kernel just gave out on 127.0.0.1; free when we return, -1
 * on failure. */
int sys_free_port(void);

/* Wait up to timeout_ms until something accepts connections on
 * 127.0.0.1:port, giving up early when *cancel (if given) becomes
 * non-zero. 0 or -1. */
int sys_wait_port(int port, int timeout_ms, const volatile int *cancel);

/* fork+exec argv, stdout and stderr appended to logfile, descriptors
 * above 2 closed. die_with_parent: SIGKILL the child if the calling
 * thread dies (only for a caller whose thread lives as long as it). */
pid_t sys_spawn(char *const argv[], const char *logfile, int die_with_parent);

/* sys_spawn argv (dying with the caller) and wait for its end, at most
 * timeout_ms, or until *cancel (if given) becomes non-zero: then SIGKILL.
 * Its exit status, or -1. */
int sys_run(char *const argv[], const char *logfile, int timeout_ms,
            const volatile int *cancel);

/* A redis-server Redis Cluster node on 127.0.0.1:port (cluster bus on
 * bus: above 55535 the default port+10000 cannot exist), its config file,
 * log and data in dir, no persistence; node_timeout_ms 0 keeps Redis's
 * default. Dies with the caller. Its PID, or -1. */
pid_t sys_spawn_cluster_node(const char *dir, int port, int bus, int node_timeout_ms);

/* SIGTERM, wait up to timeout_ms, then SIGKILL; reaps. Returns the exit
 * status, or -1 when it did not exit by itself. */
int sys_stop_pid(pid_t pid, int timeout_ms);

/* A kB field of /proc/<pid>/status (e.g. "VmHWM"), or -1. */
long sys_proc_kb(pid_t pid, const char *field);

/* Write text to a new file. 0 or -1. */
int sys_write_file(const char *path, const char *text);

#endif
