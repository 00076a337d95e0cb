// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * file-shm: POSIX shared memory (files under /dev/shm) across the cut.
 *  - /dev/shm/cr-file-shm-PID-fd: held as an fd (O_RDWR, offset 777) and mapped
 *    MAP_SHARED, 5 pages, pages 0, 1 and 4 written;
 *  - /dev/shm/cr-file-shm-PID-map: mapped MAP_SHARED, its fd closed, 2 pages.
 * After go, the fd and both mappings are the files at those paths again (same
 * inode as stat(path)), content intact, a write through a mapping is read back
 * with pread() from the file opened by path, the fd is at offset 777.
 *
 * Without argument the files still exist at restore: the engine uses them as
 * they are, so the inodes are the very ones of before the cut. With "gone" the
 * harness deleted them between checkpoint and restore (--between): the engine
 * creates them again with the saved content and mode (new inodes).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cr.h"

#define PAGE 4096UL

static unsigned char want[5 * PAGE];	/* expected content of the fd file (published) */

static bool map_ino(const void *addr, size_t len, ino_t *ret)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)addr,
		 (unsigned long)addr + len);
	if (stat(path, &st) < 0)
		return false;
	*ret = st.st_ino;
	return true;
}

int main(int argc, char **argv)
{
	char p_fd[128], p_map[128];
	unsigned char *m1, *m2, buf[5 * PAGE];
	struct stat st, before_fd, before_map;
	bool gone = argc > 1 && !strcmp(argv[1], "gone");
	ino_t ino;
	int fd, t;

	cr_init(argc, argv);
	for (size_t i = 0; i < sizeof(want); i++)
		want[i] = (i / PAGE == 2 || i / PAGE == 3) ? 0 : (unsigned char)(i * 13 + 1);
	snprintf(p_fd, sizeof(p_fd), "/dev/shm/cr-file-shm-%d-fd", (int)getpid());
	snprintf(p_map, sizeof(p_map), "/dev/shm/cr-file-shm-%d-map", (int)getpid());
	fd = open(p_fd, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0 || ftruncate(fd, 5 * PAGE) < 0)
		cr_fail("%s: %m", p_fd);
	m1 = mmap(NULL, 5 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m1 == MAP_FAILED)
		cr_fail("mmap: %m");
	memcpy(m1, want, 2 * PAGE);
	memcpy(m1 + 4 * PAGE, want + 4 * PAGE, PAGE);
	lseek(fd, 777, SEEK_SET);
	t = open(p_map, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (t < 0 || ftruncate(t, 2 * PAGE) < 0)
		cr_fail("%s: %m", p_map);
	m2 = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, t, 0);
	if (m2 == MAP_FAILED)
		cr_fail("mmap: %m");
	close(t);
	memset(m2 + PAGE, 0x77, PAGE);
	fstat(fd, &before_fd);
	stat(p_map, &before_map);

	cr_ready_tamper(want, sizeof(want));
	cr_wait();

	cr_check(stat(p_fd, &st) == 0, "%s is missing after the cut", p_fd);
	{
		struct stat fst;

		cr_check(fstat(fd, &fst) == 0 && fst.st_ino == st.st_ino && fst.st_dev == st.st_dev,
			 "the fd is not the file at %s", p_fd);
		cr_check((st.st_mode & 07777) == 0640, "%s mode %o", p_fd, st.st_mode & 07777);
		cr_check(st.st_size == (off_t)(5 * PAGE), "%s size %lld", p_fd,
			 (long long)st.st_size);
		if (!gone)
			cr_check(st.st_ino == before_fd.st_ino, "%s is not the same file as before "
				 "the cut (inode %lu, was %lu)", p_fd, (unsigned long)st.st_ino,
				 (unsigned long)before_fd.st_ino);
		else	/* proves the harness removed it: this one was created again */
			cr_check(st.st_ino != before_fd.st_ino, "%s was not created again", p_fd);
	}
	cr_check(map_ino(m1, 5 * PAGE, &ino) && ino == st.st_ino,
		 "the mapping of %s is not the file", p_fd);
	cr_check(lseek(fd, 0, SEEK_CUR) == 777, "fd offset %lld, expected 777",
		 (long long)lseek(fd, 0, SEEK_CUR));
	cr_check(!memcmp(m1, want, sizeof(want)), "content of %s differs (mapping)", p_fd);
	cr_check(pread(fd, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf) &&
		 !memcmp(buf, want, sizeof(want)), "content of %s differs (fd)", p_fd);
	m1[3 * PAGE + 5] = 0xab;
	t = open(p_fd, O_RDONLY | O_CLOEXEC);
	cr_check(t >= 0 && pread(t, buf, 1, 3 * PAGE + 5) == 1 && buf[0] == 0xab,
		 "a write through the mapping does not reach %s", p_fd);
	if (t >= 0)
		close(t);

	cr_check(stat(p_map, &st) == 0, "%s is missing after the cut", p_map);
	cr_check(map_ino(m2, 2 * PAGE, &ino) && ino == st.st_ino,
		 "the mapping of %s is not the file", p_map);
	if (!gone)
		cr_check(st.st_ino == before_map.st_ino, "%s is not the same file as before", p_map);
	cr_check(m2[0] == 0 && m2[PAGE] == 0x77 && m2[2 * PAGE - 1] == 0x77,
		 "content of %s differs", p_map);
	m2[0] = 0x31;
	t = open(p_map, O_RDONLY | O_CLOEXEC);
	cr_check(t >= 0 && pread(t, buf, 1, 0) == 1 && buf[0] == 0x31,
		 "a write through the mapping does not reach %s", p_map);
	if (t >= 0)
		close(t);
	unlink(p_fd);
	unlink(p_map);
	cr_check_ids();
	cr_finish();
}
