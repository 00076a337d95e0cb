// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Sockets without a peer: TCP listening (or not yet connected) and UDP
 * sockets, IPv4 and IPv6. The frozen process's socket is duplicated into
 * our descriptor table with pidfd_getfd(2) (we are its tracer: the ptrace
 * access check passes) and inspected with getsockopt/getsockname; nothing
 * in the process changes. The restore re-creates it (engine/restore/sockets.c).
 *
 * Refused, with one line naming pid, fd and what the socket is: unix,
 * netlink, packet and raw sockets, a TCP socket in any state but LISTEN or
 * CLOSE, any socket with a peer (established TCP, connected UDP).
 * Queued connections and datagrams are not saved (docs/engine-dump.md).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "dump.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif

static const char *const tcp_states[] = {
	[TCP_ESTABLISHED] = "established", [TCP_SYN_SENT] = "connecting (SYN sent)",
	[TCP_SYN_RECV] = "SYN received", [TCP_FIN_WAIT1] = "FIN-WAIT-1",
	[TCP_FIN_WAIT2] = "FIN-WAIT-2", [TCP_TIME_WAIT] = "TIME-WAIT", [TCP_CLOSE] = "closed",
	[TCP_CLOSE_WAIT] = "CLOSE-WAIT", [TCP_LAST_ACK] = "LAST-ACK", [TCP_LISTEN] = "listening",
	[TCP_CLOSING] = "closing",
};

/* "1.2.3.4:80" / "[::1]:80" into @buf. */
const char *eng_dump_sockaddr_str(const void *sa, size_t len, char *buf, size_t size)
{
	const struct sockaddr_in *a4 = sa;
	const struct sockaddr_in6 *a6 = sa;
	char ip[INET6_ADDRSTRLEN];

	if (len >= sizeof(*a4) && a4->sin_family == AF_INET) {
		inet_ntop(AF_INET, &a4->sin_addr, ip, sizeof(ip));
		snprintf(buf, size, "%s:%u", ip, ntohs(a4->sin_port));
	} else if (len >= sizeof(*a6) && a6->sin6_family == AF_INET6) {
		inet_ntop(AF_INET6, &a6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, size, "[%s]:%u", ip, ntohs(a6->sin6_port));
	} else {
		snprintf(buf, size, "(address family %u)", len >= 2 ? a4->sin_family : 0);
	}
	return buf;
}

static const char *family_name(int family, int type, char *buf, size_t size)
{
	switch (family) {
	case AF_UNIX:
		return type == SOCK_DGRAM ? "unix datagram socket" :
		       type == SOCK_SEQPACKET ? "unix seqpacket socket" : "unix stream socket";
	case AF_NETLINK:
		return "netlink socket";
	case AF_PACKET:
		return "packet socket";
	case AF_INET:
	case AF_INET6:
		snprintf(buf, size, "%s socket of type %d", family == AF_INET ? "IPv4" : "IPv6",
			 type);
		return buf;
	default:
		snprintf(buf, size, "socket of family %d", family);
		return buf;
	}
}

static int get_int(int fd, int level, int opt, int *ret)
{
	socklen_t len = sizeof(*ret);

	*ret = 0;
	if (getsockopt(fd, level, opt, ret, &len) < 0)
		return -errno;
	return 0;
}

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/*
 * Integer options saved as eng_sockopt, beyond the named fields: family 0
 * applies to both, protocol 0 to both. A value the kernel resolves when
 * unset (IPV6_UNICAST_HOPS -1 reads as 64) reads the same on a fresh socket,
 * and restore only sets what differs from a fresh socket.
 */
static const struct sockopt_desc {
	int family, protocol, level, name;
} saved_opts[] = {
	{ 0, 0, SOL_SOCKET, SO_PRIORITY },
	{ 0, 0, SOL_SOCKET, SO_MARK },
	{ 0, 0, SOL_SOCKET, SO_RCVLOWAT },
	{ 0, 0, SOL_SOCKET, SO_OOBINLINE },
	{ 0, 0, SOL_SOCKET, SO_DONTROUTE },
	{ 0, 0, SOL_SOCKET, SO_TIMESTAMP },
	{ 0, 0, SOL_SOCKET, SO_TIMESTAMPNS },
	{ 0, 0, SOL_SOCKET, SO_RXQ_OVFL },
	{ AF_INET, 0, IPPROTO_IP, IP_TOS },
	{ AF_INET, 0, IPPROTO_IP, IP_TTL },
	{ AF_INET, 0, IPPROTO_IP, IP_MTU_DISCOVER },
	{ AF_INET, 0, IPPROTO_IP, IP_RECVERR },
	{ AF_INET, 0, IPPROTO_IP, IP_TRANSPARENT },
	{ AF_INET, 0, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT },
	{ AF_INET, IPPROTO_UDP, IPPROTO_IP, IP_PKTINFO },
	{ AF_INET, IPPROTO_UDP, IPPROTO_IP, IP_RECVTTL },
	{ AF_INET, IPPROTO_UDP, IPPROTO_IP, IP_RECVTOS },
	{ AF_INET, IPPROTO_UDP, IPPROTO_IP, IP_RECVORIGDSTADDR },
	{ AF_INET, IPPROTO_UDP, IPPROTO_IP, IP_MULTICAST_TTL },
	{ AF_INET, IPPROTO_UDP, IPPROTO_IP, IP_MULTICAST_LOOP },
	{ AF_INET6, 0, IPPROTO_IPV6, IPV6_UNICAST_HOPS },
	{ AF_INET6, 0, IPPROTO_IPV6, IPV6_TCLASS },
	{ AF_INET6, 0, IPPROTO_IPV6, IPV6_MTU_DISCOVER },
	{ AF_INET6, 0, IPPROTO_IPV6, IPV6_RECVERR },
	{ AF_INET6, 0, IPPROTO_IPV6, IPV6_TRANSPARENT },
	{ AF_INET6, 0, IPPROTO_IPV6, IPV6_FREEBIND },
	{ AF_INET6, IPPROTO_UDP, IPPROTO_IPV6, IPV6_RECVPKTINFO },
	{ AF_INET6, IPPROTO_UDP, IPPROTO_IPV6, IPV6_RECVHOPLIMIT },
	{ AF_INET6, IPPROTO_UDP, IPPROTO_IPV6, IPV6_RECVTCLASS },
	{ AF_INET6, IPPROTO_UDP, IPPROTO_IPV6, IPV6_MULTICAST_HOPS },
	{ AF_INET6, IPPROTO_UDP, IPPROTO_IPV6, IPV6_MULTICAST_LOOP },
	{ 0, IPPROTO_TCP, IPPROTO_TCP, TCP_MAXSEG },
	{ 0, IPPROTO_TCP, IPPROTO_TCP, TCP_DEFER_ACCEPT },
	{ 0, IPPROTO_TCP, IPPROTO_TCP, TCP_FASTOPEN },
	{ 0, IPPROTO_TCP, IPPROTO_TCP, TCP_USER_TIMEOUT },
	{ 0, IPPROTO_TCP, IPPROTO_TCP, TCP_NOTSENT_LOWAT },
	{ 0, IPPROTO_TCP, IPPROTO_TCP, TCP_SYNCNT },
	{ 0, IPPROTO_TCP, IPPROTO_TCP, TCP_LINGER2 },
	{ 0, IPPROTO_TCP, IPPROTO_TCP, TCP_WINDOW_CLAMP },
};

static int save_opts(int sk, int family, int proto, EngSocket *s)
{
	s->opts = calloc(ARRAY_SIZE(saved_opts), sizeof(*s->opts));
	if (!s->opts)
		return -ENOMEM;
	for (size_t i = 0; i < ARRAY_SIZE(saved_opts); i++) {
		const struct sockopt_desc *d = &saved_opts[i];
		EngSockopt *o;
		int v;

		if ((d->family && d->family != family) || (d->protocol && d->protocol != proto))
			continue;
		if (get_int(sk, d->level, d->name, &v) < 0)
			continue;	/* not readable on this kernel: nothing to keep */
		o = malloc(sizeof(*o));
		if (!o)
			return -ENOMEM;
		eng_sockopt__init(o);
		o->level = d->level;
		o->name = d->name;
		o->value = v;
		s->opts[s->n_opts++] = o;
	}
	return 0;
}

#define REFUSE(ctx, fd, link, fmt, ...)                                                        \
	err_set(EOPNOTSUPP, "process %d fd %d: unsupported descriptor (" fmt ") \"%s\"",       \
		(ctx)->pid, (fd), ##__VA_ARGS__, (link))

int eng_dump_socket(struct eng_dump_ctx *ctx, int fd, const char *link, EngSocket **ret)
{
	_cleanup_close_ int pidfd = -1, sk = -1;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char abuf[INET6_ADDRSTRLEN + 16], tbuf[64], dev[IFNAMSIZ + 1];
	int family, type, proto, v;
	EngSocket *s;

	pidfd = (int)syscall(SYS_pidfd_open, ctx->pid, 0);
	if (pidfd < 0)
		return err_wrap(-errno, "process %d: pidfd_open", ctx->pid);
	sk = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	if (sk < 0)
		return err_wrap(-errno, "process %d fd %d: pidfd_getfd", ctx->pid, fd);
	if (get_int(sk, SOL_SOCKET, SO_DOMAIN, &family) < 0 ||
	    get_int(sk, SOL_SOCKET, SO_TYPE, &type) < 0 ||
	    get_int(sk, SOL_SOCKET, SO_PROTOCOL, &proto) < 0)
		return err_wrap(-errno, "process %d fd %d: cannot inspect the socket", ctx->pid, fd);
	if (family != AF_INET && family != AF_INET6)
		return REFUSE(ctx, fd, link, "%s", family_name(family, type, tbuf, sizeof(tbuf)));
	if (!(type == SOCK_STREAM && proto == IPPROTO_TCP) &&
	    !(type == SOCK_DGRAM && proto == IPPROTO_UDP))
		return REFUSE(ctx, fd, link, "%s socket, type %d protocol %d",
			      family == AF_INET ? "IPv4" : "IPv6", type, proto);
	if (getpeername(sk, (struct sockaddr *)&ss, &sl) == 0)
		return REFUSE(ctx, fd, link, "%s socket connected to %s", proto == IPPROTO_TCP ?
			      "TCP" : "UDP", eng_dump_sockaddr_str(&ss, sl, abuf, sizeof(abuf)));
	if (errno != ENOTCONN)
		return err_wrap(-errno, "process %d fd %d: getpeername", ctx->pid, fd);

	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	eng_socket__init(s);
	s->family = (uint32_t)family;
	s->type = (uint32_t)type;
	s->protocol = (uint32_t)proto;

	if (proto == IPPROTO_TCP) {
		struct tcp_info ti = {};
		socklen_t tl = sizeof(ti);

		if (getsockopt(sk, IPPROTO_TCP, TCP_INFO, &ti, &tl) < 0) {
			eng_socket__free_unpacked(s, NULL);
			return err_wrap(-errno, "process %d fd %d: TCP_INFO", ctx->pid, fd);
		}
		if (ti.tcpi_state != TCP_LISTEN && ti.tcpi_state != TCP_CLOSE) {
			eng_socket__free_unpacked(s, NULL);
			return REFUSE(ctx, fd, link, "TCP socket %s",
				      ti.tcpi_state < ARRAY_SIZE(tcp_states) &&
				      tcp_states[ti.tcpi_state] ? tcp_states[ti.tcpi_state] :
				      "in an unknown state");
		}
		if (ti.tcpi_state == TCP_LISTEN) {
			/* For a listener tcp_get_info() reports sk_max_ack_backlog
			 * (the backlog listen() kept) in tcpi_sacked. */
			s->has_backlog = true;
			s->backlog = ti.tcpi_sacked;
		}
	}

	sl = sizeof(ss);
	if (getsockname(sk, (struct sockaddr *)&ss, &sl) < 0) {
		eng_socket__free_unpacked(s, NULL);
		return err_wrap(-errno, "process %d fd %d: getsockname", ctx->pid, fd);
	}
	/* Port 0 means never bound (bind() to port 0 picks one). */
	if ((family == AF_INET && ((struct sockaddr_in *)&ss)->sin_port) ||
	    (family == AF_INET6 && ((struct sockaddr_in6 *)&ss)->sin6_port)) {
		s->addr.data = malloc(sl);
		if (!s->addr.data) {
			eng_socket__free_unpacked(s, NULL);
			return -ENOMEM;
		}
		memcpy(s->addr.data, &ss, sl);
		s->addr.len = sl;
		s->has_addr = true;
	}

#define BOOL_OPT(level, opt, field)                                                            \
	do {                                                                                   \
		if (get_int(sk, level, opt, &v) == 0 && v) {                                    \
			s->has_##field = true;                                                 \
			s->field = true;                                                       \
		}                                                                              \
	} while (0)
	BOOL_OPT(SOL_SOCKET, SO_REUSEADDR, reuseaddr);
	BOOL_OPT(SOL_SOCKET, SO_REUSEPORT, reuseport);
	BOOL_OPT(SOL_SOCKET, SO_KEEPALIVE, keepalive);
	BOOL_OPT(SOL_SOCKET, SO_BROADCAST, broadcast);
	if (family == AF_INET6)
		BOOL_OPT(IPPROTO_IPV6, IPV6_V6ONLY, v6only);
	if (family == AF_INET)
		BOOL_OPT(IPPROTO_IP, IP_FREEBIND, freebind);
	if (proto == IPPROTO_TCP) {
		BOOL_OPT(IPPROTO_TCP, TCP_NODELAY, nodelay);
		if (get_int(sk, IPPROTO_TCP, TCP_KEEPIDLE, &v) == 0)
			s->has_keepidle = true, s->keepidle = v;
		if (get_int(sk, IPPROTO_TCP, TCP_KEEPINTVL, &v) == 0)
			s->has_keepintvl = true, s->keepintvl = v;
		if (get_int(sk, IPPROTO_TCP, TCP_KEEPCNT, &v) == 0)
			s->has_keepcnt = true, s->keepcnt = v;
	}
#undef BOOL_OPT
	if (get_int(sk, SOL_SOCKET, SO_RCVBUF, &v) == 0)
		s->has_rcvbuf = true, s->rcvbuf = (uint32_t)v;
	if (get_int(sk, SOL_SOCKET, SO_SNDBUF, &v) == 0)
		s->has_sndbuf = true, s->sndbuf = (uint32_t)v;
	if (get_int(sk, SOL_SOCKET, SO_BUF_LOCK, &v) == 0 && v)
		s->has_buf_lock = true, s->buf_lock = (uint32_t)v;
	{
		socklen_t dl = sizeof(dev) - 1;

		memset(dev, 0, sizeof(dev));
		if (getsockopt(sk, SOL_SOCKET, SO_BINDTODEVICE, dev, &dl) == 0 && dev[0]) {
			s->bind_dev = strdup(dev);
			if (!s->bind_dev) {
				eng_socket__free_unpacked(s, NULL);
				return -ENOMEM;
			}
		}
	}
	if (save_opts(sk, family, proto, s) < 0) {
		eng_socket__free_unpacked(s, NULL);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}
