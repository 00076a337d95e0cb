// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * FD_INET_SOCKET descriptors: TCP listening (or unconnected) and UDP
 * sockets, re-created by the parent during validation, before anything
 * starts: socket(), the saved options, bind() to the saved address and
 * listen() with the saved backlog. An address in use (the original still
 * listening, e.g. checkpoint --leave-running) therefore refuses the restore
 * with one line and nothing started; a socket that had SO_REUSEPORT joins
 * the original's group instead (same user), as the program itself could.
 *
 * The new process inherits them (clone3 copies the descriptor table, the
 * pid namespace init and the single-threaded helper too), and eng_restore_prepare_fds() (fds.c)
 * in child.c moves each to its number with its close-on-exec flag; the
 * parent closes its copies when eng_restore() returns.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "restore.h"

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif

static const char *addr_str(const EngSocket *s, char *buf, size_t size)
{
	const struct sockaddr_in *a4 = (const void *)s->addr.data;
	const struct sockaddr_in6 *a6 = (const void *)s->addr.data;
	char ip[INET6_ADDRSTRLEN];

	if (!s->has_addr) {
		snprintf(buf, size, "(unbound)");
	} else if (s->family == AF_INET) {
		inet_ntop(AF_INET, &a4->sin_addr, ip, sizeof(ip));
		snprintf(buf, size, "%s:%u", ip, ntohs(a4->sin_port));
	} else {
		inet_ntop(AF_INET6, &a6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, size, "[%s]:%u", ip, ntohs(a6->sin6_port));
	}
	return buf;
}

static int set_int(int fd, int level, int opt, int v)
{
	return setsockopt(fd, level, opt, &v, sizeof(v)) < 0 ? -errno : 0;
}

/* Set an integer option only where the fresh socket's value differs: an
 * option set for nothing (a TCP keepalive time) would stop following the
 * sysctl default. */
static int set_if_differs(int fd, int level, int opt, int v)
{
	int cur = 0;
	socklen_t len = sizeof(cur);

	if (getsockopt(fd, level, opt, &cur, &len) == 0 && cur == v)
		return 0;
	return set_int(fd, level, opt, v);
}

static int check_one(const EngFd *f)
{
	const EngSocket *s = f->sock;

	if (!s)
		return err_set(EBADMSG, "fd %u: socket without its description", f->fd);
	if (s->family != AF_INET && s->family != AF_INET6)
		return err_set(EBADMSG, "fd %u: socket of family %u", f->fd, s->family);
	if (!(s->type == SOCK_STREAM && s->protocol == IPPROTO_TCP) &&
	    !(s->type == SOCK_DGRAM && s->protocol == IPPROTO_UDP))
		return err_set(EBADMSG, "fd %u: socket type %u protocol %u", f->fd, s->type,
			       s->protocol);
	if (s->has_addr &&
	    s->addr.len != (s->family == AF_INET ? sizeof(struct sockaddr_in) :
						   sizeof(struct sockaddr_in6)))
		return err_set(EBADMSG, "fd %u: socket address of %zu bytes", f->fd, s->addr.len);
	if (s->has_addr && ((const struct sockaddr *)s->addr.data)->sa_family != s->family)
		return err_set(EBADMSG, "fd %u: socket address of another family", f->fd);
	if (s->has_backlog && s->type != SOCK_STREAM)
		return err_set(EBADMSG, "fd %u: a listening datagram socket", f->fd);
	return 0;
}

/* Everything but the address: before bind(), as V6ONLY, REUSE*, FREEBIND
 * and the device decide whether and where the bind succeeds. */
static int set_options(const EngFd *f, int fd)
{
	const EngSocket *s = f->sock;
	const char *what = s->protocol == IPPROTO_TCP ? "TCP" : "UDP";
	char abuf[INET6_ADDRSTRLEN + 16];
	int r = 0;

	if (s->family == AF_INET6)
		r = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, s->has_v6only && s->v6only);
	if (!r && s->has_reuseaddr && s->reuseaddr)
		r = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	if (!r && s->has_reuseport && s->reuseport)
		r = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
	if (!r && s->has_freebind && s->freebind)
		r = set_int(fd, IPPROTO_IP, IP_FREEBIND, 1);
	if (!r && s->has_broadcast && s->broadcast)
		r = set_int(fd, SOL_SOCKET, SO_BROADCAST, 1);
	if (!r && s->has_keepalive && s->keepalive)
		r = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	if (!r && s->protocol == IPPROTO_TCP) {
		if (s->has_nodelay && s->nodelay)
			r = set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
		if (!r && s->has_keepidle)
			r = set_if_differs(fd, IPPROTO_TCP, TCP_KEEPIDLE, s->keepidle);
		if (!r && s->has_keepintvl)
			r = set_if_differs(fd, IPPROTO_TCP, TCP_KEEPINTVL, s->keepintvl);
		if (!r && s->has_keepcnt)
			r = set_if_differs(fd, IPPROTO_TCP, TCP_KEEPCNT, s->keepcnt);
	}
	for (size_t i = 0; !r && i < s->n_opts; i++) {
		r = set_if_differs(fd, s->opts[i]->level, s->opts[i]->name, s->opts[i]->value);
		if (r < 0)
			return err_set(-r, "fd %u: %s socket %s: cannot set option %d/%d to %d: %s",
				       f->fd, what, addr_str(s, abuf, sizeof(abuf)),
				       s->opts[i]->level, s->opts[i]->name, s->opts[i]->value,
				       strerror(-r));
	}
	if (r < 0)
		return err_set(-r, "fd %u: cannot set the options of the %s socket %s: %s", f->fd,
			       what, addr_str(s, abuf, sizeof(abuf)), strerror(-r));
	/* Buffer sizes only where the program set them (SO_BUF_LOCK): the
	 * kernel doubles what it is given, so give it half of what it
	 * reported; FORCE passes rmem_max/wmem_max as the program may have
	 * (it needs CAP_NET_ADMIN, else the plain option, clamped). */
	if (s->has_buf_lock && s->buf_lock) {
		if ((s->buf_lock & 2) && s->has_rcvbuf &&
		    set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, (int)(s->rcvbuf / 2)) < 0)
			set_int(fd, SOL_SOCKET, SO_RCVBUF, (int)(s->rcvbuf / 2));
		if ((s->buf_lock & 1) && s->has_sndbuf &&
		    set_int(fd, SOL_SOCKET, SO_SNDBUFFORCE, (int)(s->sndbuf / 2)) < 0)
			set_int(fd, SOL_SOCKET, SO_SNDBUF, (int)(s->sndbuf / 2));
		set_int(fd, SOL_SOCKET, SO_BUF_LOCK, (int)s->buf_lock);
	}
	if (s->bind_dev && s->bind_dev[0] &&
	    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, s->bind_dev,
		       (socklen_t)strnlen(s->bind_dev, IFNAMSIZ)) < 0)
		return err_set(errno, "fd %u: %s socket %s: cannot bind to device \"%s\": %m",
			       f->fd, what, addr_str(s, abuf, sizeof(abuf)), s->bind_dev);
	return 0;
}

/*
 * The datagrams that were queued on a bound UDP socket, sent to it again in
 * order, each from its saved sender address when that can be bound again
 * (SO_REUSEADDR, IP_FREEBIND: a sender that is gone, or one of the image's
 * own sockets not yet re-created), else from an unbound socket (the source
 * is then lost: the one thing not kept). A wildcard-bound socket is reached
 * through loopback.
 */
static int udp_refill(const EngFd *f, int fd)
{
	const EngSocket *s = f->sock;
	struct sockaddr_storage to;
	socklen_t tl = sizeof(to);

	if (getsockname(fd, (struct sockaddr *)&to, &tl) < 0)
		return err_set(errno, "fd %u: getsockname: %m", f->fd);
	if (to.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&to;

		if (a->sin_addr.s_addr == htonl(INADDR_ANY))
			a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (to.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&to;

		if (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr))
			a->sin6_addr = in6addr_loopback;
	}
	for (size_t i = 0; i < s->n_queued; i++) {
		const EngDgram *d = s->queued[i];
		const struct sockaddr *from = (const struct sockaddr *)d->from.data;
		bool has_from = d->has_from && d->from.len >= sizeof(sa_family_t) &&
				d->from.len <= sizeof(struct sockaddr_storage) &&
				(from->sa_family == AF_INET || from->sa_family == AF_INET6);
		int one = 1, family = has_from ? from->sa_family : (int)to.ss_family, tmp;
		ssize_t n;

		tmp = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (tmp < 0)
			return err_set(errno, "fd %u: socket for a queued datagram: %m", f->fd);
		setsockopt(tmp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (family == AF_INET)
			setsockopt(tmp, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
		if (has_from && bind(tmp, from, (socklen_t)d->from.len) < 0) {
			/* Its address is taken: send from anywhere. */
			close(tmp);
			tmp = socket(to.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			if (tmp < 0)
				return err_set(errno, "fd %u: socket for a queued datagram: %m", f->fd);
		}
		n = sendto(tmp, d->data.data, d->data.len, 0, (struct sockaddr *)&to, tl);
		close(tmp);
		if (n != (ssize_t)d->data.len)
			return err_set(n < 0 ? errno : EIO, "fd %u: cannot queue datagram %zu of %zu "
				       "again: %m", f->fd, i + 1, s->n_queued);
	}
	return 0;
}

static int open_one(const EngFd *f, int *ret)
{
	const EngSocket *s = f->sock;
	const char *what = s->protocol == IPPROTO_TCP ? "TCP" : "UDP";
	char abuf[INET6_ADDRSTRLEN + 16];
	_cleanup_close_ int fd = -1;
	int r;

	fd = socket((int)s->family, (int)s->type | SOCK_CLOEXEC |
		    ((f->flags & O_NONBLOCK) ? SOCK_NONBLOCK : 0), (int)s->protocol);
	if (fd < 0)
		return err_set(errno, "fd %u: cannot create the %s socket: %m", f->fd, what);
	r = set_options(f, fd);
	if (r < 0)
		return r;
	if (s->has_addr && bind(fd, (const struct sockaddr *)s->addr.data,
				(socklen_t)s->addr.len) < 0) {
		if (errno == EADDRINUSE)
			return err_set(EADDRINUSE, "fd %u: %s address %s is in use (the original "
				       "still %s there?)", f->fd, what,
				       addr_str(s, abuf, sizeof(abuf)),
				       s->has_backlog ? "listens" : "is bound");
		return err_set(errno, "fd %u: cannot bind the %s socket to %s: %m", f->fd, what,
			       addr_str(s, abuf, sizeof(abuf)));
	}
	if (s->has_backlog && listen(fd, (int)s->backlog) < 0) {
		if (errno == EADDRINUSE)
			return err_set(EADDRINUSE, "fd %u: TCP address %s is in use (the original "
				       "still listens there?)", f->fd, addr_str(s, abuf, sizeof(abuf)));
		return err_set(errno, "fd %u: cannot listen on %s: %m", f->fd,
			       addr_str(s, abuf, sizeof(abuf)));
	}
	if (s->n_queued) {
		r = udp_refill(f, fd);
		if (r < 0)
			return r;
	}
	*ret = TAKE_FD(fd);
	return 0;
}

/* ------------------------------------------------------------------- tcp */

/*
 * FD_TCP_ESTABLISHED: the connection is rebuilt in repair mode (soccr's
 * order): socket, TCP_REPAIR on, options, bind to the saved local address
 * (IP_FREEBIND for the moment: the address may arrive on this host only
 * when the process runs, rfork --move), the sequence numbers of both
 * queues, connect() (repair: no SYN, ESTABLISHED at once; the 4-tuple must
 * be free here), the negotiated options and timestamp, the queues' bytes
 * (the sent part of the send queue counts as sent, not acked: the
 * retransmit timer resends it if the peer lacks it), the window. It stays in
 * repair mode (silent, and closed silently if the restore fails) until
 * eng_restore_sockets_live(), just before the process resumes: repair off
 * (a window probe: the peer learns the window and resends what it lacks),
 * then the never-sent tail is written as ordinary data.
 */

#ifndef TCP_REPAIR_WINDOW
#define TCP_REPAIR_WINDOW 29
#endif
#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78
#endif

#define TCP_QUEUE_MAX	(64u << 20)	/* as engine/dump/sockets.c */
#define TCP_CHUNK	(64u << 10)

static const char *peer_str(const EngSocket *s, char *buf, size_t size)
{
	EngSocket tmp = *s;

	tmp.addr = s->peer;
	tmp.has_addr = s->has_peer;
	return addr_str(&tmp, buf, size);
}

static int check_tcp(const EngFd *f)
{
	const EngSocket *s = f->sock;
	const EngTcpConn *c = s->tcp;
	size_t alen = s->family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);

	if (s->type != SOCK_STREAM || s->protocol != IPPROTO_TCP || !c || !s->has_addr ||
	    !s->has_peer || s->has_backlog)
		return err_set(EBADMSG, "fd %u: TCP connection without its addresses or state",
			       f->fd);
	if (s->peer.len != alen || ((const struct sockaddr *)s->peer.data)->sa_family != s->family)
		return err_set(EBADMSG, "fd %u: TCP peer address of %zu bytes", f->fd, s->peer.len);
	if (c->send_queue.len > TCP_QUEUE_MAX || c->recv_queue.len > TCP_QUEUE_MAX ||
	    c->unsent > c->send_queue.len)
		return err_set(EBADMSG, "fd %u: TCP queues of %zu and %zu bytes (%u unsent)", f->fd,
			       c->send_queue.len, c->recv_queue.len, c->unsent);
	return 0;
}

static int set_queue_seq(int fd, int q, uint32_t seq)
{
	int r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, q);

	if (r < 0)
		return r;
	return setsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq, sizeof(seq)) < 0 ? -errno : 0;
}

/* Write @len bytes into queue @q (repair mode), in chunks. */
static int write_queue(int fd, int q, const uint8_t *buf, size_t len)
{
	int r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, q);

	while (!r && len) {
		ssize_t n = send(fd, buf, MIN(len, (size_t)TCP_CHUNK), MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return r;
}

/* Room for @len queued bytes: the kernel doubles the value for its
 * overhead, and counts skb sizes against it. */
static void make_room(int fd, int opt, int force, size_t len)
{
	int cur = 0;
	socklen_t l = sizeof(cur);
	int want = (int)MIN(len + TCP_CHUNK, (size_t)INT_MAX / 2);

	if (getsockopt(fd, SOL_SOCKET, opt, &cur, &l) == 0 && cur / 2 >= want)
		return;
	if (set_int(fd, SOL_SOCKET, force, want) < 0)
		(void)set_int(fd, SOL_SOCKET, opt, want);
}

static int open_established(const EngFd *f, int *ret)
{
	const EngSocket *s = f->sock;
	const EngTcpConn *c = s->tcp;
	const struct tcp_repair_opt *op;
	struct tcp_repair_opt opts[4];
	char abuf[INET6_ADDRSTRLEN + 16], pbuf[INET6_ADDRSTRLEN + 16];
	size_t sent_len = c->send_queue.len - c->unsent, nopts = 0;
	_cleanup_close_ int fd = -1;
	int fb_level = s->family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6;
	int fb_opt = s->family == AF_INET ? IP_FREEBIND : IPV6_FREEBIND;
	int fb_saved = 0, r;
	socklen_t fl = sizeof(fb_saved);
	const char *step;

	addr_str(s, abuf, sizeof(abuf));
	peer_str(s, pbuf, sizeof(pbuf));
	fd = socket((int)s->family, SOCK_STREAM | SOCK_CLOEXEC |
		    ((f->flags & O_NONBLOCK) ? SOCK_NONBLOCK : 0), IPPROTO_TCP);
	if (fd < 0)
		return err_set(errno, "fd %u: cannot create the TCP socket: %m", f->fd);
	step = "TCP_REPAIR (needs CAP_NET_ADMIN)";
	r = set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON);
	if (r < 0)
		goto fail;
	r = set_options(f, fd);
	if (r < 0)
		return r;
	/* The address may not be here yet: bind with freebind, then put the
	 * program's own setting back. */
	step = "IP_FREEBIND";
	(void)getsockopt(fd, fb_level, fb_opt, &fb_saved, &fl);
	r = set_int(fd, fb_level, fb_opt, 1);
	if (r < 0)
		goto fail;
	step = "bind";
	if (bind(fd, (const struct sockaddr *)s->addr.data, (socklen_t)s->addr.len) < 0) {
		r = -errno;
		goto fail;
	}
	step = "IP_FREEBIND";
	r = set_int(fd, fb_level, fb_opt, fb_saved);
	if (r < 0)
		goto fail;
	step = "TCP_QUEUE_SEQ";
	r = set_queue_seq(fd, TCP_RECV_QUEUE, c->rcv_seq - (uint32_t)c->recv_queue.len);
	if (r >= 0)
		r = set_queue_seq(fd, TCP_SEND_QUEUE, c->snd_seq - (uint32_t)c->send_queue.len);
	if (r < 0)
		goto fail;
	/* The MSS in use is computed at connect() from the route and the
	 * clamp known then; the repair option below sets the clamp only
	 * later, so say it now (the kernel takes at most 32767 here). */
	(void)set_int(fd, IPPROTO_TCP, TCP_MAXSEG, (int)MIN(c->mss_clamp, 32767u));
	step = "connect";
	if (connect(fd, (const struct sockaddr *)s->peer.data, (socklen_t)s->peer.len) < 0) {
		r = -errno;
		if (r == -EADDRNOTAVAIL || r == -EADDRINUSE || r == -EISCONN)
			return err_set(EADDRINUSE, "fd %u: TCP connection %s -> %s exists on this "
				       "host already (the original still holds it?)", f->fd, abuf,
				       pbuf);
		goto fail;
	}
	/* Negotiated options: once connected, before any byte is queued. */
	opts[nopts++] = (struct tcp_repair_opt){ TCPOPT_MAXSEG, c->mss_clamp };
	if (c->has_snd_wscale && c->has_rcv_wscale)
		opts[nopts++] = (struct tcp_repair_opt){ TCPOPT_WINDOW,
							 c->snd_wscale | (c->rcv_wscale << 16) };
	if (c->has_timestamps && c->timestamps)
		opts[nopts++] = (struct tcp_repair_opt){ TCPOPT_TIMESTAMP, 0 };
	if (c->has_sack && c->sack)
		opts[nopts++] = (struct tcp_repair_opt){ TCPOPT_SACK_PERMITTED, 0 };
	op = opts;
	step = "TCP_REPAIR_OPTIONS";
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, op, (socklen_t)(nopts * sizeof(*op))) < 0) {
		r = -errno;
		goto fail;
	}
	step = "TCP_TIMESTAMP";
	if (c->has_timestamp) {
		r = set_int(fd, IPPROTO_TCP, TCP_TIMESTAMP, (int)c->timestamp);
		if (r < 0)
			goto fail;
	}
	step = "writing the queues";
	if (c->send_queue.len)
		make_room(fd, SO_SNDBUF, SO_SNDBUFFORCE, c->send_queue.len);
	if (c->recv_queue.len)
		make_room(fd, SO_RCVBUF, SO_RCVBUFFORCE, c->recv_queue.len);
	r = write_queue(fd, TCP_SEND_QUEUE, c->send_queue.data, sent_len);
	if (r >= 0)
		r = write_queue(fd, TCP_RECV_QUEUE, c->recv_queue.data, c->recv_queue.len);
	if (r >= 0)
		r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
	if (r < 0)
		goto fail;
	/* Sizes we forced stop being fixed unless the program fixed them. */
	if (c->send_queue.len || c->recv_queue.len)
		(void)set_int(fd, SOL_SOCKET, SO_BUF_LOCK, s->has_buf_lock ? (int)s->buf_lock : 0);
	if (c->has_snd_wl1 && c->has_snd_wnd && c->has_max_window && c->has_rcv_wnd &&
	    c->has_rcv_wup) {
		struct tcp_repair_window w = {
			.snd_wl1 = c->snd_wl1, .snd_wnd = c->snd_wnd, .max_window = c->max_window,
			.rcv_wnd = c->rcv_wnd, .rcv_wup = c->rcv_wup,
		};

		step = "TCP_REPAIR_WINDOW";
		if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, sizeof(w)) < 0) {
			r = -errno;
			goto fail;
		}
	}
	*ret = TAKE_FD(fd);
	return 0;
fail:
	return err_set(-r, "fd %u: TCP connection %s -> %s: %s: %s", f->fd, abuf, pbuf, step,
		       strerror(-r));
}

int eng_restore_sockets_live(const EngProcess *p, const int *fds)
{
	char abuf[INET6_ADDRSTRLEN + 16];

	if (!fds)
		return 0;
	for (size_t i = 0; i < p->n_fds; i++) {
		const EngFd *f = p->fds[i];
		const EngTcpConn *c;
		const uint8_t *buf;
		size_t len;
		int r;

		if (f->kind != ENG_FD_KIND__FD_TCP_ESTABLISHED || fds[i] < 0)
			continue;
		c = f->sock->tcp;
		r = set_int(fds[i], IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF);
		if (r < 0)
			return err_set(-r, "fd %u: TCP connection %s: leaving repair mode: %s", f->fd,
				       addr_str(f->sock, abuf, sizeof(abuf)), strerror(-r));
		/* The never-sent tail goes out as the program's data would. The
		 * send buffer holds it (make_room), so this does not wait. */
		buf = c->send_queue.data + (c->send_queue.len - c->unsent);
		len = c->unsent;
		while (len) {
			ssize_t n = send(fds[i], buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);

			if (n <= 0)
				return err_set(n < 0 ? errno : EIO, "fd %u: TCP connection %s: "
					       "sending %zu unsent bytes: %m", f->fd,
					       addr_str(f->sock, abuf, sizeof(abuf)), len);
			buf += n;
			len -= (size_t)n;
		}
	}
	return 0;
}

bool eng_restore_sockets_have_tcp(const EngProcess *p)
{
	for (size_t i = 0; i < p->n_fds; i++)
		if (p->fds[i]->kind == ENG_FD_KIND__FD_TCP_ESTABLISHED)
			return true;
	return false;
}

int eng_restore_sockets_open(const EngProcess *p, int **ret_fds)
{
	int *fds = NULL, r;

	*ret_fds = NULL;
	/* Listeners and unconnected sockets first, connections (tcp) after:
	 * a connection's repair-mode bind may share its port with a listener
	 * of the process, while a plain bind after it would find the port
	 * taken. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < p->n_fds; i++) {
			const EngFd *f = p->fds[i];

			if (f->kind != (pass ? ENG_FD_KIND__FD_TCP_ESTABLISHED
					     : ENG_FD_KIND__FD_INET_SOCKET))
				continue;
			r = check_one(f);
			if (r >= 0 && pass)
				r = check_tcp(f);
			if (r < 0)
				goto fail;
			if (!fds) {
				fds = malloc(p->n_fds * sizeof(*fds));
				if (!fds)
					return -ENOMEM;
				for (size_t k = 0; k < p->n_fds; k++)
					fds[k] = -1;
			}
			r = pass ? open_established(f, &fds[i]) : open_one(f, &fds[i]);
			if (r < 0)
				goto fail;
		}
	}
	*ret_fds = fds;
	return 0;
fail:
	eng_restore_sockets_close(p, fds);
	return r;
}

void eng_restore_sockets_close(const EngProcess *p, int *fds)
{
	if (!fds)
		return;
	for (size_t i = 0; i < p->n_fds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
}
