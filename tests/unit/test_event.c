/*
 * test_event.c - CloudEvents envelopes, the JSONL sink and redaction (DESIGN.md §6).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* cmocka needs setjmp.h, stdarg.h, stddef.h and stdint.h first. */
#include <cmocka.h>

#include "event/event.h"
#include "event/redact.h"
#include "event/sink.h"
#include "unit.h"

#define assert_matches(str, re)                                                                    \
	do {                                                                                       \
		const char *_s = (str);                                                            \
		if (!matches(_s, (re)))                                                            \
			fail_msg("\"%s\" does not match /%s/", _s ? _s : "(null)", (re));          \
	} while (0)

static bool
matches(const char *s, const char *re)
{
	regex_t r;
	if (!s)
		return false;
	assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
	bool ok = regexec(&r, s, 0, NULL, 0) == 0;
	regfree(&r);
	return ok;
}

static const char *
get_str(json_t *ev, const char *key)
{
	json_t *v = json_object_get(ev, key);
	if (!json_is_string(v))
		fail_msg("event has no string \"%s\"", key);
	return json_string_value(v);
}

static char *
read_all(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	char *buf = NULL;
	size_t cap = 0, len = 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		size_t n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	buf[len] = '\0';
	if (ret_len)
		*ret_len = len;
	return buf;
}

static size_t
count_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* --- envelope --- */

static void
test_source(void **state)
{
	char host[256] = "";
	event_init_source();
	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	char want[300];
	snprintf(want, sizeof(want), "/cellvisor/%s", host);
	assert_string_equal(event_source(), want);
}

static void
test_envelope(void **state)
{
	event_init_source();
	json_t *data = json_pack("{s:s, s:i}", "cellId", "build-42", "exitCode", 0);
	json_t *ev = event_new(EV_CELL_COMPLETED, "build-42", data);
	assert_non_null(ev);

	assert_string_equal(get_str(ev, "specversion"), "1.0");
	assert_matches(get_str(ev, "id"),
	    "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
	assert_matches(get_str(ev, "source"), "^/cellvisor/.+");
	assert_string_equal(get_str(ev, "source"), event_source());
	assert_string_equal(get_str(ev, "type"), "dev.cellos.events.cell.command.v1.completed");
	assert_string_equal(get_str(ev, "subject"), "cell:build-42");
	assert_string_equal(get_str(ev, "datacontenttype"), "application/json");
	const char *t = get_str(ev, "time");
	assert_matches(t, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$");
	/* the data object is the one given (its reference was stolen) */
	assert_ptr_equal(json_object_get(ev, "data"), data);
	assert_ll_equal(json_object_size(ev), 8);

	/* the time is now, in UTC */
	struct tm tm = {0};
	const char *rest = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm);
	assert_non_null(rest);
	time_t when = timegm(&tm), now = time(NULL);
	if (when < now - 5 || when > now + 5)
		fail_msg("event time %s is %lld s away from now", t, (long long)(when - now));
	json_decref(ev);
}

static void
test_ids_unique(void **state)
{
	json_t *a = event_new(EV_CELL_STARTED, "c", json_object());
	json_t *b = event_new(EV_CELL_STARTED, "c", json_object());
	assert_non_null(a);
	assert_non_null(b);
	const char *ia = get_str(a, "id"), *ib = get_str(b, "id");
	if (strcmp(ia, ib) == 0)
		fail_msg("two events share id %s", ia);
	json_decref(a);
	json_decref(b);
}

static void
test_event_new_null_data(void **state)
{
	assert_null(event_new(EV_CELL_STARTED, "c", NULL));
}

/* --- sinks --- */

static void
test_jsonl_append(void **state)
{
	char *p = path_in(state, "events.jsonl");
	struct event_bus bus = {0};
	struct sink *s = NULL;

	assert_ll_equal(sink_jsonl_open(p, &s, NULL, 0), 0);
	assert_string_equal(sink_name(s), p);
	assert_ll_equal(event_bus_add(&bus, s), 0);
	assert_ll_equal(event_bus_emit(&bus, event_new(EV_CELL_STARTED, "a", json_object())), 0);
	assert_ll_equal(event_bus_emit(&bus,
	                    event_new(EV_CELL_COMPLETED, "a",
	                        json_pack("{s:s}", "text", "line1\nline2"))),
	    0);
	assert_ll_equal(event_bus_close(&bus), 0);
	assert_ll_equal(bus.failures, 0);

	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_ll_equal(st.st_mode & 07777, 0600);

	/* a second open appends instead of truncating */
	assert_ll_equal(sink_jsonl_open(p, &s, NULL, 0), 0);
	assert_ll_equal(event_bus_add(&bus, s), 0);
	assert_ll_equal(event_bus_emit(&bus, event_new(EV_CELL_DESTROYED, "a", json_object())), 0);
	assert_ll_equal(event_bus_close(&bus), 0);

	size_t len;
	char *text = read_all(p, &len);
	assert_ll_equal(count_lines(text), 3);
	assert_true(len > 0 && text[len - 1] == '\n');
	static const char *const types[] = {EV_CELL_STARTED, EV_CELL_COMPLETED, EV_CELL_DESTROYED};
	char *save = NULL, *line = strtok_r(text, "\n", &save);
	for (size_t i = 0; i < 3; i++, line = strtok_r(NULL, "\n", &save)) {
		assert_non_null(line);
		json_error_t e;
		json_t *ev = json_loads(line, 0, &e);
		if (!ev)
			fail_msg("line %zu is not JSON: %s (%s)", i + 1, line, e.text);
		assert_string_equal(get_str(ev, "type"), types[i]);
		assert_string_equal(get_str(ev, "specversion"), "1.0");
		if (i == 1)
			assert_string_equal(json_string_value(
			                        json_object_get(json_object_get(ev, "data"),
			                            "text")),
			    "line1\nline2");
		json_decref(ev);
	}
	assert_null(line);
	free(text);
	free(p);
}

static void
test_jsonl_refuses_symlink(void **state)
{
	char *target = path_in(state, "target");
	char *link = path_in(state, "link.jsonl");
	FILE *f = fopen(target, "w");
	assert_non_null(f);
	fputs("untouched\n", f);
	fclose(f);
	assert_int_equal(symlink(target, link), 0);

	struct sink *s = (struct sink *)0x1;
	assert_ll_equal(sink_jsonl_open(link, &s, NULL, 0), -ELOOP);
	assert_ptr_equal(s, (struct sink *)0x1); /* ret_* is written only on success */
	char *text = read_all(target, NULL);
	assert_string_equal(text, "untouched\n");
	free(text);

	/* a dangling symlink is not followed to create its target either */
	char *dangling = path_in(state, "dangling.jsonl");
	char *nowhere = path_in(state, "nowhere");
	assert_int_equal(symlink(nowhere, dangling), 0);
	assert_ll_equal(sink_jsonl_open(dangling, &s, NULL, 0), -ELOOP);
	assert_int_equal(access(nowhere, F_OK), -1);

	free(target);
	free(link);
	free(dangling);
	free(nowhere);
}

static void
test_jsonl_open_errors(void **state)
{
	struct sink *s;
	char *p = path_in(state, "missing-dir/events.jsonl");
	assert_ll_equal(sink_jsonl_open(p, &s, NULL, 0), -ENOENT);
	free(p);
}

static void
test_fd_and_noop_sinks(void **state)
{
	int fds[2];
	struct sink *s;
	char buf[64] = "";

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	assert_ll_equal(sink_fd_new(fds[1], "stdout", &s), 0);
	assert_string_equal(sink_name(s), "stdout");
	assert_ll_equal(sink_write(s, "{\"a\":1}", 7), 0);
	assert_ll_equal(sink_write(s, "{}xx", 2), 0); /* only len bytes */
	assert_ll_equal(sink_close(s), 0);
	/* the fd stays the caller's */
	assert_int_equal(fcntl(fds[1], F_GETFD) >= 0, 1);
	close(fds[1]);
	ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
	assert_ll_equal(n, 11);
	assert_string_equal(buf, "{\"a\":1}\n{}\n");
	close(fds[0]);

	assert_ll_equal(sink_noop_new(&s), 0);
	assert_string_equal(sink_name(s), "noop");
	assert_ll_equal(sink_write(s, "x", 1), 0);
	assert_ll_equal(sink_close(s), 0);
	assert_ll_equal(sink_close(NULL), 0);
}

static void
test_bus_write_error(void **state)
{
	int fds[2];
	struct event_bus bus = {0};
	struct sink *bad, *noop;

	/* a sink on the read end of a pipe fails; the others still get the event */
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	assert_ll_equal(sink_fd_new(fds[0], "broken", &bad), 0);
	assert_ll_equal(sink_noop_new(&noop), 0);
	assert_ll_equal(event_bus_add(&bus, bad), 0);
	assert_ll_equal(event_bus_add(&bus, noop), 0);
	assert_ll_equal(event_bus_emit(&bus, event_new(EV_CELL_STARTED, "a", json_object())),
	    -EBADF);
	assert_ll_equal(bus.failures, 1);
	assert_ll_equal(event_bus_emit(&bus, NULL), -ENOMEM);
	assert_ll_equal(event_bus_close(&bus), 0);
	assert_ll_equal(bus.n, 0);
	close(fds[0]);
	close(fds[1]);
}

static void
test_bus_limits(void **state)
{
	struct event_bus bus = {0};
	struct sink *s;

	for (int i = 0; i < EVENT_BUS_MAX_SINKS; i++) {
		assert_ll_equal(sink_noop_new(&s), 0);
		assert_ll_equal(event_bus_add(&bus, s), 0);
	}
	assert_ll_equal(sink_noop_new(&s), 0);
	assert_ll_equal(event_bus_add(&bus, s), -E2BIG); /* and the bus closed it */
	assert_ll_equal(bus.n, EVENT_BUS_MAX_SINKS);
	assert_ll_equal(event_bus_close(&bus), 0);

	/* an event over EVENT_MAX_BYTES is refused whole, not cut */
	char *p = path_in(state, "big.jsonl");
	assert_ll_equal(sink_jsonl_open(p, &s, NULL, 0), 0);
	assert_ll_equal(event_bus_add(&bus, s), 0);
	char *big = malloc(EVENT_MAX_BYTES + 1);
	memset(big, 'x', EVENT_MAX_BYTES);
	big[EVENT_MAX_BYTES] = '\0';
	assert_ll_equal(event_bus_emit(&bus,
	                    event_new(EV_CELL_STARTED, "a", json_pack("{s:s}", "blob", big))),
	    -E2BIG);
	assert_ll_equal(bus.failures, 1);
	/* one just under the limit goes through */
	big[EVENT_MAX_BYTES - 1024] = '\0';
	assert_ll_equal(event_bus_emit(&bus,
	                    event_new(EV_CELL_STARTED, "a", json_pack("{s:s}", "blob", big))),
	    0);
	assert_ll_equal(event_bus_close(&bus), 0);
	size_t len;
	char *text = read_all(p, &len);
	assert_ll_equal(count_lines(text), 1);
	assert_true(len > EVENT_MAX_BYTES - 1024 && len <= EVENT_MAX_BYTES + 1);
	free(text);
	free(big);
	free(p);
}

/* --- redaction --- */

static void
test_redact_json_nested(void **state)
{
	const char *values[] = {"hunter2", "s3cr\"et\nline"};
	const size_t lengths[] = {7, strlen(values[1])};
	struct redactor r = {values, lengths, 2};

	json_t *j = json_pack("{s:s, s:{s:[s, i, s], s:s}, s:s}", "a", "pw=hunter2;", "b", "list",
	    "hunter2", 1, "no secret here", "key-hunter2", "v", "c",
	    "x s3cr\"et\nline y hunter2hunter2");
	assert_non_null(j);
	int n = redact_json(&r, j);
	char *got = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(got,
	    "{\"a\":\"pw=[REDACTED];\",\"b\":{\"key-[REDACTED]\":\"v\",\"list\":"
	    "[\"[REDACTED]\",1,\"no secret here\"]},\"c\":\"x [REDACTED] y "
	    "[REDACTED][REDACTED]\"}");
	assert_ll_equal(n, 4);
	free(got);
	json_decref(j);
}

/* A secret that contains a shorter one is redacted whole, whichever order they come in. */
static void
test_redact_longest_first(void **state)
{
	const char *values[] = {"s3cr3t-Value", "s3cr3t-Value-7f1c9a2e"};
	const size_t lengths[] = {strlen(values[0]), strlen(values[1])};
	struct redactor r = {values, lengths, 2};
	char buf[128] = "key=s3cr3t-Value-7f1c9a2e and s3cr3t-Value.";
	redact_text(&r, buf, sizeof(buf));
	assert_string_equal(buf, "key=[REDACTED] and [REDACTED].");
}

/* A message cut by its buffer in the middle of a secret: the cut-off start goes too. */
static void
test_redact_cut_tail(void **state)
{
	const char *values[] = {"s3cr3t-Value-9d41"};
	const size_t lengths[] = {strlen(values[0])};
	struct redactor r = {values, lengths, 1};
	char buf[24];
	snprintf(buf, sizeof(buf), "exec /xxxxxx%s: nope", values[0]); /* cut at 23 chars */
	assert_string_equal(buf, "exec /xxxxxxs3cr3t-Valu");
	redact_text(&r, buf, sizeof(buf));
	assert_null(strstr(buf, "s3cr"));
	assert_string_equal(buf, "exec /xxxxxx[REDACTED]");
	/* Not full: an ending that merely looks like a secret's start is left alone. */
	char ok[64] = "the end: s3cr";
	redact_text(&r, ok, sizeof(ok));
	assert_string_equal(ok, "the end: s3cr");
}

/* A renamed key is not visited again: each string is redacted once and counted once. */
static void
test_redact_json_keys_once(void **state)
{
	const char *values[] = {"hunter2"};
	const size_t lengths[] = {7};
	struct redactor r = {values, lengths, 1};

	json_t *j = json_pack("{s:s, s:i, s:s}", "hunter2", "hunter2", "z", 1, "y", "x");
	assert_ll_equal(redact_json(&r, j), 2);
	char *got = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(got, "{\"[REDACTED]\":\"[REDACTED]\",\"y\":\"x\",\"z\":1}");
	free(got);
	json_decref(j);

	/*
	 * A short secret that occurs inside the marker itself ("RED" in "[REDACTED]"): a key
	 * renamed while later keys are still to come must not be redacted a second time.
	 */
	const char *short_values[] = {"RED"};
	const size_t short_lengths[] = {3};
	struct redactor sr = {short_values, short_lengths, 1};
	j = json_pack("{s:s, s:i}", "xREDx", "RED", "z", 1);
	int n = redact_json(&sr, j);
	char text[256];
	got = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	snprintf(text, sizeof(text), "%s", got);
	free(got);
	json_decref(j);
	assert_string_equal(text, "{\"x[REDACTED]x\":\"[REDACTED]\",\"z\":1}");
	assert_ll_equal(n, 2);
}

static void
test_redact_json_nothing(void **state)
{
	const char *values[] = {"hunter2", ""};
	const size_t lengths[] = {7, 0};
	struct redactor r = {values, lengths, 2};
	json_t *j = json_pack("{s:s, s:[s]}", "a", "nothing", "b", "here");

	assert_ll_equal(redact_json(&r, j), 0);
	assert_ll_equal(redact_json(NULL, j), 0);
	struct redactor empty = {NULL, NULL, 0};
	assert_ll_equal(redact_json(&empty, j), 0);
	assert_ll_equal(redact_json(&r, NULL), 0);
	char *got = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(got, "{\"a\":\"nothing\",\"b\":[\"here\"]}");
	free(got);
	json_decref(j);
}

/*
 * A secret with a quote and a newline, in a value, a nested key and an array, written
 * through the bus to a JSONL file: the file holds neither the raw nor the JSON-escaped
 * form of the secret.
 */
static void
test_redact_through_bus(void **state)
{
	static const char secret[] = "p\"a\\ss\nw0rd";
	static const char escaped[] = "p\\\"a\\\\ss\\nw0rd";
	const char *values[] = {secret};
	const size_t lengths[] = {sizeof(secret) - 1};
	struct redactor r = {values, lengths, 1};
	struct event_bus bus = {.redactor = &r};
	struct sink *s;
	char *p = path_in(state, "redacted.jsonl");

	assert_ll_equal(sink_jsonl_open(p, &s, NULL, 0), 0);
	assert_ll_equal(event_bus_add(&bus, s), 0);
	char key[64];
	snprintf(key, sizeof(key), "k:%s", secret);
	json_t *data = json_pack("{s:s, s:{s:s}, s:[s]}", "spawnError",
	    "failed with "
	    "p\"a\\ss\nw0rd",
	    "nested", key, "v", "list", secret);
	assert_ll_equal(event_bus_emit(&bus, event_new(EV_CELL_COMPLETED, "c", data)), 0);
	assert_ll_equal(event_bus_close(&bus), 0);

	char *text = read_all(p, NULL);
	if (strstr(text, secret) || strstr(text, escaped) || strstr(text, "w0rd"))
		fail_msg("secret leaked into %s", text);
	assert_ll_equal(count_lines(text), 1);
	json_t *ev = json_loads(text, 0, NULL);
	assert_non_null(ev);
	json_t *d = json_object_get(ev, "data");
	assert_string_equal(json_string_value(json_object_get(d, "spawnError")),
	    "failed with [REDACTED]");
	assert_string_equal(json_string_value(
	                        json_object_get(json_object_get(d, "nested"), "k:[REDACTED]")),
	    "v");
	assert_string_equal(json_string_value(json_array_get(json_object_get(d, "list"), 0)),
	    "[REDACTED]");
	json_decref(ev);
	free(text);
	free(p);
}

static void
test_redact_text(void **state)
{
	const char *values[] = {"hunter2", "tok"};
	const size_t lengths[] = {7, 3};
	struct redactor r = {values, lengths, 2};
	char buf[128];

	snprintf(buf, sizeof(buf), "login hunter2 failed, tok=tok");
	redact_text(&r, buf, sizeof(buf));
	assert_string_equal(buf, "login [REDACTED] failed, [REDACTED]=[REDACTED]");

	snprintf(buf, sizeof(buf), "clean");
	redact_text(&r, buf, sizeof(buf));
	assert_string_equal(buf, "clean");
	redact_text(NULL, buf, sizeof(buf));
	assert_string_equal(buf, "clean");

	/* the result is cut to the buffer, never overflows it, and the secret is gone */
	char small[12];
	snprintf(small, sizeof(small), "hunter2!");
	redact_text(&r, small, sizeof(small));
	assert_string_equal(small, "[REDACTED]!");
	snprintf(small, sizeof(small), "xhunter2xx");
	redact_text(&r, small, sizeof(small));
	assert_string_equal(small, "x[REDACTED]");

	/* a partial secret is left alone, a secret inside a longer word is not */
	snprintf(buf, sizeof(buf), "hunter hunter22");
	redact_text(&r, buf, sizeof(buf));
	assert_string_equal(buf, "hunter [REDACTED]2");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_source),
	    cmocka_unit_test(test_envelope),
	    cmocka_unit_test(test_ids_unique),
	    cmocka_unit_test(test_event_new_null_data),
	    cmocka_unit_test_setup_teardown(test_jsonl_append, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_jsonl_refuses_symlink, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_jsonl_open_errors, setup_dir, teardown_dir),
	    cmocka_unit_test(test_fd_and_noop_sinks),
	    cmocka_unit_test(test_bus_write_error),
	    cmocka_unit_test_setup_teardown(test_bus_limits, setup_dir, teardown_dir),
	    cmocka_unit_test(test_redact_json_nested),
	    cmocka_unit_test(test_redact_longest_first),
	    cmocka_unit_test(test_redact_cut_tail),
	    cmocka_unit_test(test_redact_json_keys_once),
	    cmocka_unit_test(test_redact_json_nothing),
	    cmocka_unit_test_setup_teardown(test_redact_through_bus, setup_dir, teardown_dir),
	    cmocka_unit_test(test_redact_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
