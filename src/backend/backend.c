#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "backend/backend.h"

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
