// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Corpus replay: feeds every file of the fuzz corpora through the same
 * entry points as the libFuzzer targets, in the normal build (with the
 * sanitizers of a developer build, crashes show here too).
 *
 *   fuzz-replay CORPUS_ROOT     (files in CORPUS_ROOT/manifest/ and CORPUS_ROOT/index/)
 *
 * File names state what the parser must answer:
 *   ok-*    must be accepted (the entry point returns 0),
 *   bad-*   must be refused (it returns a negative errno),
 *   other   (fuzzer finds, "any-*") must only not crash.
 * Every file also goes through the other parser, and through both with
 * its checksums fixed up as the fuzz targets do; none of that may crash.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "fuzz-api.h"
#include "fuzz-fixup.h"
#include "fuzz-wire.h"

static int failures, files;

static void replay_dir(const char *root, const char *sub,
		       int (*fn)(const uint8_t *, size_t), int (*other)(const uint8_t *, size_t))
{
	char path[4096];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", root, sub);
	d = opendir(path);
	if (!d) {
		fprintf(stderr, "FAIL: %s: %s\n", path, strerror(errno));
		failures++;
		return;
	}
	while ((de = readdir(d))) {
		char file[4096 + 256];
		char *buf;
		size_t len;
		int r;

		if (de->d_name[0] == '.')
			continue;
		snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
		if (read_file(file, &buf, &len) < 0) {
			fprintf(stderr, "FAIL: cannot read %s\n", file);
			failures++;
			continue;
		}
		files++;
		r = fn((const uint8_t *)buf, len);
		if (strncmp(de->d_name, "ok-", 3) == 0 && r != 0) {
			fprintf(stderr, "FAIL: %s: refused (%d), must be accepted\n", file, r);
			failures++;
		} else if (strncmp(de->d_name, "bad-", 4) == 0 && r >= 0) {
			fprintf(stderr, "FAIL: %s: accepted (%d), must be refused\n", file, r);
			failures++;
		} else if (r > 0) {
			fprintf(stderr, "FAIL: %s: returned %d (not 0 or -errno)\n", file, r);
			failures++;
		}
		other((const uint8_t *)buf, len);
		for (int k = 0; k < 2; k++) {
			uint8_t *fixed = k ? fuzz_fix_index((uint8_t *)buf, len)
					   : fuzz_fix_manifest((uint8_t *)buf, len);

			if (fixed) {
				wc_fuzz_manifest(fixed, len);
				wc_fuzz_index(fixed, len);
				free(fixed);
			}
		}
		free(buf);
	}
	closedir(d);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fuzz-replay CORPUS_ROOT\n");
		return 2;
	}
	replay_dir(argv[1], "manifest", wc_fuzz_manifest, wc_fuzz_index);
	replay_dir(argv[1], "index", wc_fuzz_index, wc_fuzz_manifest);
	replay_dir(argv[1], "rf-wire", rf_fuzz_wire, wc_fuzz_manifest);
	printf("%d corpus files replayed, %d failures\n", files, failures);
	if (files < 10) {
		fprintf(stderr, "FAIL: only %d corpus files found under %s\n", files, argv[1]);
		return 1;
	}
	return failures ? 1 : 0;
}
