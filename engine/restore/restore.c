// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * eng_restore: validate a snapshot, create the process with its pid, let
 * the child build its memory and the restorer re-create its threads, then
 * resume every thread (resume.c). See docs/engine-restore.md.
 *
 *   parent (warmfork)          child (pid = saved pid)        restorer (blob)
 *   validate everything
 *   clone3(set_tid) ---------> premap + fill + fds + state
 *                              jump ------------------------> unmap old, mremap areas,
 *                                                             vdso, mm, threads, park
 *   read report <------------------------------------------- status pipe
 *   ptrace: unmap region, registers, xsave, mask, detach
 *
 * With new_pidns the parent's child is a minimal init (pid 1 of a new pid
 * namespace) which creates the process with set_tid inside it, reaps, and
 * forwards signals; it exits with the restored process's status.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/sched.h>
#include <xxhash.h>

#include "common/compiler.h"
#include "common/elf.h"
#include "common/err.h"
#include "common/util.h"
#include "restore.h"

#ifndef CLONE_PARENT
#define CLONE_PARENT 0x00008000
#endif
#ifndef CLONE_NEWPID
#define CLONE_NEWPID 0x20000000
#endif

struct clone_args_v2 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size, cgroup;
};

static pid_t clone3_with_tid(uint64_t flags, pid_t tid)
{
	/* With CLONE_PARENT the exit signal is the caller's own (clone3 wants 0). */
	struct clone_args_v2 ca = {
		.flags = flags, .exit_signal = (flags & CLONE_PARENT) ? 0 : SIGCHLD,
	};
	pid_t want = tid;

	if (tid > 0) {
		ca.set_tid = (uint64_t)(uintptr_t)&want;
		ca.set_tid_size = 1;
	}
	return (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
}

/*
 * Threads of this process that run user code. io_uring's workers
 * (iou-wrk-*, iou-sqp-*) are threads of the group too, but run only in the
 * kernel and hold no libc lock: the store's rings have them.
 */
static int user_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	int n = 0;

	if (!d)
		return 1;
	while ((de = readdir(d))) {
		char path[320], comm[32] = "";
		int fd;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t len = read(fd, comm, sizeof(comm) - 1);

			comm[len > 0 ? len : 0] = '\0';
			close(fd);
		}
		if (strncmp(comm, "iou-", 4) != 0)
			n++;
	}
	closedir(d);
	return n;
}

/*
 * Create the new process (returns 0 in it, its pid in the caller).
 *
 * A raw clone3 copies only the calling thread: in a multi-threaded caller
 * another thread may hold a libc lock (malloc) that the child would wait for
 * forever. Such a caller first fork()s (glibc makes the copy consistent), and
 * that single-threaded helper clone3s the process with CLONE_PARENT, so that
 * it is still the caller's child, reports its pid and exits. CLONE_PARENT
 * excludes CLONE_NEWPID: the helper unshares the pid namespace instead, so
 * that its next child is the namespace's init.
 */
static pid_t spawn(uint64_t flags, pid_t tid)
{
	int p[2], v = 0;
	pid_t h, c;
	ssize_t n;

	if (user_threads() <= 1)
		return clone3_with_tid(flags, tid);
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	h = fork();
	if (h < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (h == 0) {
		close(p[0]);
		if ((flags & CLONE_NEWPID) && syscall(SYS_unshare, CLONE_NEWPID) < 0) {
			v = -errno;
			(void)!write(p[1], &v, sizeof(v));
			_exit(0);
		}
		c = clone3_with_tid((flags & ~(uint64_t)CLONE_NEWPID) | CLONE_PARENT, tid);
		if (c == 0) {
			close(p[1]);
			return 0;
		}
		v = c < 0 ? -errno : c;
		(void)!write(p[1], &v, sizeof(v));
		_exit(0);
	}
	close(p[1]);
	do
		n = read(p[0], &v, sizeof(v));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	while (waitpid(h, NULL, 0) < 0 && errno == EINTR)
		;
	if (n != sizeof(v)) {
		errno = EIO;
		return -1;
	}
	if (v < 0) {
		errno = -v;
		return -1;
	}
	return v;
}

/* ------------------------------------------------------------ validation */

static int check_keys(struct wc_store *store, struct wc_snapshot *snap)
{
	size_t n = 0, na = wc_snapshot_nr_areas(snap), k = 0;
	_cleanup_free_ struct wc_key *keys = NULL;
	_cleanup_free_ uint8_t *lack = NULL;
	int r;

	for (size_t i = 0; i < na; i++)
		n += wc_snapshot_area(snap, i)->nr_data;
	if (!n)
		return 0;
	keys = malloc(n * sizeof(*keys));
	lack = calloc((n + 7) / 8, 1);
	if (!keys || !lack)
		return -ENOMEM;
	for (size_t i = 0; i < na; i++) {
		const struct wc_area *a = wc_snapshot_area(snap, i);

		memcpy(keys + k, a->keys, a->nr_data * sizeof(*keys));
		k += a->nr_data;
	}
	r = wc_store_lacks(store, keys, n, lack);
	if (r < 0)
		return err_wrap(r, "cannot look the pages up in the store");
	if (r > 0) {
		size_t first = 0;

		while (!(lack[first / 8] & (1u << (first % 8))))
			first++;
		return err_set(EBADMSG, "%d of its %zu pages are missing from the store "
			       "(first: key %016" PRIx64 "%016" PRIx64 ")", r, n,
			       keys[first].hi, keys[first].lo);
	}
	return 0;
}

static int check_files(const EngProcess *p)
{
	_cleanup_free_ bool *strict = calloc(p->n_files + 1, sizeof(bool));

	if (!strict)
		return -ENOMEM;
	/* Mapped files and files open for reading must be unchanged; a file
	 * the process writes to (a log, its stdout) may have grown. */
	for (size_t i = 0; i < p->n_vmas; i++)
		if (p->vmas[i]->has_file && p->vmas[i]->file < p->n_files)
			strict[p->vmas[i]->file] = true;
	for (size_t i = 0; i < p->n_fds; i++)
		if (p->fds[i]->has_file && p->fds[i]->file < p->n_files &&
		    (p->fds[i]->flags & O_ACCMODE) == O_RDONLY)
			strict[p->fds[i]->file] = true;
	if (p->mm && p->mm->has_exe_file && p->mm->exe_file < p->n_files)
		strict[p->mm->exe_file] = true;

	for (size_t i = 0; i < p->n_files; i++) {
		const EngFileId *f = p->files[i];
		bool bid = strict[i] && f->has_build_id && f->build_id.len;
		_cleanup_close_ int fd = -1;
		struct stat st;

		/* An ELF file is opened once, for its attributes and build-id. */
		if (bid)
			fd = open(f->path, O_RDONLY | O_CLOEXEC);
		if (bid ? fd < 0 || fstat(fd, &st) < 0 : stat(f->path, &st) < 0)
			return err_set(errno == ENOENT ? ESTALE : errno, "file \"%s\": %m", f->path);
		if (!strict[i])
			continue;
		if (f->has_size && (uint64_t)st.st_size != f->size)
			return err_set(ESTALE, "file \"%s\" changed since the checkpoint (size %" PRIu64
				       " instead of %" PRIu64 ")", f->path, (uint64_t)st.st_size, f->size);
		if (f->has_mtime_ns &&
		    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != f->mtime_ns)
			return err_set(ESTALE, "file \"%s\" changed since the checkpoint (mtime)",
				       f->path);
		if (bid) {
			uint8_t id[ELF_BUILD_ID_MAX];
			int n = elf_build_id_fd(fd, id, sizeof(id));

			if (n < 0)
				return err_set(-n, "file \"%s\": cannot read its build-id: %s", f->path,
					       strerror(-n));
			if ((size_t)n != f->build_id.len || memcmp(id, f->build_id.data, n))
				return err_set(ESTALE, "file \"%s\" has another ELF build-id than at "
					       "the checkpoint", f->path);
		}
	}
	return eng_restore_fds_validate(p);	/* fdkinds: FIFOs, inotify paths, pipe sizes */
}

static void cpuid_count(uint32_t leaf, uint32_t sub, uint32_t *a, uint32_t *b, uint32_t *c,
			uint32_t *d)
{
	asm volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}

static int check_cpu(const EngImage *img, const EngProcess *p)
{
	uint32_t a, b, c, d, lo, hi;
	uint64_t xcr0;

	cpuid_count(1, 0, &a, &b, &c, &d);
	if (!(c & (1u << 27)))	/* OSXSAVE */
		return err_set(EXDEV, "this CPU/kernel does not enable XSAVE");
	asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	xcr0 = lo | (uint64_t)hi << 32;
	cpuid_count(0xd, 0, &a, &b, &c, &d);
	if (img->has_xfeatures_mask && (img->xfeatures_mask & ~xcr0))
		return err_set(EXDEV, "the CPU lacks xsave features the process used (saved XCR0 "
			       "0x%" PRIx64 ", here 0x%" PRIx64 ")", img->xfeatures_mask, xcr0);
	for (size_t i = 0; i < p->n_threads; i++) {
		const EngThread *t = p->threads[i];

		if (t->has_xfeatures && (t->xfeatures & ~xcr0))
			return err_set(EXDEV, "thread %u uses xsave features 0x%" PRIx64 " this CPU "
				       "does not enable (0x%" PRIx64 ")", t->tid, t->xfeatures, xcr0);
		if (t->xsave.len != b)
			return err_set(EXDEV, "thread %u: xsave area of %zu bytes, this CPU uses %u",
				       t->tid, t->xsave.len, b);
	}
	return 0;
}

static int check_vdso(const EngImage *img, const EngProcess *p)
{
	_cleanup_free_ char *maps = NULL;
	_cleanup_free_ struct eng_range *r = NULL;
	struct eng_vdso_block vd;
	size_t nr;
	int64_t delta;
	int ret;

	ret = read_file("/proc/self/maps", &maps, NULL);
	if (ret < 0)
		return err_wrap(ret, "cannot read /proc/self/maps");
	ret = eng_restore_parse_maps(maps, &r, &nr, &vd);
	if (ret < 0)
		return ret;
	ret = eng_restore_vdso_delta(p, &vd, &delta);
	if (ret == -ENOENT)
		return 0;
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < vd.nr; i++) {
		if (vd.kind[i] != ENG_VMA_KIND__VMA_VDSO)
			continue;
		uint64_t len = vd.vma[i].end - vd.vma[i].start;
		XXH128_canonical_t can;

		if (img->has_vdso_size && img->vdso_size != len)
			return err_set(EXDEV, "this kernel's vdso (%" PRIu64 " bytes) differs from "
				       "the saved one (%" PRIu64 " bytes)", len, img->vdso_size);
		XXH128_canonicalFromHash(&can, XXH3_128bits((const void *)vd.vma[i].start, len));
		if (img->has_vdso_hash && (img->vdso_hash.len != sizeof(can) ||
					   memcmp(img->vdso_hash.data, &can, sizeof(can))))
			return err_set(EXDEV, "this kernel's vdso differs from the saved one "
				       "(restore needs the kernel the process ran on)");
	}
	return 0;
}

static int check_pids(const EngProcess *p, bool new_pidns)
{
	_cleanup_free_ char *pm = NULL;
	long pid_max = 32768;

	if (read_file("/proc/sys/kernel/pid_max", &pm, NULL) == 0)
		pid_max = strtol(pm, NULL, 10);
	for (size_t i = 0; i < p->n_threads; i++) {
		uint32_t tid = p->threads[i]->tid;

		if (tid == 0 || tid >= (uint32_t)pid_max)
			return err_set(EINVAL, "tid %u is not below pid_max (%ld)", tid, pid_max);
		if (new_pidns)
			continue;
		if (kill((pid_t)tid, 0) == 0 || errno != ESRCH)
			return err_set(EEXIST, "%s %u is taken (restore with --pidns=new to run "
				       "it in a new pid namespace)", i == 0 ? "pid" : "tid", tid);
	}
	if (p->n_threads == 0 || p->threads[0]->tid != p->pid)
		return err_set(EBADMSG, "the first thread is not the leader %u", p->pid);
	return 0;
}

static int load_image(struct wc_snapshot *snap, EngImage **ret)
{
	const void *data;
	size_t len;
	EngImage *img;
	int r;

	r = wc_snapshot_blob(snap, ENG_IMAGE_BLOB, &data, &len);
	if (r < 0)
		return err_set(r == -ENOENT ? EBADMSG : -r, "no process image (blob \"%s\") in it",
			       ENG_IMAGE_BLOB);
	img = eng_image__unpack(NULL, len, data);
	if (!img)
		return err_set(EBADMSG, "its process image does not parse");
	if (img->version != ENG_IMAGE_VERSION || img->n_procs < 1 || !img->procs[0]->creds ||
	    !img->procs[0]->mm) {
		eng_image__free_unpacked(img, NULL);
		return err_set(EBADMSG, "its process image is of an unsupported version or shape");
	}
	if (img->n_procs > 1) {
		int rt = eng_restore_tree_check(img);

		if (rt < 0) {
			eng_image__free_unpacked(img, NULL);
			return rt;
		}
	}
	*ret = img;
	return 0;
}

/* ------------------------------------------------------------ processes */

static _noreturn_ void run_child(struct eng_rst_ctx *ctx)
{
	int r = eng_restore_ns_enter(ctx->ns);	/* ns: first thing (ns.c) */

	r = r < 0 ? r : ctx->tree ? eng_restore_tree_start(ctx) : 0;

	if (r >= 0)
		r = eng_restore_child(ctx);

	eng_restore_report_fail(ctx->status_fd, r, err_str(r));
	_exit(1);
}

static volatile pid_t init_target;

static void init_forward(int sig)
{
	if (init_target > 0)
		kill(init_target, sig);
}

/* pid 1 of the new namespace: create the process, reap, forward, exit like it. */
static _noreturn_ void run_init(struct eng_rst_ctx *ctx)
{
	static const int fwd[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
	struct sigaction sa = { .sa_handler = init_forward };
	sigset_t all, old;
	pid_t child;
	int st;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	if (eng_restore_ns_enter(ctx->ns) < 0)	/* ns: its children inherit them */
		run_child(ctx);	/* reports the failure */
	child = clone3_with_tid(0, (pid_t)ctx->proc->pid);
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		run_child(ctx);
	}
	if (child < 0) {
		int e = errno;

		eng_restore_report_fail(ctx->status_fd, -e,
					err_str(err_set(e, "cannot create pid %u in the new pid "
						     "namespace: %s", ctx->proc->pid, strerror(e))));
		_exit(1);
	}
	/* Hold none of the caller's descriptors: a detached namespace must not
	 * keep the caller's pipes open. */
	{
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null >= 0) {
			for (int fd = 0; fd < 3; fd++)
				dup2(null, fd);
		}
		syscall(SYS_close_range, 3u, ~0u, 0u);
	}
	init_target = child;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < ARRAY_SIZE(fwd); i++)
		sigaction(fwd[i], &sa, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	for (;;) {
		pid_t w = waitpid(-1, &st, __WALL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			_exit(127);
		if (w != child)
			continue;
		if (WIFEXITED(st))
			_exit(WEXITSTATUS(st));
		if (WIFSIGNALED(st))
			_exit(128 + WTERMSIG(st));
	}
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

static void kill_and_reap(pid_t pid)
{
	int st;

	kill(pid, SIGKILL);
	while (waitpid(pid, &st, __WALL) < 0 && errno == EINTR)
		;
}

static const char *step_name(uint32_t step)
{
	static const char *const names[RST_STEP__COUNT] = {
		[RST_STEP_CHECK] = "bad restorer arguments",
		[RST_STEP_UNMAP] = "unmapping the old address space",
		[RST_STEP_VDSO] = "moving the vdso",
		[RST_STEP_MOVE] = "moving an area to its address",
		[RST_STEP_PROTECT] = "protecting an area",
		[RST_STEP_MM] = "PR_SET_MM_MAP",
		[RST_STEP_RLIMIT] = "setting a resource limit",
		[RST_STEP_ITIMER] = "setting an interval timer",
		[RST_STEP_CLONE] = "creating a thread",
		[RST_STEP_THREAD] = "restoring per-thread state",
		[RST_STEP_SIGQUEUE] = "re-queueing a pending signal",
		[RST_STEP_CREDS] = "restoring credentials",
		[RST_STEP_SPAWN] = "spawn: creating an instance",
	};
	return step < RST_STEP__COUNT && names[step] ? names[step] : "unknown step";
}

static const char *sub_name(uint32_t sub)
{
	switch (sub) {
	case RST_SUB_ALTSTACK: return "sigaltstack";
	case RST_SUB_ROBUST: return "robust list";
	case RST_SUB_TIDADDR: return "clear_child_tid";
	case RST_SUB_RSEQ: return "rseq";
	case RST_SUB_NAME: return "name";
	case RST_SUB_SCHED: return "scheduling policy";
	case RST_SUB_NICE: return "nice";
	default: return "";
	}
}

int eng_restore_report_error(const EngProcess *p, const struct rst_report *rep)
{
	int err = rep->err < 0 ? -rep->err : EIO;
	char detail[sizeof(rep->detail) + 1];

	if (rep->step == RST_STEP_CHILD) {
		memcpy(detail, rep->detail, sizeof(rep->detail));
		detail[sizeof(rep->detail)] = 0;
		return err_set(err, "%s", detail);
	}
	if (rep->step == RST_STEP_MOVE || rep->step == RST_STEP_PROTECT) {
		/* arg is the index among the non-special areas. */
		uint64_t k = 0;

		for (size_t i = 0; i < p->n_vmas; i++) {
			const EngVma *v = p->vmas[i];

			if (v->kind >= ENG_VMA_KIND__VMA_VDSO)
				continue;
			if (k++ == rep->arg)
				return err_set(err, "restorer: %s (0x%" PRIx64 "-0x%" PRIx64 " %s): %s",
					       step_name(rep->step), v->start, v->end,
					       v->name ? v->name : "", strerror(err));
		}
	}
	return err_set(err, "restorer: %s%s%s (%" PRIu64 "): %s", step_name(rep->step),
		       rep->sub ? ": " : "", sub_name(rep->sub), rep->arg, strerror(err));
}

/* ------------------------------------------------------------------ trees */

/* Validation of every process of a tree (procs[0] already checked). */
static int check_tree(const EngImage *img, bool new_pidns)
{
	int r;

	for (size_t k = 1; k < img->n_procs; k++) {
		const EngProcess *p = img->procs[k];

		if (p->zombie) {
			if (!new_pidns && (kill((pid_t)p->pid, 0) == 0 || errno != ESRCH))
				return err_set(EEXIST, "pid %u (a zombie of the tree) is taken (restore "
					       "with --pidns=new to run it in a new pid namespace)",
					       p->pid);
			continue;
		}
		r = check_pids(p, new_pidns);
		if (r >= 0)
			r = check_cpu(img, p);
		if (r >= 0)
			r = check_vdso(img, p);
		if (r >= 0)
			r = check_files(p);
		if (r < 0)
			return err_wrap(r, "process %u", p->pid);
	}
	return 0;
}

/* Every process below @top (in our namespace), with its pid in its own
 * namespace: out_host[k] for img->procs[k]. */
static int tree_host_pids(pid_t top, const EngImage *img, pid_t *out_host)
{
	_cleanup_free_ pid_t *queue = malloc((img->n_procs + 2) * sizeof(pid_t));
	size_t head = 0, tail = 0, found = 0;

	if (!queue)
		return -ENOMEM;
	queue[tail++] = top;
	while (head < tail) {
		pid_t cur = queue[head++];
		_cleanup_free_ char *status = NULL;
		char path[96];
		pid_t inner;
		DIR *d;
		struct dirent *de;

		snprintf(path, sizeof(path), "/proc/%d/status", cur);
		if (read_file(path, &status, NULL) == 0 &&
		    eng_restore_parse_nspid(status, &inner) == 0) {
			for (size_t k = 0; k < img->n_procs; k++) {
				if (img->procs[k]->pid == (uint32_t)inner && !out_host[k]) {
					out_host[k] = cur;
					found++;
				}
			}
		}
		snprintf(path, sizeof(path), "/proc/%d/task", cur);
		d = opendir(path);
		if (!d)
			continue;
		while ((de = readdir(d))) {
			_cleanup_free_ char *kids = NULL;
			char cp[320], *q, *e;

			if (de->d_name[0] < '0' || de->d_name[0] > '9')
				continue;
			snprintf(cp, sizeof(cp), "/proc/%d/task/%s/children", cur, de->d_name);
			if (read_file(cp, &kids, NULL) < 0)
				continue;
			for (q = kids;; q = e) {
				long c = strtol(q, &e, 10);

				if (e == q || c <= 0)
					break;
				if (tail < img->n_procs + 2)
					queue[tail++] = (pid_t)c;
			}
		}
		closedir(d);
	}
	return found == img->n_procs ? 0 : -ESRCH;
}

/* Kill every process below @child (included) and reap what becomes ours. */
static void tree_kill_all(pid_t child, const EngImage *img, bool new_pidns)
{
	_cleanup_free_ pid_t *host = calloc(img->n_procs, sizeof(pid_t));
	uint64_t deadline = now_ns() + 5000000000ull;
	int st;

	if (host && !new_pidns) {
		tree_host_pids(child, img, host);
		for (size_t k = 0; k < img->n_procs; k++)
			if (host[k] > 0)
				kill(host[k], SIGKILL);
	}
	kill_and_reap(child);
	if (!host || new_pidns)
		return;	/* the namespace died with its init */
	/* Orphans come to us (a child subreaper meanwhile): reap them. */
	for (size_t k = 0; k < img->n_procs; k++) {
		if (host[k] <= 0 || host[k] == child)
			continue;
		while (waitpid(host[k], &st, __WALL | WNOHANG) == 0 && now_ns() < deadline)
			usleep(200);
	}
}

int eng_restore(struct wc_store *store, const char *snap_id, const struct eng_restore_opts *opts,
		struct eng_restored *ret)
{
	struct eng_restore_opts o = {};
	struct wc_snapshot *snap = NULL;
	EngImage *img = NULL;
	const EngProcess *p;
	struct eng_rst_ctx ctx = {};
	struct eng_rst_tree tree = {};
	struct eng_rst_ns ns = ENG_RST_NS_INIT;	/* ns.c */
	struct eng_rst_ttys ttys = {};		/* tty.c */
	_cleanup_free_ struct rst_report *reps = NULL;
	_cleanup_free_ pid_t *host = NULL;
	struct rst_report rep;
	uint64_t t0 = now_ns(), t_valid, t_spawn, t_ready, t_res;
	int pfd[2] = { -1, -1 }, r, *sock_fds = NULL, was_reaper = -1;
	pid_t child = -1, target = -1;
	size_t nr_live = 0, got = 0;
	bool is_tree = false;
	struct eng_postcopy *pc = NULL;	/* postcopy.c */
	int pc_sock = -1;
	ssize_t n;

	if (opts)
		memcpy(&o, opts, MIN(opts->sz ? opts->sz : sizeof(o), sizeof(o)));
	r = wc_snapshot_open(store, snap_id, &snap);
	if (r < 0)
		return err_wrap(r, "snapshot %s", snap_id);
	snap_id = wc_snapshot_id(snap);
	r = load_image(snap, &img);
	if (r < 0)
		goto out;
	p = img->procs[0];
	is_tree = img->n_procs > 1;
	r = check_pids(p, o.new_pidns);
	if (r < 0)
		goto out;
	r = check_cpu(img, p);
	if (r < 0)
		goto out;
	r = check_vdso(img, p);
	if (r < 0)
		goto out;
	r = check_files(p);
	if (r < 0)
		goto out;
	if (is_tree) {
		r = check_tree(img, o.new_pidns);
		if (r < 0)
			goto out;
	}
	r = check_keys(store, snap);
	if (r < 0)
		goto out;
	if (o.postcopy && o.postcopy_ret && !is_tree && !o.nr_lazy_areas) {
		r = eng_postcopy_start(store, snap, p, &pc, &pc_sock);
		if (r < 0)
			goto out;
	}
	for (size_t k = 0; k < img->n_procs; k++)
		nr_live += !img->procs[k]->zombie;
	reps = calloc(img->n_procs, sizeof(*reps));
	host = calloc(img->n_procs, sizeof(*host));
	if (!reps || !host) {
		r = -ENOMEM;
		goto out;
	}
	/* ns: the namespaces first; the sockets below are made in its netns. */
	r = eng_restore_ns_create(img, &ns);
	if (r >= 0)	/* ns: pseudo-terminals (tty.c) */
		r = eng_restore_tty_create(img, &o, &ttys);
	if (r < 0)
		goto out;
	/* Last: sockets take their addresses (sockets.c). */
	if (is_tree) {
		tree.img = img;
		r = eng_restore_tree_sockets_open(&tree);
		sock_fds = tree.sock_fds ? tree.sock_fds[0] : NULL;
	} else {
		r = eng_restore_sockets_open(p, &sock_fds);
	}
	eng_restore_ns_net_leave(&ns);
	if (r < 0)
		goto out;
	t_valid = now_ns();

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		r = err_set(errno, "pipe: %m");
		goto out;
	}
	ctx = (struct eng_rst_ctx){
		.store = store, .snap = snap, .img = img, .proc = p,
		.inherit_stdio = o.inherit_stdio, .inherit_session = o.inherit_session,
		.resume_signal = o.resume_signal,
		.status_fd = pfd[1],
		.sock_fds = sock_fds,
		.tree = is_tree ? &tree : NULL,
		.ns = &ns, .ttys = &ttys,
		.lazy_areas = o.nr_lazy_areas ? o.lazy_areas : NULL,
		.nr_lazy_areas = o.nr_lazy_areas, .lazy_sock = o.lazy_sock,
	};
	if (pc) {
		ctx.nr_lazy_areas = eng_postcopy_areas(pc, &ctx.lazy_areas);
		ctx.lazy_sock = pc_sock;
		ctx.postcopy = true;
	}
	/* A failed tree restore kills its processes: their orphans must come
	 * back to us to be reaped (pid 1 may not reap). */
	if (is_tree && !o.new_pidns && prctl(PR_GET_CHILD_SUBREAPER, &was_reaper) == 0 &&
	    !was_reaper)
		prctl(PR_SET_CHILD_SUBREAPER, 1);
	fflush(NULL);
	if (o.new_pidns) {
		child = spawn(CLONE_NEWPID, 0);
		if (child == 0) {
			close(pfd[0]);
			if (p->pid == 1)
				run_child(&ctx);
			run_init(&ctx);
		}
	} else {
		child = spawn(0, (pid_t)p->pid);
		if (child == 0) {
			close(pfd[0]);
			run_child(&ctx);
		}
	}
	if (child < 0) {
		r = err_set(errno == EEXIST ? EEXIST : errno, "cannot create %s: %m",
			    o.new_pidns ? "a new pid namespace" : "the process with its pid");
		goto out;
	}
	t_spawn = now_ns();
	close(pfd[1]);
	pfd[1] = -1;
	if (pc) {
		close(pc_sock);
		pc_sock = -1;
		r = eng_postcopy_run(pc);
		if (r < 0)
			goto out;
	}

	/* One report per live process (each writes it in one piece). */
	while (got < nr_live) {
		size_t k = 0;

		do
			n = read(pfd[0], &rep, sizeof(rep));
		while (n < 0 && errno == EINTR);
		if (n != (ssize_t)sizeof(rep)) {
			r = err_set(EIO, "%s died before reporting (%s)",
				    is_tree ? "a process of the tree" : "the new process",
				    n < 0 ? strerror(errno) : "no report");
			goto out;
		}
		if (is_tree) {
			for (k = 0; k < img->n_procs; k++)
				if (img->procs[k]->pid == rep.pid && !img->procs[k]->zombie)
					break;
			if (k == img->n_procs) {
				r = err_set(EPROTO, "a report from pid %u, not of the tree", rep.pid);
				goto out;
			}
		}
		if (rep.err) {
			r = eng_restore_report_error(img->procs[k], &rep);
			if (is_tree)
				r = err_wrap(r, "process %u", rep.pid);
			goto out;
		}
		if (reps[k].region_start) {
			r = err_set(EPROTO, "process %u reported twice", rep.pid);
			goto out;
		}
		reps[k] = rep;
		got++;
	}
	/* Each leader closes the pipe right after its report: wait for that
	 * (EOF), else the takeover could stop it before the close and leave the
	 * pipe open in the restored process. */
	{
		char c;

		do
			n = read(pfd[0], &c, 1);
		while (n < 0 && errno == EINTR);
		if (n != 0) {
			r = err_set(EPROTO, "the restorer kept its status pipe open");
			goto out;
		}
	}
	t_ready = now_ns();
	if (pc) {	/* postcopy.c: its pages verified before anything runs */
		r = eng_postcopy_ready(pc);
		if (r < 0)
			goto out;
	}
	target = child;
	if (is_tree && o.new_pidns) {
		r = tree_host_pids(child, img, host);
		if (r < 0) {
			r = err_set(ESRCH, "cannot find the restored processes in their namespace");
			goto out;
		}
		target = host[0];
	} else if (is_tree) {
		for (size_t k = 0; k < img->n_procs; k++)
			host[k] = (pid_t)img->procs[k]->pid;
	} else if (o.new_pidns && p->pid != 1) {
		target = first_child_of(child);
		if (target < 0) {
			r = err_set(ESRCH, "cannot find the restored process in its namespace");
			goto out;
		}
	}
	/* tcp: established connections leave repair mode (sockets.c); in a
	 * tree each belongs to one process (the dump refuses shared ones). */
	if (!is_tree)
		r = eng_restore_sockets_live(p, sock_fds);
	for (size_t k = 0; is_tree && r >= 0 && k < img->n_procs; k++)
		if (tree.sock_fds && tree.sock_fds[k])
			r = eng_restore_sockets_live(img->procs[k], tree.sock_fds[k]);
	if (r < 0)
		goto out;
	if (!is_tree) {
		r = o.leave_stopped ? eng_restore_resume_stopped(target, p, &reps[0])
				    : eng_restore_resume(target, p, &reps[0]);
		if (r < 0) {
			r = err_wrap(r, "resuming");
			goto out;
		}
	} else {
		/* Children first: the root, which the caller talks to, last. */
		for (size_t k = img->n_procs; k-- > 0;) {
			if (img->procs[k]->zombie)
				continue;
			r = eng_restore_resume(host[k], img->procs[k], &reps[k]);
			if (r < 0) {
				r = err_wrap(r, "resuming process %u", img->procs[k]->pid);
				goto out;
			}
		}
	}
	t_res = now_ns();
	if (o.stats) {
		struct eng_restore_stats st = {
			.validate_ns = t_valid - t0,
			.spawn_ns = t_spawn - t_valid,
			.ready_ns = t_ready - t_valid,
			.resume_ns = t_res - t_ready,
			.total_ns = t_res - t0,
		};

		for (size_t k = 0; k < img->n_procs; k++) {
			st.nr_threads += img->procs[k]->n_threads;
			st.nr_vmas += img->procs[k]->n_vmas;
			st.premap_ns = MAX(st.premap_ns, reps[k].premap_ns);
			st.fill_ns = MAX(st.fill_ns, reps[k].fill_ns);
			st.prepare_ns = MAX(st.prepare_ns, reps[k].prepare_ns);
		}
		*o.stats = st;
	}
	ret->pid = target;
	ret->ns_pid = (pid_t)p->pid;
	ret->child = child;
	child = -1;
	if (o.postcopy_ret) {
		*o.postcopy_ret = pc;
		pc = NULL;
	}
	if (o.pty_master)	/* ns: the relayed pty's master, the caller's now */
		*o.pty_master = eng_restore_tty_take_master(&ttys);
	r = 0;
out:
	/* The server first: closing its uffd frees a child waiting on it. */
	eng_postcopy_abort(pc);
	if (pc_sock >= 0)
		close(pc_sock);
	if (r < 0 && child > 0) {
		if (is_tree)
			tree_kill_all(child, img, o.new_pidns);
		else
			kill_and_reap(child);
	}
	if (was_reaper == 0)
		prctl(PR_SET_CHILD_SUBREAPER, 0);
	eng_restore_ns_close(&ns);
	eng_restore_tty_close(&ttys);
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (img && is_tree)
		eng_restore_tree_sockets_close(&tree);
	else if (img)
		eng_restore_sockets_close(img->procs[0], sock_fds);
	if (r < 0)
		r = err_wrap(r, "snapshot %s", snap_id);
	if (img)
		eng_image__free_unpacked(img, NULL);
	wc_snapshot_close(snap);
	return r;
}

int eng_restore_validate(struct wc_store *store, struct wc_snapshot *snap, EngImage **ret_img)
{
	EngImage *img = NULL;
	const EngProcess *p;
	int r;

	r = load_image(snap, &img);
	if (r < 0)
		return r;
	if (img->n_procs != 1) {
		eng_image__free_unpacked(img, NULL);
		return err_set(EOPNOTSUPP, "it holds a tree of %zu processes: spawn takes one",
			       img->n_procs);
	}
	p = img->procs[0];
	r = check_pids(p, true);
	if (r >= 0 && img->ns)	/* ns: spawn does not create namespaces */
		r = err_set(EOPNOTSUPP, "it runs in namespaces of its own: spawn takes none");
	if (r >= 0)
		r = check_cpu(img, p);
	if (r >= 0)
		r = check_vdso(img, p);
	if (r >= 0)
		r = check_files(p);
	if (r >= 0)
		r = check_keys(store, snap);
	if (r < 0) {
		eng_image__free_unpacked(img, NULL);
		return r;
	}
	*ret_img = img;
	return 0;
}
