// SPDX-License-Identifier: GPL-2.0-or-later
/* warm-exec's snapshot key: equal inputs give equal keys, and each input
 * that must invalidate a snapshot changes the key. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/elf.h"
#include "common/util.h"
#include "key.h"
#include "test-check.h"

static void key(char *const argv[], char *const envp[], const char *exe, char out[33])
{
	if (we_key_compute(argv, envp, exe, out) < 0) {
		fprintf(stderr, "we_key_compute failed for %s\n", exe);
		exit(1);
	}
}

static int copy_file(const char *from, const char *to)
{
	char *buf;
	size_t len;
	int fd, r;

	if (read_file(from, &buf, &len) < 0)
		return -1;
	fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	r = fd < 0 ? -1 : write_full(fd, buf, len);
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

int main(void)
{
	char exe[PATH_MAX], tmp[] = "/tmp/we-key-XXXXXX", copy[PATH_MAX + 8];
	char k1[33], k2[33];
	char *argv1[] = { "true", "a", NULL }, *argv2[] = { "true", "b", NULL };
	char *argv3[] = { "true", "a", "", NULL };
	char *env1[] = { "A=1", "B=2", NULL }, *env1r[] = { "B=2", "A=1", NULL };
	char *env2[] = { "A=1", "B=3", NULL };
	char *env3[] = { "A=1", "B=2", "_=/usr/bin/x", "NOTIFY_SOCKET=/run/x", NULL };
	unsigned char id[ELF_BUILD_ID_MAX];
	struct timeval tv[2] = { { 1000000, 0 }, { 1000000, 0 } };

	CHECK(we_resolve_exe("true", exe, sizeof(exe)) == 0, "resolve true via PATH");
	CHECK(exe[0] == '/', "resolved path is absolute: %s", exe);
	CHECK(we_resolve_exe("no-such-program-xyz", copy, sizeof(copy)) < 0, "missing program");
	CHECK(elf_build_id(exe, id, sizeof(id)) > 0, "%s has a build-id", exe);

	key(argv1, env1, exe, k1);
	key(argv1, env1r, exe, k2);
	CHECK(!strcmp(k1, k2), "environment order does not matter");
	key(argv1, env3, exe, k2);
	CHECK(!strcmp(k1, k2), "session variables are ignored");
	key(argv2, env1, exe, k2);
	CHECK(strcmp(k1, k2), "argument changes the key");
	key(argv3, env1, exe, k2);
	CHECK(strcmp(k1, k2), "an extra empty argument changes the key");
	key(argv1, env2, exe, k2);
	CHECK(strcmp(k1, k2), "environment value changes the key");

	CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
	snprintf(copy, sizeof(copy), "%s/true", tmp);
	CHECK(copy_file(exe, copy) == 0, "copy executable");
	key(argv1, env1, copy, k1);
	key(argv1, env1, copy, k2);
	CHECK(!strcmp(k1, k2), "stable for an unchanged executable");
	CHECK(utimes(copy, tv) == 0, "utimes");
	key(argv1, env1, copy, k2);
	CHECK(strcmp(k1, k2), "executable mtime changes the key");
	CHECK(chdir(tmp) == 0, "chdir");
	key(argv1, env1, copy, k1);
	CHECK(strcmp(k1, k2), "working directory changes the key");
	unlink(copy);
	rmdir(tmp);

	if (failures)
		return 1;
	printf("ok\n");
	return 0;
}
