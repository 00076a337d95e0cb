// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unix sockets at restore (the records come from engine/dump/unix.c).
 *
 * Every socket is created once per inode, whatever number of fds (or
 * processes) hold it, as one group with the sockets it was tied to:
 *   - a connected stream/seqpacket socket and its peer: one socketpair();
 *     a peer that was closed: a pair whose other end (the "ghost") sends
 *     the queued bytes and is then closed, which gives the EOF again;
 *   - a listening socket: bound, listen(backlog), then every client of its
 *     queued connections that is in the image connects again, in queue
 *     order (the connections wait in the queue as before);
 *   - a dgram socket: a socketpair() if both ends are unnamed and connected
 *     to each other; else bound to its name, connected to its peer's name
 *     once every queue is refilled;
 *   - external peers (checkpoint --external): connect() to the peer's name.
 * Then (eng_restore_unix_finish) the receive queues are refilled by sending
 * each saved message from the socket that sent it (the peer, a named sender
 * of the image, else a temporary unnamed socket), shutdown states and
 * socket options are applied, ghosts closed.
 *
 * A filesystem name still held by a socket file is re-bound only if nobody
 * listens on it (a connect to it is refused): that stale file is unlinked.
 *
 * Not kept: the sender's name of a datagram from outside the image or from
 * an unnamed socket; the name of a connected stream socket (an accepted
 * connection reports its listener's name; restored as a pair, it has none).
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "restore.h"

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif
#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif

/* While queues are refilled a sender's buffer must hold them all. */
#define UNIX_FILL_SNDBUF	(256 << 20)

struct rst_unix_sk {
	uint64_t ino;
	const EngUnixSk *rec;		/* the record with the queue (first of its ino) */
	const EngFd *f;			/* its fd record (file flags) */
	const EngProcess *owner;	/* the process of that record: it finishes it */
	int fd;				/* created socket, -1 not yet */
	int ghost;			/* other end of a pair whose peer was closed */
	bool pair;			/* created as a socketpair with its peer */
	bool connect_later;		/* dgram: connect to the peer's name in finish */
	bool finished;
};

struct eng_rst_unix {
	struct rst_unix_sk *v;
	size_t nr;
	const char *cwd;		/* for relative names: the first process's cwd */
};

static struct rst_unix_sk *find(struct eng_rst_unix *u, uint64_t ino)
{
	for (size_t i = 0; i < u->nr; i++)
		if (u->v[i].ino == ino)
			return &u->v[i];
	return NULL;
}

int eng_restore_unix_new(const EngImage *img, const EngProcess *only, struct eng_rst_unix **ret)
{
	size_t nprocs = only ? 1 : img->n_procs;
	struct eng_rst_unix *u = calloc(1, sizeof(*u));
	size_t cap = 0;

	if (!u)
		return -ENOMEM;
	for (size_t i = 0; i < nprocs; i++) {
		const EngProcess *p = only ? only : img->procs[i];

		if (!u->cwd)
			u->cwd = p->cwd;
		for (size_t k = 0; k < p->n_fds; k++) {
			const EngFd *f = p->fds[k];
			struct rst_unix_sk *s;

			if (f->kind != ENG_FD_KIND__FD_UNIX_SOCKET)
				continue;
			if (!f->unix_sk || f->unix_sk->name.len > sizeof(((struct sockaddr_un *)0)->sun_path) ||
			    f->unix_sk->peer_name.len > sizeof(((struct sockaddr_un *)0)->sun_path)) {
				eng_restore_unix_free(u);
				return err_set(EBADMSG, "process %u fd %u: bad unix socket record", p->pid,
					       f->fd);
			}
			if (find(u, f->unix_sk->ino))
				continue;
			if (u->nr == cap) {
				size_t nc = cap ? cap * 2 : 16;
				struct rst_unix_sk *nv = realloc(u->v, nc * sizeof(*nv));

				if (!nv) {
					eng_restore_unix_free(u);
					return -ENOMEM;
				}
				u->v = nv;
				cap = nc;
			}
			s = &u->v[u->nr++];
			*s = (struct rst_unix_sk){ .ino = f->unix_sk->ino, .rec = f->unix_sk, .f = f,
						   .owner = p, .fd = -1, .ghost = -1 };
		}
	}
	*ret = u;
	return 0;
}

void eng_restore_unix_free(struct eng_rst_unix *u)
{
	if (!u)
		return;
	for (size_t i = 0; i < u->nr; i++) {
		if (u->v[i].fd >= 0)
			close(u->v[i].fd);
		if (u->v[i].ghost >= 0)
			close(u->v[i].ghost);
	}
	free(u->v);
	free(u);
}

static const char *name_str(const ProtobufCBinaryData *n, char *buf, size_t size)
{
	if (!n->len)
		snprintf(buf, size, "(unnamed)");
	else if (n->data[0] == 0)
		snprintf(buf, size, "@%.*s", (int)n->len - 1, (const char *)n->data + 1);
	else
		snprintf(buf, size, "%.*s", (int)strnlen((const char *)n->data, n->len),
			 (const char *)n->data);
	return buf;
}

static socklen_t make_addr(const ProtobufCBinaryData *n, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, n->data, n->len);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n->len);
}

static bool is_path(const ProtobufCBinaryData *n)
{
	return n->len && n->data[0] != 0;
}

/* Run @op (bind or connect) on @fd with name @n; a relative path resolves
 * against the saved cwd, as it did in the process. Returns 0 or -errno. */
static int at_name(struct eng_rst_unix *u, int fd, const ProtobufCBinaryData *n, bool do_bind)
{
	struct sockaddr_un sa;
	socklen_t len = make_addr(n, &sa);
	_cleanup_close_ int here = -1;
	int r;

	if (is_path(n) && n->data[0] != '/' && u->cwd) {
		here = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (here < 0 || chdir(u->cwd) < 0)
			return -errno;
	}
	r = do_bind ? bind(fd, (struct sockaddr *)&sa, len) : connect(fd, (struct sockaddr *)&sa, len);
	r = r < 0 ? -errno : 0;
	if (here >= 0 && fchdir(here) < 0 && r == 0)
		r = -errno;
	return r;
}

/* Whether something listens on (or is bound to) the socket file @n. */
static bool name_alive(struct eng_rst_unix *u, int type, const ProtobufCBinaryData *n)
{
	_cleanup_close_ int probe = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int r;

	if (probe < 0)
		return true;
	r = at_name(u, probe, n, false);
	/* A file no socket is bound to refuses; anything else means alive. */
	return r != -ECONNREFUSED;
}

/* Bind @s's socket to its name; a stale socket file (nobody bound to it)
 * is unlinked first. */
static int bind_name(struct eng_rst_unix *u, struct rst_unix_sk *s, int fd)
{
	const ProtobufCBinaryData *n = &s->rec->name;
	char nbuf[sizeof(((struct sockaddr_un *)0)->sun_path) + 2], path[PATH_MAX];
	struct stat st;
	int r;

	r = at_name(u, fd, n, true);
	if (r == -EADDRINUSE && is_path(n)) {
		name_str(n, nbuf, sizeof(nbuf));
		if (nbuf[0] == '/' || !u->cwd)
			snprintf(path, sizeof(path), "%s", nbuf);
		else
			snprintf(path, sizeof(path), "%s/%s", u->cwd, nbuf);
		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    !name_alive(u, (int)s->rec->type, n)) {
			if (unlink(path) < 0 && errno != ENOENT)
				return err_set(errno, "cannot remove the stale unix socket file \"%s\": %m",
					       path);
			r = at_name(u, fd, n, true);
		}
	}
	if (r < 0)
		return err_set(-r, "cannot bind unix socket %llu to \"%s\": %s",
			       (unsigned long long)s->ino, name_str(n, nbuf, sizeof(nbuf)),
			       r == -EADDRINUSE ? "in use" : strerror(-r));
	return 0;
}

/* The name of a socket that was bound and unlinked since: bound again,
 * its file removed again once nothing needs to connect to it. */
static void unlink_gone(struct eng_rst_unix *u, const struct rst_unix_sk *s)
{
	char nbuf[sizeof(((struct sockaddr_un *)0)->sun_path) + 2], path[PATH_MAX];

	if (!s->rec->name_gone || !is_path(&s->rec->name))
		return;
	name_str(&s->rec->name, nbuf, sizeof(nbuf));
	if (nbuf[0] == '/' || !u->cwd)
		snprintf(path, sizeof(path), "%s", nbuf);
	else
		snprintf(path, sizeof(path), "%s/%s", u->cwd, nbuf);
	unlink(path);
}

/* Non-blocking until set_created() gives it its saved flags: a connect()
 * that would wait (a full queue) fails instead of hanging the restore. */
static int new_socket(const struct rst_unix_sk *s)
{
	int fd = socket(AF_UNIX, (int)s->rec->type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	return fd < 0 ? err_set(errno, "unix socket %llu: socket: %m",
				(unsigned long long)s->ino) : fd;
}

static int set_created(struct rst_unix_sk *s, int fd)
{
	s->fd = fd;
	if (fcntl(fd, F_SETFL, s->f->flags & O_NONBLOCK) < 0)
		return err_set(errno, "unix socket %llu: O_NONBLOCK: %m", (unsigned long long)s->ino);
	return 0;
}

static int create(struct eng_rst_unix *u, struct rst_unix_sk *s);

static bool same_name(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
	return a->len && a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

/* The listener of the image that @s was accepted from (an accepted socket
 * carries its listener's name), or NULL. */
static struct rst_unix_sk *listener_of(struct eng_rst_unix *u, const struct rst_unix_sk *s)
{
	if (s->rec->has_backlog || !s->rec->name.len || s->rec->type == SOCK_DGRAM)
		return NULL;
	for (size_t i = 0; i < u->nr; i++) {
		const EngUnixSk *l = u->v[i].rec;

		if (l->has_backlog && l->type == s->rec->type && same_name(&l->name, &s->rec->name))
			return &u->v[i];
	}
	return NULL;
}

/* The connections accepted from listener @l whose both ends are in the
 * image: each client connects to @l again and is accepted, so both ends
 * keep their names (the server side its listener's, the client's peer
 * name). Before the queued ones: the queue is empty while we accept. */
static int accept_again(struct eng_rst_unix *u, struct rst_unix_sk *l)
{
	char nbuf[sizeof(((struct sockaddr_un *)0)->sun_path) + 2];
	int r;

	for (size_t i = 0; i < u->nr; i++) {
		struct rst_unix_sk *s = &u->v[i], *c;
		int cfd, sfd;

		if (s->fd >= 0 || listener_of(u, s) != l || !s->rec->has_peer)
			continue;
		c = find(u, s->rec->peer);
		if (!c || c->fd >= 0 || c->rec->type != s->rec->type || !c->rec->has_peer ||
		    c->rec->peer != s->ino)
			continue;
		cfd = new_socket(c);
		if (cfd < 0)
			return cfd;
		r = 0;
		if (c->rec->name.len && !same_name(&c->rec->name, &l->rec->name))
			r = bind_name(u, c, cfd);
		if (r >= 0 && (r = at_name(u, cfd, &l->rec->name, false)) < 0)
			r = err_set(-r, "cannot connect to unix socket \"%s\" again: %s",
				    name_str(&l->rec->name, nbuf, sizeof(nbuf)), strerror(-r));
		if (r < 0) {
			close(cfd);
			return r;
		}
		sfd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		if (sfd < 0) {
			r = err_set(errno, "cannot accept a connection on \"%s\" again: %m",
				    name_str(&l->rec->name, nbuf, sizeof(nbuf)));
			close(cfd);
			return r;
		}
		s->pair = c->pair = true;
		r = set_created(c, cfd);
		if (r >= 0)
			r = set_created(s, sfd);
		else
			close(sfd);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A listener, its accepted connections (accept_again), then the clients of
 * its queued connections that we hold. */
static int create_listener(struct eng_rst_unix *u, struct rst_unix_sk *s)
{
	char nbuf[sizeof(((struct sockaddr_un *)0)->sun_path) + 2];
	int fd, r;

	if (!s->rec->name.len)
		return err_set(EBADMSG, "listening unix socket %llu has no name",
			       (unsigned long long)s->ino);
	fd = new_socket(s);
	if (fd < 0)
		return fd;
	r = bind_name(u, s, fd);
	if (r >= 0 && listen(fd, (int)s->rec->backlog) < 0)
		r = err_set(errno, "cannot listen on unix socket \"%s\": %m",
			    name_str(&s->rec->name, nbuf, sizeof(nbuf)));
	if (r < 0) {
		close(fd);
		return r;
	}
	r = set_created(s, fd);
	if (r < 0)
		return r;
	r = accept_again(u, s);
	if (r < 0)
		return r;
	for (size_t i = 0; i < s->rec->n_icons; i++) {
		struct rst_unix_sk *c = find(u, s->rec->icons[i]);
		int cfd;

		if (!c || c->fd >= 0 || !c->rec->pending)
			continue;	/* a client outside the image: dropped */
		cfd = new_socket(c);
		if (cfd < 0)
			return cfd;
		/* The listener's queue had room for them all: no wait here. */
		r = at_name(u, cfd, &s->rec->name, false);
		if (r < 0) {
			close(cfd);
			return err_set(-r, "cannot queue a connection to unix socket \"%s\" again: %s",
				       name_str(&s->rec->name, nbuf, sizeof(nbuf)), strerror(-r));
		}
		r = set_created(c, cfd);
		if (r < 0)
			return r;
	}
	unlink_gone(u, s);
	return 0;
}

static int create(struct eng_rst_unix *u, struct rst_unix_sk *s)
{
	const EngUnixSk *rec = s->rec;
	char nbuf[sizeof(((struct sockaddr_un *)0)->sun_path) + 2];
	struct rst_unix_sk *p = rec->has_peer ? find(u, rec->peer) : NULL;
	int sv[2], fd, r;

	if (rec->has_backlog)
		return create_listener(u, s);
	if (rec->pending && !rec->external) {
		/* Its listener re-creates the connection, in queue order. */
		for (size_t i = 0; i < u->nr; i++) {
			const EngUnixSk *l = u->v[i].rec;

			for (size_t k = 0; l->has_backlog && k < l->n_icons; k++) {
				if (l->icons[k] != s->ino)
					continue;
				if (u->v[i].fd < 0) {
					r = create(u, &u->v[i]);
					if (r < 0)
						return r;
				}
				if (s->fd >= 0)
					return 0;
			}
		}
		return err_set(EBADMSG, "unix socket %llu: its listener is not in the image",
			       (unsigned long long)s->ino);
	}
	if (rec->external) {
		/* Outside the image: connect to the peer's name again. */
		fd = new_socket(s);
		if (fd < 0)
			return fd;
		if (rec->type == SOCK_DGRAM && rec->name.len) {
			r = bind_name(u, s, fd);
			if (r < 0) {
				close(fd);
				return r;
			}
		}
		r = at_name(u, fd, &rec->peer_name, false);
		if (r < 0) {
			close(fd);
			return err_set(-r, "unix socket %llu: cannot connect to its external peer "
				       "\"%s\" again: %s", (unsigned long long)s->ino,
				       name_str(&rec->peer_name, nbuf, sizeof(nbuf)), strerror(-r));
		}
		return set_created(s, fd);
	}
	if (rec->type != SOCK_DGRAM && p) {
		/* An accepted connection: made again through its listener. */
		struct rst_unix_sk *l = listener_of(u, s) ?: listener_of(u, p);

		if (l && l->fd < 0) {
			r = create(u, l);
			if (r < 0)
				return r;
			if (s->fd >= 0)
				return 0;
		}
	}
	if (rec->type != SOCK_DGRAM && (p || rec->peer_closed)) {
		if (p && p->fd >= 0)
			return err_set(EBADMSG, "unix socket %llu: its peer %llu is already connected",
				       (unsigned long long)s->ino, (unsigned long long)p->ino);
		if (p && p->rec->type != rec->type)
			return err_set(EBADMSG, "unix socket %llu: peer of another type",
				       (unsigned long long)s->ino);
		if (socketpair(AF_UNIX, (int)rec->type | SOCK_CLOEXEC, 0, sv) < 0)
			return err_set(errno, "unix socket %llu: socketpair: %m",
				       (unsigned long long)s->ino);
		s->pair = true;
		r = set_created(s, sv[0]);
		if (p) {
			p->pair = true;
			if (r >= 0)
				r = set_created(p, sv[1]);
			else
				close(sv[1]);
		} else {
			s->ghost = sv[1];
		}
		return r;
	}
	if (rec->type == SOCK_DGRAM && p && p->rec->has_peer && p->rec->peer == s->ino &&
	    !rec->name.len && !p->rec->name.len) {
		if (p->fd >= 0)
			return err_set(EBADMSG, "unix socket %llu: its peer %llu is already created",
				       (unsigned long long)s->ino, (unsigned long long)p->ino);
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0)
			return err_set(errno, "unix socket %llu: socketpair: %m",
				       (unsigned long long)s->ino);
		s->pair = p->pair = true;
		r = set_created(s, sv[0]);
		if (r >= 0)
			r = set_created(p, sv[1]);
		else
			close(sv[1]);
		return r;
	}
	/* Unconnected (bound or not), or a dgram socket connected by name. */
	fd = new_socket(s);
	if (fd < 0)
		return fd;
	if (rec->name.len) {
		r = bind_name(u, s, fd);
		if (r < 0) {
			close(fd);
			return r;
		}
	}
	r = set_created(s, fd);
	if (r < 0)
		return r;
	if (p) {
		if (!p->rec->name.len)
			return err_set(EOPNOTSUPP, "unix dgram socket %llu: its peer %llu has no name "
				       "to connect to", (unsigned long long)s->ino,
				       (unsigned long long)p->ino);
		if (p->fd < 0) {
			r = create(u, p);
			if (r < 0)
				return r;
		}
		s->connect_later = true;
	}
	if (!rec->has_backlog)
		unlink_gone(u, s);
	return 0;
}

int eng_restore_unix_get(struct eng_rst_unix *u, uint64_t ino, int *ret_fd)
{
	struct rst_unix_sk *s = find(u, ino);
	int r;

	if (!s)
		return err_set(EBADMSG, "unix socket %llu: no record", (unsigned long long)ino);
	if (s->fd < 0) {
		r = create(u, s);
		if (r < 0)
			return r;
	}
	*ret_fd = s->fd;
	return 0;
}

static int set_int(int fd, int opt, int v)
{
	return setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v)) < 0 ? -errno : 0;
}

/* A sender's buffer large enough for everything it re-sends. */
static void grow_sndbuf(int fd)
{
	if (set_int(fd, SO_SNDBUFFORCE, UNIX_FILL_SNDBUF) < 0)
		set_int(fd, SO_SNDBUF, UNIX_FILL_SNDBUF);
}

static int send_all(int fd, const ProtobufCBinaryData *d, const struct sockaddr_un *to,
		    socklen_t to_len, bool record)
{
	size_t off = 0;

	do {
		ssize_t n = sendto(fd, d->data + off, d->len - off, MSG_DONTWAIT | MSG_NOSIGNAL,
				   (const struct sockaddr *)to, to ? to_len : 0);

		if (n < 0)
			return -errno;
		if (record && (size_t)n != d->len)
			return -EMSGSIZE;
		off += (size_t)n;
	} while (off < d->len);
	return 0;
}

/* The socket of the image bound to @name (a dgram sender), or NULL. */
static struct rst_unix_sk *find_named(struct eng_rst_unix *u, const ProtobufCBinaryData *name)
{
	for (size_t i = 0; name->len && i < u->nr; i++) {
		const EngUnixSk *r = u->v[i].rec;

		if (u->v[i].fd >= 0 && r->type == SOCK_DGRAM && !r->has_backlog &&
		    r->name.len == name->len && memcmp(r->name.data, name->data, name->len) == 0)
			return &u->v[i];
	}
	return NULL;
}

static int fill_dgram(struct eng_rst_unix *u, struct rst_unix_sk *s)
{
	const EngUnixSk *rec = s->rec;
	struct rst_unix_sk *p = rec->has_peer ? find(u, rec->peer) : NULL;
	_cleanup_close_ int tmp = -1;
	struct sockaddr_un to;
	socklen_t to_len = 0;
	char nbuf[sizeof(to.sun_path) + 2];
	int r;

	if (rec->name.len)
		to_len = make_addr(&rec->name, &to);
	for (size_t i = 0; i < rec->n_queue; i++) {
		const ProtobufCBinaryData *from = i < rec->n_queue_from ? &rec->queue_from[i] : NULL;
		struct rst_unix_sk *snd = from ? find_named(u, from) : NULL;
		int fd;

		if (s->pair && p && (!snd || snd == p)) {
			fd = p->fd;	/* a socketpair: the peer sent it */
			r = send_all(fd, &rec->queue[i], NULL, 0, true);
		} else {
			if (!to_len)
				return err_set(EOPNOTSUPP, "unix dgram socket %llu: %zu queued datagrams "
					       "but no name to send them to",
					       (unsigned long long)s->ino, rec->n_queue);
			if (snd) {
				fd = snd->fd;
			} else {
				if (tmp < 0) {
					tmp = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
					if (tmp < 0)
						return -errno;
					grow_sndbuf(tmp);
				}
				fd = tmp;
			}
			r = send_all(fd, &rec->queue[i], &to, to_len, true);
		}
		if (r < 0)
			return err_set(-r, "cannot queue datagram %zu of %zu on unix socket \"%s\" "
				       "again: %s", i + 1, rec->n_queue,
				       name_str(&rec->name, nbuf, sizeof(nbuf)), strerror(-r));
	}
	return 0;
}

static int fill_stream(struct eng_rst_unix *u, struct rst_unix_sk *s)
{
	const EngUnixSk *rec = s->rec;
	struct rst_unix_sk *p = rec->has_peer ? find(u, rec->peer) : NULL;
	int from = s->ghost >= 0 ? s->ghost : p && s->pair ? p->fd : -1;

	if (!rec->n_queue)
		return 0;
	if (from < 0)
		return err_set(EOPNOTSUPP, "unix %s socket %llu: %zu queued chunks but no peer to "
			       "send them again", rec->type == SOCK_SEQPACKET ? "seqpacket" :
			       "stream", (unsigned long long)s->ino, rec->n_queue);
	grow_sndbuf(from);
	for (size_t i = 0; i < rec->n_queue; i++) {
		int r = send_all(from, &rec->queue[i], NULL, 0, rec->type == SOCK_SEQPACKET);

		if (r < 0)
			return err_set(-r, "cannot queue %zu bytes on unix socket %llu again: %s",
				       rec->queue[i].len, (unsigned long long)s->ino, strerror(-r));
	}
	return 0;
}

static int apply_opts(struct rst_unix_sk *s)
{
	const EngUnixSk *rec = s->rec;
	int fd = s->fd, r = 0;

	if (rec->passcred)
		r = r ?: set_int(fd, SO_PASSCRED, 1);
	if (rec->passsec)
		r = r ?: set_int(fd, SO_PASSSEC, 1);
	if (rec->passpidfd)
		r = r ?: set_int(fd, SO_PASSPIDFD, 1);
	if (rec->has_rcvlowat)
		r = r ?: set_int(fd, SO_RCVLOWAT, rec->rcvlowat);
	/* Sizes as read (the kernel doubles what is set), then the lock bits
	 * the program had (setting a size locks it). */
	if (rec->has_sndbuf && set_int(fd, SO_SNDBUFFORCE, (int)(rec->sndbuf / 2)) < 0)
		r = r ?: set_int(fd, SO_SNDBUF, (int)(rec->sndbuf / 2));
	if (rec->has_rcvbuf && set_int(fd, SO_RCVBUFFORCE, (int)(rec->rcvbuf / 2)) < 0)
		r = r ?: set_int(fd, SO_RCVBUF, (int)(rec->rcvbuf / 2));
	if (rec->has_sndbuf || rec->has_rcvbuf)
		set_int(fd, SO_BUF_LOCK, (int)rec->buf_lock);	/* >= 5.14; else kept locked */
	if (rec->has_rcvtimeo_us || rec->has_sndtimeo_us) {
		struct timeval rt = { (time_t)(rec->rcvtimeo_us / 1000000),
				      (suseconds_t)(rec->rcvtimeo_us % 1000000) };
		struct timeval st = { (time_t)(rec->sndtimeo_us / 1000000),
				      (suseconds_t)(rec->sndtimeo_us % 1000000) };

		if (rec->has_rcvtimeo_us && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof(rt)) < 0)
			r = r ?: -errno;
		if (rec->has_sndtimeo_us && setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &st, sizeof(st)) < 0)
			r = r ?: -errno;
	}
	if (rec->has_peek_off)
		r = r ?: set_int(fd, SO_PEEK_OFF, rec->peek_off);
	if (r < 0)
		return err_set(-r, "unix socket %llu: cannot set its options: %s",
			       (unsigned long long)s->ino, strerror(-r));
	return 0;
}

static int finish(struct eng_rst_unix *u, const EngProcess *owner);

/* The refill sends to names that may be relative: from the saved cwd. */
int eng_restore_unix_finish(struct eng_rst_unix *u, const EngProcess *owner)
{
	_cleanup_close_ int here = -1;
	int r;

	if (u->cwd) {
		here = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (here < 0)
			return err_set(errno, "cannot open the current directory: %m");
		if (chdir(u->cwd) < 0) {
			/* Relative names then fail with their own error. */
			close(here);
			here = -1;
		}
	}
	r = finish(u, owner);
	if (here >= 0 && fchdir(here) < 0 && r >= 0)
		r = err_set(errno, "cannot go back to the current directory: %m");
	return r;
}

static int finish(struct eng_rst_unix *u, const EngProcess *owner)
{
	char nbuf[sizeof(((struct sockaddr_un *)0)->sun_path) + 2];
	int r;

#define MINE(s) ((s)->fd >= 0 && !(s)->finished && (!owner || (s)->owner == owner))
	/* 1. datagrams, before dgram sockets connect (a connected socket takes
	 * datagrams from its peer only) */
	for (size_t i = 0; i < u->nr; i++) {
		struct rst_unix_sk *s = &u->v[i];

		if (MINE(s) && s->rec->type == SOCK_DGRAM && s->rec->n_queue) {
			r = fill_dgram(u, s);
			if (r < 0)
				return r;
		}
	}
	/* 2. dgram connections by name */
	for (size_t i = 0; i < u->nr; i++) {
		struct rst_unix_sk *s = &u->v[i];
		struct rst_unix_sk *p;

		if (!MINE(s) || !s->connect_later)
			continue;
		p = find(u, s->rec->peer);
		r = p ? at_name(u, s->fd, &p->rec->name, false) : -ENOENT;
		if (r < 0)
			return err_set(-r, "unix dgram socket %llu: cannot connect to \"%s\" again: %s",
				       (unsigned long long)s->ino, p ? name_str(&p->rec->name, nbuf,
				       sizeof(nbuf)) : "?", strerror(-r));
	}
	/* 3. stream and seqpacket bytes, from the other end */
	for (size_t i = 0; i < u->nr; i++) {
		struct rst_unix_sk *s = &u->v[i];

		if (MINE(s) && s->rec->type != SOCK_DGRAM) {
			r = fill_stream(u, s);
			if (r < 0)
				return r;
		}
	}
	/* 4. ghosts go (EOF after the bytes), shutdown states, options */
	for (size_t i = 0; i < u->nr; i++) {
		struct rst_unix_sk *s = &u->v[i];
		uint32_t sh = s->rec->shutdown & 3;

		if (!MINE(s))
			continue;
		if (s->ghost >= 0) {
			close(s->ghost);
			s->ghost = -1;
			sh = 0;		/* the close shut both directions */
		}
		if (sh && !s->rec->has_backlog &&
		    shutdown(s->fd, sh == 3 ? SHUT_RDWR : sh == 1 ? SHUT_RD : SHUT_WR) < 0 &&
		    errno != ENOTCONN)
			return err_set(errno, "unix socket %llu: shutdown: %m",
				       (unsigned long long)s->ino);
	}
	for (size_t i = 0; i < u->nr; i++) {
		struct rst_unix_sk *s = &u->v[i];

		if (!MINE(s))
			continue;
		r = apply_opts(s);
		if (r < 0)
			return r;
		s->finished = true;
	}
#undef MINE
	return 0;
}

bool eng_restore_unix_have_connected(const EngProcess *p)
{
	for (size_t i = 0; i < p->n_fds; i++) {
		const EngUnixSk *u = p->fds[i]->unix_sk;

		if (p->fds[i]->kind == ENG_FD_KIND__FD_UNIX_SOCKET && u &&
		    (u->has_peer || u->peer_closed || u->pending || u->external || u->n_queue))
			return true;
	}
	return false;
}

/* ------------------------------------------------------ fds.c hooks */

/* The set of this restore: the child (or a tree's root before it forks)
 * is single-threaded and makes it once; forked processes inherit it. */
static struct eng_rst_unix *the_set;

int eng_restore_unix_fd(struct eng_rst_ctx *ctx, size_t i, int *ret)
{
	const EngFd *f = ctx->proc->fds[i];
	int r;

	if (!f->unix_sk)
		return err_set(EBADMSG, "fd %u: unix socket without its record", f->fd);
	if (!the_set) {
		/* Every process of the image: peers may sit in another one. */
		r = ctx->img ? eng_restore_unix_new(ctx->img, NULL, &the_set)
			     : eng_restore_unix_new(NULL, ctx->proc, &the_set);
		if (r < 0)
			return r;
	}
	r = eng_restore_unix_get(the_set, f->unix_sk->ino, ret);
	if (r < 0)
		return err_wrap(r, "fd %u", f->fd);
	return 0;
}

int eng_restore_unix_complete(struct eng_rst_ctx *ctx)
{
	if (!the_set)
		return 0;
	return eng_restore_unix_finish(the_set, ctx->proc);
}
