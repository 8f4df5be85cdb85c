/*
 * child.h - the sandboxed cell's side of the clone: setup, init (PID 1) and the workload.
 *
 * sb_child_main() runs in the process clone3() created in the new user, pid, mount, net,
 * UTS and IPC namespaces. Everything here is async-signal-safe (raw system calls, no
 * allocation, no stdio): the runner prepared every string, fd and filter beforehand and
 * the child only reads them. The sequence is:
 *
 *   setup (PID 1, still privileged in its own user namespace)
 *     block signals, PR_SET_DUMPABLE 0, PR_SET_PDEATHSIG, named "cellvisor-init" (comm and
 *     cmdline: the runner's argv, which its memory holds, is overwritten), join the
 *     v1 cgroups, create the mount, network, UTS, IPC and cgroup namespaces (clone3 made
 *     only the user and pid ones: the network namespace is the expensive one, and the
 *     runner meanwhile writes the id maps and builds the view and the landlock ruleset),
 *     limit its user namespace (/proc/sys/user: inotify, fanotify, namespaces), wait for the
 *     runner's "go" (struct sb_child_go: the landlock ruleset, the workload's stdio, the
 *     view's root and what is left to attach, as fds), become the cell's uid/gid
 *     (supplementary groups cleared), setsid, attach the view and pivot_root, hostname,
 *     loopback up, PR_SET_NO_NEW_PRIVS, every capability dropped, the workload's cwd
 *     resolved (openat2 is ENOSYS under the filter), the seccomp filter (inherited by the
 *     workload: one filter for the whole cell), then clone the workload with CLONE_VM |
 *     CLONE_VFORK (no page-table copy; init waits for its execve);
 *   init (PID 1 from then on)
 *     the secrets in its copy of the runner's memory wiped (the environment strings and
 *     sb_child_config.wipe), stdio on /dev/null, every other fd closed but the status
 *     eventfd and the host uid's lock (hold_fd); reaps every
 *     process, forwards signals from outside the cell to the whole cell (kill(-1)), and
 *     when the workload exits stores its wait status for the runner (struct
 *     sb_child_status: the runner's "top process ended"); it exits once it has no child
 *     left, so what the workload left behind is stopped by the runner like on any backend
 *     (SIGTERM, grace, SIGKILL);
 *   workload (PID 2)
 *     signal dispositions reset, stdio, its own session, fchdir to the cwd the setup
 *     resolved inside the root, checked, rlimits, umask, landlock, close_range, signals
 *     unblocked, execve (PATH searched inside the cell).
 *
 * Any failure before execve is reported to the runner on the sync socket as one struct
 * sb_child_report; the runner sees EOF on that socket when the workload's execve
 * succeeds (the last copy is O_CLOEXEC). When asked (send_mntns), the setup sends, after
 * pivot_root, a report with error 0 and the fd of the cell's mount namespace attached
 * (SCM_RIGHTS): holding it keeps the view's mounts for the exports after the run.
 */
#pragma once

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/sandbox/view.h"
#include "base/macro.h"

#define SB_CHILD_MAX_CGROUP_FDS 8

/* init's name: its comm (PR_SET_NAME) and its whole /proc/<pid>/cmdline. */
#define SB_CHILD_INIT_NAME "cellvisor-init"

/* At most this many fds per "go" message (the kernel takes SCM_MAX_FD, 253). */
#define SB_CHILD_GO_FDS_PER_MSG 250
/* Every fd "go" can carry for a view of n mounts: landlock, stdio, the root, two per mount. */
#define SB_CHILD_GO_FDS(n)  (5 + 2 * (size_t)(n))
#define SB_CHILD_GO_MAX_FDS SB_CHILD_GO_FDS(SB_VIEW_MAX_MOUNTS)

/*
 * The runner's "go", sent once uid_map and gid_map are written and the view is assembled.
 * The first SOCK_SEQPACKET message is this header followed by n_attach struct
 * sb_child_attach; the n_fds fds travel as SCM_RIGHTS, SB_CHILD_GO_FDS_PER_MSG at most per
 * message, on it and on as many one-byte messages after it as needed (one on any kernel
 * that assembles the view: 6.15+). Every fd is named by its index in that sequence. The
 * seccomp program is a constant the cell already has: sb_seccomp_program().
 */
struct sb_child_go {
	uint32_t n_fds;
	uint32_t n_attach;
	int32_t landlock; /* the landlock ruleset, or -1 */
	int32_t stdio[3]; /* the workload's stdin, stdout, stderr, or -1: the cell's /dev/null */
	int32_t root;     /* the view's detached root */
	uint32_t reserved;
	/* Bit s-1 set: signal s had a disposition other than SIG_DFL in the runner at the
	 * clone (the cell inherited it); the workload resets exactly these before execve. */
	uint64_t sig_not_default;
};

/* One mount the cell attaches itself (view.h: struct sb_attach), fds as indexes. */
struct sb_child_attach {
	uint32_t kind; /* enum sb_mount_kind */
	int32_t tree;  /* SB_MOUNT_TREE: index of the tree; -1 for SB_MOUNT_PROC */
	int32_t target;
};

/*
 * How init tells the runner the workload ended: in a page the runner mapped MAP_SHARED
 * before the clone (no wake-up by itself). With nothing else left in the cell, init then
 * exits, and its pidfd wakes the runner once; otherwise init also writes the eventfd
 * (status_fd) and stays, holding what the workload left behind.
 */
struct sb_child_status {
	int32_t wait_status; /* the workload's, as waitpid() gives it */
	int32_t reported;    /* set (release) after wait_status */
};

struct sb_child_report {
	int32_t error; /* errno */
	char step[28]; /* "exec", "chdir", "mount", ... */
};

/* A piece of the runner's memory that init wipes in its own copy (see wipe_runner_secrets()). */
struct sb_child_wipe {
	void *ptr;
	size_t len;
};

/*
 * Limits of the cell's user namespace (/proc/sys/user/<name>), written by the setup process
 * while it holds CAP_SYS_RESOURCE there. Per-user-namespace counts are charged up the chain
 * to the namespace's creator, host root: without a limit, a cell could take all of root's
 * inotify instances or fanotify groups. Documented in docs/sandbox.md.
 */
#define SB_CHILD_MAX_INOTIFY_INSTANCES "16"
#define SB_CHILD_MAX_INOTIFY_WATCHES   "8192"

/* What the setup process knows at the clone; the rest comes with "go". */
struct sb_child_config {
	int sync_fd;   /* the cell's end of the runner's SOCK_SEQPACKET socketpair */
	int status_fd; /* an eventfd init writes when the workload ended with leftovers */
	struct sb_child_status *status; /* shared with the runner (MAP_SHARED) */
	int runner_sync_fd; /* the runner's end of the socket, closed first (EOF when it is gone) */
	/* Kept open by init until it exits, never passed to the workload: the lock of the
	 * cell's host uid (uidpool.h), so that the uid stays taken while the cell lives even
	 * if the runner is gone. -1: none. */
	int hold_fd;
	int cgroup_fds[SB_CHILD_MAX_CGROUP_FDS]; /* v1 `tasks` / cgroup.procs: join by writing "0"
	                                          */
	size_t n_cgroup_fds;
	unsigned long unshare_flags; /* CLONE_NEW* the setup creates itself (not CLONE_NEWUSER) */
	uid_t uid;                   /* the workload's ids inside the user namespace */
	gid_t gid;
	const char *hostname;
	bool loopback_up;
	uint64_t nofile_soft, nofile_hard; /* RLIMIT_NOFILE; 0: inherited */
	/* RLIMIT_NPROC, the cell's tasks with its init (counted per user namespace and uid);
	 * 0: inherited */
	uint64_t nproc;
	bool send_mntns; /* send the cell's mount namespace fd (error 0 report) for exports */
	const char *const *argv;
	const char *const *envp;
	const char *cwd; /* inside the cell; NULL = "/" */
	/* Wiped (explicit_bzero) in init's copy of the runner's memory once the workload has
	 * exec'd, with every envp string: the secret values the runner holds. */
	const struct sb_child_wipe *wipe;
	size_t n_wipe;
};

/* Never returns. */
_noreturn_ void sb_child_main(const struct sb_child_config *c);
