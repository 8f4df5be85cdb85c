/*
 * fuzz_spec.c - libFuzzer harness for the spec parser.
 *
 * Built with -fsanitize=fuzzer it is a libFuzzer target (make fuzz). Built with
 * -DFUZZ_REPLAY_MAIN it is a plain program that feeds every file named on the command line
 * (or every file in the directories named) through the same entry point: make check replays
 * the corpus this way under ASan + UBSan.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fd.h"
#include "spec/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spec_errors errs;
	struct cell_spec *spec = NULL;

	if (spec_parse((const char *)data, size, &spec, &errs) == 0) {
		/* A valid spec must survive normalisation and parse again to the same thing. */
		json_t *j = spec_to_json(spec);
		char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
		struct cell_spec *again = NULL;
		if (out && spec_parse(out, strlen(out), &again, &errs) != 0)
			abort();
		spec_free(again);
		free(out);
		json_decref(j);
		spec_free(spec);
	}
	return 0;
}

#ifdef FUZZ_REPLAY_MAIN
static int
replay_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	size_t len = 0;
	if (fd < 0)
		return -errno;
	int r = fd_read_bounded(fd, 4 * SPEC_MAX_BYTES, &buf, &len);
	close(fd);
	if (r < 0)
		return r;
	LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
	free(buf);
	return 0;
}

int
main(int argc, char **argv)
{
	size_t n = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "fuzz_spec: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (replay_file(argv[i]) == 0)
				n++;
			continue;
		}
		DIR *d = opendir(argv[i]);
		if (!d)
			return 1;
		struct dirent *de;
		while ((de = readdir(d))) {
			char p[4096];
			if (de->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", argv[i], de->d_name);
			if (replay_file(p) == 0)
				n++;
		}
		closedir(d);
	}
	printf("fuzz_spec: replayed %zu inputs\n", n);
	return 0;
}
#endif
