// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * unix-dgram: unix datagram sockets across the cut, with datagrams queued
 * (boundaries, empty datagrams, order and senders' names kept).
 *
 * Before ready, at fixed numbers:
 *   20/21  a dgram socketpair: 20 sent D0..D5 (1, 0, 300, 4096, 17 and
 *          60000 bytes) to 21, 21 sent E0 E1 (5, 9) to 20; 21 SO_RCVBUF set.
 *   22     a "server" bound to $CR_DIR/srv.sock, O_NONBLOCK.
 *   23     a client bound to $CR_DIR/cli.sock and connected to 22; it sent F0
 *          (33) and, after G0, F1 (44); 22 sent H0 (21) to cli.sock.
 *   24     unbound, unconnected: sent G0 (55) to srv.sock with sendto.
 *   25     bound to an abstract name, nothing queued.
 *   26     bound to the relative path "rel.d" (cwd: $CR_DIR); 24 sent it R0 (12).
 * Payloads are slices of a secret published for tamper.
 * After go: every queue holds exactly its datagrams in order, with their
 * lengths; 22 sees F0 and F1 from cli.sock and G0 from an unnamed sender;
 * 23 sees H0 from srv.sock; names and the connection of 23 are kept (a
 * datagram from 23 reaches 22, a reply to cli.sock reaches 23), the pair
 * still works both ways, the abstract name is bound again, 26 gets R0 and
 * is bound to "rel.d" again.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cr.h"

static unsigned char secret[65536 + 4096];
static const size_t dsz[] = { 1, 0, 300, 4096, 17, 60000 };
static struct sockaddr_un srv, cli, abs_name;
static socklen_t srv_len, cli_len, abs_len;

static socklen_t path_addr(struct sockaddr_un *sa, const char *name)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if ((size_t)snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", cr_dir(), name) >=
	    sizeof(sa->sun_path))
		cr_skip("$CR_DIR too long for a unix socket path");
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(sa->sun_path) + 1);
}

static int sock_at(int fd)
{
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0 || dup3(s, fd, O_CLOEXEC) < 0)
		cr_fail("socket: %m");
	close(s);
	return fd;
}

static void xsendto(int fd, const void *p, size_t len, const struct sockaddr_un *to,
		    socklen_t tl, const char *what)
{
	if (sendto(fd, p, len, 0, (const struct sockaddr *)to, to ? tl : 0) != (ssize_t)len)
		cr_fail("send %s: %m", what);
}

static ssize_t rcv(int fd, void *buf, size_t len, struct sockaddr_un *from, socklen_t *fl)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 2000) <= 0)
		return -2;
	if (from)
		*fl = sizeof(*from);
	return recvfrom(fd, buf, len, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)from, fl);
}

static bool same_name(const struct sockaddr_un *a, socklen_t al, const struct sockaddr_un *b,
		      socklen_t bl)
{
	return al == bl && memcmp(a, b, al) == 0;
}

static bool queue_empty(int fd)
{
	char c;

	return recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) < 0 && errno == EAGAIN;
}

int main(int argc, char **argv)
{
	static unsigned char buf[70000];
	struct sockaddr_un from, got;
	socklen_t fl, gl;
	size_t off = 0;
	int sp[2], rcvbuf_before;
	ssize_t n;

	cr_init(argc, argv);
	if (getrandom(secret, sizeof(secret), 0) != sizeof(secret))
		cr_fail("getrandom: %m");
	srv_len = path_addr(&srv, "srv.sock");
	cli_len = path_addr(&cli, "cli.sock");
	memset(&abs_name, 0, sizeof(abs_name));
	abs_name.sun_family = AF_UNIX;
	abs_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			      (size_t)snprintf(abs_name.sun_path + 1, sizeof(abs_name.sun_path) - 1,
					       "cr-unix-dgram-%d", getpid()));

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp) < 0 ||
	    dup3(sp[0], 20, O_CLOEXEC) < 0 || dup3(sp[1], 21, O_CLOEXEC) < 0)
		cr_fail("socketpair: %m");
	close(sp[0]);
	close(sp[1]);
	if (setsockopt(21, SOL_SOCKET, SO_RCVBUF, &(int){ 300000 }, sizeof(int)) < 0 ||
	    setsockopt(20, SOL_SOCKET, SO_SNDBUF, &(int){ 300000 }, sizeof(int)) < 0)
		cr_fail("setsockopt: %m");
	{
		socklen_t l = sizeof(rcvbuf_before);

		getsockopt(21, SOL_SOCKET, SO_RCVBUF, &rcvbuf_before, &l);
	}
	for (size_t i = 0; i < 6; i++) {
		xsendto(20, secret + off, dsz[i], NULL, 0, "D");
		off += dsz[i];
	}
	xsendto(21, secret + 1000, 5, NULL, 0, "E0");
	xsendto(21, secret + 2000, 9, NULL, 0, "E1");

	sock_at(22);
	if (bind(22, (struct sockaddr *)&srv, srv_len) < 0 || fcntl(22, F_SETFL, O_NONBLOCK) < 0)
		cr_fail("bind srv: %m");
	sock_at(23);
	if (bind(23, (struct sockaddr *)&cli, cli_len) < 0 ||
	    connect(23, (struct sockaddr *)&srv, srv_len) < 0)
		cr_fail("client: %m");
	sock_at(24);
	sock_at(25);
	if (bind(25, (struct sockaddr *)&abs_name, abs_len) < 0)
		cr_fail("bind abstract: %m");
	xsendto(23, secret + 3000, 33, NULL, 0, "F0");
	xsendto(24, secret + 4000, 55, &srv, srv_len, "G0");
	xsendto(23, secret + 5000, 44, NULL, 0, "F1");
	xsendto(22, secret + 6000, 21, &cli, cli_len, "H0");
	{
		struct sockaddr_un rel = { .sun_family = AF_UNIX, .sun_path = "rel.d" };
		socklen_t rl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + sizeof("rel.d"));

		if (chdir(cr_dir()) < 0)
			cr_fail("chdir: %m");
		sock_at(26);
		if (bind(26, (struct sockaddr *)&rel, rl) < 0)
			cr_fail("bind rel.d: %m");
		xsendto(24, secret + 7000, 12, &rel, rl, "R0");
	}

	cr_ready_tamper(secret, 8192);
	cr_wait();

	/* The pair's queues: boundaries, empty datagram, order. */
	off = 0;
	for (size_t i = 0; i < 6; i++) {
		n = rcv(21, buf, sizeof(buf), NULL, NULL);
		cr_check(n == (ssize_t)dsz[i] && memcmp(buf, secret + off, dsz[i]) == 0,
			 "21: D%zu: %zd bytes (want %zu) or different", i, n, dsz[i]);
		off += dsz[i];
	}
	cr_check(queue_empty(21), "21: more than D0..D5 queued");
	n = rcv(20, buf, sizeof(buf), NULL, NULL);
	cr_check(n == 5 && memcmp(buf, secret + 1000, 5) == 0, "20: E0: %zd bytes", n);
	n = rcv(20, buf, sizeof(buf), NULL, NULL);
	cr_check(n == 9 && memcmp(buf, secret + 2000, 9) == 0, "20: E1: %zd bytes", n);
	cr_check(queue_empty(20), "20: more than E0 E1 queued");
	{
		int v = 0;
		socklen_t l = sizeof(v);

		getsockopt(21, SOL_SOCKET, SO_RCVBUF, &v, &l);
		cr_check(v == rcvbuf_before, "21: SO_RCVBUF %d, was %d", v, rcvbuf_before);
	}

	/* The server's queue with its senders. */
	n = rcv(22, buf, sizeof(buf), &from, &fl);
	cr_check(n == 33 && memcmp(buf, secret + 3000, 33) == 0, "22: F0: %zd bytes", n);
	cr_check(n < 0 || same_name(&from, fl, &cli, cli_len), "22: F0 not from cli.sock");
	n = rcv(22, buf, sizeof(buf), &from, &fl);
	cr_check(n == 55 && memcmp(buf, secret + 4000, 55) == 0, "22: G0: %zd bytes", n);
	cr_check(n < 0 || fl <= sizeof(sa_family_t), "22: G0 from a named sender (len %u)", fl);
	n = rcv(22, buf, sizeof(buf), &from, &fl);
	cr_check(n == 44 && memcmp(buf, secret + 5000, 44) == 0, "22: F1: %zd bytes", n);
	cr_check(n < 0 || same_name(&from, fl, &cli, cli_len), "22: F1 not from cli.sock");
	cr_check(queue_empty(22), "22: more than F0 G0 F1 queued");
	n = rcv(23, buf, sizeof(buf), &from, &fl);
	cr_check(n == 21 && memcmp(buf, secret + 6000, 21) == 0, "23: H0: %zd bytes", n);
	cr_check(n < 0 || same_name(&from, fl, &srv, srv_len), "23: H0 not from srv.sock");
	cr_check(queue_empty(23), "23: more than H0 queued");
	cr_check(fcntl(22, F_GETFL) & O_NONBLOCK, "22: O_NONBLOCK lost");

	/* Names and the connection. */
	gl = sizeof(got);
	cr_check(getsockname(22, (struct sockaddr *)&got, &gl) == 0 && same_name(&got, gl, &srv, srv_len),
		 "22: not bound to srv.sock");
	gl = sizeof(got);
	cr_check(getsockname(23, (struct sockaddr *)&got, &gl) == 0 && same_name(&got, gl, &cli, cli_len),
		 "23: not bound to cli.sock");
	gl = sizeof(got);
	cr_check(getpeername(23, (struct sockaddr *)&got, &gl) == 0 && same_name(&got, gl, &srv, srv_len),
		 "23: not connected to srv.sock");
	gl = sizeof(got);
	cr_check(getsockname(25, (struct sockaddr *)&got, &gl) == 0 &&
		 same_name(&got, gl, &abs_name, abs_len), "25: abstract name lost");
	cr_check(send(23, "ping", 4, 0) == 4, "23: send: %m");
	n = rcv(22, buf, sizeof(buf), &from, &fl);
	cr_check(n == 4 && memcmp(buf, "ping", 4) == 0 && same_name(&from, fl, &cli, cli_len),
		 "22: ping from 23: %zd", n);
	cr_check(sendto(22, "pong", 4, 0, (struct sockaddr *)&cli, cli_len) == 4, "22: sendto: %m");
	n = rcv(23, buf, sizeof(buf), NULL, NULL);
	cr_check(n == 4 && memcmp(buf, "pong", 4) == 0, "23: pong: %zd", n);
	cr_check(sendto(24, "abs", 3, 0, (struct sockaddr *)&abs_name, abs_len) == 3, "24 -> 25: %m");
	n = rcv(25, buf, sizeof(buf), NULL, NULL);
	cr_check(n == 3, "25: %zd from 24", n);
	{
		struct sockaddr_un rel = { .sun_family = AF_UNIX, .sun_path = "rel.d" };
		socklen_t rl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + sizeof("rel.d"));

		n = rcv(26, buf, sizeof(buf), NULL, NULL);
		cr_check(n == 12 && memcmp(buf, secret + 7000, 12) == 0, "26: R0: %zd bytes", n);
		gl = sizeof(got);
		cr_check(getsockname(26, (struct sockaddr *)&got, &gl) == 0 && same_name(&got, gl, &rel, rl),
			 "26: not bound to rel.d");
		cr_check(sendto(24, "r", 1, 0, (struct sockaddr *)&rel, rl) == 1 &&
			 rcv(26, buf, sizeof(buf), NULL, NULL) == 1, "24 -> rel.d broken");
	}
	cr_check(send(20, "x", 1, 0) == 1 && rcv(21, buf, sizeof(buf), NULL, NULL) == 1,
		 "20 -> 21 broken");
	cr_check(send(21, "yz", 2, 0) == 2 && rcv(20, buf, sizeof(buf), NULL, NULL) == 2,
		 "21 -> 20 broken");
	cr_finish();
}
