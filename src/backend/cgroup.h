/*
 * cgroup.h - one cell's control group on v2-only, hybrid (v1 controllers + v2 tree) and
 * cgroup-less hosts.
 *
 * cgroup_create() makes a leaf named after the cell under the runner's own cgroup (or under
 * CELLOS_CGROUP_PARENT) in the v2 tree, and in each v1 hierarchy that holds a controller a
 * limit needs (memory, pids, cpu) when v2 lacks it, each of mode 0711 (only the runner may
 * open, hence lock, it), marked, then locked. Limits are written before any process
 * joins. A process joins by writing "0" to the fds from cgroup_join_fds() (async-signal-safe,
 * done by the child itself before exec) or through clone3(CLONE_INTO_CGROUP) with
 * cgroup_v2_dirfd(). Kill uses cgroup.kill where the kernel has it, else a signal to every
 * member held by pidfd and checked for membership. cgroup_destroy() kills what is left,
 * waits for it to go and removes every directory. The struct owns its fds.
 */
#pragma once

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cgroup_limits {
	uint64_t memory_max_bytes; /* 0 = unset */
	uint64_t pids_max;
	uint64_t cpu_millicores;
};

struct cgroup_layout {
	bool v2;                         /* a writable v2 tree was found */
	bool v2_memory, v2_pids, v2_cpu; /* controllers usable for our children in v2 */
	bool v1_memory, v1_pids, v1_cpu, v1_freezer;
	char v2_root[256]; /* "/sys/fs/cgroup" or "/sys/fs/cgroup/unified" */
};

struct cgroup;

/*
 * What this host offers for cells made under parent (as cgroup_create() takes it; NULL: our
 * own cgroup): v2 counts as usable when that base is writable, and the v2 controllers are
 * those it has. The mounts are looked at once per process.
 */
int cgroup_probe_under(const char *parent, struct cgroup_layout *ret);

/* cgroup_probe_under(NULL, ret); cached after the first call. */
int cgroup_probe(struct cgroup_layout *ret);

/*
 * 1 when parent (as for cgroup_create()), or one of its ancestors, in any hierarchy, may be
 * written by a uid other than ours and root: its directory or one of its cgroup.procs,
 * cgroup.threads, cgroup.kill, cgroup.freeze, cgroup.subtree_control, tasks files is owned
 * by another uid or writable by group or others. Such a user can move the cell's processes
 * out of it, kill or freeze them. why says which and whose. 0 otherwise.
 */
int cgroup_parent_foreign(const char *parent, char *why, size_t why_size);

/* A short human description: "cgroup v2", "cgroup v1 limits + v2 tracking (hybrid)", ... */
const char *cgroup_layout_describe(const struct cgroup_layout *l);

/*
 * Whether the caller may create cell cgroups under parent (NULL: its own cgroup; a path or
 * /sys/fs/cgroup/... directory as for cgroup_create()), l being cgroup_probe_under(parent):
 * in the v2 tree when there is one (else the v1 pids hierarchy, for membership) and, with
 * with_limits, in the v1 memory and pids hierarchies that hold limits v2 cannot. For
 * reporting (probe): cgroup_create() finds out by trying.
 */
bool cgroup_writable(const struct cgroup_layout *l, const char *parent, bool with_limits);

/* True when limits of this kind can be enforced here. */
bool cgroup_can_limit_memory(const struct cgroup_layout *l);
bool cgroup_can_limit_pids(const struct cgroup_layout *l);
bool cgroup_can_limit_cpu(const struct cgroup_layout *l);

/*
 * Create the cell's cgroup(s) and apply limits. parent: NULL for the runner's own cgroup,
 * else a cgroup path ("/my/slice", relative to each hierarchy's root). On failure, err
 * says which file or directory failed and nothing is left behind.
 */
int cgroup_create(const char *name, const char *parent, const struct cgroup_limits *limits,
    char *err, size_t err_size, struct cgroup **ret);

/* The v2 leaf's directory fd for CLONE_INTO_CGROUP, or -1 without v2. */
int cgroup_v2_dirfd(const struct cgroup *cg);

/*
 * Fds opened O_WRONLY|O_CLOEXEC that a new, single-threaded child writes "0" to in order to
 * join every hierarchy: the v2 cgroup.procs (with include_v2) and each v1 hierarchy's
 * "tasks" file (cheaper than cgroup.procs: no global lock). Returns how many (at most max).
 * The fds stay owned by cg.
 */
size_t cgroup_join_fds(const struct cgroup *cg, int *fds, size_t max, bool include_v2);

/* Move an existing process (by pid) into every hierarchy of the cell. */
int cgroup_attach(const struct cgroup *cg, pid_t pid);

/* Send sig to every member (pidfd-held, membership re-checked). Returns count or -errno. */
int cgroup_signal_all(struct cgroup *cg, int sig);

/* SIGKILL every member: cgroup.kill where present, else cgroup_signal_all(SIGKILL). */
int cgroup_kill_all(struct cgroup *cg);

/* 1 when no process is left in the cell, 0 when some are, -errno on error. */
int cgroup_is_empty(struct cgroup *cg);

/* An fd on the v2 cgroup.events to poll with EPOLLPRI for population changes, or -1. */
int cgroup_events_fd(struct cgroup *cg);

/* How many processes of the cell the kernel's OOM killer killed so far. */
int cgroup_oom_kills(struct cgroup *cg, uint64_t *ret);

/* The pids.events "max" counter: how many forks were refused by pidsMax. */
int cgroup_pids_refused(struct cgroup *cg, uint64_t *ret);

/* Kill what is left, wait for it to exit (bounded) and remove the directories. Frees cg. */
int cgroup_destroy(struct cgroup *cg);

/*
 * Take down the cgroups of cells whose cellvisor is gone (killed with SIGKILL: nothing tore
 * them down). A runner flock()s its cell's cgroup directory for the whole run; any sibling
 * of cg named "cellvisor-*" that can be locked and is at least 2 s old is such a leftover:
 * what is still in it is killed (each is given 1 s) and its directories are removed in
 * every hierarchy, with a line on stderr for each. At most 8 per call. Returns how many
 * were removed. Meant to be called once the caller's own cell has started.
 */
int cgroup_collect_stale(const struct cgroup *cg);

/* The v2 leaf's path ("/sys/fs/cgroup/unified/...") or the first v1 path, for messages. */
const char *cgroup_path(const struct cgroup *cg);
