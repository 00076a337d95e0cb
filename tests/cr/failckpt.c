// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * failckpt: a process holding descriptors the engine cannot capture yet (an
 * eventfd at fd 7, a socketpair at fds 8 and 9 with fd 7 in flight from 9 to 8
 * (SCM_RIGHTS: unix sockets are captured, descriptors in flight are not)).
 * `warmfork checkpoint` must fail
 * and leave it exactly as it was (with CR_CONTROL=1 it holds neither, for the
 * harness's control checkpoint that must succeed): after go its memory map (/proc/self/maps) is
 * identical to the one read before ready (nothing injected is left), its
 * blocked mask too, the counter loop went on and still advances, the eventfd
 * still holds 5 and the socket pair still carries data, and no tracer remains.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cr.h"

static char maps_before[1 << 16], maps_after[1 << 16];

static size_t read_maps(char *buf, size_t len)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	size_t got = 0;
	ssize_t n;

	if (fd < 0)
		cr_fail("open maps: %m");
	while (got < len - 1 && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = 0;
	return got;
}

static int tracer_pid(void)
{
	char buf[4096], *s;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	s = strstr(buf, "TracerPid:");
	return s ? atoi(s + 10) : -1;
}

int main(int argc, char **argv)
{
	volatile uint64_t count = 0;
	uint64_t v = 0, at_go;
	sigset_t mask_before, mask_after;
	int efd, sp[2];
	char c = 0;

	cr_init(argc, argv);
	if (getenv("CR_CONTROL")) {
		/* The harness's control run: nothing uncheckpointable. */
		cr_ready();
		cr_wait();
		cr_finish();
	}
	efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0 || dup2(efd, 7) < 0)
		cr_fail("eventfd: %m");
	close(efd);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 || dup2(sp[0], 8) < 0 ||
	    dup2(sp[1], 9) < 0)
		cr_fail("socketpair: %m");
	close(sp[0]);
	close(sp[1]);
	v = 5;
	if (write(7, &v, 8) != 8)
		cr_fail("eventfd write: %m");
	{
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} cb = {};
		struct iovec iov = { &c, 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.buf,
				     .msg_controllen = sizeof(cb.buf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &(int){ 7 }, sizeof(int));
		if (sendmsg(9, &mh, 0) != 1)
			cr_fail("sendmsg SCM_RIGHTS: %m");
	}
	sigprocmask(SIG_BLOCK, NULL, &mask_before);
	/* Read the maps after everything that maps memory (stdio is unbuffered). */
	cr_poll();
	read_maps(maps_before, sizeof(maps_before));
	cr_ready_tamper(maps_before, strlen(maps_before));
	for (;;) {
		count++;
		if ((count & 0xffff) == 0 && cr_poll())
			break;
	}
	at_go = count;
	read_maps(maps_after, sizeof(maps_after));
	cr_check(!strcmp(maps_before, maps_after), "memory map changed:\n--- before\n%.3000s--- after\n%.3000s",
		 maps_before, maps_after);
	sigprocmask(SIG_BLOCK, NULL, &mask_after);
	for (int s = 1; s < SIGRTMAX; s++)
		cr_check(sigismember(&mask_before, s) == sigismember(&mask_after, s),
			 "blocked mask changed at signal %d", s);
	cr_check(tracer_pid() == 0, "TracerPid is %d", tracer_pid());
	cr_check(at_go >= 0x10000 && (at_go & 0xffff) == 0, "counter at go is %llu",
		 (unsigned long long)at_go);
	for (int i = 0; i < 1000000; i++)
		count++;
	cr_check(count == at_go + 1000000, "counter does not advance");
	v = 0;
	cr_check(read(7, &v, 8) == 8 && v == 5, "eventfd value %llu, expected 5", (unsigned long long)v);
	cr_check(write(8, "z", 1) == 1 && read(9, &c, 1) == 1 && c == 'z', "socket pair broken");
	cr_check_ids();
	cr_check_rseq("main thread");
	cr_finish();
}
