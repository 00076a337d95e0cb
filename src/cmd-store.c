// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The store subcommands: ls, inspect, rm, gc, verify, ingest.
 * Errors: one line on stderr naming the object, exit 1; bad usage exit 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "warmcache.h"
#include "cli.h"

#define CHUNK_PAGES	1024u		/* 4 MiB per read */

static bool env_true(const char *name)
{
	const char *v = getenv(name);

	return v && *v && strcmp(v, "0") != 0;
}

int cli_open_store(const struct cli_ctx *ctx, bool create, struct wc_store **ret)
{
	struct wc_store_opts opts = { .sz = sizeof(opts) };
	int r;

	/* For experiments and the benchmark's baseline. */
	opts.no_uring = env_true("WARMFORK_STORE_NO_URING");
	opts.sync = env_true("WARMFORK_STORE_SYNC");
	err_clear();
	r = wc_store_open(ctx->store_dir, create ? WC_OPEN_CREATE : 0, &opts, ret);
	if (r < 0 && err_detail())
		log_error("%s", err_detail());	/* names the store already */
	else if (r < 0)
		log_error("cannot open store \"%s\": %s", ctx->store_dir, err_str(r));
	return r;
}

/* Open without creating; a missing store reads as an empty one (ret NULL). */
static int open_existing(const struct cli_ctx *ctx, struct wc_store **ret)
{
	struct stat st;
	char path[4096];

	snprintf(path, sizeof(path), "%s/format", ctx->store_dir);
	if (stat(path, &st) < 0 && errno == ENOENT) {
		*ret = NULL;
		return 0;
	}
	return cli_open_store(ctx, false, ret);
}

static const char *fmt_time(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000ull);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static int parse_json_flag(int argc, char **argv, const struct cli_ctx *ctx, bool *json,
			   const char *usage)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	int c;

	*json = ctx->json;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			*json = true;
			break;
		case 'h':
			printf("Usage: warmfork %s\n", usage);
			return 0;
		default:
			fprintf(stderr, "Usage: warmfork %s\n", usage);
			return 2;
		}
	}
	return -1;
}

static int check_stdout(void)
{
	if (fflush(stdout) != 0) {
		log_error("cannot write to stdout: %s", strerror(errno));
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------- ls */

int cmd_ls(int argc, char **argv, const struct cli_ctx *ctx)
{
	struct wc_store *store = NULL;
	char **ids = NULL;
	size_t nr = 0;
	bool json, first = true;
	int r, status = 0;

	r = parse_json_flag(argc, argv, ctx, &json, "ls [--json]");
	if (r >= 0)
		return r;
	if (optind != argc) {
		fprintf(stderr, "Usage: warmfork ls [--json]\n");
		return 2;
	}
	if (open_existing(ctx, &store) < 0)
		return 1;
	if (store) {
		r = wc_store_list(store, &ids, &nr);
		if (r < 0) {
			log_error("store \"%s\": cannot list snapshots: %s", ctx->store_dir, err_str(r));
			wc_store_close(store);
			return 1;
		}
	}
	if (json)
		printf("[");
	else
		printf("%-16s  %-20s  %5s  %10s  %10s\n", "ID", "CREATED", "AREAS", "LOGICAL", "STORED");
	for (size_t i = 0; i < nr; i++) {
		struct wc_snapshot *snap;
		struct wc_snapshot_usage u;
		char tbuf[32], lbuf[32], sbuf[32];

		err_clear();
		r = wc_snapshot_open(store, ids[i], &snap);
		if (r == -ENOENT)
			continue;
		if (r == 0) {
			r = wc_store_snapshot_usage(NULL, snap, &u);
			if (r < 0)
				wc_snapshot_close(snap);
		}
		if (r < 0) {
			log_error("snapshot %s: %s", ids[i], err_str(r));
			status = 1;
			continue;
		}
		fmt_time(wc_snapshot_created_ns(snap), tbuf, sizeof(tbuf));
		if (json) {
			printf("%s{\"id\":\"%s\",\"created\":\"%s\",\"created_ns\":%" PRIu64
			       ",\"areas\":%zu,\"logical_bytes\":%" PRIu64 ",\"stored_bytes\":%" PRIu64 "}",
			       first ? "" : ",", ids[i], tbuf, wc_snapshot_created_ns(snap),
			       wc_snapshot_nr_areas(snap), u.pages_total * WC_PAGE_SIZE,
			       u.distinct_data * WC_PAGE_SIZE);
		} else {
			printf("%-16s  %-20s  %5zu  %10s  %10s\n", ids[i], tbuf,
			       wc_snapshot_nr_areas(snap),
			       fmt_bytes(u.pages_total * WC_PAGE_SIZE, lbuf, sizeof(lbuf)),
			       fmt_bytes(u.distinct_data * WC_PAGE_SIZE, sbuf, sizeof(sbuf)));
		}
		first = false;
		wc_snapshot_close(snap);
	}
	if (json)
		printf("]\n");
	wc_id_list_free(ids, nr);
	wc_store_close(store);
	return check_stdout() ? 1 : status;
}

/* -------------------------------------------------------------- inspect */

static void prot_str(uint32_t prot, char out[4])
{
	out[0] = prot & PROT_READ ? 'r' : '-';
	out[1] = prot & PROT_WRITE ? 'w' : '-';
	out[2] = prot & PROT_EXEC ? 'x' : '-';
	out[3] = '\0';
}

int cmd_inspect(int argc, char **argv, const struct cli_ctx *ctx)
{
	struct wc_store *store;
	struct wc_snapshot *snap;
	struct wc_snapshot_usage u;
	char tbuf[32], b1[32], b2[32], b3[32];
	bool json;
	int r;

	r = parse_json_flag(argc, argv, ctx, &json, "inspect [--json] SNAP");
	if (r >= 0)
		return r;
	if (optind != argc - 1) {
		fprintf(stderr, "Usage: warmfork inspect [--json] SNAP\n");
		return 2;
	}
	if (cli_open_store(ctx, false, &store) < 0)
		return 1;
	err_clear();
	r = wc_snapshot_open(store, argv[optind], &snap);
	if (r < 0) {
		log_error("%s", err_str(r));
		wc_store_close(store);
		return 1;
	}
	r = wc_store_snapshot_usage(store, snap, &u);
	if (r < 0) {
		log_error("snapshot %s: cannot compute usage: %s", wc_snapshot_id(snap), err_str(r));
		wc_snapshot_close(snap);
		wc_store_close(store);
		return 1;
	}
	fmt_time(wc_snapshot_created_ns(snap), tbuf, sizeof(tbuf));
	if (json) {
		printf("{\"id\":\"%s\",\"created\":\"%s\",\"created_ns\":%" PRIu64 ",\"labels\":{",
		       wc_snapshot_id(snap), tbuf, wc_snapshot_created_ns(snap));
		for (size_t i = 0; i < wc_snapshot_nr_labels(snap); i++) {
			const char *k, *v;

			wc_snapshot_label_at(snap, i, &k, &v);
			printf("%s", i ? "," : "");
			json_str(stdout, k);
			printf(":");
			json_str(stdout, v);
		}
		printf("},\"areas\":[");
	} else {
		printf("snapshot %s\ncreated  %s\n", wc_snapshot_id(snap), tbuf);
		for (size_t i = 0; i < wc_snapshot_nr_labels(snap); i++) {
			const char *k, *v;

			wc_snapshot_label_at(snap, i, &k, &v);
			printf("label    %s=%s\n", k, v);
		}
		printf("\n%4s  %-18s  %10s  %4s  %8s  %8s  %8s  %s\n", "AREA", "START", "SIZE", "PROT",
		       "DATA", "ZERO", "ABSENT", "NAME");
	}
	for (size_t i = 0; i < wc_snapshot_nr_areas(snap); i++) {
		const struct wc_area *a = wc_snapshot_area(snap, i);
		uint64_t zero = 0, absent = 0;
		char prot[4];

		for (uint64_t p = 0; p < a->nr_pages; p++) {
			zero += a->kinds[p] == WC_PAGE_ZERO;
			absent += a->kinds[p] == WC_PAGE_ABSENT;
		}
		prot_str(a->prot, prot);
		if (json) {
			printf("%s{\"index\":%zu,\"start\":%" PRIu64 ",\"size\":%" PRIu64
			       ",\"prot\":\"%s\",\"flags\":%" PRIu32 ",\"name\":", i ? "," : "", i, a->start,
			       a->nr_pages * WC_PAGE_SIZE, prot, a->flags);
			json_str(stdout, a->name);
			printf(",\"pages\":{\"data\":%" PRIu64 ",\"zero\":%" PRIu64 ",\"absent\":%" PRIu64 "}}",
			       a->nr_data, zero, absent);
		} else {
			printf("%4zu  0x%016" PRIx64 "  %10s  %4s  %8" PRIu64 "  %8" PRIu64 "  %8" PRIu64 "  %s\n",
			       i, a->start, fmt_bytes(a->nr_pages * WC_PAGE_SIZE, b1, sizeof(b1)), prot,
			       a->nr_data, zero, absent, a->name);
		}
	}
	if (json) {
		printf("],\"pages\":{\"total\":%" PRIu64 ",\"data\":%" PRIu64 ",\"zero\":%" PRIu64
		       ",\"absent\":%" PRIu64 ",\"distinct_data\":%" PRIu64 "},"
		       "\"logical_bytes\":%" PRIu64 ",\"stored_bytes\":%" PRIu64
		       ",\"unique_bytes\":%" PRIu64 ",\"shared_bytes\":%" PRIu64 "}\n",
		       u.pages_total, u.pages_data, u.pages_zero, u.pages_absent, u.distinct_data,
		       u.pages_total * WC_PAGE_SIZE, u.distinct_data * WC_PAGE_SIZE,
		       u.unique_pages * WC_PAGE_SIZE, u.shared_pages * WC_PAGE_SIZE);
	} else {
		printf("\npages    %" PRIu64 " total: %" PRIu64 " data (%" PRIu64 " distinct), %" PRIu64
		       " zero, %" PRIu64 " absent\n", u.pages_total, u.pages_data, u.distinct_data,
		       u.pages_zero, u.pages_absent);
		printf("bytes    logical %s, stored %s: unique %s, shared with other snapshots %s\n",
		       fmt_bytes(u.pages_total * WC_PAGE_SIZE, b1, sizeof(b1)),
		       fmt_bytes(u.distinct_data * WC_PAGE_SIZE, b2, sizeof(b2)),
		       fmt_bytes(u.unique_pages * WC_PAGE_SIZE, b3, sizeof(b3)),
		       fmt_bytes(u.shared_pages * WC_PAGE_SIZE, tbuf, sizeof(tbuf)));
	}
	wc_snapshot_close(snap);
	wc_store_close(store);
	return check_stdout();
}

/* ------------------------------------------------------------------- rm */

int cmd_rm(int argc, char **argv, const struct cli_ctx *ctx)
{
	struct wc_store *store;
	int status = 0;

	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("Usage: warmfork rm SNAP...\n");
		return 0;
	}
	if (argc < 2) {
		fprintf(stderr, "Usage: warmfork rm SNAP...\n");
		return 2;
	}
	if (cli_open_store(ctx, false, &store) < 0)
		return 1;
	for (int i = 1; i < argc; i++) {
		char id[WC_ID_LEN + 1];
		int r;

		err_clear();
		r = wc_store_resolve(store, argv[i], id);
		if (r == 0)
			r = wc_store_remove(store, id);
		if (r < 0) {
			log_error("%s", err_str(r));
			status = 1;
			continue;
		}
		printf("%s\n", id);
	}
	wc_store_close(store);
	return check_stdout() ? 1 : status;
}

/* ------------------------------------------------------------------- gc */

int cmd_gc(int argc, char **argv, const struct cli_ctx *ctx)
{
	struct wc_store *store;
	struct wc_gc_stats st;
	char b1[32], b2[32], b3[32];
	bool json;
	int r;

	r = parse_json_flag(argc, argv, ctx, &json, "gc [--json]");
	if (r >= 0)
		return r;
	if (optind != argc) {
		fprintf(stderr, "Usage: warmfork gc [--json]\n");
		return 2;
	}
	if (cli_open_store(ctx, false, &store) < 0)
		return 1;
	err_clear();
	r = wc_store_gc(store, &st);
	wc_store_close(store);
	if (r < 0) {
		log_error("gc of store \"%s\" failed: %s", ctx->store_dir, err_str(r));
		return 1;
	}
	if (json)
		printf("{\"packs_before\":%" PRIu64 ",\"packs_after\":%" PRIu64 ",\"bytes_before\":%" PRIu64
		       ",\"bytes_after\":%" PRIu64 ",\"pages_live\":%" PRIu64 ",\"pages_freed\":%" PRIu64 "}\n",
		       st.packs_before, st.packs_after, st.bytes_before, st.bytes_after, st.pages_live,
		       st.pages_freed);
	else
		printf("gc: reclaimed %s (packs %" PRIu64 " -> %" PRIu64 ", %s -> %s), %" PRIu64
		       " live pages kept, %" PRIu64 " pages freed\n",
		       fmt_bytes(st.bytes_before > st.bytes_after ? st.bytes_before - st.bytes_after : 0,
				 b1, sizeof(b1)),
		       st.packs_before, st.packs_after, fmt_bytes(st.bytes_before, b2, sizeof(b2)),
		       fmt_bytes(st.bytes_after, b3, sizeof(b3)), st.pages_live, st.pages_freed);
	return check_stdout();
}

/* --------------------------------------------------------------- verify */

static void print_line(void *userdata, const char *line)
{
	unsigned *n = userdata;

	(*n)++;
	printf("%s\n", line);
}

int cmd_verify(int argc, char **argv, const struct cli_ctx *ctx)
{
	struct wc_store *store;
	struct wc_verify_report rep = {};
	unsigned lines = 0;
	bool json;
	int r;

	r = parse_json_flag(argc, argv, ctx, &json, "verify [SNAP]");
	if (r >= 0)
		return r;
	if (optind < argc - 1) {
		fprintf(stderr, "Usage: warmfork verify [SNAP]\n");
		return 2;
	}
	if (cli_open_store(ctx, false, &store) < 0)
		return 1;
	err_clear();
	r = wc_store_verify(store, optind < argc ? argv[optind] : NULL, print_line, &lines, &rep);
	wc_store_close(store);
	fflush(stdout);
	if (r == -EBADMSG) {
		log_error("store \"%s\": damage found: %" PRIu64 " bad pages, %" PRIu64
			  " missing pages, %" PRIu64 " damaged manifests (%" PRIu64 " pages checked)",
			  ctx->store_dir, rep.pages_bad, rep.pages_missing, rep.manifests_bad,
			  rep.pages_checked);
		return 1;
	}
	if (r < 0) {
		log_error("verify of store \"%s\" failed: %s", ctx->store_dir, err_str(r));
		return 1;
	}
	printf("ok: %" PRIu64 " distinct pages checked\n", rep.pages_checked);
	return check_stdout();
}

/* --------------------------------------------------------------- ingest */

static int ingest_file(struct wc_sink *sink, const char *path, uint64_t start, uint8_t *buf,
		       uint64_t *ret_pages)
{
	_cleanup_close_ int fd = -1;
	struct wc_area_desc desc = {};
	struct stat st;
	uint64_t nr_pages, done = 0;
	int r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(errno, "cannot open \"%s\": %m", path);
	if (fstat(fd, &st) < 0)
		return err_set(errno, "cannot stat \"%s\": %m", path);
	if (!S_ISREG(st.st_mode))
		return err_set(EINVAL, "\"%s\" is not a regular file", path);
	nr_pages = DIV_ROUND_UP((uint64_t)st.st_size, WC_PAGE_SIZE);
	desc.start = start;
	desc.nr_pages = nr_pages;
	desc.prot = PROT_READ;
	desc.name = path;
	r = sink->ops->begin_area(sink, &desc);
	if (r < 0)
		return err_wrap(r, "\"%s\"", path);
	while (done < nr_pages) {
		size_t n = (size_t)MIN((uint64_t)CHUNK_PAGES, nr_pages - done);
		size_t want = n * WC_PAGE_SIZE, got = 0;

		/* The file may shrink meanwhile: pad with zeros. */
		while (got < want) {
			ssize_t k = pread(fd, buf + got, want - got, (off_t)(done * WC_PAGE_SIZE + got));

			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				return err_set(errno, "cannot read \"%s\": %m", path);
			if (k == 0)
				break;
			got += (size_t)k;
		}
		memset(buf + got, 0, want - got);
		r = sink->ops->put_pages(sink, buf, NULL, n);
		if (r < 0)
			return r;
		done += n;
	}
	*ret_pages = nr_pages;
	return 0;
}

struct map_ent {
	uint64_t start, end;
	uint32_t prot;
	char name[256];
};

/* Readable private mappings of @pid, except the kernel's special ones. */
static int read_maps(int pid, struct map_ent **ret, size_t *ret_nr)
{
	char path[64], line[4352];
	struct map_ent *ents = NULL;
	size_t nr = 0, cap = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return err_set(errno, "process %d: cannot read its maps: %m", pid);
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e;
		char perms[8] = "", name[4096] = "";
		int n = 0;

		if (sscanf(line, "%llx-%llx %7s %*s %*s %*s%n", &s, &e, perms, &n) < 3)
			continue;
		if (line[n]) {
			char *p = line + n;

			while (*p == ' ')
				p++;
			snprintf(name, sizeof(name), "%s", p);
			name[strcspn(name, "\n")] = '\0';
		}
		if (perms[0] != 'r' || perms[3] != 'p')
			continue;
		if (!strcmp(name, "[vvar]") || !strcmp(name, "[vvar_vclock]") ||
		    !strcmp(name, "[vsyscall]"))
			continue;
		if (nr == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct map_ent *m = realloc(ents, ncap * sizeof(*m));

			if (!m) {
				fclose(f);
				free(ents);
				return -ENOMEM;
			}
			ents = m;
			cap = ncap;
		}
		ents[nr].start = s;
		ents[nr].end = e;
		ents[nr].prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
				(perms[2] == 'x' ? PROT_EXEC : 0);
		{
			size_t l = strnlen(name, sizeof(ents[nr].name) - 1);

			memcpy(ents[nr].name, name, l);
			ents[nr].name[l] = '\0';
		}
		nr++;
	}
	fclose(f);
	*ret = ents;
	*ret_nr = nr;
	return 0;
}

/* Read [addr, addr + n pages) of @pid; pages that cannot be read (beyond
 * the end of a file, a vanished mapping) are marked absent. */
static int read_remote(int pid, uint64_t addr, uint8_t *buf, uint8_t *kinds, size_t n)
{
	size_t page = 0;

	memset(kinds, WC_PAGE_DATA, n);
	while (page < n) {
		struct iovec local = { buf + page * WC_PAGE_SIZE, (n - page) * WC_PAGE_SIZE };
		struct iovec remote = { (void *)(uintptr_t)(addr + page * WC_PAGE_SIZE), local.iov_len };
		ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);

		if (got < 0 && errno == ESRCH)
			return err_set(ESRCH, "process %d exited", pid);
		if (got < 0 && errno != EFAULT && errno != EIO)
			return err_set(errno, "process %d: cannot read its memory: %m", pid);
		if (got < 0)
			got = 0;
		page += (size_t)got / WC_PAGE_SIZE;
		if (page < n) {
			/* The page at @page failed: absent, go on after it. */
			kinds[page] = WC_PAGE_ABSENT;
			page++;
		}
	}
	return 0;
}

static int ingest_pid(struct wc_sink *sink, int pid, uint8_t *buf)
{
	_cleanup_free_ struct map_ent *maps = NULL;
	uint8_t kinds[CHUNK_PAGES];
	char comm[64] = "", path[64], num[32];
	size_t nr = 0;
	int r;

	r = read_maps(pid, &maps, &nr);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nr; i++) {
		struct wc_area_desc desc = {
			.start = maps[i].start,
			.nr_pages = (maps[i].end - maps[i].start) / WC_PAGE_SIZE,
			.prot = maps[i].prot,
			.name = maps[i].name,
		};

		r = sink->ops->begin_area(sink, &desc);
		if (r < 0)
			return r;
		for (uint64_t done = 0; done < desc.nr_pages; ) {
			size_t n = (size_t)MIN((uint64_t)CHUNK_PAGES, desc.nr_pages - done);

			r = read_remote(pid, desc.start + done * WC_PAGE_SIZE, buf, kinds, n);
			if (r < 0)
				return r;
			r = sink->ops->put_pages(sink, buf, kinds, n);
			if (r < 0)
				return r;
			done += n;
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	{
		_cleanup_free_ char *c = NULL;

		if (read_file(path, &c, NULL) == 0)
			snprintf(comm, sizeof(comm), "%s", c);
		comm[strcspn(comm, "\n")] = '\0';
	}
	snprintf(num, sizeof(num), "%d", pid);
	r = sink->ops->put_label(sink, "source", "pid");
	if (r == 0)
		r = sink->ops->put_label(sink, "pid", num);
	if (r == 0 && comm[0])
		r = sink->ops->put_label(sink, "comm", comm);
	return r;
}

int cmd_ingest(int argc, char **argv, const struct cli_ctx *ctx)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "label", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char usage[] = "Usage: warmfork ingest [--label K=V]... (--pid PID | FILE...)\n";
	struct wc_store *store;
	struct wc_sink *sink;
	char **labels = NULL;
	size_t nr_labels = 0;
	uint8_t *buf = NULL;
	char id[WC_ID_LEN + 1];
	int c, r, pid = 0, status = 1;

	labels = calloc((size_t)argc, sizeof(*labels));
	if (!labels) {
		log_error("out of memory");
		return 1;
	}
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_int(optarg, &pid) < 0 || pid <= 0) {
				fprintf(stderr, "%s", usage);
				free(labels);
				return 2;
			}
			break;
		case 'l':
			if (!strchr(optarg, '=') || optarg[0] == '=') {
				fprintf(stderr, "%s", usage);
				free(labels);
				return 2;
			}
			labels[nr_labels++] = optarg;
			break;
		case 'h':
			printf("%s", usage);
			free(labels);
			return 0;
		default:
			fprintf(stderr, "%s", usage);
			free(labels);
			return 2;
		}
	}
	if ((pid && optind != argc) || (!pid && optind == argc)) {
		fprintf(stderr, "%s", usage);
		free(labels);
		return 2;
	}
	buf = aligned_alloc(WC_PAGE_SIZE, (size_t)CHUNK_PAGES * WC_PAGE_SIZE);
	if (!buf) {
		log_error("out of memory");
		free(labels);
		return 1;
	}
	if (cli_open_store(ctx, true, &store) < 0) {
		free(buf);
		free(labels);
		return 1;
	}
	err_clear();
	r = wc_store_sink_new(store, &sink);
	if (r < 0) {
		log_error("cannot start a snapshot in \"%s\": %s", ctx->store_dir, err_str(r));
		goto out;
	}
	for (size_t i = 0; i < nr_labels && r >= 0; i++) {
		char *eq = strchr(labels[i], '=');

		*eq = '\0';
		r = sink->ops->put_label(sink, labels[i], eq + 1);
		*eq = '=';
	}
	if (r >= 0 && pid) {
		r = ingest_pid(sink, pid, buf);
	} else if (r >= 0) {
		/* One area per file, 1 GiB apart-aligned, as if mapped. */
		uint64_t start = 0x10000000;

		r = sink->ops->put_label(sink, "source", "files");
		for (int i = optind; i < argc && r >= 0; i++) {
			uint64_t pages = 0;

			r = ingest_file(sink, argv[i], start, buf, &pages);
			start += ALIGN_UP((pages + 1) * WC_PAGE_SIZE, 1ull << 30);
		}
	}
	if (r >= 0)
		r = sink->ops->commit(sink, id);
	wc_sink_free(sink);
	if (r < 0) {
		if (pid)
			log_error("ingest of process %d failed: %s", pid, err_str(r));
		else
			log_error("ingest failed: %s", err_str(r));
		goto out;
	}
	printf("%s\n", id);
	status = check_stdout();
out:
	wc_store_close(store);
	free(buf);
	free(labels);
	return status;
}
