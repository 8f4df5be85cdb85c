/*
 * caps.c - see caps.h. Everything here runs between fork and execve: raw syscalls only,
 * no allocation, no stdio, no libcap.
 */
#include "backend/sandbox/caps.h"

#include <sys/prctl.h>
#include <sys/syscall.h>

#include <linux/capability.h>

#include <string.h>
#include <linux/securebits.h>

#include <errno.h>
#include <unistd.h>

/*
 * NOROOT: an exec by uid 0 (or of a setuid-root file) does not fill the permitted set.
 * NO_SETUID_FIXUP: changing uid does not touch the sets, so the caller can setresuid()
 * between our two steps and we still clear everything explicitly afterwards.
 * NO_CAP_AMBIENT_RAISE: the ambient set stays empty. KEEP_CAPS is locked off.
 * Every bit is locked so the workload cannot undo it (CVE-2022-27650 class: a
 * capability set left non-empty is regained through exec).
 */
#define SB_SECUREBITS                                                                              \
	(SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |                           \
	    SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |                              \
	    SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED)

/* capset(2) v3 carries two 32-bit words per set, so no capability number reaches 64. */
#define SB_CAP_LIMIT 64

static int
set_securebits(void)
{
	int old = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	if (old < 0)
		return -errno;

	unsigned long want = (unsigned long)old | SB_SECUREBITS;
	want &= ~(unsigned long)SECBIT_KEEP_CAPS;
	/* Already done (a second call, maybe after setresuid dropped CAP_SETPCAP). */
	if ((unsigned long)old == want)
		return 0;
	if (prctl(PR_SET_SECUREBITS, want, 0, 0, 0) < 0)
		return -errno;
	return 0;
}

/*
 * PR_CAPBSET_DROP for every number until the kernel answers EINVAL (past its last
 * capability): no file access (the proc view may not exist yet), and it follows the running
 * kernel, not the headers we were built with. One prctl per capability: the setup holds
 * CAP_SETPCAP, so dropping a capability that is already absent succeeds too; only without
 * it (EPERM) is PR_CAPBSET_READ asked whether there was anything to drop. (This used to
 * read every capability before dropping it: twice the calls on the cell's critical path.)
 */
static int
drop_bounding_set(void)
{
	for (unsigned long cap = 0; cap < SB_CAP_LIMIT; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL)
			return 0; /* past the kernel's last capability */
		if (errno != EPERM)
			return -errno;
		/* No CAP_SETPCAP (checked before the number): fine only if the capability was
		 * not in the set anyway, or is past the kernel's last one. */
		int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
		if (r < 0)
			return errno == EINVAL ? 0 : -errno;
		if (r != 0)
			return -EPERM;
	}
	return 0;
}

int
sb_caps_drop_bounding(void)
{
	/* Ambient first: it needs no privilege. EINVAL means a kernel before 4.3 (no ambient). */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;

	/* Securebits before the bounding set: both need CAP_SETPCAP, and the order keeps it
	 * effective for the second step (dropping it from the bounding set does not remove it
	 * from the effective set). */
	int r = set_securebits();
	if (r < 0)
		return r;
	return drop_bounding_set();
}

int
sb_caps_drop_all(void)
{
	int r = sb_caps_drop_bounding();
	if (r < 0)
		return r;

	struct __user_cap_header_struct hdr = {
	    .version = _LINUX_CAPABILITY_VERSION_3,
	    .pid = 0,
	};
	struct __user_cap_data_struct data[2] = {0};
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -errno;
	return 0;
}

bool
sb_caps_have_runner_caps(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		return false;
	static const int need[] = {CAP_SYS_ADMIN, CAP_SETUID, CAP_SETGID};
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (!(d[need[i] / 32].effective & (1U << (need[i] % 32))))
			return false;
	return true;
}
