/*
 * seccomp.h - the sandbox's default seccomp filter.
 *
 * The filter is built with libseccomp at build time (seccomp.c, by sb-seccomp-gen) and
 * compiled into cellvisor as a constant classic BPF program (seccomp_program.c:
 * sb_seccomp_program()). The cell's setup installs it with sb_seccomp_install_prog(),
 * which only calls prctl/seccomp(2) and is async-signal-safe, before the workload is
 * forked (after no_new_privs). Every rule and its reason is listed in docs/seccomp.md.
 *
 * Shape of the filter: default ALLOW with a denylist (EPERM; ENOSYS for clone3 so glibc
 * falls back to clone, whose flags the filter can see, and for openat2, whose mode the
 * setuid/setgid rules cannot see; EAFNOSUPPORT for AF_VSOCK sockets). Only the native
 * architecture is allowed: a 32-bit (int 0x80) or x32 syscall kills the process with
 * SIGSYS, so the denylist cannot be bypassed through another syscall table; 32-bit
 * binaries do not run.
 * In front of libseccomp's program sits a short hand-written prefix for what libseccomp
 * 2.5 cannot express: personality() flag checks (two conditions on one argument) and
 * ENOSYS for every native syscall number newer than the kernel the list was audited
 * against, so a future mount-like syscall is refused until someone audits it.
 */
#pragma once

#include <linux/filter.h>

#include <stddef.h>

/*
 * First native syscall number not audited for this list (6.18: the last syscall is
 * file_setattr, 469). Numbers from here up fail with ENOSYS. 0 on architectures whose
 * table we have not checked (no such check there).
 */
#if defined(__x86_64__) && !defined(__ILP32__)
#define SB_SECCOMP_FIRST_UNAUDITED_NR 470U
#elif defined(__aarch64__)
#define SB_SECCOMP_FIRST_UNAUDITED_NR 470U
#else
#define SB_SECCOMP_FIRST_UNAUDITED_NR 0U
#endif

struct sb_filter {
	struct sock_fprog prog; /* prog.filter is heap memory owned by this struct */
};

/* The default filter, as generated at build time: constant, never freed. */
const struct sock_fprog *sb_seccomp_program(void);

/* Install prog on the calling thread. Async-signal-safe. 0 or -errno (-EINVAL for NULL or
 * empty). Sets PR_SET_NO_NEW_PRIVS itself, as sb_seccomp_install() does. */
int sb_seccomp_install_prog(const struct sock_fprog *prog);

/* Build the default filter for the native architecture with libseccomp (build time and
 * tests: seccomp.c, which the runtime binary does not link). 0 or -errno. */
int sb_seccomp_build(struct sb_filter *ret);

/*
 * The same filter with a different audit boundary: native syscall numbers >=
 * first_unaudited_nr fail with ENOSYS (0 turns the check off). For tests, and for a
 * caller that must run on a kernel newer than the audit. 0 or -errno.
 */
int sb_seccomp_build_until(struct sb_filter *ret, unsigned first_unaudited_nr);

/* Install it on the calling thread. Async-signal-safe. 0 or -errno. Sets
 * PR_SET_NO_NEW_PRIVS itself (idempotent): without it an unprivileged install fails and a
 * privileged one would leave setuid exec open. */
int sb_seccomp_install(const struct sb_filter *f);

/* Frees the program; accepts NULL and an already freed or zeroed filter. */
void sb_seccomp_free(struct sb_filter *f);
