// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Keep-warm: the keeper of one snapshot and its client (keep.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "engine.h"
#include "image.pb-c.h"
#include "keep.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open		434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal	424
#endif

/* PIDFD_GET_INFO (6.13), PIDFD_INFO_EXIT (6.15): not in Debian 12's headers. */
struct we_pidfd_info {
	uint64_t mask;
	uint64_t cgroupid;
	uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
	int32_t exit_code;
	uint32_t coredump_mask;
	uint32_t spare;
};
#define WE_PIDFD_GET_INFO	_IOWR(0xFF, 11, struct we_pidfd_info)
#define WE_PIDFD_INFO_EXIT	(1ull << 3)

#define KEEP_MAX_CONNS		64
#define KEEP_REPLY_TIMEOUT_S	10
#define KEEP_CHECK_MS		1000	/* how often an idle keeper checks its ref */

static int keep_path(const char *store_dir, const char *id, const char *suffix, char *buf,
		     size_t size)
{
	int n = snprintf(buf, size, "%s/warm-exec/%s.%s", store_dir, id, suffix);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
	*sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

bool we_keep_supported(void)
{
	static int cached = -1;
	struct we_pidfd_info info = { .mask = WE_PIDFD_INFO_EXIT };
	int fd;

	if (cached >= 0)
		return cached;
	/* Our own pidfd answers PIDFD_GET_INFO on kernels that have it; the
	 * EXIT bit exists from the same release on as the struct's size. */
	fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	cached = fd >= 0 && ioctl(fd, WE_PIDFD_GET_INFO, &info) == 0;
	if (fd >= 0)
		close(fd);
	return cached;
}

/* ------------------------------------------------------------ client */

int we_keep_acquire(const char *store_dir, const char *id, int resume_signal,
		    pid_t *ret_pid, int *ret_pidfd, int *ret_conn)
{
	char path[PATH_MAX];
	struct sockaddr_un sa;
	struct we_keep_req req = { .magic = WE_KEEP_MAGIC,
				   .resume_signal = resume_signal > 0 ? (uint32_t)resume_signal : 0 };
	struct we_keep_rep rep;
	struct timeval tv = { .tv_sec = KEEP_REPLY_TIMEOUT_S };
	int fds[3] = { STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO };
	union {
		char buf[CMSG_SPACE(sizeof(fds))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { &req, sizeof(req) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *cm;
	_cleanup_close_ int s = -1;
	int pidfd = -1, r;
	ssize_t n;

	r = keep_path(store_dir, id, "keep", path, sizeof(path));
	if (r < 0 || (r = unix_addr(path, &sa)) < 0)
		return r;
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	while (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == EINTR)
			continue;
		return errno == ECONNREFUSED || errno == ENOENT ? -ENOENT : -errno;
	}
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	memset(ctl.buf, 0, sizeof(ctl.buf));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	do
		n = sendmsg(s, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(req))
		return n < 0 ? -errno : -EIO;

	iov = (struct iovec){ &rep, sizeof(rep) };
	mh = (struct msghdr){ .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	do
		n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			size_t nr = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int got[3];

			if (nr > 3)
				nr = 3;
			memcpy(got, CMSG_DATA(cm), nr * sizeof(int));
			for (size_t i = 0; i < nr; i++) {
				if (pidfd < 0)
					pidfd = got[i];
				else
					close(got[i]);
			}
		}
	}
	if (n != (ssize_t)sizeof(rep) || rep.magic != WE_KEEP_MAGIC) {
		if (pidfd >= 0)
			close(pidfd);
		return n == 0 ? -ENOENT : -EPROTO;
	}
	if (rep.err < 0 || pidfd < 0) {
		if (pidfd >= 0)
			close(pidfd);
		return rep.err < 0 ? rep.err : -EPROTO;
	}
	*ret_pid = rep.pid;
	*ret_pidfd = pidfd;
	*ret_conn = TAKE_FD(s);
	return 0;
}

int we_keep_wait(int pidfd, int *ret_status)
{
	struct pollfd p = { pidfd, POLLIN, 0 };

	/* Readable once the process exited; its exit code is there once its
	 * parent (the instance's init) reaped it, a moment later. */
	for (unsigned tries = 0; ; tries++) {
		struct we_pidfd_info info = { .mask = WE_PIDFD_INFO_EXIT };

		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return -errno;
		/* ESRCH: reaped, its exit not yet recorded (the ioctl then
		 * leaves our request in info.mask: not an answer). */
		if (ioctl(pidfd, WE_PIDFD_GET_INFO, &info) < 0) {
			if (errno != ESRCH)
				return -errno;
			info.mask = 0;
		}
		if (info.mask & WE_PIDFD_INFO_EXIT) {
			*ret_status = info.exit_code;
			return 0;
		}
		if (tries > 50000)	/* ~10 s: its parent does not reap it */
			return -ETIMEDOUT;
		usleep(200);
	}
}

/* ------------------------------------------------------------ keeper */

struct keep_conn {
	int fd;				/* the client; -1 free */
	int pidfd;			/* its instance */
};

struct keeper {
	struct wc_store *store;
	struct eng_template *tpl;
	struct eng_instance parked;
	bool have_parked;
	bool prefault_done;		/* the parked copy is prepared (or tried) */
	const char *ref, *id;
	struct keep_conn conns[KEEP_MAX_CONNS];
};

static bool ref_current(struct keeper *k)
{
	char cur[WC_ID_LEN + 1];

	return wc_ref_get(k->store, k->ref, cur) == 0 && strcmp(cur, k->id) == 0;
}

static void park_one(struct keeper *k)
{
	struct eng_instance_opts io = { .sz = sizeof(io), .parked = true };

	if (k->have_parked || !k->tpl)
		return;
	k->have_parked = eng_template_spawn(k->tpl, &io, &k->parked) == 0;
	k->prefault_done = false;
}

/* True if a client waits on @lsock: stop preparing, serve it. */
static bool client_waits(int lsock)
{
	struct pollfd p = { lsock, POLLIN, 0 };

	return lsock >= 0 && poll(&p, 1, 0) > 0;
}

/*
 * Prepare the parked copy for a fast start: a copy shares every page with
 * the template, so each page the program writes first costs a
 * copy-on-write fault when it runs (the JVM writes thousands at once). While
 * it is parked (no program code runs; its leader waits in the restorer),
 * write every present page of its writable private mappings back with its
 * own content through /proc/PID/mem: the kernel copies it then, off the
 * path of the run. Stops as soon as a client waits (the copy is correct at
 * any point: only when a page is copied changes). Best effort. The price:
 * the copy's written pages are its own from the start, as after a restore.
 */
#define PREFAULT_CHUNK		512	/* pages per pagemap read */

static void prefault_parked(struct keeper *k, int lsock)
{
	static uint8_t buf[PREFAULT_CHUNK * 4096];
	uint64_t pm[PREFAULT_CHUNK];
	char path[64], line[512];
	_cleanup_close_ int pmfd = -1, memfd = -1;
	FILE *maps;

	if (!k->have_parked || k->prefault_done)
		return;
	k->prefault_done = true;
	snprintf(path, sizeof(path), "/proc/%d/maps", k->parked.pid);
	maps = fopen(path, "re");
	snprintf(path, sizeof(path), "/proc/%d/pagemap", k->parked.pid);
	pmfd = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/mem", k->parked.pid);
	memfd = open(path, O_RDWR | O_CLOEXEC);
	if (!maps || pmfd < 0 || memfd < 0) {
		if (maps)
			fclose(maps);
		return;
	}
	while (fgets(line, sizeof(line), maps)) {
		unsigned long long start, end;
		char perms[8];

		if (sscanf(line, "%llx-%llx %7s", &start, &end, perms) != 3 || perms[1] != 'w' ||
		    perms[3] != 'p')
			continue;
		for (uint64_t a = start; a < end; a += PREFAULT_CHUNK * 4096ull) {
			size_t n = MIN((size_t)PREFAULT_CHUNK, (size_t)((end - a) / 4096));
			ssize_t got;

			if (client_waits(lsock))
				goto out;
			got = pread(pmfd, pm, n * 8, (off_t)(a / 4096 * 8));
			if (got != (ssize_t)(n * 8))
				break;
			for (size_t i = 0; i < n;) {
				size_t j = i;

				if (!(pm[i] >> 63 & 1)) {
					i++;
					continue;
				}
				while (j < n && (pm[j] >> 63 & 1))
					j++;
				/* present pages i..j-1: read them, write them back */
				if (pread(memfd, buf, (j - i) * 4096, (off_t)(a + i * 4096)) ==
				    (ssize_t)((j - i) * 4096))
					(void)!pwrite(memfd, buf, (j - i) * 4096, (off_t)(a + i * 4096));
				i = j;
			}
		}
	}
out:
	fclose(maps);
}

/* Reap the instances' inits (our children), never the template (its
 * close reaps it); the template gone means we stop. */
static bool reap_inits(struct keeper *k)
{
	pid_t tpid = k->tpl ? eng_template_pid(k->tpl) : -1;

	for (;;) {
		siginfo_t si = {};

		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
			return true;
		if (si.si_pid == tpid)
			return false;
		waitpid(si.si_pid, NULL, WNOHANG);
	}
}

static int send_reply(int fd, const struct we_keep_rep *rep, int pidfd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { (void *)rep, sizeof(*rep) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (pidfd >= 0) {
		struct cmsghdr *cm;

		memset(ctl.buf, 0, sizeof(ctl.buf));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &pidfd, sizeof(int));
	}
	return sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(*rep) ? 0 : -errno;
}

static void close_fds(int *fds, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static void conn_close(struct keep_conn *c, bool kill_it)
{
	if (kill_it && c->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = c->pidfd = -1;
}

/* One request on a fresh connection @c: start an instance on its fds. */
static void serve_one(struct keeper *k, struct keep_conn *c)
{
	struct we_keep_req req;
	struct we_keep_rep rep = { .magic = WE_KEEP_MAGIC };
	int fds[3] = { -1, -1, -1 }, nums[3] = { 0, 1, 2 };
	union {
		char buf[CMSG_SPACE(sizeof(fds))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { &req, sizeof(req) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct cmsghdr *cm;
	size_t nfds = 0;
	ssize_t n;
	int r;

	n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
	for (cm = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			size_t nr = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int got[8];

			if (nr > ARRAY_SIZE(got))
				nr = ARRAY_SIZE(got);
			memcpy(got, CMSG_DATA(cm), nr * sizeof(int));
			for (size_t i = 0; i < nr; i++) {
				if (nfds < 3)
					fds[nfds++] = got[i];
				else
					close(got[i]);
			}
		}
	}
	/* Only our own user; only a well-formed request with three fds. */
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != geteuid()) {
		r = -EPERM;
		goto fail;
	}
	if (n != (ssize_t)sizeof(req) || req.magic != WE_KEEP_MAGIC || nfds != 3 ||
	    req.resume_signal >= 65) {
		r = -EPROTO;
		goto fail;
	}
	if (!ref_current(k)) {
		r = -ESTALE;
		goto fail;
	}
	park_one(k);
	if (!k->have_parked) {
		r = -EIO;
		goto fail;
	}
	k->have_parked = false;
	r = eng_instance_start(&k->parked, fds, nums, 3);
	close_fds(fds, 3);
	if (r < 0) {
		eng_instance_release(&k->parked);
		rep.err = r;
		send_reply(c->fd, &rep, -1);
		close(c->fd);
		c->fd = -1;
		return;
	}
	if (req.resume_signal)
		syscall(SYS_pidfd_send_signal, k->parked.pidfd, (int)req.resume_signal, NULL, 0);
	rep.pid = k->parked.pid;
	rep.ns_pid = k->parked.ns_pid;
	c->pidfd = fcntl(k->parked.pidfd, F_DUPFD_CLOEXEC, 3);
	if (c->pidfd < 0 || send_reply(c->fd, &rep, k->parked.pidfd) < 0) {
		/* The caller is gone already: so is the instance. */
		syscall(SYS_pidfd_send_signal, k->parked.pidfd, SIGKILL, NULL, 0);
		eng_instance_release(&k->parked);
		conn_close(c, false);
		return;
	}
	eng_instance_release(&k->parked);
	return;
fail:
	close_fds(fds, 3);
	rep.err = r;
	send_reply(c->fd, &rep, -1);
	close(c->fd);
	c->fd = -1;
}

static int keep_serve(const char *store_dir, const char *ref, const char *id, uint64_t idle_ms)
{
	struct keeper k = { .ref = ref, .id = id };
	struct eng_template_opts to = { .sz = sizeof(to), .null_stdio = true };
	char path[PATH_MAX], lock[PATH_MAX];
	struct sockaddr_un sa;
	_cleanup_close_ int lfd = -1, lsock = -1, sfd = -1;
	uint64_t last = now_ns();
	sigset_t set;
	int r;

	for (size_t i = 0; i < KEEP_MAX_CONNS; i++)
		k.conns[i].fd = k.conns[i].pidfd = -1;
	r = keep_path(store_dir, id, "keep", path, sizeof(path));
	if (r < 0 || (r = keep_path(store_dir, id, "keep.lock", lock, sizeof(lock))) < 0 ||
	    (r = unix_addr(path, &sa)) < 0)
		return r;
	/* One keeper per snapshot: the lock is held for our lifetime. */
	lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0)
		return -errno;
	if (flock(lfd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? 0 : -errno;

	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		return -errno;

	r = wc_store_open(store_dir, 0, NULL, &k.store);
	if (r < 0)
		return r;
	if (!ref_current(&k)) {
		r = -ESTALE;
		goto out;
	}
	r = eng_template_open(k.store, id, &to, &k.tpl);
	if (r < 0)
		goto out;
	park_one(&k);

	lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (lsock < 0) {
		r = -errno;
		goto out;
	}
	unlink(path);		/* a dead keeper's: we hold the lock */
	umask(077);
	if (bind(lsock, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lsock, 16) < 0) {
		r = -errno;
		goto out;
	}

	for (;;) {
		struct pollfd pfd[2 + 2 * KEEP_MAX_CONNS];
		size_t n = 0, busy = 0;
		int timeout;

		pfd[n++] = (struct pollfd){ lsock, POLLIN, 0 };
		pfd[n++] = (struct pollfd){ sfd, POLLIN, 0 };
		for (size_t i = 0; i < KEEP_MAX_CONNS; i++) {
			pfd[n++] = (struct pollfd){ k.conns[i].fd, POLLIN, 0 };
			pfd[n++] = (struct pollfd){ k.conns[i].pidfd, POLLIN, 0 };
			busy += k.conns[i].fd >= 0;
		}
		/* Prepare the parked copy while no copy runs (it would compete
		 * for the CPU with one). */
		if (busy == 0 && k.have_parked && !k.prefault_done)
			prefault_parked(&k, lsock);
		timeout = KEEP_CHECK_MS;
		if (poll(pfd, n, timeout) < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				;
			if (!reap_inits(&k)) {
				r = -EIO;	/* the template died */
				break;
			}
		}
		for (size_t i = 0; i < KEEP_MAX_CONNS; i++) {
			struct keep_conn *c = &k.conns[i];
			short cre = pfd[2 + 2 * i].revents, pre = pfd[3 + 2 * i].revents;

			if (c->fd < 0)
				continue;
			if (pre & POLLIN)		/* the program ended */
				conn_close(c, false);
			else if (cre & (POLLIN | POLLHUP | POLLERR))	/* the caller left */
				conn_close(c, true);
		}
		if (pfd[0].revents & POLLIN) {
			int cfd = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);

			if (cfd >= 0) {
				struct keep_conn *c = NULL;

				for (size_t i = 0; i < KEEP_MAX_CONNS && !c; i++)
					if (k.conns[i].fd < 0)
						c = &k.conns[i];
				if (!c) {
					struct we_keep_rep rep = { .magic = WE_KEEP_MAGIC, .err = -EAGAIN };

					send_reply(cfd, &rep, -1);
					close(cfd);
				} else {
					c->fd = cfd;
					serve_one(&k, c);
					last = now_ns();
					/* Ready for the next one. */
					park_one(&k);
				}
			}
		}
		if (busy == 0 && now_ns() - last >= idle_ms * 1000000ull)
			break;
		if (!ref_current(&k)) {
			r = -ESTALE;
			break;
		}
	}
out:
	unlink(path);
	for (size_t i = 0; i < KEEP_MAX_CONNS; i++)
		if (k.conns[i].fd >= 0)
			conn_close(&k.conns[i], false);
	if (k.have_parked)
		eng_instance_release(&k.parked);
	if (k.tpl)
		eng_template_close(k.tpl);
	k.tpl = NULL;
	reap_inits(&k);
	wc_store_close(k.store);
	return r;
}

int we_keep_spawn(const char *store_dir, const char *ref, const char *id, uint64_t idle_ms)
{
	pid_t mid;
	int st;

	mid = fork();
	if (mid < 0)
		return -errno;
	if (mid == 0) {
		sigset_t all;
		int nul;

		setsid();
		if (fork() != 0)
			_exit(0);
		/* The keeper: nothing of the caller's. */
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
			dup2(nul, 2);
		}
		syscall(SYS_close_range, 3u, ~0u, 0u);
		prctl(PR_SET_NAME, "warm-exec-keep");
		_exit(keep_serve(store_dir, ref, id, idle_ms) < 0 ? 1 : 0);
	}
	while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
		;
	return 0;
}
