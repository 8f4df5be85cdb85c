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

extern const struct backend_ops sandbox_backend;
