// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Memory: every /proc/PID/smaps entry becomes an eng_vma; the ones with
 * content (anonymous private, file private, shared anonymous) become store
 * areas, written through the sink in chunks of up to CHUNK_PAGES pages.
 *
 * Which pages are stored (engine-design.md), from /proc/PID/pagemap:
 *
 *   bit 63 present | bit 62 swapped | bit 61 file page or shared anon
 *
 *   VMA_ANON_PRIVATE   present || swapped                  -> DATA (sink: ZERO)
 *   VMA_FILE_PRIVATE   (present && !file) || swapped       -> DATA (COW copies)
 *   VMA_ANON_SHARED    in the shmem object (SEEK_DATA on /proc/PID/map_files),
 *                      else, if map_files cannot be opened, present || swapped
 *   everything else    ABSENT
 *
 * Pages are copied with one process_vm_readv per chunk (one iovec per run
 * of stored pages), never per page; areas the process cannot read itself
 * (PROT_NONE, write-only) go through /proc/PID/mem, which may read them.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/pagemap.h"
#include "common/util.h"
#include "dump.h"

#define PM_PRESENT	(1ull << 63)
#define PM_SWAP		(1ull << 62)
#define PM_FILE		(1ull << 61)

#define CHUNK_PAGES	1024u		/* 4 MiB per process_vm_readv / put_pages */
#define MAX_IOV		1024u		/* IOV_MAX */
#define MAX_AREA_PAGES	(1ull << 26)	/* 256 GiB: the largest vma stored as an area */
/* A chunk holds at most CHUNK_PAGES / 2 + 1 runs: one iovec each always fits. */
_Static_assert(CHUNK_PAGES / 2 + 1 <= MAX_IOV, "a chunk's runs must fit in one call");

static bool str_starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool path_deleted(const char *path)
{
	size_t n = strlen(path);

	return n >= 10 && strcmp(path + n - 10, " (deleted)") == 0;
}

/* Shared memory whose content is stored: anonymous shared, SysV, memfd,
 * /dev/shm (and a shared mapping of a deleted file, which cannot be
 * referenced by path). */
static bool shared_is_anon(const char *path)
{
	return !path[0] || str_starts(path, "/dev/zero") || str_starts(path, "/SYSV") ||
	       str_starts(path, "/memfd:") || str_starts(path, "/dev/shm/") ||
	       str_starts(path, "[anon_shmem:") || path_deleted(path);
}

/*
 * A JVM's perf-data file (/tmp/hsperfdata_USER/PID, MAP_SHARED, no fd kept).
 * Every JVM that starts deletes the perf-data files of pids that are not
 * alive, so after the checkpoint kills the process the file may vanish
 * before the restore: it is captured by content instead (VMA_ANON_SHARED),
 * and the restored JVM keeps its counters in anonymous shared memory.
 */
static bool jvm_perfdata(const char *path, pid_t pid, pid_t ns_pid)
{
	const char *dir = strstr(path, "/hsperfdata_");
	const char *base = strrchr(path, '/');
	char want[16], want_ns[16];

	if (!dir || !base || base <= dir)
		return false;
	snprintf(want, sizeof(want), "%d", pid);
	snprintf(want_ns, sizeof(want_ns), "%d", ns_pid);
	return strcmp(base + 1, want) == 0 || strcmp(base + 1, want_ns) == 0;
}

static int vma_fill(struct eng_dump_ctx *ctx, size_t map_idx, const struct eng_proc_map *m,
		    uint64_t vmf, EngVma *v)
{
	const char *p = m->path;
	bool special = p[0] == '[';
	int r;

	v->start = m->start;
	v->end = m->end;
	v->prot = m->prot;
	v->has_madv = true;
	v->madv = (uint32_t)(vmf & 0xffffffffu);
	v->map_flags = m->shared ? MAP_SHARED : MAP_PRIVATE;
	if (vmf & ENG_MADV_GROWSDOWN)
		v->map_flags |= MAP_GROWSDOWN;
	v->has_area = true;
	v->area = -1;

	if (strcmp(p, "[vdso]") == 0) {
		v->kind = ENG_VMA_KIND__VMA_VDSO;
	} else if (strcmp(p, "[vvar]") == 0) {
		v->kind = ENG_VMA_KIND__VMA_VVAR;
	} else if (strcmp(p, "[vvar_vclock]") == 0) {
		v->kind = ENG_VMA_KIND__VMA_VVAR_VCLOCK;
	} else if (strcmp(p, "[vsyscall]") == 0) {
		v->kind = ENG_VMA_KIND__VMA_VSYSCALL;
	} else if (vmf & (ENG_VMF_HUGETLB | ENG_VMF_PFNMAP | ENG_VMF_IO | ENG_VMF_UFFD)) {
		return err_set(EOPNOTSUPP, "process %d: mapping %llx-%llx \"%s\" (%s) is not "
				 "supported", ctx->pid, (unsigned long long)m->start,
				 (unsigned long long)m->end, p,
				 vmf & ENG_VMF_HUGETLB ? "hugetlb" :
				 vmf & ENG_VMF_UFFD ? "registered with a userfaultfd: its own, or a "
				 "post-copy restore still placing its pages" : "device memory");
	} else if (m->shared) {
		if (special && !str_starts(p, "[anon_shmem:"))
			goto unsupported;
		if (shared_is_anon(p) || jvm_perfdata(p, ctx->pid, ctx->status.ns_pid)) {
			v->kind = ENG_VMA_KIND__VMA_ANON_SHARED;
			v->map_flags |= MAP_ANONYMOUS;
			v->has_shmid = true;
			v->shmid = (uint32_t)m->ino;
			/* files: memfd, SysV, /dev/shm, deleted file: one object
			 * with the fds of it (fd-file.c), stored once. */
			if (eng_dump_fobj_path(p)) {
				r = eng_dump_fobj_vma(ctx, m, v);
				if (r < 0)
					return r;
			}
		} else {
			v->kind = ENG_VMA_KIND__VMA_FILE_SHARED;
		}
	} else if (!p[0] || strcmp(p, "[heap]") == 0 || strcmp(p, "[stack]") == 0 ||
		   str_starts(p, "[anon:") || strcmp(p, "/dev/zero") == 0) {
		v->kind = ENG_VMA_KIND__VMA_ANON_PRIVATE;
		v->map_flags |= MAP_ANONYMOUS;
	} else if (special) {
		goto unsupported;
	} else if (path_deleted(p)) {
		/*
		 * A private mapping of a deleted file (an upgraded library, a memfd
		 * mapped MAP_PRIVATE): it cannot be mapped from its file again, so
		 * it is saved as anonymous memory holding every page up to the
		 * file's end (beyond it, the process could only get SIGBUS).
		 */
		char rel[96];
		struct stat st;
		uint64_t eof_pages;

		snprintf(rel, sizeof(rel), "map_files/%llx-%llx", (unsigned long long)m->start,
			 (unsigned long long)m->end);
		if (fstatat(ctx->proc_fd, rel, &st, 0) < 0)
			return err_set(EOPNOTSUPP, "process %d: mapping %llx-%llx of deleted file "
					 "\"%s\" cannot be read (%s)", ctx->pid,
					 (unsigned long long)m->start, (unsigned long long)m->end,
					 p, strerror(errno));
		eof_pages = st.st_size > (off_t)m->pgoff ?
			DIV_ROUND_UP((uint64_t)st.st_size - m->pgoff, WC_PAGE_SIZE) : 0;
		ctx->whole_pages[map_idx] = MIN(eof_pages, (m->end - m->start) / WC_PAGE_SIZE);
		v->kind = ENG_VMA_KIND__VMA_ANON_PRIVATE;
		v->map_flags |= MAP_ANONYMOUS;
	} else {
		v->kind = ENG_VMA_KIND__VMA_FILE_PRIVATE;
	}

	if (v->kind == ENG_VMA_KIND__VMA_FILE_PRIVATE || v->kind == ENG_VMA_KIND__VMA_FILE_SHARED) {
		char rel[96];
		struct stat st;
		uint32_t idx;

		snprintf(rel, sizeof(rel), "map_files/%llx-%llx", (unsigned long long)m->start,
			 (unsigned long long)m->end);
		if (fstatat(ctx->proc_fd, rel, &st, 0) < 0) {
			/* No map_files access: the identity shown by maps. */
			if (stat(p, &st) < 0 || st.st_ino != m->ino ||
			    major(st.st_dev) != m->dev_major || minor(st.st_dev) != m->dev_minor)
				return err_set(EOPNOTSUPP, "process %d: mapped file \"%s\" was "
						 "replaced or removed", ctx->pid, p);
		}
		r = eng_dump_file_id(ctx, p, &st, &idx);
		if (r < 0)
			return r;
		v->has_file = true;
		v->file = idx;
		v->has_pgoff = true;
		v->pgoff = m->pgoff;
	} else if (v->kind == ENG_VMA_KIND__VMA_ANON_SHARED) {
		v->has_pgoff = true;
		v->pgoff = m->pgoff;
	}
	if (p[0]) {
		v->name = strdup(p);
		if (!v->name)
			return -ENOMEM;
	}
	return 0;

unsupported:
	return err_set(EOPNOTSUPP, "process %d: special mapping %llx-%llx \"%s\" is not supported",
		       ctx->pid, (unsigned long long)m->start, (unsigned long long)m->end, p);
}

int eng_dump_vmas(struct eng_dump_ctx *ctx)
{
	EngProcess *proc = ctx->proc;

	proc->vmas = calloc(ctx->nr_maps ? ctx->nr_maps : 1, sizeof(*proc->vmas));
	ctx->whole_pages = calloc(ctx->nr_maps ? ctx->nr_maps : 1, sizeof(*ctx->whole_pages));
	if (!proc->vmas || !ctx->whole_pages)
		return -ENOMEM;
	for (size_t i = 0; i < ctx->nr_maps; i++) {
		EngVma *v = malloc(sizeof(*v));
		int r;

		if (!v)
			return -ENOMEM;
		eng_vma__init(v);
		proc->vmas[proc->n_vmas++] = v;
		/* files: a refused mapping is reported, the others inspected. */
		r = eng_dump_unsupported(ctx, vma_fill(ctx, i, &ctx->maps[i], ctx->vmflags[i], v));
		if (r < 0)
			return r;
	}
	if (ctx->stats)
		ctx->stats->nr_vmas = proc->n_vmas;
	return 0;
}

/*
 * The stored pages of a vma as sorted runs of page indices [start, end).
 * Kept as runs, not one byte per page: a JVM reserves gigabytes of which a
 * few pages are present, and every byte we touch first costs a page fault.
 */
struct run {
	uint64_t start, end;
};

struct runs {
	struct run *v;
	size_t n, cap;
	uint64_t stored;		/* pages in all runs */
};

static int runs_add(struct runs *rs, uint64_t start, uint64_t end)
{
	if (start >= end)
		return 0;
	rs->stored += end - start;
	if (rs->n && rs->v[rs->n - 1].end == start) {
		rs->v[rs->n - 1].end = end;
		return 0;
	}
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 64;
		struct run *nv = realloc(rs->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		rs->v = nv;
		rs->cap = cap;
	}
	rs->v[rs->n++] = (struct run){ start, end };
	return 0;
}

/* Runs of a shared anonymous area: the pages its shmem object holds. */
static int shmem_runs(int fd, uint64_t pgoff, uint64_t nr, struct runs *rs)
{
	off_t end = (off_t)(pgoff + nr * WC_PAGE_SIZE);
	off_t pos = (off_t)pgoff;

	while (pos < end) {
		off_t d = lseek(fd, pos, SEEK_DATA), h;
		int r;

		if (d < 0) {
			if (errno == ENXIO)
				break;
			return -errno;
		}
		if (d >= end)
			break;
		h = lseek(fd, d, SEEK_HOLE);
		if (h < 0)
			return -errno;
		h = MIN(h, end);
		r = runs_add(rs, (uint64_t)(ALIGN_DOWN(d, (off_t)WC_PAGE_SIZE) - (off_t)pgoff) /
				 WC_PAGE_SIZE,
			     DIV_ROUND_UP((uint64_t)(h - (off_t)pgoff), WC_PAGE_SIZE));
		if (r < 0)
			return r;
		pos = h;
	}
	return 0;
}

static bool pm_keep(const EngVma *v, uint64_t e)
{
	if (v->kind == ENG_VMA_KIND__VMA_FILE_PRIVATE)
		return ((e & PM_PRESENT) && !(e & PM_FILE)) || (e & PM_SWAP);
	return e & (PM_PRESENT | PM_SWAP);
}

/* Fallback without PAGEMAP_SCAN: /proc/PID/pagemap, 8 bytes per page. */
static int pagemap_runs(struct eng_dump_ctx *ctx, int pm_fd, const EngVma *v, struct runs *rs)
{
	uint64_t nr = (v->end - v->start) / WC_PAGE_SIZE;
	uint64_t pm[4096];

	for (uint64_t off = 0; off < nr; off += ARRAY_SIZE(pm)) {
		uint64_t n = MIN((uint64_t)ARRAY_SIZE(pm), nr - off);
		int r = pread_full(pm_fd, pm, n * sizeof(pm[0]),
				   (off_t)((v->start / WC_PAGE_SIZE + off) * 8));

		if (r < 0)
			return err_wrap(r, "cannot read /proc/%d/pagemap at %llx", ctx->pid,
					(unsigned long long)(v->start + off * WC_PAGE_SIZE));
		for (uint64_t i = 0; i < n; i++) {
			if (!pm_keep(v, pm[i]))
				continue;
			r = runs_add(rs, off + i, off + i + 1);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/*
 * The same classification from PAGEMAP_SCAN: the kernel returns only the
 * runs of present or swapped pages, split where the category changes, so a
 * sparse reservation of gigabytes costs a few calls instead of 8 bytes per
 * page. -EOPNOTSUPP if the kernel lacks it.
 */
static int scan_runs(int pm_fd, const EngVma *v, struct runs *rs)
{
	static bool unsupported;
	struct pm_page_region regs[256];
	struct pm_scan_arg_v1 arg = {
		.size = sizeof(arg), .start = v->start, .end = v->end,
		.vec = (uint64_t)(uintptr_t)regs, .vec_len = ARRAY_SIZE(regs),
		.category_anyof_mask = PM_PAGE_IS_PRESENT | PM_PAGE_IS_SWAPPED,
		.return_mask = PM_PAGE_IS_PRESENT | PM_PAGE_IS_SWAPPED | PM_PAGE_IS_FILE,
	};

	if (unsupported)
		return -EOPNOTSUPP;
	for (;;) {
		long n = ioctl(pm_fd, PM_PAGEMAP_SCAN, &arg);

		if (n < 0) {
			if (errno == ENOTTY || errno == EINVAL || errno == EOPNOTSUPP) {
				unsupported = true;
				return -EOPNOTSUPP;
			}
			return -errno;
		}
		for (long i = 0; i < n; i++) {
			uint64_t c = regs[i].categories;
			int r;

			if (regs[i].start < v->start || regs[i].end > v->end ||
			    regs[i].start >= regs[i].end)
				return -EIO;
			if (v->kind == ENG_VMA_KIND__VMA_FILE_PRIVATE &&
			    !(((c & PM_PAGE_IS_PRESENT) && !(c & PM_PAGE_IS_FILE)) ||
			      (c & PM_PAGE_IS_SWAPPED)))
				continue;
			r = runs_add(rs, (regs[i].start - v->start) / WC_PAGE_SIZE,
				     (regs[i].end - v->start) / WC_PAGE_SIZE);
			if (r < 0)
				return r;
		}
		if (arg.walk_end >= v->end)
			break;
		arg.start = arg.walk_end;
	}
	return 0;
}

/* VIA_NONE: kinds only, nothing read (eng_dump_opts.no_anon_pages). */
enum read_via { VIA_VM_READV, VIA_MEM, VIA_FD, VIA_NONE };

/*
 * Copy the stored pages of [first, first + n) of @v, given by @rs from run
 * index *@cursor on, into @dst back to back (compact: only as many pages of
 * @dst are touched as pages are stored), and fill @kinds for the chunk.
 */
static int read_chunk(struct eng_dump_ctx *ctx, const EngVma *v, const struct runs *rs,
		      size_t *cursor, uint64_t first, size_t n, uint8_t *kinds, uint8_t *dst,
		      enum read_via via, int fd, uint64_t *ret_pages)
{
	struct iovec local[MAX_IOV], remote[MAX_IOV];
	uint64_t last = first + n;
	size_t nr_iov = 0, expect = 0, pages = 0, k = *cursor;

	memset(kinds, WC_PAGE_ABSENT, n);
	while (k < rs->n && rs->v[k].end <= first)
		k++;
	for (; k < rs->n && rs->v[k].start < last && nr_iov < MAX_IOV; k++) {
		uint64_t a = MAX(rs->v[k].start, first), b = MIN(rs->v[k].end, last);

		memset(kinds + (a - first), WC_PAGE_DATA, b - a);
		local[nr_iov].iov_base = dst + pages * WC_PAGE_SIZE;
		local[nr_iov].iov_len = (b - a) * WC_PAGE_SIZE;
		remote[nr_iov].iov_base = (void *)(uintptr_t)(v->start + a * WC_PAGE_SIZE);
		remote[nr_iov].iov_len = local[nr_iov].iov_len;
		expect += local[nr_iov].iov_len;
		pages += b - a;
		nr_iov++;
		if (rs->v[k].end > last)
			break;		/* continues in the next chunk */
	}
	*cursor = k;
	if (!nr_iov || via == VIA_NONE)
		return 0;

	if (via == VIA_VM_READV) {
		ssize_t got = process_vm_readv(ctx->pid, local, nr_iov, remote, nr_iov, 0);

		if (got < 0 || (size_t)got != expect)
			return err_set(got < 0 ? errno : EFAULT, "cannot read memory of process %d "
					 "at %llx (%zd of %zu bytes)", ctx->pid,
					 (unsigned long long)(v->start + first * WC_PAGE_SIZE),
					 got, expect);
	} else {
		for (size_t i = 0; i < nr_iov; i++) {
			uint64_t addr = (uint64_t)(uintptr_t)remote[i].iov_base;
			off_t off = via == VIA_MEM ? (off_t)addr
						   : (off_t)(v->pgoff + addr - v->start);
			int r = pread_full(fd, local[i].iov_base, local[i].iov_len, off);

			if (r < 0)
				return err_wrap(r, "cannot read memory of process %d at %llx",
						ctx->pid, (unsigned long long)addr);
		}
	}
	*ret_pages += pages;
	return 0;
}

/*
 * The page phase is a two-stage pipeline: a reader thread walks the vmas
 * (page runs, then process_vm_readv of the stored pages of each chunk) and
 * fills a ring of NR_SLOTS chunk buffers; the calling thread hands them to
 * the sink in order (begin_area at each area's first chunk, put_pages).
 * Copying out of the process and the sink's hashing/writing overlap.
 */
#define NR_SLOTS	4

struct slot {
	EngVma *v;
	bool begin;			/* first chunk of a new area */
	bool unread;			/* VIA_NONE: kinds only, no data */
	size_t n;			/* pages in this chunk */
	uint8_t kinds[CHUNK_PAGES];
	uint8_t *data;			/* the chunk's stored pages, back to back */
};

struct pipeline {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct slot slots[NR_SLOTS];
	uint64_t produced, consumed;
	bool done, cancel;
	int err;			/* reader's error, with its detail in msg */
	char msg[512];
	struct eng_dump_ctx *ctx;
	int pm_fd;
	uint64_t pages_read;
};

/* The runs of @v and how to read them. */
static int vma_runs(struct eng_dump_ctx *ctx, int pm_fd, EngVma *v, uint64_t whole,
		    struct runs *rs, enum read_via *ret_via, int *ret_fd, int *shm_fd)
{
	uint64_t nr = (v->end - v->start) / WC_PAGE_SIZE;
	int r;

	rs->n = 0;
	rs->stored = 0;
	*ret_via = VIA_VM_READV;
	*ret_fd = -1;
	if (whole) {
		r = runs_add(rs, 0, whole);
		if (r < 0)
			return r;
		goto have_runs;
	}
	if (v->kind == ENG_VMA_KIND__VMA_ANON_SHARED) {
		char rel[96];

		snprintf(rel, sizeof(rel), "map_files/%llx-%llx", (unsigned long long)v->start,
			 (unsigned long long)v->end);
		*shm_fd = openat(ctx->proc_fd, rel, O_RDONLY | O_CLOEXEC);
		if (*shm_fd >= 0 && shmem_runs(*shm_fd, v->pgoff, nr, rs) == 0) {
			*ret_via = VIA_FD;
			*ret_fd = *shm_fd;
			return 0;
		}
		rs->n = 0;
		rs->stored = 0;
	}
	r = scan_runs(pm_fd, v, rs);
	if (r < 0) {
		rs->n = 0;
		rs->stored = 0;
		r = pagemap_runs(ctx, pm_fd, v, rs);
		if (r < 0)
			return r;
	}
have_runs:
	if (!(v->prot & PROT_READ) && rs->stored) {
		if (ctx->mem_fd < 0) {
			ctx->mem_fd = openat(ctx->proc_fd, "mem", O_RDONLY | O_CLOEXEC);
			if (ctx->mem_fd < 0)
				return err_wrap(-errno, "cannot open /proc/%d/mem", ctx->pid);
		}
		*ret_via = VIA_MEM;
		*ret_fd = ctx->mem_fd;
	}
	return 0;
}

/* Wait for a free slot; NULL if the consumer cancelled. */
static struct slot *pipe_slot_get(struct pipeline *pl)
{
	struct slot *s = NULL;

	pthread_mutex_lock(&pl->lock);
	while (!pl->cancel && pl->produced - pl->consumed >= NR_SLOTS)
		pthread_cond_wait(&pl->cond, &pl->lock);
	if (!pl->cancel)
		s = &pl->slots[pl->produced % NR_SLOTS];
	pthread_mutex_unlock(&pl->lock);
	return s;
}

static void pipe_slot_put(struct pipeline *pl)
{
	pthread_mutex_lock(&pl->lock);
	pl->produced++;
	pthread_cond_broadcast(&pl->cond);
	pthread_mutex_unlock(&pl->lock);
}

static int reader_run(struct pipeline *pl)
{
	struct eng_dump_ctx *ctx = pl->ctx;
	struct runs rs = {};
	int r = 0;

	for (size_t i = 0; i < ctx->proc->n_vmas && r >= 0; i++) {
		EngVma *v = ctx->proc->vmas[i];
		_cleanup_close_ int shm_fd = -1;
		enum read_via via;
		size_t cursor = 0;
		uint64_t nr, whole;
		int fd = -1;

		if (v->kind != ENG_VMA_KIND__VMA_ANON_PRIVATE &&
		    v->kind != ENG_VMA_KIND__VMA_FILE_PRIVATE &&
		    v->kind != ENG_VMA_KIND__VMA_ANON_SHARED)
			continue;
		if (v->has_fobj)
			continue;	/* files: stored once as its object (fd-file.c) */
		whole = ctx->whole_pages ? ctx->whole_pages[i] : 0;
		nr = (v->end - v->start) / WC_PAGE_SIZE;
		/* A private anonymous vma whose every page is resident or
		 * swapped (smaps) needs no page-table walk of its own: all are
		 * stored (PAGEMAP_SCAN walked every entry of wl-mem's 1 GiB for
		 * one run: ~19% of the reader's time). With no_anon_pages a wrong
		 * count would only make absent pages read as zero; when reading,
		 * every page is read whatever the count says. */
		if (!whole && v->kind == ENG_VMA_KIND__VMA_ANON_PRIVATE &&
		    i < ctx->nr_maps && ctx->maps[i].start == v->start &&
		    (ctx->maps[i].rss_kib + ctx->maps[i].swap_kib) * 1024 == nr * WC_PAGE_SIZE)
			whole = nr;
		r = vma_runs(ctx, pl->pm_fd, v, whole, &rs, &via, &fd, &shm_fd);
		if (r < 0 || !rs.stored)
			continue;	/* no area: restore maps it empty (or from its file) */
		if (ctx->no_anon_pages && v->kind == ENG_VMA_KIND__VMA_ANON_PRIVATE)
			via = VIA_NONE;
		/* An area lists every page of its vma: refuse absurd ones (e.g. a
		 * sanitizer's terabytes of shadow) rather than build a manifest of
		 * billions of page kinds. */
		if (nr > MAX_AREA_PAGES) {
			r = err_set(EOPNOTSUPP, "process %d: mapping %llx-%llx (%llu GiB) holds data "
					 "but is too large for a store area (max %llu GiB)", ctx->pid,
					 (unsigned long long)v->start, (unsigned long long)v->end,
					 (unsigned long long)(nr >> 18),
					 (unsigned long long)(MAX_AREA_PAGES >> 18));
			break;
		}
		for (uint64_t off = 0; off < nr; off += CHUNK_PAGES) {
			struct slot *s = pipe_slot_get(pl);

			if (!s) {
				r = -ECANCELED;
				break;
			}
			s->v = v;
			s->begin = off == 0;
			s->unread = via == VIA_NONE;
			s->n = MIN((uint64_t)CHUNK_PAGES, nr - off);
			r = read_chunk(ctx, v, &rs, &cursor, off, s->n, s->kinds, s->data, via, fd,
				       &pl->pages_read);
			if (r < 0)
				break;
			pipe_slot_put(pl);
		}
	}
	free(rs.v);
	return r;
}

static void *reader_thread(void *arg)
{
	struct pipeline *pl = arg;
	int r = reader_run(pl);

	pthread_mutex_lock(&pl->lock);
	if (r < 0 && r != -ECANCELED) {
		const char *d = err_detail();

		pl->err = r;
		snprintf(pl->msg, sizeof(pl->msg), "%s", d ? d : "");
	}
	pl->done = true;
	pthread_cond_broadcast(&pl->cond);
	pthread_mutex_unlock(&pl->lock);
	return NULL;
}

/* Hand a compact slot to the sink: one put_pages per run of stored pages
 * (their bytes back to back in s->data), one per run of absent pages. */
static int slot_put(struct wc_sink *sink, const struct slot *s)
{
	const uint8_t *data = s->data;

	if (s->unread)	/* no_anon_pages: DATA kinds without content */
		return sink->ops->put_pages(sink, NULL, s->kinds, s->n);
	for (size_t i = 0; i < s->n;) {
		uint8_t k = s->kinds[i];
		size_t j = i;
		int r;

		while (j < s->n && s->kinds[j] == k)
			j++;
		if (k == WC_PAGE_DATA) {
			r = sink->ops->put_pages(sink, data, NULL, j - i);
			data += (j - i) * WC_PAGE_SIZE;
		} else {
			r = sink->ops->put_pages(sink, s->data, s->kinds + i, j - i);
		}
		if (r < 0)
			return r;
		i = j;
	}
	return 0;
}

int eng_dump_pages(struct eng_dump_ctx *ctx, struct wc_sink *sink)
{
	struct pipeline *pl;
	int32_t next_area = (int32_t)ctx->area_base;
	pthread_t th;
	int r = 0;

	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return -ENOMEM;
	pthread_mutex_init(&pl->lock, NULL);
	pthread_cond_init(&pl->cond, NULL);
	pl->ctx = ctx;
	pl->pm_fd = openat(ctx->proc_fd, "pagemap", O_RDONLY | O_CLOEXEC);
	if (pl->pm_fd < 0) {
		r = err_wrap(-errno, "cannot open /proc/%d/pagemap", ctx->pid);
		goto out;
	}
	for (int i = 0; i < NR_SLOTS; i++) {
		pl->slots[i].data = aligned_alloc(WC_PAGE_SIZE, (size_t)CHUNK_PAGES * WC_PAGE_SIZE);
		if (!pl->slots[i].data) {
			r = -ENOMEM;
			goto out;
		}
	}
	r = -pthread_create(&th, NULL, reader_thread, pl);
	if (r < 0)
		goto out;

	for (;;) {
		struct slot *s;

		pthread_mutex_lock(&pl->lock);
		while (pl->consumed == pl->produced && !pl->done)
			pthread_cond_wait(&pl->cond, &pl->lock);
		if (pl->consumed == pl->produced) {	/* done, all consumed */
			pthread_mutex_unlock(&pl->lock);
			break;
		}
		s = &pl->slots[pl->consumed % NR_SLOTS];
		pthread_mutex_unlock(&pl->lock);

		if (s->begin) {
			struct wc_area_desc desc = {
				.start = s->v->start,
				.nr_pages = (s->v->end - s->v->start) / WC_PAGE_SIZE,
				.prot = s->v->prot, .flags = s->v->map_flags, .name = s->v->name,
			};

			r = sink->ops->begin_area(sink, &desc);
			if (r < 0) {
				r = err_wrap(r, "cannot start store area for %llx-%llx",
					     (unsigned long long)s->v->start,
					     (unsigned long long)s->v->end);
				break;
			}
			s->v->area = next_area++;
		}
		r = slot_put(sink, s);
		if (r < 0) {
			r = err_wrap(r, "cannot store pages of %llx-%llx",
				     (unsigned long long)s->v->start, (unsigned long long)s->v->end);
			break;
		}
		pthread_mutex_lock(&pl->lock);
		pl->consumed++;
		pthread_cond_broadcast(&pl->cond);
		pthread_mutex_unlock(&pl->lock);
	}
	pthread_mutex_lock(&pl->lock);
	pl->cancel = true;
	pthread_cond_broadcast(&pl->cond);
	pthread_mutex_unlock(&pl->lock);
	pthread_join(th, NULL);
	if (r >= 0 && pl->err < 0)
		r = err_set(pl->err, "%s", pl->msg[0] ? pl->msg : strerror(-pl->err));
	if (ctx->stats) {
		ctx->stats->nr_areas = next_area;
		ctx->stats->pages_read = pl->pages_read;
	}
out:
	if (pl->pm_fd >= 0)
		close(pl->pm_fd);
	for (int i = 0; i < NR_SLOTS; i++)
		free(pl->slots[i].data);
	pthread_mutex_destroy(&pl->lock);
	pthread_cond_destroy(&pl->cond);
	free(pl);
	return r;
}

int eng_dump_vdso_hash(struct eng_dump_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nr_maps; i++) {
		const struct eng_proc_map *m = &ctx->maps[i];
		size_t len = m->end - m->start;
		_cleanup_free_ void *buf = NULL;
		struct iovec local, remote;
		XXH128_canonical_t c;

		if (strcmp(m->path, "[vdso]") != 0)
			continue;
		if (len > (64u << 20))
			return err_set(EINVAL, "process %d: [vdso] of %zu bytes", ctx->pid, len);
		buf = malloc(len);
		if (!buf)
			return -ENOMEM;
		local = (struct iovec){ buf, len };
		remote = (struct iovec){ (void *)(uintptr_t)m->start, len };
		if (process_vm_readv(ctx->pid, &local, 1, &remote, 1, 0) != (ssize_t)len)
			return err_wrap(-errno ?: -EIO, "cannot read the [vdso] of process %d",
					ctx->pid);
		XXH128_canonicalFromHash(&c, XXH3_128bits(buf, len));
		ctx->image->vdso_hash.data = malloc(sizeof(c));
		if (!ctx->image->vdso_hash.data)
			return -ENOMEM;
		memcpy(ctx->image->vdso_hash.data, &c, sizeof(c));
		ctx->image->vdso_hash.len = sizeof(c);
		ctx->image->has_vdso_hash = true;
		ctx->image->has_vdso_size = true;
		ctx->image->vdso_size = len;
		return 0;
	}
	return 0;	/* no vdso (vdso=0 on the kernel command line) */
}
