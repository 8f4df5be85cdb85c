/*
 * seccomp.c - see seccomp.h; the reason for every rule is in docs/seccomp.md, in the same
 * order as the tables below.
 *
 * This is the build-time half: sb-seccomp-gen (seccomp_gen.c) runs sb_seccomp_build() and
 * writes the program into a header that seccomp_program.c compiles into cellvisor, which
 * neither links libseccomp nor builds anything when a cell starts. The unit tests link
 * this file too, and check that the embedded program is what the rules build today.
 */
#include "backend/sandbox/seccomp.h"

#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <linux/seccomp.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "base/macro.h"

/*
 * Syscalls libseccomp 2.5.4 cannot name get their number from the unified table
 * (every architecture since 5.1 numbers new syscalls alike; x86-64 and arm64 checked).
 */
#if SB_SECCOMP_FIRST_UNAUDITED_NR > 0
#define NR_UNIFIED(n) (n)
#else
#define NR_UNIFIED(n) (-1)
#endif

struct deny_rule {
	const char *name;
	int fallback_nr; /* when libseccomp does not know the name, or -1 */
};

/* Denied outright with EPERM. Grouped as in docs/seccomp.md. */
static const struct deny_rule deny_eperm[] = {
    /* Mount family, old and new API: rearranging the view, CVE-2022-0185 (fsconfig),
     * CVE-2022-0492 (cgroup v1 release_agent), CVE-2021-41133 (missing new mount API). */
    {"mount", -1},
    {"umount", -1},
    {"umount2", -1},
    {"pivot_root", -1},
    {"chroot", -1},
    {"fsopen", -1},
    {"fsconfig", -1},
    {"fsmount", -1},
    {"fspick", -1},
    {"move_mount", -1},
    {"open_tree", -1},
    {"mount_setattr", -1},
    {"open_tree_attr", NR_UNIFIED(467)}, /* 6.15 */
    /* Namespaces: joining another (unshare/clone are filtered by flag below). */
    {"setns", -1},
    /* Kernel code and whole-system state. */
    {"kexec_load", -1},
    {"kexec_file_load", -1},
    {"init_module", -1},
    {"finit_module", -1},
    {"delete_module", -1},
    {"reboot", -1},
    {"swapon", -1},
    {"swapoff", -1},
    {"acct", -1},
    {"quotactl", -1},
    {"quotactl_fd", NR_UNIFIED(443)},
    {"lookup_dcookie", -1},
    {"uselib", -1},
    {"iopl", -1},
    {"ioperm", -1},
    {"modify_ldt", -1},
    /* Clocks are not namespaced (time namespaces only offset the monotonic clocks). */
    {"settimeofday", -1},
    {"stime", -1},
    {"clock_settime", -1},
    {"clock_adjtime", -1},
    {"adjtimex", -1},
    /* Kernel log and terminal hangup. */
    {"syslog", -1},
    {"vhangup", -1},
    /* Large, often-exploited kernel surfaces an ordinary workload does not need. */
    {"bpf", -1},
    {"perf_event_open", -1},
    {"userfaultfd", -1},
    {"io_uring_setup", -1},
    {"io_uring_enter", -1},
    {"io_uring_register", -1},
    /* Kernel keyrings are not namespaced. */
    {"add_key", -1},
    {"request_key", -1},
    {"keyctl", -1},
    /* Reaching into other processes. */
    {"ptrace", -1},
    {"process_vm_readv", -1},
    {"process_vm_writev", -1},
    {"kcmp", -1},
    {"pidfd_getfd", NR_UNIFIED(438)},
    /* File handles: open_by_handle_at walks around the mount view ("shocker"). */
    {"name_to_handle_at", -1},
    {"open_by_handle_at", -1},
    /* fanotify groups and marks are charged to the user namespace's creator (host root). */
    {"fanotify_init", -1},
};

/*
 * clone3 passes its flags in memory, out of the filter's reach: ENOSYS makes glibc (2.34+
 * pthread_create, posix_spawn) fall back to clone, whose flags word the rules below see.
 */
static const struct deny_rule deny_enosys[] = {
    {"clone3", NR_UNIFIED(435)},
    /* Its mode (O_CREAT, O_TMPFILE) is in a struct too: the setuid/setgid rules below
     * cannot see it. ENOSYS: callers fall back to openat. */
    {"openat2", NR_UNIFIED(437)},
};

/*
 * No setuid or setgid file or directory made in the cell (systemd's RestrictSUIDSGID): the
 * mounts are nosuid inside the cell only, and a file left in a readWrite path could be run
 * by any host user to become the cell's host uid. Each syscall that sets a mode, with the
 * argument holding the mode, and for open/openat the flags argument that makes the mode
 * count (O_CREAT, O_TMPFILE); -1: no flags argument.
 */
struct mode_rule {
	const char *name;
	int fallback_nr;
	unsigned mode_arg;
	int flags_arg;
};

static const struct mode_rule deny_suid_sgid[] = {
    {"chmod", -1, 1, -1},
    {"fchmod", -1, 1, -1},
    {"fchmodat", -1, 2, -1},
    {"fchmodat2", NR_UNIFIED(452), 2, -1}, /* 6.6 */
    {"creat", -1, 1, -1},
    {"open", -1, 2, 1},
    {"openat", -1, 3, 2},
    {"mkdir", -1, 1, -1},
    {"mkdirat", -1, 2, -1},
    {"mknod", -1, 1, -1},
    {"mknodat", -1, 2, -1},
};

/* O_TMPFILE is __O_TMPFILE | O_DIRECTORY; the kernel refuses __O_TMPFILE alone. */
static const uint64_t creating_open_flags[] = {O_CREAT, O_TMPFILE & ~O_DIRECTORY};
static const uint64_t suid_sgid_bits[] = {S_ISUID, S_ISGID};

/* Socket families that no namespace of the cell confines: vsock reaches the hypervisor and
 * the host's vsock ports from any network namespace. */
static const uint64_t deny_families[] = {AF_VSOCK};

/*
 * Namespace flags refused in clone/unshare. CLONE_NEWUSER is the one that matters: without
 * capabilities every other flag fails in the kernel, but a nested user namespace grants a
 * full capability set over new namespaces of every kind (CVE-2022-0185, CVE-2024-1086).
 * The others are refused too so a capability slip does not turn into namespaces.
 * CLONE_NEWTIME shares its bit with the exit signal in clone's flags, so only unshare
 * gets it.
 */
static const uint64_t ns_flags[] = {
    CLONE_NEWUSER,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWNET,
    CLONE_NEWUTS,
    CLONE_NEWIPC,
    CLONE_NEWCGROUP,
    CLONE_NEWTIME,
};

/* The terminal ioctls that push input into a tty or act on the console (CVE-2017-5226,
 * CVE-2023-28100). */
static const uint64_t deny_ioctls[] = {TIOCSTI, TIOCLINUX};

/* personality() flags that weaken memory protections for what the workload execs. */
#define PERSONALITY_DENY                                                                           \
	(READ_IMPLIES_EXEC | MMAP_PAGE_ZERO | ADDR_NO_RANDOMIZE | ADDR_COMPAT_LAYOUT)
/* personality(0xffffffff) only queries; it must stay allowed although every bit is set. */
#define PERSONALITY_QUERY 0xffffffffU

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG0_LO32 (offsetof(struct seccomp_data, args[0]))
#else
#define ARG0_LO32 (offsetof(struct seccomp_data, args[0]) + 4)
#endif

/* x32 syscalls arrive with the x86-64 audit arch and this bit; libseccomp kills them. */
#if defined(__x86_64__)
#define NR_FOREIGN_BASE 0x40000000U
#else
#define NR_FOREIGN_BASE 0xffffffffU
#endif

static void
seccomp_releasep(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}

/* The native number for a rule, or -1 when this architecture has no such syscall. */
static int
rule_nr(const struct deny_rule *rule)
{
	int nr = seccomp_syscall_resolve_name(rule->name);
	/* __NR_SCMP_ERROR: unknown to libseccomp. Other negative numbers are libseccomp's
	 * pseudo-syscalls: the name exists on another architecture only (umount, stime). */
	if (nr == __NR_SCMP_ERROR)
		return rule->fallback_nr;
	return nr < 0 ? -1 : nr;
}

static int
add_unconditional(scmp_filter_ctx ctx, const struct deny_rule *rules, size_t n, uint32_t action)
{
	for (size_t i = 0; i < n; i++) {
		int nr = rule_nr(&rules[i]);
		if (nr < 0)
			continue;
		int r = seccomp_rule_add(ctx, action, nr, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * One rule per flag bit: libseccomp ORs rules for one syscall, and can test "all bits of
 * a mask" but not "any bit of a mask".
 */
static int
add_ns_flag_rules(scmp_filter_ctx ctx)
{
#if defined(__s390__) || defined(__s390x__)
	const unsigned clone_flags_arg = 1; /* CLONE_BACKWARDS2: stack first */
#else
	const unsigned clone_flags_arg = 0;
#endif
	for (size_t i = 0; i < ARRAY_SIZE(ns_flags); i++) {
		uint64_t bit = ns_flags[i];
		int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit));
		if (r < 0)
			return r;
		if (bit == CLONE_NEWTIME)
			continue;
		struct scmp_arg_cmp cmp = {
		    .arg = clone_flags_arg,
		    .op = SCMP_CMP_MASKED_EQ,
		    .datum_a = bit,
		    .datum_b = bit,
		};
		r = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1, &cmp);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * ioctl's request is an unsigned int: the kernel ignores the upper half of the register,
 * so compare the low 32 bits only, or TIOCSTI | 1 << 32 would slip through.
 */
static int
add_ioctl_rules(scmp_filter_ctx ctx)
{
	for (size_t i = 0; i < ARRAY_SIZE(deny_ioctls); i++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
		    SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffU, deny_ioctls[i]));
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * One rule per bit (and per creating flag): libseccomp ORs the rules of a syscall, and its
 * MASKED_EQ tests "all bits of a mask", not "any". Mode and flags are an umode_t and an
 * int: the masks have nothing in the upper half, so garbage there cannot dodge a rule.
 */
static int
add_suid_sgid_rules(scmp_filter_ctx ctx)
{
	for (size_t i = 0; i < ARRAY_SIZE(deny_suid_sgid); i++) {
		const struct mode_rule *m = &deny_suid_sgid[i];
		int nr = rule_nr(&(struct deny_rule){m->name, m->fallback_nr});
		if (nr < 0)
			continue;
		for (size_t b = 0; b < ARRAY_SIZE(suid_sgid_bits); b++) {
			struct scmp_arg_cmp cmp[2] = {{
			    .arg = m->mode_arg,
			    .op = SCMP_CMP_MASKED_EQ,
			    .datum_a = suid_sgid_bits[b],
			    .datum_b = suid_sgid_bits[b],
			}};
			if (m->flags_arg < 0) {
				int r =
				    seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1, cmp);
				if (r < 0)
					return r;
				continue;
			}
			for (size_t f = 0; f < ARRAY_SIZE(creating_open_flags); f++) {
				cmp[1] = (struct scmp_arg_cmp){
				    .arg = (unsigned)m->flags_arg,
				    .op = SCMP_CMP_MASKED_EQ,
				    .datum_a = creating_open_flags[f],
				    .datum_b = creating_open_flags[f],
				};
				int r =
				    seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM), nr, 2, cmp);
				if (r < 0)
					return r;
			}
		}
	}
	return 0;
}

/* socket(family, ...) and socketpair for the families nothing in the cell confines. The
 * domain is an int: compare the low 32 bits only. */
static int
add_family_rules(scmp_filter_ctx ctx)
{
	for (size_t i = 0; i < ARRAY_SIZE(deny_families); i++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffU, deny_families[i]));
		if (r < 0)
			return r;
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socketpair), 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffU, deny_families[i]));
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * The hand-written prefix, run before libseccomp's program (cBPF jumps are relative and
 * forward, so prepending leaves libseccomp's program intact; it reloads what it needs).
 * For the native arch only:
 *   - personality(x): EPERM when x (as the kernel's unsigned int) has a PERSONALITY_DENY
 *     bit, unless x is the 0xffffffff query. That is two conditions on one argument, which
 *     libseccomp 2.5 refuses (EINVAL).
 *   - first_unaudited_nr <= nr < NR_FOREIGN_BASE: ENOSYS (libseccomp has no ranges).
 * Everything else falls through to libseccomp's program.
 */
enum {
	P_LOAD_ARCH,
	P_IS_NATIVE,
	P_LOAD_NR,
	P_IS_PERSONALITY,
	P_LOAD_ARG0,
	P_IS_QUERY,
	P_HAS_DENIED_FLAG,
	P_IS_UNAUDITED,
	P_IS_FOREIGN,
	P_RET_ENOSYS,
	P_RET_EPERM,
	P_LEN, /* libseccomp's program starts here */
};

/* The jump offset from instruction `from` to instruction `to`. */
#define JUMP(from, to) ((uint8_t)((to) - (from)-1))

static void
fill_prefix(struct sock_filter *p, uint32_t native_arch, unsigned first_unaudited_nr)
{
	/* 0 disables the range check: a lower bound no native number reaches. */
	uint32_t first = first_unaudited_nr > 0 ? first_unaudited_nr : NR_FOREIGN_BASE;

	p[P_LOAD_ARCH] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, arch));
	p[P_IS_NATIVE] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, native_arch, 0,
	    JUMP(P_IS_NATIVE, P_LEN));
	p[P_LOAD_NR] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, nr));
	p[P_IS_PERSONALITY] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
	    SCMP_SYS(personality), 0, JUMP(P_IS_PERSONALITY, P_IS_UNAUDITED));
	p[P_LOAD_ARG0] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_LO32);
	p[P_IS_QUERY] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PERSONALITY_QUERY,
	    JUMP(P_IS_QUERY, P_LEN), 0);
	p[P_HAS_DENIED_FLAG] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K,
	    PERSONALITY_DENY, JUMP(P_HAS_DENIED_FLAG, P_RET_EPERM), JUMP(P_HAS_DENIED_FLAG, P_LEN));
	p[P_IS_UNAUDITED] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, first, 0,
	    JUMP(P_IS_UNAUDITED, P_LEN));
	p[P_IS_FOREIGN] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, NR_FOREIGN_BASE,
	    JUMP(P_IS_FOREIGN, P_LEN), 0);
	p[P_RET_ENOSYS] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
	p[P_RET_EPERM] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
}

static int
pread_all(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* the memfd shrank under us: cannot happen, fail closed */
		done += (size_t)n;
	}
	return 0;
}

/*
 * libseccomp 2.5 exports only to an fd (seccomp_export_bpf_mem is 2.6): write the
 * program to a memfd and read it back behind the prefix.
 */
static int
export_program(scmp_filter_ctx ctx, uint32_t native_arch, unsigned first_unaudited_nr,
    struct sock_fprog *ret)
{
	_cleanup_close_ int fd = memfd_create("sb-seccomp-bpf", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;

	int r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		return r;

	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	size_t bytes = (size_t)st.st_size;
	if (bytes == 0 || bytes % sizeof(struct sock_filter) != 0)
		return -EINVAL;
	size_t len = P_LEN + bytes / sizeof(struct sock_filter);
	if (len > BPF_MAXINSNS)
		return -E2BIG;

	_cleanup_free_ struct sock_filter *prog = calloc(len, sizeof(*prog));
	if (!prog)
		return -ENOMEM;
	fill_prefix(prog, native_arch, first_unaudited_nr);
	r = pread_all(fd, prog + P_LEN, bytes);
	if (r < 0)
		return r;

	ret->len = (unsigned short)len;
	ret->filter = TAKE_PTR(prog);
	return 0;
}

int
sb_seccomp_build_until(struct sb_filter *ret, unsigned first_unaudited_nr)
{
	int r;

	if (!ret)
		return -EINVAL;

	_cleanup_(seccomp_releasep) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return -ENOMEM;

	/* A filter for the native arch only; any other arch (int 0x80, x32) is killed. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r < 0)
		return r;
	/* A binary tree of syscall numbers rather than a linear scan. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (r < 0)
		return r;

	r = add_unconditional(ctx, deny_eperm, ARRAY_SIZE(deny_eperm), SCMP_ACT_ERRNO(EPERM));
	if (r < 0)
		return r;
	r = add_unconditional(ctx, deny_enosys, ARRAY_SIZE(deny_enosys), SCMP_ACT_ERRNO(ENOSYS));
	if (r < 0)
		return r;
	r = add_ns_flag_rules(ctx);
	if (r < 0)
		return r;
	r = add_ioctl_rules(ctx);
	if (r < 0)
		return r;
	r = add_suid_sgid_rules(ctx);
	if (r < 0)
		return r;
	r = add_family_rules(ctx);
	if (r < 0)
		return r;

	struct sock_fprog prog;
	r = export_program(ctx, seccomp_arch_native(), first_unaudited_nr, &prog);
	if (r < 0)
		return r;
	ret->prog = prog;
	return 0;
}

int
sb_seccomp_build(struct sb_filter *ret)
{
	return sb_seccomp_build_until(ret, SB_SECCOMP_FIRST_UNAUDITED_NR);
}

void
sb_seccomp_free(struct sb_filter *f)
{
	if (!f)
		return;
	free(f->prog.filter);
	f->prog.filter = NULL;
	f->prog.len = 0;
}
