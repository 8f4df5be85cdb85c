/*
 * host.c - the `host` backend (alias `stub`): a plain process in its own cgroup.
 *
 * No isolation: the workload sees the host's filesystem and network. What this backend does
 * enforce is containment and limits: the workload and everything it forks live in the
 * cell's cgroup (v2 tracking + kill, v1 or v2 limits), so a stop or a timeout kills all of
 * it. Without usable cgroups it falls back to a new session/process group with the runner
 * as child subreaper, and says so as a degraded item (a process that calls setsid() again
 * escapes that). Declared network, filesystem and egress authority cannot be enforced here
 * and are reported as degraded.
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/openat2.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/cgroup.h"
#include "backend/spawn.h"
#include "base/fd.h"
#include "base/log.h"
#include "base/macro.h"
#include "spec/spec.h"

struct backend_cell {
	const struct cell_spec *spec;
	struct cgroup *cg; /* NULL in process-group mode */
	struct backend_limits limits;
	pid_t pgid;        /* the workload's session/process group */
	bool reaped_main;
	int report_fd;   /* the child's error pipe (O_NONBLOCK) until the start is decided */
	int start_pidfd; /* our own pidfd of the child until then, to collect a failed one */
};

static int
host_probe(struct backend_caps *ret)
{
	struct cgroup_layout l;
	*ret = (struct backend_caps){0};
	bool wl;
	bool w = backend_cgroup_caps(ret, &l, &wl);
	snprintf(ret->containment, sizeof(ret->containment), "%s",
	    !w                    ? "none (process group)"
	        : wl || !l.v2     ? cgroup_layout_describe(&l)
	                          : "cgroup v2 (tracking only: no limit hierarchy is writable)");
	return 0;
}

static int
host_prepare(const struct backend_prepare_args *a, struct backend_prepare_result *res,
    struct backend_cell **ret)
{
	const struct cell_spec *s = a->spec;
	struct backend_cell *bc;
	int r;

	if (s->secret_delivery == SPEC_SECRET_FILE && s->secret_refs.n > 0) {
		snprintf(res->error, sizeof(res->error),
		    "spec.run.secretDelivery: \"file\" needs an isolating backend (--backend "
		    "sandbox)");
		return -EOPNOTSUPP;
	}
	if (s->network == SPEC_NETWORK_NONE || s->network == SPEC_NETWORK_LOOPBACK)
		backend_degrade(res, "authority.network",
		    "the host backend does not isolate the network: the workload uses the host's");
	if (s->has_filesystem)
		backend_degrade(res, "authority.filesystem",
		    "the host backend does not restrict the filesystem view");
	if (s->n_egress_rules > 0)
		backend_degrade(res, "authority.egressRules",
		    "the host backend cannot restrict egress to the declared destinations");

	bc = calloc(1, sizeof(*bc));
	if (!bc)
		return -ENOMEM;
	bc->spec = s;
	bc->report_fd = bc->start_pidfd = -EBADF;

	if ((r = backend_limits_for(s, &bc->limits, res->error, sizeof(res->error))) < 0) {
		free(bc);
		return r;
	}
	backend_cgroup_parent_check(a->cgroup_parent, res);
	char err[256] = "";
	r = backend_cgroup_create(a, &bc->limits, 0, res, &bc->cg, err, sizeof(err));
	if (r < 0) {
		free(bc);
		return r;
	}
	if (!bc->cg) {
		char why[192];
		snprintf(why, sizeof(why),
		    "no cgroup (%.120s): contained by process group only; setsid() escapes it",
		    err);
		backend_degrade(res, "containment", why);
		(void)prctl(PR_SET_CHILD_SUBREAPER, 1);
	}
	*ret = bc;
	return 0;
}

/* Everything between clone and execve: async-signal-safe calls only. */
static _Noreturn void
child_exec(struct backend_cell *bc, const struct backend_start_args *a, const char *path,
    const int *join_fds, size_t n_join, int errfd, pid_t parent)
{
	sigset_t none;
	sigemptyset(&none);
	for (int sig = 1; sig < NSIG; sig++)
		(void)signal(sig, SIG_DFL);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		spawn_child_fail(errfd, "pdeathsig", errno);
	if (getppid() != parent)
		_exit(127);
	if (setsid() < 0)
		spawn_child_fail(errfd, "setsid", errno);
	for (size_t i = 0; i < n_join; i++)
		if (write(join_fds[i], "0", 1) < 0)
			spawn_child_fail(errfd, "cgroup", errno);

	/* Move low stdio fds out of the way, the error pipe to 3, then stdio into place. */
	int fds[3] = {a->stdin_fd, a->stdout_fd, a->stderr_fd};
	for (int i = 0; i < 3; i++)
		if (fds[i] <= 3) {
			int n = fcntl(fds[i], F_DUPFD_CLOEXEC, 10);
			if (n < 0)
				spawn_child_fail(errfd, "dup", errno);
			fds[i] = n;
		}
	if (errfd != 3) {
		if (dup3(errfd, 3, O_CLOEXEC) < 0)
			spawn_child_fail(errfd, "dup", errno);
		errfd = 3;
	}
	for (int i = 0; i < 3; i++)
		if (dup2(fds[i], i) < 0)
			spawn_child_fail(errfd, "dup", errno);

	if (bc->limits.nofile_hard) {
		struct rlimit rl = {bc->limits.nofile_soft, bc->limits.nofile_hard};
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			spawn_child_fail(errfd, "rlimit", errno);
	}
	if (bc->spec->has_user) {
		if (setgroups(0, NULL) < 0 ||
		    setresgid(bc->spec->gid, bc->spec->gid, bc->spec->gid) < 0 ||
		    setresuid(bc->spec->uid, bc->spec->uid, bc->spec->uid) < 0)
			spawn_child_fail(errfd, "setuid", errno);
	}
	if (a->cwd && chdir(a->cwd) < 0)
		spawn_child_fail(errfd, "chdir", errno);

	fd_close_from(4);
	execve(path, (char *const *)a->argv, (char *const *)a->envp);
	spawn_child_fail(errfd, "exec", errno);
}

static const char *
env_lookup(const char *const *envp, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; envp[i]; i++)
		if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
			return envp[i] + n + 1;
	return NULL;
}

static int
host_start(struct backend_cell *bc, const struct backend_start_args *a,
    struct backend_start_error *err, pid_t *ret_pid, int *ret_report_fd)
{
	char path[4096];
	int pipefd[2];
	int join_fds[8];
	size_t n_join = 0;
	int pidfd = -1;
	bool into = false;
	int r;

	r = spawn_resolve(a->argv[0], env_lookup(a->envp, "PATH"), path, sizeof(path));
	if (r < 0) {
		err->error = -r;
		snprintf(err->step, sizeof(err->step), "exec");
		return r;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	_cleanup_close_ int rd = pipefd[0];
	_cleanup_close_ int wr = pipefd[1];
	/* Only our end: the report is read when the loop says it is there. */
	r = fd_set_nonblock(rd, true);
	if (r < 0)
		return r;
	_cleanup_close_ int keep = -EBADF;

	int cgfd = bc->cg ? cgroup_v2_dirfd(bc->cg) : -1;
	pid_t parent = getpid();
	pid_t pid = spawn_clone(0, cgfd, &pidfd, &into);
	if (pid < 0) {
		err->error = -pid;
		snprintf(err->step, sizeof(err->step), "clone");
		return pid;
	}
	if (pid == 0) {
		/* The child joins the hierarchies clone3 did not put it in. */
		if (bc->cg)
			n_join = cgroup_join_fds(bc->cg, join_fds, ARRAY_SIZE(join_fds), !into);
		child_exec(bc, a, path, join_fds, n_join, wr, parent);
	}
	wr = safe_close(wr);
	bc->pgid = pid;
	keep = fcntl(pidfd, F_DUPFD_CLOEXEC, 3);
	if (keep < 0) {
		r = -errno;
		siginfo_t si;
		(void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		(void)waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED);
		close(pidfd);
		err->error = -r;
		snprintf(err->step, sizeof(err->step), "dup");
		return r;
	}
	bc->start_pidfd = TAKE_FD(keep);
	bc->report_fd = TAKE_FD(rd);
	/* While the workload starts: cells an earlier cellvisor could not tear down. */
	if (bc->cg)
		(void)cgroup_collect_stale(bc->cg);
	*ret_pid = pid;
	*ret_report_fd = bc->report_fd;
	return pidfd;
}

/*
 * The child's report: EOF when its execve succeeded (the pipe's last copy is O_CLOEXEC), or
 * the step that failed. A child that failed is killed before it is collected: it may have
 * been stopped between its report and its _exit() by the user it switched to.
 */
static int
host_start_report(struct backend_cell *bc, struct backend_start_error *err)
{
	struct spawn_report rep;
	int r = spawn_read_report(bc->report_fd, &rep);
	if (r == -EAGAIN)
		return r;
	bc->report_fd = safe_close(bc->report_fd);
	if (r == 0) {
		bc->start_pidfd = safe_close(bc->start_pidfd);
		return 0;
	}
	siginfo_t si;
	(void)syscall(SYS_pidfd_send_signal, bc->start_pidfd, SIGKILL, NULL, 0);
	(void)waitid((idtype_t)P_PIDFD, (id_t)bc->start_pidfd, &si, WEXITED);
	bc->start_pidfd = safe_close(bc->start_pidfd);
	bc->reaped_main = true;
	err->error = r < 0 ? -r : rep.error > 0 ? rep.error : EIO;
	snprintf(err->step, sizeof(err->step), "%s", r < 0 ? "report" : rep.step);
	return -err->error;
}

static int
host_reap(struct backend_cell *bc, int pidfd, struct backend_exit *ret)
{
	siginfo_t si = {0};
	if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) < 0)
		return -errno;
	if (si.si_pid == 0)
		return -EAGAIN;
	*ret = (struct backend_exit){0};
	if (si.si_code == CLD_EXITED)
		ret->status = si.si_status;
	else {
		ret->signaled = true;
		ret->status = si.si_status;
	}
	backend_note_oom(bc->cg, ret);
	bc->reaped_main = true;
	return 0;
}

static int
host_signal_all(struct backend_cell *bc, int sig)
{
	if (bc->cg)
		return cgroup_signal_all(bc->cg, sig);
	if (bc->pgid > 0 && kill(-bc->pgid, sig) == 0)
		return 1;
	return 0;
}

static int
host_kill_all(struct backend_cell *bc)
{
	if (bc->cg)
		return cgroup_kill_all(bc->cg);
	if (bc->pgid > 0)
		(void)kill(-bc->pgid, SIGKILL);
	return 0;
}

static int
host_empty_fd(struct backend_cell *bc, uint32_t *ret_events)
{
	*ret_events = 0x002; /* EPOLLPRI */
	return bc->cg ? cgroup_events_fd(bc->cg) : -1;
}

/*
 * Process-group mode: orphans of the group were reparented to us (subreaper). Reap those
 * that exited, by pid from our children list, never the top process (its status belongs
 * to host_reap through the pidfd).
 */
static void
reap_orphans(struct backend_cell *bc)
{
	char path[64], buf[8192];
	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (char *p = buf, *end; *p; p = end) {
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid <= 0 || (pid == bc->pgid && !bc->reaped_main))
			continue;
		siginfo_t si = {0};
		(void)waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG);
	}
}

static int
host_is_empty(struct backend_cell *bc)
{
	if (bc->cg)
		return cgroup_is_empty(bc->cg);
	if (bc->pgid <= 0)
		return 1;
	reap_orphans(bc);
	return kill(-bc->pgid, 0) < 0 && errno == ESRCH ? 1 : 0;
}

/* The host backend exports host paths: refuse symlinks anywhere on the way. */
static int
host_open_artifact(struct backend_cell *bc, const char *path, int *ret_fd)
{
	struct open_how how = {
	    .flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK,
	    .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	/*
	 * The workload's own identity decides what it may export: with run.user set, the file
	 * is opened by a child with that uid/gid and no groups or capabilities, so a cell
	 * cannot export what it could not read itself.
	 */
	if (bc->spec->has_user)
		return spawn_open_as(bc->spec->uid, bc->spec->gid, AT_FDCWD, path, &how, ret_fd);
	int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

static int
host_destroy(struct backend_cell *bc)
{
	int r = 0;
	if (!bc)
		return 0;
	safe_close(bc->report_fd);
	safe_close(bc->start_pidfd);
	if (bc->cg)
		r = cgroup_destroy(bc->cg);
	else if (bc->pgid > 0) {
		(void)kill(-bc->pgid, SIGKILL);
		(void)host_is_empty(bc);
	}
	free(bc);
	return r;
}

static const char *
host_version(void)
{
	return "host 1";
}

static const char *const host_aliases[] = {"stub", NULL};

const struct backend_ops host_backend = {
    .name = "host",
    .aliases = host_aliases,
    .default_profile = BACKEND_PROFILE_PORTABLE,
    .probe = host_probe,
    .prepare = host_prepare,
    .start = host_start,
    .start_report = host_start_report,
    .root_contained = false,
    .reap = host_reap,
    .signal_all = host_signal_all,
    .kill_all = host_kill_all,
    .empty_fd = host_empty_fd,
    .is_empty = host_is_empty,
    .open_artifact = host_open_artifact,
    .destroy = host_destroy,
    .version = host_version,
};
