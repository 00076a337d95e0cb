// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * bench-spawn WARMFORK SPAWNEE MIB THREADS N1,N2,...: spawn against fork.
 *
 * Checkpoints one spawnee (tests/spawn/spawnee.c: MIB MiB of pattern,
 * THREADS workers), then for each N, three times (spawn and fork in turns,
 * medians reported; the *_all arrays hold the three, sorted):
 *   - `warmfork spawn -n N --stats` of it: the wall time of the command,
 *     and from --stats the template time and the instances' time (from the
 *     template ready until every instance runs) per instance;
 *   - the sum of the N instances' Pss and one instance's Rss
 *     (/proc/PID/smaps_rollup), all instances idle;
 *   - in the same run, plain fork() of a process of ours with the same MIB
 *     MiB touched: N children (each pause()s), one after the other: the
 *     time of the fork calls per child (fork_ms), and per child until it
 *     runs (fork_run_ms: it wrote a byte we read before the next fork).
 * Prints one JSON line. Root only (77 otherwise). A child subreaper: kills and
 * reaps everything.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "testutil.h"

static char dir[64], store[128];

static int run(char *const argv[], const char *out, const char *err)
{
	pid_t c = fork();
	int s;

	if (c == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int fe = err ? open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : 2;

		if (fd < 0 || fe < 0 || dup2(fd, 1) < 0 || dup2(fe, 2) < 0)
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	for (;;) {
		pid_t w = waitpid(-1, &s, 0);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		if (w == c)
			return WIFEXITED(s) ? WEXITSTATUS(s) : 128 + WTERMSIG(s);
	}
}

static void reap_all(void)
{
	uint64_t deadline = tu_now_ns() + 30000000000ull;

	for (;;) {
		pid_t w = waitpid(-1, NULL, WNOHANG | __WALL);

		if (w < 0 && errno == ECHILD)
			return;
		if (w <= 0) {
			if (tu_now_ns() > deadline)
				return;
			tu_sleep_ms(2);
		}
	}
}

/* Runs of each N, spawn and fork in turns; the medians are reported. */
#define SPAWN_REPS	3

static double median(double *v, int n)
{
	for (int i = 1; i < n; i++)
		for (int k = i; k > 0 && v[k] < v[k - 1]; k--) {
			double x = v[k];

			v[k] = v[k - 1];
			v[k - 1] = x;
		}
	return v[n / 2];
}

static long kb(const char *t, const char *name)
{
	const char *p = t ? strstr(t, name) : NULL;

	return p ? strtol(p + strlen(name), NULL, 10) : -1;
}

/*
 * Fork N children of a process holding @mib MiB touched, one after the
 * other; returns ns per fork() call, and in *ret_run_ns per child until it
 * runs (it writes a byte on a pipe that we read before the next fork: the
 * same "running" as a spawned instance's).
 */
static double fork_ns(int mib, int n, double *ret_run_ns)
{
	size_t len = (size_t)mib << 20;
	uint64_t *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pid_t *kids = calloc(n, sizeof(pid_t));
	uint64_t total = 0, total_run = 0;
	int pp[2];

	if (buf == MAP_FAILED || !kids || pipe2(pp, O_CLOEXEC) < 0)
		return -1;
	for (size_t i = 0; i < len / 8; i++)
		buf[i] = i * 0x9e3779b97f4a7c15ull + 1;
	for (int i = 0; i < n; i++) {
		uint64_t t0 = tu_now_ns();

		char b = 0;

		kids[i] = fork();
		if (kids[i] == 0) {
			if (write(pp[1], &b, 1) != 1)
				_exit(1);
			for (;;)
				pause();
		}
		total += tu_now_ns() - t0;
		if (kids[i] > 0 && read(pp[0], &b, 1) != 1)
			return -1;
		total_run += tu_now_ns() - t0;
	}
	close(pp[0]);
	close(pp[1]);
	*ret_run_ns = (double)total_run / n;
	for (int i = 0; i < n; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGKILL);
	reap_all();
	munmap(buf, len);
	free(kids);
	return (double)total / n;
}

int main(int argc, char **argv)
{
	const char *wf, *prog;
	int mib, threads, first = 1;
	char snap[256], out[192], err[192], *t, *list, *tok;
	pid_t pid;
	uint64_t deadline;

	if (argc != 6) {
		fprintf(stderr, "usage: bench-spawn WARMFORK SPAWNEE MIB THREADS N1,N2,...\n");
		return 1;
	}
	if (geteuid() != 0) {
		printf("SKIP: needs root\n");
		return 77;
	}
	wf = argv[1];
	prog = argv[2];
	mib = atoi(argv[3]);
	threads = atoi(argv[4]);
	list = strdup(argv[5]);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	strcpy(dir, "/tmp/bench-spawn-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(store, sizeof(store), "%s/store", dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(err, sizeof(err), "%s/err", dir);

	pid = fork();
	if (pid == 0) {
		char a1[16], a2[16];
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		syscall(SYS_close_range, 3u, ~0u, 0u);
		snprintf(a1, sizeof(a1), "%d", threads);
		snprintf(a2, sizeof(a2), "%d", mib);
		execl(prog, prog, a1, a2, dir, (char *)NULL);
		_exit(127);
	}
	{
		char rp[192];

		snprintf(rp, sizeof(rp), "%s/ready", dir);
		deadline = tu_now_ns() + 60000000000ull;
		while (!tu_read_text(rp) && tu_now_ns() < deadline)
			tu_sleep_ms(5);
	}
	{
		char pb[16];
		char *av[] = { (char *)wf, "--store", store, "checkpoint", pb, NULL };

		snprintf(pb, sizeof(pb), "%d", pid);
		if (run(av, out, NULL) != 0 || !(t = tu_read_text(out)) || sscanf(t, "%255s", snap) != 1) {
			fprintf(stderr, "bench-spawn: checkpoint failed\n");
			kill(pid, SIGKILL);
			reap_all();
			return 1;
		}
	}
	printf("{\"bench\":\"spawn\",\"mib\":%d,\"threads\":%d,\"runs\":[", mib, threads);
	for (tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
		int n = atoi(tok), all_ok = 1;
		char nb[16];
		char *av[] = { (char *)wf, "--store", store, "spawn", "-n", nb, "--null-stdio",
			       "--stats", snap, NULL };
		pid_t *pids = calloc(n, sizeof(pid_t));
		double tpl_ms = -1, wall_ms = -1, inst[SPAWN_REPS], fk[SPAWN_REPS], fk_run[SPAWN_REPS];
		double mi, mf, mfr;
		long pss = 0, rss = -1;

		snprintf(nb, sizeof(nb), "%d", n);
		/* Spawn and fork taken in turns, so that both see the same load. */
		for (int rep = 0; rep < SPAWN_REPS; rep++) {
			double inst_ms = -1, tp = -1;
			uint64_t t0 = tu_now_ns();
			int st, k = 0;

			st = run(av, out, err);
			if (!rep)
				wall_ms = (tu_now_ns() - t0) / 1e6;
			t = tu_read_text(err);
			if (t && (t = strstr(t, "template")))
				sscanf(t, "template %lf ms, instances %lf ms", &tp, &inst_ms);
			if (!rep)
				tpl_ms = tp;
			inst[rep] = inst_ms / n;
			t = tu_read_text(out);
			while (t && *t && k < n) {
				char *e;

				pids[k] = (pid_t)strtol(t, &e, 10);
				if (e == t)
					break;
				k++;
				t = e + strspn(e, "\n");
			}
			if (st != 0 || k != n)
				all_ok = 0;
			if (!rep) {
				tu_sleep_ms(200);
				for (int i = 0; i < k; i++) {
					char p[64];
					char *r;

					snprintf(p, sizeof(p), "/proc/%d/smaps_rollup", pids[i]);
					r = tu_read_text(p);
					pss += kb(r, "\nPss:");
					if (i == 0)
						rss = kb(r, "\nRss:");
				}
			}
			for (int i = 0; i < k; i++)
				kill(pids[i], SIGKILL);
			reap_all();
			fk[rep] = fork_ns(mib, n, &fk_run[rep]) / 1e6;
			fk_run[rep] /= 1e6;
		}
		mi = median(inst, SPAWN_REPS);
		mf = median(fk, SPAWN_REPS);
		mfr = median(fk_run, SPAWN_REPS);
		printf("%s{\"n\":%d,\"ok\":%s,\"reps\":%d,\"spawn_wall_ms\":%.1f,\"template_ms\":%.1f,"
		       "\"instance_ms\":%.3f,\"fork_ms\":%.3f,\"instance_over_fork\":%.2f,"
		       "\"fork_run_ms\":%.3f,\"instance_over_fork_run\":%.2f,"
		       "\"pss_sum_kib\":%ld,\"rss_one_kib\":%ld,\"pss_over_rss\":%.2f,"
		       "\"instance_ms_all\":[%.3f,%.3f,%.3f],\"fork_run_ms_all\":[%.3f,%.3f,%.3f]}",
		       first ? "" : ",", n, all_ok ? "true" : "false", SPAWN_REPS, wall_ms, tpl_ms,
		       mi, mf, mf > 0 ? mi / mf : 0.0, mfr, mfr > 0 ? mi / mfr : 0.0, pss, rss,
		       rss > 0 ? (double)pss / rss : 0.0, inst[0], inst[1], inst[2], fk_run[0],
		       fk_run[1], fk_run[2]);
		fflush(stdout);
		first = 0;
		free(pids);
	}
	printf("]}\n");
	reap_all();
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			return 1;
	}
	return 0;
}
