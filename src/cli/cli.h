/*
 * cli.h - the command table and the helpers every command shares.
 *
 * Each command is one file with an entry point `int cmd_X(int argc, char **argv)` that
 * returns the process's exit status. main() dispatches through the table; nothing else calls
 * exit().
 */
#pragma once

#include <stddef.h>

#include "spec/spec.h"

#define CELLVISOR_VERSION "0.1.0"

/* Exit statuses shared by the commands (DESIGN.md §5). */
#define EXIT_TIMEOUT  124
#define EXIT_CANNOT   125
#define EXIT_NOEXEC   126
#define EXIT_NOTFOUND 127

struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
	void (*usage)(void);
};

const struct cli_command *cli_find(const char *name);
const struct cli_command *cli_commands(size_t *ret_n);

int cmd_run(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_help(int argc, char **argv);
int cmd_probe(int argc, char **argv);
void usage_run(void);
void usage_validate(void);
void usage_help(void);
void usage_probe(void);

/*
 * Read and validate a spec from path ("-" = stdin). On failure prints the first error (or
 * all of them with all_errors) as "cellvisor: <path>: <message>" and returns -EINVAL.
 */
int cli_load_spec(const char *path, bool all_errors, struct cell_spec **ret);
