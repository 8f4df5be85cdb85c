#include "spec/spec.h"

#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/macro.h"

struct vctx {
	struct spec_errors *errs;
	struct cell_spec *spec;
	bool oom;
};

static void _printf_(3, 4) verr(struct vctx *c, const char *path, const char *fmt, ...)
{
	struct spec_errors *errs = c->errs;
	va_list ap;

	if (errs->n >= SPEC_MAX_ERRORS) {
		errs->truncated = true;
		return;
	}
	struct spec_error *e = &errs->e[errs->n++];
	snprintf(e->path, sizeof(e->path), "%s", path);
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

void
spec_error_format(const struct spec_error *e, char *buf, size_t size)
{
	snprintf(buf, size, "%s: %s", e->path, e->message);
}

static void
subpath(char *buf, size_t size, const char *parent, const char *key)
{
	snprintf(buf, size, "%s.%s", parent, key);
}

static void
subpath_index(char *buf, size_t size, const char *parent, size_t i)
{
	snprintf(buf, size, "%s[%zu]", parent, i);
}

/* Object keys are printed in paths; keep them printable and short. */
static void
sanitize_key(const char *key, char *buf, size_t size)
{
	size_t j = 0;
	for (size_t i = 0; key[i] && j + 1 < size && i < 64; i++) {
		unsigned char ch = (unsigned char)key[i];
		buf[j++] = (isalnum(ch) || ch == '_' || ch == '-' || ch == '.') ? (char)ch : '?';
	}
	buf[j] = '\0';
}

/* Report every key of obj that is not in allowed[]. */
static void
check_fields(struct vctx *c, json_t *obj, const char *path, const char *const *allowed)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v)
	{
		bool ok = false;
		for (size_t i = 0; allowed[i]; i++)
			if (strcmp(key, allowed[i]) == 0) {
				ok = true;
				break;
			}
		if (!ok) {
			char k[80], p[256];
			sanitize_key(key, k, sizeof(k));
			subpath(p, sizeof(p), path, k);
			verr(c, p, "unknown field");
		}
	}
}

static bool
has_nul(json_t *s)
{
	return strlen(json_string_value(s)) != json_string_length(s);
}

/* A string field; NULL (with an error recorded) when it is not a valid string. */
static const char *
get_string(struct vctx *c, json_t *v, const char *path, size_t max_len, bool allow_empty)
{
	if (!json_is_string(v)) {
		verr(c, path, "must be a string");
		return NULL;
	}
	if (has_nul(v)) {
		verr(c, path, "must not contain NUL bytes");
		return NULL;
	}
	size_t len = json_string_length(v);
	if (!allow_empty && len == 0) {
		verr(c, path, "must not be empty");
		return NULL;
	}
	if (len > max_len) {
		verr(c, path, "must be at most %zu bytes", max_len);
		return NULL;
	}
	return json_string_value(v);
}

static char *
dup_or_oom(struct vctx *c, const char *s)
{
	char *d = strdup(s);
	if (!d)
		c->oom = true;
	return d;
}

/* An integer in [min, max]. Returns false (error recorded) otherwise. */
static bool
get_uint(struct vctx *c, json_t *v, const char *path, uint64_t min, uint64_t max, uint64_t *ret)
{
	if (!json_is_integer(v)) {
		verr(c, path, "must be an integer");
		return false;
	}
	json_int_t i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < min || (uint64_t)i > max) {
		verr(c, path, "must be an integer from %llu to %llu", (unsigned long long)min,
		    (unsigned long long)max);
		return false;
	}
	*ret = (uint64_t)i;
	return true;
}

static json_t *
get_object(struct vctx *c, json_t *parent, const char *key, const char *path, bool required)
{
	json_t *v = json_object_get(parent, key);
	if (!v) {
		if (required)
			verr(c, path, "required field is missing");
		return NULL;
	}
	if (!json_is_object(v)) {
		verr(c, path, "must be an object");
		return NULL;
	}
	return v;
}

/* 1..max characters of [A-Za-z0-9._-], not starting with '.' or '-': one path segment. */
static bool
segment_is_valid(const char *s, size_t max)
{
	size_t len = strlen(s);
	if (len < 1 || len > max || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!(isascii(ch) && (isalnum(ch) || ch == '.' || ch == '_' || ch == '-')))
			return false;
	}
	return true;
}

bool
spec_id_is_valid(const char *s)
{
	return segment_is_valid(s, SPEC_MAX_ID);
}

static bool
ref_is_valid(const char *s)
{
	return segment_is_valid(s, 128);
}

static bool
env_name_is_valid(const char *s)
{
	if (!s[0] || isdigit((unsigned char)s[0]))
		return false;
	for (size_t i = 0; s[i]; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!(isascii(ch) && (isalnum(ch) || ch == '_')))
			return false;
	}
	return true;
}

/* Absolute, normalised (no "//", no trailing "/", no "." or ".." components). */
static const char *
path_problem(const char *p)
{
	if (p[0] != '/')
		return "must be an absolute path";
	if (strlen(p) > SPEC_MAX_PATH)
		return "is too long";
	if (strcmp(p, "/") == 0)
		return NULL;
	const char *s = p;
	while (*s) {
		/* s points at a '/' */
		const char *comp = s + 1;
		const char *end = strchrnul(comp, '/');
		size_t n = (size_t)(end - comp);
		if (n == 0)
			return "must be normalised (no empty components or trailing '/')";
		if ((n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.'))
			return "must not contain '.' or '..' components";
		s = end;
	}
	return NULL;
}

void
spec_secret_env_name(const char *ref, char *buf, size_t size)
{
	size_t i;
	for (i = 0; ref[i] && i + 1 < size; i++) {
		char ch = ref[i];
		buf[i] = (ch == '-' || ch == '.') ? '_' : (char)toupper((unsigned char)ch);
	}
	buf[i] = '\0';
}

/* An array of strings; each checked by check(), which returns a problem or NULL. */
static void
get_strv(struct vctx *c, json_t *v, const char *path, size_t max_items, size_t max_len,
    const char *(*check)(const char *), struct spec_strv *ret)
{
	if (!json_is_array(v)) {
		verr(c, path, "must be an array of strings");
		return;
	}
	size_t n = json_array_size(v);
	if (n > max_items) {
		verr(c, path, "must have at most %zu entries", max_items);
		return;
	}
	ret->v = calloc(n + 1, sizeof(char *));
	if (!ret->v) {
		c->oom = true;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char p[256];
		subpath_index(p, sizeof(p), path, i);
		const char *s = get_string(c, json_array_get(v, i), p, max_len, false);
		if (!s)
			continue;
		const char *problem = check ? check(s) : NULL;
		if (problem) {
			verr(c, p, "%s", problem);
			continue;
		}
		for (size_t j = 0; j < ret->n; j++)
			if (strcmp(ret->v[j], s) == 0) {
				verr(c, p, "duplicate entry");
				s = NULL;
				break;
			}
		if (!s)
			continue;
		ret->v[ret->n] = dup_or_oom(c, s);
		if (ret->v[ret->n])
			ret->n++;
	}
}

static const char *
check_ref(const char *s)
{
	return ref_is_valid(s) ? NULL
	                       : "must be 1-128 characters of [A-Za-z0-9._-], not starting with "
	                         "'.' or '-'";
}

static void
parse_filesystem(struct vctx *c, json_t *fs, const char *path)
{
	static const char *const fields[] = {"readOnly", "readWrite", "tmpfs", NULL};
	struct cell_spec *s = c->spec;
	struct {
		const char *key;
		struct spec_strv *dst;
	} lists[] = {
	    {"readOnly", &s->fs_read_only},
	    {"readWrite", &s->fs_read_write},
	    {"tmpfs", &s->fs_tmpfs},
	};

	check_fields(c, fs, path, fields);
	s->has_filesystem = true;
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
		json_t *v = json_object_get(fs, lists[i].key);
		char p[256];
		if (!v)
			continue;
		subpath(p, sizeof(p), path, lists[i].key);
		get_strv(c, v, p, SPEC_MAX_LIST, SPEC_MAX_PATH, path_problem, lists[i].dst);
	}
}

/*
 * The common start of a list of objects: check it is an array within SPEC_MAX_LIST and
 * allocate room for its entries. Returns the entry count, or -1 (error recorded).
 */
static ssize_t
alloc_object_list(struct vctx *c, json_t *v, const char *path, size_t elem_size, void **ret)
{
	if (!json_is_array(v)) {
		verr(c, path, "must be an array of objects");
		return -1;
	}
	size_t n = json_array_size(v);
	if (n > SPEC_MAX_LIST) {
		verr(c, path, "must have at most %d entries", SPEC_MAX_LIST);
		return -1;
	}
	*ret = calloc(n ? n : 1, elem_size);
	if (!*ret) {
		c->oom = true;
		return -1;
	}
	return (ssize_t)n;
}

/* Entry i of a list of objects, or NULL (error recorded) when it is not an object. */
static json_t *
list_object(struct vctx *c, json_t *v, size_t i, const char *path, char *p, size_t p_size)
{
	json_t *o = json_array_get(v, i);
	subpath_index(p, p_size, path, i);
	if (!json_is_object(o)) {
		verr(c, p, "must be an object");
		return NULL;
	}
	return o;
}

static void
parse_egress(struct vctx *c, json_t *v, const char *path)
{
	static const char *const fields[] = {"host", "port", "protocol", NULL};
	struct cell_spec *s = c->spec;

	ssize_t n =
	    alloc_object_list(c, v, path, sizeof(*s->egress_rules), (void **)&s->egress_rules);
	for (ssize_t i = 0; i < n; i++) {
		char p[256], q[256];
		json_t *r = list_object(c, v, (size_t)i, path, p, sizeof(p));
		if (!r)
			continue;
		check_fields(c, r, p, fields);
		struct spec_egress_rule *rule = &s->egress_rules[s->n_egress_rules++];
		subpath(q, sizeof(q), p, "host");
		json_t *h = json_object_get(r, "host");
		if (!h)
			verr(c, q, "required field is missing");
		else {
			const char *host = get_string(c, h, q, 253, false);
			if (host)
				rule->host = dup_or_oom(c, host);
		}
		subpath(q, sizeof(q), p, "port");
		json_t *port = json_object_get(r, "port");
		uint64_t pv;
		if (!port)
			verr(c, q, "required field is missing");
		else if (get_uint(c, port, q, 1, 65535, &pv))
			rule->port = (uint16_t)pv;
		json_t *proto = json_object_get(r, "protocol");
		if (proto) {
			subpath(q, sizeof(q), p, "protocol");
			const char *ps = get_string(c, proto, q, 8, false);
			if (ps && strcmp(ps, "tcp") != 0 && strcmp(ps, "udp") != 0)
				verr(c, q, "must be \"tcp\" or \"udp\"");
			else if (ps)
				rule->protocol = dup_or_oom(c, ps);
		}
	}
}

static void
parse_authority(struct vctx *c, json_t *a, const char *path)
{
	static const char *const fields[] = {"secretRefs", "egressRules", "network", "filesystem",
	    NULL};
	struct cell_spec *s = c->spec;
	char p[256];
	json_t *v;

	check_fields(c, a, path, fields);
	if ((v = json_object_get(a, "secretRefs"))) {
		subpath(p, sizeof(p), path, "secretRefs");
		get_strv(c, v, p, SPEC_MAX_LIST, 128, check_ref, &s->secret_refs);
		/* Two refs must not deliver into the same variable ("a-b" and "a.b"); positions
		 * are the document's, so skip entries that were rejected above. */
		for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) {
			json_t *si = json_array_get(v, i);
			if (!json_is_string(si) || !ref_is_valid(json_string_value(si)))
				continue;
			for (size_t j = 0; j < i; j++) {
				json_t *sj = json_array_get(v, j);
				char a1[160], a2[160], q[256];
				if (!json_is_string(sj) || !ref_is_valid(json_string_value(sj)))
					continue;
				spec_secret_env_name(json_string_value(si), a1, sizeof(a1));
				spec_secret_env_name(json_string_value(sj), a2, sizeof(a2));
				if (strcmp(a1, a2) == 0 &&
				    strcmp(json_string_value(si), json_string_value(sj)) != 0) {
					subpath_index(q, sizeof(q), p, i);
					verr(c, q, "maps to the same variable %s as %s[%zu]", a1, p,
					    j);
					break;
				}
			}
		}
	}
	if ((v = json_object_get(a, "egressRules"))) {
		subpath(p, sizeof(p), path, "egressRules");
		parse_egress(c, v, p);
	}
	if ((v = json_object_get(a, "network"))) {
		subpath(p, sizeof(p), path, "network");
		const char *n = get_string(c, v, p, 16, false);
		if (n) {
			if (strcmp(n, "none") == 0)
				s->network = SPEC_NETWORK_NONE;
			else if (strcmp(n, "loopback") == 0)
				s->network = SPEC_NETWORK_LOOPBACK;
			else if (strcmp(n, "host") == 0)
				s->network = SPEC_NETWORK_HOST;
			else
				verr(c, p, "must be \"none\", \"loopback\" or \"host\"");
		}
	}
	subpath(p, sizeof(p), path, "filesystem");
	if ((v = get_object(c, a, "filesystem", p, false)))
		parse_filesystem(c, v, p);
}

static void
parse_env(struct vctx *c, json_t *v, const char *path)
{
	struct cell_spec *s = c->spec;
	const char *key;
	json_t *val;

	if (!json_is_object(v)) {
		verr(c, path, "must be an object of strings");
		return;
	}
	size_t n = json_object_size(v);
	if (n > SPEC_MAX_ENV) {
		verr(c, path, "must have at most %d entries", SPEC_MAX_ENV);
		return;
	}
	s->env.v = calloc(n ? n : 1, sizeof(struct spec_kv));
	if (!s->env.v) {
		c->oom = true;
		return;
	}
	json_object_foreach(v, key, val)
	{
		char k[80], p[256];
		sanitize_key(key, k, sizeof(k));
		subpath(p, sizeof(p), path, k);
		if (!env_name_is_valid(key) || strlen(key) > 256) {
			verr(c, p, "variable name must match [A-Za-z_][A-Za-z0-9_]* (at most 256)");
			continue;
		}
		const char *sv = get_string(c, val, p, SPEC_MAX_STRING, true);
		if (!sv)
			continue;
		struct spec_kv *kv = &s->env.v[s->env.n];
		kv->key = dup_or_oom(c, key);
		kv->value = dup_or_oom(c, sv);
		s->env.n++;
	}
}

static void
parse_limits(struct vctx *c, json_t *l, const char *path)
{
	static const char *const fields[] = {"memoryMaxBytes", "pidsMax", "cpuMillicores", "nofile",
	    NULL};
	struct cell_spec *s = c->spec;
	/* zero_ok: 0 is "unlimited", an explicit opt-out of the operator's default bound. */
	struct {
		const char *key;
		uint64_t min, max;
		uint64_t *dst;
		bool *declared;
	} items[] = {
	    {"memoryMaxBytes", 1024 * 1024, 1ULL << 50, &s->memory_max_bytes,
	        &s->has_memory_max},
	    {"pidsMax", 1, 4194304, &s->pids_max, &s->has_pids_max},
	    {"cpuMillicores", 1, 1024 * 1000, &s->cpu_millicores, NULL},
	    {"nofile", 3, 1048576, &s->nofile, NULL},
	};

	check_fields(c, l, path, fields);
	for (size_t i = 0; i < ARRAY_SIZE(items); i++) {
		json_t *v = json_object_get(l, items[i].key);
		char p[256];
		if (!v)
			continue;
		subpath(p, sizeof(p), path, items[i].key);
		if (items[i].declared && json_is_integer(v) && json_integer_value(v) == 0) {
			*items[i].dst = 0;
			*items[i].declared = true;
			continue;
		}
		if (!items[i].declared) {
			get_uint(c, v, p, items[i].min, items[i].max, items[i].dst);
			continue;
		}
		if (!json_is_integer(v)) {
			verr(c, p, "must be an integer");
			continue;
		}
		json_int_t n = json_integer_value(v);
		if (n < 0 || (uint64_t)n < items[i].min || (uint64_t)n > items[i].max) {
			verr(c, p, "must be 0 (unlimited) or an integer from %llu to %llu",
			    (unsigned long long)items[i].min, (unsigned long long)items[i].max);
			continue;
		}
		*items[i].dst = (uint64_t)n;
		*items[i].declared = true;
	}
}

/* "uid" or "uid:gid", decimal, each below 2^32-1. */
static void
parse_user(struct vctx *c, json_t *v, const char *path)
{
	struct cell_spec *s = c->spec;
	const char *u = get_string(c, v, path, 24, false);
	unsigned long long uid, gid;
	char *end;

	if (!u)
		return;
	if (!isdigit((unsigned char)u[0]))
		goto bad;
	errno = 0;
	uid = strtoull(u, &end, 10);
	if (errno || uid >= UINT32_MAX)
		goto bad;
	gid = uid;
	if (*end == ':') {
		if (!isdigit((unsigned char)end[1]))
			goto bad;
		gid = strtoull(end + 1, &end, 10);
		if (errno || gid >= UINT32_MAX)
			goto bad;
	}
	if (*end)
		goto bad;
	s->has_user = true;
	s->uid = (uint32_t)uid;
	s->gid = (uint32_t)gid;
	return;
bad:
	verr(c, path, "must be \"UID\" or \"UID:GID\" (decimal numbers)");
}

static void
parse_run(struct vctx *c, json_t *r, const char *path)
{
	static const char *const fields[] = {"argv", "env", "cwd", "timeoutMs", "secretDelivery",
	    "limits", "user", NULL};
	struct cell_spec *s = c->spec;
	char p[256];
	json_t *v;

	check_fields(c, r, path, fields);

	subpath(p, sizeof(p), path, "argv");
	v = json_object_get(r, "argv");
	if (!v || !json_is_array(v) || json_array_size(v) == 0)
		verr(c, p, "must be a non-empty array of strings");
	else {
		/* argv entries may be empty strings, except argv[0]. */
		size_t n = json_array_size(v);
		if (n > SPEC_MAX_ARGV)
			verr(c, p, "must have at most %d entries", SPEC_MAX_ARGV);
		else if (!(s->argv.v = calloc(n + 1, sizeof(char *))))
			c->oom = true;
		else
			for (size_t i = 0; i < n; i++) {
				char q[256];
				subpath_index(q, sizeof(q), p, i);
				const char *a =
				    get_string(c, json_array_get(v, i), q, SPEC_MAX_STRING, i > 0);
				if (!a)
					continue;
				s->argv.v[s->argv.n] = dup_or_oom(c, a);
				if (s->argv.v[s->argv.n])
					s->argv.n++;
			}
	}

	if ((v = json_object_get(r, "env"))) {
		subpath(p, sizeof(p), path, "env");
		parse_env(c, v, p);
	}
	if ((v = json_object_get(r, "cwd"))) {
		subpath(p, sizeof(p), path, "cwd");
		const char *cwd = get_string(c, v, p, SPEC_MAX_PATH, false);
		const char *problem = cwd ? path_problem(cwd) : NULL;
		if (problem)
			verr(c, p, "%s", problem);
		else if (cwd)
			s->cwd = dup_or_oom(c, cwd);
	}
	if ((v = json_object_get(r, "timeoutMs"))) {
		subpath(p, sizeof(p), path, "timeoutMs");
		get_uint(c, v, p, 1, SPEC_MAX_TIMEOUT_MS, &s->timeout_ms);
	}
	if ((v = json_object_get(r, "secretDelivery"))) {
		subpath(p, sizeof(p), path, "secretDelivery");
		const char *d = get_string(c, v, p, 16, false);
		if (d && strcmp(d, "env") == 0)
			s->secret_delivery = SPEC_SECRET_ENV;
		else if (d && strcmp(d, "file") == 0)
			s->secret_delivery = SPEC_SECRET_FILE;
		else if (d)
			verr(c, p, "must be \"env\" or \"file\"");
	}
	subpath(p, sizeof(p), path, "limits");
	if ((v = get_object(c, r, "limits", p, false)))
		parse_limits(c, v, p);
	if ((v = json_object_get(r, "user"))) {
		subpath(p, sizeof(p), path, "user");
		parse_user(c, v, p);
	}
}

static const char *
check_artifact_name(const char *s)
{
	if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strchr(s, '/') || strlen(s) > 255)
		return "must be a file name (no '/', not '.' or '..', at most 255 bytes)";
	return NULL;
}

static void
parse_export(struct vctx *c, json_t *e, const char *path)
{
	static const char *const fields[] = {"artifacts", NULL};
	static const char *const afields[] = {"name", "path", NULL};
	struct cell_spec *s = c->spec;
	char p[256];

	check_fields(c, e, path, fields);
	json_t *v = json_object_get(e, "artifacts");
	if (!v)
		return;
	subpath(p, sizeof(p), path, "artifacts");
	ssize_t n = alloc_object_list(c, v, p, sizeof(*s->artifacts), (void **)&s->artifacts);
	for (ssize_t i = 0; i < n; i++) {
		char q[256], f[256];
		json_t *a = list_object(c, v, (size_t)i, p, q, sizeof(q));
		if (!a)
			continue;
		check_fields(c, a, q, afields);
		struct spec_artifact *art = &s->artifacts[s->n_artifacts++];
		subpath(f, sizeof(f), q, "name");
		json_t *nv = json_object_get(a, "name");
		const char *name = nv ? get_string(c, nv, f, 255, false) : NULL;
		const char *problem = name ? check_artifact_name(name) : NULL;
		if (!nv)
			verr(c, f, "required field is missing");
		else if (problem)
			verr(c, f, "%s", problem);
		else if (name) {
			for (size_t j = 0; j + 1 < s->n_artifacts; j++)
				if (s->artifacts[j].name &&
				    strcmp(s->artifacts[j].name, name) == 0) {
					verr(c, f, "duplicate artifact name");
					name = NULL;
					break;
				}
			if (name)
				art->name = dup_or_oom(c, name);
		}
		subpath(f, sizeof(f), q, "path");
		json_t *pv = json_object_get(a, "path");
		const char *ap = pv ? get_string(c, pv, f, SPEC_MAX_PATH, false) : NULL;
		problem = ap ? path_problem(ap) : NULL;
		if (!pv)
			verr(c, f, "required field is missing");
		else if (problem)
			verr(c, f, "%s", problem);
		else if (ap)
			art->path = dup_or_oom(c, ap);
	}
}

static void
parse_correlation(struct vctx *c, json_t *o, const char *path)
{
	static const char *const fields[] = {"platform", "externalRunId", "externalJobId",
	    "tenantId", "labels", NULL};
	const char *key;
	json_t *v;

	check_fields(c, o, path, fields);
	json_object_foreach(o, key, v)
	{
		char p[256], k[80];
		bool known = false;
		for (size_t i = 0; fields[i]; i++)
			known |= strcmp(key, fields[i]) == 0;
		if (!known || strcmp(key, "labels") == 0)
			continue;
		sanitize_key(key, k, sizeof(k));
		subpath(p, sizeof(p), path, k);
		get_string(c, v, p, 256, true);
	}
	char p[256];
	subpath(p, sizeof(p), path, "labels");
	json_t *labels = get_object(c, o, "labels", p, false);
	if (labels) {
		if (json_object_size(labels) > SPEC_MAX_LIST)
			verr(c, p, "must have at most %d entries", SPEC_MAX_LIST);
		json_object_foreach(labels, key, v)
		{
			char q[256], k[80];
			sanitize_key(key, k, sizeof(k));
			subpath(q, sizeof(q), p, k);
			if (strlen(key) > 256)
				verr(c, q, "label name must be at most 256 bytes");
			get_string(c, v, q, 1024, true);
		}
	}
	c->spec->correlation = json_deep_copy(o);
	if (!c->spec->correlation)
		c->oom = true;
}

static void
parse_spec(struct vctx *c, json_t *sp)
{
	static const char *const fields[] = {"id", "authority", "lifetime", "run", "export",
	    "correlation", NULL};
	struct cell_spec *s = c->spec;
	json_t *v;

	check_fields(c, sp, "spec", fields);

	v = json_object_get(sp, "id");
	if (!v)
		verr(c, "spec.id", "required field is missing");
	else {
		const char *id = get_string(c, v, "spec.id", 1024, true);
		if (id && !spec_id_is_valid(id))
			verr(c, "spec.id",
			    "must be 1-64 characters of [A-Za-z0-9._-], not starting with '.' or "
			    "'-'");
		else if (id)
			s->id = dup_or_oom(c, id);
	}
	if ((v = get_object(c, sp, "authority", "spec.authority", false)))
		parse_authority(c, v, "spec.authority");
	if ((v = get_object(c, sp, "lifetime", "spec.lifetime", false))) {
		static const char *const lf[] = {"ttlSeconds", NULL};
		check_fields(c, v, "spec.lifetime", lf);
		json_t *t = json_object_get(v, "ttlSeconds");
		if (!t)
			verr(c, "spec.lifetime.ttlSeconds", "required field is missing");
		else
			get_uint(c, t, "spec.lifetime.ttlSeconds", 1, SPEC_MAX_TTL_S,
			    &s->ttl_seconds);
	}
	if ((v = get_object(c, sp, "run", "spec.run", true)))
		parse_run(c, v, "spec.run");
	/* A variable name cannot start with a digit: such a ref needs file delivery. */
	if (s->secret_delivery == SPEC_SECRET_ENV)
		for (size_t i = 0; i < s->secret_refs.n; i++)
			if (isdigit((unsigned char)s->secret_refs.v[i][0]))
				verr(c, "spec.authority.secretRefs",
				    "'%s' starts with a digit and cannot name a variable; use "
				    "spec.run.secretDelivery \"file\"",
				    s->secret_refs.v[i]);
	if ((v = get_object(c, sp, "export", "spec.export", false)))
		parse_export(c, v, "spec.export");
	if ((v = get_object(c, sp, "correlation", "spec.correlation", false)))
		parse_correlation(c, v, "spec.correlation");
}

/*
 * Depth and raw-NUL check before jansson builds the tree, so a hostile document is
 * rejected with a position before any recursion. Strings are skipped with their escapes.
 */
static bool
prescan(const char *buf, size_t len, struct spec_errors *errs)
{
	size_t depth = 0, line = 1, col = 0;
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		char ch = buf[i];
		col++;
		if (ch == '\0') {
			struct spec_error *e = &errs->e[errs->n++];
			snprintf(e->path, sizeof(e->path), "spec");
			snprintf(e->message, sizeof(e->message),
			    "invalid JSON at line %zu, column %zu: NUL byte in document", line,
			    col);
			return false;
		}
		if (ch == '\n') {
			line++;
			col = 0;
			continue;
		}
		if (in_string) {
			if (ch == '\\')
				i++, col++;
			else if (ch == '"')
				in_string = false;
			continue;
		}
		if (ch == '"')
			in_string = true;
		else if (ch == '[' || ch == '{') {
			if (++depth > SPEC_MAX_DEPTH) {
				struct spec_error *e = &errs->e[errs->n++];
				snprintf(e->path, sizeof(e->path), "spec");
				snprintf(e->message, sizeof(e->message),
				    "invalid JSON at line %zu, column %zu: nesting deeper than %d",
				    line, col, SPEC_MAX_DEPTH);
				return false;
			}
		} else if ((ch == ']' || ch == '}') && depth > 0)
			depth--;
	}
	return true;
}

/*
 * The JSON path ("spec.run.argv", "spec.run.argv[2]") of the member whose key ends just
 * before byte offset end, found by a small scan of the (already depth-checked) document.
 * Used only to name a duplicate key, which jansson reports by position. False when the
 * position is not right after an object key.
 */
static bool
path_at(const char *buf, size_t end, char *ret, size_t size)
{
	struct level {
		bool object;
		bool expect_key;
		size_t index;
		char key[72];
	} st[SPEC_MAX_DEPTH + 1];
	int depth = -1;
	bool last_was_key = false;

	for (size_t i = 0; i < end; i++) {
		char ch = buf[i];
		if (ch == '"') {
			/* Scan the string; keep it when it is a key. */
			size_t j = i + 1, k = 0;
			bool key = depth >= 0 && st[depth].object && st[depth].expect_key;
			while (j < end && buf[j] != '"') {
				if (buf[j] == '\\')
					j++;
				else if (key && k + 1 < sizeof(st[depth].key)) {
					unsigned char c = (unsigned char)buf[j];
					st[depth].key[k++] =
					    (isalnum(c) || c == '_' || c == '-' || c == '.') ? (char)c : '?';
				}
				j++;
			}
			if (key) {
				st[depth].key[k] = '\0';
				st[depth].expect_key = false;
			}
			last_was_key = key;
			i = j;
			continue;
		}
		if (ch == '{' || ch == '[') {
			if (depth + 1 > SPEC_MAX_DEPTH)
				return false;
			depth++;
			st[depth] = (struct level){.object = ch == '{', .expect_key = ch == '{'};
		} else if (ch == '}' || ch == ']') {
			if (depth >= 0)
				depth--;
		} else if (ch == ',' && depth >= 0) {
			if (st[depth].object)
				st[depth].expect_key = true;
			else
				st[depth].index++;
		}
		if (!isspace((unsigned char)ch))
			last_was_key = false;
	}
	if (depth < 0 || !st[depth].object || !last_was_key)
		return false;
	size_t n = 0;
	ret[0] = '\0';
	for (int d = 0; d <= depth; d++) {
		int w;
		if (st[d].object)
			w = snprintf(ret + n, size - n, "%s%s", n ? "." : "", st[d].key);
		else
			w = snprintf(ret + n, size - n, "[%zu]", st[d].index);
		if (w < 0 || (size_t)w >= size - n)
			return false;
		n += (size_t)w;
	}
	return true;
}

int
spec_parse(const char *buf, size_t len, struct cell_spec **ret_spec, struct spec_errors *errs)
{
	struct cell_spec *spec = NULL;
	json_error_t jerr;
	json_t *root;

	memset(errs, 0, sizeof(*errs));
	if (len > SPEC_MAX_BYTES) {
		struct spec_error *e = &errs->e[errs->n++];
		snprintf(e->path, sizeof(e->path), "spec");
		snprintf(e->message, sizeof(e->message), "document is larger than %d bytes",
		    SPEC_MAX_BYTES);
		return -EINVAL;
	}
	if (!prescan(buf, len, errs))
		return -EINVAL;

	root =
	    json_loadb(buf, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!root) {
		struct spec_error *e = &errs->e[errs->n++];
		/* A duplicate key is valid JSON but not a valid document: name it by its path. */
		if (strncmp(jerr.text, "duplicate object key", 20) == 0 && jerr.position > 0 &&
		    path_at(buf, (size_t)jerr.position, e->path, sizeof(e->path))) {
			snprintf(e->message, sizeof(e->message),
			    "duplicate key (line %d, column %d)", jerr.line, jerr.column);
			return -EINVAL;
		}
		snprintf(e->path, sizeof(e->path), "spec");
		snprintf(e->message, sizeof(e->message), "invalid JSON at line %d, column %d: %s",
		    jerr.line, jerr.column, jerr.text);
		return -EINVAL;
	}

	spec = calloc(1, sizeof(*spec));
	if (!spec) {
		json_decref(root);
		return -ENOMEM;
	}
	struct vctx c = {.errs = errs, .spec = spec};

	if (!json_is_object(root)) {
		verr(&c, "document", "must be a JSON object");
		goto done;
	}
	static const char *const fields[] = {"apiVersion", "kind", "spec", NULL};
	check_fields(&c, root, "document", fields);

	json_t *v = json_object_get(root, "apiVersion");
	const char *av = v ? get_string(&c, v, "apiVersion", 64, false) : NULL;
	if (!v)
		verr(&c, "apiVersion", "required field is missing");
	else if (av && strcmp(av, "cellos.io/v1") != 0 && strcmp(av, "cellvisor.dev/v1") != 0)
		verr(&c, "apiVersion", "must be \"cellos.io/v1\" or \"cellvisor.dev/v1\"");
	else if (av)
		spec->api_version = dup_or_oom(&c, av);

	v = json_object_get(root, "kind");
	const char *kind = v ? get_string(&c, v, "kind", 64, false) : NULL;
	if (!v)
		verr(&c, "kind", "required field is missing");
	else if (kind && strcmp(kind, "ExecutionCell") != 0)
		verr(&c, "kind", "must be \"ExecutionCell\"");

	if ((v = get_object(&c, root, "spec", "spec", true)))
		parse_spec(&c, v);

done:
	json_decref(root);
	if (c.oom) {
		spec_free(spec);
		return -ENOMEM;
	}
	if (errs->n > 0) {
		spec_free(spec);
		return -EINVAL;
	}
	*ret_spec = spec;
	return 0;
}

static void
strv_free(struct spec_strv *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
}

void
spec_free(struct cell_spec *s)
{
	if (!s)
		return;
	free(s->api_version);
	free(s->id);
	strv_free(&s->secret_refs);
	for (size_t i = 0; i < s->n_egress_rules; i++) {
		free(s->egress_rules[i].host);
		free(s->egress_rules[i].protocol);
	}
	free(s->egress_rules);
	strv_free(&s->fs_read_only);
	strv_free(&s->fs_read_write);
	strv_free(&s->fs_tmpfs);
	strv_free(&s->argv);
	for (size_t i = 0; i < s->env.n; i++) {
		free(s->env.v[i].key);
		free(s->env.v[i].value);
	}
	free(s->env.v);
	free(s->cwd);
	for (size_t i = 0; i < s->n_artifacts; i++) {
		free(s->artifacts[i].name);
		free(s->artifacts[i].path);
	}
	free(s->artifacts);
	json_decref(s->correlation);
	free(s);
}

const char *
spec_network_to_string(enum spec_network n)
{
	static const char *const names[_SPEC_NETWORK_MAX] = {
	    [SPEC_NETWORK_UNSET] = "none",
	    [SPEC_NETWORK_NONE] = "none",
	    [SPEC_NETWORK_LOOPBACK] = "loopback",
	    [SPEC_NETWORK_HOST] = "host",
	};
	return n < _SPEC_NETWORK_MAX ? names[n] : "?";
}

const char *
spec_secret_delivery_to_string(enum spec_secret_delivery d)
{
	return d == SPEC_SECRET_FILE ? "file" : "env";
}

static json_t *
strv_to_json(const struct spec_strv *v)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < v->n; i++)
		json_array_append_new(a, json_string(v->v[i]));
	return a;
}

json_t *
spec_to_json(const struct cell_spec *s)
{
	json_t *authority = json_object();
	json_object_set_new(authority, "secretRefs", strv_to_json(&s->secret_refs));
	json_t *egress = json_array();
	for (size_t i = 0; i < s->n_egress_rules; i++) {
		json_t *r = json_pack("{s:s, s:I}", "host", s->egress_rules[i].host, "port",
		    (json_int_t)s->egress_rules[i].port);
		if (r && s->egress_rules[i].protocol)
			json_object_set_new(r, "protocol",
			    json_string(s->egress_rules[i].protocol));
		json_array_append_new(egress, r);
	}
	json_object_set_new(authority, "egressRules", egress);
	if (s->network != SPEC_NETWORK_UNSET)
		json_object_set_new(authority, "network",
		    json_string(spec_network_to_string(s->network)));
	if (s->has_filesystem)
		json_object_set_new(authority, "filesystem",
		    json_pack("{s:o, s:o, s:o}", "readOnly", strv_to_json(&s->fs_read_only),
		        "readWrite", strv_to_json(&s->fs_read_write), "tmpfs",
		        strv_to_json(&s->fs_tmpfs)));

	json_t *run = json_object();
	json_object_set_new(run, "argv", strv_to_json(&s->argv));
	json_t *env = json_object();
	for (size_t i = 0; i < s->env.n; i++)
		json_object_set_new(env, s->env.v[i].key, json_string(s->env.v[i].value));
	json_object_set_new(run, "env", env);
	if (s->cwd)
		json_object_set_new(run, "cwd", json_string(s->cwd));
	if (s->timeout_ms)
		json_object_set_new(run, "timeoutMs", json_integer((json_int_t)s->timeout_ms));
	json_object_set_new(run, "secretDelivery",
	    json_string(spec_secret_delivery_to_string(s->secret_delivery)));
	if (s->has_user) {
		char u[32];
		snprintf(u, sizeof(u), "%u:%u", s->uid, s->gid);
		json_object_set_new(run, "user", json_string(u));
	}
	json_t *limits = json_object();
	if (s->has_memory_max)
		json_object_set_new(limits, "memoryMaxBytes",
		    json_integer((json_int_t)s->memory_max_bytes));
	if (s->has_pids_max)
		json_object_set_new(limits, "pidsMax", json_integer((json_int_t)s->pids_max));
	if (s->cpu_millicores)
		json_object_set_new(limits, "cpuMillicores",
		    json_integer((json_int_t)s->cpu_millicores));
	if (s->nofile)
		json_object_set_new(limits, "nofile", json_integer((json_int_t)s->nofile));
	if (json_object_size(limits))
		json_object_set_new(run, "limits", limits);
	else
		json_decref(limits);

	json_t *spec = json_object();
	json_object_set_new(spec, "id", json_string(s->id));
	json_object_set_new(spec, "authority", authority);
	if (s->ttl_seconds)
		json_object_set_new(spec, "lifetime",
		    json_pack("{s:I}", "ttlSeconds", (json_int_t)s->ttl_seconds));
	json_object_set_new(spec, "run", run);
	if (s->n_artifacts) {
		json_t *arts = json_array();
		for (size_t i = 0; i < s->n_artifacts; i++)
			json_array_append_new(arts,
			    json_pack("{s:s, s:s}", "name", s->artifacts[i].name, "path",
			        s->artifacts[i].path));
		json_object_set_new(spec, "export", json_pack("{s:o}", "artifacts", arts));
	}
	if (s->correlation)
		json_object_set(spec, "correlation", s->correlation);

	return json_pack("{s:s, s:s, s:o}", "apiVersion", s->api_version, "kind", "ExecutionCell",
	    "spec", spec);
}
