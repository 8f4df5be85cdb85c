#include "base/path.h"

#include <sys/stat.h>
#include <sys/syscall.h>

#include <linux/openat2.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/macro.h"
#include "base/random.h"

/* Bound on the parents of the working directory looked at (a deeper tree is refused). */
#define PATH_MAX_DEPTH 4096

static int _printf_(4, 5) fail(char *err, size_t err_size, int r, const char *fmt, ...)
{
	if (err && err_size > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_size, fmt, ap);
		va_end(ap);
	}
	return r;
}

static const char *
type_name(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return "a regular file";
	case S_IFDIR:
		return "a directory";
	case S_IFLNK:
		return "a symlink";
	case S_IFIFO:
		return "a FIFO";
	case S_IFCHR:
		return "a character device";
	case S_IFBLK:
		return "a block device";
	case S_IFSOCK:
		return "a socket";
	default:
		return "of an unknown type";
	}
}

/*
 * Open one component (no '/') of a path below dirfd, never through a symlink. With O_PATH a
 * symlink itself is opened (and refused by the caller, who can then say so); anything else
 * that is a symlink fails with ELOOP. openat2 may be missing or filtered (ENOSYS): for a single
 * component O_NOFOLLOW is the same guarantee.
 */
static int
open_component(int dirfd, const char *name, int flags, mode_t mode)
{
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
	    .mode = (flags & O_CREAT) ? mode : 0,
	    .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
	if (fd >= 0)
		return (int)fd;
	if (errno != ENOSYS)
		return -errno;
	fd = openat(dirfd, name, flags | O_CLOEXEC | O_NOFOLLOW, mode);
	return fd < 0 ? -errno : (int)fd;
}

static bool
shared_dir(const struct stat *dir)
{
	return (dir->st_mode & (S_IWGRP | S_IWOTH)) != 0;
}

/* A directory on the way: root's or ours, and only we (or root) can change its entries, or
 * it is sticky, so nobody can change the entries we (or root) own. */
static int
check_dir(const struct stat *st, const char *shown, char *err, size_t err_size)
{
	uid_t uid = geteuid();

	if (S_ISLNK(st->st_mode))
		return fail(err, err_size, -ELOOP, "%s is a symlink, which is refused", shown);
	if (!S_ISDIR(st->st_mode))
		return fail(err, err_size, -ENOTDIR, "%s is %s, not a directory", shown,
		    type_name(st->st_mode));
	if (st->st_uid != 0 && st->st_uid != uid)
		return fail(err, err_size, -EPERM,
		    "%s is owned by uid %u, neither root nor cellvisor's uid %u", shown,
		    (unsigned)st->st_uid, (unsigned)uid);
	if (shared_dir(st) && !(st->st_mode & S_ISVTX))
		return fail(err, err_size, -EPERM,
		    "%s is writable by group or others (mode %04o) and not sticky", shown,
		    (unsigned)(st->st_mode & 07777));
	return 0;
}

/* Append one component to the path shown in messages ("" + "a" = "a", "/" + "a" = "/a"). */
static void
shown_push(char *shown, size_t size, const char *name)
{
	size_t len = strlen(shown);
	if (len > 0 && shown[len - 1] != '/' && len + 1 < size)
		shown[len++] = '/';
	snprintf(shown + len, size - len, "%s", name);
}

/*
 * The working directory and each of its parents, up to "/", follow the directory rule: a
 * relative path is only as safe as the directories the working directory hangs from. Walked
 * through "..", so what is checked is the chain of the directory itself, whatever its name;
 * the name (from getcwd) is used for messages only.
 */
static int
check_cwd_chain(int cwdfd, char *err, size_t err_size)
{
	struct stat root, st, up;
	char shown[PATH_MAX];
	int r;

	if (stat("/", &root) < 0)
		return -errno;
	if (!getcwd(shown, sizeof(shown)))
		snprintf(shown, sizeof(shown), "the working directory");
	_cleanup_close_ int fd = fcntl(cwdfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	for (unsigned depth = 0; depth < PATH_MAX_DEPTH; depth++) {
		if (fstat(fd, &st) < 0)
			return -errno;
		r = check_dir(&st, shown, err, err_size);
		if (r < 0)
			return r;
		if (st.st_dev == root.st_dev && st.st_ino == root.st_ino)
			return 0;
		int parent = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (parent < 0)
			return -errno;
		safe_close(fd);
		fd = parent;
		if (fstat(fd, &up) < 0)
			return -errno;
		if (up.st_dev == st.st_dev && up.st_ino == st.st_ino)
			return 0; /* the top of a chroot or mount namespace */
		char *slash = strrchr(shown, '/');
		if (slash && slash != shown)
			*slash = '\0';
		else if (slash)
			shown[1] = '\0';
	}
	return fail(err, err_size, -ELOOP, "the working directory is more than %d levels deep",
	    PATH_MAX_DEPTH);
}

/* Walk the first len bytes of path (a directory) and return it as an O_PATH fd. */
static int
walk_dir(const char *path, size_t len, int *ret_fd, struct stat *ret_st, char *err, size_t err_size)
{
	char shown[PATH_MAX], name[NAME_MAX + 1];
	struct stat st;
	int r;

	if (len >= sizeof(shown))
		return fail(err, err_size, -ENAMETOOLONG, "%.64s...: path too long", path);
	bool absolute = len > 0 && path[0] == '/';
	_cleanup_close_ int fd = open(absolute ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, err_size, -errno, "%s: %s",
		    absolute ? "/" : "the working directory", strerror(errno));
	snprintf(shown, sizeof(shown), "%s", absolute ? "/" : "");
	if (!absolute) {
		r = check_cwd_chain(fd, err, err_size);
		if (r < 0)
			return r;
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	r = check_dir(&st, absolute ? "/" : ".", err, err_size);
	if (r < 0)
		return r;

	for (size_t i = 0; i < len;) {
		size_t n = 0;
		while (i < len && path[i] == '/')
			i++;
		while (i + n < len && path[i + n] != '/')
			n++;
		if (n == 0)
			break;
		if (n > NAME_MAX)
			return fail(err, err_size, -ENAMETOOLONG, "%.*s: name too long", (int)len,
			    path);
		memcpy(name, path + i, n);
		name[n] = '\0';
		i += n;
		if (strcmp(name, ".") == 0)
			continue;
		shown_push(shown, sizeof(shown), name);
		int next = open_component(fd, name, O_PATH, 0);
		if (next < 0)
			return fail(err, err_size, next, "%s: %s", shown, strerror(-next));
		safe_close(fd);
		fd = next;
		if (fstat(fd, &st) < 0)
			return -errno;
		r = check_dir(&st, shown, err, err_size);
		if (r < 0)
			return r;
	}
	*ret_st = st;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int
path_open_dir(const char *path, int *ret_fd, char *err, size_t err_size)
{
	struct stat st;

	if (!path || !*path)
		return fail(err, err_size, -EINVAL, "an empty path");
	return walk_dir(path, strlen(path), ret_fd, &st, err, err_size);
}

/* The file (seen through an O_PATH fd) in directory dir, before it is really opened. */
static int
check_file(const struct stat *st, const struct stat *dir, enum path_open_mode mode,
    const char *shown, char *err, size_t err_size)
{
	uid_t uid = geteuid();

	if (S_ISLNK(st->st_mode))
		return fail(err, err_size, -ELOOP, "%s is a symlink, which is refused", shown);
	if (!S_ISREG(st->st_mode))
		return fail(err, err_size, S_ISDIR(st->st_mode) ? -EISDIR : -EINVAL,
		    "%s is %s, not a regular file", shown, type_name(st->st_mode));
	if (st->st_nlink != 1)
		return fail(err, err_size, -EMLINK,
		    "%s has %ju hard links (only a file with one link is accepted)", shown,
		    (uintmax_t)st->st_nlink);
	if (mode == PATH_APPEND && st->st_uid != uid)
		return fail(err, err_size, -EPERM,
		    "%s is owned by uid %u, not by cellvisor's uid %u", shown, (unsigned)st->st_uid,
		    (unsigned)uid);
	if (mode == PATH_APPEND && (st->st_mode & (S_IWGRP | S_IWOTH)))
		return fail(err, err_size, -EPERM, "%s is writable by group or others (mode %04o)",
		    shown, (unsigned)(st->st_mode & 07777));
	if (shared_dir(dir) && st->st_uid != 0 && st->st_uid != uid)
		return fail(err, err_size, -EPERM,
		    "%s is owned by uid %u in a directory others can write: neither root nor "
		    "cellvisor's uid %u",
		    shown, (unsigned)st->st_uid, (unsigned)uid);
	return 0;
}

int
path_open_file(const char *path, enum path_open_mode mode, int *ret_fd, char *err, size_t err_size)
{
	_cleanup_close_ int dirfd = -EBADF, pathfd = -EBADF, fd = -EBADF;
	struct stat dir, st, opened;
	int r;

	assert(mode >= 0 && mode < _PATH_OPEN_MODE_MAX);
	if (!path || !*path)
		return fail(err, err_size, -EINVAL, "an empty path");
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return fail(err, err_size, -EISDIR, "%s does not name a file", path);
	if (strlen(base) > NAME_MAX)
		return fail(err, err_size, -ENAMETOOLONG, "%s: name too long", path);
	/* "/x" lives in "/": keep its slash. */
	size_t dirlen = slash ? (size_t)(slash - path) + (slash == path) : 0;
	r = walk_dir(path, dirlen, &dirfd, &dir, err, err_size);
	if (r < 0)
		return r;

	int oflags = (mode == PATH_APPEND ? O_WRONLY | O_APPEND : O_RDONLY) | O_NOCTTY | O_NONBLOCK;
	if (mode == PATH_APPEND) {
		/* A new file is ours and regular by construction. */
		fd = open_component(dirfd, base, oflags | O_CREAT | O_EXCL, 0600);
		if (fd >= 0) {
			*ret_fd = TAKE_FD(fd);
			return 0;
		}
		if (fd != -EEXIST)
			return fail(err, err_size, fd, "%s: %s", path, strerror(-fd));
	}
	/* Look before opening: a FIFO or a device is never opened at all. */
	pathfd = open_component(dirfd, base, O_PATH, 0);
	if (pathfd < 0)
		return fail(err, err_size, pathfd, "%s: %s", path, strerror(-pathfd));
	if (fstat(pathfd, &st) < 0)
		return -errno;
	r = check_file(&st, &dir, mode, path, err, err_size);
	if (r < 0)
		return r;
	fd = open_component(dirfd, base, oflags, 0);
	if (fd < 0)
		return fail(err, err_size, fd, "%s: %s", path, strerror(-fd));
	if (fstat(fd, &opened) < 0)
		return -errno;
	if (opened.st_dev != st.st_dev || opened.st_ino != st.st_ino)
		return fail(err, err_size, -EAGAIN, "%s was replaced while it was being opened",
		    path);
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int
path_open_private_dir_at(int dirfd, const char *shown, const char *name, int *ret_fd, char *err,
    size_t err_size)
{
	char full[PATH_MAX];
	struct stat st;
	uid_t uid = geteuid();

	snprintf(full, sizeof(full), "%s", shown);
	shown_push(full, sizeof(full), name);
	if (strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return fail(err, err_size, -EINVAL, "%s: not a directory name", full);
	if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return fail(err, err_size, -errno, "cannot create %s: %s", full, strerror(errno));
	_cleanup_close_ int fd = open_component(dirfd, name, O_PATH, 0);
	if (fd < 0)
		return fail(err, err_size, fd, "%s: %s", full, strerror(-fd));
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode))
		return fail(err, err_size, -ELOOP, "%s is a symlink, which is refused", full);
	if (!S_ISDIR(st.st_mode))
		return fail(err, err_size, -ENOTDIR, "%s is %s, not a directory", full,
		    type_name(st.st_mode));
	if (st.st_uid != uid)
		return fail(err, err_size, -EPERM,
		    "%s is owned by uid %u, not by cellvisor's uid %u", full, (unsigned)st.st_uid,
		    (unsigned)uid);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return fail(err, err_size, -EPERM, "%s is writable by group or others (mode %04o)",
		    full, (unsigned)(st.st_mode & 07777));
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int
path_create_temp_at(int dirfd, char ret_name[PATH_TEMP_NAME_SIZE], int *ret_fd)
{
	uint8_t rnd[16];
	char name[PATH_TEMP_NAME_SIZE];
	int r = random_bytes(rnd, sizeof(rnd));
	if (r < 0)
		return r;
	size_t len = (size_t)snprintf(name, sizeof(name), ".cellvisor-");
	for (size_t i = 0; i < sizeof(rnd); i++)
		len += (size_t)snprintf(name + len, sizeof(name) - len, "%02x", rnd[i]);
	snprintf(name + len, sizeof(name) - len, ".partial");
	int fd =
	    open_component(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOCTTY | O_NONBLOCK, 0600);
	if (fd < 0)
		return fd;
	memcpy(ret_name, name, sizeof(name));
	*ret_fd = fd;
	return 0;
}
