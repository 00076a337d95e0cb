// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * cr-harness: checkpoint/restore test driver in the spirit of CRIU's zdtm.
 *
 *   cr-harness [--warmfork PATH] [--mode MODE] [--repeat N] [--timeout SEC]
 *              [--go signal|file] [--javac SRC] [--between SHELL-CMD] [--keep] [--tree]
 *              -- PROGRAM [ARGS...]
 *
 * It starts PROGRAM with $CR_DIR set, waits for its ready file (tests/cr/lib/cr.h),
 * checkpoints it with `warmfork checkpoint`, restores it with `warmfork restore` as
 * MODE says, tells it "go" (SIGUSR1, or the file $CR_DIR/go.<pidns inode>), and
 * takes the restored process's exit status as the verdict. Modes:
 *
 *   plain     restore, no flags; verdict = exit status of `warmfork restore`
 *   inherit   restore --inherit-stdio
 *   detach    restore --detach: the printed pid must be the original one; the
 *             restored process is reaped by us (child subreaper)
 *   pidns     restore --pidns=new
 *   twice     two plain restores of the same snapshot, one after the other
 *   pidns4    four restores --pidns=new of the same snapshot at once
 *   failckpt  the checkpoint must fail and leave the process running unchanged
 *   corrupt   restore once (control: must pass), then flip one byte in the store's
 *             packs/ *.pack: restore must refuse and start nothing
 *   pidtaken  a process of ours holds the original pid: restore must refuse (no
 *             copy under another pid), leave that process alone; once it is
 *             gone, a restore passes (control)
 *   nockpt    no checkpoint at all (self-test of the program)
 *   tamper    flip the byte the program published instead of a checkpoint: the
 *             program must FAIL (self-test: proves it checks real state)
 *
 * --ckpt-flag FLAG passes one more option to `warmfork checkpoint` (e.g.
 * --tcp-established).
 * --between runs a shell command after the checkpoint, before the restore (e.g.
 * something that changes the world the snapshot refers to). --keep keeps the
 * temporary directory with its stores.
 *
 * Exit: 0 pass, 1 fail, 77 skip. The harness is a child subreaper; whatever
 * happens it kills and reaps every descendant before it exits, and every wait
 * has a deadline (--timeout, default 120 s, for one repetition).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 512

enum mode { M_PLAIN, M_INHERIT, M_DETACH, M_PIDNS, M_TWICE, M_PIDNS4, M_FAILCKPT,
	    M_CORRUPT, M_NOCKPT, M_TAMPER, M_PIDTAKEN };
static const char *const mode_names[] = { "plain", "inherit", "detach", "pidns", "twice",
	"pidns4", "failckpt", "corrupt", "nockpt", "tamper", "pidtaken" };

struct proc {
	pid_t pid;
	bool exited;
	int status;
};

static struct proc procs[MAX_PROCS];
static unsigned nr_procs;
static volatile sig_atomic_t stop_sig;
static const char *warmfork = "warmfork";
static enum mode mode = M_PLAIN;
static bool go_by_file;
static bool ckpt_tree;		/* --tree: checkpoint --tree (the program and its children) */
static unsigned timeout_s = 120;
static uint64_t deadline_ns;
static char tmp_root[PATH_MAX];
static char cr_dir[PATH_MAX];
static char store_dir[PATH_MAX];
static unsigned long long own_pidns;
static const char *between_cmd;
static const char *ckpt_flag;	/* --ckpt-flag: one more checkpoint option (tcp) */

/* A ready file's content: see cr.h. */
struct ready {
	unsigned long long ns;
	pid_t pid, hostpid;
	unsigned long tamper_addr;
	size_t tamper_len;
};

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "cr-harness: ");
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

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void on_stop(int sig)
{
	stop_sig = sig;
}

static bool expired(void)
{
	return stop_sig || now_ns() > deadline_ns;
}

static struct proc *proc_find(pid_t pid, bool add)
{
	for (unsigned i = 0; i < nr_procs; i++)
		if (procs[i].pid == pid)
			return &procs[i];
	if (!add || nr_procs == MAX_PROCS)
		return NULL;
	procs[nr_procs] = (struct proc){ .pid = pid };
	return &procs[nr_procs++];
}

/* Reap every exited child (ours, or orphans handed to us as subreaper), keeping
 * each status for whoever waits for that pid. */
static void reap(void)
{
	struct proc *p;
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG | __WALL)) > 0) {
		p = proc_find(pid, true);
		if (p && p->exited)
			*p = (struct proc){ .pid = pid }; /* pid reused */
		if (p) {
			p->exited = true;
			p->status = st;
		}
	}
}

static void forget(pid_t pid)
{
	struct proc *p = proc_find(pid, false);

	if (p)
		p->pid = 0;
}

/* Wait until @pid exited (reaping everything meanwhile); false on timeout. */
static bool wait_exit(pid_t pid, uint64_t until_ns, int *ret_status)
{
	struct proc *p;

	for (;;) {
		reap();
		p = proc_find(pid, false);
		if (p && p->exited) {
			*ret_status = p->status;
			p->pid = 0;
			return true;
		}
		if (stop_sig || now_ns() > until_ns)
			return false;
		sleep_ms(1);
	}
}

static bool has_exited(pid_t pid)
{
	struct proc *p;

	reap();
	p = proc_find(pid, false);
	return p && p->exited;
}

static void describe_status(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		snprintf(buf, len, "wait status %#x", st);
}

static int read_children(pid_t pid, pid_t *out, int max)
{
	char path[64], buf[4096];
	int n = 0;
	DIR *d;
	struct dirent *de;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)) && n < max) {
		char cpath[128];
		ssize_t r;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		snprintf(cpath, sizeof(cpath), "/proc/%d/task/%s/children", (int)pid, de->d_name);
		fd = open(cpath, O_RDONLY | O_CLOEXEC);
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

/* SIGKILL @pid's descendants, then @pid. */
static void kill_tree(pid_t pid, int depth)
{
	pid_t kids[256];
	int n = read_children(pid, kids, 256);

	kill(pid, SIGSTOP); /* no new children while we walk */
	if (depth < 16)
		for (int i = 0; i < n; i++)
			kill_tree(kids[i], depth + 1);
	kill(pid, SIGKILL);
}

/* Kill and reap everything below us. Gives up after ~10 s (a process stuck in
 * D state cannot be helped). */
static void kill_everything(void)
{
	for (int round = 0; round < 1000; round++) {
		pid_t kids[256];
		int n;

		reap();
		n = read_children(getpid(), kids, 256);
		if (n == 0)
			return;
		for (int i = 0; i < n; i++)
			kill_tree(kids[i], 0);
		sleep_ms(10);
	}
	msg("some descendants could not be reaped");
}

static int nr_children(void)
{
	pid_t kids[256];

	reap();
	return read_children(getpid(), kids, 256);
}

/* fork+exec @argv with stdin/stdout/stderr from @fds (-1: /dev/null for 0, keep
 * ours for 1 and 2). */
static pid_t spawn(char *const *argv, const int fds[3], char *const *extra_env)
{
	pid_t pid = fork();

	if (pid < 0) {
		msg("fork: %m");
		return -1;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);

		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGALRM, SIG_DFL);
		dup2(fds[0] >= 0 ? fds[0] : nul, 0);
		if (fds[1] >= 0)
			dup2(fds[1], 1);
		if (fds[2] >= 0)
			dup2(fds[2], 2);
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		for (int i = 0; extra_env && extra_env[i]; i++)
			putenv(extra_env[i]);
		execvp(argv[0], argv);
		fprintf(stderr, "cr-harness: exec %s: %m\n", argv[0]);
		_exit(127);
	}
	proc_find(pid, true);
	return pid;
}

static int parse_ready(const char *path, struct ready *r)
{
	char buf[256];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EAGAIN;
	buf[n] = 0;
	if (sscanf(buf, "%d %d %lx %zu", &r->pid, &r->hostpid, &r->tamper_addr,
		   &r->tamper_len) != 4)
		return -EBADMSG;
	return 0;
}

/* Collect up to @max ready files; @other_ns: those of namespaces other than ours. */
static int scan_ready(struct ready *out, int max, bool other_ns)
{
	DIR *d = opendir(cr_dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)) && n < max) {
		char path[PATH_MAX];
		unsigned long long ns;

		if (strncmp(de->d_name, "ready.", 6) || !isdigit((unsigned char)de->d_name[6]))
			continue;
		ns = strtoull(de->d_name + 6, NULL, 10);
		if ((ns == own_pidns) == other_ns)
			continue;
		snprintf(path, sizeof(path), "%s/%s", cr_dir, de->d_name);
		if (parse_ready(path, &out[n]) == 0) {
			out[n].ns = ns;
			n++;
		}
	}
	closedir(d);
	return n;
}

static void unlink_ready(void)
{
	DIR *d = opendir(cr_dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[PATH_MAX];

		if (strncmp(de->d_name, "ready.", 6) && strncmp(de->d_name, "go.", 3))
			continue;
		snprintf(path, sizeof(path), "%s/%s", cr_dir, de->d_name);
		unlink(path);
	}
	closedir(d);
}

/* Wait for the ready file of our own namespace, while @watch (if > 0) lives. */
static int wait_ready(pid_t watch, const char *what, struct ready *ret)
{
	for (;;) {
		int st;

		if (scan_ready(ret, 1, false) == 1)
			return 0;
		if (watch > 0 && has_exited(watch)) {
			char d[96];

			wait_exit(watch, 0, &st);
			describe_status(st, d, sizeof(d));
			if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
				return 77;
			msg("%s exited before it was ready: %s", what, d);
			return -ECHILD;
		}
		if (expired()) {
			msg("%s: not ready within the timeout", what);
			return -ETIMEDOUT;
		}
		sleep_ms(1);
	}
}

static int send_go(const struct ready *r)
{
	if (go_by_file) {
		char path[PATH_MAX];
		int fd;

		snprintf(path, sizeof(path), "%s/go.%llu", cr_dir, r->ns);
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0) {
			msg("create %s: %m", path);
			return -errno;
		}
		close(fd);
		return 0;
	}
	if (kill(r->hostpid, SIGUSR1) < 0) {
		msg("kill(%d, SIGUSR1): %m", (int)r->hostpid);
		return -errno;
	}
	return 0;
}

/* Read from @fd until EOF or a newline or the deadline. */
static ssize_t read_line(int fd, char *buf, size_t len, uint64_t until_ns)
{
	size_t got = 0;

	while (got < len - 1) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t left_ms = ((int64_t)until_ns - (int64_t)now_ns()) / 1000000;
		ssize_t n;

		if (left_ms <= 0 || stop_sig)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, left_ms > 100 ? 100 : (int)left_ms) <= 0) {
			reap();
			continue;
		}
		n = read(fd, buf + got, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got++;
		if (buf[got - 1] == '\n')
			break;
	}
	buf[got] = 0;
	return (ssize_t)got;
}

/* Read @fd to EOF (keeping the first @len - 1 bytes) or until the deadline. */
static ssize_t read_all(int fd, char *buf, size_t len, uint64_t until_ns)
{
	size_t got = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t left_ms = ((int64_t)until_ns - (int64_t)now_ns()) / 1000000;
		char tmp[512];
		ssize_t n;

		if (left_ms <= 0 || stop_sig)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, left_ms > 100 ? 100 : (int)left_ms) <= 0) {
			reap();
			continue;
		}
		n = read(fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n && got < len - 1; i++)
			buf[got++] = tmp[i];
	}
	buf[got] = 0;
	return (ssize_t)got;
}

/* Run `warmfork --store S ARGS...`; stdout captured into @out (one line). The
 * checkpointed process may be our child: keep reaping while waiting. */
static int run_warmfork(char *const *args, char *out, size_t out_len, int *ret_status)
{
	char *argv[16];
	int n = 0, p[2], fds[3] = { -1, -1, -1 };
	pid_t pid;
	ssize_t r;

	argv[n++] = (char *)warmfork;
	argv[n++] = "--store";
	argv[n++] = store_dir;
	for (int i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fds[1] = p[1];
	pid = spawn(argv, fds, NULL);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -ECHILD;
	}
	r = read_all(p[0], out, out_len, deadline_ns);
	close(p[0]);
	if (r < 0) {
		msg("warmfork %s: no answer within the timeout", args[0]);
		return -ETIMEDOUT;
	}
	while (r > 0 && (out[r - 1] == '\n' || out[r - 1] == ' '))
		out[--r] = 0;
	if (!wait_exit(pid, deadline_ns, ret_status)) {
		msg("warmfork %s: did not exit within the timeout", args[0]);
		return -ETIMEDOUT;
	}
	return 0;
}

static bool proc_alive_untraced(pid_t pid, char *why, size_t len)
{
	char path[64], buf[4096], *s;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, len, "/proc/%d is gone", (int)pid);
		return false;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	s = strstr(buf, "\nState:");
	if (s && (strchr("tTZX", s[8]) || strchr("tTZX", s[9]))) {
		snprintf(why, len, "process %d is in state %.12s", (int)pid, s + 8);
		return false;
	}
	s = strstr(buf, "\nTracerPid:");
	if (s && atoi(s + 11) != 0) {
		snprintf(why, len, "process %d is still traced by %d", (int)pid, atoi(s + 11));
		return false;
	}
	return true;
}

static int checkpoint(pid_t pid, char *snap, size_t snap_len, int *ret_status)
{
	char spid[16];
	char *args[] = { "checkpoint", ckpt_tree ? "--tree" : spid, spid, NULL, NULL };

	if (!ckpt_tree)
		args[2] = NULL;
	if (ckpt_flag) {
		size_t n = ckpt_tree ? 2 : 1;

		args[n] = (char *)ckpt_flag;
		args[n + 1] = spid;
	}
	snprintf(spid, sizeof(spid), "%d", (int)pid);
	return run_warmfork(args, snap, snap_len, ret_status);
}

/* Flip one byte in the middle of the largest pack file of the store. */
static int corrupt_store(void)
{
	char dir[PATH_MAX], best[PATH_MAX] = "";
	off_t best_size = 0;
	struct dirent *de;
	unsigned char b;
	off_t off;
	DIR *d;
	int fd;

	snprintf(dir, sizeof(dir), "%s/packs", store_dir);
	d = opendir(dir);
	if (!d) {
		msg("no %s: %m", dir);
		return -ENOENT;
	}
	while ((de = readdir(d))) {
		char path[PATH_MAX];
		size_t l = strlen(de->d_name);
		struct stat st;

		if (l < 6 || strcmp(de->d_name + l - 5, ".pack"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) == 0 && st.st_size > best_size) {
			best_size = st.st_size;
			snprintf(best, sizeof(best), "%s", path);
		}
	}
	closedir(d);
	if (!best_size) {
		msg("no non-empty packs/*.pack in %s", store_dir);
		return -ENOENT;
	}
	fd = open(best, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	off = best_size / 2;
	if (pread(fd, &b, 1, off) != 1) {
		close(fd);
		return -EIO;
	}
	b ^= 0x5a;
	if (pwrite(fd, &b, 1, off) != 1) {
		close(fd);
		return -EIO;
	}
	fsync(fd);
	close(fd);
	msg("flipped the byte at offset %lld of %s (%lld bytes)", (long long)off, best,
	    (long long)best_size);
	return 0;
}

/* Start `warmfork restore FLAGS SNAP`; @out_fd receives its stdout (-1: ours). */
static pid_t start_restore(const char *snap, const char *const *flags, int out_fd)
{
	char *argv[16];
	int n = 0, fds[3] = { -1, out_fd, -1 };

	argv[n++] = (char *)warmfork;
	argv[n++] = "--store";
	argv[n++] = store_dir;
	argv[n++] = "restore";
	for (int i = 0; flags && flags[i]; i++)
		argv[n++] = (char *)flags[i];
	argv[n++] = (char *)snap;
	argv[n] = NULL;
	return spawn(argv, fds, NULL);
}

/* Verdict of one restored process, from its wait status. */
static int verdict(int st, const char *what)
{
	char d[96];

	describe_status(st, d, sizeof(d));
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		msg("%s: passed", what);
		return 0;
	}
	msg("%s: FAILED (%s)", what, d);
	return 1;
}

/* One restore (plain, inherit, detach, pidns) of @snap, then go, then verdict. */
static int restore_one(const char *snap, const struct ready *orig)
{
	const char *flags[4] = {};
	char line[64], what[64];
	struct ready r;
	pid_t wf, target = 0;
	int st, p[2] = { -1, -1 };

	if (mode == M_INHERIT)
		flags[0] = "--inherit-stdio";
	else if (mode == M_DETACH)
		flags[0] = "--detach";
	else if (mode == M_PIDNS)
		flags[0] = "--pidns=new";
	snprintf(what, sizeof(what), "restore%s%s", flags[0] ? " " : "", flags[0] ? flags[0] : "");

	if (mode == M_DETACH && pipe2(p, O_CLOEXEC) < 0)
		return 1;
	wf = start_restore(snap, flags, p[1]);
	if (p[1] >= 0)
		close(p[1]);
	if (wf < 0)
		return 1;

	if (mode == M_DETACH) {
		ssize_t n = read_line(p[0], line, sizeof(line), deadline_ns);

		close(p[0]);
		if (!wait_exit(wf, deadline_ns, &st)) {
			msg("%s: did not return within the timeout", what);
			return 1;
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			return verdict(st, what), 1;
		if (n <= 0 || atoi(line) <= 0) {
			msg("%s: printed no pid (\"%s\")", what, n > 0 ? line : "");
			return 1;
		}
		target = (pid_t)atoi(line);
		if (target != orig->pid) {
			msg("%s: restored pid %d, expected the original %d", what, (int)target,
			    (int)orig->pid);
			return 1;
		}
		proc_find(target, true);
	}

	if (mode == M_PIDNS) {
		/* The copy announces itself in its own namespace's ready file. */
		for (;;) {
			if (scan_ready(&r, 1, true) == 1)
				break;
			if (has_exited(wf)) {
				wait_exit(wf, 0, &st);
				msg("%s: returned before the process ran", what);
				return verdict(st, what), 1;
			}
			if (expired()) {
				msg("%s: restored process never ran (no ready file) within the timeout", what);
				return 1;
			}
			sleep_ms(1);
		}
		if (r.pid != orig->pid) {
			msg("%s: getpid() in the new namespace is %d, expected %d", what, (int)r.pid,
			    (int)orig->pid);
			return 1;
		}
	} else {
		int rr = wait_ready(mode == M_DETACH ? target : wf, what, &r);

		if (rr != 0)
			return 1;
		if (r.hostpid != orig->pid) {
			msg("%s: ready file written by pid %d, expected the original %d", what,
			    (int)r.hostpid, (int)orig->pid);
			return 1;
		}
	}
	if (send_go(&r) < 0)
		return 1;
	if (!wait_exit(mode == M_DETACH ? target : wf, deadline_ns, &st)) {
		msg("%s: restored process did not finish within the timeout", what);
		return 1;
	}
	return verdict(st, what);
}

static int restore_pidns4(const char *snap, const struct ready *orig)
{
	static const char *const flags[] = { "--pidns=new", NULL };
	struct ready r[8];
	pid_t wf[4];
	int n = 0, fails = 0, st;

	for (int i = 0; i < 4; i++) {
		wf[i] = start_restore(snap, flags, -1);
		if (wf[i] < 0)
			return 1;
	}
	while ((n = scan_ready(r, 8, true)) < 4) {
		for (int i = 0; i < 4; i++)
			if (has_exited(wf[i])) {
				wait_exit(wf[i], 0, &st);
				msg("restore #%d returned before its process ran", i);
				return verdict(st, "restore --pidns=new"), 1;
			}
		if (expired()) {
			msg("only %d of 4 copies ran within the timeout", n);
			return 1;
		}
		sleep_ms(1);
	}
	for (int i = 0; i < 4; i++) {
		if (r[i].pid != orig->pid) {
			msg("copy in pidns %llu has pid %d, expected %d", r[i].ns, (int)r[i].pid,
			    (int)orig->pid);
			fails++;
		}
		for (int j = 0; j < i; j++)
			if (r[j].hostpid == r[i].hostpid)
				fails++, msg("two copies report the same host pid %d", (int)r[i].hostpid);
	}
	if (fails)
		return 1;
	for (int i = 0; i < 4; i++)
		if (send_go(&r[i]) < 0)
			return 1;
	for (int i = 0; i < 4; i++) {
		char what[48];

		snprintf(what, sizeof(what), "restore --pidns=new copy #%d", i);
		if (!wait_exit(wf[i], deadline_ns, &st)) {
			msg("%s: did not finish within the timeout", what);
			return 1;
		}
		fails += verdict(st, what);
	}
	return fails ? 1 : 0;
}

static int tamper(const struct ready *r)
{
	unsigned char b;
	struct iovec local = { &b, 1 };
	struct iovec remote = { (void *)(r->tamper_addr + r->tamper_len / 2), 1 };

	if (!r->tamper_addr || !r->tamper_len) {
		msg("the program published nothing to tamper with");
		return -ENOENT;
	}
	if (process_vm_readv(r->hostpid, &local, 1, &remote, 1, 0) != 1)
		return -errno;
	b ^= 0x01;
	if (process_vm_writev(r->hostpid, &local, 1, &remote, 1, 0) != 1)
		return -errno;
	msg("flipped a bit at %p in pid %d", remote.iov_base, (int)r->hostpid);
	return 0;
}

/* Does `warmfork check --json` report a required feature as missing? Only an
 * explicit report skips: a check that cannot run must not turn failures into
 * skips. */
static bool check_says_missing(void)
{
	char out[2048] = "";
	char *args[] = { "check", "--json", NULL };
	const char *m;
	int st;

	if (run_warmfork(args, out, sizeof(out), &st) < 0)
		return false;
	m = strstr(out, "\"missing_required\":[");
	if (!m || m[20] == ']')
		return false;
	msg("warmfork check: %.200s", m);
	return true;
}

/* A child that sleeps with pid @pid (clone3 set_tid; root). */
static pid_t spawn_with_pid(pid_t pid)
{
	struct clone_args ca = {
		.exit_signal = SIGCHLD,
		.set_tid = (uint64_t)(uintptr_t)&pid,
		.set_tid_size = 1,
	};
	long r = syscall(SYS_clone3, &ca, sizeof(ca));

	if (r == 0) {
		for (;;)
			pause();
	}
	if (r < 0)
		return -errno;
	proc_find((pid_t)r, true);
	return (pid_t)r;
}

static int restore_pidtaken(const char *snap, const struct ready *orig)
{
	static const char *const none[] = { NULL };
	struct ready again;
	pid_t holder, wf;
	int st, r;

	holder = spawn_with_pid(orig->pid);
	if (holder < 0) {
		msg("cannot take pid %d for the test: %s", (int)orig->pid, strerror(-holder));
		return 1;
	}
	wf = start_restore(snap, none, -1);
	if (wf < 0)
		return 1;
	if (!wait_exit(wf, deadline_ns, &st)) {
		msg("restore onto a taken pid did not return within the timeout");
		return 1;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		msg("restore exited 0 although pid %d was taken", (int)orig->pid);
		return 1;
	}
	sleep_ms(300);
	if (scan_ready(&again, 1, false) || scan_ready(&again, 1, true)) {
		msg("a copy ran although pid %d was taken (ready file by pid %d)", (int)orig->pid,
		    (int)again.hostpid);
		return 1;
	}
	if (has_exited(holder) || kill(holder, 0) < 0) {
		msg("the process holding pid %d was disturbed", (int)orig->pid);
		return 1;
	}
	{
		pid_t kids[256];
		int n = read_children(getpid(), kids, 256);

		if (n != 1) {
			msg("the refused restore left %d process(es) behind", n - 1);
			return 1;
		}
	}
	msg("restore refused while pid %d was taken", (int)orig->pid);
	kill(holder, SIGKILL);
	wait_exit(holder, deadline_ns, &st);
	/* Control: with the pid free again the same snapshot restores and passes. */
	mode = M_PLAIN;
	r = restore_one(snap, orig);
	mode = M_PIDTAKEN;
	return r;
}

/* Control for failckpt: the same program started with CR_CONTROL=1 holds no
 * uncheckpointable descriptor, and its checkpoint must succeed; so the failure
 * of the real one is due to its descriptors, not to a checkpoint that never
 * works. */
static int failckpt_control(char **prog, unsigned rep)
{
	char envbuf[PATH_MAX + 16], snap[256], why[160];
	char *env[] = { envbuf, "CR_CONTROL=1", NULL };
	char saved_dir[PATH_MAX];
	struct ready r;
	pid_t pid;
	int st, rr;

	memcpy(saved_dir, cr_dir, sizeof(saved_dir));
	snprintf(cr_dir, sizeof(cr_dir), "%s/control%u", tmp_root, rep);
	if (mkdir(cr_dir, 0755) < 0)
		return 1;
	snprintf(envbuf, sizeof(envbuf), "CR_DIR=%s", cr_dir);
	pid = spawn(prog, (int[]){ -1, -1, -1 }, env);
	rr = pid < 0 ? -1 : wait_ready(pid, "control", &r);
	if (rr == 0 && checkpoint(pid, snap, sizeof(snap), &st) == 0 && WIFEXITED(st) &&
	    WEXITSTATUS(st) == 0) {
		msg("control: the program without its eventfd/socket checkpointed fine (%s)", snap);
		kill(pid, SIGKILL);
		wait_exit(pid, now_ns() + 5000000000ULL, &st);
		memcpy(cr_dir, saved_dir, sizeof(cr_dir));
		return 0;
	}
	if (rr == 0) {
		describe_status(st, why, sizeof(why));
		msg("control: checkpoint of the program without its eventfd/socket failed (%s)", why);
	}
	if (pid > 0)
		kill(pid, SIGKILL);
	memcpy(cr_dir, saved_dir, sizeof(cr_dir));
	return 1;
}

static int run_once(char **prog, unsigned rep)
{
	char envbuf[PATH_MAX + 16], snap[256], why[160];
	char *env[] = { envbuf, NULL };
	struct ready orig, again;
	pid_t pid;
	int st, r, ckpt_st;

	deadline_ns = now_ns() + (uint64_t)timeout_s * 1000000000ULL;
	snprintf(cr_dir, sizeof(cr_dir), "%s/run%u", tmp_root, rep);
	snprintf(store_dir, sizeof(store_dir), "%s/store", cr_dir);
	if (mkdir(cr_dir, 0755) < 0) {
		msg("mkdir %s: %m", cr_dir);
		return 1;
	}
	snprintf(envbuf, sizeof(envbuf), "CR_DIR=%s", cr_dir);

	pid = spawn(prog, (int[]){ -1, -1, -1 }, env);
	if (pid < 0)
		return 1;
	r = wait_ready(pid, prog[0], &orig);
	if (r == 77)
		return 77;
	if (r < 0)
		return 1;
	if (orig.hostpid != pid) {
		msg("ready file names pid %d, we started %d", (int)orig.hostpid, (int)pid);
		return 1;
	}

	if (mode == M_NOCKPT || mode == M_TAMPER) {
		if (mode == M_TAMPER && tamper(&orig) < 0) {
			msg("tamper: %m");
			return 1;
		}
		/* The same heartbeat round-trip a restore goes through. */
		unlink_ready();
		if (wait_ready(pid, prog[0], &again) != 0)
			return 1;
		if (send_go(&again) < 0 || !wait_exit(pid, deadline_ns, &st)) {
			msg("%s: did not finish within the timeout", prog[0]);
			return 1;
		}
		if (mode == M_TAMPER) {
			if (WIFEXITED(st) && WEXITSTATUS(st) == 1) {
				msg("tampered program failed as it must");
				return 0;
			}
			return verdict(st, "tampered program (must FAIL)"), 1;
		}
		return verdict(st, "no checkpoint");
	}

	if (mode == M_FAILCKPT && failckpt_control(prog, rep) != 0)
		return 1;

	r = checkpoint(pid, snap, sizeof(snap), &ckpt_st);
	if (r < 0)
		return 1;

	if (mode == M_FAILCKPT) {
		if (WIFEXITED(ckpt_st) && WEXITSTATUS(ckpt_st) == 0) {
			msg("checkpoint succeeded (snapshot \"%s\"); it must fail", snap);
			return 1;
		}
		if (has_exited(pid)) {
			wait_exit(pid, 0, &st);
			describe_status(st, why, sizeof(why));
			msg("the failed checkpoint did not leave the process running: %s", why);
			return 1;
		}
		if (!proc_alive_untraced(pid, why, sizeof(why))) {
			msg("after the failed checkpoint: %s", why);
			return 1;
		}
		if (snap[0]) {
			msg("the failed checkpoint printed \"%s\" on stdout", snap);
			return 1;
		}
		unlink_ready();
		if (wait_ready(pid, prog[0], &again) != 0)
			return 1;
		if (send_go(&again) < 0 || !wait_exit(pid, deadline_ns, &st)) {
			msg("%s: did not finish within the timeout", prog[0]);
			return 1;
		}
		return verdict(st, "process after a failed checkpoint");
	}

	if (!WIFEXITED(ckpt_st) || WEXITSTATUS(ckpt_st) != 0) {
		describe_status(ckpt_st, why, sizeof(why));
		msg("checkpoint of pid %d failed: %s", (int)pid, why);
		return 1;
	}
	if (!snap[0] || strpbrk(snap, " \n\t")) {
		msg("checkpoint printed \"%s\", not one snapshot id", snap);
		return 1;
	}
	/* The process is killed by the checkpoint; it is our child: reap it. The
	 * command returned only once its pid was free, so it must be gone. */
	if (!wait_exit(pid, now_ns() + 5000000000ULL, &st)) {
		msg("pid %d still exists after `warmfork checkpoint` returned", (int)pid);
		return 1;
	}
	if (!WIFSIGNALED(st)) {
		describe_status(st, why, sizeof(why));
		msg("pid %d was not killed by the checkpoint: %s", (int)pid, why);
		return 1;
	}
	forget(pid);
	unlink_ready();
	msg("checkpointed pid %d as %s", (int)pid, snap);
	if (between_cmd) {
		char *argv[] = { "/bin/sh", "-c", (char *)between_cmd, NULL };
		pid_t b = spawn(argv, (int[]){ -1, -1, -1 }, NULL);

		if (b < 0 || !wait_exit(b, deadline_ns, &st)) {
			msg("--between command did not finish within the timeout");
			return 1;
		}
		describe_status(st, why, sizeof(why));
		msg("ran \"%s\" between checkpoint and restore: %s", between_cmd, why);
	}

	switch (mode) {
	case M_CORRUPT: {
		static const char *const none[] = { NULL };
		pid_t wf;

		/* Control: the intact snapshot restores and passes, so a refusal below
		 * is due to the flipped byte, not to a restore that never works. */
		mode = M_PLAIN;
		r = restore_one(snap, &orig);
		mode = M_CORRUPT;
		if (r) {
			msg("control: restore of the intact snapshot failed");
			return 1;
		}
		unlink_ready();
		if (corrupt_store() < 0)
			return 1;
		wf = start_restore(snap, none, -1);
		if (wf < 0)
			return 1;
		if (!wait_exit(wf, deadline_ns, &st)) {
			msg("restore of a corrupted snapshot did not return within the timeout");
			return 1;
		}
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			msg("restore of a corrupted snapshot exited 0");
			return 1;
		}
		sleep_ms(300);
		if (scan_ready(&again, 1, false) || scan_ready(&again, 1, true)) {
			msg("a process of the corrupted snapshot ran (ready file written by pid %d)",
			    (int)again.hostpid);
			return 1;
		}
		if (kill(orig.pid, 0) == 0) {
			msg("pid %d exists after the refused restore", (int)orig.pid);
			return 1;
		}
		if (nr_children()) {
			msg("the refused restore left %d process(es) behind", nr_children());
			return 1;
		}
		describe_status(st, why, sizeof(why));
		msg("restore refused the corrupted snapshot (%s)", why);
		return 0;
	}
	case M_TWICE:
		for (int i = 0; i < 2; i++) {
			mode = M_PLAIN;
			r = restore_one(snap, &orig);
			mode = M_TWICE;
			if (r)
				return r;
			unlink_ready();
		}
		return 0;
	case M_PIDNS4:
		return restore_pidns4(snap, &orig);
	case M_PIDTAKEN:
		return restore_pidtaken(snap, &orig);
	default:
		return restore_one(snap, &orig);
	}
}

static int compile_java(const char *src, char **prog)
{
	char *argv[] = { "javac", "-d", tmp_root, (char *)src, NULL };
	pid_t pid;
	int st;

	if (access("/usr/bin/javac", X_OK) != 0 && system("command -v javac >/dev/null 2>&1") != 0) {
		printf("SKIP: javac not found\n");
		return 77;
	}
	deadline_ns = now_ns() + 300000000000ULL;
	pid = spawn(argv, (int[]){ -1, -1, -1 }, NULL);
	if (pid < 0 || !wait_exit(pid, deadline_ns, &st) || !WIFEXITED(st) || WEXITSTATUS(st)) {
		msg("javac %s failed", src);
		return 1;
	}
	/* "@TMP@" in the program's arguments names the class directory. */
	for (int i = 0; prog[i]; i++)
		if (!strcmp(prog[i], "@TMP@"))
			prog[i] = tmp_root;
	return 0;
}

static void rm_rf(const char *path)
{
	char *argv[] = { "rm", "-rf", (char *)path, NULL };
	pid_t pid = spawn(argv, (int[]){ -1, -1, -1 }, NULL);
	int st;

	if (pid > 0)
		wait_exit(pid, now_ns() + 60000000000ULL, &st);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "warmfork",	required_argument, NULL, 'w' },
		{ "mode",	required_argument, NULL, 'm' },
		{ "repeat",	required_argument, NULL, 'r' },
		{ "timeout",	required_argument, NULL, 't' },
		{ "go",		required_argument, NULL, 'g' },
		{ "javac",	required_argument, NULL, 'j' },
		{ "keep",	no_argument,	   NULL, 'k' },
		{ "between",	required_argument, NULL, 'b' },
		{ "ckpt-flag",	required_argument, NULL, 'c' },
		{ "tree",	no_argument,	   NULL, 'T' },
		{}
	};
	struct sigaction sa = { .sa_handler = on_stop };
	const char *javac_src = NULL;
	unsigned repeat = 1;
	bool keep = false;
	struct stat st;
	int c, rc = 0;

	while ((c = getopt_long(argc, argv, "+w:m:r:t:g:j:kb:c:", opts, NULL)) != -1) {
		switch (c) {
		case 'w':
			warmfork = optarg;
			break;
		case 'm':
			for (c = 0; c < (int)(sizeof(mode_names) / sizeof(mode_names[0])); c++)
				if (!strcmp(optarg, mode_names[c]))
					break;
			if (c == (int)(sizeof(mode_names) / sizeof(mode_names[0]))) {
				msg("unknown mode %s", optarg);
				return 1;
			}
			mode = (enum mode)c;
			break;
		case 'r':
			repeat = (unsigned)atoi(optarg);
			break;
		case 't':
			timeout_s = (unsigned)atoi(optarg);
			break;
		case 'g':
			go_by_file = !strcmp(optarg, "file");
			break;
		case 'j':
			javac_src = optarg;
			break;
		case 'k':
			keep = true;
			break;
		case 'b':
			between_cmd = optarg;
			break;
		case 'c':
			ckpt_flag = optarg;
			break;
		case 'T':
			ckpt_tree = true;
			break;
		default:
			return 1;
		}
	}
	if (optind >= argc || !repeat || !timeout_s) {
		fprintf(stderr, "usage: cr-harness [--warmfork PATH] [--mode MODE] [--repeat N] "
				"[--timeout SEC] [--go signal|file] [--javac SRC] -- PROGRAM [ARGS...]\n");
		return 1;
	}
	setvbuf(stderr, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("SKIP: checkpoint/restore tests run as root\n");
		return 77;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		msg("PR_SET_CHILD_SUBREAPER: %m");
		return 1;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (stat("/proc/self/ns/pid", &st) < 0) {
		msg("stat /proc/self/ns/pid: %m");
		return 1;
	}
	own_pidns = (unsigned long long)st.st_ino;
	snprintf(tmp_root, sizeof(tmp_root), "/tmp/cr-%s-XXXXXX", mode_names[mode]);
	if (!mkdtemp(tmp_root)) {
		msg("mkdtemp: %m");
		return 1;
	}
	if (mode != M_NOCKPT && mode != M_TAMPER) {
		snprintf(store_dir, sizeof(store_dir), "%s/check-store", tmp_root);
		deadline_ns = now_ns() + 60000000000ULL;
		if (check_says_missing()) {
			printf("SKIP: `warmfork check` reports a missing feature\n");
			rc = 77;
			goto out;
		}
	}
	if (javac_src) {
		rc = compile_java(javac_src, argv + optind);
		if (rc)
			goto out;
	}

	for (unsigned i = 0; i < repeat && rc == 0; i++) {
		uint64_t t0 = now_ns();

		rc = run_once(argv + optind, i);
		if (stop_sig) {
			msg("stopped by signal %d", (int)stop_sig);
			rc = 1;
		} else if (rc == 1 && now_ns() > deadline_ns) {
			msg("timeout (%u s) expired", timeout_s);
		}
		kill_everything();
		if (repeat > 1)
			msg("repetition %u/%u: %s (%.2f s)", i + 1, repeat,
			    rc == 0 ? "pass" : rc == 77 ? "skip" : "FAIL", (now_ns() - t0) / 1e9);
	}
out:
	kill_everything();
	if (keep) {
		msg("files kept in %s", tmp_root);
	} else if (rc == 1) {
		/* Keep the small files (ready files, test data) for a post-mortem, not
		 * the stores (a failing mem512 would leave hundreds of MiB per run). */
		for (unsigned i = 0; i < repeat; i++) {
			char p[PATH_MAX];

			snprintf(p, sizeof(p), "%s/run%u/store", tmp_root, i);
			rm_rf(p);
		}
		msg("files kept in %s (stores removed; --keep keeps them)", tmp_root);
	} else {
		rm_rf(tmp_root);
	}
	kill_everything();
	return rc;
}
