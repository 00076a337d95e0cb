// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * bench-engine: checkpoint and restore times and stored bytes of warmfork's
 * engine against four workloads, medians of several runs, one JSON line.
 *
 *   bench-engine --warmfork PATH --tiny PATH --mem PATH --python-script PATH
 *                --java-src PATH [--runs N] [--only NAME[,NAME]] [--mem-mib N]
 *
 * Workloads (each a fresh process per run, a fresh store per run):
 *   tiny    wl-tiny.c: one thread counting
 *   mem1g   wl-mem.c: 1 GiB anonymous, 1/2 unique, 1/4 duplicated, 1/4 zero
 *   python  /usr/bin/python3 wl-python.py: stdlib imported (~25 MB)
 *   jvm     java -XX:+UseG1GC -XX:-UsePerfData WlJvm: pool of 4, ~24 threads,
 *           ~270 MB RSS (perf data off: before engine 2603989 a JVM starting
 *           between checkpoint and restore deleted /tmp/hsperfdata_root/PID,
 *           which the snapshot mapped, and the restore refused; kept off so
 *           that the figures stay comparable across the recorded runs)
 *
 * Protocol (every workload): it writes 'R' on its stdout when set up, then waits
 * for one byte on stdin; on that byte it writes 'A' on stdout at once, then
 * checks its own state and writes 'P' (pass) or 'F' and exits.
 *
 * Definitions (what the figures mean):
 *   checkpoint_ms  from just before spawning `warmfork --store S checkpoint PID`
 *                  to its exit (it returns once the snapshot is committed, the
 *                  process killed and its pid free).
 *   restore_ms     "restored and running": from just before spawning
 *                  `warmfork --store S restore SNAP` (stdin: a pipe that already
 *                  holds the go byte, stdout: a pipe) to the moment the byte 'A'
 *                  arrives on that stdout pipe. 'A' is written by the restored
 *                  process's own code, after its interrupted read(0) returned the
 *                  go byte: the process runs, with its memory, threads and fds.
 *                  warmfork restore's default: post-copy (the big anonymous
 *                  areas' pages are placed while the process runs).
 *   restore_checked_ms  the same restore until 'P': the process then read its
 *                  whole state back and found it intact (for mem1g: every page).
 *   cold_start_ms  the baseline, measured in the same run: from just before
 *                  spawning the workload itself to its 'R' (set up, ready);
 *                  cold_over_restore = cold_start_ms / restore_ms.
 *   eager_restore_ms, eager_restore_checked_ms  the same two with
 *                  `restore --eager` (every page in place before it runs), of
 *                  the same snapshot right after.
 *   stored_bytes   bytes of all files in the (fresh) store directory after the
 *                  checkpoint (apparent sizes: packs, indexes, manifests, blobs).
 *   verified       every run's restored process then answered 'P' and exited 0.
 * Each figure is the median over the runs; min and max are given too.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_RUNS 32

struct wl {
	const char *name;
	char *argv[12];
	int runs;
	double target_ckpt_ms, target_restore_ms, target_stored_bytes; /* 0: none */
	double ckpt_ms[MAX_RUNS], restore_ms[MAX_RUNS], stored[MAX_RUNS];
	double done_ms[MAX_RUNS], eager_ms[MAX_RUNS], eager_done_ms[MAX_RUNS];
	double cold_ms[MAX_RUNS];	/* the baseline: start until ready ('R') */
	int done;
	bool verified;
	char error[256];
};

static const char *warmfork;
static char tmp_root[PATH_MAX];
static volatile sig_atomic_t stop_sig;

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench-engine: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void on_stop(int sig)
{
	stop_sig = sig;
}

static int pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static pid_t spawn(char *const *argv, int in_fd, int out_fd)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none;
	pid_t pid;
	int r;

	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	{
		sigset_t def;

		sigemptyset(&def);
		sigaddset(&def, SIGPIPE);
		sigaddset(&def, SIGTERM);
		sigaddset(&def, SIGINT);
		posix_spawnattr_setsigdefault(&at, &def);
	}
	if (in_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (out_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	/* Nothing inherited beyond stdio (the workloads must be checkpointable). */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	r = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r) {
		msg("spawn %s: %s", argv[0], strerror(r));
		return -r;
	}
	return pid;
}

static int read_children(pid_t pid, pid_t *out, int max)
{
	char path[96], buf[4096];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)) && n < max) {
		ssize_t r;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/children", (int)pid, de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r <= 0)
			continue;
		buf[r] = 0;
		for (char *s = buf, *e; *s && n < max; s = e) {
			long v = strtol(s, &e, 10);

			if (e == s)
				break;
			out[n++] = (pid_t)v;
		}
	}
	closedir(d);
	return n;
}

static void kill_tree(pid_t pid, int depth)
{
	pid_t kids[256];
	int n = read_children(pid, kids, 256);

	kill(pid, SIGSTOP);
	for (int i = 0; i < n && depth < 16; i++)
		kill_tree(kids[i], depth + 1);
	kill(pid, SIGKILL);
}

/* Kill and reap every descendant (we are a child subreaper). */
static void kill_everything(void)
{
	for (int round = 0; round < 1000; round++) {
		pid_t kids[256];
		int n;

		while (waitpid(-1, NULL, WNOHANG | __WALL) > 0)
			;
		n = read_children(getpid(), kids, 256);
		if (!n)
			return;
		for (int i = 0; i < n; i++)
			kill_tree(kids[i], 0);
		usleep(10000);
	}
}

/* Wait for one byte on @fd; returns it, or -ETIMEDOUT / -EPIPE. */
static int wait_byte(int fd, unsigned timeout_ms)
{
	uint64_t until = now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	unsigned char c;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = ((int64_t)until - (int64_t)now_ns()) / 1000000;
		ssize_t n;

		if (left <= 0 || stop_sig)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		n = read(fd, &c, 1);
		if (n == 1)
			return c;
		if (n == 0)
			return -EPIPE;
		if (errno != EINTR)
			return -errno;
	}
}

/* Wait for @pid to exit (pidfd), reaping @also (the checkpointed process, our
 * child) meanwhile. Returns the wait status or -ETIMEDOUT. */
static int wait_pid(pid_t pid, pid_t also, unsigned timeout_ms)
{
	uint64_t until = now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	int pfd = pidfd_open(pid), afd = also > 0 ? pidfd_open(also) : -1, st = 0;

	for (;;) {
		struct pollfd p[2] = { { .fd = pfd, .events = POLLIN }, { .fd = afd, .events = POLLIN } };
		int64_t left = ((int64_t)until - (int64_t)now_ns()) / 1000000;

		if (left <= 0 || stop_sig) {
			st = -ETIMEDOUT;
			break;
		}
		if (poll(p, afd >= 0 ? 2 : 1, (int)left) <= 0)
			continue;
		if (afd >= 0 && (p[1].revents & POLLIN)) {
			waitpid(also, NULL, __WALL);
			close(afd);
			afd = -1;
		}
		if (p[0].revents & POLLIN) {
			waitpid(pid, &st, __WALL);
			break;
		}
	}
	close(pfd);
	if (afd >= 0)
		close(afd);
	return st;
}

static uint64_t dir_bytes(const char *path)
{
	struct dirent *de;
	uint64_t sum = 0;
	DIR *d = opendir(path);

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char p[PATH_MAX];
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		if (lstat(p, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode))
			sum += dir_bytes(p);
		else if (S_ISREG(st.st_mode))
			sum += (uint64_t)st.st_size;
	}
	closedir(d);
	return sum;
}

static void rm_rf(const char *path)
{
	char *argv[] = { "rm", "-rf", (char *)path, NULL };
	pid_t pid = spawn(argv, -1, -1);

	if (pid > 0)
		waitpid(pid, NULL, 0);
}

/* One `warmfork restore [--eager] SNAP`: the times until 'A' (running) and
 * until 'P' (its own check of its whole state passed). */
static int restore_once(struct wl *w, const char *store, const char *snap, bool eager,
			double *a_ms, double *p_ms)
{
	int in2[2], out2[2], st, c;
	uint64_t t2, t3, t4;
	pid_t rs;

	if (pipe2(in2, O_CLOEXEC) || pipe2(out2, O_CLOEXEC))
		return snprintf(w->error, sizeof(w->error), "pipe: %m"), -1;
	if (write(in2[1], "G", 1) != 1)
		return -1;
	{
		char *argv[] = { (char *)warmfork, "--store", (char *)store, "restore",
				 eager ? "--eager" : (char *)snap, eager ? (char *)snap : NULL, NULL };

		t2 = now_ns();
		rs = spawn(argv, in2[0], out2[1]);
		close(in2[0]);
		close(out2[1]);
		if (rs < 0)
			return snprintf(w->error, sizeof(w->error), "cannot start warmfork"), -1;
		c = wait_byte(out2[0], 120000);
		t3 = now_ns();
	}
	if (c != 'A') {
		kill_everything();
		return snprintf(w->error, sizeof(w->error), "restored process did not answer (%d)", c), -1;
	}
	c = wait_byte(out2[0], 120000);
	t4 = now_ns();
	st = wait_pid(rs, 0, 120000);
	close(out2[0]);
	close(in2[1]);
	if (c != 'P' || st < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		w->verified = false;
		snprintf(w->error, sizeof(w->error), "restored process failed its check (%c, status %#x)",
			 c > 0 ? c : '?', st);
	}
	kill_everything();
	*a_ms = (double)(t3 - t2) / 1e6;
	*p_ms = (double)(t4 - t2) / 1e6;
	return 0;
}

static int one_run(struct wl *w, int run)
{
	char store[PATH_MAX], spid[16], snap[256] = "";
	int in1[2], out1[2], snapp[2], st, c;
	uint64_t t0, t1;
	pid_t pid, ck;
	ssize_t n;

	snprintf(store, sizeof(store), "%s/store-%s-%d", tmp_root, w->name, run);
	if (pipe2(in1, O_CLOEXEC) || pipe2(out1, O_CLOEXEC) || pipe2(snapp, O_CLOEXEC))
		return snprintf(w->error, sizeof(w->error), "pipe: %m"), -1;

	t0 = now_ns();
	pid = spawn(w->argv, in1[0], out1[1]);
	close(in1[0]);
	close(out1[1]);
	if (pid < 0)
		return snprintf(w->error, sizeof(w->error), "cannot start %s", w->argv[0]), -1;
	c = wait_byte(out1[0], 180000);
	w->cold_ms[run] = (double)(now_ns() - t0) / 1e6;
	if (c != 'R')
		return snprintf(w->error, sizeof(w->error), "workload not ready (%d)", c), -1;

	/* Checkpoint. */
	snprintf(spid, sizeof(spid), "%d", (int)pid);
	{
		char *argv[] = { (char *)warmfork, "--store", store, "checkpoint", spid, NULL };

		t0 = now_ns();
		ck = spawn(argv, -1, snapp[1]);
		close(snapp[1]);
		if (ck < 0)
			return snprintf(w->error, sizeof(w->error), "cannot start warmfork"), -1;
		st = wait_pid(ck, pid, 120000);
		t1 = now_ns();
	}
	n = read(snapp[0], snap, sizeof(snap) - 1);
	close(snapp[0]);
	snap[n > 0 ? n : 0] = 0;
	snap[strcspn(snap, "\n")] = 0;
	if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) || !snap[0])
		return snprintf(w->error, sizeof(w->error), "checkpoint failed (status %#x)", st), -1;
	waitpid(pid, NULL, WNOHANG | __WALL);
	close(in1[1]);
	close(out1[0]);
	w->ckpt_ms[run] = (double)(t1 - t0) / 1e6;
	w->stored[run] = (double)dir_bytes(store);
	msg("%s run %d: checkpoint %.2f ms, stored %.0f bytes (snapshot %s)", w->name, run,
	    w->ckpt_ms[run], w->stored[run], snap);

	/* Restore until the process answers: as warmfork restore does by
	 * default (post-copy), then the same snapshot with --eager. */
	for (int eager = 0; eager < 2; eager++) {
		double a_ms, p_ms;

		if (restore_once(w, store, snap, eager, &a_ms, &p_ms) < 0)
			return -1;
		(eager ? w->eager_ms : w->restore_ms)[run] = a_ms;
		(eager ? w->eager_done_ms : w->done_ms)[run] = p_ms;
		msg("%s run %d: restore%s %.2f ms, checked %.2f ms%s", w->name, run,
		    eager ? " --eager" : "", a_ms, p_ms, w->verified ? "" : " (check FAILED)");
	}
	rm_rf(store);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void stats(const double *v, int n, double *med, double *mn, double *mx)
{
	double s[MAX_RUNS];

	memcpy(s, v, sizeof(double) * (size_t)n);
	qsort(s, (size_t)n, sizeof(double), cmp_double);
	*med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	*mn = s[0];
	*mx = s[n - 1];
}

static bool compile_java(const char *src)
{
	char *argv[] = { "javac", "-d", tmp_root, (char *)src, NULL };
	pid_t pid = spawn(argv, -1, -1);
	int st;

	if (pid < 0)
		return false;
	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "warmfork", required_argument, NULL, 'w' },
		{ "tiny", required_argument, NULL, 't' },
		{ "mem", required_argument, NULL, 'm' },
		{ "python-script", required_argument, NULL, 'p' },
		{ "java-src", required_argument, NULL, 'j' },
		{ "runs", required_argument, NULL, 'r' },
		{ "only", required_argument, NULL, 'o' },
		{ "mem-mib", required_argument, NULL, 'M' },
		{}
	};
	const char *tiny = NULL, *mem = NULL, *pyscript = NULL, *javasrc = NULL, *only = NULL;
	char mem_mib[16] = "1024", date[64];
	int runs = 5, c, failed = 0, all_met = 1;
	double load_start = -1;
	struct sigaction sa = { .sa_handler = on_stop };
	struct utsname u;
	time_t now = time(NULL);

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'w': warmfork = optarg; break;
		case 't': tiny = optarg; break;
		case 'm': mem = optarg; break;
		case 'p': pyscript = optarg; break;
		case 'j': javasrc = optarg; break;
		case 'r': runs = atoi(optarg); break;
		case 'o': only = optarg; break;
		case 'M': snprintf(mem_mib, sizeof(mem_mib), "%s", optarg); break;
		default: return 2;
		}
	}
	if (!warmfork || !tiny || !mem || !pyscript || !javasrc || runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "usage: bench-engine --warmfork P --tiny P --mem P --python-script P "
				"--java-src P [--runs N] [--only a,b] [--mem-mib N]\n");
		return 2;
	}
	if (geteuid() != 0) {
		printf("{\"bench\":\"engine\",\"skipped\":\"needs root\"}\n");
		return 77;
	}
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	snprintf(tmp_root, sizeof(tmp_root), "/tmp/bench-engine-XXXXXX");
	if (!mkdtemp(tmp_root))
		return 1;
	/* The machine is shared: record how busy it was (1-minute load average). */
	{
		FILE *f = fopen("/proc/loadavg", "re");

		if (f) {
			if (fscanf(f, "%lf", &load_start) != 1)
				load_start = -1;
			fclose(f);
		}
	}

	struct wl wls[] = {
		{ .name = "tiny", .argv = { (char *)tiny }, .runs = runs * 2,
		  .target_restore_ms = 3 },
		{ .name = "mem1g", .argv = { (char *)mem, mem_mib }, .runs = runs,
		  .target_ckpt_ms = 400, .target_restore_ms = 350, .target_stored_bytes = 0.55e9 },
		{ .name = "python", .argv = { "/usr/bin/python3", (char *)pyscript }, .runs = runs,
		  .target_restore_ms = 10 },
		{ .name = "jvm", .argv = { "java", "-XX:+UseG1GC", "-XX:-UsePerfData", "-Xms64m", "-Xmx1g", "-cp", tmp_root,
					   "WlJvm", "160" }, .runs = runs, .target_restore_ms = 100 },
	};
	const int nr = (int)(sizeof(wls) / sizeof(wls[0]));

	for (int i = 0; i < nr; i++) {
		struct wl *w = &wls[i];

		w->verified = true;
		if (w->runs > MAX_RUNS)
			w->runs = MAX_RUNS;
		if (only && !strstr(only, w->name)) {
			w->runs = 0;
			continue;
		}
		if (!strcmp(w->name, "jvm") && !compile_java(javasrc)) {
			snprintf(w->error, sizeof(w->error), "javac failed or missing");
			continue;
		}
		for (int r = 0; r < w->runs && !stop_sig; r++) {
			if (one_run(w, r) < 0) {
				msg("%s run %d: %s", w->name, r, w->error);
				kill_everything();
				break;
			}
			w->done++;
		}
	}
	kill_everything();
	rm_rf(tmp_root);

	uname(&u);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	printf("{\"bench\":\"engine\",\"date\":\"%s\",\"kernel\":\"%s\",\"cpus\":%ld,"
	       "\"loadavg_at_start\":%.2f", date, u.release, sysconf(_SC_NPROCESSORS_ONLN), load_start);
	for (int i = 0; i < nr; i++) {
		struct wl *w = &wls[i];
		double cm, cmin, cmax, rm, rmin, rmax, sm, smin, smax;
		bool met = true;

		if (!w->runs)
			continue;
		printf(",\"%s\":{\"runs\":%d", w->name, w->done);
		if (w->done) {
			stats(w->ckpt_ms, w->done, &cm, &cmin, &cmax);
			stats(w->restore_ms, w->done, &rm, &rmin, &rmax);
			stats(w->stored, w->done, &sm, &smin, &smax);
			printf(",\"checkpoint_ms\":%.2f,\"checkpoint_ms_min\":%.2f,\"checkpoint_ms_max\":%.2f"
			       ",\"restore_ms\":%.2f,\"restore_ms_min\":%.2f,\"restore_ms_max\":%.2f"
			       ",\"stored_bytes\":%.0f",
			       cm, cmin, cmax, rm, rmin, rmax, sm);
			{
				double d, e, ed, cold, lo, hi;

				stats(w->done_ms, w->done, &d, &lo, &hi);
				stats(w->eager_ms, w->done, &e, &lo, &hi);
				stats(w->eager_done_ms, w->done, &ed, &lo, &hi);
				stats(w->cold_ms, w->done, &cold, &lo, &hi);
				printf(",\"restore_checked_ms\":%.2f,\"eager_restore_ms\":%.2f"
				       ",\"eager_restore_checked_ms\":%.2f,\"cold_start_ms\":%.2f"
				       ",\"cold_over_restore\":%.1f", d, e, ed, cold, rm > 0 ? cold / rm : 0);
			}
			if (w->target_ckpt_ms && cm > w->target_ckpt_ms)
				met = false;
			if (w->target_restore_ms && rm > w->target_restore_ms)
				met = false;
			if (w->target_stored_bytes && sm > w->target_stored_bytes)
				met = false;
		}
		if (w->done < w->runs || !w->verified)
			met = false, failed++;
		if (!met)
			all_met = 0;
		printf(",\"verified\":%s,\"targets_met\":%s", w->verified && w->done ? "true" : "false",
		       met ? "true" : "false");
		if (w->error[0])
			printf(",\"error\":\"%s\"", w->error);
		printf("}");
	}
	printf(",\"all_targets_met\":%s}\n", all_met ? "true" : "false");
	return failed ? 1 : 0;
}
