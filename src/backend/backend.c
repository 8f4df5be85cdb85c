#include "backend/backend.h"

#include <sys/resource.h>
#include <sys/sysinfo.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cgroup.h"
#include "base/fd.h"
#include "base/macro.h"
#include "spec/spec.h"

extern const struct backend_ops host_backend;
extern const struct backend_ops sandbox_backend;

static const struct backend_ops *const backends[] = {
    &host_backend,
    &sandbox_backend,
    NULL,
};

const struct backend_ops *const *
backend_list(void)
{
	return backends;
}

const struct backend_ops *
backend_find(const char *name)
{
	for (size_t i = 0; backends[i]; i++) {
		if (strcmp(backends[i]->name, name) == 0)
			return backends[i];
		for (size_t j = 0; backends[i]->aliases && backends[i]->aliases[j]; j++)
			if (strcmp(backends[i]->aliases[j], name) == 0)
				return backends[i];
	}
	return NULL;
}

const char *
backend_profile_to_string(enum backend_profile p)
{
	return p == BACKEND_PROFILE_HARDENED ? "hardened" : "portable";
}

int
backend_profile_from_string(const char *s, enum backend_profile *ret)
{
	if (strcmp(s, "portable") == 0)
		*ret = BACKEND_PROFILE_PORTABLE;
	else if (strcmp(s, "hardened") == 0)
		*ret = BACKEND_PROFILE_HARDENED;
	else
		return -EINVAL;
	return 0;
}

void
backend_degrade(struct backend_prepare_result *res, const char *item, const char *reason)
{
	if (res->n_degraded >= BACKEND_MAX_DEGRADED)
		return;
	struct backend_degraded *d = &res->degraded[res->n_degraded++];
	snprintf(d->item, sizeof(d->item), "%s", item);
	snprintf(d->reason, sizeof(d->reason), "%s", reason);
}

void
backend_degrade_default(struct backend_prepare_result *res, const char *item, const char *reason)
{
	size_t n = res->n_degraded;
	backend_degrade(res, item, reason);
	if (res->n_degraded > n)
		res->degraded[n].is_default = true;
}

static uint64_t
total_ram_bytes(void)
{
	struct sysinfo si;
	if (sysinfo(&si) < 0 || si.mem_unit == 0)
		return 0;
	return (uint64_t)si.totalram * si.mem_unit;
}

/*
 * A decimal count in [min, max] or 0; for memory also with a K, M, G or T suffix (powers of
 * 1024), or "N%" of the RAM (1 to 100).
 */
static int
parse_default(const char *name, const char *v, uint64_t min, uint64_t max, bool memory,
    uint64_t *ret, char *err, size_t err_size)
{
	char *end;
	unsigned long long n;

	if (!isdigit((unsigned char)v[0]))
		goto bad;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno)
		goto bad;
	if (memory && *end && !end[1]) {
		static const char units[] = "KMGT";
		const char *u = strchr(units, toupper((unsigned char)*end));
		if (*end == '%') {
			if (n < 1 || n > 100)
				goto bad;
			n = total_ram_bytes() / 100 * n;
			end++;
		} else if (u) {
			unsigned shift = 10 * (unsigned)(u - units + 1);
			if (n > (UINT64_MAX >> shift))
				goto bad;
			n <<= shift;
			end++;
		}
	}
	if (*end || (n != 0 && (n < min || n > max)))
		goto bad;
	*ret = n;
	return 0;
bad:
	if (memory)
		snprintf(err, err_size,
		    "%s: '%.32s' must be 0 (none), a number of bytes from %" PRIu64 " to %" PRIu64
		    " with an optional K, M, G or T suffix, or a percentage of the RAM (N%%)",
		    name, v, min, max);
	else
		snprintf(err, err_size,
		    "%s: '%.32s' must be 0 (none) or an integer from %" PRIu64 " to %" PRIu64, name,
		    v, min, max);
	return -EINVAL;
}

int
backend_defaults_get(struct backend_defaults *ret, char *err, size_t err_size)
{
	struct backend_defaults d = {.nofile = BACKEND_DEFAULT_NOFILE};
	char buf[32];
	int r;

	/* A quarter of the RAM, in whole MiB. */
	d.memory_max_bytes = total_ram_bytes() / 4 & ~((uint64_t)(1 << 20) - 1);
	/* 4096 tasks, or 15% of the pid space if that is less (systemd's DefaultTasksMax). */
	d.pids_max = BACKEND_DEFAULT_PIDS_MAX;
	if (fd_read_file_at(AT_FDCWD, "/proc/sys/kernel/pid_max", buf, sizeof(buf)) > 0) {
		uint64_t pid_max = strtoull(buf, NULL, 10);
		if (pid_max > 0 && pid_max * 15 / 100 < d.pids_max)
			d.pids_max = MAX(pid_max * 15 / 100, 16);
	}

	const struct {
		const char *name;
		uint64_t min, max;
		bool memory;
		uint64_t *dst;
		bool *from_env;
	} vars[] = {
	    {"CELLVISOR_DEFAULT_MEMORY_MAX", 1024 * 1024, 1ULL << 50, true, &d.memory_max_bytes,
	        &d.memory_from_env},
	    {"CELLVISOR_DEFAULT_PIDS_MAX", 1, 4194304, false, &d.pids_max, &d.pids_from_env},
	    {"CELLVISOR_DEFAULT_NOFILE", 3, 1048576, false, &d.nofile, &d.nofile_from_env},
	};
	for (size_t i = 0; i < ARRAY_SIZE(vars); i++) {
		const char *v = getenv(vars[i].name);
		if (!v || !*v)
			continue;
		r = parse_default(vars[i].name, v, vars[i].min, vars[i].max, vars[i].memory,
		    vars[i].dst, err, err_size);
		if (r < 0)
			return r;
		*vars[i].from_env = true;
	}
	*ret = d;
	return 0;
}

int
backend_limits_for(const struct cell_spec *s, struct backend_limits *ret, char *err,
    size_t err_size)
{
	struct backend_limits l = {0};
	int r = backend_defaults_get(&l.defaults, err, err_size);
	if (r < 0)
		return r;

	l.memory_is_default = !s->has_memory_max;
	l.memory_max_bytes = s->has_memory_max ? s->memory_max_bytes : l.defaults.memory_max_bytes;
	l.pids_is_default = !s->has_pids_max;
	l.pids_max = s->has_pids_max ? s->pids_max : l.defaults.pids_max;
	if (s->nofile) {
		l.nofile_soft = l.nofile_hard = s->nofile;
	} else if (l.defaults.nofile) {
		/* Lowered, never raised: a runner's hard limit below the default is the bound. */
		struct rlimit cur;
		l.nofile_is_default = true;
		l.nofile_hard = l.defaults.nofile;
		if (getrlimit(RLIMIT_NOFILE, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
		    cur.rlim_max < l.nofile_hard)
			l.nofile_hard = cur.rlim_max;
		l.nofile_soft = MIN((uint64_t)BACKEND_DEFAULT_NOFILE_SOFT, l.nofile_hard);
	}

	/* tmpfs pages are charged to the writer's memory cgroup too: half the bound each, so
	 * a full /tmp ends in ENOSPC with memory left, not in an OOM kill. Without a bound,
	 * a quarter of the RAM (the kernel's default is half). */
	uint64_t base = l.memory_max_bytes ? l.memory_max_bytes : total_ram_bytes() / 2;
	l.tmpfs_size_bytes = MAX(base / 2 & ~(uint64_t)4095, (uint64_t)BACKEND_TMPFS_MIN_BYTES);
	l.tmpfs_nr_inodes = MAX(l.tmpfs_size_bytes / 4096, (uint64_t)1024);
	*ret = l;
	return 0;
}

/* Add what this host cannot enforce of one limit to res; true when it can be set. */
static bool
limit_settable(struct backend_prepare_result *res, uint64_t value, bool is_default, bool controller,
    bool other_bound, const char *item, const char *env, const char *ctl)
{
	char why[192];
	if (!value)
		return false;
	if (controller)
		return true;
	if (!is_default)
		snprintf(why, sizeof(why), "no %s cgroup controller on this host", ctl);
	else if (other_bound)
		return false;
	else
		snprintf(why, sizeof(why),
		    "the default bound %" PRIu64 " (%s) is not set: no %s "
		    "cgroup controller on this host",
		    value, env, ctl);
	if (is_default)
		backend_degrade_default(res, item, why);
	else
		backend_degrade(res, item, why);
	return false;
}

int
backend_cgroup_create(const struct backend_prepare_args *a, const struct backend_limits *lim,
    unsigned flags, struct backend_prepare_result *res, struct cgroup **ret_cg, char *err,
    size_t err_size)
{
	const struct cell_spec *s = a->spec;
	struct cgroup_layout l;
	struct cgroup_limits want = {0};
	bool mem_default = false, pids_default = false;
	char name[128];
	int r;

	cgroup_probe_under(a->cgroup_parent, &l);
	if (limit_settable(res, lim->memory_max_bytes, lim->memory_is_default,
	        cgroup_can_limit_memory(&l), false, "run.limits.memoryMaxBytes",
	        "CELLVISOR_DEFAULT_MEMORY_MAX", "memory")) {
		want.memory_max_bytes = lim->memory_max_bytes;
		mem_default = lim->memory_is_default;
	}
	if (limit_settable(res, lim->pids_max, lim->pids_is_default, cgroup_can_limit_pids(&l),
	        flags & BACKEND_CGROUP_NPROC, "run.limits.pidsMax", "CELLVISOR_DEFAULT_PIDS_MAX",
	        "pids")) {
		want.pids_max = lim->pids_max + (flags & BACKEND_CGROUP_INIT_TASK ? 1 : 0);
		pids_default = lim->pids_is_default;
	}
	if (limit_settable(res, s->cpu_millicores, false, cgroup_can_limit_cpu(&l), false,
	        "run.limits.cpuMillicores", NULL, "cpu"))
		want.cpu_millicores = s->cpu_millicores;

	snprintf(name, sizeof(name), "cellvisor-%s", a->cell_name);
	r = cgroup_create(name, a->cgroup_parent, &want, err, err_size, ret_cg);
	if (r < 0 && (mem_default || pids_default)) {
		/*
		 * A default that cannot be set (an unwritable v1 hierarchy, a v2 parent that will
		 * not delegate the controller) must not refuse a spec that declared nothing:
		 * the cell is made without the defaults, and they are reported.
		 */
		char why[192];
		if (mem_default) {
			snprintf(why, sizeof(why),
			    "the default bound %" PRIu64 " (%s) is not set: %.100s",
			    want.memory_max_bytes, "CELLVISOR_DEFAULT_MEMORY_MAX", err);
			backend_degrade_default(res, "run.limits.memoryMaxBytes", why);
			want.memory_max_bytes = 0;
		}
		if (pids_default) {
			snprintf(why, sizeof(why),
			    "the default bound %" PRIu64 " (%s) is not set: %.100s", lim->pids_max,
			    "CELLVISOR_DEFAULT_PIDS_MAX", err);
			if (!(flags & BACKEND_CGROUP_NPROC))
				backend_degrade_default(res, "run.limits.pidsMax", why);
			want.pids_max = 0;
		}
		r = cgroup_create(name, a->cgroup_parent, &want, err, err_size, ret_cg);
	}
	if (r < 0) {
		*ret_cg = NULL;
		if (want.memory_max_bytes || want.pids_max || want.cpu_millicores ||
		    a->cgroup_parent) {
			/* The spec's limits need the cgroup; nothing to fall back to. */
			snprintf(res->error, sizeof(res->error), "cgroup: %s", err);
			return r;
		}
	}
	return 0;
}

bool
backend_cgroup_caps(struct backend_caps *ret, struct cgroup_layout *ret_layout,
    bool *ret_limit_dirs)
{
	/* What a run here could make, under CELLOS_CGROUP_PARENT (a delegated subtree) or the
	 * caller's own cgroup: judged there, not on the caller's own cgroup. */
	const char *parent = getenv("CELLOS_CGROUP_PARENT");
	if (parent && !*parent)
		parent = NULL;
	cgroup_probe_under(parent, ret_layout);
	bool w = cgroup_writable(ret_layout, parent, false);
	bool wl = cgroup_writable(ret_layout, parent, true);
	ret->cgroup_v2 = ret_layout->v2 && w;
	ret->cgroup_limits =
	    wl && cgroup_can_limit_memory(ret_layout) && cgroup_can_limit_pids(ret_layout);
	ret->cgroup_memory = wl && cgroup_can_limit_memory(ret_layout);
	ret->cgroup_pids = wl && cgroup_can_limit_pids(ret_layout);
	ret->cgroup_cpu = wl && cgroup_can_limit_cpu(ret_layout);
	if (ret_limit_dirs)
		*ret_limit_dirs = wl;
	return w;
}

void
backend_cgroup_parent_check(const char *parent, struct backend_prepare_result *res)
{
	char why[1500] = "", reason[sizeof(res->degraded[0].reason)];
	if (!parent || cgroup_parent_foreign(parent, why, sizeof(why)) <= 0)
		return;
	snprintf(reason, sizeof(reason), "%s: that user can move the cell's processes out and kill them",
	    why);
	backend_degrade(res, "cgroupParent", reason);
}

void
backend_note_oom(struct cgroup *cg, struct backend_exit *ret)
{
	uint64_t ooms = 0;
	if (ret->signaled && ret->status == SIGKILL && cg && cgroup_oom_kills(cg, &ooms) >= 0 &&
	    ooms > 0)
		ret->oom_killed = true;
}
