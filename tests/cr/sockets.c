// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * sockets: TCP listeners and UDP sockets across the cut.
 *
 * Default: before ready it opens, at fixed numbers,
 *   20 TCP 0.0.0.0:auto  backlog 7,  REUSEADDR NODELAY KEEPALIVE KEEPIDLE=77, O_NONBLOCK, cloexec,
 *                        IP_TOS 0x10, TCP_DEFER_ACCEPT
 *   21 TCP 127.0.0.1:auto backlog 3, REUSEPORT, SO_RCVBUF set
 *   22 TCP [::]:auto     backlog 11, V6ONLY=0 (also reachable over IPv4)
 *   23 TCP [::1]:auto    backlog 5,  V6ONLY=1, SO_SNDBUF set
 *   24 UDP 127.0.0.1:auto SO_BROADCAST, IP_PKTINFO
 *   25 UDP [::]:auto     V6ONLY=1, O_NONBLOCK, IPV6_RECVPKTINFO
 *   26 TCP never bound (a socket the program has not used yet)
 * and draws a 64-byte secret (published for tamper) whose hash it keeps apart.
 * After go each socket must be the same kind, bound to the same address and
 * port, listening with the same backlog (TCP_INFO), with the same options and
 * descriptor flags; then a client connects to every listener (and sends a
 * datagram to every UDP socket), the program accepts (receives) and answers
 * hash(secret) ^ port, which the client compares with the pre-checkpoint hash.
 * The never-bound socket connects to the 127.0.0.1 listener.
 * Before ready, three datagrams of different sizes are queued on each UDP
 * socket from a sender socket that is closed at once; after go each UDP
 * socket must receive them first, in order, byte for byte, from the
 * sender's address and port.
 *
 * "peer": holds an established TCP connection (both ends) and a connected UDP
 * socket: the checkpoint must fail (harness mode failckpt) and leave them
 * working. With CR_CONTROL=1 it holds a listener only, which must checkpoint.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cr.h"

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif

struct spec {
	int fd, family, type;
	const char *ip;
	int backlog;		/* -1: not listening */
	bool reuseaddr, reuseport, nodelay, keepalive, v6only, broadcast, nonblock, cloexec;
	int keepidle, rcvbuf, sndbuf;
	int tos, defer_accept;		/* IP_TOS, TCP_DEFER_ACCEPT (0: left alone) */
	bool pktinfo;			/* IP_PKTINFO / IPV6_RECVPKTINFO */
	bool unbound;
	/* Recorded before ready. */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	int rcv_got, snd_got;
};

static struct spec specs[] = {
	{ .fd = 20, .family = AF_INET, .type = SOCK_STREAM, .ip = "0.0.0.0", .backlog = 7,
	  .reuseaddr = true, .nodelay = true, .keepalive = true, .keepidle = 77, .nonblock = true,
	  .cloexec = true, .tos = 0x10, .defer_accept = 5 },
	{ .fd = 21, .family = AF_INET, .type = SOCK_STREAM, .ip = "127.0.0.1", .backlog = 3,
	  .reuseport = true, .rcvbuf = 50000 },
	{ .fd = 22, .family = AF_INET6, .type = SOCK_STREAM, .ip = "::", .backlog = 11,
	  .cloexec = true },
	{ .fd = 23, .family = AF_INET6, .type = SOCK_STREAM, .ip = "::1", .backlog = 5,
	  .v6only = true, .sndbuf = 40000 },
	{ .fd = 24, .family = AF_INET, .type = SOCK_DGRAM, .ip = "127.0.0.1", .backlog = -1,
	  .broadcast = true, .cloexec = true, .pktinfo = true },
	{ .fd = 25, .family = AF_INET6, .type = SOCK_DGRAM, .ip = "::", .backlog = -1,
	  .v6only = true, .nonblock = true, .pktinfo = true },
	{ .fd = 26, .family = AF_INET, .type = SOCK_STREAM, .backlog = -1, .unbound = true },
};
#define NR_SPECS (sizeof(specs) / sizeof(specs[0]))

static uint64_t secret[8];

static uint64_t answer_of(const uint64_t *s)
{
	uint64_t h = 0x5eed;

	for (int i = 0; i < 8; i++)
		h = cr_mix64(h ^ s[i]);
	return h;
}

static int getint(int fd, int level, int opt)
{
	int v = -1;
	socklen_t l = sizeof(v);

	if (getsockopt(fd, level, opt, &v, &l) < 0)
		return -1;
	return v;
}

static void setint(int fd, int level, int opt, int v, const char *what)
{
	if (setsockopt(fd, level, opt, &v, sizeof(v)) < 0)
		cr_fail("setsockopt %s: %m", what);
}

static void make_addr(const struct spec *s, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (s->family == AF_INET) {
		struct sockaddr_in *a = (void *)ss;

		a->sin_family = AF_INET;
		inet_pton(AF_INET, s->ip, &a->sin_addr);
		*len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (void *)ss;

		a->sin6_family = AF_INET6;
		inet_pton(AF_INET6, s->ip, &a->sin6_addr);
		*len = sizeof(*a);
	}
}

static int port_of(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port) :
					  ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void open_spec(struct spec *s)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = socket(s->family, s->type, 0);

	if (fd < 0)
		cr_fail("socket: %m");
	if (s->family == AF_INET6)
		setint(fd, IPPROTO_IPV6, IPV6_V6ONLY, s->v6only, "V6ONLY");
	if (s->reuseaddr)
		setint(fd, SOL_SOCKET, SO_REUSEADDR, 1, "REUSEADDR");
	if (s->reuseport)
		setint(fd, SOL_SOCKET, SO_REUSEPORT, 1, "REUSEPORT");
	if (s->broadcast)
		setint(fd, SOL_SOCKET, SO_BROADCAST, 1, "BROADCAST");
	if (s->keepalive)
		setint(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "KEEPALIVE");
	if (s->nodelay)
		setint(fd, IPPROTO_TCP, TCP_NODELAY, 1, "NODELAY");
	if (s->keepidle)
		setint(fd, IPPROTO_TCP, TCP_KEEPIDLE, s->keepidle, "KEEPIDLE");
	if (s->rcvbuf)
		setint(fd, SOL_SOCKET, SO_RCVBUF, s->rcvbuf, "RCVBUF");
	if (s->sndbuf)
		setint(fd, SOL_SOCKET, SO_SNDBUF, s->sndbuf, "SNDBUF");
	if (s->tos)
		setint(fd, IPPROTO_IP, IP_TOS, s->tos, "IP_TOS");
	if (s->defer_accept)
		setint(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, s->defer_accept, "DEFER_ACCEPT");
	if (s->pktinfo)
		setint(fd, s->family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6,
		       s->family == AF_INET ? IP_PKTINFO : IPV6_RECVPKTINFO, 1, "PKTINFO");
	if (!s->unbound) {
		make_addr(s, &ss, &len);
		if (bind(fd, (struct sockaddr *)&ss, len) < 0)
			cr_fail("bind %s: %m", s->ip);
	}
	if (s->backlog >= 0 && listen(fd, s->backlog) < 0)
		cr_fail("listen: %m");
	if (s->nonblock && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		cr_fail("O_NONBLOCK: %m");
	if (dup3(fd, s->fd, s->cloexec ? O_CLOEXEC : 0) < 0)
		cr_fail("dup3: %m");
	close(fd);
	s->addr_len = sizeof(s->addr);
	if (getsockname(s->fd, (struct sockaddr *)&s->addr, &s->addr_len) < 0)
		cr_fail("getsockname: %m");
	s->rcv_got = getint(s->fd, SOL_SOCKET, SO_RCVBUF);
	s->snd_got = getint(s->fd, SOL_SOCKET, SO_SNDBUF);
}

static void check_spec(const struct spec *s)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fl = fcntl(s->fd, F_GETFL), fdf = fcntl(s->fd, F_GETFD);
	int fd = s->fd;

	if (fl < 0) {
		cr_check(false, "fd %d is not open", fd);
		return;
	}
	cr_check(getint(fd, SOL_SOCKET, SO_DOMAIN) == s->family, "fd %d: family %d", fd,
		 getint(fd, SOL_SOCKET, SO_DOMAIN));
	cr_check(getint(fd, SOL_SOCKET, SO_TYPE) == s->type, "fd %d: type %d", fd,
		 getint(fd, SOL_SOCKET, SO_TYPE));
	cr_check(getsockname(fd, (struct sockaddr *)&ss, &len) == 0 && len == s->addr_len &&
		 !memcmp(&ss, &s->addr, len), "fd %d: bound to another address (port %d, was %d)",
		 fd, port_of(&ss), port_of(&s->addr));
	cr_check(getint(fd, SOL_SOCKET, SO_ACCEPTCONN) == (s->backlog >= 0),
		 "fd %d: SO_ACCEPTCONN %d", fd, getint(fd, SOL_SOCKET, SO_ACCEPTCONN));
	if (s->backlog >= 0) {
		struct tcp_info ti = {};
		socklen_t tl = sizeof(ti);

		cr_check(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 &&
			 ti.tcpi_state == TCP_LISTEN && (int)ti.tcpi_sacked == s->backlog,
			 "fd %d: state %u backlog %u, expected LISTEN backlog %d", fd,
			 ti.tcpi_state, ti.tcpi_sacked, s->backlog);
	}
	cr_check(!!getint(fd, SOL_SOCKET, SO_REUSEADDR) == s->reuseaddr, "fd %d: SO_REUSEADDR", fd);
	cr_check(!!getint(fd, SOL_SOCKET, SO_REUSEPORT) == s->reuseport, "fd %d: SO_REUSEPORT", fd);
	cr_check(!!getint(fd, SOL_SOCKET, SO_KEEPALIVE) == s->keepalive, "fd %d: SO_KEEPALIVE", fd);
	cr_check(!!getint(fd, SOL_SOCKET, SO_BROADCAST) == s->broadcast, "fd %d: SO_BROADCAST", fd);
	if (s->family == AF_INET6)
		cr_check(!!getint(fd, IPPROTO_IPV6, IPV6_V6ONLY) == s->v6only, "fd %d: V6ONLY", fd);
	if (s->type == SOCK_STREAM) {
		cr_check(!!getint(fd, IPPROTO_TCP, TCP_NODELAY) == s->nodelay, "fd %d: NODELAY", fd);
		if (s->keepidle)
			cr_check(getint(fd, IPPROTO_TCP, TCP_KEEPIDLE) == s->keepidle,
				 "fd %d: KEEPIDLE %d", fd, getint(fd, IPPROTO_TCP, TCP_KEEPIDLE));
	}
	if (s->rcvbuf)
		cr_check(getint(fd, SOL_SOCKET, SO_RCVBUF) == s->rcv_got, "fd %d: SO_RCVBUF %d, was %d",
			 fd, getint(fd, SOL_SOCKET, SO_RCVBUF), s->rcv_got);
	if (s->sndbuf)
		cr_check(getint(fd, SOL_SOCKET, SO_SNDBUF) == s->snd_got, "fd %d: SO_SNDBUF %d, was %d",
			 fd, getint(fd, SOL_SOCKET, SO_SNDBUF), s->snd_got);
	cr_check(!!(getint(fd, SOL_SOCKET, SO_BUF_LOCK) & 2) == !!s->rcvbuf &&
		 !!(getint(fd, SOL_SOCKET, SO_BUF_LOCK) & 1) == !!s->sndbuf,
		 "fd %d: SO_BUF_LOCK %d", fd, getint(fd, SOL_SOCKET, SO_BUF_LOCK));
	if (s->family == AF_INET)
		cr_check(getint(fd, IPPROTO_IP, IP_TOS) == s->tos, "fd %d: IP_TOS %#x", fd,
			 getint(fd, IPPROTO_IP, IP_TOS));
	if (s->type == SOCK_STREAM)
		cr_check(!!getint(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT) == !!s->defer_accept,
			 "fd %d: TCP_DEFER_ACCEPT %d", fd, getint(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT));
	if (s->type == SOCK_DGRAM)
		cr_check(!!getint(fd, s->family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6,
				  s->family == AF_INET ? IP_PKTINFO : IPV6_RECVPKTINFO) == s->pktinfo,
			 "fd %d: PKTINFO", fd);
	cr_check(!!(fl & O_NONBLOCK) == s->nonblock, "fd %d: O_NONBLOCK %d", fd, !!(fl & O_NONBLOCK));
	cr_check(!!(fdf & FD_CLOEXEC) == s->cloexec, "fd %d: FD_CLOEXEC %d", fd, !!(fdf & FD_CLOEXEC));
}

static bool wait_in(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 5000) == 1;
}

/* Connect a client to @s at @ip (a literal of @family), serve it, check the answer. */
static void serve_tcp(const struct spec *s, int family, const char *ip, uint64_t expect)
{
	struct spec to = { .family = family, .ip = ip };
	struct sockaddr_storage ss;
	socklen_t len;
	uint64_t ans = 0, got = 0;
	int c, a;

	make_addr(&to, &ss, &len);
	if (family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons(port_of(&s->addr));
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port_of(&s->addr));
	c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&ss, len) < 0) {
		cr_check(false, "fd %d: connect to %s port %d: %m", s->fd, ip, port_of(&s->addr));
		goto out;
	}
	/* The request: a TCP_DEFER_ACCEPT listener accepts once data came. */
	if (write(c, "q", 1) != 1) {
		cr_check(false, "fd %d: request: %m", s->fd);
		goto out;
	}
	if (!wait_in(s->fd) || (a = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
		cr_check(false, "fd %d: accept: %m", s->fd);
		goto out;
	}
	ans = answer_of(secret) ^ (uint64_t)port_of(&s->addr);
	if (write(a, &ans, sizeof(ans)) != sizeof(ans))
		cr_check(false, "fd %d: answer: %m", s->fd);
	close(a);
	cr_check(wait_in(c) && read(c, &got, sizeof(got)) == sizeof(got) &&
		 got == (expect ^ (uint64_t)port_of(&s->addr)),
		 "fd %d via %s: answer %#llx, expected %#llx", s->fd, ip, (unsigned long long)got,
		 (unsigned long long)(expect ^ (uint64_t)port_of(&s->addr)));
out:
	if (c >= 0)
		close(c);
}

static void serve_udp(const struct spec *s, int family, const char *ip, uint64_t expect)
{
	struct spec to = { .family = family, .ip = ip };
	struct sockaddr_storage ss, from;
	socklen_t len, fl = sizeof(from);
	uint64_t ans, got = 0;
	char q[8];
	int c;

	make_addr(&to, &ss, &len);
	if (family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons(port_of(&s->addr));
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port_of(&s->addr));
	c = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (c < 0 || sendto(c, "q", 1, 0, (struct sockaddr *)&ss, len) != 1) {
		cr_check(false, "fd %d: sendto %s: %m", s->fd, ip);
		goto out;
	}
	if (!wait_in(s->fd) || recvfrom(s->fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl) != 1) {
		cr_check(false, "fd %d: no datagram: %m", s->fd);
		goto out;
	}
	ans = answer_of(secret) ^ (uint64_t)port_of(&s->addr);
	if (sendto(s->fd, &ans, sizeof(ans), 0, (struct sockaddr *)&from, fl) != sizeof(ans))
		cr_check(false, "fd %d: answer: %m", s->fd);
	cr_check(wait_in(c) && recv(c, &got, sizeof(got), 0) == sizeof(got) &&
		 got == (expect ^ (uint64_t)port_of(&s->addr)),
		 "fd %d via %s: answer %#llx", s->fd, ip, (unsigned long long)got);
out:
	if (c >= 0)
		close(c);
}

static int peer_mode(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l, c, s, u;
	char b = 0;

	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) < 0)
		cr_fail("listener: %m");
	if (getenv("CR_CONTROL")) {
		/* The harness's control run: a listener only, which checkpoints. */
		cr_ready();
		cr_wait();
		cr_finish();
	}
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    (s = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0)
		cr_fail("connection: %m");
	u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (u < 0 || connect(u, (struct sockaddr *)&a, sizeof(a)) < 0)
		cr_fail("udp: %m");
	cr_ready_tamper(&a, sizeof(a));
	cr_wait();
	cr_check(write(c, "x", 1) == 1 && wait_in(s) && read(s, &b, 1) == 1 && b == 'x',
		 "established connection lost (client to server)");
	cr_check(write(s, "y", 1) == 1 && wait_in(c) && read(c, &b, 1) == 1 && b == 'y',
		 "established connection lost (server to client)");
	{
		struct sockaddr_in p;
		socklen_t pl = sizeof(p);

		cr_check(getpeername(u, (struct sockaddr *)&p, &pl) == 0 && p.sin_port == a.sin_port &&
			 p.sin_addr.s_addr == a.sin_addr.s_addr, "UDP socket no longer connected");
	}
	cr_check_ids();
	cr_finish();
}

/* Queued datagrams: sent before ready, checked after go. */
static const char *const queued[] = { "one", "two-22", "three-333-\0-binary" };
static const size_t queued_len[] = { 3, 6, 20 };
static struct sockaddr_storage queued_from[2];

static void queue_udp(const struct spec *s, int family, const char *ip, int k)
{
	struct sockaddr_storage to = { 0 };
	socklen_t fl = sizeof(queued_from[k]);
	int c = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (c < 0)
		cr_fail("udp sender: %m");
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&to;

		a->sin_family = AF_INET;
		a->sin_port = htons(port_of(&s->addr));
		inet_pton(AF_INET, ip, &a->sin_addr);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&to;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port_of(&s->addr));
		inet_pton(AF_INET6, ip, &a->sin6_addr);
	}
	for (size_t i = 0; i < 3; i++)
		if (sendto(c, queued[i], queued_len[i], 0, (struct sockaddr *)&to,
			   family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) !=
		    (ssize_t)queued_len[i])
			cr_fail("udp: queue datagram %zu: %m", i);
	if (getsockname(c, (struct sockaddr *)&queued_from[k], &fl) < 0)
		cr_fail("udp sender: getsockname: %m");
	close(c);
}

static void check_queue(int fd, int k)
{
	for (size_t i = 0; i < 3; i++) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		char buf[64];
		ssize_t n = -1;

		if (wait_in(fd))
			n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		cr_check(n == (ssize_t)queued_len[i] && !memcmp(buf, queued[i], queued_len[i]),
			 "fd %d: queued datagram %zu lost or changed (%zd bytes)", fd, i, n);
		cr_check(n < 0 || port_of(&from) == port_of(&queued_from[k]),
			 "fd %d: queued datagram %zu from port %d, sent from %d", fd, i,
			 port_of(&from), port_of(&queued_from[k]));
	}
}

int main(int argc, char **argv)
{
	uint64_t expect;

	cr_init(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "peer"))
		return peer_mode();
	if (getrandom(secret, sizeof(secret), 0) != sizeof(secret))
		cr_fail("getrandom: %m");
	expect = answer_of(secret);
	for (size_t i = 0; i < NR_SPECS; i++)
		open_spec(&specs[i]);
	queue_udp(&specs[4], AF_INET, "127.0.0.1", 0);
	queue_udp(&specs[5], AF_INET6, "::1", 1);
	cr_ready_tamper(secret, sizeof(secret));
	cr_wait();
	check_queue(24, 0);
	check_queue(25, 1);

	for (size_t i = 0; i < NR_SPECS; i++)
		check_spec(&specs[i]);
	serve_tcp(&specs[0], AF_INET, "127.0.0.1", expect);
	serve_tcp(&specs[1], AF_INET, "127.0.0.1", expect);
	serve_tcp(&specs[2], AF_INET6, "::1", expect);
	serve_tcp(&specs[2], AF_INET, "127.0.0.1", expect);	/* V6ONLY=0: v4-mapped */
	serve_tcp(&specs[3], AF_INET6, "::1", expect);
	serve_udp(&specs[4], AF_INET, "127.0.0.1", expect);
	serve_udp(&specs[5], AF_INET6, "::1", expect);
	{
		/* The never-bound socket is still usable: connect it. */
		struct sockaddr_in to = { .sin_family = AF_INET,
					  .sin_port = htons(port_of(&specs[1].addr)),
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int a;

		cr_check(connect(26, (struct sockaddr *)&to, sizeof(to)) == 0,
			 "never-bound socket: connect: %m");
		a = wait_in(21) ? accept4(21, NULL, NULL, SOCK_CLOEXEC) : -1;
		cr_check(a >= 0, "never-bound socket: not accepted");
		if (a >= 0)
			close(a);
	}
	cr_check_ids();
	cr_finish();
}
