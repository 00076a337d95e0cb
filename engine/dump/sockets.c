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
 * CLOSE, any socket with a peer (connected UDP; established TCP unless the
 * checkpoint captures established connections: ctx->tcp).
 * Queued connections and datagrams are not saved (docs/engine-dump.md).
 *
 * Established TCP (tcp): the connection is captured with TCP_REPAIR, the
 * way CRIU's soccr does, after the memory (dump.h: struct eng_dump_tcp).
 * On our pidfd_getfd() copy (the same socket as the process's): a drop-all
 * classic BPF filter first (a segment that arrives from now on is dropped
 * before TCP sees it: not queued, not acked; the peer resends it later, to
 * whichever socket then holds the connection), then repair mode (nothing
 * is transmitted; closing sends neither FIN nor RST), then the sequence
 * numbers of both queues, their bytes (MSG_PEEK in repair mode reads the
 * send queue too), the negotiated options, the timestamp and the window.
 * Both stay on until the release.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

static int save_opts(int sk, int family, int proto, bool established, EngSocket *s)
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
		/* tcp: on a connection these read what the kernel negotiated
		 * or tuned (the MSS in use, the autotuned clamp), not what the
		 * program set: the repair options carry the MSS. */
		if (established && d->level == IPPROTO_TCP &&
		    (d->name == TCP_MAXSEG || d->name == TCP_WINDOW_CLAMP))
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

/* ------------------------------------------------------------------- tcp */

#ifndef TCP_REPAIR_WINDOW
#define TCP_REPAIR_WINDOW 29
#endif
#ifndef SO_GET_FILTER
#define SO_GET_FILTER SO_ATTACH_FILTER
#endif

/* Queues larger than this are refused (a socket buffer is at most
 * net.core.[rw]mem_max, a few MiB by default). */
#define TCP_QUEUE_MAX	(64u << 20)

static int tcp_add(struct eng_dump_tcp *t, const struct eng_dump_tcp_conn *c)
{
	if (t->nr == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 8;
		struct eng_dump_tcp_conn *nv = realloc(t->v, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		t->v = nv;
		t->cap = nc;
	}
	t->v[t->nr++] = *c;
	return 0;
}

/* Undo the lock on one socket: its send window back, filter off, repair off
 * (TCP_REPAIR_OFF sends a window probe: the peer answers it and resends
 * what the filter dropped). */
static void tcp_unlock_one(const struct eng_dump_tcp_conn *c)
{
	int off = TCP_REPAIR_OFF, q = TCP_NO_QUEUE, fd = c->fd;

	if (c->win_closed)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, c->win, sizeof(c->win));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q));
	(void)setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &off, sizeof(off));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off));
}

void eng_dump_tcp_unlock(struct eng_dump_tcp *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nr; i++) {
		if (t->v[i].locked)
			tcp_unlock_one(&t->v[i]);
		close(t->v[i].fd);
	}
	free(t->v);
	*t = (struct eng_dump_tcp){};
}

void eng_dump_tcp_drop(struct eng_dump_tcp *t)
{
	if (!t)
		return;
	/* Still in repair mode: tcp_close() disconnects without a segment. */
	for (size_t i = 0; i < t->nr; i++)
		close(t->v[i].fd);
	free(t->v);
	*t = (struct eng_dump_tcp){};
}

_Static_assert(sizeof(struct tcp_repair_window) == sizeof(((struct eng_dump_tcp_conn *)0)->win),
	       "eng_dump_tcp_conn.win holds a struct tcp_repair_window");

static int tcp_set_queue(int sk, int q)
{
	return setsockopt(sk, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)) < 0 ? -errno : 0;
}

/* Sequence number and @len bytes of queue @q (repair mode). */
static int tcp_read_queue(int sk, int q, size_t len, uint32_t *ret_seq, ProtobufCBinaryData *ret)
{
	socklen_t sl = sizeof(*ret_seq);
	ssize_t n;
	int r;

	r = tcp_set_queue(sk, q);
	if (r < 0)
		return r;
	if (getsockopt(sk, IPPROTO_TCP, TCP_QUEUE_SEQ, ret_seq, &sl) < 0)
		return -errno;
	if (!len)
		return 0;
	ret->data = malloc(len);
	if (!ret->data)
		return -ENOMEM;
	/* One peek walks every skb of the queue (the send queue: the
	 * retransmit tree, then the unsent ones); nothing is consumed. */
	n = recv(sk, ret->data, len, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	if ((size_t)n != len)
		return -EAGAIN;
	ret->len = len;
	return 0;
}

#define TCP_FAIL(c, r, what)                                                                   \
	err_wrap((r), "process %d fd %d: TCP connection: %s", (c)->pid, (c)->fdnum, (what))

/* Lock connection @c and read its state into c->sock. */
static int tcp_capture_one(struct eng_dump_tcp_conn *c)
{
	static const struct sock_filter drop = BPF_STMT(BPF_RET | BPF_K, 0);
	const struct sock_fprog prog = { .len = 1, .filter = (struct sock_filter *)&drop };
	EngSocket *s = c->sock;
	struct tcp_repair_window win;
	struct tcp_info ti = {};
	socklen_t tl = sizeof(ti), wl = sizeof(win);
	int on = TCP_REPAIR_ON, sk = c->fd, inq = 0, outq = 0, unsent = 0, v, r;
	EngTcpConn *t;

	if (setsockopt(sk, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
		return TCP_FAIL(c, -errno, "cannot attach the drop filter");
	if (setsockopt(sk, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on)) < 0) {
		r = -errno;
		(void)setsockopt(sk, SOL_SOCKET, SO_DETACH_FILTER, &on, sizeof(on));
		if (getsockopt(sk, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 &&
		    ti.tcpi_state != TCP_ESTABLISHED)
			return err_set(EOPNOTSUPP, "process %d fd %d: TCP connection %s while "
				       "checkpointed (the peer closed it?)", c->pid, c->fdnum,
				       ti.tcpi_state < ARRAY_SIZE(tcp_states) &&
				       tcp_states[ti.tcpi_state] ? tcp_states[ti.tcpi_state] :
				       "in an unknown state");
		return TCP_FAIL(c, r, "TCP_REPAIR (needs CAP_NET_ADMIN)");
	}
	c->locked = true;

	/*
	 * Nothing comes in now. Repair mode alone does not stop the
	 * transmission of queued data: tcp_write_xmit() (pacing, TSQ, loss
	 * probes) only marks it sent without sending while the repair queue
	 * is the send queue, and the window-probe and keepalive timers
	 * (tcp_write_wakeup()) send new data within the send window whatever
	 * the repair state. So the send window is read, then closed (the
	 * image keeps the real one; the unlock puts it back), the receive
	 * queue is read, and the send queue is selected for the rest of the
	 * lock: from then on no new byte reaches the peer, and every byte the
	 * peer may hold is below the snd_nxt read after (a byte only marked
	 * sent is resent by the retransmit timer).
	 */
	if (getsockopt(sk, IPPROTO_TCP, TCP_REPAIR_WINDOW, &win, &wl) < 0 || wl != sizeof(win))
		return TCP_FAIL(c, -errno, "TCP_REPAIR_WINDOW");
	memcpy(c->win, &win, sizeof(c->win));
	{
		struct tcp_repair_window closed = win;

		closed.snd_wnd = 0;
		if (setsockopt(sk, IPPROTO_TCP, TCP_REPAIR_WINDOW, &closed, sizeof(closed)) < 0)
			return TCP_FAIL(c, -errno, "closing the send window");
		c->win_closed = true;
	}
	if (getsockopt(sk, IPPROTO_TCP, TCP_INFO, &ti, &tl) < 0)
		return TCP_FAIL(c, -errno, "TCP_INFO");
	if (ti.tcpi_state != TCP_ESTABLISHED)
		return err_set(EOPNOTSUPP, "process %d fd %d: TCP connection %s while checkpointed",
			       c->pid, c->fdnum, ti.tcpi_state < ARRAY_SIZE(tcp_states) &&
			       tcp_states[ti.tcpi_state] ? tcp_states[ti.tcpi_state] :
			       "in an unknown state");
	t = malloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	eng_tcp_conn__init(t);
	s->tcp = t;
	if (ioctl(sk, SIOCINQ, &inq) < 0)
		return TCP_FAIL(c, -errno, "SIOCINQ");
	if (inq < 0 || (unsigned)inq > TCP_QUEUE_MAX)
		return err_set(EOPNOTSUPP, "process %d fd %d: TCP receive queue of %d bytes",
			       c->pid, c->fdnum, inq);
	r = tcp_read_queue(sk, TCP_RECV_QUEUE, (size_t)inq, &t->rcv_seq, &t->recv_queue);
	t->has_recv_queue = inq > 0;
	if (r >= 0)
		r = tcp_set_queue(sk, TCP_SEND_QUEUE);
	if (r >= 0 && (ioctl(sk, SIOCOUTQ, &outq) < 0 || ioctl(sk, SIOCOUTQNSD, &unsent) < 0))
		r = -errno;
	if (r >= 0 && (outq < 0 || unsent < 0 || unsent > outq || (unsigned)outq > TCP_QUEUE_MAX))
		return err_set(EOPNOTSUPP, "process %d fd %d: TCP send queue of %d bytes (%d "
			       "unsent)", c->pid, c->fdnum, outq, unsent);
	if (r >= 0) {
		r = tcp_read_queue(sk, TCP_SEND_QUEUE, (size_t)outq, &t->snd_seq, &t->send_queue);
		t->has_send_queue = outq > 0;
	}
	if (r == -EAGAIN)
		return err_set(EOPNOTSUPP, "process %d fd %d: TCP queue changed while read "
			       "(urgent data?)", c->pid, c->fdnum);
	if (r < 0)
		return TCP_FAIL(c, r, "reading the queues");
	t->has_unsent = unsent > 0;
	t->unsent = (uint32_t)unsent;

	/* In repair mode TCP_MAXSEG reads the peer's MSS clamp. */
	if (get_int(sk, IPPROTO_TCP, TCP_MAXSEG, &v) < 0)
		return TCP_FAIL(c, -errno, "TCP_MAXSEG");
	t->mss_clamp = (uint32_t)v;
	if (ti.tcpi_options & TCPI_OPT_WSCALE) {
		t->has_snd_wscale = t->has_rcv_wscale = true;
		t->snd_wscale = ti.tcpi_snd_wscale;
		t->rcv_wscale = ti.tcpi_rcv_wscale;
	}
	t->has_sack = t->sack = (ti.tcpi_options & TCPI_OPT_SACK) != 0;
	if (ti.tcpi_options & TCPI_OPT_TIMESTAMPS) {
		t->has_timestamps = t->timestamps = true;
		if (get_int(sk, IPPROTO_TCP, TCP_TIMESTAMP, &v) < 0)
			return TCP_FAIL(c, -errno, "TCP_TIMESTAMP");
		t->has_timestamp = true;
		t->timestamp = (uint32_t)v;
	}
	t->has_snd_wl1 = t->has_snd_wnd = t->has_max_window = true;
	t->has_rcv_wnd = t->has_rcv_wup = true;
	t->snd_wl1 = win.snd_wl1;
	t->snd_wnd = win.snd_wnd;
	t->max_window = win.max_window;
	t->rcv_wnd = win.rcv_wnd;
	t->rcv_wup = win.rcv_wup;
	return 0;
}

int eng_dump_tcp_capture(struct eng_dump_ctx *ctx)
{
	if (!ctx->tcp)
		return 0;
	for (size_t i = 0; i < ctx->tcp->nr; i++) {
		struct eng_dump_tcp_conn *c = &ctx->tcp->v[i];
		int r;

		if (c->locked)
			continue;
		r = tcp_capture_one(c);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * Inspect phase: an established connection of the process; its state is
 * read by eng_dump_tcp_capture(). Only the peer address now.
 */
static int tcp_register(struct eng_dump_ctx *ctx, int fd, const char *link, int sk,
			EngSocket *s)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss), fl = 0;
	struct eng_dump_tcp_conn c = { .pid = ctx->pid, .fdnum = fd, .sock = s };
	struct stat st;
	int r;

	/* One connection held by several processes (a --tree checkpoint)
	 * would be captured once per holder: not supported yet. */
	if (fstat(sk, &st) == 0) {
		for (size_t i = 0; i < ctx->tcp->nr; i++) {
			struct stat o;

			if (fstat(ctx->tcp->v[i].fd, &o) == 0 && o.st_ino == st.st_ino &&
			    o.st_dev == st.st_dev)
				return REFUSE(ctx, fd, link, "TCP connection shared with process %d "
					      "fd %d", ctx->tcp->v[i].pid, ctx->tcp->v[i].fdnum);
		}
	}
	/* A program's own filter would be replaced by ours (and not restored). */
	if (getsockopt(sk, SOL_SOCKET, SO_GET_FILTER, NULL, &fl) == 0 && fl > 0)
		return REFUSE(ctx, fd, link, "TCP connection with a socket filter of its own");
	if (getpeername(sk, (struct sockaddr *)&ss, &sl) < 0)
		return err_wrap(-errno, "process %d fd %d: getpeername", ctx->pid, fd);
	s->peer.data = malloc(sl);
	if (!s->peer.data)
		return -ENOMEM;
	memcpy(s->peer.data, &ss, sl);
	s->peer.len = sl;
	s->has_peer = true;
	c.fd = (int)fcntl(sk, F_DUPFD_CLOEXEC, 3);
	if (c.fd < 0)
		return -errno;
	r = tcp_add(ctx->tcp, &c);
	if (r < 0)
		close(c.fd);
	return r;
}

/*
 * The datagrams queued on a bound UDP socket, oldest first, with their
 * senders, read through our copy @sk without consuming them: MSG_PEEK with
 * SO_PEEK_OFF set moves on one datagram per read. SO_PEEK_OFF belongs to
 * the socket (the process's too): its value is put back. Bounded like the
 * unix queues (UDP_QUEUE_MAX bytes); more is refused in one line.
 */
#define UDP_QUEUE_MAX		(64u << 20)
#define UDP_DGRAM_MAX		65536u

static int udp_queue(struct eng_dump_ctx *ctx, int fd, int sk, EngSocket *s)
{
	_cleanup_free_ uint8_t *buf = malloc(UDP_DGRAM_MAX);
	int old = -1, zero = 0, r = 0;
	socklen_t ol = sizeof(old);
	uint64_t total = 0;

	if (!buf)
		return -ENOMEM;
	if (getsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &old, &ol) < 0 ||
	    setsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)) < 0)
		return err_wrap(-errno, "process %d fd %d: SO_PEEK_OFF", ctx->pid, fd);
	for (;;) {
		struct sockaddr_storage from;
		struct iovec iov = { buf, UDP_DGRAM_MAX };
		struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof(from),
				     .msg_iov = &iov, .msg_iovlen = 1 };
		EngDgram *d, **nv;
		ssize_t n = recvmsg(sk, &mh, MSG_PEEK | MSG_DONTWAIT);

		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				r = err_wrap(-errno, "process %d fd %d: reading the UDP queue",
					     ctx->pid, fd);
			break;
		}
		total += (uint64_t)n;
		if (total > UDP_QUEUE_MAX) {
			r = err_set(EOPNOTSUPP, "process %d fd %d: more than %u MiB queued on a "
				    "UDP socket", ctx->pid, fd, UDP_QUEUE_MAX >> 20);
			break;
		}
		d = malloc(sizeof(*d));
		nv = realloc(s->queued, (s->n_queued + 1) * sizeof(*nv));
		if (nv)
			s->queued = nv;
		if (!d || !nv) {
			free(d);
			r = -ENOMEM;
			break;
		}
		eng_dgram__init(d);
		s->queued[s->n_queued++] = d;
		d->data.data = malloc(n ? (size_t)n : 1);
		d->from.data = malloc(mh.msg_namelen ? mh.msg_namelen : 1);
		if (!d->data.data || !d->from.data) {
			r = -ENOMEM;
			break;
		}
		memcpy(d->data.data, buf, (size_t)n);
		d->data.len = (size_t)n;
		memcpy(d->from.data, &from, mh.msg_namelen);
		d->from.len = mh.msg_namelen;
		d->has_from = mh.msg_namelen > 0;
	}
	setsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &old, sizeof(old));
	return r;
}

int eng_dump_socket(struct eng_dump_ctx *ctx, int fd, const char *link, EngSocket **ret)
{
	_cleanup_close_ int pidfd = -1, sk = -1;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char abuf[INET6_ADDRSTRLEN + 16], tbuf[64], dev[IFNAMSIZ + 1];
	int family, type, proto, v, r;
	bool established = false;
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
	if (getpeername(sk, (struct sockaddr *)&ss, &sl) == 0) {
		/* tcp: established connections with ctx->tcp (checked below). */
		if (proto != IPPROTO_TCP || !ctx->tcp)
			return REFUSE(ctx, fd, link, "%s socket connected to %s%s",
				      proto == IPPROTO_TCP ? "TCP" : "UDP",
				      eng_dump_sockaddr_str(&ss, sl, abuf, sizeof(abuf)),
				      proto == IPPROTO_TCP ? "; checkpoint --tcp-established "
				      "captures it" : "");
		established = true;
	} else if (errno != ENOTCONN) {
		return err_wrap(-errno, "process %d fd %d: getpeername", ctx->pid, fd);
	}

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
		if (ti.tcpi_state != TCP_LISTEN && ti.tcpi_state != TCP_CLOSE &&
		    !(established && ti.tcpi_state == TCP_ESTABLISHED)) {
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
	if (save_opts(sk, family, proto, established, s) < 0) {
		eng_socket__free_unpacked(s, NULL);
		return -ENOMEM;
	}
	if (proto == IPPROTO_UDP && s->has_addr) {
		r = udp_queue(ctx, fd, sk, s);
		if (r < 0) {
			eng_socket__free_unpacked(s, NULL);
			return r;
		}
	}
	/* tcp: captured after the memory (eng_dump_tcp_capture). */
	if (established) {
		r = tcp_register(ctx, fd, link, sk, s);
		if (r < 0) {
			eng_socket__free_unpacked(s, NULL);
			return r;
		}
	}
	*ret = s;
	return 0;
}
