// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * warmd's connections: who may talk to us, and the frames (drawn in
 * proto/warmd.proto) in and out of non-blocking sockets.
 *
 * Input is buffered until a whole frame is there; descriptors are queued in
 * arrival order and each frame takes its nr_fds of them (the kernel never
 * merges the descriptors of two sendmsg calls into one recvmsg, and they
 * come with the first byte of their frame). Output is queued when the peer
 * does not read; a reply's descriptor goes with its first byte.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/log.h"
#include "common/util.h"
#include "warmd.h"

/*
 * Freed connections are buried until the end of the event batch: a later
 * event of the same batch may still point at one.
 */
static struct wd_list graveyard = WD_LIST_INIT(graveyard);

void wd_conn_free_buried(void)
{
	while (!wd_list_empty(&graveyard)) {
		struct wd_conn *c = wd_container_of(graveyard.next, struct wd_conn, link);

		wd_list_del(&c->link);
		free(c);
	}
}

static void conn_free(struct wd_conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	wd_pool_conn_closed(c);
	wd_epoll_del(c->fd);
	close(c->fd);
	for (size_t i = 0; i < c->nr_in_fds; i++)
		close(c->in_fds[i]);
	if (c->out_fd_pending)
		close(c->out_fd);
	pthread_mutex_lock(&wd.lock);
	wd_list_del(&c->link);
	wd.nr_conns--;
	pthread_mutex_unlock(&wd.lock);
	free(c->in);
	free(c->out);
	c->in = c->out = NULL;
	wd_list_add_tail(&graveyard, &c->link);
}

/*
 * Permission, the second gate after the socket's mode: root, the allowed
 * uid, or the allowed group as primary or supplementary group (as they
 * were when the peer connected: SO_PEERCRED, SO_PEERGROUPS).
 */
static bool peer_allowed(int fd, const struct ucred *cr)
{
	gid_t groups[256];
	socklen_t len = sizeof(groups);

	if (cr->uid == 0)
		return true;
	if (wd.opts.allow_uid != (uid_t)-1 && cr->uid == wd.opts.allow_uid)
		return true;
	if (wd.opts.group == (gid_t)-1)
		return false;
	if (cr->gid == wd.opts.group)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false;		/* ERANGE (more than 256 groups) included */
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == wd.opts.group)
			return true;
	return false;
}

static const char *allowed_uid_str(void)
{
	static char buf[32];

	if (wd.opts.allow_uid == (uid_t)-1)
		return "";
	snprintf(buf, sizeof(buf), ", uid %u", wd.opts.allow_uid);
	return buf;
}

static const char *allowed_group_str(void)
{
	static char buf[32];

	if (wd.opts.group == (gid_t)-1)
		return "";
	snprintf(buf, sizeof(buf), ", group %u", wd.opts.group);
	return buf;
}

void wd_conn_accept(int lfd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct wd_conn *c;
	WdReply rep = WD_REPLY__INIT;
	int fd;

	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_error("accept: %m");
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		log_error("SO_PEERCRED: %m");
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->uid = cr.uid;
	c->gid = cr.gid;
	c->pid = cr.pid;
	c->out_fd = -1;
	c->watch = (struct wd_watch){ WD_WATCH_CONN, c };
	pthread_mutex_lock(&wd.lock);
	wd_list_add_tail(&wd.conns, &c->link);
	wd.nr_conns++;
	pthread_mutex_unlock(&wd.lock);
	if (wd_epoll_add(fd, EPOLLIN | EPOLLRDHUP, &c->watch) < 0) {
		conn_free(c);
		return;
	}
	if (!peer_allowed(fd, &cr)) {
		log_info("refused pid %d (uid %u, gid %u): not root, not the allowed uid or group",
			 cr.pid, cr.uid, cr.gid);
		c->refused = true;
		wd_conn_reply_err(c, 0, WD_OP__HELLO, EACCES,
				  "warmd refuses uid %u (gid %u): only root%s%s may use it", cr.uid,
				  cr.gid, allowed_uid_str(), allowed_group_str());
		if (!c->out_len || c->closing)
			conn_free(c);
		return;
	}
	if (wd.nr_conns > wd.opts.max_conns) {
		c->refused = true;
		wd_conn_reply_err(c, 0, WD_OP__HELLO, EAGAIN, "warmd has %u connections, its limit",
				  wd.opts.max_conns);
		if (!c->out_len || c->closing)
			conn_free(c);
		return;
	}
	rep.op = WD_OP__HELLO;
	rep.has_op = rep.has_version = rep.has_seq = true;
	rep.version = WD_PROTO_VERSION;
	if (wd_conn_send(c, &rep, -1) < 0 || c->closing)
		conn_free(c);
}

/*
 * Level-triggered interest: input unless a parked request left the input
 * buffer full or the peer was refused (either would wake us in a loop),
 * output while some is queued.
 */
static void update_events(struct wd_conn *c)
{
	bool full = c->in_len >= WD_FRAME_MAX + 2 * sizeof(struct wd_frame_hdr);
	bool no_input = c->refused || (c->waiting && full);	/* a refused peer is not read */
	struct epoll_event ev = {
		.events = (no_input ? EPOLLRDHUP : EPOLLIN | EPOLLRDHUP) | (c->out_len ? EPOLLOUT : 0),
		.data.ptr = &c->watch,
	};

	epoll_ctl(wd.epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Send what is queued; the connection is closed on a hard error. */
static int flush_out(struct wd_conn *c)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cbuf;

	while (c->out_len) {
		struct iovec iov = { c->out, c->out_len };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (c->out_fd_pending) {
			struct cmsghdr *cm;

			memset(&cbuf, 0, sizeof(cbuf));
			mh.msg_control = cbuf.buf;
			mh.msg_controllen = sizeof(cbuf.buf);
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &c->out_fd, sizeof(int));
		}
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0)
			return -errno;
		if (c->out_fd_pending) {
			close(c->out_fd);
			c->out_fd = -1;
			c->out_fd_pending = false;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
	update_events(c);
	return 0;
}

/*
 * Queue @rep (and a duplicate of @fd if >= 0, sent with its first byte)
 * and send what can be sent now. A reply with a descriptor waits until
 * the previous one's descriptor went out.
 */
int wd_conn_send(struct wd_conn *c, const WdReply *rep, int fd)
{
	size_t len = wd_reply__get_packed_size(rep);
	struct wd_frame_hdr hdr = { .len = htole32((uint32_t)len),
				    .nr_fds = htole16(fd >= 0 ? 1 : 0) };
	int r;

	if (len == 0 || len > WD_FRAME_MAX || c->out_len + sizeof(hdr) + len > WD_OUT_MAX ||
	    (fd >= 0 && c->out_fd_pending)) {
		c->closing = true;
		return -EMSGSIZE;
	}
	if (c->out_len + sizeof(hdr) + len > c->out_cap) {
		size_t cap = MAX(c->out_cap * 2, c->out_len + sizeof(hdr) + len);
		uint8_t *p = realloc(c->out, cap);

		if (!p) {
			c->closing = true;
			return -ENOMEM;
		}
		c->out = p;
		c->out_cap = cap;
	}
	if (fd >= 0 && c->out_len) {
		/* Only the first byte of the queue may carry it. */
		c->closing = true;
		return -EBUSY;
	}
	if (fd >= 0) {
		c->out_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (c->out_fd < 0) {
			c->closing = true;
			return -errno;
		}
		c->out_fd_pending = true;
	}
	memcpy(c->out + c->out_len, &hdr, sizeof(hdr));
	wd_reply__pack(rep, c->out + c->out_len + sizeof(hdr));
	c->out_len += sizeof(hdr) + len;
	r = flush_out(c);
	if (r < 0)
		c->closing = true;
	return r;
}

int wd_conn_reply_err(struct wd_conn *c, uint64_t seq, WdOp op, int err, const char *fmt, ...)
{
	WdReply rep = WD_REPLY__INIT;
	char msg[WD_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rep.error = -err;
	rep.message = msg;
	rep.has_seq = rep.has_op = true;
	rep.seq = seq;
	rep.op = op;
	return wd_conn_send(c, &rep, -1);
}

/* Read what is there; -errno (or -ECONNRESET on EOF) ends the connection. */
static int fill_in(struct wd_conn *c)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * WD_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;

	for (;;) {
		struct iovec iov;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf) };
		int r = 0;
		ssize_t n;

		if (c->in_cap - c->in_len < 4096) {
			size_t cap = MAX(c->in_cap * 2, (size_t)16384);
			uint8_t *p;

			/* One frame at most, plus the next header. */
			if (cap > WD_FRAME_MAX + 2 * sizeof(struct wd_frame_hdr) + 16384)
				cap = WD_FRAME_MAX + 2 * sizeof(struct wd_frame_hdr) + 16384;
			if (cap <= c->in_len)
				return 0;	/* full: process first */
			p = realloc(c->in, cap);
			if (!p)
				return -ENOMEM;
			c->in = p;
			c->in_cap = cap;
		}
		iov = (struct iovec){ c->in + c->in_len, c->in_cap - c->in_len };
		n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			return -errno;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < k; i++) {
				int got;

				memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				if (c->nr_in_fds < ARRAY_SIZE(c->in_fds))
					c->in_fds[c->nr_in_fds++] = got;
				else {
					close(got);
					r = -EPROTO;
				}
			}
		}
		if (mh.msg_flags & MSG_CTRUNC)
			r = -EPROTO;
		if (r < 0)
			return r;
		if (n == 0)
			return -ECONNRESET;
		c->in_len += (size_t)n;
	}
}

/* Handle every whole frame in the buffer. -EPROTO ends the connection. */
static int process_in(struct wd_conn *c)
{
	size_t off = 0;
	int r = 0;

	while (!c->waiting && !c->closing && c->in_len - off >= sizeof(struct wd_frame_hdr)) {
		struct wd_frame_hdr hdr;
		int fds[WD_MAX_FDS];
		uint32_t len;
		size_t nr;
		WdRequest *req;

		memcpy(&hdr, c->in + off, sizeof(hdr));
		len = le32toh(hdr.len);
		nr = le16toh(hdr.nr_fds);
		if (len == 0 || len > WD_FRAME_MAX || nr > WD_MAX_FDS || hdr.flags) {
			r = -EPROTO;
			break;
		}
		if (c->in_len - off < sizeof(hdr) + len)
			break;
		if (c->nr_in_fds < nr) {
			r = -EPROTO;
			break;
		}
		memcpy(fds, c->in_fds, nr * sizeof(int));
		memmove(c->in_fds, c->in_fds + nr, (c->nr_in_fds - nr) * sizeof(int));
		c->nr_in_fds -= nr;
		req = wd_request__unpack(NULL, len, c->in + off + sizeof(hdr));
		off += sizeof(hdr) + len;
		if (!req) {
			for (size_t i = 0; i < nr; i++)
				close(fds[i]);
			r = -EPROTO;
			break;
		}
		/* Takes the descriptors. */
		wd_pool_request(c, req, fds, nr, now_ns());
		wd_request__free_unpacked(req, NULL);
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return r;
}

void wd_conn_event(struct wd_conn *c, uint32_t events)
{
	int r = 0;

	if (c->dead)
		return;
	if (events & EPOLLOUT) {
		r = flush_out(c);
		if (r >= 0 && c->refused && !c->out_len)
			r = -EACCES;
	}
	if (r >= 0 && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !c->refused) {
		r = fill_in(c);
		if (r >= 0 || r == -ECONNRESET) {
			int p = process_in(c);

			if (p < 0)
				r = p;
		}
		if (r == -EPROTO)
			log_info("pid %d (uid %u) broke the protocol: connection closed", c->pid, c->uid);
	}
	if (r >= 0 && (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) &&
	    (c->refused || c->in_len >= WD_FRAME_MAX + 2 * sizeof(struct wd_frame_hdr)))
		r = -ECONNRESET;	/* gone, and its EOF would never be read */
	if (r >= 0 && c->refused && !c->out_len)
		r = -EACCES;
	if (r < 0 || c->closing)
		conn_free(c);
	else
		update_events(c);
}

/*
 * A request parked in a pool (register, acquire) was answered: go on with
 * the frames that came meanwhile.
 */
void wd_conn_resume(struct wd_conn *c)
{
	if (c->dead)
		return;
	c->waiting = false;
	if (process_in(c) < 0 || c->closing)
		conn_free(c);
	else
		update_events(c);
}

void wd_conn_close_all(void)
{
	struct wd_list *pos, *tmp;

	wd_list_for_each_safe(pos, tmp, &wd.conns)
		conn_free(wd_container_of(pos, struct wd_conn, link));
}
