#include <sys/stat.h>

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "base/log.h"
#include "base/random.h"
#include "cli/cli.h"

static const struct cli_command commands[] = {
    {"run", cmd_run, "run one cell in the foreground", usage_run},
    {"validate", cmd_validate, "check a cell spec and print it normalised", usage_validate},
    {"probe", cmd_probe, "show what each backend can enforce on this host", usage_probe},
    {"help", cmd_help, "show help for cellvisor or one command", usage_help},
};

const struct cli_command *
cli_commands(size_t *ret_n)
{
	*ret_n = sizeof(commands) / sizeof(commands[0]);
	return commands;
}

const struct cli_command *
cli_find(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void
usage_main(FILE *f)
{
	fprintf(f,
	    "Usage: cellvisor COMMAND [OPTIONS] [ARGS]\n"
	    "       cellvisor SPEC            (same as 'cellvisor run SPEC', as cellos-supervisor)\n"
	    "       cellvisor --version | --help\n"
	    "\n"
	    "A supervisor for execution cells: a workload started with only the authority its\n"
	    "spec declares, supervised, observed and destroyed with nothing left behind.\n"
	    "\nCommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nRun 'cellvisor help COMMAND' for a command's options.\n");
}

void
usage_help(void)
{
	printf("Usage: cellvisor help [COMMAND]\n\nShow the usage of cellvisor or of COMMAND.\n");
}

int
cmd_help(int argc, char **argv)
{
	if (argc < 2) {
		usage_main(stdout);
		return 0;
	}
	const struct cli_command *c = cli_find(argv[1]);
	if (!c) {
		log_error("unknown command '%s' (see 'cellvisor help')", argv[1]);
		return EXIT_CANNOT;
	}
	c->usage();
	return 0;
}

/* A closed 0, 1 or 2 would be reused by the first open(): point them at /dev/null. */
static void
ensure_stdio(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0) {
			int n = open("/dev/null", (fd == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
			if (n >= 0 && n != fd) {
				dup2(n, fd);
				close(n);
			}
		}
}

int
main(int argc, char **argv)
{
	ensure_stdio();
	/* Children are collected through pidfds and waitid(): an inherited SIG_IGN for SIGCHLD
	 * would have the kernel reap them first (and the sandbox's init inherit it). */
	signal(SIGCHLD, SIG_DFL);
	/* jansson seeds its hash function on first use by opening and reading /dev/urandom:
	 * one getrandom() instead (the same source), on every start. */
	size_t seed = 0;
	if (random_bytes(&seed, sizeof(seed)) == 0 && seed != 0)
		json_object_seed(seed);
	const char *dbg = getenv("CELLVISOR_DEBUG");
	log_set_debug(dbg && strcmp(dbg, "1") == 0);

	if (argc < 2) {
		usage_main(stderr);
		return EXIT_CANNOT;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("cellvisor %s\n", CELLVISOR_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage_main(stdout);
		return 0;
	}
	const struct cli_command *c = cli_find(argv[1]);
	/*
	 * cellos-supervisor's calling convention: the spec as the only argument, everything
	 * else from the environment. `cellvisor SPEC` is `cellvisor run SPEC`.
	 */
	struct stat st;
	size_t len = strlen(argv[1]);
	bool looks_like_spec = strcmp(argv[1], "-") == 0 || strchr(argv[1], '/') ||
	    (len > 5 && strcmp(argv[1] + len - 5, ".json") == 0) ||
	    (stat(argv[1], &st) == 0 && S_ISREG(st.st_mode));
	if (!c && argc == 2 && looks_like_spec)
		return cmd_run(argc, argv);
	if (!c) {
		log_error("unknown command '%s' (see 'cellvisor --help')", argv[1]);
		return EXIT_CANNOT;
	}
	return c->run(argc - 1, argv + 1);
}
