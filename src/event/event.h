/*
 * event.h - CloudEvents 1.0 envelopes and the type catalog.
 *
 * event_new() wraps a data object in the envelope of DESIGN.md §6: a fresh UUID id, source
 * "/cellvisor/<hostname>", subject "cell:<id>", RFC 3339 UTC time with milliseconds. The
 * returned json_t is owned by the caller. The catalog of cellvisor's own types is in
 * docs/events.md.
 */
#pragma once

#include <jansson.h>

#define EV_CELL_STARTED     "dev.cellos.events.cell.lifecycle.v1.started"
#define EV_CELL_COMPLETED   "dev.cellos.events.cell.command.v1.completed"
#define EV_CELL_DESTROYED   "dev.cellos.events.cell.lifecycle.v1.destroyed"
#define EV_CELL_COMPLIANCE  "dev.cellos.events.cell.compliance.v1.summary"
#define EV_CELL_EXPORTED    "dev.cellos.events.cell.export.v2.completed"
#define EV_CELL_EXPORT_FAIL "dev.cellos.events.cell.export.v2.failed"
#define EV_CELL_REVOKED     "dev.cellos.events.cell.identity.v1.revoked"
#define EV_CELL_SILENCED    "dev.cellos.events.cell.observability.v1.guest.agent_silenced"
#define EV_CELL_REJECTED    "dev.cellvisor.events.cell.v1.rejected"
#define EV_CELL_DEGRADED    "dev.cellvisor.events.cell.authority.v1.degraded"

/* Set the source from the host name; called once at start-up. */
void event_init_source(void);
const char *event_source(void);

/* A new envelope around data (reference stolen). subject_id is the cell id. NULL on OOM. */
json_t *event_new(const char *type, const char *subject_id, json_t *data);
