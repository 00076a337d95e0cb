// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * file-memfd: memfd descriptors and mappings across the cut.
 *  - memfd "cr-memfd" (MFD_ALLOW_SEALING): 12388 bytes, pages 0 and 2 written,
 *    page 1 a hole; held as fd A, mapped MAP_SHARED (4 pages) and dup'ed (fd B,
 *    same open file description, offset 5000); fd C is a second open of it
 *    (O_RDONLY, its own offset 0). After go: same name, size, content; the
 *    mapping and the fds are ONE object (same inode in map_files, a write through
 *    the mapping is read back through fd A and the other way round); A and B
 *    still share their offset, C does not; A cloexec, B and C not.
 *  - memfd "cr-sealed": 4096 bytes, seals SHRINK|GROW|WRITE, mapped read-only:
 *    F_GET_SEALS gives them back, a write is refused (EPERM), ftruncate too.
 *  - memfd "cr-maponly": mapped MAP_SHARED, its fd closed: content kept, map_files
 *    still names the memfd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cr.h"

#define PAGE 4096UL
#define SIZE 12388

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

static unsigned char want[4 * PAGE];	/* expected content of cr-memfd (published) */

static bool map_file_ino(const void *addr, size_t len, ino_t *ret, char *link, size_t llen)
{
	char path[128];
	struct stat st;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)addr,
		 (unsigned long)addr + len);
	if (stat(path, &st) < 0)
		return false;
	*ret = st.st_ino;
	n = readlink(path, link, llen - 1);
	link[n > 0 ? n : 0] = 0;
	return true;
}

int main(int argc, char **argv)
{
	unsigned char buf[4 * PAGE], *map, *sealed_map, *only;
	char link[256];
	struct stat st;
	ino_t ino;
	int a, b, c, s, o;

	cr_init(argc, argv);
	for (size_t i = 0; i < sizeof(want); i++)
		want[i] = (i / PAGE == 1 || i >= SIZE) ? 0 : (unsigned char)(i * 7 + 3);

	a = memfd_create("cr-memfd", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	if (a < 0 || ftruncate(a, SIZE) < 0)
		cr_fail("memfd: %m");
	if (pwrite(a, want, PAGE, 0) != (ssize_t)PAGE ||
	    pwrite(a, want + 2 * PAGE, SIZE - 2 * PAGE, 2 * PAGE) != (ssize_t)(SIZE - 2 * PAGE))
		cr_fail("pwrite: %m");
	map = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
	if (map == MAP_FAILED)
		cr_fail("mmap: %m");
	b = dup(a);
	lseek(a, 5000, SEEK_SET);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", a);
	c = open(link, O_RDONLY);
	if (b < 0 || c < 0)
		cr_fail("dup/reopen: %m");

	s = memfd_create("cr-sealed", MFD_ALLOW_SEALING);
	if (s < 0 || ftruncate(s, PAGE) < 0 || pwrite(s, "sealed!", 7, 0) != 7)
		cr_fail("sealed memfd: %m");
	if (fcntl(s, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
		cr_fail("F_ADD_SEALS: %m");
	sealed_map = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, s, 0);
	if (sealed_map == MAP_FAILED)
		cr_fail("mmap sealed: %m");

	o = memfd_create("cr-maponly", 0);
	if (o < 0 || ftruncate(o, 2 * PAGE) < 0)
		cr_fail("maponly: %m");
	only = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, o, 0);
	if (only == MAP_FAILED)
		cr_fail("mmap maponly: %m");
	close(o);
	memset(only + PAGE, 0x5a, PAGE);

	cr_ready_tamper(want, sizeof(want));
	cr_wait();

	/* cr-memfd */
	snprintf(link, sizeof(link), "/proc/self/fd/%d", a);
	{
		char l[256];
		ssize_t n = readlink(link, l, sizeof(l) - 1);

		l[n > 0 ? n : 0] = 0;
		cr_check(!strcmp(l, "/memfd:cr-memfd (deleted)"), "fd A is \"%s\"", l);
	}
	cr_check(fstat(a, &st) == 0 && st.st_size == SIZE, "size %lld, expected %d",
		 (long long)st.st_size, SIZE);
	memset(buf, 0xee, sizeof(buf));
	cr_check(pread(a, buf, sizeof(buf), 0) == SIZE, "pread size");
	cr_check(!memcmp(buf, want, SIZE), "memfd content differs (fd)");
	cr_check(!memcmp(map, want, sizeof(want)), "memfd content differs (mapping)");
	cr_check(map_file_ino(map, 4 * PAGE, &ino, link, sizeof(link)) && ino == st.st_ino,
		 "the mapping is not the fd's memfd (map_files \"%s\")", link);
	map[PAGE + 17] = 0x42;
	cr_check(pread(a, buf, 1, PAGE + 17) == 1 && buf[0] == 0x42,
		 "a write through the mapping is not seen through the fd");
	cr_check(pwrite(a, "Z", 1, 3) == 1 && map[3] == 'Z',
		 "a write through the fd is not seen through the mapping");
	cr_check(lseek(b, 0, SEEK_CUR) == 5000, "dup'ed fd at %lld, expected 5000",
		 (long long)lseek(b, 0, SEEK_CUR));
	lseek(a, 6000, SEEK_SET);
	cr_check(lseek(b, 0, SEEK_CUR) == 6000, "dup'ed fd no longer shares the offset");
	cr_check(lseek(c, 0, SEEK_CUR) == 0, "second open at %lld, expected 0",
		 (long long)lseek(c, 0, SEEK_CUR));
	cr_check((fcntl(c, F_GETFL) & O_ACCMODE) == O_RDONLY, "second open is not read-only");
	cr_check(fcntl(a, F_GETFD) == FD_CLOEXEC && fcntl(b, F_GETFD) == 0 &&
		 fcntl(c, F_GETFD) == 0, "cloexec flags %d %d %d", fcntl(a, F_GETFD),
		 fcntl(b, F_GETFD), fcntl(c, F_GETFD));
	cr_check(fcntl(a, F_GET_SEALS) == 0, "cr-memfd seals %#x", fcntl(a, F_GET_SEALS));

	/* cr-sealed */
	cr_check(fcntl(s, F_GET_SEALS) == (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE),
		 "cr-sealed seals %#x", fcntl(s, F_GET_SEALS));
	cr_check(pwrite(s, "x", 1, 0) < 0 && errno == EPERM, "write to a write-sealed memfd");
	cr_check(ftruncate(s, 10) < 0, "shrinking a shrink-sealed memfd");
	cr_check(!memcmp(sealed_map, "sealed!", 7), "sealed content differs");
	cr_check(map_file_ino(sealed_map, PAGE, &ino, link, sizeof(link)) &&
		 fstat(s, &st) == 0 && ino == st.st_ino, "sealed mapping is not the fd's memfd");

	/* cr-maponly */
	cr_check(only[0] == 0 && only[PAGE] == 0x5a && only[2 * PAGE - 1] == 0x5a,
		 "map-only memfd content differs");
	cr_check(map_file_ino(only, 2 * PAGE, &ino, link, sizeof(link)) &&
		 !strcmp(link, "/memfd:cr-maponly (deleted)"), "map-only memfd is \"%s\"", link);
	cr_check_ids();
	cr_finish();
}
