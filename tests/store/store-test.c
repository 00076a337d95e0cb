// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Helpers shared by the store's robustness tests: deterministic snapshot
 * contents, a checker that regenerates them, temp dirs and the CLI runner.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "store-test.h"

int st_failures;
volatile uint64_t *st_progress;

static inline void progress(void)
{
	if (st_progress)
		__atomic_add_fetch(st_progress, 1, __ATOMIC_SEQ_CST);
}

uint64_t st_mix64(uint64_t x)
{
	/* splitmix64 finalizer */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

uint64_t st_rand(uint64_t *state)
{
	*state += 0x9e3779b97f4a7c15ull;
	return st_mix64(*state);
}

uint64_t st_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void st_spec_format(const struct st_spec *s, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRIx64 ":%" PRIx64 ":%u:%u:%u:%u:%u:%u",
		 s->seed, s->pool_seed, s->nr_areas, s->nr_pages, s->pool_pages,
		 s->pct_absent, s->pct_zero, s->pct_shared);
}

int st_spec_parse(const char *str, struct st_spec *ret)
{
	struct st_spec s = {};
	int n = 0;

	if (sscanf(str, "%" SCNx64 ":%" SCNx64 ":%u:%u:%u:%u:%u:%u%n",
		   &s.seed, &s.pool_seed, &s.nr_areas, &s.nr_pages, &s.pool_pages,
		   &s.pct_absent, &s.pct_zero, &s.pct_shared, &n) != 8 || str[n])
		return -EINVAL;
	if (s.pct_absent + s.pct_zero + s.pct_shared > 100)
		return -EINVAL;
	*ret = s;
	return 0;
}

void st_gen_page(uint64_t stream, uint64_t idx, void *page)
{
	uint64_t *w = page;
	uint64_t base = st_mix64(stream ^ st_mix64(idx));

	for (size_t i = 0; i < WC_PAGE_SIZE / 8; i++)
		w[i] = st_mix64(base + i);
	w[0] |= 1;	/* never an all-zero page */
}

static uint64_t page_hash(const struct st_spec *s, uint32_t a, uint64_t j)
{
	return st_mix64(s->seed * 0x2545f4914f6cdd1dull ^ st_mix64(((uint64_t)a << 40) ^ j));
}

enum wc_page_kind st_page_kind(const struct st_spec *s, uint32_t a, uint64_t j)
{
	unsigned r = page_hash(s, a, j) % 100;

	if (r < s->pct_absent)
		return WC_PAGE_ABSENT;
	if (r < s->pct_absent + s->pct_zero)
		return WC_PAGE_ZERO;
	return WC_PAGE_DATA;
}

void st_page_fill(const struct st_spec *s, uint32_t a, uint64_t j, void *page)
{
	uint64_t h = page_hash(s, a, j);
	unsigned r = h % 100;

	if (r < s->pct_absent + s->pct_zero) {
		memset(page, 0, WC_PAGE_SIZE);
		return;
	}
	if (r < s->pct_absent + s->pct_zero + s->pct_shared && s->pool_pages)
		st_gen_page(st_mix64(s->pool_seed ^ 0x5eed5eed5eed5eedull),
			    (h >> 32) % s->pool_pages, page);
	else
		st_gen_page(st_mix64(s->seed ^ 0xa5a5a5a5a5a5a5a5ull),
			    ((uint64_t)a << 40) | j, page);
}

uint64_t st_area_start(const struct st_spec *s, uint32_t a)
{
	/* Areas are separated by a gap, like the VMAs of a process. */
	return 0x10000000ull + (uint64_t)a * ((uint64_t)s->nr_pages + 16) * WC_PAGE_SIZE;
}

static int key_cmp(const void *pa, const void *pb)
{
	const struct wc_key *a = pa, *b = pb;

	if (a->hi != b->hi)
		return a->hi < b->hi ? -1 : 1;
	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	return 0;
}

static size_t keys_sort_unique(struct wc_key *k, size_t nr)
{
	size_t out = 0;

	qsort(k, nr, sizeof(*k), key_cmp);
	for (size_t i = 0; i < nr; i++)
		if (out == 0 || !wc_key_eq(&k[out - 1], &k[i]))
			k[out++] = k[i];
	return out;
}

static int keys_append(struct wc_key **keys, size_t *nr, size_t *cap, const struct wc_key *k)
{
	if (*nr == *cap) {
		size_t ncap = *cap ? *cap * 2 : 1024;
		struct wc_key *n = realloc(*keys, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		*keys = n;
		*cap = ncap;
	}
	(*keys)[(*nr)++] = *k;
	return 0;
}

int st_spec_keys(const struct st_spec *s, struct wc_key **keys, size_t *nr)
{
	uint8_t page[WC_PAGE_SIZE] __attribute__((aligned(64)));
	struct wc_key *k = NULL;
	size_t n = 0, cap = 0;

	for (uint32_t a = 0; a < s->nr_areas; a++)
		for (uint64_t j = 0; j < s->nr_pages; j++) {
			struct wc_key key;

			if (st_page_kind(s, a, j) != WC_PAGE_DATA)
				continue;
			st_page_fill(s, a, j, page);
			wc_key_of(page, &key);
			if (keys_append(&k, &n, &cap, &key) < 0) {
				free(k);
				return -ENOMEM;
			}
		}
	n = keys_sort_unique(k, n);
	if (keys)
		*keys = k;
	else
		free(k);
	*nr = n;
	return 0;
}

#define ST_BATCH 64

int st_ingest(struct wc_store *store, const struct st_spec *s, char ret_id[WC_ID_LEN + 1])
{
	struct wc_sink *sink = NULL;
	uint8_t *buf = NULL;
	uint8_t kinds[ST_BATCH];
	static unsigned nonce;
	char label[160], name[64];
	int r;

	buf = aligned_alloc(WC_PAGE_SIZE, ST_BATCH * WC_PAGE_SIZE);
	if (!buf)
		return -ENOMEM;
	r = wc_store_sink_new(store, &sink);
	if (r < 0)
		goto out;
	st_spec_format(s, label, sizeof(label));
	progress();
	r = sink->ops->put_label(sink, ST_SPEC_LABEL, label);
	if (r < 0)
		goto out;
	r = sink->ops->put_blob(sink, ST_BLOB_NAME, label, strlen(label));
	if (r < 0)
		goto out;
	/* Two ingests of one spec are still two snapshots. */
	snprintf(name, sizeof(name), "%d.%u.%" PRIu64, getpid(), nonce++, st_now_us());
	r = sink->ops->put_label(sink, "st.nonce", name);
	if (r < 0)
		goto out;
	for (uint32_t a = 0; a < s->nr_areas; a++) {
		struct wc_area_desc d = {
			.start = st_area_start(s, a),
			.nr_pages = s->nr_pages,
			.prot = 3,
			.flags = a,
			.name = name,
		};

		snprintf(name, sizeof(name), "st-area-%u", a);
		r = sink->ops->begin_area(sink, &d);
		if (r < 0)
			goto out;
		for (uint64_t j = 0; j < s->nr_pages; j += ST_BATCH) {
			size_t n = s->nr_pages - j < ST_BATCH ? s->nr_pages - j : ST_BATCH;

			for (size_t i = 0; i < n; i++) {
				kinds[i] = st_page_kind(s, a, j + i);
				if (kinds[i] == WC_PAGE_ABSENT)
					/* must be ignored by the sink */
					memset(buf + i * WC_PAGE_SIZE, 0xee, WC_PAGE_SIZE);
				else
					st_page_fill(s, a, j + i, buf + i * WC_PAGE_SIZE);
			}
			r = sink->ops->put_pages(sink, buf, kinds, n);
			if (r < 0)
				goto out;
			progress();
		}
	}
	progress();
	r = sink->ops->commit(sink, ret_id);
	progress();
out:
	wc_sink_free(sink);
	free(buf);
	return r;
}

static int mismatch(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (why && len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return 1;
}

int st_check_snapshot(struct wc_store *store, struct wc_source *src, const char *id,
		      char *why, size_t why_len)
{
	uint8_t expect[WC_PAGE_SIZE] __attribute__((aligned(64)));
	struct wc_snapshot *snap = NULL;
	struct wc_source *own_src = NULL;
	struct wc_fill_target *targets = NULL;
	struct st_spec s;
	const char *label;
	const void *blob;
	size_t blob_len;
	int r;

	if (why && why_len)
		why[0] = 0;
	r = wc_snapshot_open(store, id, &snap);
	if (r < 0) {
		if (why)
			snprintf(why, why_len, "open: %s", err_str(r));
		return r;
	}
	label = wc_snapshot_label(snap, ST_SPEC_LABEL);
	if (!label || st_spec_parse(label, &s) < 0) {
		r = mismatch(why, why_len, "label %s missing or bad", ST_SPEC_LABEL);
		goto out;
	}
	if (wc_snapshot_blob(snap, ST_BLOB_NAME, &blob, &blob_len) < 0 ||
	    blob_len != strlen(label) || memcmp(blob, label, blob_len) != 0) {
		r = mismatch(why, why_len, "blob %s missing or wrong", ST_BLOB_NAME);
		goto out;
	}
	if (wc_snapshot_nr_areas(snap) != s.nr_areas) {
		r = mismatch(why, why_len, "%zu areas, expected %u",
			     wc_snapshot_nr_areas(snap), s.nr_areas);
		goto out;
	}
	targets = calloc(s.nr_areas ? s.nr_areas : 1, sizeof(*targets));
	if (!targets) {
		r = -ENOMEM;
		goto out;
	}
	for (uint32_t a = 0; a < s.nr_areas; a++) {
		const struct wc_area *ar = wc_snapshot_area(snap, a);
		uint64_t k = 0;
		char name[32];

		snprintf(name, sizeof(name), "st-area-%u", a);
		if (!ar || ar->start != st_area_start(&s, a) || ar->nr_pages != s.nr_pages ||
		    ar->prot != 3 || ar->flags != a || !ar->name || strcmp(ar->name, name)) {
			r = mismatch(why, why_len, "area %u: layout differs", a);
			goto out;
		}
		for (uint64_t j = 0; j < s.nr_pages; j++) {
			enum wc_page_kind kind = st_page_kind(&s, a, j);

			if (ar->kinds[j] != kind) {
				r = mismatch(why, why_len, "area %u page %" PRIu64 ": kind %u, expected %u",
					     a, j, ar->kinds[j], kind);
				goto out;
			}
			if (kind == WC_PAGE_DATA) {
				struct wc_key key;

				if (k >= ar->nr_data) {
					r = mismatch(why, why_len, "area %u: too few keys", a);
					goto out;
				}
				st_page_fill(&s, a, j, expect);
				wc_key_of(expect, &key);
				if (!wc_key_eq(&key, &ar->keys[k])) {
					r = mismatch(why, why_len, "area %u page %" PRIu64 ": wrong key", a, j);
					goto out;
				}
				k++;
			}
		}
		if (k != ar->nr_data) {
			r = mismatch(why, why_len, "area %u: %" PRIu64 " keys, expected %" PRIu64,
				     a, ar->nr_data, k);
			goto out;
		}
		targets[a].area_idx = a;
		targets[a].dst = mmap(NULL, (size_t)s.nr_pages * WC_PAGE_SIZE + WC_PAGE_SIZE,
				      PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (targets[a].dst == MAP_FAILED) {
			targets[a].dst = NULL;
			r = -ENOMEM;
			goto out;
		}
	}
	if (!src) {
		r = wc_store_source_new(store, &own_src);
		if (r < 0) {
			if (why)
				snprintf(why, why_len, "source: %s", err_str(r));
			goto out;
		}
		src = own_src;
	}
	/* Exercise both fill entry points. */
	if (s.seed & 1) {
		for (uint32_t a = 0; a < s.nr_areas && r >= 0; a++)
			r = wc_snapshot_fill_area(snap, src, a, targets[a].dst);
	} else {
		r = wc_snapshot_fill(snap, src, targets, s.nr_areas);
	}
	if (r < 0) {
		if (why)
			snprintf(why, why_len, "fill: %s", err_str(r));
		goto out;
	}
	for (uint32_t a = 0; a < s.nr_areas; a++) {
		const uint8_t *dst = targets[a].dst;

		for (uint64_t j = 0; j < s.nr_pages; j++) {
			st_page_fill(&s, a, j, expect);
			if (memcmp(dst + j * WC_PAGE_SIZE, expect, WC_PAGE_SIZE) != 0) {
				r = mismatch(why, why_len, "area %u page %" PRIu64 ": content differs (kind %u)",
					     a, j, st_page_kind(&s, a, j));
				goto out;
			}
		}
		/* The guard page past the area must be untouched. */
		if (!wc_page_is_zero(dst + (size_t)s.nr_pages * WC_PAGE_SIZE)) {
			r = mismatch(why, why_len, "area %u: fill wrote past its end", a);
			goto out;
		}
	}
	r = 0;
out:
	if (targets)
		for (uint32_t a = 0; a < s.nr_areas; a++)
			if (targets[a].dst)
				munmap(targets[a].dst, (size_t)s.nr_pages * WC_PAGE_SIZE + WC_PAGE_SIZE);
	free(targets);
	wc_source_free(own_src);
	wc_snapshot_close(snap);
	return r;
}

int st_check_all(struct wc_store *store, const char *ctx, size_t *ret_nr)
{
	char **ids = NULL;
	size_t nr = 0;
	int bad = 0, r;

	r = wc_store_list(store, &ids, &nr);
	if (r < 0) {
		fprintf(stderr, "FAIL %s: list: %s\n", ctx, err_str(r));
		return 1;
	}
	for (size_t i = 0; i < nr; i++) {
		char why[256];

		r = st_check_snapshot(store, NULL, ids[i], why, sizeof(why));
		if (r != 0) {
			fprintf(stderr, "FAIL %s: snapshot %s: %s\n", ctx, ids[i], why);
			bad++;
		}
	}
	wc_id_list_free(ids, nr);
	if (ret_nr)
		*ret_nr = nr;
	return bad;
}

int st_live_keys(struct wc_store *store, struct wc_key **ret, size_t *ret_nr)
{
	struct wc_key *k = NULL;
	size_t n = 0, cap = 0;
	char **ids = NULL;
	size_t nr = 0;
	int r;

	r = wc_store_list(store, &ids, &nr);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nr; i++) {
		struct wc_snapshot *snap;

		r = wc_snapshot_open(store, ids[i], &snap);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			goto fail;
		for (size_t a = 0; a < wc_snapshot_nr_areas(snap); a++) {
			const struct wc_area *ar = wc_snapshot_area(snap, a);

			for (uint64_t d = 0; d < ar->nr_data; d++)
				if (keys_append(&k, &n, &cap, &ar->keys[d]) < 0) {
					wc_snapshot_close(snap);
					r = -ENOMEM;
					goto fail;
				}
		}
		wc_snapshot_close(snap);
	}
	wc_id_list_free(ids, nr);
	*ret_nr = n ? keys_sort_unique(k, n) : 0;
	*ret = k;
	return 0;
fail:
	wc_id_list_free(ids, nr);
	free(k);
	return r;
}

bool st_gc_strict(void)
{
	const char *v = getenv("ST_GC_STRICT");

	return v && *v && strcmp(v, "0") != 0;
}

bool st_gc_bound_check(const char *ctx, const struct wc_store_stats *after, size_t nr_live,
		       bool racing_writers)
{
	uint64_t live = (uint64_t)nr_live * WC_PAGE_SIZE;
	bool exact = after->pack_bytes <= live && after->nr_pages == nr_live;

	ST_CHECK(after->pack_bytes >= live,
		 "%s: after gc the packs hold %" PRIu64 " bytes < %" PRIu64 " live bytes",
		 ctx, after->pack_bytes, live);
	ST_CHECK(after->nr_pages >= nr_live,
		 "%s: after gc the index holds %" PRIu64 " pages < %zu live", ctx, after->nr_pages,
		 nr_live);
	if (st_gc_strict())
		ST_CHECK(exact, "%s: after gc the packs hold %" PRIu64 " bytes (%" PRIu64
			 " pages indexed) for %zu live pages: garbage left (ST_GC_STRICT)",
			 ctx, after->pack_bytes, after->nr_pages, nr_live);
	else if (!racing_writers)
		ST_CHECK(after->pack_bytes <= 2 * live,
			 "%s: after gc the packs hold %" PRIu64 " bytes for %" PRIu64
			 " live bytes: a pack less than half live was kept", ctx, after->pack_bytes, live);
	return exact;
}

/* ------------------------------------------------------------ files */

static struct {
	char *path;
	pid_t owner;
} tmpdirs[32];
static size_t nr_tmpdirs;

static void tmpdirs_cleanup(void)
{
	if (getenv("ST_KEEP"))
		return;
	for (size_t i = 0; i < nr_tmpdirs; i++)
		if (tmpdirs[i].owner == getpid())
			st_rm_rf(tmpdirs[i].path);
}

char *st_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *path;

	if (!base || !*base)
		base = "/tmp";
	if (asprintf(&path, "%s/wf-%s-XXXXXX", base, tag) < 0)
		return NULL;
	if (!mkdtemp(path)) {
		free(path);
		return NULL;
	}
	if (nr_tmpdirs == 0)
		atexit(tmpdirs_cleanup);
	if (nr_tmpdirs < sizeof(tmpdirs) / sizeof(tmpdirs[0])) {
		tmpdirs[nr_tmpdirs].path = path;
		tmpdirs[nr_tmpdirs].owner = getpid();
		nr_tmpdirs++;
	}
	return path;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

int st_rm_rf(const char *path)
{
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
}

static uint64_t du_alloc, du_size;

static int du_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (flag == FTW_F) {
		du_alloc += (uint64_t)st->st_blocks * 512;
		du_size += (uint64_t)st->st_size;
	}
	return 0;
}

int st_du(const char *dir, uint64_t *ret_alloc, uint64_t *ret_size)
{
	du_alloc = du_size = 0;
	if (nftw(dir, du_one, 16, FTW_PHYS) < 0)
		return -errno;
	if (ret_alloc)
		*ret_alloc = du_alloc;
	if (ret_size)
		*ret_size = du_size;
	return 0;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int st_list_files(const char *dir, const char *sub, const char *suffix,
		  char ***ret, size_t *ret_nr)
{
	char path[4096];
	struct dirent *de;
	char **v = NULL;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name), sl = strlen(suffix);
		char **nv;

		if (de->d_name[0] == '.' || l < sl || strcmp(de->d_name + l - sl, suffix))
			continue;
		nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv || asprintf(&nv[n], "%s/%s", path, de->d_name) < 0) {
			closedir(d);
			st_free_list(nv ? nv : v, n);
			return -ENOMEM;
		}
		v = nv;
		n++;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), str_cmp);
	*ret = v;
	*ret_nr = n;
	return 0;
}

void st_free_list(char **v, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		free(v[i]);
	free(v);
}

/* ------------------------------------------------------------ CLI */

int st_cli(const char *store, char **ret_out, const char *arg0, ...)
{
	const char *bin = getenv("WARMFORK_BIN");
	const char *argv[32];
	size_t argc = 0, len = 0, cap = 0;
	char *out = NULL;
	int p[2], status;
	va_list ap;
	pid_t pid;

	if (!bin) {
		fprintf(stderr, "WARMFORK_BIN is not set (run through meson test)\n");
		return -ENOENT;
	}
	argv[argc++] = bin;
	argv[argc++] = "--store";
	argv[argc++] = store;
	va_start(ap, arg0);
	for (const char *a = arg0; a && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			char *nb = realloc(out, cap + 65536);

			if (!nb)
				break;
			out = nb;
			cap += 65536;
		}
		n = read(p[0], out + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
	}
	close(p[0]);
	if (out)
		out[len] = 0;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			free(out);
			return -errno;
		}
	if (ret_out)
		*ret_out = out ? out : strdup("");
	else
		free(out);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
