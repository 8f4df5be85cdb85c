#include "backend/sandbox/view.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <linux/magic.h>
#include <linux/openat2.h>
#include <linux/sched.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/spawn.h"
#include "base/fd.h"
#include "base/macro.h"
#include "spec/spec.h"

/*
 * The default view: the host's system directories read-only (a host symlink such as
 * /bin -> usr/bin is recreated as the same symlink), a fresh /proc, a minimal /dev and a
 * tmpfs /tmp. /etc is included for the user, group, locale and resolver databases; its
 * secrets (shadow, ssh host keys) stay protected by their modes, since the workload is
 * never the host's root.
 */
static const char *const default_system_dirs[] = {
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    NULL,
};

/* Character devices made in the cell's /dev (the same major:minor as the host's). */
static const struct {
	const char *name;
	unsigned major, minor;
} dev_nodes[] = {
    {"null", 1, 3},
    {"zero", 1, 5},
    {"full", 1, 7},
    {"random", 1, 8},
    {"urandom", 1, 9},
    {"tty", 5, 0},
};

static const struct {
	const char *path;
	const char *link;
} dev_links[] = {
    {"/dev/fd", "/proc/self/fd"},
    {"/dev/stdin", "/proc/self/fd/0"},
    {"/dev/stdout", "/proc/self/fd/1"},
    {"/dev/stderr", "/proc/self/fd/2"},
    {"/dev/ptmx", "pts/ptmx"},
};

enum item_kind {
	ITEM_BIND,
	ITEM_TMPFS,
	ITEM_PROC,
	ITEM_DEV,  /* the /dev tmpfs itself */
	ITEM_NODE, /* a device node in /dev */
	ITEM_DEVPTS,
	ITEM_SYMLINK,
	ITEM_SECRETS,
	_ITEM_KIND_MAX,
};

struct item {
	enum item_kind kind;
	const char *target; /* path in the cell */
	const char *source; /* host path (bind), link text (symlink) */
	bool read_only;
	bool from_spec;
	bool workload_owned; /* tmpfs owned by the workload's uid */
	char *owned;         /* a string this item allocated (target or source) */
	const char *mode;    /* tmpfs mode */
	unsigned attrs;      /* MOUNT_ATTR_* for tmpfs */
	unsigned major, minor;
	size_t order;
	bool dropped;
	char origin[80]; /* "spec.authority.filesystem.readOnly[2]" or "default view" */
};

/* A planned mount whose tree later targets are resolved in. */
struct mounted {
	const char *target;
	int fd;   /* borrowed: the tree's root */
	bool own; /* a tmpfs of ours: missing mount points may be created in it */
};

struct builder {
	const struct sb_view_config *cfg;
	struct item *items;
	size_t n_items, cap_items;
	struct mounted *mounted;
	size_t n_mounted;
	int *ro_at_end; /* own tmpfs trees made read-only once populated */
	size_t n_ro_at_end;
	char **ll_ro, **ll_rw;
	size_t n_ll_ro, n_ll_rw;
	struct sb_view *view;
	char *err;
	size_t err_size;
};

static int _printf_(3, 4) fail(struct builder *b, int r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->err, b->err_size, fmt, ap);
	va_end(ap);
	return r;
}

static int
sys_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve)
{
	struct open_how how = {.flags = flags, .resolve = resolve};
	long r = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	return r < 0 ? -errno : (int)r;
}

static size_t
path_depth(const char *p)
{
	size_t d = 0;
	if (strcmp(p, "/") == 0)
		return 0;
	for (; *p; p++)
		if (*p == '/')
			d++;
	return d;
}

/* True if p equals prefix or lies below it ("/a" covers "/a" and "/a/b", not "/ab"). */
static bool
path_covers(const char *prefix, const char *p)
{
	if (strcmp(prefix, "/") == 0)
		return true;
	size_t n = strlen(prefix);
	return strncmp(prefix, p, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

static struct item *
add_item(struct builder *b, enum item_kind kind, const char *target)
{
	if (b->n_items == b->cap_items) {
		size_t ncap = b->cap_items ? b->cap_items * 2 : 64;
		struct item *n = realloc(b->items, ncap * sizeof(*n));
		if (!n)
			return NULL;
		b->items = n;
		b->cap_items = ncap;
	}
	struct item *it = &b->items[b->n_items];
	*it = (struct item){.kind = kind, .target = target, .order = b->n_items};
	snprintf(it->origin, sizeof(it->origin), "default view");
	b->n_items++;
	return it;
}

static int
item_cmp(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	size_t dx = path_depth(x->target), dy = path_depth(y->target);
	if (dx != dy)
		return dx < dy ? -1 : 1;
	int c = strcmp(x->target, y->target);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static bool
spec_declares_root(const struct cell_spec *s, bool *ret_ro, size_t *ret_index)
{
	for (size_t i = 0; i < s->fs_read_write.n; i++)
		if (strcmp(s->fs_read_write.v[i], "/") == 0) {
			*ret_ro = false;
			*ret_index = i;
			return true;
		}
	for (size_t i = 0; i < s->fs_read_only.n; i++)
		if (strcmp(s->fs_read_only.v[i], "/") == 0) {
			*ret_ro = true;
			*ret_index = i;
			return true;
		}
	return false;
}

static bool
file_secrets(const struct sb_view_config *cfg)
{
	return cfg->secret_values && cfg->spec->secret_refs.n > 0;
}

/* Paths the sandbox provides itself and a spec may not replace. */
static const char *
reserved_problem(const struct builder *b, const char *p, const char *list)
{
	if (path_covers("/proc", p))
		return "is the cell's own procfs and cannot be declared (the host's /proc is "
		       "never shown to a cell)";
	if (path_covers("/dev", p))
		return "is the cell's minimal /dev and cannot be declared";
	if (file_secrets(b->cfg) && path_covers("/run/secrets", p))
		return "holds the cell's file-delivered secrets and cannot be declared";
	if (strcmp(list, "tmpfs") == 0 && strcmp(p, "/") == 0)
		return "cannot be a tmpfs: the root is always a fresh tmpfs (declare '/' readOnly "
		       "or readWrite to show the host's root instead)";
	return NULL;
}

static int
collect_spec_list(struct builder *b, const struct spec_strv *l, const char *list)
{
	for (size_t i = 0; i < l->n; i++) {
		const char *p = l->v[i];
		const char *problem = reserved_problem(b, p, list);
		if (problem)
			return fail(b, -EINVAL, "spec.authority.filesystem.%s[%zu]: %s %s", list, i,
			    p, problem);
		if (strcmp(p, "/") == 0)
			continue; /* the root itself: handled by make_root() */
		struct item *it =
		    add_item(b, strcmp(list, "tmpfs") == 0 ? ITEM_TMPFS : ITEM_BIND, p);
		if (!it)
			return -ENOMEM;
		it->from_spec = true;
		snprintf(it->origin, sizeof(it->origin), "spec.authority.filesystem.%s[%zu]", list,
		    i);
		if (it->kind == ITEM_BIND) {
			it->source = p;
			it->read_only = strcmp(list, "readOnly") == 0;
		} else {
			it->mode = "0755";
			it->workload_owned = true;
			it->attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
		}
	}
	return 0;
}

static int
collect(struct builder *b, bool root_is_host)
{
	const struct cell_spec *s = b->cfg->spec;
	struct item *it;

	if (!root_is_host) {
		for (size_t i = 0; default_system_dirs[i]; i++) {
			const char *d = default_system_dirs[i];
			struct stat st;
			if (lstat(d, &st) < 0)
				continue;
			if (S_ISLNK(st.st_mode)) {
				char link[PATH_MAX];
				ssize_t n = readlink(d, link, sizeof(link) - 1);
				if (n <= 0)
					continue;
				link[n] = '\0';
				if (!(it = add_item(b, ITEM_SYMLINK, d)) ||
				    !(it->owned = strdup(link)))
					return -ENOMEM;
				it->source = it->owned;
			} else if (S_ISDIR(st.st_mode)) {
				if (!(it = add_item(b, ITEM_BIND, d)))
					return -ENOMEM;
				it->source = d;
				it->read_only = true;
			}
		}
	}
	if (!(it = add_item(b, ITEM_PROC, "/proc")))
		return -ENOMEM;
	if (!(it = add_item(b, ITEM_DEV, "/dev")))
		return -ENOMEM;
	it->mode = "0755";
	/* Not nodev: the device nodes below are made in it. Read-only once populated. */
	it->attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;
	for (size_t i = 0; i < ARRAY_SIZE(dev_nodes); i++) {
		char *t;
		if (asprintf(&t, "/dev/%s", dev_nodes[i].name) < 0)
			return -ENOMEM;
		if (!(it = add_item(b, ITEM_NODE, t))) {
			free(t);
			return -ENOMEM;
		}
		it->owned = t;
		it->major = dev_nodes[i].major;
		it->minor = dev_nodes[i].minor;
	}
	if (!(it = add_item(b, ITEM_DEVPTS, "/dev/pts")))
		return -ENOMEM;
	if (!(it = add_item(b, ITEM_TMPFS, "/dev/shm")))
		return -ENOMEM;
	it->mode = "1777";
	it->attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
	for (size_t i = 0; i < ARRAY_SIZE(dev_links); i++) {
		if (!(it = add_item(b, ITEM_SYMLINK, dev_links[i].path)))
			return -ENOMEM;
		it->source = dev_links[i].link;
	}
	if (!(it = add_item(b, ITEM_TMPFS, "/tmp")))
		return -ENOMEM;
	it->mode = "1777";
	it->attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
	struct stat rs;
	if (file_secrets(b->cfg) && root_is_host &&
	    (lstat("/run/secrets", &rs) < 0 || !S_ISDIR(rs.st_mode))) {
		/*
		 * The host's root as the view, and no /run/secrets on the host to mount the secrets
		 * on (nothing is ever created in a host tree): the cell gets a /run of its own,
		 * an empty tmpfs over the host's (unless the spec declares /run itself).
		 */
		if (!(it = add_item(b, ITEM_TMPFS, "/run")))
			return -ENOMEM;
		it->mode = "0755";
		it->attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
		snprintf(it->origin, sizeof(it->origin), "spec.authority.secretRefs");
	}
	if (file_secrets(b->cfg)) {
		if (!(it = add_item(b, ITEM_SECRETS, "/run/secrets")))
			return -ENOMEM;
		snprintf(it->origin, sizeof(it->origin), "spec.authority.secretRefs");
	}

	int r;
	if ((r = collect_spec_list(b, &s->fs_read_only, "readOnly")) < 0 ||
	    (r = collect_spec_list(b, &s->fs_read_write, "readWrite")) < 0 ||
	    (r = collect_spec_list(b, &s->fs_tmpfs, "tmpfs")) < 0)
		return r;
	if (b->n_items > SB_VIEW_MAX_MOUNTS)
		return fail(b, -E2BIG, "spec.authority.filesystem: too many mounts (at most %d)",
		    SB_VIEW_MAX_MOUNTS);

	qsort(b->items, b->n_items, sizeof(*b->items), item_cmp);

	/* Same target twice: two spec entries is an error; a spec entry replaces a default. */
	for (size_t i = 0; i + 1 < b->n_items; i++) {
		struct item *x = &b->items[i], *y = &b->items[i + 1];
		if (strcmp(x->target, y->target) != 0)
			continue;
		if (x->from_spec && y->from_spec)
			return fail(b, -EINVAL, "%s: %s is already declared by %s", y->origin,
			    y->target, x->origin);
		(x->from_spec ? y : x)->dropped = true;
	}
	return 0;
}

/* The deepest planned mount covering target (itself included when allow_equal). */
static const struct mounted *
enclosing(const struct builder *b, const char *target, bool allow_equal)
{
	const struct mounted *best = &b->mounted[0]; /* the root */
	size_t best_len = 0;
	for (size_t i = 1; i < b->n_mounted; i++) {
		const struct mounted *m = &b->mounted[i];
		size_t n = strlen(m->target);
		if (n > best_len && path_covers(m->target, target) &&
		    (allow_equal || strcmp(m->target, target) != 0)) {
			best = m;
			best_len = n;
		}
	}
	return best;
}

/* target below m's mount point, without the leading '/'. */
static const char *
relative_to(const struct mounted *m, const char *target)
{
	return target + (strcmp(m->target, "/") == 0 ? 1 : strlen(m->target) + 1);
}

#define RESOLVE_STRICT                                                                             \
	(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)

/*
 * Resolve rel below dirfd without following any symlink, creating what is missing when
 * create is set (only ever in our own tmpfs): directories, and for the last component a
 * directory or an empty file. Returns an O_PATH fd.
 */
static int
resolve_create(int dirfd, const char *rel, bool create, bool want_dir)
{
	char buf[PATH_MAX];
	if (!create)
		return sys_openat2(dirfd, rel, O_PATH | O_NOFOLLOW | O_CLOEXEC, RESOLVE_STRICT);

	/*
	 * Our own tmpfs, where mount points are usually new: create each component first and
	 * then open it strictly, which costs two calls per component instead of a failed
	 * lookup, a retry and a create. Neither mkdirat() nor O_CREAT | O_EXCL follows a
	 * symlink in the last component (both fail with EEXIST), each component is one name
	 * below an fd we opened strictly, and the strict openat2() decides what it is.
	 */
	if (strlen(rel) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, rel);
	_cleanup_close_ int cur = -EBADF; /* dirfd (borrowed) for the first component */
	char *comp = buf;
	for (;;) {
		char *slash = strchr(comp, '/');
		bool last = !slash;
		if (slash)
			*slash = '\0';
		int at = cur >= 0 ? cur : dirfd;
		if (!last || want_dir) {
			if (mkdirat(at, comp, 0755) < 0 && errno != EEXIST)
				return -errno;
		} else {
			int f = openat(at, comp,
			    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
			if (f < 0 && errno != EEXIST)
				return -errno;
			safe_close(f);
		}
		/* A symlink is opened itself only as the last component (resolve_target() then
		 * refuses it by type); above that it is ELOOP, as for a whole-path lookup. */
		int next = sys_openat2(at, comp, O_PATH | O_CLOEXEC | (last ? O_NOFOLLOW : 0),
		    RESOLVE_STRICT);
		if (next < 0)
			return next;
		safe_close(cur);
		cur = next;
		if (last)
			return TAKE_FD(cur);
		comp = slash + 1;
	}
}

static int
resolve_target(struct builder *b, const struct item *it, bool want_dir, int *ret_fd)
{
	const struct mounted *m = enclosing(b, it->target, false);
	int fd = resolve_create(m->fd, relative_to(m, it->target), m->own, want_dir);
	if (fd == -ELOOP)
		return fail(b, fd,
		    "%s: %s: a symlink in the cell's view is in the way (mount targets "
		    "are resolved without following symlinks)",
		    it->origin, it->target);
	if (fd == -ENOENT)
		return fail(b, fd,
		    "%s: %s: the mount point does not exist inside %s, which comes "
		    "from the host and is not modified",
		    it->origin, it->target, m->target);
	if (fd < 0)
		return fail(b, fd, "%s: %s: %s", it->origin, it->target, strerror(-fd));
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int r = -errno;
		safe_close(fd);
		return fail(b, r, "%s: %s: %s", it->origin, it->target, strerror(-r));
	}
	if (S_ISLNK(st.st_mode) || want_dir != S_ISDIR(st.st_mode)) {
		safe_close(fd);
		return fail(b, -ENOTDIR, "%s: %s: the mount point in the cell's view is %s",
		    it->origin, it->target,
		    S_ISLNK(st.st_mode) ? "a symlink"
		        : want_dir      ? "not a directory"
		                        : "a directory, the source is not");
	}
	*ret_fd = fd;
	return 0;
}

static int
set_attrs(int tree, uint64_t set, uint64_t clr)
{
	struct mount_attr a = {.attr_set = set, .attr_clr = clr, .propagation = MS_PRIVATE};
	if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof(a)) < 0)
		return -errno;
	return 0;
}

static int
make_tmpfs(const char *fstype, const char *const *opts, unsigned attrs, int *ret)
{
	_cleanup_close_ int fs = fsopen(fstype, FSOPEN_CLOEXEC);
	if (fs < 0)
		return -errno;
	for (size_t i = 0; opts && opts[i]; i += 2)
		if (fsconfig(fs, FSCONFIG_SET_STRING, opts[i], opts[i + 1], 0) < 0)
			return -errno;
	if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return -errno;
	int m = fsmount(fs, FSMOUNT_CLOEXEC, attrs);
	if (m < 0)
		return -errno;
	*ret = m;
	return 0;
}

static int
ll_add(char ***list, size_t *n, int fd)
{
	char **nl = realloc(*list, (*n + 2) * sizeof(char *));
	if (!nl)
		return -ENOMEM;
	*list = nl;
	if (asprintf(&nl[*n], "/proc/self/fd/%d", fd) < 0) {
		nl[*n] = NULL;
		return -ENOMEM;
	}
	(*n)++;
	nl[*n] = NULL;
	return 0;
}

static int
push_mount(struct builder *b, enum sb_mount_kind kind, int tree, int target, const char *path)
{
	struct sb_view *v = b->view;
	struct sb_mount *m = &v->mounts[v->n_mounts];
	*m = (struct sb_mount){.kind = kind, .tree_fd = tree, .target_fd = target};
	if (!(m->target = strdup(path))) {
		safe_close(tree);
		safe_close(target);
		return -ENOMEM;
	}
	v->n_mounts++;
	return 0;
}

/* Could uid/gid (no supplementary groups) write to a file with this owner and mode? */
static bool
writable_by(const struct stat *st, uid_t uid, gid_t gid)
{
	if (st->st_uid == uid)
		return st->st_mode & S_IWUSR;
	if (st->st_gid == gid)
		return st->st_mode & S_IWGRP;
	return st->st_mode & S_IWOTH;
}

/*
 * A user namespace whose only mappings send from_uid/from_gid to to_uid/to_gid, as an fd for
 * MOUNT_ATTR_IDMAP: through a mount idmapped with it, files owned by from_uid on disk
 * belong to to_uid, and what to_uid creates is stored as from_uid. A short-lived child
 * holds the namespace while the runner writes its maps.
 */
static int
idmap_userns(uid_t from_uid, gid_t from_gid, uid_t to_uid, gid_t to_gid)
{
	int hold[2], pidfd = -1;
	bool into;
	char path[64], map[64];

	if (pipe2(hold, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = spawn_clone(CLONE_NEWUSER, -1, &pidfd, &into);
	if (pid == 0) {
		char c;
		(void)close(hold[1]);
		(void)!read(hold[0], &c, 1); /* until the runner is done with the namespace */
		_exit(0);
	}
	(void)close(hold[0]);
	int r = pid < 0 ? (int)pid : 0;
	int ns = -EBADF;
	if (r == 0) {
		snprintf(path, sizeof(path), "/proc/%d", (int)pid);
		_cleanup_close_ int dir = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
		if (dir < 0)
			r = -errno;
		if (r >= 0) {
			snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)from_uid, (unsigned)to_uid);
			r = fd_write_file_at(dir, "uid_map", map);
		}
		if (r >= 0)
			r = fd_write_file_at(dir, "setgroups", "deny");
		if (r >= 0) {
			snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)from_gid, (unsigned)to_gid);
			r = fd_write_file_at(dir, "gid_map", map);
		}
		if (r >= 0) {
			ns = openat(dir, "ns/user", O_RDONLY | O_CLOEXEC);
			if (ns < 0)
				r = -errno;
		}
	}
	(void)close(hold[1]);
	if (pid > 0) {
		siginfo_t si;
		(void)waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED);
		safe_close(pidfd);
	}
	return r < 0 ? r : ns;
}

/* A directory whose symlinks the runner follows: root's, and writable by root alone. */
static bool
dir_trusted(const struct stat *st)
{
	return st->st_uid == 0 && !(st->st_mode & (S_IWGRP | S_IWOTH));
}

#define SOURCE_MAX_LINKS 40 /* the kernel's MAXSYMLINKS */

static int
open_root_dir(bool *ret_trusted)
{
	struct stat st;
	int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int r = -errno;
		safe_close(fd);
		return r;
	}
	*ret_trusted = dir_trusted(&st);
	return fd;
}

/*
 * Resolve a grant source from the host's "/", one component at a time (O_PATH |
 * O_NOFOLLOW), following a symlink only when it is root's and every directory walked to
 * it is root's and writable by root alone: a trusted owner chain, where nobody but root
 * could have planted it (a cell writes only in its readWrite trees, which that excludes).
 * A link's ".." is taken only within such a chain. Returns an O_PATH fd of the source, or
 * -errno with the path walked so far in where: -ELOOP for a symlink not followed, -EXDEV
 * for a ".." not taken.
 */
static int
resolve_source(const char *path, int *ret_fd, char *where, size_t where_size)
{
	_cleanup_free_ char *rest = malloc(2 * PATH_MAX), *next = malloc(2 * PATH_MAX);
	_cleanup_free_ char *done = malloc(PATH_MAX);
	_cleanup_free_ bool *trusted = calloc(PATH_MAX / 2 + 1, sizeof(bool));
	size_t depth = 0, links = 0, dlen = 0;
	char comp[NAME_MAX + 1];
	struct stat st;

	if (!rest || !next || !done || !trusted)
		return -ENOMEM;
	if (strlen(path) >= PATH_MAX)
		return -ENAMETOOLONG;
	strcpy(rest, path);
	done[0] = '\0';
	_cleanup_close_ int cur = open_root_dir(&trusted[0]);
	if (cur < 0)
		return cur;
	const char *p = rest;
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		size_t n = strcspn(p, "/");
		if (n > NAME_MAX)
			return -ENAMETOOLONG;
		memcpy(comp, p, n);
		comp[n] = '\0';
		p += n;
		if (strcmp(comp, ".") == 0)
			continue;
		snprintf(where, where_size, "%s/%s", done, comp);
		if (strcmp(comp, "..") == 0) {
			if (!trusted[depth])
				return -EXDEV;
			if (depth == 0)
				continue;
			int up = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (up < 0)
				return -errno;
			safe_close(cur);
			cur = up;
			depth--;
			char *slash = strrchr(done, '/');
			dlen = slash ? (size_t)(slash - done) : 0;
			done[dlen] = '\0';
			continue;
		}
		_cleanup_close_ int fd = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (fstat(fd, &st) < 0)
			return -errno;
		if (S_ISLNK(st.st_mode)) {
			if (!trusted[depth] || st.st_uid != 0 || ++links > SOURCE_MAX_LINKS)
				return -ELOOP;
			char target[PATH_MAX];
			ssize_t k = readlinkat(fd, "", target, sizeof(target) - 1);
			if (k < 0)
				return -errno;
			target[k] = '\0';
			if ((size_t)k + 1 + strlen(p) >= 2 * PATH_MAX)
				return -ENAMETOOLONG;
			snprintf(next, 2 * PATH_MAX, "%s/%s", target, p);
			strcpy(rest, next);
			p = rest;
			if (target[0] == '/') {
				safe_close(cur);
				if ((cur = open_root_dir(&trusted[0])) < 0)
					return cur;
				depth = 0;
				dlen = 0;
				done[0] = '\0';
			}
			continue;
		}
		if (!S_ISDIR(st.st_mode) && p[strspn(p, "/")] != '\0')
			return -ENOTDIR;
		if (depth + 1 > PATH_MAX / 2 || dlen + 1 + n >= PATH_MAX)
			return -ENAMETOOLONG;
		trusted[depth + 1] = trusted[depth] && (!S_ISDIR(st.st_mode) || dir_trusted(&st));
		depth++;
		done[dlen++] = '/';
		memcpy(done + dlen, comp, n + 1);
		dlen += n;
		safe_close(cur);
		cur = TAKE_FD(fd);
	}
	*ret_fd = TAKE_FD(cur);
	return 0;
}

#ifndef SYS_getxattrat
#define SYS_getxattrat 464
#endif

struct xattr_args_at {
	uint64_t value;
	uint32_t size;
	uint32_t flags;
};

static int getxattrat_works = -1; /* unknown, 0, 1: probed once (6.13+) */

/* No such attribute, or a filesystem without extended attributes (which holds none). */
static bool
no_xattr(int error)
{
	return error == ENODATA || error == ENOTSUP || error == EOPNOTSUPP;
}

/* Whether dir_fd/name (a regular file) carries security.capability. 1, 0 or -errno. */
static int
has_file_caps(int dir_fd, const char *name)
{
	ssize_t n;
	if (getxattrat_works != 0) {
		struct xattr_args_at args = {0};
		n = syscall(SYS_getxattrat, dir_fd, name, AT_SYMLINK_NOFOLLOW,
		    "security.capability", &args, sizeof(args));
		if (n >= 0 || errno != ENOSYS) {
			getxattrat_works = 1;
			return n >= 0 ? 1 : no_xattr(errno) ? 0 : -errno;
		}
		getxattrat_works = 0;
	}
	_cleanup_close_ int fd =
	    openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = fgetxattr(fd, "security.capability", NULL, 0);
	return n >= 0 ? 1 : no_xattr(errno) ? 0 : -errno;
}

/* What the walk of a readWrite tree found. */
struct scan {
	size_t entries;
	bool too_big;       /* past SB_VIEW_SCAN_MAX_ENTRIES or _DEPTH: not checked to the end */
	const char *what;   /* the first privileged file's kind, NULL if none */
	char rel[PATH_MAX]; /* during the walk: the current path; then: the file found */
	size_t rel_len;
};

/* Check one regular file: 1 when privileged (s->what set), 0, or -errno. */
static int
scan_file(int dir_fd, const char *name, const struct stat *st, struct scan *s)
{
	if (st->st_mode & S_ISUID)
		s->what = "a setuid file";
	else if (st->st_mode & S_ISGID)
		s->what = "a setgid file";
	else {
		int r = has_file_caps(dir_fd, name);
		if (r == -ENOENT)
			return 0;
		if (r <= 0)
			return r;
		s->what = "a file with capabilities";
	}
	return 1;
}

/*
 * Walk dir_fd (owned: closed here) for setuid, setgid and file-capability files, without
 * following symlinks and within the tree's own mount (a clone of one mount: submounts are
 * not in it). Stops at the first find (s->rel then names it) or past the caps. 0 or -errno.
 */
static int
scan_dir(int dir_fd, unsigned depth, struct scan *s)
{
	DIR *d = fdopendir(dir_fd);
	if (!d) {
		int r = -errno;
		safe_close(dir_fd);
		return r;
	}
	size_t base = s->rel_len;
	struct dirent *de;
	int r = 0;
	for (errno = 0; !s->what && !s->too_big && (de = readdir(d)); errno = 0) {
		const char *name = de->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		size_t n = strlen(name);
		if (++s->entries > SB_VIEW_SCAN_MAX_ENTRIES || base + 1 + n >= sizeof(s->rel)) {
			s->too_big = true;
			break;
		}
		s->rel[base] = '/';
		memcpy(s->rel + base + 1, name, n + 1);
		s->rel_len = base + 1 + n;
		unsigned type = de->d_type;
		struct stat st;
		if (type == DT_UNKNOWN || type == DT_REG) {
			if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
				if (errno == ENOENT)
					continue; /* gone meanwhile */
				r = -errno;
				break;
			}
			type = S_ISDIR(st.st_mode) ? DT_DIR
			    : S_ISREG(st.st_mode)  ? DT_REG
			                           : DT_UNKNOWN;
		}
		if (type == DT_REG) {
			if ((r = scan_file(dirfd(d), name, &st, s)) < 0)
				break;
		} else if (type == DT_DIR) {
			if (depth + 1 > SB_VIEW_SCAN_MAX_DEPTH) {
				s->too_big = true;
				break;
			}
			int sub = openat(dirfd(d), name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
			if (sub < 0 && errno == ENOENT)
				continue;
			if (sub < 0 || (r = scan_dir(sub, depth + 1, s)) < 0) {
				r = r < 0 ? r : -errno;
				break;
			}
		}
	}
	if (r == 0 && !s->what && !s->too_big && errno != 0)
		r = -errno; /* readdir() failed */
	closedir(d);
	if (!s->what) {
		s->rel_len = base;
		s->rel[base] = '\0';
	}
	return r;
}

/* Walk the tree (a directory or a single file) behind tree_fd; see scan_dir(). */
static int
scan_tree(int tree_fd, const struct stat *st, struct scan *s)
{
	*s = (struct scan){0};
	if (S_ISREG(st->st_mode)) {
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", tree_fd);
		if (st->st_mode & (S_ISUID | S_ISGID)) {
			s->what = st->st_mode & S_ISUID ? "a setuid file" : "a setgid file";
			return 0;
		}
		ssize_t n = getxattr(proc, "security.capability", NULL, 0);
		if (n >= 0)
			s->what = "a file with capabilities";
		return n >= 0 || no_xattr(errno) ? 0 : -errno;
	}
	if (!S_ISDIR(st->st_mode))
		return 0;
	int fd = openat(tree_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return scan_dir(fd, 0, s);
}

/*
 * Who the cell is in a readWrite tree whose root has owner and mode st (docs/sandbox.md,
 * "Who owns what a cell writes"): bound as is (*ret_map false: run.user's own host ids,
 * which may write it as any process of theirs could), or idmapped so that the tree's owner
 * and group on disk are the cell's host uid and gid. Never uid or gid 0: through an
 * idmapped mount the kernel lets a cell write only inodes whose owner and group are both
 * mapped (HAS_UNMAPPED_ID), so the cell then writes nothing but files of the tree's
 * (non-root) owner and group. Returns NULL, or why the tree cannot be granted that way.
 */
static const char *
rw_identity(const struct sb_view_config *cfg, const struct stat *st, bool *ret_map, uid_t *ret_uid,
    gid_t *ret_gid)
{
	if (!cfg->own_ids && writable_by(st, cfg->host_uid, cfg->host_gid)) {
		*ret_map = false;
		return NULL;
	}
	if (st->st_uid == 0 || st->st_gid == 0)
		return "is owned by root (uid or gid 0): a cell never writes as host root "
		       "(chown it to another user and group, or use tmpfs)";
	*ret_map = true;
	*ret_uid = st->st_uid;
	*ret_gid = st->st_gid;
	return NULL;
}

/*
 * A readWrite tree is granted as rw_identity() says only when its walk found no setuid,
 * setgid or file-capability file and ended within the caps; otherwise, and when the
 * filesystem cannot be idmapped, it is reported through cfg->degraded (the profile decides:
 * hardened refuses the cell) and bound as is, with the cell's own host ids and no idmap,
 * so that it acts there as any unprivileged host user.
 */
static int
grant_read_write(struct builder *b, const struct item *it, int tree)
{
	char why[sizeof(((struct backend_degraded *)0)->reason)] = "";
	struct stat st;
	bool map = false;
	uid_t from_uid = 0;
	gid_t from_gid = 0;
	int r;

	if (fstat(tree, &st) < 0)
		return fail(b, -errno, "%s: %s: %s", it->origin, it->source, strerror(errno));
	const char *problem = rw_identity(b->cfg, &st, &map, &from_uid, &from_gid);
	if (problem)
		snprintf(why, sizeof(why), "%s %s", it->source, problem);
	else {
		_cleanup_free_ struct scan *sc = malloc(sizeof(*sc));
		if (!sc)
			return -ENOMEM;
		if ((r = scan_tree(tree, &st, sc)) < 0)
			return fail(b, r, "%s: %s: cannot be checked for setuid files: %s",
			    it->origin, it->source, strerror(-r));
		if (sc->what)
			snprintf(why, sizeof(why),
			    "%s%s is %s a cell could rewrite (take it out, or use tmpfs)",
			    it->source, sc->rel, sc->what);
		else if (sc->too_big)
			snprintf(why, sizeof(why),
			    "%s: over %d entries or %d levels, not all checked for setuid files "
			    "(grant a smaller tree, or use tmpfs)",
			    it->source, SB_VIEW_SCAN_MAX_ENTRIES, SB_VIEW_SCAN_MAX_DEPTH);
	}
	if (!why[0] && map) {
		int ns = idmap_userns(from_uid, from_gid, b->cfg->host_uid, b->cfg->host_gid);
		struct mount_attr a = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)ns};
		if (ns < 0 || mount_setattr(tree, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0) {
			r = ns < 0 ? ns : -errno;
			snprintf(why, sizeof(why),
			    "%s cannot be idmapped (%s): what the cell writes would not keep a "
			    "stable owner",
			    it->source, strerror(-r));
		}
		safe_close(ns);
	}
	/* Under portable the cell then runs with the tree bound as is (docs/sandbox.md). */
	if (why[0] && b->cfg->degraded)
		backend_degrade(b->cfg->degraded, it->origin + strlen("spec."), why);
	return 0;
}

static int
open_bind_source(struct builder *b, const struct item *it, int *ret)
{
	char where[PATH_MAX];
	_cleanup_close_ int fd = -EBADF;
	int r = resolve_source(it->source, &fd, where, sizeof(where));
	/* where: the path walked up to the refusal (the source itself, or a part of it). */
	bool same = strcmp(where, it->source) == 0;
	if (r == -ELOOP)
		return fail(b, r,
		    "%s: %s%s%s: a symlink, not followed: only root's own in directories only root "
		    "can write are (a cell or another user could have planted it)",
		    it->origin, it->source, same ? "" : ": ", same ? "" : where);
	if (r == -EXDEV)
		return fail(b, r,
		    "%s: %s%s%s: a symlink's '..' out of directories only root can write, not "
		    "followed",
		    it->origin, it->source, same ? "" : ": ", same ? "" : where);
	if (r < 0)
		return fail(b, r, "%s: %s: %s", it->origin, it->source, strerror(-r));
	_cleanup_close_ int tree =
	    open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	if (tree < 0)
		return fail(b, -errno, "%s: %s: cannot clone the mount: %s", it->origin, it->source,
		    strerror(errno));
	struct statfs sf;
	if (fstatfs(tree, &sf) < 0 || sf.f_type == PROC_SUPER_MAGIC)
		return fail(b, -EPERM, "%s: %s: a procfs cannot be shown to a cell", it->origin,
		    it->source);
	r = set_attrs(tree,
	    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (it->read_only ? MOUNT_ATTR_RDONLY : 0), 0);
	if (r < 0)
		return fail(b, r, "%s: %s: cannot set mount attributes: %s", it->origin, it->source,
		    strerror(-r));
	if (!it->read_only && (r = grant_read_write(b, it, tree)) < 0)
		return r;
	*ret = TAKE_FD(tree);
	return 0;
}

static int
write_secrets(struct builder *b, int tree)
{
	const struct sb_view_config *cfg = b->cfg;
	const struct spec_strv *refs = &cfg->spec->secret_refs;
	for (size_t i = 0; i < refs->n; i++) {
		const char *ref = refs->v[i];
		if (!cfg->secret_values[i])
			return fail(b, -ENOENT, "spec.authority.secretRefs[%zu]: %s: no value", i,
			    ref);
		if (strchr(ref, '/') || strcmp(ref, ".") == 0 || strcmp(ref, "..") == 0)
			return fail(b, -EINVAL,
			    "spec.authority.secretRefs[%zu]: not usable as a file "
			    "name",
			    i);
		_cleanup_close_ int fd = openat(tree, ref,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0400);
		if (fd < 0)
			return fail(b, -errno,
			    "spec.authority.secretRefs[%zu]: cannot create the "
			    "secret file: %s",
			    i, strerror(errno));
		int r = fd_write_all(fd, cfg->secret_values[i], cfg->secret_lengths[i]);
		if (r >= 0 && fchown(fd, cfg->host_uid, cfg->host_gid) < 0)
			r = -errno;
		if (r >= 0 && fchmod(fd, 0400) < 0)
			r = -errno;
		if (r < 0)
			return fail(b, r,
			    "spec.authority.secretRefs[%zu]: cannot write the secret "
			    "file: %s",
			    i, strerror(-r));
	}
	return 0;
}

/*
 * size= and nr_inodes= of a tmpfs the cell can write: the configured bounds (view.h), or
 * for its /dev, which is read-only once populated, room for its few nodes and links. An
 * empty size: the kernel's defaults (no bound configured).
 */
static void
tmpfs_bounds(const struct sb_view_config *cfg, bool dev, char size[static 32],
    char inodes[static 32])
{
	size[0] = inodes[0] = '\0';
	if (dev) {
		snprintf(size, 32, "64k");
		snprintf(inodes, 32, "64");
	} else if (cfg->tmpfs_size_bytes) {
		snprintf(size, 32, "%llu", (unsigned long long)cfg->tmpfs_size_bytes);
		snprintf(inodes, 32, "%llu", (unsigned long long)MAX(cfg->tmpfs_nr_inodes, 64));
	}
}

/* The secrets tmpfs: exactly room for the files (one page or more each), read-only after. */
static void
secrets_bounds(const struct sb_view_config *cfg, char size[static 32], char inodes[static 32])
{
	uint64_t bytes = 4096;
	size_t n = cfg->spec->secret_refs.n;
	for (size_t i = 0; i < n; i++)
		bytes += (cfg->secret_lengths[i] + 4095) & ~(uint64_t)4095;
	snprintf(size, 32, "%llu", (unsigned long long)bytes);
	snprintf(inodes, 32, "%zu", n + 8);
}

static int
realize(struct builder *b, const struct item *it)
{
	_cleanup_close_ int tree = -EBADF, target = -EBADF;
	char uid[16], gid[16];
	bool want_dir = true, own = false, rw_rule = false;
	int r;

	snprintf(uid, sizeof(uid), "%u", (unsigned)b->cfg->host_uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)b->cfg->host_gid);

	switch (it->kind) {
	case ITEM_SYMLINK: {
		/* Created in its parent directory, which must be in one of our own tmpfs. */
		char parent[PATH_MAX];
		const char *slash = strrchr(it->target, '/');
		size_t n = (size_t)(slash - it->target);
		if (n >= sizeof(parent))
			return -ENAMETOOLONG;
		memcpy(parent, it->target, n);
		parent[n] = '\0';
		const struct mounted *m = enclosing(b, n ? parent : "/", true);
		if (!m->own)
			return fail(b, -EROFS,
			    "%s: %s: cannot create a symlink on a host filesystem", it->origin,
			    it->target);
		/* The parent is the mount's root (the usual case): its fd is used as is. */
		_cleanup_close_ int owned = -EBADF;
		int dfd = m->fd;
		if (strcmp(m->target, n ? parent : "/") != 0) {
			dfd = owned = resolve_create(m->fd, relative_to(m, parent), true, true);
			if (dfd < 0)
				return fail(b, dfd, "%s: %s: %s", it->origin, parent,
				    strerror(-dfd));
		}
		if (symlinkat(it->source, dfd, slash + 1) < 0)
			return fail(b, -errno, "%s: %s: cannot create the symlink: %s", it->origin,
			    it->target, strerror(errno));
		return 0;
	}
	case ITEM_BIND: {
		if ((r = open_bind_source(b, it, &tree)) < 0)
			return r;
		struct stat st;
		if (fstat(tree, &st) < 0)
			return -errno;
		want_dir = S_ISDIR(st.st_mode);
		rw_rule = !it->read_only;
		break;
	}
	case ITEM_NODE: {
		/*
		 * Made in the cell's own /dev tmpfs (the spec cannot declare /dev): one mknodat()
		 * instead of a mount to create, attach and tear down per device; the tmpfs is
		 * read-only once populated. A runner without CAP_MKNOD, or whose device cgroup
		 * refuses mknod (a container, systemd's PrivateDevices=), binds the host's node
		 * instead, checked to be the expected device; only /dev/null is then required.
		 */
		const struct mounted *m = enclosing(b, it->target, false);
		const char *name = it->target + strlen("/dev/");
		if (!m->own || strcmp(m->target, "/dev") != 0)
			return fail(b, -EINVAL, "%s: not in the cell's own /dev", it->target);
		if (mknodat(m->fd, name, S_IFCHR | 0666, makedev(it->major, it->minor)) == 0) {
			if (fchmodat(m->fd, name, 0666, 0) < 0)
				return fail(b, -errno, "%s: cannot set the mode of the device node: %s",
				    it->target, strerror(errno));
			return 0;
		}
		if (errno != EPERM && errno != EACCES)
			return fail(b, -errno, "%s: cannot create the device node: %s", it->target,
			    strerror(errno));
		tree = open_tree(AT_FDCWD, it->target,
		    OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
		struct stat nst;
		if (tree < 0 || fstat(tree, &nst) < 0 || !S_ISCHR(nst.st_mode) ||
		    nst.st_rdev != makedev(it->major, it->minor)) {
			if (strcmp(name, "null") != 0)
				return 0;
			return fail(b, -ENODEV,
			    "/dev/null: cannot be made here (no CAP_MKNOD) and the host's is missing "
			    "or not the device 1:3");
		}
		if ((r = set_attrs(tree, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NODEV)) <
		    0)
			return fail(b, r, "%s: cannot set mount attributes: %s", it->target,
			    strerror(-r));
		want_dir = false;
		break;
	}
	case ITEM_TMPFS:
	case ITEM_DEV: {
		char size[32], inodes[32];
		tmpfs_bounds(b->cfg, it->kind == ITEM_DEV, size, inodes);
		const char *opts[11] = {"mode", it->mode};
		size_t n = 2;
		if (size[0]) {
			opts[n++] = "size", opts[n++] = size;
			opts[n++] = "nr_inodes", opts[n++] = inodes;
		}
		if (it->workload_owned) {
			opts[n++] = "uid", opts[n++] = uid;
			opts[n++] = "gid", opts[n++] = gid;
		}
		if ((r = make_tmpfs("tmpfs", opts, it->attrs, &tree)) < 0)
			return fail(b, r, "%s: %s: cannot create a tmpfs: %s", it->origin,
			    it->target, strerror(-r));
		own = true;
		rw_rule = true;
		break;
	}
	case ITEM_DEVPTS: {
		const char *opts[] = {"ptmxmode", "0666", "mode", "0620", NULL};
		if ((r = make_tmpfs("devpts", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, &tree)) <
		    0)
			return fail(b, r, "/dev/pts: cannot create a devpts instance: %s",
			    strerror(-r));
		break;
	}
	case ITEM_SECRETS: {
		char size[32], inodes[32];
		secrets_bounds(b->cfg, size, inodes);
		const char *opts[] = {"mode", "0500", "size", size, "nr_inodes", inodes, "uid", uid,
		    "gid", gid, NULL};
		if ((r = make_tmpfs("tmpfs", opts,
		         MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, &tree)) < 0)
			return fail(b, r, "/run/secrets: cannot create a tmpfs: %s", strerror(-r));
		if ((r = write_secrets(b, tree)) < 0)
			return r;
		if ((r = set_attrs(tree, MOUNT_ATTR_RDONLY, 0)) < 0)
			return fail(b, r, "/run/secrets: cannot make it read-only: %s",
			    strerror(-r));
		break;
	}
	case ITEM_PROC:
		break;
	default:
		return -EINVAL;
	}

	if ((r = resolve_target(b, it, want_dir, &target)) < 0)
		return r;
	if (rw_rule && (r = ll_add(&b->ll_rw, &b->n_ll_rw, tree)) < 0)
		return r;
	if (it->kind == ITEM_DEV)
		b->ro_at_end[b->n_ro_at_end++] = tree;
	if (tree >= 0 && (it->kind != ITEM_NODE))
		b->mounted[b->n_mounted++] =
		    (struct mounted){.target = it->target, .fd = tree, .own = own};
	return push_mount(b, it->kind == ITEM_PROC ? SB_MOUNT_PROC : SB_MOUNT_TREE, TAKE_FD(tree),
	    TAKE_FD(target), it->target);
}

static int
make_root(struct builder *b, bool root_is_host, bool root_ro, size_t root_index, int *ret)
{
	int r;
	if (root_is_host) {
		struct item it = {.kind = ITEM_BIND,
		    .target = "/",
		    .source = "/",
		    .read_only = root_ro};
		snprintf(it.origin, sizeof(it.origin), "spec.authority.filesystem.%s[%zu]",
		    root_ro ? "readOnly" : "readWrite", root_index);
		if ((r = open_bind_source(b, &it, ret)) < 0)
			return r;
		if (!root_ro && (r = ll_add(&b->ll_rw, &b->n_ll_rw, *ret)) < 0)
			return r;
		return ll_add(&b->ll_ro, &b->n_ll_ro, *ret);
	}
	static const char *const opts[] = {"mode", "0755", "size", "1m", "nr_inodes", "4096", NULL};
	if ((r = make_tmpfs("tmpfs", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, ret)) < 0)
		return fail(b, r, "cannot create the cell's root tmpfs: %s", strerror(-r));
	return ll_add(&b->ll_ro, &b->n_ll_ro, *ret);
}

static void
strv_free_all(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

int
sb_view_build(const struct sb_view_config *cfg, struct sb_view *ret, char *err, size_t err_size)
{
	struct sb_view v = {.root_fd = -EBADF};
	struct builder b = {.cfg = cfg, .view = &v, .err = err, .err_size = err_size};
	bool root_ro = true;
	size_t root_index = 0;
	bool root_is_host = spec_declares_root(cfg->spec, &root_ro, &root_index);
	int r;

	if (err_size)
		err[0] = '\0';
	if ((r = collect(&b, root_is_host)) < 0)
		goto out;
	r = -ENOMEM;
	v.mounts = calloc(b.n_items + 1, sizeof(*v.mounts));
	b.mounted = calloc(b.n_items + 1, sizeof(*b.mounted));
	b.ro_at_end = calloc(b.n_items + 1, sizeof(int));
	if (!v.mounts || !b.mounted || !b.ro_at_end)
		goto out;
	if ((r = make_root(&b, root_is_host, root_ro, root_index, &v.root_fd)) < 0)
		goto out;
	b.mounted[b.n_mounted++] =
	    (struct mounted){.target = "/", .fd = v.root_fd, .own = !root_is_host};
	for (size_t i = 0; i < b.n_items; i++) {
		if (b.items[i].dropped)
			continue;
		if ((r = realize(&b, &b.items[i])) < 0)
			goto out;
	}
	/* Populated: the root tmpfs and /dev become read-only for good. */
	if (!root_is_host)
		b.ro_at_end[b.n_ro_at_end++] = v.root_fd;
	for (size_t i = 0; i < b.n_ro_at_end; i++) {
		struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY};
		if (mount_setattr(b.ro_at_end[i], "", AT_EMPTY_PATH, &a, sizeof(a)) < 0) {
			r = fail(&b, -errno, "cannot make the cell's root read-only: %s",
			    strerror(errno));
			goto out;
		}
	}
	if (!b.ll_rw && (r = ll_add(&b.ll_rw, &b.n_ll_rw, v.root_fd)) < 0)
		goto out;
	/* ll_rw was never empty above (/tmp, /dev); the fallback keeps the list well-formed. */
	v.landlock_ro = TAKE_PTR(b.ll_ro);
	v.landlock_rw = TAKE_PTR(b.ll_rw);
	*ret = v;
	v = (struct sb_view){.root_fd = -EBADF};
	r = 0;
out:
	if (r == -ENOMEM && err_size && !err[0])
		snprintf(err, err_size, "out of memory while building the cell's view");
	else if (r < 0 && err_size && !err[0])
		snprintf(err, err_size, "cannot build the cell's view: %s", strerror(-r));
	for (size_t i = 0; i < b.n_items; i++)
		free(b.items[i].owned);
	free(b.items);
	free(b.mounted);
	free(b.ro_at_end);
	strv_free_all(b.ll_ro);
	strv_free_all(b.ll_rw);
	sb_view_done(&v);
	return r;
}

void
sb_view_release_plan(struct sb_view *v)
{
	for (size_t i = 0; i < v->n_mounts; i++) {
		v->mounts[i].tree_fd = safe_close(v->mounts[i].tree_fd);
		v->mounts[i].target_fd = safe_close(v->mounts[i].target_fd);
		free(v->mounts[i].target);
		v->mounts[i].target = NULL;
	}
	free(v->mounts);
	v->mounts = NULL;
	v->n_mounts = 0;
	strv_free_all(v->landlock_ro);
	strv_free_all(v->landlock_rw);
	v->landlock_ro = v->landlock_rw = NULL;
}

void
sb_view_done(struct sb_view *v)
{
	if (!v)
		return;
	sb_view_release_plan(v);
	v->root_fd = safe_close(v->root_fd);
}

/*
 * In the runner, while the cell's setup process creates its namespaces (the network
 * namespace alone takes about 0.35 ms): move every detached tree onto its mount point
 * inside the root's detached tree, in plan order, so that the cell only has to attach the
 * root (one move instead of one per mount, off the cell's critical path). Kernels from
 * 6.15 accept a detached tree as the target; an older one refuses the first move, and
 * whatever is not assembled here the cell moves itself (sb_view_attach()). The mount
 * points were resolved when the view was built; this only moves the same trees onto the
 * same fds the cell would use. Returns how many leading entries of the plan are done (the
 * /proc entries are always left to the cell: its procfs belongs to its pid namespace).
 */
size_t
sb_view_assemble(struct sb_view *v)
{
	size_t i = 0;
	for (; i < v->n_mounts; i++) {
		const struct sb_mount *m = &v->mounts[i];
		if (m->kind != SB_MOUNT_TREE)
			continue;
		if (move_mount(m->tree_fd, "", m->target_fd, "",
		        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			break;
	}
	return i;
}

size_t
sb_view_pending(const struct sb_view *v, size_t n_assembled, struct sb_attach *ret)
{
	size_t n = 0;
	for (size_t i = 0; i < v->n_mounts; i++) {
		const struct sb_mount *m = &v->mounts[i];
		if (m->kind == SB_MOUNT_TREE && i < n_assembled)
			continue;
		ret[n++] = (struct sb_attach){.kind = m->kind,
		    .tree_fd = m->kind == SB_MOUNT_TREE ? m->tree_fd : -1,
		    .target_fd = m->target_fd};
	}
	return n;
}

/* ---- in the cell's setup process: async-signal-safe from here on ---- */

int
sb_view_attach(int root_fd, const struct sb_attach *list, size_t n, const char **ret_step)
{
	/* Any directory of the copied host tree will do as a place to attach the root. */
	static const char *const attach_points[] = {"/tmp", "/mnt", "/run", "/var/tmp", "/", NULL};
	int r = -ENOENT;

	*ret_step = "mount root";
	for (size_t i = 0; attach_points[i]; i++) {
		if (move_mount(root_fd, "", AT_FDCWD, attach_points[i], MOVE_MOUNT_F_EMPTY_PATH) ==
		    0) {
			r = 0;
			break;
		}
		r = -errno;
	}
	if (r < 0)
		return r;

	for (size_t i = 0; i < n; i++) {
		const struct sb_attach *m = &list[i];
		if (m->kind == SB_MOUNT_PROC) {
			*ret_step = "mount proc";
			int fs = fsopen("proc", FSOPEN_CLOEXEC);
			if (fs < 0)
				return -errno;
			if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
				r = -errno;
				close(fs);
				return r;
			}
			int mnt = fsmount(fs, FSMOUNT_CLOEXEC,
			    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
			r = mnt < 0 ? -errno : 0;
			close(fs);
			if (r < 0)
				return r;
			struct statfs sf;
			if (fstatfs(mnt, &sf) < 0 || sf.f_type != PROC_SUPER_MAGIC) {
				close(mnt);
				return -EIO;
			}
			r = move_mount(mnt, "", m->target_fd, "",
			        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0
			    ? -errno
			    : 0;
			close(mnt);
			if (r < 0)
				return r;
			continue;
		}
		*ret_step = "mount";
		if (m->kind != SB_MOUNT_TREE)
			return -EINVAL;
		if (move_mount(m->tree_fd, "", m->target_fd, "",
		        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			return -errno;
	}

	*ret_step = "pivot_root";
	if (fchdir(root_fd) < 0)
		return -errno;
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return -errno;
	/* The host's tree is now stacked on ".": detach it, and with it the host's /proc. */
	if (umount2(".", MNT_DETACH) < 0)
		return -errno;
	if (chdir("/") < 0)
		return -errno;
	return 0;
}

/* ---- after the run, in the runner ---- */

static bool
workload_can_read(const struct stat *st, uid_t uid, gid_t gid)
{
	if (st->st_uid == uid)
		return st->st_mode & S_IRUSR;
	if (st->st_gid == gid)
		return st->st_mode & S_IRGRP;
	return st->st_mode & S_IROTH;
}

int
sb_view_open_artifact(int root_fd, const char *path, uid_t host_uid, gid_t host_gid, int *ret_fd)
{
	char proc[64];
	struct stat st, st2;
	int r;

	if (root_fd < 0)
		return -ENOENT;
	/*
	 * Both opens run in a child with the workload's host uid/gid, no supplementary groups
	 * and no capabilities (spawn_open_as()): directories the workload could not search and
	 * files it could not read stay closed, whatever groups or capabilities the runner has
	 * (switching only fsuid/fsgid would keep both).
	 *
	 * O_PATH first: a device or a FIFO is never opened, only looked at.
	 */
	struct open_how how = {
	    .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
	    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	_cleanup_close_ int pfd = -EBADF;
	r = spawn_open_as(host_uid, host_gid, root_fd, path, &how, &pfd);
	if (r < 0)
		return r;
	if (fstat(pfd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (S_ISLNK(st.st_mode))
		return -ELOOP;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (!workload_can_read(&st, host_uid, host_gid))
		return -EACCES;
	/* Then opened for reading through the O_PATH fd (the child inherits it), again with the
	 * workload's credentials: the kernel's own check (ACLs included) decides. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	how = (struct open_how){.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY};
	int fd = -EBADF;
	r = spawn_open_as(host_uid, host_gid, AT_FDCWD, proc, &how, &fd);
	if (r < 0)
		return r;
	if (fstat(fd, &st2) < 0 || st2.st_ino != st.st_ino || st2.st_dev != st.st_dev ||
	    !S_ISREG(st2.st_mode)) {
		safe_close(fd);
		return -EIO;
	}
	*ret_fd = fd;
	return 0;
}
