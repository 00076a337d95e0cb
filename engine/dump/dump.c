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
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "dump.h"

#define KILL_TIMEOUT_MS	10000

static int read_maps_fast(struct eng_dump_ctx *ctx);

/* Append a map (and its VmFlags slot, 0) parsed from @line. */
static int maps_add(struct eng_dump_ctx *ctx, size_t *cap, const char *line)
{
	int r;

	if (ctx->nr_maps == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		struct eng_proc_map *nm = realloc(ctx->maps, nc * sizeof(*nm));
		uint64_t *nf;

		if (!nm)
			return -ENOMEM;
		ctx->maps = nm;
		nf = realloc(ctx->vmflags, nc * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		ctx->vmflags = nf;
		*cap = nc;
	}
	r = eng_dump_parse_maps_line(line, &ctx->maps[ctx->nr_maps]);
	if (r < 0)
		return err_set(r, "cannot parse /proc/%d maps line \"%.80s\"", ctx->pid, line);
	ctx->vmflags[ctx->nr_maps++] = 0;
	return 0;
}

static int read_smaps(struct eng_dump_ctx *ctx)
{
	_cleanup_free_ char *buf = NULL;
	size_t cap = 0;
	char *line, *next;
	int r;

	if (ctx->no_anon_pages && read_maps_fast(ctx) == 0)
		return 0;
	err_clear();	/* the fast path's refusal is no failure: smaps then */
	r = read_file_at(ctx->proc_fd, "smaps", &buf, NULL);
	if (r < 0)
		return err_wrap(r, "cannot read /proc/%d/smaps", ctx->pid);
	for (line = buf; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if ((*line >= '0' && *line <= '9') || (*line >= 'a' && *line <= 'f')) {
			r = maps_add(ctx, &cap, line);
			if (r < 0)
				return r;
		} else if (strncmp(line, "Rss:", 4) == 0 && ctx->nr_maps) {
			ctx->maps[ctx->nr_maps - 1].rss_kib = strtoull(line + 4, NULL, 10);
		} else if (strncmp(line, "Swap:", 5) == 0 && ctx->nr_maps) {
			ctx->maps[ctx->nr_maps - 1].swap_kib = strtoull(line + 5, NULL, 10);
		} else if (strncmp(line, "VmFlags:", 8) == 0 && ctx->nr_maps) {
			ctx->vmflags[ctx->nr_maps - 1] = eng_dump_parse_vmflags(line + 8);
		}
	}
	return 0;
}

static void maps_clear(struct eng_dump_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nr_maps; i++)
		eng_dump_map_fini(&ctx->maps[i]);
	ctx->nr_maps = 0;
}

/* RssAnon + VmSwap of the process in KiB (/proc/PID/status: counters, no
 * page walk; approximate by a few pages per CPU). */
static uint64_t anon_kib(struct eng_dump_ctx *ctx)
{
	_cleanup_free_ char *st = NULL;
	uint64_t kib = 0;
	const char *p;

	if (read_file_at(ctx->proc_fd, "status", &st, NULL) < 0)
		return 0;
	if ((p = strstr(st, "\nRssAnon:")))
		kib += strtoull(p + 9, NULL, 10);
	if ((p = strstr(st, "\nVmSwap:")))
		kib += strtoull(p + 8, NULL, 10);
	return kib;
}

static bool map_is_anon_private(const struct eng_proc_map *m)
{
	const char *p = m->path;

	return !m->shared && (!p[0] || strcmp(p, "[heap]") == 0 || strcmp(p, "[stack]") == 0 ||
			      strncmp(p, "[anon:", 6) == 0 || strcmp(p, "/dev/zero") == 0);
}

static int cmp_size_desc(const void *a, const void *b, void *arg)
{
	const struct eng_proc_map *m = arg;
	uint64_t x = m[*(const size_t *)a].end - m[*(const size_t *)a].start;
	uint64_t y = m[*(const size_t *)b].end - m[*(const size_t *)b].start;

	return x < y ? 1 : x > y ? -1 : 0;
}

/*
 * no_anon_pages (rfork --lazy): the vmas from /proc/PID/maps and their
 * VmFlags from a BPF iterator (vmflags.c), so that nothing walks the page
 * tables before the twin can run: smaps costs ~20 ms per resident GiB.
 * smaps also gave each vma's Rss, with which mem.c skips the walk that
 * finds the present pages of a fully resident vma. Without it, the
 * largest accessible anonymous private vmas that the process's anonymous
 * memory (RssAnon + VmSwap) can fill are taken as fully resident: their
 * pages are announced lazy without a walk, and one that was absent is read
 * as zero when it goes out (the sender's stream tells zero pages apart):
 * the same content, only no walk before the twin runs. Any vma the
 * iterator cannot vouch for: -EOPNOTSUPP, and the caller reads smaps.
 */
static int read_maps_fast(struct eng_dump_ctx *ctx)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_free_ size_t *order = NULL;
	size_t cap = 0, nr_anon = 0;
	uint64_t budget;
	char *line, *next;
	int r;

	r = read_file_at(ctx->proc_fd, "maps", &buf, NULL);
	if (r < 0)
		return err_wrap(r, "cannot read /proc/%d/maps", ctx->pid);
	for (line = buf; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		r = maps_add(ctx, &cap, line);
		if (r < 0)
			goto fail;
	}
	r = eng_dump_vmflags_fast(ctx->pid, ctx->maps, ctx->nr_maps, ctx->vmflags);
	if (r < 0)
		goto fail;
	order = malloc((ctx->nr_maps ? ctx->nr_maps : 1) * sizeof(*order));
	if (!order) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < ctx->nr_maps; i++)
		if (map_is_anon_private(&ctx->maps[i]) && ctx->maps[i].prot)
			order[nr_anon++] = i;
	qsort_r(order, nr_anon, sizeof(*order), cmp_size_desc, ctx->maps);
	/* Slack: the counters lag by a few pages per CPU. */
	budget = anon_kib(ctx) + 4096;
	for (size_t k = 0; k < nr_anon; k++) {
		struct eng_proc_map *m = &ctx->maps[order[k]];
		uint64_t kib = (m->end - m->start) / 1024;

		if (kib <= budget) {
			m->rss_kib = kib;
			budget -= kib;
		}
	}
	if (ctx->stats)
		ctx->stats->vmflags_fast = true;
	return 0;
fail:
	maps_clear(ctx);
	return r;
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
	struct rlimit lims[RLIM_NLIMITS];
	bool from_proc = false;
	for (int res = 0; res < RLIM_NLIMITS; res++) {
		struct rlimit rl;
		EngRlimit *e;

		/* prlimit needs CAP_SYS_RESOURCE for a process with other
		 * ids: then /proc/PID/limits (limits.c). */
		if (!from_proc && prlimit(ctx->pid, res, NULL, &rl) < 0) {
			int r2;

			if (errno != EPERM)
				return err_wrap(-errno, "cannot read rlimit %d of process %d", res,
						ctx->pid);
			r2 = eng_dump_read_limits(ctx->proc_fd, lims, RLIM_NLIMITS);
			if (r2 < 0)
				return err_wrap(r2, "cannot read /proc/%d/limits", ctx->pid);
			from_proc = true;
		}
		if (from_proc)
			rl = lims[res];
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

static int image_new(EngImage **ret)
{
	EngImage *img = calloc(1, sizeof(*img));
	struct utsname u;

	if (!img)
		return -ENOMEM;
	eng_image__init(img);
	img->version = ENG_IMAGE_VERSION;
	if (uname(&u) == 0)
		img->kernel_release = strdup(u.release);
	img->has_xfeatures_mask = true;
	img->xfeatures_mask = xgetbv0();
	img->has_dumped_ns = true;
	img->dumped_ns = realtime_ns();
	*ret = img;
	return 0;
}

/* Append a new, empty process to @img (it owns it). */
static int image_add_proc(EngImage *img, EngProcess **ret)
{
	EngProcess *proc = calloc(1, sizeof(*proc));
	EngMm *mm = calloc(1, sizeof(*mm));
	EngCreds *cr = calloc(1, sizeof(*cr));
	EngProcess **nv = realloc(img->procs, (img->n_procs + 1) * sizeof(*nv));

	if (nv)
		img->procs = nv;
	if (!proc || !mm || !cr || !nv) {
		free(proc);
		free(mm);
		free(cr);
		return -ENOMEM;
	}
	eng_process__init(proc);
	eng_mm__init(mm);
	eng_creds__init(cr);
	proc->mm = mm;
	proc->creds = cr;
	img->procs[img->n_procs++] = proc;
	*ret = proc;
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

/*
 * Phases 2-4 for one frozen process (ctx->threads): inspect, collect,
 * memory, into ctx->proc. On failure the remote scratch page is gone again;
 * the caller thaws.
 */
static int dump_process(struct eng_dump_ctx *ctx, struct wc_sink *sink)
{
	struct eng_dump_stats *stats = ctx->stats;
	uint64_t t0 = now_ns(), t1;
	int r;

	/* 2. inspect (/proc only; may refuse: every refusal is listed, files) */
	r = eng_dump_unsupported(ctx, inspect_process(ctx));
	if (r < 0)
		return r;
	r = read_smaps(ctx);
	if (r < 0)
		return r;
	r = eng_dump_vmas(ctx);
	if (r < 0)
		return r;
	r = eng_dump_fds(ctx);
	if (r < 0)
		return r;
	r = eng_dump_unsupported(ctx, eng_dump_process_state(ctx));
	if (r < 0)
		return r;
	r = eng_dump_unsupported_end(ctx);
	if (r < 0 || ctx->files.dry_run)
		return r;

	/* 3. collect (ptrace, remote syscalls) */
	r = eng_dump_threads_alloc(ctx);
	if (r < 0)
		return r;
	r = eng_remote_find_syscall(ctx->pid, ctx->maps, ctx->nr_maps, &ctx->syscall_ip);
	if (r < 0)
		return r;
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
		r = eng_dump_remote_state(ctx);
		if (r < 0 && ctx->scratch)
			eng_dump_remote_cleanup(ctx);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (r < 0)
		return r;
	r = eng_dump_thread_state(ctx);
	if (r < 0)
		goto fail;
	r = eng_dump_vdso_hash(ctx);
	if (r < 0)
		goto fail;
	t1 = now_ns();
	stats->collect_ns += t1 - t0;

	/* 4. memory */
	r = eng_dump_pages(ctx, sink);
	if (r < 0)
		goto fail;
	r = eng_dump_fobj_content(ctx, sink);	/* files: memfd, shm, unlinked files */
	if (r < 0)
		goto fail;
	stats->memory_ns += now_ns() - t1;
	/* tcp: established connections locked and read last (sockets.c). */
	r = eng_dump_tcp_capture(ctx);
	if (r < 0)
		goto fail;
	return 0;
fail:
	if (ctx->scratch)
		eng_dump_remote_cleanup(ctx);
	return r;
}

static int ctx_open(struct eng_dump_ctx *ctx, pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d", pid);
	ctx->proc_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (ctx->proc_fd < 0)
		return errno == ENOENT ? err_set(ESRCH, "no process %d", pid)
				       : err_wrap(-errno, "cannot open %s", path);
	return 0;
}

/* Everything of @ctx but its threads and the image. */
static void ctx_fini(struct eng_dump_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nr_maps; i++)
		eng_dump_map_fini(&ctx->maps[i]);
	free(ctx->maps);
	free(ctx->vmflags);
	free(ctx->whole_pages);
	eng_dump_files_fini(ctx);
	ctx->maps = NULL;
	ctx->vmflags = NULL;
	ctx->whole_pages = NULL;
	ctx->nr_maps = 0;
	if (ctx->mem_fd >= 0)
		close(ctx->mem_fd);
	if (ctx->proc_fd >= 0)
		close(ctx->proc_fd);
	ctx->mem_fd = ctx->proc_fd = -1;
}

static bool want_opt(const struct eng_dump_opts *opts, size_t end)
{
	return opts && opts->sz >= end;
}

static int checkpoint_tree(pid_t pid, struct wc_sink *sink, const struct eng_dump_opts *opts,
			   bool leave_running, char ret_id[WC_ID_LEN + 1]);

int eng_checkpoint(pid_t pid, struct wc_sink *sink, const struct eng_dump_opts *opts,
		   char ret_id[WC_ID_LEN + 1])
{
	struct eng_dump_stats stats = {};
	struct eng_dump_ctx ctx = { .pid = pid, .proc_fd = -1, .mem_fd = -1, .stats = &stats };
	uint64_t t0 = now_ns(), t1, t_frozen;
	char id[WC_ID_LEN + 1];
	/* Fields beyond what the caller's struct holds (opts->sz) are unset. */
	bool leave_running = want_opt(opts, offsetof(struct eng_dump_opts, leave_running) +
					    sizeof(opts->leave_running)) && opts->leave_running;
	/* tcp: established connections captured, locked until the release. */
	struct eng_dump_tcp tcp = {};
	struct eng_held **hold = want_opt(opts, offsetof(struct eng_dump_opts, hold) +
					  sizeof(opts->hold)) ? opts->hold : NULL;
	int r;

	if (opts && opts->sz < sizeof(size_t))
		return -EINVAL;
	if (pid <= 0)
		return err_set(EINVAL, "invalid pid %d", pid);
	err_clear();
	if (want_opt(opts, offsetof(struct eng_dump_opts, tree) + sizeof(opts->tree)) && opts->tree) {
		if (hold)
			return err_set(EINVAL, "a process tree cannot be held frozen");
		return checkpoint_tree(pid, sink, opts, leave_running, ret_id);
	}
	if (want_opt(opts, offsetof(struct eng_dump_opts, tcp_established) +
			   sizeof(opts->tcp_established)) && opts->tcp_established)
		ctx.tcp = &tcp;
	ctx.no_anon_pages = want_opt(opts, offsetof(struct eng_dump_opts, no_anon_pages) +
					   sizeof(opts->no_anon_pages)) && opts->no_anon_pages;
	r = ctx_open(&ctx, pid);
	if (r < 0)
		return r;
	eng_dump_files_init(&ctx, opts);

	/* 1. freeze */
	r = eng_dump_freeze(pid, &ctx.threads);
	if (r < 0)
		goto out_close;
	t_frozen = t1 = now_ns();
	stats.freeze_ns = t1 - t0;
	stats.nr_threads = ctx.threads.nr;

	/* 2.-4. inspect, collect, memory */
	r = image_new(&ctx.image);
	if (r < 0)
		goto fail;
	r = image_add_proc(ctx.image, &ctx.proc);
	if (r < 0)
		goto fail;
	r = dump_process(&ctx, sink);
	if (r >= 0)	/* ns: namespaces of its own (ns.c) */
		r = eng_dump_ns(ctx.image, &pid);
	/* unix: every unix socket's peer is in the image; its refusals are
	 * listed (opts->report) with the others, dry run too. */
	if (r >= 0) {
		r = eng_dump_unix_resolve(ctx.image, opts);
	} else if (r == -EOPNOTSUPP) {
		char first[512];

		snprintf(first, sizeof(first), "%s", err_detail() ? err_detail() : "");
		eng_dump_unix_resolve(ctx.image, opts);
		err_set(EOPNOTSUPP, "%s", first);
	}
	if (r < 0)
		goto fail;
	if (ctx.files.dry_run) {	/* files: inspected, nothing to store */
		eng_dump_tcp_unlock(&tcp);	/* our socket copies */
		eng_dump_thaw(&ctx.threads);
		goto out;
	}
	t1 = now_ns();

	/* 5. commit */
	r = commit_image(&ctx, sink, id);
	if (r < 0)
		goto fail;
	stats.commit_ns = now_ns() - t1;
	t1 = now_ns();

	/* 6. release: the snapshot exists, whatever happens now. */
	if (hold) {
		/* Frozen, connections locked, until eng_held_release(). */
		r = eng_dump_hold(&ctx.threads, &tcp, hold);
		if (r < 0)
			goto fail;
	} else if (leave_running) {
		eng_dump_tcp_unlock(&tcp);
		eng_dump_thaw(&ctx.threads);
	} else {
		r = eng_dump_kill(&ctx.threads, KILL_TIMEOUT_MS);
		if (r == -ETIMEDOUT)
			stats.zombie = true;
		eng_dump_tcp_drop(&tcp);
	}
	stats.release_ns = now_ns() - t1;
	stats.frozen_ns = now_ns() - t_frozen;
	memcpy(ret_id, id, sizeof(id));
	if (want_opt(opts, offsetof(struct eng_dump_opts, stats) + sizeof(opts->stats)) &&
	    opts->stats)
		*opts->stats = stats;
	r = 0;
	goto out;

fail:
	eng_dump_tcp_unlock(&tcp);	/* before the thaw: never run in repair mode */
	eng_dump_thaw(&ctx.threads);
out:
	eng_dump_threads_fini(&ctx.threads);
	if (ctx.image)
		eng_image__free_unpacked(ctx.image, NULL);
out_close:
	ctx_fini(&ctx);
	return r;
}

/* ------------------------------------------------------------------ trees */

#ifndef SYS_kcmp
#define SYS_kcmp	312
#endif
#define KCMP_FILE	0
#define KCMP_VM		1
#define KCMP_FILES	2
#define KCMP_FS		3

/*
 * What a child shares with its parent beyond open files, found with kcmp
 * while everything is frozen, before anything is collected: its memory
 * (CLONE_VM without CLONE_THREAD: a vfork child) is refused; its fs struct
 * (CLONE_FS) and its descriptor table (CLONE_FILES) are recorded.
 */
static int tree_check_sharing(const struct eng_dump_tree *tr, bool *ret_fs, bool *ret_files)
{
	for (size_t i = 1; i < tr->nr; i++) {
		pid_t c = tr->v[i].pid, p = tr->v[i].ppid;

		ret_fs[i] = ret_files[i] = false;
		if (tr->v[i].zombie)
			continue;
		if (syscall(SYS_kcmp, p, c, KCMP_VM, 0, 0) == 0)
			return err_set(EOPNOTSUPP, "process %d shares its memory with its parent %d "
				       "(vfork or CLONE_VM): not supported", c, p);
		ret_files[i] = syscall(SYS_kcmp, p, c, KCMP_FILES, 0, 0) == 0;
		ret_fs[i] = syscall(SYS_kcmp, p, c, KCMP_FS, 0, 0) == 0;
	}
	return 0;
}

/*
 * After collection: a child sharing its parent's descriptor table was
 * dumped from the same table, so its fds must be its parent's, number for
 * number, kind for kind, description for description (eng_fd.obj); restore
 * prepares them once, in the parent.
 */
static int tree_check_files(const EngImage *img)
{
	for (size_t i = 1; i < img->n_procs; i++) {
		const EngProcess *c = img->procs[i], *pp = NULL;

		if (!c->shares_files)
			continue;
		for (size_t k = 0; k < i; k++)
			if (img->procs[k]->pid == c->ppid)
				pp = img->procs[k];
		if (!pp || pp->n_fds != c->n_fds)
			return err_set(EIO, "process %u shares the descriptor table of its parent "
				       "%u but their fds differ", c->pid, c->ppid);
		for (size_t f = 0; f < c->n_fds; f++) {
			const EngFd *a = pp->fds[f], *b = c->fds[f];

			if (a->fd != b->fd || a->kind != b->kind || a->has_obj != b->has_obj ||
			    a->obj != b->obj)
				return err_set(EIO, "process %u shares the descriptor table of "
					       "its parent %u but their fd %u differs", c->pid,
					       c->ppid, b->fd);
		}
	}
	return 0;
}

/* A zombie of the tree: ids and wait status, nothing else to save. */
static int dump_zombie(const struct eng_dump_tree_proc *tp, EngProcess *proc)
{
	_cleanup_free_ char *stat = NULL, *status = NULL;
	struct eng_proc_stat st;
	struct eng_proc_status ps;
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/stat", tp->pid);
	r = read_file(path, &stat, NULL);
	if (r < 0)
		return err_wrap(r, "cannot read %s", path);
	r = eng_dump_parse_stat(stat, &st);
	if (r < 0)
		return err_set(r, "cannot parse %s", path);
	proc->pid = tp->pid;
	proc->has_pgid = proc->has_sid = true;
	proc->pgid = st.pgrp;
	proc->sid = st.session;
	snprintf(path, sizeof(path), "/proc/%d/status", tp->pid);
	if (read_file(path, &status, NULL) == 0 && eng_dump_parse_status(status, &ps) == 0 &&
	    ps.ns_depth > 0) {
		proc->pid = ps.ns_pid;
		proc->pgid = ps.ns_pgid;
		proc->sid = ps.ns_sid;
	}
	proc->has_zombie = proc->zombie = true;
	proc->has_exit_status = true;
	proc->exit_status = tp->exit_status;
	proc->has_exit_signal = true;
	proc->exit_signal = st.exit_signal > 0 ? (uint32_t)st.exit_signal : SIGCHLD;
	proc->cwd = strdup("/");
	proc->root = strdup("/");
	if (!proc->cwd || !proc->root)
		return -ENOMEM;
	snprintf(path, sizeof(path), "/proc/%d/comm", tp->pid);
	if (read_file(path, &proc->comm, NULL) == 0)
		proc->comm[strcspn(proc->comm, "\n")] = '\0';
	return 0;
}

/*
 * Sessions and process groups restore can build again (engine/restore/
 * tree.c, eng_restore_tree_check: the same rules): refused here, before
 * the tree is killed, rather than at restore.
 */
static int tree_check_ids(const EngImage *img)
{
	const EngProcess *root = img->procs[0];

	for (size_t k = 1; k < img->n_procs; k++) {
		const EngProcess *p = img->procs[k], *pp = NULL, *leader = NULL;

		for (size_t j = 0; j < k; j++) {
			if (img->procs[j]->pid == p->ppid)
				pp = img->procs[j];
		}
		for (size_t j = 0; j < img->n_procs; j++)
			if (img->procs[j]->pid == p->pgid)
				leader = img->procs[j];
		if (!pp)
			continue;
		if (p->sid != p->pid && p->sid != pp->sid)
			return err_set(EOPNOTSUPP, "process %u is in session %u, neither its own nor "
				       "its parent's (%u): not supported", p->pid, p->sid, pp->sid);
		if (p->pgid != p->pid && p->pgid != pp->pgid && p->pgid != root->pgid &&
		    (!leader || leader->sid != p->sid))
			return err_set(EOPNOTSUPP, "process %u is in process group %u whose leader "
				       "is not in the tree: not supported", p->pid, p->pgid);
	}
	return 0;
}

/*
 * Open file descriptions shared between processes (inherited across fork:
 * a file opened before fork, a listening socket): every fd of the tree that
 * is the same description as one seen before (same inode, then kcmp
 * KCMP_FILE) gets that one's eng_fd.obj, so that restore creates it once.
 */
struct obj_rep {
	pid_t pid;			/* our namespace */
	int fd;
	dev_t dev;
	ino_t ino;
	uint64_t obj;
};

static int tree_objects(EngImage *img, const pid_t *host)
{
	_cleanup_free_ struct obj_rep *reps = NULL;
	size_t nr = 0, cap = 0;

	for (size_t k = 0; k < img->n_procs; k++) {
		EngProcess *p = img->procs[k];

		for (size_t i = 0; i < p->n_fds; i++) {
			EngFd *f = p->fds[i];
			char path[64];
			struct stat st;
			size_t j;

			snprintf(path, sizeof(path), "/proc/%d/fd/%u", host[k], f->fd);
			if (stat(path, &st) < 0)
				return err_wrap(-errno, "cannot stat %s", path);
			for (j = 0; j < nr; j++) {
				if (reps[j].dev != st.st_dev || reps[j].ino != st.st_ino)
					continue;
				if (syscall(SYS_kcmp, reps[j].pid, host[k], KCMP_FILE, reps[j].fd,
					    f->fd) == 0)
					break;
			}
			if (j < nr) {
				f->has_obj = true;
				f->obj = reps[j].obj;
				continue;
			}
			if (nr == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct obj_rep *nv = realloc(reps, nc * sizeof(*nv));

				if (!nv)
					return -ENOMEM;
				reps = nv;
				cap = nc;
			}
			if (!f->has_obj) {
				f->has_obj = true;
				f->obj = (uint64_t)p->pid << 32 | f->fd;
			}
			reps[nr++] = (struct obj_rep){
				.pid = host[k], .fd = (int)f->fd, .dev = st.st_dev, .ino = st.st_ino,
				.obj = f->obj,
			};
		}
	}
	return 0;
}

static int checkpoint_tree(pid_t pid, struct wc_sink *sink, const struct eng_dump_opts *opts,
			   bool leave_running, char ret_id[WC_ID_LEN + 1])
{
	struct eng_dump_stats stats = {};
	struct eng_dump_tree tr = {};
	struct eng_dump_ctx root = { .pid = pid, .proc_fd = -1, .mem_fd = -1 };
	struct eng_dump_tcp tcp = {};	/* tcp: see eng_checkpoint() */
	bool tcp_est = want_opt(opts, offsetof(struct eng_dump_opts, tcp_established) +
				      sizeof(opts->tcp_established)) && opts->tcp_established;
	/* files: --dry-run inspects every process, reporting each refusal. */
	bool dry_run = want_opt(opts, offsetof(struct eng_dump_opts, dry_run) +
				      sizeof(opts->dry_run)) && opts->dry_run;
	unsigned refused = 0;
	_cleanup_free_ pid_t *host = NULL;
	_cleanup_free_ bool *shares_fs = NULL, *shares_files = NULL;
	uint64_t t0 = now_ns(), t1, t_frozen;
	char id[WC_ID_LEN + 1];
	size_t zombies = 0;
	int r;

	/* 1. freeze the whole tree */
	r = eng_dump_freeze_tree(pid, &tr);
	if (r < 0)
		return r;
	t_frozen = t1 = now_ns();
	stats.freeze_ns = t1 - t0;

	/* 2.-4. each process */
	host = calloc(tr.nr, sizeof(*host));
	if (!host) {
		r = -ENOMEM;
		goto fail;
	}
	shares_fs = calloc(tr.nr, sizeof(*shares_fs));
	shares_files = calloc(tr.nr, sizeof(*shares_files));
	if (!shares_fs || !shares_files) {
		r = -ENOMEM;
		goto fail;
	}
	r = tree_check_sharing(&tr, shares_fs, shares_files);
	if (r < 0)
		goto fail;
	r = image_new(&root.image);
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < tr.nr; i++) {
		struct eng_dump_tree_proc *tp = &tr.v[i];
		struct eng_dump_stats ps = { .nr_areas = stats.nr_areas };
		struct eng_dump_ctx ctx = {
			.pid = tp->pid, .proc_fd = -1, .mem_fd = -1, .stats = &ps,
			.image = root.image, .threads = tp->threads,
			.area_base = (uint32_t)stats.nr_areas, .tree = true,
			.tcp = tcp_est ? &tcp : NULL,
		};

		host[i] = tp->pid;
		r = image_add_proc(root.image, &ctx.proc);
		if (r < 0)
			goto fail;
		if (tp->zombie) {
			r = dump_zombie(tp, ctx.proc);
			if (r < 0)
				goto fail;
			continue;
		}
		eng_dump_files_init(&ctx, opts);
		/* tree: once a process is refused, the others are only inspected,
		 * so that every refusal of the tree is listed in one pass. */
		if (refused)
			ctx.files.dry_run = true;
		r = ctx_open(&ctx, tp->pid);
		if (r >= 0)
			r = dump_process(&ctx, sink);
		tp->threads = ctx.threads;
		ctx_fini(&ctx);
		if (r == -EOPNOTSUPP || r == -EFBIG) {
			refused++;	/* files: reported; inspect the others too */
			continue;
		}
		if (r >= 0 && refused && !dry_run)
			continue;	/* inspected only */
		if (r < 0) {
			r = err_wrap(r, "process %d of the tree of %d", tp->pid, pid);
			goto fail;
		}
		ctx.proc->has_shares_fs = shares_fs[i];
		ctx.proc->shares_fs = shares_fs[i];
		ctx.proc->has_shares_files = shares_files[i];
		ctx.proc->shares_files = shares_files[i];
		ctx.proc->has_exit_signal = true;
		ctx.proc->exit_signal = ctx.stat.exit_signal > 0 ? (uint32_t)ctx.stat.exit_signal
								 : SIGCHLD;
		stats.nr_threads += tp->threads.nr;
		stats.nr_vmas += ps.nr_vmas;
		stats.nr_fds += ps.nr_fds;
		stats.nr_areas = ps.nr_areas;
		stats.pages_read += ps.pages_read;
		stats.collect_ns += ps.collect_ns;
		stats.memory_ns += ps.memory_ns;
		stats.remote_retries += ps.remote_retries;
	}
	/* Parents by their pid in the image. */
	for (size_t i = 0; i < tr.nr; i++) {
		EngProcess *p = root.image->procs[i];

		p->has_ppid = true;
		p->ppid = 0;
		for (size_t k = 0; k < i; k++)
			if (tr.v[k].pid == tr.v[i].ppid)
				p->ppid = root.image->procs[k]->pid;
	}
	r = tree_check_ids(root.image);
	if (r >= 0)
		r = tree_objects(root.image, host);
	if (r >= 0)	/* after tree_objects: compares eng_fd.obj */
		r = tree_check_files(root.image);
	if (r >= 0)	/* ns: namespaces of its own (ns.c) */
		r = eng_dump_ns(root.image, host);
	if (r >= 0)	/* files: pidfds of processes of the tree */
		r = eng_dump_pidfds_resolve(root.image, host, tr.nr, opts);
	if (r >= 0)	/* fdkinds: every pipe's ends are in the image */
		r = eng_dump_pipes_check_image(root.image);
	if (r >= 0)	/* unix: every unix socket's peer is in the image */
		r = eng_dump_unix_resolve(root.image, opts);
	if (dry_run) {	/* files: inspected only, nothing stored */
		if (r >= 0 && refused)
			r = err_set(EOPNOTSUPP, "%u process(es) of the tree of %d cannot be "
				    "checkpointed", refused, pid);
		eng_dump_tcp_unlock(&tcp);
		eng_dump_thaw_tree(&tr);
		goto out;
	}
	if (refused) {
		r = err_set(EOPNOTSUPP, "%u process(es) of the tree of %d cannot be checkpointed",
			    refused, pid);
		goto fail;
	}
	if (r < 0)
		goto fail;
	t1 = now_ns();

	/* 5. commit */
	root.proc = root.image->procs[0];
	root.stats = &stats;
	r = commit_image(&root, sink, id);
	if (r < 0)
		goto fail;
	stats.commit_ns = now_ns() - t1;
	t1 = now_ns();

	/* 6. release */
	if (leave_running) {
		eng_dump_tcp_unlock(&tcp);
		eng_dump_thaw_tree(&tr);
	} else if (eng_dump_kill_tree(&tr, KILL_TIMEOUT_MS, &zombies) == -ETIMEDOUT) {
		stats.zombie = true;
	}
	eng_dump_tcp_drop(&tcp);	/* killed: silently; unlocked: nothing left */
	stats.release_ns = now_ns() - t1;
	stats.frozen_ns = now_ns() - t_frozen;
	memcpy(ret_id, id, sizeof(id));
	if (want_opt(opts, offsetof(struct eng_dump_opts, stats) + sizeof(opts->stats)) &&
	    opts->stats)
		*opts->stats = stats;
	r = 0;
	goto out;
fail:
	eng_dump_tcp_unlock(&tcp);
	eng_dump_thaw_tree(&tr);
out:
	eng_dump_tree_fini(&tr);
	if (root.image)
		eng_image__free_unpacked(root.image, NULL);
	return r;
}
