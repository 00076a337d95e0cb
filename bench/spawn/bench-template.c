// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * bench-template WARMFORK NAME N N_LAT WARM_MS -- PROGRAM ARGS...
 *
 * The spawn template API (engine.h, eng_template_*) on a checkpointed
 * PROGRAM (every "@DIR@" in ARGS becomes a scratch directory; the program
 * writes @DIR@/ready when ready, and may write @DIR@/alive.* files: see
 * tests/spawn/SpawnJvm.java). Once ready it runs WARM_MS more ms, then it is
 * checkpointed and:
 *   - template_ms: eng_template_open (validate + restore once);
 *   - N instances spawned and started one after the other: the time of each
 *     (eng_template_spawn, started: from the request until every thread of
 *     the instance runs the program), mean/p50/p99/max; threads_ok: the
 *     instances that have all the program's threads; alive_ok: the
 *     instances whose alive file shows its smallest worker counter growing
 *     between two reads 0.5 s apart (every worker runs; -1 for programs
 *     that write none); pss_sum_kib of the N idle instances and
 *     rss_one_kib of one (/proc/PID/smaps_rollup);
 *   - many_ms_per_instance: the same N by eng_template_spawn_many (several
 *     under way at once), total time / N;
 *   - pool acquire: N_LAT instances, by batches of 10 spawned parked (what
 *     a pool keeps ready) then started one by one with three descriptors
 *     (/dev/null as 0, a pipe as 1 and 2: a request's connection), the
 *     time of eng_instance_start (= acquire), p50/p99/max, and of the
 *     parked spawn; then the same with eng_instance_opts.pretrace (the
 *     other threads taken over at spawn time): pretrace_*.
 * One JSON line. Root only (77 otherwise). A child subreaper: every init is
 * our child; all are killed and reaped.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "engine.h"
#include "warmcache.h"
#include "testutil.h"

static char dir[64];

static long kb(const char *t, const char *name)
{
	const char *p = t ? strstr(t, name) : NULL;

	return p ? strtol(p + strlen(name), NULL, 10) : -1;
}

static int count_entries(const char *path, const char *prefix)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && !strncmp(de->d_name, prefix, strlen(prefix)))
			n++;
	closedir(d);
	return n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Percentile @p (0-100) of @n sorted values, in ms. */
static double pct_ms(const uint64_t *v, int n, double p)
{
	int i = (int)(p / 100.0 * (n - 1) + 0.5);

	return n ? v[i < n ? i : n - 1] / 1e6 : -1;
}

static double mean_ms(const uint64_t *v, int n)
{
	double s = 0;

	for (int i = 0; i < n; i++)
		s += (double)v[i];
	return n ? s / n / 1e6 : -1;
}

static void kill_reap(struct eng_instance *in, int n)
{
	for (int i = 0; i < n; i++)
		if (in[i].init > 0)
			kill(in[i].init, SIGKILL);
	for (int i = 0; i < n; i++) {
		if (in[i].init > 0)
			while (waitpid(in[i].init, NULL, __WALL) < 0 && errno == EINTR)
				;
		eng_instance_release(&in[i]);
	}
}

/*
 * Pool acquire: batches of 10 parked (@pretrace: their other threads taken
 * over at once), then started one by one with three descriptors. Returns
 * the number measured.
 */
static int acquire_loop(struct eng_template *tpl, struct eng_instance *in, int nlat, bool pretrace,
			uint64_t *lat, uint64_t *parked, int *ok)
{
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC), pp[2];
	int done = 0, r;

	if (nul < 0 || pipe2(pp, O_CLOEXEC) < 0)
		return 1;
	fcntl(pp[0], F_SETFL, O_NONBLOCK);
	while (done < nlat && *ok) {
		int b = nlat - done < 10 ? nlat - done : 10;

		for (int i = 0; i < b; i++) {
			uint64_t t0 = tu_now_ns();

			r = eng_template_spawn(tpl, &(struct eng_instance_opts){
						       .sz = sizeof(struct eng_instance_opts),
						       .parked = true, .pretrace = pretrace },
					       &in[i]);
			parked[done + i] = tu_now_ns() - t0;
			if (r < 0) {
				fprintf(stderr, "bench-template: parked %d: %s\n", done + i,
					err_str(r));
				*ok = 0;
				b = i;
				break;
			}
		}
		tu_sleep_ms(20);	/* a pool's instances wait a while */
		for (int i = 0; i < b; i++) {
			int fds[3] = { nul, pp[1], pp[1] }, nums[3] = { 0, 1, 2 };
			uint64_t t0 = tu_now_ns();

			r = eng_instance_start(&in[i], fds, nums, 3);
			lat[done + i] = tu_now_ns() - t0;
			if (r < 0) {
				fprintf(stderr, "bench-template: start %d: %s\n", done + i,
					err_str(r));
				*ok = 0;
			}
		}
		kill_reap(in, b);
		{
			char drain[4096];

			while (read(pp[0], drain, sizeof(drain)) > 0)
				;
		}
		done += b;
	}
	close(nul);
	close(pp[0]);
	close(pp[1]);
	return done;
}

/* Run argv (stdout to @out), reaping every other child meanwhile. */
static int run(char *const argv[], const char *out)
{
	pid_t c = fork();
	int s;

	if (c == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd < 0 || dup2(fd, 1) < 0)
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

int main(int argc, char **argv)
{
	const char *wf, *name;
	int n, nlat, warm_ms, nthreads = -1, threads_ok = 0, alive_ok = -1, r, ok = 1;
	char store_dir[128], out[128], path[256], snap[256], **pargv, orig_alive[48];
	struct wc_store *store = NULL;
	struct eng_template *tpl = NULL;
	struct eng_instance *in;
	uint64_t *sp, *lat, *parked, *lat_pt, *parked_pt, tpl_ns = 0, many_ns = 0;
	long pss = 0, rss = -1;
	pid_t prog;
	char *t;

	if (argc < 8 || strcmp(argv[6], "--")) {
		fprintf(stderr, "usage: bench-template WARMFORK NAME N N_LAT WARM_MS -- PROGRAM ARGS...\n");
		return 1;
	}
	if (geteuid() != 0) {
		printf("SKIP: needs root\n");
		return 77;
	}
	wf = argv[1];
	name = argv[2];
	n = atoi(argv[3]);
	nlat = atoi(argv[4]);
	warm_ms = atoi(argv[5]);
	if (n < 1 || nlat < 1 || access(argv[7], X_OK) < 0) {
		printf("SKIP: %s is not there\n", argv[7]);
		return 77;
	}
	{
		struct stat st;

		if (stat("/proc/self/ns/pid", &st) < 0)
			return 1;
		snprintf(orig_alive, sizeof(orig_alive), "alive.%llu", (unsigned long long)st.st_ino);
	}
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	strcpy(dir, "/tmp/bench-tpl-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(store_dir, sizeof(store_dir), "%s/store", dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	pargv = calloc(argc, sizeof(char *));
	for (int i = 7; i < argc; i++)
		pargv[i - 7] = strcmp(argv[i], "@DIR@") ? argv[i] : dir;
	in = calloc(n > nlat ? n : nlat, sizeof(*in));
	sp = calloc(n, sizeof(*sp));
	lat = calloc(nlat, sizeof(*lat));
	parked = calloc(nlat, sizeof(*parked));
	lat_pt = calloc(nlat, sizeof(*lat_pt));
	parked_pt = calloc(nlat, sizeof(*parked_pt));

	prog = fork();
	if (prog == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		syscall(SYS_close_range, 3u, ~0u, 0u);
		execv(pargv[0], pargv);
		_exit(127);
	}
	snprintf(path, sizeof(path), "%s/ready", dir);
	for (int i = 0; i < 6000 && !tu_read_text(path); i++)
		tu_sleep_ms(10);
	tu_sleep_ms(warm_ms);
	snprintf(path, sizeof(path), "/proc/%d/task", prog);
	nthreads = count_entries(path, "");
	/* @DIR@/hold: a program that writes files holds none open meanwhile
	 * (SpawnJvm); removed before the spawns. */
	snprintf(path, sizeof(path), "%s/hold", dir);
	close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	tu_sleep_ms(100);
	{
		char pb[16];
		char *av[] = { (char *)wf, "--store", store_dir, "checkpoint", pb, NULL };

		snprintf(pb, sizeof(pb), "%d", prog);
		if (run(av, out) != 0 || !(t = tu_read_text(out)) || sscanf(t, "%255s", snap) != 1) {
			fprintf(stderr, "bench-template: checkpoint of %s failed\n", name);
			kill(prog, SIGKILL);
			return 1;
		}
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
	snprintf(path, sizeof(path), "%s/hold", dir);
	unlink(path);
	r = wc_store_open(store_dir, 0, NULL, &store);
	if (r >= 0)
		r = eng_template_open(store, snap,
				      &(struct eng_template_opts){ .sz = sizeof(struct eng_template_opts),
								   .null_stdio = true,
								   .ret_open_ns = &tpl_ns },
				      &tpl);
	wc_store_close(store);
	if (r < 0) {
		fprintf(stderr, "bench-template: %s: %s\n", name, err_str(r));
		return 1;
	}

	/* N running instances, one after the other. */
	for (int i = 0; i < n; i++) {
		uint64_t t0 = tu_now_ns();

		r = eng_template_spawn(tpl, &(struct eng_instance_opts){
					       .sz = sizeof(struct eng_instance_opts), .parked = false },
				       &in[i]);
		sp[i] = tu_now_ns() - t0;
		if (r < 0) {
			fprintf(stderr, "bench-template: %s: instance %d: %s\n", name, i, err_str(r));
			ok = 0;
			n = i;
			break;
		}
		{
			char tp[64];

			snprintf(tp, sizeof(tp), "/proc/%d/task", in[i].pid);
			threads_ok += count_entries(tp, "") == nthreads;
		}
	}
	/* Programs that write alive files: each instance's smallest worker
	 * counter (5th field) must grow between two reads 0.5 s apart. */
	tu_sleep_ms(500);
	{
		long first[4096] = { 0 };
		char names[4096][48];
		int nf = 0;

		for (int k = 0; k < 2; k++) {
			DIR *d = opendir(dir);
			struct dirent *de;

			while (d && (de = readdir(d))) {
				char ap[320];
				long self, sum, min;
				int all, thr, idx = -1;

				if (strncmp(de->d_name, "alive.", 6) || strstr(de->d_name, ".tmp") ||
				    strlen(de->d_name) >= sizeof(names[0]))
					continue;
				/* Not the checkpointed original's own file. */
				if (!strcmp(de->d_name, orig_alive))
					continue;
				snprintf(ap, sizeof(ap), "%s/%s", dir, de->d_name);
				t = tu_read_text(ap);
				if (!t || sscanf(t, "%ld %ld %d %d %ld", &self, &sum, &all, &thr, &min) != 5)
					continue;
				for (int j = 0; j < nf; j++)
					if (!strcmp(names[j], de->d_name))
						idx = j;
				if (k == 0 && idx < 0 && nf < 4096) {
					memcpy(names[nf], de->d_name, strlen(de->d_name) + 1);	/* fits: checked */
					first[nf++] = min;
				} else if (k == 1 && idx >= 0 && min > first[idx]) {
					alive_ok = alive_ok < 0 ? 1 : alive_ok + 1;
					first[idx] = LONG_MAX;	/* counted once */
				}
			}
			if (d)
				closedir(d);
			if (!k)
				tu_sleep_ms(500);
		}
		if (nf && alive_ok < 0)
			alive_ok = 0;
	}
	for (int i = 0; i < n; i++) {
		char p[64];

		snprintf(p, sizeof(p), "/proc/%d/smaps_rollup", in[i].pid);
		t = tu_read_text(p);
		pss += kb(t, "\nPss:");
		if (i == 0)
			rss = kb(t, "\nRss:");
	}
	kill_reap(in, n);
	qsort(sp, n, sizeof(*sp), cmp_u64);

	/* The same N at once (eng_template_spawn_many: several under way). */
	{
		size_t got = 0;
		uint64_t t0 = tu_now_ns();

		r = eng_template_spawn_many(tpl, &(struct eng_instance_opts){
						    .sz = sizeof(struct eng_instance_opts),
						    .parked = false },
					    (size_t)n, in, &got);
		many_ns = tu_now_ns() - t0;
		if (r < 0) {
			fprintf(stderr, "bench-template: %s: spawn_many: %s\n", name, err_str(r));
			ok = 0;
		}
		kill_reap(in, (int)got);
	}

	/* Pool acquire: plain, then with pretrace. */
	{
		int got = acquire_loop(tpl, in, nlat, false, lat, parked, &ok);

		acquire_loop(tpl, in, nlat, true, lat_pt, parked_pt, &ok);
		nlat = got;
	}
	eng_template_close(tpl);
	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	qsort(parked, nlat, sizeof(*parked), cmp_u64);
	qsort(lat_pt, nlat, sizeof(*lat_pt), cmp_u64);
	qsort(parked_pt, nlat, sizeof(*parked_pt), cmp_u64);

	printf("{\"bench\":\"spawn-template\",\"name\":\"%s\",\"ok\":%s,\"threads\":%d,"
	       "\"template_ms\":%.1f,\"n\":%d,\"spawn_ms_mean\":%.3f,\"spawn_ms_p50\":%.3f,"
	       "\"spawn_ms_p99\":%.3f,\"spawn_ms_max\":%.3f,\"many_ms_per_instance\":%.3f,"
	       "\"threads_ok\":%d,\"alive_ok\":%d,"
	       "\"pss_sum_kib\":%ld,\"rss_one_kib\":%ld,\"pss_over_rss\":%.2f,\"n_lat\":%d,"
	       "\"parked_spawn_ms_p50\":%.3f,\"acquire_ms_p50\":%.3f,\"acquire_ms_p99\":%.3f,"
	       "\"acquire_ms_max\":%.3f,\"pretrace_parked_spawn_ms_p50\":%.3f,"
	       "\"pretrace_acquire_ms_p50\":%.3f,\"pretrace_acquire_ms_p99\":%.3f,"
	       "\"pretrace_acquire_ms_max\":%.3f}\n",
	       name, ok && threads_ok == n ? "true" : "false", nthreads, tpl_ns / 1e6, n,
	       mean_ms(sp, n), pct_ms(sp, n, 50), pct_ms(sp, n, 99), pct_ms(sp, n, 100),
	       n ? many_ns / 1e6 / n : -1.0, threads_ok,
	       alive_ok, pss, rss, rss > 0 ? (double)pss / rss : 0.0, nlat, pct_ms(parked, nlat, 50),
	       pct_ms(lat, nlat, 50), pct_ms(lat, nlat, 99), pct_ms(lat, nlat, 100),
	       pct_ms(parked_pt, nlat, 50), pct_ms(lat_pt, nlat, 50), pct_ms(lat_pt, nlat, 99),
	       pct_ms(lat_pt, nlat, 100));
	for (;;) {
		pid_t w = waitpid(-1, NULL, __WALL);

		if (w < 0 && errno != EINTR)
			break;
	}
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			return 1;
	}
	return ok ? 0 : 1;
}
