// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * unix-listen [stream|seqpacket]: listening unix sockets across the cut,
 * with an accepted connection and connections still waiting in the queue.
 *
 * Before ready, at fixed numbers (T = the type of the argument):
 *   20  T listener bound to $CR_DIR/l.sock, backlog 8, O_NONBLOCK.
 *   21  a client of 20, accepted as 22; 21 sent REQ (40 bytes) to 22, 22
 *       sent RESP (50) to 21, both unread.
 *   23  a client of 20 that is not accepted yet, then 24 (queue order: 23, 24).
 *   25  T listener bound to an abstract name, backlog 3, SO_PASSCRED.
 *   26  T listener bound to the relative path "rel.sock" (cwd: $CR_DIR).
 *   27  T listener bound to $CR_DIR/gone.sock, whose file was then unlinked.
 * Payloads are slices of a secret published for tamper.
 * After go: 20 and 25 are listening (SO_ACCEPTCONN) on their names, l.sock
 * is a socket file; 22 is named l.sock and so is 21's peer; 22 and 21 read
 * REQ and RESP and still talk; the two
 * queued connections are accepted in order (23's then 24's: each client
 * sends its number, the accepted side must read it) and work both ways;
 * nothing else is queued; then new clients connect to both names and are
 * accepted and answered. 26 is bound to "rel.sock" again (a client connects
 * by that relative name); 27 keeps its name but no file appears.
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
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cr.h"

static unsigned char secret[256];
static struct sockaddr_un lname, aname, rname, gname;
static socklen_t llen, alen, rlen, glen;
static int type;

static int sock_at(int fd)
{
	int s = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

	if (s < 0 || dup3(s, fd, O_CLOEXEC) < 0)
		cr_fail("socket: %m");
	close(s);
	return fd;
}

static ssize_t rcv(int fd, void *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 2000) <= 0)
		return -2;
	return recv(fd, buf, len, MSG_DONTWAIT);
}

static int acc(int l)
{
	struct pollfd p = { .fd = l, .events = POLLIN };

	if (poll(&p, 1, 2000) <= 0)
		return -1;
	return accept4(l, NULL, NULL, SOCK_CLOEXEC);
}

static int getint(int fd, int opt)
{
	int v = -1;
	socklen_t l = sizeof(v);

	getsockopt(fd, SOL_SOCKET, opt, &v, &l);
	return v;
}

/* A round trip over a fresh connection to @name through listener @l. */
static void check_new_client(int l, const struct sockaddr_un *name, socklen_t len,
			     const char *what)
{
	int c = socket(AF_UNIX, type | SOCK_CLOEXEC, 0), s;
	char buf[16];

	if (c < 0 || connect(c, (const struct sockaddr *)name, len) < 0) {
		cr_check(false, "%s: new client cannot connect: %m", what);
		return;
	}
	s = acc(l);
	cr_check(s >= 0, "%s: new connection not accepted: %m", what);
	if (s >= 0) {
		cr_check(send(c, "hi", 2, 0) == 2 && rcv(s, buf, sizeof(buf)) == 2 &&
			 memcmp(buf, "hi", 2) == 0, "%s: new client -> server", what);
		cr_check(send(s, "ho!", 3, 0) == 3 && rcv(c, buf, sizeof(buf)) == 3 &&
			 memcmp(buf, "ho!", 3) == 0, "%s: server -> new client", what);
		close(s);
	}
	close(c);
}

int main(int argc, char **argv)
{
	unsigned char buf[256];
	struct sockaddr_un got;
	socklen_t gl;
	struct stat st;
	ssize_t n;
	int s;

	cr_init(argc, argv);
	type = argc > 1 && strcmp(argv[1], "seqpacket") == 0 ? SOCK_SEQPACKET : SOCK_STREAM;
	if (getrandom(secret, sizeof(secret), 0) != sizeof(secret))
		cr_fail("getrandom: %m");
	memset(&lname, 0, sizeof(lname));
	lname.sun_family = AF_UNIX;
	if ((size_t)snprintf(lname.sun_path, sizeof(lname.sun_path), "%s/l.sock", cr_dir()) >=
	    sizeof(lname.sun_path))
		cr_skip("$CR_DIR too long for a unix socket path");
	llen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(lname.sun_path) + 1);
	memset(&aname, 0, sizeof(aname));
	aname.sun_family = AF_UNIX;
	alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			   (size_t)snprintf(aname.sun_path + 1, sizeof(aname.sun_path) - 1,
					    "cr-unix-listen-%d", getpid()));

	sock_at(20);
	if (bind(20, (struct sockaddr *)&lname, llen) < 0 || listen(20, 8) < 0 ||
	    fcntl(20, F_SETFL, O_NONBLOCK) < 0)
		cr_fail("listener: %m");
	sock_at(21);
	if (connect(21, (struct sockaddr *)&lname, llen) < 0)
		cr_fail("connect 21: %m");
	s = accept4(20, NULL, NULL, SOCK_CLOEXEC);
	if (s < 0 || dup3(s, 22, O_CLOEXEC) < 0)
		cr_fail("accept: %m");
	close(s);
	if (send(21, secret, 40, 0) != 40 || send(22, secret + 40, 50, 0) != 50)
		cr_fail("send: %m");
	sock_at(23);
	if (connect(23, (struct sockaddr *)&lname, llen) < 0)
		cr_fail("connect 23: %m");
	sock_at(24);
	if (connect(24, (struct sockaddr *)&lname, llen) < 0)
		cr_fail("connect 24: %m");
	sock_at(25);
	if (bind(25, (struct sockaddr *)&aname, alen) < 0 || listen(25, 3) < 0 ||
	    setsockopt(25, SOL_SOCKET, SO_PASSCRED, &(int){ 1 }, sizeof(int)) < 0)
		cr_fail("abstract listener: %m");
	if (chdir(cr_dir()) < 0)
		cr_fail("chdir: %m");
	memset(&rname, 0, sizeof(rname));
	rname.sun_family = AF_UNIX;
	strcpy(rname.sun_path, "rel.sock");
	rlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + sizeof("rel.sock"));
	sock_at(26);
	if (bind(26, (struct sockaddr *)&rname, rlen) < 0 || listen(26, 2) < 0)
		cr_fail("relative listener: %m");
	memset(&gname, 0, sizeof(gname));
	gname.sun_family = AF_UNIX;
	snprintf(gname.sun_path, sizeof(gname.sun_path), "%s/gone.sock", cr_dir());
	glen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(gname.sun_path) + 1);
	sock_at(27);
	if (bind(27, (struct sockaddr *)&gname, glen) < 0 || listen(27, 2) < 0 ||
	    unlink(gname.sun_path) < 0)
		cr_fail("unlinked listener: %m");

	cr_ready_tamper(secret, 90);	/* REQ and RESP */
	cr_wait();

	cr_check(getint(20, SO_ACCEPTCONN) == 1, "20: not listening");
	cr_check(getint(25, SO_ACCEPTCONN) == 1, "25: not listening");
	cr_check(getint(20, SO_TYPE) == type && getint(25, SO_TYPE) == type, "listener type");
	cr_check(getint(25, SO_PASSCRED) == 1, "25: SO_PASSCRED lost");
	cr_check(fcntl(20, F_GETFL) & O_NONBLOCK, "20: O_NONBLOCK lost");
	gl = sizeof(got);
	cr_check(getsockname(20, (struct sockaddr *)&got, &gl) == 0 && gl == llen &&
		 memcmp(&got, &lname, llen) == 0, "20: not bound to l.sock");
	gl = sizeof(got);
	cr_check(getsockname(25, (struct sockaddr *)&got, &gl) == 0 && gl == alen &&
		 memcmp(&got, &aname, alen) == 0, "25: abstract name lost");
	cr_check(stat(lname.sun_path, &st) == 0 && S_ISSOCK(st.st_mode), "l.sock is not a socket file");

	/* The accepted connection (its names too) and its unread bytes. */
	gl = sizeof(got);
	cr_check(getsockname(22, (struct sockaddr *)&got, &gl) == 0 && gl == llen &&
		 memcmp(&got, &lname, llen) == 0, "22: accepted side lost the listener's name");
	gl = sizeof(got);
	cr_check(getpeername(21, (struct sockaddr *)&got, &gl) == 0 && gl == llen &&
		 memcmp(&got, &lname, llen) == 0, "21: peer name is not l.sock");
	n = rcv(22, buf, sizeof(buf));
	cr_check(n == 40 && memcmp(buf, secret, 40) == 0, "22: REQ: %zd bytes", n);
	n = rcv(21, buf, sizeof(buf));
	cr_check(n == 50 && memcmp(buf, secret + 40, 50) == 0, "21: RESP: %zd bytes", n);
	cr_check(send(21, "more", 4, 0) == 4 && rcv(22, buf, sizeof(buf)) == 4, "21 -> 22 broken");
	cr_check(send(22, "less", 4, 0) == 4 && rcv(21, buf, sizeof(buf)) == 4, "22 -> 21 broken");

	/* The queued connections, in order. */
	for (int c = 23; c <= 24; c++) {
		unsigned char id = (unsigned char)c;

		cr_check(send(c, &id, 1, MSG_DONTWAIT) == 1, "%d: send on a queued connection: %m", c);
	}
	for (int c = 23; c <= 24; c++) {
		s = acc(20);
		cr_check(s >= 0, "queued connection of %d not accepted: %m", c);
		if (s < 0)
			continue;
		n = rcv(s, buf, sizeof(buf));
		cr_check(n == 1 && buf[0] == c, "accepted #%d: got %zd bytes (%d), want %d's", c - 22,
			 n, n > 0 ? buf[0] : -1, c);
		cr_check(send(s, "ok", 2, 0) == 2 && rcv(c, buf, sizeof(buf)) == 2, "%d: no answer", c);
		close(s);
	}
	s = accept4(20, NULL, NULL, SOCK_CLOEXEC);
	cr_check(s < 0 && errno == EAGAIN, "20: a third queued connection");

	check_new_client(20, &lname, llen, "l.sock");
	check_new_client(25, &aname, alen, "abstract");
	check_new_client(26, &rname, rlen, "rel.sock");
	gl = sizeof(got);
	cr_check(getsockname(26, (struct sockaddr *)&got, &gl) == 0 && gl == rlen &&
		 memcmp(&got, &rname, rlen) == 0, "26: not bound to rel.sock");
	gl = sizeof(got);
	cr_check(getsockname(27, (struct sockaddr *)&got, &gl) == 0 && gl == glen &&
		 memcmp(&got, &gname, glen) == 0, "27: name lost");
	cr_check(getint(27, SO_ACCEPTCONN) == 1, "27: not listening");
	cr_check(access(gname.sun_path, F_OK) < 0, "gone.sock exists again");
	cr_finish();
}
