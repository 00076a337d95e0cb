// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * unix-external: unix sockets whose peers are outside the image (harness
 * mode failckpt): the checkpoint must fail and leave the process and its
 * sockets exactly as they were.
 *
 * Before ready: a child (outside the image: no --tree) holds the other end
 * of a socketpair whose end here is fd 20, and the listener of
 * $CR_DIR/ext.sock, to which fd 21 is connected (accepted by the child). The
 * child sent HELLO (64 bytes) on the pair and echoes whatever it receives.
 * fds 22/23 are a socketpair of our own: 22 sent PRIV (100 bytes) to 23,
 * whose SO_PEEK_OFF is 3 (the checkpoint reads queues by peeking from
 * offset 0: it must put that back). With CR_CONTROL=1 (the harness's
 * control checkpoint, which must succeed) there is no child: only 22/23.
 * After go: HELLO still queued on 20 and the child answers on 20 and 21;
 * 23 still holds PRIV, whole, with SO_PEEK_OFF 3; no tracer remains.
 *
 * "pending": no child; instead a listener of our own (24, $CR_DIR/p.sock)
 * with a connection not yet accepted whose client (25) already sent EARLY
 * (16 bytes): those bytes wait on a server side nobody holds, so the
 * checkpoint must fail. After go the connection is accepted and EARLY read.
 */
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
#include <unistd.h>

#include "cr.h"

static unsigned char secret[164];

static ssize_t rcv(int fd, void *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 3000) <= 0)
		return -2;
	return recv(fd, buf, len, MSG_DONTWAIT);
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

/* The peer outside: echo on the pair end and on the accepted connection. */
static __attribute__((noreturn)) void child(int pair, int l)
{
	struct pollfd p[2] = { { .fd = pair, .events = POLLIN } };
	char buf[256];
	int s;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (s < 0 || send(pair, secret, 64, 0) != 64)
		_exit(1);
	p[1].fd = s;
	p[1].events = POLLIN;
	for (;;) {
		if (poll(p, 2, -1) < 0)
			_exit(1);
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (!p[i].revents)
				continue;
			n = recv(p[i].fd, buf, sizeof(buf), 0);
			if (n <= 0 || send(p[i].fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
				_exit(0);
		}
	}
}

int main(int argc, char **argv)
{
	bool control = getenv("CR_CONTROL") != NULL;
	bool pending = argc > 1 && strcmp(argv[1], "pending") == 0;
	unsigned char buf[256];
	int sp[2], v;
	socklen_t vl = sizeof(v);
	ssize_t n;

	cr_init(argc, argv);
	if (getrandom(secret, sizeof(secret), 0) != sizeof(secret))
		cr_fail("getrandom: %m");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 ||
	    dup3(sp[0], 22, O_CLOEXEC) < 0 || dup3(sp[1], 23, O_CLOEXEC) < 0)
		cr_fail("socketpair: %m");
	close(sp[0]);
	close(sp[1]);
	if (send(22, secret + 64, 100, 0) != 100 ||
	    setsockopt(23, SOL_SOCKET, SO_PEEK_OFF, &(int){ 3 }, sizeof(int)) < 0)
		cr_fail("own pair: %m");

	if (!control && pending) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		socklen_t sl;
		int l, c;

		if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/p.sock", cr_dir()) >=
		    sizeof(sa.sun_path))
			cr_skip("$CR_DIR too long for a unix socket path");
		sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(sa.sun_path) + 1);
		l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&sa, sl) < 0 || listen(l, 1) < 0 ||
		    connect(c, (struct sockaddr *)&sa, sl) < 0 || send(c, secret + 164 - 16, 16, 0) != 16 ||
		    dup3(l, 24, O_CLOEXEC) < 0 || dup3(c, 25, O_CLOEXEC) < 0)
			cr_fail("pending connection: %m");
		close(l);
		close(c);
	} else if (!control) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		socklen_t sl;
		int l, c;
		pid_t pid;

		if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/ext.sock", cr_dir()) >=
		    sizeof(sa.sun_path))
			cr_skip("$CR_DIR too long for a unix socket path");
		sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(sa.sun_path) + 1);
		l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 || l < 0 || c < 0 ||
		    bind(l, (struct sockaddr *)&sa, sl) < 0 || listen(l, 1) < 0 ||
		    connect(c, (struct sockaddr *)&sa, sl) < 0)
			cr_fail("setup: %m");
		pid = fork();
		if (pid < 0)
			cr_fail("fork: %m");
		if (pid == 0) {
			close(sp[0]);
			close(c);
			child(sp[1], l);
		}
		close(l);
		close(sp[1]);
		if (dup3(sp[0], 20, O_CLOEXEC) < 0 || dup3(c, 21, O_CLOEXEC) < 0)
			cr_fail("dup3: %m");
		close(sp[0]);
		close(c);
		/* HELLO is queued before ready (peeked, not read). */
		{
			struct pollfd p = { .fd = 20, .events = POLLIN };

			if (poll(&p, 1, 5000) != 1 ||
			    recv(20, buf, sizeof(buf), MSG_PEEK) != 64)
				cr_fail("HELLO did not arrive");
		}
	}

	cr_ready_tamper(secret, sizeof(secret));
	cr_wait();

	if (!control && pending) {
		int s = accept4(24, NULL, NULL, SOCK_CLOEXEC);

		cr_check(s >= 0, "24: the queued connection is gone: %m");
		n = s >= 0 ? rcv(s, buf, sizeof(buf)) : -1;
		cr_check(n == 16 && memcmp(buf, secret + 164 - 16, 16) == 0, "EARLY: %zd bytes", n);
		cr_check(s < 0 || (send(25, "z", 1, 0) == 1 && rcv(s, buf, 1) == 1), "25 -> accepted broken");
		if (s >= 0)
			close(s);
	} else if (!control) {
		n = rcv(20, buf, sizeof(buf));
		cr_check(n == 64 && memcmp(buf, secret, 64) == 0, "20: HELLO: %zd bytes", n);
		cr_check(send(20, "ping", 4, MSG_NOSIGNAL) == 4 && rcv(20, buf, sizeof(buf)) == 4 &&
			 memcmp(buf, "ping", 4) == 0, "20: the child does not answer");
		cr_check(send(21, "pong", 4, MSG_NOSIGNAL) == 4 && rcv(21, buf, sizeof(buf)) == 4 &&
			 memcmp(buf, "pong", 4) == 0, "21: the child does not answer");
	}
	cr_check(getsockopt(23, SOL_SOCKET, SO_PEEK_OFF, &v, &vl) == 0 && v == 3,
		 "23: SO_PEEK_OFF %d, was 3", v);
	n = rcv(23, buf, sizeof(buf));
	cr_check(n == 100 && memcmp(buf, secret + 64, 100) == 0, "23: PRIV: %zd bytes", n);
	cr_check(tracer_pid() == 0, "TracerPid %d", tracer_pid());
	cr_finish();
}
