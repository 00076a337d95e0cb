// SPDX-License-Identifier: GPL-2.0-or-later
/* TCP plumbing for rfork and rforkd (include/rfork/net.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "rfork/net.h"

int rf_addr_split(const char *spec, unsigned def_port, char *host, size_t host_len,
		  char *port, size_t port_len)
{
	const char *h = spec, *p = NULL, *colon;
	size_t hl;

	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');

		if (!end || (end[1] && end[1] != ':'))
			return err_set(EINVAL, "bad address \"%s\"", spec);
		h = spec + 1;
		hl = end - h;
		if (end[1] == ':')
			p = end + 2;
	} else if ((colon = strrchr(spec, ':')) && strchr(spec, ':') == colon) {
		hl = colon - spec;
		p = colon + 1;
	} else {
		hl = strlen(spec);	/* a bare host or bare IPv6 address */
	}
	if (hl == 0 || hl >= host_len || (p && (!*p || strlen(p) >= port_len)))
		return err_set(EINVAL, "bad address \"%s\"", spec);
	memcpy(host, h, hl);
	host[hl] = 0;
	if (p) {
		for (const char *c = p; *c; c++)
			if (*c < '0' || *c > '9')
				return err_set(EINVAL, "bad port in \"%s\"", spec);
		snprintf(port, port_len, "%s", p);
	} else {
		snprintf(port, port_len, "%u", def_port);
	}
	return 0;
}

static void name_of(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "%s:%u", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "[%s]:%u", host, port);
	} else {
		snprintf(buf, len, "?");
	}
}

void rf_peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		snprintf(buf, len, "?");
	else
		name_of((struct sockaddr *)&ss, buf, len);
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (IN6_IS_ADDR_LOOPBACK(a))
			return true;
		return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
	}
	return false;
}

int rf_listen(const char *spec, unsigned def_port, bool *ret_loopback, char *ret_name,
	      size_t name_len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256], port[16];
	int fd, r, one = 1;

	r = rf_addr_split(spec, def_port, host, sizeof(host), port, sizeof(port));
	if (r < 0)
		return r;
	r = getaddrinfo(host, port, &hints, &res);
	if (r != 0)
		return err_set(EADDRNOTAVAIL, "cannot resolve \"%s\": %s", host, gai_strerror(r));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = err_set(errno, "socket: %s", strerror(errno));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 16) < 0) {
		r = err_set(errno, "cannot listen on %s: %s", spec, strerror(errno));
		close(fd);
		goto out;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		r = err_set(errno, "getsockname: %s", strerror(errno));
		close(fd);
		goto out;
	}
	*ret_loopback = is_loopback((struct sockaddr *)&ss);
	name_of((struct sockaddr *)&ss, ret_name, name_len);
	r = fd;
out:
	freeaddrinfo(res);
	return r;
}

void rf_tcp_keepalive(int fd, int timeout_ms)
{
	int one = 1, idle = MAX(timeout_ms / 1000, 1), intvl = MAX(idle / 3, 1), cnt = 3;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static int connect_one(const struct addrinfo *ai, int timeout_ms)
{
	_cleanup_close_ int fd = -1;
	struct pollfd p;
	int r, err = 0, one = 1, fl;
	socklen_t el = sizeof(err);
	unsigned uto = timeout_ms;

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS)
			return -errno;
		p = (struct pollfd){ .fd = fd, .events = POLLOUT };
		do
			r = poll(&p, 1, timeout_ms);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			return -errno;
		if (err)
			return -err;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	/* Unacknowledged data older than the timeout kills the connection:
	 * a cut link ends in an error, not a hang. */
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto));
	rf_tcp_keepalive(fd, timeout_ms);
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return TAKE_FD(fd);
}

int rf_connect(const char *spec, unsigned def_port, int timeout_ms)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char host[256], port[16];
	int r;

	r = rf_addr_split(spec, def_port, host, sizeof(host), port, sizeof(port));
	if (r < 0)
		return r;
	r = getaddrinfo(host, port, &hints, &res);
	if (r != 0)
		return err_set(EADDRNOTAVAIL, "cannot resolve \"%s\": %s", host, gai_strerror(r));
	r = -EADDRNOTAVAIL;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		r = connect_one(ai, timeout_ms);
		if (r >= 0)
			break;
	}
	freeaddrinfo(res);
	if (r < 0)
		return err_set(r, "cannot connect to %s:%s: %s", host, port, strerror(-r));
	return r;
}
