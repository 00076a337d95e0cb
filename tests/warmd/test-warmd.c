// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * test-warmd WARMD WARMFORK HANDLER CASE: warmd + libwarmfork against a
 * checkpointed wd-handler (root; skips otherwise). CASE:
 *   ops      register (and its errors), the pool fills, acquire (passed
 *            descriptors become the instance's stdio, pid/pidfd/namespace are
 *            right, every instance is fresh and independent), signal, release,
 *            an instance that exits by itself, stats, one client shared by
 *            two threads, unregister, disconnect
 *            (running instances die), SIGTERM (warmd exits 0, reaps all)
 *   dying    a client killed while its acquire is in flight, and one that
 *            dies in the middle of a frame: their instances die; an oversized
 *            frame, 200 frames of random bytes: warmd serves on
 *   deleted  a pool whose snapshot is deleted: its template and parked
 *            instances go (without any request), acquire fails with ENOENT and
 *            says so, another pool still serves, re-registering works
 *   refused  nobody (setuid in a forked child) is refused by the peer
 *            credentials (mode 0666), cannot reach a 0660 socket, and is
 *            accepted as a member of --group
 *   threads  a 4-thread program: instances answer with every thread, parked
 *            ones are released at unregister and at stop
 * Exit 0 pass, 1 fail, 77 skip.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "warmfork.h"
#include "testutil.h"

static char dir[64], store[128];
static const char *warmd_bin, *warmfork_bin, *handler_bin;
static const char *handler_threads;	/* NULL: single-threaded */

#define CHECK(cond, ...) do { if (!(cond)) tu_fail(__VA_ARGS__); } while (0)

/* Reap whatever ended among our children (we are a subreaper). */
static void reap_some(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

/* Run a handler until ready, checkpoint it; the snapshot id into @id. */
static int make_snapshot(const char *sub, char id[32], pid_t *ret_pid)
{
	char hdir[256], ready[300], *t;
	int in[2], out[2];
	pid_t h, c;
	uint64_t deadline;
	int st = -1;	/* no status: a failed checkpoint */
	ssize_t n;

	snprintf(hdir, sizeof(hdir), "%s/%s", dir, sub);
	mkdir(hdir, 0755);
	snprintf(ready, sizeof(ready), "%s/ready", hdir);
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		tu_fail("pipe2: %m");
		return -1;
	}
	h = fork();
	if (h == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(in[0], 0);
		dup2(null, 1);
		dup2(null, 2);
		setsid();
		execl(handler_bin, handler_bin, hdir, handler_threads, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	deadline = tu_now_ms() + 10000;
	while (!(t = tu_read_text(ready)) && tu_now_ms() < deadline)
		tu_sleep_ms(5);
	if (!t) {
		tu_fail("the handler %d did not get ready within 10 s", h);
		kill(h, SIGKILL);
		waitpid(h, NULL, 0);
		return -1;
	}
	*ret_pid = atoi(t);
	tu_sleep_ms(50);		/* let it block in read(0) */
	c = fork();
	if (c == 0) {
		char pid[16];

		snprintf(pid, sizeof(pid), "%d", h);
		dup2(out[1], 1);
		execl(warmfork_bin, warmfork_bin, "--store", store, "checkpoint", pid, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	/* The checkpoint returns once the handler's pid is free: reap it
	 * (our child) as soon as it dies. */
	for (bool h_reaped = false;;) {
		int s;
		pid_t w = waitpid(-1, &s, 0);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;
		if (w == h)
			h_reaped = true;
		if (w == c) {
			st = s;
			if (!WIFEXITED(st) || WEXITSTATUS(st))
				kill(h, SIGKILL);
			if (!h_reaped)
				waitpid(h, NULL, 0);
			break;
		}
	}
	n = read(out[0], id, 31);	/* printed before it exited: in the pipe */
	close(out[0]);
	close(in[1]);
	if (n < 17 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		tu_fail("checkpoint of the handler %d failed (status %#x)", h, st);
		return -1;
	}
	id[16] = 0;
	return 0;
}

static pid_t start_warmd(const char *sock, const char *const *extra)
{
	const char *argv[16] = { warmd_bin, "--socket", sock, "--store", store };
	int n = 5;
	uint64_t deadline;
	pid_t d;

	for (; extra && *extra && n < 14; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	d = fork();
	if (d == 0) {
		execv(warmd_bin, (char *const *)argv);
		_exit(127);
	}
	deadline = tu_now_ms() + 10000;
	while (tu_now_ms() < deadline) {
		struct stat st;

		if (stat(sock, &st) == 0)
			return d;
		if (waitpid(d, NULL, WNOHANG) == d)
			break;
		tu_sleep_ms(10);
	}
	tu_fail("warmd did not start on \"%s\"", sock);
	kill(d, SIGKILL);
	return -1;
}

static int stop_warmd(pid_t d, const char *sock)
{
	uint64_t deadline = tu_now_ms() + 20000;
	int st = -1;

	kill(d, SIGTERM);
	while (tu_now_ms() < deadline) {
		pid_t w = waitpid(d, &st, WNOHANG);

		if (w == d)
			break;
		reap_some();
		tu_sleep_ms(10);
	}
	if (tu_now_ms() >= deadline) {
		tu_fail("warmd did not stop within 20 s of SIGTERM");
		kill(d, SIGKILL);
		waitpid(d, &st, 0);
	}
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "warmd exited with status %#x", st);
	CHECK(access(sock, F_OK) < 0, "warmd left its socket \"%s\"", sock);
	return st;
}

/* Is the process of @pidfd gone (its pidfd readable) within @ms? */
static bool pidfd_ended(int pidfd, int ms)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

static int pidfd_of(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static pid_t pidfd_pid(int pidfd)
{
	char path[64], *t, *p;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	t = tu_read_text(path);
	p = t ? strstr(t, "\nPid:") : NULL;
	return p ? (pid_t)atoi(p + 5) : -1;
}

static unsigned long ns_inode(pid_t pid)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/pid", pid);
	return stat(path, &st) < 0 ? 0 : (unsigned long)st.st_ino;
}

/* One line from @fd with a timeout. */
static int read_line(int fd, char *buf, size_t len, int ms)
{
	size_t n = 0;
	uint64_t deadline = tu_now_ms() + ms;

	while (n + 1 < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left = (int)(deadline - tu_now_ms());
		ssize_t k;

		if (left <= 0 || poll(&p, 1, left) != 1)
			return -ETIMEDOUT;
		k = read(fd, buf + n, 1);
		if (k <= 0)
			return -EIO;
		if (buf[n] == '\n') {
			buf[n] = 0;
			return 0;
		}
		n++;
	}
	return -E2BIG;
}

struct answer {
	int pid, served, usr1;
	unsigned long ns;
};

static int ask(int fd, struct answer *a)
{
	char line[200];

	if (write(fd, "HELLO\n", 6) != 6 || read_line(fd, line, sizeof(line), 5000) < 0)
		return -1;
	return sscanf(line, "OK %d %d %d %lu", &a->pid, &a->served, &a->usr1, &a->ns) == 4 ? 0 : -1;
}

static int stats_of(struct wf_client *c, const char *pool, struct wf_pool_stats *ret)
{
	struct wf_pool_stats *s;
	size_t n;
	int r = wf_stats(c, pool, &s, &n);

	if (r < 0)
		return r;
	if (n != 1) {
		free(s);
		return -ENOENT;
	}
	*ret = s[0];
	free(s);
	return 0;
}

/* Wait until @pool has at least @idle idle instances. */
static bool wait_idle(struct wf_client *c, const char *pool, unsigned int idle, int ms)
{
	uint64_t deadline = tu_now_ms() + ms;
	struct wf_pool_stats s;

	while (tu_now_ms() < deadline) {
		if (stats_of(c, pool, &s) == 0 && s.idle >= idle)
			return true;
		tu_sleep_ms(10);
	}
	return false;
}

struct acquired {
	struct wf_instance in;
	int sock;		/* our end; the instance has the other as 0 and 1 */
};

static int acquire_sock(struct wf_client *c, const char *pool, struct acquired *a)
{
	int sv[2], r;
	struct wf_fd_map map[2];
	struct wf_acquire_opts o = { .sz = sizeof(o), .fds = map, .nr_fds = 2, .timeout_ms = 10000 };

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	map[0] = (struct wf_fd_map){ sv[1], 0 };
	map[1] = (struct wf_fd_map){ sv[1], 1 };
	r = wf_acquire(c, pool, &o, &a->in);
	close(sv[1]);
	if (r < 0) {
		close(sv[0]);
		return r;
	}
	a->sock = sv[0];
	return 0;
}

#define NINST 4
#define THR_ROUNDS 5

struct thr_arg {
	struct wf_client *c;
	const char *pool;
	int ok;
	char err[200];
};

/* Acquire, check freshness, release, THR_ROUNDS times on a shared client. */
static void *thr_acquire(void *p)
{
	struct thr_arg *ta = p;

	for (int i = 0; i < THR_ROUNDS; i++) {
		struct acquired a;
		struct answer x;

		if (acquire_sock(ta->c, ta->pool, &a) < 0) {
			snprintf(ta->err, sizeof(ta->err), "%s", wf_errmsg());
			return NULL;
		}
		x.served = -1;
		if (ask(a.sock, &x) == 0 && x.served == 1 && pidfd_pid(a.in.pidfd) == a.in.pid)
			ta->ok++;
		else
			snprintf(ta->err, sizeof(ta->err), "instance %d: served %d, pidfd of %d",
				 a.in.pid, x.served, pidfd_pid(a.in.pidfd));
		if (wf_release(ta->c, a.in.pid) < 0)
			snprintf(ta->err, sizeof(ta->err), "release: %s", wf_errmsg());
		close(a.sock);
		close(a.in.pidfd);
	}
	return NULL;
}

static void case_ops(void)
{
	char sock[100], snap[32], coupled[32];
	struct wf_client *c = NULL;
	struct wf_pool_stats s;
	struct acquired a[NINST];
	struct answer ans[NINST];
	pid_t saved, saved_c, d;
	int r;

	if (make_snapshot("h", snap, &saved) < 0)
		return;
	/* The same handler holding a pipe: instances would share it. */
	setenv("WD_HOLD_PIPE", "1", 1);
	r = make_snapshot("hp", coupled, &saved_c);
	unsetenv("WD_HOLD_PIPE");
	if (r < 0) {
		tu_fail("cannot checkpoint the handler holding a pipe");
		return;
	}
	snprintf(sock, sizeof(sock), "%s/warmd.sock", dir);
	d = start_warmd(sock, NULL);
	if (d < 0)
		return;
	r = wf_connect(sock, &c);
	if (r < 0) {
		tu_fail("wf_connect: %s", wf_errmsg());
		goto out;
	}

	/* register: errors, then the pool */
	r = wf_pool_register(c, "p", "ffffffffffffffff", NULL);
	CHECK(r == -ENOENT, "register of a missing snapshot: %d (%s), expected -ENOENT", r,
	      wf_errmsg());
	CHECK(strstr(wf_errmsg(), "ffffffffffffffff") != NULL, "the error does not name the "
	      "snapshot: \"%s\"", wf_errmsg());
	r = wf_pool_register(c, "bad/name", snap, NULL);
	CHECK(r == -EINVAL, "register of \"bad/name\": %d, expected -EINVAL", r);
	r = wf_pool_register(c, "c", coupled, NULL);
	CHECK(r == -EOPNOTSUPP && strstr(wf_errmsg(), "pipe") && strstr(wf_errmsg(), "independent"),
	      "register of a snapshot holding a pipe: %d (%s), expected -EOPNOTSUPP saying why", r,
	      wf_errmsg());
	r = wf_pool_register(c, "p", snap, &(struct wf_pool_opts){ .sz = sizeof(struct wf_pool_opts),
								  .idle_target = 3 });
	if (r < 0) {
		tu_fail("register: %s", wf_errmsg());
		goto out;
	}
	CHECK(wait_idle(c, "p", 3, 20000), "the pool did not fill to 3 idle instances");
	r = stats_of(c, "p", &s);
	CHECK(r == 0 && s.spawned >= 3 && s.idle_target == 3 && !strcmp(s.snapshot, snap) &&
	      s.busy == 0, "stats after filling: r %d spawned %lu idle %u target %u snap %s busy %u",
	      r, (unsigned long)s.spawned, s.idle, s.idle_target, s.snapshot, s.busy);

	/* acquire N: each fresh, in its own namespace, with our socket as stdio */
	for (int i = 0; i < NINST; i++) {
		a[i].sock = -1;
		r = acquire_sock(c, "p", &a[i]);
		if (r < 0) {
			tu_fail("acquire %d: %s", i, wf_errmsg());
			goto out;
		}
		CHECK(pidfd_pid(a[i].in.pidfd) == a[i].in.pid, "acquire %d: the pidfd is of pid %d, "
		      "not %d", i, pidfd_pid(a[i].in.pidfd), a[i].in.pid);
		CHECK(a[i].in.ns_pid == saved, "acquire %d: ns_pid %d, saved pid %d", i, a[i].in.ns_pid,
		      saved);
		if (ask(a[i].sock, &ans[i]) < 0) {
			tu_fail("instance %d (pid %d) does not answer on the passed socket", i, a[i].in.pid);
			continue;
		}
		CHECK(ans[i].pid == saved, "instance %d: getpid() %d, not the saved %d", i, ans[i].pid,
		      saved);
		CHECK(ans[i].served == 1, "instance %d: served %d requests before ours: not fresh", i,
		      ans[i].served - 1);
		CHECK(ans[i].ns == ns_inode(a[i].in.pid) && ans[i].ns != ns_inode(getpid()),
		      "instance %d: its pid namespace %lu is not that of pid %d (%lu), or ours", i,
		      ans[i].ns, a[i].in.pid, ns_inode(a[i].in.pid));
		for (int j = 0; j < i; j++)
			CHECK(ans[i].ns != ans[j].ns && a[i].in.pid != a[j].in.pid,
			      "instances %d and %d share a pid or namespace", i, j);
	}
	/* independence: a second request to one is its second, not another's */
	{
		struct answer x;

		CHECK(ask(a[0].sock, &x) == 0 && x.served == 2, "instance 0 lost count of its requests");
		CHECK(ask(a[1].sock, &x) == 0 && x.served == 2,
		      "instance 1 saw instance 0's requests (or lost its own)");
	}
	r = stats_of(c, "p", &s);
	CHECK(r == 0 && s.busy == NINST && s.acquired == NINST && s.acquire_p50_ns > 0 &&
	      s.acquire_p99_ns >= s.acquire_p50_ns && s.acquire_max_ns >= s.acquire_p99_ns,
	      "stats after %d acquires: busy %u acquired %lu p50 %lu p99 %lu max %lu", NINST,
	      s.busy, (unsigned long)s.acquired, (unsigned long)s.acquire_p50_ns,
	      (unsigned long)s.acquire_p99_ns, (unsigned long)s.acquire_max_ns);
	CHECK(wait_idle(c, "p", 3, 20000), "the pool was not refilled to 3 idle instances");

	/* signal */
	r = wf_signal(c, a[2].in.pid, SIGUSR1);
	CHECK(r == 0, "wf_signal: %s", wf_errmsg());
	{
		struct answer x = {};

		CHECK(ask(a[2].sock, &x) == 0 && x.usr1 == 1, "instance 2 got %d SIGUSR1, expected 1",
		      x.usr1);
	}
	r = wf_signal(c, getpid(), SIGUSR1);
	CHECK(r == -ESRCH, "wf_signal to a pid not acquired here: %d, expected -ESRCH", r);

	/* a start that fails (a descriptor number beyond the instance's
	 * RLIMIT_NOFILE): a clear error, counted, and the pool serves on */
	{
		int sv[2];
		struct wf_fd_map map[1];
		struct wf_acquire_opts o = { .sz = sizeof(o), .fds = map, .nr_fds = 1 };
		struct wf_instance x;

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
			map[0] = (struct wf_fd_map){ sv[1], 1000000 };
			r = wf_acquire(c, "p", &o, &x);
			CHECK(r < 0 && strstr(wf_errmsg(), "1000000"),
			      "acquire with target fd 1000000: %d (%s), expected a failure naming it", r,
			      wf_errmsg());
			close(sv[0]);
			close(sv[1]);
			CHECK(stats_of(c, "p", &s) == 0 && s.failed >= 1 && s.last_error[0],
			      "the failed start is not counted (failed %lu, last error \"%s\")",
			      (unsigned long)s.failed, s.last_error);
		}
	}

	/* release: it dies */
	r = wf_release(c, a[0].in.pid);
	CHECK(r == 0, "wf_release: %s", wf_errmsg());
	CHECK(pidfd_ended(a[0].in.pidfd, 5000), "released instance %d still runs", a[0].in.pid);
	r = wf_release(c, a[0].in.pid);
	CHECK(r == -ESRCH, "second release of %d: %d, expected -ESRCH", a[0].in.pid, r);

	/* an instance that exits by itself: counted, and releasing it is fine */
	CHECK(write(a[1].sock, "EXIT 3\n", 7) == 7, "write");
	CHECK(pidfd_ended(a[1].in.pidfd, 5000), "instance %d did not exit", a[1].in.pid);
	{
		uint64_t deadline = tu_now_ms() + 5000;

		do {
			r = stats_of(c, "p", &s);
			if (r == 0 && s.exited >= 2 && s.busy == NINST - 2)
				break;
			tu_sleep_ms(10);
		} while (tu_now_ms() < deadline);
		CHECK(r == 0 && s.exited >= 2 && s.busy == NINST - 2,
		      "stats after a release and an exit: exited %lu busy %u", (unsigned long)s.exited,
		      s.busy);
	}
	r = wf_release(c, a[1].in.pid);
	CHECK(r == 0, "release of an exited instance: %s", wf_errmsg());

	/* one client shared by threads: requests serialised, none mixed up */
	{
		struct thr_arg ta[2] = { { c, "p", 0, {} }, { c, "p", 0, {} } };
		pthread_t t[2];

		for (int i = 0; i < 2; i++)
			pthread_create(&t[i], NULL, thr_acquire, &ta[i]);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		for (int i = 0; i < 2; i++)
			CHECK(ta[i].ok == THR_ROUNDS, "thread %d: %d of %d acquires answered fresh (%s)", i,
			      ta[i].ok, THR_ROUNDS, ta[i].err);
	}

	/* a pool kept empty (idle_target 0): every acquire waits for a spawn
	 * (several clients at once: spawned together), none stays parked */
	r = wf_pool_register(c, "z", snap, &(struct wf_pool_opts){ .sz = sizeof(struct wf_pool_opts),
								  .idle_target = 0 });
	CHECK(r == 0, "register of an empty pool: %s", wf_errmsg());
	if (r == 0) {
		struct thr_arg ta[4];
		struct wf_client *cs[4] = {};
		pthread_t t[4];

		for (int i = 0; i < 4; i++) {
			if (wf_connect(sock, &cs[i]) < 0)
				tu_fail("connect %d: %s", i, wf_errmsg());
			ta[i] = (struct thr_arg){ cs[i], "z", 0, {} };
		}
		for (int i = 0; i < 4; i++)
			if (cs[i])
				pthread_create(&t[i], NULL, thr_acquire, &ta[i]);
		for (int i = 0; i < 4; i++)
			if (cs[i]) {
				pthread_join(t[i], NULL);
				CHECK(ta[i].ok == THR_ROUNDS, "empty pool, client %d: %d of %d acquires "
				      "answered fresh (%s)", i, ta[i].ok, THR_ROUNDS, ta[i].err);
				wf_disconnect(cs[i]);
			}
		r = stats_of(c, "z", &s);
		CHECK(r == 0 && s.idle == 0 && s.acquired == 4 * THR_ROUNDS && s.waiting == 0,
		      "empty pool after 4x%d acquires: idle %u acquired %lu waiting %u", THR_ROUNDS,
		      s.idle, (unsigned long)s.acquired, s.waiting);
		CHECK(wf_pool_unregister(c, "z") == 0, "unregister z: %s", wf_errmsg());
	}

	/* unregister: no more acquires; running instances go on */
	r = wf_pool_unregister(c, "p");
	CHECK(r == 0, "unregister: %s", wf_errmsg());
	{
		struct acquired x;

		r = acquire_sock(c, "p", &x);
		CHECK(r == -ENOENT, "acquire from an unregistered pool: %d, expected -ENOENT", r);
		CHECK(stats_of(c, "p", &s) == -ENOENT, "stats of an unregistered pool succeed");
	}
	{
		struct answer x;

		CHECK(ask(a[3].sock, &x) == 0 && x.served == 2,
		      "instance 3 stopped answering after the unregister");
	}

	/* disconnect: the connection's running instances die */
	wf_disconnect(c);
	c = NULL;
	CHECK(pidfd_ended(a[2].in.pidfd, 5000) && pidfd_ended(a[3].in.pidfd, 5000),
	      "instances still run after their connection closed");

	/* warmd going away: a client's next call says so, and stays failed */
	r = wf_connect(sock, &c);
	CHECK(r == 0, "wf_connect: %s", wf_errmsg());
	stop_warmd(d, sock);
	d = -1;
	if (c) {
		struct wf_pool_stats *st;
		size_t n;

		r = wf_stats(c, NULL, &st, &n);
		CHECK(r == -ECONNRESET || r == -EPIPE, "stats after warmd stopped: %d (%s)", r,
		      wf_errmsg());
		r = wf_stats(c, NULL, &st, &n);
		CHECK(r == -ECONNRESET, "second call after warmd stopped: %d (%s)", r, wf_errmsg());
	}
out:
	wf_disconnect(c);
	if (d > 0)
		stop_warmd(d, sock);
}

static void case_dying(void)
{
	char sock[100], snap[32];
	struct wf_client *c = NULL;
	struct wf_pool_stats s;
	int pfd[2], pidfds[2] = { -1, -1 };
	pid_t saved, d, child;
	uint64_t deadline;
	int r;

	if (make_snapshot("h", snap, &saved) < 0)
		return;
	snprintf(sock, sizeof(sock), "%s/warmd.sock", dir);
	d = start_warmd(sock, NULL);
	if (d < 0)
		return;
	if (wf_connect(sock, &c) < 0 ||
	    wf_pool_register(c, "p", snap, &(struct wf_pool_opts){ .sz = sizeof(struct wf_pool_opts),
								   .idle_target = 2 }) < 0) {
		tu_fail("connect/register: %s", wf_errmsg());
		goto out;
	}
	CHECK(wait_idle(c, "p", 2, 20000), "the pool did not fill");
	if (pipe2(pfd, O_CLOEXEC) < 0)
		goto out;
	child = fork();
	if (child == 0) {
		struct wf_client *cc;
		struct acquired a[2];
		int32_t pids[2];

		if (wf_connect(sock, &cc) < 0)
			_exit(1);
		for (int i = 0; i < 2; i++) {
			if (acquire_sock(cc, "p", &a[i]) < 0)
				_exit(1);
			pids[i] = a[i].in.pid;
		}
		if (write(pfd[1], pids, sizeof(pids)) != sizeof(pids))
			_exit(1);
		/* Then an acquire that is in flight when we are killed. */
		for (;;)
			if (acquire_sock(cc, "p", &a[0]) < 0)
				_exit(1);
	}
	close(pfd[1]);
	{
		int32_t pids[2];

		if (read(pfd[0], pids, sizeof(pids)) != sizeof(pids)) {
			tu_fail("the dying client did not acquire its instances");
			kill(child, SIGKILL);
			waitpid(child, NULL, 0);
			close(pfd[0]);
			goto out;
		}
		close(pfd[0]);
		for (int i = 0; i < 2; i++)
			pidfds[i] = pidfd_of(pids[i]);
		tu_sleep_ms(3);
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		for (int i = 0; i < 2; i++)
			CHECK(pidfds[i] >= 0 && pidfd_ended(pidfds[i], 5000),
			      "instance %d of the killed client still runs", pids[i]);
	}
	deadline = tu_now_ms() + 10000;
	do {
		r = stats_of(c, "p", &s);
		if (r == 0 && s.busy == 0 && s.waiting == 0)
			break;
		tu_sleep_ms(10);
	} while (tu_now_ms() < deadline);
	CHECK(r == 0 && s.busy == 0 && s.waiting == 0, "after the client died: busy %u waiting %u",
	      s.busy, s.waiting);

	/* A client dying in the middle of a frame (half a header, then gone). */
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
		CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect");
		CHECK(write(fd, "\x10\x00", 2) == 2, "write");
		close(fd);
	}
	/* And one announcing a frame larger than the limit: refused, not allocated. */
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		char buf[256];
		ssize_t n;

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
		CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect");
		CHECK(write(fd, "\xff\xff\xff\x7f\x00\x00\x00\x00", 8) == 8, "write");
		while ((n = read(fd, buf, sizeof(buf))) > 0)	/* greeting, then EOF */
			;
		CHECK(n == 0, "a frame of 2 GiB did not end the connection (read %zd)", n);
		close(fd);
	}
	/* Garbage: frames of random bytes, and a header announcing descriptors
	 * that never come. Each ends its connection; none ends warmd. */
	srand(42);
	for (int k = 0; k < 200; k++) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		unsigned char buf[8 + 256];
		uint32_t len = 1 + (uint32_t)(rand() % 256);

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			tu_fail("connect %d: %m", k);
			break;
		}
		memcpy(buf, &len, 4);
		buf[4] = k % 10 == 0 ? 2 : 0;	/* nr_fds without descriptors */
		buf[5] = buf[6] = buf[7] = 0;
		for (uint32_t i = 0; i < len; i++)
			buf[8 + i] = (unsigned char)rand();
		(void)!write(fd, buf, 8 + len);
		close(fd);
	}
	/* warmd serves on. */
	{
		struct acquired a;
		struct answer x;

		r = acquire_sock(c, "p", &a);
		CHECK(r == 0, "acquire after the dying clients: %s", wf_errmsg());
		if (r == 0) {
			CHECK(ask(a.sock, &x) == 0 && x.served == 1, "the instance does not answer");
			wf_release(c, a.in.pid);
			CHECK(pidfd_ended(a.in.pidfd, 5000), "released instance still runs");
		}
	}
out:
	wf_disconnect(c);
	stop_warmd(d, sock);
}

/* Processes (not zombies) whose command line contains @needle. */
static int count_cmdline(const char *needle)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char path[300], buf[4096], *st;
		ssize_t len;
		int fd;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;	/* zombies have none */
		buf[len] = 0;
		for (ssize_t i = 0; i < len; i++)
			if (!buf[i])
				buf[i] = ' ';
		if (!strstr(buf, needle))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		st = tu_read_text(path);
		st = st ? strrchr(st, ')') : NULL;
		if (st && st[1] == ' ' && st[2] != 'Z')
			n++;
	}
	closedir(d);
	return n;
}

static void case_deleted(void)
{
	char sock[100], snap_a[32], snap_b[32];
	struct wf_client *c = NULL;
	struct wf_pool_stats s;
	struct acquired a;
	struct answer x;
	pid_t saved, d, rm;
	int r, st;

	if (make_snapshot("ha", snap_a, &saved) < 0 || make_snapshot("hb", snap_b, &saved) < 0)
		return;
	snprintf(sock, sizeof(sock), "%s/warmd.sock", dir);
	d = start_warmd(sock, NULL);
	if (d < 0)
		return;
	if (wf_connect(sock, &c) < 0) {
		tu_fail("connect: %s", wf_errmsg());
		goto out;
	}
	struct wf_pool_opts po = { .sz = sizeof(po), .idle_target = 2 };

	if (wf_pool_register(c, "pa", snap_a, &po) < 0 || wf_pool_register(c, "pb", snap_b, &po) < 0) {
		tu_fail("register: %s", wf_errmsg());
		goto out;
	}
	r = wf_pool_register(c, "pa", snap_b, &po);
	CHECK(r == -EEXIST, "register of \"pa\" with another snapshot: %d, expected -EEXIST", r);
	CHECK(wait_idle(c, "pa", 2, 20000) && wait_idle(c, "pb", 2, 20000), "the pools did not fill");
	r = acquire_sock(c, "pa", &a);
	CHECK(r == 0, "acquire from pa: %s", wf_errmsg());
	if (r == 0) {
		CHECK(ask(a.sock, &x) == 0, "pa's instance does not answer");
		wf_release(c, a.in.pid);
	}

	rm = fork();
	if (rm == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		execl(warmfork_bin, warmfork_bin, "--store", store, "rm", snap_a, (char *)NULL);
		_exit(127);
	}
	waitpid(rm, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "warmfork rm %s failed", snap_a);

	/* Noticed without any request: pa's template and parked instances
	 * (processes whose command line names its directory) go away. */
	{
		char hdir[256];
		uint64_t deadline = tu_now_ms() + 5000;
		int n;

		snprintf(hdir, sizeof(hdir), "%s/ha", dir);
		while ((n = count_cmdline(hdir)) > 0 && tu_now_ms() < deadline)
			tu_sleep_ms(20);
		CHECK(n == 0, "%d processes of pa's deleted snapshot still run 5 s later", n);
	}
	r = acquire_sock(c, "pa", &a);
	CHECK(r == -ENOENT, "acquire from pa after its snapshot was deleted: %d, expected -ENOENT", r);
	CHECK(strstr(wf_errmsg(), "deleted") && strstr(wf_errmsg(), snap_a),
	      "the error does not say the snapshot was deleted: \"%s\"", wf_errmsg());
	r = stats_of(c, "pa", &s);
	CHECK(r == 0 && s.gone, "stats of pa: r %d gone %d", r, s.gone);
	{
		uint64_t deadline = tu_now_ms() + 5000;

		while (stats_of(c, "pa", &s) == 0 && s.idle && tu_now_ms() < deadline)
			tu_sleep_ms(10);
		CHECK(s.idle == 0, "pa keeps %u idle instances of a deleted snapshot", s.idle);
	}
	r = acquire_sock(c, "pb", &a);
	CHECK(r == 0, "acquire from pb after pa's snapshot was deleted: %s", wf_errmsg());
	if (r == 0) {
		CHECK(ask(a.sock, &x) == 0 && x.served == 1, "pb's instance does not answer");
		wf_release(c, a.in.pid);
	}
	r = wf_pool_register(c, "pa", snap_b, &po);
	CHECK(r == 0, "register pa again with another snapshot: %s", wf_errmsg());
	r = acquire_sock(c, "pa", &a);
	CHECK(r == 0, "acquire from the re-registered pa: %s", wf_errmsg());
	if (r == 0) {
		CHECK(ask(a.sock, &x) == 0 && x.served == 1, "pa's new instance does not answer");
		wf_release(c, a.in.pid);
	}
out:
	wf_disconnect(c);
	stop_warmd(d, sock);
}

/* In a child as nobody (gid @gid, supplementary group @supp unless -1):
 * wf_connect + wf_stats; returns 0 / the -errno, message in @msg. */
static int as_nobody_groups(const char *sock, gid_t gid, gid_t supp, char *msg, size_t len);

static int as_nobody(const char *sock, gid_t gid, char *msg, size_t len)
{
	return as_nobody_groups(sock, gid, (gid_t)-1, msg, len);
}

static int as_nobody_groups(const char *sock, gid_t gid, gid_t supp, char *msg, size_t len)
{
	struct passwd *pw = getpwnam("nobody");
	int pfd[2], r = -EIO;
	pid_t c;

	if (!pw || pipe2(pfd, O_CLOEXEC) < 0)
		return -ENOENT;
	c = fork();
	if (c == 0) {
		struct wf_client *cl;
		struct wf_pool_stats *s;
		char out[600];
		size_t n;
		int rr;

		if (setgroups(supp != (gid_t)-1, &supp) < 0 || setgid(gid) < 0 ||
		    setuid(pw->pw_uid) < 0)
			_exit(1);
		rr = wf_connect(sock, &cl);
		if (rr == 0) {
			rr = wf_stats(cl, NULL, &s, &n);
			if (rr == 0)
				free(s);
			wf_disconnect(cl);
		}
		snprintf(out, sizeof(out), "%d %s", rr, wf_errmsg());
		(void)!write(pfd[1], out, strlen(out) + 1);
		_exit(0);
	}
	close(pfd[1]);
	msg[0] = 0;
	{
		char buf[600] = "";
		ssize_t n = read(pfd[0], buf, sizeof(buf) - 1);

		if (n > 0) {
			char *sp = strchr(buf, ' ');

			r = atoi(buf);
			snprintf(msg, len, "%s", sp ? sp + 1 : "");
		}
	}
	close(pfd[0]);
	waitpid(c, NULL, 0);
	return r;
}

static void case_refused(void)
{
	char sock[100], msg[600], snap[32];
	struct passwd *pw = getpwnam("nobody");
	struct group *ng = getgrnam("nogroup");
	gid_t nogroup = ng ? ng->gr_gid : 65534;
	const char *open_mode[] = { "--mode", "0666", NULL };
	char gid_s[16];
	const char *grp[] = { "--group", gid_s, NULL };
	pid_t d, saved;
	int r;

	if (!pw) {
		printf("SKIP: no user nobody\n");
		exit(77);
	}
	/* A store to serve (no pool is registered: refusal comes first). */
	if (make_snapshot("h", snap, &saved) < 0)
		return;
	snprintf(sock, sizeof(sock), "%s/open.sock", dir);
	d = start_warmd(sock, open_mode);
	if (d < 0)
		return;
	r = as_nobody(sock, nogroup, msg, sizeof(msg));
	CHECK(r == -EACCES, "nobody on a 0666 socket: %d (%s), expected -EACCES", r, msg);
	CHECK(strstr(msg, "refuses uid") != NULL, "the refusal does not say why: \"%s\"", msg);
	/* Root still may, and warmd still serves. */
	{
		struct wf_client *c;
		struct wf_pool_stats *s;
		size_t n;

		r = wf_connect(sock, &c);
		CHECK(r == 0, "root refused after nobody: %s", wf_errmsg());
		if (r == 0) {
			CHECK(wf_stats(c, NULL, &s, &n) == 0, "stats: %s", wf_errmsg());
			free(s);
			wf_disconnect(c);
		}
	}
	/* The connection of a refused peer is closed after the refusal. */
	{
		struct passwd *p = pw;
		int pfd[2];
		pid_t c;

		if (pipe2(pfd, O_CLOEXEC) == 0) {
			c = fork();
			if (c == 0) {
				struct sockaddr_un sa = { .sun_family = AF_UNIX };
				char buf[1024];
				ssize_t n, total = 0;
				int fd;

				if (setgroups(0, NULL) < 0 || setgid(nogroup) < 0 || setuid(p->pw_uid) < 0)
					_exit(1);
				fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
				snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
				if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
					_exit(2);
				alarm(10);
				while ((n = read(fd, buf, sizeof(buf))) > 0)
					total += n;
				_exit(n == 0 && total > 8 ? 0 : 3);
			}
			close(pfd[0]);
			close(pfd[1]);
			int st;

			waitpid(c, &st, 0);
			CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			      "a refused peer's connection was not answered and closed (status %#x)", st);
		}
	}
	stop_warmd(d, sock);

	/* 0660, group root: the socket's mode keeps nobody out. */
	snprintf(sock, sizeof(sock), "%s/closed.sock", dir);
	d = start_warmd(sock, NULL);
	if (d < 0)
		return;
	{
		struct stat st;

		CHECK(stat(sock, &st) == 0 && (st.st_mode & 0777) == 0660, "socket mode %o, not 0660",
		      st.st_mode & 0777);
	}
	r = as_nobody(sock, nogroup, msg, sizeof(msg));
	CHECK(r == -EACCES, "nobody on a 0660 root socket: %d (%s), expected -EACCES", r, msg);
	stop_warmd(d, sock);

	/* --group nogroup: nobody (gid nogroup) may. */
	snprintf(gid_s, sizeof(gid_s), "%u", nogroup);
	snprintf(sock, sizeof(sock), "%s/group.sock", dir);
	d = start_warmd(sock, grp);
	if (d < 0)
		return;
	{
		struct stat st;

		CHECK(stat(sock, &st) == 0 && st.st_gid == nogroup, "socket group %u, not %u",
		      st.st_gid, nogroup);
	}
	r = as_nobody(sock, nogroup, msg, sizeof(msg));
	CHECK(r == 0, "nobody in --group refused: %d (%s)", r, msg);
	/* A member through a supplementary group (SO_PEERGROUPS) may too; with
	 * neither, refused (the socket is group nogroup, mode 0660: a primary
	 * group other than nogroup gets EACCES from the mode, unless the
	 * supplementary group opens it). */
	r = as_nobody_groups(sock, 4321, nogroup, msg, sizeof(msg));
	CHECK(r == 0, "nobody with --group as a supplementary group refused: %d (%s)", r, msg);
	r = as_nobody_groups(sock, 4321, (gid_t)-1, msg, sizeof(msg));
	CHECK(r == -EACCES, "nobody outside --group: %d (%s), expected -EACCES", r, msg);
	stop_warmd(d, sock);
}

/*
 * A multi-threaded program (4 threads): instances answer, parked ones are
 * released at unregister, and warmd stops cleanly with some parked.
 */
static void case_threads(void)
{
	char sock[100], snap[32];
	struct wf_client *c = NULL;
	struct acquired a[2];
	struct answer x;
	pid_t saved, d;
	int r;

	handler_threads = "3";
	if (make_snapshot("h", snap, &saved) < 0)
		return;
	snprintf(sock, sizeof(sock), "%s/warmd.sock", dir);
	d = start_warmd(sock, NULL);
	if (d < 0)
		return;
	if (wf_connect(sock, &c) < 0 ||
	    wf_pool_register(c, "t", snap, &(struct wf_pool_opts){ .sz = sizeof(struct wf_pool_opts),
								   .idle_target = 3 }) < 0 ||
	    wf_pool_register(c, "u", snap, &(struct wf_pool_opts){ .sz = sizeof(struct wf_pool_opts),
								   .idle_target = 2 }) < 0) {
		tu_fail("connect/register: %s", wf_errmsg());
		goto out;
	}
	CHECK(wait_idle(c, "t", 3, 20000) && wait_idle(c, "u", 2, 20000), "the pools did not fill");
	for (int i = 0; i < 2; i++) {
		r = acquire_sock(c, "t", &a[i]);
		CHECK(r == 0, "acquire %d: %s", i, wf_errmsg());
		if (r < 0)
			goto out;
		CHECK(ask(a[i].sock, &x) == 0 && x.served == 1 && x.pid == saved,
		      "instance %d of a 4-thread program does not answer fresh", i);
		{
			char path[64];
			struct stat st;

			snprintf(path, sizeof(path), "/proc/%d/task", a[i].in.pid);
			CHECK(stat(path, &st) == 0 && st.st_nlink == 2 + 4,
			      "instance %d runs %d threads, not 4", i, (int)st.st_nlink - 2);
		}
	}
	/* Parked ones released, running ones go on. */
	CHECK(wf_pool_unregister(c, "t") == 0, "unregister: %s", wf_errmsg());
	CHECK(ask(a[0].sock, &x) == 0 && x.served == 2, "instance 0 stopped after the unregister");
	wf_release(c, a[1].in.pid);
	CHECK(pidfd_ended(a[1].in.pidfd, 5000), "released instance still runs");
out:
	wf_disconnect(c);
	stop_warmd(d, sock);	/* with pool u's instances parked */
}

int main(int argc, char **argv)
{
	char cmd[300];

	if (argc != 5) {
		fprintf(stderr, "usage: test-warmd WARMD WARMFORK HANDLER ops|dying|deleted|refused|threads\n");
		return 2;
	}
	if (geteuid() != 0) {
		printf("SKIP: warmd's tests need root (checkpoint, pid namespaces)\n");
		return 77;
	}
	warmd_bin = argv[1];
	warmfork_bin = argv[2];
	handler_bin = argv[3];
	setvbuf(stdout, NULL, _IOLBF, 0);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "/tmp/test-warmd.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	chmod(dir, 0755);	/* nobody must reach the sockets in it */
	snprintf(store, sizeof(store), "%s/store", dir);
	if (!strcmp(argv[4], "ops"))
		case_ops();
	else if (!strcmp(argv[4], "dying"))
		case_dying();
	else if (!strcmp(argv[4], "deleted"))
		case_deleted();
	else if (!strcmp(argv[4], "refused"))
		case_refused();
	else if (!strcmp(argv[4], "threads"))
		case_threads();
	else {
		fprintf(stderr, "unknown case \"%s\"\n", argv[4]);
		return 2;
	}
	reap_some();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: cannot remove %s\n", dir);
	if (tu_failures) {
		fprintf(stderr, "%d check(s) failed\n", tu_failures);
		return 1;
	}
	printf("PASS %s\n", argv[4]);
	return 0;
}
