/*
 * seccomp_gen.c - the build step that turns the rules of seccomp.c into a constant program.
 *
 *   sb-seccomp-gen OUTPUT.h
 *
 * Builds the default filter with libseccomp (sb_seccomp_build()) and writes it as a C array
 * of struct sock_filter, which seccomp_program.c compiles into cellvisor. A cell's start
 * then costs no libseccomp work at all (building the program took the runner about 0.3 ms
 * of every start) and the runtime binary does not link libseccomp. The program only
 * depends on the rules and on the architecture being built for, never on the running
 * kernel, so building it once is exact; the unit tests check the embedded copy against a
 * fresh build. Native builds only: the program is for the architecture this runs on.
 */
#include <linux/audit.h>
#include <linux/filter.h>

#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/sandbox/seccomp.h"

int
main(int argc, char **argv)
{
	struct sb_filter f = {{0}};

	if (argc != 2) {
		fprintf(stderr, "usage: sb-seccomp-gen OUTPUT.h\n");
		return 2;
	}
	int r = sb_seccomp_build(&f);
	if (r < 0) {
		fprintf(stderr, "sb-seccomp-gen: cannot build the filter: %s\n", strerror(-r));
		return 1;
	}
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]) >= (int)sizeof(tmp)) {
		fprintf(stderr, "sb-seccomp-gen: %s: path too long\n", argv[1]);
		return 1;
	}
	FILE *out = fopen(tmp, "we");
	if (!out) {
		fprintf(stderr, "sb-seccomp-gen: %s: %s\n", tmp, strerror(errno));
		return 1;
	}
	const struct scmp_version *v = seccomp_version();
	fprintf(out,
	    "/* Generated at build time by sb-seccomp-gen (src/backend/sandbox/seccomp_gen.c)\n"
	    " * from the rules in seccomp.c, with libseccomp %u.%u.%u: do not edit. */\n"
	    "#define SB_SECCOMP_PROGRAM_ARCH 0x%08xU\n"
	    "#define SB_SECCOMP_PROGRAM_FIRST_UNAUDITED_NR %uU\n"
	    "static const struct sock_filter sb_seccomp_insns[%u] = {\n",
	    v ? v->major : 0, v ? v->minor : 0, v ? v->micro : 0, seccomp_arch_native(),
	    SB_SECCOMP_FIRST_UNAUDITED_NR, (unsigned)f.prog.len);
	for (unsigned i = 0; i < f.prog.len; i++) {
		const struct sock_filter *in = &f.prog.filter[i];
		fprintf(out, "\t{0x%04x, %u, %u, 0x%08xU},\n", in->code, in->jt, in->jf, in->k);
	}
	fprintf(out, "};\n");
	sb_seccomp_free(&f);
	if (fflush(out) != 0 || ferror(out) || fclose(out) != 0) {
		fprintf(stderr, "sb-seccomp-gen: %s: write error\n", tmp);
		remove(tmp);
		return 1;
	}
	if (rename(tmp, argv[1]) < 0) {
		fprintf(stderr, "sb-seccomp-gen: %s: %s\n", argv[1], strerror(errno));
		remove(tmp);
		return 1;
	}
	return 0;
}
