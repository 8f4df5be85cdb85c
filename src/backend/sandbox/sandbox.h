/*
 * sandbox.h - the `sandbox` backend's registration and its fixed identities.
 *
 * The backend itself is reached through struct backend_ops (backend.h); the rest of this
 * folder is its private machinery: view.h builds the filesystem view, child.h is the
 * cell's side of the clone, seccomp.h, landlock.h and caps.h the privilege drop.
 */
#pragma once

#include "backend/backend.h"

/* The workload's uid and gid inside the cell when run.user is absent ("nobody"). */
#define SB_DEFAULT_ID 65534U

/*
 * The host uid and gid a cell runs as unless run.user names one: a dedicated id that no
 * host account uses (0x7ffffffe), so no host process shares the cell's identity (no
 * ptrace, no /proc/<pid>/root or environ access between them), and the id inside 0 is
 * mapped to when run.user is "0": a cell is never the host's root.
 */
#define SB_DEFAULT_HOST_ID 2147483646U

extern const struct backend_ops sandbox_backend;
