// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * file-pidfd: pidfds across the cut.
 * Fd A = pidfd_open(self) (close-on-exec, as pidfd_open makes it), fd B =
 * pidfd_open(self, PIDFD_NONBLOCK) with close-on-exec cleared. After go both
 * are pidfds ("anon_inode:[pidfd]") of this very process: the last NSpid field
 * of their fdinfo is getpid(), pidfd_send_signal(A, SIGUSR2) reaches our
 * handler once, poll() on B does not report an exit; A is close-on-exec and
 * blocking, B not close-on-exec and non-blocking.
 *
 * With "outside" (mode failckpt) fd C is also a pidfd of a child: a process
 * outside the image, so the checkpoint must refuse (one line naming the fd);
 * after it the pidfd still names the live child (the control run,
 * CR_CONTROL=1, holds no such pidfd).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cr.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif

static volatile sig_atomic_t got_usr2;
static int want_flags[2] = { FD_CLOEXEC, O_NONBLOCK };	/* published */

static void on_usr2(int sig)
{
	got_usr2++;
}

static bool is_pidfd(int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	return !strcmp(link, "anon_inode:[pidfd]");
}

int main(int argc, char **argv)
{
	bool outside = argc > 1 && !strcmp(argv[1], "outside") && !getenv("CR_CONTROL");
	struct sigaction sa = { .sa_handler = on_usr2 };
	pid_t kid = -1;
	int a, b, c = -1;

	cr_init(argc, argv);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);
	a = (int)syscall(SYS_pidfd_open, getpid(), 0);
	b = (int)syscall(SYS_pidfd_open, getpid(), PIDFD_NONBLOCK);
	if (a < 0 || b < 0)
		cr_fail("pidfd_open: %m");
	fcntl(b, F_SETFD, 0);
	if (outside) {
		kid = fork();
		if (kid == 0) {
			for (;;)
				pause();
		}
		c = (int)syscall(SYS_pidfd_open, kid, 0);
		if (c < 0)
			cr_fail("pidfd_open(child): %m");
	}

	cr_ready_tamper(want_flags, sizeof(want_flags));
	cr_wait();

	cr_check(is_pidfd(a) && is_pidfd(b), "fds A and B are not pidfds");
	cr_check(cr_fdinfo_nspid(a) == getpid() && cr_fdinfo_nspid(b) == getpid(),
		 "pidfds name pids %d and %d, we are %d", cr_fdinfo_nspid(a), cr_fdinfo_nspid(b),
		 (int)getpid());
	cr_check(fcntl(a, F_GETFD) == want_flags[0] && fcntl(b, F_GETFD) == 0,
		 "cloexec %d %d", fcntl(a, F_GETFD), fcntl(b, F_GETFD));
	cr_check(!(fcntl(a, F_GETFL) & O_NONBLOCK) &&
		 (fcntl(b, F_GETFL) & O_NONBLOCK) == want_flags[1],
		 "flags %#x %#x", fcntl(a, F_GETFL), fcntl(b, F_GETFL));
	got_usr2 = 0;
	cr_check(syscall(SYS_pidfd_send_signal, a, SIGUSR2, NULL, 0) == 0,
		 "pidfd_send_signal: %m");
	for (int i = 0; i < 1000 && !got_usr2; i++)
		cr_sleep_ms(1);
	cr_check(got_usr2 == 1, "SIGUSR2 through the pidfd arrived %d times", (int)got_usr2);
	{
		struct pollfd p = { .fd = b, .events = POLLIN };

		cr_check(poll(&p, 1, 0) == 0, "poll on our own pidfd reports an exit");
	}
	if (outside) {
		cr_check(is_pidfd(c) && cr_fdinfo_nspid(c) == kid &&
			 syscall(SYS_pidfd_send_signal, c, 0, NULL, 0) == 0,
			 "the child's pidfd no longer names the live child");
		kill(kid, SIGKILL);
		waitpid(kid, NULL, 0);
	}
	cr_check_ids();
	cr_finish();
}
