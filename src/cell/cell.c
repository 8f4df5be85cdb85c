#include "cell/cell.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>

#include <linux/magic.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/fd.h"
#include "base/log.h"
#include "base/macro.h"
#include "base/path.h"
#include "base/random.h"
#include "base/timeutil.h"
#include "cell/timeout.h"
#include "event/event.h"
#include "secret/broker.h"

enum cell_event {
	CE_PREPARED,
	CE_PREPARE_FAILED,
	CE_SPAWNED,
	CE_SPAWN_FAILED,
	CE_START_TIMEOUT,
	CE_EXITED,
	CE_CAP_FIRED,
	CE_STOP,
	CE_GRACE_EXPIRED,
	CE_EMPTY,
	_CE_MAX,
};

/* Why the cell is being stopped, which decides exitCode and spawnError. */
enum stop_cause {
	STOP_NONE,
	STOP_CAP,
	STOP_RUNNER,
	STOP_START_TIMEOUT, /* the backend's start_timeout_ms passed without a report */
};

struct output {
	struct cell *cell;
	int rd;         /* pipe read end, owned */
	int dest;       /* the runner's fd, borrowed */
	int dest_nb;    /* a private non-blocking open of dest (pipes, ttys), owned, or -1 */
	bool dest_sock; /* dest_nb is a dup of a socket: written with send(MSG_DONTWAIT) */
	struct loop_source *src, *dest_src;
	char *pending; /* bytes read from the cell that dest has not taken yet */
	size_t pend_off, pend_len;
	uint64_t dropped; /* bytes the reader of dest went away from (EPIPE) */
};

struct cell {
	struct loop *loop;
	const struct cell_spec *spec;
	const struct cell_config *cfg;
	struct event_bus *bus;
	cell_done_fn done;
	void *userdata;

	enum cell_state state;
	char run_id[UUID_STR_LEN];
	char name[SPEC_MAX_ID + 16];

	struct secret_set *secrets;
	struct redactor redactor;
	char **envp;

	struct backend_cell *bc;
	int pidfd;
	pid_t pid;
	struct loop_source *pid_src;
	struct loop_source *ended_src; /* the backend's ended_fd(), if any */
	struct loop_source *empty_src;
	struct loop_source *report_src; /* the backend's start report, while starting */
	struct loop_timer *start_timer; /* the backend's start_timeout_ms */
	struct output out[2];

	struct timeout_cap cap;
	struct loop_timer *cap_timer;
	struct loop_timer *grace_timer;
	struct loop_timer *poll_timer;
	uint64_t started_us, ended_us, deadline_us, cap_late_us;

	enum stop_cause stop_cause;
	int runner_signal;
	int late_signal; /* a runner stop signal that came while leftovers were being stopped */
	bool forced;
	bool main_reaped;
	struct backend_exit exit;
	bool spawn_failed;
	struct backend_start_error spawn_err;
	char reject_reason[512];
	char failure[512]; /* spawnError of the completed event, or empty */
	int exit_status;
};

typedef void (*cell_handler)(struct cell *c);

static void dispatch(struct cell *c, enum cell_event ev);

const char *
cell_state_to_string(enum cell_state s)
{
	static const char *const names[_CELL_STATE_MAX] = {
	    [CELL_PENDING] = "pending",
	    [CELL_STARTING] = "starting",
	    [CELL_RUNNING] = "running",
	    [CELL_STOPPING] = "stopping",
	    [CELL_DESTROYING] = "destroying",
	    [CELL_DESTROYED] = "destroyed",
	    [CELL_REJECTED] = "rejected",
	};
	return s < _CELL_STATE_MAX ? names[s] : "?";
}

int
cell_new(struct loop *loop, const struct cell_spec *spec, const struct cell_config *cfg,
    struct event_bus *bus, cell_done_fn done, void *userdata, struct cell **ret)
{
	struct cell *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = (struct cell){.loop = loop,
	    .spec = spec,
	    .cfg = cfg,
	    .bus = bus,
	    .done = done,
	    .userdata = userdata,
	    .state = CELL_PENDING,
	    .pidfd = -EBADF};
	for (int i = 0; i < 2; i++)
		c->out[i] =
		    (struct output){.cell = c, .rd = -EBADF, .dest = -EBADF, .dest_nb = -EBADF};
	int r = uuid_v4(c->run_id);
	if (r < 0) {
		free(c);
		return r;
	}
	snprintf(c->name, sizeof(c->name), "%s-%.8s", spec->id, c->run_id);
	c->cap = timeout_effective(cfg->flag_timeout_ms, cfg->env_timeout_ms, spec->timeout_ms,
	    spec->ttl_seconds);
	*ret = c;
	return 0;
}

enum cell_state
cell_get_state(const struct cell *c)
{
	return c->state;
}

int
cell_exit_status(const struct cell *c)
{
	return c->exit_status;
}

const char *
cell_failure(const struct cell *c)
{
	return c->failure[0] ? c->failure : NULL;
}

const char *
cell_reject_reason(const struct cell *c)
{
	return c->state == CELL_REJECTED ? c->reject_reason : NULL;
}

static void
emit(struct cell *c, const char *type, json_t *data)
{
	/* Nobody to tell (the noop sink alone): no envelope, id or timestamp to make. */
	if (!event_bus_listening(c->bus)) {
		json_decref(data);
		return;
	}
	(void)event_bus_emit(c->bus, event_new(type, c->spec->id, data));
}

static const char *
signal_name(int sig, char *buf, size_t size)
{
	const char *abbrev = sigabbrev_np(sig);
	if (abbrev)
		snprintf(buf, size, "SIG%s", abbrev);
	else
		snprintf(buf, size, "SIG%d", sig);
	return buf;
}

/* --- output ---
 *
 * The workload writes into a pipe; the loop copies it to the runner's stdout/stderr. A
 * slow reader of the runner's stdout must not stall the loop (timers, signals): the copy
 * goes to a private non-blocking open of the same pipe or tty, and when that is full the
 * loop stops reading the cell's pipe until it drains, so the workload blocks in write(2)
 * (backpressure, nothing lost). Regular files never block; sockets, which cannot be
 * reopened, are written blocking.
 */

#define OUTPUT_CHUNK    65536
#define OUTPUT_DRAIN_MS 5000

static void on_output(struct loop *l, int fd, uint32_t revents, void *userdata);

static void
output_close(struct output *o)
{
	loop_source_free(o->src);
	loop_source_free(o->dest_src);
	o->src = o->dest_src = NULL;
	o->rd = safe_close(o->rd);
	o->dest_nb = safe_close(o->dest_nb);
	free(o->pending);
	o->pending = NULL;
	o->pend_len = o->pend_off = 0;
}

static void
output_open_dest(struct output *o)
{
	struct stat st;
	char path[64];

	o->dest_nb = -EBADF;
	o->dest_sock = false;
	if (fstat(o->dest, &st) < 0)
		return;
	if (S_ISSOCK(st.st_mode)) {
		/* A socket cannot be reopened, but send() can be non-blocking per call. */
		int fd = fcntl(o->dest, F_DUPFD_CLOEXEC, 3);
		if (fd >= 0) {
			o->dest_nb = fd;
			o->dest_sock = true;
		}
		return;
	}
	if (!(S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)))
		return;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", o->dest);
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd >= 0)
		o->dest_nb = fd;
}

static ssize_t
dest_write(struct output *o, const char *buf, size_t n)
{
	if (o->dest_sock)
		return send(o->dest_nb, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	return write(o->dest_nb, buf, n);
}

static void
on_dest_writable(struct loop *l, int fd, uint32_t revents, void *userdata)
{
	(void)l, (void)fd, (void)revents;
	struct output *o = userdata;

	while (o->pend_len > 0) {
		ssize_t n = dest_write(o, o->pending + o->pend_off, o->pend_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			o->dropped += o->pend_len;
			o->pend_len = 0;
			break;
		}
		o->pend_off += (size_t)n;
		o->pend_len -= (size_t)n;
	}
	o->pend_off = 0;
	(void)loop_source_set_events(o->dest_src, 0);
	if (o->src)
		(void)loop_source_set_events(o->src, EPOLLIN);
}

/* Hand n bytes to dest; keep what it cannot take now and pause reading the cell. */
static void
output_write(struct output *o, const char *buf, size_t n)
{
	if (o->dest_nb < 0) {
		int r = fd_write_all(o->dest, buf, n);
		if (r < 0)
			o->dropped += n;
		return;
	}
	while (n > 0) {
		ssize_t w = dest_write(o, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w < 0) {
			o->dropped += n;
			return;
		}
		buf += w;
		n -= (size_t)w;
	}
	if (n == 0)
		return;
	if (!o->pending && !(o->pending = malloc(OUTPUT_CHUNK))) {
		(void)fd_write_all(o->dest, buf, n); /* no memory: block instead */
		return;
	}
	memcpy(o->pending, buf, n);
	o->pend_off = 0;
	o->pend_len = n;
	(void)loop_source_set_events(o->src, 0);
	if (o->dest_src)
		(void)loop_source_set_events(o->dest_src, EPOLLOUT);
	else if (loop_add_io(o->cell->loop, o->dest_nb, EPOLLOUT, on_dest_writable, o,
	             &o->dest_src) < 0) {
		(void)fd_write_all(o->dest, o->pending, n);
		o->pend_len = 0;
		(void)loop_source_set_events(o->src, EPOLLIN);
	}
}

/* Copy one chunk. Returns false at EOF or on a read error. */
static bool
output_pump(struct output *o)
{
	char buf[OUTPUT_CHUNK];
	for (;;) {
		ssize_t n = read(o->rd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN;
		if (n == 0)
			return false;
		output_write(o, buf, (size_t)n);
		return true;
	}
}

static void
on_output(struct loop *l, int fd, uint32_t revents, void *userdata)
{
	(void)l, (void)fd, (void)revents;
	struct output *o = userdata;
	if (o->pend_len > 0)
		return;
	if (!output_pump(o)) {
		loop_source_free(o->src);
		o->src = NULL;
		o->rd = safe_close(o->rd);
	}
}

/*
 * Write for the final copy: blocking in effect, but bounded by deadline_us so a reader
 * that never reads cannot keep a finished cell from being reported destroyed.
 */
static int
drain_write(struct output *o, const char *buf, size_t n, uint64_t deadline_us)
{
	if (o->dest_nb < 0)
		return fd_write_all(o->dest, buf, n);
	while (n > 0) {
		ssize_t w = dest_write(o, buf, n);
		if (w > 0) {
			buf += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN)
			return -errno;
		uint64_t now = now_mono_us();
		if (now >= deadline_us)
			return -ETIMEDOUT;
		struct pollfd pfd = {.fd = o->dest_nb, .events = POLLOUT};
		(void)poll(&pfd, 1, (int)((deadline_us - now) / USEC_PER_MSEC) + 1);
	}
	return 0;
}

/*
 * The cell is empty: no writer is left. Copy what is still buffered or in the pipe, for
 * at most OUTPUT_DRAIN_MS; what the reader does not take by then is counted as dropped.
 */
static void
output_drain(struct output *o)
{
	char buf[OUTPUT_CHUNK];
	uint64_t deadline = now_mono_us() + OUTPUT_DRAIN_MS * USEC_PER_MSEC;
	bool stuck = false;

	if (o->pend_len > 0 &&
	    drain_write(o, o->pending + o->pend_off, o->pend_len, deadline) < 0) {
		o->dropped += o->pend_len;
		stuck = true;
	}
	o->pend_len = 0;
	while (o->rd >= 0) {
		ssize_t n = read(o->rd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (stuck || drain_write(o, buf, (size_t)n, deadline) < 0) {
			o->dropped += (uint64_t)n;
			stuck = true;
		}
	}
	output_close(o);
}

/* --- environment --- */

static int
build_env(struct cell *c)
{
	const struct cell_spec *s = c->spec;
	size_t n = s->env.n + (s->secret_delivery == SPEC_SECRET_ENV ? c->secrets->n : 0);

	c->envp = calloc(n + 1, sizeof(char *));
	if (!c->envp)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < s->env.n; i++) {
		if (asprintf(&c->envp[k], "%s=%s", s->env.v[i].key, s->env.v[i].value) < 0)
			return -ENOMEM;
		k++;
	}
	if (s->secret_delivery != SPEC_SECRET_ENV)
		return 0;
	for (size_t i = 0; i < c->secrets->n; i++) {
		const struct secret *sec = &c->secrets->v[i];
		for (size_t j = 0; j < s->env.n; j++)
			if (strcmp(s->env.v[j].key, sec->env_name) == 0) {
				snprintf(c->reject_reason, sizeof(c->reject_reason),
				    "spec.run.env.%s: collides with the variable of secret '%s'",
				    sec->env_name, sec->ref);
				return -EEXIST;
			}
		if (memchr(sec->value, '\0', sec->len)) {
			snprintf(c->reject_reason, sizeof(c->reject_reason),
			    "secret '%s': a value with a NUL byte cannot be delivered as a "
			    "variable",
			    sec->ref);
			return -EINVAL;
		}
		size_t len = strlen(sec->env_name) + 1 + sec->len + 1;
		c->envp[k] = malloc(len);
		if (!c->envp[k])
			return -ENOMEM;
		snprintf(c->envp[k], len, "%s=%s", sec->env_name, sec->value);
		k++;
	}
	return 0;
}

static void
free_env(struct cell *c)
{
	if (!c->envp)
		return;
	for (size_t i = 0; c->envp[i]; i++) {
		explicit_bzero(c->envp[i], strlen(c->envp[i]));
		free(c->envp[i]);
	}
	free(c->envp);
	c->envp = NULL;
}

/* --- pending --- */

static void
reject(struct cell *c)
{
	/* The reason is printed on stderr too: no secret value in it (a spec may name one). */
	redact_text(c->bus->redactor, c->reject_reason, sizeof(c->reject_reason));
	emit(c, EV_CELL_REJECTED,
	    json_pack("{s:s, s:s, s:s, s:s}", "cellId", c->spec->id, "specId", c->spec->id, "runId",
	        c->run_id, "reason", c->reject_reason));
	c->state = CELL_REJECTED;
	c->exit_status = 125;
	if (c->done)
		c->done(c, c->userdata);
}

/* log.h filter: the cell's secret values out of cellvisor's messages. */
static void
log_redact(char *buf, size_t size, void *userdata)
{
	const struct cell *c = userdata;
	redact_text(&c->redactor, buf, size);
}

/*
 * A workload that runs as root where the backend cannot keep root in its cell (host: root
 * may write itself into any cgroup.procs and outlive `destroyed`) runs under hardened only
 * when the spec says so: run.user "0". Refused like the backend's own degraded items (and
 * named with them); under portable nothing is recorded, as before (CellOS's tests).
 */
static void
check_root_workload(struct cell *c, struct backend_prepare_result *res)
{
	if (c->cfg->backend->root_contained || c->cfg->profile != BACKEND_PROFILE_HARDENED ||
	    c->spec->has_user || geteuid() != 0)
		return;
	backend_degrade(res, "run.user",
	    "not set: the workload would run as root, which this backend cannot keep in its "
	    "cell (root can leave any cgroup); set run.user to an unprivileged uid, or to \"0\" "
	    "to accept that");
}

static int
prepare(struct cell *c)
{
	char err[256] = "";
	int r;

	r = secret_resolve(&c->spec->secret_refs, err, sizeof(err), &c->secrets);
	if (r < 0) {
		snprintf(c->reject_reason, sizeof(c->reject_reason), "%s", err);
		return r;
	}
	c->redactor = (struct redactor){.values = c->secrets->values,
	    .lengths = c->secrets->lengths,
	    .n = c->secrets->n};
	c->bus->redactor = &c->redactor;
	/* And in every message cellvisor prints while the cell holds them (DESIGN §3). */
	if (c->secrets->n > 0)
		log_set_filter(log_redact, c);

	r = build_env(c);
	if (r < 0) {
		if (!c->reject_reason[0])
			snprintf(c->reject_reason, sizeof(c->reject_reason), "%s", strerror(-r));
		return r;
	}

	struct backend_prepare_args args = {
	    .spec = c->spec,
	    .cell_name = c->name,
	    .cgroup_parent = c->cfg->cgroup_parent,
	    .secret_values = c->secrets->values,
	    .secret_lengths = c->secrets->lengths,
	    .argv = (const char *const *)c->spec->argv.v,
	    .envp = (const char *const *)c->envp,
	    .cwd = c->spec->cwd,
	};
	struct backend_prepare_result res = {0};
	r = c->cfg->backend->prepare(&args, &res, &c->bc);
	if (r < 0) {
		snprintf(c->reject_reason, sizeof(c->reject_reason), "backend %s: %s",
		    c->cfg->backend->name, res.error[0] ? res.error : strerror(-r));
		return r;
	}
	check_root_workload(c, &res);
	/*
	 * A default bound the host cannot enforce (is_default) never refuses a cell: its spec
	 * declared nothing. Under portable it is a degraded event like any other item; under
	 * hardened, whose runs carry no degraded events, only probe tells (docs/sandbox.md).
	 */
	bool hardened = c->cfg->profile == BACKEND_PROFILE_HARDENED;
	size_t n_refused = 0;
	for (size_t i = 0; hardened && i < res.n_degraded; i++) {
		if (res.degraded[i].is_default)
			continue;
		if (n_refused++ == 0)
			snprintf(c->reject_reason, sizeof(c->reject_reason),
			    "%s: not enforceable by backend %s: %s (profile hardened refuses it)",
			    res.degraded[i].item, c->cfg->backend->name, res.degraded[i].reason);
		else {
			/* Name the others too, so one fix-and-retry round is enough. */
			size_t len = strlen(c->reject_reason);
			snprintf(c->reject_reason + len, sizeof(c->reject_reason) - len, "; also %s",
			    res.degraded[i].item);
		}
	}
	if (n_refused > 0) {
		c->cfg->backend->destroy(c->bc);
		c->bc = NULL;
		return -EPERM;
	}
	for (size_t i = 0; i < res.n_degraded; i++) {
		if (hardened && res.degraded[i].is_default)
			continue;
		redact_text(c->bus->redactor, res.degraded[i].reason,
		    sizeof(res.degraded[i].reason));
		log_warn("%s: not enforced by backend %s: %s", res.degraded[i].item,
		    c->cfg->backend->name, res.degraded[i].reason);
		emit(c, EV_CELL_DEGRADED,
		    json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "cellId", c->spec->id, "runId",
		        c->run_id, "item", res.degraded[i].item, "reason", res.degraded[i].reason,
		        "backend", c->cfg->backend->name, "profile",
		        backend_profile_to_string(c->cfg->profile)));
	}
	return 0;
}

/* --- starting --- */

static void on_pidfd(struct loop *l, int fd, uint32_t revents, void *userdata);
static void on_empty_fd(struct loop *l, int fd, uint32_t revents, void *userdata);
static void on_cap(struct loop *l, struct loop_timer *t, void *userdata);
static void on_report(struct loop *l, int fd, uint32_t revents, void *userdata);
static void on_start_timeout(struct loop *l, struct loop_timer *t, void *userdata);
static void starting_kill(struct cell *c);
static void enter_running(struct cell *c);

static int
open_output(struct cell *c, int i, int dest, int *ret_wr)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	/* The workload's end must block like an ordinary stdout. */
	fd_set_nonblock(p[1], false);
	c->out[i].rd = p[0];
	c->out[i].dest = dest;
	output_open_dest(&c->out[i]);
	*ret_wr = p[1];
	return loop_add_io(c->loop, p[0], EPOLLIN, on_output, &c->out[i], &c->out[i].src);
}

static void
enter_starting(struct cell *c)
{
	const struct cell_spec *s = c->spec;
	_cleanup_close_ int devnull = -EBADF, out_wr = -EBADF, err_wr = -EBADF;
	int r;

	c->state = CELL_STARTING;
	emit(c, EV_CELL_STARTED,
	    json_pack("{s:s, s:s, s:s, s:s}", "cellId", s->id, "specId", s->id, "runId", c->run_id,
	        "backend", c->cfg->backend->name));

	devnull = fd_open_devnull();
	r = devnull;
	if (r >= 0)
		r = open_output(c, 0, c->cfg->out_fd, &out_wr);
	if (r >= 0)
		r = open_output(c, 1, c->cfg->err_fd, &err_wr);
	if (r < 0) {
		c->spawn_failed = true;
		c->spawn_err = (struct backend_start_error){.error = -r};
		snprintf(c->spawn_err.step, sizeof(c->spawn_err.step), "stdio");
		dispatch(c, CE_SPAWN_FAILED);
		return;
	}

	struct backend_start_args args = {
	    .argv = (const char *const *)s->argv.v,
	    .envp = (const char *const *)c->envp,
	    .cwd = s->cwd,
	    .stdin_fd = devnull,
	    .stdout_fd = out_wr,
	    .stderr_fd = err_wr,
	};
	c->started_us = now_mono_us();
	int report_fd = -1;
	r = c->cfg->backend->start(c->bc, &args, &c->spawn_err, &c->pid, &report_fd);
	if (r < 0) {
		c->spawn_failed = true;
		if (!c->spawn_err.error) {
			c->spawn_err.error = -r;
			snprintf(c->spawn_err.step, sizeof(c->spawn_err.step), "start");
		}
		dispatch(c, CE_SPAWN_FAILED);
		return;
	}
	c->pidfd = r;
	/* The caps run from here: a workload that is slow (or held) to start is still bound. */
	if (c->cap.source != TIMEOUT_NONE) {
		c->deadline_us = c->started_us + c->cap.ms * USEC_PER_MSEC;
		r = loop_add_timer(c->loop, c->deadline_us, on_cap, c, &c->cap_timer);
		if (r < 0)
			log_error("cannot arm the timeout: %s", strerror(-r));
	}
	if (report_fd < 0) {
		dispatch(c, CE_SPAWNED);
		return;
	}
	/*
	 * The child's report (its execve, or the step that failed) is waited for in the loop,
	 * with the caps and the runner's signals: a child its own user stops (SIGSTOP) before
	 * execve cannot hold the run.
	 */
	r = loop_add_io(c->loop, report_fd, EPOLLIN, on_report, c, &c->report_src);
	if (r >= 0 && c->cfg->backend->start_timeout_ms)
		r = loop_add_timer(c->loop,
		    c->started_us + c->cfg->backend->start_timeout_ms * USEC_PER_MSEC,
		    on_start_timeout, c, &c->start_timer);
	if (r < 0) {
		log_error("cannot watch the workload's start: %s", strerror(-r));
		starting_kill(c);
		loop_source_free(c->report_src);
		c->report_src = NULL;
		c->pidfd = safe_close(c->pidfd);
		c->spawn_failed = true;
		c->spawn_err = (struct backend_start_error){.error = -r};
		snprintf(c->spawn_err.step, sizeof(c->spawn_err.step), "watch");
		dispatch(c, CE_SPAWN_FAILED);
	}
}

/* SIGKILL everything in the cell (the terminalState is then "forced"). */
static void
kill_cell(struct cell *c)
{
	c->forced = true;
	int r = c->cfg->backend->kill_all(c->bc);
	if (r < 0)
		log_error("cannot kill cell %s: %s", c->name, strerror(-r));
}

/* Kill a cell whose workload has not exec'd yet: nothing of it runs that a grace is for. */
static void
starting_kill(struct cell *c)
{
	kill_cell(c);
	/* The top process too, should it not be in a cgroup (yet). */
	if (c->pidfd >= 0)
		(void)syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
}

static void
on_report(struct loop *l, int fd, uint32_t revents, void *userdata)
{
	(void)l, (void)fd, (void)revents;
	struct cell *c = userdata;
	struct backend_start_error err = {0};
	int r = c->cfg->backend->start_report(c->bc, &err);
	if (r == -EAGAIN)
		return;
	loop_source_free(c->report_src);
	c->report_src = NULL;
	loop_timer_free(c->start_timer);
	c->start_timer = NULL;
	if (r >= 0) {
		dispatch(c, CE_SPAWNED);
		return;
	}
	/* The backend has collected the child; its start()'s fd is all that is left. */
	c->pidfd = safe_close(c->pidfd);
	/* A start the caller killed (cap, signal, start timeout) is reported as that stop. */
	if (c->stop_cause == STOP_NONE) {
		c->spawn_failed = true;
		c->spawn_err = err;
		if (!c->spawn_err.error) {
			c->spawn_err.error = -r;
			snprintf(c->spawn_err.step, sizeof(c->spawn_err.step), "start");
		}
	}
	dispatch(c, CE_SPAWN_FAILED);
}

static void
on_start_timeout(struct loop *l, struct loop_timer *t, void *userdata)
{
	(void)l, (void)t;
	struct cell *c = userdata;
	c->start_timer = NULL; /* fired timers are freed by the loop */
	dispatch(c, CE_START_TIMEOUT);
}

/* A stop while starting (a cap, the runner's signal, the start's own timeout): the cell is
 * killed at once and the report, which follows, completes it as stopped. */
static void
starting_stop(struct cell *c)
{
	starting_kill(c);
}

static void
starting_cap(struct cell *c)
{
	c->stop_cause = STOP_CAP;
	starting_kill(c);
}

static void
starting_timed_out(struct cell *c)
{
	log_error("cell %s: no start report within %llu ms, killing it", c->name,
	    (unsigned long long)c->cfg->backend->start_timeout_ms);
	if (c->stop_cause == STOP_NONE)
		c->stop_cause = STOP_START_TIMEOUT;
	c->spawn_failed = true;
	c->spawn_err = (struct backend_start_error){.error = ETIMEDOUT};
	snprintf(c->spawn_err.step, sizeof(c->spawn_err.step), "setup");
	starting_kill(c);
}

static void enter_stopping(struct cell *c);

static void
starting_spawned(struct cell *c)
{
	enter_running(c);
	/* Stopped while it started: killed already; what is left is the usual way down. */
	if (c->stop_cause != STOP_NONE && c->state == CELL_RUNNING)
		enter_stopping(c);
}

/* --- running --- */

static void
watch_empty(struct cell *c)
{
	uint32_t events = 0;
	int fd = c->cfg->backend->empty_fd(c->bc, &events);
	if (fd >= 0 && !c->empty_src)
		(void)loop_add_io(c->loop, fd, events | EPOLLET, on_empty_fd, c, &c->empty_src);
}

static void
enter_running(struct cell *c)
{
	int r;

	c->state = CELL_RUNNING;
	r = loop_add_io(c->loop, c->pidfd, EPOLLIN, on_pidfd, c, &c->pid_src);
	int efd = c->cfg->backend->ended_fd ? c->cfg->backend->ended_fd(c->bc) : -1;
	if (r >= 0 && efd >= 0)
		r = loop_add_io(c->loop, efd, EPOLLIN, on_pidfd, c, &c->ended_src);
	if (r < 0)
		log_error("cannot watch the workload: %s", strerror(-r));
	watch_empty(c);
	log_debug("cell %s running as pid %d", c->name, (int)c->pid);
}

static void
on_pidfd(struct loop *l, int fd, uint32_t revents, void *userdata)
{
	(void)l, (void)fd, (void)revents;
	struct cell *c = userdata;
	if (c->main_reaped)
		return;
	int r = c->cfg->backend->reap(c->bc, c->pidfd, &c->exit);
	if (r == -EAGAIN)
		return;
	if (r < 0) {
		log_error("cannot collect the workload's exit status: %s", strerror(-r));
		c->exit = (struct backend_exit){.signaled = true, .status = SIGKILL};
	}
	c->main_reaped = true;
	c->ended_us = now_mono_us();
	loop_source_free(c->pid_src);
	c->pid_src = NULL;
	loop_source_free(c->ended_src);
	c->ended_src = NULL;
	c->pidfd = safe_close(c->pidfd);
	dispatch(c, CE_EXITED);
}

static void
on_cap(struct loop *l, struct loop_timer *t, void *userdata)
{
	(void)l, (void)t;
	struct cell *c = userdata;
	c->cap_timer = NULL; /* fired timers are freed by the loop */
	c->cap_late_us = now_mono_us() - c->deadline_us;
	dispatch(c, CE_CAP_FIRED);
}

static void
check_empty(struct cell *c)
{
	if (c->cfg->backend->is_empty(c->bc) == 1)
		dispatch(c, CE_EMPTY);
}

static void
on_empty_fd(struct loop *l, int fd, uint32_t revents, void *userdata)
{
	(void)l, (void)fd, (void)revents;
	check_empty(userdata);
}

static void
on_poll(struct loop *l, struct loop_timer *t, void *userdata)
{
	(void)l, (void)t;
	struct cell *c = userdata;
	c->poll_timer = NULL;
	check_empty(c);
	/* Without a notification fd, look again every 10 ms while waiting for the end. */
	if ((c->state == CELL_STOPPING || c->state == CELL_DESTROYING) && !c->empty_src &&
	    !c->poll_timer)
		(void)loop_add_timer(c->loop, now_mono_us() + 10 * USEC_PER_MSEC, on_poll, c,
		    &c->poll_timer);
}

static void
poll_if_needed(struct cell *c)
{
	if (!c->empty_src && !c->poll_timer)
		(void)loop_add_timer(c->loop, now_mono_us() + 10 * USEC_PER_MSEC, on_poll, c,
		    &c->poll_timer);
}

/* --- stopping --- */

static void
on_grace(struct loop *l, struct loop_timer *t, void *userdata)
{
	(void)l, (void)t;
	struct cell *c = userdata;
	c->grace_timer = NULL;
	dispatch(c, CE_GRACE_EXPIRED);
}

static void
kill_now(struct cell *c)
{
	kill_cell(c);
	check_empty(c);
}

static void
enter_stopping(struct cell *c)
{
	c->state = CELL_STOPPING;
	loop_timer_free(c->cap_timer);
	c->cap_timer = NULL;

	/* The top process first, through its pidfd (where start() gave one: a backend's other
	 * kind of fd refuses it with EBADF), then every member of the cell. */
	if (c->pidfd >= 0)
		(void)syscall(SYS_pidfd_send_signal, c->pidfd, SIGTERM, NULL, 0);
	int r = c->cfg->backend->signal_all(c->bc, SIGTERM);
	if (r < 0)
		log_debug("cannot signal cell %s: %s", c->name, strerror(-r));
	/* A stopped process (SIGSTOP, by the workload's user or itself) acts on its SIGTERM
	 * only once continued: now, not at the SIGKILL after the grace. */
	(void)c->cfg->backend->signal_all(c->bc, SIGCONT);
	if (c->stop_cause == STOP_CAP)
		log_debug("cap fired: late_us=%llu signalled_us=%llu",
		    (unsigned long long)c->cap_late_us,
		    (unsigned long long)(now_mono_us() - c->deadline_us));
	r = loop_add_timer(c->loop, now_mono_us() + c->cfg->grace_ms * USEC_PER_MSEC, on_grace, c,
	    &c->grace_timer);
	if (r < 0)
		kill_now(c);
	poll_if_needed(c);
	check_empty(c);
}

static void
stop_for_cap(struct cell *c)
{
	c->stop_cause = STOP_CAP;
	enter_stopping(c);
}

static void
stop_for_runner(struct cell *c)
{
	if (c->stop_cause == STOP_NONE)
		c->stop_cause = STOP_RUNNER;
	enter_stopping(c);
}

static void enter_destroying(struct cell *c);

static void
stopping_exited(struct cell *c)
{
	check_empty(c);
}

static void
stopping_empty(struct cell *c)
{
	if (c->main_reaped)
		enter_destroying(c);
	/* else: the pidfd becomes readable right after; CE_EXITED follows */
}

static void
stopping_again(struct cell *c)
{
	/* A second stop request (or the grace running out): no more waiting. */
	kill_now(c);
}

/* --- destroying --- */

static void finish(struct cell *c);

static void
emit_completed(struct cell *c)
{
	char spawn_error[512] = "", sig[32];
	json_t *signal = json_null();
	json_int_t code;

	if (c->spawn_failed) {
		code = -1;
		if (strcmp(c->spawn_err.step, "exec") == 0)
			snprintf(spawn_error, sizeof(spawn_error), "spawn failed: exec %s: %s",
			    c->spec->argv.v[0], strerror(c->spawn_err.error));
		else
			snprintf(spawn_error, sizeof(spawn_error), "spawn failed: %s: %s",
			    c->spawn_err.step, strerror(c->spawn_err.error));
	} else {
		if (c->exit.signaled)
			signal = json_string(signal_name(c->exit.status, sig, sizeof(sig)));
		if (c->stop_cause == STOP_CAP) {
			code = -1;
			timeout_message(&c->cap, c->spec->ttl_seconds, spawn_error,
			    sizeof(spawn_error));
		} else if (c->stop_cause == STOP_RUNNER) {
			code = -1;
			snprintf(spawn_error, sizeof(spawn_error),
			    "cell stopped: cellvisor received %s",
			    signal_name(c->runner_signal, sig, sizeof(sig)));
		} else
			code = c->exit.signaled ? 128 + c->exit.status : c->exit.status;
	}
	uint64_t end = c->ended_us ? c->ended_us : now_mono_us();
	/* 0 for a workload that never started (events.md). */
	uint64_t duration =
	    c->started_us && !c->spawn_failed ? (end - c->started_us) / USEC_PER_MSEC : 0;

	redact_text(c->bus->redactor, spawn_error, sizeof(spawn_error));
	snprintf(c->failure, sizeof(c->failure), "%s", spawn_error);
	emit(c, EV_CELL_COMPLETED,
	    json_pack("{s:s, s:s, s:I, s:o, s:o, s:I, s:b}", "cellId", c->spec->id, "runId",
	        c->run_id, "exitCode", code, "signal", signal, "spawnError",
	        spawn_error[0] ? json_string(spawn_error) : json_null(), "durationMs",
	        (json_int_t)duration, "oomKilled", c->exit.oom_killed));

	/* The runner's exit status (DESIGN.md §5). */
	if (c->spawn_failed) {
		int e = c->spawn_err.error;
		if (strcmp(c->spawn_err.step, "exec") == 0)
			c->exit_status = e == ENOENT ? 127 : 126;
		else
			c->exit_status = 125;
	} else if (c->stop_cause == STOP_CAP)
		c->exit_status = 124;
	else if (c->stop_cause == STOP_RUNNER)
		c->exit_status = 128 + c->runner_signal;
	else
		c->exit_status = (int)code;
}

static void
enter_destroying(struct cell *c)
{
	c->state = CELL_DESTROYING;
	loop_timer_free(c->cap_timer);
	c->cap_timer = NULL;
	loop_source_free(c->report_src);
	c->report_src = NULL;
	loop_timer_free(c->start_timer);
	c->start_timer = NULL;
	loop_timer_free(c->grace_timer);
	c->grace_timer = NULL;
	if (c->stop_cause == STOP_CAP)
		log_debug("cell empty: after_deadline_us=%llu",
		    (unsigned long long)(now_mono_us() - c->deadline_us));
	emit_completed(c);

	if (!c->bc) {
		finish(c);
		return;
	}
	/*
	 * Whatever the workload left behind (double-forked, setsid) is stopped now, the same
	 * way as the cell itself: SIGTERM, the grace period, then SIGKILL.
	 */
	if (c->cfg->backend->is_empty(c->bc) == 1) {
		finish(c);
		return;
	}
	(void)c->cfg->backend->signal_all(c->bc, SIGTERM);
	if (loop_add_timer(c->loop, now_mono_us() + c->cfg->grace_ms * USEC_PER_MSEC, on_grace, c,
	        &c->grace_timer) < 0)
		kill_now(c);
	if (c->state == CELL_DESTROYING) {
		watch_empty(c);
		poll_if_needed(c);
		check_empty(c);
	}
}

static void
destroying_kill(struct cell *c)
{
	loop_timer_free(c->grace_timer);
	c->grace_timer = NULL;
	kill_now(c);
}

static void
destroying_empty(struct cell *c)
{
	loop_timer_free(c->grace_timer);
	c->grace_timer = NULL;
	finish(c);
}

/*
 * Where the exports of one run go: <export_dir>/<cellId>/, opened once, on the first artifact
 * that gets that far, under the trusted-path rule (base/path.h). The export directory may lie
 * in a tree the cell could write (readWrite) or another user could: no symlink is followed on
 * the way, every directory must be root's or the runner's, and <cellId>/ must be the runner's
 * own and private to it, whoever created it, so nobody else can name, squat or swap what is
 * written there. Every artifact after a failure fails with the same reason.
 */
struct export_target {
	bool tried;
	int celldir; /* O_PATH, or -errno */
	char error[PATH_MAX + 256];
};

static int
export_target_open(struct cell *c, struct export_target *t)
{
	_cleanup_close_ int dirfd = -EBADF;
	char why[PATH_MAX + 200];
	int r;

	if (t->tried)
		return t->celldir;
	t->tried = true;
	r = path_open_dir(c->cfg->export_dir, &dirfd, why, sizeof(why));
	if (r >= 0)
		r = path_open_private_dir_at(dirfd, c->cfg->export_dir, c->spec->id, &t->celldir,
		    why, sizeof(why));
	if (r < 0) {
		snprintf(t->error, sizeof(t->error), "export directory %s: %s", c->cfg->export_dir,
		    why);
		t->celldir = r;
	}
	return r;
}

/*
 * Copy one artifact out of the cell into <export_dir>/<cellId>/<name>: written under a name
 * nobody can predict (path_create_temp_at), synced, then renamed over <name>, so a reader
 * sees the old file or the whole new one; what was at <name> (a file, a symlink - not
 * followed) is replaced, a directory there makes the export fail.
 */
static int
export_one(struct cell *c, struct export_target *t, const struct spec_artifact *a,
    uint64_t *ret_bytes, char ret_sha[65], char *err, size_t err_size)
{
	_cleanup_close_ int src = -EBADF, dst = -EBADF;
	struct stat st;
	int r;

	if (!c->cfg->export_dir) {
		snprintf(err, err_size,
		    "no export directory (set --export-dir or CELLOS_EXPORT_DIR)");
		return -EINVAL;
	}
	if (!c->cfg->backend->open_artifact) {
		snprintf(err, err_size, "backend %s cannot export files", c->cfg->backend->name);
		return -EOPNOTSUPP;
	}
	r = c->cfg->backend->open_artifact(c->bc, a->path, &src);
	if (r < 0) {
		/* The same words as below, whichever backend looked (the sandbox's refuses a
		 * directory or a special file before opening it). */
		snprintf(err, err_size, "%s: %s", a->path,
		    r == -ELOOP                      ? "a symlink is refused"
		        : r == -EISDIR || r == -EINVAL ? "not a regular file"
		                                       : strerror(-r));
		return r;
	}
	if (fstat(src, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, err_size, "%s: not a regular file", a->path);
		return -EINVAL;
	}
	/* Kernel pseudo-files are not artifacts: their content depends on who reads them. */
	struct statfs sfs;
	if (fstatfs(src, &sfs) < 0)
		return -errno;
	switch ((unsigned long)sfs.f_type) {
	case PROC_SUPER_MAGIC:
	case SYSFS_MAGIC:
	case DEBUGFS_MAGIC:
	case SECURITYFS_MAGIC:
	case TRACEFS_MAGIC:
	case CGROUP_SUPER_MAGIC:
	case CGROUP2_SUPER_MAGIC:
	case BPF_FS_MAGIC:
		snprintf(err, err_size, "%s: a kernel pseudo-file cannot be exported", a->path);
		return -EPERM;
	default:
		break;
	}
	if ((uint64_t)st.st_size > CELL_EXPORT_MAX_BYTES) {
		snprintf(err, err_size, "%s: larger than %llu bytes", a->path,
		    (unsigned long long)CELL_EXPORT_MAX_BYTES);
		return -EFBIG;
	}
	fd_set_nonblock(src, false);
	r = export_target_open(c, t);
	if (r < 0) {
		snprintf(err, err_size, "%s", t->error);
		return r;
	}
	int celldir = t->celldir;
	char tmp[PATH_TEMP_NAME_SIZE];
	r = path_create_temp_at(celldir, tmp, &dst);
	if (r < 0) {
		snprintf(err, err_size, "cannot create a file in %s/%s: %s", c->cfg->export_dir,
		    c->spec->id, strerror(-r));
		return r;
	}
	crypto_hash_sha256_state h;
	crypto_hash_sha256_init(&h);
	uint64_t total = 0;
	char buf[65536];
	for (;;) {
		ssize_t n = read(src, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			snprintf(err, err_size, "%s: read: %s", a->path, strerror(-r));
			goto fail;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (total > CELL_EXPORT_MAX_BYTES) {
			r = -EFBIG;
			snprintf(err, err_size, "%s: larger than %llu bytes", a->path,
			    (unsigned long long)CELL_EXPORT_MAX_BYTES);
			goto fail;
		}
		crypto_hash_sha256_update(&h, (const unsigned char *)buf, (unsigned long long)n);
		r = fd_write_all(dst, buf, (size_t)n);
		if (r < 0) {
			snprintf(err, err_size, "write %s: %s", a->name, strerror(-r));
			goto fail;
		}
	}
	if (fsync(dst) < 0) {
		r = -errno;
		snprintf(err, err_size, "fsync %s: %s", a->name, strerror(-r));
		goto fail;
	}
	if (renameat(celldir, tmp, celldir, a->name) < 0) {
		r = -errno;
		snprintf(err, err_size, "rename to %s: %s", a->name, strerror(-r));
		goto fail;
	}
	{
		/* The new name on disk too; a directory that cannot be synced loses nothing
		 * else. */
		_cleanup_close_ int dsync =
		    openat(celldir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dsync >= 0)
			(void)fsync(dsync);
	}
	unsigned char digest[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&h, digest);
	for (size_t i = 0; i < sizeof(digest); i++)
		snprintf(ret_sha + 2 * i, 3, "%02x", digest[i]);
	*ret_bytes = total;
	return 0;
fail:
	(void)unlinkat(celldir, tmp, 0);
	return r;
}

static void
run_exports(struct cell *c)
{
	struct export_target target = {.celldir = -EBADF};

	for (size_t i = 0; i < c->spec->n_artifacts; i++) {
		const struct spec_artifact *a = &c->spec->artifacts[i];
		char err[PATH_MAX + 512] = "", sha[65] = "";
		uint64_t bytes = 0;
		int r = export_one(c, &target, a, &bytes, sha, err, sizeof(err));
		if (r < 0) {
			if (!err[0])
				snprintf(err, sizeof(err), "%s", strerror(-r));
			log_warn("export %s failed: %s", a->name, err);
			emit(c, EV_CELL_EXPORT_FAIL,
			    json_pack("{s:s, s:s, s:s, s:s, s:s}", "cellId", c->spec->id, "runId",
			        c->run_id, "name", a->name, "path", a->path, "error", err));
		} else
			emit(c, EV_CELL_EXPORTED,
			    json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "cellId", c->spec->id,
			        "runId", c->run_id, "name", a->name, "path", a->path, "bytes",
			        (json_int_t)bytes, "sha256", sha));
	}
	safe_close(target.celldir);
}

static void
finish(struct cell *c)
{
	const struct cell_spec *s = c->spec;
	int r;

	loop_timer_free(c->poll_timer);
	c->poll_timer = NULL;
	loop_source_free(c->empty_src);
	c->empty_src = NULL;
	for (int i = 0; i < 2; i++)
		output_drain(&c->out[i]);

	if (c->bc)
		run_exports(c);
	char teardown_error[256] = "";
	if (c->bc) {
		r = c->cfg->backend->destroy(c->bc);
		c->bc = NULL;
		if (r < 0) {
			snprintf(teardown_error, sizeof(teardown_error), "teardown incomplete: %s",
			    strerror(-r));
			log_error("cell %s: %s", c->name, teardown_error);
		}
	}

	json_int_t cmd_code = c->spawn_failed || c->stop_cause != STOP_NONE
	    ? -1
	    : (c->exit.signaled ? 128 + c->exit.status : c->exit.status);
	emit(c, EV_CELL_COMPLIANCE,
	    json_pack("{s:s, s:s, s:s, s:o, s:I, s:s, s:I, s:O}", "cellId", s->id, "specId", s->id,
	        "runId", c->run_id, "lifetimeTtlSeconds",
	        s->ttl_seconds ? json_integer((json_int_t)s->ttl_seconds) : json_null(),
	        "egressRuleCount", (json_int_t)s->n_egress_rules, "secretDeliveryMode",
	        spec_secret_delivery_to_string(s->secret_delivery), "commandExitCode", cmd_code,
	        "correlation", s->correlation ? s->correlation : json_null()));

	/*
	 * Secrets are wiped before their revocation is announced; the last two events are
	 * built and redacted while the values still exist, then written.
	 */
	json_t *revoked = NULL;
	if (s->secret_refs.n > 0) {
		json_t *refs = json_array();
		for (size_t i = 0; i < s->secret_refs.n; i++)
			json_array_append_new(refs, json_string(s->secret_refs.v[i]));
		revoked = json_pack("{s:s, s:s, s:o}", "cellId", s->id, "runId", c->run_id,
		    "secretRefs", refs);
	}
	bool ok = !c->spawn_failed && c->stop_cause == STOP_NONE && !c->exit.signaled &&
	    c->exit.status == 0;
	json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:I}", "cellId", s->id, "runId", c->run_id,
	    "outcome", ok ? "succeeded" : "failed", "terminalState", c->forced ? "forced" : "clean",
	    "outputDroppedBytes", (json_int_t)(c->out[0].dropped + c->out[1].dropped));
	if (data && teardown_error[0])
		json_object_set_new(data, "teardownError", json_string(teardown_error));
	redact_event_data(c->bus->redactor, revoked);
	redact_event_data(c->bus->redactor, data);

	free_env(c);
	c->bus->redactor = NULL;
	if (log_filter_userdata() == c)
		log_set_filter(NULL, NULL);
	secret_set_free(c->secrets);
	c->secrets = NULL;

	if (revoked)
		emit(c, EV_CELL_REVOKED, revoked);
	emit(c, EV_CELL_DESTROYED, data);
	if (c->late_signal)
		c->exit_status = 128 + c->late_signal;
	c->state = CELL_DESTROYED;
	if (c->done)
		c->done(c, c->userdata);
}

/* --- the table --- */

static void
ignore(struct cell *c)
{
	(void)c;
}

static void
spawn_failed(struct cell *c)
{
	enter_destroying(c);
}

static void
exited_while_running(struct cell *c)
{
	enter_destroying(c);
}

static const cell_handler transitions[_CELL_STATE_MAX][_CE_MAX] = {
    [CELL_PENDING] =
        {
            [CE_PREPARED] = enter_starting,
            [CE_PREPARE_FAILED] = reject,
        },
    [CELL_STARTING] =
        {
            [CE_SPAWNED] = starting_spawned,
            [CE_SPAWN_FAILED] = spawn_failed,
            [CE_CAP_FIRED] = starting_cap,
            [CE_STOP] = starting_stop,
            [CE_START_TIMEOUT] = starting_timed_out,
        },
    [CELL_RUNNING] =
        {
            [CE_EXITED] = exited_while_running,
            [CE_CAP_FIRED] = stop_for_cap,
            [CE_STOP] = stop_for_runner,
            [CE_EMPTY] = ignore, /* the top process's exit follows */
        },
    [CELL_STOPPING] =
        {
            [CE_EXITED] = stopping_exited,
            [CE_EMPTY] = stopping_empty,
            [CE_GRACE_EXPIRED] = stopping_again,
            [CE_STOP] = stopping_again,
            [CE_CAP_FIRED] = ignore,
        },
    [CELL_DESTROYING] =
        {
            [CE_EMPTY] = destroying_empty,
            [CE_STOP] = destroying_kill,
            [CE_EXITED] = ignore,
            [CE_GRACE_EXPIRED] = destroying_kill,
        },
    [CELL_DESTROYED] =
        {
            [CE_STOP] = ignore,
            [CE_EMPTY] = ignore,
        },
    [CELL_REJECTED] =
        {
            [CE_STOP] = ignore,
        },
};

static void
dispatch(struct cell *c, enum cell_event ev)
{
	cell_handler h = transitions[c->state][ev];
	if (!h) {
		log_debug("cell %s: event %d ignored in state %s", c->name, ev,
		    cell_state_to_string(c->state));
		return;
	}
	h(c);
}

void
cell_run(struct cell *c)
{
	if (prepare(c) < 0) {
		dispatch(c, CE_PREPARE_FAILED);
		return;
	}
	dispatch(c, CE_PREPARED);
}

void
cell_stop(struct cell *c, int sig)
{
	/* Once the workload is gone the outcome is known; while leftovers are being stopped
	 * a stop cuts their grace short. */
	if (c->state == CELL_DESTROYING) {
		/* DESIGN §5: a runner told to stop exits 130/143 while anything of the cell is
		 * left; the events already written (completed) stay as they are. */
		if (!c->late_signal)
			c->late_signal = sig;
		dispatch(c, CE_STOP);
		return;
	}
	if (c->state != CELL_STARTING && c->state != CELL_RUNNING && c->state != CELL_STOPPING)
		return;
	if (c->stop_cause == STOP_NONE) {
		c->stop_cause = STOP_RUNNER;
		c->runner_signal = sig;
	}
	dispatch(c, CE_STOP);
}

void
cell_free(struct cell *c)
{
	if (!c)
		return;
	loop_timer_free(c->cap_timer);
	loop_timer_free(c->grace_timer);
	loop_timer_free(c->poll_timer);
	loop_source_free(c->pid_src);
	loop_source_free(c->ended_src);
	loop_source_free(c->empty_src);
	loop_source_free(c->report_src);
	loop_timer_free(c->start_timer);
	for (int i = 0; i < 2; i++)
		output_close(&c->out[i]);
	safe_close(c->pidfd);
	if (c->bc)
		c->cfg->backend->destroy(c->bc);
	free_env(c);
	if (c->bus && c->bus->redactor == &c->redactor)
		c->bus->redactor = NULL;
	if (log_filter_userdata() == c)
		log_set_filter(NULL, NULL);
	secret_set_free(c->secrets);
	free(c);
}
