// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Several processes on one store at once.
 *
 *  A. Three writers ingest overlapping snapshots at the same time (two of
 *     them ingest identical ones, racing on the same keys) while two
 *     readers keep filling whatever is listed. Every reader fill must
 *     match, and at the end every snapshot and the index must be exact.
 *  B. gc runs repeatedly (with garbage interleaved with live pages, so it
 *     rewrites packs that live pages sit in) while readers keep filling
 *     the surviving snapshots: a reader that opens the store per fill and
 *     one that keeps a single store and source open throughout. Neither
 *     may ever fail.
 *  C. The dedup/gc race: a writer ingests snapshots whose pages are garbage
 *     (their previous owner was just removed) while another process runs
 *     gc in a loop. If an ingest could deduplicate against a page that a
 *     concurrent gc then drops, the committed snapshot would be missing
 *     pages; every one must fill right after its commit.
 *  D. gc waits for an open ingest: gc started while a sink is open does not
 *     finish before that ingest commits, and the snapshot survives it.
 *  E. Ingests wait for gc: while DIR/lock is held exclusively (what gc
 *     holds, docs/store.md "Locking"), an ingest cannot start, and readers
 *     keep reading; released, the ingest goes through.
 *
 * ST_SEED=N reproduces a run.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "store-test.h"

#define NR_WRITERS	3
#define SNAPS_PER_WRITER 6

static const char *dir;
static uint64_t seed;

static struct st_spec spec_a(unsigned writer, unsigned k)
{
	/* Writers 0 and 1 ingest identical snapshots at the same time. */
	unsigned w = writer == 1 ? 0 : writer;
	struct st_spec s = {
		.seed = st_mix64(seed ^ 0xa000 ^ (w << 8) ^ k),
		.pool_seed = seed,
		.nr_areas = 2,
		.nr_pages = 256,
		.pool_pages = 256,
		.pct_absent = 5,
		.pct_zero = 15,
		.pct_shared = 50,
	};
	/* st_ingest() adds a nonce label: the two stay distinct snapshots. */
	return s;
}

static bool stop_requested(int stop_fd)
{
	struct pollfd p = { .fd = stop_fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

/*
 * Reader: until @stop_fd becomes readable, fill snapshots and compare.
 * @ids NULL: whatever is listed at the time (no snapshot is removed while
 * it runs). @long_lived: one store and source for the whole run.
 * Exit status: 0, or 1 if any fill failed, 2 if it never completed one.
 */
static _Noreturn void reader(int stop_fd, char **ids, size_t nr_ids, bool long_lived,
			     unsigned tag)
{
	struct wc_store *store = NULL;
	struct wc_source *src = NULL;
	uint64_t rng = seed ^ (0x1000 + tag);
	unsigned done = 0, bad = 0;
	int r;

	do {
		char **list = ids;
		size_t nr = nr_ids;

		if (!store) {
			r = wc_store_open(dir, WC_OPEN_RDONLY, NULL, &store);
			if (r < 0) {
				fprintf(stderr, "FAIL reader %u: open: %s\n", tag, err_str(r));
				_exit(1);
			}
			if (long_lived) {
				r = wc_store_source_new(store, &src);
				if (r < 0) {
					fprintf(stderr, "FAIL reader %u: source: %s\n", tag, err_str(r));
					_exit(1);
				}
			}
		}
		if (!ids) {
			r = wc_store_list(store, &list, &nr);
			if (r < 0) {
				fprintf(stderr, "FAIL reader %u: list: %s\n", tag, err_str(r));
				_exit(1);
			}
		}
		for (unsigned i = 0; i < 3 && nr; i++) {
			const char *id = list[st_rand(&rng) % nr];
			char why[256];

			r = st_check_snapshot(store, src, id, why, sizeof(why));
			if (r != 0) {
				fprintf(stderr, "FAIL reader %u (%s): snapshot %s: %s\n", tag,
					long_lived ? "long-lived" : "fresh", id, why);
				bad++;
			} else {
				done++;
			}
		}
		if (!ids)
			wc_id_list_free(list, nr);
		if (!long_lived) {
			wc_store_close(store);
			store = NULL;
		}
	} while (!stop_requested(stop_fd) && bad < 5);
	wc_source_free(src);
	wc_store_close(store);
	printf("reader %u (%s): %u fills ok, %u failed\n", tag,
	       long_lived ? "long-lived" : "fresh", done, bad);
	fflush(stdout);
	_exit(bad ? 1 : done ? 0 : 2);
}

/* @stop: a pipe; the child keeps only its read end, so that closing the
 * write end in the parent stops it. */
static pid_t spawn_reader(const int stop[2], char **ids, size_t nr, bool long_lived, unsigned tag)
{
	pid_t pid = fork();

	ST_REQUIRE(pid >= 0, "fork");
	if (pid == 0) {
		close(stop[1]);
		reader(stop[0], ids, nr, long_lived, tag);
	}
	return pid;
}

static int wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static _Noreturn void writer_a(unsigned w)
{
	struct wc_store *store;
	char id[WC_ID_LEN + 1];
	int r;

	r = wc_store_open(dir, 0, NULL, &store);
	if (r < 0) {
		fprintf(stderr, "FAIL writer %u: open: %s\n", w, err_str(r));
		_exit(1);
	}
	for (unsigned k = 0; k < SNAPS_PER_WRITER; k++) {
		struct st_spec s = spec_a(w, k);

		r = st_ingest(store, &s, id);
		if (r < 0) {
			fprintf(stderr, "FAIL writer %u: ingest %u: %s\n", w, k, err_str(r));
			_exit(1);
		}
	}
	wc_store_close(store);
	_exit(0);
}

static void phase_a(void)
{
	pid_t writers[NR_WRITERS], readers[2];
	struct wc_store_stats st;
	struct wc_store *store;
	struct wc_key *live;
	size_t nr_live, nr;
	int stop[2], r;

	ST_REQUIRE(pipe(stop) == 0, "pipe");
	for (unsigned i = 0; i < 2; i++)
		readers[i] = spawn_reader(stop, NULL, 0, i == 1, i);
	for (unsigned w = 0; w < NR_WRITERS; w++) {
		writers[w] = fork();
		ST_REQUIRE(writers[w] >= 0, "fork");
		if (writers[w] == 0) {
			close(stop[1]);
			writer_a(w);
		}
	}
	for (unsigned w = 0; w < NR_WRITERS; w++)
		ST_CHECK(wait_child(writers[w]) == 0, "A: writer %u failed", w);
	close(stop[1]);
	for (unsigned i = 0; i < 2; i++)
		ST_CHECK(wait_child(readers[i]) == 0, "A: reader %u failed", i);
	close(stop[0]);

	r = wc_store_open(dir, 0, NULL, &store);
	ST_REQUIRE(r == 0, "open: %s", err_str(r));
	ST_CHECK(st_check_all(store, "A", &nr) == 0, "A: damaged snapshots");
	ST_CHECK(nr == NR_WRITERS * SNAPS_PER_WRITER,
		 "A: %zu snapshots listed, %u ingested", nr, NR_WRITERS * SNAPS_PER_WRITER);
	r = st_live_keys(store, &live, &nr_live);
	ST_REQUIRE(r == 0, "live keys: %s", err_str(r));
	free(live);
	r = wc_store_stats(store, &st);
	ST_REQUIRE(r == 0, "stats: %s", err_str(r));
	/* Racing writers may both have written a page; the index still counts
	 * it once and lacks nothing. */
	ST_CHECK(st.nr_pages == nr_live, "A: index holds %" PRIu64 " distinct pages, snapshots use %zu",
		 st.nr_pages, nr_live);
	ST_CHECK(st.nr_snapshots == nr, "A: stats count %" PRIu64 " snapshots, %zu listed",
		 st.nr_snapshots, nr);
	wc_store_close(store);
}

static void phase_b(void)
{
	struct wc_store *store;
	char **ids, **keep;
	size_t nr, nr_keep = 0;
	pid_t readers[2];
	unsigned rewrites = 0;
	int stop[2], r;

	r = wc_store_open(dir, 0, NULL, &store);
	ST_REQUIRE(r == 0, "open: %s", err_str(r));
	r = wc_store_list(store, &ids, &nr);
	ST_REQUIRE(r == 0 && nr >= 4, "list: %s", err_str(r));
	keep = calloc(nr, sizeof(*keep));
	ST_REQUIRE(keep, "calloc");
	/* Keep one snapshot in four: the rest become garbage spread through
	 * the same packs as the pages that stay live, enough of it that gc
	 * rewrites those packs (it keeps packs that are at least half live)
	 * while the readers read from them. */
	for (size_t i = 0; i < nr; i++)
		if (i % 4 == 0)
			keep[nr_keep++] = strdup(ids[i]);
	wc_store_close(store);

	ST_REQUIRE(pipe(stop) == 0, "pipe");
	readers[0] = spawn_reader(stop, keep, nr_keep, false, 10);
	readers[1] = spawn_reader(stop, keep, nr_keep, true, 11);
	usleep(20000);

	for (unsigned round = 0; round < 6; round++) {
		struct wc_gc_stats gs;

		r = wc_store_open(dir, 0, NULL, &store);
		ST_REQUIRE(r == 0, "open: %s", err_str(r));
		if (round == 0) {
			for (size_t i = 0; i < nr; i++)
				if (i % 4) {
					r = wc_store_remove(store, ids[i]);
					ST_CHECK(r == 0, "B: rm %s: %s", ids[i], err_str(r));
				}
		} else {
			/* More garbage: ingest and remove a few snapshots. */
			for (unsigned k = 0; k < 3; k++) {
				struct st_spec s = spec_a(7, 100 * round + k);
				char id[WC_ID_LEN + 1];

				r = st_ingest(store, &s, id);
				ST_CHECK(r == 0, "B: ingest: %s", err_str(r));
				if (r == 0) {
					r = wc_store_remove(store, id);
					ST_CHECK(r == 0, "B: rm %s: %s", id, err_str(r));
				}
			}
		}
		r = wc_store_gc(store, &gs);
		ST_CHECK(r == 0, "B: gc round %u: %s", round, err_str(r));
		if (round == 0)
			ST_CHECK(r < 0 || gs.bytes_after < gs.bytes_before,
				 "B: gc freed nothing after 3/4 of the snapshots were removed");
		if (r == 0) {
			struct wc_store_stats st;
			struct wc_key *live;
			size_t nr_live;
			char ctx[32];

			snprintf(ctx, sizeof(ctx), "B: gc round %u", round);
			ST_REQUIRE(st_live_keys(store, &live, &nr_live) == 0, "live keys");
			free(live);
			ST_REQUIRE(wc_store_stats(store, &st) == 0, "stats");
			st_gc_bound_check(ctx, &st, nr_live, true);
			rewrites += gs.packs_before != gs.packs_after || gs.bytes_after < gs.bytes_before;
		}
		wc_store_close(store);
	}
	close(stop[1]);
	printf("B: %u of 6 gc runs changed the packs\n", rewrites);
	for (unsigned i = 0; i < 2; i++)
		ST_CHECK(wait_child(readers[i]) == 0, "B: reader %u failed while gc ran", i);
	close(stop[0]);

	r = wc_store_open(dir, 0, NULL, &store);
	ST_REQUIRE(r == 0, "open: %s", err_str(r));
	{
		size_t nr_now = 0;

		ST_CHECK(st_check_all(store, "B", &nr_now) == 0, "B: damaged snapshots");
		ST_CHECK(nr_now == nr_keep, "B: %zu snapshots listed, %zu kept", nr_now, nr_keep);
	}
	wc_store_close(store);
	for (size_t i = 0; i < nr_keep; i++)
		free(keep[i]);
	free(keep);
	wc_id_list_free(ids, nr);
}

static _Noreturn void gc_loop(int stop_fd)
{
	struct wc_store *store;
	unsigned runs = 0;
	int r;

	r = wc_store_open(dir, 0, NULL, &store);
	if (r < 0)
		_exit(1);
	while (!stop_requested(stop_fd)) {
		struct wc_gc_stats gs;

		r = wc_store_gc(store, &gs);
		if (r < 0) {
			fprintf(stderr, "FAIL gc loop: %s\n", err_str(r));
			_exit(1);
		}
		runs++;
	}
	printf("gc loop: %u runs\n", runs);
	fflush(stdout);
	_exit(runs ? 0 : 2);
}

static void phase_c(void)
{
	struct wc_store *store;
	char last[WC_ID_LEN + 1] = "";
	unsigned broken = 0;
	int stop[2], r;
	pid_t gc;

	ST_REQUIRE(pipe(stop) == 0, "pipe");
	gc = fork();
	ST_REQUIRE(gc >= 0, "fork");
	if (gc == 0) {
		close(stop[1]);
		gc_loop(stop[0]);
	}

	r = wc_store_open(dir, 0, NULL, &store);
	ST_REQUIRE(r == 0, "open: %s", err_str(r));
	for (unsigned i = 0; i < 40; i++) {
		/* Mostly pages of the previous (removed) snapshot's pool. */
		struct st_spec s = {
			.seed = st_mix64(seed ^ 0xc000 ^ i),
			.pool_seed = seed ^ 0xc0,
			.nr_areas = 1,
			.nr_pages = 128,
			.pool_pages = 64,
			.pct_zero = 5,
			.pct_shared = 85,
		};
		char id[WC_ID_LEN + 1], why[256];

		r = st_ingest(store, &s, id);
		ST_CHECK(r == 0, "C: ingest %u: %s", i, err_str(r));
		if (r < 0)
			continue;
		r = st_check_snapshot(store, NULL, id, why, sizeof(why));
		if (r != 0) {
			fprintf(stderr, "FAIL C: snapshot %s right after commit: %s\n", id, why);
			broken++;
		}
		if (last[0]) {
			r = wc_store_remove(store, last);
			ST_CHECK(r == 0, "C: rm %s: %s", last, err_str(r));
		}
		memcpy(last, id, sizeof(last));
	}
	close(stop[1]);
	ST_CHECK(wait_child(gc) == 0, "C: gc loop failed");
	close(stop[0]);
	ST_CHECK(broken == 0, "C: %u snapshots lost pages to a concurrent gc", broken);
	ST_CHECK(st_check_all(store, "C", NULL) == 0, "C: damaged snapshots");
	wc_store_close(store);
}

/* D: an ingest holds its sink open; gc must not finish meanwhile. */
static void phase_d(void)
{
	int hold[2], go[2], done[2], status, r;
	char c, id[WC_ID_LEN + 1] = "";
	struct wc_store *store;
	pid_t ing, gc;

	ST_REQUIRE(pipe(hold) == 0 && pipe(go) == 0 && pipe(done) == 0, "pipe");
	ing = fork();
	ST_REQUIRE(ing >= 0, "fork");
	if (ing == 0) {
		struct st_spec s = {
			.seed = seed ^ 0xd,
			.pool_seed = seed ^ 0xc0,	/* phase C's pages: garbage now */
			.nr_areas = 1,
			.nr_pages = 64,
			.pool_pages = 64,
			.pct_shared = 80,
		};
		struct wc_sink *sink;
		uint8_t *buf = aligned_alloc(WC_PAGE_SIZE, 64 * WC_PAGE_SIZE);
		struct wc_area_desc d = { .start = st_area_start(&s, 0), .nr_pages = 64,
					  .prot = 3, .flags = 0, .name = "st-area-0" };
		char label[160];

		if (wc_store_open(dir, 0, NULL, &store) < 0 || wc_store_sink_new(store, &sink) < 0)
			_exit(1);
		st_spec_format(&s, label, sizeof(label));
		for (unsigned j = 0; j < 64; j++)
			st_page_fill(&s, 0, j, buf + j * WC_PAGE_SIZE);
		if (sink->ops->put_label(sink, ST_SPEC_LABEL, label) < 0 ||
		    sink->ops->put_blob(sink, ST_BLOB_NAME, label, strlen(label)) < 0 ||
		    sink->ops->begin_area(sink, &d) < 0 ||
		    sink->ops->put_pages(sink, buf, NULL, 64) < 0)
			_exit(1);
		if (write(hold[1], "H", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(1);
		r = sink->ops->commit(sink, id);
		if (r < 0 || write(done[1], id, WC_ID_LEN) != WC_ID_LEN)
			_exit(1);
		wc_sink_free(sink);
		_exit(0);
	}
	close(hold[1]);
	close(done[1]);
	ST_REQUIRE(read(hold[0], &c, 1) == 1, "D: ingest child failed to start");

	gc = fork();
	ST_REQUIRE(gc >= 0, "fork");
	if (gc == 0) {
		struct wc_gc_stats gs;

		if (wc_store_open(dir, 0, NULL, &store) < 0)
			_exit(1);
		_exit(wc_store_gc(store, &gs) < 0 ? 1 : 0);
	}
	/* gc must still be waiting after 300 ms (it would finish in a few). */
	usleep(300000);
	ST_CHECK(waitpid(gc, &status, WNOHANG) == 0,
		 "D: gc finished while an ingest was open (status %#x)", status);
	ST_REQUIRE(write(go[1], "G", 1) == 1, "go");
	ST_CHECK(read(done[0], id, WC_ID_LEN) == WC_ID_LEN, "D: ingest did not commit");
	ST_CHECK(wait_child(ing) == 0, "D: ingest child failed");
	ST_CHECK(wait_child(gc) == 0, "D: gc failed");
	r = wc_store_open(dir, 0, NULL, &store);
	ST_REQUIRE(r == 0, "open: %s", err_str(r));
	if (id[0]) {
		char why[256];

		r = st_check_snapshot(store, NULL, id, why, sizeof(why));
		ST_CHECK(r == 0, "D: snapshot %s after gc: %s", id, why);
	}
	wc_store_close(store);
}

static void phase_e(void)
{
	int started[2], done[2], status, r, lock_fd;
	char lock_path[4096], c, id[WC_ID_LEN + 1] = "";
	struct wc_store *store;
	pid_t ing;

	snprintf(lock_path, sizeof(lock_path), "%s/lock", dir);
	lock_fd = open(lock_path, O_RDWR | O_CLOEXEC);
	ST_REQUIRE(lock_fd >= 0, "E: open %s: %m", lock_path);
	ST_REQUIRE(flock(lock_fd, LOCK_EX) == 0, "E: flock: %m");
	ST_REQUIRE(pipe(started) == 0 && pipe(done) == 0, "pipe");
	ing = fork();
	ST_REQUIRE(ing >= 0, "fork");
	if (ing == 0) {
		struct st_spec s = { .seed = seed ^ 0xe, .nr_areas = 1, .nr_pages = 32, .pct_zero = 10 };

		close(lock_fd);
		if (write(started[1], "S", 1) != 1 || wc_store_open(dir, 0, NULL, &store) < 0 ||
		    st_ingest(store, &s, id) < 0 || write(done[1], id, WC_ID_LEN) != WC_ID_LEN)
			_exit(1);
		_exit(0);
	}
	close(started[1]);
	close(done[1]);
	ST_REQUIRE(read(started[0], &c, 1) == 1, "E: ingest child did not start");
	/* Readers go on meanwhile. */
	r = wc_store_open(dir, WC_OPEN_RDONLY, NULL, &store);
	ST_REQUIRE(r == 0, "open: %s", err_str(r));
	ST_CHECK(st_check_all(store, "E (gc lock held)", NULL) == 0, "E: a reader failed while the gc lock was held");
	wc_store_close(store);
	usleep(300000);
	ST_CHECK(waitpid(ing, &status, WNOHANG) == 0,
		 "E: an ingest completed while the gc lock was held (status %#x)", status);
	ST_REQUIRE(flock(lock_fd, LOCK_UN) == 0, "E: unlock");
	close(lock_fd);
	ST_CHECK(read(done[0], id, WC_ID_LEN) == WC_ID_LEN, "E: ingest did not finish after the lock was released");
	ST_CHECK(wait_child(ing) == 0, "E: ingest child failed");
	close(started[0]);
	close(done[0]);
	if (id[0]) {
		char why[256];

		r = wc_store_open(dir, 0, NULL, &store);
		ST_REQUIRE(r == 0, "open: %s", err_str(r));
		r = st_check_snapshot(store, NULL, id, why, sizeof(why));
		ST_CHECK(r == 0, "E: snapshot %s: %s", id, why);
		wc_store_close(store);
	}
}

int main(void)
{
	const char *env_seed = getenv("ST_SEED");
	struct wc_store *store;
	int r;

	/* line-buffered: the progress shows even when a timeout kills us */
	setvbuf(stdout, NULL, _IOLBF, 0);
	seed = env_seed ? strtoull(env_seed, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	printf("seed=%#" PRIx64 "\n", seed);
	fflush(stdout);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	dir = st_tmpdir("conc");
	ST_REQUIRE(dir, "tmpdir");
	r = wc_store_open(dir, WC_OPEN_CREATE, NULL, &store);
	ST_REQUIRE(r == 0, "create: %s", err_str(r));
	wc_store_close(store);

	phase_a();
	printf("A done (%d failures)\n", st_failures);
	phase_b();
	printf("B done (%d failures)\n", st_failures);
	phase_c();
	printf("C done (%d failures)\n", st_failures);
	phase_d();
	printf("D done (%d failures)\n", st_failures);
	phase_e();
	printf("E done (%d failures)\n", st_failures);

	{
		char *out = NULL;

		r = st_cli(dir, &out, "verify", NULL);
		ST_CHECK(r == 0, "warmfork verify exited %d:\n%s", r, out);
		free(out);
	}
	if (st_failures) {
		printf("FAILED: %d check(s); seed=%#" PRIx64 "\n", st_failures, seed);
		return 1;
	}
	printf("ok\n");
	return 0;
}
