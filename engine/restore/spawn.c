// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Spawn templates and their instances (eng_template_*, eng_instance_*),
 * and eng_spawn on top of them. The contract is in engine/include/engine.h;
 * the restorer side in engine/restorer/spawn.h; docs/engine-restore.md,
 * "Spawn", tells the story.
 *
 *   caller                     template (restored once)      init (CLONE_VM)   instance
 *   open: validate (as restore)
 *   fork ---------------------> child.c: premap, fill, fds
 *                               restorer: areas in place,
 *                               no thread, no program code
 *   read "ready" <------------- status pipe
 *   spawn: socketpair (SEQPACKET)
 *     op + one end ----- ctl --> clone3(VM|NEWPID|PARENT) --> clone3(set_tid) ---> rst_finish:
 *     init pid <---------------- answer                                            state, threads
 *     read report <-------------------------------------------- instance socket -- report, wait
 *     (parked)
 *   (spawn returns once every other thread sleeps in its futex wait)
 *   start: seize every thread, interrupt the others (they stop in the kernel)
 *     nums + fds (SCM_RIGHTS) ------------------------------------ instance socket -> dup3, close,
 *                                                                                  munmap(region),
 *     the others' stops: load registers                               |
 *     SIGSEGV stop <------------------------------------------------- fault on the next fetch
 *     leader registers, detach every thread (signal suppressed): the program runs
 *   (a program that ignores SIGSEGV: the leader parks instead, EOF, then
 *    resume.c's full ptrace resume)
 *   close: close ctl ----------> exit (inits keep the memory alive); reaped here
 *
 * The inits are created with CLONE_PARENT: they are the caller's children,
 * which it reaps (see engine.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <elf.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "restore.h"

#define SPAWN_REPORT_TIMEOUT_MS	30000
#define SPAWN_OP_SPAWN		1u	/* = RST_SPAWN_OP_SPAWN (restorer/spawn.h) */
#define SPAWN_MAX_FDS		64u	/* = RST_SPAWN_MAX_FDS */
#define SPAWN_START_UNMAP	1u	/* = RST_SPAWN_START_UNMAP */

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE		0x202
#endif
#ifndef PTRACE_SETSIGMASK
#define PTRACE_SETSIGMASK	0x420b
#endif

_Static_assert(ENG_INSTANCE_MAX_FDS == SPAWN_MAX_FDS, "start message size");

static int wait_stopped(pid_t tid, int *ret_status);
static int drop_boost(pid_t tid, const EngThread *th);
static int load_thread(pid_t tid, const EngThread *th);
static void reap_traced(const pid_t *tids, size_t n);

struct eng_template {
	EngImage *img;
	const EngProcess *proc;
	struct rst_report ready;	/* region of every instance */
	pid_t pid;			/* the template process, our child */
	bool self_unmap;		/* start: the leader unmaps the region itself
					 * (not if the program ignores SIGSEGV: the
					 * fault would reset that to SIG_DFL) */
	int ctl;			/* SOCK_SEQPACKET to the template; -1 once closed */
	unsigned int refs;		/* 1 while open + 1 per parked instance */
	char id[WC_ID_LEN + 1];
};

static int sys_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Wait up to SPAWN_REPORT_TIMEOUT_MS for @fd to be readable. */
static int wait_readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int r;

	do
		r = poll(&pfd, 1, SPAWN_REPORT_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return err_set(errno, "poll: %m");
	if (r == 0)
		return err_set(ETIMEDOUT, "no answer within %d ms", SPAWN_REPORT_TIMEOUT_MS);
	return 0;
}

/* One rst_report from @fd (a pipe or a seqpacket socket). 1 on EOF. */
static int read_report(int fd, struct rst_report *rep)
{
	ssize_t n;
	int r = wait_readable(fd);

	if (r < 0)
		return r;
	do
		n = read(fd, rep, sizeof(*rep));
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return 1;
	if (n != (ssize_t)sizeof(*rep))
		return err_set(EIO, "bad report (%s)", n < 0 ? strerror(errno) : "short");
	return 0;
}

static pid_t first_child_of(pid_t pid)
{
	_cleanup_free_ char *buf = NULL;
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid);
	if (read_file(path, &buf, NULL) < 0)
		return -1;
	return (pid_t)strtol(buf, NULL, 10) ?: -1;
}

/*
 * Every thread but the leader sleeps in its futex wait (syscall 202, per
 * /proc/PID/task/TID/syscall), where it stays until its start: a thread
 * that reported may still be on its way there, executing the restorer.
 * At the start the leader unmaps the restorer while they are only being
 * interrupted: none may be executing it then.
 */
static int wait_parked(pid_t pid, const EngProcess *p, const pid_t *tids)
{
	uint64_t deadline = now_ns() + (uint64_t)SPAWN_REPORT_TIMEOUT_MS * 1000000;

	for (size_t i = 0; i < p->n_threads; i++) {
		char path[96], buf[64];

		if (p->threads[i]->tid == p->pid)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", pid, tids[i]);
		for (;;) {
			_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
			ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

			if (n < 0)
				return err_set(errno, "cannot read %s: %m", path);
			buf[n] = 0;
			if (!strncmp(buf, "202 ", 4))
				break;
			if (now_ns() > deadline)
				return err_set(ETIMEDOUT, "thread %d never parked (%s)", tids[i], buf);
			sched_yield();
		}
	}
	return 0;
}

/*
 * The instance's threads in our namespace, in the image's order (matched
 * by NSpid), once parked: *ret_tids is malloc'd.
 */
static int list_tids(pid_t pid, const EngProcess *p, pid_t **ret_tids)
{
	_cleanup_free_ pid_t *tids = calloc(p->n_threads + 1, sizeof(pid_t));
	int r;

	if (!tids)
		return -ENOMEM;
	r = eng_restore_match_tids(pid, p, tids);
	if (r >= 0)
		r = wait_parked(pid, p, tids);
	if (r < 0)
		return r;
	*ret_tids = TAKE_PTR(tids);
	return 0;
}

static int check_shareable(const EngProcess *p)
{
	size_t nr_shared = 0, nr_locked = 0;

	for (size_t i = 0; i < p->n_vmas; i++) {
		const EngVma *v = p->vmas[i];

		/* Each instance copies these (engine/restorer/spawn.h). */
		if (v->kind == ENG_VMA_KIND__VMA_ANON_SHARED && ++nr_shared > RST_SPAWN_MAX_SHARED)
			return err_set(EOPNOTSUPP, "spawn copies at most %d shared memory areas per "
				       "instance, this process has more", RST_SPAWN_MAX_SHARED);
		if ((v->madv & (ENG_MADV_LOCKED | ENG_MADV_LOCKONFAULT)) &&
		    ++nr_locked > RST_SPAWN_MAX_LOCKED)
			return err_set(EOPNOTSUPP, "spawn locks at most %d areas per instance, this "
				       "process has more", RST_SPAWN_MAX_LOCKED);
		/* A fork would drop or wipe them. */
		if (v->madv & (ENG_MADV_DONTFORK | ENG_MADV_WIPEONFORK))
			return err_set(EOPNOTSUPP, "spawn cannot copy the dontfork/wipeonfork area "
				       "at 0x%" PRIx64 " yet", v->start);
	}
	return 0;
}

static _noreturn_ void run_template(struct eng_rst_ctx *ctx, bool null_stdio)
{
	int r;

	if (null_stdio) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null < 0) {
			r = err_set(errno, "cannot open /dev/null: %m");
			goto fail;
		}
		for (int fd = 0; fd < 3; fd++)
			dup2(null, fd);
		close(null);
	}
	r = eng_restore_child(ctx);
fail:
	eng_restore_report_fail(ctx->status_fd, r, err_str(r));
	_exit(1);
}

static void template_unref(struct eng_template *t)
{
	if (--t->refs)
		return;
	if (t->img)
		eng_image__free_unpacked(t->img, NULL);
	free(t);
}

pid_t eng_template_pid(const struct eng_template *t)
{
	return t->pid;
}

const char *eng_template_snapshot(const struct eng_template *t)
{
	return t->id;
}

unsigned int eng_template_nr_threads(const struct eng_template *t)
{
	return (unsigned int)t->proc->n_threads;
}

void eng_template_close(struct eng_template *t)
{
	if (!t)
		return;
	if (t->ctl >= 0) {
		close(t->ctl);		/* the template exits on EOF */
		t->ctl = -1;
	}
	if (t->pid > 0) {
		while (waitpid(t->pid, NULL, 0) < 0 && errno == EINTR)
			;
		t->pid = -1;
	}
	template_unref(t);
}

int eng_template_open(struct wc_store *store, const char *snap_id,
		      const struct eng_template_opts *opts, struct eng_template **ret)
{
	struct eng_template_opts o = {};
	struct wc_snapshot *snap = NULL;
	struct eng_template *t = NULL;
	struct eng_rst_ctx ctx = {};
	uint64_t t0 = now_ns();
	int pfd[2] = { -1, -1 }, ctl[2] = { -1, -1 }, r, *sock_fds = NULL;

	if (opts)
		memcpy(&o, opts, MIN(opts->sz ? opts->sz : sizeof(o), sizeof(o)));
	r = wc_snapshot_open(store, snap_id, &snap);
	if (r < 0)
		return err_wrap(r, "snapshot %s", snap_id);
	t = calloc(1, sizeof(*t));
	if (!t) {
		r = -ENOMEM;
		goto out;
	}
	t->pid = -1;
	t->ctl = -1;
	t->refs = 1;
	snprintf(t->id, sizeof(t->id), "%s", wc_snapshot_id(snap));
	r = eng_restore_validate(store, snap, &t->img);
	if (r < 0)
		goto out;
	t->proc = t->img->procs[0];
	t->self_unmap = true;
	for (size_t i = 0; i < t->proc->n_sigactions; i++)
		if (t->proc->sigactions[i]->sig == SIGSEGV &&
		    t->proc->sigactions[i]->handler == (uint64_t)(uintptr_t)SIG_IGN)
			t->self_unmap = false;
	for (size_t i = 0; i < t->proc->n_threads; i++)
		if (t->proc->threads[i]->regs.len != sizeof(struct user_regs_struct)) {
			r = err_set(EBADMSG, "thread %u: registers of %zu bytes",
				    t->proc->threads[i]->tid, t->proc->threads[i]->regs.len);
			goto out;
		}
	if (t->img->n_procs != 1) {
		r = err_set(EOPNOTSUPP, "spawn of a process tree (%zu processes) is not supported",
			    t->img->n_procs);
		goto out;
	}
	r = check_shareable(t->proc);
	if (r < 0)
		goto out;
	/* tcp: one connection cannot go on in several instances. */
	if (eng_restore_sockets_have_tcp(t->proc)) {
		r = err_set(EOPNOTSUPP, "it holds an established TCP connection: instances "
			    "cannot share it");
		goto out;
	}
	/* Re-created once: every instance shares the listening sockets. */
	r = eng_restore_sockets_open(t->proc, &sock_fds);
	if (r < 0)
		goto out;
	if (pipe2(pfd, O_CLOEXEC) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0) {
		r = err_set(errno, "pipe: %m");
		goto out;
	}
	ctx = (struct eng_rst_ctx){
		.store = store, .snap = snap, .img = t->img, .proc = t->proc,
		.inherit_stdio = true,
		.status_fd = pfd[1],
		.sock_fds = sock_fds,
		.spawn = true,
		.spawn_ctl_fd = ctl[1],
	};
	fflush(NULL);
	/* A plain fork: the template needs no particular pid, and fork keeps
	 * libc consistent in a multi-threaded caller. */
	t->pid = fork();
	if (t->pid < 0) {
		r = err_set(errno, "cannot create the template: %m");
		goto out;
	}
	if (t->pid == 0) {
		close(pfd[0]);
		close(ctl[0]);
		run_template(&ctx, o.null_stdio);
	}
	close(pfd[1]);
	pfd[1] = -1;
	close(ctl[1]);
	ctl[1] = -1;
	t->ctl = TAKE_FD(ctl[0]);

	r = read_report(pfd[0], &t->ready);
	if (r == 1)
		r = err_set(EIO, "died before reporting");
	if (r < 0) {
		r = err_wrap(r, "template");
		goto out;
	}
	if (t->ready.err) {
		r = err_wrap(eng_restore_report_error(t->proc, &t->ready), "template");
		goto out;
	}
	if (o.ret_open_ns)
		*o.ret_open_ns = now_ns() - t0;
	r = 0;
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (ctl[1] >= 0)
		close(ctl[1]);
	if (ctl[0] >= 0)
		close(ctl[0]);
	if (t && t->img)
		eng_restore_sockets_close(t->proc, sock_fds);	/* the template has them */
	wc_snapshot_close(snap);
	if (r < 0) {
		if (t) {
			if (t->pid > 0)
				kill(t->pid, SIGKILL);
			eng_template_close(t);
		}
		return err_wrap(r, "snapshot %s", snap_id);
	}
	*ret = t;
	return 0;
}

/*
 * A spawn in three steps, so that several can be under way at once
 * (eng_template_spawn_many): send the op with the instance's end of its
 * socket; read the template's answer (the init's pid: answers come in the
 * order of the requests); read the instance's report once it is parked.
 */
static int spawn_send(struct eng_template *t, struct eng_instance *inst)
{
	uint32_t op = SPAWN_OP_SPAWN;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { &op, sizeof(op) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	int sp[2];
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return err_set(errno, "socketpair: %m");
	memset(u.buf, 0, sizeof(u.buf));
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &sp[1], sizeof(int));
	/* MSG_NOSIGNAL: a dead template is an error, not our SIGPIPE. */
	do
		n = sendmsg(t->ctl, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	close(sp[1]);
	if (n != sizeof(op)) {
		close(sp[0]);
		return err_set(EIO, "the template is gone (%m)");
	}
	inst->ctl_fd = sp[0];
	return 0;
}

static int spawn_answer(struct eng_template *t, struct eng_instance *inst)
{
	int32_t init;
	ssize_t n;
	int r = wait_readable(t->ctl);

	if (r < 0)
		return err_wrap(r, "template");
	do
		n = read(t->ctl, &init, sizeof(init));
	while (n < 0 && errno == EINTR);
	if (n != sizeof(init))
		return err_set(EIO, "the template did not answer");
	if (init < 0)
		return err_set(-init, "cannot create a pid namespace: %s", strerror(-init));
	inst->init = init;
	inst->ns_pid = (pid_t)t->proc->pid;
	/* Our child, not reaped before we do: the pid cannot be reused. */
	inst->init_pidfd = sys_pidfd_open(init);
	if (inst->init_pidfd < 0)
		return err_set(errno, "pidfd_open(%d): %m", init);
	return 0;
}

static int spawn_collect(struct eng_template *t, struct eng_instance *inst)
{
	struct rst_report rep;
	int r = read_report(inst->ctl_fd, &rep);

	if (r == 1)
		return err_set(EIO, "died before reporting");
	if (r >= 0 && rep.err)
		r = eng_restore_report_error(t->proc, &rep);
	if (r < 0)
		return r;
	inst->pid = t->proc->pid == 1 ? inst->init : first_child_of(inst->init);
	if (inst->pid < 0)
		return err_set(ESRCH, "cannot find it in its namespace");
	inst->pidfd = sys_pidfd_open(inst->pid);
	if (inst->pidfd < 0)
		return err_set(errno, "pidfd_open(%d): %m", inst->pid);
	r = list_tids(inst->pid, t->proc, &inst->tids);
	if (r < 0)
		return r;
	inst->parked = true;
	inst->tpl = t;
	t->refs++;
	return 0;
}

/*
 * Every thread of @inst but the leader, seized and interrupted: wait for
 * its stop, load its saved registers and mask, drop its parking boost.
 */
static int load_others(struct eng_instance *inst, const EngProcess *p)
{
	int st, r;

	for (size_t i = 0; i < p->n_threads; i++) {
		if (p->threads[i]->tid == p->pid)
			continue;
		r = wait_stopped(inst->tids[i], &st);
		if (r < 0)
			return r;
		r = load_thread(inst->tids[i], p->threads[i]);
		if (r >= 0)
			r = drop_boost(inst->tids[i], p->threads[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * opts->pretrace: every thread seized, the others interrupted (in their
 * futex wait) and loaded with their registers, left in their stops; the
 * start then only has the leader to take over. Returns 0 or -errno (the
 * caller kills the instance).
 */
static int spawn_pretrace(struct eng_template *t, struct eng_instance *inst)
{
	const EngProcess *p = t->proc;
	int r;

	for (size_t i = 0; i < p->n_threads; i++) {
		bool leader = p->threads[i]->tid == p->pid;

		if (ptrace(PTRACE_SEIZE, inst->tids[i], NULL,
			   (void *)(PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL)) < 0) {
			/* The release waits for those seized (others: ECHILD). */
			inst->traced = true;
			return err_set(errno, "cannot seize thread %d: %m", inst->tids[i]);
		}
		if (!leader && ptrace(PTRACE_INTERRUPT, inst->tids[i], NULL, NULL) < 0) {
			r = err_set(errno, "cannot interrupt thread %d: %m", inst->tids[i]);
			inst->traced = true;	/* the release waits for them */
			return r;
		}
	}
	inst->traced = true;
	return load_others(inst, p);
}

static void instance_reset(struct eng_instance *inst)
{
	*inst = (struct eng_instance){ .pid = -1, .ns_pid = -1, .init = -1, .pidfd = -1,
				       .init_pidfd = -1, .ctl_fd = -1 };
}

void eng_instance_release(struct eng_instance *inst)
{
	if (!inst)
		return;
	if (inst->parked && inst->init > 0) {
		/* It could never run: the init's end takes its namespace along. */
		if (inst->init_pidfd >= 0)
			syscall(SYS_pidfd_send_signal, inst->init_pidfd, SIGKILL, NULL, 0);
		else
			kill(inst->init, SIGKILL);
		/* Its traced threads are ours to wait for before its init can. */
		if (inst->traced && inst->tids && inst->tpl)
			reap_traced(inst->tids, inst->tpl->proc->n_threads);
	}
	if (inst->ctl_fd >= 0)
		close(inst->ctl_fd);
	if (inst->pidfd >= 0)
		close(inst->pidfd);
	if (inst->init_pidfd >= 0)
		close(inst->init_pidfd);
	free(inst->tids);
	if (inst->tpl)
		template_unref(inst->tpl);
	instance_reset(inst);
}

/* A failed spawn: kill what exists (parked or not yet). */
static void spawn_abandon(struct eng_instance *inst)
{
	inst->parked = true;
	eng_instance_release(inst);
}

static void instance_opts(const struct eng_instance_opts *opts, struct eng_instance_opts *o)
{
	*o = (struct eng_instance_opts){ .parked = true };
	if (opts) {
		*o = (struct eng_instance_opts){};
		memcpy(o, opts, MIN(opts->sz ? opts->sz : sizeof(*o), sizeof(*o)));
	}
}

int eng_template_spawn(struct eng_template *t, const struct eng_instance_opts *opts,
		       struct eng_instance *ret)
{
	struct eng_instance_opts o;
	struct eng_instance inst;
	int r;

	instance_opts(opts, &o);
	instance_reset(&inst);
	instance_reset(ret);
	if (t->ctl < 0)
		return err_set(EINVAL, "template of %s is closed", t->id);
	r = spawn_send(t, &inst);
	if (r >= 0)
		r = spawn_answer(t, &inst);
	if (r >= 0)
		r = spawn_collect(t, &inst);
	if (r >= 0 && o.parked && o.pretrace && t->self_unmap)
		r = spawn_pretrace(t, &inst);
	if (r < 0) {
		pid_t init = inst.init;

		spawn_abandon(&inst);
		ret->init = init;	/* still the caller's to reap */
		return err_wrap(r, "instance of %s", t->id);
	}
	*ret = inst;
	if (o.parked)
		return 0;
	return eng_instance_start(ret, NULL, NULL, 0);
}

/* Requests under way at once in eng_template_spawn_many. */
#define SPAWN_WINDOW	6

int eng_template_spawn_many(struct eng_template *t, const struct eng_instance_opts *opts,
			    size_t nr, struct eng_instance *ret, size_t *ret_done)
{
	struct eng_instance_opts o;
	size_t sent = 0, answered = 0, done = 0;
	int r = 0;

	instance_opts(opts, &o);
	*ret_done = 0;
	for (size_t i = 0; i < nr; i++)
		instance_reset(&ret[i]);
	if (t->ctl < 0)
		return err_set(EINVAL, "template of %s is closed", t->id);
	while (done < nr) {
		while (sent < nr && sent - done < SPAWN_WINDOW) {
			r = spawn_send(t, &ret[sent]);
			if (r < 0)
				goto fail;
			sent++;
		}
		/* Answers come in order: the oldest request's first. */
		while (answered <= done) {
			r = spawn_answer(t, &ret[answered++]);
			if (r < 0)
				goto fail;
		}
		r = spawn_collect(t, &ret[done]);
		if (r >= 0 && o.parked && o.pretrace && t->self_unmap)
			r = spawn_pretrace(t, &ret[done]);
		if (r >= 0 && !o.parked)
			r = eng_instance_start(&ret[done], NULL, NULL, 0);
		if (r < 0)
			goto fail;
		*ret_done = ++done;
	}
	return 0;
fail:
	r = err_wrap(r, "instance %zu of %s", done, t->id);
	/* The ones under way: their answers keep the template's stream in
	 * step; every one is killed and reaped here (the caller never saw it). */
	for (size_t i = done; i < sent; i++) {
		if (i >= answered && spawn_answer(t, &ret[i]) >= 0)
			answered = i + 1;
		{
			pid_t init = ret[i].init;

			spawn_abandon(&ret[i]);
			if (init > 0)
				while (waitpid(init, NULL, __WALL) < 0 && errno == EINTR)
					;
		}
	}
	return r;
}

/* The start message: numbers, and the descriptors as SCM_RIGHTS. */
static int send_start(int sock, const int *fds, const int *fd_nums, size_t nr, uint32_t flags)
{
	struct {
		uint32_t nr;
		uint32_t flags;
		int32_t nums[SPAWN_MAX_FDS];
	} msg;
	union {
		char buf[CMSG_SPACE(sizeof(int) * SPAWN_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { &msg, 8 + 4 * nr };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	msg.nr = (uint32_t)nr;
	msg.flags = flags;
	for (size_t i = 0; i < nr; i++)
		msg.nums[i] = fd_nums[i];
	if (nr) {
		struct cmsghdr *cm;

		memset(u.buf, 0, sizeof(u.buf));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nr);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nr);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nr);
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)iov.iov_len)
		return err_set(n < 0 ? errno : EIO, "cannot send the start message: %m");
	return 0;
}

static int wait_stopped(pid_t tid, int *ret_status)
{
	int st;
	pid_t w;

	do
		w = waitpid(tid, &st, __WALL);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return err_set(errno, "waitpid(%d): %m", tid);
	*ret_status = st;
	if (!WIFSTOPPED(st))
		return err_set(ESRCH, "thread %d %s while being resumed", tid,
			       WIFSIGNALED(st) ? "was killed" : "exited");
	return 0;
}

static int load_thread(pid_t tid, const EngThread *th)
{
	struct user_regs_struct regs;
	struct iovec iov = { th->xsave.data, th->xsave.len };
	uint64_t mask = th->sigmask;

	memcpy(&regs, th->regs.data, sizeof(regs));
	regs.orig_rax = (unsigned long long)-1;	/* no syscall restart */
	if (ptrace(PTRACE_SETREGS, tid, NULL, &regs) < 0)
		return err_set(errno, "thread %u: cannot set its registers: %m", th->tid);
	if (ptrace(PTRACE_SETREGSET, tid, (void *)NT_X86_XSTATE, &iov) < 0)
		return err_set(errno, "thread %u: cannot set its xsave state: %m", th->tid);
	if (ptrace(PTRACE_SETSIGMASK, tid, (void *)sizeof(mask), &mask) < 0)
		return err_set(errno, "thread %u: cannot set its signal mask: %m", th->tid);
	return 0;
}

/*
 * A thread other than the leader parks under the SCHED_FIFO it was born
 * with (restorer/spawn.h): back to SCHED_OTHER (nice kept) before it runs
 * the program, unless it set a saved policy of its own. Called while it
 * is stopped or parked; it must not run the program boosted, so a failure
 * fails the start.
 */
static int drop_boost(pid_t tid, const EngThread *th)
{
	struct sched_param sp = { .sched_priority = 0 };

	if (th->has_sched_policy && (th->sched_policy & 0xff) != SCHED_OTHER)
		return 0;
	if (sched_setscheduler(tid, SCHED_OTHER, &sp) < 0)
		return err_set(errno, "thread %u: cannot set SCHED_OTHER back: %m", th->tid);
	return 0;
}

/*
 * The leader stopped on its own fault right after unmapping the region:
 * a SIGSEGV at an address inside the region, munmap having returned 0.
 * Anything else (the leader died: its report says why) is an error.
 */
static int check_leader_stop(struct eng_instance *inst, pid_t tid, int st,
			     const struct rst_report *ready)
{
	struct user_regs_struct regs;
	siginfo_t si;
	uint64_t addr;

	if (WSTOPSIG(st) != SIGSEGV)
		return err_set(EPROTO, "the leader stopped with signal %d instead of its "
			       "fault after unmapping the restorer", WSTOPSIG(st));
	if (ptrace(PTRACE_GETSIGINFO, tid, NULL, &si) < 0 ||
	    ptrace(PTRACE_GETREGS, tid, NULL, &regs) < 0)
		return err_set(errno, "cannot read the leader's stop: %m");
	addr = (uint64_t)(uintptr_t)si.si_addr;
	if (si.si_code != SEGV_MAPERR || addr < ready->region_start ||
	    addr >= ready->region_start + ready->region_len || regs.rax != 0)
		return err_set(EPROTO, "the leader faulted at 0x%" PRIx64 " (code %d, rax %lld), "
			       "not right after unmapping the restorer", addr, si.si_code,
			       (long long)regs.rax);
	(void)inst;
	return 0;
}

/* A seized thread that dies must be waited for by us (its tracer) before
 * its init can reap it. */
static void reap_traced(const pid_t *tids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int st;
		pid_t w;

		do
			w = waitpid(tids[i], &st, __WALL);
		while ((w < 0 && errno == EINTR) || (w > 0 && WIFSTOPPED(st)));
	}
}

/*
 * The fast start (template->self_unmap): see the diagram at the top. The
 * other threads sleep in their futex wait (wait_parked): interrupted, they
 * stop on their way out of the kernel, never executing the restorer again,
 * so their stops can come while the leader installs the descriptors and
 * unmaps the region.
 */
static int start_traced(struct eng_instance *inst, const int *fds, const int *fd_nums, size_t nr,
			size_t *ret_seized)
{
	struct eng_template *t = inst->tpl;
	const EngProcess *p = t->proc;
	size_t leader = 0, n = p->n_threads;
	struct rst_report rep;
	int st, r;

	for (size_t i = 0; i < n; i++)
		if (p->threads[i]->tid == p->pid)
			leader = i;
	if (inst->traced) {
		*ret_seized = n;	/* by spawn_pretrace, the others loaded */
	} else {
		for (size_t i = 0; i < n; i++) {
			if (ptrace(PTRACE_SEIZE, inst->tids[i], NULL,
				   (void *)(PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL)) < 0)
				return err_set(errno, "cannot seize thread %d: %m", inst->tids[i]);
			++*ret_seized;
			if (i != leader && ptrace(PTRACE_INTERRUPT, inst->tids[i], NULL, NULL) < 0)
				return err_set(errno, "cannot interrupt thread %d: %m", inst->tids[i]);
		}
	}
	r = send_start(inst->ctl_fd, fds, fd_nums, nr, SPAWN_START_UNMAP);
	if (r < 0)
		return r;
	if (!inst->traced) {	/* else loaded by spawn_pretrace */
		r = load_others(inst, p);
		if (r < 0)
			return r;
	}
	r = wait_stopped(inst->tids[leader], &st);
	if (r < 0) {
		/* It died: a failure report may say why. */
		if (read_report(inst->ctl_fd, &rep) == 0 && rep.err)
			return eng_restore_report_error(p, &rep);
		return r;
	}
	r = check_leader_stop(inst, inst->tids[leader], st, &t->ready);
	if (r < 0)
		return r;
	r = load_thread(inst->tids[leader], p->threads[leader]);
	if (r < 0)
		return r;
	/* The leader last: the others are already running its program. */
	for (size_t i = 0; i < n; i++)
		if (i != leader && ptrace(PTRACE_DETACH, inst->tids[i], NULL, NULL) < 0)
			return err_set(errno, "cannot detach thread %d: %m", inst->tids[i]);
	if (ptrace(PTRACE_DETACH, inst->tids[leader], NULL, NULL) < 0)	/* SIGSEGV dropped */
		return err_set(errno, "cannot detach thread %d: %m", inst->tids[leader]);
	*ret_seized = 0;
	return 0;
}

int eng_instance_start(struct eng_instance *inst, const int *fds, const int *fd_nums, size_t nr)
{
	struct eng_template *t = inst->tpl;
	struct rst_report rep;
	size_t seized = 0;
	int r;

	if (!inst->parked || !t || inst->ctl_fd < 0 || !inst->tids)
		return err_set(EINVAL, "instance %d is not parked", inst->pid);
	if (nr > ENG_INSTANCE_MAX_FDS)
		return err_set(EINVAL, "%zu descriptors, at most %d", nr, ENG_INSTANCE_MAX_FDS);
	for (size_t i = 0; i < nr; i++) {
		if (fd_nums[i] < 0 || fds[i] < 0)
			return err_set(EINVAL, "descriptor %d at number %d", fds[i], fd_nums[i]);
		for (size_t k = 0; k < i; k++)
			if (fd_nums[k] == fd_nums[i])
				return err_set(EINVAL, "number %d given twice", fd_nums[i]);
	}
	if (t->self_unmap) {
		r = start_traced(inst, fds, fd_nums, nr, &seized);
		if (r < 0)
			goto fail;
	} else {
		r = send_start(inst->ctl_fd, fds, fd_nums, nr, 0);
		if (r < 0)
			goto fail;
		/* EOF: the leader installed them and closed its socket. */
		r = read_report(inst->ctl_fd, &rep);
		if (r == 0)
			r = rep.err ? eng_restore_report_error(t->proc, &rep)
				    : err_set(EPROTO, "unexpected report");
		if (r < 0)
			goto fail;
		for (size_t i = 0; i < t->proc->n_threads && r >= 0; i++)
			if (t->proc->threads[i]->tid != t->proc->pid)
				r = drop_boost(inst->tids[i], t->proc->threads[i]);
		if (r < 0)
			goto fail;
		r = eng_restore_resume(inst->pid, t->proc, &t->ready);
		if (r < 0)
			goto fail;
	}
	close(inst->ctl_fd);
	inst->ctl_fd = -1;
	free(inst->tids);
	inst->tids = NULL;
	inst->traced = false;
	inst->parked = false;
	inst->tpl = NULL;
	template_unref(t);
	return 0;
fail:
	r = err_wrap(r, "instance %d", inst->pid);
	{
		pid_t init = inst->init;
		_cleanup_free_ pid_t *tids = TAKE_PTR(inst->tids);

		eng_instance_release(inst);	/* parked: killed */
		if (seized)
			reap_traced(tids, seized);
		inst->init = init;		/* still to be reaped */
	}
	return r;
}

static void kill_and_reap(struct eng_spawned *ret, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (ret[i].init > 0)
			kill(ret[i].init, SIGKILL);
	for (unsigned int i = 0; i < n; i++)
		if (ret[i].init > 0)
			while (waitpid(ret[i].init, NULL, __WALL) < 0 && errno == EINTR)
				;
}

int eng_spawn(struct wc_store *store, const char *snap_id, unsigned int nr,
	      const struct eng_spawn_opts *opts, struct eng_spawned *ret)
{
	struct eng_spawn_opts o = {};
	struct eng_template *t = NULL;
	struct eng_instance *in;
	size_t done = 0;
	uint64_t t1;
	int r;

	if (opts)
		memcpy(&o, opts, MIN(opts->sz ? opts->sz : sizeof(o), sizeof(o)));
	if (!nr)
		return err_set(EINVAL, "no instance asked for");
	in = calloc(nr, sizeof(*in));
	if (!in)
		return -ENOMEM;
	r = eng_template_open(store, snap_id,
			      &(struct eng_template_opts){ .sz = sizeof(struct eng_template_opts),
							   .null_stdio = o.null_stdio,
							   .ret_open_ns = o.ret_template_ns },
			      &t);
	if (r < 0) {
		free(in);
		return r;
	}
	t1 = now_ns();
	r = eng_template_spawn_many(t, &(struct eng_instance_opts){
					    .sz = sizeof(struct eng_instance_opts), .parked = false },
				    nr, in, &done);
	if (r >= 0 && o.ret_instances_ns)
		*o.ret_instances_ns = now_ns() - t1;
	eng_template_close(t);
	for (size_t i = 0; i < done; i++)
		ret[i] = (struct eng_spawned){ .pid = in[i].pid, .init = in[i].init };
	if (r < 0)
		kill_and_reap(ret, (unsigned int)done);
	for (size_t i = 0; i < done; i++)
		eng_instance_release(&in[i]);	/* started: they keep running */
	free(in);
	return r;
}
