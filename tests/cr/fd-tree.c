// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fd-tree: pipes and an eventfd between two processes, checkpointed with
 * --tree (cr-harness --tree). Before the cut:
 *   pipe 1   the root R holds the write end (fd 10), its child A the read
 *            end (fd 10): 20000 bytes in flight, written by R
 *   pipe 2   A holds the write end (fd 11), R the read end (fd 11): 3000
 *            bytes in flight, written by A
 *   eventfd  fd 12 in both (opened before fork: one object), counter 7
 *   epoll    fd 13 in both (one instance, made before fork): R registered
 *            its fd 11 (pipe 2's read end, data 0xab11) before the fork; in A
 *            fd 11 is another file, so only R can add the item back
 * After go (R forwards it to A): A reads exactly its 20000 bytes (no more
 * are there), adds 1 to
 * the eventfd and exits 0/1 with its verdict; R reads its 3000 bytes, reaps
 * A (status 0) and reads 8 from the eventfd (A's increment reached the same
 * object); R's epoll reports pipe 2 readable with data 0xab11 before R
 * reads it (and A's copy of the instance is the same one). The ends each
 * process closed stay closed: after A is gone R's
 * read end of pipe 2 gives EOF and its write end of pipe 1 gives EPIPE.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cr.h"

#define P1_BYTES 20000
#define P2_BYTES 3000

static volatile uint64_t seed = 0x7ee5eed0abcdef01ULL;
static unsigned char buf[65536];

static unsigned char pat(uint64_t s, size_t i)
{
	return (unsigned char)(cr_mix64(s + i / 8) >> (i % 8));
}

static void put(int fd, uint64_t s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = pat(s, i);
	if (write(fd, buf, n) != (ssize_t)n)
		cr_fail("write %zu bytes to fd %d: %m", n, fd);
}

/* Read exactly @n bytes (blocking) and compare them; -1 on a mismatch. */
static ssize_t take(int fd, uint64_t s, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n && (r = read(fd, buf + got, n - got)) > 0)
		got += (size_t)r;
	for (size_t i = 0; i < got; i++)
		if (buf[i] != pat(s, i))
			return -1;
	return (ssize_t)got;
}

static void child(void)
{
	uint64_t one = 1;
	ssize_t n;
	int ok = 1, left = -1;

	while (!cr_go)
		usleep(1000);
	n = take(10, seed, P1_BYTES);
	if (n != P1_BYTES) {
		fprintf(stderr, "FAIL child: pipe 1 gave %zd bytes (-1: wrong bytes), expected %d\n",
			n, P1_BYTES);
		ok = 0;
	}
	if (ioctl(10, FIONREAD, &left) < 0 || left != 0) {
		fprintf(stderr, "FAIL child: %d more bytes in pipe 1\n", left);
		ok = 0;
	}
	if (write(12, &one, 8) != 8) {
		fprintf(stderr, "FAIL child: eventfd write: %m\n");
		ok = 0;
	}
	_exit(ok ? 0 : 1);
}

int main(int argc, char **argv)
{
	int p1[2], p2[2], efd, st = -1, avail = 0;
	uint64_t v = 0;
	ssize_t n;
	pid_t a;

	cr_init(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (pipe2(p1, O_CLOEXEC) < 0 || pipe2(p2, O_CLOEXEC) < 0)
		cr_fail("pipe: %m");
	if ((efd = eventfd(7, EFD_CLOEXEC)) < 0 || dup3(efd, 12, O_CLOEXEC) < 0)
		cr_fail("eventfd: %m");
	close(efd);
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0xab11 };

		if ((efd = epoll_create1(EPOLL_CLOEXEC)) < 0 || dup3(efd, 13, O_CLOEXEC) < 0 ||
		    dup3(p2[0], 11, O_CLOEXEC) < 0 || epoll_ctl(13, EPOLL_CTL_ADD, 11, &ev) < 0)
			cr_fail("epoll: %m");
		close(efd);
	}
	a = fork();
	if (a < 0)
		cr_fail("fork: %m");
	if (a == 0) {
		if (dup3(p1[0], 10, O_CLOEXEC) < 0 || dup3(p2[1], 11, O_CLOEXEC) < 0)
			_exit(2);
		close(p1[0]);
		close(p1[1]);
		close(p2[0]);
		close(p2[1]);
		put(11, seed + 1, P2_BYTES);
		child();
	}
	if (dup3(p1[1], 10, O_CLOEXEC) < 0 || dup3(p2[0], 11, O_CLOEXEC) < 0)
		cr_fail("dup3: %m");
	close(p1[0]);
	close(p1[1]);
	close(p2[0]);
	close(p2[1]);
	put(10, seed, P1_BYTES);
	/* A's bytes are in pipe 2 before the cut. */
	for (int i = 0; i < 5000 && avail < P2_BYTES; i++) {
		ioctl(11, FIONREAD, &avail);
		usleep(1000);
	}
	if (avail != P2_BYTES)
		cr_fail("pipe 2 holds %d bytes, expected %d", avail, P2_BYTES);

	cr_ready_tamper((const void *)&seed, sizeof(seed));
	cr_wait();

	{
		struct epoll_event ev[2];
		int ne = epoll_wait(13, ev, 2, 1000);

		cr_check(ne == 1 && ev[0].data.u64 == 0xab11 && (ev[0].events & EPOLLIN),
			 "epoll: %d events, data %#llx (expected pipe 2 readable, 0xab11)", ne,
			 ne > 0 ? (unsigned long long)ev[0].data.u64 : 0ULL);
	}
	kill(a, SIGUSR1);
	n = take(11, seed + 1, P2_BYTES);
	cr_check(n == P2_BYTES, "pipe 2 gave %zd bytes (-1: wrong bytes), expected %d", n, P2_BYTES);
	cr_check(waitpid(a, &st, 0) == a && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		 "child %d: wait status %#x", a, st);
	cr_check(read(12, &v, 8) == 8 && v == 8, "eventfd holds %llu, expected 8 (7 + the child's 1)",
		 (unsigned long long)v);
	n = read(11, buf, 1);
	cr_check(n == 0, "pipe 2 after the child exited: read gave %zd, expected EOF", n);
	errno = 0;
	cr_check(write(10, "x", 1) < 0 && errno == EPIPE, "pipe 1 after the child exited: errno %d, "
		 "expected EPIPE", errno);
	cr_check_ids();
	cr_finish();
}
