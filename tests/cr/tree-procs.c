// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * tree-procs MODE: a process tree, checkpointed with --tree (cr-harness --tree).
 * The root is the test program; it checks its children after go.
 *
 *   ids     root R; child A (R's group); child B leading its own group; B's
 *           child D leading its own session. After go each one checks its
 *           pid, ppid, pgid and sid against what it saw before the cut and
 *           exits 0/1; R collects A and B, B collects D.
 *   zombie  two children die before the cut (exit 42, SIGTERM) and stay
 *           zombies; after go R reaps them: the same pids, the same statuses.
 *   shm     a MAP_SHARED anonymous page and a second, partly unmapped one;
 *           R, A and B increment its counter before the cut; after go R
 *           writes a token, A and B see it, add their increments, R sees them.
 *   file    a file opened before fork: R and A write through one shared
 *           offset, before and after the cut (content and offset checked).
 *   listen  a TCP listener on 127.0.0.1 opened before fork; A and B block in
 *           accept(); after go R connects twice and each child answers with
 *           its pid (both must answer: the socket is shared, not copied).
 *   subreaper  R is a child subreaper; its child A forked O and exited (R
 *           reaped A): O is R's orphan. After go R must still be a subreaper:
 *           O (checking its ppid) forks Q and exits, and Q, orphaned in turn,
 *           must come to R, which reaps both with status 0.
 *   cow     64 MiB of private anonymous memory written by R before it forks
 *           A and B; A then rewrites 16 pages. After go each one checks its
 *           content, and that most of it is still shared with the others
 *           (smaps Shared_*: copy-on-write since the fork, not duplicated).
 *   fs      A made with clone(CLONE_FS): after go A changes directory and
 *           umask, R must see both (one fs struct again).
 *   files   A made with clone(CLONE_FILES), a pipe holding "R" in the table:
 *           after go kcmp(KCMP_FILES) says R and A share one table; an fd R
 *           opens is A's, one A opens is R's, A's "A" follows R's "R".
 *   refuse  (harness mode failckpt) A; B; B's child D holds a netlink socket,
 *           which the dump refuses: the checkpoint must fail and leave every
 *           process running, untraced; after go each checks itself (D: its
 *           socket) and R collects them. With CR_CONTROL=1 D has no socket
 *           and the checkpoint of the tree must work.
 *
 * The values R expects (pids, statuses, counter) are published for tamper.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cr.h"

struct expect {
	pid_t kid[4];		/* A, B, zombie 1, zombie 2 */
	pid_t r_pgid, r_sid;
	uint64_t counter;	/* shm: value before go */
	uint64_t token;
	uint16_t port;		/* listen */
};

static struct expect ex;
static volatile sig_atomic_t kid_go;

static void on_kid_go(int sig)
{
	(void)sig;
	kid_go = 1;
}

/* Children wait here for SIGUSR2 (kill from their parent after go). */
static void kid_wait(void)
{
	while (!kid_go)
		cr_sleep_ms(1);
}

static __attribute__((noreturn)) void kid_exit(void)
{
	_exit(cr_nr_failed() ? 1 : 0);
}

struct ids {
	pid_t pid, ppid, pgid, sid;
};

static struct ids ids_now(void)
{
	return (struct ids){ getpid(), getppid(), getpgrp(), getsid(0) };
}

static void ids_check(const char *who, const struct ids *before)
{
	struct ids now = ids_now();

	cr_check(now.pid == before->pid && now.ppid == before->ppid && now.pgid == before->pgid &&
		 now.sid == before->sid,
		 "%s: pid/ppid/pgid/sid %d/%d/%d/%d, before the cut %d/%d/%d/%d", who, now.pid,
		 now.ppid, now.pgid, now.sid, before->pid, before->ppid, before->pgid, before->sid);
}

/* Reap @pid; its exit status must be 0 (it checked itself). */
static void reap_ok(pid_t pid, const char *who)
{
	int st = 0;
	pid_t w;

	do
		w = waitpid(pid, &st, 0);
	while (w < 0 && errno == EINTR);
	cr_check(w == pid, "%s: waitpid(%d) = %d: %m", who, pid, w);
	if (w == pid)
		cr_check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s (%d) failed: status %#x", who,
			 pid, st);
}

static void mode_ids(void)
{
	struct ids a_ids, b_ids, d_ids;
	int p[2];
	pid_t d;

	/* A session of its own, like a daemon: every id of the tree is then
	 * one of its own (also in a new pid namespace). */
	if (getsid(0) != getpid() && setsid() < 0)
		cr_fail("setsid: %m");
	ex.r_pgid = getpgrp();
	ex.r_sid = getsid(0);
	ex.kid[0] = fork();
	if (ex.kid[0] == 0) {
		a_ids = ids_now();
		kid_wait();
		ids_check("A", &a_ids);
		cr_check(a_ids.pgid == ex.r_pgid, "A is not in the root's group");
		kid_exit();
	}
	if (pipe(p) < 0)
		cr_fail("pipe: %m");
	ex.kid[1] = fork();
	if (ex.kid[1] == 0) {
		if (setpgid(0, 0) < 0)
			cr_fail("setpgid: %m");
		b_ids = ids_now();
		d = fork();
		if (d == 0) {
			if (setsid() < 0)
				cr_fail("setsid: %m");
			d_ids = ids_now();
			(void)!write(p[1], "x", 1);
			kid_wait();
			ids_check("D", &d_ids);
			cr_check(d_ids.sid == d_ids.pid && d_ids.pgid == d_ids.pid,
				 "D does not lead its session");
			kid_exit();
		}
		kid_wait();
		ids_check("B", &b_ids);
		cr_check(b_ids.pgid == b_ids.pid && b_ids.sid == ex.r_sid, "B's group/session");
		kill(d, SIGUSR2);
		reap_ok(d, "D");
		kid_exit();
	}
	/* D is in its session before the cut. */
	{
		char c;

		if (read(p[0], &c, 1) != 1)
			cr_fail("D did not start");
		close(p[0]);
		close(p[1]);
	}
}

static void mode_ids_check(void)
{
	cr_check(getpgrp() == ex.r_pgid && getsid(0) == ex.r_sid, "root's group/session changed");
	cr_check(getpgid(ex.kid[1]) == ex.kid[1], "B does not lead its group (%d)",
		 getpgid(ex.kid[1]));
	cr_check(getpgid(ex.kid[0]) == ex.r_pgid, "A left the root's group (%d)", getpgid(ex.kid[0]));
	kill(ex.kid[0], SIGUSR2);
	kill(ex.kid[1], SIGUSR2);
	reap_ok(ex.kid[0], "A");
	reap_ok(ex.kid[1], "B");
}

/* Not traced and not stopped: /proc/self/status. */
static bool self_thawed(void)
{
	char buf[4096], *s;
	ssize_t n;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	s = strstr(buf, "\nTracerPid:");
	return s && atoi(s + 11) == 0 && !strstr(buf, "State:\tt") && !strstr(buf, "State:\tT");
}

static void mode_refuse(void)
{
	int p[2];

	ex.kid[0] = fork();
	if (ex.kid[0] == 0) {
		kid_wait();
		cr_check(self_thawed(), "A is still traced or stopped");
		kid_exit();
	}
	if (pipe(p) < 0)
		cr_fail("pipe: %m");
	ex.kid[1] = fork();
	if (ex.kid[1] == 0) {
		pid_t d = fork();

		if (d == 0) {
			int nl = -1, type = 0;
			socklen_t len = sizeof(type);

			if (!getenv("CR_CONTROL")) {
				nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0);
				if (nl < 0)
					cr_fail("netlink socket: %m");
			}
			(void)!write(p[1], "x", 1);
			kid_wait();
			cr_check(self_thawed(), "D is still traced or stopped");
			if (nl >= 0)
				cr_check(getsockopt(nl, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
					 type == SOCK_RAW, "D's netlink socket is gone (%m)");
			kid_exit();
		}
		kid_wait();
		cr_check(self_thawed(), "B is still traced or stopped");
		kill(d, SIGUSR2);
		reap_ok(d, "D");
		kid_exit();
	}
	{
		char c;

		if (read(p[0], &c, 1) != 1)
			cr_fail("D did not start");
		close(p[0]);
		close(p[1]);
	}
}

#define COW_PAGES	16384	/* 64 MiB */
#define COW_MINE	16	/* pages A rewrites */

static volatile uint64_t *cow;

static uint64_t cow_word(uint64_t i, bool a_side)
{
	return cr_mix64(i ^ ex.token) ^ (a_side && i < COW_MINE ? 0xa : 0);
}

/* kB of the vma at @addr shared with another process (smaps). */
static long shared_kb(const volatile void *addr)
{
	char line[512], head[32];
	long kb = -1, v;
	bool in = false;
	FILE *f = fopen("/proc/self/smaps", "re");

	if (!f)
		return -1;
	snprintf(head, sizeof(head), "%lx-", (unsigned long)addr);
	while (fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, ' ') && strncmp(line, head, strlen(head)) != 0 &&
		    line[0] != ' ' && !strchr(line, ':'))
			in = false;
		if (strncmp(line, head, strlen(head)) == 0) {
			in = true;
			kb = 0;
		}
		if (in && (sscanf(line, "Shared_Clean: %ld kB", &v) == 1 ||
			   sscanf(line, "Shared_Dirty: %ld kB", &v) == 1))
			kb += v;
	}
	fclose(f);
	return kb;
}

static void cow_check(const char *who, bool a_side)
{
	long kb;

	for (uint64_t i = 0; i < COW_PAGES; i++)
		if (cow[i * 512] != cow_word(i, a_side)) {
			cr_check(false, "%s: page %llu holds %#llx", who, (unsigned long long)i,
				 (unsigned long long)cow[i * 512]);
			break;
		}
	kb = shared_kb(cow);
	cr_check(kb >= (long)(COW_PAGES - 2 * COW_MINE) * 4,
		 "%s: %ld kB of the 64 MiB area shared with the other processes", who, kb);
}

static void mode_cow(void)
{
	int p[2];
	char c;

	ex.token = cr_mix64(cr_now_ns()) | 1;
	cow = mmap(NULL, (size_t)COW_PAGES * 4096, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (cow == MAP_FAILED || pipe(p) < 0)
		cr_fail("mmap: %m");
	for (uint64_t i = 0; i < COW_PAGES; i++)
		cow[i * 512] = cow_word(i, false);
	for (int k = 0; k < 2; k++) {
		ex.kid[k] = fork();
		if (ex.kid[k] == 0) {
			if (k == 0)
				for (uint64_t i = 0; i < COW_MINE; i++)
					cow[i * 512] = cow_word(i, true);
			(void)!write(p[1], "x", 1);
			kid_wait();
			cow_check(k ? "B" : "A", k == 0);
			kid_exit();
		}
	}
	for (int k = 0; k < 2; k++)
		if (read(p[0], &c, 1) != 1)
			cr_fail("children did not start");
	close(p[0]);
	close(p[1]);
}

static void mode_cow_check(void)
{
	cow_check("R", false);
	kill(ex.kid[0], SIGUSR2);
	kill(ex.kid[1], SIGUSR2);
	reap_ok(ex.kid[0], "A");
	reap_ok(ex.kid[1], "B");
}

/* fork() sharing what @flags says (raw clone: no new stack, like fork). */
static pid_t fork_sharing(unsigned long flags)
{
	return (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
}

static char fs_dir[4096];

static void mode_fs(void)
{
	snprintf(fs_dir, sizeof(fs_dir), "%s/fsdir", cr_dir());
	if (mkdir(fs_dir, 0700) < 0)
		cr_fail("mkdir %s: %m", fs_dir);
	ex.kid[0] = fork_sharing(CLONE_FS);
	if (ex.kid[0] < 0)
		cr_fail("clone(CLONE_FS): %m");
	if (ex.kid[0] == 0) {
		kid_wait();
		cr_check(chdir(fs_dir) == 0, "A: chdir: %m");
		umask(0027);
		kid_exit();
	}
}

static void mode_fs_check(void)
{
	char cwd[4096] = "", want[4096] = "";
	mode_t old = umask(0022);

	umask(old);
	cr_check(old == 022, "umask %03o before A changed it", (unsigned)old);
	kill(ex.kid[0], SIGUSR2);
	reap_ok(ex.kid[0], "A");
	old = umask(0022);
	cr_check(getcwd(cwd, sizeof(cwd)) && realpath(fs_dir, want) && strcmp(cwd, want) == 0,
		 "R's cwd is \"%s\" after A's chdir to \"%s\" (fs struct not shared)", cwd, want);
	cr_check(old == 0027, "R's umask is %03o after A's umask(027)", (unsigned)old);
}

static int files_pipe[2] = { -1, -1 };

#define TREE_KCMP_FILES	2
#define FILES_FD_R	78	/* opened by R after go, used by A */
#define FILES_FD_A	77	/* opened by A after go, checked by R */

static bool same_rdev(int fd, const char *path)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && stat(path, &b) == 0 && S_ISCHR(a.st_mode) &&
	       a.st_rdev == b.st_rdev;
}

static void mode_files(void)
{
	if (pipe2(files_pipe, O_CLOEXEC) < 0 || write(files_pipe[1], "R", 1) != 1)
		cr_fail("pipe: %m");
	ex.kid[0] = fork_sharing(CLONE_FILES);
	if (ex.kid[0] < 0)
		cr_fail("clone(CLONE_FILES): %m");
	if (ex.kid[0] == 0) {
		int fd;

		kid_wait();
		/* R's descriptor, opened after go, is A's too. */
		cr_check(same_rdev(FILES_FD_R, "/dev/null"),
			 "A: R's fd %d is not in A's table (not shared)", FILES_FD_R);
		fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || dup2(fd, FILES_FD_A) < 0)
			cr_check(false, "A: /dev/zero on fd %d: %m", FILES_FD_A);
		if (fd >= 0)
			close(fd);
		cr_check(write(files_pipe[1], "A", 1) == 1, "A: write to the pipe: %m");
		kid_exit();
	}
}

static void mode_files_check(void)
{
	char buf[4] = "";
	int fd;

	cr_check(syscall(SYS_kcmp, getpid(), ex.kid[0], TREE_KCMP_FILES, 0, 0) == 0,
		 "kcmp(KCMP_FILES) R/A %d: not one descriptor table (%m)", ex.kid[0]);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || dup2(fd, FILES_FD_R) < 0)
		cr_fail("/dev/null on fd %d: %m", FILES_FD_R);
	close(fd);
	kill(ex.kid[0], SIGUSR2);
	reap_ok(ex.kid[0], "A");
	cr_check(same_rdev(FILES_FD_A, "/dev/zero"),
		 "A's fd %d (/dev/zero) is not in R's table (not shared)", FILES_FD_A);
	cr_check(read(files_pipe[0], buf, 2) == 2 && memcmp(buf, "RA", 2) == 0,
		 "the pipe holds \"%.2s\", expected \"RA\"", buf);
}

static int sub_pipe = -1;

static void mode_subreaper(void)
{
	int p[2];
	pid_t a, root = getpid();

	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 || pipe(p) < 0)
		cr_fail("PR_SET_CHILD_SUBREAPER: %m");
	a = fork();
	if (a == 0) {
		pid_t o = fork();

		if (o == 0) {
			pid_t q;

			while (getppid() != root)
				cr_sleep_ms(1);
			(void)!write(p[1], "x", 1);
			kid_wait();
			cr_check(getppid() == root, "O's parent is %d, not the root %d", getppid(),
				 root);
			q = fork();
			if (q == 0) {
				/* Orphaned as soon as O exits: must reach the root. */
				for (int i = 0; i < 5000 && getppid() != root; i++)
					cr_sleep_ms(1);
				cr_check(getppid() == root, "Q's parent is %d, not the subreaper %d",
					 getppid(), root);
				kid_exit();
			}
			(void)!write(p[1], &q, sizeof(q));
			kid_exit();
		}
		(void)!write(p[1], &o, sizeof(o));
		_exit(0);
	}
	if (read(p[0], &ex.kid[0], sizeof(pid_t)) != sizeof(pid_t))
		cr_fail("A did not fork O");
	reap_ok(a, "A");
	{
		char c;

		if (read(p[0], &c, 1) != 1)
			cr_fail("O did not come to the root");
	}
	sub_pipe = p[0];
	close(p[1]);
}

static void mode_subreaper_check(void)
{
	int reaper = 0, st = 0;
	pid_t q = 0, w;

	cr_check(prctl(PR_GET_CHILD_SUBREAPER, &reaper, 0, 0, 0) == 0 && reaper == 1,
		 "the root is no longer a child subreaper (%d)", reaper);
	kill(ex.kid[0], SIGUSR2);
	{
		struct pollfd pfd = { .fd = sub_pipe, .events = POLLIN };

		if (poll(&pfd, 1, 5000) != 1 || read(sub_pipe, &q, sizeof(q)) != sizeof(q)) {
			cr_check(false, "O (%d) did not fork Q within 5 s", ex.kid[0]);
			return;
		}
	}
	reap_ok(ex.kid[0], "O");
	if (q <= 0)
		return;
	for (int i = 0; i < 10000; i++) {
		w = waitpid(q, &st, WNOHANG);
		if (w != 0)
			break;
		cr_sleep_ms(1);
	}
	cr_check(w == q && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		 "Q (%d): waitpid %d status %#x (not reparented to the root?)", q, w, st);
}

static void mode_refuse_check(void)
{
	kill(ex.kid[0], SIGUSR2);
	kill(ex.kid[1], SIGUSR2);
	reap_ok(ex.kid[0], "A");
	reap_ok(ex.kid[1], "B");
}

static void mode_zombie(void)
{
	siginfo_t si;

	ex.kid[2] = fork();
	if (ex.kid[2] == 0)
		_exit(42);
	ex.kid[3] = fork();
	if (ex.kid[3] == 0) {
		signal(SIGTERM, SIG_DFL);
		for (;;)
			pause();
	}
	kill(ex.kid[3], SIGTERM);
	/* Both dead before the cut, and not reaped. */
	for (int i = 2; i < 4; i++)
		if (waitid(P_PID, (id_t)ex.kid[i], &si, WEXITED | WNOWAIT) < 0)
			cr_fail("waitid: %m");
}

static void mode_zombie_check(void)
{
	int st = 0;
	pid_t w;

	/* Dead and waitable already (zombies), named by their pids. */
	for (int i = 2; i < 4; i++) {
		siginfo_t si = {};

		cr_check(waitid(P_PID, (id_t)ex.kid[i], &si, WEXITED | WNOWAIT | WNOHANG) == 0 &&
			 si.si_pid == ex.kid[i], "child %d is not a zombie (waitid: %m, pid %d)",
			 ex.kid[i], si.si_pid);
	}
	w = waitpid(ex.kid[2], &st, WNOHANG);
	cr_check(w == ex.kid[2] && WIFEXITED(st) && WEXITSTATUS(st) == 42,
		 "zombie %d: waitpid %d status %#x, expected exit 42", ex.kid[2], w, st);
	w = waitpid(ex.kid[3], &st, WNOHANG);
	cr_check(w == ex.kid[3] && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM,
		 "zombie %d: waitpid %d status %#x, expected SIGTERM", ex.kid[3], w, st);
	w = waitpid(-1, &st, WNOHANG);
	cr_check(w < 0 && errno == ECHILD, "another child to reap: %d", w);
}

struct shared {
	volatile uint64_t counter;
	volatile uint64_t token;
	volatile uint64_t seen[2];
};

static struct shared *sh;
static volatile uint64_t *sh2;	/* second mapping: pages 1-2 of 4 kept */

static void mode_shm(void)
{
	char *m;

	sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	m = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED || m == MAP_FAILED)
		cr_fail("mmap: %m");
	/* A shared object whose mapping starts at an offset (pgoff 1). */
	munmap(m, 4096);
	munmap(m + 3 * 4096, 4096);
	sh2 = (volatile uint64_t *)(m + 4096);
	for (int k = 0; k < 2; k++) {
		ex.kid[k] = fork();
		if (ex.kid[k] == 0) {
			for (int i = 0; i < 1000; i++)
				__atomic_add_fetch(&sh->counter, 1, __ATOMIC_SEQ_CST);
			__atomic_add_fetch(&sh2[512], 1, __ATOMIC_SEQ_CST);
			kid_wait();
			/* The root's write after the cut, seen through our mapping. */
			sh->seen[k] = sh->token ^ (uint64_t)getpid();
			__atomic_add_fetch(&sh->counter, 100, __ATOMIC_SEQ_CST);
			__atomic_add_fetch(&sh2[512], 10, __ATOMIC_SEQ_CST);
			kid_exit();
		}
	}
	while (sh->counter < 2000 || sh2[512] < 2)
		cr_sleep_ms(1);
	sh->counter += 5;
	ex.counter = sh->counter;
}

static void mode_shm_check(void)
{
	ex.token = cr_mix64(cr_now_ns()) | 1;
	cr_check(sh->counter == ex.counter, "counter %llu before go, expected %llu",
		 (unsigned long long)sh->counter, (unsigned long long)ex.counter);
	sh->token = ex.token;
	kill(ex.kid[0], SIGUSR2);
	kill(ex.kid[1], SIGUSR2);
	reap_ok(ex.kid[0], "A");
	reap_ok(ex.kid[1], "B");
	cr_check(sh->counter == ex.counter + 200, "counter %llu after the children, expected %llu",
		 (unsigned long long)sh->counter, (unsigned long long)ex.counter + 200);
	for (int k = 0; k < 2; k++)
		cr_check(sh->seen[k] == (ex.token ^ (uint64_t)ex.kid[k]),
			 "child %d did not see the root's token (%#llx)", k,
			 (unsigned long long)sh->seen[k]);
	cr_check(sh2[512] == 22, "second mapping's counter %llu, expected 22",
		 (unsigned long long)sh2[512]);
}

static int file_fd = -1;

static void mode_file(void)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/tree-file", cr_dir());
	file_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (file_fd < 0)
		cr_fail("open %s: %m", path);
	if (write(file_fd, "R0", 2) != 2)
		cr_fail("write: %m");
	ex.kid[0] = fork();
	if (ex.kid[0] == 0) {
		if (write(file_fd, "A0", 2) != 2)
			cr_fail("write: %m");
		kid_wait();
		cr_check(lseek(file_fd, 0, SEEK_CUR) == 6, "A: offset %lld, expected 6",
			 (long long)lseek(file_fd, 0, SEEK_CUR));
		cr_check(write(file_fd, "A1", 2) == 2, "A: write: %m");
		kid_exit();
	}
	while (lseek(file_fd, 0, SEEK_CUR) < 4)
		cr_sleep_ms(1);
	ex.counter = 4;
}

static void mode_file_check(void)
{
	char buf[16] = "";

	cr_check(lseek(file_fd, 0, SEEK_CUR) == (off_t)ex.counter, "offset %lld, expected %llu",
		 (long long)lseek(file_fd, 0, SEEK_CUR), (unsigned long long)ex.counter);
	cr_check(write(file_fd, "R1", 2) == 2, "write: %m");
	kill(ex.kid[0], SIGUSR2);
	reap_ok(ex.kid[0], "A");
	cr_check(lseek(file_fd, 0, SEEK_CUR) == 8, "offset after A: %lld, expected 8",
		 (long long)lseek(file_fd, 0, SEEK_CUR));
	cr_check(pread(file_fd, buf, 8, 0) == 8 && memcmp(buf, "R0A0R1A1", 8) == 0,
		 "file holds \"%.8s\", expected R0A0R1A1", buf);
}

static int lsock = -1;

static void mode_listen(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);

	lsock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lsock < 0 || bind(lsock, (void *)&sa, sizeof(sa)) < 0 || listen(lsock, 16) < 0 ||
	    getsockname(lsock, (void *)&sa, &len) < 0)
		cr_fail("listener: %m");
	ex.port = ntohs(sa.sin_port);
	for (int k = 0; k < 2; k++) {
		ex.kid[k] = fork();
		if (ex.kid[k] == 0) {
			char msg[32];
			int c;

			/* Block in accept across the cut (restarted after it). */
			do
				c = accept(lsock, NULL, NULL);
			while (c < 0 && errno == EINTR);
			cr_check(c >= 0, "kid %d: accept: %m", k);
			snprintf(msg, sizeof(msg), "%d", getpid());
			if (c >= 0 && write(c, msg, strlen(msg)) < 0)
				cr_check(false, "kid %d: write: %m", k);
			kid_exit();
		}
	}
	cr_sleep_ms(50);
}

static void mode_listen_check(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(ex.port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	bool seen[2] = {};

	for (int n = 0; n < 2; n++) {
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		char buf[32] = "";
		ssize_t got;

		if (c < 0 || connect(c, (void *)&sa, sizeof(sa)) < 0) {
			cr_check(false, "connect to port %u: %m", ex.port);
			if (c >= 0)
				close(c);
			continue;
		}
		got = read(c, buf, sizeof(buf) - 1);
		close(c);
		for (int k = 0; k < 2; k++)
			if (got > 0 && atoi(buf) == ex.kid[k])
				seen[k] = true;
	}
	cr_check(seen[0] && seen[1], "answers from A %d, B %d (both must answer)", seen[0],
		 seen[1]);
	for (int k = 0; k < 2; k++) {
		if (seen[k]) {
			reap_ok(ex.kid[k], k ? "B" : "A");
		} else {
			kill(ex.kid[k], SIGKILL);	/* still in accept() */
			waitpid(ex.kid[k], NULL, 0);
		}
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_kid_go };
	const char *mode = argc > 1 ? argv[1] : "ids";

	cr_init(argc, argv);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);
	if (strcmp(mode, "ids") == 0)
		mode_ids();
	else if (strcmp(mode, "zombie") == 0)
		mode_zombie();
	else if (strcmp(mode, "shm") == 0)
		mode_shm();
	else if (strcmp(mode, "file") == 0)
		mode_file();
	else if (strcmp(mode, "listen") == 0)
		mode_listen();
	else if (strcmp(mode, "refuse") == 0)
		mode_refuse();
	else if (strcmp(mode, "subreaper") == 0)
		mode_subreaper();
	else if (strcmp(mode, "cow") == 0)
		mode_cow();
	else if (strcmp(mode, "fs") == 0)
		mode_fs();
	else if (strcmp(mode, "files") == 0)
		mode_files();
	else
		cr_fail("unknown mode %s", mode);
	/* What the tamper mode flips (its middle byte) must matter. */
	if (strcmp(mode, "ids") == 0 || strcmp(mode, "refuse") == 0)
		cr_ready_tamper(&ex.kid[0], 2 * sizeof(pid_t));
	else if (strcmp(mode, "subreaper") == 0 || strcmp(mode, "fs") == 0 ||
		 strcmp(mode, "files") == 0)
		cr_ready_tamper(&ex.kid[0], sizeof(pid_t));
	else if (strcmp(mode, "cow") == 0)
		cr_ready_tamper(&ex.token, sizeof(ex.token));
	else if (strcmp(mode, "zombie") == 0)
		cr_ready_tamper(&ex.kid[2], 2 * sizeof(pid_t));
	else if (strcmp(mode, "listen") == 0)
		cr_ready_tamper(&ex.port, sizeof(ex.port));
	else
		cr_ready_tamper(&ex.counter, sizeof(ex.counter));
	cr_wait();
	if (strcmp(mode, "ids") == 0)
		mode_ids_check();
	else if (strcmp(mode, "zombie") == 0)
		mode_zombie_check();
	else if (strcmp(mode, "shm") == 0)
		mode_shm_check();
	else if (strcmp(mode, "file") == 0)
		mode_file_check();
	else if (strcmp(mode, "refuse") == 0)
		mode_refuse_check();
	else if (strcmp(mode, "subreaper") == 0)
		mode_subreaper_check();
	else if (strcmp(mode, "cow") == 0)
		mode_cow_check();
	else if (strcmp(mode, "fs") == 0)
		mode_fs_check();
	else if (strcmp(mode, "files") == 0)
		mode_files_check();
	else
		mode_listen_check();
	cr_check_ids();
	cr_finish();
}
