/*
 * uidpool.h - a host uid/gid of its own for every running sandbox cell (as systemd's
 * DynamicUser=).
 *
 * A cell without run.user (or with run.user "0") runs as one id of the range
 * SB_UIDPOOL_FIRST .. SB_UIDPOOL_FIRST + SB_UIDPOOL_COUNT - 1 on the host, uid and gid
 * alike, so that cells never share per-uid kernel accounting (pipe buffers, inotify,
 * RLIMIT_NPROC, keyrings) or a ptrace/signal identity. An id is taken by flock()ing a file
 * named after it in SB_UIDPOOL_DIR, a root-owned 0700 directory (created when missing,
 * opened without following symlinks, its owner and mode checked, refused otherwise): the
 * lock is held as long as any copy of the open file description lives. The runner holds
 * the fd sb_uidpool_acquire() returns and the cell's init inherits it (child.h: hold_fd),
 * so the id stays taken while anything of the cell runs, even after a runner killed with
 * SIGKILL; closing the last copy releases it. Concurrent runner processes see each
 * other's locks: two live cells never share an id. The lock files stay (empty) in the
 * directory; nothing ever deletes them, so no unlink/lock race exists.
 *
 * The fast path is one open() and one flock() of a random candidate; a taken id costs one
 * more of each, and only a full range is scanned to the end (then -EUSERS).
 *
 * Ownership: the returned fd is the caller's; close it to release the id.
 */
#pragma once

#include <sys/types.h>

#include <stddef.h>

/* 0x7FFF0000 .. 0x7FFFFFFD: above systemd's container (to 0x6FFFFFFF) and "foreign"
 * (0x7FFE0000 .. 0x7FFEFFFF) ranges, below the storage id 0x7FFFFFFE (sandbox.h). */
#define SB_UIDPOOL_FIRST 2147418112U
#define SB_UIDPOOL_COUNT 65534U

#define SB_UIDPOOL_PARENT   "/run/cellvisor"
#define SB_UIDPOOL_DIR_NAME "uids"
#define SB_UIDPOOL_DIR      SB_UIDPOOL_PARENT "/" SB_UIDPOOL_DIR_NAME

/*
 * Open (creating it and its parent if missing) the lock directory: parent_path must be
 * root-owned and writable by nobody else, dir_name below it root-owned and mode 0700
 * (no group or other bits). Every component is resolved without following symlinks.
 * Returns an O_DIRECTORY | O_CLOEXEC fd, or -errno with a message in err.
 */
int sb_uidpool_open_dir(const char *parent_path, const char *dir_name, char *err, size_t err_size);

/*
 * Take a free id of first .. first + count - 1, locked in dir_fd (sb_uidpool_open_dir()).
 * Returns the lock fd (O_CLOEXEC) and the id in *ret_id, or -errno: -EUSERS when every id
 * is taken.
 */
int sb_uidpool_acquire_at(int dir_fd, uid_t first, unsigned count, uid_t *ret_id);

/* sb_uidpool_acquire_at() in SB_UIDPOOL_DIR over the whole range; messages in err. */
int sb_uidpool_acquire(uid_t *ret_id, char *err, size_t err_size);
