// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fd-eventfd: eventfd counters across the cut.
 *   fd 10  counter 0x123456789 (beyond 32 bits), O_NONBLOCK, close-on-exec;
 *          fd 11 is a dup of it (one open file description)
 *   fd 12  EFD_SEMAPHORE, counter 3, blocking, not close-on-exec
 *   fd 13  counter 0, O_NONBLOCK
 * After go: reading fd 11 gives the whole counter, then fd 10 (the same
 * object) has nothing left; fd 12 gives 1 three times then is not readable,
 * its fdinfo says eventfd-semaphore: 1; fd 13 is empty and counts again.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cr.h"

static volatile uint64_t expect = 0x123456789ULL;

static int readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static int fdinfo_sem(int fd)
{
	uint64_t v;

	return cr_fdinfo_u64(fd, "eventfd-semaphore:", 10, &v) < 0 ? -1 : (int)v;
}

int main(int argc, char **argv)
{
	uint64_t v, init = 0x123456789ULL;
	int fd;

	cr_init(argc, argv);
	fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0 || dup3(fd, 10, O_CLOEXEC) < 0 || dup2(fd, 11) < 0)
		cr_fail("eventfd: %m");
	close(fd);
	if (write(10, &init, 8) != 8)
		cr_fail("eventfd write: %m");
	fd = eventfd(3, EFD_SEMAPHORE);
	if (fd < 0 || dup2(fd, 12) < 0)
		cr_fail("eventfd: %m");
	close(fd);
	fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0 || dup3(fd, 13, O_CLOEXEC) < 0)
		cr_fail("eventfd: %m");
	close(fd);

	cr_ready_tamper((const void *)&expect, sizeof(expect));
	cr_wait();

	cr_check((fcntl(10, F_GETFL) & O_NONBLOCK) && fcntl(10, F_GETFD) == FD_CLOEXEC &&
		 fcntl(11, F_GETFD) == 0, "fd 10/11 flags");
	v = 0;
	cr_check(read(11, &v, 8) == 8 && v == expect, "fd 11 read %#llx, expected %#llx",
		 (unsigned long long)v, (unsigned long long)expect);
	errno = 0;
	cr_check(read(10, &v, 8) < 0 && errno == EAGAIN, "fd 10 is not the same eventfd as fd 11 "
		 "(errno %d)", errno);
	cr_check(fdinfo_sem(12) == 1, "fd 12 eventfd-semaphore: %d", fdinfo_sem(12));
	cr_check(!(fcntl(12, F_GETFL) & O_NONBLOCK), "fd 12 became nonblocking");
	for (int i = 0; i < 3; i++) {
		v = 0;
		cr_check(readable(12) && read(12, &v, 8) == 8 && v == 1, "fd 12 read %d: %llu", i,
			 (unsigned long long)v);
	}
	cr_check(!readable(12), "fd 12 still readable after 3 semaphore reads");
	cr_check(!readable(13), "fd 13 readable, expected a zero counter");
	v = 42;
	cr_check(write(13, &v, 8) == 8 && write(13, &v, 8) == 8 && read(13, &v, 8) == 8 && v == 84,
		 "fd 13 counts %llu", (unsigned long long)v);
	cr_check_ids();
	cr_finish();
}
