/*
 * sandbox.c - the `sandbox` backend: cellvisor's own isolation, no external runtime.
 *
 * prepare() creates the cell's cgroup with its limits, clones the cell's setup process
 * (child.c) into a new user and pid namespace and into the cell's v2 cgroup, and builds the
 * whole filesystem view as detached mounts (view.h) while that process creates its mount,
 * network (unless "host"), UTS, IPC and cgroup namespaces (the network namespace alone
 * costs about 0.4 ms). start() builds the landlock ruleset (the seccomp program is a
 * constant compiled in: seccomp_program.c), assembles the view's trees inside its
 * detached root (sb_view_assemble()) and sends "go" (child.h) with the ruleset, the
 * workload's stdio and what the cell must attach itself, as fds. start() returns the
 * pidfd of the cell's init (PID 1), which stays while anything of the cell is left; reap()
 * reports the *workload's* wait status, which init stores in a page shared with the runner
 * (child.h: struct sb_child_status). When the spec
 * exports artifacts, the runner holds the cell's mount namespace (sent by the cell) until
 * destroy(), so that they are read from inside the cell's view after the run.
 *
 * Identity: the workload runs as uid/gid 65534 inside the cell, mapped to a host id of
 * the cell's own, taken from the pool for as long as the cell lives (uidpool.h: no other
 * running cell and no host account has it), unless run.user names one: then that uid/gid,
 * mapped to the same host uid/gid (files it writes into readWrite paths belong to that host
 * user), except 0, which maps to a pool id too: a cell is never the host's root. The user
 * namespace maps that one uid and that one gid only. What a cell writes into readWrite
 * trees keeps a stable owner through idmapped mounts (view.h).
 */
#include "backend/sandbox/sandbox.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/nsfs.h>
#include <linux/sched.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/cgroup.h"
#include "backend/sandbox/caps.h"
#include "backend/sandbox/child.h"
#include "backend/sandbox/landlock.h"
#include "backend/sandbox/seccomp.h"
#include "backend/sandbox/uidpool.h"
#include "backend/sandbox/view.h"
#include "base/fd.h"
#include "base/log.h"
#include "base/macro.h"
#include "spec/spec.h"

/* How long a start may wait for the cell's setup before it is given up (the cell's loop
 * watches it: backend_ops.start_timeout_ms). */
#define SB_SETUP_TIMEOUT_MS 30000

struct backend_cell {
	const struct cell_spec *spec; /* owned by the cell, outlives this struct */
	struct cgroup *cg;            /* NULL: contained by the pid namespace only */
	struct backend_limits limits; /* declared, else the operator's defaults */
	struct sb_view view;
	uid_t uid, host_uid; /* inside the cell / on the host */
	gid_t gid, host_gid;
	int id_lock_fd; /* the pool id's lock (uidpool.h), -1 with run.user ids only */
	char **secret_values; /* copies of the file-delivered secrets, wiped on destroy */
	size_t *secret_lengths;
	size_t n_secrets;
	/* The cell layer's secret values (borrowed, they outlive this struct): init wipes its
	 * copy of them after the clone (child.h: sb_child_config.wipe). */
	const char *const *cell_secret_values;
	const size_t *cell_secret_lengths;
	size_t n_cell_secrets;
	int join_v1[SB_CHILD_MAX_CGROUP_FDS]; /* v1 `tasks` files (owned) or cgroup.procs */
	bool join_v1_owned[SB_CHILD_MAX_CGROUP_FDS];
	size_t n_join_v1;
	int join_v2;    /* the v2 cgroup.procs (borrowed), for when CLONE_INTO_CGROUP is refused */
	int init_pidfd; /* our own reference to the cell's init */
	bool init_reaped;
	int status_fd;  /* the eventfd init writes when the workload ends with leftovers */
	struct sb_child_status *status; /* shared with init (MAP_SHARED) */
	/* The setup process cloned ahead of start() (spawn_setup()), waiting for "go". */
	int setup_pidfd; /* -1: none waiting */
	pid_t setup_pid;
	int setup_sync_fd;
	int setup_status_fd;
	struct sb_child_status *setup_status;
	uint64_t setup_sig_not_default;
	const char *const *setup_argv; /* what it was cloned with (borrowed from the cell) */
	const char *const *setup_envp;
	const char *setup_cwd;
	int mntns_fd;   /* with artifacts: keeps the cell's mount namespace (its view) alive */
	bool started;
	/* Between start() and the end of the cell's reports (sandbox_start_report()). */
	int start_sync_fd; /* the runner's end of the sync socket, O_NONBLOCK reads */
	int start_go_error; /* -EPIPE / -ECONNRESET: "go" met a setup that had already failed */
	pid_t init_pid;
};

static int
sandbox_probe(struct backend_caps *ret)
{
	struct cgroup_layout l;
	char buf[32];

	*ret = (struct backend_caps){
	    .nproc_bounds_pids = true,
	    .sized_tmpfs = true,
	    .landlock_abi = sb_landlock_abi(),
	};
	(void)backend_cgroup_caps(ret, &l, NULL);
	/* Namespaces: user namespaces must be enabled and the mount API present. */
	_cleanup_close_ int dir = open("/proc/sys/user", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	ret->namespaces = dir >= 0 &&
	    fd_read_file_at(dir, "max_user_namespaces", buf, sizeof(buf)) > 0 && atoi(buf) > 0 &&
	    access("/proc/self/ns/user", F_OK) == 0;
	if (ret->namespaces) {
		int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
		ret->namespaces = fs >= 0;
		safe_close(fs);
	}
	/* The runner maps the cell's ids to a host uid of its choosing and builds mounts:
	 * CAP_SYS_ADMIN, CAP_SETUID and CAP_SETGID over the host's user namespace. */
	if (ret->namespaces && !sb_caps_have_runner_caps())
		ret->namespaces = false;
	ret->seccomp = prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 &&
	    access("/proc/sys/kernel/seccomp/actions_avail", F_OK) == 0;
	if (ret->namespaces)
		snprintf(ret->containment, sizeof(ret->containment), "pid namespace + %s",
		    cgroup_layout_describe(&l));
	else
		snprintf(ret->containment, sizeof(ret->containment),
		    "none: cannot run here (needs CAP_SYS_ADMIN, CAP_SETUID, CAP_SETGID, user "
		    "namespaces and the new mount API)");
	return 0;
}

static void
wipe_secrets(struct backend_cell *bc)
{
	for (size_t i = 0; i < bc->n_secrets; i++)
		if (bc->secret_values[i]) {
			explicit_bzero(bc->secret_values[i], bc->secret_lengths[i]);
			free(bc->secret_values[i]);
		}
	free(bc->secret_values);
	free(bc->secret_lengths);
	bc->secret_values = NULL;
	bc->secret_lengths = NULL;
	bc->n_secrets = 0;
}

static int
copy_secrets(struct backend_cell *bc, const struct backend_prepare_args *a)
{
	size_t n = a->spec->secret_refs.n;
	if (a->spec->secret_delivery != SPEC_SECRET_FILE || n == 0)
		return 0;
	if (!a->secret_values || !a->secret_lengths)
		return -EINVAL;
	bc->secret_values = calloc(n, sizeof(char *));
	bc->secret_lengths = calloc(n, sizeof(size_t));
	if (!bc->secret_values || !bc->secret_lengths)
		return -ENOMEM;
	bc->n_secrets = n;
	for (size_t i = 0; i < n; i++) {
		if (!a->secret_values[i])
			return -EINVAL;
		bc->secret_values[i] = malloc(a->secret_lengths[i] + 1);
		if (!bc->secret_values[i])
			return -ENOMEM;
		memcpy(bc->secret_values[i], a->secret_values[i], a->secret_lengths[i]);
		bc->secret_values[i][a->secret_lengths[i]] = '\0';
		bc->secret_lengths[i] = a->secret_lengths[i];
	}
	return 0;
}

/*
 * RLIMIT_NPROC for the workload: its pids bound plus the cell's init, which share the cell's
 * uid in the cell's own user namespace (the kernel counts per user namespace and uid, 5.14+).
 * Lowered only: an unprivileged workload cannot raise its hard limit.
 */
static uint64_t
cell_nproc(const struct backend_cell *bc)
{
	struct rlimit cur;
	uint64_t want = bc->limits.pids_max ? bc->limits.pids_max + 1 : 0;
	if (want && getrlimit(RLIMIT_NPROC, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
	    cur.rlim_max < want)
		want = cur.rlim_max;
	return want;
}

/* The filesystem view: what a start consumes. Findings the profile decides on go to res
 * (NULL on a restart: the first build reported them). */
static int
build_view(struct backend_cell *bc, struct backend_prepare_result *res, char *err, size_t err_size)
{
	struct sb_view_config cfg = {
	    .spec = bc->spec,
	    .host_uid = bc->host_uid,
	    .host_gid = bc->host_gid,
	    .own_ids = bc->id_lock_fd >= 0,
	    .degraded = res,
	    .secret_values = (const char *const *)bc->secret_values,
	    .secret_lengths = bc->secret_lengths,
	    .tmpfs_size_bytes = bc->limits.tmpfs_size_bytes,
	    .tmpfs_nr_inodes = bc->limits.tmpfs_nr_inodes,
	};
	return sb_view_build(&cfg, &bc->view, err, err_size);
}

static int sandbox_destroy(struct backend_cell *bc);
static int spawn_setup(struct backend_cell *bc, const char *const *argv, const char *const *envp,
    const char *cwd, const char **ret_step);
static void kill_setup(struct backend_cell *bc);
static bool reap_init(struct backend_cell *bc, siginfo_t *si, int timeout_ms);

/*
 * The fds the cell's setup process writes "0" to, to join the cell's cgroups. Writing
 * cgroup.procs takes the kernel's global cgroup_threadgroup_rwsem for writing, which waits
 * for an RCU grace period when the lock was idle: 4 to 17 ms here, on every cold start. A
 * single-threaded process writing "0" to a v1 hierarchy's `tasks` file moves itself without
 * that lock. cgroup.h only hands out cgroup.procs fds, so the `tasks` file next to each v1
 * one is opened here; on any surprise the cgroup.procs fd is used as is. (v2 has no such
 * file for domain cgroups; CLONE_INTO_CGROUP joins it without any write.)
 */
static void
prepare_join_fds(struct backend_cell *bc)
{
	int all[SB_CHILD_MAX_CGROUP_FDS], v1[SB_CHILD_MAX_CGROUP_FDS];
	size_t n_all = cgroup_join_fds(bc->cg, all, ARRAY_SIZE(all), true);
	size_t n_v1 = cgroup_join_fds(bc->cg, v1, ARRAY_SIZE(v1), false);

	/* v1 fds are the hierarchies' "tasks" files (see cgroup_join_fds()). */
	bc->join_v2 = n_all > n_v1 ? all[0] : -1;
	for (size_t i = 0; i < n_v1; i++) {
		bc->join_v1_owned[i] = false;
		bc->join_v1[i] = v1[i];
	}
	bc->n_join_v1 = n_v1;
}

static int
sandbox_prepare(const struct backend_prepare_args *a, struct backend_prepare_result *res,
    struct backend_cell **ret)
{
	const struct cell_spec *s = a->spec;
	int r;

	struct backend_cell *bc = calloc(1, sizeof(*bc));
	if (!bc)
		return -ENOMEM;
	*bc = (struct backend_cell){.spec = s,
	    .init_pidfd = -EBADF,
	    .join_v2 = -EBADF,
	    .status_fd = -EBADF,
	    .setup_pidfd = -EBADF,
	    .setup_sync_fd = -EBADF,
	    .setup_status_fd = -EBADF,
	    .mntns_fd = -EBADF,
	    .id_lock_fd = -EBADF,
	    .start_sync_fd = -EBADF,
	    .view = {.root_fd = -EBADF}};

	bc->uid = s->has_user ? s->uid : SB_DEFAULT_ID;
	bc->gid = s->has_user ? s->gid : SB_DEFAULT_ID;
	bc->host_uid = s->has_user ? s->uid : 0;
	bc->host_gid = s->has_user ? s->gid : 0;
	if (bc->host_uid == 0 || bc->host_gid == 0) {
		/* A host id of the cell's own (never root's), taken until destroy() and by the
		 * cell's init for as long as it lives. */
		uid_t id;
		char why[200] = "";
		int fd = sb_uidpool_acquire(&id, why, sizeof(why));
		if (fd < 0) {
			r = fd;
			snprintf(res->error, sizeof(res->error), "host uid: %s", why);
			goto fail;
		}
		bc->id_lock_fd = fd;
		if (bc->host_uid == 0)
			bc->host_uid = id;
		if (bc->host_gid == 0)
			bc->host_gid = (gid_t)id;
	}

	if (s->n_egress_rules > 0) {
		char why[192];
		snprintf(why, sizeof(why),
		    "the sandbox has no egress allowlist yet: the %zu declared "
		    "destination(s) are not enforced and the cell gets network '%s'",
		    s->n_egress_rules,
		    spec_network_to_string(
		        s->network == SPEC_NETWORK_UNSET ? SPEC_NETWORK_NONE : s->network));
		backend_degrade(res, "authority.egressRules", why);
	}

	if ((r = backend_limits_for(s, &bc->limits, res->error, sizeof(res->error))) < 0)
		goto fail;
	backend_cgroup_parent_check(a->cgroup_parent, res);
	/* The cell's init is not the workload's to count; RLIMIT_NPROC (child.c) bounds the
	 * tasks of the cell's own user namespace and uid with or without a pids controller. */
	char err[256] = "";
	r = backend_cgroup_create(a, &bc->limits, BACKEND_CGROUP_INIT_TASK | BACKEND_CGROUP_NPROC,
	    res, &bc->cg, err, sizeof(err));
	if (r < 0)
		goto fail;
	/* Without a cgroup the pid namespace still contains the cell: its init's exit kills it
	 * all. */
	if (bc->cg)
		prepare_join_fds(bc);

	/* Only a privileged process may raise a hard limit: do it once, here, for the cell. */
	if (s->nofile) {
		struct rlimit cur;
		if (getrlimit(RLIMIT_NOFILE, &cur) < 0) {
			r = -errno;
			goto fail;
		}
		if (cur.rlim_max < s->nofile) {
			struct rlimit want = {cur.rlim_cur, s->nofile};
			if (setrlimit(RLIMIT_NOFILE, &want) < 0) {
				r = -errno;
				snprintf(res->error, sizeof(res->error),
				    "run.limits.nofile: %llu is above "
				    "the runner's hard limit %llu and it cannot be raised: %s",
				    (unsigned long long)s->nofile, (unsigned long long)cur.rlim_max,
				    strerror(-r));
				goto fail;
			}
		}
	}

	if (a->secret_values && a->secret_lengths) {
		bc->cell_secret_values = a->secret_values;
		bc->cell_secret_lengths = a->secret_lengths;
		bc->n_cell_secrets = s->secret_refs.n;
	}
	if ((r = copy_secrets(bc, a)) < 0) {
		snprintf(res->error, sizeof(res->error),
		    "cannot stage the file-delivered secrets: %s", strerror(-r));
		goto fail;
	}
	/*
	 * Clone the cell's setup process now, so that it creates its namespaces (0.4 ms, the
	 * network namespace above all) while the view is built here. It does nothing visible
	 * before "go" (start()), and destroy() kills it if the cell never starts. If it
	 * cannot be cloned now, start() clones it and reports what fails there.
	 */
	if (a->argv) {
		const char *step;
		(void)spawn_setup(bc, a->argv, a->envp, a->cwd, &step);
	}
	if ((r = build_view(bc, res, res->error, sizeof(res->error))) < 0)
		goto fail;
	*ret = bc;
	return 0;
fail:
	sandbox_destroy(bc);
	return r;
}

static int
write_proc_file(pid_t pid, const char *name, const char *value)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, value, strlen(value));
	if (n < 0)
		return -errno;
	return (size_t)n == strlen(value) ? 0 : -EIO;
}

/* What the runner does for the cell between clone and "go". */
static int
setup_from_outside(struct backend_cell *bc, pid_t pid, const char **ret_step)
{
	char map[64];
	int r;

	/* Written by a privileged writer, so setgroups stays allowed: the child clears its
	 * supplementary groups itself instead of keeping the runner's. */
	*ret_step = "uid_map";
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)bc->uid, (unsigned)bc->host_uid);
	if ((r = write_proc_file(pid, "uid_map", map)) < 0)
		return r;
	*ret_step = "gid_map";
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)bc->gid, (unsigned)bc->host_gid);
	if ((r = write_proc_file(pid, "gid_map", map)) < 0)
		return r;
	return 0;
}

/* The signals whose disposition is not SIG_DFL here, hence in the cell (child.h). */
static uint64_t
signals_not_default(void)
{
	uint64_t mask = 0;
	for (int s = 1; s < _NSIG && s <= 64; s++) {
		struct sigaction sa;
		if (s == SIGKILL || s == SIGSTOP || sigaction(s, NULL, &sa) < 0)
			continue;
		if ((sa.sa_flags & SA_SIGINFO) || sa.sa_handler != SIG_DFL)
			mask |= UINT64_C(1) << (s - 1);
	}
	return mask;
}

/* Send the fds of "go" after its first message, SB_CHILD_GO_FDS_PER_MSG at a time. */
static int
send_fds(int sync_fd, const int *fds, size_t n, const void *head, size_t head_len)
{
	union {
		char buf[CMSG_SPACE(SB_CHILD_GO_FDS_PER_MSG * sizeof(int))];
		struct cmsghdr align;
	} u;
	size_t k = MIN(n, (size_t)SB_CHILD_GO_FDS_PER_MSG);
	char byte = 0;
	struct iovec iov = {head ? (void *)(uintptr_t)head : &byte, head ? head_len : 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (k > 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(k * sizeof(int));
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(k * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, k * sizeof(int));
	}
	ssize_t w = sendmsg(sync_fd, &mh, MSG_NOSIGNAL);
	if (w < 0)
		return -errno;
	if ((size_t)w != iov.iov_len)
		return -EIO;
	return (int)k;
}

/*
 * Once the cell has its namespaces under way: build the landlock ruleset, assemble the
 * view's trees inside its detached root, and send "go" (child.h: struct sb_child_go) with
 * the ruleset, the workload's stdio, the view's root and whatever is left to attach.
 */
static int
send_go(struct backend_cell *bc, int sync_fd, const struct backend_start_args *a,
    const char **ret_step)
{
	_cleanup_close_ int landlock_fd = -EBADF;
	_cleanup_free_ struct sb_attach *pending = NULL;
	_cleanup_free_ struct sb_child_attach *wire = NULL;
	_cleanup_free_ int *fds = NULL;
	size_t n_fds = 0;
	int r;

	if (sb_landlock_abi() > 0) {
		struct sb_landlock_rules rules = {
		    .read_only = (const char *const *)bc->view.landlock_ro,
		    .read_write = (const char *const *)bc->view.landlock_rw,
		};
		*ret_step = "landlock";
		landlock_fd = sb_landlock_build(&rules);
		if (landlock_fd < 0)
			return landlock_fd;
	}

	*ret_step = "view";
	/* CELLVISOR_SANDBOX_ASSEMBLE=0: the cell attaches every mount itself, as it must on
	 * kernels before 6.15 (docs/sandbox.md); for diagnosis and for the tests of that path. */
	const char *asm_env = getenv("CELLVISOR_SANDBOX_ASSEMBLE");
	size_t n_assembled =
	    asm_env && strcmp(asm_env, "0") == 0 ? 0 : sb_view_assemble(&bc->view);
	pending = calloc(bc->view.n_mounts + 1, sizeof(*pending));
	wire = calloc(bc->view.n_mounts + 1, sizeof(*wire));
	fds = calloc(SB_CHILD_GO_FDS(bc->view.n_mounts), sizeof(int));
	if (!pending || !wire || !fds)
		return -ENOMEM;
	size_t n_pending = sb_view_pending(&bc->view, n_assembled, pending);

	struct sb_child_go go = {.landlock = -1,
	    .stdio = {-1, -1, -1},
	    .sig_not_default = bc->setup_sig_not_default};
	if (landlock_fd >= 0) {
		go.landlock = (int32_t)n_fds;
		fds[n_fds++] = landlock_fd;
	}
	const int stdio[3] = {a->stdin_fd, a->stdout_fd, a->stderr_fd};
	for (int i = 0; i < 3; i++)
		if (stdio[i] >= 0) {
			go.stdio[i] = (int32_t)n_fds;
			fds[n_fds++] = stdio[i];
		}
	go.root = (int32_t)n_fds;
	fds[n_fds++] = bc->view.root_fd;
	for (size_t i = 0; i < n_pending; i++) {
		wire[i] = (struct sb_child_attach){.kind = (uint32_t)pending[i].kind, .tree = -1};
		if (pending[i].kind == SB_MOUNT_TREE) {
			wire[i].tree = (int32_t)n_fds;
			fds[n_fds++] = pending[i].tree_fd;
		}
		wire[i].target = (int32_t)n_fds;
		fds[n_fds++] = pending[i].target_fd;
	}
	go.n_fds = (uint32_t)n_fds;
	go.n_attach = (uint32_t)n_pending;

	/* The header and the entries in one message, with the first batch of fds. */
	size_t head_len = sizeof(go) + n_pending * sizeof(*wire);
	_cleanup_free_ char *head = malloc(head_len);
	if (!head)
		return -ENOMEM;
	memcpy(head, &go, sizeof(go));
	memcpy(head + sizeof(go), wire, n_pending * sizeof(*wire));
	*ret_step = "sync";
	size_t sent = 0;
	r = send_fds(sync_fd, fds, n_fds, head, head_len);
	while (r >= 0) {
		sent += (size_t)r;
		if (sent >= n_fds)
			return 0;
		r = send_fds(sync_fd, fds + sent, n_fds - sent, NULL, 0);
	}
	return r;
}

/*
 * Read one of the cell's reports, without waiting: 0 at EOF (the workload's execve
 * succeeded), 1 with *rep filled when a step failed, 2 for a report with error 0, which
 * carries the cell's mount namespace fd (SCM_RIGHTS), kept in bc->mntns_fd for the exports;
 * -EAGAIN when there is nothing yet, or -errno.
 */
static int
read_report(struct backend_cell *bc, int fd, struct sb_child_report *rep)
{
	for (;;) {
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = {rep, sizeof(*rep)};
		struct msghdr mh = {.msg_iov = &iov,
		    .msg_iovlen = 1,
		    .msg_control = u.buf,
		    .msg_controllen = sizeof(u.buf)};
		ssize_t k = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		/* A cell that exited with "go" unread resets the connection: the error comes
		 * once, before the report it queued. */
		if (k < 0 && (errno == EINTR || errno == ECONNRESET))
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return 0;
		int passed = -EBADF;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
			    cm->cmsg_len == CMSG_LEN(sizeof(int)))
				memcpy(&passed, CMSG_DATA(cm), sizeof(int));
		if (k != (ssize_t)sizeof(*rep)) {
			safe_close(passed);
			return -EIO;
		}
		rep->step[sizeof(rep->step) - 1] = '\0';
		if (rep->error != 0) {
			safe_close(passed);
			return 1;
		}
		/* Only a mount namespace is accepted, and only once. */
		if (passed < 0 || bc->mntns_fd >= 0 ||
		    ioctl(passed, NS_GET_NSTYPE) != CLONE_NEWNS) {
			safe_close(passed);
			return -EBADMSG;
		}
		bc->mntns_fd = passed;
		return 2;
	}
}

/*
 * clone3 into the cell's namespaces, and into its v2 cgroup when there is one. Unlike
 * spawn_clone(), the child learns whether CLONE_INTO_CGROUP was used: *ret_into is set
 * before the call that succeeded, in both processes. Returns 0 in the child.
 */
static pid_t
clone_cell(uint64_t flags, int cgroup_fd, int *ret_pidfd, bool *ret_into)
{
	struct clone_args args = {
	    .flags = flags | CLONE_PIDFD,
	    .pidfd = (uint64_t)(uintptr_t)ret_pidfd,
	    .exit_signal = SIGCHLD,
	};
	long pid = -1;

	*ret_into = cgroup_fd >= 0;
	if (*ret_into) {
		args.flags |= CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)cgroup_fd;
		pid = syscall(SYS_clone3, &args, sizeof(args));
		if (pid >= 0 || errno == ENOSYS)
			return pid < 0 ? -errno : (pid_t)pid;
		/* Some v2 cgroups refuse CLONE_INTO_CGROUP (domain rules): join by writing. */
		args.flags &= ~(uint64_t)CLONE_INTO_CGROUP;
		args.cgroup = 0;
		*ret_into = false;
	}
	pid = syscall(SYS_clone3, &args, sizeof(args));
	return pid < 0 ? -errno : (pid_t)pid;
}

static void
kill_setup(struct backend_cell *bc)
{
	if (bc->setup_pidfd >= 0) {
		siginfo_t si;
		(void)syscall(SYS_pidfd_send_signal, bc->setup_pidfd, SIGKILL, NULL, 0);
		(void)waitid((idtype_t)P_PIDFD, (id_t)bc->setup_pidfd, &si, WEXITED);
	}
	bc->setup_pidfd = safe_close(bc->setup_pidfd);
	bc->setup_sync_fd = safe_close(bc->setup_sync_fd);
	bc->setup_status_fd = safe_close(bc->setup_status_fd);
	if (bc->setup_status)
		(void)munmap(bc->setup_status, sizeof(*bc->setup_status));
	bc->setup_status = NULL;
	bc->setup_pid = 0;
}

/*
 * Clone the cell's setup process (child.c) into new user and pid namespaces and the cell's
 * cgroup, and write its id maps. It goes on to create its other namespaces and then waits
 * for "go" (send_go()). On success bc->setup_* describe it. 0, or -errno with *ret_step.
 */
static int
spawn_setup(struct backend_cell *bc, const char *const *argv, const char *const *envp,
    const char *cwd, const char **ret_step)
{
	const struct cell_spec *s = bc->spec;
	int sv[2];
	int pidfd = -1;
	bool into = false;
	int r;

	/* What init wipes in its copy of our memory (the clone copies the heap as it is). */
	*ret_step = "wipe";
	_cleanup_free_ struct sb_child_wipe *wipe =
	    calloc(bc->n_secrets + bc->n_cell_secrets + 1, sizeof(*wipe));
	if (!wipe)
		return -ENOMEM;
	size_t n_wipe = 0;
	for (size_t i = 0; i < bc->n_secrets; i++)
		wipe[n_wipe++] =
		    (struct sb_child_wipe){bc->secret_values[i], bc->secret_lengths[i]};
	for (size_t i = 0; i < bc->n_cell_secrets; i++)
		wipe[n_wipe++] =
		    (struct sb_child_wipe){(void *)(uintptr_t)bc->cell_secret_values[i],
		        bc->cell_secret_lengths[i]};

	*ret_step = "socketpair";
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	_cleanup_close_ int sync_parent = sv[0], sync_child = sv[1];
	*ret_step = "eventfd";
	_cleanup_close_ int status_ev = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (status_ev < 0)
		return -errno;
	*ret_step = "mmap";
	struct sb_child_status *status = mmap(NULL, sizeof(*status), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (status == MAP_FAILED)
		return -errno;

	struct sb_child_config cfg = {
	    .sync_fd = sync_child,
	    .status_fd = status_ev,
	    .status = status,
	    .runner_sync_fd = sync_parent,
	    .hold_fd = bc->id_lock_fd,
	    .uid = bc->uid,
	    .gid = bc->gid,
	    .hostname = s->id,
	    .loopback_up = s->network == SPEC_NETWORK_LOOPBACK,
	    .nofile_soft = bc->limits.nofile_soft,
	    .nofile_hard = bc->limits.nofile_hard,
	    .nproc = cell_nproc(bc),
	    .send_mntns = s->n_artifacts > 0,
	    .argv = argv,
	    .envp = envp,
	    .cwd = cwd,
	    .wipe = wipe,
	    .n_wipe = n_wipe,
	};
	cfg.unshare_flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC;
	if (s->network != SPEC_NETWORK_HOST)
		cfg.unshare_flags |= CLONE_NEWNET;

	*ret_step = "clone";
	pid_t pid = clone_cell(CLONE_NEWUSER | CLONE_NEWPID, bc->cg ? cgroup_v2_dirfd(bc->cg) : -1,
	    &pidfd, &into);
	if (pid < 0) {
		(void)munmap(status, sizeof(*status));
		return pid;
	}
	if (pid == 0) {
		/* Join only what clone3 did not already put us in (see prepare_join_fds()). */
		if (!into && bc->join_v2 >= 0)
			cfg.cgroup_fds[cfg.n_cgroup_fds++] = bc->join_v2;
		for (size_t i = 0; i < bc->n_join_v1 && cfg.n_cgroup_fds < SB_CHILD_MAX_CGROUP_FDS;
		     i++)
			cfg.cgroup_fds[cfg.n_cgroup_fds++] = bc->join_v1[i];
		sb_child_main(&cfg);
	}

	bc->setup_pidfd = pidfd;
	bc->setup_pid = pid;
	/* The dispositions the cell inherited at this clone. */
	bc->setup_sig_not_default = signals_not_default();
	bc->setup_argv = argv;
	bc->setup_envp = envp;
	bc->setup_cwd = cwd;
	bc->setup_sync_fd = TAKE_FD(sync_parent);
	bc->setup_status_fd = TAKE_FD(status_ev);
	bc->setup_status = status;
	if ((r = setup_from_outside(bc, pid, ret_step)) < 0) {
		kill_setup(bc);
		return r;
	}
	return 0;
}

static int
start_failed(struct backend_start_error *err, const char *step, int error)
{
	err->error = error > 0 ? error : EIO;
	snprintf(err->step, sizeof(err->step), "%s", step);
	return -err->error;
}

/* A start that failed before the caller got init's pidfd: kill, collect and forget it. */
static void
abandon_start(struct backend_cell *bc, int pidfd)
{
	siginfo_t si;
	sb_view_release_plan(&bc->view);
	bc->view.root_fd = safe_close(bc->view.root_fd);
	(void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
	(void)waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED);
	safe_close(pidfd);
}

static int
sandbox_start(struct backend_cell *bc, const struct backend_start_args *a,
    struct backend_start_error *err, pid_t *ret_pid, int *ret_report_fd)
{
	char msg[256];
	const char *step = "setup";
	int r;

	if (bc->started) {
		/* A new run of the same cell: the previous one consumed the view. */
		sb_view_done(&bc->view);
		bc->mntns_fd = safe_close(bc->mntns_fd);
		if ((r = build_view(bc, NULL, msg, sizeof(msg))) < 0)
			return start_failed(err, "view", -r);
		if (bc->init_pidfd >= 0 && !bc->init_reaped) {
			siginfo_t si;
			(void)syscall(SYS_pidfd_send_signal, bc->init_pidfd, SIGKILL, NULL, 0);
			(void)reap_init(bc, &si, 5000);
		}
		bc->init_pidfd = safe_close(bc->init_pidfd);
		bc->init_reaped = false;
		bc->status_fd = safe_close(bc->status_fd);
		if (bc->status)
			(void)munmap(bc->status, sizeof(*bc->status));
		bc->status = NULL;
	}
	/* A setup process cloned by prepare() for other arguments is of no use. */
	if (bc->setup_pidfd >= 0 && (bc->setup_argv != a->argv || bc->setup_envp != a->envp ||
	                                bc->setup_cwd != a->cwd))
		kill_setup(bc);
	if (bc->setup_pidfd < 0 && (r = spawn_setup(bc, a->argv, a->envp, a->cwd, &step)) < 0)
		return start_failed(err, step, -r);

	int pidfd = TAKE_FD(bc->setup_pidfd);
	pid_t pid = bc->setup_pid;
	_cleanup_close_ int sync_parent = TAKE_FD(bc->setup_sync_fd);
	_cleanup_close_ int status_ev = TAKE_FD(bc->setup_status_fd);
	bc->status = TAKE_PTR(bc->setup_status);
	bc->started = true;

	r = send_go(bc, sync_parent, a, &step);
	/* A setup that failed before "go" (cloned during prepare) has left its report: read
	 * with the others, in the caller's loop (sandbox_start_report()). */
	if (r < 0 && r != -EPIPE && r != -ECONNRESET) {
		abandon_start(bc, pidfd);
		return start_failed(err, step, -r);
	}
	/*
	 * The caller watches init's pidfd and the eventfd (ended_fd()): the workload ended
	 * when init stored its status and exited (nothing else left: one wake-up), or stored
	 * it and wrote the eventfd (init stays with the leftovers), or init died without a
	 * status (killed: its own is the cell's). (Two fds in the caller's loop, not one epoll
	 * set of both: a nested epoll's wake-up cost a short cell 0.2 ms on a busy machine.)
	 */
	int watch_fd = fcntl(pidfd, F_DUPFD_CLOEXEC, 3);
	if (watch_fd < 0) {
		r = -errno;
		abandon_start(bc, pidfd);
		return start_failed(err, "dup", -r);
	}
	/* From here on the cell is init's: kill_all() reaches it while it starts. */
	bc->init_pidfd = pidfd;
	bc->init_pid = pid;
	bc->status_fd = TAKE_FD(status_ev);
	bc->start_go_error = r < 0 ? r : 0;
	bc->start_sync_fd = TAKE_FD(sync_parent);
	*ret_pid = pid;
	*ret_report_fd = bc->start_sync_fd;
	return watch_fd;
}

/*
 * The cell's reports, one per readable event of the sync socket, until EOF (the workload's
 * execve succeeded) or a failed step. A failed start's init is killed and collected here.
 */
static int
sandbox_start_report(struct backend_cell *bc, struct backend_start_error *err)
{
	struct sb_child_report rep = {0};
	const char *step = "setup";
	int r = 0;

	int k = read_report(bc, bc->start_sync_fd, &rep);
	if (k == -EAGAIN || k == 2)
		return -EAGAIN;
	if (k == 1) {
		r = -(rep.error ? rep.error : EIO);
		step = rep.step;
	} else if (bc->start_go_error < 0) {
		r = bc->start_go_error; /* the setup went away without a word */
		step = "sync";
	} else if (k < 0)
		r = k;
	bc->start_sync_fd = safe_close(bc->start_sync_fd);
	/* The trees now live in the cell's namespace (or nowhere): drop our references. */
	sb_view_release_plan(&bc->view);
	if (r >= 0 && bc->spec->n_artifacts > 0 && bc->mntns_fd < 0) {
		r = -EBADMSG;
		step = "mntns";
	}
	if (bc->mntns_fd < 0)
		bc->view.root_fd = safe_close(bc->view.root_fd);
	if (r < 0) {
		siginfo_t si;
		(void)syscall(SYS_pidfd_send_signal, bc->init_pidfd, SIGKILL, NULL, 0);
		if (waitid((idtype_t)P_PIDFD, (id_t)bc->init_pidfd, &si, WEXITED) == 0 ||
		    errno == ECHILD)
			bc->init_reaped = true;
		return start_failed(err, step, -r);
	}

	/* The OOM killer should pick the workload, not init. Only now: the workload, forked
	 * before, keeps its own score. Best effort: lowering it needs CAP_SYS_RESOURCE. */
	(void)write_proc_file(bc->init_pid, "oom_score_adj", "-1000");
	/* While the workload runs: cells an earlier cellvisor could not tear down. */
	if (bc->cg)
		(void)cgroup_collect_stale(bc->cg);
	return 0;
}

/*
 * Collect init once it has exited, waiting up to timeout_ms. Returns true when init is
 * gone (collected now, before, or by someone else: ECHILD); *si holds its status when it
 * was collected now (si_pid != 0).
 */
static bool
reap_init(struct backend_cell *bc, siginfo_t *si, int timeout_ms)
{
	struct pollfd p = {.fd = bc->init_pidfd, .events = POLLIN};
	*si = (siginfo_t){0};
	if (bc->init_pidfd < 0 || bc->init_reaped)
		return true;
	if (poll(&p, 1, timeout_ms) <= 0)
		return false;
	if (waitid((idtype_t)P_PIDFD, (id_t)bc->init_pidfd, si, WEXITED | WNOHANG) < 0) {
		if (errno != ECHILD)
			return false;
		bc->init_reaped = true; /* gone, its status with it */
		return true;
	}
	if (si->si_pid == 0)
		return false;
	bc->init_reaped = true;
	return true;
}

/* Whether init has stored the workload's status (struct sb_child_status). */
static bool
status_reported(const struct backend_cell *bc)
{
	return bc->status && __atomic_load_n(&bc->status->reported, __ATOMIC_ACQUIRE);
}

static int
sandbox_reap(struct backend_cell *bc, int fd, struct backend_exit *ret)
{
	(void)fd; /* start()'s copy of init's pidfd, or bc->status_fd (ended_fd()) */
	uint64_t count;
	(void)!read(bc->status_fd, &count, sizeof(count)); /* drain it, if written */

	*ret = (struct backend_exit){0};
	if (status_reported(bc)) {
		/* The workload ended. With nothing else left init exits (or has): collect it
		 * now when it has, so that the cell is known empty at once. */
		int st = bc->status->wait_status;
		siginfo_t si;
		(void)reap_init(bc, &si, 0);
		if (WIFSIGNALED(st)) {
			ret->signaled = true;
			ret->status = WTERMSIG(st);
		} else
			ret->status = WEXITSTATUS(st);
	} else {
		/* No status: either nothing happened yet, or init itself died (cgroup.kill,
		 * the OOM killer, a kill by pid) and the pid namespace with it; then its own
		 * status is the cell's. */
		siginfo_t si;
		if (!reap_init(bc, &si, 0))
			return -EAGAIN;
		if (status_reported(bc))
			return sandbox_reap(bc, fd, ret); /* it reported, then exited */
		if (si.si_pid == 0) {
			/* Gone without a status we could collect: as killed. */
			log_error("cannot collect the cell's exit status (init already reaped)");
			ret->signaled = true;
			ret->status = SIGKILL;
		} else if (si.si_code == CLD_EXITED)
			ret->status = si.si_status;
		else {
			ret->signaled = true;
			ret->status = si.si_status;
		}
	}
	/* oomKilled as on the host backend (events.md). */
	backend_note_oom(bc->cg, ret);
	return 0;
}

static int
sandbox_ended_fd(struct backend_cell *bc)
{
	return bc->status_fd;
}

static int
sandbox_kill_all(struct backend_cell *bc)
{
	int r = 0;
	/* A setup process still waiting for "go" (start() never came): it has run nothing. */
	kill_setup(bc);
	if (bc->cg)
		r = cgroup_kill_all(bc->cg);
	/* Killing init tears the pid namespace down with everything in it. */
	if (bc->init_pidfd >= 0)
		(void)syscall(SYS_pidfd_send_signal, bc->init_pidfd, SIGKILL, NULL, 0);
	return r;
}

static int
sandbox_signal_all(struct backend_cell *bc, int sig)
{
	/* A setup process waiting for "go" blocks every signal: stopping the cell ends it. */
	kill_setup(bc);
	if (sig == SIGKILL)
		return sandbox_kill_all(bc);
	/* Job-control stops cannot be caught by init: send them to every member directly. */
	if (sig == SIGSTOP || sig == SIGCONT || sig == SIGTSTP || sig == SIGTTIN ||
	    sig == SIGTTOU) {
		if (bc->cg)
			return cgroup_signal_all(bc->cg, sig);
	} else if (bc->init_pidfd >= 0) {
		/* init forwards it to the whole cell with kill(-1, sig). */
		if (syscall(SYS_pidfd_send_signal, bc->init_pidfd, sig, NULL, 0) == 0)
			return 1;
		if (errno != ESRCH)
			return -errno;
	}
	if (bc->cg)
		return cgroup_signal_all(bc->cg, sig);
	return 0;
}

/*
 * The cell is empty when its init has exited: init stays while the cell holds anything
 * else, and its exit waits until the kernel has killed and reaped whatever is left in the
 * pid namespace. init's pidfd says so at once, where cgroup.events may lag: the kernel
 * rate-limits its notifications to one per 10 ms, and a short cell's "populated 1" is
 * that recent.
 */
static int
sandbox_empty_fd(struct backend_cell *bc, uint32_t *ret_events)
{
	if (bc->init_pidfd >= 0) {
		*ret_events = 0x001; /* EPOLLIN */
		return bc->init_pidfd;
	}
	int fd = bc->cg ? cgroup_events_fd(bc->cg) : -1;
	*ret_events = 0x002; /* EPOLLPRI */
	return fd;
}

static int
sandbox_is_empty(struct backend_cell *bc)
{
	/* Asked before any start (the cell failed between prepare and start): a setup process
	 * waiting for "go" is not a workload to wait for. */
	if (!bc->started)
		kill_setup(bc);
	if (bc->init_pidfd >= 0) {
		struct pollfd p = {.fd = bc->init_pidfd, .events = POLLIN};
		int n = poll(&p, 1, 0);
		if (n < 0)
			return -errno;
		/* Gone: so is the cell (a process someone moved into its cgroup from outside
		 * is not of the cell; cgroup_destroy() still kills it and waits). */
		return n > 0 ? 1 : 0;
	}
	if (bc->cg)
		return cgroup_is_empty(bc->cg);
	return 1;
}

static int
sandbox_open_artifact(struct backend_cell *bc, const char *path, int *ret_fd)
{
	if (!bc->started || bc->mntns_fd < 0)
		return -ENOENT;
	return sb_view_open_artifact(bc->view.root_fd, path, bc->host_uid, bc->host_gid, ret_fd);
}

static int
sandbox_destroy(struct backend_cell *bc)
{
	int r = 0;

	if (!bc)
		return 0;
	/* A setup process that never got "go" has done nothing visible: kill and reap it. */
	kill_setup(bc);
	safe_close(bc->start_sync_fd);
	for (size_t i = 0; i < bc->n_join_v1; i++)
		if (bc->join_v1_owned[i])
			safe_close(bc->join_v1[i]);
	if (bc->cg)
		r = cgroup_destroy(bc->cg);
	/* init has left with the rest of the cell (or is made to: that ends the pid
	 * namespace); collect it so that no zombie stays behind. */
	if (bc->init_pidfd >= 0 && !bc->init_reaped) {
		siginfo_t si;
		(void)syscall(SYS_pidfd_send_signal, bc->init_pidfd, SIGKILL, NULL, 0);
		(void)reap_init(bc, &si, 5000);
	}
	/* Last references to the cell's mounts: its tmpfs (secrets included) go with them. */
	sb_view_done(&bc->view);
	safe_close(bc->mntns_fd);
	safe_close(bc->init_pidfd);
	/* The cell is gone (init collected): its host uid is free again. */
	safe_close(bc->id_lock_fd);
	safe_close(bc->status_fd);
	if (bc->status)
		(void)munmap(bc->status, sizeof(*bc->status));
	wipe_secrets(bc);
	free(bc);
	return r;
}

static const char *
sandbox_version(void)
{
	return "sandbox 1 (user/pid/mount/net/uts/ipc/cgroup namespaces, seccomp, landlock)";
}

const struct backend_ops sandbox_backend = {
    .name = "sandbox",
    .aliases = NULL,
    .default_profile = BACKEND_PROFILE_HARDENED,
    .probe = sandbox_probe,
    .prepare = sandbox_prepare,
    .start = sandbox_start,
    .start_report = sandbox_start_report,
    .start_timeout_ms = SB_SETUP_TIMEOUT_MS,
    .root_contained = true,
    .reap = sandbox_reap,
    .ended_fd = sandbox_ended_fd,
    .signal_all = sandbox_signal_all,
    .kill_all = sandbox_kill_all,
    .empty_fd = sandbox_empty_fd,
    .is_empty = sandbox_is_empty,
    .open_artifact = sandbox_open_artifact,
    .destroy = sandbox_destroy,
    .version = sandbox_version,
};
