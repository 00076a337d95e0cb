// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * spawn-test WARMFORK SPAWNEE THREADS MIB N [shm|dontfork|pipe]: checkpoint a running spawnee
 * (THREADS workers, MIB MiB of pattern), `warmfork spawn -n N` it, and check
 * the real state of the instances:
 *   - N distinct pids printed, each alive, each in its own pid namespace
 *     (not ours), with the saved pid there (NSpid) and THREADS+1 threads;
 *   - every instance answers (report file named by its pid-ns inode) with
 *     its saved pid from getpid(), the value 1111, its memory pattern
 *     intact, and every thread's counter (checked against its saved tid)
 *     advances between two reports;
 *   - independence: after SIGUSR1 to one instance (value 2222, a page
 *     written) only that one reports 2222 (with shm, the value is in a
 *     shared anonymous page: each instance must have its own copy);
 *   - memory is shared: the sum of the instances' Pss is below half of
 *     N x one instance's Rss.
 * With dontfork (the program holds a MADV_DONTFORK page, which a fork
 * cannot copy) spawn must instead exit non-zero, print no pid and leave no
 * process behind. With pipe (the program holds a pipe, which instances
 * would share) the same refusal first, then `spawn --shared` must work
 * as above.
 * We are a child subreaper: at the end every instance is killed, and every
 * process that ends up ours (inits) is reaped; none may remain.
 * Exit 0 pass, 1 fail, 77 skip (not root).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
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
#include "testutil.h"

#define MAX_N 1000

static char dir[64], store[128];

/* Run argv with stdout to @out (a file path), reaping @also (our child)
 * when it dies meanwhile; returns the exit status or -1. */
static int run(char *const argv[], const char *out, pid_t also, uint64_t *ret_ms)
{
	uint64_t t0 = tu_now_ms();
	pid_t c = fork();
	int st = -1;

	if (c < 0)
		return -1;
	if (c == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd < 0 || dup2(fd, 1) < 0)
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	for (;;) {
		int s;
		pid_t w = waitpid(-1, &s, 0);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		if (w == c) {
			st = WIFEXITED(s) ? WEXITSTATUS(s) : 128 + WTERMSIG(s);
			break;
		}
		(void)also;	/* the checkpointed process, or an init: reaped */
	}
	if (ret_ms)
		*ret_ms = tu_now_ms() - t0;
	return st;
}

static long field_kb(const char *text, const char *name)
{
	const char *p = strstr(text, name);

	return p ? strtol(p + strlen(name), NULL, 10) : -1;
}

struct inst {
	pid_t pid;
	unsigned long long ns;
	long long c[2][65];
	int nr;
};

static unsigned long long ns_inode(pid_t pid)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/pid", pid);
	return stat(path, &st) < 0 ? 0 : (unsigned long long)st.st_ino;
}

/* Ask every instance for a report and parse it into round @k. */
static void collect(struct inst *in, int n, int k, int threads, pid_t saved, long want_value,
		    int changed)
{
	char path[256];
	uint64_t deadline;

	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/r.%llu", dir, in[i].ns);
		unlink(path);
		kill(in[i].pid, SIGUSR2);
	}
	for (int i = 0; i < n; i++) {
		char *t;
		long pid, value;
		int ok, nt, off, used;

		snprintf(path, sizeof(path), "%s/r.%llu", dir, in[i].ns);
		deadline = tu_now_ms() + 20000;
		while (!(t = tu_read_text(path)) && tu_now_ms() < deadline)
			tu_sleep_ms(5);
		if (!t) {
			tu_fail("instance %d (pid %d) did not answer", i, in[i].pid);
			continue;
		}
		if (sscanf(t, "%ld %ld %d %d%n", &pid, &value, &ok, &nt, &off) != 4 || nt != threads) {
			tu_fail("instance %d: bad report \"%s\"", i, t);
			continue;
		}
		if (pid != saved)
			tu_fail("instance %d: getpid() is %ld, not the saved %d", i, pid, saved);
		if (!ok)
			tu_fail("instance %d: its memory pattern is damaged, or it does not lead its "
			     "session and process group", i);
		long want = i == changed ? 2222 : want_value;
		if (value != want)
			tu_fail("instance %d: value %ld, expected %ld%s", i, value, want,
			     i == changed ? " (it was told to change it)" :
			     " (a write in another instance is visible)");
		for (int j = 0; j <= threads; j++) {
			if (sscanf(t + off, " %lld%n", &in[i].c[k][j], &used) != 1) {
				tu_fail("instance %d: counter %d missing", i, j);
				break;
			}
			off += used;
			if (in[i].c[k][j] < 0)
				tu_fail("instance %d thread %d: gettid() is not its saved tid", i, j);
		}
	}
}

int main(int argc, char **argv)
{
	const char *wf, *prog;
	int threads, n, mib;
	char snap[256] = "", out[256], tmp[256];
	struct inst *in;
	pid_t prog_pid = -1, saved;
	uint64_t spawn_ms = 0, deadline;
	long sum_pss = 0, rss = 0;
	char *t;

	if (argc != 6 && !(argc == 7 && (!strcmp(argv[6], "shm") || !strcmp(argv[6], "dontfork") ||
					 !strcmp(argv[6], "pipe")))) {
		fprintf(stderr, "usage: spawn-test WARMFORK SPAWNEE THREADS MIB N [shm|dontfork|pipe]\n");
		return 1;
	}
	if (geteuid() != 0) {
		printf("SKIP: needs root (pid namespaces, set_tid)\n");
		return 77;
	}
	wf = argv[1];
	prog = argv[2];
	threads = atoi(argv[3]);
	mib = atoi(argv[4]);
	n = atoi(argv[5]);
	if (n < 1 || n > MAX_N)
		return 1;
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	strcpy(dir, "/tmp/spawn-test-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(store, sizeof(store), "%s/store", dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	in = calloc(n, sizeof(*in));

	/* The program, ready. */
	prog_pid = fork();
	if (prog_pid == 0) {
		char a1[16], a2[16];
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		/* Nothing of ours beyond stdio: the checkpoint refuses pipes. */
		syscall(SYS_close_range, 3u, ~0u, 0u);
		snprintf(a1, sizeof(a1), "%d", threads);
		snprintf(a2, sizeof(a2), "%d", mib);
		execl(prog, prog, a1, a2, dir, argc == 7 ? argv[6] : (char *)NULL, (char *)NULL);
		_exit(127);
	}
	snprintf(tmp, sizeof(tmp), "%s/ready", dir);
	deadline = tu_now_ms() + 30000;
	while (!(t = tu_read_text(tmp)) && tu_now_ms() < deadline)
		tu_sleep_ms(5);
	if (!t) {
		tu_fail("the program never got ready");
		goto end;
	}
	saved = prog_pid;

	/* Checkpoint (kills it; we reap it while warmfork waits). */
	{
		char *av[] = { (char *)wf, "--store", store, "checkpoint", NULL, NULL };
		char pidbuf[16];
		int st;

		snprintf(pidbuf, sizeof(pidbuf), "%d", prog_pid);
		av[4] = pidbuf;
		st = run(av, out, prog_pid, NULL);
		t = tu_read_text(out);
		if (st != 0 || !t || sscanf(t, "%255s", snap) != 1) {
			tu_fail("checkpoint exited %d", st);
			goto end;
		}
		if (kill(prog_pid, 0) == 0)
			tu_fail("the checkpointed process still exists");
	}

	/* Spawn. */
	{
		char nbuf[16];
		char *av[] = { (char *)wf, "--store", store, "spawn", "-n", nbuf, "--null-stdio", "--stats",
			       snap, NULL, NULL };
		bool refused = argc == 7 && (!strcmp(argv[6], "dontfork") || !strcmp(argv[6], "pipe"));
		int st, k = 0;
		char *p;

		snprintf(nbuf, sizeof(nbuf), "%d", n);
		st = run(av, out, -1, &spawn_ms);
		if (refused) {
			/* Refused: nothing printed, nothing of it left (any leftover
			 * would end up our child: we are the subreaper). */
			t = tu_read_text(out);
			if (st == 0 || !t || *t)
				tu_fail("spawn of a %s snapshot exited %d and printed \"%s\"", argv[6], st,
				     t ? t : "");
			if (waitpid(-1, NULL, WNOHANG | __WALL) != -1 || errno != ECHILD)
				tu_fail("a process is left after the refused spawn");
			if (strcmp(argv[6], "pipe")) {
				n = 0;
				goto end;
			}
			/* --shared: spawned all the same, the pipe shared. */
			av[8] = "--shared";
			av[9] = snap;
			st = run(av, out, -1, &spawn_ms);
		}
		if (st != 0) {
			tu_fail("spawn exited %d", st);
			goto end;
		}
		t = tu_read_text(out);
		for (p = t; p && *p && k < n; k++) {
			char *e;

			in[k].pid = (pid_t)strtol(p, &e, 10);
			if (e == p || in[k].pid <= 0)
				break;
			p = e + strspn(e, "\n");
		}
		if (k != n || (p && *p)) {
			tu_fail("spawn printed %d pids instead of %d", k, n);
			n = k;
			goto end;
		}
	}
	printf("spawn of %d instances: %llu ms (%.2f ms each, warmfork run included)\n", n,
	       (unsigned long long)spawn_ms, (double)spawn_ms / n);

	/* Each alive, own namespace, saved pid, all threads. */
	for (int i = 0; i < n; i++) {
		char path[128];
		DIR *d;
		struct dirent *de;
		int nt = 0;
		const char *nsp;

		for (int j = 0; j < i; j++)
			if (in[j].pid == in[i].pid)
				tu_fail("pid %d printed twice", in[i].pid);
		in[i].ns = ns_inode(in[i].pid);
		if (!in[i].ns || in[i].ns == ns_inode(getpid()))
			tu_fail("instance %d (pid %d) is not in a pid namespace of its own", i, in[i].pid);
		for (int j = 0; j < i; j++)
			if (in[j].ns == in[i].ns)
				tu_fail("instances %d and %d share a pid namespace", j, i);
		snprintf(path, sizeof(path), "/proc/%d/status", in[i].pid);
		t = tu_read_text(path);
		nsp = t ? strstr(t, "NSpid:") : NULL;
		if (!nsp) {
			tu_fail("instance %d (pid %d) does not exist", i, in[i].pid);
			continue;
		}
		{
			const char *eol = strchr(nsp, '\n'), *last = eol;

			while (last > nsp && last[-1] != '\t' && last[-1] != ' ')
				last--;
			if (atoi(last) != saved)
				tu_fail("instance %d: pid %d in its namespace, not %d", i, atoi(last), saved);
		}
		snprintf(path, sizeof(path), "/proc/%d/task", in[i].pid);
		d = opendir(path);
		while (d && (de = readdir(d)))
			nt += de->d_name[0] != '.';
		if (d)
			closedir(d);
		if (nt != threads + 1)
			tu_fail("instance %d: %d threads instead of %d", i, nt, threads + 1);
	}
	if (tu_failures)
		goto end;

	/* PSS before anything is written on purpose. */
	for (int i = 0; i < n; i++) {
		char path[128];

		snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", in[i].pid);
		t = tu_read_text(path);
		if (!t) {
			tu_fail("instance %d: no smaps_rollup", i);
			continue;
		}
		sum_pss += field_kb(t, "\nPss:");
		if (i == 0)
			rss = field_kb(t, "\nRss:");
	}
	printf("memory: one instance Rss %ld KiB; %d instances Pss sum %ld KiB (%.2f x Rss; "
	       "unshared would be %d x)\n", rss, n, sum_pss, rss > 0 ? (double)sum_pss / rss : 0.0, n);
	if (rss < mib * 1024L)
		tu_fail("instance Rss %ld KiB is below the %d MiB the program filled", rss, mib);
	if (n >= 2 && sum_pss * 2 > (long)n * rss)
		tu_fail("the instances do not share memory: Pss sum %ld KiB, %d x Rss %ld KiB", sum_pss,
		     n, rss);

	/* Every instance and thread runs; then independence. */
	collect(in, n, 0, threads, saved, 1111, -1);
	tu_sleep_ms(300);
	collect(in, n, 1, threads, saved, 1111, -1);
	for (int i = 0; i < n && !tu_failures; i++)
		for (int j = 0; j <= threads; j++)
			if (in[i].c[1][j] <= in[i].c[0][j])
				tu_fail("instance %d thread %d does not run (counter %lld then %lld)", i, j,
				     in[i].c[0][j], in[i].c[1][j]);
	if (!tu_failures) {
		int victim = n / 2;

		kill(in[victim].pid, SIGUSR1);
		tu_sleep_ms(100);
		collect(in, n, 0, threads, saved, 1111, victim);
	}
end:
	/* Kill and reap everything: instances end, their inits exit to us. */
	if (prog_pid > 0)
		kill(prog_pid, SIGKILL);
	for (int i = 0; i < n; i++)
		if (in[i].pid > 0)
			kill(in[i].pid, SIGKILL);
	deadline = tu_now_ms() + 20000;
	for (;;) {
		pid_t w = waitpid(-1, NULL, WNOHANG | __WALL);

		if (w < 0 && errno == ECHILD)
			break;
		if (w <= 0) {
			if (tu_now_ms() > deadline) {
				tu_fail("processes remain after killing the instances");
				break;
			}
			tu_sleep_ms(5);
		}
	}
	for (int i = 0; i < n; i++)
		if (in[i].pid > 0 && kill(in[i].pid, 0) == 0)
			tu_fail("instance %d (pid %d) still exists", i, in[i].pid);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", dir);
	}
	if (tu_failures) {
		fprintf(stderr, "%d check(s) failed\n", tu_failures);
		return 1;
	}
	printf("PASS\n");
	return 0;
}
