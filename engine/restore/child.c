// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The restore child: the new process (already with its pid), still running
 * the warmfork binary with libc. It builds the restored address space in
 * one reserved region, fills it from the store, prepares descriptors and
 * process state, copies the restorer blob and jumps to it.
 *
 * The region, at a hole that overlaps neither our own mappings nor any
 * address the restored process will use (16 MiB clear on both sides):
 *
 *   region_start
 *   +-----------------+ 0
 *   | restorer blob   |  RWX, ENG_RESTORER_BLOB_SIZE rounded to a page
 *   +-----------------+ args_off
 *   | struct rst_args |  RW, with its arrays (moves, rlimits, threads,
 *   | + arrays        |  siginfos, groups)
 *   +-----------------+ stacks_off
 *   | thread stacks   |  RW, RST_STACK_SIZE per thread, [0] = leader
 *   +-----------------+ scratch_off
 *   | vdso scratch    |  PROT_NONE, size of [vvar]..[vdso] (overlapping moves)
 *   +-----------------+ premap_off
 *   | area 0          |  each area mapped like the original (anon, file,
 *   | area 1          |  shared), filled, then moved out by the restorer
 *   | ...             |  with mremap (page tables move, nothing is copied)
 *   +-----------------+ region_len
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "restore.h"
#include "restorer/restorer-blob.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE	0x100000
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT		47
#define PR_CAP_AMBIENT_IS_SET	1
#endif

struct child_plan {
	uint64_t region;
	uint64_t region_len;
	uint64_t args_off, stacks_off, scratch_off, premap_off;
	uint64_t args_len;
	struct rst_args *args;
	struct rst_move *moves;
	struct wc_fill_target *targets;
	size_t nr_targets;
	int *file_fds;		/* per eng_process.files, -1 unopened */
};

static uint64_t vma_len(const EngVma *v)
{
	return v->end - v->start;
}

static bool vma_is_special(const EngVma *v)
{
	return v->kind == ENG_VMA_KIND__VMA_VDSO || v->kind == ENG_VMA_KIND__VMA_VVAR ||
	       v->kind == ENG_VMA_KIND__VMA_VVAR_VCLOCK || v->kind == ENG_VMA_KIND__VMA_VSYSCALL;
}

static int vma_area(const EngVma *v)
{
	return v->has_area ? v->area : -1;
}

/* Bytes of the args block: struct + every array, 64-byte aligned pieces. */
static uint64_t args_size(const EngProcess *p, int extra_sig, uint64_t *off_moves,
			  uint64_t *off_rl, uint64_t *off_thr, uint64_t *off_sig,
			  uint64_t *off_groups)
{
	uint64_t o = ALIGN_UP((uint64_t)sizeof(struct rst_args), 64);
	uint64_t nsig = p->n_shared_pending + (extra_sig > 0);

	for (size_t i = 0; i < p->n_threads; i++)
		nsig += p->threads[i]->n_pending;
	*off_moves = o;
	o = ALIGN_UP(o + p->n_vmas * sizeof(struct rst_move), 64);
	*off_rl = o;
	o = ALIGN_UP(o + p->n_rlimits * sizeof(struct rst_rlimit), 64);
	*off_thr = o;
	o = ALIGN_UP(o + p->n_threads * sizeof(struct rst_thread), 64);
	*off_sig = o;
	o = ALIGN_UP(o + nsig * RST_SIGINFO_SIZE, 64);
	*off_groups = o;
	o += (p->creds ? p->creds->n_groups : 0) * sizeof(uint32_t);
	return ALIGN_UP(o, RST_PAGE);
}

static int open_file(const struct eng_rst_ctx *ctx, struct child_plan *pl, uint32_t idx,
		     bool rw, int *ret)
{
	const EngProcess *p = ctx->proc;
	int fd;

	if (idx >= p->n_files)
		return err_set(EBADMSG, "file index %u out of range", idx);
	/* One descriptor per file and mode: shared file mappings may need O_RDWR. */
	if (!rw && pl->file_fds[idx] >= 0) {
		*ret = pl->file_fds[idx];
		return 0;
	}
	fd = open(p->files[idx]->path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return err_set(errno, "cannot open \"%s\": %m", p->files[idx]->path);
	if (rw) {
		*ret = fd;	/* the caller closes it */
		return 1;
	}
	pl->file_fds[idx] = fd;
	*ret = fd;
	return 0;
}

static int madvise_flags(uint64_t addr, uint64_t len, uint32_t madv)
{
	static const struct {
		uint32_t bit;
		int advice;
	} tab[] = {
		{ ENG_MADV_DONTFORK, MADV_DONTFORK },
		{ ENG_MADV_DONTDUMP, MADV_DONTDUMP },
		{ ENG_MADV_WIPEONFORK, MADV_WIPEONFORK },
		{ ENG_MADV_RANDOM, MADV_RANDOM },
		{ ENG_MADV_SEQUENTIAL, MADV_SEQUENTIAL },
		{ ENG_MADV_MERGEABLE, MADV_MERGEABLE },
	};

	for (size_t i = 0; i < ARRAY_SIZE(tab); i++) {
		if (!(madv & tab[i].bit))
			continue;
		if (madvise((void *)addr, len, tab[i].advice) < 0 && tab[i].bit != ENG_MADV_MERGEABLE)
			return err_set(errno, "madvise(%d) of 0x%" PRIx64 ": %m", tab[i].advice, addr);
	}
	if (madv & (ENG_MADV_LOCKED | ENG_MADV_LOCKONFAULT)) {
		if (mlock2((void *)addr, len, (madv & ENG_MADV_LOCKONFAULT) ? MLOCK_ONFAULT : 0) < 0)
			return err_set(errno, "mlock of 0x%" PRIx64 ": %m", addr);
	}
	return 0;
}

/*
 * Populate the runs of zero pages of a private file mapping for writing, one
 * madvise per run, before they are cleared (see premap_areas()): each
 * becomes a private page of zeros instead of following its file. Its data
 * pages are not touched here: the fill populates each run it copies into,
 * on both of its lanes (wc_snapshot_fill_uffd), where doing it here cost
 * CPython's 470 such pages ~1 ms before the fill started. Other pages are
 * never touched: on this VM the first touch of a page is what costs, and a
 * private file page must keep following its file.
 */
static int populate_zero_runs(uint64_t base, const struct wc_area *a)
{
	uint64_t i = 0;

	while (i < a->nr_pages) {
		uint64_t j;

		if (a->kinds[i] != WC_PAGE_ZERO) {
			i++;
			continue;
		}
		for (j = i + 1; j < a->nr_pages && a->kinds[j] == WC_PAGE_ZERO; j++)
			;
		if (madvise((void *)(base + i * RST_PAGE), (j - i) * RST_PAGE, MADV_POPULATE_WRITE) < 0)
			return err_set(errno, "cannot populate 0x%" PRIx64 "+0x%" PRIx64 ": %m",
				       base + i * RST_PAGE, (j - i) * RST_PAGE);
		i = j;
	}
	return 0;
}

static bool lazy_area(const struct eng_rst_ctx *ctx, const EngVma *v);

static int premap_areas(const struct eng_rst_ctx *ctx, struct child_plan *pl)
{
	const EngProcess *p = ctx->proc;
	uint64_t cur = pl->region + pl->premap_off, last_inplace = 0;
	uint32_t nmoves = 0;
	/* An area is mapped at its final address when nothing of ours is
	 * there (MAP_FIXED_NOREPLACE), so that the restorer neither moves it
	 * nor unmaps it (it keeps every move with src == dst, which it needs
	 * in increasing order): ~1 ms less for CPython's 125 areas. Not for
	 * trees and lazy restores, whose children and fault servers follow
	 * the premapped addresses (a post-copy server follows either).
	 * WARMFORK_TEST_PREMAP_REGION=1 (tests only) premaps every area in the
	 * region, as when its place is taken: the restorer then moves each. */
	bool inplace_ok = !ctx->tree && (!ctx->nr_lazy_areas || ctx->postcopy) &&
			  !getenv("WARMFORK_TEST_PREMAP_REGION");
	int r;

	for (size_t i = 0; i < p->n_vmas; i++) {
		const EngVma *v = p->vmas[i];
		const struct wc_area *a = NULL;
		uint64_t len = vma_len(v);
		int ai = vma_area(v), fd = -1, owned = 0;
		uint64_t shm;
		int flags = MAP_FIXED, prot;
		bool fill, zero_fix = false;
		void *m;

		if (vma_is_special(v))
			continue;
		/* A big area sits at the same offset in a 2 MiB page as its final
		 * address: mremap then moves whole page tables, and huge pages
		 * stay huge. */
		if (len >= RST_PMD_SIZE)
			cur += (v->start - cur) & (RST_PMD_SIZE - 1);
		/* tree.c: shared memory of the tree, mapped and filled once; the
		 * same pages again here (mremap of old size 0 duplicates a shared
		 * mapping). */
		if (ctx->tree && (shm = eng_restore_tree_shm(ctx, v))) {
			if (mremap((void *)shm, 0, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)cur) !=
			    (void *)cur)
				return err_set(errno, "cannot map the shared memory of 0x%" PRIx64
					       "-0x%" PRIx64 ": %m", v->start, v->end);
			pl->moves[nmoves++] = (struct rst_move){
				.src = cur, .dst = v->start, .len = len, .prot = v->prot,
				.fix_prot = v->prot != (PROT_READ | PROT_WRITE),
			};
			cur += len;
			continue;
		}
		/* tree.c: the parent's copy, pages shared copy-on-write. */
		if (ctx->tree) {
			r = eng_restore_tree_inherit(ctx, v, cur);
			if (r < 0)
				return r;
			if (r > 0) {
				pl->moves[nmoves++] = (struct rst_move){
					.src = cur, .dst = v->start, .len = len, .prot = v->prot,
					.fix_prot = 1,
				};
				cur += len;
				continue;
			}
		}
		if (ai >= 0) {
			a = wc_snapshot_area(ctx->snap, (size_t)ai);
			if (!a || a->start != v->start || a->nr_pages * RST_PAGE != len)
				return err_set(EBADMSG, "area %d does not match mapping 0x%" PRIx64
					       "-0x%" PRIx64, ai, v->start, v->end);
		}
		if (a && v->kind == ENG_VMA_KIND__VMA_FILE_PRIVATE)
			for (uint64_t k = 0; k < a->nr_pages && !zero_fix; k++)
				zero_fix = a->kinds[k] == WC_PAGE_ZERO;
		fill = (a && a->nr_data) || zero_fix;
		prot = fill ? PROT_READ | PROT_WRITE : (int)v->prot;
		if (v->map_flags & MAP_GROWSDOWN)
			flags |= MAP_GROWSDOWN;
		if (v->map_flags & MAP_NORESERVE)
			flags |= MAP_NORESERVE;

		switch (v->kind) {
		case ENG_VMA_KIND__VMA_ANON_PRIVATE:
			flags |= MAP_PRIVATE | MAP_ANONYMOUS;
			break;
		case ENG_VMA_KIND__VMA_ANON_SHARED:
			flags |= MAP_SHARED | MAP_ANONYMOUS;
			break;	/* files: with v->fobj, its object is mapped below */
		case ENG_VMA_KIND__VMA_FILE_PRIVATE:
			if (!v->has_file)
				return err_set(EBADMSG, "mapping 0x%" PRIx64 " has no file", v->start);
			r = open_file(ctx, pl, v->file, false, &fd);
			if (r < 0)
				return r;
			flags |= MAP_PRIVATE;
			break;
		case ENG_VMA_KIND__VMA_FILE_SHARED:
			if (!v->has_file)
				return err_set(EBADMSG, "mapping 0x%" PRIx64 " has no file", v->start);
			r = open_file(ctx, pl, v->file, (v->prot & PROT_WRITE) != 0, &fd);
			if (r < 0)
				return r;
			owned = r;
			flags |= MAP_SHARED;
			break;
		default:
			return err_set(EBADMSG, "mapping 0x%" PRIx64 " of unknown kind %d", v->start,
				       v->kind);
		}
		m = MAP_FAILED;
		if (inplace_ok && !v->has_fobj && v->start >= last_inplace) {
			m = mmap((void *)v->start, len, prot,
				 (flags & ~MAP_FIXED) | MAP_FIXED_NOREPLACE, fd,
				 fd >= 0 ? (off_t)v->pgoff : 0);
			if (m != MAP_FAILED && m != (void *)v->start) {
				munmap(m, len);	/* a kernel without NOREPLACE */
				m = MAP_FAILED;
				inplace_ok = false;
			}
			if (m != MAP_FAILED)
				last_inplace = v->end;
		}
		if (m == MAP_FAILED)
			m = v->has_fobj ? eng_restore_fobj_premap(ctx, v, cur, prot, flags)	/* files */
					: mmap((void *)cur, len, prot, flags, fd,
					       fd >= 0 ? (off_t)v->pgoff : 0);
		if (owned)
			close(fd);
		if (m == MAP_FAILED)
			return err_set(errno, "cannot premap 0x%" PRIx64 "-0x%" PRIx64 " (%s): %m",
				       v->start, v->end, v->name ? v->name : "");
		if ((v->madv & (ENG_MADV_HUGEPAGE | ENG_MADV_NOHUGEPAGE)) &&
		    madvise(m, len, (v->madv & ENG_MADV_HUGEPAGE) ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) < 0)
			return err_set(errno, "madvise(hugepage) of 0x%" PRIx64 ": %m", v->start);
		/* Anonymous data pages are not populated beforehand: the fill's
		 * reads and copies fault them in, on both of its lanes at once
		 * (measured 23:17, 1 GiB mixed, load 2.5: ready 0.24 s against
		 * 0.42-0.43 s with MADV_POPULATE_WRITE first; transparent huge
		 * pages for dense stretches were far slower, premap 1.0-5.6 s
		 * against 0.68-1.5 s: see benchmarks.md). The zero pages of a
		 * private file mapping are, to be cleared just below. */
		if (zero_fix) {
			r = populate_zero_runs((uint64_t)m, a);
			if (r < 0)
				return r;
		}
		if (fill) {
			if (zero_fix)
				for (uint64_t k = 0; k < a->nr_pages; k++)
					if (a->kinds[k] == WC_PAGE_ZERO)
						memset((char *)m + k * RST_PAGE, 0, RST_PAGE);
			/* Private anonymous data: placed by userfaultfd (fill_uffd_open);
			 * a post-copy's lazy areas stay empty (postcopy.c). */
			if (a->nr_data && !(ctx->postcopy && lazy_area(ctx, v)))
				pl->targets[pl->nr_targets++] = (struct wc_fill_target){
					(size_t)ai, m,
					v->kind == ENG_VMA_KIND__VMA_ANON_PRIVATE && !v->has_fobj,
				};
		}
		pl->moves[nmoves++] = (struct rst_move){
			.src = (uint64_t)m, .dst = v->start, .len = len, .prot = v->prot,
			.fix_prot = (uint32_t)prot != v->prot,
		};
		cur += len;	/* its room in the region stays reserved, unused if in place */
	}
	pl->args->nr_moves = nmoves;
	return 0;
}

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY	1
#endif

/*
 * The fill places the pages of private anonymous areas with UFFDIO_COPY
 * (wc_snapshot_fill_uffd): each page is allocated and written in one step,
 * many per call, where letting the fill's reads fault it in costs an
 * exception, a zeroed page and then the copy (page faults are slow in a VM:
 * measured ~1.8 us each here, see docs/engine-restore.md "Memory").
 * Registers every such target with a new userfaultfd in missing mode and
 * returns it; the caller closes it right after the fill, which drops the
 * registrations (zero and absent pages then read as zero as usual) before
 * anything else touches the areas. Returns -1 where that is not possible
 * (no userfaultfd, a lazy restore with its own, more than
 * FILL_UFFD_MAX_PAGES data pages): the plain fill then faults the pages in.
 * A target that cannot be registered is filled plainly.
 */
static int fill_uffd_open(const struct eng_rst_ctx *ctx, struct child_plan *pl)
{
	/* Measured (2026-11-26, alternating, load 6-7): CPython (4.3 K data
	 * pages) fill 19.7 -> 16.3 ms, JVM (55 K) 293 -> 204 ms, but 1 GiB
	 * mixed (196 K, a third of them copies of 64 pages) 0.60 -> 0.94 s:
	 * cause not found yet, so large fills fault their pages in as before. */
	enum { FILL_UFFD_MAX_PAGES = 1u << 17 };
	struct uffdio_api api = { .api = UFFD_API };
	size_t nr = 0;
	int uffd;

	if (ctx->nr_lazy_areas && !ctx->postcopy)
		goto plain;
	for (size_t t = 0; t < pl->nr_targets; t++)
		if (pl->targets[t].uffd)
			nr += wc_snapshot_area(ctx->snap, pl->targets[t].area_idx)->nr_data;
	if (!nr || nr > FILL_UFFD_MAX_PAGES)
		goto plain;
	/* User-mode faults only: no privilege needed, and a kernel access to
	 * a missing page (none is expected) fails with EFAULT, never waits. */
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (uffd < 0)
		goto plain;
	if (ioctl(uffd, UFFDIO_API, &api) < 0) {
		close(uffd);
		goto plain;
	}
	for (size_t t = 0; t < pl->nr_targets; t++) {
		struct wc_fill_target *tg = &pl->targets[t];
		const struct wc_area *a = wc_snapshot_area(ctx->snap, tg->area_idx);
		struct uffdio_register reg = {
			.range = { (uintptr_t)tg->dst, a->nr_pages * RST_PAGE },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (tg->uffd && ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
			tg->uffd = false;
	}
	return uffd;
plain:
	for (size_t t = 0; t < pl->nr_targets; t++)
		pl->targets[t].uffd = false;
	return -1;
}

static int apply_madvise(const struct eng_rst_ctx *ctx, struct child_plan *pl)
{
	const EngProcess *p = ctx->proc;
	uint32_t m = 0;
	int r;

	for (size_t i = 0; i < p->n_vmas; i++) {
		const EngVma *v = p->vmas[i];

		if (vma_is_special(v))
			continue;
		if (v->has_madv && v->madv) {
			r = madvise_flags(pl->moves[m].src, pl->moves[m].len, v->madv);
			if (r < 0)
				return r;
		}
		m++;
	}
	return 0;
}

/*
 * Lazy restore (eng_restore_opts.lazy_areas): register the listed areas,
 * still in the premap region and already filled with every page the store
 * held, with a new userfaultfd in MISSING mode, so that each page left
 * unfilled (the ones still on their way, but also zero and absent ones)
 * faults to the uffd's holder. EVENT_REMAP lets the registration follow
 * the restorer's mremap to the final address (each move waits until the
 * holder read its event); EVENT_REMOVE tells it about MADV_DONTNEED. The
 * uffd and a pidfd of this process go to @ctx->lazy_sock; our copies close.
 */
static bool lazy_area(const struct eng_rst_ctx *ctx, const EngVma *v)
{
	for (size_t k = 0; k < ctx->nr_lazy_areas; k++)
		if (ctx->lazy_areas[k] == v->start)
			return true;
	return false;
}

/*
 * Before the fill of a lazy restore: a transparent huge page faulted in by
 * the fill (MADV_HUGEPAGE area, or THP "always") would make the lacking
 * pages around it present and zero, and those could never be filled. No
 * THP in lazy areas until they are registered (lazy_register() gives a
 * MADV_HUGEPAGE area its flag back; under "always" an area without flags
 * keeps nohugepage).
 */
static int lazy_no_thp(const struct eng_rst_ctx *ctx, const struct child_plan *pl)
{
	_cleanup_free_ char *thp = NULL;
	bool always = read_file("/sys/kernel/mm/transparent_hugepage/enabled", &thp, NULL) >= 0 &&
		      strstr(thp, "[always]");
	uint32_t m = 0;

	for (size_t i = 0; i < ctx->proc->n_vmas; i++) {
		const EngVma *v = ctx->proc->vmas[i];

		if (vma_is_special(v))
			continue;
		if (lazy_area(ctx, v) && (always || (v->madv & ENG_MADV_HUGEPAGE)) &&
		    madvise((void *)pl->moves[m].src, pl->moves[m].len, MADV_NOHUGEPAGE) < 0)
			return err_set(errno, "lazy restore: madvise(nohugepage) of 0x%" PRIx64 ": %m",
				       v->start);
		m++;
	}
	return 0;
}

static int lazy_register(const struct eng_rst_ctx *ctx, const struct child_plan *pl)
{
	const EngProcess *p = ctx->proc;
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE |
					      UFFD_FEATURE_EVENT_FORK };
	_cleanup_close_ int uffd = -1, pidfd = -1;
	/* Post-copy: where each lazy area is now (postcopy.c recv_fds). */
	_cleanup_free_ uint64_t *at = calloc(ctx->nr_lazy_areas + 1, sizeof(*at));
	size_t done = 0;
	uint32_t m = 0;

	if (!at)
		return -ENOMEM;
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		return err_set(errno, "lazy restore: userfaultfd: %m");
	if (ioctl(uffd, UFFDIO_API, &api) < 0)
		return err_set(errno, "lazy restore: UFFDIO_API: %m");
	for (size_t i = 0; i < p->n_vmas; i++) {
		const EngVma *v = p->vmas[i];
		struct uffdio_register reg;

		if (vma_is_special(v))
			continue;
		if (lazy_area(ctx, v)) {
			if (v->kind != ENG_VMA_KIND__VMA_ANON_PRIVATE ||
			    (v->has_madv && (v->madv & (ENG_MADV_LOCKED | ENG_MADV_LOCKONFAULT))))
				return err_set(EOPNOTSUPP, "lazy restore: mapping 0x%" PRIx64 " is not "
					       "unlocked anonymous private memory", v->start);
			reg = (struct uffdio_register){
				.range = { .start = pl->moves[m].src, .len = pl->moves[m].len },
				.mode = UFFDIO_REGISTER_MODE_MISSING,
			};
			if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
				return err_set(errno, "lazy restore: cannot register 0x%" PRIx64 ": %m",
					       v->start);
			/* Registered: a huge page fault now goes to the uffd too. */
			if ((v->madv & ENG_MADV_HUGEPAGE) &&
			    madvise((void *)reg.range.start, reg.range.len, MADV_HUGEPAGE) < 0)
				return err_set(errno, "lazy restore: madvise(hugepage) of 0x%" PRIx64
					       ": %m", v->start);
			if (done < ctx->nr_lazy_areas)
				at[done] = reg.range.start;
			done++;
		}
		m++;
	}
	if (done != ctx->nr_lazy_areas)
		return err_set(EBADMSG, "lazy restore: %zu of %zu lazy areas are no mapping's start",
			       ctx->nr_lazy_areas - done, ctx->nr_lazy_areas);
	pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (pidfd < 0)
		return err_set(errno, "lazy restore: pidfd_open: %m");
	{
		int fds[2] = { uffd, pidfd };
		char byte = 'U', cbuf[CMSG_SPACE(sizeof(fds))] = {};
		struct iovec iov = { &byte, 1 };
		size_t len = 1;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(fds));
		memcpy(CMSG_DATA(c), fds, sizeof(fds));
		if (ctx->postcopy) {
			len = ctx->nr_lazy_areas * sizeof(*at);
			iov = (struct iovec){ at, len };
		}
		if (sendmsg(ctx->lazy_sock, &mh, MSG_NOSIGNAL) != (ssize_t)len)
			return err_set(errno, "lazy restore: cannot hand the userfaultfd over: %m");
	}
	close(ctx->lazy_sock);
	return 0;
}

static int set_sigactions(const EngProcess *p)
{
	for (size_t i = 0; i < p->n_sigactions; i++) {
		const EngSigaction *s = p->sigactions[i];
		struct {
			uint64_t handler, flags, restorer, mask;
		} ka = { s->handler, s->flags, s->restorer, s->mask };

		if (s->sig == SIGKILL || s->sig == SIGSTOP || s->sig < 1 || s->sig > 64)
			continue;
		if (syscall(SYS_rt_sigaction, s->sig, &ka, NULL, 8) < 0)
			return err_set(errno, "cannot restore the action of signal %u: %m", s->sig);
	}
	return 0;
}

static int fill_threads(const struct eng_rst_ctx *ctx, struct child_plan *pl,
			uint64_t off_thr, uint64_t off_sig)
{
	const EngProcess *p = ctx->proc;
	struct rst_args *a = pl->args;
	struct rst_thread *th = (struct rst_thread *)((char *)a + off_thr);
	uint64_t sig = off_sig;

	a->threads_off = off_thr;
	a->nr_threads = (uint32_t)p->n_threads;
	a->shared_pending_off = sig;
	for (size_t i = 0; i < p->n_shared_pending; i++) {
		if (p->shared_pending[i]->raw.len != RST_SIGINFO_SIZE)
			return err_set(EBADMSG, "shared pending signal %zu: bad siginfo size", i);
		memcpy((char *)a + sig, p->shared_pending[i]->raw.data, RST_SIGINFO_SIZE);
		sig += RST_SIGINFO_SIZE;
	}
	a->nr_shared_pending = (uint32_t)p->n_shared_pending;
	if (ctx->resume_signal > 0 && ctx->resume_signal < 65) {
		/* One more shared pending signal, as if sent by kill(2). */
		siginfo_t *si = (siginfo_t *)((char *)a + sig);

		memset(si, 0, RST_SIGINFO_SIZE);
		si->si_signo = ctx->resume_signal;
		si->si_code = SI_USER;
		sig += RST_SIGINFO_SIZE;
		a->nr_shared_pending++;
	}
	for (size_t i = 0; i < p->n_threads; i++) {
		const EngThread *t = p->threads[i];
		struct rst_thread *r = &th[i];

		r->tid = t->tid;
		r->stack_top = pl->region + pl->stacks_off + (i + 1) * RST_STACK_SIZE;
		if (t->has_ss_flags && !(t->ss_flags & SS_DISABLE) && t->ss_size) {
			r->flags |= RST_TF_ALTSTACK;
			r->ss_sp = t->ss_sp;
			r->ss_size = t->ss_size;
			r->ss_flags = t->ss_flags;
		}
		if (t->has_robust_list && t->robust_list) {
			r->flags |= RST_TF_ROBUST;
			r->robust_list = t->robust_list;
			r->robust_len = t->robust_len;
		}
		if (t->has_clear_child_tid) {
			r->flags |= RST_TF_TIDADDR;
			r->clear_child_tid = t->clear_child_tid;
		}
		if (t->has_rseq_addr && t->rseq_addr && t->rseq_len) {
			r->flags |= RST_TF_RSEQ;
			r->rseq_addr = t->rseq_addr;
			r->rseq_len = t->rseq_len;
			r->rseq_sig = t->rseq_sig;
		}
		if (t->comm && t->comm[0]) {
			r->flags |= RST_TF_COMM;
			snprintf(r->comm, sizeof(r->comm), "%s", t->comm);
		}
		if (t->has_sched_policy && (t->sched_policy & 0xff) != SCHED_OTHER) {
			r->flags |= RST_TF_SCHED;
			r->sched_policy = t->sched_policy;
			r->sched_prio = t->sched_prio;
		}
		if (t->has_nice && t->nice) {
			r->flags |= RST_TF_NICE;
			r->nice = t->nice;
		}
		r->pending_off = sig;
		for (size_t k = 0; k < t->n_pending; k++) {
			if (t->pending[k]->raw.len != RST_SIGINFO_SIZE)
				return err_set(EBADMSG, "thread %u: bad pending siginfo size", t->tid);
			memcpy((char *)a + sig, t->pending[k]->raw.data, RST_SIGINFO_SIZE);
			sig += RST_SIGINFO_SIZE;
		}
		r->nr_pending = (uint32_t)t->n_pending;
	}
	return 0;
}

static int fill_creds(const EngProcess *p, struct rst_args *a, uint64_t off_groups)
{
	const EngCreds *c = p->creds;
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct cd[2] = {};
	uint64_t eff, prm, inh, bnd = 0, amb = 0;
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	gid_t groups[256];
	int ng, last = 0;

	if (!c)
		return 0;
	if (syscall(SYS_capget, &hdr, cd) < 0)
		return err_set(errno, "capget: %m");
	eff = cd[0].effective | (uint64_t)cd[1].effective << 32;
	prm = cd[0].permitted | (uint64_t)cd[1].permitted << 32;
	inh = cd[0].inheritable | (uint64_t)cd[1].inheritable << 32;
	for (int cap = 0; cap < 64; cap++) {
		int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

		if (r < 0)
			break;
		last = cap;
		if (r)
			bnd |= 1ull << cap;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) > 0)
			amb |= 1ull << cap;
	}
	getresuid(&ru, &eu, &su);
	getresgid(&rg, &eg, &sg);
	ng = getgroups(ARRAY_SIZE(groups), groups);

	a->creds = (struct rst_creds){
		.uid = c->uid, .euid = c->euid, .suid = c->suid, .fsuid = c->fsuid,
		.gid = c->gid, .egid = c->egid, .sgid = c->sgid, .fsgid = c->fsgid,
		.nr_groups = (uint32_t)c->n_groups,
		.securebits = c->has_securebits ? c->securebits : 0,
		.groups_off = off_groups,
		.cap_eff = c->has_cap_eff ? c->cap_eff : eff,
		.cap_prm = c->has_cap_prm ? c->cap_prm : prm,
		.cap_inh = c->has_cap_inh ? c->cap_inh : inh,
		.cap_bnd = c->has_cap_bnd ? c->cap_bnd : bnd,
		.cap_amb = c->has_cap_amb ? c->cap_amb : amb,
		.cap_last = (uint32_t)last,
		.no_new_privs = c->has_no_new_privs && c->no_new_privs,
	};
	for (size_t i = 0; i < c->n_groups; i++)
		((uint32_t *)((char *)a + off_groups))[i] = c->groups[i];
	a->creds.change_ids = c->uid != ru || c->euid != eu || c->suid != su || c->gid != rg ||
			      c->egid != eg || c->sgid != sg || c->fsuid != eu || c->fsgid != eg ||
			      ng < 0 || (size_t)ng != c->n_groups;
	for (size_t i = 0; !a->creds.change_ids && i < c->n_groups; i++)
		a->creds.change_ids = groups[i] != c->groups[i];
	a->creds.set_caps = a->creds.cap_eff != eff || a->creds.cap_prm != prm ||
			    a->creds.cap_inh != inh || a->creds.cap_bnd != bnd ||
			    a->creds.cap_amb != amb ||
			    (a->creds.change_ids && (c->uid || c->euid || c->suid)) ||
			    (uint32_t)prctl(PR_GET_SECUREBITS) != a->creds.securebits;
	a->has_creds = a->creds.change_ids || a->creds.set_caps || a->creds.no_new_privs;
	return 0;
}


void eng_restore_report_fail(int fd, int err, const char *detail)
{
	struct rst_report rep = { .err = err < 0 ? err : -EIO, .step = RST_STEP_CHILD,
				  .pid = (uint32_t)getpid() };

	snprintf(rep.detail, sizeof(rep.detail), "%s", detail ? detail : "");
	(void)!write(fd, &rep, sizeof(rep));
}

/*
 * glibc registered an rseq area in our TLS; the kernel writes it on every
 * return to user space, so it must be unregistered before the restorer
 * unmaps our memory (else: SIGSEGV on the first syscall return).
 */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));
#define RSEQ_SIG_X86		0x53053053
#define RSEQ_FLAG_UNREGISTER	1

static int rseq_unregister(void)
{
	char *area;

	if (!&__rseq_size || !&__rseq_offset || !__rseq_size)
		return 0;
	area = (char *)__builtin_thread_pointer() + __rseq_offset;
	if (syscall(SYS_rseq, area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG_X86) == 0)
		return 0;
	if (syscall(SYS_rseq, area, __rseq_size, RSEQ_FLAG_UNREGISTER, RSEQ_SIG_X86) == 0)
		return 0;
	if (errno == EINVAL && syscall(SYS_rseq, area, 32, RSEQ_FLAG_UNREGISTER, 0) < 0 &&
	    errno == EINVAL)
		return 0;	/* not registered */
	return err_set(errno, "cannot unregister our rseq area: %m");
}

static _noreturn_ void jump_to_restorer(uint64_t entry, uint64_t stack, struct rst_args *args)
{
	asm volatile("movq %0, %%rsp\n\t"
		     "jmpq *%1\n\t"
		     :
		     : "r"(stack), "r"(entry), "D"(args)
		     : "memory");
	__builtin_unreachable();
}

int eng_restore_child(struct eng_rst_ctx *ctx)
{
	const EngProcess *p = ctx->proc;
	_cleanup_free_ char *maps = NULL;
	_cleanup_free_ struct eng_range *busy = NULL;
	struct wc_source *src = NULL;
	struct eng_vdso_block vd;
	struct child_plan pl = {};
	uint64_t off_moves, off_rl, off_thr, off_sig, off_groups, premap_len = 0, vdso_len = 0;
	uint64_t t0 = now_ns(), t1, t2;
	int64_t vdso_delta = 0;
	size_t nbusy, nbusy_all;
	sigset_t all;
	int r, has_vdso, maxfd = 2, keep[3], nr_keep = 2;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);

	r = read_file("/proc/self/maps", &maps, NULL);
	if (r < 0)
		return err_wrap(r, "cannot read /proc/self/maps");
	r = eng_restore_parse_maps(maps, &busy, &nbusy, &vd);
	if (r < 0)
		return r;
	r = eng_restore_vdso_delta(p, &vd, &vdso_delta);
	if (r < 0 && r != -ENOENT)
		return r;
	has_vdso = r == 0;

	/* Every address the restored process will use is busy too. */
	{
		struct eng_range *b = realloc(busy, (nbusy + p->n_vmas) * sizeof(*b));

		if (!b)
			return -ENOMEM;
		busy = b;
	}
	nbusy_all = nbusy;
	for (size_t i = 0; i < p->n_vmas; i++) {
		const EngVma *v = p->vmas[i];

		if (v->kind == ENG_VMA_KIND__VMA_VSYSCALL)
			continue;
		busy[nbusy_all++] = (struct eng_range){ v->start, v->end };
		if (!vma_is_special(v))
			premap_len += vma_len(v) + (vma_len(v) >= RST_PMD_SIZE ? RST_PMD_SIZE : 0);
	}
	nbusy_all = eng_restore_ranges_merge(busy, nbusy_all);
	for (size_t i = 0; i < vd.nr; i++)
		vdso_len = vd.vma[i].end - vd.vma[0].start;

	pl.args_len = args_size(p, ctx->resume_signal, &off_moves, &off_rl, &off_thr, &off_sig, &off_groups);
	pl.args_off = ALIGN_UP((uint64_t)ENG_RESTORER_BLOB_SIZE, RST_PAGE);
	pl.stacks_off = pl.args_off + pl.args_len;
	pl.scratch_off = pl.stacks_off + p->n_threads * (uint64_t)RST_STACK_SIZE;
	pl.premap_off = pl.scratch_off + ALIGN_UP(vdso_len, RST_PAGE);
	pl.region_len = pl.premap_off + premap_len;
	r = eng_restore_find_hole(busy, nbusy_all, pl.region_len, RST_REGION_GAP, 2ull << 20,
				  1ull << 32, RST_TASK_SIZE, &pl.region);
	if (r < 0)
		r = eng_restore_find_hole(busy, nbusy_all, pl.region_len, RST_PAGE, RST_PAGE,
					  1ull << 16, RST_TASK_SIZE, &pl.region);
	if (r < 0)
		return err_set(ENOMEM, "no free address range of %" PRIu64 " bytes for the restore",
			       pl.region_len);
	if (mmap((void *)pl.region, pl.region_len, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0) !=
	    (void *)pl.region)
		return err_set(errno, "cannot reserve the restore region at 0x%" PRIx64 ": %m",
			       pl.region);
	if (mmap((void *)pl.region, pl.scratch_off, PROT_READ | PROT_WRITE | PROT_EXEC,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		return err_set(errno, "cannot map the restorer: %m");
	memcpy((void *)pl.region, eng_restorer_blob, ENG_RESTORER_BLOB_SIZE);
	pl.args = (struct rst_args *)(pl.region + pl.args_off);
	pl.moves = (struct rst_move *)((char *)pl.args + off_moves);
	pl.targets = calloc(p->n_vmas + 1, sizeof(*pl.targets));
	pl.file_fds = malloc((p->n_files + 1) * sizeof(int));
	if (!pl.targets || !pl.file_fds)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_files; i++)
		pl.file_fds[i] = -1;

	/* Memory. */
	r = eng_restore_fobjs_prepare(ctx);	/* files: memfd, shm, SysV, unlinked */
	if (r < 0)
		return r;
	r = premap_areas(ctx, &pl);
	if (r < 0)
		return r;
	if (ctx->nr_lazy_areas && !ctx->postcopy) {
		r = lazy_no_thp(ctx, &pl);
		if (r < 0)
			return r;
	}
	r = eng_restore_fobjs_mapped(ctx);	/* files: seals once mapped */
	if (r < 0)
		return r;
	t1 = now_ns();
	r = wc_store_source_new(ctx->store, &src);
	if (r < 0)
		return err_wrap(r, "cannot read the store");
	{
		int uffd = fill_uffd_open(ctx, &pl);

		if (uffd >= 0) {
			r = wc_snapshot_fill_uffd(ctx->snap, src, pl.targets, pl.nr_targets, uffd);
			close(uffd);	/* drops the registrations */
		} else {
			r = wc_snapshot_fill(ctx->snap, src, pl.targets, pl.nr_targets);
		}
	}
	wc_source_free(src);
	if (r < 0)
		return r;
	if (ctx->tree) {
		r = eng_restore_tree_fill(ctx);
		if (r < 0)
			return r;
	}
	r = apply_madvise(ctx, &pl);
	if (r < 0)
		return r;
	/* tree.c: the children, now that this memory is complete. */
	if (ctx->tree) {
		r = eng_restore_tty_ctty_early(ctx);	/* ns: children inherit it (tty.c) */
		if (r >= 0)
			r = eng_restore_tree_fork(ctx, pl.moves, pl.args->nr_moves);
		if (r < 0)
			return r;
	}
	if (ctx->nr_lazy_areas) {
		r = lazy_register(ctx, &pl);
		if (r < 0)
			return r;
	}
	t2 = now_ns();
	for (size_t i = 0; i < p->n_files; i++)
		if (pl.file_fds[i] >= 0)
			close(pl.file_fds[i]);

	/* The restorer's arguments. */
	struct rst_args *a = pl.args;
	a->magic = RST_MAGIC;
	a->version = RST_VERSION;
	a->total_len = pl.args_len;
	a->task_size = RST_TASK_SIZE;
	a->region_start = pl.region;
	a->region_len = pl.region_len;
	a->moves_off = off_moves;
	a->pid = p->pid;
	{
		struct eng_range keepr[RST_MAX_KEEP];
		size_t nk = 0;

		keepr[nk++] = (struct eng_range){ pl.region, pl.region + pl.region_len };
		for (size_t i = 0; i < vd.nr; i++)
			keepr[nk++] = vd.vma[i];
		nk = eng_restore_ranges_merge(keepr, nk);
		for (size_t i = 0; i < nk; i++)
			a->keep[i] = (struct rst_range){ keepr[i].start, keepr[i].end - keepr[i].start };
		a->nr_keep = (uint32_t)nk;
	}
	a->nr_vdso = (uint32_t)vd.nr;
	for (size_t i = 0; i < vd.nr; i++)
		a->vdso[i] = (struct rst_range){ vd.vma[i].start, vd.vma[i].end - vd.vma[i].start };
	a->unmap_vdso = !has_vdso;
	a->vdso_delta = vdso_delta;
	a->vdso_scratch = vdso_len ? pl.region + pl.scratch_off : 0;

	a->rlimits_off = off_rl;
	for (size_t i = 0; i < p->n_rlimits; i++) {
		struct rst_rlimit *rl = (struct rst_rlimit *)((char *)a + off_rl) + i;

		rl->resource = p->rlimits[i]->resource;
		rl->cur = p->rlimits[i]->cur;
		rl->max = p->rlimits[i]->max;
	}
	a->nr_rlimits = (uint32_t)p->n_rlimits;
	for (size_t i = 0; i < p->n_itimers && a->nr_itimers < 3; i++) {
		const EngItimer *it = p->itimers[i];

		if (!it->value_us)
			continue;
		a->itimers[a->nr_itimers++] = (struct rst_itimer){
			.which = it->which, .interval_us = it->interval_us, .value_us = it->value_us,
		};
	}
	r = fill_threads(ctx, &pl, off_thr, off_sig);
	if (r < 0)
		return r;
	r = fill_creds(p, a, off_groups);
	if (r < 0)
		return r;

	/* Process-wide state that needs no restorer. */
	r = set_sigactions(p);
	if (r < 0)
		return r;
	umask(p->umask & 0777);
	if (personality(p->personality) < 0)
		return err_set(errno, "cannot set personality 0x%x: %m", p->personality);

	/* tree.c: a child sharing its parent's descriptor table waits, its
	 * memory complete, until that table is final (the parent's). */
	if (ctx->tree && p->shares_files) {
		r = eng_restore_tree_files_join(ctx);
		if (r < 0)
			return r;
		ctx->status_fd = r;
	}
	/* PR_SET_MM_MAP and its exe_fd. */
	for (size_t i = 0; i < p->n_fds; i++)
		if ((int)p->fds[i]->fd > maxfd)
			maxfd = (int)p->fds[i]->fd;
	keep[0] = ctx->status_fd;
	keep[1] = -1;
	if (p->mm) {
		const EngMm *mm = p->mm;

		if (mm->auxv.len > RST_AUXV_MAX || mm->auxv.len % 16)
			return err_set(EBADMSG, "saved auxv of %zu bytes", mm->auxv.len);
		a->mm = (struct rst_mm_map){
			.start_code = mm->start_code, .end_code = mm->end_code,
			.start_data = mm->start_data, .end_data = mm->end_data,
			.start_brk = mm->start_brk, .brk = mm->brk, .start_stack = mm->start_stack,
			.arg_start = mm->arg_start, .arg_end = mm->arg_end,
			.env_start = mm->env_start, .env_end = mm->env_end,
			.auxv_size = (uint32_t)mm->auxv.len,
		};
		memcpy(a->auxv, mm->auxv.data, mm->auxv.len);
		if (mm->has_exe_file) {
			if (mm->exe_file >= p->n_files)
				return err_set(EBADMSG, "exe file index out of range");
			keep[1] = open(p->files[mm->exe_file]->path, O_RDONLY | O_CLOEXEC);
			if (keep[1] < 0)
				return err_set(errno, "cannot open the executable \"%s\": %m",
					       p->files[mm->exe_file]->path);
		}
		a->set_mm = 1;
		if (mm->has_dumpable) {
			a->set_dumpable = 1;
			a->dumpable = mm->dumpable ? 1 : 0;
		}
		if (mm->has_thp_disable && mm->thp_disable &&
		    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) < 0)
			return err_set(errno, "cannot disable transparent huge pages: %m");
	}
	if (keep[1] < 0) {
		/* PR_SET_MM_MAP needs an exe_fd: keep our own executable. */
		keep[1] = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
		if (keep[1] < 0)
			return err_set(errno, "cannot open /proc/self/exe: %m");
	}
	/* Temporary descriptors go above every saved one: allow as many as the
	 * hard limit does (the restorer sets the saved limits afterwards). */
	{
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if (ctx->spawn)
		keep[nr_keep++] = ctx->spawn_ctl_fd;
	if (ctx->tree && p->shares_files) {
		/* Its parent's table, final: nothing to prepare; its own
		 * temporaries (exe_fd, status pipe) go with its restorer. */
	} else {
		r = ctx->tree ? eng_restore_tree_files_wait(ctx) : 0;
		if (r >= 0)
			r = eng_restore_prepare_fds(ctx, maxfd + 1, keep, nr_keep);
		if (r < 0)
			return r;
		ctx->status_fd = keep[0];
		r = eng_restore_locks(ctx);	/* files: every fd in place */
		if (r >= 0 && ctx->tree)
			r = eng_restore_tree_files_go(ctx);
		if (r < 0)
			return r;
	}
	a->status_fd = (uint32_t)keep[0];
	a->mm.exe_fd = (uint32_t)keep[1];
	if (ctx->spawn) {
		/* spawn.c: a template (engine/restorer/spawn.h). */
		a->spawn = 1;
		a->spawn_ctl_fd = (uint32_t)keep[2];
		if (p->has_sid && p->sid == p->pid)
			a->spawn_lead = 1;
		else if (p->has_pgid && p->pgid == p->pid)
			a->spawn_lead = 2;
		for (size_t i = 0; i < p->n_vmas; i++) {
			const EngVma *v = p->vmas[i];

			/* files: a file object's mapping stays the object, which
			 * instances share with its fds like forked processes. */
			if (v->kind != ENG_VMA_KIND__VMA_ANON_SHARED || v->has_fobj)
				continue;
			if (a->nr_spawn_shared == RST_SPAWN_MAX_SHARED)
				return err_set(EOPNOTSUPP, "more than %d shared memory areas",
					       RST_SPAWN_MAX_SHARED);
			a->spawn_shared[a->nr_spawn_shared++] = (struct rst_move){
				.dst = v->start, .len = v->end - v->start, .prot = v->prot,
			};
		}
		for (size_t i = 0; i < p->n_vmas; i++) {
			const EngVma *v = p->vmas[i];

			if (!(v->madv & (ENG_MADV_LOCKED | ENG_MADV_LOCKONFAULT)))
				continue;
			if (a->nr_spawn_locked == RST_SPAWN_MAX_LOCKED)
				return err_set(EOPNOTSUPP, "more than %d locked areas",
					       RST_SPAWN_MAX_LOCKED);
			a->spawn_locked[a->nr_spawn_locked++] = (struct rst_move){
				.dst = v->start, .len = v->end - v->start,
				.prot = (v->madv & ENG_MADV_LOCKONFAULT) ? MLOCK_ONFAULT : 0,
			};
		}
	}

	if (p->cwd && chdir(p->cwd) < 0)
		return err_set(errno, "cannot enter the working directory \"%s\": %m", p->cwd);
	if (p->root && strcmp(p->root, "/") != 0 && chroot(p->root) < 0)
		return err_set(errno, "cannot chroot to \"%s\": %m", p->root);

	/* Session and process group: the process led its own, lead them again;
	 * otherwise it stays in the caller's (the saved ones may not exist). */
	if (ctx->inherit_session || ctx->tree) {
		/* The caller's terminal: stay in its foreground group. A tree's
		 * processes set theirs up before their children (tree.c). */
	} else if (p->has_sid && p->sid == p->pid) {
		if (setsid() < 0)
			return err_set(errno, "cannot start a session: %m");
	} else if (p->has_pgid && p->pgid == p->pid) {
		if (setpgid(0, 0) < 0)
			return err_set(errno, "cannot lead a process group: %m");
	}
	r = eng_restore_tty_ctty(ctx);	/* ns: its controlling terminal (tty.c) */
	if (r < 0)
		return r;
	if (p->has_child_subreaper && p->child_subreaper &&
	    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		return err_set(errno, "cannot become a child subreaper: %m");
	/* Best effort: lowering it needs CAP_SYS_RESOURCE. */
	if (p->has_oom_score_adj) {
		char buf[16];
		int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);

		if (fd >= 0) {
			int len = snprintf(buf, sizeof(buf), "%d", p->oom_score_adj);

			(void)!write(fd, buf, (size_t)len);
			close(fd);
		}
	}
	r = rseq_unregister();
	if (r < 0)
		return r;
	a->premap_ns = t1 - t0;
	a->fill_ns = t2 - t1;
	a->prepare_ns = now_ns() - t2;
	jump_to_restorer(pl.region, pl.region + pl.stacks_off + RST_STACK_SIZE, a);
}
