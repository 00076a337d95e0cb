// SPDX-License-Identifier: GPL-2.0-or-later
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/util.h"
#include "ready.h"

int we_parse_duration_ms(const char *s, uint64_t *ret_ms)
{
	char *end;
	double v;
	double mult;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -EINVAL;
	if (!*end || !strcmp(end, "s"))
		mult = 1000;
	else if (!strcmp(end, "ms"))
		mult = 1;
	else if (!strcmp(end, "m") || !strcmp(end, "min"))
		mult = 60000;
	else
		return -EINVAL;
	if (v * mult > 1e12)
		return -ERANGE;
	*ret_ms = (uint64_t)(v * mult + 0.5);
	return 0;
}

int we_ready_parse(const char *s, struct we_ready_spec *ret)
{
	struct we_ready_spec spec = {};
	_cleanup_free_ char *copy = strdup(s);
	char *save = NULL, *tok;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "notify"))
			spec.kinds |= WE_READY_NOTIFY;
		else if (!strcmp(tok, "stdin"))
			spec.kinds |= WE_READY_STDIN;
		else if (!strcmp(tok, "signal"))
			spec.kinds |= WE_READY_SIGNAL;
		else if (!strncmp(tok, "port:", 5)) {
			uint64_t port;

			if (parse_u64(tok + 5, 10, &port) < 0 || port == 0 || port > 65535)
				return -EINVAL;
			spec.kinds |= WE_READY_PORT;
			spec.port = (uint16_t)port;
		} else if (!strncmp(tok, "after:", 6)) {
			if (we_parse_duration_ms(tok + 6, &spec.after_ms) < 0)
				return -EINVAL;
			spec.kinds |= WE_READY_AFTER;
		} else
			return -EINVAL;
	}
	if (!spec.kinds)
		return -EINVAL;
	*ret = spec;
	return 0;
}

/* Read @len bytes at @addr of @pid's memory. */
static int peek(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = { buf, len }, remote = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);

	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

/* Does epoll instance @epfd of @pid watch fd 0? (fdinfo lists "tfd: N"). */
static int epoll_watches_stdin(pid_t pid, uint64_t epfd)
{
	_cleanup_free_ char *buf = NULL;
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%llu", pid, (unsigned long long)epfd);
	r = read_file(path, &buf, NULL);
	if (r < 0)
		return r;
	for (char *p = buf; (p = strstr(p, "tfd:")); p += 4) {
		char *end;
		long fd = strtol(p + 4, &end, 10);

		if (end != p + 4 && fd == 0)
			return 1;
	}
	return 0;
}

/*
 * One thread's /proc/PID/task/TID/syscall: "NR ARG0 .. ARG5 SP PC" while
 * blocked in a syscall, "running" or "-1 SP PC" otherwise.
 */
static int task_blocked_on_stdin(pid_t pid, const char *tid)
{
	_cleanup_free_ char *buf = NULL;
	unsigned long long a[6];
	char path[96];
	long nr;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/task/%s/syscall", pid, tid);
	r = read_file(path, &buf, NULL);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (sscanf(buf, "%ld %llx %llx %llx %llx %llx %llx", &nr, &a[0], &a[1], &a[2], &a[3],
		   &a[4], &a[5]) != 7)
		return 0;

	switch (nr) {
	case SYS_read:
	case SYS_readv:
	case SYS_pread64:
	case SYS_preadv:
	case SYS_preadv2:
		return a[0] == 0;
	case SYS_poll:
	case SYS_ppoll: {
		struct pollfd fds[64];
		size_t n = a[1];

		if (n == 0 || n > ARRAY_SIZE(fds))
			return 0;
		if (peek(pid, a[0], fds, n * sizeof(fds[0])) < 0)
			return 0;
		for (size_t i = 0; i < n; i++)
			if (fds[i].fd == 0 && (fds[i].events & (POLLIN | POLLPRI)))
				return 1;
		return 0;
	}
	case SYS_select:
	case SYS_pselect6: {
		uint64_t set;

		if (a[0] == 0 || a[1] == 0)
			return 0;
		if (peek(pid, a[1], &set, sizeof(set)) < 0)
			return 0;
		return set & 1;
	}
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
#ifdef SYS_epoll_pwait2
	case SYS_epoll_pwait2:
#endif
		r = epoll_watches_stdin(pid, a[0]);
		return r < 0 ? 0 : r;
	default:
		return 0;
	}
}

int we_blocked_on_stdin(pid_t pid)
{
	char path[64];
	DIR *d;
	struct dirent *de;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while (!found && (de = readdir(d))) {
		int r;

		if (de->d_name[0] == '.')
			continue;
		r = task_blocked_on_stdin(pid, de->d_name);
		if (r > 0)
			found = 1;
	}
	closedir(d);
	return found;
}

/* /proc/PID/net/tcp{,6}: "sl local_address rem_address st ...", the local
 * address as HEX:PORTHEX, state 0A = LISTEN. */
static int scan_tcp(const char *path, uint16_t port)
{
	_cleanup_free_ char *buf = NULL;
	char *line, *save = NULL;
	int r;

	r = read_file(path, &buf, NULL);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	line = strtok_r(buf, "\n", &save);	/* header */
	while ((line = strtok_r(NULL, "\n", &save))) {
		char local[80], remote[80];
		unsigned st, p;
		char *colon;

		if (sscanf(line, " %*u: %79s %79s %x", local, remote, &st) != 3)
			continue;
		colon = strrchr(local, ':');
		if (!colon || sscanf(colon + 1, "%x", &p) != 1)
			continue;
		if (st == 0x0A && p == port)
			return 1;
	}
	return 0;
}

int we_listening_on(pid_t pid, uint16_t port)
{
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/net/tcp", pid);
	r = scan_tcp(path, port);
	if (r != 0)
		return r;
	snprintf(path, sizeof(path), "/proc/%d/net/tcp6", pid);
	return scan_tcp(path, port);
}

int we_cpu_ticks(pid_t pid, uint64_t *ret_ticks)
{
	_cleanup_free_ char *buf = NULL;
	unsigned long long ut, st;
	char path[64], *p;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	r = read_file(path, &buf, NULL);
	if (r < 0)
		return r;
	/* comm may hold spaces and parens: fields restart after the last ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return -EBADMSG;
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -EBADMSG;
	*ret_ticks = ut + st;
	return 0;
}

int we_notify_open(const char *dir, struct we_notify *ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, n;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", dir);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlink(sa.sun_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	ret->fd = fd;
	memcpy(ret->path, sa.sun_path, sizeof(ret->path));
	return 0;
}

void we_notify_close(struct we_notify *n)
{
	if (n->fd >= 0) {
		close(n->fd);
		unlink(n->path);
	}
	n->fd = -1;
}

static void notify_parse(char *msg, struct we_notify_msg *out)
{
	char *save = NULL;

	for (char *l = strtok_r(msg, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (!strcmp(l, "READY=1"))
			out->ready = true;
		else if (!strncmp(l, "X_WARM_EXEC_RESTORE_SIGNAL=", 27)) {
			int sig;

			if (parse_int(l + 27, &sig) == 0 && sig > 0 && sig < 65)
				out->restore_signal = sig;
		}
	}
}

int we_notify_recv(struct we_notify *n, struct we_notify_msg *msg)
{
	char buf[4096];
	int count = 0;

	for (;;) {
		ssize_t len = recv(n->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

		if (len < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return count;
			return -errno;
		}
		buf[len] = '\0';
		notify_parse(buf, msg);
		count++;
	}
}

int we_notify_parent_ready(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = getenv("NOTIFY_SOCKET");
	socklen_t salen;
	size_t len;
	int fd, r = 0;

	if (!path || !*path)
		return 0;
	len = strlen(path);
	if (len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')	/* abstract namespace */
		sa.sun_path[0] = '\0';
	salen = offsetof(struct sockaddr_un, sun_path) + len;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, "READY=1", 7, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
		r = -errno;
	close(fd);
	return r;
}
