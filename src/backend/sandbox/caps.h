/*
 * caps.h - dropping every capability before exec.
 *
 * Async-signal-safe (raw syscalls and prctl only): clears the ambient set, drops every
 * capability from the bounding set, sets the securebits that stop a uid-0 exec from
 * regaining them, and zeroes the effective, permitted and inheritable sets.
 *
 * Ordering for the caller (the forked child between clone and execve):
 *   - The securebits and the bounding set can only be changed while CAP_SETPCAP is
 *     effective. setresuid() from uid 0 to a non-zero uid clears the permitted and effective
 *     sets (unless SECBIT_NO_SETUID_FIXUP is set), after which neither can be changed.
 *   - So a child that changes uid calls sb_caps_drop_bounding() while still privileged,
 *     then setgroups/setresgid/setresuid (still possible: the effective set is untouched,
 *     and SECBIT_NO_SETUID_FIXUP keeps it across the uid change), then sb_caps_drop_all().
 *   - A child that keeps its uid (uid 0 inside a user namespace) just calls
 *     sb_caps_drop_all() after its last privileged step (mounts, pivot_root).
 * Both functions are idempotent: work already done (bits set, capability already out of
 * the bounding set) is skipped, so a second call succeeds without CAP_SETPCAP.
 */
#pragma once

#include <stdbool.h>

/*
 * Clear the ambient set, set and lock SECBIT_NOROOT, SECBIT_NO_SETUID_FIXUP,
 * SECBIT_NO_CAP_AMBIENT_RAISE and (cleared) SECBIT_KEEP_CAPS, and drop every capability
 * from the bounding set. Leaves the effective/permitted/inheritable sets alone so the
 * caller can still setresuid(). 0 or -errno (-EPERM without CAP_SETPCAP).
 */
int sb_caps_drop_bounding(void);

/*
 * sb_caps_drop_bounding(), then capset() with all three sets zero. 0 or -errno.
 * Call after the last step that needs privileges (mounts, setresuid).
 */
int sb_caps_drop_all(void);

/* Whether the calling process has CAP_SYS_ADMIN, CAP_SETUID and CAP_SETGID effective: what
 * the runner needs to set a cell up (probe). */
bool sb_caps_have_runner_caps(void);
