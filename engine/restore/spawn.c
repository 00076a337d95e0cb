// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * eng_spawn: many running instances of one snapshot, sharing its memory
 * copy-on-write. See docs/engine-restore.md, "Spawn".
 *
 *   caller (warmfork)           template (restored once)      init (CLONE_VM)   instance
 *   validate (as restore)
 *   fork ---------------------> child.c: premap, fill, fds
 *                               restorer: areas in place,
 *                               no thread, no program code
 *   read "ready" <------------- status pipe
 *   per instance:
 *     cmd ------ ctl socket --> clone3(VM|NEWPID) ----------> clone3(set_tid) ---> rst_finish:
 *     init pid <--------------- answer                                             state, threads,
 *     read report <--------------------------------------------------------------- report, park
 *     wait until it closed its status descriptor
 *     ptrace resume (resume.c: unmap region, registers, xsave, mask, detach)
 *   close ctl ----------------> exit (inits keep the memory alive)
 *
 * One instance at a time: they share one status pipe (the template holds
 * its write end, so no EOF ever comes: the parent polls the instance's fd
 * instead, right after the report, which the leader closes next).
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
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "restore.h"

#define SPAWN_REPORT_TIMEOUT_MS	30000

static int read_report(int fd, struct rst_report *rep)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t n;
	int r;

	do
		r = poll(&pfd, 1, SPAWN_REPORT_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return err_set(errno, "poll: %m");
	if (r == 0)
		return err_set(ETIMEDOUT, "no report within %d ms", SPAWN_REPORT_TIMEOUT_MS);
	do
		n = read(fd, rep, sizeof(*rep));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*rep))
		return err_set(EIO, "died before reporting (%s)", n < 0 ? strerror(errno) : "no report");
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

/* The instance's leader closes its status descriptor right after reporting. */
static int wait_fd_closed(pid_t pid, int fd)
{
	char path[64], buf[64];

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	for (int i = 0; i < 200000; i++) {
		if (readlink(path, buf, sizeof(buf)) < 0) {
			if (errno == ENOENT)
				return 0;
			return err_set(errno, "%s: %m", path);
		}
		sched_yield();
	}
	return err_set(ETIMEDOUT, "instance %d kept its status descriptor", pid);
}

static int check_shareable(const EngProcess *p)
{
	size_t nr_shared = 0;

	for (size_t i = 0; i < p->n_vmas; i++) {
		const EngVma *v = p->vmas[i];

		/* Each instance copies these (engine/restorer/spawn.h). */
		if (v->kind == ENG_VMA_KIND__VMA_ANON_SHARED && ++nr_shared > RST_SPAWN_MAX_SHARED)
			return err_set(EOPNOTSUPP, "spawn copies at most %d shared memory areas per "
				       "instance, this process has more", RST_SPAWN_MAX_SHARED);
		/* A fork would drop or wipe them. */
		if (v->madv & (ENG_MADV_DONTFORK | ENG_MADV_WIPEONFORK))
			return err_set(EOPNOTSUPP, "spawn cannot copy the dontfork/wipeonfork area "
				       "at 0x%" PRIx64 " yet", v->start);
	}
	return 0;
}

static void kill_all(struct eng_spawned *ret, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		kill(ret[i].init, SIGKILL);
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

int eng_spawn(struct wc_store *store, const char *snap_id, unsigned int nr,
	      const struct eng_spawn_opts *opts, struct eng_spawned *ret)
{
	struct eng_spawn_opts o = {};
	struct wc_snapshot *snap = NULL;
	EngImage *img = NULL;
	const EngProcess *p = NULL;
	struct eng_rst_ctx ctx = {};
	struct rst_report rep;
	uint64_t t0 = now_ns(), t1 = 0;
	int pfd[2] = { -1, -1 }, ctl[2] = { -1, -1 }, r, *sock_fds = NULL;
	unsigned int done = 0;
	pid_t tpl = -1;

	if (opts)
		memcpy(&o, opts, MIN(opts->sz ? opts->sz : sizeof(o), sizeof(o)));
	if (!nr)
		return err_set(EINVAL, "no instance asked for");
	r = wc_snapshot_open(store, snap_id, &snap);
	if (r < 0)
		return err_wrap(r, "snapshot %s", snap_id);
	snap_id = wc_snapshot_id(snap);
	r = eng_restore_validate(store, snap, &img);
	if (r < 0)
		goto out;
	p = img->procs[0];
	r = check_shareable(p);
	if (r < 0)
		goto out;
	/* Re-created once: every instance shares the listening sockets. */
	r = eng_restore_sockets_open(p, &sock_fds);
	if (r < 0)
		goto out;
	if (pipe2(pfd, O_CLOEXEC) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) < 0) {
		r = err_set(errno, "pipe: %m");
		goto out;
	}
	ctx = (struct eng_rst_ctx){
		.store = store, .snap = snap, .img = img, .proc = p,
		.inherit_stdio = true,
		.status_fd = pfd[1],
		.sock_fds = sock_fds,
		.spawn = true,
		.spawn_ctl_fd = ctl[1],
	};
	fflush(NULL);
	/* A plain fork: the template needs no particular pid, and fork keeps
	 * libc consistent in a multi-threaded caller. */
	tpl = fork();
	if (tpl < 0) {
		r = err_set(errno, "cannot create the template: %m");
		goto out;
	}
	if (tpl == 0) {
		close(pfd[0]);
		close(ctl[0]);
		run_template(&ctx, o.null_stdio);
	}
	close(pfd[1]);
	pfd[1] = -1;
	close(ctl[1]);
	ctl[1] = -1;

	r = read_report(pfd[0], &rep);
	if (r < 0) {
		r = err_wrap(r, "template");
		goto out;
	}
	if (rep.err) {
		r = err_wrap(eng_restore_report_error(p, &rep), "template");
		goto out;
	}
	t1 = now_ns();

	for (done = 0; done < nr; done++) {
		uint32_t cmd = 1;
		int32_t init;
		pid_t inst;
		ssize_t n;

		/* MSG_NOSIGNAL: a dead template is an error, not our SIGPIPE. */
		if (send(ctl[0], &cmd, sizeof(cmd), MSG_NOSIGNAL) != sizeof(cmd)) {
			r = err_set(EIO, "instance %u: the template is gone (%m)", done);
			goto out;
		}
		do
			n = read(ctl[0], &init, sizeof(init));
		while (n < 0 && errno == EINTR);
		if (n != sizeof(init)) {
			r = err_set(EIO, "instance %u: the template did not answer", done);
			goto out;
		}
		if (init < 0) {
			r = err_set(-init, "instance %u: cannot create its pid namespace: %s", done,
				    strerror(-init));
			goto out;
		}
		ret[done] = (struct eng_spawned){ .pid = init, .init = init };
		r = read_report(pfd[0], &rep);
		if (r >= 0 && rep.err)
			r = eng_restore_report_error(p, &rep);
		if (r < 0) {
			r = err_wrap(r, "instance %u", done);
			done++;
			goto out;
		}
		inst = p->pid == 1 ? init : first_child_of(init);
		if (inst < 0) {
			r = err_set(ESRCH, "instance %u: cannot find it in its namespace", done);
			done++;
			goto out;
		}
		ret[done].pid = inst;
		r = wait_fd_closed(inst, (int)rep.arg);
		if (r >= 0)
			r = eng_restore_resume(inst, p, &rep);
		if (r < 0) {
			r = err_wrap(r, "instance %u (pid %d)", done, inst);
			done++;
			goto out;
		}
	}
	if (o.ret_template_ns)
		*o.ret_template_ns = t1 - t0;
	if (o.ret_instances_ns)
		*o.ret_instances_ns = now_ns() - t1;
	r = 0;
out:
	if (r < 0)
		kill_all(ret, done);
	if (ctl[0] >= 0)
		close(ctl[0]);		/* the template exits on EOF */
	if (ctl[1] >= 0)
		close(ctl[1]);
	if (tpl > 0) {
		if (r < 0)
			kill(tpl, SIGKILL);
		while (waitpid(tpl, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (img)
		eng_restore_sockets_close(img->procs[0], sock_fds);
	if (r < 0)
		r = err_wrap(r, "snapshot %s", snap_id);
	if (img)
		eng_image__free_unpacked(img, NULL);
	wc_snapshot_close(snap);
	return r;
}
