#include "backend/backend.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "backend/cgroup.h"
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
backend_cgroup_limits(const struct cell_spec *s, struct backend_prepare_result *res,
    struct cgroup_limits *ret)
{
	struct cgroup_layout l;

	cgroup_probe(&l);
	*ret = (struct cgroup_limits){0};
	if (s->memory_max_bytes && !cgroup_can_limit_memory(&l))
		backend_degrade(res, "run.limits.memoryMaxBytes",
		    "no memory cgroup controller on this host");
	else
		ret->memory_max_bytes = s->memory_max_bytes;
	if (s->pids_max && !cgroup_can_limit_pids(&l))
		backend_degrade(res, "run.limits.pidsMax",
		    "no pids cgroup controller on this host");
	else
		ret->pids_max = s->pids_max;
	if (s->cpu_millicores && !cgroup_can_limit_cpu(&l))
		backend_degrade(res, "run.limits.cpuMillicores",
		    "no cpu cgroup controller on this host");
	else
		ret->cpu_millicores = s->cpu_millicores;
}

void
backend_note_oom(struct cgroup *cg, struct backend_exit *ret)
{
	uint64_t ooms = 0;
	if (ret->signaled && ret->status == SIGKILL && cg && cgroup_oom_kills(cg, &ooms) >= 0 &&
	    ooms > 0)
		ret->oom_killed = true;
}
