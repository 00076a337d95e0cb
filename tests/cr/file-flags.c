// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * file-flags: descriptor flags of every kind the engine restores.
 * One or two fds of each kind, each with its own mix of close-on-exec
 * (F_GETFD), O_APPEND, O_NONBLOCK and access mode (F_GETFL): a regular file,
 * /dev/null, both ends of a pipe, an eventfd, a timerfd, a signalfd, an epoll
 * instance, an inotify instance, a memfd, a /dev/shm file, an unlinked file, a
 * TCP listener, a unix socketpair, a pidfd. After go every fd has exactly the
 * flags it had (the table of expected values is what tamper mode corrupts).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "cr.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define FL_MASK (O_ACCMODE | O_APPEND | O_NONBLOCK)

struct want {
	int fd;
	int fl;		/* F_GETFL & FL_MASK */
	int fd_flags;	/* F_GETFD */
	char what[24];
};

static struct want want[32];	/* published */
static int nr;

/* Set @fl's O_APPEND/O_NONBLOCK and @cloexec on @fd, then record them. */
static void add(const char *what, int fd, int fl_set, bool cloexec)
{
	if (fd < 0)
		cr_fail("%s: %m", what);
	if (fcntl(fd, F_SETFL, (fcntl(fd, F_GETFL) & ~(O_APPEND | O_NONBLOCK)) | fl_set) < 0)
		cr_fail("%s: F_SETFL: %m", what);
	if (fcntl(fd, F_SETFD, cloexec ? FD_CLOEXEC : 0) < 0)
		cr_fail("%s: F_SETFD: %m", what);
	want[nr].fd = fd;
	want[nr].fl = fcntl(fd, F_GETFL) & FL_MASK;
	want[nr].fd_flags = fcntl(fd, F_GETFD);
	snprintf(want[nr].what, sizeof(want[nr].what), "%s", what);
	if ((want[nr].fl & (O_APPEND | O_NONBLOCK)) != fl_set)
		cr_skip("the kernel does not keep these flags on this kind");
	nr++;
}

int main(int argc, char **argv)
{
	char path[PATH_MAX];
	int p[2], sv[2], fd;
	sigset_t ss;

	cr_init(argc, argv);
	snprintf(path, sizeof(path), "%s/reg", cr_dir());
	add("file w+append+nb", open(path, O_WRONLY | O_CREAT, 0644), O_APPEND | O_NONBLOCK, true);
	add("file r", open(path, O_RDONLY), 0, false);
	add("/dev/null rw+nb", open("/dev/null", O_RDWR), O_NONBLOCK, true);
	if (pipe(p) < 0)
		cr_fail("pipe: %m");
	add("pipe r+nb", p[0], O_NONBLOCK, true);
	add("pipe w", p[1], 0, false);
	add("eventfd nb", eventfd(3, 0), O_NONBLOCK, false);
	add("timerfd nb", timerfd_create(CLOCK_MONOTONIC, 0), O_NONBLOCK, true);
	sigemptyset(&ss);
	sigaddset(&ss, SIGUSR2);
	add("signalfd", signalfd(-1, &ss, 0), 0, false);
	add("epoll", epoll_create1(0), 0, true);
	add("inotify nb", inotify_init1(0), O_NONBLOCK, false);
	add("memfd append", memfd_create("cr-flags", 0), O_APPEND, true);
	snprintf(path, sizeof(path), "/dev/shm/cr-file-flags-%d", (int)getpid());
	add("shm nb", open(path, O_RDWR | O_CREAT, 0600), O_NONBLOCK, false);
	snprintf(path, sizeof(path), "%s/gone", cr_dir());
	fd = open(path, O_RDWR | O_CREAT, 0600);
	unlink(path);
	add("unlinked append", fd, O_APPEND, false);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	{
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
			cr_fail("listener: %m");
	}
	add("tcp listen nb", fd, O_NONBLOCK, true);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		cr_fail("socketpair: %m");
	add("unix nb", sv[0], O_NONBLOCK, false);
	add("unix", sv[1], 0, true);
	add("pidfd nb", (int)syscall(SYS_pidfd_open, getpid(), 0), O_NONBLOCK, false);

	cr_ready_tamper(want, sizeof(want));
	cr_wait();

	for (int i = 0; i < nr; i++) {
		int fl = fcntl(want[i].fd, F_GETFL), fdf = fcntl(want[i].fd, F_GETFD);

		cr_check(fl >= 0 && (fl & FL_MASK) == want[i].fl && fdf == want[i].fd_flags,
			 "%s (fd %d): flags %#o cloexec %d, expected %#o cloexec %d", want[i].what,
			 want[i].fd, fl & FL_MASK, fdf, want[i].fl, want[i].fd_flags);
	}
	snprintf(path, sizeof(path), "/dev/shm/cr-file-flags-%d", (int)getpid());
	unlink(path);
	cr_check_ids();
	cr_finish();
}
