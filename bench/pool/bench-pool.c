// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * bench-pool WARMD WARMFORK WORKLOAD MIB ROUNDS IDLE [THREADS]: warmd's acquire
 * latency against a plain fork() of a process of the same size, in the same
 * run. One JSON line on stdout (root; exits 77 otherwise).
 *
 * The workload (pool-workload.c, MIB MiB of private anonymous memory,
 * waiting on fd 0) is checkpointed into a fresh store; warmd runs it as a
 * pool of IDLE parked instances. Then, ROUNDS times each:
 *   warm:  wait until the pool is full again (untimed), then time
 *          wf_acquire (request -> reply with the pid and pidfd: the instance
 *          runs, our socket as its fds 0 and 1) and the first answer (one
 *          byte there and back through the instance), release it;
 *   burst: bursts of 3/4 IDLE acquires back to back, the pool full before
 *          each burst (what the pool is for: warmd refills in the gaps);
 *   sustained: ROUNDS acquires back to back: the pool drains and each
 *          acquire then also waits for (part of) a spawn;
 *   fork:  this process, holding MIB MiB of touched memory, forks; timed:
 *          fork() returning in the parent, and fork until the child's first
 *          byte arrives on a pipe (the child is running).
 * Target (issue 6): warm acquire p99 <= 2 ms. BENCH_POOL_LOG=FILE keeps
 * warmd's debug log (each start: lock wait, start, since request).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "warmfork.h"
#include "testutil.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* "name":{"p50":..,"p99":..,"max":..} in microseconds. */
static void pct(char *out, size_t len, const char *name, uint64_t *v, size_t n)
{
	if (!n) {
		snprintf(out, len, "\"%s\":null", name);
		return;
	}
	qsort(v, n, sizeof(*v), cmp_u64);
	snprintf(out, len, "\"%s\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f}", name,
		 v[(n - 1) / 2] / 1e3, v[(n - 1) * 99 / 100] / 1e3, v[n - 1] / 1e3);
}

static int die(const char *msg)
{
	fprintf(stderr, "bench-pool: %s\n", msg);
	return 1;
}

static unsigned int idle_of(struct wf_client *c)
{
	struct wf_pool_stats *s;
	size_t n;
	unsigned int idle = 0;

	if (wf_stats(c, "bench", &s, &n) == 0) {
		if (n == 1)
			idle = s[0].idle;
		free(s);
	}
	return idle;
}

/* Acquire with a socketpair as fds 0 and 1, one byte there and back. */
static int one_round(struct wf_client *c, uint64_t *ret_acq, uint64_t *ret_answer)
{
	struct wf_fd_map map[2];
	struct wf_acquire_opts o = { .sz = sizeof(o), .fds = map, .nr_fds = 2, .timeout_ms = 30000 };
	struct wf_instance in;
	uint64_t t0, t1, t2;
	int sv[2], r;
	char b = 'x';

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	map[0] = (struct wf_fd_map){ sv[1], 0 };
	map[1] = (struct wf_fd_map){ sv[1], 1 };
	t0 = tu_now_ns();
	r = wf_acquire(c, "bench", &o, &in);
	t1 = tu_now_ns();
	close(sv[1]);
	if (r < 0) {
		close(sv[0]);
		return r;
	}
	if (write(sv[0], &b, 1) != 1 || read(sv[0], &b, 1) != 1)
		r = -EIO;
	t2 = tu_now_ns();
	wf_release(c, in.pid);
	close(in.pidfd);
	close(sv[0]);
	*ret_acq = t1 - t0;
	*ret_answer = t2 - t0;
	return r;
}

int main(int argc, char **argv)
{
	char dir[64] = "/tmp/bench-pool.XXXXXX", store[128], sock[128], ready[128], snap[32] = "";
	const char *warmd, *warmfork, *workload;
	uint64_t *acq_w, *ans_w, *acq_b, *ans_b, *acq_s, *ans_s, *fork_ret, *fork_run;
	unsigned int mib, rounds, idle, threads;
	struct wf_client *c = NULL;
	struct wf_pool_stats *st = NULL;
	size_t nst = 0;
	pid_t h, d = -1;
	double load = 0;
	char a[8][160], cmd[256];
	int in[2], out[2], r, rc = 1;
	FILE *f;

	if (argc != 7 && argc != 8)
		return die("usage: bench-pool WARMD WARMFORK WORKLOAD MIB ROUNDS IDLE [THREADS]");
	if (geteuid() != 0) {
		printf("SKIP: bench-pool needs root\n");
		return 77;
	}
	warmd = argv[1];
	warmfork = argv[2];
	workload = argv[3];
	mib = (unsigned int)atoi(argv[4]);
	rounds = (unsigned int)atoi(argv[5]);
	idle = (unsigned int)atoi(argv[6]);
	threads = argc == 8 ? (unsigned int)atoi(argv[7]) : 0;
	if (!rounds || !idle)
		return die("ROUNDS and IDLE must be > 0");
	acq_w = calloc(rounds, 8);
	ans_w = calloc(rounds, 8);
	acq_b = calloc(rounds, 8);
	ans_b = calloc(rounds, 8);
	acq_s = calloc(rounds, 8);
	ans_s = calloc(rounds, 8);
	fork_ret = calloc(rounds, 8);
	fork_run = calloc(rounds, 8);
	if (!acq_w || !ans_w || !acq_b || !ans_b || !acq_s || !ans_s || !fork_ret || !fork_run || !mkdtemp(dir))
		return die("setup");
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);
	snprintf(store, sizeof(store), "%s/store", dir);
	snprintf(sock, sizeof(sock), "%s/warmd.sock", dir);
	snprintf(ready, sizeof(ready), "%s/ready", dir);

	/* The workload, checkpointed while it waits on fd 0. */
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		return die("pipe");
	h = fork();
	if (h == 0) {
		char m[16], t[16];

		snprintf(m, sizeof(m), "%u", mib);
		snprintf(t, sizeof(t), "%u", threads);
		dup2(in[0], 0);
		execl(workload, workload, dir, m, t, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	for (int i = 0; i < 3000 && access(ready, F_OK) < 0; i++)
		tu_sleep_ms(10);
	tu_sleep_ms(50);
	{
		char pid[16];
		pid_t ck = fork();
		bool ck_ok = false;
		int s;

		snprintf(pid, sizeof(pid), "%d", h);
		if (ck == 0) {
			dup2(out[1], 1);
			execl(warmfork, warmfork, "--store", store, "checkpoint", pid, (char *)NULL);
			_exit(127);
		}
		close(out[1]);
		/* The checkpoint returns once the workload's pid is free: reap
		 * it (our child) as soon as it dies. */
		for (bool h_reaped = false;;) {
			pid_t w = waitpid(-1, &s, 0);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				break;
			if (w == h)
				h_reaped = true;
			if (w == ck) {
				ck_ok = WIFEXITED(s) && !WEXITSTATUS(s);
				if (!ck_ok)
					kill(h, SIGKILL);
				if (!h_reaped)
					waitpid(h, NULL, 0);
				break;
			}
		}
		/* The id, printed before it exited: in the pipe. */
		if (!ck_ok || read(out[0], snap, 31) < 16)
			snap[0] = 0;
		snap[16] = 0;
		close(in[1]);
		if (!snap[0]) {
			die("checkpoint of the workload failed");
			goto out;
		}
	}

	d = fork();
	if (d == 0) {
		/* BENCH_POOL_LOG=FILE: warmd's debug log (per-start times) there. */
		const char *logf = getenv("BENCH_POOL_LOG");
		int fd = logf ? open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0644) : open("/dev/null", O_WRONLY);

		dup2(fd, 2);
		if (logf)
			execl(warmd, warmd, "--socket", sock, "--store", store, "-vv", (char *)NULL);
		else
			execl(warmd, warmd, "--socket", sock, "--store", store, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 1000 && access(sock, F_OK) < 0; i++)
		tu_sleep_ms(10);
	r = wf_connect(sock, &c);
	if (r >= 0)
		r = wf_pool_register(c, "bench", snap, &(struct wf_pool_opts){
			.sz = sizeof(struct wf_pool_opts), .idle_target = idle });
	if (r < 0) {
		die(wf_errmsg());
		goto out;
	}

	for (unsigned int i = 0; i < rounds; i++) {
		for (int k = 0; k < 30000 && idle_of(c) < idle; k++)
			tu_sleep_ms(1);
		tu_sleep_ms(2);	/* the worker back to sleep */
		if (one_round(c, &acq_w[i], &ans_w[i]) < 0) {
			die(wf_errmsg());
			goto out;
		}
	}
	for (unsigned int i = 0, burst = idle * 3 / 4 ? idle * 3 / 4 : 1; i < rounds; i++) {
		if (i % burst == 0) {
			for (int k = 0; k < 30000 && idle_of(c) < idle; k++)
				tu_sleep_ms(1);
			tu_sleep_ms(2);
		}
		if (one_round(c, &acq_b[i], &ans_b[i]) < 0) {
			die(wf_errmsg());
			goto out;
		}
	}
	for (int k = 0; k < 30000 && idle_of(c) < idle; k++)
		tu_sleep_ms(1);
	for (unsigned int i = 0; i < rounds; i++)
		if (one_round(c, &acq_s[i], &ans_s[i]) < 0) {
			die(wf_errmsg());
			goto out;
		}
	if (wf_stats(c, "bench", &st, &nst) < 0 || nst != 1) {
		die(wf_errmsg());
		goto out;
	}

	/* fork() of a process of the same size: this one, with MIB MiB touched. */
	{
		size_t len = (size_t)mib << 20;
		uint64_t *mem = mmap(NULL, len ? len : 4096, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int p[2];

		if (mem == MAP_FAILED || pipe2(p, O_CLOEXEC) < 0) {
			die("fork baseline setup");
			goto out;
		}
		for (size_t i = 0; i < len / 8; i++)
			mem[i] = i;
		for (unsigned int i = 0; i < rounds; i++) {
			uint64_t t0 = tu_now_ns(), t1;
			char b;
			pid_t ch = fork();

			if (ch == 0) {
				b = (char)mem[len / 16];
				(void)!write(p[1], &b, 1);
				_exit(0);
			}
			t1 = tu_now_ns();
			if (read(p[0], &b, 1) != 1) {
				die("fork baseline child");
				goto out;
			}
			fork_ret[i] = t1 - t0;
			fork_run[i] = tu_now_ns() - t0;
			waitpid(ch, NULL, 0);
		}
		munmap(mem, len);
	}
	f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf", &load) != 1)
			load = 0;
		fclose(f);
	}
	pct(a[0], sizeof(a[0]), "acquire_warm_us", acq_w, rounds);
	pct(a[1], sizeof(a[1]), "first_answer_warm_us", ans_w, rounds);
	pct(a[2], sizeof(a[2]), "acquire_burst_us", acq_b, rounds);
	pct(a[3], sizeof(a[3]), "first_answer_burst_us", ans_b, rounds);
	pct(a[4], sizeof(a[4]), "acquire_sustained_us", acq_s, rounds);
	pct(a[5], sizeof(a[5]), "first_answer_sustained_us", ans_s, rounds);
	pct(a[6], sizeof(a[6]), "fork_return_us", fork_ret, rounds);
	pct(a[7], sizeof(a[7]), "fork_to_running_us", fork_run, rounds);
	qsort(acq_w, rounds, 8, cmp_u64);
	printf("{\"bench\":\"pool\",\"mib\":%u,\"threads\":%u,\"rounds\":%u,\"idle_target\":%u,%s,%s,%s,%s,%s,%s,%s,%s,"
	       "\"warmd_acquire_p50_us\":%.1f,\"warmd_acquire_p99_us\":%.1f,\"spawned\":%lu,"
	       "\"failed\":%lu,\"target_p99_us\":2000,\"target_met\":%s,\"loadavg\":%.2f}\n",
	       mib, threads + 1, rounds, idle, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], st[0].acquire_p50_ns / 1e3,
	       st[0].acquire_p99_ns / 1e3, (unsigned long)st[0].spawned, (unsigned long)st[0].failed,
	       acq_w[(rounds - 1) * 99 / 100] <= 2000000 ? "true" : "false", load);
	rc = 0;
out:
	free(st);
	wf_disconnect(c);
	if (d > 0) {
		kill(d, SIGTERM);
		waitpid(d, NULL, 0);
	}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench-pool: cannot remove %s\n", dir);
	return rc;
}
