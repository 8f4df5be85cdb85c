#include "backend/spawn.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/openat2.h>
#include <linux/sched.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/macro.h"

int
spawn_resolve(const char *name, const char *path, char *buf, size_t size)
{
	int err = -ENOENT;

	if (!*name)
		return -ENOENT;
	if (strchr(name, '/')) {
		if (strlen(name) >= size)
			return -ENAMETOOLONG;
		strcpy(buf, name);
		return 0;
	}
	if (!path)
		path = SPAWN_DEFAULT_PATH;
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		size_t dl = (size_t)(end - p);
		int n = dl ? snprintf(buf, size, "%.*s/%s", (int)dl, p, name)
		           : snprintf(buf, size, "%s", name);
		if (n > 0 && (size_t)n < size) {
			if (access(buf, X_OK) == 0)
				return 0;
			if (errno == EACCES && access(buf, F_OK) == 0)
				err = -EACCES;
		}
		if (!*end)
			break;
		p = end;
	}
	return err;
}

pid_t
spawn_clone(unsigned long flags, int cgroup_fd, int *ret_pidfd, bool *ret_into_cgroup)
{
	int pidfd = -1;
	struct clone_args args = {
	    .flags = flags | CLONE_PIDFD,
	    .pidfd = (uint64_t)(uintptr_t)&pidfd,
	    .exit_signal = SIGCHLD,
	};
	if (cgroup_fd >= 0) {
		args.flags |= CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)cgroup_fd;
	}
	/* Set before the clone so the child sees it too: it must not join v2 again (a write
	 * to cgroup.procs can wait for an RCU grace period, milliseconds). */
	*ret_into_cgroup = cgroup_fd >= 0;
	long pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0 && cgroup_fd >= 0 && errno != ENOSYS) {
		/* Some cgroups refuse CLONE_INTO_CGROUP (e.g. v2 domain rules); join later. */
		args.flags &= ~(uint64_t)CLONE_INTO_CGROUP;
		args.cgroup = 0;
		*ret_into_cgroup = false;
		pid = syscall(SYS_clone3, &args, sizeof(args));
		cgroup_fd = -1;
	}
	if (pid < 0 && errno == ENOSYS) {
		/* Namespaces need clone3 here; plain children fall back to fork(). */
		if (flags)
			return -ENOSYS;
		*ret_into_cgroup = false;
		pid = fork();
		if (pid == 0)
			return 0;
		if (pid > 0) {
			pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
			if (pidfd < 0) {
				int e = errno;
				kill((pid_t)pid, SIGKILL);
				(void)waitpid((pid_t)pid, NULL, 0);
				return -e;
			}
		}
		cgroup_fd = -1;
	}
	if (pid < 0)
		return -errno;
	if (pid == 0)
		return 0;
	*ret_pidfd = pidfd;
	return (pid_t)pid;
}

void
spawn_child_fail(int errfd, const char *step, int error)
{
	struct spawn_report rep = {.error = error};
	size_t n = strlen(step);
	if (n >= sizeof(rep.step))
		n = sizeof(rep.step) - 1;
	memcpy(rep.step, step, n);
	(void)!write(errfd, &rep, sizeof(rep));
	_exit(127);
}

int
spawn_read_report(int errfd, struct spawn_report *ret)
{
	for (;;) {
		ssize_t n = read(errfd, ret, sizeof(*ret));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		if (n != (ssize_t)sizeof(*ret))
			return -EIO;
		ret->step[sizeof(ret->step) - 1] = '\0';
		return 1;
	}
}

int
spawn_open_as(uid_t uid, gid_t gid, int dirfd, const char *path, const struct open_how *how,
    int *ret_fd)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	_cleanup_close_ int parent_end = sv[0];
	_cleanup_close_ int child_end = sv[1];

	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* Only syscalls from here on: the parent's heap is not ours to use. */
		int result = 0, fd = -1;
		if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			result = errno;
		else {
			fd = (int)syscall(SYS_openat2, dirfd, path, how, sizeof(*how));
			if (fd < 0)
				result = errno;
		}
		char cbuf[CMSG_SPACE(sizeof(int))] = {0};
		struct iovec iov = {.iov_base = &result, .iov_len = sizeof(result)};
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
		if (fd >= 0) {
			msg.msg_control = cbuf;
			msg.msg_controllen = sizeof(cbuf);
			struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		}
		_exit(sendmsg(sv[1], &msg, MSG_NOSIGNAL) < 0 ? 1 : 0);
	}
	child_end = safe_close(child_end);

	int result = EIO, fd = -1;
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = &result, .iov_len = sizeof(result)};
	struct msghdr msg = {.msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = cbuf,
	    .msg_controllen = sizeof(cbuf)};
	/*
	 * Bounded: the child runs as uid, whose owner may stop it (SIGSTOP) before it answers.
	 * Past SPAWN_OPEN_AS_TIMEOUT_MS it is killed (SIGKILL ends a stopped process too).
	 */
	ssize_t n = -1;
	struct pollfd pfd = {.fd = parent_end, .events = POLLIN};
	int k;
	do
		k = poll(&pfd, 1, SPAWN_OPEN_AS_TIMEOUT_MS);
	while (k < 0 && errno == EINTR);
	if (k > 0)
		do
			n = recvmsg(parent_end, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
	if (k == 0)
		result = ETIMEDOUT;
	if (n == (ssize_t)sizeof(result)) {
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
				memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	} else if (result != ETIMEDOUT)
		result = EIO;
	/* Ours and not yet collected, so the pid is still its: it may be stopped before its
	 * answer or its _exit(), and waitpid() must not wait for that. */
	(void)kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (fd >= 0 && result == 0) {
		*ret_fd = fd;
		return 0;
	}
	safe_close(fd);
	return -(result ? result : EIO);
}
