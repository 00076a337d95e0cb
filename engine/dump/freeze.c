// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Freezing a process with ptrace: PTRACE_SEIZE + PTRACE_INTERRUPT of every
 * thread, re-scanning /proc/PID/task until no new thread appears (a thread
 * that was not yet stopped may have cloned another one). Seized threads are
 * not traced for clone events, so the re-scan is what catches them.
 *
 * Invariant on return: every thread of the process is in a ptrace
 * interrupt stop (PTRACE_EVENT_STOP, inside get_signal()) and no signal was
 * consumed on the way: a signal-delivery stop met while waiting is resumed
 * with that signal (delivered as it would have been), and the still pending
 * interrupt stops the thread again right after.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "dump.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open		434
#endif
#define ENG_NR_process_mrelease	448	/* 5.15; Debian 12 headers have it, older do not */

#define FREEZE_MAX_ROUNDS	64
#define FREEZE_MAX_SIGNALS	64	/* signal stops tolerated per thread */
#define FREEZE_TIMEOUT_MS	10000	/* a thread must stop within this */

/*
 * Like eng_dump_wait_stop(), with a deadline: a thread in uninterruptible
 * sleep (a dead NFS server, a vfork parent) would block waitpid() forever.
 * Polls, yielding first (the stop usually comes within microseconds), then
 * sleeping. -ETIMEDOUT at the deadline; the thread stays seized (the kernel
 * detaches it when we exit).
 */
static int wait_stop_until(pid_t tid, int *ret_status, uint64_t deadline_ns)
{
	for (unsigned i = 0;; i++) {
		int st;
		pid_t r = waitpid(tid, &st, __WALL | WNOHANG);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == tid) {
			if (WIFEXITED(st) || WIFSIGNALED(st))
				return -ESRCH;
			if (WIFSTOPPED(st)) {
				*ret_status = st;
				return 0;
			}
			continue;
		}
		if (now_ns() > deadline_ns)
			return -ETIMEDOUT;
		if (i < 64)
			sched_yield();
		else
			usleep(i < 1000 ? 20 : 500);
	}
}

int eng_dump_wait_stop(pid_t tid, int *ret_status)
{
	for (;;) {
		int st;
		pid_t r = waitpid(tid, &st, __WALL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return -ESRCH;
		if (WIFSTOPPED(st)) {
			*ret_status = st;
			return 0;
		}
	}
}

static struct eng_dump_thread *threads_find(struct eng_dump_threads *ts, pid_t tid)
{
	for (size_t i = 0; i < ts->nr; i++)
		if (ts->v[i].tid == tid)
			return &ts->v[i];
	return NULL;
}

static int threads_add(struct eng_dump_threads *ts, pid_t tid, struct eng_dump_thread **ret)
{
	if (ts->nr == ts->cap) {
		size_t cap = ts->cap ? ts->cap * 2 : 16;
		struct eng_dump_thread *v = realloc(ts->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		ts->v = v;
		ts->cap = cap;
	}
	ts->v[ts->nr] = (struct eng_dump_thread){ .tid = tid };
	*ret = &ts->v[ts->nr++];
	return 0;
}

static void threads_remove(struct eng_dump_threads *ts, struct eng_dump_thread *t)
{
	size_t i = t - ts->v;

	memmove(&ts->v[i], &ts->v[i + 1], (ts->nr - i - 1) * sizeof(*t));
	ts->nr--;
}

/* Wait until @t is in its interrupt stop, letting signal stops through. */
static int freeze_wait_thread(struct eng_dump_thread *t)
{
	uint64_t deadline = now_ns() + FREEZE_TIMEOUT_MS * 1000000ull;

	for (int n = 0; n < FREEZE_MAX_SIGNALS; n++) {
		int st = 0, r;

		r = wait_stop_until(t->tid, &st, deadline);
		if (r == -ETIMEDOUT) {
			t->seized = false;	/* given up: detached when we exit */
			return err_set(ETIMEDOUT, "thread %d did not stop within %u s (uninterruptible "
					 "sleep?)", t->tid, FREEZE_TIMEOUT_MS / 1000);
		}
		if (r < 0)
			return r;
		if ((st >> 16) == PTRACE_EVENT_STOP) {
			t->stopped = true;
			t->stop_status = st;
			return 0;
		}
		/* A signal-delivery stop (or another event): deliver and wait. */
		if (ptrace(PTRACE_CONT, t->tid, NULL,
			   (void *)(long)((st >> 16) ? 0 : WSTOPSIG(st))) < 0)
			return -errno;
	}
	return err_set(EAGAIN, "thread %d keeps receiving signals while being frozen", t->tid);
}

/* Does thread @tid of @pid disappear within ~20 ms (it was exiting)? */
static bool thread_vanishes(pid_t pid, pid_t tid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/task/%d", pid, tid);
	for (int i = 0; i < 200; i++) {
		if (access(path, F_OK) < 0 && errno == ENOENT)
			return true;
		usleep(100);
	}
	return false;
}

static int freeze_check(pid_t pid)
{
	_cleanup_free_ char *buf = NULL;
	struct eng_proc_status st;
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	r = read_file(path, &buf, NULL);
	if (r == -ENOENT)
		return err_set(ESRCH, "no process %d", pid);
	if (r < 0)
		return err_wrap(r, "cannot read %s", path);
	r = eng_dump_parse_status(buf, &st);
	if (r < 0)
		return err_set(r, "cannot parse %s", path);
	if (st.state == 'Z' || st.state == 'X')
		return err_set(ESRCH, "process %d is a zombie", pid);
	if (st.tracer_pid != 0)
		return err_set(EBUSY, "process %d is already traced by process %d", pid,
			       st.tracer_pid);
	if (st.state == 'T' || st.state == 't')
		return err_set(EAGAIN, "process %d is stopped; continue it (SIGCONT) first", pid);
	if (pid == getpid())
		return err_set(EINVAL, "process %d is warmfork itself", pid);
	return 0;
}

int eng_dump_freeze(pid_t pid, struct eng_dump_threads *ret)
{
	struct eng_dump_threads ts = { .pid = pid };
	char path[64];
	int r;

	r = freeze_check(pid);
	if (r < 0)
		return r;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	for (int round = 0;; round++) {
		size_t added = 0;
		DIR *d;
		struct dirent *de;

		if (round >= FREEZE_MAX_ROUNDS) {
			r = err_set(EAGAIN, "process %d keeps creating threads", pid);
			goto fail;
		}
		d = opendir(path);
		if (!d) {
			r = errno == ENOENT ? err_set(ESRCH, "no process %d", pid)
					    : err_wrap(-errno, "cannot list %s", path);
			goto fail;
		}
		while ((de = readdir(d))) {
			struct eng_dump_thread *t;
			pid_t tid = atoi(de->d_name);

			if (tid <= 0 || threads_find(&ts, tid))
				continue;
			if (ptrace(PTRACE_SEIZE, tid, NULL, (void *)(long)PTRACE_O_TRACESYSGOOD) < 0) {
				if (errno == ESRCH)
					continue;	/* it exited meanwhile */
				/* A thread in the middle of exiting refuses with EPERM. */
				if (errno == EPERM && tid != pid && thread_vanishes(pid, tid))
					continue;
				r = -errno;
				closedir(d);
				if (r == -EPERM && tid == pid)
					r = err_set(EPERM, "not allowed to trace process %d (or it is "
							   "being traced or exiting)", pid);
				else
					r = err_wrap(r, "cannot seize thread %d of process %d", tid, pid);
				goto fail;
			}
			r = threads_add(&ts, tid, &t);
			if (r < 0) {
				ptrace(PTRACE_DETACH, tid, NULL, NULL);
				closedir(d);
				goto fail;
			}
			t->seized = true;
			if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) < 0 && errno != ESRCH) {
				r = err_wrap(-errno, "cannot interrupt thread %d", tid);
				closedir(d);
				goto fail;
			}
			added++;
		}
		closedir(d);

		for (size_t i = 0; i < ts.nr;) {
			struct eng_dump_thread *t = &ts.v[i];

			if (t->stopped) {
				i++;
				continue;
			}
			r = freeze_wait_thread(t);
			if (r == -ESRCH || r == -ECHILD) {
				if (t->tid == pid) {
					r = err_set(ESRCH, "process %d exited while being frozen", pid);
					goto fail;
				}
				threads_remove(&ts, t);
				continue;
			}
			if (r < 0) {
				r = err_wrap(r, "cannot stop thread %d", t->tid);
				goto fail;
			}
			i++;
		}
		if (!added && ts.nr)
			break;
	}

	/* The leader first: it is threads[0] of the image. */
	for (size_t i = 0; i < ts.nr; i++) {
		if (ts.v[i].tid == pid) {
			struct eng_dump_thread tmp = ts.v[0];

			ts.v[0] = ts.v[i];
			ts.v[i] = tmp;
			break;
		}
	}
	if (!ts.nr || ts.v[0].tid != pid) {
		r = err_set(ESRCH, "process %d has no leader thread", pid);
		goto fail;
	}
	*ret = ts;
	return 0;

fail:
	eng_dump_thaw(&ts);
	eng_dump_threads_fini(&ts);
	return r;
}

void eng_dump_thaw(struct eng_dump_threads *ts)
{
	for (size_t i = 0; i < ts->nr; i++) {
		struct eng_dump_thread *t = &ts->v[i];

		if (!t->seized)
			continue;
		/*
		 * A thread seized but not yet seen stopped still has our interrupt
		 * pending; PTRACE_DETACH needs a stopped tracee, so wait for it.
		 */
		if (!t->stopped && freeze_wait_thread(t) < 0)
			continue;	/* exited, or stuck: the kernel detaches it at our exit */
		ptrace(PTRACE_DETACH, t->tid, NULL, NULL);
		t->seized = false;
		t->stopped = false;
	}
}

static int proc_state(pid_t pid, char *ret_state)
{
	char path[64], buf[512];
	_cleanup_close_ int fd = -1;
	ssize_t n;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return n < 0 ? -errno : -ENOENT;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || !p[1] || !p[2])
		return -EINVAL;
	*ret_state = p[2];
	return 0;
}

int eng_dump_kill(struct eng_dump_threads *ts, unsigned timeout_ms)
{
	uint64_t deadline;
	int st, pidfd;

	/* The pid cannot be reused while its threads are traced by us: the
	 * pidfd names this process. */
	pidfd = (int)syscall(SYS_pidfd_open, ts->pid, 0);
	if (kill(ts->pid, SIGKILL) < 0 && errno != ESRCH) {
		int e = -errno;

		if (pidfd >= 0)
			close(pidfd);
		return e;
	}
	/* Free its memory from here, on our core, while its threads run their
	 * exits: the pid is free only once exit_mm() is done, and unmapping a
	 * large process is most of that (best effort: ignore any error). */
	if (pidfd >= 0) {
		(void)syscall(ENG_NR_process_mrelease, pidfd, 0);
		close(pidfd);
	}
	/* Traced threads stay zombies until their tracer waits for them. */
	for (size_t i = ts->nr; i-- > 0;) {
		struct eng_dump_thread *t = &ts->v[i];

		while (t->seized) {
			pid_t r = waitpid(t->tid, &st, __WALL);

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 || WIFEXITED(st) || WIFSIGNALED(st))
				t->seized = false;
			/* A stop (PTRACE_EVENT_EXIT is not asked for): keep waiting. */
			else if (WIFSTOPPED(st))
				ptrace(PTRACE_CONT, t->tid, NULL, NULL);
		}
		t->stopped = false;
	}
	/* Our own child: reap it (the wait above only released the trace). */
	waitpid(ts->pid, &st, WNOHANG | __WALL);

	deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
	for (;;) {
		char state;
		int r = proc_state(ts->pid, &state);

		if (r == -ENOENT || r == -ESRCH)
			return 0;
		if (r == 0 && state == 'Z' && waitpid(ts->pid, &st, WNOHANG | __WALL) == ts->pid)
			continue;
		if (now_ns() > deadline)
			return -ETIMEDOUT;
		usleep(200);
	}
}

void eng_dump_threads_fini(struct eng_dump_threads *ts)
{
	free(ts->v);
	ts->v = NULL;
	ts->nr = ts->cap = 0;
}

/* ------------------------------------------------------------------ trees */

/* Add every child of every thread of @pid not yet in @tr to @out (pids). */
static int tree_children(pid_t pid, pid_t **out, size_t *nr, size_t *cap)
{
	char path[96];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? -ESRCH : -errno;
	while ((de = readdir(d))) {
		_cleanup_free_ char *buf = NULL;
		char cpath[320];
		char *p, *end;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(cpath, sizeof(cpath), "/proc/%d/task/%s/children", pid, de->d_name);
		if (read_file(cpath, &buf, NULL) < 0)
			continue;	/* the thread exited */
		for (p = buf;; p = end) {
			long c = strtol(p, &end, 10);

			if (end == p || c <= 0)
				break;
			if (*nr == *cap) {
				size_t nc = *cap ? *cap * 2 : 16;
				pid_t *nv = realloc(*out, nc * sizeof(*nv));

				if (!nv) {
					closedir(d);
					return -ENOMEM;
				}
				*out = nv;
				*cap = nc;
			}
			(*out)[(*nr)++] = (pid_t)c;
		}
	}
	closedir(d);
	return 0;
}

static struct eng_dump_tree_proc *tree_find(struct eng_dump_tree *tr, pid_t pid)
{
	for (size_t i = 0; i < tr->nr; i++)
		if (tr->v[i].pid == pid)
			return &tr->v[i];
	return NULL;
}

static int tree_add(struct eng_dump_tree *tr, pid_t pid, pid_t ppid,
		    struct eng_dump_tree_proc **ret)
{
	if (tr->nr == tr->cap) {
		size_t nc = tr->cap ? tr->cap * 2 : 8;
		struct eng_dump_tree_proc *nv = realloc(tr->v, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		tr->v = nv;
		tr->cap = nc;
	}
	tr->v[tr->nr] = (struct eng_dump_tree_proc){ .pid = pid, .ppid = ppid };
	*ret = &tr->v[tr->nr++];
	return 0;
}

/* A zombie child: its wait status is field 52 of /proc/PID/stat. */
static int zombie_status(pid_t pid, bool *ret_zombie, int *ret_status)
{
	_cleanup_free_ char *buf = NULL;
	char path[64], *p;
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_file(path, &buf, NULL) < 0)
		return -ESRCH;
	p = strrchr(buf, ')');
	if (!p || !p[1] || !p[2])
		return -EINVAL;
	*ret_zombie = p[2] == 'Z';
	if (!*ret_zombie)
		return 0;
	/* Field 3 is the state, right after ") ". */
	p += 2;
	for (field = 3; field < 52 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p)
		return -EINVAL;
	*ret_status = atoi(p);
	return 0;
}

int eng_dump_freeze_tree(pid_t root, struct eng_dump_tree *ret)
{
	struct eng_dump_tree tr = {};
	struct eng_dump_tree_proc *tp;
	_cleanup_free_ pid_t *kids = NULL;
	size_t nk = 0, ck = 0;
	int r;

	r = tree_add(&tr, root, 0, &tp);
	if (r < 0)
		return r;
	r = eng_dump_freeze(root, &tp->threads);
	if (r < 0) {
		tr.nr = 0;
		goto fail;
	}
	/*
	 * Breadth first: a process is frozen before its children are listed,
	 * so the list of a frozen process only loses children that die (they
	 * stay zombies: their parent is frozen). Passes repeat until one adds
	 * nothing (a child created by a thread caught in the middle of fork).
	 */
	for (int round = 0;; round++) {
		size_t added = 0;

		if (round >= 16) {
			r = err_set(EAGAIN, "the tree of process %d keeps changing", root);
			goto fail;
		}
		for (size_t i = 0; i < tr.nr; i++) {
			pid_t parent = tr.v[i].pid;

			if (tr.v[i].zombie)
				continue;
			nk = 0;
			r = tree_children(parent, &kids, &nk, &ck);
			if (r < 0) {
				r = err_wrap(r, "cannot list the children of process %d", parent);
				goto fail;
			}
			for (size_t k = 0; k < nk; k++) {
				pid_t c = kids[k];
				bool zombie = false;
				int status = 0;

				if (tree_find(&tr, c))
					continue;
				r = tree_add(&tr, c, parent, &tp);
				if (r < 0)
					goto fail;
				added++;
				if (zombie_status(c, &zombie, &status) == 0 && zombie) {
					tp->zombie = true;
					tp->exit_status = status;
					continue;
				}
				r = eng_dump_freeze(c, &tp->threads);
				if (r == -ESRCH && zombie_status(c, &zombie, &status) == 0 && zombie) {
					tp->zombie = true;
					tp->exit_status = status;
					continue;
				}
				if (r < 0) {
					tr.nr--;
					r = err_wrap(r, "child %d of process %d", c, parent);
					goto fail;
				}
			}
		}
		if (!added)
			break;
	}
	*ret = tr;
	return 0;
fail:
	eng_dump_thaw_tree(&tr);
	eng_dump_tree_fini(&tr);
	return r;
}

void eng_dump_thaw_tree(struct eng_dump_tree *tr)
{
	for (size_t i = 0; i < tr->nr; i++)
		eng_dump_thaw(&tr->v[i].threads);
}

int eng_dump_kill_tree(struct eng_dump_tree *tr, unsigned timeout_ms, size_t *ret_zombies)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
	size_t zombies = 0;

	/*
	 * Every process gets SIGKILL before any is waited for: a child's pid
	 * is free only once its parent (or, the parent dead, the reaper it is
	 * handed to) reaps it. The root first, so that its children are
	 * handed over as soon as possible. Zombies of the tree go with their
	 * parent: their pids are awaited too.
	 */
	for (size_t i = 0; i < tr->nr; i++)
		if (!tr->v[i].zombie)
			kill(tr->v[i].pid, SIGKILL);
	for (size_t i = 0; i < tr->nr; i++) {
		uint64_t now = now_ns();
		unsigned left = now < deadline ? (unsigned)((deadline - now) / 1000000ull) : 0;

		if (tr->v[i].zombie) {
			/* Its parent died: whoever it was handed to reaps it. */
			char state;

			while (proc_state(tr->v[i].pid, &state) == 0 && now_ns() < deadline)
				usleep(200);
			if (proc_state(tr->v[i].pid, &state) == 0)
				zombies++;
			continue;
		}
		if (eng_dump_kill(&tr->v[i].threads, left ? left : 1) == -ETIMEDOUT)
			zombies++;
	}
	if (ret_zombies)
		*ret_zombies = zombies;
	return zombies ? -ETIMEDOUT : 0;
}

void eng_dump_tree_fini(struct eng_dump_tree *tr)
{
	for (size_t i = 0; i < tr->nr; i++)
		eng_dump_threads_fini(&tr->v[i].threads);
	free(tr->v);
	tr->v = NULL;
	tr->nr = tr->cap = 0;
}
