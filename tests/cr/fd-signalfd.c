// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fd-signalfd: signalfd masks across the cut.
 *   fd 10  signalfd for SIGUSR2 and SIGRTMIN+2, O_NONBLOCK, close-on-exec;
 *          SIGUSR2 is pending (blocked) at the cut
 *   fd 11  signalfd for SIGHUP, blocking
 * After go: fdinfo sigmask of fd 10 is the mask set; fd 10 reads the pending
 * SIGUSR2, then nothing (EAGAIN); a SIGRTMIN+2 queued with value 42 is read
 * from fd 10 with that value; fd 11 is not readable until a SIGHUP is raised,
 * then reads it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cr.h"

static volatile uint64_t expect_mask;

static uint64_t fdinfo_mask(int fd)
{
	uint64_t v;

	return cr_fdinfo_u64(fd, "sigmask:", 16, &v) < 0 ? 0 : v;
}

static int readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

int main(int argc, char **argv)
{
	struct signalfd_siginfo si;
	union sigval sv = { .sival_int = 42 };
	sigset_t m;
	int fd;

	cr_init(argc, argv);
	sigemptyset(&m);
	sigaddset(&m, SIGUSR2);
	sigaddset(&m, SIGRTMIN + 2);
	sigaddset(&m, SIGHUP);
	sigprocmask(SIG_BLOCK, &m, NULL);
	sigdelset(&m, SIGHUP);
	fd = signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0 || dup3(fd, 10, O_CLOEXEC) < 0)
		cr_fail("signalfd: %m");
	close(fd);
	sigemptyset(&m);
	sigaddset(&m, SIGHUP);
	fd = signalfd(-1, &m, 0);
	if (fd < 0 || dup2(fd, 11) < 0)
		cr_fail("signalfd: %m");
	close(fd);
	expect_mask = 1ULL << (SIGUSR2 - 1) | 1ULL << (SIGRTMIN + 2 - 1);
	raise(SIGUSR2);

	cr_ready_tamper((const void *)&expect_mask, sizeof(expect_mask));
	cr_wait();

	cr_check(fdinfo_mask(10) == expect_mask, "fd 10 sigmask %#llx, expected %#llx",
		 (unsigned long long)fdinfo_mask(10), (unsigned long long)expect_mask);
	cr_check(fdinfo_mask(11) == 1ULL << (SIGHUP - 1), "fd 11 sigmask %#llx",
		 (unsigned long long)fdinfo_mask(11));
	cr_check((fcntl(10, F_GETFL) & O_NONBLOCK) && fcntl(10, F_GETFD) == FD_CLOEXEC &&
		 !(fcntl(11, F_GETFL) & O_NONBLOCK) && fcntl(11, F_GETFD) == 0, "fd flags");
	memset(&si, 0, sizeof(si));
	cr_check(read(10, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR2,
		 "fd 10: pending SIGUSR2 not read (signo %u)", si.ssi_signo);
	errno = 0;
	cr_check(read(10, &si, sizeof(si)) < 0 && errno == EAGAIN, "fd 10 not empty (errno %d)",
		 errno);
	sigqueue(getpid(), SIGRTMIN + 2, sv);
	memset(&si, 0, sizeof(si));
	cr_check(read(10, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == (uint32_t)SIGRTMIN + 2 &&
		 si.ssi_int == 42, "fd 10: SIGRTMIN+2 read as signo %u value %d", si.ssi_signo,
		 si.ssi_int);
	cr_check(!readable(11), "fd 11 readable before SIGHUP");
	raise(SIGHUP);
	memset(&si, 0, sizeof(si));
	cr_check(readable(11) && read(11, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGHUP,
		 "fd 11: SIGHUP not read (signo %u)", si.ssi_signo);
	cr_check_ids();
	cr_finish();
}
