// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A store on a full file system: a small tmpfs (8 MiB) mounted in a private
 * mount namespace. An ingest that does not fit fails with -ENOSPC, no
 * snapshot appears, the earlier snapshots still verify, and after gc a
 * smaller ingest succeeds. Then the file system is filled up to leave
 * every amount of free space from nothing to more than a snapshot needs,
 * so that the disk runs full at every stage of an ingest (pages, index
 * records, manifest); each ingest must either succeed completely or fail
 * with -ENOSPC leaving no trace but reclaimable pages. Both the io_uring
 * and the pread/pwrite paths are exercised.
 *
 * Needs root (mount namespace, tmpfs): skipped (77) otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/err.h"
#include "store-test.h"

static char store_dir[4096];
static char filler_path[4096];

static struct st_spec spec(uint64_t seed, uint32_t nr_pages)
{
	return (struct st_spec){ .seed = seed, .nr_areas = 1, .nr_pages = nr_pages,
				 .pct_zero = 10, .pct_absent = 5 };
}

static struct wc_store *open_store(bool no_uring)
{
	struct wc_store_opts o = { .sz = sizeof(o), .no_uring = no_uring };
	struct wc_store *store;
	int r;

	r = wc_store_open(store_dir, 0, &o, &store);
	ST_REQUIRE(r == 0, "open: %s", err_str(r));
	return store;
}

static size_t nr_snapshots(void)
{
	struct wc_store *store = open_store(false);
	char **ids;
	size_t nr;

	ST_REQUIRE(wc_store_list(store, &ids, &nr) == 0, "list");
	wc_id_list_free(ids, nr);
	wc_store_close(store);
	return nr;
}

static void verify_all(const char *ctx)
{
	struct wc_store *store = open_store(false);
	struct wc_verify_report rep;
	size_t nr;
	char *out = NULL;
	int r;

	ST_CHECK(st_check_all(store, ctx, &nr) == 0, "%s: damaged snapshots", ctx);
	r = wc_store_verify(store, NULL, NULL, NULL, &rep);
	ST_CHECK(r == 0, "%s: verify: %s", ctx, err_str(r));
	wc_store_close(store);
	r = st_cli(store_dir, &out, "verify", NULL);
	ST_CHECK(r == 0, "%s: warmfork verify exited %d:\n%s", ctx, r, out);
	free(out);
}

static void gc_to_live(const char *ctx)
{
	struct wc_store *store = open_store(false);
	struct wc_store_stats st;
	struct wc_gc_stats gs;
	struct wc_key *live;
	size_t nr_live;
	int r;

	r = wc_store_gc(store, &gs);
	ST_CHECK(r == 0, "%s: gc: %s", ctx, err_str(r));
	ST_REQUIRE(st_live_keys(store, &live, &nr_live) == 0, "live keys");
	free(live);
	ST_REQUIRE(wc_store_stats(store, &st) == 0, "stats");
	st_gc_bound_check(ctx, &st, nr_live, false);
	wc_store_close(store);
}

static uint64_t free_bytes(void)
{
	struct statvfs sv;

	ST_REQUIRE(statvfs(store_dir, &sv) == 0, "statvfs");
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

/* Fill the file system so that about @leave bytes stay free. */
static void fill_up(uint64_t leave)
{
	uint64_t avail = free_bytes();
	int fd;

	unlink(filler_path);
	if (avail <= leave)
		return;
	fd = open(filler_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ST_REQUIRE(fd >= 0, "filler");
	ST_REQUIRE(posix_fallocate(fd, 0, avail - leave) == 0, "fallocate %" PRIu64, avail - leave);
	close(fd);
}

int main(void)
{
	char *mnt;
	char a[WC_ID_LEN + 1], b[WC_ID_LEN + 1], c[WC_ID_LEN + 1], d[WC_ID_LEN + 1];
	struct wc_store *store;
	struct wc_store_stats before, after;
	unsigned ok = 0, nospc = 0;
	int r;

	/* line-buffered: the progress shows even when a timeout kills us */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("SKIP: needs root for a private tmpfs\n");
		return 77;
	}
	if (unshare(CLONE_NEWNS) < 0) {
		printf("SKIP: unshare(CLONE_NEWNS): %s\n", strerror(errno));
		return 77;
	}
	ST_REQUIRE(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0, "make / private: %m");
	mnt = st_tmpdir("enospc");
	ST_REQUIRE(mnt, "tmpdir");
	if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=0700") < 0) {
		printf("SKIP: mount tmpfs: %s\n", strerror(errno));
		return 77;
	}
	snprintf(store_dir, sizeof(store_dir), "%s/store", mnt);
	snprintf(filler_path, sizeof(filler_path), "%s/filler", mnt);
	r = wc_store_open(store_dir, WC_OPEN_CREATE, NULL, &store);
	ST_REQUIRE(r == 0, "create: %s", err_str(r));

	/* Two snapshots that fit (about 1.4 MiB of pages). */
	{
		struct st_spec sa = spec(0xa, 200), sb = spec(0xb, 150);

		r = st_ingest(store, &sa, a);
		ST_REQUIRE(r == 0, "ingest a: %s", err_str(r));
		r = st_ingest(store, &sb, b);
		ST_REQUIRE(r == 0, "ingest b: %s", err_str(r));
	}
	wc_store_close(store);

	/* 1. Run out of space at every stage of an ingest. */
	for (unsigned i = 0; i < 24; i++) {
		/* 0 .. ~1.1 MiB free, for a snapshot of ~0.8 MiB of pages. */
		uint64_t leave = i < 8 ? i * 4096 : (i - 7) * 72 * 1024;
		bool no_uring = i % 2;
		struct st_spec se = spec(0xe00 + i, 240);
		char e[WC_ID_LEN + 1], ctx[64];
		size_t nr_before = nr_snapshots();

		snprintf(ctx, sizeof(ctx), "fill %u (%" PRIu64 " bytes free, %s)", i, leave,
			 no_uring ? "pwrite" : "io_uring");
		fill_up(leave);
		store = open_store(no_uring);
		r = st_ingest(store, &se, e);
		wc_store_close(store);
		if (r == 0) {
			char why[256];

			ok++;
			store = open_store(false);
			r = st_check_snapshot(store, NULL, e, why, sizeof(why));
			ST_CHECK(r == 0, "%s: snapshot %s: %s", ctx, e, why);
			r = wc_store_remove(store, e);
			ST_CHECK(r == 0, "%s: rm: %s", ctx, err_str(r));
			wc_store_close(store);
		} else {
			ST_CHECK(r == -ENOSPC, "%s: ingest returned %d (%s), expected -ENOSPC", ctx, r,
				 err_str(r));
			nospc++;
			ST_CHECK(nr_snapshots() == nr_before, "%s: a failed ingest left a snapshot", ctx);
		}
		/* Still full: the store must be readable and verify. */
		verify_all(ctx);
		unlink(filler_path);
		gc_to_live(ctx);
	}
	printf("fill-up: %u ingests fitted, %u failed with ENOSPC\n", ok, nospc);
	ST_CHECK(ok > 0 && nospc > 0, "the fill-up loop did not cover both outcomes");

	/* 2. One ingest far bigger than the file system (12 MiB on 8). */
	store = open_store(false);
	{
		struct st_spec sc = spec(0xc, 3072);

		ST_REQUIRE(wc_store_stats(store, &before) == 0, "stats");
		r = st_ingest(store, &sc, c);
		ST_CHECK(r == -ENOSPC, "oversized ingest returned %d (%s), expected -ENOSPC", r,
			 err_str(r));
	}
	wc_store_close(store);
	ST_CHECK(nr_snapshots() == 2, "a snapshot appeared after the failed ingest (%zu listed)",
		 nr_snapshots());
	verify_all("after ENOSPC");

	/* 3. gc, then a smaller ingest. The pages the failed ingest wrote
	 * before the disk filled up share a pack with the live ones; gc
	 * compacts such a pack by copying its live pages into a new one
	 * first, which needs free space the full disk does not have. So gc
	 * may fail here with -ENOSPC, but must leave the store intact.
	 * ST_GC_STRICT=1: gc must reclaim the space and the ingest fit. */
	{
		struct wc_gc_stats gs;
		struct st_spec sd = spec(0xd, 700);

		store = open_store(false);
		r = wc_store_gc(store, &gs);
		printf("gc on the full file system: %s\n", r ? err_str(r) : "ok");
		if (st_gc_strict())
			ST_CHECK(r == 0, "gc on the full file system: %s (ST_GC_STRICT)", err_str(r));
		else
			ST_CHECK(r == 0 || r == -ENOSPC, "gc on the full file system: %s", err_str(r));
		ST_REQUIRE(wc_store_stats(store, &after) == 0, "stats");
		if (r == 0)
			ST_CHECK(after.pack_bytes <= before.pack_bytes,
				 "gc left %" PRIu64 " pack bytes, %" PRIu64 " before the failed ingest",
				 after.pack_bytes, before.pack_bytes);
		wc_store_close(store);
		verify_all("after gc on the full file system");

		store = open_store(false);
		r = st_ingest(store, &sd, d);
		wc_store_close(store);
		printf("smaller ingest after gc: %s\n", r ? err_str(r) : "ok");
		if (st_gc_strict())
			ST_CHECK(r == 0, "smaller ingest after gc: %s (ST_GC_STRICT)", err_str(r));
		else
			ST_CHECK(r == 0 || r == -ENOSPC, "smaller ingest after gc: %s", err_str(r));
		ST_CHECK(nr_snapshots() == 2 + (r == 0), "%zu snapshots listed", nr_snapshots());
		verify_all("after the smaller ingest");
	}

	umount2(mnt, MNT_DETACH);
	if (st_failures) {
		printf("FAILED: %d check(s)\n", st_failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
