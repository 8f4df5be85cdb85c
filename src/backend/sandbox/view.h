/*
 * view.h - the filesystem a sandboxed cell sees.
 *
 * The runner builds the whole view as detached mounts it owns (during prepare, while the
 * cell's setup process creates its namespaces): a fresh
 * tmpfs root holding the mount points and symlinks, one open_tree() clone per bind source
 * (attributes already set: read-only, nosuid, nodev, private), fresh tmpfs, devpts and
 * secret mounts, and for each of them an O_PATH fd of its mount point, resolved inside the
 * tree of the enclosing mount with RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS. Host paths
 * are resolved by the runner as root; nothing in the cell is ever looked up by path on the
 * host. While the cell creates its namespaces, the runner moves the trees onto their mount
 * points inside the detached root (sb_view_assemble(), kernels 6.15+) and sends the cell
 * the root and what is left (sb_view_pending(): /proc, and every tree an older kernel
 * would not assemble) as fds; the cell's setup process attaches them in its own mount
 * namespace (sb_view_attach(), async-signal-safe), mounting /proc for its pid namespace,
 * and pivots. After the run the root fd (sb_view.root_fd), kept alive with the cell's
 * mount namespace, lets the runner read exports from inside the view (sb_view_open_artifact()).
 *
 * Grant sources (readOnly and readWrite) are resolved component by component from the host's
 * "/" without following any symlink but root's own in directories only root can write
 * (a trusted owner chain): a symlink a cell or another user could have planted is refused.
 * readWrite trees follow the ownership rule of docs/sandbox.md ("Who owns what a cell
 * writes"): never idmapped to host uid or gid 0, walked (bounded) for setuid, setgid and
 * file-capability files before they are granted, and refused through cfg->degraded when
 * they cannot be granted safely.
 *
 * Ownership: struct sb_view owns every fd and string in it; sb_view_done() releases them.
 * The plan's fds are consumed by one start: a second start needs a new sb_view_build().
 */
#pragma once

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cell_spec;

enum sb_mount_kind {
	SB_MOUNT_TREE, /* a detached tree (bind clone, tmpfs, devpts) moved onto the target */
	SB_MOUNT_PROC, /* a fresh procfs, created by the cell for its own pid namespace */
	_SB_MOUNT_KIND_MAX,
};

struct sb_mount {
	enum sb_mount_kind kind;
	int tree_fd;   /* SB_MOUNT_TREE: the detached mount; -1 otherwise */
	int target_fd; /* O_PATH fd of the mount point inside the enclosing mount's tree */
	char *target;  /* the path inside the cell, for messages */
};

#define SB_VIEW_MAX_MOUNTS 1024

/* A readWrite tree is walked before it is granted: at most this many entries (past it the
 * tree is not granted safely), at most this deep. */
#define SB_VIEW_SCAN_MAX_ENTRIES 65536
#define SB_VIEW_SCAN_MAX_DEPTH   128

struct sb_view {
	int root_fd;             /* the cell's "/" (a detached tmpfs, or a clone of host "/") */
	struct sb_mount *mounts; /* in attach order: every target after its enclosing mount */
	size_t n_mounts;
	/* Landlock rule roots as "/proc/self/fd/N" strings, NULL-terminated. */
	char **landlock_ro;
	char **landlock_rw;
};

struct backend_prepare_result;

struct sb_view_config {
	const struct cell_spec *spec;
	uid_t host_uid; /* the workload's host uid and gid: owner of tmpfs and secret files */
	gid_t host_gid;
	/* host_uid/host_gid are the cell's own pool ids (uidpool.h), not run.user's: every
	 * readWrite tree is then idmapped so that what the cell writes keeps a stable owner. */
	bool own_ids;
	/* Where a readWrite tree that cannot be granted safely is reported (the profile
	 * decides: hardened refuses, portable runs it bound without idmap); NULL: not again. */
	struct backend_prepare_result *degraded;
	/* File-delivered secrets, parallel to spec->secret_refs; NULL when none. */
	const char *const *secret_values;
	const size_t *secret_lengths;
	/* size= and nr_inodes= of /tmp, /dev/shm, declared tmpfs and a /run of the cell's own
	 * (backend.h: struct backend_limits); 0: the kernel's defaults. */
	uint64_t tmpfs_size_bytes;
	uint64_t tmpfs_nr_inodes;
};

/*
 * Build the view. On failure returns -errno and writes a message naming the spec path
 * ("spec.authority.filesystem.readOnly[1]: /data: No such file or directory") into err;
 * nothing is left open.
 */
int sb_view_build(const struct sb_view_config *cfg, struct sb_view *ret, char *err,
    size_t err_size);

/* Close every fd and free the plan. Accepts a zeroed or already released view. */
void sb_view_done(struct sb_view *v);

/* Close the plan's tree and target fds (after the cell attached them); keeps root_fd. */
void sb_view_release_plan(struct sb_view *v);

/*
 * In the runner, after the clone and before "go": move the trees onto their targets inside
 * the detached root where the kernel allows it (6.15+). Returns the number of leading plan
 * entries whose trees are in place (every SB_MOUNT_TREE entry below it); the cell does the
 * rest. Never fails: anything not done here is done by sb_view_attach().
 */
size_t sb_view_assemble(struct sb_view *v);

/* One mount the cell attaches itself: a tree the runner could not assemble, or a /proc. */
struct sb_attach {
	enum sb_mount_kind kind;
	int tree_fd; /* SB_MOUNT_TREE: the detached tree; -1 for SB_MOUNT_PROC */
	int target_fd;
};

/*
 * In the runner, after sb_view_assemble() returned n_assembled: what the cell still has to
 * attach, in plan order (every SB_MOUNT_PROC entry, and the trees from n_assembled on),
 * written to ret, which has room for v->n_mounts entries. Returns the count. The fds are
 * borrowed from the view.
 */
size_t sb_view_pending(const struct sb_view *v, size_t n_assembled, struct sb_attach *ret);

/*
 * In the cell's setup process, after it holds CAP_SYS_ADMIN over its new mount namespace:
 * attach the root, then each entry of list in order (move a tree onto its target, or mount
 * a fresh procfs there), pivot_root into the root and detach the host's tree.
 * Async-signal-safe. On failure returns -errno and sets *ret_step to a static string
 * naming the step.
 */
int sb_view_attach(int root_fd, const struct sb_attach *list, size_t n, const char **ret_step);

/*
 * Open an exported file from inside the cell's view: path resolved under root_fd with
 * RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS (a symlink anywhere in the
 * path is refused with -ELOOP), regular files only (-EINVAL otherwise, -EISDIR for a
 * directory; looked at through O_PATH, never opened), and only what the workload itself
 * could reach and read: the lookup and the open run in a short-lived child with the
 * workload's host uid/gid, no supplementary groups and no capabilities (spawn_open_as(),
 * -EACCES). Returns an O_RDONLY|O_CLOEXEC fd in *ret_fd.
 */
int sb_view_open_artifact(int root_fd, const char *path, uid_t host_uid, gid_t host_gid,
    int *ret_fd);
