// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * unix-tree: unix sockets shared by a process tree (cr-harness --tree).
 *
 * The root R and two children, A and B, forked before ready:
 *   20 (R) / 21 (A)   a stream socketpair: R sent RA (40 bytes), A sent AR (60)
 *   22 (R) / 23 (A)   a dgram socketpair: A sent AD1 (10) and AD2 (20), R sent RD (20)
 *   24 (R)            a listener on $CR_DIR/t.sock
 *   25 (B) / 26 (R)   B's connection to 24, accepted by R; B sent BR (30)
 *   27 (A)            A's connection to 24, not accepted yet
 *   28 (R) / 1 (B)    B's stdout is a stream socketpair end: B wrote BO (20)
 * Payloads are slices of a secret (R's copy is published for tamper).
 * After go R reads AR, AD1, AD2, BR; then A reads RA and RD and sends its pid
 * on 21 and on 27; B sends its pid on 25 and waits for "ok". R reads A's
 * pid on 20, accepts A's queued connection and reads A's pid there, reads B's
 * pid on 26 and answers, reads BO and then B's pid on 28 (B's stdout); A
 * and B exit 0 only if their own checks passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cr.h"

static unsigned char secret[256];
static struct sockaddr_un tname;
static socklen_t tlen;
static volatile sig_atomic_t kid_go;

static void on_kid_go(int sig)
{
	(void)sig;
	kid_go = 1;
}

static ssize_t rcv(int fd, void *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 3000) <= 0)
		return -2;
	return recv(fd, buf, len, MSG_DONTWAIT);
}

/* Wait until @fd has @len bytes (or a message) ready, without reading it. */
static void wait_queued(int fd, size_t len, const char *what)
{
	unsigned char buf[256];

	for (int i = 0; i < 5000; i++) {
		if (recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT) >= (ssize_t)len)
			return;
		cr_sleep_ms(1);
	}
	cr_fail("%s did not arrive", what);
}

static void dup_to(int fd, int to)
{
	if (dup3(fd, to, O_CLOEXEC) < 0)
		cr_fail("dup3: %m");
	close(fd);
}

static __attribute__((noreturn)) void kid_a(void)
{
	unsigned char buf[256];
	pid_t me = getpid();
	int c, bad = 0;
	ssize_t n;

	c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&tname, tlen) < 0)
		_exit(2);
	dup_to(c, 27);
	if (send(21, secret + 40, 60, 0) != 60 || send(23, secret + 100, 10, 0) != 10 ||
	    send(23, secret + 110, 20, 0) != 20)
		_exit(2);
	while (!kid_go)
		cr_sleep_ms(1);
	n = rcv(21, buf, sizeof(buf));
	bad |= !(n == 40 && memcmp(buf, secret, 40) == 0);
	n = rcv(23, buf, sizeof(buf));
	bad |= !(n == 20 && memcmp(buf, secret + 130, 20) == 0);
	bad |= send(21, &me, sizeof(me), 0) != sizeof(me);
	bad |= send(27, &me, sizeof(me), 0) != sizeof(me);
	if (bad)
		fprintf(stderr, "FAIL cr-unix-tree: child A: its queues or sends\n");
	_exit(bad);
}

static __attribute__((noreturn)) void kid_b(void)
{
	unsigned char buf[16];
	pid_t me = getpid();
	int bad = 0;

	if (send(25, secret + 150, 30, 0) != 30 || write(1, secret + 200, 20) != 20)
		_exit(2);
	while (!kid_go)
		cr_sleep_ms(1);
	bad |= send(25, &me, sizeof(me), 0) != sizeof(me);
	bad |= write(1, &me, sizeof(me)) != sizeof(me);
	bad |= !(rcv(25, buf, sizeof(buf)) == 2 && memcmp(buf, "ok", 2) == 0);
	if (bad)
		fprintf(stderr, "FAIL cr-unix-tree: child B: no answer on its connection\n");
	_exit(bad);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_kid_go };
	unsigned char buf[256];
	pid_t a, b, got;
	int sp[2], dp[2], c, s, st;
	ssize_t n;

	cr_init(argc, argv);
	if (getrandom(secret, sizeof(secret), 0) != sizeof(secret))
		cr_fail("getrandom: %m");
	sigaction(SIGUSR2, &sa, NULL);
	memset(&tname, 0, sizeof(tname));
	tname.sun_family = AF_UNIX;
	if ((size_t)snprintf(tname.sun_path, sizeof(tname.sun_path), "%s/t.sock", cr_dir()) >=
	    sizeof(tname.sun_path))
		cr_skip("$CR_DIR too long for a unix socket path");
	tlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(tname.sun_path) + 1);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 ||
	    socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dp) < 0)
		cr_fail("socketpair: %m");
	dup_to(sp[0], 20);
	dup_to(sp[1], 21);
	dup_to(dp[0], 22);
	dup_to(dp[1], 23);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&tname, tlen) < 0 || listen(s, 4) < 0)
		cr_fail("listener: %m");
	dup_to(s, 24);
	c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&tname, tlen) < 0)
		cr_fail("connect: %m");
	dup_to(c, 25);
	s = accept4(24, NULL, NULL, SOCK_CLOEXEC);
	if (s < 0)
		cr_fail("accept: %m");
	dup_to(s, 26);

	a = fork();
	if (a < 0)
		cr_fail("fork: %m");
	if (a == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(20);
		close(22);
		close(24);
		close(25);
		close(26);
		kid_a();
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		cr_fail("socketpair: %m");
	dup_to(sp[0], 28);
	b = fork();
	if (b < 0)
		cr_fail("fork: %m");
	if (b == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (int fd = 20; fd <= 28; fd++)
			if (fd != 25)
				close(fd);
		if (dup2(sp[1], 1) != 1)
			_exit(2);
		close(sp[1]);
		kid_b();
	}
	close(sp[1]);
	close(21);
	close(23);
	close(25);
	if (send(20, secret, 40, 0) != 40 || send(22, secret + 130, 20, 0) != 20)
		cr_fail("send: %m");
	/* Everything of the children is queued before ready. */
	wait_queued(20, 60, "AR");
	wait_queued(22, 10, "AD1");
	wait_queued(26, 30, "BR");
	wait_queued(28, 20, "BO");
	{
		struct pollfd p = { .fd = 24, .events = POLLIN };

		if (poll(&p, 1, 5000) != 1)
			cr_fail("A's connection is not queued");
	}
	cr_sleep_ms(20);	/* AD2 follows AD1 */

	cr_ready_tamper(secret, 220);
	cr_wait();

	n = rcv(20, buf, sizeof(buf));
	cr_check(n == 60 && memcmp(buf, secret + 40, 60) == 0, "20: AR: %zd bytes", n);
	n = rcv(22, buf, sizeof(buf));
	cr_check(n == 10 && memcmp(buf, secret + 100, 10) == 0, "22: AD1: %zd bytes", n);
	n = rcv(22, buf, sizeof(buf));
	cr_check(n == 20 && memcmp(buf, secret + 110, 20) == 0, "22: AD2: %zd bytes", n);
	n = rcv(26, buf, sizeof(buf));
	cr_check(n == 30 && memcmp(buf, secret + 150, 30) == 0, "26: BR: %zd bytes", n);
	kill(a, SIGUSR2);
	kill(b, SIGUSR2);
	n = rcv(20, &got, sizeof(got));
	cr_check(n == sizeof(got) && got == a, "20: A's pid: %zd bytes, %d (A is %d)", n, got, a);
	s = -1;
	{
		struct pollfd p = { .fd = 24, .events = POLLIN };

		if (poll(&p, 1, 3000) == 1)
			s = accept4(24, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	}
	cr_check(s >= 0, "A's queued connection not accepted: %m");
	if (s >= 0) {
		n = rcv(s, &got, sizeof(got));
		cr_check(n == sizeof(got) && got == a, "A's connection: %zd bytes, pid %d", n, got);
		close(s);
	}
	n = rcv(26, &got, sizeof(got));
	cr_check(n == sizeof(got) && got == b, "26: B's pid: %zd bytes, %d (B is %d)", n, got, b);
	cr_check(send(26, "ok", 2, 0) == 2, "26: send: %m");
	n = rcv(28, buf, 20);
	cr_check(n == 20 && memcmp(buf, secret + 200, 20) == 0, "28: BO: %zd bytes", n);
	n = rcv(28, &got, sizeof(got));
	cr_check(n == sizeof(got) && got == b, "28: B's pid on its stdout: %zd bytes, %d", n, got);
	cr_check(waitpid(a, &st, 0) == a && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		 "child A: status %#x", st);
	cr_check(waitpid(b, &st, 0) == b && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		 "child B: status %#x", st);
	cr_finish();
}
