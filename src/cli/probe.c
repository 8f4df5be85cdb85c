#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/log.h"
#include "cli/cli.h"

void
usage_probe(void)
{
	printf("Usage: cellvisor probe [--json]\n"
	       "\n"
	       "Show, for each backend, what this host lets it enforce: cgroup tracking and\n"
	       "limits, namespaces, seccomp, the landlock ABI, and how a cell is contained.\n"
	       "Exit status 0; nothing is started.\n"
	       "\n"
	       "Options:\n"
	       "  --json        one JSON object per backend, one per line\n"
	       "  -h, --help    show this help\n");
}

static const char *
yes_no(bool b)
{
	return b ? "yes" : "no";
}

int
cmd_probe(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	bool json = false;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			usage_probe();
			return 0;
		default:
			log_error("probe: unknown option '%s' (see 'cellvisor help probe')",
			    argv[optind - 1]);
			return EXIT_CANNOT;
		}
	}
	if (optind != argc) {
		log_error("probe: takes no arguments");
		return EXIT_CANNOT;
	}
	for (const struct backend_ops *const *b = backend_list(); *b; b++) {
		struct backend_caps caps;
		if ((*b)->probe(&caps) < 0) {
			log_error("probe: backend %s failed to probe the host", (*b)->name);
			return EXIT_CANNOT;
		}
		const char *profile = backend_profile_to_string((*b)->default_profile);
		if (json) {
			json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:b, s:b, s:i, s:s}",
			    "backend", (*b)->name, "version", (*b)->version(), "defaultProfile",
			    profile, "cgroupV2", caps.cgroup_v2, "cgroupLimits", caps.cgroup_limits,
			    "cgroupCpu", caps.cgroup_cpu, "namespaces", caps.namespaces, "seccomp",
			    caps.seccomp, "landlockAbi", caps.landlock_abi, "containment",
			    caps.containment);
			char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
			json_decref(o);
			if (!line)
				return EXIT_CANNOT;
			printf("%s\n", line);
			free(line);
			continue;
		}
		printf("%s (%s), default profile %s\n", (*b)->name, (*b)->version(), profile);
		printf("  containment      %s\n", caps.containment);
		printf("  cgroup v2        %s\n", yes_no(caps.cgroup_v2));
		printf("  memory/pids      %s\n", yes_no(caps.cgroup_limits));
		printf("  cpu quota        %s\n", yes_no(caps.cgroup_cpu));
		printf("  namespaces       %s\n", yes_no(caps.namespaces));
		printf("  seccomp          %s\n", yes_no(caps.seccomp));
		if (caps.landlock_abi > 0)
			printf("  landlock         ABI %d\n", caps.landlock_abi);
		else
			printf("  landlock         no\n");
	}
	return 0;
}
