#include "backend/sandbox/uidpool.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <linux/openat2.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/macro.h"
#include "base/random.h"

static int
open_dir_nofollow(int at, const char *path)
{
	struct open_how how = {
	    .flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
	    .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, at, path, &how, sizeof(how));
	if (fd >= 0)
		return (int)fd;
	if (errno != ENOSYS)
		return -errno;
	/* Before openat2 (5.6): O_NOFOLLOW guards the last component; callers pass one. */
	if (strchr(path, '/') && at != AT_FDCWD)
		return -EINVAL;
	fd = openat(at, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : (int)fd;
}

/* Open at/name as a directory owned by us, mode without bad_bits, creating it (mode) when
 * missing. */
static int
open_checked_dir(int at, const char *name, const char *shown, mode_t mode, mode_t bad_bits,
    char *err, size_t err_size)
{
	_cleanup_close_ int fd = open_dir_nofollow(at, name);
	if (fd == -ENOENT) {
		/* Only the first run on a boot gets here: the fast path is the open alone. */
		if (mkdirat(at, name, mode) < 0 && errno != EEXIST) {
			int r = -errno;
			snprintf(err, err_size, "%s: cannot create the directory: %s", shown,
			    strerror(-r));
			return r;
		}
		fd = open_dir_nofollow(at, name);
	}
	if (fd < 0) {
		snprintf(err, err_size, "%s: %s", shown,
		    fd == -ELOOP || fd == -ENOTDIR ? "a symlink or not a directory"
		                                   : strerror(-fd));
		return fd;
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_uid != geteuid() || (st.st_mode & bad_bits)) {
		snprintf(err, err_size,
		    "%s: owned by uid %u with mode %04o: it must be the runner's (uid %u) and %s",
		    shown, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), (unsigned)geteuid(),
		    bad_bits == 0077 ? "have mode 0700" : "writable by it alone");
		return -EPERM;
	}
	return TAKE_FD(fd);
}

int
sb_uidpool_open_dir(const char *parent_path, const char *dir_name, char *err, size_t err_size)
{
	if (parent_path[0] != '/')
		return -EINVAL;
	/* The parent's parent (/run) is the host's: not created, only not followed through. */
	char up[256];
	const char *slash = strrchr(parent_path, '/');
	size_t n = (size_t)(slash - parent_path);
	if (n >= sizeof(up))
		return -ENAMETOOLONG;
	memcpy(up, parent_path, n);
	up[n] = '\0';
	_cleanup_close_ int top = open_dir_nofollow(AT_FDCWD, n ? up : "/");
	if (top < 0) {
		snprintf(err, err_size, "%s: %s", n ? up : "/", strerror(-top));
		return top;
	}
	_cleanup_close_ int parent =
	    open_checked_dir(top, slash + 1, parent_path, 0755, 0022, err, err_size);
	if (parent < 0)
		return parent;
	char shown[320];
	snprintf(shown, sizeof(shown), "%s/%s", parent_path, dir_name);
	return open_checked_dir(parent, dir_name, shown, 0700, 0077, err, err_size);
}

/* Lock the file of id in dir_fd: the fd, -EWOULDBLOCK when taken, or -errno. */
static int
try_lock(int dir_fd, uid_t id)
{
	char name[16];
	snprintf(name, sizeof(name), "%u", (unsigned)id);
	_cleanup_close_ int fd = openat(dir_fd, name,
	    O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid())
		return -EPERM;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return -errno;
	return TAKE_FD(fd);
}

int
sb_uidpool_acquire_at(int dir_fd, uid_t first, unsigned count, uid_t *ret_id)
{
	uint32_t start = 0;
	if (count == 0)
		return -EINVAL;
	/* A random start: concurrent runners rarely try the same id first. */
	(void)random_bytes(&start, sizeof(start));
	start %= count;
	for (unsigned i = 0; i < count; i++) {
		uid_t id = first + (uid_t)((start + i) % count);
		int fd = try_lock(dir_fd, id);
		if (fd == -EWOULDBLOCK || fd == -EINTR)
			continue;
		if (fd < 0)
			return fd;
		*ret_id = id;
		return fd;
	}
	return -EUSERS;
}

int
sb_uidpool_acquire(uid_t *ret_id, char *err, size_t err_size)
{
	_cleanup_close_ int dir =
	    sb_uidpool_open_dir(SB_UIDPOOL_PARENT, SB_UIDPOOL_DIR_NAME, err, err_size);
	if (dir < 0)
		return dir;
	int fd = sb_uidpool_acquire_at(dir, SB_UIDPOOL_FIRST, SB_UIDPOOL_COUNT, ret_id);
	if (fd == -EUSERS)
		snprintf(err, err_size,
		    "every host uid of the cells' range (%u-%u) is taken by a running cell",
		    SB_UIDPOOL_FIRST, SB_UIDPOOL_FIRST + SB_UIDPOOL_COUNT - 1);
	else if (fd < 0)
		snprintf(err, err_size, "%s: cannot lock a host uid: %s", SB_UIDPOOL_DIR,
		    strerror(-fd));
	return fd;
}
