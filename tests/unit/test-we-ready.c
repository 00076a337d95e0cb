// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * warm-exec readiness probes against real processes: a reader blocked on
 * stdin (read, poll, select, epoll), a sleeper that is not, a TCP
 * listener, and the notify socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ready.h"
#include "test-check.h"

enum mode { M_READ, M_POLL, M_SELECT, M_EPOLL, M_SLEEP, M_READ_OTHER };

/* Child whose stdin is a pipe nobody writes to, waiting in @mode. */
static pid_t spawn_waiter(enum mode mode, int *ret_wfd)
{
	int p[2], other[2];
	pid_t pid;

	if (pipe(p) < 0 || pipe(other) < 0)
		exit(1);
	pid = fork();
	if (pid < 0)
		exit(1);
	if (pid == 0) {
		char c;

		dup2(p[0], 0);
		close(p[1]);
		/* other[1] stays open here: "other" must never become readable. */
		switch (mode) {
		case M_READ:
			(void)!read(0, &c, 1);
			break;
		case M_POLL: {
			struct pollfd fds[2] = { { other[0], POLLIN, 0 }, { 0, POLLIN, 0 } };

			poll(fds, 2, -1);
			break;
		}
		case M_SELECT: {
			fd_set rs;

			FD_ZERO(&rs);
			FD_SET(0, &rs);
			select(1, &rs, NULL, NULL, NULL);
			break;
		}
		case M_EPOLL: {
			struct epoll_event ev = { .events = EPOLLIN };
			int ep = epoll_create1(0);

			epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
			epoll_wait(ep, &ev, 1, -1);
			break;
		}
		case M_SLEEP:
			pause();
			break;
		case M_READ_OTHER:
			(void)!read(other[0], &c, 1);
			break;
		}
		_exit(0);
	}
	close(p[0]);
	close(other[0]);
	close(other[1]);
	*ret_wfd = p[1];
	return pid;
}

/* Poll for up to 2 s: the child needs time to reach its syscall. */
static int wait_blocked(pid_t pid, int want)
{
	for (int i = 0; i < 200; i++) {
		int r = we_blocked_on_stdin(pid);

		if (r < 0)
			return r;
		if (r == want)
			return r;
		usleep(10000);
	}
	return we_blocked_on_stdin(pid);
}

static void reap(pid_t pid, int wfd)
{
	kill(pid, SIGKILL);
	close(wfd);
	waitpid(pid, NULL, 0);
}

static void test_stdin(void)
{
	static const struct { enum mode mode; int want; const char *name; } cases[] = {
		{ M_READ, 1, "read" }, { M_POLL, 1, "poll" }, { M_SELECT, 1, "select" },
		{ M_EPOLL, 1, "epoll" }, { M_SLEEP, 0, "pause" }, { M_READ_OTHER, 0, "read other fd" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int wfd, r;
		pid_t pid = spawn_waiter(cases[i].mode, &wfd);

		r = wait_blocked(pid, cases[i].want);
		if (cases[i].want == 0) {
			/* Give it time to settle into its syscall, then ask again. */
			usleep(100000);
			r = we_blocked_on_stdin(pid);
		}
		CHECK(r == cases[i].want, "%s: blocked_on_stdin = %d, want %d", cases[i].name, r,
		      cases[i].want);
		reap(pid, wfd);
	}
	CHECK(we_blocked_on_stdin(999999999) < 0, "vanished pid must be an error");
}

static void test_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t port;

	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind");
	getsockname(fd, (struct sockaddr *)&sa, &len);
	port = ntohs(sa.sin_port);
	CHECK(we_listening_on(getpid(), port) == 0, "bound but not listening: not ready");
	CHECK(listen(fd, 1) == 0, "listen");
	CHECK(we_listening_on(getpid(), port) == 1, "listening on %u not seen", port);
	close(fd);
	CHECK(we_listening_on(getpid(), port) == 0, "closed socket still seen");
}

static void test_notify(void)
{
	char dir[] = "/tmp/we-ready-XXXXXX";
	struct we_notify n;
	struct we_notify_msg msg = {};
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	CHECK(we_notify_open(dir, &n) == 0, "notify open");
	CHECK(we_notify_recv(&n, &msg) == 0 && !msg.ready, "nothing sent yet");
	strcpy(sa.sun_path, n.path);
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	sendto(fd, "STATUS=warming\n", 15, 0, (struct sockaddr *)&sa, sizeof(sa));
	CHECK(we_notify_recv(&n, &msg) == 1 && !msg.ready, "STATUS is not READY");
	sendto(fd, "X_WARM_EXEC_RESTORE_SIGNAL=12\nREADY=1", 37, 0, (struct sockaddr *)&sa,
	       sizeof(sa));
	CHECK(we_notify_recv(&n, &msg) == 1 && msg.ready && msg.restore_signal == 12,
	      "READY=1 with restore signal: ready=%d sig=%d", msg.ready, msg.restore_signal);
	close(fd);

	/* warm-exec's own NOTIFY_SOCKET. */
	setenv("NOTIFY_SOCKET", n.path, 1);
	msg = (struct we_notify_msg){};
	CHECK(we_notify_parent_ready() == 0, "notify parent");
	CHECK(we_notify_recv(&n, &msg) == 1 && msg.ready, "parent READY=1 received");
	unsetenv("NOTIFY_SOCKET");
	CHECK(we_notify_parent_ready() == 0, "no NOTIFY_SOCKET: nothing to do");
	we_notify_close(&n);
	rmdir(dir);
}

static void test_parse(void)
{
	struct we_ready_spec s;
	uint64_t ms;

	CHECK(we_ready_parse("notify,stdin", &s) == 0 &&
	      s.kinds == (WE_READY_NOTIFY | WE_READY_STDIN), "notify,stdin");
	CHECK(we_ready_parse("port:8080", &s) == 0 && s.kinds == WE_READY_PORT && s.port == 8080,
	      "port");
	CHECK(we_ready_parse("after:1.5s", &s) == 0 && s.after_ms == 1500, "after");
	CHECK(we_ready_parse("port:0", &s) == -EINVAL, "port 0");
	CHECK(we_ready_parse("port:70000", &s) == -EINVAL, "port range");
	CHECK(we_ready_parse("bogus", &s) == -EINVAL, "bogus");
	CHECK(we_ready_parse("", &s) == -EINVAL, "empty");
	CHECK(we_parse_duration_ms("250ms", &ms) == 0 && ms == 250, "250ms");
	CHECK(we_parse_duration_ms("2m", &ms) == 0 && ms == 120000, "2m");
	CHECK(we_parse_duration_ms("3", &ms) == 0 && ms == 3000, "bare seconds");
	CHECK(we_parse_duration_ms("-1s", &ms) == -EINVAL, "negative");
	CHECK(we_parse_duration_ms("1h", &ms) == -EINVAL, "unknown unit");
}

static void test_cpu(void)
{
	uint64_t a, b;
	volatile uint64_t x = 0;
	struct timespec t0, t1;

	CHECK(we_cpu_ticks(getpid(), &a) == 0, "cpu ticks");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		for (int i = 0; i < 1000000; i++)
			x += i;
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} while ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 120);
	CHECK(we_cpu_ticks(getpid(), &b) == 0 && b > a, "ticks advance with work (%llu -> %llu)",
	      (unsigned long long)a, (unsigned long long)b);
}

int main(void)
{
	test_parse();
	test_stdin();
	test_port();
	test_notify();
	test_cpu();
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
