// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * template-test WARMFORK TPL-TARGET THREADS N [ignsegv]: the spawn template API
 * (eng_template_open / eng_template_spawn / eng_instance_start) on a
 * checkpointed tpl-target (THREADS workers), with N instances:
 *   - the template serves two batches (N/2 spawned, started; the rest
 *     spawned parked and pretraced, the template closed, then started);
 *   - a parked instance exists with its saved pid (NSpid) and every thread,
 *     but runs no program code: its per-thread counters (read from its
 *     memory with process_vm_readv) do not move for 300 ms;
 *   - descriptors passed at the start are at their numbers: each instance
 *     answers on the socket passed as fd 10, and some write their hello on
 *     the pipe passed as fd 1; the first of each batch also gets /dev/null
 *     at 3, 4, 5 (where the engine's own socket and the received
 *     descriptors arrive) and must hold exactly 0-5 and 10;
 *   - every instance reports its saved pid and the initial value; after
 *     "set 2222" on one, only that one reports 2222 (independent memory);
 *   - every thread of every instance runs (its counter advances, counted
 *     only while its tid is the saved one); a parked leader waits under
 *     SCHED_FIFO, and every running thread has the saved SCHED_OTHER;
 *   - each instance locked its locked pages again (VmLck);
 *   - SIGTERM, SIGINT, SIGHUP to an init reach the instance (the init
 *     exits 128 + the signal);
 *   - a template killed from outside refuses spawns (-EIO) while its parked
 *     instances still start;
 *   - a released parked instance dies (its init is killed), and so do
 *     parked instances whose controller exits (their inits exit 1);
 *   - every init is our child; after SIGKILL all are reaped, none left.
 * Exit 0 pass, 1 fail, 77 skip (not root).
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "engine.h"
#include "warmcache.h"
#include "testutil.h"

#define MAX_N		1000
#define MAX_THREADS	64
#define SERVE_FD	10

static long status_field(pid_t pid, const char *name)
{
	char path[64], *t, *p;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	t = tu_read_text(path);
	if (!t || !(p = strstr(t, name)))
		return -1;
	p += strlen(name);
	/* NSpid: the last field. */
	if (!strcmp(name, "NSpid:")) {
		char *nl = strchr(p, '\n'), *sp;

		if (nl)
			*nl = 0;
		sp = strrchr(p, '\t');
		return strtol(sp ? sp : p, NULL, 10);
	}
	return strtol(p, NULL, 10);
}

/* Scheduling policy of @tid (field 41 of /proc/TID/stat), -1 unknown. */
static int sched_policy(pid_t tid)
{
	char path[64], *t, *p;
	int field = 2;

	snprintf(path, sizeof(path), "/proc/%d/stat", tid);
	t = tu_read_text(path);
	if (!t || !(p = strrchr(t, ')')))
		return -1;
	for (p++; *p && field < 41; p++)
		if (*p == ' ')
			field++;
	return field == 41 ? atoi(p) : -1;
}

static int nr_tasks(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

struct inst {
	struct eng_instance e;
	int sock;			/* our end of its fd 10 */
	uint64_t ticks[2][MAX_THREADS + 1];
};

/* One request, one answer (SOCK_SEQPACKET), within 5 s. */
static int ask(struct inst *in, const char *req, char *rep, size_t len)
{
	struct timeval tv = { 5, 0 };
	ssize_t n;

	/* A wait with a timeout is not restarted: recv returned EINTR here
	 * (about one run in thirty, right after the template was killed). */
	setsockopt(in->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(in->sock, req, strlen(req), MSG_NOSIGNAL) < 0)
		return -errno;
	do
		n = recv(in->sock, rep, len - 1, 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	rep[n] = 0;
	return 0;
}

static int segv_ignored = -1;	/* last "get": SIGSEGV ignored in the instance */

/* "get": pid, value, every counter into in->ticks[k]. */
static int get(struct inst *in, int k, int threads, long *ret_pid, unsigned long long *ret_value)
{
	char rep[2048], *p;
	int nt;

	if (ask(in, "get", rep, sizeof(rep)) < 0)
		return -1;
	p = rep;
	*ret_pid = strtol(p, &p, 10);
	*ret_value = strtoull(p, &p, 10);
	nt = (int)strtol(p, &p, 10);
	if (nt != threads)
		return -1;
	for (int i = 0; i <= threads; i++)
		in->ticks[k][i] = strtoull(p, &p, 10);
	segv_ignored = (int)strtol(p, &p, 10);
	return 0;
}

/*
 * Start @in: a socket at SERVE_FD, @out_fd (if any) at 1, and with
 * @crowd /dev/null at 3, 4 and 5 too: the numbers the instance's own
 * socket and the received descriptors most likely hold when they arrive.
 */
static int start(struct inst *in, int out_fd, bool crowd)
{
	int sv[2], r, null = -1;
	int fds[5], nums[5];
	size_t nr = 0;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* First, and downwards: installing the first at 5 would close the
	 * second as it arrived, were they not moved out of the way first. */
	if (crowd) {
		null = open("/dev/null", O_RDWR | O_CLOEXEC);
		for (int k = 5; k >= 3; k--) {
			fds[nr] = null;
			nums[nr++] = k;
		}
	}
	fds[nr] = sv[1];
	nums[nr++] = SERVE_FD;
	if (out_fd >= 0) {
		fds[nr] = out_fd;
		nums[nr++] = 1;
	}
	r = eng_instance_start(&in->e, fds, nums, nr);
	if (null >= 0)
		close(null);
	close(sv[1]);
	in->sock = sv[0];
	return r;
}

/* The crowded start: exactly 0-5 and SERVE_FD, 3-5 on /dev/null (nothing
 * of the engine's left, nothing lost to a number clash). */
static void check_fds(struct inst *in, int i)
{
	char path[64], link[256];
	struct dirent *de;
	unsigned mask = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", in->e.pid);
	d = opendir(path);
	if (!d) {
		tu_fail("instance %d: cannot list its fds", i);
		return;
	}
	while ((de = readdir(d))) {
		int fd;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		if (fd > 5 && fd != SERVE_FD) {
			tu_fail("instance %d holds an unexpected fd %d", i, fd);
			continue;
		}
		mask |= 1u << (fd == SERVE_FD ? 6 : fd);
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", in->e.pid, fd);
		n = readlink(path, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = 0;
		if (fd >= 3 && fd <= 5 && strcmp(link, "/dev/null"))
			tu_fail("instance %d: fd %d is \"%s\", not /dev/null", i, fd, link);
		if (fd == SERVE_FD && strncmp(link, "socket:", 7))
			tu_fail("instance %d: fd %d is \"%s\", not the socket", i, fd, link);
	}
	closedir(d);
	if (mask != 0x7f)
		tu_fail("instance %d: fds 0-5 and %d expected, mask 0x%x", i, SERVE_FD, mask);
}

int main(int argc, char **argv)
{
	static struct inst in[MAX_N];
	char dir[64], store_dir[128], path[256], snap[256] = "";
	const char *wf, *prog;
	struct wc_store *store = NULL;
	struct eng_template *tpl = NULL;
	uint64_t ticks_addr = 0, lat_max = 0, lat_sum = 0;
	int threads, n, half, r, nlat = 0;
	pid_t saved = -1, prog_pid;
	char *t;

	if (argc != 5 && argc != 6)
		return 1;
	if (geteuid() != 0) {
		printf("skip: needs root (pid namespaces, ptrace)\n");
		return 77;
	}
	wf = argv[1];
	prog = argv[2];
	threads = atoi(argv[3]);
	n = atoi(argv[4]);
	if (n < 2 || n > MAX_N || threads < 0 || threads > MAX_THREADS)
		return 1;
	half = n / 2;
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	strcpy(dir, "/tmp/tpl-test-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(store_dir, sizeof(store_dir), "%s/store", dir);
	for (int i = 0; i < n; i++) {
		in[i].sock = -1;
		in[i].e.init = -1;
		in[i].e.pidfd = in[i].e.init_pidfd = in[i].e.ctl_fd = -1;
	}

	/* The program, ready, then checkpointed (killed). */
	prog_pid = fork();
	if (prog_pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		syscall(SYS_close_range, 3u, ~0u, 0u);
		snprintf(path, sizeof(path), "%d", threads);
		execl(prog, prog, path, dir, argc == 6 ? argv[5] : (char *)NULL, (char *)NULL);
		_exit(127);
	}
	snprintf(path, sizeof(path), "%s/ready", dir);
	for (int i = 0; i < 3000 && !(t = tu_read_text(path)); i++)
		tu_sleep_ms(10);
	if (!t || sscanf(t, "%d %llu", &saved, (unsigned long long *)&ticks_addr) != 2) {
		tu_fail("the program never got ready");
		goto end;
	}
	/* The checkpoint returns once the pid is free: reap it meanwhile. */
	{
		char pidbuf[16], outp[128];
		pid_t ck;
		int st = -1;

		snprintf(pidbuf, sizeof(pidbuf), "%d", prog_pid);
		snprintf(outp, sizeof(outp), "%s/ckpt.out", dir);
		ck = fork();
		if (ck == 0) {
			int fd = open(outp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

			if (fd < 0 || dup2(fd, 1) < 0)
				_exit(127);
			execl(wf, wf, "--store", store_dir, "checkpoint", pidbuf, (char *)NULL);
			_exit(127);
		}
		for (;;) {
			int s2;
			pid_t w = waitpid(-1, &s2, 0);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				break;
			if (w == ck) {
				st = WIFEXITED(s2) ? WEXITSTATUS(s2) : 128;
				break;
			}
		}
		t = tu_read_text(outp);
		if (st != 0 || !t || sscanf(t, "%255s", snap) != 1) {
			tu_fail("checkpoint of %d exited %d", prog_pid, st);
			snap[0] = 0;
			goto end;
		}
	}

	r = wc_store_open(store_dir, 0, NULL, &store);
	if (r < 0) {
		tu_fail("store %s: %s", store_dir, err_str(r));
		goto end;
	}
	r = eng_template_open(store, snap,
			      &(struct eng_template_opts){ .sz = sizeof(struct eng_template_opts),
							   .null_stdio = true },
			      &tpl);
	/* The template needs no store once open. */
	wc_store_close(store);
	if (r < 0) {
		tu_fail("eng_template_open: %s", err_str(r));
		goto end;
	}
	if (eng_template_nr_threads(tpl) != (unsigned)threads + 1)
		tu_fail("template has %u threads, not %d", eng_template_nr_threads(tpl), threads + 1);

	/* Batch 1 parked, checked, started; batch 2 parked, template closed. */
	for (int b = 0; b < 2; b++) {
		int lo = b ? half : 0, hi = b ? n : half;

		for (int i = lo; i < hi; i++) {
			/* The second batch pretraced (its threads stopped by us). */
			r = eng_template_spawn(tpl, &(struct eng_instance_opts){
						       .sz = sizeof(struct eng_instance_opts),
						       .parked = true, .pretrace = b == 1 },
					       &in[i].e);
			if (r < 0) {
				tu_fail("spawn %d: %s", i, err_str(r));
				goto end;
			}
			if (!in[i].e.parked || in[i].e.pid <= 0 || in[i].e.pidfd < 0 ||
			    in[i].e.init_pidfd < 0 || in[i].e.ns_pid != saved)
				tu_fail("instance %d: parked %d pid %d pidfd %d ns_pid %d (saved %d)", i,
				     in[i].e.parked, in[i].e.pid, in[i].e.pidfd, in[i].e.ns_pid, saved);
			if (status_field(in[i].e.pid, "NSpid:") != saved)
				tu_fail("instance %d (%d): NSpid %ld, saved %d", i, in[i].e.pid,
				     status_field(in[i].e.pid, "NSpid:"), saved);
			if (nr_tasks(in[i].e.pid) != threads + 1)
				tu_fail("parked instance %d has %d threads, not %d", i,
				     nr_tasks(in[i].e.pid), threads + 1);
			/* Parked, its leader waits boosted (SCHED_FIFO). */
			if (sched_policy(in[i].e.pid) != 1)
				tu_fail("parked instance %d: leader policy %d, not SCHED_FIFO", i,
				     sched_policy(in[i].e.pid));
			if (saved != 1 && status_field(in[i].e.init, "PPid:") != getpid())
				tu_fail("init %d of instance %d is not our child", in[i].e.init, i);
		}
		/* Parked: none of the program's code runs. */
		for (int k = 0; k < 2; k++) {
			for (int i = lo; i < hi; i++) {
				struct iovec li = { in[i].ticks[k], sizeof(uint64_t) * (threads + 1) };
				struct iovec ri = { (void *)(uintptr_t)ticks_addr, li.iov_len };

				if (process_vm_readv(in[i].e.pid, &li, 1, &ri, 1, 0) != (ssize_t)li.iov_len)
					tu_fail("cannot read the counters of instance %d: %m", i);
			}
			if (!k)
				tu_sleep_ms(300);
		}
		for (int i = lo; i < hi; i++)
			if (memcmp(in[i].ticks[0], in[i].ticks[1], sizeof(uint64_t) * (threads + 1)))
				tu_fail("parked instance %d ran: its counters moved", i);
		if (b == 1) {
			eng_template_close(tpl);	/* parked ones can still start */
			tpl = NULL;
			if (waitpid(-1, NULL, WNOHANG) > 0)
				tu_fail("an init ended when the template closed");
		}
		for (int i = lo; i < hi; i++) {
			int pfd[2] = { -1, -1 };
			char buf[64] = "";
			uint64_t t0;

			if (i - lo < 3 && pipe2(pfd, O_CLOEXEC) < 0)
				return 1;
			t0 = tu_now_us();
			r = start(&in[i], pfd[1], i == lo);
			t0 = tu_now_us() - t0;
			lat_sum += t0;
			lat_max = t0 > lat_max ? t0 : lat_max;
			nlat++;
			if (pfd[1] >= 0)
				close(pfd[1]);
			if (r < 0) {
				tu_fail("start %d: %s", i, err_str(r));
				if (pfd[0] >= 0)
					close(pfd[0]);
				goto end;
			}
			if (in[i].e.parked || in[i].e.ctl_fd >= 0)
				tu_fail("instance %d still parked after its start", i);
			/* Running, every thread has the saved policy (SCHED_OTHER). */
			{
				char tp[64];
				struct dirent *de;
				DIR *d;

				snprintf(tp, sizeof(tp), "/proc/%d/task", in[i].e.pid);
				d = opendir(tp);
				while (d && (de = readdir(d)))
					if (de->d_name[0] != '.' && sched_policy(atoi(de->d_name)) != 0)
						tu_fail("instance %d: thread %s runs with policy %d", i,
						     de->d_name, sched_policy(atoi(de->d_name)));
				if (d)
					closedir(d);
			}
			if (pfd[0] >= 0) {
				char want[32];
				ssize_t got = -1;
				struct pollfd p = { .fd = pfd[0], .events = POLLIN };

				snprintf(want, sizeof(want), "hello %d\n", saved);
				if (poll(&p, 1, 5000) == 1)
					got = read(pfd[0], buf, sizeof(buf) - 1);
				buf[got > 0 ? got : 0] = 0;
				if (strcmp(buf, want))
					tu_fail("instance %d wrote \"%s\" on the fd 1 passed to it", i, buf);
				close(pfd[0]);
			}
			if (i == lo)
				check_fds(&in[i], i);
		}
	}

	/* Every instance answers on its fd 10, with its saved pid. */
	for (int i = 0; i < n; i++) {
		unsigned long long v;
		long pid;

		if (get(&in[i], 0, threads, &pid, &v) < 0) {
			tu_fail("instance %d does not answer on the fd %d passed to it", i, SERVE_FD);
			continue;
		}
		if (pid != saved || v != 1111)
			tu_fail("instance %d: pid %ld value %llu (want %d 1111)", i, pid, v, saved);
		/* The start leaves the program's SIGSEGV disposition as saved. */
		if (segv_ignored != (argc == 6))
			tu_fail("instance %d: SIGSEGV ignored %d, want %d", i, segv_ignored, argc == 6);
	}
	/* Independence: a write in one is invisible in the others. */
	{
		char rep[64];

		if (ask(&in[0], "set 2222", rep, sizeof(rep)) < 0 || strcmp(rep, "ok"))
			tu_fail("set on instance 0 failed");
	}
	tu_sleep_ms(200);
	for (int i = 0; i < n; i++) {
		unsigned long long v;
		long pid;

		if (get(&in[i], 1, threads, &pid, &v) < 0) {
			tu_fail("instance %d stopped answering", i);
			continue;
		}
		if (v != (i == 0 ? 2222u : 1111u))
			tu_fail("instance %d reports value %llu after the set in instance 0", i, v);
		for (int k = 0; k <= threads; k++)
			if (in[i].ticks[1][k] <= in[i].ticks[0][k])
				tu_fail("instance %d: thread %d does not run (%llu -> %llu)", i, k,
				     (unsigned long long)in[i].ticks[0][k],
				     (unsigned long long)in[i].ticks[1][k]);
		if (status_field(in[i].e.pid, "VmLck:") < 64)
			tu_fail("instance %d has %ld kB locked, not 64", i,
			     status_field(in[i].e.pid, "VmLck:"));
	}

	/* SIGTERM, SIGINT, SIGHUP to an init reach its instance (whose default
	 * action ends it): the init exits with 128 + that signal. */
	if (saved != 1) {
		static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };

		for (int k = 0; k < 3 && k < n; k++) {
			int st = 0;

			kill(in[k].e.init, sigs[k]);
			if (waitpid(in[k].e.init, &st, 0) != in[k].e.init || !WIFEXITED(st) ||
			    WEXITSTATUS(st) != 128 + sigs[k])
				tu_fail("init %d after signal %d: status 0x%x (want exit %d)", in[k].e.init,
				     sigs[k], st, 128 + sigs[k]);
			eng_instance_release(&in[k].e);
		}
	}
	printf("# %d instances, %d threads each: start %.3f ms average, %.3f ms max\n", n,
	       threads + 1, lat_sum / 1e3 / nlat, lat_max / 1e3);

end:
	/* A released parked instance dies: checked on a fresh template. */
	if (!tu_failures && snap[0]) {
		struct eng_instance extra;

		if (wc_store_open(store_dir, 0, NULL, &store) == 0) {
			r = eng_template_open(store, snap,
					      &(struct eng_template_opts){
						      .sz = sizeof(struct eng_template_opts),
						      .null_stdio = true },
					      &tpl);
			wc_store_close(store);
			if (r == 0 && eng_template_spawn(tpl, NULL, &extra) == 0) {
				struct eng_instance more, later;
				pid_t init = extra.init;
				int st = 0;

				/* A template killed from outside: spawns fail (-EIO),
				 * its parked instances still start. */
				if (eng_template_spawn(tpl, NULL, &later) < 0)
					tu_fail("template: no second parked instance");
				kill(eng_template_pid(tpl), SIGKILL);
				r = eng_template_spawn(tpl, NULL, &more);
				if (r != -EIO)
					tu_fail("spawn from a killed template: %d (%s)", r, err_str(r));
				if (more.init > 0) {
					kill(more.init, SIGKILL);
					waitpid(more.init, NULL, 0);
				}
				{
					struct inst tmp = { .e = later, .sock = -1 };
					unsigned long long v;
					long pid = 0;

					r = start(&tmp, -1, false);
					if (r < 0)
						tu_fail("a parked instance of a killed template does not start: %s",
						     err_str(r));
					else if (get(&tmp, 0, threads, &pid, &v) < 0 || pid != saved)
						tu_fail("a parked instance of a killed template does not answer "
						     "(pid %ld, want %ld)", pid, (long)saved);
					kill(tmp.e.init, SIGKILL);
					waitpid(tmp.e.init, NULL, 0);
					eng_instance_release(&tmp.e);
					if (tmp.sock >= 0)
						close(tmp.sock);
				}
				eng_template_close(tpl);	/* reaps the killed template */
				tpl = NULL;
				eng_instance_release(&extra);
				if (waitpid(init, &st, 0) != init || !WIFSIGNALED(st))
					tu_fail("released parked instance: init status 0x%x", st);
			} else {
				tu_fail("second template: %s", err_str(r));
			}
		}
	}
	/* Parked instances whose controller dies exit by themselves: a child
	 * opens a template, parks two, and exits without a word. */
	if (!tu_failures && snap[0]) {
		int pp[2];
		pid_t ctl, inits[2] = { -1, -1 };

		if (pipe2(pp, O_CLOEXEC) < 0)
			return 1;
		fflush(NULL);
		ctl = fork();
		if (ctl == 0) {
			struct eng_template *t2 = NULL;
			struct eng_instance e[2];

			close(pp[0]);
			if (wc_store_open(store_dir, 0, NULL, &store) < 0)
				_exit(1);
			if (eng_template_open(store, snap, &(struct eng_template_opts){
						      .sz = sizeof(struct eng_template_opts),
						      .null_stdio = true }, &t2) < 0)
				_exit(1);
			wc_store_close(store);
			for (int i = 0; i < 2; i++) {
				if (eng_template_spawn(t2, NULL, &e[i]) < 0)
					_exit(1);
				if (write(pp[1], &e[i].init, sizeof(pid_t)) != sizeof(pid_t))
					_exit(1);
			}
			_exit(0);	/* template, sockets: all closed by the exit */
		}
		close(pp[1]);
		for (int i = 0; i < 2; i++)
			if (read(pp[0], &inits[i], sizeof(pid_t)) != sizeof(pid_t))
				inits[i] = -1;
		close(pp[0]);
		if (inits[0] < 0 || inits[1] < 0)
			tu_fail("the controller child could not park two instances");
		/* Ours once the controller is gone (we are its subreaper). */
		for (int i = 0; i < 2; i++) {
			int st = 0;
			pid_t w = -1;

			for (int k = 0; k < 500 && inits[i] > 0; k++) {
				w = waitpid(inits[i], &st, WNOHANG);
				if (w == inits[i])
					break;
				if (w < 0 && errno == ECHILD)	/* not reparented yet */
					w = 0;
				tu_sleep_ms(10);
			}
			if (inits[i] > 0 && (w != inits[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 1)) {
				tu_fail("parked instance (init %d) after its controller died: %s 0x%x",
				     inits[i], w == inits[i] ? "status" : "still there", st);
				kill(inits[i], SIGKILL);
			}
		}
	}
	eng_template_close(tpl);
	for (int i = 0; i < n; i++) {
		if (in[i].e.pidfd >= 0)
			syscall(SYS_pidfd_send_signal, in[i].e.pidfd, SIGKILL, NULL, 0);
		if (in[i].e.init > 0)
			kill(in[i].e.init, SIGKILL);
		eng_instance_release(&in[i].e);
		if (in[i].sock >= 0)
			close(in[i].sock);
	}
	for (;;) {
		pid_t w = waitpid(-1, NULL, __WALL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;
	}
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		(void)!system(cmd);
	}
	if (tu_failures) {
		fprintf(stderr, "%d failure(s)\n", tu_failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
