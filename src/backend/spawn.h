/*
 * spawn.h - starting a process the safe way, shared by backends.
 *
 * spawn_resolve() finds argv[0] on a PATH before fork (so the child allocates nothing).
 * spawn_clone() creates the child with clone3(CLONE_PIDFD [| CLONE_INTO_CGROUP]), falling
 * back to fork() + pidfd_open() on kernels without clone3, and returns its pidfd. An error
 * pipe (O_CLOEXEC) carries a failing step and errno from the child back to the parent:
 * EOF means execve succeeded.
 */
#pragma once

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>

#define SPAWN_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* What the child reports through the error pipe. */
struct spawn_report {
	int error;
	char step[28];
};

/*
 * Resolve name against path (a ':' list, SPAWN_DEFAULT_PATH when NULL) like execvp: a name
 * with a '/' is used as is. Returns -ENOENT or -EACCES like execvp would.
 */
int spawn_resolve(const char *name, const char *path, char *buf, size_t size);

/*
 * clone3 with flags (CLONE_NEW* allowed) and, when cgroup_fd >= 0, CLONE_INTO_CGROUP.
 * Returns 0 in the child, the child's pid in the parent (with *ret_pidfd set), or -errno.
 * *ret_into_cgroup says whether CLONE_INTO_CGROUP was used.
 */
pid_t spawn_clone(unsigned long flags, int cgroup_fd, int *ret_pidfd, bool *ret_into_cgroup);

struct open_how;

/*
 * Open path (openat2 relative to dirfd, with how) in a short-lived child that first becomes
 * uid/gid with no supplementary groups (and, for a uid other than 0, no capabilities), and
 * get the fd back over SCM_RIGHTS. The open file then carries exactly those credentials, so
 * permission checks and credential-dependent content (procfs) are the workload's, not the
 * runner's. Returns 0 with *ret_fd, or -errno of the open.
 */
int spawn_open_as(uid_t uid, gid_t gid, int dirfd, const char *path, const struct open_how *how,
    int *ret_fd);

/* How long spawn_open_as() waits for its child (which uid's owner could stop) before killing
 * it: the open then fails with ETIMEDOUT. */
#define SPAWN_OPEN_AS_TIMEOUT_MS 5000

/* In the child: report a failed step and _exit(127). Async-signal-safe. */
_Noreturn void spawn_child_fail(int errfd, const char *step, int error);

/* In the parent: read the child's report. 0 = exec succeeded, 1 = report filled, -errno. */
int spawn_read_report(int errfd, struct spawn_report *ret);
