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
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	/* Before bind(): V6ONLY, REUSE*, FREEBIND and the device decide
	 * whether and where the bind succeeds. */
	r = 0;
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
	*ret = TAKE_FD(fd);
	return 0;
}

int eng_restore_sockets_open(const EngProcess *p, int **ret_fds)
{
	int *fds = NULL, r;

	*ret_fds = NULL;
	for (size_t i = 0; i < p->n_fds; i++) {
		const EngFd *f = p->fds[i];

		if (f->kind != ENG_FD_KIND__FD_INET_SOCKET)
			continue;
		r = check_one(f);
		if (r < 0)
			goto fail;
		if (!fds) {
			fds = malloc(p->n_fds * sizeof(*fds));
			if (!fds)
				return -ENOMEM;
			for (size_t k = 0; k < p->n_fds; k++)
				fds[k] = -1;
		}
		r = open_one(f, &fds[i]);
		if (r < 0)
			goto fail;
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
