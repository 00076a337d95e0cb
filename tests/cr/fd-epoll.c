// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fd-epoll: an epoll instance's interest list across the cut.
 *   fd 10/11  a pipe; fd 10 registered EPOLLIN, data 0x1111222233334444
 *   fd 12     an eventfd registered EPOLLIN|EPOLLET, data 0xe0e0
 *   fd 14     an eventfd registered as fd 13 (data 0xd13), then dup'ed to 14
 *             and fd 13 closed and reused for /dev/null: the item stays keyed
 *             by (that eventfd, 13)
 *   fd 20     the epoll instance; fd 21 a dup of it
 * Nothing is ready at the cut. After go: no event; a write into the pipe,
 * the eventfd and the dup'ed eventfd each delivers one event with its saved
 * data; fd 13 is /dev/null again; EPOLL_CTL_MOD by number works for fd 12
 * and gives ENOENT for fd 14 (never added under that number); a DEL through
 * fd 21 removes the pipe from fd 20's list (one instance).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cr.h"

static volatile uint64_t pipe_data = 0x1111222233334444ULL;

static void add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		cr_fail("EPOLL_CTL_ADD %d: %m", fd);
}

/* One event expected with @data (and nothing else). */
static void expect_one(int ep, uint64_t data, const char *what)
{
	struct epoll_event ev[4];
	int n = epoll_wait(ep, ev, 4, 1000);

	cr_check(n == 1 && ev[0].data.u64 == data && (ev[0].events & EPOLLIN),
		 "%s: %d events, first data %#llx events %#x (expected data %#llx)", what, n,
		 n > 0 ? (unsigned long long)ev[0].data.u64 : 0ULL, n > 0 ? ev[0].events : 0,
		 (unsigned long long)data);
}

int main(int argc, char **argv)
{
	struct epoll_event ev[4];
	struct stat st;
	uint64_t one = 1, v;
	char buf[16];
	int p[2], fd, n;

	cr_init(argc, argv);
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0 || dup3(p[0], 10, O_CLOEXEC) < 0 ||
	    dup3(p[1], 11, O_CLOEXEC) < 0)
		cr_fail("pipe: %m");
	close(p[0]);
	close(p[1]);
	if ((fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 || dup3(fd, 12, O_CLOEXEC) < 0)
		cr_fail("eventfd: %m");
	close(fd);
	if ((fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 || dup3(fd, 13, O_CLOEXEC) < 0)
		cr_fail("eventfd: %m");
	close(fd);
	if ((fd = epoll_create1(EPOLL_CLOEXEC)) < 0 || dup3(fd, 20, O_CLOEXEC) < 0 ||
	    dup3(fd, 21, O_CLOEXEC) < 0)
		cr_fail("epoll: %m");
	close(fd);
	add(20, 10, EPOLLIN, pipe_data);
	add(20, 12, EPOLLIN | EPOLLET, 0xe0e0);
	add(20, 13, EPOLLIN, 0xd13);
	if (dup3(13, 14, O_CLOEXEC) < 0)
		cr_fail("dup: %m");
	close(13);
	if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 || dup3(fd, 13, O_CLOEXEC) < 0)
		cr_fail("/dev/null: %m");
	close(fd);

	cr_ready_tamper((const void *)&pipe_data, sizeof(pipe_data));
	cr_wait();

	n = epoll_wait(20, ev, 4, 0);
	cr_check(n == 0, "%d events before anything was written (first data %#llx)", n,
		 n > 0 ? (unsigned long long)ev[0].data.u64 : 0ULL);
	cr_check(write(11, "abc", 3) == 3, "pipe write: %m");
	expect_one(20, pipe_data, "pipe");
	cr_check(read(10, buf, sizeof(buf)) == 3, "pipe read");
	cr_check(write(12, &one, 8) == 8, "eventfd write: %m");
	expect_one(20, 0xe0e0, "eventfd");
	cr_check(read(12, &v, 8) == 8 && v == 1, "eventfd read");
	cr_check(write(14, &one, 8) == 8, "dup'ed eventfd write: %m");
	expect_one(20, 0xd13, "eventfd added as fd 13, held by fd 14");
	cr_check(read(14, &v, 8) == 8 && v == 1, "dup'ed eventfd read");
	cr_check(fstat(13, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3) &&
		 fcntl(13, F_GETFD) == FD_CLOEXEC, "fd 13 is no longer /dev/null (cloexec)");
	ev[0] = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 0x99 };
	cr_check(epoll_ctl(20, EPOLL_CTL_MOD, 12, &ev[0]) == 0, "EPOLL_CTL_MOD fd 12: %m");
	errno = 0;
	cr_check(epoll_ctl(20, EPOLL_CTL_MOD, 14, &ev[0]) < 0 && errno == ENOENT,
		 "EPOLL_CTL_MOD fd 14: errno %d, expected ENOENT", errno);
	cr_check(write(12, &one, 8) == 8, "eventfd write: %m");
	expect_one(20, 0x99, "eventfd after MOD");
	read(12, &v, 8);
	cr_check(epoll_ctl(21, EPOLL_CTL_DEL, 10, NULL) == 0, "EPOLL_CTL_DEL via fd 21: %m");
	write(11, "x", 1);
	n = epoll_wait(20, ev, 4, 0);
	cr_check(n == 0, "fd 20 and fd 21 are not one epoll instance (%d events)", n);
	cr_check_ids();
	cr_finish();
}
