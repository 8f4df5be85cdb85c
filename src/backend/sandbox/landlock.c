/*
 * landlock.c - see landlock.h. Raw syscalls only (glibc 2.36 has no landlock wrappers), so
 * that the child can call any of this between fork and execve.
 */
#include "backend/sandbox/landlock.h"

#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <linux/landlock.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include "base/macro.h"

/* The build machine's headers (linux-libc-dev 6.1) stop at ABI 2. */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#endif
#ifndef LANDLOCK_SCOPE_SIGNAL
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif

/*
 * Our own copy of struct landlock_ruleset_attr as of ABI 6: old headers lack the last two
 * fields. The kernel takes the size we pass, so an older kernel sees only what it knows.
 */
struct sb_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

#define ACCESS_FS_V1                                                                               \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |                              \
	    LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |                           \
	    LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |                       \
	    LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |                           \
	    LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |                           \
	    LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |                         \
	    LANDLOCK_ACCESS_FS_MAKE_SYM)

/* Rights that make sense on a non-directory; landlock_add_rule() rejects the others. */
#define ACCESS_FILE                                                                                \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |                              \
	    LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |                           \
	    LANDLOCK_ACCESS_FS_IOCTL_DEV)

#define ACCESS_READ                                                                                \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)

int
sb_landlock_abi(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	/* ENOSYS: not built in; EOPNOTSUPP: built in but disabled at boot. */
	return abi < 0 ? 0 : (int)abi;
}

static uint64_t
handled_fs(int abi)
{
	uint64_t access = ACCESS_FS_V1;
	if (abi >= 2)
		access |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		access |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		access |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return access;
}

/* 1 when a rule was added, 0 when the path does not exist, or -errno. */
static int
add_path(int ruleset_fd, const char *path, uint64_t access)
{
	/* Follow symlinks: the rule must be on what the path names, not on the link. */
	_cleanup_close_ int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;

	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		access &= ACCESS_FILE;

	struct landlock_path_beneath_attr attr = {
	    .allowed_access = access,
	    .parent_fd = fd,
	};
	if (syscall(SYS_landlock_add_rule, ruleset_fd, LANDLOCK_RULE_PATH_BENEATH, &attr, 0) < 0)
		return -errno;
	return 1;
}

static int
add_list(int ruleset_fd, const char *const *paths, uint64_t access, size_t *count)
{
	int added = 0;

	for (size_t i = 0; paths && paths[i]; i++) {
		if (++*count > SB_LANDLOCK_MAX_RULES)
			return -E2BIG;
		int r = add_path(ruleset_fd, paths[i], access);
		if (r < 0)
			return r;
		added += r;
	}
	return added;
}

int
sb_landlock_add_rules(int ruleset_fd, const struct sb_landlock_rules *rules)
{
	if (ruleset_fd < 0)
		return -EBADF;
	if (!rules)
		return 0;

	int abi = sb_landlock_abi();
	if (abi <= 0)
		return -EOPNOTSUPP;
	/* A rule may only grant rights the ruleset handles, so mask by what this ABI has. */
	uint64_t all = handled_fs(abi);
	size_t count = 0;

	int ro = add_list(ruleset_fd, rules->read_only, ACCESS_READ & all, &count);
	if (ro < 0)
		return ro;
	int rw = add_list(ruleset_fd, rules->read_write, all, &count);
	if (rw < 0)
		return rw;
	return ro + rw;
}

int
sb_landlock_build(const struct sb_landlock_rules *rules)
{
	int abi = sb_landlock_abi();
	if (abi <= 0)
		return -EOPNOTSUPP;

	struct sb_ruleset_attr attr = {.handled_access_fs = handled_fs(abi)};
	size_t size = sizeof(attr.handled_access_fs);
	if (abi >= 6) {
		/* No abstract-socket connects or signals out of the cell's domain: the
		 * CVE-2020-15257 class (a host abstract socket as a control channel) and
		 * signals to the runner, even if a namespace is shared by declaration. */
		attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
		size = sizeof(attr);
	}

	/* The kernel creates the ruleset fd O_CLOEXEC. */
	_cleanup_close_ int fd = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (fd < 0)
		return -errno;

	int r = sb_landlock_add_rules(fd, rules);
	if (r < 0)
		return r;
	return TAKE_FD(fd);
}

int
sb_landlock_apply(int ruleset_fd)
{
	if (ruleset_fd < 0)
		return -EBADF;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (syscall(SYS_landlock_restrict_self, ruleset_fd, 0) < 0)
		return -errno;
	return 0;
}
