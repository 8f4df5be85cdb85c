/*
 * cell.h - one cell's lifecycle, driven by the state table of DESIGN.md §4.
 *
 *   pending -> starting -> running -> stopping -> destroying -> destroyed
 *      \-> rejected (preparation failed or authority refused; nothing ran)
 *
 * A cell owns its backend instance, its secrets, its output pipes and its timers; it
 * borrows the loop, the spec, the config and the event bus, which must outlive it. Every
 * transition goes through one table of handlers; each handler writes the event of the
 * state it enters. When the cell reaches destroyed or rejected it calls the done callback.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "event/sink.h"
#include "loop/loop.h"
#include "spec/spec.h"

enum cell_state {
	CELL_PENDING,
	CELL_STARTING,
	CELL_RUNNING,
	CELL_STOPPING,
	CELL_DESTROYING,
	CELL_DESTROYED,
	CELL_REJECTED,
	_CELL_STATE_MAX,
};

#define CELL_DEFAULT_GRACE_MS 5000
#define CELL_EXPORT_MAX_BYTES (256ULL * 1024 * 1024)

struct cell_config {
	const struct backend_ops *backend;
	enum backend_profile profile;
	uint64_t flag_timeout_ms; /* --timeout, 0 = unset */
	uint64_t env_timeout_ms;  /* CELLOS_RUN_TIMEOUT_MS, 0 = unset */
	uint64_t grace_ms;
	const char *cgroup_parent; /* CELLOS_CGROUP_PARENT or NULL */
	const char *export_dir;    /* --export-dir / CELLOS_EXPORT_DIR or NULL */
	int out_fd, err_fd;        /* where the workload's stdout/stderr are copied */
};

struct cell;

typedef void (*cell_done_fn)(struct cell *c, void *userdata);

int cell_new(struct loop *loop, const struct cell_spec *spec, const struct cell_config *cfg,
    struct event_bus *bus, cell_done_fn done, void *userdata, struct cell **ret);
void cell_free(struct cell *c);

/* Prepare and start the cell. Everything after that happens in the loop. */
void cell_run(struct cell *c);

/* Ask the cell to stop because the runner got signal sig (SIGTERM, grace, SIGKILL). */
void cell_stop(struct cell *c, int sig);

enum cell_state cell_get_state(const struct cell *c);
const char *cell_state_to_string(enum cell_state s);

/* The runner's exit status per DESIGN.md §5, valid once destroyed or rejected. */
int cell_exit_status(const struct cell *c);

/* The spawnError of a completed cell (spawn failure, cap, stop), or NULL. */
const char *cell_failure(const struct cell *c);

/* The one-line reason a rejected cell gives (no secret values), or NULL. */
const char *cell_reject_reason(const struct cell *c);
