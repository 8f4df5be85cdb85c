/*
 * seccomp_program.c - the default filter as cellvisor carries it: a constant program,
 * generated at build time from the rules in seccomp.c (seccomp_gen.c), and its
 * installation. No libseccomp here: nothing is built when a cell starts.
 */
#include "backend/sandbox/seccomp.h"

#include <sys/prctl.h>
#include <sys/syscall.h>

#include <linux/seccomp.h>

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "backend/sandbox/seccomp_program.h"
#include "base/macro.h"

_Static_assert(SB_SECCOMP_PROGRAM_FIRST_UNAUDITED_NR == SB_SECCOMP_FIRST_UNAUDITED_NR,
    "the generated program is stale: rebuild");

static const struct sock_fprog program = {
    .len = (unsigned short)ARRAY_SIZE(sb_seccomp_insns),
    /* The kernel only reads it; sock_fprog has no const member. */
    .filter = (struct sock_filter *)(uintptr_t)sb_seccomp_insns,
};

const struct sock_fprog *
sb_seccomp_program(void)
{
	return &program;
}

int
sb_seccomp_install_prog(const struct sock_fprog *prog)
{
	if (!prog || !prog->filter || prog->len == 0)
		return -EINVAL;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	/* Flags 0: no TSYNC (the child is single-threaded) and no SPEC_ALLOW, so the kernel
	 * keeps its speculative-store-bypass mitigation for the workload. */
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) == 0)
		return 0;
	if (errno != ENOSYS)
		return -errno;
	/* seccomp(2) is 3.17; prctl takes the same program. */
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog, 0, 0) < 0)
		return -errno;
	return 0;
}

int
sb_seccomp_install(const struct sb_filter *f)
{
	return sb_seccomp_install_prog(f ? &f->prog : NULL);
}
