// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * tcp-conn: an established TCP connection across the cut (checkpoint
 * --tcp-established), IPv4 ("v4", default) or IPv6 ("v6") on loopback.
 *
 * The peer is a child forked before ready: it is not in the image (the
 * checkpoint takes this process only) and keeps its end of the connection
 * open across the cut, as a client on another host would. Two byte
 * streams, each a function of its offset, so that any lost, repeated or
 * reordered byte is seen:
 *
 *   before ready  peer -> us   A1 = peer[0, 60000); we read only [0, 20000):
 *                              40000 bytes wait in our receive queue
 *                 us -> peer   ours[0, N): written until EAGAIN, the peer
 *                              reads nothing, so our send queue is full of
 *                              bytes never sent (N published for tamper)
 *   the cut       peer -> us   A2 = peer[60000, 70000), sent as soon as the
 *                              peer sees us traced (frozen for the
 *                              checkpoint), while the dump copies our 32 MiB
 *   after go      peer -> us   A3 = peer[70000, 170000), then a trailer:
 *                              'K' (or 'F': what it read was wrong), the
 *                              number of our bytes it read, 'T' if it sent
 *                              A2 while we were traced (else 'U'), then EOF
 *                 us -> peer   ours[N, N + 100000), then EOF
 *
 * The listener stays open (fd 41, above the connection's 40, no
 * SO_REUSEADDR): after the cut a new client must get through it, on the
 * port the connection shares.
 *
 * After go (the peer is told through $CR_DIR/tcp-phase3; without a
 * checkpoint it sends A2 only then): the descriptor is the same connection
 * (TCP, ESTABLISHED, same local and peer address and port: no reconnect),
 * O_NONBLOCK kept; we must read exactly peer[20000, 170000) and the
 * trailer 'K' with N + 100000: every byte of both queues and of the cut
 * arrived once, in order. With the argument "cut" (the cr suite, where a
 * checkpoint happens) the trailer must also say 'T'. With "tree" the peer
 * is in the image too (checkpoint --tree: both ends of the connection are
 * captured and restored) and sends A2 only after go. With "nolisten" the
 * listener is closed before ready (tcp-leave-running.py).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cr.h"

#define CONN_FD		40
#define LISTEN_FD	41	/* above CONN_FD: restore must bind it first anyway */
#define OUR_SEED	0x4f55525354524dull	/* "OURSTRM" */
#define PEER_SEED	0x50454552535452ull	/* "PEERSTR" */
#define A1_LEN		60000u
#define A1_READ		20000u
#define A2_END		70000u
#define A3_END		170000u
#define MORE		100000u
#define MEM_MIB		32u
#define PEER_TIMEOUT_S	60

static uint8_t stream_byte(uint64_t seed, uint64_t off)
{
	return (uint8_t)(cr_mix64(seed + off / 8) >> (8 * (off % 8)));
}

static void stream_fill(uint64_t seed, uint64_t off, uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = stream_byte(seed, off + i);
}

/* Offset of the first byte of @buf that is not the stream's, or @len. */
static size_t stream_check(uint64_t seed, uint64_t off, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != stream_byte(seed, off + i))
			return i;
	return len;
}

static void phase3_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s/tcp-phase3", cr_dir());
}

/* ------------------------------------------------------------------ peer */

/* argv "tree": the peer is checkpointed too (checkpoint --tree): it does
 * not watch us (it is frozen with us; an fd on /proc/PID/status would even
 * be in the image). */
static bool peer_in_image;

static bool traced(pid_t pid)
{
	char path[64], buf[4096];
	ssize_t n;
	char *s;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	s = strstr(buf, "\nTracerPid:");
	return s && atoi(s + 11) != 0;
}

static bool send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "tcp-conn peer: send: %s\n", n < 0 ? strerror(errno) : "0");
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static bool send_stream(int fd, uint64_t from, uint64_t to)
{
	uint8_t buf[16384];

	while (from < to) {
		size_t n = to - from < sizeof(buf) ? (size_t)(to - from) : sizeof(buf);

		stream_fill(PEER_SEED, from, buf, n);
		if (!send_all(fd, buf, n))
			return false;
		from += n;
	}
	return true;
}

/*
 * The peer: blocking socket, its own deadline. Exits 0 after sending its
 * trailer; the verdict is ours (the trailer), its stderr says what it saw.
 */
static __attribute__((noreturn)) void peer_main(int fd, pid_t us)
{
	uint64_t deadline = cr_now_ns() + PEER_TIMEOUT_S * 1000000000ull;
	uint64_t got = 0;
	bool sent_a2 = false, frozen_a2, ok = true, eof = false;
	char path[PATH_MAX];
	uint8_t buf[65536], trailer[10];

	alarm(PEER_TIMEOUT_S + 5);
	if (!send_stream(fd, 0, A1_LEN))
		_exit(1);
	phase3_path(path, sizeof(path));
	/* Until phase 3: A2 as soon as we are traced (the checkpoint). */
	for (;;) {
		if (!sent_a2 && !peer_in_image && traced(us)) {
			if (!send_stream(fd, A1_LEN, A2_END))
				_exit(1);
			sent_a2 = true;
		}
		if (access(path, F_OK) == 0)
			break;
		if (cr_now_ns() > deadline) {
			fprintf(stderr, "tcp-conn peer: no phase 3 after %d s\n", PEER_TIMEOUT_S);
			_exit(1);
		}
		cr_sleep_ms(1);
	}
	frozen_a2 = sent_a2;
	if (!sent_a2 && !send_stream(fd, A1_LEN, A2_END))
		_exit(1);
	/* Phase 3: read the whole of ours (checking every byte) while A3 goes.
	 * A3 is small enough for the socket buffers once we read. */
	if (!send_stream(fd, A2_END, A3_END))
		_exit(1);
	while (!eof) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		size_t bad;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "tcp-conn peer: recv after %llu bytes: %s\n",
				(unsigned long long)got, strerror(errno));
			ok = false;
			break;
		}
		if (n == 0) {
			eof = true;
			break;
		}
		bad = stream_check(OUR_SEED, got, buf, (size_t)n);
		if (ok && bad != (size_t)n) {
			fprintf(stderr, "tcp-conn peer: byte %llu of the stream is wrong\n",
				(unsigned long long)(got + bad));
			ok = false;
		}
		got += (uint64_t)n;
	}
	trailer[0] = ok ? 'K' : 'F';
	memcpy(trailer + 1, &got, sizeof(got));
	trailer[9] = frozen_a2 ? 'T' : 'U';
	if (!send_all(fd, trailer, sizeof(trailer)))
		_exit(1);
	shutdown(fd, SHUT_WR);
	/* Wait for our close, so that nothing of ours is cut short. */
	while (recv(fd, buf, sizeof(buf), 0) > 0)
		;
	_exit(0);
}

/* -------------------------------------------------------------- us */

static int family = AF_INET;
static bool expect_cut;		/* argv "cut": a checkpoint happens (the harness's cr modes) */
static bool no_listener;	/* argv "nolisten": the listener is closed before ready */
static pid_t peer_pid;
static uint64_t nr_before;		/* N: bytes of ours written before ready */
static struct sockaddr_storage local_addr, peer_addr;
static socklen_t local_len, peer_len;

static void set_up(void)
{
	struct sockaddr_storage a = {};
	socklen_t al;
	int l, c, one = 1;

	if (family == AF_INET) {
		struct sockaddr_in *a4 = (void *)&a;

		a4->sin_family = AF_INET;
		a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		al = sizeof(*a4);
	} else {
		struct sockaddr_in6 *a6 = (void *)&a;

		a6->sin6_family = AF_INET6;
		a6->sin6_addr = in6addr_loopback;
		al = sizeof(*a6);
	}
	l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, al) < 0 || listen(l, 1) < 0)
		cr_fail("listener: %m");
	if (getsockname(l, (struct sockaddr *)&a, &al) < 0)
		cr_fail("getsockname: %m");
	peer_pid = fork();
	if (peer_pid < 0)
		cr_fail("fork: %m");
	if (peer_pid == 0) {
		pid_t us = getppid();
		int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

		close(l);
		if (fd < 0 || connect(fd, (struct sockaddr *)&a, al) < 0) {
			fprintf(stderr, "tcp-conn peer: connect: %s\n", strerror(errno));
			_exit(1);
		}
		peer_main(fd, us);
	}
	c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		cr_fail("accept: %m");
	if (dup3(c, CONN_FD, O_CLOEXEC) < 0 || (!no_listener && dup3(l, LISTEN_FD, O_CLOEXEC) < 0))
		cr_fail("dup3: %m");
	close(c);
	close(l);
	setsockopt(CONN_FD, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	local_len = sizeof(local_addr);
	peer_len = sizeof(peer_addr);
	if (getsockname(CONN_FD, (struct sockaddr *)&local_addr, &local_len) < 0 ||
	    getpeername(CONN_FD, (struct sockaddr *)&peer_addr, &peer_len) < 0)
		cr_fail("addresses: %m");
}

static int ioctl_inq(int fd, int *ret)
{
	return ioctl(fd, SIOCINQ, ret);
}

/* Read exactly @len bytes (blocking socket here). */
static void read_exact(uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = recv(CONN_FD, buf, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			cr_fail("recv before ready: %s", n < 0 ? strerror(errno) : "EOF");
		buf += n;
		len -= (size_t)n;
	}
}

static void before_ready(void)
{
	static uint8_t buf[A1_READ];
	uint8_t chunk[16384];
	size_t bad;

	read_exact(buf, A1_READ);
	bad = stream_check(PEER_SEED, 0, buf, A1_READ);
	if (bad != A1_READ)
		cr_fail("before ready: peer byte %zu wrong", bad);
	/* Wait until all of A1 is here (40000 bytes queued, unread). */
	for (int i = 0; i < 5000; i++) {
		int inq = 0;

		if (recv(CONN_FD, chunk, 1, MSG_PEEK | MSG_DONTWAIT) > 0 &&
		    ioctl_inq(CONN_FD, &inq) == 0 && inq == (int)(A1_LEN - A1_READ))
			break;
		cr_sleep_ms(1);
	}
	/* Ours until EAGAIN: the peer reads nothing yet. */
	if (fcntl(CONN_FD, F_SETFL, fcntl(CONN_FD, F_GETFL) | O_NONBLOCK) < 0)
		cr_fail("O_NONBLOCK: %m");
	for (;;) {
		ssize_t n;

		stream_fill(OUR_SEED, nr_before, chunk, sizeof(chunk));
		n = send(CONN_FD, chunk, sizeof(chunk), MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN) {
			/* Settle: a blocked sender may get a little more room. */
			cr_sleep_ms(20);
			stream_fill(OUR_SEED, nr_before, chunk, sizeof(chunk));
			n = send(CONN_FD, chunk, sizeof(chunk), MSG_NOSIGNAL);
			if (n < 0 && errno == EAGAIN)
				break;
		}
		if (n <= 0)
			cr_fail("send before ready: %m");
		nr_before += (uint64_t)n;
	}
}

static bool same_addr(const struct sockaddr_storage *a, socklen_t al,
		      const struct sockaddr_storage *b, socklen_t bl)
{
	if (al != bl || a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

	return x->sin6_port == y->sin6_port &&
	       !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
}

/* The listener kept across the cut shares its port with the connection
 * (the accepted side): a new client gets through and one byte each way. */
static void check_listener(void)
{
	struct sockaddr_storage a = local_addr;
	int c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), s2;
	char b = 0;

	if (c < 0 || connect(c, (struct sockaddr *)&a, local_len) < 0) {
		cr_check(false, "a new client cannot connect to the listener: %m");
		if (c >= 0)
			close(c);
		return;
	}
	s2 = accept4(LISTEN_FD, NULL, NULL, SOCK_CLOEXEC);
	cr_check(s2 >= 0, "accept on the listener: %m");
	if (s2 >= 0) {
		cr_check(send(c, "q", 1, MSG_NOSIGNAL) == 1 && recv(s2, &b, 1, 0) == 1 && b == 'q',
			 "no byte through the new connection");
		close(s2);
	}
	close(c);
}

static void check_socket(void)
{
	struct sockaddr_storage a;
	socklen_t al = sizeof(a);
	struct tcp_info ti = {};
	socklen_t tl = sizeof(ti);
	int v = 0, fl;
	socklen_t vl = sizeof(v);

	cr_check(getsockopt(CONN_FD, SOL_SOCKET, SO_PROTOCOL, &v, &vl) == 0 && v == IPPROTO_TCP,
		 "fd %d is not a TCP socket", CONN_FD);
	vl = sizeof(v);
	cr_check(getsockopt(CONN_FD, SOL_SOCKET, SO_DOMAIN, &v, &vl) == 0 && v == family,
		 "fd %d: family %d, want %d", CONN_FD, v, family);
	cr_check(getsockopt(CONN_FD, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 &&
		 ti.tcpi_state == TCP_ESTABLISHED, "fd %d: TCP state %u, want ESTABLISHED",
		 CONN_FD, ti.tcpi_state);
	cr_check(getsockname(CONN_FD, (struct sockaddr *)&a, &al) == 0 &&
		 same_addr(&a, al, &local_addr, local_len), "local address or port changed");
	al = sizeof(a);
	cr_check(getpeername(CONN_FD, (struct sockaddr *)&a, &al) == 0 &&
		 same_addr(&a, al, &peer_addr, peer_len), "peer address or port changed "
		 "(a reconnect?)");
	vl = sizeof(v);
	cr_check(getsockopt(CONN_FD, IPPROTO_TCP, TCP_NODELAY, &v, &vl) == 0 && v,
		 "TCP_NODELAY lost");
	fl = fcntl(CONN_FD, F_GETFL);
	cr_check(fl >= 0 && (fl & O_NONBLOCK), "O_NONBLOCK lost");
	fl = fcntl(CONN_FD, F_GETFD);
	cr_check(fl >= 0 && (fl & FD_CLOEXEC), "FD_CLOEXEC lost");
}

/*
 * Phase 3: send ours[N, N + MORE) then EOF; read peer[20000, 170000), the
 * trailer, EOF. Non-blocking socket, poll with a deadline.
 */
static void converse(void)
{
	static uint8_t in[A3_END - A1_READ + 10 + 1];
	uint64_t out = nr_before, out_end = nr_before + MORE, got = 0;
	uint64_t deadline = cr_now_ns() + 40000000000ull;
	bool eof = false, shut = false;
	uint8_t chunk[16384];
	size_t want = sizeof(in) - 1, bad;
	char path[PATH_MAX];
	uint64_t count;
	int fd;

	phase3_path(path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		cr_fail("%s: %m", path);
	close(fd);
	while (!eof || !shut) {
		struct pollfd pf = { .fd = CONN_FD, .events = (eof ? 0 : POLLIN) |
							       (shut ? 0 : POLLOUT) };
		int n = poll(&pf, 1, 100);

		if (cr_now_ns() > deadline) {
			struct tcp_info ti = {};
			socklen_t tl = sizeof(ti);

			getsockopt(CONN_FD, IPPROTO_TCP, TCP_INFO, &ti, &tl);
			{
				char p2[PATH_MAX];
				FILE *f;

				snprintf(p2, sizeof(p2), "%s/tcp-stuck", cr_dir());
				f = fopen(p2, "w");
				if (f) {
					fprintf(f, "sent %llu read %llu eof %d state %u unacked %u "
						"retrans %u probes %u backoff %u rcv_space %u cwnd %u "
						"lost %u sacked %u\n",
						(unsigned long long)(out - nr_before),
						(unsigned long long)got, eof, ti.tcpi_state,
						ti.tcpi_unacked, ti.tcpi_total_retrans, ti.tcpi_probes,
						ti.tcpi_backoff, ti.tcpi_rcv_space, ti.tcpi_snd_cwnd,
						ti.tcpi_lost, ti.tcpi_sacked);
					fclose(f);
				}
			}
			cr_fail("conversation stuck: sent %llu of %llu, read %llu of %zu bytes%s "
				"(TCP state %u, unacked %u, retransmitted %u, probes %u, backoff %u, "
				"rcv_space %u, cwnd %u)", (unsigned long long)(out - nr_before),
				(unsigned long long)MORE, (unsigned long long)got, want,
				eof ? " (EOF)" : "", ti.tcpi_state, ti.tcpi_unacked,
				ti.tcpi_total_retrans, ti.tcpi_probes, ti.tcpi_backoff,
				ti.tcpi_rcv_space, ti.tcpi_snd_cwnd);
		}
		if (n <= 0)
			continue;
		if (pf.revents & (POLLERR | POLLHUP | POLLNVAL) && !(pf.revents & POLLIN)) {
			int e = 0;
			socklen_t el = sizeof(e);

			getsockopt(CONN_FD, SOL_SOCKET, SO_ERROR, &e, &el);
			cr_fail("connection failed after the cut: %s (revents 0x%x)",
				strerror(e), pf.revents);
		}
		if (!shut && (pf.revents & POLLOUT)) {
			size_t len = out_end - out < sizeof(chunk) ? (size_t)(out_end - out) : sizeof(chunk);
			ssize_t w;

			stream_fill(OUR_SEED, out, chunk, len);
			w = send(CONN_FD, chunk, len, MSG_NOSIGNAL);
			if (w < 0 && errno != EAGAIN)
				cr_fail("send after the cut: %m");
			if (w > 0)
				out += (uint64_t)w;
			if (out == out_end) {
				shutdown(CONN_FD, SHUT_WR);
				shut = true;
			}
		}
		if (!eof && (pf.revents & POLLIN)) {
			ssize_t r = recv(CONN_FD, in + got, sizeof(in) - got, 0);

			if (r < 0 && errno != EAGAIN)
				cr_fail("recv after the cut: %m");
			if (r == 0)
				eof = true;
			if (r > 0)
				got += (uint64_t)r;
			if (got > want)
				cr_fail("the peer sent %llu bytes, more than %zu",
					(unsigned long long)got, want);
		}
	}
	cr_check(got == want, "read %llu bytes of the peer, want %zu", (unsigned long long)got,
		 want);
	if (got != want)
		return;
	bad = stream_check(PEER_SEED, A1_READ, in, A3_END - A1_READ);
	cr_check(bad == A3_END - A1_READ, "peer byte %llu wrong (%s)",
		 (unsigned long long)(A1_READ + bad),
		 A1_READ + bad < A1_LEN ? "it was in our receive queue" :
		 A1_READ + bad < A2_END ? "sent while we were checkpointed" : "sent after the cut");
	memcpy(&count, in + (A3_END - A1_READ) + 1, sizeof(count));
	cr_check(in[A3_END - A1_READ] == 'K', "the peer read wrong bytes of ours (see its line)");
	cr_check(count == nr_before + MORE, "the peer read %llu bytes of ours, we sent %llu "
		 "(%llu before the cut, in our send queue)", (unsigned long long)count,
		 (unsigned long long)(nr_before + MORE), (unsigned long long)nr_before);
	/* "cut": the checkpoint must have seen A2 coming (else this run did
	 * not test bytes sent while we were frozen). */
	cr_check(!expect_cut || in[A3_END - A1_READ + 9] == 'T', "the peer never saw us traced: "
		 "A2 was not sent while we were checkpointed");
}

int main(int argc, char **argv)
{
	size_t mem_len = (size_t)MEM_MIB << 20;
	uint64_t *mem;
	int st;

	cr_init(argc, argv);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "v6"))
			family = AF_INET6;
		else if (!strcmp(argv[i], "cut"))
			expect_cut = true;
		else if (!strcmp(argv[i], "tree"))
			peer_in_image = true;
		else if (!strcmp(argv[i], "nolisten"))
			no_listener = true;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Memory for the dump to copy: the peer's A2 arrives meanwhile. */
	mem = mmap(NULL, mem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		cr_fail("mmap: %m");
	for (size_t i = 0; i < mem_len / 8; i++)
		mem[i] = cr_mix64(i);
	set_up();
	before_ready();
	cr_ready_tamper(&nr_before, sizeof(nr_before));
	cr_wait();

	check_socket();
	converse();
	if (!no_listener)
		check_listener();
	for (size_t i = 0; i < mem_len / 8; i += 4096)
		if (mem[i] != cr_mix64(i)) {
			cr_check(false, "memory word %zu changed", i);
			break;
		}
	close(CONN_FD);
	/* The peer is our child only without a cut; otherwise the harness
	 * reaps it. */
	if (waitpid(peer_pid, &st, WNOHANG) < 0 && errno != ECHILD)
		cr_check(false, "waitpid: %m");
	cr_finish();
}
