// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * unix-pair [stream|seqpacket]: unix socketpairs across the cut, with bytes
 * (records, for seqpacket) queued both ways.
 *
 * Before ready, at fixed numbers (T = the type of the argument):
 *   20/21  a pair of T. 20 sends A1 (100 bytes) and A2 (300), 21 sends B1
 *          (112); 20 O_NONBLOCK, cloexec, SO_SNDBUF 40000 (locked); 21
 *          SO_PASSCRED, SO_RCVTIMEO 3 s; 25 is a dup of 20. Even fds close
 *          on exec, odd ones do not.
 *   22/23  a pair: 22 sends C1 (64) and shuts down writing.
 *   24     one end of a pair whose other end sent D1 (77) and was closed.
 *   26/27  a pair, 26 sent 200 KB (stream) / 5 records of 30000 (seqpacket).
 *   0/28   stdin is one end of a pair whose other end is 28; 28 sent IN (48).
 * The payloads are slices of a 64-bit-word secret published for tamper.
 * After go: types, descriptor flags, options; 21 receives A1 A2 (for
 * seqpacket as two records), 20 receives B1, then nothing is left; 23 gets
 * C1 then end of file, 22 may still receive from 23 but cannot send; 24
 * gets D1 then end of file and cannot send; the bulk arrives intact; the
 * pair still works both ways (25 -> 21, 21 -> 20); stdin is still that
 * socket: it reads IN, and what is written on it reaches 28.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cr.h"

#define BULK_STREAM	(200 << 10)
#define BULK_REC	30000
#define BULK_NREC	5

static uint64_t secret[64];			/* 512 bytes */
static unsigned char bulk[BULK_STREAM];	/* derived from the secret */
static int type;

static const unsigned char *sec(size_t off)
{
	return (const unsigned char *)secret + off;
}

static void xsend(int fd, const void *p, size_t len, const char *what)
{
	if (send(fd, p, len, MSG_NOSIGNAL) != (ssize_t)len)
		cr_fail("send %s: %m", what);
}

static void make_pair(int a, int b)
{
	int sp[2];

	if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sp) < 0)
		cr_fail("socketpair: %m");
	/* Even numbers close on exec, odd ones do not. */
	if (dup3(sp[0], a, a % 2 ? 0 : O_CLOEXEC) < 0 || dup3(sp[1], b, b % 2 ? 0 : O_CLOEXEC) < 0)
		cr_fail("dup2: %m");
	close(sp[0]);
	close(sp[1]);
}

static int getint(int fd, int opt)
{
	int v = -1;
	socklen_t l = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, opt, &v, &l) < 0)
		return -1;
	return v;
}

/* One receive, waiting up to 2 s for something to arrive. */
static ssize_t rcv(int fd, void *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 2000) <= 0)
		return -2;
	return recv(fd, buf, len, MSG_DONTWAIT);
}

/* Exactly @len bytes (stream: may take several receives). */
static bool rcv_exact(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = rcv(fd, (char *)buf + got, len - got);

		if (n <= 0)
			return false;
		got += (size_t)n;
		if (type == SOCK_SEQPACKET)
			break;
	}
	return got == len;
}

static bool queue_empty(int fd)
{
	char c;

	return recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) < 0 && errno == EAGAIN;
}

int main(int argc, char **argv)
{
	static unsigned char buf[BULK_STREAM + 16];
	int sndbuf_before, sp[2];
	struct timeval tv = { 3, 0 };
	ssize_t n;

	cr_init(argc, argv);
	type = argc > 1 && strcmp(argv[1], "seqpacket") == 0 ? SOCK_SEQPACKET : SOCK_STREAM;
	if (argc > 1 && strcmp(argv[1], "seqpacket") && strcmp(argv[1], "stream"))
		cr_fail("usage: unix-pair [stream|seqpacket]");
	if (getrandom(secret, sizeof(secret), 0) != sizeof(secret))
		cr_fail("getrandom: %m");
	for (size_t i = 0; i < sizeof(bulk); i++)
		bulk[i] = sec(i % sizeof(secret))[0] ^ (unsigned char)(i * 131);

	make_pair(20, 21);
	if (fcntl(20, F_SETFL, O_NONBLOCK) < 0)
		cr_fail("O_NONBLOCK: %m");
	if (setsockopt(20, SOL_SOCKET, SO_SNDBUF, &(int){ 40000 }, sizeof(int)) < 0 ||
	    setsockopt(21, SOL_SOCKET, SO_PASSCRED, &(int){ 1 }, sizeof(int)) < 0 ||
	    setsockopt(21, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		cr_fail("setsockopt: %m");
	sndbuf_before = getint(20, SO_SNDBUF);
	if (dup2(20, 25) < 0)
		cr_fail("dup2: %m");
	xsend(20, sec(0), 100, "A1");
	xsend(20, sec(100), 300, "A2");
	xsend(21, sec(400), 112, "B1");

	make_pair(22, 23);
	xsend(22, sec(8), 64, "C1");
	if (shutdown(22, SHUT_WR) < 0)
		cr_fail("shutdown: %m");

	if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sp) < 0 || dup3(sp[0], 24, O_CLOEXEC) < 0)
		cr_fail("socketpair: %m");
	close(sp[0]);
	xsend(sp[1], sec(200), 77, "D1");
	close(sp[1]);

	make_pair(26, 27);
	if (setsockopt(26, SOL_SOCKET, SO_SNDBUF, &(int){ 1 << 20 }, sizeof(int)) < 0)
		cr_fail("setsockopt: %m");
	if (type == SOCK_STREAM)
		xsend(26, bulk, BULK_STREAM, "bulk");
	else
		for (int i = 0; i < BULK_NREC; i++)
			xsend(26, bulk + i * BULK_REC, BULK_REC, "bulk record");

	make_pair(29, 28);
	if (dup2(29, 0) < 0)
		cr_fail("dup2 stdin: %m");
	close(29);
	xsend(28, sec(300), 48, "IN");

	cr_ready_tamper(secret, sizeof(secret));
	cr_wait();

	/* Kinds, flags, options. */
	for (int fd = 20; fd <= 27; fd++) {
		cr_check(getint(fd, SO_TYPE) == type, "fd %d: type %d", fd, getint(fd, SO_TYPE));
		cr_check(getint(fd, SO_DOMAIN) == AF_UNIX, "fd %d: not AF_UNIX", fd);
		cr_check(fcntl(fd, F_GETFD) == (fd % 2 ? 0 : FD_CLOEXEC), "fd %d: FD_CLOEXEC %s",
			 fd, fd % 2 ? "set" : "lost");
	}
	cr_check(fcntl(20, F_GETFL) & O_NONBLOCK, "fd 20 lost O_NONBLOCK");
	cr_check(fcntl(25, F_GETFL) & O_NONBLOCK, "fd 25 (dup of 20) lost O_NONBLOCK");
	cr_check(!(fcntl(21, F_GETFL) & O_NONBLOCK), "fd 21 became O_NONBLOCK");
	cr_check(getint(20, SO_SNDBUF) == sndbuf_before, "fd 20: SO_SNDBUF %d, was %d",
		 getint(20, SO_SNDBUF), sndbuf_before);
	cr_check(getint(21, SO_PASSCRED) == 1, "fd 21: SO_PASSCRED lost");
	{
		struct timeval t = {};
		socklen_t l = sizeof(t);

		getsockopt(21, SOL_SOCKET, SO_RCVTIMEO, &t, &l);
		cr_check(t.tv_sec == 3 && t.tv_usec == 0, "fd 21: SO_RCVTIMEO %ld.%06ld",
			 (long)t.tv_sec, (long)t.tv_usec);
	}

	/* The queues, with their record boundaries for seqpacket. */
	if (type == SOCK_SEQPACKET) {
		n = rcv(21, buf, sizeof(buf));
		cr_check(n == 100 && memcmp(buf, sec(0), 100) == 0, "21: A1 got %zd bytes", n);
		n = rcv(21, buf, sizeof(buf));
		cr_check(n == 300 && memcmp(buf, sec(100), 300) == 0, "21: A2 got %zd bytes", n);
	} else {
		cr_check(rcv_exact(21, buf, 400) && memcmp(buf, sec(0), 400) == 0,
			 "21: A1+A2 differ");
	}
	cr_check(queue_empty(21), "21: more than A1 A2 queued");
	n = rcv(20, buf, sizeof(buf));
	cr_check(n == 112 && memcmp(buf, sec(400), 112) == 0, "20: B1 got %zd bytes", n);
	cr_check(queue_empty(20), "20: more than B1 queued");

	/* Shut down for writing: C1, end of file; the other way still works. */
	n = rcv(23, buf, sizeof(buf));
	cr_check(n == 64 && memcmp(buf, sec(8), 64) == 0, "23: C1 got %zd bytes", n);
	n = rcv(23, buf, sizeof(buf));
	cr_check(n == 0, "23: %zd instead of end of file after C1", n);
	errno = 0;
	cr_check(send(22, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno == EPIPE,
		 "22: send after SHUT_WR did not fail with EPIPE (%m)");
	cr_check(send(23, "back", 4, MSG_NOSIGNAL | MSG_DONTWAIT) == 4, "23 -> 22: %m");
	n = rcv(22, buf, sizeof(buf));
	cr_check(n == 4 && memcmp(buf, "back", 4) == 0, "22: got %zd bytes from 23", n);

	/* Peer closed: D1, then end of file, sending fails. */
	n = rcv(24, buf, sizeof(buf));
	cr_check(n == 77 && memcmp(buf, sec(200), 77) == 0, "24: D1 got %zd bytes", n);
	n = rcv(24, buf, sizeof(buf));
	cr_check(n == 0, "24: %zd instead of end of file after D1", n);
	errno = 0;
	cr_check(send(24, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno == EPIPE,
		 "24: send to a closed peer did not fail with EPIPE (%m)");

	/* Bulk. */
	if (type == SOCK_STREAM) {
		cr_check(rcv_exact(27, buf, BULK_STREAM) && memcmp(buf, bulk, BULK_STREAM) == 0,
			 "27: the %u bulk bytes differ", BULK_STREAM);
	} else {
		for (int i = 0; i < BULK_NREC; i++) {
			n = rcv(27, buf, sizeof(buf));
			cr_check(n == BULK_REC && memcmp(buf, bulk + i * BULK_REC, BULK_REC) == 0,
				 "27: bulk record %d: %zd bytes or different", i, n);
		}
	}
	cr_check(queue_empty(27), "27: more than the bulk queued");

	/* stdin: the pair's end, with IN queued. */
	cr_check(getint(0, SO_TYPE) == type && getint(28, SO_TYPE) == type, "stdin/28: type");
	n = rcv(0, buf, sizeof(buf));
	if (type == SOCK_SEQPACKET)
		cr_check(n == 48 && memcmp(buf, sec(300), 48) == 0, "stdin: IN: %zd bytes", n);
	else
		cr_check(n > 0 && memcmp(buf, sec(300), (size_t)n) == 0 &&
			 (n == 48 || rcv_exact(0, buf + n, 48 - (size_t)n)) &&
			 memcmp(buf, sec(300), 48) == 0, "stdin: IN: %zd bytes or different", n);
	cr_check(send(0, "out", 3, MSG_NOSIGNAL) == 3 && rcv(28, buf, sizeof(buf)) == 3 &&
		 memcmp(buf, "out", 3) == 0, "stdin -> 28 broken");

	/* Still one connection: the dup'ed end and back. */
	cr_check(send(25, "live", 4, MSG_NOSIGNAL) == 4, "25: send: %m");
	n = rcv(21, buf, sizeof(buf));
	cr_check(n == 4 && memcmp(buf, "live", 4) == 0, "21: got %zd from 25", n);
	cr_check(send(21, "evil", 4, MSG_NOSIGNAL) == 4, "21: send: %m");
	n = rcv(20, buf, sizeof(buf));
	cr_check(n == 4 && memcmp(buf, "evil", 4) == 0, "20: got %zd from 21", n);
	cr_finish();
}
