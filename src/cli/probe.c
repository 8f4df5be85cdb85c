#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/fd.h"
#include "base/log.h"
#include "base/macro.h"
#include "cli/cli.h"

void
usage_probe(void)
{
	printf("Usage: cellvisor probe [--json]\n"
	       "\n"
	       "Show, for each backend, what this host lets it enforce: cgroup tracking and\n"
	       "limits, namespaces, seccomp, the landlock ABI, how a cell is contained, and\n"
	       "the bounds a cell that declares no limits gets (CELLVISOR_DEFAULT_MEMORY_MAX,\n"
	       "CELLVISOR_DEFAULT_PIDS_MAX, CELLVISOR_DEFAULT_NOFILE) and whether they hold.\n"
	       "Exit status 0, 125 on a usage error or a malformed CELLVISOR_DEFAULT_*;\n"
	       "nothing is started.\n"
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

/* How the default pids bound holds on this backend ("" when it does not). */
static const char *
pids_enforced_by(const struct backend_caps *caps)
{
	if (caps->cgroup_pids && caps->nproc_bounds_pids)
		return "pids cgroup, RLIMIT_NPROC";
	if (caps->cgroup_pids)
		return "pids cgroup";
	if (caps->nproc_bounds_pids)
		return "RLIMIT_NPROC";
	return "";
}

static void
print_bound(const char *what, uint64_t value, const char *env, bool from_env, const char *builtin,
    bool mib, const char *enforced_by)
{
	char v[64];
	if (!value) {
		printf("  %-16s none (%s=0)\n", what, env);
		return;
	}
	if (mib)
		snprintf(v, sizeof(v), "%" PRIu64 " MiB", value >> 20);
	else
		snprintf(v, sizeof(v), "%" PRIu64, value);
	printf("  %-16s %s (%s), %s%s\n", what, v, from_env ? env : builtin,
	    enforced_by[0] ? "enforced: " : "NOT enforced on this host", enforced_by);
}

/*
 * The open files one cell can hold at its bounds: each costs about PROBE_FILE_BYTES of
 * kernel memory charged to the cell's memory cgroup (measured: a million opens of /dev/null
 * in a 256 MiB cell), and at most pids x nofile. 0: unbounded.
 */
#define PROBE_FILE_BYTES 256

static uint64_t
open_files_bound(const struct backend_caps *caps, const struct backend_limits *l)
{
	uint64_t by_memory = caps->cgroup_memory ? l->memory_max_bytes / PROBE_FILE_BYTES : 0;
	uint64_t by_rlimits = l->pids_max && pids_enforced_by(caps)[0] && l->nofile_hard
	    ? l->pids_max * l->nofile_hard
	    : 0;
	if (by_memory && by_rlimits)
		return MIN(by_memory, by_rlimits);
	return by_memory ? by_memory : by_rlimits;
}

static uint64_t
file_max(void)
{
	char buf[32];
	if (fd_read_file_at(AT_FDCWD, "/proc/sys/fs/file-max", buf, sizeof(buf)) <= 0)
		return 0;
	return strtoull(buf, NULL, 10);
}

/* The defaults as this backend applies them (docs/probe.md, docs/sandbox.md "Limits"). */
static void
print_defaults(const struct backend_caps *caps, const struct backend_limits *l)
{
	const struct backend_defaults *d = &l->defaults;
	print_bound("default memory", l->memory_max_bytes, "CELLVISOR_DEFAULT_MEMORY_MAX",
	    d->memory_from_env, "built in: a quarter of the RAM", true,
	    caps->cgroup_memory ? "memory cgroup" : "");
	print_bound("default pids", l->pids_max, "CELLVISOR_DEFAULT_PIDS_MAX", d->pids_from_env,
	    "built in: 4096, or 15% of kernel.pid_max if less", false, pids_enforced_by(caps));
	if (!l->nofile_hard)
		printf("  %-16s the runner's (CELLVISOR_DEFAULT_NOFILE=0)\n", "default nofile");
	else if (l->nofile_hard < d->nofile)
		printf("  %-16s %" PRIu64 " soft, %" PRIu64 " hard (%s %" PRIu64
		       ", lowered to the runner's hard limit)\n",
		    "default nofile", l->nofile_soft, l->nofile_hard,
		    d->nofile_from_env ? "CELLVISOR_DEFAULT_NOFILE" : "built in:", d->nofile);
	else
		printf("  %-16s %" PRIu64 " soft, %" PRIu64 " hard (%s)\n", "default nofile",
		    l->nofile_soft, l->nofile_hard,
		    d->nofile_from_env ? "CELLVISOR_DEFAULT_NOFILE" : "built in");
	if (caps->sized_tmpfs)
		printf("  %-16s %" PRIu64 " MiB, %" PRIu64 " inodes each (half the memory bound)\n",
		    "tmpfs size", l->tmpfs_size_bytes >> 20, l->tmpfs_nr_inodes);
	uint64_t files = open_files_bound(caps, l), fmax = file_max();
	if (!files)
		printf("  %-16s not bounded per cell; fs.file-max %" PRIu64 "\n", "open files",
		    fmax);
	else
		printf("  %-16s at most %" PRIu64 " per cell; fs.file-max %" PRIu64 "%s\n",
		    "open files", files, fmax,
		    fmax && files >= fmax ? " (one cell can reach it)" : "");
}

static json_t *
defaults_json(const struct backend_caps *caps, const struct backend_limits *l)
{
	json_t *o = json_pack("{s:I, s:b, s:I, s:b, s:I, s:I, s:I, s:I}", "memoryMaxBytes",
	    (json_int_t)l->memory_max_bytes, "memoryEnforced",
	    l->memory_max_bytes && caps->cgroup_memory, "pidsMax", (json_int_t)l->pids_max,
	    "pidsEnforced", l->pids_max && pids_enforced_by(caps)[0], "nofileSoft",
	    (json_int_t)l->nofile_soft, "nofileHard", (json_int_t)l->nofile_hard, "openFilesMax",
	    (json_int_t)open_files_bound(caps, l), "fileMax", (json_int_t)file_max());
	if (o && caps->sized_tmpfs) {
		json_object_set_new(o, "tmpfsSizeBytes",
		    json_integer((json_int_t)l->tmpfs_size_bytes));
		json_object_set_new(o, "tmpfsNrInodes",
		    json_integer((json_int_t)l->tmpfs_nr_inodes));
	}
	return o;
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
	/* What a spec that declares no limits gets. */
	const struct cell_spec none = {0};
	struct backend_limits lim;
	char err[256];
	if (backend_limits_for(&none, &lim, err, sizeof(err)) < 0) {
		log_error("probe: %s", err);
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
			json_t *o = json_pack(
			    "{s:s, s:s, s:s, s:b, s:b, s:b, s:b, s:b, s:i, s:s, s:b}", "backend",
			    (*b)->name, "version", (*b)->version(), "defaultProfile", profile,
			    "cgroupV2", caps.cgroup_v2, "cgroupLimits", caps.cgroup_limits,
			    "cgroupCpu", caps.cgroup_cpu, "namespaces", caps.namespaces, "seccomp",
			    caps.seccomp, "landlockAbi", caps.landlock_abi, "containment",
			    caps.containment, "rootWorkloadContained", (*b)->root_contained);
			if (o)
				json_object_set_new(o, "defaults", defaults_json(&caps, &lim));
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
		/* The host backend cannot hold a workload that runs as host root (docs/run.md). */
		printf("  root workload    %s\n",
		    (*b)->root_contained ? "contained"
		                         : "not contained: root can leave its cgroup (hardened "
		                           "needs run.user \"0\")");
		printf("  cgroup v2        %s\n", yes_no(caps.cgroup_v2));
		printf("  memory/pids      %s\n", yes_no(caps.cgroup_limits));
		printf("  cpu quota        %s\n", yes_no(caps.cgroup_cpu));
		printf("  namespaces       %s\n", yes_no(caps.namespaces));
		printf("  seccomp          %s\n", yes_no(caps.seccomp));
		if (caps.landlock_abi > 0)
			printf("  landlock         ABI %d\n", caps.landlock_abi);
		else
			printf("  landlock         no\n");
		print_defaults(&caps, &lim);
	}
	return 0;
}
