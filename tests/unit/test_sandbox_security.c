/*
 * test_sandbox_security.c - the sandbox's seccomp filter, landlock ruleset and capability
 * drop, each applied in a forked child that then checks what a workload would see.
 *
 * Checks inside a child print what they got and what they wanted, then exit non-zero; the
 * parent asserts on the exit status. A child exits 77 when the kernel lacks the feature,
 * and the test is skipped. Must run as root (as the sandbox does), on Linux.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <linux/mount.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <linux/securebits.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <pty.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* cmocka needs setjmp.h, stdarg.h, stddef.h and stdint.h first. */
#include <cmocka.h>

#include "backend/sandbox/caps.h"
#include "backend/sandbox/landlock.h"
#include "backend/sandbox/seccomp.h"

#define EXIT_SKIP 77

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s (errno %d: %s)\n", __FILE__,      \
			    __LINE__, #cond, errno, strerror(errno));                              \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

/* The call must fail with exactly `want`; prints what it got otherwise. */
#define CHECK_ERRNO(call, want)                                                                    \
	do {                                                                                       \
		errno = 0;                                                                         \
		long _r = (long)(call);                                                            \
		int _e = errno;                                                                    \
		if (_r != -1 || _e != (want)) {                                                    \
			fprintf(stderr,                                                            \
			    "%s:%d: %s: got %ld errno %d (%s), want -1 errno %d (%s)\n", __FILE__, \
			    __LINE__, #call, _r, _e, strerror(_e), (want), strerror(want));        \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

#define CHECK_OK(call)                                                                             \
	do {                                                                                       \
		errno = 0;                                                                         \
		long _r = (long)(call);                                                            \
		if (_r < 0) {                                                                      \
			fprintf(stderr, "%s:%d: %s: got %ld errno %d (%s), want success\n",        \
			    __FILE__, __LINE__, #call, _r, errno, strerror(errno));                \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

/* Run fn(arg) in a forked child and return its wait status. */
static int
run_child(int (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn(arg));

	int status;
	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	return status;
}

static void
assert_child_ok(int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_SKIP)
		skip();
	if (WIFSIGNALED(status))
		fail_msg("child killed by signal %d", WTERMSIG(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Copy the line "key:\t<value>" of /proc/self/status (value only) into out. */
static int
status_field(const char *status, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);
	for (const char *line = status; line && *line; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			const char *v = line + klen + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			size_t n = strcspn(v, "\n");
			if (n >= size)
				return -ENOBUFS;
			memcpy(out, v, n);
			out[n] = '\0';
			return 0;
		}
	}
	return -ENOENT;
}

static int
read_self_status(char *buf, size_t size)
{
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, size - 1 - len);
		if (n < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return 0;
}

/* 0 when every capability set in a /proc/<pid>/status text is empty, else 1 with a message. */
static int
check_caps_zero(const char *status)
{
	static const char *const sets[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		char v[64];
		if (status_field(status, sets[i], v, sizeof(v)) < 0) {
			fprintf(stderr, "%s missing from status\n", sets[i]);
			return 1;
		}
		if (strcmp(v, "0000000000000000") != 0) {
			fprintf(stderr, "%s: got %s, want 0000000000000000\n", sets[i], v);
			return 1;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- seccomp */

/* What every cell gets: the program compiled into cellvisor (never freed). */
static struct sb_filter filter;

static int
setup_filter(void **state)
{
	(void)state;
	filter.prog = *sb_seccomp_program();
	return 0;
}

static int
teardown_filter(void **state)
{
	(void)state;
	filter = (struct sb_filter){{0}};
	return 0;
}

/* The program generated at build time is exactly what the rules in seccomp.c build now. */
static void
test_seccomp_program_matches_rules(void **state)
{
	(void)state;
	struct sb_filter built = {{0}};
	assert_int_equal(sb_seccomp_build(&built), 0);
	const struct sock_fprog *p = sb_seccomp_program();
	assert_non_null(p);
	assert_int_equal(p->len, built.prog.len);
	assert_memory_equal(p->filter, built.prog.filter, built.prog.len * sizeof(struct sock_filter));
	sb_seccomp_free(&built);
	assert_int_equal(sb_seccomp_install_prog(NULL), -EINVAL);
}

static void *
thread_main(void *arg)
{
	return arg;
}

/* A clone that the filter should refuse; if it does not, the copy exits at once. */
static long
try_clone(unsigned long flags)
{
	long r = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
	if (r == 0)
		_exit(0);
	if (r > 0)
		waitpid((pid_t)r, NULL, 0);
	return r;
}

static int
child_seccomp_denies(void *arg)
{
	const struct sb_filter *f = arg;
	int master, slave;
	char c = 'x';

	/* No controlling terminal: vhangup() must not reach the runner's tty should the
	 * filter fail. */
	CHECK(setsid() > 0);
	CHECK(openpty(&master, &slave, NULL, NULL, NULL) == 0);
	CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	CHECK(sb_seccomp_install(f) == 0);

	/* Mount family. Targets do not exist, so an unfiltered call fails differently. */
	CHECK_ERRNO(mount("none", "/nonexistent-sb-test", "tmpfs", 0, NULL), EPERM);
	CHECK_ERRNO(umount2("/nonexistent-sb-test", 0), EPERM);
	CHECK_ERRNO(syscall(SYS_pivot_root, "/nonexistent-a", "/nonexistent-b"), EPERM);
	CHECK_ERRNO(chroot("/nonexistent-sb-test"), EPERM);
	CHECK_ERRNO(syscall(SYS_fsopen, "tmpfs", 0), EPERM);
	CHECK_ERRNO(syscall(SYS_fspick, AT_FDCWD, "/nonexistent-sb-test", 0), EPERM);
	CHECK_ERRNO(syscall(SYS_open_tree, AT_FDCWD, "/nonexistent-sb-test", 0), EPERM);
	CHECK_ERRNO(syscall(SYS_move_mount, -1, "", -1, "", 0), EPERM);
	CHECK_ERRNO(syscall(SYS_mount_setattr, -1, "", 0, NULL, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_fsconfig, -1, 0, NULL, NULL, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_fsmount, -1, 0, 0), EPERM);
#ifdef __x86_64__
	CHECK_ERRNO(syscall(467 /* open_tree_attr */, AT_FDCWD, "/nonexistent-sb-test", 0, NULL, 0),
	    EPERM);
#endif

	/* Namespaces. */
	CHECK_ERRNO(unshare(CLONE_NEWUSER), EPERM);
	CHECK_ERRNO(unshare(CLONE_NEWNS | CLONE_NEWPID), EPERM);
	CHECK_ERRNO(unshare(CLONE_NEWTIME), EPERM);
	CHECK_ERRNO(try_clone(CLONE_NEWUSER), EPERM);
	CHECK_ERRNO(try_clone(CLONE_NEWNET), EPERM);
	CHECK_ERRNO(syscall(SYS_setns, -1, 0), EPERM);
	/* A too-small size: unfiltered, clone3 would fail EINVAL rather than fork. */
	struct clone_args ca = {.exit_signal = SIGCHLD};
	CHECK_ERRNO(syscall(SYS_clone3, &ca, (size_t)1), ENOSYS);
	/* Non-namespace unshare flags stay usable. */
	CHECK_OK(unshare(CLONE_FILES));

	/* Terminal injection: TIOCSTI and TIOCLINUX, also with garbage in the upper half. */
	CHECK_ERRNO(ioctl(slave, TIOCSTI, &c), EPERM);
	CHECK_ERRNO(syscall(SYS_ioctl, slave, (1UL << 32) | TIOCSTI, &c), EPERM);
	char sub = 6; /* TIOCL_GETSHIFTSTATE */
	CHECK_ERRNO(ioctl(slave, TIOCLINUX, &sub), EPERM);
	CHECK(isatty(slave)); /* other ioctls still work */

	/* Kernel surfaces. NULL or invalid arguments: unfiltered they fail with EFAULT/EINVAL. */
	CHECK_ERRNO(syscall(SYS_io_uring_setup, 1, NULL), EPERM);
	CHECK_ERRNO(syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_io_uring_register, -1, 0, NULL, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -1, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_add_key, "user", "sb", "x", 1, -1), EPERM);
	CHECK_ERRNO(syscall(SYS_request_key, "user", "sb", NULL, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_bpf, 0, NULL, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_userfaultfd, O_CLOEXEC), EPERM);
	CHECK_ERRNO(syscall(SYS_kexec_load, 0, 0, NULL, 0xdead0000UL), EPERM);
	CHECK_ERRNO(syscall(SYS_init_module, NULL, 0, ""), EPERM);
	CHECK_ERRNO(syscall(SYS_finit_module, -1, "", 0), EPERM);
	CHECK_ERRNO(syscall(SYS_delete_module, "sb_none", 0), EPERM);
	CHECK_ERRNO(syscall(SYS_reboot, 0, 0, 0, NULL), EPERM);
	CHECK_ERRNO(syscall(SYS_swapon, NULL, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_acct, NULL), EPERM);
	CHECK_ERRNO(syscall(SYS_settimeofday, NULL, NULL), EPERM);
	CHECK_ERRNO(syscall(SYS_clock_settime, CLOCK_REALTIME, NULL), EPERM);
	CHECK_ERRNO(syscall(SYS_syslog, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_vhangup), EPERM);
#ifdef __x86_64__
	CHECK_ERRNO(syscall(SYS_iopl, 4), EPERM);
	CHECK_ERRNO(syscall(SYS_modify_ldt, 0, NULL, 0), EPERM);
#endif

	/* Other processes. */
	CHECK_ERRNO(syscall(SYS_ptrace, PTRACE_ATTACH, INT_MAX, 0, 0), EPERM);
	char buf[4];
	struct iovec local = {buf, sizeof(buf)}, remote = {buf, sizeof(buf)};
	CHECK_ERRNO(process_vm_readv(getppid(), &local, 1, &remote, 1, 0), EPERM);
	CHECK_ERRNO(process_vm_writev(getppid(), &local, 1, &remote, 1, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_kcmp, getpid(), getppid(), 0, 0, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_pidfd_getfd, -1, 0, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_name_to_handle_at, AT_FDCWD, "/", NULL, NULL, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_open_by_handle_at, -1, NULL, 0), EPERM);

	/* personality: dangerous flags refused, also with garbage in the upper half; the
	 * 0xffffffff query and harmless values allowed. */
	CHECK_ERRNO(syscall(SYS_personality, ADDR_NO_RANDOMIZE), EPERM);
	CHECK_ERRNO(syscall(SYS_personality, READ_IMPLIES_EXEC), EPERM);
	CHECK_ERRNO(syscall(SYS_personality, MMAP_PAGE_ZERO | PER_LINUX32), EPERM);
	CHECK_ERRNO(syscall(SYS_personality, 0xfffffffeUL), EPERM);
	CHECK_ERRNO(syscall(SYS_personality, 0xffffffff00000000UL | ADDR_NO_RANDOMIZE), EPERM);
	CHECK(syscall(SYS_personality, 0xffffffffUL) == PER_LINUX);
	CHECK(syscall(SYS_personality, PER_LINUX) == PER_LINUX);
	return 0;
}

static void
test_seccomp_denies(void **state)
{
	(void)state;
	assert_child_ok(run_child(child_seccomp_denies, &filter));
}

static int
child_seccomp_allows(void *arg)
{
	const struct sb_filter *f = arg;
	CHECK(sb_seccomp_install(f) == 0);

	CHECK(getpid() > 0);
	int p[2];
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	CHECK(write(p[1], "ok", 2) == 2);
	char buf[2];
	CHECK(read(p[0], buf, 2) == 2 && memcmp(buf, "ok", 2) == 0);

	/* pthread_create tries clone3 first and must fall back to clone. */
	pthread_t t;
	void *ret = NULL;
	CHECK(pthread_create(&t, NULL, thread_main, (void *)p) == 0);
	CHECK(pthread_join(t, &ret) == 0 && ret == (void *)p);

	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(7);
	int status;
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 7);

	char st[8192], v[32];
	CHECK(read_self_status(st, sizeof(st)) == 0);
	CHECK(status_field(st, "Seccomp", v, sizeof(v)) == 0);
	if (strcmp(v, "2") != 0) {
		fprintf(stderr, "Seccomp: got %s, want 2\n", v);
		return 1;
	}
	CHECK(status_field(st, "NoNewPrivs", v, sizeof(v)) == 0 && strcmp(v, "1") == 0);
	return 0;
}

static void
test_seccomp_allows_ordinary_syscalls(void **state)
{
	(void)state;
	assert_child_ok(run_child(child_seccomp_allows, &filter));
}

#ifdef __x86_64__
static int
child_int80(void *arg)
{
	const struct sb_filter *f = arg;
	if (f)
		CHECK(sb_seccomp_install(f) == 0);
	long ret;
	/* getpid through the i386 table: 20. Under the filter it must not come back. */
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
	if (!f)
		return ret == getpid() ? 0 : 1;
	fprintf(stderr, "int 0x80 getpid returned %ld\n", ret);
	return 1;
}

static void
test_seccomp_kills_i386_abi(void **state)
{
	(void)state;
	/* Without IA32 emulation int 0x80 faults (SIGSEGV) before seccomp sees it. */
	int status = run_child(child_int80, NULL);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "no i386 syscall entry on this kernel: skipping\n");
		skip();
	}
	status = run_child(child_int80, &filter);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

static int
child_x32(void *arg)
{
	const struct sb_filter *f = arg;
	CHECK(sb_seccomp_install(f) == 0);
	long ret = syscall(0x40000000L | SYS_getpid);
	fprintf(stderr, "x32 getpid returned %ld\n", ret);
	return 1;
}

static void
test_seccomp_kills_x32_abi(void **state)
{
	(void)state;
	int status = run_child(child_x32, &filter);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}
#endif

static int
child_unaudited(void *arg)
{
	const struct sb_filter *f = arg;
	CHECK(sb_seccomp_install(f) == 0);
	/* The boundary is faccessat2 (439) in this filter: it and everything above fail with
	 * ENOSYS, everything below still works. */
	CHECK_ERRNO(syscall(SYS_faccessat2, AT_FDCWD, "/", F_OK, 0), ENOSYS);
	CHECK_ERRNO(syscall(SYS_epoll_pwait2, -1, NULL, 0, NULL, NULL, 0), ENOSYS);
	CHECK_ERRNO(syscall(SYS_mount_setattr, -1, "", 0, NULL, 0), ENOSYS); /* prefix first */
	CHECK_ERRNO(syscall(500), ENOSYS);
	CHECK_ERRNO(syscall(SYS_pidfd_getfd, -1, 0, 0), EPERM); /* 438: below, still denied */
	CHECK(getpid() > 0);
	CHECK(syscall(SYS_personality, 0xffffffffUL) == PER_LINUX);
	CHECK_ERRNO(syscall(SYS_personality, ADDR_NO_RANDOMIZE), EPERM);
	CHECK_ERRNO(mount("none", "/nonexistent-sb-test", "tmpfs", 0, NULL), EPERM);
	return 0;
}

static void
test_seccomp_unaudited_numbers(void **state)
{
	(void)state;
	struct sb_filter f = {0};
	assert_int_equal(sb_seccomp_build_until(&f, SYS_faccessat2), 0);
	assert_child_ok(run_child(child_unaudited, &f));
	sb_seccomp_free(&f);
	sb_seccomp_free(&f); /* idempotent */
	sb_seccomp_free(NULL);
	assert_null(f.prog.filter);

	/* The default boundary leaves faccessat2 alone. */
	assert_int_equal(syscall(SYS_faccessat2, AT_FDCWD, "/", F_OK, 0), 0);
}

static void
test_seccomp_install_rejects_empty(void **state)
{
	(void)state;
	struct sb_filter empty = {0};
	assert_int_equal(sb_seccomp_install(&empty), -EINVAL);
	assert_int_equal(sb_seccomp_install(NULL), -EINVAL);
	assert_int_equal(sb_seccomp_build(NULL), -EINVAL);
	assert_true(filter.prog.len > 0);
	assert_true(filter.prog.len <= BPF_MAXINSNS);
}

/*
 * Non-namespaced socket families and fanotify: AF_VSOCK reaches the hypervisor and the
 * host's vsock ports from any network namespace; fanotify groups are charged to the user
 * namespace's creator (host root).
 */
static int
child_seccomp_vsock_fanotify(void *arg)
{
	const struct sb_filter *f = arg;
	CHECK(sb_seccomp_install(f) == 0);
	CHECK_ERRNO(socket(AF_VSOCK, SOCK_STREAM, 0), EAFNOSUPPORT);
	CHECK_ERRNO(socket(AF_VSOCK, SOCK_DGRAM | SOCK_CLOEXEC, 0), EAFNOSUPPORT);
	/* The domain is an int: garbage in the upper half is ignored by the kernel. */
	CHECK_ERRNO(syscall(SYS_socket, (1UL << 32) | AF_VSOCK, SOCK_STREAM, 0), EAFNOSUPPORT);
	CHECK_ERRNO(syscall(SYS_socketpair, AF_VSOCK, SOCK_STREAM, 0, NULL), EAFNOSUPPORT);
	CHECK_ERRNO(syscall(SYS_fanotify_init, 0x200 /* FAN_REPORT_FID */, 0), EPERM);
	/* Other families stay. */
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(s >= 0);
	close(s);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(s >= 0);
	close(s);
	return 0;
}

static void
test_seccomp_vsock_fanotify(void **state)
{
	(void)state;
	assert_child_ok(run_child(child_seccomp_vsock_fanotify, &filter));
}

#define SB_NR_FCHMODAT2 452 /* Linux 6.6 */

struct suid_paths {
	char dir[64];
};

static int
child_seccomp_suid_sgid(void *arg)
{
	const struct suid_paths *p = arg;
	char f[128], path[128];
	snprintf(f, sizeof(f), "%s/f", p->dir);
	int fd = open(f, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK(sb_seccomp_install(&filter) == 0);

	/* Mode changes: any S_ISUID or S_ISGID bit is refused, the rest is allowed. */
	CHECK_OK(chmod(f, 0755));
	CHECK_ERRNO(chmod(f, 04755), EPERM);
	CHECK_ERRNO(chmod(f, 02755), EPERM);
	CHECK_ERRNO(chmod(f, 06755), EPERM);
	CHECK_ERRNO(syscall(SYS_chmod, f, (1UL << 32) | 04755), EPERM);
	CHECK_OK(fchmod(fd, 0700));
	CHECK_ERRNO(fchmod(fd, 04700), EPERM);
	CHECK_ERRNO(fchmod(fd, 02700), EPERM);
	CHECK_ERRNO(syscall(SYS_fchmodat, AT_FDCWD, f, 04755), EPERM);
	CHECK_ERRNO(syscall(SYS_fchmodat, AT_FDCWD, f, 02755), EPERM);
	CHECK_OK(syscall(SYS_fchmodat, AT_FDCWD, f, 0644));
	CHECK_ERRNO(syscall(SB_NR_FCHMODAT2, AT_FDCWD, f, 04755, 0), EPERM);
	CHECK_ERRNO(syscall(SB_NR_FCHMODAT2, AT_FDCWD, f, 02755, 0), EPERM);

	/* Creating files: O_CREAT and O_TMPFILE with those bits, creat, mknod. */
	snprintf(path, sizeof(path), "%s/c", p->dir);
	CHECK_ERRNO(syscall(SYS_open, path, O_WRONLY | O_CREAT, 04755), EPERM);
	CHECK_ERRNO(syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_EXCL, 02755), EPERM);
	CHECK_ERRNO(syscall(SYS_creat, path, 04755), EPERM);
	CHECK_ERRNO(syscall(SYS_openat, AT_FDCWD, p->dir, O_WRONLY | O_TMPFILE, 04755), EPERM);
	CHECK_ERRNO(syscall(SYS_open, p->dir, O_WRONLY | O_TMPFILE, 02755), EPERM);
	CHECK_ERRNO(mknod(path, S_IFREG | 04755, 0), EPERM);
	CHECK_ERRNO(mknodat(AT_FDCWD, path, S_IFREG | 02755, 0), EPERM);
	CHECK(access(path, F_OK) < 0 && errno == ENOENT);
	/* Without O_CREAT the mode is ignored, and so are the bits. */
	int rfd = (int)syscall(SYS_openat, AT_FDCWD, f, O_RDONLY | O_CLOEXEC, 04755);
	CHECK(rfd >= 0);
	close(rfd);
	rfd = (int)syscall(SYS_open, path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	CHECK(rfd >= 0);
	close(rfd);

	/* Directories: setgid directories are refused too (as systemd's RestrictSUIDSGID). */
	snprintf(path, sizeof(path), "%s/d", p->dir);
	CHECK_ERRNO(mkdir(path, 02755), EPERM);
	CHECK_ERRNO(mkdirat(AT_FDCWD, path, 04755), EPERM);
	CHECK_OK(mkdir(path, 0755));

	/* openat2 hides its mode in a struct: ENOSYS, so callers fall back to openat. */
	struct open_how how = {.flags = O_RDONLY | O_CLOEXEC};
	CHECK_ERRNO(syscall(SYS_openat2, AT_FDCWD, f, &how, sizeof(how)), ENOSYS);

	struct stat st;
	CHECK(stat(f, &st) == 0);
	CHECK(!(st.st_mode & (S_ISUID | S_ISGID)));
	return 0;
}

static void
test_seccomp_suid_sgid(void **state)
{
	(void)state;
	struct suid_paths p;
	snprintf(p.dir, sizeof(p.dir), "/tmp/sb-suid-XXXXXX");
	assert_non_null(mkdtemp(p.dir));
	int status = run_child(child_seccomp_suid_sgid, &p);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", p.dir);
	assert_int_equal(system(cmd), 0);
	assert_child_ok(status);
}

/* ---------------------------------------------------------------- capabilities */

static int
child_caps_drop(void *arg)
{
	(void)arg;
	CHECK(sb_caps_drop_all() == 0);
	/* Idempotent: the second call has no CAP_SETPCAP left and must still succeed. */
	CHECK(sb_caps_drop_all() == 0);

	char st[8192];
	CHECK(read_self_status(st, sizeof(st)) == 0);
	if (check_caps_zero(st))
		return 1;

	int bits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	int want = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
	    SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
	    SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
	if ((bits & want) != want || (bits & SECBIT_KEEP_CAPS)) {
		fprintf(stderr, "securebits: got %#x, want %#x set and KEEP_CAPS clear\n", bits,
		    want);
		return 1;
	}
	/* Locked: cannot be cleared again. */
	CHECK_ERRNO(prctl(PR_SET_SECUREBITS, 0, 0, 0, 0), EPERM);
	CHECK_ERRNO(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 0 /* CAP_CHOWN */, 0, 0), EPERM);
	return 0;
}

static void
test_caps_drop_all(void **state)
{
	(void)state;
	assert_child_ok(run_child(child_caps_drop, NULL));
}

/* The privileged-uid-change order from caps.h. */
static int
child_caps_drop_with_setuid(void *arg)
{
	(void)arg;
	CHECK(sb_caps_drop_bounding() == 0);
	CHECK(setgroups(0, NULL) == 0);
	CHECK(setresgid(65534, 65534, 65534) == 0);
	CHECK(setresuid(65534, 65534, 65534) == 0);
	CHECK(sb_caps_drop_all() == 0);

	char st[8192];
	CHECK(read_self_status(st, sizeof(st)) == 0);
	if (check_caps_zero(st))
		return 1;
	CHECK(getuid() == 65534 && geteuid() == 65534);
	CHECK_ERRNO(setuid(0), EPERM);
	return 0;
}

static void
test_caps_drop_with_setuid(void **state)
{
	(void)state;
	assert_child_ok(run_child(child_caps_drop_with_setuid, NULL));
}

/*
 * What matters is the workload after execve as uid 0: without the bounding set and
 * SECBIT_NOROOT, a uid-0 exec would get a full permitted set back.
 */
static void
test_caps_zero_after_exec(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (dup2(p[1], 1) < 0 || sb_caps_drop_all() < 0)
			_exit(1);
		execl("/bin/cat", "cat", "/proc/self/status", (char *)NULL);
		_exit(127);
	}
	close(p[1]);

	char st[16384];
	size_t len = 0;
	ssize_t n;
	while ((n = read(p[0], st + len, sizeof(st) - 1 - len)) > 0)
		len += (size_t)n;
	st[len] = '\0';
	close(p[0]);

	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_child_ok(status);
	char uid[64];
	assert_int_equal(status_field(st, "Uid", uid, sizeof(uid)), 0);
	assert_int_equal(strtol(uid, NULL, 10), 0); /* still uid 0, yet no capabilities */
	assert_int_equal(check_caps_zero(st), 0);
}

/* ---------------------------------------------------------------- landlock */

struct ll_fixture {
	char base[64];
	char ro[96], ro_file[128], rw[96], outside[96];
	char abstract_name[64];
	int listen_fd;
};

static int
setup_landlock(void **state)
{
	struct ll_fixture *fx = calloc(1, sizeof(*fx));
	if (!fx)
		return -1;
	strcpy(fx->base, "/tmp/sb-landlock-XXXXXX");
	if (!mkdtemp(fx->base))
		return -1;
	snprintf(fx->ro, sizeof(fx->ro), "%s/ro", fx->base);
	snprintf(fx->ro_file, sizeof(fx->ro_file), "%s/ro/file", fx->base);
	snprintf(fx->rw, sizeof(fx->rw), "%s/rw", fx->base);
	snprintf(fx->outside, sizeof(fx->outside), "%s/outside", fx->base);
	if (mkdir(fx->ro, 0755) < 0 || mkdir(fx->rw, 0755) < 0 || mkdir(fx->outside, 0755) < 0)
		return -1;
	int fd = open(fx->ro_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "hello", 5) != 5)
		return -1;
	close(fd);

	/* An abstract unix listener outside the child's landlock domain. */
	fx->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(fx->abstract_name, sizeof(fx->abstract_name), "sb-landlock-%d", (int)getpid());
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path + 1, fx->abstract_name, strlen(fx->abstract_name));
	socklen_t salen =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(fx->abstract_name));
	if (fx->listen_fd < 0 || bind(fx->listen_fd, (struct sockaddr *)&sa, salen) < 0 ||
	    listen(fx->listen_fd, 4) < 0)
		return -1;

	*state = fx;
	return 0;
}

static int
teardown_landlock(void **state)
{
	struct ll_fixture *fx = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->base);
	if (system(cmd) != 0)
		return -1;
	close(fx->listen_fd);
	free(fx);
	return 0;
}

static int
child_landlock(void *arg)
{
	const struct ll_fixture *fx = arg;
	int abi = sb_landlock_abi();
	if (abi < 1) {
		fprintf(stderr, "landlock unavailable: skipping\n");
		return EXIT_SKIP;
	}

	char new_ro[160], new_rw[160], sub_rw[160], moved_rw[160], outside_file[160];
	snprintf(new_ro, sizeof(new_ro), "%s/new", fx->ro);
	snprintf(new_rw, sizeof(new_rw), "%s/new", fx->rw);
	snprintf(sub_rw, sizeof(sub_rw), "%s/sub", fx->rw);
	snprintf(moved_rw, sizeof(moved_rw), "%s/sub/moved", fx->rw);
	snprintf(outside_file, sizeof(outside_file), "%s/file", fx->outside);

	const char *ro[] = {fx->ro, "/nonexistent-sb-landlock", NULL};
	const char *rw[] = {fx->rw, "/dev/null", NULL};
	struct sb_landlock_rules rules = {.read_only = ro, .read_write = rw};

	int ruleset = sb_landlock_build(&rules);
	if (ruleset < 0) {
		fprintf(stderr, "sb_landlock_build: %s\n", strerror(-ruleset));
		return 1;
	}
	CHECK(fcntl(ruleset, F_GETFD) == FD_CLOEXEC);
	int r = sb_landlock_apply(ruleset);
	if (r < 0) {
		fprintf(stderr, "sb_landlock_apply: %s\n", strerror(-r));
		return 1;
	}
	close(ruleset);

	/* Read-only directory: reads work, every kind of write fails EACCES. */
	int fd = open(fx->ro_file, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	char buf[8] = {0};
	CHECK(read(fd, buf, sizeof(buf)) == 5 && memcmp(buf, "hello", 5) == 0);
	close(fd);
	CHECK_ERRNO(open(fx->ro_file, O_WRONLY | O_CLOEXEC), EACCES);
	CHECK_ERRNO(open(new_ro, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), EACCES);
	CHECK_ERRNO(mkdir(new_ro, 0755), EACCES);
	CHECK_ERRNO(unlink(fx->ro_file), EACCES);
	if (abi >= 3)
		CHECK_ERRNO(truncate(fx->ro_file, 0), EACCES);

	/* Read-write directory: create, write, mkdir, rename within it, remove. */
	fd = open(new_rw, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK(write(fd, "data", 4) == 4);
	close(fd);
	CHECK_OK(truncate(new_rw, 1));
	CHECK_OK(mkdir(sub_rw, 0755));
	if (abi >= 2)
		CHECK_OK(rename(new_rw, moved_rw)); /* REFER: across directories */
	else
		CHECK_OK(rename(new_rw, moved_rw) == 0 || errno == EXDEV ? 0 : -1);

	/* A file rule: /dev/null as a shell opens it for `>/dev/null`. */
	fd = open("/dev/null", O_WRONLY | O_TRUNC | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(write(fd, "x", 1) == 1);
	CHECK(!isatty(fd));
	close(fd);

	/* Outside every rule: nothing. */
	CHECK_ERRNO(open(fx->outside, O_RDONLY | O_DIRECTORY | O_CLOEXEC), EACCES);
	CHECK_ERRNO(open(outside_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), EACCES);
	CHECK_ERRNO(open("/etc/passwd", O_RDONLY | O_CLOEXEC), EACCES);

	/* Scoping (ABI 6): no signals and no abstract-socket connects out of the domain. */
	if (abi >= 6) {
		CHECK_ERRNO(kill(getppid(), 0), EPERM);
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CHECK(s >= 0);
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		memcpy(sa.sun_path + 1, fx->abstract_name, strlen(fx->abstract_name));
		socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
		    strlen(fx->abstract_name));
		CHECK_ERRNO(connect(s, (struct sockaddr *)&sa, salen), EPERM);
		close(s);
	}
	return 0;
}

static void
test_landlock_ro_rw(void **state)
{
	assert_child_ok(run_child(child_landlock, *state));
}

/* Rules added in a second step (the child's fresh mounts) count as much as the first. */
static int
child_landlock_add_rules(void *arg)
{
	const struct ll_fixture *fx = arg;
	if (sb_landlock_abi() < 1)
		return EXIT_SKIP;

	const char *ro[] = {fx->ro, NULL};
	struct sb_landlock_rules first = {.read_only = ro};
	int ruleset = sb_landlock_build(&first);
	CHECK(ruleset >= 0);

	const char *rw[] = {fx->outside, NULL};
	const char *ro2[] = {"/etc/passwd", NULL}; /* a file with read-only rights */
	struct sb_landlock_rules second = {.read_only = ro2, .read_write = rw};
	CHECK(sb_landlock_add_rules(ruleset, &second) == 2);
	CHECK(sb_landlock_apply(ruleset) == 0);

	char f[160];
	snprintf(f, sizeof(f), "%s/later", fx->outside);
	int fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	close(fd);
	fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	close(fd);
	CHECK_ERRNO(open("/etc/passwd", O_WRONLY | O_CLOEXEC), EACCES);
	CHECK_ERRNO(open(fx->rw, O_RDONLY | O_DIRECTORY | O_CLOEXEC), EACCES);
	return 0;
}

static void
test_landlock_add_rules(void **state)
{
	assert_child_ok(run_child(child_landlock_add_rules, *state));
}

/*
 * The sandbox makes rules from detached mounts ("/proc/self/fd/N" of an open_tree() clone)
 * and then moves them into place: the rule must hold on the moved tree. A rule on the
 * mount point underneath does not (landlock skips covered directories); that is why
 * landlock.h tells the caller to use the tree's fd.
 */
static int
child_landlock_detached_tree(void *arg)
{
	const struct ll_fixture *fx = arg;
	if (sb_landlock_abi() < 1)
		return EXIT_SKIP;

	char mp[160], mp_file[192];
	snprintf(mp, sizeof(mp), "%s/mp", fx->base);
	snprintf(mp_file, sizeof(mp_file), "%s/mp/file", fx->base);
	CHECK(unshare(CLONE_NEWNS) == 0);
	CHECK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
	CHECK(mkdir(mp, 0755) == 0 || errno == EEXIST);

	int mp_fd = open(mp, O_PATH | O_CLOEXEC);
	CHECK(mp_fd >= 0);
	int tree =
	    (int)syscall(SYS_open_tree, AT_FDCWD, fx->ro, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	CHECK(tree >= 0);
	char tree_path[32], mp_path[32];
	snprintf(tree_path, sizeof(tree_path), "/proc/self/fd/%d", tree);
	snprintf(mp_path, sizeof(mp_path), "/proc/self/fd/%d", mp_fd);

	const char *ro[] = {tree_path, NULL};
	const char *rw[] = {mp_path, NULL}; /* would allow writes, were it not covered */
	struct sb_landlock_rules rules = {.read_only = ro, .read_write = rw};
	int ruleset = sb_landlock_build(&rules);
	CHECK(ruleset >= 0);
	CHECK(syscall(SYS_move_mount, tree, "", AT_FDCWD, mp, MOVE_MOUNT_F_EMPTY_PATH) == 0);
	CHECK(sb_landlock_apply(ruleset) == 0);

	int fd = open(mp_file, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	close(fd);
	CHECK_ERRNO(open(mp_file, O_WRONLY | O_CLOEXEC), EACCES);
	return 0;
}

static void
test_landlock_detached_tree(void **state)
{
	assert_child_ok(run_child(child_landlock_detached_tree, *state));
}

static void
test_landlock_limits(void **state)
{
	(void)state;
	if (sb_landlock_abi() < 1)
		skip();

	static const char *many[SB_LANDLOCK_MAX_RULES + 2];
	for (size_t i = 0; i < SB_LANDLOCK_MAX_RULES + 1; i++)
		many[i] = "/nonexistent-sb-landlock";
	struct sb_landlock_rules rules = {.read_only = many};
	assert_int_equal(sb_landlock_build(&rules), -E2BIG);

	int fd = sb_landlock_build(NULL);
	assert_true(fd >= 0);
	assert_int_equal(sb_landlock_add_rules(fd, NULL), 0);
	close(fd);
	assert_int_equal(sb_landlock_add_rules(-1, &rules), -EBADF);
	assert_int_equal(sb_landlock_apply(-1), -EBADF);
}

int
main(void)
{
	if (geteuid() != 0) {
		fprintf(stderr,
		    "test_sandbox_security: needs root (capabilities, namespaces): "
		    "skipping\n");
		return EXIT_SKIP;
	}

	const struct CMUnitTest seccomp_tests[] = {
	    cmocka_unit_test(test_seccomp_program_matches_rules),
	    cmocka_unit_test(test_seccomp_denies),
	    cmocka_unit_test(test_seccomp_allows_ordinary_syscalls),
#ifdef __x86_64__
	    cmocka_unit_test(test_seccomp_kills_i386_abi),
	    cmocka_unit_test(test_seccomp_kills_x32_abi),
#endif
	    cmocka_unit_test(test_seccomp_unaudited_numbers),
	    cmocka_unit_test(test_seccomp_install_rejects_empty),
	    cmocka_unit_test(test_seccomp_vsock_fanotify),
	    cmocka_unit_test(test_seccomp_suid_sgid),
	};
	const struct CMUnitTest caps_tests[] = {
	    cmocka_unit_test(test_caps_drop_all),
	    cmocka_unit_test(test_caps_drop_with_setuid),
	    cmocka_unit_test(test_caps_zero_after_exec),
	};
	const struct CMUnitTest landlock_tests[] = {
	    cmocka_unit_test(test_landlock_ro_rw),
	    cmocka_unit_test(test_landlock_add_rules),
	    cmocka_unit_test(test_landlock_detached_tree),
	    cmocka_unit_test(test_landlock_limits),
	};

	int failed = 0;
	failed +=
	    cmocka_run_group_tests_name("seccomp", seccomp_tests, setup_filter, teardown_filter);
	failed += cmocka_run_group_tests_name("caps", caps_tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("landlock", landlock_tests, setup_landlock,
	    teardown_landlock);
	return failed ? 1 : 0;
}
