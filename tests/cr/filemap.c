// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * filemap: private and shared file mappings, and a regular file descriptor.
 * A 64-page file "data" in $CR_DIR is mapped twice:
 *  - MAP_PRIVATE: pages 3, 7, 20 modified, page 9 overwritten with zeros, the
 *    others read (present, from the page cache). After go: modified pages keep
 *    their modifications, the zeroed page reads zero, unmodified pages equal the
 *    file; and they still come from the file: a pwrite() to the file after go
 *    shows through an unmodified page, not through a modified one.
 *  - MAP_SHARED: pages 1 and 2 written before the cut (msync'ed). After go they
 *    are in the file, and a write through the mapping reaches the file.
 * A descriptor of "log" open O_RDWR|O_APPEND at offset 1234 keeps its flags and
 * offset; a read-only descriptor of "data" keeps offset 5*4096+17.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cr.h"

#define PAGE 4096
#define NR 64

static unsigned char file_byte(unsigned page, unsigned off)
{
	return (unsigned char)(page * 31 + off * 7 + 1);
}

static unsigned char mod_byte(unsigned page, unsigned off)
{
	return (unsigned char)(0xa5 ^ page ^ off);
}

static bool page_is(const unsigned char *p, unsigned page, unsigned char (*f)(unsigned, unsigned))
{
	for (unsigned i = 0; i < PAGE; i++)
		if (p[i] != f(page, i))
			return false;
	return true;
}

static unsigned char zero_byte(unsigned page, unsigned off)
{
	return 0;
}

int main(int argc, char **argv)
{
	char data_path[4200], log_path[4200];
	static unsigned char pagebuf[PAGE];
	unsigned char *priv, *shared, sum = 0;
	int fd, logfd, rofd;

	cr_init(argc, argv);
	snprintf(data_path, sizeof(data_path), "%s/data", cr_dir());
	snprintf(log_path, sizeof(log_path), "%s/log", cr_dir());
	fd = open(data_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		cr_fail("create %s: %m", data_path);
	for (unsigned p = 0; p < NR; p++) {
		for (unsigned i = 0; i < PAGE; i++)
			pagebuf[i] = file_byte(p, i);
		if (pwrite(fd, pagebuf, PAGE, (off_t)p * PAGE) != PAGE)
			cr_fail("pwrite: %m");
	}
	fsync(fd);
	priv = mmap(NULL, NR * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	shared = mmap(NULL, NR * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (priv == MAP_FAILED || shared == MAP_FAILED)
		cr_fail("mmap: %m");
	close(fd);
	for (unsigned p = 0; p < NR; p++)
		sum += priv[p * PAGE + 5];
	for (unsigned p = 3; p <= 20; p += (p == 3 ? 4 : 13))
		for (unsigned i = 0; i < PAGE; i++)
			priv[p * PAGE + i] = mod_byte(p, i);
	memset(priv + 9 * PAGE, 0, PAGE);
	for (unsigned p = 1; p <= 2; p++)
		for (unsigned i = 0; i < PAGE; i++)
			shared[p * PAGE + i] = mod_byte(p, i);
	msync(shared, NR * PAGE, MS_SYNC);

	logfd = open(log_path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (logfd < 0 || write(logfd, pagebuf, 1234) != 1234)
		cr_fail("log: %m");
	rofd = open(data_path, O_RDONLY | O_CLOEXEC);
	if (rofd < 0 || lseek(rofd, 5 * PAGE + 17, SEEK_SET) < 0)
		cr_fail("data ro: %m");
	cr_ready_tamper(priv + 7 * PAGE, PAGE);
	cr_wait();

	/* Private mapping content. */
	for (unsigned p = 0; p < NR; p++) {
		bool modified = p == 3 || p == 7 || p == 20;

		if (p == 9)
			cr_check(page_is(priv + p * PAGE, p, zero_byte), "private page 9 is not zero");
		else if (modified)
			cr_check(page_is(priv + p * PAGE, p, mod_byte), "private page %u lost its modification", p);
		else if (p == 1 || p == 2)
			/* unmodified private pages show the file, which the shared map changed */
			cr_check(page_is(priv + p * PAGE, p, mod_byte) || page_is(priv + p * PAGE, p, file_byte),
				 "private page %u is neither file nor shared content", p);
		else
			cr_check(page_is(priv + p * PAGE, p, file_byte), "private page %u differs from the file", p);
	}
	/* Unmodified private pages still come from the file; modified ones do not. */
	fd = open(data_path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		cr_fail("reopen data: %m");
	memset(pagebuf, 0x77, PAGE);
	pwrite(fd, pagebuf, PAGE, 30 * PAGE);
	pwrite(fd, pagebuf, PAGE, 7 * PAGE);
	cr_check(priv[30 * PAGE + 100] == 0x77, "unmodified private page 30 does not follow the file");
	cr_check(page_is(priv + 7 * PAGE, 7, mod_byte), "modified private page 7 follows the file");
	/* Shared mapping: the pre-cut writes are in the file, new ones reach it. */
	pread(fd, pagebuf, PAGE, 2 * PAGE);
	cr_check(page_is(pagebuf, 2, mod_byte), "shared write before the cut not in the file");
	cr_check(shared[30 * PAGE + 7] == 0x77, "shared mapping does not show a file write");
	shared[40 * PAGE + 11] = 0x3c;
	pread(fd, pagebuf, PAGE, 40 * PAGE);
	cr_check(pagebuf[11] == 0x3c, "write through the shared mapping after go did not reach the file");
	close(fd);
	/* Descriptors. */
	cr_check(lseek(logfd, 0, SEEK_CUR) == 1234, "log offset %lld, expected 1234",
		 (long long)lseek(logfd, 0, SEEK_CUR));
	cr_check((fcntl(logfd, F_GETFL) & (O_ACCMODE | O_APPEND)) == (O_RDWR | O_APPEND),
		 "log flags %#x", fcntl(logfd, F_GETFL));
	cr_check(fcntl(logfd, F_GETFD) == FD_CLOEXEC, "log fd flags %#x", fcntl(logfd, F_GETFD));
	cr_check(write(logfd, "x", 1) == 1 && lseek(logfd, 0, SEEK_CUR) == 1235, "log append failed");
	cr_check(lseek(rofd, 0, SEEK_CUR) == 5 * PAGE + 17, "ro offset %lld",
		 (long long)lseek(rofd, 0, SEEK_CUR));
	cr_check((fcntl(rofd, F_GETFL) & O_ACCMODE) == O_RDONLY, "ro flags %#x", fcntl(rofd, F_GETFL));
	cr_check(read(rofd, pagebuf, 1) == 1 && pagebuf[0] == file_byte(5, 17), "ro read at offset");
	(void)sum;
	cr_check_ids();
	cr_finish();
}
