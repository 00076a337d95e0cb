// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The store benchmark (issue 2). Prints ONE JSON line.
 *
 *  1. Builds 1 GiB of pages in memory: ~50% unique random, ~25% copies of
 *     8 pattern pages, ~25% zero, split into 16 areas like a process.
 *  2. Ingests it as one snapshot into a fresh store in a temp dir
 *     (page cache, no fsync): ingest_gbps = logical bytes / time.
 *  3. Reads it all back with wc_snapshot_fill() into populated, zeroed
 *     memory, through io_uring and through the pread baseline (a second
 *     store handle with no_uring), page cache hot (one untimed warm-up
 *     fill first); the median of 3 runs each, logical bytes / time.
 *     Each fill is compared with the original.
 *  4. disk_ratio_mixed = bytes allocated by the store directory (packs,
 *     idx, manifest: st_blocks) / logical bytes.
 *  5. Ten snapshots of 256 MiB of random pages sharing 90% of their pages
 *     in a fresh store: ten_shared_ratio = store bytes after all ten /
 *     store bytes after the first.
 *
 * Besides: the best of the runs (*_best_gbps), the CPU time the process
 * spent in each timed section, all threads and io_uring workers included
 * (*_cpu_ms, medians), and the 1-minute load average at the start: on a
 * shared machine a wall-clock figure alone does not say much.
 *
 * Environment: BENCH_STORE_MIB (default 1024), BENCH_STORE_TEN_MIB (256),
 * BENCH_STORE_RUNS (3), TMPDIR (where the stores go). For profiling one
 * read path (perf record), BENCH_STORE_ONLY=uring or =pread times only
 * that one (the other's figures are then 0).
 * Targets (issue 2, this 2-core VM): ingest >= 2 GB/s, io_uring read
 * >= 4 GB/s and >= 1.5x pread, disk <= 0.55 logical, ten <= 2x one.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "warmcache.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define NR_AREAS	16
#define NR_PATTERNS	8
#define BATCH_PAGES	1024

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of the whole process (every thread, io_uring workers included). */
static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void random_page(uint64_t seed, void *page)
{
	uint64_t *w = page, s = mix64(seed);

	/* xorshift64*: fast enough that generation does not dominate. */
	for (size_t i = 0; i < WC_PAGE_SIZE / 8; i++) {
		s ^= s >> 12;
		s ^= s << 25;
		s ^= s >> 27;
		w[i] = s * 0x2545f4914f6cdd1dull;
	}
	w[0] |= 1;
}

static _Noreturn void die(const char *what, int r)
{
	fprintf(stderr, "bench-store: %s: %s\n", what, r < 0 ? err_str(r) : strerror(errno));
	exit(1);
}

static void *map_populated(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap", 0);
	if (madvise(p, len, MADV_POPULATE_WRITE) < 0)
		memset(p, 0, len);
	return p;
}

static uint64_t du_bytes;

static int du_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (flag == FTW_F)
		du_bytes += (uint64_t)st->st_blocks * 512;
	return 0;
}

static uint64_t du(const char *dir)
{
	du_bytes = 0;
	if (nftw(dir, du_one, 16, FTW_PHYS) < 0)
		die("nftw", 0);
	return du_bytes;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Ingest @nr_pages pages of @buf as one snapshot of @nr_areas areas. */
static double last_cpu_s;	/* CPU time of the last ingest() or fill_all() */

static double ingest(struct wc_store *store, const uint8_t *buf, size_t nr_pages,
		     unsigned nr_areas, char id[WC_ID_LEN + 1])
{
	size_t per_area = nr_pages / nr_areas;
	struct wc_sink *sink;
	double t0 = now_s(), c0 = cpu_s();
	int r;

	r = wc_store_sink_new(store, &sink);
	if (r < 0)
		die("sink", r);
	for (unsigned a = 0; a < nr_areas; a++) {
		size_t first = a * per_area, n = a == nr_areas - 1 ? nr_pages - first : per_area;
		struct wc_area_desc d = {
			.start = 0x7f0000000000ull + (uint64_t)a * (1ull << 32),
			.nr_pages = n,
			.prot = 3,
		};

		r = sink->ops->begin_area(sink, &d);
		if (r < 0)
			die("begin_area", r);
		for (size_t j = 0; j < n; j += BATCH_PAGES) {
			size_t k = n - j < BATCH_PAGES ? n - j : BATCH_PAGES;

			r = sink->ops->put_pages(sink, buf + (first + j) * WC_PAGE_SIZE, NULL, k);
			if (r < 0)
				die("put_pages", r);
		}
	}
	r = sink->ops->commit(sink, id);
	if (r < 0)
		die("commit", r);
	wc_sink_free(sink);
	last_cpu_s = cpu_s() - c0;
	return now_s() - t0;
}

static double fill_all(struct wc_store *store, const char *id, uint8_t *dst, size_t nr_pages,
		       const uint8_t *expect)
{
	struct wc_fill_target tg[NR_AREAS];
	struct wc_snapshot *snap;
	struct wc_source *src;
	size_t nr_areas, off = 0;
	double t0, c0, t;
	int r;

	/* The fill contract: @dst reads as zero. Not timed. */
	memset(dst, 0, nr_pages * WC_PAGE_SIZE);
	t0 = now_s();
	c0 = cpu_s();
	r = wc_store_source_new(store, &src);
	if (r < 0)
		die("source", r);
	r = wc_snapshot_open(store, id, &snap);
	if (r < 0)
		die("open snapshot", r);
	nr_areas = wc_snapshot_nr_areas(snap);
	if (nr_areas > NR_AREAS)
		die("too many areas", -EINVAL);
	for (size_t a = 0; a < nr_areas; a++) {
		tg[a].area_idx = a;
		tg[a].dst = dst + off;
		off += wc_snapshot_area(snap, a)->nr_pages * WC_PAGE_SIZE;
	}
	r = wc_snapshot_fill(snap, src, tg, nr_areas);
	if (r < 0)
		die("fill", r);
	t = now_s() - t0;
	last_cpu_s = cpu_s() - c0;
	wc_snapshot_close(snap);
	wc_source_free(src);
	if (memcmp(dst, expect, nr_pages * WC_PAGE_SIZE) != 0) {
		fprintf(stderr, "bench-store: data read back differs from what was ingested\n");
		exit(1);
	}
	return t;
}

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), dbl_cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static struct wc_store *open_store(const char *dir, bool create, bool no_uring)
{
	struct wc_store_opts o = { .sz = sizeof(o), .no_uring = no_uring };
	struct wc_store *store;
	int r;

	r = wc_store_open(dir, create ? WC_OPEN_CREATE : 0, &o, &store);
	if (r < 0)
		die("open store", r);
	return store;
}

static const char *fs_name(const char *dir)
{
	struct statfs sf;

	if (statfs(dir, &sf) < 0)
		return "?";
	switch ((unsigned long)sf.f_type) {
	case EXT4_SUPER_MAGIC:
		return "ext4";
	case TMPFS_MAGIC:
		return "tmpfs";
	case XFS_SUPER_MAGIC:
		return "xfs";
	case BTRFS_SUPER_MAGIC:
		return "btrfs";
	case OVERLAYFS_SUPER_MAGIC:
		return "overlayfs";
	default:
		return "other";
	}
}

static void cpu_model(char *buf, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[512];

	snprintf(buf, len, "?");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':');

		if (strncmp(line, "model name", 10) == 0 && c) {
			c += 2;
			c[strcspn(c, "\n")] = 0;
			for (char *q = c; *q; q++)
				if (*q == '"' || *q == '\\')
					*q = ' ';
			snprintf(buf, len, "%s", c);
			break;
		}
	}
	fclose(f);
}

static size_t env_size(const char *name, size_t def)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : def;
}

int main(void)
{
	size_t mib = env_size("BENCH_STORE_MIB", 1024), ten_mib = env_size("BENCH_STORE_TEN_MIB", 256);
	int runs = (int)env_size("BENCH_STORE_RUNS", 3);
	size_t nr_pages = mib * 256, len = nr_pages * WC_PAGE_SIZE;
	const char *tmp = getenv("TMPDIR");
	char dir[4096], dir10[4096], id[WC_ID_LEN + 1], cpu[256], date[64];
	uint64_t logical = len, unique_bytes = 0, disk_mixed, disk_one = 0, disk_ten;
	double t_ingest, t_uring[16], t_pread[16], t, cpu_ingest, cpu_uring[16], cpu_pread[16];
	double load1 = 0;
	uint8_t *src, *dst, pattern[NR_PATTERNS][WC_PAGE_SIZE];
	struct wc_store *store, *store_pread;
	struct utsname un;
	bool uring;
	time_t now;

	if (runs < 1 || runs > 16)
		runs = 3;
	/* The machine may be shared: say how busy it was. */
	{
		FILE *f = fopen("/proc/loadavg", "re");

		if (f) {
			if (fscanf(f, "%lf", &load1) != 1)
				load1 = 0;
			fclose(f);
		}
	}
	if (!tmp || !*tmp)
		tmp = "/tmp";
	snprintf(dir, sizeof(dir), "%s/wf-bench-store-XXXXXX", tmp);
	if (!mkdtemp(dir))
		die("mkdtemp", 0);

	/* 1. The mixed GiB. */
	src = map_populated(len);
	dst = map_populated(len);
	for (int p = 0; p < NR_PATTERNS; p++)
		random_page(0xfeed0000 + p, pattern[p]);
	for (size_t i = 0; i < nr_pages; i++) {
		uint64_t h = mix64(i ^ 0x5151);
		uint8_t *page = src + i * WC_PAGE_SIZE;

		switch (h % 4) {
		case 0:
		case 1:
			random_page(i, page);
			unique_bytes += WC_PAGE_SIZE;
			break;
		case 2:
			memcpy(page, pattern[(h >> 8) % NR_PATTERNS], WC_PAGE_SIZE);
			break;
		default:
			break;	/* zero: already */
		}
	}

	/* 2. Ingest. */
	store = open_store(dir, true, false);
	uring = wc_store_uses_uring(store);
	t_ingest = ingest(store, src, nr_pages, NR_AREAS, id);
	cpu_ingest = last_cpu_s;

	/* 3. Read back: warm-up, then alternate io_uring and pread runs. */
	store_pread = open_store(dir, false, true);
	fill_all(store, id, dst, nr_pages, src);
	for (int i = 0; i < runs; i++) {
		const char *only = getenv("BENCH_STORE_ONLY");

		t_uring[i] = t_pread[i] = INFINITY;
		cpu_uring[i] = cpu_pread[i] = 0;
		if (!only || strcmp(only, "pread") != 0) {
			t_uring[i] = fill_all(store, id, dst, nr_pages, src);
			cpu_uring[i] = last_cpu_s;
		}
		if (!only || strcmp(only, "uring") != 0) {
			t_pread[i] = fill_all(store_pread, id, dst, nr_pages, src);
			cpu_pread[i] = last_cpu_s;
		}
	}

	/* 4. Bytes on disk. */
	disk_mixed = du(dir);
	wc_store_close(store_pread);
	wc_store_close(store);
	munmap(dst, len);
	rm_rf(dir);

	/* 5. Ten snapshots sharing 90% of their pages. */
	{
		size_t n10 = ten_mib * 256;
		uint8_t *buf = src;	/* reuse: n10 <= nr_pages */

		if (n10 > nr_pages)
			n10 = nr_pages;
		snprintf(dir10, sizeof(dir10), "%s/wf-bench-store10-XXXXXX", tmp);
		if (!mkdtemp(dir10))
			die("mkdtemp", 0);
		for (size_t i = 0; i < n10; i++)
			random_page(0x10000000 + i, buf + i * WC_PAGE_SIZE);
		store = open_store(dir10, true, false);
		for (unsigned k = 0; k < 10; k++) {
			/* Snapshot k: every page i with i % 10 == k is its own. */
			if (k > 0)
				for (size_t i = k; i < n10; i += 10)
					random_page(0x20000000 + k * n10 + i, buf + i * WC_PAGE_SIZE);
			ingest(store, buf, n10, 4, id);
			if (k == 0)
				disk_one = du(dir10);
		}
		disk_ten = du(dir10);
		wc_store_close(store);
		rm_rf(dir10);
	}
	munmap(src, len);

	uname(&un);
	cpu_model(cpu, sizeof(cpu));
	now = time(NULL);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	t = median(t_uring, runs);
	{
		double tp = median(t_pread, runs);
		/* BENCH_STORE_ONLY: the path not run reads as 0, not inf. */
		double ratio = isfinite(t) && isfinite(tp) ? tp / t : 0;

		printf("{\"bench\":\"store\",\"logical_bytes\":%" PRIu64 ",\"unique_bytes\":%" PRIu64
		       ",\"ingest_gbps\":%.2f,\"read_uring_gbps\":%.2f,\"read_pread_gbps\":%.2f"
		       ",\"uring_vs_pread\":%.2f,\"read_uring_unique_gbps\":%.2f"
		       ",\"read_uring_best_gbps\":%.2f,\"read_pread_best_gbps\":%.2f"
		       ",\"ingest_cpu_ms\":%.1f,\"read_uring_cpu_ms\":%.1f,\"read_pread_cpu_ms\":%.1f"
		       ",\"disk_ratio_mixed\":%.4f,\"ten_shared_ratio\":%.3f,\"ten_snapshot_bytes\":%zu"
		       ",\"io_uring\":%s,\"runs\":%d,\"fs\":\"%s\",\"kernel\":\"%s\",\"cpu\":\"%s\""
		       ",\"nr_cpus\":%ld,\"mem_gib\":%.1f,\"load1\":%.2f,\"date\":\"%s\"}\n",
		       logical, unique_bytes, logical / t_ingest / 1e9, logical / t / 1e9,
		       logical / tp / 1e9, ratio, unique_bytes / t / 1e9,
		       logical / t_uring[0] / 1e9, logical / t_pread[0] / 1e9,
		       cpu_ingest * 1e3, median(cpu_uring, runs) * 1e3, median(cpu_pread, runs) * 1e3,
		       (double)disk_mixed / logical, (double)disk_ten / disk_one,
		       ten_mib << 20, uring ? "true" : "false", runs, fs_name(tmp), un.release, cpu,
		       sysconf(_SC_NPROCESSORS_ONLN),
		       (double)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE) / (1u << 30), load1, date);
	}
	return 0;
}
