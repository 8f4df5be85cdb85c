#include "backend/cgroup.h"

#include <sys/file.h>
#include <sys/xattr.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>

#include <linux/magic.h>

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fd.h"
#include "base/log.h"
#include "base/macro.h"
#include "base/timeutil.h"

enum v1_controller {
	V1_MEMORY,
	V1_PIDS,
	V1_CPU,
	_V1_MAX,
};

static const char *const v1_names[_V1_MAX] = {
    [V1_MEMORY] = "memory",
    [V1_PIDS] = "pids",
    [V1_CPU] = "cpu",
};

struct cgroup_dir {
	char *path; /* absolute directory path */
	char *rel;  /* path relative to the hierarchy's root, for membership checks */
	int dirfd;
	int procs_fd; /* cgroup.procs, O_WRONLY, for joining (v2) */
	int tasks_fd; /* v1 only: "tasks", O_WRONLY; a single-threaded child writing "0" here
	               * moves itself without the global lock cgroup.procs takes */
};

struct cgroup {
	struct cgroup_dir v2;
	struct cgroup_dir v1[_V1_MAX];
	int v2_events_fd;
	bool v2_memory;
	bool has_kill;
	char *parent; /* the parent cgroup path given to cgroup_create(), or NULL */
	char *name;
};

/* The cell cgroups cellvisor makes are named "cellvisor-<cellId>-<8 hex digits>". */
#define CGROUP_CELL_PREFIX "cellvisor-"
/*
 * And carry this extended attribute (trusted.*: only a privileged process sets it), whose
 * value lists every directory of the cell, one "<hierarchy>:<path>" per line. Only what
 * carries it is ever collected: a cgroup of the same name made by anyone else is not.
 */
#define CGROUP_CELL_XATTR "trusted.cellvisor.cell"
#define CGROUP_CELL_XATTR_MAX 4096
/*
 * A cell's cgroup directory is flock()ed by its runner for the whole run. An unlocked one
 * at least this old (ctime) belongs to a runner that is gone; a younger one may be between
 * its runner's mkdir() and flock().
 */
#define CGROUP_STALE_MIN_AGE_S 2
/* At most this many stale cells are collected per call, all within this time budget (the
 * caller's own cell is running meanwhile); what is not done is left for a later run. */
#define CGROUP_STALE_MAX       8
#define CGROUP_STALE_BUDGET_MS 100

/*
 * A cell's directories are 0711: only their owner (the runner) may list them or open them,
 * hence flock() them (flock needs an fd on the directory itself, which no O_PATH fd gives),
 * so no other user can hold a live cell's lock or a dead one's. The files inside keep the
 * kernel's modes: the workload (run.user) still reads its own limits by name, as
 * container-aware runtimes do (memory.max, pids.max), and cgroup.procs stays writable by
 * root only.
 */
#define CGROUP_CELL_MODE 0711

/* How deep sub-cgroups of a cell are followed when signalling and removing. */
#define CGROUP_MAX_DEPTH 16

static struct cgroup_layout cached; /* probe_mounts() */
static bool cached_valid;
static struct cgroup_layout cached_self; /* cgroup_probe_under(NULL) */
static bool cached_self_valid;
static char self_v2[512];
static char self_v1[_V1_MAX][512];

static bool
is_cgroupfs(const char *path, long magic)
{
	struct statfs sfs;
	return statfs(path, &sfs) == 0 && sfs.f_type == magic;
}

/* Parse /proc/self/cgroup into self_v2 and self_v1[]. */
static void
read_self_paths(void)
{
	char buf[8192];

	self_v2[0] = '\0';
	for (int i = 0; i < _V1_MAX; i++)
		self_v1[i][0] = '\0';
	if (fd_read_file_at(AT_FDCWD, "/proc/self/cgroup", buf, sizeof(buf)) < 0)
		return;
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':');
		if (!c1)
			continue;
		char *c2 = strchr(c1 + 1, ':');
		if (!c2)
			continue;
		*c2 = '\0';
		const char *ctrls = c1 + 1, *path = c2 + 1;
		if (*ctrls == '\0') {
			snprintf(self_v2, sizeof(self_v2), "%s", path);
			continue;
		}
		char list[256];
		snprintf(list, sizeof(list), "%s", ctrls);
		char *s2 = NULL;
		for (char *c = strtok_r(list, ",", &s2); c; c = strtok_r(NULL, ",", &s2))
			for (int i = 0; i < _V1_MAX; i++)
				if (strcmp(c, v1_names[i]) == 0)
					snprintf(self_v1[i], sizeof(self_v1[i]), "%s", path);
	}
}

/* Whether name is a word of list (cgroup.controllers: names separated by spaces). */
static bool
controller_listed(const char *list, const char *name)
{
	for (const char *p = list; (p = strstr(p, name)); p += strlen(name)) {
		bool start = p == list || isspace((unsigned char)p[-1]);
		char end = p[strlen(name)];
		if (start && (end == '\0' || isspace((unsigned char)end)))
			return true;
	}
	return false;
}

/* What the mounts offer, and our own cgroup paths: the same for the whole process. */
static void
probe_mounts(void)
{
	if (cached_valid)
		return;
	struct cgroup_layout l = {0};
	read_self_paths();

	if (is_cgroupfs("/sys/fs/cgroup", CGROUP2_SUPER_MAGIC))
		snprintf(l.v2_root, sizeof(l.v2_root), "/sys/fs/cgroup");
	else if (is_cgroupfs("/sys/fs/cgroup/unified", CGROUP2_SUPER_MAGIC))
		snprintf(l.v2_root, sizeof(l.v2_root), "/sys/fs/cgroup/unified");
	for (int i = 0; i < _V1_MAX; i++) {
		char p[600];
		snprintf(p, sizeof(p), "/sys/fs/cgroup/%s", v1_names[i]);
		bool ok = is_cgroupfs(p, CGROUP_SUPER_MAGIC) && self_v1[i][0];
		if (i == V1_MEMORY)
			l.v1_memory = ok;
		else if (i == V1_PIDS)
			l.v1_pids = ok;
		else
			l.v1_cpu = ok;
	}
	l.v1_freezer = is_cgroupfs("/sys/fs/cgroup/freezer", CGROUP_SUPER_MAGIC);
	cached = l;
	cached_valid = true;
}

static const char *cgroup_parent_relative(const char *parent);

/* A parent as cgroup_create() takes it, as a path relative to each hierarchy's root, or
 * NULL when it is not one. */
static const char *
parent_base(const char *parent)
{
	parent = cgroup_parent_relative(parent);
	if (parent[0] != '/' || strstr(parent, "..") || strlen(parent) > 400)
		return NULL;
	return parent;
}

/*
 * Whether a process in our cgroup (self) may be moved into a cell under base: v2 asks for
 * write access to the cgroup.procs of the nearest common ancestor of the two (a delegated
 * subtree is usable only from inside it, unless we are root).
 */
static bool
can_move_into(const char *root, const char *self, const char *base)
{
	size_t common = 0;
	for (size_t i = 0;; i++) {
		bool end_s = self[i] == '\0' || self[i] == '/';
		bool end_b = base[i] == '\0' || base[i] == '/';
		if (end_s && end_b)
			common = i; /* both have a whole component up to here */
		if (self[i] != base[i] || self[i] == '\0')
			break;
	}
	char f[1400];
	snprintf(f, sizeof(f), "%s%.*s/cgroup.procs", root, (int)common, base);
	return faccessat(AT_FDCWD, f, W_OK, AT_EACCESS) == 0;
}

int
cgroup_probe_under(const char *parent, struct cgroup_layout *ret)
{
	probe_mounts();
	if (!parent && cached_self_valid) {
		*ret = cached_self;
		return 0;
	}
	struct cgroup_layout l = cached;
	const char *base = parent ? parent_base(parent) : self_v2;
	if (l.v2_root[0] && base) {
		/*
		 * The v2 tree is usable where cells are made: under the parent when one is given
		 * (a delegated subtree), else under our own cgroup. Likewise the controllers a
		 * cell can get are those that base has.
		 */
		char dir[1024];
		snprintf(dir, sizeof(dir), "%s%s", l.v2_root, strcmp(base, "/") == 0 ? "" : base);
		l.v2 = faccessat(AT_FDCWD, dir, W_OK, AT_EACCESS) == 0 &&
		    can_move_into(l.v2_root, self_v2, base);
		if (l.v2) {
			char f[1100], list[512];
			snprintf(f, sizeof(f), "%s/cgroup.controllers", dir);
			if (fd_read_file_at(AT_FDCWD, f, list, sizeof(list)) > 0) {
				l.v2_memory = controller_listed(list, "memory");
				l.v2_pids = controller_listed(list, "pids");
				l.v2_cpu = controller_listed(list, "cpu");
			}
		}
	}
	if (!parent) {
		cached_self = l;
		cached_self_valid = true;
	}
	*ret = l;
	return 0;
}

int
cgroup_probe(struct cgroup_layout *ret)
{
	return cgroup_probe_under(NULL, ret);
}

const char *
cgroup_layout_describe(const struct cgroup_layout *l)
{
	bool v1 = l->v1_memory || l->v1_pids || l->v1_cpu;
	if (l->v2 && (l->v2_memory || l->v2_pids))
		return "cgroup v2";
	if (l->v2 && v1)
		return "cgroup v1 limits + v2 tracking (hybrid)";
	if (l->v2)
		return "cgroup v2 (no controllers: tracking only)";
	if (v1)
		return "cgroup v1";
	return "none (process group)";
}

/* Whether the caller may create cgroups under base (parent, or its own) in hierarchy dir. */
static bool
writable_under(const char *root, const char *parent, const char *self)
{
	char dir[1400];
	const char *base = parent ? parent : self;
	snprintf(dir, sizeof(dir), "%s%s", root, strcmp(base, "/") == 0 ? "" : base);
	return faccessat(AT_FDCWD, dir, W_OK, AT_EACCESS) == 0;
}

bool
cgroup_writable(const struct cgroup_layout *l, const char *parent, bool with_limits)
{
	if (parent)
		parent = cgroup_parent_relative(parent);
	if (parent && (parent[0] != '/' || strstr(parent, "..")))
		return false;
	if (l->v2 && !writable_under(l->v2_root, parent, self_v2))
		return false;
	/* Limits without v2 controllers live in the v1 hierarchies (hybrid, v1-only); without
	 * v2, the v1 pids hierarchy tracks membership. */
	const bool v1[_V1_MAX] = {
	    [V1_MEMORY] = with_limits && l->v1_memory && !l->v2_memory,
	    [V1_PIDS] = l->v1_pids && (with_limits ? !l->v2_pids || !l->v2 : !l->v2),
	    [V1_CPU] = false,
	};
	for (int i = 0; i < _V1_MAX; i++) {
		char root[64];
		snprintf(root, sizeof(root), "/sys/fs/cgroup/%s", v1_names[i]);
		if (v1[i] && !writable_under(root, parent, self_v1[i]))
			return false;
	}
	return l->v2 || l->v1_pids;
}

bool
cgroup_can_limit_memory(const struct cgroup_layout *l)
{
	return (l->v2 && l->v2_memory) || l->v1_memory;
}

bool
cgroup_can_limit_pids(const struct cgroup_layout *l)
{
	return (l->v2 && l->v2_pids) || l->v1_pids;
}

bool
cgroup_can_limit_cpu(const struct cgroup_layout *l)
{
	return (l->v2 && l->v2_cpu) || l->v1_cpu;
}

static void
dir_close(struct cgroup_dir *d)
{
	safe_close(d->dirfd);
	safe_close(d->procs_fd);
	safe_close(d->tasks_fd);
	d->dirfd = d->procs_fd = d->tasks_fd = -EBADF;
}

/* Create <root><base>/<name>; fill d. base is the parent's path relative to root. */
static int
dir_create(struct cgroup_dir *d, const char *root, const char *base, const char *name)
{
	char rel[1024], path[1400];

	if (strcmp(base, "/") == 0)
		base = "";
	snprintf(rel, sizeof(rel), "%s/%s", base, name);
	snprintf(path, sizeof(path), "%s%s", root, rel);
	if (mkdir(path, CGROUP_CELL_MODE) < 0)
		return -errno;
	d->path = strdup(path);
	d->rel = strdup(rel);
	if (!d->path || !d->rel)
		return -ENOMEM;
	d->dirfd = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (d->dirfd < 0)
		return -errno;
	/* Exactly that mode, whatever the umask: only we may open (and so flock) it. */
	if (fchmod(d->dirfd, CGROUP_CELL_MODE) < 0)
		return -errno;
	d->procs_fd = openat(d->dirfd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
	if (d->procs_fd < 0)
		return -errno;
	d->tasks_fd = openat(d->dirfd, "tasks", O_WRONLY | O_CLOEXEC);
	return 0;
}

static int
write_u64(int dirfd, const char *file, uint64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	return fd_write_file_at(dirfd, file, buf);
}

static int
apply_limits(struct cgroup *cg, const struct cgroup_layout *l, const struct cgroup_limits *lim,
    char *err, size_t err_size)
{
	int r;
	const char *file = NULL;
	const char *where = NULL;

	if (lim->memory_max_bytes) {
		if (l->v2_memory) {
			where = cg->v2.path;
			r = write_u64(cg->v2.dirfd, file = "memory.max", lim->memory_max_bytes);
			if (r >= 0) {
				(void)fd_write_file_at(cg->v2.dirfd, "memory.swap.max", "0");
				(void)fd_write_file_at(cg->v2.dirfd, "memory.oom.group", "1");
			}
		} else {
			where = cg->v1[V1_MEMORY].path;
			r = write_u64(cg->v1[V1_MEMORY].dirfd, file = "memory.limit_in_bytes",
			    lim->memory_max_bytes);
			/* No swap beyond the limit where the kernel accounts it. */
			if (r >= 0)
				(void)write_u64(cg->v1[V1_MEMORY].dirfd,
				    "memory.memsw.limit_in_bytes", lim->memory_max_bytes);
		}
		if (r < 0)
			goto fail;
	}
	if (lim->pids_max) {
		struct cgroup_dir *d = l->v2_pids ? &cg->v2 : &cg->v1[V1_PIDS];
		where = d->path;
		r = write_u64(d->dirfd, file = "pids.max", lim->pids_max);
		if (r < 0)
			goto fail;
	}
	if (lim->cpu_millicores) {
		uint64_t quota = lim->cpu_millicores * 100; /* per 100 ms period */
		if (l->v2_cpu) {
			char buf[64];
			snprintf(buf, sizeof(buf), "%llu 100000", (unsigned long long)quota);
			where = cg->v2.path;
			r = fd_write_file_at(cg->v2.dirfd, file = "cpu.max", buf);
		} else {
			where = cg->v1[V1_CPU].path;
			r = write_u64(cg->v1[V1_CPU].dirfd, file = "cpu.cfs_period_us", 100000);
			if (r >= 0)
				r = write_u64(cg->v1[V1_CPU].dirfd, file = "cpu.cfs_quota_us",
				    quota);
		}
		if (r < 0)
			goto fail;
	}
	return 0;
fail:
	snprintf(err, err_size, "cannot write %s/%s: %s", where, file, strerror(-r));
	return r;
}

static void
cgroup_free(struct cgroup *cg)
{
	if (!cg)
		return;
	dir_close(&cg->v2);
	free(cg->v2.path);
	free(cg->v2.rel);
	for (int i = 0; i < _V1_MAX; i++) {
		dir_close(&cg->v1[i]);
		free(cg->v1[i].path);
		free(cg->v1[i].rel);
	}
	safe_close(cg->v2_events_fd);
	free(cg->parent);
	free(cg->name);
	free(cg);
}

/*
 * Call fn for each sub-cgroup (directory) of dirfd, with an fd on it (opened without following
 * symlinks) and its name. Returns the sum of fn's positive results.
 */
static int
for_each_child(int dirfd, int (*fn)(int parent, int sub, const char *name, void *userdata),
    void *userdata)
{
	int total = 0;
	int dfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return 0;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return 0;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		_cleanup_close_ int sub =
		    openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (sub < 0)
			continue;
		int r = fn(dirfd, sub, de->d_name, userdata);
		if (r > 0)
			total += r;
	}
	closedir(d);
	return total;
}

static int rmdir_children(int dirfd, int depth);

static int
rmdir_child(int parent, int sub, const char *name, void *userdata)
{
	rmdir_children(sub, *(int *)userdata + 1);
	(void)unlinkat(parent, name, AT_REMOVEDIR);
	return 0;
}

/* Remove the sub-cgroups of dirfd depth-first (they must be empty of processes). */
static int
rmdir_children(int dirfd, int depth)
{
	if (depth >= CGROUP_MAX_DEPTH)
		return 0;
	return for_each_child(dirfd, rmdir_child, &depth);
}

/* Remove every directory of cg, sub-cgroups first; up to `tries` rmdir attempts each. */
static int
remove_dirs_tries(struct cgroup *cg, int tries_max)
{
	struct cgroup_dir *dirs[_V1_MAX + 1] = {&cg->v2};
	for (int i = 0; i < _V1_MAX; i++)
		dirs[i + 1] = &cg->v1[i];
	int r = 0;
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		if (!dirs[i]->path)
			continue;
		/* Sub-cgroups the workload made go first (depth-first). */
		if (dirs[i]->dirfd >= 0)
			(void)rmdir_children(dirs[i]->dirfd, 0);
		dir_close(dirs[i]);
		/* rmdir can see EBUSY for a moment after the last task exits. */
		for (int tries = 0; tries < tries_max; tries++) {
			if (rmdir(dirs[i]->path) == 0 || errno == ENOENT)
				break;
			if (errno != EBUSY || tries == tries_max - 1) {
				int e = errno;
				log_debug("rmdir %s: %s", dirs[i]->path, strerror(e));
				if (r == 0)
					r = -e;
				break;
			}
			struct timespec ts = {0, 5 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	return r;
}

static int
remove_dirs(struct cgroup *cg)
{
	return remove_dirs_tries(cg, 200);
}

/*
 * CELLOS_CGROUP_PARENT may name a cgroup path ("/ci/jobs") or, as CellOS's users write it, a
 * directory of the mounted hierarchy ("/sys/fs/cgroup/ci/jobs", or on hybrid hosts
 * "/sys/fs/cgroup/unified/ci/jobs" or "/sys/fs/cgroup/memory/ci/jobs"): both mean the same
 * cgroup, which is created under in every hierarchy the cell uses.
 */
static const char *
cgroup_parent_relative(const char *parent)
{
	static const char mnt[] = "/sys/fs/cgroup";
	static const char *const hierarchies[] = {"unified", "memory", "pids", "cpu", "cpu,cpuacct",
	    "cpuacct,cpu", "freezer", "systemd", NULL};

	if (strncmp(parent, mnt, sizeof(mnt) - 1) != 0 ||
	    (parent[sizeof(mnt) - 1] != '/' && parent[sizeof(mnt) - 1] != '\0'))
		return parent;
	const char *rest = parent + sizeof(mnt) - 1;
	if (!is_cgroupfs("/sys/fs/cgroup", CGROUP2_SUPER_MAGIC))
		for (size_t i = 0; hierarchies[i]; i++) {
			size_t n = strlen(hierarchies[i]);
			if (rest[0] == '/' && strncmp(rest + 1, hierarchies[i], n) == 0 &&
			    (rest[n + 1] == '/' || rest[n + 1] == '\0')) {
				rest += n + 1;
				break;
			}
		}
	return rest[0] ? rest : "/";
}

/*
 * Whether dirfd's directory, or one of the files of it through which processes are moved,
 * killed or frozen, may be written by someone other than us or root. Fills why.
 */
static bool
dir_foreign(int dirfd, const char *path, uid_t self, char *why, size_t why_size)
{
	static const char *const files[] = {".", "cgroup.procs", "cgroup.threads", "cgroup.kill",
	    "cgroup.freeze", "cgroup.subtree_control", "tasks", NULL};
	for (size_t i = 0; files[i]; i++) {
		struct stat st;
		if (fstatat(dirfd, files[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		const char *what = strcmp(files[i], ".") == 0 ? "" : files[i];
		if (st.st_uid != self && st.st_uid != 0) {
			snprintf(why, why_size, "%s%s%s is owned by uid %u, not by the runner (uid %u) "
			    "or root",
			    path, *what ? "/" : "", what, (unsigned)st.st_uid, (unsigned)self);
			return true;
		}
		if (st.st_mode & (S_IWGRP | S_IWOTH)) {
			snprintf(why, why_size, "%s%s%s is writable by group %u or others (mode %04o)",
			    path, *what ? "/" : "", what, (unsigned)st.st_gid,
			    (unsigned)(st.st_mode & 07777));
			return true;
		}
	}
	return false;
}

int
cgroup_parent_foreign(const char *parent, char *why, size_t why_size)
{
	probe_mounts();
	const char *base = parent_base(parent);
	if (!base)
		return 0; /* cgroup_create() refuses it */
	char roots[1 + _V1_MAX][64];
	size_t n = 0;
	if (cached.v2_root[0])
		snprintf(roots[n++], sizeof(roots[0]), "%s", cached.v2_root);
	for (int i = 0; i < _V1_MAX; i++)
		if ((i == V1_MEMORY && cached.v1_memory) || (i == V1_PIDS && cached.v1_pids) ||
		    (i == V1_CPU && cached.v1_cpu))
			snprintf(roots[n++], sizeof(roots[0]), "/sys/fs/cgroup/%s", v1_names[i]);
	uid_t self = geteuid();
	for (size_t i = 0; i < n; i++) {
		/* The parent and each of its ancestors below the hierarchy's root: whoever may
		 * write one of them may move the cell's processes out or kill them all. */
		char path[1400];
		snprintf(path, sizeof(path), "%s%s", roots[i], strcmp(base, "/") == 0 ? "" : base);
		size_t root_len = strlen(roots[i]);
		while (strlen(path) > root_len) {
			_cleanup_close_ int fd =
			    open(path, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
			if (fd >= 0 && dir_foreign(fd, path, self, why, why_size))
				return 1;
			*strrchr(path, '/') = '\0';
		}
	}
	return 0;
}

/* Write CGROUP_CELL_XATTR on every directory of the cell (best effort: without it, the
 * cell is just never collected should its runner die). */
static void
mark_cell(const struct cgroup *cg)
{
	char value[CGROUP_CELL_XATTR_MAX];
	size_t n = 0;
	const struct cgroup_dir *dirs[_V1_MAX + 1] = {&cg->v2};
	const char *kinds[_V1_MAX + 1] = {"v2"};
	for (int i = 0; i < _V1_MAX; i++) {
		dirs[i + 1] = &cg->v1[i];
		kinds[i + 1] = v1_names[i];
	}
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		if (!dirs[i]->path)
			continue;
		int k = snprintf(value + n, sizeof(value) - n, "%s:%s\n", kinds[i], dirs[i]->path);
		if (k < 0 || (size_t)k >= sizeof(value) - n)
			return;
		n += (size_t)k;
	}
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		if (dirs[i]->path && dirs[i]->dirfd >= 0)
			(void)fsetxattr(dirs[i]->dirfd, CGROUP_CELL_XATTR, value, n, 0);
}

int
cgroup_create(const char *name, const char *parent, const struct cgroup_limits *limits, char *err,
    size_t err_size, struct cgroup **ret)
{
	struct cgroup_layout l;
	struct cgroup *cg;
	int r;

	cgroup_probe_under(parent, &l);
	if (parent)
		parent = cgroup_parent_relative(parent);
	if (parent && (parent[0] != '/' || strstr(parent, "..") || strlen(parent) > 400)) {
		snprintf(err, err_size,
		    "cgroup parent '%.64s' must be an absolute cgroup path "
		    "without '..'",
		    parent);
		return -EINVAL;
	}
	cg = calloc(1, sizeof(*cg));
	if (!cg)
		return -ENOMEM;
	cg->v2.dirfd = cg->v2.procs_fd = cg->v2.tasks_fd = cg->v2_events_fd = -EBADF;
	for (int i = 0; i < _V1_MAX; i++)
		cg->v1[i].dirfd = cg->v1[i].procs_fd = cg->v1[i].tasks_fd = -EBADF;

	bool need_v1[_V1_MAX] = {
	    [V1_MEMORY] = limits->memory_max_bytes && !l.v2_memory,
	    [V1_PIDS] = limits->pids_max && !l.v2_pids,
	    [V1_CPU] = limits->cpu_millicores && !l.v2_cpu,
	};
	/* Without v2, the pids hierarchy (or any v1 one) tracks membership. */
	if (!l.v2 && l.v1_pids)
		need_v1[V1_PIDS] = true;

	if (l.v2) {
		const char *base = parent ? parent : self_v2;
		if (limits->memory_max_bytes || limits->pids_max || limits->cpu_millicores) {
			/* Delegate controllers to our children where the parent allows it. */
			char sc[1024];
			snprintf(sc, sizeof(sc), "%s%s/cgroup.subtree_control", l.v2_root,
			    strcmp(base, "/") == 0 ? "" : base);
			_cleanup_close_ int fd = open(sc, O_WRONLY | O_CLOEXEC);
			const struct {
				bool want;
				const char *on, *name;
			} ctl[] = {
			    {l.v2_memory && limits->memory_max_bytes, "+memory", "memory"},
			    {l.v2_pids && limits->pids_max, "+pids", "pids"},
			    {l.v2_cpu && limits->cpu_millicores, "+cpu", "cpu"},
			};
			for (size_t i = 0; i < ARRAY_SIZE(ctl); i++) {
				if (!ctl[i].want)
					continue;
				if (fd >= 0 && write(fd, ctl[i].on, strlen(ctl[i].on)) >= 0)
					continue;
				/*
				 * Usually EBUSY: cgroup v2 gives no controllers to the children of
				 * a cgroup that holds processes (ours, a login session's). Say so
				 * rather than fail later on a missing limit file.
				 */
				int e = fd < 0 ? EACCES : errno;
				if (controller_listed(sc, ctl[i].name))
					continue; /* already enabled by someone else */
				snprintf(err, err_size,
				    "cannot delegate the %s controller to children of %s%s (%s): "
				    "run "
				    "cellvisor in a cgroup with no other processes, or set "
				    "CELLOS_CGROUP_PARENT to a delegated one",
				    ctl[i].name, l.v2_root, strcmp(base, "/") == 0 ? "" : base,
				    strerror(e));
				r = -e;
				goto fail;
			}
		}
		r = dir_create(&cg->v2, l.v2_root, base, name);
		if (r < 0) {
			snprintf(err, err_size, "cannot create cgroup %s%s/%s: %s", l.v2_root,
			    strcmp(base, "/") == 0 ? "" : base, name, strerror(-r));
			goto fail;
		}
		cg->v2_events_fd = openat(cg->v2.dirfd, "cgroup.events", O_RDONLY | O_CLOEXEC);
		cg->has_kill = faccessat(cg->v2.dirfd, "cgroup.kill", W_OK, 0) == 0;
		cg->v2_memory = l.v2_memory;
	}
	for (int i = 0; i < _V1_MAX; i++) {
		if (!need_v1[i])
			continue;
		bool avail = i == V1_MEMORY ? l.v1_memory : i == V1_PIDS ? l.v1_pids : l.v1_cpu;
		char root[64];
		if (!avail) {
			snprintf(err, err_size, "no cgroup %s controller on this host",
			    v1_names[i]);
			r = -EOPNOTSUPP;
			goto fail;
		}
		snprintf(root, sizeof(root), "/sys/fs/cgroup/%s", v1_names[i]);
		const char *base = parent ? parent : self_v1[i];
		r = dir_create(&cg->v1[i], root, base, name);
		if (r < 0) {
			snprintf(err, err_size, "cannot create cgroup %s%s/%s: %s", root,
			    strcmp(base, "/") == 0 ? "" : base, name, strerror(-r));
			goto fail;
		}
	}
	if (!cg->v2.path && !cg->v1[V1_PIDS].path) {
		snprintf(err, err_size, "no usable cgroup hierarchy");
		r = -EOPNOTSUPP;
		goto fail;
	}
	r = apply_limits(cg, &l, limits, err, err_size);
	if (r < 0)
		goto fail;
	/*
	 * Marked as cellvisor's first (an unmarked cell is never collected), then locked until
	 * the fd closes (cgroup_destroy(), or the runner's death): "in use". Nobody else can
	 * open the directory (CGROUP_CELL_MODE), and a marked cell younger than
	 * CGROUP_STALE_MIN_AGE_S is never collected, so the lock cannot be taken first.
	 */
	mark_cell(cg);
	if (flock(cg->v2.path ? cg->v2.dirfd : cg->v1[V1_PIDS].dirfd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		snprintf(err, err_size, "cannot lock cgroup %s: %s", cgroup_path(cg),
		    strerror(-r));
		goto fail;
	}
	cg->name = strdup(name);
	cg->parent = parent ? strdup(parent) : NULL;
	if (!cg->name || (parent && !cg->parent)) {
		r = -ENOMEM;
		goto fail;
	}
	*ret = cg;
	return 0;
fail:
	(void)remove_dirs(cg);
	cgroup_free(cg);
	return r;
}

int
cgroup_v2_dirfd(const struct cgroup *cg)
{
	return cg->v2.dirfd >= 0 ? cg->v2.dirfd : -1;
}

size_t
cgroup_join_fds(const struct cgroup *cg, int *fds, size_t max, bool include_v2)
{
	size_t n = 0;
	if (include_v2 && cg->v2.procs_fd >= 0 && n < max)
		fds[n++] = cg->v2.procs_fd;
	for (int i = 0; i < _V1_MAX; i++) {
		int fd = cg->v1[i].tasks_fd >= 0 ? cg->v1[i].tasks_fd : cg->v1[i].procs_fd;
		if (fd >= 0 && n < max)
			fds[n++] = fd;
	}
	return n;
}

int
cgroup_attach(const struct cgroup *cg, pid_t pid)
{
	char buf[32];
	int fds[_V1_MAX + 1];
	size_t n = cgroup_join_fds(cg, fds, ARRAY_SIZE(fds), true);

	snprintf(buf, sizeof(buf), "%d", (int)pid);
	for (size_t i = 0; i < n; i++)
		if (write(fds[i], buf, strlen(buf)) < 0)
			return -errno;
	return 0;
}

/* The hierarchy whose cgroup.procs lists the cell's members. */
static const struct cgroup_dir *
member_dir(const struct cgroup *cg, bool *ret_v2)
{
	*ret_v2 = cg->v2.path != NULL;
	if (cg->v2.path)
		return &cg->v2;
	for (int i = 0; i < _V1_MAX; i++)
		if (cg->v1[i].path)
			return &cg->v1[i];
	return NULL;
}

/* Is pid (held by a pidfd now) still a member of d? Reads /proc/<pid>/cgroup. */
static bool
still_member(pid_t pid, const struct cgroup_dir *d, bool v2)
{
	char p[64], buf[4096];
	snprintf(p, sizeof(p), "/proc/%d/cgroup", (int)pid);
	if (fd_read_file_at(AT_FDCWD, p, buf, sizeof(buf)) <= 0)
		return false;
	size_t rl = strlen(d->rel);
	for (char *line = buf; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		char *c2 = strchr(line, ':') ? strchr(strchr(line, ':') + 1, ':') : NULL;
		if (c2) {
			bool is_v2 = c2 == strchr(line, ':') + 1;
			const char *path = c2 + 1;
			if (is_v2 == v2 && strncmp(path, d->rel, rl) == 0 &&
			    (path[rl] == '\0' || path[rl] == '/'))
				return true;
		}
		line = nl ? nl + 1 : NULL;
	}
	return false;
}

struct walk_ctx {
	int depth;
	int (*fn)(pid_t pid, void *userdata);
	void *userdata;
};

static int walk_pids(int dirfd, int depth, int (*fn)(pid_t pid, void *userdata), void *userdata);

static int
walk_child(int parent, int sub, const char *name, void *userdata)
{
	(void)parent, (void)name;
	struct walk_ctx *ctx = userdata;
	int r = walk_pids(sub, ctx->depth + 1, ctx->fn, ctx->userdata);
	return r > 0 ? r : 0;
}

/*
 * Call fn for every pid listed in dirfd's cgroup.procs and in those of its descendants
 * (a workload with write access may have made sub-cgroups). Streams the files, so a cell
 * with many processes needs no large buffer. Returns the sum of fn's results.
 */
static int
walk_pids(int dirfd, int depth, int (*fn)(pid_t pid, void *userdata), void *userdata)
{
	char buf[4096 + 32];
	size_t carry = 0;
	int total = 0;

	_cleanup_close_ int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, buf + carry, sizeof(buf) - 1 - carry);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		size_t len = carry + (size_t)n;
		buf[len] = '\0';
		char *p = buf, *nl;
		while ((nl = strchr(p, '\n'))) {
			*nl = '\0';
			long pid = strtol(p, NULL, 10);
			if (pid > 0)
				total += fn((pid_t)pid, userdata);
			p = nl + 1;
		}
		carry = len - (size_t)(p - buf);
		memmove(buf, p, carry);
		if (n == 0)
			break;
	}
	if (depth >= CGROUP_MAX_DEPTH)
		return total;
	struct walk_ctx ctx = {depth, fn, userdata};
	return total + for_each_child(dirfd, walk_child, &ctx);
}

struct signal_ctx {
	const struct cgroup_dir *dir;
	bool v2;
	int sig;
};

static int
signal_one(pid_t pid, void *userdata)
{
	struct signal_ctx *ctx = userdata;
	_cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return 0; /* already gone */
	/* Held by the pidfd now: if it is still ours, the signal cannot hit a reused pid. */
	if (!still_member(pid, ctx->dir, ctx->v2))
		return 0;
	return syscall(SYS_pidfd_send_signal, pidfd, ctx->sig, NULL, 0) == 0 ? 1 : 0;
}

int
cgroup_signal_all(struct cgroup *cg, int sig)
{
	struct signal_ctx ctx = {.sig = sig};
	ctx.dir = member_dir(cg, &ctx.v2);
	if (!ctx.dir)
		return -ENOENT;
	return walk_pids(ctx.dir->dirfd, 0, signal_one, &ctx);
}

static int
count_one(pid_t pid, void *userdata)
{
	(void)pid, (void)userdata;
	return 1;
}

int
cgroup_kill_all(struct cgroup *cg)
{
	if (cg->has_kill && fd_write_file_at(cg->v2.dirfd, "cgroup.kill", "1") >= 0)
		return 0;
	int r = cgroup_signal_all(cg, SIGKILL);
	return r < 0 ? r : 0;
}

int
cgroup_is_empty(struct cgroup *cg)
{
	char buf[4096];
	bool v2;
	const struct cgroup_dir *d = member_dir(cg, &v2);
	int n;

	if (!d)
		return 1;
	if (v2 && cg->v2_events_fd >= 0) {
		ssize_t k = pread(cg->v2_events_fd, buf, sizeof(buf) - 1, 0);
		if (k < 0)
			return -errno;
		buf[k] = '\0';
		char *p = strstr(buf, "populated ");
		return p && p[10] == '0' ? 1 : 0;
	}
	if (v2) {
		n = fd_read_file_at(d->dirfd, "cgroup.events", buf, sizeof(buf));
		if (n < 0)
			return n;
		char *p = strstr(buf, "populated ");
		return p && p[10] == '0' ? 1 : 0;
	}
	n = walk_pids(d->dirfd, 0, count_one, NULL);
	if (n < 0)
		return n;
	return n == 0 ? 1 : 0;
}

int
cgroup_events_fd(struct cgroup *cg)
{
	return cg->v2_events_fd >= 0 ? cg->v2_events_fd : -1;
}

static int
read_key(int dirfd, const char *file, const char *key, uint64_t *ret)
{
	char buf[4096];
	int n = fd_read_file_at(dirfd, file, buf, sizeof(buf));
	if (n < 0)
		return n;
	size_t kl = strlen(key);
	for (char *line = buf; line && *line;
	     line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
			*ret = strtoull(line + kl + 1, NULL, 10);
			return 0;
		}
	return -ENOENT;
}

int
cgroup_oom_kills(struct cgroup *cg, uint64_t *ret)
{
	if (cg->v2_memory && cg->v2.dirfd >= 0)
		return read_key(cg->v2.dirfd, "memory.events", "oom_kill", ret);
	if (cg->v1[V1_MEMORY].dirfd >= 0)
		return read_key(cg->v1[V1_MEMORY].dirfd, "memory.oom_control", "oom_kill", ret);
	return -ENOENT;
}

int
cgroup_pids_refused(struct cgroup *cg, uint64_t *ret)
{
	int fd = cg->v1[V1_PIDS].dirfd >= 0 ? cg->v1[V1_PIDS].dirfd : cg->v2.dirfd;
	if (fd < 0)
		return -ENOENT;
	return read_key(fd, "pids.events", "max", ret);
}

int
cgroup_destroy(struct cgroup *cg)
{
	int r = 0;

	if (!cg)
		return 0;
	/* Bounded wait: 5 s for the kernel to finish killing what is left. */
	for (int i = 0; i < 1000; i++) {
		int e = cgroup_is_empty(cg);
		if (e != 0)
			break;
		if (i % 50 == 0)
			(void)cgroup_kill_all(cg);
		if (cg->v2_events_fd >= 0) {
			struct pollfd pfd = {.fd = cg->v2_events_fd, .events = POLLPRI};
			(void)poll(&pfd, 1, 5);
		} else {
			struct timespec ts = {0, 5 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	if (cgroup_is_empty(cg) == 0)
		r = -EBUSY;
	int k = remove_dirs(cg);
	if (r == 0)
		r = k;
	cgroup_free(cg);
	return r;
}

/* "cellvisor-<cellId>-<8 hex digits>", as cell.c names cells. */
static bool
cell_name_ok(const char *name)
{
	size_t n = strlen(name), p = strlen(CGROUP_CELL_PREFIX);
	if (n < p + 10 || strncmp(name, CGROUP_CELL_PREFIX, p) != 0 || name[n - 9] != '-')
		return false;
	for (size_t i = n - 8; i < n; i++)
		if (!isxdigit((unsigned char)name[i]))
			return false;
	return true;
}

/*
 * Adopt one directory listed in a stale cell's marker: "<kind>:<path>" where path is
 * <root>/.../<name> inside that hierarchy, an existing cgroup directory that carries the
 * same marker. Anything else is ignored.
 */
static void
adopt_listed(struct cgroup *st, const struct cgroup_layout *l, const char *kind,
    const char *path, const char *name, const char *marker, size_t marker_len)
{
	struct cgroup_dir *d = NULL;
	char root[64];
	if (strcmp(kind, "v2") == 0 && l->v2_root[0]) {
		d = &st->v2;
		snprintf(root, sizeof(root), "%s", l->v2_root);
	} else
		for (int i = 0; i < _V1_MAX; i++)
			if (strcmp(kind, v1_names[i]) == 0) {
				d = &st->v1[i];
				snprintf(root, sizeof(root), "/sys/fs/cgroup/%s", v1_names[i]);
			}
	size_t rl = strlen(root);
	const char *base = d ? strrchr(path, '/') : NULL;
	if (!d || d->path || strncmp(path, root, rl) != 0 || path[rl] != '/' ||
	    strstr(path, "/../") || strstr(path, "/./") || strstr(path, "//") || !base ||
	    strcmp(base + 1, name) != 0 || strlen(path) >= 1024)
		return;
	int fd = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	char got[CGROUP_CELL_XATTR_MAX];
	struct statfs sf;
	ssize_t k = fgetxattr(fd, CGROUP_CELL_XATTR, got, sizeof(got));
	if (k != (ssize_t)marker_len || memcmp(got, marker, marker_len) != 0 ||
	    fstatfs(fd, &sf) < 0 ||
	    (sf.f_type != CGROUP_SUPER_MAGIC && sf.f_type != CGROUP2_SUPER_MAGIC)) {
		close(fd);
		return;
	}
	d->path = strdup(path);
	d->rel = strdup(path + rl);
	if (!d->path || !d->rel) {
		free(d->path);
		free(d->rel);
		d->path = d->rel = NULL;
		close(fd);
		return;
	}
	d->dirfd = fd;
}

/* A stale cell as a struct cgroup, from the marker on its (locked) primary directory. */
static struct cgroup *
adopt_stale(const char *name, const char *marker, size_t marker_len)
{
	struct cgroup_layout l;
	cgroup_probe(&l);
	struct cgroup *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->v2.dirfd = st->v2.procs_fd = st->v2.tasks_fd = st->v2_events_fd = -EBADF;
	for (int i = 0; i < _V1_MAX; i++)
		st->v1[i].dirfd = st->v1[i].procs_fd = st->v1[i].tasks_fd = -EBADF;
	char buf[CGROUP_CELL_XATTR_MAX + 1];
	memcpy(buf, marker, marker_len);
	buf[marker_len] = '\0';
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = '\0';
		adopt_listed(st, &l, line, colon + 1, name, marker, marker_len);
	}
	if (st->v2.dirfd >= 0) {
		st->v2_events_fd = openat(st->v2.dirfd, "cgroup.events", O_RDONLY | O_CLOEXEC);
		st->has_kill = faccessat(st->v2.dirfd, "cgroup.kill", W_OK, 0) == 0;
	}
	return st;
}

int
cgroup_collect_stale(const struct cgroup *cg)
{
	const struct cgroup_dir *own = cg->v2.path ? &cg->v2 : &cg->v1[V1_PIDS];
	if (!own->path)
		return 0;
	char parent[1400];
	snprintf(parent, sizeof(parent), "%s", own->path);
	char *slash = strrchr(parent, '/');
	if (!slash)
		return 0;
	*slash = '\0';
	_cleanup_close_ int pfd = open(parent, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (pfd < 0)
		return 0;
	int dfd = fcntl(pfd, F_DUPFD_CLOEXEC, 3);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		safe_close(dfd);
		return 0;
	}
	struct cgroup *stale[CGROUP_STALE_MAX];
	int n = 0;
	time_t now = time(NULL);
	struct dirent *de;
	char marker[CGROUP_CELL_XATTR_MAX];
	while (n < CGROUP_STALE_MAX && (de = readdir(d))) {
		if (de->d_type != DT_DIR || !cell_name_ok(de->d_name) ||
		    strcmp(de->d_name, cg->name) == 0)
			continue;
		int fd = openat(pfd, de->d_name, O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		struct stat sb;
		ssize_t k = fgetxattr(fd, CGROUP_CELL_XATTR, marker, sizeof(marker));
		bool ok = k > 0 && fstat(fd, &sb) == 0 && now - sb.st_ctime >= CGROUP_STALE_MIN_AGE_S &&
		    flock(fd, LOCK_EX | LOCK_NB) == 0;
		close(fd); /* adopt_stale() opens it again, checking the marker */
		if (!ok)
			continue;
		struct cgroup *st = adopt_stale(de->d_name, marker, (size_t)k);
		if (!st)
			continue;
		/* It must have found the directory we locked: the one listed as primary. */
		const struct cgroup_dir *sp = cg->v2.path ? &st->v2 : &st->v1[V1_PIDS];
		if (sp->dirfd < 0 || flock(sp->dirfd, LOCK_EX | LOCK_NB) < 0) {
			cgroup_free(st);
			continue;
		}
		stale[n++] = st;
	}
	closedir(d);
	if (n == 0)
		return 0;

	/* Kill what is in all of them, then give them the budget to empty. */
	for (int i = 0; i < n; i++)
		(void)cgroup_kill_all(stale[i]);
	uint64_t deadline = now_mono_us() + CGROUP_STALE_BUDGET_MS * USEC_PER_MSEC;
	int collected = 0;
	for (int i = 0; i < n; i++) {
		char path[1400];
		snprintf(path, sizeof(path), "%s", cgroup_path(stale[i]));
		int r;
		while ((r = cgroup_is_empty(stale[i])) == 0 && now_mono_us() < deadline) {
			struct timespec nap = {0, 2 * 1000 * 1000};
			nanosleep(&nap, NULL);
		}
		r = r == 1 ? remove_dirs_tries(stale[i], 1) : -EBUSY;
		if (r < 0)
			log_warn("cannot remove %s, left by a cellvisor that is gone: %s (left for a "
			         "later run)",
			    path, strerror(-r));
		else {
			log_info("removed %s, left by a cellvisor that is gone", path);
			collected++;
		}
		cgroup_free(stale[i]);
	}
	return collected;
}

const char *
cgroup_path(const struct cgroup *cg)
{
	if (cg->v2.path)
		return cg->v2.path;
	for (int i = 0; i < _V1_MAX; i++)
		if (cg->v1[i].path)
			return cg->v1[i].path;
	return "";
}
