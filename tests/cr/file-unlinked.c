// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * file-unlinked: an unlinked-but-open file across the cut.
 * "$CR_DIR/unl" gets 2 pages of data, a 1 MiB hole, 100 bytes at its end; it is
 * opened as fd A (O_RDWR, offset 1234, cloexec), fd B (O_WRONLY|O_APPEND), mapped
 * MAP_SHARED (first page), then unlinked. After go: A and B are an unlinked file
 * ("... (deleted)", no links) in the same directory (file system) as before,
 * one object (same inode, also the mapping's), with the same size and content
 * (hole included), A at offset 1234 and cloexec, B append-only (a write lands at
 * the end and A reads it), a write through the mapping is read through A.
 *
 * With "big" the file is 65 MiB (sparse): above the default 64 MiB limit, the
 * checkpoint must refuse with one line and leave the process as it was (mode
 * failckpt); the control run (CR_CONTROL=1) keeps it small.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cr.h"

#define PAGE 4096UL
#define TAIL_OFF (2 * PAGE + (1UL << 20))

static unsigned char want[2 * PAGE + 100];	/* data pages, then the tail (published) */

int main(int argc, char **argv)
{
	bool big = argc > 1 && !strcmp(argv[1], "big") && !getenv("CR_CONTROL");
	char path[PATH_MAX], link[PATH_MAX + 32], expect[PATH_MAX + 32];
	unsigned char buf[2 * PAGE], *map;
	struct stat st, dir_st;
	off_t size;
	int a, b;

	cr_init(argc, argv);
	for (size_t i = 0; i < sizeof(want); i++)
		want[i] = (unsigned char)(i * 5 + 17);
	snprintf(path, sizeof(path), "%s/unl", cr_dir());
	a = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	b = open(path, O_WRONLY | O_APPEND);
	if (a < 0 || b < 0)
		cr_fail("%s: %m", path);
	if (pwrite(a, want, 2 * PAGE, 0) != (ssize_t)(2 * PAGE) ||
	    pwrite(a, want + 2 * PAGE, 100, TAIL_OFF) != 100)
		cr_fail("pwrite: %m");
	if (big && ftruncate(a, 65L << 20) < 0)
		cr_fail("ftruncate: %m");
	size = big ? (65L << 20) : (off_t)(TAIL_OFF + 100);
	map = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
	if (map == MAP_FAILED)
		cr_fail("mmap: %m");
	lseek(a, 1234, SEEK_SET);
	if (unlink(path) < 0)
		cr_fail("unlink: %m");
	stat(cr_dir(), &dir_st);

	cr_ready_tamper(want, sizeof(want));
	cr_wait();

	{
		char self[64];
		ssize_t n;

		snprintf(self, sizeof(self), "/proc/self/fd/%d", a);
		n = readlink(self, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = 0;
	}
	snprintf(expect, sizeof(expect), "%s (deleted)", path);
	cr_check(!strcmp(link, expect), "fd A is \"%s\", expected \"%s\"", link, expect);
	cr_check(fstat(a, &st) == 0 && st.st_nlink == 0, "fd A has %lu links",
		 (unsigned long)st.st_nlink);
	cr_check(st.st_dev == dir_st.st_dev, "the file is not on the file system of %s", cr_dir());
	cr_check(st.st_size == size, "size %lld, expected %lld", (long long)st.st_size,
		 (long long)size);
	cr_check((st.st_mode & 07777) == 0640, "mode %o", st.st_mode & 07777);
	{
		struct stat sb;
		char mf[128];

		cr_check(fstat(b, &sb) == 0 && sb.st_ino == st.st_ino, "fds A and B differ");
		snprintf(mf, sizeof(mf), "/proc/self/map_files/%lx-%lx", (unsigned long)map,
			 (unsigned long)map + PAGE);
		cr_check(stat(mf, &sb) == 0 && sb.st_ino == st.st_ino,
			 "the mapping is not the file of fd A");
	}
	cr_check(pread(a, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf) &&
		 !memcmp(buf, want, sizeof(buf)), "data pages differ");
	cr_check(pread(a, buf, PAGE, 2 * PAGE + 4096) == (ssize_t)PAGE &&
		 buf[0] == 0 && !memcmp(buf, buf + 1, PAGE - 1), "the hole is not zero");
	cr_check(pread(a, buf, 100, TAIL_OFF) == 100 && !memcmp(buf, want + 2 * PAGE, 100),
		 "tail differs");
	cr_check(lseek(a, 0, SEEK_CUR) == 1234, "fd A at %lld, expected 1234",
		 (long long)lseek(a, 0, SEEK_CUR));
	{
		/* The hole is a hole again, not zeros written out (moves A's offset). */
		off_t d = lseek(a, 2 * PAGE, SEEK_DATA);

		cr_check(d >= (off_t)(2 * PAGE + PAGE), "the hole was filled (data at %lld)",
			 (long long)d);
	}
	cr_check(fcntl(a, F_GETFD) == FD_CLOEXEC && fcntl(b, F_GETFD) == 0, "cloexec %d %d",
		 fcntl(a, F_GETFD), fcntl(b, F_GETFD));
	cr_check((fcntl(a, F_GETFL) & (O_ACCMODE | O_APPEND)) == O_RDWR, "fd A flags %#x",
		 fcntl(a, F_GETFL));
	cr_check((fcntl(b, F_GETFL) & (O_ACCMODE | O_APPEND)) == (O_WRONLY | O_APPEND),
		 "fd B flags %#x", fcntl(b, F_GETFL));
	cr_check(write(b, "end", 3) == 3 && pread(a, buf, 3, size) == 3 && !memcmp(buf, "end", 3),
		 "an append through B is not at the end");
	map[10] = 0x99;
	cr_check(pread(a, buf, 1, 10) == 1 && buf[0] == 0x99,
		 "a write through the mapping is not read through A");
	cr_check(access(path, F_OK) != 0, "%s exists again", path);
	cr_check_ids();
	cr_finish();
}
