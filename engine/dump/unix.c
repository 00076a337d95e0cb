// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unix sockets (stream, dgram, seqpacket): what restore needs to re-create
 * each one (engine/restore/unix.c), read from outside the frozen process.
 *
 *   - the socket itself: pidfd_getfd(2) gives us the same socket; its type,
 *     options and name come from getsockopt/getsockname;
 *   - its relations: sock_diag (NETLINK_SOCK_DIAG, one exact query per socket
 *     inode) gives the peer's inode, the queued connections of a listener
 *     (UNIX_DIAG_ICONS: the server-side sockets not yet accepted), queue
 *     lengths and the shutdown bits. The query runs in the process's network
 *     namespace (the netlink socket is opened there);
 *   - its receive queue: read without consuming it, MSG_PEEK from SO_PEEK_OFF
 *     0 (then SO_PEEK_OFF is put back as it was). Messages carrying
 *     descriptors (SCM_RIGHTS in flight) are refused.
 *
 * Peers are named by inode. Whether each peer is in the image is decided
 * once every process is dumped (eng_dump_unix_resolve): a peer outside fails
 * the checkpoint unless the user marked it external.
 *
 * Refused, one line each (pid, fd, what): descriptors in flight, a queue
 * above ENG_UNIX_QUEUE_MAX, a queued (not yet accepted) connection of a
 * listener that already carries data (we cannot read a socket nobody holds),
 * a socket in another state than unbound/bound/listening/connected.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/un.h>
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
#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif

/* sk_state values the diag reports for unix sockets (TCP_* numbering). */
#define UNIX_ST_ESTABLISHED	1
#define UNIX_ST_CLOSE		7
#define UNIX_ST_LISTEN		10

/* What one exact sock_diag query says about a socket. */
struct unix_diag {
	uint32_t state;
	bool has_peer;
	uint32_t peer;			/* 0: the peer was closed */
	uint32_t *icons;		/* malloc'd */
	size_t nr_icons;
	uint32_t rqueue, wqueue;	/* UNIX_DIAG_RQLEN */
	bool has_rqlen;
	uint8_t shutdown;
	bool has_vfs;
	uint32_t vfs_ino, vfs_dev;	/* the bound file; kernel dev_t encoding */
	char name[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	size_t name_len;		/* 0: unnamed */
};

/* A NETLINK_SOCK_DIAG socket in the network namespace of @pid. */
static int diag_socket(pid_t pid)
{
	char path[64];
	struct stat a, b;
	_cleanup_close_ int target = -1, self = -1;
	int fd, r;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
	if (stat(path, &a) < 0)
		return -errno;
	if (stat("/proc/thread-self/ns/net", &b) < 0)
		return -errno;
	if (a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
		fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
		return fd < 0 ? -errno : fd;
	}
	/* Another namespace: open the socket there, from this thread only. */
	target = open(path, O_RDONLY | O_CLOEXEC);
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (target < 0 || self < 0)
		return -errno;
	if (setns(target, CLONE_NEWNET) < 0)
		return -errno;
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	r = fd < 0 ? -errno : fd;
	if (setns(self, CLONE_NEWNET) < 0) {
		/* Cannot happen with the fd of our own namespace; never go on
		 * in the wrong namespace. */
		abort();
	}
	return r;
}

static void unix_diag_fini(struct unix_diag *d)
{
	free(d->icons);
	d->icons = NULL;
}

/* Exact query of the socket @ino. -ENOENT: no such unix socket there. */
static int diag_query(int nl, uint32_t ino, struct unix_diag *ret)
{
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req req;
	} msg = {
		.nlh = {
			.nlmsg_len = sizeof(msg),
			.nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST,
			.nlmsg_seq = ino,
		},
		.req = {
			.sdiag_family = AF_UNIX,
			.udiag_states = ~0u,
			.udiag_ino = ino,
			.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER |
				      UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN,
			.udiag_cookie = { ~0u, ~0u },
		},
	};
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	_cleanup_free_ char *buf = NULL;
	struct nlmsghdr *h;
	ssize_t n;
	size_t len;

	memset(ret, 0, sizeof(*ret));
	if (sendto(nl, &msg, sizeof(msg), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	/* One reply message; its size first (a listener's icons can be many). */
	n = recv(nl, NULL, 0, MSG_PEEK | MSG_TRUNC);
	if (n < 0)
		return -errno;
	if ((size_t)n > (16u << 20))
		return -EMSGSIZE;
	len = (size_t)n;
	buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	n = recv(nl, buf, len, 0);
	if (n < 0)
		return -errno;
	h = (struct nlmsghdr *)buf;
	if (!NLMSG_OK(h, (size_t)n))
		return -EBADMSG;
	if (h->nlmsg_type == NLMSG_ERROR) {
		const struct nlmsgerr *e = NLMSG_DATA(h);

		return e->error ? e->error : -ENOENT;
	}
	if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
	    h->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg)))
		return -EBADMSG;
	{
		const struct unix_diag_msg *m = NLMSG_DATA(h);
		const char *p = (const char *)(m + 1);
		const char *end = (const char *)h + h->nlmsg_len;

		if (m->udiag_ino != ino)
			return -EBADMSG;
		ret->state = m->udiag_state;
		while (p + sizeof(struct nlattr) <= end) {
			const struct nlattr *a = (const struct nlattr *)p;
			const char *data = p + NLA_HDRLEN;
			size_t dl;

			if (a->nla_len < NLA_HDRLEN || p + a->nla_len > end)
				return -EBADMSG;
			dl = a->nla_len - NLA_HDRLEN;
			switch (a->nla_type & NLA_TYPE_MASK) {
			case UNIX_DIAG_NAME:
				if (dl > sizeof(ret->name) - 1)
					return -EBADMSG;
				memcpy(ret->name, data, dl);
				ret->name_len = dl;
				break;
			case UNIX_DIAG_PEER:
				if (dl < 4)
					return -EBADMSG;
				ret->has_peer = true;
				memcpy(&ret->peer, data, 4);
				break;
			case UNIX_DIAG_ICONS:
				ret->nr_icons = dl / 4;
				free(ret->icons);
				ret->icons = malloc(dl ? dl : 1);
				if (!ret->icons)
					return -ENOMEM;
				memcpy(ret->icons, data, ret->nr_icons * 4);
				break;
			case UNIX_DIAG_RQLEN:
				if (dl < sizeof(struct unix_diag_rqlen))
					return -EBADMSG;
				memcpy(&ret->rqueue, data, 4);
				memcpy(&ret->wqueue, data + 4, 4);
				ret->has_rqlen = true;
				break;
			case UNIX_DIAG_VFS:
				if (dl < sizeof(struct unix_diag_vfs))
					return -EBADMSG;
				memcpy(&ret->vfs_ino, data, 4);
				memcpy(&ret->vfs_dev, data + 4, 4);
				ret->has_vfs = true;
				break;
			case UNIX_DIAG_SHUTDOWN:
				if (dl >= 1)
					ret->shutdown = (uint8_t)data[0];
				break;
			}
			p += NLA_ALIGN(a->nla_len);
		}
	}
	return 0;
}

static const char *type_name(int type)
{
	return type == SOCK_DGRAM ? "dgram" : type == SOCK_SEQPACKET ? "seqpacket" : "stream";
}

/* A sun_path for a message: abstract names as "@name". */
static const char *name_str(const void *name, size_t len, char *buf, size_t size)
{
	const char *s = name;

	if (!len)
		snprintf(buf, size, "(unnamed)");
	else if (s[0] == '\0')
		snprintf(buf, size, "@%.*s", (int)len - 1, s + 1);
	else
		snprintf(buf, size, "%.*s", (int)strnlen(s, len), s);
	return buf;
}

static int set_bytes(ProtobufCBinaryData *b, const void *p, size_t len)
{
	b->data = malloc(len ? len : 1);
	if (!b->data)
		return -ENOMEM;
	memcpy(b->data, p, len);
	b->len = len;
	return 0;
}

static int get_int(int fd, int opt, int *ret)
{
	socklen_t len = sizeof(*ret);

	*ret = 0;
	return getsockopt(fd, SOL_SOCKET, opt, ret, &len) < 0 ? -errno : 0;
}

static int push_entry(EngUnixSk *u, const void *data, size_t len, const void *from,
		      size_t from_len, bool dgram)
{
	size_t n = u->n_queue;
	ProtobufCBinaryData *q, *f;

	q = realloc(u->queue, (n + 1) * sizeof(*q));
	if (!q)
		return -ENOMEM;
	u->queue = q;
	if (set_bytes(&q[n], data, len) < 0)
		return -ENOMEM;
	u->n_queue++;
	if (!dgram)
		return 0;
	f = realloc(u->queue_from, (n + 1) * sizeof(*f));
	if (!f)
		return -ENOMEM;
	u->queue_from = f;
	if (set_bytes(&f[n], from, from_len) < 0)
		return -ENOMEM;
	u->n_queue_from++;
	return 0;
}

/*
 * Read the receive queue of @sk without consuming it. Dgram and seqpacket
 * keep one entry per message (a first peek of 0 bytes with MSG_TRUNC gives
 * its length; a message of 0 bytes is taken from that peek alone: peeking it
 * again would skip it), stream keeps chunks. A receive of 0 bytes is the end
 * of a stream; for messages it ends the queue only once receive is shut down.
 * -EOPNOTSUPP (detail set) for descriptors in flight or a queue too large.
 */
static int read_queue(struct eng_dump_ctx *ctx, int fd, int sk, int type, uint8_t shutdown,
		      EngUnixSk *u)
{
	bool msgs = type != SOCK_STREAM;
	size_t total = 0, cap = 64 << 10;
	_cleanup_free_ char *buf = NULL;
	int old_off, zero = 0, r = 0;

	if (get_int(sk, SO_PEEK_OFF, &old_off) < 0)
		return err_wrap(-errno, "process %d fd %d: SO_PEEK_OFF", ctx->pid, fd);
	if (setsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)) < 0)
		return err_wrap(-errno, "process %d fd %d: SO_PEEK_OFF", ctx->pid, fd);
	buf = malloc(cap);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * 253) + CMSG_SPACE(256)];
			struct cmsghdr align;
		} cbuf;
		struct sockaddr_un from;
		struct iovec iov = { buf, cap };
		struct msghdr mh = {
			.msg_name = &from, .msg_namelen = sizeof(from),
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf),
		};
		bool rights = false;
		ssize_t n;

		if (msgs) {
			/* The message's length: 0-byte peek with MSG_TRUNC. */
			struct msghdr probe = { .msg_name = &from, .msg_namelen = sizeof(from) };

			n = recvmsg(sk, &probe, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
			if (n < 0) {
				if (errno == EAGAIN)
					break;
				r = err_wrap(-errno, "process %d fd %d: peek", ctx->pid, fd);
				goto out;
			}
			if (n == 0) {
				if (shutdown & 1)	/* RCV_SHUTDOWN: end of queue */
					break;
				r = push_entry(u, "", 0, &from, probe.msg_namelen > sizeof(sa_family_t)
					       ? probe.msg_namelen - sizeof(sa_family_t) : 0, type == SOCK_DGRAM);
				if (r < 0)
					goto out;
				continue;
			}
			if ((size_t)n > cap) {
				char *nb;

				if ((size_t)n > ENG_UNIX_QUEUE_MAX) {
					r = err_set(EOPNOTSUPP, "process %d fd %d: unix %s socket has a "
						    "queued message of %zd bytes (limit %u)", ctx->pid, fd,
						    type_name(type), n, ENG_UNIX_QUEUE_MAX);
					goto out;
				}
				nb = realloc(buf, (size_t)n);
				if (!nb) {
					r = -ENOMEM;
					goto out;
				}
				buf = nb;
				cap = (size_t)n;
				iov.iov_base = buf;
				iov.iov_len = cap;
			}
		}
		n = recvmsg(sk, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EAGAIN)
				break;
			r = err_wrap(-errno, "process %d fd %d: peek", ctx->pid, fd);
			goto out;
		}
		/* Descriptors in flight: peeking installed copies in our table. */
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				int fds[253];

				memcpy(fds, CMSG_DATA(c), nfd * sizeof(int));
				for (size_t k = 0; k < nfd; k++)
					close(fds[k]);
				rights = true;
			}
		}
		if (rights || (mh.msg_flags & MSG_CTRUNC)) {
			r = err_set(EOPNOTSUPP, "process %d fd %d: unix %s socket has descriptors in "
				    "flight (SCM_RIGHTS) in its receive queue: not supported", ctx->pid,
				    fd, type_name(type));
			goto out;
		}
		if (n == 0 && !msgs)
			break;		/* end of stream */
		total += (size_t)n;
		if (total > ENG_UNIX_QUEUE_MAX) {
			r = err_set(EOPNOTSUPP, "process %d fd %d: unix %s socket has more than %u "
				    "bytes queued", ctx->pid, fd, type_name(type), ENG_UNIX_QUEUE_MAX);
			goto out;
		}
		r = push_entry(u, buf, (size_t)n, from.sun_path,
			       mh.msg_namelen > sizeof(sa_family_t) ?
			       mh.msg_namelen - sizeof(sa_family_t) : 0, type == SOCK_DGRAM);
		if (r < 0)
			goto out;
	}
out:
	if (setsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &old_off, sizeof(old_off)) < 0 && r >= 0)
		r = err_wrap(-errno, "process %d fd %d: SO_PEEK_OFF", ctx->pid, fd);
	return r;
}

/* Was socket @ino already saved for an earlier fd of the image? @cur is the
 * process being dumped (in img->procs or not yet). */
static bool dumped_before(const EngImage *img, const EngProcess *cur, uint64_t ino)
{
	size_t n = img ? img->n_procs : 0;

	for (size_t i = 0; i <= n; i++) {
		const EngProcess *p = i < n ? img->procs[i] : cur;

		if (!p || (i == n && n && img->procs[n - 1] == cur))
			continue;
		for (size_t k = 0; k < p->n_fds; k++) {
			const EngFd *f = p->fds[k];

			if (f && f->unix_sk && f->unix_sk->ino == ino)
				return true;
		}
	}
	return false;
}

static int save_opts(int sk, EngUnixSk *u)
{
	struct timeval tv;
	socklen_t tl;
	int v;

	if (get_int(sk, SO_PASSCRED, &v) == 0 && v)
		u->has_passcred = u->passcred = true;
	if (get_int(sk, SO_PASSSEC, &v) == 0 && v)
		u->has_passsec = u->passsec = true;
	if (get_int(sk, SO_PASSPIDFD, &v) == 0 && v)
		u->has_passpidfd = u->passpidfd = true;
	if (get_int(sk, SO_RCVBUF, &v) == 0) {
		u->has_rcvbuf = true;
		u->rcvbuf = (uint32_t)v;
	}
	if (get_int(sk, SO_SNDBUF, &v) == 0) {
		u->has_sndbuf = true;
		u->sndbuf = (uint32_t)v;
	}
	if (get_int(sk, SO_BUF_LOCK, &v) == 0 && v) {
		u->has_buf_lock = true;
		u->buf_lock = (uint32_t)v;
	}
	if (get_int(sk, SO_PEEK_OFF, &v) == 0 && v != -1) {
		u->has_peek_off = true;
		u->peek_off = v;
	}
	if (get_int(sk, SO_RCVLOWAT, &v) == 0 && v != 1) {
		u->has_rcvlowat = true;
		u->rcvlowat = v;
	}
	tl = sizeof(tv);
	if (getsockopt(sk, SOL_SOCKET, SO_RCVTIMEO, &tv, &tl) == 0 && (tv.tv_sec || tv.tv_usec)) {
		u->has_rcvtimeo_us = true;
		u->rcvtimeo_us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	}
	tl = sizeof(tv);
	if (getsockopt(sk, SOL_SOCKET, SO_SNDTIMEO, &tv, &tl) == 0 && (tv.tv_sec || tv.tv_usec)) {
		u->has_sndtimeo_us = true;
		u->sndtimeo_us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	}
	return 0;
}

/* Does the bound filesystem name still lead to this socket's file
 * (UNIX_DIAG_VFS: inode and kernel dev_t of the socket file)? */
static bool name_still_ours(struct eng_dump_ctx *ctx, const struct unix_diag *d)
{
	char root[64], full[PATH_MAX];
	struct stat a;

	if (!d->has_vfs)
		return false;
	/* The path as the process sees it: relative to its cwd, under its root. */
	snprintf(root, sizeof(root), "/proc/%d/%s", ctx->pid, d->name[0] == '/' ? "root" : "cwd");
	if ((size_t)snprintf(full, sizeof(full), "%s/%s", root, d->name) >= sizeof(full))
		return true;	/* cannot tell: restore's rules for the file apply */
	if (stat(full, &a) < 0 || !S_ISSOCK(a.st_mode))
		return false;
	return a.st_ino == d->vfs_ino && major(a.st_dev) == (d->vfs_dev >> 20) &&
	       minor(a.st_dev) == (d->vfs_dev & 0xfffff);
}

int eng_dump_unix_socket(struct eng_dump_ctx *ctx, int fd, const struct stat *st, EngUnixSk **ret)
{
	_cleanup_close_ int pidfd = -1, sk = -1, nl = -1;
	struct unix_diag d = {};
	int family, type, r;
	EngUnixSk *u;

	*ret = NULL;
	pidfd = (int)syscall(SYS_pidfd_open, ctx->pid, 0);
	if (pidfd < 0)
		return err_wrap(-errno, "process %d: pidfd_open", ctx->pid);
	sk = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	if (sk < 0)
		return err_wrap(-errno, "process %d fd %d: pidfd_getfd", ctx->pid, fd);
	if (get_int(sk, SO_DOMAIN, &family) < 0 || get_int(sk, SO_TYPE, &type) < 0)
		return err_wrap(-errno, "process %d fd %d: cannot inspect the socket", ctx->pid, fd);
	if (family != AF_UNIX)
		return 0;
	if (type != SOCK_STREAM && type != SOCK_DGRAM && type != SOCK_SEQPACKET)
		return err_set(EOPNOTSUPP, "process %d fd %d: unix socket of type %d not supported",
			       ctx->pid, fd, type);
	if (st->st_ino > UINT32_MAX)
		return err_set(EOPNOTSUPP, "process %d fd %d: socket inode %llu too large for "
			       "sock_diag", ctx->pid, fd, (unsigned long long)st->st_ino);
	nl = diag_socket(ctx->pid);
	if (nl < 0)
		return err_wrap(nl, "process %d: cannot open a sock_diag socket in its network "
				"namespace", ctx->pid);
	r = diag_query(nl, (uint32_t)st->st_ino, &d);
	if (r < 0)
		return err_wrap(r, "process %d fd %d: sock_diag of unix socket %llu", ctx->pid, fd,
				(unsigned long long)st->st_ino);

	u = malloc(sizeof(*u));
	if (!u) {
		unix_diag_fini(&d);
		return -ENOMEM;
	}
	eng_unix_sk__init(u);
	u->ino = st->st_ino;
	u->type = (uint32_t)type;
	if (d.name_len) {
		r = set_bytes(&u->name, d.name, d.name_len);
		if (r < 0)
			goto fail;
		u->has_name = true;
		if (d.name[0] != '\0' && !name_still_ours(ctx, &d))
			u->has_name_gone = u->name_gone = true;
	}
	if (d.shutdown) {
		u->has_shutdown = true;
		u->shutdown = d.shutdown;
	}
	if (d.state == UNIX_ST_LISTEN) {
		u->has_backlog = true;
		u->backlog = d.has_rqlen ? d.wqueue : 0;
		u->icons = calloc(d.nr_icons ? d.nr_icons : 1, sizeof(*u->icons));
		if (!u->icons) {
			r = -ENOMEM;
			goto fail;
		}
		/* The clients of the queued connections (0: a client that was
		 * closed meanwhile: that connection is dropped). */
		for (size_t i = 0; i < d.nr_icons; i++)
			if (d.icons[i])
				u->icons[u->n_icons++] = d.icons[i];
	} else if (d.state != UNIX_ST_ESTABLISHED && d.state != UNIX_ST_CLOSE) {
		r = err_set(EOPNOTSUPP, "process %d fd %d: unix %s socket in state %u not supported",
			    ctx->pid, fd, type_name(type), d.state);
		goto fail;
	}
	if (d.has_peer) {
		if (d.peer) {
			u->has_peer = true;
			u->peer = d.peer;
		} else if (type != SOCK_DGRAM && d.shutdown == 3) {
			/* Closing a peer shuts both directions of its other end. */
			u->has_peer_closed = u->peer_closed = true;
		} else if (type != SOCK_DGRAM) {
			/* Connected to a server-side socket nobody accepted yet: it
			 * has no inode. What the client sent waits there, charged to
			 * its send buffer, and cannot be read. */
			if (d.has_rqlen && d.wqueue) {
				r = err_set(EOPNOTSUPP, "process %d fd %d: unix %s socket has sent "
					    "data on a connection its server did not accept yet "
					    "(%u bytes of send buffer in use): cannot save it",
					    ctx->pid, fd, type_name(type), d.wqueue);
				goto fail;
			}
			u->has_pending = u->pending = true;
		}
		/* A dgram socket whose peer was closed: restored unconnected. */
	}
	if (u->has_peer || u->pending) {
		struct sockaddr_un pa;
		socklen_t pl = sizeof(pa);

		if (getpeername(sk, (struct sockaddr *)&pa, &pl) == 0 && pl > sizeof(sa_family_t)) {
			r = set_bytes(&u->peer_name, pa.sun_path, pl - sizeof(sa_family_t));
			if (r < 0)
				goto fail;
			u->has_peer_name = true;
		}
	}
	save_opts(sk, u);

	/* The queue once per socket in the image (the first fd holding it). */
	if (!u->has_backlog && !dumped_before(ctx->image, ctx->proc, u->ino)) {
		r = read_queue(ctx, fd, sk, type, d.shutdown, u);
		if (r < 0)
			goto fail;
	}
	unix_diag_fini(&d);
	*ret = u;
	return 0;
fail:
	unix_diag_fini(&d);
	eng_unix_sk__free_unpacked(u, NULL);
	return r;
}

/* Does @name (sun_path bytes) match @want: a path, or "@name" for an
 * abstract name? A path's trailing NULs do not count. */
static bool name_matches(const ProtobufCBinaryData *name, const char *want)
{
	size_t len = name->len, wl = strlen(want);

	if (!len)
		return false;
	if (name->data[0] == 0)
		return want[0] == '@' && wl == len && memcmp(want + 1, name->data + 1, len - 1) == 0;
	len = strnlen((const char *)name->data, len);
	return want[0] != '@' && wl == len && memcmp(want, name->data, len) == 0;
}

static bool is_external(const struct eng_dump_opts *opts, const EngUnixSk *u, uint64_t peer)
{
	if (!opts || opts->sz < offsetof(struct eng_dump_opts, nr_unix_external_names) +
				sizeof(opts->nr_unix_external_names))
		return false;
	for (size_t i = 0; i < opts->nr_unix_external; i++)
		if (opts->unix_external[i] == u->ino || opts->unix_external[i] == peer)
			return true;
	for (size_t i = 0; i < opts->nr_unix_external_names; i++)
		if (name_matches(&u->peer_name, opts->unix_external_names[i]))
			return true;
	return false;
}

/* Is the pending client @ino queued on a listener of @img? */
static bool image_has_listener_of(const EngImage *img, uint64_t ino)
{
	for (size_t i = 0; i < img->n_procs; i++) {
		const EngProcess *p = img->procs[i];

		for (size_t k = 0; k < p->n_fds; k++) {
			const EngUnixSk *u = p->fds[k]->unix_sk;

			for (size_t j = 0; u && j < u->n_icons; j++)
				if (u->icons[j] == ino)
					return true;
		}
	}
	return false;
}

static bool image_has_sk(const EngImage *img, uint64_t ino)
{
	for (size_t i = 0; i < img->n_procs; i++) {
		const EngProcess *p = img->procs[i];

		for (size_t k = 0; k < p->n_fds; k++)
			if (p->fds[k]->unix_sk && p->fds[k]->unix_sk->ino == ino)
				return true;
	}
	return false;
}

/* One refusal of the resolve pass: to opts->report (listed with the other
 * refused descriptors), the first one kept for the return value. */
struct refusals {
	const struct eng_dump_opts *opts;
	unsigned nr;
	char first[512];
};

static void refuse(struct refusals *rf, int r)
{
	const char *d = err_detail();

	if (!d || !d[0])
		d = strerror(-r);
	if (rf->opts && rf->opts->sz >= offsetof(struct eng_dump_opts, report_arg) +
					 sizeof(rf->opts->report_arg) && rf->opts->report)
		rf->opts->report(rf->opts->report_arg, d);
	if (!rf->nr++)
		snprintf(rf->first, sizeof(rf->first), "%s", d);
	err_clear();
}

/* Can socket @u (fd @fd of @p) be restored with its peer? 0, or
 * -EOPNOTSUPP with the detail; marks it external if the user said so. */
static int resolve_one(const EngImage *img, const EngProcess *p, uint32_t fd, EngUnixSk *u,
		       const struct eng_dump_opts *opts)
{
	char nbuf[sizeof(((struct sockaddr_un *)0)->sun_path) + 2], what[64];
	const char *peer_name;

	if (u->has_peer ? image_has_sk(img, u->peer) : image_has_listener_of(img, u->ino))
		return 0;
	peer_name = name_str(u->peer_name.data, u->peer_name.len, nbuf, sizeof(nbuf));
	if (u->has_peer)
		snprintf(what, sizeof(what), "socket %llu", (unsigned long long)u->peer);
	else
		snprintf(what, sizeof(what), "a listener's queue");
	if (!is_external(opts, u, u->has_peer ? u->peer : u->ino))
		return err_set(EOPNOTSUPP, "process %u fd %u: unix %s socket connected to a peer "
			       "outside the image (%s, \"%s\"); mark it external with --external "
			       "unix:%llu", p->pid, fd, type_name((int)u->type), what, peer_name,
			       (unsigned long long)(u->has_peer ? u->peer : u->ino));
	/* External: restore connects to the peer's name again. */
	if (!u->has_peer_name || !u->peer_name.len)
		return err_set(EOPNOTSUPP, "process %u fd %u: unix %s socket's external peer (%s) "
			       "has no name to connect to again", p->pid, fd,
			       type_name((int)u->type), what);
	if (u->n_queue)
		return err_set(EOPNOTSUPP, "process %u fd %u: unix %s socket connected to external "
			       "peer \"%s\" has %zu unread messages or chunks: they cannot be "
			       "restored on a new connection", p->pid, fd, type_name((int)u->type),
			       peer_name, u->n_queue);
	u->has_external = u->external = true;
	return 0;
}

/* The record of socket @ino other than @self (a kind FD_UNIX_SOCKET one
 * unless @any), or NULL. */
static EngUnixSk *other_record(const EngImage *img, const EngUnixSk *self, uint64_t ino, bool any)
{
	for (size_t i = 0; i < img->n_procs; i++) {
		const EngProcess *p = img->procs[i];

		for (size_t k = 0; k < p->n_fds; k++) {
			EngUnixSk *u = p->fds[k] ? p->fds[k]->unix_sk : NULL;

			if (u && u != self && u->ino == ino &&
			    (any || p->fds[k]->kind == ENG_FD_KIND__FD_UNIX_SOCKET))
				return u;
		}
	}
	return NULL;
}

/*
 * Standard streams on unix sockets (FD_SOCKET with a record): one whose
 * peer is in the image becomes FD_UNIX_SOCKET (a socketpair between a
 * parent and a child's stdio, say); the others lose their record and stay
 * the caller's streams. The queue read for the stream (the first record
 * of its socket) moves to another record of the socket.
 */
static void resolve_stdio(EngImage *img)
{
	for (size_t i = 0; i < img->n_procs; i++) {
		const EngProcess *p = img->procs[i];

		for (size_t k = 0; k < p->n_fds; k++) {
			EngFd *f = p->fds[k];
			EngUnixSk *u = f ? f->unix_sk : NULL, *o;

			if (!u || f->kind != ENG_FD_KIND__FD_SOCKET)
				continue;
			if (u->has_peer && other_record(img, u, u->peer, true)) {
				f->kind = ENG_FD_KIND__FD_UNIX_SOCKET;
				continue;
			}
			o = other_record(img, u, u->ino, false);
			if (o && !o->n_queue && u->n_queue) {
				o->queue = u->queue;
				o->n_queue = u->n_queue;
				o->queue_from = u->queue_from;
				o->n_queue_from = u->n_queue_from;
				u->queue = NULL;
				u->queue_from = NULL;
				u->n_queue = u->n_queue_from = 0;
			}
			eng_unix_sk__free_unpacked(u, NULL);
			f->unix_sk = NULL;
		}
	}
}

int eng_dump_unix_resolve(EngImage *img, const struct eng_dump_opts *opts)
{
	struct refusals rf = { .opts = opts };

	resolve_stdio(img);

	for (size_t i = 0; i < img->n_procs; i++) {
		const EngProcess *p = img->procs[i];

		for (size_t k = 0; k < p->n_fds; k++) {
			EngUnixSk *u = p->fds[k] ? p->fds[k]->unix_sk : NULL;
			int r;

			if (!u || (!u->has_peer && !u->pending))
				continue;
			r = resolve_one(img, p, p->fds[k]->fd, u, opts);
			if (r == -EOPNOTSUPP)
				refuse(&rf, r);
			else if (r < 0)
				return r;
		}
	}
	if (rf.nr == 1)
		return err_set(EOPNOTSUPP, "%s", rf.first);
	if (rf.nr)
		return err_set(EOPNOTSUPP, "%s (and %u more unix sockets with a peer outside the "
			       "image)", rf.first, rf.nr - 1);
	return 0;
}
