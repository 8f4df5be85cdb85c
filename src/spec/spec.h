/*
 * spec.h - the ExecutionCell document: parse, validate, normalise.
 *
 * spec_parse() takes untrusted bytes and either returns a fully validated struct cell_spec
 * (every limit in DESIGN.md §3 checked, unknown fields and duplicate keys rejected) or fills
 * a struct spec_errors with every problem found, each with its JSON path
 * ("spec.run.argv[0]") or, for malformed JSON, its line and column. The returned spec owns
 * all its strings; free it with spec_free(). Nothing here touches the host: whether the host
 * can enforce what the spec declares is the backend's question.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits on the document itself (DESIGN.md §3). */
#define SPEC_MAX_BYTES      (1024 * 1024)
#define SPEC_MAX_DEPTH      64
#define SPEC_MAX_ARGV       4096
#define SPEC_MAX_ENV        4096
#define SPEC_MAX_LIST       256         /* secretRefs, egressRules, mounts, artifacts, labels */
#define SPEC_MAX_STRING     (64 * 1024) /* one argv/env string; execve allows 128 KiB */
#define SPEC_MAX_PATH       4095
#define SPEC_MAX_ID         64
#define SPEC_MAX_ERRORS     64
#define SPEC_MAX_TIMEOUT_MS (7ULL * 24 * 3600 * 1000) /* one week */
#define SPEC_MAX_TTL_S      (7ULL * 24 * 3600)

enum spec_network {
	SPEC_NETWORK_UNSET, /* absent: "none" on isolating backends */
	SPEC_NETWORK_NONE,
	SPEC_NETWORK_LOOPBACK,
	SPEC_NETWORK_HOST,
	_SPEC_NETWORK_MAX,
};

enum spec_secret_delivery {
	SPEC_SECRET_ENV,
	SPEC_SECRET_FILE,
	_SPEC_SECRET_MAX,
};

struct spec_egress_rule {
	char *host;
	uint16_t port;
	char *protocol; /* "tcp" or "udp"; NULL when absent */
};

struct spec_strv {
	char **v; /* NULL-terminated */
	size_t n;
};

struct spec_kv {
	char *key;
	char *value;
};

struct spec_kvv {
	struct spec_kv *v;
	size_t n;
};

struct spec_artifact {
	char *name;
	char *path;
};

struct cell_spec {
	char *api_version;
	char *id;

	/* authority */
	struct spec_strv secret_refs;
	struct spec_egress_rule *egress_rules;
	size_t n_egress_rules;
	enum spec_network network;
	bool has_filesystem;
	struct spec_strv fs_read_only;
	struct spec_strv fs_read_write;
	struct spec_strv fs_tmpfs;

	/* lifetime */
	uint64_t ttl_seconds; /* 0 = none */

	/* run */
	struct spec_strv argv;
	struct spec_kvv env;
	char *cwd;
	uint64_t timeout_ms; /* 0 = none */
	enum spec_secret_delivery secret_delivery;
	bool has_user;
	uint32_t uid, gid;
	/*
	 * 0 = unset for all limits. memoryMaxBytes and pidsMax may also be declared 0:
	 * "unlimited", no operator default applies (has_* tells the two apart).
	 */
	uint64_t memory_max_bytes;
	bool has_memory_max;
	uint64_t pids_max;
	bool has_pids_max;
	uint64_t cpu_millicores;
	uint64_t nofile;

	/* export */
	struct spec_artifact *artifacts;
	size_t n_artifacts;

	/* correlation: kept as JSON, echoed into compliance events */
	json_t *correlation;
};

struct spec_error {
	char path[256]; /* "spec.run.argv[0]" or "spec" for document-level errors */
	char message[256];
};

struct spec_errors {
	struct spec_error e[SPEC_MAX_ERRORS];
	size_t n;
	bool truncated;
};

/*
 * Parse and validate a document of len bytes (which need not be NUL-terminated).
 * Returns 0 and *ret_spec on success, -EINVAL with errs filled on an invalid document,
 * -ENOMEM on allocation failure.
 */
int spec_parse(const char *buf, size_t len, struct cell_spec **ret_spec, struct spec_errors *errs);

void spec_free(struct cell_spec *spec);
static inline void
spec_freep(struct cell_spec **s)
{
	spec_free(*s);
}

/* The normalised document (defaults filled in) as a new JSON object. */
json_t *spec_to_json(const struct cell_spec *spec);

/* Format one error as "path: message" into buf. */
void spec_error_format(const struct spec_error *e, char *buf, size_t size);

const char *spec_network_to_string(enum spec_network n);
const char *spec_secret_delivery_to_string(enum spec_secret_delivery d);

/* "db-password" -> "DB_PASSWORD" (upper-case, '-' and '.' become '_'). size >= strlen+1. */
void spec_secret_env_name(const char *ref, char *buf, size_t size);

/* True if s is a valid spec.id: 1-64 of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool spec_id_is_valid(const char *s);
