// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libwarmfork: blocking request/reply client of warmd (proto/warmd.proto).
 *
 * Self-contained on purpose: it links nothing of warmfork's GPL modules,
 * only the code generated from warmd.proto and libprotobuf-c (BSD).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "warmfork.h"
#include "wd-wire.h"
#include "warmd.pb-c.h"

#define WF_EXPORT __attribute__((visibility("default")))

struct wf_client {
	int fd;
	uint64_t seq;
	bool broken;			/* a frame was cut: unusable */
	pthread_mutex_t lock;
};

static __thread char errmsg[WD_MSG_MAX + 128];

_Static_assert(WF_MAX_FDS == WD_MAX_FDS, "wf and wd descriptor limits agree");
_Static_assert(WF_NAME_MAX == WD_NAME_MAX, "wf and wd name limits agree");

__attribute__((format(printf, 2, 3)))
static int fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
	return -err;
}

WF_EXPORT const char *wf_errmsg(void)
{
	return errmsg;
}

static void close_fds(int *fds, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* Write all of @buf; the first sendmsg carries @fds. */
static int send_all(int fd, const void *buf, size_t len, const int *fds, size_t nr_fds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * WD_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	size_t done = 0;

	while (done < len) {
		struct iovec iov = { (char *)buf + done, len - done };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (done == 0 && nr_fds) {
			struct cmsghdr *cm;

			memset(&cbuf, 0, sizeof(cbuf));
			mh.msg_control = cbuf.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nr_fds);
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int) * nr_fds);
			memcpy(CMSG_DATA(cm), fds, sizeof(int) * nr_fds);
		}
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

/*
 * Read exactly @len bytes; descriptors that come with them are appended to
 * @fds (at most @max_fds, *nr_fds counts them; any beyond are closed and
 * make it -EPROTO).
 */
static int recv_all(int fd, void *buf, size_t len, int *fds, size_t max_fds, size_t *nr_fds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * WD_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	size_t done = 0;
	int r = 0;

	while (done < len) {
		struct iovec iov = { (char *)buf + done, len - done };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf) };
		ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			size_t k;

			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int got;

				memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				if (*nr_fds < max_fds)
					fds[(*nr_fds)++] = got;
				else {
					close(got);
					r = -EPROTO;
				}
			}
		}
		if (mh.msg_flags & MSG_CTRUNC)
			r = -EPROTO;
		if (n == 0)
			return -ECONNRESET;
		done += (size_t)n;
	}
	return r;
}

/*
 * Read one reply frame: its message (unpacked) and its descriptors
 * (exactly hdr.nr_fds of them, at most @max_fds, else -EPROTO).
 */
static int read_reply(struct wf_client *c, WdReply **ret, int *fds, size_t max_fds,
		      size_t *ret_nr_fds)
{
	struct wd_frame_hdr hdr;
	size_t nr = 0;
	uint8_t *buf;
	uint32_t len;
	WdReply *rep;
	int r;

	r = recv_all(c->fd, &hdr, sizeof(hdr), fds, max_fds, &nr);
	if (r < 0)
		goto broken;
	len = le32toh(hdr.len);
	if (len == 0 || len > WD_FRAME_MAX || le16toh(hdr.nr_fds) != nr || hdr.flags) {
		r = -EPROTO;
		goto broken;
	}
	buf = malloc(len);
	if (!buf) {
		r = -ENOMEM;
		goto broken;
	}
	r = recv_all(c->fd, buf, len, fds, max_fds, &nr);
	if (r >= 0 && nr != le16toh(hdr.nr_fds))
		r = -EPROTO;
	if (r < 0) {
		free(buf);
		goto broken;
	}
	rep = wd_reply__unpack(NULL, len, buf);
	free(buf);
	if (!rep) {
		r = -EPROTO;
		goto broken;
	}
	*ret = rep;
	*ret_nr_fds = nr;
	return 0;
broken:
	close_fds(fds, nr);
	c->broken = true;
	if (r == -ECONNRESET || r == -EPIPE)
		return fail(ECONNRESET, "warmd closed the connection");
	if (r == -EPROTO)
		return fail(EPROTO, "warmd sent a malformed frame");
	return fail(-r, "reading from warmd: %s", strerror(-r));
}

static int send_request(struct wf_client *c, WdRequest *req, const int *fds, size_t nr_fds)
{
	size_t len = wd_request__get_packed_size(req);
	struct wd_frame_hdr *hdr;
	uint8_t *buf;
	int r;

	if (len == 0 || len > WD_FRAME_MAX)
		return fail(EMSGSIZE, "request of %zu bytes is too large", len);
	buf = malloc(sizeof(*hdr) + len);
	if (!buf)
		return fail(ENOMEM, "out of memory");
	hdr = (struct wd_frame_hdr *)buf;
	hdr->len = htole32((uint32_t)len);
	hdr->nr_fds = htole16((uint16_t)nr_fds);
	hdr->flags = 0;
	wd_request__pack(req, buf + sizeof(*hdr));
	r = send_all(c->fd, buf, sizeof(*hdr) + len, fds, nr_fds);
	free(buf);
	if (r < 0) {
		c->broken = true;
		if (r == -EPIPE || r == -ECONNRESET)
			return fail(ECONNRESET, "warmd closed the connection");
		if (r == -EBADF)
			return fail(EBADF, "a descriptor to pass is not open");
		return fail(-r, "writing to warmd: %s", strerror(-r));
	}
	return 0;
}

/* The error of a reply, with its message recorded. */
static int reply_error(const WdReply *rep)
{
	int err = rep->error;

	if (err >= 0)
		return 0;
	if (err < -4095)
		err = -EPROTO;
	return fail(-err, "%s", rep->message && *rep->message ? rep->message : strerror(-err));
}

/*
 * One request and its reply, under the client's lock. On success *ret is
 * the reply (free with wd_reply__free_unpacked) whether or not it carries
 * an error, and @ret_fds its descriptors.
 */
static int transact(struct wf_client *c, WdRequest *req, const int *fds, size_t nr_fds,
		    WdReply **ret, int *ret_fds, size_t max_ret_fds, size_t *ret_nr_fds)
{
	WdReply *rep = NULL;
	size_t nr = 0;
	int r;

	pthread_mutex_lock(&c->lock);
	if (c->broken) {
		r = fail(ECONNRESET, "the connection to warmd was lost earlier");
		goto out;
	}
	req->has_seq = true;
	req->seq = ++c->seq;
	r = send_request(c, req, fds, nr_fds);
	if (r < 0)
		goto out;
	r = read_reply(c, &rep, ret_fds, max_ret_fds, &nr);
	if (r < 0)
		goto out;
	if (!rep->has_seq || rep->seq != req->seq) {
		close_fds(ret_fds, nr);
		wd_reply__free_unpacked(rep, NULL);
		c->broken = true;
		r = fail(EPROTO, "warmd answered another request");
		goto out;
	}
	*ret = rep;
	*ret_nr_fds = nr;
out:
	pthread_mutex_unlock(&c->lock);
	return r;
}

WF_EXPORT int wf_connect(const char *socket_path, struct wf_client **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct wf_client *c;
	WdReply *rep = NULL;
	int fds[WD_MAX_FDS];
	size_t nr = 0;
	int r;

	if (!socket_path)
		socket_path = getenv("WARMD_SOCKET");
	if (!socket_path || !*socket_path)
		socket_path = WF_DEFAULT_SOCKET;
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return fail(ENAMETOOLONG, "socket path \"%s\" is too long", socket_path);
	strcpy(sa.sun_path, socket_path);
	c = calloc(1, sizeof(*c));
	if (!c)
		return fail(ENOMEM, "out of memory");
	pthread_mutex_init(&c->lock, NULL);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		r = fail(errno, "socket: %s", strerror(errno));
		goto fail;
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		r = fail(e, "cannot connect to warmd at \"%s\": %s%s", socket_path, strerror(e),
			 e == EACCES ? " (the socket's mode and group decide who may)" : "");
		goto fail;
	}
	r = read_reply(c, &rep, fds, WD_MAX_FDS, &nr);
	if (r < 0)
		goto fail;
	close_fds(fds, nr);
	if (rep->error < 0) {
		r = reply_error(rep);
	} else if (!rep->has_op || rep->op != WD_OP__HELLO || !rep->has_version) {
		r = fail(EPROTO, "\"%s\" did not greet like warmd", socket_path);
	} else if (rep->version != WD_PROTO_VERSION) {
		r = fail(EPROTONOSUPPORT, "warmd speaks protocol %u, we speak %u", rep->version,
			 WD_PROTO_VERSION);
	}
	wd_reply__free_unpacked(rep, NULL);
	if (r < 0)
		goto fail;
	*ret = c;
	return 0;
fail:
	wf_disconnect(c);
	return r;
}

WF_EXPORT void wf_disconnect(struct wf_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* A request whose reply carries nothing but its error. */
static int simple(struct wf_client *c, WdRequest *req)
{
	WdReply *rep;
	int fds[WD_MAX_FDS];
	size_t nr;
	int r;

	r = transact(c, req, NULL, 0, &rep, fds, WD_MAX_FDS, &nr);
	if (r < 0)
		return r;
	close_fds(fds, nr);
	r = reply_error(rep);
	wd_reply__free_unpacked(rep, NULL);
	return r;
}

static int check_pool_name(const char *pool)
{
	if (!wd_name_valid(pool))
		return fail(EINVAL, "invalid pool name \"%s\" (1..%d of A-Z a-z 0-9 . _ -)",
			    pool ? pool : "", WD_NAME_MAX);
	return 0;
}

WF_EXPORT int wf_pool_register(struct wf_client *c, const char *pool, const char *snapshot,
			       const struct wf_pool_opts *opts)
{
	struct wf_pool_opts o = { .idle_target = 4 };
	WdRequest req = WD_REQUEST__INIT;
	int r;

	if (!c)
		return fail(EINVAL, "no client");
	if (opts) {
		size_t sz = opts->sz ? opts->sz : sizeof(o);

		memcpy(&o, opts, sz < sizeof(o) ? sz : sizeof(o));
	}
	r = check_pool_name(pool);
	if (r < 0)
		return r;
	if (!snapshot || !*snapshot || strlen(snapshot) > 256)
		return fail(EINVAL, "invalid snapshot id");
	req.op = WD_OP__REGISTER;
	req.pool = (char *)pool;
	req.snapshot = (char *)snapshot;
	req.has_idle_target = req.has_max_busy = true;
	req.idle_target = o.idle_target;
	req.max_busy = o.max_busy;
	return simple(c, &req);
}

WF_EXPORT int wf_pool_unregister(struct wf_client *c, const char *pool)
{
	WdRequest req = WD_REQUEST__INIT;
	int r;

	if (!c)
		return fail(EINVAL, "no client");
	r = check_pool_name(pool);
	if (r < 0)
		return r;
	req.op = WD_OP__UNREGISTER;
	req.pool = (char *)pool;
	return simple(c, &req);
}

WF_EXPORT int wf_acquire(struct wf_client *c, const char *pool, const struct wf_acquire_opts *opts,
			 struct wf_instance *ret)
{
	struct wf_acquire_opts o = {};
	WdRequest req = WD_REQUEST__INIT;
	int32_t targets[WD_MAX_FDS];
	int fds[WD_MAX_FDS], rfds[WD_MAX_FDS];
	WdReply *rep;
	size_t nr = 0;
	int r;

	if (!c || !ret)
		return fail(EINVAL, "no client or no result");
	if (opts) {
		size_t sz = opts->sz ? opts->sz : sizeof(o);

		memcpy(&o, opts, sz < sizeof(o) ? sz : sizeof(o));
	}
	r = check_pool_name(pool);
	if (r < 0)
		return r;
	if (o.nr_fds > WD_MAX_FDS || (o.nr_fds && !o.fds))
		return fail(EINVAL, "at most %d descriptors may be passed", WD_MAX_FDS);
	for (size_t i = 0; i < o.nr_fds; i++) {
		if (o.fds[i].fd < 0 || o.fds[i].target_fd < 0)
			return fail(EBADF, "descriptor map %zu: %d -> %d is invalid", i, o.fds[i].fd,
				    o.fds[i].target_fd);
		for (size_t j = 0; j < i; j++)
			if (o.fds[j].target_fd == o.fds[i].target_fd)
				return fail(EINVAL, "instance descriptor %d is given twice",
					    o.fds[i].target_fd);
		fds[i] = o.fds[i].fd;
		targets[i] = o.fds[i].target_fd;
	}
	req.op = WD_OP__ACQUIRE;
	req.pool = (char *)pool;
	req.n_target_fds = o.nr_fds;
	req.target_fds = targets;
	req.has_timeout_ms = true;
	req.timeout_ms = o.timeout_ms;
	r = transact(c, &req, fds, o.nr_fds, &rep, rfds, WD_MAX_FDS, &nr);
	if (r < 0)
		return r;
	r = reply_error(rep);
	if (r >= 0 && (nr != 1 || !rep->has_pid || rep->pid <= 0)) {
		c->broken = true;
		r = fail(EPROTO, "warmd's acquire reply has no instance");
	}
	if (r >= 0) {
		*ret = (struct wf_instance){
			.pid = rep->pid,
			.ns_pid = rep->has_ns_pid ? rep->ns_pid : 0,
			.pidfd = rfds[0],
			.latency_ns = rep->latency_ns,
		};
		nr = 0;
	}
	close_fds(rfds, nr);
	wd_reply__free_unpacked(rep, NULL);
	return r;
}

WF_EXPORT int wf_release(struct wf_client *c, pid_t pid)
{
	WdRequest req = WD_REQUEST__INIT;

	if (!c || pid <= 0)
		return fail(EINVAL, "no client or invalid pid %d", pid);
	req.op = WD_OP__RELEASE;
	req.has_pid = true;
	req.pid = pid;
	return simple(c, &req);
}

WF_EXPORT int wf_signal(struct wf_client *c, pid_t pid, int sig)
{
	WdRequest req = WD_REQUEST__INIT;

	if (!c || pid <= 0 || sig <= 0 || sig >= 65)
		return fail(EINVAL, "no client, invalid pid %d or signal %d", pid, sig);
	req.op = WD_OP__SIGNAL;
	req.has_pid = req.has_signal = true;
	req.pid = pid;
	req.signal = sig;
	return simple(c, &req);
}

static void copy_str(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
}

WF_EXPORT int wf_stats(struct wf_client *c, const char *pool, struct wf_pool_stats **ret,
		       size_t *ret_nr)
{
	WdRequest req = WD_REQUEST__INIT;
	struct wf_pool_stats *out;
	int fds[WD_MAX_FDS];
	WdReply *rep;
	size_t nr;
	int r;

	if (!c || !ret || !ret_nr)
		return fail(EINVAL, "no client or no result");
	if (pool) {
		r = check_pool_name(pool);
		if (r < 0)
			return r;
	}
	req.op = WD_OP__STATS;
	req.pool = (char *)pool;
	r = transact(c, &req, NULL, 0, &rep, fds, WD_MAX_FDS, &nr);
	if (r < 0)
		return r;
	close_fds(fds, nr);
	r = reply_error(rep);
	if (r < 0)
		goto out;
	out = calloc(rep->n_pools ? rep->n_pools : 1, sizeof(*out));
	if (!out) {
		r = fail(ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < rep->n_pools; i++) {
		const WdPoolStats *p = rep->pools[i];
		struct wf_pool_stats *s = &out[i];

		copy_str(s->pool, sizeof(s->pool), p->pool);
		copy_str(s->snapshot, sizeof(s->snapshot), p->snapshot);
		s->idle = p->idle;
		s->busy = p->busy;
		s->waiting = p->waiting;
		s->idle_target = p->idle_target;
		s->max_busy = p->max_busy;
		s->spawned = p->spawned;
		s->failed = p->failed;
		s->acquired = p->acquired;
		s->exited = p->exited;
		s->acquire_p50_ns = p->acquire_p50_ns;
		s->acquire_p99_ns = p->acquire_p99_ns;
		s->acquire_max_ns = p->acquire_max_ns;
		s->gone = p->gone;
		copy_str(s->last_error, sizeof(s->last_error), p->last_error);
	}
	*ret = out;
	*ret_nr = rep->n_pools;
out:
	wd_reply__free_unpacked(rep, NULL);
	return r;
}
