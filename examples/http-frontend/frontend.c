// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * http-frontend: a tiny HTTP front end serving every request from a fresh,
 * pre-warmed instance held by warmd (libwarmfork's example).
 *
 *   http-frontend --pool NAME [--warmd SOCKET] [--snapshot ID [--idle N]]
 *                 [--listen ADDR:PORT] [--requests N] [--timeout-ms MS]
 *
 * For each connection it accepts, it acquires an instance of pool NAME with
 * the connection as the instance's fds 0 and 1 and closes its own copy: the
 * instance (handler.py, checkpointed while waiting on fd 0) reads the
 * request, answers and exits. The front end only watches the instance's
 * pidfd, releases it when it ended (or kills it after --timeout-ms), and
 * answers 503 itself when no instance can be had.
 *
 * --snapshot registers the pool first (--idle parked instances, default 4).
 * With --listen port 0 the kernel picks the port; the first line on stdout
 * is "listening on ADDR:PORT". --requests N: exit after N requests ended,
 * with a summary on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "warmfork.h"

#define MAX_INFLIGHT	512

struct inflight {
	pid_t pid;
	int pidfd;
	uint64_t deadline_ms;
};

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	stop = 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void reply_503(int fd, const char *why)
{
	char buf[768];
	int n = snprintf(buf, sizeof(buf), "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n", strlen(why) + 1, why);

	(void)!send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static int listen_on(const char *spec, char *ret_name, size_t len)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	char host[64];
	const char *colon = strrchr(spec, ':');
	int fd, one = 1;

	if (!colon || (size_t)(colon - spec) >= sizeof(host))
		return -EINVAL;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = 0;
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -EINVAL;
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 256) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	snprintf(ret_name, len, "%s:%u", host, ntohs(sa.sin_port));
	return fd;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "warmd",	required_argument,	NULL, 'w' },
		{ "pool",	required_argument,	NULL, 'p' },
		{ "snapshot",	required_argument,	NULL, 's' },
		{ "idle",	required_argument,	NULL, 'i' },
		{ "listen",	required_argument,	NULL, 'l' },
		{ "requests",	required_argument,	NULL, 'n' },
		{ "timeout-ms",	required_argument,	NULL, 't' },
		{}
	};
	const char *sock = NULL, *pool = NULL, *snap = NULL, *listen_spec = "127.0.0.1:8080";
	unsigned int idle = 4, timeout_ms = 10000;
	unsigned long max_requests = 0, ended = 0, failed = 0, nr_lat = 0;
	static struct inflight infl[MAX_INFLIGHT];
	static uint64_t lat_us[100000];
	size_t nr_infl = 0;
	struct wf_client *c = NULL;
	char name[96];
	int lfd, r, opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'w': sock = optarg; break;
		case 'p': pool = optarg; break;
		case 's': snap = optarg; break;
		case 'i': idle = (unsigned int)atoi(optarg); break;
		case 'l': listen_spec = optarg; break;
		case 'n': max_requests = strtoul(optarg, NULL, 10); break;
		case 't': timeout_ms = (unsigned int)atoi(optarg); break;
		default:
			fprintf(stderr, "usage: http-frontend --pool NAME [--warmd SOCKET] [--snapshot ID "
				"[--idle N]] [--listen ADDR:PORT] [--requests N] [--timeout-ms MS]\n");
			return 2;
		}
	}
	if (!pool) {
		fprintf(stderr, "http-frontend: --pool is required\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
	r = wf_connect(sock, &c);
	if (r < 0) {
		fprintf(stderr, "http-frontend: %s\n", wf_errmsg());
		return 1;
	}
	if (snap) {
		struct wf_pool_opts po = { .sz = sizeof(po), .idle_target = idle };

		r = wf_pool_register(c, pool, snap, &po);
		if (r < 0) {
			fprintf(stderr, "http-frontend: %s\n", wf_errmsg());
			wf_disconnect(c);
			return 1;
		}
	}
	lfd = listen_on(listen_spec, name, sizeof(name));
	if (lfd < 0) {
		fprintf(stderr, "http-frontend: cannot listen on %s: %s\n", listen_spec, strerror(-lfd));
		wf_disconnect(c);
		return 1;
	}
	printf("listening on %s\n", name);
	fflush(stdout);

	while (!stop && (!max_requests || ended < max_requests)) {
		struct pollfd pfd[MAX_INFLIGHT + 1];
		uint64_t now = now_ms(), next = now + 1000;
		int n;

		pfd[0] = (struct pollfd){ .fd = nr_infl < MAX_INFLIGHT ? lfd : -1, .events = POLLIN };
		for (size_t i = 0; i < nr_infl; i++) {
			pfd[i + 1] = (struct pollfd){ .fd = infl[i].pidfd, .events = POLLIN };
			if (infl[i].deadline_ms < next)
				next = infl[i].deadline_ms;
		}
		n = poll(pfd, nr_infl + 1, next > now ? (int)(next - now) : 0);
		if (n < 0 && errno != EINTR)
			break;
		now = now_ms();
		/* Instances that ended (or overran): released. From the end, so
		 * that removing one by swapping keeps the pollfds in step. */
		for (size_t i = nr_infl; i-- > 0;) {
			bool done = n > 0 && (pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR));

			if (!done && infl[i].deadline_ms > now)
				continue;
			if (!done)
				failed++;	/* overran: killed */
			wf_release(c, infl[i].pid);
			close(infl[i].pidfd);
			infl[i] = infl[--nr_infl];
			ended++;
		}
		if (n > 0 && (pfd[0].revents & POLLIN)) {
			int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			struct wf_fd_map map[2] = { { conn, 0 }, { conn, 1 } };
			struct wf_acquire_opts ao = { .sz = sizeof(ao), .fds = map, .nr_fds = 2,
						      .timeout_ms = 2000 };
			struct wf_instance in;

			if (conn < 0)
				continue;
			r = wf_acquire(c, pool, &ao, &in);
			if (r < 0) {
				reply_503(conn, wf_errmsg());
				close(conn);
				failed++;
				ended++;
				if (r == -ECONNRESET) {
					fprintf(stderr, "http-frontend: %s\n", wf_errmsg());
					break;
				}
				continue;
			}
			close(conn);	/* the instance has it now */
			if (nr_lat < sizeof(lat_us) / sizeof(lat_us[0]))
				lat_us[nr_lat++] = in.latency_ns / 1000;
			infl[nr_infl++] = (struct inflight){ in.pid, in.pidfd, now_ms() + timeout_ms };
		}
	}
	if (nr_lat)
		qsort(lat_us, nr_lat, sizeof(lat_us[0]), cmp_u64);
	fprintf(stderr, "http-frontend: %lu requests, %lu failed; warmd acquire p50 %lu us, p99 %lu us\n",
		ended, failed, nr_lat ? (unsigned long)lat_us[(nr_lat - 1) / 2] : 0,
		nr_lat ? (unsigned long)lat_us[(nr_lat - 1) * 99 / 100] : 0);
	/* Still running ones are killed by warmd when we disconnect. */
	for (size_t i = 0; i < nr_infl; i++)
		close(infl[i].pidfd);
	close(lfd);
	wf_disconnect(c);
	return failed ? 1 : 0;
}
