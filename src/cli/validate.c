#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "cli/cli.h"

void
usage_validate(void)
{
	printf("Usage: cellvisor validate [OPTIONS] SPEC|-\n"
	       "\n"
	       "Check an ExecutionCell spec. A valid spec is printed normalised (defaults filled\n"
	       "in) on stdout with exit status 0; an invalid one gets every error on stderr, one\n"
	       "per line as 'cellvisor: PATH: MESSAGE', and exit status 125.\n"
	       "\n"
	       "Options:\n"
	       "  -h, --help    show this help\n");
}

int
cmd_validate(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage_validate();
			return 0;
		default:
			log_error("validate: unknown option '%s' (see 'cellvisor help validate')",
			    argv[optind - 1]);
			return EXIT_CANNOT;
		}
	}
	if (optind != argc - 1) {
		log_error("validate: expected one SPEC argument (a file, or - for stdin)");
		return EXIT_CANNOT;
	}
	struct cell_spec *spec = NULL;
	if (cli_load_spec(argv[optind], true, &spec) < 0)
		return EXIT_CANNOT;
	json_t *j = spec_to_json(spec);
	char *out = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	spec_free(spec);
	if (!out) {
		log_error("out of memory");
		return EXIT_CANNOT;
	}
	printf("%s\n", out);
	free(out);
	return 0;
}
