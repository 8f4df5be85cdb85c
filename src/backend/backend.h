/*
 * backend.h - the seam between a cell and the thing that runs its workload.
 *
 * A backend knows nothing of events, stores or HTTP. The cell layer asks it to probe what
 * the host can enforce, to prepare a cell (cgroup, limits, secrets staging), to start the
 * workload with the given stdio fds, to signal or kill everything in the cell, and to
 * destroy what it prepared. Every backend instance is owned by exactly one cell; the
 * struct backend_cell is the backend's private state for that cell.
 *
 * Ownership: start() returns a pidfd for the workload's top process (the one whose exit
 * status is the cell's); the caller owns it and closes it. start() never waits for the
 * child: the caller's loop watches the report fd it gives and asks start_report(), so that
 * caps and signals work while a workload starts. Authority a backend cannot
 * enforce is reported by prepare() through the degraded list; the cell layer decides,
 * from the profile, whether that refuses the cell or becomes an event.
 */
#pragma once

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cell_spec;

enum backend_profile {
	BACKEND_PROFILE_PORTABLE,
	BACKEND_PROFILE_HARDENED,
	_BACKEND_PROFILE_MAX,
};

/* What a host can enforce for this backend (probe results). */
struct backend_caps {
	bool cgroup_v2;     /* a v2 tree usable for tracking and cgroup.kill */
	bool cgroup_limits; /* memory and pids limits can be set (v2 or v1) */
	bool cgroup_memory, cgroup_pids; /* each of them */
	bool nproc_bounds_pids; /* RLIMIT_NPROC bounds a cell's tasks without a pids cgroup */
	bool sized_tmpfs;       /* the cell's tmpfs are sized from its memory bound */
	bool cgroup_cpu;    /* cpu quota can be set */
	bool namespaces;    /* new user/pid/mount/net/... namespaces */
	bool seccomp;
	int landlock_abi;     /* 0 = none */
	char containment[160]; /* "cgroup v2", "cgroup v1+v2 (hybrid)", "process group" */
};

/*
 * One item of declared authority that a backend could not enforce, or (is_default) one of
 * the operator's default bounds for a limit the spec left out: such an item never refuses
 * the cell, and is written as a degraded event only under portable (docs/sandbox.md).
 */
struct backend_degraded {
	char item[64];    /* e.g. "authority.network", "run.limits.memoryMaxBytes" */
	char reason[192]; /* why, e.g. "the host backend does not isolate the network" */
	bool is_default;
};

#define BACKEND_MAX_DEGRADED 16

struct backend_prepare_args {
	const struct cell_spec *spec;
	const char *cell_name;     /* unique per run: "<cellId>-<runId8>" */
	const char *cgroup_parent; /* CELLOS_CGROUP_PARENT or NULL */
	/* Secret values to deliver as files (SPEC_SECRET_FILE), parallel to spec->secret_refs. */
	const char *const *secret_values;
	const size_t *secret_lengths;
	/* What the first start() will run: the same pointers it will get, whose contents must
	 * not change in between (a backend may copy them now: the sandbox clones its setup
	 * process during prepare, and reuses it only when start() gets these pointers).
	 * Optional. */
	const char *const *argv;
	const char *const *envp;
	const char *cwd;
};

struct backend_prepare_result {
	struct backend_degraded degraded[BACKEND_MAX_DEGRADED];
	size_t n_degraded;
	char error[256]; /* set when prepare fails: what could not be prepared */
};

struct backend_start_args {
	const char *const *argv;
	const char *const *envp;
	const char *cwd; /* NULL = backend default */
	int stdin_fd, stdout_fd, stderr_fd;
};

/* Why start failed, for the spawnError and the exit status (126/127/125). */
struct backend_start_error {
	int error;     /* errno of the failing step */
	char step[32]; /* "exec", "chdir", "cgroup", "clone", ... */
};

struct backend_exit {
	bool signaled;
	int status; /* exit code, or signal number when signaled */
	bool oom_killed;
};

struct backend_cell;

struct backend_ops {
	const char *name;
	const char *const *aliases;
	enum backend_profile default_profile;

	int (*probe)(struct backend_caps *ret_caps);

	/*
	 * Create the cell's containment (cgroup, limits, staging) and check the spec against
	 * what this backend enforces. Unenforceable items go to res->degraded; a failure to
	 * prepare something the spec needs returns -errno with res->error set.
	 */
	int (*prepare)(const struct backend_prepare_args *args, struct backend_prepare_result *res,
	    struct backend_cell **ret_cell);

	/*
	 * Start the workload, without waiting for it: no report of the child is read here, so
	 * that a child stopped (SIGSTOP by its own user) or slow between the clone and its
	 * execve cannot hold the caller's loop. On failure to even begin, fill *err and return
	 * -errno. Else return an fd that becomes readable (EPOLLIN) when the workload's top
	 * process has ended (with ended_fd(), one of them does): its pidfd (host), or a pidfd
	 * of the process whose exit says so (the sandbox's init). The caller owns it; signals
	 * go through signal_all(). *ret_report_fd (borrowed, valid until start_report() says
	 * the start is decided) becomes readable when the child has a report or has gone; the
	 * caller then calls start_report(). Meanwhile it may signal_all() or kill_all() the
	 * cell: the report then arrives at once.
	 */
	int (*start)(struct backend_cell *bc, const struct backend_start_args *args,
	    struct backend_start_error *err, pid_t *ret_pid, int *ret_report_fd);

	/*
	 * After start()'s report fd became readable: 0 when the workload has exec'd (or its
	 * top process ended before it could report: its exit status says how), -EAGAIN when
	 * the start is not decided yet (a report that is not the last one, or nothing after
	 * all), or -errno with *err filled when the start failed; then the backend has killed
	 * and collected what it started, and the caller only closes start()'s fd.
	 */
	int (*start_report)(struct backend_cell *bc, struct backend_start_error *err);

	/* How long a start may wait for its report before the cell is killed and the start
	 * reported failed (step "setup", ETIMEDOUT); 0: no bound but the run's caps. */
	uint64_t start_timeout_ms;

	/* Whether a workload run as root (uid 0 on the host) stays in its cell: false for the
	 * host backend, where root may write itself into any cgroup.procs. */
	bool root_contained;

	/* Collect the top process's exit after start()'s fd (or ended_fd()) became readable;
	 * -EAGAIN when it has not ended after all. */
	int (*reap)(struct backend_cell *bc, int fd, struct backend_exit *ret_exit);

	/* Optional: one more fd (borrowed) whose readiness (EPOLLIN) may also mean the top
	 * process ended, watched with start()'s while the cell runs; -1 for none. */
	int (*ended_fd)(struct backend_cell *bc);

	/* Send sig to every process of the cell. Returns the number signalled or -errno. */
	int (*signal_all)(struct backend_cell *bc, int sig);

	/* SIGKILL everything in the cell (cgroup.kill where available). */
	int (*kill_all)(struct backend_cell *bc);

	/*
	 * An fd that becomes readable (EPOLLPRI or EPOLLIN, see *ret_events) when the cell's
	 * population changes, or -1 when the caller has to poll is_empty().
	 */
	int (*empty_fd)(struct backend_cell *bc, uint32_t *ret_events);
	int (*is_empty)(struct backend_cell *bc); /* 1 empty, 0 not, -errno */

	/* Export one artifact from the cell's view (sandbox); NULL when unsupported. */
	int (*open_artifact)(struct backend_cell *bc, const char *path, int *ret_fd);

	/* Undo everything prepare() did. The cell must be empty (or this kills it). */
	int (*destroy)(struct backend_cell *bc);

	const char *(*version)(void);
};

/* Look a backend up by name or alias ("host", "stub", "sandbox"). NULL if unknown. */
const struct backend_ops *backend_find(const char *name);

/* The registered backends, NULL-terminated, for `help` and `version`. */
const struct backend_ops *const *backend_list(void);

/* Record one unenforceable item in a prepare result (at most BACKEND_MAX_DEGRADED). */
void backend_degrade(struct backend_prepare_result *res, const char *item, const char *reason);

/* Record a default bound this host cannot enforce (is_default: never refuses the cell). */
void backend_degrade_default(struct backend_prepare_result *res, const char *item,
    const char *reason);

struct cgroup_layout;

/*
 * The operator's bounds for a cell whose spec does not declare memoryMaxBytes, pidsMax or
 * nofile (docs/sandbox.md "Limits"): CELLVISOR_DEFAULT_MEMORY_MAX, CELLVISOR_DEFAULT_PIDS_MAX
 * and CELLVISOR_DEFAULT_NOFILE when set (0 = none), else computed from this host.
 */
struct backend_defaults {
	uint64_t memory_max_bytes; /* 0: none. Default: a quarter of RAM */
	uint64_t pids_max;         /* 0: none. Default: 4096, at most 15% of kernel.pid_max */
	uint64_t nofile;           /* the hard RLIMIT_NOFILE; 0: the runner's. Default: 65536 */
	bool memory_from_env, pids_from_env, nofile_from_env;
};

#define BACKEND_DEFAULT_PIDS_MAX    4096
#define BACKEND_DEFAULT_NOFILE      65536
#define BACKEND_DEFAULT_NOFILE_SOFT 1024 /* select()-safe, as systemd and docker give */
/* Each tmpfs of a sandboxed cell: half its memory bound (as the kernel's default is half the
 * RAM), at least this, and one inode per page of it. */
#define BACKEND_TMPFS_MIN_BYTES (1024 * 1024)

/* Read the defaults; -EINVAL with err naming the variable when one is malformed. */
int backend_defaults_get(struct backend_defaults *ret, char *err, size_t err_size);

/* The bounds one cell gets: what its spec declares, else the defaults. */
struct backend_limits {
	uint64_t memory_max_bytes; /* 0: unlimited */
	uint64_t pids_max;         /* 0: unlimited; the workload's tasks (not a sandbox's init) */
	uint64_t nofile_soft, nofile_hard; /* 0: the runner's (RLIMIT_NOFILE) */
	uint64_t tmpfs_size_bytes; /* the size of each tmpfs the sandbox gives the cell */
	uint64_t tmpfs_nr_inodes;
	bool memory_is_default, pids_is_default, nofile_is_default;
	struct backend_defaults defaults;
};

/* -EINVAL with err set when the defaults cannot be read (backend_defaults_get()). */
int backend_limits_for(const struct cell_spec *spec, struct backend_limits *ret, char *err,
    size_t err_size);

/*
 * For probe(): fill ret's cgroup_v2, cgroup_limits and cgroup_cpu for cells made under
 * CELLOS_CGROUP_PARENT, or the caller's own cgroup (*ret_layout: that layout). Returns whether
 * cell cgroups can be made there at all; *ret_limit_dirs (optional): also the v1 hierarchies
 * limits would need.
 */
bool backend_cgroup_caps(struct backend_caps *ret, struct cgroup_layout *ret_layout,
    bool *ret_limit_dirs);

/*
 * A cgroup parent (CELLOS_CGROUP_PARENT, --cgroup-parent) that another uid than the runner's
 * and root may write (it, an ancestor, or their cgroup.procs / cgroup.kill / ... files):
 * that user can move the cell's processes out of it and kill or freeze them. Recorded as the
 * degraded item "cgroupParent" (refused under hardened). parent may be NULL.
 */
void backend_cgroup_parent_check(const char *parent, struct backend_prepare_result *res);

struct cgroup;

/* backend_cgroup_create() flags. */
enum {
	BACKEND_CGROUP_INIT_TASK = 1 << 0, /* an init of the backend's in the cell: pids.max + 1 */
	BACKEND_CGROUP_NPROC = 1 << 1,     /* RLIMIT_NPROC bounds the cell's tasks by itself */
};

/*
 * Create the cell's cgroup ("cellvisor-<cell_name>") with the limits of lim and the spec's
 * cpuMillicores. A declared limit the host has no controller for is a degraded item; a
 * default one is a degraded default item, and so is a default the cgroup could not be made
 * with (the cgroup is then made without the defaults), unless flags say it is bounded
 * otherwise (BACKEND_CGROUP_NPROC: the pids default). Returns 0 and *ret_cg; or 0 and
 * *ret_cg = NULL with err set when no cgroup could be made and nothing needs one (the
 * caller falls back); or -errno with res->error set.
 */
int backend_cgroup_create(const struct backend_prepare_args *a, const struct backend_limits *lim,
    unsigned flags, struct backend_prepare_result *res, struct cgroup **ret_cg, char *err,
    size_t err_size);

/* Set ret->oom_killed when the top process died of SIGKILL and the kernel's OOM killer
 * killed a process of cg (events.md: oomKilled). cg may be NULL. */
void backend_note_oom(struct cgroup *cg, struct backend_exit *ret);

const char *backend_profile_to_string(enum backend_profile p);
int backend_profile_from_string(const char *s, enum backend_profile *ret);
