#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "cell/cell.h"
#include "cell/timeout.h"
#include "cli/cli.h"
#include "event/event.h"
#include "event/sink.h"
#include "loop/loop.h"

void
usage_run(void)
{
	printf("Usage: cellvisor run [OPTIONS] SPEC|-\n"
	       "\n"
	       "Run one execution cell in the foreground and exit with its outcome.\n"
	       "\n"
	       "Options:\n"
	       "  --events FILE|-     append CloudEvents as JSON lines to FILE (- = stdout, and\n"
	       "                      the workload's stdout goes to stderr)\n"
	       "  --timeout MS        operator cap on the run's wall time, in milliseconds\n"
	       "  --grace MS          time between SIGTERM and SIGKILL when stopping (default %d)\n"
	       "  --backend NAME      host (alias stub, the default) or sandbox\n"
	       "  --profile NAME      portable or hardened (default: the backend's)\n"
	       "  --export-dir DIR    where export.artifacts are copied (DIR/<cellId>/<name>)\n"
	       "  --cgroup-parent P   create the cell's cgroup under cgroup path P\n"
	       "  -q, --quiet         print nothing of cellvisor's own but errors\n"
	       "  -h, --help          show this help\n"
	       "\n"
	       "Environment (CellOS compatible): CELL_OS_JSONL_EVENTS, CELL_OS_USE_NOOP_SINK,\n"
	       "CELLOS_CELL_BACKEND, CELLOS_DEPLOYMENT_PROFILE, CELLOS_RUN_TIMEOUT_MS, "
	       "CELLOS_BROKER,\n"
	       "CELLOS_SECRET_FILE_<KEY>, CELLOS_CGROUP_PARENT, CELLOS_EXPORT_DIR.\n"
	       "\n"
	       "Default bounds of a cell whose spec.run.limits leaves them out (0 = none; a\n"
	       "spec's explicit memoryMaxBytes/pidsMax 0 means unlimited; see 'cellvisor probe'):\n"
	       "  CELLVISOR_DEFAULT_MEMORY_MAX  bytes, K/M/G/T suffix or N%% of RAM (default 25%%)\n"
	       "  CELLVISOR_DEFAULT_PIDS_MAX    tasks (default 4096, at most 15%% of pid_max)\n"
	       "  CELLVISOR_DEFAULT_NOFILE      hard RLIMIT_NOFILE, soft 1024 (default 65536)\n"
	       "\n"
	       "Exit status: the workload's own; 124 a timeout or the TTL stopped it; 125 the\n"
	       "cell could not be run; 126 argv[0] not executable; 127 argv[0] not found;\n"
	       "128+N the workload died of signal N; 130/143 cellvisor got SIGINT/SIGTERM.\n"
	       "See docs/run.md.\n",
	    CELL_DEFAULT_GRACE_MS);
}

struct runner {
	struct cell *cell;
	struct loop *loop;
	int signals_seen;
};

static void
on_signal(struct loop *l, const struct signalfd_siginfo *si, void *userdata)
{
	(void)l;
	struct runner *r = userdata;
	int sig = (int)si->ssi_signo;
	if (r->signals_seen++ == 0)
		log_info("received SIG%s, stopping the cell",
		    sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
	else
		log_info("received SIG%s again, killing the cell",
		    sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
	cell_stop(r->cell, sig);
}

static void
on_done(struct cell *c, void *userdata)
{
	struct runner *r = userdata;
	loop_quit(r->loop, cell_exit_status(c));
}

enum {
	OPT_EVENTS = 0x100,
	OPT_TIMEOUT,
	OPT_GRACE,
	OPT_BACKEND,
	OPT_PROFILE,
	OPT_EXPORT_DIR,
	OPT_CGROUP_PARENT,
};

static const char *
env_nonempty(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/*
 * The primary sink is --events (a file, or - for stdout); without it, none (CellOS's
 * CELL_OS_USE_NOOP_SINK=1 names that choice explicitly). The CELL_OS_JSONL_EVENTS mirror is
 * written whatever the primary is, unless it is the same file.
 */
static int
setup_sinks(struct event_bus *bus, const char *events_arg)
{
	struct sink *s;
	char err[PATH_MAX + 256] = "";
	int r = 0;
	const char *mirror = env_nonempty("CELL_OS_JSONL_EVENTS");

	if (events_arg && strcmp(events_arg, "-") == 0) {
		r = sink_fd_new(STDOUT_FILENO, "stdout", &s);
		if (r >= 0)
			r = event_bus_add(bus, s);
	} else if (events_arg) {
		r = sink_jsonl_open(events_arg, &s, err, sizeof(err));
		if (r < 0) {
			log_error("cannot open events file %s: %s", events_arg, err);
			return r;
		}
		r = event_bus_add(bus, s);
	} else {
		r = sink_noop_new(&s);
		if (r >= 0)
			r = event_bus_add(bus, s);
	}
	if (r < 0)
		return r;
	if (mirror && !(events_arg && strcmp(events_arg, mirror) == 0)) {
		r = sink_jsonl_open(mirror, &s, err, sizeof(err));
		if (r < 0) {
			log_error("cannot open CELL_OS_JSONL_EVENTS file %s: %s", mirror, err);
			return r;
		}
		r = event_bus_add(bus, s);
	}
	return r;
}

int
cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"events", required_argument, NULL, OPT_EVENTS},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"grace", required_argument, NULL, OPT_GRACE},
	    {"backend", required_argument, NULL, OPT_BACKEND},
	    {"profile", required_argument, NULL, OPT_PROFILE},
	    {"export-dir", required_argument, NULL, OPT_EXPORT_DIR},
	    {"cgroup-parent", required_argument, NULL, OPT_CGROUP_PARENT},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *arg_events = NULL, *arg_backend = NULL, *arg_profile = NULL;
	const char *arg_export_dir = NULL, *arg_cgroup_parent = NULL;
	uint64_t arg_timeout = 0, arg_grace = CELL_DEFAULT_GRACE_MS;
	_cleanup_(spec_freep) struct cell_spec *spec = NULL;
	int c, r;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":qh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_EVENTS:
			arg_events = optarg;
			break;
		case OPT_TIMEOUT:
			if (timeout_parse_ms(optarg, &arg_timeout) < 0) {
				log_error("--timeout: '%s' is not a number of milliseconds (1 to "
				          "%llu)",
				    optarg, (unsigned long long)SPEC_MAX_TIMEOUT_MS);
				return EXIT_CANNOT;
			}
			break;
		case OPT_GRACE:
			if (strcmp(optarg, "0") == 0)
				arg_grace = 0;
			else if (timeout_parse_ms(optarg, &arg_grace) < 0) {
				log_error("--grace: '%s' is not a number of milliseconds", optarg);
				return EXIT_CANNOT;
			}
			break;
		case OPT_BACKEND:
			arg_backend = optarg;
			break;
		case OPT_PROFILE:
			arg_profile = optarg;
			break;
		case OPT_EXPORT_DIR:
			arg_export_dir = optarg;
			break;
		case OPT_CGROUP_PARENT:
			arg_cgroup_parent = optarg;
			break;
		case 'q':
			log_set_quiet(true);
			break;
		case 'h':
			usage_run();
			return 0;
		case ':':
			log_error("run: option '%s' needs a value", argv[optind - 1]);
			return EXIT_CANNOT;
		default:
			log_error("run: unknown option '%s' (see 'cellvisor help run')",
			    argv[optind - 1]);
			return EXIT_CANNOT;
		}
	}
	if (optind != argc - 1) {
		log_error("run: expected one SPEC argument (a file, or - for stdin)");
		return EXIT_CANNOT;
	}

	bool events_on_stdout = arg_events && strcmp(arg_events, "-") == 0;
	struct cell_config cfg = {
	    .grace_ms = arg_grace,
	    .flag_timeout_ms = arg_timeout,
	    /* With --events -, stdout carries cellvisor's events only: a workload printing there
	     * could forge one (a fake completed) or glue a real one into garbage with an
	     * unterminated line. Its stdout joins its stderr on cellvisor's stderr. */
	    .out_fd = events_on_stdout ? STDERR_FILENO : STDOUT_FILENO,
	    .err_fd = STDERR_FILENO,
	    .export_dir = arg_export_dir ? arg_export_dir : env_nonempty("CELLOS_EXPORT_DIR"),
	    .cgroup_parent =
	        arg_cgroup_parent ? arg_cgroup_parent : env_nonempty("CELLOS_CGROUP_PARENT"),
	};
	/* CellOS treats an unset or zero cap as no cap. */
	const char *env_timeout = env_nonempty("CELLOS_RUN_TIMEOUT_MS");
	if (env_timeout && strcmp(env_timeout, "0") != 0 &&
	    timeout_parse_ms(env_timeout, &cfg.env_timeout_ms) < 0) {
		log_error("CELLOS_RUN_TIMEOUT_MS: '%s' is not a number of milliseconds",
		    env_timeout);
		return EXIT_CANNOT;
	}
	/* The operator's default bounds (checked again by the backend when it prepares). */
	struct backend_defaults defaults;
	char derr[256];
	if (backend_defaults_get(&defaults, derr, sizeof(derr)) < 0) {
		log_error("%s", derr);
		return EXIT_CANNOT;
	}
	/* Signed events are a contract: never write unsigned ones when signing was asked for. */
	const char *signing = env_nonempty("CELLOS_EVENT_SIGNING");
	if (signing && strcmp(signing, "off") != 0) {
		log_error("CELLOS_EVENT_SIGNING=%.32s: event signing is not supported by this "
		          "version of cellvisor; unset it or set it to off",
		    signing);
		return EXIT_CANNOT;
	}
	const char *bname = arg_backend ? arg_backend : env_nonempty("CELLOS_CELL_BACKEND");
	cfg.backend = backend_find(bname ? bname : "host");
	if (!cfg.backend) {
		char known[256] = "";
		for (const struct backend_ops *const *b = backend_list(); *b; b++) {
			strncat(known, (*b)->name, sizeof(known) - strlen(known) - 3);
			for (size_t i = 0; (*b)->aliases && (*b)->aliases[i]; i++) {
				strncat(known, ", ", sizeof(known) - strlen(known) - 1);
				strncat(known, (*b)->aliases[i], sizeof(known) - strlen(known) - 1);
			}
			if (b[1])
				strncat(known, ", ", sizeof(known) - strlen(known) - 1);
		}
		log_error("%s: unknown backend '%s' (known: %s)",
		    arg_backend ? "--backend" : "CELLOS_CELL_BACKEND", bname, known);
		return EXIT_CANNOT;
	}
	cfg.profile = cfg.backend->default_profile;
	const char *pname = arg_profile ? arg_profile : env_nonempty("CELLOS_DEPLOYMENT_PROFILE");
	if (pname && backend_profile_from_string(pname, &cfg.profile) < 0) {
		log_error("%s: unknown profile '%s' (known: portable, hardened)",
		    arg_profile ? "--profile" : "CELLOS_DEPLOYMENT_PROFILE", pname);
		return EXIT_CANNOT;
	}

	if (cli_load_spec(argv[optind], false, &spec) < 0)
		return EXIT_CANNOT;

	/* A workload that closes its end must not kill us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	event_init_source();

	struct event_bus bus = {0};
	r = setup_sinks(&bus, arg_events);
	if (r < 0) {
		event_bus_close(&bus);
		return EXIT_CANNOT;
	}

	struct runner runner = {0};
	r = loop_new(&runner.loop);
	if (r < 0) {
		log_error("cannot create the event loop: %s", strerror(-r));
		event_bus_close(&bus);
		return EXIT_CANNOT;
	}
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
	r = loop_set_signals(runner.loop, sigs, (int)ARRAY_SIZE(sigs), on_signal, &runner);
	if (r < 0) {
		log_error("cannot watch signals: %s", strerror(-r));
		loop_free(runner.loop);
		event_bus_close(&bus);
		return EXIT_CANNOT;
	}
	r = cell_new(runner.loop, spec, &cfg, &bus, on_done, &runner, &runner.cell);
	if (r < 0) {
		log_error("cannot create the cell: %s", strerror(-r));
		loop_free(runner.loop);
		event_bus_close(&bus);
		return EXIT_CANNOT;
	}

	cell_run(runner.cell);
	int status;
	enum cell_state st = cell_get_state(runner.cell);
	if (st == CELL_REJECTED || st == CELL_DESTROYED)
		status = cell_exit_status(runner.cell);
	else
		status = loop_run(runner.loop);
	if (status < 0) {
		log_error("event loop failed: %s", strerror(-status));
		status = EXIT_CANNOT;
	}
	if (cell_get_state(runner.cell) == CELL_REJECTED)
		log_error("%s", cell_reject_reason(runner.cell));
	else if (cell_failure(runner.cell) &&
	    (status == EXIT_CANNOT || status == EXIT_NOEXEC || status == EXIT_NOTFOUND))
		log_error("%s", cell_failure(runner.cell));
	else if (cell_failure(runner.cell))
		log_info("%s", cell_failure(runner.cell));

	cell_free(runner.cell);
	/* A run whose record is incomplete did not succeed, whatever the workload did. The
	 * events reach the disk while signals are still held by the loop. */
	bool lost = bus.failures > 0;
	if (event_bus_close(&bus) < 0)
		lost = true;
	loop_free(runner.loop);
	if (lost) {
		log_error("some events could not be written: the record of this run is incomplete");
		if (status == 0)
			status = EXIT_CANNOT;
	}
	return status;
}
