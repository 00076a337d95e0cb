// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * eng_checkpoint(): freeze, inspect, collect, copy memory, commit, release.
 * See dump.h for the phases. Everything that can refuse the process (an
 * unsupported descriptor, mapping, seccomp filter, posix timer) is checked
 * in the inspect phase, which only reads /proc: a refused process has had
 * nothing but a ptrace stop.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "dump.h"

#define KILL_TIMEOUT_MS	10000

static int read_smaps(struct eng_dump_ctx *ctx)
{
	_cleanup_free_ char *buf = NULL;
	size_t cap = 0;
	char *line, *next;
	int r;

	r = read_file_at(ctx->proc_fd, "smaps", &buf, NULL);
	if (r < 0)
		return err_wrap(r, "cannot read /proc/%d/smaps", ctx->pid);
	for (line = buf; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if ((*line >= '0' && *line <= '9') || (*line >= 'a' && *line <= 'f')) {
			if (ctx->nr_maps == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct eng_proc_map *nm = realloc(ctx->maps, nc * sizeof(*nm));
				uint64_t *nf;

				if (!nm)
					return -ENOMEM;
				ctx->maps = nm;
				nf = realloc(ctx->vmflags, nc * sizeof(*nf));
				if (!nf)
					return -ENOMEM;
				ctx->vmflags = nf;
				cap = nc;
			}
			r = eng_dump_parse_maps_line(line, &ctx->maps[ctx->nr_maps]);
			if (r < 0)
				return err_set(r, "cannot parse /proc/%d/smaps line \"%.80s\"",
					       ctx->pid, line);
			ctx->vmflags[ctx->nr_maps++] = 0;
		} else if (strncmp(line, "VmFlags:", 8) == 0 && ctx->nr_maps) {
			ctx->vmflags[ctx->nr_maps - 1] = eng_dump_parse_vmflags(line + 8);
		}
	}
	return 0;
}

static int read_proc_text(struct eng_dump_ctx *ctx, const char *name, char **ret)
{
	int r = read_file_at(ctx->proc_fd, name, ret, NULL);

	if (r < 0)
		return err_wrap(r, "cannot read /proc/%d/%s", ctx->pid, name);
	return 0;
}

static int readlink_proc(struct eng_dump_ctx *ctx, const char *name, char **ret)
{
	char buf[4096];
	ssize_t n = readlinkat(ctx->proc_fd, name, buf, sizeof(buf) - 1);

	if (n < 0)
		return err_wrap(-errno, "cannot read /proc/%d/%s", ctx->pid, name);
	buf[n] = '\0';
	*ret = strdup(buf);
	return *ret ? 0 : -ENOMEM;
}

/* Refusals that only need /proc (inspect phase). */
static int inspect_process(struct eng_dump_ctx *ctx)
{
	_cleanup_free_ char *stat = NULL, *status = NULL, *timers = NULL;
	int r;

	r = read_proc_text(ctx, "stat", &stat);
	if (r < 0)
		return r;
	r = eng_dump_parse_stat(stat, &ctx->stat);
	if (r < 0)
		return err_set(r, "cannot parse /proc/%d/stat", ctx->pid);
	r = read_proc_text(ctx, "status", &status);
	if (r < 0)
		return r;
	r = eng_dump_parse_status(status, &ctx->status);
	if (r < 0)
		return err_set(r, "cannot parse /proc/%d/status", ctx->pid);
	if (ctx->status.seccomp > 0)
		return err_set(EOPNOTSUPP, "process %d uses seccomp (mode %d), not supported yet",
			       ctx->pid, ctx->status.seccomp);
	if (read_file_at(ctx->proc_fd, "timers", &timers, NULL) == 0 && timers[0])
		return err_set(EOPNOTSUPP, "process %d has POSIX timers (timer_create), not "
				 "supported yet", ctx->pid);
	return 0;
}

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

/* Process-wide state readable from outside (/proc, prlimit). */
int eng_dump_process_state(struct eng_dump_ctx *ctx)
{
	EngProcess *proc = ctx->proc;
	EngMm *mm = proc->mm;
	EngCreds *cr = proc->creds;
	const struct eng_proc_status *st = &ctx->status;
	_cleanup_free_ char *comm = NULL, *pers = NULL, *oom = NULL;
	struct stat exe_st;
	size_t auxv_len;
	char *auxv;
	int r;

	/* Ids as the process sees them (its own pid namespace). */
	proc->pid = ctx->pid;
	proc->has_pgid = proc->has_sid = true;
	proc->pgid = ctx->stat.pgrp;
	proc->sid = ctx->stat.session;
	if (st->ns_depth > 0) {
		proc->pid = st->ns_pid;
		proc->pgid = st->ns_pgid;
		proc->sid = st->ns_sid;
	}
	r = read_proc_text(ctx, "comm", &comm);
	if (r < 0)
		return r;
	comm[strcspn(comm, "\n")] = '\0';
	proc->comm = TAKE_PTR(comm);
	r = read_proc_text(ctx, "oom_score_adj", &oom);
	if (r == 0) {
		proc->has_oom_score_adj = true;
		proc->oom_score_adj = atoi(oom);
	}

	/* mm: /proc/PID/stat fields 26-28, 45-51; brk comes from the remote brk(0). */
	mm->start_code = ctx->stat.start_code;
	mm->end_code = ctx->stat.end_code;
	mm->start_stack = ctx->stat.start_stack;
	mm->start_data = ctx->stat.start_data;
	mm->end_data = ctx->stat.end_data;
	mm->start_brk = ctx->stat.start_brk;
	mm->brk = ctx->stat.start_brk;
	mm->arg_start = ctx->stat.arg_start;
	mm->arg_end = ctx->stat.arg_end;
	mm->env_start = ctx->stat.env_start;
	mm->env_end = ctx->stat.env_end;
	r = read_file_at(ctx->proc_fd, "auxv", &auxv, &auxv_len);
	if (r < 0)
		return err_wrap(r, "cannot read /proc/%d/auxv", ctx->pid);
	mm->auxv.data = (uint8_t *)auxv;
	mm->auxv.len = auxv_len;
	{
		_cleanup_free_ char *exe = NULL;
		uint32_t idx;

		r = readlink_proc(ctx, "exe", &exe);
		if (r < 0)
			return r;
		if (fstatat(ctx->proc_fd, "exe", &exe_st, 0) < 0)
			return err_wrap(-errno, "cannot stat /proc/%d/exe", ctx->pid);
		r = eng_dump_file_id(ctx, exe, &exe_st, &idx);
		if (r < 0)
			return err_wrap(r, "executable");
		mm->has_exe_file = true;
		mm->exe_file = idx;
	}

	/* Credentials. */
	cr->uid = st->uid[0];
	cr->euid = st->uid[1];
	cr->suid = st->uid[2];
	cr->fsuid = st->uid[3];
	cr->gid = st->gid[0];
	cr->egid = st->gid[1];
	cr->sgid = st->gid[2];
	cr->fsgid = st->gid[3];
	if (st->nr_groups) {
		cr->groups = malloc(st->nr_groups * sizeof(*cr->groups));
		if (!cr->groups)
			return -ENOMEM;
		memcpy(cr->groups, st->groups, st->nr_groups * sizeof(*cr->groups));
		cr->n_groups = st->nr_groups;
	}
	cr->has_cap_eff = cr->has_cap_prm = cr->has_cap_inh = true;
	cr->has_cap_bnd = cr->has_cap_amb = cr->has_no_new_privs = true;
	cr->cap_eff = st->cap_eff;
	cr->cap_prm = st->cap_prm;
	cr->cap_inh = st->cap_inh;
	cr->cap_bnd = st->cap_bnd;
	cr->cap_amb = st->cap_amb;
	cr->no_new_privs = st->no_new_privs;

	if (st->umask < 0)
		return err_set(EOPNOTSUPP, "/proc/%d/status shows no Umask", ctx->pid);
	proc->umask = (uint32_t)st->umask;
	r = readlink_proc(ctx, "cwd", &proc->cwd);
	if (r < 0)
		return r;
	r = readlink_proc(ctx, "root", &proc->root);
	if (r < 0)
		return r;
	{
		size_t lc = strlen(proc->cwd), lr = strlen(proc->root);

		if ((lc >= 10 && strcmp(proc->cwd + lc - 10, " (deleted)") == 0) ||
		    (lr >= 10 && strcmp(proc->root + lr - 10, " (deleted)") == 0))
			return err_set(EOPNOTSUPP, "process %d: its working or root directory "
					 "\"%s\" was deleted", ctx->pid,
					 lc >= 10 && strcmp(proc->cwd + lc - 10, " (deleted)") == 0 ?
					 proc->cwd : proc->root);
	}
	r = read_proc_text(ctx, "personality", &pers);
	if (r < 0)
		return r;
	proc->personality = (uint32_t)strtoul(pers, NULL, 16);

	proc->rlimits = calloc(RLIM_NLIMITS, sizeof(*proc->rlimits));
	if (!proc->rlimits)
		return -ENOMEM;
	for (int res = 0; res < RLIM_NLIMITS; res++) {
		struct rlimit rl;
		EngRlimit *e;

		if (prlimit(ctx->pid, res, NULL, &rl) < 0)
			return err_wrap(-errno, "cannot read rlimit %d of process %d", res, ctx->pid);
		e = malloc(sizeof(*e));
		if (!e)
			return -ENOMEM;
		eng_rlimit__init(e);
		e->resource = res;
		e->cur = rl.rlim_cur;
		e->max = rl.rlim_max;
		proc->rlimits[proc->n_rlimits++] = e;
	}
	return 0;
}

static int image_new(struct eng_dump_ctx *ctx)
{
	EngImage *img = calloc(1, sizeof(*img));
	EngProcess *proc = calloc(1, sizeof(*proc));
	EngMm *mm = calloc(1, sizeof(*mm));
	EngCreds *cr = calloc(1, sizeof(*cr));
	struct utsname u;

	if (!img || !proc || !mm || !cr) {
		free(img);
		free(proc);
		free(mm);
		free(cr);
		return -ENOMEM;
	}
	eng_image__init(img);
	eng_process__init(proc);
	eng_mm__init(mm);
	eng_creds__init(cr);
	proc->mm = mm;
	proc->creds = cr;
	img->procs = calloc(1, sizeof(*img->procs));
	if (!img->procs) {
		eng_image__free_unpacked(img, NULL);
		eng_process__free_unpacked(proc, NULL);
		return -ENOMEM;
	}
	img->procs[0] = proc;
	img->n_procs = 1;
	img->version = ENG_IMAGE_VERSION;
	if (uname(&u) == 0)
		img->kernel_release = strdup(u.release);
	img->has_xfeatures_mask = true;
	img->xfeatures_mask = xgetbv0();
	img->has_dumped_ns = true;
	img->dumped_ns = realtime_ns();
	ctx->image = img;
	ctx->proc = proc;
	return 0;
}

static int commit_image(struct eng_dump_ctx *ctx, struct wc_sink *sink,
			char ret_id[WC_ID_LEN + 1])
{
	size_t len = eng_image__get_packed_size(ctx->image);
	_cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
	char pid[16];
	int r;

	if (!buf)
		return -ENOMEM;
	eng_image__pack(ctx->image, buf);
	if (ctx->stats)
		ctx->stats->image_bytes = len;
	r = sink->ops->put_blob(sink, ENG_IMAGE_BLOB, buf, len);
	if (r < 0)
		return err_wrap(r, "cannot store the process image");
	snprintf(pid, sizeof(pid), "%d", ctx->pid);
	r = sink->ops->put_label(sink, "pid", pid);
	if (r >= 0 && ctx->proc->comm)
		r = sink->ops->put_label(sink, "comm", ctx->proc->comm);
	if (r < 0)
		return err_wrap(r, "cannot label the snapshot");
	r = sink->ops->commit(sink, ret_id);
	if (r < 0)
		return err_wrap(r, "cannot commit the snapshot");
	return 0;
}

int eng_checkpoint(pid_t pid, struct wc_sink *sink, const struct eng_dump_opts *opts,
		   char ret_id[WC_ID_LEN + 1])
{
	struct eng_dump_stats stats = {};
	struct eng_dump_ctx ctx = { .pid = pid, .proc_fd = -1, .mem_fd = -1, .stats = &stats };
	uint64_t t0 = now_ns(), t1, t_frozen;
	char path[64], id[WC_ID_LEN + 1];
	/* Fields beyond what the caller's struct holds (opts->sz) are unset. */
	bool leave_running = opts && opts->sz >= offsetof(struct eng_dump_opts, leave_running) +
						    sizeof(opts->leave_running) &&
			     opts->leave_running;
	int r;

	if (opts && opts->sz < sizeof(size_t))
		return -EINVAL;
	if (pid <= 0)
		return err_set(EINVAL, "invalid pid %d", pid);
	err_clear();
	snprintf(path, sizeof(path), "/proc/%d", pid);
	ctx.proc_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (ctx.proc_fd < 0)
		return errno == ENOENT ? err_set(ESRCH, "no process %d", pid)
				       : err_wrap(-errno, "cannot open %s", path);

	/* 1. freeze */
	r = eng_dump_freeze(pid, &ctx.threads);
	if (r < 0)
		goto out_close;
	t_frozen = t1 = now_ns();
	stats.freeze_ns = t1 - t0;
	stats.nr_threads = ctx.threads.nr;

	/* 2. inspect (/proc only; may refuse) */
	r = image_new(&ctx);
	if (r < 0)
		goto fail;
	r = inspect_process(&ctx);
	if (r < 0)
		goto fail;
	r = read_smaps(&ctx);
	if (r < 0)
		goto fail;
	r = eng_dump_vmas(&ctx);
	if (r < 0)
		goto fail;
	r = eng_dump_fds(&ctx);
	if (r < 0)
		goto fail;
	r = eng_dump_process_state(&ctx);
	if (r < 0)
		goto fail;

	/* 3. collect (ptrace, remote syscalls) */
	r = eng_dump_threads_alloc(&ctx);
	if (r < 0)
		goto fail;
	r = eng_remote_find_syscall(pid, ctx.maps, ctx.nr_maps, &ctx.syscall_ip);
	if (r < 0)
		goto fail;
	/*
	 * While a remote session runs, the target's registers point into its
	 * vdso with our arguments: if we died then, the kernel would detach it
	 * like that. Termination signals wait until the sessions are over.
	 */
	{
		sigset_t block, old;

		sigemptyset(&block);
		sigaddset(&block, SIGINT);
		sigaddset(&block, SIGTERM);
		sigaddset(&block, SIGHUP);
		sigaddset(&block, SIGQUIT);
		sigaddset(&block, SIGPIPE);
		sigaddset(&block, SIGALRM);
		sigaddset(&block, SIGUSR1);
		sigaddset(&block, SIGUSR2);
		pthread_sigmask(SIG_BLOCK, &block, &old);
		r = eng_dump_remote_state(&ctx);
		if (r < 0 && ctx.scratch)
			eng_dump_remote_cleanup(&ctx);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (r < 0)
		goto fail;
	r = eng_dump_thread_state(&ctx);
	if (r < 0)
		goto fail;
	r = eng_dump_vdso_hash(&ctx);
	if (r < 0)
		goto fail;
	t1 = now_ns();
	stats.collect_ns = t1 - t0 - stats.freeze_ns;

	/* 4. memory */
	r = eng_dump_pages(&ctx, sink);
	if (r < 0)
		goto fail;
	stats.memory_ns = now_ns() - t1;
	t1 = now_ns();

	/* 5. commit */
	r = commit_image(&ctx, sink, id);
	if (r < 0)
		goto fail;
	stats.commit_ns = now_ns() - t1;
	t1 = now_ns();

	/* 6. release: the snapshot exists, whatever happens now. */
	if (leave_running) {
		eng_dump_thaw(&ctx.threads);
	} else {
		r = eng_dump_kill(&ctx.threads, KILL_TIMEOUT_MS);
		if (r == -ETIMEDOUT)
			stats.zombie = true;
	}
	stats.release_ns = now_ns() - t1;
	stats.frozen_ns = now_ns() - t_frozen;
	memcpy(ret_id, id, sizeof(id));
	if (opts && opts->sz >= offsetof(struct eng_dump_opts, stats) + sizeof(opts->stats) &&
	    opts->stats)
		*opts->stats = stats;
	r = 0;
	goto out;

fail:
	if (ctx.scratch)
		eng_dump_remote_cleanup(&ctx);
	eng_dump_thaw(&ctx.threads);
out:
	eng_dump_threads_fini(&ctx.threads);
	if (ctx.image)
		eng_image__free_unpacked(ctx.image, NULL);
	for (size_t i = 0; i < ctx.nr_maps; i++)
		eng_dump_map_fini(&ctx.maps[i]);
	free(ctx.maps);
	free(ctx.vmflags);
	free(ctx.whole_pages);
	if (ctx.mem_fd >= 0)
		close(ctx.mem_fd);
out_close:
	close(ctx.proc_fd);
	return r;
}
