/*
 * landlock.h - a landlock ruleset matching the cell's filesystem view.
 *
 * Built from paths (read-only and read-write lists); the child applies it with
 * sb_landlock_apply() after PR_SET_NO_NEW_PRIVS, which is async-signal-safe. Rules follow
 * inodes, so rules made from host paths in the parent hold inside the bind-mounted view.
 * The ABI is probed at run time. Every function here makes raw syscalls only (open with
 * O_PATH, fstat, landlock_*), so all of them may also be called in the forked child.
 *
 * What the ruleset handles, by ABI (probed with LANDLOCK_CREATE_RULESET_VERSION):
 *   v1 every filesystem right except those below; v2 + REFER (rename/link across
 *   directories); v3 + TRUNCATE; v5 + IOCTL_DEV; v6 + scoping: no connect to abstract unix
 *   sockets and no signals to processes outside the cell's landlock domain. v4's network
 *   rights are not handled here (network policy is the netns's job).
 * ABI caveats: on v1 REFER cannot be granted, so rename()/link() across directories fails
 * with EXDEV even inside read-write paths (mv falls back to copy). Below v3 truncate() is
 * not controlled; below v5 device ioctls are not; below v6 signals and abstract sockets
 * are not (the pid and network namespaces still confine them).
 *
 * How the caller builds the lists:
 *   - read_only gets EXECUTE | READ_FILE | READ_DIR; read_write gets every handled right.
 *     A path naming a non-directory (e.g. /dev/null) gets only the file rights of its list
 *     (landlock refuses directory rights on a file).
 *   - Paths are opened O_PATH and symlinks are followed: the rule is on what the path
 *     names ("/lib" -> "usr/lib"). A path that does not exist (ENOENT) is skipped.
 *   - Landlock checks the object opened, not the path walked, so a directory a workload
 *     must list (including the new root "/") needs its own read-only rule. A read-only
 *     rule on the cell's root covers reading of every mount below it.
 *   - A rule on a mount *point* does not cover what is mounted on it: landlock skips the
 *     covered directory when it walks up out of a mount. Make the rule from the mounted
 *     tree: a path resolved after the mount, or "/proc/self/fd/N" of the open_tree() /
 *     fsmount() fd (view.h's tree_fd, not the O_PATH target_fd of the mount point).
 *     Magic links such as "/proc/self/fd/N" are followed like any symlink.
 *   - Fresh mounts of the cell (its procfs, the tmpfs at /tmp and /dev, the secrets tmpfs)
 *     do not exist in the parent. Add their rules in the child after they are mounted and
 *     before applying, with the paths as the child sees them (after pivot_root: "/proc",
 *     "/tmp"), with sb_landlock_add_rules() on the same ruleset fd.
 *   - /proc: read-only. Writes to /proc/self/... (oom_score_adj, comm of other threads)
 *     then fail with EACCES; /proc/sys stays read-only anyway. Pipes and sockets reopened
 *     through /proc/self/fd are not path objects and are unaffected.
 *   - /dev: the directory read-only; /dev/null, /dev/zero, /dev/full, /dev/random,
 *     /dev/urandom and /dev/tty read-write (shells open /dev/null O_WRONLY|O_TRUNC, which
 *     needs WRITE_FILE and TRUNCATE; isatty() on it needs IOCTL_DEV); /dev/pts, /dev/ptmx
 *     and /dev/shm read-write when the view has them.
 *   - /tmp and every declared writable path or tmpfs: read-write.
 * Files opened before sb_landlock_apply() (stdio, inherited pipes) keep their access.
 */
#pragma once

#include <stddef.h>

/* Upper bound on paths per call (both lists together); more gives -E2BIG. */
#define SB_LANDLOCK_MAX_RULES 1024

/* The kernel's landlock ABI version, 0 when landlock is unavailable. */
int sb_landlock_abi(void);

struct sb_landlock_rules {
	const char *const *read_only;  /* paths, NULL-terminated; read + execute */
	const char *const *read_write; /* paths, NULL-terminated; full access */
};

/*
 * Create the ruleset; returns an O_CLOEXEC ruleset fd (the child needs it kept open
 * across its setup and closes it before exec) or -errno (-EOPNOTSUPP without landlock).
 * Paths that do not exist are skipped. rules or either list may be NULL.
 */
int sb_landlock_build(const struct sb_landlock_rules *rules);

/*
 * Add more rules to a ruleset from sb_landlock_build() (e.g. in the child, for the fresh
 * mounts of the cell's view). Returns the number of rules added or -errno.
 */
int sb_landlock_add_rules(int ruleset_fd, const struct sb_landlock_rules *rules);

/*
 * Restrict the calling thread. Async-signal-safe. 0 or -errno. Sets PR_SET_NO_NEW_PRIVS
 * itself (idempotent) since landlock refuses without it. Does not close ruleset_fd.
 */
int sb_landlock_apply(int ruleset_fd);
