// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * stdio: a regular-file standard output. The program makes "$CR_DIR/out" its
 * stdout (O_WRONLY|O_CREAT|O_TRUNC, not append) and writes "before\n". After go
 * (restore without --inherit-stdio): fd 1 is that same file again, open for
 * writing at offset 7, and a write lands after "before\n". Its stderr stays the
 * harness's (a pipe or a terminal): it must still work for the verdict.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cr.h"

int main(int argc, char **argv)
{
	char path[PATH_MAX], link[PATH_MAX], buf[64] = "";
	struct stat st_before, st_after;
	ssize_t n;
	int fd;

	cr_init(argc, argv);
	snprintf(path, sizeof(path), "%s/out", cr_dir());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || dup2(fd, 1) < 0)
		cr_fail("%s: %m", path);
	close(fd);
	if (write(1, "before\n", 7) != 7)
		cr_fail("write: %m");
	fstat(1, &st_before);
	cr_ready_tamper(path, strlen(path));
	cr_wait();

	n = readlink("/proc/self/fd/1", link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	cr_check(!strcmp(link, path), "stdout is \"%s\", expected \"%s\"", link, path);
	cr_check(fstat(1, &st_after) == 0 && st_after.st_ino == st_before.st_ino &&
		 st_after.st_dev == st_before.st_dev, "stdout is not the same file");
	cr_check(lseek(1, 0, SEEK_CUR) == 7, "stdout offset %lld, expected 7",
		 (long long)lseek(1, 0, SEEK_CUR));
	cr_check((fcntl(1, F_GETFL) & (O_ACCMODE | O_APPEND)) == O_WRONLY, "stdout flags %#x",
		 fcntl(1, F_GETFL));
	cr_check(write(1, "after\n", 6) == 6, "write to stdout after go: %m");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = 0;
		close(fd);
	}
	cr_check(!strcmp(buf, "before\nafter\n"), "file holds \"%s\"", buf);
	cr_check_ids();
	cr_finish();
}
