// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kill -9 at random points.
 *
 * Phase 1: a child ingests snapshots in a loop; the parent kills it with
 * SIGKILL at a random point of its progress (a random number of put_pages
 * steps, plus a random delay shorter than a step). After every kill, every listed snapshot must
 * open and fill with exactly the content generated from its seed, verify
 * (API and `warmfork verify`) must pass, and gc must then leave exactly the
 * live pages (the half-written snapshot's pages are reclaimed) while every
 * complete snapshot stays intact.
 *
 * Phase 2: a child runs gc (after snapshots were removed, so it has work)
 * and is killed at a random point; the store must still be complete and a
 * later gc must finish the job.
 *
 * Phase 3: the same through the CLI: `warmfork ingest FILE FILE` killed at
 * random times; every listed snapshot holds exactly the two files, and
 * `warmfork verify`, `inspect --json` and `gc` succeed.
 *
 * The run is seeded: ST_SEED=N reproduces it, ST_ROUNDS=N changes the number
 * of kills (default 40).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "store-test.h"

#define MAX_CHILD_SNAPS	8
#define ALIGN_UP_PAGE(x) (((x) + WC_PAGE_SIZE - 1) & ~(size_t)(WC_PAGE_SIZE - 1))

static const char *dir;
static uint64_t seed;
/* The ingesting child's progress (st_progress), shared with the parent. */
static volatile uint64_t *shared_progress;

static struct st_spec child_spec(unsigned round, unsigned k)
{
	return (struct st_spec){
		.seed = st_mix64(seed ^ ((uint64_t)round << 20) ^ k),
		.pool_seed = seed,		/* shared with the baseline */
		.nr_areas = 2,
		.nr_pages = 512,
		.pool_pages = 128,
		.pct_absent = 10,
		.pct_zero = 15,
		.pct_shared = 35,
	};
}

static _Noreturn void child_ingest_loop(unsigned round, int ready_fd)
{
	struct wc_store *store;
	char id[WC_ID_LEN + 1];
	int r;

	r = wc_store_open(dir, 0, NULL, &store);
	if (r < 0) {
		fprintf(stderr, "child: open: %s\n", err_str(r));
		_exit(2);
	}
	st_progress = shared_progress;
	if (write(ready_fd, "R", 1) != 1)
		_exit(2);
	for (unsigned k = 0; k < 10000; k++) {
		struct st_spec s = child_spec(round, k);

		r = st_ingest(store, &s, id);
		if (r < 0) {
			fprintf(stderr, "child: ingest: %s\n", err_str(r));
			_exit(3);
		}
	}
	_exit(0);
}

static _Noreturn void child_gc(int ready_fd)
{
	struct wc_store *store;
	struct wc_gc_stats gs;
	int r;

	r = wc_store_open(dir, 0, NULL, &store);
	if (r < 0)
		_exit(2);
	if (write(ready_fd, "R", 1) != 1)
		_exit(2);
	r = wc_store_gc(store, &gs);
	_exit(r < 0 ? 3 : 0);
}

/* Fork an ingest loop (@kind 0) or a gc (1), wait until it is ready and,
 * for an ingest, until it has made @at_step steps of progress, then kill it
 * after @delay_us more. Returns 0 if it died of our SIGKILL, -1 otherwise
 * (*ret_status says how it ended). */
static int run_and_kill(int kind, unsigned round, uint64_t at_step, uint64_t delay_us,
			int *ret_status)
{
	int p[2], status;
	pid_t pid;
	char c;

	*shared_progress = 0;
	ST_REQUIRE(pipe(p) == 0, "pipe");
	pid = fork();
	ST_REQUIRE(pid >= 0, "fork");
	if (pid == 0) {
		close(p[0]);
		if (kind == 0)
			child_ingest_loop(round, p[1]);
		child_gc(p[1]);
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1) {
		/* The child died before it was ready. */
		close(p[0]);
		waitpid(pid, &status, 0);
		*ret_status = status;
		return -1;
	}
	close(p[0]);
	if (kind == 0) {
		uint64_t t0 = st_now_us();

		while (__atomic_load_n(shared_progress, __ATOMIC_SEQ_CST) < at_step) {
			if (waitpid(pid, &status, WNOHANG) == pid) {
				*ret_status = status;
				return -1;
			}
			ST_REQUIRE(st_now_us() - t0 < 60u * 1000 * 1000,
				   "the ingest child made no progress for a minute");
			usleep(20);
		}
	}
	if (delay_us)
		usleep(delay_us);
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	*ret_status = status;
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? 0 : -1;
}

static void verify_both(const char *ctx)
{
	struct wc_verify_report rep = {};
	struct wc_store *store;
	char *out = NULL;
	int r;

	r = wc_store_open(dir, 0, NULL, &store);
	ST_REQUIRE(r == 0, "%s: open: %s", ctx, err_str(r));
	r = wc_store_verify(store, NULL, NULL, NULL, &rep);
	ST_CHECK(r == 0 && rep.pages_bad == 0 && rep.pages_missing == 0,
		 "%s: wc_store_verify = %d (%s), bad %" PRIu64 " missing %" PRIu64,
		 ctx, r, r ? err_str(r) : "", rep.pages_bad, rep.pages_missing);
	wc_store_close(store);
	r = st_cli(dir, &out, "verify", NULL);
	ST_CHECK(r == 0, "%s: warmfork verify exited %d:\n%s", ctx, r, out ? out : "");
	free(out);
}

/* Remove the oldest child snapshots beyond MAX_CHILD_SNAPS (never the
 * baseline). Returns how many were removed. */
static int trim(struct wc_store *store, const char *baseline)
{
	char **ids;
	size_t nr, kept = 0;
	int removed = 0, r;

	r = wc_store_list(store, &ids, &nr);
	ST_REQUIRE(r == 0, "list: %s", err_str(r));
	/* newest first */
	for (size_t i = 0; i < nr; i++) {
		if (strcmp(ids[i], baseline) == 0)
			continue;
		if (++kept <= MAX_CHILD_SNAPS)
			continue;
		r = wc_store_remove(store, ids[i]);
		ST_CHECK(r == 0, "rm %s: %s", ids[i], err_str(r));
		removed++;
	}
	wc_id_list_free(ids, nr);
	return removed;
}

/*
 * gc, and check what it left against the documented policy (or exactly the
 * live pages with ST_GC_STRICT=1), and that every snapshot is intact.
 * Returns 1 if the garbage was all reclaimed although there was some.
 */
static int gc_and_check(const char *ctx, bool via_cli)
{
	struct wc_store_stats before, after;
	struct wc_store *store;
	struct wc_key *live = NULL;
	size_t nr_live = 0;
	uint64_t live_bytes;
	int r;
	bool garbage, exact;

	r = wc_store_open(dir, 0, NULL, &store);
	ST_REQUIRE(r == 0, "%s: open: %s", ctx, err_str(r));
	r = st_live_keys(store, &live, &nr_live);
	ST_REQUIRE(r == 0, "%s: live keys: %s", ctx, err_str(r));
	free(live);
	live_bytes = (uint64_t)nr_live * WC_PAGE_SIZE;
	r = wc_store_stats(store, &before);
	ST_REQUIRE(r == 0, "%s: stats: %s", ctx, err_str(r));
	garbage = before.pack_bytes > live_bytes || before.nr_pages > nr_live;
	if (via_cli) {
		char *out = NULL;

		wc_store_close(store);
		r = st_cli(dir, &out, "gc", NULL);
		ST_CHECK(r == 0, "%s: warmfork gc exited %d:\n%s", ctx, r, out);
		free(out);
		r = wc_store_open(dir, 0, NULL, &store);
		ST_REQUIRE(r == 0, "%s: reopen: %s", ctx, err_str(r));
	} else {
		struct wc_gc_stats gs;

		r = wc_store_gc(store, &gs);
		ST_CHECK(r == 0, "%s: gc: %s", ctx, err_str(r));
		ST_CHECK(r < 0 || gs.bytes_before == before.pack_bytes,
			 "%s: gc counted %" PRIu64 " pack bytes before, stats %" PRIu64,
			 ctx, gs.bytes_before, before.pack_bytes);
	}
	r = wc_store_stats(store, &after);
	ST_REQUIRE(r == 0, "%s: stats: %s", ctx, err_str(r));
	exact = st_gc_bound_check(ctx, &after, nr_live, false);
	ST_CHECK(after.pack_bytes <= before.pack_bytes, "%s: gc grew the packs from %" PRIu64
		 " to %" PRIu64 " bytes", ctx, before.pack_bytes, after.pack_bytes);
	/* A half-written snapshot's pages are garbage like any other: once
	 * they are the majority of their pack, gc must drop them. */
	if (before.pack_bytes > 2 * live_bytes)
		ST_CHECK(after.pack_bytes < before.pack_bytes,
			 "%s: packs %" PRIu64 " bytes, %zu live pages, but gc did not shrink them",
			 ctx, before.pack_bytes, nr_live);
	ST_CHECK(st_check_all(store, ctx, NULL) == 0, "%s: snapshots damaged by gc", ctx);
	wc_store_close(store);
	return garbage && exact;
}

/* Two files: pages of random data and zeros, the second with a partial
 * last page. */
static void make_files(const char *base, char path[2][4096], uint8_t *data[2], size_t len[2])
{
	static const size_t sizes[2] = { 1536 * WC_PAGE_SIZE, 700 * WC_PAGE_SIZE + 123 };

	for (int f = 0; f < 2; f++) {
		FILE *fp;

		snprintf(path[f], 4096, "%s/file%d", base, f);
		len[f] = sizes[f];
		data[f] = calloc(1, ALIGN_UP_PAGE(sizes[f]));
		ST_REQUIRE(data[f], "calloc");
		for (size_t j = 0; j * WC_PAGE_SIZE < sizes[f]; j++)
			if (st_mix64(seed ^ (f << 24) ^ j) % 4)
				st_gen_page(seed ^ 0xf11e ^ f, j, data[f] + j * WC_PAGE_SIZE);
		memset(data[f] + sizes[f], 0, ALIGN_UP_PAGE(sizes[f]) - sizes[f]);
		fp = fopen(path[f], "we");
		ST_REQUIRE(fp && fwrite(data[f], 1, sizes[f], fp) == sizes[f] && fclose(fp) == 0,
			   "write %s", path[f]);
	}
}

/* A snapshot of the CLI ingest: two areas named after the files, holding
 * their bytes (the last page zero-padded). 0 if so. */
static int check_cli_snapshot(struct wc_store *store, const char *id, char path[2][4096],
			      uint8_t *data[2], size_t len[2], char *why, size_t why_len)
{
	struct wc_snapshot *snap;
	struct wc_source *src;
	int r;

	r = wc_snapshot_open(store, id, &snap);
	if (r < 0) {
		snprintf(why, why_len, "open: %s", err_str(r));
		return r;
	}
	r = wc_store_source_new(store, &src);
	ST_REQUIRE(r == 0, "source: %s", err_str(r));
	if (wc_snapshot_nr_areas(snap) != 2) {
		snprintf(why, why_len, "%zu areas", wc_snapshot_nr_areas(snap));
		r = 1;
	}
	for (size_t a = 0; a < 2 && r == 0; a++) {
		const struct wc_area *ar = wc_snapshot_area(snap, a);
		size_t bytes = ALIGN_UP_PAGE(len[a]);
		uint8_t *dst;

		if (strcmp(ar->name, path[a]) || ar->nr_pages * WC_PAGE_SIZE != bytes) {
			snprintf(why, why_len, "area %zu is \"%.200s\", %" PRIu64 " pages", a, ar->name,
				 ar->nr_pages);
			r = 1;
			break;
		}
		dst = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ST_REQUIRE(dst != MAP_FAILED, "mmap");
		r = wc_snapshot_fill_area(snap, src, a, dst);
		if (r < 0)
			snprintf(why, why_len, "fill: %s", err_str(r));
		else if (memcmp(dst, data[a], bytes) != 0) {
			snprintf(why, why_len, "area %zu: content differs from %.200s", a, path[a]);
			r = 1;
		}
		munmap(dst, bytes);
	}
	wc_source_free(src);
	wc_snapshot_close(snap);
	return r;
}

static void phase_cli(uint64_t *rng)
{
	char *base = st_tmpdir("crash-cli"), path[2][4096], store_dir[4200], *out;
	uint8_t *data[2];
	size_t len[2];
	uint64_t t0, cli_us;
	unsigned killed = 0;
	int r;

	ST_REQUIRE(base, "tmpdir");
	snprintf(store_dir, sizeof(store_dir), "%s/store", base);
	make_files(base, path, data, len);
	t0 = st_now_us();
	r = st_cli(store_dir, &out, "ingest", path[0], path[1], NULL);
	ST_REQUIRE(r == 0, "warmfork ingest exited %d:\n%s", r, out);
	free(out);
	cli_us = st_now_us() - t0 + 1;

	for (unsigned round = 0; round < 8; round++) {
		const char *bin = getenv("WARMFORK_BIN");
		uint64_t delay = st_rand(rng) % (2 * cli_us);
		struct wc_store *store;
		char **ids, ctx[64];
		size_t nr;
		int status;
		pid_t pid;

		snprintf(ctx, sizeof(ctx), "cli round %u (kill after %" PRIu64 " us)", round, delay);
		pid = fork();
		ST_REQUIRE(pid >= 0, "fork");
		if (pid == 0) {
			int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);

			dup2(devnull, 1);
			execl(bin, bin, "--store", store_dir, "ingest", path[0], path[1], (char *)NULL);
			_exit(127);
		}
		usleep(delay);
		kill(pid, SIGKILL);
		ST_REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid");
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
			killed++;
		else
			ST_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
				 "%s: warmfork ingest failed (status %#x)", ctx, status);

		r = wc_store_open(store_dir, 0, NULL, &store);
		ST_REQUIRE(r == 0, "%s: open: %s", ctx, err_str(r));
		r = wc_store_list(store, &ids, &nr);
		ST_REQUIRE(r == 0, "%s: list: %s", ctx, err_str(r));
		for (size_t i = 0; i < nr; i++) {
			char why[256];

			r = check_cli_snapshot(store, ids[i], path, data, len, why, sizeof(why));
			ST_CHECK(r == 0, "%s: snapshot %s: %s", ctx, ids[i], why);
			if (i == 0) {
				r = st_cli(store_dir, &out, "inspect", "--json", ids[i], NULL);
				ST_CHECK(r == 0 && strstr(out, ids[i]), "%s: warmfork inspect exited %d:\n%s",
					 ctx, r, out);
				free(out);
			}
		}
		wc_id_list_free(ids, nr);
		wc_store_close(store);
		r = st_cli(store_dir, &out, "verify", NULL);
		ST_CHECK(r == 0, "%s: warmfork verify exited %d:\n%s", ctx, r, out);
		free(out);
		if (round % 3 == 2) {
			r = st_cli(store_dir, &out, "gc", NULL);
			ST_CHECK(r == 0, "%s: warmfork gc exited %d:\n%s", ctx, r, out);
			free(out);
		}
	}
	printf("phase 3: %u of 8 CLI ingests killed before they finished (one takes %" PRIu64 " us)\n",
	       killed, cli_us);
	free(data[0]);
	free(data[1]);
}

int main(int argc, char **argv)
{
	const char *env_seed = getenv("ST_SEED"), *env_rounds = getenv("ST_ROUNDS");
	unsigned rounds = env_rounds ? (unsigned)atoi(env_rounds) : 40;
	struct wc_store *store;
	char baseline[WC_ID_LEN + 1];
	uint64_t rng, t0, ingest_us, gc_us, steps;
	unsigned kills = 0, orphan_rounds = 0, reclaimed_rounds = 0, gc_kills = 0;
	int r, status;

	/* line-buffered: the progress shows even when a timeout kills us */
	setvbuf(stdout, NULL, _IOLBF, 0);
	(void)argc;
	(void)argv;
	seed = env_seed ? strtoull(env_seed, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	printf("seed=%#" PRIx64 " rounds=%u (reproduce with ST_SEED=%#" PRIx64 ")\n", seed, rounds, seed);
	fflush(stdout);
	rng = seed;
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	shared_progress = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ST_REQUIRE(shared_progress != MAP_FAILED, "mmap");

	dir = st_tmpdir("crash");
	ST_REQUIRE(dir, "tmpdir");
	r = wc_store_open(dir, WC_OPEN_CREATE, NULL, &store);
	ST_REQUIRE(r == 0, "create store: %s", err_str(r));

	/* Baseline snapshot (never removed) and the time one ingest takes. */
	{
		struct st_spec s = child_spec(0xffff, 0);
		char id[WC_ID_LEN + 1];

		s.pct_shared = 60;
		r = st_ingest(store, &s, baseline);
		ST_REQUIRE(r == 0, "baseline ingest: %s", err_str(r));
		/* The fastest of three: the child ingests in a loop, warm. */
		ingest_us = UINT64_MAX;
		for (unsigned k = 0; k < 3; k++) {
			s = child_spec(0xfffe, k);
			t0 = st_now_us();
			r = st_ingest(store, &s, id);
			ST_REQUIRE(r == 0, "timing ingest: %s", err_str(r));
			if (st_now_us() - t0 + 1 < ingest_us)
				ingest_us = st_now_us() - t0 + 1;
		}
	}
	wc_store_close(store);
	printf("one ingest: %" PRIu64 " us\n", ingest_us);

	steps = 3 + 2 * ST_STEPS_PER_AREA(child_spec(0, 0).nr_pages);
	for (unsigned round = 0; round < rounds; round++) {
		/* Kill anywhere within the first three ingests: after a random
		 * number of steps, plus up to a step's time (so that the kill
		 * lands inside a put_pages or a commit, not only between). */
		uint64_t at_step = st_rand(&rng) % (3 * steps);
		uint64_t delay = st_rand(&rng) % (ingest_us / steps * 2 + 1);
		char ctx[96];
		struct wc_store_stats st;
		struct wc_key *live;
		size_t nr_live;

		uint64_t prev_bytes;
		size_t prev_live;

		snprintf(ctx, sizeof(ctx), "round %u (kill at step %" PRIu64 " + %" PRIu64 " us)",
			 round, at_step, delay);
		r = wc_store_open(dir, 0, NULL, &store);
		ST_REQUIRE(r == 0, "open: %s", err_str(r));
		ST_REQUIRE(st_live_keys(store, &live, &prev_live) == 0, "live keys");
		free(live);
		ST_REQUIRE(wc_store_stats(store, &st) == 0, "stats");
		prev_bytes = st.pack_bytes;
		wc_store_close(store);

		r = run_and_kill(0, round + 1, at_step, delay, &status);
		if (r < 0) {
			ST_CHECK(0, "%s: ingest child ended on its own (status %#x)", ctx, status);
			continue;
		}
		kills++;
		r = wc_store_open(dir, 0, NULL, &store);
		ST_REQUIRE(r == 0, "%s: open after kill: %s", ctx, err_str(r));
		ST_CHECK(st_check_all(store, ctx, NULL) == 0, "%s: damaged snapshots after kill", ctx);
		/* Every 5th round also delete old snapshots: gc then has both
		 * kinds of garbage. Other rounds only have the killed ingest's. */
		if (round % 5 == 4) {
			trim(store, baseline);
		} else {
			/* Orphans of this kill: the packs grew by more than the
			 * pages of the snapshots the child completed. */
			ST_REQUIRE(st_live_keys(store, &live, &nr_live) == 0, "live keys");
			free(live);
			ST_REQUIRE(wc_store_stats(store, &st) == 0, "stats");
			if (st.pack_bytes - prev_bytes > (nr_live - prev_live) * (uint64_t)WC_PAGE_SIZE)
				orphan_rounds++;
			if (getenv("ST_DEBUG"))
				printf("%s: packs +%" PRIu64 " pages, live +%zu\n", ctx,
				       (st.pack_bytes - prev_bytes) / WC_PAGE_SIZE, nr_live - prev_live);
		}
		wc_store_close(store);
		verify_both(ctx);
		if (gc_and_check(ctx, round % 2))
			reclaimed_rounds++;
	}
	printf("phase 1: %u kills, %u with orphaned pages, %u gc runs left no garbage at all\n",
	       kills, orphan_rounds, reclaimed_rounds);
	/* The kill points are random: most land inside an ingest and leave
	 * pages no snapshot lists. If none did, this test tested nothing. */
	ST_CHECK(rounds < 16 || orphan_rounds >= rounds / 4,
		 "only %u of %u kills left orphaned pages: kill timing is off", orphan_rounds, rounds);

	/* Phase 2: kill gc. Give it work first: new snapshots, old ones removed. */
	r = wc_store_open(dir, 0, NULL, &store);
	ST_REQUIRE(r == 0, "open: %s", err_str(r));
	{
		struct wc_gc_stats gs;

		t0 = st_now_us();
		r = wc_store_gc(store, &gs);
		ST_REQUIRE(r == 0, "gc: %s", err_str(r));
		gc_us = st_now_us() - t0 + 1;
	}
	wc_store_close(store);
	for (unsigned round = 0; round < 10; round++) {
		uint64_t delay;
		char ctx[64];

		r = wc_store_open(dir, 0, NULL, &store);
		ST_REQUIRE(r == 0, "open: %s", err_str(r));
		for (unsigned k = 0; k < 3; k++) {
			struct st_spec s = child_spec(5000 + round, k);
			char id[WC_ID_LEN + 1];

			r = st_ingest(store, &s, id);
			ST_REQUIRE(r == 0, "ingest: %s", err_str(r));
		}
		trim(store, baseline);
		wc_store_close(store);
		/* This gc has more work than the timed one: allow for it. */
		delay = st_rand(&rng) % (4 * gc_us + 2000);
		snprintf(ctx, sizeof(ctx), "gc kill %u (after %" PRIu64 " us)", round, delay);
		r = run_and_kill(1, 0, 0, delay, &status);
		if (r == 0)
			gc_kills++;
		else
			ST_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
				 "%s: gc child failed (status %#x)", ctx, status);
		r = wc_store_open(dir, 0, NULL, &store);
		ST_REQUIRE(r == 0, "%s: open after kill: %s", ctx, err_str(r));
		ST_CHECK(st_check_all(store, ctx, NULL) == 0, "%s: damaged snapshots", ctx);
		wc_store_close(store);
		verify_both(ctx);
		gc_and_check(ctx, round % 2);
	}
	printf("phase 2: %u of 10 gc runs killed before they finished\n", gc_kills);

	phase_cli(&rng);

	if (st_failures) {
		printf("FAILED: %d check(s); seed=%#" PRIx64 "\n", st_failures, seed);
		return 1;
	}
	printf("ok\n");
	return 0;
}
