// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * unix-extname: unix sockets connected to a server outside the image,
 * checkpointed with --external=unix:@cr-unix-extname (cr-harness
 * --ckpt-flag): restore connects them to the server's name again.
 *
 * Before ready a child (outside the image: no --tree; it outlives the
 * checkpointed process and the harness kills it at the end) serves a stream
 * listener on the abstract name @cr-unix-extname, answering "S:" + what it
 * gets, and a dgram socket bound to the same name (names are per type),
 * answering "D:" + what it gets to the sender's name. fd 20 is a stream client of the listener, fd 21 a
 * dgram socket bound to $CR_DIR/me.d and connected to the dgram name; both
 * did one round trip (nothing left unread).
 * After go: 20 and 21 are connected to @cr-unix-extname again, 21 is bound to me.d again, and both get the server's answers to a payload
 * (published for tamper) whose hash was kept apart.
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

#define NAME "cr-unix-extname"

static uint64_t payload[4];

static socklen_t abstract(struct sockaddr_un *sa, const char *name)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path + 1, name, strlen(name));
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
}

static ssize_t rcv(int fd, void *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 3000) <= 0)
		return -2;
	return recv(fd, buf, len, MSG_DONTWAIT);
}

static uint64_t hash(const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t h = 0x5eed;

	for (size_t i = 0; i < len; i++)
		h = cr_mix64(h ^ b[i]);
	return h;
}

static __attribute__((noreturn)) void server(int l, int d)
{
	struct pollfd p[18] = { { .fd = l, .events = POLLIN }, { .fd = d, .events = POLLIN } };
	unsigned char buf[256];
	nfds_t n = 2;

	for (;;) {
		if (poll(p, n, -1) < 0)
			_exit(1);
		for (nfds_t i = 0; i < n; i++) {
			struct sockaddr_un from;
			socklen_t fl = sizeof(from);
			ssize_t m;

			if (!p[i].revents)
				continue;
			if (i == 0) {
				int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);

				if (c >= 0 && n < 18) {
					p[n].fd = c;
					p[n++].events = POLLIN;
				}
				continue;
			}
			m = recvfrom(p[i].fd, buf + 2, sizeof(buf) - 2, 0, (struct sockaddr *)&from, &fl);
			if (m <= 0) {
				p[i] = p[--n];
				break;
			}
			buf[0] = i == 1 ? 'D' : 'S';
			buf[1] = ':';
			if (i == 1)
				sendto(d, buf, (size_t)m + 2, 0, (struct sockaddr *)&from, fl);
			else
				send(p[i].fd, buf, (size_t)m + 2, MSG_NOSIGNAL);
		}
	}
}

/* Send the payload on @fd, the answer must be @tag ":" payload. */
static void check_answer(int fd, char tag, uint64_t want_hash, const char *what)
{
	unsigned char buf[256];
	ssize_t n;

	if (send(fd, payload, sizeof(payload), MSG_NOSIGNAL) != sizeof(payload)) {
		cr_check(false, "%s: send: %m", what);
		return;
	}
	n = rcv(fd, buf, sizeof(buf));
	cr_check(n == 2 + (ssize_t)sizeof(payload) && buf[0] == tag && buf[1] == ':' &&
		 hash(buf + 2, sizeof(payload)) == want_hash, "%s: answer of %zd bytes wrong", what, n);
}

int main(int argc, char **argv)
{
	struct sockaddr_un ln, dn, me, got;
	socklen_t ll, dl, ml, gl;
	unsigned char buf[64];
	uint64_t want;
	int l, d, s;
	pid_t pid;

	cr_init(argc, argv);
	if (getrandom(payload, sizeof(payload), 0) != sizeof(payload))
		cr_fail("getrandom: %m");
	want = hash(payload, sizeof(payload));
	ll = abstract(&ln, NAME);
	dl = abstract(&dn, NAME);	/* one name for both types (hashed by type) */
	memset(&me, 0, sizeof(me));
	me.sun_family = AF_UNIX;
	if ((size_t)snprintf(me.sun_path, sizeof(me.sun_path), "%s/me.d", cr_dir()) >=
	    sizeof(me.sun_path))
		cr_skip("$CR_DIR too long for a unix socket path");
	ml = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(me.sun_path) + 1);

	l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	d = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (l < 0 || d < 0 || bind(l, (struct sockaddr *)&ln, ll) < 0 || listen(l, 8) < 0 ||
	    bind(d, (struct sockaddr *)&dn, dl) < 0)
		cr_fail("server sockets (another test still running?): %m");
	pid = fork();
	if (pid < 0)
		cr_fail("fork: %m");
	if (pid == 0)
		server(l, d);
	close(l);
	close(d);

	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&ln, ll) < 0 || dup3(s, 20, O_CLOEXEC) < 0)
		cr_fail("client: %m");
	close(s);
	s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&me, ml) < 0 ||
	    connect(s, (struct sockaddr *)&dn, dl) < 0 || dup3(s, 21, O_CLOEXEC) < 0)
		cr_fail("dgram client: %m");
	close(s);
	if (send(20, "x", 1, 0) != 1 || rcv(20, buf, sizeof(buf)) != 3 ||
	    send(21, "y", 1, 0) != 1 || rcv(21, buf, sizeof(buf)) != 3)
		cr_fail("no answer from the server before ready");

	cr_ready_tamper(payload, sizeof(payload));
	cr_wait();

	gl = sizeof(got);
	cr_check(getpeername(20, (struct sockaddr *)&got, &gl) == 0 && gl == ll &&
		 memcmp(&got, &ln, ll) == 0, "20: not connected to @" NAME);
	gl = sizeof(got);
	cr_check(getpeername(21, (struct sockaddr *)&got, &gl) == 0 && gl == dl &&
		 memcmp(&got, &dn, dl) == 0, "21: not connected to @" NAME);
	gl = sizeof(got);
	cr_check(getsockname(21, (struct sockaddr *)&got, &gl) == 0 && gl == ml &&
		 memcmp(&got, &me, ml) == 0, "21: not bound to me.d");
	check_answer(20, 'S', want, "stream");
	check_answer(21, 'D', want, "dgram");
	cr_finish();
}
