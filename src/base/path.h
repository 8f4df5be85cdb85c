/*
 * path.h - opening the files a (privileged) runner writes, or reads secrets from, in places
 * that others - a local user, or a cell through a readWrite grant - may also write.
 *
 * Every function here applies one rule, the trusted-path rule of docs/run.md ("Files
 * cellvisor writes"):
 *
 *  - A path is resolved one component at a time, from "/" when it is absolute and from the
 *    working directory when it is relative, and no symlink is followed anywhere on it
 *    (openat2 RESOLVE_NO_SYMLINKS per component; O_NOFOLLOW where openat2 is missing).
 *  - Every directory on the way - for a relative path also the working directory and each of
 *    its parents up to "/" - is owned by root or by the effective uid (cellvisor's user) and is
 *    not writable by group or others, unless it has the sticky bit (/tmp): then nobody else
 *    can rename or remove what the runner or root owns there, and a file taken from it must
 *    be owned by root or the effective uid.
 *  - A file is a regular file with exactly one link (a FIFO, device, socket or directory is
 *    refused, and never opened: it is looked at through an O_PATH fd first, and the real open
 *    is O_NONBLOCK and checked to be the same inode).
 *
 * Functions return an fd (O_CLOEXEC) through ret_fd, and 0, or -errno with a one-line message
 * in err naming the component that broke the rule (err may be NULL). ret_* are written only
 * on success. Nothing here follows a symlink, creates a directory outside the one named, or
 * blocks on a FIFO.
 */
#pragma once

#include <stddef.h>

enum path_open_mode {
	/* Write-only, O_APPEND; created with mode 0600 (less the umask) if missing. An existing
	 * file must also be owned by the effective uid and not be writable by group or others:
	 * one someone else made could be rewritten or truncated by them. */
	PATH_APPEND,
	/* Read-only; never created. */
	PATH_READ,
	_PATH_OPEN_MODE_MAX,
};

/* ".cellvisor-" + 32 hex digits + ".partial" and the NUL */
#define PATH_TEMP_NAME_SIZE 48

/* Open the file at path under the rule above. */
int path_open_file(const char *path, enum path_open_mode mode, int *ret_fd, char *err,
    size_t err_size);

/* Open the directory at path under the rule above, as an O_PATH fd to use as a dirfd. */
int path_open_dir(const char *path, int *ret_fd, char *err, size_t err_size);

/*
 * Create (mode 0700) or open the directory name in dirfd (an fd from path_open_dir; shown is
 * its path, for messages) for the runner's own files: it must be a directory, not a symlink,
 * owned by the effective uid (not merely by root) and not writable by group or others,
 * whoever created it. Returns an O_PATH fd.
 */
int path_open_private_dir_at(int dirfd, const char *shown, const char *name, int *ret_fd, char *err,
    size_t err_size);

/*
 * Create a new file, mode 0600 (less the umask), write-only, under a name nobody can predict
 * (128 random bits), with O_EXCL: a name squatted in advance cannot be guessed, and if one is
 * there anyway nothing is followed or reused. The name is written to ret_name.
 */
int path_create_temp_at(int dirfd, char ret_name[PATH_TEMP_NAME_SIZE], int *ret_fd);
