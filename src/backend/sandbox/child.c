#include "backend/sandbox/child.h"

#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/filter.h>
#include <linux/openat2.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/sandbox/caps.h"
#include "backend/spawn.h"
#include "backend/sandbox/landlock.h"
#include "backend/sandbox/seccomp.h"
#include "backend/sandbox/view.h"

/*
 * Everything in this file runs between clone3() and execve() in a copy of the runner's
 * address space: async-signal-safe calls only, no malloc, no stdio, no errno-setting libc
 * helpers whose state matters after a raw clone (raise, abort, pthread_*).
 */

#define SB_EXIT_SETUP 125

static void
copy_step(char *dst, size_t size, const char *src)
{
	size_t i = 0;
	for (; src[i] && i + 1 < size; i++)
		dst[i] = src[i];
	dst[i] = '\0';
}

static void
report(int sync_fd, const char *step, int error)
{
	struct sb_child_report rep = {.error = error > 0 ? error : EIO};
	copy_step(rep.step, sizeof(rep.step), step);
	(void)send(sync_fd, &rep, sizeof(rep), MSG_NOSIGNAL);
}

/* "go" as received: static, since nothing here allocates. */
static struct sb_child_attach go_attach[SB_VIEW_MAX_MOUNTS];
static int go_fds[SB_CHILD_GO_MAX_FDS];
static struct sb_attach attach_list[SB_VIEW_MAX_MOUNTS];

/* Append the SCM_RIGHTS fds of mh to go_fds[*n] (at most max in all). */
static int
take_fds(struct msghdr *mh, size_t *n, size_t max)
{
	int r = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (*n < max)
				go_fds[(*n)++] = fd;
			else {
				close(fd);
				r = -EBADMSG;
			}
		}
	}
	return r;
}

static ssize_t
recvmsg_retry(int fd, struct msghdr *mh)
{
	ssize_t n;
	do
		n = recvmsg(fd, mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	return n;
}

static bool
index_ok(int32_t i, uint32_t n_fds, bool optional)
{
	return (optional && i == -1) || (i >= 0 && (uint32_t)i < n_fds);
}

/*
 * Receive "go" (child.h: struct sb_child_go), its attach entries into go_attach and its
 * fds into go_fds. 0, -EPIPE when the runner is gone, or -errno.
 */
static int
receive_go(int sync_fd, struct sb_child_go *ret_go)
{
	struct sb_child_go go;
	union {
		char buf[CMSG_SPACE(SB_CHILD_GO_FDS_PER_MSG * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov[2] = {{&go, sizeof(go)}, {go_attach, sizeof(go_attach)}};
	struct msghdr mh = {.msg_iov = iov,
	    .msg_iovlen = 2,
	    .msg_control = u.buf,
	    .msg_controllen = sizeof(u.buf)};
	size_t n_fds = 0;

	ssize_t n = recvmsg_retry(sync_fd, &mh);
	if (n == 0)
		return -EPIPE;
	if (n < 0)
		return -errno;
	int r = take_fds(&mh, &n_fds, SB_CHILD_GO_MAX_FDS);
	if (r < 0 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t)n < sizeof(go) ||
	    go.n_attach > SB_VIEW_MAX_MOUNTS || go.n_fds > SB_CHILD_GO_MAX_FDS ||
	    (size_t)n != sizeof(go) + go.n_attach * sizeof(struct sb_child_attach))
		return -EBADMSG;
	while (n_fds < go.n_fds) {
		char byte;
		struct iovec one = {&byte, 1};
		mh = (struct msghdr){.msg_iov = &one,
		    .msg_iovlen = 1,
		    .msg_control = u.buf,
		    .msg_controllen = sizeof(u.buf)};
		size_t before = n_fds;
		n = recvmsg_retry(sync_fd, &mh);
		if (n == 0)
			return -EPIPE;
		if (n < 0)
			return -errno;
		if (take_fds(&mh, &n_fds, go.n_fds) < 0 || (mh.msg_flags & MSG_CTRUNC) ||
		    n_fds == before)
			return -EBADMSG;
	}
	if (n_fds != go.n_fds || !index_ok(go.landlock, go.n_fds, true) ||
	    !index_ok(go.root, go.n_fds, false))
		return -EBADMSG;
	for (int i = 0; i < 3; i++)
		if (!index_ok(go.stdio[i], go.n_fds, true))
			return -EBADMSG;
	for (uint32_t i = 0; i < go.n_attach; i++) {
		const struct sb_child_attach *e = &go_attach[i];
		bool tree = e->kind == SB_MOUNT_TREE;
		if ((!tree && e->kind != SB_MOUNT_PROC) || !index_ok(e->target, go.n_fds, false) ||
		    (tree ? !index_ok(e->tree, go.n_fds, false) : e->tree != -1))
			return -EBADMSG;
		attach_list[i] = (struct sb_attach){.kind = (enum sb_mount_kind)e->kind,
		    .tree_fd = tree ? go_fds[e->tree] : -1,
		    .target_fd = go_fds[e->target]};
	}
	*ret_go = go;
	return 0;
}

static int
go_fd(int32_t index)
{
	return index < 0 ? -1 : go_fds[index];
}

/* The cell's mount namespace to the runner, which reads the exports through it. */
static int
send_mntns(int sync_fd)
{
	struct sb_child_report rep = {.error = 0};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	int fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	copy_step(rep.step, sizeof(rep.step), "mntns");
	memset(&u, 0, sizeof(u));
	struct iovec iov = {&rep, sizeof(rep)};
	struct msghdr mh = {.msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = u.buf,
	    .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	ssize_t n = sendmsg(sync_fd, &mh, MSG_NOSIGNAL);
	int r = n < 0 ? -errno : 0;
	close(fd);
	return r;
}

/*
 * Close every fd inherited from the runner but stdio and what the setup uses (the sync
 * socket, the status eventfd, the cgroup fds): its epoll, signalfd, event sinks and cgroup
 * directories, and, when start() cloned us after building the view, the view's fds, which
 * "go" sends again. Nothing of the runner's is held while the cell sets up.
 */
static void
close_inherited(const struct sb_child_config *c, int sync_fd)
{
	int keep[3 + SB_CHILD_MAX_CGROUP_FDS];
	size_t n = 0;

	keep[n++] = sync_fd;
	keep[n++] = c->status_fd;
	if (c->hold_fd >= 0)
		keep[n++] = c->hold_fd;
	for (size_t i = 0; i < c->n_cgroup_fds && n < sizeof(keep) / sizeof(keep[0]); i++)
		keep[n++] = c->cgroup_fds[i];
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
			int t = keep[j];
			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	unsigned int lo = 3;
	for (size_t i = 0; i < n; i++) {
		if (keep[i] < (int)lo)
			continue;
		if ((unsigned int)keep[i] > lo)
			(void)syscall(SYS_close_range, lo, (unsigned int)keep[i] - 1, 0U);
		lo = (unsigned int)keep[i] + 1;
	}
	(void)syscall(SYS_close_range, lo, ~0U, 0U);
}

static _noreturn_ void
fail(int sync_fd, const char *step, int error, int code)
{
	report(sync_fd, step, error);
	_exit(code);
}

/* Move fd to a number >= 3 so that the stdio dup2()s cannot clobber it. */
static int
fd_above_stdio(int fd)
{
	if (fd < 0 || fd > 2)
		return fd;
	int n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return n < 0 ? fd : n;
}

static int
loopback_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	int r = 0;
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		r = -errno;
	else {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			r = -errno;
	}
	close(s);
	return r;
}

static const char *
env_get(const char *const *envp, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; envp && envp[i]; i++)
		if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
			return envp[i] + n + 1;
	return NULL;
}

/*
 * execve() with execvp()'s search of PATH (taken from the cell's environment, or a default)
 * but no allocation and no fallback to /bin/sh for ENOEXEC. Returns -errno: -ENOENT when
 * nothing was found, -EACCES when something was found but not executable.
 */
static int
exec_search(const char *file, const char *const *argv, const char *const *envp)
{
	char buf[PATH_MAX];
	bool eacces = false;

	if (strchr(file, '/')) {
		execve(file, (char *const *)argv, (char *const *)envp);
		return -errno;
	}
	const char *path = env_get(envp, "PATH");
	if (!path)
		path = SPAWN_DEFAULT_PATH; /* as on the host backend (run.md) */
	size_t flen = strlen(file);
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		size_t dlen = (size_t)(end - p);
		if (dlen + flen + 2 <= sizeof(buf)) {
			if (dlen == 0) {
				buf[0] = '.';
				dlen = 1;
			} else
				memcpy(buf, p, dlen);
			buf[dlen] = '/';
			memcpy(buf + dlen + 1, file, flen + 1);
			execve(buf, (char *const *)argv, (char *const *)envp);
			switch (errno) {
			case EACCES:
				eacces = true;
				break;
			case ENOENT:
			case ENOTDIR:
			case ENAMETOOLONG:
			case ELOOP:
				break;
			default:
				return -errno;
			}
		}
		if (*end == '\0')
			break;
		p = end;
	}
	return eacces ? -EACCES : -ENOENT;
}

/*
 * The workload's cwd, resolved inside the cell's root. Done by the setup process after the
 * capability drop (so with the workload's credentials: search permission on every
 * component) and before the seccomp filter, which answers openat2 with ENOSYS.
 */
static int
open_cwd(const char *cwd)
{
	struct open_how how = {
	    .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
	    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};

	if (!cwd)
		cwd = "/";
	int fd = (int)syscall(SYS_openat2, AT_FDCWD, cwd, &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

static int
enter_cwd(int cwd_fd)
{
	char buf[PATH_MAX];

	if (fchdir(cwd_fd) < 0)
		return -errno;
	/* The kernel answers "(unreachable)/..." (or ENOENT) for a cwd outside the root. */
	long n = syscall(SYS_getcwd, buf, sizeof(buf));
	if (n < 0)
		return -errno;
	if (buf[0] != '/')
		return -EXDEV;
	return 0;
}

/* The cell's user namespace limits (child.h). A kernel without the file has no such
 * count (no fanotify, no time namespaces): skipped. */
static const struct {
	const char *name;
	const char *value;
	bool after_view; /* written once the view is attached: fsmount() counts a namespace */
} user_ns_limits[] = {
    {"max_inotify_instances", SB_CHILD_MAX_INOTIFY_INSTANCES, false},
    {"max_inotify_watches", SB_CHILD_MAX_INOTIFY_WATCHES, false},
    {"max_fanotify_groups", "0", false},
    {"max_fanotify_marks", "0", false},
    /* Defence in depth behind seccomp's CLONE_NEW* rules: no namespace of any kind. */
    {"max_user_namespaces", "0", false},
    {"max_pid_namespaces", "0", false},
    {"max_net_namespaces", "0", false},
    {"max_ipc_namespaces", "0", false},
    {"max_uts_namespaces", "0", false},
    {"max_cgroup_namespaces", "0", false},
    {"max_time_namespaces", "0", false},
    {"max_mnt_namespaces", "0", true},
};

/*
 * Write the limits of the cell's user namespace: /proc/sys/user shows the caller's own user
 * namespace's values, writable with CAP_SYS_RESOURCE over it (the setup holds every
 * capability there). Any procfs mount will do: the host's before pivot_root (most of them,
 * while the runner works), the cell's after (after_view).
 */
static int
limit_user_ns(bool after_view)
{
	int dir = open("/proc/sys/user", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return -errno;
	int r = 0;
	for (size_t i = 0; i < sizeof(user_ns_limits) / sizeof(user_ns_limits[0]); i++) {
		if (user_ns_limits[i].after_view != after_view)
			continue;
		int fd = openat(dir, user_ns_limits[i].name, O_WRONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			r = -errno;
			break;
		}
		size_t len = strlen(user_ns_limits[i].value);
		ssize_t n = write(fd, user_ns_limits[i].value, len);
		if (n < 0)
			r = -errno;
		else if ((size_t)n != len)
			r = -EIO;
		close(fd);
		if (r < 0)
			break;
	}
	close(dir);
	return r;
}

/*
 * init is the runner's memory without an exec: its copy of the runner's heap holds every
 * secret value the runner had at the clone (the secret set, the sandbox's file copies, the
 * environment strings with env-delivered secrets). Wipe them once the workload has its own
 * copy (after its execve), so that nothing reading init's memory later finds them.
 */
static void
wipe_runner_secrets(const struct sb_child_config *c)
{
	for (size_t i = 0; i < c->n_wipe; i++)
		if (c->wipe[i].ptr)
			explicit_bzero(c->wipe[i].ptr, c->wipe[i].len);
	for (size_t i = 0; c->envp && c->envp[i]; i++)
		explicit_bzero((char *)c->envp[i], strlen(c->envp[i]));
}

/*
 * Back to SIG_DFL for the signals the runner had ignored or caught (the others already
 * are): ignored ones would survive execve, and a caught one must not run the runner's
 * handler here once signals are unblocked. The runner looked them up while the cell set
 * up its namespaces, which saves a sigaction() per signal on the cell's critical path.
 */
static void
reset_signals(uint64_t not_default)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int s = 1; s < _NSIG && s <= 64; s++)
		if (s != SIGKILL && s != SIGSTOP && (not_default & (UINT64_C(1) << (s - 1))))
			(void)sigaction(s, &sa, NULL);
}

static _noreturn_ void
workload_main(const struct sb_child_config *c, const int stdio_in[3], int sync_fd, int landlock_fd,
    int cwd_fd, uint64_t sig_not_default)
{
	int stdio[3];
	int r;

	reset_signals(sig_not_default);
	close(c->status_fd);

	for (int i = 0; i < 3; i++) {
		stdio[i] = stdio_in[i];
		if (stdio[i] < 0 && (stdio[i] = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
			fail(sync_fd, "stdio", errno, SB_EXIT_SETUP);
		/* Out of the way of 0-2 first, so no dup2() below overwrites a source. */
		if (stdio[i] < 3 && (stdio[i] = fcntl(stdio[i], F_DUPFD_CLOEXEC, 3)) < 0)
			fail(sync_fd, "stdio", errno, SB_EXIT_SETUP);
	}
	for (int i = 0; i < 3; i++)
		if (dup2(stdio[i], i) < 0)
			fail(sync_fd, "stdio", errno, SB_EXIT_SETUP);

	/* Its own session: no controlling terminal to inject into (TIOCSTI). */
	if (setsid() < 0)
		fail(sync_fd, "setsid", errno, SB_EXIT_SETUP);

	if ((r = enter_cwd(cwd_fd)) < 0)
		fail(sync_fd, "chdir", -r, SB_EXIT_SETUP);
	close(cwd_fd);

	if (landlock_fd >= 0) {
		if ((r = sb_landlock_apply(landlock_fd)) < 0)
			fail(sync_fd, "landlock", -r, SB_EXIT_SETUP);
		close(landlock_fd);
	}

	/* Only the sync socket (O_CLOEXEC, for an exec error) survives, as fd 3. */
	if (sync_fd != 3) {
		if (dup3(sync_fd, 3, O_CLOEXEC) < 0)
			_exit(SB_EXIT_SETUP);
		sync_fd = 3;
	}
	if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0)
		fail(sync_fd, "close_range", errno, SB_EXIT_SETUP);

	/* Last, with only fds 0-3 open: a nofile as low as 3 leaves the sync socket (already
	 * open) to report a failed execve on. */
	struct rlimit core = {0, 0};
	if (setrlimit(RLIMIT_CORE, &core) < 0)
		fail(sync_fd, "rlimit", errno, SB_EXIT_SETUP);
	if (c->nproc) {
		struct rlimit np = {c->nproc, c->nproc};
		if (setrlimit(RLIMIT_NPROC, &np) < 0)
			fail(sync_fd, "rlimit", errno, SB_EXIT_SETUP);
	}
	if (c->nofile_hard) {
		struct rlimit nf = {c->nofile_soft, c->nofile_hard};
		if (setrlimit(RLIMIT_NOFILE, &nf) < 0)
			fail(sync_fd, "rlimit", errno, SB_EXIT_SETUP);
	}
	umask(022);

	sigset_t none;
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		fail(sync_fd, "signals", errno, SB_EXIT_SETUP);

	r = exec_search(c->argv[0], c->argv, c->envp);
	fail(sync_fd, "exec", -r, r == -ENOENT ? 127 : 126);
}

/* The workload's stack while it shares init's memory (a static array: no allocation). */
static char workload_stack[128 * 1024] __attribute__((aligned(64)));

struct workload_args {
	const struct sb_child_config *c;
	int stdio[3];
	int sync_fd;
	int landlock_fd;
	int cwd_fd;
	uint64_t sig_not_default;
};

static int
workload_entry(void *arg)
{
	const struct workload_args *wa = arg;
	workload_main(wa->c, wa->stdio, wa->sync_fd, wa->landlock_fd, wa->cwd_fd,
	    wa->sig_not_default);
}

static _noreturn_ void
init_main(const struct sb_child_config *c, int sync_fd, pid_t workload)
{
	int status_fd = c->status_fd;
	int r;

	/* stdio on the cell's /dev/null: init must not hold the runner's terminal or pipes. */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		goto broken;
	for (int i = 0; i < 3; i++)
		if (dup2(null, i) < 0)
			goto broken;
	if (null > 2)
		close(null);

	/* Keep only the status eventfd, as fd 3, and the host uid's lock, as fd 4 (moved out of
	 * the way first); closing the sync socket lets the runner see EOF once the workload's
	 * execve succeeds. */
	int hold_fd = c->hold_fd;
	if (hold_fd >= 0 && hold_fd < 5 && (hold_fd = fcntl(hold_fd, F_DUPFD_CLOEXEC, 5)) < 0)
		goto broken;
	if (status_fd != 3) {
		if (dup3(status_fd, 3, O_CLOEXEC) < 0)
			goto broken;
		status_fd = 3;
	}
	if (sync_fd != 3)
		close(sync_fd);
	if (hold_fd >= 0) {
		if (dup3(hold_fd, 4, O_CLOEXEC) < 0)
			goto broken;
		(void)syscall(SYS_close_range, 5U, ~0U, 0U);
	} else
		(void)syscall(SYS_close_range, 4U, ~0U, 0U);

	sigset_t all;
	sigfillset(&all);
	/*
	 * The workload's wait status goes to the runner as soon as it ends: that is the end of
	 * the cell's top process. init stays while anything else of the cell is left (every
	 * orphan is its child), forwarding the runner's SIGTERM to it, so that what the
	 * workload left behind is stopped as on any backend: SIGTERM, the grace period, then
	 * SIGKILL (cgroup.kill, or init killed, which ends the pid namespace). With nothing
	 * left, init exits with the workload's code.
	 */
	bool reported = false;
	int code = 0;
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&all, &si);
		if (sig < 0)
			continue;
		if (sig == SIGCHLD) {
			int st, wst = 0;
			bool ended = false;
			pid_t p;
			while ((p = waitpid(-1, &st, WNOHANG)) > 0)
				if (p == workload && !reported) {
					ended = true;
					wst = st;
				}
			bool alone = p < 0 && errno == ECHILD;
			if (ended) {
				c->status->wait_status = wst;
				__atomic_store_n(&c->status->reported, 1, __ATOMIC_RELEASE);
				reported = true;
				code = WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + WTERMSIG(wst);
				/* Alone: our exit, right below, is the runner's one wake-up. */
				if (!alone) {
					uint64_t one = 1;
					(void)!write(status_fd, &one, sizeof(one));
				}
			}
			if (reported && alone)
				_exit(code);
			continue;
		}
		/* Forward what comes from outside the cell (the runner, the kernel) to all of it;
		 * a signal the workload sends to its init is not amplified. */
		if (si.si_pid == 0)
			(void)kill(-1, sig);
	}

broken:
	r = errno;
	report(sync_fd, "init", r);
	(void)kill(workload, SIGKILL);
	_exit(SB_EXIT_SETUP);
}

/*
 * /proc/<init>/cmdline, world-readable, would show the runner's argv (the spec's and the
 * events file's paths: our memory is a copy of the runner's). Overwrite that area in our
 * copy with SB_CHILD_INIT_NAME and zeros: a last byte of zero keeps the kernel to exactly
 * [arg_start, arg_end) (fields 48 and 49 of /proc/self/stat). No privilege is needed, where
 * PR_SET_MM_ARG_START would need CAP_SYS_RESOURCE in the host's user namespace. Best
 * effort, raw system calls only.
 */
static void
name_init(void)
{
	char buf[1024];
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return;
	/* After ") " comes field 3; arg_start is field 48, arg_end 49. */
	unsigned long field[2] = {0, 0};
	int k = 3;
	for (p++; *p && k <= 49; k++) {
		while (*p == ' ')
			p++;
		unsigned long v = 0;
		while (*p >= '0' && *p <= '9')
			v = v * 10 + (unsigned long)(*p++ - '0');
		if (k >= 48)
			field[k - 48] = v;
		while (*p && *p != ' ')
			p++;
	}
	unsigned long start = field[0], end = field[1];
	if (k <= 49 || start == 0 || end <= start || end - start > (1UL << 20))
		return;
	size_t len = end - start;
	char *area = (char *)start;
	memset(area, 0, len);
	size_t name_len = MIN(strlen(SB_CHILD_INIT_NAME), len - 1);
	memcpy(area, SB_CHILD_INIT_NAME, name_len);
}

void
sb_child_main(const struct sb_child_config *c)
{
	sigset_t all;
	const char *step;
	struct sb_child_go go = {0};
	int r;

	/* Signals wait for init's sigwaitinfo() (a pid-namespace init ignores unhandled ones). */
	sigfillset(&all);
	(void)sigprocmask(SIG_BLOCK, &all, NULL);
	/* init learns of the workload's end from SIGCHLD: never inherit it ignored (that would
	 * have the kernel reap the workload, status and all). */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	(void)sigaction(SIGCHLD, &dfl, NULL);

	/* The runner's end: with it open here, the runner's death would not be EOF. */
	close(c->runner_sync_fd);
	int sync_fd = fd_above_stdio(c->sync_fd);
	close_inherited(c, sync_fd);

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fail(sync_fd, "dumpable", errno, SB_EXIT_SETUP);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		fail(sync_fd, "pdeathsig", errno, SB_EXIT_SETUP);
	/* What ps and /proc/1/comm show, in the cell and on the host (15 characters at most). */
	(void)prctl(PR_SET_NAME, (unsigned long)SB_CHILD_INIT_NAME, 0, 0, 0);
	name_init();

	/* Into the v1 hierarchies first, before this process charges memory anywhere. */
	for (size_t i = 0; i < c->n_cgroup_fds; i++)
		if (write(c->cgroup_fds[i], "0", 1) < 0)
			fail(sync_fd, "cgroup", errno, SB_EXIT_SETUP);
	/* The other namespaces, owned by the cell's user namespace, while the runner works. A
	 * cgroup namespace made now is rooted at the cell's own cgroups: the cell sees "/". */
	if (unshare(c->unshare_flags | CLONE_NEWCGROUP) < 0)
		fail(sync_fd, "namespaces", errno, SB_EXIT_SETUP);
	/* Also while the runner works: the setup has every capability in its user namespace. */
	if ((r = limit_user_ns(false)) < 0)
		fail(sync_fd, "userns limits", -r, SB_EXIT_SETUP);

	/* The runner writes uid_map and gid_map, then says go. EOF: the runner is gone. */
	r = receive_go(sync_fd, &go);
	if (r == -EPIPE)
		_exit(SB_EXIT_SETUP);
	if (r < 0)
		fail(sync_fd, "sync", -r, SB_EXIT_SETUP);
	int landlock_fd = fd_above_stdio(go_fd(go.landlock));

	if (setresgid(c->gid, c->gid, c->gid) < 0)
		fail(sync_fd, "setresgid", errno, SB_EXIT_SETUP);
	if (setgroups(0, NULL) < 0)
		fail(sync_fd, "setgroups", errno, SB_EXIT_SETUP);
	if (setresuid(c->uid, c->uid, c->uid) < 0)
		fail(sync_fd, "setresuid", errno, SB_EXIT_SETUP);
	/* A credential change clears the parent-death signal: set it again. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		fail(sync_fd, "pdeathsig", errno, SB_EXIT_SETUP);
	if (setsid() < 0)
		fail(sync_fd, "setsid", errno, SB_EXIT_SETUP);

	if ((r = sb_view_attach(go_fd(go.root), attach_list, go.n_attach, &step)) < 0)
		fail(sync_fd, step, -r, SB_EXIT_SETUP);
	if ((r = limit_user_ns(true)) < 0)
		fail(sync_fd, "userns limits", -r, SB_EXIT_SETUP);
	if (c->send_mntns && (r = send_mntns(sync_fd)) < 0)
		fail(sync_fd, "mntns", -r, SB_EXIT_SETUP);
	if (c->hostname && sethostname(c->hostname, strlen(c->hostname)) < 0)
		fail(sync_fd, "hostname", errno, SB_EXIT_SETUP);
	if (c->loopback_up && (r = loopback_up()) < 0)
		fail(sync_fd, "loopback", -r, SB_EXIT_SETUP);

	/* Nothing privileged is left to do: neither init nor the workload keeps anything. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail(sync_fd, "no_new_privs", errno, SB_EXIT_SETUP);
	if ((r = sb_caps_drop_all()) < 0)
		fail(sync_fd, "capabilities", -r, SB_EXIT_SETUP);
	int cwd_fd = open_cwd(c->cwd);
	if (cwd_fd < 0)
		fail(sync_fd, "chdir", -cwd_fd, SB_EXIT_SETUP);
	cwd_fd = fd_above_stdio(cwd_fd);
	/*
	 * The filter goes on here, before the workload is cloned, so init and the workload
	 * share one (inherited, compiled once). What the workload still does before execve
	 * (setsid, fchdir, setrlimit, landlock_restrict_self, close_range) is not denied.
	 */
	if ((r = sb_seccomp_install_prog(sb_seccomp_program())) < 0)
		fail(sync_fd, "seccomp", -r, SB_EXIT_SETUP);

	/*
	 * The workload shares init's memory until its execve (vfork semantics: init waits), so
	 * no page table is copied. It only writes its own stack (workload_stack) and errno, and
	 * must not change anything that belongs to the memory (PR_SET_DUMPABLE stays 0 for
	 * init: a dumpable init could be read and written through /proc/1/mem).
	 */
	struct workload_args wa = {.c = c,
	    .stdio = {go_fd(go.stdio[0]), go_fd(go.stdio[1]), go_fd(go.stdio[2])},
	    .sync_fd = sync_fd,
	    .landlock_fd = landlock_fd,
	    .cwd_fd = cwd_fd,
	    .sig_not_default = go.sig_not_default};
	pid_t pid = clone(workload_entry, workload_stack + sizeof(workload_stack),
	    CLONE_VM | CLONE_VFORK | SIGCHLD, &wa);
	if (pid < 0)
		fail(sync_fd, "fork", errno, SB_EXIT_SETUP);
	if (landlock_fd >= 0)
		close(landlock_fd);
	close(cwd_fd);
	/* The workload has its own memory now (execve done, or it failed and exited). */
	wipe_runner_secrets(c);
	init_main(c, sync_fd, pid);
}
